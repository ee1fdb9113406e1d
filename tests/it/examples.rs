//! The examples/ scripts run as a user would run them, and the script
//! modules stdlib/lab.rhai and stdlib/wait.rhai.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

fn example(name: &str) -> String {
    let f = Path::new(REPO).join("examples").join(name);
    assert!(f.exists(), "{} is missing", f.display());
    f.to_string_lossy().into_owned()
}

/// `berth run examples/NAME ARGS...`.
fn run_example(env: &Env, name: &str, args: &[&str], timeout: Duration) -> Out {
    let f = example(name);
    let mut a = vec!["run", f.as_str()];
    a.extend_from_slice(args);
    env.berth_timeout(&a, timeout)
}

/// Writes `body` as a script in the test's directory and runs it.
fn run_script(env: &Env, file: &str, body: &str, timeout: Duration) -> Out {
    let f = env.dir.join(file);
    std::fs::write(&f, body).unwrap();
    env.berth_timeout(&["run", f.to_str().unwrap()], timeout)
}

/// Output lines with runs of spaces collapsed, for comparing table rows.
fn squeezed(s: &str) -> Vec<String> {
    s.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

/// Nothing of any kind is left in the root but the busybox image.
fn assert_all_removed(env: &Env) {
    assert_eq!(env.ok(&["ps", "-aq"]), "", "no container is left");
    let names: Vec<String> = json_lines(&env.ok(&["network", "ls", "--format", "json"])).iter().filter_map(|n| n["Name"].as_str().map(String::from)).filter(|n| n != "bridge").collect();
    assert!(names.is_empty(), "networks left: {names:?}");
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "", "no volume is left");
    let images = env.ok(&["images", "--format", "json"]);
    assert!(!images.contains("weblab"), "the lab's image is removed: {images}");
}

/// One JSON object a line, as `--format json` prints listings.
fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

/// Names of the running containers, sorted.
fn running(env: &Env) -> Vec<String> {
    let mut v: Vec<String> = json_lines(&env.ok(&["ps", "--format", "json"])).iter().filter_map(|c| c["Names"].as_str().map(String::from)).collect();
    v.sort();
    v
}

/// The "M 1100" lines a test script prints for a matrix, as rows of bools.
fn matrix(out: &str) -> Vec<Vec<bool>> {
    out.lines().filter_map(|l| l.strip_prefix("M ")).map(|r| r.chars().map(|c| c == '1').collect()).collect()
}

fn bits(rows: &[&str]) -> Vec<Vec<bool>> {
    rows.iter().map(|r| r.chars().map(|c| c == '1').collect()).collect()
}

/// Script lines printing pingall's matrix of `l.nodes` as "M 0110" rows.
const PRINT_MATRIX: &str = r#"
fn print_matrix(m) {
    for row in m {
        let s = "M ";
        for ok in row { s += if ok { "1" } else { "0" }; }
        print(s);
    }
}
"#;

// ---- the examples ----

#[test]
fn example_web_lab_serves_uploads_through_the_front_end() {
    let env = Env::new("example_web_lab");
    let port = free_port().to_string();
    let o = run_example(&env, "web-lab.rhai", &["prefix=t-", &format!("port={port}")], Duration::from_secs(120));
    assert_eq!(o.code, 0, "{o}");
    for want in [
        format!("front end answers on http://127.0.0.1:{port}/"),
        "uploaded smile".into(),
        "gallery lists: smile".into(),
        "picture ok".into(),
        "negative ok".into(),
        // md5sum of examples/web-lab/smile.pbm, worked out by the encoder.
        "digest ok: md5 c38e70ca776d05a264b0e6015d279077".into(),
        "a missing picture is a 404".into(),
        "web lab removed".into(),
    ] {
        assert!(o.stdout.contains(&want), "expected {want:?} in {o}");
    }
    assert_all_removed(&env);
    // The published port went with the front end.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err(), "port {port} is closed again");
}

#[test]
fn example_router_lab_joins_two_subnets() {
    let env = Env::new("example_router_lab");
    let o = run_example(&env, "router-lab.rhai", &[], Duration::from_secs(120));
    assert_eq!(o.code, 0, "{o}");
    let lines = squeezed(&o.stdout);
    let at = |title: &str| lines.iter().position(|l| l == title).unwrap_or_else(|| panic!("no {title:?} in {o}"));
    let (before, after, removed) = (at("before routing:"), at("after routing through the router:"), at("router unplugged from net b:"));
    assert_eq!(
        lines[before + 1..before + 6],
        ["from\\to a1 a2 b1 router", "a1 yes yes - yes", "a2 yes yes - yes", "b1 - - yes yes", "router yes yes yes yes"],
        "{o}"
    );
    assert_eq!(lines[after + 2..after + 6], ["a1 yes yes yes yes", "a2 yes yes yes yes", "b1 yes yes yes yes", "router yes yes yes yes"], "{o}");
    assert_eq!(lines[removed + 2..removed + 4], ["a1 yes -", "b1 - yes"], "{o}");
    assert!(o.stdout.contains("router lab removed (containers: 4, networks: 2)"), "{o}");
    assert_all_removed(&env);
}

/// "LABEL: avg X ms (min Y, max Z), L% lost" -> (avg, min, max, loss).
fn rtt_line(out: &str, label: &str) -> (f64, f64, f64, u32) {
    let l = out.lines().find_map(|l| l.strip_prefix(&format!("{label}: avg "))).unwrap_or_else(|| panic!("no {label:?} line in {out}"));
    let nums: Vec<f64> = l.split(|c: char| !(c.is_ascii_digit() || c == '.')).filter(|s| !s.is_empty()).filter_map(|s| s.parse().ok()).collect();
    assert_eq!(nums.len(), 4, "{l}");
    (nums[0], nums[1], nums[2], nums[3] as u32)
}

#[test]
fn example_impair_lab_measures_the_added_latency() {
    let env = Env::new("example_impair_lab");
    let o = run_example(&env, "impair-lab.rhai", &[], Duration::from_secs(120));
    assert_eq!(o.code, 0, "{o}");
    let plain = rtt_line(&o.stdout, "far, plain link");
    let slow = rtt_line(&o.stdout, "far, delay 50ms");
    let near = rtt_line(&o.stdout, "near, untouched");
    let lossy = rtt_line(&o.stdout, "near, loss 35%");
    let back = rtt_line(&o.stdout, "far, impairment removed");
    assert!(plain.0 < 20.0 && near.0 < 20.0 && back.0 < 20.0, "unimpaired links are fast: {o}");
    assert!(slow.1 >= 45.0 && slow.2 < 500.0, "50 ms show in every round trip: {o}");
    assert!(lossy.3 > 0 && lossy.3 < 100, "loss drops some packets: {o}");
    assert!(o.stdout.contains("impair lab removed (containers: 3, networks: 2)"), "{o}");
    assert_all_removed(&env);
}

#[test]
fn example_scale_lab_starts_and_pings_30_containers_quickly() {
    let env = Env::new("example_scale_lab");
    let t = Instant::now();
    let o = run_example(&env, "scale-lab.rhai", &[], Duration::from_secs(120));
    let took = t.elapsed();
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("30 containers started in"), "{o}");
    assert!(o.stdout.contains("pingall: 900 of 900 pairs reach each other"), "{o}");
    assert!(o.stdout.contains("(containers: 30, networks: 1)"), "{o}");
    assert!(took < Duration::from_secs(45), "the scale lab took {took:?}: {o}");
    assert_all_removed(&env);
}

#[test]
fn examples_with_prefixes_run_side_by_side_in_one_root() {
    let env = Env::new("examples_side_by_side");
    let f = example("router-lab.rhai");
    // Two copies of the same lab at once: names, labels and lab::down of one
    // must not touch the other.
    let runs: Vec<_> = ["prefix=a-", "prefix=b-"]
        .into_iter()
        .map(|p| {
            let child = env.cmd(&["run", &f, p]).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
            thread::spawn(move || collect(child, Duration::from_secs(120)))
        })
        .collect();
    for r in runs {
        let o = r.join().unwrap();
        assert_eq!(o.code, 0, "{o}");
        assert!(o.stdout.contains("router lab removed (containers: 4, networks: 2)"), "{o}");
    }
    // The prefix reaches the names.
    let o = run_example(&env, "hello.rhai", &["prefix=p1-"], Duration::from_secs(60));
    assert_eq!(o.code, 0, "{o}");
    let o = env.berth_timeout(&["run", &example("lab.rhai"), "prefix=p2-"], Duration::from_secs(60));
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("p2-lab-web: running"), "{o}");
    assert_all_removed(&env);
}

// ---- stdlib/lab.rhai ----

/// Makes a topology, prints its pingall matrix, and leaves it running.
fn make_lab(env: &Env, topology: &str) -> Out {
    let body = format!(
        "import \"lab\" as lab;\n{PRINT_MATRIX}\nlet l = {topology};\nlet m = lab::pingall(l.nodes);\nlab::show(m, l.nodes);\nprint_matrix(m);\nassert(m == lab::neighbours(l), \"pingall matches the links\");\n"
    );
    run_script(env, "make.rhai", &body, Duration::from_secs(90))
}

fn down(env: &Env, name: &str) -> String {
    let o = run_script(env, "down.rhai", &format!("import \"lab\" as lab;\nprint(lab::down(\"{name}\"));\n"), Duration::from_secs(60));
    assert_eq!(o.code, 0, "{o}");
    o.out().to_string()
}

#[test]
fn lab_chain_neighbours_reach_each_other_and_down_removes_it() {
    let env = Env::new("lab_chain");
    let t = Instant::now();
    let o = make_lab(&env, "lab::chain(\"ch\", 4, #{})");
    assert_eq!(o.code, 0, "{o}");
    // 4 rows, each with an unreachable peer: about a second a row.
    assert!(t.elapsed() < Duration::from_secs(20), "pingall of 4 took {:?}", t.elapsed());
    assert_eq!(matrix(&o.stdout), bits(&["1100", "1110", "0111", "0011"]), "{o}");
    assert_eq!(running(&env), ["ch-n0", "ch-n1", "ch-n2", "ch-n3"]);
    for n in ["ch-l0", "ch-l1", "ch-l2"] {
        let v: serde_json::Value = serde_json::from_str(&env.ok(&["network", "inspect", n])).unwrap();
        assert_eq!(v[0]["Labels"]["berth.lab"], "ch", "network {n} is labelled: {v}");
    }
    // n1 sits on l0 and l1.
    let v = env.inspect("ch-n1");
    let nets = v["NetworkSettings"]["Networks"].as_object().unwrap();
    assert!(nets.contains_key("ch-l0") && nets.contains_key("ch-l1") && nets.len() == 2, "{v}");
    assert_eq!(v["Config"]["Labels"]["berth.lab"], "ch");

    assert_eq!(down(&env, "ch"), "#{\"containers\": 4, \"networks\": 3}");
    assert_eq!(down(&env, "ch"), "#{\"containers\": 0, \"networks\": 0}", "a second down finds nothing");
    assert_all_removed(&env);
}

#[test]
fn lab_star_leaves_reach_only_the_hub() {
    let env = Env::new("lab_star");
    let o = make_lab(&env, "lab::star(\"st\", 3, #{ cmd: [\"sh\", \"-c\", \"sleep 600\"], labels: #{ role: \"node\" } })");
    assert_eq!(o.code, 0, "{o}");
    // Leaves n0..n2, then the hub.
    assert_eq!(matrix(&o.stdout), bits(&["1001", "0101", "0011", "1111"]), "{o}");
    let rows = squeezed(&o.stdout);
    assert!(rows.contains(&"st-hub yes yes yes yes".to_string()), "{o}");
    // The user's options reach the nodes; the lab's label is added to theirs.
    let v = env.inspect("st-hub");
    assert_eq!(v["Config"]["Labels"]["role"], "node");
    assert_eq!(v["Config"]["Labels"]["berth.lab"], "st");
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sh", "-c", "sleep 600"]));
    assert_eq!(down(&env, "st"), "#{\"containers\": 4, \"networks\": 3}");
    assert_all_removed(&env);
}

#[test]
fn lab_ring_closes_the_chain() {
    let env = Env::new("lab_ring");
    let o = make_lab(&env, "lab::ring(\"rg\", 4, #{})");
    assert_eq!(o.code, 0, "{o}");
    // n0 and n3 are neighbours; opposite nodes are not.
    assert_eq!(matrix(&o.stdout), bits(&["1101", "1110", "0111", "1011"]), "{o}");
    assert_eq!(down(&env, "rg"), "#{\"containers\": 4, \"networks\": 4}");
    assert_all_removed(&env);
}

#[test]
fn lab_down_leaves_other_labs_alone_and_router_joins_its_networks_lab() {
    let env = Env::new("lab_down_scope");
    let body = r#"
import "lab" as lab;
let a = lab::chain("one", 2, #{});
let b = lab::chain("two", 2, #{});
let plain = run("busybox", #{ name: "plain", cmd: ["sleep", "600"] });
let r = lab::router("one-r", a.networks[0], b.networks[0]);
assert_eq(r.labels["berth.lab"], "one");
print(r.exec(["sysctl", "net.ipv4.ip_forward"]).stdout);
print(lab::down("one"));
"#;
    let o = run_script(&env, "scope.rhai", body, Duration::from_secs(90));
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("net.ipv4.ip_forward = 1"), "{o}");
    assert!(o.stdout.contains("#{\"containers\": 3, \"networks\": 1}"), "{o}");
    assert_eq!(running(&env), ["plain", "two-n0", "two-n1"], "only lab one is gone");
    assert!(env.ok(&["network", "ls"]).contains("two-l0"));
    assert_eq!(down(&env, "two"), "#{\"containers\": 2, \"networks\": 1}");
    env.ok(&["rm", "-f", "plain"]);
    assert_all_removed(&env);
}

#[test]
fn lab_options_are_checked() {
    let env = Env::new("lab_options");
    let o = run_script(&env, "bad.rhai", "import \"lab\" as lab;\nlab::chain(\"bad\", 3, #{ network: \"x\" });\n", Duration::from_secs(30));
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("lab::chain(bad): option network is set by the lab itself"), "{o}");
    let o = run_script(&env, "bad2.rhai", "import \"lab\" as lab;\nlab::ring(\"bad\", 2, #{});\n", Duration::from_secs(30));
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("a ring needs at least 3 nodes, not 2"), "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "nothing was started");
}

// ---- stdlib/wait.rhai ----

/// Runs `calls` (each a wait:: expression) after `setup`, printing what each
/// threw as "ERR <i>: message" and its time as "MS <i>: n".
fn waits(env: &Env, setup: &str, calls: &[&str]) -> Out {
    let mut body = format!("import \"wait\" as wait;\n{setup}\n");
    for (i, c) in calls.iter().enumerate() {
        body += &format!(
            "{{ let t = timestamp(); try {{ {c}; print(\"OK {i}\"); }} catch (e) {{ print(`ERR {i}: ${{e}}`); }} print(`MS {i}: ${{(t.elapsed * 1000.0).to_int()}}`); }}\n"
        );
    }
    run_script(env, "waits.rhai", &body, Duration::from_secs(90))
}

fn line<'a>(o: &'a Out, prefix: &str) -> &'a str {
    o.stdout.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line {prefix:?} in {o}"))
}

fn ms(o: &Out, i: usize) -> u64 {
    line(o, &format!("MS {i}:")).rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn wait_succeeds_when_the_condition_comes_true() {
    let env = Env::new("wait_succeeds");
    let port = free_port();
    let setup = format!(
        r#"let c = run("busybox", #{{ name: "w", cmd: ["sh", "-c", "echo booting; sleep 1; echo ready; echo ready; touch /ready; httpd -f -p 80"],
                                publish: ["127.0.0.1:{port}:80"] }});"#
    );
    let o = waits(
        &env,
        &setup,
        &[
            "wait::log(c, \"ready\", #{ times: 2, timeout: 10000 })",
            "wait::port(c, 80, #{ timeout: 10000 })",
            &format!("assert_eq(wait::http(\"http://127.0.0.1:{port}/nosuch\", 404, #{{ timeout: 10000 }}).status, 404)"),
            "assert_eq(wait::command(c, [\"cat\", \"/etc/hostname\"], #{}).code, 0)",
            "assert_eq(wait::all([|| true, || c.exec([\"test\", \"-f\", \"/ready\"]).code == 0, || 7], #{}), [true, true, 7])",
            "assert_eq(wait::condition(|| c.state), \"running\")",
        ],
    );
    assert_eq!(o.code, 0, "{o}");
    for i in 0..6 {
        assert!(o.stdout.contains(&format!("OK {i}\n")), "wait {i} succeeded: {o}");
    }
    assert!(ms(&o, 0) >= 700, "wait::log waited for the log line: {o}");
    env.ok(&["rm", "-f", "w"]);
}

#[test]
fn wait_timeouts_show_the_last_observation() {
    let env = Env::new("wait_timeouts");
    let port = free_port();
    let setup = format!(
        r#"let c = run("busybox", #{{ name: "w", cmd: ["sh", "-c", "echo first line; echo second line; httpd -f -p 8080"],
                                publish: ["127.0.0.1:{port}:8080"] }});
wait::port(c, 8080, #{{ timeout: 10000 }});"#
    );
    let o = waits(
        &env,
        &setup,
        &[
            "wait::log(c, \"never\", #{ timeout: 500 })",
            "wait::log(c, \"line\", #{ timeout: 300, times: 3 })",
            "wait::port(c, 9999, #{ timeout: 400 })",
            "wait::command(c, [\"sh\", \"-c\", \"echo almost; echo broken >&2; exit 3\"], #{ timeout: 400 })",
            &format!("wait::http(\"http://127.0.0.1:{port}/missing\", 200, #{{ timeout: 400 }})"),
            "wait::http(\"http://127.0.0.1:1/\", 200, #{ timeout: 300 })",
            "wait::all([|| true, || false, || throw \"not yet\"], #{ timeout: 300 })",
            "wait::healthy(c)",
            "wait::log(c, \"x\", #{ timout: 300 })",
        ],
    );
    assert_eq!(o.code, 0, "{o}");
    let err = |i: usize| line(&o, &format!("ERR {i}:")).to_string();
    assert_eq!(err(0), r#"ERR 0: wait::log(w, "never"): not seen after 500 ms; last log lines: ["first line", "second line"]"#);
    assert!(err(1).contains("seen 2 of 3 times after 300 ms"), "{o}");
    assert_eq!(err(2), "ERR 2: wait::port(w, 9999): nothing listens on port 9999 after 400 ms; listening TCP ports: 8080; last log lines: [\"first line\", \"second line\"]");
    assert!(err(3).contains(r#"no success after 400 ms; last run: exit code 3, stdout "almost\n", stderr "broken\n""#), "{o}");
    assert!(err(4).contains(&format!("wait::http(http://127.0.0.1:{port}/missing, 200): no status 200 after 400 ms; last answer: status 404")), "{o}");
    assert!(err(5).contains("last answer:") && err(5).contains("refused"), "{o}");
    assert!(err(6).contains("2 of 3 conditions not met after 300 ms; condition 1 returned false; condition 2 threw: not yet"), "{o}");
    assert!(err(7).contains("container w has no health check"), "{o}");
    assert!(ms(&o, 7) < 1000, "no health check fails at once, not after the 30 s timeout: {o}");
    assert!(err(8).contains("unknown option timout; known: timeout, interval, times"), "{o}");
    // The timeouts were kept, give or take the last poll.
    for (i, t) in [(0, 500), (2, 400), (3, 400), (4, 400), (6, 300)] {
        let m = ms(&o, i);
        assert!(m >= t && m < t + 3000, "wait {i} took {m} ms for a timeout of {t}: {o}");
    }
    env.ok(&["rm", "-f", "w"]);
}

#[test]
fn wait_on_a_stopped_container_fails_at_once_and_uncaught_errors_end_the_script() {
    let env = Env::new("wait_stopped");
    let o = waits(
        &env,
        r#"let c = run("busybox", #{ name: "gone", cmd: ["sh", "-c", "echo bye; exit 4"] }); c.wait();"#,
        &["wait::port(c, 80)", "wait::log(c, \"hello\")", "wait::command(c, [\"true\"])"],
    );
    assert_eq!(o.code, 0, "{o}");
    assert!(line(&o, "ERR 0:").contains("wait::port(gone, 80): container gone is exited (exit code 4); last log lines: [\"bye\"]"), "{o}");
    assert!(line(&o, "ERR 1:").contains("container gone is exited (exit code 4) and the text was not seen"), "{o}");
    assert!(line(&o, "ERR 2:").contains("container gone is exited (exit code 4)"), "{o}");
    for i in 0..3 {
        assert!(ms(&o, i) < 5000, "wait {i} did not sit out its 30 s: {o}");
    }
    // Not caught, the error ends the script with code 1 and says why.
    let o = run_script(&env, "uncaught.rhai", "import \"wait\" as wait;\nwait::log(container(\"gone\"), \"hello\", #{ timeout: 100 });\nprint(\"not reached\");\n", Duration::from_secs(30));
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("wait::log(gone, \"hello\"): container gone is exited"), "{o}");
    assert!(!o.stdout.contains("not reached"), "{o}");
    env.ok(&["rm", "-f", "gone"]);
}
