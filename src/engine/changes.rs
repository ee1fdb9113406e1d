//! The door's methods over a container's own changes: diff, export, commit.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Engine, EngineError, Result};
use crate::changes::{walk_changes, Change, CommitOptions};
use crate::container::Container;
use crate::image::{self, Image};
use crate::store;

fn io(context: String) -> impl FnOnce(std::io::Error) -> EngineError {
    move |source| EngineError::Io { context, source }
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
