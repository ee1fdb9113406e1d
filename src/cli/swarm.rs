//! `berth swarm ...` and `berth node ...`: swarm mode (docker's commands),
//! and `berth service ...` on a swarm node.

use std::net::Ipv4Addr;

use clap::Subcommand;

use super::service::ServiceCmd;
use crate::cluster::schedule::{Availability, Mode, Role};
use crate::engine::Engine;

#[derive(Subcommand)]
pub(super) enum SwarmCmd {
    /// Make a swarm with this node as its first manager
    Init {
        /// The address other nodes reach this one at (its underlay address)
        #[arg(long = "advertise-addr")]
        advertise_addr: Ipv4Addr,
        /// Use this etcd (http://A:2379,http://B:2379) instead of starting a member here
        #[arg(long)]
        etcd: Option<String>,
        /// The node's name (default: the hostname)
        #[arg(long)]
        name: Option<String>,
        /// The UDP port overlays' VXLAN traffic uses between nodes (default 4789)
        #[arg(long = "data-path-port")]
        data_path_port: Option<u16>,
    },
    /// Join a swarm as a worker or a manager (the token says which)
    Join {
        #[arg(long)]
        token: String,
        /// This node's address (default: the manager's route's source)
        #[arg(long = "advertise-addr")]
        advertise_addr: Option<Ipv4Addr>,
        #[arg(long)]
        name: Option<String>,
        /// A manager's address (its etcd at port 2379)
        manager: String,
    },
    /// Print the token that joins a node as worker or manager
    JoinToken { role: String },
    /// Leave the swarm (a manager needs --force)
    Leave {
        #[arg(short = 'f', long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum NodeCmd {
    #[command(alias = "list")]
    Ls,
    Inspect { nodes: Vec<String> },
    Update {
        #[arg(long)]
        availability: Option<String>,
        #[arg(long = "label-add")]
        label_add: Vec<String>,
        #[arg(long = "label-rm")]
        label_rm: Vec<String>,
        node: String,
    },
    #[command(alias = "remove")]
    Rm {
        #[arg(short = 'f', long)]
        force: bool,
        nodes: Vec<String>,
    },
}

pub(super) fn swarm(e: &Engine, c: SwarmCmd) -> anyhow::Result<i32> {
    match c {
        SwarmCmd::Init { advertise_addr, etcd, name, data_path_port } => {
            let urls = etcd.map(|u| u.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect());
            let c = e.swarm_init(advertise_addr, name.as_deref(), urls, data_path_port)?;
            let m = e.swarm().expect("just joined");
            println!("Swarm initialized: current node ({}) is now a manager.", m.name);
            println!();
            println!("To add a worker to this swarm, run the following command:");
            println!();
            println!("    berth swarm join --token {} {advertise_addr}", c.worker_token);
        }
        SwarmCmd::Join { token, advertise_addr, name, manager } => {
            let addr = match advertise_addr {
                Some(a) => a,
                None => source_toward(&manager)?,
            };
            let m = e.swarm_join(&token, &manager, addr, name.as_deref())?;
            println!("This node joined a swarm as a {}.", m.role.as_str());
        }
        SwarmCmd::JoinToken { role } => {
            let role = match role.as_str() {
                "worker" => Role::Worker,
                "manager" => Role::Manager,
                r => anyhow::bail!("invalid role {r:?}: use worker or manager"),
            };
            println!("{}", e.swarm_join_token(role)?);
        }
        SwarmCmd::Leave { force } => {
            e.swarm_leave(force)?;
            println!("Node left the swarm.");
        }
    }
    Ok(0)
}

/// The local address the kernel would use toward the manager.
fn source_toward(manager: &str) -> anyhow::Result<Ipv4Addr> {
    let host = manager.trim_start_matches("http://").split(':').next().unwrap_or("");
    let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
    s.connect((host, 2379)).map_err(|err| anyhow::anyhow!("cannot find a route to the manager {host}: {err}; give --advertise-addr"))?;
    match s.local_addr()?.ip() {
        std::net::IpAddr::V4(a) => Ok(a),
        _ => anyhow::bail!("no IPv4 address toward {host}; give --advertise-addr"),
    }
}

pub(super) fn node(e: &Engine, c: NodeCmd) -> anyhow::Result<i32> {
    match c {
        NodeCmd::Ls => {
            let me = e.swarm().map(|m| m.node).unwrap_or_default();
            let rows: Vec<Vec<String>> = e
                .nodes()?
                .into_iter()
                .map(|n| {
                    let star = if n.record.id == me { " *" } else { "" };
                    let status = if n.leader { "Leader" } else if n.record.role == Role::Manager { "Reachable" } else { "" };
                    vec![format!("{}{star}", &n.record.id[..12]), n.record.name.clone(), cap(n.state()), cap(n.record.availability.as_str()), status.to_string(), n.record.addr.map(|a| a.to_string()).unwrap_or_default(), n.tasks.to_string()]
                })
                .collect();
            print!("{}", crate::render::render(&["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ADDRESS", "TASKS"], &rows));
        }
        NodeCmd::Inspect { nodes } => {
            let mut out = Vec::new();
            for n in &nodes {
                let n = e.node(n)?;
                out.push(serde_json::json!({
                    "ID": n.record.id, "Description": {"Hostname": n.record.name},
                    "Spec": {"Role": n.record.role.as_str(), "Availability": n.record.availability.as_str(), "Labels": n.record.labels},
                    "Status": {"State": n.state(), "Addr": n.record.addr},
                    "ManagerStatus": if n.record.role == Role::Manager { serde_json::json!({"Leader": n.leader}) } else { serde_json::Value::Null },
                    "Tasks": n.tasks, "CreatedAt": n.record.joined,
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        NodeCmd::Update { availability, label_add, label_rm, node } => {
            let a = availability.as_deref().map(Availability::parse).transpose().map_err(anyhow::Error::msg)?;
            let add: Vec<(String, String)> = label_add.iter().map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap_or((l.clone(), String::new()))).collect();
            let n = e.node_update(&node, a, &add, &label_rm)?;
            println!("{}", n.record.name);
        }
        NodeCmd::Rm { force, nodes } => {
            for n in &nodes {
                println!("{}", e.node_rm(n, force)?.name);
            }
        }
    }
    Ok(0)
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// `berth service ...` on a swarm node.
/// `service ls`'s MODE and REPLICAS ("running/wanted") of a swarm service.
pub(super) fn mode_cells(s: &crate::cluster::model::ClusterService, all: &[crate::engine::TaskInfo]) -> (String, String) {
    let tasks: Vec<&crate::engine::TaskInfo> = all.iter().filter(|t| t.task.service == s.id).collect();
    let running = tasks.iter().filter(|t| t.status.as_ref().is_some_and(|x| x.state == "running")).count();
    let (mode, want) = match s.mode {
        Mode::Replicated(n) => ("replicated", n as usize),
        Mode::Global => ("global", tasks.len()),
    };
    (mode.into(), format!("{running}/{want}"))
}

/// One line of `service ps` (and `stack ps`) on a swarm.
pub(super) fn task_row(t: &crate::engine::TaskInfo, service: &str) -> Vec<String> {
    let (state, err) = t.shown_state();
    vec![t.task.id[..12].to_string(), t.task.container_name(service), t.task.image.clone(), t.node_name.clone(), state, err]
}

pub(super) fn service(e: &Engine, c: ServiceCmd) -> anyhow::Result<i32> {
    match c {
        ServiceCmd::Create(a) => {
            let (mode, cs) = a.placement()?;
            let s = e.swarm_service_create(&a.to_spec()?, mode, cs)?;
            println!("{}", s.id);
        }
        ServiceCmd::Ls { quiet } => {
            let list = e.swarm_services()?;
            let all = if quiet { Vec::new() } else { e.swarm_tasks()? };
            if quiet {
                for s in &list {
                    println!("{}", &s.id[..12]);
                }
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    let (mode, replicas) = mode_cells(s, &all);
                    vec![s.id[..12].to_string(), s.name.clone(), mode, replicas, s.spec.template.image.clone()]
                })
                .collect();
            print!("{}", crate::render::render(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE"], &rows));
        }
        ServiceCmd::Ps { service } => {
            let name = e.swarm_service(&service)?.name;
            let rows: Vec<Vec<String>> = e
                .swarm_service_tasks(&service)?
                .into_iter()
                .map(|t| task_row(&t, &name))
                .collect();
            print!("{}", crate::render::render(&["ID", "NAME", "IMAGE", "NODE", "STATE", "ERROR"], &rows));
        }
        ServiceCmd::Scale { pairs } => {
            for p in &pairs {
                let (name, n) = crate::service::parse_scale(p).map_err(anyhow::Error::msg)?;
                e.swarm_service_scale(&name, n)?;
                println!("{name} scaled to {n}");
            }
        }
        ServiceCmd::Rm { services } => {
            for k in &services {
                println!("{}", e.swarm_service_rm(k)?.name);
            }
        }
        ServiceCmd::Inspect { services } => {
            let mut out = Vec::new();
            for k in &services {
                let s = e.swarm_service(k)?;
                let st = s.update_status.clone().unwrap_or_default();
                out.push(serde_json::json!({
                    "ID": s.id,
                    "Spec": {"Name": s.name, "Mode": s.mode, "Placement": {"Constraints": s.constraints.iter().map(|c| c.to_string()).collect::<Vec<_>>()}, "TaskTemplate": {"ContainerSpec": {"Image": s.spec.template.image}}, "Networks": s.network.iter().map(|n| serde_json::json!({"Target": n})).collect::<Vec<_>>()},
                    "Endpoint": {"VirtualIPs": s.vip.iter().map(|v| serde_json::json!({"NetworkID": s.network, "Addr": v.to_string()})).collect::<Vec<_>>(), "Ports": s.publish.iter().map(|(p, t, proto)| serde_json::json!({"PublishedPort": p, "TargetPort": t, "Protocol": proto, "PublishMode": "ingress"})).collect::<Vec<_>>()},
                    "UpdateStatus": {"State": st.state, "Message": st.message},
                    "Version": s.version
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        ServiceCmd::Update(a) => {
            let u = a.to_update(|| Ok(e.swarm_service(a.service())?.spec.template.env))?;
            println!("{}", e.swarm_service_update(a.service(), &u)?.name);
        }
        ServiceCmd::Rollback { service } => {
            let s = e.swarm_service_update(&service, &crate::service::ops::ServiceUpdate { rollback: true, ..Default::default() })?;
            println!("{}: rolled back to {}", s.name, s.spec.template.image);
        }
    }
    Ok(0)
}
