//! Images: finding, pulling, importing and building them, and the Image
//! handle's members.

use rhai::{Array, Dynamic, Map};

use super::{doc, Ctx};
use crate::script::{eng, progress, rerr, string_map, Created, Image, RResult};

pub const TYPE: (&str, &str) = ("Image", "a handle to a stored image");

pub fn register(r: &mut rhai::Engine, ctx: &Ctx) {
    let e = ctx.engine.clone();
    doc("image(ref) -> Image", "an existing image by reference (name:tag) or id").func(r, move |name: &str| -> RResult<Image> {
        let i = e.image(name).map_err(eng)?;
        Ok(Image { engine: e.clone(), id: i.id })
    });
    let e = ctx.engine.clone();
    doc("images() -> [Image]", "the stored images, as `berth images` lists them").func(r, move || -> RResult<Array> {
        Ok(e.images().map_err(eng)?.into_iter().map(|i| Dynamic::from(Image { engine: e.clone(), id: i.id })).collect())
    });
    let e = ctx.engine.clone();
    doc("import(path, tag) -> Image", "an image from a root filesystem tarball").func(r, move |path: &str, tag: &str| -> RResult<Image> {
        let i = e.import_file(path, Some(tag), &[]).map_err(eng)?;
        Ok(Image { engine: e.clone(), id: i.id })
    });
    let e = ctx.engine.clone();
    doc("pull(ref) -> Image", "pulls an image from a registry (progress bars on a terminal)").func(r, move |name: &str| -> RResult<Image> {
        let i = e.pull(name, progress()).map_err(eng)?;
        Ok(Image { engine: e.clone(), id: i.id })
    });
    register_build(r, ctx);

    doc("id -> string", "the image id (sha256:...)").get(r, |i: &mut Image| i.id.clone());
    doc("tags -> [string]", "its tags (\"busybox:latest\")").get(r, |i: &mut Image| -> RResult<Array> { Ok(i.get()?.tags.into_iter().map(Dynamic::from).collect()) });
    doc("size -> int", "its size in bytes").get(r, |i: &mut Image| -> RResult<i64> { Ok(i.get()?.size as i64) });
    doc("layers -> [string]", "its layer digests").get(r, |i: &mut Image| -> RResult<Array> { Ok(i.get()?.layers.into_iter().map(Dynamic::from).collect()) });
    doc("config -> Map", "#{ cmd, entrypoint, env, workdir, exposed_ports, user, labels }").get(r, |i: &mut Image| -> RResult<Map> {
        let c = i.get()?.config.config;
        let mut m = Map::new();
        let strs = |v: Option<Vec<String>>| -> Dynamic { v.map(|v| v.into_iter().map(Dynamic::from).collect::<Array>().into()).unwrap_or(Dynamic::UNIT) };
        m.insert("cmd".into(), strs(c.cmd));
        m.insert("entrypoint".into(), strs(c.entrypoint));
        m.insert("env".into(), c.env.into_iter().map(Dynamic::from).collect::<Array>().into());
        m.insert("workdir".into(), c.working_dir.into());
        m.insert("exposed_ports".into(), c.exposed_ports.keys().cloned().map(Dynamic::from).collect::<Array>().into());
        m.insert("user".into(), c.user.into());
        m.insert("labels".into(), c.labels.into_iter().map(|(k, v)| (k.into(), Dynamic::from(v))).collect::<Map>().into());
        Ok(m)
    });
    doc("history() -> [Map]", "how each layer was made, as `berth history`").func(r, |i: &mut Image| -> RResult<Array> {
        let (_, lines) = i.engine.history(&i.id).map_err(eng)?;
        Ok(lines
            .into_iter()
            .map(|h| {
                let mut m = Map::new();
                m.insert("created".into(), h.created.into());
                m.insert("created_by".into(), h.created_by.into());
                m.insert("size".into(), (h.size as i64).into());
                m.insert("comment".into(), h.comment.into());
                m.insert("empty_layer".into(), h.empty_layer.into());
                Dynamic::from(m)
            })
            .collect())
    });
    doc("remove()", "removes the image").func(r, |i: &mut Image| -> RResult<()> { i.engine.image_remove(&i.id, false).map(|_| ()).map_err(eng) });
    doc("tag(ref)", "adds a tag").func(r, |i: &mut Image, t: &str| -> RResult<()> { i.engine.tag(&i.id, t).map(|_| ()).map_err(eng) });
    doc("push(ref) -> string", "pushes to a registry (tagging it first when needed); the digest").func(r, |i: &mut Image, t: &str| -> RResult<String> {
        // Pushing under a name the image does not have yet tags it first,
        // as `docker tag` + `docker push` would.
        if !i.get()?.tags.iter().any(|x| crate::image::Reference::parse(t).ok().and_then(|r| r.tag_key()).as_deref() == Some(x.as_str())) {
            i.engine.tag(&i.id, t).map_err(eng)?;
        }
        i.engine.push(t, progress()).map_err(eng)
    });
    r.register_fn("to_string", |i: &mut Image| format!("Image({})", i.id.trim_start_matches("sha256:").get(..12).unwrap_or("")));
}

fn register_build(r: &mut rhai::Engine, ctx: &Ctx) {
    let c = ctx.clone();
    let build = move |dir: &str, opts: Map| -> RResult<Image> {
        let mut o = crate::build::builder::BuildOptions {
            context: dir.into(),
            file: None,
            tag: None,
            args: Default::default(),
            target: None,
            no_cache: false,
            show_output: false,
            log: None,
            labels: Default::default(),
            credentials: Default::default(),
            pull: false,
        };
        for (k, v) in &opts {
            match k.as_str() {
                "tag" => o.tag = Some(v.to_string()),
                "file" => o.file = Some(v.to_string().into()),
                "target" => o.target = Some(v.to_string()),
                "no_cache" => o.no_cache = v.as_bool().map_err(|_| rerr("option no_cache must be true or false"))?,
                "args" => o.args = string_map(v, "args")?,
                "quiet" => o.show_output = !v.as_bool().unwrap_or(true),
                other => return Err(rerr(format!("unknown build option {other:?}; known: tag, file, args, target, no_cache, quiet"))),
            }
        }
        let (i, new) = c.engine.build_new(&o).map_err(rerr)?;
        if new {
            c.note(Created::Image(i.id.clone()));
        }
        Ok(Image { engine: c.engine.clone(), id: i.id })
    };
    let d = doc("build(dir, [opts]) -> Image", "builds the Dockerfile in dir")
        .more("Options: tag: \"web:lab\", file: \"Dockerfile\", args: #{ V: \"1\" }, target: \"stage\", no_cache: true, quiet: false.\nExample: let web = build(\"examples/web\", #{ tag: \"web:lab\" });");
    let b = build.clone();
    d.func(r, move |dir: &str| b(dir, Map::new()));
    d.func(r, build);
}
