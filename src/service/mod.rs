//! Services: replicas of one container spec behind a virtual IP. The VIP is
//! an address of the service's network (an endpoint row owned by
//! `svc:<id>`, so IPAM never hands it out twice) that the host answers for;
//! the network's nftables table spreads connections to it, and to the
//! service's published ports, over the replicas that are running and
//! healthy (`numgen inc`, no proxy in the data path). Replicas are ordinary
//! containers named `<service>.<slot>` whose restart policy (always, by
//! default) lets their monitors restart them. What a monitor cannot bring
//! back (a replica killed, stopped or removed, or its monitor dead) the
//! service's supervisor replaces (engine/supervisor.rs): one small process
//! per service, so a host without services runs no berth process at all.

pub mod compose;
pub mod ops;
pub mod stack;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::container::{self, RunSpec};
use crate::store::{self, Db, StoreError};

pub const SERVICE_LABEL: &str = "berth.service";
pub const SLOT_LABEL: &str = "berth.service.slot";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("no such service: {0}")]
    NotFound(String),
    #[error("service {0} already exists (with other settings: remove it or use scale/update)")]
    Exists(String),
    #[error("service {name}: {msg}")]
    Invalid { name: String, msg: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T> = std::result::Result<T, ServiceError>;

/// How a rolling update proceeds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct UpdateConfig {
    /// Replicas replaced at a time.
    pub parallelism: u32,
    /// Pause between batches.
    pub delay_ms: u64,
    /// How long a new replica must keep serving (no exit, restart or
    /// failed check) before the next one is replaced; docker's
    /// --update-monitor (which defaults to 5 s).
    pub monitor_ms: u64,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig { parallelism: 1, delay_ms: 0, monitor_ms: 2_000 }
    }
}

/// What a user asks for: the replicas' container spec and the service's own
/// settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct ServiceSpec {
    pub name: String,
    pub replicas: u32,
    /// Each replica's spec (its name, network and published ports are the
    /// service's).
    pub template: RunSpec,
    /// Published on the service, balanced over the replicas.
    pub publish: Vec<String>,
    pub network: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub update: UpdateConfig,
    /// More names for the VIP (a stack's short service name).
    pub aliases: Vec<String>,
    /// Networks each replica joins besides the service's: (network, aliases).
    pub extra_networks: Vec<(String, Vec<String>)>,
    /// The template's restart policy was chosen (else "no" means the
    /// default, "any").
    pub restart_explicit: bool,
    /// What the last successful update replaced, for `service rollback`.
    pub previous: Option<Previous>,
    /// Recorded until its create is complete: a create cut short is rolled
    /// back by `system check --repair`, not mistaken for a scaled service.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub creating: bool,
}

/// The parts of a template an update changes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Previous {
    pub image: String,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
}

#[derive(Serialize, Clone, Debug)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub spec: ServiceSpec,
    pub network_id: String,
    pub vip: Ipv4Addr,
    pub created: String,
    /// Replicas on their way out: no new connections go to them.
    pub draining: Vec<String>,
}

impl Service {
    /// The owner id of the service's endpoint and ports rows.
    pub fn owner(&self) -> String {
        owner(&self.id)
    }
}

pub fn owner(id: &str) -> String {
    format!("svc:{id}")
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS services(
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, spec TEXT NOT NULL, network_id TEXT NOT NULL,
    vip TEXT NOT NULL, created TEXT NOT NULL, draining TEXT NOT NULL DEFAULT '[]'
);";

/// Makes the services table (see `network::make_tables`).
pub(crate) fn make_tables(db: &Db) -> std::result::Result<(), StoreError> {
    Ok(db.conn.execute_batch(SCHEMA)?)
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<Service> {
    let spec: String = r.get(2)?;
    let vip: String = r.get(4)?;
    let draining: String = r.get(6)?;
    Ok(Service {
        id: r.get(0)?,
        name: r.get(1)?,
        spec: serde_json::from_str(&spec).unwrap_or_default(),
        network_id: r.get(3)?,
        vip: vip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
        created: r.get(5)?,
        draining: serde_json::from_str(&draining).unwrap_or_default(),
    })
}

const COLS: &str = "id, name, spec, network_id, vip, created, draining";

pub fn list(db: &Db) -> Result<Vec<Service>> {
    let mut st = db.conn.prepare(&format!("SELECT {COLS} FROM services ORDER BY name")).map_err(StoreError::from)?;
    let v = st.query_map([], row).map_err(StoreError::from)?.filter_map(|r| r.ok()).collect();
    Ok(v)
}

pub fn get(db: &Db, key: &str) -> Result<Service> {
    match store::lookup(&db.conn, &format!("SELECT {COLS} FROM services"), key, row)? {
        store::Found::One(s) => Ok(s),
        store::Found::Many(n) => Err(ServiceError::Invalid { name: key.to_string(), msg: format!("{n} services have ids starting with {key}; give more of the id or the name") }),
        store::Found::None => Err(ServiceError::NotFound(key.to_string())),
    }
}

/// Records a new service (its VIP is allocated by the caller through the
/// network area, under the owner id returned).
pub fn insert(db: &mut Db, spec: &ServiceSpec, network_id: &str, vip: Ipv4Addr, id: &str) -> Result<()> {
    let text = serde_json::to_string(spec).unwrap_or_default();
    let now = store::now_rfc3339();
    db.write(|tx| {
        tx.execute(
            "INSERT INTO services(id, name, spec, network_id, vip, created) VALUES(?1,?2,?3,?4,?5,?6)",
            rusqlite::params![id, spec.name, text, network_id, vip.to_string(), now],
        )?;
        Ok(())
    })
    .map_err(|e| match e {
        StoreError::Sql(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => ServiceError::Exists(spec.name.clone()),
        e => e.into(),
    })
}

pub fn set_spec(db: &mut Db, id: &str, spec: &ServiceSpec) -> Result<()> {
    let text = serde_json::to_string(spec).unwrap_or_default();
    db.write(|tx| Ok(tx.execute("UPDATE services SET spec=?2 WHERE id=?1", rusqlite::params![id, text])?))?;
    Ok(())
}

pub fn set_draining(db: &mut Db, id: &str, draining: &[String]) -> Result<()> {
    let text = serde_json::to_string(draining).unwrap_or_default();
    db.write(|tx| Ok(tx.execute("UPDATE services SET draining=?2 WHERE id=?1", rusqlite::params![id, text])?))?;
    Ok(())
}

pub fn delete(db: &mut Db, id: &str) -> Result<()> {
    db.write(|tx| Ok(tx.execute("DELETE FROM services WHERE id=?1", [id])?))?;
    Ok(())
}

/// A service's replicas, by slot (several per slot during an update).
pub fn replicas(db: &Db, name: &str) -> Result<Vec<(u32, container::Container)>> {
    let mut v: Vec<(u32, container::Container)> = container::list(db)
        .map_err(|e| ServiceError::Invalid { name: name.to_string(), msg: e.to_string() })?
        .into_iter()
        .filter(|c| c.spec.labels.get(SERVICE_LABEL).map(String::as_str) == Some(name))
        .map(|c| (c.spec.labels.get(SLOT_LABEL).and_then(|s| s.parse().ok()).unwrap_or(0), c))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.created.cmp(&b.1.created)));
    Ok(v)
}

/// A replica takes traffic while it runs, is healthy (or has no check),
/// holds a slot the service still wants, and is not draining.
pub fn serving(s: &Service, slot: u32, c: &container::Container) -> bool {
    c.state == "running" && (c.health.status.is_empty() || c.health.status == "healthy") && slot >= 1 && slot <= s.spec.replicas && !s.draining.contains(&c.id)
}

/// Each service's VIP and the addresses of its serving replicas on its
/// network: what the firewall balances.
pub fn balancing(db: &Db) -> Result<Vec<crate::network::Balance>> {
    let mut out = Vec::new();
    for s in list(db)? {
        let mut backends = Vec::new();
        for (slot, c) in replicas(db, &s.name)? {
            if !serving(&s, slot, &c) {
                continue;
            }
            let eps = crate::network::endpoints_of_container(db, &c.id).unwrap_or_default();
            if let Some(ep) = eps.iter().find(|e| e.network.id == s.network_id) {
                backends.push(ep.ip);
            }
        }
        out.push(crate::network::Balance { owner: s.owner(), vip: s.vip, backends, publish: Vec::new() });
    }
    Ok(out)
}

/// The replica's container spec for one slot.
pub fn replica_spec(s: &ServiceSpec, slot: u32, name: &str) -> RunSpec {
    let mut r = s.template.clone();
    r.name = Some(name.to_string());
    r.network = s.network.clone();
    r.publish = vec![];
    r.publish_all = false;
    r.rm = false;
    r.labels.extend(s.labels.clone());
    r.labels.insert(SERVICE_LABEL.into(), s.name.clone());
    r.labels.insert(SLOT_LABEL.into(), slot.to_string());
    // Each replica answers to its own name, where the kernel allows it.
    if r.hostname.is_none() && name.len() <= 64 {
        r.hostname = Some(name.to_string());
    }
    r
}

/// Checks a spec before anything is made.
pub fn validate(s: &ServiceSpec) -> Result<()> {
    let bad = |msg: &str| Err(ServiceError::Invalid { name: s.name.clone(), msg: msg.to_string() });
    if s.name.is_empty() || !s.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') || !s.name.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("a service name is letters, digits, - and _, starting with a letter or digit (replicas are named NAME.1, NAME.2, ...)");
    }
    if s.template.image.is_empty() {
        return bad("an image is required");
    }
    if s.template.name.is_some() {
        return bad("replicas are named by the service; drop the container name");
    }
    if s.template.ip.is_some() && s.replicas > 1 {
        return bad("a service with a fixed address (ip, ipv4_address) has one replica: two cannot hold one address");
    }
    if s.update.parallelism == 0 {
        return bad("update parallelism must be at least 1");
    }
    Ok(())
}

/// Parses `NAME=N` of `service scale`.
pub fn parse_scale(arg: &str) -> std::result::Result<(String, u32), String> {
    let (n, c) = arg.split_once('=').ok_or_else(|| format!("invalid scale {arg:?}: use SERVICE=REPLICAS, e.g. api=5"))?;
    let c: u32 = c.parse().map_err(|_| format!("invalid scale {arg:?}: {c:?} is not a number of replicas"))?;
    Ok((n.to_string(), c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_arguments() {
        assert_eq!(parse_scale("api=5").unwrap(), ("api".into(), 5));
        assert!(parse_scale("api").unwrap_err().contains("SERVICE=REPLICAS"));
        assert!(parse_scale("api=many").unwrap_err().contains("not a number"));
    }

    #[test]
    fn replica_specs_carry_the_service() {
        let s = ServiceSpec { name: "api".into(), replicas: 2, template: RunSpec { image: "web".into(), ..Default::default() }, network: Some("n".into()), publish: vec!["8080:80".into()], ..Default::default() };
        let r = replica_spec(&s, 2, "api.2");
        assert_eq!((r.name.as_deref(), r.network.as_deref(), r.hostname.as_deref()), (Some("api.2"), Some("n"), Some("api.2")));
        assert!(r.publish.is_empty(), "ports are the service's");
        assert_eq!(r.labels.get(SLOT_LABEL).map(String::as_str), Some("2"));
        assert!(validate(&ServiceSpec { name: "a.b".into(), ..s.clone() }).is_err());
        assert!(validate(&s).is_ok());
    }
}
