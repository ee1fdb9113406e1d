//! Networks: finding or making them, and the Network handle's members.

use rhai::{Array, Dynamic, Map};

use super::{doc, Ctx};
use crate::script::{eng, label_filter, rerr, string_map, Container, Created, Kind, Network, RResult};

pub const TYPE: (&str, &str) = ("Network", "a bridge network; containers join it with run(.., #{ network }) or c.connect()");

pub fn register(r: &mut rhai::Engine, ctx: &Ctx) {
    let e = ctx.engine.clone();
    let x = ctx.clone();
    let nm = ctx.names.clone();
    let network = move |name: &str, opts: Map| -> RResult<Network> {
        let real = nm.resolve(Kind::Network, name);
        let name = real.as_str();
        let mut subnet = None;
        let mut gateway = None;
        let mut labels = std::collections::BTreeMap::new();
        let mut driver = "bridge".to_string();
        let mut ov = crate::engine::OverlayOpts::default();
        for (k, v) in &opts {
            match k.as_str() {
                "subnet" => subnet = Some(v.to_string()),
                "gateway" => gateway = Some(v.to_string()),
                "labels" => labels = string_map(v, "labels")?,
                "driver" => driver = v.to_string(),
                "attachable" => ov.attachable = v.as_bool().map_err(|_| rerr("network option attachable is true or false"))?,
                "mtu" => ov.mtu = Some(v.as_int().map_err(|_| rerr("network option mtu is a number"))? as u32),
                other => return Err(rerr(format!("unknown network option {other:?}; known: subnet, gateway, labels, driver, attachable, mtu"))),
            }
        }
        if !matches!(driver.as_str(), "bridge" | "overlay") {
            return Err(rerr(format!("network {name}: driver {driver:?} is not supported (bridge or overlay)")));
        }
        // An existing network with the same settings is returned as it is.
        if let Ok(n) = e.network(name)
            && n.name == name {
                if subnet.as_ref().is_some_and(|s| crate::network::ipam::Subnet::parse(s).map(|x| x.to_string()).ok().as_ref() != Some(&n.subnet)) {
                    return Err(rerr(format!("network {name} exists with subnet {}, not {}", n.subnet, subnet.unwrap_or_default())));
                }
                return Ok(Network { engine: e.clone(), id: n.id });
            }
        labels.extend(x.extra());
        let spec = crate::network::NetworkSpec { name: name.to_string(), subnet, gateway, labels };
        let n = if driver == "overlay" { e.overlay_create(&spec, &ov) } else { e.network_create(&spec) }.map_err(eng)?;
        x.note(Created::Network(n.id.clone()));
        Ok(Network { engine: e.clone(), id: n.id })
    };
    let nw = network.clone();
    let d = doc("network(name, [opts]) -> Network", "the named network, created when missing").more("Options: subnet: \"192.168.13.0/24\", gateway: \"192.168.13.1\", labels: #{ k: \"v\" }; on a swarm manager driver: \"overlay\" (across the nodes), attachable: true (plain containers may join), mtu.\nAn existing network is returned when its settings match; a different subnet is an error.");
    d.func(r, move |name: &str| nw(name, Map::new()));
    d.func(r, network);
    let e = ctx.engine.clone();
    let networks = move |o: Map| -> RResult<Array> {
        let pick = label_filter(&o, "networks")?;
        Ok(e.networks().map_err(eng)?.into_iter().filter(|n| pick(&n.labels)).map(|n| Dynamic::from(Network { engine: e.clone(), id: n.id })).collect())
    };
    let nws = networks.clone();
    let d = doc("networks([#{ label }]) -> [Network]", "all networks, or those with a label (\"k\" or \"k=v\")");
    d.func(r, move || nws(Map::new()));
    d.func(r, networks);
    doc("id -> string", "the network id").get(r, |n: &mut Network| n.id.clone());
    doc("name -> string", "the network's name").get(r, |n: &mut Network| -> RResult<String> { Ok(n.engine.network(&n.id).map_err(eng)?.name) });
    doc("subnet -> string", "its subnet (\"192.168.13.0/24\")").get(r, |n: &mut Network| -> RResult<String> { Ok(n.engine.network(&n.id).map_err(eng)?.subnet) });
    doc("labels -> Map", "its labels").get(r, |n: &mut Network| -> RResult<Map> { Ok(n.engine.network(&n.id).map_err(eng)?.labels.into_iter().map(|(k, v)| (k.into(), Dynamic::from(v))).collect()) });
    doc("driver -> string", "\"bridge\" or \"overlay\"").get(r, |n: &mut Network| -> RResult<String> { Ok(n.engine.network(&n.id).map_err(eng)?.driver) });
    doc("gateway -> string", "its gateway address").get(r, |n: &mut Network| -> RResult<String> { Ok(n.engine.network(&n.id).map_err(eng)?.gateway) });
    doc("containers() -> [Container]", "the containers attached to it").func(r, |n: &mut Network| -> RResult<Array> {
        Ok(n.engine.network_members(&n.id).map_err(eng)?.into_iter().map(|(id, _, _)| Dynamic::from(Container { engine: n.engine.clone(), id })).collect())
    });
    doc("remove()", "removes the network").func(r, |n: &mut Network| -> RResult<()> { n.engine.network_remove(&n.id).map(|_| ()).map_err(eng) });
    // Each call sets the link's whole impairment; #{} removes it.
    doc("impair(container, opts)", "emulates a bad link to the container (tc netem); #{} removes it").more("Options: delay: \"50ms\" (or 50), jitter: \"5ms\", loss: 1.0 (percent), rate: \"10mbit\".").func(r, |n: &mut Network, c: Container, o: Map| -> RResult<()> {
        use crate::network::impair::{self, Impairment};
        let mut imp = Impairment::default();
        // Numbers are taken in the unit a user would assume: ms, percent, bit/s.
        let text = |v: &Dynamic, unit: &str| -> String {
            if v.is_int() || v.is_float() {
                format!("{v}{unit}")
            } else {
                v.to_string()
            }
        };
        for (k, v) in &o {
            match k.as_str() {
                "delay" => imp.delay_us = impair::parse_duration(&text(v, "ms")).map_err(rerr)?,
                "jitter" => imp.jitter_us = impair::parse_duration(&text(v, "ms")).map_err(rerr)?,
                "loss" => imp.loss = impair::parse_loss(&text(v, "")).map_err(rerr)?,
                "rate" => imp.rate_bps = impair::parse_rate(&text(v, "bit")).map_err(rerr)?,
                other => return Err(rerr(format!("unknown impair option {other:?}; known: delay, jitter, loss, rate"))),
            }
        }
        n.engine.network_impair(&n.id, &c.id, Some(&imp)).map_err(eng)
    });
    r.register_fn("to_string", |n: &mut Network| format!("Network({})", &n.id[..12]));
}
