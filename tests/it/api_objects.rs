//! Networks, volumes, events and `system df` through `berth serve`, driven
//! by the real docker CLI (28.x, and Debian's 20.10 for the old API).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::api::{DOCKER_20, Served, both_clients, have_docker_20, tagged};
use crate::util::{Env, wait_until};

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn networks_through_the_docker_cli(bin: &'static str) {
    let env = Env::new(&tagged("api_networks", bin));
    let s = Served::start_for(&env, bin);
    let (n, c) = (env.name("n"), env.name("c"));
    // Its own subnet, as the other client's run may be on the host at once.
    let oct = if bin == DOCKER_20 { 124 } else { 123 };
    let (subnet, ip) = (format!("10.{oct}.0.0/24"), format!("10.{oct}.0.9"));
    let id = s.docker_ok(&["network", "create", "--subnet", &subnet, "--label", "lab=1", &n]);
    assert_eq!(id.len(), 64, "network create prints the ID: {id}");
    assert!(s.docker_ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"]).lines().any(|l| l == format!("{n} bridge local")));
    assert_eq!(s.docker_ok(&["network", "ls", "-q", "--filter", "label=lab=1"]), id[..12], "a label filter finds it");
    assert_eq!(s.docker_ok(&["network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}", &n]), format!("{subnet} 10.{oct}.0.1"));
    // A second network of the same name is docker's 409.
    let o = s.docker(&["network", "create", &n]);
    assert!(!o.ok() && o.stderr.contains(&format!("network with name {n} already exists")), "{o}");

    env.run_detached(&c, &["busybox", "sleep", "300"]);
    s.docker_ok(&["network", "connect", "--alias", "a", "--ip", &ip, &n, &c]);
    let net = &env.inspect(&c)["NetworkSettings"]["Networks"][n.as_str()];
    assert_eq!(net["IPAddress"], ip.as_str(), "berth inspect shows the address docker asked for: {net}");
    assert!(net["Aliases"].as_array().unwrap().iter().any(|a| a == "a"), "and the alias: {net}");
    let members = s.docker_ok(&["network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{.IPv4Address}} {{.MacAddress}}{{end}}", &n]);
    assert_eq!(members, format!("{c} {ip}/24 02:42:0a:{oct:02x}:00:09"));
    assert!(env.ok(&["exec", &c, "ip", "-4", "addr"]).contains(&format!("{ip}/24")), "the container has the address");
    // In use, it stays (docker's 403, its words).
    let o = s.docker(&["network", "rm", &n]);
    assert!(!o.ok() && o.stderr.contains("active endpoints"), "{o}");
    s.docker_ok(&["network", "disconnect", &n, &c]);
    assert!(env.inspect(&c)["NetworkSettings"]["Networks"].get(n.as_str()).is_none(), "disconnected");
    s.docker_ok(&["network", "rm", &n]);
    assert!(!s.docker_ok(&["network", "ls", "--format", "{{.Name}}"]).lines().any(|l| l == n));
    let o = s.docker(&["network", "inspect", &n]);
    // The 20.10 client words the 404 itself.
    assert!(!o.ok() && (o.stderr.contains(&format!("network {n} not found")) || o.stderr.contains(&format!("No such network: {n}"))), "{o}");

    // The predefined network is refused; prune takes only unused custom ones.
    let o = s.docker(&["network", "rm", "bridge"]);
    assert!(!o.ok() && o.stderr.contains("pre-defined network"), "{o}");
    let (p1, p2) = (env.name("p1"), env.name("p2"));
    s.docker_ok(&["network", "create", &p1]);
    s.docker_ok(&["network", "create", &p2]);
    s.docker_ok(&["network", "connect", &p2, &c]);
    let out = s.docker_ok(&["network", "prune", "-f"]);
    assert!(out.contains(&p1) && !out.contains(&p2) && !out.contains("bridge"), "{out}");
    let left: Vec<String> = s.docker_ok(&["network", "ls", "--format", "{{.Name}}"]).lines().map(String::from).collect();
    assert!(left.contains(&p2) && left.contains(&"bridge".to_string()) && !left.contains(&p1), "{left:?}");
}

fn volumes_through_the_docker_cli(bin: &'static str) {
    let env = Env::new(&tagged("api_volumes", bin));
    let s = Served::start_for(&env, bin);
    let (v, c) = (env.name("v"), env.name("c"));
    assert_eq!(s.docker_ok(&["volume", "create", "--label", "lab=1", &v]), v);
    assert_eq!(s.docker_ok(&["volume", "ls", "-q", "--filter", "label=lab=1"]), v);
    assert_eq!(s.docker_ok(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}", "--filter", &format!("name={v}")]), format!("local {v}"));
    let mp = s.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", &v]);
    assert_eq!(mp, env.root.join("volumes").join(&v).join("_data").display().to_string());
    let o = s.docker(&["volume", "create", "-d", "nfs", "x"]);
    assert!(!o.ok() && o.stderr.contains("driver \"nfs\" is not supported"), "{o}");

    // Mounted, it stays; the data a container wrote is in the mountpoint.
    env.run_detached(&c, &["-v", &format!("{v}:/data"), "busybox", "sh", "-c", "echo hi > /data/f; sleep 300"]);
    assert!(wait_until(Duration::from_secs(10), || std::path::Path::new(&mp).join("f").exists()));
    let o = s.docker(&["volume", "rm", &v]);
    assert!(!o.ok() && o.stderr.contains("in use"), "{o}");
    assert_eq!(s.docker_ok(&["volume", "ls", "-q", "--filter", "dangling=false"]), v);
    env.ok(&["rm", "-f", &c]);
    s.docker_ok(&["volume", "rm", &v]);
    let o = s.docker(&["volume", "inspect", &v]);
    assert!(!o.ok() && o.stderr.to_lowercase().contains("no such volume"), "{o}");
    s.docker_ok(&["volume", "rm", "-f", &v]);

    // A 1.42+ client's prune takes anonymous volumes only, -a the named
    // too; before 1.42 prune meant both.
    let keep = env.name("keep");
    s.docker_ok(&["volume", "create", &keep]);
    let anon = s.docker_ok(&["volume", "create"]);
    assert_eq!(anon.len(), 64, "an unnamed volume gets an ID for a name: {anon}");
    let out = s.docker_ok(&["volume", "prune", "-f"]);
    if bin == DOCKER_20 {
        assert!(out.contains(&anon) && out.contains(&keep), "{out}");
    } else {
        assert!(out.contains(&anon) && !out.contains(&keep), "{out}");
        let out = s.docker_ok(&["volume", "prune", "-af"]);
        assert!(out.contains(&keep), "{out}");
    }
    assert_eq!(s.docker_ok(&["volume", "ls", "-q"]), "");
}

fn recorded_events_through_the_docker_cli(bin: &'static str) {
    let env = Env::new(&tagged("api_events", bin));
    let s = Served::start_for(&env, bin);
    let c = env.name("c");
    env.ok(&["run", "-d", "--name", &c, "busybox", "true"]);
    env.wait_status(&c, "exited", Duration::from_secs(10));
    env.ok(&["volume", "create", &env.name("v")]);
    let until = (now_secs() + 1).to_string();
    let out = s.docker_ok(&["events", "--since", "0", "--until", &until, "--filter", "type=container", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.image}}"]);
    let lines: Vec<&str> = out.lines().collect();
    for action in ["create", "start", "die"] {
        assert!(lines.contains(&format!("container {action} {c} busybox").as_str()), "no {action} of {c} in {lines:?}");
    }
    assert!(lines.iter().all(|l| l.starts_with("container ")), "the type filter holds: {lines:?}");
    // docker's JSON shape, old fields included.
    let json = s.docker_ok(&["events", "--since", "0", "--until", &until, "--filter", "event=die", "--format", "{{json .}}"]);
    let e: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!((e["status"].as_str(), e["from"].as_str(), e["scope"].as_str()), (Some("die"), Some("busybox"), Some("local")), "{e}");
    assert_eq!(e["Actor"]["Attributes"]["exitCode"], "0", "{e}");
    assert!(e["timeNano"].as_i64().unwrap() / 1_000_000_000 == e["time"].as_i64().unwrap(), "{e}");
}

/// The names of the threads of a process.
fn threads(pid: u32) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    rd.flatten().filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok()).map(|s| s.trim().to_string()).collect()
}

fn live_events_reach_a_following_docker_cli_and_end_with_it(bin: &'static str) {
    let env = Env::new(&tagged("api_events_live", bin));
    let s = Served::start_for(&env, bin);
    let mut child = s
        .docker_cmd(s.bin, &["events", "--filter", "type=container", "--filter", "type=volume", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut see = |want: &dyn Fn(&str) -> bool, wait: Duration| {
        let end = Instant::now() + wait;
        while Instant::now() < end {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
                seen.push(l.clone());
                if want(&l) {
                    return true;
                }
            }
        }
        false
    };
    // Following has begun once an event made now shows: volumes as markers.
    let mut subscribed = false;
    for i in 0..50 {
        env.ok(&["volume", "create", &env.name(&format!("m{i}"))]);
        if see(&|l: &str| l.starts_with("volume create "), Duration::from_millis(300)) {
            subscribed = true;
            break;
        }
    }
    assert!(subscribed, "docker events showed none of the volumes made: {seen:?}");
    let c = env.name("c");
    let id = env.run_detached(&c, &["busybox", "sleep", "300"]);
    let started = see(&|l: &str| l == format!("container start {id} {c}"), Duration::from_secs(15));
    let _ = child.kill();
    let _ = child.wait();
    assert!(started, "no start of {c} ({id}) in {seen:?}");
    // The server's follower ends with its client, though nothing happens.
    let pid = s.child.id();
    assert!(
        wait_until(Duration::from_secs(10), || !threads(pid).iter().any(|t| t.starts_with("berth-api-str"))),
        "berth serve still follows events for a client that is gone: threads {:?}",
        threads(pid)
    );
}

#[test]
fn system_df_through_the_docker_cli() {
    let env = Env::new("api_df");
    let s = Served::start(&env);
    let (c, v) = (env.name("c"), env.name("v"));
    env.ok(&["volume", "create", &v]);
    env.run_detached(&c, &["-v", &format!("{v}:/data"), "busybox", "sh", "-c", "head -c 100000 /dev/zero > /data/z; sleep 300"]);
    let out = s.docker_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["Images 1 1", "Containers 1 1", "Local Volumes 1 1", "Build Cache 0 0"], "{out}");
    let size = s.docker_ok(&["system", "df", "--format", "{{.Type}} {{.Size}}"]);
    assert!(!size.lines().next().unwrap().ends_with(" 0B"), "busybox's layers count: {size}");
    let verbose = s.docker_ok(&["system", "df", "-v"]);
    assert!(verbose.contains(&c) && verbose.contains(&v) && verbose.contains("busybox"), "{verbose}");
    // berth's own count agrees.
    let ours: serde_json::Value = serde_json::from_str(&env.ok(&["system", "df", "--format", "json"])).unwrap();
    assert_eq!(ours["images"]["total"], 1);
}

#[test]
fn the_docker_20_10_client_works_with_networks_and_volumes() {
    assert!(have_docker_20(), "{DOCKER_20} is missing: run scripts/deps (Debian's docker.io)");
    let env = Env::bare("api_docker20");
    let s = Served::start(&env);
    let d = |args: &[&str]| {
        let o = s.docker_with(DOCKER_20, args);
        assert!(o.ok(), "`docker(20.10) {}` failed: {o}", args.join(" "));
        o.out().to_string()
    };
    let v = d(&["version", "--format", "{{.Client.Version}} {{.Client.APIVersion}} {{.Server.APIVersion}}"]);
    assert!(v.starts_with("20.10.") && v.ends_with(" 1.41 1.47"), "the 20.10 client speaks API 1.41 to berth's 1.47: {v}");
    let n = env.name("n");
    d(&["network", "create", &n]);
    assert!(d(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]).lines().any(|l| l == format!("{n} bridge")));
    d(&["network", "rm", &n]);
    let v = env.name("v");
    assert_eq!(d(&["volume", "create", &v]), v);
    assert_eq!(d(&["volume", "ls", "-q"]), v);
    // Before API 1.42 prune meant named volumes too.
    let out = d(&["volume", "prune", "-f"]);
    assert!(out.contains(&v), "{out}");
    assert_eq!(d(&["volume", "ls", "-q"]), "");
    let w = env.name("w");
    d(&["volume", "create", &w]);
    d(&["volume", "rm", &w]);
    assert_eq!(d(&["volume", "ls", "-q"]), "");
    assert!(s.log(&env).contains("POST /v1.41/volumes/create"), "requests came as API 1.41");
}

/// The Python of scripts/deps' venv (docker 7, testcontainers).
const VENV_PYTHON: &str = "/opt/berth-venv/bin/python";

/// Runs a Python program with DOCKER_HOST aimed at the server; its stdout.
fn python(s: &Served, python: &str, program: &str) -> String {
    assert!(std::path::Path::new(python).exists(), "{python} is missing: run scripts/deps");
    let mut cmd = std::process::Command::new(python);
    cmd.args(["-c", program]).env("DOCKER_HOST", s.host()).env_remove("DOCKER_TLS_VERIFY").env_remove("DOCKER_CERT_PATH");
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let o = crate::util::collect(child, Duration::from_secs(120));
    assert!(o.ok(), "{python} failed: {o}");
    o.out().to_string()
}

#[test]
fn compose_1_29_makes_finds_and_removes_its_networks() {
    let env = Env::bare("api_compose_net");
    let s = Served::start(&env);
    let project = env.name("p");
    // Compose's own network code (Debian's docker-compose 1.29): the second
    // ensure finds the network and checks it is as compose would make it.
    let out = python(
        &s,
        "/usr/bin/python3",
        &format!(
            r#"
import docker, os
from compose.network import Network
c = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="auto")
n = Network(c, "{project}", "default")
n.ensure()
n.ensure()
found = c.networks(names=["{project}_default"])
print(" ".join(x["Name"] for x in found))
print(found[0]["Labels"]["com.docker.compose.project"], found[0]["Labels"]["com.docker.compose.network"])
print(len(c.networks(filters={{"label": "com.docker.compose.project={project}"}})))
n.remove()
print(len(c.networks(names=["{project}_default"])))
"#
        ),
    );
    assert_eq!(out, format!("{project}_default\n{project} default\n1\n0"));
}

#[test]
fn docker_py_7_networks_volumes_events_and_df() {
    let env = Env::new("api_docker_py");
    let s = Served::start(&env);
    let (n, v) = (env.name("n"), env.name("v"));
    let out = python(
        &s,
        VENV_PYTHON,
        &format!(
            r#"
import docker, time
c = docker.from_env()
t0 = time.time()
net = c.networks.create("{n}", labels={{"role": "lab"}})
print([x.name for x in c.networks.list(names=["{n}"])] == ["{n}"], c.networks.get(net.id).attrs["Labels"])
vol = c.volumes.create("{v}", labels={{"role": "lab"}})
print([x.name for x in c.volumes.list(filters={{"label": "role=lab"}})])
df = c.df()
print(len(df["Images"]), [x["Name"] for x in df["Volumes"]])
vol.remove()
net.remove()
evs = c.events(since=t0 - 1, until=time.time() + 1, filters={{"type": ["network", "volume"]}}, decode=True)
print(sorted(set((e["Type"], e["Action"]) for e in evs)))
"#
        ),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "True {'role': 'lab'}");
    assert_eq!(lines[1], format!("['{v}']"));
    assert_eq!(lines[2], format!("1 ['{v}']"));
    assert_eq!(lines[3], "[('network', 'create'), ('network', 'destroy'), ('volume', 'create'), ('volume', 'destroy')]");
}

both_clients!(networks_through_the_docker_cli, volumes_through_the_docker_cli, recorded_events_through_the_docker_cli, live_events_reach_a_following_docker_cli_and_end_with_it);
