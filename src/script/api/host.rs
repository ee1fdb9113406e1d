//! Lab hosts from a script: `lab_hosts(lab, n, [opts])` and the `Host`
//! type, which the stdlib's `lab::hosts` wraps.

use rhai::{Array, Dynamic, Map};

use super::{doc, Ctx};
use crate::cluster::hosts::LabHost;
use crate::script::{eng, output_map, rerr, strings, RResult};

pub const TYPE: (&str, &str) = ("Host", "a lab host: a network namespace with its own berth root; berth([...]) and exec([...]) act in it");

#[derive(Clone)]
pub struct Host {
    engine: std::sync::Arc<crate::engine::Engine>,
    h: LabHost,
}

pub fn register(r: &mut rhai::Engine, ctx: &Ctx) {
    let e = ctx.engine.clone();
    let make = move |lab: &str, n: i64, o: Map| -> RResult<Array> {
        let mut images = Vec::new();
        let mut swarm = false;
        for (k, v) in &o {
            match k.as_str() {
                "images" => images = strings(v, "images")?,
                "swarm" => swarm = v.as_bool().map_err(|_| rerr("lab_hosts option swarm must be true or false"))?,
                other => return Err(rerr(format!("unknown lab_hosts option {other:?}; known: images, swarm"))),
            }
        }
        let n = u32::try_from(n).map_err(|_| rerr(format!("lab_hosts({lab}): {n} hosts is not a count")))?;
        let hs = e.lab_hosts_create(lab, n, &images, swarm).map_err(eng)?;
        Ok(hs.into_iter().map(|h| Dynamic::from(Host { engine: e.clone(), h })).collect())
    };
    let m2 = make.clone();
    let d = doc("lab_hosts(lab, n, [opts]) -> [Host]", "n hosts for a multi-host lab, as `berth lab hosts`: LAB-h0.. at 10.99.0.1.. on the lab's underlay")
        .more("Each host is a network namespace with its own berth root. Options: images: [\"busybox\"] (loaded from this root into every host), swarm: true (the hosts form a swarm: the first inits it, two more join as managers, so etcd has 3 members, the rest as workers).\nlab::hosts(name, n) wraps it; lab_hosts_down(lab) or lab::down(lab) removes them.");
    d.func(r, move |lab: &str, n: i64| m2(lab, n, Map::new()));
    d.func(r, make);
    let e = ctx.engine.clone();
    doc("lab_hosts_down(lab) -> int", "removes a lab's hosts and everything in them; how many there were").func(r, move |lab: &str| -> RResult<i64> { e.lab_down(lab).map(|n| n as i64).map_err(eng) });
    doc("name -> string", "the host's name (LAB-hN)").get(r, |h: &mut Host| h.h.name.clone());
    doc("addr -> string", "its address on the lab's underlay").get(r, |h: &mut Host| h.h.addr.to_string());
    doc("root -> string", "its berth root").get(r, |h: &mut Host| h.h.root.display().to_string());
    let run = |h: &mut Host, argv: Vec<String>| -> RResult<Map> { h.engine.lab_host_run(&h.h, &argv).map(|o| output_map(&o)).map_err(eng) };
    doc("berth(args) -> Result", "runs berth in the host, with its root: #{ code, stdout, stderr }").more("Example: h.berth([\"run\", \"-d\", \"--name\", \"a\", \"busybox\", \"sleep\", \"1d\"])").func(r, move |h: &mut Host, a: Array| -> RResult<Map> {
        let mut argv = vec!["berth".to_string()];
        argv.extend(strings(&Dynamic::from(a), "args")?);
        run(h, argv)
    });
    doc("exec(cmd) -> Result", "runs a command in the host's network namespace: #{ code, stdout, stderr }").func(r, move |h: &mut Host, a: Array| -> RResult<Map> { run(h, strings(&Dynamic::from(a), "cmd")?) });
}
