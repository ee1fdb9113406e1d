//! Checkpoint and restore through CRIU, as runc and podman use it: berth
//! writes no checkpointing of its own. A dump freezes the container's
//! process tree and writes its images; a restore is run by a new monitor
//! with `--restore-sibling`, so the restored init becomes that monitor's
//! child, in the root filesystem the monitor mounted, in the network
//! namespace berth made again, with its output pipes plugged into the new
//! monitor's.
//!
//! Mounts that come from the host (the container's /etc/hosts, hostname
//! and resolv.conf, volumes, /dev/null over masked files) are external to
//! CRIU: dumped by name (their destination), given their source again on
//! restore. The network namespace is external too: its links and
//! addresses are berth's, made before the restore.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci_spec::runtime::Spec;

/// What the engine leaves for the monitor that restores (`ORDER` in the
/// container's run directory).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct RestoreOrder {
    pub images: PathBuf,
    pub pipes: [Option<u64>; 3],
    pub tcp_established: bool,
    /// The external tty the container's processes had (`tty[rdev:dev]`),
    /// for a container with a terminal.
    #[serde(default)]
    pub tty: Option<String>,
}

pub const ORDER: &str = "restore.json";
/// Left in the run directory while a dump stops the container: its monitor
/// then does not restart it.
pub const DUMPING: &str = "checkpointing";

/// The key under which the container's network namespace is dumped.
const NET_KEY: &str = "berth-netns";

/// CRIU's version, as (major, minor, patch).
pub fn version() -> io::Result<(u32, u32, u32)> {
    let out = Command::new("criu").arg("--version").stderr(Stdio::null()).output().map_err(|e| {
        io::Error::new(e.kind(), format!("checkpoint needs CRIU (Debian's criu package), which cannot be run: {e}"))
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).ok_or_else(|| io::Error::other(format!("CRIU's version is unreadable: {:?}", text.trim())))
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.lines().find_map(|l| l.trim().strip_prefix("Version:"))?.trim();
    let mut it = v.split('.').map(|p| p.trim().parse::<u32>().ok());
    Some((it.next()??, it.next().flatten().unwrap_or(0), it.next().flatten().unwrap_or(0)))
}

fn kernel() -> (u32, u32) {
    let r = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    let mut it = r.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Refuses, before anything is touched, a CRIU that cannot work on this
/// kernel: CRIU before 4.0 fails on kernels from 6.13 on (their vDSO
/// layout; "vdso: Unexpected rt vDSO area bounds"), fixed in CRIU 4.0.
pub fn check() -> io::Result<()> {
    let v = version()?;
    let k = kernel();
    if v.0 < 4 && k >= (6, 13) {
        return Err(io::Error::other(format!(
            "CRIU {}.{}.{} cannot checkpoint on this kernel ({}.{}): CRIU before 4.0 fails on kernels from 6.13 on (\"vdso: Unexpected rt vDSO area bounds\"); install CRIU 4.0 or later, or run on a kernel before 6.13",
            v.0, v.1, v.2, k.0, k.1
        )));
    }
    Ok(())
}

/// A bind mount from the host: (destination in the container, source).
pub fn external_mounts(spec: &Spec) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for m in spec.mounts().clone().unwrap_or_default() {
        if m.typ().as_deref() == Some("bind") {
            let src = m.source().as_ref().map(|s| s.display().to_string()).unwrap_or_default();
            v.push((m.destination().display().to_string(), src));
        }
    }
    // Masked files are /dev/null bound over them (init's mask()).
    if let Some(l) = spec.linux() {
        for p in l.masked_paths().clone().unwrap_or_default() {
            if !p.ends_with('/') && !is_masked_dir(&p) {
                v.push((p, "/dev/null".into()));
            }
        }
    }
    v
}

fn is_masked_dir(p: &str) -> bool {
    // The masked directories of the default spec; everything else is a file.
    matches!(p, "/proc/acpi" | "/proc/scsi" | "/sys/firmware" | "/sys/devices/virtual/powercap" | "/proc/asound" | "/proc/bus")
}

pub struct DumpOpts<'a> {
    pub pid: i32,
    pub images: &'a Path,
    pub leave_running: bool,
    pub tcp_established: bool,
    /// The container's terminal, whose master the monitor holds.
    pub tty: Option<&'a str>,
    /// The container's own network namespace (not the host's), if any.
    pub netns: Option<&'a Path>,
    pub mounts: &'a [(String, String)],
}

/// How long a dump or restore of `images` may take: CRIU 3.17 can spin
/// for ever on damaged page images. Generous: a minute plus a second per
/// 10 MB (a 200 MB container takes about 1.5 s in the TCG test VM).
fn deadline(images: &Path) -> std::time::Duration {
    let mb: u64 = std::fs::read_dir(images).into_iter().flatten().flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum::<u64>() / 1_000_000;
    std::time::Duration::from_secs(60 + mb / 10)
}

/// `siblings`: a restore's tree runs as our child too (--restore-sibling)
/// and goes with it when it is stopped.
fn run(mut cmd: Command, what: &str, log: &Path, siblings: bool) -> io::Result<()> {
    let limit = deadline(log.parent().unwrap_or(Path::new(".")));
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| io::Error::new(e.kind(), format!("running criu: {e}")))?;
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if t0.elapsed() > limit {
            let me = if siblings { crate::sys::proc::getpid() } else { child.id() as i32 };
            for p in crate::sys::proc::descendants(me) {
                let _ = crate::sys::proc::kill(p, libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            if siblings {
                for p in crate::sys::proc::descendants(me) {
                    let _ = crate::sys::proc::wait_pid(p);
                }
            }
            return Err(io::Error::other(format!("criu {what} did not finish in {} s and was stopped (log: {})", limit.as_secs(), log.display())));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    if !status.success() {
        let said = std::fs::read_to_string(log).unwrap_or_default();
        let errs: Vec<&str> = said.lines().filter(|l| l.contains("Error") || l.contains("error")).collect();
        let last = if errs.is_empty() { said.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>() } else { errs.into_iter().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect() };
        return Err(io::Error::other(format!("criu {what} failed: {} (log: {})", last.join("; ").trim(), log.display())));
    }
    Ok(())
}

fn inode(p: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(p)?.ino())
}

pub fn dump(o: &DumpOpts) -> io::Result<()> {
    std::fs::create_dir_all(o.images)?;
    let log = o.images.join("dump.log");
    let mut cmd = Command::new("criu");
    cmd.arg("dump").arg("--tree").arg(o.pid.to_string()).arg("--images-dir").arg(o.images).arg("--work-dir").arg(o.images);
    cmd.args(["--log-file", "dump.log", "-v4", "--manage-cgroups=ignore", "--file-locks", "--ext-unix-sk"]);
    for (dest, _) in o.mounts {
        cmd.arg("--ext-mount-map").arg(format!("{dest}:{dest}"));
    }
    if let Some(ns) = o.netns {
        cmd.arg("--external").arg(format!("net[{}]:{NET_KEY}", inode(ns)?));
    }
    if o.tcp_established {
        cmd.args(["--tcp-established", "--network-lock", "nftables"]);
    }
    if o.leave_running {
        cmd.arg("--leave-running");
    }
    if let Some(t) = o.tty {
        cmd.arg("--external").arg(t);
    }
    run(cmd, "dump", &log, false)
}

pub struct RestoreOpts<'a> {
    pub images: &'a Path,
    pub root: &'a Path,
    pub tcp_established: bool,
    /// A new terminal's slave (our fd) for the one dumped as this key.
    pub tty: Option<(i32, &'a str)>,
    pub netns: Option<&'a std::fs::File>,
    pub mounts: &'a [(String, String)],
    /// (our fd, the pipe inode the container's fd had at dump).
    pub pipes: &'a [(i32, u64)],
}

/// Runs criu restore; returns the restored init's pid, a child of ours.
pub fn restore(o: &RestoreOpts) -> io::Result<i32> {
    use std::os::fd::AsRawFd;
    let log = o.images.join("restore.log");
    let pidfile = o.images.join("restore.pid");
    let _ = std::fs::remove_file(&pidfile);
    let mut cmd = Command::new("criu");
    cmd.arg("restore").arg("--images-dir").arg(o.images).arg("--work-dir").arg(o.images);
    cmd.args(["--log-file", "restore.log", "-v4", "--manage-cgroups=ignore", "--file-locks", "--ext-unix-sk", "--restore-detached", "--restore-sibling"]);
    cmd.arg("--root").arg(o.root).arg("--pidfile").arg(&pidfile);
    for (dest, src) in o.mounts {
        cmd.arg("--ext-mount-map").arg(format!("{dest}:{src}"));
    }
    let mut keep = Vec::new();
    if let Some(ns) = o.netns {
        let fd = ns.as_raw_fd();
        keep.push(fd);
        cmd.arg("--inherit-fd").arg(format!("fd[{fd}]:{NET_KEY}"));
    }
    for (fd, ino) in o.pipes {
        keep.push(*fd);
        cmd.arg("--inherit-fd").arg(format!("fd[{fd}]:pipe:[{ino}]"));
    }
    if o.tcp_established {
        cmd.args(["--tcp-established", "--network-lock", "nftables"]);
    }
    if let Some((fd, key)) = o.tty {
        keep.push(fd);
        cmd.arg("--inherit-fd").arg(format!("fd[{fd}]:{key}"));
    }
    for fd in &keep {
        crate::sys::proc::set_cloexec(*fd, false)?;
    }
    let r = run(cmd, "restore", &log, true);
    for fd in &keep {
        let _ = crate::sys::proc::set_cloexec(*fd, true);
    }
    r?;
    let pid = std::fs::read_to_string(&pidfile).map_err(|e| io::Error::new(e.kind(), format!("criu restore wrote no pid file {}: {e}", pidfile.display())))?;
    pid.trim().parse().map_err(|_| io::Error::other(format!("criu restore's pid file says {:?}", pid.trim())))
}

/// CRIU's name of the terminal on a process's fd 0 (`tty[rdev:dev]`, in
/// hex as CRIU prints them), if it is one.
pub fn tty_key(pid: i32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(format!("/proc/{pid}/fd/0")).ok()?;
    use std::os::unix::fs::FileTypeExt;
    md.file_type().is_char_device().then(|| format!("tty[{:x}:{:x}]", md.rdev(), md.dev()))
}

/// The pipe inodes of a process's fds 0-2 (None where not a pipe).
pub fn stdio_pipes(pid: i32) -> [Option<u64>; 3] {
    let mut v = [None; 3];
    for (i, slot) in v.iter_mut().enumerate() {
        let l = std::fs::read_link(format!("/proc/{pid}/fd/{i}")).map(|p| p.display().to_string()).unwrap_or_default();
        *slot = l.strip_prefix("pipe:[").and_then(|s| s.strip_suffix(']')).and_then(|s| s.parse().ok());
    }
    v
}

/// Where a container's checkpoints live.
pub fn dir(container_dir: &Path) -> PathBuf {
    container_dir.join("checkpoints")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criu_versions() {
        assert_eq!(parse_version("Version: 3.17.1\n"), Some((3, 17, 1)));
        assert_eq!(parse_version("Version: 4.0\nGitID: v4.0\n"), Some((4, 0, 0)));
        assert_eq!(parse_version("nonsense"), None);
    }
}
