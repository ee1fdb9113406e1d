//! The data plane of one overlay network on one node: a Linux bridge that
//! the node's containers attach to, and a VXLAN device for the network's
//! VNI as one of its ports. Learning is off on both the device and its
//! bridge port, so every way out of the node is an entry the control plane
//! pushed:
//!
//! - the flood list (all-zero MAC -> each remote VTEP) carries broadcasts,
//!   ARP for addresses nobody pushed, and unknown unicast;
//! - per remote endpoint, its MAC -> its node's VTEP on the VXLAN device, a
//!   static MAC -> VXLAN port entry in the bridge, and a permanent
//!   neighbour ip -> MAC on the bridge. With `neigh_suppress` on the VXLAN
//!   port the bridge answers a container's ARP for a remote endpoint from
//!   that neighbour itself, so no ARP crosses the underlay.
//!
//! Every function takes the [`Netlink`] of the node's namespace and is
//! idempotent, so an agent can replay the store's state after a restart.

use std::io;
use std::net::Ipv4Addr;

use crate::sys::netlink::Netlink;

/// The IANA port for VXLAN.
pub const DEFAULT_PORT: u16 = 4789;
/// 1500 minus the 50 bytes VXLAN adds over IPv4 (outer IP, UDP, VXLAN
/// header, inner Ethernet).
pub const DEFAULT_MTU: u32 = 1450;

const FLOOD: [u8; 6] = [0; 6];

#[derive(thiserror::Error, Debug)]
pub enum OverlayError {
    #[error("overlay VNI {vni} on {bridge}: {source}")]
    System { bridge: String, vni: u32, source: io::Error },
    #[error(
        "overlay VNI {vni} on {bridge}: the device {vxlan} already exists with other settings ({found}); take the overlay down on this node (or `ip link del {vxlan}`) and bring it up again"
    )]
    Mismatch { bridge: String, vni: u32, vxlan: String, found: String },
}

pub type Result<T> = std::result::Result<T, OverlayError>;

/// One overlay network's devices on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayNode {
    pub bridge: String,
    pub vxlan: String,
    pub vni: u32,
    /// This node's VTEP address: the source of its outer packets, and what
    /// the other nodes put in their FDB entries for it.
    pub local: Ipv4Addr,
    pub port: u16,
    pub mtu: u32,
    /// The underlay link the VXLAN device is bound to, if any.
    pub underlay: Option<String>,
}

/// One remote endpoint, as the VXLAN device's table holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteEndpoint {
    pub mac: [u8; 6],
    pub vtep: Ipv4Addr,
}

impl OverlayNode {
    /// The devices of the network `network_id` with the defaults (port
    /// 4789, MTU 1450). Names are `ov-` and `vx-` and the id's first 12
    /// characters, as bridge networks use `br-`: 15 bytes, IFNAMSIZ's limit.
    pub fn new(network_id: &str, vni: u32, local: Ipv4Addr) -> OverlayNode {
        let short = network_id.get(..12).unwrap_or(network_id);
        OverlayNode {
            bridge: format!("ov-{short}"),
            vxlan: format!("vx-{short}"),
            vni,
            local,
            port: DEFAULT_PORT,
            mtu: DEFAULT_MTU,
            underlay: None,
        }
    }

    /// Creates what is missing of the bridge and the VXLAN device, enslaves
    /// the device, sets the MTU and the port flags, and brings both up.
    /// A VXLAN device of that name with another VNI, address or port is a
    /// [`OverlayError::Mismatch`]: it is left as it is.
    pub fn up(&self, nl: &Netlink) -> Result<()> {
        nl.create_bridge(&self.bridge).map_err(|e| self.err(e))?;
        let mut info = nl.vxlan_info(&self.vxlan).map_err(|e| self.err(e))?;
        if info.is_none() {
            match nl.create_vxlan(&self.vxlan, self.vni, self.local, self.underlay.as_deref(), self.port) {
                Ok(_) => {}
                // The agent and a command can bring the same overlay up at
                // once: the other one's device is checked like any found one.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    info = nl.vxlan_info(&self.vxlan).map_err(|e| self.err(e))?;
                }
                Err(e) => return Err(self.err(e)),
            }
        }
        match info {
            None => {}
            Some(found) => {
                let dev = match &self.underlay {
                    Some(u) => nl.link_index(u).map_err(|e| self.err(e))?,
                    None => None,
                };
                if found.vni != self.vni || found.local != Some(self.local) || found.port != self.port || found.learning || found.dev != dev {
                    return Err(OverlayError::Mismatch {
                        bridge: self.bridge.clone(),
                        vni: self.vni,
                        vxlan: self.vxlan.clone(),
                        found: format!(
                            "VNI {}, local {}, port {}, learning {}",
                            found.vni,
                            found.local.map_or("unset".into(), |a| a.to_string()),
                            found.port,
                            if found.learning { "on" } else { "off" }
                        ),
                    });
                }
            }
        }
        let steps = || -> io::Result<()> {
            nl.set_mtu(&self.vxlan, self.mtu)?;
            nl.set_mtu(&self.bridge, self.mtu)?;
            nl.set_master(&self.vxlan, &self.bridge)?;
            nl.set_port_learning(&self.vxlan, false)?;
            nl.set_port_neigh_suppress(&self.vxlan, true)?;
            nl.set_up(&self.vxlan)?;
            nl.set_up(&self.bridge)
        };
        steps().map_err(|e| self.err(e))
    }

    /// Removes the VXLAN device and the bridge, and with them every entry
    /// pushed to them. What is already gone is fine.
    pub fn down(&self, nl: &Netlink) -> Result<()> {
        nl.delete_link(&self.vxlan).map_err(|e| self.err(e))?;
        nl.delete_link(&self.bridge).map_err(|e| self.err(e))
    }

    /// Adds the node at `vtep` to the flood list. This node's own address
    /// is skipped, so the caller may push the whole list of nodes.
    pub fn add_remote_vtep(&self, nl: &Netlink, vtep: Ipv4Addr) -> Result<()> {
        if vtep == self.local {
            return Ok(());
        }
        nl.fdb_add(&self.vxlan, FLOOD, vtep).map_err(|e| self.err(e))
    }

    /// Takes the node at `vtep` off the flood list.
    pub fn del_remote_vtep(&self, nl: &Netlink, vtep: Ipv4Addr) -> Result<()> {
        nl.fdb_del(&self.vxlan, FLOOD, Some(vtep)).map_err(|e| self.err(e))
    }

    /// The flood list: the remote nodes broadcasts go to.
    pub fn remote_vteps(&self, nl: &Netlink) -> Result<Vec<Ipv4Addr>> {
        let fdb = nl.fdb_list(&self.vxlan).map_err(|e| self.err(e))?;
        Ok(fdb.iter().filter(|e| e.own && e.mac == FLOOD).filter_map(|e| e.dst).collect())
    }

    /// Makes the endpoint `mac`/`ip` on the node at `vtep` reachable from
    /// this node's containers without ARP or flooding. An endpoint moved to
    /// another node is updated in place. One on this node (`vtep` is the
    /// local address) is skipped: the bridge finds it on its own port.
    pub fn add_endpoint(&self, nl: &Netlink, mac: [u8; 6], ip: Ipv4Addr, vtep: Ipv4Addr) -> Result<()> {
        if vtep == self.local {
            return Ok(());
        }
        let steps = || -> io::Result<()> {
            nl.fdb_add(&self.vxlan, mac, vtep)?;
            nl.bridge_fdb_add(&self.vxlan, mac)?;
            nl.neigh_add(&self.bridge, ip, mac)
        };
        steps().map_err(|e| self.err(e))
    }

    /// Removes what [`OverlayNode::add_endpoint`] pushed for `mac`/`ip` at
    /// `vtep`. Entries that point elsewhere by now (the endpoint moved to
    /// another node, the address went to another endpoint) belong to a
    /// newer endpoint and stay.
    pub fn del_endpoint(&self, nl: &Netlink, mac: [u8; 6], ip: Ipv4Addr, vtep: Ipv4Addr) -> Result<()> {
        let steps = || -> io::Result<()> {
            nl.fdb_del(&self.vxlan, mac, Some(vtep))?;
            let moved = nl.fdb_list(&self.vxlan)?.iter().any(|e| e.own && e.mac == mac);
            if !moved {
                nl.bridge_fdb_del(&self.vxlan, mac)?;
            }
            if nl.neigh_list(&self.bridge)?.iter().any(|n| n.ip == ip && n.mac == Some(mac)) {
                nl.neigh_del(&self.bridge, ip)?;
            }
            Ok(())
        };
        steps().map_err(|e| self.err(e))
    }

    /// The remote endpoints pushed to the VXLAN device.
    pub fn remote_endpoints(&self, nl: &Netlink) -> Result<Vec<RemoteEndpoint>> {
        let fdb = nl.fdb_list(&self.vxlan).map_err(|e| self.err(e))?;
        Ok(fdb
            .iter()
            // Group bits set: the flood list and the device's multicast
            // addresses, not endpoints.
            .filter(|e| e.own && e.mac[0] & 1 == 0 && e.mac != FLOOD)
            .filter_map(|e| Some(RemoteEndpoint { mac: e.mac, vtep: e.dst? }))
            .collect())
    }

    fn err(&self, source: io::Error) -> OverlayError {
        OverlayError::System { bridge: self.bridge.clone(), vni: self.vni, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz() {
        let n = OverlayNode::new("3f1c9a7b22d04e6a8c1d00aa", 4242, Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(n.bridge, "ov-3f1c9a7b22d0");
        assert_eq!(n.vxlan, "vx-3f1c9a7b22d0");
        assert!(n.bridge.len() <= crate::sys::netlink::MAX_IFNAME && n.vxlan.len() <= crate::sys::netlink::MAX_IFNAME);
        assert_eq!((n.port, n.mtu), (4789, 1450));
        let short = OverlayNode::new("abc", 1, Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(short.vxlan, "vx-abc");
    }
}
