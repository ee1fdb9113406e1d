//! Named and anonymous volumes (issue 6), as docker's local driver keeps
//! them: a row in `volumes` and a directory `volumes/<name>/_data`.
//!
//! The caller knows which containers mount what; this area only takes the
//! answer (`users`, `in_use`) so it never reads the container tables.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::UnlinkatFlags;
use rusqlite::OptionalExtension;
use serde::Serialize;

use crate::store::{self, Db, Paths, StoreError};

#[derive(thiserror::Error, Debug)]
pub enum VolumeError {
    #[error("no such volume: {0}")]
    NotFound(String),
    #[error("{0:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed; if you meant a host directory, use an absolute path")]
    BadName(String),
    #[error("volume {name} is in use by container(s) {containers}; remove them first (berth rm)")]
    InUse { name: String, containers: String },
    #[error("invalid volume specification {spec:?}: {why}; accepted forms: NAME:/DST[:ro|rw], /SRC:/DST[:ro|rw], ./SRC:/DST[:ro|rw], /DST[:ro|rw]")]
    BadSpec { spec: String, why: String },
    #[error("invalid volume specification {spec:?}: unknown option {option:?}; options are ro or rw (z, Z, consistent, cached, delegated and nocopy are accepted and ignored)")]
    BadOption { spec: String, option: String },
    #[error("bind source path does not exist: {}", .0.display())]
    BindMissing(PathBuf),
    #[error("volume {name}: {source}")]
    Io { name: String, source: io::Error },
    #[error("volume {name} is removed, but not all of its files could be: {source}; delete what is left by hand")]
    Leftover { name: String, source: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T> = std::result::Result<T, VolumeError>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS volumes(
    name TEXT PRIMARY KEY, created TEXT NOT NULL, anonymous INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '{}'
);";

/// Makes the volumes table (see `network::make_tables`).
pub(crate) fn make_tables(db: &Db) -> std::result::Result<(), StoreError> {
    Ok(db.conn.execute_batch(SCHEMA)?)
}

#[derive(Debug, Clone, Serialize)]
pub struct Volume {
    pub name: String,
    pub created: String,
    pub anonymous: bool,
    pub labels: BTreeMap<String, String>,
    pub mountpoint: PathBuf,
}

pub fn data_path(paths: &Paths, name: &str) -> PathBuf {
    paths.root.join("volumes").join(name).join("_data")
}

fn check_name(name: &str) -> Result<()> {
    let ok = name.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
    if ok { Ok(()) } else { Err(VolumeError::BadName(name.to_string())) }
}

fn row(paths: &Paths, r: &rusqlite::Row) -> rusqlite::Result<Volume> {
    let name: String = r.get(0)?;
    let labels: String = r.get(3)?;
    Ok(Volume {
        mountpoint: data_path(paths, &name),
        name,
        created: r.get(1)?,
        anonymous: r.get(2)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
    })
}

pub fn get(paths: &Paths, db: &Db, name: &str) -> Result<Volume> {
    let v = db
        .conn
        .query_row("SELECT name, created, anonymous, labels FROM volumes WHERE name=?1", [name], |r| row(paths, r))
        .optional()
        .map_err(StoreError::from)?;
    v.ok_or_else(|| VolumeError::NotFound(name.to_string()))
}

pub fn list(paths: &Paths, db: &Db) -> Result<Vec<Volume>> {
    let mut st = db.conn.prepare("SELECT name, created, anonymous, labels FROM volumes ORDER BY name").map_err(StoreError::from)?;
    let v = st.query_map([], |r| row(paths, r)).and_then(|rows| rows.collect()).map_err(StoreError::from)?;
    Ok(v)
}

/// Creates a volume, or returns the existing one of that name as docker
/// does (its labels are left as they were). `None` names it with 64 hex.
pub fn create(paths: &Paths, db: &mut Db, name: Option<&str>, anonymous: bool, labels: &BTreeMap<String, String>) -> Result<Volume> {
    let name = match name {
        Some(n) => {
            check_name(n)?;
            n.to_string()
        }
        None => store::new_id(),
    };
    let labels = serde_json::to_string(labels).expect("a string map serializes");
    let created = store::now_rfc3339();
    // OR IGNORE: a concurrent creator of the same name wins and we return its row.
    let inserted = db.write(|tx| {
        let n = tx.execute(
            "INSERT OR IGNORE INTO volumes(name, created, anonymous, labels) VALUES(?1,?2,?3,?4)",
            rusqlite::params![name, created, anonymous, labels],
        )?;
        Ok(n == 1)
    })?;
    crate::fault!("volume.create");
    // Also for an existing row: a crash may have left it without its directory.
    if let Err(source) = make_data_dir(&data_path(paths, &name)) {
        if inserted {
            let _ = db.write(|tx| Ok(tx.execute("DELETE FROM volumes WHERE name=?1", [&name])?));
        }
        return Err(VolumeError::Io { name, source });
    }
    get(paths, db, &name)
}

/// Makes a recorded volume's directory again (`system check --repair`).
pub fn make_dir(paths: &Paths, name: &str) -> io::Result<()> {
    make_data_dir(&data_path(paths, name))
}

fn make_data_dir(data: &Path) -> io::Result<()> {
    let parent = data.parent().expect("data path has a parent");
    fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).map_err(at(parent))?;
    match fs::DirBuilder::new().mode(0o755).create(data) {
        // Explicitly, as the umask may have narrowed it.
        Ok(()) => fs::set_permissions(data, fs::Permissions::from_mode(0o755)).map_err(at(data)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(at(data)(e)),
    }
}

/// Removes a volume that no container in `users` still mounts: the row
/// first (the intent), then its files.
pub fn remove(paths: &Paths, db: &mut Db, name: &str, users: &[String]) -> Result<()> {
    get(paths, db, name)?;
    if !users.is_empty() {
        return Err(VolumeError::InUse { name: name.to_string(), containers: users.join(", ") });
    }
    db.write(|tx| Ok(tx.execute("DELETE FROM volumes WHERE name=?1", [name])?))?;
    crate::fault!("volume.rm");
    remove_tree(&paths.root.join("volumes").join(name)).map_err(|source| VolumeError::Leftover { name: name.to_string(), source })
}

/// Removes the volumes not in `in_use`: only anonymous ones unless `all`
/// (docker 23 and later). Returns their names and the bytes they used.
pub fn prune(paths: &Paths, db: &mut Db, in_use: &HashSet<String>, all: bool) -> Result<(Vec<String>, u64)> {
    let (mut names, mut bytes) = (Vec::new(), 0);
    for v in list(paths, db)? {
        if in_use.contains(&v.name) || !(all || v.anonymous) {
            continue;
        }
        let size = disk_usage(&v.mountpoint);
        remove(paths, db, &v.name, &[])?;
        names.push(v.name);
        bytes += size;
    }
    Ok((names, bytes))
}

/// Adds the path to an error's message (io::Error carries none).
fn at<E: Into<io::Error>>(path: &Path) -> impl FnOnce(E) -> io::Error + '_ {
    move |e| {
        let e: io::Error = e.into();
        io::Error::new(e.kind(), format!("{}: {e}", path.display()))
    }
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY).union(OFlag::O_NOFOLLOW).union(OFlag::O_CLOEXEC);

fn is_dir(st: &FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits()
}

fn entries(dir: &mut Dir) -> nix::Result<Vec<CString>> {
    dir.iter()
        .filter_map(|e| match e {
            Ok(e) if matches!(e.file_name().to_bytes(), b"." | b"..") => None,
            e => Some(e.map(|e| e.file_name().to_owned())),
        })
        .collect()
}

/// Opens directory `name` under `parent` without following a symlink or
/// entering another mount (EXDEV): st_dev catches other filesystems,
/// RESOLVE_NO_XDEV also bind mounts of the same one.
fn subdir(parent: &Dir, name: &CStr, st: &FileStat, dev: u64) -> nix::Result<Dir> {
    if st.st_dev != dev {
        return Err(Errno::EXDEV);
    }
    let how = OpenHow::new().flags(DIR_FLAGS).resolve(ResolveFlag::RESOLVE_NO_XDEV | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd = match nix::fcntl::openat2(parent, name, how) {
        Err(Errno::ENOSYS) => nix::fcntl::openat(parent, name, DIR_FLAGS, Mode::empty()), // kernels before 5.6
        r => r,
    }?;
    Dir::from_fd(fd)
}

/// Deletes `path` and everything under it through directory fds, so a
/// symlink is removed, never followed; a mount inside stops the removal
/// rather than being emptied.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let mut root = match Dir::open(path, DIR_FLAGS, Mode::empty()) {
        Err(Errno::ENOENT) => return Ok(()),
        r => r.map_err(at(path))?,
    };
    let dev = nix::sys::stat::fstat(&root).map_err(at(path))?.st_dev;
    empty_dir(&mut root, dev, path)?;
    drop(root);
    fs::remove_dir(path).map_err(at(path))
}

/// Deletes everything under `path`, as `remove_tree`, and keeps `path`
/// itself (its mode becomes 0700).
pub(crate) fn empty_tree(path: &Path) -> io::Result<()> {
    let mut root = Dir::open(path, DIR_FLAGS, Mode::empty()).map_err(at(path))?;
    let dev = nix::sys::stat::fstat(&root).map_err(at(path))?.st_dev;
    empty_dir(&mut root, dev, path)
}

fn empty_dir(dir: &mut Dir, dev: u64, path: &Path) -> io::Result<()> {
    // Without CAP_DAC_OVERRIDE a read-only directory would refuse the unlinks.
    let _ = nix::sys::stat::fchmod(&*dir, Mode::S_IRWXU);
    for name in entries(dir).map_err(at(path))? {
        let p = path.join(OsStr::from_bytes(name.to_bytes()));
        let st = nix::sys::stat::fstatat(&*dir, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(at(&p))?;
        let flag = if is_dir(&st) {
            let mut sub = subdir(dir, &name, &st, dev).map_err(|e| match e {
                Errno::EXDEV => io::Error::new(io::ErrorKind::ResourceBusy, format!("{} is a mount point; unmount it first", p.display())),
                e => at(&p)(e),
            })?;
            empty_dir(&mut sub, dev, &p)?;
            UnlinkatFlags::RemoveDir
        } else {
            UnlinkatFlags::NoRemoveDir
        };
        nix::unistd::unlinkat(&*dir, name.as_c_str(), flag).map_err(at(&p))?;
    }
    Ok(())
}

/// Bytes a tree occupies on disk (st_blocks, each inode once), without
/// following symlinks or entering mounts. Unreadable parts count as 0.
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(mut root) = Dir::open(path, DIR_FLAGS, Mode::empty()) else { return 0 };
    let Ok(st) = nix::sys::stat::fstat(&root) else { return 0 };
    st.st_blocks as u64 * 512 + usage(&mut root, st.st_dev, &mut HashSet::new())
}

fn usage(dir: &mut Dir, dev: u64, seen: &mut HashSet<(u64, u64)>) -> u64 {
    let mut sum = 0;
    for name in entries(dir).unwrap_or_default() {
        let Ok(st) = nix::sys::stat::fstatat(&*dir, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else { continue };
        if st.st_nlink > 1 && !seen.insert((st.st_dev, st.st_ino)) {
            continue;
        }
        if is_dir(&st) {
            let Ok(mut sub) = subdir(dir, &name, &st, dev) else { continue };
            sum += usage(&mut sub, dev, seen);
        }
        sum += st.st_blocks as u64 * 512;
    }
    sum
}

/// Copies the image's content at `src` into the fresh volume `dst`, as
/// docker does on first mount: owners, modes, times, symlinks, hard links
/// and device nodes are kept (xattrs are not). Does nothing when `dst`
/// already has content or `src` is not a directory; the caller resolves
/// `src` inside the rootfs, this follows no symlink.
pub fn seed(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(src) {
        Ok(m) if m.is_dir() => m,
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at(src)(e)),
        _ => return Ok(()),
    };
    if fs::read_dir(dst).map_err(at(dst))?.next().is_some() {
        return Ok(());
    }
    copy_dir(src, dst, &mut HashMap::new())?;
    copy_meta(&meta, dst)
}

fn copy_dir(src: &Path, dst: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> io::Result<()> {
    for e in fs::read_dir(src).map_err(at(src))? {
        let e = e.map_err(at(src))?;
        let (s, d) = (e.path(), dst.join(e.file_name()));
        let m = fs::symlink_metadata(&s).map_err(at(&s))?;
        let ft = m.file_type();
        if !ft.is_dir() && m.nlink() > 1 {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                fs::hard_link(first, &d).map_err(at(&d))?;
                continue;
            }
            links.insert((m.dev(), m.ino()), d.clone());
        }
        if ft.is_dir() {
            fs::create_dir(&d).map_err(at(&d))?;
            copy_dir(&s, &d, links)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&s).map_err(at(&s))?, &d).map_err(at(&d))?;
        } else if ft.is_file() {
            fs::copy(&s, &d).map_err(at(&d))?;
        } else {
            let kind = SFlag::from_bits_truncate(m.mode() & SFlag::S_IFMT.bits());
            nix::sys::stat::mknod(&d, kind, Mode::from_bits_truncate(m.mode()), m.rdev()).map_err(at(&d))?;
        }
        // After a directory's content, whose creation would move its mtime.
        copy_meta(&m, &d)?;
    }
    Ok(())
}

/// Owner first (chown clears setuid bits), then mode and times.
fn copy_meta(m: &fs::Metadata, d: &Path) -> io::Result<()> {
    std::os::unix::fs::lchown(d, Some(m.uid()), Some(m.gid())).map_err(at(d))?;
    if !m.file_type().is_symlink() {
        fs::set_permissions(d, fs::Permissions::from_mode(m.mode() & 0o7777)).map_err(at(d))?;
    }
    let (atime, mtime) = (TimeSpec::new(m.atime(), m.atime_nsec()), TimeSpec::new(m.mtime(), m.mtime_nsec()));
    nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, d, &atime, &mtime, UtimensatFlags::NoFollowSymlink).map_err(at(d))
}

/// One `-v` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSpec {
    Named { name: String, target: PathBuf, read_only: bool },
    Bind { source: PathBuf, target: PathBuf, read_only: bool },
    /// `/dst` or `/dst:ro`: a fresh volume with a generated name.
    Anonymous { target: PathBuf, read_only: bool },
}

const IGNORED_OPTIONS: [&str; 6] = ["z", "Z", "consistent", "cached", "delegated", "nocopy"];

fn is_options(s: &str) -> bool {
    s.split(',').all(|o| o == "ro" || o == "rw" || IGNORED_OPTIONS.contains(&o))
}

/// Lexical clean-up (`.`, `..`, doubled and trailing slashes), as docker's
/// filepath.Clean; never touches the filesystem.
pub(crate) fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// Parses `NAME:/DST[:OPTS]`, `/SRC:/DST[:OPTS]`, `./SRC:/DST[:OPTS]` or
/// `/DST[:OPTS]`. Pure but for reading the current directory for `./SRC`.
pub fn parse_spec(s: &str) -> Result<VolumeSpec> {
    let bad = |why: String| VolumeError::BadSpec { spec: s.to_string(), why };
    let parts: Vec<&str> = s.split(':').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad("empty field".into()));
    }
    let (source, target, opts) = match parts[..] {
        [t] => (None, t, None),
        // As docker: `/dst:ro` is an anonymous volume when the second part reads as options.
        [t, o] if is_options(o) => (None, t, Some(o)),
        [s, t] => (Some(s), t, None),
        [s, t, o] => (Some(s), t, Some(o)),
        _ => return Err(bad("too many ':'".into())),
    };
    let mut read_only = None;
    for o in opts.into_iter().flat_map(|o| o.split(',')) {
        match o {
            "ro" | "rw" => {
                if read_only.replace(o == "ro").is_some() {
                    return Err(bad("ro or rw given twice".into()));
                }
            }
            o if IGNORED_OPTIONS.contains(&o) => {}
            o => return Err(VolumeError::BadOption { spec: s.to_string(), option: o.to_string() }),
        }
    }
    let read_only = read_only.unwrap_or(false);
    let target = clean(Path::new(target));
    if !target.is_absolute() {
        return Err(bad(format!("the target {} must be an absolute path", target.display())));
    }
    if target == Path::new("/") {
        return Err(bad("the target cannot be /".into()));
    }
    Ok(match source {
        None => VolumeSpec::Anonymous { target, read_only },
        Some(src) if src.starts_with('/') => VolumeSpec::Bind { source: clean(Path::new(src)), target, read_only },
        Some(src) if src.starts_with('.') => {
            let cwd = std::env::current_dir().map_err(|e| bad(format!("cannot resolve {src}: current directory: {e}")))?;
            VolumeSpec::Bind { source: clean(&cwd.join(src)), target, read_only }
        }
        Some(name) => {
            check_name(name)?;
            VolumeSpec::Named { name: name.to_string(), target, read_only }
        }
    })
}

/// A bind's source must exist. docker's `-v` makes a missing one; berth
/// refuses, as docker's `--mount` does: a typo silently making a host
/// directory is the worse surprise.
pub fn check_bind(spec: &VolumeSpec) -> Result<()> {
    match spec {
        VolumeSpec::Bind { source, .. } if !source.exists() => Err(VolumeError::BindMissing(source.clone())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;
    use crate::testutil::TempDir;

    fn store(t: &TempDir) -> (Paths, Db) {
        let paths = Paths { root: t.0.join("root"), run: t.0.join("run") };
        fs::create_dir_all(&paths.root).unwrap();
        let db = Db::open(&paths).unwrap();
        (paths, db)
    }

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn parse_spec_forms() {
        use VolumeSpec::*;
        let cwd = std::env::current_dir().unwrap();
        let cases = [
            ("data:/data", Named { name: "data".into(), target: p("/data"), read_only: false }),
            ("my.vol_1-x:/d/e/:ro", Named { name: "my.vol_1-x".into(), target: p("/d/e"), read_only: true }),
            ("/srv/x:/x", Bind { source: p("/srv/x"), target: p("/x"), read_only: false }),
            ("/srv//x/../y/:/x:rw,z", Bind { source: p("/srv/y"), target: p("/x"), read_only: false }),
            ("/srv/x:/x:Z,ro,nocopy", Bind { source: p("/srv/x"), target: p("/x"), read_only: true }),
            ("./web:/usr/share", Bind { source: cwd.join("web"), target: p("/usr/share"), read_only: false }),
            ("../up:/u:ro", Bind { source: cwd.parent().unwrap().join("up"), target: p("/u"), read_only: true }),
            (".:/src", Bind { source: cwd.clone(), target: p("/src"), read_only: false }),
            ("/var/lib/db", Anonymous { target: p("/var/lib/db"), read_only: false }),
            ("/cache:ro", Anonymous { target: p("/cache"), read_only: true }),
            ("/a/./b/../c", Anonymous { target: p("/a/c"), read_only: false }),
        ];
        for (s, want) in cases {
            assert_eq!(parse_spec(s).unwrap(), want, "{s}");
        }
    }

    #[test]
    fn parse_spec_errors() {
        let forms = "accepted forms: NAME:/DST";
        for (s, needle) in [
            ("", "empty field"),
            ("data::/x", "empty field"),
            ("/x:", "empty field"),
            ("a:/b:ro:d", "too many ':'"),
            ("data:rel", "the target rel must be an absolute path"),
            ("data", "the target data must be an absolute path"),
            ("data:/", "the target cannot be /"),
            ("/src:/..", "the target cannot be /"),
            ("/src:/x:ro,rw", "ro or rw given twice"),
        ] {
            let e = parse_spec(s).unwrap_err().to_string();
            assert!(e.contains(&format!("{s:?}")) && e.contains(needle) && e.contains(forms), "{s}: {e}");
        }
        let e = parse_spec("data:/x:rx").unwrap_err().to_string();
        assert!(e.starts_with("invalid volume specification \"data:/x:rx\": unknown option \"rx\"; options are ro or rw"), "{e}");
        let e = parse_spec("/x:/y:ro,exec").unwrap_err().to_string();
        assert!(e.contains("unknown option \"exec\""), "{e}");
        // `/src:dst` is a bind with a relative target, not an anonymous volume with option "dst".
        assert!(parse_spec("/src:dst").unwrap_err().to_string().contains("the target dst must be"));
        for bad in ["da ta:/x", "~/x:/y", "-v:/x", "_x:/y"] {
            let e = parse_spec(bad).unwrap_err();
            assert!(matches!(&e, VolumeError::BadName(n) if bad.starts_with(n.as_str())), "{bad}: {e}");
            assert!(e.to_string().contains("use an absolute path"), "{e}");
        }
    }

    #[test]
    fn check_bind_wants_an_existing_source() {
        let t = TempDir::new("bind");
        let spec = |src: &Path| VolumeSpec::Bind { source: src.to_path_buf(), target: p("/x"), read_only: false };
        check_bind(&spec(&t.0)).unwrap();
        let missing = t.0.join("nope");
        assert_eq!(check_bind(&spec(&missing)).unwrap_err().to_string(), format!("bind source path does not exist: {}", missing.display()));
        check_bind(&parse_spec("data:/x").unwrap()).unwrap();
        check_bind(&parse_spec("/x").unwrap()).unwrap();
    }

    #[test]
    fn create_get_list_remove() {
        let t = TempDir::new("crud");
        let (paths, mut db) = store(&t);
        let labels = BTreeMap::from([("role".to_string(), "db".to_string())]);
        let v = create(&paths, &mut db, Some("data"), false, &labels).unwrap();
        assert_eq!((v.name.as_str(), v.anonymous, &v.labels), ("data", false, &labels));
        assert_eq!(v.mountpoint, paths.root.join("volumes/data/_data"));
        assert_eq!(fs::metadata(&v.mountpoint).unwrap().mode() & 0o7777, 0o755);
        fs::write(v.mountpoint.join("f"), "kept").unwrap();

        // Docker semantics: creating it again returns the existing volume, content and all.
        let again = create(&paths, &mut db, Some("data"), true, &BTreeMap::new()).unwrap();
        assert_eq!((again.created.as_str(), again.anonymous, &again.labels), (v.created.as_str(), false, &labels));
        assert_eq!(fs::read_to_string(v.mountpoint.join("f")).unwrap(), "kept");

        let anon = create(&paths, &mut db, None, true, &BTreeMap::new()).unwrap();
        assert!(anon.name.len() == 64 && anon.name.bytes().all(|c| c.is_ascii_hexdigit()), "{}", anon.name);
        assert!(anon.anonymous && anon.mountpoint.is_dir());
        create(&paths, &mut db, Some("alpha"), false, &BTreeMap::new()).unwrap();
        let names: Vec<String> = list(&paths, &db).unwrap().into_iter().map(|v| v.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 3);

        assert!(matches!(create(&paths, &mut db, Some("bad/name"), false, &BTreeMap::new()), Err(VolumeError::BadName(_))));
        assert_eq!(get(&paths, &db, "nope").unwrap_err().to_string(), "no such volume: nope");
        assert_eq!(remove(&paths, &mut db, "nope", &[]).unwrap_err().to_string(), "no such volume: nope");

        let e = remove(&paths, &mut db, "data", &["web".into(), "db".into()]).unwrap_err();
        assert_eq!(e.to_string(), "volume data is in use by container(s) web, db; remove them first (berth rm)");
        assert!(v.mountpoint.join("f").exists());

        remove(&paths, &mut db, "data", &[]).unwrap();
        assert!(!paths.root.join("volumes/data").exists());
        assert!(matches!(get(&paths, &db, "data"), Err(VolumeError::NotFound(_))));
    }

    #[test]
    fn prune_only_unused_and_anonymous_unless_all() {
        let t = TempDir::new("prune");
        let (paths, mut db) = store(&t);
        let none = BTreeMap::new();
        let a1 = create(&paths, &mut db, None, true, &none).unwrap();
        let a2 = create(&paths, &mut db, None, true, &none).unwrap();
        let named = create(&paths, &mut db, Some("named"), false, &none).unwrap();
        create(&paths, &mut db, Some("busy"), false, &none).unwrap();
        fs::write(a1.mountpoint.join("blob"), vec![7u8; 100_000]).unwrap();
        let in_use = HashSet::from([a2.name.clone(), "busy".to_string()]);

        let (gone, bytes) = prune(&paths, &mut db, &in_use, false).unwrap();
        assert_eq!(gone, vec![a1.name.clone()]);
        assert!(bytes >= 100_000, "{bytes}");
        assert!(!a1.mountpoint.exists() && a2.mountpoint.exists() && named.mountpoint.exists());

        let (gone, _) = prune(&paths, &mut db, &in_use, true).unwrap();
        assert_eq!(gone, vec!["named".to_string()]);
        let left: Vec<String> = list(&paths, &db).unwrap().into_iter().map(|v| v.name).collect();
        let mut want = vec![a2.name, "busy".to_string()];
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn remove_copes_with_read_only_and_never_follows_symlinks() {
        let t = TempDir::new("rm");
        let (paths, mut db) = store(&t);
        let outside = t.0.join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("precious"), "x").unwrap();
        let v = create(&paths, &mut db, Some("v1"), false, &BTreeMap::new()).unwrap();
        let ro = v.mountpoint.join("ro");
        fs::create_dir_all(ro.join("deep")).unwrap();
        fs::write(ro.join("deep/file"), "y").unwrap();
        fs::set_permissions(ro.join("deep/file"), fs::Permissions::from_mode(0o400)).unwrap();
        fs::set_permissions(ro.join("deep"), fs::Permissions::from_mode(0o555)).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
        std::os::unix::fs::symlink(&outside, v.mountpoint.join("dirlink")).unwrap();
        std::os::unix::fs::symlink(outside.join("precious"), v.mountpoint.join("filelink")).unwrap();

        remove(&paths, &mut db, "v1", &[]).unwrap();
        assert!(!paths.root.join("volumes/v1").exists());
        assert_eq!(fs::read_to_string(outside.join("precious")).unwrap(), "x");
    }

    /// Unmounts on drop, so a failing test leaves no mount behind.
    struct Mounted(PathBuf);
    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = crate::sys::mount::umount_detach(&self.0);
        }
    }

    #[test]
    fn remove_stops_at_mounts_of_any_kind() {
        let t = TempDir::new("mnt");
        let (paths, mut db) = store(&t);
        let host = t.0.join("host");
        fs::create_dir(&host).unwrap();
        fs::write(host.join("precious"), "x").unwrap();
        // A tmpfs (other st_dev) and a bind of the same filesystem (same st_dev).
        for (name, how) in [("tmpfs", 0), ("bind", 1)] {
            let v = create(&paths, &mut db, Some(name), false, &BTreeMap::new()).unwrap();
            let m = v.mountpoint.join("sub/mnt");
            fs::create_dir_all(&m).unwrap();
            let r = if how == 0 {
                crate::sys::mount::mount(Some("tmpfs"), &m, Some("tmpfs"), nix::mount::MsFlags::empty(), None)
            } else {
                crate::sys::mount::bind(&host, &m, false)
            };
            if let Err(e) = r {
                eprintln!("skipping: cannot mount ({e}); needs root");
                return;
            }
            let _guard = Mounted(m.clone());
            fs::write(m.join("inside"), "y").unwrap();
            let e = remove(&paths, &mut db, name, &[]).unwrap_err().to_string();
            assert!(e.starts_with(&format!("volume {name} is removed, but not all of its files could be: ")), "{e}");
            assert!(e.contains(&format!("{} is a mount point; unmount it first", m.display())), "{e}");
            assert_eq!(fs::read_to_string(m.join("inside")).unwrap(), "y");
        }
        assert_eq!(fs::read_to_string(host.join("precious")).unwrap(), "x");
    }

    #[test]
    fn disk_usage_counts_hard_links_once_and_skips_symlink_targets() {
        let t = TempDir::new("du");
        let d = t.0.join("tree");
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("sub/a"), vec![1u8; 64 * 1024]).unwrap();
        fs::write(t.0.join("big"), vec![1u8; 1 << 20]).unwrap();
        std::os::unix::fs::symlink(t.0.join("big"), d.join("big")).unwrap();
        let before = disk_usage(&d);
        assert!((64 * 1024..1 << 20).contains(&before), "{before}");
        fs::hard_link(d.join("sub/a"), d.join("b")).unwrap();
        assert_eq!(disk_usage(&d), before);
        assert_eq!(disk_usage(&t.0.join("missing")), 0);
    }

    #[test]
    fn seed_keeps_links_modes_owners_and_times() {
        let t = TempDir::new("seed");
        let (src, dst) = (t.0.join("src"), t.0.join("dst"));
        fs::create_dir_all(src.join("d")).unwrap();
        fs::create_dir(&dst).unwrap();
        fs::write(src.join("d/f"), "hello").unwrap();
        fs::set_permissions(src.join("d/f"), fs::Permissions::from_mode(0o4751)).unwrap();
        fs::hard_link(src.join("d/f"), src.join("g")).unwrap();
        std::os::unix::fs::symlink("d/f", src.join("l")).unwrap();
        nix::unistd::mkfifo(&src.join("p"), Mode::empty()).unwrap();
        fs::set_permissions(src.join("p"), fs::Permissions::from_mode(0o620)).unwrap();
        let old = TimeSpec::new(1_600_000_000, 5);
        nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, &src.join("d/f"), &old, &old, UtimensatFlags::NoFollowSymlink).unwrap();
        let root = nix::unistd::geteuid().is_root();
        if root {
            std::os::unix::fs::lchown(src.join("d"), Some(1234), Some(5678)).unwrap();
        }
        fs::set_permissions(src.join("d"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o711)).unwrap();

        seed(&src, &dst).unwrap();
        let md = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap();
        assert_eq!(fs::read_to_string(dst.join("g")).unwrap(), "hello");
        assert_eq!(md("d/f").mode() & 0o7777, 0o4751);
        assert_eq!(md("d/f").ino(), md("g").ino());
        assert_ne!(md("d/f").ino(), fs::metadata(src.join("d/f")).unwrap().ino());
        assert_eq!((md("d/f").mtime(), md("d/f").mtime_nsec()), (1_600_000_000, 5));
        assert_eq!(fs::read_link(dst.join("l")).unwrap(), p("d/f"));
        assert!(md("p").file_type().is_fifo() && md("p").mode() & 0o777 == 0o620);
        assert_eq!(md("d").mode() & 0o7777, 0o750);
        assert_eq!(md("").mode() & 0o7777, 0o711);
        if root {
            assert_eq!((md("d").uid(), md("d").gid()), (1234, 5678));
        }

        // Only an empty volume is seeded.
        let other = t.0.join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("new"), "n").unwrap();
        seed(&other, &dst).unwrap();
        assert!(!dst.join("new").exists());
        // No image content there: nothing to do.
        seed(&t.0.join("missing"), &other).unwrap();
    }
}
