//! Links, addresses and routes over rtnetlink, for the network area.
//!
//! A small synchronous API: a [`Netlink`] owns one blocking NETLINK_ROUTE
//! socket, sends one request at a time and reads its replies. No async
//! runtime: the monitor reaches this file (network teardown) and must stay
//! as small as conmon. `rtnetlink` lends only its message builders. No OS
//! thread is spawned, except the short-lived ones that `setns`/`unshare`
//! need so that the calling thread's network namespace never changes
//! ([`Netlink::in_netns`], [`new_netns`]).
//!
//! Every error is an `io::Error` whose kind follows the kernel's errno and
//! whose message names the operation and the link:
//! `creating veth berth1a2b/eth0: File exists`.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use netlink_packet_core::{
    NetlinkBuffer, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_MULTIPART,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::link::{InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use rtnetlink::{AddressMessageBuilder, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, LinkVxlan, RouteMessageBuilder};

#[derive(Debug, Clone)]
pub struct LinkDetail {
    pub name: String,
    pub alias: Option<String>,
    pub master: Option<String>,
    pub bridge: bool,
    /// The id, as this namespace numbers it, of the namespace the link's
    /// peer lives in (a veth whose other end was moved away).
    pub peer_nsid: Option<i32>,
}

/// A VXLAN device as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanInfo {
    pub vni: u32,
    pub local: Option<Ipv4Addr>,
    pub port: u16,
    pub learning: bool,
    /// The index of the underlay link it is bound to, if any.
    pub dev: Option<u32>,
    pub mtu: u32,
}

/// The bridge-port settings berth changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgePortInfo {
    pub learning: bool,
    pub neigh_suppress: bool,
}

/// One forwarding-database entry of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: [u8; 6],
    /// The remote VTEP of a VXLAN device's entry.
    pub dst: Option<Ipv4Addr>,
    /// The device's own table (`self`, NTF_SELF): a VXLAN device's remotes,
    /// or the addresses a device listens on.
    pub own: bool,
    /// The table of the bridge the link is a port of (`master`).
    pub master: bool,
    /// Learned from traffic rather than added (neither permanent nor static).
    pub learned: bool,
}

/// One IPv4 neighbour of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighEntry {
    pub ip: Ipv4Addr,
    /// `None` for an entry still being resolved or failed.
    pub mac: Option<[u8; 6]>,
    pub permanent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// `aa:bb:cc:dd:ee:ff`, as ip and bridge print MACs.
pub fn fmt_mac(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

const ENODEV: i32 = libc::ENODEV;
const EEXIST: i32 = libc::EEXIST;
const EADDRNOTAVAIL: i32 = libc::EADDRNOTAVAIL;

/// The flags of each kind of request, as `ip` (and rtnetlink) send them.
/// A new object, refused if one of its name or key is there (EEXIST).
const NEW: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
/// A change to, or the removal of, an existing object.
const CHANGE: u16 = NLM_F_REQUEST | NLM_F_ACK;
/// One object, answered by one message and no ACK.
const GET: u16 = NLM_F_REQUEST;
/// Every object of a kind, answered in parts ended by NLMSG_DONE.
const DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP;

/// The length of a netlink message header (struct nlmsghdr).
const NLMSG_HDRLEN: usize = 16;

/// The receive buffer: a dump's datagrams are at most 32 KiB unless one
/// object is larger, and those are read whole by growing it.
const RECV_BUF: usize = 64 << 10;

/// One rtnetlink socket, bound to the network namespace it was opened in.
pub struct Netlink {
    // One request at a time: its replies are told apart by sequence number,
    // and a second thread's request must not read them.
    conn: Mutex<Conn>,
}

struct Conn {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// Why a request failed: the kernel's errno (positive), the socket, or a
/// reply that could not be read.
#[derive(Debug)]
enum NlError {
    Kernel(i32),
    Io(io::Error),
    Reply(String),
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").finish_non_exhaustive()
    }
}

impl Netlink {
    /// A connection in the caller's network namespace.
    pub fn new() -> io::Result<Netlink> {
        // A rootless berth's "host" is its rootless network namespace.
        if let Some(ns) = crate::rootless::netns_made() {
            return Self::in_netns(&ns);
        }
        Self::connect().map_err(|e| ctx("opening rtnetlink connection", e))
    }

    /// A connection inside the network namespace at `path` (for example
    /// `/proc/PID/ns/net` or a file bind-mounted by [`new_netns`]). The
    /// socket is opened by a short-lived thread that joined that namespace;
    /// a socket keeps its namespace for life, so the calling thread's
    /// namespace never changes.
    pub fn in_netns(path: &Path) -> io::Result<Netlink> {
        let op = format!("opening rtnetlink connection in network namespace {}", path.display());
        let ns = File::open(path).map_err(|e| ctx(&op, e))?;
        let res = std::thread::Builder::new()
            .name("berth-netns".into())
            .spawn(move || -> io::Result<Netlink> {
                nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| errno_err("setns", e))?;
                drop(ns);
                Self::connect()
            })
            .map_err(|e| ctx(&op, e))?
            .join()
            .map_err(|_| io::Error::other(format!("{op}: the helper thread panicked")))?;
        res.map_err(|e| ctx(&op, e))
    }

    fn connect() -> io::Result<Netlink> {
        let sock = Socket::new(NETLINK_ROUTE)?;
        // Connected to the kernel, the socket takes datagrams from no other
        // sender (and the kernel binds it to a port on the way).
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink { conn: Mutex::new(Conn { sock, seq: 0, buf: Vec::new() }) })
    }

    /// Sends `msg` with `flags` and reads its replies: the parts of a dump
    /// until NLMSG_DONE, the one answer of a GET, nothing but the ACK of a
    /// change. A nonzero error code ends it as that errno.
    fn request(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let c = &mut *conn;
        c.seq = c.seq.wrapping_add(1);
        let seq = c.seq;
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags;
        req.header.sequence_number = seq;
        req.finalize();
        let mut out = vec![0; req.buffer_len()];
        req.serialize(&mut out);
        retry(|| c.sock.send(&out, 0)).map_err(NlError::Io)?;
        if c.buf.capacity() < RECV_BUF {
            c.buf.reserve_exact(RECV_BUF);
        }
        let ack = flags & NLM_F_ACK != 0;
        let mut replies = Vec::new();
        loop {
            let n = recv_datagram(&c.sock, &mut c.buf).map_err(NlError::Io)?;
            let mut off = 0;
            while n - off >= NLMSG_HDRLEN {
                let b = &c.buf[off..n];
                let (len, mseq, mflags) = match NetlinkBuffer::new_checked(b) {
                    Ok(h) => (h.length() as usize, h.sequence_number(), h.flags()),
                    Err(e) => return Err(NlError::Reply(format!("a malformed reply: {e}"))),
                };
                off = (off + ((len + 3) & !3)).min(n);
                // Parts of an earlier request cut short by an unreadable
                // reply.
                if mseq != seq {
                    continue;
                }
                // The kernel sends no more after one that is not part of a
                // multi-part reply, unless an ACK is still to come.
                let last = mflags & NLM_F_MULTIPART == 0 && !ack;
                match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&b[..len]) {
                    Ok(m) => match m.payload {
                        NetlinkPayload::InnerMessage(i) => {
                            replies.push(i);
                            if last {
                                return Ok(replies);
                            }
                        }
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(replies),
                                Some(code) => Err(NlError::Kernel(code.get().abs())),
                            };
                        }
                        // A dump cut short carries its errno in NLMSG_DONE.
                        NetlinkPayload::Done(d) if d.code != 0 => return Err(NlError::Kernel(d.code.abs())),
                        NetlinkPayload::Done(_) => return Ok(replies),
                        NetlinkPayload::Overrun(_) => return Err(NlError::Reply("the kernel's reply overran".into())),
                        _ => {}
                    },
                    // One odd object (a link kind the parser does not know)
                    // must not sink a whole listing: skip it, as rtnetlink did.
                    Err(e) if !last => tracing::warn!("netlink: skipping a reply part that does not parse: {e}"),
                    Err(e) => return Err(NlError::Reply(format!("a reply that does not parse: {e}"))),
                }
            }
        }
    }

    /// A request answered by an ACK alone.
    fn execute(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), NlError> {
        self.request(msg, flags).map(drop)
    }

    /// The link `name`, or `None` when there is none (ENODEV).
    fn get_link(&self, name: &str) -> Result<Option<LinkMessage>, NlError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), GET) {
            Ok(r) => Ok(r.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn dump_links(&self) -> Result<Vec<LinkMessage>, NlError> {
        let r = self.request(RouteNetlinkMessage::GetLink(LinkMessage::default()), DUMP)?;
        Ok(r.into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .collect())
    }

    fn dump_routes_v4(&self) -> Result<Vec<RouteMessage>, NlError> {
        let req = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let r = self.request(RouteNetlinkMessage::GetRoute(req), DUMP)?;
        Ok(r.into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .collect())
    }

    fn dump_neighbours(&self, family: AddressFamily) -> Result<Vec<NeighbourMessage>, NlError> {
        let mut req = NeighbourMessage::default();
        req.header.family = family;
        let r = self.request(RouteNetlinkMessage::GetNeighbour(req), DUMP)?;
        Ok(r.into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => Some(n),
                _ => None,
            })
            .collect())
    }

    /// The index of the link `name`, or `None` when there is no such link.
    pub fn link_index(&self, name: &str) -> io::Result<Option<u32>> {
        if name.is_empty() || name.len() > MAX_IFNAME {
            return Ok(None);
        }
        let m = self.get_link(name).map_err(|e| nl_err(format!("looking up link {name}"), e))?;
        Ok(m.map(|m| m.header.index))
    }

    /// Creates the bridge `name` (left down) and returns its index. An
    /// existing bridge of that name is returned as is; an existing link of
    /// another kind is an error.
    pub fn create_bridge(&self, name: &str) -> io::Result<u32> {
        let op = format!("creating bridge {name}");
        check_name(&op, name)?;
        match self.execute(RouteNetlinkMessage::NewLink(LinkBridge::new(name).build()), NEW) {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(EEXIST) => {}
            Err(e) => return Err(nl_err(&op, e)),
        }
        match self.get_link(name).map_err(|e| nl_err(&op, e))? {
            Some(m) if is_bridge(&m) => Ok(m.header.index),
            Some(_) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{op}: a link of that name exists and is not a bridge"),
            )),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{op}: the bridge vanished right after it was created"),
            )),
        }
    }

    /// Creates the veth pair `host` <-> `peer` (both left down) in this
    /// namespace.
    pub fn create_veth(&self, host: &str, peer: &str) -> io::Result<()> {
        let op = format!("creating veth {host}/{peer}");
        check_name(&op, host)?;
        check_name(&op, peer)?;
        self.execute(RouteNetlinkMessage::NewLink(LinkVeth::new(host, peer).build()), NEW)
            .map_err(|e| nl_err(&op, e))
    }

    /// A veth pair whose `peer` end is made directly in the network
    /// namespace `netns` (`ip link add HOST type veth peer name PEER netns
    /// NS`): moving an end there afterwards costs the kernel about 20 ms.
    pub fn create_veth_into(&self, host: &str, peer: &str, netns: &File) -> io::Result<()> {
        use netlink_packet_route::link::InfoVeth;
        let op = format!("creating veth {host}/{peer}");
        check_name(&op, host)?;
        check_name(&op, peer)?;
        let mut msg = LinkVeth::new(host, peer).build();
        for a in msg.attributes.iter_mut() {
            if let LinkAttribute::LinkInfo(infos) = a {
                for i in infos.iter_mut() {
                    if let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) = i {
                        p.attributes.push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
                    }
                }
            }
        }
        self.execute(RouteNetlinkMessage::NewLink(msg), NEW).map_err(|e| nl_err(&op, e))
    }

    /// Attaches `link` to the bridge `bridge` (`ip link set LINK master BRIDGE`).
    pub fn set_master(&self, link: &str, bridge: &str) -> io::Result<()> {
        let op = format!("attaching {link} to bridge {bridge}");
        let idx = self.index_for(&op, link)?;
        let br = self.index_for(&op, bridge)?;
        self.change(&op, LinkUnspec::new_with_index(idx).controller(br).build())
    }

    /// Takes `link` off whatever bridge holds it (`ip link set LINK nomaster`).
    pub fn set_nomaster(&self, link: &str) -> io::Result<()> {
        let op = format!("detaching {link} from its bridge");
        let idx = self.index_for(&op, link)?;
        self.change(&op, LinkUnspec::new_with_index(idx).nocontroller().build())
    }

    /// Sets the link's alias (`ip link set LINK alias A`): berth marks the
    /// links it makes with the root that owns them, so `system check` can
    /// tell its leftovers from another root's links.
    pub fn set_alias(&self, link: &str, alias: &str) -> io::Result<()> {
        let op = format!("setting the alias of {link}");
        let idx = self.index_for(&op, link)?;
        self.change(&op, LinkUnspec::new_with_index(idx).alias(alias).build())
    }

    /// Sets the link's hardware address.
    pub fn set_mac(&self, link: &str, mac: [u8; 6]) -> io::Result<()> {
        let op = format!("setting the address of {link}");
        let idx = self.index_for(&op, link)?;
        self.change(&op, LinkUnspec::new_with_index(idx).address(mac.to_vec()).build())
    }

    /// Brings `link` up.
    pub fn set_up(&self, link: &str) -> io::Result<()> {
        let op = format!("setting {link} up");
        let idx = self.index_for(&op, link)?;
        self.change(&op, LinkUnspec::new_with_index(idx).up().build())
    }

    /// Sets the MTU of `link`.
    pub fn set_mtu(&self, link: &str, mtu: u32) -> io::Result<()> {
        let op = format!("setting mtu of {link} to {mtu}");
        let idx = self.index_for(&op, link)?;
        self.change(&op, LinkUnspec::new_with_index(idx).mtu(mtu).build())
    }

    /// Adds `addr/prefix` to `link`; an address already there is fine.
    pub fn add_address(&self, link: &str, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let op = format!("adding address {addr}/{prefix} to {link}");
        check_prefix(&op, prefix)?;
        let idx = self.index_for(&op, link)?;
        let msg = AddressMessageBuilder::<Ipv4Addr>::new().index(idx).address(addr, prefix).build();
        match self.execute(RouteNetlinkMessage::NewAddress(msg), NEW) {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(nl_err(&op, e)),
        }
    }

    /// Removes `addr/prefix` from `link`. An address that is not there is
    /// fine; a missing link is a `NotFound` error.
    pub fn del_address(&self, link: &str, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let op = format!("deleting address {addr}/{prefix} from {link}");
        check_prefix(&op, prefix)?;
        let idx = self.index_for(&op, link)?;
        let msg = AddressMessageBuilder::<Ipv4Addr>::new().index(idx).address(addr, prefix).build();
        match self.execute(RouteNetlinkMessage::DelAddress(msg), CHANGE) {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => Ok(()),
            Err(e) => Err(nl_err(&op, e)),
        }
    }

    /// Adds the default route via `gateway` to the main table. The same
    /// route already there is fine; a default route via another gateway is
    /// an `AlreadyExists` error.
    pub fn add_default_route(&self, gateway: Ipv4Addr) -> io::Result<()> {
        self.add_route_op(format!("adding default route via {gateway}"), Ipv4Addr::UNSPECIFIED, 0, gateway)
    }

    /// Adds the route `dst/prefix via gateway` to the main table. The same
    /// route already there is fine; one to the same destination via another
    /// gateway is an `AlreadyExists` error.
    pub fn add_route(&self, dst: Ipv4Addr, prefix: u8, gateway: Ipv4Addr) -> io::Result<()> {
        self.add_route_op(format!("adding route {dst}/{prefix} via {gateway}"), dst, prefix, gateway)
    }

    fn add_route_op(&self, op: String, dst: Ipv4Addr, prefix: u8, gateway: Ipv4Addr) -> io::Result<()> {
        check_prefix(&op, prefix)?;
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway);
        if prefix > 0 {
            b = b.destination_prefix(dst, prefix);
        }
        match self.execute(RouteNetlinkMessage::NewRoute(b.build()), NEW) {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => {
                let routes = self.dump_routes_v4().map_err(|e| nl_err(&op, e))?;
                let same = routes.iter().any(|r| {
                    table_of(r) == u32::from(RouteHeader::RT_TABLE_MAIN)
                        && dst_of(r) == (dst, prefix)
                        && gateway_of(r) == Some(gateway)
                });
                if same {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{op}: File exists (a route to that destination via another gateway is there)"),
                    ))
                }
            }
            Err(e) => Err(nl_err(&op, e)),
        }
    }

    /// Moves `link` into the network namespace open as `netns` (a file of
    /// `/proc/PID/ns/net` or one made by [`new_netns`]).
    pub fn move_to_netns(&self, link: &str, netns: &File) -> io::Result<()> {
        let op = format!("moving {link} to another network namespace");
        let idx = self.index_for(&op, link)?;
        self.change(&op, LinkUnspec::new_with_index(idx).setns_by_fd(netns.as_raw_fd()).build())
    }

    /// Renames `link` to `new`. The kernel refuses (`Device or resource
    /// busy`) while the link is up: rename before bringing it up.
    pub fn rename(&self, link: &str, new: &str) -> io::Result<()> {
        let op = format!("renaming {link} to {new}");
        check_name(&op, new)?;
        let idx = self.index_for(&op, link)?;
        self.change(&op, LinkUnspec::new_with_index(idx).name(new).build())
    }

    /// Deletes the link `name` (for a veth, both ends go). A missing link is
    /// fine.
    pub fn delete_link(&self, name: &str) -> io::Result<()> {
        let op = format!("deleting link {name}");
        let Some(idx) = self.link_index(name).map_err(|e| ctx(&op, e))? else {
            return Ok(());
        };
        let mut msg = LinkMessage::default();
        msg.header.index = idx;
        match self.execute(RouteNetlinkMessage::DelLink(msg), CHANGE) {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
            Err(e) => Err(nl_err(&op, e)),
        }
    }

    /// The names of all links in this namespace.
    pub fn links(&self) -> io::Result<Vec<String>> {
        let msgs = self.dump_links().map_err(|e| nl_err("listing links", e))?;
        Ok(msgs.iter().filter_map(link_name).collect())
    }

    /// Every link as (name, alias, name of its bridge if any).
    pub fn links_detailed(&self) -> io::Result<Vec<LinkDetail>> {
        let msgs = self.dump_links().map_err(|e| nl_err("listing links", e))?;
        let names: std::collections::HashMap<u32, String> = msgs.iter().filter_map(|m| Some((m.header.index, link_name(m)?))).collect();
        Ok(msgs
            .iter()
            .filter_map(|m| {
                let mut d = LinkDetail { name: link_name(m)?, alias: None, master: None, bridge: is_bridge(m), peer_nsid: None };
                for a in &m.attributes {
                    match a {
                        LinkAttribute::IfAlias(x) => d.alias = Some(x.clone()),
                        LinkAttribute::Controller(i) => d.master = names.get(i).cloned(),
                        LinkAttribute::LinkNetNsId(i) => d.peer_nsid = Some(*i),
                        _ => {}
                    }
                }
                Some(d)
            })
            .collect())
    }

    /// The destinations `(network, prefix)` of the IPv4 main table, for
    /// choosing subnets that don't overlap the host's. The default route, if
    /// any, appears as `(0.0.0.0, 0)`: skip prefix 0 when testing overlap.
    pub fn routes_v4(&self) -> io::Result<Vec<(Ipv4Addr, u8)>> {
        let routes = self.dump_routes_v4().map_err(|e| nl_err("listing routes", e))?;
        Ok(routes
            .iter()
            .filter(|r| table_of(r) == u32::from(RouteHeader::RT_TABLE_MAIN))
            .map(dst_of)
            .collect())
    }

    /// Creates the VXLAN device `name` for `vni` (left down), sending from
    /// `local` to UDP `port` (4789 is the IANA port) through the underlay
    /// link `dev` if given, and returns its index. Learning is off: the
    /// control plane pushes every forwarding entry ([`Netlink::fdb_add`]).
    /// An existing link of that name is an `AlreadyExists` error; compare it
    /// with [`Netlink::vxlan_info`] before reusing it.
    pub fn create_vxlan(&self, name: &str, vni: u32, local: Ipv4Addr, dev: Option<&str>, port: u16) -> io::Result<u32> {
        let op = format!("creating vxlan {name}");
        check_name(&op, name)?;
        if vni == 0 || vni > 0xff_ffff {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{op}: VNI {vni} is outside 1..16777215")));
        }
        if local.is_unspecified() {
            // Without a source address the device never picks one for its
            // outer packets towards unicast VTEPs, and nothing leaves the node.
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{op}: the local VTEP address must be set")));
        }
        let mut b = LinkVxlan::new(name, vni).local(local).port(port).learning(false);
        if let Some(dev) = dev {
            b = b.dev(self.index_for(&op, dev)?);
        }
        self.execute(RouteNetlinkMessage::NewLink(b.build()), NEW).map_err(|e| nl_err(&op, e))?;
        match self.get_link(name).map_err(|e| nl_err(&op, e))? {
            Some(m) => Ok(m.header.index),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("{op}: the device vanished right after it was created"))),
        }
    }

    /// The settings of the VXLAN device `name`; `None` when there is no link
    /// of that name, an `InvalidInput` error when it is not a VXLAN device.
    pub fn vxlan_info(&self, name: &str) -> io::Result<Option<VxlanInfo>> {
        let op = format!("reading vxlan {name}");
        let Some(m) = self.get_link(name).map_err(|e| nl_err(&op, e))? else {
            return Ok(None);
        };
        let data = m.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(InfoData::Vxlan(d)) => Some(d),
                _ => None,
            }),
            _ => None,
        });
        let Some(data) = data else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{op}: the link is not a vxlan device")));
        };
        let mut info = VxlanInfo { vni: 0, local: None, port: 0, learning: true, dev: None, mtu: 0 };
        for d in data {
            match d {
                InfoVxlan::Id(v) => info.vni = *v,
                InfoVxlan::Local(a) => info.local = Some(*a),
                InfoVxlan::Port(p) => info.port = *p,
                InfoVxlan::Learning(l) => info.learning = *l,
                InfoVxlan::Link(i) if *i != 0 => info.dev = Some(*i),
                _ => {}
            }
        }
        info.mtu = m.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(v) => Some(*v),
            _ => None,
        }).unwrap_or(0);
        Ok(Some(info))
    }

    /// Turns address learning of the bridge port `link` on or off
    /// (`ip link set LINK type bridge_slave learning on|off`).
    pub fn set_port_learning(&self, link: &str, on: bool) -> io::Result<()> {
        let op = format!("turning learning {} on bridge port {link}", if on { "on" } else { "off" });
        let idx = self.index_for(&op, link)?;
        self.set_port(&op, LinkBridgePort::new(idx).learning(on).build())
    }

    /// Lets the bridge answer ARP requests bound for the port `link` from
    /// its own neighbour entries instead of sending them through it
    /// (`ip link set LINK type bridge_slave neigh_suppress on|off`).
    pub fn set_port_neigh_suppress(&self, link: &str, on: bool) -> io::Result<()> {
        let op = format!("turning neigh_suppress {} on bridge port {link}", if on { "on" } else { "off" });
        let idx = self.index_for(&op, link)?;
        self.set_port(&op, LinkBridgePort::new(idx).neigh_suppress(on).build())
    }

    /// The bridge-port settings of `link`; `None` when it is on no bridge.
    pub fn bridge_port_info(&self, link: &str) -> io::Result<Option<BridgePortInfo>> {
        let op = format!("reading bridge port {link}");
        let Some(m) = self.get_link(link).map_err(|e| nl_err(&op, e))? else {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{op}: no such link")));
        };
        let data = m.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::PortData(InfoPortData::BridgePort(d)) => Some(d),
                _ => None,
            }),
            _ => None,
        });
        Ok(data.map(|d| {
            let mut p = BridgePortInfo { learning: true, neigh_suppress: false };
            for x in d {
                match x {
                    InfoBridgePort::Learning(v) => p.learning = *v,
                    InfoBridgePort::NeighSupress(v) => p.neigh_suppress = *v,
                    _ => {}
                }
            }
            p
        }))
    }

    /// Adds to the VXLAN device `dev` its own (`NTF_SELF`) forwarding entry
    /// `mac -> dst` (`bridge fdb append|replace MAC dev DEV dst DST self
    /// permanent`). The all-zero MAC is the flood list: each call adds one
    /// more remote VTEP to it, and broadcasts go to all of them. Any other
    /// MAC has one VTEP: the call moves it there. Both are idempotent.
    pub fn fdb_add(&self, dev: &str, mac: [u8; 6], dst: Ipv4Addr) -> io::Result<()> {
        let op = format!("adding fdb entry {} dst {dst} to {dev}", fmt_mac(mac));
        let idx = self.index_for(&op, dev)?;
        let msg = fdb_msg(idx, mac, Some(dst), NeighbourFlags::Own, NeighbourState::Permanent);
        // The kernel refuses to replace the flood list and to append to a
        // unicast entry.
        let how = if mac == [0; 6] { NLM_F_APPEND } else { NLM_F_REPLACE };
        self.neigh_request(&op, RouteNetlinkMessage::NewNeighbour(msg), NLM_F_CREATE | how)
    }

    /// Removes the forwarding entry `mac` of the VXLAN device `dev`: with
    /// `dst`, only that remote (one VTEP of the flood list), else the whole
    /// entry. An entry or device that is not there is fine.
    pub fn fdb_del(&self, dev: &str, mac: [u8; 6], dst: Option<Ipv4Addr>) -> io::Result<()> {
        let op = match dst {
            Some(d) => format!("deleting fdb entry {} dst {d} from {dev}", fmt_mac(mac)),
            None => format!("deleting fdb entry {} from {dev}", fmt_mac(mac)),
        };
        let Some(idx) = self.link_index(dev).map_err(|e| ctx(&op, e))? else {
            return Ok(());
        };
        let msg = fdb_msg(idx, mac, dst, NeighbourFlags::Own, NeighbourState::Permanent);
        self.del_neighbour_msg(&op, msg)
    }

    /// Adds a static entry `mac -> port` to the forwarding table of the
    /// bridge that holds `port` (`bridge fdb replace MAC dev PORT master
    /// static`), for a bridge port whose learning is off. Idempotent.
    pub fn bridge_fdb_add(&self, port: &str, mac: [u8; 6]) -> io::Result<()> {
        let op = format!("adding bridge fdb entry {} on port {port}", fmt_mac(mac));
        let idx = self.index_for(&op, port)?;
        // NUD_NOARP is "static"; NUD_PERMANENT would mean "local", frames
        // for the MAC delivered to the bridge itself.
        let msg = fdb_msg(idx, mac, None, NeighbourFlags::Controller, NeighbourState::Noarp);
        self.neigh_request(&op, RouteNetlinkMessage::NewNeighbour(msg), NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// Removes the bridge's entry `mac` on `port`. An entry or port that is
    /// not there is fine.
    pub fn bridge_fdb_del(&self, port: &str, mac: [u8; 6]) -> io::Result<()> {
        let op = format!("deleting bridge fdb entry {} on port {port}", fmt_mac(mac));
        let Some(idx) = self.link_index(port).map_err(|e| ctx(&op, e))? else {
            return Ok(());
        };
        let msg = fdb_msg(idx, mac, None, NeighbourFlags::Controller, NeighbourState::Noarp);
        self.del_neighbour_msg(&op, msg)
    }

    /// The forwarding entries of the link `dev`: its own (a VXLAN device's
    /// remotes) and its bridge's for it as a port. Empty for a missing link.
    pub fn fdb_list(&self, dev: &str) -> io::Result<Vec<FdbEntry>> {
        let op = format!("listing fdb entries of {dev}");
        let Some(idx) = self.link_index(dev).map_err(|e| ctx(&op, e))? else {
            return Ok(Vec::new());
        };
        let msgs = self.dump_neighbours(AddressFamily::Bridge).map_err(|e| nl_err(&op, e))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.ifindex == idx)
            .filter_map(|m| {
                let mut e = FdbEntry {
                    mac: [0; 6],
                    dst: None,
                    own: m.header.flags.contains(NeighbourFlags::Own),
                    // The bridge marks its entries with NDA_MASTER, not NTF_MASTER.
                    master: m.header.flags.contains(NeighbourFlags::Controller)
                        || m.attributes.iter().any(|a| matches!(a, NeighbourAttribute::Controller(_))),
                    learned: !matches!(m.header.state, NeighbourState::Permanent | NeighbourState::Noarp),
                };
                let mut has_mac = false;
                for a in &m.attributes {
                    match a {
                        NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                            e.mac.copy_from_slice(l);
                            has_mac = true;
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => e.dst = Some(*a),
                        NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => {
                            e.dst = Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                        }
                        _ => {}
                    }
                }
                has_mac.then_some(e)
            })
            .collect())
    }

    /// Adds the permanent IPv4 neighbour `ip -> mac` on `dev` (`ip neigh
    /// replace IP lladdr MAC dev DEV nud permanent`): no ARP is ever sent
    /// for it. Idempotent; a new MAC replaces the old.
    pub fn neigh_add(&self, dev: &str, ip: Ipv4Addr, mac: [u8; 6]) -> io::Result<()> {
        let op = format!("adding neighbour {ip} lladdr {} on {dev}", fmt_mac(mac));
        let idx = self.index_for(&op, dev)?;
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = idx;
        msg.header.state = NeighbourState::Permanent;
        msg.header.kind = RouteType::Unspec;
        msg.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        msg.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.neigh_request(&op, RouteNetlinkMessage::NewNeighbour(msg), NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// Removes the neighbour `ip` from `dev`. An entry or device that is not
    /// there is fine.
    pub fn neigh_del(&self, dev: &str, ip: Ipv4Addr) -> io::Result<()> {
        let op = format!("deleting neighbour {ip} on {dev}");
        let Some(idx) = self.link_index(dev).map_err(|e| ctx(&op, e))? else {
            return Ok(());
        };
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = idx;
        msg.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        self.del_neighbour_msg(&op, msg)
    }

    /// The IPv4 unicast neighbours of `dev`. Empty for a missing link.
    pub fn neigh_list(&self, dev: &str) -> io::Result<Vec<NeighEntry>> {
        let op = format!("listing neighbours of {dev}");
        let Some(idx) = self.link_index(dev).map_err(|e| ctx(&op, e))? else {
            return Ok(Vec::new());
        };
        let msgs = self.dump_neighbours(AddressFamily::Inet).map_err(|e| nl_err(&op, e))?;
        Ok(msgs
            .iter()
            // A FAILED entry is a deleted one something still holds; a
            // NOARP one the kernel's own for a multicast group it sent to
            // (IGMP reports to 224.0.0.22): neither is a neighbour.
            .filter(|m| m.header.ifindex == idx && !matches!(m.header.state, NeighbourState::Failed | NeighbourState::Noarp))
            .filter_map(|m| {
                let mut mac = None;
                let mut ip = None;
                for a in &m.attributes {
                    match a {
                        NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => mac = <[u8; 6]>::try_from(l.as_slice()).ok(),
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
                        _ => {}
                    }
                }
                let ip = ip.filter(|ip| !ip.is_multicast() && !ip.is_broadcast())?;
                Some(NeighEntry { ip, mac, permanent: m.header.state == NeighbourState::Permanent })
            })
            .collect())
    }

    /// The packet and byte counters of `link`.
    pub fn link_stats(&self, link: &str) -> io::Result<LinkStats> {
        let op = format!("reading the counters of {link}");
        let Some(m) = self.get_link(link).map_err(|e| nl_err(&op, e))? else {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{op}: no such link")));
        };
        m.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Stats64(s) => Some(LinkStats {
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    rx_bytes: s.rx_bytes,
                    tx_bytes: s.tx_bytes,
                }),
                _ => None,
            })
            .ok_or_else(|| io::Error::other(format!("{op}: the kernel sent no counters")))
    }

    /// Bridge-port settings go in RTM_NEWLINK, as `ip link set` sends them.
    fn set_port(&self, op: &str, msg: LinkMessage) -> io::Result<()> {
        self.execute(RouteNetlinkMessage::NewLink(msg), CHANGE).map_err(|e| nl_err(op, e))
    }

    fn del_neighbour_msg(&self, op: &str, msg: NeighbourMessage) -> io::Result<()> {
        match self.neigh_request(op, RouteNetlinkMessage::DelNeighbour(msg), 0) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// Sends one neighbour request with `flags` beside REQUEST|ACK
    /// (CREATE with APPEND for the flood list, REPLACE for one entry).
    fn neigh_request(&self, op: &str, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.execute(msg, CHANGE | flags).map_err(|e| nl_err(op, e))
    }

    fn index_for(&self, op: &str, name: &str) -> io::Result<u32> {
        match self.link_index(name).map_err(|e| ctx(op, e))? {
            Some(i) => Ok(i),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("{op}: no such link"))),
        }
    }

    /// The id this namespace gives the namespace `ns` (an nsfs file: a
    /// /proc/PID/ns/net or a bind mount of one), None if it gave it none.
    pub fn nsid_of(&self, ns: &File) -> io::Result<Option<i32>> {
        use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
        let mut msg = NsidMessage::default();
        msg.attributes = vec![NsidAttribute::Fd(ns.as_raw_fd() as u32)];
        let replies = self.request(RouteNetlinkMessage::GetNsId(msg), GET).map_err(|e| nl_err("asking a namespace's id", e))?;
        Ok(replies.iter().find_map(|r| match r {
            RouteNetlinkMessage::NewNsId(m) => m.attributes.iter().find_map(|a| match a {
                NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                _ => None,
            }),
            _ => None,
        }))
    }

    /// `ip link set`: RTM_NEWLINK on an existing index, without NLM_F_CREATE.
    fn change(&self, op: &str, msg: LinkMessage) -> io::Result<()> {
        self.execute(RouteNetlinkMessage::NewLink(msg), CHANGE).map_err(|e| nl_err(op, e))
    }
}

/// Creates a named network namespace: an empty file at `path` (which must
/// not exist) onto which a fresh namespace is bind-mounted, with its `lo`
/// up. The namespace is made by a short-lived thread, so the caller's stays
/// as it is. Undo with [`delete_netns`].
pub fn new_netns(path: &Path) -> io::Result<()> {
    let op = format!("creating network namespace {}", path.display());
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
        .map_err(|e| ctx(&op, e))?;
    let target: PathBuf = path.to_path_buf();
    let res = std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || -> io::Result<()> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| errno_err("unshare", e))?;
            // An ioctl, not a netlink connection: cheaper, and the monitor
            // (which may make the rootless namespace) links no netlink client.
            super::net::link_up("lo")?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| errno_err("bind-mounting the namespace", e))
        })
        .map_err(|e| ctx(&op, e))
        .and_then(|t| {
            t.join()
                .map_err(|_| io::Error::other(format!("{op}: the helper thread panicked")))?
                .map_err(|e| ctx(&op, e))
        });
    if res.is_err() {
        let _ = std::fs::remove_file(path);
    }
    res
}

/// Removes a namespace made by [`new_netns`]: unmounts `path` (lazily, so
/// a process still inside keeps its namespace until it leaves) and removes
/// the file. A path that is not there, or not mounted, is fine.
pub fn delete_netns(path: &Path) -> io::Result<()> {
    let op = format!("deleting network namespace {}", path.display());
    // A path bind-mounted more than once needs as many unmounts.
    for _ in 0..16 {
        match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => break,
            Err(e) => return Err(errno_err(&op, e)),
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ctx(&op, e)),
    }
}

// ---- helpers ----------------------------------------------------------

/// An AF_BRIDGE neighbour message: an FDB entry of the link `idx`.
fn fdb_msg(idx: u32, mac: [u8; 6], dst: Option<Ipv4Addr>, flags: NeighbourFlags, state: NeighbourState) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = idx;
    m.header.flags = flags;
    m.header.state = state;
    m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    if let Some(d) = dst {
        m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(d)));
    }
    m
}

fn link_name(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

fn is_bridge(m: &LinkMessage) -> bool {
    m.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge))),
        _ => false,
    })
}

fn table_of(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

fn dst_of(r: &RouteMessage) -> (Ipv4Addr, u8) {
    let addr = r
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(*a),
            _ => None,
        })
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    (addr, r.header.destination_prefix_length)
}

fn gateway_of(r: &RouteMessage) -> Option<Ipv4Addr> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(a)) => Some(*a),
        _ => None,
    })
}

fn check_name(op: &str, name: &str) -> io::Result<()> {
    if name.is_empty() || name.len() > MAX_IFNAME || name.contains(['/', ' ', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{op}: invalid interface name {name:?} (1 to {MAX_IFNAME} bytes, no '/' or spaces)"),
        ));
    }
    Ok(())
}

fn check_prefix(op: &str, prefix: u8) -> io::Result<()> {
    if prefix > 32 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{op}: prefix length {prefix} is over 32")));
    }
    Ok(())
}

/// Reads one whole datagram into `buf`, however large, and returns its
/// length.
pub(crate) fn recv_datagram(sock: &Socket, buf: &mut Vec<u8>) -> io::Result<usize> {
    // MSG_TRUNC makes a peek into nothing tell the datagram's full size.
    let size = retry(|| {
        let mut nothing: &mut [u8] = &mut [];
        sock.recv(&mut nothing, libc::MSG_PEEK | libc::MSG_TRUNC)
    })?;
    buf.clear();
    if size > buf.capacity() {
        buf.reserve_exact(size);
    }
    retry(|| {
        buf.clear();
        sock.recv(buf, 0)
    })
}

/// `f` again while a signal interrupts it.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// The errno of a netlink error reply, positive.
fn errno(e: &NlError) -> Option<i32> {
    match e {
        NlError::Kernel(code) => Some(*code),
        _ => None,
    }
}

fn nl_err(op: impl Display, e: NlError) -> io::Error {
    match e {
        NlError::Kernel(code) => io::Error::new(
            io::Error::from_raw_os_error(code).kind(),
            format!("{op}: {}", Errno::from_raw(code).desc()),
        ),
        NlError::Io(e) => io::Error::new(e.kind(), format!("{op}: {e}")),
        NlError::Reply(m) => io::Error::other(format!("{op}: {m}")),
    }
}

fn errno_err(op: impl Display, e: Errno) -> io::Error {
    io::Error::new(io::Error::from(e).kind(), format!("{op}: {}", e.desc()))
}

fn ctx(op: impl Display, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{op}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::LinkFlags;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A network namespace for one test, removed on drop even when the test
    /// fails.
    struct TestNs {
        path: PathBuf,
    }

    impl TestNs {
        fn new(tag: &str) -> TestNs {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::SeqCst);
            let path = std::env::temp_dir().join(format!("berth-nltest-{}-{n}-{tag}", std::process::id()));
            let _ = delete_netns(&path);
            new_netns(&path).unwrap();
            TestNs { path }
        }
        fn nl(&self) -> Netlink {
            Netlink::in_netns(&self.path).unwrap()
        }
        fn file(&self) -> File {
            File::open(&self.path).unwrap()
        }
    }

    impl Drop for TestNs {
        fn drop(&mut self) {
            if let Err(e) = delete_netns(&self.path) {
                eprintln!("cleanup: {e}");
            }
        }
    }

    fn mounted(path: &Path) -> bool {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let p = path.to_str().unwrap();
        info.lines().any(|l| l.split(' ').nth(4) == Some(p))
    }

    fn link(nl: &Netlink, name: &str) -> LinkMessage {
        nl.get_link(name).unwrap().unwrap_or_else(|| panic!("no link {name}"))
    }

    fn is_up(nl: &Netlink, name: &str) -> bool {
        link(nl, name).header.flags.contains(LinkFlags::Up)
    }

    fn attr<T>(m: &LinkMessage, f: impl Fn(&LinkAttribute) -> Option<T>) -> Option<T> {
        m.attributes.iter().find_map(f)
    }

    #[test]
    fn bridge_veth_address_route() {
        let host_ns = TestNs::new("h");
        let ctr_ns = TestNs::new("c");
        let h = host_ns.nl();
        let c = ctr_ns.nl();

        // A bridge, idempotent, with an address (twice: EEXIST is fine).
        let br = h.create_bridge("brtest0").unwrap();
        assert_eq!(h.create_bridge("brtest0").unwrap(), br);
        assert_eq!(h.link_index("brtest0").unwrap(), Some(br));
        h.add_address("brtest0", Ipv4Addr::new(10, 213, 0, 1), 24).unwrap();
        h.add_address("brtest0", Ipv4Addr::new(10, 213, 0, 1), 24).unwrap();

        // A veth pair; a second one of the same names is refused by name.
        h.create_veth("vtest0h", "vtest0p").unwrap();
        let e = h.create_veth("vtest0h", "vtest0p").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(e.to_string(), "creating veth vtest0h/vtest0p: File exists");
        let e = h.create_bridge("vtest0h").unwrap_err();
        assert!(e.to_string().contains("not a bridge"), "{e}");

        h.set_master("vtest0h", "brtest0").unwrap();
        assert_eq!(
            attr(&link(&h, "vtest0h"), |a| match a {
                LinkAttribute::Controller(i) => Some(*i),
                _ => None,
            }),
            Some(br)
        );
        h.set_mtu("vtest0h", 1400).unwrap();
        assert_eq!(
            attr(&link(&h, "vtest0h"), |a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            }),
            Some(1400)
        );
        h.set_up("brtest0").unwrap();
        h.set_up("vtest0h").unwrap();
        assert!(is_up(&h, "brtest0") && is_up(&h, "vtest0h"));

        // The peer moves into the second namespace, renamed and addressed there.
        h.move_to_netns("vtest0p", &ctr_ns.file()).unwrap();
        assert_eq!(h.link_index("vtest0p").unwrap(), None);
        assert!(c.link_index("vtest0p").unwrap().is_some());
        c.rename("vtest0p", "eth0").unwrap();
        c.add_address("eth0", Ipv4Addr::new(10, 213, 0, 2), 24).unwrap();
        c.set_up("eth0").unwrap();
        assert!(is_up(&c, "eth0") && is_up(&c, "lo"));
        let mut names = c.links().unwrap();
        names.sort();
        assert_eq!(names, ["eth0", "lo"]);
        let names = h.links().unwrap();
        assert!(names.iter().any(|n| n == "brtest0") && names.iter().any(|n| n == "vtest0h"));
        assert!(!names.iter().any(|n| n == "vtest0p" || n == "eth0"));

        // Routes: default and a static one, both idempotent.
        let gw = Ipv4Addr::new(10, 213, 0, 1);
        c.add_default_route(gw).unwrap();
        c.add_default_route(gw).unwrap();
        let e = c.add_default_route(Ipv4Addr::new(10, 213, 0, 9)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        c.add_route(Ipv4Addr::new(10, 99, 0, 0), 16, gw).unwrap();
        c.add_route(Ipv4Addr::new(10, 99, 0, 0), 16, gw).unwrap();
        let routes = c.routes_v4().unwrap();
        for r in [(Ipv4Addr::UNSPECIFIED, 0), (Ipv4Addr::new(10, 213, 0, 0), 24), (Ipv4Addr::new(10, 99, 0, 0), 16)] {
            assert!(routes.contains(&r), "{r:?} not in {routes:?}");
        }
        // The local table (127.0.0.0/8, the host addresses) is left out.
        assert!(!routes.iter().any(|(a, _)| a.is_loopback()), "{routes:?}");
        let routes = h.routes_v4().unwrap();
        assert_eq!(routes, [(Ipv4Addr::new(10, 213, 0, 0), 24)]);

        // Addresses go, twice is fine; the connected route goes with it.
        h.del_address("brtest0", gw, 24).unwrap();
        h.del_address("brtest0", gw, 24).unwrap();
        assert!(h.routes_v4().unwrap().is_empty());

        // Errors name the link and the operation.
        let e = h.set_up("nosuch0").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), "setting nosuch0 up: no such link");
        let e = h.create_bridge("a-name-too-long0").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(h.link_index("a-name-too-long0").unwrap(), None);

        // Deleting one end of the veth removes the other, in the other namespace.
        h.delete_link("vtest0h").unwrap();
        assert_eq!(c.link_index("eth0").unwrap(), None);
        h.delete_link("brtest0").unwrap();
        h.delete_link("brtest0").unwrap();
        h.delete_link("nosuch0").unwrap();
        assert_eq!(h.links().unwrap(), ["lo"]);
    }

    #[test]
    fn vxlan_fdb_and_neighbours() {
        let ns = TestNs::new("v");
        let nl = ns.nl();
        nl.create_veth("ul0", "ul0p").unwrap();
        nl.add_address("ul0", Ipv4Addr::new(10, 99, 7, 1), 24).unwrap();
        let local = Ipv4Addr::new(10, 99, 7, 1);

        // The device carries local, port and learning off as asked.
        let e = nl.create_vxlan("vxt0", 4242, Ipv4Addr::UNSPECIFIED, None, 4789).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        let e = nl.create_vxlan("vxt0", 1 << 24, local, None, 4789).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        let idx = nl.create_vxlan("vxt0", 4242, local, Some("ul0"), 4789).unwrap();
        let ul = nl.link_index("ul0").unwrap();
        nl.set_mtu("vxt0", 1450).unwrap();
        let info = nl.vxlan_info("vxt0").unwrap().unwrap();
        assert_eq!(info, VxlanInfo { vni: 4242, local: Some(local), port: 4789, learning: false, dev: ul, mtu: 1450 });
        assert_eq!(nl.link_index("vxt0").unwrap(), Some(idx));
        let e = nl.create_vxlan("vxt0", 4242, local, None, 4789).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(e.to_string(), "creating vxlan vxt0: File exists");
        assert_eq!(nl.vxlan_info("nosuch0").unwrap(), None);
        assert!(nl.vxlan_info("ul0").unwrap_err().to_string().contains("not a vxlan device"));
        // A second device on another port, bound to no link.
        nl.create_vxlan("vxt1", 4243, local, None, 8472).unwrap();
        assert_eq!(nl.vxlan_info("vxt1").unwrap().unwrap().port, 8472);

        // The flood list takes several VTEPs; adding twice is fine.
        let zero = [0u8; 6];
        let (r2, r3) = (Ipv4Addr::new(10, 99, 7, 2), Ipv4Addr::new(10, 99, 7, 3));
        for r in [r2, r3, r2] {
            nl.fdb_add("vxt0", zero, r).unwrap();
        }
        // A unicast entry moves with its endpoint.
        let mac = [0x02, 0x42, 10, 42, 0, 3];
        nl.fdb_add("vxt0", mac, r2).unwrap();
        nl.fdb_add("vxt0", mac, r3).unwrap();
        let own = |nl: &Netlink| -> Vec<(String, Option<Ipv4Addr>)> {
            let mut v: Vec<_> = nl.fdb_list("vxt0").unwrap().into_iter().filter(|e| e.own).map(|e| (fmt_mac(e.mac), e.dst)).collect();
            v.sort();
            v
        };
        assert_eq!(
            own(&nl),
            [
                ("00:00:00:00:00:00".to_string(), Some(r2)),
                ("00:00:00:00:00:00".to_string(), Some(r3)),
                ("02:42:0a:2a:00:03".to_string(), Some(r3)),
            ]
        );
        assert!(nl.fdb_list("vxt0").unwrap().iter().all(|e| !e.learned && !e.master));

        // One VTEP leaves the flood list; deleting twice is fine.
        nl.fdb_del("vxt0", zero, Some(r2)).unwrap();
        nl.fdb_del("vxt0", zero, Some(r2)).unwrap();
        nl.fdb_del("vxt0", mac, None).unwrap();
        nl.fdb_del("vxt0", mac, None).unwrap();
        nl.fdb_del("nosuch0", mac, None).unwrap();
        assert_eq!(own(&nl), [("00:00:00:00:00:00".to_string(), Some(r3))]);
        let e = nl.fdb_add("nosuch0", mac, r2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        assert!(nl.fdb_list("nosuch0").unwrap().is_empty());

        // On a bridge: learning and neigh_suppress of the port, a static
        // entry in the bridge's table, a permanent neighbour on the bridge.
        nl.create_bridge("brt0").unwrap();
        assert_eq!(nl.bridge_port_info("vxt0").unwrap(), None);
        nl.set_master("vxt0", "brt0").unwrap();
        assert_eq!(nl.bridge_port_info("vxt0").unwrap(), Some(BridgePortInfo { learning: true, neigh_suppress: false }));
        nl.set_port_learning("vxt0", false).unwrap();
        nl.set_port_neigh_suppress("vxt0", true).unwrap();
        assert_eq!(nl.bridge_port_info("vxt0").unwrap(), Some(BridgePortInfo { learning: false, neigh_suppress: true }));
        nl.bridge_fdb_add("vxt0", mac).unwrap();
        nl.bridge_fdb_add("vxt0", mac).unwrap();
        let entries = nl.fdb_list("vxt0").unwrap();
        assert!(entries.iter().any(|e| e.master && e.mac == mac && !e.learned), "{entries:?}");
        nl.bridge_fdb_del("vxt0", mac).unwrap();
        nl.bridge_fdb_del("vxt0", mac).unwrap();
        assert!(!nl.fdb_list("vxt0").unwrap().iter().any(|e| e.mac == mac));

        let ip = Ipv4Addr::new(10, 42, 0, 3);
        nl.neigh_add("brt0", ip, mac).unwrap();
        nl.neigh_add("brt0", ip, mac).unwrap();
        assert_eq!(nl.neigh_list("brt0").unwrap(), [NeighEntry { ip, mac: Some(mac), permanent: true }]);
        nl.neigh_del("brt0", ip).unwrap();
        nl.neigh_del("brt0", ip).unwrap();
        nl.neigh_del("nosuch0", ip).unwrap();
        let left = nl.neigh_list("brt0").unwrap();
        assert!(left.is_empty(), "{left:?}");

        let st = nl.link_stats("vxt0").unwrap();
        assert_eq!(st.rx_packets, 0);
        assert!(nl.link_stats("nosuch0").is_err());

        for l in ["vxt0", "vxt1", "brt0", "ul0"] {
            nl.delete_link(l).unwrap();
        }
        assert_eq!(nl.links().unwrap(), ["lo"]);
    }

    #[test]
    fn netns_lifecycle_leaves_nothing() {
        let me = std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
        let path;
        {
            let ns = TestNs::new("l");
            path = ns.path.clone();
            assert!(path.exists() && mounted(&path));
            // A second namespace on the same path is refused, the first kept.
            let e = new_netns(&path).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
            assert!(mounted(&path));
            assert_ne!(std::fs::metadata(&path).unwrap().ino(), me);

            let nl = ns.nl();
            assert_eq!(nl.links().unwrap(), ["lo"]);
            assert!(is_up(&nl, "lo"));
            // The caller's thread stayed in its namespace.
            assert_eq!(std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino(), me);
        }
        assert!(!path.exists(), "{} left behind", path.display());
        assert!(!mounted(&path), "{} still mounted", path.display());
        delete_netns(&path).unwrap();
    }

    #[test]
    fn a_listing_longer_than_one_read_and_two_threads() {
        let ns = TestNs::new("d");
        let nl = ns.nl();
        // About 1.5 KB per bridge: the dump spans many datagrams.
        let names: Vec<String> = (0..120).map(|i| format!("brd{i}")).collect();
        for n in &names {
            nl.create_bridge(n).unwrap();
        }
        let mut got = nl.links().unwrap();
        got.sort();
        let mut want = names.clone();
        want.push("lo".into());
        want.sort();
        assert_eq!(got, want);
        assert_eq!(nl.links_detailed().unwrap().iter().filter(|d| d.bridge).count(), names.len());
        // One connection shared by threads: each request reads its own replies.
        std::thread::scope(|s| {
            for t in 0..4 {
                let (nl, names) = (&nl, &names);
                s.spawn(move || {
                    for i in 0..50 {
                        let n = &names[(t * 50 + i) % names.len()];
                        assert!(nl.link_index(n).unwrap().is_some(), "{n}");
                        if i % 10 == 0 {
                            assert_eq!(nl.links().unwrap().len(), names.len() + 1);
                        }
                    }
                });
            }
        });
    }

    /// Not a timing assertion: prints what a short-lived user (the
    /// monitor's teardown, `system check`) pays to open a connection and ask
    /// one question.
    #[test]
    fn open_and_one_lookup_cost() {
        let runs = 200;
        let t = std::time::Instant::now();
        for _ in 0..runs {
            let nl = Netlink::new().unwrap();
            assert!(nl.link_index("lo").unwrap().is_some());
        }
        eprintln!("Netlink::new() + link_index(\"lo\"): {:.1} us each ({runs} runs)", t.elapsed().as_secs_f64() * 1e6 / runs as f64);
    }

    #[test]
    fn own_namespace_is_readable() {
        // Read-only: the host's links and routes are listed, never changed.
        let nl = Netlink::new().unwrap();
        assert!(nl.links().unwrap().iter().any(|n| n == "lo"));
        assert!(nl.link_index("lo").unwrap().is_some());
        nl.routes_v4().unwrap();
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Netlink>();
    }
}
