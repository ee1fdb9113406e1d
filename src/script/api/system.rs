//! The system as a whole: events, disk usage, facts, pruning and reset.

use rhai::{Array, Dynamic, Map};

use super::{doc, Ctx};
use crate::script::{eng, flag_opts, rerr, strings, RResult};

pub fn register(r: &mut rhai::Engine, ctx: &Ctx) {
    // events(#{ since, until, filter: #{ type, event, container, ... } }):
    // the recorded ones, at once (a script does not block on a stream).
    let e = ctx.engine.clone();
    let events = move |o: Map| -> RResult<Array> {
        let time = |k: &str| -> RResult<Option<f64>> {
            match o.get(k) {
                None => Ok(None),
                Some(v) if v.is_int() => Ok(Some(v.as_int().unwrap_or(0) as f64)),
                Some(v) if v.is_float() => Ok(Some(v.as_float().unwrap_or(0.0))),
                Some(v) => crate::events::parse_time(&v.to_string()).map(Some).map_err(|m| rerr(format!("events option {k}: {m}"))),
            }
        };
        let mut f = crate::events::Filter::default();
        for k in o.keys() {
            if !matches!(k.as_str(), "since" | "until" | "filter") {
                return Err(rerr(format!("unknown events option {k:?}; known: since, until, filter")));
            }
        }
        if let Some(m) = o.get("filter") {
            let m = m.clone().try_cast::<Map>().ok_or_else(|| rerr("events option filter must be a map such as #{ type: \"container\", event: \"start\" }"))?;
            for (k, v) in &m {
                let vals = if v.is_array() { strings(v, "filter")? } else { vec![v.to_string()] };
                for x in vals {
                    f.add(&format!("{k}={x}")).map_err(rerr)?;
                }
            }
        }
        let (since, until) = (time("since")?, time("until")?);
        Ok(e.events(since, until, &f)
            .into_iter()
            .map(|ev| {
                let mut m = Map::new();
                m.insert("type".into(), ev.typ.clone().into());
                m.insert("action".into(), ev.action.clone().into());
                m.insert("id".into(), ev.actor.id.clone().into());
                m.insert("name".into(), ev.actor.attributes.get("name").cloned().unwrap_or_default().into());
                m.insert("attributes".into(), ev.actor.attributes.iter().map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone()))).collect::<Map>().into());
                m.insert("time".into(), Dynamic::from_float(ev.time_nano as f64 / 1e9));
                Dynamic::from(m)
            })
            .collect())
    };
    let ev = events.clone();
    let d = doc("events([#{ since, until, filter }]) -> Array", "recorded events, oldest first: #{ type, action, id, name, attributes, time }; filter: #{ type: \"container\", event: \"start\", container: \"web\" }; since/until: Unix time, RFC 3339 or a duration before now (\"10m\")");
    d.func(r, move || ev(Map::new()));
    d.func(r, events);
    let e = ctx.engine.clone();
    doc("system_df() -> Map", "disk usage, as `berth system df`").func(r, move || -> RResult<Dynamic> { rhai::serde::to_dynamic(e.df().map_err(eng)?) });
    let e = ctx.engine.clone();
    doc("system_reset() -> Map", "removes everything this root holds, the default network too, as `berth system reset -f`; #{ containers, networks, volumes, images, ... } counts").func(r, move || -> RResult<Dynamic> { rhai::serde::to_dynamic(e.reset().map_err(eng)?) });
    let e = ctx.engine.clone();
    doc("system_info() -> Map", "host and engine facts, as `berth system info` (cgroup_version, cgroup_driver, kernel_version, ...)").func(r, move || -> RResult<Dynamic> { rhai::serde::to_dynamic(e.info().map_err(eng)?) });
    let e = ctx.engine.clone();
    let prune = move |o: Map| -> RResult<Dynamic> {
        let [all, volumes] = flag_opts("prune", &o, ["all", "volumes"])?;
        rhai::serde::to_dynamic(e.prune(all, volumes).map_err(eng)?)
    };
    let pr = prune.clone();
    let d = doc("prune([opts]) -> Map", "removes stopped containers, unused networks and dangling images").more("Options: all: true (every unused image), volumes: true (unused volumes too).");
    d.func(r, move || pr(Map::new()));
    d.func(r, prune);
    let e = ctx.engine.clone();
    let check = move |o: Map| -> RResult<Array> {
        let [repair, all_roots] = flag_opts("system_check", &o, ["repair", "all_roots"])?;
        // As the CLI counts them: what is on its way out, and what gone
        // roots left (unless all_roots), are not findings.
        let found = e.check_roots(repair, all_roots).map_err(eng)?;
        found.into_iter().filter(|f| !f.transient && (all_roots || !f.other_root)).map(|f| rhai::serde::to_dynamic(f)).collect()
    };
    let ch = check.clone();
    let d = doc("system_check([opts]) -> Array", "the leftovers `berth system check` finds: #{ kind, object, reason, repaired, repair_error }; empty when there are none")
        .more("Options: repair: true (remove them, as --repair), all_roots: true (also what roots that no longer exist left, as --all-roots).");
    d.func(r, move || ch(Map::new()));
    d.func(r, check);
}
