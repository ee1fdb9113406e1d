//! Swarm mode across lab hosts (network namespaces with their own roots):
//! a real etcd cluster (one member per manager), node agents with leases,
//! the leader's scheduler, drain, and a lost node's tasks placed again.

use std::time::{Duration, Instant};

use crate::util::*;

struct Lab<'a> {
    env: &'a Env,
    name: String,
}

impl Lab<'_> {
    fn berth(&self, host: u32, args: &[&str]) -> Out {
        let mut a = vec!["lab", "exec", &self.name];
        let h = format!("h{host}");
        a.push(&h);
        a.push("berth");
        a.extend_from_slice(args);
        self.env.berth_timeout(&a, Duration::from_secs(60))
    }

    fn ok(&self, host: u32, args: &[&str]) -> String {
        let o = self.berth(host, args);
        assert!(o.ok(), "berth {} on h{host}: {o}", args.join(" "));
        o.stdout.trim_end().to_string()
    }

    /// Tasks of `svc` running per node name, from `service ps` on `host`.
    fn running_per_node(&self, host: u32, svc: &str) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for l in self.ok(host, &["service", "ps", svc]).lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(4) == Some(&"running") {
                *m.entry(f[3].to_string()).or_default() += 1;
            }
        }
        m
    }

    /// The agent of a host, by its root.
    fn agent(&self, host: u32) -> Option<i32> {
        let root = self.env.root.join("labhosts").join(&self.name).join(format!("{}-h{host}", self.name));
        pids_with_env("BERTH_ROOT", &root).into_iter().find(|p| String::from_utf8_lossy(&std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default()).contains("\0agent"))
    }
}

impl Drop for Lab<'_> {
    /// A failure shows what the agents said: the scheduler's reasons are there.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        // Where each of the lab's processes waits: a hang shows here.
        {
            for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let p = e.path();
                let env = std::fs::read(p.join("environ")).unwrap_or_default();
                if !String::from_utf8_lossy(&env).contains(&self.name) {
                    continue;
                }
                let cmd = String::from_utf8_lossy(&std::fs::read(p.join("cmdline")).unwrap_or_default()).replace('\0', " ");
                let wchan = std::fs::read_to_string(p.join("wchan")).unwrap_or_default();
                eprintln!("--- {} {cmd} wchan={wchan}", e.file_name().to_string_lossy());
                for t in std::fs::read_dir(p.join("task")).into_iter().flatten().flatten() {
                    eprintln!("  task {} {}", t.file_name().to_string_lossy(), std::fs::read_to_string(t.path().join("stack")).unwrap_or_default().lines().take(6).collect::<Vec<_>>().join(" | "));
                }
            }
        }
        let dir = self.env.root.join("labhosts").join(&self.name);
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if let Ok(log) = std::fs::read_to_string(e.path().join("agent.log")) {
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("--- agent log of {}:", e.file_name().to_string_lossy());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

fn counts(m: &std::collections::BTreeMap<String, usize>) -> Vec<usize> {
    m.values().copied().collect()
}

#[test]
fn a_swarm_of_three_places_drains_and_heals() {
    let env = Env::new("swarm_three");
    let lab = Lab { env: &env, name: env.name("dc") };
    env.ok(&["lab", "hosts", &lab.name, "3", "--image", "busybox"]);
    let t0 = Instant::now();
    let o = lab.ok(0, &["swarm", "init", "--advertise-addr", "10.99.0.1", "--name", "n0", "--data-path-port", "4790"]);
    assert!(o.contains("is now a manager") && o.contains("berth swarm join --token"), "{o}");
    let manager = lab.ok(0, &["swarm", "join-token", "manager"]);
    let worker = lab.ok(0, &["swarm", "join-token", "worker"]);
    assert!(manager.starts_with("SWMTKN-1-") && manager != worker);
    assert!(lab.ok(1, &["swarm", "join", "--token", &manager, "--advertise-addr", "10.99.0.2", "--name", "n1", "10.99.0.1"]).contains("as a manager"));
    assert!(lab.ok(2, &["swarm", "join", "--token", &worker, "--name", "n2", "10.99.0.1"]).contains("as a worker"));
    let o = lab.berth(2, &["swarm", "join", "--token", &worker, "10.99.0.1"]);
    assert!(o.code != 0 && o.stderr.contains("already part of swarm"), "{o}");
    let o = lab.berth(2, &["swarm", "join-token", "worker"]);
    assert!(o.code != 0 && o.stderr.contains("worker"), "{o}");
    assert!(
        wait_until(Duration::from_secs(15), || {
            let ls = lab.ok(1, &["node", "ls"]);
            ls.matches("Ready").count() == 3 && ls.contains("Leader")
        }),
        "{}",
        lab.ok(1, &["node", "ls"])
    );
    eprintln!("three nodes ready after {:?}", t0.elapsed());
    let ls = lab.ok(0, &["node", "ls"]);
    assert!(ls.contains("10.99.0.3") && ls.contains("n2"), "the worker advertised its underlay address: {ls}");
    // Overlays use the swarm's data path port.
    lab.ok(0, &["network", "create", "-d", "overlay", "dp"]);
    let dev = lab.host(0, &["ip", "-d", "link", "show", "type", "vxlan"]).stdout;
    assert!(dev.contains("dstport 4790"), "{dev}");
    lab.ok(0, &["network", "rm", "dp"]);

    // Six replicas spread two per node.
    lab.ok(1, &["service", "create", "--name", "web", "--replicas", "6", "busybox", "sleep", "1d"]);
    assert!(wait_until(Duration::from_secs(30), || counts(&lab.running_per_node(0, "web")) == vec![2, 2, 2]), "{}", lab.ok(0, &["service", "ps", "web"]));
    assert_eq!(lab.ok(2, &["ps", "-q"]).lines().count(), 2, "two containers on n2 itself");
    assert!(lab.ok(0, &["service", "ls"]).contains("6/6"));

    // Constraints: a label on n1 only.
    lab.ok(0, &["node", "update", "--label-add", "zone=a", "n1"]);
    lab.ok(0, &["service", "create", "--name", "pinned", "--replicas", "2", "--constraint", "node.labels.zone==a", "busybox", "sleep", "1d"]);
    assert!(wait_until(Duration::from_secs(20), || lab.running_per_node(0, "pinned").get("n1") == Some(&2)), "{}", lab.ok(0, &["service", "ps", "pinned"]));
    lab.ok(0, &["service", "rm", "pinned"]);

    // Drain moves n2's tasks away; active again takes new ones only.
    lab.ok(0, &["node", "update", "--availability", "drain", "n2"]);
    assert!(wait_until(Duration::from_secs(20), || counts(&lab.running_per_node(0, "web")) == vec![3, 3]), "{}", lab.ok(0, &["service", "ps", "web"]));
    assert!(wait_until(Duration::from_secs(10), || lab.ok(2, &["ps", "-q"]).is_empty()), "n2's containers left with its tasks");
    lab.ok(0, &["node", "update", "--availability", "active", "n2"]);

    // A node cut off (its agent stopped, as a partition looks from the
    // others): its tasks are placed again within 15 s; back, it stops its
    // stale ones rather than run them twice.
    lab.ok(0, &["service", "scale", "web=9"]);
    assert!(wait_until(Duration::from_secs(30), || counts(&lab.running_per_node(0, "web")) == vec![3, 3, 3]), "{}", lab.ok(0, &["service", "ps", "web"]));
    let agent = lab.agent(2).expect("n2's agent");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent), nix::sys::signal::Signal::SIGSTOP).unwrap();
    let cut = Instant::now();
    let healed = wait_until(Duration::from_secs(20), || {
        let m = lab.running_per_node(0, "web");
        m.get("n2").is_none() && m.values().sum::<usize>() == 9
    });
    let took = cut.elapsed();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent), nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(healed && took < Duration::from_secs(15), "after {took:?}: {}", lab.ok(0, &["service", "ps", "web"]));
    eprintln!("a lost node's tasks placed again in {took:?}");
    assert!(wait_until(Duration::from_secs(15), || lab.ok(2, &["ps", "-q"]).is_empty()), "n2 stopped its stale tasks: {}", lab.ok(2, &["ps"]));
    assert!(wait_until(Duration::from_secs(15), || lab.ok(0, &["node", "ls"]).matches("Ready").count() == 3), "n2 is back: {}", lab.ok(0, &["node", "ls"]));

    // A rolling update, one task at a time: every task runs the new image;
    // one that cannot start rolls the service back.
    for h in 0..3 {
        lab.ok(h, &["tag", "busybox", "busybox:two"]);
    }
    let t0 = Instant::now();
    lab.ok(1, &["service", "update", "--image", "busybox:two", "--update-parallelism", "3", "--update-monitor", "500ms", "web"]);
    eprintln!("9 tasks updated, three at a time, in {:?}", t0.elapsed());
    let ps = lab.ok(0, &["service", "ps", "web"]);
    assert_eq!(ps.lines().filter(|l| l.contains("busybox:two") && l.contains("running")).count(), 9, "{ps}");
    let o = lab.berth(0, &["service", "update", "--image", "busybox:nope", "--update-monitor", "500ms", "web"]);
    assert!(o.code != 0 && o.stderr.contains("busybox:nope") && o.stderr.contains("rolled back to busybox:two"), "{o}");
    assert!(wait_until(Duration::from_secs(20), || lab.ok(0, &["service", "ps", "web"]).lines().filter(|l| l.contains("busybox:two") && l.contains("running")).count() == 9), "{}", lab.ok(0, &["service", "ps", "web"]));
    let o = lab.ok(2, &["service", "rollback", "web"]);
    assert!(o.contains("rolled back to busybox") && !o.contains("busybox:two"), "{o}");
    assert_eq!(lab.ok(0, &["service", "ps", "web"]).lines().filter(|l| l.contains(" busybox ") && l.contains("running")).count(), 9);

    // Removal and leaving leave nothing of the service or the node.
    lab.ok(0, &["service", "rm", "web"]);
    for h in 0..3 {
        assert!(wait_until(Duration::from_secs(15), || lab.ok(h, &["ps", "-aq"]).is_empty()), "h{h} still runs {}", lab.ok(h, &["ps", "-a"]));
    }
    assert!(lab.ok(2, &["swarm", "leave"]).contains("left"));
    assert!(wait_until(Duration::from_secs(5), || lab.agent(2).is_none()), "n2's agent is gone");
    assert!(!lab.ok(0, &["node", "ls"]).contains("n2"));
    let o = lab.berth(1, &["swarm", "leave"]);
    assert!(o.code != 0 && o.stderr.contains("--force"), "{o}");
}

#[test]
fn a_swarm_lab_from_a_script() {
    let env = Env::new("swarm_script");
    let lab = env.name("dc");
    let inner = env.dir.join("inner.rhai");
    // Runs inside a host: the swarm as that node sees it.
    std::fs::write(
        &inner,
        r#"
let me = swarm();
assert_eq(me.role, "manager");
let ns = nodes();
assert_eq(ns.len(), 3);
assert(ns.all(|n| n.state == "ready"), "all ready");
assert_eq(ns.filter(|n| n.leader).len(), 1);
let h2 = ns.filter(|n| n.name.ends_with("-h2"))[0];
h2.drain();
assert_eq(h2.availability, "drain");
wait_for(|| h2.tasks == 0, 20000);
h2.activate();
// The overlay the outer script made, found from here; a container on it
// here reaches the outer script's one on h0 by name.
let onet = network("sonet", #{ driver: "overlay", attachable: true });
assert_eq(onet.driver, "overlay");
let c = run("busybox", #{ name: "here", network: "sonet", cmd: ["sleep", "1d"] });
assert_eq(c.node, me.name);
wait_for(|| c.exec(["ping", "-c", "1", "-W", "1", "there"]).code == 0, 10000);
let h0 = ns.filter(|n| n.name.ends_with("-h0"))[0];
assert(h0.containers().some(|x| x.name == "there"), "h0's container, as the swarm knows it");
let mine = ns.filter(|n| n.name == me.name)[0].containers();
assert(mine.some(|x| x.name == "here" && x.state == "running"), `${mine}`);
c.remove(#{ force: true });
// Services as on one host, placed over the nodes, updated in place.
let api = service("api", #{ image: "busybox", replicas: 2, cmd: ["sleep", "1d"], constraints: [`node.hostname!=${h2.name}`] });
wait_for(|| api.tasks().filter(|t| t.state == "running").len() == 2, 20000);
assert(api.tasks().all(|t| t.node != h2.name), `${api.tasks()}`);
api.update(#{ image: "busybox:two", parallelism: 2, monitor: 300 });
assert(api.tasks().all(|t| t.image == "busybox:two" && t.state == "running"), `${api.tasks()}`);
assert_eq(api.image, "busybox:two");
api.remove();
print(`nodes: ${ns.len()}`);
"#,
    )
    .unwrap();
    let f = env.dir.join("outer.rhai");
    std::fs::write(
        &f,
        format!(
            r#"
import "lab" as lab;
let dc = lab::hosts("{lab}", 3, #{{ images: ["busybox"], swarm: true }});
let h = dc.hosts[1];
assert_eq(h.berth(["service", "create", "--name", "web", "--replicas", "3", "busybox", "sleep", "1d"]).code, 0);
wait_for(|| h.berth(["service", "ls"]).stdout.contains("3/3"), 30000);
for x in dc.hosts {{ assert_eq(x.berth(["tag", "busybox", "busybox:two"]).code, 0); }}
let h0 = dc.hosts[0];
assert_eq(h0.berth(["network", "create", "-d", "overlay", "--attachable", "sonet"]).code, 0);
assert_eq(h0.berth(["run", "-d", "--network", "sonet", "--name", "there", "busybox", "sleep", "1d"]).code, 0);
let r = h.berth(["run", "{inner}"]);
assert_eq(r.code, 0, r.stdout + r.stderr);
print(r.stdout);
let ps = dc.hosts[0].berth(["service", "ps", "web"]).stdout;
assert(!ps.contains("{lab}-h2"), ps);
let gone = lab::down("{lab}");
print(`hosts removed: ${{gone.hosts}}`);
"#,
            inner = inner.display()
        ),
    )
    .unwrap();
    let o = env.berth_timeout(&["run", f.to_str().unwrap()], Duration::from_secs(180));
    assert!(o.ok() && o.stdout.contains("nodes: 3") && o.stdout.contains("hosts removed: 3"), "{o}");
}

#[test]
fn losing_one_etcd_member_of_three_keeps_the_swarm_working() {
    let env = Env::new("swarm_quorum");
    let lab = Lab { env: &env, name: env.name("dc") };
    env.ok(&["lab", "hosts", &lab.name, "3", "--image", "busybox", "--swarm"]);
    assert_eq!(lab.ok(0, &["node", "ls"]).matches("Reachable").count() + lab.ok(0, &["node", "ls"]).matches("Leader").count(), 3, "three managers");
    // h2's etcd member stops (its pid is in its root).
    let pidfile = env.root.join("labhosts").join(&lab.name).join(format!("{}-h2", lab.name)).join("etcd/pid");
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    kill(pid);
    let not_h2 = format!("node.hostname!={}-h2", lab.name);
    lab.ok(0, &["service", "create", "--name", "web", "--replicas", "2", "--constraint", &not_h2, "busybox", "sleep", "1d"]);
    assert!(wait_until(Duration::from_secs(30), || lab.running_per_node(1, "web").values().sum::<usize>() == 2), "{}", lab.ok(1, &["service", "ps", "web"]));
    lab.ok(1, &["node", "update", "--label-add", "still=writable", &format!("{}-h0", lab.name)]);
    assert!(lab.ok(0, &["node", "inspect", &format!("{}-h0", lab.name)]).contains("writable"));
}

impl Lab<'_> {
    /// A command in a host's network namespace (not berth).
    fn host(&self, host: u32, argv: &[&str]) -> Out {
        let h = format!("h{host}");
        let mut a = vec!["lab", "exec", &self.name, &h];
        a.extend_from_slice(argv);
        self.env.berth_timeout(&a, Duration::from_secs(30))
    }

    /// One HTTP GET from a host's namespace with Python's client: the body.
    fn get(&self, host: u32, url: &str) -> Option<String> {
        let code = format!("import urllib.request as u; print(u.urlopen({url:?}, timeout=3).read().decode().strip())");
        let o = self.host(host, &["python3", "-c", &code]);
        o.ok().then(|| o.stdout.trim().to_string())
    }
}

#[test]
fn overlays_join_containers_across_nodes_and_the_mesh_publishes_services() {
    let env = Env::new("swarm_overlay");
    let lab = Lab { env: &env, name: env.name("dc") };
    // Not in a swarm: the error says what to do.
    let o = env.berth(&["network", "create", "-d", "overlay", "nope"]);
    assert!(o.code != 0 && o.stderr.contains("swarm init"), "{o}");
    env.ok(&["lab", "hosts", &lab.name, "3", "--image", "busybox", "--swarm"]);

    lab.ok(0, &["network", "create", "-d", "overlay", "--attachable", "onet"]);
    lab.ok(0, &["network", "create", "-d", "overlay", "--attachable", "-o", "com.docker.network.driver.overlay.vxlan_port=7789", "other"]);
    lab.ok(0, &["network", "create", "-d", "overlay", "svcnet"]);
    let o = lab.berth(1, &["network", "create", "-d", "overlay", "onet"]);
    assert!(o.code != 0 && o.stderr.contains("exists"), "one name in the swarm: {o}");
    assert!(wait_until(Duration::from_secs(10), || lab.ok(2, &["network", "ls"]).lines().any(|l| l.contains("onet") && l.contains("overlay") && l.contains("swarm"))), "{}", lab.ok(2, &["network", "ls"]));

    // a on h0 and b on h1 reach each other by name, through VXLAN.
    lab.ok(0, &["run", "-d", "--network", "onet", "--name", "a", "busybox", "sleep", "1d"]);
    lab.ok(1, &["run", "-d", "--network", "onet", "--name", "b", "busybox", "sleep", "1d"]);
    lab.ok(2, &["run", "-d", "--network", "other", "--name", "c", "busybox", "sleep", "1d"]);
    lab.ok(0, &["run", "-d", "--network", "other", "--name", "d", "busybox", "sleep", "1d"]);
    assert!(wait_until(Duration::from_secs(10), || lab.berth(2, &["exec", "c", "ping", "-c", "1", "-W", "1", "d"]).ok()), "c reaches d over VXLAN port 7789");
    assert!(lab.host(0, &["ip", "-d", "link", "show", "type", "vxlan"]).stdout.contains("dstport 7789"));
    let t0 = Instant::now();
    assert!(wait_until(Duration::from_secs(10), || lab.berth(1, &["exec", "b", "ping", "-c", "1", "-W", "1", "a"]).ok()), "b reaches a: {}", lab.ok(1, &["exec", "b", "cat", "/etc/hosts"]));
    eprintln!("a name on another node resolves and answers after {:?}", t0.elapsed());
    assert!(lab.berth(0, &["exec", "a", "ping", "-c", "1", "-W", "2", "b"]).ok());
    assert_eq!(lab.ok(0, &["exec", "a", "cat", "/sys/class/net/eth0/mtu"]), "1450", "VXLAN's 50 bytes come off the MTU");
    let a_ip = lab.ok(0, &["inspect", "-f", "{{(index .NetworkSettings.Networks \"onet\").IPAddress}}", "a"]);
    let insp = lab.ok(1, &["network", "inspect", "onet"]);
    let vni = insp.split("vxlanid_list\": \"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_string();
    assert!(vni.parse::<u32>().is_ok_and(|v| v >= 4096), "{insp}");
    let dev = lab.host(1, &["ip", "-d", "link", "show", "type", "vxlan"]).stdout;
    assert!(dev.contains(&format!("vxlan id {vni} ")) && dev.contains("dstport 4789") && dev.contains("nolearning"), "{dev}");
    // Isolation: another overlay does not reach it, nor one name twice.
    assert!(!lab.berth(2, &["exec", "c", "ping", "-c", "1", "-W", "1", &a_ip]).ok(), "other overlay reached {a_ip}");
    let o = lab.berth(2, &["run", "-d", "--network", "onet", "--name", "a", "busybox", "sleep", "1d"]);
    assert!(o.code != 0 && o.stderr.contains("taken"), "{o}");
    let o = lab.berth(2, &["run", "-d", "--network", "svcnet", "busybox", "true"]);
    assert!(o.code != 0 && o.stderr.contains("--attachable"), "{o}");
    let o = lab.berth(0, &["network", "rm", "onet"]);
    assert!(o.code != 0 && o.stderr.contains("a, b"), "in use: {o}");

    // A service on the overlay: its VIP by name from a container, and its
    // port on every node's address (the routing mesh).
    let httpd = "echo $(hostname) > /var/www/index.html; exec httpd -f -p 80 -h /var/www";
    lab.ok(0, &["service", "create", "--name", "web", "--replicas", "3", "-p", "8080:80", "--network", "onet", "busybox", "sh", "-c", httpd]);
    assert!(wait_until(Duration::from_secs(30), || counts(&lab.running_per_node(0, "web")) == vec![1, 1, 1]), "{}", lab.ok(0, &["service", "ps", "web"]));
    let mut seen = std::collections::BTreeSet::new();
    assert!(
        wait_until(Duration::from_secs(15), || {
            let o = lab.berth(1, &["exec", "b", "timeout", "3", "wget", "-qO-", "http://web/"]);
            if o.ok() {
                seen.insert(o.stdout.trim().to_string());
            }
            seen.len() == 3
        }),
        "the VIP spreads over the three nodes' replicas: {seen:?}"
    );
    let t0 = Instant::now();
    for (from, to) in [(2, "10.99.0.1"), (0, "10.99.0.2"), (1, "10.99.0.3")] {
        let url = format!("http://{to}:8080/");
        assert!(wait_until(Duration::from_secs(10), || lab.get(from, &url).is_some_and(|b| b.starts_with("web."))), "mesh {url} from h{from}");
    }
    eprintln!("the mesh answered on three nodes in {:?}", t0.elapsed());

    // The underlay cut under h2: its replica is placed again elsewhere and
    // the mesh keeps answering on the others.
    assert!(lab.host(2, &["ip", "link", "set", "eth0", "down"]).ok());
    let cut = Instant::now();
    let healed = wait_until(Duration::from_secs(25), || {
        let m = lab.running_per_node(0, "web");
        !m.keys().any(|k| k.ends_with("-h2")) && m.values().sum::<usize>() == 3
    });
    let took = cut.elapsed();
    assert!(lab.host(2, &["ip", "link", "set", "eth0", "up"]).ok());
    assert!(healed, "after {took:?}: {}", lab.ok(0, &["service", "ps", "web"]));
    eprintln!("a partitioned node's replica placed again in {took:?}");
    for _ in 0..4 {
        assert!(lab.get(1, "http://10.99.0.1:8080/").is_some_and(|b| b.starts_with("web.")));
    }

    // A rename reaches the other nodes' hosts files.
    lab.ok(0, &["rename", "a", "a2"]);
    assert!(wait_until(Duration::from_secs(10), || lab.berth(1, &["exec", "b", "ping", "-c", "1", "-W", "1", "a2"]).ok()), "{}", lab.ok(1, &["exec", "b", "cat", "/etc/hosts"]));

    // Removal: the names go, and the overlay's devices on every node.
    lab.ok(0, &["service", "rm", "web"]);
    lab.ok(0, &["rm", "-f", "a2", "d"]);
    lab.ok(1, &["rm", "-f", "b"]);
    lab.ok(2, &["rm", "-f", "c"]);
    // Each until it goes: a retry of all three would fail on the first
    // one removed already, while the service's tasks still hold svcnet.
    let gone = |n: &str| {
        let o = lab.berth(0, &["network", "rm", n]);
        o.ok() || o.stderr.contains("not found")
    };
    assert!(wait_until(Duration::from_secs(15), || ["onet", "other", "svcnet"].into_iter().all(gone)), "{}", lab.berth(0, &["network", "ls"]));
    for h in 0..3 {
        assert!(wait_until(Duration::from_secs(10), || !lab.host(h, &["ip", "-br", "link"]).stdout.contains("vx-")), "h{h} keeps VXLAN devices: {}", lab.host(h, &["ip", "-br", "link"]).stdout);
    }
}

#[test]
fn a_stack_deploys_over_the_swarm_by_placement_and_mode() {
    let env = Env::new("swarm_stack");
    let lab = Lab { env: &env, name: env.name("dc") };
    env.ok(&["lab", "hosts", &lab.name, "2", "--image", "busybox", "--swarm"]);
    let h1 = format!("{}-h1", lab.name);
    lab.ok(0, &["node", "update", "--label-add", "tier=front", &h1]);
    let compose = env.dir.join("compose.yaml");
    std::fs::write(
        &compose,
        r#"
services:
  web:
    image: busybox
    command: ["sh", "-c", "hostname > /var/www/index.html; exec httpd -f -p 80 -h /var/www"]
    ports: ["8081:80"]
    deploy:
      replicas: 2
      placement:
        constraints: ["node.labels.tier==front"]
  probe:
    image: busybox
    command: ["sleep", "1d"]
    deploy:
      mode: global
"#,
    )
    .unwrap();
    let bad = env.dir.join("bad.yaml");
    std::fs::write(&bad, "services:\n  web:\n    image: busybox\n    deploy:\n      placement:\n        constraints: [\"zone=a\"]\n").unwrap();
    let o = lab.berth(0, &["stack", "deploy", "-c", bad.to_str().unwrap(), "bad"]);
    assert!(o.code != 0 && o.stderr.contains("services.web.deploy.placement.constraints[0]"), "{o}");

    let o = lab.ok(0, &["stack", "deploy", "-c", compose.to_str().unwrap(), "shop"]);
    assert!(o.contains("shop_web") && o.contains("shop_probe"), "{o}");
    assert!(
        wait_until(Duration::from_secs(30), || {
            let ps = lab.ok(1, &["stack", "ps", "shop"]);
            ps.lines().filter(|l| l.contains("running")).count() == 4
        }),
        "{}",
        lab.ok(1, &["stack", "ps", "shop"])
    );
    let ps = lab.ok(0, &["stack", "ps", "shop"]);
    assert_eq!(ps.lines().filter(|l| l.contains("shop_web.") && l.contains(&h1)).count(), 2, "web only where tier=front: {ps}");
    assert_eq!(ps.lines().filter(|l| l.contains("shop_probe.")).count(), 2, "probe once per node: {ps}");
    let svcs = lab.ok(1, &["stack", "services", "shop"]);
    assert!(svcs.contains("global") && svcs.contains("*:8081->80/tcp"), "{svcs}");
    assert!(lab.ok(0, &["stack", "ls"]).contains("shop"));
    // The mesh on the node without a web task, and the short name from a
    // task of the other service.
    assert!(wait_until(Duration::from_secs(10), || lab.get(1, "http://10.99.0.1:8081/").is_some_and(|b| b.starts_with("shop_web."))));
    let probe = lab.ok(0, &["ps", "--format", "{{.Names}}"]);
    let probe = probe.lines().find(|n| n.starts_with("shop_probe")).expect("a probe on h0").to_string();
    assert!(wait_until(Duration::from_secs(10), || lab.berth(0, &["exec", &probe, "wget", "-qO-", "http://web/"]).stdout.starts_with("shop_web.")));

    // A stack from a script, on the swarm.
    let script = env.dir.join("stack.rhai");
    std::fs::write(
        &script,
        r#"
let st = stack("mon", #{ services: #{ agent: #{ image: "busybox", command: ["sleep", "1d"], deploy: #{ mode: "global" } } } });
let made = st.up();
assert_eq(made.len(), 1);
wait_for(|| st.service("agent").tasks().filter(|t| t.state == "running").len() == 2, 30000);
assert_eq(st.services()[0].name, "mon_agent");
assert(stacks().contains("mon"));
st.down();
print("stack on the swarm: ok");
"#,
    )
    .unwrap();
    let o = env.berth_timeout(&["lab", "exec", &lab.name, "h0", "berth", "run", script.to_str().unwrap()], Duration::from_secs(150));
    assert!(o.ok() && o.stdout.contains("stack on the swarm: ok"), "{o}");

    assert!(lab.ok(0, &["stack", "rm", "shop"]).contains("shop"));
    for h in 0..2 {
        assert!(wait_until(Duration::from_secs(15), || lab.ok(h, &["ps", "-aq"]).is_empty() && !lab.ok(h, &["network", "ls"]).contains("shop_")), "h{h}: {} {}", lab.ok(h, &["ps", "-a"]), lab.ok(h, &["network", "ls"]));
    }
    assert!(!lab.ok(1, &["stack", "ls"]).contains("shop"));
}
