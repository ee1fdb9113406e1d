//! The swarm's records in etcd, and where each lives. Every key is under
//! `/berth/`; values are JSON. Records a node's lease holds vanish with the
//! node: its liveness (`alive/`) and the states it reports (`status/`).
//!
//! ```text
//! /berth/cluster                 Cluster: id, join tokens, etcd endpoints
//! /berth/nodes/<node>            NodeRecord: name, address, role, availability, labels
//! /berth/alive/<node>            "1", under the node agent's lease (its heartbeat)
//! /berth/leader                  the leading manager's node id, under its lease
//! /berth/services/<id>           ClusterService: spec, mode, constraints
//! /berth/tasks/<id>              Task: service, slot, node (the leader writes)
//! /berth/status/<task>           TaskStatus: what the node made of it (the node writes)
//! /berth/networks/<id>           Overlay: name, VNI, subnet
//! /berth/ipam/<net>/<ip>         who holds an overlay address (create-if-absent)
//! /berth/endpoints/<net>/<name>  Endpoint: ip, mac, node's VTEP, for FDB and names
//!                                (`@<node>`: a node's own address on the overlay)
//! /berth/netnames/<name>         the overlay's id: names are unique (create-if-absent)
//! /berth/vni/<vni>               the overlay holding a VXLAN id (create-if-absent)
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::schedule::{Availability, Constraint, Mode, Role};

pub const ROOT: &str = "/berth/";

pub fn cluster_key() -> String {
    format!("{ROOT}cluster")
}
pub fn node_key(id: &str) -> String {
    format!("{ROOT}nodes/{id}")
}
pub fn alive_key(id: &str) -> String {
    format!("{ROOT}alive/{id}")
}
pub fn leader_key() -> String {
    format!("{ROOT}leader")
}
pub fn service_key(id: &str) -> String {
    format!("{ROOT}services/{id}")
}
pub fn task_key(id: &str) -> String {
    format!("{ROOT}tasks/{id}")
}
pub fn status_key(task: &str) -> String {
    format!("{ROOT}status/{task}")
}
pub fn network_key(id: &str) -> String {
    format!("{ROOT}networks/{id}")
}
pub fn ipam_key(net: &str, ip: Ipv4Addr) -> String {
    format!("{ROOT}ipam/{net}/{ip}")
}
pub fn endpoint_key(net: &str, name: &str) -> String {
    format!("{ROOT}endpoints/{net}/{name}")
}
pub fn netname_key(name: &str) -> String {
    format!("{ROOT}netnames/{name}")
}
pub fn vni_key(vni: u32) -> String {
    format!("{ROOT}vni/{vni}")
}
/// The endpoint name of a node's own address on an overlay.
pub fn node_endpoint(node: &str) -> String {
    format!("@{node}")
}

/// The last path element of a key under `prefix`.
pub fn id_of<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    key.strip_prefix(prefix).filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Cluster {
    pub id: String,
    pub created: String,
    /// `SWMTKN-1-<cluster id>-<secret>`, one for each role.
    pub worker_token: String,
    pub manager_token: String,
    /// Client URLs of the etcd members.
    pub etcd: Vec<String>,
    /// The UDP port of overlays' VXLAN traffic (0: 4789).
    #[serde(default)]
    pub data_path_port: u16,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct NodeRecord {
    pub id: String,
    pub name: String,
    /// The underlay address other nodes reach it at (its VTEP).
    pub addr: Option<Ipv4Addr>,
    pub role: Role,
    pub availability: Availability,
    pub labels: BTreeMap<String, String>,
    pub joined: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ClusterService {
    pub id: String,
    pub name: String,
    pub mode: Mode,
    pub constraints: Vec<Constraint>,
    /// The replicas' container spec and service settings, as on one host.
    pub spec: crate::service::ServiceSpec,
    /// Bumped on every update, so tasks of an older one are replaced.
    pub version: u64,
    /// The overlay its tasks attach to, its VIP there, and its ports
    /// published on every node (the routing mesh).
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub vip: Option<Ipv4Addr>,
    #[serde(default)]
    pub publish: Vec<(u16, u16, String)>,
    /// The rolling update in progress or last done; the leader drives it.
    #[serde(default)]
    pub update_status: Option<UpdateStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct UpdateStatus {
    /// "updating", "completed", "rolling_back", "rolled_back" or "paused".
    pub state: String,
    /// Why it rolled back or paused.
    pub message: String,
    /// When the last batch of tasks was replaced (ms since the epoch).
    pub last_batch_ms: u64,
    /// What `service rollback` went back to before this update, restored
    /// with the old spec when the update rolls back.
    #[serde(default)]
    pub prior: Option<crate::service::Previous>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Task {
    pub id: String,
    pub service: String,
    pub slot: u32,
    pub node: String,
    pub version: u64,
    pub created: String,
    /// The image the task runs (its service's when it was made).
    #[serde(default)]
    pub image: String,
}

impl Task {
    /// The container's name on its node: `web.3` (replicated) or
    /// `web.<node>` (global), as swarm names them without the task id.
    pub fn container_name(&self, service: &str) -> String {
        if self.slot == 0 { format!("{service}.{}", &self.node[..12.min(self.node.len())]) } else { format!("{service}.{}", self.slot) }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct TaskStatus {
    /// "starting", "running", "failed", "shutdown".
    pub state: String,
    pub container: String,
    pub error: String,
    pub at: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Overlay {
    pub id: String,
    pub name: String,
    pub vni: u32,
    pub subnet: String,
    pub gateway: Ipv4Addr,
    pub attachable: bool,
    pub port: u16,
    pub mtu: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub created: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub name: String,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub node: String,
    pub vtep: Ipv4Addr,
    pub aliases: Vec<String>,
}

/// `SWMTKN-1-<cluster>-<secret>`: the cluster it joins and the secret
/// that proves the joiner was given it.
pub fn parse_token(t: &str) -> Result<(String, String), String> {
    let rest = t.strip_prefix("SWMTKN-1-").ok_or_else(|| "invalid join token: it starts with SWMTKN-1- (berth swarm join-token worker prints one)".to_string())?;
    let (cluster, secret) = rest.split_once('-').ok_or_else(|| "invalid join token: it has no secret part".to_string())?;
    if cluster.is_empty() || secret.len() < 16 {
        return Err("invalid join token: too short".into());
    }
    Ok((cluster.to_string(), secret.to_string()))
}

pub fn make_token(cluster: &str) -> String {
    let mut b = [0u8; 16];
    crate::store::getrandom(&mut b);
    format!("SWMTKN-1-{cluster}-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_ids() {
        assert_eq!(node_key("n1"), "/berth/nodes/n1");
        assert_eq!(id_of("/berth/nodes/n1", "/berth/nodes/"), Some("n1"));
        assert_eq!(id_of("/berth/nodes/", "/berth/nodes/"), None);
        assert_eq!(id_of("/berth/ipam/a/10.0.0.1", "/berth/ipam/"), None);
        assert_eq!(ipam_key("net", Ipv4Addr::new(10, 42, 0, 2)), "/berth/ipam/net/10.42.0.2");
    }

    #[test]
    fn tokens_round_trip_and_refuse_junk() {
        let t = make_token("abc123");
        assert_eq!(parse_token(&t).unwrap().0, "abc123");
        for bad in ["", "SWMTKN-1-", "SWMTKN-1-abc", "SWMTKN-2-abc-0123456789abcdef0123", "SWMTKN-1-abc-short"] {
            assert!(parse_token(bad).unwrap_err().contains("join token"), "{bad}");
        }
    }

    #[test]
    fn task_container_names() {
        let t = Task { id: "t".into(), service: "s".into(), slot: 3, node: "n".into(), version: 1, created: String::new(), image: String::new() };
        assert_eq!(t.container_name("web"), "web.3");
        let g = Task { slot: 0, node: "0123456789abcdef".into(), ..t };
        assert_eq!(g.container_name("web"), "web.0123456789ab");
    }

    #[test]
    fn records_read_what_they_write() {
        let n = NodeRecord { id: "n".into(), name: "h0".into(), addr: Some(Ipv4Addr::new(10, 99, 0, 1)), role: Role::Manager, availability: Availability::Drain, ..Default::default() };
        let back: NodeRecord = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(back, n);
        let v: serde_json::Value = serde_json::to_value(&n).unwrap();
        assert_eq!((v["role"].as_str(), v["availability"].as_str()), (Some("manager"), Some("drain")));
    }
}
