//! The containers endpoints of `berth serve`, driven by the docker CLI:
//! create, list, inspect and the lifecycle, published ports, logs, wait,
//! top, stats and cp. What the CLI makes are ordinary berth containers.

use std::io::{Read, Write};
use std::time::Duration;

use crate::api::{Served, both_clients, tagged};
use crate::util::{Env, free_port, is_hex, wait_until};

/// `docker inspect -f FMT C`, trimmed.
fn inspect_f(s: &Served, c: &str, fmt: &str) -> String {
    s.docker_ok(&["inspect", "-f", fmt, c])
}

fn lifecycle_through_the_docker_cli(bin: &'static str) {
    let env = Env::new(&tagged("apic_life", bin));
    let s = Served::start_for(&env, bin);
    let (web, db) = (env.name("web"), env.name("db"));
    let id = s.docker_ok(&["create", "--name", &web, "--label", "tier=web", "busybox", "sleep", "300"]);
    assert!(is_hex(&id, 64), "create prints the id: {id}");
    s.docker_ok(&["create", "--name", &db, "--label", "tier=db", "busybox", "true"]);
    assert_eq!(inspect_f(&s, &web, "{{.State.Status}} {{.Config.Labels}}"), "created map[tier:web]");
    assert_eq!(s.docker_ok(&["ps", "-a", "--filter", "label=tier=web", "--format", "{{.Names}} {{.Status}}"]), format!("{web} Created"));
    assert_eq!(s.docker_ok(&["ps", "-q"]), "", "nothing runs yet");

    s.docker_ok(&["start", &web]);
    assert_eq!(s.docker_ok(&["ps", "--format", "{{.Names}} {{.Image}} {{.Command}}"]), format!("{web} busybox \"sleep 300\""));
    // Starting a running container is docker's 304: no error.
    s.docker_ok(&["start", &web]);

    let o = s.docker(&["rm", &web]);
    assert!(!o.ok() && o.stderr.contains(&format!("cannot remove container \"/{web}\": container is running")), "rm of a running container is a 409: {o}");

    s.docker_ok(&["pause", &web]);
    assert_eq!(inspect_f(&s, &web, "{{.State.Status}}"), "paused");
    assert!(s.docker_ok(&["ps", "--format", "{{.Status}}"]).ends_with("(Paused)"));
    s.docker_ok(&["unpause", &web]);
    assert_eq!(inspect_f(&s, &web, "{{.State.Status}}"), "running");

    s.docker_ok(&["stop", "-t", "1", &web]);
    assert_eq!(inspect_f(&s, &web, "{{.State.Status}}"), "exited");
    s.docker_ok(&["restart", "-t", "1", &web]);
    assert_eq!(inspect_f(&s, &web, "{{.State.Status}} {{.State.Running}}"), "running true");
    s.docker_ok(&["kill", &web]);
    assert_eq!(inspect_f(&s, &web, "{{.State.Status}} {{.State.ExitCode}}"), "exited 137");

    let renamed = env.name("renamed");
    s.docker_ok(&["rename", &web, &renamed]);
    assert_eq!(inspect_f(&s, &id, "{{.Name}}"), format!("/{renamed}"));
    s.docker_ok(&["start", &renamed]);
    s.docker_ok(&["rm", "-f", &renamed]);

    let pruned = s.docker_ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Deleted Containers"), "{pruned}");
    assert_eq!(s.docker_ok(&["ps", "-aq"]), "", "prune took the created one too");

    let o = s.docker(&["container", "inspect", "nosuch"]);
    assert!(!o.ok() && o.stderr.contains("No such container: nosuch"), "{o}");
    let o = s.docker(&["inspect", "nosuch"]);
    assert!(!o.ok() && o.stderr.contains("No such object: nosuch"), "{o}");
}

/// GET / over plain TCP; the whole answer.
fn http_get(port: u16) -> Option<String> {
    let mut t = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    t.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    t.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    t.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn a_published_port_reaches_httpd() {
    let env = Env::new("apic_port");
    let s = Served::start(&env);
    let name = env.name("httpd");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    s.docker_ok(&["run", "-d", "--name", &name, "-p", &publish, "busybox", "sh", "-c", "echo hello from berth > /tmp/index.html && exec httpd -f -p 80 -h /tmp"]);
    let mut last = None;
    let ok = wait_until(Duration::from_secs(15), || {
        last = http_get(port);
        last.as_deref().is_some_and(|b| b.contains("hello from berth"))
    });
    assert!(ok, "no answer from httpd on 127.0.0.1:{port}: {last:?}");
    assert_eq!(s.docker_ok(&["port", &name, "80"]), format!("127.0.0.1:{port}"));
    assert_eq!(s.docker_ok(&["ps", "--format", "{{.Ports}}"]), format!("127.0.0.1:{port}->80/tcp"));
}

fn logs_follow_tail_and_wait(bin: &'static str) {
    let env = Env::new(&tagged("apic_logs", bin));
    let s = Served::start_for(&env, bin);
    let name = env.name("talker");
    s.docker_ok(&["run", "-d", "--name", &name, "busybox", "sh", "-c", "echo one; echo two >&2; sleep 2; echo three; exit 3"]);
    // Follows until the container exits, each stream to its own side.
    let o = s.docker(&["logs", "-f", &name]);
    assert!(o.ok(), "{o}");
    assert_eq!((o.out(), o.stderr.trim()), ("one\nthree", "two"));
    assert_eq!(s.docker_ok(&["wait", &name]), "3");
    assert_eq!(s.docker_ok(&["logs", "--tail", "1", &name]), "three");
    let o = s.docker(&["logs", "-t", &name]);
    assert!(o.lines().iter().all(|l| l.len() > 31 && l.as_bytes()[10] == b'T' && l.contains("Z ")), "timestamps: {o}");

    // A terminal container's log is one raw stream.
    let tty = env.name("tty");
    s.docker_ok(&["run", "-d", "-t", "--name", &tty, "busybox", "sh", "-c", "echo on-tty; echo also >&2"]);
    assert_eq!(s.docker_ok(&["wait", &tty]), "0");
    let o = s.docker(&["logs", &tty]);
    assert!(o.ok() && o.stdout.contains("on-tty") && o.stdout.contains("also") && o.stderr.is_empty(), "{o}");
}

fn top_and_stats(bin: &'static str) {
    let env = Env::new(&tagged("apic_stats", bin));
    let s = Served::start_for(&env, bin);
    let name = env.name("busy");
    s.docker_ok(&["run", "-d", "--name", &name, "--cpus", "0.5", "--memory", "64m", "busybox", "sh", "-c", "while :; do :; done"]);
    let top = s.docker_ok(&["top", &name]);
    assert!(top.starts_with("UID") && top.contains("PID") && top.contains("sh -c while"), "{top}");
    // ps_args: the host's ps, kept to the container's processes.
    let pid = inspect_f(&s, &name, "{{.State.Pid}}");
    let aux = s.docker_ok(&["top", &name, "aux"]);
    let lines: Vec<&str> = aux.lines().collect();
    assert!(lines[0].starts_with("USER") && lines[0].contains("%CPU") && lines[0].ends_with("COMMAND"), "{aux}");
    assert_eq!(lines.len(), 2, "only the container's process: {aux}");
    assert!(lines[1].split_whitespace().nth(1) == Some(pid.as_str()) && lines[1].ends_with("sh -c while :; do :; done"), "{aux}");
    let o = s.docker_ok(&["top", &name, "-o", "pid,comm"]);
    let rows: Vec<Vec<&str>> = o.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows, [vec!["PID", "COMMAND"], vec![pid.as_str(), "sh"]], "{o}");
    let o = s.docker(&["top", &name, "-o", "comm"]);
    assert!(!o.ok() && o.stderr.contains("ps_args \"-o comm\"") && o.stderr.contains("no PID column"), "a table without PIDs is refused, naming the argument: {o}");
    let o = s.docker(&["top", &name, "--nosuch"]);
    assert!(!o.ok() && o.stderr.contains("ps_args \"--nosuch\""), "{o}");
    let line = s.docker_ok(&["stats", "--no-stream", "--format", "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}", &name]);
    let f: Vec<&str> = line.split('|').collect();
    assert_eq!((f[0], f[3]), (name.as_str(), "1"), "{line}");
    let cpu: f64 = f[1].trim_end_matches('%').parse().unwrap_or_else(|_| panic!("CPU % of {line}"));
    assert!(cpu > 1.0 && cpu <= 100.0, "a busy loop under --cpus 0.5 shows its use: {line}");
    let (used, limit) = f[2].split_once(" / ").unwrap_or_else(|| panic!("MEM USAGE / LIMIT of {line}"));
    assert!(used.ends_with("iB") && !used.starts_with("0B"), "{line}");
    assert_eq!(limit, "64MiB", "{line}");
}

fn cp_both_ways(bin: &'static str) {
    let env = Env::new(&tagged("apic_cp", bin));
    let s = Served::start_for(&env, bin);
    let name = env.name("box");
    s.docker_ok(&["run", "-d", "--name", &name, "busybox", "sleep", "300"]);
    let host = env.dir.join("host");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(host.join("tree/sub/b.txt"), "beta\n").unwrap();
    let h = |p: &str| host.join(p).to_str().unwrap().to_string();
    let inside = |p: &str| format!("{name}:{p}");

    // In: a file into a directory, a tree under a new name.
    s.docker_ok(&["cp", &h("a.txt"), &inside("/tmp/")]);
    s.docker_ok(&["cp", &h("tree"), &inside("/tmp/newtree")]);
    assert_eq!(env.ok(&["exec", &name, "cat", "/tmp/a.txt", "/tmp/newtree/sub/b.txt"]), "alpha\nbeta");

    // A tar's owners, modes, times and hard links are kept, as dockerd
    // extracts it.
    let kept = host.join("kept");
    std::fs::create_dir_all(kept.join("d")).unwrap();
    std::fs::write(kept.join("d/f"), "owned\n").unwrap();
    std::fs::hard_link(kept.join("d/f"), kept.join("link")).unwrap();
    std::os::unix::fs::symlink("d/f", kept.join("sym")).unwrap();
    std::os::unix::fs::chown(kept.join("d/f"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::lchown(kept.join("sym"), Some(42), Some(43)).unwrap();
    std::os::unix::fs::chown(kept.join("d"), Some(7), Some(8)).unwrap();
    std::fs::set_permissions(kept.join("d/f"), std::os::unix::fs::PermissionsExt::from_mode(0o4640)).unwrap();
    std::fs::set_permissions(kept.join("d"), std::os::unix::fs::PermissionsExt::from_mode(0o710)).unwrap();
    for (p, t) in [("d/f", "@1000000000"), ("d", "@1100000000"), ("sym", "@1200000000")] {
        assert!(std::process::Command::new("touch").args(["-h", "-d", t]).arg(kept.join(p)).status().unwrap().success());
    }
    s.docker_ok(&["cp", &h("kept"), &inside("/kept")]);
    let st = env.ok(&["exec", &name, "stat", "-c", "%n %u %g %a %Y %h %i", "/kept/d/f", "/kept/link", "/kept/d"]);
    let f: Vec<Vec<&str>> = st.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(f[0][..6], ["/kept/d/f", "1234", "5678", "4640", "1000000000", "2"], "{st}");
    assert_eq!((f[1][1..6].to_vec(), f[1][6]), (f[0][1..6].to_vec(), f[0][6]), "the hard link is the same inode: {st}");
    assert_eq!(f[2][..5], ["/kept/d", "7", "8", "710", "1100000000"], "{st}");
    // Links between the top entries of the tar too (a directory's content).
    s.docker_ok(&["exec", &name, "mkdir", "/content"]);
    s.docker_ok(&["cp", &format!("{}/.", h("kept")), &inside("/content")]);
    let st = env.ok(&["exec", &name, "stat", "-c", "%i %h", "/content/d/f", "/content/link"]);
    assert!(st.lines().next() == st.lines().nth(1) && st.ends_with(" 2"), "{st}");
    let sym = env.ok(&["exec", &name, "stat", "-c", "%u %g %Y %N", "/kept/sym"]);
    assert_eq!(sym, "42 43 1200000000 '/kept/sym' -> 'd/f'", "a symlink keeps its owner and time");

    // Out: a file, a tree, a directory's content.
    s.docker_ok(&["cp", &inside("/etc/hostname"), &h("hostname")]);
    assert_eq!(std::fs::read_to_string(host.join("hostname")).unwrap().trim(), &env.full_id(&name)[..12]);
    s.docker_ok(&["cp", &inside("/tmp/newtree"), &h("back")]);
    assert_eq!(std::fs::read_to_string(host.join("back/sub/b.txt")).unwrap(), "beta\n");
    std::fs::create_dir_all(host.join("content")).unwrap();
    s.docker_ok(&["cp", &inside("/tmp/newtree/."), &h("content")]);
    assert!(host.join("content/sub/b.txt").is_file(), "the content of newtree lands in content/");

    let o = s.docker(&["cp", &inside("/nosuch"), &h("x")]);
    // The 20.10 client words a 404 of its HEAD request itself.
    assert!(!o.ok() && (o.stderr.contains("Could not find the file /nosuch") || o.stderr.contains(&format!("No such container:path: {name}:/nosuch"))), "{o}");

    // A stopped container's files are there too.
    s.docker_ok(&["stop", "-t", "0", &name]);
    s.docker_ok(&["cp", &inside("/tmp/a.txt"), &h("again.txt")]);
    assert_eq!(std::fs::read_to_string(host.join("again.txt")).unwrap(), "alpha\n");
}

#[test]
fn the_docker_cli_and_berth_share_their_containers() {
    let env = Env::new("apic_shared");
    let s = Served::start(&env);
    let (d, b) = (env.name("from-docker"), env.name("from-berth"));
    // The names docker's clients give busybox all find the imported image.
    s.docker_ok(&["run", "-d", "--name", &d, "docker.io/library/busybox:latest", "sleep", "300"]);
    s.docker_ok(&["create", "--name", &env.name("tagged"), "busybox:latest", "true"]);
    assert!(env.ok(&["ps", "--format", "json"]).contains(&d), "berth ps shows the container docker made");
    assert_eq!(env.status(&d), "running");
    env.ok(&["run", "-d", "--name", &b, "busybox", "sleep", "300"]);
    let names = s.docker_ok(&["ps", "--format", "{{.Names}}"]);
    assert!(names.lines().any(|l| l == b) && names.lines().any(|l| l == d), "{names}");

    let o = s.docker(&["create", "--pull", "never", "nosuch:1"]);
    assert!(!o.ok() && o.stderr.contains("No such image: nosuch:1"), "{o}");
}

/// The Python of scripts/deps' venv (docker 7).
const VENV_PYTHON: &str = "/opt/berth-venv/bin/python";

/// `docker run` asks to wait for the next exit before it starts the
/// container; docker-py's `wait(condition=...)` is the same request.
#[test]
fn wait_for_the_next_exit_before_the_start() {
    assert!(std::path::Path::new(VENV_PYTHON).exists(), "{VENV_PYTHON} is missing: run scripts/deps");
    let env = Env::new("apic_wait");
    let s = Served::start(&env);
    let script = r#"
import docker, sys, threading, time
c = docker.DockerClient(base_url=sys.argv[1])
got = {}
ct = c.containers.create("busybox", ["sh", "-c", "sleep 1; exit 7"], name=sys.argv[2])
t = threading.Thread(target=lambda: got.update(next=ct.wait(condition="next-exit")))
t.start()
time.sleep(0.5)
ct.start()
t.join(30)
auto = c.containers.create("busybox", ["true"], name=sys.argv[2] + "-rm", auto_remove=True)
t = threading.Thread(target=lambda: got.update(removed=auto.wait(condition="removed")))
t.start()
time.sleep(0.5)
auto.start()
t.join(30)
print(got["next"]["StatusCode"], got["removed"]["StatusCode"], len(c.containers.list(all=True)))
"#;
    let child = std::process::Command::new(VENV_PYTHON)
        .args(["-c", script, &s.host(), &env.name("w")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let o = crate::util::collect(child, Duration::from_secs(60));
    assert_eq!(o.out(), "7 0 1", "the wait ends with the exit that came after it, and with the removal: {o}");
}

/// docker-compose 1.29 finds its containers by their labels: a second `up`
/// finds them up to date, `ps` and `logs` list them, `down` removes them.
#[test]
fn compose_1_29_up_ps_logs_down() {
    let env = Env::new("apic_compose");
    let s = Served::start(&env);
    let port = free_port();
    let file = env.dir.join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            r#"version: "3"
services:
  web:
    image: busybox
    command: sh -c "echo hello from web > /tmp/index.html; exec httpd -f -p 80 -h /tmp"
    labels:
      role: web
    ports:
      - "127.0.0.1:{port}:80"
  client:
    image: busybox
    command: sh -c "until wget -qO- http://web/; do sleep 0.2; done; exec sleep 300"
"#
        ),
    )
    .unwrap();
    let project = env.name("p").replace('-', "");
    let compose = |args: &[&str]| {
        let mut a = vec!["-f", file.to_str().unwrap(), "-p", &project];
        a.extend_from_slice(args);
        let o = s.docker_with("/usr/bin/docker-compose", &a);
        assert!(o.ok(), "docker-compose {}: {o}", args.join(" "));
        format!("{}{}", o.stdout, o.stderr)
    };
    compose(&["up", "-d"]);
    let ps = compose(&["ps"]);
    assert!(ps.contains(&format!("{project}_web_1")) && ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    assert!(wait_until(Duration::from_secs(20), || compose(&["logs", "client"]).contains("hello from web")), "the client never reached web by its name");
    assert!(compose(&["up", "-d"]).contains("is up-to-date"), "a second up finds the containers by their labels");
    let web = s.docker_ok(&["ps", "--filter", "label=role=web", "--filter", &format!("label=com.docker.compose.project={project}"), "--format", "{{.Names}}"]);
    assert_eq!(web, format!("{project}_web_1"));
    compose(&["down"]);
    assert_eq!(s.docker_ok(&["ps", "-aq"]), "");
}

both_clients!(lifecycle_through_the_docker_cli, logs_follow_tail_and_wait, top_and_stats, cp_both_ways);
