//! The API's interactive sessions: `POST /containers/{id}/attach`,
//! `/containers/{id}/resize`, `/containers/{id}/exec`, and
//! `/exec/{id}/start|resize|json`. `seg` is the whole path, split.
//!
//! Attach translates the monitor's attach protocol (`Engine::attach_stream`)
//! into docker's streams: raw bytes with a tty, else 8-byte-header frames.
//! Exec instances are the API's own state, as in dockerd: created, then
//! started once, each run by a child `berth exec` (`Engine::exec_session`)
//! because entering a container needs a single-threaded process.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Conn, Ctx, MUX_STREAM, RAW_STREAM, Reply, Req, Result, Sink};
use crate::engine::{AttachEvent, AttachInput, AttachStream, ExecTerminal, PendingAttach, Waited};
use crate::runtime::exec::ExecOptions;

pub(super) fn route(ctx: &Ctx, req: &mut Req, seg: &[&str]) -> Option<Result<Reply>> {
    let m = req.method.clone();
    Some(match (&m, seg) {
        (&Method::POST, ["containers", id, "attach"]) => attach(ctx, req, id),
        (&Method::POST, ["containers", id, "resize"]) => resize(ctx, req, id),
        (&Method::POST, ["containers", id, "exec"]) => exec_create(ctx, req, id),
        (&Method::POST, ["exec", id, "start"]) => exec_start(ctx, req, id),
        (&Method::POST, ["exec", id, "resize"]) => exec_resize(req, id),
        (&Method::GET, ["exec", id, "json"]) => exec_inspect(id),
        _ => return None,
    })
}

/// `?h=&w=`: a terminal size, both given and non-zero.
fn size(req: &Req) -> Result<(u16, u16)> {
    match (req.num::<u16>("h")?, req.num::<u16>("w")?) {
        (Some(h), Some(w)) if h > 0 && w > 0 => Ok((h, w)),
        _ => Err(ApiError::bad("a terminal size needs h and w, both above 0")),
    }
}

fn resize(ctx: &Ctx, req: &mut Req, key: &str) -> Result<Reply> {
    let (h, w) = size(req)?;
    let c = ctx.engine.container(key)?;
    if !c.running() {
        return Err(ApiError::conflict(format!("Container {} is not running", c.name)));
    }
    ctx.engine.resize(&c.id, h, w)?;
    Ok(Reply::Empty(StatusCode::OK))
}

// ---- attach ----

enum Source {
    Now(AttachStream),
    NextStart(PendingAttach),
}

fn attach(ctx: &Ctx, req: &mut Req, key: &str) -> Result<Reply> {
    let c = ctx.engine.container(key)?;
    let tty = c.spec.tty;
    let stdin = req.flag("stdin") && c.spec.interactive;
    let (stdout, stderr) = (req.flag("stdout"), req.flag("stderr"));
    let detach = detach_keys(req.q("detachKeys"))?;
    let logs = if req.flag("logs") { ctx.engine.logs(&c.id)? } else { vec![] };
    let source = if !req.flag("stream") {
        None
    } else if c.running() || c.state == "restarting" {
        Some(Source::Now(ctx.engine.attach_stream(&c.id, stdin)?))
    } else {
        // docker run: attach, then start. Registered now, before the
        // client hears back and starts it.
        Some(Source::NextStart(ctx.engine.attach_next_start(&c.id)?))
    };
    let session = move |conn: Conn| {
        let Conn { reader, mut writer } = conn;
        for l in logs {
            let n = if l.stream == "stderr" { 2 } else { 1 };
            if (n == 1 && stdout || n == 2 && stderr) && emit(&mut writer, tty, n, l.text.as_bytes()).is_err() {
                return;
            }
        }
        let Some(source) = source else { return };
        // As docker's StdinOnce, which its run -i sets: the client that
        // starts the container ends its stdin.
        let once = matches!(source, Source::NextStart(_));
        // Stdin waits, buffered by the connection, until the stream exists.
        let (in_tx, in_rx) = mpsc::channel::<AttachInput>();
        if stdin {
            std::thread::spawn(move || {
                if let Ok(input) = in_rx.recv() {
                    pump_attach_stdin(reader, input, tty.then_some(detach), once);
                }
            });
        }
        let mut s = match source {
            Source::Now(s) => s,
            Source::NextStart(p) => loop {
                match p.wait(Duration::from_millis(500)) {
                    Waited::Started(s) => break s,
                    Waited::Never => return,
                    Waited::Pending if writer.closed() => return,
                    Waited::Pending => {}
                }
            },
        };
        if stdin && let Ok(i) = s.input() {
            let _ = in_tx.send(i);
        }
        while let Some(ev) = s.next_event() {
            let r = match ev {
                AttachEvent::Stdout(d) if stdout => emit(&mut writer, tty, 1, &d),
                AttachEvent::Stderr(d) if stderr => emit(&mut writer, tty, 2, &d),
                AttachEvent::Exit(_) => break,
                AttachEvent::Failed { msg, .. } => {
                    let _ = emit(&mut writer, tty, 2, format!("{msg}\n").as_bytes());
                    break;
                }
                _ => Ok(()),
            };
            if r.is_err() {
                break;
            }
        }
    };
    Ok(Reply::Hijack { content_type: if tty { RAW_STREAM } else { MUX_STREAM }, session: Box::new(session) })
}

/// Output as docker's clients expect it: raw with a tty, else framed.
fn emit(w: &mut Sink, tty: bool, stream: u8, data: &[u8]) -> std::io::Result<()> {
    if tty { w.write_all(data) } else { w.frame(stream, data) }
}

/// The client's stdin to the container. With a tty, the detach keys end
/// the session (the container goes on). The end of the client's input is
/// the end of the container's with `once`, else the end of the session.
fn pump_attach_stdin(mut reader: super::Body, mut input: AttachInput, detach: Option<Vec<u8>>, once: bool) {
    let mut buf = vec![0u8; 32 << 10];
    let mut matched = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) | Err(_) => {
                if once {
                    let _ = input.close_stdin();
                } else {
                    input.detach();
                }
                return;
            }
            Ok(n) => n,
        };
        let data = match &detach {
            Some(keys) => match escape(keys, &mut matched, &buf[..n]) {
                Escape::Pass(d) => d,
                Escape::Detach(d) => {
                    let _ = input.stdin(&d);
                    input.detach();
                    return;
                }
            },
            None => buf[..n].to_vec(),
        };
        if !data.is_empty() && input.stdin(&data).is_err() {
            return;
        }
    }
}

enum Escape {
    Pass(Vec<u8>),
    Detach(Vec<u8>),
}

/// Watches input for the detach sequence. Bytes that may begin it are
/// held back (`matched` of them) until it is complete or broken, as
/// docker does; what may be passed on is returned.
fn escape(keys: &[u8], matched: &mut usize, input: &[u8]) -> Escape {
    let mut out = Vec::with_capacity(input.len());
    for &b in input {
        if keys.is_empty() {
            out.push(b);
            continue;
        }
        if b == keys[*matched] {
            *matched += 1;
            if *matched == keys.len() {
                *matched = 0;
                return Escape::Detach(out);
            }
            continue;
        }
        out.extend_from_slice(&keys[..*matched]);
        *matched = 0;
        if b == keys[0] {
            *matched = 1;
            if keys.len() == 1 {
                *matched = 0;
                return Escape::Detach(out);
            }
        } else {
            out.push(b);
        }
    }
    Escape::Pass(out)
}

/// docker's detach keys: `ctrl-p,ctrl-q` by default; `a`-`z`, `ctrl-X`
/// for `X` in `a`-`z` and `@[\]^_`, separated by commas.
fn detach_keys(spec: Option<&str>) -> Result<Vec<u8>> {
    let spec = spec.filter(|s| !s.is_empty()).unwrap_or("ctrl-p,ctrl-q");
    let bad = || ApiError::bad(format!("invalid detach keys {spec:?}: expected a comma-separated list like ctrl-p,ctrl-q (a-z, or ctrl- with a-z, @, [, \\, ], ^, _)"));
    spec.split(',')
        .map(|k| {
            let k = k.trim();
            match k.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => {
                    let c = c.as_bytes()[0].to_ascii_lowercase();
                    match c {
                        b'a'..=b'z' => Ok(c - b'a' + 1),
                        b'@' => Ok(0),
                        b'[' | b'\\' | b']' | b'^' | b'_' => Ok(c - b'@'),
                        _ => Err(bad()),
                    }
                }
                None if k.len() == 1 && k.as_bytes()[0].is_ascii_alphabetic() => Ok(k.as_bytes()[0]),
                _ => Err(bad()),
            }
        })
        .collect()
}

// ---- exec ----

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ExecConfig {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    detach_keys: Option<String>,
    tty: bool,
    console_size: Option<[u16; 2]>,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    privileged: bool,
    user: Option<String>,
    working_dir: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ExecStart {
    detach: bool,
    console_size: Option<[u16; 2]>,
}

/// An exec instance: its config, then its run.
struct Exec {
    container: String,
    cfg: ExecConfig,
    started: bool,
    running: bool,
    exit_code: Option<i32>,
    pid: u32,
    terminal: Option<ExecTerminal>,
    ended: Option<Instant>,
}

type Execs = HashMap<String, Arc<Mutex<Exec>>>;

/// Exec instances of this server, by id. dockerd keeps them in memory too:
/// they are gone with the server.
fn execs() -> std::sync::MutexGuard<'static, Execs> {
    static E: OnceLock<Mutex<Execs>> = OnceLock::new();
    E.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

fn lock(e: &Mutex<Exec>) -> std::sync::MutexGuard<'_, Exec> {
    e.lock().unwrap_or_else(|p| p.into_inner())
}

/// Ended instances are kept this long for their exit code.
const KEEP_ENDED: Duration = Duration::from_secs(600);

fn find_exec(id: &str) -> Result<Arc<Mutex<Exec>>> {
    execs().get(id).cloned().ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
}

fn exec_create(ctx: &Ctx, req: &mut Req, key: &str) -> Result<Reply> {
    let cfg: Option<ExecConfig> = req.json()?;
    let cfg = cfg.unwrap_or_default();
    if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::bad("No exec command specified"));
    }
    let c = ctx.engine.container(key)?;
    match c.state.as_str() {
        "running" => {}
        "paused" => return Err(ApiError::conflict(format!("Container {} is paused, unpause the container before exec", c.id))),
        "restarting" => return Err(ApiError::conflict(format!("Container {} is restarting, wait until the container is running", c.id))),
        _ => return Err(ApiError::conflict(format!("Container {} is not running", c.id))),
    }
    let id = crate::store::new_id();
    let mut all = execs();
    all.retain(|_, e| lock(e).ended.is_none_or(|t| t.elapsed() < KEEP_ENDED));
    let e = Exec { container: c.id, cfg, started: false, running: false, exit_code: None, pid: 0, terminal: None, ended: None };
    all.insert(id.clone(), Arc::new(Mutex::new(e)));
    Ok(Reply::created(json!({ "Id": id })))
}

fn exec_inspect(id: &str) -> Result<Reply> {
    let e = find_exec(id)?;
    let e = lock(&e);
    let cmd = e.cfg.cmd.clone().unwrap_or_default();
    Ok(Reply::ok(json!({
        "ID": id,
        "Running": e.running,
        "ExitCode": e.exit_code,
        "ProcessConfig": {
            "tty": e.cfg.tty,
            "entrypoint": cmd.first(),
            "arguments": cmd.get(1..).unwrap_or_default(),
            "privileged": e.cfg.privileged,
            "user": e.cfg.user.clone().unwrap_or_default(),
        },
        "OpenStdin": e.cfg.attach_stdin,
        "OpenStderr": e.cfg.attach_stderr,
        "OpenStdout": e.cfg.attach_stdout,
        "CanRemove": false,
        "ContainerID": e.container,
        "DetachKeys": e.cfg.detach_keys.clone().unwrap_or_default(),
        "Pid": e.pid,
    })))
}

fn exec_resize(req: &mut Req, id: &str) -> Result<Reply> {
    let (h, w) = size(req)?;
    let e = find_exec(id)?;
    let t = lock(&e).terminal.clone();
    match t {
        Some(t) => t.resize(h, w),
        None if lock(&e).cfg.tty => return Err(ApiError::conflict(format!("exec {id} is not running"))),
        // No terminal to size: docker accepts it too.
        None => {}
    }
    Ok(Reply::Empty(StatusCode::OK))
}

fn exec_start(ctx: &Ctx, req: &mut Req, id: &str) -> Result<Reply> {
    let start: Option<ExecStart> = req.json()?;
    let start = start.unwrap_or_default();
    let e = find_exec(id)?;
    let (container, opts, size, stdin, stdout, stderr, tty) = {
        let mut x = lock(&e);
        if x.started {
            return Err(ApiError::conflict(format!("Exec command {id} has already run")));
        }
        x.started = true;
        let c = &x.cfg;
        let opts = ExecOptions {
            args: c.cmd.clone().unwrap_or_default(),
            // A bare NAME would take the server's own variable.
            env: c.env.iter().flatten().filter(|kv| kv.contains('=')).cloned().collect(),
            workdir: c.working_dir.clone().filter(|w| !w.is_empty()),
            user: c.user.clone().filter(|u| !u.is_empty()),
            tty: c.tty && !start.detach,
            interactive: c.attach_stdin && !start.detach,
            privileged: c.privileged,
        };
        let size = start.console_size.or(c.console_size).filter(|s| s[0] > 0 && s[1] > 0).map(|s| (s[0], s[1]));
        (x.container.clone(), opts, size, c.attach_stdin, c.attach_stdout, c.attach_stderr, c.tty)
    };
    let mut s = match ctx.engine.exec_session(&container, &opts, size, start.detach) {
        Ok(s) => s,
        Err(err) => {
            let mut x = lock(&e);
            x.started = false;
            return Err(match ApiError::from(err) {
                a if a.status == StatusCode::CONFLICT => ApiError::conflict(format!("Container {container} is not running")),
                a => a,
            });
        }
    };
    {
        let mut x = lock(&e);
        x.running = true;
        x.pid = s.pid();
        x.terminal = s.terminal();
    }
    if start.detach {
        std::thread::spawn(move || {
            let code = s.wait();
            ended(&e, code);
        });
        return Ok(Reply::Empty(StatusCode::OK));
    }
    let session = move |conn: Conn| {
        let Conn { reader, writer } = conn;
        if stdin && let Some(w) = s.stdin.take() {
            let hang_up = s.terminal();
            std::thread::spawn(move || {
                pump_exec_stdin(reader, w);
                // The client's terminal went away: so does the process's.
                if let Some(t) = hang_up {
                    t.hang_up();
                }
            });
        }
        let writer = Arc::new(Mutex::new(writer));
        let mut pumps = Vec::new();
        for (n, r, wanted) in [(1u8, s.stdout.take(), stdout), (2, s.stderr.take(), stderr)] {
            let Some(r) = r else { continue };
            let w = writer.clone();
            pumps.push(std::thread::spawn(move || pump_exec_output(r, &w, tty, n, wanted)));
        }
        for p in pumps {
            let _ = p.join();
        }
        // Before the connection closes: the client asks for the code next.
        let code = s.wait();
        ended(&e, code);
    };
    Ok(Reply::Hijack { content_type: if tty { RAW_STREAM } else { MUX_STREAM }, session: Box::new(session) })
}

fn ended(e: &Mutex<Exec>, code: i32) {
    let mut x = lock(e);
    x.running = false;
    x.exit_code = Some(code);
    x.terminal = None;
    x.ended = Some(Instant::now());
}

/// One output stream of an exec to the client, until its end. Unwanted
/// output is still read, or the process would block on a full pipe.
fn pump_exec_output(mut r: Box<dyn Read + Send>, w: &Mutex<Sink>, tty: bool, stream: u8, wanted: bool) {
    let mut buf = vec![0u8; 32 << 10];
    let mut client = wanted;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if client {
            let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
            if emit(&mut w, tty, stream, &buf[..n]).is_err() {
                client = false;
            }
        }
    }
}

/// The client's stdin to the exec'd process, until its end.
fn pump_exec_stdin(mut reader: super::Body, mut w: Box<dyn Write + Send>) {
    let mut buf = vec![0u8; 32 << 10];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if w.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(keys: &[u8], chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut m = 0;
        let mut out = Vec::new();
        for c in chunks {
            match escape(keys, &mut m, c) {
                Escape::Pass(d) => out.extend(d),
                Escape::Detach(d) => {
                    out.extend(d);
                    return (out, true);
                }
            }
        }
        (out, false)
    }

    #[test]
    fn detach_sequence_is_held_then_passed_or_acted_on() {
        let keys = detach_keys(None).unwrap();
        assert_eq!(keys, vec![0x10, 0x11]);
        assert_eq!(run(&keys, &[b"ab\x10", b"\x11cd"]), (b"ab".to_vec(), true));
        assert_eq!(run(&keys, &[b"ab\x10", b"x"]), (b"ab\x10x".to_vec(), false));
        assert_eq!(run(&keys, &[b"\x10\x10\x11"]), (b"\x10".to_vec(), true));
        assert_eq!(detach_keys(Some("ctrl-a,x")).unwrap(), vec![1, b'x']);
        assert_eq!(detach_keys(Some("ctrl-[")).unwrap(), vec![0x1b]);
        assert!(detach_keys(Some("ctrl-1")).is_err());
        assert!(detach_keys(Some("shift-a")).is_err());
    }
}
