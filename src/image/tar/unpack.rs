//! Writing entries into the target: files, links, devices, whiteouts
//! converted to overlayfs's form, then ownership, modes, xattrs and times.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::{self, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::EntryType;

use super::limits::{MAX_PATH_DEPTH, max_layer_size, path_budget, shorten};
use super::meta::{Meta, numeric, read_meta};
use super::walk::{WalkError, join, normalise, walk, walk_error, walk_from};
use super::{TarError, UnpackStats};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// `.wh..wh.` names are AUFS bookkeeping; only the opaque marker means something.
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

/// AUFS keeps bookkeeping in `.wh..wh.*` entries at the top; overlayfs has no use for them.
fn is_aufs_meta(comps: &[OsString]) -> bool {
    comps.first().is_some_and(|c| {
        let c = c.as_bytes();
        c.starts_with(WHITEOUT_META_PREFIX) && (c != OPAQUE_MARKER || comps.len() > 1)
    })
}

/// Sets an extended attribute on the entry itself (a symlink is not
/// followed).
fn lsetxattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    xattr::set(path, std::ffi::OsStr::from_bytes(name), value)
}

/// A directory whose times are applied at the end, once nothing more is
/// written into it. It is kept by identity (device, inode), so that, if a
/// later entry replaced it, the times do not land on whatever took its
/// place.
struct DirTime {
    comps: Vec<OsString>,
    mtime: TimeSpec,
    entry: String,
}

struct Unpacker<'a> {
    root: &'a Path,
    stats: UnpackStats,
    /// One per directory, not per entry: an archive naming the same deep
    /// directory millions of times must not grow our memory with it. As
    /// for owner and mode, the last entry's time wins.
    dir_times: HashMap<(u64, u64), DirTime>,
    /// Content bytes the whole archive may write (`BERTH_MAX_LAYER_SIZE`).
    max_bytes: u64,
    /// The last directory resolved: (entry components, real components).
    /// Archives list a directory before what it holds, so the next entry
    /// resolves from here in one lookup, and a deep tree costs time linear
    /// in its depth rather than quadratic. Only removing something can make
    /// it wrong (a symlink is only ever made where nothing was), so every
    /// removal drops it.
    resolved: Option<(Vec<OsString>, Vec<OsString>)>,
}

/// Unpacks `src` (already decompressed, see [`decompressed`]) into `dest`, an
/// existing empty directory, converting OCI/docker whiteouts to overlayfs
/// whiteouts. Nothing is ever written outside `dest`; an entry that would
/// need that is refused and the whole archive with it.
///
/// On error, `dest` is left half-filled: the caller must remove it.
pub fn unpack<R: Read>(src: R, dest: &Path) -> Result<UnpackStats, TarError> {
    check_target(dest)?;
    let mut u = Unpacker {
        root: dest,
        stats: UnpackStats::default(),
        dir_times: HashMap::new(),
        max_bytes: max_layer_size().map_err(TarError::BadLimit)?,
        resolved: None,
    };
    let mut archive = tar::Archive::new(src);
    for entry in archive.entries().map_err(TarError::Read)? {
        let mut entry = entry.map_err(TarError::Read)?;
        u.entry(&mut entry)?;
    }
    u.finish_dir_times()?;
    Ok(u.stats)
}

/// Refuses paths no system call could name, and trees so deep that
/// resolving each entry would take quadratic time.
fn check_path(comps: &[OsString], max_len: usize, name: &str) -> Result<(), TarError> {
    if comps.len() > MAX_PATH_DEPTH {
        return Err(TarError::TooDeep {
            entry: name.into(),
            depth: comps.len(),
        });
    }
    let len = comps
        .iter()
        .map(|c| c.len() + 1)
        .sum::<usize>()
        .saturating_sub(1);
    if len > max_len {
        return Err(TarError::PathTooLong {
            entry: name.into(),
            len,
            max: max_len,
        });
    }
    Ok(())
}

fn check_target(dest: &Path) -> Result<(), TarError> {
    let err = |error| TarError::Target {
        path: dest.to_path_buf(),
        error,
    };
    let m = fs::metadata(dest).map_err(err)?;
    if !m.is_dir() {
        return Err(err(io::Error::other("not a directory")));
    }
    Ok(())
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), TarError> {
        let raw = entry.path_bytes().into_owned();
        // Shortened: a hostile name may be megabytes, and errors quote it.
        let name = shorten(&String::from_utf8_lossy(&raw));
        let mut kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Global PAX headers (e.g. git archive's commit comment) carry nothing we apply.
            return Ok(());
        }
        // Pre-POSIX archives mark directories with a trailing slash only.
        if kind == EntryType::Regular && raw.ends_with(b"/") {
            kind = EntryType::Directory;
        }
        let comps = normalise(&raw).ok_or_else(|| TarError::Escape {
            entry: name.clone(),
        })?;
        check_path(&comps, path_budget(self.root), &name)?;
        if is_aufs_meta(&comps) {
            return Ok(()); // e.g. .wh..wh.plnk/..., AUFS's hard link store
        }
        if let Some(last) = comps.last()
            && last.as_bytes().starts_with(WHITEOUT_PREFIX)
        {
            return self.whiteout(&comps, &name);
        }
        let meta = read_meta(entry, &name)?;
        let Some((file, parent)) = comps.split_last() else {
            return self.root_entry(kind, &meta, &name);
        };
        let parent = self.resolve(parent, true).map_err(|e| walk_error(e, &name))?;
        let path = join(self.root, &parent).join(file);
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.regular(entry, &path, &name)?
            }
            EntryType::Directory => self.directory(&path, &name)?,
            EntryType::Symlink => self.symlink(entry, &path, &name)?,
            EntryType::Link => return self.hardlink(entry, &path, &name),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.node(entry, kind, &path, &name)?
            }
            other => {
                return Err(TarError::UnsupportedEntry {
                    entry: name,
                    what: format!("of tar type {:?}", other.as_byte() as char),
                });
            }
        }
        self.stats.files += 1;
        let mut full = parent;
        full.push(file.clone());
        self.apply_meta(&path, kind, &meta, full, &name)
    }

    /// "./" describes the target directory itself: only its metadata applies.
    fn root_entry(&mut self, kind: EntryType, meta: &Meta, name: &str) -> Result<(), TarError> {
        if kind != EntryType::Directory {
            return Err(TarError::BadEntry {
                entry: name.into(),
                detail: "it names the target directory itself but is not a directory".into(),
            });
        }
        self.apply_meta(self.root, kind, meta, Vec::new(), name)
    }

    fn regular<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        name: &str,
    ) -> Result<(), TarError> {
        // Refused before anything is written: the header declares the size,
        // so a bomb of one huge file costs no disk at all.
        if entry.size() > self.max_bytes.saturating_sub(self.stats.bytes) {
            return Err(TarError::TooLarge {
                entry: name.into(),
                size: entry.size(),
                limit: self.max_bytes,
            });
        }
        self.clear_slot(path, false, name)?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true) // O_EXCL: never follows or reuses what is there
            .mode(0o600) // real mode is set after chown, which would clear setuid
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| io_err(name, "create file", path, e))?;
        let written = copy_content(entry, &mut file, path, name)?;
        if written != entry.size() {
            return Err(TarError::BadEntry {
                entry: name.into(),
                detail: format!(
                    "the archive ends after {written} of its {} bytes",
                    entry.size()
                ),
            });
        }
        self.stats.bytes += written;
        Ok(())
    }

    fn directory(&mut self, path: &Path, name: &str) -> Result<(), TarError> {
        if self.clear_slot(path, true, name)? {
            return Ok(()); // existing directory: only metadata changes
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(path)
            .map_err(|e| io_err(name, "create directory", path, e))
    }

    fn symlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        path: &Path,
        name: &str,
    ) -> Result<(), TarError> {
        // Stored verbatim: absolute targets like /bin/busybox are normal in
        // images, and we never follow them ourselves except through `walk`.
        let target = link_name(entry, name)?;
        self.clear_slot(path, false, name)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(&target), path)
            .map_err(|e| io_err(name, "create symlink", path, e))
    }

    fn hardlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        path: &Path,
        name: &str,
    ) -> Result<(), TarError> {
        let raw = link_name(entry, name)?;
        let target_name = String::from_utf8_lossy(&raw).into_owned();
        let refuse = |reason| TarError::HardLink {
            entry: name.into(),
            target: target_name.clone(),
            reason,
        };
        let comps = normalise(&raw).ok_or_else(|| refuse("climbs out of the target directory"))?;
        let Some((file, parent)) = comps.split_last() else {
            return Err(refuse("is the target directory itself"));
        };
        let parent = self.resolve(parent, false).map_err(|e| match e {
            WalkError::Missing | WalkError::NotDir(_) => {
                refuse("does not exist in the target directory")
            }
            e => walk_error(e, name),
        })?;
        let target = join(self.root, &parent).join(file);
        match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => return Err(refuse("is a directory")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(refuse("does not exist in the target directory"));
            }
            Err(e) => return Err(io_err(name, "inspect link target", &target, e)),
        }
        // The metadata belongs to the target's inode, already set by its own entry.
        self.stats.files += 1;
        if target == path {
            return Ok(()); // a link to itself: unlinking first would lose the file
        }
        self.clear_slot(path, false, name)?;
        // No AT_SYMLINK_FOLLOW: a symlink target is linked itself, not followed.
        nix::unistd::linkat(
            nix::fcntl::AT_FDCWD,
            &target,
            nix::fcntl::AT_FDCWD,
            path,
            nix::fcntl::AtFlags::empty(),
        )
        .map_err(|e| io_err(name, "create hard link", path, e.into()))
    }

    fn node<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        kind: EntryType,
        path: &Path,
        name: &str,
    ) -> Result<(), TarError> {
        let (sflag, dev) = match kind {
            EntryType::Char => (SFlag::S_IFCHR, device(entry.header(), name)?),
            EntryType::Block => (SFlag::S_IFBLK, device(entry.header(), name)?),
            // A fifo's device fields are meaningless and often blank.
            _ => (SFlag::S_IFIFO, 0),
        };
        self.clear_slot(path, false, name)?;
        stat::mknod(path, sflag, Mode::from_bits_truncate(0o600), dev)
            .map_err(|e| io_err(name, "create device node", path, e.into()))
    }

    /// `dir/.wh.name` deletes `name` of lower layers; `dir/.wh..wh..opq` hides all of `dir`'s.
    fn whiteout(&mut self, comps: &[OsString], name: &str) -> Result<(), TarError> {
        let (last, parent) = comps.split_last().expect("whiteout has a name");
        let last = last.as_bytes();
        if last == OPAQUE_MARKER {
            return self.opaque(parent, name);
        }
        if last.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(()); // AUFS bookkeeping such as .wh..wh.plnk
        }
        let hidden = &last[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
            return Err(TarError::BadEntry {
                entry: name.into(),
                detail: "a whiteout must name a file".into(),
            });
        }
        let parent = self.resolve(parent, true).map_err(|e| walk_error(e, name))?;
        let path = join(self.root, &parent).join(OsStr::from_bytes(hidden));
        self.clear_slot(&path, false, name)?;
        // overlayfs's whiteout: a character device with device number 0:0.
        stat::mknod(&path, SFlag::S_IFCHR, Mode::empty(), stat::makedev(0, 0))
            .map_err(|e| io_err(name, "create whiteout", &path, e.into()))?;
        self.stats.files += 1;
        Ok(())
    }

    fn opaque(&mut self, dir: &[OsString], name: &str) -> Result<(), TarError> {
        let dir = self.resolve(dir, true).map_err(|e| walk_error(e, name))?;
        let path = join(self.root, &dir);
        lsetxattr(&path, OPAQUE_XATTR, b"y").map_err(|e| TarError::Io {
            entry: name.into(),
            op: "mark opaque (xattr trusted.overlay.opaque; needs root and a filesystem with \
                 trusted.* xattrs)"
                .into(),
            path,
            error: e,
        })
    }

    /// Owner first (chown clears setuid bits), then mode, xattrs (chown also
    /// clears security.capability) and times.
    fn apply_meta(
        &mut self,
        path: &Path,
        kind: EntryType,
        meta: &Meta,
        comps: Vec<OsString>,
        name: &str,
    ) -> Result<(), TarError> {
        std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))
            .map_err(|e| io_err(name, "change owner of", path, e))?;
        if kind != EntryType::Symlink {
            // Safe to follow: `path` was just created or checked to be no symlink.
            fs::set_permissions(path, fs::Permissions::from_mode(meta.mode))
                .map_err(|e| io_err(name, "change mode of", path, e))?;
        }
        set_xattrs(path, &meta.xattrs, name)?;
        if kind == EntryType::Directory {
            return self.defer_dir_time(path, comps, meta.mtime, name);
        }
        set_time(path, meta.mtime, name)
    }

    fn defer_dir_time(
        &mut self,
        path: &Path,
        comps: Vec<OsString>,
        mtime: TimeSpec,
        name: &str,
    ) -> Result<(), TarError> {
        let m = fs::symlink_metadata(path).map_err(|e| io_err(name, "inspect", path, e))?;
        self.dir_times.insert(
            (m.dev(), m.ino()),
            DirTime {
                comps,
                mtime,
                entry: name.into(),
            },
        );
        Ok(())
    }

    /// Makes room for a new entry at `path` without following a final symlink.
    /// Returns true when `path` is a directory and the new entry is one too,
    /// in which case it is kept (only its metadata will change).
    fn clear_slot(&mut self, path: &Path, new_is_dir: bool, name: &str) -> Result<bool, TarError> {
        let m = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(name, "inspect", path, e)),
        };
        if m.is_dir() && new_is_dir {
            return Ok(true);
        }
        self.resolved = None;
        let removed = if m.is_dir() {
            // A non-directory replaces a whole directory, as in docker's applier.
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        };
        removed.map_err(|e| io_err(name, "remove the existing", path, e))?;
        Ok(false)
    }

    /// [`walk`] to `comps`, from the last directory resolved when it is a
    /// prefix of them.
    fn resolve(&mut self, comps: &[OsString], create: bool) -> Result<Vec<OsString>, WalkError> {
        let real = match self.resolved.take() {
            Some((seen, real)) if comps.starts_with(&seen) => {
                walk_from(self.root, real, &comps[seen.len()..], create)
            }
            _ => walk(self.root, comps, create),
        }?;
        self.resolved = Some((comps.to_vec(), real.clone()));
        Ok(real)
    }

    /// Applies directory times last, since writing into a directory changes
    /// its mtime. Paths are resolved again: later entries may have moved things.
    fn finish_dir_times(&mut self) -> Result<(), TarError> {
        // Setting a directory's times changes no other's, so any order
        // would do; sorted, each resolves from its parent in one lookup.
        let mut dirs: Vec<_> = std::mem::take(&mut self.dir_times).into_iter().collect();
        dirs.sort_unstable_by(|a, b| a.1.comps.cmp(&b.1.comps));
        for ((dev, ino), d) in dirs {
            let Ok(real) = self.resolve(&d.comps, false) else {
                continue; // removed by a later entry
            };
            let path = join(self.root, &real);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.dev() == dev && m.ino() == ino => set_time(&path, d.mtime, &d.entry)?,
                _ => {} // replaced by something else
            }
        }
        Ok(())
    }
}

fn device(h: &tar::Header, name: &str) -> Result<libc::dev_t, TarError> {
    let bad = |e| TarError::BadEntry {
        entry: name.into(),
        detail: format!("invalid device number: {e}"),
    };
    let (raw_major, raw_minor): (&[u8], &[u8]) = match (h.as_ustar(), h.as_gnu()) {
        (Some(u), _) => (&u.dev_major, &u.dev_minor),
        (_, Some(g)) => (&g.dev_major, &g.dev_minor),
        _ => (&[], &[]),
    };
    let major = numeric(h.device_major(), raw_major)
        .map_err(bad)?
        .unwrap_or(0);
    let minor = numeric(h.device_minor(), raw_minor)
        .map_err(bad)?
        .unwrap_or(0);
    Ok(stat::makedev(major.into(), minor.into()))
}

/// Copies an entry's content, telling archive read errors from write errors.
fn copy_content<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    file: &mut fs::File,
    path: &Path,
    name: &str,
) -> Result<u64, TarError> {
    use std::io::{Seek, SeekFrom};
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    // Runs of zeros become holes (the file is new, so skipped ranges read
    // as zeros): a sparse entry or a file of zeros costs no disk, and a
    // bomb made of them only its time, which the size cap bounds.
    let mut hole = false;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(TarError::Read(e)),
        };
        if buf[..n].iter().all(|b| *b == 0) {
            file.seek(SeekFrom::Current(n as i64)).map_err(|e| io_err(name, "seek", path, e))?;
            hole = true;
        } else {
            file.write_all(&buf[..n]).map_err(|e| io_err(name, "write", path, e))?;
            hole = false;
        }
        total += n as u64;
    }
    if hole {
        file.set_len(total).map_err(|e| io_err(name, "extend", path, e))?;
    }
    Ok(total)
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, name: &str) -> Result<Vec<u8>, TarError> {
    match entry.link_name_bytes() {
        Some(l) if !l.is_empty() => Ok(l.into_owned()),
        _ => Err(TarError::BadEntry {
            entry: name.into(),
            detail: "the link has no target".into(),
        }),
    }
}

fn set_xattrs(path: &Path, xattrs: &[(Vec<u8>, Vec<u8>)], name: &str) -> Result<(), TarError> {
    for (attr, value) in xattrs {
        if attr.starts_with(b"trusted.overlay.") {
            // These steer overlayfs (redirects, opaque, metacopy); only our own
            // whiteout conversion may set them in a lower dir.
            tracing::debug!(entry = name, attr = %String::from_utf8_lossy(attr), "skipping overlay xattr from archive");
            continue;
        }
        match lsetxattr(path, attr, value) {
            Ok(()) => {}
            // e.g. security.selinux on a host without SELinux: not needed to run.
            Err(e)
                if attr.starts_with(b"security.")
                    && matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOTSUP)) =>
            {
                tracing::debug!(entry = name, attr = %String::from_utf8_lossy(attr), error = %e, "ignoring xattr");
            }
            // A filesystem without that namespace (user.* on tmpfs before
            // Linux 6.6): the image still runs, as docker decides too.
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {
                tracing::warn!(entry = name, attr = %String::from_utf8_lossy(attr), "xattr dropped: the filesystem under {} does not support it", path.display());
            }
            Err(e) => {
                let op = format!("set xattr {} on", String::from_utf8_lossy(attr));
                return Err(io_err(name, &op, path, e));
            }
        }
    }
    Ok(())
}

fn set_time(path: &Path, mtime: TimeSpec, name: &str) -> Result<(), TarError> {
    stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &mtime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| io_err(name, "set times of", path, e.into()))
}

fn io_err(entry: &str, op: &str, path: &Path, error: io::Error) -> TarError {
    TarError::Io {
        entry: entry.into(),
        op: op.into(),
        path: path.to_path_buf(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::fs;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    use nix::sys::stat;
    use tar::{EntryType, Header};

    use super::super::UnpackStats;
    use super::super::test_archive::{Ar, is_whiteout, lgetxattr, unpack_into};
    use super::{lsetxattr, unpack};
    use crate::testutil::TempDir;

    #[test]
    fn zeros_become_holes_and_read_back_the_same() {
        let t = TempDir::new("holes");
        let mut data = vec![0u8; 4 << 20];
        data[100] = 7; // data, then 4 MiB of zeros to the end
        let mut ar = Ar::new();
        ar.file("z", &data).file("allzero", &vec![0u8; 1 << 20]);
        unpack_into(&mut ar, &t).unwrap();
        assert_eq!(fs::read(t.path().join("z")).unwrap(), data);
        assert_eq!(fs::read(t.path().join("allzero")).unwrap(), vec![0u8; 1 << 20]);
        // On a filesystem with holes (ext4, tmpfs, xfs) the zeros take no blocks.
        let blocks = fs::metadata(t.path().join("allzero")).unwrap().blocks();
        assert!(blocks < 64, "a file of zeros is a hole: {blocks} blocks");
    }

    #[test]
    fn a_directory_named_again_takes_the_last_time_and_is_kept_once() {
        let t = TempDir::new("dirtwice");
        let mut ar = Ar::new();
        for mtime in [1000, 2000, 3000] {
            ar.entry(b"d/", EntryType::Directory, None, b"", |h| {
                h.set_mtime(mtime)
            });
        }
        ar.file("d/f", b"x");
        unpack_into(&mut ar, &t).unwrap();
        assert_eq!(
            fs::symlink_metadata(t.path().join("d")).unwrap().mtime(),
            3000
        );
    }

    #[test]
    fn plain_files_dirs_modes_and_mtimes() {
        let t = TempDir::new("plain");
        let mut ar = Ar::new();
        ar.entry(b"usr/", EntryType::Directory, None, b"", |h| {
            h.set_mode(0o750);
            h.set_mtime(1000);
        });
        ar.entry(b"usr/bin/tool", EntryType::Regular, None, b"hello", |h| {
            h.set_mode(0o4755);
            h.set_uid(1234);
            h.set_gid(5678);
            h.set_mtime(2000);
        });
        let stats = unpack_into(&mut ar, &t).unwrap();
        assert_eq!(stats, UnpackStats { files: 2, bytes: 5 });
        let tool = t.path().join("usr/bin/tool");
        assert_eq!(fs::read(&tool).unwrap(), b"hello");
        let m = fs::symlink_metadata(&tool).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4755, "setuid bit survives chown");
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
        assert_eq!(m.mtime(), 2000);
        let usr = fs::symlink_metadata(t.path().join("usr")).unwrap();
        assert_eq!(usr.mode() & 0o7777, 0o750);
        assert_eq!(usr.mtime(), 1000, "directory time is set after its content");
        // A parent missing from the archive is created with a default mode.
        let bin = fs::symlink_metadata(t.path().join("usr/bin")).unwrap();
        assert!(bin.is_dir());
    }

    #[test]
    fn absolute_symlink_is_kept_verbatim() {
        let t = TempDir::new("abslink");
        let mut ar = Ar::new();
        ar.symlink("bin/sh", "/bin/busybox");
        unpack_into(&mut ar, &t).unwrap();
        assert_eq!(
            fs::read_link(t.path().join("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
    }

    #[test]
    fn a_directory_replaced_by_a_symlink_is_resolved_anew() {
        // The parent "a/b" is resolved for "a/b/f"; then "a/b" becomes a
        // symlink, and "a/b/g" must follow it, not the remembered directory.
        let t = TempDir::new("reresolve");
        let mut ar = Ar::new();
        ar.dir("x/")
            .dir("a/")
            .dir("a/b/")
            .file("a/b/f", b"f")
            .symlink("a/b", "../x")
            .file("a/b/g", b"g")
            .file("a/b/../c", b"c");
        unpack_into(&mut ar, &t).unwrap();
        assert!(fs::symlink_metadata(t.path().join("a/b")).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(t.path().join("x/g")).unwrap(), b"g");
        assert_eq!(fs::read(t.path().join("a/c")).unwrap(), b"c");
        assert!(!t.path().join("x/f").exists());
    }

    #[test]
    fn final_symlink_is_replaced_not_followed() {
        let t = TempDir::new("replace");
        let mut ar = Ar::new();
        ar.file("target", b"orig")
            .symlink("f", "target")
            .file("f", b"new")
            .dir("d/")
            .file("d/keep", b"k")
            .dir("d/");
        unpack_into(&mut ar, &t).unwrap();
        assert_eq!(fs::read(t.path().join("target")).unwrap(), b"orig");
        let f = fs::symlink_metadata(t.path().join("f")).unwrap();
        assert!(f.is_file());
        assert_eq!(fs::read(t.path().join("f")).unwrap(), b"new");
        assert_eq!(
            fs::read(t.path().join("d/keep")).unwrap(),
            b"k",
            "directory over directory keeps content"
        );
    }

    #[test]
    fn hardlink_inside_shares_the_inode() {
        let t = TempDir::new("hlin");
        let mut ar = Ar::new();
        ar.file("a/orig", b"data").hardlink("b/link", "a/orig");
        unpack_into(&mut ar, &t).unwrap();
        let a = fs::metadata(t.path().join("a/orig")).unwrap();
        let b = fs::metadata(t.path().join("b/link")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.nlink(), 2);
    }

    #[test]
    fn hardlink_missing_target_is_refused() {
        let t = TempDir::new("hlmissing");
        let mut ar = Ar::new();
        ar.hardlink("h", "nope");
        let err = unpack_into(&mut ar, &t).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn whiteout_becomes_char_device_and_removes_existing_content() {
        let t = TempDir::new("wh");
        let mut ar = Ar::new();
        ar.file("d/victim/inner", b"x")
            .file("d/.wh.victim", b"")
            .file(".wh.gone", b"");
        unpack_into(&mut ar, &t).unwrap();
        assert!(is_whiteout(&t.path().join("d/victim")));
        assert!(is_whiteout(&t.path().join("gone")));
        assert!(!t.path().join("d/.wh.victim").exists());
    }

    #[test]
    fn opaque_marker_sets_the_overlay_xattr() {
        let t = TempDir::new("opq");
        let mut ar = Ar::new();
        ar.file("d/.wh..wh..opq", b"")
            .file("d/keep", b"k")
            .file("missing/.wh..wh..opq", b"");
        if let Err(e) = unpack_into(&mut ar, &t) {
            panic!(
                "setting trusted.overlay.opaque under {} failed (is the test root, and does \
                 the filesystem support trusted.* xattrs?): {e}",
                t.path().display()
            );
        }
        for d in ["d", "missing"] {
            let path = t.path().join(d);
            assert!(path.is_dir());
            assert_eq!(lgetxattr(&path, "trusted.overlay.opaque").unwrap(), b"y");
        }
        assert!(!t.path().join("d/.wh..wh..opq").exists());
        assert_eq!(fs::read(t.path().join("d/keep")).unwrap(), b"k");
    }

    #[test]
    fn other_whiteout_meta_names_are_ignored() {
        let t = TempDir::new("plnk");
        let mut ar = Ar::new();
        ar.dir(".wh..wh.plnk/")
            .file(".wh..wh.plnk/123.456", b"")
            .file("a/.wh..wh.aufs", b"");
        let stats = unpack_into(&mut ar, &t).unwrap();
        assert_eq!(stats.files, 0);
        assert!(!t.path().join(".wh..wh.plnk").exists());
        assert!(!t.path().join("a/.wh..wh.aufs").exists());
    }

    #[test]
    fn devices_and_fifos() {
        use std::os::unix::fs::FileTypeExt;
        let t = TempDir::new("dev");
        let mut ar = Ar::new();
        ar.entry(b"dev/null", EntryType::Char, None, b"", |h| {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
            h.set_mode(0o666);
        });
        ar.entry(b"dev/sda", EntryType::Block, None, b"", |h| {
            h.set_device_major(8).unwrap();
            h.set_device_minor(0).unwrap();
        });
        ar.entry(b"run/fifo", EntryType::Fifo, None, b"", |h| {
            h.set_mode(0o620)
        });
        unpack_into(&mut ar, &t).unwrap();
        let null = fs::symlink_metadata(t.path().join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), stat::makedev(1, 3));
        assert_eq!(null.mode() & 0o7777, 0o666);
        let sda = fs::symlink_metadata(t.path().join("dev/sda")).unwrap();
        assert!(sda.file_type().is_block_device());
        assert_eq!(sda.rdev(), stat::makedev(8, 0));
        let fifo = fs::symlink_metadata(t.path().join("run/fifo")).unwrap();
        assert!(fifo.file_type().is_fifo());
        assert_eq!(fifo.mode() & 0o7777, 0o620);
    }

    #[test]
    fn pax_owner_time_and_xattrs() {
        let t = TempDir::new("pax");
        let mut ar = Ar::new();
        ar.pax(
            false,
            &[
                ("uid", b"3000000"),
                ("mtime", b"1700000000.25"),
                ("SCHILY.xattr.user.berth", b"yes"),
                ("SCHILY.xattr.trusted.overlay.redirect", b"/elsewhere"),
            ],
        );
        ar.file("f", b"x");
        unpack_into(&mut ar, &t).unwrap();
        let f = t.path().join("f");
        let m = fs::symlink_metadata(&f).unwrap();
        assert_eq!(m.uid(), 3_000_000);
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_700_000_000, 250_000_000));
        // tmpfs has user.* xattrs only from Linux 6.6: where the directory
        // cannot hold one, the entry still unpacks, without it.
        let probe = t.path().join("probe");
        fs::write(&probe, b"").unwrap();
        if lsetxattr(&probe, b"user.probe", b"1").is_ok() {
            assert_eq!(lgetxattr(&f, "user.berth").unwrap(), b"yes");
        } else {
            assert!(lgetxattr(&f, "user.berth").is_err());
        }
        assert!(
            lgetxattr(&f, "trusted.overlay.redirect").is_err(),
            "overlay xattrs from archives are dropped"
        );
    }

    #[test]
    fn pax_global_header_and_long_names() {
        let t = TempDir::new("long");
        let long_dir = "d".repeat(60);
        let long_path = format!("{long_dir}/{}/file", "e".repeat(70));
        let long_target = format!("/{}", "t".repeat(150));
        let mut ar = Ar::new();
        ar.pax(true, &[("comment", b"0123456789abcdef")]);
        let mut h = Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        ar.0.append_data(&mut h, &long_path, &b"long"[..]).unwrap();
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        ar.0.append_link(&mut h, "ln", &long_target).unwrap();
        unpack_into(&mut ar, &t).unwrap();
        assert_eq!(fs::read(t.path().join(&long_path)).unwrap(), b"long");
        assert_eq!(
            fs::read_link(t.path().join("ln")).unwrap(),
            Path::new(&long_target)
        );
    }

    #[test]
    fn non_utf8_names_are_kept_as_bytes() {
        let t = TempDir::new("bytes");
        let mut ar = Ar::new();
        ar.entry(b"caf\xe9/n\xffme", EntryType::Regular, None, b"z", |_| {});
        unpack_into(&mut ar, &t).unwrap();
        let p = t
            .path()
            .join(OsStr::from_bytes(b"caf\xe9"))
            .join(OsStr::from_bytes(b"n\xffme"));
        assert_eq!(fs::read(p).unwrap(), b"z");
    }

    #[test]
    fn truncated_archive_is_refused() {
        let t = TempDir::new("trunc");
        let mut ar = Ar::new();
        ar.file("big", &[7u8; 2000]);
        let bytes = ar.bytes();
        assert!(unpack(&bytes[..1024], t.path()).is_err());
    }
}
