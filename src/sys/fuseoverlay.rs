//! A rootless container's root filesystem where the kernel refuses
//! overlayfs in a user namespace (before 5.11, or a distribution that
//! turns it off): fuse-overlayfs, a FUSE daemon with overlayfs' layout.
//! The monitor mounts it at the container's root path before init starts;
//! init, in a copy of that mount namespace, finds it there and pivots in.

use std::io;
use std::path::Path;

/// The option on the root mount that tells init the root is mounted.
pub const PREMOUNTED: &str = "berth.premounted";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Native,
    Fuse,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Native => "native overlayfs",
            Driver::Fuse => "fuse-overlayfs",
        }
    }
}

/// Which one a rootless berth uses: `BERTH_ROOTLESS_OVERLAY=fuse|native`
/// when set, else native when a probe mount in `run` succeeds. The answer
/// is kept in `run` for the boot (a probe is a few mounts).
pub fn driver(run: &Path) -> Driver {
    match std::env::var("BERTH_ROOTLESS_OVERLAY").as_deref() {
        Ok("fuse") => return Driver::Fuse,
        Ok("native") => return Driver::Native,
        _ => {}
    }
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let cache = run.join("overlay-driver");
    if let Ok(t) = std::fs::read_to_string(&cache)
        && let Some((b, d)) = t.split_once('\n')
        && b == boot.trim()
    {
        return if d.trim() == "fuse" { Driver::Fuse } else { Driver::Native };
    }
    let d = if probe(run).is_ok() { Driver::Native } else { Driver::Fuse };
    let _ = std::fs::write(&cache, format!("{}\n{}\n", boot.trim(), if d == Driver::Fuse { "fuse" } else { "native" }));
    d
}

fn probe(run: &Path) -> io::Result<()> {
    let dir = run.join(format!("overlay-probe-{}", std::process::id()));
    let r = (|| {
        for d in ["l", "u", "w", "m"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        let data = format!("lowerdir={},upperdir={},workdir={}", dir.join("l").display(), dir.join("u").display(), dir.join("w").display());
        super::mount::mount(Some("overlay"), &dir.join("m"), Some("overlay"), super::mount::MsFlags::empty(), Some(&data))?;
        super::mount::umount_detach(&dir.join("m"))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// Mounts fuse-overlayfs at `root` from the root mount's overlayfs options
/// (see mount::overlay_data).
pub fn mount(root: &Path, opts: &[String]) -> io::Result<()> {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(io::Error::new(e.kind(), "fuse-overlayfs needs /dev/fuse, which this user may not open (it is not mode 0666, as distributions ship it): as root, run `chmod 0666 /dev/fuse`"));
        }
        Err(e) => return Err(io::Error::new(e.kind(), format!("fuse-overlayfs needs /dev/fuse: {e} (as root: modprobe fuse)"))),
    }
    let out = std::process::Command::new("fuse-overlayfs")
        .arg("-o")
        .arg(super::mount::overlay_data(opts))
        .arg(root)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running fuse-overlayfs (Debian's fuse-overlayfs package): {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!("fuse-overlayfs on {}: {}", root.display(), String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// Unmounts it; the daemon exits with its mount.
pub fn unmount(root: &Path) {
    if super::mount::is_mounted(root) {
        let _ = super::mount::umount_detach(root);
    }
}
