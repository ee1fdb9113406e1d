//! Every line of the user's list in issue 2: images, run, create/start,
//! ps, inspect, logs, exec, top, cp, stop/start/restart/kill/pause, wait,
//! rm, rename, restart policies and the run options.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn image_import_ls_inspect_rm() {
    let env = Env::bare("image_import_ls_inspect_rm");
    let tar = busybox_tar().to_str().unwrap().to_string();
    let o = env.berth(&["image", "import", "-c", r#"CMD ["sh"]"#, &tar, "busybox"]);
    assert!(o.ok(), "{o}");
    let id = o.out().trim().to_string();
    assert!(id.starts_with("sha256:") && is_hex(&id[7..], 64), "import prints the image id, got {id:?}");

    let ls = env.ok(&["image", "ls"]);
    let line = ls.lines().find(|l| l.starts_with("busybox ")).unwrap_or_else(|| panic!("busybox not in image ls:\n{ls}"));
    assert!(line.contains("latest"), "tag latest expected: {line}");
    assert!(line.contains(&id[7..19]), "short id {} expected: {line}", &id[7..19]);
    assert!(ls.lines().next().unwrap().contains("REPOSITORY"), "header expected:\n{ls}");
    assert_eq!(env.ok(&["images", "-q"]), id[7..19]);

    let v: serde_json::Value = serde_json::from_str(&env.ok(&["image", "inspect", "busybox"])).unwrap();
    let img = &v[0];
    assert_eq!(img["Id"], id.as_str());
    assert_eq!(img["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["RootFS"]["Layers"].as_array().map(|a| a.len()), Some(1));
    assert!(img["Size"].as_u64().unwrap_or(0) > 500_000, "size of a busybox image: {}", img["Size"]);
    let chain = img["RootFS"]["Layers"][0].as_str().unwrap().trim_start_matches("sha256:").to_string();

    // The image works.
    let o = env.berth(&["run", "--rm", "busybox", "echo", "imported"]);
    assert_eq!((o.code, o.out()), (0, "imported"), "{o}");

    let o = env.berth(&["image", "rm", "busybox"]);
    assert!(o.ok(), "{o}");
    assert!(!env.ok(&["image", "ls"]).contains("busybox"));
    assert_eq!(env.ok(&["images", "-q"]), "");
    assert_ne!(env.berth(&["image", "inspect", "busybox"]).code, 0);
    let o = env.berth(&["run", "--rm", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(!env.root.join("layers").join(&chain).exists(), "layer dir of the removed image is still there");

    // Short forms: images, rmi.
    env.ok(&["image", "import", &tar, "bb2:v1"]);
    assert!(env.ok(&["images"]).lines().any(|l| l.starts_with("bb2 ") && l.contains("v1")));
    env.ok(&["rmi", "bb2:v1"]);
    assert_eq!(env.ok(&["images", "-q"]), "");
}

#[test]
fn image_rm_frees_its_blobs() {
    let env = Env::bare("image_rm_frees_its_blobs");
    let tar = busybox_tar().to_str().unwrap().to_string();
    let id = env.ok(&["image", "import", &tar, "busybox"]);
    let blobs = env.root.join("blobs/sha256");
    let config = blobs.join(id.trim_start_matches("sha256:"));
    assert!(config.is_file(), "config blob expected at {}", config.display());
    env.ok(&["image", "rm", "busybox"]);
    let left: Vec<String> = std::fs::read_dir(&blobs)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "image rm of the only image left its blobs behind in {}: {left:?}", blobs.display());
}

#[test]
fn run_rm_echo() {
    let env = Env::new("run_rm_echo");
    let r = env.name("rm");
    let o = env.berth(&["run", "--rm", "--name", &r, "busybox", "echo", "hi"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stdout, "hi\n");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "--rm leaves no container");
    // Its events end as docker's do for an automatic removal.
    let o = env.ok(&["events", "--since", "5m", "--until", "now", "--filter", &format!("container={r}")]);
    let actions: Vec<&str> = o.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    assert_eq!(actions, ["create", "start", "die", "destroy"], "{o}");
    // Without --rm the container stays, exited with code 0.
    let n = env.name("keep");
    let o = env.berth(&["run", "--name", &n, "busybox", "echo", "kept"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "kept\n"), "{o}");
    assert_eq!(env.status(&n), "exited");
    assert_eq!(env.inspect_f(&n, "{{.State.ExitCode}}"), "0");
}

/// Stopping a detached `--rm` container succeeds as docker's does, though
/// the container is gone once it has stopped; a restart keeps it, as
/// docker's does. From the CLI and a script.
#[test]
fn an_rm_container_restarts_kept_and_stops_gone() {
    let env = Env::new("stop_rm");
    let n = env.name("s");
    env.ok(&["run", "-d", "--rm", "--name", &n, "busybox", "sleep", "100"]);
    let pid = env.inspect_f(&n, "{{.State.Pid}}");
    let o = env.berth(&["restart", "-t", "1", &n]);
    assert_eq!((o.code, o.stdout.as_str()), (0, format!("{n}\n").as_str()), "{o}");
    assert_eq!(env.status(&n), "running", "kept through its restart");
    assert_ne!(env.inspect_f(&n, "{{.State.Pid}}"), pid, "a new process");
    assert_eq!(env.inspect_f(&n, "{{.HostConfig.AutoRemove}}"), "true");
    let o = env.berth(&["stop", "-t", "1", &n]);
    assert_eq!((o.code, o.stdout.as_str()), (0, format!("{n}\n").as_str()), "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "--rm took it");
    let f = env.dir.join("stop_rm.rhai");
    std::fs::write(&f, format!(r#"
// It ends on SIGTERM: restart() waits the default 10 s for a sleep.
let c = run("busybox", #{{ name: "{n}2", rm: true, cmd: ["sh", "-c", "trap 'exit 0' TERM; sleep 100 & wait"] }});
c.restart();
assert_eq(c.state, "running", "kept through its restart");
c.stop(1);
assert_eq(containers(#{{ all: true }}).len(), 0, "--rm took it");
print("stopped");
"#)).unwrap();
    let o = env.berth_timeout(&["run", f.to_str().unwrap()], Duration::from_secs(60));
    assert!(o.code == 0 && o.stdout.contains("stopped"), "{o}");
}

/// `--rm` with a restart policy is refused, as docker refuses it: the
/// container would be gone before it could restart. Nothing is made; a
/// running --rm container cannot be given a policy later either.
#[test]
fn rm_and_a_restart_policy_are_refused_together() {
    let env = Env::new("rm_restart");
    let n = env.name("r");
    let o = env.berth(&["run", "--rm", "--restart", "always", "--name", &n, "busybox", "true"]);
    assert!(o.code == 125 && o.stderr.contains("--rm and --restart always conflict") && o.stderr.contains("drop one"), "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "nothing was made");
    env.ok(&["run", "-d", "--rm", "--name", &n, "busybox", "sleep", "100"]);
    let o = env.berth(&["update", "--restart", "on-failure:3", &n]);
    assert!(!o.ok() && o.stderr.contains("--rm and --restart on-failure conflict"), "{o}");
    assert_eq!(env.inspect_f(&n, "{{.HostConfig.RestartPolicy.Name}}"), "no", "the policy is unchanged");
    let f = env.dir.join("rm_restart.rhai");
    std::fs::write(&f, format!(r#"
let bad = "";
try {{ run("busybox", #{{ name: "{n}2", rm: true, restart: "unless-stopped", cmd: ["true"] }}); }} catch (e) {{ bad = e.to_string(); }}
assert(bad.contains("--rm and --restart unless-stopped conflict"), bad);
assert_eq(containers(#{{ all: true }}).len(), 1, "only the running one");
print("refused");
"#)).unwrap();
    let o = env.berth_timeout(&["run", f.to_str().unwrap()], Duration::from_secs(60));
    assert!(o.code == 0 && o.stdout.contains("refused"), "{o}");
    env.ok(&["rm", "-f", &n]);
}

/// An --rm container's layer goes when it exits, so its root overlay is
/// "volatile" (no sync of the upper filesystem at unmount); a kept
/// container's is not, and what it wrote survives a restart.
#[test]
fn an_rm_containers_root_is_volatile_and_a_kept_ones_is_not() {
    let env = Env::new("an_rm_containers_root_is_volatile_and_a_kept_ones_is_not");
    let root_opts = |n: &str| {
        let pid = env.pid(n);
        let mi = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("reading init's mountinfo");
        mi.lines().find(|l| l.split_whitespace().nth(4) == Some("/") && l.contains(" - overlay ")).unwrap_or_else(|| panic!("no overlay root in:\n{mi}")).to_string()
    };
    let r = env.name("rm");
    env.ok(&["run", "-d", "--rm", "--name", &r, "busybox", "sleep", "300"]);
    assert!(root_opts(&r).contains("volatile"), "--rm root: {}", root_opts(&r));
    let o = env.berth(&["exec", &r, "sh", "-c", "echo data > /f && cat /f"]);
    assert_eq!((o.code, o.out()), (0, "data"), "{o}");
    env.ok(&["rm", "-f", &r]);
    let k = env.name("keep");
    env.ok(&["run", "-d", "--name", &k, "busybox", "sh", "-c", "echo kept >> /f; sleep 300"]);
    assert!(!root_opts(&k).contains("volatile"), "kept root: {}", root_opts(&k));
    env.ok(&["restart", "-t", "0", &k]);
    let o = env.berth(&["exec", &k, "cat", "/f"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "kept\nkept\n"), "{o}");
}

#[test]
fn a_removed_containers_directory_is_reused_and_keeps_nothing_of_it() {
    let env = Env::new("a_removed_containers_directory_is_reused");
    let spares = env.root.join("spare");
    let a = env.name("a");
    // The container's root changes what it can of the files bound into it
    // and of its own root directory, writes, and logs.
    let o = env.berth(&["run", "--name", &a, "busybox", "sh", "-c", "echo secret > /left; chmod 600 /etc/hosts; chown 1:1 /etc/resolv.conf; chmod 700 /; echo said"]);
    assert_eq!((o.code, o.out()), (0, "said"), "{o}");
    env.ok(&["rm", &a]);
    assert_eq!(std::fs::read_dir(&spares).map(|d| d.count()).unwrap_or(0), 1, "the directory is kept as a spare");
    let b = env.name("b");
    let o = env.berth(&["run", "--name", &b, "busybox", "sh", "-c", "ls /left 2>&1; stat -c '%a %u:%g' /etc/hosts /etc/resolv.conf /; grep -c localhost /etc/hosts"]);
    assert_eq!(std::fs::read_dir(&spares).map(|d| d.count()).unwrap_or(0), 0, "the next create took it");
    assert_eq!(o.code, 0, "{o}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].contains("No such file"), "nothing of a's layer: {o}");
    assert_eq!(&lines[1..], ["644 0:0", "644 0:0", "755 0:0", "2"], "fresh modes and owners: {o}");
    assert!(!env.ok(&["logs", &b]).contains("said"), "nothing of a's log");

    // An --rm container's monitor, logging at debug, says its last words
    // after the directory went back among the spares: they must not reach
    // the next container's monitor.log.
    let o = env.cmd(&["run", "--rm", "busybox", "true"]).env("BERTH_LOG", "debug").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(wait_until(Duration::from_secs(10), || std::fs::read_dir(&spares).map(|d| d.flatten().any(|e| !e.file_name().to_string_lossy().starts_with('.'))).unwrap_or(false)), "the --rm container's directory is kept as a spare");
    // Its monitor has exited (its last line written) by now.
    sleep_ms(300);
    let c = env.name("c");
    env.ok(&["create", "--name", &c, "busybox", "true"]);
    let id = env.inspect_f(&c, "{{.Id}}");
    let mlog = env.root.join("containers").join(&id).join("monitor.log");
    assert_eq!(std::fs::read_to_string(&mlog).unwrap_or_default(), "", "{} holds nothing of the --rm container's monitor", mlog.display());
}

#[test]
fn a_container_that_writes_nothing_has_an_empty_layer() {
    // The mount points of /etc/hosts, /etc/hostname and /etc/resolv.conf
    // come from a layer all containers share, not from each one's own.
    let env = Env::new("a_container_that_writes_nothing_has_an_empty_layer");
    let c = env.name("c");
    let o = env.berth(&["run", "--name", &c, "busybox", "sh", "-c", "cat /etc/hostname; grep -c localhost /etc/hosts"]);
    assert_eq!((o.code, o.stdout.lines().nth(1)), (0, Some("2")), "{o}");
    let upper = env.inspect_f(&c, "{{.GraphDriver.Data.UpperDir}}");
    let left: Vec<_> = std::fs::read_dir(&upper).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{upper} holds {left:?}");
    assert_eq!(env.ok(&["diff", &c]), "");
}

#[test]
fn run_it_shell_via_script() {
    let env = Env::new("run_it_shell_via_script");
    let n = env.name("ubu1");
    let o = env.script(
        &format!("berth run -it --name {n} busybox /bin/sh"),
        &["echo in-$((6*7)); [ -t 0 ] && echo isatty-$((3*3))\n", "exit 5\n"],
        SECS(20),
    );
    assert_eq!(o.code, 5, "exit of the shell is the exit code of run -it: {o}");
    assert!(o.stdout.contains("in-42"), "the shell evaluated our input: {o}");
    assert!(o.stdout.contains("isatty-9"), "stdin is a terminal inside: {o}");
    assert_eq!(env.status(&n), "exited");
    assert_eq!(env.inspect_f(&n, "{{.State.ExitCode}}"), "5");
}

#[test]
fn run_it_terminal_is_named_inside() {
    // As with Docker, the terminal is a /dev/pts device of the container
    // itself, so `tty` (ttyname) names it.
    let env = Env::new("run_it_terminal_is_named_inside");
    let o = env.script("berth run -it --rm busybox sh -c 'tty; ls -l /proc/self/fd/0'", &[], SECS(20));
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("/dev/pts/"), "`tty` inside run -it: {o}");
    assert!(!o.stdout.contains("not a tty"), "{o}");
}

#[test]
fn create_it_then_start_i() {
    let env = Env::new("create_it_then_start_i");
    let n = env.name("ubu2");
    let id = env.ok(&["create", "-it", "--name", &n, "busybox", "/bin/sh"]);
    assert!(is_hex(&id, 64), "create prints the full id: {id:?}");
    assert_eq!(env.status(&n), "created");
    assert!(env.ok(&["ps", "-a"]).lines().any(|l| l.contains(&n) && l.contains("Created")));
    assert!(!env.ok(&["ps"]).contains(&n), "a created container is not listed by plain ps");
    let o = env.script(&format!("berth start -i {n}"), &["echo zz-$((2+3))\n", "exit 4\n"], SECS(20));
    assert!(o.stdout.contains("zz-5"), "{o}");
    assert_eq!(o.code, 4, "start -i returns the container's code: {o}");
    assert_eq!(env.inspect_f(&n, "{{.State.ExitCode}}"), "4");
}

#[test]
fn run_detached_httpd_survives_client() {
    let env = Env::new("run_detached_httpd_survives_client");
    let n = env.name("web");
    let t = Instant::now();
    let o = env.berth(&["run", "-d", "--name", &n, "busybox", "httpd", "-f", "-p", "80"]);
    assert!(o.ok(), "{o}");
    assert!(t.elapsed() < SECS(10), "run -d returned only after {:?}", t.elapsed());
    let id = o.out().to_string();
    assert!(is_hex(&id, 64), "run -d prints the full id: {id:?}");
    // The client is gone; the container keeps running.
    sleep_ms(700);
    let ps = env.ok(&["ps"]);
    let line = ps.lines().find(|l| l.contains(&n)).unwrap_or_else(|| panic!("{n} missing in ps:\n{ps}"));
    assert!(line.contains("Up"), "{line}");
    assert!(line.starts_with(&id[..12]), "{line}");
    let pid = env.pid(&n);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "httpd", "State.Pid {pid} is the httpd process on the host");
    // Its monitor is not a child of ours: it survives by itself.
    let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i32 = ppid.rsplit(')').next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let pstat = std::fs::read_to_string(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
    assert!(pstat.contains("monitor"), "httpd's parent is berth's monitor, got {pstat:?}");
}

#[test]
fn ps_all_and_quiet() {
    let env = Env::new("ps_all_and_quiet");
    let up = env.name("up");
    let done = env.name("done");
    let up_id = env.run_detached(&up, &["busybox", "sleep", "300"]);
    let o = env.berth(&["run", "--name", &done, "busybox", "true"]);
    assert!(o.ok(), "{o}");

    let ps = env.ok(&["ps"]);
    let header = ps.lines().next().unwrap();
    for col in ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"] {
        assert!(header.contains(col), "ps header lacks {col}: {header}");
    }
    assert!(ps.contains(&up) && !ps.contains(&done), "ps shows only running ones:\n{ps}");
    let all = env.ok(&["ps", "-a"]);
    assert!(all.contains(&up) && all.contains(&done), "ps -a shows both:\n{all}");
    assert!(all.lines().any(|l| l.contains(&done) && l.contains("Exited (0)")), "{all}");
    assert_eq!(env.ok(&["ps", "-q"]), up_id[..12]);
    let aq = env.ok(&["ps", "-a", "-q"]);
    assert_eq!(aq.lines().count(), 2, "{aq}");
    assert!(aq.lines().all(|l| is_hex(l, 12)), "{aq}");
    assert_eq!(env.ok(&["container", "ls", "-q"]), up_id[..12], "canonical form container ls");
}

#[test]
fn inspect_fields_and_labels() {
    let env = Env::new("inspect_fields_and_labels");
    let n = env.name("db");
    let id = env.run_detached(
        &n,
        &["--label", "role=db", "--label", "tier=back", "-e", "A=1", "--hostname", "h1", "-w", "/tmp", "busybox", "sleep", "300"],
    );
    let v = env.inspect(&n);
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Name"], format!("/{n}").as_str());
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["State"]["Running"], true);
    assert_eq!(v["State"]["Paused"], false);
    assert!(v["State"]["Pid"].as_i64().unwrap_or(0) > 0, "{}", v["State"]);
    assert!(!v["State"]["StartedAt"].as_str().unwrap_or("").is_empty());
    assert!(!v["Created"].as_str().unwrap_or("").is_empty());
    assert_eq!(v["Config"]["Image"], "busybox");
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sleep", "300"]));
    assert_eq!(v["Config"]["Labels"], serde_json::json!({"role": "db", "tier": "back"}));
    assert_eq!(v["Config"]["Hostname"], "h1");
    assert_eq!(v["Config"]["WorkingDir"], "/tmp");
    assert!(v["Config"]["Env"].as_array().unwrap().iter().any(|e| e == "A=1"), "{}", v["Config"]["Env"]);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert!(v["Image"].as_str().unwrap_or("").starts_with("sha256:"));
    // Templates.
    assert_eq!(env.inspect_f(&n, "{{.State.Status}}"), "running");
    assert_eq!(env.inspect_f(&n, "{{.Config.Labels.role}}"), "db");
    assert_eq!(env.inspect_f(&id[..12], "{{.Name}}"), format!("/{n}"), "inspect by short id");
    let o = env.berth(&["inspect", "nosuch-container"]);
    assert_ne!(o.code, 0);
}

#[test]
fn logs_of_stdout_and_stderr() {
    let env = Env::new("logs_of_stdout_and_stderr");
    let n = env.name("lg");
    let o = env.berth(&["run", "--name", &n, "busybox", "sh", "-c", "echo out1; echo err1 >&2; echo out2"]);
    assert!(o.ok(), "{o}");
    let l = env.berth(&["logs", &n]);
    assert!(l.ok(), "{l}");
    assert_eq!(l.stdout, "out1\nout2\n");
    assert_eq!(l.stderr, "err1\n");
    // The log file is JSON lines with stream and time.
    let path = env.inspect_f(&n, "{{.LogPath}}");
    let text = std::fs::read_to_string(&path).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["stream"], "stdout");
    assert_eq!(first["log"], "out1\n");
    assert!(first["time"].as_str().is_some());
}

#[test]
fn logs_follow_streams_in_order_and_ends() {
    let env = Env::new("logs_follow_streams_in_order_and_ends");
    let n = env.name("f");
    env.run_detached(&n, &["busybox", "sh", "-c", "echo one; sleep 0.7; echo two; sleep 0.7; echo three"]);
    let mut child = env.cmd(&["logs", "-f", &n]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send((Instant::now(), l)).is_err() {
                break;
            }
        }
    });
    let mut got = Vec::new();
    let deadline = Instant::now() + SECS(15);
    while got.len() < 3 && Instant::now() < deadline {
        if let Ok(x) = rx.recv_timeout(Duration::from_millis(200)) {
            got.push(x);
        }
    }
    let ended = wait_until(SECS(10), || matches!(child.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = child.kill();
    }
    let _ = child.wait();
    let lines: Vec<&str> = got.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines, ["one", "two", "three"], "logs -f lines in order");
    let spread = got[2].0 - got[0].0;
    assert!(spread >= Duration::from_millis(900), "lines arrive as they are written (one..three took {spread:?})");
    assert!(ended, "logs -f did not end after the container exited");
}

#[test]
fn exec_runs_in_container() {
    let env = Env::new("exec_runs_in_container");
    let n = env.name("web");
    env.run_detached(&n, &["--hostname", "exech", "busybox", "httpd", "-f", "-p", "80"]);
    let o = env.berth(&["exec", &n, "ls", "/"]);
    assert!(o.ok(), "{o}");
    for d in ["bin", "etc", "proc", "tmp"] {
        assert!(o.lines().contains(&d), "ls / lacks {d}: {o}");
    }
    assert_eq!(env.ok(&["exec", &n, "hostname"]), "exech", "exec joins the uts namespace");
    let o = env.berth(&["exec", &n, "sh", "-c", "echo err >&2; exit 3"]);
    assert_eq!((o.code, o.stderr.as_str()), (3, "err\n"), "{o}");
    let o = env.berth(&["exec", &n, "nosuch"]);
    assert_eq!(o.code, 127, "{o}");
    // exec sees the container's processes (same pid namespace).
    let o = env.ok(&["exec", &n, "cat", "/proc/1/cmdline"]);
    assert!(o.starts_with("httpd"), "{o:?}");
    let o = env.berth_stdin(&["exec", "-i", &n, "sh", "-c", "read x; echo got-$x"], b"abc\n");
    assert_eq!(o.out(), "got-abc", "{o}");
    env.ok(&["stop", "-t", "1", &n]);
    let o = env.berth(&["exec", &n, "true"]);
    assert_ne!(o.code, 0, "exec into a stopped container must fail: {o}");
}

#[test]
fn exec_it_shell_via_script() {
    let env = Env::new("exec_it_shell_via_script");
    let n = env.name("c");
    env.run_detached(&n, &["busybox", "sleep", "300"]);
    let o = env.script(&format!("berth exec -it {n} sh"), &["echo ex-$((7*6))\n", "exit 7\n"], SECS(15));
    assert!(o.stdout.contains("ex-42"), "the shell answered interactively: {o}");
    assert_eq!(o.code, 7, "{o}");
}

#[test]
fn exec_t_output_streams_while_running() {
    let env = Env::new("exec_t_output_streams_while_running");
    let n = env.name("c");
    env.run_detached(&n, &["busybox", "sleep", "300"]);
    // With a terminal, the first line must reach us before the process ends.
    let cmdline = format!("{BERTH} exec -t {n} sh -c 'echo start; sleep 2; echo end'");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env("BERTH_ROOT", &env.root)
        .env("BERTH_RUN", &env.run)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            let _ = tx.send((Instant::now(), l));
        }
    });
    let t0 = Instant::now();
    let mut seen = Vec::new();
    while Instant::now() < t0 + SECS(10) && seen.len() < 2 {
        if let Ok((t, l)) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push((t - t0, l.trim().to_string()));
        }
    }
    let _ = wait_until(SECS(5), || matches!(child.try_wait(), Ok(Some(_))));
    let _ = child.kill();
    let _ = child.wait();
    drop(stdin);
    assert_eq!(seen.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(), ["start", "end"], "{seen:?}");
    let gap = seen[1].0.saturating_sub(seen[0].0);
    assert!(gap >= Duration::from_millis(1500), "`start` came only with `end` (after the process ended): {seen:?}");
}

#[test]
fn top_shows_httpd() {
    let env = Env::new("top_shows_httpd");
    let n = env.name("web");
    env.run_detached(&n, &["busybox", "httpd", "-f", "-p", "80"]);
    let pid = env.pid(&n);
    let top = env.ok(&["top", &n]);
    let mut lines = top.lines();
    let header = lines.next().unwrap();
    assert!(header.contains("PID") && header.contains("CMD"), "{top}");
    let line = lines.find(|l| l.contains("httpd -f -p 80")).unwrap_or_else(|| panic!("httpd missing in top:\n{top}"));
    assert!(line.split_whitespace().any(|w| w == pid.to_string()), "top shows host pid {pid}: {line}");
    // ps options, as docker top takes them.
    let rows: Vec<Vec<String>> = env.ok(&["top", &n, "-o", "pid,comm"]).lines().map(|l| l.split_whitespace().map(String::from).collect()).collect();
    assert_eq!(rows, [vec!["PID".to_string(), "COMMAND".into()], vec![pid.to_string(), "httpd".into()]]);
    let o = env.berth(&["top", &n, "-o", "comm"]);
    assert!(!o.ok() && o.stderr.contains("\"-o comm\"") && o.stderr.contains("no PID column"), "{o}");
}

#[test]
fn cp_both_ways() {
    let env = Env::new("cp_both_ways");
    let n = env.name("web");
    env.run_detached(&n, &["--hostname", "cph", "busybox", "httpd", "-f", "-p", "80"]);
    let src = env.dir.join("f");
    std::fs::write(&src, "hello from the host\nline 2\n").unwrap();
    env.ok(&["cp", src.to_str().unwrap(), &format!("{n}:/tmp/f")]);
    assert_eq!(env.ok(&["exec", &n, "cat", "/tmp/f"]), "hello from the host\nline 2");
    let h = env.dir.join("h");
    env.ok(&["cp", &format!("{n}:/etc/hostname"), h.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&h).unwrap().trim(), "cph");
    // A file written inside comes back out intact.
    env.ok(&["exec", &n, "sh", "-c", "seq 1 1000 > /tmp/seq"]);
    let back = env.dir.join("seq");
    env.ok(&["cp", &format!("{n}:/tmp/seq"), back.to_str().unwrap()]);
    let want: String = (1..=1000).map(|i| format!("{i}\n")).collect();
    assert_eq!(std::fs::read_to_string(&back).unwrap(), want);
    // Copying from a stopped container works too.
    env.ok(&["stop", "-t", "1", &n]);
    let h2 = env.dir.join("h2");
    env.ok(&["cp", &format!("{n}:/tmp/f"), h2.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&h2).unwrap(), "hello from the host\nline 2\n");
    let o = env.berth(&["cp", &format!("{n}:/nonexistent"), h2.to_str().unwrap()]);
    assert_ne!(o.code, 0, "{o}");
}

#[test]
fn stop_start_restart() {
    let env = Env::new("stop_start_restart");
    let n = env.name("svc");
    // A process that honours SIGTERM stops gracefully, with its own code.
    env.run_detached(&n, &["busybox", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]);
    let t = Instant::now();
    env.ok(&["stop", "-t", "5", &n]);
    assert!(t.elapsed() < SECS(4), "SIGTERM should have stopped it quickly, took {:?}", t.elapsed());
    assert_eq!(env.status(&n), "exited");
    assert_eq!(env.inspect_f(&n, "{{.State.ExitCode}}"), "0");
    assert!(!env.inspect_f(&n, "{{.State.FinishedAt}}").is_empty());

    env.ok(&["start", &n]);
    env.wait_status(&n, "running", SECS(10));
    let pid1 = env.pid(&n);
    let started1 = env.inspect_f(&n, "{{.State.StartedAt}}");
    env.ok(&["restart", "-t", "1", &n]);
    env.wait_status(&n, "running", SECS(10));
    let pid2 = env.pid(&n);
    assert_ne!(pid1, pid2, "restart runs a new process");
    assert_ne!(started1, env.inspect_f(&n, "{{.State.StartedAt}}"));

    // A pid 1 that ignores SIGTERM (httpd) is killed after -t seconds.
    let w = env.name("web");
    env.run_detached(&w, &["busybox", "httpd", "-f", "-p", "80"]);
    let t = Instant::now();
    env.ok(&["stop", "-t", "1", &w]);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(900) && took < SECS(6), "stop -t 1 took {took:?}");
    assert_eq!(env.inspect_f(&w, "{{.State.ExitCode}}"), "137");
}

#[test]
fn kill_with_signals() {
    let env = Env::new("kill_with_signals");
    let n = env.name("tr");
    env.run_detached(&n, &["busybox", "sh", "-c", "trap 'echo got-usr1' USR1; trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done"]);
    assert!(wait_until(SECS(5), || env.berth(&["logs", &n]).stdout.contains("ready")));
    env.ok(&["kill", "-s", "USR1", &n]);
    assert!(wait_until(SECS(5), || env.berth(&["logs", &n]).stdout.contains("got-usr1")), "USR1 reached the process");
    assert_eq!(env.status(&n), "running");
    env.ok(&["kill", "-s", "SIGTERM", &n]);
    env.wait_status(&n, "exited", SECS(5));
    assert_eq!(env.inspect_f(&n, "{{.State.ExitCode}}"), "42");
    assert!(env.berth(&["logs", &n]).stdout.contains("got-term"));

    let k = env.name("k");
    env.run_detached(&k, &["busybox", "sleep", "300"]);
    env.ok(&["kill", &k]);
    env.wait_status(&k, "exited", SECS(5));
    assert_eq!(env.inspect_f(&k, "{{.State.ExitCode}}"), "137", "default kill is SIGKILL");
    assert_ne!(env.berth(&["kill", &k]).code, 0, "killing a stopped container is an error");
}

#[test]
fn pause_freezes_and_unpause_resumes() {
    let env = Env::new("pause_freezes_and_unpause_resumes");
    let n = env.name("cnt");
    env.run_detached(&n, &["busybox", "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/c; sleep 0.1; done"]);
    let read = || env.cp_out(&n, "/tmp/c").and_then(|s| s.trim().parse::<u64>().ok());
    assert!(wait_until(SECS(5), || read().unwrap_or(0) >= 2), "counter runs");
    env.ok(&["pause", &n]);
    assert_eq!(env.status(&n), "paused");
    assert_eq!(env.inspect_f(&n, "{{.State.Paused}}"), "true");
    assert!(env.ok(&["ps"]).lines().any(|l| l.contains(&n) && l.contains("(Paused)")));
    // (The counter is renamed into place: a pause between a truncate and
    // its write would otherwise leave an empty file to read.)
    let v1 = read().expect("cp from a paused container");
    sleep_ms(800);
    let v2 = read().expect("cp from a paused container");
    assert_eq!(v1, v2, "a paused container's counter must not advance");
    env.ok(&["unpause", &n]);
    assert_eq!(env.status(&n), "running");
    assert!(wait_until(SECS(5), || read().unwrap_or(0) > v2 + 2), "counter advances after unpause");
    let o = env.ok(&["exec", &n, "cat", "/tmp/c"]);
    assert!(o.parse::<u64>().unwrap() > v2);
}

#[test]
fn wait_prints_exit_code() {
    let env = Env::new("wait_prints_exit_code");
    let n = env.name("w");
    env.run_detached(&n, &["busybox", "sh", "-c", "sleep 1; exit 9"]);
    let t = Instant::now();
    let o = env.berth(&["wait", &n]);
    assert!(o.ok(), "{o}");
    assert_eq!(o.out(), "9");
    assert!(t.elapsed() >= Duration::from_millis(400), "wait returned before the container ended ({:?})", t.elapsed());
    assert_eq!(env.status(&n), "exited");
    // Waiting on an already exited container answers at once.
    assert_eq!(env.ok(&["wait", &n]), "9");
}

#[test]
fn rm_and_rm_force_and_rm_all() {
    let env = Env::new("rm_and_rm_force_and_rm_all");
    let n = env.name("web");
    let id = env.run_detached(&n, &["busybox", "httpd", "-f", "-p", "80"]);
    let pid = env.pid(&n);
    let o = env.berth(&["rm", &n]);
    assert_ne!(o.code, 0, "rm of a running container must refuse: {o}");
    assert!(o.stderr.contains("running"), "{o}");
    assert_eq!(env.status(&n), "running");
    let o = env.berth(&["rm", "-f", &n]);
    assert!(o.ok(), "{o}");
    assert!(env.berth(&["inspect", &n]).code != 0, "container is gone");
    assert!(
        wait_until(SECS(5), || std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim() != "httpd").unwrap_or(true)),
        "httpd (pid {pid}) still runs after rm -f"
    );
    assert!(!env.root.join("containers").join(&id).exists(), "container dir remains");
    assert!(!env.ok(&["ps", "-a"]).contains(&n));

    // Plain rm of exited and created ones, and rm $(ps -aq).
    let a = env.name("a");
    env.ok(&["run", "--name", &a, "busybox", "true"]);
    env.ok(&["rm", &a]);
    assert!(!env.ok(&["ps", "-a"]).contains(&a));
    for s in ["x", "y"] {
        env.ok(&["run", "--name", &env.name(s), "busybox", "true"]);
    }
    env.ok(&["create", "--name", &env.name("z"), "busybox", "true"]);
    let ids = env.ok(&["ps", "-aq"]);
    assert_eq!(ids.lines().count(), 3);
    let mut args = vec!["rm"];
    args.extend(ids.lines());
    env.ok(&args);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert_ne!(env.berth(&["rm", "nosuch"]).code, 0);
}

#[test]
fn rename_container() {
    let env = Env::new("rename_container");
    let (old, new) = (env.name("old"), env.name("new"));
    env.ok(&["create", "--name", &old, "busybox", "true"]);
    env.ok(&["rename", &old, &new]);
    assert_eq!(env.inspect_f(&new, "{{.Name}}"), format!("/{new}"));
    assert_ne!(env.berth(&["inspect", &old]).code, 0);
    let o = env.berth(&["run", "--name", &new, "busybox", "true"]);
    assert_eq!(o.code, 125, "name still taken: {o}");
    assert!(o.stderr.contains("already in use"), "{o}");
}

#[test]
fn restart_on_failure_stops_after_max() {
    let env = Env::new("restart_on_failure_stops_after_max");
    let n = env.name("rp");
    env.ok(&["run", "-d", "--name", &n, "--restart", "on-failure:3", "busybox", "sh", "-c", "exit 1"]);
    let mut last = String::new();
    let done = wait_until(SECS(30), || {
        last = env.inspect_f(&n, "{{.RestartCount}} {{.State.Status}}");
        last == "3 exited"
    });
    assert!(done, "expected RestartCount 3 and exited, last seen {last:?}");
    sleep_ms(1500);
    assert_eq!(env.inspect_f(&n, "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}"), "3 exited 1", "no more restarts");
    let v = env.inspect(&n);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
    // Success is not restarted under on-failure.
    let s = env.name("ok");
    env.ok(&["run", "-d", "--name", &s, "--restart", "on-failure:3", "busybox", "true"]);
    env.wait_status(&s, "exited", SECS(5));
    sleep_ms(1000);
    assert_eq!(env.inspect_f(&s, "{{.RestartCount}} {{.State.Status}}"), "0 exited");
}

#[test]
fn restart_always_until_stopped() {
    let env = Env::new("restart_always_until_stopped");
    let n = env.name("ra");
    env.ok(&["run", "-d", "--name", &n, "--restart", "always", "busybox", "sh", "-c", "sleep 0.3; exit 0"]);
    let mut last = 0;
    let grew = wait_until(SECS(20), || {
        last = env.inspect_f(&n, "{{.RestartCount}}").parse().unwrap_or(0);
        last >= 2
    });
    assert!(grew, "RestartCount stayed {last}");
    env.ok(&["stop", "-t", "1", &n]);
    env.wait_status(&n, "exited", SECS(5));
    let c1 = env.inspect_f(&n, "{{.RestartCount}}");
    sleep_ms(2000);
    assert_eq!(env.status(&n), "exited", "stop ends an always-restarting container");
    assert_eq!(env.inspect_f(&n, "{{.RestartCount}}"), c1, "no restart after stop");
    assert_eq!(env.inspect_f(&n, "{{.HostConfig.RestartPolicy.Name}}"), "always");
}

#[test]
fn entrypoint_override() {
    let env = Env::new("entrypoint_override");
    let o = env.berth(&["run", "--rm", "--entrypoint", "echo", "busybox", "a", "b"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "a b\n"), "{o}");
    let n = env.name("ep");
    let o = env.berth(&["run", "--name", &n, "--entrypoint", "sh", "busybox", "-c", "echo ep-$((1+1))"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "ep-2\n"), "{o}");
    assert_eq!(env.inspect(&n)["Config"]["Entrypoint"], serde_json::json!(["sh"]));
}

#[test]
fn env_workdir_hostname_inside() {
    let env = Env::new("env_workdir_hostname_inside");
    let o = env.berth(&[
        "run", "--rm", "-e", "A=1", "-e", "B=two words", "-w", "/tmp", "--hostname", "h1", "busybox", "sh", "-c",
        "echo \"$A|$B\"; pwd; hostname; cat /etc/hostname",
    ]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stdout, "1|two words\n/tmp\nh1\nh1\n");
    // A working dir that does not exist in the image is created.
    let o = env.berth(&["run", "--rm", "-w", "/new/dir", "busybox", "pwd"]);
    assert_eq!((o.code, o.out()), (0, "/new/dir"), "{o}");
    // Defaults: PATH set, hostname is the short id.
    let n = env.name("d");
    let o = env.berth(&["run", "--name", &n, "busybox", "sh", "-c", "echo $PATH; hostname"]);
    let id = env.full_id(&n);
    assert!(o.stdout.contains("/bin") && o.stdout.lines().nth(1) == Some(&id[..12]), "{o}");
}

#[test]
fn network_none_has_only_loopback() {
    let env = Env::new("network_none_has_only_loopback");
    let o = env.berth(&["run", "--rm", "--network", "none", "busybox", "sh", "-c", "ls /sys/class/net; ip -4 addr show lo"]);
    assert!(o.ok(), "{o}");
    let ifaces: Vec<&str> = o.stdout.lines().take_while(|l| !l.contains(':')).collect();
    assert_eq!(ifaces, ["lo"], "{o}");
    assert!(o.stdout.contains("127.0.0.1"), "loopback is up with its address: {o}");
    let o = env.berth(&["run", "--rm", "--network", "none", "busybox", "ping", "-c", "1", "-W", "1", "127.0.0.1"]);
    assert_eq!(o.code, 0, "{o}");
}

#[test]
fn dev_and_etc_files_of_a_container() {
    let env = Env::new("dev_and_etc_files_of_a_container");
    let o = env.berth(&[
        "run", "--rm", "--hostname", "files1", "busybox", "sh", "-c",
        "for d in null zero full random urandom tty; do [ -c /dev/$d ] && echo $d; done; \
         [ -d /dev/pts ] && echo pts; [ -d /dev/shm ] && echo shm; \
         grep -q localhost /etc/hosts && echo hosts; [ -f /etc/resolv.conf ] && echo resolv; cat /etc/hostname",
    ]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stdout, "null\nzero\nfull\nrandom\nurandom\ntty\npts\nshm\nhosts\nresolv\nfiles1\n", "{o}");
}

#[test]
fn containers_do_not_share_writes() {
    let env = Env::new("containers_do_not_share_writes");
    let (a, b) = (env.name("a"), env.name("b"));
    let o = env.berth(&["run", "--name", &a, "busybox", "sh", "-c", "echo mine > /bin/newfile && rm /bin/ls"]);
    assert!(o.ok(), "{o}");
    let o = env.berth(&["run", "--name", &b, "busybox", "sh", "-c", "ls /bin/newfile; [ -e /bin/ls ] && echo ls-present"]);
    assert!(o.stdout.contains("ls-present") && !o.stdout.contains("/bin/newfile"), "{o}");
    // The write landed in a's upper dir; the deletion is a whiteout there.
    let upper = std::path::PathBuf::from(env.inspect_f(&a, "{{.GraphDriver.Data.UpperDir}}"));
    assert_eq!(std::fs::read_to_string(upper.join("bin/newfile")).unwrap(), "mine\n");
    assert!(std::fs::symlink_metadata(upper.join("bin/ls")).is_ok(), "whiteout for /bin/ls expected in {}", upper.display());
    // Starting a again keeps its writes: /bin/ls is still gone, so rm fails.
    env.ok(&["start", &a]);
    assert_eq!(env.ok(&["wait", &a]), "1", "the deletion of /bin/ls persisted across a restart");
    assert_eq!(std::fs::read_to_string(upper.join("bin/newfile")).unwrap(), "mine\n");
    let o = env.berth(&["run", "--rm", "busybox", "cat", "/bin/newfile"]);
    assert_ne!(o.code, 0, "a fresh container must not see a's file: {o}");
}

#[test]
fn ps_filters_by_label_name_and_status() {
    let env = Env::new("ps_filters_by_label_name_and_status");
    let (db, web) = (env.name("db"), env.name("web"));
    let db_id = env.ok(&["run", "-d", "--name", &db, "-l", "role=db", "busybox", "sleep", "60"]);
    env.ok(&["run", "--name", &web, "-l", "role=web", "busybox", "true"]);
    assert_eq!(env.ok(&["ps", "-q", "--filter", "label=role=db"]), &db_id[..12]);
    assert_eq!(env.ok(&["ps", "-aq", "-f", "label=role"]).lines().count(), 2);
    assert_eq!(env.ok(&["ps", "-q", "-f", "status=exited"]).len(), 12, "a status filter sees stopped containers without -a");
    assert_eq!(env.ok(&["ps", "-aq", "-f", &format!("name={web}"), "-f", "label=role=db"]), "", "all filters must hold");
    let o = env.berth(&["ps", "-f", "colour=red"]);
    assert!(o.code != 0 && o.stderr.contains("unknown filter \"colour\""), "{o}");
}

#[test]
fn inspect_templates_index_and_refuse_what_they_do_not_know() {
    let env = Env::new("inspect_templates");
    let net = env.name("n");
    env.ok(&["network", "create", "--subnet", "10.233.9.0/24", &net]);
    let c = env.name("c");
    env.run_detached(&c, &["--network", &net, "--ip", "10.233.9.7", "busybox", "sleep", "60"]);
    let f = format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}} {{{{index .Config.Cmd 1}}}} {{{{json .Config.Cmd}}}} {{{{.State.Nope}}}}");
    assert_eq!(env.ok(&["inspect", "-f", &f, &c]), "10.233.9.7 60 [\"sleep\",\"60\"] <no value>");
    let o = env.berth(&["inspect", "-f", "{{range .Mounts}}x{{end}}", &c]);
    assert!(o.code == 125 && o.stderr.contains("\"range .Mounts\" is not understood"), "{o}");
}

/// The state of a container as the store has it (inspect waits for no one).
fn state_and_code(env: &Env, c: &str) -> (String, String) {
    let o = env.inspect_f(c, "{{.State.Status}} {{.State.ExitCode}}");
    let mut w = o.split_whitespace().map(str::to_string);
    (w.next().unwrap_or_default(), w.next().unwrap_or_default())
}

fn monitor_log(env: &Env, id: &str) -> String {
    std::fs::read_to_string(env.root.join("containers").join(id).join("monitor.log")).unwrap_or_default()
}

#[test]
fn an_exit_while_the_store_is_locked_is_recorded_when_it_is_free() {
    let env = Env::new("exit_while_store_locked");
    let c = env.name("c");
    let id = env.run_detached(&c, &["busybox", "sh", "-c", "sleep 1; exit 3"]);
    // Another process holds the store's write lock for 3 s across the exit.
    let db = rusqlite::Connection::open(env.root.join("state.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    db.execute_batch("COMMIT").unwrap();
    drop(db);
    assert!(wait_until(std::time::Duration::from_secs(20), || state_and_code(&env, &c) == ("exited".into(), "3".into())), "the exit is recorded once the store is free: {:?}", state_and_code(&env, &c));
    let log = monitor_log(&env, &id);
    assert!(!log.contains("panicked"), "the monitor did not panic: {log}");
}

/// Unmounts a tmpfs when dropped, after the Env declared after it.
struct Unmount(Option<std::path::PathBuf>);
impl Drop for Unmount {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn a_full_disk_does_not_take_a_container_or_its_monitor_down() {
    let mut guard = Unmount(None);
    let env = Env::bare("full_disk");
    nix::mount::mount(Some("tmpfs"), &env.root, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=24m")).unwrap();
    guard.0 = Some(env.root.clone());
    env.ok(&["image", "import", "-c", r#"CMD ["sh"]"#, busybox_tar().to_str().unwrap(), "busybox"]);
    let c = env.name("c");
    let id = env.run_detached(&c, &["busybox", "sh", "-c", "i=0; while [ $i -lt 30 ]; do echo line $i; i=$((i+1)); sleep 0.1; done; exit 4"]);
    // Fill the root's filesystem while the container runs and exits.
    let filler = env.root.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 1 << 20];
        while f.write_all(&block).is_ok() {}
        let _ = f.flush();
    }
    std::thread::sleep(std::time::Duration::from_secs(4));
    let pids = std::fs::read_to_string(env.root.join("containers").join(&id).join("monitor.log")).unwrap_or_default();
    assert!(!pids.contains("panicked"), "no panic with the disk full: {pids}");
    std::fs::remove_file(&filler).unwrap();
    assert!(wait_until(std::time::Duration::from_secs(20), || state_and_code(&env, &c) == ("exited".into(), "4".into())), "the exit is recorded once there is room: {:?}", state_and_code(&env, &c));
    let log = monitor_log(&env, &id);
    assert!(!log.contains("panicked"), "the monitor did not panic: {log}");
    env.ok(&["rm", &c]);
}

/// How a key finds a container, as in docker: a full id first, then a
/// name, then an id prefix; a prefix two ids share is refused.
#[test]
fn a_full_id_then_a_name_then_an_id_prefix_finds_a_container() {
    let env = Env::new("a_full_id_then_a_name");
    let a = env.name("a");
    let a_id = env.ok(&["create", "--name", &a, "busybox", "true"]);
    // A container may take another's full id as its name; the id wins.
    let b_id = env.ok(&["create", "--name", &a_id, "busybox", "true"]);
    assert_eq!(env.inspect_f(&a_id, "{{.Id}}"), a_id, "the full id finds a, not the container named after it");
    // A name that is also an id prefix: the name wins.
    let prefix = &b_id[..12];
    let c_id = env.ok(&["create", "--name", prefix, "busybox", "true"]);
    assert_eq!(env.inspect_f(prefix, "{{.Id}}"), c_id, "the name finds c");
    assert_eq!(env.inspect_f(&a_id[..12], "{{.Id}}"), a_id, "a prefix finds a");
    assert_eq!(env.inspect_f(&b_id, "{{.Name}}"), format!("/{a_id}"));
}
