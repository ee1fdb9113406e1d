//! nftables: berth's rules live in tables of their own, replaced whole and
//! atomically with `nft -f -` (one transaction), never edited rule by rule.

use std::io::{self, Write};
use std::process::{Command, Stdio};

fn run(script: &str) -> io::Result<()> {
    run_in(crate::rootless::netns_made().as_deref(), script)
}

/// `nft` in the host's namespace as berth sees it (a rootless berth's is
/// its rootless network namespace).
fn nft() -> Command {
    let mut cmd = Command::new(crate::sys::proc::tool("nft"));
    if let Some(ns) = crate::rootless::netns_made() {
        let _ = crate::sys::proc::enter_netns_on_exec(&mut cmd, &ns);
    }
    cmd
}

/// Runs `nft -f -` in the network namespace at `netns` (None: ours).
pub fn run_in(netns: Option<&std::path::Path>, script: &str) -> io::Result<()> {
    let mut cmd = Command::new(crate::sys::proc::tool("nft"));
    if let Some(ns) = netns {
        crate::sys::proc::enter_netns_on_exec(&mut cmd, ns)?;
    }
    let mut child = cmd
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("running nft (package nftables): {e}")))?;
    child.stdin.take().unwrap().write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("nft refused the ruleset: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// Replaces table `family name` with `body` (the text between its braces)
/// in one transaction.
pub fn replace_table(family: &str, name: &str, body: &str) -> io::Result<()> {
    // Declaring then deleting makes the delete valid whether or not the
    // table existed; the new one follows in the same transaction.
    run(&format!("table {family} {name} {{}}\ndelete table {family} {name}\ntable {family} {name} {{\n{body}\n}}\n"))
}

pub fn delete_table(family: &str, name: &str) -> io::Result<()> {
    run(&format!("table {family} {name} {{}}\ndelete table {family} {name}\n"))
}

pub fn table_exists(family: &str, name: &str) -> bool {
    nft().args(["list", "table", family, name]).stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false)
}

/// Every table on the host: (family, name).
pub fn tables() -> Vec<(String, String)> {
    let Ok(out) = nft().args(["list", "tables"]).stderr(Stdio::null()).output() else { return vec![] };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("table")).then_some(())?;
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// The table's text as `nft list table` prints it, or None if it is absent.
pub fn list_table(family: &str, name: &str) -> Option<String> {
    let out = nft().args(["list", "table", family, name]).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether chain `table chain` of family `af` (libc::AF_INET for ip)
/// exists, asked of the kernel over nfnetlink: a microsecond, where an
/// `nft list` is a 6-13 ms process here. None when the kernel could not be
/// asked (no nf_tables, a seccomp'd sandbox): the caller asks nft instead.
pub fn chain_exists(af: u8, table: &str, chain: &str) -> Option<bool> {
    use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_GETCHAIN: u16 = 4;
    const NFT_MSG_NEWCHAIN: u16 = 3;
    const NFTA_CHAIN_TABLE: u16 = 1;
    const NFTA_CHAIN_NAME: u16 = 3;
    let mut msg = vec![0u8; 16];
    msg.extend_from_slice(&[af, 0, 0, 0]); // nfgenmsg: family, version 0, res_id 0
    for (kind, text) in [(NFTA_CHAIN_TABLE, table), (NFTA_CHAIN_NAME, chain)] {
        let len = 4 + text.len() + 1;
        msg.extend_from_slice(&(len as u16).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(text.as_bytes());
        msg.push(0);
        msg.resize(msg.len().next_multiple_of(4), 0);
    }
    let len = msg.len() as u32;
    msg[0..4].copy_from_slice(&len.to_ne_bytes());
    msg[4..6].copy_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETCHAIN).to_ne_bytes());
    msg[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // As the route socket in sys::netlink: connected to the kernel, and
    // read a whole datagram at a time.
    let sock = Socket::new(NETLINK_NETFILTER).ok()?;
    sock.connect(&SocketAddr::new(0, 0)).ok()?;
    if sock.send(&msg, 0).ok()? != msg.len() {
        return None;
    }
    let mut buf = Vec::new();
    let n = crate::sys::netlink::recv_datagram(&sock, &mut buf).ok()?;
    if n < 16 {
        return None;
    }
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    if kind == libc::NLMSG_ERROR as u16 {
        let errno = -i32::from_ne_bytes(buf.get(16..20)?.try_into().ok()?);
        return (errno == libc::ENOENT).then_some(false);
    }
    (kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN).then_some(true)
}

#[cfg(test)]
mod tests {
    /// The kernel's answer agrees with nft's, for a chain made here and
    /// for one that is not there.
    #[test]
    fn a_chain_is_found_over_netlink_as_nft_finds_it() {
        let table = format!("berth_chaintest_{}", std::process::id());
        super::run_in(None, &format!("table ip {table} {{\n chain FORWARD {{\n type filter hook forward priority 0;\n }}\n}}\n")).unwrap();
        let found = super::chain_exists(libc::AF_INET as u8, &table, "FORWARD");
        let other = super::chain_exists(libc::AF_INET as u8, &table, "nosuch");
        let no_table = super::chain_exists(libc::AF_INET as u8, "berth_no_such_table", "FORWARD");
        let _ = super::delete_table("ip", &table);
        assert_eq!((found, other, no_table), (Some(true), Some(false), Some(false)));
    }
}
