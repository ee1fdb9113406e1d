//! The door's service methods: create, scale, rolling update with
//! rollback, remove. They drive the container and network areas through
//! their public functions and the engine's own container operations.

use std::time::{Duration, Instant};

use super::{chain, Attach, Engine, EngineError, Result};
use crate::container::{Container, RestartPolicy};
use crate::network;
use crate::service::ops::{replica_name, ServiceUpdate};
use crate::service::{self, Service, ServiceSpec};

impl Engine {
    pub fn services(&self) -> Result<Vec<Service>> {
        Ok(service::list(&self.db())?)
    }

    pub fn service(&self, key: &str) -> Result<Service> {
        Ok(service::get(&self.db(), key)?)
    }

    /// The replicas, by slot.
    pub fn service_replicas(&self, key: &str) -> Result<Vec<(u32, Container)>> {
        let s = self.service(key)?;
        Ok(service::replicas(&self.db(), &s.name)?)
    }

    /// Serving replicas of a service (what the balancing uses).
    pub fn service_serving(&self, key: &str) -> Result<Vec<Container>> {
        let s = self.service(key)?;
        Ok(self.service_replicas(key)?.into_iter().filter(|(slot, c)| service::serving(&s, *slot, c)).map(|(_, c)| c).collect())
    }

    pub fn service_create(&self, spec: &ServiceSpec) -> Result<Service> {
        let mut spec = spec.clone();
        service::validate(&spec)?;
        if spec.template.restart == RestartPolicy::No && !spec.restart_explicit {
            // Swarm's "any": a replica that exits comes back.
            spec.template.restart = RestartPolicy::Always;
        }
        // Fail before anything is made: the image must be here.
        self.image(&spec.template.image)?;
        let port_specs = spec.publish.iter().map(|p| network::ports::parse(p)).collect::<std::result::Result<Vec<_>, _>>().map_err(network::NetworkError::from)?;
        if spec.network.is_none() {
            self.ensure_default_network()?;
        }
        let id = crate::store::new_id();
        let owner = service::owner(&id);
        let (net, vip) = {
            let mut db = self.db();
            let net = match &spec.network {
                Some(n) => network::get(&db, n)?,
                None => network::default_network(&self.paths, &mut db)?,
            };
            spec.network = Some(net.name.clone());
            let ep = network::attach(&mut db, &owner, &net, None, &spec.aliases)?;
            if let Err(e) = network::publish(&mut db, &owner, &port_specs) {
                let _ = network::detach(&mut db, &owner, &net);
                return Err(e.into());
            }
            spec.creating = true;
            if let Err(e) = service::insert(&mut db, &spec, &net.id, ep.ip, &id) {
                let _ = network::unpublish_all(&mut db, &owner);
                let _ = network::detach(&mut db, &owner, &net);
                return Err(e.into());
            }
            (net, ep.ip)
        };
        crate::fault!("service.create");
        // The host answers for the VIP on the bridge; the table sends it on.
        let prefix = network::ipam::Subnet::parse(&net.subnet).map(|s| s.prefix).unwrap_or(24);
        if let Err(e) = crate::sys::netlink::Netlink::new().and_then(|nl| nl.add_address(&net.bridge, vip, prefix)) {
            let _ = self.service_remove(&id);
            return Err(EngineError::Other(format!("service {}: putting its VIP {vip} on {}: {e}", spec.name, net.bridge)));
        }
        let want = spec.replicas;
        if let Err(e) = self.service_scale(&id, want) {
            let _ = self.service_remove(&id);
            return Err(e);
        }
        let mut done = self.service(&id)?.spec;
        done.creating = false;
        service::set_spec(&mut self.db(), &id, &done)?;
        self.event("service", "create", &id, &[("name", &spec.name)]);
        self.service(&id)
    }

    /// Sets the number of replicas: new slots start in parallel; removed
    /// ones leave the balancing before they stop.
    pub fn service_scale(&self, key: &str, replicas: u32) -> Result<Service> {
        let id = self.service(key)?.id;
        let ops = self.service_ops(&id)?;
        let s = self.scale_locked(&id, replicas);
        drop(ops);
        self.ensure_supervisor(&id)?;
        s
    }

    fn scale_locked(&self, id: &str, replicas: u32) -> Result<Service> {
        let mut s = self.service(id)?;
        let fewer = replicas < s.spec.replicas;
        s.spec.replicas = replicas;
        service::validate(&s.spec)?;
        service::set_spec(&mut self.db(), &s.id, &s.spec)?;
        // The slots to go leave the balancing before they stop. Growing
        // takes no replica out, so the balancing is as it was until the new
        // ones run (an nft run and a hosts rewrite fewer).
        if fewer {
            self.service_sync(&s)?;
        }
        let current = service::replicas(&self.db(), &s.name)?;
        // Slots no longer wanted; a never-started replica (its start failed)
        // and a `.next` an interrupted update left are not replicas either.
        let dead = |c: &Container| c.state == "created" || c.name.ends_with(".next");
        let extra: Vec<&Container> = current.iter().filter(|(slot, c)| *slot > replicas || *slot == 0 || dead(c)).map(|(_, c)| c).collect();
        std::thread::scope(|sc| {
            for c in &extra {
                sc.spawn(|| self.stop_then_remove(c));
            }
        });
        let missing: Vec<u32> = (1..=replicas).filter(|slot| !current.iter().any(|(s2, c)| s2 == slot && !dead(c))).collect();
        let results: Vec<Result<()>> = std::thread::scope(|sc| {
            let hs: Vec<_> = missing
                .iter()
                .map(|slot| {
                    let spec = service::replica_spec(&s.spec, *slot, &replica_name(&s.name, *slot));
                    let extra = &s.spec.extra_networks;
                    sc.spawn(move || {
                        let r = self.run_replica(&spec, extra).map(|_| ());
                        if r.is_err() {
                            // A failed start leaves a created container that
                            // would hold the slot.
                            let _ = self.remove_with(spec.name.as_deref().unwrap_or_default(), true, true);
                        }
                        r
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(EngineError::Other("replica start panicked".into())))).collect()
        });
        self.service_sync(&s)?;
        for r in results {
            r.map_err(chain(format!("service {}: starting a replica", s.name)))?;
        }
        self.service(&s.id)
    }

    /// Rewrites the balancing and the peers' names after a change.
    pub(super) fn service_sync(&self, s: &Service) -> Result<()> {
        self.sync_firewall()?;
        if let Ok(n) = self.network(&s.network_id) {
            self.refresh_hosts(&n)?;
        }
        Ok(())
    }

    /// Rolling update: batches of `parallelism` slots; each new replica must
    /// run (and be healthy, with a check) before the old one leaves the
    /// balancing and stops. A new replica that fails rolls every replaced
    /// slot back to the previous spec.
    pub fn service_update(&self, key: &str, u: &ServiceUpdate) -> Result<Service> {
        let id = self.service(key)?.id;
        let ops = self.service_ops(&id)?;
        let s = self.update_locked(&id, u);
        drop(ops);
        self.ensure_supervisor(&id)?;
        s
    }

    fn update_locked(&self, key: &str, u: &ServiceUpdate) -> Result<Service> {
        let s = self.service(key)?;
        let old = s.spec.clone();
        let (mut new, replace) = crate::service::ops::updated_spec(&s.name, &old, u).map_err(EngineError::Other)?;
        if new.template.image != old.template.image {
            self.image(&new.template.image)?;
        }
        service::set_spec(&mut self.db(), &s.id, &new)?;
        // Only how updates proceed changed: nothing to replace.
        if !replace {
            return self.service(&s.id);
        }
        let slots: Vec<u32> = (1..=new.replicas).collect();
        let mut done: Vec<u32> = Vec::new();
        for (i, batch) in slots.chunks(new.update.parallelism as usize).enumerate() {
            if i > 0 && new.update.delay_ms > 0 {
                std::thread::sleep(Duration::from_millis(new.update.delay_ms));
            }
            if let Err(why) = self.replace_slots(&s.id, batch, &new) {
                service::set_spec(&mut self.db(), &s.id, &old)?;
                // Stop-first slots (a fixed address) lost their old replica too.
                let mut back_slots = done.clone();
                if new.template.ip.is_some() {
                    back_slots.extend_from_slice(batch);
                }
                let back = self.replace_slots(&s.id, &back_slots, &old);
                let tail = match back {
                    Ok(()) => format!("rolled back {} replaced replica(s) to {}", back_slots.len(), old.template.image),
                    Err(e) => format!("and the rollback failed too: {e}"),
                };
                return Err(EngineError::Other(format!("service {}: update to {} failed: {why}; {tail}", s.name, new.template.image)));
            }
            done.extend_from_slice(batch);
            crate::fault!("service.update");
        }
        new.previous = Some(service::Previous { image: old.template.image.clone(), cmd: old.template.cmd.clone(), env: old.template.env.clone() });
        service::set_spec(&mut self.db(), &s.id, &new)?;
        self.event("service", "update", &s.id, &[("name", &s.name), ("image", &new.template.image)]);
        self.service(&s.id)
    }

    /// Starts `spec`'s replica for each slot beside the old one, waits for
    /// it to serve, then drains and removes the old one.
    fn replace_slots(&self, id: &str, slots: &[u32], spec: &ServiceSpec) -> std::result::Result<(), String> {
        if slots.is_empty() {
            return Ok(());
        }
        let s = self.service(id).map_err(|e| e.to_string())?;
        let before = service::replicas(&self.db(), &s.name).map_err(|e| e.to_string())?;
        // A replica with a fixed address cannot start beside the one that
        // holds it: the old one goes first (a short gap, as docker's
        // stop-first update order).
        if spec.template.ip.is_some() {
            for (_, c) in before.iter().filter(|(slot, _)| slots.contains(slot)) {
                self.stop_then_remove(c);
            }
        }
        let before: Vec<(u32, Container)> = if spec.template.ip.is_some() { Vec::new() } else { before };
        let started: Vec<std::result::Result<String, String>> = std::thread::scope(|sc| {
            let hs: Vec<_> = slots
                .iter()
                .map(|slot| {
                    let name = format!("{}.{slot}.next", s.name);
                    // A failed update may have left one.
                    let _ = self.remove_with(&name, true, true);
                    let mut r = service::replica_spec(spec, *slot, &name);
                    // The final name, which the replica keeps after the rename.
                    if spec.template.hostname.is_none() && replica_name(&s.name, *slot).len() <= 64 {
                        r.hostname = Some(replica_name(&s.name, *slot));
                    }
                    sc.spawn(move || self.start_and_wait_serving(&r, &spec.extra_networks, spec.update.monitor_ms))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("panicked".into()))).collect()
        });
        if let Some(Err(why)) = started.iter().find(|r| r.is_err()) {
            for id in started.iter().flatten() {
                let _ = self.remove_with(id, true, true);
            }
            let _ = self.service_sync(&s);
            return Err(why.clone());
        }
        let olds: Vec<String> = before.iter().filter(|(slot, _)| slots.contains(slot)).map(|(_, c)| c.id.clone()).collect();
        service::set_draining(&mut self.db(), &s.id, &olds).map_err(|e| e.to_string())?;
        let s = self.service(id).map_err(|e| e.to_string())?;
        self.service_sync(&s).map_err(|e| e.to_string())?;
        std::thread::scope(|sc| {
            for o in &olds {
                sc.spawn(move || {
                    if let Ok(c) = self.container(o) {
                        self.stop_then_remove(&c);
                    }
                });
            }
        });
        for (slot, new_id) in slots.iter().zip(started.iter().flatten()) {
            self.rename(new_id, &replica_name(&s.name, *slot)).map_err(|e| e.to_string())?;
        }
        service::set_draining(&mut self.db(), &s.id, &[]).map_err(|e| e.to_string())?;
        let s = self.service(id).map_err(|e| e.to_string())?;
        self.service_sync(&s).map_err(|e| e.to_string())
    }

    /// Runs a replica and waits until it serves (running, and healthy if
    /// it has a check) and keeps serving for `monitor_ms` (no exit, restart
    /// or failed check). Returns its id, or why not (it is then removed).
    fn start_and_wait_serving(&self, spec: &crate::container::RunSpec, extra: &[(String, Vec<String>)], monitor_ms: u64) -> std::result::Result<String, String> {
        let name = spec.name.clone().unwrap_or_default();
        let c = match self.run_replica(spec, extra) {
            Ok(c) => c,
            Err(e) => {
                let _ = self.remove_with(&name, true, true);
                return Err(format!("replica {name} did not start: {e}"));
            }
        };
        // Time to come up: with a check, its first probes must have had their
        // chance (the first one runs an interval after the start).
        let health = crate::container::health::effective(spec.health.as_ref(), self.image(&spec.image).ok().and_then(|i| i.config.config.healthcheck).as_ref());
        let up_within = Duration::from_secs(30) + health.as_ref().map(|h| Duration::from_millis(h.start_period_ms) + h.interval() * 2 + h.timeout()).unwrap_or_default();
        let deadline = Instant::now() + up_within;
        // Then it must keep serving for the monitor window.
        let mut serving_since: Option<Instant> = None;
        loop {
            let x = self.container(&c.id).map_err(|e| e.to_string())?;
            let healthy = x.health.status.is_empty() || x.health.status == "healthy";
            let failed = x.restart_count > 0 || x.state == "exited" || x.health.status == "unhealthy";
            if !failed && x.state == "running" && healthy {
                let since = *serving_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_millis(monitor_ms) {
                    return Ok(c.id);
                }
            }
            if failed || (serving_since.is_none() && Instant::now() > deadline) {
                let logs: Vec<String> = self.logs(&c.id).map(|l| l.into_iter().map(|x| x.text).collect::<String>().lines().map(str::to_string).collect()).unwrap_or_default();
                let tail = logs[logs.len().saturating_sub(3)..].join(" | ");
                let why = if x.health.status == "unhealthy" {
                    format!("replica {name} is unhealthy ({})", x.health.log.last().map(|p| p.output.trim().to_string()).unwrap_or_default())
                } else if failed {
                    let log = if tail.is_empty() { String::new() } else { format!(" (log: {tail})") };
                    // Once restarted, the store holds the new run's code, not the exit's.
                    if x.state == "exited" { format!("replica {name} exited with code {}{log}", x.exit_code) } else { format!("replica {name} exited and was restarted{log}") }
                } else {
                    format!("replica {name} was not serving after {:?} (state {}, health {})", up_within, x.state, if x.health.status.is_empty() { "none" } else { &x.health.status })
                };
                let _ = self.remove_with(&c.id, true, true);
                return Err(why);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A replica leaving: out of the balancing already, it gets its stop
    /// signal and grace time (requests in flight finish), then goes.
    fn stop_then_remove(&self, c: &Container) {
        if c.running() {
            let _ = self.stop(&c.id, Some(c.spec.stop_timeout.unwrap_or(10)));
        }
        let _ = self.remove_with(&c.id, true, true);
    }

    /// Runs one replica and joins it to the service's other networks.
    pub(super) fn run_replica(&self, spec: &crate::container::RunSpec, extra: &[(String, Vec<String>)]) -> Result<Container> {
        let (c, _) = self.run(spec, Attach::Detached)?;
        crate::fault!("service.replica");
        for (net, aliases) in extra {
            if let Err(e) = self.network_connect(net, &c.id, None, aliases) {
                let _ = self.remove_with(&c.id, true, true);
                return Err(e);
            }
        }
        Ok(c)
    }

    /// Brings a service back to its record after a scale or update was cut
    /// short: a `.next` replica an update left goes, missing slots start,
    /// and replicas of another image than the record's are replaced.
    pub(crate) fn service_reconcile(&self, key: &str) -> Result<()> {
        let s = self.service(key)?;
        let _ops = self.service_ops(&s.id)?;
        for (_, c) in service::replicas(&self.db(), &s.name)? {
            if c.name.ends_with(".next") {
                self.stop_then_remove(&c);
            }
        }
        self.scale_locked(&s.id, s.spec.replicas)?;
        self.ensure_supervisor(&s.id)?;
        let stale: Vec<u32> = service::replicas(&self.db(), &s.name)?.into_iter().filter(|(_, c)| c.image_ref != s.spec.template.image).map(|(slot, _)| slot).collect();
        self.replace_slots(&s.id, &stale, &s.spec).map_err(|why| EngineError::Other(format!("service {}: replacing replicas of an update cut short: {why}", s.name)))
    }

    /// Removes the replicas (after they leave the balancing), the VIP, the
    /// published ports and the record.
    pub fn service_remove(&self, key: &str) -> Result<Service> {
        let id = self.service(key)?.id;
        let ops = self.service_ops(&id)?;
        let mut s = self.service(&id)?;
        s.spec.replicas = 0;
        service::set_spec(&mut self.db(), &s.id, &s.spec)?;
        // Best effort from here on: a firewall that cannot be written (the
        // very reason a create is being undone) must not keep the record.
        let _ = self.service_sync(&s);
        let reps = service::replicas(&self.db(), &s.name)?;
        std::thread::scope(|sc| {
            for (_, c) in &reps {
                sc.spawn(move || self.remove_with(&c.id, true, true));
            }
        });
        let net = self.network(&s.network_id).ok();
        {
            let mut db = self.db();
            let owner = s.owner();
            let _ = network::unpublish_all(&mut db, &owner);
            if let Some(n) = &net {
                let _ = network::detach(&mut db, &owner, n);
            }
            service::delete(&mut db, &s.id)?;
        }
        if let Some(n) = &net {
            let prefix = network::ipam::Subnet::parse(&n.subnet).map(|x| x.prefix).unwrap_or(24);
            let _ = crate::sys::netlink::Netlink::new().and_then(|nl| nl.del_address(&n.bridge, s.vip, prefix));
        }
        // The supervisor would see the record gone and leave within its
        // tick; stopped here, no process of a removed service outlives
        // the command. Its lock files go too, for one that had died.
        drop(ops);
        super::supervisor::stop(&self.paths, &s.id);
        super::supervisor::forget(&self.paths, &s.id);
        self.service_sync(&s)?;
        self.event("service", "remove", &s.id, &[("name", &s.name)]);
        Ok(s)
    }
}
