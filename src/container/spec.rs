//! From the user's options and the image config to an OCI runtime spec
//! (`config.json`), the only thing the runtime underneath reads.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::{ContainerError, RunSpec};
use crate::image::Image;
use crate::sys::caps;

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The pids limit of a container that names none (`--pids-limit 0` or -1
/// lifts it). docker sets none, so one fork bomb takes every pid of the
/// host (pid_max is 32768 on many hosts) and with them berth's own exec,
/// monitor and `rm`. 2048 is podman's default: far above what a real
/// service forks (a web server's workers, a build's jobs), and low enough
/// that a dozen runaway containers still leave the host pids to spare.
pub const DEFAULT_PIDS_LIMIT: i64 = 2048;

/// Paths in /proc a container must not read (Docker's list).
pub const MASKED: &[&str] = &[
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
];
pub const READONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Devices every container gets: (path, type, major, minor).
pub const DEVICES: &[(&str, char, i64, i64)] = &[
    ("/dev/null", 'c', 1, 3), ("/dev/zero", 'c', 1, 5), ("/dev/full", 'c', 1, 7), ("/dev/random", 'c', 1, 8),
    ("/dev/urandom", 'c', 1, 9), ("/dev/tty", 'c', 5, 0),
];

/// The final command: entrypoint + cmd, with the user's overrides, as
/// Docker combines them.
pub fn command(spec: &RunSpec, img: &Image) -> Result<Vec<String>, ContainerError> {
    let entry = match &spec.entrypoint {
        Some(e) => e.clone(),
        None => img.config.config.entrypoint.clone().unwrap_or_default(),
    };
    // A new entrypoint resets the image's CMD, as in Docker.
    let cmd = match (&spec.cmd, &spec.entrypoint) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => vec![],
        (None, None) => img.config.config.cmd.clone().unwrap_or_default(),
    };
    let all: Vec<String> = entry.into_iter().chain(cmd).collect();
    if all.is_empty() {
        return Err(ContainerError::NoCommand(spec.image.clone()));
    }
    Ok(all)
}

pub fn env(spec: &RunSpec, img: &Image) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let mut set = |kv: &str| {
        let key = kv.split('=').next().unwrap_or("");
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.to_string());
    };
    set(DEFAULT_PATH);
    for e in &img.config.config.env {
        set(e);
    }
    set(&format!("HOSTNAME={}", spec.hostname.clone().unwrap_or_default()));
    if spec.tty {
        set("TERM=xterm");
    }
    for e in &spec.env {
        set(e);
    }
    env
}

/// Effective capability names after --privileged / --cap-add / --cap-drop.
pub fn capabilities(spec: &RunSpec) -> Result<Vec<String>, ContainerError> {
    if spec.privileged {
        return Ok(caps::host_bounding());
    }
    let mut set: Vec<String> = caps::DEFAULT.iter().map(|s| s.to_string()).collect();
    let norm = |c: &str| -> Result<Option<String>, ContainerError> {
        if c.eq_ignore_ascii_case("ALL") {
            return Ok(None);
        }
        caps::normalise(c).map(Some).ok_or_else(|| ContainerError::BadOption(format!("unknown capability {c:?} (names look like NET_ADMIN or CAP_NET_ADMIN)")))
    };
    for c in &spec.cap_drop {
        match norm(c)? {
            None => set.clear(),
            Some(c) => set.retain(|x| *x != c),
        }
    }
    let host = caps::host_bounding();
    for c in &spec.cap_add {
        match norm(c)? {
            None => set = host.clone(),
            Some(c) => {
                if !host.contains(&c) {
                    return Err(ContainerError::BadOption(format!("capability {c} is not available on this host (the engine itself does not hold it)")));
                }
                if !set.contains(&c) {
                    set.push(c)
                }
            }
        }
    }
    Ok(set)
}

/// Sysctls a container may set: those of the namespaces it owns.
pub fn check_sysctl(key: &str, network_host: bool) -> Result<(), ContainerError> {
    let ipc = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"];
    if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        return Ok(());
    }
    if key.starts_with("net.") {
        if network_host {
            return Err(ContainerError::BadOption(format!("sysctl {key:?} is not allowed with --network host: it would change the host")));
        }
        return Ok(());
    }
    Err(ContainerError::BadOption(format!(
        "sysctl {key:?} is not namespaced and would change the host; allowed are net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*"
    )))
}

/// Builds config.json for container `id` in `dir`.
#[allow(clippy::too_many_arguments)]
pub fn build(id: &str, cgroup: &str, dir: &Path, spec: &RunSpec, img: &Image, lower: &[String], layers_dir: &Path, netns: Option<&Path>, host_network: bool, volumes: &[super::MountRec]) -> Result<Value, ContainerError> {
    let args = command(spec, img)?;
    let caps = capabilities(spec)?;
    for k in spec.sysctls.keys() {
        check_sysctl(k, host_network)?;
    }
    let cwd = spec.workdir.clone().filter(|w| !w.is_empty()).or_else(|| Some(img.config.config.working_dir.clone()).filter(|w| !w.is_empty())).unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(ContainerError::BadOption(format!("working directory {cwd:?} must be an absolute path")));
    }
    let user = spec.user.clone().filter(|u| !u.is_empty()).unwrap_or_else(|| img.config.config.user.clone());
    // Lower dirs are short links relative to layers/, topmost first as
    // overlayfs wants; the runtime mounts from that directory.
    let lowerdir = lower.iter().rev().map(|s| format!("l/{s}")).collect::<Vec<_>>().join(":");
    let mut mounts = vec![json!({
        "destination": "/", "type": "overlay", "source": "overlay",
        "options": [format!("lowerdir={lowerdir}"), format!("upperdir={}", dir.join("upper").display()), format!("workdir={}", dir.join("work").display()), format!("berth.chdir={}", layers_dir.display())]
    })];
    mounts.extend([
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if spec.privileged { "rw" } else { "ro" }]}),
    ]);
    for f in ["hosts", "hostname", "resolv.conf"] {
        mounts.push(json!({"destination": format!("/etc/{f}"), "type": "bind", "source": dir.join(f), "options": ["rbind", "rprivate"]}));
    }
    for v in volumes {
        mounts.push(json!({"destination": v.destination, "type": "bind", "source": v.source, "options": ["rbind", "rprivate", if v.rw { "rw" } else { "ro" }]}));
    }
    let mut devices: Vec<Value> = DEVICES.iter().map(|(p, t, ma, mi)| json!({"path": p, "type": t.to_string(), "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0})).collect();
    if spec.privileged {
        devices.extend(host_devices().into_iter().filter(|d| !DEVICES.iter().any(|x| x.0 == d["path"])));
    }
    let mut dev_rules: Vec<Value> = vec![json!({"allow": false, "access": "rwm"})];
    for d in &spec.devices {
        let (path, bind, rule) = device(d)?;
        devices.retain(|x| x["path"] != path.as_str());
        mounts.push(bind);
        dev_rules.push(rule);
    }
    if spec.privileged {
        dev_rules = vec![json!({"allow": true, "access": "rwm"})];
    } else {
        for (_, t, ma, mi) in DEVICES {
            dev_rules.push(json!({"allow": true, "type": t.to_string(), "major": ma, "minor": mi, "access": "rwm"}));
        }
        // pts (136:*) and /dev/ptmx (5:2), /dev/console (5:1).
        dev_rules.push(json!({"allow": true, "type": "c", "major": 136, "access": "rwm"}));
        dev_rules.push(json!({"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"}));
        dev_rules.push(json!({"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"}));
    }
    let mut resources = json!({"devices": dev_rules});
    if let Some(m) = spec.memory {
        resources["memory"] = json!({"limit": m, "swap": m});
    }
    if let Some(c) = spec.cpus {
        let period = 100_000u64;
        resources["cpu"] = json!({"quota": (c * period as f64).round() as i64, "period": period});
    }
    resources["pids"] = json!({"limit": spec.pids_limit.unwrap_or(DEFAULT_PIDS_LIMIT)});
    let added: Vec<String> = caps.iter().filter(|c| !caps::DEFAULT.contains(&c.as_str())).cloned().collect();
    // The network namespace: a prepared one (bridge networks), the host's
    // (--network host: none listed), or a fresh one with only loopback.
    let mut namespaces = vec![json!({"type": "pid"}), json!({"type": "mount"}), json!({"type": "uts"}), json!({"type": "ipc"})];
    match (netns, host_network) {
        (Some(p), _) => namespaces.push(json!({"type": "network", "path": p})),
        (None, true) => {}
        (None, false) => namespaces.push(json!({"type": "network"})),
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": cgroup,
        "resources": resources,
        "devices": devices,
        "sysctl": spec.sysctls.iter().collect::<BTreeMap<_, _>>(),
    });
    if !spec.privileged {
        linux["maskedPaths"] = json!(MASKED);
        linux["readonlyPaths"] = json!(READONLY);
        linux["seccomp"] = serde_json::to_value(crate::sys::seccomp::docker_default(&added)).map_err(|e| ContainerError::BadOption(e.to_string()))?;
    }
    let hostname = spec.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    let mut annotations = BTreeMap::new();
    annotations.insert("berth.stop-signal".to_string(), spec.stop_signal.clone().or_else(|| Some(img.config.config.stop_signal.clone()).filter(|s| !s.is_empty())).unwrap_or_else(|| "SIGTERM".into()));
    annotations.insert("berth.user".to_string(), user);
    super::logfile::LogConfig::from_opts(&spec.log_opts).map_err(ContainerError::BadOption)?.to_annotations(&mut annotations);
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": spec.tty,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": env(&RunSpec { hostname: Some(hostname.clone()), ..spec.clone() }, img),
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": []},
            "noNewPrivileges": !spec.privileged,
            "rlimits": [],
        },
        "root": {"path": dir.join("merged"), "readonly": false},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations,
    }))
}

/// `HOST[:CONTAINER[:PERMS]]` (docker's `--device`): the host path, the
/// path inside (default: the same) and the cgroup permissions (default rwm).
pub fn parse_device(s: &str) -> Result<(String, String, String), ContainerError> {
    let bad = |why: &str| ContainerError::BadOption(format!("--device {s:?}: {why}; expected HOST[:CONTAINER[:PERMS]] such as /dev/loop0 or /dev/sdb:/dev/xvdb:r"));
    let parts: Vec<&str> = s.split(':').collect();
    let perms_ok = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, ctr, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if perms_ok(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => return Err(bad("too many colons")),
    };
    if !host.starts_with('/') || !ctr.starts_with('/') {
        return Err(bad("paths must be absolute"));
    }
    if !perms_ok(perms) {
        return Err(bad(&format!("permissions {perms:?} must be letters of rwm")));
    }
    Ok((host.to_string(), ctr.to_string(), perms.to_string()))
}

/// The path inside, the mount and the allow rule for one `--device`. The
/// host's node is bound in rather than made: init makes nodes inside its
/// cgroup, whose allow-list rightly refuses mknod to a device given as
/// "r" or "rw" (runc falls back to the same bind).
fn device(s: &str) -> Result<(String, Value, Value), ContainerError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let (host, ctr, perms) = parse_device(s)?;
    let md = std::fs::metadata(&host).map_err(|e| ContainerError::BadOption(format!("--device {host}: {e}")))?;
    let t = if md.file_type().is_char_device() {
        "c"
    } else if md.file_type().is_block_device() {
        "b"
    } else {
        return Err(ContainerError::BadOption(format!("--device {host}: not a device node")));
    };
    let (ma, mi) = (nix::sys::stat::major(md.rdev()), nix::sys::stat::minor(md.rdev()));
    let bind = json!({"destination": ctr, "type": "bind", "source": host, "options": ["bind", "rprivate"]});
    let rule = json!({"allow": true, "type": t, "major": ma, "minor": mi, "access": perms});
    Ok((ctr, bind, rule))
}

/// The host's device nodes at the top of /dev: what --privileged shares.
fn host_devices() -> Vec<Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/dev") else { return out };
    for e in dir.flatten() {
        let Ok(md) = e.path().symlink_metadata() else { continue };
        let ft = md.file_type();
        let t = if ft.is_char_device() { "c" } else if ft.is_block_device() { "b" } else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "console" || name == "ptmx" || name.starts_with("tty") && name != "tty" {
            continue;
        }
        let rdev = md.rdev();
        out.push(json!({"path": format!("/dev/{name}"), "type": t, "major": nix::sys::stat::major(rdev), "minor": nix::sys::stat::minor(rdev),
                        "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid()}));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_device;

    #[test]
    fn device_specs() {
        let p = |s: &str| parse_device(s).map(|(a, b, c)| format!("{a} {b} {c}")).map_err(|e| e.to_string());
        assert_eq!(p("/dev/loop0").unwrap(), "/dev/loop0 /dev/loop0 rwm");
        assert_eq!(p("/dev/loop0:r").unwrap(), "/dev/loop0 /dev/loop0 r");
        assert_eq!(p("/dev/sdb:/dev/xvdb").unwrap(), "/dev/sdb /dev/xvdb rwm");
        assert_eq!(p("/dev/sdb:/dev/xvdb:rw").unwrap(), "/dev/sdb /dev/xvdb rw");
        assert!(p("dev/sdb").unwrap_err().contains("absolute"));
        assert!(p("/dev/sdb:/x:rwx").unwrap_err().contains("rwm"));
        assert!(p("/a:/b:r:w").unwrap_err().contains("too many"));
        assert!(p("").is_err());
    }
}
