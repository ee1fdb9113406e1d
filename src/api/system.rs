//! The API's system endpoints: `/_ping`, `/version`, `/info`, `/events`,
//! `/system/df`.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{API_VERSION, ApiError, Ctx, JSON, MIN_API_VERSION, Reply, Req, Result};
use crate::events::{self, Filter};

pub(super) fn route(ctx: &Ctx, req: &mut Req, seg: &[&str]) -> Option<Result<Reply>> {
    let m = req.method.clone();
    Some(match (&m, seg) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => Ok(Reply::Raw { status: StatusCode::OK, content_type: "text/plain; charset=utf-8", body: b"OK".to_vec() }),
        (&Method::GET, ["version"]) => Ok(Reply::ok(version())),
        (&Method::GET, ["info"]) => info(ctx),
        (&Method::GET, ["events"]) => events(ctx, req),
        (&Method::GET, ["system", "df"]) => df(ctx, req),
        _ => return None,
    })
}

fn version() -> serde_json::Value {
    let kernel = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    let v = env!("CARGO_PKG_VERSION");
    json!({
        "Platform": { "Name": "berth" },
        "Components": [{ "Name": "Engine", "Version": v, "Details": {
            "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": go_arch(),
            "KernelVersion": kernel, "Experimental": "false", "GitCommit": "", "GoVersion": "",
        }}],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel,
        "BuildTime": "",
    })
}

/// The architecture as Go names it, which is what clients compare.
pub(super) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn info(ctx: &Ctx) -> Result<Reply> {
    let i = ctx.engine.info()?;
    let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Reply::ok(json!({
        "ID": host,
        "Containers": i.containers,
        "ContainersRunning": i.running,
        "ContainersPaused": i.paused,
        "ContainersStopped": i.stopped,
        "Images": i.images,
        "Driver": i.storage_driver,
        "DriverStatus": [],
        "Plugins": { "Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file"] },
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": crate::store::now_rfc3339(),
        "LoggingDriver": "json-file",
        "CgroupDriver": i.cgroup_driver,
        "CgroupVersion": i.cgroup_version.to_string(),
        "KernelVersion": i.kernel_version,
        "OperatingSystem": i.os,
        "OSType": "linux",
        "Architecture": i.architecture,
        "NCPU": i.cpus,
        "MemTotal": i.total_memory,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": { "IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": [] },
        "DockerRootDir": i.root_dir,
        "Name": host,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": i.server_version,
        "Runtimes": { "berth": { "path": "berth" } },
        "DefaultRuntime": "berth",
        "Swarm": { "LocalNodeState": "inactive", "ControlAvailable": false, "NodeID": "", "NodeAddr": "" },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    })))
}

/// `GET /events`: the recorded events from `since`, then those that
/// happen, until `until` or until the client goes away.
fn events(ctx: &Ctx, req: &Req) -> Result<Reply> {
    let time = |key: &str| req.q(key).filter(|s| !s.is_empty()).map(|s| events::parse_time(s).map_err(|m| ApiError::bad(format!("{key}: {m}")))).transpose();
    let (since, until) = (time("since")?, time("until")?);
    let f = events_filter(&req.filters()?)?;
    let engine = ctx.engine.clone();
    Ok(Reply::stream(JSON, move |sink| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        if since.is_some() {
            for ev in engine.events(since, until.map(|u| u.min(now)), &f) {
                if sink.json(&events::json(&ev)).is_err() {
                    return;
                }
            }
        }
        if until.is_none_or(|u| u > now) {
            // Polled between events too: a client that left while nothing
            // happened must not keep this thread forever.
            engine.follow_events_ticking(until, &f, |ev| match ev {
                Some(ev) => sink.json(&events::json(ev)).is_ok(),
                None => !sink.closed(),
            });
        }
    }))
}

/// docker's event filters as berth's; `scope=local` holds for all of
/// berth's events.
fn events_filter(filters: &std::collections::BTreeMap<String, Vec<String>>) -> Result<Filter> {
    let mut f = Filter::default();
    for (k, vals) in filters {
        if k == "scope" && vals.iter().all(|v| v == "local") {
            continue;
        }
        for v in vals {
            f.add(&format!("{k}={v}")).map_err(ApiError::bad)?;
        }
    }
    Ok(f)
}

/// `GET /system/df`: the images, containers and volumes with what they
/// hold on disk, as `berth system df` counts it.
fn df(ctx: &Ctx, req: &Req) -> Result<Reply> {
    let e = &ctx.engine;
    let df = e.df()?;
    let items = |kind: &str| df.items.iter().filter(|i| i.kind == kind).map(|i| (i.id.as_str(), i)).collect::<std::collections::HashMap<_, _>>();
    let (image_items, container_items, volume_items) = (items("image"), items("container"), items("volume"));
    let containers = e.containers(true)?;
    let secs = |t: &str| crate::store::parse_rfc3339(t).unwrap_or(0.0) as i64;
    let images: Vec<Value> = e
        .images()?
        .into_iter()
        .filter_map(|i| {
            let it = image_items.get(i.id.as_str())?;
            let mut v = json!({
                "Id": i.id, "ParentId": "", "RepoTags": i.tags, "RepoDigests": [], "Created": secs(&i.created),
                "Size": it.size, "SharedSize": it.shared, "Labels": i.config.config.labels,
                "Containers": containers.iter().filter(|c| c.image_id == i.id).count(),
            });
            if !req.at_least(1, 44) {
                v["VirtualSize"] = json!(it.size);
            }
            Some(v)
        })
        .collect();
    let containers: Vec<Value> = containers
        .iter()
        .filter_map(|c| {
            let it = container_items.get(c.id.as_str())?;
            Some(json!({
                "Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.image_ref, "ImageID": c.image_id,
                "Command": c.command.join(" "), "Created": secs(&c.created), "State": c.state, "Status": crate::render::status(c),
                "SizeRw": it.size, "SizeRootFs": it.size, "Labels": c.spec.labels, "Ports": [], "Mounts": [],
                "HostConfig": { "NetworkMode": "bridge" }, "NetworkSettings": { "Networks": {} },
            }))
        })
        .collect();
    let volumes: Vec<Value> = e
        .volumes()?
        .into_iter()
        .filter_map(|v| {
            let it = volume_items.get(v.name.as_str())?;
            let mut j = super::volumes::volume_json(&v);
            j["UsageData"] = json!({ "Size": it.size, "RefCount": e.volume_users(&v.name).len() });
            Some(j)
        })
        .collect();
    Ok(Reply::ok(json!({
        "LayersSize": df.images.size,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": [],
    })))
}
