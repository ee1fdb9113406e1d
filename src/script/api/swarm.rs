//! Swarm mode from a script: `swarm()`, `nodes()` and the `Node` type.

use rhai::{Array, Dynamic, Map};

use super::{doc, Ctx};
use crate::cluster::schedule::Availability;
use crate::engine::NodeInfo;
use crate::script::{eng, rerr, RResult};

pub const TYPE: (&str, &str) = ("Node", "a swarm node: name, addr, role, availability, state, labels; containers(), drain(), activate()");

#[derive(Clone)]
pub struct Node {
    engine: std::sync::Arc<crate::engine::Engine>,
    id: String,
}

impl Node {
    fn get(&self) -> RResult<NodeInfo> {
        self.engine.node(&self.id).map_err(eng)
    }

    fn set(&mut self, a: Availability) -> RResult<()> {
        self.engine.node_update(&self.id, Some(a), &[], &[]).map(|_| ()).map_err(eng)
    }
}

pub fn register(r: &mut rhai::Engine, ctx: &Ctx) {
    let e = ctx.engine.clone();
    doc("swarm() -> Map", "this node's swarm: #{ cluster, node, name, role, addr, etcd }, or () when it is in none").func(r, move || -> Dynamic {
        match e.swarm() {
            None => Dynamic::UNIT,
            Some(m) => {
                let mut x = Map::new();
                x.insert("cluster".into(), m.cluster.into());
                x.insert("node".into(), m.node.into());
                x.insert("name".into(), m.name.into());
                x.insert("role".into(), m.role.as_str().into());
                x.insert("addr".into(), m.addr.to_string().into());
                x.insert("etcd".into(), m.etcd.into_iter().map(Dynamic::from).collect::<Array>().into());
                x.into()
            }
        }
    });
    let e = ctx.engine.clone();
    doc("nodes() -> [Node]", "the swarm's nodes, as `berth node ls`").func(r, move || -> RResult<Array> { Ok(e.nodes().map_err(eng)?.into_iter().map(|n| Dynamic::from(Node { engine: e.clone(), id: n.record.id })).collect()) });
    let e = ctx.engine.clone();
    doc("swarm_init(addr, [opts]) -> string", "makes a swarm with this node as first manager, as `berth swarm init`; its worker join token")
        .more("Options: name (the node's), etcd: [\"http://A:2379\"] (else a member starts here), data_path_port (VXLAN's UDP port, 4789).")
        .func(r, move |addr: &str, o: Map| -> RResult<String> {
            let a = addr.parse().map_err(|_| rerr(format!("swarm_init: {addr:?} is not an IPv4 address")))?;
            let name = o.get("name").map(|v| v.to_string());
            let etcd = o.get("etcd").map(|v| crate::script::strings(v, "etcd")).transpose()?;
            let port = o.get("data_path_port").map(|v| v.as_int().map(|p| p as u16).map_err(|_| rerr("swarm_init: data_path_port is a port number"))).transpose()?;
            e.swarm_init(a, name.as_deref(), etcd, port).map(|c| c.worker_token).map_err(eng)
        });
    doc("id -> string", "the node's id").get(r, |n: &mut Node| n.id.clone());
    doc("name -> string", "its name").get(r, |n: &mut Node| -> RResult<String> { Ok(n.get()?.record.name) });
    doc("addr -> string", "its underlay address").get(r, |n: &mut Node| -> RResult<String> { Ok(n.get()?.record.addr.map(|a| a.to_string()).unwrap_or_default()) });
    doc("role -> string", "\"manager\" or \"worker\"").get(r, |n: &mut Node| -> RResult<String> { Ok(n.get()?.record.role.as_str().into()) });
    doc("leader -> bool", "whether it leads the managers").get(r, |n: &mut Node| -> RResult<bool> { Ok(n.get()?.leader) });
    doc("availability -> string", "\"active\", \"pause\" or \"drain\"").get(r, |n: &mut Node| -> RResult<String> { Ok(n.get()?.record.availability.as_str().into()) });
    doc("state -> string", "\"ready\" while its agent's lease lives, else \"down\"").get(r, |n: &mut Node| -> RResult<String> { Ok(n.get()?.state().into()) });
    doc("labels -> Map", "its labels").get(r, |n: &mut Node| -> RResult<Map> { Ok(n.get()?.record.labels.into_iter().map(|(k, v)| (k.into(), v.into())).collect()) });
    doc("tasks -> int", "how many tasks are placed on it").get(r, |n: &mut Node| -> RResult<i64> { Ok(n.get()?.tasks as i64) });
    doc("containers() -> [Map]", "its containers: #{ id, name, state, service }; all of this node's own, and another node's tasks and overlay members as the swarm knows them")
        .func(r, |n: &mut Node| -> RResult<Array> {
            Ok(n.engine
                .node_containers(&n.id)
                .map_err(eng)?
                .into_iter()
                .map(|c| {
                    let mut x = Map::new();
                    x.insert("id".into(), c.id.into());
                    x.insert("name".into(), c.name.into());
                    x.insert("state".into(), c.state.into());
                    x.insert("service".into(), c.service.into());
                    Dynamic::from(x)
                })
                .collect())
        });
    doc("drain()", "moves its tasks away and takes no new ones").func(r, |n: &mut Node| n.set(Availability::Drain));
    doc("pause()", "keeps its tasks, takes no new ones").func(r, |n: &mut Node| n.set(Availability::Pause));
    doc("activate()", "takes tasks again").func(r, |n: &mut Node| n.set(Availability::Active));
}
