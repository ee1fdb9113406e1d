//! Interactive sessions through `berth serve`, driven by the real docker
//! CLI: exec (pipes and a terminal), attach, start -a and run.
//! Containers are made with the berth CLI where the test is about the
//! session, not the create.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::api::{Served, both_clients, tagged};
use crate::util::{Env, Out, Pty, collect, wait_until};

const WAIT: Duration = Duration::from_secs(30);

/// The docker CLI with `input` on its stdin.
fn docker_stdin(s: &Served, args: &[&str], input: &[u8]) -> Out {
    let mut child = s.docker_cmd(s.bin, args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawning docker");
    let mut i = child.stdin.take().unwrap();
    let input = input.to_vec();
    thread::spawn(move || {
        let _ = i.write_all(&input);
    });
    collect(child, WAIT)
}

/// The docker CLI on a terminal of its own (its controlling one, so a
/// resize reaches it as SIGWINCH), as a user runs `-it`.
struct Term(Pty);

impl Term {
    fn start(s: &Served, args: &[&str], rows: u16, cols: u16) -> Term {
        Term(Pty::spawn(s.docker_cmd(s.bin, args), rows, cols, &[]))
    }

    fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.0.raw()).replace('\r', "")
    }

    fn send(&mut self, keys: &str) {
        self.0.send(keys);
    }

    fn expect(&self, text: &str) {
        assert!(wait_until(WAIT, || self.transcript().contains(text)), "waited for {text:?}; the terminal so far:\n{}", self.transcript());
    }

    /// Types `line` until `text` shows up: a resize travels on its own,
    /// so the first try may come before it arrived.
    fn retype_until(&mut self, line: &str, text: &str) {
        let start = Instant::now();
        while !self.transcript().contains(text) {
            assert!(start.elapsed() < WAIT, "typing {line:?} never showed {text:?}:\n{}", self.transcript());
            self.send(line);
            wait_until(Duration::from_secs(1), || self.transcript().contains(text));
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        self.0.resize(rows, cols);
    }

    fn wait(&mut self) -> i32 {
        match self.0.wait(WAIT) {
            Some(code) => code,
            None => panic!("docker did not end:\n{}", self.transcript()),
        }
    }
}

#[test]
fn exec_prints_output_on_its_streams_and_returns_the_exit_status() {
    let env = Env::new("api_exec_basic");
    let s = Served::start(&env);
    let c = env.name("c");
    env.run_detached(&c, &["busybox", "sleep", "300"]);

    assert_eq!(s.docker_ok(&["exec", &c, "echo", "hi"]), "hi");
    let o = s.docker(&["exec", &c, "sh", "-c", "exit 3"]);
    assert_eq!(o.code, 3, "docker exec exits with the command's status: {o}");

    let o = s.docker(&["exec", &c, "sh", "-c", "echo out; echo err >&2"]);
    assert!(o.ok(), "{o}");
    assert_eq!(o.stdout, "out\n", "only stdout on stdout: {o}");
    assert_eq!(o.stderr, "err\n", "only stderr on stderr: {o}");

    let o = s.docker(&["exec", "-e", "A=1", "-w", "/tmp", "-u", "1000", &c, "sh", "-c", "echo $A $(pwd) $(id -u)"]);
    assert_eq!(o.out(), "1 /tmp 1000", "env, workdir and user reach the process: {o}");

    let o = s.docker(&["exec", &c, "nosuchcommand"]);
    assert_eq!(o.code, 127, "a command that does not exist is 127: {o}");
    assert!(o.stderr.contains("nosuchcommand"), "{o}");

    let o = s.docker(&["exec", "nosuch", "true"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("No such container: nosuch"), "docker's 404 message: {o}");

    // A detached exec runs on after the CLI returns.
    s.docker_ok(&["exec", "-d", &c, "sh", "-c", "sleep 0.3; touch /detached"]);
    assert!(wait_until(WAIT, || env.berth(&["exec", &c, "test", "-e", "/detached"]).ok()), "the detached exec did not run");

    env.ok(&["stop", "-t", "0", &c]);
    let o = s.docker(&["exec", &c, "true"]);
    assert!(!o.ok() && o.stderr.contains("is not running"), "exec in a stopped container: {o}");
}

#[test]
fn exec_i_passes_stdin_to_the_process() {
    let env = Env::new("api_exec_stdin");
    let s = Served::start(&env);
    let c = env.name("c");
    env.run_detached(&c, &["busybox", "sleep", "300"]);
    let o = docker_stdin(&s, &["exec", "-i", &c, "cat"], b"hello\nworld\n");
    assert!(o.ok(), "{o}");
    assert_eq!(o.stdout, "hello\nworld\n", "cat echoes stdin and ends with it: {o}");
    let o = docker_stdin(&s, &["exec", "-i", &c, "sh", "-c", "wc -c; exit 4"], &[b'x'; 100_000]);
    assert_eq!((o.code, o.out().trim()), (4, "100000"), "all of a large input arrives: {o}");
}

fn exec_it_runs_a_shell_on_a_terminal_that_follows_resizes(bin: &'static str) {
    let env = Env::new(&tagged("api_exec_tty", bin));
    let s = Served::start_for(&env, bin);
    let c = env.name("c");
    env.run_detached(&c, &["busybox", "sleep", "300"]);
    let mut t = Term::start(&s, &["exec", "-it", &c, "sh"], 30, 100);
    t.expect("# ");
    t.send("echo $((6*7)); tty\n");
    t.expect("42\n/dev/pts/");
    // The terminal's size at the start, then after the user resizes it.
    t.retype_until("stty size\n", "30 100");
    t.resize(33, 101);
    t.retype_until("stty size\n", "33 101");
    t.send("exit 5\n");
    assert_eq!(t.wait(), 5, "docker exec -it exits with the shell's status");

    // A client that goes away hangs up the shell's terminal, as closing a
    // terminal window does: the shell does not linger in the container.
    let t = Term::start(&s, &["exec", "-it", &c, "sh", "-c", "echo $$ > /shell; exec sh"], 30, 100);
    t.expect("# ");
    let pid = env.ok(&["exec", &c, "cat", "/shell"]);
    drop(t);
    assert!(
        wait_until(WAIT, || !env.berth(&["exec", &c, "test", "-e", &format!("/proc/{pid}")]).ok()),
        "the shell of a client that went away still runs: {}",
        env.ok(&["exec", &c, "ps"])
    );
}

#[test]
fn attach_to_a_terminal_follows_resizes_and_detaches() {
    let env = Env::new("api_attach_tty");
    let s = Served::start(&env);
    let c = env.name("c");
    env.ok(&["run", "-dit", "--name", &c, "busybox", "sh"]);
    env.wait_status(&c, "running", WAIT);
    let mut t = Term::start(&s, &["attach", &c], 30, 100);
    t.retype_until("echo $((6*7))\n", "42");
    t.retype_until("stty size\n", "30 100");
    t.resize(40, 120);
    t.retype_until("stty size\n", "40 120");
    // docker's detach keys: the CLI leaves, the container goes on. Whether
    // the CLI also says "read escape sequence" (status 1) is its own race:
    // it half-closes, berth ends the stream as the client's input ends, and
    // under load the CLI finds its input's error and the stream's end ready
    // at once and picks either (CI saw both).
    t.send("\x10\x11");
    t.wait();
    assert_eq!(env.status(&c), "running");
    // The same shell takes the next attach.
    let mut t = Term::start(&s, &["attach", &c], 30, 100);
    t.retype_until("echo $((6*8))\n", "48");
}

#[test]
fn attach_follows_a_running_container_until_it_exits() {
    let env = Env::new("api_attach");
    let s = Served::start(&env);
    let c = env.name("c");
    env.run_detached(&c, &["busybox", "sh", "-c", "i=0; while [ ! -e /stop ]; do echo line-$i; i=$((i+1)); sleep 0.2; done; echo bye >&2; exit 3"]);
    let mut child = s.docker_cmd(s.bin, &["attach", &c]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(wait_until(WAIT, || text().matches("line-").count() >= 2), "docker attach showed no output: {}", text());
    env.ok(&["exec", &c, "touch", "/stop"]);
    let o = collect(child, WAIT);
    reader.join().unwrap();
    assert_eq!(o.code, 3, "docker attach exits with the container's code: {o}");
    assert!(o.stderr.contains("bye"), "stderr reaches stderr: {o}");
    // Lines in order, none lost or doubled, from where it joined.
    let lines: Vec<u32> = text().lines().filter_map(|l| l.strip_prefix("line-")?.parse().ok()).collect();
    assert!(lines.windows(2).all(|w| w[1] == w[0] + 1), "{lines:?}");
}

#[test]
fn start_a_prints_the_output_from_the_first_byte_and_exits_with_the_code() {
    let env = Env::new("api_start_attach");
    let s = Served::start(&env);
    let c = env.name("c");
    env.ok(&["create", "--name", &c, "busybox", "sh", "-c", "echo started; echo oops >&2; exit 4"]);
    let o = s.docker(&["start", "-a", &c]);
    assert_eq!(o.code, 4, "{o}");
    assert_eq!(o.stdout, "started\n", "{o}");
    assert_eq!(o.stderr, "oops\n", "{o}");

    let i = env.name("i");
    env.ok(&["create", "-i", "--name", &i, "busybox", "sh", "-c", "cat; exit 6"]);
    let o = docker_stdin(&s, &["start", "-ai", &i], b"through stdin\n");
    assert_eq!((o.code, o.stdout.as_str()), (6, "through stdin\n"), "start -ai: stdin in, then its end ends cat: {o}");
}

/// `docker run` is create, attach, wait, start: the attach comes before
/// the container exists as a process, and sees all of its output.
fn run_attaches_before_the_start(bin: &'static str) {
    let env = Env::new(&tagged("api_run_attach", bin));
    let s = Served::start_for(&env, bin);
    let o = s.docker(&["run", "--name", &env.name("a"), "busybox", "sh", "-c", "echo hi; echo e >&2; exit 7"]);
    assert_eq!((o.code, o.stdout.as_str(), o.stderr.as_str()), (7, "hi\n", "e\n"), "{o}");
    // --rm: the code of a container already gone when the CLI asks, and
    // nothing left behind.
    let o = s.docker(&["run", "--rm", "busybox", "sh", "-c", "echo gone; exit 5"]);
    assert_eq!((o.code, o.stdout.as_str()), (5, "gone\n"), "{o}");
    assert!(!env.ok(&["ps", "-a", "--format", "{{.Image}} {{.Command}}"]).contains("echo gone"), "--rm left the container");

    let o = docker_stdin(&s, &["run", "-i", "--name", &env.name("i"), "busybox", "sh", "-c", "cat; exit 2"], b"x\ny\n");
    assert_eq!((o.code, o.stdout.as_str()), (2, "x\ny\n"), "{o}");

    let mut t = Term::start(&s, &["run", "-it", "--name", &env.name("t"), "busybox", "sh"], 30, 100);
    t.expect("# ");
    t.send("echo $((6*7))\n");
    t.expect("42");
    t.retype_until("stty size\n", "30 100");
    t.resize(31, 90);
    t.retype_until("stty size\n", "31 90");
    t.send("exit 9\n");
    assert_eq!(t.wait(), 9, "docker run -it exits with the shell's status");
}

both_clients!(exec_it_runs_a_shell_on_a_terminal_that_follows_resizes, run_attaches_before_the_start);
