//! Output shapes shared by the handlers: docker's `--format` templates,
//! the JSON docker prints for each kind of object, and the stats table.

use super::table;
use crate::engine::Engine;

/// The common docker templates: `{{.State.Status}}` dotted paths, `json`,
/// `index X "key"` and `(index X "key").Field`. Anything else is an error,
/// not a silent "null".
pub fn template(f: &str, v: &serde_json::Value) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = f;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let j = rest[i..].find("}}").ok_or_else(|| anyhow::anyhow!("template {f:?}: unclosed {{{{"))?;
        let expr = rest[i + 2..i + j].trim();
        let (json, expr) = match expr.strip_prefix("json ") {
            Some(e) => (true, e.trim()),
            None => (false, expr),
        };
        let val = template_eval(expr, v).map_err(|why| anyhow::anyhow!("template {{{{{expr}}}}}: {why}; berth understands .Path.To.Field, json, index X \"key\" and (index X \"key\").Field"))?;
        match val {
            serde_json::Value::String(s) if !json => out.push_str(&s),
            serde_json::Value::Null if !json => out.push_str("<no value>"),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn template_path(mut cur: serde_json::Value, path: &str) -> Result<serde_json::Value, String> {
    for part in path.split('.').filter(|p| !p.is_empty()) {
        if !part.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
            return Err(format!("{part:?} is not a field name"));
        }
        cur = cur.get(part).cloned().unwrap_or(serde_json::Value::Null);
    }
    Ok(cur)
}

fn template_eval(expr: &str, v: &serde_json::Value) -> Result<serde_json::Value, String> {
    let expr = expr.trim();
    if let Some(inner) = expr.strip_prefix('(') {
        let mut depth = 1;
        let close = inner.char_indices().find_map(|(k, c)| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(k)
        });
        let k = close.ok_or("unbalanced parentheses")?;
        let head = template_eval(&inner[..k], v)?;
        let tail = inner[k + 1..].trim();
        return if tail.is_empty() { Ok(head) } else if let Some(p) = tail.strip_prefix('.') { template_path(head, p) } else { Err(format!("unexpected {tail:?}")) };
    }
    if let Some(args) = expr.strip_prefix("index ") {
        let args = args.trim();
        let (target, keys) = match args.find(char::is_whitespace) {
            Some(k) => (&args[..k], args[k..].trim()),
            None => return Err("index needs a value and a key".into()),
        };
        let mut cur = template_eval(target, v)?;
        for key in keys.split_whitespace() {
            cur = if let Some(k) = key.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
                cur.get(k).cloned().unwrap_or(serde_json::Value::Null)
            } else if let Ok(n) = key.parse::<usize>() {
                cur.get(n).cloned().unwrap_or(serde_json::Value::Null)
            } else {
                return Err(format!("index key {key:?} must be a \"string\" or a number"));
            };
        }
        return Ok(cur);
    }
    match expr.strip_prefix('.') {
        Some(p) => template_path(v.clone(), p),
        None => Err(format!("{expr:?} is not understood")),
    }
}

/// One line of `ps --format json`; `ports` as the table shows them.
pub(super) fn ps_json(c: &crate::container::Container, ports: String) -> serde_json::Value {
    serde_json::json!({"ID": c.short_id(), "Image": c.image_ref, "Command": c.command.join(" "), "CreatedAt": c.created, "State": c.state, "Status": table::status(c), "Ports": ports, "Names": c.name, "Labels": c.spec.labels})
}

/// One line of `images --format json`: the first tag split into repository
/// and tag, as docker's table shows them.
pub(super) fn images_json(i: &crate::image::Image) -> serde_json::Value {
    serde_json::json!({"ID": i.short_id(), "Repository": i.tags.first().map(|t| t.rsplit_once(':').map(|x| x.0).unwrap_or(t)).unwrap_or("<none>"), "Tag": i.tags.first().and_then(|t| t.rsplit_once(':').map(|x| x.1)).unwrap_or("<none>"), "CreatedAt": i.created, "Size": table::human_size(i.size)})
}

pub(super) fn network_json(e: &Engine, n: &crate::network::Network) -> serde_json::Value {
    let members = e.network_members(&n.id).unwrap_or_default();
    let containers: serde_json::Map<String, serde_json::Value> = members
        .into_iter()
        .map(|(id, name, ip)| {
            let mut v = serde_json::json!({ "Name": name, "IPv4Address": format!("{ip}/{}", n.subnet.split('/').nth(1).unwrap_or("24")) });
            if let Some((_, imp)) = e.impairments(&id).unwrap_or_default().into_iter().find(|(net, i)| *net == n.name && !i.is_none()) {
                v["Impairment"] = serde_json::json!(imp.to_string());
            }
            (id, v)
        })
        .collect();
    if n.is_overlay() {
        // The gateway is this node's own address on the overlay.
        return serde_json::json!({
            "Name": n.name, "Id": n.id, "Created": n.created, "Driver": "overlay", "Scope": "swarm",
            "IPAM": { "Driver": "default", "Config": [{ "Subnet": n.subnet, "Gateway": n.gateway }] },
            "Options": { "com.docker.network.driver.overlay.vxlanid_list": n.vni.to_string(), "com.docker.network.driver.mtu": n.mtu.to_string(), "com.docker.network.bridge.name": n.bridge },
            "Containers": containers, "Labels": n.labels,
        });
    }
    serde_json::json!({
        "Name": n.name, "Id": n.id, "Created": n.created, "Driver": "bridge", "Scope": "local",
        "IPAM": { "Driver": "default", "Config": [{ "Subnet": n.subnet, "Gateway": n.gateway }] },
        "Options": { "com.docker.network.bridge.name": n.bridge },
        "Containers": containers, "Labels": n.labels,
    })
}

pub(super) fn volume_json(e: &Engine, v: &crate::volume::Volume) -> serde_json::Value {
    serde_json::json!({
        "Name": v.name, "Driver": "local", "Mountpoint": v.mountpoint, "CreatedAt": v.created,
        "Labels": v.labels, "Scope": "local", "Anonymous": v.anonymous, "UsedBy": e.volume_users(&v.name),
    })
}

pub(super) fn stats_table(rows: &[crate::system::Stats]) -> String {
    use crate::sys::stats::{human_bytes, human_si};
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s.id[..12].to_string(),
                s.name.clone(),
                format!("{:.2}%", s.cpu_percent),
                format!("{} / {}", human_bytes(s.memory_bytes), human_bytes(s.memory_limit)),
                format!("{:.2}%", s.memory_percent),
                format!("{} / {}", human_si(s.net_rx), human_si(s.net_tx)),
                format!("{} / {}", human_si(s.block_read), human_si(s.block_write)),
                s.pids.to_string(),
            ]
        })
        .collect();
    table::render(&["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"], &rows)
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn templates_read_paths_index_and_json() {
        let v = serde_json::json!({"State": {"Status": "running", "Pid": 7}, "Config": {"Labels": {"a.b": "x"}}, "Mounts": [{"Destination": "/data"}]});
        assert_eq!(template("{{.State.Status}} {{ .State.Pid }}", &v).unwrap(), "running 7");
        assert_eq!(template(r#"{{index .Config.Labels "a.b"}}"#, &v).unwrap(), "x");
        assert_eq!(template("{{(index .Mounts 0).Destination}}", &v).unwrap(), "/data");
        assert_eq!(template("{{json .State}}", &v).unwrap(), r#"{"Pid":7,"Status":"running"}"#);
        assert_eq!(template("{{.Nothing}}", &v).unwrap(), "<no value>");
    }

    #[test]
    fn what_templates_do_not_understand_is_an_error() {
        let v = serde_json::json!({});
        assert!(template("{{.State", &v).unwrap_err().to_string().contains("unclosed"));
        assert!(template("{{upper .Name}}", &v).unwrap_err().to_string().contains("not understood"));
        assert!(template("{{(index .A \"k\"}}", &v).unwrap_err().to_string().contains("unbalanced"));
    }
}
