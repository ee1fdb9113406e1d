//! The swarm scheduler: pure decisions, no I/O. Given the nodes (with
//! their liveness), the services and the tasks that exist, it says which
//! tasks to start where and which to shut down. The leader runs it on every
//! change and writes the result to etcd; node agents carry it out. Being a
//! function of its inputs, it is tested without a cluster.
//!
//! The rules are swarm's: a replicated service has one task per slot, a
//! global one a task per eligible node. A node takes new tasks only when
//! it is ready (its lease lives), active and satisfies the constraints;
//! `pause` keeps what it runs, `drain` and a lost node give their tasks
//! back. New tasks spread: the node with the fewest tasks of the service
//! first, then the fewest tasks in all, then by name.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    #[default]
    Active,
    Pause,
    Drain,
}

impl Availability {
    pub fn parse(s: &str) -> Result<Availability, String> {
        match s {
            "active" => Ok(Availability::Active),
            "pause" => Ok(Availability::Pause),
            "drain" => Ok(Availability::Drain),
            _ => Err(format!("invalid availability \"{s}\": use active, pause or drain")),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Worker,
    Manager,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Manager => "manager",
        }
    }
}

/// What the scheduler needs of a node.
#[derive(Clone, Debug, Default)]
pub struct NodeView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub availability: Availability,
    /// Its lease lives.
    pub ready: bool,
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase", tag = "mode", content = "replicas")]
pub enum Mode {
    Replicated(u32),
    Global,
}

/// What the scheduler needs of a service.
#[derive(Clone, Debug)]
pub struct ServiceView {
    pub id: String,
    pub mode: Mode,
    pub constraints: Vec<Constraint>,
}

/// A task as recorded: its slot (replicated) or node (global), and where
/// it was placed.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskView {
    pub id: String,
    pub service: String,
    /// 1.. for a replicated service, 0 for a global one.
    pub slot: u32,
    pub node: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A new task of `service` for `slot` (0: global) on `node`.
    Start { service: String, slot: u32, node: String },
    /// The task goes (its node lost, drained or no longer eligible, or
    /// its slot no longer wanted); `why` is for the log and `service ps`.
    Shutdown { task: String, why: String },
    /// No node can take the slot now; it stays pending.
    Pending { service: String, slot: u32, why: String },
}

/// `node.labels.zone==a`, `node.role!=manager`, `node.hostname==h1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub field: Field,
    pub equal: bool,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Field {
    Label(String),
    Role,
    Hostname,
    Id,
    Os,
}

impl Constraint {
    pub fn parse(s: &str) -> Result<Constraint, String> {
        let bad = |why: &str| format!("invalid constraint \"{s}\": {why}");
        let (lhs, equal, rhs) = if let Some((l, r)) = s.split_once("!=") {
            (l, false, r)
        } else if let Some((l, r)) = s.split_once("==") {
            (l, true, r)
        } else {
            return Err(bad("use FIELD==VALUE or FIELD!=VALUE"));
        };
        let (lhs, value) = (lhs.trim(), rhs.trim());
        if value.is_empty() {
            return Err(bad("the value is empty"));
        }
        let field = match lhs {
            "node.role" => {
                if value != "manager" && value != "worker" {
                    return Err(bad("node.role is manager or worker"));
                }
                Field::Role
            }
            "node.hostname" => Field::Hostname,
            "node.id" => Field::Id,
            "node.platform.os" => Field::Os,
            l => match l.strip_prefix("node.labels.") {
                Some(k) if !k.is_empty() => Field::Label(k.to_string()),
                _ => return Err(bad("the field is one of node.labels.KEY, node.role, node.hostname, node.id, node.platform.os")),
            },
        };
        Ok(Constraint { field, equal, value: value.to_string() })
    }

    pub fn holds(&self, n: &NodeView) -> bool {
        let have = match &self.field {
            Field::Label(k) => n.labels.get(k).map(String::as_str),
            Field::Role => Some(n.role.as_str()),
            Field::Hostname => Some(n.name.as_str()),
            Field::Id => Some(n.id.as_str()),
            Field::Os => Some("linux"),
        };
        (have == Some(self.value.as_str())) == self.equal
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = match &self.field {
            Field::Label(k) => format!("node.labels.{k}"),
            Field::Role => "node.role".into(),
            Field::Hostname => "node.hostname".into(),
            Field::Id => "node.id".into(),
            Field::Os => "node.platform.os".into(),
        };
        write!(f, "{field}{}{}", if self.equal { "==" } else { "!=" }, self.value)
    }
}

fn fits(s: &ServiceView, n: &NodeView) -> bool {
    s.constraints.iter().all(|c| c.holds(n))
}

/// Why a task must leave its node, if it must.
fn must_leave(s: &ServiceView, n: Option<&NodeView>) -> Option<String> {
    match n {
        None => Some("its node left the swarm".into()),
        Some(n) if !n.ready => Some(format!("node {} is down", n.name)),
        Some(n) if n.availability == Availability::Drain => Some(format!("node {} is drained", n.name)),
        Some(n) if !fits(s, n) => Some(format!("node {} no longer satisfies the constraints", n.name)),
        _ => None,
    }
}

/// The decisions that bring `tasks` to what `services` declare on `nodes`.
pub fn plan(nodes: &[NodeView], services: &[ServiceView], tasks: &[TaskView]) -> Vec<Action> {
    let by_id: HashMap<&str, &NodeView> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut out = Vec::new();
    // Load per node (all services), updated as tasks start and stop.
    let mut load: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        *load.entry(t.node.clone()).or_default() += 1;
    }
    let known: std::collections::HashSet<&str> = services.iter().map(|s| s.id.as_str()).collect();
    for t in tasks.iter().filter(|t| !known.contains(t.service.as_str())) {
        out.push(Action::Shutdown { task: t.id.clone(), why: "its service was removed".into() });
    }
    for s in services {
        let mine: Vec<&TaskView> = tasks.iter().filter(|t| t.service == s.id).collect();
        let leave = |t: &TaskView, why: String, out: &mut Vec<Action>, load: &mut HashMap<String, usize>| {
            out.push(Action::Shutdown { task: t.id.clone(), why });
            if let Some(l) = load.get_mut(&t.node) {
                *l = l.saturating_sub(1);
            }
        };
        match s.mode {
            Mode::Replicated(n) => {
                // Per service, per node: what spreading counts.
                let mut per: HashMap<String, usize> = HashMap::new();
                let mut held: Vec<u32> = Vec::new();
                // Oldest first within a slot is the caller's order; a second
                // task in a slot (a partition healed) is the one that goes.
                for t in &mine {
                    if t.slot == 0 || t.slot > n {
                        leave(t, format!("slot {} is no longer wanted", t.slot), &mut out, &mut load);
                    } else if held.contains(&t.slot) {
                        leave(t, format!("slot {} already runs elsewhere", t.slot), &mut out, &mut load);
                    } else if let Some(why) = must_leave(s, by_id.get(t.node.as_str()).copied()) {
                        leave(t, why, &mut out, &mut load);
                    } else {
                        held.push(t.slot);
                        *per.entry(t.node.clone()).or_default() += 1;
                    }
                }
                for slot in (1..=n).filter(|k| !held.contains(k)) {
                    let best = nodes
                        .iter()
                        .filter(|x| x.ready && x.availability == Availability::Active && fits(s, x))
                        .min_by(|a, b| {
                            let key = |x: &NodeView| (per.get(&x.id).copied().unwrap_or(0), load.get(&x.id).copied().unwrap_or(0), x.name.clone());
                            key(a).cmp(&key(b))
                        });
                    match best {
                        Some(x) => {
                            *per.entry(x.id.clone()).or_default() += 1;
                            *load.entry(x.id.clone()).or_default() += 1;
                            out.push(Action::Start { service: s.id.clone(), slot, node: x.id.clone() });
                        }
                        None => out.push(Action::Pending { service: s.id.clone(), slot, why: no_node(s, nodes) }),
                    }
                }
            }
            Mode::Global => {
                let mut covered: Vec<String> = Vec::new();
                for t in &mine {
                    if covered.contains(&t.node) {
                        leave(t, "its node already runs one".into(), &mut out, &mut load);
                    } else if let Some(why) = must_leave(s, by_id.get(t.node.as_str()).copied()) {
                        leave(t, why, &mut out, &mut load);
                    } else {
                        covered.push(t.node.clone());
                    }
                }
                for x in nodes.iter().filter(|x| x.ready && x.availability == Availability::Active && fits(s, x) && !covered.contains(&x.id)) {
                    *load.entry(x.id.clone()).or_default() += 1;
                    out.push(Action::Start { service: s.id.clone(), slot: 0, node: x.id.clone() });
                }
            }
        }
    }
    out
}

/// Why no node takes a task: said in `service ps` as swarm says it.
fn no_node(s: &ServiceView, nodes: &[NodeView]) -> String {
    let ready: Vec<&NodeView> = nodes.iter().filter(|n| n.ready).collect();
    if ready.is_empty() {
        return "no suitable node (no node is up)".into();
    }
    let active: Vec<&&NodeView> = ready.iter().filter(|n| n.availability == Availability::Active).collect();
    if active.is_empty() {
        return format!("no suitable node ({} node(s) up, none active: paused or drained)", ready.len());
    }
    let cs: Vec<String> = s.constraints.iter().map(|c| c.to_string()).collect();
    format!("no suitable node (scheduling constraints not satisfied on {} node(s): {})", active.len(), cs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, labels: &[(&str, &str)]) -> NodeView {
        NodeView { id: id.into(), name: id.into(), ready: true, labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Default::default() }
    }

    fn svc(id: &str, mode: Mode, cs: &[&str]) -> ServiceView {
        ServiceView { id: id.into(), mode, constraints: cs.iter().map(|c| Constraint::parse(c).unwrap()).collect() }
    }

    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(100);

    /// Applies the plan's starts as tasks, as the leader would record them.
    fn apply(tasks: &mut Vec<TaskView>, plan: &[Action]) {
        for a in plan {
            match a {
                Action::Start { service, slot, node } => tasks.push(TaskView { id: format!("t{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)), service: service.clone(), slot: *slot, node: node.clone() }),
                Action::Shutdown { task, .. } => tasks.retain(|t| &t.id != task),
                Action::Pending { .. } => {}
            }
        }
    }

    fn count_on(tasks: &[TaskView], node: &str) -> usize {
        tasks.iter().filter(|t| t.node == node).count()
    }

    #[test]
    fn six_replicas_spread_two_per_node() {
        let nodes = vec![node("a", &[]), node("b", &[]), node("c", &[])];
        let s = vec![svc("web", Mode::Replicated(6), &[])];
        let mut tasks = Vec::new();
        let p = plan(&nodes, &s, &tasks);
        apply(&mut tasks, &p);
        assert_eq!((count_on(&tasks, "a"), count_on(&tasks, "b"), count_on(&tasks, "c")), (2, 2, 2));
        assert!(plan(&nodes, &s, &tasks).is_empty(), "a plan applied leaves nothing to do");
    }

    #[test]
    fn a_lost_node_gives_its_slots_to_the_others_and_a_drained_one_too() {
        let mut nodes = vec![node("a", &[]), node("b", &[]), node("c", &[])];
        let s = vec![svc("web", Mode::Replicated(6), &[])];
        let mut tasks = Vec::new();
        let p = plan(&nodes, &s, &tasks);
        apply(&mut tasks, &p);
        nodes[2].ready = false;
        let p = plan(&nodes, &s, &tasks);
        assert_eq!(p.iter().filter(|a| matches!(a, Action::Shutdown { why, .. } if why.contains("down"))).count(), 2, "{p:?}");
        apply(&mut tasks, &p);
        assert_eq!((count_on(&tasks, "a"), count_on(&tasks, "b"), count_on(&tasks, "c")), (3, 3, 0));
        nodes[2].ready = true;
        nodes[1].availability = Availability::Drain;
        let p = plan(&nodes, &s, &tasks);
        apply(&mut tasks, &p);
        assert_eq!(count_on(&tasks, "b"), 0);
        assert_eq!(tasks.len(), 6);
        // Pause: keeps its tasks, takes no new one.
        nodes[1].availability = Availability::Active;
        nodes[0].availability = Availability::Pause;
        let before = count_on(&tasks, "a");
        assert!(plan(&nodes, &s, &tasks).is_empty(), "pause moves nothing");
        let s2 = vec![svc("web", Mode::Replicated(9), &[])];
        let p = plan(&nodes, &s2, &tasks);
        apply(&mut tasks, &p);
        assert_eq!(count_on(&tasks, "a"), before, "a paused node takes no new task");
    }

    #[test]
    fn constraints_choose_nodes_and_say_why_none_fits() {
        let nodes = vec![node("a", &[("zone", "x")]), node("b", &[("zone", "y")]), node("c", &[])];
        let s = vec![svc("web", Mode::Replicated(3), &["node.labels.zone==x"])];
        let mut tasks = Vec::new();
        let p = plan(&nodes, &s, &tasks);
        apply(&mut tasks, &p);
        assert_eq!(count_on(&tasks, "a"), 3);
        let s = vec![svc("web", Mode::Replicated(3), &["node.labels.zone!=x", "node.hostname!=c"])];
        let p = plan(&nodes, &s, &tasks);
        assert_eq!(p.iter().filter(|a| matches!(a, Action::Shutdown { .. })).count(), 3);
        assert!(p.iter().filter(|a| matches!(a, Action::Start { node, .. } if node == "b")).count() == 3, "{p:?}");
        let none = vec![svc("web", Mode::Replicated(1), &["node.labels.zone==z"])];
        let p = plan(&nodes, &none, &[]);
        assert!(matches!(&p[0], Action::Pending { why, .. } if why.contains("node.labels.zone==z")), "{p:?}");
    }

    #[test]
    fn global_runs_one_per_eligible_node() {
        let mut nodes = vec![node("a", &[]), node("b", &[]), node("c", &[])];
        nodes[2].role = Role::Manager;
        let s = vec![svc("agent", Mode::Global, &["node.role==worker"])];
        let mut tasks = Vec::new();
        let p = plan(&nodes, &s, &tasks);
        apply(&mut tasks, &p);
        assert_eq!((count_on(&tasks, "a"), count_on(&tasks, "b"), count_on(&tasks, "c")), (1, 1, 0));
        nodes.push(node("d", &[]));
        let p = plan(&nodes, &s, &tasks);
        apply(&mut tasks, &p);
        assert_eq!(count_on(&tasks, "d"), 1, "a new node gets one");
        nodes[0].availability = Availability::Drain;
        let p = plan(&nodes, &s, &tasks);
        apply(&mut tasks, &p);
        assert_eq!((count_on(&tasks, "a"), tasks.len()), (0, 2));
    }

    #[test]
    fn scale_down_duplicates_and_removed_services() {
        let nodes = vec![node("a", &[]), node("b", &[])];
        let t = |id: &str, slot: u32, node: &str| TaskView { id: id.into(), service: "web".into(), slot, node: node.into() };
        // Slot 1 twice (a partitioned node came back), slot 3 of 2.
        let tasks = vec![t("t1", 1, "a"), t("t2", 1, "b"), t("t3", 2, "b"), t("t4", 3, "a")];
        let p = plan(&nodes, &[svc("web", Mode::Replicated(2), &[])], &tasks);
        let gone: Vec<&str> = p.iter().filter_map(|a| if let Action::Shutdown { task, .. } = a { Some(task.as_str()) } else { None }).collect();
        assert_eq!(gone, vec!["t2", "t4"], "{p:?}");
        assert!(!p.iter().any(|a| matches!(a, Action::Start { .. })));
        let p = plan(&nodes, &[], &tasks);
        assert_eq!(p.len(), 4, "every task of a removed service goes");
    }

    #[test]
    fn constraint_syntax() {
        assert!(Constraint::parse("node.labels.zone==a").unwrap().holds(&node("n", &[("zone", "a")])));
        assert!(Constraint::parse("node.labels.zone != a").unwrap().holds(&node("n", &[])));
        assert_eq!(Constraint::parse("node.labels.zone==a").unwrap().to_string(), "node.labels.zone==a");
        for bad in ["zone==a", "node.labels.==a", "node.role==boss", "node.hostname=h", "node.id=="] {
            let e = Constraint::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert!(Availability::parse("drain").is_ok() && Availability::parse("off").unwrap_err().contains("active, pause or drain"));
    }
}
