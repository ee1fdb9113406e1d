//! Control groups through cgroups-rs, on v1, hybrid and v2 hosts alike.
//!
//! On a hybrid host the v1 hierarchies are used and the cgroup2 mount that
//! may own a controller (hugetlb here) is left alone: berth never asks for
//! a controller it does not need.

use std::io;
use std::path::PathBuf;

use cgroups_rs::{Cgroup as Cg, CgroupPid, MaxValue};

pub struct Limits {
    pub memory: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub pids: Option<i64>,
    /// Device allow-list entries: (type 'c'|'b'|'a', major, minor, access
    /// "rwm"); major/minor -1 means any.
    pub devices: Vec<(char, i64, i64, String)>,
}

pub struct Cgroup {
    cg: Cg,
    pub path: String,
}

fn e(what: &str, path: &str, err: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("cgroup {path}: {what}: {err}"))
}

/// Controllers berth uses; cpuset and others stay with the parent.
fn wanted() -> Vec<String> {
    ["memory", "cpu", "cpuacct", "pids", "freezer", "devices", "blkio", "io"].iter().map(|s| s.to_string()).collect()
}

/// What the host offers, read once per process: (v2?, controllers we use,
/// v1 mount point per controller).
struct Host {
    v2: bool,
    controllers: Vec<String>,
    mounts: Vec<(String, PathBuf)>,
}

fn host() -> &'static Host {
    static HOST: std::sync::OnceLock<Host> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let v2 = cgroups_rs::hierarchies::is_cgroup2_unified_mode();
        let h = cgroups_rs::hierarchies::auto();
        let have: Vec<String> = h.subsystems().iter().map(|s| s.controller_name()).collect();
        let controllers = wanted().into_iter().filter(|w| have.contains(w)).collect();
        let mut mounts = Vec::new();
        for l in std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines() {
            let Some((pre, post)) = l.split_once(" - ") else { continue };
            let mut post = post.split(' ');
            if post.next() != Some("cgroup") {
                continue;
            }
            let opts = post.nth(1).unwrap_or("");
            if let Some(mp) = pre.split(' ').nth(4) {
                for o in opts.split(',') {
                    mounts.push((o.to_string(), PathBuf::from(mp)));
                }
            }
        }
        Host { v2, controllers, mounts }
    })
}

pub fn is_v2() -> bool {
    host().v2
}

fn hierarchy_controllers() -> Vec<String> {
    host().controllers.clone()
}

impl Cgroup {
    /// Creates (or opens) the cgroup at `path` (relative, e.g.
    /// `berth/<id>`) and applies the limits.
    pub fn create(path: &str, limits: &Limits) -> io::Result<Cgroup> {
        let h = cgroups_rs::hierarchies::auto();
        let cg = Cg::new_with_specified_controllers(h, path, Some(hierarchy_controllers())).map_err(|x| e("create", path, x))?;
        let me = Cgroup { cg, path: path.to_string() };
        me.apply(limits)?;
        Ok(me)
    }

    pub fn load(path: &str) -> Cgroup {
        let h = cgroups_rs::hierarchies::auto();
        Cgroup { cg: Cg::load_with_specified_controllers(h, path, hierarchy_controllers()), path: path.to_string() }
    }

    pub fn exists(&self) -> bool {
        self.cg.exists()
    }

    fn apply(&self, l: &Limits) -> io::Result<()> {
        let p = &self.path;
        if let Some(m) = l.memory {
            let mem: &cgroups_rs::memory::MemController = self.cg.controller_of().ok_or_else(|| e("memory", p, "controller missing"))?;
            mem.set_limit(m).map_err(|x| e("memory limit", p, x))?;
            // Without swap the limit is the limit: a process past it is
            // OOM-killed instead of swapping (docker sets memsw = 2x by
            // default; our hosts have no swap, so equal is the honest value).
            let _ = mem.set_memswap_limit(m);
        }
        if l.cpu_quota.is_some() || l.cpu_period.is_some() {
            let cpu: &cgroups_rs::cpu::CpuController = self.cg.controller_of().ok_or_else(|| e("cpu", p, "controller missing"))?;
            cpu.set_cfs_quota_and_period(l.cpu_quota, l.cpu_period).map_err(|x| e("cpu quota", p, x))?;
        }
        if let Some(n) = l.pids {
            let pids: &cgroups_rs::pid::PidController = self.cg.controller_of().ok_or_else(|| e("pids", p, "controller missing"))?;
            pids.set_pid_max(if n > 0 { MaxValue::Value(n) } else { MaxValue::Max }).map_err(|x| e("pids limit", p, x))?;
        }
        if !l.devices.is_empty() && !is_v2() {
            self.set_devices(&l.devices)?;
        }
        Ok(())
    }

    fn set_devices(&self, rules: &[(char, i64, i64, String)]) -> io::Result<()> {
        let Some(dir) = self.dir_of("devices") else { return Ok(()) };
        // Deny everything, then allow the list (v1 devices cgroup).
        std::fs::write(dir.join("devices.deny"), "a").map_err(|x| e("devices.deny", &self.path, x))?;
        for (t, maj, min, acc) in rules {
            let n = |v: i64| if v < 0 { "*".to_string() } else { v.to_string() };
            let rule = format!("{t} {}:{} {acc}", n(*maj), n(*min));
            std::fs::write(dir.join("devices.allow"), &rule).map_err(|x| e(&format!("devices.allow {rule}"), &self.path, x))?;
        }
        Ok(())
    }

    /// The directory of this cgroup in the hierarchy of `controller` (v1),
    /// or the unified directory (v2).
    pub fn dir_of(&self, controller: &str) -> Option<PathBuf> {
        if is_v2() {
            return Some(PathBuf::from("/sys/fs/cgroup").join(&self.path));
        }
        host().mounts.iter().find(|(c, _)| c == controller).map(|(_, mp)| mp.join(&self.path))
    }

    pub fn add(&self, pid: i32) -> io::Result<()> {
        self.cg.add_task_by_tgid(CgroupPid::from(pid as u64)).map_err(|x| e(&format!("add pid {pid}"), &self.path, x))
    }

    pub fn freeze(&self) -> io::Result<()> {
        let f: &cgroups_rs::freezer::FreezerController = self.cg.controller_of().ok_or_else(|| e("freezer", &self.path, "controller missing"))?;
        f.freeze().map_err(|x| e("freeze", &self.path, x))
    }

    pub fn thaw(&self) -> io::Result<()> {
        let f: &cgroups_rs::freezer::FreezerController = self.cg.controller_of().ok_or_else(|| e("freezer", &self.path, "controller missing"))?;
        f.thaw().map_err(|x| e("thaw", &self.path, x))
    }

    pub fn procs(&self) -> Vec<i32> {
        self.cg.procs().into_iter().map(|p| p.pid as i32).collect()
    }

    /// Did the kernel's OOM killer kill a process of this cgroup?
    pub fn oom_killed(&self) -> bool {
        let read = |f: &str| self.dir_of("memory").and_then(|d| std::fs::read_to_string(d.join(f)).ok());
        let count = |s: String, key: &str| s.lines().find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok()).unwrap_or(0);
        if is_v2() {
            read("memory.events").map(|s| count(s, "oom_kill ")).unwrap_or(0) > 0
        } else {
            read("memory.oom_control").map(|s| count(s, "oom_kill ")).unwrap_or(0) > 0
        }
    }

    pub fn memory_usage(&self) -> u64 {
        let f = if is_v2() { "memory.current" } else { "memory.usage_in_bytes" };
        self.dir_of("memory").and_then(|d| std::fs::read_to_string(d.join(f)).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }

    /// Removes the cgroup; its processes must be gone.
    pub fn delete(&self) -> io::Result<()> {
        // A freshly killed process may still be leaving; retry briefly.
        let mut last = None;
        for _ in 0..50 {
            match self.cg.delete() {
                Ok(()) => return Ok(()),
                Err(x) => last = Some(x),
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(e("delete", &self.path, last.unwrap()))
    }
}
