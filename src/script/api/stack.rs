//! Stacks: compose files (or maps) deployed as services, networks and
//! volumes, and the Stack handle's members.

use std::sync::Arc;

use rhai::{Array, Dynamic, Map};

use super::{doc, Ctx};
use crate::script::{eng, rerr, Created, RResult, Service, Stack};

pub const TYPE: (&str, &str) = ("Stack", "services, networks and volumes from a compose file or map, deployed by up()");

pub fn register(r: &mut rhai::Engine, ctx: &Ctx) {
    let e = ctx.engine.clone();
    let nm = ctx.names.clone();
    let stack = move |name: &str, src: Dynamic| -> RResult<Stack> {
        let real = nm.scoped_with(name, '-');
        let name = real.as_str();
        let (plan, source) = if let Some(path) = src.clone().try_cast::<String>() {
            (crate::service::compose::parse_file(std::path::Path::new(&path)).map_err(rerr)?, path)
        } else if let Some(m) = src.clone().try_cast::<Map>() {
            let v: serde_json::Value = rhai::serde::from_dynamic(&Dynamic::from(m)).map_err(|e| rerr(format!("stack {name}: {e}")))?;
            let base = std::env::current_dir().unwrap_or_default();
            (crate::service::compose::parse(&v, &format!("stack {name}"), &base).map_err(rerr)?, "(map)".to_string())
        } else {
            return Err(rerr(format!("stack({name:?}, ...) takes a compose file path or a map such as #{{ services: #{{ web: #{{ image: \"busybox\" }} }} }}")));
        };
        for w in &plan.warnings {
            eprintln!("warning: {w}");
        }
        Ok(Stack { engine: e.clone(), name: name.to_string(), plan: Arc::new(plan), source })
    };
    doc("stack(name, file_or_map) -> Stack", "reads a compose file (or a map of the same shape); up() deploys it").more("Compose keys: services (image, build, command, entrypoint, environment, env_file, ports, volumes, networks,
depends_on with service_started/service_healthy/service_completed_successfully, healthcheck, restart,
deploy.replicas), networks (ipam subnets), volumes. Objects are named NAME_SERVICE, NAME_NETWORK, ...
Example: let st = stack(\"shop\", \"examples/shop/compose.yaml\"); st.up(); ... st.down();").func(r, stack);
    let e = ctx.engine.clone();
    doc("stacks() -> [string]", "the names of the deployed stacks").func(r, move || -> RResult<Array> { Ok(e.stacks().map_err(eng)?.into_iter().map(|s| Dynamic::from(s.name)).collect()) });
    doc("name -> string", "the stack's name").get(r, |s: &mut Stack| s.name.clone());
    let x = ctx.clone();
    doc("up() -> [Service]", "deploys it: networks, volumes, images to build, then services in dependency order").func(r, move |s: &mut Stack| -> RResult<Array> {
        // On a swarm node, the stack's services are the swarm's.
        let ids: Vec<String> = if s.engine.swarm().is_some() {
            s.engine.swarm_stack_deploy(&s.name, &s.plan, &s.source, &x.extra()).map_err(eng)?.into_iter().map(|x| x.id).collect()
        } else {
            s.engine.stack_deploy(&s.name, &s.plan, &s.source, &x.extra()).map_err(eng)?.into_iter().map(|x| x.id).collect()
        };
        x.note(Created::Stack(s.name.clone()));
        Ok(ids.into_iter().map(|id| Dynamic::from(Service { engine: s.engine.clone(), id })).collect())
    });
    doc("services() -> [Service]", "its services").func(r, |s: &mut Stack| -> RResult<Array> {
        let ids: Vec<String> = if s.engine.swarm().is_some() {
            s.engine.swarm_stack_services(&s.name).map_err(eng)?.into_iter().map(|x| x.id).collect()
        } else {
            s.engine.stack_services(&s.name).map_err(eng)?.into_iter().map(|x| x.id).collect()
        };
        Ok(ids.into_iter().map(|id| Dynamic::from(Service { engine: s.engine.clone(), id })).collect())
    });
    doc("service(name) -> Service", "one of its services, by its name in the file").func(r, |s: &mut Stack, short: &str| -> RResult<Service> {
        let full = format!("{}_{short}", s.name);
        let id = if s.engine.swarm().is_some() { s.engine.swarm_service(&full).map_err(eng)?.id } else { s.engine.service(&full).map_err(eng)?.id };
        Ok(Service { engine: s.engine.clone(), id })
    });
    doc("down()", "removes everything the stack made: services, networks, volumes, built images").func(r, |s: &mut Stack| -> RResult<()> { s.engine.stack_remove(&s.name).map(|_| ()).map_err(eng) });
    r.register_fn("to_string", |s: &mut Stack| format!("Stack({})", s.name));
}
