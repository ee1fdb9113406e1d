//! A container's own changes to its image: `diff` (what it added, changed
//! and deleted), `export` (its whole filesystem as a tarball) and `commit`
//! (its changes as a new image). All read the container's overlay upper
//! directory and its image's layers, running or not.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde::Serialize;


/// One line of `berth diff`: A added, C changed, D deleted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub kind: char,
    pub path: String,
}

/// Files the runtime bind-mounts over (empty in the upper dir): not the
/// container's own changes, as docker keeps them out of diff and commit.
pub(crate) const RUNTIME_FILES: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];

/// What `commit` takes besides the container.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// REPO[:TAG]; none leaves the image untagged.
    pub tag: Option<String>,
    /// Dockerfile instructions for the config: CMD, ENTRYPOINT, ENV, ...
    pub changes: Vec<String>,
    pub message: String,
    pub author: String,
    /// Freeze the container while its changes are read (docker's default).
    pub pause: bool,
}

/// Appends the changes under `rel` of the upper dir `dir`, checking what
/// the image (`lower`) has. A directory the image has is reported as
/// changed only when something under it is.
pub(crate) fn walk_changes(dir: &Path, lower: &Path, rel: &Path, out: &mut Vec<Change>) -> std::io::Result<bool> {
    let mut any = false;
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        let rs = r.to_string_lossy();
        let md = std::fs::symlink_metadata(e.path())?;
        let in_lower = std::fs::symlink_metadata(lower.join(&r)).is_ok();
        let path = format!("/{rs}");
        if md.file_type().is_char_device() && md.rdev() == 0 {
            out.push(Change { kind: 'D', path });
            any = true;
            continue;
        }
        if md.is_file() && md.len() == 0 && RUNTIME_FILES.contains(&rs.as_ref()) {
            continue;
        }
        if md.is_dir() {
            let opaque = crate::sys::xattr::get(&e.path(), "trusted.overlay.opaque").map(|v| v == b"y").unwrap_or(false);
            let at = out.len();
            let inner = walk_changes(&e.path(), lower, &r, out)?;
            if !in_lower || inner || opaque {
                out.insert(at, Change { kind: if in_lower { 'C' } else { 'A' }, path });
                any = true;
            }
            continue;
        }
        out.push(Change { kind: if in_lower { 'C' } else { 'A' }, path });
        any = true;
    }
    Ok(any)
}
