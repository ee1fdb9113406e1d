//! Swarm mode through the engine: init, join, leave, nodes, and services
//! placed over the nodes. The state is etcd's (cluster/model.rs); the
//! node agent (engine/agent.rs) carries out what the leader decides.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::{Engine, EngineError, Result};
use crate::cluster::etcd::{ClusterState, Etcd, LocalEtcd, MemberConfig};
use crate::cluster::membership::{self, Membership};
use crate::cluster::model::{self, Cluster, ClusterService, NodeRecord, Task, TaskStatus};
use crate::cluster::schedule::{Availability, Constraint, Mode, Role};

/// Every etcd call waits at most this long.
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(5);

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Other(e.to_string())
}

fn get_json<T: serde::de::DeserializeOwned>(etcd: &Etcd, key: &str) -> Result<Option<T>> {
    match etcd.get(key).map_err(err)? {
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| err(format!("etcd {key}: {e}"))),
        None => Ok(None),
    }
}

/// What each task's node reported, by task id, in one read.
pub(crate) fn statuses_of(etcd: &Etcd) -> Result<std::collections::HashMap<String, TaskStatus>> {
    let prefix = format!("{}status/", model::ROOT);
    Ok(etcd
        .get_prefix(&prefix)
        .map_err(err)?
        .into_iter()
        .filter_map(|kv| Some((model::id_of(&kv.key, &prefix)?.to_string(), serde_json::from_slice(&kv.value).ok()?)))
        .collect())
}

pub(crate) fn list_json<T: serde::de::DeserializeOwned>(etcd: &Etcd, prefix: &str) -> Result<Vec<T>> {
    Ok(etcd.get_prefix(prefix).map_err(err)?.into_iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect())
}

fn put_json<T: serde::Serialize>(etcd: &Etcd, key: &str, v: &T, lease: Option<i64>) -> Result<()> {
    etcd.put(key, serde_json::to_vec(v).map_err(err)?, lease).map_err(err)?;
    Ok(())
}

/// A node as `node ls` shows it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub record: NodeRecord,
    pub ready: bool,
    pub leader: bool,
    pub tasks: usize,
}

impl NodeInfo {
    pub fn state(&self) -> &'static str {
        if self.ready { "ready" } else { "down" }
    }
}

/// A container on some node, as `Node.containers()` lists it.
#[derive(Clone, Debug)]
pub struct NodeContainer {
    /// Empty when the node has not said (a task still pending).
    pub id: String,
    pub name: String,
    pub state: String,
    /// The swarm service it is a task of, if any.
    pub service: String,
}

/// A task with what its node made of it.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    pub task: Task,
    pub node_name: String,
    pub status: Option<TaskStatus>,
}

impl TaskInfo {
    /// Its state and error as `service ps` shows them ("assigned" before
    /// its node says anything).
    pub fn shown_state(&self) -> (String, String) {
        self.status.as_ref().map(|x| (x.state.clone(), x.error.clone())).unwrap_or(("assigned".into(), String::new()))
    }
}

fn node_name_default() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "node".into())
}

impl Engine {
    pub fn swarm(&self) -> Option<Membership> {
        membership::load(&self.paths)
    }

    /// This node's membership and a connection to the swarm's etcd.
    pub(crate) fn swarm_etcd(&self) -> Result<(Membership, Etcd)> {
        let m = self.swarm().ok_or_else(|| err("this node is not part of a swarm; make one with `berth swarm init` or join one with `berth swarm join`"))?;
        let etcd = Etcd::connect(&m.etcd, ETCD_TIMEOUT).map_err(err)?;
        Ok((m, etcd))
    }

    /// `swarm init`: a new cluster whose first manager is this node, on an
    /// etcd of its own (a member started here) or on the given one.
    pub fn swarm_init(&self, addr: Ipv4Addr, name: Option<&str>, etcd_urls: Option<Vec<String>>, data_path_port: Option<u16>) -> Result<Cluster> {
        if let Some(m) = self.swarm() {
            return Err(err(format!("this node is already part of swarm {} as {}; leave it first (berth swarm leave --force)", &m.cluster[..12], m.name)));
        }
        let name = name.map(str::to_string).unwrap_or_else(node_name_default);
        let (urls, member) = match etcd_urls {
            Some(u) => (u, None),
            None => {
                let cfg = MemberConfig {
                    name: name.clone(),
                    data_dir: membership::etcd_dir(&self.paths).join("data"),
                    client_url: format!("http://{addr}:2379"),
                    peer_url: format!("http://{addr}:2380"),
                    initial_cluster: crate::cluster::etcd::initial_cluster(&[(name.as_str(), format!("http://{addr}:2380").as_str())]),
                    state: ClusterState::New,
                };
                let url = cfg.client_url.clone();
                self.start_member(&cfg)?;
                (vec![url], Some(name.clone()))
            }
        };
        let runs_member = member.is_some();
        let undo = |e: EngineError| {
            if runs_member {
                self.stop_member();
            }
            e
        };
        let etcd = Etcd::connect(&urls, ETCD_TIMEOUT).map_err(err).map_err(undo)?;
        let cluster_id = crate::store::new_id();
        let c = Cluster { id: cluster_id.clone(), created: crate::store::now_rfc3339(), worker_token: model::make_token(&cluster_id[..25]), manager_token: model::make_token(&cluster_id[..25]), etcd: urls.clone(), data_path_port: data_path_port.unwrap_or(0) };
        let body = serde_json::to_vec(&c).map_err(err)?;
        if !etcd.create(&model::cluster_key(), body, None).map_err(err).map_err(undo)? {
            let have: Option<Cluster> = get_json(&etcd, &model::cluster_key()).ok().flatten();
            return Err(undo(err(format!("etcd at {} already holds swarm {}; join it with a token (berth swarm join), or give an empty etcd", urls.join(","), have.map(|h| h.id[..12].to_string()).unwrap_or_default()))));
        }
        let m = Membership { cluster: cluster_id, node: crate::store::new_id(), name, role: Role::Manager, addr, etcd: urls, member };
        self.register_node(&etcd, &m).map_err(undo)?;
        self.ensure_agent()?;
        Ok(c)
    }

    fn register_node(&self, etcd: &Etcd, m: &Membership) -> Result<()> {
        let taken = list_json::<NodeRecord>(etcd, &format!("{}nodes/", model::ROOT))?.into_iter().any(|n| n.name == m.name);
        if taken {
            return Err(err(format!("the swarm already has a node named {}; give this one another name (--name)", m.name)));
        }
        let rec = NodeRecord { id: m.node.clone(), name: m.name.clone(), addr: Some(m.addr), role: m.role, availability: Availability::Active, labels: BTreeMap::new(), joined: crate::store::now_rfc3339() };
        put_json(etcd, &model::node_key(&m.node), &rec, None)?;
        membership::save(&self.paths, m).map_err(err)
    }

    /// `swarm join --token T MANAGER`: joins as worker or manager (by the
    /// token). A manager runs an etcd member of its own too.
    pub fn swarm_join(&self, token: &str, manager: &str, addr: Ipv4Addr, name: Option<&str>) -> Result<Membership> {
        if let Some(m) = self.swarm() {
            return Err(err(format!("this node is already part of swarm {} as {}; leave it first", &m.cluster[..12], m.name)));
        }
        let (prefix, _) = model::parse_token(token).map_err(err)?;
        let host = manager.trim_start_matches("http://");
        let url = if host.contains(':') { format!("http://{host}") } else { format!("http://{host}:2379") };
        let etcd = Etcd::connect(std::slice::from_ref(&url), ETCD_TIMEOUT).map_err(err)?;
        let c: Cluster = get_json(&etcd, &model::cluster_key())?.ok_or_else(|| err(format!("no swarm at {url}: its etcd holds none (berth swarm init makes one)")))?;
        let role = if token == c.manager_token {
            Role::Manager
        } else if token == c.worker_token {
            Role::Worker
        } else {
            return Err(err(format!("the join token is not valid for the swarm at {url}{}; ask a manager (berth swarm join-token worker)", if c.id.starts_with(&prefix) { "" } else { " (it is another swarm's)" })));
        };
        let name = name.map(str::to_string).unwrap_or_else(node_name_default);
        let mut member = None;
        let mut urls = c.etcd.clone();
        if role == Role::Manager {
            let peer = format!("http://{addr}:2380");
            let client = format!("http://{addr}:2379");
            let mut ic: Vec<(String, String)> = etcd.member_list().map_err(err)?.into_iter().filter(|x| !x.name.is_empty()).map(|x| (x.name, x.peer_urls.first().cloned().unwrap_or_default())).collect();
            // etcd adds a voting member only once every member has been
            // connected a while (strict reconfiguration): right after another
            // manager joined it says "unhealthy cluster" for some seconds.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match etcd.member_add(&peer) {
                    Ok(_) => break,
                    Err(e) if e.to_string().contains("unhealthy cluster") && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(250)),
                    Err(e) => return Err(err(e)),
                }
            }
            ic.push((name.clone(), peer.clone()));
            let cfg = MemberConfig {
                name: name.clone(),
                data_dir: membership::etcd_dir(&self.paths).join("data"),
                client_url: client.clone(),
                peer_url: peer.clone(),
                initial_cluster: crate::cluster::etcd::initial_cluster(&ic.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect::<Vec<_>>()),
                state: ClusterState::Existing,
            };
            if let Err(e) = self.start_member(&cfg) {
                let _ = etcd.member_remove_by_peer(&peer);
                return Err(e);
            }
            member = Some(name.clone());
            if !urls.contains(&client) {
                urls.push(client);
                let mut c2 = c.clone();
                c2.etcd = urls.clone();
                put_json(&etcd, &model::cluster_key(), &c2, None)?;
            }
        }
        let m = Membership { cluster: c.id.clone(), node: crate::store::new_id(), name, role, addr, etcd: urls, member };
        if let Err(e) = self.register_node(&etcd, &m) {
            if m.member.is_some() {
                let _ = etcd.member_remove_by_peer(&format!("http://{addr}:2380"));
                self.stop_member();
            }
            return Err(e);
        }
        self.ensure_agent()?;
        Ok(m)
    }

    pub fn swarm_join_token(&self, role: Role) -> Result<String> {
        let (m, etcd) = self.swarm_etcd()?;
        if m.role != Role::Manager {
            return Err(err("this node is a worker: join tokens are a manager's; ask one (berth swarm join-token on a manager)"));
        }
        let c: Cluster = get_json(&etcd, &model::cluster_key())?.ok_or_else(|| err("the swarm's record is missing from etcd"))?;
        Ok(match role {
            Role::Manager => c.manager_token,
            Role::Worker => c.worker_token,
        })
    }

    /// `swarm leave`: this node's tasks, its records, its agent and its
    /// etcd member go. A manager needs --force (the swarm may lose its
    /// quorum).
    pub fn swarm_leave(&self, force: bool) -> Result<()> {
        let m = self.swarm().ok_or_else(|| err("this node is not part of a swarm"))?;
        if m.role == Role::Manager && !force {
            return Err(err("this node is a manager: leaving may cost the swarm its etcd quorum; use --force to leave anyway"));
        }
        self.stop_agent();
        if let Ok(etcd) = Etcd::connect(&m.etcd, ETCD_TIMEOUT) {
            let _ = etcd.delete(&model::node_key(&m.node));
            let _ = etcd.delete(&model::alive_key(&m.node));
            for t in list_json::<Task>(&etcd, &format!("{}tasks/", model::ROOT)).unwrap_or_default().into_iter().filter(|t| t.node == m.node) {
                let _ = etcd.delete(&model::task_key(&t.id));
                let _ = etcd.delete(&model::status_key(&t.id));
            }
            if m.member.is_some() {
                let _ = etcd.member_remove_by_peer(&format!("http://{}:2380", m.addr));
            }
        }
        for c in self.containers(true)?.into_iter().filter(|c| c.spec.labels.contains_key(TASK_LABEL)) {
            let _ = self.remove_with(&c.id, true, true);
        }
        if m.member.is_some() {
            self.stop_member();
        }
        membership::remove(&self.paths);
        Ok(())
    }

    pub fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let (_, etcd) = self.swarm_etcd()?;
        nodes_of(&etcd)
    }

    pub fn node(&self, key: &str) -> Result<NodeInfo> {
        let ns = self.nodes()?;
        pick_node(ns, key)
    }

    pub fn node_update(&self, key: &str, availability: Option<Availability>, add: &[(String, String)], rm: &[String]) -> Result<NodeInfo> {
        let (_, etcd) = self.swarm_etcd()?;
        let n = pick_node(nodes_of(&etcd)?, key)?;
        let mut r = n.record;
        if let Some(a) = availability {
            r.availability = a;
        }
        for (k, v) in add {
            r.labels.insert(k.clone(), v.clone());
        }
        for k in rm {
            r.labels.remove(k);
        }
        put_json(&etcd, &model::node_key(&r.id), &r, None)?;
        pick_node(nodes_of(&etcd)?, &r.id)
    }

    /// `node rm`: a node that is down (or any, with force) leaves the
    /// swarm's records; its tasks are placed again.
    pub fn node_rm(&self, key: &str, force: bool) -> Result<NodeRecord> {
        let (_, etcd) = self.swarm_etcd()?;
        let n = pick_node(nodes_of(&etcd)?, key)?;
        if n.ready && !force {
            return Err(err(format!("node {} is up: take it out with `berth swarm leave` on it, or use --force", n.record.name)));
        }
        etcd.delete(&model::node_key(&n.record.id)).map_err(err)?;
        etcd.delete(&model::alive_key(&n.record.id)).map_err(err)?;
        Ok(n.record)
    }

    /// A service placed over the swarm's nodes.
    pub fn swarm_service_create(&self, spec: &crate::service::ServiceSpec, mode: Mode, constraints: Vec<Constraint>) -> Result<ClusterService> {
        let (_, etcd) = self.swarm_etcd()?;
        crate::service::validate(spec)?;
        if list_json::<ClusterService>(&etcd, &format!("{}services/", model::ROOT))?.iter().any(|s| s.name == spec.name) {
            return Err(err(format!("service {} already exists in the swarm; remove it or scale it", spec.name)));
        }
        let mut spec = spec.clone();
        if spec.template.restart == crate::container::RestartPolicy::No && !spec.restart_explicit {
            spec.template.restart = crate::container::RestartPolicy::Always;
        }
        let mut publish = Vec::new();
        for p in &spec.publish {
            let ps = crate::network::ports::parse(p).map_err(|e| err(format!("service {}: {e}", spec.name)))?;
            let Some(hp) = ps.host_port else {
                return Err(err(format!("service {}: published port {p} needs a host port (8080:80): the routing mesh opens the same one on every node", spec.name)));
            };
            publish.push((hp, ps.container_port, ps.proto));
        }
        // As docker: published ports without a network go through ingress.
        let net = match &spec.network {
            Some(n) => Some(n.clone()),
            None if !publish.is_empty() => {
                if self.cluster_overlay(&etcd, super::overlays::INGRESS)?.is_none() {
                    let ns = crate::network::NetworkSpec { name: super::overlays::INGRESS.into(), subnet: Some("10.255.0.0/16".into()), ..Default::default() };
                    match self.overlay_create(&ns, &super::OverlayOpts::default()) {
                        Ok(_) | Err(EngineError::Network(crate::network::NetworkError::Exists(_))) => {}
                        Err(e) => return Err(e),
                    }
                }
                Some(super::overlays::INGRESS.to_string())
            }
            None => None,
        };
        let id = crate::store::new_id();
        let (network, vip) = match net {
            Some(n) => {
                let o = self.cluster_overlay(&etcd, &n)?.ok_or_else(|| {
                    err(format!("service {}: network {n} is not an overlay network of the swarm; create it with `berth network create -d overlay {n}`", spec.name))
                })?;
                let vip = super::overlays::alloc(&etcd, &o, None, &format!("vip of service {}", spec.name))?;
                spec.network = Some(o.name.clone());
                (Some(o.id), Some(vip))
            }
            None => (None, None),
        };
        spec.publish.clear();
        let s = ClusterService { id, name: spec.name.clone(), mode, constraints, spec, version: 1, network, vip, publish, update_status: None };
        put_json(&etcd, &model::service_key(&s.id), &s, None)?;
        Ok(s)
    }

    pub fn swarm_services(&self) -> Result<Vec<ClusterService>> {
        let (_, etcd) = self.swarm_etcd()?;
        list_json(&etcd, &format!("{}services/", model::ROOT))
    }

    pub fn swarm_service(&self, key: &str) -> Result<ClusterService> {
        self.swarm_services()?
            .into_iter()
            .find(|s| s.name == key || s.id == key || (key.len() >= 4 && s.id.starts_with(key)))
            .ok_or_else(|| err(format!("no such service in the swarm: {key}")))
    }

    pub fn swarm_service_scale(&self, key: &str, replicas: u32) -> Result<ClusterService> {
        let (_, etcd) = self.swarm_etcd()?;
        let mut s = self.swarm_service(key)?;
        if s.mode == Mode::Global {
            return Err(err(format!("service {} is global (one task per node): it cannot be scaled", s.name)));
        }
        s.mode = Mode::Replicated(replicas);
        s.spec.replicas = replicas;
        put_json(&etcd, &model::service_key(&s.id), &s, None)?;
        Ok(s)
    }

    /// The swarm's own record.
    pub(crate) fn swarm_cluster(&self, etcd: &Etcd) -> Result<Cluster> {
        get_json(etcd, &model::cluster_key())?.ok_or_else(|| err("the swarm's record is missing from etcd"))
    }

    /// `service update` and `service rollback` on the swarm: the new spec is
    /// recorded with a new version, the leader replaces the tasks batch by
    /// batch (each new one must run for the monitor period) and rolls the
    /// whole service back if a new task fails. Waits for the outcome.
    pub fn swarm_service_update(&self, key: &str, u: &crate::service::ops::ServiceUpdate) -> Result<ClusterService> {
        let (_, etcd) = self.swarm_etcd()?;
        let id = self.swarm_service(key)?.id;
        let skey = model::service_key(&id);
        let (version, image) = loop {
            let kv = etcd.get_kv(&skey).map_err(err)?.ok_or_else(|| err(format!("no such service in the swarm: {key}")))?;
            let mut s: ClusterService = serde_json::from_slice(&kv.value).map_err(err)?;
            if s.update_status.as_ref().is_some_and(|x| x.state == "updating" || x.state == "rolling_back") {
                return Err(err(format!("service {}: an update is in progress; wait for it (berth service inspect {})", s.name, s.name)));
            }
            let (mut new, replace) = crate::service::ops::updated_spec(&s.name, &s.spec, u).map_err(EngineError::Other)?;
            if replace {
                let prior = s.spec.previous.clone();
                new.previous = Some(crate::service::Previous { image: s.spec.template.image.clone(), cmd: s.spec.template.cmd.clone(), env: s.spec.template.env.clone() });
                s.version += 1;
                s.update_status = Some(model::UpdateStatus { state: "updating".into(), prior, ..Default::default() });
            }
            s.spec = new;
            if etcd.compare_and_swap(&skey, kv.mod_revision, serde_json::to_vec(&s).map_err(err)?).map_err(err)? {
                if !replace {
                    return Ok(s);
                }
                break (s.version, s.spec.template.image.clone());
            }
        };
        // The leader reports in the record; a task may take its monitor
        // period and a pull, so the wait is generous.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let s = self.swarm_service(&id)?;
            let st = s.update_status.clone().unwrap_or_default();
            match st.state.as_str() {
                "completed" if s.version == version => return Ok(s),
                "rolled_back" | "paused" => {
                    let what = if st.state == "paused" { "paused".to_string() } else { format!("rolled back to {}", s.spec.template.image) };
                    return Err(err(format!("service {}: update to {image} failed: {}; {what}", s.name, st.message)));
                }
                _ => {}
            }
            if Instant::now() > deadline {
                return Err(err(format!("service {}: the update to {image} has not finished after 5 minutes; it goes on (berth service ps {})", s.name, s.name)));
            }
        }
    }

    /// Removes the record; the leader shuts its tasks down and the agents
    /// remove their containers.
    pub fn swarm_service_rm(&self, key: &str) -> Result<ClusterService> {
        let (_, etcd) = self.swarm_etcd()?;
        let s = self.swarm_service(key)?;
        etcd.delete(&model::service_key(&s.id)).map_err(err)?;
        if let (Some(n), Some(vip)) = (&s.network, s.vip) {
            let _ = etcd.delete(&model::ipam_key(n, vip));
        }
        Ok(s)
    }

    pub fn swarm_service_tasks(&self, key: &str) -> Result<Vec<TaskInfo>> {
        let s = self.swarm_service(key)?;
        Ok(self.swarm_tasks()?.into_iter().filter(|t| t.task.service == s.id).collect())
    }

    /// Every task of the swarm with its state, from one connection and
    /// three reads (a list of many services need not ask per service).
    pub fn swarm_tasks(&self) -> Result<Vec<TaskInfo>> {
        let (_, etcd) = self.swarm_etcd()?;
        let nodes = nodes_of(&etcd)?;
        // Every status in one read, not one request per task.
        let mut statuses = statuses_of(&etcd)?;
        let mut out: Vec<TaskInfo> = list_json::<Task>(&etcd, &format!("{}tasks/", model::ROOT))?
            .into_iter()
            .map(|t| {
                let status = statuses.remove(&t.id);
                let node_name = nodes.iter().find(|n| n.record.id == t.node).map(|n| n.record.name.clone()).unwrap_or_else(|| t.node[..12.min(t.node.len())].to_string());
                TaskInfo { task: t, node_name, status }
            })
            .collect();
        out.sort_by(|a, b| (a.task.slot, &a.node_name).cmp(&(b.task.slot, &b.node_name)));
        Ok(out)
    }

    /// The containers on node `key`, as far as this node knows them: all of
    /// its own when `key` is this node; for another, its tasks' containers
    /// (with the state it reported) and its containers on overlays.
    pub fn node_containers(&self, key: &str) -> Result<Vec<NodeContainer>> {
        let (m, etcd) = self.swarm_etcd()?;
        let node = self.node(key)?;
        if node.record.id == m.node {
            return Ok(self
                .containers(true)?
                .into_iter()
                .map(|c| NodeContainer { service: c.spec.labels.get(SWARM_SERVICE_LABEL).cloned().unwrap_or_default(), id: c.id, name: c.name, state: c.state })
                .collect());
        }
        let services: std::collections::HashMap<String, String> = list_json::<ClusterService>(&etcd, &format!("{}services/", model::ROOT))?.into_iter().map(|s| (s.id, s.name)).collect();
        let statuses = statuses_of(&etcd)?;
        let mut out: Vec<NodeContainer> = Vec::new();
        for t in list_json::<Task>(&etcd, &format!("{}tasks/", model::ROOT))?.into_iter().filter(|t| t.node == node.record.id) {
            let svc = services.get(&t.service).cloned().unwrap_or_default();
            let st = statuses.get(&t.id);
            out.push(NodeContainer { id: st.map(|s| s.container.clone()).unwrap_or_default(), name: t.container_name(&svc), state: st.map_or("pending".into(), |s| s.state.clone()), service: svc });
        }
        for e in list_json::<model::Endpoint>(&etcd, &format!("{}endpoints/", model::ROOT))? {
            if e.node == node.record.id && !e.name.starts_with('@') && !out.iter().any(|c| c.name == e.name) {
                out.push(NodeContainer { id: String::new(), name: e.name, state: "running".into(), service: String::new() });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Starts this node's etcd member, detached (it outlives the command,
    /// as a monitor does), and waits until it serves.
    fn start_member(&self, cfg: &MemberConfig) -> Result<()> {
        use std::os::unix::process::CommandExt;
        let dir = membership::etcd_dir(&self.paths);
        std::fs::create_dir_all(&dir).map_err(|e| err(format!("creating {}: {e}", dir.display())))?;
        let log = std::fs::File::create(cfg.log_path()).map_err(|e| err(format!("etcd member {}: {e}", cfg.name)))?;
        let log2 = log.try_clone().map_err(err)?;
        let mut cmd = std::process::Command::new(LocalEtcd::BIN);
        cmd.args(cfg.args()).stdin(std::process::Stdio::null()).stdout(log).stderr(log2).process_group(0);
        // Its root, so `system check`, `lab down` and tests know whose it is.
        cmd.env("BERTH_ROOT", &self.paths.root);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd.spawn().map_err(|e| err(format!("etcd member {}: starting {}: {e}; install Debian's etcd-server (scripts/deps)", cfg.name, LocalEtcd::BIN)))?;
        let pid = child.id();
        std::mem::forget(child);
        std::fs::write(dir.join("pid"), pid.to_string()).map_err(err)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = Etcd::connect(std::slice::from_ref(&cfg.client_url), Duration::from_secs(1)).and_then(|e| e.get("/berth/ping").map(|_| ()));
            match ready {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline || !std::path::Path::new(&format!("/proc/{pid}")).exists() => {
                    self.stop_member();
                    let tail = std::fs::read_to_string(cfg.log_path()).unwrap_or_default();
                    let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                    return Err(err(format!("etcd member {} at {} did not start: {e}; its log ends:\n{}", cfg.name, cfg.client_url, tail.into_iter().rev().collect::<Vec<_>>().join("\n"))));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn stop_member(&self) {
        let dir = membership::etcd_dir(&self.paths);
        if let Some(pid) = std::fs::read_to_string(dir.join("pid")).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
            crate::sys::proc::terminate(pid, Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

pub const TASK_LABEL: &str = "berth.swarm.task";
pub const SWARM_SERVICE_LABEL: &str = "berth.swarm.service";

pub(crate) fn nodes_of(etcd: &Etcd) -> Result<Vec<NodeInfo>> {
    let recs: Vec<NodeRecord> = list_json(etcd, &format!("{}nodes/", model::ROOT))?;
    let alive: Vec<String> = etcd.get_prefix(&format!("{}alive/", model::ROOT)).map_err(err)?.into_iter().filter_map(|kv| model::id_of(&kv.key, &format!("{}alive/", model::ROOT)).map(str::to_string)).collect();
    let leader = etcd.leader(&model::leader_key()).map_err(err)?.map(|b| String::from_utf8_lossy(&b).into_owned());
    let tasks: Vec<Task> = list_json(etcd, &format!("{}tasks/", model::ROOT))?;
    let mut out: Vec<NodeInfo> = recs
        .into_iter()
        .map(|r| NodeInfo { ready: alive.contains(&r.id), leader: leader.as_deref() == Some(r.id.as_str()), tasks: tasks.iter().filter(|t| t.node == r.id).count(), record: r })
        .collect();
    out.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    Ok(out)
}

fn pick_node(ns: Vec<NodeInfo>, key: &str) -> Result<NodeInfo> {
    let names: Vec<String> = ns.iter().map(|n| n.record.name.clone()).collect();
    ns.into_iter()
        .find(|n| n.record.name == key || n.record.id == key || (key.len() >= 4 && n.record.id.starts_with(key)))
        .ok_or_else(|| err(format!("no such node: {key} (nodes: {})", names.join(", "))))
}
