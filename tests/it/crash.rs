//! A crash at any step. berth is killed with SIGKILL at a named fault point
//! (`BERTH_FAULT`, src/fault.rs), as a power cut or the OOM killer would;
//! then `system check` must report exactly what was left, `--repair` must
//! remove it, and the same operation must then succeed. The Env's own
//! clean-up checks that nothing leaked: processes, cgroups, mounts, links,
//! nftables tables, and the check itself once more.

use std::time::Duration;

use crate::util::*;

/// One fault point and the operation that passes through it.
struct Case {
    point: &'static str,
    /// Commands that set the scene, without faults. `{c}`, `{n}`, `{v}`
    /// stand for a container, a network and a volume of this test.
    setup: &'static [&'static [&'static str]],
    op: &'static [&'static str],
    /// What `system check` reports, by kind (first word of each line).
    left: &'static [&'static str],
    /// Whether the killed process is the one the test ran (else it is a
    /// monitor or an init that the command started).
    client_dies: bool,
}

const CREATE: &[&str] = &["create", "--name", "{c}", "busybox", "sleep", "600"];
const CREATED: &[&[&str]] = &[CREATE];
const CREATED_PORT: &[&[&str]] = &[&["create", "--name", "{c}", "-p", "127.0.0.1::80", "busybox", "sleep", "600"]];
const RUNNING_AND_NET: &[&[&str]] = &[&["network", "create", "{n}"], &["run", "-d", "--name", "{c}", "busybox", "sleep", "600"]];
const RUNNING_ON_NET: &[&[&str]] = &[&["network", "create", "{n}"], &["run", "-d", "--name", "{c}", "--network", "{n}", "busybox", "sleep", "600"], &["network", "connect", "bridge", "{c}"]];

const CASES: &[Case] = &[
    // run = create + start
    Case { point: "create.row", setup: &[], op: CREATE, left: &["container"], client_dies: true },
    Case { point: "create.files", setup: &[], op: CREATE, left: &["container"], client_dies: true },
    Case { point: "start.network", setup: CREATED, op: &["start", "{c}"], left: &["mount"], client_dies: true },
    Case { point: "start.ports", setup: CREATED_PORT, op: &["start", "{c}"], left: &["mount", "nftables"], client_dies: true },
    Case { point: "start.monitor", setup: CREATED, op: &["start", "{c}"], left: &["mount"], client_dies: false },
    Case { point: "start.cgroup", setup: CREATED, op: &["start", "{c}"], left: &["mount", "cgroup"], client_dies: false },
    // Init killed before the user's command: the container simply exits.
    Case { point: "start.exec", setup: CREATED, op: &["start", "{c}"], left: &[], client_dies: false },
    Case { point: "rm.files", setup: CREATED, op: &["rm", "-f", "{c}"], left: &["container"], client_dies: true },
    // An --rm container's monitor, killed after its starter returned and
    // before it removed the container's cgroup and files.
    Case { point: "rm.finish", setup: &[], op: &["run", "--rm", "--name", "{c}", "busybox", "true"], left: &["cgroup", "directory"], client_dies: false },
    // networks
    Case { point: "network.create", setup: &[], op: &["network", "create", "{n}"], left: &["network", "nftables"], client_dies: true },
    Case { point: "network.rm", setup: &[&["network", "create", "{n}"]], op: &["network", "rm", "-f", "{n}"], left: &["network"], client_dies: true },
    Case { point: "network.connect", setup: RUNNING_AND_NET, op: &["network", "connect", "{n}", "{c}"], left: &["container"], client_dies: true },
    Case { point: "network.disconnect", setup: RUNNING_ON_NET, op: &["network", "disconnect", "-f", "{n}", "{c}"], left: &["container"], client_dies: true },
    // volumes
    Case { point: "volume.create", setup: &[], op: &["volume", "create", "{v}"], left: &["volume"], client_dies: true },
    Case { point: "volume.rm", setup: &[&["volume", "create", "{v}"]], op: &["volume", "rm", "-f", "{v}"], left: &["directory"], client_dies: true },
];

fn fill(env: &Env, args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.replace("{c}", &env.name("c")).replace("{n}", &env.name("n")).replace("{v}", &env.name("v"))).collect()
}

/// The kinds `system check` reports, sorted; transient notes left out.
fn kinds(o: &Out) -> Vec<String> {
    let mut k: Vec<String> = o
        .stdout
        .lines()
        .filter(|l| !l.starts_with("note:") && !l.contains("problem(s) found") && *l != "no leftovers")
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    k.sort();
    k
}

fn crash_at(case: &Case) {
    let env = Env::new(&format!("crash_{}", case.point.replace('.', "_")));
    for s in case.setup {
        let a = fill(&env, s);
        env.ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let op = fill(&env, case.op);
    let op: Vec<&str> = op.iter().map(String::as_str).collect();
    crash_and_repair(&env, case.point, &op, case.left, case.client_dies);
}

/// Runs `op` with berth armed to die at `point`; then checks the report,
/// repairs, and runs `op` again, which must succeed.
fn crash_and_repair(env: &Env, point: &str, op: &[&str], left: &[&str], client_dies: bool) {
    let name = point.split('@').next().unwrap();
    let o = collect(env.cmd(op).env("BERTH_FAULT", point).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap(), CMD_TIMEOUT);
    if client_dies {
        assert!(o.stderr.contains(&format!("fault point {name}: killed")) && !o.ok(), "berth was killed at {point}: {o}");
    }
    // A monitor killed at its point writes that to monitor.log; whatever
    // was killed, the scene must now be what the case says.
    let o = env.berth(&["system", "check"]);
    let mut want: Vec<String> = left.iter().map(|s| s.to_string()).collect();
    want.sort();
    if let Some(kinds_allowed) = want.first().and_then(|w| w.strip_prefix("any of ")) {
        // Parallel work (a pull's layers) is cut at no one point: what is
        // left varies, but only in these kinds, and the repair must leave
        // nothing (checked below and by the census after the retry).
        let k = kinds(&o);
        assert!(!k.is_empty() && k.iter().all(|k| kinds_allowed.split(',').any(|a| a == k)), "after a crash at {point}, system check reports {kinds_allowed}:\n{o}");
        want = k;
    } else {
        assert_eq!(kinds(&o), want, "after a crash at {point}, system check reports what was left:\n{o}");
    }
    if !want.is_empty() {
        assert_eq!(o.code, 1, "{o}");
        let r = env.berth(&["system", "check", "--repair"]);
        assert!(r.ok() && !r.stdout.contains("repair failed"), "repair after {point}: {r}");
    }
    let o = env.berth(&["system", "check"]);
    assert_eq!((o.code, o.out()), (0, "no leftovers"), "after the repair at {point}: {o}");
    // The same operation now goes through (a start after a crashed start
    // starts the container; a create makes it).
    let o = env.berth(op);
    assert!(o.ok(), "`berth {}` after the repair at {point}: {o}", op.join(" "));
    let o = env.berth(&["system", "check"]);
    assert_eq!((o.code, o.out()), (0, "no leftovers"), "after the retry at {point}: {o}");
}

macro_rules! crash_tests {
    ($($test:ident => $point:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                crash_at(CASES.iter().find(|c| c.point == $point).expect("a case for the point"));
            }
        )*
        /// Every case has its test, and every case names a point berth has.
        #[test]
        fn every_fault_point_has_a_test() {
            // The points the pull, load and build tests below pass through.
            let tested = [$($point,)* "layer.stored", "image.commit", "build.step", "build.tag", "service.create", "service.replica", "service.update", "stack.deploy", "stack.rm"];
            for c in CASES {
                assert!(tested.contains(&c.point), "{} has no test", c.point);
            }
            let mut points = Vec::new();
            let mut stack = vec![std::path::PathBuf::from(REPO).join("src")];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap().flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|x| x == "rs") {
                        let text = std::fs::read_to_string(&p).unwrap();
                        for (i, _) in text.match_indices("crate::fault!(\"") {
                            let rest = &text[i + 15..];
                            points.push(rest[..rest.find('"').unwrap()].to_string());
                        }
                    }
                }
            }
            points.sort();
            for p in &points {
                assert!(tested.contains(&p.as_str()), "fault point {p} in src has no crash test");
            }
        }
    };
}

crash_tests! {
    crash_at_create_row => "create.row",
    crash_at_create_files => "create.files",
    crash_at_start_network => "start.network",
    crash_at_start_ports => "start.ports",
    crash_at_start_monitor => "start.monitor",
    crash_at_start_cgroup => "start.cgroup",
    crash_at_start_exec => "start.exec",
    crash_at_rm_files => "rm.files",
    crash_at_rm_finish => "rm.finish",
    crash_at_network_create => "network.create",
    crash_at_network_rm => "network.rm",
    crash_at_network_connect => "network.connect",
    crash_at_network_disconnect => "network.disconnect",
    crash_at_volume_create => "volume.create",
    crash_at_volume_rm => "volume.rm",
}

/// The monitor killed with -9 while its container runs: init goes with it
/// (its parent-death signal), the state says exited, and the next command
/// sees that.
#[test]
fn a_killed_monitor_takes_its_container_down() {
    let env = Env::new("a_killed_monitor_takes_its_container_down");
    let c = env.name("c");
    env.run_detached(&c, &["busybox", "sleep", "600"]);
    let init = env.pid(&c);
    let id = env.full_id(&c);
    let monitor = pids_with_env("BERTH_ROOT", &env.root)
        .into_iter()
        .find(|p| String::from_utf8_lossy(&std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default()).contains(&format!("monitor\0{id}")))
        .expect("the container's monitor");
    kill(monitor);
    assert!(wait_until(Duration::from_secs(5), || !std::path::Path::new(&format!("/proc/{init}")).exists()), "init {init} died with its monitor");
    assert_eq!(env.inspect_f(&c, "{{.State.Status}}"), "exited");
    let o = env.berth(&["ps", "--format", "{{.Names}}"]);
    assert!(!o.stdout.contains(&c), "ps no longer lists it as running: {o}");
    // What the monitor would have cleaned up, the check finds and removes.
    let o = env.berth(&["system", "check", "--repair"]);
    assert!(o.ok(), "{o}");
    assert_eq!(env.ok(&["system", "check"]), "no leftovers");
    // And it starts again.
    env.ok(&["start", &c]);
    assert_eq!(env.inspect_f(&c, "{{.State.Status}}"), "running");
}

/// A two-layer image of this test, built from busybox: `(context, tag)`.
fn two_layers(env: &Env, tag: &str) {
    let ctx = env.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n").unwrap();
    env.ok(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
}

/// Every image and its layers gone, so a pull or load stores them anew.
fn no_images(env: &Env) {
    let ids = env.ok(&["images", "-q"]);
    for id in ids.split_whitespace() {
        env.ok(&["rmi", "-f", id]);
    }
    env.ok(&["system", "prune", "-a", "-f"]);
    assert_eq!(env.ok(&["system", "check"]), "no leftovers");
}

#[test]
fn crash_during_pull() {
    let env = Env::new("crash_during_pull");
    let reg = crate::registry::Registry::start(&env, None);
    let name = format!("{}/crash/two:1", reg.addr);
    two_layers(&env, &name);
    env.ok(&["push", &name]);
    // After the first of three layers; at the commit, all layers and the
    // image's own blobs are in but no image names them.
    for (point, left) in [
        ("layer.stored@1", &["any of layer,file,directory"][..]),
        ("image.commit", &["file", "file", "file", "file", "file", "layer", "layer", "layer"][..]),
    ] {
        no_images(&env);
        crash_and_repair(&env, point, &["pull", "-q", &name], left, true);
        assert_eq!(env.ok(&["run", "--rm", &name, "cat", "/one", "/two"]), "one\ntwo");
        env.ok(&["rmi", &name]);
        assert_eq!(store_files(&env), Vec::<String>::new(), "with no image, no layer or blob is left after the crash at {point}");
    }
}

/// Blobs and layer directories in the store.
fn store_files(env: &Env) -> Vec<String> {
    let mut out = Vec::new();
    for d in ["blobs/sha256", "layers"] {
        for e in std::fs::read_dir(env.root.join(d)).into_iter().flatten().flatten() {
            if e.file_name() != "l" {
                out.push(e.path().display().to_string());
            }
        }
    }
    out
}

#[test]
fn crash_during_load() {
    let env = Env::new("crash_during_load");
    two_layers(&env, "crash/two:1");
    let tar = env.dir.join("two.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "crash/two:1"]);
    for (point, left) in [
        ("layer.stored@2", &["file", "file", "layer", "layer"][..]),
        ("image.commit", &["file", "file", "file", "file", "file", "layer", "layer", "layer"][..]),
    ] {
        no_images(&env);
        crash_and_repair(&env, point, &["load", "-q", "-i", tar.to_str().unwrap()], left, true);
        assert_eq!(env.ok(&["run", "--rm", "crash/two:1", "cat", "/one", "/two"]), "one\ntwo");
    }
}

/// A build killed between steps or before its tag leaves the steps it
/// finished as build cache (images, as docker's), not leftovers; the
/// next build goes on from them.
#[test]
fn crash_during_build() {
    let env = Env::new("crash_during_build");
    for point in ["build.step@3", "build.tag"] {
        let ctx = env.dir.join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), format!("FROM busybox\nRUN echo {point} > /one\nRUN echo two > /two\n")).unwrap();
        crash_and_repair(&env, point, &["build", "-t", "crash/built:1", ctx.to_str().unwrap()], &[], true);
        assert_eq!(env.ok(&["run", "--rm", "crash/built:1", "cat", "/one"]), point);
    }
}

/// A root deleted with `rm -rf` while it had a network and a running
/// container: another root's check notes what it left (without counting
/// it), and `--all-roots --repair` removes it, and only it.
#[test]
fn a_deleted_roots_leftovers_go_with_all_roots() {
    let env = Env::new("a_deleted_roots_leftovers_go_with_all_roots");
    let own_net = env.name("own");
    env.ok(&["network", "create", &own_net]);
    let own_bridge = bridge_of(&env, &own_net);
    let dead = Env::new("a_deleted_roots_leftovers_dead");
    let net = dead.name("n");
    dead.ok(&["network", "create", &net]);
    let bridge = bridge_of(&dead, &net);
    let c = dead.name("c");
    dead.run_detached(&c, &["--network", &net, "busybox", "sleep", "600"]);
    let table = dead.nft_table();
    let cgroup = dead.cgroup_parent();
    // The user's `rm -rf` of the root (its run directory keeps the
    // namespace's mount, which a root cannot be told from outside).
    std::fs::remove_dir_all(&dead.root).unwrap();
    let tag = table.trim_start_matches("berth_").to_string();

    let o = env.berth(&["system", "check"]);
    assert_eq!(o.code, 0, "another root's leftovers are noted, not counted: {o}");
    for want in [format!("bridge {bridge}"), format!("table ip {table}"), format!("cgroup {cgroup}"), "(monitor".to_string()] {
        assert!(o.stdout.lines().any(|l| l.starts_with("note:") && l.contains(&want) && l.contains("--all-roots")), "noted: {want}\n{o}");
    }
    let o = env.berth(&["system", "check", "--all-roots"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stdout.contains(&tag), "{o}");
    let register = std::path::Path::new("/run/berth-roots");
    assert!(register.join(&tag).exists(), "the dead root is still registered");
    let o = env.berth(&["system", "check", "--all-roots", "--repair"]);
    assert!(o.ok() && !o.stdout.contains("repair failed"), "{o}");
    assert!(!register.join(&tag).exists(), "the dead root's register entry goes with its leftovers: {o}");
    let own_tag = env.nft_table().trim_start_matches("berth_").to_string();
    assert!(register.join(&own_tag).exists(), "a live root stays registered");
    assert!(!std::process::Command::new("ip").args(["link", "show", &bridge]).output().unwrap().status.success(), "the dead root's bridge is gone");
    assert!(!std::process::Command::new("nft").args(["list", "table", "ip", &table]).output().unwrap().status.success(), "its table is gone");
    assert!(cgroup_hierarchy_dirs(&cgroup).is_empty(), "its cgroups are gone");
    assert!(wait_until(Duration::from_secs(5), || pids_with_env("BERTH_ROOT", &dead.root).is_empty()), "its monitor is gone");
    // The live root's own objects are untouched.
    assert!(std::process::Command::new("ip").args(["link", "show", &own_bridge]).output().unwrap().status.success(), "a live root's bridge stays");
    assert_eq!(env.ok(&["system", "check"]), "no leftovers");
    dead_cleanup(dead);
}

fn bridge_of(env: &Env, net: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["network", "inspect", net])).unwrap();
    v[0]["Options"]["com.docker.network.bridge.name"].as_str().unwrap().to_string()
}

/// The dead root's Env: its directory goes (the namespace mount first);
/// its own clean-up would find an empty root and say so.
fn dead_cleanup(dead: Env) {
    for m in mounts_under(&dead.dir) {
        let _ = std::process::Command::new("umount").args(["-l", &m]).status();
    }
    let _ = std::fs::remove_dir_all(&dead.dir);
    std::mem::forget(dead);
}

/// The same from a script: `system_check()` lists what a crash left and
/// `system_check(#{ repair: true })` removes it.
#[test]
fn a_script_finds_and_repairs_a_crash() {
    let env = Env::new("a_script_finds_and_repairs_a_crash");
    let c = env.name("c");
    let o = collect(env.cmd(&["create", "--name", &c, "busybox", "true"]).env("BERTH_FAULT", "create.row").stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap(), CMD_TIMEOUT);
    assert!(!o.ok(), "{o}");
    let f = env.dir.join("check.rhai");
    std::fs::write(
        &f,
        format!(
            r#"let found = system_check();
if found.len() != 1 || found[0].kind != "container" || found[0].object != "{c}" {{ throw `unexpected findings: ${{found}}`; }}
let fixed = system_check(#{{ repair: true }});
if !fixed[0].repaired {{ throw `not repaired: ${{fixed}}`; }}
if system_check().len() != 0 {{ throw "still there"; }}
print(run_once("busybox", ["echo", "ok"]).stdout);
"#
        ),
    )
    .unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert!(o.ok() && o.stdout.contains("ok"), "{o}");
}

#[test]
fn crash_during_service_create_scale_and_update() {
    let env = Env::new("crash_during_service_ops");
    let s = env.name("s");
    // A create cut short is rolled back; its retry makes the service.
    crash_and_repair(&env, "service.create", &["service", "create", "--name", &s, "--replicas", "2", "busybox", "sleep", "600"], &["nftables", "service"], true);
    let ls = env.ok(&["service", "ls"]);
    assert!(ls.lines().any(|l| l.contains(&s) && l.contains("2/2")), "{ls}");
    // A scale killed once its new replica ran: the replica's own monitor
    // takes it into the balancing, so nothing is amiss.
    crash_and_repair(&env, "service.replica", &["service", "scale", &format!("{s}=3")], &[], true);
    // An update killed after its first slot: one replica of each image.
    env.ok(&["tag", "busybox", "crash/bb2:1"]);
    crash_and_repair(&env, "service.update", &["service", "update", "--update-parallelism", "1", "--update-monitor", "0", "--image", "crash/bb2:1", &s], &["service"], true);
    let reps = env.ok(&["ps", "--filter", &format!("name={s}.")]);
    assert_eq!(reps.lines().filter(|l| l.contains("crash/bb2:1")).count(), 3, "every replica runs the new image: {reps}");
}

#[test]
fn crash_during_stack_deploy_and_rm() {
    let env = Env::new("crash_during_stack");
    let f = env.dir.join("compose.yaml");
    std::fs::write(&f, "services:\n  db:\n    image: busybox\n    command: sleep 600\n  web:\n    image: busybox\n    command: sleep 600\n    depends_on: [db]\n").unwrap();
    let st = env.name("st");
    let deploy = ["stack", "deploy", "-c", f.to_str().unwrap(), &st];
    // Killed after its first wave (db): rolled back, then deployed whole.
    crash_and_repair(&env, "stack.deploy@1", &deploy, &["stack"], true);
    let svcs = env.ok(&["stack", "services", &st]);
    assert_eq!(svcs.lines().filter(|l| l.contains(&st)).count(), 2, "{svcs}");
    // Killed after its services went: the stack is still listed, and a
    // second rm finishes the job.
    crash_and_repair(&env, "stack.rm", &["stack", "rm", &st], &[], true);
    assert!(!env.ok(&["stack", "ls"]).contains(&st));
}
