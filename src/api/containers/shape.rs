//! docker's JSON shapes of a container: the pieces shared by the list and
//! inspect (ports, networks, mounts, labels), the inspect additions over
//! `Engine::container_inspect`, stats, and the archive endpoint's stat
//! header.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::container::Container;
use crate::engine::{Engine, PathStat};
use crate::image::RunConfig;
use crate::network::{Endpoint, Published};
use crate::sys::stats::Sample;

/// What the engine knows of a container besides its record.
pub(super) struct Facts {
    pub ports: Vec<Published>,
    pub endpoints: Vec<Endpoint>,
    pub image: Option<RunConfig>,
}

pub(super) type ImageCache = std::collections::HashMap<String, Option<RunConfig>>;

impl Facts {
    pub fn of(engine: &Engine, c: &Container) -> Facts {
        Self::of_cached(engine, c, &mut Default::default())
    }

    /// `of`, reading each image once for a whole list: most containers
    /// share a few images, and reading one parses its config.
    pub fn of_cached(engine: &Engine, c: &Container, images: &mut ImageCache) -> Facts {
        let image = images
            .entry(c.image_id.clone())
            // The image may have been removed with -f since.
            .or_insert_with(|| engine.image(&c.image_id).ok().map(|i| i.config.config))
            .clone();
        Facts { ports: engine.ports_of(c).unwrap_or_default(), endpoints: engine.endpoints_of(c).unwrap_or_default(), image }
    }

    /// Container ports the image exposes or the container publishes.
    fn exposed(&self) -> Vec<String> {
        let mut v: Vec<String> = self.image.iter().flat_map(|i| i.exposed_ports.keys().map(|p| if p.contains('/') { p.clone() } else { format!("{p}/tcp") })).collect();
        v.extend(self.ports.iter().map(|p| format!("{}/{}", p.container_port, p.proto)));
        v.sort();
        v.dedup();
        v
    }
}

/// The image's labels under the container's own, as docker merges them.
pub(super) fn labels(c: &Container, f: &Facts) -> BTreeMap<String, String> {
    let mut l = f.image.as_ref().map(|i| i.labels.clone()).unwrap_or_default();
    l.extend(c.spec.labels.clone());
    l
}

pub(super) fn network_mode(c: &Container) -> String {
    c.spec.network.clone().unwrap_or_else(|| crate::network::DEFAULT.into())
}

/// The list's `Ports`: published ones, then exposed ones nobody publishes.
pub(super) fn port_list(f: &Facts) -> Value {
    let mut out: Vec<Value> = f.ports.iter().map(|p| json!({"IP": p.host_ip, "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.proto})).collect();
    for e in f.exposed() {
        let (port, proto) = e.split_once('/').unwrap_or((&e, "tcp"));
        let published = f.ports.iter().any(|p| p.container_port.to_string() == port && p.proto == proto);
        if !published && let Ok(n) = port.parse::<u16>() {
            out.push(json!({"PrivatePort": n, "Type": proto}));
        }
    }
    Value::Array(out)
}

fn prefix_len(subnet: &str) -> u8 {
    subnet.split_once('/').and_then(|(_, l)| l.parse().ok()).unwrap_or(0)
}

/// `NetworkSettings.Networks`.
pub(super) fn networks(c: &Container, f: &Facts) -> Value {
    let mut m = Map::new();
    for e in &f.endpoints {
        let static_ip = (c.spec.network.as_deref().unwrap_or(crate::network::DEFAULT) == e.network.name).then_some(c.spec.ip.as_ref()).flatten();
        let mut dns = vec![c.name.clone(), c.short_id().to_string()];
        dns.extend(e.aliases.iter().cloned());
        m.insert(
            e.network.name.clone(),
            json!({
                "IPAMConfig": static_ip.map(|ip| json!({"IPv4Address": ip})),
                "Links": null,
                "Aliases": e.aliases,
                "MacAddress": "",
                "DriverOpts": null,
                "NetworkID": e.network.id,
                "EndpointID": format!("{}{}", &c.id[..32.min(c.id.len())], &e.network.id[..32.min(e.network.id.len())]),
                "Gateway": e.network.gateway,
                "IPAddress": e.ip.to_string(),
                "IPPrefixLen": prefix_len(&e.network.subnet),
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "DNSNames": dns,
            }),
        );
    }
    Value::Object(m)
}

pub(super) fn mounts(c: &Container) -> Value {
    c.mounts
        .iter()
        .map(|m| {
            let vol = m.kind == "volume";
            json!({
                "Type": m.kind,
                "Name": if vol { Value::from(m.name.clone()) } else { Value::Null },
                "Source": m.source,
                "Destination": m.destination,
                "Driver": if vol { "local" } else { "" },
                "Mode": if m.rw { "" } else { "ro" },
                "RW": m.rw,
                "Propagation": if vol { "" } else { "rprivate" },
            })
        })
        .collect()
}

/// docker's zero time, which its clients parse where berth has "".
fn time_or_zero(v: &mut Value) {
    if v.as_str().is_none_or(str::is_empty) {
        *v = json!("0001-01-01T00:00:00Z");
    }
}

/// `GET /containers/{id}/json`: berth's inspect with what docker's
/// clients also read.
pub(super) fn inspect(engine: &Engine, c: &Container) -> Value {
    let mut v = engine.container_inspect(c);
    let f = Facts::of(engine, c);
    let s = &c.spec;
    let exposed = f.exposed();
    let img = f.image.clone().unwrap_or_default();
    v["Platform"] = json!("linux");
    v["Driver"] = json!("overlay2");
    v["MountLabel"] = json!("");
    v["ProcessLabel"] = json!("");
    v["AppArmorProfile"] = json!("");
    v["ExecIDs"] = Value::Null;
    v["Mounts"] = mounts(c);
    time_or_zero(&mut v["State"]["StartedAt"]);
    time_or_zero(&mut v["State"]["FinishedAt"]);
    let cfg = &mut v["Config"];
    cfg["Labels"] = json!(labels(c, &f));
    // What runs: the container's own words, else the image's.
    cfg["Cmd"] = json!(s.cmd.clone().or_else(|| if s.entrypoint.is_none() { img.cmd.clone() } else { None }));
    cfg["Entrypoint"] = json!(s.entrypoint.clone().filter(|e| !e.is_empty()).or(if s.entrypoint.is_none() { img.entrypoint.clone() } else { None }));
    cfg["ExposedPorts"] = if exposed.is_empty() { Value::Null } else { exposed.iter().map(|p| (p.clone(), json!({}))).collect::<Map<_, _>>().into() };
    cfg["Volumes"] = if img.volumes.is_empty() { Value::Null } else { json!(img.volumes) };
    if cfg["Healthcheck"].is_null() && let Some(h) = &img.healthcheck {
        cfg["Healthcheck"] = h.clone();
    }
    for k in ["User", "Domainname", "StopSignal"] {
        if cfg[k].is_null() {
            cfg[k] = json!("");
        }
    }
    for k in ["AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce"] {
        cfg[k] = json!(false);
    }
    cfg["OnBuild"] = Value::Null;
    let hc = &mut v["HostConfig"];
    let mut bindings = Map::new();
    for p in &f.ports {
        let list = bindings.entry(format!("{}/{}", p.container_port, p.proto)).or_insert_with(|| json!([]));
        if let Some(a) = list.as_array_mut() {
            a.push(json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()}));
        }
    }
    let extra = json!({
        "Binds": if s.volumes.is_empty() { Value::Null } else { json!(s.volumes) },
        "PortBindings": bindings,
        "PublishAllPorts": s.publish_all,
        "VolumesFrom": if s.volumes_from.is_empty() { Value::Null } else { json!(s.volumes_from) },
        "Init": null, "Runtime": "berth", "SecurityOpt": null, "Links": null,
        "ConsoleSize": [0, 0], "Isolation": "", "CpuShares": 0, "CpuPeriod": 0, "CpuQuota": 0,
        "MemoryReservation": 0, "MemorySwap": 0, "OomKillDisable": false, "OomScoreAdj": 0,
        "IpcMode": "private", "PidMode": "", "UTSMode": "", "UsernsMode": "", "CgroupnsMode": "private",
    });
    for (k, x) in extra.as_object().into_iter().flatten() {
        hc[k] = x.clone();
    }
    let first = f.endpoints.first();
    let ns = &mut v["NetworkSettings"];
    ns["Networks"] = networks(c, &f);
    for e in &exposed {
        if ns["Ports"].get(e).is_none() {
            ns["Ports"][e] = Value::Null;
        }
    }
    let top = json!({
        "Bridge": "", "SandboxID": "", "SandboxKey": "", "HairpinMode": false,
        "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
        "EndpointID": "", "MacAddress": "", "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": first.map(|e| e.ip.to_string()).unwrap_or_default(),
        "Gateway": first.map(|e| e.network.gateway.clone()).unwrap_or_default(),
        "IPPrefixLen": first.map(|e| prefix_len(&e.network.subnet)).unwrap_or(0),
    });
    for (k, x) in top.as_object().into_iter().flatten() {
        ns[k] = x.clone();
    }
    v
}

/// One stats document; `pre` is the reading before, which CPU % is
/// measured against (docker's precpu_stats, zero when absent).
pub(super) fn stats(c: &Container, now: &Sample, pre: Option<&Sample>) -> Value {
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let cpu = |s: Option<&Sample>| {
        json!({
            "cpu_usage": {"total_usage": s.map_or(0, |s| s.cpu_ns), "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": s.map_or(0, |s| s.system_ns),
            "online_cpus": s.map_or(0, |s| s.online_cpus),
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        })
    };
    let preread = match pre {
        Some(p) => super::super::rfc3339(wall - now.at.saturating_duration_since(p.at).as_secs_f64()),
        None => "0001-01-01T00:00:00Z".into(),
    };
    let io = |op: &str, n: u64| json!({"major": 0, "minor": 0, "op": op, "value": n});
    json!({
        "name": format!("/{}", c.name),
        "id": c.id,
        "read": super::super::rfc3339(wall),
        "preread": preread,
        "pids_stats": {"current": now.pids},
        "blkio_stats": {"io_service_bytes_recursive": [io("read", now.block_read), io("write", now.block_write)]},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(Some(now)),
        "precpu_stats": cpu(pre),
        "memory_stats": {"usage": now.memory_bytes, "limit": now.memory_limit, "stats": {}},
        "networks": {"eth0": {"rx_bytes": now.net_rx, "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0, "tx_bytes": now.net_tx, "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0}},
    })
}

/// The `X-Docker-Container-Path-Stat` header: base64 of the JSON.
pub(super) fn path_stat_header(st: &PathStat) -> String {
    let v = json!({
        "name": st.name,
        "size": st.size,
        "mode": go_mode(st.mode),
        "mtime": super::super::rfc3339(st.mtime as f64),
        "linkTarget": st.link_target.clone().unwrap_or_default(),
    });
    base64(&serde_json::to_vec(&v).unwrap_or_default())
}

/// st_mode as Go's os.FileMode, which docker's clients decode: the type
/// and special bits sit at the top of the word.
pub(super) fn go_mode(mode: u32) -> u32 {
    let mut g = mode & 0o777;
    g |= match mode & libc::S_IFMT {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        _ => 0,
    };
    for (bit, go) in [(libc::S_ISUID, 1 << 23), (libc::S_ISGID, 1 << 22), (libc::S_ISVTX, 1 << 20)] {
        if mode & bit != 0 {
            g |= go;
        }
    }
    g
}

/// Standard base64 with padding.
pub(super) fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for ch in b.chunks(3) {
        let n = (u32::from(ch[0]) << 16) | (u32::from(*ch.get(1).unwrap_or(&0)) << 8) | u32::from(*ch.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= ch.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn go_file_modes() {
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_mode(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(go_mode(libc::S_IFREG | libc::S_ISUID | 0o755), (1 << 23) | 0o755);
    }
}
