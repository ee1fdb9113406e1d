//! `berth lab`: hosts for multi-host labs on one machine (network
//! namespaces with their own berth root on an underlay bridge), as
//! `lab::hosts` makes them from a script.

use clap::Subcommand;

use crate::engine::Engine;

#[derive(Subcommand)]
pub(super) enum LabCmd {
    /// Make N hosts for lab NAME: NAME-h0.. at 10.99.0.1.. on the lab's underlay
    Hosts {
        name: String,
        n: u32,
        /// An image of this root to load into every host (repeatable)
        #[arg(long = "image")]
        images: Vec<String>,
        /// The hosts form a swarm: the first inits it, two more join as managers (3 etcd members), the rest as workers
        #[arg(long)]
        swarm: bool,
    },
    /// Labs with hosts, or the hosts of one
    #[command(alias = "list")]
    Ls { name: Option<String> },
    /// Run a command in a host (`berth ...` runs berth with that host's root)
    Exec {
        name: String,
        host: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
    /// Remove the lab's hosts and everything in them
    Down { name: String },
}

pub(super) fn command(e: &Engine, c: LabCmd) -> anyhow::Result<i32> {
    match c {
        LabCmd::Hosts { name, n, images, swarm } => {
            for h in e.lab_hosts_create(&name, n, &images, swarm)? {
                println!("{}\t{}", h.name, h.addr);
            }
        }
        LabCmd::Ls { name: None } => {
            for l in e.labs() {
                println!("{l}\t{} hosts", e.lab_hosts(&l).len());
            }
        }
        LabCmd::Ls { name: Some(l) } => {
            let rows: Vec<Vec<String>> = e.lab_hosts(&l).into_iter().map(|h| vec![h.name, h.addr.to_string(), h.root.display().to_string()]).collect();
            print!("{}", crate::render::render(&["HOST", "ADDRESS", "ROOT"], &rows));
        }
        LabCmd::Exec { name, host, cmd } => {
            let h = e.lab_host(&name, &host)?;
            // Inherits the terminal: an interactive command works as on the host.
            let st = h.command(&cmd).map_err(|e| anyhow::anyhow!("host {}: {e}", h.name))?.status().map_err(|err| anyhow::anyhow!("host {}: running {}: {err}", h.name, cmd[0]))?;
            return Ok(st.code().unwrap_or(1));
        }
        LabCmd::Down { name } => {
            let n = e.lab_down(&name)?;
            println!("lab {name}: {n} host(s) removed");
        }
    }
    Ok(0)
}
