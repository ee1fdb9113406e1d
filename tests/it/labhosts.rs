//! Lab hosts: several "machines" on one as network namespaces, each with
//! its own berth root, on an underlay bridge (`berth lab`, `lab::hosts`).

use std::time::Duration;

use crate::util::*;

/// Links that carry the lab's alias, wherever they are in this namespace.
fn lab_links(lab: &str) -> Vec<String> {
    let out = std::process::Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    let want = format!(":lab:{lab}");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(&want)).map(str::to_string).collect()
}

#[test]
fn hosts_run_their_own_containers_reach_each_other_and_go_whole() {
    let env = Env::new("labhosts_cli");
    let lab = env.name("dc");
    let o = env.ok(&["lab", "hosts", &lab, "2", "--image", "busybox"]);
    assert_eq!(o, format!("{lab}-h0\t10.99.0.1\n{lab}-h1\t10.99.0.2").trim_end());
    assert!(env.ok(&["lab", "ls"]).contains(&format!("{lab}\t2 hosts")));
    // Each host is its own berth: its own images, containers and networks.
    assert!(env.ok(&["lab", "exec", &lab, "h0", "berth", "images"]).contains("busybox"));
    env.ok(&["lab", "exec", &lab, "h0", "berth", "run", "-d", "--name", "a", "busybox", "sleep", "1d"]);
    assert_eq!(env.ok(&["lab", "exec", &lab, "h0", "berth", "ps", "--format", "{{.Names}}"]), "a");
    assert_eq!(env.ok(&["lab", "exec", &lab, &format!("{lab}-h1"), "berth", "ps", "-q"]), "", "h1 does not see h0's container");
    assert_eq!(env.ok(&["ps", "-q"]), "", "nor does the machine's own root");
    let o = env.ok(&["lab", "exec", &lab, "h1", "berth", "run", "--rm", "busybox", "sh", "-c", "ip -4 -o addr show eth0 | wc -l"]);
    assert_eq!(o, "1", "a container on a host has its bridge network");
    // The underlay joins the hosts, and only them.
    let o = env.berth(&["lab", "exec", &lab, "h1", "busybox", "ping", "-c1", "-W2", "10.99.0.1"]);
    assert!(o.ok() && o.stdout.contains("1 packets received"), "{o}");
    // Mistakes name the lab and the fix.
    let o = env.berth(&["lab", "hosts", &lab, "3"]);
    assert!(o.code != 0 && o.stderr.contains("already has 2 hosts") && o.stderr.contains("lab down"), "{o}");
    let o = env.berth(&["lab", "exec", &lab, "h7", "true"]);
    assert!(o.code != 0 && o.stderr.contains(&format!("{lab}-h0, {lab}-h1")), "{o}");
    let o = env.berth(&["lab", "hosts", "no/good", "2"]);
    assert!(o.code != 0 && o.stderr.contains("lab name"), "{o}");
    assert_eq!(env.ok(&["system", "check"]), "no leftovers", "a lab's links are its own, not leftovers");

    let roots: Vec<std::path::PathBuf> = (0..2).map(|i| env.root.join("labhosts").join(&lab).join(format!("{lab}-h{i}"))).collect();
    assert_eq!(env.ok(&["lab", "down", &lab]), format!("lab {lab}: 2 host(s) removed"));
    assert!(lab_links(&lab).is_empty(), "links left: {:?}", lab_links(&lab));
    for r in &roots {
        assert!(wait_until(Duration::from_secs(5), || pids_with_env("BERTH_ROOT", r).is_empty()), "processes of {} left", r.display());
        assert!(!r.exists());
    }
    assert!(mounts_under(&env.dir).is_empty(), "{:?}", mounts_under(&env.dir));
    assert_eq!(env.ok(&["lab", "ls"]), "");
    assert_eq!(env.ok(&["lab", "down", &lab]), format!("lab {lab}: 0 host(s) removed"), "twice is harmless");
}

#[test]
fn hosts_from_a_script() {
    let env = Env::new("labhosts_script");
    let lab = env.name("dc");
    let f = env.dir.join("hosts.rhai");
    std::fs::write(
        &f,
        format!(
            r#"
import "lab" as lab;
let dc = lab::hosts("{lab}", 3, #{{ images: ["busybox"] }});
assert_eq(dc.hosts.len(), 3);
assert_eq(dc.hosts[2].addr, "10.99.0.3");
let h = dc.hosts[1];
assert_eq(h.berth(["run", "-d", "--name", "web", "busybox", "httpd", "-f", "-p", "8080"]).code, 0);
let r = dc.hosts[0].exec(["busybox", "ping", "-c1", "-W2", h.addr]);
assert_eq(r.code, 0, r.stdout + r.stderr);
assert_eq(h.berth(["ps", "--format", "{{{{.Names}}}}"]).stdout, "web\n");
assert_eq(dc.hosts[2].berth(["ps", "-q"]).stdout, "");
let again = lab::hosts("{lab}", 3);
assert_eq(again.hosts[1].root, h.root);
let gone = lab::down("{lab}");
print(`hosts removed: ${{gone.hosts}}`);
"#
        ),
    )
    .unwrap();
    let o = env.berth_timeout(&["run", f.to_str().unwrap()], Duration::from_secs(120));
    assert!(o.ok() && o.stdout.contains("hosts removed: 3"), "{o}");
    assert_eq!(env.ok(&["lab", "ls"]), "");
}
