//! The HTTP side of `berth serve`: listeners (unix socket, TCP with mutual
//! TLS or, when asked, plain TCP), hyper's HTTP/1.1 with upgrades, and the
//! bridges between hyper's async bodies and the handlers' blocking
//! `Read`/`Write`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls;

use super::{API_VERSION, ApiError, Body, Conn, Ctx, MIN_API_VERSION, Reply, Req, Sink};
use crate::engine::Engine;

/// Where to listen.
#[derive(Clone, Debug)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// The certificate files of `--tlsverify`: clients must show a certificate
/// the CA signed.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: Listen,
    /// Exit after this long without a request and with no connection
    /// open (podman's --time); None serves until stopped.
    pub idle: Option<Duration>,
    pub tls: Option<TlsFiles>,
    /// Allow plain TCP, which gives anyone who reaches the port root.
    pub insecure: bool,
}

impl ServeOptions {
    /// `unix:///PATH`, `tcp://HOST:PORT`, or nothing for
    /// `unix://$BERTH_RUN/docker.sock`.
    pub fn listen(addr: Option<&str>, run_dir: &Path) -> Result<Listen, String> {
        let Some(addr) = addr else {
            return Ok(Listen::Unix(run_dir.join("docker.sock")));
        };
        if let Some(p) = addr.strip_prefix("unix://") {
            if p.is_empty() {
                return Err(format!("{addr}: the socket path is missing (unix:///run/berth/docker.sock)"));
            }
            return Ok(Listen::Unix(PathBuf::from(p)));
        }
        if let Some(hp) = addr.strip_prefix("tcp://") {
            let hp = hp.trim_end_matches('/');
            return hp.parse().map(Listen::Tcp).map_err(|_| format!("{addr}: expected tcp://ADDRESS:PORT, e.g. tcp://0.0.0.0:2376"));
        }
        Err(format!("{addr}: unsupported address; use unix:///PATH or tcp://ADDRESS:PORT"))
    }

    fn check(&self) -> Result<(), String> {
        match (&self.listen, &self.tls, self.insecure) {
            (Listen::Tcp(a), None, false) => Err(format!(
                "refusing to serve tcp://{a} without TLS: anyone who reaches the port could run containers as root on this host; \
                 give --tlsverify --tlscacert --tlscert --tlskey, or --insecure if you accept that"
            )),
            (Listen::Unix(_), Some(_), _) => Err("--tlsverify applies to tcp:// addresses only".into()),
            _ => Ok(()),
        }
    }
}

/// A running server. Dropping it leaves it running until the process ends;
/// `stop` ends it and removes its socket.
pub struct Server {
    addr: String,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds (so a client may connect as soon as this returns) and serves
    /// on a thread of its own.
    pub fn start(engine: Arc<Engine>, o: ServeOptions) -> Result<Server, String> {
        o.check()?;
        let tls = match &o.tls {
            Some(f) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(f)?))),
            None => None,
        };
        let (listener, addr) = bind(&o.listen)?;
        if matches!(o.listen, Listen::Tcp(_)) && tls.is_none() {
            tracing::warn!("serving {addr} over plain TCP (--insecure): anyone who can reach it can run containers as root here");
        }
        let stop = Arc::new(tokio::sync::Notify::new());
        let ctx = Arc::new(Ctx { engine, changes: Default::default() });
        let stop2 = stop.clone();
        let idle = o.idle;
        let sock = match &o.listen {
            Listen::Unix(p) => Some(p.clone()),
            Listen::Tcp(_) => None,
        };
        let thread = std::thread::Builder::new()
            .name("berth-serve".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("serve: cannot start the runtime: {e}");
                        return;
                    }
                };
                rt.block_on(accept_loop(listener, tls, ctx, idle, stop2));
                if let Some(p) = sock {
                    let _ = std::fs::remove_file(p);
                }
            })
            .map_err(|e| format!("serve: cannot start a thread: {e}"))?;
        Ok(Server { addr, stop, thread: Some(thread) })
    }

    /// The address clients use: `unix:///...` or `tcp://...`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Serves until stopped or idle for the set time.
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn stop(mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Listener {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

fn bind(l: &Listen) -> Result<(Listener, String), String> {
    match l {
        Listen::Unix(p) => {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("serve: cannot create {}: {e}", dir.display()))?;
            }
            if p.exists() {
                // A socket nobody answers on is left from a server that died.
                if std::os::unix::net::UnixStream::connect(p).is_ok() {
                    return Err(format!("serve: another server already listens on {}; stop it or choose another path", p.display()));
                }
                std::fs::remove_file(p).map_err(|e| format!("serve: cannot remove the stale socket {}: {e}", p.display()))?;
            }
            let s = std::os::unix::net::UnixListener::bind(p).map_err(|e| format!("serve: cannot listen on {}: {e}", p.display()))?;
            // As dockerd's socket: the owner and its group only.
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o660));
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok((Listener::Unix(s), format!("unix://{}", p.display())))
        }
        Listen::Tcp(a) => {
            let s = std::net::TcpListener::bind(a).map_err(|e| format!("serve: cannot listen on tcp://{a}: {e}"))?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            let local = s.local_addr().map_err(|e| e.to_string())?;
            Ok((Listener::Tcp(s), format!("tcp://{local}")))
        }
    }
}

fn tls_config(f: &TlsFiles) -> Result<rustls::ServerConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let read_certs = |p: &Path| -> Result<Vec<CertificateDer<'static>>, String> {
        let certs: Vec<_> = CertificateDer::pem_file_iter(p)
            .map_err(|e| format!("--tls: cannot read {}: {e}", p.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--tls: {}: {e}", p.display()))?;
        if certs.is_empty() {
            return Err(format!("--tls: {} holds no PEM certificate", p.display()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(&f.ca)? {
        roots.add(c).map_err(|e| format!("--tlscacert {}: {e}", f.ca.display()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("--tlscacert {}: {e}", f.ca.display()))?;
    let key = PrivateKeyDer::from_pem_file(&f.key).map_err(|e| format!("--tlskey {}: {e}", f.key.display()))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(&f.cert)?, key)
        .map_err(|e| format!("--tlscert/--tlskey: {e}"))
}

/// Open connections and when the last request came, for --time.
struct Activity {
    open: usize,
    last: Instant,
}

async fn accept_loop(
    listener: Listener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ctx: Arc<Ctx>,
    idle: Option<Duration>,
    stop: Arc<tokio::sync::Notify>,
) {
    let activity = Arc::new(Mutex::new(Activity { open: 0, last: Instant::now() }));
    let (unix, tcp) = match listener {
        Listener::Unix(s) => (Some(tokio::net::UnixListener::from_std(s)), None),
        Listener::Tcp(s) => (None, Some(tokio::net::TcpListener::from_std(s))),
    };
    let (unix, tcp) = match (unix.transpose(), tcp.transpose()) {
        (Ok(u), Ok(t)) => (u, t),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("serve: {e}");
            return;
        }
    };
    // Told to connections on the way out, so a request being answered
    // gets its answer (a script's stop() right after the request it waited
    // for must not cut that request off).
    let (quit, quit_rx) = tokio::sync::watch::channel(false);
    loop {
        let accepted = tokio::select! {
            _ = stop.notified() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)), if idle.is_some() => {
                let a = activity.lock().unwrap_or_else(|p| p.into_inner());
                if a.open == 0 && idle.is_some_and(|d| a.last.elapsed() >= d) {
                    tracing::info!("serve: no request for {} s, exiting", idle.unwrap_or_default().as_secs());
                    break;
                }
                continue;
            }
            c = async { unix.as_ref().unwrap().accept().await.map(|(s, _)| Stream::Unix(s)) }, if unix.is_some() => c,
            c = async { tcp.as_ref().unwrap().accept().await.map(|(s, _)| Stream::Tcp(s)) }, if tcp.is_some() => c,
        };
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("serve: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        let tls = tls.clone();
        let activity = activity.clone();
        let quit = quit_rx.clone();
        tokio::spawn(async move {
            bump(&activity, 1);
            match (stream, tls) {
                (Stream::Tcp(s), Some(acc)) => match acc.accept(s).await {
                    Ok(t) => connection(t, ctx, activity.clone(), quit).await,
                    // No certificate, or one the CA did not sign: nothing is served.
                    Err(e) => tracing::debug!("serve: TLS handshake refused: {e}"),
                },
                (Stream::Tcp(s), None) => connection(s, ctx, activity.clone(), quit).await,
                (Stream::Unix(s), _) => connection(s, ctx, activity.clone(), quit).await,
            }
            bump(&activity, -1);
        });
    }
    let _ = quit.send(true);
    // Streams (logs -f, events) would never end by themselves: they get
    // a short grace, then are cut.
    let deadline = Instant::now() + Duration::from_secs(2);
    while activity.lock().unwrap_or_else(|p| p.into_inner()).open > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

enum Stream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

fn bump(a: &Mutex<Activity>, by: isize) {
    let mut a = a.lock().unwrap_or_else(|p| p.into_inner());
    a.open = a.open.saturating_add_signed(by);
    a.last = Instant::now();
}

async fn connection<IO>(io: IO, ctx: Arc<Ctx>, activity: Arc<Mutex<Activity>>, mut quit: tokio::sync::watch::Receiver<bool>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        bump(&activity, 0);
        handle(ctx.clone(), req)
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc).with_upgrades();
    tokio::pin!(conn);
    let done = tokio::select! {
        r = conn.as_mut() => r,
        _ = quit.changed() => {
            // Finishes the request in hand, then closes.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = done {
        tracing::debug!("serve: connection: {e}");
    }
}

type Out = BoxBody<Bytes, io::Error>;

fn full(b: impl Into<Bytes>) -> Out {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A body fed from a channel as a producer writes.
fn channel_body(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Out {
    let s = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(Frame::data(b)), rx)) });
    StreamBody::new(s).boxed()
}

/// `/v1.41/containers/json` → ((1, 41), "/containers/json").
fn split_version(path: &str) -> (Option<(u32, u32)>, String) {
    if let Some(rest) = path.strip_prefix("/v")
        && let Some(i) = rest.find('/')
        && let Some((a, b)) = rest[..i].split_once('.')
        && let (Ok(a), Ok(b)) = (a.parse(), b.parse())
    {
        return (Some((a, b)), rest[i..].to_string());
    }
    (None, path.to_string())
}

fn parse_version(v: &str) -> (u32, u32) {
    let (a, b) = v.split_once('.').unwrap_or((v, "0"));
    (a.parse().unwrap_or(1), b.parse().unwrap_or(0))
}

fn error_response(e: &ApiError) -> Response<Out> {
    let mut r = Response::new(full(serde_json::to_vec(&e.body()).unwrap_or_default()));
    *r.status_mut() = e.status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(super::JSON));
    r
}

async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Result<Response<Out>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut r = answer(ctx, req).await;
    tracing::debug!("serve: {method} {path} -> {}", r.status().as_u16());
    let h = r.headers_mut();
    h.insert("api-version", HeaderValue::from_static(API_VERSION));
    h.insert("docker-experimental", HeaderValue::from_static("false"));
    h.insert("ostype", HeaderValue::from_static("linux"));
    h.insert(header::SERVER, HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")));
    Ok(r)
}

async fn answer(ctx: Arc<Ctx>, mut req: Request<Incoming>) -> Response<Out> {
    let (asked, path) = split_version(req.uri().path());
    let ours = parse_version(API_VERSION);
    if let Some(v) = asked {
        if v > ours {
            return error_response(&ApiError::bad(format!(
                "client version {}.{} is too new. Maximum supported API version is {API_VERSION}",
                v.0, v.1
            )));
        }
        if v < parse_version(MIN_API_VERSION) {
            return error_response(&ApiError::bad(format!(
                "client version {}.{} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version",
                v.0, v.1
            )));
        }
    }
    let query = req
        .uri()
        .query()
        .map(|q| form_pairs(q))
        .unwrap_or_default();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, incoming) = req.into_parts();
    let (btx, brx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(pump_body(incoming, btx));
    let r = Req {
        method: parts.method,
        path,
        version: asked.unwrap_or(ours),
        query,
        headers: parts.headers,
        body: Body::new(brx),
    };
    let wants_upgrade = r.wants_upgrade();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name("berth-api".into()).spawn(move || {
        let mut r = r;
        let reply = super::route(&ctx, &mut r);
        if r.method != Method::GET && r.method != Method::HEAD {
            ctx.changes.bump();
        }
        // The body stays readable by a hijacked session that did not upgrade.
        let _ = tx.send((reply, r.body));
    });
    if let Err(e) = spawned {
        return error_response(&ApiError::internal(format!("cannot start a thread: {e}")));
    }
    let Ok((reply, body)) = rx.await else {
        return error_response(&ApiError::internal("the handler failed"));
    };
    let (reply, extra) = match reply {
        Ok(Reply::WithHeaders { headers, reply }) => (Ok(*reply), headers),
        r => (r, Vec::new()),
    };
    let mut r = respond(reply, body, wants_upgrade, on_upgrade);
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

fn respond(reply: Result<Reply, ApiError>, body: Body, wants_upgrade: bool, on_upgrade: hyper::upgrade::OnUpgrade) -> Response<Out> {
    match reply {
        Err(e) => error_response(&e),
        Ok(Reply::Json(status, v)) => {
            let mut r = Response::new(full(serde_json::to_vec(&v).unwrap_or_default()));
            *r.status_mut() = status;
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(super::JSON));
            r
        }
        Ok(Reply::Empty(status)) => {
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = status;
            r
        }
        Ok(Reply::Raw { status, content_type, body }) => {
            let mut r = Response::new(full(body));
            *r.status_mut() = status;
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
        Ok(Reply::Stream { status, content_type, producer }) => {
            let (stx, srx) = tokio::sync::mpsc::channel(32);
            let _ = std::thread::Builder::new().name("berth-api-stream".into()).spawn(move || {
                let mut sink = Sink::new(stx);
                producer(&mut sink);
            });
            let mut r = Response::new(channel_body(srx));
            *r.status_mut() = status;
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
        Ok(Reply::Hijack { content_type, session }) => {
            let (stx, srx) = tokio::sync::mpsc::channel(32);
            if wants_upgrade {
                let (itx, irx) = tokio::sync::mpsc::channel(16);
                tokio::spawn(async move {
                    let up = match on_upgrade.await {
                        Ok(u) => u,
                        Err(e) => {
                            tracing::debug!("serve: upgrade failed: {e}");
                            return;
                        }
                    };
                    let (rd, wr) = tokio::io::split(TokioIo::new(up));
                    tokio::spawn(pump_read(rd, itx));
                    pump_write(wr, srx).await;
                });
                let _ = std::thread::Builder::new().name("berth-api-session".into()).spawn(move || {
                    session(Conn { reader: Body::new(irx), writer: Sink::new(stx) });
                });
                let mut r = Response::new(full(Bytes::new()));
                *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                let h = r.headers_mut();
                h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
                h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                r
            } else {
                let _ = std::thread::Builder::new().name("berth-api-session".into()).spawn(move || {
                    session(Conn { reader: body, writer: Sink::new(stx) });
                });
                let mut r = Response::new(channel_body(srx));
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                r
            }
        }
        // Unwrapped by the caller; nested ones lose their headers.
        Ok(Reply::WithHeaders { reply, .. }) => respond(Ok(*reply), body, wants_upgrade, on_upgrade),
    }
}

fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

/// Percent-decoding of a query component, `+` as space.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn pump_body(mut incoming: Incoming, tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>) {
    loop {
        match incoming.frame().await {
            None => return,
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data()
                    && tx.send(Ok(data)).await.is_err()
                {
                    return;
                }
            }
            Some(Err(e)) => {
                let _ = tx.send(Err(io::Error::other(e))).await;
                return;
            }
        }
    }
}

async fn pump_read<R: AsyncRead + Unpin>(mut rd: R, tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>) {
    let mut buf = vec![0u8; 32 << 10];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                if tx.send(Ok(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

async fn pump_write<W: AsyncWrite + Unpin>(mut wr: W, mut rx: tokio::sync::mpsc::Receiver<Bytes>) {
    while let Some(b) = rx.recv().await {
        if wr.write_all(&b).await.is_err() || wr.flush().await.is_err() {
            return;
        }
    }
    let _ = Pin::new(&mut wr).shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_queries() {
        assert_eq!(split_version("/v1.41/containers/json"), (Some((1, 41)), "/containers/json".into()));
        assert_eq!(split_version("/_ping"), (None, "/_ping".into()));
        assert_eq!(split_version("/version"), (None, "/version".into()));
        assert_eq!(parse_version("1.47"), (1, 47));
        assert_eq!(
            form_pairs("all=1&filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D&x=a+b&bad=%zz"),
            vec![
                ("all".into(), "1".into()),
                ("filters".into(), r#"{"label":["a=b"]}"#.into()),
                ("x".into(), "a b".into()),
                ("bad".into(), "%zz".into())
            ]
        );
        assert_eq!(unescape("100%"), "100%");
    }

    #[test]
    fn plain_tcp_needs_insecure() {
        let o = ServeOptions { listen: Listen::Tcp("127.0.0.1:0".parse().unwrap()), idle: None, tls: None, insecure: false };
        assert!(o.check().unwrap_err().contains("--insecure"));
        assert!(ServeOptions { insecure: true, ..o }.check().is_ok());
        assert!(ServeOptions::listen(Some("http://x"), Path::new("/run")).is_err());
        assert!(matches!(ServeOptions::listen(None, Path::new("/run/b")).unwrap(), Listen::Unix(p) if p == Path::new("/run/b/docker.sock")));
    }
}
