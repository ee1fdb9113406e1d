//! The service supervisor: on a host without a swarm, one small process
//! per service keeps it at its declared count. A replica's monitor brings
//! back a process that exits (its restart policy), but nothing brought
//! back a replica that `kill`, `stop` or `rm -f` took, or whose monitor
//! died with it. The supervisor watches the root's events and, once a
//! second, the replicas themselves, and refills the slots.
//!
//! It is the only berth process that outlives commands besides monitors,
//! and only while a service exists: with no service, berth stays
//! daemonless. Its liveness is a lock on `$BERTH_RUN/services/ID.sup`
//! (held while it runs, so a crashed one frees it); any service command
//! starts one where none holds it. Slots are changed under a second lock,
//! `ID.ops`, that scale, update and rm hold too, so the supervisor never
//! refills a slot an update is replacing or an rm is emptying.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Engine, EngineError, Result};
use crate::container::{Container, RestartPolicy};
use crate::service::{self, Service};
use crate::store::{FileLock, Paths};

/// Where a replica is looked at even when no event came: a monitor
/// killed with SIGKILL records nothing.
const LOOK_EVERY: Duration = Duration::from_secs(1);

fn dir(paths: &Paths) -> PathBuf {
    paths.run.join("services")
}

fn alive_lock(paths: &Paths, id: &str) -> PathBuf {
    dir(paths).join(format!("{id}.sup"))
}

fn ops_lock(paths: &Paths, id: &str) -> PathBuf {
    dir(paths).join(format!("{id}.ops"))
}

impl Engine {
    /// Holds the service's slots for a scale, update or rm: the supervisor
    /// waits meanwhile.
    pub(super) fn service_ops(&self, id: &str) -> Result<FileLock> {
        std::fs::create_dir_all(dir(&self.paths)).map_err(|e| EngineError::Other(format!("creating {}: {e}", dir(&self.paths).display())))?;
        Ok(FileLock::exclusive(&ops_lock(&self.paths, id))?)
    }

    /// Whether the service's supervisor runs.
    pub fn supervised(&self, id: &str) -> bool {
        FileLock::held(&alive_lock(&self.paths, id))
    }

    /// Starts the service's supervisor unless one runs. Cheap when it
    /// does: one lock probe.
    pub fn ensure_supervisor(&self, id: &str) -> Result<()> {
        let log = dir(&self.paths).join(format!("{id}.log"));
        self.ensure_helper(&alive_lock(&self.paths, id), &["supervise", id], &log, &format!("the supervisor of service {id}"))
    }

    /// Starts the supervisor of every service that has none (one killed,
    /// or a reboot): service commands call this, as the next command after
    /// a crash re-adopts what it finds.
    pub fn adopt_services(&self) {
        for s in self.services().unwrap_or_default() {
            if let Err(e) = self.ensure_supervisor(&s.id) {
                tracing::warn!("service {}: {e}", s.name);
            }
        }
    }

    /// Refills the slots of service `id` that lost their replica; returns
    /// how many. Does nothing while a scale, update or rm holds the slots.
    pub fn service_heal(&self, id: &str) -> Result<usize> {
        let Some(_ops) = FileLock::try_exclusive(&ops_lock(&self.paths, id))? else { return Ok(0) };
        let s = self.service(id)?;
        if s.spec.creating {
            return Ok(0);
        }
        let reps = service::replicas(&self.db(), &s.name)?;
        let mut healed = 0;
        for slot in 1..=s.spec.replicas {
            let mine: Vec<&Container> = reps.iter().filter(|(k, c)| *k == slot && !c.name.ends_with(".next")).map(|(_, c)| c).collect();
            if mine.iter().any(|c| holds(c)) {
                continue;
            }
            if !mine.is_empty() && !mine.iter().any(|c| lost(&s, c)) {
                continue;
            }
            // A `restart` stops, then starts: give it the moment between.
            if mine.iter().any(|c| just_ended(c)) {
                continue;
            }
            for c in &mine {
                let _ = self.remove_with(&c.id, true, true);
            }
            let name = crate::service::ops::replica_name(&s.name, slot);
            let spec = service::replica_spec(&s.spec, slot, &name);
            match self.run_replica(&spec, &s.spec.extra_networks) {
                Ok(c) => {
                    tracing::info!("supervisor: service {}: slot {slot} refilled with {}", s.name, &c.id[..12]);
                    healed += 1;
                }
                Err(e) => {
                    let _ = self.remove_with(&name, true, true);
                    tracing::warn!("supervisor: service {}: slot {slot}: {e}", s.name);
                }
            }
        }
        if healed > 0 {
            self.service_sync(&self.service(id)?)?;
            self.event("service", "heal", &s.id, &[("name", &s.name), ("replicas", &healed.to_string())]);
        }
        Ok(healed)
    }
}

/// Still holding its slot: running, paused, or being restarted by its
/// monitor.
fn holds(c: &Container) -> bool {
    c.running() || c.state == "restarting" || c.state == "paused"
}

/// How long a stopped replica is left to whoever stopped it (a
/// `restart`) before its slot is refilled.
const GRACE: Duration = Duration::from_secs(1);

fn just_ended(c: &Container) -> bool {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    crate::store::parse_rfc3339(&c.finished_at).is_some_and(|t| now - t < GRACE.as_secs_f64())
}

/// A replica that will not come back by itself. Swarm's restart
/// conditions: `any` (berth's default for services) replaces every
/// stopped one; `on-failure` one that failed, killed ones included;
/// `none` only one that is gone, which `replicas` does not list.
fn lost(s: &Service, c: &Container) -> bool {
    match c.spec.restart {
        _ if c.state == "created" || c.state == "dead" => true,
        RestartPolicy::No if s.spec.restart_explicit => false,
        RestartPolicy::OnFailure(_) => c.exit_code != 0,
        _ => true,
    }
}

/// Entry of the hidden `supervise ID` command.
pub fn main(id: &str) -> i32 {
    let paths = Paths::from_env(None);
    let (_alive, engine) = match super::helper::become_helper(&alive_lock(&paths, id), "supervisor", "warn") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut name = match engine.service(id) {
        Ok(s) => s.name,
        Err(_) => return done(&engine, id),
    };
    tracing::debug!("supervisor: watching service {name}");
    let mut due = true;
    let mut last = Instant::now();
    let mut gone = false;
    engine.follow_events_ticking(None, &Default::default(), |ev| {
        if let Some(e) = ev {
            // Its replicas' ends, and the service's own changes.
            let ours = e.actor.attributes.get(service::SERVICE_LABEL) == Some(&name) || e.actor.id == id;
            if ours && matches!(e.action.as_str(), "die" | "destroy" | "stop" | "kill" | "remove" | "update") {
                due = true;
            }
            return true;
        }
        if !due && last.elapsed() < LOOK_EVERY {
            return true;
        }
        due = false;
        last = Instant::now();
        match engine.service(id) {
            Ok(s) => name = s.name,
            Err(_) => {
                gone = true;
                return false;
            }
        }
        if let Err(e) = engine.service_heal(id) {
            tracing::warn!("supervisor: service {name}: {e}");
        }
        true
    });
    if gone { done(&engine, id) } else { 0 }
}

fn done(engine: &Engine, id: &str) -> i32 {
    tracing::debug!("supervisor: service {id} is gone");
    forget(&engine.paths, id);
    0
}

/// Stops the supervisor of service `id`, if one runs.
pub(super) fn stop(paths: &Paths, id: &str) {
    if FileLock::held(&alive_lock(paths, id)) {
        super::helper::stop_helpers(paths, &["supervise", id], Duration::from_secs(2));
    }
}

/// The service is gone: so are its supervisor's files.
pub(super) fn forget(paths: &Paths, id: &str) {
    for p in [alive_lock(paths, id), ops_lock(paths, id), dir(paths).join(format!("{id}.log"))] {
        let _ = std::fs::remove_file(p);
    }
}
