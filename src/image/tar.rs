//! Unpacking image layer tarballs (and `berth image import` root filesystem
//! archives) into a directory that becomes an overlayfs lower dir.
//!
//! The extractor must never write outside its target, whatever the archive
//! says. Every path it touches is computed by [`walk`], which resolves entry
//! names below the target as if the target were `/`: symlinks met on the way
//! are read and spliced in by us (absolute targets restart at the target,
//! `..` stops at it), so the kernel only ever sees paths whose directory part
//! is made of real directories. The final component of a path is never
//! followed: an entry replaces what was there instead of writing through it.
//!
//! OCI/docker whiteouts (`.wh.name`, `.wh..wh..opq`) are converted to the
//! overlayfs form (a 0:0 character device, the `trusted.overlay.opaque`
//! xattr), so this needs root on a filesystem with `trusted.*` xattrs.
//!
//! On error the target is left half-filled: the caller removes it.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{self, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::EntryType;

/// Same limit as the kernel's: more hops than this is treated as a loop.
const MAX_SYMLINK_HOPS: u32 = 40;
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// `.wh..wh.` names are AUFS bookkeeping; only the opaque marker means something.
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";
const XATTR_PAX_PREFIX: &[u8] = b"SCHILY.xattr.";

/// What [`unpack`] wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    /// Filesystem objects created from entries (files, dirs, links, devices, whiteouts).
    pub files: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
}

#[derive(thiserror::Error, Debug)]
pub enum TarError {
    #[error(
        "the archive is compressed with {0}, which berth cannot decompress yet; \
         provide it gzip-compressed or uncompressed"
    )]
    Unsupported(&'static str),
    #[error("reading the layer archive: {0}")]
    Read(io::Error),
    #[error("cannot unpack into {}: {error}", path.display())]
    Target { path: PathBuf, error: io::Error },
    #[error("layer entry \"{entry}\" climbs out of the target directory; refusing the archive")]
    Escape { entry: String },
    #[error(
        "layer entry \"{entry}\" is a hard link to \"{target}\", which {reason}; refusing the archive"
    )]
    HardLink {
        entry: String,
        target: String,
        reason: &'static str,
    },
    #[error(
        "layer entry \"{entry}\": more than {MAX_SYMLINK_HOPS} symbolic links while resolving \
         its path (a symlink loop?); refusing the archive"
    )]
    SymlinkLoop { entry: String },
    #[error(
        "layer entry \"{entry}\": \"{component}\" is not a directory, so nothing can be \
         placed under it; refusing the archive"
    )]
    NotADirectory { entry: String, component: String },
    #[error("layer entry \"{entry}\" is {what}, which berth cannot unpack")]
    UnsupportedEntry { entry: String, what: String },
    #[error("layer entry \"{entry}\" is malformed: {detail}")]
    BadEntry { entry: String, detail: String },
    #[error("layer entry \"{entry}\": cannot {op} {}: {error}", path.display())]
    Io {
        entry: String,
        op: String,
        path: PathBuf,
        error: io::Error,
    },
}

// ---------------------------------------------------------------------------
// Decompression

enum Format {
    Tar,
    Gzip,
    Zstd,
    Other(&'static str),
}

/// Wraps a reader, sniffing gzip (1f 8b), zstd (28 b5 2f fd) or plain tar.
/// xz and bzip2 (not used by image layers) are recognised only to report
/// [`TarError::Unsupported`] instead of a confusing "bad tar header".
pub fn decompressed<'a, R: Read + 'a>(mut r: R) -> Result<Box<dyn Read + 'a>, TarError> {
    // One tar block is enough to see both compression magics and "ustar".
    let head = read_head(&mut r, 512).map_err(TarError::Read)?;
    let format = sniff(&head);
    let whole = io::Cursor::new(head).chain(r);
    match format {
        Format::Tar => Ok(Box::new(whole)),
        // Multi-member: some tools write layers as concatenated gzip streams.
        Format::Gzip => Ok(Box::new(flate2::read::MultiGzDecoder::new(whole))),
        Format::Zstd => Ok(Box::new(zstd::stream::read::Decoder::new(whole).map_err(TarError::Read)?)),
        Format::Other(name) => Err(TarError::Unsupported(name)),
    }
}

/// Reads up to `n` bytes, looping over short reads so sniffing sees them all.
fn read_head<R: Read>(r: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

fn sniff(head: &[u8]) -> Format {
    // A ustar header wins: its first bytes are a file name, which could
    // accidentally look like a magic number.
    if head.get(257..262) == Some(b"ustar") {
        return Format::Tar;
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        Format::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Format::Zstd
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Format::Other("xz")
    } else if head.starts_with(b"BZh") {
        Format::Other("bzip2")
    } else {
        Format::Tar
    }
}

// ---------------------------------------------------------------------------
// Path handling

/// Splits an entry name into components, dropping "", "." and a leading "/",
/// and applying ".." lexically. `None` when ".." would climb above the top.
fn normalise(name: &[u8]) -> Option<Vec<OsString>> {
    let mut out: Vec<OsString> = Vec::new();
    for part in name.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            _ => out.push(OsStr::from_bytes(part).to_os_string()),
        }
    }
    Some(out)
}

/// AUFS keeps bookkeeping in `.wh..wh.*` entries at the top; overlayfs has no use for them.
fn is_aufs_meta(comps: &[OsString]) -> bool {
    comps.first().is_some_and(|c| {
        let c = c.as_bytes();
        c.starts_with(WHITEOUT_META_PREFIX) && (c != OPAQUE_MARKER || comps.len() > 1)
    })
}

fn join(root: &Path, comps: &[OsString]) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(comps);
    p
}

fn shown(comps: &[OsString]) -> String {
    let joined: Vec<_> = comps.iter().map(|c| c.to_string_lossy()).collect();
    joined.join("/")
}

/// Why [`walk`] stopped; the caller turns it into a [`TarError`] naming the entry.
#[derive(Debug)]
enum WalkError {
    Loop,
    NotDir(Vec<OsString>),
    Missing,
    Io(&'static str, PathBuf, io::Error),
}

/// Resolves `comps` below `root` as the kernel would if `root` were "/": each
/// symlink met is read and spliced in (absolute targets restart at `root`,
/// `..` never goes above it). Returns the components of a real directory,
/// none of them a symlink, so `join(root, result)` can be handed to the
/// kernel safely. Missing directories are created (0755) when `create`.
fn walk(root: &Path, comps: &[OsString], create: bool) -> Result<Vec<OsString>, WalkError> {
    let mut todo: VecDeque<OsString> = comps.iter().cloned().collect();
    let mut done: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        if c.is_empty() || c == "." {
            continue;
        }
        if c == ".." {
            // `done` holds real directories only, so lexical ".." is the physical parent.
            done.pop();
            continue;
        }
        let path = join(root, &done).join(&c);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => done.push(c),
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(WalkError::Loop);
                }
                let target =
                    fs::read_link(&path).map_err(|e| WalkError::Io("read symlink", path, e))?;
                splice_link(&target, &mut done, &mut todo);
            }
            Ok(_) => {
                done.push(c);
                return Err(WalkError::NotDir(done));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&path)
                    .map_err(|e| WalkError::Io("create directory", path, e))?;
                done.push(c);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(WalkError::Missing),
            Err(e) => return Err(WalkError::Io("inspect", path, e)),
        }
    }
    Ok(done)
}

/// Puts a symlink's target in front of the remaining components.
fn splice_link(target: &Path, done: &mut Vec<OsString>, todo: &mut VecDeque<OsString>) {
    if target.is_absolute() {
        // Absolute targets are relative to the image root, i.e. to `root`.
        done.clear();
    }
    for comp in target.components().rev() {
        match comp {
            Component::Normal(n) => todo.push_front(n.to_os_string()),
            Component::ParentDir => todo.push_front(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

fn walk_error(e: WalkError, entry: &str) -> TarError {
    match e {
        WalkError::Loop => TarError::SymlinkLoop {
            entry: entry.into(),
        },
        WalkError::NotDir(comps) => TarError::NotADirectory {
            entry: entry.into(),
            component: shown(&comps),
        },
        // Only hard links walk without creating, and they map this themselves.
        WalkError::Missing => TarError::BadEntry {
            entry: entry.into(),
            detail: "a parent directory is missing".into(),
        },
        WalkError::Io(op, path, error) => TarError::Io {
            entry: entry.into(),
            op: op.into(),
            path,
            error,
        },
    }
}

// ---------------------------------------------------------------------------
// Entry metadata

/// Ownership, permissions, time and xattrs of one entry, PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, TarError> {
    let bad = |what: &str, e: io::Error| TarError::BadEntry {
        entry: name.into(),
        detail: format!("invalid {what} field: {e}"),
    };
    let h = entry.header();
    let old = h.as_old();
    let mode = numeric(h.mode(), &old.mode).map_err(|e| bad("mode", e))? & 0o7777;
    let mut uid = numeric(h.uid(), &old.uid).map_err(|e| bad("uid", e))?;
    let mut gid = numeric(h.gid(), &old.gid).map_err(|e| bad("gid", e))?;
    let secs = numeric(h.mtime(), &old.mtime).map_err(|e| bad("mtime", e))?;
    let mut mtime = TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0);
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(TarError::Read)? {
        for ext in exts {
            let ext = ext.map_err(|e| bad("pax", e))?;
            let (key, value) = (ext.key_bytes(), ext.value_bytes());
            match key {
                // PAX carries ids and times that do not fit the ustar fields.
                b"uid" => uid = parse_pax_u64(value).ok_or_else(|| bad("pax uid", other()))?,
                b"gid" => gid = parse_pax_u64(value).ok_or_else(|| bad("pax gid", other()))?,
                b"mtime" => mtime = parse_pax_time(value).unwrap_or(mtime),
                _ => {
                    if let Some(attr) = key.strip_prefix(XATTR_PAX_PREFIX) {
                        xattrs.push((attr.to_vec(), value.to_vec()));
                    }
                }
            }
        }
    }
    let id = |v: u64, what| u32::try_from(v).map_err(|_| bad(what, io::Error::other("too large")));
    Ok(Meta {
        mode,
        uid: id(uid, "uid")?,
        gid: id(gid, "gid")?,
        mtime,
        xattrs,
    })
}

/// Some writers leave numeric fields blank (NUL or spaces) for 0; the tar
/// crate rejects those, so a blank raw field reads as the default.
fn numeric<T: Default>(value: io::Result<T>, raw: &[u8]) -> io::Result<T> {
    match value {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(T::default()),
        v => v,
    }
}

fn other() -> io::Error {
    io::Error::other("not a number")
}

fn parse_pax_u64(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Parses a PAX time such as "1700000000.123456789" or "-1.5".
fn parse_pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut secs: i64 = whole.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let mut nanos: i64 = digits.parse().ok()?;
    if neg {
        // timespec wants a non-negative nanosecond part: -1.5 is -2 s + 0.5 s.
        secs = -secs;
        if nanos > 0 {
            secs -= 1;
            nanos = 1_000_000_000 - nanos;
        }
    }
    Some(TimeSpec::new(secs, nanos as _))
}

/// Sets an extended attribute on the entry itself (a symlink is not
/// followed).
fn lsetxattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    xattr::set(path, std::ffi::OsStr::from_bytes(name), value)
}

// ---------------------------------------------------------------------------
// Unpacking

/// A directory whose times are applied at the end, once nothing more is
/// written into it. Its identity is kept so that, if a later entry replaced
/// it, the times do not land on whatever took its place.
struct DirTime {
    comps: Vec<OsString>,
    dev: u64,
    ino: u64,
    mtime: TimeSpec,
    entry: String,
}

struct Unpacker<'a> {
    root: &'a Path,
    stats: UnpackStats,
    dir_times: Vec<DirTime>,
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
        dir_times: Vec::new(),
    };
    let mut archive = tar::Archive::new(src);
    for entry in archive.entries().map_err(TarError::Read)? {
        let mut entry = entry.map_err(TarError::Read)?;
        u.entry(&mut entry)?;
    }
    u.finish_dir_times()?;
    Ok(u.stats)
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
        let name = String::from_utf8_lossy(&raw).into_owned();
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
        let parent = walk(self.root, parent, true).map_err(|e| walk_error(e, &name))?;
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
        clear_slot(path, false, name)?;
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
        if clear_slot(path, true, name)? {
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
        clear_slot(path, false, name)?;
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
        let parent = walk(self.root, parent, false).map_err(|e| match e {
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
        clear_slot(path, false, name)?;
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
        clear_slot(path, false, name)?;
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
        let parent = walk(self.root, parent, true).map_err(|e| walk_error(e, name))?;
        let path = join(self.root, &parent).join(OsStr::from_bytes(hidden));
        clear_slot(&path, false, name)?;
        // overlayfs's whiteout: a character device with device number 0:0.
        stat::mknod(&path, SFlag::S_IFCHR, Mode::empty(), stat::makedev(0, 0))
            .map_err(|e| io_err(name, "create whiteout", &path, e.into()))?;
        self.stats.files += 1;
        Ok(())
    }

    fn opaque(&mut self, dir: &[OsString], name: &str) -> Result<(), TarError> {
        let dir = walk(self.root, dir, true).map_err(|e| walk_error(e, name))?;
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
        self.dir_times.push(DirTime {
            comps,
            dev: m.dev(),
            ino: m.ino(),
            mtime,
            entry: name.into(),
        });
        Ok(())
    }

    /// Applies directory times last, since writing into a directory changes
    /// its mtime. Paths are resolved again: later entries may have moved things.
    fn finish_dir_times(&mut self) -> Result<(), TarError> {
        for d in self.dir_times.iter().rev() {
            let Ok(real) = walk(self.root, &d.comps, false) else {
                continue; // removed by a later entry
            };
            let path = join(self.root, &real);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.dev() == d.dev && m.ino() == d.ino => {
                    set_time(&path, d.mtime, &d.entry)?
                }
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

/// Makes room for a new entry at `path` without following a final symlink.
/// Returns true when `path` is a directory and the new entry is one too,
/// in which case it is kept (only its metadata will change).
fn clear_slot(path: &Path, new_is_dir: bool, name: &str) -> Result<bool, TarError> {
    let m = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(name, "inspect", path, e)),
    };
    if m.is_dir() && new_is_dir {
        return Ok(true);
    }
    let removed = if m.is_dir() {
        // A non-directory replaces a whole directory, as in docker's applier.
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    removed.map_err(|e| io_err(name, "remove the existing", path, e))?;
    Ok(false)
}

/// Copies an entry's content, telling archive read errors from write errors.
fn copy_content<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    file: &mut fs::File,
    path: &Path,
    name: &str,
) -> Result<u64, TarError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(TarError::Read(e)),
        };
        file.write_all(&buf[..n])
            .map_err(|e| io_err(name, "write", path, e))?;
        total += n as u64;
    }
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
    use super::*;
    use crate::testutil::TempDir;
    use tar::Header;

    const MTIME: u64 = 1_600_000_000;

    /// Builds archives entry by entry, writing names as raw bytes so that
    /// hostile names (`..`, absolute, non-UTF-8) get through.
    struct Ar(tar::Builder<Vec<u8>>);

    impl Ar {
        fn new() -> Ar {
            Ar(tar::Builder::new(Vec::new()))
        }

        fn entry(
            &mut self,
            name: &[u8],
            kind: EntryType,
            link: Option<&[u8]>,
            data: &[u8],
            tweak: impl FnOnce(&mut Header),
        ) -> &mut Ar {
            let mut h = Header::new_gnu();
            {
                let g = h.as_gnu_mut().unwrap();
                g.name[..name.len()].copy_from_slice(name);
                if let Some(l) = link {
                    g.linkname[..l.len()].copy_from_slice(l);
                }
            }
            h.set_entry_type(kind);
            h.set_mode(if kind == EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(MTIME);
            h.set_size(data.len() as u64);
            tweak(&mut h);
            h.set_cksum();
            self.0.append(&h, data).unwrap();
            self
        }

        fn file(&mut self, name: &str, data: &[u8]) -> &mut Ar {
            self.entry(name.as_bytes(), EntryType::Regular, None, data, |_| {})
        }
        fn dir(&mut self, name: &str) -> &mut Ar {
            self.entry(name.as_bytes(), EntryType::Directory, None, b"", |_| {})
        }
        fn symlink(&mut self, name: &str, target: &str) -> &mut Ar {
            self.entry(
                name.as_bytes(),
                EntryType::Symlink,
                Some(target.as_bytes()),
                b"",
                |_| {},
            )
        }
        fn hardlink(&mut self, name: &str, target: &str) -> &mut Ar {
            self.entry(
                name.as_bytes(),
                EntryType::Link,
                Some(target.as_bytes()),
                b"",
                |_| {},
            )
        }

        /// A PAX header ('x' local, 'g' global) with the given records.
        fn pax(&mut self, global: bool, records: &[(&str, &[u8])]) -> &mut Ar {
            let mut body = Vec::new();
            for (k, v) in records {
                let rest = k.len() + v.len() + 3; // ' ', '=', '\n'
                let mut len = rest + 1;
                while len != rest + len.to_string().len() {
                    len = rest + len.to_string().len();
                }
                body.extend_from_slice(format!("{len} {k}=").as_bytes());
                body.extend_from_slice(v);
                body.push(b'\n');
            }
            let mut h = Header::new_ustar();
            h.set_path("PaxHeaders/x").unwrap();
            h.set_entry_type(if global {
                EntryType::XGlobalHeader
            } else {
                EntryType::XHeader
            });
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            self.0.append(&h, &body[..]).unwrap();
            self
        }

        fn bytes(&mut self) -> Vec<u8> {
            self.0.finish().unwrap();
            self.0.get_ref().clone()
        }
    }

    fn unpack_into(ar: &mut Ar, dest: &TempDir) -> Result<UnpackStats, TarError> {
        unpack(&ar.bytes()[..], dest.path())
    }

    fn lgetxattr(path: &Path, name: &str) -> io::Result<Vec<u8>> {
        xattr::get(path, name)?.ok_or_else(|| io::Error::from_raw_os_error(libc::ENODATA))
    }

    fn is_whiteout(path: &Path) -> bool {
        use std::os::unix::fs::FileTypeExt;
        let m = fs::symlink_metadata(path).unwrap();
        m.file_type().is_char_device() && m.rdev() == 0
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
    fn leading_slash_and_dot_are_stripped_and_root_entry_applies_to_dest() {
        let t = TempDir::new("strip");
        let mut ar = Ar::new();
        ar.entry(b"./", EntryType::Directory, None, b"", |h| {
            h.set_mode(0o711)
        });
        ar.file("/abs/file", b"a").file("./rel/file", b"r");
        unpack_into(&mut ar, &t).unwrap();
        assert_eq!(fs::read(t.path().join("abs/file")).unwrap(), b"a");
        assert_eq!(fs::read(t.path().join("rel/file")).unwrap(), b"r");
        assert_eq!(fs::metadata(t.path()).unwrap().mode() & 0o7777, 0o711);
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
    fn write_through_absolute_symlink_lands_inside() {
        let t = TempDir::new("etclink");
        let mut ar = Ar::new();
        ar.dir("real/etc/")
            .symlink("etc", "/real/etc")
            .file("etc/hosts", b"127.0.0.1 x\n");
        unpack_into(&mut ar, &t).unwrap();
        assert_eq!(
            fs::read(t.path().join("real/etc/hosts")).unwrap(),
            b"127.0.0.1 x\n"
        );
        assert!(
            fs::symlink_metadata(t.path().join("etc"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn dotdot_escape_is_refused() {
        let t = TempDir::new("dotdot");
        let mut ar = Ar::new();
        ar.file("../../x", b"evil");
        let err = unpack_into(&mut ar, &t).unwrap_err();
        assert!(matches!(err, TarError::Escape { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "layer entry \"../../x\" climbs out of the target directory; refusing the archive"
        );
    }

    #[test]
    fn inner_dotdot_escape_is_refused() {
        let t = TempDir::new("innerdotdot");
        let mut ar = Ar::new();
        ar.file("a/../../x", b"evil");
        let err = unpack_into(&mut ar, &t).unwrap_err();
        assert!(
            matches!(err, TarError::Escape { ref entry } if entry == "a/../../x"),
            "{err}"
        );
    }

    #[test]
    fn dotdot_staying_inside_is_fine() {
        let t = TempDir::new("dotdotok");
        let mut ar = Ar::new();
        ar.file("a/../b", b"ok");
        unpack_into(&mut ar, &t).unwrap();
        assert_eq!(fs::read(t.path().join("b")).unwrap(), b"ok");
    }

    #[test]
    fn symlink_to_root_is_confined() {
        let t = TempDir::new("evilroot");
        let marker = format!("berth-tar-test-{}", std::process::id());
        let mut ar = Ar::new();
        ar.symlink("evil", "/")
            .file("evil/etc/passwd", marker.as_bytes());
        unpack_into(&mut ar, &t).unwrap();
        assert_eq!(
            fs::read(t.path().join("etc/passwd")).unwrap(),
            marker.as_bytes()
        );
        let host = fs::read("/etc/passwd").unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&host).contains(&marker),
            "host /etc/passwd was written"
        );
    }

    #[test]
    fn relative_symlink_climbing_is_confined() {
        let t = TempDir::new("up");
        let name = format!("berth-tar-up-{}", std::process::id());
        let mut ar = Ar::new();
        ar.symlink("up", "../../..")
            .file(&format!("up/{name}"), b"x");
        unpack_into(&mut ar, &t).unwrap();
        assert_eq!(fs::read(t.path().join(&name)).unwrap(), b"x");
        assert!(!Path::new("/").join(&name).exists());
        assert!(!std::env::temp_dir().join(&name).exists());
    }

    #[test]
    fn symlink_loop_is_refused() {
        let t = TempDir::new("loop");
        let mut ar = Ar::new();
        ar.symlink("a", "b").symlink("b", "a").file("a/x", b"x");
        let err = unpack_into(&mut ar, &t).unwrap_err();
        assert!(
            matches!(err, TarError::SymlinkLoop { ref entry } if entry == "a/x"),
            "{err}"
        );
    }

    #[test]
    fn file_under_a_file_is_refused() {
        let t = TempDir::new("notdir");
        let mut ar = Ar::new();
        ar.file("f", b"x").file("f/g", b"y");
        let err = unpack_into(&mut ar, &t).unwrap_err();
        assert!(
            matches!(err, TarError::NotADirectory { ref component, .. } if component == "f"),
            "{err}"
        );
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
    fn hardlink_outside_is_refused() {
        let t = TempDir::new("hlout");
        let mut ar = Ar::new();
        ar.hardlink("h", "../outside");
        let err = unpack_into(&mut ar, &t).unwrap_err();
        assert!(matches!(err, TarError::HardLink { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("\"h\"") && msg.contains("\"../outside\""),
            "{msg}"
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
    fn hardlink_through_symlink_parent_stays_inside_or_is_refused() {
        // Pointing at the host's /etc: nothing there inside dest, so refused.
        let t = TempDir::new("hlsym1");
        let host_links = fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();
        let mut ar = Ar::new();
        ar.symlink("out", "/etc").hardlink("h", "out/passwd");
        let err = unpack_into(&mut ar, &t).unwrap_err();
        assert!(matches!(err, TarError::HardLink { .. }), "{err}");
        assert_eq!(
            fs::metadata("/etc/passwd").map(|m| m.nlink()).ok(),
            host_links
        );

        // With dest/etc/passwd present, the link goes to that one.
        let t = TempDir::new("hlsym2");
        let mut ar = Ar::new();
        ar.file("etc/passwd", b"inner")
            .symlink("out", "../../../etc")
            .hardlink("h", "out/passwd");
        unpack_into(&mut ar, &t).unwrap();
        let inner = fs::metadata(t.path().join("etc/passwd")).unwrap();
        let h = fs::metadata(t.path().join("h")).unwrap();
        assert_eq!(inner.ino(), h.ino());
        assert_eq!(
            fs::metadata("/etc/passwd").map(|m| m.nlink()).ok(),
            host_links
        );
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

    #[test]
    fn gzip_input_is_decompressed() {
        let t = TempDir::new("gzip");
        let mut ar = Ar::new();
        ar.file("hello.txt", b"from gzip");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&ar.bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let stats = unpack(decompressed(&gz[..]).unwrap(), t.path()).unwrap();
        assert_eq!(stats, UnpackStats { files: 1, bytes: 9 });
        assert_eq!(fs::read(t.path().join("hello.txt")).unwrap(), b"from gzip");
    }

    #[test]
    fn plain_tar_passes_through_decompressed() {
        let t = TempDir::new("plaintar");
        let mut ar = Ar::new();
        ar.file("p", b"plain");
        let bytes = ar.bytes();
        unpack(decompressed(&bytes[..]).unwrap(), t.path()).unwrap();
        assert_eq!(fs::read(t.path().join("p")).unwrap(), b"plain");
    }

    #[test]
    fn zstd_input_is_decompressed() {
        let t = TempDir::new("zstd");
        let mut ar = Ar::new();
        ar.file("z", b"zstd layer");
        let packed = zstd::stream::encode_all(&ar.bytes()[..], 3).unwrap();
        unpack(decompressed(&packed[..]).unwrap(), t.path()).unwrap();
        assert_eq!(fs::read(t.path().join("z")).unwrap(), b"zstd layer");
    }

    #[test]
    fn xz_is_unsupported() {
        let data = [0xfdu8, b'7', b'z', b'X', b'Z', 0, 0, 0];
        let err = decompressed(&data[..]).err().expect("xz must be refused");
        assert!(matches!(err, TarError::Unsupported("xz")), "{err}");
    }

    #[test]
    fn pax_time_parsing() {
        let t = parse_pax_time(b"-1.5").unwrap();
        assert_eq!((t.tv_sec(), t.tv_nsec()), (-2, 500_000_000));
        let t = parse_pax_time(b"12.000000001999").unwrap();
        assert_eq!((t.tv_sec(), t.tv_nsec()), (12, 1));
        assert!(parse_pax_time(b"12.x").is_none());
    }
}
