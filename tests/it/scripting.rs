//! The Rhai front: script files, the examples, error reports, the REPL.

use std::path::Path;
use std::time::Duration;

use crate::util::*;

fn repo_file(p: &str) -> String {
    let f = Path::new(REPO).join(p);
    assert!(f.exists(), "{} is missing", f.display());
    f.to_string_lossy().into_owned()
}

#[test]
fn smoke_script_passes() {
    let env = Env::new("smoke_script_passes");
    let o = env.berth_timeout(&["run", &repo_file("tests/scripts/smoke.rhai")], Duration::from_secs(90));
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("smoke ok"), "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "the script removes what it made");
}

#[test]
fn example_hello_runs() {
    let env = Env::new("example_hello_runs");
    let o = env.berth_timeout(&["run", &repo_file("examples/hello.rhai")], Duration::from_secs(60));
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("hello from greeter"), "{o}");
    assert!(o.stdout.contains("exec said greeter"), "{o}");
    assert!(o.stdout.contains("one-shot"), "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn example_lab_runs_and_tears_down() {
    let env = Env::new("example_lab_runs_and_tears_down");
    let o = env.berth_timeout(&["run", &repo_file("examples/lab.rhai")], Duration::from_secs(60));
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("step 3"), "{o}");
    assert!(o.stdout.contains("lab-web: running"), "{o}");
    assert!(o.stdout.contains("lab removed"), "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn script_arguments_reach_argv() {
    let env = Env::new("script_arguments_reach_argv");
    let f = env.dir.join("argv.rhai");
    std::fs::write(&f, "print(ARGV.len()); print(ARGV[1] + \"-\" + ARGV[2]);").unwrap();
    let o = env.berth(&["run", f.to_str().unwrap(), "a", "b"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "3\na-b\n"), "{o}");
}

#[test]
fn engine_error_names_file_line_and_column() {
    let env = Env::new("engine_error_names_file_line_and_column");
    let f = env.dir.join("bad.rhai");
    std::fs::write(&f, "let x = 1;\nlet c = run(\"nosuchimage\", #{ cmd: [\"true\"] });\n").unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert_eq!(o.code, 1, "{o}");
    let want = format!("{}:2:9: No such image: nosuchimage", f.display());
    assert!(o.stderr.contains(&want), "expected {want:?} in {o}");
    assert!(o.stderr.contains("let c = run(\"nosuchimage\""), "the source line is shown: {o}");
    assert!(o.stderr.contains("        ^"), "a caret points at the call: {o}");
}

#[test]
fn typo_in_an_option_is_an_error() {
    let env = Env::new("typo_in_an_option_is_an_error");
    let f = env.dir.join("typo.rhai");
    std::fs::write(&f, "run(\"busybox\", #{ cmd: [\"true\"], memroy: \"32m\" });\n").unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("unknown run option \"memroy\""), "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "nothing was created");
}

#[test]
fn syntax_error_is_reported_with_position() {
    let env = Env::new("syntax_error_is_reported_with_position");
    let f = env.dir.join("syntax.rhai");
    std::fs::write(&f, "let a = 1;\nlet b = (2 + ;\n").unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains(&format!("{}:2:", f.display())), "{o}");
}

#[test]
fn repl_keeps_state_prints_tables_and_survives_errors() {
    let env = Env::new("repl_keeps_state_prints_tables_and_survives_errors");
    let name = env.name("r1");
    let o = env.script(
        "berth repl",
        &[
            &format!("let c = run(\"busybox\", #{{ name: \"{name}\", cmd: [\"sleep\", \"60\"] }});\n"),
            "fn twice(x) { x * 2 }\n",
            "print(twice(21));\n",
            "container(\"nosuch\")\n",
            "containers()\n",
            "c.remove(#{ force: true });\n",
            "print(\"still-\" + \"alive\");\n",
            "\x04",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("42"), "functions persist: {o}");
    assert!(o.stdout.contains("No such container: nosuch") || o.stderr.contains("No such container: nosuch"), "{o}");
    assert!(o.stdout.contains("CONTAINER ID") && o.stdout.contains(&name), "containers() prints like ps: {o}");
    assert!(o.stdout.contains("still-alive"), "the session survives an error: {o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn networks_and_volumes_filter_by_label() {
    let env = Env::new("networks_and_volumes_filter_by_label");
    let p = env.name("l");
    let f = env.dir.join("labels.rhai");
    std::fs::write(
        &f,
        format!(
            r#"
let v = volume("{p}v1", #{{ labels: #{{ team: "a" }} }});
let w = volume("{p}v2");
assert_eq(volumes(#{{ label: "team=a" }}).len(), 1);
assert_eq(volumes(#{{ label: "team=b" }}).len(), 0);
assert_eq(v.labels.team, "a");
let n = network("{p}n1", #{{ labels: #{{ team: "a" }} }});
let m = network("{p}n2");
assert_eq(networks(#{{ label: "team" }}).len(), 1);
assert_eq(networks(#{{ label: "team" }})[0].name, "{p}n1");
let bad = false;
try {{ volumes(#{{ lable: "x" }}); }} catch (e) {{ bad = e.to_string().contains("unknown volumes option \"lable\""); }}
assert(bad, "a typo is named");
v.remove(); w.remove(); n.remove(); m.remove();
print("labels ok");
"#
        ),
    )
    .unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert!(o.code == 0 && o.stdout.contains("labels ok"), "{o}");
}

/// `remove_all` takes a lab down in one call: the named ones and the
/// handles go, running or not, the rest stay, the survivors' hosts files
/// forget the removed, and a bad option or a missing name is told.
#[test]
fn remove_all_takes_down_what_it_is_given_and_tells_what_it_could_not() {
    let env = Env::new("remove_all_script");
    let p = env.name("ra");
    let f = env.dir.join("remove_all.rhai");
    std::fs::write(
        &f,
        format!(
            r#"
network("{p}net");
let cs = run_all([
    #{{ image: "busybox", name: "{p}a", network: "{p}net", cmd: ["sleep", "100"] }},
    #{{ image: "busybox", name: "{p}b", network: "{p}net", cmd: ["sleep", "100"] }},
    #{{ image: "busybox", name: "{p}c", network: "{p}net", cmd: ["sleep", "100"] }},
]);
assert_eq(run("busybox", #{{ name: "{p}d", cmd: ["true"] }}).wait(), 0);
let bad = "";
try {{ remove_all(cs, #{{ forse: true }}); }} catch (e) {{ bad = e.to_string(); }}
assert(bad.contains("unknown remove_all option \"forse\"; known: force, volumes"), bad);
assert_eq(containers(#{{ all: true }}).len(), 4, "a bad option removes nothing");
try {{ remove_all([cs[0], "{p}b"]); }} catch (e) {{ bad = e.to_string(); }}
assert(bad.contains("2 of 2 not removed") && bad.contains("rm -f"), bad);
remove_all([cs[0], "{p}b", "{p}d"], #{{ force: true }});
let left = containers(#{{ all: true }});
assert_eq(left.len(), 1);
assert_eq(left[0].name, "{p}c");
let hosts = cs[2].exec(["cat", "/etc/hosts"]).stdout;
assert(!hosts.contains("{p}a") && !hosts.contains("{p}b"), hosts);
try {{ remove_all(["{p}nosuch", cs[2]], #{{ force: true }}); }} catch (e) {{ bad = e.to_string(); }}
assert(bad.contains("1 of 2 not removed") && bad.contains("{p}nosuch"), bad);
assert_eq(containers(#{{ all: true }}).len(), 0, "the others go even when one is missing");
network("{p}net").remove();
print("remove_all ok");
"#
        ),
    )
    .unwrap();
    let o = env.berth_timeout(&["run", f.to_str().unwrap()], Duration::from_secs(60));
    assert!(o.code == 0 && o.stdout.contains("remove_all ok"), "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}
