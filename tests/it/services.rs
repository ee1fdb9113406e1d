//! Health checks, services (replicas behind a VIP) and stacks.

use std::time::Duration;

use crate::util::*;

fn health(env: &Env, c: &str) -> String {
    env.inspect_f(c, "{{.State.Health.Status}}")
}

#[test]
fn health_checks_follow_the_container_and_the_image() {
    let env = Env::new("health_checks_follow_the_container_and_the_image");
    let c = env.name("hc");
    env.ok(&["run", "-d", "--name", &c, "--health-cmd", "test -f /ready", "--health-interval", "200ms", "--health-retries", "2", "busybox", "sleep", "60"]);
    assert_eq!(health(&env, &c), "starting");
    assert!(wait_until(Duration::from_secs(10), || health(&env, &c) == "unhealthy"), "two failed probes: {}", health(&env, &c));
    env.ok(&["exec", &c, "touch", "/ready"]);
    assert!(wait_until(Duration::from_secs(10), || health(&env, &c) == "healthy"), "a passing probe: {}", health(&env, &c));
    let insp = env.ok(&["inspect", &c]);
    assert!(insp.contains("\"FailingStreak\": 0") && insp.contains("\"Test\": [\n") && insp.contains("CMD-SHELL"), "{insp}");

    // An image's HEALTHCHECK applies; --no-healthcheck switches it off.
    let dir = env.dir.join("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nHEALTHCHECK --interval=200ms --retries=1 CMD test -f /etc/passwd\nCMD [\"sleep\", \"60\"]\n").unwrap();
    let tag = format!("{}:1", env.name("img"));
    env.ok(&["build", "-q", "-t", &tag, dir.to_str().unwrap()]);
    let i = env.name("i");
    env.ok(&["run", "-d", "--name", &i, &tag]);
    assert!(wait_until(Duration::from_secs(10), || health(&env, &i) == "healthy"), "{}", health(&env, &i));
    let n = env.name("n");
    env.ok(&["run", "-d", "--name", &n, "--no-healthcheck", &tag]);
    std::thread::sleep(Duration::from_millis(600));
    let h = env.inspect_f(&n, "{{.State.Health}}");
    assert!(h == "null" || h == "<no value>", "no health check runs: {h}");
    let o = env.berth(&["run", "--health-interval", "soon", "busybox", "true"]);
    assert!(o.code == 125 && o.stderr.contains("--health-interval"), "{o}");
}

#[test]
fn health_from_a_script() {
    let env = Env::new("health_from_a_script");
    let p = env.name("s");
    let f = env.dir.join("h.rhai");
    std::fs::write(
        &f,
        format!(
            r#"
let c = run("busybox", #{{ name: "{p}", cmd: ["sh", "-c", "sleep 1; touch /ready; sleep 60"],
                          health: #{{ cmd: ["test", "-f", "/ready"], interval: 200, retries: 50 }} }});
assert_eq(c.health, "starting");
wait_for(|| c.health == "healthy", 10000);
assert_eq(c.inspect().State.Health.Status, "healthy");
let plain = run("busybox", #{{ name: "{p}-plain", cmd: ["sleep", "60"] }});
assert_eq(plain.health, "none");
let bad = false;
try {{ run("busybox", #{{ health: #{{ cmd: ["true"], every: 5 }} }}); }} catch (e) {{ bad = e.to_string().contains("unknown health option \"every\""); }}
assert(bad, "a typo in health options is named");
c.remove(#{{ force: true }}); plain.remove(#{{ force: true }});
print("health ok");
"#
        ),
    )
    .unwrap();
    let o = env.berth_timeout(&["run", f.to_str().unwrap()], Duration::from_secs(60));
    assert!(o.code == 0 && o.stdout.contains("health ok"), "{o}");
}
