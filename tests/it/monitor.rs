//! The small berth-monitor binary (issue 20): what it links, and berth
//! without it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// The crates of berth's text symbols (`nm -C`) among `crates`.
fn linked(bin: &Path, crates: &[&str]) -> Vec<String> {
    let o = Command::new("nm").arg("-C").arg(bin).output().expect("nm (binutils)");
    assert!(o.status.success(), "nm {}: {}", bin.display(), String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    crates
        .iter()
        .filter(|c| {
            let needle = format!("{c}::");
            // Code symbols only; identical drop glue is folded under any name.
            text.lines().any(|l| {
                let mut w = l.splitn(3, ' ');
                let (_, kind, name) = (w.next(), w.next().unwrap_or(""), w.next().unwrap_or(""));
                matches!(kind, "t" | "T") && !name.contains("drop_in_place") && (name.starts_with(&needle) || name.contains(&format!("<{needle}")) || name.contains(&format!(" {needle}")))
            })
        })
        .map(|c| c.to_string())
        .collect()
}

#[test]
fn the_monitor_binary_links_no_rhai_clap_tokio_or_registry_client() {
    let small = Path::new(BERTH).with_file_name("berth-monitor");
    assert!(small.is_file(), "cargo builds berth-monitor beside berth: {}", small.display());
    let heavy = ["rhai", "clap_builder", "tokio", "oci_client", "reqwest", "etcd_client", "hyper"];
    // The check sees them where they are: berth itself links them all.
    assert_eq!(linked(Path::new(BERTH), &heavy), heavy, "berth links every one");
    assert_eq!(linked(&small, &heavy), Vec::<String>::new(), "berth-monitor links none");
    let big = std::fs::metadata(BERTH).unwrap().len();
    eprintln!("berth {} MB, berth-monitor {} MB (this build)", big >> 20, std::fs::metadata(&small).unwrap().len() >> 20);
}

/// berth installed alone (no berth-monitor beside it) runs its monitors,
/// execs and health probes itself.
#[test]
fn berth_without_the_small_binary_runs_its_own_monitor_and_exec_helper() {
    let env = Env::new("mon_alone");
    let alone = env.dir.join("alone");
    std::fs::create_dir(&alone).unwrap();
    let bin = alone.join("berth");
    std::fs::copy(BERTH, &bin).unwrap();
    let run = |args: &[&str]| {
        let child = Command::new(&bin).args(args).env("BERTH_ROOT", &env.root).env("BERTH_RUN", &env.run).env_remove("BERTH_LOG").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        collect(child, CMD_TIMEOUT)
    };
    let c = env.name("c");
    let o = run(&["run", "-d", "--name", &c, "--health-cmd", "test -e /tmp/ok", "--health-interval", "200ms", "busybox", "sleep", "100"]);
    assert!(o.ok(), "{o}");
    let o = run(&["exec", &c, "sh", "-c", "touch /tmp/ok; echo in $(hostname)"]);
    assert!(o.ok() && o.stdout.starts_with("in "), "{o}");
    assert!(wait_until(Duration::from_secs(10), || run(&["inspect", "-f", "{{.State.Health.Status}}", &c]).stdout.trim() == "healthy"), "the probe ran: {}", run(&["inspect", &c]).stdout);
    // The monitor is this copy of berth: same size as the file.
    let pid = run(&["inspect", "-f", "{{.State.Pid}}", &c]).stdout.trim().to_string();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid = stat.rsplit(')').next().unwrap().split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(std::fs::metadata(format!("/proc/{ppid}/exe")).unwrap().len(), std::fs::metadata(&bin).unwrap().len());
    assert!(run(&["rm", "-f", &c]).ok());
}

/// The children of `pid` (all its threads'), with their state letters.
fn children(pid: u32) -> Vec<(u32, char)> {
    let mut out = vec![];
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for c in list.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
            let stat = std::fs::read_to_string(format!("/proc/{c}/stat")).unwrap_or_default();
            let state = stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()).and_then(|s| s.chars().next()).unwrap_or('?');
            out.push((c, state));
        }
    }
    out
}

/// The command line's `run` keeps its monitor as a child (no daemonising
/// fork); a script, which lives on, has its monitors daemonise, so the
/// containers it ran leave it no zombie and no monitor to wait for.
#[test]
fn a_script_keeps_no_monitor_as_its_child_and_a_detached_run_outlives_its_client() {
    let env = Env::new("mon_child");
    let c = env.name("d");
    env.ok(&["run", "-d", "--name", &c, "busybox", "sleep", "100"]);
    // The client has exited; its monitor goes on, and so does the container.
    assert_eq!(env.inspect_f(&c, "{{.State.Status}}"), "running");
    let pid = env.inspect_f(&c, "{{.State.Pid}}");
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the container's init {pid} runs after `run -d` returned");
    env.ok(&["rm", "-f", &c]);

    let script = env.dir.join("three.rhai");
    std::fs::write(&script, "for i in 0..3 { let r = run_once(\"busybox\", [\"true\"]); if r.code != 0 { throw `run_once: ${r}`; } }\nprint(\"ran\");\nsleep(20000);\n").unwrap();
    let mut child = env.cmd(&["run", script.to_str().unwrap()]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    let got = out.read_line(&mut line).is_ok() && line.trim() == "ran";
    // Whatever the monitors do after their containers exit has had time.
    std::thread::sleep(Duration::from_millis(300));
    let kids = children(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert!(got, "the script ran three containers: {line:?}");
    assert_eq!(kids, vec![], "the script's children after three run_once (pid, state)");
}

/// Containers started side by side (`run_all`, `service scale`) each get a
/// monitor that holds its own sockets only: a monitor spawned by one thread
/// used to inherit the starter socket another thread had just made
/// inheritable for its own monitor, and kept it for its whole life.
#[test]
fn monitors_started_side_by_side_hold_only_their_own_sockets() {
    let env = Env::new("mon_sockets");
    let p = env.name("s");
    let script = env.dir.join("side.rhai");
    std::fs::write(
        &script,
        format!("let s = []; for i in 0..6 {{ s.push(#{{ image: \"busybox\", name: `{p}${{i}}`, network: \"none\", cmd: [\"sleep\", \"100\"] }}); }}\nprint(run_all(s).len());\n"),
    )
    .unwrap();
    let o = env.berth_timeout(&["run", script.to_str().unwrap()], Duration::from_secs(60));
    assert!(o.code == 0 && o.out() == "6", "{o}");
    let mut held = vec![];
    for i in 0..6 {
        let pid = env.inspect_f(&format!("{p}{i}"), "{{.State.Pid}}");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let monitor: u32 = stat.rsplit(')').next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
        let sockets = std::fs::read_dir(format!("/proc/{monitor}/fd"))
            .unwrap()
            .flatten()
            .filter(|f| std::fs::read_link(f.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")))
            .count();
        held.push(sockets);
    }
    for i in 0..6 {
        env.ok(&["rm", "-f", &format!("{p}{i}")]);
    }
    // Its attach socket's listener: the script that started it has gone,
    // and with it the other end of its starter's socket.
    assert!(held.iter().all(|&n| n == 1), "sockets held by each monitor: {held:?}");
}
