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
