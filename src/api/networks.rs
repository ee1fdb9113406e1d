//! The API's networks endpoints: list, inspect, create, remove, connect,
//! disconnect and prune. berth's networks are bridges with one IPv4
//! subnet; what a client asks beyond that (IPv6, internal networks, IP
//! ranges, driver options) is refused by name rather than ignored.

use std::collections::BTreeMap;

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Ctx, Reply, Req, Result, dangling_value, label_matches};
use crate::engine::{Engine, EngineError};
use crate::network::{self, Network, NetworkError};

pub(super) fn route(ctx: &Ctx, req: &mut Req, seg: &[&str]) -> Option<Result<Reply>> {
    let m = req.method.clone();
    Some(match (&m, seg) {
        (&Method::GET, [] | [""]) => list(ctx, req),
        (&Method::POST, ["create"]) => create(ctx, req),
        (&Method::POST, ["prune"]) => prune(ctx, req),
        (&Method::GET, [id]) => ctx.engine.network(id).map_err(not_found(id)).map(|n| Reply::ok(network_json(&ctx.engine, &n))),
        (&Method::DELETE, [id]) => remove(ctx, id),
        (&Method::POST, [id, "connect"]) => connect(ctx, req, id),
        (&Method::POST, [id, "disconnect"]) => disconnect(ctx, req, id),
        _ => return None,
    })
}

/// docker's words for a missing network: "network X not found".
fn not_found(key: &str) -> impl FnOnce(EngineError) -> ApiError + '_ {
    move |e| match e {
        EngineError::Network(NetworkError::NotFound(_)) => ApiError::not_found(format!("network {key} not found")),
        e => e.into(),
    }
}

/// The network as docker's `GET /networks/{id}` shows it.
pub(super) fn network_json(e: &Engine, n: &Network) -> Value {
    let prefix = n.subnet.split('/').nth(1).unwrap_or("24");
    let containers: serde_json::Map<String, Value> = e
        .network_members(&n.id)
        .unwrap_or_default()
        .into_iter()
        .map(|(id, name, ip)| {
            let v = json!({
                "Name": name, "EndpointID": endpoint_id(&id, &n.id), "MacAddress": mac(ip),
                "IPv4Address": format!("{ip}/{prefix}"), "IPv6Address": "",
            });
            (id, v)
        })
        .collect();
    // As docker's: the predefined bridge shows its device; a user's
    // network, only the options it was made with (none: berth takes none).
    let options = if n.name == network::DEFAULT {
        json!({ "com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.name": n.bridge })
    } else {
        json!({})
    };
    json!({
        "Name": n.name, "Id": n.id, "Created": n.created, "Scope": if n.is_overlay() { "swarm" } else { "local" }, "Driver": n.driver,
        "EnableIPv4": true, "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": null, "Config": [{ "Subnet": n.subnet, "Gateway": n.gateway }] },
        "Internal": false, "Attachable": false, "Ingress": false,
        "ConfigFrom": { "Network": "" }, "ConfigOnly": false,
        "Containers": containers, "Options": options, "Labels": n.labels,
    })
}

/// berth's endpoints have no ID of their own; this one is stable for a
/// container on a network, which is what clients compare.
fn endpoint_id(container: &str, net: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("{container}/{net}").as_bytes()))
}

/// The MAC berth gives an endpoint: docker's 02:42 and the address.
fn mac(ip: std::net::Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

fn list(ctx: &Ctx, req: &Req) -> Result<Reply> {
    let filters = req.filters()?;
    for k in filters.keys() {
        if !matches!(k.as_str(), "name" | "id" | "label" | "driver" | "dangling" | "type" | "scope") {
            return Err(ApiError::bad(format!("invalid filter '{k}'")));
        }
    }
    let mut out = Vec::new();
    for n in ctx.engine.networks()? {
        let v = network_json(&ctx.engine, &n);
        if matches(&filters, &n, v["Containers"].as_object().is_some_and(|c| c.is_empty()))? {
            out.push(v);
        }
    }
    Ok(Reply::ok(Value::Array(out)))
}

/// docker's network filters: several values of one kind match any of them,
/// every kind given must match. `name` and `id` match a part, as docker's
/// (unanchored) patterns do for plain names.
fn matches(filters: &BTreeMap<String, Vec<String>>, n: &Network, unused: bool) -> Result<bool> {
    for (k, vals) in filters {
        let ok = match k.as_str() {
            "name" => vals.iter().any(|v| n.name.contains(v.as_str())),
            "id" => vals.iter().any(|v| n.id.contains(v.as_str())),
            "label" => vals.iter().any(|v| label_matches(&n.labels, v)),
            "driver" => vals.iter().any(|v| *v == n.driver),
            "scope" => vals.iter().any(|v| v == "local"),
            "type" => vals.iter().any(|v| match v.as_str() {
                "builtin" => n.name == network::DEFAULT,
                "custom" => n.name != network::DEFAULT,
                _ => false,
            }),
            "dangling" => {
                let want = dangling_value(vals)?;
                // The predefined network is never dangling, as docker's.
                want == (unused && n.name != network::DEFAULT)
            }
            _ => false,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: Option<String>,
    internal: Option<bool>,
    // Attachable is a swarm notion, left unread: any container may join any
    // berth network.
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: Option<String>,
    config: Option<Vec<IpamConfig>>,
    options: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: Option<String>,
    gateway: Option<String>,
    #[serde(rename = "IPRange")]
    ip_range: Option<String>,
    aux_addresses: Option<BTreeMap<String, String>>,
}

/// Driver options whose value is what berth's bridges do anyway.
const SAME_AS_BERTH: &[(&str, &str)] = &[
    ("com.docker.network.bridge.enable_icc", "true"),
    ("com.docker.network.bridge.enable_ip_masquerade", "true"),
    ("com.docker.network.driver.mtu", "1500"),
];

fn create(ctx: &Ctx, req: &mut Req) -> Result<Reply> {
    let b: Option<CreateBody> = req.json()?;
    let b = b.unwrap_or_default();
    let spec = spec_of(b)?;
    let n = ctx.engine.network_create(&spec).map_err(|e| match e {
        EngineError::Network(NetworkError::Exists(name)) => ApiError::conflict(format!("network with name {name} already exists")),
        e => e.into(),
    })?;
    Ok(Reply::created(json!({ "Id": n.id, "Warning": "" })))
}

/// What berth can make of a create request, or why not.
fn spec_of(b: CreateBody) -> Result<network::NetworkSpec> {
    let name = b.name;
    if name.is_empty() {
        return Err(ApiError::bad("network create: a Name is required"));
    }
    let refuse = |why: String| Err(ApiError::bad(format!("network {name}: {why}")));
    if let Some(d) = b.driver.as_deref().filter(|d| !d.is_empty() && *d != "bridge") {
        return refuse(format!("driver {d:?} is not supported: berth networks are bridges (leave the driver out or use \"bridge\")"));
    }
    if b.internal == Some(true) {
        return refuse("internal networks are not supported: berth's bridges always reach outside through NAT".into());
    }
    if b.enable_ipv6 == Some(true) {
        return refuse("IPv6 is not supported: berth's networks are IPv4 only".into());
    }
    for (k, v) in b.options.unwrap_or_default() {
        if !SAME_AS_BERTH.contains(&(k.as_str(), v.as_str())) {
            return refuse(format!("driver option {k}={v} is not supported by berth's bridges"));
        }
    }
    let ipam = b.ipam.unwrap_or_default();
    if let Some(d) = ipam.driver.as_deref().filter(|d| !d.is_empty() && *d != "default") {
        return refuse(format!("IPAM driver {d:?} is not supported: only \"default\""));
    }
    if ipam.options.is_some_and(|o| !o.is_empty()) {
        return refuse("IPAM options are not supported".into());
    }
    let mut configs = ipam.config.unwrap_or_default();
    if configs.len() > 1 {
        return refuse("one IPAM config (subnet) at most: berth's networks have a single IPv4 subnet".into());
    }
    let (subnet, gateway) = match configs.pop() {
        None => (None, None),
        Some(c) => {
            if let Some(r) = c.ip_range.as_deref().filter(|r| !r.is_empty() && Some(*r) != c.subnet.as_deref()) {
                return refuse(format!("IP range {r} is not supported: addresses come from the whole subnet"));
            }
            if c.aux_addresses.is_some_and(|a| !a.is_empty()) {
                return refuse("auxiliary addresses are not supported".into());
            }
            (c.subnet.filter(|s| !s.is_empty()), c.gateway.filter(|g| !g.is_empty()))
        }
    };
    Ok(network::NetworkSpec { name, subnet, gateway, labels: b.labels.unwrap_or_default() })
}

fn remove(ctx: &Ctx, id: &str) -> Result<Reply> {
    match ctx.engine.network_remove(id) {
        Ok(_) => Ok(Reply::no_content()),
        // docker answers 403 Forbidden for both.
        Err(e @ EngineError::Network(NetworkError::Predefined(_) | NetworkError::InUse { .. })) => Err(ApiError::new(StatusCode::FORBIDDEN, e.to_string())),
        Err(e) => Err(not_found(id)(e)),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<EndpointConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EndpointConfig {
    aliases: Option<Vec<String>>,
    #[serde(rename = "IPAMConfig")]
    ipam_config: Option<EndpointIpam>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EndpointIpam {
    #[serde(rename = "IPv4Address")]
    ipv4: Option<String>,
    #[serde(rename = "IPv6Address")]
    ipv6: Option<String>,
}

fn connect(ctx: &Ctx, req: &mut Req, net: &str) -> Result<Reply> {
    let b: Option<ConnectBody> = req.json()?;
    let b = b.unwrap_or_default();
    if b.container.is_empty() {
        return Err(ApiError::bad("network connect: a Container is required"));
    }
    let ep = b.endpoint_config.unwrap_or_default();
    let ipam = ep.ipam_config.unwrap_or_default();
    if ipam.ipv6.as_deref().is_some_and(|a| !a.is_empty()) {
        return Err(ApiError::bad(format!("network {net}: IPv6 addresses are not supported: berth's networks are IPv4 only")));
    }
    let ip = ipam.ipv4.filter(|a| !a.is_empty());
    // The network first, so a missing one is named as such (not the container).
    ctx.engine.network(net).map_err(not_found(net))?;
    ctx.engine.network_connect(net, &b.container, ip.as_deref(), &ep.aliases.unwrap_or_default())?;
    Ok(Reply::Empty(StatusCode::OK))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DisconnectBody {
    container: String,
    force: bool,
}

fn disconnect(ctx: &Ctx, req: &mut Req, net: &str) -> Result<Reply> {
    let b: Option<DisconnectBody> = req.json()?;
    let b = b.unwrap_or_default();
    if b.container.is_empty() {
        return Err(ApiError::bad("network disconnect: a Container is required"));
    }
    ctx.engine.network(net).map_err(not_found(net))?;
    match ctx.engine.network_disconnect(net, &b.container) {
        Ok(()) => Ok(Reply::Empty(StatusCode::OK)),
        // Already where the client wants it.
        Err(EngineError::Network(NetworkError::NotConnected(..))) if b.force => Ok(Reply::Empty(StatusCode::OK)),
        Err(e) => Err(e.into()),
    }
}

/// `POST /networks/prune`: unused networks, narrowed by `label` (and
/// `label!`) filters; `until` as docker's.
fn prune(ctx: &Ctx, req: &Req) -> Result<Reply> {
    let filters = req.filters()?;
    for k in filters.keys() {
        if !matches!(k.as_str(), "label" | "label!" | "until") {
            return Err(ApiError::bad(format!("invalid filter '{k}': network prune takes label, label! and until")));
        }
    }
    let until = filters.get("until").map(|v| v.iter().map(|t| crate::events::parse_time(t).map_err(ApiError::bad)).collect::<Result<Vec<_>>>()).transpose()?;
    let wanted = |n: &Network| {
        filters.get("label").is_none_or(|ls| ls.iter().all(|l| label_matches(&n.labels, l)))
            && filters.get("label!").is_none_or(|ls| !ls.iter().any(|l| label_matches(&n.labels, l)))
            && until.as_ref().is_none_or(|us| crate::store::parse_rfc3339(&n.created).is_some_and(|c| us.iter().all(|u| c < *u)))
    };
    let gone = if filters.is_empty() {
        ctx.engine.network_prune()?
    } else {
        let mut gone = Vec::new();
        for n in ctx.engine.networks()?.into_iter().filter(|n| n.name != network::DEFAULT && wanted(n)) {
            let unused = ctx.engine.network_members(&n.id).is_ok_and(|m| m.is_empty());
            if unused && ctx.engine.network_remove(&n.id).is_ok() {
                gone.push(n.name);
            }
        }
        gone
    };
    Ok(Reply::ok(json!({ "NetworksDeleted": gone })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> CreateBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn create_bodies_as_clients_send_them() {
        // docker-compose 1.29's, nulls and all.
        let s = spec_of(body(json!({
            "Name": "p_default", "Driver": null, "Options": {}, "IPAM": null, "CheckDuplicate": true,
            "Internal": false, "EnableIPv6": false, "Attachable": true,
            "Labels": {"com.docker.compose.network": "default", "com.docker.compose.project": "p"},
        })))
        .unwrap();
        assert_eq!(s.name, "p_default");
        assert_eq!(s.labels["com.docker.compose.project"], "p");
        // The docker CLI's, with a subnet.
        let s = spec_of(body(json!({
            "Name": "n", "Driver": "bridge", "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": "10.1.2.0/24", "Gateway": "10.1.2.1"}]},
        })))
        .unwrap();
        assert_eq!((s.subnet.as_deref(), s.gateway.as_deref()), (Some("10.1.2.0/24"), Some("10.1.2.1")));
    }

    #[test]
    fn what_berth_cannot_do_is_refused_by_name() {
        let why = |v: Value| spec_of(body(v)).unwrap_err().message;
        assert!(why(json!({"Name": "n", "Driver": "overlay"})).contains("driver \"overlay\""));
        assert!(why(json!({"Name": "n", "Internal": true})).contains("internal"));
        assert!(why(json!({"Name": "n", "EnableIPv6": true})).contains("IPv6"));
        assert!(why(json!({"Name": "n", "Options": {"com.docker.network.bridge.name": "x"}})).contains("com.docker.network.bridge.name=x"));
        assert!(why(json!({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.1.0.0/16", "IPRange": "10.1.5.0/24"}]}})).contains("IP range 10.1.5.0/24"));
        assert!(why(json!({"Name": ""})).contains("Name is required"));
    }

    #[test]
    fn labels_and_dangling_filters() {
        let l: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
        assert!(label_matches(&l, "a") && label_matches(&l, "a=1") && !label_matches(&l, "a=2") && !label_matches(&l, "b"));
        assert!(dangling_value(&["true".into()]).unwrap() && !dangling_value(&["0".into()]).unwrap());
        assert!(dangling_value(&["maybe".into()]).is_err());
        assert_eq!(mac("10.1.2.3".parse().unwrap()), "02:42:0a:01:02:03");
    }
}
