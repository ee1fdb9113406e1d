//! From the user's options and the image config to an OCI runtime spec
//! (`config.json`), the only thing the runtime underneath reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

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

/// Builds config.json for container `id` in `dir`. The runtime reads it
/// back with the same oci-spec types, so a field the writer names is one the
/// reader knows.
#[allow(clippy::too_many_arguments)]
pub fn build(id: &str, cgroup: &str, dir: &Path, spec: &RunSpec, img: &Image, lower: &[String], layers_dir: &Path, netns: Option<&Path>, host_network: bool, volumes: &[super::MountRec]) -> Result<Spec, ContainerError> {
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
    let tmpfs = spec.tmpfs.iter().map(|t| super::options::tmpfs(t)).collect::<Result<Vec<_>, _>>()?;
    for t in &tmpfs {
        if volumes.iter().any(|v| v.destination.trim_end_matches('/') == t.destination) || tmpfs.iter().filter(|x| x.destination == t.destination).count() > 1 {
            return Err(ContainerError::BadOption(format!("--tmpfs {}: duplicate mount point (a volume or another tmpfs is mounted there)", t.destination)));
        }
    }
    let shm = match spec.shm_size {
        None => "size=65536k".to_string(),
        Some(b) if b > 0 => format!("size={b}"),
        Some(b) => return Err(ContainerError::BadOption(format!("--shm-size {b}: must be a positive size such as 64m"))),
    };
    for h in &spec.extra_hosts {
        super::options::extra_host(h)?;
    }
    super::options::check_dns(&spec.dns, &spec.dns_search, &spec.dns_options)?;
    let rlimits = rlimits(spec)?;
    // Lower dirs are short links relative to layers/, topmost first as
    // overlayfs wants; the runtime mounts from that directory (berth.chdir=,
    // an option only berth's runtime understands and strips).
    let lowerdir = lower.iter().rev().map(|s| format!("l/{s}")).collect::<Vec<_>>().join(":");
    let mut root_opts = vec![
        format!("lowerdir={lowerdir}"),
        format!("upperdir={}", dir.join("upper").display()),
        format!("workdir={}", dir.join("work").display()),
        format!("berth.chdir={}", layers_dir.display()),
    ];
    // An --rm container's layer is deleted when it exits: nothing in it is
    // worth the sync of the whole upper filesystem that unmounting an
    // overlay otherwise costs (overlayfs "volatile", see init::mount_root).
    if spec.rm {
        root_opts.push(VOLATILE.into());
    }
    let mut mounts = vec![mount("/", "overlay", "overlay", &root_opts.iter().map(String::as_str).collect::<Vec<_>>())?];
    mounts.extend([
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"])?,
        mount("/dev/pts", "devpts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"])?,
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", &shm])?,
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"])?,
    ]);
    // sysfs may be mounted only by the owner of the network namespace: a
    // rootless container on the host's network sees the host's, bound.
    mounts.push(if host_network && crate::rootless::active() {
        mount("/sys", "bind", "/sys", &["rbind", "rprivate", "nosuid", "noexec", "nodev", "ro"])?
    } else {
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", if spec.privileged { "rw" } else { "ro" }])?
    });
    for f in ["hosts", "hostname", "resolv.conf"] {
        mounts.push(mount(format!("/etc/{f}"), "bind", dir.join(f), &["rbind", "rprivate"])?);
    }
    // Before volumes, so a volume inside a tmpfs lands on it.
    for t in &tmpfs {
        mounts.push(mount(&t.destination, "tmpfs", "tmpfs", &t.options.iter().map(String::as_str).collect::<Vec<_>>())?);
    }
    for v in volumes {
        mounts.push(mount(&v.destination, "bind", &v.source, &["rbind", "rprivate", if v.rw { "rw" } else { "ro" }])?);
    }
    let mut devices = DEVICES.iter().map(|&(p, t, ma, mi)| node(p, dev_type(t), ma, mi, 0o666, 0, 0)).collect::<Result<Vec<_>, _>>()?;
    if spec.privileged {
        devices.extend(host_devices()?.into_iter().filter(|d| !DEVICES.iter().any(|x| d.path() == Path::new(x.0))));
    }
    let mut dev_rules = vec![dev_rule(false, None, None, None, "rwm")?];
    for d in &spec.devices {
        let (path, bind, rule) = device(d)?;
        devices.retain(|x| x.path() != Path::new(&path));
        mounts.push(bind);
        dev_rules.push(rule);
    }
    if spec.privileged {
        dev_rules = vec![dev_rule(true, None, None, None, "rwm")?];
    } else {
        for &(_, t, ma, mi) in DEVICES {
            dev_rules.push(dev_rule(true, Some(dev_type(t)), Some(ma), Some(mi), "rwm")?);
        }
        // pts (136:*) and /dev/ptmx (5:2), /dev/console (5:1).
        dev_rules.push(dev_rule(true, Some(LinuxDeviceType::C), Some(136), None, "rwm")?);
        dev_rules.push(dev_rule(true, Some(LinuxDeviceType::C), Some(5), Some(2), "rwm")?);
        dev_rules.push(dev_rule(true, Some(LinuxDeviceType::C), Some(5), Some(1), "rwm")?);
    }
    let mut resources = LinuxResourcesBuilder::default().devices(dev_rules);
    if let Some(m) = spec.memory {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(m).swap(m).build()?);
    }
    if let Some(c) = spec.cpus {
        let period = 100_000u64;
        resources = resources.cpu(LinuxCpuBuilder::default().quota((c * period as f64).round() as i64).period(period).build()?);
    }
    resources = resources.pids(LinuxPidsBuilder::default().limit(spec.pids_limit.unwrap_or(DEFAULT_PIDS_LIMIT)).build()?);
    let added: Vec<String> = caps.iter().filter(|c| !caps::DEFAULT.contains(&c.as_str())).cloned().collect();
    // The network namespace: a prepared one (bridge networks), the host's
    // (--network host: none listed), or a fresh one with only loopback.
    let mut namespaces = [LinuxNamespaceType::Pid, LinuxNamespaceType::Mount, LinuxNamespaceType::Uts, LinuxNamespaceType::Ipc]
        .into_iter()
        .map(|t| LinuxNamespaceBuilder::default().typ(t).build())
        .collect::<Result<Vec<_>, _>>()?;
    match (netns, host_network) {
        (Some(p), _) => namespaces.push(LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Network).path(p).build()?),
        (None, true) => {}
        (None, false) => namespaces.push(LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Network).build()?),
    }
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(cgroup)
        .resources(resources.build()?)
        .devices(devices)
        .sysctl(spec.sysctls.clone().into_iter().collect::<HashMap<_, _>>());
    let linux = if spec.privileged {
        // Unset fields take oci-spec's defaults, which mask paths; a
        // privileged container sees everything.
        let mut l = linux.build()?;
        l.set_masked_paths(None);
        l.set_readonly_paths(None);
        l
    } else {
        linux.masked_paths(strings(MASKED)).readonly_paths(strings(READONLY)).seccomp(crate::sys::seccomp::docker_default(&added)).build()?
    };
    let hostname = spec.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    // What the runtime needs and OCI has no field for travels as
    // annotations: the stop signal the monitor sends, and the user as
    // written ("name", "uid:gid"), which init resolves inside the rootfs.
    let mut annotations = std::collections::BTreeMap::from([
        ("berth.stop-signal".to_string(), spec.stop_signal.clone().or_else(|| Some(img.config.config.stop_signal.clone()).filter(|s| !s.is_empty())).unwrap_or_else(|| "SIGTERM".into())),
        ("berth.user".to_string(), user),
    ]);
    // The monitor makes init's stdin before it reads the container's record.
    annotations.insert(INTERACTIVE.to_string(), spec.interactive.to_string());
    super::logfile::LogConfig::from_opts(&spec.log_opts).map_err(ContainerError::BadOption)?.to_annotations(&mut annotations);
    let annotations: HashMap<String, String> = annotations.into_iter().collect();
    let cap_set = caps.iter().map(|c| capability(c)).collect::<Result<Capabilities, _>>()?;
    let process = ProcessBuilder::default()
        .terminal(spec.tty)
        .user(UserBuilder::default().uid(0u32).gid(0u32).build()?)
        .args(args)
        .env(env(&RunSpec { hostname: Some(hostname.clone()), ..spec.clone() }, img))
        .cwd(cwd)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(cap_set.clone())
                .effective(cap_set.clone())
                .permitted(cap_set)
                .inheritable(Capabilities::new())
                .ambient(Capabilities::new())
                .build()?,
        )
        .no_new_privileges(!spec.privileged)
        .rlimits(rlimits)
        .build()?;
    Ok(SpecBuilder::default()
        .version("1.0.2")
        .process(process)
        .root(RootBuilder::default().path(dir.join("merged")).readonly(spec.read_only).build()?)
        .hostname(hostname)
        .mounts(mounts)
        .linux(linux)
        .annotations(annotations)
        .build()?)
}

/// `--ulimit`s as OCI rlimits, each checked against what this process
/// may set (the container inherits berth's limits; see check_ulimit_fits).
fn rlimits(spec: &RunSpec) -> Result<Vec<PosixRlimit>, ContainerError> {
    use serde::Deserialize;
    use serde::de::value::{Error, StrDeserializer};
    let mut out: Vec<PosixRlimit> = Vec::new();
    for u in &spec.ulimits {
        let u = super::options::ulimit(u)?;
        super::options::check_ulimit_fits(&u, super::options::host_hard_limit(u.resource()))?;
        let name = format!("RLIMIT_{}", u.name.to_ascii_uppercase());
        let typ = PosixRlimitType::deserialize(StrDeserializer::<Error>::new(&name)).map_err(|_| ContainerError::BadOption(format!("--ulimit {}: unknown to the OCI runtime spec this berth was built with", u.name)))?;
        // A later --ulimit of the same name wins, as docker's.
        out.retain(|r| r.typ() != typ);
        out.push(PosixRlimitBuilder::default().typ(typ).soft(u.soft).hard(u.hard).build()?);
    }
    Ok(out)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The annotation saying the container keeps stdin open (`-i`).
pub const INTERACTIVE: &str = "berth.interactive";

/// The root overlay's option asking for overlayfs's "volatile" (Linux 5.10):
/// berth's runtime adds it where the kernel takes it.
pub const VOLATILE: &str = "berth.volatile";

fn mount(destination: impl Into<PathBuf>, typ: &str, source: impl Into<PathBuf>, options: &[&str]) -> Result<Mount, ContainerError> {
    Ok(MountBuilder::default().destination(destination).typ(typ).source(source).options(strings(options)).build()?)
}

fn dev_type(t: char) -> LinuxDeviceType {
    match t {
        'b' => LinuxDeviceType::B,
        'p' => LinuxDeviceType::P,
        'u' => LinuxDeviceType::U,
        _ => LinuxDeviceType::C,
    }
}

fn node(path: impl Into<PathBuf>, typ: LinuxDeviceType, major: i64, minor: i64, mode: u32, uid: u32, gid: u32) -> Result<LinuxDevice, ContainerError> {
    Ok(LinuxDeviceBuilder::default().path(path).typ(typ).major(major).minor(minor).file_mode(mode).uid(uid).gid(gid).build()?)
}

fn dev_rule(allow: bool, typ: Option<LinuxDeviceType>, major: Option<i64>, minor: Option<i64>, access: &str) -> Result<LinuxDeviceCgroup, ContainerError> {
    let mut r = LinuxDeviceCgroupBuilder::default().allow(allow).access(access);
    if let Some(t) = typ {
        r = r.typ(t);
    }
    if let Some(m) = major {
        r = r.major(m);
    }
    if let Some(m) = minor {
        r = r.minor(m);
    }
    Ok(r.build()?)
}

/// `CAP_NET_ADMIN` as oci-spec's type. Its parser is serde's (it also takes
/// the name without CAP_), so go through that rather than spell the table
/// again.
fn capability(name: &str) -> Result<Capability, ContainerError> {
    use serde::Deserialize;
    use serde::de::value::{Error, StrDeserializer};
    Capability::deserialize(StrDeserializer::<Error>::new(name)).map_err(|_| ContainerError::BadOption(format!("capability {name} is unknown to the OCI runtime spec this berth was built with")))
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
fn device(s: &str) -> Result<(String, Mount, LinuxDeviceCgroup), ContainerError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let (host, ctr, perms) = parse_device(s)?;
    let md = std::fs::metadata(&host).map_err(|e| ContainerError::BadOption(format!("--device {host}: {e}")))?;
    let t = if md.file_type().is_char_device() {
        LinuxDeviceType::C
    } else if md.file_type().is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(ContainerError::BadOption(format!("--device {host}: not a device node")));
    };
    let (ma, mi) = (nix::sys::stat::major(md.rdev()) as i64, nix::sys::stat::minor(md.rdev()) as i64);
    let bind = mount(&ctr, "bind", &host, &["bind", "rprivate"])?;
    let rule = dev_rule(true, Some(t), Some(ma), Some(mi), &perms)?;
    Ok((ctr, bind, rule))
}

/// The host's device nodes at the top of /dev: what --privileged shares.
fn host_devices() -> Result<Vec<LinuxDevice>, ContainerError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/dev") else { return Ok(out) };
    for e in dir.flatten() {
        let Ok(md) = e.path().symlink_metadata() else { continue };
        let ft = md.file_type();
        let t = if ft.is_char_device() { LinuxDeviceType::C } else if ft.is_block_device() { LinuxDeviceType::B } else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "console" || name == "ptmx" || name.starts_with("tty") && name != "tty" {
            continue;
        }
        let rdev = md.rdev();
        out.push(node(format!("/dev/{name}"), t, nix::sys::stat::major(rdev) as i64, nix::sys::stat::minor(rdev) as i64, md.mode() & 0o7777, md.uid(), md.gid())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::MountRec;

    fn image() -> Image {
        let mut config = crate::image::ImageConfig::default();
        config.config.cmd = Some(vec!["sh".into(), "-c".into(), "echo hi".into()]);
        config.config.env = vec!["FOO=bar".into()];
        config.config.user = "nobody".into();
        Image { id: "sha256:abc".into(), tags: vec![], manifest: String::new(), created: String::new(), size: 0, config, layers: vec![] }
    }

    fn config(spec: &RunSpec, netns: Option<&Path>, host_network: bool) -> Spec {
        let vols = [MountRec { kind: "bind".into(), name: String::new(), source: "/srv/data".into(), destination: "/data".into(), rw: false, anonymous: false }];
        build("0123456789abcdef", "berth/0123", Path::new("/c/0123"), spec, &image(), &["l1".into(), "l2".into()], Path::new("/layers"), netns, host_network, &vols).unwrap()
    }

    /// What the writer produces is what the runtime reads back
    /// (runtime::load parses config.json with the same types).
    #[test]
    fn round_trips_through_the_runtimes_reader() {
        let spec = RunSpec {
            image: "x".into(), tty: true, user: Some("1000:1000".into()), cap_add: vec!["net_admin".into()], cap_drop: vec!["MKNOD".into()],
            memory: Some(64 << 20), cpus: Some(1.5), pids_limit: Some(100), sysctls: [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
            devices: vec!["/dev/null:/dev/nothing:r".into()],
            ..Default::default()
        };
        let c = config(&spec, Some(Path::new("/run/netns/x")), false);
        let back: Spec = serde_json::from_slice(&serde_json::to_vec_pretty(&c).unwrap()).unwrap();
        assert_eq!(back, c);

        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["ociVersion"], "1.0.2");
        assert_eq!(json["process"]["terminal"], true);
        assert_eq!(json["process"]["user"], serde_json::json!({"uid": 0, "gid": 0}));
        assert_eq!(json["process"]["rlimits"], serde_json::json!([]));
        assert_eq!(json["annotations"]["berth.user"], "1000:1000");
        assert_eq!(json["annotations"]["berth.stop-signal"], "SIGTERM");
        assert_eq!(json["annotations"]["berth.interactive"], "false");
        assert_eq!(json["root"], serde_json::json!({"path": "/c/0123/merged", "readonly": false}));
        assert_eq!(json["hostname"], "0123456789ab");
        assert_eq!(json["mounts"][0]["options"][0], "lowerdir=l/l2:l/l1");
        assert_eq!(json["mounts"][0]["options"][3], "berth.chdir=/layers");
        let caps = json["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".into()) && !caps.contains(&"CAP_MKNOD".into()));
        let linux = &json["linux"];
        assert_eq!(linux["namespaces"][4], serde_json::json!({"type": "network", "path": "/run/netns/x"}));
        assert_eq!(linux["resources"]["memory"], serde_json::json!({"limit": 64 << 20, "swap": 64 << 20}));
        assert_eq!(linux["resources"]["cpu"], serde_json::json!({"quota": 150_000, "period": 100_000}));
        assert_eq!(linux["resources"]["pids"], serde_json::json!({"limit": 100}));
        assert_eq!(linux["resources"]["devices"][0], serde_json::json!({"allow": false, "access": "rwm"}));
        assert_eq!(linux["resources"]["devices"][1], serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"}));
        assert_eq!(linux["sysctl"]["net.ipv4.ip_forward"], "1");
        assert_eq!(linux["maskedPaths"].as_array().unwrap().len(), MASKED.len());
        assert!(linux["seccomp"].is_object());
        // --device replaces the default node of the same path.
        assert!(!linux["devices"].as_array().unwrap().iter().any(|d| d["path"] == "/dev/nothing"));
        let mounts = json["mounts"].as_array().unwrap();
        assert!(mounts.contains(&serde_json::json!({"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "rprivate", "ro"]})));
        assert!(mounts.contains(&serde_json::json!({"destination": "/dev/nothing", "type": "bind", "source": "/dev/null", "options": ["bind", "rprivate"]})));
    }

    /// Unset fields would take oci-spec's defaults; a privileged container
    /// on the host's network must get none of them.
    #[test]
    fn privileged_on_the_host_network_has_no_masks_and_no_netns() {
        let c = serde_json::to_value(config(&RunSpec { image: "x".into(), privileged: true, ..Default::default() }, None, true)).unwrap();
        let linux = &c["linux"];
        for absent in ["maskedPaths", "readonlyPaths", "seccomp"] {
            assert!(linux.get(absent).is_none(), "{absent} should be absent: {linux}");
        }
        assert_eq!(linux["namespaces"].as_array().unwrap().len(), 4);
        assert_eq!(linux["resources"]["devices"], serde_json::json!([{"allow": true, "access": "rwm"}]));
        assert_eq!(c["process"]["noNewPrivileges"], false);
        assert_eq!(c["annotations"]["berth.user"], "nobody");
    }

    #[test]
    fn read_only_tmpfs_shm_and_ulimits() {
        let spec = RunSpec {
            image: "x".into(), read_only: true, tmpfs: vec!["/run:size=1m,mode=1777".into()], shm_size: Some(128 << 20), ulimits: vec!["nofile=64:128".into(), "nofile=32:64".into()],
            ..Default::default()
        };
        let c = config(&spec, None, false);
        let back: Spec = serde_json::from_slice(&serde_json::to_vec(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["root"]["readonly"], true);
        assert_eq!(json["process"]["rlimits"], serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 32, "hard": 64}]));
        let mounts = json["mounts"].as_array().unwrap();
        assert!(mounts.contains(&serde_json::json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "size=1048576", "mode=1777"]})));
        let shm = mounts.iter().find(|m| m["destination"] == "/dev/shm").unwrap();
        assert!(shm["options"].as_array().unwrap().contains(&"size=134217728".into()), "{shm}");
        // The tmpfs comes before the volume (at /data), so one inside the other works.
        let at = |d: &str| mounts.iter().position(|m| m["destination"] == d).unwrap();
        assert!(at("/run") < at("/data"));

        let err = |spec: RunSpec| build("0123456789abcdef", "b/0", Path::new("/c"), &spec, &image(), &[], Path::new("/l"), None, false, &[MountRec { kind: "bind".into(), name: String::new(), source: "/s".into(), destination: "/data".into(), rw: true, anonymous: false }]).unwrap_err().to_string();
        assert!(err(RunSpec { tmpfs: vec!["/data".into()], ..Default::default() }).contains("--tmpfs /data: duplicate mount point"));
        assert!(err(RunSpec { extra_hosts: vec!["db".into()], ..Default::default() }).starts_with("--add-host \"db\""));
        assert!(err(RunSpec { dns: vec!["x".into()], ..Default::default() }).starts_with("--dns \"x\""));
        let host_hard = crate::sys::proc::get_rlimit(libc::RLIMIT_NOFILE as i32).unwrap().1;
        if host_hard != u64::MAX {
            let e = err(RunSpec { ulimits: vec![format!("nofile=10:{}", host_hard + 1)], ..Default::default() });
            assert!(e.contains(&format!("host's hard limit {host_hard} for nofile")), "{e}");
        }
    }

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

