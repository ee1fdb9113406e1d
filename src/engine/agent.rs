//! The node agent: one small process per swarm node. It holds an etcd
//! lease as the node's heartbeat (`alive/NODE`), runs the tasks the leader
//! assigned to this node through the local engine and reports their state,
//! and, on a manager, campaigns to lead. The leader runs the scheduler
//! (cluster/schedule.rs) and writes its decisions as task records.
//!
//! Like a service's supervisor, its liveness is a lock it holds
//! (`$BERTH_RUN/agent.lock`); the next berth command on the node starts
//! one if none holds it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::swarm::{list_json, nodes_of, statuses_of, SWARM_SERVICE_LABEL, TASK_LABEL};
use super::{Engine, EngineError, Result};
use crate::cluster::etcd::Etcd;
use crate::cluster::membership::Membership;
use crate::cluster::model::{self, ClusterService, Task, TaskStatus};
use crate::cluster::schedule::{self, Action, NodeView, Role, ServiceView, TaskView};
use crate::store::{FileLock, Paths};

/// The heartbeat: a node whose agent misses it this long is down, and its
/// tasks are placed again.
pub const LEASE_TTL: i64 = 5;
const TICK: Duration = Duration::from_millis(1000);
/// Rounds woken by changes are at least this far apart.
const MIN_ROUND: Duration = Duration::from_millis(50);

fn lock_path(paths: &Paths) -> PathBuf {
    paths.run.join("agent.lock")
}

impl Engine {
    /// Starts this node's agent unless one runs (or the node is in no swarm).
    pub fn ensure_agent(&self) -> Result<()> {
        if self.swarm().is_none() {
            return Ok(());
        }
        self.ensure_helper(&lock_path(&self.paths), &["agent"], &self.paths.root.join("agent.log"), "the node agent")
    }

    pub fn agent_running(&self) -> bool {
        FileLock::held(&lock_path(&self.paths))
    }

    /// Stops the agent (leave): it sees the membership gone too.
    pub(super) fn stop_agent(&self) {
        super::helper::stop_helpers(&self.paths, &["agent"], Duration::from_secs(3));
    }
}

/// Entry of the hidden `agent` command.
pub fn main() -> i32 {
    let paths = Paths::from_env(None);
    let (_alive, engine) = match super::helper::become_helper(&lock_path(&paths), "agent", "info") {
        Ok(x) => x,
        Err(code) => return code,
    };
    loop {
        let Some(m) = engine.swarm() else {
            tracing::info!("agent: this node left the swarm");
            return 0;
        };
        if let Err(e) = session(&engine, &m) {
            tracing::warn!("agent: {e}; trying again");
        }
        std::thread::sleep(TICK);
    }
}

/// One lease's life: until etcd cannot be reached or the lease is lost.
fn session(engine: &Engine, m: &Membership) -> Result<()> {
    let etcd = Etcd::connect(&m.etcd, super::swarm::ETCD_TIMEOUT).map_err(|e| EngineError::Other(e.to_string()))?;
    let e = |x: crate::cluster::etcd::EtcdError| EngineError::Other(x.to_string());
    let lease = etcd.lease_grant(LEASE_TTL).map_err(e)?;
    etcd.put(&model::alive_key(&m.node), "1", Some(lease)).map_err(e)?;
    tracing::info!("agent: node {} up (lease {lease:x})", m.name);
    let beat = Heartbeat::start(&m.etcd, lease);
    let mut leading = false;
    // What was last reported per task: written again only when it changes.
    let mut reported: HashMap<String, String> = HashMap::new();
    let mut suspects = std::collections::HashSet::new();
    loop {
        let t0 = Instant::now();
        if engine.swarm().as_ref().map(|x| &x.node) != Some(&m.node) {
            let _ = etcd.lease_revoke(lease);
            return Ok(());
        }
        if beat.lost() {
            return Err(EngineError::Other("the node's lease expired".into()));
        }
        if m.role == Role::Manager && !leading {
            // A failed campaign is tried again next round: only a lost
            // lease ends the session.
            leading = etcd.campaign(&model::leader_key(), m.node.as_bytes(), lease).unwrap_or_else(|x| {
                tracing::warn!("agent: campaign: {x}");
                false
            });
            if leading {
                tracing::info!("agent: node {} leads", m.name);
            }
        }
        if leading && let Err(x) = lead(&etcd) {
            tracing::warn!("agent: leading: {x}");
        }
        if let Err(x) = run_tasks(engine, &etcd, m, lease, &mut reported) {
            tracing::warn!("agent: tasks: {x}");
        }
        if let Err(x) = engine.overlay_sync(&etcd, m, &mut suspects) {
            tracing::warn!("agent: overlays: {x}");
        }
        if let Err(x) = engine.migrations_sync(&etcd, m) {
            tracing::warn!("agent: migrations: {x}");
        }
        // Until the next round: a tick, or sooner when the swarm changes
        // (a service, a task, a container on an overlay), so that names and
        // placements follow in tens of milliseconds, not a second.
        std::thread::sleep(MIN_ROUND.saturating_sub(t0.elapsed()));
        let deadline = t0 + TICK;
        if Instant::now() < deadline && etcd.watch_prefix(model::ROOT, 0, || Instant::now() >= deadline, |_| false).is_err() {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        }
    }
}

/// The lease kept alive on its own thread and connection, so that a slow
/// round (starting many containers, etcd busy electing) never makes a node
/// look down. A failed keep-alive is tried again with the same lease until
/// its TTL is spent: a new lease would drop the node's key meanwhile.
struct Heartbeat {
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Heartbeat {
    fn start(endpoints: &[String], lease: i64) -> Heartbeat {
        use std::sync::atomic::Ordering;
        let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (l, st, eps) = (lost.clone(), stop.clone(), endpoints.to_vec());
        let ttl = Duration::from_secs(LEASE_TTL as u64);
        std::thread::spawn(move || {
            let mut last_ok = Instant::now();
            let mut etcd: Option<Etcd> = None;
            while !st.load(Ordering::Relaxed) {
                std::thread::sleep(TICK / 2);
                // Short calls, so a stuck member leaves time for another.
                if etcd.is_none() {
                    etcd = Etcd::connect(&eps, Duration::from_millis(1500)).ok();
                }
                match etcd.as_ref().map(|c| c.lease_keepalive(lease)) {
                    Some(Ok(t)) if t > 0 => last_ok = Instant::now(),
                    Some(Ok(_)) => break,
                    Some(Err(x)) => tracing::warn!("agent: heartbeat: {x}"),
                    None => {}
                }
                if last_ok.elapsed() >= ttl {
                    break;
                }
            }
            l.store(true, Ordering::Relaxed);
        });
        Heartbeat { lost, stop }
    }

    fn lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The leader's round: the scheduler's plan over what etcd holds, written
/// back as task records.
fn lead(etcd: &Etcd) -> Result<()> {
    let e = |x: crate::cluster::etcd::EtcdError| EngineError::Other(x.to_string());
    let nodes: Vec<NodeView> = nodes_of(etcd)?
        .into_iter()
        .map(|n| NodeView { id: n.record.id.clone(), name: n.record.name.clone(), role: n.record.role, availability: n.record.availability, ready: n.ready, labels: n.record.labels.clone() })
        .collect();
    let services: Vec<ClusterService> = list_json(etcd, &format!("{}services/", model::ROOT))?;
    let mut tasks: Vec<Task> = list_json(etcd, &format!("{}tasks/", model::ROOT))?;
    tasks.sort_by(|a, b| a.created.cmp(&b.created));
    let views: Vec<ServiceView> = services.iter().map(|s| ServiceView { id: s.id.clone(), mode: s.mode, constraints: s.constraints.clone() }).collect();
    let tviews: Vec<TaskView> = tasks.iter().map(|t| TaskView { id: t.id.clone(), service: t.service.clone(), slot: t.slot, node: t.node.clone() }).collect();
    for a in schedule::plan(&nodes, &views, &tviews) {
        match a {
            Action::Start { service, slot, node } => {
                let version = services.iter().find(|s| s.id == service).map(|s| s.version).unwrap_or(1);
                let image = services.iter().find(|s| s.id == service).map(|s| s.spec.template.image.clone()).unwrap_or_default();
                let t = Task { id: crate::store::new_id(), service, slot, node, version, created: crate::store::now_rfc3339(), image };
                etcd.put(&model::task_key(&t.id), serde_json::to_vec(&t).unwrap_or_default(), None).map_err(e)?;
            }
            Action::Shutdown { task, why } => {
                tracing::info!("agent: task {} goes: {why}", &task[..12]);
                etcd.delete(&model::task_key(&task)).map_err(e)?;
                etcd.delete(&model::status_key(&task)).map_err(e)?;
            }
            Action::Pending { .. } => {}
        }
    }
    roll(etcd)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Rolling updates: each service with one in progress gets its next batch
/// of tasks replaced (same slot, same node) once the last batch's tasks
/// have run for the monitor period; a new task that fails rolls the whole
/// service back, itself as a rolling update.
fn roll(etcd: &Etcd) -> Result<()> {
    let e = |x: crate::cluster::etcd::EtcdError| EngineError::Other(x.to_string());
    let prefix = format!("{}services/", model::ROOT);
    let mut statuses: Option<HashMap<String, TaskStatus>> = None;
    let mut tasks: Option<Vec<Task>> = None;
    for kv in etcd.get_prefix(&prefix).map_err(e)? {
        let Ok(mut s) = serde_json::from_slice::<ClusterService>(&kv.value) else { continue };
        let Some(mut st) = s.update_status.clone() else { continue };
        if st.state != "updating" && st.state != "rolling_back" {
            continue;
        }
        let statuses = match &statuses {
            Some(x) => x,
            None => statuses.insert(statuses_of(etcd)?),
        };
        let tasks = match &tasks {
            Some(x) => x,
            None => tasks.insert(list_json::<Task>(etcd, &format!("{}tasks/", model::ROOT))?),
        };
        let mine: Vec<&Task> = tasks.iter().filter(|t| t.service == s.id).collect();
        let mut stale: Vec<&&Task> = mine.iter().filter(|t| t.version < s.version).collect();
        // The ones not running (a failed new one, when rolling back) first.
        stale.sort_by_key(|t| statuses.get(&t.id).is_some_and(|x| x.state == "running"));
        let fresh: Vec<&&Task> = mine.iter().filter(|t| t.version == s.version).collect();
        let now = now_ms();
        let failed = fresh.iter().find_map(|t| statuses.get(&t.id).filter(|x| x.state == "failed").map(|x| (t, x)));
        if let Some((t, x)) = failed {
            let why = format!("task {} failed: {}", t.container_name(&s.name), x.error);
            if st.state == "updating"
                && let Some(p) = s.spec.previous.take()
            {
                tracing::warn!("agent: service {}: {why}; rolling back to {}", s.name, p.image);
                s.spec.template.image = p.image;
                s.spec.template.cmd = p.cmd;
                s.spec.template.env = p.env;
                s.spec.previous = st.prior.clone();
                s.version += 1;
                st = model::UpdateStatus { state: "rolling_back".into(), message: why, last_batch_ms: 0, prior: None };
            } else {
                st.state = "paused".into();
                st.message = format!("{}; and the rollback: {why}", st.message);
            }
        } else {
            // Settled: running for the monitor period.
            let settled = |t: &Task| {
                statuses.get(&t.id).is_some_and(|x| {
                    x.state == "running" && crate::store::parse_rfc3339(&x.at).is_some_and(|at| (now as f64 / 1000.0 - at) * 1000.0 >= s.spec.update.monitor_ms as f64)
                })
            };
            let all_settled = fresh.iter().all(|t| settled(t));
            if stale.is_empty() && all_settled {
                st.state = if st.state == "updating" { "completed".into() } else { "rolled_back".into() };
            } else if all_settled && now.saturating_sub(st.last_batch_ms) >= s.spec.update.delay_ms && !stale.is_empty() {
                for t in stale.iter().take(s.spec.update.parallelism.max(1) as usize) {
                    etcd.delete(&model::task_key(&t.id)).map_err(e)?;
                    etcd.delete(&model::status_key(&t.id)).map_err(e)?;
                    let n = Task { id: crate::store::new_id(), service: s.id.clone(), slot: t.slot, node: t.node.clone(), version: s.version, created: crate::store::now_rfc3339(), image: s.spec.template.image.clone() };
                    etcd.put(&model::task_key(&n.id), serde_json::to_vec(&n).unwrap_or_default(), None).map_err(e)?;
                }
                st.last_batch_ms = now;
            } else {
                continue;
            }
        }
        s.update_status = Some(st);
        // A write meanwhile (a scale, another update) wins; the next round
        // looks again.
        let _ = etcd.compare_and_swap(&kv.key, kv.mod_revision, serde_json::to_vec(&s).unwrap_or_default());
    }
    Ok(())
}

/// This node's part: a running container for each task assigned here, and
/// none for a task that is gone (moved away, scaled down, its service
/// removed, or re-placed while this node was cut off).
fn run_tasks(engine: &Engine, etcd: &Etcd, m: &Membership, lease: i64, reported: &mut HashMap<String, String>) -> Result<()> {
    let e = |x: crate::cluster::etcd::EtcdError| EngineError::Other(x.to_string());
    let services: HashMap<String, ClusterService> = list_json::<ClusterService>(etcd, &format!("{}services/", model::ROOT))?.into_iter().map(|s| (s.id.clone(), s)).collect();
    let mine: Vec<Task> = list_json::<Task>(etcd, &format!("{}tasks/", model::ROOT))?.into_iter().filter(|t| t.node == m.node).collect();
    let local = engine.containers(true)?;
    for c in local.iter().filter(|c| c.spec.labels.contains_key(TASK_LABEL)) {
        let task = &c.spec.labels[TASK_LABEL];
        if !mine.iter().any(|t| &t.id == task) {
            tracing::info!("agent: removing {} (task {} is no longer here)", c.name, &task[..12.min(task.len())]);
            let _ = engine.remove_with(&c.id, true, true);
        }
    }
    for t in &mine {
        let Some(s) = services.get(&t.service) else { continue };
        let have = local.iter().find(|c| c.spec.labels.get(TASK_LABEL) == Some(&t.id));
        let status = match have {
            Some(c) if c.running() || c.state == "restarting" => TaskStatus { state: "running".into(), container: c.id.clone(), error: String::new(), at: c.started_at.clone() },
            other => {
                if let Some(c) = other {
                    let _ = engine.remove_with(&c.id, true, true);
                }
                let name = t.container_name(&s.name);
                // A container of an older task under the same name (a slot
                // that came back here) gives way.
                if let Ok(c) = engine.container(&name)
                    && c.spec.labels.contains_key(TASK_LABEL)
                {
                    let _ = engine.remove_with(&c.id, true, true);
                }
                let mut spec = crate::service::replica_spec(&s.spec, t.slot.max(1), &name);
                spec.labels.remove(crate::service::SERVICE_LABEL);
                spec.labels.remove(crate::service::SLOT_LABEL);
                spec.labels.insert(TASK_LABEL.into(), t.id.clone());
                spec.labels.insert(SWARM_SERVICE_LABEL.into(), s.name.clone());
                spec.labels.insert("berth.swarm.slot".into(), t.slot.to_string());
                match engine.run(&spec, super::Attach::Detached) {
                    Ok((c, _)) => TaskStatus { state: "running".into(), container: c.id, error: String::new(), at: crate::store::now_rfc3339() },
                    Err(x) => {
                        let _ = engine.remove_with(&name, true, true);
                        TaskStatus { state: "failed".into(), container: String::new(), error: x.to_string(), at: crate::store::now_rfc3339() }
                    }
                }
            }
        };
        let said = format!("{} {}", status.state, status.container);
        if reported.get(&t.id) != Some(&said) {
            etcd.put(&model::status_key(&t.id), serde_json::to_vec(&status).unwrap_or_default(), Some(lease)).map_err(e)?;
            reported.insert(t.id.clone(), said);
        }
    }
    reported.retain(|k, _| mine.iter().any(|t| &t.id == k));
    Ok(())
}
