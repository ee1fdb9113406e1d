//! `berth test`: the runner over the fixture files in tests/scripts/.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::util::*;

fn fixture(name: &str) -> String {
    let f = Path::new(REPO).join("tests/scripts").join(name);
    assert!(f.exists(), "{} is missing", f.display());
    f.to_string_lossy().into_owned()
}

/// `berth test ARGS` with the fixture's name prefix and, for `selftest`,
/// the variable that lets the deliberately failing fixtures run.
fn berth_test(env: &Env, p: &str, selftest: bool, args: &[&str]) -> Out {
    let mut c = env.cmd(&[&["test"], args].concat());
    c.env("P", p).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if selftest {
        c.env("SELFTEST", "1");
    }
    collect(c.spawn().unwrap(), Duration::from_secs(120))
}

fn last_line(o: &Out) -> &str {
    o.stdout.lines().last().unwrap_or("")
}

fn runs_recorded(env: &Env) -> usize {
    std::fs::read_dir(env.root.join("test-runs")).map(|d| d.count()).unwrap_or(0)
}

fn assert_nothing_left(env: &Env) {
    assert_eq!(env.ok(&["ps", "-aq"]), "", "no container left");
    let nets = env.ok(&["network", "ls"]);
    assert!(nets.lines().skip(1).all(|l| l.split_whitespace().nth(1) == Some("bridge")), "only the default network: {nets}");
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "", "no volume left");
}

#[test]
fn a_passing_file_reports_each_test_and_removes_what_they_made() {
    let env = Env::new("runner_pass");
    let p = env.name("p");
    let o = berth_test(&env, &p, false, &[&fixture("pass.rhai")]);
    assert_eq!(o.code, 0, "{o}");
    for t in ["arithmetic and hooks", "two containers reach each other by name", "a published port answers http_get", "a volume made by the test"] {
        assert!(o.stdout.lines().any(|l| l.starts_with("ok   ") && l.contains(&format!("pass.rhai › {t} ("))), "a line for {t:?}:\n{o}");
    }
    assert!(o.stdout.contains("skip ") && o.stdout.contains("not on this machine (shows how a test is skipped)"), "{o}");
    assert_eq!(last_line(&o), "4 passed, 0 failed, 1 skipped", "{o}");
    assert_nothing_left(&env);
    assert_eq!(runs_recorded(&env), 0, "a finished run leaves no record");
}

#[test]
fn a_failure_shows_its_position_and_logs_and_is_cleaned_up() {
    let env = Env::new("runner_fail");
    let p = env.name("f");
    let junit = env.dir.join("report.xml");
    let o = berth_test(&env, &p, true, &["--junit", junit.to_str().unwrap(), &fixture("fail.rhai")]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stdout.contains("FAIL ") && o.stdout.contains("fail.rhai › sum is wrong"), "{o}");
    assert!(o.stdout.contains("fail.rhai:15:5: assert_eq failed: left 2 (i64), right 3 (i64)"), "position and reason: {o}");
    assert!(o.stdout.contains("assert_eq(1 + 1, 3);"), "the source line: {o}");
    // The last 20 log lines of the test's container, no more.
    assert!(o.stdout.contains(&format!("logs of {p}-talker")) && o.stdout.contains("| line-30") && o.stdout.contains("| line-11"), "{o}");
    assert!(!o.stdout.contains("| line-10\n"), "only the last 20 lines: {o}");
    assert!(o.stdout.contains("fail.rhai › passes after"), "the next test still runs: {o}");
    assert_eq!(last_line(&o), "2 passed, 1 failed", "{o}");
    assert_nothing_left(&env);

    let x = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(x.matches("<testcase ").count(), 3, "{x}");
    assert!(x.contains("tests=\"3\" failures=\"1\" skipped=\"0\""), "{x}");
    assert!(x.contains("name=\"sum is wrong\"") && x.contains("<failure message=\"") && x.contains("assert_eq(1 + 1, 3);"), "{x}");
}

#[test]
fn keep_on_failure_keeps_the_objects_until_clean() {
    let env = Env::new("runner_keep");
    let p = env.name("k");
    let o = berth_test(&env, &p, true, &["--keep-on-failure", "--filter", "sum is wrong", &fixture("fail.rhai")]);
    assert_eq!(o.code, 1, "{o}");
    assert_eq!(last_line(&o), "0 passed, 1 failed", "the filter ran one test: {o}");
    assert!(o.stdout.contains(&format!("container {p}-talker.")) && o.stdout.contains(&format!("network {p}-net.")), "{o}");
    // On the host the name carries the file's scope: talker.SCOPE.
    let talker = o.stdout.split(&format!("container {p}-talker.")).nth(1).map(|r| format!("{p}-talker.{}", &r[..6])).unwrap();
    assert_eq!(env.status(&talker), "running", "kept for inspection");
    let cmd = o.stdout.lines().find_map(|l| l.strip_prefix("remove them with: berth ")).unwrap_or_else(|| panic!("{o}"));
    let args: Vec<&str> = cmd.split_whitespace().collect();
    // No sweep takes kept objects, not even the next run's.
    let again = berth_test(&env, &p, false, &[&fixture("fail.rhai")]);
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(env.status(&talker), "running");
    let done = env.ok(&args);
    assert!(done.contains("removed 1 container(s), 1 network(s), 1 volume(s)"), "{done}");
    assert_nothing_left(&env);
    assert_eq!(runs_recorded(&env), 0);
}

fn start_hang(env: &Env, p: &str) -> Child {
    let child = env
        .cmd(&["test", &fixture("hang.rhai")])
        .env("P", p)
        .env("SELFTEST", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let made = wait_until(Duration::from_secs(30), || env.berth(&["volume", "ls", "-q"]).stdout.contains(&format!("{p}-vol")) && env.berth(&["ps", "-q"]).stdout.trim().len() == 12);
    assert!(made, "the hanging test made its objects");
    child
}

fn kill_runner(mut child: Child) {
    kill(child.id() as i32);
    let _ = child.wait();
}

#[test]
fn what_a_killed_run_left_is_removed_by_the_next_run_and_by_prune() {
    let env = Env::new("runner_killed");
    let p = env.name("h");
    kill_runner(start_hang(&env, &p));
    let ps = env.ok(&["ps", "--format", "json"]);
    assert!(ps.contains(&format!("\"Names\":\"{p}-c.")) && ps.contains("\"State\":\"running\""), "a killed runner cleans nothing, and its container carries the scope: {ps}");
    let o = berth_test(&env, &p, false, &[&fixture("pass.rhai")]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.starts_with("removed what 1 killed test run(s) left: 1 container(s), 1 network(s), 1 volume(s), 0 image(s)"), "{o}");
    assert_nothing_left(&env);

    // `system prune` sweeps a dead run too.
    kill_runner(start_hang(&env, &p));
    let o = env.ok(&["system", "prune", "-f"]);
    assert!(o.contains("Swept Test Runs (killed runners):"), "{o}");
    assert_nothing_left(&env);
    assert_eq!(runs_recorded(&env), 0);
}

#[test]
fn an_interrupted_run_cleans_up_before_it_exits() {
    let env = Env::new("runner_interrupted");
    let p = env.name("i");
    let child = start_hang(&env, &p);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = collect(child, Duration::from_secs(30));
    assert_eq!(o.code, 1, "{o}");
    assert_nothing_left(&env);
    assert_eq!(runs_recorded(&env), 0);
}

#[test]
fn files_run_in_parallel_with_jobs() {
    let env = Env::new("runner_jobs");
    let p = env.name("j");
    // Each file waits to see the other's container: with one job at a time
    // that never happens.
    let o = berth_test(&env, &p, true, &["--jobs", "2", &fixture("par1.rhai"), &fixture("par2.rhai")]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(last_line(&o), "2 passed, 0 failed", "{o}");
    assert_nothing_left(&env);
}

#[test]
fn what_a_failed_start_left_and_a_cached_build_are_handled() {
    let env = Env::new("runner_failed_start");
    let p = env.name("x");
    let dir = env.dir.join("t");
    std::fs::create_dir_all(dir.join("ctx")).unwrap();
    std::fs::write(dir.join("ctx/Dockerfile"), "FROM busybox\nRUN echo built > /b\n").unwrap();
    // The user's own image, built before the tests from the same context.
    env.ok(&["build", "-q", "-t", "mine:1", dir.join("ctx").to_str().unwrap()]);
    std::fs::write(
        dir.join("f.rhai"),
        format!(
            "test(\"a start that fails\", || {{\n    let failed = false;\n    try {{ run(\"busybox\", #{{ name: \"{p}\", cmd: [\"nosuch\"] }}); }} catch {{ failed = true; }}\n    assert(failed, \"it fails\");\n    let img = build(\"{}\");\n    assert_eq(run_once(img.id, [\"cat\", \"/b\"]).stdout, \"built\\n\");\n}});\n",
            dir.join("ctx").display()
        ),
    )
    .unwrap();
    let o = env.berth(&["test", dir.join("f.rhai").to_str().unwrap()]);
    assert!(o.code == 0 && o.stdout.ends_with("1 passed, 0 failed\n"), "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "the container whose start failed is gone too");
    assert!(env.ok(&["images"]).contains("mine"), "a cached build's image is the user's, and stays");
}

#[test]
fn each_file_gets_its_own_test_id() {
    let env = Env::new("runner_test_id");
    let dir = env.dir.join("ids");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["a.rhai", "b.rhai"] {
        std::fs::write(dir.join(f), "test(\"id\", || { assert_eq(TEST_ID.len(), 6); print(\"id=\" + TEST_ID); });\n").unwrap();
    }
    let o = env.berth(&["test", "--jobs", "2", dir.to_str().unwrap()]);
    let ids: std::collections::BTreeSet<&str> = o.stdout.lines().filter_map(|l| l.strip_prefix("id=")).collect();
    assert!(o.code == 0 && ids.len() == 2, "two files, two ids: {o}");
}

#[test]
fn one_file_twice_at_once_with_its_plain_names() {
    let env = Env::new("runner_scope_twice");
    let f = fixture("scoped.rhai");
    // Twice in one runner, and a second runner at the same time.
    let mut other = env.cmd(&["test", &f]);
    other.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let other = other.spawn().unwrap();
    let o = berth_test(&env, "", false, &["--jobs", "2", &f, &f]);
    let o2 = collect(other, Duration::from_secs(120));
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(last_line(&o), "6 passed, 0 failed", "{o}");
    assert_eq!(o.stdout.matches("after_all: db is running").count(), 2, "after_all ran once per file, before the fixture went: {o}");
    assert_eq!(o2.code, 0, "the second runner: {o2}");
    assert_eq!(last_line(&o2), "3 passed, 0 failed", "{o2}");
    assert_nothing_left(&env);
}

#[test]
fn two_files_with_the_same_names_keep_to_their_own() {
    let env = Env::new("runner_scope_two");
    let dir = env.dir.join("two");
    std::fs::create_dir_all(&dir).unwrap();
    for who in ["one", "two"] {
        std::fs::write(
            dir.join(format!("{who}.rhai")),
            format!(
                r#"before_all(|| {{
    network("net");
    run("busybox", #{{ name: "db", network: "net", cmd: ["sh", "-c", "echo {who} > /who; exec httpd -f -p 80 -h /"] }}).wait_for_port(80);
}});
test("db is {who}'s", || {{
    let web = run("busybox", #{{ name: "web", network: "net", cmd: ["sleep", "60"] }});
    // Long enough for both files to be up at once.
    for i in 0..20 {{
        let r = web.exec(["wget", "-q", "-O-", "http://db/who"]);
        assert_eq(r.stdout, "{who}\n", `the other file's db answered: ${{r.stdout}}${{r.stderr}}`);
        sleep(100);
    }}
    assert_eq(network("net").containers().len(), 2, "only this file's db and web on its net");
}});
"#
            ),
        )
        .unwrap();
    }
    let o = berth_test(&env, "", false, &["--jobs", "2", dir.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(last_line(&o), "2 passed, 0 failed", "{o}");
    assert_nothing_left(&env);
}

#[test]
fn a_fixed_subnet_or_port_two_files_want_names_the_other_file() {
    let env = Env::new("runner_scope_clash");
    let dir = env.dir.join("clash");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    // The same subnet and host port in both: whichever comes second fails
    // and is told who holds them; neither hangs.
    let body = format!(
        r#"test("fixed", || {{
    let n = network("net", #{{ subnet: "10.231.7.0/24" }});
    let c = run("busybox", #{{ name: "web", network: "net", publish: ["{port}:80"], cmd: ["sleep", "30"] }});
    sleep(4000);
}});
"#
    );
    for f in ["a.rhai", "b.rhai"] {
        std::fs::write(dir.join(f), &body).unwrap();
    }
    let o = berth_test(&env, "", false, &["--jobs", "2", dir.to_str().unwrap()]);
    assert_eq!(o.code, 1, "{o}");
    assert_eq!(last_line(&o), "1 passed, 1 failed", "{o}");
    assert!(o.stdout.contains("subnet 10.231.7.0/24 overlaps network net.") && o.stdout.contains("(made by test "), "the error names the other file's network: {o}");
    // The port: one file holds it, a second one asks for it.
    std::fs::write(dir.join("b.rhai"), format!(r#"test("port", || {{ sleep(800); run("busybox", #{{ name: "web", publish: ["{port}:80"], cmd: ["sleep", "5"] }}); }});"#)).unwrap();
    std::fs::write(dir.join("a.rhai"), format!(r#"test("port", || {{ run("busybox", #{{ name: "web", publish: ["{port}:80"], cmd: ["sleep", "30"] }}); sleep(3000); }});"#)).unwrap();
    let o = berth_test(&env, "", false, &["--jobs", "2", dir.to_str().unwrap()]);
    assert_eq!(last_line(&o), "1 passed, 1 failed", "{o}");
    assert!(o.stdout.contains(&format!("port {port}/tcp is already published by container web.")) && o.stdout.contains("a.rhai › port)"), "the error names the other file's container: {o}");
    assert_nothing_left(&env);
}

#[test]
fn bad_paths_and_broken_files_are_clear_errors() {
    let env = Env::new("runner_errors");
    let o = env.berth(&["test", &env.dir.join("nosuch").to_string_lossy()]);
    assert!(o.code != 0 && o.stderr.contains("no such test file or directory"), "{o}");
    let dir = env.dir.join("t");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("broken.rhai"), "test(\"x\", || {\n    let a = ;\n});\n").unwrap();
    std::fs::write(dir.join("typo.rhai"), "test(\"typo\", || {\n    contaner(\"x\");\n});\n").unwrap();
    let o = env.berth(&["test", dir.to_str().unwrap()]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stdout.contains("broken.rhai:2:13:"), "a syntax error has its position: {o}");
    assert!(o.stdout.contains("typo.rhai:2:5: Function not found: contaner"), "{o}");
    assert_eq!(last_line(&o), "0 passed, 2 failed", "{o}");
}
