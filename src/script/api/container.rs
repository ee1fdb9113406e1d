//! Containers: running them, finding them, and the Container handle's
//! members.

use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Map};

use super::{doc, Ctx};
use crate::container::{RestartPolicy, RunSpec};
use crate::engine::Attach;
use crate::runtime::exec::ExecOptions;
use crate::script::{eng, flag_opts, json_to_dynamic, listening, output_map, rerr, run_spec, strings, timeout_of, Container, Created, Image, Kind, RResult};

pub const TYPE: (&str, &str) = ("Container", "a handle to a container; copies refer to the same container and getters read live state");

pub fn register(r: &mut rhai::Engine, ctx: &Ctx) {
    globals(r, ctx);
    properties(r);
    actions(r);
    ports_and_waits(r);
    networks(r, ctx);
}

/// run(), run_once(), run_all(), remove_all(), container() and containers().
fn globals(r: &mut rhai::Engine, ctx: &Ctx) {
    let e = ctx.engine.clone();
    let x = ctx.clone();
    let nm = ctx.names.clone();
    let run = move |image: &str, opts: Map| -> RResult<Container> {
        let mut spec = run_spec(image, &opts)?;
        nm.spec(&mut spec);
        x.label(&mut spec);
        let (c, _) = e.run(&spec, Attach::Detached).map_err(eng)?;
        x.note(Created::Container(c.id.clone()));
        Ok(Container { engine: e.clone(), id: c.id })
    };
    let ru = run.clone();
    let d = doc("run(image, [opts]) -> Container", "creates and starts a container, detached").more(RUN_OPTIONS);
    d.func(r, move |image: &str| ru(image, Map::new()));
    d.func(r, run);
    let e = ctx.engine.clone();
    let x = ctx.clone();
    let nm = ctx.names.clone();
    let run_once = move |image: &str, cmd: Array, opts: Map| -> RResult<Map> {
        let mut spec = run_spec(image, &opts)?;
        nm.spec(&mut spec);
        x.label(&mut spec);
        spec.cmd = Some(strings(&Dynamic::from(cmd), "cmd")?);
        spec.rm = true;
        let (_, o) = e.run(&spec, Attach::Capture).map_err(eng)?;
        Ok(output_map(&o))
    };
    let e2 = ctx.engine.clone();
    let x2 = ctx.clone();
    let imp = move |path: &str, opts: Map| -> RResult<Container> {
        let mut name = None;
        for (k, v) in opts {
            match k.as_str() {
                "name" => name = Some(v.to_string()),
                other => return Err(rerr(format!("unknown restore_import option {other:?}; known: name"))),
            }
        }
        let c = e2.restore_import(std::path::Path::new(path), name.as_deref()).map_err(eng)?;
        x2.note(Created::Container(c.id.clone()));
        Ok(Container { engine: e2.clone(), id: c.id })
    };
    let im = imp.clone();
    let d = doc("restore_import(path, [opts]) -> Container", "a new container from an exported checkpoint archive").more("Options: name.\nExample: let c2 = restore_import(\"cp.tar.zst\", #{ name: \"c2\" });");
    d.func(r, move |path: &str| im(path, Map::new()));
    d.func(r, imp);
    let ro = run_once.clone();
    let d = doc("run_once(image, cmd, [opts]) -> Result", "runs cmd to completion, removes the container, returns #{ code, stdout, stderr }").more("Options: as run().\nExample: let r = run_once(\"busybox\", [\"echo\", \"hi\"]); r.stdout");
    d.func(r, move |image: &str, cmd: Array| ro(image, cmd, Map::new()));
    d.func(r, run_once);
    let e = ctx.engine.clone();
    let x = ctx.clone();
    let nm = ctx.names.clone();
    doc("run_all(specs) -> [Container]", "starts several containers concurrently").more("Each spec is run()'s option map plus image.\nExample: run_all([#{ image: \"busybox\", name: \"n1\" }, #{ image: \"busybox\", name: \"n2\" }])").func(r, move |specs: Array| -> RResult<Array> {
        let specs: Vec<RunSpec> = specs
            .into_iter()
            .map(|s| {
                let m = s.try_cast::<Map>().ok_or_else(|| rerr("run_all takes an array of option maps, each with an image"))?;
                let img = m.get("image").and_then(|i| i.clone().into_string().ok()).ok_or_else(|| rerr("each run_all spec needs an image"))?;
                let mut spec = run_spec(&img, &m)?;
                nm.spec(&mut spec);
                x.label(&mut spec);
                Ok(spec)
            })
            .collect::<RResult<_>>()?;
        let results: Vec<Result<String, String>> = std::thread::scope(|sc| {
            let hs: Vec<_> = specs.iter().map(|s| sc.spawn(|| e.run(s, Attach::Detached).map(|(c, _)| c.id).map_err(|x| x.to_string()))).collect();
            hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("panicked".into()))).collect()
        });
        for id in results.iter().flatten() {
            x.note(Created::Container(id.clone()));
        }
        let mut out = Array::new();
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(id) => out.push(Dynamic::from(Container { engine: e.clone(), id })),
                Err(msg) => return Err(rerr(format!("run_all: spec {i}: {msg}"))),
            }
        }
        Ok(out)
    });
    let e = ctx.engine.clone();
    let nm = ctx.names.clone();
    let remove_all = move |list: Array, opts: Map| -> RResult<()> {
        let [force, volumes] = flag_opts("remove_all", &opts, ["force", "volumes"])?;
        let keys: Vec<String> = list
            .into_iter()
            .map(|d| match d.clone().try_cast::<Container>() {
                Some(c) => Ok(c.id),
                None => d.into_string().map(|n| nm.resolve(Kind::Container, &n)).map_err(|t| rerr(format!("remove_all takes containers or their names, not a {t}"))),
            })
            .collect::<RResult<_>>()?;
        // As `rm` does: every one is tried, then the failures are told.
        let failed: Vec<String> = e.remove_many(&keys, force, volumes).into_iter().filter_map(|r| r.err()).map(|x| x.to_string()).collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(rerr(format!("remove_all: {} of {} not removed: {}", failed.len(), keys.len(), failed.join("; "))))
        }
    };
    let ra = remove_all.clone();
    let d = doc("remove_all(containers, [opts])", "removes several containers at once").more("containers: Container values or names. Options: as remove() (force, volumes).\nThe running ones are killed side by side and their networks' hosts files are written once, so a lab comes down faster than with remove() in a loop.\nEvery one is tried; the error lists those not removed.\nExample: remove_all(containers(#{ all: true }), #{ force: true });");
    d.func(r, move |list: Array| ra(list, Map::new()));
    d.func(r, remove_all);
    let e = ctx.engine.clone();
    let nm = ctx.names.clone();
    doc("container(name) -> Container", "an existing container by name or id").func(r, move |name: &str| -> RResult<Container> {
        let c = e.container(&nm.resolve(Kind::Container, name)).map_err(eng)?;
        Ok(Container { engine: e.clone(), id: c.id })
    });
    let e = ctx.engine.clone();
    let containers = move |opts: Map| -> RResult<Array> {
        let all = opts.get("all").and_then(|a| a.as_bool().ok()).unwrap_or(false);
        let label = opts.get("label").map(|l| l.to_string());
        Ok(e.containers(all)
            .map_err(eng)?
            .into_iter()
            .filter(|c| match &label {
                None => true,
                Some(l) => match l.split_once('=') {
                    Some((k, v)) => c.spec.labels.get(k).map(String::as_str) == Some(v),
                    None => c.spec.labels.contains_key(l.as_str()),
                },
            })
            .map(|c| Dynamic::from(Container { engine: e.clone(), id: c.id }))
            .collect())
    };
    let cs = containers.clone();
    let d = doc("containers([opts]) -> [Container]", "running containers, as `berth ps` lists them").more("Options: all: true (stopped ones too), label: \"role=db\" (or just \"role\").");
    d.func(r, move || cs(Map::new()));
    d.func(r, containers);
}

/// Its properties, and how it prints and compares.
fn properties(r: &mut rhai::Engine) {
    doc("id -> string", "the full id").get(r, |c: &mut Container| c.id.clone());
    doc("name -> string", "the container's name").get(r, |c: &mut Container| -> RResult<String> { Ok(c.get()?.name) });
    doc("state -> string", "\"created\", \"running\", \"paused\" or \"exited\"").get(r, |c: &mut Container| -> RResult<String> { Ok(c.get()?.state) });
    doc("exit_code -> int", "the exit code of the last run").get(r, |c: &mut Container| -> RResult<i64> { Ok(c.get()?.exit_code as i64) });
    doc("pid -> int", "the host pid of its init (0 when not running)").get(r, |c: &mut Container| -> RResult<i64> { Ok(c.get()?.pid as i64) });
    doc("node -> string", "the swarm node it runs on (this one: berth runs containers where it runs), \"\" outside a swarm").get(r, |c: &mut Container| c.engine.swarm().map(|m| m.name).unwrap_or_default());
    doc("ip -> string", "its address on the first network").get(r, |c: &mut Container| -> RResult<String> {
        Ok(c.engine.endpoints(&c.id).map_err(eng)?.first().map(|e| e.ip.to_string()).unwrap_or_default())
    });
    doc("ips -> Map", "#{ network: address } for every network").get(r, |c: &mut Container| -> RResult<Map> {
        Ok(c.engine.endpoints(&c.id).map_err(eng)?.into_iter().map(|e| (e.network.name.into(), Dynamic::from(e.ip.to_string()))).collect())
    });
    doc("health -> string", "\"none\", \"starting\", \"healthy\" or \"unhealthy\"").get(r, |c: &mut Container| -> RResult<String> {
        let x = c.get()?;
        Ok(if x.health.status.is_empty() || !x.running() { "none".into() } else { x.health.status })
    });
    doc("image -> string", "the image reference it was created from").get(r, |c: &mut Container| -> RResult<String> { Ok(c.get()?.image_ref) });
    doc("labels -> Map", "its labels").get(r, |c: &mut Container| -> RResult<Map> { Ok(c.get()?.spec.labels.into_iter().map(|(k, v)| (k.into(), Dynamic::from(v))).collect()) });
    r.register_fn("to_string", |c: &mut Container| -> String { format!("Container({})", &c.id[..12]) });
    r.register_fn("==", |a: Container, b: Container| a.id == b.id);
}

/// What a container does, and what is done to it.
fn actions(r: &mut rhai::Engine) {
    doc("start()", "starts a created or exited container").func(r, |c: &mut Container| -> RResult<()> { c.engine.start(&c.id).map(|_| ()).map_err(eng) });
    let d = doc("stop([seconds])", "SIGTERM (or its stop signal), SIGKILL after the grace period");
    d.func(r, |c: &mut Container| -> RResult<()> { c.engine.stop(&c.id, None).map(|_| ()).map_err(eng) });
    d.func(r, |c: &mut Container, t: i64| -> RResult<()> { c.engine.stop(&c.id, Some(t.max(0) as u64)).map(|_| ()).map_err(eng) });
    let d = doc("kill([signal])", "sends a signal, SIGKILL by default (\"SIGTERM\", \"HUP\", ...)");
    d.func(r, |c: &mut Container| -> RResult<()> { c.engine.kill(&c.id, "KILL").map(|_| ()).map_err(eng) });
    d.func(r, |c: &mut Container, s: &str| -> RResult<()> { c.engine.kill(&c.id, s).map(|_| ()).map_err(eng) });
    doc("restart()", "stops and starts it").func(r, |c: &mut Container| -> RResult<()> { c.engine.restart(&c.id, None).map(|_| ()).map_err(eng) });
    doc("pause()", "freezes its processes").func(r, |c: &mut Container| -> RResult<()> { c.engine.pause(&c.id).map(|_| ()).map_err(eng) });
    doc("unpause()", "thaws its processes").func(r, |c: &mut Container| -> RResult<()> { c.engine.unpause(&c.id).map(|_| ()).map_err(eng) });
    doc("wait() -> int", "waits until it exits; its exit code").func(r, |c: &mut Container| -> RResult<i64> { c.engine.wait(&c.id).map(|x| x as i64).map_err(eng) });
    doc("logs() -> string", "its output so far").func(r, |c: &mut Container| -> RResult<String> { Ok(c.engine.logs(&c.id).map_err(eng)?.into_iter().map(|l| l.text).collect()) });
    doc("inspect() -> Map", "the same data as `berth inspect`").func(r, |c: &mut Container| -> RResult<Dynamic> {
        let x = c.get()?;
        Ok(json_to_dynamic(&c.engine.container_inspect(&x)))
    });
    doc("stats() -> Map", "#{ cpu_percent, memory_bytes, memory_limit, pids, net_rx, net_tx, block_read, block_write }").func(r, |c: &mut Container| -> RResult<Map> {
        let s = c.engine.stats(std::slice::from_ref(&c.id), std::time::Duration::from_millis(500)).map_err(eng)?.pop().ok_or_else(|| rerr("no stats"))?;
        let mut m = Map::new();
        m.insert("cpu_percent".into(), Dynamic::from_float(s.cpu_percent));
        m.insert("memory_percent".into(), Dynamic::from_float(s.memory_percent));
        for (k, v) in [("memory_bytes", s.memory_bytes), ("memory_limit", s.memory_limit), ("pids", s.pids), ("net_rx", s.net_rx), ("net_tx", s.net_tx), ("block_read", s.block_read), ("block_write", s.block_write)] {
            m.insert(k.into(), Dynamic::from_int(v as i64));
        }
        Ok(m)
    });
    doc("diff() -> Array", "its changes to its image: [#{ kind: \"A\" | \"C\" | \"D\", path }], as `berth diff`").func(r, |c: &mut Container| -> RResult<Array> {
        Ok(c.engine.diff(&c.id).map_err(eng)?.into_iter().map(|ch| {
            let mut m = Map::new();
            m.insert("kind".into(), ch.kind.to_string().into());
            m.insert("path".into(), ch.path.into());
            Dynamic::from(m)
        }).collect())
    });
    // `export` is a Rhai keyword, so the method is export_to.
    doc("export_to(path)", "its whole filesystem as a tarball at path, as `berth export -o` (`export` is a Rhai keyword)").func(r, |c: &mut Container, path: &str| -> RResult<()> {
        let tmp = format!("{path}.berth-partial");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| rerr(format!("export: creating {path}: {e}")))?);
        let r = c.engine.export(&c.id, &mut f).map_err(eng).and_then(|_| std::io::Write::flush(&mut f).map_err(|e| rerr(format!("export: writing {path}: {e}"))));
        drop(f);
        match r {
            Ok(()) => std::fs::rename(&tmp, path).map_err(|e| rerr(format!("export: {path}: {e}"))),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    });
    let commit = |c: &mut Container, tag: &str, o: Map| -> RResult<Image> {
        let mut opts = crate::changes::CommitOptions { tag: (!tag.is_empty()).then(|| tag.to_string()), pause: true, ..Default::default() };
        for (k, v) in &o {
            match k.as_str() {
                "changes" => opts.changes = strings(v, "changes")?,
                "message" => opts.message = v.to_string(),
                "author" => opts.author = v.to_string(),
                "pause" => opts.pause = v.as_bool().map_err(|_| rerr("commit option pause must be true or false"))?,
                other => return Err(rerr(format!("unknown commit option {other:?}; known: changes, message, author, pause"))),
            }
        }
        let i = c.engine.commit(&c.id, &opts).map_err(eng)?;
        Ok(Image { engine: c.engine.clone(), id: i.id })
    };
    let d = doc("commit(tag, [opts]) -> Image", "a new image from its changes; opts: changes: [\"CMD [...]\", ...], message, author, pause");
    d.func(r, move |c: &mut Container, tag: &str| commit(c, tag, Map::new()));
    d.func(r, commit);
    doc("update(opts)", "new limits now and at its next start: #{ memory, cpus, pids_limit, restart }").func(r, |c: &mut Container, o: Map| -> RResult<()> {
        let mut u = crate::container::Update::default();
        for (k, v) in &o {
            match k.as_str() {
                "memory" => u.memory = Some(if let Ok(n) = v.as_int() { n } else { crate::parse::memory(&v.to_string()).map_err(rerr)? }),
                "cpus" => u.cpus = Some(v.as_float().or_else(|_| v.as_int().map(|i| i as f64)).map_err(|_| rerr("update option cpus must be a number such as 0.5"))?),
                "pids_limit" => u.pids_limit = Some(v.as_int().map_err(|_| rerr("update option pids_limit must be an integer"))?),
                "restart" => u.restart = Some(RestartPolicy::parse(&v.to_string()).map_err(rerr)?),
                other => return Err(rerr(format!("unknown update option {other:?}; known: memory, cpus, pids_limit, restart"))),
            }
        }
        c.engine.update(&c.id, &u).map(|_| ()).map_err(eng)
    });
    let d = doc("checkpoint([opts]) -> string", "checkpoints it with CRIU; its name").more("Options: name, leave_running, tcp_established, export_to (an archive path; `export` is a Rhai keyword).\nExample: let n = c.checkpoint(#{ name: \"cp1\", leave_running: true });");
    let cp = |c: &mut Container, o: Map| -> RResult<String> {
        let mut opts = crate::engine::CheckpointOpts { name: None, leave_running: false, tcp_established: false, export: None };
        for (k, v) in o {
            match k.as_str() {
                "name" => opts.name = Some(v.to_string()),
                "leave_running" => opts.leave_running = v.as_bool().map_err(|_| rerr("checkpoint option leave_running must be true or false"))?,
                "tcp_established" => opts.tcp_established = v.as_bool().map_err(|_| rerr("checkpoint option tcp_established must be true or false"))?,
                // `export` is a Rhai keyword: export_to, or "export" quoted.
                "export_to" | "export" => opts.export = Some(v.to_string().into()),
                other => return Err(rerr(format!("unknown checkpoint option {other:?}; known: name, leave_running, tcp_established, export_to"))),
            }
        }
        c.engine.checkpoint_create(&c.id, &opts).map_err(eng)
    };
    d.func(r, move |c: &mut Container| cp(c, Map::new()));
    d.func(r, cp);
    doc("checkpoints() -> Array", "the names of its checkpoints, oldest first").func(r, |c: &mut Container| -> RResult<Array> {
        Ok(c.engine.checkpoint_ls(&c.id).map_err(eng)?.into_iter().map(|m| Dynamic::from(m.name)).collect())
    });
    doc("restore(name)", "brings the stopped container back from its checkpoint name").func(r, |c: &mut Container, name: &str| -> RResult<()> { c.engine.start_checkpoint(&c.id, name).map(|_| ()).map_err(eng) });
    doc("migrate(node) -> string", "moves it, running, to another swarm node with its name and overlay addresses (checkpoint, send, restore there); the node's name").func(r, |c: &mut Container, node: &str| -> RResult<String> { c.engine.migrate(&c.id, node).map_err(eng) });
    doc("exec(cmd) -> Result", "runs a command inside: #{ code, stdout, stderr }").more("Example: c.exec([\"cat\", \"/etc/hostname\"]).stdout").func(r, |c: &mut Container, cmd: Array| -> RResult<Map> {
        let args = strings(&Dynamic::from(cmd), "cmd")?;
        let o = c.engine.exec(&c.id, ExecOptions { args, env: vec![], workdir: None, user: None, tty: false, interactive: false, privileged: false }, true).map_err(eng)?;
        Ok(output_map(&o))
    });
    doc("copy_to(local, inside)", "copies a host file or directory into the container").func(r, |c: &mut Container, local: &str, inside: &str| -> RResult<()> { c.engine.copy(local, &format!("{}:{inside}", c.id)).map_err(eng) });
    doc("copy_from(inside, local)", "copies a file or directory out of the container").func(r, |c: &mut Container, inside: &str, local: &str| -> RResult<()> { c.engine.copy(&format!("{}:{inside}", c.id), local).map_err(eng) });
    let d = doc("remove([opts])", "removes it").more("Options: force: true (a running one too), volumes: true (its anonymous volumes).");
    d.func(r, |c: &mut Container| -> RResult<()> { c.engine.remove(&c.id, false).map(|_| ()).map_err(eng) });
    d.func(r, |c: &mut Container, opts: Map| -> RResult<()> {
        let flag = |k: &str| opts.get(k).and_then(|f| f.as_bool().ok()).unwrap_or(false);
        c.engine.remove_with(&c.id, flag("force"), flag("volumes")).map(|_| ()).map_err(eng)
    });
}

/// Published ports, and waiting for a port or a log line.
fn ports_and_waits(r: &mut rhai::Engine) {
    let wait_port = |c: &mut Container, port: i64, opts: Map| -> RResult<()> {
        let deadline = Instant::now() + timeout_of(&opts);
        loop {
            let x = c.get()?;
            if x.state == "running" && listening(x.pid, port as u16) {
                return Ok(());
            }
            if !x.running() && x.state != "restarting" {
                return Err(rerr(format!("wait_for_port({port}): container {} is {} (exit code {})", x.name, x.state, x.exit_code)));
            }
            if Instant::now() > deadline {
                return Err(rerr(format!("wait_for_port({port}): nothing listens on port {port} in container {} after {:?}", x.name, timeout_of(&opts))));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The host port published for a container port, as Testcontainers'
    // getMappedPort: `publish: ["80"]` picks a free one.
    fn host_port(c: &Container, port: u16, proto: &str) -> RResult<i64> {
        let ps = c.engine.ports(&c.id).map_err(eng)?;
        match ps.iter().find(|p| p.container_port == port && p.proto == proto) {
            Some(p) => Ok(p.host_port as i64),
            None => {
                let have: Vec<String> = ps.iter().map(|p| format!("{}/{}", p.container_port, p.proto)).collect();
                let name = c.get().map(|x| x.name).unwrap_or_else(|_| c.id.clone());
                Err(rerr(format!(
                    "container {name}: port {port}/{proto} is not published ({}); publish it with publish: [\"{port}{}\"]",
                    if have.is_empty() { "nothing is".to_string() } else { format!("published: {}", have.join(", ")) },
                    if proto == "udp" { "/udp" } else { "" }
                )))
            }
        }
    }
    fn port_spec(spec: &str) -> RResult<(u16, String)> {
        let (p, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
        let proto = proto.to_ascii_lowercase();
        match (p.parse::<u16>(), proto.as_str()) {
            (Ok(n), "tcp" | "udp") if n > 0 => Ok((n, proto)),
            _ => Err(rerr(format!("port({spec:?}): expected a port number, optionally with /tcp or /udp (\"53/udp\")"))),
        }
    }
    let d = doc("port(80 | \"53/udp\") -> int", "the host port published for that container port (publish: [\"80\"] picks a free one)");
    d.func(r, |c: &mut Container, port: i64| -> RResult<i64> {
        let p = u16::try_from(port).map_err(|_| rerr(format!("port({port}): not a port number")))?;
        host_port(c, p, "tcp")
    });
    d.func(r, |c: &mut Container, spec: &str| -> RResult<i64> {
        let (p, proto) = port_spec(spec)?;
        host_port(c, p, &proto)
    });
    doc("url(80) -> string", "http://127.0.0.1:PORT for the host port published for that container port").func(r, |c: &mut Container, port: i64| -> RResult<String> {
        let p = u16::try_from(port).map_err(|_| rerr(format!("url({port}): not a port number")))?;
        Ok(format!("http://127.0.0.1:{}", host_port(c, p, "tcp")?))
    });
    let wp = wait_port;
    let d = doc("wait_for_port(port, [opts])", "waits until something listens on the TCP port inside").more(WAIT_TIMEOUT);
    d.func(r, move |c: &mut Container, port: i64| wp(c, port, Map::new()));
    d.func(r, wait_port);
    let wait_log = |c: &mut Container, text: &str, opts: Map| -> RResult<()> {
        let deadline = Instant::now() + timeout_of(&opts);
        loop {
            let logs: String = c.engine.logs(&c.id).map_err(eng)?.into_iter().map(|l| l.text).collect();
            if logs.contains(text) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let tail: Vec<&str> = logs.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
                return Err(rerr(format!("wait_for_log({text:?}) timed out after {:?}; last log lines: {tail:?}", timeout_of(&opts))));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let wl = wait_log;
    let d = doc("wait_for_log(text, [opts])", "waits until its log contains text").more(WAIT_TIMEOUT);
    d.func(r, move |c: &mut Container, t: &str| wl(c, t, Map::new()));
    d.func(r, wait_log);
}

fn networks(r: &mut rhai::Engine, ctx: &Ctx) {
    let nm = ctx.names.clone();
    let connect = move |c: &mut Container, n: &str, o: Map| -> RResult<()> {
        let ip = o.get("ip").map(|v| v.to_string());
        let mut aliases = match o.get("aliases") {
            Some(a) => strings(a, "aliases")?,
            None => vec![],
        };
        let net = nm.resolve(Kind::Network, n);
        // On the scope's network the container answers to its written name.
        if let Some(s) = &nm.scope
            && net != n
            && let Some(w) = c.get()?.name.strip_suffix(&format!(".{s}")).map(str::to_string)
            && !aliases.contains(&w)
        {
            aliases.push(w);
        }
        c.engine.network_connect(&net, &c.id, ip.as_deref(), &aliases).map_err(eng)
    };
    let co = connect.clone();
    let d = doc("connect(network, [opts])", "attaches it to another network").more("Options: ip: \"10.9.0.7\", aliases: [\"db\"].");
    d.func(r, move |c: &mut Container, n: &str| co(c, n, Map::new()));
    d.func(r, connect);
    let nm = ctx.names.clone();
    doc("disconnect(network)", "detaches it from a network").func(r, move |c: &mut Container, n: &str| -> RResult<()> { c.engine.network_disconnect(&nm.resolve(Kind::Network, n), &c.id).map_err(eng) });
}

const RUN_OPTIONS: &str = "Options (all optional):
  name: \"c1\"                   container name (unique)
  cmd: [\"sleep\", \"60\"]         command, replaces the image's CMD
  entrypoint: [\"sh\", \"-c\"]     replaces the image's ENTRYPOINT
  env: #{ A: \"1\" }             environment (or [\"A=1\"])
  workdir: \"/\"  hostname: \"h1\"  user: \"1000:1000\"
  labels: #{ role: \"db\" }      labels, for containers(#{ label: \"role=db\" })
  network: \"labnet\"  ip: \"192.168.13.4\"  aliases: [\"db\"]
  publish: [\"8000:80\"]  publish_all: true
  volumes: [\"data:/data\", \"/srv/x:/x:ro\"]  volumes_from: [\"c0\"]
  memory: \"64m\"  cpus: 0.5  pids_limit: 64 (default 2048; 0 lifts it)  cgroup_parent: \"lab\"
  log_opts: #{ \"max-size\": \"10m\", \"max-file\": 3 }  log rotation (default 20m, 5 files)
  devices: [\"/dev/loop0\", \"/dev/sdb:/dev/xvdb:r\"]  host devices, HOST[:CONTAINER[:PERMS]]
  restart: \"no\" | \"always\" | \"on-failure[:N]\"
  cap_add: [\"NET_ADMIN\"]  cap_drop: [\"MKNOD\"]  privileged: false
  sysctls: #{ \"net.ipv4.ip_forward\": \"1\" }  stop_signal: \"SIGTERM\"  stop_timeout: 10 (seconds)
  read_only: true  tmpfs: [\"/run:size=1m,mode=1777\"]  shm_size: \"128m\"
  add_hosts: [\"db:10.0.0.5\"]  dns: [\"10.0.0.2\"]  dns_search: [\"lab.test\"]  dns_options: [\"ndots:2\"]
  ulimits: [\"nofile=512:1024\"]  (at most the host's hard limit)
  rm: false  tty: false
  health: #{ cmd: [\"test\", \"-f\", \"/ready\"], interval: 1000, timeout: 1000, start_period: 0, retries: 3 }
Example: let c = run(\"busybox\", #{ name: \"c1\", cmd: [\"sleep\", \"300\"] });";

const WAIT_TIMEOUT: &str = "Options: #{ timeout: ms } (default 30000).";
