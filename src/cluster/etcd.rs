//! etcd, swarm mode's store: a small synchronous client ([`Etcd`]) and an
//! etcd member run by berth ([`LocalEtcd`]).
//!
//! berth's engine is synchronous, so an [`Etcd`] owns the async
//! `etcd-client` and a current-thread tokio runtime that drives it only
//! while one of its methods runs, as `sys::netlink` does for rtnetlink.
//! Call it from plain threads, never from inside a tokio runtime.
//!
//! All of it works against Debian's etcd 3.4: KV, transactions, leases,
//! watches and the member list. etcd-client's `get_stream` needs etcd 3.7:
//! it is not used here.
//!
//! Calls go to one member and move to the next when it cannot be reached
//! or has lost its leader; a request whose connection broke mid-way is
//! sent again only when doing it twice does no harm.
//!
//! Every error names the endpoints and the operation:
//! `etcd at http://127.0.0.1:2379: creating /berth/nodes/a: no answer
//! within 5s; check that a majority of its members run`.

use std::ffi::OsString;
use std::fs::{self, File};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KeyValue, PutOptions, Txn,
    TxnOp, TxnOpResponse, WatchOptions,
};
use sha2::{Digest, Sha256};

#[derive(thiserror::Error, Debug)]
pub enum EtcdError {
    #[error("no etcd endpoint given; name at least one, like http://10.99.0.1:2379")]
    NoEndpoints,
    #[error("cannot reach etcd at {endpoints}: {source}; check the addresses and that a member listens there")]
    Unreachable { endpoints: String, source: etcd_client::Error },
    #[error("no etcd member at {endpoints} answered within {after:?}; check the addresses and that a majority of the members run")]
    NoAnswer { endpoints: String, after: Duration },
    #[error("etcd at {endpoints}: {op}: no answer within {after:?}; check that a majority of its members run")]
    Timeout { endpoints: String, op: String, after: Duration },
    #[error("etcd at {endpoints}: {op}: {source}")]
    Request { endpoints: String, op: String, source: etcd_client::Error },
    #[error("etcd at {endpoints}: watching {prefix} from revision {from}: etcd compacted its history up to revision {compacted}; read {prefix} again and watch from that read's revision")]
    Compacted { endpoints: String, prefix: String, from: i64, compacted: i64 },
    #[error("etcd at {endpoints}: watching {prefix}: the member cancelled the watch: {reason}")]
    WatchCancelled { endpoints: String, prefix: String, reason: String },
    #[error("starting the etcd client's runtime: {0}")]
    Runtime(#[source] io::Error),
    #[error("etcd member {name}: starting {bin}: {source}; install Debian's etcd-server (scripts/deps)")]
    Spawn { name: String, bin: String, source: io::Error },
    #[error("etcd member {name}: {context}: {source}")]
    Io { name: String, context: String, source: io::Error },
    #[error("etcd member {name} exited while starting ({status}); the end of its log {log}:\n{tail}")]
    Exited { name: String, status: ExitStatus, log: String, tail: String },
    #[error("etcd member {name} was not ready within {after:?} ({last}); a new cluster needs a majority of its members started; the end of its log {log}:\n{tail}")]
    NotReady { name: String, after: Duration, last: String, log: String, tail: String },
}

pub type Result<T> = std::result::Result<T, EtcdError>;

/// One key as read from etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of the key's last change: what [`Etcd::compare_and_swap`] expects.
    pub mod_revision: i64,
    /// The lease the key is tied to, 0 for none.
    pub lease: i64,
}

impl Kv {
    fn from_etcd(kv: &KeyValue) -> Kv {
        Kv {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
            lease: kv.lease(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by [`Etcd::watch_prefix`]. A delete has an empty value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of this change; a watch resumed from `mod_revision + 1`
    /// sees what came after it.
    pub mod_revision: i64,
}

/// A member of the etcd cluster. One that was added but has not started
/// yet has an empty name and no client URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

/// One member's view, from [`Etcd::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberStatus {
    /// The member that answered (as in [`Member::id`]).
    pub member_id: u64,
    /// The raft leader it knows, 0 when it knows none.
    pub leader_id: u64,
    /// The store's revision.
    pub revision: i64,
}

/// A connection to an etcd cluster and the current-thread runtime that
/// drives it. Every call waits at most the timeout given to [`Etcd::connect`].
///
/// Calls go to one member at a time and move on to the next when it cannot
/// be reached or has no leader. etcd-client can balance over all the
/// endpoints itself, but its balancer keeps handing requests to a member
/// that stopped (each fails with a connect error) and would wait out a
/// connect timeout for every request to an unreachable host.
pub struct Etcd {
    rt: tokio::runtime::Runtime,
    /// One client per endpoint, in the order given.
    clients: Vec<Client>,
    /// The index of the member calls go to now.
    current: AtomicUsize,
    endpoints: String,
    timeout: Duration,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd").field("endpoints", &self.endpoints).finish_non_exhaustive()
    }
}

/// How often a blocking watch looks at its stop condition.
const WATCH_TICK: Duration = Duration::from_millis(50);
/// The longest a connection attempt to one member may take before the
/// next member is tried; on a LAN it takes a millisecond.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 pings on a connection with a stream open (a watch), so that a
/// member that vanished without closing it is noticed. etcd refuses pings
/// more often than every 5 s.
const KEEPALIVE: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(5));

/// What a failed request's error says about whether it was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// It never reached a member able to act on it: the connection could
    /// not be made or was closed before the request went out, or the
    /// member has no leader (it refuses before proposing). Sending it to
    /// another member cannot do it twice.
    NotSent,
    /// The connection broke while the request was out: it may have been
    /// done. Only a request that means the same done twice is sent again.
    Unknown,
    /// The member answered with an error.
    Answered,
}

fn delivery(e: &etcd_client::Error) -> Delivery {
    let etcd_client::Error::GRpcStatus(s) = e else { return Delivery::Answered };
    if s.code() == tonic::Code::Unavailable && s.message() == "etcdserver: no leader" {
        return Delivery::NotSent;
    }
    let mut broke = false;
    let mut cause = std::error::Error::source(s);
    while let Some(c) = cause {
        if c.is::<tonic::ConnectError>() {
            return Delivery::NotSent;
        }
        if let Some(h) = c.downcast_ref::<hyper::Error>() {
            if h.is_canceled() {
                return Delivery::NotSent;
            }
            broke |= h.is_closed() || h.is_incomplete_message();
        }
        if let Some(io) = c.downcast_ref::<io::Error>() {
            use io::ErrorKind::*;
            broke |= matches!(io.kind(), BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof | NotConnected);
        }
        cause = c.source();
    }
    if broke { Delivery::Unknown } else { Delivery::Answered }
}

/// Whether a request may be sent again when its connection broke with the
/// answer unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Done twice it leaves what done once leaves (a read, a put).
    Safe,
    /// Its answer depends on the state it found (create, compare-and-swap).
    Unsafe,
}

impl Etcd {
    /// Connects to the cluster at `endpoints` (`http://host:port`, plain
    /// gRPC) and checks that a member with a leader answers within
    /// `timeout`, which also bounds every later call.
    pub fn connect(endpoints: &[String], timeout: Duration) -> Result<Etcd> {
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        let shown = endpoints.join(",");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(EtcdError::Runtime)?;
        // A member without a leader (cut off from the others) refuses
        // requests at once instead of holding them, and cancels watches.
        let opts = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT.min(timeout / 2))
            .with_keep_alive(KEEPALIVE.0, KEEPALIVE.1)
            .with_require_leader(true);
        let clients = endpoints
            .iter()
            .map(|url| rt.block_on(Client::connect([url], Some(opts.clone()))))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|source| EtcdError::Unreachable { endpoints: shown.clone(), source })?;
        // Spread the nodes of a swarm over the members.
        let first = std::process::id() as usize % clients.len();
        let etcd = Etcd { rt, clients, current: AtomicUsize::new(first), endpoints: shown, timeout };
        // The clients dial lazily: ask for a member's status so that a
        // wrong address fails here rather than at the first real use.
        match etcd.call("asking for a member's status".into(), Repeat::Safe, |mut c| async move { c.status().await }) {
            Ok(_) => Ok(etcd),
            Err(EtcdError::Timeout { endpoints, after, .. }) => Err(EtcdError::NoAnswer { endpoints, after }),
            Err(EtcdError::Request { endpoints, source, .. }) => Err(EtcdError::Unreachable { endpoints, source }),
            Err(e) => Err(e),
        }
    }

    /// The endpoints, comma-separated, as errors name them.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// The member calls go to now, and its client.
    fn pinned(&self) -> (usize, Client) {
        let i = self.current.load(Ordering::Relaxed);
        (i, self.clients[i].clone())
    }

    /// Sends later calls to the member after `failed`, unless another
    /// call moved on already.
    fn move_on(&self, failed: usize) {
        let next = (failed + 1) % self.clients.len();
        let _ = self.current.compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Runs one request, bounded by the timeout, on the current member and
    /// then on the next ones while it did not reach one (or, for a request
    /// that may `repeat`, while it may not have).
    fn call<T, F, Fut>(&self, op: String, repeat: Repeat, f: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut refusals = 0;
        loop {
            let (i, client) = self.pinned();
            let left = deadline.saturating_duration_since(Instant::now());
            let res = self.rt.block_on(async {
                // The runtime stood still since the last call: let the
                // connection's task read what came meanwhile (a stopped
                // member's goodbye) before the request picks a connection.
                tokio::task::yield_now().await;
                // The timer must be made inside the runtime.
                tokio::time::timeout(left, f(client)).await
            });
            match res {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(source)) => {
                    let d = delivery(&source);
                    if d != Delivery::Answered {
                        self.move_on(i);
                    }
                    let again = d == Delivery::NotSent || (d == Delivery::Unknown && repeat == Repeat::Safe);
                    if !again || Instant::now() >= deadline {
                        return Err(EtcdError::Request { endpoints: self.endpoints.clone(), op, source });
                    }
                    refusals += 1;
                    // Every member refused: wait a little for an election
                    // or a restart before the next round.
                    if refusals % self.clients.len() == 0 {
                        std::thread::sleep(Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now())));
                    }
                }
                Err(_) => {
                    // It may have been done: not retried, but the next call
                    // tries another member.
                    self.move_on(i);
                    return Err(EtcdError::Timeout { endpoints: self.endpoints.clone(), op, after: self.timeout });
                }
            }
        }
    }

    /// The value of `key`, `None` when there is no such key.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_kv(key)?.map(|kv| kv.value))
    }

    /// `key` with its revision and lease, `None` when there is no such key.
    pub fn get_kv(&self, key: &str) -> Result<Option<Kv>> {
        let resp = self.call(format!("reading {key}"), Repeat::Safe, |mut c| async move { c.get(key, None).await })?;
        Ok(resp.kvs().first().map(Kv::from_etcd))
    }

    /// Every key under `prefix`, in key order.
    pub fn get_prefix(&self, prefix: &str) -> Result<Vec<Kv>> {
        Ok(self.get_prefix_with_revision(prefix)?.0)
    }

    /// Every key under `prefix`, and the store's revision at that read: a
    /// watch from that revision + 1 misses nothing and repeats nothing.
    pub fn get_prefix_with_revision(&self, prefix: &str) -> Result<(Vec<Kv>, i64)> {
        let resp = self.call(format!("reading the keys under {prefix}"), Repeat::Safe, |mut c| async move {
            c.get(prefix, Some(GetOptions::new().with_prefix())).await
        })?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        Ok((resp.kvs().iter().map(Kv::from_etcd).collect(), rev))
    }

    /// Sets `key`, tied to `lease` when given (the key goes when the lease
    /// does). Returns the store's revision after the write.
    pub fn put(&self, key: &str, value: impl AsRef<[u8]>, lease: Option<i64>) -> Result<i64> {
        let value = value.as_ref();
        let resp = self.call(format!("writing {key}"), Repeat::Safe, |mut c| async move {
            c.put(key, value, lease.map(|l| PutOptions::new().with_lease(l))).await
        })?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Removes `key`; false when it was not there (or when the request,
    /// sent again after a connection broke, found it gone already).
    pub fn delete(&self, key: &str) -> Result<bool> {
        let resp = self.call(format!("deleting {key}"), Repeat::Safe, |mut c| async move { c.delete(key, None).await })?;
        Ok(resp.deleted() > 0)
    }

    /// Removes every key under `prefix`; returns how many went (only those
    /// of the last try when a connection broke).
    pub fn delete_prefix(&self, prefix: &str) -> Result<i64> {
        let resp = self.call(format!("deleting the keys under {prefix}"), Repeat::Safe, |mut c| async move {
            c.delete(prefix, Some(DeleteOptions::new().with_prefix())).await
        })?;
        Ok(resp.deleted())
    }

    /// Sets `key` only if it does not exist (one transaction on its create
    /// revision being 0); true when this call created it. An error may
    /// leave it unknown whether it did (a connection that broke mid-way):
    /// read the key to know.
    pub fn create(&self, key: &str, value: impl AsRef<[u8]>, lease: Option<i64>) -> Result<bool> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.as_ref(), lease.map(|l| PutOptions::new().with_lease(l)))]);
        let txn = &txn;
        let resp = self.call(format!("creating {key}"), Repeat::Unsafe, |mut c| async move { c.txn(txn.clone()).await })?;
        Ok(resp.succeeded())
    }

    /// Sets `key` to `value` only if its last change was at
    /// `expected_mod_revision` (0: only if it does not exist); true when
    /// this call wrote it. A key that exists keeps its lease. As with
    /// [`Etcd::create`], an error may leave the outcome unknown.
    pub fn compare_and_swap(&self, key: &str, expected_mod_revision: i64, value: impl AsRef<[u8]>) -> Result<bool> {
        // ignore_lease writes under the key's current lease, and etcd
        // refuses it for a missing key: only where the key must exist.
        let opts = (expected_mod_revision != 0).then(|| PutOptions::new().with_ignore_lease());
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected_mod_revision)])
            .and_then([TxnOp::put(key, value.as_ref(), opts)]);
        let txn = &txn;
        let resp = self.call(format!("swapping {key} at revision {expected_mod_revision}"), Repeat::Unsafe, |mut c| async move {
            c.txn(txn.clone()).await
        })?;
        Ok(resp.succeeded())
    }

    /// A new lease that lives `ttl_secs` seconds unless kept alive; etcd
    /// may round a very short TTL up (to about 1.5 s by default). A grant
    /// sent again after a connection broke may leave an unused lease
    /// behind, which expires on its own.
    pub fn lease_grant(&self, ttl_secs: i64) -> Result<i64> {
        let resp = self.call(format!("granting a lease of {ttl_secs} s"), Repeat::Safe, |mut c| async move {
            c.lease_grant(ttl_secs, None).await
        })?;
        Ok(resp.id())
    }

    /// Refreshes `lease` once; returns its TTL from now, 0 when it has
    /// expired or was revoked (its keys are gone).
    pub fn lease_keepalive(&self, lease: i64) -> Result<i64> {
        self.call(format!("keeping lease {lease:x} alive"), Repeat::Safe, |mut c| async move {
            // Opening the stream sends one keep-alive and reads its answer,
            // but etcd-client keeps only "found or not"; a second one gives
            // the TTL.
            let (mut keeper, mut stream) = match c.lease_keep_alive(lease).await {
                Ok(pair) => pair,
                Err(etcd_client::Error::LeaseKeepAliveError(_)) => return Ok(0),
                Err(e) => return Err(e),
            };
            keeper.keep_alive().await?;
            Ok(stream.message().await?.map_or(0, |r| r.ttl().max(0)))
        })
    }

    /// Ends `lease` now and removes the keys tied to it; a lease already
    /// gone is not an error.
    pub fn lease_revoke(&self, lease: i64) -> Result<()> {
        self.call(format!("revoking lease {lease:x}"), Repeat::Safe, |mut c| async move {
            match c.lease_revoke(lease).await {
                Ok(_) => Ok(()),
                Err(etcd_client::Error::GRpcStatus(s)) if s.code() == tonic::Code::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    /// Campaigns for leadership at `key`: the first campaigner whose
    /// `value` is written there, tied to its `lease`, leads until the lease
    /// ends or it resigns. True when this campaigner leads, including when
    /// it already did under the same lease (a leader that restarts and
    /// campaigns again).
    pub fn campaign(&self, key: &str, value: impl AsRef<[u8]>, lease: i64) -> Result<bool> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.as_ref(), Some(PutOptions::new().with_lease(lease)))])
            .or_else([TxnOp::get(key, None)]);
        let txn = &txn;
        let resp = self.call(format!("campaigning for {key}"), Repeat::Safe, |mut c| async move { c.txn(txn.clone()).await })?;
        if resp.succeeded() {
            return Ok(true);
        }
        let holder = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.lease()),
            _ => None,
        });
        Ok(holder == Some(lease))
    }

    /// The value the current leader at `key` wrote, `None` when nobody leads.
    pub fn leader(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.get(key)
    }

    /// Gives up leadership at `key` if this `lease` holds it; true when it
    /// did. After an error, [`Etcd::leader`] tells.
    pub fn resign(&self, key: &str, lease: i64) -> Result<bool> {
        let txn = Txn::new()
            .when([Compare::lease(key, CompareOp::Equal, lease)])
            .and_then([TxnOp::delete(key, None)]);
        let txn = &txn;
        let resp = self.call(format!("resigning {key}"), Repeat::Unsafe, |mut c| async move { c.txn(txn.clone()).await })?;
        Ok(resp.succeeded())
    }

    /// What the member that answers says of itself and of the cluster.
    pub fn status(&self) -> Result<MemberStatus> {
        let resp = self.call("asking for a member's status".into(), Repeat::Safe, |mut c| async move { c.status().await })?;
        Ok(MemberStatus {
            member_id: resp.header().map_or(0, |h| h.member_id()),
            leader_id: resp.leader(),
            revision: resp.header().map_or(0, |h| h.revision()),
        })
    }

    /// The cluster's members.
    pub fn member_list(&self) -> Result<Vec<Member>> {
        let resp = self.call("listing the members".into(), Repeat::Safe, |mut c| async move { c.member_list().await })?;
        Ok(resp
            .members()
            .iter()
            .map(|m| Member {
                id: m.id(),
                name: m.name().to_string(),
                peer_urls: m.peer_urls().to_vec(),
                client_urls: m.client_urls().to_vec(),
            })
            .collect())
    }

    /// Adds a member that will listen for peers at `peer_url`; start it
    /// afterwards with `ClusterState::Existing`.
    pub fn member_add(&self, peer_url: &str) -> Result<u64> {
        let urls = vec![peer_url.to_string()];
        let resp = self.call(format!("adding the member at {peer_url}"), Repeat::Unsafe, move |mut c| {
            let urls = urls.clone();
            async move { c.member_add(urls, None).await }
        })?;
        Ok(resp.member().map_or(0, |m| m.id()))
    }

    /// Removes the member whose peer URL is `peer_url`; false when there
    /// is none.
    pub fn member_remove_by_peer(&self, peer_url: &str) -> Result<bool> {
        let Some(m) = self.member_list()?.into_iter().find(|m| m.peer_urls.iter().any(|u| u == peer_url)) else { return Ok(false) };
        let id = m.id;
        self.call(format!("removing the member at {peer_url}"), Repeat::Unsafe, move |mut c| async move { c.member_remove(id).await })?;
        Ok(true)
    }

    /// Watches the keys under `prefix` from `from_revision` (0: from now)
    /// and hands each change to `on_event`, in revision order, until it
    /// returns false or `stop` returns true (asked every 50 ms, so a
    /// deadline or a flag). Returns the revision to resume from: the last
    /// change seen + 1.
    ///
    /// A stream that breaks (its member stopped) is opened again from that
    /// revision, on any member, so nothing is missed or repeated; a failure
    /// to open it is returned.
    pub fn watch_prefix(
        &self,
        prefix: &str,
        from_revision: i64,
        stop: impl Fn() -> bool,
        mut on_event: impl FnMut(WatchEvent) -> bool,
    ) -> Result<i64> {
        let mut next = from_revision;
        loop {
            if stop() {
                return Ok(next);
            }
            let mut opts = WatchOptions::new().with_prefix();
            if next > 0 {
                opts = opts.with_start_revision(next);
            }
            let opts = &opts;
            let mut stream =
                self.call(format!("watching {prefix}"), Repeat::Safe, |mut c| async move { c.watch(prefix, Some(opts.clone())).await })?;
            loop {
                let msg = self.rt.block_on(async {
                    tokio::select! {
                        m = stream.message() => Some(m),
                        _ = tokio::time::sleep(WATCH_TICK) => None,
                    }
                });
                let resp = match msg {
                    None if stop() => return Ok(next),
                    None => continue,
                    Some(Ok(Some(resp))) => resp,
                    // The stream broke (its member stopped or lost its
                    // leader): open it again where it stopped, elsewhere.
                    Some(Ok(None)) | Some(Err(_)) => {
                        self.move_on(self.current.load(Ordering::Relaxed));
                        std::thread::sleep(WATCH_TICK);
                        break;
                    }
                };
                if resp.canceled() {
                    if resp.compact_revision() > 0 {
                        return Err(EtcdError::Compacted {
                            endpoints: self.endpoints.clone(),
                            prefix: prefix.to_string(),
                            from: next,
                            compacted: resp.compact_revision(),
                        });
                    }
                    return Err(EtcdError::WatchCancelled {
                        endpoints: self.endpoints.clone(),
                        prefix: prefix.to_string(),
                        reason: resp.cancel_reason().to_string(),
                    });
                }
                // A watch "from now" pins "now" at its creation, so that a
                // reopened stream does not skip what came in between.
                if next == 0 {
                    next = resp.header().map_or(0, |h| h.revision() + 1);
                }
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let event = WatchEvent {
                        kind: match ev.event_type() {
                            EventType::Put => EventKind::Put,
                            EventType::Delete => EventKind::Delete,
                        },
                        key: String::from_utf8_lossy(kv.key()).into_owned(),
                        value: kv.value().to_vec(),
                        mod_revision: kv.mod_revision(),
                    };
                    next = event.mod_revision + 1;
                    if !on_event(event) {
                        return Ok(next);
                    }
                }
            }
        }
    }
}

/// How a member starts: founding a new cluster with the others named in
/// `initial_cluster`, or joining one that runs (after `member add`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

/// What a local etcd member is: its name, where it keeps its data and
/// which URLs it listens on and advertises.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub name: String,
    pub data_dir: PathBuf,
    /// `http://ADDR:PORT` where clients reach it (2379 by convention).
    pub client_url: String,
    /// `http://ADDR:PORT` where the other members reach it (2380).
    pub peer_url: String,
    /// Every founding member as `name=peer_url,...` (see [`initial_cluster`]).
    pub initial_cluster: String,
    pub state: ClusterState,
}

impl MemberConfig {
    /// Its log: beside the data directory, `DATA_DIR.log`.
    pub fn log_path(&self) -> PathBuf {
        let mut p = self.data_dir.clone().into_os_string();
        p.push(".log");
        PathBuf::from(p)
    }

    /// etcd 3.4's command line for this member.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut flag = |k: &str, v: &str| {
            args.push(format!("--{k}").into());
            args.push(v.into());
        };
        flag("name", &self.name);
        flag("listen-client-urls", &self.client_url);
        flag("advertise-client-urls", &self.client_url);
        flag("listen-peer-urls", &self.peer_url);
        flag("initial-advertise-peer-urls", &self.peer_url);
        flag("initial-cluster", &self.initial_cluster);
        flag("initial-cluster-state", match self.state {
            ClusterState::New => "new",
            ClusterState::Existing => "existing",
        });
        flag("initial-cluster-token", &cluster_token(&self.initial_cluster));
        // Without compaction the history grows until etcd's 2 GB quota,
        // and then the cluster takes no more writes.
        flag("auto-compaction-mode", "periodic");
        flag("auto-compaction-retention", "1h");
        // 3.4's default logger is the deprecated capnslog, which says so.
        flag("logger", "zap");
        flag("log-outputs", "stderr");
        // A member cut off from the others campaigns with ever higher
        // terms; without pre-vote its return forces the healthy majority
        // into an election, and every client waits it out (seconds on a
        // loaded host). 3.5 turns this on by default.
        // (A Go bool flag: `--pre-vote true` would end the flags there.)
        args.push("--pre-vote=true".into());
        args.push("--data-dir".into());
        args.push(self.data_dir.clone().into());
        args
    }
}

/// The `--initial-cluster` value for the founding members, `(name, peer_url)`.
pub fn initial_cluster<S: AsRef<str>>(members: &[(S, S)]) -> String {
    members.iter().map(|(n, u)| format!("{}={}", n.as_ref(), u.as_ref())).collect::<Vec<_>>().join(",")
}

/// The cluster token, from the founding members: members founding
/// another cluster with other addresses never take each other's messages.
/// Only a new cluster's founders use it; a member joining one that runs
/// ignores it.
pub fn cluster_token(initial_cluster: &str) -> String {
    let mut parts: Vec<&str> = initial_cluster.split(',').map(str::trim).collect();
    parts.sort_unstable();
    let digest = Sha256::digest(parts.join(",").as_bytes());
    format!("berth-{}", &hex::encode(digest)[..16])
}

/// GOARCH for the Rust target architecture, when etcd calls it
/// unsupported and starts only with `ETCD_UNSUPPORTED_ARCH` set to it.
fn unsupported_goarch(rust_arch: &str) -> Option<&str> {
    match rust_arch {
        "x86_64" | "aarch64" | "powerpc64" => None,
        "x86" => Some("386"),
        other => Some(other),
    }
}

/// The last `n` lines of `text`.
fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The time a member gets to stop on SIGTERM (a leader hands leadership
/// over first) before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// An etcd member process (/usr/bin/etcd) that berth started, for tests,
/// labs and `swarm init` without `--etcd`. Dropping it stops the member.
#[derive(Debug)]
pub struct LocalEtcd {
    cfg: MemberConfig,
    child: Option<Child>,
}

impl LocalEtcd {
    pub const BIN: &str = "/usr/bin/etcd";

    /// Starts the member and waits until it serves (at most `timeout`).
    /// A member of a new cluster serves only once a majority of its
    /// founders run: start those with [`LocalEtcd::start_cluster`], or
    /// [`LocalEtcd::spawn`] them all before waiting.
    pub fn start(cfg: MemberConfig, timeout: Duration) -> Result<LocalEtcd> {
        let mut m = LocalEtcd::spawn(cfg)?;
        m.wait_ready(timeout)?;
        Ok(m)
    }

    /// Starts the founding members `(name, client_url, peer_url)` of a new
    /// cluster, each with its data in `dir/NAME`, and waits until all serve.
    pub fn start_cluster(dir: &Path, members: &[(&str, &str, &str)], timeout: Duration) -> Result<Vec<LocalEtcd>> {
        let ic = initial_cluster(&members.iter().map(|(n, _, p)| (*n, *p)).collect::<Vec<_>>());
        let mut started = Vec::new();
        for (name, client_url, peer_url) in members {
            started.push(LocalEtcd::spawn(MemberConfig {
                name: name.to_string(),
                data_dir: dir.join(name),
                client_url: client_url.to_string(),
                peer_url: peer_url.to_string(),
                initial_cluster: ic.clone(),
                state: ClusterState::New,
            })?);
        }
        let deadline = Instant::now() + timeout;
        for m in &mut started {
            m.wait_ready(deadline.saturating_duration_since(Instant::now()))?;
        }
        Ok(started)
    }

    /// Starts the member without waiting for it to serve.
    pub fn spawn(cfg: MemberConfig) -> Result<LocalEtcd> {
        let io_err = |context: String| {
            let name = cfg.name.clone();
            move |source| EtcdError::Io { name, context, source }
        };
        if let Some(parent) = cfg.data_dir.parent() {
            fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
        }
        let log_path = cfg.log_path();
        let log = File::create(&log_path).map_err(io_err(format!("creating its log {}", log_path.display())))?;
        let log2 = log.try_clone().map_err(io_err(format!("opening its log {}", log_path.display())))?;
        let mut cmd = Command::new(Self::BIN);
        cmd.args(cfg.args()).stdin(Stdio::null()).stdout(log).stderr(log2);
        // etcd takes any flag from ETCD_* too, and refuses a flag given
        // both ways: the caller's environment must not add to ours.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        if let Some(goarch) = unsupported_goarch(std::env::consts::ARCH) {
            cmd.env("ETCD_UNSUPPORTED_ARCH", goarch);
        }
        let child = cmd.spawn().map_err(|source| EtcdError::Spawn { name: cfg.name.clone(), bin: Self::BIN.into(), source })?;
        Ok(LocalEtcd { cfg, child: Some(child) })
    }

    /// Waits until the member answers a linearizable read, which needs a
    /// leader; fails early when the process exits.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("not tried");
        loop {
            self.check_running()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(EtcdError::NotReady {
                    name: self.cfg.name.clone(),
                    after: timeout,
                    last,
                    log: self.cfg.log_path().display().to_string(),
                    tail: self.log_tail(),
                });
            }
            let probe = left.min(Duration::from_secs(1));
            match Etcd::connect(std::slice::from_ref(&self.cfg.client_url), probe).and_then(|e| e.get("berth-ready")) {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(50).min(deadline.saturating_duration_since(Instant::now())));
        }
    }

    fn check_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(EtcdError::Io {
                name: self.cfg.name.clone(),
                context: "waiting for it".into(),
                source: io::Error::other("it was stopped"),
            });
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.child = None;
                Err(EtcdError::Exited {
                    name: self.cfg.name.clone(),
                    status,
                    log: self.cfg.log_path().display().to_string(),
                    tail: self.log_tail(),
                })
            }
            Err(source) => Err(EtcdError::Io { name: self.cfg.name.clone(), context: "waiting for it".into(), source }),
        }
    }

    fn log_tail(&self) -> String {
        let text = fs::read(self.cfg.log_path()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        tail_lines(&text, 8)
    }

    pub fn config(&self) -> &MemberConfig {
        &self.cfg
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn client_url(&self) -> &str {
        &self.cfg.client_url
    }

    /// The member's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the member: SIGTERM, then SIGKILL after 5 s; waits for it.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let io_err = |context: &str, source| EtcdError::Io { name: self.cfg.name.clone(), context: context.into(), source };
        if child.try_wait().map_err(|e| io_err("waiting for it", e))?.is_some() {
            return Ok(());
        }
        if let Err(e) = crate::sys::proc::kill(child.id() as i32, libc::SIGTERM) {
            tracing::warn!(member = %self.cfg.name, "sending SIGTERM to etcd: {e}");
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if child.try_wait().map_err(|e| io_err("waiting for it", e))?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(member = %self.cfg.name, "etcd did not stop within {STOP_GRACE:?} of SIGTERM; killing it");
        child.kill().map_err(|e| io_err("killing it", e))?;
        child.wait().map_err(|e| io_err("waiting for it", e))?;
        Ok(())
    }

    /// Stops several members, one after the other. Together they would
    /// take seconds: a leader stopping hands leadership to a peer it still
    /// sees, and waits for it in vain when that peer is stopping too.
    pub fn stop_all(members: &mut [LocalEtcd]) -> Result<()> {
        let mut first_err = None;
        for m in members {
            if let Err(e) = m.stop() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(member = %self.cfg.name, "stopping etcd: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> MemberConfig {
        MemberConfig {
            name: "n1".into(),
            data_dir: PathBuf::from("/var/lib/berth/etcd"),
            client_url: "http://10.99.0.1:2379".into(),
            peer_url: "http://10.99.0.1:2380".into(),
            initial_cluster: "n1=http://10.99.0.1:2380,n2=http://10.99.0.2:2380".into(),
            state: ClusterState::New,
        }
    }

    fn flag(args: &[OsString], name: &str) -> Option<String> {
        let i = args.iter().position(|a| a == name)?;
        Some(args[i + 1].to_string_lossy().into_owned())
    }

    #[test]
    fn member_args_listen_and_advertise_the_same_urls() {
        let c = cfg();
        let a = c.args();
        assert_eq!(flag(&a, "--name").as_deref(), Some("n1"));
        assert_eq!(flag(&a, "--data-dir").as_deref(), Some("/var/lib/berth/etcd"));
        for f in ["--listen-client-urls", "--advertise-client-urls"] {
            assert_eq!(flag(&a, f).as_deref(), Some("http://10.99.0.1:2379"), "{f}");
        }
        for f in ["--listen-peer-urls", "--initial-advertise-peer-urls"] {
            assert_eq!(flag(&a, f).as_deref(), Some("http://10.99.0.1:2380"), "{f}");
        }
        assert_eq!(flag(&a, "--initial-cluster").as_deref(), Some(c.initial_cluster.as_str()));
        assert_eq!(flag(&a, "--initial-cluster-state").as_deref(), Some("new"));
        assert_eq!(flag(&a, "--initial-cluster-token"), Some(cluster_token(&c.initial_cluster)));
        assert!(a.iter().any(|x| x == "--pre-vote=true"), "a returning member must not force an election");
        let joining = MemberConfig { state: ClusterState::Existing, ..c };
        assert_eq!(flag(&joining.args(), "--initial-cluster-state").as_deref(), Some("existing"));
    }

    #[test]
    fn log_sits_beside_the_data_dir() {
        assert_eq!(cfg().log_path(), PathBuf::from("/var/lib/berth/etcd.log"));
    }

    #[test]
    fn initial_cluster_joins_name_and_peer_url() {
        let ic = initial_cluster(&[("a", "http://127.0.0.1:1"), ("b", "http://127.0.0.1:2")]);
        assert_eq!(ic, "a=http://127.0.0.1:1,b=http://127.0.0.1:2");
        assert_eq!(initial_cluster::<&str>(&[]), "");
    }

    #[test]
    fn cluster_token_depends_on_the_members_not_their_order() {
        let t = cluster_token("a=http://x:1,b=http://y:1");
        assert_eq!(t, cluster_token("b=http://y:1,a=http://x:1"));
        assert_ne!(t, cluster_token("a=http://x:1,b=http://y:2"));
        assert!(t.starts_with("berth-") && t.len() == "berth-".len() + 16, "{t}");
    }

    #[test]
    fn etcd_needs_the_unsupported_arch_switch_off_its_platforms() {
        assert_eq!(unsupported_goarch("x86_64"), None);
        assert_eq!(unsupported_goarch("aarch64"), None);
        assert_eq!(unsupported_goarch("x86"), Some("386"));
        assert_eq!(unsupported_goarch("s390x"), Some("s390x"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
        assert_eq!(tail_lines("", 3), "");
    }

    #[test]
    fn connect_without_endpoints_says_what_to_give() {
        let e = Etcd::connect(&[], Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("http://"), "{e}");
    }
}
