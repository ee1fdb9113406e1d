//! Spare container directories: a removed container's directory, emptied,
//! waits under `ROOT/spare` for the next create to rename it into place.
//!
//! Why: a container directory is a dozen inodes (itself, upper, work,
//! merged, the bundle and the files bound into the container), and on
//! ext4 each costs an allocation when made and a free when removed; where
//! ext4 runs without a journal it also scans past every inode freed in the
//! last minute, and with `discard` each freed directory block waits for a
//! TRIM. Back to back that was 1 to 2 ms of a 15 ms `run --rm`. A reused
//! directory costs a rename and a few resets instead.
//!
//! What a spare keeps is reset so nothing of the old container reaches the
//! new one: `upper` and `work` are emptied, and upper (the new root's
//! attributes) and the files bound into the container get the mode, owner
//! and (no) extended attributes a fresh one would have. Anything else goes.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::store::Paths;

/// Spares kept at most: a lab torn down and brought up again reuses this
/// many; the rest are deleted as before. About 20 KiB of disk each.
const MAX: usize = 32;

/// Files a spare keeps (emptied or rewritten by the next create).
const FILES: [&str; 6] = ["config.json", "hostname", "hosts", "resolv.conf", "log.jsonl", "monitor.log"];
/// Of those, the ones bound into the container, where its root may have
/// changed their mode, owner or extended attributes.
const BOUND: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

/// Renames a spare into place as `dir` (which must not exist). False when
/// there is none; the caller makes the directory as usual.
pub fn take(paths: &Paths, dir: &Path) -> bool {
    let spares = paths.spares();
    let Ok(list) = std::fs::read_dir(&spares) else { return false };
    // Another create may take the same one first: its rename wins, ours
    // finds nothing and tries the next. A name with a dot is still being
    // reset (`Pending`).
    list.flatten().filter(|e| !e.file_name().to_string_lossy().starts_with('.')).any(|e| std::fs::rename(e.path(), dir).is_ok())
}

/// A container directory moved out of `containers/` under a name `take`
/// passes over, still to be reset. The container is gone once it is set
/// aside; a monitor tells its client so and resets the directory after,
/// off the path of a `run --rm` that waits for the removal.
pub struct Pending {
    at: std::path::PathBuf,
    to: std::path::PathBuf,
}

/// Moves the removed container's directory `dir` among the spares, not
/// yet to be taken; the caller has made sure no process or mount still
/// uses it. None when there is no room (or no rename): the caller deletes
/// `dir`.
pub fn set_aside(paths: &Paths, dir: &Path) -> Option<Pending> {
    let spares = paths.spares();
    if std::fs::read_dir(&spares).map(|l| l.count() >= MAX).unwrap_or(false) {
        return None;
    }
    // The caller saw no mount on it; a file here means it was never ours.
    if std::fs::read_dir(dir.join("merged")).ok()?.next().is_some() {
        tracing::debug!("{} not kept as a spare: merged is not empty", dir.display());
        return None;
    }
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let _ = std::fs::create_dir(&spares);
    let p = Pending { at: spares.join(format!(".{name}")), to: spares.join(&name) };
    std::fs::rename(dir, &p.at).ok()?;
    Some(p)
}

impl Pending {
    /// Resets the directory and offers it to `take`; deletes it when it
    /// cannot be kept. True when kept.
    pub fn finish(self) -> bool {
        let kept = match reset(&self.at) {
            Ok(()) => std::fs::rename(&self.at, &self.to).is_ok(),
            Err(e) => {
                tracing::debug!("{} not kept as a spare: {e}", self.at.display());
                false
            }
        };
        if !kept {
            let _ = crate::volume::remove_tree(&self.at);
        }
        kept
    }
}

fn reset(dir: &Path) -> io::Result<()> {
    let me = std::fs::symlink_metadata(dir)?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        let t = e.file_type()?;
        let keep = match &*name {
            "upper" | "work" | "merged" => t.is_dir(),
            n => FILES.contains(&n) && t.is_file(),
        };
        if !keep {
            if t.is_dir() {
                crate::volume::remove_tree(&e.path())?;
            } else {
                std::fs::remove_file(e.path())?;
            }
        }
    }
    for d in ["upper", "work"] {
        crate::volume::empty_tree(&dir.join(d))?;
    }
    // The new container's root takes upper's attributes; the container
    // directory's own are what a fresh mkdir by this user gave.
    like(&dir.join("upper"), &me, me.mode() & 0o7777)?;
    // The bound files' mode as create writes them: config.json's, which
    // no container sees.
    let file_mode = std::fs::symlink_metadata(dir.join("config.json")).map(|m| m.mode() & 0o7777).unwrap_or(0o644);
    for f in BOUND {
        let p = dir.join(f);
        if p.exists() {
            like(&p, &me, file_mode)?;
        }
    }
    for f in ["log.jsonl", "monitor.log"] {
        let p = dir.join(f);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.len() > 0) {
            std::fs::OpenOptions::new().write(true).open(&p)?.set_len(0)?;
        }
    }
    Ok(())
}

/// Writes a file of the container's directory over what a spare held.
pub fn write(path: &Path, data: impl AsRef<[u8]>) -> io::Result<()> {
    crate::sys::write_in_place(path, data, true)
}

/// Owner of `reference`, mode `mode`, no extended attributes (an ACL, a
/// capability or an overlay mark a container left).
fn like(path: &Path, reference: &std::fs::Metadata, mode: u32) -> io::Result<()> {
    let m = std::fs::symlink_metadata(path)?;
    if m.uid() != reference.uid() || m.gid() != reference.gid() {
        std::os::unix::fs::lchown(path, Some(reference.uid()), Some(reference.gid()))?;
    }
    if m.mode() & 0o7777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    crate::sys::xattr::clear(path)
}

/// Deletes every spare (`system prune`, a root being reset).
pub fn clear(paths: &Paths) {
    for e in std::fs::read_dir(paths.spares()).into_iter().flatten().flatten() {
        let _ = crate::volume::remove_tree(&e.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn give(paths: &Paths, dir: &Path) -> bool {
        set_aside(paths, dir).is_some_and(Pending::finish)
    }

    fn paths(t: &Path) -> Paths {
        Paths { root: t.join("root"), run: t.join("run") }
    }

    fn container(paths: &Paths, id: &str) -> std::path::PathBuf {
        let dir = paths.container_dir(id);
        for d in ["upper/etc", "work/work/incompat/volatile", "merged"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("upper/etc/hosts"), "").unwrap();
        std::fs::write(dir.join("hosts"), "127.0.0.1 old\n").unwrap();
        std::fs::write(dir.join("log.jsonl"), "{\"log\":\"old\"}\n").unwrap();
        std::fs::write(dir.join("log.jsonl.1"), "older\n").unwrap();
        std::fs::create_dir(dir.join("checkpoint")).unwrap();
        dir
    }

    #[test]
    fn a_spare_comes_back_empty_and_reset() {
        let t = crate::testutil::TempDir::new("spare");
        let p = paths(t.path());
        let old = container(&p, "old");
        std::fs::set_permissions(old.join("upper"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(old.join("hosts"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(give(&p, &old));
        assert!(!old.exists());
        let new = p.container_dir("new");
        assert!(take(&p, &new));
        assert!(!take(&p, &p.container_dir("third")), "one spare, taken once");
        let names = |d: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        };
        assert_eq!(names(&new), ["hosts", "log.jsonl", "merged", "upper", "work"]);
        assert!(names(&new.join("upper")).is_empty());
        assert!(names(&new.join("work")).is_empty(), "a volatile mark left in work would fail the next mount");
        assert_eq!(std::fs::read(new.join("log.jsonl")).unwrap(), b"", "the old container's logs are gone");
        let dir_mode = std::fs::metadata(&new).unwrap().mode() & 0o7777;
        assert_eq!(std::fs::metadata(new.join("upper")).unwrap().mode() & 0o7777, dir_mode);
        assert_eq!(std::fs::metadata(new.join("hosts")).unwrap().mode() & 0o7777, 0o644);
    }

    #[test]
    fn a_spare_still_being_reset_is_not_taken() {
        let t = crate::testutil::TempDir::new("spare");
        let p = paths(t.path());
        let old = container(&p, "old");
        let pending = set_aside(&p, &old).expect("room for a spare");
        assert!(!old.exists(), "the container's directory is gone once set aside");
        assert!(!take(&p, &p.container_dir("new")), "not before its reset");
        assert!(pending.finish());
        assert!(take(&p, &p.container_dir("new")));
        assert!(!p.container_dir("new").join("log.jsonl.1").exists());
    }

    #[test]
    fn a_merged_with_files_is_not_kept() {
        let t = crate::testutil::TempDir::new("spare");
        let p = paths(t.path());
        let old = container(&p, "old");
        std::fs::write(old.join("merged/stray"), "").unwrap();
        assert!(!give(&p, &old));
        assert!(old.join("merged/stray").exists());
    }

    #[test]
    fn at_most_max_spares_are_kept() {
        let t = crate::testutil::TempDir::new("spare");
        let p = paths(t.path());
        let kept = (0..MAX + 2).filter(|i| give(&p, &container(&p, &format!("c{i}")))).count();
        assert_eq!(kept, MAX);
        clear(&p);
        assert_eq!(std::fs::read_dir(p.spares()).unwrap().count(), 0);
    }
}
