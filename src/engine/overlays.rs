//! Overlay networks: one L2 network across the swarm's nodes. The record,
//! the addresses and who holds them are etcd's (cluster/model.rs); each
//! node keeps a copy as an ordinary network row with its own bridge and
//! VXLAN device (network/overlay.rs) and its own address on the network,
//! which its containers use as their gateway. The node agent keeps the
//! kernel's forwarding entries and the hosts files in step with etcd.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use super::swarm::list_json;
use super::{Engine, EngineError, Result};
use crate::cluster::etcd::Etcd;
use crate::cluster::membership::Membership;
use crate::cluster::model::{self, ClusterService, Overlay};
use crate::cluster::schedule::Role;
use crate::network::{self, ipam::Subnet, Network, NetworkSpec};
use crate::sys::netlink::Netlink;

/// VXLAN ids below this are left to other users of the kernel's VXLAN.
const VNI_BASE: u32 = 4097;
/// docker's ingress: the network of published ports without a network.
pub const INGRESS: &str = "ingress";

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Other(e.to_string())
}

fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Options of `network create -d overlay`.
#[derive(Debug, Clone, Default)]
pub struct OverlayOpts {
    pub attachable: bool,
    pub mtu: Option<u32>,
    pub port: Option<u16>,
}

impl Engine {
    /// `network create -d overlay`: on a manager, recorded in etcd (name,
    /// VNI and subnet unique across the swarm), then made on this node;
    /// the other nodes' agents make it on theirs.
    pub fn overlay_create(&self, spec: &NetworkSpec, opts: &OverlayOpts) -> Result<Network> {
        let name = spec.name.clone();
        let (m, etcd) = self
            .swarm_etcd()
            .map_err(|_| err(format!("network {name}: an overlay network spans a swarm's nodes, and this node is in none; run `berth swarm init` (or join one) first")))?;
        if m.role != Role::Manager {
            return Err(err(format!("network {name}: only a manager creates overlay networks, and this node is a worker; run it on a manager")));
        }
        let ok = !name.is_empty() && name.as_bytes()[0].is_ascii_alphanumeric() && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
        if !ok {
            return Err(network::NetworkError::BadName(name).into());
        }
        if network::get(&self.db(), &name).is_ok_and(|n| n.name == name) {
            return Err(network::NetworkError::Exists(name).into());
        }
        if let Some(mtu) = opts.mtu
            && !(576..=9000).contains(&mtu)
        {
            return Err(err(format!("network {name}: MTU {mtu} is out of range (576 to 9000)")));
        }
        let existing: Vec<Overlay> = list_json(&etcd, &format!("{}networks/", model::ROOT))?;
        let ipam = |e| EngineError::from(network::NetworkError::Ipam { net: name.clone(), err: e });
        let subnet = match &spec.subnet {
            Some(s) => {
                let s = Subnet::parse(s).map_err(ipam)?;
                if let Some(o) = existing.iter().find(|o| Subnet::parse(&o.subnet).is_ok_and(|x| x.overlaps(&s))) {
                    return Err(ipam(network::ipam::IpamError::Overlap { subnet: s.to_string(), with: format!("overlay network {} ({})", o.name, o.subnet) }));
                }
                s
            }
            None => {
                // docker's pool for overlays: 10.0.N.0/24, past the ones
                // the swarm and this node already use.
                let mut taken: Vec<Subnet> = existing.iter().filter_map(|o| Subnet::parse(&o.subnet).ok()).collect();
                if let Ok(nl) = Netlink::new() {
                    taken.extend(nl.routes_v4().unwrap_or_default().into_iter().filter(|(_, p)| *p > 0).map(|(a, p)| Subnet { addr: a, prefix: p }));
                }
                (1..=255u32)
                    .map(|n| Subnet { addr: Ipv4Addr::from(0x0a00_0000 | (n << 8)), prefix: 24 })
                    .find(|s| !taken.iter().any(|t| t.overlaps(s)))
                    .ok_or_else(|| err(format!("network {name}: no free /24 left in 10.0.0.0/16 for an overlay; give one with --subnet")))?
            }
        };
        let gateway = match &spec.gateway {
            Some(g) => g.parse().map_err(|_| ipam(network::ipam::IpamError::BadAddress(g.clone())))?,
            None => subnet.first_host(),
        };
        let id = crate::store::new_id();
        if !etcd.create(&model::netname_key(&name), &id, None).map_err(err)? {
            return Err(network::NetworkError::Exists(name).into());
        }
        let mut vni = VNI_BASE;
        loop {
            if etcd.create(&model::vni_key(vni), &id, None).map_err(err)? {
                break;
            }
            vni += 1;
        }
        let o = Overlay {
            id: id.clone(),
            name: name.clone(),
            vni,
            subnet: subnet.to_string(),
            gateway,
            attachable: opts.attachable,
            port: opts.port.or_else(|| self.swarm_cluster(&etcd).ok().map(|c| c.data_path_port).filter(|p| *p != 0)).unwrap_or(network::overlay::DEFAULT_PORT),
            mtu: opts.mtu.unwrap_or(network::overlay::DEFAULT_MTU),
            labels: spec.labels.clone(),
            created: crate::store::now_rfc3339(),
        };
        // The gateway address is nobody's: each node answers as itself.
        let _ = etcd.create(&model::ipam_key(&id, gateway), "gateway", None);
        etcd.put(&model::network_key(&id), serde_json::to_vec(&o).map_err(err)?, None).map_err(err)?;
        let n = self.overlay_here(&etcd, &m, &o)?;
        self.event("network", "create", &n.id, &[("name", &n.name), ("type", "overlay")]);
        Ok(n)
    }

    /// The swarm's overlay `key` (name or id), if this node is in a swarm.
    pub(crate) fn cluster_overlay(&self, etcd: &Etcd, key: &str) -> Result<Option<Overlay>> {
        let all: Vec<Overlay> = list_json(etcd, &format!("{}networks/", model::ROOT))?;
        Ok(all.into_iter().find(|o| o.name == key || o.id == key || (key.len() >= 4 && o.id.starts_with(key))))
    }

    /// This node's copy of an overlay: made on first use (devices, its own
    /// address on it, the row); the row when it is there.
    pub(crate) fn overlay_here(&self, etcd: &Etcd, m: &Membership, o: &Overlay) -> Result<Network> {
        let here = network::get(&self.db(), &o.id);
        if let Ok(n) = here
            && n.id == o.id
        {
            return Ok(n);
        }
        let me = model::node_endpoint(&m.node);
        let addr = match list_json::<model::Endpoint>(etcd, &format!("{}endpoints/{}/", model::ROOT, o.id))?.into_iter().find(|e| e.name == me) {
            Some(e) => e.ip,
            None => {
                let ip = alloc(etcd, o, None, &format!("node {}", m.name))?;
                let ep = model::Endpoint { name: me.clone(), ip, mac: mac_of(ip), node: m.node.clone(), vtep: m.addr, aliases: vec![] };
                etcd.put(&model::endpoint_key(&o.id, &me), serde_json::to_vec(&ep).map_err(err)?, None).map_err(err)?;
                ip
            }
        };
        let subnet = Subnet::parse(&o.subnet).map_err(|e| network::NetworkError::Ipam { net: o.name.clone(), err: e })?;
        let mut net = Network {
            id: o.id.clone(),
            name: o.name.clone(),
            subnet: o.subnet.clone(),
            gateway: addr.to_string(),
            bridge: String::new(),
            created: o.created.clone(),
            labels: o.labels.clone(),
            driver: "overlay".into(),
            vni: o.vni,
            mtu: o.mtu,
        };
        let mut dev = network::overlay::OverlayNode::new(&o.id, o.vni, m.addr);
        dev.port = o.port;
        dev.mtu = o.mtu;
        net.bridge = dev.bridge.clone();
        let sys = |e: std::io::Error| EngineError::from(network::NetworkError::System { net: o.name.clone(), err: e });
        let nl = Netlink::new().map_err(sys)?;
        dev.up(&nl).map_err(err)?;
        let steps = || -> std::io::Result<()> {
            let alias = network::owner_alias(&self.paths, &o.id);
            nl.set_alias(&dev.bridge, &alias)?;
            nl.set_alias(&dev.vxlan, &alias)?;
            // Derived from the address as a container's is, so the other
            // nodes know it without asking.
            nl.set_mac(&dev.bridge, mac_of(addr))?;
            nl.add_address(&dev.bridge, addr, subnet.prefix)?;
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
            Ok(())
        };
        if let Err(e) = steps() {
            let _ = dev.down(&nl);
            return Err(sys(e));
        }
        // Bound first: the Exists arm takes the store's guard again.
        let inserted = network::insert_overlay(&mut self.db(), &net);
        let n = match inserted {
            Ok(n) => n,
            // Another command of this node made it meanwhile.
            Err(network::NetworkError::Exists(_)) => return Ok(network::get(&self.db(), &o.id)?),
            Err(e) => return Err(e.into()),
        };
        self.sync_firewall()?;
        Ok(n)
    }

    /// Before a container joins network `key`: when it is an overlay, its
    /// copy here and an address from the swarm. None for other networks.
    pub(super) fn overlay_reserve(&self, key: &str, ip: Option<&str>, container: Option<&str>, task: bool) -> Result<Option<(Network, Ipv4Addr)>> {
        let local = network::get(&self.db(), key).ok();
        if local.as_ref().is_some_and(|n| !n.is_overlay()) {
            return Ok(None);
        }
        let Ok((m, etcd)) = self.swarm_etcd() else {
            return match local {
                Some(n) => Err(err(format!("network {}: an overlay needs its swarm, and this node has left it; remove the network (`berth network rm {}`)", n.name, n.name))),
                None => Ok(None),
            };
        };
        let Some(o) = self.cluster_overlay(&etcd, local.as_ref().map_or(key, |n| n.id.as_str()))? else {
            return match local {
                Some(n) => Err(err(format!("network {}: the swarm removed this overlay", n.name))),
                None => Ok(None),
            };
        };
        if !o.attachable && !task {
            return Err(err(format!(
                "network {}: this overlay is for swarm services; a container joins it only if it was created with --attachable (`berth network create -d overlay --attachable {}`)",
                o.name, o.name
            )));
        }
        // Names resolve across nodes: one name, one container on an overlay.
        if let Some(name) = container
            && !task
            && let Some(b) = etcd.get(&model::endpoint_key(&o.id, name)).map_err(err)?
            && let Ok(e) = serde_json::from_slice::<model::Endpoint>(&b)
            && e.node != m.node
        {
            return Err(err(format!("network {}: the name {name} is taken there by a container on another node ({}); choose another name", o.name, e.node.get(..12).unwrap_or(&e.node))));
        }
        let container = container.unwrap_or("(unnamed)");
        let n = self.overlay_here(&etcd, &m, &o)?;
        let want = match ip {
            Some(s) => Some(s.parse::<Ipv4Addr>().map_err(|_| network::NetworkError::Ipam { net: o.name.clone(), err: network::ipam::IpamError::BadAddress(s.to_string()) })?),
            None => None,
        };
        let addr = alloc(&etcd, &o, want, &format!("{}/{container}", m.node))?;
        Ok(Some((n, addr)))
    }

    /// After the container holds its address: the record the other nodes
    /// forward to and resolve by name.
    pub(super) fn overlay_announce(&self, net: &Network, name: &str, ip: Ipv4Addr, aliases: &[String]) -> Result<()> {
        let (m, etcd) = self.swarm_etcd()?;
        let ep = model::Endpoint { name: name.to_string(), ip, mac: mac_of(ip), node: m.node.clone(), vtep: m.addr, aliases: aliases.to_vec() };
        etcd.put(&model::endpoint_key(&net.id, name), serde_json::to_vec(&ep).map_err(err)?, None).map_err(err)?;
        Ok(())
    }

    /// A container on an overlay renamed: its record moves to the new name.
    pub(super) fn overlay_rename(&self, net: &Network, old: &str, new: &str, ip: Ipv4Addr, aliases: &[String]) -> Result<()> {
        let (m, etcd) = self.swarm_etcd()?;
        forget_endpoint(&etcd, &m, net, old, ip);
        self.overlay_announce(net, new, ip, aliases)
    }

    /// Gives a container's overlay address back (removed, disconnected, or
    /// its creation failed).
    pub(super) fn overlay_release(&self, net: &Network, name: Option<&str>, ip: Ipv4Addr) {
        let Ok((m, etcd)) = self.swarm_etcd() else { return };
        if let Some(name) = name {
            forget_endpoint(&etcd, &m, net, name, ip);
        }
        // Only ours: a migrated container's address is its new node's now.
        let key = model::ipam_key(&net.id, ip);
        if etcd.get(&key).ok().flatten().is_some_and(|h| h.starts_with(format!("{}/", m.node).as_bytes())) {
            let _ = etcd.delete(&key);
        }
    }

    /// Takes back an address and name given up for a migration that failed.
    pub(super) fn overlay_reclaim(&self, net: &Network, name: &str, ip: Ipv4Addr, aliases: &[String]) -> Result<()> {
        let (m, etcd) = self.swarm_etcd()?;
        let o = self.cluster_overlay(&etcd, &net.id)?.ok_or_else(|| err(format!("network {}: the swarm removed this overlay", net.name)))?;
        alloc(&etcd, &o, Some(ip), &format!("{}/{name}", m.node))?;
        self.overlay_announce(net, name, ip, aliases)
    }

    /// `network rm` of an overlay, on a manager: refused while any node's
    /// container uses it; the agents take their copies down.
    pub(super) fn overlay_rm(&self, net: &Network) -> Result<()> {
        let (m, etcd) = self.swarm_etcd()?;
        if m.role != Role::Manager {
            return Err(err(format!("network {}: only a manager removes overlay networks; run it on a manager", net.name)));
        }
        let eps: Vec<model::Endpoint> = list_json(&etcd, &format!("{}endpoints/{}/", model::ROOT, net.id))?;
        let users: Vec<String> = eps.iter().filter(|e| !e.name.starts_with('@')).map(|e| e.name.clone()).collect();
        if !users.is_empty() {
            return Err(network::NetworkError::InUse { name: net.name.clone(), containers: users.join(", ") }.into());
        }
        let services: Vec<ClusterService> = list_json(&etcd, &format!("{}services/", model::ROOT))?;
        if let Some(s) = services.iter().find(|s| s.network.as_deref() == Some(net.id.as_str())) {
            return Err(err(format!("network {} is in use by service {}; remove the service first", net.name, s.name)));
        }
        let o = self.cluster_overlay(&etcd, &net.id)?;
        etcd.delete(&model::network_key(&net.id)).map_err(err)?;
        etcd.delete_prefix(&format!("{}endpoints/{}/", model::ROOT, net.id)).map_err(err)?;
        etcd.delete_prefix(&format!("{}ipam/{}/", model::ROOT, net.id)).map_err(err)?;
        if let Some(o) = o {
            let _ = etcd.delete(&model::vni_key(o.vni));
            let _ = etcd.delete(&model::netname_key(&o.name));
        }
        self.overlay_drop_here(net)
    }

    /// Takes this node's copy down (devices, row, remote names).
    fn overlay_drop_here(&self, net: &Network) -> Result<()> {
        let nl = Netlink::new().map_err(err)?;
        let dev = network::overlay_node(net, Ipv4Addr::UNSPECIFIED);
        let _ = dev.down(&nl);
        {
            let mut db = self.db();
            let _ = network::set_remote_endpoints(&mut db, &net.id, vec![]);
            network::forget(&mut db, &net.id)?;
        }
        self.sync_firewall()
    }

    /// The agent's round for overlays: every overlay of the swarm made
    /// here, the ones it removed taken down, and for each the flood list,
    /// the forwarding entries of the other nodes' endpoints, their names,
    /// the swarm services' VIPs and the routing mesh.
    pub(crate) fn overlay_sync(&self, etcd: &Etcd, m: &Membership, suspects: &mut HashSet<String>) -> Result<()> {
        let overlays: Vec<Overlay> = list_json(etcd, &format!("{}networks/", model::ROOT))?;
        let nodes: Vec<model::NodeRecord> = list_json(etcd, &format!("{}nodes/", model::ROOT))?;
        let services: Vec<ClusterService> = list_json(etcd, &format!("{}services/", model::ROOT))?;
        // The running tasks, as (service id, container name): the backends.
        let statuses = super::swarm::statuses_of(etcd)?;
        let running: Vec<(String, String)> = list_json::<model::Task>(etcd, &format!("{}tasks/", model::ROOT))?
            .into_iter()
            .filter(|t| statuses.get(&t.id).is_some_and(|x| x.state == "running"))
            .filter_map(|t| services.iter().find(|s| s.id == t.service).map(|s| (s.id.clone(), t.container_name(&s.name))))
            .collect();
        let eps_by_key: HashMap<String, Vec<model::Endpoint>> = {
            let mut h: HashMap<String, Vec<model::Endpoint>> = HashMap::new();
            for kv in etcd.get_prefix(&format!("{}endpoints/", model::ROOT)).map_err(err)? {
                let rest = kv.key.strip_prefix(&format!("{}endpoints/", model::ROOT)).unwrap_or_default().to_string();
                if let (Some((net, _)), Ok(e)) = (rest.split_once('/'), serde_json::from_slice::<model::Endpoint>(&kv.value)) {
                    h.entry(net.to_string()).or_default().push(e);
                }
            }
            h
        };
        // This node's records whose container is gone without saying so
        // (removed by its monitor, a crash): twice seen, they go.
        let names: HashSet<String> = crate::container::list(&self.db())?.into_iter().map(|c| c.name).collect();
        let mut seen = HashSet::new();
        for (net, eps) in &eps_by_key {
            for e in eps.iter().filter(|e| e.node == m.node && !e.name.starts_with('@') && !names.contains(&e.name)) {
                let key = model::endpoint_key(net, &e.name);
                if suspects.contains(&key) {
                    tracing::info!("agent: {} left overlay {net} without saying so; its address {} is free again", e.name, e.ip);
                    let _ = etcd.delete(&key);
                    let _ = etcd.delete(&model::ipam_key(net, e.ip));
                } else {
                    seen.insert(key);
                }
            }
        }
        *suspects = seen;
        let nl = Netlink::new().map_err(err)?;
        let mut mesh = Vec::new();
        let mut hosts_changed = Vec::new();
        for o in &overlays {
            let net = self.overlay_here(etcd, m, o)?;
            let dev = network::overlay_node(&net, m.addr);
            // Devices gone (a reboot, a hand): made again.
            if nl.link_index(&dev.vxlan).map_err(err)?.is_none() {
                let _ = dev.down(&nl);
                network::forget(&mut self.db(), &net.id)?;
                self.overlay_here(etcd, m, o)?;
            }
            let eps = eps_by_key.get(&o.id).cloned().unwrap_or_default();
            // Flood list: every other node.
            let want: HashSet<Ipv4Addr> = nodes.iter().filter(|n| n.id != m.node).filter_map(|n| n.addr).filter(|a| *a != m.addr).collect();
            let have: HashSet<Ipv4Addr> = dev.remote_vteps(&nl).map_err(err)?.into_iter().collect();
            for v in want.difference(&have) {
                dev.add_remote_vtep(&nl, *v).map_err(err)?;
            }
            for v in have.difference(&want) {
                dev.del_remote_vtep(&nl, *v).map_err(err)?;
            }
            // Forwarding entries for the other nodes' endpoints.
            let remote: Vec<&model::Endpoint> = eps.iter().filter(|e| e.node != m.node && e.vtep != m.addr).collect();
            let pushed = dev.remote_endpoints(&nl).map_err(err)?;
            for e in &remote {
                if !pushed.iter().any(|p| p.mac == e.mac && p.vtep == e.vtep) {
                    dev.add_endpoint(&nl, e.mac, e.ip, e.vtep).map_err(err)?;
                }
            }
            for p in &pushed {
                if !remote.iter().any(|e| e.mac == p.mac && e.vtep == p.vtep) {
                    let ip = Ipv4Addr::new(p.mac[2], p.mac[3], p.mac[4], p.mac[5]);
                    dev.del_endpoint(&nl, p.mac, ip, p.vtep).map_err(err)?;
                }
            }
            // Names: the other nodes' containers, and the services' VIPs.
            let mut names: Vec<network::RemoteEndpoint> = remote
                .iter()
                .filter(|e| !e.name.starts_with('@'))
                .map(|e| network::RemoteEndpoint { network_id: o.id.clone(), name: e.name.clone(), ip: e.ip, aliases: e.aliases.clone() })
                .collect();
            for s in services.iter().filter(|s| s.network.as_deref() == Some(o.id.as_str())) {
                let Some(vip) = s.vip else { continue };
                names.push(network::RemoteEndpoint { network_id: o.id.clone(), name: s.name.clone(), ip: vip, aliases: s.spec.aliases.clone() });
                // Backends: the running tasks' addresses, on any node.
                let mut backends: Vec<Ipv4Addr> = running
                    .iter()
                    .filter(|(svc, _)| svc == &s.id)
                    .filter_map(|(_, cname)| eps.iter().find(|e| &e.name == cname).map(|e| e.ip))
                    .collect();
                backends.sort();
                mesh.push((net.clone(), network::Balance { owner: format!("swarm:{}", s.id), vip, backends, publish: s.publish.clone() }));
            }
            if network::set_remote_endpoints(&mut self.db(), &o.id, names)? {
                hosts_changed.push(net.clone());
            }
        }
        // Copies of overlays the swarm no longer has, unused here.
        let local: Vec<Network> = network::list(&self.db())?.into_iter().filter(|n| n.is_overlay()).collect();
        for n in local.iter().filter(|n| !overlays.iter().any(|o| o.id == n.id)) {
            if network::endpoints_of_network(&self.db(), n)?.is_empty() {
                tracing::info!("agent: overlay {} was removed from the swarm; taking it down here", n.name);
                self.overlay_drop_here(n)?;
            }
        }
        // VIPs: addresses of this node's bridge, so it answers for them.
        let before = network::mesh(&self.db())?;
        for (net, b) in &mesh {
            let prefix = Subnet::parse(&net.subnet).map(|s| s.prefix).unwrap_or(24);
            nl.add_address(&net.bridge, b.vip, prefix).map_err(err)?;
        }
        let now: Vec<network::Balance> = mesh.iter().map(|(_, b)| b.clone()).collect();
        for old in before.iter().filter(|o| !now.iter().any(|b| b.vip == o.vip)) {
            if let Some(n) = local.iter().find(|n| Subnet::parse(&n.subnet).is_ok_and(|s| s.contains(old.vip))) {
                let prefix = Subnet::parse(&n.subnet).map(|s| s.prefix).unwrap_or(24);
                let _ = nl.del_address(&n.bridge, old.vip, prefix);
            }
        }
        if network::set_mesh(&mut self.db(), &now)? {
            self.sync_firewall()?;
        }
        for n in &hosts_changed {
            self.refresh_hosts(n)?;
        }
        Ok(())
    }
}

/// Drops the name record of `name` on `net` if it is still this node's
/// endpoint at `ip` (a task moved elsewhere took the name over: its record
/// stays).
fn forget_endpoint(etcd: &Etcd, m: &Membership, net: &Network, name: &str, ip: Ipv4Addr) {
    let key = model::endpoint_key(&net.id, name);
    if let Ok(Some(b)) = etcd.get(&key)
        && serde_json::from_slice::<model::Endpoint>(&b).is_ok_and(|e| e.ip == ip && e.node == m.node)
    {
        let _ = etcd.delete(&key);
    }
}

/// An address of overlay `o` for `holder`: `want` if free, else the lowest
/// free one. etcd's create-if-absent makes two nodes never take the same.
pub(crate) fn alloc(etcd: &Etcd, o: &Overlay, want: Option<Ipv4Addr>, holder: &str) -> Result<Ipv4Addr> {
    let subnet = Subnet::parse(&o.subnet).map_err(|e| network::NetworkError::Ipam { net: o.name.clone(), err: e })?;
    if let Some(a) = want {
        let n = u32::from(a);
        if !subnet.contains(a) || n == subnet.network() || n == subnet.broadcast() {
            return Err(network::NetworkError::Ipam { net: o.name.clone(), err: network::ipam::IpamError::OutsideSubnet { addr: a, subnet: o.subnet.clone() } }.into());
        }
        if !etcd.create(&model::ipam_key(&o.id, a), holder, None).map_err(err)? {
            let by = etcd.get(&model::ipam_key(&o.id, a)).ok().flatten().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            return Err(err(format!("network {}: address {a} is in use by {by}; choose another or leave out --ip", o.name)));
        }
        return Ok(a);
    }
    let prefix = format!("{}ipam/{}/", model::ROOT, o.id);
    let taken: HashSet<Ipv4Addr> = etcd.get_prefix(&prefix).map_err(err)?.into_iter().filter_map(|kv| kv.key.strip_prefix(&prefix).and_then(|s| s.parse().ok())).collect();
    for n in subnet.network() + 1..subnet.broadcast() {
        let a = Ipv4Addr::from(n);
        if taken.contains(&a) {
            continue;
        }
        if etcd.create(&model::ipam_key(&o.id, a), holder, None).map_err(err)? {
            return Ok(a);
        }
    }
    Err(network::NetworkError::Ipam { net: o.name.clone(), err: network::ipam::IpamError::Full(o.subnet.clone()) }.into())
}
