//! Safe path resolution inside the target: entry names are resolved below it
//! as if it were `/`, so nothing is ever written outside it.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use super::TarError;
use super::limits::{MAX_PATH_DEPTH, path_budget};

/// Same limit as the kernel's: more hops than this is treated as a loop.
pub(super) const MAX_SYMLINK_HOPS: u32 = 40;

/// Splits an entry name into components, dropping "", "." and a leading "/",
/// and applying ".." lexically. `None` when ".." would climb above the top.
pub(super) fn normalise(name: &[u8]) -> Option<Vec<OsString>> {
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

pub(super) fn join(root: &Path, comps: &[OsString]) -> PathBuf {
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
pub(super) enum WalkError {
    Loop,
    /// Symlinks spliced in made the path deeper than the limit (depth so far).
    TooDeep(usize),
    /// ... or longer (bytes so far, bytes allowed).
    TooLong(usize, usize),
    NotDir(Vec<OsString>),
    Missing,
    Io(&'static str, PathBuf, io::Error),
}

/// Resolves `comps` below `root` as the kernel would if `root` were "/": each
/// symlink met is read and spliced in (absolute targets restart at `root`,
/// `..` never goes above it). Returns the components of a real directory,
/// none of them a symlink, so `join(root, result)` can be handed to the
/// kernel safely. Missing directories are created (0755) when `create`.
pub(super) fn walk(
    root: &Path,
    comps: &[OsString],
    create: bool,
) -> Result<Vec<OsString>, WalkError> {
    walk_from(root, Vec::new(), comps, create)
}

/// [`walk`] from `done`, an earlier result (real directories, no symlink),
/// on to `comps`: resolving an entry whose parent was resolved just before
/// costs one lookup instead of one per level.
pub(super) fn walk_from(
    root: &Path,
    mut done: Vec<OsString>,
    comps: &[OsString],
    create: bool,
) -> Result<Vec<OsString>, WalkError> {
    let mut todo: VecDeque<OsString> = comps.iter().cloned().collect();
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
        // Entry names were checked, but spliced symlinks can lengthen them.
        if done.len() + 1 > MAX_PATH_DEPTH {
            return Err(WalkError::TooDeep(done.len() + 1 + todo.len()));
        }
        let len = done.iter().map(|d| d.len() + 1).sum::<usize>() + c.len();
        if len > path_budget(root) {
            return Err(WalkError::TooLong(len, path_budget(root)));
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

pub(super) fn walk_error(e: WalkError, entry: &str) -> TarError {
    match e {
        WalkError::Loop => TarError::SymlinkLoop {
            entry: entry.into(),
        },
        WalkError::TooDeep(depth) => TarError::TooDeep {
            entry: entry.into(),
            depth,
        },
        WalkError::TooLong(len, max) => TarError::PathTooLong {
            entry: entry.into(),
            len,
            max,
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    use tar::EntryType;

    use super::super::TarError;
    use super::super::test_archive::{Ar, unpack_into};
    use crate::testutil::TempDir;

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
}
