//! A container's own changes to its image: `diff` (what it added, changed
//! and deleted), `export` (its whole filesystem as a tarball) and `commit`
//! (its changes as a new image). All read the container's overlay upper
//! directory and its image's layers, running or not.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::container::Container;
use crate::engine::{Engine, EngineError, Result};
use crate::image::{self, Image};
use crate::store;

/// One line of `berth diff`: A added, C changed, D deleted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub kind: char,
    pub path: String,
}

/// Files the runtime bind-mounts over (empty in the upper dir): not the
/// container's own changes, as docker keeps them out of diff and commit.
const RUNTIME_FILES: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];

fn io(context: String) -> impl FnOnce(std::io::Error) -> EngineError {
    move |source| EngineError::Io { context, source }
}

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

impl Engine {
    /// The container's image layers as overlay lowerdirs, top first.
    fn lowers(&self, c: &Container) -> Result<Vec<PathBuf>> {
        let dir = self.paths.container_dir(&c.id);
        let spec = crate::runtime::load_spec(&dir).map_err(io(format!("container {}: reading config.json", c.name)))?;
        let root = spec.mounts().clone().unwrap_or_default().into_iter().find(|m| m.destination() == Path::new("/"));
        let opts = root.and_then(|m| m.options().clone()).unwrap_or_default();
        Ok(opts
            .iter()
            .find_map(|o| o.strip_prefix("lowerdir="))
            .unwrap_or("")
            .split(':')
            .filter(|l| !l.is_empty())
            .map(|l| self.paths.layers().join(l))
            .collect())
    }

    /// Gives `f` a read-only view of the image's layers, with the
    /// container's changes on top when `with_changes`; unmounted after.
    fn with_view<T>(&self, c: &Container, with_changes: bool, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
        let mut lowers = self.lowers(c)?;
        if with_changes {
            lowers.insert(0, self.paths.container_dir(&c.id).join("upper"));
        }
        let view = self.paths.tmp().join(format!("view-{}-{}", std::process::id(), &store::new_id()[..12]));
        std::fs::create_dir_all(&view).map_err(io(format!("creating {}", view.display())))?;
        let mounted = match lowers.len() {
            0 => Ok(()),
            1 => crate::sys::mount::bind(&lowers[0], &view, false),
            _ => {
                let data = format!("lowerdir={}", lowers.iter().map(|l| l.display().to_string()).collect::<Vec<_>>().join(":"));
                crate::sys::mount::mount(Some("overlay"), &view, Some("overlay"), crate::sys::mount::MsFlags::MS_RDONLY, Some(&data))
            }
        };
        if let Err(e) = mounted {
            let _ = std::fs::remove_dir(&view);
            return Err(io(format!("container {}: mounting its filesystem", c.name))(e));
        }
        let r = f(&view);
        if !lowers.is_empty() {
            let _ = crate::sys::mount::umount_detach(&view);
        }
        let _ = std::fs::remove_dir(&view);
        r
    }

    /// `berth diff`: the container's changes to its image, sorted by path.
    pub fn diff(&self, key: &str) -> Result<Vec<Change>> {
        let c = self.container(key)?;
        let upper = self.paths.container_dir(&c.id).join("upper");
        self.with_view(&c, false, |lower| {
            let mut out = Vec::new();
            walk_changes(&upper, lower, Path::new(""), &mut out).map_err(io(format!("container {}: reading its changes", c.name)))?;
            out.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(out)
        })
    }

    /// `berth export`: the container's filesystem (image and changes, no
    /// mounts) as a tarball, which `berth import` takes back.
    pub fn export(&self, key: &str, out: &mut dyn Write) -> Result<()> {
        let c = self.container(key)?;
        self.with_view(&c, true, |root| {
            let mut tb = tar::Builder::new(out);
            tb.follow_symlinks(false);
            tb.mode(tar::HeaderMode::Complete);
            tb.append_dir_all(".", root).and_then(|_| tb.finish()).map_err(io(format!("container {}: exporting its filesystem", c.name)))
        })
    }

    /// `berth commit`: a new image, the container's image plus one layer of
    /// its changes, with `changes` applied to the config.
    pub fn commit(&self, key: &str, o: &CommitOptions) -> Result<Image> {
        let c = self.container(key)?;
        let tag_key = match &o.tag {
            Some(t) => Some(image::Reference::parse(t).map_err(image::ImageError::from)?.tag_key().ok_or_else(|| EngineError::Other(format!("commit: {t:?} names a digest; give REPO[:TAG]")))?),
            None => None,
        };
        let base = self.image(&c.image_id)?;
        let mut config = base.config.clone();
        for ch in &o.changes {
            image::apply_change(&mut config.config, ch)?;
        }
        let paused = o.pause && c.state == "running";
        if paused {
            self.pause(&c.id)?;
        }
        let layer = self.changes_layer(&c, &base);
        if paused {
            let _ = self.unpause(&c.id);
        }
        let layer = layer?;
        let mut descs = image::manifest_of(&self.paths, &base)?.layers().clone();
        descs.push(layer.descriptor()?);
        config.rootfs.diff_ids.push(layer.diff_id.clone());
        config.created = store::now_image_time();
        let cmd = c.spec.cmd.clone().or(base.config.config.cmd.clone()).unwrap_or_default().join(" ");
        config.history.push(image::History { created: config.created.clone(), created_by: cmd, comment: o.message.clone(), empty_layer: false });
        if !o.author.is_empty() {
            config.config.labels.entry("org.opencontainers.image.authors".into()).or_insert_with(|| o.author.clone());
        }
        let diff_ids = config.rootfs.diff_ids.clone();
        let img = image::commit_image(&self.paths, &mut self.db(), &config, descs, diff_ids, tag_key.as_deref())?;
        self.container_event(&c, "commit", &[("comment", o.message.clone())]);
        Ok(img)
    }

    /// The container's upper dir as a stored layer on top of its image's.
    fn changes_layer(&self, c: &Container, base: &Image) -> Result<image::StoredLayer> {
        let upper = self.paths.container_dir(&c.id).join("upper");
        let tarpath = self.paths.tmp().join(format!("commit-{}-{}.tar", std::process::id(), &store::new_id()[..12]));
        let r = (|| -> std::io::Result<()> {
            let f = std::fs::File::create(&tarpath)?;
            let mut tb = tar::Builder::new(std::io::BufWriter::new(f));
            tb.follow_symlinks(false);
            crate::build::builder::diff_tree(&mut tb, &upper, Path::new(""), true)?;
            tb.into_inner()?.flush()
        })();
        let stored = r.map_err(io(format!("container {}: reading its changes", c.name))).and_then(|_| {
            let mut f = std::fs::File::open(&tarpath).map_err(io(format!("reading {}", tarpath.display())))?;
            let mut db = self.db();
            Ok(image::store_layer(&self.paths, &mut db, &mut f, base.layers.last().map(String::as_str), "commit", None, None)?)
        });
        let _ = std::fs::remove_file(&tarpath);
        stored
    }
}

/// Appends the changes under `rel` of the upper dir `dir`, checking what
/// the image (`lower`) has. A directory the image has is reported as
/// changed only when something under it is.
fn walk_changes(dir: &Path, lower: &Path, rel: &Path, out: &mut Vec<Change>) -> std::io::Result<bool> {
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
