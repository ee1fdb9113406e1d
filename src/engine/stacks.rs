//! The door's stack methods: deploy a compose plan as networks, volumes
//! and services in dependency order, list, and remove.

use std::time::{Duration, Instant};

use rusqlite::OptionalExtension;

use super::{Engine, EngineError, Result};
use crate::container::RestartPolicy;
use crate::service::compose::{Build, Condition, Plan};
use crate::service::stack::{valid, StackInfo, READY_TIMEOUT, STACK_LABEL, STACK_SERVICE_LABEL};
use crate::service::{Service, ServiceSpec};
use crate::store::{self, StoreError};

fn bad(msg: impl Into<String>) -> EngineError {
    EngineError::Other(msg.into())
}

impl Engine {
    pub fn stacks(&self) -> Result<Vec<StackInfo>> {
        if self.swarm().is_some() {
            return self.swarm_stacks();
        }
        let rows: Vec<(String, String, String)> = {
            let db = self.db();
            let mut st = db.conn.prepare("SELECT name, source, created FROM stacks ORDER BY name").map_err(StoreError::from)?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(StoreError::from)?.filter_map(|r| r.ok()).collect()
        };
        let services = self.services()?;
        Ok(rows
            .into_iter()
            .map(|(name, source, created)| {
                let svcs = services.iter().filter(|s| s.spec.labels.get(STACK_LABEL) == Some(&name)).map(|s| s.name.clone()).collect();
                StackInfo { name, source, created, services: svcs }
            })
            .collect())
    }

    /// The services of a stack.
    pub fn stack_services(&self, name: &str) -> Result<Vec<Service>> {
        if !self.stacks()?.iter().any(|s| s.name == name) {
            return Err(bad(format!("no such stack: {name}")));
        }
        Ok(self.services()?.into_iter().filter(|s| s.spec.labels.get(STACK_LABEL).map(String::as_str) == Some(name)).collect())
    }

    /// Deploys a plan. On any failure what was made so far is removed.
    /// `extra` labels go on every object too (a test run's).
    pub fn stack_deploy(&self, name: &str, plan: &Plan, source: &str, extra: &std::collections::BTreeMap<String, String>) -> Result<Vec<Service>> {
        if !valid(name) {
            return Err(bad(format!("invalid stack name {name:?}: letters, digits, - and _")));
        }
        {
            let mut db = self.db();
            let now = store::now_rfc3339();
            let added = db.write(|tx| Ok(tx.execute("INSERT OR IGNORE INTO stacks(name, source, created, deploying) VALUES(?1,?2,?3,1)", rusqlite::params![name, source, now])?))?;
            if added == 0 {
                return Err(bad(format!("stack {name} is already deployed; remove it first (berth stack rm {name})")));
            }
        }
        match self.deploy_plan(name, plan, extra) {
            Ok(v) => {
                self.db().write(|tx| Ok(tx.execute("UPDATE stacks SET deploying=0 WHERE name=?1", [name])?))?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.stack_remove(name);
                Err(e)
            }
        }
    }

    fn deploy_plan(&self, stack: &str, plan: &Plan, extra: &std::collections::BTreeMap<String, String>) -> Result<Vec<Service>> {
        let mut labels = extra.clone();
        labels.insert(STACK_LABEL.to_string(), stack.to_string());
        let scoped = |n: &str| format!("{stack}_{n}");

        // Networks, with the default one only if a service needs it.
        let needs_default = plan.services.iter().any(|s| s.networks.is_empty() || s.networks.iter().any(|(n, _, _)| n == "default"));
        let mut nets = plan.networks.clone();
        if needs_default && !nets.iter().any(|n| n.name == "default") {
            nets.push(crate::service::compose::NetworkPlan { name: "default".into(), ..Default::default() });
        }
        for n in &nets {
            self.network_create(&crate::network::NetworkSpec { name: scoped(&n.name), subnet: n.subnet.clone(), gateway: n.gateway.clone(), labels: labels.clone() })?;
        }
        for v in &plan.volumes {
            self.volume_create(Some(&scoped(v)), &labels)?;
        }

        // Images to build, before anything starts.
        let mut images: Vec<(String, String)> = Vec::new();
        for s in &plan.services {
            let image = match &s.build {
                Build::None => s.image.clone().unwrap_or_default(),
                Build::Dir(ctx, file, args) => {
                    let tag = s.image.clone().unwrap_or_else(|| format!("{}:latest", scoped(&s.name)));
                    let o = crate::build::builder::BuildOptions {
                        context: ctx.clone(),
                        file: file.as_ref().map(|f| ctx.join(f)),
                        tag: Some(tag.clone()),
                        args: args.clone(),
                        target: None,
                        no_cache: false,
                        show_output: false,
                        log: None,
                        labels: Default::default(),
                        credentials: Default::default(),
                        pull: false,
                    };
                    let (img, new) = self.build_new(&o).map_err(|e| bad(format!("stack {stack}: building service {}: {e}", s.name)))?;
                    if !new {
                        // Built before (a cached build): not the stack's to remove.
                        images.push((s.name.clone(), tag));
                        continue;
                    }
                    let mut db = self.db();
                    let list: String = db.conn.query_row("SELECT images FROM stacks WHERE name=?1", [stack], |r| r.get(0)).optional().map_err(StoreError::from)?.unwrap_or_else(|| "[]".into());
                    let mut ids: Vec<String> = serde_json::from_str(&list).unwrap_or_default();
                    ids.push(img.id.clone());
                    let text = serde_json::to_string(&ids).unwrap_or_default();
                    db.write(|tx| Ok(tx.execute("UPDATE stacks SET images=?2 WHERE name=?1", rusqlite::params![stack, text])?))?;
                    tag
                }
            };
            images.push((s.name.clone(), image));
        }

        let specs = stack_specs(stack, plan, &images, &labels);

        let waves = crate::service::compose::order(plan).map_err(|c| bad(format!("depends_on forms a cycle: {}", c.join(" -> "))))?;
        let mut made = Vec::new();
        for wave in waves {
            for svc in &wave {
                let p = plan.services.iter().find(|s| &s.name == svc).unwrap();
                for (dep, cond) in &p.depends_on {
                    self.wait_ready(&scoped(dep), cond, svc)?;
                }
            }
            let results: Vec<Result<Service>> = std::thread::scope(|sc| {
                let hs: Vec<_> = wave
                    .iter()
                    .map(|svc| {
                        let spec = &specs.iter().find(|(n, _)| n == svc).unwrap().1;
                        sc.spawn(move || self.service_create(spec))
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(bad("service start panicked")))).collect()
            });
            for r in results {
                made.push(r.map_err(|e| bad(format!("stack {stack}: {e}")))?);
            }
            crate::fault!("stack.deploy");
        }
        Ok(made)
    }

    /// Waits for `service` to reach what `waiter` depends on.
    fn wait_ready(&self, service: &str, cond: &Condition, waiter: &str) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let reps = self.service_replicas(service)?;
            let what = match cond {
                Condition::Started => "running",
                Condition::Healthy => "healthy",
                Condition::CompletedSuccessfully => "completed successfully",
            };
            let ok = !reps.is_empty()
                && reps.iter().all(|(_, c)| match cond {
                    Condition::Started => c.state == "running" || (c.state == "exited" && c.exit_code == 0),
                    Condition::Healthy => c.state == "running" && c.health.status == "healthy",
                    Condition::CompletedSuccessfully => c.state == "exited" && c.exit_code == 0,
                });
            if ok {
                return Ok(());
            }
            if *cond == Condition::Healthy && reps.iter().any(|(_, c)| c.health.status.is_empty() && c.state == "running") {
                return Err(bad(format!("{waiter} waits for {service} to be healthy, but {service} has no healthcheck")));
            }
            if *cond == Condition::CompletedSuccessfully
                && let Some((_, c)) = reps.iter().find(|(_, c)| c.state == "exited" && c.exit_code != 0)
            {
                return Err(bad(format!("{waiter} waits for {service} to complete successfully, but {} exited with code {}", c.name, c.exit_code)));
            }
            if Instant::now() > deadline {
                let states: Vec<String> = reps.iter().map(|(_, c)| format!("{} {}{}", c.name, c.state, if c.health.status.is_empty() { String::new() } else { format!(" ({})", c.health.status) })).collect();
                return Err(bad(format!("{waiter} waited {READY_TIMEOUT:?} for {service} to be {what}; last seen: {}", states.join(", "))));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Removes a stack's services, networks, volumes and built images.
    pub fn stack_remove(&self, name: &str) -> Result<StackInfo> {
        if self.swarm().is_some() {
            return self.swarm_stack_remove(name);
        }
        let info = self.stacks()?.into_iter().find(|s| s.name == name).ok_or_else(|| bad(format!("no such stack: {name}")))?;
        let mine = |l: &std::collections::BTreeMap<String, String>| l.get(STACK_LABEL).map(String::as_str) == Some(name);
        let services: Vec<Service> = self.services()?.into_iter().filter(|s| mine(&s.spec.labels)).collect();
        std::thread::scope(|sc| {
            for s in &services {
                sc.spawn(move || self.service_remove(&s.id));
            }
        });
        crate::fault!("stack.rm");
        // Everything that can go goes; what cannot (a network another
        // container still uses) is named, and the stack stays listed so a
        // second `stack rm` finishes the job.
        let mut stuck = Vec::new();
        for n in self.networks()? {
            if mine(&n.labels)
                && let Err(e) = self.network_remove(&n.id)
            {
                stuck.push(e.to_string());
            }
        }
        for v in self.volumes()? {
            if mine(&v.labels)
                && let Err(e) = self.volume_remove(&v.name)
            {
                stuck.push(e.to_string());
            }
        }
        let images: Vec<String> = {
            let db = self.db();
            let list: String = db.conn.query_row("SELECT images FROM stacks WHERE name=?1", [name], |r| r.get(0)).optional().map_err(StoreError::from)?.unwrap_or_else(|| "[]".into());
            serde_json::from_str(&list).unwrap_or_default()
        };
        for id in images.iter().rev() {
            let _ = self.image_remove(id, false);
        }
        if !stuck.is_empty() {
            return Err(bad(format!("stack {name}: removed its services, but not all of the rest: {}", stuck.join("; "))));
        }
        self.db().write(|tx| Ok(tx.execute("DELETE FROM stacks WHERE name=?1", [name])?))?;
        Ok(info)
    }
}

/// Where a stack deployed on a swarm came from (its services carry it).
const STACK_SOURCE_LABEL: &str = "berth.stack.source";

impl Engine {
    /// The swarm's stacks: its services grouped by their stack label.
    fn swarm_stacks(&self) -> Result<Vec<StackInfo>> {
        let mut out: Vec<StackInfo> = Vec::new();
        for s in self.swarm_services()? {
            let Some(stack) = s.spec.labels.get(STACK_LABEL) else { continue };
            match out.iter_mut().find(|x| &x.name == stack) {
                Some(x) => x.services.push(s.name.clone()),
                None => out.push(StackInfo {
                    name: stack.clone(),
                    source: s.spec.labels.get(STACK_SOURCE_LABEL).cloned().unwrap_or_default(),
                    created: String::new(),
                    services: vec![s.name.clone()],
                }),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A stack's swarm services.
    pub fn swarm_stack_services(&self, name: &str) -> Result<Vec<crate::cluster::model::ClusterService>> {
        let v: Vec<_> = self.swarm_services()?.into_iter().filter(|s| s.spec.labels.get(STACK_LABEL).map(String::as_str) == Some(name)).collect();
        if v.is_empty() {
            return Err(bad(format!("no such stack: {name}")));
        }
        Ok(v)
    }

    /// `stack deploy` on a swarm: an overlay for each of the stack's
    /// networks and a swarm service for each compose service, placed by
    /// deploy.mode and deploy.placement.constraints over the nodes. As
    /// docker's, it builds nothing and waits for no dependency.
    pub fn swarm_stack_deploy(&self, name: &str, plan: &Plan, source: &str, extra: &std::collections::BTreeMap<String, String>) -> Result<Vec<crate::cluster::model::ClusterService>> {
        if !valid(name) {
            return Err(bad(format!("invalid stack name {name:?}: letters, digits, - and _")));
        }
        if self.swarm_stacks()?.iter().any(|s| s.name == name) {
            return Err(bad(format!("stack {name} is already deployed; remove it first (berth stack rm {name})")));
        }
        let mut images = Vec::new();
        for s in &plan.services {
            match (&s.build, &s.image) {
                (_, Some(i)) => images.push((s.name.clone(), i.clone())),
                (_, None) => {
                    return Err(bad(format!("stack {name}: service {} has build: but no image:; a swarm does not build: build and tag the image on every node, and name it with image:", s.name)));
                }
            }
            if s.networks.len() > 1 {
                return Err(bad(format!("stack {name}: service {} joins {} networks; a swarm service joins one in berth", s.name, s.networks.len())));
            }
            if s.networks.iter().any(|(_, ip, _)| ip.is_some()) {
                return Err(bad(format!("stack {name}: service {} asks for a static address; a swarm service's tasks take theirs from the overlay", s.name)));
            }
        }
        let mut labels = extra.clone();
        labels.insert(STACK_LABEL.to_string(), name.to_string());
        let needs_default = plan.services.iter().any(|s| s.networks.is_empty() || s.networks.iter().any(|(n, _, _)| n == "default"));
        let mut nets = plan.networks.clone();
        if needs_default && !nets.iter().any(|n| n.name == "default") {
            nets.push(crate::service::compose::NetworkPlan { name: "default".into(), ..Default::default() });
        }
        let undo = |e: EngineError| {
            let _ = self.swarm_stack_remove(name);
            e
        };
        let mut made_nets = Vec::new();
        for n in &nets {
            let spec = crate::network::NetworkSpec { name: format!("{name}_{}", n.name), subnet: n.subnet.clone(), gateway: n.gateway.clone(), labels: labels.clone() };
            match self.overlay_create(&spec, &super::OverlayOpts::default()) {
                Ok(x) => made_nets.push(x),
                Err(e) => {
                    for x in &made_nets {
                        let _ = self.network_remove(&x.id);
                    }
                    return Err(bad(format!("stack {name}: {e}")));
                }
            }
        }
        let mut svc_labels = labels.clone();
        svc_labels.insert(STACK_SOURCE_LABEL.to_string(), source.to_string());
        let mut made = Vec::new();
        for (svc, mut spec) in stack_specs(name, plan, &images, &svc_labels) {
            let p = plan.services.iter().find(|s| s.name == svc).expect("a spec per service");
            spec.template.ip = None;
            let mode = if p.global { crate::cluster::schedule::Mode::Global } else { crate::cluster::schedule::Mode::Replicated(p.replicas) };
            let cs = p.constraints.iter().map(|c| crate::cluster::schedule::Constraint::parse(c).map_err(bad)).collect::<Result<Vec<_>>>().map_err(undo)?;
            made.push(self.swarm_service_create(&spec, mode, cs).map_err(|e| undo(bad(format!("stack {name}: {e}"))))?);
        }
        Ok(made)
    }

    /// Removes a swarm stack's services, then its overlays once their
    /// tasks are gone from every node.
    fn swarm_stack_remove(&self, name: &str) -> Result<StackInfo> {
        let info = self.swarm_stacks()?.into_iter().find(|s| s.name == name);
        let nets: Vec<crate::network::Network> = {
            let (_, etcd) = self.swarm_etcd()?;
            let all: Vec<crate::cluster::model::Overlay> = super::swarm::list_json(&etcd, &format!("{}networks/", crate::cluster::model::ROOT))?;
            all.into_iter().filter(|o| o.labels.get(STACK_LABEL).map(String::as_str) == Some(name)).filter_map(|o| self.network(&o.id).ok()).collect()
        };
        let Some(info) = info.or_else(|| (!nets.is_empty()).then(|| StackInfo { name: name.into(), source: String::new(), created: String::new(), services: vec![] })) else {
            return Err(bad(format!("no such stack: {name}")));
        };
        for s in &info.services {
            self.swarm_service_rm(s)?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in &nets {
            loop {
                match self.network_remove(&n.id) {
                    Ok(_) => break,
                    Err(EngineError::Network(crate::network::NetworkError::InUse { .. })) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                    Err(e) if e.to_string().contains("in use by service") && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                    Err(e) => return Err(bad(format!("stack {name}: removed its services, but not network {}: {e}", n.name))),
                }
            }
        }
        Ok(info)
    }
}

/// Each service's spec: scoped names, the stack's labels, its networks
/// (the first is the VIP's, which also answers to the short name).
fn stack_specs(stack: &str, plan: &Plan, images: &[(String, String)], labels: &std::collections::BTreeMap<String, String>) -> Vec<(String, ServiceSpec)> {
    let scoped = |n: &str| format!("{stack}_{n}");
    // A dependency others wait to complete runs once.
    let run_once: std::collections::BTreeSet<&str> =
        plan.services.iter().flat_map(|s| s.depends_on.iter().filter(|(_, c)| *c == Condition::CompletedSuccessfully).map(|(d, _)| d.as_str())).collect();
    plan.services
        .iter()
        .map(|s| {
            let mut t = s.template.clone();
            t.image = images.iter().find(|(n, _)| n == &s.name).map(|(_, i)| i.clone()).unwrap_or_default();
            if !s.restart_given {
                t.restart = if run_once.contains(s.name.as_str()) { RestartPolicy::No } else { RestartPolicy::Always };
            }
            let restart_explicit = true;
            t.volumes = s
                .volumes
                .iter()
                .map(|v| {
                    let (src, rest) = v.split_once(':').unwrap_or(("", v));
                    if src.is_empty() {
                        v.clone()
                    } else if src.starts_with('/') {
                        v.clone()
                    } else {
                        format!("{}:{rest}", scoped(src))
                    }
                })
                .collect();
            let mut nets: Vec<(String, Option<String>, Vec<String>)> = s.networks.clone();
            if nets.is_empty() {
                nets.push(("default".into(), None, vec![]));
            }
            let (first, ip, aliases) = nets[0].clone();
            t.ip = ip;
            // The short name is the VIP's on this network (so it is
            // balanced); the replicas keep only the aliases given.
            t.aliases = aliases;
            t.labels.extend(labels.clone());
            t.labels.insert(STACK_SERVICE_LABEL.into(), s.name.clone());
            let mut l = labels.clone();
            l.insert(STACK_SERVICE_LABEL.into(), s.name.clone());
            let spec = ServiceSpec {
                name: scoped(&s.name),
                replicas: s.replicas,
                template: t,
                publish: s.ports.clone(),
                network: Some(scoped(&first)),
                labels: l,
                aliases: vec![s.name.clone()],
                restart_explicit,
                update: s.update.clone().unwrap_or_default(),
                extra_networks: nets[1..].iter().map(|(n, _, a)| (scoped(n), a.iter().cloned().chain([s.name.clone()]).collect())).collect(),
                ..Default::default()
            };
            (s.name.clone(), spec)
        })
        .collect()
}
