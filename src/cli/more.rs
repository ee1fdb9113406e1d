//! The docker commands that act on one container's filesystem, limits and
//! streams: diff, export, commit, update, attach, container prune; and
//! `info` and `version` at the top level.

use std::io::Write;

use clap::Args;

use crate::engine::Engine;

#[derive(Args)]
pub struct ExportArgs {
    /// Write to a file instead of standard output
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    pub container: String,
}

#[derive(Args)]
pub struct CommitArgs {
    /// Apply a Dockerfile instruction to the image's config (CMD, ENTRYPOINT, ENV, ...)
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Author
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Pause the container while committing
    #[arg(short = 'p', long, default_value = "true", action = clap::ArgAction::Set)]
    pub pause: bool,
    pub container: String,
    /// REPO[:TAG]
    pub repository: Option<String>,
}

#[derive(Args)]
pub struct UpdateArgs {
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    #[arg(long)]
    pub cpus: Option<f64>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct AttachArgs {
    /// Do not attach standard input
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy received signals to the container (the monitor already gets
    /// the terminal's; accepted for docker's command lines)
    #[arg(long = "sig-proxy", default_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    pub container: String,
}

#[derive(Args)]
pub struct EventsArgs {
    /// Show events since this time: a Unix time, an RFC 3339 time, or a duration before now (10m)
    #[arg(long)]
    pub since: Option<String>,
    /// Stop at this time (the same forms); without it, follow until interrupted
    #[arg(long)]
    pub until: Option<String>,
    /// type=container|image|network|volume|service, event=start, container=NAME, label=K[=V], ...
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// json: one JSON object per line, as docker's
    #[arg(long)]
    pub format: Option<String>,
}

pub fn events(e: &Engine, a: &EventsArgs) -> anyhow::Result<i32> {
    let since = a.since.as_deref().map(crate::events::parse_time).transpose().map_err(|m| anyhow::anyhow!("--since: {m}"))?;
    let until = a.until.as_deref().map(crate::events::parse_time).transpose().map_err(|m| anyhow::anyhow!("--until: {m}"))?;
    let mut f = crate::events::Filter::default();
    for x in &a.filter {
        f.add(x).map_err(|m| anyhow::anyhow!("--filter: {m}"))?;
    }
    let json = match a.format.as_deref() {
        None => false,
        Some("json") | Some("{{json .}}") => true,
        Some(other) => anyhow::bail!("--format {other:?}: events print as lines or as json"),
    };
    let show = |ev: &crate::events::Event| -> bool {
        let mut out = std::io::stdout().lock();
        let text = if json { crate::events::json(ev).to_string() } else { crate::events::line(ev) };
        writeln!(out, "{text}").and_then(|_| out.flush()).is_ok()
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    if since.is_some() {
        for ev in e.events(since, until.map(|u| u.min(now)), &f) {
            if !show(&ev) {
                return Ok(0);
            }
        }
    }
    if until.is_none_or(|u| u > now) {
        e.follow_events(until, &f, show);
    }
    Ok(0)
}

#[derive(Args)]
pub struct PruneArgs {
    #[arg(short = 'f', long)]
    pub force: bool,
    /// label=K[=V], label!=..., until=TIME (a duration such as 24h, or a time)
    #[arg(long)]
    pub filter: Vec<String>,
}

pub fn version(e: Option<&Engine>, format: Option<&str>) -> anyhow::Result<i32> {
    let v = env!("CARGO_PKG_VERSION");
    let arch = std::env::consts::ARCH;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let (cg, root) = match e.map(|e| e.info()).transpose()? {
        Some(i) => (format!("{} ({})", i.cgroup_version, i.cgroup_driver), i.root_dir),
        None => (String::new(), String::new()),
    };
    if format == Some("json") {
        println!(
            "{}",
            serde_json::json!({
                "Client": { "Version": v, "Os": "linux", "Arch": arch },
                "Server": { "Version": v, "Os": "linux", "Arch": arch, "KernelVersion": kernel, "CgroupVersion": cg, "RootDir": root },
            })
        );
        return Ok(0);
    }
    println!("Client:\n Version:           {v}\n OS/Arch:           linux/{arch}\n");
    println!("Server: berth\n Engine:\n  Version:          {v}\n  OS/Arch:          linux/{arch}\n  Kernel Version:   {kernel}\n  Cgroup:           {cg}\n  Root Dir:         {root}");
    Ok(0)
}

pub fn diff(e: &Engine, container: &str) -> anyhow::Result<i32> {
    let mut out = std::io::stdout().lock();
    for c in e.diff(container)? {
        writeln!(out, "{} {}", c.kind, c.path)?;
    }
    Ok(0)
}

pub fn export(e: &Engine, a: &ExportArgs) -> anyhow::Result<i32> {
    match &a.output {
        Some(path) => {
            // Into a temporary name first: a failed export leaves no half file.
            let tmp = format!("{path}.berth-partial");
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|err| anyhow::anyhow!("export: creating {path}: {err}"))?);
            let r = e.export(&a.container, &mut f).map_err(anyhow::Error::from).and_then(|_| f.flush().map_err(anyhow::Error::from));
            drop(f);
            match r {
                Ok(()) => std::fs::rename(&tmp, path)?,
                Err(err) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(err);
                }
            }
        }
        None => {
            if crate::sys::pty::is_tty(1) {
                anyhow::bail!("export: refusing to write a tar archive to a terminal; redirect it (berth export {} > rootfs.tar) or use -o FILE", a.container);
            }
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            e.export(&a.container, &mut out)?;
            out.flush()?;
        }
    }
    Ok(0)
}

pub fn commit(e: &Engine, a: CommitArgs) -> anyhow::Result<i32> {
    let o = crate::changes::CommitOptions { tag: a.repository, changes: a.change, message: a.message.unwrap_or_default(), author: a.author.unwrap_or_default(), pause: a.pause };
    let img = e.commit(&a.container, &o)?;
    println!("{}", img.id);
    Ok(0)
}

pub fn update(e: &Engine, a: UpdateArgs) -> anyhow::Result<i32> {
    let u = crate::container::Update {
        memory: a.memory.as_deref().map(crate::parse::memory).transpose().map_err(anyhow::Error::msg)?,
        cpus: a.cpus,
        pids_limit: a.pids_limit,
        restart: a.restart.as_deref().map(crate::container::RestartPolicy::parse).transpose().map_err(anyhow::Error::msg)?,
    };
    if u.memory.is_none() && u.cpus.is_none() && u.pids_limit.is_none() && u.restart.is_none() {
        anyhow::bail!("update: nothing to change; give --memory, --cpus, --pids-limit or --restart");
    }
    let mut code = 0;
    for c in &a.containers {
        match e.update(c, &u) {
            Ok(_) => println!("{c}"),
            Err(err) => {
                eprintln!("berth: {err}");
                code = 125;
            }
        }
    }
    Ok(code)
}

pub fn attach(e: &Engine, a: &AttachArgs) -> anyhow::Result<i32> {
    Ok(e.attach(&a.container, !a.no_stdin)?.unwrap_or(0))
}

pub fn container_prune(e: &Engine, a: PruneArgs, confirm: impl Fn(&str) -> anyhow::Result<bool>) -> anyhow::Result<i32> {
    let mut filters = Vec::new();
    for f in &a.filter {
        let (k, v) = f.split_once('=').ok_or_else(|| anyhow::anyhow!("invalid filter {f:?}: expected label=KEY[=VALUE], label!=KEY[=VALUE] or until=TIME"))?;
        if !matches!(k, "label" | "label!" | "until") {
            anyhow::bail!("invalid filter {k:?}: container prune takes label, label! and until");
        }
        filters.push((k.to_string(), v.to_string()));
    }
    if !a.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(0);
    }
    let (ids, bytes) = e.container_prune(&filters)?;
    if !ids.is_empty() {
        println!("Deleted Containers:");
        for id in &ids {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", crate::render::human_size(bytes));
    Ok(0)
}
