//! Mounts, with errors that name what was being mounted where.

use std::io;
use std::path::Path;

pub use nix::mount::{MntFlags, MsFlags};

fn err(what: &str, target: &Path, e: nix::Error) -> io::Error {
    io::Error::new(io::Error::from(e).kind(), format!("{what} on {}: {e}", target.display()))
}

pub fn mount(source: Option<&str>, target: &Path, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> io::Result<()> {
    nix::mount::mount(source, target, fstype, flags, data).map_err(|e| err(&format!("mount {}", fstype.or(source).unwrap_or("")), target, e))
}

/// The data of berth's root overlay mount for a mount made outside init
/// (restore, fuse-overlayfs): init mounts from `berth.chdir` with lower
/// dirs relative to it, to keep the string short; here they are absolute
/// and berth's own options are left out.
pub fn overlay_data(opts: &[String]) -> String {
    let chdir = opts.iter().find_map(|o| o.strip_prefix("berth.chdir=")).map(std::path::PathBuf::from).unwrap_or_default();
    opts.iter()
        .filter(|o| !o.starts_with("berth."))
        .map(|o| match o.strip_prefix("lowerdir=") {
            Some(l) => format!("lowerdir={}", l.split(':').map(|d| chdir.join(d).display().to_string()).collect::<Vec<_>>().join(":")),
            None => o.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub fn bind(source: &Path, target: &Path, recursive: bool) -> io::Result<()> {
    let flags = MsFlags::MS_BIND | if recursive { MsFlags::MS_REC } else { MsFlags::empty() };
    nix::mount::mount(Some(source), target, None::<&str>, flags, None::<&str>).map_err(|e| err(&format!("bind {}", source.display()), target, e))
}

/// Makes a bind mount read-only (a bind needs a second remount for that).
pub fn remount_ro(target: &Path, extra: MsFlags) -> io::Result<()> {
    nix::mount::mount(None::<&str>, target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | extra, None::<&str>)
        .map_err(|e| err("remount read-only", target, e))
}

pub fn make_private(target: &Path, recursive: bool) -> io::Result<()> {
    let flags = MsFlags::MS_PRIVATE | if recursive { MsFlags::MS_REC } else { MsFlags::empty() };
    nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(|e| err("make private", target, e))
}

pub fn make_slave(target: &Path) -> io::Result<()> {
    nix::mount::mount(None::<&str>, target, None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>).map_err(|e| err("make rslave", target, e))
}

pub fn umount_detach(target: &Path) -> io::Result<()> {
    nix::mount::umount2(target, MntFlags::MNT_DETACH).map_err(|e| err("umount", target, e))
}

/// pivot_root(".", ".") into `root` and detach the old root, as runc does:
/// no directory for the old root is needed inside the image.
pub fn pivot_into(root: &Path) -> io::Result<()> {
    nix::unistd::chdir(root).map_err(|e| err("chdir", root, e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| err("pivot_root", root, e))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(|e| err("umount old root", root, e))?;
    nix::unistd::chdir("/").map_err(|e| err("chdir", Path::new("/"), e))?;
    Ok(())
}

pub fn mknod(path: &Path, kind: char, major: u64, minor: u64, mode: u32) -> io::Result<()> {
    use nix::sys::stat::{Mode, SFlag};
    let t = match kind {
        'b' => SFlag::S_IFBLK,
        'p' => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    nix::sys::stat::mknod(path, t, Mode::from_bits_truncate(mode), nix::sys::stat::makedev(major, minor))
        .map_err(|e| err("mknod", path, e))
}

pub fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

/// Is `path` a mount point of this mount namespace?
pub fn is_mounted(path: &Path) -> bool {
    // statx says it in one call (Linux 5.8+); the mount table is the
    // fallback, and a long one to read and parse on a busy host.
    if let Some(root) = is_mount_root(path) {
        return root;
    }
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let p = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&p))
}

/// Whether `path` is the root of a mount, as statx tells; None where the
/// kernel cannot tell.
fn is_mount_root(path: &Path) -> Option<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a zeroed statx buffer is valid for the kernel to fill.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a C string and a buffer we own.
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT, 0, &mut st) };
    if r < 0 {
        // A missing path is no mount point; other errors: ask the table.
        return (std::io::Error::last_os_error().kind() == std::io::ErrorKind::NotFound).then_some(false);
    }
    let attr = libc::STATX_ATTR_MOUNT_ROOT as u64;
    (st.stx_attributes_mask & attr != 0).then_some(st.stx_attributes & attr != 0)
}

/// Every mount point of this mount namespace (octal escapes of
/// /proc/self/mountinfo undone).
pub fn mount_points() -> Vec<std::path::PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    info.lines().filter_map(|l| l.split(' ').nth(4)).map(|p| std::path::PathBuf::from(unescape(p))).collect()
}

/// The mount point named by one /proc/self/mountinfo line.
pub fn mount_point_of_line(line: &str) -> Option<std::path::PathBuf> {
    line.split(' ').nth(4).map(|p| std::path::PathBuf::from(unescape(p)))
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod mount_point_tests {
    use super::*;

    #[test]
    fn a_mount_point_is_told_from_a_plain_directory() {
        let t = crate::testutil::TempDir::new("mountpoint");
        let d = t.path().join("m");
        std::fs::create_dir(&d).unwrap();
        assert!(!is_mounted(&d));
        assert!(!is_mounted(&t.path().join("missing")));
        assert!(is_mounted(Path::new("/proc")));
        mount(Some("tmpfs"), &d, Some("tmpfs"), MsFlags::empty(), Some("size=64k")).unwrap();
        let seen = (is_mounted(&d), is_mount_root(&d));
        umount_detach(&d).unwrap();
        assert_eq!(seen, (true, Some(true)), "statx and the mount table agree");
        assert!(!is_mounted(&d));
    }
}

#[cfg(test)]
mod overlay_data_tests {
    #[test]
    fn lower_dirs_become_absolute_and_berths_options_go() {
        let opts: Vec<String> = ["lowerdir=l/b:l/a", "upperdir=/c/upper", "workdir=/c/work", "berth.chdir=/layers"].iter().map(|s| s.to_string()).collect();
        assert_eq!(super::overlay_data(&opts), "lowerdir=/layers/l/b:/layers/l/a,upperdir=/c/upper,workdir=/c/work");
    }
}
