//! Lab hosts: several "machines" on one, for multi-host labs and tests.
//! A host is a network namespace with its own berth root and runtime
//! directory, wired by a veth to an underlay bridge the lab owns, at
//! 10.99.0.(i+1)/24 on that bridge. berth runs inside a host as on a real
//! machine: `berth` started in its namespace with its root.
//!
//! The underlay has no address in the caller's namespace: labs never route
//! into each other, so every lab can use the same underlay subnet.
//!
//! What a lab made is found again from its directory under the runtime
//! dir (`labhosts/LAB/hosts.json`, and the namespaces beside it), so
//! `lab::down` from another script or `berth lab down` removes it all.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::store::Paths;
use crate::sys::netlink::{self, Netlink};

pub const MAX_HOSTS: u32 = 50;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LabHost {
    pub lab: String,
    pub name: String,
    pub index: u32,
    pub addr: Ipv4Addr,
    pub netns: PathBuf,
    pub root: PathBuf,
    pub run: PathBuf,
}

impl LabHost {
    /// A command that runs in this host: its network namespace, and its
    /// berth root for a `berth` started there. `berth` as the program is
    /// this very binary.
    pub fn command(&self, argv: &[String]) -> std::io::Result<Command> {
        let prog = match argv.first().map(String::as_str) {
            Some("berth") | None => std::env::current_exe()?,
            Some(p) => PathBuf::from(p),
        };
        let mut cmd = Command::new(prog);
        cmd.args(argv.iter().skip(1)).env("BERTH_ROOT", &self.root).env("BERTH_RUN", &self.run).env("BERTH_HOST", &self.name);
        crate::sys::proc::enter_netns_on_exec(&mut cmd, &self.netns)?;
        Ok(cmd)
    }
}

fn labs_dir(paths: &Paths) -> PathBuf {
    paths.run.join("labhosts")
}

fn lab_dir(paths: &Paths, lab: &str) -> PathBuf {
    labs_dir(paths).join(lab)
}

fn record(paths: &Paths, lab: &str) -> PathBuf {
    lab_dir(paths, lab).join("hosts.json")
}

/// A short stable tag of the lab within this root, for link names
/// (IFNAMSIZ leaves 15 characters).
fn tag(paths: &Paths, lab: &str) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in format!("{}:{lab}", paths.root.display()).bytes() {
        h = (h ^ b as u32).wrapping_mul(0x01000193);
    }
    format!("{h:08x}")
}

pub fn underlay(paths: &Paths, lab: &str) -> String {
    format!("bu{}", tag(paths, lab))
}

fn veth(paths: &Paths, lab: &str, i: u32) -> String {
    format!("bv{}-{i}", tag(paths, lab))
}

/// The alias of a lab's links, so `system check` knows them as the lab's.
pub fn alias(paths: &Paths, lab: &str) -> String {
    format!("{}lab:{lab}", crate::network::alias_prefix(paths))
}

fn check_name(lab: &str) -> Result<(), String> {
    let ok = !lab.is_empty() && lab.len() <= 32 && lab.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') && !lab.starts_with('-');
    if ok { Ok(()) } else { Err(format!("lab hosts {lab:?}: a lab name is 1 to 32 letters, digits, '-' or '_'")) }
}

/// The hosts of `lab`, or none.
pub fn list(paths: &Paths, lab: &str) -> Vec<LabHost> {
    std::fs::read(record(paths, lab)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Labs that have hosts in this root.
pub fn labs(paths: &Paths) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(labs_dir(paths)).into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Makes `n` hosts for `lab` (or returns them when the lab already has
/// exactly those). On failure nothing of it is left.
pub fn create(paths: &Paths, lab: &str, n: u32) -> Result<Vec<LabHost>, String> {
    check_name(lab)?;
    if n == 0 || n > MAX_HOSTS {
        return Err(format!("lab hosts {lab}: {n} hosts; a lab has 1 to {MAX_HOSTS}"));
    }
    let have = list(paths, lab);
    if !have.is_empty() {
        if have.len() == n as usize {
            return Ok(have);
        }
        return Err(format!("lab {lab} already has {} hosts, not {n}; remove it first (lab::down(\"{lab}\") or berth lab down {lab})", have.len()));
    }
    let r = make(paths, lab, n);
    if r.is_err() {
        let _ = remove_links(paths, lab);
        let _ = std::fs::remove_dir_all(lab_dir(paths, lab));
    }
    r
}

fn make(paths: &Paths, lab: &str, n: u32) -> Result<Vec<LabHost>, String> {
    let dir = lab_dir(paths, lab);
    std::fs::create_dir_all(&dir).map_err(|e| format!("lab hosts {lab}: creating {}: {e}", dir.display()))?;
    let err = |e: std::io::Error| format!("lab hosts {lab}: {e}");
    let nl = Netlink::new().map_err(err)?;
    let br = underlay(paths, lab);
    nl.create_bridge(&br).map_err(err)?;
    nl.set_alias(&br, &alias(paths, lab)).map_err(err)?;
    nl.set_up(&br).map_err(err)?;
    let mut hosts = Vec::new();
    for i in 0..n {
        let name = format!("{lab}-h{i}");
        let h = LabHost {
            lab: lab.to_string(),
            name: name.clone(),
            index: i,
            addr: Ipv4Addr::new(10, 99, 0, (i + 1) as u8),
            netns: dir.join(format!("{name}.netns")),
            root: paths.root.join("labhosts").join(lab).join(&name),
            run: dir.join(&name),
        };
        for d in [&h.root, &h.run] {
            std::fs::create_dir_all(d).map_err(|e| format!("lab hosts {lab}: creating {}: {e}", d.display()))?;
        }
        netlink::new_netns(&h.netns).map_err(err)?;
        let v = veth(paths, lab, i);
        let peer = format!("{v}p");
        nl.create_veth(&v, &peer).map_err(err)?;
        nl.set_alias(&v, &alias(paths, lab)).map_err(err)?;
        nl.set_master(&v, &br).map_err(err)?;
        nl.set_up(&v).map_err(err)?;
        let ns = std::fs::File::open(&h.netns).map_err(|e| format!("lab hosts {lab}: opening {}: {e}", h.netns.display()))?;
        nl.move_to_netns(&peer, &ns).map_err(err)?;
        let inside = Netlink::in_netns(&h.netns).map_err(err)?;
        inside.rename(&peer, "eth0").map_err(err)?;
        inside.add_address("eth0", h.addr, 24).map_err(err)?;
        inside.set_up("eth0").map_err(err)?;
        hosts.push(h);
    }
    let body = serde_json::to_vec_pretty(&hosts).map_err(|e| format!("lab hosts {lab}: {e}"))?;
    std::fs::write(record(paths, lab), body).map_err(|e| format!("lab hosts {lab}: writing {}: {e}", record(paths, lab).display()))?;
    Ok(hosts)
}

/// Every link the lab may have, whatever its record says (a create cut
/// short has none).
fn remove_links(paths: &Paths, lab: &str) -> std::io::Result<()> {
    let nl = Netlink::new()?;
    for i in 0..MAX_HOSTS {
        let v = veth(paths, lab, i);
        if nl.link_index(&v)?.is_some() {
            nl.delete_link(&v)?;
        }
    }
    let br = underlay(paths, lab);
    if nl.link_index(&br)?.is_some() {
        nl.delete_link(&br)?;
    }
    for e in std::fs::read_dir(lab_dir(paths, lab)).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "netns") {
            netlink::delete_netns(&e.path())?;
        }
    }
    Ok(())
}

/// Removes the lab's hosts: what runs in each goes first (`berth system
/// reset` there, then any process left of its root), then namespaces,
/// links and directories. Returns how many hosts there were.
pub fn down(paths: &Paths, lab: &str) -> Result<usize, String> {
    check_name(lab)?;
    let hosts = list(paths, lab);
    if hosts.is_empty() && !lab_dir(paths, lab).exists() {
        return Ok(0);
    }
    // Hosts are emptied side by side: each is its own berth.
    let mut problems: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = hosts.iter().map(|h| sc.spawn(move || empty(h))).collect();
        hs.into_iter().filter_map(|h| h.join().unwrap_or_else(|_| Err("emptying a host panicked".into())).err()).collect()
    });
    if let Err(e) = remove_links(paths, lab) {
        problems.push(format!("removing the links of lab {lab}: {e}"));
    }
    for h in &hosts {
        for m in crate::sys::mount::mount_points().into_iter().filter(|m| m.starts_with(&h.root) || m.starts_with(&h.run)).rev() {
            let _ = crate::sys::mount::umount_detach(&m);
        }
    }
    for d in [paths.root.join("labhosts").join(lab), lab_dir(paths, lab)] {
        if let Err(e) = std::fs::remove_dir_all(&d)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            problems.push(format!("removing {}: {e}", d.display()));
        }
    }
    for d in [paths.root.join("labhosts"), labs_dir(paths)] {
        let _ = std::fs::remove_dir(d);
    }
    if problems.is_empty() { Ok(hosts.len()) } else { Err(format!("lab down {lab}: {}", problems.join("; "))) }
}

/// Everything berth made in the host goes, and its processes.
fn empty(h: &LabHost) -> Result<(), String> {
    let mut why = None;
    // A swarm node stops being one first: its agent would otherwise start
    // its tasks again while the reset removes them, and any berth command
    // there would start the agent again. The whole swarm goes with the
    // lab, so nobody is told (a leave waits on etcd's quorum, node by node).
    let paths = Paths { root: h.root.clone(), run: h.run.clone() };
    if super::membership::load(&paths).is_some() {
        let _ = std::fs::remove_file(super::membership::path(&paths));
        let root = h.root.display().to_string();
        for pid in processes_of(&h.root) {
            if crate::system::berth_process(pid).is_some_and(|(w, r)| r == root && w.get(1).map(String::as_str) == Some("agent")) {
                let _ = crate::sys::proc::kill(pid, libc::SIGKILL);
            }
        }
    }
    match h.command(&["berth".into(), "system".into(), "reset".into(), "-f".into()]).and_then(|mut c| c.stdout(std::process::Stdio::null()).output()) {
        Ok(o) if o.status.success() => {}
        Ok(o) => why = why.or(Some(format!("berth system reset in host {}: {}", h.name, String::from_utf8_lossy(&o.stderr).trim()))),
        Err(e) => why = why.or(Some(format!("berth system reset in host {}: {e}", h.name))),
    }
    // Agents, etcd members and anything a reset could not stop.
    for pid in processes_of(&h.root) {
        let _ = crate::sys::proc::kill(pid, libc::SIGKILL);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !processes_of(&h.root).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    match why {
        Some(w) => Err(w),
        None => Ok(()),
    }
}

/// Processes started for a host's root (their BERTH_ROOT): berth's own
/// and the etcd member it started.
fn processes_of(root: &Path) -> Vec<i32> {
    let root = root.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| crate::system::berth_process(*pid).is_some_and(|(_, r)| r == root))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_differ_per_lab_and_root() {
        let p = |r: &str| Paths { root: r.into(), run: "/run/x".into() };
        assert!(veth(&p("/a"), "dc", 49).len() <= 15 && underlay(&p("/a"), "dc").len() <= 15);
        assert_ne!(underlay(&p("/a"), "dc"), underlay(&p("/b"), "dc"));
        assert_ne!(underlay(&p("/a"), "dc"), underlay(&p("/a"), "dc2"));
        assert!(check_name("dc-1").is_ok());
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(33)] {
            assert!(check_name(bad).unwrap_err().contains("lab name"), "{bad}");
        }
    }
}
