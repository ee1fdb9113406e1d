//! The door's image methods: pull, push, tag, save, load, prune, build.

use std::io::{Read, Write};

use super::{other, Engine, Result};
use crate::container;
use crate::image::{self, Image};

impl Engine {

    pub fn import(&self, src: &mut dyn Read, source_name: &str, tag: Option<&str>, changes: &[String]) -> Result<Image> {
        let i = image::import(&self.paths, &mut self.db(), src, source_name, tag, changes)?;
        self.event("image", "import", &i.id, &[("name", tag.unwrap_or(""))]);
        Ok(i)
    }

    pub fn import_file(&self, path: &str, tag: Option<&str>, changes: &[String]) -> Result<Image> {
        if path == "-" {
            return self.import(&mut std::io::stdin().lock(), "-", tag, changes);
        }
        let mut f = std::fs::File::open(path).map_err(other(&format!("open {path}")))?;
        self.import(&mut f, path, tag, changes)
    }

    pub fn history(&self, name: &str) -> Result<(Image, Vec<image::HistoryLine>)> {
        let db = self.db();
        let img = image::resolve(&db, name)?;
        let h = image::history(&db, &img)?;
        Ok((img, h))
    }

    /// Images as `berth images` lists them: without the untagged
    /// intermediate steps of builds unless `all` (docker's `images -a`).
    pub fn images_all(&self, all: bool) -> Result<Vec<Image>> {
        let db = self.db();
        let list = image::list(&db)?;
        if all {
            return Ok(list);
        }
        let steps = crate::build::builder::cached_image_ids(&db);
        Ok(list.into_iter().filter(|i| !i.tags.is_empty() || !steps.contains(&i.id)).collect())
    }

    pub fn images(&self) -> Result<Vec<Image>> {
        self.images_all(false)
    }

    pub fn image(&self, name: &str) -> Result<Image> {
        Ok(image::resolve(&self.db(), name)?)
    }

    pub fn image_remove(&self, name: &str, force: bool) -> Result<image::Removed> {
        let mut db = self.db();
        let img = image::resolve(&db, name)?;
        let users = container::users_of_image(&db, &img.id)?;
        let r = image::remove(&self.paths, &mut db, name, force, &users)?;
        drop(db);
        for t in &r.untagged {
            self.event("image", "untag", &img.id, &[("name", t)]);
        }
        if !r.deleted.is_empty() {
            self.event("image", "delete", &img.id, &[("name", name)]);
        }
        Ok(r)
    }

    pub(super) fn registry_options(&self, progress: image::registry::Progress, credentials: Option<(String, String)>) -> image::registry::Options {
        image::registry::Options { auth_file: self.auth_file.clone(), progress, credentials }
    }

    pub fn pull(&self, name: &str, progress: image::registry::Progress) -> Result<Image> {
        self.pull_as(name, progress, None)
    }

    /// `pull` with credentials of its own (the API's X-Registry-Auth)
    /// instead of those `login` stored.
    pub fn pull_as(&self, name: &str, progress: image::registry::Progress, credentials: Option<(String, String)>) -> Result<Image> {
        let i = image::registry::pull(&self.paths, name, &self.registry_options(progress, credentials))?;
        self.event("image", "pull", &i.id, &[("name", name)]);
        Ok(i)
    }

    pub fn push(&self, name: &str, progress: image::registry::Progress) -> Result<String> {
        self.push_as(name, progress, None)
    }

    pub fn push_as(&self, name: &str, progress: image::registry::Progress, credentials: Option<(String, String)>) -> Result<String> {
        // The store's lock is not held over the upload (blobs are files):
        // a long push must not stall every other request of `berth serve`.
        let i = self.image(name)?;
        let d = image::registry::push(&self.paths, &i, name, &self.registry_options(progress, credentials))?;
        self.event("image", "push", &i.id, &[("name", name)]);
        Ok(d)
    }

    pub fn login(&self, registry: &str, user: &str, password: &str) -> Result<()> {
        Ok(image::registry::login(&self.auth_file, registry, user, password)?)
    }

    /// Checks credentials against a registry without storing them (the
    /// API's `/auth`: the client keeps them).
    pub fn login_check(&self, registry: &str, user: &str, password: &str) -> Result<()> {
        Ok(image::registry::check_login(registry, user, password)?)
    }

    pub fn logout(&self, registry: &str) -> Result<bool> {
        Ok(image::registry::logout(&self.auth_file, registry)?)
    }

    pub fn search(&self, registry: &str, term: &str) -> Result<Vec<image::registry::Found>> {
        Ok(image::registry::search(registry, term, &self.registry_options(image::registry::Progress::Quiet, None))?)
    }

    /// `image prune`: removes dangling images (every unused one with
    /// `all`); returns the removed ids and the bytes reclaimed.
    pub fn image_prune(&self, all: bool) -> Result<(Vec<String>, u64)> {
        let mut db = self.db();
        let in_use: Vec<String> = container::list(&db)?.into_iter().map(|c| c.image_id).collect();
        let mut removed = Vec::new();
        let mut bytes = 0;
        for img in image::prunable(&db, all, &in_use)? {
            if image::remove(&self.paths, &mut db, &img.id, true, &[]).is_ok() {
                bytes += img.size;
                removed.push(img.id);
            }
        }
        Ok((removed, bytes))
    }

    pub fn tag(&self, src: &str, dst: &str) -> Result<Image> {
        let i = image::tag(&self.paths, &mut self.db(), src, dst)?;
        self.event("image", "tag", &i.id, &[("name", dst)]);
        Ok(i)
    }

    pub fn save(&self, names: &[String], out: &mut dyn Write, format: image::archive::Format) -> Result<()> {
        Ok(image::archive::save(&self.paths, &self.db(), names, out, format)?)
    }

    pub fn load(&self, src: &mut dyn Read) -> Result<Vec<String>> {
        Ok(image::archive::load(&self.paths, &mut self.db(), src)?)
    }

}
