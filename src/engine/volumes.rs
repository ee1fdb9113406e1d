//! The door's volume methods.


use super::{Engine, Result};
use crate::container;

impl Engine {

    pub fn volume_create(&self, name: Option<&str>, labels: &std::collections::BTreeMap<String, String>) -> Result<crate::volume::Volume> {
        let existed = name.is_some_and(|n| self.volume(n).is_ok());
        let v = crate::volume::create(&self.paths, &mut self.db(), name, name.is_none(), labels)?;
        if !existed {
            self.event("volume", "create", &v.name, &[("driver", "local")]);
        }
        Ok(v)
    }

    pub fn volume(&self, name: &str) -> Result<crate::volume::Volume> {
        Ok(crate::volume::get(&self.paths, &self.db(), name)?)
    }

    pub fn volumes(&self) -> Result<Vec<crate::volume::Volume>> {
        Ok(crate::volume::list(&self.paths, &self.db())?)
    }

    /// Names of the containers mounting the volume.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        container::volume_users(&self.db(), name)
    }

    /// Refused while a container mounts it (docker's -f does not override
    /// that either).
    pub fn volume_remove(&self, name: &str) -> Result<()> {
        let v = self.volume(name)?;
        let mut db = self.db();
        let users = container::volume_users(&db, &v.name);
        crate::volume::remove(&self.paths, &mut db, &v.name, &users)?;
        drop(db);
        self.event("volume", "destroy", &v.name, &[("driver", "local")]);
        Ok(())
    }

    /// Removes unused volumes (anonymous ones only unless `all`).
    pub fn volume_prune(&self, all: bool) -> Result<(Vec<String>, u64)> {
        let mut db = self.db();
        let in_use = container::volumes_in_use(&container::list(&db)?);
        Ok(crate::volume::prune(&self.paths, &mut db, &in_use, all)?)
    }
}
