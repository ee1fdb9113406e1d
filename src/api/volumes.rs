//! The API's volumes endpoints: list, inspect, create, remove and prune.
//! berth's volumes are local directories; other drivers and driver options
//! (tmpfs, NFS) are refused by name rather than ignored.

use std::collections::BTreeMap;

use http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Ctx, Reply, Req, Result, dangling_value, label_matches};
use crate::engine::{Engine, EngineError};
use crate::volume::{Volume, VolumeError};

pub(super) fn route(ctx: &Ctx, req: &mut Req, seg: &[&str]) -> Option<Result<Reply>> {
    let m = req.method.clone();
    Some(match (&m, seg) {
        (&Method::GET, [] | [""]) => list(ctx, req),
        (&Method::POST, ["create"]) => create(ctx, req),
        (&Method::POST, ["prune"]) => prune(ctx, req),
        (&Method::GET, [name]) => ctx.engine.volume(name).map(|v| Reply::ok(volume_json(&v))).map_err(not_found(name)),
        (&Method::DELETE, [name]) => remove(ctx, req, name),
        _ => return None,
    })
}

/// docker's words: "get NAME: no such volume".
fn not_found(name: &str) -> impl FnOnce(EngineError) -> ApiError + '_ {
    move |e| match e {
        EngineError::Volume(VolumeError::NotFound(_)) => ApiError::not_found(format!("get {name}: no such volume")),
        e => e.into(),
    }
}

pub(super) fn volume_json(v: &Volume) -> Value {
    json!({
        "Name": v.name, "Driver": "local", "Mountpoint": v.mountpoint, "CreatedAt": v.created,
        "Labels": v.labels, "Scope": "local", "Options": {},
    })
}

fn list(ctx: &Ctx, req: &Req) -> Result<Reply> {
    let filters = req.filters()?;
    for k in filters.keys() {
        if !matches!(k.as_str(), "name" | "label" | "label!" | "dangling" | "driver") {
            return Err(ApiError::bad(format!("invalid filter '{k}'")));
        }
    }
    let dangling = filters.get("dangling").map(|v| dangling_value(v)).transpose()?;
    let mut out = Vec::new();
    for v in ctx.engine.volumes()? {
        let ok = filters.get("name").is_none_or(|ns| ns.iter().any(|n| v.name.contains(n.as_str())))
            && filters.get("label").is_none_or(|ls| ls.iter().all(|l| label_matches(&v.labels, l)))
            && filters.get("label!").is_none_or(|ls| !ls.iter().any(|l| label_matches(&v.labels, l)))
            && filters.get("driver").is_none_or(|ds| ds.iter().any(|d| d == "local"))
            && dangling.is_none_or(|d| d == ctx.engine.volume_users(&v.name).is_empty());
        if ok {
            out.push(volume_json(&v));
        }
    }
    Ok(Reply::ok(json!({ "Volumes": out, "Warnings": [] })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: Option<String>,
    driver: Option<String>,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

fn create(ctx: &Ctx, req: &mut Req) -> Result<Reply> {
    let b: Option<CreateBody> = req.json()?;
    let b = b.unwrap_or_default();
    let name = b.name.filter(|n| !n.is_empty());
    let what = name.as_deref().map(|n| format!("volume {n}")).unwrap_or_else(|| "volume".into());
    if let Some(d) = b.driver.as_deref().filter(|d| !d.is_empty() && *d != "local") {
        return Err(ApiError::bad(format!("{what}: driver {d:?} is not supported: berth's volumes are local directories (leave the driver out or use \"local\")")));
    }
    if let Some((k, v)) = b.driver_opts.unwrap_or_default().into_iter().next() {
        return Err(ApiError::bad(format!("{what}: driver option {k}={v} is not supported: berth's volumes are plain local directories")));
    }
    let v = ctx.engine.volume_create(name.as_deref(), &b.labels.unwrap_or_default())?;
    Ok(Reply::created(volume_json(&v)))
}

fn remove(ctx: &Ctx, req: &Req, name: &str) -> Result<Reply> {
    match ctx.engine.volume_remove(name) {
        Ok(()) => Ok(Reply::no_content()),
        // As docker's: force makes a missing volume no error (in use still is).
        Err(EngineError::Volume(VolumeError::NotFound(_))) if req.flag("force") => Ok(Reply::no_content()),
        Err(e) => Err(not_found(name)(e)),
    }
}

/// `POST /volumes/prune`: unused volumes, anonymous ones only unless the
/// `all` filter (API 1.42 on; older clients always meant all of them),
/// narrowed by `label` and `label!`.
fn prune(ctx: &Ctx, req: &Req) -> Result<Reply> {
    let filters = req.filters()?;
    for k in filters.keys() {
        if !matches!(k.as_str(), "label" | "label!" | "all") {
            return Err(ApiError::bad(format!("invalid filter '{k}': volume prune takes label, label! and all")));
        }
    }
    let all = !req.at_least(1, 42)
        || match filters.get("all").map(|v| v.iter().map(String::as_str).collect::<Vec<_>>()).as_deref() {
            None => false,
            Some(["true" | "1"]) => true,
            Some(["false" | "0"]) => false,
            Some(other) => return Err(ApiError::bad(format!("invalid filter 'all={}': use true or false", other.join(",")))),
        };
    let by_label = filters.contains_key("label") || filters.contains_key("label!");
    let (gone, bytes) = if by_label { prune_labelled(&ctx.engine, &filters, all)? } else { ctx.engine.volume_prune(all)? };
    Ok(Reply::ok(json!({ "VolumesDeleted": gone, "SpaceReclaimed": bytes })))
}

fn prune_labelled(e: &Engine, filters: &BTreeMap<String, Vec<String>>, all: bool) -> Result<(Vec<String>, u64)> {
    let wanted = |v: &Volume| {
        (all || v.anonymous)
            && filters.get("label").is_none_or(|ls| ls.iter().all(|l| label_matches(&v.labels, l)))
            && filters.get("label!").is_none_or(|ls| !ls.iter().any(|l| label_matches(&v.labels, l)))
    };
    let candidates: Vec<Volume> = e.volumes()?.into_iter().filter(|v| wanted(v) && e.volume_users(&v.name).is_empty()).collect();
    if candidates.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let sizes: BTreeMap<String, u64> = e.df()?.items.into_iter().filter(|i| i.kind == "volume").map(|i| (i.id, i.size)).collect();
    let (mut gone, mut bytes) = (Vec::new(), 0);
    for v in candidates {
        // One taken into use meanwhile stays.
        if e.volume_remove(&v.name).is_ok() {
            bytes += sizes.get(&v.name).copied().unwrap_or(0);
            gone.push(v.name);
        }
    }
    Ok((gone, bytes))
}
