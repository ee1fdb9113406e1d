//! Rootless mode: a user without root runs berth inside a user namespace of
//! its own, as podman does. A small pause process holds that namespace and
//! its mount namespace; every berth process of the user joins both first
//! thing in `main` (while it has one thread, as setns into a user namespace
//! requires), and is root there: the user's own id is 0, and the ids of its
//! subordinate ranges (/etc/subuid, /etc/subgid, mapped with newuidmap and
//! newgidmap) follow from 1. Without a subuid entry only the user's own id
//! is mapped, and files of other owners in images cannot be made.
//!
//! State lives in `$XDG_DATA_HOME/berth` (`~/.local/share/berth`), runtime
//! files in `$XDG_RUNTIME_DIR/berth` or `/tmp/berth-UID`: never rootful
//! berth's. The mode is inherited through `BERTH_ROOTLESS`.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};

/// Set in every berth process of a rootless user, inside the namespace.
pub const ENV: &str = "BERTH_ROOTLESS";

/// Whether this berth runs rootless (inside the user's namespace).
pub fn active() -> bool {
    std::env::var_os(ENV).is_some()
}

/// The network namespace a rootless berth treats as the host's (see
/// network::rootless); None when rootful.
pub fn netns() -> Option<PathBuf> {
    if !active() {
        return None;
    }
    Some(PathBuf::from(std::env::var_os("BERTH_RUN")?).join("netns-rootless"))
}

/// `netns()` once it is made: a namespace bind-mounted there (a file left
/// from an earlier pause process, whose mounts died with it, is not one).
pub fn netns_made() -> Option<PathBuf> {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    netns().filter(|p| nix::sys::statfs::statfs(p).is_ok_and(|s| s.filesystem_type().0 as i64 == NSFS_MAGIC))
}

/// Runs `f` in the host's network namespace as berth sees it: for a
/// rootless berth the user's rootless one once it exists (on a thread of
/// its own, since setns changes only the calling thread), else right here.
pub fn in_host_netns<T: Send>(f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let Some(p) = netns_made() else { return Ok(f()) };
    let ns = std::fs::File::open(&p)?;
    std::thread::scope(|s| {
        s.spawn(move || {
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::other(format!("joining the rootless network namespace {}: {}", p.display(), std::io::Error::last_os_error())));
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("a thread in the rootless network namespace panicked")))
    })
}

/// The id mapping in use: (subordinate start, count) of uids and gids, or
/// None for the single-id fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub uid: u32,
    pub gid: u32,
    pub sub_uids: Option<(u32, u32)>,
    pub sub_gids: Option<(u32, u32)>,
}

/// The first `name:start:count` (or `uid:start:count`) line of a subid file
/// for this user.
pub fn subids(text: &str, user: &str, id: u32) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != user && who != id.to_string() {
            return None;
        }
        Some((start.parse().ok()?, count.parse().ok().filter(|c: &u32| *c > 0)?))
    })
}

fn user_name(uid: u32) -> String {
    // Single-threaded here: getpwuid's static buffer is safe to read.
    let pw = unsafe { libc::getpwuid(uid) };
    if pw.is_null() {
        return uid.to_string();
    }
    unsafe { std::ffi::CStr::from_ptr((*pw).pw_name) }.to_string_lossy().into_owned()
}

fn home(uid: u32) -> PathBuf {
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h);
    }
    let pw = unsafe { libc::getpwuid(uid) };
    if pw.is_null() {
        return PathBuf::from("/tmp");
    }
    PathBuf::from(unsafe { std::ffi::CStr::from_ptr((*pw).pw_dir) }.to_string_lossy().into_owned())
}

/// Where a rootless user's state and runtime files go by default.
pub fn default_paths(uid: u32) -> (PathBuf, PathBuf) {
    let data = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).unwrap_or_else(|| home(uid).join(".local/share"));
    let run = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_dir() => d.join("berth"),
        _ => PathBuf::from(format!("/tmp/berth-{uid}")),
    };
    (data.join("berth"), run)
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("rootless berth: {what}: {e}")
}

/// First thing in `main`: a berth started by a user without root joins
/// (or makes) the user's namespace. Nothing for root, or when already in.
pub fn enter() -> Result<(), String> {
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return Ok(());
    }
    let egid = unsafe { libc::getegid() };
    let (root, run) = default_paths(euid);
    // SAFETY: single-threaded, before anything reads the environment.
    unsafe {
        if std::env::var_os("BERTH_ROOT").is_none() {
            std::env::set_var("BERTH_ROOT", &root);
        }
        if std::env::var_os("BERTH_RUN").is_none() {
            std::env::set_var("BERTH_RUN", &run);
        }
    }
    let run = PathBuf::from(std::env::var_os("BERTH_RUN").unwrap_or_default());
    std::fs::create_dir_all(&run).map_err(|e| err(&format!("creating {}", run.display()), e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700));
    }
    let pidfile = run.join("pause.pid");
    let alive = std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse::<i32>().ok()).filter(|p| holds_namespace(*p, euid));
    let pid = match alive {
        Some(p) => p,
        None => {
            let m = Mapping {
                uid: euid,
                gid: egid,
                sub_uids: std::fs::read_to_string("/etc/subuid").ok().and_then(|t| subids(&t, &user_name(euid), euid)),
                sub_gids: std::fs::read_to_string("/etc/subgid").ok().and_then(|t| subids(&t, &user_name(euid), euid)),
            };
            let p = spawn_pause(&m)?;
            let _ = std::fs::write(&pidfile, p.to_string());
            p
        }
    };
    join(pid)?;
    unsafe { std::env::set_var(ENV, "1") };
    Ok(())
}

/// A live pause process of this user (not a recycled pid).
fn holds_namespace(pid: i32, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(format!("/proc/{pid}")) else { return false };
    // A killed one may linger as a zombie, whose namespaces are gone.
    md.uid() == uid && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "berth-pause") && Path::new(&format!("/proc/{pid}/ns/mnt")).exists()
}

fn join(pid: i32) -> Result<(), String> {
    let cwd = std::env::current_dir().ok();
    for ns in ["user", "mnt"] {
        let p = format!("/proc/{pid}/ns/{ns}");
        let f = std::fs::File::open(&p).map_err(|e| err(&format!("opening {p}"), e))?;
        if unsafe { libc::setns(f.as_raw_fd(), 0) } != 0 {
            return Err(err(&format!("joining the {ns} namespace of the pause process {pid}"), std::io::Error::last_os_error()));
        }
    }
    unsafe {
        libc::setresgid(0, 0, 0);
        libc::setresuid(0, 0, 0);
    }
    // Joining a mount namespace moves the process to its root.
    if let Some(d) = cwd {
        let _ = std::env::set_current_dir(d);
    }
    Ok(())
}

fn pipe() -> Result<(std::fs::File, std::fs::File), String> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(err("pipe", std::io::Error::last_os_error()));
    }
    Ok(unsafe { (std::fs::File::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) })
}

/// Forks the pause process: it makes the user and mount namespaces, waits
/// to be mapped, and sleeps for as long as the user's berth needs them.
fn spawn_pause(m: &Mapping) -> Result<i32, String> {
    let (mut ready_r, mut ready_w) = pipe()?;
    let (mut mapped_r, mut mapped_w) = pipe()?;
    match unsafe { libc::fork() } {
        -1 => Err(err("fork", std::io::Error::last_os_error())),
        0 => {
            drop(ready_r);
            drop(mapped_w);
            let ok = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } == 0;
            let _ = ready_w.write_all(if ok { b"1" } else { b"0" });
            drop(ready_w);
            let mut b = [0u8; 1];
            if !ok || mapped_r.read(&mut b).unwrap_or(0) != 1 || b[0] != b'1' {
                unsafe { libc::_exit(1) };
            }
            unsafe {
                libc::setsid();
                // Its name, for `holds_namespace` and for ps.
                let name = CString::new("berth-pause").unwrap();
                libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
                for fd in 0..1024 {
                    libc::close(fd);
                }
                loop {
                    libc::pause();
                }
            }
        }
        pid => {
            drop(ready_w);
            drop(mapped_r);
            let mut b = [0u8; 1];
            if ready_r.read(&mut b).unwrap_or(0) != 1 || b[0] != b'1' {
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                return Err(err("making a user namespace", "the kernel refused (is kernel.unprivileged_userns_clone or user.max_user_namespaces 0?)"));
            }
            let r = map_ids(pid, m);
            let _ = mapped_w.write_all(if r.is_ok() { b"1" } else { b"0" });
            if r.is_err() {
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            }
            r.map(|_| pid)
        }
    }
}

fn map_ids(pid: i32, m: &Mapping) -> Result<(), String> {
    let run = |tool: &str, args: Vec<String>| -> Result<(), String> {
        let o = std::process::Command::new(tool).args(&args).output().map_err(|e| err(&format!("running {tool} (Debian's uidmap package)"), e))?;
        if !o.status.success() {
            return Err(err(tool, String::from_utf8_lossy(&o.stderr).trim()));
        }
        Ok(())
    };
    match (m.sub_uids, m.sub_gids) {
        (Some((us, uc)), Some((gs, gc))) => {
            run("newuidmap", vec![pid.to_string(), "0".into(), m.uid.to_string(), "1".into(), "1".into(), us.to_string(), uc.to_string()])?;
            run("newgidmap", vec![pid.to_string(), "0".into(), m.gid.to_string(), "1".into(), "1".into(), gs.to_string(), gc.to_string()])
        }
        _ => {
            // Only the user's own id: what an unprivileged process may map.
            let w = |f: &str, s: String| std::fs::write(Path::new(&format!("/proc/{pid}/{f}")), s).map_err(|e| err(&format!("writing /proc/{pid}/{f}"), e));
            w("setgroups", "deny".into())?;
            w("uid_map", format!("0 {} 1\n", m.uid))?;
            w("gid_map", format!("0 {} 1\n", m.gid))
        }
    }
}

/// What `system info` says of the mapping, from inside.
pub fn mapping_summary() -> String {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let lines: Vec<String> = map.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    if lines.len() <= 1 {
        format!("single id ({}): no /etc/subuid entry, so images' files of other owners cannot be made; add one (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER)", lines.join(""))
    } else {
        format!("uid map {}", lines.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_lines_by_name_or_id() {
        let t = "alice:100000:65536\n1001:200000:65536\nbad\nzero:1:0\n";
        assert_eq!(subids(t, "alice", 1000), Some((100000, 65536)));
        assert_eq!(subids(t, "bob", 1001), Some((200000, 65536)));
        assert_eq!(subids(t, "zero", 5), None);
        assert_eq!(subids(t, "carol", 1002), None);
    }
}
