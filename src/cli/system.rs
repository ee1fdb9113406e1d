//! `berth system ...` (and `berth info`): what the engine holds, and its
//! housekeeping.

use super::args::SystemCmd;
use super::{confirm, table};
use crate::engine::Engine;

pub(super) fn command(e: &Engine, c: SystemCmd) -> anyhow::Result<i32> {
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
            println!("Rootless: {}", i.rootless);
            if i.rootless {
                println!("Rootless Pieces: {}", i.rootless_pieces);
            }
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
        SystemCmd::Check { repair, all_roots } => {
            // Links the kernel is still closing are shown but not counted,
            // and so is what gone roots left, unless --all-roots.
            let (notes, found): (Vec<_>, Vec<_>) = e.check_roots(repair, all_roots)?.into_iter().partition(|f| f.transient || (f.other_root && !all_roots));
            for f in &notes {
                let status = if f.other_root && !all_roots {
                    "  (--all-roots removes it)"
                } else if !repair {
                    ""
                } else if f.repaired {
                    "  [removed]"
                } else {
                    "  [repair failed]"
                };
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

/// `berth serve`: the Docker Engine API in the foreground until interrupted
/// or idle for --time seconds.
pub(super) fn serve(e: Engine, a: &super::args::ServeArgs) -> anyhow::Result<i32> {
    use crate::api::{Listen, ServeOptions, Server};
    let listen = ServeOptions::listen(a.address.as_deref(), &e.paths.run.clone()).map_err(anyhow::Error::msg)?;
    let tls = if a.tlsverify {
        let need = |f: &Option<std::path::PathBuf>, flag: &str| f.clone().ok_or_else(|| anyhow::anyhow!("--tlsverify needs {flag} FILE"));
        Some(crate::api::TlsFiles { ca: need(&a.tlscacert, "--tlscacert")?, cert: need(&a.tlscert, "--tlscert")?, key: need(&a.tlskey, "--tlskey")? })
    } else {
        if a.tlscacert.is_some() || a.tlscert.is_some() || a.tlskey.is_some() {
            anyhow::bail!("--tlscacert, --tlscert and --tlskey take effect with --tlsverify; add it");
        }
        None
    };
    let idle = (a.time > 0).then(|| std::time::Duration::from_secs(a.time));
    let tcp = matches!(listen, Listen::Tcp(_));
    let server = Server::start(std::sync::Arc::new(e), ServeOptions { listen, idle, tls, insecure: a.insecure }).map_err(anyhow::Error::msg)?;
    eprintln!("berth: serving the Docker Engine API on {}{}", server.addr(), if tcp && !a.tlsverify { " (plain TCP)" } else { "" });
    // SIGINT and SIGTERM end the process; the socket file goes with a clean stop only,
    // and a stale one is replaced at the next start.
    server.wait();
    Ok(0)
}
