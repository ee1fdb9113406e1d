//! `berth network ...`: bridges, their members, link emulation and the
//! topology graph.

use anyhow::bail;

use super::args::NetworkCmd;
use super::{confirm, format, parse_kv, table};
use crate::engine::{Engine, EngineError};
use crate::network::NetworkError;

pub(super) fn command(e: &Engine, cmd: NetworkCmd) -> anyhow::Result<i32> {
    match cmd {
        NetworkCmd::Create { subnet, gateway, driver, attachable, opt, label, name } => {
            let labels = parse_kv(&label, "label")?;
            let spec = crate::network::NetworkSpec { name, subnet, gateway, labels };
            let n = match driver.as_str() {
                "bridge" => {
                    if attachable || !opt.is_empty() {
                        bail!("network {}: --attachable and -o are options of overlay networks (-d overlay)", spec.name);
                    }
                    e.network_create(&spec)?
                }
                "overlay" => {
                    let mut o = crate::engine::OverlayOpts { attachable, ..Default::default() };
                    for (k, v) in parse_kv(&opt, "opt")? {
                        let bad = || anyhow::anyhow!("network {}: option {k}={v} takes a number", spec.name);
                        match k.as_str() {
                            "mtu" | "com.docker.network.driver.mtu" => o.mtu = Some(v.parse().map_err(|_| bad())?),
                            "vxlan_port" | "com.docker.network.driver.overlay.vxlan_port" => o.port = Some(v.parse().map_err(|_| bad())?),
                            // docker's encryption is IPsec, which berth does not do.
                            "encrypted" => bail!("network {}: encrypted overlays are not supported (no IPsec); leave out -o encrypted", spec.name),
                            _ => bail!("network {}: unknown overlay option {k} (known: mtu, com.docker.network.driver.overlay.vxlan_port)", spec.name),
                        }
                    }
                    e.overlay_create(&spec, &o)?
                }
                _ => bail!("network driver {driver:?} is not supported: berth networks are bridge or overlay"),
            };
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
                    let scope = if n.is_overlay() { "swarm" } else { "local" };
                    println!("{}", serde_json::json!({"ID": &n.id[..12], "Name": n.name, "Driver": n.driver, "Scope": scope, "Subnet": n.subnet}));
                }
            } else {
                print!("{}", table::networks(&list));
            }
            Ok(0)
        }
        NetworkCmd::Rm { networks, force } => super::remove_each(&networks, force, |n| e.network_remove(n).map(|_| n.to_string())),
        NetworkCmd::Inspect { networks } => {
            let mut all = Vec::new();
            for n in &networks {
                all.push(format::network_json(e, &e.network(n)?));
            }
            println!("{}", serde_json::to_string_pretty(&all)?);
            Ok(0)
        }
        NetworkCmd::Connect { ip, alias, network, container } => {
            e.network_connect(&network, &container, ip.as_deref(), &alias)?;
            Ok(0)
        }
        NetworkCmd::Disconnect { force, network, container } => {
            match e.network_disconnect(&network, &container) {
                // Already where the user wants it (a disconnect cut short and repaired, say).
                Err(EngineError::Network(NetworkError::NotConnected(..))) if force => Ok(0),
                r => r.map(|_| 0).map_err(Into::into),
            }
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
