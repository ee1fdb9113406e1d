//! `berth volume ...`.

use super::args::VolumeCmd;
use super::{confirm, format, parse_kv, table};
use crate::engine::Engine;

pub(super) fn command(e: &Engine, c: VolumeCmd) -> anyhow::Result<i32> {
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
                println!("{}", serde_json::to_string_pretty(&vs.iter().map(|v| format::volume_json(e, v)).collect::<Vec<_>>())?);
            } else {
                print!("{}", table::volumes(&vs));
            }
            Ok(0)
        }
        VolumeCmd::Inspect { volumes } => {
            let mut out = Vec::new();
            for n in &volumes {
                out.push(format::volume_json(e, &e.volume(n)?));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
        VolumeCmd::Rm { volumes, force } => super::remove_each(&volumes, force, |n| e.volume_remove(n).map(|_| n.to_string())),
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

