//! `container migrate C NODE`: a running container moves to another swarm
//! node with its name, its overlay addresses and its processes' state.
//!
//! The source checkpoints it (CRIU, established TCP kept) into an archive,
//! gives up its names and addresses in etcd, serves the archive once on
//! its underlay address and leaves an order for the target under
//! `migrations/<node>/<name>`. The target's agent fetches the archive,
//! checks its sum, and restores it (the same path as `restore --import`),
//! which takes the same address and announces the name from there; the
//! other nodes' agents move their FDB and neighbour entries on their next
//! round. The order's state tells the source; then it removes its stopped
//! copy. A failed or timed-out restore is undone: the source takes its
//! names and addresses back and restores its own checkpoint.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sys::sha256_file;
use super::{Engine, EngineError, Result};
use crate::cluster::etcd::Etcd;
use crate::cluster::membership::Membership;
use crate::cluster::model;

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Order {
    name: String,
    /// Where the archive is served (source's underlay address:port).
    from: String,
    sha256: String,
    size: u64,
    source: String,
    /// pending, done or failed.
    state: String,
    #[serde(default)]
    error: String,
}

fn key(node: &str, name: &str) -> String {
    format!("{}migrations/{node}/{name}", model::ROOT)
}

fn err(m: String) -> EngineError {
    EngineError::Other(m)
}

/// How long the source waits for the target's restore.
const WAIT: Duration = Duration::from_secs(120);

impl Engine {
    /// Moves running container `key` to swarm node `node`; returns the
    /// node's name.
    pub fn migrate(&self, key_: &str, node: &str) -> Result<String> {
        let c = self.container(key_)?;
        let (m, etcd) = self.swarm_etcd()?;
        let target = self.node(node)?;
        if target.record.id == m.node {
            return Err(err(format!("container {} is on node {} already", c.name, target.record.name)));
        }
        if !target.ready {
            return Err(err(format!("container {} cannot move to node {}: it is down", c.name, target.record.name)));
        }
        if !c.running() || c.state == "paused" {
            return Err(err(format!("container {} is {}: only a running container can be migrated", c.name, c.state)));
        }
        let eps = {
            let db = self.db();
            crate::network::endpoints_of_container(&db, &c.id)?
        };
        if let Some(e) = eps.iter().find(|e| !e.network.is_overlay()) {
            return Err(err(format!(
                "container {} is on network {}, which is this node's own: only containers on overlay networks (or with --network none) can move to another node",
                c.name, e.network.name
            )));
        }
        crate::runtime::criu::check().map_err(|e| err(format!("container {}: {e}", c.name)))?;
        let tmp = self.paths.tmp();
        std::fs::create_dir_all(&tmp).map_err(|e| err(format!("{}: {e}", tmp.display())))?;
        let archive = tmp.join(format!("migrate-{}.tar.zst", &c.id[..12]));
        let cp = format!("migrate-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
        let opts = super::CheckpointOpts { name: Some(cp.clone()), leave_running: false, tcp_established: true, export: Some(archive.clone()) };
        self.checkpoint_create(&c.id, &opts)?;
        let r = self.hand_over(&c, &eps, &m, &etcd, &target.record.id, &archive);
        let _ = std::fs::remove_file(&archive);
        let _ = etcd.delete(&key(&target.record.id, &c.name));
        match r {
            Ok(()) => {
                self.remove_with(&c.id, true, false)?;
                Ok(target.record.name)
            }
            Err(e) => {
                // Back here, as it was.
                for ep in &eps {
                    if let Err(x) = self.overlay_reclaim(&ep.network, &c.name, ep.ip, &ep.aliases) {
                        tracing::warn!("migrate: taking back {} on {}: {x}", ep.ip, ep.network.name);
                    }
                }
                let back = self.start_checkpoint(&c.id, &cp);
                Err(err(format!(
                    "container {} was not moved to node {}: {e}; {}",
                    c.name,
                    target.record.name,
                    match back {
                        Ok(_) => "it runs here again".to_string(),
                        Err(x) => format!("and restoring it here failed too: {x}"),
                    }
                )))
            }
        }
    }

    fn hand_over(&self, c: &crate::container::Container, eps: &[crate::network::Endpoint], m: &Membership, etcd: &Etcd, target: &str, archive: &Path) -> Result<()> {
        for ep in eps {
            self.overlay_release(&ep.network, Some(&c.name), ep.ip);
        }
        let listener = TcpListener::bind((m.addr, 0)).map_err(|e| err(format!("serving the checkpoint on {}: {e}", m.addr)))?;
        let port = listener.local_addr().map_err(|e| err(e.to_string()))?.port();
        listener.set_nonblocking(true).map_err(|e| err(e.to_string()))?;
        let size = std::fs::metadata(archive).map_err(|e| err(e.to_string()))?.len();
        let order = Order {
            name: c.name.clone(),
            from: format!("{}:{port}", m.addr),
            sha256: sha256_file(archive).map_err(|e| err(e.to_string()))?,
            size,
            source: m.node.clone(),
            state: "pending".into(),
            error: String::new(),
        };
        let k = key(target, &c.name);
        etcd.put(&k, serde_json::to_vec(&order).unwrap_or_default(), None).map_err(|e| err(e.to_string()))?;
        let deadline = Instant::now() + WAIT;
        loop {
            // Serve whoever asks (a retry after a broken transfer too).
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.set_nonblocking(false);
                if let Ok(mut f) = std::fs::File::open(archive) {
                    let _ = std::io::copy(&mut f, &mut s);
                }
            }
            if let Some(b) = etcd.get(&k).map_err(|e| err(e.to_string()))?
                && let Ok(o) = serde_json::from_slice::<Order>(&b)
            {
                match o.state.as_str() {
                    "done" => return Ok(()),
                    "failed" => return Err(err(format!("the restore there failed: {}", o.error))),
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                return Err(err(format!("node {target} did not restore it within {} s", WAIT.as_secs())));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The target's side, each agent round: orders for this node are
    /// fetched, checked and restored, and their state written back.
    pub(super) fn migrations_sync(&self, etcd: &Etcd, m: &Membership) -> Result<()> {
        let prefix = format!("{}migrations/{}/", model::ROOT, m.node);
        for kv in etcd.get_prefix(&prefix).map_err(|e| err(e.to_string()))? {
            let Ok(mut o) = serde_json::from_slice::<Order>(&kv.value) else { continue };
            if o.state != "pending" {
                continue;
            }
            let r = self.receive(&o);
            match r {
                Ok(()) => o.state = "done".into(),
                Err(e) => {
                    o.state = "failed".into();
                    o.error = e.to_string();
                }
            }
            tracing::info!("agent: migration of {} from {}: {} {}", o.name, o.source, o.state, o.error);
            etcd.put(&kv.key, serde_json::to_vec(&o).unwrap_or_default(), None).map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    }

    fn receive(&self, o: &Order) -> Result<()> {
        let tmp = self.paths.tmp();
        std::fs::create_dir_all(&tmp).map_err(|e| err(format!("{}: {e}", tmp.display())))?;
        let file = tmp.join(format!("incoming-{}.tar.zst", crate::store::new_id()));
        let r = (|| {
            let addr: std::net::SocketAddr = o.from.parse().map_err(|_| err(format!("a bad source address {:?}", o.from)))?;
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| err(format!("fetching the checkpoint from {}: {e}", o.from)))?;
            s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| err(e.to_string()))?;
            let mut f = std::fs::File::create(&file).map_err(|e| err(format!("{}: {e}", file.display())))?;
            let mut buf = vec![0u8; 1 << 16];
            let mut got = 0u64;
            while got < o.size {
                let n = s.read(&mut buf).map_err(|e| err(format!("fetching the checkpoint from {}: {e}", o.from)))?;
                if n == 0 {
                    break;
                }
                f.write_all(&buf[..n]).map_err(|e| err(e.to_string()))?;
                got += n as u64;
            }
            drop(f);
            let sum = sha256_file(&file).map_err(|e| err(e.to_string()))?;
            if sum != o.sha256 {
                return Err(err(format!("the checkpoint from {} came damaged ({got} of {} bytes, sum differs)", o.from, o.size)));
            }
            self.restore_import(&file, Some(&o.name)).map(|_| ())
        })();
        let _ = std::fs::remove_file(&file);
        r
    }
}
