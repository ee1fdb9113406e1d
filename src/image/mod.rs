//! The image store: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256`) plus unpacked layers under `layers/<chain-id>/diff`.

pub mod archive;
pub mod reference;
pub mod registry;
pub mod tar;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, DescriptorBuilder, ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder, MediaType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{self, Db, Paths, StoreError};
pub use reference::Reference;

#[derive(thiserror::Error, Debug)]
pub enum ImageError {
    #[error("No such image: {0}")]
    NotFound(String),
    #[error(transparent)]
    Reference(#[from] reference::ReferenceError),
    #[error("importing {source_name}: {err}")]
    Import { source_name: String, err: tar::TarError },
    #[error("importing {source_name}: {err}")]
    ImportIo { source_name: String, err: std::io::Error },
    #[error("unable to remove image {image}: it is used by container {container} (stop and remove it first, or use -f)")]
    InUse { image: String, container: String },
    #[error("conflict: image {image} is referenced by several tags ({tags}); remove the tags one by one or use -f")]
    MultipleTags { image: String, tags: String },
    #[error("invalid --change {change:?}: {reason}")]
    BadChange { change: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Registry(String),
    /// The registry refused the credentials.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{what}: digest mismatch: expected {expected}, got {got}; nothing of it was kept")]
    DigestMismatch { what: String, expected: String, got: String },
    #[error("image config of {0} is unreadable: {1}")]
    BadConfig(String, serde_json::Error),
    #[error("manifest of image {0} is unreadable: {1}")]
    BadManifest(String, serde_json::Error),
    #[error("image manifest or index: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
}

pub type Result<T> = std::result::Result<T, ImageError>;

/// The runnable part of an image config, with Docker's field names.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RunConfig {
    #[serde(rename = "User", default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(rename = "ExposedPorts", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    #[serde(rename = "Env", default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(rename = "Entrypoint", default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Volumes", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, serde_json::Value>,
    #[serde(rename = "WorkingDir", default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(rename = "Labels", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "StopSignal", default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(rename = "Healthcheck", default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
    /// ONBUILD triggers, run by builds that start FROM this image.
    #[serde(rename = "OnBuild", default, skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct History {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The OCI image config (application/vnd.oci.image.config.v1+json).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created: String,
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

/// An image as the store knows it.
#[derive(Clone, Debug, Serialize)]
pub struct Image {
    pub id: String,
    pub tags: Vec<String>,
    pub manifest: String,
    pub created: String,
    pub size: u64,
    pub config: ImageConfig,
    /// Chain ids, bottom layer first.
    pub layers: Vec<String>,
}

impl Image {
    pub fn short_id(&self) -> &str {
        let h = self.id.trim_start_matches("sha256:");
        &h[..12.min(h.len())]
    }
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn load_image(conn: &rusqlite::Connection, id: &str) -> Result<Option<Image>> {
    let row = conn
        .query_row("SELECT manifest, created, size, config, layers FROM images WHERE id=?1", [id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?, r.get::<_, String>(4)?))
        })
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
        .map_err(StoreError::from)?;
    let Some((manifest, created, size, config, layers)) = row else { return Ok(None) };
    let config: ImageConfig = serde_json::from_str(&config).map_err(|e| ImageError::BadConfig(id.to_string(), e))?;
    let layers: Vec<String> = serde_json::from_str(&layers).map_err(|e| ImageError::BadConfig(id.to_string(), e))?;
    let mut st = conn.prepare_cached("SELECT name FROM tags WHERE image_id=?1 ORDER BY name").map_err(StoreError::from)?;
    let tags = st.query_map([id], |r| r.get(0)).map_err(StoreError::from)?.collect::<std::result::Result<Vec<String>, _>>().map_err(StoreError::from)?;
    Ok(Some(Image { id: id.to_string(), tags, manifest, created, size: size as u64, config, layers }))
}

/// The health check image `id` (a full id) defines: the one field, taken
/// out by SQLite, where `resolve` would parse the whole config and look up
/// its tags. A container's monitor asks at every start.
pub fn healthcheck(db: &Db, id: &str) -> Result<Option<serde_json::Value>> {
    let text: Option<Option<String>> = store::get_opt(&db.conn, "SELECT json_extract(config, '$.config.Healthcheck') FROM images WHERE id=?1", [id])?;
    match text.flatten() {
        None => Ok(None),
        Some(t) => Ok(Some(serde_json::from_str(&t).map_err(|e| ImageError::BadConfig(id.to_string(), e))?)),
    }
}

/// Finds an image by tag, full or short id (with or without `sha256:`).
pub fn resolve(db: &Db, name: &str) -> Result<Image> {
    let conn = &db.conn;
    if let Ok(r) = Reference::parse(name)
        && let Some(key) = r.tag_key()
            && let Some(id) = store::get_opt::<String>(conn, "SELECT image_id FROM tags WHERE name=?1", [&key])?
                && let Some(img) = load_image(conn, &id)? {
                    return Ok(img);
                }
    let hex = name.trim_start_matches("sha256:");
    if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let pattern = format!("sha256:{hex}%");
        let ids: Vec<String> = {
            let mut st = conn.prepare("SELECT id FROM images WHERE id LIKE ?1").map_err(StoreError::from)?;
            st.query_map([&pattern], |r| r.get(0)).map_err(StoreError::from)?.filter_map(|r| r.ok()).collect()
        };
        if ids.len() == 1
            && let Some(img) = load_image(conn, &ids[0])? {
                return Ok(img);
            }
    }
    Err(ImageError::NotFound(name.to_string()))
}

pub fn list(db: &Db) -> Result<Vec<Image>> {
    let ids: Vec<String> = {
        let mut st = db.conn.prepare("SELECT id FROM images ORDER BY created DESC").map_err(StoreError::from)?;
        st.query_map([], |r| r.get(0)).map_err(StoreError::from)?.filter_map(|r| r.ok()).collect()
    };
    let mut out = Vec::new();
    for id in ids {
        if let Some(i) = load_image(&db.conn, &id)? {
            out.push(i);
        }
    }
    Ok(out)
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    n: u64,
    copy: Option<std::fs::File>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.n += n as u64;
        if let Some(f) = &mut self.copy {
            f.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

fn digest_of(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Where a half-done import lives until it is committed; removed on drop
/// unless committed, so a refused archive leaves nothing behind.
struct Scratch(Option<PathBuf>);

impl Scratch {
    fn new(paths: &Paths) -> Result<Scratch> {
        // The pid in the name lets start-up tell a dead process's leftovers
        // from a running import's.
        let p = paths.tmp().join(format!("import-{}-{}", std::process::id(), &store::new_id()[..16]));
        std::fs::create_dir_all(p.join("diff")).map_err(store::io_err(&p))?;
        Ok(Scratch(Some(p)))
    }
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

fn write_blob(paths: &Paths, bytes: &[u8]) -> Result<String> {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    let path = paths.blob(&digest);
    if !path.exists() {
        let tmp = paths.tmp().join(format!("blob-{}-{}", std::process::id(), &store::new_id()[..16]));
        std::fs::write(&tmp, bytes).map_err(store::io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(store::io_err(&path))?;
    }
    Ok(digest)
}

pub fn chain_id(parent: Option<&str>, diff_id: &str) -> String {
    match parent {
        None => diff_id.to_string(),
        Some(p) => format!("sha256:{}", hex::encode(Sha256::digest(format!("{p} {diff_id}").as_bytes()))),
    }
}

/// Docker's `import --change`: the Dockerfile instructions that only touch
/// the config (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME,
/// STOPSIGNAL).
pub fn apply_change(cfg: &mut RunConfig, change: &str) -> Result<()> {
    let bad = |reason: &str| ImageError::BadChange { change: change.to_string(), reason: reason.to_string() };
    let (instr, rest) = change.trim().split_once(char::is_whitespace).ok_or_else(|| bad("expected INSTRUCTION ARGS"))?;
    let rest = rest.trim();
    let words = || -> Result<Vec<String>> {
        if rest.starts_with('[') {
            serde_json::from_str(rest).map_err(|e| bad(&format!("bad JSON array: {e}")))
        } else {
            Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
        }
    };
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => cfg.cmd = Some(words()?),
        "ENTRYPOINT" => cfg.entrypoint = Some(words()?),
        "WORKDIR" => cfg.working_dir = rest.to_string(),
        "USER" => cfg.user = rest.to_string(),
        "STOPSIGNAL" => cfg.stop_signal = rest.to_string(),
        "ENV" => {
            let (k, v) = rest.split_once(['=', ' ']).ok_or_else(|| bad("expected ENV KEY=VALUE"))?;
            cfg.env.retain(|e| !e.starts_with(&format!("{k}=")));
            cfg.env.push(format!("{k}={}", v.trim()));
        }
        "EXPOSE" => {
            for p in rest.split_whitespace() {
                let p = if p.contains('/') { p.to_string() } else { format!("{p}/tcp") };
                cfg.exposed_ports.insert(p, serde_json::json!({}));
            }
        }
        "VOLUME" => {
            let paths: Vec<String> = if rest.starts_with('[') { serde_json::from_str(rest).map_err(|e| bad(&format!("bad JSON array: {e}")))? } else { rest.split_whitespace().map(str::to_string).collect() };
            for p in paths {
                cfg.volumes.insert(p, serde_json::json!({}));
            }
        }
        "LABEL" => {
            let (k, v) = rest.split_once('=').ok_or_else(|| bad("expected LABEL KEY=VALUE"))?;
            cfg.labels.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
        }
        other => return Err(bad(&format!("{other} cannot be used with --change"))),
    }
    Ok(())
}

/// Imports a root filesystem tarball (plain or gzip) as a one-layer image,
/// streaming: the blob is stored, hashed and unpacked in one pass.
pub fn import(paths: &Paths, db: &mut Db, src: &mut dyn Read, source_name: &str, tag: Option<&str>, changes: &[String]) -> Result<Image> {
    let tag_key = match tag {
        Some(t) => Some(Reference::parse(t)?.tag_key().ok_or_else(|| ImageError::NotFound(t.to_string()))?),
        None => None,
    };
    let mut run_config = RunConfig::default();
    for c in changes {
        apply_change(&mut run_config, c)?;
    }
    store::ensure_dirs(paths)?;
    let layer = store_layer(paths, db, src, None, source_name, None, None)?;
    let now = store::now_image_time();
    let config = ImageConfig {
        created: now.clone(),
        architecture: host_arch().to_string(),
        os: "linux".into(),
        config: run_config,
        rootfs: RootFs { kind: "layers".into(), diff_ids: vec![layer.diff_id.clone()] },
        history: vec![History { created: now.clone(), created_by: format!("berth import {source_name}"), comment: "Imported from a filesystem archive".into(), empty_layer: false }],
    };
    let img = commit_image(paths, db, &config, vec![layer.descriptor()?], vec![layer.diff_id], tag_key.as_deref())?;
    Ok(img)
}

/// A layer as committed to the store.
#[derive(Debug, Clone)]
pub struct StoredLayer {
    pub chain_id: String,
    pub diff_id: String,
    pub blob_digest: String,
    pub blob_size: u64,
    /// Unpacked bytes.
    pub size: u64,
    pub media_type: String,
}

impl StoredLayer {
    /// Its entry in a manifest's `layers`.
    pub fn descriptor(&self) -> Result<Descriptor> {
        descriptor(self.media_type.as_str(), &self.blob_digest, self.blob_size)
    }
}

/// A descriptor of the blob `digest`: what manifests and indexes list.
pub fn descriptor(media_type: impl Into<MediaType>, digest: &str, size: u64) -> Result<Descriptor> {
    Ok(DescriptorBuilder::default().media_type(media_type).digest(digest.parse::<oci_spec::image::Digest>()?).size(size).build()?)
}

/// An OCI image manifest: the config blob and the layers, bottom first.
pub fn manifest_json(config_digest: &str, config_size: u64, layers: Vec<Descriptor>) -> Result<Vec<u8>> {
    let m = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, config_digest, config_size)?)
        .layers(layers)
        .build()?;
    Ok(serde_json::to_vec(&m).expect("a manifest serialises"))
}

/// An OCI image index listing `manifests`.
pub fn index_json(manifests: Vec<Descriptor>, pretty: bool) -> Result<Vec<u8>> {
    let i: ImageIndex = ImageIndexBuilder::default().schema_version(2u32).media_type(MediaType::ImageIndex).manifests(manifests).build()?;
    Ok(if pretty { serde_json::to_vec_pretty(&i) } else { serde_json::to_vec(&i) }.expect("an index serialises"))
}

/// The stored manifest of `img`, OCI or Docker v2 (pulled images keep the
/// manifest the registry sent; oci-spec reads both, Docker's media types as
/// `MediaType::Other`).
pub fn manifest_of(paths: &Paths, img: &Image) -> Result<ImageManifest> {
    serde_json::from_slice(&read_blob(paths, &img.manifest)?).map_err(|e| ImageError::BadManifest(img.short_id().to_string(), e))
}

/// Streams one layer blob (tar, gzip; zstd when supported) in one pass:
/// stores the blob, unpacks it and commits it on top of `parent`. When
/// `expect_blob` / `expect_diff` are given, a stream whose digest differs is
/// refused and nothing of it is kept.
pub fn store_layer(
    paths: &Paths,
    db: &mut Db,
    src: &mut dyn Read,
    parent: Option<&str>,
    source_name: &str,
    expect_blob: Option<&str>,
    expect_diff: Option<&str>,
) -> Result<StoredLayer> {
    store::ensure_dirs(paths)?;
    let scratch = Scratch::new(paths)?;
    let blob_tmp = scratch.path().join("blob");
    let copy = std::fs::File::create(&blob_tmp).map_err(store::io_err(&blob_tmp))?;
    let mut compressed = Hashing { inner: src, hash: Sha256::new(), n: 0, copy: Some(copy) };
    let io = |err| ImageError::ImportIo { source_name: source_name.to_string(), err };
    let (diff_id, stats) = {
        let decoded = tar::decompressed(&mut compressed).map_err(|err| ImageError::Import { source_name: source_name.to_string(), err })?;
        let mut plain = Hashing { inner: decoded, hash: Sha256::new(), n: 0, copy: None };
        let stats = tar::unpack(&mut plain, &scratch.path().join("diff")).map_err(|err| ImageError::Import { source_name: source_name.to_string(), err })?;
        // The tar reader stops at the end-of-archive marker; the digest is
        // over the whole stream, padding included.
        std::io::copy(&mut plain, &mut std::io::sink()).map_err(io)?;
        (digest_of(plain.hash), stats)
    };
    std::io::copy(&mut compressed, &mut std::io::sink()).map_err(io)?;
    let blob_digest = digest_of(compressed.hash);
    let blob_size = compressed.n;
    if let Some(want) = expect_blob
        && want != blob_digest {
            return Err(ImageError::DigestMismatch { what: format!("layer {source_name}"), expected: want.to_string(), got: blob_digest });
        }
    if let Some(want) = expect_diff
        && want != diff_id {
            return Err(ImageError::DigestMismatch { what: format!("uncompressed layer {source_name} (diff_id)"), expected: want.to_string(), got: diff_id });
        }
    let media_type = tar::Compression::of_file(&blob_tmp).unwrap_or(tar::Compression::Plain).layer_media_type().to_string();
    let chain_id = commit_layer(paths, db, &scratch, &blob_tmp, &blob_digest, parent, &diff_id, stats.bytes)?;
    // Dropping the scratch dir removes what commit_layer did not move.
    drop(scratch);
    Ok(StoredLayer { chain_id, diff_id, blob_digest, blob_size, size: stats.bytes, media_type })
}

/// Is a layer with this chain id already unpacked in the store?
pub fn has_layer(db: &Db, chain_id: &str) -> Result<bool> {
    Ok(store::get_opt::<String>(&db.conn, "SELECT chain_id FROM layers WHERE chain_id=?1", [chain_id])?.is_some())
}

/// Records an image from the exact config and manifest bytes a registry or
/// an archive gave (digests are kept), with its layers already stored.
pub fn commit_image_raw(paths: &Paths, db: &mut Db, config_bytes: &[u8], manifest_bytes: &[u8], tag_key: Option<&str>) -> Result<Image> {
    let config: ImageConfig = serde_json::from_slice(config_bytes).map_err(|e| ImageError::BadConfig("pulled image".into(), e))?;
    let config_digest = write_blob(paths, config_bytes)?;
    let manifest_digest = write_blob(paths, manifest_bytes)?;
    let mut chains = Vec::new();
    let mut parent: Option<String> = None;
    let mut size = 0i64;
    for d in &config.rootfs.diff_ids {
        let c = chain_id(parent.as_deref(), d);
        size += store::get_opt::<i64>(&db.conn, "SELECT size FROM layers WHERE chain_id=?1", [&c])?.ok_or_else(|| ImageError::NotFound(format!("layer {c}")))?;
        chains.push(c.clone());
        parent = Some(c);
    }
    let layers_json = serde_json::to_string(&chains).unwrap();
    let created = if config.created.is_empty() { store::now_image_time() } else { config.created.clone() };
    let config_json = String::from_utf8_lossy(config_bytes).into_owned();
    crate::fault!("image.commit");
    db.write(|tx| {
        // An image already here keeps the manifest it came with: replacing
        // it would orphan that manifest's blob.
        tx.execute(
            "INSERT OR IGNORE INTO images(id, manifest, created, size, config, layers) VALUES(?1,?2,?3,?4,?5,?6)",
            rusqlite::params![config_digest, manifest_digest, created, size, config_json, layers_json],
        )?;
        if let Some(t) = tag_key {
            tx.execute("INSERT OR REPLACE INTO tags(name, image_id) VALUES(?1, ?2)", rusqlite::params![t, config_digest])?;
        }
        Ok(())
    })?;
    write_index(paths, db)?;
    resolve(db, &config_digest)
}

/// Adds a tag to an image (`berth tag SRC DST`).
pub fn tag(paths: &Paths, db: &mut Db, src: &str, dst: &str) -> Result<Image> {
    let img = resolve(db, src)?;
    let key = Reference::parse(dst)?.tag_key().ok_or_else(|| ImageError::NotFound(dst.to_string()))?;
    db.write(|tx| Ok(tx.execute("INSERT OR REPLACE INTO tags(name, image_id) VALUES(?1, ?2)", rusqlite::params![key, img.id])?))?;
    write_index(paths, db)?;
    resolve(db, &img.id)
}

/// The stored bytes of a blob.
pub fn read_blob(paths: &Paths, digest: &str) -> Result<Vec<u8>> {
    let p = paths.blob(digest);
    std::fs::read(&p).map_err(|e| store::io_err(&p)(e).into())
}

/// Moves an unpacked layer and its blob into the store, unless the same
/// layer is there already (then ours is dropped: a shared layer is kept once).
#[allow(clippy::too_many_arguments)]
fn commit_layer(paths: &Paths, db: &mut Db, scratch: &Scratch, blob_tmp: &Path, blob_digest: &str, parent: Option<&str>, diff_id: &str, size: u64) -> Result<String> {
    let chain = chain_id(parent, diff_id);
    let blob_path = paths.blob(blob_digest);
    if !blob_path.exists() {
        std::fs::rename(blob_tmp, &blob_path).map_err(store::io_err(&blob_path))?;
    }
    let dir = paths.layer_dir(&chain);
    if !dir.exists() {
        std::fs::create_dir_all(&dir).map_err(store::io_err(&dir))?;
        let target = dir.join("diff");
        if let Err(e) = std::fs::rename(scratch.path().join("diff"), &target) {
            // Another process committed the same layer first: keep theirs.
            if !target.exists() {
                return Err(store::io_err(&target)(e).into());
            }
        }
    }
    let short = short_link(paths, &chain)?;
    db.write(|tx| {
        tx.execute(
            "INSERT OR IGNORE INTO layers(chain_id, diff_id, blob, short, size) VALUES(?1,?2,?3,?4,?5)",
            rusqlite::params![chain, diff_id, blob_digest, short, size as i64],
        )?;
        Ok(())
    })?;
    crate::fault!("layer.stored");
    Ok(chain)
}

/// Link name (under layers/l) of the layer every container's root gets on
/// top of its image's: see [`init_layer`].
pub const INIT_LAYER: &str = "init";

/// Files the runtime binds into every container.
const INIT_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// The name of a shared read-only layer holding empty /etc/hosts,
/// /etc/hostname and /etc/resolv.conf, the mount points of the files the
/// runtime binds there, for the top of a container's lower dirs (`lower`,
/// bottom first). Without it each container's first mount copies /etc up
/// and makes the three in its own layer: four inodes made, and later freed,
/// per container. None when the image's /etc is not a directory, which the
/// layer's would hide; the container then makes its own as before.
pub fn init_layer(paths: &Paths, lower: &[String]) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    let ldir = paths.layers().join("l");
    for s in lower.iter().rev() {
        match std::fs::symlink_metadata(ldir.join(s).join("etc")) {
            Ok(m) if m.is_dir() => break,
            // A whiteout: the image deleted /etc.
            Ok(m) if m.file_type().is_char_device() => break,
            Ok(_) => return None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return None,
        }
    }
    let dir = ldir.join(INIT_LAYER);
    if std::fs::symlink_metadata(dir.join("etc").join(INIT_FILES[2])).is_ok() {
        return Some(INIT_LAYER.into());
    }
    // Made aside and renamed into place, so no container sees half of it.
    let tmp = ldir.join(format!(".{INIT_LAYER}-{}-{}", std::process::id(), &store::new_id()[..8]));
    let made = (|| -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(tmp.join("etc"))?;
        for d in [&tmp, &tmp.join("etc")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
        }
        for f in INIT_FILES {
            let p = tmp.join("etc").join(f);
            std::fs::write(&p, "")?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))?;
        }
        std::fs::rename(&tmp, &dir)
    })();
    if let Err(e) = made {
        // Another create's rename won (ENOTEMPTY): theirs serves.
        let _ = std::fs::remove_dir_all(&tmp);
        if std::fs::symlink_metadata(dir.join("etc").join(INIT_FILES[2])).is_err() {
            tracing::debug!("{}: {e}", dir.display());
            return None;
        }
    }
    Some(INIT_LAYER.into())
}

/// Overlay mount options must fit a page; a 10-char link per layer keeps
/// 100+ lower dirs within it.
fn short_link(paths: &Paths, chain: &str) -> Result<String> {
    let hex = chain.trim_start_matches("sha256:");
    let short = format!("L{}", &hex[..10]);
    let ldir = paths.layers().join("l");
    std::fs::create_dir_all(&ldir).map_err(store::io_err(&ldir))?;
    let link = ldir.join(&short);
    if std::fs::symlink_metadata(&link).is_err() {
        let _ = std::os::unix::fs::symlink(format!("../{hex}/diff"), &link);
    }
    Ok(short)
}

/// Writes config and manifest blobs, records the image and its tag, and
/// refreshes index.json.
pub fn commit_image(paths: &Paths, db: &mut Db, config: &ImageConfig, layer_descs: Vec<Descriptor>, diff_ids: Vec<String>, tag_key: Option<&str>) -> Result<Image> {
    let config_bytes = serde_json::to_vec(config).expect("config serialises");
    let config_digest = write_blob(paths, &config_bytes)?;
    let manifest_bytes = manifest_json(&config_digest, config_bytes.len() as u64, layer_descs)?;
    let manifest_digest = write_blob(paths, &manifest_bytes)?;
    let mut chains = Vec::new();
    let mut parent: Option<String> = None;
    for d in &diff_ids {
        let c = chain_id(parent.as_deref(), d);
        chains.push(c.clone());
        parent = Some(c);
    }
    let size: i64 = {
        let mut total = 0i64;
        for c in &chains {
            total += store::get_opt::<i64>(&db.conn, "SELECT size FROM layers WHERE chain_id=?1", [c])?.unwrap_or(0);
        }
        total
    };
    let id = config_digest.clone();
    let layers_json = serde_json::to_string(&chains).unwrap();
    let config_json = String::from_utf8(config_bytes).unwrap();
    crate::fault!("image.commit");
    db.write(|tx| {
        tx.execute(
            "INSERT OR REPLACE INTO images(id, manifest, created, size, config, layers) VALUES(?1,?2,?3,?4,?5,?6)",
            rusqlite::params![id, manifest_digest, config.created, size, config_json, layers_json],
        )?;
        if let Some(t) = tag_key {
            tx.execute("INSERT OR REPLACE INTO tags(name, image_id) VALUES(?1, ?2)", rusqlite::params![t, id])?;
        }
        Ok(())
    })?;
    write_index(paths, db)?;
    resolve(db, &id)
}

/// Regenerates index.json from the database, so tools that read OCI
/// layouts (skopeo, umoci) see every tagged image.
pub fn write_index(paths: &Paths, db: &Db) -> Result<()> {
    let _lock = store::FileLock::exclusive(&paths.index_lock())?;
    let mut manifests = Vec::new();
    let mut st = db.conn.prepare("SELECT tags.name, images.manifest FROM tags JOIN images ON images.id = tags.image_id ORDER BY tags.name").map_err(StoreError::from)?;
    let rows: Vec<(String, String)> = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(StoreError::from)?.filter_map(|r| r.ok()).collect();
    for (name, digest) in rows {
        let bytes = std::fs::read(paths.blob(&digest)).unwrap_or_default();
        let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(String::from))
            .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
        let mut d = descriptor(media_type.as_str(), &digest, bytes.len() as u64)?;
        d.set_annotations(Some([("org.opencontainers.image.ref.name".to_string(), name)].into()));
        manifests.push(d);
    }
    let index = index_json(manifests, true)?;
    let tmp = paths.root.join("index.json.tmp");
    std::fs::write(&tmp, index).map_err(store::io_err(&tmp))?;
    let dst = paths.root.join("index.json");
    std::fs::rename(&tmp, &dst).map_err(store::io_err(&dst))?;
    Ok(())
}

/// Short names of the layer dirs, bottom first, for the overlay lowerdir.
pub fn layer_links(db: &Db, img: &Image) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in &img.layers {
        let s = store::get_opt::<String>(&db.conn, "SELECT short FROM layers WHERE chain_id=?1", [c])?
            .ok_or_else(|| ImageError::NotFound(format!("layer {c} of image {}", img.id)))?;
        out.push(s);
    }
    Ok(out)
}

pub struct Removed {
    pub untagged: Vec<String>,
    pub deleted: Vec<String>,
}

/// Removes a tag, or the image with its unshared layers when no tag is left.
/// `users` are the containers that use the image.
pub fn remove(paths: &Paths, db: &mut Db, name: &str, force: bool, users: &[String]) -> Result<Removed> {
    let img = resolve(db, name)?;
    let by_tag = Reference::parse(name).ok().and_then(|r| r.tag_key()).filter(|k| img.tags.contains(k));
    let mut removed = Removed { untagged: vec![], deleted: vec![] };
    if let Some(key) = &by_tag {
        if img.tags.len() > 1 {
            db.write(|tx| Ok(tx.execute("DELETE FROM tags WHERE name=?1", [key])?))?;
            removed.untagged.push(key.clone());
            write_index(paths, db)?;
            return Ok(removed);
        }
    } else if img.tags.len() > 1 && !force {
        return Err(ImageError::MultipleTags { image: img.short_id().to_string(), tags: img.tags.join(", ") });
    }
    if !force
        && let Some(c) = users.first() {
            return Err(ImageError::InUse { image: name.to_string(), container: c.clone() });
        }
    removed.untagged = img.tags.clone();
    let id = img.id.clone();
    let layers = img.layers.clone();
    if !users.is_empty() {
        // Forced while containers use it: only untag, as docker does, so
        // the containers keep their layers.
        db.write(|tx| Ok(tx.execute("DELETE FROM tags WHERE image_id=?1", [&id])?))?;
        write_index(paths, db)?;
        return Ok(removed);
    }
    let orphans: (Vec<String>, Vec<String>) = db.write(|tx| {
        tx.execute("DELETE FROM tags WHERE image_id=?1", [&id])?;
        tx.execute("DELETE FROM images WHERE id=?1", [&id])?;
        let mut orphans = Vec::new();
        let mut st = tx.prepare("SELECT layers FROM images")?;
        let still: Vec<String> = st.query_map([], |r| r.get::<_, String>(0))?.filter_map(|r| r.ok()).collect();
        for l in &layers {
            if !still.iter().any(|s| s.contains(l.as_str())) {
                orphans.push(l.clone());
            }
        }
        let mut blobs = Vec::new();
        for l in &orphans {
            if let Ok(b) = tx.query_row("SELECT blob FROM layers WHERE chain_id=?1", [l], |r| r.get::<_, String>(0)) {
                blobs.push(b);
            }
            tx.execute("DELETE FROM layers WHERE chain_id=?1", [l])?;
        }
        // A blob another layer row still names stays.
        blobs.retain(|b| tx.query_row("SELECT COUNT(*) FROM layers WHERE blob=?1", [b], |r| r.get::<_, i64>(0)).unwrap_or(1) == 0);
        Ok((orphans, blobs))
    })?;
    let (orphans, mut blobs) = orphans;
    // Layer blobs the manifest names (a layer may have arrived as another
    // blob than the one the layers table remembers) go too, unless another
    // image's manifest still names them.
    let named = |m: &[u8]| -> Vec<String> {
        serde_json::from_slice::<serde_json::Value>(m)
            .ok()
            .and_then(|v| v["layers"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|l| l["digest"].as_str().map(String::from))
            .collect()
    };
    let ours = named(&std::fs::read(paths.blob(&img.manifest)).unwrap_or_default());
    let others = list(db)?;
    let mut still_named: Vec<String> = Vec::new();
    for other in &others {
        still_named.extend(named(&std::fs::read(paths.blob(&other.manifest)).unwrap_or_default()));
    }
    let in_layers: Vec<String> = {
        let mut st = db.conn.prepare("SELECT blob FROM layers").map_err(StoreError::from)?;
        st.query_map([], |r| r.get(0)).map_err(StoreError::from)?.filter_map(|r| r.ok()).collect()
    };
    blobs.extend(ours.into_iter().filter(|b| !still_named.contains(b) && !in_layers.contains(b)));
    for b in blobs.iter().chain([&id]) {
        let _ = std::fs::remove_file(paths.blob(b));
    }
    if !others.iter().any(|o| o.manifest == img.manifest) {
        let _ = std::fs::remove_file(paths.blob(&img.manifest));
    }
    for l in &orphans {
        let hex = l.trim_start_matches("sha256:");
        let _ = std::fs::remove_file(paths.layers().join("l").join(format!("L{}", &hex[..10])));
        let _ = std::fs::remove_dir_all(paths.layer_dir(l));
    }
    removed.deleted.push(id);
    write_index(paths, db)?;
    Ok(removed)
}

/// The data of `berth image inspect`, in docker's shape.
pub fn inspect_json(img: &Image) -> serde_json::Value {
    serde_json::json!({
        "Id": img.id,
        "RepoTags": img.tags,
        "RepoDigests": [],
        "Created": img.created,
        "Architecture": img.config.architecture,
        "Os": img.config.os,
        "Size": img.size,
        "Config": img.config.config,
        "RootFS": { "Type": "layers", "Layers": img.config.rootfs.diff_ids },
        "Metadata": { "Manifest": img.manifest, "ChainIds": img.layers },
    })
}

/// What no image reaches: layer records, layer directories and blobs left
/// by a pull, load or build that was cut short (or an rmi). Images reach
/// their config and manifest blobs, the layers the manifest names, and
/// their chain ids' records, directories and blobs.
#[derive(Debug, Default)]
pub struct Unreached {
    pub layers: Vec<String>,
    pub layer_dirs: Vec<PathBuf>,
    pub blobs: Vec<PathBuf>,
}

impl Unreached {
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty() && self.layer_dirs.is_empty() && self.blobs.is_empty()
    }
}

pub fn unreached(paths: &Paths, db: &Db) -> Result<Unreached> {
    let images = list(db)?;
    let mut chains: HashSet<String> = HashSet::new();
    let mut blobs: HashSet<String> = HashSet::new();
    for img in &images {
        chains.extend(img.layers.iter().cloned());
        blobs.insert(img.id.trim_start_matches("sha256:").to_string());
        blobs.insert(img.manifest.trim_start_matches("sha256:").to_string());
        if let Ok(m) = manifest_of(paths, img) {
            blobs.extend(m.layers().iter().map(|d| d.digest().to_string().trim_start_matches("sha256:").to_string()));
        }
    }
    let rows: Vec<(String, String)> = {
        let mut st = db.conn.prepare("SELECT chain_id, blob FROM layers").map_err(StoreError::from)?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(StoreError::from)?.filter_map(|r| r.ok()).collect()
    };
    let mut out = Unreached::default();
    for (chain, blob) in &rows {
        if chains.contains(chain) {
            blobs.insert(blob.trim_start_matches("sha256:").to_string());
        } else {
            out.layers.push(chain.clone());
        }
    }
    let dirs: HashSet<String> = chains.iter().map(|c| c.trim_start_matches("sha256:").to_string()).collect();
    for e in std::fs::read_dir(paths.layers()).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n != "l" && !dirs.contains(&n) && !out.layers.iter().any(|l| l.ends_with(&n)) {
            out.layer_dirs.push(e.path());
        }
    }
    for e in std::fs::read_dir(paths.blobs()).into_iter().flatten().flatten() {
        if !blobs.contains(e.file_name().to_string_lossy().as_ref()) {
            out.blobs.push(e.path());
        }
    }
    out.layers.sort();
    out.layer_dirs.sort();
    out.blobs.sort();
    Ok(out)
}

/// Removes what [`unreached`] finds: records first, then files.
pub fn drop_unreached(paths: &Paths, db: &mut Db) -> Result<()> {
    let u = unreached(paths, db)?;
    db.write(|tx| {
        for l in &u.layers {
            tx.execute("DELETE FROM layers WHERE chain_id=?1", [l])?;
        }
        Ok(())
    })?;
    for l in &u.layers {
        let hex = l.trim_start_matches("sha256:");
        let _ = std::fs::remove_file(paths.layers().join("l").join(format!("L{}", &hex[..10.min(hex.len())])));
        remove_dir_gone(&paths.layer_dir(l))?;
    }
    for d in &u.layer_dirs {
        remove_dir_gone(d)?;
    }
    for b in &u.blobs {
        match std::fs::remove_file(b) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(store::io_err(b)(e).into()),
            _ => {}
        }
    }
    Ok(())
}

fn remove_dir_gone(d: &Path) -> Result<()> {
    match std::fs::remove_dir_all(d) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(store::io_err(d)(e).into()),
        _ => Ok(()),
    }
}

/// Removes what killed imports and pulls left in tmp/ (their process is
/// gone). Cheap: run at every engine start.
pub fn sweep_tmp(paths: &Paths) {
    let Ok(dir) = std::fs::read_dir(paths.tmp()) else { return };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("import-")
            .or_else(|| name.strip_prefix("blob-"))
            .or_else(|| name.strip_prefix("build-"))
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<i32>().ok());
        let stale = match pid {
            Some(pid) => !crate::sys::proc::is_alive(pid, None),
            // Older names without a pid, and stray blob temp files: only
            // when they are an hour old, so a concurrent writer is safe.
            None => e.metadata().and_then(|m| m.modified()).map(|t| t.elapsed().map(|d| d.as_secs() > 3600).unwrap_or(false)).unwrap_or(false),
        };
        if stale {
            let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
        }
    }
}

/// Images `prune` may remove: untagged ones (`all`: every one) that no
/// container uses.
pub fn prunable(db: &Db, all: bool, in_use: &[String]) -> Result<Vec<Image>> {
    Ok(list(db)?.into_iter().filter(|i| (all || i.tags.is_empty()) && !in_use.contains(&i.id)).collect())
}

/// One line of `image history`: what docker shows per instruction.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryLine {
    pub created: String,
    pub created_by: String,
    /// Bytes of the layer this step added (0 for metadata-only steps).
    pub size: u64,
    pub comment: String,
    pub empty_layer: bool,
}

/// Pairs the config's history with the layers, in order: every step that
/// is not `empty_layer` added the next layer. Newest first, as docker prints.
pub fn history(db: &Db, img: &Image) -> Result<Vec<HistoryLine>> {
    let mut sizes = Vec::new();
    for c in &img.layers {
        sizes.push(store::get_opt::<i64>(&db.conn, "SELECT size FROM layers WHERE chain_id=?1", [c])?.unwrap_or(0).max(0) as u64);
    }
    let mut lines = Vec::new();
    let mut next = sizes.into_iter();
    if img.config.history.is_empty() {
        for (i, s) in next.enumerate() {
            lines.push(HistoryLine { created: img.created.clone(), created_by: format!("layer {}", i + 1), size: s, comment: String::new(), empty_layer: false });
        }
    } else {
        for h in &img.config.history {
            let size = if h.empty_layer { 0 } else { next.next().unwrap_or(0) };
            lines.push(HistoryLine { created: h.created.clone(), created_by: h.created_by.clone(), size, comment: h.comment.clone(), empty_layer: h.empty_layer });
        }
    }
    lines.reverse();
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn the_init_layer_tops_an_image_whose_etc_is_a_directory_only() {
        let t = crate::testutil::TempDir::new("initlayer");
        let paths = Paths { root: t.path().to_path_buf(), run: t.path().join("run") };
        let l = paths.layers().join("l");
        for (name, etc) in [("Lbase", Some(true)), ("Lnone", None), ("Llink", Some(false))] {
            std::fs::create_dir_all(l.join(name)).unwrap();
            match etc {
                Some(true) => std::fs::create_dir(l.join(name).join("etc")).unwrap(),
                Some(false) => std::os::unix::fs::symlink("/tmp", l.join(name).join("etc")).unwrap(),
                None => {}
            }
        }
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(init_layer(&paths, &v(&["Lbase", "Lnone"])).as_deref(), Some(INIT_LAYER), "/etc from a lower layer");
        assert_eq!(init_layer(&paths, &v(&["Lnone"])).as_deref(), Some(INIT_LAYER), "no /etc at all");
        assert_eq!(init_layer(&paths, &v(&["Lbase", "Llink"])), None, "the topmost /etc is a symlink");
        for f in INIT_FILES {
            let m = std::fs::metadata(l.join(INIT_LAYER).join("etc").join(f)).unwrap();
            assert_eq!((m.len(), m.permissions().mode() & 0o777), (0, 0o644));
        }
    }

    #[test]
    fn a_written_manifest_reads_back_with_the_same_types() {
        let layers = vec![descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &digest('a'), 10).unwrap(), descriptor(MediaType::ImageLayer, &digest('b'), 20).unwrap()];
        let bytes = manifest_json(&digest('c'), 30, layers.clone()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(v["config"], serde_json::json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest('c'), "size": 30}));
        assert_eq!(v["layers"][0], serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest('a'), "size": 10}));
        let back: ImageManifest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.layers(), &layers);
    }

    #[test]
    fn an_index_names_its_images() {
        let mut d = descriptor(MediaType::ImageManifest, &digest('d'), 5).unwrap();
        d.set_annotations(Some([("org.opencontainers.image.ref.name".to_string(), "busybox:latest".to_string())].into()));
        let v: serde_json::Value = serde_json::from_slice(&index_json(vec![d], true).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest('d'), "size": 5, "annotations": {"org.opencontainers.image.ref.name": "busybox:latest"}}
        ]}));
    }

    /// The monitor's one-field read gives what the whole config says.
    #[test]
    fn an_images_health_check_reads_as_resolve_sees_it() {
        let t = crate::testutil::TempDir::new("imghealth");
        let paths = Paths { root: t.path().to_path_buf(), run: t.path().join("run") };
        crate::store::ensure_dirs(&paths).unwrap();
        let db = Db::open(&paths).unwrap();
        let check = serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 2000000000u64, "Retries": 3});
        for (id, hc) in [(digest('e'), Some(check.clone())), (digest('f'), None)] {
            let mut config = ImageConfig::default();
            config.config.healthcheck = hc.clone();
            db.conn
                .execute(
                    "INSERT INTO images(id, manifest, created, size, config, layers) VALUES(?1,'{}','',0,?2,'[]')",
                    rusqlite::params![id, serde_json::to_string(&config).unwrap()],
                )
                .unwrap();
            assert_eq!(healthcheck(&db, &id).unwrap(), hc);
            assert_eq!(resolve(&db, &id).unwrap().config.config.healthcheck, hc);
        }
        assert_eq!(healthcheck(&db, &digest('0')).unwrap(), None);
    }

    /// Pulled images keep the registry's manifest, often Docker's.
    #[test]
    fn docker_v2_manifests_are_read() {
        let docker = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": digest('e')},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 9, "digest": digest('f')}]
        });
        let m: ImageManifest = serde_json::from_value(docker).unwrap();
        assert_eq!(m.media_type().as_ref().unwrap().to_string(), "application/vnd.docker.distribution.manifest.v2+json");
        assert_eq!(m.layers()[0].media_type().to_string(), "application/vnd.docker.image.rootfs.diff.tar.gzip");
        assert_eq!(m.layers()[0].digest().to_string(), digest('f'));
        // A commit on top keeps the Docker layer as it is and adds an OCI one.
        let mut layers = m.layers().clone();
        layers.push(descriptor(MediaType::ImageLayer, &digest('a'), 1).unwrap());
        let v: serde_json::Value = serde_json::from_slice(&manifest_json(&digest('c'), 3, layers).unwrap()).unwrap();
        assert_eq!(v["layers"][0]["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip");
    }

    #[test]
    fn a_bad_digest_is_refused() {
        assert!(descriptor(MediaType::ImageLayer, "sha256:xyz", 1).is_err());
    }
}
