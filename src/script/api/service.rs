//! Services: replicas of one spec behind a virtual IP, and the Service
//! handle's members.

use rhai::{Array, Dynamic, Map};

use super::{doc, Ctx};
use crate::script::{eng, rerr, service_spec, string_map, strings, Container, Created, Kind, RResult, Service};

pub const TYPE: (&str, &str) = ("Service", "replicas of one container spec behind a virtual IP, balanced over the healthy ones");

pub fn register(r: &mut rhai::Engine, ctx: &Ctx) {
    let e = ctx.engine.clone();
    let x = ctx.clone();
    let nm = ctx.names.clone();
    let service = move |name: &str, opts: Map| -> RResult<Service> {
        let written = name;
        let real = nm.resolve(Kind::Service, name);
        let name = real.as_str();
        // Placement over a swarm's nodes, as `service create --mode --constraint`.
        let mut opts = opts;
        let mode = opts.remove("mode").map(|v| v.to_string());
        let constraints = opts.remove("constraints").map(|v| strings(&v, "constraints")).transpose()?.unwrap_or_default();
        let mut spec = service_spec(name, &opts)?;
        if let Some(net) = &spec.network {
            let net_real = nm.resolve(Kind::Network, net);
            // On the scope's network the VIP also answers to the written name.
            if net_real != *net && name != written && !spec.aliases.iter().any(|a| a == written) {
                spec.aliases.push(written.to_string());
            }
            spec.network = Some(net_real);
        }
        let template_name = spec.template.name.take();
        nm.spec(&mut spec.template);
        spec.template.name = template_name;
        if e.swarm().is_some() {
            if let Ok(s) = e.swarm_service(name) {
                return Ok(Service { engine: e.clone(), id: s.id });
            }
            let mode = match mode.as_deref() {
                None | Some("replicated") => crate::cluster::schedule::Mode::Replicated(spec.replicas),
                Some("global") => crate::cluster::schedule::Mode::Global,
                Some(m) => return Err(rerr(format!("service {name}: mode {m:?} is replicated or global"))),
            };
            let cs = constraints.iter().map(|c| crate::cluster::schedule::Constraint::parse(c).map_err(rerr)).collect::<RResult<Vec<_>>>()?;
            let s = e.swarm_service_create(&spec, mode, cs).map_err(eng)?;
            return Ok(Service { engine: e.clone(), id: s.id });
        }
        if mode.is_some() || !constraints.is_empty() {
            return Err(rerr(format!("service {name}: mode and constraints place tasks over a swarm's nodes; this node is in no swarm (swarm_init)")));
        }
        if let Ok(s) = e.service(name) {
            let same = s.spec.template.image == spec.template.image && s.spec.replicas == spec.replicas;
            if !same {
                return Err(rerr(format!(
                    "service {name} exists with image {} and {} replica(s); use s.scale(n) or s.update(#{{ image }}), or remove it first",
                    s.spec.template.image, s.spec.replicas
                )));
            }
            return Ok(Service { engine: e.clone(), id: s.id });
        }
        spec.labels.extend(x.extra());
        spec.template.labels.extend(x.extra());
        let s = e.service_create(&spec).map_err(eng)?;
        x.note(Created::Service(s.id.clone()));
        Ok(Service { engine: e.clone(), id: s.id })
    };
    let e = ctx.engine.clone();
    let nm = ctx.names.clone();
    let d = doc("service(name, [opts]) -> Service", "the named service; with opts, created when missing").more("Options: image (required), replicas: 3, publish: [\"8080:80\"], network: \"labnet\",
service_labels: #{ k: \"v\" }, update: #{ parallelism, delay, monitor } (ms),
and run()'s options for every replica (restart defaults to always; name is the service's: NAME.1, NAME.2, ...).
An existing service is returned when image and replicas match; otherwise use s.scale(n) or s.update(..).
Example: let s = service(\"api\", #{ image: \"busybox\", replicas: 3, cmd: [\"httpd\", \"-f\", \"-p\", \"80\"], publish: [\"8080:80\"] });");
    d.func(r, move |name: &str| -> RResult<Service> {
        let name = nm.resolve(Kind::Service, name);
        let id = if e.swarm().is_some() { e.swarm_service(&name).map_err(eng)?.id } else { e.service(&name).map_err(eng)?.id };
        Ok(Service { engine: e.clone(), id })
    });
    d.func(r, service);
    let e = ctx.engine.clone();
    doc("services() -> [Service]", "all services").func(r, move || -> RResult<Array> {
        if e.swarm().is_some() {
            return Ok(e.swarm_services().map_err(eng)?.into_iter().map(|s| Dynamic::from(Service { engine: e.clone(), id: s.id })).collect());
        }
        e.adopt_services();
        Ok(e.services().map_err(eng)?.into_iter().map(|s| Dynamic::from(Service { engine: e.clone(), id: s.id })).collect()) });
    doc("id -> string", "the service id").get(r, |s: &mut Service| s.id.clone());
    doc("name -> string", "the service's name").get(r, |s: &mut Service| -> RResult<String> { Ok(s.view()?.name) });
    doc("replicas -> int", "the number of replicas wanted").get(r, |s: &mut Service| -> RResult<i64> { Ok(s.view()?.replicas as i64) });
    doc("image -> string", "the image its replicas run").get(r, |s: &mut Service| -> RResult<String> { Ok(s.view()?.image) });
    doc("vip -> string", "its virtual IP, balanced over the replicas (on a swarm: on its overlay, \"\" without one)").get(r, |s: &mut Service| -> RResult<String> { Ok(s.view()?.vip) });
    doc("containers() -> [Container]", "its replicas (on a swarm: those on this node; tasks() lists all)").func(r, |s: &mut Service| -> RResult<Array> {
        if s.on_swarm() {
            return swarm_local(s, false);
        }
        Ok(s.engine.service_replicas(&s.id).map_err(eng)?.into_iter().map(|(_, c)| Dynamic::from(Container { engine: s.engine.clone(), id: c.id })).collect())
    });
    doc("serving() -> [Container]", "the replicas that take connections now (running, healthy, not draining)").func(r, |s: &mut Service| -> RResult<Array> {
        if s.on_swarm() {
            return swarm_local(s, true);
        }
        Ok(s.engine.service_serving(&s.id).map_err(eng)?.into_iter().map(|c| Dynamic::from(Container { engine: s.engine.clone(), id: c.id })).collect())
    });
    doc("tasks() -> [Map]", "each replica: #{ name, node, state, image, error }, on every node of a swarm").func(r, |s: &mut Service| -> RResult<Array> {
        let row = |name: String, node: String, state: String, image: String, error: String| {
            let mut m = Map::new();
            for (k, v) in [("name", name), ("node", node), ("state", state), ("image", image), ("error", error)] {
                m.insert(k.into(), v.into());
            }
            Dynamic::from(m)
        };
        if s.on_swarm() {
            let name = s.view()?.name;
            return Ok(s
                .engine
                .swarm_service_tasks(&s.id)
                .map_err(eng)?
                .into_iter()
                .map(|t| {
                    let (state, err) = t.shown_state();
                    row(t.task.container_name(&name), t.node_name, state, t.task.image, err)
                })
                .collect());
        }
        Ok(s.engine.service_replicas(&s.id).map_err(eng)?.into_iter().map(|(_, c)| row(c.name, String::new(), c.state, c.spec.image, String::new())).collect())
    });
    doc("scale(n)", "changes the number of replicas").func(r, |s: &mut Service, n: i64| -> RResult<()> {
        if n < 0 {
            return Err(rerr(format!("scale({n}): a replica count is 0 or more")));
        }
        if s.on_swarm() {
            return s.engine.swarm_service_scale(&s.id, n as u32).map(|_| ()).map_err(eng);
        }
        s.engine.service_scale(&s.id, n as u32).map(|_| ()).map_err(eng)
    });
    doc("update(opts)", "rolls the replicas to a new spec, batch by batch, and back if a new one fails").more("Options: image, cmd, env, parallelism (replicas at a time), delay (ms between batches),
monitor (ms each new replica must keep serving before the next is replaced; default 2000).").func(r, |s: &mut Service, o: Map| -> RResult<()> {
        let mut u = crate::service::ops::ServiceUpdate::default();
        for (k, v) in &o {
            let ms = || v.as_int().map(|n| n.max(0) as u64).map_err(|_| rerr(format!("update option {k} must be a number of milliseconds")));
            match k.as_str() {
                "image" => u.image = Some(v.to_string()),
                "cmd" => u.cmd = Some(strings(v, "cmd")?),
                "env" => u.env = Some(if v.is_map() { string_map(v, "env")?.into_iter().map(|(a, b)| format!("{a}={b}")).collect() } else { strings(v, "env")? }),
                "parallelism" => u.parallelism = Some(v.as_int().map_err(|_| rerr("update option parallelism must be an integer"))?.max(1) as u32),
                "delay" => u.delay_ms = Some(ms()?),
                "monitor" => u.monitor_ms = Some(ms()?),
                other => return Err(rerr(format!("unknown update option {other:?}; known: image, cmd, env, parallelism, delay, monitor"))),
            }
        }
        if s.on_swarm() {
            return s.engine.swarm_service_update(&s.id, &u).map(|_| ()).map_err(eng);
        }
        s.engine.service_update(&s.id, &u).map(|_| ()).map_err(eng)
    });
    doc("remove()", "removes the service and its replicas").func(r, |s: &mut Service| -> RResult<()> {
        if s.on_swarm() {
            return s.engine.swarm_service_rm(&s.id).map(|_| ()).map_err(eng);
        }
        s.engine.service_remove(&s.id).map(|_| ()).map_err(eng)
    });
    doc("rollback()", "rolls back to the image, command and environment before the last update (a rolling update too)").func(r, |s: &mut Service| -> RResult<()> {
        let u = crate::service::ops::ServiceUpdate { rollback: true, ..Default::default() };
        if s.on_swarm() {
            return s.engine.swarm_service_update(&s.id, &u).map(|_| ()).map_err(eng);
        }
        s.engine.service_update(&s.id, &u).map(|_| ()).map_err(eng)
    });
    r.register_fn("to_string", |s: &mut Service| format!("Service({})", &s.id[..12]));
}

/// A swarm service's task containers on this node (running ones only
/// when `serving`).
fn swarm_local(s: &Service, serving: bool) -> RResult<Array> {
    let name = s.view()?.name;
    Ok(s.engine
        .containers(true)
        .map_err(eng)?
        .into_iter()
        .filter(|c| c.spec.labels.get(crate::engine::SWARM_SERVICE_LABEL) == Some(&name) && (!serving || c.running()))
        .map(|c| Dynamic::from(Container { engine: s.engine.clone(), id: c.id }))
        .collect())

}
