//! Resource limits: memory (OOM), pids, cpu quota, and cgroup cleanup.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::util::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The directory of `pid`'s cgroup for a v1 controller (e.g. "cpu"), or its
/// v2 cgroup when the host is pure v2.
fn cgroup_dir(pid: i32, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("reading /proc/PID/cgroup");
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let rel = text.lines().find_map(|l| l.strip_prefix("0::")).expect("v2 line");
        return PathBuf::from(format!("/sys/fs/cgroup{rel}"));
    }
    for l in text.lines() {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, rel) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if ctrls.split(',').any(|c| c == controller) {
            let mount = if controller == "cpu" && !std::path::Path::new("/sys/fs/cgroup/cpu").exists() {
                "/sys/fs/cgroup/cpu,cpuacct".to_string()
            } else {
                format!("/sys/fs/cgroup/{controller}")
            };
            return PathBuf::from(format!("{mount}{rel}"));
        }
    }
    panic!("no {controller} cgroup for pid {pid} in:\n{text}");
}

fn read_trim(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display())).trim().to_string()
}

fn v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

#[test]
fn memory_limit_oom_kill_is_137() {
    let env = Env::new("memory_limit_oom_kill_is_137");
    let n = env.name("oom");
    // The shell keeps 100 MB of command substitution output in memory.
    let o = env.berth_timeout(
        &["run", "--name", &n, "--memory", "32m", "busybox", "sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived ${#x}"],
        SECS(60),
    );
    assert_eq!(o.code, 137, "{o}");
    assert!(!o.stdout.contains("survived"), "{o}");
    assert_eq!(env.inspect_f(&n, "{{.State.OOMKilled}}"), "true");
    assert_eq!(env.inspect_f(&n, "{{.State.ExitCode}}"), "137");
    assert_eq!(env.inspect_f(&n, "{{.HostConfig.Memory}}"), "33554432");

    // Within the limit, the same kind of work succeeds and is not OOMKilled.
    let m = env.name("fits");
    let o = env.berth(&["run", "--name", &m, "--memory", "32m", "busybox", "sh", "-c", "x=$(head -c 1000000 /dev/zero | tr '\\0' a); echo ${#x}"]);
    assert_eq!((o.code, o.out()), (0, "1000000"), "{o}");
    assert_eq!(env.inspect_f(&m, "{{.State.OOMKilled}}"), "false");
}

#[test]
fn pids_limit_stops_fork_loop() {
    let env = Env::new("pids_limit_stops_fork_loop");
    let limit = 20;
    let o = env.berth_timeout(
        &["run", "--rm", "--pids-limit", &limit.to_string(), "busybox", "sh", "-c", "i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); echo $i; done"],
        SECS(60),
    );
    let started: u32 = o.stdout.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
    assert!(started < limit, "{started} background processes started with --pids-limit {limit}: {o}");
    assert!(started >= limit / 2, "the loop forked only {started} times; expected to reach close to the limit: {o}");
    assert_ne!(o.code, 0, "the shell fails when fork fails: {o}");
    assert!(o.stderr.contains("fork"), "{o}");

    // Without a limit, the same loop (smaller) runs to its end.
    let o = env.berth_timeout(&["run", "--rm", "busybox", "sh", "-c", "i=0; while [ $i -lt 30 ]; do sleep 30 & i=$((i+1)); done; echo $i"], SECS(60));
    assert_eq!((o.code, o.out()), (0, "30"), "{o}");
}

#[test]
fn cgroup_files_hold_the_limits_and_go_away() {
    let env = Env::new("cgroup_files_hold_the_limits_and_go_away");
    let n = env.name("lim");
    let id = env.run_detached(&n, &["--memory", "32m", "--cpus", "0.5", "--pids-limit", "64", "busybox", "sleep", "300"]);
    let pid = env.pid(&n);
    if v2() {
        let d = cgroup_dir(pid, "");
        assert_eq!(read_trim(d.join("cpu.max")), "50000 100000");
        assert_eq!(read_trim(d.join("memory.max")), "33554432");
        assert_eq!(read_trim(d.join("pids.max")), "64");
    } else {
        let cpu = cgroup_dir(pid, "cpu");
        assert!(cpu.to_string_lossy().contains(&id), "cpu cgroup {} is the container's own", cpu.display());
        assert_eq!(read_trim(cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read_trim(cpu.join("cpu.cfs_period_us")), "100000");
        let mem = cgroup_dir(pid, "memory");
        assert_eq!(read_trim(mem.join("memory.limit_in_bytes")), (32u64 << 20).to_string());
        let pids = cgroup_dir(pid, "pids");
        assert_eq!(read_trim(pids.join("pids.max")), "64");
        let procs = read_trim(pids.join("cgroup.procs"));
        assert!(procs.split_whitespace().any(|p| p == pid.to_string()), "pid {pid} in {procs}");
    }
    let v = env.inspect(&n);
    assert_eq!(v["HostConfig"]["NanoCpus"], 500_000_000u64);
    assert_eq!(v["HostConfig"]["PidsLimit"], 64);
    assert_eq!(v["HostConfig"]["Memory"], 33_554_432u64);

    let before = cgroup_dirs_of(&id);
    assert!(!before.is_empty(), "cgroup dirs of {id} expected under /sys/fs/cgroup/*/berth/");
    env.ok(&["rm", "-f", &n]);
    let mut left = Vec::new();
    let gone = wait_until(SECS(5), || {
        left = cgroup_dirs_of(&id);
        left.is_empty()
    });
    assert!(gone, "cgroup dirs remain after rm -f: {left:?}");
}

/// Init and an exec'd process each move themselves into the container's
/// cgroup (v1: by writing "0" to each hierarchy's `tasks`; v2: born there):
/// both sit in it in every hierarchy berth uses, and what an exec starts
/// counts against the container's pids limit.
#[test]
fn init_and_exec_sit_in_the_containers_cgroup_in_every_hierarchy() {
    let env = Env::new("init_and_exec_sit_in_the_containers_cgroup_in_every_hierarchy");
    let n = env.name("cg");
    let id = env.run_detached(&n, &["--pids-limit", "6", "busybox", "sleep", "300"]);
    let pid = env.pid(&n);
    let init = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("reading init's cgroup");
    let ours: Vec<&str> = init.lines().filter(|l| l.contains(&id)).collect();
    let want: &[&str] = if v2() { &[""] } else { &["memory", "cpu", "cpuacct", "pids", "freezer", "devices", "blkio"] };
    for c in want {
        assert!(
            ours.iter().any(|l| l.split(':').nth(1).is_some_and(|cs| c.is_empty() || cs.split(',').any(|x| x == *c))),
            "init is not in the container's {c} cgroup:\n{init}"
        );
    }
    // No cgroup namespace: the exec'd process sees host paths, as we do.
    let o = env.berth(&["exec", &n, "cat", "/proc/self/cgroup"]);
    assert!(o.ok(), "{o}");
    let exec_ours: Vec<&str> = o.stdout.lines().filter(|l| l.contains(&id)).collect();
    assert_eq!(exec_ours, ours, "the exec'd process is in the same cgroups as init");
    // init, the exec's waiting helper and its shell take 3 of the 6: ten
    // sleeps more cannot all start.
    let o = env.berth_timeout(&["exec", &n, "sh", "-c", "i=0; while [ $i -lt 10 ]; do sleep 30 </dev/null >/dev/null 2>&1 & i=$((i+1)); done; echo $i"], SECS(30));
    assert_ne!(o.code, 0, "ten forks under --pids-limit 6 must fail: {o}");
    assert!(o.stderr.contains("fork"), "{o}");
}

#[test]
fn cgroup_removed_after_container_exits_and_is_removed() {
    let env = Env::new("cgroup_removed_after_container_exits_and_is_removed");
    let n = env.name("short");
    let o = env.berth(&["run", "--name", &n, "--memory", "16m", "busybox", "true"]);
    assert!(o.ok(), "{o}");
    let id = env.full_id(&n);
    env.ok(&["rm", &n]);
    let gone = wait_until(SECS(5), || cgroup_dirs_of(&id).is_empty());
    assert!(gone, "cgroup dirs remain after rm: {:?}", cgroup_dirs_of(&id));
    // --rm cleans up as well.
    let o = env.berth(&["run", "--rm", "--name", &env.name("rm"), "--pids-limit", "10", "busybox", "true"]);
    assert!(o.ok(), "{o}");
    let left: Vec<String> = std::fs::read_dir(env.root.join("containers"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    for id in &left {
        assert!(cgroup_dirs_of(id).is_empty(), "cgroup of removed container {id} remains");
    }
    assert!(left.is_empty(), "--rm left container dirs: {left:?}");
}

#[test]
fn cpu_quota_throttles_a_busy_loop() {
    let env = Env::new("cpu_quota_throttles_a_busy_loop");
    let n = env.name("busy");
    env.run_detached(&n, &["--cpus", "0.5", "busybox", "sh", "-c", "while :; do :; done"]);
    let pid = env.pid(&n);
    let t0 = Instant::now();
    let usage = |pid: i32| -> u64 {
        if v2() {
            let s = read_trim(cgroup_dir(pid, "").join("cpu.stat"));
            s.lines().find_map(|l| l.strip_prefix("usage_usec ")).unwrap().parse::<u64>().unwrap() * 1000
        } else {
            read_trim(cgroup_dir(pid, "cpuacct").join("cpuacct.usage")).parse().unwrap()
        }
    };
    let u0 = usage(pid);
    sleep_ms(2000);
    let u1 = usage(pid);
    let wall = t0.elapsed().as_nanos() as u64;
    let used = u1 - u0;
    // At most half a CPU (plus a period of slack).
    assert!(used <= wall / 2 + 150_000_000, "--cpus 0.5 used {} ms of CPU in {} ms", used / 1_000_000, wall / 1_000_000);
    assert!(used > 50_000_000, "the busy loop hardly ran: {} ms", used / 1_000_000);
}

#[test]
fn a_monitor_killed_hard_leaves_a_cgroup_that_check_repairs() {
    let env = Env::new("a_monitor_killed_hard_leaves_a_cgroup_that_check_repairs");
    let n = env.name("crash");
    let id = env.run_detached(&n, &["--memory", "64m", "busybox", "sleep", "600"]);
    let pid = env.pid(&n);
    let cg = format!("{}/{id}", env.cgroup_parent());
    assert!(!cgroup_dirs_of(&id).is_empty(), "the container's cgroup exists");
    assert!(std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap().contains(&cg), "init is in {cg}");
    assert_eq!(env.ok(&["system", "check"]), "no leftovers");

    // The monitor dies without a word (its init follows it: parent-death signal).
    let monitor = *pids_with_env("BERTH_ROOT", &env.root)
            .iter()
            .find(|p| String::from_utf8_lossy(&std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default()).contains(&format!("monitor\0{id}")))
            .expect("the monitor process");
    kill(monitor);
    assert!(wait_until(SECS(5), || !std::path::Path::new(&format!("/proc/{monitor}")).exists()), "monitor gone");

    let o = env.berth(&["system", "check"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stdout.contains(&format!("cgroup {cg}")) && o.stdout.contains("monitor is gone"), "{o}");

    let o = env.berth(&["system", "check", "--repair"]);
    assert_eq!(o.code, 0, "{o}");
    assert!(wait_until(SECS(5), || !std::path::Path::new(&format!("/proc/{pid}")).exists()), "repair killed the container's init");
    assert!(cgroup_dirs_of(&id).is_empty(), "repair removed the cgroup: {:?}", cgroup_dirs_of(&id));
    assert_eq!(env.ok(&["system", "check"]), "no leftovers");
    assert_eq!(env.status(&n), "exited");
}

#[test]
fn cgroup_parent_places_the_container() {
    let env = Env::new("cgroup_parent_places_the_container");
    let parent = format!("{}-lab", env.name("cgp"));
    let n = env.name("placed");
    let id = env.run_detached(&n, &["--cgroup-parent", &format!("/{parent}/db"), "--pids-limit", "32", "busybox", "sleep", "600"]);
    let text = std::fs::read_to_string(format!("/proc/{}/cgroup", env.pid(&n))).unwrap();
    assert!(text.contains(&format!("/{parent}/db/{id}")), "{text}");
    assert_eq!(env.inspect_f(&n, "{{.HostConfig.CgroupParent}}"), format!("/{parent}/db"));
    // The limit is in force there.
    let o = env.berth(&["exec", &n, "sh", "-c", "for i in $(seq 40); do sleep 30 & done; echo started"]);
    assert!(o.stderr.contains("fork") || !o.ok(), "pids limit applies under the given parent: {o}");
    // A crash there is found too.
    assert_eq!(env.ok(&["system", "check"]), "no leftovers");
    env.ok(&["rm", "-f", &n]);
    assert!(wait_until(SECS(5), || cgroup_dirs_of_under(&parent, &id).is_empty()), "the container's cgroup goes with it");
    // The user's parent is theirs: berth leaves it (as docker does); the test removes it.
    for d in cgroup_hierarchy_dirs(&parent) {
        let _ = std::fs::remove_dir(d.join("db"));
        let _ = std::fs::remove_dir(&d);
    }
    assert!(cgroup_hierarchy_dirs(&parent).is_empty());
    // A parent outside the hierarchy is refused, naming the flag.
    let o = env.berth(&["run", "--rm", "--cgroup-parent", "../escape", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("--cgroup-parent") && o.stderr.contains(".."), "{o}");
}

fn cgroup_dirs_of_under(parent: &str, id: &str) -> Vec<PathBuf> {
    cgroup_hierarchy_dirs(parent).into_iter().map(|d| d.join("db").join(id)).filter(|d| d.exists()).collect()
}

#[test]
fn system_info_names_the_cgroup_version_and_driver() {
    let env = Env::new("system_info_names_the_cgroup_version_and_driver");
    // The version is what the filesystem at /sys/fs/cgroup is.
    let fs = std::process::Command::new("stat").args(["-fc", "%T", "/sys/fs/cgroup"]).output().unwrap();
    let want = if String::from_utf8_lossy(&fs.stdout).trim() == "cgroup2fs" { "2" } else { "1" };
    let o = env.ok(&["system", "info"]);
    assert!(o.lines().any(|l| l.trim() == format!("Cgroup Version: {want}")), "{o}");
    assert!(o.lines().any(|l| l.trim() == "Cgroup Driver: cgroupfs"), "{o}");
    assert!(o.lines().any(|l| l.trim() == format!("Cgroup Parent: {}", env.cgroup_parent())), "{o}");
    let f = env.dir.join("info.rhai");
    std::fs::write(&f, "let i = system_info();\nprint(`${i.cgroup_version} ${i.cgroup_driver}`);\n").unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert_eq!((o.code, o.out()), (0, format!("{want} cgroupfs").as_str()), "{o}");
}

#[test]
fn update_changes_a_running_containers_limits_and_they_hold() {
    let env = Env::new("update_limits");
    let n = env.name("u");
    env.run_detached(&n, &["busybox", "sleep", "300"]);
    let pid: i32 = env.inspect_f(&n, "{{.State.Pid}}").parse().unwrap();
    let o = env.berth(&["update", "--memory", "32m", "--pids-limit", "30", "--cpus", "0.5", "--restart", "on-failure:3", &n]);
    assert!(o.ok() && o.out() == n, "{o}");
    let (mem, pids, cpu) = if v2() {
        (read_trim(cgroup_dir(pid, "memory").join("memory.max")), read_trim(cgroup_dir(pid, "pids").join("pids.max")), read_trim(cgroup_dir(pid, "cpu").join("cpu.max")))
    } else {
        (read_trim(cgroup_dir(pid, "memory").join("memory.limit_in_bytes")), read_trim(cgroup_dir(pid, "pids").join("pids.max")), read_trim(cgroup_dir(pid, "cpu").join("cpu.cfs_quota_us")))
    };
    assert_eq!((mem.as_str(), pids.as_str()), ("33554432", "30"), "the cgroup holds the new limits");
    assert!(cpu.starts_with("50000"), "cpu quota: {cpu}");
    assert_eq!(env.inspect_f(&n, "{{.HostConfig.Memory}}"), "33554432", "inspect shows it");
    assert_eq!(env.inspect_f(&n, "{{.HostConfig.RestartPolicy.Name}}"), "on-failure");
    // The new limit is enforced: what fitted before is OOM-killed now.
    let o = env.berth_timeout(&["exec", &n, "sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived ${#x}"], SECS(60));
    assert!(!o.stdout.contains("survived"), "{o}");
    // A restart keeps them.
    env.ok(&["restart", "-t", "0", &n]);
    let pid: i32 = env.inspect_f(&n, "{{.State.Pid}}").parse().unwrap();
    let mem = read_trim(cgroup_dir(pid, "memory").join(if v2() { "memory.max" } else { "memory.limit_in_bytes" }));
    assert_eq!(mem, "33554432", "after a restart");
    // Mistakes say what to give.
    let o = env.berth(&["update", &n]);
    assert!(o.code == 125 && o.stderr.contains("--memory"), "{o}");
    let o = env.berth(&["update", "--memory", "1k", &n]);
    assert!(o.code == 125 && o.stderr.contains("minimum"), "{o}");
    // From a script.
    let f = env.dir.join("u.rhai");
    std::fs::write(&f, format!("let c = container(\"{n}\");\nc.update(#{{ memory: \"48m\", pids_limit: 40 }});\nprint(c.inspect().HostConfig.Memory);\n")).unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert!(o.ok() && o.out() == "50331648", "{o}");
    let pid: i32 = env.inspect_f(&n, "{{.State.Pid}}").parse().unwrap();
    assert_eq!(read_trim(cgroup_dir(pid, "pids").join("pids.max")), "40");
}

/// Issue 15 "Load": a container that prints without pause must not fill
/// the disk. ~50 MB of output with max-size=1m max-file=2 leaves about
/// 2 MB in at most two files, and `berth logs` shows the newest lines.
#[test]
fn log_rotation_bounds_what_a_chatty_container_leaves_on_disk() {
    let env = Env::new("log_rotation_bounds_what_a_chatty_container_leaves_on_disk");
    let n = env.name("chatty");
    // 50 000 lines of 1000 bytes, then a last line to look for.
    let script = "s=$(head -c 1000 /dev/zero | tr '\\0' x); yes \"$s\" | head -n 50000; echo last-line";
    let id = env.ok(&["run", "-d", "--name", &n, "--log-opt", "max-size=1m", "--log-opt", "max-file=2", "busybox", "sh", "-c", script]);
    let o = env.berth_timeout(&["wait", &n], SECS(240));
    assert_eq!(o.out(), "0", "{o}");
    let dir = env.root.join("containers").join(&id);
    let logs: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("log.jsonl"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .collect();
    let total: u64 = logs.iter().map(|(_, s)| s).sum();
    assert!(logs.len() <= 2, "max-file=2 keeps two files: {logs:?}");
    assert!(total <= (2 << 20) + (64 << 10), "{total} bytes of log on disk with max-size=1m max-file=2: {logs:?}");
    let out = env.berth_timeout(&["logs", &n], SECS(60));
    assert!(out.ok(), "{out}");
    let lines = out.lines();
    assert_eq!(lines.last().copied(), Some("last-line"), "the tail is there");
    assert!(lines.len() > 500, "about 2 MB of lines are kept, {} shown", lines.len());
    assert!(lines[..lines.len() - 1].iter().all(|l| l.len() == 1000 && l.bytes().all(|b| b == b'x')), "whole lines, in order");
    // -f reads the rotated file first too, then stops with the container.
    let f = env.berth_timeout(&["logs", "-f", &n], SECS(60));
    assert_eq!(f.stdout, out.stdout, "logs -f shows what logs shows");
    let v = env.inspect(&n);
    assert_eq!(v["HostConfig"]["LogConfig"], serde_json::json!({"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}));

    // Without options: the default limit, as inspect shows it.
    let d = env.name("default");
    env.ok(&["create", "--name", &d, "busybox", "true"]);
    assert_eq!(env.inspect(&d)["HostConfig"]["LogConfig"]["Config"], serde_json::json!({"max-size": "20m", "max-file": "5"}));
    // A mistake is named, with the known keys.
    let o = env.berth(&["create", "--log-opt", "max-size=lots", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("max-size") && o.stderr.contains("10m"), "{o}");
    let o = env.berth(&["create", "--log-opt", "compress=true", "busybox", "true"]);
    assert!(o.stderr.contains("unknown log opt") && o.stderr.contains("max-file"), "{o}");
    // A script names them as a map.
    let f = env.dir.join("log-opts.rhai");
    std::fs::write(&f, "let c = run(\"busybox\", #{ cmd: [\"true\"], log_opts: #{ \"max-size\": \"3m\", \"max-file\": 4 } });\nc.wait();\nlet l = c.inspect().HostConfig.LogConfig.Config;\nprint(`${l[\"max-size\"]} ${l[\"max-file\"]}`);\nc.remove();\n").unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert_eq!((o.code, o.out()), (0, "3m 4"), "{o}");
}

/// Kills every process of the container's pids cgroup when dropped, so a
/// fork bomb never outlives a failed test (Env's own clean-up goes through
/// berth, which is what this test doubts).
/// Killing its init first ends the whole pid namespace at once.
struct BombGuard(i32, Option<PathBuf>);

impl Drop for BombGuard {
    fn drop(&mut self) {
        if self.0 > 0 && std::fs::read_to_string(format!("/proc/{}/status", self.0)).is_ok() {
            kill(self.0);
        }
        let Some(d) = &self.1 else { return };
        let _ = std::fs::write(d.join("cgroup.kill"), "1");
        for _ in 0..50 {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            if procs.trim().is_empty() {
                return;
            }
            for p in procs.split_whitespace().filter_map(|s| s.parse().ok()) {
                kill(p);
            }
            sleep_ms(100);
        }
    }
}

/// Issue 15 "Load": a fork bomb under the default settings leaves the host
/// and berth usable. The default pids limit (2048) holds it in its cgroup;
/// exec, run and rm -f still work beside it, and nothing is left.
#[test]
fn fork_bomb_under_default_settings_leaves_berth_usable() {
    let env = Env::new("fork_bomb_under_default_settings_leaves_berth_usable");
    let probe = env.name("probe");
    env.run_detached(&probe, &["busybox", "sleep", "300"]);
    // The limit must be in place before anything forks without end: a
    // container without options shows it, or the bomb is not started.
    let ppid = env.pid(&probe);
    assert_eq!(read_trim(cgroup_dir(ppid, "pids").join("pids.max")), "2048", "no default pids limit: not starting the fork bomb");
    assert_eq!(env.inspect(&probe)["HostConfig"]["PidsLimit"], 2048);

    let bomb = env.name("bomb");
    let id = env.ok(&["run", "-d", "--name", &bomb, "busybox", "sh", "-c", "b() { b | b & }; b; sleep 300"]);
    let pids = cgroup_dirs_of(&id).into_iter().find(|d| d.join("pids.max").exists());
    let _guard = BombGuard(env.pid(&bomb), pids.clone());
    let pids = pids.expect("the bomb's pids cgroup");
    assert_eq!(read_trim(pids.join("pids.max")), "2048");
    // It really runs into its limit.
    let mut peak = 0u64;
    let hit = wait_until(SECS(30), || {
        peak = peak.max(read_trim(pids.join("pids.current")).parse().unwrap_or(0));
        peak >= 1500
    });
    assert!(hit, "the bomb reached only {peak} pids");

    // berth beside it: exec, a new container, ps.
    let t = Instant::now();
    let o = env.berth_timeout(&["exec", &probe, "true"], SECS(20));
    assert!(o.ok(), "exec beside the bomb: {o}");
    let o = env.berth_timeout(&["run", "--rm", "busybox", "echo", "still-here"], SECS(30));
    assert_eq!((o.code, o.out()), (0, "still-here"), "{o}");
    assert!(env.berth_timeout(&["ps"], SECS(20)).ok());
    assert!(t.elapsed() < SECS(30), "berth took {:?} beside the bomb", t.elapsed());
    // The host forks too.
    assert!(std::process::Command::new("true").status().map(|s| s.success()).unwrap_or(false));
    assert!(read_trim(pids.join("pids.current")).parse::<u64>().unwrap_or(0) <= 2048);

    // rm -f takes the bomb with every process it forked.
    let o = env.berth_timeout(&["rm", "-f", &bomb], SECS(60));
    assert!(o.ok(), "rm -f of the bomb: {o}");
    assert!(wait_until(SECS(10), || cgroup_dirs_of(&id).is_empty()), "the bomb's cgroups are left: {:?}", cgroup_dirs_of(&id));
    assert!(env.berth(&["inspect", &bomb]).code != 0, "the bomb is gone");
    env.ok(&["rm", "-f", &probe]);
    let check = env.berth(&["system", "check"]);
    assert!(check.ok(), "{check}");
}
