//! `berth save` / `berth load`: docker-archive tarballs (what `docker save`
//! writes) and OCI image layout tarballs.

use std::io::{Read, Write};

use super::{ImageError, Result};
use crate::store::{Db, Paths};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    Docker,
    Oci,
}

/// Writes the named images (tags or ids) as one archive.
pub fn save(_paths: &Paths, _db: &Db, _names: &[String], _out: &mut dyn Write, _format: Format) -> Result<()> {
    Err(ImageError::NotFound("save is being written".into()))
}

/// Reads an archive (docker-archive or OCI layout tarball, plain or
/// gzip), stores its layers and images; returns docker's report lines
/// ("Loaded image: busybox:latest" or "Loaded image ID: sha256:...").
pub fn load(_paths: &Paths, _db: &mut Db, _src: &mut dyn Read) -> Result<Vec<String>> {
    Err(ImageError::NotFound("load is being written".into()))
}
