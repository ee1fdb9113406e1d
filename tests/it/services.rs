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
    assert!(env.ok(&["ps"]).contains("(healthy)"), "ps shows it: {}", env.ok(&["ps"]));
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

/// One GET over a real TCP connection; the body, or None if refused.
fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&format!("127.0.0.1:{port}").parse().unwrap(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_once("\r\n\r\n").map(|(_, b)| b.trim().to_string())
}

/// Hostnames answering `n` requests on the published port.
fn seen(port: u16, n: usize) -> std::collections::BTreeSet<String> {
    (0..n).filter_map(|_| get(port, "/")).collect()
}

fn names(p: &str, slots: &[u32]) -> std::collections::BTreeSet<String> {
    slots.iter().map(|i| format!("{p}.{i}")).collect()
}

/// Each replica serves its own hostname.
const HOSTNAME_HTTPD: &str = "mkdir -p /w; hostname > /w/index.html; exec httpd -f -p 80 -h /w";

#[test]
fn replicas_behind_a_vip_and_a_port_follow_scale_and_come_back() {
    let env = Env::new("svc_scale");
    let net = env.name("net");
    env.ok(&["network", "create", &net]);
    let api = env.name("api");
    let port = free_port();
    // httpd as pid 1 ignores SIGTERM: a short grace keeps scale-down quick.
    env.ok(&["service", "create", "--name", &api, "--replicas", "3", "-p", &format!("{port}:80"), "--network", &net, "--stop-grace-period", "1s", "busybox", "sh", "-c", HOSTNAME_HTTPD]);
    let ls = env.ok(&["service", "ls"]);
    assert!(ls.contains(&api) && ls.contains("3/3"), "{ls}");
    // Through the published port, from the host: every replica answers.
    assert!(wait_until(Duration::from_secs(10), || seen(port, 9) == names(&api, &[1, 2, 3])), "three replicas behind the port: {:?}", seen(port, 9));
    // Through the VIP, by the service's name, from a container on the network.
    let o = env.berth(&["run", "--rm", "--network", &net, "busybox", "sh", "-c", &format!("for i in 1 2 3 4 5 6; do wget -q -O - http://{api}/; done")]);
    let via_vip: std::collections::BTreeSet<String> = o.stdout.lines().map(str::to_string).collect();
    assert_eq!(via_vip, names(&api, &[1, 2, 3]), "{o}");
    let insp: serde_json::Value = serde_json::from_str(&env.ok(&["service", "inspect", &api])).unwrap();
    let vip = insp[0]["Endpoint"]["VirtualIPs"][0]["Addr"].as_str().unwrap().to_string();
    assert!(o.code == 0 && !vip.is_empty(), "{insp}");

    // 3 -> 5: the new replicas join.
    env.ok(&["service", "scale", &format!("{api}=5")]);
    assert!(wait_until(Duration::from_secs(5), || seen(port, 15) == names(&api, &[1, 2, 3, 4, 5])), "five replicas: {:?}", seen(port, 15));
    // 5 -> 1: the others leave the balancing before they stop, so not one
    // request fails from the moment scale returns.
    env.ok(&["service", "scale", &format!("{api}=1")]);
    let answers: Vec<Option<String>> = (0..10).map(|_| get(port, "/")).collect();
    assert!(answers.iter().all(|a| a.as_deref() == Some(&format!("{api}.1"))), "only {api}.1 answers: {answers:?}");
    assert_eq!(env.ok(&["ps", "-q", "--filter", &format!("label=berth.service={api}")]).lines().count(), 1);

    // A replica that dies is replaced by its monitor, and serves again.
    env.ok(&["service", "scale", &format!("{api}=2")]);
    let r1 = format!("{api}.1");
    let pid: i32 = env.inspect_f(&r1, "{{.State.Pid}}").parse().unwrap();
    kill(pid);
    assert!(wait_until(Duration::from_secs(10), || env.inspect_f(&r1, "{{.RestartCount}}") == "1" && env.status(&r1) == "running"), "{} came back", r1);
    assert!(wait_until(Duration::from_secs(5), || seen(port, 6) == names(&api, &[1, 2])), "{:?}", seen(port, 6));
    // A replica stopped and started by hand (a fresh monitor) rejoins; a
    // paused one takes no requests until it is unpaused.
    env.ok(&["restart", "-t", "1", &r1]);
    assert!(wait_until(Duration::from_secs(5), || seen(port, 6) == names(&api, &[1, 2])), "after restart: {:?}", seen(port, 6));
    env.ok(&["pause", &r1]);
    let answers: Vec<Option<String>> = (0..6).map(|_| get(port, "/")).collect();
    assert!(answers.iter().all(|a| a.as_deref() == Some(&format!("{api}.2"))), "a paused replica is out: {answers:?}");
    env.ok(&["unpause", &r1]);
    assert!(wait_until(Duration::from_secs(5), || seen(port, 6) == names(&api, &[1, 2])), "after unpause: {:?}", seen(port, 6));
    // With no replica the VIP refuses connections (it is an address of the
    // host, whose own services must not answer in the replicas' place).
    env.ok(&["service", "scale", &format!("{api}=0")]);
    let o = env.berth(&["run", "--rm", "--network", &net, "busybox", "sh", "-c", &format!("wget -q -O - http://{vip}/ 2>&1; echo rc=$?")]);
    assert!(o.stdout.contains("rc=1") && o.stdout.to_lowercase().contains("refused"), "{o}");

    env.ok(&["service", "rm", &api]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert!(get(port, "/").is_none(), "the port is closed");
    let addrs = String::from_utf8_lossy(&std::process::Command::new("ip").args(["-o", "addr"]).output().unwrap().stdout).into_owned();
    assert!(!addrs.contains(&format!("inet {vip}/")), "the VIP is gone from the bridge: {addrs}");
    let o = env.berth(&["service", "ps", &api]);
    assert!(o.code != 0 && o.stderr.contains("no such service"), "{o}");
}

#[test]
fn a_rolling_update_waits_for_health_and_rolls_back_a_failing_image() {
    let env = Env::new("svc_update");
    let dir = env.dir.join("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    let img = |tag: &str, dockerfile: &str| {
        std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        let t = format!("{}:{tag}", env.name("web"));
        env.ok(&["build", "-q", "-t", &t, dir.to_str().unwrap()]);
        t
    };
    let serve = |v: &str| format!("FROM busybox\nHEALTHCHECK --interval=200ms --retries=2 CMD wget -q -O /dev/null http://127.0.0.1/\nCMD [\"sh\", \"-c\", \"mkdir -p /w; echo {v}-$(hostname) > /w/index.html; exec httpd -f -p 80 -h /w\"]\n");
    let v1 = img("1", &serve("v1"));
    let v2 = img("2", &serve("v2"));
    let bad = img("bad", "FROM busybox\nCMD [\"sh\", \"-c\", \"echo cannot start; exit 3\"]\n");
    let api = env.name("api");
    let port = free_port();
    env.ok(&["service", "create", "--name", &api, "--replicas", "2", "-p", &format!("{port}:80"), "--stop-grace-period", "1s", &v1]);
    // Healthy replicas only: both answer once their checks pass.
    assert!(wait_until(Duration::from_secs(10), || seen(port, 6).len() == 2), "{:?}", seen(port, 6));
    let o = env.berth(&["service", "update", "--image", &bad, &api]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains(&format!("replica {api}.1.next exited")) && o.stderr.contains("cannot start") && o.stderr.contains(&format!("rolled back 0 replaced replica(s) to {v1}")), "{o}");
    assert!(seen(port, 6).iter().all(|b| b.starts_with("v1-")), "still v1: {:?}", seen(port, 6));
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 2, "the failed replica is gone");

    // A good image goes through one replica at a time, each healthy first,
    // with no request failing on the way.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    let prober = std::thread::spawn(move || {
        let mut failures = 0;
        while !st.load(std::sync::atomic::Ordering::Relaxed) {
            if get(port, "/").is_none() {
                failures += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        failures
    });
    env.ok(&["service", "update", "--image", &v2, &api]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(prober.join().unwrap(), 0, "no request failed during the rolling update");
    let after = seen(port, 6);
    assert_eq!(after, names(&api, &[1, 2]).iter().map(|n| format!("v2-{n}")).collect(), "both replicas run v2 under their own names");
    let ps = env.ok(&["service", "ps", &api]);
    assert_eq!(ps.lines().filter(|l| l.split_whitespace().rev().nth(2) == Some("healthy")).count(), 2, "both healthy in the HEALTH column: {ps}");
    // Back by hand to what the update replaced, and forward again.
    assert!(env.ok(&["service", "rollback", &api]).ends_with(&format!("rolled back to {v1}")));
    assert!(seen(port, 6).iter().all(|b| b.starts_with("v1-")), "v1 again: {:?}", seen(port, 6));
    env.ok(&["service", "update", "--rollback", &api]);
    assert!(seen(port, 6).iter().all(|b| b.starts_with("v2-")), "and v2 again: {:?}", seen(port, 6));
    env.ok(&["service", "rm", &api]);
    let fresh = env.name("fresh");
    env.ok(&["service", "create", "--name", &fresh, "--replicas", "0", &v1]);
    let o = env.berth(&["service", "rollback", &fresh]);
    assert!(o.code != 0 && o.stderr.contains("nothing to roll back to"), "{o}");
}

#[test]
fn services_from_a_script_and_the_test_runner() {
    let env = Env::new("svc_script");
    let p = env.name("s");
    let port = free_port();
    let f = env.dir.join("svc.rhai");
    std::fs::write(
        &f,
        format!(
            r#"
test("a service from a script", || {{
    let s = service("{p}", #{{ image: "busybox", replicas: 2, publish: ["{port}:80"], stop_timeout: 1,
                              cmd: ["sh", "-c", "{HOSTNAME_HTTPD}"] }});
    assert_eq(s.replicas, 2);
    assert_eq(s.containers().len(), 2);
    assert(s.vip.starts_with("172.") || s.vip.len() > 6, s.vip);
    wait_for(|| {{ let seen = []; for i in 0..6 {{ try {{ seen.push(http_get("http://127.0.0.1:{port}/").body); }} catch {{ }} }} seen.contains(s.name + ".1\n") && seen.contains(s.name + ".2\n") }}, 10000);
    assert_eq(s.name, "{p}-" + TEST_ID, "under berth test the service's name carries the file's scope");
    s.scale(3);
    assert_eq(s.containers().len(), 3);
    assert_eq(service("{p}").replicas, 3);
    let same = service("{p}", #{{ image: "busybox", replicas: 3 }});
    assert_eq(same.id, s.id);
    let clash = false;
    try {{ service("{p}", #{{ image: "other", replicas: 1 }}); }} catch (e) {{ clash = e.to_string().contains("exists with image busybox"); }}
    assert(clash, "other settings are refused");
    // A rolling update of all three at once, then back.
    s.update(#{{ env: ["V=2"], parallelism: 3, monitor: 200 }});
    assert_eq(s.containers()[0].exec(["sh", "-c", "echo v$V"]).stdout, "v2\n");
    s.rollback();
    assert_eq(s.containers()[0].exec(["sh", "-c", "echo v$V"]).stdout, "v\n");
    // Left for the runner to remove.
}});
"#
        ),
    )
    .unwrap();
    let o = env.berth_timeout(&["test", f.to_str().unwrap()], Duration::from_secs(90));
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.ends_with("1 passed, 0 failed\n"), "{o}");
    assert_eq!(env.ok(&["service", "ls", "-q"]), "", "the runner removed the service");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn a_compose_stack_starts_in_order_and_leaves_nothing() {
    let env = Env::new("svc_stack");
    let port = free_port();
    // The course's example stack, built from examples/web-lab, on a subnet
    // of this test's own.
    let o = env
        .cmd(&["stack", "deploy", "-c", &format!("{REPO}/examples/shop/compose.yaml"), "shop"])
        .env("WEB_PORT", port.to_string())
        .env("SHOP_SUBNET", "10.231.7.0/24")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "Created service shop_encoder\nCreated service shop_storage\nCreated service shop_web\n");
    // web waited for storage to be healthy: storage's replica started first
    // and was healthy before web's started.
    let started = |c: &str| env.inspect_f(c, "{{.State.StartedAt}}");
    let storage_health: serde_json::Value = serde_json::from_str(&env.inspect_f("shop_storage.1", "{{json .State.Health}}")).unwrap();
    let first_ok = storage_health["Log"].as_array().unwrap().iter().find(|p| p["ExitCode"] == 0).map(|p| p["End"].as_str().unwrap().to_string()).unwrap();
    assert!(first_ok < started("shop_web.1"), "storage was healthy ({first_ok}) before web started ({})", started("shop_web.1"));
    let services = env.ok(&["stack", "services", "shop"]);
    assert!(services.contains("shop_encoder   2/2"), "{services}");
    // The front end answers on the published port and reaches storage and
    // the encoder by their short names.
    assert!(wait_until(Duration::from_secs(10), || get(port, "/").is_some_and(|b| b.contains("picture share"))), "front end");
    let up = env.berth(&["run", "--rm", "--network", "shop_shop", "web-stack-lab:1", "wget", "-q", "-O", "-", "--post-file", "/srv/samples/smile.pbm", "http://web/cgi-bin/upload?name=smile"]);
    assert!(up.code == 0 && up.stdout.contains("uploaded smile"), "{up}");
    assert!(get(port, "/cgi-bin/gallery").is_some_and(|g| g.contains("picture?name=smile")), "the gallery lists it");
    assert_eq!(env.ok(&["stack", "ls"]).lines().nth(1).unwrap().split_whitespace().take(2).collect::<Vec<_>>(), ["shop", "3"]);

    env.ok(&["stack", "rm", "shop"]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert_eq!(env.ok(&["service", "ls", "-q"]), "");
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
    assert!(!env.ok(&["network", "ls"]).contains("shop"), "no network left");
    assert!(!env.ok(&["images"]).contains("web-stack-lab"), "the built image is gone");
    assert!(get(port, "/").is_none());
}

#[test]
fn compose_mistakes_name_their_path_and_stacks_from_a_script() {
    let env = Env::new("svc_compose");
    let f = env.dir.join("bad.yaml");
    std::fs::write(&f, "services:\n  web:\n    image: busybox\n    ports: [\"8080:80\", \"eighty\"]\n").unwrap();
    let o = env.berth(&["stack", "deploy", "-c", f.to_str().unwrap(), "bad"]);
    assert!(o.code != 0 && o.stderr.contains("bad.yaml: services.web.ports[1]: invalid port spec \"eighty\""), "{o}");
    assert_eq!(env.ok(&["stack", "ls"]).lines().count(), 1, "nothing deployed");
    std::fs::write(&f, "services:\n  web:\n    image: busybox\n    colour: blue\n    deploy: {replicas: 0}\n").unwrap();
    let o = env.berth(&["stack", "deploy", "-c", f.to_str().unwrap(), "odd"]);
    assert!(o.code == 0 && o.stderr.contains("services.web.colour: unknown key, ignored"), "unknown keys are warned about: {o}");
    env.ok(&["stack", "rm", "odd"]);

    let p = env.name("s");
    let s = env.dir.join("stack.rhai");
    std::fs::write(
        &s,
        format!(
            r#"
test("a stack from a map", || {{
    let st = stack("{p}", #{{
        services: #{{
            init: #{{ image: "busybox", command: ["sh", "-c", "echo prepared; exit 0"] }},
            db: #{{ image: "busybox", command: "sh -c 'touch /ready; exec sleep 600'",
                   healthcheck: #{{ test: ["CMD", "test", "-f", "/ready"], interval: "200ms" }} }},
            app: #{{ image: "busybox", command: ["sleep", "600"], deploy: #{{ replicas: 2 }},
                    depends_on: #{{ init: #{{ condition: "service_completed_successfully" }}, db: #{{ condition: "service_healthy" }} }} }},
        }},
    }});
    let svcs = st.up();
    assert_eq(svcs.len(), 3);
    assert_eq(st.service("app").replicas, 2);
    assert_eq(st.service("init").containers()[0].exit_code, 0);
    assert_eq(st.service("db").containers()[0].health, "healthy");
    let r = st.service("app").containers()[0].exec(["ping", "-c", "1", "-W", "2", "db"]);
    assert_eq(r.code, 0, "app reaches db by its short name");
    // Left for the runner: the stack goes with the test.
}});
"#
        ),
    )
    .unwrap();
    let o = env.berth_timeout(&["test", s.to_str().unwrap()], Duration::from_secs(120));
    assert!(o.code == 0 && o.stdout.ends_with("1 passed, 0 failed\n"), "{o}");
    assert_eq!(env.ok(&["stack", "ls"]).lines().count(), 1, "the runner removed the stack");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn compose_env_files_binds_static_addresses_and_aliases() {
    let env = Env::new("svc_compose_keys");
    let dir = env.dir.join("app");
    std::fs::create_dir_all(dir.join("site")).unwrap();
    std::fs::write(dir.join("site/hello.txt"), "from the host\n").unwrap();
    std::fs::write(dir.join("app.env"), "# comment\nFROM_FILE=yes\nexport EXPORTED=1\n").unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        r#"
services:
  db:
    image: busybox
    entrypoint: ["sh", "-c"]
    # $$: a dollar for the container's shell, not compose's interpolation.
    command: ["echo $$FROM_FILE-$$EXPORTED-$$ROLE > /tmp/env; exec sleep 600"]
    env_file: app.env
    environment: {ROLE: db}
    volumes: ["./site:/site:ro", "data:/data"]
    restart: "no"
    networks:
      back:
        ipv4_address: 10.232.5.50
        aliases: [database]
  client:
    image: busybox
    command: sleep 600
    networks: [back]
networks:
  back:
    ipam:
      config: [{subnet: 10.232.5.0/24}]
volumes:
  data:
"#,
    )
    .unwrap();
    // -c relative to the working directory; binds relative to the file.
    let o = env.cmd(&["stack", "deploy", "-c", "app/compose.yaml", "keys"]).current_dir(&env.dir).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let db = "keys_db.1";
    assert_eq!(env.ok(&["exec", db, "cat", "/tmp/env"]), "yes-1-db", "env_file and environment");
    assert_eq!(env.ok(&["exec", db, "cat", "/site/hello.txt"]), "from the host", "a bind relative to the file");
    assert!(env.berth(&["exec", db, "touch", "/site/x"]).code != 0, "read-only");
    assert!(env.ok(&["exec", db, "sh", "-c", "ip -4 addr show eth0"]).contains("10.232.5.50/24"), "the static address");
    assert_eq!(env.inspect_f(db, "{{.HostConfig.RestartPolicy.Name}}"), "no");
    let o = env.berth(&["exec", "keys_client.1", "ping", "-c", "1", "-W", "2", "database"]);
    assert!(o.code == 0 && o.stdout.contains("10.232.5.50"), "the alias: {o}");
    assert!(env.ok(&["volume", "ls", "-q"]).contains("keys_data"));
    env.ok(&["stack", "rm", "keys"]);
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
}

#[test]
fn a_probe_past_its_timeout_is_killed_whole() {
    let env = Env::new("svc_probe_timeout");
    let c = env.name("hang");
    // A check that never answers: each probe must be killed at its
    // timeout, its command inside the container too.
    env.ok(&["run", "-d", "--name", &c, "--health-cmd", "sleep 1000", "--health-interval", "200ms", "--health-timeout", "300ms", "--health-retries", "2", "busybox", "sleep", "600"]);
    assert!(wait_until(Duration::from_secs(15), || health(&env, &c) == "unhealthy"), "{}", health(&env, &c));
    std::thread::sleep(Duration::from_secs(2));
    let ps = env.ok(&["exec", &c, "ps"]);
    let probes = ps.lines().filter(|l| l.contains("sleep 1000")).count();
    assert!(probes <= 1, "timed-out probes do not pile up: {ps}");
    let log = env.inspect_f(&c, "{{json .State.Health.Log}}");
    assert!(log.contains("exceeded its timeout"), "{log}");
}

#[test]
fn durations_read_as_docker_reads_them() {
    let env = Env::new("svc_durations");
    // The command line: Go's forms, minutes included.
    let c = env.name("hc");
    env.run_detached(&c, &["--health-cmd", "true", "--health-interval", "1m", "--health-timeout", "1m30s", "busybox", "sleep", "60"]);
    let h = &env.inspect(&c)["Config"]["Healthcheck"];
    assert_eq!((h["Interval"].as_u64(), h["Timeout"].as_u64()), (Some(60_000_000_000), Some(90_000_000_000)), "{h}");
    let o = env.berth(&["run", "--rm", "--health-cmd", "true", "--health-interval", "5 parsecs", "busybox", "true"]);
    assert!(o.code == 125 && o.stderr.contains("--health-interval") && o.stderr.contains("1m30s"), "{o}");
    // A Dockerfile's HEALTHCHECK flags.
    let dir = env.dir.join("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nHEALTHCHECK --interval=1m30s --timeout=2s CMD true\n").unwrap();
    let tag = format!("{}:1", env.name("img"));
    env.ok(&["build", "-q", "-t", &tag, dir.to_str().unwrap()]);
    let j: serde_json::Value = serde_json::from_str(&env.ok(&["image", "inspect", &tag])).unwrap();
    let j = if j.is_array() { j[0].clone() } else { j };
    assert_eq!(j["Config"]["Healthcheck"]["Interval"].as_u64(), Some(90_000_000_000), "{j}");
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nHEALTHCHECK --interval=90 CMD true\n").unwrap();
    let o = env.berth(&["build", "-q", "-t", &tag, dir.to_str().unwrap()]);
    assert!(o.code != 0 && o.stderr.contains("Dockerfile:2") && o.stderr.contains("needs a unit"), "a bare number was silently 0 before: {o}");
    // A compose file's healthcheck and stop_grace_period.
    let stack = env.name("st");
    let f = env.dir.join("compose.yaml");
    std::fs::write(&f, "services:\n  web:\n    image: busybox\n    command: [\"sleep\", \"60\"]\n    stop_grace_period: 1m\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 1m30s\n").unwrap();
    env.ok(&["stack", "deploy", "-c", f.to_str().unwrap(), &stack]);
    let ids = env.ok(&["ps", "-q", "-f", &format!("name={stack}_web")]);
    let id = ids.lines().next().unwrap_or_else(|| panic!("a replica of {stack}_web: {ids}"));
    let j = env.inspect(id);
    assert_eq!(j["Config"]["Healthcheck"]["Interval"].as_u64(), Some(90_000_000_000), "{j}");
    assert_eq!(j["Config"]["StopTimeout"].as_u64(), Some(60), "{}", j["Config"]);
    env.ok(&["stack", "rm", &stack]);
}

/// The service's supervisor, by its command line.
fn supervisor(env: &Env) -> Option<i32> {
    pids_with_env("BERTH_ROOT", &env.root).into_iter().find(|p| String::from_utf8_lossy(&std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default()).contains("\0supervise\0"))
}

/// Waits until slot `r` holds a running replica other than `old`.
fn replaced(env: &Env, r: &str, old: &str) -> bool {
    wait_until(Duration::from_secs(15), || {
        let o = env.berth(&["inspect", "-f", "{{.Id}} {{.State.Status}}", r]);
        o.ok() && !o.stdout.starts_with(old) && o.stdout.trim().ends_with("running")
    })
}

#[test]
fn a_lost_replica_is_replaced_whatever_took_it() {
    let env = Env::new("svc_heal");
    let web = env.name("web");
    env.ok(&["service", "create", "--name", &web, "--replicas", "2", "--stop-grace-period", "1s", "busybox", "sleep", "1d"]);
    let (r1, r2) = (format!("{web}.1"), format!("{web}.2"));
    let other = env.full_id(&r2);
    assert!(supervisor(&env).is_some(), "create starts the service's supervisor");
    for way in ["kill", "stop", "rm -f", "a crash of the replica and its monitor"] {
        let old = env.full_id(&r1);
        match way {
            "kill" => drop(env.ok(&["kill", &r1])),
            "stop" => drop(env.ok(&["stop", "-t", "1", &r1])),
            "rm -f" => drop(env.ok(&["rm", "-f", &r1])),
            _ => {
                let init = env.pid(&r1);
                let monitor = pids_with_env("BERTH_ROOT", &env.root)
                    .into_iter()
                    .find(|p| String::from_utf8_lossy(&std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default()).contains(&format!("monitor\0{old}")))
                    .expect("the replica's monitor");
                kill(monitor);
                kill(init);
            }
        }
        assert!(replaced(&env, &r1, &old), "after {way}, {r1} was not replaced: {}", env.ok(&["service", "ps", &web]));
    }
    assert_eq!(env.full_id(&r2), other, "the other replica was left alone");
    assert!(env.ok(&["service", "ls"]).contains("2/2"));
    // A restart by hand is not a loss: the same container comes back.
    let id = env.full_id(&r1);
    env.ok(&["restart", "-t", "1", &r1]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!((env.full_id(&r1), env.status(&r1)), (id, "running".to_string()), "restart keeps the replica");

    // The supervisor killed: the check says so, and the next look at the
    // services brings it back.
    kill(supervisor(&env).unwrap());
    assert!(wait_until(Duration::from_secs(5), || supervisor(&env).is_none()));
    let o = env.berth(&["system", "check"]);
    assert!(o.stdout.contains("no supervisor keeps its replicas"), "{o}");
    env.ok(&["service", "ls"]);
    assert!(supervisor(&env).is_some(), "service ls starts it again");
    let old = env.full_id(&r1);
    env.ok(&["kill", &r1]);
    assert!(replaced(&env, &r1, &old), "the new supervisor heals too");
    assert_eq!(env.ok(&["system", "check"]), "no leftovers");

    env.ok(&["service", "rm", &web]);
    assert!(wait_until(Duration::from_secs(5), || supervisor(&env).is_none()), "the supervisor leaves with its service");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// `--restart-condition none`: a replica that stops stays stopped, as in
/// swarm; one that is removed is still replaced.
#[test]
fn restart_condition_none_leaves_a_stopped_replica() {
    let env = Env::new("svc_heal_none");
    let web = env.name("web");
    env.ok(&["service", "create", "--name", &web, "--replicas", "1", "--restart-condition", "none", "busybox", "sleep", "1d"]);
    let r1 = format!("{web}.1");
    let old = env.full_id(&r1);
    env.ok(&["kill", &r1]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!((env.full_id(&r1), env.status(&r1)), (old.clone(), "exited".to_string()));
    env.ok(&["rm", &r1]);
    assert!(replaced(&env, &r1, &old), "a removed replica is replaced: {}", env.ok(&["service", "ps", &web]));
}

#[test]
fn a_service_from_a_script_heals() {
    let env = Env::new("svc_heal_script");
    let p = env.name("s");
    let f = env.dir.join("heal.rhai");
    std::fs::write(
        &f,
        format!(
            r#"
let s = service("{p}", #{{ image: "busybox", replicas: 2, cmd: ["sleep", "1d"], stop_timeout: 1 }});
let old = s.containers()[0];
let old_id = old.id;
old.kill();
wait_for(|| {{ let cs = s.containers(); cs.len() == 2 && cs.all(|c| c.state == "running") && !cs.some(|c| c.id == old_id) }}, 15000);
print("healed");
s.remove();
"#
        ),
    )
    .unwrap();
    let out = env.berth_timeout(&["run", f.to_str().unwrap()], Duration::from_secs(60));
    assert!(out.ok() && out.stdout.contains("healed"), "{out}");
}
