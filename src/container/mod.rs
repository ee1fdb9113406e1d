//! Containers: the user's options (`RunSpec`), their records in the store,
//! the OCI spec built from them, and the lifecycle operations.

pub mod health;
pub mod logfile;
pub mod options;
pub mod spare;
pub mod spec;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::image::{self, ImageError};
use crate::store::{self, Db, Paths, StoreError};

#[derive(thiserror::Error, Debug)]
pub enum ContainerError {
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("Conflict. The container name \"/{0}\" is already in use. Remove that container or choose another name.")]
    NameInUse(String),
    #[error("invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
    #[error("no command specified: image {0} has no CMD or ENTRYPOINT; give one after the image name")]
    NoCommand(String),
    #[error("{0}")]
    BadOption(String),
    #[error("container {name} is {state}: {what}")]
    BadState { name: String, state: String, what: String },
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error("{0} is not supported yet (it arrives with {1})")]
    NotYet(String, &'static str),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Runtime(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("writing config.json: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
}

pub type Result<T> = std::result::Result<T, ContainerError>;

pub fn io_ctx(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let context = context.into();
    move |source| ContainerError::Io { context, source }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    UnlessStopped,
    OnFailure(u32),
}

impl RestartPolicy {
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        let bad = || ContainerError::BadOption(format!("invalid restart policy {s:?}: use no, always, unless-stopped or on-failure[:N]"));
        Ok(match s.split_once(':') {
            None => match s {
                "" | "no" => RestartPolicy::No,
                "always" => RestartPolicy::Always,
                "unless-stopped" => RestartPolicy::UnlessStopped,
                "on-failure" => RestartPolicy::OnFailure(0),
                _ => return Err(bad()),
            },
            Some(("on-failure", n)) => RestartPolicy::OnFailure(n.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        })
    }
    pub fn name(&self) -> String {
        match self {
            RestartPolicy::No => "no".into(),
            RestartPolicy::Always => "always".into(),
            RestartPolicy::UnlessStopped => "unless-stopped".into(),
            RestartPolicy::OnFailure(_) => "on-failure".into(),
        }
    }
}

/// What a user asks for with `run`/`create` (or a script's option map).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct RunSpec {
    pub image: String,
    pub name: Option<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub tty: bool,
    pub interactive: bool,
    pub rm: bool,
    pub memory: Option<i64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub restart: RestartPolicy,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    pub privileged: bool,
    pub network: Option<String>,
    /// Static address on `network`.
    pub ip: Option<String>,
    /// Extra names on `network`.
    pub aliases: Vec<String>,
    /// `-p` specs.
    pub publish: Vec<String>,
    /// `-P`: every port the image EXPOSEs, to free host ports.
    pub publish_all: bool,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<u64>,
    /// `-v` specs: NAME:/DST, /SRC:/DST, /DST, each with an optional :ro.
    pub volumes: Vec<String>,
    /// `--volumes-from C[:ro|rw]`.
    pub volumes_from: Vec<String>,
    /// A health check of its own (overrides the image's; test ["NONE"] disables).
    pub health: Option<health::HealthSpec>,
    /// `--device HOST[:CONTAINER[:PERMS]]`: host devices given to the container.
    pub devices: Vec<String>,
    /// `--cgroup-parent`: the cgroup that holds this container's own
    /// (default: the one of its berth root).
    pub cgroup_parent: Option<String>,
    /// `--log-opt KEY=VALUE` of docker's json-file driver (max-size,
    /// max-file); what is left out keeps berth's default limit.
    pub log_opts: BTreeMap<String, String>,
    /// `--read-only`: the root filesystem is mounted read-only (mounts on
    /// it, /dev, /proc, volumes and tmpfs, stay writable).
    pub read_only: bool,
    /// `--tmpfs /PATH[:OPTS]`.
    pub tmpfs: Vec<String>,
    /// `--shm-size`: bytes of /dev/shm (default 64 MiB).
    pub shm_size: Option<i64>,
    /// `--add-host NAME:IP`: lines of its /etc/hosts.
    pub extra_hosts: Vec<String>,
    /// `--dns`, `--dns-search`, `--dns-option`: its /etc/resolv.conf.
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `--ulimit NAME=SOFT[:HARD]`.
    pub ulimits: Vec<String>,
}

/// A mount a container was created with, resolved: which volume (or host
/// path) is mounted where.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MountRec {
    /// "volume" or "bind".
    pub kind: String,
    /// The volume's name (volumes only).
    #[serde(default)]
    pub name: String,
    pub source: PathBuf,
    pub destination: String,
    pub rw: bool,
    #[serde(default)]
    pub anonymous: bool,
}

/// A container as recorded in the store.
#[derive(Serialize, Clone, Debug)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image_id: String,
    pub image_ref: String,
    pub created: String,
    pub spec: RunSpec,
    pub command: Vec<String>,
    pub state: String,
    pub pid: i32,
    pub monitor_pid: i32,
    pub exit_code: i32,
    pub started_at: String,
    pub finished_at: String,
    pub oom_killed: bool,
    pub restart_count: i64,
    pub error: String,
    pub mounts: Vec<MountRec>,
    pub health: health::HealthState,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    spec: RunSpec,
    command: Vec<String>,
    #[serde(default)]
    mounts: Vec<MountRec>,
}

impl Container {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
    /// The container's cgroup, relative to the hierarchy root.
    pub fn cgroup(&self, paths: &Paths) -> String {
        cgroup_path(paths, self.spec.cgroup_parent.as_deref(), &self.id)
    }
    pub fn running(&self) -> bool {
        self.state == "running" || self.state == "paused"
    }
}

const COLS: &str = "id, name, image_id, image_ref, created, config, state, pid, monitor_pid, exit_code, started_at, finished_at, oom_killed, restart_count, error, health";

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Container> {
    let stored: String = r.get(5)?;
    let st: Stored = serde_json::from_str(&stored).unwrap_or(Stored { spec: RunSpec::default(), command: vec![], mounts: vec![] });
    Ok(Container {
        id: r.get(0)?,
        name: r.get(1)?,
        image_id: r.get(2)?,
        image_ref: r.get(3)?,
        created: r.get(4)?,
        spec: st.spec,
        command: st.command,
        mounts: st.mounts,
        state: r.get(6)?,
        pid: r.get(7)?,
        monitor_pid: r.get(8)?,
        exit_code: r.get(9)?,
        started_at: r.get(10)?,
        finished_at: r.get(11)?,
        oom_killed: r.get::<_, i64>(12)? != 0,
        restart_count: r.get(13)?,
        error: r.get(14)?,
        health: serde_json::from_str(&r.get::<_, String>(15)?).unwrap_or_default(),
    })
}

/// Finds a container by name, full id or unique id prefix.
pub fn get(db: &Db, key: &str) -> Result<Container> {
    let key = key.trim_start_matches('/');
    match store::lookup(&db.conn, &format!("SELECT {COLS} FROM containers"), key, from_row)? {
        store::Found::One(c) => Ok(c),
        _ => Err(ContainerError::NotFound(key.to_string())),
    }
}

pub fn list(db: &Db) -> Result<Vec<Container>> {
    let mut st = db.conn.prepare(&format!("SELECT {COLS} FROM containers ORDER BY created DESC")).map_err(StoreError::from)?;
    let v = st.query_map([], from_row).map_err(StoreError::from)?.filter_map(|r| r.ok()).collect();
    Ok(v)
}

/// Names of containers that use an image (for `image rm`).
pub fn users_of_image(db: &Db, image_id: &str) -> Result<Vec<String>> {
    let mut st = db.conn.prepare("SELECT name FROM containers WHERE image_id=?1").map_err(StoreError::from)?;
    let v = st.query_map([image_id], |r| r.get(0)).map_err(StoreError::from)?.filter_map(|r| r.ok()).collect();
    Ok(v)
}

pub(crate) fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty() && b[0].is_ascii_alphanumeric() && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// Docker-style generated names: adjective_scientist.
fn generate_name(db: &Db) -> String {
    const A: &[&str] = &["brave", "calm", "eager", "fond", "gentle", "happy", "keen", "lucid", "merry", "nifty", "proud", "quiet", "sharp", "tender", "vivid", "witty", "zen", "bold", "clever", "dreamy"];
    const B: &[&str] = &["hopper", "lovelace", "turing", "curie", "noether", "ritchie", "thompson", "torvalds", "knuth", "dijkstra", "hamilton", "liskov", "shannon", "babbage", "kay", "lamport", "perlman", "wozniak", "allen", "goldberg"];
    loop {
        let mut r = [0u8; 3];
        store::getrandom(&mut r);
        let mut n = format!("{}_{}", A[r[0] as usize % A.len()], B[r[1] as usize % B.len()]);
        if r[2] % 4 == 0 {
            n.push_str(&(r[2] % 10).to_string());
        }
        if get(db, &n).is_err() {
            return n;
        }
    }
}

/// The mounts of a new container, in docker's order of precedence: `-v`
/// specs, then `--volumes-from`, then anonymous volumes for the image's
/// VOLUME paths not already covered. New and empty volumes are seeded with
/// the image's content at their path. Returns the mounts and the volumes
/// made here (to remove if the create fails).
fn resolve_mounts(paths: &Paths, db: &mut Db, spec: &RunSpec, img: &image::Image, lower: &[String]) -> Result<(Vec<MountRec>, Vec<String>)> {
    use crate::volume::{self, VolumeSpec};
    let mut out: Vec<MountRec> = Vec::new();
    let mut made = Vec::new();
    let mut seed: Vec<(String, PathBuf)> = Vec::new();
    let vol = |e: volume::VolumeError| ContainerError::BadOption(e.to_string());
    let taken = |out: &Vec<MountRec>, dst: &str| out.iter().any(|m| m.destination == dst);
    let volume_mount = |db: &mut Db, out: &mut Vec<MountRec>, name: Option<&str>, dst: &str, rw: bool, made: &mut Vec<String>, seed: &mut Vec<(String, PathBuf)>| -> Result<()> {
        let existed = name.is_some_and(|n| volume::get(paths, db, n).is_ok());
        let v = volume::create(paths, db, name, name.is_none(), &Default::default()).map_err(vol)?;
        if !existed {
            made.push(v.name.clone());
        }
        let empty = std::fs::read_dir(&v.mountpoint).map(|mut d| d.next().is_none()).unwrap_or(false);
        if empty {
            seed.push((dst.to_string(), v.mountpoint.clone()));
        }
        out.push(MountRec { kind: "volume".into(), name: v.name, source: v.mountpoint, destination: dst.to_string(), rw, anonymous: name.is_none() });
        Ok(())
    };
    let r = (|| -> Result<()> {
        for s in &spec.volumes {
            let parsed = volume::parse_spec(s).map_err(vol)?;
            let dst = match &parsed {
                VolumeSpec::Named { target, .. } | VolumeSpec::Bind { target, .. } | VolumeSpec::Anonymous { target, .. } => target.to_string_lossy().into_owned(),
            };
            if taken(&out, &dst) {
                return Err(ContainerError::BadOption(format!("duplicate mount point {dst} in -v {s}")));
            }
            match parsed {
                VolumeSpec::Named { name, read_only, .. } => volume_mount(db, &mut out, Some(&name), &dst, !read_only, &mut made, &mut seed)?,
                VolumeSpec::Anonymous { read_only, .. } => volume_mount(db, &mut out, None, &dst, !read_only, &mut made, &mut seed)?,
                b @ VolumeSpec::Bind { .. } => {
                    volume::check_bind(&b).map_err(vol)?;
                    let VolumeSpec::Bind { source, read_only, .. } = b else { unreachable!() };
                    out.push(MountRec { kind: "bind".into(), name: String::new(), source, destination: dst, rw: !read_only, anonymous: false });
                }
            }
        }
        for from in &spec.volumes_from {
            let (key, mode) = match from.rsplit_once(':') {
                Some((k, m)) if m == "ro" || m == "rw" => (k, Some(m == "rw")),
                _ => (from.as_str(), None),
            };
            let other = get(db, key)?;
            for m in &other.mounts {
                if !taken(&out, &m.destination) {
                    out.push(MountRec { rw: mode.unwrap_or(m.rw), ..m.clone() });
                }
            }
        }
        let mut image_vols: Vec<&String> = img.config.config.volumes.keys().collect();
        image_vols.sort();
        for dst in image_vols {
            if !taken(&out, dst) {
                volume_mount(db, &mut out, None, dst, true, &mut made, &mut seed)?;
            }
        }
        if !seed.is_empty() {
            seed_from_image(paths, lower, &seed)?;
        }
        Ok(())
    })();
    if let Err(e) = r {
        remove_volumes(paths, db, &made);
        return Err(e);
    }
    Ok((out, made))
}

/// Takes back the volumes a failed create made.
fn remove_volumes(paths: &Paths, db: &mut Db, names: &[String]) {
    for v in names {
        let _ = crate::volume::remove(paths, db, v, &[]);
    }
}

/// Copies the image's content at each (path, volume dir) into the volume,
/// through a read-only overlay of the image's layers.
fn seed_from_image(paths: &Paths, lower: &[String], seed: &[(String, PathBuf)]) -> Result<()> {
    if lower.is_empty() {
        return Ok(());
    }
    let tmp = paths.tmp().join(format!("seed-{}-{}", std::process::id(), store::new_id().get(..8).unwrap_or("x")));
    std::fs::create_dir_all(&tmp).map_err(io_ctx(format!("creating {}", tmp.display())))?;
    let layers = paths.layers();
    let dirs: Vec<String> = lower.iter().rev().map(|l| layers.join("l").join(l).display().to_string()).collect();
    // A single lower layer is mounted as a plain read-only bind.
    let r = if dirs.len() == 1 {
        crate::sys::mount::bind(std::path::Path::new(&dirs[0]), &tmp, false)
    } else {
        crate::sys::mount::mount(Some("overlay"), &tmp, Some("overlay"), nix::mount::MsFlags::MS_RDONLY, Some(&format!("lowerdir={}", dirs.join(":"))))
    };
    if let Err(e) = r {
        let _ = std::fs::remove_dir(&tmp);
        return Err(io_ctx("mounting the image to seed its volumes".to_string())(e));
    }
    let mut res = Ok(());
    for (dst, dir) in seed {
        let src = tmp.join(dst.trim_start_matches('/'));
        // Only a real directory of the image seeds (never a symlink out).
        if std::fs::symlink_metadata(&src).map(|m| m.is_dir()).unwrap_or(false)
            && let Err(e) = crate::volume::seed(&src, dir) {
                res = Err(io_ctx(format!("seeding the volume at {dst} from the image"))(e));
                break;
            }
    }
    let _ = crate::sys::mount::umount_detach(&tmp);
    let _ = std::fs::remove_dir(&tmp);
    res
}

/// A `--rm` container is removed when it exits, so it cannot restart (the
/// monitor would start it again with its record gone); docker refuses the
/// pair too.
fn rm_conflicts(rm: bool, restart: &RestartPolicy) -> Result<()> {
    if rm && *restart != RestartPolicy::No {
        return Err(ContainerError::BadOption(format!("--rm and --restart {} conflict: a --rm container is removed when it exits, so it never restarts; drop one of them", restart.name())));
    }
    Ok(())
}

/// Creates the container: record (the name is claimed atomically by the
/// UNIQUE constraint), directories, config.json, hosts files.
/// `id`: the id to give it (a fresh one when None).
pub fn create(paths: &Paths, db: &mut Db, spec: &RunSpec, id: Option<&str>) -> Result<Container> {
    rm_conflicts(spec.rm, &spec.restart)?;
    if let Some(h) = &spec.hostname
        && (h.is_empty() || h.len() > 64)
    {
        return Err(ContainerError::BadOption(format!("invalid hostname {h:?}: the kernel takes 1 to 64 characters ({} given)", h.len())));
    }
    // Which network: none (loopback only), host, or a bridge network (the
    // default one when none is named).
    let mode = spec.network.clone().unwrap_or_else(|| crate::network::DEFAULT.to_string());
    let bridge_net = match mode.as_str() {
        "none" | "host" => None,
        name => Some(if name == crate::network::DEFAULT { crate::network::default_network(paths, db)? } else { crate::network::get(db, name)? }),
    };
    let mut port_specs = spec.publish.iter().map(|p| crate::network::ports::parse(p)).collect::<std::result::Result<Vec<_>, _>>().map_err(crate::network::NetworkError::from)?;
    if (!port_specs.is_empty() || spec.publish_all) && bridge_net.is_none() {
        return Err(crate::network::NetworkError::PortsNeedBridge(mode.clone()).into());
    }
    if spec.ip.is_some() && bridge_net.is_none() {
        return Err(ContainerError::BadOption(format!("--ip needs a bridge network; the container's network is {mode}")));
    }
    if options::wants_host_gateway(&spec.extra_hosts) && bridge_net.is_none() {
        return Err(ContainerError::BadOption(format!("--add-host ...:host-gateway needs a bridge network (its gateway is the host); the container's network is {mode}")));
    }
    let img = image::resolve(db, &spec.image)?;
    if spec.publish_all {
        for p in img.config.config.exposed_ports.keys() {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            if let Ok(sp) = crate::network::ports::parse(&format!("{port}/{proto}"))
                && !port_specs.iter().any(|x| x.container_port == sp.container_port && x.proto == sp.proto) {
                    port_specs.push(sp);
                }
        }
    }
    let lower = image::layer_links(db, &img)?;
    let id = id.map(String::from).unwrap_or_else(store::new_id);
    let (mounts, made_volumes) = resolve_mounts(paths, db, spec, &img, &lower)?;
    // A create that fails takes back what it made: the row and its
    // endpoints once written, and the volumes made for it.
    let undo = |db: &mut Db, row_written: bool| {
        if row_written {
            let _ = crate::network::detach_all(db, &id);
            let _ = db.write(|tx| Ok(tx.execute("DELETE FROM containers WHERE id=?1", [&id])?));
        }
        remove_volumes(paths, db, &made_volumes);
    };
    let name = match &spec.name {
        Some(n) if !valid_name(n) => return Err(ContainerError::BadName(n.clone())),
        Some(n) => n.clone(),
        None => generate_name(db),
    };
    let dir = paths.container_dir(&id);
    let netns = bridge_net.as_ref().map(|_| crate::network::netns_path(paths, &id));
    if let Some(p) = &spec.cgroup_parent
        && let Err(e) = check_cgroup_parent(p)
    {
        undo(db, false);
        return Err(e);
    }
    let cgroup = cgroup_path(paths, spec.cgroup_parent.as_deref(), &id);
    let mut lower = lower;
    lower.extend(image::init_layer(paths, &lower));
    let config = match spec::build(&id, &cgroup, &dir, spec, &img, &lower, &paths.layers(), netns.as_deref(), mode == "host", &mounts) {
        Ok(c) => c,
        Err(e) => {
            undo(db, false);
            return Err(e);
        }
    };
    let command = config.process().as_ref().and_then(|p| p.args().clone()).unwrap_or_default();
    let stored = serde_json::to_string(&Stored { spec: spec.clone(), command, mounts }).unwrap();
    let created = store::now_rfc3339();
    // Intent first: the row exists (state "creating" is never shown) before
    // the files, so a crash leaves something `system check` can find.
    db.write(|tx| {
        tx.execute(
            "INSERT INTO containers(id, name, image_id, image_ref, created, config, state) VALUES(?1,?2,?3,?4,?5,?6,'created')",
            rusqlite::params![id, name, img.id, spec.image, created, stored],
        )?;
        Ok(())
    })
    .map_err(|e| match e {
        StoreError::Sql(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => ContainerError::NameInUse(name.clone()),
        e => e.into(),
    })
    .inspect_err(|_| undo(db, false))?;
    crate::fault!("create.row");
    if let Some(net) = &bridge_net {
        let r = crate::network::attach(db, &id, net, spec.ip.as_deref(), &spec.aliases).and_then(|_| crate::network::publish(db, &id, &port_specs));
        if let Err(e) = r {
            undo(db, true);
            return Err(e.into());
        }
    }
    let made = (|| -> std::io::Result<()> {
        if !spare::take(paths, &dir) {
            for d in ["upper", "work", "merged"] {
                std::fs::create_dir_all(dir.join(d))?;
            }
        }
        let hostname = config.hostname().clone().unwrap_or_else(|| "localhost".into());
        spare::write(&dir.join("hostname"), format!("{hostname}\n"))?;
        spare::write(
            &dir.join("hosts"),
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n{}",
                options::hosts_lines(&spec.extra_hosts, bridge_net.as_ref().and_then(|n| n.gateway.parse().ok()))
            ),
        )?;
        // Docker's rule: a networked container gets the host's resolvers
        // (loopback ones are useless inside); --network none an empty file.
        // What the user gives (--dns...) replaces the host's lines of its kind.
        let resolv = if bridge_net.is_some() || mode == "host" { host_resolv_conf() } else { String::new() };
        spare::write(&dir.join("resolv.conf"), options::resolv_conf(&resolv, &spec.dns, &spec.dns_search, &spec.dns_options))?;
        crate::fault!("create.files");
        spare::write(&dir.join("config.json"), serde_json::to_vec_pretty(&config).unwrap())?;
        Ok(())
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&dir);
        undo(db, true);
        return Err(io_ctx(format!("creating container {name}"))(e));
    }
    get(db, &id)
}

/// Removes the container's anonymous volumes that no other container mounts.
pub fn remove_anonymous_volumes(paths: &Paths, db: &mut Db, c: &Container) {
    for m in c.mounts.iter().filter(|m| m.anonymous) {
        if volume_users(db, &m.name).is_empty() {
            let _ = crate::volume::remove(paths, db, &m.name, &[]);
        }
    }
}

/// The names of every volume one of `containers` mounts.
pub fn volumes_in_use(containers: &[Container]) -> std::collections::HashSet<String> {
    containers.iter().flat_map(|c| c.mounts.iter().filter(|m| m.kind == "volume").map(|m| m.name.clone())).collect()
}

/// Names of the containers that mount volume `name`.
pub fn volume_users(db: &Db, name: &str) -> Vec<String> {
    list(db).unwrap_or_default().into_iter().filter(|c| c.mounts.iter().any(|m| m.kind == "volume" && m.name == name)).map(|c| c.name).collect()
}

pub fn set_state(db: &mut Db, id: &str, state: &str) -> Result<()> {
    db.write(|tx| Ok(tx.execute("UPDATE containers SET state=?2 WHERE id=?1", rusqlite::params![id, state])?))?;
    Ok(())
}

/// Records the health after a probe (or the reset at a start).
pub fn set_health(db: &mut Db, id: &str, h: &health::HealthState) -> Result<()> {
    let text = serde_json::to_string(h).unwrap_or_default();
    db.write(|tx| Ok(tx.execute("UPDATE containers SET health=?2 WHERE id=?1", rusqlite::params![id, text])?))?;
    Ok(())
}

/// `checked`: the container has a health check, so it starts "starting".
pub fn record_started(db: &mut Db, id: &str, pid: i32, monitor_pid: i32, restart: bool, checked: bool) -> Result<()> {
    let now = store::now_rfc3339();
    let health = if checked { serde_json::to_string(&health::HealthState { status: "starting".into(), ..Default::default() }).unwrap_or_default() } else { String::new() };
    db.write(|tx| {
        tx.execute(
            "UPDATE containers SET state='running', pid=?2, monitor_pid=?3, started_at=?4, exit_code=0, oom_killed=0, error='', finished_at='', restart_count=restart_count+?5, health=?6 WHERE id=?1",
            rusqlite::params![id, pid, monitor_pid, now, restart as i64, health],
        )?;
        Ok(())
    })?;
    Ok(())
}

pub fn record_exited(db: &mut Db, id: &str, code: i32, oom: bool, error: &str) -> Result<()> {
    let now = store::now_rfc3339();
    db.write(|tx| {
        tx.execute(
            "UPDATE containers SET state='exited', pid=0, exit_code=?2, oom_killed=?3, finished_at=?4, error=?5 WHERE id=?1",
            rusqlite::params![id, code, oom as i64, now, error],
        )?;
        Ok(())
    })?;
    Ok(())
}

pub fn record_monitor_gone(db: &mut Db, id: &str) -> Result<()> {
    db.write(|tx| Ok(tx.execute("UPDATE containers SET monitor_pid=0 WHERE id=?1", [id])?))?;
    Ok(())
}

/// `update`: new limits and restart policy, in the record (what inspect
/// shows) and in config.json (what a restart applies). None keeps a value.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub memory: Option<i64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub restart: Option<RestartPolicy>,
}

pub fn update(paths: &Paths, db: &mut Db, c: &Container, u: &Update) -> Result<Container> {
    let mut spec = c.spec.clone();
    if let Some(m) = u.memory {
        spec.memory = Some(m);
    }
    if let Some(x) = u.cpus {
        spec.cpus = Some(x);
    }
    if let Some(p) = u.pids_limit {
        spec.pids_limit = Some(p);
    }
    if let Some(r) = &u.restart {
        rm_conflicts(spec.rm, r)?;
        spec.restart = r.clone();
    }
    let cfg_path = paths.container_dir(&c.id).join("config.json");
    let mut cfg: serde_json::Value = std::fs::read(&cfg_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| ContainerError::Runtime(format!("container {}: its config.json is unreadable", c.name)))?;
    let res = &mut cfg["linux"]["resources"];
    if let Some(m) = spec.memory {
        res["memory"] = serde_json::json!({"limit": m, "swap": m});
    }
    if let Some(x) = spec.cpus {
        res["cpu"] = serde_json::json!({"quota": (x * 100_000.0).round() as i64, "period": 100_000});
    }
    if let Some(p) = spec.pids_limit {
        res["pids"] = serde_json::json!({"limit": p});
    }
    let tmp = cfg_path.with_extension("json.new");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&cfg).unwrap_or_default()).and_then(|_| std::fs::rename(&tmp, &cfg_path)).map_err(io_ctx(format!("container {}: writing config.json", c.name)))?;
    let stored: String = db.conn.query_row("SELECT config FROM containers WHERE id=?1", [&c.id], |r| r.get(0)).map_err(StoreError::from)?;
    let mut st: Stored = serde_json::from_str(&stored).map_err(|e| ContainerError::Runtime(format!("container {}: its record is unreadable: {e}", c.name)))?;
    st.spec = spec;
    let stored = serde_json::to_string(&st).unwrap_or_default();
    db.write(|tx| Ok(tx.execute("UPDATE containers SET config=?2 WHERE id=?1", rusqlite::params![c.id, stored])?))?;
    get(db, &c.id)
}

pub fn rename(db: &mut Db, key: &str, new: &str) -> Result<()> {
    let c = get(db, key)?;
    if !valid_name(new) {
        return Err(ContainerError::BadName(new.to_string()));
    }
    db.write(|tx| Ok(tx.execute("UPDATE containers SET name=?2 WHERE id=?1", rusqlite::params![c.id, new])?)).map_err(|e| match e {
        StoreError::Sql(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => ContainerError::NameInUse(new.to_string()),
        e => e.into(),
    })?;
    Ok(())
}

/// Deletes the record and files of a container that is not running.
pub fn delete(paths: &Paths, db: &mut Db, c: &Container) -> Result<()> {
    remove_files(paths, &c.id)?;
    crate::fault!("rm.files");
    forget_container(paths, db, c)?.files_removed(paths, db);
    Ok(())
}

/// What a removal must still do once the container's files are gone.
#[must_use]
pub struct Forgotten {
    lossy: bool,
}

impl Forgotten {
    pub fn files_removed(self, paths: &Paths, db: &Db) {
        if self.lossy {
            // Its loss chains were bound to links that are gone.
            let _ = crate::network::sync_loss(paths, db);
        }
    }
}

/// Drops the record (see [`forget`]) and, as docker does for a `--rm`
/// container, its anonymous volumes.
pub fn forget_container(paths: &Paths, db: &mut Db, c: &Container) -> Result<Forgotten> {
    let lossy = crate::network::has_loss(db, &c.id);
    forget(db, &c.id)?;
    if c.spec.rm {
        remove_anonymous_volumes(paths, db, c);
    }
    Ok(Forgotten { lossy })
}

/// A `--rm` container's exit and the end of its record, in one
/// transaction: the record as it ends (exit code, OOM, finish time set) is
/// read and dropped with its endpoints and ports. The exit is never
/// written, since the row goes (one write instead of two on the path to a
/// `run --rm`'s return). Also says whether it had published ports, which
/// leave the firewall with it. None when the record is gone already (an
/// `rm -f` got there first). Its anonymous volumes stay for the caller.
pub fn exit_and_forget(db: &mut Db, id: &str, code: i32, oom: bool) -> Result<Option<(Container, Forgotten, bool)>> {
    use rusqlite::OptionalExtension;
    let lossy = crate::network::has_loss(db, id);
    let now = store::now_rfc3339();
    let gone = db.write(|tx| {
        let Some(c) = tx.query_row(&format!("SELECT {COLS} FROM containers WHERE id=?1"), [id], from_row).optional()? else {
            return Ok(None);
        };
        let ports: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM ports WHERE container_id=?1)", [id], |r| r.get(0))?;
        crate::network::delete_container_rows(tx, id)?;
        tx.execute("DELETE FROM containers WHERE id=?1", [id])?;
        Ok(Some((c, ports)))
    })?;
    Ok(gone.map(|(mut c, ports)| {
        c.state = "exited".into();
        c.pid = 0;
        c.exit_code = code;
        c.oom_killed = oom;
        c.finished_at = now;
        c.error.clear();
        (c, Forgotten { lossy }, ports)
    }))
}

fn host_resolv_conf() -> String {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter(|l| !(l.trim_start().starts_with("nameserver") && (l.contains(" 127.") || l.contains(" ::1"))))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Drops the record (and its network endpoints) only: the name and its
/// addresses are free and the container is gone from every listing;
/// `remove_files` takes the rest.
pub fn forget(db: &mut Db, id: &str) -> Result<()> {
    // One transaction, not three: a write costs its locks and WAL frames.
    db.write(|tx| {
        let _ = crate::network::delete_container_rows(tx, id);
        Ok(tx.execute("DELETE FROM containers WHERE id=?1", [id])?)
    })?;
    Ok(())
}

/// `PARENT/ID`, the parent being `--cgroup-parent` or the root's own.
pub fn cgroup_path(paths: &Paths, parent: Option<&str>, id: &str) -> String {
    let parent = parent.map(|p| p.trim_matches('/').to_string()).filter(|p| !p.is_empty()).unwrap_or_else(|| paths.cgroup_parent());
    format!("{parent}/{id}")
}

/// The cgroup a container's files say it has (its row may be gone).
pub fn cgroup_of_files(paths: &Paths, id: &str) -> String {
    std::fs::read(paths.container_dir(id).join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["linux"]["cgroupsPath"].as_str().map(String::from))
        .unwrap_or_else(|| cgroup_path(paths, None, id))
}

/// A `--cgroup-parent` must stay inside the hierarchy.
pub fn check_cgroup_parent(p: &str) -> Result<()> {
    let rel = p.trim_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(ContainerError::BadOption(format!("--cgroup-parent {p:?}: must be a cgroup path such as \"mygroup\" or \"/lab/db\", without \"..\"")));
    }
    Ok(())
}

pub fn remove_files(paths: &Paths, id: &str) -> Result<()> {
    crate::network::teardown(paths, id);
    if let Some(p) = remove_files_but_reset(paths, id, None)? {
        p.finish();
    }
    Ok(())
}

/// `remove_files`, except that a directory kept as a spare comes back to
/// be reset, and that the container's network namespace is the caller's
/// to tear down (a monitor does it before it lets its client go).
/// `cgroup`: the container's cgroup path when the caller knows it; else it
/// is read from config.json.
pub fn remove_files_but_reset(paths: &Paths, id: &str, cgroup: Option<String>) -> Result<Option<spare::Pending>> {
    let dir = paths.container_dir(id);
    let merged = dir.join("merged");
    let mounted = crate::sys::mount::is_mounted(&merged);
    if mounted {
        let _ = crate::sys::mount::umount_detach(&merged);
    }
    let cg = crate::sys::cgroup::Cgroup::load(&cgroup.unwrap_or_else(|| cgroup_of_files(paths, id)));
    let emptied = !cg.exists() || cg.delete().is_ok();
    let _ = std::fs::remove_dir_all(paths.container_run(id));
    // Reused only when nothing of the container can still reach it: no
    // process left in its cgroup, no overlay that a detach only hid.
    if emptied && !mounted && let Some(p) = spare::set_aside(paths, &dir) {
        return Ok(Some(p));
    }
    std::fs::remove_dir_all(&dir).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }).map_err(io_ctx(format!("removing {}", dir.display())))?;
    Ok(None)
}

pub fn log_path(paths: &Paths, id: &str) -> PathBuf {
    paths.container_dir(id).join("log.jsonl")
}

/// The data of `berth inspect`, in docker's shape.
/// docker's inspect JSON; `db` gives its networks and ports.
pub fn inspect_json(paths: &Paths, db: &Db, c: &Container) -> serde_json::Value {
    let s = &c.spec;
    let (max_retry, policy) = match &s.restart {
        RestartPolicy::OnFailure(n) => (*n, "on-failure"),
        other => (0, if *other == RestartPolicy::Always { "always" } else if *other == RestartPolicy::UnlessStopped { "unless-stopped" } else { "no" }),
    };
    let cfg: serde_json::Value = std::fs::read(paths.container_dir(&c.id).join("config.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let mut v = inspect_base(paths, c, s, max_retry, policy, db, &cfg);
    if !c.health.status.is_empty() {
        v["State"]["Health"] = serde_json::json!({
            "Status": c.health.status,
            "FailingStreak": c.health.failing_streak,
            "Log": c.health.log.iter().map(|p| serde_json::json!({"Start": p.start, "End": p.end, "ExitCode": p.exit_code, "Output": p.output})).collect::<Vec<_>>(),
        });
    }
    if let Some(h) = &s.health {
        v["Config"]["Healthcheck"] = h.to_docker();
    }
    v
}

fn inspect_base(paths: &Paths, c: &Container, s: &RunSpec, max_retry: u32, policy: &str, db: &Db, cfg: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.command.first().cloned().unwrap_or_default(),
        "Args": c.command.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": c.state,
            "Running": c.state == "running" || c.state == "paused",
            "Paused": c.state == "paused",
            "Restarting": c.state == "restarting",
            "OOMKilled": c.oom_killed,
            "Dead": false,
            "Pid": c.pid,
            "ExitCode": c.exit_code,
            "Error": c.error,
            "StartedAt": c.started_at,
            "FinishedAt": c.finished_at,
        },
        "Image": c.image_id,
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "LogPath": log_path(paths, &c.id),
        "HostnamePath": paths.container_dir(&c.id).join("hostname"),
        "HostsPath": paths.container_dir(&c.id).join("hosts"),
        "ResolvConfPath": paths.container_dir(&c.id).join("resolv.conf"),
        "HostConfig": {
            "Memory": s.memory.unwrap_or(0),
            "NanoCpus": s.cpus.map(|c| (c * 1e9) as i64).unwrap_or(0),
            "PidsLimit": s.pids_limit.unwrap_or(spec::DEFAULT_PIDS_LIMIT),
            "CgroupParent": s.cgroup_parent.clone().unwrap_or_default(),
            "Devices": s.devices.iter().map(|d| spec::parse_device(d).map(|(h, c, p)| serde_json::json!({"PathOnHost": h, "PathInContainer": c, "CgroupPermissions": p})).unwrap_or_default()).collect::<Vec<_>>(),
            "RestartPolicy": { "Name": policy, "MaximumRetryCount": max_retry },
            "AutoRemove": s.rm,
            "CapAdd": s.cap_add,
            "CapDrop": s.cap_drop,
            "Privileged": s.privileged,
            "Sysctls": s.sysctls,
            "NetworkMode": s.network.clone().unwrap_or_else(|| crate::network::DEFAULT.into()),
            "LogConfig": { "Type": "json-file", "Config": logfile::LogConfig::from_opts(&s.log_opts).unwrap_or_default().to_docker() },
            "ReadonlyRootfs": s.read_only,
            // docker's shape: null for no extra hosts, tmpfs or ulimits; [] for no DNS settings.
            "Tmpfs": (!s.tmpfs.is_empty()).then(|| s.tmpfs.iter().map(|t| match t.split_once(':') { Some((p, o)) => (p.to_string(), o.to_string()), None => (t.clone(), String::new()) }).collect::<BTreeMap<_, _>>()),
            "ShmSize": s.shm_size.unwrap_or(64 << 20),
            "ExtraHosts": (!s.extra_hosts.is_empty()).then_some(&s.extra_hosts),
            "Dns": s.dns,
            "DnsSearch": s.dns_search,
            "DnsOptions": s.dns_options,
            "Ulimits": (!s.ulimits.is_empty()).then(|| s.ulimits.iter().filter_map(|u| options::ulimit(u).ok()).map(|u| u.to_docker()).collect::<Vec<_>>()),
        },
        "Config": {
            "Hostname": cfg["hostname"],
            "User": cfg["annotations"]["berth.user"],
            "Env": cfg["process"]["env"],
            "Cmd": s.cmd,
            "Entrypoint": s.entrypoint,
            "Image": c.image_ref,
            "WorkingDir": cfg["process"]["cwd"],
            "Labels": s.labels,
            "Tty": s.tty,
            "OpenStdin": s.interactive,
            "StopSignal": cfg["annotations"]["berth.stop-signal"],
            "StopTimeout": s.stop_timeout,
        },
        "NetworkSettings": {
            "Networks": crate::network::endpoints_of_container(db, &c.id).ok().unwrap_or_default().into_iter().map(|e| (e.network.name.clone(), serde_json::json!({"IPAddress": e.ip.to_string(), "Gateway": e.network.gateway, "Aliases": e.aliases, "NetworkID": e.network.id}))).collect::<serde_json::Map<String, serde_json::Value>>(),
            "Ports": crate::network::ports_of(db, &c.id).ok().unwrap_or_default().into_iter().map(|p| (format!("{}/{}", p.container_port, p.proto), serde_json::json!([{"HostIp": p.host_ip, "HostPort": p.host_port.to_string()}]))).collect::<serde_json::Map<String, serde_json::Value>>(),
        },
        "GraphDriver": { "Name": "overlay2", "Data": { "UpperDir": paths.container_dir(&c.id).join("upper"), "WorkDir": paths.container_dir(&c.id).join("work") } },
    })
}
