//! `berth repl` driven through a real pseudo-terminal, as a user types:
//! state across lines, multi-line input, tables, errors, help, Tab
//! completion and Ctrl-C.

use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

const PROMPT: &str = "berth> ";
const MORE: &str = "  ...> ";
const WAIT: Duration = Duration::from_secs(20);

/// A REPL session on its own terminal. The terminal's output is collected
/// by a thread; `expect` waits for text in it.
struct Repl {
    pty: Pty,
    /// Where the part of the (cleaned) output not yet looked at starts.
    mark: usize,
}

/// Terminal output without escape sequences and carriage returns.
fn clean(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // Parameters, then one final byte.
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

impl Repl {
    fn start(env: &Env) -> Repl {
        // The history file goes to the test's directory, not the real home.
        let pty = Pty::spawn(env.cmd(&["repl"]), 50, 200, &[("HOME", env.dir.as_os_str())]);
        let mut r = Repl { pty, mark: 0 };
        r.expect(PROMPT);
        r
    }

    fn transcript(&self) -> String {
        clean(&self.pty.raw())
    }

    /// Waits until the output after the mark contains `text`; moves the mark
    /// past it and returns what came before it.
    fn expect(&mut self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen = self.transcript();
            if let Some(i) = seen.get(self.mark..).and_then(|rest| rest.find(text)) {
                let before = seen[self.mark..self.mark + i].to_string();
                self.mark += i + text.len();
                return before;
            }
            if Instant::now() > deadline {
                panic!("waited {WAIT:?} for {text:?}; the session so far:\n{seen}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, keys: &str) {
        self.pty.send(keys);
    }

    /// Types a line and returns what it printed, up to the next prompt.
    fn line(&mut self, text: &str) -> String {
        self.send(&format!("{text}\n"));
        self.expect("\n");
        self.expect(PROMPT)
    }

    /// Types one line of a block that is not finished yet.
    fn more(&mut self, text: &str) {
        self.send(&format!("{text}\n"));
        self.expect("\n");
        self.expect(MORE);
    }

    /// Ctrl-D; the REPL's exit code.
    fn leave(mut self) -> i32 {
        self.send("\x04");
        match self.pty.wait(WAIT) {
            Some(code) => code,
            None => panic!("the REPL did not leave on Ctrl-D:\n{}", self.transcript()),
        }
    }

    /// Presses Ctrl-C until the running statement reports "interrupted":
    /// a key pressed before the statement started would only clear the
    /// next prompt's line.
    fn interrupt(&mut self) -> String {
        let start = Instant::now();
        loop {
            self.send("\x03");
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until {
                if self.transcript().get(self.mark..).is_some_and(|s| s.contains("interrupted")) {
                    return self.expect(PROMPT);
                }
                thread::sleep(Duration::from_millis(20));
            }
            assert!(start.elapsed() < WAIT, "Ctrl-C did not interrupt the statement:\n{}", self.transcript());
        }
    }
}

#[test]
fn repl_keeps_variables_functions_and_multiline_blocks() {
    let env = Env::bare("repl_keeps_variables_functions_and_multiline_blocks");
    let mut r = Repl::start(&env);
    assert_eq!(r.line("let x = 40;").trim(), "");
    r.more("fn twice(a) {");
    r.more("  let y = a * 2;");
    r.more("  y");
    r.line("}");
    assert_eq!(r.line("twice(x) + 2").trim(), "82", "a function from earlier lines sees a variable from earlier lines");
    r.more("let v = [");
    r.more("  1,");
    r.line("  2];");
    assert_eq!(r.line("v.len() + x").trim(), "42", "a let spread over lines persists");
    r.more("let m = #{");
    r.line("  a: 1 };");
    assert_eq!(r.line("m").trim(), r#"#{"a": 1}"#, "maps print as Rhai writes them");
    r.more("if x > 3 {");
    assert_eq!(r.line("  print(`big-${x}`) }").trim(), "big-40");
    assert_eq!(r.line(r#""plain " + "text""#).trim(), "plain text", "strings print as themselves");
    // A parse error is reported at once and does not swallow the next line.
    assert!(r.line("let = 5;").contains("Expecting name of a variable"), "{}", r.transcript());
    assert_eq!(r.line("twice(1)").trim(), "2");
    assert_eq!(r.leave(), 0);
    let hist = std::fs::read_to_string(env.dir.join(".berth_history")).expect("the history file is written to $HOME");
    assert!(hist.contains("fn twice(a)") && hist.contains("twice(x) + 2"), "{hist}");
}

#[test]
fn repl_prints_tables_and_survives_engine_errors() {
    let env = Env::new("repl_prints_tables_and_survives_engine_errors");
    let (name, net, vol) = (env.name("c"), env.name("net"), env.name("vol"));
    let mut r = Repl::start(&env);
    r.line(&format!(r#"let c = run("busybox", #{{ name: "{name}", cmd: ["sleep", "60"] }});"#));
    let ps = r.line("containers()");
    assert!(ps.contains("CONTAINER ID") && ps.contains("STATUS") && ps.contains(&name), "containers() prints like `berth ps`: {ps}");
    let one = r.line("c");
    assert!(one.contains("CONTAINER ID") && one.contains(&name), "a Container prints as a table: {one}");
    let err = r.line(r#"container("nope")"#);
    assert!(err.contains("No such container: nope"), "the engine's reason: {err}");
    assert_eq!(r.line("1 + 1").trim(), "2", "the session goes on after an error");
    let nets = r.line(&format!(r#"network("{net}"); networks()"#));
    assert!(nets.contains("NETWORK ID") && nets.contains("SUBNET") && nets.contains(&net), "networks() prints like `berth network ls`: {nets}");
    let vols = r.line(&format!(r#"volume("{vol}"); volumes()"#));
    assert!(vols.contains("VOLUME NAME") && vols.contains(&vol), "volumes() prints like `berth volume ls`: {vols}");
    let res = r.line(r#"c.exec(["echo", "hi"])"#);
    assert!(res.contains(r#""stdout": "hi\n""#) && res.contains(r#""code": 0"#), "a result map: {res}");
    let removed = r.line(&format!(r#"c.remove(#{{ force: true }}); network("{net}").remove(); volume("{vol}").remove();"#));
    assert!(!removed.contains("repl:"), "cleanup failed: {removed}");
    assert_eq!(r.leave(), 0);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert!(!env.ok(&["volume", "ls", "-q"]).contains(&vol));
}

#[test]
fn repl_help_describes_types_and_functions() {
    let env = Env::bare("repl_help_describes_types_and_functions");
    let mut r = Repl::start(&env);
    let all = r.line("help()");
    assert!(all.contains("containers([opts])") && all.contains("run(image, [opts])"), "{all}");
    // Whatever the engine registers must be described in the catalogue.
    assert!(!all.contains("Not described yet"), "{all}");
    for t in ["Container", "Image", "Network", "Volume", "Service", "lab", "wait"] {
        let h = r.line(&format!("help({t:?})"));
        assert!(!h.contains("Not described yet"), "help({t:?}): {h}");
    }
    let c = r.line(r#"help("Container")"#);
    assert!(c.contains("c.exec(cmd)") && c.contains("c.wait_for_port(port"), "{c}");
    let run = r.line(r#"help("run")"#);
    assert!(run.contains("Options") && run.contains("volumes_from"), "help(\"run\") lists its options: {run}");
    let lab = r.line(r#"help("lab")"#);
    assert!(lab.contains("lab::chain(name, n"), "{lab}");
    let bad = r.line(r#"help("Nosuch")"#);
    assert!(bad.contains("known types and modules: Container, Image"), "{bad}");
    assert_eq!(r.leave(), 0);
}

#[test]
fn repl_tab_completes_functions_members_and_names() {
    let env = Env::new("repl_tab_completes_functions_members_and_names");
    let name = env.name("tabbed");
    let mut r = Repl::start(&env);
    // "cont" completes as far as container/containers agree; a second Tab
    // lists both.
    r.send("cont\t");
    r.expect("container");
    r.send("\t");
    let listing = r.expect("containers(");
    assert!(listing.contains("container("), "{}", r.transcript());
    r.expect(PROMPT);
    assert_eq!(r.line("s()").trim(), "[]", "the line became containers(): {}", r.transcript());

    r.line(&format!(r#"let c = run("busybox", #{{ name: "{name}", cmd: ["sleep", "60"] }});"#));
    r.send("c.\t\t");
    let members = format!("{}exec({}", r.expect("exec("), r.expect(PROMPT));
    for m in ["wait_for_port(", "remove(", "state"] {
        assert!(members.contains(m), "c.<Tab><Tab> lists {m}: {members}");
    }
    assert_eq!(r.line("state").trim(), "running", "the line became c.state");

    // A container's name inside a string literal.
    let prefix = &name[..name.len() - 3];
    r.send(&format!("container(\"{prefix}\t"));
    r.expect(&name);
    assert_eq!(r.line("\").name").trim(), name);
    r.line("c.remove(#{ force: true });");
    assert_eq!(r.leave(), 0);
}

#[test]
fn repl_ctrl_c_interrupts_a_running_statement() {
    let env = Env::bare("repl_ctrl_c_interrupts_a_running_statement");
    let mut r = Repl::start(&env);
    for stmt in ["loop { }", "for i in 0..1000000000 { let y = i; }", "sleep(600000)", "wait_for(|| false, 600000)"] {
        r.send(&format!("{stmt}\n"));
        r.expect("\n");
        let t0 = Instant::now();
        r.interrupt();
        assert!(t0.elapsed() < Duration::from_secs(10), "{stmt} took {:?} to stop", t0.elapsed());
        assert_eq!(r.line("1 + 1").trim(), "2", "the session answers after interrupting {stmt}");
    }
    // Ctrl-C at the prompt drops the line being typed, and an open block.
    r.send("let z = 1");
    r.expect("let z = 1");
    r.send("\x03");
    r.expect(PROMPT);
    assert!(r.line("z").contains("Variable not found: z"), "{}", r.transcript());
    r.more("fn g() {");
    r.send("\x03");
    r.expect(PROMPT);
    assert_eq!(r.line("3 + 4").trim(), "7");
    assert_eq!(r.leave(), 0);
}

#[test]
fn repl_second_ctrl_c_leaves_a_blocked_call() {
    // A native call that blocks (here a GET that gets no answer) cannot be
    // stopped between operations: the REPL says so, and a second Ctrl-C
    // leaves it.
    let env = Env::bare("repl_second_ctrl_c_leaves_a_blocked_call");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut r = Repl::start(&env);
    r.send(&format!("http_get(\"http://127.0.0.1:{port}/\", #{{ timeout: 60000 }})\n"));
    r.expect("\n");
    let (conn, _) = silent.accept().unwrap();
    r.send("\x03");
    r.expect("Ctrl-C again leaves the REPL");
    r.send("\x03");
    r.expect("leaving the REPL");
    let deadline = Instant::now() + WAIT;
    let code = loop {
        if let Some(st) = r.pty.child.try_wait().unwrap() {
            break st.code();
        }
        assert!(Instant::now() < deadline, "the REPL stayed after a second Ctrl-C:\n{}", r.transcript());
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(130));
    drop(conn);
}
