//! Volumes: finding or making them, and the Volume handle's members.

use rhai::{Array, Dynamic, Map};

use super::{doc, Ctx};
use crate::script::{eng, label_filter, rerr, string_map, Created, Kind, RResult, Volume};

pub const TYPE: (&str, &str) = ("Volume", "a named volume; mount it with run(.., #{ volumes: [\"name:/path\"] })");

pub fn register(r: &mut rhai::Engine, ctx: &Ctx) {
    let e = ctx.engine.clone();
    let x = ctx.clone();
    let nm = ctx.names.clone();
    let volume = move |name: &str, opts: Map| -> RResult<Volume> {
        let real = nm.resolve(Kind::Volume, name);
        let name = real.as_str();
        let mut labels = std::collections::BTreeMap::new();
        for (k, v) in &opts {
            match k.as_str() {
                "labels" => labels = string_map(v, k)?,
                other => return Err(rerr(format!("unknown volume option {other:?}; known: labels"))),
            }
        }
        let existed = e.volume(name).is_ok();
        labels.extend(x.extra());
        let v = e.volume_create(Some(name), &labels).map_err(eng)?;
        if !existed {
            x.note(Created::Volume(v.name.clone()));
        }
        Ok(Volume { engine: e.clone(), name: v.name })
    };
    let vo = volume.clone();
    let d = doc("volume(name, [opts]) -> Volume", "the named volume, created when missing").more("Options: labels: #{ k: \"v\" }.");
    d.func(r, move |name: &str| vo(name, Map::new()));
    d.func(r, volume);
    let e = ctx.engine.clone();
    let volumes = move |o: Map| -> RResult<Array> {
        let pick = label_filter(&o, "volumes")?;
        Ok(e.volumes().map_err(eng)?.into_iter().filter(|v| pick(&v.labels)).map(|v| Dynamic::from(Volume { engine: e.clone(), name: v.name })).collect())
    };
    let vs = volumes.clone();
    let d = doc("volumes([#{ label }]) -> [Volume]", "all volumes, or those with a label (\"k\" or \"k=v\")");
    d.func(r, move || vs(Map::new()));
    d.func(r, volumes);
    doc("labels -> Map", "its labels").get(r, |v: &mut Volume| -> RResult<Map> { Ok(v.engine.volume(&v.name).map_err(eng)?.labels.into_iter().map(|(k, x)| (k.into(), Dynamic::from(x))).collect()) });
    doc("name -> string", "the volume's name").get(r, |v: &mut Volume| v.name.clone());
    doc("path -> string", "its directory on the host").get(r, |v: &mut Volume| -> RResult<String> { Ok(v.engine.volume(&v.name).map_err(eng)?.mountpoint.display().to_string()) });
    doc("users -> [string]", "the containers that mount it").get(r, |v: &mut Volume| -> Array { v.engine.volume_users(&v.name).into_iter().map(Dynamic::from).collect() });
    doc("remove()", "removes the volume").func(r, |v: &mut Volume| -> RResult<()> { v.engine.volume_remove(&v.name).map_err(eng) });
    r.register_fn("to_string", |v: &mut Volume| format!("Volume({})", v.name));

}
