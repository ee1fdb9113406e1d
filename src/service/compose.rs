//! Compose files: the subset people use daily, read into a plan of
//! networks, volumes and services. A YAML file and a script's map go
//! through the same walk over a JSON value, which names each wrong value by
//! its path (`services.web.ports[1]`) and warns about keys it does not know.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::container::health::HealthSpec;
use crate::container::{RestartPolicy, RunSpec};

#[derive(Debug, thiserror::Error)]
#[error("{origin}: {path}: {msg}")]
pub struct ComposeError {
    pub origin: String,
    pub path: String,
    pub msg: String,
}

/// When a dependency counts as ready.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

#[derive(Debug, Clone)]
pub enum Build {
    None,
    /// (context directory, Dockerfile path relative to it, build args)
    Dir(PathBuf, Option<String>, BTreeMap<String, String>),
}

#[derive(Debug, Clone)]
pub struct ServicePlan {
    /// The name in the file (`web`); the service is `<stack>_<name>`.
    pub name: String,
    pub image: Option<String>,
    pub build: Build,
    pub template: RunSpec,
    pub replicas: u32,
    pub ports: Vec<String>,
    /// (network name in the file, static address, aliases), first one first.
    pub networks: Vec<(String, Option<String>, Vec<String>)>,
    /// Named volumes (name in the file) and binds, as `-v` specs whose
    /// source is still the file's name; resolved at deploy.
    pub volumes: Vec<String>,
    pub depends_on: Vec<(String, Condition)>,
    pub restart_given: bool,
    /// deploy.update_config, when given.
    pub update: Option<super::UpdateConfig>,
    /// deploy.mode: global (one task per node), on a swarm.
    pub global: bool,
    /// deploy.placement.constraints, on a swarm.
    pub constraints: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NetworkPlan {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub services: Vec<ServicePlan>,
    pub networks: Vec<NetworkPlan>,
    pub volumes: Vec<String>,
    pub warnings: Vec<String>,
}

struct Walk<'a> {
    origin: &'a str,
    base: &'a Path,
    warnings: Vec<String>,
}

type R<T> = Result<T, ComposeError>;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

impl Walk<'_> {
    fn err<T>(&self, path: &str, msg: impl Into<String>) -> R<T> {
        Err(ComposeError { origin: self.origin.to_string(), path: path.to_string(), msg: msg.into() })
    }

    fn want<T>(&self, path: &str, what: &str, v: &Value) -> R<T> {
        self.err(path, format!("must be {what}, not {} ({})", kind(v), v))
    }

    fn map<'v>(&self, path: &str, v: &'v Value) -> R<&'v serde_json::Map<String, Value>> {
        match v {
            Value::Object(m) => Ok(m),
            other => self.want(path, "a map", other),
        }
    }

    fn string(&self, path: &str, v: &Value) -> R<String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => self.want(path, "a string", other),
        }
    }

    fn unknown(&mut self, path: &str, m: &serde_json::Map<String, Value>, known: &[&str]) {
        for k in m.keys() {
            if !known.contains(&k.as_str()) && !k.starts_with("x-") {
                self.warnings.push(format!("{}: {path}.{k}: unknown key, ignored (known: {})", self.origin, known.join(", ")));
            }
        }
    }

    /// `m[key]` as a string, if there, named `path.key` in errors.
    fn opt_string(&self, m: &serde_json::Map<String, Value>, path: &str, key: &str) -> R<Option<String>> {
        m.get(key).map(|v| self.string(&format!("{path}.{key}"), v)).transpose()
    }

    /// A string is split like a shell would (quotes kept together); a list
    /// is taken as it is.
    fn command(&self, path: &str, v: &Value) -> R<Vec<String>> {
        match v {
            Value::String(s) => shell_words(s).ok_or_else(|| ComposeError { origin: self.origin.into(), path: path.into(), msg: format!("unbalanced quotes in {s:?}") }),
            Value::Array(a) => a.iter().enumerate().map(|(i, x)| self.string(&format!("{path}[{i}]"), x)).collect(),
            other => self.want(path, "a string or a list of strings", other),
        }
    }

    fn strings(&self, path: &str, v: &Value) -> R<Vec<String>> {
        match v {
            Value::Array(a) => a.iter().enumerate().map(|(i, x)| self.string(&format!("{path}[{i}]"), x)).collect(),
            Value::String(s) => Ok(vec![s.clone()]),
            other => self.want(path, "a list of strings", other),
        }
    }

    /// `environment:` as a map or a `KEY=VALUE` list.
    fn env(&self, path: &str, v: &Value) -> R<Vec<String>> {
        match v {
            Value::Object(m) => m
                .iter()
                .map(|(k, x)| match x {
                    Value::Null => Ok(format!("{k}={}", std::env::var(k).unwrap_or_default())),
                    Value::Bool(b) => Ok(format!("{k}={b}")),
                    other => Ok(format!("{k}={}", self.string(&format!("{path}.{k}"), other)?)),
                })
                .collect(),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    let s = self.string(&format!("{path}[{i}]"), x)?;
                    Ok(if s.contains('=') { s } else { format!("{s}={}", std::env::var(&s).unwrap_or_default()) })
                })
                .collect(),
            other => self.want(path, "a map or a list of KEY=VALUE", other),
        }
    }

    /// A count; a string of digits counts too (what `${N}` becomes).
    fn count(&self, path: &str, v: &Value) -> R<u32> {
        match v {
            Value::Number(n) if n.as_u64().is_some_and(|x| x <= u32::MAX as u64) => Ok(n.as_u64().unwrap() as u32),
            Value::String(s) if s.parse::<u32>().is_ok() => Ok(s.parse().unwrap()),
            other => self.want(path, "a number", other),
        }
    }

    fn duration_ms(&self, path: &str, v: &Value) -> R<u64> {
        let s = self.string(path, v)?;
        crate::parse::duration_ms(&s).or_else(|e| self.err(path, e))
    }

    /// A map or `KEY=VALUE` list (labels, sysctls, build args) as pairs.
    fn pairs<C: FromIterator<(String, String)>>(&self, path: &str, v: &Value) -> R<C> {
        Ok(self.env(path, v)?.into_iter().filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect())
    }

    /// A byte size such as `512m`.
    fn memory(&self, path: &str, v: &Value) -> R<i64> {
        crate::parse::memory(&self.string(path, v)?).or_else(|e| self.err(path, e))
    }

    /// A number of CPUs such as `1.5`.
    fn cpus(&self, path: &str, v: &Value) -> R<f64> {
        let c = self.string(path, v)?;
        c.parse().or_else(|_| self.err(path, format!("{c:?} is not a number of CPUs")))
    }

    fn relative(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() { path.to_path_buf() } else { self.base.join(path) }
    }
}

/// Splits a command string into words: whitespace separates, single and
/// double quotes group, a backslash escapes the next character.
pub fn shell_words(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => cur.push(chars.next()?),
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                cur.push(chars.next()?);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        out.push(cur);
    }
    Some(out)
}

/// Compose's variables: `${VAR}`, `${VAR:-default}` (also when empty),
/// `${VAR-default}` (only when unset), `${VAR:?message}`, `$VAR`, and `$$`
/// for a literal dollar.
pub fn interpolate(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            // The closing brace of this ${...}: a default may hold ${...} too.
            let end = {
                let (b, mut depth, mut k) = (r.as_bytes(), 1, 0);
                loop {
                    match b.get(k) {
                        None => return Err(format!("unclosed ${{ in {:?}", &rest[i..rest.len().min(i + 40)])),
                        Some(b'$') if b.get(k + 1) == Some(&b'{') => {
                            depth += 1;
                            k += 1;
                        }
                        Some(b'}') => {
                            depth -= 1;
                            if depth == 0 {
                                break k;
                            }
                        }
                        _ => {}
                    }
                    k += 1;
                }
            };
            let expr = &r[..end];
            let (name, op, arg) = match expr.find([':', '-', '?']) {
                Some(k) if expr[k..].starts_with(":-") => (&expr[..k], ":-", &expr[k + 2..]),
                Some(k) if expr[k..].starts_with(":?") => (&expr[..k], ":?", &expr[k + 2..]),
                Some(k) if expr[k..].starts_with('-') => (&expr[..k], "-", &expr[k + 1..]),
                Some(k) if expr[k..].starts_with('?') => (&expr[..k], "?", &expr[k + 1..]),
                _ => (expr, "", ""),
            };
            let val = std::env::var(name).ok();
            // The default and the message are expanded too, when used.
            let v = match (op, &val) {
                (":-", v) if v.as_deref().is_none_or(str::is_empty) => interpolate(arg)?,
                ("-", None) => interpolate(arg)?,
                (":?", v) if v.as_deref().is_none_or(str::is_empty) => return Err(format!("{name}: {}", if arg.is_empty() { "is not set".into() } else { interpolate(arg)? })),
                ("?", None) => return Err(format!("{name}: {}", if arg.is_empty() { "is not set".into() } else { interpolate(arg)? })),
                (_, v) => v.clone().unwrap_or_default(),
            };
            out.push_str(&v);
            rest = &r[end + 1..];
        } else {
            let n = after.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
            if n == 0 {
                out.push('$');
            } else {
                out.push_str(&std::env::var(&after[..n]).unwrap_or_default());
            }
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn interpolate_values(v: &mut Value, path: &str) -> Result<(), (String, String)> {
    match v {
        Value::String(s) => *s = interpolate(s).map_err(|m| (path.trim_start_matches('.').to_string(), m))?,
        Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                interpolate_values(x, &format!("{path}[{i}]"))?;
            }
        }
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                interpolate_values(x, &format!("{path}.{k}"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Reads a compose file (YAML).
pub fn parse_file(path: &Path) -> R<Plan> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ComposeError { origin: origin.clone(), path: "(file)".into(), msg: e.to_string() })?;
    let mut v: Value = serde_norway::from_str(&text).map_err(|e| ComposeError { origin: origin.clone(), path: "(yaml)".into(), msg: e.to_string() })?;
    // In the values, after parsing: a variable holding '#' or ': ' stays
    // one value, and comments are not touched.
    interpolate_values(&mut v, "").map_err(|(path, msg)| ComposeError { origin: origin.clone(), path, msg })?;
    // Binds and build contexts are relative to the file, wherever berth runs.
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = std::path::absolute(dir).map_err(|e| ComposeError { origin: origin.clone(), path: "(file)".into(), msg: e.to_string() })?;
    parse(&v, &origin, &base)
}

/// Reads a compose document already in JSON form (a script's map).
pub fn parse(v: &Value, origin: &str, base: &Path) -> R<Plan> {
    let mut w = Walk { origin, base, warnings: Vec::new() };
    let top = w.map("(top)", v)?;
    w.unknown("(top)", top, &["version", "name", "services", "networks", "volumes"]);
    let mut plan = Plan::default();
    // Networks and volumes first: services may only use the declared ones.
    if let Some(nets) = top.get("networks").filter(|v| !v.is_null()) {
        plan.networks = w.networks(nets)?;
    }
    if let Some(vols) = top.get("volumes").filter(|v| !v.is_null()) {
        plan.volumes = w.volumes(vols)?;
    }
    let Some(svcs) = top.get("services") else { return w.err("services", "a compose file needs services") };
    let svcs = w.map("services", svcs)?;
    for (name, s) in svcs {
        let service = w.service(name, s, svcs, &plan)?;
        plan.services.push(service);
    }
    // Dependency cycles cannot start.
    order(&plan).map_err(|cycle| ComposeError { origin: origin.into(), path: "services".into(), msg: format!("depends_on forms a cycle: {}", cycle.join(" -> ")) })?;
    plan.warnings = w.warnings;
    Ok(plan)
}

/// A service on a network: (network name in the file, static address, aliases).
type Attachment = (String, Option<String>, Vec<String>);

/// What `deploy:` decides beside the container template.
struct Deploy {
    replicas: u32,
    /// `restart_policy` was given (it overrides the service's `restart`).
    restart_policy: bool,
    update: Option<super::UpdateConfig>,
    global: bool,
    constraints: Vec<String>,
}

/// The sections of a compose file, one walker each, in the order `parse`
/// visits them: the first wrong value found is the one reported.
impl Walk<'_> {
    /// Top-level `networks:`: the stack's own bridges.
    fn networks(&mut self, v: &Value) -> R<Vec<NetworkPlan>> {
        let mut out = Vec::new();
        for (name, n) in self.map("networks", v)? {
            out.push(self.network(name, n)?);
        }
        Ok(out)
    }

    fn network(&mut self, name: &str, n: &Value) -> R<NetworkPlan> {
        let path = format!("networks.{name}");
        let mut p = NetworkPlan { name: name.to_string(), ..Default::default() };
        if n.is_null() {
            return Ok(p);
        }
        let m = self.map(&path, n)?;
        if m.get("external").is_some_and(|x| x.as_bool() == Some(true)) || m.contains_key("name") {
            return self.err(&path, "external and renamed networks are not supported: a stack makes its own networks, named STACK_NETWORK");
        }
        self.unknown(&path, m, &["driver", "ipam", "labels", "external", "name"]);
        if let Some(d) = m.get("driver") {
            let d = self.string(&format!("{path}.driver"), d)?;
            if d != "bridge" && d != "overlay" {
                return self.err(&format!("{path}.driver"), format!("driver {d:?} is not supported: berth networks are bridges"));
            }
        }
        if let Some(ipam) = m.get("ipam") {
            (p.subnet, p.gateway) = self.ipam(&format!("{path}.ipam"), ipam)?;
        }
        Ok(p)
    }

    /// A network's `ipam:`, as (subnet, gateway) of its first `config` entry.
    fn ipam(&mut self, ip: &str, v: &Value) -> R<(Option<String>, Option<String>)> {
        let im = self.map(ip, v)?;
        self.unknown(ip, im, &["driver", "config"]);
        let Some(cfg) = im.get("config") else { return Ok((None, None)) };
        let Value::Array(list) = cfg else { return self.want(&format!("{ip}.config"), "a list", cfg) };
        let Some(first) = list.first() else { return Ok((None, None)) };
        let cp = format!("{ip}.config[0]");
        let c = self.map(&cp, first)?;
        self.unknown(&cp, c, &["subnet", "gateway", "ip_range"]);
        let subnet = self.opt_string(c, &cp, "subnet")?;
        let gateway = self.opt_string(c, &cp, "gateway")?;
        Ok((subnet, gateway))
    }

    /// Top-level `volumes:`: the names the stack makes volumes for.
    fn volumes(&mut self, v: &Value) -> R<Vec<String>> {
        let mut out = Vec::new();
        for (name, v) in self.map("volumes", v)? {
            if !v.is_null() {
                let path = format!("volumes.{name}");
                let m = self.map(&path, v)?;
                self.unknown(&path, m, &["driver", "labels", "external", "name"]);
                // Making a fresh, empty STACK_NAME volume instead would look like lost data.
                if m.get("external").is_some_and(|x| x.as_bool() == Some(true)) || m.contains_key("name") {
                    return self.err(&path, "external and renamed volumes are not supported: a stack makes its own volumes, named STACK_VOLUME; mount an existing one as a bind of its path");
                }
            }
            out.push(name.clone());
        }
        Ok(out)
    }

    /// One entry of `services:`; `services` is the whole section (for
    /// `depends_on`), `plan` holds the declared networks and volumes.
    fn service(&mut self, name: &str, s: &Value, services: &serde_json::Map<String, Value>, plan: &Plan) -> R<ServicePlan> {
        let path = format!("services.{name}");
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return self.err(&path, "a service name is letters, digits, - and _");
        }
        let m = self.map(&path, s)?;
        self.unknown(
            &path,
            m,
            &[
                "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "volumes", "networks", "depends_on", "healthcheck", "restart", "deploy", "hostname",
                "working_dir", "user", "labels", "cap_add", "cap_drop", "sysctls", "privileged", "mem_limit", "cpus", "stop_signal", "stop_grace_period", "expose", "container_name",
                "tty", "stdin_open", "init", "read_only", "tmpfs", "shm_size", "extra_hosts", "dns", "dns_search", "dns_opt", "ulimits",
            ],
        );
        let mut t = RunSpec::default();
        let image = self.opt_string(m, &path, "image")?;
        let build = match m.get("build") {
            None => Build::None,
            Some(b) => self.build(&format!("{path}.build"), b)?,
        };
        if image.is_none() && matches!(build, Build::None) {
            return self.err(&path, "needs an image or a build");
        }
        if let Some(c) = m.get("command") {
            t.cmd = Some(self.command(&format!("{path}.command"), c)?);
        }
        if let Some(c) = m.get("entrypoint") {
            t.entrypoint = Some(self.command(&format!("{path}.entrypoint"), c)?);
        }
        if let Some(f) = m.get("env_file") {
            t.env.extend(self.env_files(&format!("{path}.env_file"), f)?);
        }
        if let Some(e) = m.get("environment") {
            t.env.extend(self.env(&format!("{path}.environment"), e)?);
        }
        let ports = m.get("ports").map(|p| self.ports(&format!("{path}.ports"), p)).transpose()?.unwrap_or_default();
        let volumes = m.get("volumes").map(|v| self.service_volumes(&format!("{path}.volumes"), v, &plan.volumes)).transpose()?.unwrap_or_default();
        let networks = self.service_networks(&format!("{path}.networks"), m.get("networks"), &plan.networks)?;
        let depends_on = self.depends_on(&format!("{path}.depends_on"), m.get("depends_on"), services)?;
        if let Some(h) = m.get("healthcheck") {
            t.health = Some(self.healthcheck(&format!("{path}.healthcheck"), h)?);
        }
        let mut restart_given = m.contains_key("restart");
        if let Some(r) = m.get("restart") {
            let r = self.string(&format!("{path}.restart"), r)?;
            t.restart = RestartPolicy::parse(&r).or_else(|e| self.err(&format!("{path}.restart"), e.to_string()))?;
        }
        let (mut replicas, mut update, mut global, mut constraints) = (1, None, false, Vec::new());
        if let Some(d) = m.get("deploy") {
            let deploy = self.deploy(&format!("{path}.deploy"), d, &mut t)?;
            replicas = deploy.replicas;
            restart_given |= deploy.restart_policy;
            update = deploy.update;
            global = deploy.global;
            constraints = deploy.constraints;
        }
        self.container_settings(&path, m, &mut t)?;
        Ok(ServicePlan { name: name.to_string(), image, build, template: t, replicas, ports, networks, volumes, depends_on, restart_given, update, global, constraints })
    }

    /// `build:` as a directory, or a map with context, dockerfile and args.
    fn build(&mut self, bp: &str, b: &Value) -> R<Build> {
        match b {
            Value::String(dir) => Ok(Build::Dir(self.relative(dir), None, BTreeMap::new())),
            Value::Object(bm) => {
                self.unknown(bp, bm, &["context", "dockerfile", "args", "target"]);
                let ctx = self.opt_string(bm, bp, "context")?.unwrap_or_else(|| ".".into());
                let file = self.opt_string(bm, bp, "dockerfile")?;
                let args = match bm.get("args") {
                    None => BTreeMap::new(),
                    Some(a) => self.pairs(&format!("{bp}.args"), a)?,
                };
                Ok(Build::Dir(self.relative(&ctx), file, args))
            }
            other => self.want(bp, "a directory or a map with context", other),
        }
    }

    /// `env_file:`, one file or a list, read now; blank and `#` lines skipped.
    fn env_files(&self, fp: &str, f: &Value) -> R<Vec<String>> {
        let mut env = Vec::new();
        for (i, file) in self.strings(fp, f)?.iter().enumerate() {
            let p = self.relative(file);
            let text = std::fs::read_to_string(&p).or_else(|e| self.err(&format!("{fp}[{i}]"), format!("{}: {e}", p.display())))?;
            for l in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                env.push(l.strip_prefix("export ").unwrap_or(l).to_string());
            }
        }
        Ok(env)
    }

    /// `ports:`, each a `-p` spec or a long-syntax map, checked like `-p`.
    fn ports(&self, pp: &str, p: &Value) -> R<Vec<String>> {
        let Value::Array(list) = p else { return self.want(pp, "a list", p) };
        let mut ports = Vec::new();
        for (i, x) in list.iter().enumerate() {
            let xp = format!("{pp}[{i}]");
            let spec = match x {
                Value::Object(pm) => self.long_port(&xp, pm)?,
                other => self.string(&xp, other)?,
            };
            if let Err(e) = crate::network::ports::parse(&spec) {
                return self.err(&xp, e.to_string());
            }
            ports.push(spec);
        }
        Ok(ports)
    }

    /// `{target, published, protocol, host_ip}` as `[ip:][published:]target/proto`.
    fn long_port(&self, pp: &str, pm: &serde_json::Map<String, Value>) -> R<String> {
        let Some(target) = pm.get("target") else { return self.err(pp, "needs a target port") };
        let target = self.string(&format!("{pp}.target"), target)?;
        let published = self.opt_string(pm, pp, "published")?;
        let proto = self.opt_string(pm, pp, "protocol")?.unwrap_or_else(|| "tcp".into());
        let ip = self.opt_string(pm, pp, "host_ip")?;
        let mut s = String::new();
        if let Some(ip) = ip {
            s.push_str(&format!("{ip}:"));
        }
        if let Some(p) = published {
            s.push_str(&format!("{p}:"));
        }
        Ok(format!("{s}{target}/{proto}"))
    }

    /// A service's `volumes:`, as `-v` specs; named volumes must be among
    /// `declared`, binds are made absolute.
    fn service_volumes(&self, vp: &str, v: &Value, declared: &[String]) -> R<Vec<String>> {
        let Value::Array(list) = v else { return self.want(vp, "a list", v) };
        let mut volumes = Vec::new();
        for (i, x) in list.iter().enumerate() {
            volumes.push(self.service_volume(&format!("{vp}[{i}]"), x, declared)?);
        }
        Ok(volumes)
    }

    fn service_volume(&self, vp: &str, x: &Value, declared: &[String]) -> R<String> {
        let spec = match x {
            Value::Object(vm) => {
                let src = self.opt_string(vm, vp, "source")?;
                let Some(dst) = vm.get("target") else { return self.err(vp, "needs a target") };
                let dst = self.string(&format!("{vp}.target"), dst)?;
                let ro = vm.get("read_only").and_then(Value::as_bool).unwrap_or(false);
                match src {
                    Some(s) => format!("{s}:{dst}{}", if ro { ":ro" } else { "" }),
                    None => dst,
                }
            }
            other => self.string(vp, other)?,
        };
        // Named volumes must be declared, as compose requires.
        let src = spec.split(':').next().unwrap_or("");
        if spec.contains(':') && !src.starts_with('/') && !src.starts_with('.') && !src.starts_with('~') && !declared.iter().any(|n| n == src) {
            return self.err(vp, format!("volume {src:?} is not declared under the top-level volumes"));
        }
        // Binds are relative to the file's directory.
        Ok(match spec.split_once(':') {
            Some((src, rest)) if src.starts_with('.') => format!("{}:{rest}", self.relative(src).display()),
            Some((src, rest)) if src == "~" || src.starts_with("~/") => {
                let Ok(home) = std::env::var("HOME") else { return self.err(vp, "~ needs HOME to be set") };
                format!("{home}{}:{rest}", &src[1..])
            }
            _ => spec,
        })
    }

    /// A service's `networks:`, a list of names or a map with address and
    /// aliases; each must be `default` or among `declared`.
    fn service_networks(&mut self, np: &str, v: Option<&Value>, declared: &[NetworkPlan]) -> R<Vec<Attachment>> {
        let mut networks = Vec::new();
        match v {
            None => {}
            Some(Value::Array(list)) => {
                for (i, x) in list.iter().enumerate() {
                    networks.push((self.string(&format!("{np}[{i}]"), x)?, None, vec![]));
                }
            }
            Some(Value::Object(nm)) => {
                for (n, cfg) in nm {
                    let (ip, aliases) = self.network_attachment(&format!("{np}.{n}"), cfg)?;
                    networks.push((n.clone(), ip, aliases));
                }
            }
            Some(other) => return self.want(np, "a list or a map", other),
        }
        for (n, _, _) in &networks {
            if !declared.iter().any(|p| &p.name == n) && n != "default" {
                return self.err(np, format!("network {n:?} is not declared under the top-level networks"));
            }
        }
        Ok(networks)
    }

    /// One network of a service, as (static address, aliases).
    fn network_attachment(&mut self, np: &str, cfg: &Value) -> R<(Option<String>, Vec<String>)> {
        if cfg.is_null() {
            return Ok((None, vec![]));
        }
        let c = self.map(np, cfg)?;
        self.unknown(np, c, &["ipv4_address", "aliases"]);
        let ip = self.opt_string(c, np, "ipv4_address")?;
        let aliases = match c.get("aliases") {
            Some(a) => self.strings(&format!("{np}.aliases"), a)?,
            None => vec![],
        };
        Ok((ip, aliases))
    }

    /// `depends_on:`, a list of names or a map with conditions; each must be
    /// a service of `services`.
    fn depends_on(&mut self, dp: &str, v: Option<&Value>, services: &serde_json::Map<String, Value>) -> R<Vec<(String, Condition)>> {
        let mut depends_on = Vec::new();
        match v {
            None => {}
            Some(Value::Array(list)) => {
                for (i, x) in list.iter().enumerate() {
                    depends_on.push((self.string(&format!("{dp}[{i}]"), x)?, Condition::Started));
                }
            }
            Some(Value::Object(dm)) => {
                for (d, cfg) in dm {
                    depends_on.push((d.clone(), self.condition(&format!("{dp}.{d}"), cfg)?));
                }
            }
            Some(other) => return self.want(dp, "a list or a map", other),
        }
        for (d, _) in &depends_on {
            if !services.contains_key(d) {
                return self.err(dp, format!("depends on {d:?}, which is not a service of this file"));
            }
        }
        Ok(depends_on)
    }

    /// One dependency's `{condition: ...}`.
    fn condition(&mut self, dp: &str, cfg: &Value) -> R<Condition> {
        let c = self.map(dp, cfg)?;
        self.unknown(dp, c, &["condition", "restart", "required"]);
        match self.opt_string(c, dp, "condition")?.as_deref() {
            None | Some("service_started") => Ok(Condition::Started),
            Some("service_healthy") => Ok(Condition::Healthy),
            Some("service_completed_successfully") => Ok(Condition::CompletedSuccessfully),
            Some(other) => self.err(&format!("{dp}.condition"), format!("unknown condition {other:?}; known: service_started, service_healthy, service_completed_successfully")),
        }
    }

    fn healthcheck(&mut self, hp: &str, h: &Value) -> R<HealthSpec> {
        let hm = self.map(hp, h)?;
        self.unknown(hp, hm, &["test", "interval", "timeout", "retries", "start_period", "disable"]);
        let mut hs = HealthSpec::default();
        if hm.get("disable").and_then(Value::as_bool) == Some(true) {
            hs.test = vec!["NONE".into()];
        } else if let Some(test) = hm.get("test") {
            hs.test = self.health_test(&format!("{hp}.test"), test)?;
        }
        for (k, slot) in [("interval", &mut hs.interval_ms), ("timeout", &mut hs.timeout_ms), ("start_period", &mut hs.start_period_ms)] {
            if let Some(x) = hm.get(k) {
                *slot = self.duration_ms(&format!("{hp}.{k}"), x)?;
            }
        }
        if let Some(r) = hm.get("retries") {
            hs.retries = self.count(&format!("{hp}.retries"), r)?;
        }
        Ok(hs)
    }

    /// `test:` as a shell string, or a list starting with CMD, CMD-SHELL or NONE.
    fn health_test(&self, tp: &str, test: &Value) -> R<Vec<String>> {
        match test {
            Value::String(s) => Ok(vec!["CMD-SHELL".into(), s.clone()]),
            Value::Array(_) => {
                let words = self.strings(tp, test)?;
                match words.first().map(String::as_str) {
                    Some("CMD") | Some("CMD-SHELL") | Some("NONE") => Ok(words),
                    _ => self.err(tp, "a list starts with CMD, CMD-SHELL or NONE"),
                }
            }
            other => self.want(tp, "a string or a list", other),
        }
    }

    /// `deploy:`: replicas, resource limits, restart policy, update config.
    fn deploy(&mut self, dp: &str, d: &Value, t: &mut RunSpec) -> R<Deploy> {
        let dm = self.map(dp, d)?;
        self.unknown(dp, dm, &["replicas", "resources", "restart_policy", "update_config", "mode", "placement"]);
        let mut deploy = Deploy { replicas: 1, restart_policy: false, update: None, global: false, constraints: Vec::new() };
        if let Some(m) = dm.get("mode") {
            deploy.global = match self.string(&format!("{dp}.mode"), m)?.as_str() {
                "replicated" => false,
                "global" => true,
                other => return self.err(&format!("{dp}.mode"), format!("{other:?} is replicated or global")),
            };
        }
        if let Some(p) = dm.get("placement") {
            let pp = format!("{dp}.placement");
            let pm = self.map(&pp, p)?;
            self.unknown(&pp, pm, &["constraints"]);
            if let Some(c) = pm.get("constraints") {
                let cp = format!("{pp}.constraints");
                for (i, x) in self.strings(&cp, c)?.into_iter().enumerate() {
                    if let Err(e) = crate::cluster::schedule::Constraint::parse(&x) {
                        return self.err(&format!("{cp}[{i}]"), e);
                    }
                    deploy.constraints.push(x);
                }
            }
        }
        if let Some(r) = dm.get("replicas") {
            deploy.replicas = self.count(&format!("{dp}.replicas"), r)?;
        }
        if let Some(r) = dm.get("resources") {
            self.resources(&format!("{dp}.resources"), r, t)?;
        }
        if let Some(r) = dm.get("restart_policy") {
            t.restart = self.restart_policy(&format!("{dp}.restart_policy"), r)?;
            deploy.restart_policy = true;
        }
        if let Some(u) = dm.get("update_config") {
            deploy.update = Some(self.update_config(&format!("{dp}.update_config"), u)?);
        }
        Ok(deploy)
    }

    /// `deploy.resources`: only `limits` applies (berth has no reservations).
    fn resources(&mut self, rp: &str, r: &Value, t: &mut RunSpec) -> R<()> {
        let rm = self.map(rp, r)?;
        self.unknown(rp, rm, &["limits"]);
        let Some(l) = rm.get("limits") else { return Ok(()) };
        let lp = format!("{rp}.limits");
        let lm = self.map(&lp, l)?;
        self.unknown(&lp, lm, &["cpus", "memory", "pids"]);
        if let Some(x) = lm.get("memory") {
            t.memory = Some(self.memory(&format!("{lp}.memory"), x)?);
        }
        if let Some(x) = lm.get("cpus") {
            t.cpus = Some(self.cpus(&format!("{lp}.cpus"), x)?);
        }
        if let Some(x) = lm.get("pids") {
            t.pids_limit = Some(self.count(&format!("{lp}.pids"), x)? as i64);
        }
        Ok(())
    }

    fn restart_policy(&mut self, rp: &str, r: &Value) -> R<RestartPolicy> {
        let rm = self.map(rp, r)?;
        self.unknown(rp, rm, &["condition", "max_attempts"]);
        let max = rm.get("max_attempts").map(|x| self.count(&format!("{rp}.max_attempts"), x)).transpose()?.unwrap_or(0);
        match self.opt_string(rm, rp, "condition")?.as_deref() {
            None | Some("any") => Ok(RestartPolicy::Always),
            Some("on-failure") => Ok(RestartPolicy::OnFailure(max)),
            Some("none") => Ok(RestartPolicy::No),
            Some(other) => self.err(&format!("{rp}.condition"), format!("unknown condition {other:?}; known: none, on-failure, any")),
        }
    }

    fn update_config(&mut self, up: &str, u: &Value) -> R<super::UpdateConfig> {
        let um = self.map(up, u)?;
        self.unknown(up, um, &["parallelism", "delay", "monitor"]);
        let mut c = super::UpdateConfig::default();
        if let Some(x) = um.get("parallelism") {
            c.parallelism = self.count(&format!("{up}.parallelism"), x)?.max(1);
        }
        if let Some(x) = um.get("delay") {
            c.delay_ms = self.duration_ms(&format!("{up}.delay"), x)?;
        }
        if let Some(x) = um.get("monitor") {
            c.monitor_ms = self.duration_ms(&format!("{up}.monitor"), x)?;
        }
        Ok(c)
    }

    /// The service keys that map straight onto `docker run` options. Read
    /// after `deploy`, so `mem_limit` and `cpus` win over its limits.
    fn container_settings(&mut self, path: &str, m: &serde_json::Map<String, Value>, t: &mut RunSpec) -> R<()> {
        if let Some(x) = m.get("stop_grace_period") {
            t.stop_timeout = Some(self.duration_ms(&format!("{path}.stop_grace_period"), x)?.div_ceil(1000));
        }
        for k in ["tty", "stdin_open", "init"] {
            if m.contains_key(k) {
                self.warnings.push(format!("{}: {path}.{k}: ignored: a stack's replicas run detached, without a terminal or an init of their own", self.origin));
            }
        }
        for (k, slot) in [("hostname", &mut t.hostname), ("working_dir", &mut t.workdir), ("user", &mut t.user), ("stop_signal", &mut t.stop_signal)] {
            if let Some(x) = m.get(k) {
                *slot = Some(self.string(&format!("{path}.{k}"), x)?);
            }
        }
        if let Some(l) = m.get("labels") {
            t.labels = self.pairs(&format!("{path}.labels"), l)?;
        }
        for (k, slot) in [("cap_add", &mut t.cap_add), ("cap_drop", &mut t.cap_drop)] {
            if let Some(x) = m.get(k) {
                *slot = self.strings(&format!("{path}.{k}"), x)?;
            }
        }
        if let Some(x) = m.get("sysctls") {
            t.sysctls = self.pairs(&format!("{path}.sysctls"), x)?;
        }
        if let Some(x) = m.get("privileged") {
            let Some(b) = x.as_bool() else { return self.err(&format!("{path}.privileged"), format!("must be true or false, not {x}")) };
            t.privileged = b;
        }
        if let Some(x) = m.get("mem_limit") {
            t.memory = Some(self.memory(&format!("{path}.mem_limit"), x)?);
        }
        if let Some(x) = m.get("cpus") {
            t.cpus = Some(self.cpus(&format!("{path}.cpus"), x)?);
        }
        if let Some(x) = m.get("read_only") {
            let Some(b) = x.as_bool() else { return self.err(&format!("{path}.read_only"), format!("must be true or false, not {x}")) };
            t.read_only = b;
        }
        for (k, slot) in [("tmpfs", &mut t.tmpfs), ("dns", &mut t.dns), ("dns_search", &mut t.dns_search), ("dns_opt", &mut t.dns_options)] {
            if let Some(x) = m.get(k) {
                *slot = self.strings(&format!("{path}.{k}"), x)?;
            }
        }
        if let Some(x) = m.get("extra_hosts") {
            let hp = format!("{path}.extra_hosts");
            // A list of NAME:IP, or a map NAME: IP.
            t.extra_hosts = match x {
                Value::Object(h) => h.iter().map(|(n, ip)| Ok(format!("{n}:{}", self.string(&format!("{hp}.{n}"), ip)?))).collect::<R<_>>()?,
                other => self.strings(&hp, other)?,
            };
            for (i, h) in t.extra_hosts.iter().enumerate() {
                crate::container::options::extra_host(h).or_else(|e| self.err(&format!("{hp}[{i}]"), e.to_string()))?;
            }
        }
        if let Some(x) = m.get("shm_size") {
            let sp = format!("{path}.shm_size");
            t.shm_size = Some(crate::container::options::size(&self.string(&sp, x)?).or_else(|e| self.err(&sp, e))?);
        }
        if let Some(x) = m.get("ulimits") {
            t.ulimits = self.ulimits(&format!("{path}.ulimits"), x)?;
        }
        if m.contains_key("container_name") {
            self.warnings.push(format!("{}: {path}.container_name: ignored: a stack's containers are named STACK_SERVICE.N", self.origin));
        }
        Ok(())
    }
}

impl Walk<'_> {
    /// `ulimits:` as `--ulimit` specs: `nofile: 1024` or
    /// `nofile: {soft: 1024, hard: 2048}`.
    fn ulimits(&mut self, up: &str, v: &Value) -> R<Vec<String>> {
        let um = self.map(up, v)?;
        let mut out = Vec::new();
        for (name, x) in um {
            let np = format!("{up}.{name}");
            let spec = match x {
                Value::Object(lm) => {
                    self.unknown(&np, lm, &["soft", "hard"]);
                    let (Some(soft), Some(hard)) = (lm.get("soft"), lm.get("hard")) else { return self.err(&np, "needs both soft and hard") };
                    format!("{name}={}:{}", self.string(&format!("{np}.soft"), soft)?, self.string(&format!("{np}.hard"), hard)?)
                }
                other => format!("{name}={}", self.string(&np, other)?),
            };
            crate::container::options::ulimit(&spec).or_else(|e| self.err(&np, e.to_string()))?;
            out.push(spec);
        }
        Ok(out)
    }
}

/// Services in waves: each wave depends only on earlier ones, so a wave
/// starts in parallel. Err: the services caught in a cycle.
pub fn order(plan: &Plan) -> Result<Vec<Vec<String>>, Vec<String>> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut waves = Vec::new();
    while done.len() < plan.services.len() {
        let wave: Vec<String> = plan
            .services
            .iter()
            .filter(|s| !done.contains(&s.name) && s.depends_on.iter().all(|(d, _)| done.contains(d)))
            .map(|s| s.name.clone())
            .collect();
        if wave.is_empty() {
            return Err(plan.services.iter().filter(|s| !done.contains(&s.name)).map(|s| s.name.clone()).collect());
        }
        done.extend(wave.iter().cloned());
        waves.push(wave);
    }
    Ok(waves)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(y: &str) -> R<Plan> {
        let v: Value = serde_norway::from_str(y).unwrap();
        parse(&v, "compose.yaml", Path::new("/srv/app"))
    }

    #[test]
    fn a_daily_compose_file() {
        let p = doc(r#"
services:
  db:
    image: busybox
    command: ["sh", "-c", "touch /ready; sleep 600"]
    environment:
      ROLE: db
    healthcheck:
      test: ["CMD", "test", "-f", "/ready"]
      interval: 200ms
      retries: 5
    volumes: ["data:/data"]
    networks:
      back:
        ipv4_address: 10.5.0.10
        aliases: [database]
  web:
    build: ./web
    command: httpd -f -p 80 -h '/www root'
    environment: ["A=1", "B=two words"]
    ports: ["8080:80", {target: 81, published: 8081, protocol: udp}]
    volumes: ["./site:/www:ro"]
    depends_on:
      db: {condition: service_healthy}
    deploy: {replicas: 3}
    networks: [back]
    restart: on-failure
networks:
  back:
    ipam:
      config: [{subnet: 10.5.0.0/24}]
volumes:
  data: {}
"#)
        .unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let web = p.services.iter().find(|s| s.name == "web").unwrap();
        assert_eq!(web.template.cmd.as_deref().unwrap(), ["httpd", "-f", "-p", "80", "-h", "/www root"]);
        assert_eq!(web.template.env, ["A=1", "B=two words"]);
        assert_eq!(web.ports, ["8080:80", "8081:81/udp"]);
        assert_eq!(web.replicas, 3);
        assert!(matches!(&web.build, Build::Dir(d, None, _) if d == Path::new("/srv/app/./web")));
        assert_eq!(web.depends_on, [("db".to_string(), Condition::Healthy)]);
        let db = p.services.iter().find(|s| s.name == "db").unwrap();
        assert_eq!(db.networks, [("back".to_string(), Some("10.5.0.10".to_string()), vec!["database".to_string()])]);
        assert_eq!(db.template.health.as_ref().unwrap().interval_ms, 200);
        assert_eq!(p.networks[0].subnet.as_deref(), Some("10.5.0.0/24"));
        assert_eq!(order(&p).unwrap(), vec![vec!["db".to_string()], vec!["web".to_string()]]);
    }

    #[test]
    fn wrong_types_are_errors_with_their_path_and_unknown_keys_warnings() {
        let e = doc("services:\n  web:\n    image: busybox\n    ports: [\"8080:80\", [1]]\n").unwrap_err();
        assert_eq!(e.path, "services.web.ports[1]");
        assert!(e.to_string().starts_with("compose.yaml: services.web.ports[1]: must be a string"), "{e}");
        let e = doc("services:\n  web:\n    image: busybox\n    ports: [\"http:80\"]\n").unwrap_err();
        assert_eq!(e.path, "services.web.ports[0]");
        let e = doc("services:\n  web:\n    image: busybox\n    deploy: {replicas: many}\n").unwrap_err();
        assert_eq!(e.path, "services.web.deploy.replicas");
        let e = doc("services:\n  web:\n    image: busybox\n    volumes: [\"data:/d\"]\n").unwrap_err();
        assert!(e.msg.contains("not declared"), "{e}");
        let e = doc("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n").unwrap_err();
        assert!(e.msg.contains("cycle"), "{e}");
        let p = doc("services:\n  web:\n    image: busybox\n    colour: blue\n").unwrap();
        assert_eq!(p.warnings, ["compose.yaml: services.web.colour: unknown key, ignored (known: image, build, command, entrypoint, environment, env_file, ports, volumes, networks, depends_on, healthcheck, restart, deploy, hostname, working_dir, user, labels, cap_add, cap_drop, sysctls, privileged, mem_limit, cpus, stop_signal, stop_grace_period, expose, container_name, tty, stdin_open, init, read_only, tmpfs, shm_size, extra_hosts, dns, dns_search, dns_opt, ulimits)"]);
    }

    #[test]
    fn filesystem_name_and_limit_keys() {
        let p = doc(r#"
services:
  web:
    image: busybox
    read_only: true
    tmpfs: [/run, "/tmp:size=1m"]
    shm_size: 128m
    extra_hosts: {db: 10.0.0.5}
    dns: 10.0.0.2
    dns_search: [lab.test]
    dns_opt: [ndots:2]
    ulimits:
      nproc: 64
      nofile: {soft: 512, hard: 1024}
"#)
        .unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let t = &p.services[0].template;
        assert!(t.read_only);
        assert_eq!((t.tmpfs.clone(), t.shm_size), (vec!["/run".to_string(), "/tmp:size=1m".into()], Some(128 << 20)));
        assert_eq!((t.extra_hosts.clone(), t.dns.clone(), t.dns_search.clone(), t.dns_options.clone()), (vec!["db:10.0.0.5".to_string()], vec!["10.0.0.2".to_string()], vec!["lab.test".to_string()], vec!["ndots:2".to_string()]));
        let mut u = t.ulimits.clone();
        u.sort();
        assert_eq!(u, ["nofile=512:1024", "nproc=64"]);
        let e = doc("services:\n  web:\n    image: busybox\n    ulimits: {nofile: {soft: 1}}\n").unwrap_err();
        assert_eq!(e.path, "services.web.ulimits.nofile");
        let e = doc("services:\n  web:\n    image: busybox\n    extra_hosts: [\"db\"]\n").unwrap_err();
        assert_eq!(e.path, "services.web.extra_hosts[0]");
        let e = doc("services:\n  web:\n    image: busybox\n    shm_size: big\n").unwrap_err();
        assert_eq!(e.path, "services.web.shm_size");
    }

    #[test]
    fn variables_are_interpolated() {
        // SAFETY: tests in this module do not read these variables concurrently.
        unsafe { std::env::set_var("BERTH_T_PORT", "9090") };
        unsafe { std::env::remove_var("BERTH_T_UNSET") };
        assert_eq!(interpolate("p: ${BERTH_T_PORT}:80 $BERTH_T_PORT ${BERTH_T_UNSET:-8080} ${BERTH_T_UNSET-x} $$HOME").unwrap(), "p: 9090:80 9090 8080 x $HOME");
        // Nested defaults, as docker compose expands them.
        assert_eq!(interpolate("${BERTH_T_UNSET:-${BERTH_T_PORT}}").unwrap(), "9090");
        assert_eq!(interpolate("${BERTH_T_UNSET:-${BERTH_T_UNSET2:-a}-b}/c").unwrap(), "a-b/c");
        assert_eq!(interpolate("${BERTH_T_PORT:-${BERTH_T_UNSET}}").unwrap(), "9090");
        assert!(interpolate("${BERTH_T_UNSET:-${BERTH_T_PORT}").unwrap_err().contains("unclosed"));
        assert!(interpolate("${BERTH_T_UNSET:?set it}").unwrap_err().contains("set it"));
        assert!(interpolate("${OPEN").unwrap_err().contains("unclosed"));
    }

    #[test]
    fn shell_words_split_like_a_shell() {
        assert_eq!(shell_words(r#"sh -c "echo 'a b'; exit 1" x\ y"#).unwrap(), ["sh", "-c", "echo 'a b'; exit 1", "x y"]);
        assert!(shell_words("echo 'open").is_none());
    }
}
