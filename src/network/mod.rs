//! Networks: a Linux bridge per network, a veth pair per endpoint, IPAM in
//! the store, peers' names in each container's /etc/hosts.
//!
//! A container on a network gets a named network namespace at
//! `$BERTH_RUN/netns/<id>` before it starts; the OCI spec points init at it,
//! so the runtime stays spec-driven. The namespace lives as long as the
//! container does; removing it takes the veth pair with it.

pub mod impair;
pub mod ipam;
pub mod overlay;
pub mod ports;
pub mod rootless;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rusqlite::OptionalExtension;
use serde::Serialize;

use crate::store::{self, Db, Paths, StoreError};
use crate::sys::netlink::{self, Netlink};
use ipam::{IpamError, Subnet};

#[derive(thiserror::Error, Debug)]
pub enum NetworkError {
    #[error("network {0} not found")]
    NotFound(String),
    #[error("port {port}: a rootless berth may not publish ports below {start} (net.ipv4.ip_unprivileged_port_start); publish a higher one (-p 8080:{port}), or as root lower it: sysctl net.ipv4.ip_unprivileged_port_start={port}")]
    LowPort { port: u16, start: u16 },
    #[error("network with name {0} already exists")]
    Exists(String),
    #[error("invalid network name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
    #[error("{0} is a pre-defined network and cannot be removed (`berth system reset` removes it with everything else)")]
    Predefined(String),
    #[error("error while removing network {name}: network has active endpoints ({containers}); remove or disconnect them first")]
    InUse { name: String, containers: String },
    #[error("network {net}: {err}")]
    Ipam { net: String, err: IpamError },
    #[error("container is already connected to network {0}")]
    AlreadyConnected(String),
    #[error("container {0} is not connected to network {1}")]
    NotConnected(String, String),
    #[error("network {net}: {err}")]
    System { net: String, err: std::io::Error },
    #[error(transparent)]
    Port(#[from] ports::PortError),
    #[error("port {port}/{proto} is already published by container {by}")]
    PortTaken { port: u16, proto: String, by: String },
    #[error("publishing ports needs a bridge network; this container's network is {0}")]
    PortsNeedBridge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T> = std::result::Result<T, NetworkError>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS networks(
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, subnet TEXT NOT NULL, gateway TEXT NOT NULL,
    bridge TEXT NOT NULL, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints(
    container_id TEXT NOT NULL, network_id TEXT NOT NULL, ip TEXT NOT NULL, aliases TEXT NOT NULL DEFAULT '[]',
    position INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(container_id, network_id), UNIQUE(network_id, ip)
);
CREATE TABLE IF NOT EXISTS ports(
    container_id TEXT NOT NULL, host_ip TEXT NOT NULL, host_port INTEGER NOT NULL, container_port INTEGER NOT NULL,
    proto TEXT NOT NULL, UNIQUE(host_port, proto)
);";

/// Makes the network tables and the columns older stores lack; run by
/// `Db::open` on a store below `store::SCHEMA_VERSION`.
pub(crate) fn make_tables(db: &Db) -> std::result::Result<(), StoreError> {
    db.conn.execute_batch(SCHEMA)?;
    // Stores made before network labels (and overlays) lack the columns.
    db.ensure_column("networks", "labels", "TEXT NOT NULL DEFAULT '{}'")?;
    db.ensure_column("networks", "driver", "TEXT NOT NULL DEFAULT 'bridge'")?;
    db.ensure_column("networks", "vni", "INTEGER NOT NULL DEFAULT 0")?;
    db.ensure_column("networks", "mtu", "INTEGER NOT NULL DEFAULT 0")?;
    // Stores made before link emulation lack the column.
    db.ensure_column("endpoints", "impair", "TEXT NOT NULL DEFAULT ''")?;
    db.conn.execute_batch("CREATE TABLE IF NOT EXISTS remote_endpoints(network_id TEXT NOT NULL, name TEXT NOT NULL, ip TEXT NOT NULL, aliases TEXT NOT NULL DEFAULT '[]', PRIMARY KEY(network_id, name))")?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub subnet: String,
    pub gateway: String,
    pub bridge: String,
    pub created: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// "bridge", or "overlay" for a swarm's network spanning nodes (its
    /// record is etcd's; this row is the node's copy, with this node's
    /// own address on the network as the gateway).
    pub driver: String,
    pub vni: u32,
    /// 0: the kernel's default.
    pub mtu: u32,
}

impl Network {
    pub fn is_overlay(&self) -> bool {
        self.driver == "overlay"
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub container_id: String,
    pub network: Network,
    pub ip: Ipv4Addr,
    pub aliases: Vec<String>,
    /// Order of attachment: 0 is eth0, whose gateway is the default route.
    pub position: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<Network> {
    let labels: String = r.get(6)?;
    Ok(Network {
        id: r.get(0)?,
        name: r.get(1)?,
        subnet: r.get(2)?,
        gateway: r.get(3)?,
        bridge: r.get(4)?,
        created: r.get(5)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        driver: r.get(7)?,
        vni: r.get(8)?,
        mtu: r.get(9)?,
    })
}

pub fn list(db: &Db) -> Result<Vec<Network>> {
    let mut st = db.conn.prepare("SELECT id, name, subnet, gateway, bridge, created, labels, driver, vni, mtu FROM networks ORDER BY name").map_err(StoreError::from)?;
    let v = st.query_map([], row).map_err(StoreError::from)?.filter_map(|r| r.ok()).collect();
    Ok(v)
}

pub fn get(db: &Db, key: &str) -> Result<Network> {
    match store::lookup(&db.conn, "SELECT id, name, subnet, gateway, bridge, created, labels, driver, vni, mtu FROM networks", key, row)? {
        store::Found::One(n) => Ok(n),
        _ => Err(NetworkError::NotFound(key.to_string())),
    }
}

/// Bridge device names: `berth0` for the default network of the default
/// root (the name docker users expect), `br-<id>` otherwise, so parallel
/// roots (tests) never share a bridge.
fn bridge_name(paths: &Paths, id: &str, default: bool) -> String {
    if default && paths.root == Path::new("/var/lib/berth") { "berth0".into() } else { format!("br-{}", &id[..12]) }
}

/// Subnets are chosen against the host's routes, which other berth roots
/// also add to: one host-wide lock keeps two creators from picking the same.
fn host_lock(paths: &Paths) -> std::io::Result<store::FileLock> {
    // A rootless berth's routes are its own namespace's.
    if crate::rootless::active() {
        return store::FileLock::exclusive(&paths.run.join("ipam.lock")).map_err(|e| std::io::Error::other(e.to_string()));
    }
    let p = Path::new("/run/lock");
    let dir = if p.is_dir() { p.to_path_buf() } else { std::env::temp_dir() };
    store::FileLock::exclusive(&dir.join("berth-ipam.lock")).map_err(|e| std::io::Error::other(e.to_string()))
}

pub const DEFAULT: &str = "bridge";

pub fn create(paths: &Paths, db: &mut Db, spec: &NetworkSpec) -> Result<Network> {
    let name = spec.name.clone();
    let ok = !name.is_empty() && name.as_bytes()[0].is_ascii_alphanumeric() && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
    if !ok {
        return Err(NetworkError::BadName(name));
    }
    if get(db, &name).is_ok_and(|n| n.name == name) {
        return Err(NetworkError::Exists(name));
    }
    let sys = |err: std::io::Error| NetworkError::System { net: name.clone(), err };
    rootless::ensure(paths).map_err(sys)?;
    let _lock = host_lock(paths).map_err(sys)?;
    let nl = Netlink::new().map_err(sys)?;
    let mut taken: Vec<Subnet> = nl.routes_v4().map_err(sys)?.into_iter().filter(|(_, p)| *p > 0).map(|(a, p)| Subnet { addr: a, prefix: p }).collect();
    for n in list(db)? {
        if let Ok(s) = Subnet::parse(&n.subnet) {
            taken.push(s);
        }
    }
    let ipam = |err| NetworkError::Ipam { net: name.clone(), err };
    let subnet = match &spec.subnet {
        Some(s) => {
            let s = Subnet::parse(s).map_err(ipam)?;
            if let Some(t) = list(db)?.into_iter().find(|n| Subnet::parse(&n.subnet).is_ok_and(|x| x.overlaps(&s))) {
                return Err(ipam(IpamError::Overlap { subnet: s.to_string(), with: format!("network {} ({}){}", t.name, t.subnet, made_by(&t.labels)) }));
            }
            // As docker does: a bridge on a subnet the host already routes
            // elsewhere (another root's bridge, a LAN) would split the
            // traffic between the two.
            if let Some(r) = nl.routes_v4().map_err(sys)?.into_iter().filter(|(_, p)| *p > 0).map(|(a, p)| Subnet { addr: a, prefix: p }).find(|r| r.overlaps(&s)) {
                return Err(ipam(IpamError::Overlap { subnet: s.to_string(), with: format!("the host's route to {r}") }));
            }
            s
        }
        None => ipam::pick_subnet(&taken).map_err(ipam)?,
    };
    let gateway = match &spec.gateway {
        Some(g) => {
            let a: Ipv4Addr = g.parse().map_err(|_| ipam(IpamError::BadAddress(g.clone())))?;
            if !subnet.contains(a) {
                return Err(ipam(IpamError::OutsideSubnet { addr: a, subnet: subnet.to_string() }));
            }
            a
        }
        None => subnet.first_host(),
    };
    let id = store::new_id();
    let bridge = bridge_name(paths, &id, name == DEFAULT);
    // Intent first: the row, then the bridge; a failure removes both.
    let created = store::now_rfc3339();
    db.write(|tx| {
        tx.execute(
            "INSERT INTO networks(id, name, subnet, gateway, bridge, created, labels) VALUES(?1,?2,?3,?4,?5,?6,?7)",
            rusqlite::params![id, name, subnet.to_string(), gateway.to_string(), bridge, created, serde_json::to_string(&spec.labels).unwrap_or_default()],
        )?;
        Ok(())
    })
    .map_err(|e| match e {
        StoreError::Sql(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => NetworkError::Exists(name.clone()),
        e => e.into(),
    })?;
    crate::fault!("network.create");
    let made = bridge_up(paths, &nl, &id, &bridge, gateway, subnet.prefix);
    if let Err(e) = made {
        let _ = nl.delete_link(&bridge);
        let _ = db.write(|tx| Ok(tx.execute("DELETE FROM networks WHERE id=?1", [&id])?));
        return Err(sys(e));
    }
    get(db, &id)
}

fn bridge_up(paths: &Paths, nl: &Netlink, id: &str, bridge: &str, gateway: Ipv4Addr, prefix: u8) -> std::io::Result<()> {
    // As docker does: networks route (published ports from outside,
    // egress NAT), so the host must forward.
    let _ = crate::rootless::in_host_netns(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"));
    nl.create_bridge(bridge)?;
    nl.set_alias(bridge, &owner_alias(paths, id))?;
    nl.add_address(bridge, gateway, prefix)?;
    nl.set_up(bridge)
}

/// Makes a recorded network's bridge again (`system check --repair`).
pub fn make_bridge(paths: &Paths, net: &Network) -> std::io::Result<()> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("network {}: its recorded {what} is unreadable", net.name));
    let subnet = Subnet::parse(&net.subnet).map_err(|_| bad("subnet"))?;
    let gateway: Ipv4Addr = net.gateway.parse().map_err(|_| bad("gateway"))?;
    let nl = Netlink::new()?;
    bridge_up(paths, &nl, &net.id, &net.bridge, gateway, subnet.prefix)
}

/// Drops a network's record (and any endpoints): its bridge is gone.
pub fn forget(db: &mut Db, id: &str) -> Result<()> {
    db.write(|tx| {
        tx.execute("DELETE FROM endpoints WHERE network_id=?1", [id])?;
        Ok(tx.execute("DELETE FROM networks WHERE id=?1", [id])?)
    })?;
    Ok(())
}

/// The default network, made on first use.
pub fn default_network(paths: &Paths, db: &mut Db) -> Result<Network> {
    match get(db, DEFAULT) {
        Ok(n) => Ok(n),
        Err(NetworkError::NotFound(_)) => match create(paths, db, &NetworkSpec { name: DEFAULT.into(), ..Default::default() }) {
            Err(NetworkError::Exists(_)) => get(db, DEFAULT),
            r => r,
        },
        Err(e) => Err(e),
    }
}

pub fn endpoints_of_network(db: &Db, net: &Network) -> Result<Vec<(String, Ipv4Addr, Vec<String>)>> {
    let mut st = db.conn.prepare("SELECT container_id, ip, aliases FROM endpoints WHERE network_id=?1").map_err(StoreError::from)?;
    let v = st
        .query_map([&net.id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
        .map_err(StoreError::from)?
        .filter_map(|r| r.ok())
        .map(|(c, ip, a)| (c, ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED), serde_json::from_str(&a).unwrap_or_default()))
        .collect();
    Ok(v)
}

pub fn endpoints_of_container(db: &Db, container_id: &str) -> Result<Vec<Endpoint>> {
    let rows: Vec<(String, String, String, i64)> = {
        let mut st = db.conn.prepare("SELECT network_id, ip, aliases, position FROM endpoints WHERE container_id=?1 ORDER BY position").map_err(StoreError::from)?;
        st.query_map([container_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).map_err(StoreError::from)?.filter_map(|r| r.ok()).collect()
    };
    let mut out = Vec::new();
    for (nid, ip, aliases, position) in rows {
        let network = get(db, &nid)?;
        out.push(Endpoint { container_id: container_id.to_string(), network, ip: ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED), aliases: serde_json::from_str(&aliases).unwrap_or_default(), position });
    }
    Ok(out)
}

/// Records an endpoint: a static address checked against the subnet and
/// the addresses in use, or the next free one.
pub fn attach(db: &mut Db, container_id: &str, net: &Network, ip: Option<&str>, aliases: &[String]) -> Result<Endpoint> {
    let ipam = |err| NetworkError::Ipam { net: net.name.clone(), err };
    let subnet = Subnet::parse(&net.subnet).map_err(ipam)?;
    let gateway: Ipv4Addr = net.gateway.parse().unwrap_or(subnet.first_host());
    let aliases_json = serde_json::to_string(aliases).unwrap();
    let cid = container_id.to_string();
    let nid = net.id.clone();
    let ip_req = ip.map(String::from);
    let r = db.write(|tx| {
        let used: Vec<Ipv4Addr> = {
            let mut st = tx.prepare("SELECT ip FROM endpoints WHERE network_id=?1")?;
            st.query_map([&nid], |r| r.get::<_, String>(0))?.filter_map(|r| r.ok()).filter_map(|s| s.parse().ok()).collect()
        };
        let exists: Option<String> = tx.query_row("SELECT ip FROM endpoints WHERE container_id=?1 AND network_id=?2", [&cid, &nid], |r| r.get(0)).optional()?;
        if exists.is_some() {
            return Ok(Err(NetworkError::AlreadyConnected(net.name.clone())));
        }
        let addr = match &ip_req {
            Some(a) => ipam::check_static(&subnet, gateway, a, &used),
            None => ipam::next_free(&subnet, gateway, &used),
        };
        let addr = match addr {
            Ok(a) => a,
            Err(e) => return Ok(Err(NetworkError::Ipam { net: net.name.clone(), err: e })),
        };
        // The lowest free slot: after a disconnect, ethN names stay unique.
        let taken: Vec<i64> = {
            let mut st = tx.prepare("SELECT position FROM endpoints WHERE container_id=?1")?;
            st.query_map([&cid], |r| r.get(0))?.filter_map(|r| r.ok()).collect()
        };
        let position: i64 = (0..).find(|p| !taken.contains(p)).unwrap();
        tx.execute(
            "INSERT INTO endpoints(container_id, network_id, ip, aliases, position) VALUES(?1,?2,?3,?4,?5)",
            rusqlite::params![cid, nid, addr.to_string(), aliases_json, position],
        )?;
        Ok(Ok((addr, position)))
    })?;
    let (addr, position) = r?;
    Ok(Endpoint { container_id: container_id.to_string(), network: net.clone(), ip: addr, aliases: aliases.to_vec(), position })
}

pub fn detach(db: &mut Db, container_id: &str, net: &Network) -> Result<()> {
    let n = db.write(|tx| Ok(tx.execute("DELETE FROM endpoints WHERE container_id=?1 AND network_id=?2", [container_id, &net.id])?))?;
    if n == 0 {
        return Err(NetworkError::NotConnected(container_id[..12.min(container_id.len())].to_string(), net.name.clone()));
    }
    Ok(())
}

pub fn detach_all(db: &mut Db, container_id: &str) -> Result<()> {
    db.write(|tx| Ok(tx.execute("DELETE FROM endpoints WHERE container_id=?1", [container_id])?))?;
    Ok(())
}

pub fn remove(db: &mut Db, key: &str, container_names: impl Fn(&str) -> String) -> Result<Network> {
    let net = get(db, key)?;
    let eps = endpoints_of_network(db, &net)?;
    if !eps.is_empty() {
        let names: Vec<String> = eps.iter().map(|(c, _, _)| container_names(c)).collect();
        return Err(NetworkError::InUse { name: net.name.clone(), containers: names.join(", ") });
    }
    let nl = Netlink::new().map_err(|err| NetworkError::System { net: net.name.clone(), err })?;
    if net.is_overlay() {
        nl.delete_link(&overlay_node(&net, Ipv4Addr::UNSPECIFIED).vxlan).map_err(|err| NetworkError::System { net: net.name.clone(), err })?;
    }
    nl.delete_link(&net.bridge).map_err(|err| NetworkError::System { net: net.name.clone(), err })?;
    crate::fault!("network.rm");
    if net.is_overlay() {
        set_remote_endpoints(db, &net.id, vec![])?;
        let mesh: Vec<Balance> = mesh(db)?.into_iter().filter(|b| Subnet::parse(&net.subnet).is_ok_and(|s| !s.contains(b.vip))).collect();
        set_mesh(db, &mesh)?;
    }
    db.write(|tx| Ok(tx.execute("DELETE FROM networks WHERE id=?1", [&net.id])?))?;
    Ok(net)
}

// ---- link emulation settings ----

/// Records the impairment of (container, network); `None` clears it.
pub fn set_impair(db: &mut Db, container_id: &str, net: &Network, imp: Option<&impair::Impairment>) -> Result<()> {
    let text = imp.filter(|i| !i.is_none()).map(|i| serde_json::to_string(i).unwrap()).unwrap_or_default();
    let n = db.write(|tx| Ok(tx.execute("UPDATE endpoints SET impair=?3 WHERE container_id=?1 AND network_id=?2", [container_id, &net.id, &text])?))?;
    if n == 0 {
        return Err(NetworkError::NotConnected(container_id[..12.min(container_id.len())].to_string(), net.name.clone()));
    }
    Ok(())
}

/// Every link of the container with its impairment (none where unset).
pub fn impair_links(db: &Db, container_id: &str) -> Result<Vec<impair::Link>> {
    let mut st = db
        .conn
        .prepare("SELECT e.position, n.name, n.bridge, e.impair FROM endpoints e JOIN networks n ON n.id = e.network_id WHERE e.container_id=?1 ORDER BY e.position")
        .map_err(StoreError::from)?;
    let rows = st
        .query_map([container_id], |r| {
            let text: String = r.get(3)?;
            Ok(impair::Link { position: r.get(0)?, network: r.get(1)?, bridge: r.get(2)?, impairment: serde_json::from_str(&text).unwrap_or_default() })
        })
        .map_err(StoreError::from)?
        .filter_map(|r| r.ok())
        .collect();
    Ok(rows)
}

/// Rewrites this root's loss table (netdev family, user-space mechanism)
/// from the store; no lossy link, no table.
pub fn sync_loss(paths: &Paths, db: &Db) -> Result<()> {
    if impair::mechanism() != impair::Mechanism::Userspace {
        return Ok(());
    }
    let sys = |err: std::io::Error| NetworkError::System { net: "link emulation".into(), err };
    let name = table_name(paths);
    match loss_table(db)? {
        Some(body) => crate::sys::nft::replace_table("netdev", &name, &body),
        None => crate::sys::nft::delete_table("netdev", &name),
    }
    .map_err(sys)
}

/// The bridges of every network of this root.
pub fn bridges(db: &Db) -> Result<Vec<String>> {
    Ok(list(db)?.into_iter().map(|n| n.bridge).collect())
}

/// The body of the loss table the store calls for, if any.
pub fn loss_table(db: &Db) -> Result<Option<String>> {
    if impair::mechanism() != impair::Mechanism::Userspace {
        return Ok(None);
    }
    let links: Vec<(String, i64, impair::Impairment)> = {
        let mut st = db
            .conn
            .prepare("SELECT e.container_id, e.position, e.impair FROM endpoints e WHERE e.impair != ''")
            .map_err(StoreError::from)?;
        st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)))
            .map_err(StoreError::from)?
            .filter_map(|r| r.ok())
            .map(|(cid, position, text)| (cid, position, serde_json::from_str(&text).unwrap_or_default()))
            .collect()
    };
    if !links.iter().any(|(_, _, i)| i.loss > 0.0) {
        return Ok(None);
    }
    let sys = |err: std::io::Error| NetworkError::System { net: "link emulation".into(), err };
    // if_nameindex, not a netlink client: the monitor rewrites this table
    // when a lossy container ends, and links none.
    let names = crate::rootless::in_host_netns(|| nix::net::if_::if_nameindex().map(|l| l.iter().map(|i| i.name().to_string_lossy().into_owned()).collect::<Vec<_>>()));
    let existing: std::collections::HashSet<String> = names.and_then(|r| r.map_err(std::io::Error::from)).map_err(sys)?.into_iter().collect();
    Ok(impair::loss_rules(&links, &existing))
}

/// Whether any of the container's links loses frames (its removal must
/// then rewrite the loss table).
pub fn has_loss(db: &Db, container_id: &str) -> bool {
    impair_links(db, container_id).is_ok_and(|ls| ls.iter().any(|l| l.impairment.loss > 0.0))
}

// ---- the container's side ----

pub fn netns_path(paths: &Paths, container_id: &str) -> PathBuf {
    paths.run.join("netns").join(&container_id[..12])
}

/// Host-side veth name: short and unique per (container, position).
pub(crate) fn veth_name(container_id: &str, position: i64) -> String {
    format!("vb{}{}", &container_id[..10], position)
}

/// Makes the container's namespace if missing and wires `eps` into it.
pub fn setup(paths: &Paths, container_id: &str, eps: &[Endpoint]) -> std::io::Result<PathBuf> {
    if !eps.is_empty() && crate::rootless::active() {
        rootless::ensure(paths)?;
        // The rootless namespace goes with the user's pause process (a
        // logout, a reboot); its bridges come back when first needed.
        let nl = Netlink::new()?;
        for ep in eps.iter().filter(|ep| !ep.network.is_overlay()) {
            if nl.link_index(&ep.network.bridge)?.is_none() {
                make_bridge(paths, &ep.network)?;
            }
        }
    }
    let ns = netns_path(paths, container_id);
    let fresh = !ns.exists();
    if fresh {
        std::fs::create_dir_all(ns.parent().unwrap())?;
        netlink::new_netns(&ns)?;
        // The kernel frees the links of a stopped container's namespace
        // lazily; one still here belongs to the old namespace.
        if let Ok(nl) = Netlink::new() {
            for ep in eps {
                let h = veth_name(container_id, ep.position);
                if nl.link_index(&h)?.is_some() {
                    let _ = nl.delete_link(&h);
                }
            }
        }
    }
    for ep in eps {
        plug(paths, &ns, container_id, ep)?;
    }
    Ok(ns)
}

/// One endpoint: veth pair, host end on the bridge, the other as ethN in
/// the container with its address (and the default route for eth0).
pub fn plug(paths: &Paths, ns: &Path, container_id: &str, ep: &Endpoint) -> std::io::Result<()> {
    let host = Netlink::new()?;
    let hname = veth_name(container_id, ep.position);
    if host.link_index(&hname)?.is_some() {
        return Ok(());
    }
    // The container's end is made in its namespace under its final name.
    let eth = format!("eth{}", ep.position);
    let nsf = std::fs::File::open(ns)?;
    host.create_veth_into(&hname, &eth, &nsf)?;
    let r = (|| -> std::io::Result<()> {
        host.set_alias(&hname, &owner_alias(paths, container_id))?;
        host.set_master(&hname, &ep.network.bridge)?;
        host.set_up(&hname)?;
        let inner = Netlink::in_netns(ns)?;
        // The address follows from the IP, as docker's does: a container
        // that comes back (a new veth) keeps its MAC, so its peers' ARP
        // caches stay right.
        let o = ep.ip.octets();
        inner.set_mac(&eth, [0x02, 0x42, o[0], o[1], o[2], o[3]])?;
        // An overlay's packets carry VXLAN's 50 bytes: the container must
        // send smaller ones, or large ones vanish on the way.
        if ep.network.mtu > 0 {
            host.set_mtu(&hname, ep.network.mtu)?;
            inner.set_mtu(&eth, ep.network.mtu)?;
        }
        let prefix = Subnet::parse(&ep.network.subnet).map(|s| s.prefix).unwrap_or(24);
        inner.add_address(&eth, ep.ip, prefix)?;
        inner.set_up(&eth)?;
        if ep.position == 0
            && let Ok(gw) = ep.network.gateway.parse() {
                inner.add_default_route(gw)?;
            }
        Ok(())
    })();
    if r.is_err() {
        let _ = host.delete_link(&hname);
    }
    r
}

pub fn unplug(paths: &Paths, container_id: &str, ep: &Endpoint) -> std::io::Result<()> {
    impair::stop_delay_line(paths, container_id, ep.position, None)?;
    Netlink::new()?.delete_link(&veth_name(container_id, ep.position))
}

/// Removes the container's namespace (its veth pairs go with it).
pub fn teardown(paths: &Paths, container_id: &str) {
    impair::stop_all(paths, container_id);
    let ns = netns_path(paths, container_id);
    if ns.exists() {
        let _ = netlink::delete_netns(&ns);
    }
}

// ---- overlays: the node's copy of what the swarm holds ----

/// The devices of an overlay on this node; `local` is this node's VTEP.
pub fn overlay_node(net: &Network, local: Ipv4Addr) -> overlay::OverlayNode {
    let mut o = overlay::OverlayNode::new(&net.id, net.vni, local);
    o.bridge = net.bridge.clone();
    if net.mtu > 0 {
        o.mtu = net.mtu;
    }
    o
}

/// Records an overlay of the swarm on this node (its devices are the
/// caller's): `gateway` is this node's own address on it.
pub fn insert_overlay(db: &mut Db, net: &Network) -> Result<Network> {
    db.write(|tx| {
        tx.execute(
            "INSERT INTO networks(id, name, subnet, gateway, bridge, created, labels, driver, vni, mtu) VALUES(?1,?2,?3,?4,?5,?6,?7,'overlay',?8,?9)",
            rusqlite::params![net.id, net.name, net.subnet, net.gateway, net.bridge, net.created, serde_json::to_string(&net.labels).unwrap_or_default(), net.vni, net.mtu],
        )?;
        Ok(())
    })
    .map_err(|e| match e {
        StoreError::Sql(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => NetworkError::Exists(net.name.clone()),
        e => e.into(),
    })?;
    get(db, &net.id)
}

/// A name on an overlay that lives on another node (a container there, or
/// a swarm service's VIP): what this node's hosts files list for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
pub struct RemoteEndpoint {
    pub network_id: String,
    pub name: String,
    pub ip: Ipv4Addr,
    pub aliases: Vec<String>,
}

pub fn remote_endpoints(db: &Db) -> Result<Vec<RemoteEndpoint>> {
    let mut st = db.conn.prepare("SELECT network_id, name, ip, aliases FROM remote_endpoints ORDER BY network_id, name").map_err(StoreError::from)?;
    let v = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?)))
        .map_err(StoreError::from)?
        .filter_map(|r| r.ok())
        .filter_map(|(n, name, ip, a)| Some(RemoteEndpoint { network_id: n, name, ip: ip.parse().ok()?, aliases: serde_json::from_str(&a).unwrap_or_default() }))
        .collect();
    Ok(v)
}

/// Replaces the remote names of `network_id`; true when they changed.
pub fn set_remote_endpoints(db: &mut Db, network_id: &str, mut eps: Vec<RemoteEndpoint>) -> Result<bool> {
    eps.sort_by(|a, b| a.name.cmp(&b.name));
    let now: Vec<RemoteEndpoint> = remote_endpoints(db)?.into_iter().filter(|r| r.network_id == network_id).collect();
    if now == eps {
        return Ok(false);
    }
    db.write(|tx| {
        tx.execute("DELETE FROM remote_endpoints WHERE network_id=?1", [network_id])?;
        for e in &eps {
            tx.execute(
                "INSERT OR REPLACE INTO remote_endpoints(network_id, name, ip, aliases) VALUES(?1,?2,?3,?4)",
                rusqlite::params![network_id, e.name, e.ip.to_string(), serde_json::to_string(&e.aliases).unwrap_or_default()],
            )?;
        }
        Ok(())
    })?;
    Ok(true)
}

/// Balancing the node agent computed for the swarm's services: their VIPs
/// and published ports (the routing mesh: every node answers on them)
/// spread over the tasks' addresses on any node.
pub fn set_mesh(db: &mut Db, balances: &[Balance]) -> Result<bool> {
    db.conn
        .execute_batch("CREATE TABLE IF NOT EXISTS mesh(owner TEXT PRIMARY KEY, body TEXT NOT NULL)")
        .map_err(|e| NetworkError::Store(e.into()))?;
    let now = mesh(db)?;
    let mut want: Vec<&Balance> = balances.iter().collect();
    want.sort_by(|a, b| a.owner.cmp(&b.owner));
    if now.len() == want.len() && now.iter().zip(&want).all(|(a, b)| a == *b) {
        return Ok(false);
    }
    db.write(|tx| {
        tx.execute("DELETE FROM mesh", [])?;
        for b in &want {
            tx.execute("INSERT INTO mesh(owner, body) VALUES(?1,?2)", rusqlite::params![b.owner, serde_json::to_string(b).unwrap_or_default()])?;
        }
        Ok(())
    })?;
    Ok(true)
}

pub fn mesh(db: &Db) -> Result<Vec<Balance>> {
    db.conn
        .execute_batch("CREATE TABLE IF NOT EXISTS mesh(owner TEXT PRIMARY KEY, body TEXT NOT NULL)")
        .map_err(|e| NetworkError::Store(e.into()))?;
    let mut st = db.conn.prepare("SELECT body FROM mesh ORDER BY owner").map_err(StoreError::from)?;
    let v = st.query_map([], |r| r.get::<_, String>(0)).map_err(StoreError::from)?.filter_map(|r| r.ok()).filter_map(|b| serde_json::from_str(&b).ok()).collect();
    Ok(v)
}

/// Hosts files for `targets`, computed from one read of the endpoints:
/// each lists the container itself and its peers on every network it
/// shares with them, by name and alias. `names` maps container id to
/// (name, hostname).
pub fn hosts_files(db: &Db, targets: &[String], names: &std::collections::HashMap<String, (String, String)>) -> Result<Vec<(String, String)>> {
    let rows: Vec<(String, String, String, String, i64)> = {
        let mut st = db.conn.prepare("SELECT container_id, network_id, ip, aliases, position FROM endpoints ORDER BY position").map_err(StoreError::from)?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))).map_err(StoreError::from)?.filter_map(|r| r.ok()).collect()
    };
    let remote = remote_endpoints(db)?;
    let mut by_net: std::collections::HashMap<&str, Vec<&(String, String, String, String, i64)>> = std::collections::HashMap::new();
    for r in &rows {
        by_net.entry(r.1.as_str()).or_default().push(r);
    }
    let mut out = Vec::new();
    for cid in targets {
        let Some((own, hostname)) = names.get(cid) else { continue };
        let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
        let mine: Vec<&(String, String, String, String, i64)> = rows.iter().filter(|r| &r.0 == cid).collect();
        if let Some(first) = mine.first() {
            s.push_str(&format!("{}\t{hostname} {own}\n", first.2));
        }
        for ep in &mine {
            for peer in by_net.get(ep.1.as_str()).map(|v| v.as_slice()).unwrap_or(&[]) {
                if &peer.0 == cid {
                    continue;
                }
                if let Some((n, _)) = names.get(&peer.0) {
                    let mut all = vec![n.clone()];
                    all.extend(serde_json::from_str::<Vec<String>>(&peer.3).unwrap_or_default());
                    s.push_str(&format!("{}\t{}\n", peer.2, all.join(" ")));
                }
            }
            for r in remote.iter().filter(|r| r.network_id == ep.1) {
                let mut all = vec![r.name.clone()];
                all.extend(r.aliases.iter().cloned());
                s.push_str(&format!("{}\t{}\n", r.ip, all.join(" ")));
            }
        }
        out.push((cid.clone(), s));
    }
    Ok(out)
}

// ---- published ports ----

#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: String,
}

/// " (made by test FILE › NAME)" for an object a `berth test` run made, so
/// that a clash between test files says which file holds the other one.
fn made_by(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels.get(crate::testrun::TEST_LABEL).map(|t| format!(" (made by test {t})")).unwrap_or_default()
}

/// Records the container's published ports, choosing free host ports
/// where none was given.
pub fn publish(db: &mut Db, container_id: &str, specs: &[ports::PortSpec]) -> Result<Vec<Published>> {
    if crate::rootless::active() {
        let start = rootless::unprivileged_port_start();
        if let Some(port) = specs.iter().filter_map(|s| s.host_port).find(|p| *p < start) {
            return Err(NetworkError::LowPort { port, start });
        }
    }
    let mut out = Vec::new();
    for sp in specs {
        // The kernel's free port is free only until it is released again: a
        // container starting beside this one may be handed the same one. A
        // port berth chose is chosen again; only one the user named fails.
        let mut tries = 0;
        let (p, r) = loop {
            let host_port = match sp.host_port {
                Some(p) => p,
                None => ports::free_port(&sp.proto).map_err(|err| NetworkError::System { net: "ports".into(), err })?,
            };
            let p = Published { host_ip: sp.host_ip.map(|a| a.to_string()).unwrap_or_else(|| "0.0.0.0".into()), host_port, container_port: sp.container_port, proto: sp.proto.clone() };
            let cid = container_id.to_string();
            let r = db.write(|tx| {
                let by: Option<String> = tx.query_row("SELECT container_id FROM ports WHERE host_port=?1 AND proto=?2", rusqlite::params![p.host_port, p.proto], |r| r.get(0)).optional()?;
                if let Some(by) = by {
                    return Ok(Err(by));
                }
                tx.execute(
                    "INSERT INTO ports(container_id, host_ip, host_port, container_port, proto) VALUES(?1,?2,?3,?4,?5)",
                    rusqlite::params![cid, p.host_ip, p.host_port, p.container_port, p.proto],
                )?;
                Ok(Ok(()))
            })?;
            tries += 1;
            if r.is_ok() || sp.host_port.is_some() || tries >= 20 {
                break (p, r);
            }
        };
        if let Err(by) = r {
            let _ = unpublish_all(db, container_id);
            let by = match crate::container::get(db, &by) {
                Ok(c) => format!("{}{}", c.name, made_by(&c.spec.labels)),
                Err(_) => by[..12.min(by.len())].to_string(),
            };
            return Err(NetworkError::PortTaken { port: p.host_port, proto: p.proto.clone(), by });
        }
        out.push(p);
    }
    Ok(out)
}

/// Every published port of this root (containers' and services').
pub fn all_published(db: &Db) -> Result<Vec<Published>> {
    let mut st = db.conn.prepare("SELECT host_ip, host_port, container_port, proto FROM ports ORDER BY host_port").map_err(StoreError::from)?;
    let v = st
        .query_map([], |r| Ok(Published { host_ip: r.get(0)?, host_port: r.get(1)?, container_port: r.get(2)?, proto: r.get(3)? }))
        .map_err(StoreError::from)?
        .filter_map(|r| r.ok())
        .collect();
    Ok(v)
}

pub fn ports_of(db: &Db, container_id: &str) -> Result<Vec<Published>> {
    let mut st = db.conn.prepare("SELECT host_ip, host_port, container_port, proto FROM ports WHERE container_id=?1 ORDER BY container_port").map_err(StoreError::from)?;
    let v = st
        .query_map([container_id], |r| Ok(Published { host_ip: r.get(0)?, host_port: r.get(1)?, container_port: r.get(2)?, proto: r.get(3)? }))
        .map_err(StoreError::from)?
        .filter_map(|r| r.ok())
        .collect();
    Ok(v)
}

/// Deletes a container's published ports and endpoints inside the
/// caller's transaction, which drops the container's row with them.
pub(crate) fn delete_container_rows(tx: &rusqlite::Transaction, container_id: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM ports WHERE container_id=?1", [container_id])?;
    tx.execute("DELETE FROM endpoints WHERE container_id=?1", [container_id])?;
    Ok(())
}

pub fn unpublish_all(db: &mut Db, container_id: &str) -> Result<()> {
    db.write(|tx| Ok(tx.execute("DELETE FROM ports WHERE container_id=?1", [container_id])?))?;
    Ok(())
}

/// The nft table of this root: `berth` for the default root, a name of its
/// own for any other (parallel tests never share one).
pub fn table_name(paths: &Paths) -> String {
    match paths.tag() {
        None => "berth".into(),
        Some(t) => format!("berth_{t}"),
    }
}


/// The alias berth gives the links it makes: `berth:ROOT:OBJECT12`, so that
/// `system check` finds its own leftovers and no other root's.
pub fn owner_alias(paths: &Paths, object_id: &str) -> String {
    format!("{}{}", alias_prefix(paths), &object_id[..12.min(object_id.len())])
}

pub fn alias_prefix(paths: &Paths) -> String {
    format!("berth:{}:", paths.tag().unwrap_or_else(|| "default".into()))
}

/// Held from reading the store to writing the table, so that of two
/// writers (a CLI and a monitor whose replica turned healthy) the later
/// reading is also the later write. Released when dropped.
pub fn firewall_lock(paths: &Paths) -> Option<crate::store::FileLock> {
    crate::store::FileLock::exclusive(&paths.run.join("firewall.lock")).ok()
}

/// Writes (or, with no networks, removes) this root's table. Runs `nft`,
/// so callers do it without holding the database.
pub fn apply_firewall(paths: &Paths, rules: Option<&str>, bridges: &[String], published: &[Published]) -> Result<()> {
    let table = table_name(paths);
    let sys = |err| NetworkError::System { net: "firewall".into(), err };
    // Loopback-sourced packets (a published port reached at 127.0.0.1) may
    // leave through our bridge only with route_localnet, set on our own
    // interfaces. Done here, not where the rules are made: `system check`
    // makes them too, and a check only reads.
    let _ = crate::rootless::in_host_netns(|| {
        for b in bridges {
            let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{b}/route_localnet"), "1");
        }
    });
    // A rootless berth's table lives in its rootless namespace, made first.
    if crate::rootless::active() && rules.is_some() {
        rootless::ensure(paths).map_err(sys)?;
    }
    match rules {
        Some(body) => crate::sys::nft::replace_table("ip", &table, body).map_err(sys)?,
        // One nft run that deletes the table whether or not it is there;
        // asking first cost a second run, and a listing that failed for
        // another reason (a busy host) left a stale table behind.
        None => crate::sys::nft::delete_table("ip", &table).map_err(sys)?,
    }
    if crate::rootless::active() {
        // No other firewall shares the rootless namespace; the host's
        // listening sockets are slirp4netns'.
        let fwd: Vec<rootless::Forward> = published.iter().map(|p| rootless::Forward { proto: p.proto.clone(), host_addr: p.host_ip.clone(), host_port: p.host_port }).collect();
        return rootless::sync_ports(paths, &fwd).map_err(sys);
    }
    sync_foreign_forward(paths, bridges).map_err(sys)
}

// ---- a host firewall that drops forwarding ----
//
// Docker sets the FORWARD policy of iptables' filter table to DROP. A drop
// in any nftables chain is final, so berth's own table cannot override it:
// berth puts accept rules for its bridges, tagged with its root, at the head
// of that FORWARD chain whenever the chain exists (iptables-nft, and
// iptables-legacy when its filter table is loaded). Isolation between berth
// networks still holds: it is enforced by berth's own table.

fn foreign_tag(paths: &Paths) -> String {
    alias_prefix(paths).trim_end_matches(':').to_string()
}

/// Whether `ip filter FORWARD` drops by policy, and the handle and the
/// interface of each of this root's rules in it; None when that chain does
/// not exist. Read as nft's JSON, not by scraping its text.
pub fn foreign_forward_rules(paths: &Paths) -> Option<(bool, Vec<(u64, String)>)> {
    // Most hosts have no such chain: asking the kernel spares an nft run.
    if crate::sys::nft::chain_exists(libc::AF_INET as u8, "filter", "FORWARD") == Some(false) {
        return None;
    }
    let out = std::process::Command::new(crate::sys::proc::tool("nft")).args(["-j", "list", "chain", "ip", "filter", "FORWARD"]).stderr(std::process::Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(forward_rules_of(&v, &foreign_tag(paths)))
}

/// From `nft -j list chain`: the chain's drop policy, and (handle, the
/// interface it matches) of each rule commented `tag`.
fn forward_rules_of(v: &serde_json::Value, tag: &str) -> (bool, Vec<(u64, String)>) {
    let items = v["nftables"].as_array().cloned().unwrap_or_default();
    let drops = items.iter().any(|i| i["chain"]["policy"] == "drop");
    let rules = items
        .iter()
        .filter_map(|i| i.get("rule"))
        .filter(|r| r["comment"] == tag)
        .filter_map(|r| {
            let handle = r["handle"].as_u64()?;
            let ifname = r["expr"].as_array()?.iter().find_map(|e| {
                let m = &e["match"];
                matches!(m["left"]["meta"]["key"].as_str(), Some("iifname" | "oifname")).then(|| m["right"].as_str().map(str::to_string)).flatten()
            })?;
            Some((handle, ifname))
        })
        .collect();
    (drops, rules)
}

#[cfg(test)]
mod forward_tests {
    #[test]
    fn reads_nft_json() {
        let v: serde_json::Value = serde_json::from_str(r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
            {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 7, "comment": "berth-1a2b", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "br-0123"}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
            {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 9, "comment": "someone else", "expr": [{"accept": null}]}}]}"#).unwrap();
        assert_eq!(super::forward_rules_of(&v, "berth-1a2b"), (true, vec![(7, "br-0123".to_string())]));
    }
}

fn sync_foreign_forward(paths: &Paths, bridges: &[String]) -> std::io::Result<()> {
    let tag = foreign_tag(paths);
    if let Some((_, rules)) = foreign_forward_rules(paths) {
        let mut script = String::new();
        for (h, _) in &rules {
            script.push_str(&format!("delete rule ip filter FORWARD handle {h}\n"));
        }
        for b in bridges {
            for dir in ["oifname", "iifname"] {
                script.push_str(&format!("insert rule ip filter FORWARD {dir} \"{b}\" counter accept comment \"{tag}\"\n"));
            }
        }
        if !script.is_empty() {
            crate::sys::nft::run_in(None, &script)?;
        }
    }
    let legacy = std::fs::read_to_string("/proc/net/ip_tables_names").is_ok_and(|t| t.lines().any(|l| l == "filter"));
    if legacy {
        let ipt = |args: &[&str]| std::process::Command::new("iptables-legacy").arg("-w").args(args).stderr(std::process::Stdio::null()).output();
        if let Ok(out) = ipt(&["-S", "FORWARD"]) {
            for l in String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(&tag) && l.starts_with("-A ")) {
                let del: Vec<&str> = std::iter::once("-D").chain(l[3..].split_whitespace().map(|w| w.trim_matches('"'))).collect();
                let _ = ipt(&del);
            }
            for b in bridges {
                for dir in ["-o", "-i"] {
                    let _ = ipt(&["-I", "FORWARD", dir, b, "-m", "comment", "--comment", &tag, "-j", "ACCEPT"]);
                }
            }
        }
    }
    Ok(())
}

/// What the firewall balances for one service: its VIP and the addresses
/// of its serving replicas on its network. The service area computes it;
/// the type lives here so that the network area depends on no service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
pub struct Balance {
    /// The owner id of the service's endpoint and ports rows.
    pub owner: String,
    pub vip: Ipv4Addr,
    pub backends: Vec<Ipv4Addr>,
    /// Published ports (host port, target port, protocol) of a swarm
    /// service; a local service's are rows of the ports table.
    #[serde(default)]
    pub publish: Vec<(u16, u16, String)>,
}

/// The table's body from the store and the services' balancing; None when
/// there is no network.
pub fn firewall_rules(db: &Db, balancing: Vec<Balance>) -> Result<Option<String>> {
    let nets = list(db)?;
    if nets.is_empty() {
        return Ok(None);
    }
    let mut dnat = Vec::new();
    let mut rows: Vec<(String, String, u16, u16, String)> = Vec::new();
    {
        let mut st = db.conn.prepare("SELECT container_id, host_ip, host_port, container_port, proto FROM ports").map_err(StoreError::from)?;
        rows.extend(st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))).map_err(StoreError::from)?.filter_map(|r| r.ok()));
    }
    // Services: connections to a VIP or a service's published port are
    // spread round-robin over its serving replicas, by the kernel.
    let balance: std::collections::HashMap<String, Balance> = balancing.into_iter().map(|b| (b.owner.clone(), b)).collect();
    let spread = |b: &Balance| -> String {
        let m: Vec<String> = b.backends.iter().enumerate().map(|(i, ip)| format!("{i} : {ip}")).collect();
        format!("numgen inc mod {} map {{ {} }}", b.backends.len(), m.join(", "))
    };
    // A VIP with no serving replica is refused; being an address of the
    // host, it would otherwise reach whatever listens on the host itself.
    let mut refuse = Vec::new();
    let mut in_order: Vec<&Balance> = balance.values().collect();
    in_order.sort_by(|a, b| a.owner.cmp(&b.owner));
    for b in in_order {
        if b.backends.is_empty() {
            refuse.push(format!("ip daddr {} reject", b.vip));
        } else {
            dnat.push(format!("ip daddr {} dnat to {}", b.vip, spread(b)));
        }
    }
    refuse.sort();
    // Connections that came in through a published port may cross from one
    // of our networks to another, as docker's userland proxy lets them;
    // direct traffic between networks stays dropped below.
    let mut published = Vec::new();
    for (cid, host_ip, hp, cp, proto) in rows {
        // Rootless: slirp4netns listens on the host address and hands the
        // connection to the tap's address in the rootless namespace.
        let dst = if host_ip == "0.0.0.0" || crate::rootless::active() { "fib daddr type local".to_string() } else { format!("ip daddr {host_ip}") };
        if let Some(b) = balance.get(&cid) {
            if !b.backends.is_empty() {
                dnat.push(format!("{dst} {proto} dport {hp} dnat to {} : {cp}", spread(b)));
                for ip in &b.backends {
                    published.push(format!("ct status dnat ip daddr {ip} {proto} dport {cp} accept"));
                    published.push(format!("ct status dnat ip saddr {ip} {proto} sport {cp} accept"));
                }
            }
            continue;
        }
        let Some(ep) = endpoints_of_container(db, &cid)?.into_iter().next() else { continue };
        dnat.push(format!("{dst} {proto} dport {hp} dnat to {}:{cp}", ep.ip));
        published.push(format!("ct status dnat ip daddr {} {proto} dport {cp} accept", ep.ip));
        published.push(format!("ct status dnat ip saddr {} {proto} sport {cp} accept", ep.ip));
    }
    // The routing mesh: a swarm service's published port on every node.
    for b in balance.values().filter(|b| !b.publish.is_empty() && !b.backends.is_empty()) {
        for (hp, cp, proto) in &b.publish {
            dnat.push(format!("fib daddr type local {proto} dport {hp} dnat to {} : {cp}", spread(b)));
            for ip in &b.backends {
                published.push(format!("ct status dnat ip daddr {ip} {proto} dport {cp} accept"));
                published.push(format!("ct status dnat ip saddr {ip} {proto} sport {cp} accept"));
            }
        }
    }
    published.sort();
    published.dedup();
    let mut post = Vec::new();
    for n in &nets {
        // Egress NAT: containers reach upstream hosts as the host.
        post.push(format!("ip saddr {} oifname != \"{}\" masquerade", n.subnet, n.bridge));
        // Published ports reached from the host's loopback: the reply must
        // come back to the host, not to 127.0.0.1 inside the container.
        post.push(format!("ip saddr 127.0.0.0/8 oifname \"{}\" masquerade", n.bridge));
        // Hairpin: a container reaching a published port of a peer on the
        // same bridge through the host's address.
        post.push(format!("ip saddr {} ip daddr {} oifname \"{}\" ct status dnat masquerade", n.subnet, n.subnet, n.bridge));
        // Into an overlay, a redirected connection (a VIP, the mesh) leaves
        // as this node: a task on another node answers through here, not
        // through its own node, whose conntrack never saw it.
        if n.is_overlay() {
            post.push(format!("oifname \"{}\" ct status dnat masquerade", n.bridge));
        }
    }
    // Isolation: traffic from one of our networks to another through the
    // host is dropped (counted, so it can be seen); they meet only through
    // a container attached to both. Our own traffic is accepted here.
    let bridges: Vec<String> = nets.iter().map(|n| format!("\"{}\"", n.bridge)).collect();
    let mut fwd = published;
    for n in &nets {
        fwd.push(format!("iifname \"{0}\" oifname @bridges oifname != \"{0}\" counter drop", n.bridge));
    }
    fwd.push("iifname @bridges accept".to_string());
    fwd.push("oifname @bridges ct state established,related accept".to_string());
    let input = if refuse.is_empty() {
        String::new()
    } else {
        format!("  chain input {{\n    type filter hook input priority filter; policy accept;\n{}  }}\n", refuse.iter().map(|r| format!("    {r}\n")).collect::<String>())
    };
    let body = format!(
        "{input}  set bridges {{\n    type ifname\n    elements = {{ {} }}\n  }}\n  chain forward {{\n    type filter hook forward priority filter; policy accept;\n{}  }}\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n{}  }}\n  chain output {{\n    type nat hook output priority -100; policy accept;\n{}  }}\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n{}  }}",
        bridges.join(", "),
        fwd.iter().map(|r| format!("    {r}\n")).collect::<String>(),
        dnat.iter().map(|r| format!("    {r}\n")).collect::<String>(),
        dnat.iter().map(|r| format!("    {r}\n")).collect::<String>(),
        post.iter().map(|r| format!("    {r}\n")).collect::<String>(),
    );
    Ok(Some(body))
}

// ---- the picture ----

/// What `network graph` draws: networks, containers with their addresses,
/// and published ports.
pub struct Topology {
    pub networks: Vec<Network>,
    /// (container name, state, [(network name, address)], ["8080->80/tcp"])
    pub containers: Vec<(String, String, Vec<(String, String)>, Vec<String>)>,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn graph_dot(t: &Topology) -> String {
    let mut s = String::from("graph berth {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    for n in &t.networks {
        s.push_str(&format!("  \"net:{0}\" [shape=box, style=rounded, label=\"{0}\\n{1}\"];\n", esc(&n.name), esc(&n.subnet)));
    }
    for (name, state, eps, ports) in &t.containers {
        let mut label = format!("{}\\n{}", esc(name), esc(state));
        for p in ports {
            label.push_str(&format!("\\n{}", esc(p)));
        }
        s.push_str(&format!("  \"ctr:{}\" [shape=ellipse, label=\"{}\"];\n", esc(name), label));
        for (net, ip) in eps {
            s.push_str(&format!("  \"ctr:{}\" -- \"net:{}\" [label=\"{}\"];\n", esc(name), esc(net), esc(ip)));
        }
    }
    s.push_str("}\n");
    s
}

pub fn graph_mermaid(t: &Topology) -> String {
    let id = |p: &str, n: &str| format!("{p}_{}", n.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>());
    let mut s = String::from("graph LR\n");
    for n in &t.networks {
        s.push_str(&format!("  {}[\"{}<br/>{}\"]\n", id("net", &n.name), n.name, n.subnet));
    }
    for (name, state, eps, ports) in &t.containers {
        let extra: String = ports.iter().map(|p| format!("<br/>{p}")).collect();
        s.push_str(&format!("  {}((\"{}<br/>{}{}\"))\n", id("ctr", name), name, state, extra));
        for (net, ip) in eps {
            s.push_str(&format!("  {} ---|{}| {}\n", id("ctr", name), ip, id("net", net)));
        }
    }
    s
}

/// A self-contained SVG: networks as a row of boxes, containers below,
/// lines labelled with addresses.
pub fn graph_svg(t: &Topology) -> String {
    let (w_net, gap) = (180.0, 40.0);
    let width = ((t.networks.len().max(t.containers.len()).max(1)) as f64) * (w_net + gap) + gap;
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"320\" font-family=\"Helvetica\" font-size=\"12\">\n");
    let net_x = |i: usize| gap + i as f64 * (w_net + gap);
    let xml = |v: &str| v.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    for (ci, (_, _, eps, _)) in t.containers.iter().enumerate() {
        for (net, ip) in eps {
            if let Some(ni) = t.networks.iter().position(|n| &n.name == net) {
                let (x1, y1, x2, y2) = (net_x(ni) + w_net / 2.0, 70.0, net_x(ci) + w_net / 2.0, 220.0);
                s.push_str(&format!("  <line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"#888\"/>\n"));
                s.push_str(&format!("  <text x=\"{}\" y=\"{}\" fill=\"#555\">{}</text>\n", (x1 + x2) / 2.0 + 4.0, (y1 + y2) / 2.0, xml(ip)));
            }
        }
    }
    for (i, n) in t.networks.iter().enumerate() {
        let x = net_x(i);
        s.push_str(&format!("  <rect x=\"{x}\" y=\"20\" width=\"{w_net}\" height=\"50\" rx=\"8\" fill=\"#e8f0fe\" stroke=\"#4a6fa5\"/>\n"));
        s.push_str(&format!("  <text x=\"{}\" y=\"42\" font-weight=\"bold\">{}</text>\n", x + 10.0, xml(&n.name)));
        s.push_str(&format!("  <text x=\"{}\" y=\"60\">{}</text>\n", x + 10.0, xml(&n.subnet)));
    }
    for (i, (name, state, _, ports)) in t.containers.iter().enumerate() {
        let x = net_x(i);
        s.push_str(&format!("  <rect x=\"{x}\" y=\"220\" width=\"{w_net}\" height=\"{}\" rx=\"20\" fill=\"#fef7e0\" stroke=\"#b08800\"/>\n", 44 + 14 * ports.len()));
        s.push_str(&format!("  <text x=\"{}\" y=\"240\" font-weight=\"bold\">{}</text>\n", x + 12.0, xml(name)));
        s.push_str(&format!("  <text x=\"{}\" y=\"256\">{}</text>\n", x + 12.0, xml(state)));
        for (k, p) in ports.iter().enumerate() {
            s.push_str(&format!("  <text x=\"{}\" y=\"{}\">{}</text>\n", x + 12.0, 270 + 14 * k, xml(p)));
        }
    }
    s.push_str("</svg>\n");
    s
}
