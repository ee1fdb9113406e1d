//! The docker-compatible command line. Turns words into request structs,
//! calls one `Engine` method, renders the result.

mod args;
mod more;
pub mod service;
pub use crate::render as table;
pub use args::Cli;

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, bail};
use clap::Parser;

use args::*;

use crate::engine::{Attach, Engine, EngineError};
use crate::runtime::exec::ExecOptions;

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

pub use crate::parse::memory as parse_bytes;

pub fn parse_kv(items: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for i in items {
        let (k, v) = i.split_once('=').with_context(|| format!("invalid {what} {i:?}: expected KEY=VALUE"))?;
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}


/// An error on its way out, with the exit code docker would give.
pub struct Exit(pub i32);

pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    init_tracing();
    quiet_on_closed_stdout();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = e.downcast_ref::<EngineError>().map(|x| x.exit_code()).unwrap_or(125);
            eprintln!("berth: {}", chain(&e));
            code
        }
    }
}

/// The error and its causes on one line; a cause the message already
/// shows (most of ours say "{context}: {source}") is not repeated.
fn chain(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for c in e.chain().skip(1) {
        let c = c.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
    }
    s
}

/// `berth images | head -1` must end quietly, as Go's docker does: its
/// writes to a closed stdout end the process like SIGPIPE (exit 141), while
/// sockets keep getting EPIPE as an error (SIGPIPE stays ignored for them).
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(128 + libc::SIGPIPE);
        }
        default(info)
    }));
}

fn init_tracing() {
    if let Ok(f) = std::env::var("BERTH_LOG") {
        // Uptime stamps show where a start spends its milliseconds.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(f))
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let root = cli.root.clone();
    if let Some(f) = &cli.registry_config {
        // SAFETY of intent: set before any thread starts; read by Engine::open.
        unsafe { std::env::set_var("BERTH_REGISTRY_CONFIG", f) };
    }
    let engine = || Engine::open(root.clone()).map_err(anyhow::Error::from);
    let Some(cmd) = cli.cmd else {
        if crate::sys::pty::is_tty(0) {
            return crate::script::repl::run(engine()?);
        }
        bail!("no command given; try `berth --help`, or `berth repl`");
    };
    // Version answers without a store (a fresh machine, no root yet).
    if let Cmd::Version { format } = &cmd {
        return more::version(engine().ok().as_ref(), format.as_deref());
    }
    let cmd = match cmd {
        Cmd::Info { format } => Cmd::System(SystemCmd::Info { format }),
        Cmd::Container(c) => match c {
            ContainerCmd::Ls(a) => Cmd::Ps(a),
            ContainerCmd::Run(a) => Cmd::Run(a),
            ContainerCmd::Create(a) => Cmd::Create(a),
            ContainerCmd::Start(a) => Cmd::Start(a),
            ContainerCmd::Stop(a) => Cmd::Stop(a),
            ContainerCmd::Restart(a) => Cmd::Restart(a),
            ContainerCmd::Kill(a) => Cmd::Kill(a),
            ContainerCmd::Pause(a) => Cmd::Pause(a),
            ContainerCmd::Unpause(a) => Cmd::Unpause(a),
            ContainerCmd::Wait(a) => Cmd::Wait(a),
            ContainerCmd::Rm(a) => Cmd::Rm(a),
            ContainerCmd::Rename { old, new } => Cmd::Rename { old, new },
            ContainerCmd::Inspect(a) => Cmd::Inspect(a),
            ContainerCmd::Logs(a) => Cmd::Logs(a),
            ContainerCmd::Exec(a) => Cmd::Exec(a),
            ContainerCmd::Top { container } => Cmd::Top { container },
            ContainerCmd::Cp { src, dst } => Cmd::Cp { src, dst },
            ContainerCmd::Prune(a) => return more::container_prune(&engine()?, a, confirm),
            ContainerCmd::Diff { container } => Cmd::Diff { container },
            ContainerCmd::Export(a) => Cmd::Export(a),
            ContainerCmd::Commit(a) => Cmd::Commit(a),
            ContainerCmd::Update(a) => Cmd::Update(a),
            ContainerCmd::Attach(a) => Cmd::Attach(a),
            ContainerCmd::Port { container } => Cmd::Port { container },
        },
        Cmd::Image(c) => match c {
            ImageCmd::Ls(a) => Cmd::Images(a),
            ImageCmd::Rm(a) => Cmd::Rmi(a),
            ImageCmd::Inspect(a) => return inspect(&engine()?, a, true),
            ImageCmd::Import(a) => Cmd::Import(a),
            ImageCmd::History { image, quiet, format } => return history(&engine()?, &image, quiet, format.as_deref()),
            ImageCmd::Tag { source, target } => Cmd::Tag { source, target },
            ImageCmd::Save(a) => Cmd::Save(a),
            ImageCmd::Load(a) => Cmd::Load(a),
            ImageCmd::Pull(a) => Cmd::Pull(a),
            ImageCmd::Prune { all, force } => {
                // As docker: it asks, and without a terminal's "y" it does nothing.
                let what = if all { "This will remove all images without at least one container associated to them." } else { "This will remove all dangling images." };
                if !force && !confirm(what)? {
                    return Ok(0);
                }
                let (ids, bytes) = engine()?.image_prune(all)?;
                if !ids.is_empty() {
                    println!("Deleted Images:");
                    for id in &ids {
                        println!("deleted: {id}");
                    }
                    println!();
                }
                println!("Total reclaimed space: {}", table::human_size(bytes));
                return Ok(0);
            }
            ImageCmd::Push(a) => Cmd::Push(a),
        },
        other => other,
    };
    let e = engine()?;
    let out = &mut std::io::stdout();
    match cmd {
        Cmd::Run(a) => {
            if a.image_and_cmd[0].ends_with(".rhai") {
                return crate::script::run_file(e, &a.image_and_cmd[0], &a.image_and_cmd[1..]);
            }
            let spec = a.to_spec()?;
            let attach = if a.detach { Attach::Detached } else { Attach::Stdio { stdin: a.interactive, tty: a.tty } };
            let (c, o) = e.run(&spec, attach)?;
            if a.detach {
                writeln!(out, "{}", c.id)?;
            }
            Ok(o.code)
        }
        Cmd::Create(a) => {
            let c = e.create(&a.to_spec()?)?;
            writeln!(out, "{}", c.id)?;
            Ok(0)
        }
        Cmd::Start(a) => {
            if a.interactive || a.attach {
                let c = e.container(&a.containers[0])?;
                let o = e.start_attached(&c.id, Attach::Stdio { stdin: a.interactive, tty: c.spec.tty })?;
                return Ok(o.code);
            }
            each(&a.containers, |n| e.start(n).map(|_| n.to_string()))
        }
        Cmd::Stop(a) => each(&a.containers, |n| e.stop(n, a.time).map(|_| n.to_string())),
        Cmd::Restart(a) => each(&a.containers, |n| e.restart(n, a.time).map(|_| n.to_string())),
        Cmd::Kill(a) => each(&a.containers, |n| e.kill(n, &a.signal).map(|_| n.to_string())),
        Cmd::Pause(a) => each(&a.containers, |n| e.pause(n).map(|_| n.to_string())),
        Cmd::Unpause(a) => each(&a.containers, |n| e.unpause(n).map(|_| n.to_string())),
        Cmd::Wait(a) => each(&a.containers, |n| e.wait(n).map(|c| c.to_string())),
        Cmd::Rm(a) => {
            if a.containers.is_empty() {
                bail!("\"rm\" requires at least 1 argument: berth rm [-f] CONTAINER...");
            }
            each(&a.containers, |n| e.remove_with(n, a.force, a.volumes).map(|_| n.to_string()))
        }
        Cmd::Rename { old, new } => {
            e.rename(&old, &new)?;
            Ok(0)
        }
        Cmd::Ps(a) => {
            let filters = a.filter.iter().map(|f| ContainerFilter::parse(f)).collect::<anyhow::Result<Vec<_>>>()?;
            // A status filter looks at stopped containers too, as docker's does.
            let all = a.all || filters.iter().any(|f| matches!(f, ContainerFilter::Status(_)));
            let list: Vec<_> = e.containers(all)?.into_iter().filter(|c| filters.iter().all(|f| f.matches(c))).collect();
            if a.quiet {
                for c in &list {
                    writeln!(out, "{}", c.short_id())?;
                }
            } else if a.format.as_deref() == Some("json") {
                for c in &list {
                    let ports = e.ports(&c.id).map(|p| table::ports(&p)).unwrap_or_default();
                    writeln!(out, "{}", serde_json::json!({"ID": c.short_id(), "Image": c.image_ref, "Command": c.command.join(" "), "CreatedAt": c.created, "State": c.state, "Status": table::status(c), "Ports": ports, "Names": c.name, "Labels": c.spec.labels}))?;
                }
            } else {
                write!(out, "{}", table::containers(&list, |c| e.ports(&c.id).map(|p| table::ports(&p)).unwrap_or_default()))?;
            }
            Ok(0)
        }
        Cmd::Images(a) => {
            let list = e.images_all(a.all)?;
            if a.quiet {
                for i in &list {
                    writeln!(out, "{}", i.short_id())?;
                }
            } else if a.format.as_deref() == Some("json") {
                for i in &list {
                    writeln!(out, "{}", serde_json::json!({"ID": i.short_id(), "Repository": i.tags.first().map(|t| t.rsplit_once(':').map(|x| x.0).unwrap_or(t)).unwrap_or("<none>"), "Tag": i.tags.first().and_then(|t| t.rsplit_once(':').map(|x| x.1)).unwrap_or("<none>"), "CreatedAt": i.created, "Size": table::human_size(i.size)}))?;
                }
            } else {
                write!(out, "{}", table::images(&list))?;
            }
            Ok(0)
        }
        Cmd::Rmi(a) => {
            if a.images.is_empty() {
                bail!("\"rmi\" requires at least 1 argument: berth rmi [-f] IMAGE...");
            }
            let mut code = 0;
            for i in &a.images {
                match e.image_remove(i, a.force) {
                    Ok(r) => {
                        for t in r.untagged {
                            writeln!(out, "Untagged: {t}")?;
                        }
                        for d in r.deleted {
                            writeln!(out, "Deleted: {d}")?;
                        }
                    }
                    Err(err) => {
                        eprintln!("berth: {err}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        Cmd::Import(a) => {
            let img = e.import_file(&a.file, a.reference.as_deref(), &a.change)?;
            writeln!(out, "{}", img.id)?;
            Ok(0)
        }
        Cmd::Inspect(a) => inspect(&e, a, false),
        Cmd::History { image, quiet, format } => history(&e, &image, quiet, format.as_deref()),
        Cmd::Build(a) => {
            let mut args = BTreeMap::new();
            for kv in &a.build_arg {
                match kv.split_once('=') {
                    Some((k, v)) => args.insert(k.to_string(), v.to_string()),
                    // `--build-arg K` takes K from the environment, as docker does.
                    None => args.insert(kv.clone(), std::env::var(kv).unwrap_or_default()),
                };
            }
            let opts = crate::build::builder::BuildOptions { context: a.context, file: a.file, tag: a.tag, args, target: a.target, no_cache: a.no_cache, show_output: !a.quiet };
            let img = e.build(&opts)?;
            if a.quiet {
                writeln!(out, "{}", img.id)?;
            }
            Ok(0)
        }
        Cmd::Pull(a) => {
            let img = e.pull(&a.image, progress(a.quiet))?;
            if a.quiet {
                writeln!(out, "{}", a.image)?;
            } else {
                writeln!(out, "{}", img.id)?;
            }
            Ok(0)
        }
        Cmd::Push(a) => {
            let d = e.push(&a.image, progress(a.quiet))?;
            if a.quiet {
                writeln!(out, "{d}")?;
            }
            Ok(0)
        }
        Cmd::Login(a) => {
            let password = match (a.password, a.password_stdin) {
                (Some(p), false) => p,
                (None, true) => {
                    let mut p = String::new();
                    std::io::stdin().read_line(&mut p)?;
                    p.trim_end_matches(['\n', '\r']).to_string()
                }
                _ => bail!("give the password with -p PASSWORD or --password-stdin"),
            };
            e.login(&a.server, &a.username, &password)?;
            writeln!(out, "Login Succeeded")?;
            Ok(0)
        }
        Cmd::Logout { server } => {
            if e.logout(&server)? {
                writeln!(out, "Removing login credentials for {server}")?;
            } else {
                writeln!(out, "Not logged in to {server}")?;
            }
            Ok(0)
        }
        Cmd::Search(a) => {
            let registry = a.registry.or_else(|| std::env::var("BERTH_REGISTRY").ok()).unwrap_or_else(|| "docker.io".into());
            let found = e.search(&registry, &a.term)?;
            let rows: Vec<Vec<String>> = found
                .into_iter()
                .map(|f| vec![f.name, f.description.chars().take(45).collect(), f.stars.to_string(), if f.official { "[OK]".into() } else { String::new() }])
                .collect();
            write!(out, "{}", table::render(&["NAME", "DESCRIPTION", "STARS", "OFFICIAL"], &rows))?;
            Ok(0)
        }
        Cmd::Tag { source, target } => {
            e.tag(&source, &target)?;
            Ok(0)
        }
        Cmd::Save(a) => {
            let format = match a.format.as_str() {
                "docker" | "docker-archive" => crate::image::archive::Format::Docker,
                "oci" | "oci-archive" => crate::image::archive::Format::Oci,
                other => bail!("unknown --format {other:?}: use docker or oci"),
            };
            match &a.output {
                Some(path) => {
                    // Written next to the target and renamed: a failed save
                    // leaves no half archive under the name asked for.
                    let tmp = format!("{path}.berth-tmp");
                    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).with_context(|| format!("creating {tmp}"))?);
                    let r = e.save(&a.images, &mut f, format).map_err(anyhow::Error::from).and_then(|_| f.flush().map_err(anyhow::Error::from));
                    drop(f);
                    match r {
                        Ok(()) => std::fs::rename(&tmp, path).with_context(|| format!("writing {path}"))?,
                        Err(err) => {
                            let _ = std::fs::remove_file(&tmp);
                            return Err(err);
                        }
                    }
                }
                None => {
                    if crate::sys::pty::is_tty(1) {
                        bail!("refusing to write an archive to a terminal: use -o FILE or redirect the output");
                    }
                    let mut o = std::io::BufWriter::new(std::io::stdout().lock());
                    e.save(&a.images, &mut o, format)?;
                    o.flush()?;
                }
            }
            Ok(0)
        }
        Cmd::Load(a) => {
            let lines = match &a.input {
                Some(p) => e.load(&mut std::io::BufReader::new(std::fs::File::open(p).with_context(|| format!("opening {p}"))?))?,
                None => e.load(&mut std::io::stdin().lock())?,
            };
            if !a.quiet {
                for l in lines {
                    writeln!(out, "{l}")?;
                }
            }
            Ok(0)
        }
        Cmd::Logs(a) => {
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
        Cmd::Exec(a) => {
            let mut it = a.container_and_cmd.into_iter();
            let c = it.next().unwrap();
            let env = a.env.iter().map(|e| if e.contains('=') { e.clone() } else { format!("{e}={}", std::env::var(e).unwrap_or_default()) }).collect();
            let opts = ExecOptions { args: it.collect(), env, workdir: a.workdir, user: a.user, tty: a.tty, interactive: a.interactive, privileged: a.privileged };
            let o = e.exec(&c, opts, false)?;
            Ok(o.code)
        }
        Cmd::Top { container } => {
            let procs = e.top(&container)?;
            let hz = 100.0;
            let boot = boot_time();
            let rows: Vec<Vec<String>> = procs
                .iter()
                .map(|p| {
                    let start = boot + p.start_ticks as f64 / hz;
                    let st = crate::store::rfc3339(start as i64, 0);
                    let t = p.cpu_ticks / 100;
                    vec![uid_name(p.uid), p.pid.to_string(), p.ppid.to_string(), "0".into(), st[11..16].to_string(), p.tty.clone(), format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60), p.cmd.clone()]
                })
                .collect();
            write!(out, "{}", table::render(&["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], &rows))?;
            Ok(0)
        }
        Cmd::Cp { src, dst } => {
            e.copy(&src, &dst)?;
            Ok(0)
        }
        Cmd::Diff { container } => more::diff(&e, &container),
        Cmd::Export(a) => more::export(&e, &a),
        Cmd::Commit(a) => more::commit(&e, a),
        Cmd::Update(a) => more::update(&e, a),
        Cmd::Attach(a) => more::attach(&e, &a),
        Cmd::Events(a) => more::events(&e, &a),
        Cmd::Info { .. } | Cmd::Version { .. } => unreachable!("answered above"),
        Cmd::Port { container } => {
            for p in e.ports(&container)? {
                writeln!(out, "{}/{} -> {}:{}", p.container_port, p.proto, p.host_ip, p.host_port)?;
            }
            Ok(0)
        }
        Cmd::Network(n) => network_cmd(&e, n),
        Cmd::System(c) => system_cmd(&e, c),
        Cmd::Volume(c) => volume_cmd(&e, c),
        Cmd::Service(c) => service::run(&e, c),
        Cmd::Stack(c) => service::stack(&e, c),
        Cmd::Stats { no_stream, format, containers } => stats_cmd(&e, no_stream, format.as_deref(), &containers),
        Cmd::Repl => crate::script::repl::run(e),
        Cmd::Test(a) => match a.clean {
            Some(id) => crate::script::runner::clean(e, &id),
            None => crate::script::runner::run(e, crate::script::runner::Options { paths: a.paths, jobs: a.jobs, filter: a.filter, junit: a.junit, keep_on_failure: a.keep_on_failure }),
        },
        Cmd::Monitor { .. } | Cmd::Container(_) | Cmd::Image(_) => unreachable!(),
    }
}

fn progress(quiet: bool) -> crate::image::registry::Progress {
    use crate::image::registry::Progress;
    if quiet {
        Progress::Quiet
    } else if crate::sys::pty::is_tty(2) {
        Progress::Bars
    } else {
        Progress::Lines
    }
}

fn network_json(e: &Engine, n: &crate::network::Network) -> serde_json::Value {
    let members = e.network_members(&n.id).unwrap_or_default();
    let containers: serde_json::Map<String, serde_json::Value> = members
        .into_iter()
        .map(|(id, name, ip)| {
            let mut v = serde_json::json!({ "Name": name, "IPv4Address": format!("{ip}/{}", n.subnet.split('/').nth(1).unwrap_or("24")) });
            if let Some((_, imp)) = e.impairments(&id).unwrap_or_default().into_iter().find(|(net, i)| *net == n.name && !i.is_none()) {
                v["Impairment"] = serde_json::json!(imp.to_string());
            }
            (id, v)
        })
        .collect();
    serde_json::json!({
        "Name": n.name, "Id": n.id, "Created": n.created, "Driver": "bridge", "Scope": "local",
        "IPAM": { "Driver": "default", "Config": [{ "Subnet": n.subnet, "Gateway": n.gateway }] },
        "Options": { "com.docker.network.bridge.name": n.bridge },
        "Containers": containers, "Labels": n.labels,
    })
}

fn network_cmd(e: &Engine, cmd: NetworkCmd) -> anyhow::Result<i32> {
    match cmd {
        NetworkCmd::Create { subnet, gateway, driver, label, name } => {
            if driver != "bridge" {
                bail!("network driver {driver:?} is not supported: berth networks are bridges");
            }
            let labels = parse_kv(&label, "label")?;
            let n = e.network_create(&crate::network::NetworkSpec { name, subnet, gateway, labels })?;
            println!("{}", n.id);
            Ok(0)
        }
        NetworkCmd::Ls { quiet, format } => {
            let list = e.networks()?;
            if quiet {
                for n in &list {
                    println!("{}", &n.id[..12]);
                }
            } else if format.as_deref() == Some("json") {
                for n in &list {
                    println!("{}", serde_json::json!({"ID": &n.id[..12], "Name": n.name, "Driver": "bridge", "Scope": "local", "Subnet": n.subnet}));
                }
            } else {
                print!("{}", table::networks(&list));
            }
            Ok(0)
        }
        NetworkCmd::Rm { networks } => each(&networks, |n| e.network_remove(n).map(|_| n.to_string())),
        NetworkCmd::Inspect { networks } => {
            let mut all = Vec::new();
            for n in &networks {
                all.push(network_json(e, &e.network(n)?));
            }
            println!("{}", serde_json::to_string_pretty(&all)?);
            Ok(0)
        }
        NetworkCmd::Connect { ip, alias, network, container } => {
            e.network_connect(&network, &container, ip.as_deref(), &alias)?;
            Ok(0)
        }
        NetworkCmd::Disconnect { network, container } => {
            e.network_disconnect(&network, &container)?;
            Ok(0)
        }
        NetworkCmd::Impair { delay, jitter, loss, rate, clear, network, container } => {
            use crate::network::impair::{self, Impairment};
            if !clear && delay.is_none() && jitter.is_none() && loss.is_none() && rate.is_none() {
                let n = e.network(&network)?;
                let imp = e.impairments(&container)?.into_iter().find(|(name, _)| *name == n.name).map(|(_, i)| i);
                let Some(imp) = imp else { anyhow::bail!("container {container} is not connected to network {network}") };
                println!("{imp}");
                return Ok(0);
            }
            let bad = |e: String| anyhow::anyhow!("network impair: {e}");
            let imp = Impairment {
                delay_us: delay.as_deref().map(impair::parse_duration).transpose().map_err(bad)?.unwrap_or(0),
                jitter_us: jitter.as_deref().map(impair::parse_duration).transpose().map_err(bad)?.unwrap_or(0),
                loss: loss.as_deref().map(impair::parse_loss).transpose().map_err(bad)?.unwrap_or(0.0),
                rate_bps: rate.as_deref().map(impair::parse_rate).transpose().map_err(bad)?.unwrap_or(0),
            };
            e.network_impair(&network, &container, if clear { None } else { Some(&imp) })?;
            Ok(0)
        }
        NetworkCmd::Graph { format } => {
            let t = e.topology()?;
            let out = match format.as_str() {
                "dot" => crate::network::graph_dot(&t),
                "mermaid" => crate::network::graph_mermaid(&t),
                "svg" => crate::network::graph_svg(&t),
                other => bail!("unknown graph format {other:?}: use dot, mermaid or svg"),
            };
            print!("{out}");
            Ok(0)
        }
        NetworkCmd::Prune { force } => {
            if !force && !confirm("This will remove all custom networks not used by at least one container.")? {
                return Ok(0);
            }
            let gone = e.network_prune()?;
            if !gone.is_empty() {
                println!("Deleted Networks:");
                for n in gone {
                    println!("{n}");
                }
            }
            Ok(0)
        }
    }
}

fn boot_time() -> f64 {
    std::fs::read_to_string("/proc/stat").ok().and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())).unwrap_or(0.0)
}

fn uid_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| p.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
        }))
        .unwrap_or_else(|| uid.to_string())
}

/// Applies `f` to each name, printing its result; docker's exit code 1 if
/// any failed.
fn each(names: &[String], f: impl Fn(&str) -> Result<String, EngineError>) -> anyhow::Result<i32> {
    let mut code = 0;
    for n in names {
        match f(n) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("berth: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn inspect(e: &Engine, a: InspectArgs, images_only: bool) -> anyhow::Result<i32> {
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
                println!("{}", format_template(f, v)?);
            }
        }
    }
    Ok(code)
}

/// The common docker templates: `{{.State.Status}}` dotted paths, `json`,
/// `index X "key"` and `(index X "key").Field`. Anything else is an error,
/// not a silent "null".
fn format_template(f: &str, v: &serde_json::Value) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = f;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let j = rest[i..].find("}}").ok_or_else(|| anyhow::anyhow!("template {f:?}: unclosed {{{{"))?;
        let expr = rest[i + 2..i + j].trim();
        let (json, expr) = match expr.strip_prefix("json ") {
            Some(e) => (true, e.trim()),
            None => (false, expr),
        };
        let val = template_eval(expr, v).map_err(|why| anyhow::anyhow!("template {{{{{expr}}}}}: {why}; berth understands .Path.To.Field, json, index X \"key\" and (index X \"key\").Field"))?;
        match val {
            serde_json::Value::String(s) if !json => out.push_str(&s),
            serde_json::Value::Null if !json => out.push_str("<no value>"),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn template_path(mut cur: serde_json::Value, path: &str) -> Result<serde_json::Value, String> {
    for part in path.split('.').filter(|p| !p.is_empty()) {
        if !part.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
            return Err(format!("{part:?} is not a field name"));
        }
        cur = cur.get(part).cloned().unwrap_or(serde_json::Value::Null);
    }
    Ok(cur)
}

fn template_eval(expr: &str, v: &serde_json::Value) -> Result<serde_json::Value, String> {
    let expr = expr.trim();
    if let Some(inner) = expr.strip_prefix('(') {
        let mut depth = 1;
        let close = inner.char_indices().find_map(|(k, c)| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(k)
        });
        let k = close.ok_or("unbalanced parentheses")?;
        let head = template_eval(&inner[..k], v)?;
        let tail = inner[k + 1..].trim();
        return if tail.is_empty() { Ok(head) } else if let Some(p) = tail.strip_prefix('.') { template_path(head, p) } else { Err(format!("unexpected {tail:?}")) };
    }
    if let Some(args) = expr.strip_prefix("index ") {
        let args = args.trim();
        let (target, keys) = match args.find(char::is_whitespace) {
            Some(k) => (&args[..k], args[k..].trim()),
            None => return Err("index needs a value and a key".into()),
        };
        let mut cur = template_eval(target, v)?;
        for key in keys.split_whitespace() {
            cur = if let Some(k) = key.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
                cur.get(k).cloned().unwrap_or(serde_json::Value::Null)
            } else if let Ok(n) = key.parse::<usize>() {
                cur.get(n).cloned().unwrap_or(serde_json::Value::Null)
            } else {
                return Err(format!("index key {key:?} must be a \"string\" or a number"));
            };
        }
        return Ok(cur);
    }
    match expr.strip_prefix('.') {
        Some(p) => template_path(v.clone(), p),
        None => Err(format!("{expr:?} is not understood")),
    }
}

fn history(e: &Engine, name: &str, quiet: bool, format: Option<&str>) -> anyhow::Result<i32> {
    let (img, lines) = e.history(name)?;
    if format == Some("json") {
        for l in &lines {
            println!("{}", serde_json::to_string(l)?);
        }
        return Ok(0);
    }
    let mut rows = Vec::new();
    for (i, h) in lines.iter().enumerate() {
        // Like docker: only the top line has an id of its own.
        let id = if i == 0 { img.short_id().to_string() } else { "<missing>".into() };
        if quiet {
            println!("{id}");
            continue;
        }
        let by = if h.created_by.chars().count() > 45 { format!("{}…", h.created_by.chars().take(44).collect::<String>()) } else { h.created_by.clone() };
        rows.push(vec![id, table::ago(&h.created), by, table::human_size(h.size), h.comment.clone()]);
    }
    if !quiet {
        print!("{}", table::render(&["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], &rows));
    }
    Ok(0)
}

fn system_cmd(e: &Engine, c: SystemCmd) -> anyhow::Result<i32> {
    match c {
        SystemCmd::Info { format } => {
            let i = e.info()?;
            if format.as_deref() == Some("json") {
                println!("{}", serde_json::to_string_pretty(&i)?);
                return Ok(0);
            }
            println!("Containers: {}\n Running: {}\n Paused: {}\n Stopped: {}", i.containers, i.running, i.paused, i.stopped);
            println!("Images: {}\nNetworks: {}", i.images, i.networks);
            println!("Server Version: berth {}\nStorage Driver: {}\nCgroup Driver: {}\nCgroup Version: {}\nCgroup Parent: {}", i.server_version, i.storage_driver, i.cgroup_driver, i.cgroup_version, i.cgroup_parent);
            println!("Link Emulation: {}", i.link_emulation);
            println!("Kernel Version: {}\nOperating System: {}\nArchitecture: {}\nCPUs: {}", i.kernel_version, i.os, i.architecture, i.cpus);
            println!("Total Memory: {:.2}GiB\nBerth Root Dir: {}\nBerth Run Dir: {}", i.total_memory as f64 / (1u64 << 30) as f64, i.root_dir, i.run_dir);
            Ok(0)
        }
        SystemCmd::Df { verbose, format } => {
            let df = e.df()?;
            if format.as_deref() == Some("json") {
                println!("{}", serde_json::to_string_pretty(&df)?);
                return Ok(0);
            }
            let pct = |r: &crate::system::DfRow| (r.reclaimable * 100).checked_div(r.size).unwrap_or(0);
            let rows: Vec<Vec<String>> = [("Images", &df.images), ("Containers", &df.containers), ("Local Volumes", &df.volumes), ("Build Cache", &df.build_cache)]
                .iter()
                .map(|(n, r)| vec![n.to_string(), r.total.to_string(), r.active.to_string(), table::human_size(r.size), format!("{} ({}%)", table::human_size(r.reclaimable), pct(r))])
                .collect();
            print!("{}", table::render(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows));
            if verbose {
                for (kind, title) in [("image", "Images space usage:"), ("container", "Containers space usage:"), ("volume", "Local Volumes space usage:")] {
                    println!("\n{title}\n");
                    let rows: Vec<Vec<String>> = df.items.iter().filter(|i| i.kind == kind).map(|i| vec![i.name.clone(), table::human_size(i.size), if i.in_use { "yes".into() } else { "no".into() }]).collect();
                    print!("{}", table::render(&["NAME", "SIZE", "IN USE"], &rows));
                }
            }
            Ok(0)
        }
        SystemCmd::Prune { all, volumes, force } => {
            if !force {
                let mut what = vec!["all stopped containers", "all networks not used by at least one container"];
                what.push(if all { "all images without at least one container associated to them" } else { "all dangling images" });
                if volumes {
                    what.push("all anonymous volumes not used by at least one container");
                }
                what.push(if all { "all build cache" } else { "unused build cache" });
                what.push("everything left by `berth test` runs that were killed");
                if !confirm(&format!("This will remove:\n  - {}\n", what.join("\n  - ")))? {
                    return Ok(0);
                }
            }
            let p = e.prune(all, volumes)?;
            for (title, list) in [("Swept Test Runs (killed runners):", &p.test_runs), ("Deleted Containers:", &p.containers), ("Deleted Networks:", &p.networks), ("Deleted Images:", &p.images), ("Deleted Volumes:", &p.volumes)] {
                if !list.is_empty() {
                    println!("{title}");
                    for x in list {
                        println!("{x}");
                    }
                    println!();
                }
            }
            if p.build_cache > 0 {
                println!("Deleted build cache entries: {}\n", p.build_cache);
            }
            println!("Total reclaimed space: {}", table::human_size(p.reclaimed));
            Ok(0)
        }
        SystemCmd::Reset { force } => {
            if !force && !confirm(&format!("This will remove everything under {}: all containers (running ones too), services, stacks, networks (the default one too), volumes, images and the build cache.", e.paths.root.display()))? {
                return Ok(0);
            }
            let r = e.reset()?;
            println!(
                "Removed {} stack(s), {} service(s), {} container(s), {} network(s), {} volume(s), {} image(s), {} build cache entries",
                r.stacks, r.services, r.containers, r.networks, r.volumes, r.images, r.build_cache
            );
            Ok(0)
        }
        SystemCmd::Check { repair } => {
            // Links the kernel is still closing are shown but not counted.
            let (notes, found): (Vec<_>, Vec<_>) = e.check(repair)?.into_iter().partition(|f| f.transient);
            for f in &notes {
                let status = if !repair { "" } else if f.repaired { "  [removed]" } else { "  [repair failed]" };
                println!("note: {} {}: {}{status}", f.kind, f.object, f.reason);
            }
            if found.is_empty() {
                println!("no leftovers");
                return Ok(0);
            }
            let mut unrepaired = 0;
            for f in &found {
                let status = if !repair {
                    String::new()
                } else if f.repaired {
                    "  [removed]".into()
                } else {
                    unrepaired += 1;
                    format!("  [repair failed: {}]", f.repair_error.as_deref().unwrap_or("?"))
                };
                println!("{} {}: {}{status}", f.kind, f.object, f.reason);
            }
            if !repair {
                println!("{} problem(s) found; `berth system check --repair` removes them", found.len());
                return Ok(1);
            }
            Ok(if unrepaired > 0 { 1 } else { 0 })
        }
    }
}

fn volume_json(e: &Engine, v: &crate::volume::Volume) -> serde_json::Value {
    serde_json::json!({
        "Name": v.name, "Driver": "local", "Mountpoint": v.mountpoint, "CreatedAt": v.created,
        "Labels": v.labels, "Scope": "local", "Anonymous": v.anonymous, "UsedBy": e.volume_users(&v.name),
    })
}

fn volume_cmd(e: &Engine, c: VolumeCmd) -> anyhow::Result<i32> {
    match c {
        VolumeCmd::Create { label, name } => {
            let labels = parse_kv(&label, "label")?;
            println!("{}", e.volume_create(name.as_deref(), &labels)?.name);
            Ok(0)
        }
        VolumeCmd::Ls { quiet, format } => {
            let vs = e.volumes()?;
            if quiet {
                for v in &vs {
                    println!("{}", v.name);
                }
            } else if format.as_deref() == Some("json") {
                println!("{}", serde_json::to_string_pretty(&vs.iter().map(|v| volume_json(e, v)).collect::<Vec<_>>())?);
            } else {
                print!("{}", table::volumes(&vs));
            }
            Ok(0)
        }
        VolumeCmd::Inspect { volumes } => {
            let mut out = Vec::new();
            for n in &volumes {
                out.push(volume_json(e, &e.volume(n)?));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
        VolumeCmd::Rm { volumes, .. } => each(&volumes, |n| e.volume_remove(n).map(|_| n.to_string())),
        VolumeCmd::Prune { all, force } => {
            if !force && !confirm(if all { "This will remove all local volumes not used by at least one container." } else { "This will remove anonymous local volumes not used by at least one container." })? {
                return Ok(0);
            }
            let (names, bytes) = e.volume_prune(all)?;
            if !names.is_empty() {
                println!("Deleted Volumes:");
                for n in &names {
                    println!("{n}");
                }
                println!();
            }
            println!("Total reclaimed space: {}", table::human_size(bytes));
            Ok(0)
        }
    }
}

/// Docker's "Are you sure you want to continue? [y/N]", read from stdin.
fn confirm(what: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    print!("WARNING! {what}\nAre you sure you want to continue? [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

fn stats_table(rows: &[crate::system::Stats]) -> String {
    use crate::sys::stats::{human_bytes, human_si};
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s.id[..12].to_string(),
                s.name.clone(),
                format!("{:.2}%", s.cpu_percent),
                format!("{} / {}", human_bytes(s.memory_bytes), human_bytes(s.memory_limit)),
                format!("{:.2}%", s.memory_percent),
                format!("{} / {}", human_si(s.net_rx), human_si(s.net_tx)),
                format!("{} / {}", human_si(s.block_read), human_si(s.block_write)),
                s.pids.to_string(),
            ]
        })
        .collect();
    table::render(&["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"], &rows)
}

fn stats_cmd(e: &Engine, no_stream: bool, format: Option<&str>, containers: &[String]) -> anyhow::Result<i32> {
    use std::io::Write;
    loop {
        // One second between samples, as docker's refresh.
        let rows = e.stats(containers, std::time::Duration::from_millis(if no_stream { 500 } else { 1000 }))?;
        let text = if format == Some("json") { format!("{}\n", serde_json::to_string(&rows)?) } else { stats_table(&rows) };
        if no_stream {
            print!("{text}");
            return Ok(0);
        }
        // Clear the screen and redraw, as docker stats does.
        print!("\x1b[2J\x1b[H{text}");
        std::io::stdout().flush()?;
    }
}
