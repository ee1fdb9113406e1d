//! Links, addresses and routes over rtnetlink, for the network area.
//!
//! A small synchronous API over the async `rtnetlink` crate: a [`Netlink`]
//! owns one rtnetlink connection and a current-thread tokio runtime that
//! drives it only while one of its methods runs. No OS thread is spawned,
//! except the short-lived ones that `setns`/`unshare` need so that the
//! calling thread's network namespace never changes
//! ([`Netlink::in_netns`], [`new_netns`]).
//!
//! Call these functions from plain threads, never from inside a tokio
//! runtime (its `block_on` would panic there).
//!
//! Every error is an `io::Error` whose kind follows the kernel's errno and
//! whose message names the operation and the link:
//! `creating veth berth1a2b/eth0: File exists`.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use futures_util::stream::TryStreamExt;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use rtnetlink::{AddressMessageBuilder, Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

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

/// The longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

const ENODEV: i32 = libc::ENODEV;
const EEXIST: i32 = libc::EEXIST;
const EADDRNOTAVAIL: i32 = libc::EADDRNOTAVAIL;

/// One rtnetlink connection, bound to the network namespace it was opened
/// in, and the current-thread runtime that drives it.
pub struct Netlink {
    handle: Handle,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").finish_non_exhaustive()
    }
}

impl Netlink {
    /// A connection in the caller's network namespace.
    pub fn new() -> io::Result<Netlink> {
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
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
        let (conn, handle, _) = {
            let _enter = rt.enter();
            rtnetlink::new_connection()?
        };
        // The connection task runs whenever a method blocks on the runtime.
        rt.spawn(conn);
        Ok(Netlink { handle, rt })
    }

    /// The index of the link `name`, or `None` when there is no such link.
    pub fn link_index(&self, name: &str) -> io::Result<Option<u32>> {
        if name.is_empty() || name.len() > MAX_IFNAME {
            return Ok(None);
        }
        let m = self
            .rt
            .block_on(get_link(&self.handle, name))
            .map_err(|e| nl_err(format!("looking up link {name}"), e))?;
        Ok(m.map(|m| m.header.index))
    }

    /// Creates the bridge `name` (left down) and returns its index. An
    /// existing bridge of that name is returned as is; an existing link of
    /// another kind is an error.
    pub fn create_bridge(&self, name: &str) -> io::Result<u32> {
        let op = format!("creating bridge {name}");
        check_name(&op, name)?;
        self.rt.block_on(async {
            let added = self.handle.link().add(LinkBridge::new(name).build()).execute().await;
            match added {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(EEXIST) => {}
                Err(e) => return Err(nl_err(&op, e)),
            }
            match get_link(&self.handle, name).await.map_err(|e| nl_err(&op, e))? {
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
        })
    }

    /// Creates the veth pair `host` <-> `peer` (both left down) in this
    /// namespace.
    pub fn create_veth(&self, host: &str, peer: &str) -> io::Result<()> {
        let op = format!("creating veth {host}/{peer}");
        check_name(&op, host)?;
        check_name(&op, peer)?;
        self.rt
            .block_on(self.handle.link().add(LinkVeth::new(host, peer).build()).execute())
            .map_err(|e| nl_err(&op, e))
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
        match self.rt.block_on(self.handle.address().add(idx, IpAddr::V4(addr), prefix).execute()) {
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
        match self.rt.block_on(self.handle.address().del(msg).execute()) {
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
        self.rt.block_on(async {
            match self.handle.route().add(b.build()).execute().await {
                Ok(()) => Ok(()),
                Err(e) if errno(&e) == Some(EEXIST) => {
                    let routes = dump_routes_v4(&self.handle).await.map_err(|e| nl_err(&op, e))?;
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
        })
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
        match self.rt.block_on(self.handle.link().del(idx).execute()) {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
            Err(e) => Err(nl_err(&op, e)),
        }
    }

    /// The names of all links in this namespace.
    pub fn links(&self) -> io::Result<Vec<String>> {
        let msgs: Vec<LinkMessage> = self
            .rt
            .block_on(self.handle.link().get().execute().try_collect())
            .map_err(|e| nl_err("listing links", e))?;
        Ok(msgs.iter().filter_map(link_name).collect())
    }

    /// Every link as (name, alias, name of its bridge if any).
    pub fn links_detailed(&self) -> io::Result<Vec<LinkDetail>> {
        let msgs: Vec<LinkMessage> = self
            .rt
            .block_on(self.handle.link().get().execute().try_collect())
            .map_err(|e| nl_err("listing links", e))?;
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
        let routes = self.rt.block_on(dump_routes_v4(&self.handle)).map_err(|e| nl_err("listing routes", e))?;
        Ok(routes
            .iter()
            .filter(|r| table_of(r) == u32::from(RouteHeader::RT_TABLE_MAIN))
            .map(dst_of)
            .collect())
    }

    fn index_for(&self, op: &str, name: &str) -> io::Result<u32> {
        match self.link_index(name).map_err(|e| ctx(op, e))? {
            Some(i) => Ok(i),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("{op}: no such link"))),
        }
    }

    /// `ip link set`: RTM_NEWLINK on an existing index, without NLM_F_CREATE.
    /// The id this namespace gives the namespace `ns` (an nsfs file: a
    /// /proc/PID/ns/net or a bind mount of one), None if it gave it none.
    pub fn nsid_of(&self, ns: &File) -> io::Result<Option<i32>> {
        use futures_util::StreamExt;
        use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
        use netlink_packet_route::RouteNetlinkMessage;
        use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
        use rtnetlink::packet_core as netlink_packet_core;
        let mut msg = NsidMessage::default();
        msg.attributes = vec![NsidAttribute::Fd(ns.as_raw_fd() as u32)];
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(msg));
        req.header.flags = NLM_F_REQUEST;
        let mut resp = self.handle.clone().request(req).map_err(|e| nl_err("asking a namespace's id", e))?;
        self.rt.block_on(async {
            while let Some(r) = resp.next().await {
                match r.payload {
                    NetlinkPayload::Error(e) => return Err(nl_err("asking a namespace's id", rtnetlink::Error::NetlinkError(e))),
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => {
                        return Ok(m.attributes.iter().find_map(|a| match a {
                            NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                            _ => None,
                        }));
                    }
                    _ => {}
                }
            }
            Ok(None)
        })
    }

    fn change(&self, op: &str, msg: LinkMessage) -> io::Result<()> {
        self.rt.block_on(self.handle.link().change(msg).execute()).map_err(|e| nl_err(op, e))
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
            Netlink::connect()?.set_up("lo")?;
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

async fn get_link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, rtnetlink::Error> {
    let mut s = handle.link().get().match_name(name).execute();
    match s.try_next().await {
        Ok(m) => Ok(m),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn dump_routes_v4(handle: &Handle) -> Result<Vec<RouteMessage>, rtnetlink::Error> {
    let req = RouteMessageBuilder::<Ipv4Addr>::new().build();
    handle.route().get(req).execute().try_collect().await
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

/// The errno of a netlink error reply, positive.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| c.get().abs()),
        _ => None,
    }
}

fn nl_err(op: impl Display, e: rtnetlink::Error) -> io::Error {
    match errno(&e) {
        Some(code) => io::Error::new(
            io::Error::from_raw_os_error(code).kind(),
            format!("{op}: {}", Errno::from_raw(code).desc()),
        ),
        None => io::Error::other(format!("{op}: {e}")),
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
        nl.rt.block_on(get_link(&nl.handle, name)).unwrap().unwrap_or_else(|| panic!("no link {name}"))
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
