//! `berth serve`: the Docker Engine HTTP API, the fourth front. Like the
//! command line it turns requests into `Engine` calls and renders the
//! typed results, here as docker's JSON; it holds no state of its own, so
//! containers made through it are ordinary berth containers and outlive it.
//!
//! Handlers are plain blocking functions, run each on a thread of its own:
//! the engine is synchronous, and a slow pull or a followed log must not
//! hold up other requests. The server (server.rs) does the HTTP with hyper
//! and bridges bodies, streams and hijacked connections to `Read`/`Write`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::engine::{Engine, EngineError};

mod containers;
mod exec;
mod images;
mod networks;
mod server;
mod system;
mod volumes;

pub use server::{Listen, ServeOptions, Server, TlsFiles};

/// The newest API version berth speaks; clients negotiate down to it
/// through `/_ping`'s `Api-Version` header.
pub const API_VERSION: &str = "1.47";
/// The oldest it accepts, as dockerd's default minimum.
pub const MIN_API_VERSION: &str = "1.24";

/// What every handler gets: the engine, shared by all requests.
pub struct Ctx {
    pub engine: Arc<Engine>,
    /// Bumped when a request that may change state has been handled.
    pub changes: Arc<Changes>,
}

/// A generation count that waiters sleep on: the docker CLI asks to wait
/// for a container before it starts it, and that wait should notice the
/// start this server just made without polling for it.
#[derive(Default)]
pub struct Changes {
    count: std::sync::Mutex<u64>,
    cv: std::sync::Condvar,
}

impl Changes {
    pub fn now(&self) -> u64 {
        *self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn bump(&self) {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.cv.notify_all();
    }

    /// Sleeps until the count passes `seen` or `limit` has gone by (for
    /// changes made outside this server); returns the count.
    pub fn wait_past(&self, seen: u64, limit: std::time::Duration) -> u64 {
        let g = self.count.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self.cv.wait_timeout_while(g, limit, |c| *c == seen).unwrap_or_else(|p| p.into_inner());
        *g
    }
}

/// A request, with the `/vX.Y` prefix taken off the path.
pub struct Req {
    pub method: Method,
    pub path: String,
    /// The version the client asked for in the path, or ours.
    pub version: (u32, u32),
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Body,
}

impl Req {
    /// A query parameter's value (the last one given).
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter (`?name=a&name=b`).
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.query.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// A boolean parameter as docker's clients send them: 1/true/True.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), Some("1" | "true" | "True" | "yes"))
    }

    /// A number parameter; absent is None, malformed is a 400.
    pub fn num<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>> {
        match self.q(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::bad(format!("invalid value for {key}: {v:?}"))),
        }
    }

    /// The `filters` parameter: `{"label":{"a=b":true}}` or `{"label":["a=b"]}`.
    pub fn filters(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let Some(raw) = self.q("filters").filter(|s| !s.is_empty()) else {
            return Ok(BTreeMap::new());
        };
        let v: Value = serde_json::from_str(raw).map_err(|e| ApiError::bad(format!("invalid filters {raw:?}: {e}")))?;
        let mut out = BTreeMap::new();
        let Value::Object(m) = v else {
            return Err(ApiError::bad(format!("invalid filters {raw:?}: an object is expected")));
        };
        for (k, v) in m {
            let vals = match v {
                Value::Object(o) => o.into_iter().filter(|(_, b)| b.as_bool() != Some(false)).map(|(s, _)| s).collect(),
                Value::Array(a) => a.into_iter().filter_map(|s| s.as_str().map(String::from)).collect(),
                Value::String(s) => vec![s],
                _ => return Err(ApiError::bad(format!("invalid filter {k:?}"))),
            };
            out.insert(k, vals);
        }
        Ok(out)
    }

    /// The whole body as JSON (an empty body is `null`).
    pub fn json<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        let mut buf = Vec::new();
        (&mut self.body).take(MAX_JSON_BODY + 1).read_to_end(&mut buf).map_err(|e| ApiError::bad(format!("reading the request body: {e}")))?;
        if buf.len() as u64 > MAX_JSON_BODY {
            return Err(ApiError::bad("the request body is larger than 16 MiB"));
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            buf = b"null".to_vec();
        }
        serde_json::from_slice(&buf).map_err(|e| ApiError::bad(format!("invalid JSON in the request body: {e}")))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the client asked for a connection upgrade (attach, exec).
    pub fn wants_upgrade(&self) -> bool {
        self.header("upgrade").is_some()
    }

    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        self.version >= (major, minor)
    }
}

const MAX_JSON_BODY: u64 = 16 << 20;

/// The request body as a blocking reader; the server feeds it as the
/// client sends. Also the reading half of a hijacked connection.
pub struct Body {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Body {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>) -> Body {
        Body { rx, cur: Bytes::new() }
    }
    pub fn empty() -> Body {
        let (_, rx) = tokio::sync::mpsc::channel(1);
        Body::new(rx)
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            // Handlers run on threads of their own, never in the runtime.
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// A streamed response body, or the writing half of a hijacked
/// connection. A write fails with BrokenPipe once the client has gone, so
/// a producer following logs or events stops.
pub struct Sink {
    tx: tokio::sync::mpsc::Sender<Bytes>,
}

impl Sink {
    pub(crate) fn new(tx: tokio::sync::mpsc::Sender<Bytes>) -> Sink {
        Sink { tx }
    }

    /// One JSON document and a newline (pull progress, build output, stats, events).
    pub fn json(&mut self, v: &Value) -> io::Result<()> {
        let mut line = serde_json::to_vec(v)?;
        line.push(b'\n');
        self.write_all(&line)
    }

    /// docker's multiplexed stream frame: stream (1 stdout, 2 stderr),
    /// three zero bytes, the length (big endian), the bytes.
    pub fn frame(&mut self, stream: u8, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut f = Vec::with_capacity(8 + data.len());
        f.extend_from_slice(&[stream, 0, 0, 0]);
        f.extend_from_slice(&(data.len() as u32).to_be_bytes());
        f.extend_from_slice(data);
        self.write_all(&f)
    }

    pub fn closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Both halves of a hijacked connection (attach, exec start).
pub struct Conn {
    pub reader: Body,
    pub writer: Sink,
}

pub type Producer = Box<dyn FnOnce(&mut Sink) + Send>;
pub type Session = Box<dyn FnOnce(Conn) + Send>;

pub const JSON: &str = "application/json";
pub const TAR: &str = "application/x-tar";
pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";
pub const MUX_STREAM: &str = "application/vnd.docker.multiplexed-stream";

pub enum Reply {
    Json(StatusCode, Value),
    Empty(StatusCode),
    Raw { status: StatusCode, content_type: &'static str, body: Vec<u8> },
    /// A body written as it is produced (chunked).
    Stream { status: StatusCode, content_type: &'static str, producer: Producer },
    /// The connection is taken over: 101 Switching Protocols when the
    /// client asked to upgrade, else 200 with the request body as input.
    Hijack { content_type: &'static str, session: Session },
    /// Another reply with headers of its own added (the archive
    /// endpoint's `X-Docker-Container-Path-Stat`).
    WithHeaders { headers: Vec<(&'static str, String)>, reply: Box<Reply> },
}

impl Reply {
    pub fn ok(v: Value) -> Reply {
        Reply::Json(StatusCode::OK, v)
    }
    pub fn created(v: Value) -> Reply {
        Reply::Json(StatusCode::CREATED, v)
    }
    pub fn no_content() -> Reply {
        Reply::Empty(StatusCode::NO_CONTENT)
    }
    pub fn stream(content_type: &'static str, producer: impl FnOnce(&mut Sink) + Send + 'static) -> Reply {
        Reply::Stream { status: StatusCode::OK, content_type, producer: Box::new(producer) }
    }
}

/// An error as docker's clients expect it: a status and `{"message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    pub fn body(&self) -> Value {
        json!({ "message": self.message })
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        ApiError::new(status_of(&e), e.to_string())
    }
}

impl From<crate::build::builder::BuildError> for ApiError {
    fn from(e: crate::build::builder::BuildError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

/// docker's status for an engine error: 404 for a missing object, 409 for
/// a conflict (name in use, object in use, wrong state), 400 for bad
/// parameters, 500 otherwise.
fn status_of(e: &EngineError) -> StatusCode {
    use crate::container::ContainerError as C;
    use crate::image::ImageError as I;
    use crate::network::NetworkError as N;
    use crate::volume::VolumeError as V;
    if e.is_not_found() {
        return StatusCode::NOT_FOUND;
    }
    match e {
        EngineError::Container(C::NameInUse(_) | C::BadState { .. })
        | EngineError::Network(N::Exists(_) | N::InUse { .. } | N::AlreadyConnected(_) | N::PortTaken { .. })
        | EngineError::Container(C::Network(N::Exists(_) | N::AlreadyConnected(_) | N::PortTaken { .. }))
        | EngineError::Volume(V::InUse { .. })
        | EngineError::Image(I::InUse { .. }) => StatusCode::CONFLICT,
        EngineError::Container(C::Network(N::NotFound(_)) | C::Image(I::NotFound(_))) => StatusCode::NOT_FOUND,
        EngineError::Container(C::BadName(_) | C::BadOption(_) | C::NoCommand(_) | C::NotYet(..))
        | EngineError::Network(N::BadName(_) | N::Predefined(_) | N::Ipam { .. } | N::NotConnected(..))
        | EngineError::Start { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub type Result<T> = std::result::Result<T, ApiError>;

/// Finds the handler for a request. Areas answer `None` for paths that are
/// not theirs.
pub(crate) fn route(ctx: &Ctx, req: &mut Req) -> Result<Reply> {
    let path = req.path.clone();
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let found = match seg[0] {
        // Interactive sessions (attach, exec, tty resize) live in exec.rs.
        "containers" if matches!(seg.get(2), Some(&("attach" | "resize" | "exec"))) => exec::route(ctx, req, &seg),
        "containers" => containers::route(ctx, req, &seg[1..]),
        "exec" => exec::route(ctx, req, &seg),
        "images" | "build" | "commit" | "auth" => images::route(ctx, req, &seg),
        "networks" => networks::route(ctx, req, &seg[1..]),
        "volumes" => volumes::route(ctx, req, &seg[1..]),
        _ => system::route(ctx, req, &seg),
    };
    found.unwrap_or_else(|| Err(ApiError::not_found(format!("page not found: {} {}", req.method, req.path))))
}

/// `label=K` (has it) or `label=K=V` (has it with that value).
pub fn label_matches(labels: &BTreeMap<String, String>, spec: &str) -> bool {
    match spec.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(spec),
    }
}

/// `dangling=true|1|false|0`.
pub fn dangling_value(vals: &[String]) -> Result<bool> {
    match vals.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["true" | "1"] => Ok(true),
        ["false" | "0"] => Ok(false),
        _ => Err(ApiError::bad(format!("invalid filter 'dangling={}': use true or false", vals.join(",")))),
    }
}

/// docker's time format in JSON: RFC 3339 with nanoseconds.
pub fn rfc3339(secs: f64) -> String {
    let ns = (secs * 1e9) as i64;
    chrono::DateTime::from_timestamp(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}
