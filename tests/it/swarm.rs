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
            if f.get(3) == Some(&"running") {
                *m.entry(f[2].to_string()).or_default() += 1;
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
    let o = lab.ok(0, &["swarm", "init", "--advertise-addr", "10.99.0.1", "--name", "n0"]);
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
