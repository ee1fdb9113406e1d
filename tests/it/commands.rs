//! The docker commands a newcomer reaches for: info, version, diff, export,
//! commit, attach and container prune, from the command line and scripts.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::util::*;

#[test]
fn info_and_version_at_the_top_level() {
    let env = Env::new("cmd_info_version");
    let o = env.ok(&["info"]);
    assert!(o.contains("Cgroup Version:") && o.contains("Containers:"), "{o}");
    let o = env.ok(&["version"]);
    assert!(o.contains("Client:") && o.contains("Server: berth") && o.contains(env!("CARGO_PKG_VERSION")), "{o}");
    let j: serde_json::Value = serde_json::from_str(&env.ok(&["version", "--format", "json"])).unwrap();
    assert_eq!(j["Server"]["Version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn diff_export_and_commit_from_the_command_line() {
    let env = Env::new("cmd_diff_export_commit");
    let c = env.name("d");
    env.run_detached(&c, &["busybox", "sh", "-c", "echo hi > /new; rm /bin/vi; echo x >> /etc/passwd; sleep 300"]);
    assert!(wait_until(Duration::from_secs(10), || env.berth(&["diff", &c]).stdout.contains("A /new")), "the change shows");
    let d = env.ok(&["diff", &c]);
    for l in ["C /bin", "D /bin/vi", "C /etc", "C /etc/passwd", "A /new"] {
        assert!(d.lines().any(|x| x == l), "{l:?} in:\n{d}");
    }
    assert!(!d.contains("/etc/hosts") && !d.contains("/etc/resolv.conf"), "the runtime's own files are not changes:\n{d}");
    // export, then import: the course's round trip.
    let tar = env.dir.join("rootfs.tar");
    env.ok(&["export", "-o", tar.to_str().unwrap(), &c]);
    let img = format!("{}:exported", env.name("img"));
    env.ok(&["import", tar.to_str().unwrap(), &img]);
    assert_eq!(env.ok(&["run", "--rm", &img, "cat", "/new"]), "hi");
    assert_ne!(env.berth(&["run", "--rm", &img, "ls", "/bin/vi"]).code, 0, "the deletion is in the export");
    // export to a pipe, as `berth export c > rootfs.tar`.
    let mut child = env.cmd(&["export", &c]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut list = std::process::Command::new("tar").arg("-t").stdin(child.stdout.take().unwrap()).output().unwrap();
    assert!(child.wait().unwrap().success());
    list.stdout.retain(|b| *b != b'\r');
    assert!(String::from_utf8_lossy(&list.stdout).lines().any(|l| l.trim_start_matches("./") == "new"), "stdout is a tar stream");
    // commit: an image of the changes, with a new command.
    let tag = format!("{}:committed", env.name("img"));
    let id = env.ok(&["commit", "-c", r#"CMD ["cat", "/new"]"#, "-c", "ENV K=v", "-m", "saved", &c, &tag]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(env.ok(&["run", "--rm", &tag]), "hi");
    assert_eq!(env.ok(&["run", "--rm", &tag, "sh", "-c", "echo $K"]), "v");
    assert_ne!(env.berth(&["run", "--rm", &tag, "ls", "/bin/vi"]).code, 0, "the deletion is a whiteout in the new layer");
    assert!(env.ok(&["history", &tag]).contains("saved"), "the message is the step's comment");
    assert_eq!(env.inspect_f(&c, "{{.State.Status}}"), "running", "commit paused it only while reading");
    let o = env.berth(&["commit", "-c", "RUN true", &c, &tag]);
    assert!(o.code == 125 && o.stderr.contains("RUN"), "{o}");
    let o = env.berth(&["diff", "nosuch"]);
    assert!(o.code != 0 && o.stderr.contains("No such container: nosuch"), "{o}");
}

#[test]
fn diff_export_and_commit_from_a_script() {
    let env = Env::new("cmd_script_changes");
    let c = env.name("s");
    let f = env.dir.join("changes.rhai");
    let tar = env.dir.join("s.tar");
    let tag = format!("{}:1", env.name("img"));
    std::fs::write(
        &f,
        format!(
            r#"let c = run("busybox", #{{ name: "{c}", cmd: ["sh", "-c", "echo hi > /new; sleep 300"] }});
wait_for(|| c.diff().len() > 0, 10000);
let d = c.diff();
assert(d.some(|x| x.kind == "A" && x.path == "/new"), `diff: ${{d}}`);
c.export_to("{tar}");
let img = c.commit("{tag}", #{{ changes: ["CMD [\"cat\", \"/new\"]"], message: "from a script" }});
assert_eq(img.config.cmd, ["cat", "/new"]);
assert_eq(run_once(img.id, ["cat", "/new"]).stdout, "hi\n");
print("ok");
"#,
            tar = tar.display()
        ),
    )
    .unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert!(o.ok() && o.stdout.contains("ok"), "{o}");
    let list = std::process::Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).lines().any(|l| l.trim_start_matches("./") == "new"), "c.export_to wrote a tarball");
}

#[test]
fn container_prune_takes_stopped_ones_only() {
    let env = Env::new("cmd_container_prune");
    let (a, b, k) = (env.name("stopped"), env.name("running"), env.name("kept"));
    env.ok(&["run", "--name", &a, "busybox", "true"]);
    env.ok(&["run", "--name", &k, "--label", "keep=yes", "busybox", "true"]);
    env.run_detached(&b, &["busybox", "sleep", "300"]);
    // It asks first, as docker does.
    let o = env.berth_stdin(&["container", "prune"], b"n\n");
    assert!(o.ok() && o.stdout.contains("[y/N]"), "{o}");
    assert!(env.ok(&["ps", "-a"]).contains(&a), "nothing removed without a yes");
    let o = env.berth(&["container", "prune", "-f", "--filter", "colour=red"]);
    assert!(o.code != 0 && o.stderr.contains("label, label! and until"), "{o}");
    let o = env.ok(&["container", "prune", "-f", "--filter", "label=nosuch"]);
    assert!(!o.contains("Deleted Containers:"), "a filter no container matches removes nothing: {o}");
    let o = env.ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert!(o.contains("Deleted Containers:") && o.contains("Total reclaimed space:"), "{o}");
    let ps = env.ok(&["ps", "-a"]);
    assert!(!ps.contains(&a) && ps.contains(&k) && ps.contains(&b), "the stopped one without the label goes: {ps}");
    env.ok(&["container", "prune", "-f"]);
    let ps = env.ok(&["ps", "-a"]);
    assert!(!ps.contains(&k) && ps.contains(&b), "every stopped one goes, the running one stays: {ps}");
}

#[test]
fn attach_follows_a_running_container_and_detaches_with_ctrl_p_ctrl_q() {
    let env = Env::new("cmd_attach");
    let c = env.name("talker");
    env.run_detached(&c, &["busybox", "sh", "-c", "sleep 1; for i in 1 2 3; do echo line-$i; sleep 0.2; done; exit 7"]);
    let o = env.berth_timeout(&["attach", "--no-stdin", &c], Duration::from_secs(30));
    assert_eq!(o.code, 7, "attach ends with the container's exit code: {o}");
    assert!(o.stdout.contains("line-3"), "{o}");
    let o = env.berth(&["attach", &c]);
    assert!(o.code != 0 && o.stderr.contains("not running") && o.stderr.contains("start it first"), "{o}");
    // A terminal: Ctrl-P Ctrl-Q leaves it running.
    let t = env.name("tty");
    env.run_detached(&t, &["-it", "busybox", "sh"]);
    let mut child = std::process::Command::new("script")
        .args(["-qec", &format!("{BERTH} attach {t}"), "/dev/null"])
        .env("BERTH_ROOT", &env.root)
        .env("BERTH_RUN", &env.run)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    stdin.write_all(b"echo attached-$((6*7))\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stdin.write_all(&[0x10, 0x11]).unwrap();
    let out = collect(child, Duration::from_secs(20));
    assert!(out.stdout.contains("attached-42"), "the shell answered through attach: {out}");
    assert_eq!(env.inspect_f(&t, "{{.State.Status}}"), "running", "detached, not stopped: {out}");
}

#[test]
fn events_are_recorded_streamed_and_filtered() {
    let env = Env::new("cmd_events");
    // A stream started first sees a start that happens after it began.
    let mut stream = env.cmd(&["events", "--filter", "event=start"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let c = env.name("ev");
    assert_eq!(env.berth(&["run", "--name", &c, "busybox", "sh", "-c", "exit 3"]).code, 3);
    env.ok(&["rm", &c]);
    let net = env.name("evnet");
    env.ok(&["network", "create", &net]);
    // The stream's first line, then it is stopped.
    let stdout = stream.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut l = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut l);
        let _ = tx.send(l);
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    let _ = stream.kill();
    let _ = stream.wait();
    assert!(first.contains(" container start ") && first.contains(&format!("name={c}")), "the stream saw the start: {first:?}");
    // After the fact: the container's life in order.
    let o = env.ok(&["events", "--since", "5m", "--until", "now", "--filter", &format!("container={c}")]);
    let actions: Vec<&str> = o.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    assert_eq!(actions, ["create", "start", "die", "destroy"], "{o}");
    assert!(o.contains("exitCode=3"), "{o}");
    // Filters keep to their kind.
    let o = env.ok(&["events", "--since", "5m", "--until", "now", "--filter", "type=network"]);
    assert!(o.contains(" network create ") && o.contains(&format!("name={net}")) && !o.contains(" container "), "{o}");
    let o = env.ok(&["events", "--since", "5m", "--until", "now", "--format", "json", "--filter", "event=die"]);
    let j: serde_json::Value = serde_json::from_str(o.lines().next().unwrap_or("null")).unwrap();
    assert_eq!((j["Type"].as_str(), j["Action"].as_str(), j["Actor"]["Attributes"]["exitCode"].as_str()), (Some("container"), Some("die"), Some("3")), "{o}");
    // Bad input names the value and the forms.
    let o = env.berth(&["events", "--since", "yesterday"]);
    assert!(o.code != 0 && o.stderr.contains("yesterday") && o.stderr.contains("RFC 3339"), "{o}");
    let o = env.berth(&["events", "--filter", "colour=red", "--until", "now"]);
    assert!(o.code != 0 && o.stderr.contains("colour") && o.stderr.contains("type, event"), "{o}");
    // From a script.
    let f = env.dir.join("ev.rhai");
    std::fs::write(&f, format!("let es = events(#{{ since: \"5m\", filter: #{{ container: \"{c}\" }} }});\nprint(es.map(|e| e.action));\nassert_eq(es[0].name, \"{c}\");\n")).unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert!(o.ok() && o.stdout.contains(r#"["create", "start", "die", "destroy"]"#), "{o}");
}
