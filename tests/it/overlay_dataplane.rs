//! The overlay data plane on its own, below any control plane: three hosts
//! as network namespaces on an underlay bridge, an `OverlayNode` on each,
//! and the FDB and neighbour entries pushed by the test as the node agent
//! will push them from etcd. Containers are bare namespaces with a veth into
//! the overlay bridge; pings run in them with the host's static busybox.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth::network::overlay::OverlayNode;
use berth::sys::netlink::{self, Netlink};

const BUSYBOX: &str = "/bin/busybox";
const UNDERLAY: [Ipv4Addr; 3] = [Ipv4Addr::new(10, 99, 0, 1), Ipv4Addr::new(10, 99, 0, 2), Ipv4Addr::new(10, 99, 0, 3)];
const VNI: u32 = 4242;
const ZERO: [u8; 6] = [0; 6];

/// Namespaces made by one test, removed on drop even when it fails. Every
/// link the test makes lives in one of them, so removing the namespaces
/// removes the links: nothing is made in the caller's namespace.
struct Lab {
    prefix: String,
    namespaces: Vec<PathBuf>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = netlink::delete_netns(ns) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// A host: its namespace, its underlay address, its link to the underlay.
struct Host {
    ns: PathBuf,
    ip: Ipv4Addr,
}

/// A container: a namespace with `eth0` on an overlay bridge.
struct Ctr {
    ns: PathBuf,
    ip: Ipv4Addr,
    mac: [u8; 6],
}

impl Lab {
    fn new(test: &str) -> Lab {
        static N: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!("bov-{}-{}-{test}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        Lab { prefix, namespaces: Vec::new() }
    }

    /// A fresh namespace with IPv6 off, so that no router solicitation or
    /// MLD report crosses the overlay and the counters show only the test's
    /// traffic.
    fn netns(&mut self, tag: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("{}-{tag}", self.prefix));
        let _ = netlink::delete_netns(&path);
        netlink::new_netns(&path).unwrap();
        self.namespaces.push(path.clone());
        let o = in_ns(&path, &["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"]);
        assert!(o.status.success(), "disabling IPv6 in {}: {}", path.display(), String::from_utf8_lossy(&o.stderr));
        path
    }

    /// Three hosts on one underlay bridge, which lives in a namespace of its
    /// own: 10.99.0.1-3/24 on each host's eth0.
    fn hosts(&mut self) -> Vec<Host> {
        let u = self.netns("u");
        let unl = Netlink::in_netns(&u).unwrap();
        unl.create_bridge("ul").unwrap();
        unl.set_up("ul").unwrap();
        let mut hosts = Vec::new();
        for (i, ip) in UNDERLAY.into_iter().enumerate() {
            let ns = self.netns(&format!("h{i}"));
            let (port, peer) = (format!("ul{i}"), format!("ul{i}p"));
            unl.create_veth(&port, &peer).unwrap();
            unl.move_to_netns(&peer, &std::fs::File::open(&ns).unwrap()).unwrap();
            unl.set_master(&port, "ul").unwrap();
            unl.set_up(&port).unwrap();
            let nl = Netlink::in_netns(&ns).unwrap();
            nl.rename(&peer, "eth0").unwrap();
            nl.add_address("eth0", ip, 24).unwrap();
            nl.set_up("eth0").unwrap();
            hosts.push(Host { ns, ip });
        }
        hosts
    }

    /// A container on host `h`, attached to `node`'s bridge.
    fn container(&mut self, tag: &str, h: &Host, node: &OverlayNode, ip: Ipv4Addr) -> Ctr {
        let ns = self.netns(tag);
        let nl = Netlink::in_netns(&h.ns).unwrap();
        let (host_end, peer) = (format!("ve-{tag}"), format!("ve-{tag}p"));
        nl.create_veth(&host_end, &peer).unwrap();
        nl.move_to_netns(&peer, &std::fs::File::open(&ns).unwrap()).unwrap();
        nl.set_mtu(&host_end, node.mtu).unwrap();
        nl.set_master(&host_end, &node.bridge).unwrap();
        nl.set_up(&host_end).unwrap();
        let o = ip.octets();
        let mac = [0x02, 0x42, o[0], o[1], o[2], o[3]];
        let cnl = Netlink::in_netns(&ns).unwrap();
        cnl.rename(&peer, "eth0").unwrap();
        cnl.set_mac("eth0", mac).unwrap();
        cnl.set_mtu("eth0", node.mtu).unwrap();
        cnl.add_address("eth0", ip, 24).unwrap();
        cnl.set_up("eth0").unwrap();
        Ctr { ns, ip, mac }
    }
}

fn in_ns(ns: &PathBuf, args: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg(BUSYBOX)
        .args(args)
        .output()
        .expect("running nsenter")
}

/// One ping from `from` to `to`.
fn pings(from: &Ctr, to: Ipv4Addr) -> bool {
    in_ns(&from.ns, &["ping", "-c", "1", "-W", "2", &to.to_string()]).status.success()
}

/// The average RTT in ms of ten pings from the namespace `ns`.
fn rtt_ms(ns: &PathBuf, to: Ipv4Addr) -> f64 {
    let o = in_ns(ns, &["ping", "-c", "10", "-i", "0.1", "-W", "2", &to.to_string()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "ping {to}: {out}");
    // "round-trip min/avg/max = 0.041/0.061/0.100 ms"
    let stats = out.lines().find_map(|l| l.split(" = ").nth(1).filter(|_| l.starts_with("round-trip"))).unwrap_or_else(|| panic!("no summary in {out}"));
    stats.split('/').nth(1).unwrap().parse().unwrap()
}

/// Forgets what the container resolved, so the next ping must ARP again.
fn flush_arp(c: &Ctr) {
    let nl = Netlink::in_netns(&c.ns).unwrap();
    for n in nl.neigh_list("eth0").unwrap() {
        nl.neigh_del("eth0", n.ip).unwrap();
    }
}

fn vxlan_packets(h: &Host, node: &OverlayNode) -> (u64, u64) {
    let st = Netlink::in_netns(&h.ns).unwrap().link_stats(&node.vxlan).unwrap();
    (st.tx_packets, st.rx_packets)
}

/// Every host gets `node` up (timed) and the other hosts on its flood list.
fn overlay_everywhere(hosts: &[Host], id: &str, vni: u32) -> (Vec<OverlayNode>, Vec<Duration>) {
    let mut nodes = Vec::new();
    let mut took = Vec::new();
    for h in hosts {
        let mut node = OverlayNode::new(id, vni, h.ip);
        node.underlay = Some("eth0".into());
        let nl = Netlink::in_netns(&h.ns).unwrap();
        let t = Instant::now();
        node.up(&nl).unwrap();
        took.push(t.elapsed());
        for other in hosts {
            node.add_remote_vtep(&nl, other.ip).unwrap();
        }
        nodes.push(node);
    }
    (nodes, took)
}

/// The bridge's permanent neighbours (it also keeps its multicast ones).
fn pushed_neighbours(nl: &Netlink, node: &OverlayNode) -> Vec<netlink::NeighEntry> {
    nl.neigh_list(&node.bridge).unwrap().into_iter().filter(|n| n.permanent).collect()
}

/// Nothing the test did not push: no entry learned by the VXLAN device or
/// by the bridge on the VXLAN port.
fn assert_nothing_learned(h: &Host, node: &OverlayNode) {
    let fdb = Netlink::in_netns(&h.ns).unwrap().fdb_list(&node.vxlan).unwrap();
    let learned: Vec<_> = fdb.iter().filter(|e| e.learned).collect();
    assert!(learned.is_empty(), "{} on {} learned {learned:?}", node.vxlan, h.ip);
}

#[test]
fn overlay_connects_containers_across_hosts_through_vxlan_only() {
    let mut lab = Lab::new("x");
    let hosts = lab.hosts();
    let id = format!("{:08x}a1b2", std::process::id());
    let (nodes, took) = overlay_everywhere(&hosts, &id, VNI);
    let nls: Vec<Netlink> = hosts.iter().map(|h| Netlink::in_netns(&h.ns).unwrap()).collect();

    // The devices are as the data plane needs them.
    for (i, (h, node)) in hosts.iter().zip(&nodes).enumerate() {
        let info = nls[i].vxlan_info(&node.vxlan).unwrap().unwrap();
        assert_eq!(info.local, Some(h.ip), "local VTEP unset on host {i}");
        assert_eq!((info.vni, info.port, info.learning, info.mtu), (VNI, 4789, false, 1450));
        let port = nls[i].bridge_port_info(&node.vxlan).unwrap().expect("vxlan enslaved to the bridge");
        assert!(!port.learning && port.neigh_suppress, "{port:?}");
        let mut others: Vec<_> = hosts.iter().map(|o| o.ip).filter(|ip| *ip != h.ip).collect();
        let mut vteps = node.remote_vteps(&nls[i]).unwrap();
        others.sort();
        vteps.sort();
        assert_eq!(vteps, others, "flood list of host {i}");
        // up() again changes nothing and fails nothing.
        node.up(&nls[i]).unwrap();
    }
    // Another network's settings on the same names are refused, not reused.
    let mut wrong = nodes[0].clone();
    wrong.vni = VNI + 100;
    let e = wrong.up(&nls[0]).unwrap_err().to_string();
    assert!(e.contains("already exists with other settings") && e.contains("VNI 4242"), "{e}");

    let a = lab.container("ca", &hosts[0], &nodes[0], Ipv4Addr::new(10, 42, 0, 2));
    let b = lab.container("cb", &hosts[1], &nodes[1], Ipv4Addr::new(10, 42, 0, 3));
    // The control plane: each host learns of the other host's endpoint.
    nodes[0].add_endpoint(&nls[0], b.mac, b.ip, hosts[1].ip).unwrap();
    nodes[1].add_endpoint(&nls[1], a.mac, a.ip, hosts[0].ip).unwrap();
    // Its own endpoints are skipped, so a node may be given the whole list.
    nodes[0].add_endpoint(&nls[0], a.mac, a.ip, hosts[0].ip).unwrap();
    assert_eq!(nodes[0].remote_endpoints(&nls[0]).unwrap().len(), 1);
    assert_eq!(pushed_neighbours(&nls[0], &nodes[0]).len(), 1);

    let before: Vec<_> = hosts.iter().zip(&nodes).map(|(h, n)| vxlan_packets(h, n)).collect();
    assert!(pings(&a, b.ip), "A's container cannot ping B's over the overlay");
    let after: Vec<_> = hosts.iter().zip(&nodes).map(|(h, n)| vxlan_packets(h, n)).collect();
    let delta: Vec<_> = before.iter().zip(&after).map(|(b, a)| (a.0 - b.0, a.1 - b.1)).collect();
    eprintln!("vxlan (tx, rx) packets for one ping, hosts A B C: {delta:?}");
    // Echo out of A and into B, the reply back: through the VXLAN devices.
    assert!(delta[0].0 >= 1 && delta[0].1 >= 1, "A's vxlan counters {delta:?}");
    assert!(delta[1].0 >= 1 && delta[1].1 >= 1, "B's vxlan counters {delta:?}");
    // Both containers' ARP was answered by their own bridge: nothing was
    // flooded, so host C saw nothing.
    assert_eq!(delta[2], (0, 0), "host C received overlay traffic: {delta:?}");
    for (h, n) in hosts.iter().zip(&nodes) {
        assert_nothing_learned(h, n);
    }
    let remote = nodes[0].remote_endpoints(&nls[0]).unwrap();
    assert_eq!(remote.len(), 1);
    assert_eq!((remote[0].mac, remote[0].vtep), (b.mac, hosts[1].ip));

    // Figures: RTT over the overlay beside the underlay between the same hosts.
    let overlay = rtt_ms(&a.ns, b.ip);
    let underlay = rtt_ms(&hosts[0].ns, hosts[1].ip);
    eprintln!(
        "figures: up() per node {:?}; RTT overlay {overlay:.3} ms, underlay {underlay:.3} ms",
        took.iter().map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0)).collect::<Vec<_>>()
    );

    // Without the flood lists the endpoints' own entries are enough: ARP is
    // answered on each side from the pushed neighbour.
    for (i, n) in nodes.iter().enumerate() {
        for h in &hosts {
            n.del_remote_vtep(&nls[i], h.ip).unwrap();
        }
        assert!(n.remote_vteps(&nls[i]).unwrap().is_empty());
    }
    flush_arp(&a);
    flush_arp(&b);
    assert!(pings(&a, b.ip), "ping failed with per-endpoint entries only");

    // With every remote entry gone, nothing gets through.
    nodes[0].del_endpoint(&nls[0], b.mac, b.ip, hosts[1].ip).unwrap();
    nodes[1].del_endpoint(&nls[1], a.mac, a.ip, hosts[0].ip).unwrap();
    nodes[1].del_endpoint(&nls[1], a.mac, a.ip, hosts[0].ip).unwrap();
    for (i, n) in nodes.iter().enumerate() {
        assert!(n.remote_endpoints(&nls[i]).unwrap().is_empty());
        assert!(pushed_neighbours(&nls[i], n).is_empty());
        let fdb = nls[i].fdb_list(&n.vxlan).unwrap();
        assert!(!fdb.iter().any(|e| e.mac == a.mac || e.mac == b.mac || e.mac == ZERO), "left behind on host {i}: {fdb:?}");
    }
    flush_arp(&a);
    flush_arp(&b);
    assert!(!pings(&a, b.ip), "ping got through with no remote entries");

    // The flood lists alone carry ARP and unicast alike, still learning
    // nothing from what they carry.
    for (i, n) in nodes.iter().enumerate() {
        for h in &hosts {
            n.add_remote_vtep(&nls[i], h.ip).unwrap();
        }
    }
    assert!(pings(&a, b.ip), "ping failed over the flood lists");
    for (h, n) in hosts.iter().zip(&nodes) {
        assert_nothing_learned(h, n);
    }

    // down() removes both devices and everything pushed to them, twice.
    for (i, n) in nodes.iter().enumerate() {
        n.down(&nls[i]).unwrap();
        n.down(&nls[i]).unwrap();
        let links = nls[i].links().unwrap();
        assert!(!links.iter().any(|l| *l == n.bridge || *l == n.vxlan), "host {i}: {links:?}");
        assert!(nls[i].fdb_list(&n.vxlan).unwrap().is_empty());
    }
    assert!(!pings(&a, b.ip));
}

#[test]
fn overlays_on_the_same_hosts_are_isolated() {
    let mut lab = Lab::new("i");
    let hosts = lab.hosts();
    let pid = std::process::id();
    let (one, _) = overlay_everywhere(&hosts, &format!("{pid:08x}0001"), VNI);
    let (two, _) = overlay_everywhere(&hosts, &format!("{pid:08x}0002"), VNI + 1);
    let nls: Vec<Netlink> = hosts.iter().map(|h| Netlink::in_netns(&h.ns).unwrap()).collect();
    // The same subnet on both, so only the VNI keeps them apart.
    let a = lab.container("ca", &hosts[0], &one[0], Ipv4Addr::new(10, 42, 0, 2));
    let b = lab.container("cb", &hosts[1], &one[1], Ipv4Addr::new(10, 42, 0, 3));
    let x = lab.container("xb", &hosts[1], &two[1], Ipv4Addr::new(10, 42, 0, 9));
    let y = lab.container("xc", &hosts[2], &two[2], Ipv4Addr::new(10, 42, 0, 10));
    one[0].add_endpoint(&nls[0], b.mac, b.ip, hosts[1].ip).unwrap();
    one[1].add_endpoint(&nls[1], a.mac, a.ip, hosts[0].ip).unwrap();
    two[1].add_endpoint(&nls[1], y.mac, y.ip, hosts[2].ip).unwrap();
    two[2].add_endpoint(&nls[2], x.mac, x.ip, hosts[1].ip).unwrap();

    // Each overlay works on its own.
    assert!(pings(&a, b.ip), "VNI {VNI} broken");
    assert!(pings(&y, x.ip), "VNI {} broken", VNI + 1);
    // Across them nothing passes, over the flood lists...
    assert!(!pings(&a, x.ip), "VNI {VNI} reached a container of VNI {}", VNI + 1);
    assert!(!pings(&x, a.ip), "VNI {} reached a container of VNI {VNI}", VNI + 1);
    // ...nor when a wrong entry sends VNI 4242's frames straight at the
    // host of the other overlay's container: the VNI still tells them apart.
    one[0].add_endpoint(&nls[0], x.mac, x.ip, hosts[1].ip).unwrap();
    let before = vxlan_packets(&hosts[1], &one[1]);
    assert!(!pings(&a, x.ip), "a wrong FDB entry let VNI {VNI} into VNI {}", VNI + 1);
    let after = vxlan_packets(&hosts[1], &one[1]);
    assert!(after.1 > before.1, "the misdirected ping did not even reach B's VNI {VNI} device: {before:?} -> {after:?}");
    for (i, h) in hosts.iter().enumerate() {
        assert_nothing_learned(h, &one[i]);
        assert_nothing_learned(h, &two[i]);
    }

    for (i, h) in hosts.iter().enumerate() {
        for n in [&one[i], &two[i]] {
            n.down(&nls[i]).unwrap();
        }
        let links = nls[i].links().unwrap();
        assert!(!links.iter().any(|l| l.starts_with("ov-") || l.starts_with("vx-")), "host {}: {links:?}", h.ip);
    }
}

/// The agent and a command may bring the same overlay up at the same
/// moment: both succeed, whichever made the devices, and no error says
/// "File exists".
#[test]
fn two_bring_ups_of_one_overlay_at_once_both_succeed() {
    let mut lab = Lab::new("race");
    let hosts = lab.hosts();
    let h = &hosts[0];
    for round in 0..20u32 {
        let node = OverlayNode::new(&format!("race{round:08}"), 5000 + round, h.ip);
        let results: Vec<_> = std::thread::scope(|s| {
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let (node, ns) = (node.clone(), h.ns.clone());
                    s.spawn(move || node.up(&Netlink::in_netns(&ns).unwrap()))
                })
                .collect();
            ts.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for r in results {
            assert!(r.is_ok(), "round {round}: {}", r.unwrap_err());
        }
        let nl = Netlink::in_netns(&h.ns).unwrap();
        assert_eq!(nl.vxlan_info(&node.vxlan).unwrap().map(|v| v.vni), Some(5000 + round));
        node.down(&nl).unwrap();
    }
}
