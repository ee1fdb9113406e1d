//! A rootless berth's networks, as podman's rootless netns: one network
//! namespace per user (owned by its user namespace, so berth is root there)
//! stands in for the host's. Its bridges, veths and nft table are made by
//! the same code as rootful ones, which reaches it through
//! `crate::rootless::in_host_netns`. slirp4netns links it to the host: a
//! tap device whose traffic leaves as the user's own sockets (egress), and
//! published ports, which slirp4netns listens on in the host's namespace
//! and forwards to the tap's address, where berth's DNAT takes them on.
//!
//! Made on first use and kept as long as the user's pause process (the
//! namespace is a bind mount in its mount namespace).

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::Paths;

/// The tap's address in the rootless namespace, where published ports
/// arrive (slirp4netns' default guest address).
pub const TAP_ADDR: &str = "10.0.2.100";

fn api_socket(paths: &Paths) -> PathBuf {
    paths.run.join("slirp4netns.sock")
}

fn pid_file(paths: &Paths) -> PathBuf {
    paths.run.join("slirp4netns.pid")
}

/// The pid of this user's live slirp4netns, if any.
pub fn slirp_pid(paths: &Paths) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(paths)).ok()?.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "slirp4netns").then_some(pid)
}

/// Makes the rootless namespace and starts slirp4netns when either is
/// missing. Nothing for a rootful berth.
pub fn ensure(paths: &Paths) -> io::Result<()> {
    let Some(ns) = crate::rootless::netns() else { return Ok(()) };
    if crate::rootless::netns_made().is_some() && slirp_pid(paths).is_some() {
        return Ok(());
    }
    std::fs::create_dir_all(&paths.run)?;
    let _lock = crate::store::FileLock::exclusive(&paths.run.join("netns-rootless.lock")).map_err(|e| io::Error::other(e.to_string()))?;
    if crate::rootless::netns_made().is_none() {
        let _ = crate::sys::netlink::delete_netns(&ns);
        crate::sys::netlink::new_netns(&ns)?;
        // Containers' traffic is routed through it, as through a host.
        crate::rootless::in_host_netns(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))??;
    }
    if slirp_pid(paths).is_none() {
        check_tun()?;
        start_slirp(paths, &ns)?;
    }
    Ok(())
}

/// slirp4netns needs /dev/net/tun, which an unprivileged user may open only
/// when it is mode 0666, as distributions ship it.
fn check_tun() -> io::Result<()> {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun") {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(io::Error::new(
            e.kind(),
            "rootless networks need /dev/net/tun, which this user may not open (it is not mode 0666, as distributions' udev makes it): as root, run `chmod 0666 /dev/net/tun`, or run containers with --network none",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(io::Error::new(e.kind(), "rootless networks need /dev/net/tun, which is missing: as root, run `modprobe tun`, or run containers with --network none")),
        Err(e) => Err(io::Error::new(e.kind(), format!("opening /dev/net/tun for rootless networks: {e}"))),
    }
}

fn start_slirp(paths: &Paths, ns: &Path) -> io::Result<()> {
    use crate::sys::proc;
    let sock = api_socket(paths);
    let _ = std::fs::remove_file(&sock);
    let log = paths.run.join("slirp4netns.log");
    let (ready_r, ready_w) = proc::pipe()?;
    let mut cmd = std::process::Command::new("slirp4netns");
    // --disable-host-loopback: a container must not reach what listens on
    // the host's 127.0.0.1 (as podman and rootless docker).
    cmd.args(["--configure", "--mtu=65520", "--disable-host-loopback", "--ready-fd=3", "--netns-type=path", "--api-socket"])
        .arg(&sock)
        .arg(ns)
        .arg("tap0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    match std::fs::OpenOptions::new().create(true).append(true).open(&log) {
        Ok(f) => cmd.stderr(f),
        Err(_) => cmd.stderr(std::process::Stdio::null()),
    };
    let pid = proc::spawn_daemon(&mut cmd, Some(&ready_w)).map_err(|e| io::Error::new(e.kind(), format!("starting slirp4netns (Debian's slirp4netns package) for rootless networks: {e}")))?;
    drop(ready_w);
    let ready = proc::poll(&[(ready_r.as_raw_fd(), libc::POLLIN)], 5000)?;
    let mut got = [0u8; 1];
    let ok = ready[0] != 0 && proc::read_fd(ready_r.as_raw_fd(), &mut got).unwrap_or(0) == 1 && got[0] == b'1';
    if !ok {
        let _ = proc::kill(pid, libc::SIGKILL);
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let last = said.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("; ");
        return Err(io::Error::other(format!("slirp4netns did not come up for rootless networks: {last}")));
    }
    std::fs::write(pid_file(paths), pid.to_string())
}

/// Stops slirp4netns and removes the namespace (`system reset`).
pub fn remove(paths: &Paths) {
    if let Some(pid) = slirp_pid(paths) {
        crate::sys::proc::terminate(pid, Duration::from_secs(1));
    }
    let _ = std::fs::remove_file(pid_file(paths));
    let _ = std::fs::remove_file(api_socket(paths));
    if let Some(ns) = crate::rootless::netns() {
        let _ = crate::sys::netlink::delete_netns(&ns);
    }
}

fn api(paths: &Paths, req: serde_json::Value) -> io::Result<serde_json::Value> {
    let sock = api_socket(paths);
    let mut s = std::os::unix::net::UnixStream::connect(&sock).map_err(|e| io::Error::new(e.kind(), format!("slirp4netns' API at {}: {e}", sock.display())))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(req.to_string().as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| io::Error::other(format!("slirp4netns' API answered {out:?}: {e}")))?;
    if let Some(err) = v.get("error") {
        let desc = err.get("desc").and_then(|d| d.as_str()).unwrap_or("an error");
        return Err(io::Error::other(desc.to_string()));
    }
    // slirp4netns 1.x answers bare ({"entries": ..}); QMP-style wraps it.
    Ok(v.get("return").cloned().unwrap_or(v))
}

/// A published port as slirp4netns holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Forward {
    pub proto: String,
    pub host_addr: String,
    pub host_port: u16,
}

/// Makes slirp4netns listen on exactly `want` (host address and port),
/// each forwarded to the same port at the tap's address.
pub fn sync_ports(paths: &Paths, want: &[Forward]) -> io::Result<()> {
    if crate::rootless::netns().is_none() || slirp_pid(paths).is_none() {
        return Ok(());
    }
    let have = api(paths, serde_json::json!({"execute": "list_hostfwd"}))?;
    let mut present = Vec::new();
    for e in have["entries"].as_array().cloned().unwrap_or_default() {
        let f = Forward {
            proto: e["proto"].as_str().unwrap_or("").to_string(),
            host_addr: e["host_addr"].as_str().unwrap_or("").to_string(),
            host_port: e["host_port"].as_u64().unwrap_or(0) as u16,
        };
        if want.contains(&f) {
            present.push(f);
        } else {
            api(paths, serde_json::json!({"execute": "remove_hostfwd", "arguments": {"id": e["id"]}}))?;
        }
    }
    for f in want.iter().filter(|f| !present.contains(f)) {
        let req = serde_json::json!({"execute": "add_hostfwd", "arguments": {
            "proto": f.proto, "host_addr": f.host_addr, "host_port": f.host_port, "guest_addr": TAP_ADDR, "guest_port": f.host_port}});
        api(paths, req).map_err(|e| io::Error::other(format!("publishing {}:{}/{} through slirp4netns: {e}", f.host_addr, f.host_port, f.proto)))?;
    }
    Ok(())
}

/// The lowest port a user may listen on (net.ipv4.ip_unprivileged_port_start).
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1024)
}
