//! `GET /containers/json`: docker's list, with its filters (compose finds
//! its containers by label).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::container::Container;

use super::super::{ApiError, Ctx, Reply, Req, Result, label_matches};
use super::shape::{self, Facts};

const KNOWN: [&str; 15] = ["ancestor", "before", "expose", "exited", "health", "id", "isolation", "is-task", "label", "name", "network", "publish", "since", "status", "volume"];
const STATES: [&str; 7] = ["created", "restarting", "running", "removing", "paused", "exited", "dead"];
const HEALTH: [&str; 4] = ["starting", "healthy", "unhealthy", "none"];

pub(super) fn list(ctx: &Ctx, req: &Req) -> Result<Reply> {
    let f = req.filters()?;
    check(&f)?;
    let limit: Option<usize> = req.num::<i64>("limit")?.and_then(|n| usize::try_from(n).ok()).filter(|n| *n > 0);
    // As docker: a status filter or a limit looks at stopped containers too.
    let all = req.flag("all") || f.contains_key("status") || limit.is_some();
    let e = &ctx.engine;
    let created = |key: &str| -> Result<f64> { Ok(crate::store::parse_rfc3339(&e.container(key)?.created).unwrap_or(0.0)) };
    let ctx_f = Ctx2 {
        ancestors: f.get("ancestor").map(|a| a.iter().filter_map(|n| e.image(n).ok().map(|i| i.id)).collect()),
        before: f.get("before").and_then(|v| v.first()).map(|k| created(k)).transpose()?,
        since: f.get("since").and_then(|v| v.first()).map(|k| created(k)).transpose()?,
        f,
    };
    let mut out = Vec::new();
    let mut images = Default::default();
    for c in e.containers(all)? {
        let facts = Facts::of_cached(e, &c, &mut images);
        if !ctx_f.matches(&c, &facts) {
            continue;
        }
        out.push(entry(&c, &facts));
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    Ok(Reply::ok(Value::Array(out)))
}

/// Refuses what docker refuses: unknown filters and states.
fn check(f: &BTreeMap<String, Vec<String>>) -> Result<()> {
    for (k, vals) in f {
        if !KNOWN.contains(&k.as_str()) {
            return Err(ApiError::bad(format!("invalid filter '{k}'")));
        }
        for v in vals {
            let bad = match k.as_str() {
                "status" => !STATES.contains(&v.as_str()),
                "health" => !HEALTH.contains(&v.as_str()),
                "exited" => v.parse::<i32>().is_err(),
                _ => false,
            };
            if bad {
                return Err(ApiError::bad(format!("invalid filter '{k}={v}'")));
            }
        }
    }
    Ok(())
}

struct Ctx2 {
    f: BTreeMap<String, Vec<String>>,
    ancestors: Option<Vec<String>>,
    before: Option<f64>,
    since: Option<f64>,
}

impl Ctx2 {
    /// Every filter key must match; within a key any value does (labels:
    /// every one).
    fn matches(&self, c: &Container, facts: &Facts) -> bool {
        let any = |k: &str, ok: &dyn Fn(&str) -> bool| self.f.get(k).is_none_or(|vals| vals.iter().any(|v| ok(v)));
        let labels = shape::labels(c, facts);
        let created = crate::store::parse_rfc3339(&c.created).unwrap_or(0.0);
        let health = if c.health.status.is_empty() { "none" } else { c.health.status.as_str() };
        let port_in = |v: &str, ports: &[String]| {
            let want = if v.contains('/') { v.to_string() } else { format!("{v}/tcp") };
            ports.contains(&want)
        };
        let published: Vec<String> = facts.ports.iter().map(|p| format!("{}/{}", p.container_port, p.proto)).collect();
        let exposed: Vec<String> = facts.image.iter().flat_map(|i| i.exposed_ports.keys().cloned()).chain(published.iter().cloned()).collect();
        any("id", &|v| c.id.starts_with(v) || like(v, &c.id))
            && any("name", &|v| like(v, &format!("/{}", c.name)) || like(v, &c.name))
            && self.f.get("label").is_none_or(|vals| vals.iter().all(|v| label_matches(&labels, v)))
            && any("status", &|v| v == c.state)
            && any("health", &|v| v == health)
            && any("exited", &|v| c.state == "exited" && !c.started_at.is_empty() && v.parse() == Ok(c.exit_code))
            && any("network", &|v| facts.endpoints.iter().any(|e| e.network.name == v || e.network.id.starts_with(v)))
            && any("volume", &|v| c.mounts.iter().any(|m| m.name == v || m.destination == v || m.source.to_str() == Some(v)))
            && any("publish", &|v| port_in(v, &published))
            && any("expose", &|v| port_in(v, &exposed))
            && any("is-task", &|v| v == "false")
            && any("isolation", &|v| v == "default" || v.is_empty())
            && self.ancestors.as_ref().is_none_or(|ids| ids.contains(&c.image_id) || self.f["ancestor"].contains(&c.image_ref))
            && self.before.is_none_or(|t| created < t)
            && self.since.is_none_or(|t| created > t)
    }
}

/// docker matches names and ids as regular expressions; the forms people
/// write (plain text, `^name`, `name$`, `^name$`) are matched as such.
fn like(pattern: &str, s: &str) -> bool {
    let (start, p) = pattern.strip_prefix('^').map_or((false, pattern), |p| (true, p));
    let (end, p) = p.strip_suffix('$').map_or((false, p), |p| (true, p));
    match (start, end) {
        (true, true) => s == p,
        (true, false) => s.starts_with(p),
        (false, true) => s.ends_with(p),
        (false, false) => s.contains(p),
    }
}

fn entry(c: &Container, facts: &Facts) -> Value {
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image_ref,
        "ImageID": c.image_id,
        "Command": c.command.join(" "),
        "Created": crate::store::parse_rfc3339(&c.created).unwrap_or(0.0) as i64,
        "Ports": shape::port_list(facts),
        "Labels": shape::labels(c, facts),
        "State": c.state,
        "Status": crate::render::status(c),
        "HostConfig": {"NetworkMode": shape::network_mode(c)},
        "NetworkSettings": {"Networks": shape::networks(c, facts)},
        "Mounts": shape::mounts(c),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_as_docker_users_write_them() {
        assert!(like("web", "/proj_web_1"));
        assert!(like("^/proj", "/proj_web_1"));
        assert!(like("^proj_web_1$", "proj_web_1"));
        assert!(!like("^web", "/proj_web_1"));
        assert!(like("_1$", "/proj_web_1"));
    }

    #[test]
    fn labels_and_unknown_filters() {
        let l: BTreeMap<String, String> = [("com.docker.compose.project".to_string(), "shop".to_string())].into();
        assert!(label_matches(&l, "com.docker.compose.project"));
        assert!(label_matches(&l, "com.docker.compose.project=shop"));
        assert!(!label_matches(&l, "com.docker.compose.project=other"));
        let f: BTreeMap<String, Vec<String>> = [("colour".to_string(), vec!["red".to_string()])].into();
        assert_eq!(check(&f).unwrap_err().message, "invalid filter 'colour'");
        let f: BTreeMap<String, Vec<String>> = [("status".to_string(), vec!["sleeping".to_string()])].into();
        assert!(check(&f).is_err());
    }
}
