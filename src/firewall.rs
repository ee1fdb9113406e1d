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

/// Rewrites the table from the store; call it after committing the change
/// it must reflect. The lock orders concurrent writers, and a writer that
/// waited for it skips its own rewrite when one that began reading the
/// store after this call has completed meanwhile (it saw the change too):
/// twenty replicas starting at once write the table two or three times,
/// not twenty.
pub fn sync(paths: &Paths, db: &Db) -> Result<()> {
    sync_with(paths, || read(db))
}

/// What the table is made of, read from the store: the body, the bridges,
/// the published ports.
pub type State = (Option<String>, Vec<String>, Vec<network::Published>);

/// The store's state for the table.
pub fn read(db: &Db) -> Result<State> {
    Ok((rules(db)?, network::bridges(db)?, network::all_published(db)?))
}

/// `sync`, with the store read by `state` (the engine reads through its
/// shared connection and releases it before nft runs).
pub fn sync_with(paths: &Paths, state: impl FnOnce() -> Result<State>) -> Result<()> {
    let asked = monotonic_ns();
    let _lock = network::firewall_lock(paths);
    let done = paths.run.join("firewall.done");
    // The clock restarts with the host: a mark from another boot says nothing.
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let boot = boot.trim();
    let last = std::fs::read_to_string(&done).ok().and_then(|s| s.strip_prefix(boot)?.trim().parse::<u128>().ok());
    if !boot.is_empty() && last.is_some_and(|l| l > asked) {
        return Ok(());
    }
    let began = monotonic_ns();
    let (rules, bridges, published) = state()?;
    network::apply_firewall(paths, rules.as_deref(), &bridges, &published)?;
    // Under the lock, so no other writer races this one.
    let _ = std::fs::write(&done, format!("{boot} {began}"));
    Ok(())
}

/// CLOCK_MONOTONIC, the same in every process of the host (berth starts
/// no time namespaces).
fn monotonic_ns() -> u128 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map(|t| t.tv_sec() as u128 * 1_000_000_000 + t.tv_nsec() as u128).unwrap_or(0)
}
