//! Pull, push, login and search over the registry protocol (oci-client):
//! HTTPS, plain HTTP for insecure registries (BERTH_INSECURE_REGISTRIES, and
//! loopback as docker does), anonymous, basic and token auth.
//!
//! Layers download in parallel and unpack while they stream: each download
//! feeds a blocking thread that hashes, stores and unpacks the blob
//! (`store_layer`), which checks every digest before anything is committed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference as OciRef};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Image, ImageError, Reference, Result};
use crate::store::{Db, Paths};

const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// How a pull or push reports progress.
#[derive(Clone)]
pub enum Progress {
    /// Bars per layer and in total (a terminal).
    Bars,
    /// One plain line per event (piped output, logs).
    Lines,
    Quiet,
    /// Each step handed to a front that renders its own (the API's JSON
    /// lines); nothing is printed.
    Events(Reporter),
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Progress::Bars => "Bars",
            Progress::Lines => "Lines",
            Progress::Quiet => "Quiet",
            Progress::Events(_) => "Events",
        })
    }
}

pub type Reporter = Arc<dyn Fn(Event) + Send + Sync>;

/// One step of a pull or push, in docker's words ("Pulling fs layer",
/// "Already exists", "Pushed", ...).
#[derive(Debug, Clone)]
pub enum Event {
    /// About the image (`id` None), a layer (its short digest) or a tag.
    Status { id: Option<String>, status: String },
    /// A layer moving: bytes done of its size.
    Bytes { id: String, status: &'static str, current: u64, total: u64 },
    /// A push is done: the tag, the manifest's digest and its size.
    Pushed { tag: String, digest: String, size: u64 },
}

pub struct Options {
    pub auth_file: PathBuf,
    pub progress: Progress,
    /// Credentials for this one operation (the API's X-Registry-Auth);
    /// None uses those stored by `login`.
    pub credentials: Option<(String, String)>,
}

impl Options {
    fn auth(&self, registry: &str) -> RegistryAuth {
        match &self.credentials {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => credentials(&self.auth_file, registry),
        }
    }
}

fn reg_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> ImageError {
    ImageError::Registry(format!("{what}: {e}"))
}

/// Docker's default: loopback registries speak plain HTTP; others only when
/// listed in BERTH_INSECURE_REGISTRIES.
fn insecure(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map(|(h, _)| h).unwrap_or(registry).trim_matches(['[', ']']);
    if host == "localhost" || host.starts_with("127.") || host == "::1" {
        return true;
    }
    std::env::var("BERTH_INSECURE_REGISTRIES").map(|v| v.split(',').any(|r| r.trim() == registry)).unwrap_or(false)
}

fn client_for(registry: &str) -> Client {
    let protocol = if insecure(registry) { ClientProtocol::HttpsExcept(vec![registry.to_string()]) } else { ClientProtocol::Https };
    Client::new(ClientConfig { protocol, ..Default::default() })
}

/// berth's parsed reference as oci-client's, field by field: `Reference::parse`
/// is the one parser (docker.io/library normalisation, berth's error
/// messages); oci-client never parses a name again.
fn oci_ref(r: &Reference) -> OciRef {
    let (registry, repository) = (r.registry.clone(), r.repository.clone());
    match (&r.tag, &r.digest) {
        (Some(t), Some(d)) => OciRef::with_tag_and_digest(registry, repository, t.clone(), d.clone()),
        (None, Some(d)) => OciRef::with_digest(registry, repository, d.clone()),
        (Some(t), None) => OciRef::with_tag(registry, repository, t.clone()),
        (None, None) => OciRef::with_tag(registry, repository, "latest".into()),
    }
}

// ---- credentials, stored like docker's config.json ----

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The key docker uses for Docker Hub in config.json.
fn auth_key(registry: &str) -> String {
    if registry == "docker.io" || registry == "index.docker.io" { "https://index.docker.io/v1/".into() } else { registry.to_string() }
}

fn read_auths(file: &Path) -> Value {
    std::fs::read(file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_else(|| serde_json::json!({"auths": {}}))
}

pub fn credentials(file: &Path, registry: &str) -> RegistryAuth {
    let v = read_auths(file);
    let entry = &v["auths"][auth_key(registry)];
    if let Some(a) = entry["auth"].as_str()
        && let Some(dec) = base64_decode(a)
            && let Some((u, p)) = String::from_utf8_lossy(&dec).split_once(':') {
                return RegistryAuth::Basic(u.to_string(), p.to_string());
            }
    RegistryAuth::Anonymous
}

/// Checks the credentials against the registry, then stores them.
pub fn login(file: &Path, registry: &str, user: &str, password: &str) -> Result<()> {
    check_login(registry, user, password)?;
    let mut v = read_auths(file);
    v["auths"][auth_key(registry)] = serde_json::json!({ "auth": base64_encode(format!("{user}:{password}").as_bytes()) });
    if let Some(d) = file.parent() {
        std::fs::create_dir_all(d).map_err(|e| reg_err(d.display(), e))?;
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&v).unwrap()).map_err(|e| reg_err(tmp.display(), e))?;
    // Credentials are secrets: readable by their owner only.
    let _ = std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600));
    std::fs::rename(&tmp, file).map_err(|e| reg_err(file.display(), e))?;
    Ok(())
}

/// Checks credentials against the registry and stores nothing (the API's
/// `/auth`: the client keeps them).
pub fn check_login(registry: &str, user: &str, password: &str) -> Result<()> {
    let r = Reference::parse(&format!("{registry}/berth-login-check:latest"))?;
    let auth = RegistryAuth::Basic(user.to_string(), password.to_string());
    block_on(async {
        let c = client_for(&r.registry);
        // A token registry checks the password here; a basic-auth one
        // only when a request carries it, so make one.
        c.auth(&oci_ref(&r), &auth, oci_client::RegistryOperation::Pull).await.map_err(|e| reg_err(format!("login to {registry}"), e))?;
        match c.catalog(&oci_ref(&r), &auth, Some(1), None).await {
            Err(oci_client::errors::OciDistributionError::UnauthorizedError { .. }) => {
                Err(ImageError::Unauthorized(format!("login to {registry}: unauthorized: incorrect username or password")))
            }
            // A registry without a catalog (Docker Hub) is fine: its token
            // flow above checked the password.
            _ => Ok(()),
        }
    })
}

pub fn logout(file: &Path, registry: &str) -> Result<bool> {
    let mut v = read_auths(file);
    let had = v["auths"].as_object_mut().map(|m| m.remove(&auth_key(registry)).is_some()).unwrap_or(false);
    if had {
        std::fs::write(file, serde_json::to_vec_pretty(&v).unwrap()).map_err(|e| reg_err(file.display(), e))?;
    }
    Ok(had)
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(f)
}

fn sha256_digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

// ---- progress ----

struct Bars {
    mode: Progress,
    multi: Option<indicatif::MultiProgress>,
}

impl Bars {
    fn new(mode: Progress) -> Bars {
        let multi = matches!(mode, Progress::Bars).then(indicatif::MultiProgress::new);
        Bars { mode, multi }
    }
    fn bar(&self, label: &str, total: u64) -> Option<indicatif::ProgressBar> {
        let m = self.multi.as_ref()?;
        let b = m.add(indicatif::ProgressBar::new(total));
        b.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>14} [{bar:30}] {bytes:>10}/{total_bytes:<10} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.set_prefix(label.to_string());
        Some(b)
    }
    fn line(&self, s: &str) {
        match self.mode {
            Progress::Lines => eprintln!("{s}"),
            Progress::Bars => {
                if let Some(m) = &self.multi {
                    let _ = m.println(s);
                }
            }
            Progress::Quiet | Progress::Events(_) => {}
        }
    }
    fn event(&self, e: Event) {
        if let Progress::Events(report) = &self.mode {
            report(e);
        }
    }
    fn status(&self, id: Option<&str>, status: impl Into<String>) {
        self.event(Event::Status { id: id.map(String::from), status: status.into() });
    }
}

fn short(d: &str) -> &str {
    let h = d.trim_start_matches("sha256:");
    &h[..12.min(h.len())]
}

/// A Read over chunks sent from the async side.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    cur: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.cur = b,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// Picks the host's platform from an index.
fn pick_platform(index: &Value, name: &str) -> Result<String> {
    let arch = super::host_arch();
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    entries
        .iter()
        .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == arch)
        .and_then(|m| m["digest"].as_str().map(String::from))
        .ok_or_else(|| {
            let have: Vec<String> = entries.iter().map(|m| format!("{}/{}", m["platform"]["os"].as_str().unwrap_or("?"), m["platform"]["architecture"].as_str().unwrap_or("?"))).collect();
            ImageError::Registry(format!("{name}: no manifest for linux/{arch} in the index (it has {})", have.join(", ")))
        })
}

/// Pulls `name` into the store and tags it; returns the image.
pub fn pull(paths: &Paths, name: &str, opts: &Options) -> Result<Image> {
    let r = Reference::parse(name)?;
    let auth = opts.auth(&r.registry);
    let bars = Bars::new(opts.progress.clone());
    block_on(pull_async(paths, &r, name, auth, &bars))
}

async fn pull_async(paths: &Paths, r: &Reference, name: &str, auth: RegistryAuth, bars: &Bars) -> Result<Image> {
    let client = Arc::new(client_for(&r.registry));
    let mut reference = oci_ref(r);
    let (mut bytes, _) = client.pull_manifest_raw(&reference, &auth, MANIFEST_TYPES).await.map_err(|e| reg_err(format!("pulling {name}"), e))?;
    if let Some(d) = &r.digest
        && &sha256_digest(&bytes) != d {
            return Err(ImageError::DigestMismatch { what: format!("manifest of {name}"), expected: d.clone(), got: sha256_digest(&bytes) });
        }
    let mut manifest: Value = serde_json::from_slice(&bytes).map_err(|e| reg_err(format!("manifest of {name}"), e))?;
    if manifest.get("manifests").is_some() {
        let digest = pick_platform(&manifest, name)?;
        reference = reference.clone_with_digest(digest.clone());
        let (b, _) = client.pull_manifest_raw(&reference, &auth, MANIFEST_TYPES).await.map_err(|e| reg_err(format!("pulling {name}@{digest}"), e))?;
        if sha256_digest(&b) != digest {
            return Err(ImageError::DigestMismatch { what: format!("manifest of {name} for this platform"), expected: digest, got: sha256_digest(&b) });
        }
        bytes = b;
        manifest = serde_json::from_slice(&bytes).map_err(|e| reg_err(format!("manifest of {name}"), e))?;
    }
    let manifest_digest = sha256_digest(&bytes);
    bars.line(&format!("{name}: manifest {}", short(&manifest_digest)));
    let shown = r.tag.clone().or(r.digest.clone());
    bars.status(shown.as_deref(), format!("Pulling from {}", r.repository));
    let desc = |v: &Value| -> Result<OciDescriptor> { serde_json::from_value(v.clone()).map_err(|e| reg_err(format!("descriptor in the manifest of {name}"), e)) };
    let config_desc = desc(&manifest["config"])?;
    let mut config_bytes = Vec::new();
    client.pull_blob(&reference, &config_desc, &mut config_bytes).await.map_err(|e| reg_err(format!("config of {name}"), e))?;
    if sha256_digest(&config_bytes) != config_desc.digest {
        return Err(ImageError::DigestMismatch { what: format!("config of {name}"), expected: config_desc.digest, got: sha256_digest(&config_bytes) });
    }
    let config: super::ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| ImageError::BadConfig(name.to_string(), e))?;
    let layers: Vec<OciDescriptor> = manifest["layers"].as_array().cloned().unwrap_or_default().iter().map(desc).collect::<Result<_>>()?;
    if layers.len() != config.rootfs.diff_ids.len() {
        return Err(ImageError::Registry(format!("{name}: the manifest lists {} layers, the config {}", layers.len(), config.rootfs.diff_ids.len())));
    }
    // Chain ids are known up front, so every layer can stream at once.
    let mut chains = Vec::new();
    let mut parent: Option<String> = None;
    for d in &config.rootfs.diff_ids {
        let c = super::chain_id(parent.as_deref(), d);
        chains.push((parent.clone(), c.clone()));
        parent = Some(c);
    }
    let db = Db::open(paths)?;
    let total_bytes: u64 = layers.iter().map(|l| l.size.max(0) as u64).sum();
    let total = bars.bar("total", total_bytes);
    let mut jobs = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let (parent, chain) = chains[i].clone();
        if super::has_layer(&db, &chain)? {
            bars.line(&format!("{}: already exists", short(&l.digest)));
            bars.status(Some(short(&l.digest)), "Already exists");
            if let Some(t) = &total {
                t.inc(l.size.max(0) as u64);
            }
            continue;
        }
        let diff_id = config.rootfs.diff_ids[i].clone();
        let client = client.clone();
        let reference = reference.clone();
        let l = l.clone();
        let paths = paths.clone();
        let bar = bars.bar(short(&l.digest), l.size.max(0) as u64);
        let total = total.clone();
        let lines = matches!(bars.mode, Progress::Lines);
        bars.status(Some(short(&l.digest)), "Pulling fs layer");
        jobs.push(async move {
            if lines {
                eprintln!("{}: downloading {} bytes", short(&l.digest), l.size);
            }
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(32);
            let what = format!("layer {}", short(&l.digest));
            let expect_blob = l.digest.clone();
            let worker = tokio::task::spawn_blocking(move || -> Result<super::StoredLayer> {
                let mut db = Db::open(&paths)?;
                let mut rd = ChannelReader { rx, cur: bytes::Bytes::new() };
                let r = super::store_layer(&paths, &mut db, &mut rd, parent.as_deref(), &what, Some(&expect_blob), Some(&diff_id));
                // Drain so the sender never blocks on a failed unpack.
                let _ = std::io::copy(&mut rd, &mut std::io::sink());
                r
            });
            let mut stream = match client.pull_blob_stream(&reference, &l).await {
                Ok(s) => s,
                Err(e) => {
                    drop(tx);
                    let _ = worker.await;
                    return Err(reg_err(format!("layer {}", short(&l.digest)), e));
                }
            };
            let size = l.size.max(0) as u64;
            let (mut done, mut told) = (0u64, 0u64);
            while let Some(chunk) = stream.next().await {
                let n = chunk.as_ref().map(|c| c.len() as u64).unwrap_or(0);
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
                done += n;
                // Every 512 KiB, not every chunk: a line per chunk would
                // outweigh the layer.
                if done - told >= 512 << 10 || done >= size {
                    told = done;
                    bars.event(Event::Bytes { id: short(&l.digest).to_string(), status: "Downloading", current: done, total: size });
                }
                if let Some(b) = &bar {
                    b.inc(n);
                }
                if let Some(t) = &total {
                    t.inc(n);
                }
            }
            drop(tx);
            bars.status(Some(short(&l.digest)), "Download complete");
            let stored = worker.await.map_err(|e| reg_err("unpacking", e))??;
            bars.status(Some(short(&l.digest)), "Pull complete");
            if let Some(b) = &bar {
                b.finish_with_message("done");
            }
            if lines {
                eprintln!("{}: done", short(&l.digest));
            }
            Ok::<_, ImageError>(stored)
        });
    }
    let results = futures_util::future::join_all(jobs).await;
    for r in results {
        r?;
    }
    if let Some(t) = &total {
        t.finish();
    }
    let mut db = db;
    let before = r.tag_key().and_then(|k| super::resolve(&db, &k).ok()).map(|i| i.id);
    // Stored as it came, so its digest is the registry's (RepoDigests).
    let img = super::commit_image_raw(paths, &mut db, &config_bytes, &bytes, r.tag_key().as_deref())?;
    let shown = r.tag_key().unwrap_or_else(|| name.to_string());
    let status = if before.as_deref() == Some(img.id.as_str()) { format!("Status: Image is up to date for {shown}") } else { format!("Status: Downloaded newer image for {shown}") };
    bars.line(&format!("Digest: {manifest_digest}"));
    bars.line(&status);
    bars.status(None, format!("Digest: {manifest_digest}"));
    bars.status(None, status);
    super::resolve(&db, &img.id)
}

/// How much of a blob a push hands over at a time, and so how often it
/// reports its progress.
const PUSH_PIECE: usize = 512 << 10;

/// Pushes `img` under `name` (which must be one of its tags).
pub fn push(paths: &Paths, img: &Image, name: &str, opts: &Options) -> Result<String> {
    let r = Reference::parse(name)?;
    let auth = opts.auth(&r.registry);
    let bars = Bars::new(opts.progress.clone());
    let manifest_bytes = super::read_blob(paths, &img.manifest)?;
    let manifest: Value = serde_json::from_slice(&manifest_bytes).map_err(|e| reg_err("stored manifest", e))?;
    let media_type = manifest["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json").to_string();
    let mut blobs: Vec<String> = manifest["layers"].as_array().cloned().unwrap_or_default().iter().filter_map(|l| l["digest"].as_str().map(String::from)).collect();
    let config = manifest["config"]["digest"].as_str().unwrap_or_default().to_string();
    blobs.push(config.clone());
    bars.status(None, format!("The push refers to repository [{}/{}]", r.registry, r.repository));
    block_on(async {
        let client = client_for(&r.registry);
        let reference = oci_ref(&r);
        client.auth(&reference, &auth, oci_client::RegistryOperation::Push).await.map_err(|e| reg_err(format!("authenticating to {}", r.registry), e))?;
        for d in &blobs {
            // docker shows layers only, not the config.
            let layer = *d != config;
            if client.blob_exists(&reference, d).await.unwrap_or(false) {
                bars.line(&format!("{}: layer already exists", short(d)));
                if layer {
                    bars.status(Some(short(d)), "Layer already exists");
                }
                continue;
            }
            let data = bytes::Bytes::from(super::read_blob(paths, d)?);
            let bar = bars.bar(short(d), data.len() as u64);
            bars.line(&format!("{}: pushing {} bytes", short(d), data.len()));
            let len = data.len() as u64;
            if layer {
                bars.event(Event::Bytes { id: short(d).to_string(), status: "Pushing", current: 0, total: len });
            }
            // Handed over in 512 KiB pieces, each counted as the client
            // takes it: the progress moves with the upload, not from 0 to
            // 100% at its end.
            let told = (layer.then(|| opts.progress.clone()), bar.clone(), short(d).to_string());
            let pieces = futures_util::stream::iter((0..data.len()).step_by(PUSH_PIECE).map(move |at| {
                let end = (at + PUSH_PIECE).min(data.len());
                let (progress, bar, id) = &told;
                if let Some(Progress::Events(report)) = progress {
                    report(Event::Bytes { id: id.clone(), status: "Pushing", current: end as u64, total: len });
                }
                if let Some(b) = bar {
                    b.set_position(end as u64);
                }
                Ok(data.slice(at..end))
            }));
            match client.push_blob_stream(&reference, pieces, d, Some(len)).await {
                Ok(_) => {}
                // A registry that takes no chunked upload: in one piece.
                Err(oci_client::errors::OciDistributionError::SpecViolationError(_)) => {
                    let data = bytes::Bytes::from(super::read_blob(paths, d)?);
                    client.push_blob(&reference, data, d).await.map_err(|e| reg_err(format!("pushing blob {}", short(d)), e))?;
                }
                Err(e) => return Err(reg_err(format!("pushing blob {}", short(d)), e)),
            }
            if layer {
                bars.status(Some(short(d)), "Pushed");
            }
            if let Some(b) = bar {
                b.set_position(len);
                b.finish_with_message("pushed");
            }
        }
        let ct = http::HeaderValue::from_str(&media_type).map_err(|e| reg_err("media type", e))?;
        client.push_manifest_raw(&reference, manifest_bytes.clone(), ct).await.map_err(|e| reg_err(format!("pushing the manifest of {name}"), e))?;
        Ok::<_, ImageError>(())
    })?;
    let digest = sha256_digest(&manifest_bytes);
    let tag = r.tag.clone().unwrap_or_default();
    bars.line(&format!("{tag}: digest: {digest} size: {}", manifest_bytes.len()));
    bars.status(None, format!("{tag}: digest: {digest} size: {}", manifest_bytes.len()));
    bars.event(Event::Pushed { tag, digest: digest.clone(), size: manifest_bytes.len() as u64 });
    Ok(digest)
}

/// One search result; description, stars and official only come from
/// Docker Hub's search API.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub name: String,
    pub description: String,
    pub stars: u64,
    pub official: bool,
}

/// `berth search`: Docker Hub's search API for Docker Hub, the catalog of
/// any other v2 registry (filtered by `term`).
pub fn search(registry: &str, term: &str, opts: &Options) -> Result<Vec<Found>> {
    if registry == "docker.io" || registry == "index.docker.io" {
        // Overridable so tests can stand up their own search service.
        let base = std::env::var("BERTH_HUB_SEARCH_URL").unwrap_or_else(|_| "https://index.docker.io/v1/search".into());
        return block_on(async {
            let url = reqwest::Url::parse_with_params(&base, &[("q", term), ("n", "25")]).map_err(|e| reg_err("search URL", e))?;
            let resp = reqwest::get(url).await.map_err(|e| reg_err("searching Docker Hub", e))?;
            if !resp.status().is_success() {
                return Err(ImageError::Registry(format!("searching Docker Hub: HTTP {}", resp.status())));
            }
            let body = resp.bytes().await.map_err(|e| reg_err("searching Docker Hub", e))?;
            let v: Value = serde_json::from_slice(&body).map_err(|e| reg_err("Docker Hub's search answer", e))?;
            Ok(v["results"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|r| Found {
                    name: r["name"].as_str().or(r["repo_name"].as_str()).unwrap_or("").to_string(),
                    description: r["description"].as_str().or(r["short_description"].as_str()).unwrap_or("").to_string(),
                    stars: r["star_count"].as_u64().unwrap_or(0),
                    official: r["is_official"].as_bool().unwrap_or(false),
                })
                .collect())
        });
    }
    Ok(catalog(registry, term, opts)?.into_iter().map(|name| Found { name, ..Default::default() }).collect())
}

fn catalog(registry: &str, term: &str, opts: &Options) -> Result<Vec<String>> {
    let r = Reference::parse(&format!("{registry}/x:latest"))?;
    let auth = credentials(&opts.auth_file, &r.registry);
    block_on(async {
        let client = client_for(&r.registry);
        let cat = client.catalog(&oci_ref(&r), &auth, Some(1000), None).await.map_err(|e| reg_err(format!("catalog of {registry}"), e))?;
        Ok(cat.repositories.into_iter().filter(|x| x.contains(term)).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one parser's result reaches oci-client as is; oci-client's own
    /// parser, were it asked, would agree on every form berth accepts.
    #[test]
    fn references_reach_oci_client_normalised() {
        let d = format!("sha256:{}", "a".repeat(64));
        let cases = [
            ("busybox".to_string(), "docker.io/library/busybox:latest".to_string()),
            ("busybox:1.36".into(), "docker.io/library/busybox:1.36".into()),
            ("docker.io/busybox".into(), "docker.io/library/busybox:latest".into()),
            ("user/img".into(), "docker.io/user/img:latest".into()),
            ("localhost/x".into(), "localhost/x:latest".into()),
            ("localhost:5000/x".into(), "localhost:5000/x:latest".into()),
            ("127.0.0.1:5000/lab/web:1".into(), "127.0.0.1:5000/lab/web:1".into()),
            (format!("host.example/x@{d}"), format!("host.example/x@{d}")),
            (format!("quay.io/a/b:1.2@{d}"), format!("quay.io/a/b:1.2@{d}")),
        ];
        for (input, whole) in cases {
            let ours = oci_ref(&Reference::parse(&input).unwrap());
            assert_eq!(ours.whole(), whole, "{input}");
            assert_eq!(input.parse::<OciRef>().unwrap(), ours, "oci-client reads {input} differently");
        }
    }
    #[test]
    fn base64_roundtrip() {
        for s in ["", "a", "ab", "abc", "user:pass", "ünïcode:p@ss"] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes(), "{s}");
        }
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
    }
    #[test]
    fn loopback_is_insecure_by_default() {
        assert!(insecure("127.0.0.1:5000"));
        assert!(insecure("localhost:5000"));
        assert!(!insecure("registry.example.com"));
    }
}
