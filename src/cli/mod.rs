//! The docker-compatible command line. Turns words into request structs,
//! calls one `Engine` method, renders the result.
//!
//! `args` holds the words (clap's definitions); a module per area holds its
//! handlers (`container`, `image`, `network`, `volume`, `system`, `service`,
//! and `more` for the rarer container commands); `format` holds the output
//! shapes they share. This file starts the process and routes each command.

mod args;
mod container;
mod format;
mod image;
mod lab;
mod swarm;
mod more;
mod network;
pub mod service;
mod system;
mod volume;

pub use crate::render as table;
pub use args::Cli;
/// The `--format` template renderer, public for the fuzz targets (fuzz/).
pub use format::template as format_template;

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::Parser;

use crate::engine::{Engine, EngineError};
use args::{Cmd, SystemCmd, TestArgs};

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
    let parsed = match args::FastCli::parse_hot(&args) {
        Some(c) => Ok(c),
        None => Cli::try_parse_from(&args),
    };
    let cli = match parsed {
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
    // Version answers without a store (a fresh machine, no root yet), and
    // image prune asks before it opens one.
    match cmd {
        Cmd::Version { format } => return more::version(engine().ok().as_ref(), format.as_deref()),
        Cmd::Image(c) => return image::command(engine, c),
        _ => {}
    }
    let e = engine()?;
    // A swarm node's agent that died comes back with the next command.
    if let Err(err) = e.ensure_agent() {
        eprintln!("berth: warning: {err}");
    }
    match cmd {
        Cmd::Run(a) => container::run(e, &a),
        Cmd::Create(a) => container::create(&e, &a),
        Cmd::Start(a) => container::start(&e, &a),
        Cmd::Stop(a) => container::stop(&e, &a),
        Cmd::Restart(a) => container::restart(&e, &a),
        Cmd::Kill(a) => container::kill(&e, &a),
        Cmd::Pause(a) => container::pause(&e, &a),
        Cmd::Unpause(a) => container::unpause(&e, &a),
        Cmd::Wait(a) => container::wait(&e, &a),
        Cmd::Rm(a) => container::rm(&e, &a),
        Cmd::Rename { old, new } => container::rename(&e, &old, &new),
        Cmd::Ps(a) => container::ps(&e, &a),
        Cmd::Inspect(a) => container::inspect(&e, &a, false),
        Cmd::Logs(a) => container::logs(&e, &a),
        Cmd::Exec(a) => container::exec(&e, a),
        Cmd::Top { container, ps_args } => container::top(&e, &container, &ps_args),
        Cmd::Cp { src, dst } => container::cp(&e, &src, &dst),
        Cmd::Port { container } => container::port(&e, &container),
        Cmd::Checkpoint(c) => container::checkpoint(&e, c),
        Cmd::Stats { no_stream, format, containers } => container::stats(&e, no_stream, format.as_deref(), &containers),
        Cmd::Diff { container } => more::diff(&e, &container),
        Cmd::Export(a) => more::export(&e, &a),
        Cmd::Commit(a) => more::commit(&e, a),
        Cmd::Update(a) => more::update(&e, a),
        Cmd::Attach(a) => more::attach(&e, &a),
        Cmd::Events(a) => more::events(&e, &a),
        Cmd::Container(c) => container::command(e, c),
        Cmd::Images(a) => image::images(&e, &a),
        Cmd::Rmi(a) => image::rmi(&e, &a),
        Cmd::Import(a) => image::import(&e, &a),
        Cmd::History { image, quiet, format } => image::history(&e, &image, quiet, format.as_deref()),
        Cmd::Tag { source, target } => image::tag(&e, &source, &target),
        Cmd::Build(a) => image::build(&e, a),
        Cmd::Pull(a) => image::pull(&e, &a),
        Cmd::Push(a) => image::push(&e, &a),
        Cmd::Login(a) => image::login(&e, a),
        Cmd::Logout { server } => image::logout(&e, &server),
        Cmd::Search(a) => image::search(&e, a),
        Cmd::Save(a) => image::save(&e, &a),
        Cmd::Load(a) => image::load(&e, &a),
        Cmd::Network(c) => network::command(&e, c),
        Cmd::Volume(c) => volume::command(&e, c),
        Cmd::Service(c) => service::run(&e, c),
        Cmd::Stack(c) => service::stack(&e, c),
        Cmd::Info { format } => system::command(&e, SystemCmd::Info { format }),
        Cmd::System(c) => system::command(&e, c),
        Cmd::Repl => crate::script::repl::run(e),
        Cmd::Test(a) => test(e, a),
        Cmd::Serve(a) => system::serve(e, &a),
        Cmd::Lab(c) => lab::command(&e, c),
        Cmd::Swarm(c) => swarm::swarm(&e, c),
        Cmd::Node(c) => swarm::node(&e, c),
        Cmd::Version { .. } | Cmd::Image(_) => unreachable!("answered above"),
        Cmd::Monitor { .. } => unreachable!(),
    }
}

fn test(e: Engine, a: TestArgs) -> anyhow::Result<i32> {
    match a.clean {
        Some(id) => crate::script::runner::clean(e, &id),
        None => crate::script::runner::run(e, crate::script::runner::Options { paths: a.paths, jobs: a.jobs, filter: a.filter, junit: a.junit, keep_on_failure: a.keep_on_failure }),
    }
}

/// Applies `f` to each name, printing its result; docker's exit code 1 if
/// any failed.
fn each(names: &[String], f: impl Fn(&str) -> Result<String, EngineError>) -> anyhow::Result<i32> {
    let mut code = 0;
    for n in names {
        match f(n) {
            Ok(s) if s.is_empty() => {}
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("berth: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `each` for removals: with `force`, an object that does not exist is
/// already where the user wants it, as `rm -f` of a missing file is (and
/// docker's `rm -f`, `network rm -f`, `volume rm -f` since 20.10 and 23).
fn remove_each(names: &[String], force: bool, f: impl Fn(&str) -> Result<String, EngineError>) -> anyhow::Result<i32> {
    each(names, |n| match f(n) {
        Err(e) if force && e.is_not_found() => Ok(String::new()),
        r => r,
    })
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
