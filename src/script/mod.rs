//! The Rhai front: engine objects as Rhai types, lab scripts, the REPL and
//! the test runner. Every function turns its arguments into a request
//! struct, calls one `Engine` method and wraps the result.

pub mod help;
pub mod http;
pub mod repl;
pub mod runner;
pub mod stdlib;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, EvalAltResult, FnPtr, Map, NativeCallContext, Position};

use crate::container::{RestartPolicy, RunSpec};
use crate::engine::{Attach, Engine, EngineError};
use crate::runtime::exec::ExecOptions;

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

impl Service {
    fn get(&self) -> RResult<crate::service::Service> {
        self.engine.service(&self.id).map_err(eng)
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
            other => {
                return Err(rerr(format!(
                    "unknown run option {other:?}; known: name, cmd, entrypoint, env, workdir, hostname, user, labels, rm, tty, privileged, memory, cpus, pids_limit, restart, cap_add, cap_drop, sysctls, stop_signal, stop_timeout, network, ip, aliases, publish, publish_all, volumes, volumes_from, health, devices, cgroup_parent"
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
    // Labels a tracked run adds (none otherwise), and the note it takes
    // of what was made.
    let extra = {
        let t = tracker.clone();
        move || t.as_ref().map(|t| t.labels()).unwrap_or_default()
    };
    let label = {
        let extra = extra.clone();
        move |spec: &mut RunSpec| spec.labels.extend(extra())
    };
    let note = {
        let t = tracker.clone();
        move |o: Created| {
            if let Some(t) = &t {
                t.created(o);
            }
        }
    };
    let names = Names { scope: tracker.as_ref().and_then(|t| t.scope()), engine: engine.clone() };
    let mut r = rhai::Engine::new();
    r.set_max_expr_depths(256, 256);
    r.set_module_resolver(stdlib::Resolver::new());
    r.register_type_with_name::<Container>("Container");
    r.register_type_with_name::<Image>("Image");

    // ---- images ----
    let e = engine.clone();
    r.register_fn("image", move |name: &str| -> RResult<Image> {
        let i = e.image(name).map_err(eng)?;
        Ok(Image { engine: e.clone(), id: i.id })
    });
    let e = engine.clone();
    r.register_fn("images", move || -> RResult<Array> {
        Ok(e.images().map_err(eng)?.into_iter().map(|i| Dynamic::from(Image { engine: e.clone(), id: i.id })).collect())
    });
    let e = engine.clone();
    r.register_fn("import", move |path: &str, tag: &str| -> RResult<Image> {
        let i = e.import_file(path, Some(tag), &[]).map_err(eng)?;
        Ok(Image { engine: e.clone(), id: i.id })
    });
    r.register_get("id", |i: &mut Image| i.id.clone());
    r.register_get("tags", |i: &mut Image| -> RResult<Array> { Ok(i.get()?.tags.into_iter().map(Dynamic::from).collect()) });
    r.register_get("size", |i: &mut Image| -> RResult<i64> { Ok(i.get()?.size as i64) });
    r.register_get("layers", |i: &mut Image| -> RResult<Array> { Ok(i.get()?.layers.into_iter().map(Dynamic::from).collect()) });
    r.register_get("config", |i: &mut Image| -> RResult<Map> {
        let c = i.get()?.config.config;
        let mut m = Map::new();
        let strs = |v: Option<Vec<String>>| -> Dynamic { v.map(|v| v.into_iter().map(Dynamic::from).collect::<Array>().into()).unwrap_or(Dynamic::UNIT) };
        m.insert("cmd".into(), strs(c.cmd));
        m.insert("entrypoint".into(), strs(c.entrypoint));
        m.insert("env".into(), c.env.into_iter().map(Dynamic::from).collect::<Array>().into());
        m.insert("workdir".into(), c.working_dir.into());
        m.insert("exposed_ports".into(), c.exposed_ports.keys().cloned().map(Dynamic::from).collect::<Array>().into());
        m.insert("user".into(), c.user.into());
        m.insert("labels".into(), c.labels.into_iter().map(|(k, v)| (k.into(), Dynamic::from(v))).collect::<Map>().into());
        Ok(m)
    });
    r.register_fn("history", |i: &mut Image| -> RResult<Array> {
        let (_, lines) = i.engine.history(&i.id).map_err(eng)?;
        Ok(lines.into_iter().map(|h| {
            let mut m = Map::new();
            m.insert("created".into(), h.created.into());
            m.insert("created_by".into(), h.created_by.into());
            m.insert("size".into(), (h.size as i64).into());
            m.insert("comment".into(), h.comment.into());
            m.insert("empty_layer".into(), h.empty_layer.into());
            Dynamic::from(m)
        }).collect())
    });
    r.register_fn("remove", |i: &mut Image| -> RResult<()> { i.engine.image_remove(&i.id, false).map(|_| ()).map_err(eng) });
    r.register_fn("tag", |i: &mut Image, t: &str| -> RResult<()> { i.engine.tag(&i.id, t).map(|_| ()).map_err(eng) });
    r.register_fn("push", |i: &mut Image, t: &str| -> RResult<String> {
        // Pushing under a name the image does not have yet tags it first,
        // as `docker tag` + `docker push` would.
        if !i.get()?.tags.iter().any(|x| crate::image::Reference::parse(t).ok().and_then(|r| r.tag_key()).as_deref() == Some(x.as_str())) {
            i.engine.tag(&i.id, t).map_err(eng)?;
        }
        i.engine.push(t, progress()).map_err(eng)
    });
    let e = engine.clone();
    r.register_fn("pull", move |name: &str| -> RResult<Image> {
        let i = e.pull(name, progress()).map_err(eng)?;
        Ok(Image { engine: e.clone(), id: i.id })
    });
    r.register_fn("to_string", |i: &mut Image| format!("Image({})", i.id.trim_start_matches("sha256:").get(..12).unwrap_or("")));

    // ---- containers ----
    let e = engine.clone();
    let (lb, nt) = (label.clone(), note.clone());
    let nm = names.clone();
    let run = move |image: &str, opts: Map| -> RResult<Container> {
        let mut spec = run_spec(image, &opts)?;
        nm.spec(&mut spec);
        lb(&mut spec);
        let (c, _) = e.run(&spec, Attach::Detached).map_err(eng)?;
        nt(Created::Container(c.id.clone()));
        Ok(Container { engine: e.clone(), id: c.id })
    };
    let ru = run.clone();
    r.register_fn("run", move |image: &str| ru(image, Map::new()));
    r.register_fn("run", run);
    let e = engine.clone();
    let lb = label.clone();
    let nm = names.clone();
    let run_once = move |image: &str, cmd: Array, opts: Map| -> RResult<Map> {
        let mut spec = run_spec(image, &opts)?;
        nm.spec(&mut spec);
        lb(&mut spec);
        spec.cmd = Some(strings(&Dynamic::from(cmd), "cmd")?);
        spec.rm = true;
        let (_, o) = e.run(&spec, Attach::Capture).map_err(eng)?;
        Ok(output_map(&o))
    };
    let ro = run_once.clone();
    r.register_fn("run_once", move |image: &str, cmd: Array| ro(image, cmd, Map::new()));
    r.register_fn("run_once", run_once);
    let e = engine.clone();
    let (lb, nt) = (label.clone(), note.clone());
    let nm = names.clone();
    r.register_fn("run_all", move |specs: Array| -> RResult<Array> {
        let specs: Vec<RunSpec> = specs
            .into_iter()
            .map(|s| {
                let m = s.try_cast::<Map>().ok_or_else(|| rerr("run_all takes an array of option maps, each with an image"))?;
                let img = m.get("image").and_then(|i| i.clone().into_string().ok()).ok_or_else(|| rerr("each run_all spec needs an image"))?;
                let mut spec = run_spec(&img, &m)?;
                nm.spec(&mut spec);
                lb(&mut spec);
                Ok(spec)
            })
            .collect::<RResult<_>>()?;
        let results: Vec<Result<String, String>> = std::thread::scope(|sc| {
            let hs: Vec<_> = specs.iter().map(|s| sc.spawn(|| e.run(s, Attach::Detached).map(|(c, _)| c.id).map_err(|x| x.to_string()))).collect();
            hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("panicked".into()))).collect()
        });
        for id in results.iter().flatten() {
            nt(Created::Container(id.clone()));
        }
        let mut out = Array::new();
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(id) => out.push(Dynamic::from(Container { engine: e.clone(), id })),
                Err(msg) => return Err(rerr(format!("run_all: spec {i}: {msg}"))),
            }
        }
        Ok(out)
    });
    let e = engine.clone();
    let nm = names.clone();
    r.register_fn("container", move |name: &str| -> RResult<Container> {
        let c = e.container(&nm.resolve(Kind::Container, name)).map_err(eng)?;
        Ok(Container { engine: e.clone(), id: c.id })
    });
    let e = engine.clone();
    let containers = move |opts: Map| -> RResult<Array> {
        let all = opts.get("all").and_then(|a| a.as_bool().ok()).unwrap_or(false);
        let label = opts.get("label").map(|l| l.to_string());
        Ok(e.containers(all)
            .map_err(eng)?
            .into_iter()
            .filter(|c| match &label {
                None => true,
                Some(l) => match l.split_once('=') {
                    Some((k, v)) => c.spec.labels.get(k).map(String::as_str) == Some(v),
                    None => c.spec.labels.contains_key(l.as_str()),
                },
            })
            .map(|c| Dynamic::from(Container { engine: e.clone(), id: c.id }))
            .collect())
    };
    let cs = containers.clone();
    r.register_fn("containers", move || cs(Map::new()));
    r.register_fn("containers", containers);

    r.register_get("id", |c: &mut Container| c.id.clone());
    r.register_get("name", |c: &mut Container| -> RResult<String> { Ok(c.get()?.name) });
    r.register_get("state", |c: &mut Container| -> RResult<String> { Ok(c.get()?.state) });
    r.register_get("exit_code", |c: &mut Container| -> RResult<i64> { Ok(c.get()?.exit_code as i64) });
    r.register_get("pid", |c: &mut Container| -> RResult<i64> { Ok(c.get()?.pid as i64) });
    r.register_get("ip", |c: &mut Container| -> RResult<String> {
        Ok(c.engine.endpoints(&c.id).map_err(eng)?.first().map(|e| e.ip.to_string()).unwrap_or_default())
    });
    r.register_get("ips", |c: &mut Container| -> RResult<Map> {
        Ok(c.engine.endpoints(&c.id).map_err(eng)?.into_iter().map(|e| (e.network.name.into(), Dynamic::from(e.ip.to_string()))).collect())
    });
    r.register_get("health", |c: &mut Container| -> RResult<String> {
        let x = c.get()?;
        Ok(if x.health.status.is_empty() || !x.running() { "none".into() } else { x.health.status })
    });
    r.register_get("image", |c: &mut Container| -> RResult<String> { Ok(c.get()?.image_ref) });
    r.register_get("labels", |c: &mut Container| -> RResult<Map> { Ok(c.get()?.spec.labels.into_iter().map(|(k, v)| (k.into(), Dynamic::from(v))).collect()) });
    r.register_fn("start", |c: &mut Container| -> RResult<()> { c.engine.start(&c.id).map(|_| ()).map_err(eng) });
    r.register_fn("stop", |c: &mut Container| -> RResult<()> { c.engine.stop(&c.id, None).map(|_| ()).map_err(eng) });
    r.register_fn("stop", |c: &mut Container, t: i64| -> RResult<()> { c.engine.stop(&c.id, Some(t.max(0) as u64)).map(|_| ()).map_err(eng) });
    r.register_fn("kill", |c: &mut Container| -> RResult<()> { c.engine.kill(&c.id, "KILL").map(|_| ()).map_err(eng) });
    r.register_fn("kill", |c: &mut Container, s: &str| -> RResult<()> { c.engine.kill(&c.id, s).map(|_| ()).map_err(eng) });
    r.register_fn("restart", |c: &mut Container| -> RResult<()> { c.engine.restart(&c.id, None).map(|_| ()).map_err(eng) });
    r.register_fn("pause", |c: &mut Container| -> RResult<()> { c.engine.pause(&c.id).map(|_| ()).map_err(eng) });
    r.register_fn("unpause", |c: &mut Container| -> RResult<()> { c.engine.unpause(&c.id).map(|_| ()).map_err(eng) });
    r.register_fn("wait", |c: &mut Container| -> RResult<i64> { c.engine.wait(&c.id).map(|x| x as i64).map_err(eng) });
    r.register_fn("logs", |c: &mut Container| -> RResult<String> { Ok(c.engine.logs(&c.id).map_err(eng)?.into_iter().map(|l| l.text).collect()) });
    r.register_fn("inspect", |c: &mut Container| -> RResult<Dynamic> {
        let x = c.get()?;
        Ok(json_to_dynamic(&c.engine.container_inspect(&x)))
    });
    r.register_fn("stats", |c: &mut Container| -> RResult<Map> {
        let s = c.engine.stats(std::slice::from_ref(&c.id), std::time::Duration::from_millis(500)).map_err(eng)?.pop().ok_or_else(|| rerr("no stats"))?;
        let mut m = Map::new();
        m.insert("cpu_percent".into(), Dynamic::from_float(s.cpu_percent));
        m.insert("memory_percent".into(), Dynamic::from_float(s.memory_percent));
        for (k, v) in [("memory_bytes", s.memory_bytes), ("memory_limit", s.memory_limit), ("pids", s.pids), ("net_rx", s.net_rx), ("net_tx", s.net_tx), ("block_read", s.block_read), ("block_write", s.block_write)] {
            m.insert(k.into(), Dynamic::from_int(v as i64));
        }
        Ok(m)
    });
    r.register_fn("diff", |c: &mut Container| -> RResult<Array> {
        Ok(c.engine.diff(&c.id).map_err(eng)?.into_iter().map(|ch| {
            let mut m = Map::new();
            m.insert("kind".into(), ch.kind.to_string().into());
            m.insert("path".into(), ch.path.into());
            Dynamic::from(m)
        }).collect())
    });
    // `export` is a Rhai keyword, so the method is export_to.
    r.register_fn("export_to", |c: &mut Container, path: &str| -> RResult<()> {
        let tmp = format!("{path}.berth-partial");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| rerr(format!("export: creating {path}: {e}")))?);
        let r = c.engine.export(&c.id, &mut f).map_err(eng).and_then(|_| std::io::Write::flush(&mut f).map_err(|e| rerr(format!("export: writing {path}: {e}"))));
        drop(f);
        match r {
            Ok(()) => std::fs::rename(&tmp, path).map_err(|e| rerr(format!("export: {path}: {e}"))),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    });
    let commit = |c: &mut Container, tag: &str, o: Map| -> RResult<Image> {
        let mut opts = crate::changes::CommitOptions { tag: (!tag.is_empty()).then(|| tag.to_string()), pause: true, ..Default::default() };
        for (k, v) in &o {
            match k.as_str() {
                "changes" => opts.changes = strings(v, "changes")?,
                "message" => opts.message = v.to_string(),
                "author" => opts.author = v.to_string(),
                "pause" => opts.pause = v.as_bool().map_err(|_| rerr("commit option pause must be true or false"))?,
                other => return Err(rerr(format!("unknown commit option {other:?}; known: changes, message, author, pause"))),
            }
        }
        let i = c.engine.commit(&c.id, &opts).map_err(eng)?;
        Ok(Image { engine: c.engine.clone(), id: i.id })
    };
    r.register_fn("commit", move |c: &mut Container, tag: &str| commit(c, tag, Map::new()));
    r.register_fn("commit", commit);
    r.register_fn("update", |c: &mut Container, o: Map| -> RResult<()> {
        let mut u = crate::container::Update::default();
        for (k, v) in &o {
            match k.as_str() {
                "memory" => u.memory = Some(if let Ok(n) = v.as_int() { n } else { crate::parse::memory(&v.to_string()).map_err(rerr)? }),
                "cpus" => u.cpus = Some(v.as_float().or_else(|_| v.as_int().map(|i| i as f64)).map_err(|_| rerr("update option cpus must be a number such as 0.5"))?),
                "pids_limit" => u.pids_limit = Some(v.as_int().map_err(|_| rerr("update option pids_limit must be an integer"))?),
                "restart" => u.restart = Some(RestartPolicy::parse(&v.to_string()).map_err(rerr)?),
                other => return Err(rerr(format!("unknown update option {other:?}; known: memory, cpus, pids_limit, restart"))),
            }
        }
        c.engine.update(&c.id, &u).map(|_| ()).map_err(eng)
    });
    r.register_fn("exec", |c: &mut Container, cmd: Array| -> RResult<Map> {
        let args = strings(&Dynamic::from(cmd), "cmd")?;
        let o = c.engine.exec(&c.id, ExecOptions { args, env: vec![], workdir: None, user: None, tty: false, interactive: false, privileged: false }, true).map_err(eng)?;
        Ok(output_map(&o))
    });
    r.register_fn("copy_to", |c: &mut Container, local: &str, inside: &str| -> RResult<()> { c.engine.copy(local, &format!("{}:{inside}", c.id)).map_err(eng) });
    r.register_fn("copy_from", |c: &mut Container, inside: &str, local: &str| -> RResult<()> { c.engine.copy(&format!("{}:{inside}", c.id), local).map_err(eng) });
    let wait_port = |c: &mut Container, port: i64, opts: Map| -> RResult<()> {
        let deadline = Instant::now() + timeout_of(&opts);
        loop {
            let x = c.get()?;
            if x.state == "running" && listening(x.pid, port as u16) {
                return Ok(());
            }
            if !x.running() && x.state != "restarting" {
                return Err(rerr(format!("wait_for_port({port}): container {} is {} (exit code {})", x.name, x.state, x.exit_code)));
            }
            if Instant::now() > deadline {
                return Err(rerr(format!("wait_for_port({port}): nothing listens on port {port} in container {} after {:?}", x.name, timeout_of(&opts))));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The host port published for a container port, as Testcontainers'
    // getMappedPort: `publish: ["80"]` picks a free one.
    fn host_port(c: &Container, port: u16, proto: &str) -> RResult<i64> {
        let ps = c.engine.ports(&c.id).map_err(eng)?;
        match ps.iter().find(|p| p.container_port == port && p.proto == proto) {
            Some(p) => Ok(p.host_port as i64),
            None => {
                let have: Vec<String> = ps.iter().map(|p| format!("{}/{}", p.container_port, p.proto)).collect();
                let name = c.get().map(|x| x.name).unwrap_or_else(|_| c.id.clone());
                Err(rerr(format!(
                    "container {name}: port {port}/{proto} is not published ({}); publish it with publish: [\"{port}{}\"]",
                    if have.is_empty() { "nothing is".to_string() } else { format!("published: {}", have.join(", ")) },
                    if proto == "udp" { "/udp" } else { "" }
                )))
            }
        }
    }
    fn port_spec(spec: &str) -> RResult<(u16, String)> {
        let (p, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
        let proto = proto.to_ascii_lowercase();
        match (p.parse::<u16>(), proto.as_str()) {
            (Ok(n), "tcp" | "udp") if n > 0 => Ok((n, proto)),
            _ => Err(rerr(format!("port({spec:?}): expected a port number, optionally with /tcp or /udp (\"53/udp\")"))),
        }
    }
    r.register_fn("port", |c: &mut Container, port: i64| -> RResult<i64> {
        let p = u16::try_from(port).map_err(|_| rerr(format!("port({port}): not a port number")))?;
        host_port(c, p, "tcp")
    });
    r.register_fn("port", |c: &mut Container, spec: &str| -> RResult<i64> {
        let (p, proto) = port_spec(spec)?;
        host_port(c, p, &proto)
    });
    r.register_fn("url", |c: &mut Container, port: i64| -> RResult<String> {
        let p = u16::try_from(port).map_err(|_| rerr(format!("url({port}): not a port number")))?;
        Ok(format!("http://127.0.0.1:{}", host_port(c, p, "tcp")?))
    });
    let wp = wait_port;
    r.register_fn("wait_for_port", move |c: &mut Container, port: i64| wp(c, port, Map::new()));
    r.register_fn("wait_for_port", wait_port);
    let wait_log = |c: &mut Container, text: &str, opts: Map| -> RResult<()> {
        let deadline = Instant::now() + timeout_of(&opts);
        loop {
            let logs: String = c.engine.logs(&c.id).map_err(eng)?.into_iter().map(|l| l.text).collect();
            if logs.contains(text) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let tail: Vec<&str> = logs.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
                return Err(rerr(format!("wait_for_log({text:?}) timed out after {:?}; last log lines: {tail:?}", timeout_of(&opts))));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let wl = wait_log;
    r.register_fn("wait_for_log", move |c: &mut Container, t: &str| wl(c, t, Map::new()));
    r.register_fn("wait_for_log", wait_log);
    r.register_fn("remove", |c: &mut Container| -> RResult<()> { c.engine.remove(&c.id, false).map(|_| ()).map_err(eng) });
    r.register_fn("remove", |c: &mut Container, opts: Map| -> RResult<()> {
        let flag = |k: &str| opts.get(k).and_then(|f| f.as_bool().ok()).unwrap_or(false);
        c.engine.remove_with(&c.id, flag("force"), flag("volumes")).map(|_| ()).map_err(eng)
    });
    let nm = names.clone();
    let connect = move |c: &mut Container, n: &str, o: Map| -> RResult<()> {
        let ip = o.get("ip").map(|v| v.to_string());
        let mut aliases = match o.get("aliases") {
            Some(a) => strings(a, "aliases")?,
            None => vec![],
        };
        let net = nm.resolve(Kind::Network, n);
        // On the scope's network the container answers to its written name.
        if let Some(s) = &nm.scope
            && net != n
            && let Some(w) = c.get()?.name.strip_suffix(&format!(".{s}")).map(str::to_string)
            && !aliases.contains(&w)
        {
            aliases.push(w);
        }
        c.engine.network_connect(&net, &c.id, ip.as_deref(), &aliases).map_err(eng)
    };
    let co = connect.clone();
    r.register_fn("connect", move |c: &mut Container, n: &str| co(c, n, Map::new()));
    r.register_fn("connect", connect);
    let nm = names.clone();
    r.register_fn("disconnect", move |c: &mut Container, n: &str| -> RResult<()> { c.engine.network_disconnect(&nm.resolve(Kind::Network, n), &c.id).map_err(eng) });

    // ---- networks ----
    r.register_type_with_name::<Network>("Network");
    let e = engine.clone();
    let ex = extra.clone();
    let nt = note.clone();
    let nm = names.clone();
    let network = move |name: &str, opts: Map| -> RResult<Network> {
        let real = nm.resolve(Kind::Network, name);
        let name = real.as_str();
        let mut subnet = None;
        let mut gateway = None;
        let mut labels = std::collections::BTreeMap::new();
        for (k, v) in &opts {
            match k.as_str() {
                "subnet" => subnet = Some(v.to_string()),
                "gateway" => gateway = Some(v.to_string()),
                "labels" => labels = string_map(v, "labels")?,
                other => return Err(rerr(format!("unknown network option {other:?}; known: subnet, gateway, labels"))),
            }
        }
        // An existing network with the same settings is returned as it is.
        if let Ok(n) = e.network(name)
            && n.name == name {
                if subnet.as_ref().is_some_and(|s| crate::network::ipam::Subnet::parse(s).map(|x| x.to_string()).ok().as_ref() != Some(&n.subnet)) {
                    return Err(rerr(format!("network {name} exists with subnet {}, not {}", n.subnet, subnet.unwrap_or_default())));
                }
                return Ok(Network { engine: e.clone(), id: n.id });
            }
        labels.extend(ex());
        let n = e.network_create(&crate::network::NetworkSpec { name: name.to_string(), subnet, gateway, labels }).map_err(eng)?;
        nt(Created::Network(n.id.clone()));
        Ok(Network { engine: e.clone(), id: n.id })
    };
    let nw = network.clone();
    r.register_fn("network", move |name: &str| nw(name, Map::new()));
    r.register_fn("network", network);
    let e = engine.clone();
    let networks = move |o: Map| -> RResult<Array> {
        let pick = label_filter(&o, "networks")?;
        Ok(e.networks().map_err(eng)?.into_iter().filter(|n| pick(&n.labels)).map(|n| Dynamic::from(Network { engine: e.clone(), id: n.id })).collect())
    };
    let nws = networks.clone();
    r.register_fn("networks", move || nws(Map::new()));
    r.register_fn("networks", networks);
    r.register_get("id", |n: &mut Network| n.id.clone());
    r.register_get("name", |n: &mut Network| -> RResult<String> { Ok(n.engine.network(&n.id).map_err(eng)?.name) });
    r.register_get("subnet", |n: &mut Network| -> RResult<String> { Ok(n.engine.network(&n.id).map_err(eng)?.subnet) });
    r.register_get("labels", |n: &mut Network| -> RResult<Map> { Ok(n.engine.network(&n.id).map_err(eng)?.labels.into_iter().map(|(k, v)| (k.into(), Dynamic::from(v))).collect()) });
    r.register_get("gateway", |n: &mut Network| -> RResult<String> { Ok(n.engine.network(&n.id).map_err(eng)?.gateway) });
    r.register_fn("containers", |n: &mut Network| -> RResult<Array> {
        Ok(n.engine.network_members(&n.id).map_err(eng)?.into_iter().map(|(id, _, _)| Dynamic::from(Container { engine: n.engine.clone(), id })).collect())
    });
    r.register_fn("remove", |n: &mut Network| -> RResult<()> { n.engine.network_remove(&n.id).map(|_| ()).map_err(eng) });
    // Each call sets the link's whole impairment; #{} removes it.
    r.register_fn("impair", |n: &mut Network, c: Container, o: Map| -> RResult<()> {
        use crate::network::impair::{self, Impairment};
        let mut imp = Impairment::default();
        // Numbers are taken in the unit a user would assume: ms, percent, bit/s.
        let text = |v: &Dynamic, unit: &str| -> String {
            if v.is_int() || v.is_float() {
                format!("{v}{unit}")
            } else {
                v.to_string()
            }
        };
        for (k, v) in &o {
            match k.as_str() {
                "delay" => imp.delay_us = impair::parse_duration(&text(v, "ms")).map_err(rerr)?,
                "jitter" => imp.jitter_us = impair::parse_duration(&text(v, "ms")).map_err(rerr)?,
                "loss" => imp.loss = impair::parse_loss(&text(v, "")).map_err(rerr)?,
                "rate" => imp.rate_bps = impair::parse_rate(&text(v, "bit")).map_err(rerr)?,
                other => return Err(rerr(format!("unknown impair option {other:?}; known: delay, jitter, loss, rate"))),
            }
        }
        n.engine.network_impair(&n.id, &c.id, Some(&imp)).map_err(eng)
    });
    r.register_fn("to_string", |n: &mut Network| format!("Network({})", &n.id[..12]));
    r.register_fn("to_string", |c: &mut Container| -> String { format!("Container({})", &c.id[..12]) });
    r.register_fn("==", |a: Container, b: Container| a.id == b.id);

    // ---- later areas: clear errors until they land ----
    let e = engine.clone();
    let nt = note.clone();
    let build = move |dir: &str, opts: Map| -> RResult<Image> {
        let mut o = crate::build::builder::BuildOptions {
            context: dir.into(),
            file: None,
            tag: None,
            args: Default::default(),
            target: None,
            no_cache: false,
            show_output: false,
        };
        for (k, v) in &opts {
            match k.as_str() {
                "tag" => o.tag = Some(v.to_string()),
                "file" => o.file = Some(v.to_string().into()),
                "target" => o.target = Some(v.to_string()),
                "no_cache" => o.no_cache = v.as_bool().map_err(|_| rerr("option no_cache must be true or false"))?,
                "args" => o.args = string_map(v, "args")?,
                "quiet" => o.show_output = !v.as_bool().unwrap_or(true),
                other => return Err(rerr(format!("unknown build option {other:?}; known: tag, file, args, target, no_cache, quiet"))),
            }
        }
        let (i, new) = e.build_new(&o).map_err(rerr)?;
        if new {
            nt(Created::Image(i.id.clone()));
        }
        Ok(Image { engine: e.clone(), id: i.id })
    };
    let b = build.clone();
    r.register_fn("build", move |dir: &str| b(dir, Map::new()));
    r.register_fn("build", build);
    // ---- volumes ----
    r.register_type_with_name::<Volume>("Volume");
    let e = engine.clone();
    let ex = extra.clone();
    let nt = note.clone();
    let nm = names.clone();
    let volume = move |name: &str, opts: Map| -> RResult<Volume> {
        let real = nm.resolve(Kind::Volume, name);
        let name = real.as_str();
        let mut labels = std::collections::BTreeMap::new();
        for (k, v) in &opts {
            match k.as_str() {
                "labels" => labels = string_map(v, k)?,
                other => return Err(rerr(format!("unknown volume option {other:?}; known: labels"))),
            }
        }
        let existed = e.volume(name).is_ok();
        labels.extend(ex());
        let v = e.volume_create(Some(name), &labels).map_err(eng)?;
        if !existed {
            nt(Created::Volume(v.name.clone()));
        }
        Ok(Volume { engine: e.clone(), name: v.name })
    };
    let vo = volume.clone();
    r.register_fn("volume", move |name: &str| vo(name, Map::new()));
    r.register_fn("volume", volume);
    let e = engine.clone();
    let volumes = move |o: Map| -> RResult<Array> {
        let pick = label_filter(&o, "volumes")?;
        Ok(e.volumes().map_err(eng)?.into_iter().filter(|v| pick(&v.labels)).map(|v| Dynamic::from(Volume { engine: e.clone(), name: v.name })).collect())
    };
    let vs = volumes.clone();
    r.register_fn("volumes", move || vs(Map::new()));
    r.register_fn("volumes", volumes);
    r.register_get("labels", |v: &mut Volume| -> RResult<Map> { Ok(v.engine.volume(&v.name).map_err(eng)?.labels.into_iter().map(|(k, x)| (k.into(), Dynamic::from(x))).collect()) });
    r.register_get("name", |v: &mut Volume| v.name.clone());
    r.register_get("path", |v: &mut Volume| -> RResult<String> { Ok(v.engine.volume(&v.name).map_err(eng)?.mountpoint.display().to_string()) });
    r.register_get("users", |v: &mut Volume| -> Array { v.engine.volume_users(&v.name).into_iter().map(Dynamic::from).collect() });
    r.register_fn("remove", |v: &mut Volume| -> RResult<()> { v.engine.volume_remove(&v.name).map_err(eng) });
    r.register_fn("to_string", |v: &mut Volume| format!("Volume({})", v.name));

    // ---- services ----
    r.register_type_with_name::<Service>("Service");
    let e = engine.clone();
    let ex = extra.clone();
    let nt = note.clone();
    let nm = names.clone();
    let service = move |name: &str, opts: Map| -> RResult<Service> {
        let written = name;
        let real = nm.resolve(Kind::Service, name);
        let name = real.as_str();
        let mut spec = service_spec(name, &opts)?;
        if let Some(net) = &spec.network {
            let net_real = nm.resolve(Kind::Network, net);
            // On the scope's network the VIP also answers to the written name.
            if net_real != *net && name != written && !spec.aliases.iter().any(|a| a == written) {
                spec.aliases.push(written.to_string());
            }
            spec.network = Some(net_real);
        }
        let template_name = spec.template.name.take();
        nm.spec(&mut spec.template);
        spec.template.name = template_name;
        if let Ok(s) = e.service(name) {
            let same = s.spec.template.image == spec.template.image && s.spec.replicas == spec.replicas;
            if !same {
                return Err(rerr(format!(
                    "service {name} exists with image {} and {} replica(s); use s.scale(n) or s.update(#{{ image }}), or remove it first",
                    s.spec.template.image, s.spec.replicas
                )));
            }
            return Ok(Service { engine: e.clone(), id: s.id });
        }
        spec.labels.extend(ex());
        spec.template.labels.extend(ex());
        let s = e.service_create(&spec).map_err(eng)?;
        nt(Created::Service(s.id.clone()));
        Ok(Service { engine: e.clone(), id: s.id })
    };
    let e = engine.clone();
    let nm = names.clone();
    r.register_fn("service", move |name: &str| -> RResult<Service> {
        let s = e.service(&nm.resolve(Kind::Service, name)).map_err(eng)?;
        Ok(Service { engine: e.clone(), id: s.id })
    });
    r.register_fn("service", service);
    let e = engine.clone();
    r.register_fn("services", move || -> RResult<Array> { Ok(e.services().map_err(eng)?.into_iter().map(|s| Dynamic::from(Service { engine: e.clone(), id: s.id })).collect()) });
    r.register_get("id", |s: &mut Service| s.id.clone());
    r.register_get("name", |s: &mut Service| -> RResult<String> { Ok(s.get()?.name) });
    r.register_get("replicas", |s: &mut Service| -> RResult<i64> { Ok(s.get()?.spec.replicas as i64) });
    r.register_get("image", |s: &mut Service| -> RResult<String> { Ok(s.get()?.spec.template.image) });
    r.register_get("vip", |s: &mut Service| -> RResult<String> { Ok(s.get()?.vip.to_string()) });
    r.register_fn("containers", |s: &mut Service| -> RResult<Array> {
        Ok(s.engine.service_replicas(&s.id).map_err(eng)?.into_iter().map(|(_, c)| Dynamic::from(Container { engine: s.engine.clone(), id: c.id })).collect())
    });
    r.register_fn("serving", |s: &mut Service| -> RResult<Array> {
        Ok(s.engine.service_serving(&s.id).map_err(eng)?.into_iter().map(|c| Dynamic::from(Container { engine: s.engine.clone(), id: c.id })).collect())
    });
    r.register_fn("scale", |s: &mut Service, n: i64| -> RResult<()> {
        if n < 0 {
            return Err(rerr(format!("scale({n}): a replica count is 0 or more")));
        }
        s.engine.service_scale(&s.id, n as u32).map(|_| ()).map_err(eng)
    });
    r.register_fn("update", |s: &mut Service, o: Map| -> RResult<()> {
        let mut u = crate::service::ops::ServiceUpdate::default();
        for (k, v) in &o {
            let ms = || v.as_int().map(|n| n.max(0) as u64).map_err(|_| rerr(format!("update option {k} must be a number of milliseconds")));
            match k.as_str() {
                "image" => u.image = Some(v.to_string()),
                "cmd" => u.cmd = Some(strings(v, "cmd")?),
                "env" => u.env = Some(if v.is_map() { string_map(v, "env")?.into_iter().map(|(a, b)| format!("{a}={b}")).collect() } else { strings(v, "env")? }),
                "parallelism" => u.parallelism = Some(v.as_int().map_err(|_| rerr("update option parallelism must be an integer"))?.max(1) as u32),
                "delay" => u.delay_ms = Some(ms()?),
                "monitor" => u.monitor_ms = Some(ms()?),
                other => return Err(rerr(format!("unknown update option {other:?}; known: image, cmd, env, parallelism, delay, monitor"))),
            }
        }
        s.engine.service_update(&s.id, &u).map(|_| ()).map_err(eng)
    });
    r.register_fn("remove", |s: &mut Service| -> RResult<()> { s.engine.service_remove(&s.id).map(|_| ()).map_err(eng) });
    r.register_fn("rollback", |s: &mut Service| -> RResult<()> {
        s.engine.service_update(&s.id, &crate::service::ops::ServiceUpdate { rollback: true, ..Default::default() }).map(|_| ()).map_err(eng)
    });
    r.register_fn("to_string", |s: &mut Service| format!("Service({})", &s.id[..12]));

    // ---- stacks ----
    r.register_type_with_name::<Stack>("Stack");
    let e = engine.clone();
    let nm = names.clone();
    let stack = move |name: &str, src: Dynamic| -> RResult<Stack> {
        let real = nm.scoped_with(name, '-');
        let name = real.as_str();
        let (plan, source) = if let Some(path) = src.clone().try_cast::<String>() {
            (crate::service::compose::parse_file(std::path::Path::new(&path)).map_err(rerr)?, path)
        } else if let Some(m) = src.clone().try_cast::<Map>() {
            let v: serde_json::Value = rhai::serde::from_dynamic(&Dynamic::from(m)).map_err(|e| rerr(format!("stack {name}: {e}")))?;
            let base = std::env::current_dir().unwrap_or_default();
            (crate::service::compose::parse(&v, &format!("stack {name}"), &base).map_err(rerr)?, "(map)".to_string())
        } else {
            return Err(rerr(format!("stack({name:?}, ...) takes a compose file path or a map such as #{{ services: #{{ web: #{{ image: \"busybox\" }} }} }}")));
        };
        for w in &plan.warnings {
            eprintln!("warning: {w}");
        }
        Ok(Stack { engine: e.clone(), name: name.to_string(), plan: Arc::new(plan), source })
    };
    r.register_fn("stack", stack);
    let e = engine.clone();
    r.register_fn("stacks", move || -> RResult<Array> { Ok(e.stacks().map_err(eng)?.into_iter().map(|s| Dynamic::from(s.name)).collect()) });
    r.register_get("name", |s: &mut Stack| s.name.clone());
    let ex = extra.clone();
    let nt = note.clone();
    r.register_fn("up", move |s: &mut Stack| -> RResult<Array> {
        let made = s.engine.stack_deploy(&s.name, &s.plan, &s.source, &ex()).map_err(eng)?;
        nt(Created::Stack(s.name.clone()));
        Ok(made.into_iter().map(|x| Dynamic::from(Service { engine: s.engine.clone(), id: x.id })).collect())
    });
    r.register_fn("services", |s: &mut Stack| -> RResult<Array> {
        Ok(s.engine.stack_services(&s.name).map_err(eng)?.into_iter().map(|x| Dynamic::from(Service { engine: s.engine.clone(), id: x.id })).collect())
    });
    r.register_fn("service", |s: &mut Stack, short: &str| -> RResult<Service> {
        let full = format!("{}_{short}", s.name);
        let x = s.engine.service(&full).map_err(eng)?;
        Ok(Service { engine: s.engine.clone(), id: x.id })
    });
    r.register_fn("down", |s: &mut Stack| -> RResult<()> { s.engine.stack_remove(&s.name).map(|_| ()).map_err(eng) });
    r.register_fn("to_string", |s: &mut Stack| format!("Stack({})", s.name));
    // events(#{ since, until, filter: #{ type, event, container, ... } }):
    // the recorded ones, at once (a script does not block on a stream).
    let e = engine.clone();
    let events = move |o: Map| -> RResult<Array> {
        let time = |k: &str| -> RResult<Option<f64>> {
            match o.get(k) {
                None => Ok(None),
                Some(v) if v.is_int() => Ok(Some(v.as_int().unwrap_or(0) as f64)),
                Some(v) if v.is_float() => Ok(Some(v.as_float().unwrap_or(0.0))),
                Some(v) => crate::events::parse_time(&v.to_string()).map(Some).map_err(|m| rerr(format!("events option {k}: {m}"))),
            }
        };
        let mut f = crate::events::Filter::default();
        for (k, _) in &o {
            if !matches!(k.as_str(), "since" | "until" | "filter") {
                return Err(rerr(format!("unknown events option {k:?}; known: since, until, filter")));
            }
        }
        if let Some(m) = o.get("filter") {
            let m = m.clone().try_cast::<Map>().ok_or_else(|| rerr("events option filter must be a map such as #{ type: \"container\", event: \"start\" }"))?;
            for (k, v) in &m {
                let vals = if v.is_array() { strings(v, "filter")? } else { vec![v.to_string()] };
                for x in vals {
                    f.add(&format!("{k}={x}")).map_err(rerr)?;
                }
            }
        }
        let (since, until) = (time("since")?, time("until")?);
        Ok(e.events(since, until, &f)
            .into_iter()
            .map(|ev| {
                let mut m = Map::new();
                m.insert("type".into(), ev.typ.clone().into());
                m.insert("action".into(), ev.action.clone().into());
                m.insert("id".into(), ev.actor.id.clone().into());
                m.insert("name".into(), ev.actor.attributes.get("name").cloned().unwrap_or_default().into());
                m.insert("attributes".into(), ev.actor.attributes.iter().map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone()))).collect::<Map>().into());
                m.insert("time".into(), Dynamic::from_float(ev.time_nano as f64 / 1e9));
                Dynamic::from(m)
            })
            .collect())
    };
    let ev = events.clone();
    r.register_fn("events", move || ev(Map::new()));
    r.register_fn("events", events);
    let e = engine.clone();
    r.register_fn("system_df", move || -> RResult<Dynamic> { rhai::serde::to_dynamic(e.df().map_err(eng)?) });
    let e = engine.clone();
    r.register_fn("system_reset", move || -> RResult<Dynamic> { rhai::serde::to_dynamic(e.reset().map_err(eng)?) });
    let e = engine.clone();
    r.register_fn("system_info", move || -> RResult<Dynamic> { rhai::serde::to_dynamic(e.info().map_err(eng)?) });
    let e = engine.clone();
    let prune = move |o: Map| -> RResult<Dynamic> {
        let mut all = false;
        let mut volumes = false;
        for (k, v) in &o {
            let b = v.as_bool().map_err(|_| rerr(format!("prune option {k} must be true or false")))?;
            match k.as_str() {
                "all" => all = b,
                "volumes" => volumes = b,
                other => return Err(rerr(format!("unknown prune option {other:?}; known: all, volumes"))),
            }
        }
        rhai::serde::to_dynamic(e.prune(all, volumes).map_err(eng)?)
    };
    let pr = prune.clone();
    r.register_fn("prune", move || pr(Map::new()));
    r.register_fn("prune", prune);

    // ---- script utilities ----
    r.register_fn("sleep", |ms: i64| std::thread::sleep(Duration::from_millis(ms.max(0) as u64)));
    r.register_fn("env", |name: &str| -> Dynamic { std::env::var(name).map(Dynamic::from).unwrap_or(Dynamic::UNIT) });
    r.register_fn("assert", |c: bool, msg: &str| -> RResult<()> { if c { Ok(()) } else { Err(rerr(format!("assertion failed: {msg}"))) } });
    r.register_fn("assert", |c: bool| -> RResult<()> { if c { Ok(()) } else { Err(rerr("assertion failed")) } });
    let same = |a: &Dynamic, b: &Dynamic| a.to_string() == b.to_string() && a.type_name() == b.type_name();
    let eq = move |a: Dynamic, b: Dynamic, msg: &str| -> RResult<()> {
        if same(&a, &b) { Ok(()) } else { Err(rerr(format!("assert_eq failed{}: left {a:?} ({}), right {b:?} ({})", if msg.is_empty() { String::new() } else { format!(" ({msg})") }, a.type_name(), b.type_name()))) }
    };
    let ne = move |a: Dynamic, b: Dynamic, msg: &str| -> RResult<()> {
        if !same(&a, &b) { Ok(()) } else { Err(rerr(format!("assert_ne failed{}: both are {a:?}", if msg.is_empty() { String::new() } else { format!(" ({msg})") }))) }
    };
    r.register_fn("assert_eq", move |a: Dynamic, b: Dynamic| eq(a, b, ""));
    r.register_fn("assert_eq", eq);
    r.register_fn("assert_ne", move |a: Dynamic, b: Dynamic| ne(a, b, ""));
    r.register_fn("assert_ne", ne);
    r.register_fn("wait_for", |ctx: NativeCallContext, f: FnPtr, ms: i64| -> RResult<Dynamic> {
        let deadline = Instant::now() + Duration::from_millis(ms.max(0) as u64);
        loop {
            let v: Dynamic = f.call_within_context(&ctx, ())?;
            let ok = v.as_bool().unwrap_or(!v.is_unit());
            if ok {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(rerr(format!("wait_for timed out after {ms} ms; last value: {v:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let http_get = |url: &str, opts: Map| -> RResult<Map> {
        for k in opts.keys() {
            if k.as_str() != "timeout" {
                return Err(rerr(format!("unknown http_get option {k:?}; known: timeout (ms)")));
            }
        }
        let t = Duration::from_millis(opts.get("timeout").and_then(|t| t.as_int().ok()).unwrap_or(10_000).max(1) as u64);
        let resp = http::get(url, t).map_err(rerr)?;
        let mut m = Map::new();
        m.insert("status".into(), (resp.status as i64).into());
        m.insert("body".into(), String::from_utf8_lossy(&resp.body).into_owned().into());
        m.insert("headers".into(), resp.headers.into_iter().map(|(k, v)| (k.into(), Dynamic::from(v))).collect::<Map>().into());
        Ok(m)
    };
    r.register_fn("http_get", move |url: &str| http_get(url, Map::new()));
    r.register_fn("http_get", http_get);
    // A skipped test ends by this error; the runner tells it from a failure.
    r.register_fn("skip", |reason: &str| -> RResult<()> {
        let mut m = Map::new();
        m.insert(SKIP_KEY.into(), reason.into());
        Err(Box::new(EvalAltResult::ErrorRuntime(m.into(), Position::NONE)))
    });
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

