//! Concurrent berth processes on one root: no corruption, no duplicate
//! names.

use std::sync::{Arc, Barrier};
use std::thread;

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
