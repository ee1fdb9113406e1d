//! Concurrent berth processes on one root: no corruption, no duplicate
//! names.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use crate::util::*;

#[test]
fn parallel_create_and_remove_with_distinct_names() {
    let env = Arc::new(Env::new("parallel_create_and_remove_with_distinct_names"));
    let mut handles = Vec::new();
    for t in 0..2 {
        let env = Arc::clone(&env);
        handles.push(thread::spawn(move || {
            let mut failures = Vec::new();
            let mut ids = Vec::new();
            for i in 0..10 {
                let name = env.name(&format!("t{t}-{i}"));
                let o = env.berth(&["create", "--name", &name, "busybox", "true"]);
                if !o.ok() {
                    failures.push(format!("create {name}: {o}"));
                    continue;
                }
                ids.push(o.out().to_string());
                let got = env.berth(&["inspect", "-f", "{{.Name}}", &name]);
                if got.out() != format!("/{name}") {
                    failures.push(format!("inspect {name}: {got}"));
                }
                let o = env.berth(&["rm", &name]);
                if !o.ok() {
                    failures.push(format!("rm {name}: {o}"));
                }
            }
            (failures, ids)
        }));
    }
    let mut all_ids = Vec::new();
    for h in handles {
        let (failures, ids) = h.join().unwrap();
        assert!(failures.is_empty(), "concurrent create/rm failed:\n{}", failures.join("\n"));
        all_ids.extend(ids);
    }
    assert_eq!(all_ids.len(), 20);
    assert!(unique(&all_ids), "two containers got the same id");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "every container was removed");
    let left: Vec<_> = std::fs::read_dir(env.root.join("containers")).map(|rd| rd.flatten().count()).into_iter().collect();
    assert!(left.iter().all(|n| *n == 0), "container dirs remain: {left:?}");
}

#[test]
fn same_name_race_has_one_winner() {
    let env = Arc::new(Env::new("same_name_race_has_one_winner"));
    let name = env.name("same");
    for round in 0..5 {
        let barrier = Arc::new(Barrier::new(2));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (env, barrier, name) = (Arc::clone(&env), Arc::clone(&barrier), name.clone());
                thread::spawn(move || {
                    barrier.wait();
                    env.berth(&["create", "--name", &name, "busybox", "true"])
                })
            })
            .collect();
        let outs: Vec<Out> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        let wins = outs.iter().filter(|o| o.ok()).count();
        assert_eq!(wins, 1, "round {round}: exactly one create may win:\n{}\n{}", outs[0], outs[1]);
        let loser = outs.iter().find(|o| !o.ok()).unwrap();
        assert!(loser.stderr.contains("already in use"), "round {round}: {loser}");
        let ps = env.ok(&["ps", "-a"]);
        assert_eq!(ps.lines().filter(|l| l.contains(&name)).count(), 1, "round {round}:\n{ps}");
        env.ok(&["rm", &name]);
    }
}

#[test]
fn parallel_runs_all_succeed() {
    let env = Arc::new(Env::new("parallel_runs_all_succeed"));
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let env = Arc::clone(&env);
            thread::spawn(move || env.berth(&["run", "--rm", "busybox", "sh", "-c", &format!("echo run-{i}")]))
        })
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        let o = h.join().unwrap();
        assert_eq!((o.code, o.out()), (0, format!("run-{i}").as_str()), "{o}");
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// The cycle script's lines, and the live networks the sampler saw.
struct LoadRun {
    outs: Vec<Out>,
    /// Snapshots of (network, subnet, [container ip]) taken while it ran.
    snapshots: Vec<Vec<(String, String, Vec<String>)>>,
    sampler_errors: Vec<String>,
}

/// Runs `workers` copies of scripts/load.d/cycle.rhai at once against one
/// root, `cycles` cycles each, while a sampler reads every network's
/// subnet and addresses over and over.
fn load(env: &Arc<Env>, workers: usize, cycles: usize) -> LoadRun {
    let script = format!("{REPO}/scripts/load.d/cycle.rhai");
    let barrier = Arc::new(Barrier::new(workers));
    let hs: Vec<_> = (0..workers)
        .map(|w| {
            let (env, barrier, script) = (Arc::clone(env), Arc::clone(&barrier), script.clone());
            thread::spawn(move || {
                barrier.wait();
                let id = format!("{workers}w{w}");
                let n = format!("n={cycles}");
                env.berth_timeout(&["run", &script, &format!("id={id}"), &n], Duration::from_secs(60 + 20 * cycles as u64))
            })
        })
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (env, done) = (Arc::clone(env), Arc::clone(&done));
        thread::spawn(move || {
            let (mut snaps, mut errors) = (Vec::new(), Vec::new());
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let ls = env.berth(&["network", "ls", "-q"]);
                let ids: Vec<&str> = ls.stdout.split_whitespace().collect();
                if ls.ok() && ids.is_empty() {
                    sleep_ms(200);
                    continue;
                }
                let mut a = vec!["network", "inspect"];
                a.extend(&ids);
                let o = env.berth(&a);
                // A network removed between ls and inspect is no error of berth's.
                if !ls.ok() || (!o.ok() && !o.stderr.contains("not found")) {
                    errors.push(format!("sampler: {ls}\n{o}"));
                } else if o.ok() {
                    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_default();
                    let snap = v
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|n| {
                            let ips = n["Containers"].as_object().into_iter().flatten().map(|(_, c)| c["IPv4Address"].as_str().unwrap_or("").to_string()).collect();
                            (n["Name"].as_str().unwrap_or("").to_string(), n["IPAM"]["Config"][0]["Subnet"].as_str().unwrap_or("").to_string(), ips)
                        })
                        .collect();
                    snaps.push(snap);
                }
                sleep_ms(200);
            }
            (snaps, errors)
        })
    };
    let outs = hs.into_iter().map(|h| h.join().unwrap()).collect();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (snapshots, sampler_errors) = sampler.join().unwrap();
    LoadRun { outs, snapshots, sampler_errors }
}

/// What a user must never see from berth under load: SQLite's busy and
/// locked errors, or anything that says "try again".
fn transient(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["database is locked", "database table is locked", "sqlite_busy", "busy", "temporarily unavailable", "try again", "resource deadlock"].iter().any(|w| t.contains(w))
}

fn check_load(env: &Env, workers: usize, cycles: usize, run: &LoadRun) {
    let mut names = Vec::new();
    let mut subnets = Vec::new();
    for (w, o) in run.outs.iter().enumerate() {
        assert!(o.ok(), "worker {w} of {workers} failed: {o}");
        assert!(!transient(&o.stderr) && !transient(&o.stdout), "worker {w}: a transient error reached the user: {o}");
        let cycles_seen: Vec<&str> = o.stdout.lines().filter(|l| l.starts_with("cycle ")).collect();
        assert_eq!(cycles_seen.len(), cycles, "worker {w}: {o}");
        for l in cycles_seen {
            let f: Vec<&str> = l.split_whitespace().collect();
            names.push(f[2].to_string());
            names.push(f[5].to_string());
        }
        let net = o.stdout.lines().find_map(|l| l.strip_prefix("network ")).unwrap_or_else(|| panic!("worker {w}: no network line: {o}"));
        subnets.push(net.split_whitespace().nth(1).unwrap_or("").to_string());
    }
    assert!(run.sampler_errors.is_empty(), "the sampler's own commands failed:\n{}", run.sampler_errors.join("\n"));
    assert!(unique(&names), "two containers had the same name: {names:?}");
    assert!(unique(&subnets), "two scripts' networks got the same subnet: {subnets:?}");
    assert!(run.snapshots.len() >= 3, "the sampler saw the networks only {} times", run.snapshots.len());
    for snap in &run.snapshots {
        let live: Vec<&String> = snap.iter().map(|(_, s, _)| s).collect();
        assert!(unique(&live), "two live networks with one subnet: {snap:?}");
        for (net, _, ips) in snap {
            assert!(unique(ips), "network {net}: two live containers with one address: {ips:?}");
        }
    }
    // Nothing left: berth's own check, then links, mounts and cgroups.
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert_eq!(env.ok(&["network", "ls", "-q"]).lines().count(), 1, "only the default network is left");
    let check = env.berth(&["system", "check"]);
    assert!(check.ok() && check.out() == "no leftovers", "{check}");
    let links = links_of(env);
    assert_eq!(links.len(), 1, "only the default network's bridge may be left: {links:?}");
    assert_eq!(mounts_under(&env.dir), Vec::<String>::new(), "mounts left");
    // The root's own parent stays (as docker's does), with no cgroup in it.
    let children = || cgroup_hierarchy_dirs(&env.cgroup_parent()).into_iter().flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten().filter(|e| e.path().is_dir()).map(|e| e.path())).collect::<Vec<_>>();
    assert!(wait_until(Duration::from_secs(5), || children().is_empty()), "cgroups left: {:?}", children());
}

/// Host links whose alias names this root as their owner.
fn links_of(env: &Env) -> Vec<String> {
    let tag = &env.nft_table()["berth_".len()..];
    let o = std::process::Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.contains(&format!("alias berth:{tag}:"))).map(String::from).collect()
}

/// Issue 15 "Load": two, then four scripts side by side on one root, each
/// making its own network and cycling containers with published ports
/// through create, start, exec and rm, and a container on the shared
/// default network. The full 500-cycle run is `scripts/load`.
#[test]
fn parallel_scripts_cycle_containers_without_errors_or_leaks() {
    let env = Arc::new(Env::new("parallel_scripts_cycle_containers_without_errors_or_leaks"));
    let cycles = 20;
    for workers in [2, 4] {
        let run = load(&env, workers, cycles);
        check_load(&env, workers, cycles, &run);
    }
}
