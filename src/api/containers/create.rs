//! `POST /containers/create`: docker's container config (as the docker
//! CLI, compose and docker-py send it) turned into berth's `RunSpec`.
//! What berth cannot do yet is said in the reply's `Warnings` instead of
//! being dropped without a word.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::container::health::HealthSpec;
use crate::container::{RestartPolicy, RunSpec};

use super::super::{ApiError, Result};

/// A create request, resolved.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub spec: RunSpec,
    /// Networks to join after the first: (network, static address, aliases).
    pub more_networks: Vec<(String, Option<String>, Vec<String>)>,
    pub warnings: Vec<String>,
}

/// A string field; empty reads as absent.
fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from)
}

/// docker's StrSlice: null, a string or an array of strings.
fn strs(v: &Value, key: &str) -> Option<Vec<String>> {
    match v.get(key)? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => Some(a.iter().filter_map(|x| x.as_str().map(String::from)).collect()),
        _ => None,
    }
}

fn list(v: &Value, key: &str) -> Vec<String> {
    strs(v, key).unwrap_or_default()
}

fn map(v: &Value, key: &str) -> BTreeMap<String, String> {
    let Some(Value::Object(m)) = v.get(key) else { return BTreeMap::new() };
    m.iter().map(|(k, v)| (k.clone(), v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))).collect()
}

fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(|x| x.as_i64().or_else(|| x.as_f64().map(|f| f as i64))).unwrap_or(0)
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Reads the body of a create request; `name` comes from the query.
pub(super) fn plan(body: &Value, name: Option<String>) -> Result<Plan> {
    if !body.is_object() {
        return Err(ApiError::bad("config cannot be empty in order to create a container"));
    }
    let image = text(body, "Image").ok_or_else(|| ApiError::bad("no image given: the create request needs an Image"))?;
    let null = Value::Null;
    let host = body.get("HostConfig").unwrap_or(&null);
    let mut p = Plan::default();
    let s = &mut p.spec;
    s.image = image;
    s.name = name;
    s.cmd = strs(body, "Cmd").filter(|c| !c.is_empty());
    // `--entrypoint ""` comes as [""]: no entrypoint, not the image's.
    s.entrypoint = strs(body, "Entrypoint").map(|e| e.into_iter().filter(|x| !x.is_empty()).collect());
    s.env = list(body, "Env");
    s.workdir = text(body, "WorkingDir");
    s.hostname = text(body, "Hostname");
    s.user = text(body, "User");
    s.labels = map(body, "Labels");
    s.tty = flag(body, "Tty");
    s.interactive = flag(body, "OpenStdin");
    s.stop_signal = text(body, "StopSignal");
    s.stop_timeout = body.get("StopTimeout").and_then(Value::as_i64).and_then(|t| u64::try_from(t).ok());
    s.health = health(body.get("Healthcheck").unwrap_or(&null));
    s.rm = flag(host, "AutoRemove");
    s.privileged = flag(host, "Privileged");
    s.cap_add = list(host, "CapAdd");
    s.cap_drop = list(host, "CapDrop");
    s.sysctls = map(host, "Sysctls");
    s.volumes_from = list(host, "VolumesFrom");
    s.cgroup_parent = text(host, "CgroupParent");
    s.memory = Some(int(host, "Memory")).filter(|m| *m > 0);
    s.cpus = cpus(host);
    s.pids_limit = Some(int(host, "PidsLimit")).filter(|n| *n != 0);
    s.restart = restart(host.get("RestartPolicy").unwrap_or(&null))?;
    s.devices = host.get("Devices").and_then(Value::as_array).into_iter().flatten().filter_map(device).collect();
    s.volumes = list(host, "Binds").iter().map(|b| bind(b)).collect();
    s.publish_all = flag(host, "PublishAllPorts");
    s.read_only = flag(host, "ReadonlyRootfs");
    s.tmpfs = map(host, "Tmpfs").into_iter().map(|(path, opts)| if opts.is_empty() { path } else { format!("{path}:{opts}") }).collect();
    // docker sends 0 for "not given" (its default, 64m, is berth's too).
    s.shm_size = Some(int(host, "ShmSize")).filter(|n| *n > 0);
    s.extra_hosts = list(host, "ExtraHosts");
    s.dns = list(host, "Dns");
    s.dns_search = list(host, "DnsSearch");
    s.dns_options = list(host, "DnsOptions");
    s.ulimits = ulimits(host)?;
    ports(body, host, &mut p);
    mounts(host, &mut p);
    log_config(host, &mut p);
    networks(body, host, &mut p)?;
    unsupported(host, &mut p.warnings);
    Ok(p)
}

fn health(h: &Value) -> Option<HealthSpec> {
    if !h.is_object() {
        return None;
    }
    let ms = |k: &str| u64::try_from(int(h, k)).unwrap_or(0) / 1_000_000;
    let spec = HealthSpec {
        test: list(h, "Test"),
        interval_ms: ms("Interval"),
        timeout_ms: ms("Timeout"),
        start_period_ms: ms("StartPeriod"),
        retries: u32::try_from(int(h, "Retries")).unwrap_or(0),
    };
    (spec != HealthSpec::default()).then_some(spec)
}

/// NanoCpus, or the CFS quota over its period (docker-py's cpu_quota).
fn cpus(host: &Value) -> Option<f64> {
    let nano = int(host, "NanoCpus");
    if nano > 0 {
        return Some(nano as f64 / 1e9);
    }
    let (quota, period) = (int(host, "CpuQuota"), int(host, "CpuPeriod"));
    (quota > 0).then(|| quota as f64 / if period > 0 { period as f64 } else { 100_000.0 })
}

fn restart(r: &Value) -> Result<RestartPolicy> {
    let name = text(r, "Name").unwrap_or_default();
    let spec = match (name.as_str(), int(r, "MaximumRetryCount")) {
        ("on-failure", n) if n > 0 => format!("on-failure:{n}"),
        (n, _) => n.to_string(),
    };
    RestartPolicy::parse(&spec).map_err(|e| ApiError::bad(e.to_string()))
}

/// HostConfig.Ulimits ([{Name, Soft, Hard}]) as `--ulimit` specs.
fn ulimits(host: &Value) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for u in host.get("Ulimits").and_then(Value::as_array).into_iter().flatten() {
        let name = text(u, "Name").ok_or_else(|| ApiError::bad(format!("ulimit {u}: no Name")))?;
        let n = |k: &str| match int(u, k) {
            -1 => "unlimited".to_string(),
            v => v.to_string(),
        };
        let spec = format!("{name}={}:{}", n("Soft"), n("Hard"));
        crate::container::options::ulimit(&spec).map_err(|e| ApiError::bad(e.to_string()))?;
        out.push(spec);
    }
    Ok(out)
}

fn device(d: &Value) -> Option<String> {
    let host = text(d, "PathOnHost")?;
    let inside = text(d, "PathInContainer").unwrap_or_else(|| host.clone());
    Some(match text(d, "CgroupPermissions") {
        Some(p) => format!("{host}:{inside}:{p}"),
        None => format!("{host}:{inside}"),
    })
}

/// A `-v` spec as docker passes it; mount propagation is not something
/// berth sets, so those options go.
fn bind(b: &str) -> String {
    const PROPAGATION: [&str; 6] = ["private", "rprivate", "shared", "rshared", "slave", "rslave"];
    let parts: Vec<&str> = b.split(':').collect();
    match parts.as_slice() {
        [src, dst, opts] => {
            let kept: Vec<&str> = opts.split(',').filter(|o| !PROPAGATION.contains(o)).collect();
            if kept.is_empty() { format!("{src}:{dst}") } else { format!("{src}:{dst}:{}", kept.join(",")) }
        }
        _ => b.to_string(),
    }
}

/// PortBindings as `-p` specs; with PublishAllPorts, the config's own
/// ExposedPorts (`--expose`) too, each to a free host port.
fn ports(body: &Value, host: &Value, p: &mut Plan) {
    if let Some(Value::Object(b)) = host.get("PortBindings") {
        for (port, binds) in b {
            let (num, proto) = port.split_once('/').unwrap_or((port, "tcp"));
            let binds: Vec<&Value> = binds.as_array().map(|a| a.iter().collect()).unwrap_or_default();
            if binds.is_empty() {
                p.spec.publish.push(format!("{num}/{proto}"));
            }
            for bnd in binds {
                let ip = text(bnd, "HostIp").unwrap_or_default();
                if ip.contains(':') {
                    p.warnings.push(format!("port {port}: IPv6 host address {ip} is not supported; the port is published on IPv4 only"));
                    continue;
                }
                let hp = text(bnd, "HostPort").unwrap_or_default();
                p.spec.publish.push(match (ip.is_empty(), hp.is_empty()) {
                    (true, true) => format!("{num}/{proto}"),
                    (true, false) => format!("{hp}:{num}/{proto}"),
                    (false, _) => format!("{ip}:{hp}:{num}/{proto}"),
                });
            }
        }
    }
    if p.spec.publish_all
        && let Some(Value::Object(e)) = body.get("ExposedPorts")
    {
        for port in e.keys() {
            let spec = if port.contains('/') { port.clone() } else { format!("{port}/tcp") };
            if !p.spec.publish.iter().any(|x| x.rsplit(':').next().unwrap_or(x) == spec) {
                p.spec.publish.push(spec);
            }
        }
    }
}

/// HostConfig.Mounts (`--mount`): binds and volumes as `-v` specs.
fn mounts(host: &Value, p: &mut Plan) {
    for m in host.get("Mounts").and_then(Value::as_array).into_iter().flatten() {
        let Some(target) = text(m, "Target") else { continue };
        let ro = if flag(m, "ReadOnly") { ":ro" } else { "" };
        match (text(m, "Type").as_deref(), text(m, "Source")) {
            (Some("bind") | Some("volume") | None, Some(src)) => p.spec.volumes.push(format!("{src}:{target}{ro}")),
            (Some("volume") | None, None) => p.spec.volumes.push(format!("{target}{ro}")),
            (Some("tmpfs"), _) => {
                let t = m.get("TmpfsOptions").unwrap_or(&Value::Null);
                let mut opts: Vec<String> = Vec::new();
                if int(t, "SizeBytes") > 0 {
                    opts.push(format!("size={}", int(t, "SizeBytes")));
                }
                if int(t, "Mode") > 0 {
                    opts.push(format!("mode={:o}", int(t, "Mode")));
                }
                if flag(m, "ReadOnly") {
                    opts.push("ro".into());
                }
                p.spec.tmpfs.push(if opts.is_empty() { target } else { format!("{target}:{}", opts.join(",")) });
            }
            (t, _) => p.warnings.push(format!("mount at {target}: type {} is not supported by berth; it was left out", t.unwrap_or("?"))),
        }
    }
}

fn log_config(host: &Value, p: &mut Plan) {
    let Some(lc) = host.get("LogConfig").filter(|v| v.is_object()) else { return };
    match text(lc, "Type").as_deref() {
        None | Some("json-file") => p.spec.log_opts = map(lc, "Config"),
        Some(t) => p.warnings.push(format!("log driver {t} is not supported; the container logs with json-file")),
    }
}

/// NetworkMode and NetworkingConfig.EndpointsConfig: the first network
/// at create, the others joined right after.
fn networks(body: &Value, host: &Value, p: &mut Plan) -> Result<()> {
    let mode = text(host, "NetworkMode").filter(|m| m != "default");
    if let Some(m) = &mode
        && let Some(other) = m.strip_prefix("container:")
    {
        return Err(ApiError::bad(format!("network mode container:{other} is not supported by berth; use a user-defined network")));
    }
    let main = mode.clone().unwrap_or_else(|| crate::network::DEFAULT.to_string());
    let endpoint = |cfg: &Value| -> (Option<String>, Vec<String>) {
        let ip = cfg.get("IPAMConfig").and_then(|i| text(i, "IPv4Address"));
        (ip, list(cfg, "Aliases"))
    };
    let mut rest = Vec::new();
    if let Some(Value::Object(eps)) = body.get("NetworkingConfig").and_then(|n| n.get("EndpointsConfig")) {
        for (net, cfg) in eps {
            let (ip, aliases) = endpoint(cfg);
            if *net == main || (mode.is_none() && net == "default") {
                p.spec.ip = ip;
                p.spec.aliases = aliases;
            } else if matches!(main.as_str(), "host" | "none") {
                return Err(ApiError::bad(format!("container cannot be connected to network {net}: its network mode is {main}")));
            } else {
                rest.push((net.clone(), ip, aliases));
            }
        }
    }
    p.spec.network = mode;
    p.more_networks = rest;
    Ok(())
}

/// Options berth does not apply: a warning each when set to other than
/// docker's default, so a client learns it.
fn unsupported(host: &Value, w: &mut Vec<String>) {
    let set = |k: &str| match host.get(k) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(_) => true,
    };
    for k in ["Init", "SecurityOpt", "CpuShares", "Links", "MemoryReservation", "OomKillDisable"] {
        if set(k) {
            w.push(format!("{k} is not supported by berth yet; it was ignored"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn docker_cli_run_body() {
        let body = json!({
            "Image": "busybox", "Cmd": ["httpd", "-f", "-p", "80"], "Entrypoint": null, "Env": ["A=1"],
            "Labels": {"role": "web"}, "Tty": false, "OpenStdin": false, "WorkingDir": "", "User": "",
            "ExposedPorts": {"80/tcp": {}}, "StopTimeout": 3,
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000u64, "Retries": 2},
            "HostConfig": {
                "Binds": ["/srv:/srv:ro,rprivate", "data:/data"], "NetworkMode": "default",
                "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": [{"HostIp": "", "HostPort": ""}]},
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}, "AutoRemove": true,
                "Memory": 67108864, "NanoCpus": 500000000, "PidsLimit": null, "CapAdd": ["NET_ADMIN"], "CapDrop": null,
                "Sysctls": {"net.ipv4.ip_forward": "1"}, "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
                "ShmSize": 0, "Dns": [], "Tmpfs": null,
            },
            "NetworkingConfig": {"EndpointsConfig": {}},
        });
        let p = plan(&body, Some("web".into())).unwrap();
        let s = &p.spec;
        assert_eq!((s.image.as_str(), s.name.as_deref()), ("busybox", Some("web")));
        assert_eq!(s.cmd.as_deref(), Some(&["httpd".to_string(), "-f".into(), "-p".into(), "80".into()][..]));
        assert_eq!(s.entrypoint, None);
        assert_eq!(s.volumes, vec!["/srv:/srv:ro", "data:/data"]);
        let mut publish = s.publish.clone();
        publish.sort();
        assert_eq!(publish, vec!["127.0.0.1:8080:80/tcp", "53/udp"]);
        assert_eq!(s.restart, RestartPolicy::OnFailure(3));
        assert!(s.rm);
        assert_eq!((s.memory, s.cpus, s.pids_limit), (Some(64 << 20), Some(0.5), None));
        assert_eq!(s.network, None);
        assert_eq!(s.stop_timeout, Some(3));
        assert_eq!(s.health.as_ref().map(|h| (h.interval_ms, h.retries)), Some((2000, 2)));
        assert_eq!(s.log_opts.get("max-size").map(String::as_str), Some("1m"));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn networks_entrypoint_and_warnings() {
        let body = json!({
            "Image": "busybox", "Entrypoint": [""], "Cmd": "sh",
            "HostConfig": {"NetworkMode": "front", "ReadonlyRootfs": true, "Mounts": [
                {"Type": "volume", "Target": "/cache"}, {"Type": "bind", "Source": "/srv", "Target": "/x", "ReadOnly": true},
                {"Type": "tmpfs", "Target": "/run"}]},
            "NetworkingConfig": {"EndpointsConfig": {
                "front": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.9.0.7"}},
                "back": {"Aliases": ["api"]}}},
        });
        let p = plan(&body, None).unwrap();
        assert_eq!(p.spec.entrypoint, Some(vec![]));
        assert_eq!(p.spec.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(p.spec.network.as_deref(), Some("front"));
        assert_eq!((p.spec.ip.as_deref(), p.spec.aliases.clone()), (Some("10.9.0.7"), vec!["web".to_string()]));
        assert_eq!(p.more_networks, vec![("back".to_string(), None, vec!["api".to_string()])]);
        assert_eq!(p.spec.volumes, vec!["/cache", "/srv:/x:ro"]);
        assert!(p.spec.read_only);
        assert_eq!(p.spec.tmpfs, vec!["/run"]);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let p = plan(&json!({"Image": "b", "HostConfig": {"Init": true, "OomKillDisable": true}}), None).unwrap();
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(p.warnings.iter().any(|w| w.contains("Init")) && p.warnings.iter().any(|w| w.contains("OomKillDisable")));
    }

    /// What `docker run --read-only --tmpfs ... --shm-size ... --add-host
    /// ... --dns ... --ulimit ...` sends.
    #[test]
    fn filesystem_name_and_limit_options() {
        let body = json!({"Image": "busybox", "HostConfig": {
            "ReadonlyRootfs": true, "Tmpfs": {"/run": "size=1m,mode=1777", "/tmp": ""}, "ShmSize": 134217728,
            "ExtraHosts": ["db:10.0.0.5"], "Dns": ["10.0.0.2"], "DnsSearch": ["lab.test"], "DnsOptions": ["ndots:2"],
            "Ulimits": [{"Name": "nofile", "Soft": 512, "Hard": 1024}, {"Name": "core", "Soft": -1, "Hard": -1}],
            "Mounts": [{"Type": "tmpfs", "Target": "/cache", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 448}}]}});
        let p = plan(&body, None).unwrap();
        let s = &p.spec;
        assert!(s.read_only);
        assert_eq!(s.tmpfs, vec!["/run:size=1m,mode=1777", "/tmp", "/cache:size=1048576,mode=700"]);
        assert_eq!(s.shm_size, Some(128 << 20));
        assert_eq!((s.extra_hosts.clone(), s.dns.clone(), s.dns_search.clone(), s.dns_options.clone()), (vec!["db:10.0.0.5".to_string()], vec!["10.0.0.2".to_string()], vec!["lab.test".to_string()], vec!["ndots:2".to_string()]));
        assert_eq!(s.ulimits, vec!["nofile=512:1024", "core=unlimited:unlimited"]);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let e = plan(&json!({"Image": "b", "HostConfig": {"Ulimits": [{"Name": "files", "Soft": 1, "Hard": 1}]}}), None).unwrap_err();
        assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn refusals() {
        assert_eq!(plan(&json!({"Cmd": ["sh"]}), None).unwrap_err().status, http::StatusCode::BAD_REQUEST);
        assert!(plan(&json!({"Image": "b", "HostConfig": {"NetworkMode": "container:x"}}), None).is_err());
        assert!(plan(&json!({"Image": "b", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}), None).is_err());
        let p = plan(&json!({"Image": "b", "ExposedPorts": {"80/tcp": {}, "81/tcp": {}}, "HostConfig": {"PublishAllPorts": true, "PortBindings": {"80/tcp": [{"HostPort": "8000"}]}}}), None).unwrap();
        assert_eq!(p.spec.publish, vec!["8000:80/tcp", "81/tcp"]);
    }
}
