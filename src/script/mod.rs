//! The Rhai front: engine objects as Rhai types, lab scripts, the REPL and
//! the test runner. Every function turns its arguments into a request
//! struct, calls one `Engine` method and wraps the result. The functions are
//! registered in `api/`, one module per Rhai type, each with its help.

mod api;
pub mod help;
pub mod http;
pub mod repl;
pub mod runner;
pub mod stdlib;

use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, EvalAltResult, Map, Position};

use crate::container::{RestartPolicy, RunSpec};
use crate::engine::{Engine, EngineError};

type RResult<T> = Result<T, Box<EvalAltResult>>;

fn rerr(msg: impl std::fmt::Display) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(msg.to_string().into(), Position::NONE))
}

fn eng(e: EngineError) -> Box<EvalAltResult> {
    rerr(e)
}

/// The key of the map a `skip("reason")` throws.
pub const SKIP_KEY: &str = "__berth_skip";


/// A container handle: copies refer to the same container, getters read
/// live state.
#[derive(Clone)]
pub struct Container {
    pub engine: Arc<Engine>,
    pub id: String,
}

#[derive(Clone)]
pub struct Network {
    pub engine: Arc<Engine>,
    pub id: String,
}

/// A volume handle: getters read the store each time.
#[derive(Clone)]
pub struct Volume {
    pub engine: Arc<Engine>,
    pub name: String,
}

/// A stack: its parsed plan, deployed by `up()`.
#[derive(Clone)]
pub struct Stack {
    pub engine: Arc<Engine>,
    pub name: String,
    pub plan: Arc<crate::service::compose::Plan>,
    pub source: String,
}

/// A service handle: getters read the store each time.
#[derive(Clone)]
pub struct Service {
    pub engine: Arc<Engine>,
    pub id: String,
}

/// What a Service handle shows of a service, on one host or a swarm.
struct ServiceView {
    name: String,
    replicas: u32,
    image: String,
    vip: String,
}

impl Service {
    fn get(&self) -> RResult<crate::service::Service> {
        self.engine.service(&self.id).map_err(eng)
    }

    /// On a swarm node, services are the swarm's (as on the command line).
    fn on_swarm(&self) -> bool {
        self.engine.swarm().is_some()
    }

    fn view(&self) -> RResult<ServiceView> {
        if self.on_swarm() {
            let s = self.engine.swarm_service(&self.id).map_err(eng)?;
            let replicas = match s.mode {
                crate::cluster::schedule::Mode::Replicated(n) => n,
                crate::cluster::schedule::Mode::Global => self.engine.swarm_service_tasks(&s.id).map_err(eng)?.len() as u32,
            };
            return Ok(ServiceView { name: s.name, replicas, image: s.spec.template.image, vip: s.vip.map(|v| v.to_string()).unwrap_or_default() });
        }
        let s = self.get()?;
        Ok(ServiceView { name: s.name, replicas: s.spec.replicas, image: s.spec.template.image, vip: s.vip.to_string() })
    }
}

#[derive(Clone)]
pub struct Image {
    pub engine: Arc<Engine>,
    pub id: String,
}

impl Container {
    fn get(&self) -> RResult<crate::container::Container> {
        self.engine.container(&self.id).map_err(eng)
    }
}

impl Image {
    fn get(&self) -> RResult<crate::image::Image> {
        self.engine.image(&self.id).map_err(eng)
    }
}

fn strings(v: &Dynamic, what: &str) -> RResult<Vec<String>> {
    if let Some(s) = v.clone().try_cast::<String>() {
        return Ok(vec![s]);
    }
    let arr = v.clone().try_cast::<Array>().ok_or_else(|| rerr(format!("option {what} must be an array of strings")))?;
    arr.into_iter().map(|x| x.try_cast::<String>().or(None).ok_or_else(|| rerr(format!("option {what} must be an array of strings")))).collect()
}

fn string_map(v: &Dynamic, what: &str) -> RResult<std::collections::BTreeMap<String, String>> {
    let m = v.clone().try_cast::<Map>().ok_or_else(|| rerr(format!("option {what} must be a map such as #{{ KEY: \"value\" }}")))?;
    Ok(m.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// Options that are all true or false: which of `known` `opts` sets, in
/// `known`'s order. A value that is no bool, or a key not in `known`, is an
/// error naming `what` (and the known ones).
pub fn flag_opts<const N: usize>(what: &str, opts: &Map, known: [&str; N]) -> RResult<[bool; N]> {
    let mut set = [false; N];
    for (k, v) in opts {
        let b = v.as_bool().map_err(|_| rerr(format!("{what} option {k} must be true or false")))?;
        let i = known.iter().position(|n| *n == k.as_str()).ok_or_else(|| rerr(format!("unknown {what} option {:?}; known: {}", k.as_str(), known.join(", "))))?;
        set[i] = b;
    }
    Ok(set)
}

/// Turns a script's option map into a RunSpec; unknown keys are errors
/// (a typo must not be silently ignored).
pub fn run_spec(image: &str, opts: &Map) -> RResult<RunSpec> {
    let mut s = RunSpec { image: image.to_string(), ..Default::default() };
    for (k, v) in opts {
        let k = k.as_str();
        let text = || v.clone().into_string().map_err(|_| rerr(format!("option {k} must be a string")));
        match k {
            "image" => s.image = text()?,
            "name" => s.name = Some(text()?),
            "cmd" | "command" => s.cmd = Some(strings(v, k)?),
            "entrypoint" => s.entrypoint = Some(strings(v, k)?),
            "env" => {
                if v.is_map() {
                    s.env = string_map(v, k)?.into_iter().map(|(a, b)| format!("{a}={b}")).collect();
                } else {
                    s.env = strings(v, k)?;
                }
            }
            "workdir" => s.workdir = Some(text()?),
            "hostname" => s.hostname = Some(text()?),
            "user" => s.user = Some(text()?),
            "labels" => s.labels = string_map(v, k)?,
            "rm" => s.rm = v.as_bool().map_err(|_| rerr("option rm must be true or false"))?,
            "tty" => s.tty = v.as_bool().map_err(|_| rerr("option tty must be true or false"))?,
            "privileged" => s.privileged = v.as_bool().map_err(|_| rerr("option privileged must be true or false"))?,
            "memory" => {
                s.memory = Some(if let Ok(n) = v.as_int() { n } else { crate::parse::memory(&text()?).map_err(rerr)? });
            }
            "cpus" => s.cpus = Some(v.as_float().or_else(|_| v.as_int().map(|i| i as f64)).map_err(|_| rerr("option cpus must be a number such as 0.5"))?),
            "pids_limit" => s.pids_limit = Some(v.as_int().map_err(|_| rerr("option pids_limit must be an integer"))?),
            "restart" => s.restart = RestartPolicy::parse(&text()?).map_err(rerr)?,
            "cap_add" => s.cap_add = strings(v, k)?,
            "cap_drop" => s.cap_drop = strings(v, k)?,
            "sysctls" => s.sysctls = string_map(v, k)?,
            "stop_signal" => s.stop_signal = Some(text()?),
            "stop_timeout" => s.stop_timeout = Some(v.as_int().ok().filter(|n| *n >= 0).ok_or_else(|| rerr("option stop_timeout must be a number of seconds"))? as u64),
            "network" => s.network = Some(text()?),
            "ip" => s.ip = Some(text()?),
            "aliases" => s.aliases = strings(v, k)?,
            "publish" => s.publish = strings(v, k)?,
            "publish_all" => s.publish_all = v.as_bool().map_err(|_| rerr("option publish_all must be true or false"))?,
            "volumes" => s.volumes = strings(v, k)?,
            "volumes_from" => s.volumes_from = strings(v, k)?,
            "health" => s.health = Some(health_spec(v)?),
            "devices" => s.devices = strings(v, k)?,
            "cgroup_parent" => s.cgroup_parent = Some(text()?),
            // docker's --log-opt keys; a number is taken as written ("max-file": 3).
            "log_opts" => s.log_opts = v.clone().try_cast::<Map>().ok_or_else(|| rerr("option log_opts must be a map such as #{ \"max-size\": \"10m\", \"max-file\": 3 }"))?.into_iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            "read_only" => s.read_only = v.as_bool().map_err(|_| rerr("option read_only must be true or false"))?,
            "tmpfs" => s.tmpfs = strings(v, k)?,
            "shm_size" => {
                s.shm_size = Some(if let Ok(n) = v.as_int() { n } else { crate::container::options::shm_size(&text()?).map_err(|e| rerr(e.to_string().replacen("--shm-size", "option shm_size", 1)))? });
            }
            "add_hosts" | "extra_hosts" => s.extra_hosts = strings(v, k)?,
            "dns" => s.dns = strings(v, k)?,
            "dns_search" => s.dns_search = strings(v, k)?,
            "dns_options" => s.dns_options = strings(v, k)?,
            "ulimits" => s.ulimits = strings(v, k)?,
            other => {
                return Err(rerr(format!(
                    "unknown run option {other:?}; known: name, cmd, entrypoint, env, workdir, hostname, user, labels, rm, tty, privileged, memory, cpus, pids_limit, restart, cap_add, cap_drop, sysctls, stop_signal, stop_timeout, network, ip, aliases, publish, publish_all, volumes, volumes_from, health, devices, cgroup_parent, log_opts, read_only, tmpfs, shm_size, add_hosts, dns, dns_search, dns_options, ulimits"
                )))
            }
        }
    }
    Ok(s)
}

/// `health: #{ cmd, interval, timeout, start_period, retries }`: cmd an
/// array (exec form) or a string (run by /bin/sh -c); times in ms.
fn health_spec(v: &Dynamic) -> RResult<crate::container::health::HealthSpec> {
    let m = v.clone().try_cast::<Map>().ok_or_else(|| rerr("option health must be a map such as #{ cmd: [\"test\", \"-f\", \"/ready\"], interval: 1000, retries: 3 }"))?;
    let mut h = crate::container::health::HealthSpec::default();
    for (k, x) in &m {
        let ms = || x.as_int().map(|n| n.max(0) as u64).map_err(|_| rerr(format!("health option {k} must be a number of milliseconds")));
        match k.as_str() {
            "cmd" => {
                h.test = if let Some(text) = x.clone().try_cast::<String>() {
                    vec!["CMD-SHELL".into(), text]
                } else if x.is_unit() || x.clone().try_cast::<Array>().is_some_and(|a| a.is_empty()) {
                    vec!["NONE".into()]
                } else {
                    std::iter::once("CMD".to_string()).chain(strings(x, "health.cmd")?).collect()
                }
            }
            "interval" => h.interval_ms = ms()?,
            "timeout" => h.timeout_ms = ms()?,
            "start_period" => h.start_period_ms = ms()?,
            "retries" => h.retries = x.as_int().map_err(|_| rerr("health option retries must be an integer"))?.max(0) as u32,
            other => return Err(rerr(format!("unknown health option {other:?}; known: cmd, interval, timeout, start_period, retries"))),
        }
    }
    Ok(h)
}

/// A script's service options: the service's own keys, the rest is each
/// replica's run spec.
pub fn service_spec(name: &str, opts: &Map) -> RResult<crate::service::ServiceSpec> {
    let mut spec = crate::service::ServiceSpec { name: name.to_string(), replicas: 1, ..Default::default() };
    let mut rest = Map::new();
    let mut image = None;
    for (k, v) in opts {
        match k.as_str() {
            "image" => image = Some(v.to_string()),
            "replicas" => spec.replicas = v.as_int().ok().filter(|n| *n >= 0).ok_or_else(|| rerr("option replicas must be a count, 0 or more"))? as u32,
            "publish" => spec.publish = strings(v, "publish")?,
            "network" => spec.network = Some(v.to_string()),
            "service_labels" => spec.labels = string_map(v, "service_labels")?,
            "update" => {
                let m = v.clone().try_cast::<Map>().ok_or_else(|| rerr("option update must be a map: #{ parallelism, delay, monitor }"))?;
                for (uk, uv) in &m {
                    let n = uv.as_int().map_err(|_| rerr(format!("update option {uk} must be a number")))?.max(0) as u64;
                    match uk.as_str() {
                        "parallelism" => spec.update.parallelism = n.max(1) as u32,
                        "delay" => spec.update.delay_ms = n,
                        "monitor" => spec.update.monitor_ms = n,
                        other => return Err(rerr(format!("unknown update option {other:?}; known: parallelism, delay, monitor"))),
                    }
                }
            }
            "name" => return Err(rerr("a service's replicas are named by the service (NAME.1, NAME.2, ...): drop option name")),
            _ => {
                rest.insert(k.clone(), v.clone());
            }
        }
    }
    let image = image.ok_or_else(|| rerr(format!("service {name} needs an image: service(\"{name}\", #{{ image: \"busybox\", replicas: 3 }})")))?;
    spec.restart_explicit = rest.contains_key("restart");
    spec.template = run_spec(&image, &rest)?;
    if spec.template.restart == RestartPolicy::No && !spec.restart_explicit {
        spec.template.restart = RestartPolicy::Always;
    }
    Ok(spec)
}

/// `#{ label: "k" | "k=v" }` of networks() and volumes().
fn label_filter(o: &Map, what: &str) -> RResult<impl Fn(&std::collections::BTreeMap<String, String>) -> bool> {
    let mut want: Option<(String, Option<String>)> = None;
    for (k, v) in o {
        match k.as_str() {
            "label" => {
                let l = v.to_string();
                want = Some(match l.split_once('=') {
                    Some((a, b)) => (a.to_string(), Some(b.to_string())),
                    None => (l, None),
                });
            }
            other => return Err(rerr(format!("unknown {what} option {other:?}; known: label"))),
        }
    }
    Ok(move |labels: &std::collections::BTreeMap<String, String>| match &want {
        None => true,
        Some((k, v)) => labels.get(k).is_some_and(|x| v.as_ref().is_none_or(|v| v == x)),
    })
}

/// Bars on a terminal, plain lines otherwise.
fn progress() -> crate::image::registry::Progress {
    if crate::sys::pty::is_tty(2) { crate::image::registry::Progress::Bars } else { crate::image::registry::Progress::Lines }
}

fn output_map(o: &crate::engine::Output) -> Map {
    let mut m = Map::new();
    m.insert("code".into(), (o.code as i64).into());
    m.insert("stdout".into(), String::from_utf8_lossy(&o.stdout).into_owned().into());
    m.insert("stderr".into(), String::from_utf8_lossy(&o.stderr).into_owned().into());
    m
}

fn json_to_dynamic(v: &serde_json::Value) -> Dynamic {
    match v {
        serde_json::Value::Null => Dynamic::UNIT,
        serde_json::Value::Bool(b) => (*b).into(),
        serde_json::Value::Number(n) => n.as_i64().map(Dynamic::from).unwrap_or_else(|| n.as_f64().unwrap_or(0.0).into()),
        serde_json::Value::String(s) => s.clone().into(),
        serde_json::Value::Array(a) => a.iter().map(json_to_dynamic).collect::<Array>().into(),
        serde_json::Value::Object(o) => o.iter().map(|(k, v)| (k.as_str().into(), json_to_dynamic(v))).collect::<Map>().into(),
    }
}

fn timeout_of(opts: &Map) -> Duration {
    Duration::from_millis(opts.get("timeout").and_then(|t| t.as_int().ok()).unwrap_or(30_000).max(0) as u64)
}

/// Is something listening on TCP `port` in the container's network
/// namespace? Read from /proc/PID/net/tcp{,6}: no network needed.
fn listening(pid: i32, port: u16) -> bool {
    ["tcp", "tcp6"].iter().any(|f| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).map(|s| {
            s.lines().skip(1).any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && cols[3] == "0A" && cols[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port)
            })
        }).unwrap_or(false)
    })
}

/// What `berth test` needs from the bindings: its labels on every object a
/// test creates, and a note of each one as it is made.
pub trait Tracker: Send + Sync {
    fn labels(&self) -> std::collections::BTreeMap<String, String>;
    fn created(&self, obj: Created);
    /// The file's name scope under `berth test`: the names a script writes
    /// are NAME.SCOPE on the host.
    fn scope(&self) -> Option<String> {
        None
    }
}

/// What kind of object a scoped name refers to.
#[derive(Clone, Copy)]
enum Kind {
    Container,
    Network,
    Volume,
    Service,
}

/// Resolves the names a script writes. Outside `berth test` a name is
/// itself. Inside, a name is the file's own object (NAME.SCOPE) when there
/// is one, otherwise an existing object of that very name (one the script
/// did not make, such as a shared registry), otherwise a new NAME.SCOPE.
#[derive(Clone)]
struct Names {
    scope: Option<String>,
    engine: Arc<Engine>,
}

impl Names {
    fn scoped(&self, name: &str) -> String {
        self.scoped_with(name, '.')
    }

    /// Services and stacks take "-": a dot would read as a replica's
    /// number (NAME.1).
    fn scoped_with(&self, name: &str, sep: char) -> String {
        match &self.scope {
            Some(s) if !name.is_empty() && !name.ends_with(&format!("{sep}{s}")) => format!("{name}{sep}{s}"),
            _ => name.to_string(),
        }
    }

    fn resolve(&self, kind: Kind, name: &str) -> String {
        if self.scope.is_none() {
            return name.to_string();
        }
        if matches!(kind, Kind::Network) && matches!(name, "none" | "host" | "bridge" | "default" | "") || name.starts_with("container:") {
            return name.to_string();
        }
        let e = &self.engine;
        let exists = |n: &str| match kind {
            Kind::Container => e.container(n).is_ok_and(|c| c.name == n),
            Kind::Network => e.network(n).is_ok_and(|x| x.name == n),
            Kind::Volume => e.volume(n).is_ok(),
            Kind::Service => e.service(n).is_ok_and(|x| x.name == n),
        };
        let own = self.scoped_with(name, if matches!(kind, Kind::Service) { '-' } else { '.' });
        if own != name && !exists(&own) && exists(name) {
            return name.to_string();
        }
        // An id or id prefix stays as it is.
        if matches!(kind, Kind::Container | Kind::Network | Kind::Service) && !exists(&own) && !exists(name) && name.len() >= 12 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return name.to_string();
        }
        own
    }

    /// A run spec's names: the container's, its network's, named volumes,
    /// --volumes-from. On a network of the scope the container also answers
    /// to the name as written, so peers reach `db` as `db`.
    fn spec(&self, spec: &mut RunSpec) {
        if self.scope.is_none() {
            return;
        }
        let written = spec.name.clone();
        if let Some(n) = &spec.name {
            spec.name = Some(self.scoped(n));
        }
        if let Some(net) = &spec.network {
            let real = self.resolve(Kind::Network, net);
            if real != *net
                && let Some(w) = &written
                && !spec.aliases.contains(w)
            {
                spec.aliases.push(w.clone());
            }
            spec.network = Some(real);
        }
        for v in spec.volumes.iter_mut() {
            if let Some((src, rest)) = v.split_once(':')
                && !src.starts_with('/')
                && !src.starts_with('.')
                && !src.is_empty()
            {
                *v = format!("{}:{rest}", self.resolve(Kind::Volume, src));
            }
        }
        for v in spec.volumes_from.iter_mut() {
            let (c, mode) = match v.split_once(':') {
                Some((c, m)) => (c.to_string(), format!(":{m}")),
                None => (v.clone(), String::new()),
            };
            *v = format!("{}{mode}", self.resolve(Kind::Container, &c));
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    Container(String),
    Network(String),
    Volume(String),
    Image(String),
    Service(String),
    Stack(String),
}

/// Builds the Rhai engine with every berth function registered.
pub fn build(engine: Arc<Engine>, argv: Vec<String>) -> (rhai::Engine, rhai::Scope<'static>) {
    build_with(engine, argv, None)
}

pub fn build_with(engine: Arc<Engine>, argv: Vec<String>, tracker: Option<Arc<dyn Tracker>>) -> (rhai::Engine, rhai::Scope<'static>) {
    let ctx = api::Ctx::new(engine, tracker);
    let mut r = rhai::Engine::new();
    r.set_max_expr_depths(256, 256);
    r.set_module_resolver(stdlib::Resolver::new());
    api::register_types(&mut r);
    api::image::register(&mut r, &ctx);
    api::container::register(&mut r, &ctx);
    api::network::register(&mut r, &ctx);
    api::volume::register(&mut r, &ctx);
    api::service::register(&mut r, &ctx);
    api::stack::register(&mut r, &ctx);
    api::system::register(&mut r, &ctx);
    api::serve::register(&mut r, &ctx);
    api::host::register(&mut r, &ctx);
    api::swarm::register(&mut r, &ctx);
    api::util::register(&mut r);
    api::testing::register(&mut r);
    help::register(&mut r);
    r.on_print(|s| println!("{s}"));
    r.on_debug(|s, src, pos| eprintln!("[{}:{}] {s}", src.unwrap_or("script"), pos));
    let mut scope = rhai::Scope::new();
    scope.push_constant("ARGV", argv.into_iter().map(Dynamic::from).collect::<Array>());
    (r, scope)
}

/// Renders an evaluation error as `file:line:column`, the source line with a
/// caret, and the reason. An error inside an imported module points at the
/// line of the user's script that called into it, and names where in the
/// module it happened.
pub fn render_error(file: &str, source: &str, err: &EvalAltResult) -> String {
    // Unwrap the call frames: (function, the source it lives in, call site).
    let mut frames: Vec<(String, String, Position)> = Vec::new();
    let mut e = err;
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                frames.push((name.clone(), src.clone(), *pos));
                e = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, pos) => {
                frames.push((format!("import {name:?}"), name.clone(), *pos));
                e = inner;
            }
            _ => break,
        }
    }
    let reason = match e {
        EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        other => other.to_string().split(" (line ").next().unwrap_or("").to_string(),
    };
    // Frame k is called from frame k-1's source (the script's for k = 0);
    // a function of the script itself has no source name.
    let in_script = |k: usize| k == 0 || frames[k - 1].1.is_empty();
    let deepest_foreign = frames.iter().rposition(|f| !f.1.is_empty());
    let (pos, reason) = match deepest_foreign {
        None => (e.position(), reason),
        Some(_) => {
            // The last call made from the script's own code into a module.
            let k = (0..frames.len()).rev().find(|&k| in_script(k) && !frames[k].1.is_empty()).unwrap_or(0);
            let (name, src, at) = &frames[k];
            let inner = e.position();
            let place = match (inner.line(), inner.position()) {
                (Some(l), Some(c)) => format!("{}:{l}:{c}", frames.last().map(|f| f.1.as_str()).unwrap_or(src)),
                (Some(l), None) => format!("{}:{l}", frames.last().map(|f| f.1.as_str()).unwrap_or(src)),
                _ => src.clone(),
            };
            (*at, format!("{reason}\n  (in {name}, {place})"))
        }
    };
    match (pos.line(), pos.position()) {
        (Some(line), col) => {
            let col = col.unwrap_or(1);
            let text = source.lines().nth(line - 1).unwrap_or("");
            let (first, rest) = reason.split_once('\n').map(|(a, b)| (a.to_string(), format!("\n{b}"))).unwrap_or((reason.clone(), String::new()));
            format!("{file}:{line}:{col}: {first}\n  {text}\n  {}^{rest}", " ".repeat(col.saturating_sub(1)))
        }
        _ => format!("{file}: {reason}"),
    }
}

pub fn run_file(e: Engine, path: &str, args: &[String]) -> anyhow::Result<i32> {
    let source = std::fs::read_to_string(path).map_err(|err| anyhow::anyhow!("reading script {path}: {err}"))?;
    let mut argv = vec![path.to_string()];
    argv.extend(args.iter().cloned());
    let (r, mut scope) = build(Arc::new(e), argv);
    match r.compile_with_scope(&scope, &source) {
        Err(pe) => {
            let err: EvalAltResult = pe.into();
            eprintln!("{}", render_error(path, &source, &err));
            Ok(1)
        }
        Ok(ast) => match r.run_ast_with_scope(&mut scope, &ast) {
            Ok(()) => Ok(0),
            Err(err) => {
                if let EvalAltResult::ErrorTerminated(v, _) = &*err {
                    return Ok(v.as_int().unwrap_or(0) as i32);
                }
                eprintln!("{}", render_error(path, &source, &err));
                Ok(1)
            }
        },
    }
}

