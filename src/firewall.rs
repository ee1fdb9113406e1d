//! This root's nftables table, rebuilt from the store: egress NAT for each
//! network, DNAT for every published port (from outside, from the host
//! itself including loopback, and from other containers), and services'
//! balancing. Above both the network and the service areas, so that neither
//! calls the other; the engine and the monitor both sync through here.

use crate::network::{self, NetworkError, Result};
use crate::store::{Db, Paths};

/// The table's body the store calls for; None with no network.
pub fn rules(db: &Db) -> Result<Option<String>> {
    let mut balancing = crate::service::balancing(db).map_err(|e| NetworkError::System { net: "services".into(), err: std::io::Error::other(e.to_string()) })?;
    balancing.extend(network::mesh(db)?);
    network::firewall_rules(db, balancing)
}

/// Rewrites the table now; the lock orders concurrent writers.
pub fn sync(paths: &Paths, db: &Db) -> Result<()> {
    let _lock = network::firewall_lock(paths);
    let rules = rules(db)?;
    network::apply_firewall(paths, rules.as_deref(), &network::bridges(db)?, &network::all_published(db)?)
}
