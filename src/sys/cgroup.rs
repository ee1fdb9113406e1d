//! Control groups on v1, hybrid and pure v2 hosts.
//!
//! The version is what the filesystem at /sys/fs/cgroup says: cgroup2
//! (pure v2) or a tmpfs of v1 hierarchies (v1, or hybrid when a cgroup2
//! mount sits beside them; that one may own a controller, hugetlb here, and
//! berth leaves it alone).
//!
//! Both are written directly: each is a handful of files per controller.
//! (cgroups-rs, used here before, parsed mountinfo and compiled a regex
//! for every hugetlb page size on each load, in every process that
//! touched a cgroup; on v2 berth needs what it does not do: controllers
//! enabled top-down only where offered, a freeze that waits until the
//! kernel says frozen, the BPF device filter.)
//!
//! A rootless berth on v2 uses the subtree delegated to its user, as
//! systemd's Delegate=yes gives one (user@UID.service, owned by the user,
//! its processes in leaf children such as init.scope): that cgroup stands
//! in for the hierarchy's root, and container paths (`berth/<id>`) are
//! relative to it. Without one, and on v1, it uses no cgroups at all.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::bpfdev;

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
    imp: Imp,
    pub path: String,
}

enum Imp {
    /// Its directories are `dirs(path)`, one per hierarchy.
    V1,
    /// The cgroup's directory in the unified hierarchy.
    V2(PathBuf),
    /// None: a rootless berth where the user may not make cgroups (v1, or
    /// v2 without a delegated subtree). Limits are ignored (the engine says
    /// so once); pause cannot be done.
    Without,
}

fn e(what: &str, path: &str, err: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("cgroup {path}: {what}: {err}"))
}

/// Like `e`, keeping the kind (NotFound tells a lost race from a real error).
fn eio(what: &str, path: &str, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("cgroup {path}: {what}: {err}"))
}

/// v1 controllers berth uses; cpuset and others stay with the parent.
const V1_WANTED: [&str; 7] = ["memory", "cpu", "cpuacct", "pids", "freezer", "devices", "blkio"];
/// v2 controllers berth enables for its cgroups, where the parent offers them.
const V2_WANTED: [&str; 4] = ["memory", "cpu", "pids", "io"];

const UNIFIED: &str = "/sys/fs/cgroup";

/// What the host offers, read once per process.
struct Host {
    v2: bool,
    /// v1: the controllers of V1_WANTED that have a hierarchy.
    controllers: Vec<String>,
    /// v1: mount point per controller.
    mounts: Vec<(String, PathBuf)>,
}

fn host() -> &'static Host {
    static HOST: std::sync::OnceLock<Host> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
        let v2 = nix::sys::statfs::statfs(UNIFIED).is_ok_and(|s| s.filesystem_type().0 as i64 == CGROUP2_SUPER_MAGIC);
        let mut mounts = Vec::new();
        if !v2 {
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
        }
        let controllers = V1_WANTED.iter().filter(|w| mounts.iter().any(|(c, _)| c == *w)).map(|s| s.to_string()).collect();
        Host { v2, controllers, mounts }
    })
}

pub fn is_v2() -> bool {
    host().v2
}

/// The cgroup a rootless berth uses as its hierarchy root on v2: the
/// highest ancestor of its own cgroup that the user may write, or why
/// there is none. Read once per process: the exec helper moves itself
/// into a container's cgroup after asking.
fn delegated() -> &'static Result<PathBuf, String> {
    static DELEGATED: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    DELEGATED.get_or_init(|| find_delegated(&read(Path::new("/proc/self/cgroup")), Path::new(UNIFIED), may_write))
}

fn may_write(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: access(2) on a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// The delegated root under `mount` for a process whose /proc/self/cgroup
/// is `own`, where `writable` says what it may write.
fn find_delegated(own: &str, mount: &Path, writable: impl Fn(&Path) -> bool) -> Result<PathBuf, String> {
    let Some(path) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
        return Err("this process has no cgroup v2 path in /proc/self/cgroup".into());
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    // Ownership of the directory and of the two files that moving
    // processes and enabling controllers write is what systemd's
    // delegation hands over.
    let ours = |d: &Path| writable(d) && writable(&d.join("cgroup.procs")) && writable(&d.join("cgroup.subtree_control"));
    let Some(root) = (0..=parts.len()).map(|i| parts[..i].iter().fold(mount.to_path_buf(), |d, p| d.join(p))).find(|d| ours(d)) else {
        return Err(format!(
            "no cgroup from {} up is delegated to this user (none is writable by it); systemd's user@UID.service (Delegate=yes) is one: start berth inside it, e.g. with systemd-run --user --scope",
            mount.join(path.trim_start_matches('/')).display()
        ));
    };
    let procs = read(&root.join("cgroup.procs")).split_whitespace().count();
    if procs > 0 {
        return Err(format!(
            "{}, the cgroup delegated to this user, holds {procs} process(es) of its own, and cgroup v2 gives no controllers to the children of a cgroup with processes; move them into a child of it (as systemd keeps its own in init.scope)",
            root.display()
        ));
    }
    Ok(root)
}

/// The directory that stands for the hierarchy's root on v2: the unified
/// mount, or a rootless berth's delegated subtree.
fn v2_root() -> PathBuf {
    match delegated() {
        Ok(d) if crate::rootless::active() => d.clone(),
        _ => PathBuf::from(UNIFIED),
    }
}

/// Why a rootless berth has no cgroups here (v1, or v2 without a usable
/// delegated subtree); None when it has its delegated root.
pub fn rootless_without() -> Option<String> {
    if !is_v2() {
        return Some("cgroup v1 hierarchies belong to root and cannot be delegated to a user".into());
    }
    delegated().as_ref().err().cloned()
}

/// What `system info` says of a rootless berth's cgroups.
pub fn rootless_summary() -> String {
    match (rootless_without(), delegated()) {
        (None, Ok(d)) => {
            let offered = read(&d.join("cgroup.controllers"));
            let ctls: Vec<&str> = offered.split_whitespace().filter(|c| V2_WANTED.contains(c)).collect();
            format!("v2, delegated root {} (controllers: {})", d.display(), if ctls.is_empty() { "none".into() } else { ctls.join(" ") })
        }
        (why, _) => format!("none (limits ignored): {}", why.unwrap_or_default()),
    }
}

/// The directories that hold cgroup `path` on this host: one per v1
/// hierarchy berth uses, or the one unified directory. None for a
/// rootless berth without cgroups: the ones there belong to others.
pub fn dirs(path: &str) -> Vec<PathBuf> {
    let h = host();
    if crate::rootless::active() && !writable() {
        return Vec::new();
    }
    if h.v2 {
        return vec![v2_root().join(path)];
    }
    v1_hierarchies(h).into_iter().map(|mp| mp.join(path)).collect()
}

/// v1: the mount point of each hierarchy holding a controller berth uses,
/// once each (cpu and cpuacct often share one).
fn v1_hierarchies(h: &Host) -> Vec<&PathBuf> {
    let mut v: Vec<&PathBuf> = Vec::new();
    for c in &h.controllers {
        if let Some((_, mp)) = h.mounts.iter().find(|(x, _)| x == c)
            && !v.contains(&mp)
        {
            v.push(mp);
        }
    }
    v
}

/// A way into cgroup `path` on v1 for a process that will no longer see
/// the host's /sys/fs/cgroup by the time it goes in (init, after
/// pivot_root), opened before the cgroup exists: each hierarchy's mount,
/// held open. So the monitor makes the cgroup while init builds its root.
/// Empty where berth uses no cgroup; not for v2, where init is born in it.
pub struct Door {
    hierarchies: Vec<std::os::fd::OwnedFd>,
    tasks: PathBuf,
    path: String,
}

pub fn door(path: &str) -> io::Result<Door> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let mut hierarchies = Vec::new();
    let h = host();
    if !(crate::rootless::active() && !writable()) && !h.v2 {
        for mp in v1_hierarchies(h) {
            hierarchies.push(open(mp, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|x| eio(&format!("opening {}", mp.display()), path, x.into()))?);
        }
    }
    Ok(Door { hierarchies, tasks: Path::new(path.trim_start_matches('/')).join("tasks"), path: path.to_string() })
}

impl Door {
    /// Moves the calling thread in, as `Cgroup::enter` does on v1.
    pub fn enter(&self) -> io::Result<()> {
        use nix::fcntl::{openat, OFlag};
        use nix::sys::stat::Mode;
        for h in &self.hierarchies {
            let fd = openat(h, &self.tasks, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|x| eio("opening tasks", &self.path, x.into()))?;
            std::io::Write::write_all(&mut std::fs::File::from(fd), b"0").map_err(|x| eio("writing \"0\" to tasks", &self.path, x))?;
        }
        Ok(())
    }
}

/// The names of the child cgroups of `parent` (in any hierarchy berth uses).
pub fn children(parent: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in dirs(parent) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let n = e.file_name().to_string_lossy().into_owned();
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// Removes `path` where it is empty (no children, no processes); the
/// kernel refuses otherwise and that is fine: someone still uses it.
pub fn remove_if_unused(path: &str) {
    for d in dirs(path) {
        let _ = std::fs::remove_dir(d);
    }
}

/// Kills every process in cgroup `path` and below, then removes the
/// tree bottom up, in every hierarchy berth uses.
pub fn remove_tree(path: &str) -> io::Result<()> {
    for d in dirs(path) {
        remove_dir_tree(&d)?;
    }
    Ok(())
}

fn remove_dir_tree(d: &Path) -> io::Result<()> {
    if !d.exists() {
        return Ok(());
    }
    for e in std::fs::read_dir(d)?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_dir_tree(&e.path())?;
        }
    }
    for pid in read(&d.join("cgroup.procs")).split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    // Killed processes leave the cgroup as they are reaped.
    let mut last = Ok(());
    for _ in 0..50 {
        last = std::fs::remove_dir(d);
        if last.is_ok() || !d.exists() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    last
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn write(dir: &Path, file: &str, value: &str, path: &str) -> io::Result<()> {
    std::fs::write(dir.join(file), value).map_err(|x| eio(&format!("writing {value:?} to {file}"), path, x))
}

/// mkdir that tolerates the directory being there already.
fn mkdir(d: &Path) -> io::Result<()> {
    match std::fs::create_dir(d) {
        Err(x) if x.kind() != io::ErrorKind::AlreadyExists => Err(x),
        _ => Ok(()),
    }
}

/// Makes the v2 cgroup `path`, enabling our controllers top-down in each
/// ancestor's subtree_control. An ancestor that holds processes cannot
/// give its children controllers ("no internal processes"): that is an
/// error naming it, not a silent cgroup without limits.
fn create_v2(path: &str) -> io::Result<PathBuf> {
    let top = v2_root();
    let mut dir = top.clone();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let offered = read(&dir.join("cgroup.controllers"));
        let enabled = read(&dir.join("cgroup.subtree_control"));
        let want: Vec<String> = V2_WANTED
            .iter()
            .filter(|c| offered.split_whitespace().any(|o| o == **c) && !enabled.split_whitespace().any(|o| o == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if !want.is_empty() {
            let here = parts[..i].join("/");
            std::fs::write(dir.join("cgroup.subtree_control"), want.join(" ")).map_err(|x| {
                let why = if x.raw_os_error() == Some(libc::EBUSY) {
                    format!("{x}: it holds processes, so it cannot give its children controllers; choose a parent cgroup without processes")
                } else {
                    x.to_string()
                };
                let whose = if !here.is_empty() {
                    top.join(here).display().to_string()
                } else if top == Path::new(UNIFIED) {
                    "the root cgroup".into()
                } else {
                    format!("the delegated cgroup {}", top.display())
                };
                eio(&format!("enabling {} in {whose}", want.join(" ")), path, io::Error::new(x.kind(), why))
            })?;
        }
        dir.push(part);
        mkdir(&dir).map_err(|x| eio(&format!("creating {}", dir.display()), path, x))?;
    }
    Ok(dir)
}

/// Whether this process may make cgroups under berth's parent: a rootless
/// berth on cgroup v1, or on v2 without a usable subtree delegated to the
/// user, may not.
pub fn writable() -> bool {
    if !crate::rootless::active() {
        return true;
    }
    if is_v2() {
        return delegated().is_ok();
    }
    host().mounts.iter().find(|(c, _)| c == "memory").is_some_and(|(_, mp)| may_write(mp))
}

impl Cgroup {
    /// Creates (or opens) the cgroup at `path` (relative to the hierarchy
    /// root, e.g. `berth/<id>`) and applies the limits.
    pub fn create(path: &str, limits: &Limits) -> io::Result<Cgroup> {
        if crate::rootless::active() && !writable() {
            tracing::debug!("cgroup {path}: running without one (rootless, {})", rootless_summary());
            return Ok(Cgroup { imp: Imp::Without, path: path.to_string() });
        }
        // Another root's last container may remove the shared parent while
        // we build under it (remove_if_unused): start over when it does.
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::try_create(path) {
                Err(x) if tries < 5 && x.kind() == io::ErrorKind::NotFound => continue,
                Err(x) => return Err(x),
                Ok(me) => {
                    me.apply(limits)?;
                    return Ok(me);
                }
            }
        }
    }

    fn try_create(path: &str) -> io::Result<Cgroup> {
        if is_v2() {
            let dir = create_v2(path)?;
            return Ok(Cgroup { imp: Imp::V2(dir), path: path.to_string() });
        }
        let all = dirs(path);
        // The parents are made first when the first hierarchy lacks them
        // (the root's last container took them): create_dir_all would try
        // each child, fail, then make its parent.
        if all.first().and_then(|d| d.parent()).is_some_and(|p| !p.exists()) {
            for d in &all {
                if let Some(p) = d.parent() {
                    std::fs::create_dir_all(p).map_err(|x| eio(&format!("creating {}", p.display()), path, x))?;
                }
            }
        }
        for d in &all {
            std::fs::create_dir_all(d).map_err(|x| eio(&format!("creating {}", d.display()), path, x))?;
        }
        Ok(Cgroup { imp: Imp::V1, path: path.to_string() })
    }

    pub fn load(path: &str) -> Cgroup {
        let imp = if crate::rootless::active() && !writable() {
            Imp::Without
        } else if is_v2() {
            Imp::V2(v2_root().join(path))
        } else {
            Imp::V1
        };
        Cgroup { imp, path: path.to_string() }
    }

    pub fn exists(&self) -> bool {
        dirs(&self.path).iter().any(|d| d.is_dir())
    }

    /// Writes the limits that are set (`berth update` on a running one).
    pub fn set_limits(&self, l: &Limits) -> io::Result<()> {
        self.apply(l)
    }

    fn apply(&self, l: &Limits) -> io::Result<()> {
        let p = &self.path;
        match &self.imp {
            Imp::Without => {}
            Imp::V2(dir) => {
                // A controller the parent does not pass down has no files
                // here: say which one, and where it must be delegated.
                let has = |ctl: &str, file: &str| -> io::Result<()> {
                    if dir.join(file).exists() {
                        return Ok(());
                    }
                    let fix = if crate::rootless::active() {
                        format!("it is not delegated to this user ({}/cgroup.controllers lacks it); with systemd: Delegate={ctl} in user@.service", v2_root().display())
                    } else {
                        format!("the parent cgroup does not offer it; enable +{ctl} in its cgroup.subtree_control")
                    };
                    Err(e(&format!("{ctl} limit"), p, format!("the {ctl} controller is not available: {fix}")))
                };
                if let Some(m) = l.memory {
                    has("memory", "memory.max")?;
                    write(dir, "memory.max", &m.to_string(), p)?;
                    // Swap accounting may be off (no file): then there is no
                    // swap to limit. With it, no swap beyond the limit, as on v1.
                    if dir.join("memory.swap.max").exists() {
                        write(dir, "memory.swap.max", "0", p)?;
                    }
                }
                if l.cpu_quota.is_some() || l.cpu_period.is_some() {
                    has("cpu", "cpu.max")?;
                    let quota = l.cpu_quota.filter(|q| *q > 0).map_or("max".to_string(), |q| q.to_string());
                    write(dir, "cpu.max", &format!("{quota} {}", l.cpu_period.unwrap_or(100_000)), p)?;
                }
                if let Some(n) = l.pids {
                    has("pids", "pids.max")?;
                    write(dir, "pids.max", &if n > 0 { n.to_string() } else { "max".into() }, p)?;
                }
                // Rootless: the kernel loads device programs for root only,
                // and none is needed: a user namespace cannot make device
                // nodes, and the host's that init binds keep their modes.
                let rules: Vec<bpfdev::DevRule> = l.devices.iter().map(bpfdev::DevRule::from).collect();
                if !rules.is_empty() && !crate::rootless::active() {
                    bpfdev::attach(dir, &rules).map_err(|x| e("device filter", p, x))?;
                }
            }
            Imp::V1 => {
                let ctl = |c: &str| self.dir_of(c).ok_or_else(|| e(&format!("{c} limit"), p, format!("the host has no {c} hierarchy mounted")));
                if let Some(m) = l.memory {
                    let d = ctl("memory")?;
                    // memory+swap may never be below memory: raising both
                    // (`update`) must move memsw first, lowering it last.
                    // Without swap accounting there is no memsw file.
                    let memsw = "memory.memsw.limit_in_bytes";
                    let _ = write(&d, memsw, &m.to_string(), p);
                    write(&d, "memory.limit_in_bytes", &m.to_string(), p)?;
                    // Without swap the limit is the limit: a process past it is
                    // OOM-killed instead of swapping (docker sets memsw = 2x by
                    // default; our hosts have no swap, so equal is the honest value).
                    let _ = write(&d, memsw, &m.to_string(), p);
                }
                if l.cpu_quota.is_some() || l.cpu_period.is_some() {
                    let d = ctl("cpu")?;
                    if let Some(period) = l.cpu_period {
                        write(&d, "cpu.cfs_period_us", &period.to_string(), p)?;
                    }
                    if let Some(q) = l.cpu_quota {
                        write(&d, "cpu.cfs_quota_us", &if q > 0 { q.to_string() } else { "-1".into() }, p)?;
                    }
                }
                if let Some(n) = l.pids {
                    write(&ctl("pids")?, "pids.max", &if n > 0 { n.to_string() } else { "max".into() }, p)?;
                }
                if !l.devices.is_empty() {
                    self.set_v1_devices(&l.devices)?;
                }
            }
        }
        Ok(())
    }

    fn set_v1_devices(&self, rules: &[(char, i64, i64, String)]) -> io::Result<()> {
        let Some(dir) = self.dir_of("devices") else { return Ok(()) };
        // Deny everything, then allow the list: one rule per write(2), on
        // one open file.
        write(&dir, "devices.deny", "a", &self.path)?;
        let mut f = std::fs::OpenOptions::new().write(true).open(dir.join("devices.allow")).map_err(|x| eio("opening devices.allow", &self.path, x))?;
        for (t, maj, min, acc) in rules {
            let n = |v: i64| if v < 0 { "*".to_string() } else { v.to_string() };
            let rule = format!("{t} {}:{} {acc}", n(*maj), n(*min));
            io::Write::write_all(&mut f, rule.as_bytes()).map_err(|x| eio(&format!("writing {rule:?} to devices.allow"), &self.path, x))?;
        }
        Ok(())
    }

    /// The directory of this cgroup in the hierarchy of `controller` (v1),
    /// or the unified directory (v2).
    pub fn dir_of(&self, controller: &str) -> Option<PathBuf> {
        match &self.imp {
            Imp::V2(d) => Some(d.clone()),
            Imp::V1 => host().mounts.iter().find(|(c, _)| c == controller).map(|(_, mp)| mp.join(&self.path)),
            Imp::Without => None,
        }
    }

    /// The cgroup's directory, opened for clone3's CLONE_INTO_CGROUP: on
    /// cgroup v2 only (v1 has no such way in).
    pub fn v2_dir_fd(&self) -> Option<std::fs::File> {
        let Imp::V2(d) = &self.imp else { return None };
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(d).ok()
    }

    pub fn add(&self, pid: i32) -> io::Result<()> {
        match &self.imp {
            Imp::V2(d) => write(d, "cgroup.procs", &pid.to_string(), &self.path),
            Imp::V1 => {
                for d in dirs(&self.path) {
                    write(&d, "cgroup.procs", &pid.to_string(), &self.path)?;
                }
                Ok(())
            }
            Imp::Without => Ok(()),
        }
    }

    /// Moves the calling process in, for one that was not born here
    /// (v1, or a v2 kernel that refused clone3). On v1 each hierarchy's
    /// `tasks` gets "0": a thread that moves itself skips the global
    /// threadgroup lock, whose write side (any write to cgroup.procs)
    /// waits out an RCU grace period, 5 to 15 ms after a pause against
    /// 0.5 ms for this. The caller must be single-threaded, so that its
    /// one thread is the whole process.
    pub fn enter(&self) -> io::Result<()> {
        match &self.imp {
            Imp::V2(_) => self.add(super::proc::getpid()),
            Imp::V1 => {
                for d in dirs(&self.path) {
                    write(&d, "tasks", "0", &self.path)?;
                }
                Ok(())
            }
            Imp::Without => Ok(()),
        }
    }

    pub fn freeze(&self) -> io::Result<()> {
        self.set_frozen(true)
    }

    pub fn thaw(&self) -> io::Result<()> {
        self.set_frozen(false)
    }

    /// Freezes or thaws, and returns once the kernel says it is done: a
    /// paused container must not run one more instruction after `pause`.
    fn set_frozen(&self, frozen: bool) -> io::Result<()> {
        let p = &self.path;
        let what = if frozen { "freeze" } else { "thaw" };
        let done: Box<dyn Fn() -> bool> = match &self.imp {
            Imp::V2(d) => {
                write(d, "cgroup.freeze", if frozen { "1" } else { "0" }, p)?;
                let events = d.join("cgroup.events");
                let want = if frozen { "frozen 1" } else { "frozen 0" };
                Box::new(move || read(&events).lines().any(|l| l == want))
            }
            Imp::V1 => {
                let d = self.dir_of("freezer").ok_or_else(|| e(what, p, "the host has no freezer hierarchy mounted"))?;
                let want = if frozen { "FROZEN" } else { "THAWED" };
                write(&d, "freezer.state", want, p)?;
                let state = d.join("freezer.state");
                Box::new(move || read(&state).trim() == want)
            }
            Imp::Without => {
                return Err(e(what, p, "a rootless berth has no cgroup on this host (cgroup v1, or v2 without a delegated subtree): pause and unpause need one"));
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            if Instant::now() > deadline {
                return Err(e(what, p, "the kernel did not finish within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    pub fn procs(&self) -> Vec<i32> {
        let mut v: Vec<i32> = Vec::new();
        for d in dirs(&self.path) {
            for p in read(&d.join("cgroup.procs")).split_whitespace().filter_map(|s| s.parse().ok()) {
                if !v.contains(&p) {
                    v.push(p);
                }
            }
        }
        v
    }

    /// Kills every process in the cgroup (for repair of a crashed
    /// container whose monitor is gone) and waits until it is empty.
    pub fn kill_all(&self) -> io::Result<()> {
        if self.procs().is_empty() {
            return Ok(());
        }
        if let Imp::V2(d) = &self.imp
            && d.join("cgroup.kill").exists()
        {
            write(d, "cgroup.kill", "1", &self.path)?;
        } else {
            // Frozen first, so nothing forks while we kill.
            let _ = self.freeze();
            for p in self.procs() {
                let _ = super::proc::kill(p, libc::SIGKILL);
            }
            let _ = self.thaw();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.procs().is_empty() {
            if Instant::now() > deadline {
                return Err(e("kill", &self.path, "processes remain after SIGKILL"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Did the kernel's OOM killer kill a process of this cgroup?
    pub fn oom_killed(&self) -> bool {
        let read = |f: &str| self.dir_of("memory").map(|d| read(&d.join(f)));
        let count = |s: String, key: &str| s.lines().find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok()).unwrap_or(0);
        let file = if is_v2() { "memory.events" } else { "memory.oom_control" };
        read(file).map(|s| count(s, "oom_kill ")).unwrap_or(0) > 0
    }

    pub fn memory_usage(&self) -> u64 {
        let f = if is_v2() { "memory.current" } else { "memory.usage_in_bytes" };
        self.dir_of("memory").and_then(|d| read(&d.join(f)).trim().parse().ok()).unwrap_or(0)
    }

    /// One pass of rmdir over every hierarchy, a missing one counting as
    /// removed; stops at the first that fails.
    fn remove_dirs(&self) -> Result<(), (PathBuf, io::Error)> {
        for d in dirs(&self.path) {
            match std::fs::remove_dir(&d) {
                Ok(()) => {}
                Err(x) if x.kind() == io::ErrorKind::NotFound => {}
                Err(x) => return Err((d, x)),
            }
        }
        Ok(())
    }

    /// Removes the cgroup if it has no process left, at one try: false
    /// when one is still there (the kernel says busy). Cheaper than asking
    /// each hierarchy for its processes first, when they are mostly gone.
    pub fn delete_if_empty(&self) -> io::Result<bool> {
        match self.remove_dirs() {
            Ok(()) => Ok(true),
            Err((_, x)) if x.raw_os_error() == Some(libc::EBUSY) => Ok(false),
            Err((d, x)) => Err(e(&format!("removing {}", d.display()), &self.path, x)),
        }
    }

    /// Removes the cgroup; its processes must be gone.
    pub fn delete(&self) -> io::Result<()> {
        // A freshly killed process may still be leaving: the kernel says
        // busy until it has; retry briefly.
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            match self.remove_dirs() {
                Ok(()) => return Ok(()),
                Err((d, x)) if Instant::now() > deadline => return Err(e(&format!("removing {}", d.display()), &self.path, x)),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hierarchy in a temp dir: each cgroup with its cgroup.procs.
    fn tree(procs: &[(&str, &str)]) -> crate::testutil::TempDir {
        let t = crate::testutil::TempDir::new("cgdeleg");
        for (d, p) in procs {
            let d = t.path().join(d);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("cgroup.procs"), p).unwrap();
        }
        t
    }

    #[test]
    fn delegated_root_is_the_highest_writable_ancestor() {
        let t = tree(&[("", "1\n"), ("user.slice", ""), ("user.slice/user@1000.service", ""), ("user.slice/user@1000.service/app.slice", ""), ("user.slice/user@1000.service/app.slice/x.scope", "42\n")]);
        let m = t.path();
        let own = "0::/user.slice/user@1000.service/app.slice/x.scope\n";
        let ours = |p: &Path| p.strip_prefix(m).is_ok_and(|r| r.starts_with("user.slice/user@1000.service"));
        assert_eq!(find_delegated(own, m, ours), Ok(m.join("user.slice/user@1000.service")));
        // A v1 line before the unified one is skipped.
        assert_eq!(find_delegated(&format!("3:memory:/x\n{own}"), m, ours), Ok(m.join("user.slice/user@1000.service")));
    }

    #[test]
    fn no_delegated_root_says_why() {
        let t = tree(&[("", "1\n"), ("session-3.scope", "42\n"), ("user@1000.service", "7\n"), ("user@1000.service/init.scope", "8\n")]);
        let m = t.path();
        let e = find_delegated("0::/session-3.scope\n", m, |_| false).unwrap_err();
        assert!(e.contains("session-3.scope") && e.contains("systemd-run --user --scope"), "{e}");
        // Processes of its own in the delegated cgroup: no controllers for children.
        let ours = |p: &Path| p.strip_prefix(m).is_ok_and(|r| r.starts_with("user@1000.service"));
        let e = find_delegated("0::/user@1000.service/init.scope\n", m, ours).unwrap_err();
        assert!(e.contains("user@1000.service, the cgroup delegated") && e.contains("holds 1 process"), "{e}");
        assert!(find_delegated("1:name=systemd:/\n", m, ours).is_err());
    }
}
