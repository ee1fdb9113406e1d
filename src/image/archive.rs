//! `berth save` / `berth load`: docker-archive tarballs (what `docker save`
//! writes) and OCI image layout tarballs.
//!
//! Saving streams every blob from the store into the archive; a layer
//! stored compressed (gzip, zstd) is decompressed twice for a docker-archive
//! (once to learn its size for the tar header, once to write it), so no layer
//! is ever held in memory or copied to a temporary file. Every byte written
//! is checked against the digest the store recorded for it.
//!
//! Loading unpacks the outer archive into a private directory under
//! `tmp/` (plain files and directories only; links are remembered as
//! aliases and resolved by name inside the archive, never created on disk),
//! then verifies every config, manifest and layer against its digest
//! before anything is stored, so an archive with one wrong byte records
//! nothing. The directory is removed at the end, error or not.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tar::Compression;
use super::{ImageConfig, ImageError, Reference, Result};
use crate::store::{self, Db, Paths, StoreError};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    Docker,
    Oci,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// How many symlinks (or hard links) a name inside an archive may go through.
const MAX_ALIAS_HOPS: usize = 40;
/// Largest JSON document (manifest.json, index.json, a manifest or config)
/// read into memory.
const MAX_JSON: u64 = 64 << 20;

// ---------------------------------------------------------------------------
// Shared pieces

#[derive(Deserialize, Clone, Debug)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize, Clone, Debug, Default)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize, Debug)]
struct Manifest {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize, Debug)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// One image of docker's manifest.json (docker's own format, which
/// oci-spec does not model; save and load share this type).
#[derive(Serialize, Deserialize, Debug)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// A reader that hashes and counts what passes through it.
struct HashReader<R> {
    inner: R,
    hash: Sha256,
    n: u64,
}

impl<R: Read> HashReader<R> {
    fn new(inner: R) -> Self {
        HashReader { inner, hash: Sha256::new(), n: 0 }
    }
    fn digest(self) -> String {
        format!("sha256:{}", hex::encode(self.hash.finalize()))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:` digest, if it is one.
fn sha256_hex(digest: &str) -> Option<&str> {
    let h = digest.strip_prefix("sha256:")?;
    (h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(h)
}

/// An error about a part of an archive being read.
fn load_err(entry: &str, msg: impl std::fmt::Display) -> ImageError {
    // Shortened: a hostile name may be megabytes.
    ImageError::ImportIo { source_name: format!("archive entry {}", super::tar::shorten(entry)), err: io::Error::other(msg.to_string()) }
}

/// An error about the store while writing an archive.
fn save_err(what: impl Into<PathBuf>, msg: impl std::fmt::Display) -> ImageError {
    StoreError::Io { path: what.into(), source: io::Error::other(msg.to_string()) }.into()
}

fn write_err(e: io::Error) -> ImageError {
    StoreError::Io { path: PathBuf::from("writing the archive"), source: e }.into()
}

/// `busybox:latest` -> ("busybox", "latest"); the colon after the last slash.
fn split_tag(key: &str) -> (&str, &str) {
    let slash = key.rfind('/').map(|i| i + 1).unwrap_or(0);
    match key[slash..].rfind(':') {
        Some(i) => (&key[..slash + i], &key[slash + i + 1..]),
        None => (key, "latest"),
    }
}

/// `busybox:latest` -> `docker.io/library/busybox:latest`.
fn full_name(key: &str) -> String {
    match Reference::parse(key) {
        Ok(r) => format!("{}/{}:{}", r.registry, r.repository, r.tag.unwrap_or_else(|| "latest".into())),
        Err(_) => key.to_string(),
    }
}

// ---------------------------------------------------------------------------
// save

/// An image to save and the tags to write for it.
struct Selected {
    img: super::Image,
    tags: Vec<String>,
}

/// Resolves every name before anything is written, so an unknown name
/// leaves no output. Asked by tag: that tag; asked by id: all its tags.
fn select(db: &Db, names: &[String]) -> Result<Vec<Selected>> {
    if names.is_empty() {
        return Err(ImageError::NotFound("(no image given to save)".into()));
    }
    let mut out: Vec<Selected> = Vec::new();
    for name in names {
        let img = super::resolve(db, name)?;
        let asked = Reference::parse(name).ok().and_then(|r| r.tag_key()).filter(|k| img.tags.contains(k));
        let tags = match asked {
            Some(t) => vec![t],
            None => img.tags.clone(),
        };
        match out.iter_mut().find(|s| s.img.id == img.id) {
            Some(s) => {
                for t in tags {
                    if !s.tags.contains(&t) {
                        s.tags.push(t);
                    }
                }
            }
            None => out.push(Selected { img, tags }),
        }
    }
    Ok(out)
}

/// The config and manifest of a stored image, checked against their digests.
fn stored_image(paths: &Paths, img: &super::Image) -> Result<(Vec<u8>, ImageConfig, Vec<u8>, Manifest)> {
    let config_bytes = super::read_blob(paths, &img.id)?;
    if sha256_of(&config_bytes) != img.id {
        return Err(save_err(paths.blob(&img.id), format!("config of image {} does not match its digest (the store is damaged)", img.short_id())));
    }
    let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| ImageError::BadConfig(img.id.clone(), e))?;
    let manifest_bytes = super::read_blob(paths, &img.manifest)?;
    if sha256_of(&manifest_bytes) != img.manifest {
        return Err(save_err(paths.blob(&img.manifest), format!("manifest of image {} does not match its digest (the store is damaged)", img.short_id())));
    }
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| save_err(paths.blob(&img.manifest), format!("manifest of image {} is unreadable: {e}", img.short_id())))?;
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        return Err(save_err(
            paths.blob(&img.manifest),
            format!("image {}: the manifest lists {} layers but the config {}", img.short_id(), manifest.layers.len(), config.rootfs.diff_ids.len()),
        ));
    }
    Ok((config_bytes, config, manifest_bytes, manifest))
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn add_dir<W: Write>(b: &mut tar::Builder<W>, name: &str) -> Result<()> {
    let mut h = header(tar::EntryType::Directory, 0, 0o755);
    b.append_data(&mut h, name, io::empty()).map_err(write_err)
}

fn add_bytes<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8]) -> Result<()> {
    let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
    b.append_data(&mut h, name, data).map_err(write_err)
}

/// A reader that yields exactly `size` bytes of `inner` and fails if
/// `inner` has fewer or more, while hashing them.
struct Exact<R> {
    inner: HashReader<R>,
    size: u64,
    what: String,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size - self.inner.n;
        if left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(format!("{} grew while it was being written", self.what))),
            };
        }
        let max = buf.len().min(left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{} ended {left} bytes early", self.what)));
        }
        Ok(n)
    }
}

/// Appends the file `src` (with the content `reader` gives) as `name`,
/// checking that exactly `size` bytes with digest `want` went in.
fn add_checked<W: Write>(b: &mut tar::Builder<W>, name: &str, reader: impl Read, size: u64, want: &str, what: &str, blob: &Path) -> Result<()> {
    let mut h = header(tar::EntryType::Regular, size, 0o644);
    let mut r = Exact { inner: HashReader::new(reader), size, what: what.to_string() };
    b.append_data(&mut h, name, &mut r).map_err(|e| save_err(blob, e))?;
    let got = r.inner.digest();
    if got != want {
        return Err(save_err(blob, format!("{what}: content has digest {got}, expected {want} (the store is damaged)")));
    }
    Ok(())
}

/// Appends a stored blob as it is (OCI layout).
fn add_blob<W: Write>(paths: &Paths, b: &mut tar::Builder<W>, digest: &str, what: &str) -> Result<()> {
    let hex = sha256_hex(digest).ok_or_else(|| save_err(paths.blob(digest), format!("{what}: unsupported digest {digest:?}")))?;
    let path = paths.blob(digest);
    let f = File::open(&path).map_err(store::io_err(&path))?;
    let size = f.metadata().map_err(store::io_err(&path))?.len();
    add_checked(b, &format!("blobs/sha256/{hex}"), BufReader::new(f), size, digest, what, &path)
}

/// Appends a stored layer blob as an uncompressed tar whose digest is `diff_id`.
fn add_layer_tar<W: Write>(paths: &Paths, b: &mut tar::Builder<W>, name: &str, blob_digest: &str, diff_id: &str) -> Result<()> {
    let path = paths.blob(blob_digest);
    let what = format!("layer {diff_id} (blob {blob_digest})");
    let open = || File::open(&path).map(BufReader::new).map_err(store::io_err(&path));
    match Compression::of_file(&path).map_err(store::io_err(&path))? {
        Compression::Plain => {
            let size = std::fs::metadata(&path).map_err(store::io_err(&path))?.len();
            add_checked(b, name, open()?, size, diff_id, &what, &path)
        }
        Compression::Gzip | Compression::Zstd => {
            let decoded = || super::tar::decompressed(open()?).map_err(|e| save_err(&path, format!("{what}: {e}")));
            // First pass: the uncompressed size, for the tar header.
            let size = io::copy(&mut decoded()?, &mut io::sink()).map_err(|e| save_err(&path, format!("{what}: decompressing: {e}")))?;
            add_checked(b, name, decoded()?, size, diff_id, &what, &path)
        }
        Compression::Other(kind) => Err(save_err(&path, format!("{what} is compressed with {kind}, which berth cannot decompress for a docker-archive; use --format oci"))),
    }
}

/// Writes the named images (tags or ids) as one archive.
pub fn save(paths: &Paths, db: &Db, names: &[String], out: &mut dyn Write, format: Format) -> Result<()> {
    let selected = select(db, names)?;
    // Read (and check) every config and manifest before the first byte goes out.
    let mut images = Vec::new();
    for s in selected {
        let (config_bytes, config, manifest_bytes, manifest) = stored_image(paths, &s.img)?;
        images.push((s, config_bytes, config, manifest_bytes, manifest));
    }
    let mut b = tar::Builder::new(out);
    match format {
        Format::Docker => {
            let mut layers_done: HashSet<String> = HashSet::new();
            let mut configs_done: HashSet<String> = HashSet::new();
            let mut entries = Vec::new();
            let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for (s, config_bytes, config, _, manifest) in &images {
                let mut layer_names = Vec::new();
                for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
                    let hex = sha256_hex(diff_id).ok_or_else(|| ImageError::NotFound(format!("layer {diff_id} of image {} (not a sha256 digest)", s.img.short_id())))?;
                    if layers_done.insert(hex.to_string()) {
                        add_dir(&mut b, &format!("{hex}/"))?;
                        add_bytes(&mut b, &format!("{hex}/VERSION"), b"1.0")?;
                        add_layer_tar(paths, &mut b, &format!("{hex}/layer.tar"), &desc.digest, diff_id)?;
                        add_bytes(&mut b, &format!("{hex}/json"), format!("{{\"id\":\"{hex}\"}}").as_bytes())?;
                    }
                    layer_names.push(format!("{hex}/layer.tar"));
                }
                let cfg_hex = s.img.id.trim_start_matches("sha256:");
                let cfg_name = format!("{cfg_hex}.json");
                if configs_done.insert(cfg_hex.to_string()) {
                    add_bytes(&mut b, &cfg_name, config_bytes)?;
                }
                entries.push(DockerEntry { config: cfg_name, repo_tags: Some(s.tags.clone()), layers: layer_names });
                if let Some(top) = config.rootfs.diff_ids.last().and_then(|d| sha256_hex(d)) {
                    for t in &s.tags {
                        let (repo, tag) = split_tag(t);
                        repositories.entry(repo.to_string()).or_default().insert(tag.to_string(), top.to_string());
                    }
                }
            }
            add_bytes(&mut b, "manifest.json", &serde_json::to_vec(&entries).unwrap())?;
            if !repositories.is_empty() {
                add_bytes(&mut b, "repositories", &serde_json::to_vec(&repositories).unwrap())?;
            }
        }
        Format::Oci => {
            add_bytes(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            add_dir(&mut b, "blobs/")?;
            add_dir(&mut b, "blobs/sha256/")?;
            let mut done: HashSet<String> = HashSet::new();
            let mut descriptors = Vec::new();
            for (s, _, _, manifest_bytes, manifest) in &images {
                let short = s.img.short_id();
                for desc in &manifest.layers {
                    if done.insert(desc.digest.clone()) {
                        add_blob(paths, &mut b, &desc.digest, &format!("layer {} of image {short}", desc.digest))?;
                    }
                }
                if done.insert(manifest.config.digest.clone()) {
                    add_blob(paths, &mut b, &manifest.config.digest, &format!("config of image {short}"))?;
                }
                if done.insert(s.img.manifest.clone()) {
                    add_blob(paths, &mut b, &s.img.manifest, &format!("manifest of image {short}"))?;
                }
                let media_type = if manifest.media_type.is_empty() { OCI_MANIFEST } else { manifest.media_type.as_str() };
                let base = super::descriptor(media_type, &s.img.manifest, manifest_bytes.len() as u64)?;
                if s.tags.is_empty() {
                    descriptors.push(base.clone());
                }
                for t in &s.tags {
                    let mut d = base.clone();
                    d.set_annotations(Some([(REF_NAME.to_string(), t.clone()), (CONTAINERD_NAME.to_string(), full_name(t))].into()));
                    descriptors.push(d);
                }
            }
            add_bytes(&mut b, "index.json", &super::index_json(descriptors, false)?)?;
        }
    }
    b.finish().map_err(write_err)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// load: unpacking the outer archive

/// The private directory an archive is unpacked into; removed on drop.
struct Unpacked {
    dir: PathBuf,
    /// Links of the archive, by normalised name: the name they point to.
    aliases: HashMap<String, String>,
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Splits an archive name into its components, refusing absolute names and
/// `..`; `.` and empty components are dropped.
fn clean_name(name: &str) -> std::result::Result<Vec<&str>, &'static str> {
    if name.starts_with('/') {
        return Err("is an absolute path");
    }
    if name.len() > MAX_NAME {
        return Err("is a name too long for an image archive (more than 1024 bytes)");
    }
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("climbs out of the archive with \"..\""),
            c => parts.push(c),
        }
    }
    if parts.len() > MAX_DEPTH {
        return Err("is nested too deep for an image archive (more than 16 directories)");
    }
    Ok(parts)
}

// docker-archive and OCI layouts are at most three levels deep
// (blobs/sha256/DIGEST) with short names and a few files per layer; the
// limits leave room for any writer while keeping a hostile archive from
// costing us time per level or memory per link.
const MAX_NAME: usize = 1024;
const MAX_DEPTH: usize = 16;
const MAX_ENTRIES: usize = 100_000;

/// A link target, relative to `base` (components of the directory the link
/// is in), resolved lexically; it may not leave the archive.
fn resolve_link(base: &[&str], target: &str) -> std::result::Result<String, &'static str> {
    if target.starts_with('/') {
        return Err("is a link to an absolute path");
    }
    let mut parts: Vec<&str> = base.to_vec();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("is a link that points out of the archive");
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

impl Unpacked {
    fn new(paths: &Paths) -> Result<Unpacked> {
        // Named like the store's other scratch dirs, so that start-up's
        // sweep removes it once this process is gone, and not before.
        let dir = paths.tmp().join(format!("import-{}-load-{}", std::process::id(), &store::new_id()[..16]));
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(store::io_err(&dir))?;
        Ok(Unpacked { dir, aliases: HashMap::new() })
    }

    /// Unpacks the archive: files and directories only.
    fn fill(&mut self, src: &mut dyn Read) -> Result<()> {
        let input = super::tar::decompressed(src).map_err(|err| ImageError::Import { source_name: "the archive".into(), err })?;
        let mut ar = tar::Archive::new(input);
        let top = |e: io::Error| ImageError::ImportIo {
            source_name: "the archive".into(),
            err: io::Error::new(e.kind(), format!("{e} (a docker-archive or OCI layout tarball is expected, plain, gzip or zstd)")),
        };
        let mut seen = 0usize;
        for entry in ar.entries().map_err(top)? {
            let mut entry = entry.map_err(top)?;
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8(raw).map_err(|e| load_err(&String::from_utf8_lossy(e.as_bytes()), "name is not UTF-8"))?;
            let kind = entry.header().entry_type();
            if matches!(kind, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName | tar::EntryType::GNULongLink) {
                continue;
            }
            seen += 1;
            if seen > MAX_ENTRIES {
                return Err(load_err(&name, format!("is past {MAX_ENTRIES} entries, more than any image archive holds")));
            }
            let parts = clean_name(&name).map_err(|why| load_err(&name, why))?;
            let rel = parts.join("/");
            let path = self.dir.join(&rel);
            match kind {
                tar::EntryType::Directory => {
                    if !parts.is_empty() {
                        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&path).map_err(|e| load_err(&name, e))?;
                    }
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if parts.is_empty() {
                        return Err(load_err(&name, "a file without a name"));
                    }
                    self.aliases.remove(&rel);
                    if let Some(parent) = path.parent() {
                        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(|e| load_err(&name, e))?;
                    }
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&path)
                        .map_err(|e| load_err(&name, e))?;
                    io::copy(&mut entry, &mut f).map_err(|e| load_err(&name, format!("unpacking: {e}")))?;
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if parts.is_empty() {
                        return Err(load_err(&name, "a link without a name"));
                    }
                    let target = entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                    // A symlink is relative to its directory, a hard link
                    // to the top of the archive.
                    let base = if kind == tar::EntryType::Symlink { &parts[..parts.len() - 1] } else { &[][..] };
                    let to = resolve_link(base, &target).map_err(|why| load_err(&name, format!("{why} ({target:?})")))?;
                    if path.is_file() {
                        let _ = std::fs::remove_file(&path);
                    }
                    self.aliases.insert(rel, to);
                }
                other => {
                    return Err(load_err(&name, format!("is a {other:?} entry; an image archive holds only files and directories")));
                }
            }
        }
        // Read what follows the end-of-archive marker (record padding, the
        // gzip trailer) so that a writer on a pipe is not cut off.
        let _ = io::copy(&mut ar.into_inner(), &mut io::sink());
        if seen == 0 {
            return Err(ImageError::ImportIo { source_name: "the archive".into(), err: io::Error::other("it is empty") });
        }
        Ok(())
    }

    /// The unpacked file an archive name stands for, following links by name.
    fn file(&self, name: &str) -> Result<PathBuf> {
        let mut rel = clean_name(name).map_err(|why| load_err(name, why))?.join("/");
        for _ in 0..MAX_ALIAS_HOPS {
            match self.aliases.get(&rel) {
                Some(to) => rel = to.clone(),
                None => {
                    let p = self.dir.join(&rel);
                    return match std::fs::symlink_metadata(&p) {
                        Ok(m) if m.is_file() => Ok(p),
                        Ok(_) => Err(load_err(name, "is not a file")),
                        Err(_) => Err(load_err(name, "is missing from the archive")),
                    };
                }
            }
        }
        Err(load_err(name, "too many links (a link loop?)"))
    }

    fn has(&self, name: &str) -> bool {
        self.file(name).is_ok()
    }

    fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let p = self.file(name)?;
        let f = File::open(&p).map_err(|e| load_err(name, e))?;
        let mut v = Vec::new();
        f.take(MAX_JSON + 1).read_to_end(&mut v).map_err(|e| load_err(name, e))?;
        if v.len() as u64 > MAX_JSON {
            return Err(load_err(name, format!("is larger than {} MiB, too large for a JSON document", MAX_JSON >> 20)));
        }
        Ok(v)
    }

    /// A blob of an OCI layout, checked against its descriptor.
    fn blob_name(&self, desc: &Descriptor, what: &str) -> Result<String> {
        match sha256_hex(&desc.digest) {
            Some(hex) => Ok(format!("blobs/sha256/{hex}")),
            None => Err(load_err("index.json", format!("{what} has digest {:?}; only sha256 digests are supported", desc.digest))),
        }
    }

    fn read_blob(&self, desc: &Descriptor, what: &str) -> Result<Vec<u8>> {
        let name = self.blob_name(desc, what)?;
        let bytes = self.read_small(&name)?;
        let got = sha256_of(&bytes);
        if got != desc.digest {
            return Err(ImageError::DigestMismatch { what: format!("archive entry {name} ({what})"), expected: desc.digest.clone(), got });
        }
        if desc.size != 0 && desc.size != bytes.len() as u64 {
            return Err(load_err(&name, format!("{what} is {} bytes, its descriptor says {}", bytes.len(), desc.size)));
        }
        Ok(bytes)
    }
}

// ---------------------------------------------------------------------------
// load: planning and verifying, then storing

/// One layer file of the archive, verified.
#[derive(Clone)]
struct LayerFile {
    /// Archive name, for messages.
    name: String,
    path: PathBuf,
    diff_id: String,
    /// For OCI layouts: the blob digest the manifest names.
    expect_blob: Option<String>,
}

/// One image of the archive, verified, ready to be stored.
struct Plan {
    config_bytes: Vec<u8>,
    config_digest: String,
    layers: Vec<LayerFile>,
    /// OCI layouts: the manifest as it was. docker-archives: made after
    /// the layers are stored.
    manifest: Option<Vec<u8>>,
    tags: Vec<String>,
}

/// The digests of a layer file: (blob digest, blob size, diff_id).
type LayerDigests = (String, u64, String);

/// Hashes a layer file as stored (blob digest) and uncompressed (diff_id).
fn hash_layer(name: &str, path: &Path) -> Result<LayerDigests> {
    let f = File::open(path).map_err(|e| load_err(name, e))?;
    let mut raw = HashReader::new(BufReader::new(f));
    let diff_id = {
        let plain = super::tar::decompressed(&mut raw).map_err(|err| ImageError::Import { source_name: format!("archive entry {name}"), err })?;
        let mut plain = HashReader::new(plain);
        io::copy(&mut plain, &mut io::sink()).map_err(|e| load_err(name, format!("decompressing: {e}")))?;
        plain.digest()
    };
    io::copy(&mut raw, &mut io::sink()).map_err(|e| load_err(name, e))?;
    let size = raw.n;
    Ok((raw.digest(), size, diff_id))
}

/// Checks every layer of a plan against its digests (each file once).
fn verify_layers(plan: &Plan, cache: &mut HashMap<PathBuf, LayerDigests>) -> Result<()> {
    for l in &plan.layers {
        if !cache.contains_key(&l.path) {
            let d = hash_layer(&l.name, &l.path)?;
            cache.insert(l.path.clone(), d);
        }
        let (blob, _, diff) = &cache[&l.path];
        if let Some(want) = &l.expect_blob
            && want != blob
        {
            return Err(ImageError::DigestMismatch { what: format!("archive entry {} (layer blob)", l.name), expected: want.clone(), got: blob.clone() });
        }
        if diff != &l.diff_id {
            return Err(ImageError::DigestMismatch { what: format!("archive entry {} (uncompressed layer, diff_id)", l.name), expected: l.diff_id.clone(), got: diff.clone() });
        }
    }
    Ok(())
}

fn parse_config(name: &str, bytes: &[u8]) -> Result<ImageConfig> {
    serde_json::from_slice(bytes).map_err(|e| load_err(name, format!("image config is unreadable: {e}")))
}

fn tag_key_of(entry: &str, name: &str) -> Result<String> {
    let r = Reference::parse(name).map_err(|e| load_err(entry, e))?;
    r.tag_key().ok_or_else(|| load_err(entry, format!("{name:?} names no tag")))
}

fn plan_docker(ar: &Unpacked) -> Result<Vec<Plan>> {
    let bytes = ar.read_small("manifest.json")?;
    let entries: Vec<DockerEntry> = serde_json::from_slice(&bytes).map_err(|e| load_err("manifest.json", format!("unreadable: {e}")))?;
    if entries.is_empty() {
        return Err(load_err("manifest.json", "lists no image"));
    }
    let mut plans = Vec::new();
    for e in entries {
        let config_bytes = ar.read_small(&e.config)?;
        let config_digest = sha256_of(&config_bytes);
        // docker names the config after its digest: <hex>.json or blobs/sha256/<hex>.
        let base = e.config.rsplit('/').next().unwrap_or("");
        let stem = base.strip_suffix(".json").unwrap_or(base);
        if sha256_hex(&format!("sha256:{stem}")).is_some() && config_digest != format!("sha256:{stem}") {
            return Err(ImageError::DigestMismatch { what: format!("archive entry {} (image config)", e.config), expected: format!("sha256:{stem}"), got: config_digest });
        }
        let config = parse_config(&e.config, &config_bytes)?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != e.layers.len() {
            return Err(load_err("manifest.json", format!("image {} lists {} layers, its config {} ({})", e.config, e.layers.len(), diff_ids.len(), e.config)));
        }
        let mut layers = Vec::new();
        for (name, diff_id) in e.layers.iter().zip(diff_ids) {
            layers.push(LayerFile { name: name.clone(), path: ar.file(name)?, diff_id: diff_id.clone(), expect_blob: None });
        }
        let mut tags = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            let k = tag_key_of("manifest.json", &t)?;
            if !tags.contains(&k) {
                tags.push(k);
            }
        }
        plans.push(Plan { config_bytes, config_digest, layers, manifest: None, tags });
    }
    Ok(plans)
}

fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        return true;
    }
    if media_type.is_empty()
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes)
    {
        return v.get("manifests").is_some() && v.get("config").is_none();
    }
    false
}

/// Follows a descriptor through (nested) indexes to the image manifest for
/// this host's platform.
fn image_manifest(ar: &Unpacked, desc: &Descriptor, depth: usize) -> Result<(Descriptor, Vec<u8>)> {
    let name = ar.blob_name(desc, "manifest")?;
    let bytes = ar.read_blob(desc, "manifest")?;
    let own_type = serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|v| v["mediaType"].as_str().map(String::from)).unwrap_or_default();
    let media_type = if desc.media_type.is_empty() { own_type.as_str() } else { desc.media_type.as_str() };
    if !is_index(media_type, &bytes) {
        return Ok((desc.clone(), bytes));
    }
    if depth > 4 {
        return Err(load_err(&name, "indexes nested too deep"));
    }
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| load_err(&name, format!("unreadable image index: {e}")))?;
    let arch = super::host_arch();
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| d.annotations.get("vnd.docker.reference.type").map(String::as_str) != Some("attestation-manifest"))
        .collect();
    let chosen = candidates
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == arch))
        .or_else(|| if candidates.len() == 1 && candidates[0].platform.is_none() { candidates.first() } else { None })
        .ok_or_else(|| load_err(&name, format!("the image index has no manifest for linux/{arch}")))?;
    image_manifest(ar, chosen, depth + 1)
}

/// The tag an OCI index descriptor gives its image, if any. A bare
/// `ref.name` (`latest`, as `skopeo copy ... oci:DIR:latest` writes) names
/// no repository, so the image is loaded untagged.
fn oci_tag(desc: &Descriptor) -> Result<Option<String>> {
    if let Some(n) = desc.annotations.get(CONTAINERD_NAME) {
        return tag_key_of("index.json", n).map(Some);
    }
    match desc.annotations.get(REF_NAME) {
        Some(n) if n.contains([':', '/', '@']) => {
            let r = Reference::parse(n).map_err(|e| load_err("index.json", e))?;
            Ok(r.tag_key())
        }
        _ => Ok(None),
    }
}

fn plan_oci(ar: &Unpacked) -> Result<Vec<Plan>> {
    if ar.has("oci-layout") {
        let layout: serde_json::Value =
            serde_json::from_slice(&ar.read_small("oci-layout")?).map_err(|e| load_err("oci-layout", format!("unreadable: {e}")))?;
        if let Some(v) = layout["imageLayoutVersion"].as_str()
            && !v.starts_with("1.")
        {
            return Err(load_err("oci-layout", format!("image layout version {v} is not supported (1.x is)")));
        }
    }
    let index: Index = serde_json::from_slice(&ar.read_small("index.json")?).map_err(|e| load_err("index.json", format!("unreadable: {e}")))?;
    if index.manifests.is_empty() {
        return Err(load_err("index.json", "lists no image"));
    }
    let mut plans: Vec<(String, Plan)> = Vec::new();
    for top in &index.manifests {
        let tag = oci_tag(top)?;
        let (desc, manifest_bytes) = image_manifest(ar, top, 0)?;
        if let Some((_, p)) = plans.iter_mut().find(|(d, _)| *d == desc.digest) {
            if let Some(t) = tag
                && !p.tags.contains(&t)
            {
                p.tags.push(t);
            }
            continue;
        }
        let mname = ar.blob_name(&desc, "manifest")?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| load_err(&mname, format!("unreadable image manifest: {e}")))?;
        let config_bytes = ar.read_blob(&manifest.config, "image config")?;
        let cname = ar.blob_name(&manifest.config, "image config")?;
        let config = parse_config(&cname, &config_bytes)?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(load_err(&mname, format!("the manifest lists {} layers, its config {}", manifest.layers.len(), diff_ids.len())));
        }
        let mut layers = Vec::new();
        for (l, diff_id) in manifest.layers.iter().zip(diff_ids) {
            let name = ar.blob_name(l, "layer")?;
            layers.push(LayerFile { path: ar.file(&name)?, name, diff_id: diff_id.clone(), expect_blob: Some(l.digest.clone()) });
        }
        plans.push((desc.digest.clone(), Plan { config_digest: manifest.config.digest.clone(), config_bytes, layers, manifest: Some(manifest_bytes), tags: tag.into_iter().collect() }));
    }
    Ok(plans.into_iter().map(|(_, p)| p).collect())
}

/// The descriptor of a layer already in the store, if its blob is there.
fn stored_layer_desc(paths: &Paths, db: &Db, chain: &str) -> Result<Option<oci_spec::image::Descriptor>> {
    let Some(blob) = store::get_opt::<String>(&db.conn, "SELECT blob FROM layers WHERE chain_id=?1", [chain])? else { return Ok(None) };
    let path = paths.blob(&blob);
    let Ok(meta) = std::fs::metadata(&path) else { return Ok(None) };
    let media_type = Compression::of_file(&path).map_err(store::io_err(&path))?.layer_media_type();
    Ok(Some(super::descriptor(media_type, &blob, meta.len())?))
}

/// Stores the layers of a verified plan and records its image and tags.
fn commit(paths: &Paths, db: &mut Db, plan: Plan, report: &mut Vec<String>) -> Result<()> {
    // An image already in the store (same config, so the same layers) keeps
    // the manifest it has; only the tags are added.
    let existing = super::resolve(db, &plan.config_digest).ok().filter(|img| img.id == plan.config_digest);
    if let Some(img) = existing {
        let complete = img.layers.iter().try_fold(true, |ok, c| super::has_layer(db, c).map(|h| ok && h))?;
        if let (true, Ok(m)) = (complete, super::read_blob(paths, &img.manifest)) {
            return record(paths, db, &plan, &m, report);
        }
    }
    let mut parent: Option<String> = None;
    let mut descs = Vec::new();
    for l in &plan.layers {
        let chain = super::chain_id(parent.as_deref(), &l.diff_id);
        let have = super::has_layer(db, &chain)?;
        // Some(None): stored already, and the archive's own manifest (kept
        // as it is) names the blob, so no descriptor is needed.
        let existing = match (&l.expect_blob, have) {
            (_, false) => None,
            (Some(blob), true) => paths.blob(blob).exists().then_some(None),
            (None, true) => stored_layer_desc(paths, db, &chain)?.map(Some),
        };
        match existing {
            Some(d) => descs.extend(d),
            None => {
                let mut f = BufReader::new(File::open(&l.path).map_err(|e| load_err(&l.name, e))?);
                let s = super::store_layer(paths, db, &mut f, parent.as_deref(), &format!("archive entry {}", l.name), l.expect_blob.as_deref(), Some(&l.diff_id))?;
                descs.push(s.descriptor()?);
            }
        }
        parent = Some(chain);
    }
    let manifest = match &plan.manifest {
        Some(m) => m.clone(),
        None => super::manifest_json(&plan.config_digest, plan.config_bytes.len() as u64, descs)?,
    };
    record(paths, db, &plan, &manifest, report)
}

/// Records the image once per tag (untagged when it has none).
fn record(paths: &Paths, db: &mut Db, plan: &Plan, manifest: &[u8], report: &mut Vec<String>) -> Result<()> {
    if plan.tags.is_empty() {
        let img = super::commit_image_raw(paths, db, &plan.config_bytes, manifest, None)?;
        report.push(format!("Loaded image ID: {}", img.id));
    }
    for t in &plan.tags {
        super::commit_image_raw(paths, db, &plan.config_bytes, manifest, Some(t))?;
        report.push(format!("Loaded image: {t}"));
    }
    Ok(())
}

/// Reads an archive (docker-archive or OCI layout tarball, plain, gzip
/// or zstd), stores its layers and images; returns docker's report lines
/// ("Loaded image: busybox:latest" or "Loaded image ID: sha256:...").
pub fn load(paths: &Paths, db: &mut Db, src: &mut dyn Read) -> Result<Vec<String>> {
    store::ensure_dirs(paths)?;
    let mut ar = Unpacked::new(paths)?;
    ar.fill(src)?;
    // docker 25+ writes both; its manifest.json is the simpler guide.
    let plans = if ar.has("manifest.json") {
        plan_docker(&ar)?
    } else if ar.has("index.json") {
        plan_oci(&ar)?
    } else {
        return Err(ImageError::ImportIo {
            source_name: "the archive".into(),
            err: io::Error::other("it has neither manifest.json (docker-archive) nor index.json (OCI layout): not an image archive"),
        });
    };
    // Nothing is stored until every digest of every image checks out.
    let mut cache = HashMap::new();
    for p in &plans {
        verify_layers(p, &mut cache)?;
    }
    let mut report = Vec::new();
    for p in plans {
        commit(paths, db, p, &mut report)?;
    }
    drop(ar);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_escapes_refused() {
        assert_eq!(clean_name("./a//b/./c").unwrap(), vec!["a", "b", "c"]);
        assert!(clean_name("../x").is_err());
        assert!(clean_name("a/../../x").is_err());
        assert!(clean_name("/etc/passwd").is_err());
        assert!(clean_name("./").unwrap().is_empty());
        assert_eq!(clean_name("blobs/sha256/ab").unwrap().len(), 3);
        assert!(clean_name(&"d/".repeat(17)).unwrap_err().contains("nested too deep"));
        assert!(clean_name(&"n".repeat(1025)).unwrap_err().contains("too long"));
    }

    #[test]
    fn links_resolve_inside_the_archive_only() {
        assert_eq!(resolve_link(&["a"], "../b/layer.tar").unwrap(), "b/layer.tar");
        assert_eq!(resolve_link(&[], "b/./c").unwrap(), "b/c");
        assert!(resolve_link(&["a"], "../../etc/passwd").is_err());
        assert!(resolve_link(&["a"], "/etc/passwd").is_err());
    }

    #[test]
    fn tags_split_after_the_last_slash() {
        assert_eq!(split_tag("busybox:latest"), ("busybox", "latest"));
        assert_eq!(split_tag("127.0.0.1:5000/lab/web:1"), ("127.0.0.1:5000/lab/web", "1"));
        assert_eq!(full_name("busybox:latest"), "docker.io/library/busybox:latest");
        assert_eq!(full_name("127.0.0.1:5000/lab/web:1"), "127.0.0.1:5000/lab/web:1");
    }

    #[test]
    fn sha256_hex_wants_64_lowercase_hex() {
        assert!(sha256_hex(&format!("sha256:{}", "a".repeat(64))).is_some());
        assert!(sha256_hex(&format!("sha256:{}", "A".repeat(64))).is_none());
        assert!(sha256_hex("sha256:abc").is_none());
        assert!(sha256_hex(&format!("sha512:{}", "a".repeat(64))).is_none());
    }
}
