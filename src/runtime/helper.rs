//! The commands of berth's own processes, which enter containers: `monitor
//! ID` (see [`super::monitor`]) and `enter`, the exec helper. The small
//! `berth-monitor` binary (src/bin) answers only these, so a process that
//! lives as long as its container, or runs in one, maps a few MB of code
//! instead of berth's 30 (no Rhai, clap, tokio or registry client). berth
//! itself answers them too, for an install without the small binary.
//!
//! `enter` takes a container already resolved by the client: its init's
//! pid, cgroup and bundle, so it opens no store and parses no command line
//! beyond its own short one:
//!
//! ```text
//! enter PID CGROUP BUNDLE [-i] [-t] [--privileged] [-e K=V]... [-w DIR] [-u USER] -- ARG...
//! ```

use super::exec::ExecOptions;
use super::EXIT_ENGINE;

/// Runs the command in `args` (`args[1]` names it); the process's exit code.
pub fn main(args: &[String]) -> i32 {
    match args.get(1).map(String::as_str) {
        Some("monitor") => {
            let paths = crate::store::Paths::from_env(None);
            super::monitor::main(paths, args.get(2).map(String::as_str).unwrap_or(""), super::monitor::inherited_socket())
        }
        Some("enter") => match parse_enter(&args[2..]) {
            Ok(e) => enter(e),
            Err(m) => {
                eprintln!("berth: exec: {m}");
                EXIT_ENGINE
            }
        },
        _ => {
            eprintln!("berth-monitor: berth runs this for its containers; use `berth` instead");
            EXIT_ENGINE
        }
    }
}

/// The arguments of `enter` for a container and the options.
pub fn enter_args(pid: i32, cgroup: &str, bundle: &std::path::Path, o: &ExecOptions) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec!["enter".into(), pid.to_string().into(), cgroup.into(), bundle.into()];
    let mut flag = |on: bool, f: &str| {
        if on {
            v.push(f.into());
        }
    };
    flag(o.interactive, "-i");
    flag(o.tty, "-t");
    flag(o.privileged, "--privileged");
    for e in &o.env {
        v.push("-e".into());
        v.push(e.into());
    }
    if let Some(w) = &o.workdir {
        v.push("-w".into());
        v.push(w.into());
    }
    if let Some(u) = &o.user {
        v.push("-u".into());
        v.push(u.into());
    }
    v.push("--".into());
    v.extend(o.args.iter().map(Into::into));
    v
}

struct Enter {
    pid: i32,
    cgroup: String,
    bundle: std::path::PathBuf,
    opts: ExecOptions,
}

fn parse_enter(a: &[String]) -> Result<Enter, String> {
    let [pid, cgroup, bundle, rest @ ..] = a else { return Err("enter: expected PID CGROUP BUNDLE".into()) };
    let pid = pid.parse().map_err(|_| format!("enter: {pid:?} is not a pid"))?;
    let mut opts = ExecOptions { args: Vec::new(), env: Vec::new(), workdir: None, user: None, tty: false, interactive: false, privileged: false };
    let mut it = rest.iter();
    while let Some(f) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("enter: {f} needs a value"));
        match f.as_str() {
            "-i" => opts.interactive = true,
            "-t" => opts.tty = true,
            "--privileged" => opts.privileged = true,
            "-e" => opts.env.push(value()?),
            "-w" => opts.workdir = Some(value()?),
            "-u" => opts.user = Some(value()?),
            "--" => {
                opts.args = it.cloned().collect();
                break;
            }
            _ => return Err(format!("enter: unknown option {f}")),
        }
    }
    if opts.args.is_empty() {
        return Err("enter: no command given".into());
    }
    Ok(Enter { pid, cgroup: cgroup.clone(), bundle: bundle.into(), opts })
}

fn enter(e: Enter) -> i32 {
    let spec = match super::load_spec(&e.bundle) {
        Ok(s) => s,
        Err(x) => {
            eprintln!("berth: exec: reading the container's config.json: {x}");
            return EXIT_ENGINE;
        }
    };
    match super::exec::exec(&spec, e.pid, &e.cgroup, e.opts) {
        Ok(code) => code,
        Err(x) => {
            eprintln!("berth: {}", x.msg);
            x.code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enter_arguments_round_trip() {
        let o = ExecOptions {
            args: vec!["sh".into(), "-c".into(), "echo -- -i".into()],
            env: vec!["A=1".into(), "B=-e".into()],
            workdir: Some("/tmp".into()),
            user: Some("1000:1000".into()),
            tty: true,
            interactive: false,
            privileged: true,
        };
        let a: Vec<String> = enter_args(42, "/berth/c1", std::path::Path::new("/var/lib/berth/containers/c1"), &o).into_iter().map(|s| s.into_string().unwrap()).collect();
        let e = parse_enter(&a[1..]).unwrap();
        assert_eq!((e.pid, e.cgroup.as_str(), e.bundle.to_str().unwrap()), (42, "/berth/c1", "/var/lib/berth/containers/c1"));
        assert_eq!(e.opts.args, o.args);
        assert_eq!(e.opts.env, o.env);
        assert_eq!((e.opts.workdir, e.opts.user), (o.workdir, o.user));
        assert!(e.opts.tty && !e.opts.interactive && e.opts.privileged);
        assert!(parse_enter(&["x".into(), "c".into(), "b".into(), "--".into(), "true".into()]).is_err_and(|m| m.contains("not a pid")));
        assert!(parse_enter(&["1".into(), "c".into(), "b".into()]).is_err_and(|m| m.contains("no command")));
    }
}

/// Logging for the small processes: `LEVEL target: message k=v` lines to
/// stderr (the monitor's is monitor.log) at the most verbose level that
/// `BERTH_LOG` names, warn by default. Not tracing-subscriber's
/// formatter and filter: with their regex engine they were half of the
/// code a monitor touched. A failed write is dropped, never a panic (a
/// full disk must not take a monitor down).
pub fn init_log() {
    let spec = std::env::var("BERTH_LOG").unwrap_or_default();
    let max = spec
        .split([',', '='])
        .filter_map(|w| w.trim().parse::<tracing::Level>().ok())
        .max()
        .unwrap_or(tracing::Level::WARN);
    let _ = tracing::subscriber::set_global_default(Stderr { max });
}

struct Stderr {
    max: tracing::Level,
}

/// An event's message and fields as one line.
struct Line(String);

impl tracing::field::Visit for Line {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = if f.name() == "message" { write!(self.0, " {v:?}") } else { write!(self.0, " {}={v:?}", f.name()) };
    }
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        use std::fmt::Write;
        let _ = if f.name() == "message" { write!(self.0, " {v}") } else { write!(self.0, " {}={v:?}", f.name()) };
    }
}

impl tracing::Subscriber for Stderr {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= self.max
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(self.max))
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        use std::io::Write;
        let m = e.metadata();
        let mut line = Line(format!("{} {:>5} {}:", crate::store::now_rfc3339(), m.level(), m.target()));
        e.record(&mut line);
        line.0.push('\n');
        let _ = std::io::stderr().write_all(line.0.as_bytes());
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[cfg(test)]
mod log_tests {
    #[test]
    fn the_most_verbose_level_named_wins() {
        let level = |s: &str| s.split([',', '=']).filter_map(|w| w.trim().parse::<tracing::Level>().ok()).max();
        assert_eq!(level("berth=debug,info"), Some(tracing::Level::DEBUG));
        assert_eq!(level("warn"), Some(tracing::Level::WARN));
        assert_eq!(level(""), None);
    }
}
