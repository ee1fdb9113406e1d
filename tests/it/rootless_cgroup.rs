//! Rootless limits. On cgroup v2 (the VM) the test delegates a subtree to
//! its user the way systemd's Delegate=yes does for user@UID.service, and
//! the user's berth enforces limits there; on v1 (our hosts) a user cannot
//! be given one, and berth says once that it ignores them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::rootless::User;
use crate::util::*;

fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A subtree owned by the user, as systemd makes user@UID.service: the
/// directory and the files that delegation hands over are the user's, and
/// the user's processes live in a leaf child (`session`), never in the
/// delegated cgroup itself. Dropped: every process in it is killed and the
/// cgroups are removed.
struct Delegated {
    dir: PathBuf,
}

impl Delegated {
    fn new(u: &User) -> Delegated {
        let d = Delegated { dir: PathBuf::from(format!("/sys/fs/cgroup/brl{}-{}.service", std::process::id(), u.uid)) };
        // The root passes the controllers down, as systemd's slices do.
        std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids").unwrap();
        for dir in [d.dir.clone(), d.session()] {
            std::fs::create_dir(&dir).unwrap();
            for p in [dir.clone(), dir.join("cgroup.procs"), dir.join("cgroup.subtree_control"), dir.join("cgroup.threads")] {
                std::os::unix::fs::chown(&p, Some(u.uid), Some(u.uid)).unwrap();
            }
        }
        d
    }

    fn session(&self) -> PathBuf {
        self.dir.join("session")
    }

    /// The user's berth, started inside `session` (as a process of the
    /// user's systemd manager would be).
    fn berth(&self, u: &User, args: &[&str]) -> Out {
        let uid = u.uid.to_string();
        let child = Command::new("sh")
            .args(["-c", "echo $$ > \"$0\" && exec \"$@\""])
            .arg(self.session().join("cgroup.procs"))
            .args(["setpriv", "--reuid", &uid, "--regid", &uid, "--init-groups", "--reset-env"])
            .arg(&u.bin)
            .args(args)
            .current_dir(&u.home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        collect(child, Duration::from_secs(90))
    }

    fn ok(&self, u: &User, args: &[&str]) -> String {
        let o = self.berth(u, args);
        assert!(o.ok(), "berth {} as {} in {}: {o}", args.join(" "), u.name, self.session().display());
        o.stdout
    }

    /// The cgroup of container `id`: berth's parent for the user's root
    /// sits directly in the delegated cgroup.
    fn of(&self, id: &str) -> Option<PathBuf> {
        std::fs::read_dir(&self.dir).ok()?.flatten().map(|e| e.path().join(id)).find(|p| p.is_dir())
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Monitors, containers and the pause process all live below.
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        let empty = || std::fs::read_to_string(self.dir.join("cgroup.events")).map_or(true, |e| e.lines().any(|l| l == "populated 0"));
        wait_until(Duration::from_secs(10), empty);
        remove_tree(&self.dir);
    }
}

fn remove_tree(d: &Path) {
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path());
        }
    }
    let _ = std::fs::remove_dir(d);
}

fn import_busybox(env: &Env, berth: impl Fn(&[&str]) -> String) {
    let tar = env.dir.join("busybox.tar");
    std::fs::copy(busybox_tar(), &tar).unwrap();
    Command::new("chmod").args(["a+r", tar.to_str().unwrap()]).status().unwrap();
    berth(&["image", "import", "-c", "CMD [\"sh\"]", tar.to_str().unwrap(), "busybox:latest"]);
}

const FORKS: &str = "i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); echo $i; done";

#[test]
fn rootless_cgroup_limits_hold_in_a_delegated_subtree() {
    let env = Env::bare("rootless_cgroup");
    let u = User::new(&env, "c");
    if !v2() {
        // v1: nothing can be delegated; the limits are ignored, said once.
        let info = u.ok(&["system", "info"]);
        assert!(info.contains("cgroups: none (limits ignored): cgroup v1"), "{info}");
        import_busybox(&env, |a| u.ok(a));
        let o = u.berth(&["run", "--rm", "--network", "none", "-m", "32m", "--pids-limit", "10", "busybox", "echo", "ran"]);
        assert_eq!((o.code, o.out()), (0, "ran"), "{o}");
        assert_eq!(o.stderr.matches("warning").count(), 1, "one warning: {o}");
        assert!(o.stderr.contains("ignored"), "{o}");
        return;
    }
    let d = Delegated::new(&u);

    // Without the subtree (a berth outside it): none, and why.
    let info = u.ok(&["system", "info"]);
    assert!(info.contains("cgroups: none (limits ignored): no cgroup from"), "{info}");
    // Its pause process holds the namespace for the runs below, outside
    // the subtree: the next berth must start its own inside.
    u.ok(&["system", "reset", "-f"]);
    Command::new("pkill").args(["-KILL", "-u", &u.name]).status().unwrap();
    assert!(wait_until(Duration::from_secs(5), || !Command::new("pgrep").args(["-u", &u.name]).status().unwrap().success()));

    let info = d.ok(&u, &["system", "info"]);
    let ctls = info.split(&format!("cgroups: v2, delegated root {} (controllers: ", d.dir.display())).nth(1).and_then(|r| r.split(')').next()).unwrap_or_else(|| panic!("{info}"));
    assert!(ctls.contains("memory") && ctls.contains("pids"), "{info}");
    import_busybox(&env, |a| d.ok(&u, a));

    // Limits in the container's cgroup, below the delegated root.
    let id = d.ok(&u, &["run", "-d", "--network", "none", "--name", "lim", "-m", "32m", "--pids-limit", "20", "busybox", "sleep", "300"]).trim().to_string();
    let cg = d.of(&id).unwrap_or_else(|| panic!("no cgroup of {id} under {}", d.dir.display()));
    assert_eq!(std::fs::read_to_string(cg.join("memory.max")).unwrap().trim(), "33554432");
    assert_eq!(std::fs::read_to_string(cg.join("pids.max")).unwrap().trim(), "20");
    let pid = d.ok(&u, &["inspect", "-f", "{{.State.Pid}}", "lim"]).trim().to_string();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(own.trim().ends_with(&id), "init sits in its cgroup: {own}");
    // Stats and pause through the same cgroup.
    let s: serde_json::Value = serde_json::from_str(&d.ok(&u, &["stats", "--no-stream", "--format", "json", "lim"])).unwrap();
    assert_eq!(s[0]["memory_limit"], 33554432, "{s}");
    d.ok(&u, &["pause", "lim"]);
    assert!(std::fs::read_to_string(cg.join("cgroup.events")).unwrap().contains("frozen 1"));
    d.ok(&u, &["unpause", "lim"]);
    assert!(std::fs::read_to_string(cg.join("cgroup.events")).unwrap().contains("frozen 0"));
    // exec joins it too.
    let o = d.ok(&u, &["exec", "lim", "cat", "/proc/self/cgroup"]);
    assert!(o.trim() == "0::/" || o.trim().ends_with(&id), "exec runs in the container's cgroup: {o}");
    d.ok(&u, &["rm", "-f", "lim"]);
    assert!(!cg.exists(), "the container's cgroup is removed with it");

    // Past the memory limit: OOM-killed, as the cgroup's events say.
    // (tail keeps all of a file without newlines.)
    let o = d.berth(&u, &["run", "--name", "oom", "--network", "none", "-m", "32m", "busybox", "tail", "/dev/zero"]);
    assert_eq!(o.code, 137, "{o}");
    assert!(!o.stderr.contains("warning"), "{o}");
    assert_eq!(d.ok(&u, &["inspect", "-f", "{{.State.OOMKilled}}", "oom"]).trim(), "true");
    d.ok(&u, &["rm", "oom"]);

    // The pids limit holds: the loop's forks fail before 100.
    let o = d.berth(&u, &["run", "--rm", "--network", "none", "--pids-limit", "20", "busybox", "sh", "-c", FORKS]);
    let started: u32 = o.stdout.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
    assert!((10..20).contains(&started) && o.stderr.contains("fork"), "{started} forks with --pids-limit 20: {o}");

    // Nothing of berth's is left in the subtree but the session and the
    // root's own parent, empty (it stays between containers, as docker's).
    let has_children = |p: &std::path::Path| std::fs::read_dir(p).into_iter().flatten().flatten().any(|e| e.path().is_dir());
    let left = || -> Vec<String> {
        std::fs::read_dir(&d.dir).unwrap().flatten().filter(|e| e.path().is_dir()).filter(|e| !e.file_name().to_string_lossy().starts_with("berth-") || has_children(&e.path())).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n != "session").collect()
    };
    assert!(wait_until(Duration::from_secs(5), || left().is_empty()), "{:?}", left());
}
