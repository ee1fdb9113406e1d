//! The API's containers endpoints: create, list, inspect, the lifecycle
//! (start, stop, restart, kill, pause, unpause, rename, remove, prune,
//! update), wait, logs, top, stats, archive (`docker cp`), changes and
//! export. `seg` is the path after `/containers`. Attach, resize and exec
//! are exec.rs's.

mod create;
mod list;
mod shape;

use std::cell::RefCell;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ApiError, Ctx, JSON, MUX_STREAM, RAW_STREAM, Reply, Req, Result, Sink, TAR};
use crate::container::Container;
use crate::engine::{Engine, EngineError, LogLine};

pub(super) fn route(ctx: &Ctx, req: &mut Req, seg: &[&str]) -> Option<Result<Reply>> {
    let m = req.method.clone();
    Some(match (&m, seg) {
        (&Method::POST, ["create"]) => create(ctx, req),
        (&Method::GET, ["json"]) => list::list(ctx, req),
        (&Method::POST, ["prune"]) => prune(ctx, req),
        (&Method::GET, [id, "json"]) => inspect(ctx, id),
        (&Method::DELETE, [id]) => remove(ctx, req, id),
        (&Method::POST, [id, "start"]) => start(ctx, id),
        (&Method::POST, [id, "stop"]) => stop(ctx, req, id),
        (&Method::POST, [id, "restart"]) => restart(ctx, req, id),
        (&Method::POST, [id, "kill"]) => kill(ctx, req, id),
        (&Method::POST, [id, "pause"]) => ctx.engine.pause(id).map(|_| Reply::no_content()).map_err(Into::into),
        (&Method::POST, [id, "unpause"]) => ctx.engine.unpause(id).map(|_| Reply::no_content()).map_err(Into::into),
        (&Method::POST, [id, "rename"]) => rename(ctx, req, id),
        (&Method::POST, [id, "update"]) => update(ctx, req, id),
        (&Method::POST, [id, "wait"]) => wait(ctx, req, id),
        (&Method::GET, [id, "logs"]) => logs(ctx, req, id),
        (&Method::GET, [id, "top"]) => top(ctx, req, id),
        (&Method::GET, [id, "stats"]) => stats(ctx, req, id),
        (&Method::GET | &Method::HEAD | &Method::PUT, [id, "archive"]) => archive(ctx, req, id),
        (&Method::GET, [id, "changes"]) => changes(ctx, id),
        (&Method::GET, [id, "export"]) => export(ctx, id),
        _ => return None,
    })
}

fn create(ctx: &Ctx, req: &mut Req) -> Result<Reply> {
    let name = req.q("name").filter(|n| !n.is_empty()).map(|n| n.trim_start_matches('/').to_string());
    let body: Value = req.json()?;
    let plan = create::plan(&body, name)?;
    let c = ctx.engine.create(&plan.spec).map_err(|e| no_such_image(e, &plan.spec.image))?;
    for (net, ip, aliases) in &plan.more_networks {
        if let Err(e) = ctx.engine.network_connect(net, &c.id, ip.as_deref(), aliases) {
            // All or nothing, as docker's create.
            if let Err(rm) = ctx.engine.remove(&c.id, true) {
                tracing::warn!("create: removing {} after a failed network connect: {rm}", c.name);
            }
            return Err(e.into());
        }
    }
    Ok(Reply::created(json!({ "Id": c.id, "Warnings": plan.warnings })))
}

/// docker's words for a missing image, which its CLI answers by pulling
/// and trying again: "No such image: busybox:latest".
fn no_such_image(e: EngineError, image: &str) -> ApiError {
    use crate::container::ContainerError as C;
    use crate::image::ImageError as I;
    match e {
        EngineError::Container(C::Image(I::NotFound(_))) | EngineError::Image(I::NotFound(_)) => {
            let full = crate::image::Reference::parse(image).ok().and_then(|r| r.tag_key()).unwrap_or_else(|| image.to_string());
            ApiError::not_found(format!("No such image: {full}"))
        }
        e => e.into(),
    }
}

fn inspect(ctx: &Ctx, id: &str) -> Result<Reply> {
    let c = ctx.engine.container(id)?;
    Ok(Reply::ok(shape::inspect(&ctx.engine, &c)))
}

fn start(ctx: &Ctx, id: &str) -> Result<Reply> {
    match ctx.engine.container(id)?.state.as_str() {
        "paused" => return Err(ApiError::conflict("cannot start a paused container, try unpause instead")),
        "running" | "restarting" => return Ok(Reply::Empty(StatusCode::NOT_MODIFIED)),
        _ => {}
    }
    ctx.engine.start(id)?;
    Ok(Reply::no_content())
}

/// `t`: seconds to wait before the kill (docker-py's `timeout` too).
fn seconds(req: &Req) -> Result<Option<u64>> {
    Ok(req.num::<i64>("t")?.map(|t| u64::try_from(t).unwrap_or(0)))
}

fn stop(ctx: &Ctx, req: &Req, id: &str) -> Result<Reply> {
    let c = ctx.engine.container(id)?;
    if !c.running() && c.state != "restarting" {
        return Ok(Reply::Empty(StatusCode::NOT_MODIFIED));
    }
    ctx.engine.stop(&c.id, seconds(req)?)?;
    Ok(Reply::no_content())
}

fn restart(ctx: &Ctx, req: &Req, id: &str) -> Result<Reply> {
    ctx.engine.restart(id, seconds(req)?)?;
    Ok(Reply::no_content())
}

fn kill(ctx: &Ctx, req: &Req, id: &str) -> Result<Reply> {
    let signal = req.q("signal").filter(|s| !s.is_empty()).unwrap_or("SIGKILL");
    if crate::sys::proc::signal_number(signal).is_none() {
        return Err(ApiError::bad(format!("Invalid signal: {signal}")));
    }
    let c = ctx.engine.container(id)?;
    if !c.running() {
        return Err(ApiError::conflict(format!("Cannot kill container: {id}: container {} is not running", c.id)));
    }
    ctx.engine.kill(&c.id, signal)?;
    Ok(Reply::no_content())
}

fn rename(ctx: &Ctx, req: &Req, id: &str) -> Result<Reply> {
    let new = req.q("name").filter(|n| !n.is_empty()).ok_or_else(|| ApiError::bad("rename: the new name is missing (?name=NEW)"))?;
    ctx.engine.rename(id, new.trim_start_matches('/'))?;
    Ok(Reply::no_content())
}

fn remove(ctx: &Ctx, req: &Req, id: &str) -> Result<Reply> {
    let force = req.flag("force");
    let c = ctx.engine.container(id)?;
    if !force && (c.running() || c.state == "restarting") {
        return Err(ApiError::conflict(format!(
            "cannot remove container \"/{}\": container is {}: stop the container before removing or force remove",
            c.name,
            if c.state == "paused" { "paused" } else { "running" }
        )));
    }
    ctx.engine.remove_with(&c.id, force, req.flag("v"))?;
    Ok(Reply::no_content())
}

fn prune(ctx: &Ctx, req: &Req) -> Result<Reply> {
    let mut pairs = Vec::new();
    for (k, vals) in req.filters()? {
        if !matches!(k.as_str(), "label" | "label!" | "until") {
            return Err(ApiError::bad(format!("invalid filter '{k}'")));
        }
        pairs.extend(vals.into_iter().map(|v| (k.clone(), v)));
    }
    let (ids, bytes) = ctx.engine.container_prune(&pairs)?;
    Ok(Reply::ok(json!({ "ContainersDeleted": if ids.is_empty() { Value::Null } else { json!(ids) }, "SpaceReclaimed": bytes })))
}

/// `docker update`: limits and restart policy.
fn update(ctx: &Ctx, req: &mut Req, id: &str) -> Result<Reply> {
    let b: Value = req.json()?;
    let int = |k: &str| b.get(k).and_then(Value::as_i64).filter(|n| *n != 0);
    let restart = match b.get("RestartPolicy").and_then(|r| r.get("Name")).and_then(Value::as_str).filter(|n| !n.is_empty()) {
        Some(name) => {
            let n = b["RestartPolicy"].get("MaximumRetryCount").and_then(Value::as_i64).unwrap_or(0);
            let spec = if name == "on-failure" && n > 0 { format!("on-failure:{n}") } else { name.to_string() };
            Some(crate::container::RestartPolicy::parse(&spec).map_err(|e| ApiError::bad(e.to_string()))?)
        }
        None => None,
    };
    let u = crate::container::Update { memory: int("Memory"), cpus: int("NanoCpus").map(|n| n as f64 / 1e9), pids_limit: int("PidsLimit"), restart };
    ctx.engine.update(id, &u)?;
    Ok(Reply::ok(json!({ "Warnings": [] })))
}

/// Streams: the headers go at once (the docker CLI waits for them before
/// it starts the container), the body when the condition is met.
fn wait(ctx: &Ctx, req: &Req, id: &str) -> Result<Reply> {
    let c = ctx.engine.container(id)?;
    let cond = match req.q("condition").unwrap_or("") {
        "" | "not-running" => Cond::NotRunning,
        "next-exit" => Cond::NextExit,
        "removed" => Cond::Removed,
        other => return Err(ApiError::bad(format!("invalid condition: \"{other}\" (use not-running, next-exit or removed)"))),
    };
    let engine = ctx.engine.clone();
    let changes = ctx.changes.clone();
    Ok(Reply::stream(JSON, move |sink| {
        if let Some(code) = wait_for(&engine, &changes, &c, cond, || sink.closed()) {
            let _ = sink.json(&json!({ "StatusCode": code, "Error": null }));
        }
    }))
}

#[derive(Clone, Copy, PartialEq)]
enum Cond {
    NotRunning,
    NextExit,
    Removed,
}

/// Watches the container until `cond` holds: its exit code, or None when
/// the client left first. A running one is watched through its monitor,
/// which says when it exits; one not yet started, through this server's
/// changes (the CLI starts it right after asking), and every 100 ms for
/// a start from elsewhere. A start and exit between two looks still
/// counts: the finish time changed.
fn wait_for(engine: &Engine, changes: &super::Changes, c0: &Container, cond: Cond, gone: impl Fn() -> bool) -> Option<i32> {
    let up = |c: &Container| c.running() || c.state == "restarting";
    let mut seen_up = up(c0);
    let mut code = c0.exit_code;
    // Whether `code` is the exit the monitor reported to this loop.
    let mut told = false;
    loop {
        let seen = changes.now();
        let c = match engine.container(&c0.id) {
            Ok(c) => c,
            // Removed (--rm, or by someone): every condition is met. An
            // exit this loop did not see (it ran and was removed between
            // two looks) is in the record of its death.
            Err(_) => return Some(if told { code } else { recorded_exit(engine, &c0.id).unwrap_or(code) }),
        };
        if !told {
            code = c.exit_code;
        }
        let ended = !up(&c) && (seen_up || (c.finished_at != c0.finished_at && !c.finished_at.is_empty()));
        match cond {
            Cond::NotRunning if !up(&c) => return Some(code),
            Cond::NextExit if ended => return Some(code),
            _ => {}
        }
        seen_up |= up(&c);
        if gone() {
            return None;
        }
        if up(&c) {
            if let Some(Some(x)) = engine.watch_exit(&c, Duration::from_millis(250)) {
                (code, told) = (x, true);
            }
        } else {
            changes.wait_past(seen, Duration::from_millis(100));
        }
    }
}

/// The exit code in the last recorded `die` of container `id`.
fn recorded_exit(engine: &Engine, id: &str) -> Option<i32> {
    let mut f = crate::events::Filter::default();
    f.by.insert("container".into(), vec![id.to_string()]);
    f.by.insert("event".into(), vec!["die".into()]);
    engine.events(None, None, &f).last()?.actor.attributes.get("exitCode")?.parse().ok()
}

/// What a logs request selects.
struct LogSel {
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    tty: bool,
    since: Option<f64>,
    until: Option<f64>,
}

impl LogSel {
    /// Writes one line: raw for a terminal container, else in docker's
    /// multiplexed frames.
    fn emit(&self, sink: &mut Sink, l: &LogLine) -> std::io::Result<()> {
        let err = l.stream == "stderr";
        if (err && !self.stderr) || (!err && !self.stdout) {
            return Ok(());
        }
        if self.since.is_some() || self.until.is_some() {
            let t = crate::store::parse_rfc3339(&l.time).unwrap_or(0.0);
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
                return Ok(());
            }
        }
        let text = if self.timestamps { format!("{} {}", l.time, l.text) } else { l.text.clone() };
        if self.tty { sink.write_all(text.as_bytes()) } else { sink.frame(if err { 2 } else { 1 }, text.as_bytes()) }
    }
}

/// docker's times in query strings: unix seconds with an optional
/// fraction; 0 means none.
fn unix_time(req: &Req, key: &str) -> Result<Option<f64>> {
    match req.q(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<f64>() {
            Ok(t) if t > 0.0 => Ok(Some(t)),
            Ok(_) => Ok(None),
            Err(_) => Err(ApiError::bad(format!("invalid value for {key}: {v:?} (unix seconds expected)"))),
        },
    }
}

fn logs(ctx: &Ctx, req: &Req, id: &str) -> Result<Reply> {
    let c = ctx.engine.container(id)?;
    let sel = LogSel {
        stdout: req.flag("stdout"),
        stderr: req.flag("stderr"),
        timestamps: req.flag("timestamps"),
        tty: c.spec.tty,
        since: unix_time(req, "since")?,
        until: unix_time(req, "until")?,
    };
    if !sel.stdout && !sel.stderr {
        return Err(ApiError::bad("Bad parameters: you must choose at least one stream"));
    }
    let tail: Option<usize> = match req.q("tail") {
        None | Some("" | "all") => None,
        Some(n) => Some(n.parse::<i64>().map_err(|_| ApiError::bad(format!("invalid value for tail: {n:?}")))?).and_then(|n| usize::try_from(n).ok()),
    };
    let follow = req.flag("follow");
    let engine = ctx.engine.clone();
    let ct = if c.spec.tty { RAW_STREAM } else { MUX_STREAM };
    Ok(Reply::stream(ct, move |sink| {
        let lines = engine.logs(&c.id).unwrap_or_default();
        let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
        if !follow {
            for l in &lines[skip..] {
                if sel.emit(sink, l).is_err() {
                    return;
                }
            }
            return;
        }
        // follow_logs replays from the start: the first `skip` are left out.
        let sink = RefCell::new(sink);
        let mut n = 0;
        let r = engine.follow_logs_until(&c.id, &|| sink.borrow().closed(), &mut |l| {
            n += 1;
            if n > skip {
                let _ = sel.emit(&mut sink.borrow_mut(), l);
            }
        });
        if let Err(e) = r {
            tracing::debug!("logs: following {}: {e}", c.name);
        }
    }))
}

/// Without `ps_args`, berth's own reading of /proc in `ps -ef`'s columns;
/// with them, the host's ps, as dockerd.
fn top(ctx: &Ctx, req: &Req, id: &str) -> Result<Reply> {
    if let Some(args) = req.q("ps_args").filter(|a| !a.trim().is_empty() && a.trim() != "-ef") {
        let (titles, rows) = ctx.engine.top_ps(id, args)?;
        return Ok(Reply::ok(json!({ "Titles": titles, "Processes": rows })));
    }
    let procs = ctx.engine.top(id)?;
    Ok(Reply::ok(json!({ "Titles": crate::render::TOP_TITLES, "Processes": crate::render::top_rows(&procs) })))
}

/// docker's sampling period.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// `stream` (the default) sends a document a second while the container
/// runs, the first at once; otherwise one, measured over a second so CPU %
/// means something, or at once with `one-shot`.
fn stats(ctx: &Ctx, req: &Req, id: &str) -> Result<Reply> {
    let c = ctx.engine.container(id)?;
    let stream = !matches!(req.q("stream"), Some("0" | "false" | "False"));
    let one_shot = req.flag("one-shot");
    let engine = ctx.engine.clone();
    Ok(Reply::stream(JSON, move |sink| {
        let sample = || engine.stats_sample(&c.id).ok();
        let mut pre = None;
        if !stream && !one_shot && c.running() {
            pre = sample();
            std::thread::sleep(STATS_EVERY);
        }
        while let Some(now) = sample() {
            if sink.json(&shape::stats(&c, &now, pre.as_ref())).is_err() || !stream {
                return;
            }
            if !engine.container(&c.id).is_ok_and(|c| c.running()) {
                return;
            }
            pre = Some(now);
            std::thread::sleep(STATS_EVERY);
        }
    }))
}

/// `docker cp`: HEAD stats a path, GET takes it out as a tar, PUT puts a
/// tar in. The stat travels base64'd in `X-Docker-Container-Path-Stat`.
fn archive(ctx: &Ctx, req: &mut Req, id: &str) -> Result<Reply> {
    let path = req.q("path").filter(|p| !p.is_empty()).ok_or_else(|| ApiError::bad("the path parameter is required"))?.to_string();
    let c = ctx.engine.container(id)?;
    let missing = |e: EngineError| match e {
        EngineError::Io { source, .. } if matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            ApiError::not_found(format!("Could not find the file {path} in container {id}"))
        }
        e => e.into(),
    };
    if req.method == Method::PUT {
        let keep_kinds = req.flag("noOverwriteDirNonDir");
        ctx.engine.archive_in(&c.id, &path, &mut req.body, keep_kinds).map_err(missing)?;
        return Ok(Reply::Empty(StatusCode::OK));
    }
    let st = ctx.engine.path_stat(&c.id, &path).map_err(missing)?;
    let headers = vec![("X-Docker-Container-Path-Stat", shape::path_stat_header(&st))];
    if req.method == Method::HEAD {
        return Ok(Reply::WithHeaders { headers, reply: Box::new(Reply::Empty(StatusCode::OK)) });
    }
    let engine = ctx.engine.clone();
    let reply = Reply::stream(TAR, move |sink| {
        if let Err(e) = engine.archive_out(&c.id, &path, sink) {
            // The status is gone already: the client sees a short tar.
            tracing::warn!("archive: {e}");
        }
    });
    Ok(Reply::WithHeaders { headers, reply: Box::new(reply) })
}

fn changes(ctx: &Ctx, id: &str) -> Result<Reply> {
    let list: Vec<Value> = ctx
        .engine
        .diff(id)?
        .into_iter()
        .map(|c| json!({ "Path": c.path, "Kind": match c.kind { 'C' => 0, 'A' => 1, _ => 2 } }))
        .collect();
    Ok(Reply::ok(if list.is_empty() { Value::Null } else { Value::Array(list) }))
}

fn export(ctx: &Ctx, id: &str) -> Result<Reply> {
    let c = ctx.engine.container(id)?;
    let engine: Arc<Engine> = ctx.engine.clone();
    Ok(Reply::stream(TAR, move |sink| {
        if let Err(e) = engine.export(&c.id, sink) {
            tracing::warn!("export: {e}");
        }
    }))
}
