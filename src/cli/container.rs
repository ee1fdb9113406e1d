//! The container commands: run, create, start, stop, restart, kill, pause,
//! unpause, wait, rm, rename, ps, inspect, logs, exec, top, cp, port and
//! stats, at the top level and under `berth container`.

use std::io::Write;

use anyhow::bail;

use super::args::{CheckpointCmd, ContainerCmd, ExecArgs, InspectArgs, KillArgs, LogsArgs, Names, PsArgs, RmArgs, RunArgs, StartArgs, StopArgs};
use super::{each, format, more, table};
use crate::engine::{Attach, Engine};
use crate::runtime::exec::ExecOptions;

/// `berth container X`: the same handlers as the top-level `berth X`.
pub(super) fn command(e: Engine, c: ContainerCmd) -> anyhow::Result<i32> {
    match c {
        ContainerCmd::Ls(a) => ps(&e, &a),
        ContainerCmd::Run(a) => run(e, &a),
        ContainerCmd::Create(a) => create(&e, &a),
        ContainerCmd::Start(a) => start(&e, &a),
        ContainerCmd::Stop(a) => stop(&e, &a),
        ContainerCmd::Restart(a) => restart(&e, &a),
        ContainerCmd::Kill(a) => kill(&e, &a),
        ContainerCmd::Pause(a) => pause(&e, &a),
        ContainerCmd::Unpause(a) => unpause(&e, &a),
        ContainerCmd::Wait(a) => wait(&e, &a),
        ContainerCmd::Rm(a) => rm(&e, &a),
        ContainerCmd::Rename { old, new } => rename(&e, &old, &new),
        ContainerCmd::Inspect(a) => inspect(&e, &a, false),
        ContainerCmd::Logs(a) => logs(&e, &a),
        ContainerCmd::Exec(a) => exec(&e, a),
        ContainerCmd::Top { container, ps_args } => top(&e, &container, &ps_args),
        ContainerCmd::Cp { src, dst } => cp(&e, &src, &dst),
        ContainerCmd::Prune(a) => more::container_prune(&e, a, super::confirm),
        ContainerCmd::Diff { container } => more::diff(&e, &container),
        ContainerCmd::Export(a) => more::export(&e, &a),
        ContainerCmd::Commit(a) => more::commit(&e, a),
        ContainerCmd::Update(a) => more::update(&e, a),
        ContainerCmd::Attach(a) => more::attach(&e, &a),
        ContainerCmd::Port { container } => port(&e, &container),
        ContainerCmd::Checkpoint(a) => {
            let o = crate::engine::CheckpointOpts { name: a.name.clone(), leave_running: a.leave_running, tcp_established: a.tcp_established, export: a.export.clone() };
            let name = e.checkpoint_create(&a.container, &o)?;
            println!("{name}");
            Ok(0)
        }
        ContainerCmd::Restore(a) => {
            let c = match (&a.import, &a.container) {
                (Some(f), None) => e.restore_import(f, a.name.as_deref())?,
                (None, Some(c)) => {
                    let name = match &a.checkpoint {
                        Some(n) => n.clone(),
                        None => e.checkpoint_ls(c)?.pop().map(|m| m.name).ok_or_else(|| anyhow::anyhow!("container {c} has no checkpoint (berth container checkpoint {c})"))?,
                    };
                    e.start_checkpoint(c, &name)?
                }
                _ => anyhow::bail!("container restore: give either --import FILE or a container, not both"),
            };
            println!("{}", c.name);
            Ok(0)
        }
        ContainerCmd::Migrate { container, node } => {
            let to = e.migrate(&container, &node)?;
            println!("{container} now runs on {to}");
            Ok(0)
        }
    }
}

/// Takes the engine whole: a `.rhai` file in the image's place is a script
/// to run, and the script keeps the engine.
pub(super) fn run(e: Engine, a: &RunArgs) -> anyhow::Result<i32> {
    if a.image_and_cmd[0].ends_with(".rhai") {
        return crate::script::run_file(e, &a.image_and_cmd[0], &a.image_and_cmd[1..]);
    }
    e.short_lived();
    let spec = a.to_spec()?;
    let attach = if a.detach { Attach::Detached } else { Attach::Stdio { stdin: a.interactive, tty: a.tty } };
    let (c, o) = e.run(&spec, attach)?;
    if a.detach {
        writeln!(std::io::stdout(), "{}", c.id)?;
    }
    Ok(o.code)
}

pub(super) fn create(e: &Engine, a: &RunArgs) -> anyhow::Result<i32> {
    let c = e.create(&a.to_spec()?)?;
    writeln!(std::io::stdout(), "{}", c.id)?;
    Ok(0)
}

pub(super) fn start(e: &Engine, a: &StartArgs) -> anyhow::Result<i32> {
    if let Some(cp) = &a.checkpoint {
        return each(&a.containers, |n| e.start_checkpoint(n, cp).map(|_| n.to_string()));
    }
    e.short_lived();
    if a.interactive || a.attach {
        let c = e.container(&a.containers[0])?;
        let o = e.start_attached(&c.id, Attach::Stdio { stdin: a.interactive, tty: c.spec.tty })?;
        return Ok(o.code);
    }
    each(&a.containers, |n| e.start(n).map(|_| n.to_string()))
}

pub(super) fn stop(e: &Engine, a: &StopArgs) -> anyhow::Result<i32> {
    each(&a.containers, |n| e.stop(n, a.time).map(|_| n.to_string()))
}

pub(super) fn restart(e: &Engine, a: &StopArgs) -> anyhow::Result<i32> {
    each(&a.containers, |n| e.restart(n, a.time).map(|_| n.to_string()))
}

pub(super) fn kill(e: &Engine, a: &KillArgs) -> anyhow::Result<i32> {
    each(&a.containers, |n| e.kill(n, &a.signal).map(|_| n.to_string()))
}

pub(super) fn pause(e: &Engine, a: &Names) -> anyhow::Result<i32> {
    each(&a.containers, |n| e.pause(n).map(|_| n.to_string()))
}

pub(super) fn unpause(e: &Engine, a: &Names) -> anyhow::Result<i32> {
    each(&a.containers, |n| e.unpause(n).map(|_| n.to_string()))
}

pub(super) fn wait(e: &Engine, a: &Names) -> anyhow::Result<i32> {
    each(&a.containers, |n| e.wait(n).map(|c| c.to_string()))
}

pub(super) fn rm(e: &Engine, a: &RmArgs) -> anyhow::Result<i32> {
    if a.containers.is_empty() {
        bail!("\"rm\" requires at least 1 argument: berth rm [-f] CONTAINER...");
    }
    // Removed together (peers' hosts files written once), reported in order.
    let done = std::cell::RefCell::new(e.remove_many(&a.containers, a.force, a.volumes).into_iter());
    super::remove_each(&a.containers, a.force, |n| done.borrow_mut().next().unwrap_or_else(|| Ok(String::new())).map(|_| n.to_string()))
}

pub(super) fn rename(e: &Engine, old: &str, new: &str) -> anyhow::Result<i32> {
    e.rename(old, new)?;
    Ok(0)
}

/// One `ps --filter` condition.
enum ContainerFilter {
    Label(String, Option<String>),
    Name(String),
    Status(String),
    Id(String),
}

impl ContainerFilter {
    fn parse(f: &str) -> anyhow::Result<ContainerFilter> {
        let (k, v) = f.split_once('=').ok_or_else(|| anyhow::anyhow!("bad filter {f:?}: use KEY=VALUE (label=, name=, status=, id=)"))?;
        Ok(match k {
            "label" => match v.split_once('=') {
                Some((k, v)) => ContainerFilter::Label(k.into(), Some(v.into())),
                None => ContainerFilter::Label(v.into(), None),
            },
            "name" => ContainerFilter::Name(v.into()),
            "status" => ContainerFilter::Status(v.into()),
            "id" => ContainerFilter::Id(v.into()),
            other => bail!("unknown filter {other:?}; known: label, name, status, id"),
        })
    }

    fn matches(&self, c: &crate::container::Container) -> bool {
        match self {
            ContainerFilter::Label(k, v) => c.spec.labels.get(k).is_some_and(|x| v.as_ref().is_none_or(|v| v == x)),
            ContainerFilter::Name(n) => c.name.contains(n.as_str()),
            ContainerFilter::Status(st) => &c.state == st,
            ContainerFilter::Id(p) => c.id.starts_with(p.as_str()),
        }
    }
}

pub(super) fn ps(e: &Engine, a: &PsArgs) -> anyhow::Result<i32> {
    let out = &mut std::io::stdout();
    let filters = a.filter.iter().map(|f| ContainerFilter::parse(f)).collect::<anyhow::Result<Vec<_>>>()?;
    // A status filter looks at stopped containers too, as docker's does.
    let all = a.all || filters.iter().any(|f| matches!(f, ContainerFilter::Status(_)));
    let list: Vec<_> = e.containers(all)?.into_iter().filter(|c| filters.iter().all(|f| f.matches(c))).collect();
    let ports = |c: &crate::container::Container| e.ports(&c.id).map(|p| table::ports(&p)).unwrap_or_default();
    if a.quiet {
        for c in &list {
            writeln!(out, "{}", c.short_id())?;
        }
    } else if a.format.as_deref() == Some("json") {
        for c in &list {
            writeln!(out, "{}", format::ps_json(c, ports(c)))?;
        }
    } else if let Some(t) = a.format.as_deref().filter(|t| *t != "table") {
        // docker's --format '{{.Names}}': a Go template over each row's fields.
        for c in &list {
            writeln!(out, "{}", format::template(t, &format::ps_json(c, ports(c)))?)?;
        }
    } else {
        write!(out, "{}", table::containers(&list, ports))?;
    }
    Ok(0)
}

/// `berth inspect` looks for a container first, then an image;
/// `berth image inspect` (`images_only`) only for an image.
pub(super) fn inspect(e: &Engine, a: &InspectArgs, images_only: bool) -> anyhow::Result<i32> {
    let mut all = Vec::new();
    let mut code = 0;
    for n in &a.names {
        let v = if images_only {
            e.image(n).map(|i| crate::image::inspect_json(&i))
        } else {
            match e.container(n) {
                Ok(c) => Ok(e.container_inspect(&c)),
                Err(_) => e.image(n).map(|i| crate::image::inspect_json(&i)),
            }
        };
        match v {
            Ok(v) => all.push(v),
            Err(_) => {
                eprintln!("Error: No such object: {n}");
                code = 1;
            }
        }
    }
    match a.format.as_deref() {
        None | Some("json") => println!("{}", serde_json::to_string_pretty(&all)?),
        Some(f) => {
            for v in &all {
                println!("{}", format::template(f, v)?);
            }
        }
    }
    Ok(code)
}

pub(super) fn logs(e: &Engine, a: &LogsArgs) -> anyhow::Result<i32> {
    let mut print = |l: &crate::engine::LogLine| {
        let text = if a.timestamps { format!("{} {}", l.time, l.text) } else { l.text.clone() };
        if l.stream == "stderr" {
            let _ = std::io::stderr().write_all(text.as_bytes());
        } else {
            let mut o = std::io::stdout();
            let _ = o.write_all(text.as_bytes());
            let _ = o.flush();
        }
    };
    if a.follow {
        e.follow_logs(&a.container, &mut print)?;
    } else {
        for l in e.logs(&a.container)? {
            print(&l);
        }
    }
    Ok(0)
}

pub(super) fn exec(e: &Engine, a: ExecArgs) -> anyhow::Result<i32> {
    let mut it = a.container_and_cmd.into_iter();
    let c = it.next().unwrap();
    let env = a.env.iter().map(|e| if e.contains('=') { e.clone() } else { format!("{e}={}", std::env::var(e).unwrap_or_default()) }).collect();
    let opts = ExecOptions { args: it.collect(), env, workdir: a.workdir, user: a.user, tty: a.tty, interactive: a.interactive, privileged: a.privileged };
    let o = e.exec(&c, opts, false)?;
    Ok(o.code)
}

pub(super) fn top(e: &Engine, container: &str, ps_args: &[String]) -> anyhow::Result<i32> {
    if !ps_args.is_empty() {
        let (titles, rows) = e.top_ps(container, &ps_args.join(" "))?;
        let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
        write!(std::io::stdout(), "{}", table::render(&titles, &rows))?;
        return Ok(0);
    }
    let rows = crate::render::top_rows(&e.top(container)?);
    write!(std::io::stdout(), "{}", table::render(&crate::render::TOP_TITLES, &rows))?;
    Ok(0)
}

pub(super) fn cp(e: &Engine, src: &str, dst: &str) -> anyhow::Result<i32> {
    e.copy(src, dst)?;
    Ok(0)
}

pub(super) fn port(e: &Engine, container: &str) -> anyhow::Result<i32> {
    let out = &mut std::io::stdout();
    for p in e.ports(container)? {
        writeln!(out, "{}/{} -> {}:{}", p.container_port, p.proto, p.host_ip, p.host_port)?;
    }
    Ok(0)
}

pub(super) fn stats(e: &Engine, no_stream: bool, format: Option<&str>, containers: &[String]) -> anyhow::Result<i32> {
    loop {
        // One second between samples, as docker's refresh.
        let rows = e.stats(containers, std::time::Duration::from_millis(if no_stream { 500 } else { 1000 }))?;
        let text = if format == Some("json") { format!("{}\n", serde_json::to_string(&rows)?) } else { format::stats_table(&rows) };
        if no_stream {
            print!("{text}");
            return Ok(0);
        }
        // Clear the screen and redraw, as docker stats does.
        print!("\x1b[2J\x1b[H{text}");
        std::io::stdout().flush()?;
    }
}

pub(super) fn checkpoint(e: &Engine, cmd: CheckpointCmd) -> anyhow::Result<i32> {
    match cmd {
        CheckpointCmd::Create(a) => {
            let o = crate::engine::CheckpointOpts { name: a.checkpoint.clone(), leave_running: a.leave_running, tcp_established: a.tcp_established, export: a.export.clone() };
            println!("{}", e.checkpoint_create(&a.container, &o)?);
            Ok(0)
        }
        CheckpointCmd::Ls { container } => {
            println!("CHECKPOINT NAME");
            for m in e.checkpoint_ls(&container)? {
                println!("{}", m.name);
            }
            Ok(0)
        }
        CheckpointCmd::Rm { container, checkpoint } => {
            e.checkpoint_rm(&container, &checkpoint)?;
            Ok(0)
        }
    }
}
