//! `help()` and `help("Type")`: the catalogue of functions and members with
//! one-line descriptions, shared by the REPL's completion.
//!
//! The catalogue is written by hand (the engine's metadata has no prose);
//! whatever the engine registers without an entry here still shows up in
//! `help`, under "not described yet", so the listing never hides a function.

use std::any::TypeId;
use std::collections::BTreeSet;

use rhai::{Dynamic, EvalAltResult, Position};

/// One function, method or property. `owner` is "" for a global function,
/// a type name ("Container") for a member, or a module name ("lab").
pub struct Entry {
    pub owner: &'static str,
    pub name: &'static str,
    /// How it is called: `run(image, [opts]) -> Container`; a property has
    /// no parentheses: `name -> string`.
    pub sig: &'static str,
    pub doc: &'static str,
    /// Options and details for `help("name")`; may be empty.
    pub more: &'static str,
}

impl Entry {
    pub fn is_property(&self) -> bool {
        !self.sig.contains('(')
    }

    /// The type a call returns, from the signature (`-> Container`).
    pub fn returns(&self) -> Option<&'static str> {
        self.sig.rsplit_once("-> ").map(|(_, t)| t.trim())
    }
}

/// A catalogue entry (short name: the table below is long).
const fn e(owner: &'static str, name: &'static str, sig: &'static str, doc: &'static str) -> Entry {
    Entry { owner, name, sig, doc, more: "" }
}

/// A catalogue entry with details for `help(name)`.
const fn x(owner: &'static str, name: &'static str, sig: &'static str, doc: &'static str, more: &'static str) -> Entry {
    Entry { owner, name, sig, doc, more }
}

/// Types and modules with a description, in the order `help()` names them.
pub const TYPES: &[(&str, &str)] = &[
    ("Container", "a handle to a container; copies refer to the same container and getters read live state"),
    ("Image", "a handle to a stored image"),
    ("Network", "a bridge network; containers join it with run(.., #{ network }) or c.connect()"),
    ("Volume", "a named volume; mount it with run(.., #{ volumes: [\"name:/path\"] })"),
    ("Service", "replicas of one container spec behind a virtual IP, balanced over the healthy ones"),
    ("Stack", "services, networks and volumes from a compose file or map, deployed by up()"),
    ("Result", "the map a command returns: #{ code, stdout, stderr } (c.exec, run_once)"),
    ("lab", "module: topologies of containers over per-link networks; import \"lab\" as lab;"),
    ("wait", "module: readiness conditions with timeouts; import \"wait\" as wait;"),
];

const RUN_OPTIONS: &str = "Options (all optional):
  name: \"c1\"                   container name (unique)
  cmd: [\"sleep\", \"60\"]         command, replaces the image's CMD
  entrypoint: [\"sh\", \"-c\"]     replaces the image's ENTRYPOINT
  env: #{ A: \"1\" }             environment (or [\"A=1\"])
  workdir: \"/\"  hostname: \"h1\"  user: \"1000:1000\"
  labels: #{ role: \"db\" }      labels, for containers(#{ label: \"role=db\" })
  network: \"labnet\"  ip: \"192.168.13.4\"  aliases: [\"db\"]
  publish: [\"8000:80\"]  publish_all: true
  volumes: [\"data:/data\", \"/srv/x:/x:ro\"]  volumes_from: [\"c0\"]
  memory: \"64m\"  cpus: 0.5  pids_limit: 64  cgroup_parent: \"lab\"
  devices: [\"/dev/loop0\", \"/dev/sdb:/dev/xvdb:r\"]  host devices, HOST[:CONTAINER[:PERMS]]
  restart: \"no\" | \"always\" | \"on-failure[:N]\"
  cap_add: [\"NET_ADMIN\"]  cap_drop: [\"MKNOD\"]  privileged: false
  sysctls: #{ \"net.ipv4.ip_forward\": \"1\" }  stop_signal: \"SIGTERM\"  stop_timeout: 10 (seconds)
  rm: false  tty: false
  health: #{ cmd: [\"test\", \"-f\", \"/ready\"], interval: 1000, timeout: 1000, start_period: 0, retries: 3 }
Example: let c = run(\"busybox\", #{ name: \"c1\", cmd: [\"sleep\", \"300\"] });";

const WAIT_TIMEOUT: &str = "Options: #{ timeout: ms } (default 30000).";

const WAIT_OPTIONS: &str = "Options: timeout (ms, default 30000), interval (ms between polls, default 100).
On timeout the error names what was awaited and the last thing seen.";

const LAB_OPTIONS: &str = "Options: run()'s options for every node (image defaults to busybox, cmd to sleep infinity);
name, network and ip are set by the lab. Nodes are <name>-n0.., networks <name>-l0..,
all labelled berth.lab=<name> so lab::down(name) finds them.
Example: import \"lab\" as lab; let l = lab::chain(\"demo\", 3, #{}); lab::show(lab::pingall(l.nodes), l.nodes);";

/// The catalogue: globals first, then each type's members, then modules.
pub static CATALOGUE: &[Entry] = &[
    // ---- images ----
    e("", "image", "image(ref) -> Image", "an existing image by reference (name:tag) or id"),
    e("", "images", "images() -> [Image]", "the stored images, as `berth images` lists them"),
    e("", "import", "import(path, tag) -> Image", "an image from a root filesystem tarball"),
    e("", "pull", "pull(ref) -> Image", "pulls an image from a registry (progress bars on a terminal)"),
    x("", "build", "build(dir, [opts]) -> Image", "builds the Dockerfile in dir",
      "Options: tag: \"web:lab\", file: \"Dockerfile\", args: #{ V: \"1\" }, target: \"stage\", no_cache: true, quiet: false.\nExample: let web = build(\"examples/web\", #{ tag: \"web:lab\" });"),
    // ---- containers ----
    x("", "run", "run(image, [opts]) -> Container", "creates and starts a container, detached", RUN_OPTIONS),
    x("", "run_once", "run_once(image, cmd, [opts]) -> Result", "runs cmd to completion, removes the container, returns #{ code, stdout, stderr }",
      "Options: as run().\nExample: let r = run_once(\"busybox\", [\"echo\", \"hi\"]); r.stdout"),
    x("", "run_all", "run_all(specs) -> [Container]", "starts several containers concurrently",
      "Each spec is run()'s option map plus image.\nExample: run_all([#{ image: \"busybox\", name: \"n1\" }, #{ image: \"busybox\", name: \"n2\" }])"),
    e("", "container", "container(name) -> Container", "an existing container by name or id"),
    x("", "containers", "containers([opts]) -> [Container]", "running containers, as `berth ps` lists them",
      "Options: all: true (stopped ones too), label: \"role=db\" (or just \"role\")."),
    // ---- networks and volumes ----
    x("", "network", "network(name, [opts]) -> Network", "the named network, created when missing",
      "Options: subnet: \"192.168.13.0/24\", gateway: \"192.168.13.1\", labels: #{ k: \"v\" }.\nAn existing network is returned when its settings match; a different subnet is an error."),
    e("", "networks", "networks([#{ label }]) -> [Network]", "all networks, or those with a label (\"k\" or \"k=v\")"),
    x("", "volume", "volume(name, [opts]) -> Volume", "the named volume, created when missing", "Options: labels: #{ k: \"v\" }."),
    e("", "volumes", "volumes([#{ label }]) -> [Volume]", "all volumes, or those with a label (\"k\" or \"k=v\")"),
    // ---- services and stacks ----
    x("", "service", "service(name, [opts]) -> Service", "the named service; with opts, created when missing",
      "Options: image (required), replicas: 3, publish: [\"8080:80\"], network: \"labnet\",
service_labels: #{ k: \"v\" }, update: #{ parallelism, delay, monitor } (ms),
and run()'s options for every replica (restart defaults to always; name is the service's: NAME.1, NAME.2, ...).
An existing service is returned when image and replicas match; otherwise use s.scale(n) or s.update(..).
Example: let s = service(\"api\", #{ image: \"busybox\", replicas: 3, cmd: [\"httpd\", \"-f\", \"-p\", \"80\"], publish: [\"8080:80\"] });"),
    e("", "services", "services() -> [Service]", "all services"),
    x("", "stack", "stack(name, file_or_map) -> Stack", "reads a compose file (or a map of the same shape); up() deploys it",
      "Compose keys: services (image, build, command, entrypoint, environment, env_file, ports, volumes, networks,
depends_on with service_started/service_healthy/service_completed_successfully, healthcheck, restart,
deploy.replicas), networks (ipam subnets), volumes. Objects are named NAME_SERVICE, NAME_NETWORK, ...
Example: let st = stack(\"shop\", \"examples/shop/compose.yaml\"); st.up(); ... st.down();"),
    e("", "stacks", "stacks() -> [string]", "the names of the deployed stacks"),
    // ---- system ----
    e("", "system_df", "system_df() -> Map", "disk usage, as `berth system df`"),
    e("", "events", "events([#{ since, until, filter }]) -> Array", "recorded events, oldest first: #{ type, action, id, name, attributes, time }; filter: #{ type: \"container\", event: \"start\", container: \"web\" }; since/until: Unix time, RFC 3339 or a duration before now (\"10m\")"),
    e("", "system_reset", "system_reset() -> Map", "removes everything this root holds, the default network too, as `berth system reset -f`; #{ containers, networks, volumes, images, ... } counts"),
    e("", "system_info", "system_info() -> Map", "host and engine facts, as `berth system info` (cgroup_version, cgroup_driver, kernel_version, ...)"),
    x("", "prune", "prune([opts]) -> Map", "removes stopped containers, unused networks and dangling images",
      "Options: all: true (every unused image), volumes: true (unused volumes too)."),
    // ---- script utilities ----
    e("", "sleep", "sleep(ms)", "pauses the script"),
    e("", "env", "env(name) -> string", "a host environment variable, or () when unset"),
    e("", "assert", "assert(cond, [message])", "fails the script (or test) when cond is false"),
    e("", "assert_eq", "assert_eq(a, b, [message])", "fails unless a and b have the same type and value"),
    e("", "assert_ne", "assert_ne(a, b, [message])", "fails when a and b have the same type and value"),
    x("", "wait_for", "wait_for(fn, ms) -> value", "calls fn every 50 ms until it returns true (or a value), fails on timeout",
      "Example: wait_for(|| c.logs().contains(\"ready\"), 5000);"),
    x("", "http_get", "http_get(url, [opts]) -> Map", "an HTTP GET: #{ status, body, headers }", "Options: timeout: ms (default 10000)."),
    e("", "test", "test(name, fn)", "a test case under `berth test`; its objects are removed after it"),
    e("", "before_each", "before_each(fn)", "under `berth test`: runs before each test of the file"),
    e("", "after_each", "after_each(fn)", "under `berth test`: runs after each test of the file, pass or fail"),
    e("", "before_all", "before_all(fn)", "under `berth test`: runs once before the file's first test; what it makes (a shared fixture) is removed after the last"),
    e("", "after_all", "after_all(fn)", "under `berth test`: runs once after the file's last test, pass or fail"),
    e("", "skip", "skip(reason)", "ends the current test as skipped"),
    e("", "TEST_ID", "TEST_ID -> string", "under berth test: six hex digits unique to this file's run, for names that must not clash with files run alongside (--jobs)"),
    x("", "help", "help([name])", "this listing; help(\"Container\") for a type, help(\"run\") for one function",
      "Types and modules: Container, Image, Network, Volume, Service, Stack, Result, lab, wait."),
    e("", "print", "print(value)", "prints a value on its own line"),
    // ---- Container ----
    e("Container", "id", "id -> string", "the full id"),
    e("Container", "name", "name -> string", "the container's name"),
    e("Container", "state", "state -> string", "\"created\", \"running\", \"paused\" or \"exited\""),
    e("Container", "exit_code", "exit_code -> int", "the exit code of the last run"),
    e("Container", "pid", "pid -> int", "the host pid of its init (0 when not running)"),
    e("Container", "ip", "ip -> string", "its address on the first network"),
    e("Container", "ips", "ips -> Map", "#{ network: address } for every network"),
    e("Container", "health", "health -> string", "\"none\", \"starting\", \"healthy\" or \"unhealthy\""),
    e("Container", "image", "image -> string", "the image reference it was created from"),
    e("Container", "labels", "labels -> Map", "its labels"),
    e("Container", "start", "start()", "starts a created or exited container"),
    e("Container", "stop", "stop([seconds])", "SIGTERM (or its stop signal), SIGKILL after the grace period"),
    e("Container", "kill", "kill([signal])", "sends a signal, SIGKILL by default (\"SIGTERM\", \"HUP\", ...)"),
    e("Container", "restart", "restart()", "stops and starts it"),
    e("Container", "pause", "pause()", "freezes its processes"),
    e("Container", "unpause", "unpause()", "thaws its processes"),
    e("Container", "wait", "wait() -> int", "waits until it exits; its exit code"),
    e("Container", "logs", "logs() -> string", "its output so far"),
    e("Container", "inspect", "inspect() -> Map", "the same data as `berth inspect`"),
    e("Container", "stats", "stats() -> Map", "#{ cpu_percent, memory_bytes, memory_limit, pids, net_rx, net_tx, block_read, block_write }"),
    x("Container", "exec", "exec(cmd) -> Result", "runs a command inside: #{ code, stdout, stderr }",
      "Example: c.exec([\"cat\", \"/etc/hostname\"]).stdout"),
    e("Container", "copy_to", "copy_to(local, inside)", "copies a host file or directory into the container"),
    e("Container", "copy_from", "copy_from(inside, local)", "copies a file or directory out of the container"),
    e("Container", "diff", "diff() -> Array", "its changes to its image: [#{ kind: \"A\" | \"C\" | \"D\", path }], as `berth diff`"),
    e("Container", "export_to", "export_to(path)", "its whole filesystem as a tarball at path, as `berth export -o` (`export` is a Rhai keyword)"),
    e("Container", "commit", "commit(tag, [opts]) -> Image", "a new image from its changes; opts: changes: [\"CMD [...]\", ...], message, author, pause"),
    e("Container", "update", "update(opts)", "new limits now and at its next start: #{ memory, cpus, pids_limit, restart }"),
    e("Container", "port", "port(80 | \"53/udp\") -> int", "the host port published for that container port (publish: [\"80\"] picks a free one)"),
    e("Container", "url", "url(80) -> string", "http://127.0.0.1:PORT for the host port published for that container port"),
    x("Container", "wait_for_port", "wait_for_port(port, [opts])", "waits until something listens on the TCP port inside", WAIT_TIMEOUT),
    x("Container", "wait_for_log", "wait_for_log(text, [opts])", "waits until its log contains text", WAIT_TIMEOUT),
    x("Container", "connect", "connect(network, [opts])", "attaches it to another network", "Options: ip: \"10.9.0.7\", aliases: [\"db\"]."),
    e("Container", "disconnect", "disconnect(network)", "detaches it from a network"),
    x("Container", "remove", "remove([opts])", "removes it", "Options: force: true (a running one too), volumes: true (its anonymous volumes)."),
    // ---- Image ----
    e("Image", "id", "id -> string", "the image id (sha256:...)"),
    e("Image", "tags", "tags -> [string]", "its tags (\"busybox:latest\")"),
    e("Image", "size", "size -> int", "its size in bytes"),
    e("Image", "layers", "layers -> [string]", "its layer digests"),
    e("Image", "config", "config -> Map", "#{ cmd, entrypoint, env, workdir, exposed_ports, user, labels }"),
    e("Image", "history", "history() -> [Map]", "how each layer was made, as `berth history`"),
    e("Image", "tag", "tag(ref)", "adds a tag"),
    e("Image", "push", "push(ref) -> string", "pushes to a registry (tagging it first when needed); the digest"),
    e("Image", "remove", "remove()", "removes the image"),
    // ---- Network ----
    e("Network", "id", "id -> string", "the network id"),
    e("Network", "name", "name -> string", "the network's name"),
    e("Network", "subnet", "subnet -> string", "its subnet (\"192.168.13.0/24\")"),
    e("Network", "gateway", "gateway -> string", "its gateway address"),
    e("Network", "labels", "labels -> Map", "its labels"),
    e("Network", "containers", "containers() -> [Container]", "the containers attached to it"),
    x("Network", "impair", "impair(container, opts)", "emulates a bad link to the container (tc netem); #{} removes it",
      "Options: delay: \"50ms\" (or 50), jitter: \"5ms\", loss: 1.0 (percent), rate: \"10mbit\"."),
    e("Network", "remove", "remove()", "removes the network"),
    // ---- Volume ----
    e("Volume", "name", "name -> string", "the volume's name"),
    e("Volume", "path", "path -> string", "its directory on the host"),
    e("Volume", "users", "users -> [string]", "the containers that mount it"),
    e("Volume", "labels", "labels -> Map", "its labels"),
    e("Volume", "remove", "remove()", "removes the volume"),
    // ---- Service ----
    e("Service", "id", "id -> string", "the service id"),
    e("Service", "name", "name -> string", "the service's name"),
    e("Service", "image", "image -> string", "the image its replicas run"),
    e("Service", "replicas", "replicas -> int", "the number of replicas wanted"),
    e("Service", "vip", "vip -> string", "its virtual IP, balanced over the replicas"),
    e("Service", "containers", "containers() -> [Container]", "its replicas"),
    e("Service", "serving", "serving() -> [Container]", "the replicas that take connections now (running, healthy, not draining)"),
    e("Service", "scale", "scale(n)", "changes the number of replicas"),
    x("Service", "update", "update(opts)", "rolls the replicas to a new spec, batch by batch, and back if a new one fails",
      "Options: image, cmd, env, parallelism (replicas at a time), delay (ms between batches),
monitor (ms each new replica must keep serving before the next is replaced; default 2000)."),
    e("Service", "rollback", "rollback()", "rolls back to the image, command and environment before the last update (a rolling update too)"),
    e("Service", "remove", "remove()", "removes the service and its replicas"),
    // ---- Stack ----
    e("Stack", "name", "name -> string", "the stack's name"),
    e("Stack", "up", "up() -> [Service]", "deploys it: networks, volumes, images to build, then services in dependency order"),
    e("Stack", "services", "services() -> [Service]", "its services"),
    e("Stack", "service", "service(name) -> Service", "one of its services, by its name in the file"),
    e("Stack", "down", "down()", "removes everything the stack made: services, networks, volumes, built images"),
    // ---- Result ----
    e("Result", "code", "code -> int", "the exit code"),
    e("Result", "stdout", "stdout -> string", "what the command wrote on stdout"),
    e("Result", "stderr", "stderr -> string", "what the command wrote on stderr"),
    // ---- lab module ----
    x("lab", "chain", "lab::chain(name, n, [opts]) -> Map", "n containers in a line, one network per link: #{ name, nodes, networks, links }", LAB_OPTIONS),
    x("lab", "ring", "lab::ring(name, n, [opts]) -> Map", "a chain whose last node links back to the first", LAB_OPTIONS),
    x("lab", "star", "lab::star(name, n, [opts]) -> Map", "n leaves around a hub (the last node, also .hub), one network per leaf", LAB_OPTIONS),
    x("lab", "router", "lab::router(name, net_a, net_b, [opts]) -> Container", "a container on two networks that forwards between them",
      "Options: run()'s options, and lab: the lab it belongs to (default: net_a's).\nHosts route through it with lab::route (they need cap_add: [\"NET_ADMIN\"])."),
    e("lab", "route", "lab::route(host, subnet, via)", "adds a route inside host (which needs cap_add: [\"NET_ADMIN\"])"),
    e("lab", "pingall", "lab::pingall(containers) -> [[bool]]", "who reaches whom by ping: m[i][j] is true when i reaches j"),
    e("lab", "neighbours", "lab::neighbours(lab) -> [[bool]]", "the matrix pingall should give for a chain, ring or star"),
    e("lab", "table", "lab::table(m, containers) -> string", "a ping matrix as text, one row per source"),
    e("lab", "show", "lab::show(m, containers)", "prints lab::table"),
    e("lab", "down", "lab::down(name) -> Map", "removes the lab's containers and networks: #{ containers, networks } removed"),
    e("lab", "arg", "lab::arg(argv, key, default)", "a lab setting from the script's arguments (key=value), else LAB_KEY, else default"),
    e("lab", "dir", "lab::dir(argv) -> string", "the directory of the running script"),
    e("lab", "label_key", "lab::label_key() -> string", "the label that marks what belongs to a lab (berth.lab)"),
    // ---- wait module ----
    x("wait", "port", "wait::port(c, port, [opts])", "until something listens on the TCP port inside c", WAIT_OPTIONS),
    x("wait", "log", "wait::log(c, text, [opts])", "until c's log has text on opts.times lines (default 1)", "Options: timeout, interval (ms), times."),
    x("wait", "http", "wait::http(url, status, [opts]) -> Map", "until a GET of url answers with status; the response", "Options: timeout, interval (ms), body: text the body must contain."),
    x("wait", "command", "wait::command(c, cmd, [opts]) -> Result", "until cmd exits 0 inside c; its result", WAIT_OPTIONS),
    x("wait", "healthy", "wait::healthy(c, [opts])", "until c's health check reports \"healthy\"", WAIT_OPTIONS),
    x("wait", "all", "wait::all(closures, [opts]) -> Array", "until every closure returns true (a throw counts as not yet); their values", WAIT_OPTIONS),
    x("wait", "condition", "wait::condition(closure, [opts])", "until the closure returns true; its value", WAIT_OPTIONS),
];

/// The global functions.
pub fn globals() -> Vec<&'static Entry> {
    CATALOGUE.iter().filter(|e| e.owner.is_empty()).collect()
}

/// The members of a type (or the functions of a module).
pub fn members(type_name: &str) -> Vec<&'static Entry> {
    CATALOGUE.iter().filter(|e| e.owner == type_name).collect()
}

/// The documented types and modules.
pub fn type_names() -> Vec<&'static str> {
    TYPES.iter().map(|(n, _)| *n).collect()
}

/// Rhai's own types, by TypeId, with the names help and completion use.
fn std_type(t: TypeId) -> Option<&'static str> {
    let known = [
        (TypeId::of::<rhai::Map>(), "Map"),
        (TypeId::of::<rhai::Array>(), "Array"),
        (TypeId::of::<rhai::ImmutableString>(), "string"),
        (TypeId::of::<rhai::INT>(), "int"),
        (TypeId::of::<rhai::FLOAT>(), "float"),
        (TypeId::of::<bool>(), "bool"),
        (TypeId::of::<char>(), "char"),
        (TypeId::of::<rhai::Blob>(), "Blob"),
        (TypeId::of::<rhai::FnPtr>(), "Fn"),
    ];
    known.iter().find(|(id, _)| *id == t).map(|(_, n)| *n)
}

/// A value's type as help names it: "Container", "Map", "string", ...
pub fn type_of(r: &rhai::Engine, v: &Dynamic) -> String {
    std_type(v.type_id()).map(String::from).unwrap_or_else(|| r.map_type_name(v.type_name()).to_string())
}

/// The engine's object types, whose members help lists.
const HOST_TYPES: &[&str] = &["Container", "Image", "Network", "Volume", "Service", "Stack"];

/// One function or property the engine knows.
pub struct Known {
    /// The type of its first parameter ("Container", "Map", ...), if any.
    pub first: Option<String>,
    pub name: String,
    pub property: bool,
}

impl Known {
    /// The object type it is a member of, or "" for a global function.
    pub fn owner(&self) -> &str {
        self.first.as_deref().filter(|t| HOST_TYPES.contains(t)).unwrap_or("")
    }
}

/// Every function and property the engine has: berth's own, and with
/// `with_stdlib` Rhai's standard library too. Operators, setters and
/// indexers are left out.
pub fn registered(r: &rhai::Engine, with_stdlib: bool) -> Vec<Known> {
    r.collect_fn_metadata(
        None,
        |f| {
            let m = f.metadata;
            let (name, property) = match m.name.strip_prefix("get$") {
                Some(p) => (p, true),
                None => (m.name.as_str(), false),
            };
            if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') || name.contains('$') || name == "to_debug" {
                return None;
            }
            // Host types are known by the names they were registered with,
            // which the parameter list carries ("_: &mut Container").
            let first = m.param_types.first().map(|t| match std_type(*t) {
                Some(n) => n.to_string(),
                None => {
                    let ty = m.params_info.first().map(|p| p.split_once(':').map_or(p.as_str(), |(_, t)| t)).unwrap_or("");
                    r.map_type_name(ty.trim().trim_start_matches("&mut ").trim()).to_string()
                }
            });
            Some(Known { first, name: name.to_string(), property })
        },
        with_stdlib,
    )
}

/// The public functions of a stdlib module (`lab`), read from its source.
pub fn module_functions(r: &rhai::Engine, module: &str) -> Vec<String> {
    let Some(ast) = super::stdlib::source(module).and_then(|src| r.compile(src).ok()) else { return vec![] };
    let names: BTreeSet<String> = ast.iter_functions().filter(|f| f.access == rhai::FnAccess::Public).map(|f| f.name.to_string()).collect();
    names.into_iter().collect()
}

/// Names the engine (or a stdlib module) has for `owner` that the
/// catalogue does not describe.
fn undocumented(r: &rhai::Engine, owner: &str) -> Vec<String> {
    let names: BTreeSet<String> = if super::stdlib::source(owner).is_some() {
        module_functions(r, owner).into_iter().collect()
    } else {
        registered(r, false).into_iter().filter(|k| k.owner() == owner && k.name != "to_string").map(|k| k.name).collect()
    };
    names.into_iter().filter(|n| !CATALOGUE.iter().any(|e| e.owner == owner && e.name == n)).collect()
}

fn table(entries: &[&Entry], prefix: &str) -> String {
    let w = entries.iter().map(|e| prefix.len() + e.sig.len()).max().unwrap_or(0);
    entries.iter().map(|e| format!("  {:<w$}   {}\n", format!("{prefix}{}", e.sig), e.doc)).collect()
}

/// The text of `help()`.
pub fn overview(r: &rhai::Engine) -> String {
    let mut s = String::from("Functions (help(\"run\") describes one; help(\"Container\") lists a type's members):\n");
    s += &table(&globals(), "");
    let extra = undocumented(r, "");
    if !extra.is_empty() {
        s += &format!("Not described yet: {}\n", extra.join(", "));
    }
    s += "Types: ";
    s += &TYPES.iter().filter(|(n, _)| n.starts_with(char::is_uppercase)).map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    s += "\nModules: lab, wait (import \"lab\" as lab; then lab::chain(..)); help(\"lab\") lists a module's functions\n";
    s
}

/// The text of `help("Container")` (or a module's).
pub fn type_help(r: &rhai::Engine, name: &str) -> Option<String> {
    let (name, doc) = TYPES.iter().find(|(n, _)| *n == name)?;
    let mut s = format!("{name}: {doc}\n");
    let var = match *name {
        "lab" | "wait" => "",
        "Result" => "r.",
        _ => &format!("{}.", name[..1].to_lowercase()),
    };
    s += &table(&members(name), var);
    let extra = undocumented(r, name);
    if !extra.is_empty() {
        s += &format!("Not described yet: {}\n", extra.join(", "));
    }
    Some(s)
}

fn entry_help(e: &Entry) -> String {
    let who = match e.owner {
        "" | "lab" | "wait" => String::new(),
        o => format!("{o}."),
    };
    let mut s = format!("{who}{}\n  {}\n", e.sig, e.doc);
    if !e.more.is_empty() {
        for l in e.more.lines() {
            s += &format!("  {l}\n");
        }
    }
    s
}

/// The text of `help(name)`: a type, a module, a function, `Type.member`,
/// `module::function`, or a member name shared by several types.
pub fn describe(r: &rhai::Engine, name: &str) -> Result<String, String> {
    let name = name.trim();
    if let Some(s) = type_help(r, name) {
        return Ok(s);
    }
    let find = |owner: &str, n: &str| CATALOGUE.iter().filter(|e| e.owner == owner && e.name == n).map(entry_help).collect::<String>();
    let s = find("", name);
    if !s.is_empty() {
        return Ok(s);
    }
    if let Some((owner, n)) = name.split_once("::").or_else(|| name.split_once('.')) {
        let s = find(owner, n);
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let s: String = CATALOGUE.iter().filter(|e| e.name == name).map(entry_help).collect();
    if !s.is_empty() {
        return Ok(s);
    }
    // "CONTAINER" or "Lab": a type or module, spelt in another case.
    if let Some(s) = TYPES.iter().find(|(t, _)| t.eq_ignore_ascii_case(name)).and_then(|(t, _)| type_help(r, t)) {
        return Ok(s);
    }
    if let Some(k) = registered(r, false).into_iter().find(|k| k.name == name) {
        let who = if k.owner().is_empty() { String::new() } else { format!("{}.", k.owner()) };
        return Ok(format!("{who}{}\n  (not described yet)\n", k.name));
    }
    Err(format!(
        "help: nothing is called {name:?}; known types and modules: {}; help() lists the functions",
        type_names().join(", ")
    ))
}

/// Registers `help()` and `help(name)` on a Rhai engine.
pub fn register(r: &mut rhai::Engine) {
    // The closures need the engine's own metadata, which is complete only
    // once every function is registered: read it when help is called.
    r.register_fn("help", |ctx: rhai::NativeCallContext| {
        print!("{}", overview(ctx.engine()));
    });
    r.register_fn("help", |ctx: rhai::NativeCallContext, name: &str| -> Result<(), Box<EvalAltResult>> {
        match describe(ctx.engine(), name) {
            Ok(s) => {
                print!("{s}");
                Ok(())
            }
            Err(msg) => Err(Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(msg), Position::NONE))),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_well_formed() {
        let mut seen = BTreeSet::new();
        for e in CATALOGUE {
            assert!(e.owner.is_empty() || TYPES.iter().any(|(t, _)| *t == e.owner), "{}: unknown owner {}", e.name, e.owner);
            let call = e.sig.trim_start_matches("lab::").trim_start_matches("wait::");
            assert!(call.starts_with(e.name), "{}: signature {:?} does not start with the name", e.name, e.sig);
            assert!(!e.doc.is_empty() && !e.doc.contains('\n'), "{}: the doc is one line", e.name);
            assert!(seen.insert((e.owner, e.name)), "{}.{} is listed twice", e.owner, e.name);
        }
    }

    #[test]
    fn every_type_has_members() {
        for t in type_names() {
            assert!(!members(t).is_empty(), "{t} has no members");
        }
        assert!(members("Container").iter().any(|e| e.name == "exec" && !e.is_property()));
        assert!(members("Container").iter().any(|e| e.name == "state" && e.is_property()));
        assert_eq!(globals().iter().find(|e| e.name == "container").and_then(|e| e.returns()), Some("Container"));
    }

    #[test]
    fn describe_finds_types_functions_and_members() {
        let r = rhai::Engine::new();
        assert!(describe(&r, "Container").unwrap().contains("c.exec(cmd)"));
        assert!(describe(&r, "run").unwrap().contains("cmd: [\"sleep\""), "run's options");
        assert!(describe(&r, "lab::chain").unwrap().contains("lab::chain(name, n, [opts])"));
        assert!(describe(&r, "Network.impair").unwrap().contains("netem"));
        assert!(describe(&r, "remove").unwrap().matches("remove(").count() >= 4, "every type's remove");
        assert!(describe(&r, "volume").unwrap().starts_with("volume(name"), "the function, not the type");
        let err = describe(&r, "nosuch").unwrap_err();
        assert!(err.contains("Container, Image, Network, Volume"), "{err}");
    }
}
