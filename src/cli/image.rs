//! The image and registry commands: images, rmi, import, history, tag,
//! build, pull, push, login, logout, search, save, load and image prune, at
//! the top level and under `berth image`.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, bail};

use super::args::{BuildArgs, ImageCmd, ImagesArgs, ImportArgs, LoadArgs, LoginArgs, PullArgs, RmiArgs, SaveArgs, SearchArgs};
use super::{confirm, container, format, table};
use crate::engine::Engine;

/// `berth image X`: the same handlers as the top-level `berth X`. Prune
/// asks first and opens the engine only on a yes, so it gets the opener.
pub(super) fn command(engine: impl FnOnce() -> anyhow::Result<Engine>, c: ImageCmd) -> anyhow::Result<i32> {
    if let ImageCmd::Prune { all, force } = c {
        return prune(engine, all, force);
    }
    let e = engine()?;
    match c {
        ImageCmd::Ls(a) => images(&e, &a),
        ImageCmd::Rm(a) => rmi(&e, &a),
        ImageCmd::Inspect(a) => container::inspect(&e, &a, true),
        ImageCmd::Import(a) => import(&e, &a),
        ImageCmd::History { image, quiet, format } => history(&e, &image, quiet, format.as_deref()),
        ImageCmd::Tag { source, target } => tag(&e, &source, &target),
        ImageCmd::Save(a) => save(&e, &a),
        ImageCmd::Load(a) => load(&e, &a),
        ImageCmd::Pull(a) => pull(&e, &a),
        ImageCmd::Push(a) => push(&e, &a),
        ImageCmd::Prune { .. } => unreachable!("answered above"),
    }
}

fn prune(engine: impl FnOnce() -> anyhow::Result<Engine>, all: bool, force: bool) -> anyhow::Result<i32> {
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
    Ok(0)
}

pub(super) fn images(e: &Engine, a: &ImagesArgs) -> anyhow::Result<i32> {
    let out = &mut std::io::stdout();
    let list = e.images_all(a.all)?;
    if a.quiet {
        for i in &list {
            writeln!(out, "{}", i.short_id())?;
        }
    } else if a.format.as_deref() == Some("json") {
        for i in &list {
            writeln!(out, "{}", format::images_json(i))?;
        }
    } else {
        write!(out, "{}", table::images(&list))?;
    }
    Ok(0)
}

pub(super) fn rmi(e: &Engine, a: &RmiArgs) -> anyhow::Result<i32> {
    if a.images.is_empty() {
        bail!("\"rmi\" requires at least 1 argument: berth rmi [-f] IMAGE...");
    }
    let out = &mut std::io::stdout();
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

pub(super) fn import(e: &Engine, a: &ImportArgs) -> anyhow::Result<i32> {
    let img = e.import_file(&a.file, a.reference.as_deref(), &a.change)?;
    writeln!(std::io::stdout(), "{}", img.id)?;
    Ok(0)
}

pub(super) fn history(e: &Engine, name: &str, quiet: bool, format: Option<&str>) -> anyhow::Result<i32> {
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

pub(super) fn tag(e: &Engine, source: &str, target: &str) -> anyhow::Result<i32> {
    e.tag(source, target)?;
    Ok(0)
}

pub(super) fn build(e: &Engine, a: BuildArgs) -> anyhow::Result<i32> {
    let mut args = BTreeMap::new();
    for kv in &a.build_arg {
        match kv.split_once('=') {
            Some((k, v)) => args.insert(k.to_string(), v.to_string()),
            // `--build-arg K` takes K from the environment, as docker does.
            None => args.insert(kv.clone(), std::env::var(kv).unwrap_or_default()),
        };
    }
    let opts = crate::build::builder::BuildOptions { context: a.context, file: a.file, tag: a.tag, args, target: a.target, no_cache: a.no_cache, show_output: !a.quiet, log: None, labels: Default::default(), credentials: Default::default(), pull: a.pull };
    let img = e.build(&opts)?;
    if a.quiet {
        writeln!(std::io::stdout(), "{}", img.id)?;
    }
    Ok(0)
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

pub(super) fn pull(e: &Engine, a: &PullArgs) -> anyhow::Result<i32> {
    let img = e.pull(&a.image, progress(a.quiet))?;
    let out = &mut std::io::stdout();
    if a.quiet {
        writeln!(out, "{}", a.image)?;
    } else {
        writeln!(out, "{}", img.id)?;
    }
    Ok(0)
}

pub(super) fn push(e: &Engine, a: &PullArgs) -> anyhow::Result<i32> {
    let d = e.push(&a.image, progress(a.quiet))?;
    if a.quiet {
        writeln!(std::io::stdout(), "{d}")?;
    }
    Ok(0)
}

pub(super) fn login(e: &Engine, a: LoginArgs) -> anyhow::Result<i32> {
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
    writeln!(std::io::stdout(), "Login Succeeded")?;
    Ok(0)
}

pub(super) fn logout(e: &Engine, server: &str) -> anyhow::Result<i32> {
    let out = &mut std::io::stdout();
    if e.logout(server)? {
        writeln!(out, "Removing login credentials for {server}")?;
    } else {
        writeln!(out, "Not logged in to {server}")?;
    }
    Ok(0)
}

pub(super) fn search(e: &Engine, a: SearchArgs) -> anyhow::Result<i32> {
    let registry = a.registry.or_else(|| std::env::var("BERTH_REGISTRY").ok()).unwrap_or_else(|| "docker.io".into());
    let found = e.search(&registry, &a.term)?;
    let rows: Vec<Vec<String>> = found
        .into_iter()
        .map(|f| vec![f.name, f.description.chars().take(45).collect(), f.stars.to_string(), if f.official { "[OK]".into() } else { String::new() }])
        .collect();
    write!(std::io::stdout(), "{}", table::render(&["NAME", "DESCRIPTION", "STARS", "OFFICIAL"], &rows))?;
    Ok(0)
}

pub(super) fn save(e: &Engine, a: &SaveArgs) -> anyhow::Result<i32> {
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

pub(super) fn load(e: &Engine, a: &LoadArgs) -> anyhow::Result<i32> {
    let lines = match &a.input {
        Some(p) => e.load(&mut std::io::BufReader::new(std::fs::File::open(p).with_context(|| format!("opening {p}"))?))?,
        None => e.load(&mut std::io::stdin().lock())?,
    };
    if !a.quiet {
        let out = &mut std::io::stdout();
        for l in lines {
            writeln!(out, "{l}")?;
        }
    }
    Ok(0)
}
