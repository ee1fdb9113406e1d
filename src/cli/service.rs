//! `berth service ...`: docker's swarm service commands, without a swarm.

use clap::Subcommand;

use super::table;
use crate::engine::Engine;
use crate::service::ops::ServiceUpdate;
use crate::service::{ServiceSpec, UpdateConfig};

#[derive(Subcommand)]
pub enum ServiceCmd {
    /// Create a service: replicas NAME.1 ... NAME.N behind one virtual IP
    Create(Box<CreateArgs>),
    /// List services
    #[command(alias = "list")]
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// List a service's replicas
    Ps { service: String },
    /// Details of services as JSON
    Inspect { services: Vec<String> },
    /// Set replica counts: NAME=N ...
    Scale {
        #[arg(required = true)]
        pairs: Vec<String>,
    },
    /// Rolling update of a service's replicas
    Update(UpdateArgs),
    /// Roll a service back to its spec before the last update
    Rollback { service: String },
    /// Remove services and their replicas
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        services: Vec<String>,
    },
}

#[derive(clap::Args)]
pub struct CreateArgs {
    #[arg(long)]
    name: String,
    /// In a swarm: where tasks may run (node.labels.K==V, node.role==manager, node.hostname!=H; repeatable)
    #[arg(long = "constraint")]
    constraint: Vec<String>,
    /// In a swarm: replicated (the default) or global (one task per node)
    #[arg(long, default_value = "replicated")]
    mode: String,
    #[arg(long, default_value_t = 1)]
    replicas: u32,
    /// Publish a port on the service: [IP:]HOST:CONTAINER[/udp]
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    #[arg(long = "network", alias = "net")]
    network: Option<String>,
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    #[arg(short = 'l', long = "label")]
    label: Vec<String>,
    /// Label for the replicas (containers)
    #[arg(long = "container-label")]
    container_label: Vec<String>,
    #[arg(long = "health-cmd")]
    health_cmd: Option<String>,
    #[arg(long = "health-interval")]
    health_interval: Option<String>,
    #[arg(long = "health-retries")]
    health_retries: Option<u32>,
    #[arg(long = "update-parallelism", default_value_t = 1)]
    update_parallelism: u32,
    #[arg(long = "update-delay")]
    update_delay: Option<String>,
    /// any (the default: replaced whenever it stops) | on-failure[:N] | none (docker's names; berth's no and always work too)
    #[arg(long = "restart-condition")]
    restart: Option<String>,
    #[arg(short = 'm', long)]
    memory: Option<String>,
    #[arg(long)]
    cpus: Option<f64>,
    /// Time a leaving replica gets between its stop signal and SIGKILL (default 10s)
    #[arg(long = "stop-grace-period")]
    stop_grace_period: Option<String>,
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    #[arg(required = true, trailing_var_arg = true, num_args = 1..)]
    image_and_cmd: Vec<String>,
}

#[derive(clap::Args)]
pub struct UpdateArgs {
    #[arg(long)]
    image: Option<String>,
    #[arg(long = "env-add")]
    env: Vec<String>,
    #[arg(long = "update-parallelism")]
    update_parallelism: Option<u32>,
    #[arg(long = "update-delay")]
    update_delay: Option<String>,
    /// How long each new replica must keep serving before the next is replaced; default 2s
    #[arg(long = "update-monitor")]
    update_monitor: Option<String>,
    /// Go back to the image, command and environment before the last update
    #[arg(long)]
    rollback: bool,
    service: String,
}

impl UpdateArgs {
    pub(super) fn service(&self) -> &str {
        &self.service
    }

    /// The update asked for; `env_now` gives the environment --env-add adds to.
    pub(super) fn to_update(&self, env_now: impl FnOnce() -> anyhow::Result<Vec<String>>) -> anyhow::Result<ServiceUpdate> {
        Ok(ServiceUpdate {
            image: self.image.clone(),
            env: if self.env.is_empty() {
                None
            } else {
                let mut env = env_now()?;
                env.extend(self.env.iter().cloned());
                Some(env)
            },
            parallelism: self.update_parallelism,
            delay_ms: ms("--update-delay", &self.update_delay)?,
            monitor_ms: ms("--update-monitor", &self.update_monitor)?,
            rollback: self.rollback,
            ..Default::default()
        })
    }
}

fn ms(flag: &str, v: &Option<String>) -> anyhow::Result<Option<u64>> {
    v.as_ref().map(|t| crate::parse::duration_ms(t).map_err(|e| anyhow::anyhow!("{flag}: {e}"))).transpose()
}

impl CreateArgs {
    /// The swarm placement: mode and constraints.
    pub(super) fn placement(&self) -> anyhow::Result<(crate::cluster::schedule::Mode, Vec<crate::cluster::schedule::Constraint>)> {
        let mode = match self.mode.as_str() {
            "replicated" => crate::cluster::schedule::Mode::Replicated(self.replicas),
            "global" => crate::cluster::schedule::Mode::Global,
            m => anyhow::bail!("invalid --mode {m:?}: use replicated or global"),
        };
        let cs = self.constraint.iter().map(|c| crate::cluster::schedule::Constraint::parse(c).map_err(anyhow::Error::msg)).collect::<anyhow::Result<Vec<_>>>()?;
        Ok((mode, cs))
    }

    pub(super) fn to_spec(&self) -> anyhow::Result<ServiceSpec> {
        let mut it = self.image_and_cmd.iter();
        let image = it.next().cloned().unwrap_or_default();
        let cmd: Vec<String> = it.cloned().collect();
        let restart = match self.restart.as_deref() {
            None | Some("any") => crate::container::RestartPolicy::Always,
            Some("none") => crate::container::RestartPolicy::No,
            Some(r) => crate::container::RestartPolicy::parse(r)?,
        };
        let health = self.health_cmd.as_ref().map(|c| -> anyhow::Result<_> {
            Ok(crate::container::health::HealthSpec {
                test: vec!["CMD-SHELL".into(), c.clone()],
                interval_ms: ms("--health-interval", &self.health_interval)?.unwrap_or(0),
                retries: self.health_retries.unwrap_or(0),
                ..Default::default()
            })
        });
        let template = crate::container::RunSpec {
            image,
            cmd: (!cmd.is_empty()).then_some(cmd),
            env: self.env.clone(),
            labels: super::parse_kv(&self.container_label, "label")?,
            memory: self.memory.as_deref().map(super::parse_bytes).transpose().map_err(anyhow::Error::msg)?,
            cpus: self.cpus,
            restart,
            health: health.transpose()?,
            stop_timeout: ms("--stop-grace-period", &self.stop_grace_period)?.map(|m| m.div_ceil(1000)),
            stop_signal: self.stop_signal.clone(),
            ..Default::default()
        };
        Ok(ServiceSpec {
            name: self.name.clone(),
            replicas: self.replicas,
            template,
            publish: self.publish.clone(),
            network: self.network.clone(),
            labels: super::parse_kv(&self.label, "label")?,
            update: UpdateConfig { parallelism: self.update_parallelism, delay_ms: ms("--update-delay", &self.update_delay)?.unwrap_or(0), ..Default::default() },
            restart_explicit: self.restart.as_deref().is_some_and(|r| r != "any" && r != "always"),
            ..Default::default()
        })
    }
}

pub fn service_json(e: &Engine, s: &crate::service::Service) -> serde_json::Value {
    let reps: Vec<serde_json::Value> = e
        .service_replicas(&s.id)
        .unwrap_or_default()
        .into_iter()
        .map(|(slot, c)| serde_json::json!({ "Slot": slot, "Name": c.name, "ID": c.id, "State": c.state, "Health": c.health.status, "Image": c.image_ref }))
        .collect();
    serde_json::json!({
        "ID": s.id, "Name": s.name, "CreatedAt": s.created, "Labels": s.spec.labels,
        "Spec": {
            "Image": s.spec.template.image, "Command": s.spec.template.cmd, "Env": s.spec.template.env,
            "Replicas": s.spec.replicas, "Network": s.spec.network, "Ports": s.spec.publish,
            "UpdateConfig": { "Parallelism": s.spec.update.parallelism, "Delay": s.spec.update.delay_ms * 1_000_000, "Monitor": s.spec.update.monitor_ms * 1_000_000 },
            "Healthcheck": s.spec.template.health.as_ref().map(|h| h.to_docker()),
        },
        "Endpoint": { "VirtualIPs": [{ "NetworkID": s.network_id, "Addr": s.vip.to_string() }] },
        "Replicas": reps,
    })
}

pub fn run(e: &Engine, c: ServiceCmd) -> anyhow::Result<i32> {
    // On a swarm node, services are the swarm's.
    if e.swarm().is_some() {
        return super::swarm::service(e, c);
    }
    // A supervisor that died (killed, a reboot) comes back with the next
    // look at the services.
    if matches!(c, ServiceCmd::Ls { .. } | ServiceCmd::Ps { .. } | ServiceCmd::Inspect { .. }) {
        e.adopt_services();
    }
    match c {
        ServiceCmd::Create(a) => {
            if !a.constraint.is_empty() || a.mode != "replicated" {
                anyhow::bail!("--constraint and --mode place tasks over a swarm's nodes; this node is in no swarm (berth swarm init)");
            }
            let s = e.service_create(&a.to_spec()?)?;
            println!("{}", s.id);
        }
        ServiceCmd::Ls { quiet } => {
            let list = e.services()?;
            if quiet {
                for s in &list {
                    println!("{}", &s.id[..12]);
                }
                return Ok(0);
            }
            let rows: Vec<(crate::service::Service, usize)> = list
                .into_iter()
                .map(|s| {
                    let serving = e.service_serving(&s.id).map(|v| v.len()).unwrap_or(0);
                    (s, serving)
                })
                .collect();
            print!("{}", table::services(&rows));
        }
        ServiceCmd::Ps { service } => {
            let s = e.service(&service)?;
            let rows: Vec<Vec<String>> = e
                .service_replicas(&s.id)?
                .into_iter()
                .map(|(slot, c)| {
                    let serving = crate::service::serving(&s, slot, &c);
                    let ip = e.endpoints(&c.id).ok().and_then(|eps| eps.into_iter().find(|ep| ep.network.id == s.network_id)).map(|ep| ep.ip.to_string()).unwrap_or_default();
                    vec![c.id[..12].to_string(), c.name.clone(), c.image_ref.clone(), table::status(&c), if c.health.status.is_empty() { "-".into() } else { c.health.status.clone() }, ip, if serving { "yes".into() } else { "no".into() }]
                })
                .collect();
            print!("{}", table::render(&["ID", "NAME", "IMAGE", "STATUS", "HEALTH", "IP", "SERVING"], &rows));
        }
        ServiceCmd::Inspect { services } => {
            let mut out = Vec::new();
            let mut missing = false;
            for k in &services {
                match e.service(k) {
                    Ok(s) => out.push(service_json(e, &s)),
                    Err(err) => {
                        eprintln!("berth: {err}");
                        missing = true;
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(if missing { 1 } else { 0 });
        }
        ServiceCmd::Scale { pairs } => {
            for p in &pairs {
                let (name, n) = crate::service::parse_scale(p).map_err(anyhow::Error::msg)?;
                e.service_scale(&name, n)?;
                println!("{name} scaled to {n}");
            }
        }
        ServiceCmd::Update(a) => {
            let u = a.to_update(|| Ok(e.service(&a.service)?.spec.template.env))?;
            let s = e.service_update(&a.service, &u)?;
            println!("{}", s.name);
        }
        ServiceCmd::Rollback { service } => {
            let s = e.service_update(&service, &ServiceUpdate { rollback: true, ..Default::default() })?;
            println!("{}: rolled back to {}", s.name, s.spec.template.image);
        }
        ServiceCmd::Rm { services } => {
            let mut code = 0;
            for k in &services {
                match e.service_remove(k) {
                    Ok(s) => println!("{}", s.name),
                    Err(err) => {
                        eprintln!("berth: {err}");
                        code = 1;
                    }
                }
            }
            return Ok(code);
        }
    }
    Ok(0)
}

#[derive(Subcommand)]
pub enum StackCmd {
    /// Deploy a compose file as a stack
    #[command(alias = "up")]
    Deploy {
        #[arg(short = 'c', long = "compose-file")]
        compose_file: String,
        stack: String,
    },
    /// List stacks
    #[command(alias = "list")]
    Ls,
    /// List the replicas of a stack's services
    Ps { stack: String },
    /// List a stack's services
    Services { stack: String },
    /// Remove stacks: their services, networks, volumes and built images
    #[command(alias = "remove", alias = "down")]
    Rm {
        #[arg(required = true)]
        stacks: Vec<String>,
    },
}

pub fn stack(e: &Engine, c: StackCmd) -> anyhow::Result<i32> {
    match c {
        StackCmd::Deploy { compose_file, stack } => {
            let plan = crate::service::compose::parse_file(std::path::Path::new(&compose_file))?;
            for w in &plan.warnings {
                eprintln!("warning: {w}");
            }
            if e.swarm().is_some() {
                for s in e.swarm_stack_deploy(&stack, &plan, &compose_file, &Default::default())? {
                    println!("Created service {}", s.name);
                }
                return Ok(0);
            }
            if plan.services.iter().any(|s| s.global || !s.constraints.is_empty()) {
                eprintln!("warning: deploy.mode and deploy.placement place tasks over a swarm's nodes; this node is in none, so they are ignored");
            }
            for s in e.stack_deploy(&stack, &plan, &compose_file, &Default::default())? {
                println!("Created service {}", s.name);
            }
        }
        StackCmd::Ls => {
            let rows: Vec<Vec<String>> = e.stacks()?.into_iter().map(|s| vec![s.name, s.services.len().to_string(), s.source]).collect();
            print!("{}", table::render(&["NAME", "SERVICES", "SOURCE"], &rows));
        }
        StackCmd::Ps { stack } if e.swarm().is_some() => {
            let mut rows = Vec::new();
            let all = e.swarm_tasks()?;
            for s in e.swarm_stack_services(&stack)? {
                rows.extend(all.iter().filter(|t| t.task.service == s.id).map(|t| super::swarm::task_row(t, &s.name)));
            }
            print!("{}", table::render(&["ID", "NAME", "IMAGE", "NODE", "STATE", "ERROR"], &rows));
        }
        StackCmd::Services { stack } if e.swarm().is_some() => {
            let all = e.swarm_tasks()?;
            let rows: Vec<Vec<String>> = e
                .swarm_stack_services(&stack)?
                .into_iter()
                .map(|s| {
                    let (mode, replicas) = super::swarm::mode_cells(&s, &all);
                    let ports: Vec<String> = s.publish.iter().map(|(p, t, proto)| format!("*:{p}->{t}/{proto}")).collect();
                    vec![s.id[..12].to_string(), s.name.clone(), mode, replicas, s.spec.template.image.clone(), ports.join(", ")]
                })
                .collect();
            print!("{}", table::render(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], &rows));
        }
        StackCmd::Ps { stack } => {
            let mut rows = Vec::new();
            for s in e.stack_services(&stack)? {
                for (slot, c) in e.service_replicas(&s.id)? {
                    let serving = crate::service::serving(&s, slot, &c);
                    rows.push(vec![c.id[..12].to_string(), c.name.clone(), c.image_ref.clone(), table::status(&c), if c.health.status.is_empty() { "-".into() } else { c.health.status.clone() }, if serving { "yes".into() } else { "no".into() }]);
                }
            }
            print!("{}", table::render(&["ID", "NAME", "IMAGE", "STATUS", "HEALTH", "SERVING"], &rows));
        }
        StackCmd::Services { stack } => {
            let rows: Vec<Vec<String>> = e
                .stack_services(&stack)?
                .into_iter()
                .map(|s| {
                    let serving = e.service_serving(&s.id).map(|v| v.len()).unwrap_or(0);
                    vec![s.id[..12].to_string(), s.name.clone(), format!("{serving}/{}", s.spec.replicas), s.spec.template.image.clone(), s.vip.to_string(), s.spec.publish.join(", ")]
                })
                .collect();
            print!("{}", table::render(&["ID", "NAME", "REPLICAS", "IMAGE", "VIP", "PORTS"], &rows));
        }
        StackCmd::Rm { stacks } => {
            let mut code = 0;
            for s in &stacks {
                match e.stack_remove(s) {
                    Ok(info) => println!("Removed stack {} ({} services)", info.name, info.services.len()),
                    Err(err) => {
                        eprintln!("berth: {err}");
                        code = 1;
                    }
                }
            }
            return Ok(code);
        }
    }
    Ok(0)
}
