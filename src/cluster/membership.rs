//! What a node knows of its swarm, kept in its root (`swarm.json`): which
//! cluster, which node it is, and how to reach etcd. Everything else lives
//! in etcd.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::schedule::Role;
use crate::store::Paths;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Membership {
    pub cluster: String,
    pub node: String,
    pub name: String,
    pub role: Role,
    pub addr: Ipv4Addr,
    /// etcd client URLs this node talks to.
    pub etcd: Vec<String>,
    /// The etcd member this node runs, if any (by name).
    pub member: Option<String>,
}

pub fn path(paths: &Paths) -> PathBuf {
    paths.root.join("swarm.json")
}

pub fn load(paths: &Paths) -> Option<Membership> {
    std::fs::read(path(paths)).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

pub fn save(paths: &Paths, m: &Membership) -> std::io::Result<()> {
    let tmp = path(paths).with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(m).map_err(std::io::Error::other)?)?;
    std::fs::rename(tmp, path(paths))
}

pub fn remove(paths: &Paths) {
    let _ = std::fs::remove_file(path(paths));
}

/// Where this node's etcd member keeps its data, log and pid.
pub fn etcd_dir(paths: &Paths) -> PathBuf {
    paths.root.join("etcd")
}
