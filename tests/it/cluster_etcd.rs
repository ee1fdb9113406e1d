//! swarm mode's store: berth's etcd client against a real 3-member etcd
//! cluster on loopback, started by `LocalEtcd` in a temporary directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth::cluster::etcd::{ClusterState, Etcd, EtcdError, EventKind, LocalEtcd, MemberConfig, WatchEvent};

use crate::util::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;
/// What one client call may take: an election after a member stops takes
/// about a second on an idle machine.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// `n` distinct loopback ports free right now.
fn free_ports(n: usize) -> Vec<u16> {
    let mut seen = HashSet::new();
    while seen.len() < n {
        seen.insert(free_port());
    }
    seen.into_iter().collect()
}

/// A fresh directory under /tmp, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("berth-etcd-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A 3-member cluster in a temporary directory; dropping it stops every
/// member and removes the directory, also when the test fails. (Fields
/// drop in order: the members before their directory.)
struct Cluster {
    members: Vec<LocalEtcd>,
    dir: TempDir,
}

impl Cluster {
    fn start(test: &str) -> Cluster {
        let mut c = Cluster { members: Vec::new(), dir: TempDir::new(test) };
        let ports = free_ports(6);
        let urls: Vec<(String, String, String)> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (n.to_string(), format!("http://127.0.0.1:{}", ports[2 * i]), format!("http://127.0.0.1:{}", ports[2 * i + 1]))
            })
            .collect();
        let specs: Vec<(&str, &str, &str)> = urls.iter().map(|(n, c, p)| (n.as_str(), c.as_str(), p.as_str())).collect();
        let t0 = Instant::now();
        c.members = LocalEtcd::start_cluster(&c.dir.0, &specs, SECS(30)).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("3-member etcd cluster serving in {} ms", t0.elapsed().as_millis());
        c
    }

    fn urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url().to_string()).collect()
    }

    fn client(&self) -> Etcd {
        Etcd::connect(&self.urls(), CALL_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
    }

    fn pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(LocalEtcd::pid).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = LocalEtcd::stop_all(&mut self.members) {
            eprintln!("stopping the etcd members: {e}");
        }
    }
}

/// Drops the cluster and checks that none of its processes is left.
fn stop_and_check(c: Cluster) {
    let pids = c.pids();
    let dir = c.dir.0.clone();
    let t0 = Instant::now();
    drop(c);
    eprintln!("3-member etcd cluster stopped in {} ms", t0.elapsed().as_millis());
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "etcd pid {pid} is still there");
    }
    assert!(!dir.exists(), "{} is still there", dir.display());
}

fn text(v: Option<Vec<u8>>) -> Option<String> {
    v.map(|b| String::from_utf8(b).unwrap())
}

#[test]
fn create_cas_prefixes_members_and_watch() {
    let c = Cluster::start("kv");
    let e = c.client();

    assert!(e.create("/t/one", "a", None).unwrap());
    assert!(!e.create("/t/one", "b", None).unwrap(), "created twice");
    assert_eq!(text(e.get("/t/one").unwrap()).as_deref(), Some("a"));

    let kv = e.get_kv("/t/one").unwrap().unwrap();
    assert!(!e.compare_and_swap("/t/one", kv.mod_revision + 100, "x").unwrap());
    assert!(e.compare_and_swap("/t/one", kv.mod_revision, "c").unwrap());
    assert!(!e.compare_and_swap("/t/one", kv.mod_revision, "d").unwrap(), "swapped at a stale revision");
    assert_eq!(text(e.get("/t/one").unwrap()).as_deref(), Some("c"));
    assert!(e.compare_and_swap("/t/new", 0, "x").unwrap());
    assert!(!e.compare_and_swap("/t/new", 0, "y").unwrap(), "revision 0 must mean absent");

    for k in ["/t/p/2", "/t/p/1", "/t/q"] {
        e.put(k, k, None).unwrap();
    }
    let keys: Vec<String> = e.get_prefix("/t/p/").unwrap().into_iter().map(|kv| kv.key).collect();
    assert_eq!(keys, ["/t/p/1", "/t/p/2"]);
    assert_eq!(e.delete_prefix("/t/p/").unwrap(), 2);
    assert!(e.get_prefix("/t/p/").unwrap().is_empty());
    assert!(e.delete("/t/q").unwrap());
    assert!(!e.delete("/t/q").unwrap());
    assert_eq!(e.get("/t/q").unwrap(), None);

    let mut members = e.member_list().unwrap();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    for (m, url) in members.iter().zip(c.urls()) {
        assert_eq!(m.client_urls, [url]);
    }

    // The watch starts before the writes and sees them live, in order.
    let (_, rev) = e.get_prefix_with_revision("/w/").unwrap();
    let writer = {
        let w = c.client();
        std::thread::spawn(move || {
            sleep_ms(200);
            w.put("/w/a", "1", None).unwrap();
            w.put("/w/b", "2", None).unwrap();
            w.delete("/w/a").unwrap();
            w.put("/elsewhere", "3", None).unwrap();
        })
    };
    let deadline = Instant::now() + SECS(10);
    let mut seen: Vec<WatchEvent> = Vec::new();
    let next = e
        .watch_prefix("/w/", rev + 1, || Instant::now() > deadline, |ev| {
            seen.push(ev);
            seen.len() < 3
        })
        .unwrap();
    writer.join().unwrap();
    let got: Vec<(EventKind, &str, &[u8])> = seen.iter().map(|ev| (ev.kind, ev.key.as_str(), ev.value.as_slice())).collect();
    assert_eq!(
        got,
        [(EventKind::Put, "/w/a", &b"1"[..]), (EventKind::Put, "/w/b", b"2"), (EventKind::Delete, "/w/a", b"")]
    );
    assert!(seen.windows(2).all(|w| w[0].mod_revision < w[1].mod_revision), "{seen:?}");
    assert_eq!(next, seen[2].mod_revision + 1);

    // Resuming where it stopped repeats nothing, and a deadline ends it.
    let t0 = Instant::now();
    let mut again = 0;
    let until = t0 + Duration::from_millis(300);
    let resumed = e
        .watch_prefix("/w/", next, || Instant::now() > until, |_| {
            again += 1;
            true
        })
        .unwrap();
    assert_eq!(again, 0);
    assert_eq!(resumed, next);
    assert!(t0.elapsed() < SECS(2), "the watch outlived its deadline: {:?}", t0.elapsed());

    drop(e);
    stop_and_check(c);
}

#[test]
fn leases_expire_keepalive_holds_and_leadership_fails_over() {
    let c = Cluster::start("lease");
    let e = c.client();

    let short = e.lease_grant(2).unwrap();
    let kept = e.lease_grant(2).unwrap();
    let granted = Instant::now();
    e.put("/l/short", "x", Some(short)).unwrap();
    e.put("/l/kept", "y", Some(kept)).unwrap();
    assert_eq!(e.get_kv("/l/short").unwrap().unwrap().lease, short);

    // An election while the short lease runs out.
    let l1 = e.lease_grant(10).unwrap();
    let l2 = e.lease_grant(10).unwrap();
    assert!(e.campaign("/leader", "n1", l1).unwrap());
    assert!(!e.campaign("/leader", "n2", l2).unwrap(), "two leaders");
    assert!(e.campaign("/leader", "n1", l1).unwrap(), "the leader campaigning again must still lead");
    assert_eq!(text(e.leader("/leader").unwrap()).as_deref(), Some("n1"));
    assert!(!e.resign("/leader", l2).unwrap(), "a follower resigned the leader");
    e.lease_revoke(l1).unwrap();
    assert_eq!(e.leader("/leader").unwrap(), None, "the revoked leader's key is still there");
    assert!(e.campaign("/leader", "n2", l2).unwrap());
    assert_eq!(text(e.leader("/leader").unwrap()).as_deref(), Some("n2"));
    assert!(e.resign("/leader", l2).unwrap());
    assert_eq!(e.leader("/leader").unwrap(), None);
    e.lease_revoke(l2).unwrap();

    let gone = wait_until(SECS(8), || {
        assert!(e.lease_keepalive(kept).unwrap() > 0, "the kept lease expired");
        e.get("/l/short").unwrap().is_none()
    });
    assert!(gone, "the key of a 2 s lease is still there after {:?}", granted.elapsed());
    let expired_after = granted.elapsed();
    eprintln!("a 2 s lease's key went after {} ms", expired_after.as_millis());
    assert!(expired_after >= Duration::from_millis(1500), "expired early: {expired_after:?}");
    assert_eq!(e.lease_keepalive(short).unwrap(), 0);
    assert_eq!(text(e.get("/l/kept").unwrap()).as_deref(), Some("y"));

    e.lease_revoke(kept).unwrap();
    assert_eq!(e.get("/l/kept").unwrap(), None);
    e.lease_revoke(kept).expect("revoking a lease twice");

    drop(e);
    stop_and_check(c);
}

#[test]
fn one_member_of_three_stopped_keeps_reads_writes_and_watches() {
    let mut c = Cluster::start("quorum");
    let e = c.client();
    e.put("/q/before", "1", None).unwrap();

    // Stop the raft leader, which is also the member the clients below
    // talk to: the others elect a new leader, the clients move on.
    let leader = e.status().unwrap().leader_id;
    let members = e.member_list().unwrap();
    let lm = members.iter().find(|m| m.id == leader).expect("the leader in the member list");
    let (name, url) = (lm.name.clone(), lm.client_urls[0].clone());
    // A client starts at endpoint number pid % n.
    let mut urls = c.urls();
    let at = urls.iter().position(|u| *u == url).unwrap();
    let first = std::process::id() as usize % urls.len();
    urls.swap(at, first);
    let pinned = Etcd::connect(&urls, CALL_TIMEOUT).unwrap();
    assert_eq!(pinned.status().unwrap().member_id, leader, "the client does not start at {url}");

    let watcher = Etcd::connect(&urls, CALL_TIMEOUT).unwrap();
    let rev = pinned.status().unwrap().revision;
    let watch = std::thread::spawn(move || {
        let deadline = Instant::now() + SECS(10);
        let mut seen = Vec::new();
        let res = watcher.watch_prefix("/q/", rev + 1, || Instant::now() > deadline, |ev| {
            seen.push(ev.key.clone());
            ev.key != "/q/after"
        });
        (res, seen)
    });
    sleep_ms(200);

    let i = c.members.iter().position(|m| m.name() == name).unwrap();
    let t0 = Instant::now();
    c.members[i].stop().unwrap();
    eprintln!("the leader stopped in {} ms", t0.elapsed().as_millis());
    let t0 = Instant::now();
    // A create is never sent twice, so it must not go out on the stopped
    // member's dead connection.
    let created = pinned.create("/q/after", "2", None).unwrap_or_else(|e| panic!("writing with {name} stopped: {e}"));
    assert!(created);
    eprintln!("the first write with the leader stopped took {} ms", t0.elapsed().as_millis());
    assert_eq!(text(pinned.get("/q/before").unwrap()).as_deref(), Some("1"));
    pinned.put("/q/new", "3", None).unwrap();
    assert_eq!(pinned.get_prefix("/q/").unwrap().len(), 3);
    let now = pinned.status().unwrap();
    assert!(now.leader_id != 0 && now.leader_id != leader, "{now:?}");

    let (res, seen) = watch.join().unwrap();
    res.unwrap_or_else(|e| panic!("watching across the stop: {e}"));
    assert_eq!(seen, ["/q/after"], "the watch missed or repeated a change across the stop");

    // A client that names only the stopped member says so.
    let err = Etcd::connect(std::slice::from_ref(&url), Duration::from_millis(500)).unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");

    drop((e, pinned));
    stop_and_check(c);
}

#[test]
fn connect_to_nothing_names_the_endpoint() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let t0 = Instant::now();
    let err = Etcd::connect(std::slice::from_ref(&url), Duration::from_millis(500)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&url), "{msg}");
    assert!(matches!(err, EtcdError::NoAnswer { .. } | EtcdError::Unreachable { .. }), "{err:?}");
    assert!(t0.elapsed() < SECS(3), "{:?}", t0.elapsed());
}

#[test]
fn member_that_cannot_start_shows_its_log() {
    let dir = TempDir::new("bad");
    // Its peer port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = format!("http://{}", taken.local_addr().unwrap());
    let cfg = MemberConfig {
        name: "bad".into(),
        data_dir: dir.0.join("bad"),
        client_url: format!("http://127.0.0.1:{}", free_port()),
        peer_url: peer.clone(),
        initial_cluster: format!("bad={peer}"),
        state: ClusterState::New,
    };
    let err = LocalEtcd::start(cfg, SECS(10)).unwrap_err();
    assert!(matches!(err, EtcdError::Exited { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("etcd member bad") && msg.contains("address already in use"), "{msg}");
}
