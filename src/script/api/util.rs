//! Script utilities: sleeping, the environment, assertions, polling and HTTP.

use std::time::{Duration, Instant};

use rhai::{Dynamic, FnPtr, Map, NativeCallContext};

use super::{doc, Doc};
use crate::script::{http, rerr, RResult};

/// The REPL registers its own sleep, which Ctrl-C wakes, under this help.
pub const SLEEP: Doc = doc("sleep(ms)", "pauses the script");

pub fn register(r: &mut rhai::Engine) {
    SLEEP.func(r, |ms: i64| std::thread::sleep(Duration::from_millis(ms.max(0) as u64)));
    doc("env(name) -> string", "a host environment variable, or () when unset").func(r, |name: &str| -> Dynamic { std::env::var(name).map(Dynamic::from).unwrap_or(Dynamic::UNIT) });
    let d = doc("assert(cond, [message])", "fails the script (or test) when cond is false");
    d.func(r, |c: bool, msg: &str| -> RResult<()> { if c { Ok(()) } else { Err(rerr(format!("assertion failed: {msg}"))) } });
    d.func(r, |c: bool| -> RResult<()> { if c { Ok(()) } else { Err(rerr("assertion failed")) } });
    let same = |a: &Dynamic, b: &Dynamic| a.to_string() == b.to_string() && a.type_name() == b.type_name();
    let eq = move |a: Dynamic, b: Dynamic, msg: &str| -> RResult<()> {
        if same(&a, &b) { Ok(()) } else { Err(rerr(format!("assert_eq failed{}: left {a:?} ({}), right {b:?} ({})", if msg.is_empty() { String::new() } else { format!(" ({msg})") }, a.type_name(), b.type_name()))) }
    };
    let ne = move |a: Dynamic, b: Dynamic, msg: &str| -> RResult<()> {
        if !same(&a, &b) { Ok(()) } else { Err(rerr(format!("assert_ne failed{}: both are {a:?}", if msg.is_empty() { String::new() } else { format!(" ({msg})") }))) }
    };
    let d = doc("assert_eq(a, b, [message])", "fails unless a and b have the same type and value");
    d.func(r, move |a: Dynamic, b: Dynamic| eq(a, b, ""));
    d.func(r, eq);
    let d = doc("assert_ne(a, b, [message])", "fails when a and b have the same type and value");
    d.func(r, move |a: Dynamic, b: Dynamic| ne(a, b, ""));
    d.func(r, ne);
    doc("wait_for(fn, ms) -> value", "calls fn every 50 ms until it returns true (or a value), fails on timeout").more("Example: wait_for(|| c.logs().contains(\"ready\"), 5000);").func(r, |ctx: NativeCallContext, f: FnPtr, ms: i64| -> RResult<Dynamic> {
        let deadline = Instant::now() + Duration::from_millis(ms.max(0) as u64);
        loop {
            let v: Dynamic = f.call_within_context(&ctx, ())?;
            let ok = v.as_bool().unwrap_or(!v.is_unit());
            if ok {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(rerr(format!("wait_for timed out after {ms} ms; last value: {v:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let http_get = |url: &str, opts: Map| -> RResult<Map> {
        for k in opts.keys() {
            if k.as_str() != "timeout" {
                return Err(rerr(format!("unknown http_get option {k:?}; known: timeout (ms)")));
            }
        }
        let t = Duration::from_millis(opts.get("timeout").and_then(|t| t.as_int().ok()).unwrap_or(10_000).max(1) as u64);
        let resp = http::get(url, t).map_err(rerr)?;
        let mut m = Map::new();
        m.insert("status".into(), (resp.status as i64).into());
        m.insert("body".into(), String::from_utf8_lossy(&resp.body).into_owned().into());
        m.insert("headers".into(), resp.headers.into_iter().map(|(k, v)| (k.into(), Dynamic::from(v))).collect::<Map>().into());
        Ok(m)
    };
    let d = doc("http_get(url, [opts]) -> Map", "an HTTP GET: #{ status, body, headers }").more("Options: timeout: ms (default 10000).");
    d.func(r, move |url: &str| http_get(url, Map::new()));
    d.func(r, http_get);
}
