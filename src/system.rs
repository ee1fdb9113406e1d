//! `berth system`: what this engine runs on, and the leak check.
//!
//! The check looks for what berth made in the kernel and on disk that the
//! store no longer accounts for: links (found by the owner alias berth
//! writes on every bridge, veth and tap), rules in this root's nftables
//! tables, mounts and directories under the root, processes started for
//! this root, and containers whose monitor died. `--repair` removes them.

use std::collections::HashSet;

use serde::Serialize;


#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub containers: usize,
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
    pub images: usize,
    pub networks: usize,
    pub server_version: String,
    pub storage_driver: String,
    pub cgroup_version: u32,
    /// Who manages containers' cgroups: berth itself, through the files.
    pub cgroup_driver: String,
    /// Where this root's containers' cgroups live.
    pub cgroup_parent: String,
    pub kernel_version: String,
    pub os: String,
    pub architecture: String,
    pub cpus: usize,
    pub total_memory: u64,
    pub root_dir: String,
    pub run_dir: String,
    pub link_emulation: String,
    /// Whether this berth runs without root, and with which pieces.
    pub rootless: bool,
    pub rootless_pieces: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What kind of object: bridge, veth, tap, nftables, mount, directory,
    /// process, container.
    pub kind: &'static str,
    pub object: String,
    pub reason: String,
    /// With --repair: None if repaired, else why not.
    pub repair_error: Option<String>,
    pub repaired: bool,
    /// Left by another root, one that no longer exists: shown, and
    /// removed only with `--all-roots`.
    pub other_root: bool,
    /// Not a leftover: on its way out by itself (a veth whose namespace only
    /// the kernel still holds). Shown, not counted; --repair removes it now.
    pub transient: bool,
}

pub(crate) enum Fix {
    DeleteLink(String),
    /// Start a service's supervisor.
    Supervise(String),
    Rebridge { link: String, bridge: String },
    SyncFirewall,
    SyncLoss,
    Unmount(std::path::PathBuf),
    RemoveContainerFiles(String),
    Kill(i32),
    RemoveFile(std::path::PathBuf),
    MarkExited(String),
    /// Kill what is left in a cgroup and remove it.
    RemoveCgroup(String),
    /// Drop a container's record, endpoints and files: a create or rm cut short.
    ForgetContainer(String),
    /// Drop an endpoint record whose link is missing.
    Detach { container: String, network: String },
    /// Remove the network namespace of a container that is not running.
    Teardown(String),
    /// Drop a network's record: a create or rm cut short between row and bridge.
    ForgetNetwork(String),
    /// Make the bridge a network's record names again.
    RecreateBridge(String),
    /// Make a recorded volume's directory again.
    MakeVolumeDir(String),
    RemoveDir(std::path::PathBuf),
    /// Remove the layers and blobs no image reaches.
    DropUnreached,
    DeleteTable { family: String, name: String },
    /// Remove a service whose create was cut short.
    RemoveService(String),
    /// Remove a stack whose deploy was cut short.
    RemoveStack(String),
    /// Bring a service back to its record (scale, update cut short).
    ReconcileService(String),
    /// Kill what runs in a cgroup tree and remove it, bottom up.
    RemoveCgroupTree(String),
}

/// The ids (as the host numbers them) of every network namespace something
/// holds: a process living in it, an open file of it, a bind mount of it.
pub(crate) fn held_netns_ids() -> HashSet<i32> {
    let Ok(nl) = crate::sys::netlink::Netlink::new() else { return HashSet::new() };
    let mut seen: HashSet<String> = HashSet::new();
    let mut ids = HashSet::new();
    let mut consider = |path: std::path::PathBuf, name: Option<String>| {
        let name = name.or_else(|| std::fs::read_link(&path).ok().map(|t| t.to_string_lossy().into_owned()));
        if let Some(n) = &name
            && !seen.insert(n.clone())
        {
            return;
        }
        if let Ok(f) = std::fs::File::open(&path)
            && let Ok(Some(id)) = nl.nsid_of(&f)
        {
            ids.insert(id);
        }
    };
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if !p.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        consider(p.path().join("ns/net"), None);
        for fd in std::fs::read_dir(p.path().join("fd")).into_iter().flatten().flatten() {
            if let Ok(t) = std::fs::read_link(fd.path())
                && t.to_string_lossy().starts_with("net:[")
            {
                consider(fd.path(), Some(t.to_string_lossy().into_owned()));
            }
        }
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for l in info.lines() {
        // Fields after " - " are: fstype source options.
        if l.split(" - ").nth(1).is_some_and(|rest| rest.starts_with("nsfs ")) {
            if let Some(m) = crate::sys::mount::mount_point_of_line(l) {
                consider(m, None);
            }
        }
    }
    ids
}

pub(crate) fn os_name() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

pub(crate) fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Interface names and IPv4 addresses named in an nftables ruleset: what
/// ties a rule to a network, a container or a published port.
pub(crate) fn rule_tokens(text: &str) -> HashSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'))
        .filter(|t| t.parse::<std::net::Ipv4Addr>().is_ok() || t.starts_with("br-") || t.starts_with("vb") || t.starts_with("vd") || *t == "berth0")
        .map(String::from)
        .collect()
}

/// `name` (process command line words) and BERTH_ROOT of pid.
pub(crate) fn berth_process(pid: i32) -> Option<(Vec<String>, String)> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let root = env.split(|b| *b == 0).find_map(|kv| kv.strip_prefix(b"BERTH_ROOT="))?;
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = cmd.split(|b| *b == 0).filter(|w| !w.is_empty()).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
    Some((words, String::from_utf8_lossy(root).into_owned()))
}

/// Other berth commands running on `root` now (not monitors or delay
/// lines): a pull or build among them has layers no image reaches yet.
pub(crate) fn other_clients(root: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let exe = std::env::current_exe().ok();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if pid == me || std::fs::read_link(format!("/proc/{pid}/exe")).ok() != exe {
            continue;
        }
        let Some((words, r)) = berth_process(pid) else { continue };
        if r == root && !matches!(words.get(1).map(String::as_str), Some("monitor" | "delay-line" | "supervise" | "agent")) {
            out.push(pid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_tie_rules_to_objects() {
        let t = rule_tokens("iifname \"br-0123456789ab\" ip daddr 10.1.2.3 tcp dport 80 dnat to 172.17.0.2:80 oifname berth0 counter");
        let mut v: Vec<_> = t.into_iter().collect();
        v.sort();
        assert_eq!(v, ["10.1.2.3", "172.17.0.2", "berth0", "br-0123456789ab"]);
    }
}

// ---- df and prune ----

#[derive(Debug, Clone, Default, Serialize)]
pub struct DfRow {
    pub total: usize,
    pub active: usize,
    pub size: u64,
    pub reclaimable: u64,
}

impl DfRow {
    /// Counts one object; what no one uses can be reclaimed.
    pub(crate) fn count(&mut self, size: u64, in_use: bool) {
        self.total += 1;
        self.size += size;
        if in_use {
            self.active += 1;
        } else {
            self.reclaimable += size;
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DfItem {
    pub kind: &'static str,
    /// The image or container ID, the volume's name.
    pub id: String,
    pub name: String,
    pub size: u64,
    /// Of an image's size, what its layers shared with other images hold.
    pub shared: u64,
    pub in_use: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Df {
    pub images: DfRow,
    pub containers: DfRow,
    pub volumes: DfRow,
    pub build_cache: DfRow,
    /// Each object, for `df -v`.
    pub items: Vec<DfItem>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Pruned {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub images: Vec<String>,
    pub volumes: Vec<String>,
    pub build_cache: usize,
    pub reclaimed: u64,
    /// Test runs whose runner died, whose objects were removed first.
    pub test_runs: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Reset {
    pub stacks: usize,
    pub services: usize,
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
    pub images: usize,
    pub build_cache: usize,
}

// ---- stats ----

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub id: String,
    pub name: String,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub memory_limit: u64,
    pub memory_percent: f64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}
