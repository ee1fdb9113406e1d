//! The berth binary as processes inside a container can reach it.
//!
//! A process that enters a container (the exec helper, the init the
//! monitor clones) runs berth's own binary there until it execs the user's
//! command, and a command that is a `#!/proc/self/exe` script turns it back
//! into berth. Meanwhile any root process in the container may open
//! /proc/PID/exe and, once the process is gone, reopen that for writing:
//! the host's binary (CVE-2019-5736). So such processes run from a view of
//! the binary that cannot be written: a read-only detached mount of the
//! same file, or, where we may not mount (rootless), a sealed memfd copy.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

// Kernel ABI (linux/mount.h); not every libc version names them.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 1;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// True when our own executable cannot be written through /proc/self/exe:
/// it sits on a read-only mount (the clone below, or a read-only /usr) or
/// is a memfd sealed against writes.
pub fn self_is_sealed() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else { return false };
    // SAFETY: plain fcntl on a descriptor we own.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & libc::F_SEAL_WRITE != 0 {
        return true;
    }
    nix::sys::statvfs::fstatvfs(&f).map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY)).unwrap_or(false)
}

/// A close-on-exec descriptor of our executable that no process can write
/// through; exec it as /proc/self/fd/N.
pub fn sealed_self() -> io::Result<OwnedFd> {
    sealed(std::path::Path::new("/proc/self/exe"))
}

/// The same for the executable at `path`.
pub fn sealed(path: &std::path::Path) -> io::Result<OwnedFd> {
    let e = match readonly_clone(path) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    match clone_by_name(path) {
        Ok(fd) => Ok(fd),
        Err(e2) => {
            tracing::debug!("read-only clone of {}: {e}; by its name: {e2}; using a sealed copy", path.display());
            sealed_copy(path)
        }
    }
}

/// A read-only clone of the file a link such as /proc/self/exe names,
/// reached by that name in our mount namespace. A process that entered
/// another mount namespace after its exec (rootless berth enters its
/// user's) holds its executable on a mount of the namespace it left, which
/// the kernel refuses to clone (EINVAL); the copy it would fall back to
/// costs the binary's size in time and memory on every start. The name
/// may lead elsewhere here: only the same file will do.
fn clone_by_name(link: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::MetadataExt;
    let target = std::fs::read_link(link)?;
    let fd = readonly_clone(&target)?;
    let (ours, theirs) = (nix::sys::stat::fstat(&fd).map_err(io::Error::from)?, std::fs::metadata(link)?);
    if ours.st_dev != theirs.dev() || ours.st_ino != theirs.ino() {
        return Err(io::Error::other(format!("{} is another file in this mount namespace", target.display())));
    }
    Ok(fd)
}

/// The name of the small binary that monitors containers and enters them,
/// installed beside `berth` (cargo builds and installs both).
pub const HELPER: &str = "berth-monitor";

/// The helper binary beside our own executable, when there is one. A
/// process already running from a sealed view has no directory to look
/// in; it uses itself, which answers the same commands.
pub fn helper_path() -> Option<std::path::PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    if exe.file_name().is_some_and(|n| n == HELPER) {
        return None;
    }
    let p = exe.parent()?.join(HELPER);
    p.is_file().then_some(p)
}

/// Set across our own re-exec so a host where sealing silently does not
/// take can never loop.
const REEXEC_MARK: &str = "_BERTH_SEALED_REEXEC";

/// Replaces this process with the same command line run from
/// `sealed_self()`. Returns only when that is impossible, with the reason;
/// also when we already re-executed once.
pub fn reexec_sealed() -> io::Error {
    if std::env::var_os(REEXEC_MARK).is_some() {
        return io::Error::other("already re-executed from a sealed copy, and the binary is still writable");
    }
    let fd = match sealed_self() {
        Ok(fd) => fd,
        Err(e) => return e,
    };
    let cstr = |b: &[u8]| CString::new(b).map_err(io::Error::other);
    let args: io::Result<Vec<CString>> = std::env::args_os().map(|a| cstr(a.as_encoded_bytes())).collect();
    let mut env: Vec<Vec<u8>> = std::env::vars_os().map(|(k, v)| [k.as_encoded_bytes(), b"=", v.as_encoded_bytes()].concat()).collect();
    env.push(format!("{REEXEC_MARK}=1").into_bytes());
    let env: io::Result<Vec<CString>> = env.iter().map(|e| cstr(e)).collect();
    let (args, env) = match (args, env) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match nix::unistd::fexecve(&fd, &args, &env) {
        Err(e) => io::Error::from(e),
        Ok(never) => match never {},
    }
}

/// A detached bind mount of /proc/self/exe, made read-only. It is attached
/// nowhere, so it costs no mount table entry, leaves nothing after a
/// crash, and shares the page cache with the binary (no copy).
fn readonly_clone(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: open_tree with a valid C string; the result is a new fd we own.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint) })?;
    // SAFETY: the kernel just handed us this descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
    let empty = CString::new("").expect("no NUL");
    // SAFETY: mount_setattr on our fd with a properly sized struct.
    cvt(unsafe {
        libc::syscall(libc::SYS_mount_setattr, fd.as_raw_fd(), empty.as_ptr(), libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE, &attr as *const MountAttr, std::mem::size_of::<MountAttr>())
    })?;
    Ok(fd)
}

/// A copy of the binary in memory, sealed so neither we nor anyone who
/// reopens it can change it. Costs the binary's size in memory per process
/// that holds it, hence only the fallback.
fn sealed_copy(path: &std::path::Path) -> io::Result<OwnedFd> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let fd = memfd_create("berth", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING).map_err(io::Error::from)?;
    let mut src = std::fs::File::open(path)?;
    let mut dst = std::fs::File::from(fd);
    io::copy(&mut src, &mut dst)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: plain fcntl on a descriptor we own.
    if unsafe { libc::fcntl(dst.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(dst.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sealed_binary_refuses_writes() {
        let fd = sealed_self().unwrap();
        let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let w = std::fs::OpenOptions::new().write(true).open(&p).and_then(|mut f| io::Write::write_all(&mut f, b"x"));
        assert!(w.is_err(), "wrote through {p}");
        let c = sealed_copy(std::path::Path::new("/proc/self/exe")).unwrap();
        let p = format!("/proc/self/fd/{}", c.as_raw_fd());
        let w = std::fs::OpenOptions::new().write(true).open(&p).and_then(|mut f| io::Write::write_all(&mut f, b"x"));
        assert!(w.is_err(), "wrote through the sealed copy");
    }

    /// As rootless berth after it enters its user's namespaces: the
    /// executable's mount belongs to the namespace it left, yet the
    /// binary is cloned read-only (sharing the page cache), not copied.
    #[test]
    fn a_process_in_another_mount_namespace_still_clones_its_binary() {
        std::thread::spawn(|| {
            // Namespaces are per thread: the test's other threads keep theirs.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS) needs root");
            // The case at hand: this kernel (6.x) refuses the direct clone.
            assert!(readonly_clone(std::path::Path::new("/proc/self/exe")).is_err(), "the kernel now clones a mount of the namespace we left: the test no longer covers the clone by name");
            let fd = sealed_self().unwrap();
            // SAFETY: plain fcntl on a descriptor we own.
            let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
            assert!(seals < 0, "a sealed memfd copy ({seals:#x}), not a clone");
            let ro = nix::sys::statvfs::fstatvfs(&fd).unwrap().flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY);
            assert!(ro, "the clone is read-only");
            let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
            assert!(std::fs::OpenOptions::new().write(true).open(&p).is_err(), "opened {p} for writing");
        })
        .join()
        .unwrap();
    }
}

/// Unmaps from this process the pages of code and read-only data it has
/// touched so far (they stay in the page cache; what runs next faults its
/// own pages back), and the stack pages below the current frame. A
/// monitor calls this once its container runs: start-up ran most of the
/// code it will ever run (SQLite, JSON, namespaces), and otherwise kept
/// those pages mapped, and counted in its memory, for the container's life.
pub fn drop_startup_pages() {
    unsafe extern "C" {
        static __executable_start: u8;
        static etext: u8;
    }
    let page = 4096usize;
    // The linker defines both symbols at the ends of the code; only their
    // addresses are taken.
    let (start, end) = (&raw const __executable_start as usize, &raw const etext as usize);
    let start = start & !(page - 1);
    // SAFETY: our own read-only private file mapping: dropping its pages
    // loses nothing, the next access reads them from the file again.
    unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    // The stack: from its lowest mapped page up to a page below us (the
    // frames below the current one are dead; keep a page for the red zone
    // and this call's own frames).
    let here = &page as *const usize as usize;
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return };
    for l in maps.lines().filter(|l| l.ends_with("[stack]")) {
        let Some((lo, hi)) = l.split_whitespace().next().and_then(|r| r.split_once('-')) else { continue };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) else { continue };
        if !(lo..hi).contains(&here) {
            continue;
        }
        let top = (here & !(page - 1)).saturating_sub(2 * page);
        if top > lo {
            // SAFETY: below the live frames of the only thread; those pages
            // come back zeroed when the stack grows again.
            unsafe { libc::madvise(lo as *mut libc::c_void, top - lo, libc::MADV_DONTNEED) };
        }
    }
}
