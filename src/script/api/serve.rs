//! `serve()`: the Docker Engine API from a script, so a lab or a test can
//! hand docker clients (the docker CLI, Compose, SDKs) to what it built.

use std::sync::{Arc, Mutex};

use rhai::Map;

use super::{doc, Ctx};
use crate::api::{ServeOptions, Server, TlsFiles};
use crate::script::{rerr, RResult};

pub const TYPE: (&str, &str) = ("ApiServer", "a running `berth serve`; point DOCKER_HOST at its addr, stop() ends it");

/// A server started by a script; clones share it, so any of them stops it.
#[derive(Clone)]
pub struct ApiServer {
    server: Arc<Mutex<Option<Server>>>,
    addr: String,
}

pub fn register(r: &mut rhai::Engine, ctx: &Ctx) {
    let e = ctx.engine.clone();
    let serve = move |addr: &str, o: Map| -> RResult<ApiServer> {
        let run = e.paths.run.clone();
        let listen = ServeOptions::listen((!addr.is_empty()).then_some(addr), &run).map_err(rerr)?;
        let mut opts = ServeOptions { listen, idle: None, tls: None, insecure: false };
        let (mut ca, mut cert, mut key) = (None, None, None);
        for (k, v) in &o {
            let s = || v.clone().into_string().map_err(|_| rerr(format!("serve option {k} must be a string (a file path)")));
            match k.as_str() {
                "time" => opts.idle = Some(std::time::Duration::from_secs(v.as_int().map_err(|_| rerr("serve option time must be seconds"))?.max(0) as u64)).filter(|d| !d.is_zero()),
                "insecure" => opts.insecure = v.as_bool().map_err(|_| rerr("serve option insecure must be true or false"))?,
                "tlscacert" => ca = Some(s()?.into()),
                "tlscert" => cert = Some(s()?.into()),
                "tlskey" => key = Some(s()?.into()),
                other => return Err(rerr(format!("unknown serve option {other:?}; known: time, insecure, tlscacert, tlscert, tlskey"))),
            }
        }
        opts.tls = match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsFiles { ca, cert, key }),
            (None, None, None) => None,
            _ => return Err(rerr("serve: mutual TLS needs all of tlscacert, tlscert and tlskey")),
        };
        let s = Server::start(e.clone(), opts).map_err(rerr)?;
        Ok(ApiServer { addr: s.addr().to_string(), server: Arc::new(Mutex::new(Some(s))) })
    };
    let s1 = serve.clone();
    let s2 = serve.clone();
    let d = doc("serve([addr], [opts]) -> ApiServer", "serves the Docker Engine API, as `berth serve`, until stop() or the script ends")
        .more("addr: \"unix:///PATH\" (default unix://$BERTH_RUN/docker.sock) or \"tcp://ADDRESS:PORT\".\nOptions: time: seconds without a request before it stops (0 = never), insecure: true (plain TCP), tlscacert, tlscert, tlskey: files for mutual TLS.\nExample: let api = serve(); sh(`DOCKER_HOST=${api.addr} docker ps`); api.stop();");
    d.func(r, move || s1("", Map::new()));
    d.func(r, move |addr: &str| s2(addr, Map::new()));
    d.func(r, serve);
    doc("addr -> string", "the address clients use, for DOCKER_HOST: unix:///... or tcp://...").get(r, |s: &mut ApiServer| s.addr.clone());
    doc("stop(ApiServer)", "stops serving and removes the socket; containers keep running").func(r, |s: &mut ApiServer| {
        if let Some(server) = s.server.lock().unwrap_or_else(|p| p.into_inner()).take() {
            server.stop();
        }
    });
}
