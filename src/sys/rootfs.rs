//! Copying into and out of a container's root while the container runs,
//! and opening mount points inside it while init sets it up.
//!
//! A running container can swap any directory in a path for a symlink
//! between our check and our use (CVE-2018-15664). So paths are resolved
//! by the kernel with openat2(RESOLVE_IN_ROOT), which treats the root as
//! `/` at every step, and every step below is relative to a descriptor
//! with one name component and O_NOFOLLOW: a symlink swapped in later is
//! refused, never followed to the host.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};

const CLO: OFlag = OFlag::O_CLOEXEC.union(OFlag::O_NOCTTY);

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(root, OFlag::O_PATH | OFlag::O_DIRECTORY | CLO, Mode::empty())?)
}

/// Opens `path` inside `root` as if root were `/`.
fn open_in(root: BorrowedFd, path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    // openat2 refuses O_PATH with any flag but these few.
    let extra = if flags.contains(OFlag::O_PATH) { OFlag::O_CLOEXEC } else { CLO };
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    let how = OpenHow::new().flags(flags | extra).resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, rel, how).map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("{}: {e}", path.display())))
}

/// A mount point inside a container's root, held open: the mount goes on
/// [`MountTarget::path`], the descriptor's /proc/self/fd link, so the
/// kernel mounts on the directory we resolved, whatever a symlink swapped
/// into the path since (CVE-2021-30465, runc's mount race).
pub struct MountTarget(OwnedFd);

impl MountTarget {
    pub fn path(&self) -> std::path::PathBuf {
        format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&self.0)).into()
    }
}

/// Resolves the mount destination `path` inside `root` as if root were `/`
/// (a symlink to `/etc` planted by the image or an earlier run of the
/// container leads to the container's /etc, never the host's) and creates
/// what is missing: directories, and for a file bind (`dir` false) an
/// empty file. The walk goes one component at a time from a descriptor of
/// the directory above, with O_NOFOLLOW: symlinks are read and resolved by
/// us (a dangling one, to a directory the image lacks, is created inside
/// the root), and one swapped in while we walk makes the open fail instead
/// of leading out. Refuses a path that resolves to the root itself: a
/// mount there would replace the container's whole filesystem.
pub fn mount_target(root: &Path, path: &Path, dir: bool) -> io::Result<MountTarget> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStrExt;
    let ctx = |what: &str, e: nix::errno::Errno| io::Error::new(io::Error::from(e).kind(), format!("{what} {}: {e}", path.display()));
    let opath = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    // stack[0] is the root; ".." pops, never past it.
    let mut stack = vec![open_root(root)?];
    let mut todo: VecDeque<OsString> = path.iter().filter(|c| *c != "/").map(OsString::from).collect();
    let mut hops = 0;
    let mut last: Option<OwnedFd> = None;
    while let Some(name) = todo.pop_front() {
        if name == "." {
            continue;
        }
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let cur = stack.last().expect("the root stays");
        let is_last = todo.is_empty();
        let st = match fstatat(cur, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Some(st),
            Err(nix::errno::Errno::ENOENT) => None,
            Err(e) => return Err(ctx("resolving", e)),
        };
        match st.map(|st| kind(&st)) {
            Some(SFlag::S_IFLNK) => {
                hops += 1;
                if hops > 40 {
                    return Err(ctx("too many symlinks resolving", nix::errno::Errno::ELOOP));
                }
                let target = readlinkat(cur, name.as_os_str()).map_err(|e| ctx("reading a symlink of", e))?;
                if target.as_bytes().starts_with(b"/") {
                    stack.truncate(1);
                }
                for c in Path::new(&target).iter().rev().filter(|c| *c != "/") {
                    todo.push_front(c.to_os_string());
                }
                continue;
            }
            Some(SFlag::S_IFDIR) => {}
            Some(_) if is_last => {}
            Some(_) => return Err(ctx("a non-directory is in the path of", nix::errno::Errno::ENOTDIR)),
            None if is_last && !dir => {
                let f = openat(cur, name.as_os_str(), OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | CLO, Mode::from_bits_truncate(0o644));
                f.map_err(|e| ctx("creating the mount point", e))?;
            }
            None => mkdirat(cur, name.as_os_str(), Mode::from_bits_truncate(0o755)).map_err(|e| ctx("creating a directory for", e))?,
        }
        let fd = openat(cur, name.as_os_str(), if is_last { opath } else { opath | OFlag::O_DIRECTORY }, Mode::empty()).map_err(|e| ctx("opening", e))?;
        if is_last {
            last = Some(fd);
        } else {
            stack.push(fd);
        }
    }
    // A path ending in a symlink to / or in ".." ends on a directory of the stack.
    let fd = match last {
        Some(fd) => fd,
        None => stack.pop().expect("the root stays"),
    };
    let (st, top) = (fstat(&fd)?, fstat(&open_root(root)?)?);
    if (st.st_dev, st.st_ino) == (top.st_dev, top.st_ino) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} leads to the container's root directory itself (a symlink to /?); a mount there would hide the whole filesystem", path.display()),
        ));
    }
    Ok(MountTarget(fd))
}

/// Copies `path` of the container (file, symlink target or tree) to `dst`
/// on the host.
pub fn copy_out(root: &Path, path: &Path, dst: &Path) -> io::Result<()> {
    let r = open_root(root)?;
    // Non-blocking: a FIFO planted by the container must not hang us.
    let fd = open_in(r.as_fd(), path, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
    out_of(fd, dst)
}

fn out_of(fd: OwnedFd, dst: &Path) -> io::Result<()> {
    let st = fstat(&fd)?;
    let mode = std::fs::Permissions::from_mode(st.st_mode & 0o7777);
    match kind(&st) {
        SFlag::S_IFDIR => {
            std::fs::create_dir_all(dst)?;
            std::fs::set_permissions(dst, mode)?;
            let names: Vec<std::ffi::CString> = nix::dir::Dir::from_fd(fd.try_clone()?)?
                .iter()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_owned())
                .filter(|n| !matches!(n.to_bytes(), b"." | b".."))
                .collect();
            for n in names {
                let to = dst.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(n.to_bytes()));
                let st = fstatat(&fd, n.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
                if kind(&st) == SFlag::S_IFLNK {
                    let t = readlinkat(&fd, n.as_c_str())?;
                    let _ = std::fs::remove_file(&to);
                    std::os::unix::fs::symlink(t, &to)?;
                    continue;
                }
                let child = openat(&fd, n.as_c_str(), OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | CLO, Mode::empty())?;
                out_of(child, &to)?;
            }
            Ok(())
        }
        SFlag::S_IFREG => {
            let mut from = std::fs::File::from(fd);
            let mut to = std::fs::File::create(dst)?;
            io::copy(&mut from, &mut to)?;
            to.set_permissions(mode)
        }
        // Devices, FIFOs and sockets carry no content to copy.
        _ => Ok(()),
    }
}

/// What lstat says of a path in a container: the last component is not
/// followed, so a symlink shows as one, with its target.
pub struct PathInfo {
    pub mode: u32,
    pub size: u64,
    pub mtime: i64,
    pub link_target: Option<std::path::PathBuf>,
}

/// Stats `path` inside `root` as if root were `/`.
pub fn stat_in(root: &Path, path: &Path) -> io::Result<PathInfo> {
    let r = open_root(root)?;
    let fd = open_in(r.as_fd(), path, OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
    let st = fstat(&fd)?;
    // An O_PATH descriptor of a symlink reads as the link itself.
    let link_target = if kind(&st) == SFlag::S_IFLNK { Some(readlinkat(&fd, "")?.into()) } else { None };
    Ok(PathInfo { mode: st.st_mode, size: st.st_size as u64, mtime: st.st_mtime, link_target })
}

/// Writes `path` of the container as a tar stream whose entries are named
/// from `name` down (docker's archive endpoint): a file, a tree, or a
/// symlink itself. The walk is the one of [`copy_out`], by descriptors.
pub fn tar_out(root: &Path, path: &Path, name: &Path, out: &mut dyn io::Write) -> io::Result<()> {
    let r = open_root(root)?;
    let mut tb = tar::Builder::new(out);
    let fd = open_in(r.as_fd(), path, OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
    let st = fstat(&fd)?;
    if kind(&st) == SFlag::S_IFLNK {
        append_special(&mut tb, name, &st, Some(&readlinkat(&fd, "")?))?;
    } else {
        let fd = open_in(r.as_fd(), path, OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK)?;
        tar_of(&mut tb, fd, name)?;
    }
    tb.finish()
}

/// The tar crate drops `.` components from names, but docker's clients
/// rebase the entries of a directory's content (`docker cp c:/dir/. x`) by
/// their leading `./`: such a name also goes in a PAX `path` record,
/// which readers take over the header's.
fn keep_dot<W: io::Write>(tb: &mut tar::Builder<W>, name: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let name = name.as_os_str().as_bytes();
    if !name.starts_with(b"./") {
        return Ok(());
    }
    let body = [b" path=".as_slice(), name, b"\n"].concat();
    // A record's length counts the digits of the length itself.
    let mut len = body.len() + 1;
    while body.len() + len.to_string().len() != len {
        len = body.len() + len.to_string().len();
    }
    let rec = [len.to_string().as_bytes(), &body].concat();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_path("PaxHeader")?;
    h.set_mode(0o644);
    h.set_size(rec.len() as u64);
    h.set_cksum();
    tb.append(&h, &rec[..])
}

fn tar_header(st: &FileStat, t: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(t);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

fn tar_of<W: io::Write>(tb: &mut tar::Builder<W>, fd: OwnedFd, name: &Path) -> io::Result<()> {
    let st = fstat(&fd)?;
    match kind(&st) {
        SFlag::S_IFDIR => {
            keep_dot(tb, name)?;
            tb.append_data(&mut tar_header(&st, tar::EntryType::Directory), name, io::empty())?;
            // A running container's /proc and /sys are the kernel's, not
            // its files (and /proc/kcore claims terabytes).
            if is_kernel_fs(&fd) {
                return Ok(());
            }
            let mut names: Vec<std::ffi::CString> = nix::dir::Dir::from_fd(fd.try_clone()?)?
                .iter()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_owned())
                .filter(|n| !matches!(n.to_bytes(), b"." | b".."))
                .collect();
            names.sort();
            for n in names {
                let to = name.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(n.to_bytes()));
                let st = fstatat(&fd, n.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
                match kind(&st) {
                    SFlag::S_IFLNK => append_special(tb, &to, &st, Some(&readlinkat(&fd, n.as_c_str())?))?,
                    SFlag::S_IFDIR | SFlag::S_IFREG => {
                        let child = openat(&fd, n.as_c_str(), OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | CLO, Mode::empty())?;
                        tar_of(tb, child, &to)?;
                    }
                    _ => append_special(tb, &to, &st, None)?,
                }
            }
            Ok(())
        }
        SFlag::S_IFREG => {
            let mut h = tar_header(&st, tar::EntryType::Regular);
            h.set_size(st.st_size as u64);
            keep_dot(tb, name)?;
            tb.append_data(&mut h, name, Exact { inner: std::fs::File::from(fd), left: st.st_size as u64 })
        }
        _ => append_special(tb, name, &st, None),
    }
}

fn is_kernel_fs(fd: &OwnedFd) -> bool {
    use nix::sys::statfs::{PROC_SUPER_MAGIC, SYSFS_MAGIC, fstatfs};
    fstatfs(fd).is_ok_and(|f| f.filesystem_type() == PROC_SUPER_MAGIC || f.filesystem_type() == SYSFS_MAGIC)
}

/// Symlinks, FIFOs and devices: a header without content. Sockets are
/// left out, as tar has no type for them.
fn append_special<W: io::Write>(tb: &mut tar::Builder<W>, name: &Path, st: &FileStat, link: Option<&std::ffi::OsStr>) -> io::Result<()> {
    let t = match kind(st) {
        SFlag::S_IFLNK => tar::EntryType::Symlink,
        SFlag::S_IFIFO => tar::EntryType::Fifo,
        SFlag::S_IFCHR => tar::EntryType::Char,
        SFlag::S_IFBLK => tar::EntryType::Block,
        _ => return Ok(()),
    };
    let mut h = tar_header(st, t);
    keep_dot(tb, name)?;
    if let Some(target) = link {
        return tb.append_link(&mut h, name, target);
    }
    if matches!(t, tar::EntryType::Char | tar::EntryType::Block) {
        h.set_device_major(libc::major(st.st_rdev))?;
        h.set_device_minor(libc::minor(st.st_rdev))?;
    }
    tb.append_data(&mut h, name, io::empty())
}

/// A file's content as its header promised: cut at `left` bytes, padded
/// with zeros if the file shrank meanwhile, so the archive stays whole.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: io::Read> io::Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if max == 0 {
            return Ok(0);
        }
        let n = match self.inner.read(&mut buf[..max])? {
            0 => {
                buf[..max].fill(0);
                max
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Copies `src` from the host into the container: into `path` when that is
/// a directory, else as `path`. Like `cp -a` (and docker's extraction of a
/// `cp` tar): owners, modes and times are kept, and files that are hard
/// links of each other in `src` are links of each other in the copy, also
/// across the calls that share `copied`.
pub fn copy_in(src: &Path, root: &Path, path: &Path, copied: &mut Copied) -> io::Result<()> {
    let r = open_root(root)?;
    let (dir, name) = match open_in(r.as_fd(), path, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
        Ok(d) => (d, src.file_name().ok_or_else(|| io::Error::other(format!("{}: no file name", src.display())))?.to_owned()),
        Err(_) => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            let name = path.file_name().ok_or_else(|| io::Error::other(format!("{}: no file name", path.display())))?;
            (open_in(r.as_fd(), parent, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?, name.to_owned())
        }
    };
    into(&dir, Path::new(&name), src, copied)
}

/// The first copy of each source inode with more than one link: the
/// directory it went into and its name there.
pub type Copied = HashMap<(u64, u64), (OwnedFd, std::ffi::OsString)>;

/// Owner, then mode (a chown clears setuid), then times, through the open
/// file, so nothing the container swapped in meanwhile is followed.
/// Without the right to give files away (rootless), they stay the
/// copier's, as tar does for a user.
fn keep_meta(fd: &OwnedFd, md: &std::fs::Metadata) -> io::Result<()> {
    use nix::unistd::{Gid, Uid, fchown};
    match fchown(fd, Some(Uid::from_raw(md.uid())), Some(Gid::from_raw(md.gid()))) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => {}
        Err(e) => return Err(e.into()),
    }
    fchmod(fd, Mode::from_bits_truncate(md.mode() & 0o7777))?;
    let (at, mt) = times(md);
    Ok(nix::sys::stat::futimens(fd, &at, &mt)?)
}

fn times(md: &std::fs::Metadata) -> (nix::sys::time::TimeSpec, nix::sys::time::TimeSpec) {
    use nix::sys::time::TimeSpec;
    (TimeSpec::new(md.atime(), md.atime_nsec()), TimeSpec::new(md.mtime(), md.mtime_nsec()))
}

/// A symlink's owner and times (it has no mode of its own).
fn keep_link_meta(dir: &OwnedFd, name: &Path, md: &std::fs::Metadata) -> io::Result<()> {
    use nix::unistd::{Gid, Uid, fchownat};
    match fchownat(dir, name, Some(Uid::from_raw(md.uid())), Some(Gid::from_raw(md.gid())), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => {}
        Err(e) => return Err(e.into()),
    }
    let (at, mt) = times(md);
    Ok(nix::sys::stat::utimensat(dir, name, &at, &mt, nix::sys::stat::UtimensatFlags::NoFollowSymlink)?)
}

fn into(dir: &OwnedFd, name: &Path, src: &Path, copied: &mut Copied) -> io::Result<()> {
    let md = std::fs::symlink_metadata(src)?;
    let mode = Mode::from_bits_truncate(md.mode() & 0o7777);
    if md.file_type().is_symlink() {
        let t = std::fs::read_link(src)?;
        let _ = nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        nix::unistd::symlinkat(&t, dir, name)?;
        return keep_link_meta(dir, name, &md);
    }
    if md.is_dir() {
        match mkdirat(dir, name, mode) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let sub = openat(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | CLO, Mode::empty())?;
        fchmod(&sub, mode)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            into(&sub, Path::new(&e.file_name()), &e.path(), copied)?;
        }
        // Last: writing the content changed the directory's time.
        return keep_meta(&sub, &md);
    }
    let key = (md.dev(), md.ino());
    if md.nlink() > 1
        && let Some((first_dir, first)) = copied.get(&key)
    {
        let _ = nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        return Ok(nix::unistd::linkat(first_dir, first.as_os_str(), dir, name, AtFlags::empty())?);
    }
    let fd = openat(dir, name, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW | CLO, mode)?;
    fchmod(&fd, mode)?;
    let mut to = std::fs::File::from(fd);
    io::copy(&mut std::fs::File::open(src)?, &mut to)?;
    keep_meta(&OwnedFd::from(to), &md)?;
    if md.nlink() > 1 {
        copied.insert(key, (dir.try_clone()?, name.as_os_str().to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_content_keeps_its_dot_names() {
        let dir = std::env::temp_dir().join(format!("rootfs-tar-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d/sub")).unwrap();
        std::fs::write(dir.join("d/f.txt"), b"hi").unwrap();
        std::os::unix::fs::symlink("f.txt", dir.join("d/ln")).unwrap();
        let mut out = Vec::new();
        tar_out(&dir, Path::new("/d/."), Path::new("."), &mut out).unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(&out[..]).entries().unwrap() {
            let e = e.unwrap();
            names.push((e.path().unwrap().display().to_string(), e.header().entry_type(), e.header().size().unwrap()));
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            names,
            vec![
                (".".to_string(), tar::EntryType::Directory, 0),
                ("./f.txt".to_string(), tar::EntryType::Regular, 2),
                ("./ln".to_string(), tar::EntryType::Symlink, 0),
                ("./sub".to_string(), tar::EntryType::Directory, 0),
            ]
        );
    }
}
