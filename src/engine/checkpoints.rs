//! Checkpoints of running containers (CRIU, see runtime::criu), restore,
//! export and import.
//!
//! A checkpoint is a directory under the container's `checkpoints/`:
//! CRIU's images in `criu/`, the writable layer as `rootfs-diff.tar` plus
//! `deleted.txt` (paths the container removed from the image), and
//! `meta.json` (the container's record and what the restore needs). It is
//! written under a temporary name and renamed when whole. An export is one
//! zstd-compressed tar of that directory with a manifest of SHA-256 sums,
//! checked in full before a restore touches anything.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Engine, EngineError, Result, other};
use crate::container::{Container, RunSpec};
use crate::sys::sha256_file;
use crate::runtime::criu::{self, DUMPING, ORDER, RestoreOrder};

/// What a restore needs beyond CRIU's images.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Meta {
    pub name: String,
    pub created: String,
    pub container_id: String,
    pub container_name: String,
    pub image_id: String,
    pub image_ref: String,
    pub spec: RunSpec,
    /// The pipe inodes of the container's stdin, stdout and stderr.
    pub pipes: [Option<u64>; 3],
    pub tcp_established: bool,
    /// Its terminal as CRIU names it, for a container with -t.
    #[serde(default)]
    pub tty: Option<String>,
    /// network name -> address, at the time of the checkpoint.
    pub addresses: Vec<(String, String)>,
}

const MANIFEST: &str = "berth-checkpoint.json";

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: u32,
    files: Vec<(String, String)>,
}

/// A container's name rule, and short enough for a file name.
fn valid_name(n: &str) -> bool {
    n.len() <= 128 && crate::container::valid_name(n)
}

pub struct CheckpointOpts {
    pub name: Option<String>,
    pub leave_running: bool,
    pub tcp_established: bool,
    pub export: Option<PathBuf>,
}

impl Engine {
    fn checkpoints_dir(&self, c: &Container) -> PathBuf {
        criu::dir(&self.paths.container_dir(&c.id))
    }

    /// `checkpoint create`: dumps the running container; without
    /// `leave_running` it stops. A failure leaves it running.
    pub fn checkpoint_create(&self, key: &str, o: &CheckpointOpts) -> Result<String> {
        let c = self.container(key)?;
        if !c.running() || c.state == "paused" {
            return Err(EngineError::Other(format!("container {} is {}: only a running container can be checkpointed", c.name, c.state)));
        }
        if crate::rootless::active() {
            return Err(EngineError::Other(format!("container {}: checkpoints need root (CRIU runs as root); a rootless berth cannot make them", c.name)));
        }
        criu::check().map_err(|e| EngineError::Other(format!("container {}: {e}", c.name)))?;
        if c.spec.rm && !o.leave_running {
            return Err(EngineError::Other(format!("container {} was started with --rm and would be removed when the checkpoint stops it: use --leave-running", c.name)));
        }
        let name = o.name.clone().unwrap_or_else(|| chrono::Utc::now().format("checkpoint-%Y%m%d%H%M%S").to_string());
        if !valid_name(&name) {
            return Err(EngineError::Other(format!("invalid checkpoint name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")));
        }
        let dir = self.checkpoints_dir(&c);
        let fin = dir.join(&name);
        if fin.exists() {
            return Err(EngineError::Other(format!("container {} already has a checkpoint {name}: remove it first (berth checkpoint rm {} {name})", c.name, c.name)));
        }
        let tmp = dir.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(other(&format!("creating {}", tmp.display())))?;
        let r = self.dump_into(&c, &name, &tmp, o);
        if let Err(e) = r {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &fin).map_err(other(&format!("renaming {}", tmp.display())))?;
        if let Some(to) = &o.export {
            self.pack(&fin, to)?;
        }
        if !o.leave_running {
            // Its monitor sees init killed by the dump and records the stop.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while self.container(&c.id).is_ok_and(|x| x.running()) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            self.container_event(&c, "checkpoint", &[("checkpoint", name.clone())]);
        }
        Ok(name)
    }

    fn dump_into(&self, c: &Container, name: &str, tmp: &Path, o: &CheckpointOpts) -> Result<()> {
        let bundle = self.paths.container_dir(&c.id);
        let spec = crate::runtime::load_spec(&bundle).map_err(|e| EngineError::Other(format!("container {}: reading its spec: {e}", c.name)))?;
        let mounts = criu::external_mounts(&spec);
        let netns = crate::network::netns_path(&self.paths, &c.id);
        let has_netns = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default().iter().any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network && n.path().is_some());
        let pipes = criu::stdio_pipes(c.pid);
        let tty = if c.spec.tty { criu::tty_key(c.pid) } else { None };
        let addresses = {
            let db = self.db();
            crate::network::endpoints_of_container(&db, &c.id)?.into_iter().map(|e| (e.network.name.clone(), e.ip.to_string())).collect()
        };
        let meta = Meta {
            name: name.to_string(),
            created: crate::store::now_rfc3339(),
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            image_id: c.image_id.clone(),
            image_ref: c.image_ref.clone(),
            spec: c.spec.clone(),
            pipes,
            tcp_established: o.tcp_established,
            tty: tty.clone(),
            addresses,
        };
        let run = self.paths.container_run(&c.id);
        let marker = run.join(DUMPING);
        if !o.leave_running {
            let _ = std::fs::create_dir_all(&run);
            std::fs::write(&marker, name).map_err(other(&format!("writing {}", marker.display())))?;
        }
        let dumped = criu::dump(&criu::DumpOpts {
            pid: c.pid,
            images: &tmp.join("criu"),
            leave_running: o.leave_running,
            tcp_established: o.tcp_established,
            tty: tty.as_deref(),
            netns: has_netns.then_some(netns.as_path()),
            mounts: &mounts,
        });
        if let Err(e) = dumped {
            let _ = std::fs::remove_file(&marker);
            return Err(EngineError::Other(format!("container {}: {e}; it goes on running", c.name)));
        }
        // The writable layer, as the container left it.
        write_diff(&bundle.join("upper"), tmp).map_err(other(&format!("container {}: saving its writable layer", c.name)))?;
        std::fs::write(tmp.join("meta.json"), serde_json::to_vec_pretty(&meta).unwrap_or_default()).map_err(other("writing meta.json"))?;
        Ok(())
    }

    pub fn checkpoint_ls(&self, key: &str) -> Result<Vec<Meta>> {
        let c = self.container(key)?;
        let mut v = Vec::new();
        for e in std::fs::read_dir(self.checkpoints_dir(&c)).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') {
                continue;
            }
            if let Ok(m) = std::fs::read(e.path().join("meta.json")).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice::<Meta>(&b).map_err(|e| e.to_string())) {
                v.push(m);
            }
        }
        v.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(v)
    }

    pub fn checkpoint_rm(&self, key: &str, name: &str) -> Result<()> {
        let c = self.container(key)?;
        let d = self.checkpoints_dir(&c).join(name);
        if !valid_name(name) || !d.is_dir() {
            return Err(EngineError::Other(format!("container {} has no checkpoint {name}", c.name)));
        }
        std::fs::remove_dir_all(&d).map_err(other(&format!("removing {}", d.display())))
    }

    /// `start --checkpoint NAME`: the stopped container comes back as it
    /// was at the checkpoint (its writable layer too).
    pub fn start_checkpoint(&self, key: &str, name: &str) -> Result<Container> {
        let c = self.container(key)?;
        if c.running() {
            return Err(EngineError::Other(format!("container {} is running: stop it before restoring a checkpoint into it", c.name)));
        }
        let d = self.checkpoints_dir(&c).join(name);
        if !valid_name(name) || !d.is_dir() {
            return Err(EngineError::Other(format!("container {} has no checkpoint {name} (berth checkpoint ls {})", c.name, c.name)));
        }
        criu::check().map_err(|e| EngineError::Other(format!("container {}: {e}", c.name)))?;
        let meta: Meta = serde_json::from_slice(&std::fs::read(d.join("meta.json")).map_err(other(&format!("reading {}", d.join("meta.json").display())))?)
            .map_err(|e| EngineError::Other(format!("checkpoint {name}: meta.json is unreadable: {e}")))?;
        self.restore_into(&c, &d, &meta)
    }

    fn restore_into(&self, c: &Container, d: &Path, meta: &Meta) -> Result<Container> {
        let bundle = self.paths.container_dir(&c.id);
        // Back to the checkpoint's files; the old layer is kept until the
        // restore worked, and put back if it did not.
        let upper = bundle.join("upper");
        let old = bundle.join("upper.before-restore");
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&upper, &old).map_err(other(&format!("container {}: moving its writable layer aside", c.name)))?;
        let undo = |e: EngineError| {
            let _ = std::fs::remove_dir_all(&upper);
            let _ = std::fs::rename(&old, &upper);
            e
        };
        std::fs::create_dir_all(&upper).map_err(other("creating the writable layer")).map_err(undo)?;
        read_diff(d, &upper).map_err(other(&format!("container {}: restoring its writable layer", c.name))).map_err(undo)?;
        let work = bundle.join("work");
        let _ = std::fs::remove_dir_all(&work);
        let _ = std::fs::create_dir_all(&work);
        let run = self.paths.container_run(&c.id);
        std::fs::create_dir_all(&run).map_err(other(&format!("creating {}", run.display()))).map_err(undo)?;
        let order = RestoreOrder { images: d.join("criu"), pipes: meta.pipes, tcp_established: meta.tcp_established, tty: meta.tty.clone() };
        std::fs::write(run.join(ORDER), serde_json::to_vec(&order).unwrap_or_default()).map_err(other("writing the restore order")).map_err(undo)?;
        match self.start_attached(&c.id, crate::engine::Attach::Detached) {
            Ok(_) => {
                let _ = std::fs::remove_dir_all(&old);
                self.container_event(c, "restore", &[("checkpoint", meta.name.clone())]);
                self.container(&c.id)
            }
            Err(e) => {
                let _ = std::fs::remove_file(run.join(ORDER));
                Err(undo(e))
            }
        }
    }

    /// `container restore --import`: a new container from an exported
    /// checkpoint, under its old name or `name`.
    pub fn restore_import(&self, archive: &Path, name: Option<&str>) -> Result<Container> {
        criu::check().map_err(|e| EngineError::Other(format!("restoring {}: {e}", archive.display())))?;
        let tmp = self.paths.tmp().join(format!("import-{}", crate::store::new_id()));
        let r = self.import_from(archive, name, &tmp);
        let _ = std::fs::remove_dir_all(&tmp);
        r
    }

    fn import_from(&self, archive: &Path, name: Option<&str>, tmp: &Path) -> Result<Container> {
        unpack(archive, tmp).map_err(|e| EngineError::Other(format!("checkpoint archive {}: {e}; nothing was changed", archive.display())))?;
        let meta: Meta = serde_json::from_slice(&std::fs::read(tmp.join("meta.json")).map_err(other("reading meta.json"))?)
            .map_err(|e| EngineError::Other(format!("checkpoint archive {}: meta.json is unreadable: {e}; nothing was changed", archive.display())))?;
        if crate::image::resolve(&self.db(), &meta.image_id).is_err() {
            return Err(EngineError::Other(format!(
                "checkpoint archive {}: its image {} ({}) is not here: pull it first (berth pull {}); nothing was changed",
                archive.display(),
                meta.image_ref,
                &meta.image_id[..19.min(meta.image_id.len())],
                meta.image_ref
            )));
        }
        let mut spec = meta.spec.clone();
        spec.name = Some(name.unwrap_or(&meta.container_name).to_string());
        spec.rm = false;
        // The address it had, where it is free (its connections use it).
        if spec.ip.is_none()
            && let Some((net, ip)) = meta.addresses.first()
        {
            let db = self.db();
            let taken = crate::network::get(&db, net).ok().and_then(|n| crate::network::endpoints_of_network(&db, &n).ok()).is_some_and(|eps| eps.iter().any(|(_, a, _)| a.to_string() == *ip));
            // Taken (the original still runs here): a fresh one.
            if !taken {
                spec.ip = Some(ip.clone());
            }
        }
        let c = self.create(&spec)?;
        let d = self.checkpoints_dir(&c).join(&meta.name);
        let r = (|| {
            std::fs::create_dir_all(d.parent().unwrap()).map_err(other("creating the checkpoints directory"))?;
            std::fs::rename(tmp, &d).map_err(other(&format!("moving the checkpoint into {}", d.display())))?;
            self.restore_into(&c, &d, &meta)
        })();
        if r.is_err() {
            let _ = self.remove_with(&c.id, true, true);
        }
        r
    }

    /// Writes checkpoint directory `d` as one zstd-compressed tar.
    fn pack(&self, d: &Path, to: &Path) -> Result<()> {
        let tmp = to.with_extension("partial");
        let r = pack(d, &tmp).and_then(|_| std::fs::rename(&tmp, to));
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r.map_err(other(&format!("exporting the checkpoint to {}", to.display())))
    }
}

/// Every regular file under `d`, relative, sorted.
fn files(d: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(d.join(&rel))? {
            let e = e?;
            let r = rel.join(e.file_name());
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(r);
            } else if t.is_file() {
                out.push(r);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn pack(d: &Path, to: &Path) -> std::io::Result<()> {
    let list = files(d)?;
    let mut man = Manifest { format: 1, files: Vec::new() };
    for f in &list {
        man.files.push((f.display().to_string(), sha256_file(&d.join(f))?));
    }
    let out = std::fs::File::create(to)?;
    let z = zstd::stream::write::Encoder::new(out, 3)?;
    let mut t = tar::Builder::new(z);
    let body = serde_json::to_vec_pretty(&man).unwrap_or_default();
    let mut h = tar::Header::new_gnu();
    h.set_size(body.len() as u64);
    h.set_mode(0o600);
    h.set_cksum();
    t.append_data(&mut h, MANIFEST, body.as_slice())?;
    for f in &list {
        t.append_path_with_name(d.join(f), f)?;
    }
    let z = t.into_inner()?;
    z.finish()?.sync_all()
}

/// Unpacks and checks an export: every file the manifest names, with its
/// sum, and nothing else.
fn unpack(archive: &Path, into: &Path) -> std::io::Result<()> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    std::fs::create_dir_all(into)?;
    let f = std::fs::File::open(archive)?;
    let z = zstd::stream::read::Decoder::new(f).map_err(|e| bad(format!("not zstd-compressed: {e}")))?;
    let mut t = tar::Archive::new(z);
    let mut manifest: Option<Manifest> = None;
    for e in t.entries().map_err(|e| bad(format!("unreadable: {e}")))? {
        let mut e = e.map_err(|e| bad(format!("unreadable: {e}")))?;
        let path = e.path().map_err(|e| bad(format!("a bad name: {e}")))?.into_owned();
        if path == Path::new(MANIFEST) {
            let mut b = Vec::new();
            e.read_to_end(&mut b).map_err(|e| bad(format!("unreadable: {e}")))?;
            manifest = Some(serde_json::from_slice(&b).map_err(|e| bad(format!("its manifest is unreadable: {e}")))?);
            continue;
        }
        if !e.unpack_in(into).map_err(|e| bad(format!("unreadable at {}: {e}", path.display())))? {
            return Err(bad(format!("it names a path outside itself: {}", path.display())));
        }
    }
    let man = manifest.ok_or_else(|| bad(format!("it has no {MANIFEST}: not a berth checkpoint")))?;
    let have = files(into)?;
    let named: Vec<PathBuf> = man.files.iter().map(|(p, _)| PathBuf::from(p)).collect();
    if let Some(x) = have.iter().find(|p| !named.contains(p)) {
        return Err(bad(format!("it holds {} which its manifest does not name", x.display())));
    }
    for (p, sum) in &man.files {
        let at = into.join(p);
        if !at.is_file() {
            return Err(bad(format!("{p} is missing")));
        }
        if &sha256_file(&at)? != sum {
            return Err(bad(format!("{p} does not match its checksum (corrupted)")));
        }
    }
    for need in ["meta.json", "rootfs-diff.tar", "criu/inventory.img"] {
        if !into.join(need).is_file() {
            return Err(bad(format!("{need} is missing: not a whole checkpoint")));
        }
    }
    Ok(())
}

/// The writable layer as a tar (without overlayfs' whiteouts) and the
/// paths it deleted from the image, one per line.
fn write_diff(upper: &Path, into: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let mut deleted = Vec::new();
    let out = std::fs::File::create(into.join("rootfs-diff.tar"))?;
    let mut t = tar::Builder::new(out);
    t.follow_symlinks(false);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(upper.join(&rel)) else { continue };
        for e in rd.flatten() {
            let r = rel.join(e.file_name());
            // A container left running (--leave-running) goes on writing:
            // a file it removed while we walk is simply not in the diff.
            let gone = |x: &std::io::Error| x.kind() == std::io::ErrorKind::NotFound;
            let md = match std::fs::symlink_metadata(e.path()) {
                Err(x) if gone(&x) => continue,
                r => r?,
            };
            let ft = md.file_type();
            // A whiteout is a 0:0 character device.
            if ft.is_char_device() && nix::sys::stat::major(std::os::unix::fs::MetadataExt::rdev(&md)) == 0 && nix::sys::stat::minor(std::os::unix::fs::MetadataExt::rdev(&md)) == 0 {
                deleted.push(format!("/{}", r.display()));
                continue;
            }
            match t.append_path_with_name(e.path(), &r) {
                Err(x) if gone(&x) => continue,
                r => r?,
            }
            if ft.is_dir() {
                if crate::sys::xattr::get(&e.path(), "trusted.overlay.opaque").is_ok_and(|v| v == b"y") {
                    deleted.push(format!("/{}/", r.display()));
                }
                stack.push(r);
            }
        }
    }
    t.into_inner()?.sync_all()?;
    let mut f = std::fs::File::create(into.join("deleted.txt"))?;
    for d in deleted {
        writeln!(f, "{d}")?;
    }
    Ok(())
}

/// The opposite of `write_diff`, into an empty upper directory.
fn read_diff(d: &Path, upper: &Path) -> std::io::Result<()> {
    let mut t = tar::Archive::new(std::fs::File::open(d.join("rootfs-diff.tar"))?);
    t.set_preserve_permissions(true);
    t.set_preserve_ownerships(true);
    t.set_unpack_xattrs(true);
    t.unpack(upper)?;
    for l in std::fs::read_to_string(d.join("deleted.txt")).unwrap_or_default().lines() {
        let rel = l.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|c| c == "..") {
            continue;
        }
        if let Some(dir) = rel.strip_suffix('/') {
            let p = upper.join(dir);
            std::fs::create_dir_all(&p)?;
            crate::sys::xattr::set(&p, "trusted.overlay.opaque", b"y")?;
        } else {
            let p = upper.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            crate::sys::mount::mknod(&p, 'c', 0, 0, 0)?;
        }
    }
    Ok(())
}
