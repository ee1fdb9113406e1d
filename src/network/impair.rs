//! Link emulation: delay, jitter, loss and rate on a container's link,
//! applied to what the container sends on it (as `tc netem` on its
//! interface would).
//!
//! Two mechanisms, chosen once per process from what the kernel has:
//! - `netem`: tc netem (delay, jitter, loss) with a tbf child (rate), on the
//!   container's interface;
//! - `userspace`, for kernels built without sch_netem: loss by an nftables
//!   `numgen random` rule where its frames enter the host, rate by tbf, and
//!   delay and jitter by a delay line process (sys/delayline.rs) spliced
//!   between the container's veth and its bridge.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::Paths;
use crate::sys::delayline;
use crate::sys::netlink::Netlink;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Impairment {
    #[serde(default)]
    pub delay_us: u64,
    #[serde(default)]
    pub jitter_us: u64,
    /// Percent of frames lost, 0 to 100.
    #[serde(default)]
    pub loss: f64,
    /// Bits per second; 0 is unlimited.
    #[serde(default)]
    pub rate_bps: u64,
}

impl Impairment {
    pub fn is_none(&self) -> bool {
        self.delay_us == 0 && self.jitter_us == 0 && self.loss == 0.0 && self.rate_bps == 0
    }

    fn delays(&self) -> bool {
        self.delay_us > 0 || self.jitter_us > 0
    }

    /// Checks the combination: jitter without delay would hold frames for
    /// a negative time half of the time.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=100.0).contains(&self.loss) {
            return Err(format!("loss must be a percentage from 0 to 100, not {}", self.loss));
        }
        if self.jitter_us > self.delay_us {
            return Err(format!("jitter ({}) must not exceed the delay ({}); set a delay of at least the jitter", fmt_us(self.jitter_us), fmt_us(self.delay_us)));
        }
        Ok(())
    }
}

impl std::fmt::Display for Impairment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.delay_us > 0 {
            parts.push(format!("delay {}", fmt_us(self.delay_us)));
        }
        if self.jitter_us > 0 {
            parts.push(format!("jitter {}", fmt_us(self.jitter_us)));
        }
        if self.loss > 0.0 {
            parts.push(format!("loss {}%", self.loss));
        }
        if self.rate_bps > 0 {
            parts.push(format!("rate {}", fmt_rate(self.rate_bps)));
        }
        if parts.is_empty() {
            parts.push("none".into());
        }
        f.write_str(&parts.join(" "))
    }
}

fn fmt_us(us: u64) -> String {
    if us.is_multiple_of(1_000_000) {
        format!("{}s", us / 1_000_000)
    } else if us.is_multiple_of(1000) {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

fn fmt_rate(bps: u64) -> String {
    for (div, unit) in [(1_000_000_000, "gbit"), (1_000_000, "mbit"), (1000, "kbit")] {
        if bps.is_multiple_of(div) {
            return format!("{}{unit}", bps / div);
        }
    }
    format!("{bps}bit")
}

fn split_number(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let n: f64 = s[..end].parse().ok()?;
    Some((n, s[end..].trim().to_ascii_lowercase()))
}

/// Microseconds, for tc: "50ms", "1.5s", "200us" (tc's "usec", "msec" and
/// "sec" too); a bare number is milliseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("usec").map(|n| format!("{n}us")).or_else(|| t.strip_suffix("msec").map(|n| format!("{n}ms"))).or_else(|| t.strip_suffix("sec").map(|n| format!("{n}s"))).unwrap_or_else(|| t.to_string());
    crate::parse::duration(&t, Some(std::time::Duration::from_millis(1)))
        .map(|d| d.as_micros() as u64)
        .map_err(|_| format!("invalid duration {s:?}: use a number with us, ms or s, like 50ms"))
}

/// tc's rate units: bit, kbit, mbit, gbit per second, or bps, kbps, mbps,
/// gbps in bytes per second; a bare number is bits per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid rate {s:?}: use a number with kbit, mbit or gbit (bits per second) or kbps, mbps (bytes per second), like 10mbit");
    let (n, unit) = split_number(s).ok_or_else(bad)?;
    let mult = match unit.as_str() {
        "" | "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        _ => return Err(bad()),
    };
    let r = (n * mult).round() as u64;
    if r > 0 && r < 8000 {
        return Err(format!("rate {s:?} is below 8kbit, too slow for any real frame"));
    }
    Ok(r)
}

/// "1.5%" or "1.5" (percent).
pub fn parse_loss(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches('%');
    t.trim().parse::<f64>().ok().filter(|v| (0.0..=100.0).contains(v)).ok_or_else(|| format!("invalid loss {s:?}: use a percentage from 0 to 100, like 1.5 or 1.5%"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Netem,
    Userspace,
}

impl Mechanism {
    pub fn describe(self) -> &'static str {
        match self {
            Mechanism::Netem => "tc netem (delay, jitter, loss) + tbf (rate)",
            Mechanism::Userspace => "user-space delay line (delay, jitter) + nftables numgen (loss) + tbf (rate); this kernel has no sch_netem",
        }
    }
}

/// The mechanism this kernel allows. `BERTH_IMPAIR=userspace` forces the
/// fallback (to exercise it on kernels that have netem).
pub fn mechanism() -> Mechanism {
    static M: OnceLock<Mechanism> = OnceLock::new();
    *M.get_or_init(|| {
        match std::env::var("BERTH_IMPAIR").as_deref() {
            Ok("userspace") => return Mechanism::Userspace,
            Ok("netem") => return Mechanism::Netem,
            _ => {}
        }
        if netem_in_kernel() {
            Mechanism::Netem
        } else {
            Mechanism::Userspace
        }
    })
}

fn netem_in_kernel() -> bool {
    if Path::new("/sys/module/sch_netem").exists() {
        return true;
    }
    let release = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    let module = || {
        let dir = Path::new("/lib/modules").join(&release).join("kernel/net/sched");
        std::fs::read_dir(dir).map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("sch_netem.ko"))).unwrap_or(false)
    };
    match kernel_config(&release, "CONFIG_NET_SCH_NETEM") {
        Some(v) if v == "y" => true,
        Some(v) if v == "m" => module(),
        Some(_) => false,
        None => module(),
    }
}

/// A kernel build option's value from /proc/config.gz or /boot/config-*;
/// Some("") when the config is readable but the option is not set.
fn kernel_config(release: &str, key: &str) -> Option<String> {
    use std::io::Read;
    let text = match std::fs::File::open("/proc/config.gz") {
        Ok(f) => {
            let mut s = String::new();
            flate2::read::GzDecoder::new(f).read_to_string(&mut s).ok()?;
            s
        }
        Err(_) => std::fs::read_to_string(format!("/boot/config-{release}")).ok()?,
    };
    let prefix = format!("{key}=");
    Some(text.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or("").to_string())
}

// ---- applying ----

/// One impaired link of a container: its interface index (ethN) and the
/// bridge its host end belongs on.
#[derive(Debug, Clone)]
pub struct Link {
    pub position: i64,
    /// The network's name and bridge.
    pub network: String,
    pub bridge: String,
    pub impairment: Impairment,
}

/// Runs `tc` in namespace `ns`; `line` holds its arguments (interface
/// names and numbers, never spaces).
fn tc(ns: &Path, line: &str) -> io::Result<std::process::Output> {
    let mut cmd = Command::new(crate::sys::proc::tool("tc"));
    crate::sys::proc::enter_netns_on_exec(&mut cmd, ns)?;
    cmd.args(line.split_whitespace()).stdin(Stdio::null()).output().map_err(|e| io::Error::new(e.kind(), format!("running tc (package iproute2): {e}")))
}

fn tc_ok(ns: &Path, line: &str) -> io::Result<()> {
    let out = tc(ns, line)?;
    if !out.status.success() {
        return Err(io::Error::other(format!("tc {line}: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

fn tbf(rate_bps: u64) -> String {
    // 20 ms worth of tokens, at least two full frames: small enough to
    // hold the rate, large enough not to starve a slow link.
    let burst = (rate_bps / 8 / 50).max(3200);
    format!("tbf rate {rate_bps}bit burst {burst} latency 200ms")
}

/// Sets the qdiscs of `eth` in the namespace `ns` for `imp` (netem mode:
/// everything; user-space mode: the rate only).
fn apply_qdisc(ns: &Path, eth: &str, imp: &Impairment, mech: Mechanism) -> io::Result<()> {
    // Deleting first makes a change of kind (netem to tbf) as clean as a
    // fresh set-up; "no qdisc" is not an error here.
    let _ = tc(ns, &format!("qdisc del dev {eth} root"));
    if mech == Mechanism::Netem && (imp.delays() || imp.loss > 0.0) {
        let mut line = format!("qdisc add dev {eth} root handle 1: netem");
        if imp.delays() {
            line += &format!(" delay {}us", imp.delay_us);
            if imp.jitter_us > 0 {
                line += &format!(" {}us", imp.jitter_us);
            }
        }
        if imp.loss > 0.0 {
            line += &format!(" loss {}%", imp.loss);
        }
        tc_ok(ns, &line)?;
        if imp.rate_bps > 0 {
            tc_ok(ns, &format!("qdisc add dev {eth} parent 1:1 handle 10: {}", tbf(imp.rate_bps)))?;
        }
    } else if imp.rate_bps > 0 {
        tc_ok(ns, &format!("qdisc add dev {eth} root handle 1: {}", tbf(imp.rate_bps)))?;
    }
    Ok(())
}

/// The rules of the loss table (netdev family, one chain per lossy link),
/// from (container id, position, impairment): the drop happens where the container's
/// frames enter the host (the veth, or the delay line's tap), so it is as
/// silent to the sender as a lossy wire. Links whose device is missing
/// (container never started) are left out.
pub fn loss_rules(links: &[(String, i64, Impairment)], existing: &std::collections::HashSet<String>) -> Option<String> {
    let mut chains = Vec::new();
    for (cid, position, imp) in links {
        if imp.loss <= 0.0 {
            continue;
        }
        let dev = if mechanism() == Mechanism::Userspace && imp.delays() { tap_name(cid, *position) } else { super::veth_name(cid, *position) };
        if !existing.contains(&dev) {
            continue;
        }
        // Parts per million: a percentage with four decimals.
        let ppm = (imp.loss * 10_000.0).round() as u64;
        let test = if ppm >= 1_000_000 { String::new() } else { format!("numgen random mod 1000000 < {ppm} ") };
        chains.push(format!("    chain {dev} {{\n        type filter hook ingress device \"{dev}\" priority 0; policy accept;\n        {test}counter drop\n    }}"));
    }
    if chains.is_empty() {
        None
    } else {
        Some(chains.join("\n"))
    }
}

/// Brings the container's links to the impairments in `links` (every
/// endpoint of the container, impaired or not) inside namespace `ns`.
pub fn apply(paths: &Paths, container_id: &str, ns: &Path, links: &[Link]) -> io::Result<()> {
    let mech = mechanism();
    for l in links {
        let eth = format!("eth{}", l.position);
        apply_qdisc(ns, &eth, &l.impairment, mech).map_err(|e| io::Error::new(e.kind(), format!("shaping {eth}: {e}")))?;
        if mech == Mechanism::Userspace {
            stop_delay_line(paths, container_id, l.position, Some(&l.bridge))?;
            if l.impairment.delays() {
                start_delay_line(paths, container_id, l)?;
            }
        }
    }
    Ok(())
}

// ---- the delay line process ----

fn pid_file(paths: &Paths, container_id: &str, position: i64) -> PathBuf {
    paths.run.join("delay").join(format!("{}-{position}", &container_id[..12]))
}

pub fn tap_name(container_id: &str, position: i64) -> String {
    format!("vd{}{}", &container_id[..10], position)
}

fn start_delay_line(paths: &Paths, container_id: &str, l: &Link) -> io::Result<()> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args(["delay-line", container_id, &l.position.to_string(), &l.bridge, &l.impairment.delay_us.to_string(), &l.impairment.jitter_us.to_string()])
        .env("BERTH_ROOT", &paths.root)
        .env("BERTH_RUN", &paths.run)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("starting the delay line: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!("the delay line did not start: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// Stops the delay line of (container, position) if one runs, and puts the
/// veth back on `bridge` (when given and the veth still exists).
pub fn stop_delay_line(paths: &Paths, container_id: &str, position: i64, bridge: Option<&str>) -> io::Result<()> {
    kill_delay_line(paths, container_id, position);
    if let Some(br) = bridge {
        let nl = Netlink::new()?;
        let veth = super::veth_name(container_id, position);
        if nl.link_index(&veth)?.is_some() {
            nl.set_master(&veth, br)?;
        }
    }
    Ok(())
}

/// Ends the delay line's process and forgets it. No netlink here: the
/// monitor calls this (through `stop_all`), and links no netlink client.
fn kill_delay_line(paths: &Paths, container_id: &str, position: i64) {
    let pf = pid_file(paths, container_id, position);
    let Ok(text) = std::fs::read_to_string(&pf) else { return };
    let mut it = text.split_whitespace();
    let pid: i32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let started: Option<u64> = it.next().and_then(|s| s.parse().ok());
    if pid > 0 && crate::sys::proc::is_alive(pid, started)
        && let Ok(fd) = crate::sys::proc::pidfd_open(pid) {
            let _ = crate::sys::proc::pidfd_send_signal(&fd, libc::SIGTERM);
            if !crate::sys::proc::pidfd_wait(&fd, Some(Duration::from_secs(2))).unwrap_or(false) {
                let _ = crate::sys::proc::pidfd_send_signal(&fd, libc::SIGKILL);
                let _ = crate::sys::proc::pidfd_wait(&fd, Some(Duration::from_secs(2)));
            }
        }
    let _ = std::fs::remove_file(&pf);
}

/// Stops every delay line of the container (its namespace is going away).
pub fn stop_all(paths: &Paths, container_id: &str) {
    let prefix = format!("{}-", &container_id[..12]);
    if let Ok(d) = std::fs::read_dir(paths.run.join("delay")) {
        for e in d.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pos) = name.strip_prefix(&prefix).and_then(|p| p.parse().ok()) {
                kill_delay_line(paths, container_id, pos);
            }
        }
    }
}

/// Entry of the hidden `delay-line CONTAINER POSITION BRIDGE DELAY_US
/// JITTER_US` subcommand: splices the line in, then leaves a daemon relaying
/// while the first process reports success by its exit status.
pub fn delay_line_main(paths: &Paths, args: &[String]) -> i32 {
    match splice(paths, args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn splice(paths: &Paths, args: &[String]) -> io::Result<()> {
    let [cid, pos, bridge, delay, jitter] = args else {
        return Err(io::Error::other("usage: berth delay-line CONTAINER POSITION BRIDGE DELAY_US JITTER_US"));
    };
    let num = |s: &str| s.parse::<u64>().map_err(|_| io::Error::other(format!("not a number: {s}")));
    let position: i64 = num(pos)? as i64;
    let d = delayline::Delay { delay: Duration::from_micros(num(delay)?), jitter: Duration::from_micros(num(jitter)?) };
    if cid.len() < 12 {
        return Err(io::Error::other("container id too short"));
    }
    let veth = super::veth_name(cid, position);
    let tap = tap_name(cid, position);
    let nl = Netlink::new()?;
    let ifindex = nl.link_index(&veth)?.ok_or_else(|| io::Error::other(format!("no link {veth}: is the container's network set up?")))?;
    let tapfd = delayline::open_tap(&tap)?;
    let undo = |nl: &Netlink| {
        let _ = nl.set_master(&veth, bridge);
    };
    let r = (|| -> io::Result<std::os::fd::OwnedFd> {
        nl.set_alias(&tap, &super::owner_alias(paths, cid))?;
        nl.set_master(&tap, bridge)?;
        nl.set_up(&tap)?;
        // Off the bridge the veth is a bare host link: it must not answer
        // ARP for the host's addresses nor speak IPv6 into the container.
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{veth}/arp_ignore"), "8");
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{veth}/disable_ipv6"), "1");
        let pkt = delayline::packet_socket(ifindex)?;
        nl.set_nomaster(&veth)?;
        Ok(pkt)
    })();
    let pkt = match r {
        Ok(p) => p,
        Err(e) => {
            undo(&nl);
            return Err(e);
        }
    };
    drop(nl);
    let pf = pid_file(paths, cid, position);
    std::fs::create_dir_all(pf.parent().unwrap())?;
    match crate::sys::proc::fork()? {
        Some(child) => {
            let started = crate::sys::proc::start_time(child).map(|s| s.to_string()).unwrap_or_default();
            std::fs::write(&pf, format!("{child} {started}\n"))?;
            Ok(())
        }
        None => {
            let _ = crate::sys::proc::setsid();
            if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
                use std::os::fd::AsRawFd;
                for fd in 0..3 {
                    let _ = crate::sys::proc::dup_onto(null.as_raw_fd(), fd);
                }
            }
            let code = match delayline::relay(&pkt, &tapfd, d) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            crate::sys::proc::exit_now(code)
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tc_style_values() {
        assert_eq!(parse_duration("50ms").unwrap(), 50_000);
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000);
        assert_eq!(parse_duration("200us").unwrap(), 200);
        assert_eq!(parse_duration("20").unwrap(), 20_000);
        assert!(parse_duration("5 parsecs").unwrap_err().contains("50ms"));
        assert_eq!(parse_rate("10mbit").unwrap(), 10_000_000);
        assert_eq!(parse_rate("1mbps").unwrap(), 8_000_000);
        assert_eq!(parse_rate("512kbit").unwrap(), 512_000);
        assert!(parse_rate("10 furlongs").is_err());
        assert!(parse_rate("100bit").is_err());
        assert_eq!(parse_loss("1.5%").unwrap(), 1.5);
        assert_eq!(parse_loss("100").unwrap(), 100.0);
        assert!(parse_loss("101").is_err());
        assert!(parse_loss("x").is_err());
    }

    #[test]
    fn shows_and_checks() {
        let i = Impairment { delay_us: 50_000, jitter_us: 5_000, loss: 1.0, rate_bps: 10_000_000 };
        assert_eq!(i.to_string(), "delay 50ms jitter 5ms loss 1% rate 10mbit");
        assert!(i.validate().is_ok());
        assert_eq!(Impairment::default().to_string(), "none");
        let bad = Impairment { jitter_us: 10_000, ..Default::default() };
        assert!(bad.validate().unwrap_err().contains("jitter"));
    }
}
