//! The door's system methods: info, the leak check and its repair, df,
//! prune, reset and stats.

use std::collections::HashSet;
use std::path::Path;

use super::{Engine, Result};
use crate::container::Container;
use crate::network::{self, impair};
use crate::sys::netlink::Netlink;
use crate::sys::{mount, nft, proc};
use crate::system::*;

impl Engine {
    pub fn info(&self) -> Result<Info> {
        let cs = self.containers(true)?;
        let u = nix::sys::utsname::uname().ok();
        Ok(Info {
            containers: cs.len(),
            running: cs.iter().filter(|c| c.state == "running").count(),
            paused: cs.iter().filter(|c| c.state == "paused").count(),
            stopped: cs.iter().filter(|c| !matches!(c.state.as_str(), "running" | "paused")).count(),
            images: self.images()?.len(),
            networks: self.networks()?.len(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            storage_driver: "overlay".into(),
            cgroup_version: if crate::sys::cgroup::is_v2() { 2 } else { 1 },
            cgroup_driver: "cgroupfs".into(),
            cgroup_parent: self.paths.cgroup_parent(),
            kernel_version: u.as_ref().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
            os: os_name(),
            architecture: u.as_ref().map(|u| u.machine().to_string_lossy().into_owned()).unwrap_or_default(),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            total_memory: mem_total(),
            root_dir: self.paths.root.display().to_string(),
            run_dir: self.paths.run.display().to_string(),
            link_emulation: impair::mechanism().describe().into(),
            rootless: crate::rootless::active(),
            rootless_pieces: if crate::rootless::active() {
                format!(
                    "user namespace ({}), root filesystem: {}, cgroups: {}, networks: bridges in a rootless network namespace, slirp4netns for egress and published ports",
                    crate::rootless::mapping_summary(),
                    crate::sys::fuseoverlay::driver(&self.paths.run).name(),
                    crate::sys::cgroup::rootless_summary()
                )
            } else {
                String::new()
            },
        })
    }

    /// Finds (and with `repair`, removes) what this root left behind.
    pub fn check(&self, repair: bool) -> Result<Vec<Finding>> {
        self.check_roots(repair, false)
    }

    /// `check`, with what roots that no longer exist left behind removed
    /// too when `all_roots` (else those are only shown).
    pub fn check_roots(&self, repair: bool, all_roots: bool) -> Result<Vec<Finding>> {
        let mut ck = Check::new(self)?;
        ck.links()?;
        ck.firewall()?;
        let monitored = ck.processes();
        ck.files(&monitored);
        ck.cgroups(&monitored);
        ck.containers();
        ck.records(&monitored)?;
        ck.image_data()?;
        ck.services()?;
        ck.other_roots();
        let Check { mut found, closing, .. } = ck;
        for (f, _) in &mut found {
            f.transient = matches!(f.kind, "veth" | "tap") && closing.contains(&f.object);
        }
        if repair {
            for (f, fix) in found.iter_mut().filter(|(f, _)| all_roots || !f.other_root) {
                let r = self.apply_fix(fix);
                f.repaired = r.is_ok();
                f.repair_error = r.err();
            }
        }
        let mut found: Vec<Finding> = found.into_iter().map(|(f, _)| f).collect();
        // Their leftovers are gone with the repair above; their names go too.
        if repair && all_roots {
            let n = crate::store::prune_gone_roots();
            if n > 0 {
                found.push(Finding {
                    kind: "register",
                    object: format!("{}: {n} entries", crate::store::ROOTS_DIR),
                    reason: "their roots no longer exist".into(),
                    repair_error: None,
                    repaired: true,
                    other_root: true,
                    transient: false,
                });
            }
        }
        Ok(found)
    }

    fn apply_fix(&self, fix: &Fix) -> std::result::Result<(), String> {
        // An earlier fix may have taken this one along (a killed monitor's
        // delay line, a netns file under an unmounted namespace).
        let s = |e: std::io::Error| e.to_string();
        let gone = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r.map_err(s),
        };
        match fix {
            Fix::DeleteLink(l) => Netlink::new().and_then(|n| n.delete_link(l)).map_err(s),
            Fix::Rebridge { link, bridge } => Netlink::new().and_then(|n| n.set_master(link, bridge)).map_err(s),
            Fix::SyncFirewall => crate::firewall::sync(&self.paths, &self.db()).map_err(|e| e.to_string()),
            Fix::SyncLoss => network::sync_loss(&self.paths, &self.db()).map_err(|e| e.to_string()),
            Fix::Unmount(m) => {
                mount::umount_detach(m).map_err(s)?;
                if m.starts_with(self.paths.run.join("netns")) {
                    let _ = std::fs::remove_file(m);
                }
                Ok(())
            }
            Fix::RemoveContainerFiles(id) => crate::container::remove_files(&self.paths, id).map_err(|e| e.to_string()),
            Fix::Kill(pid) => gone(proc::kill(*pid, libc::SIGKILL)),
            Fix::RemoveFile(p) => gone(std::fs::remove_file(p)),
            Fix::MarkExited(id) => self.container(id).map(|_| ()).map_err(|e| e.to_string()),
            Fix::ForgetContainer(id) => {
                network::teardown(&self.paths, id);
                crate::container::forget(&mut self.db(), id).map_err(|e| e.to_string())?;
                crate::container::remove_files(&self.paths, id).map_err(|e| e.to_string())?;
                // Its published ports leave the firewall with it.
                crate::firewall::sync(&self.paths, &self.db()).map_err(|e| e.to_string())
            }
            Fix::Detach { container, network: net } => {
                let n = network::get(&self.db(), net).map_err(|e| e.to_string())?;
                network::detach(&mut self.db(), container, &n).map_err(|e| e.to_string())?;
                self.refresh_hosts(&n).map_err(|e| e.to_string())?;
                self.write_hosts(std::slice::from_ref(container)).map_err(|e| e.to_string())
            }
            Fix::Teardown(id) => {
                network::teardown(&self.paths, id);
                Ok(())
            }
            Fix::ForgetNetwork(id) => {
                network::forget(&mut self.db(), id).map_err(|e| e.to_string())?;
                crate::firewall::sync(&self.paths, &self.db()).map_err(|e| e.to_string())
            }
            Fix::RecreateBridge(id) => {
                let net = network::get(&self.db(), id).map_err(|e| e.to_string())?;
                network::make_bridge(&self.paths, &net).map_err(s)
            }
            Fix::MakeVolumeDir(name) => crate::volume::make_dir(&self.paths, name).map_err(s),
            Fix::RemoveDir(p) => gone(std::fs::remove_dir_all(p)),
            Fix::RemoveStack(name) => self.stack_remove(name).map(|_| ()).map_err(|e| e.to_string()),
            Fix::RemoveService(id) => self.service_remove(id).map(|_| ()).map_err(|e| e.to_string()),
            Fix::ReconcileService(id) => self.service_reconcile(id).map_err(|e| e.to_string()),
            Fix::Supervise(id) => self.ensure_supervisor(id).map_err(|e| e.to_string()),
            Fix::DeleteTable { family, name } => nft::delete_table(family, name).map_err(s),
            Fix::RemoveCgroupTree(path) => crate::sys::cgroup::remove_tree(path).map_err(s),
            Fix::DropUnreached => crate::image::drop_unreached(&self.paths, &mut self.db()).map_err(|e| e.to_string()),
            Fix::RemoveCgroup(path) => {
                let cg = crate::sys::cgroup::Cgroup::load(path);
                cg.kill_all().map_err(s)?;
                cg.delete().map_err(s)?;
                crate::sys::cgroup::remove_if_unused(&self.paths.cgroup_parent());
                Ok(())
            }
        }
    }
}

impl Engine {
    /// `system df`: what images, containers, volumes and the build cache
    /// hold on disk. Layers shared between images count once.
    pub fn df(&self) -> Result<Df> {
        use crate::volume::disk_usage;
        let mut df = Df::default();
        let containers = self.containers(true)?;
        let images = self.images()?;
        let used_images: HashSet<&str> = containers.iter().map(|c| c.image_id.as_str()).collect();
        let mut layer_size = std::collections::HashMap::new();
        let mut size_of = |chain: &str| -> u64 { *layer_size.entry(chain.to_string()).or_insert_with(|| disk_usage(&self.paths.layer_dir(chain))) };
        let mut counted: HashSet<String> = HashSet::new();
        let mut active_layers: HashSet<String> = HashSet::new();
        let mut users: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for l in images.iter().flat_map(|i| i.layers.iter().collect::<HashSet<_>>()) {
            *users.entry(l.as_str()).or_default() += 1;
        }
        for i in &images {
            let in_use = used_images.contains(i.id.as_str());
            let own: u64 = i.layers.iter().map(|l| size_of(l)).sum();
            let shared: u64 = i.layers.iter().filter(|l| users.get(l.as_str()).is_some_and(|n| *n > 1)).map(|l| size_of(l)).sum();
            df.images.total += 1;
            if in_use {
                df.images.active += 1;
                active_layers.extend(i.layers.iter().cloned());
            }
            df.items.push(DfItem { kind: "image", id: i.id.clone(), name: i.tags.first().cloned().unwrap_or_else(|| i.short_id().to_string()), size: own, shared, in_use });
            for l in &i.layers {
                if counted.insert(l.clone()) {
                    df.images.size += size_of(l);
                }
            }
        }
        df.images.reclaimable = counted.iter().filter(|l| !active_layers.contains(*l)).map(|l| size_of(l)).sum();
        for c in &containers {
            let size = disk_usage(&self.paths.container_dir(&c.id).join("upper"));
            let running = matches!(c.state.as_str(), "running" | "paused" | "restarting");
            df.containers.count(size, running);
            df.items.push(DfItem { kind: "container", id: c.id.clone(), name: c.name.clone(), size, shared: 0, in_use: running });
        }
        let mounted = crate::container::volumes_in_use(&containers);
        for v in self.volumes()? {
            let size = disk_usage(&v.mountpoint);
            let in_use = mounted.contains(&v.name);
            df.volumes.count(size, in_use);
            df.items.push(DfItem { kind: "volume", id: v.name.clone(), name: v.name.clone(), size, shared: 0, in_use });
        }
        // Build steps that are not images of their own: their layers beyond
        // those of listed images.
        let listed: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
        for i in crate::image::list(&self.db())? {
            if listed.contains(i.id.as_str()) {
                continue;
            }
            let own: u64 = i.layers.iter().filter(|l| counted.insert((*l).clone())).map(|l| size_of(l)).sum();
            df.build_cache.count(own, false);
        }
        Ok(df)
    }

    /// `system reset`: everything this root holds, as podman's: stacks,
    /// services, containers (running ones too), every network (the default
    /// one too), volumes, images and the build cache. Returns how many of
    /// each went; what could not go is an error naming it.
    pub fn reset(&self) -> Result<Reset> {
        let mut r = Reset::default();
        let _ = crate::testrun::sweep_dead(self);
        for s in self.stacks()? {
            self.stack_remove(&s.name)?;
            r.stacks += 1;
        }
        for s in self.services()? {
            self.service_remove(&s.id)?;
            r.services += 1;
        }
        for c in self.containers(true)? {
            self.remove_with(&c.id, true, true)?;
            r.containers += 1;
        }
        for n in self.networks()? {
            self.network_remove_any(&n.id)?;
            r.networks += 1;
        }
        for v in self.volumes()? {
            self.volume_remove(&v.name)?;
            r.volumes += 1;
        }
        // Children before parents: an image a later one is built on goes last.
        loop {
            let imgs = self.images_all(true)?;
            if imgs.is_empty() {
                break;
            }
            let before = imgs.len();
            for i in imgs {
                if self.image_remove(&i.id, true).is_ok() {
                    r.images += 1;
                }
            }
            if self.images_all(true)?.len() == before {
                let left: Vec<String> = self.images_all(true)?.iter().map(|i| i.short_id().to_string()).collect();
                return Err(super::EngineError::Other(format!("system reset: images {} could not be removed", left.join(", "))));
            }
        }
        let db = self.db();
        let _ = db.conn.execute_batch("CREATE TABLE IF NOT EXISTS build_cache(key TEXT PRIMARY KEY, image_id TEXT NOT NULL)");
        r.build_cache = db.conn.execute("DELETE FROM build_cache", []).unwrap_or(0);
        drop(db);
        let _ = std::fs::remove_file(self.paths.build_sums());
        crate::sys::cgroup::remove_if_unused(&self.paths.cgroup_parent());
        crate::container::spare::clear(&self.paths);
        // A rootless berth's network namespace and its slirp4netns.
        crate::network::rootless::remove(&self.paths);
        Ok(r)
    }

    /// `system prune`: stopped containers, unused networks, dangling images
    /// (every unused one with `all`), the build cache with `all`, and with
    /// `volumes` unused anonymous volumes.
    pub fn prune(&self, all: bool, volumes: bool) -> Result<Pruned> {
        let mut p = Pruned::default();
        // What killed `berth test` runs left is removed whatever it is.
        p.test_runs = crate::testrun::sweep_dead(self)?.runs;
        for c in self.containers(true)? {
            if matches!(c.state.as_str(), "running" | "paused" | "restarting") {
                continue;
            }
            let size = crate::volume::disk_usage(&self.paths.container_dir(&c.id).join("upper"));
            if self.remove(&c.id, false).is_ok() {
                p.reclaimed += size;
                p.containers.push(c.id.clone());
            }
        }
        p.networks = self.network_prune()?;
        let (imgs, bytes) = self.image_prune(all)?;
        p.images = imgs;
        p.reclaimed += bytes;
        {
            // Cache entries whose step image is gone are dead; `all` drops them all.
            let db = self.db();
            let _ = db.conn.execute_batch("CREATE TABLE IF NOT EXISTS build_cache(key TEXT PRIMARY KEY, image_id TEXT NOT NULL)");
            let sql = if all { "DELETE FROM build_cache" } else { "DELETE FROM build_cache WHERE image_id NOT IN (SELECT id FROM images)" };
            p.build_cache = db.conn.execute(sql, []).unwrap_or(0);
            if all {
                let _ = std::fs::remove_file(self.paths.build_sums());
            }
        }
        if volumes {
            let (names, bytes) = self.volume_prune(false)?;
            p.volumes = names;
            p.reclaimed += bytes;
        }
        crate::container::spare::clear(&self.paths);
        Ok(p)
    }
}

impl Engine {
    pub(super) fn sample(&self, c: &crate::container::Container) -> crate::sys::stats::Sample {
        let cg = crate::sys::cgroup::Cgroup::load(&c.cgroup(&self.paths));
        let pid = (c.running() && c.pid > 0).then_some(c.pid);
        crate::sys::stats::sample(&cg, pid)
    }

    /// Resource use of the given containers (every running one when empty),
    /// CPU measured over `window`: cgroup counters and the container's own
    /// interfaces, as `docker stats` shows them.
    pub fn stats(&self, keys: &[String], window: std::time::Duration) -> Result<Vec<Stats>> {
        let cs: Vec<crate::container::Container> = if keys.is_empty() {
            self.containers(false)?
        } else {
            keys.iter().map(|k| self.container(k)).collect::<Result<_>>()?
        };
        let first: Vec<_> = cs.iter().map(|c| self.sample(c)).collect();
        std::thread::sleep(window);
        Ok(cs
            .iter()
            .zip(first)
            .map(|(c, a)| {
                let b = self.sample(c);
                Stats {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    cpu_percent: crate::sys::stats::cpu_percent(&a, &b),
                    memory_bytes: b.memory_bytes,
                    memory_limit: b.memory_limit,
                    memory_percent: crate::sys::stats::mem_percent(&b),
                    net_rx: b.net_rx,
                    net_tx: b.net_tx,
                    block_read: b.block_read,
                    block_write: b.block_write,
                    pids: b.pids,
                }
            })
            .collect())
    }
}

/// One run of the leak check: the store's view of this root, read once,
/// and what each checker found that the view does not account for.
struct Check<'a> {
    engine: &'a Engine,
    containers: Vec<Container>,
    networks: Vec<network::Network>,
    endpoints: Vec<network::Endpoint>,
    /// Short ids (12) of the containers and networks the store knows.
    cids: HashSet<String>,
    nids: HashSet<String>,
    found: Vec<(Finding, Fix)>,
    /// Every link's name, as links() saw them.
    link_names: HashSet<String>,
    /// Links the kernel is still closing (reported, marked transient).
    closing: Vec<String>,
}

impl<'a> Check<'a> {
    fn new(engine: &'a Engine) -> Result<Check<'a>> {
        let db = engine.db();
        let containers = crate::container::list(&db)?;
        let networks = network::list(&db)?;
        let mut endpoints = Vec::new();
        for c in &containers {
            endpoints.extend(network::endpoints_of_container(&db, &c.id)?);
        }
        let cids = containers.iter().map(|c| c.id[..12].to_string()).collect();
        let nids = networks.iter().map(|n| n.id[..12].to_string()).collect();
        Ok(Check { engine, containers, networks, endpoints, cids, nids, found: Vec::new(), link_names: HashSet::new(), closing: Vec::new() })
    }

    fn add(&mut self, kind: &'static str, object: String, reason: String, fix: Fix) {
        self.found.push((Finding { kind, object, reason, repair_error: None, repaired: false, transient: false, other_root: false }, fix));
    }

    fn known(&self, id: &str) -> bool {
        self.cids.contains(&id[..12.min(id.len())])
    }

    fn paths(&self) -> &'a crate::store::Paths {
        &self.engine.paths
    }

    /// Links, by the alias berth writes on each.
    fn links(&mut self) -> Result<()> {
        let paths = self.paths();
        let prefix = network::alias_prefix(paths);
        let list = || Netlink::new().and_then(|n| n.links_detailed()).map_err(super::chain("listing links"));
        let mut links = list()?;
        // The kernel frees a removed container's links lazily, after its
        // namespace is gone: give those a moment before calling them left
        // over (links whose namespace is still mounted will not go alone).
        let netns_dir = paths.run.join("netns");
        let cids = &self.cids;
        let going = |l: &crate::sys::netlink::LinkDetail| {
            !l.bridge && l.alias.as_deref().and_then(|a| a.strip_prefix(&prefix)).is_some_and(|o| !o.starts_with("lab:") && !cids.contains(o) && !netns_dir.join(o).exists())
        };
        // (Under load the kernel's namespace clean-up takes seconds; what
        // is still there after two is sorted out below.)
        for _ in 0..20 {
            if !links.iter().any(going) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            links = list()?;
        }
        // Still there: a namespace no process, file or mount holds any more
        // is one only the kernel keeps, while sockets it owns finish closing
        // (a TCP connection with unacknowledged data lingers for many
        // seconds); its links go with it. One something else holds is a leak.
        let held = if links.iter().any(going) { held_netns_ids() } else { HashSet::new() };
        let going: Vec<bool> = links.iter().map(going).collect();
        // A recorded network without its bridge: a create or rm cut short
        // between the two (no container can be on it), or a bridge someone
        // deleted under containers that still need it.
        self.link_names = links.iter().map(|l| l.name.clone()).collect();
        let names: HashSet<&str> = links.iter().map(|l| l.name.as_str()).collect();
        let missing: Vec<(String, String, String, bool)> = self
            .networks
            .iter()
            .filter(|n| !names.contains(n.bridge.as_str()))
            .map(|n| (n.id.clone(), n.name.clone(), n.bridge.clone(), self.endpoints.iter().any(|e| e.network.id == n.id)))
            .collect();
        for (id, name, bridge, used) in missing {
            if used {
                self.add("network", name, format!("its bridge {bridge} is missing"), Fix::RecreateBridge(id));
            } else {
                self.add("network", name, format!("its bridge {bridge} is missing: a create or rm was cut short"), Fix::ForgetNetwork(id));
            }
        }
        let delay_dir = paths.run.join("delay");
        for (l, going) in links.iter().zip(going) {
            let Some(owner) = l.alias.as_deref().and_then(|a| a.strip_prefix(&prefix)) else { continue };
            // A lab's underlay and host links live as long as its hosts.
            if let Some(lab) = owner.strip_prefix("lab:") {
                if crate::cluster::hosts::list(paths, lab).is_empty() {
                    self.add("lab link", l.name.clone(), format!("its lab {lab} is gone"), Fix::DeleteLink(l.name.clone()));
                }
                continue;
            }
            if l.bridge {
                if !self.nids.contains(owner) {
                    self.add("bridge", l.name.clone(), "its network is gone".into(), Fix::DeleteLink(l.name.clone()));
                }
                continue;
            }
            let kind = if l.name.starts_with("vd") { "tap" } else { "veth" };
            if going && l.peer_nsid.is_some_and(|id| !held.contains(&id)) {
                self.closing.push(l.name.clone());
                self.add(kind, l.name.clone(), "its container is gone; the kernel is closing its namespace's last connections, then the link goes by itself".into(), Fix::DeleteLink(l.name.clone()));
                continue;
            }
            if !self.cids.contains(owner) {
                self.add(kind, l.name.clone(), "its container is gone".into(), Fix::DeleteLink(l.name.clone()));
                continue;
            }
            // A veth off its bridge with no delay line in its place is cut off.
            if kind == "veth"
                && l.master.is_none()
                && let Some(ep) = self.endpoints.iter().find(|e| network::veth_name(&e.container_id, e.position) == l.name)
                && !delay_dir.join(format!("{}-{}", &ep.container_id[..12], ep.position)).exists()
            {
                let fix = Fix::Rebridge { link: l.name.clone(), bridge: ep.network.bridge.clone() };
                self.add("veth", l.name.clone(), format!("off its bridge {} with no delay line in its place", ep.network.bridge), fix);
            }
        }
        Ok(())
    }

    /// nftables: the tables must say what the store says, no more, no less.
    fn firewall(&mut self) -> Result<()> {
        let paths = self.paths();
        let table = network::table_name(paths);
        let expected_fw = crate::firewall::rules(&self.engine.db())?;
        let live_fw = nft::list_table("ip", &table);
        match (&expected_fw, &live_fw) {
            (None, Some(_)) => self.add("nftables", format!("table ip {table}"), "no network needs it".into(), Fix::SyncFirewall),
            (Some(_), None) => self.add("nftables", format!("table ip {table}"), "missing: published ports and NAT do not work".into(), Fix::SyncFirewall),
            (Some(want), Some(have)) => {
                let (w, h) = (rule_tokens(want), rule_tokens(have));
                let mut stale: Vec<&String> = h.difference(&w).collect();
                let mut missing: Vec<&String> = w.difference(&h).collect();
                stale.sort();
                missing.sort();
                if !stale.is_empty() || !missing.is_empty() {
                    let mut why = Vec::new();
                    if !stale.is_empty() {
                        why.push(format!("rules for gone objects ({})", stale.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")));
                    }
                    if !missing.is_empty() {
                        why.push(format!("rules missing for {}", missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")));
                    }
                    self.add("nftables", format!("table ip {table}"), why.join("; "), Fix::SyncFirewall);
                }
            }
            (None, None) => {}
        }
        // Accept rules in a host FORWARD chain that would drop our traffic.
        // (Missing ones matter only where the chain drops by policy.)
        if let Some((drops, rules)) = network::foreign_forward_rules(paths) {
            let want: HashSet<String> = network::bridges(&self.engine.db())?.into_iter().collect();
            let have: HashSet<String> = rules.iter().map(|(_, ifname)| ifname.clone()).collect();
            let mut stale: Vec<&String> = have.difference(&want).collect();
            stale.sort();
            if !stale.is_empty() {
                let why = format!("accept rules for gone bridges ({})", stale.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "));
                self.add("nftables", "chain ip filter FORWARD".into(), why, Fix::SyncFirewall);
            } else if drops && want.difference(&have).next().is_some() {
                self.add("nftables", "chain ip filter FORWARD".into(), "it drops by policy and lacks accept rules for berth's bridges".into(), Fix::SyncFirewall);
            }
        }
        let expected_loss = network::loss_table(&self.engine.db())?;
        let live_loss = nft::list_table("netdev", &table);
        let differs = match (&expected_loss, &live_loss) {
            (None, None) => false,
            (Some(w), Some(h)) => rule_tokens(w) != rule_tokens(h),
            _ => true,
        };
        if differs {
            self.add("nftables", format!("table netdev {table}"), "its loss rules differ from the links' settings".into(), Fix::SyncLoss);
        }
        Ok(())
    }

    /// Mounts and directories under the root and the run directory.
    /// `monitored`: a live monitor still removes its --rm container's.
    fn files(&mut self, monitored: &HashSet<String>) {
        let paths = self.paths();
        let ctr_dir = paths.root.join("containers");
        let netns_dir = paths.run.join("netns");
        let owner_of = |p: &Path| -> Option<String> {
            [&ctr_dir, &netns_dir].into_iter().find_map(|d| p.strip_prefix(d).ok()).and_then(|rest| rest.iter().next()).map(|s| s.to_string_lossy().into_owned())
        };
        for m in mount::mount_points() {
            if let Some(id) = owner_of(&m)
                && !self.known(&id)
            {
                self.add("mount", m.display().to_string(), "its container is gone".into(), Fix::Unmount(m.clone()));
            }
        }
        for dir in [&ctr_dir, &netns_dir] {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if !self.known(&id) && !monitored.contains(&id) {
                    let (kind, fix) = if dir == &ctr_dir { ("directory", Fix::RemoveContainerFiles(id)) } else { ("file", Fix::RemoveFile(e.path())) };
                    self.add(kind, e.path().display().to_string(), "its container is gone".into(), fix);
                }
            }
        }
        for e in std::fs::read_dir(paths.run.join("delay")).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !self.known(name.split('-').next().unwrap_or("")) {
                self.add("file", e.path().display().to_string(), "delay line record of a gone container".into(), Fix::RemoveFile(e.path()));
            }
        }
    }

    /// Processes started for this root: monitors and delay lines. Returns
    /// the ids of containers whose monitor runs.
    fn processes(&mut self) -> HashSet<String> {
        let root = self.paths().root.display().to_string();
        let mut monitored: HashSet<String> = HashSet::new();
        let services: HashSet<String> = self.engine.services().unwrap_or_default().into_iter().map(|s| s.id).collect();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            let Some((words, r)) = berth_process(pid) else { continue };
            if r != root || words.len() < 3 || !matches!(words[1].as_str(), "monitor" | "delay-line" | "supervise") {
                continue;
            }
            if words[1] == "supervise" {
                if !services.contains(&words[2]) {
                    self.add("process", format!("{pid} (supervise {})", &words[2][..12.min(words[2].len())]), "its service is gone".into(), Fix::Kill(pid));
                }
            } else if !self.known(&words[2]) {
                // `run` starts a container's monitor while it writes the
                // record and the directory: a young one without either is
                // one of those, not a leftover. An --rm container's monitor
                // removes its cgroup and files after the record: one whose
                // cgroup holds no process is finishing, and what it is
                // removing is its own.
                if words[1] == "monitor" {
                    let starting = !self.paths().container_dir(&words[2]).exists() && proc::age(pid).is_some_and(|a| a < std::time::Duration::from_secs(10));
                    let cg = crate::container::cgroup_of_files(self.paths(), &words[2]);
                    if starting || crate::sys::cgroup::Cgroup::load(&cg).procs().is_empty() {
                        monitored.insert(words[2].clone());
                        continue;
                    }
                }
                self.add("process", format!("{pid} ({} {})", words[1], &words[2][..12.min(words[2].len())]), "its container is gone".into(), Fix::Kill(pid));
            } else if words[1] == "monitor" {
                monitored.insert(words[2].clone());
            }
        }
        monitored
    }

    /// cgroups: a container's lives as long as its monitor. One without
    /// a monitor is a crash's leftover, perhaps with processes still in
    /// it, beyond the reach of stop and kill.
    fn cgroups(&mut self, monitored: &HashSet<String>) {
        let paths = self.paths();
        let parent = paths.cgroup_parent();
        let mut cgroups: Vec<String> = crate::sys::cgroup::children(&parent).into_iter().map(|id| format!("{parent}/{id}")).collect();
        for c in &self.containers {
            let cg = c.cgroup(paths);
            if !cgroups.contains(&cg) && crate::sys::cgroup::Cgroup::load(&cg).exists() {
                cgroups.push(cg);
            }
        }
        for cg in &cgroups {
            let id = cg.rsplit('/').next().unwrap_or("");
            if monitored.contains(id) {
                continue;
            }
            let procs = crate::sys::cgroup::Cgroup::load(cg).procs().len();
            let whose = if self.known(id) { "its container's monitor is gone" } else { "its container is gone" };
            let reason = if procs > 0 { format!("{whose}; {procs} processes still run in it") } else { whose.to_string() };
            self.add("cgroup", cg.clone(), reason, Fix::RemoveCgroup(cg.clone()));
        }
        // The root's own parent, empty, is no leftover: it stays between
        // containers, as docker's does, and goes with `system reset`.
    }

    /// Containers recorded as running whose monitor is gone.
    fn containers(&mut self) {
        let dead: Vec<(String, String, String)> = self
            .containers
            .iter()
            .filter(|c| matches!(c.state.as_str(), "running" | "paused" | "restarting") && !proc::is_alive(c.monitor_pid, None))
            .map(|c| (c.name.clone(), format!("recorded as {} but its monitor (pid {}) is gone", c.state, c.monitor_pid), c.id.clone()))
            .collect();
        for (name, why, id) in dead {
            self.add("container", name, why, Fix::MarkExited(id));
        }
    }

    /// Records whose objects are missing or half made, and objects of
    /// records that should have none: what a create, rm or start that was
    /// cut short leaves.
    fn records(&mut self, monitored: &HashSet<String>) -> Result<()> {
        let paths = self.paths();
        let mut add = Vec::new();
        for c in &self.containers {
            let dir = paths.container_dir(&c.id);
            if !dir.join("config.json").exists() {
                add.push(("container", c.name.clone(), "its files are missing: a create or rm was cut short".to_string(), Fix::ForgetContainer(c.id.clone())));
                continue;
            }
            // A running container's recorded endpoint without its veth: a
            // connect or disconnect cut short between the record and the
            // link. Repair drops the record: the connect never happened,
            // the disconnect is complete.
            if monitored.contains(&c.id) {
                for ep in self.endpoints.iter().filter(|e| e.container_id == c.id) {
                    let veth = network::veth_name(&c.id, ep.position);
                    if !self.link_names.contains(&veth) {
                        let why = format!("its endpoint on {} has no link {veth}: a connect or disconnect was cut short", ep.network.name);
                        add.push(("container", c.name.clone(), why, Fix::Detach { container: c.id.clone(), network: ep.network.id.clone() }));
                    }
                }
            }
            // No monitor, so not running: its namespace (and the veths in
            // it) outlived a start cut short or a killed monitor.
            let ns = network::netns_path(paths, &c.id);
            if !monitored.contains(&c.id) && !proc::is_alive(c.monitor_pid, None) && ns.exists() {
                add.push(("mount", ns.display().to_string(), format!("container {} is not running", c.name), Fix::Teardown(c.id.clone())));
            }
        }
        let vols = crate::volume::list(paths, &self.engine.db()).map_err(super::EngineError::from)?;
        for v in &vols {
            if !crate::volume::data_path(paths, &v.name).is_dir() {
                add.push(("volume", v.name.clone(), "its directory is missing: a create was cut short".to_string(), Fix::MakeVolumeDir(v.name.clone())));
            }
        }
        let names: HashSet<&str> = vols.iter().map(|v| v.name.as_str()).collect();
        for e in std::fs::read_dir(paths.root.join("volumes")).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if !names.contains(n.as_str()) {
                add.push(("directory", e.path().display().to_string(), "its volume is gone: an rm was cut short".to_string(), Fix::RemoveDir(e.path())));
            }
        }
        for (kind, object, reason, fix) in add {
            self.add(kind, object, reason, fix);
        }
        Ok(())
    }

    /// Layers and blobs no image reaches: a pull, load or build cut short.
    /// While another berth command runs on this root they may be its work
    /// in progress, so they are not looked at then.
    fn image_data(&mut self) -> Result<()> {
        let paths = self.paths();
        if !other_clients(&paths.root.display().to_string()).is_empty() {
            return Ok(());
        }
        let u = crate::image::unreached(paths, &self.engine.db())?;
        for l in u.layers {
            self.add("layer", l, "no image uses it: a pull, load or build was cut short".into(), Fix::DropUnreached);
        }
        for d in u.layer_dirs {
            self.add("directory", d.display().to_string(), "a layer no image uses".into(), Fix::DropUnreached);
        }
        for b in u.blobs {
            self.add("file", b.display().to_string(), "a blob no image uses".into(), Fix::DropUnreached);
        }
        Ok(())
    }

    /// What roots that no longer exist left: links by their owner alias,
    /// nftables tables and cgroups by the root's tag, and processes by
    /// their BERTH_ROOT. A root is gone when its register entry or its
    /// store is, and no process still runs for it.
    fn other_roots(&mut self) {
        let own = self.paths().tag().unwrap_or_else(|| "default".into());
        let mut live_roots: HashSet<String> = HashSet::new();
        let mut procs: Vec<(i32, String)> = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            if let Some((words, root)) = berth_process(pid) {
                let tag = crate::store::Paths { root: root.clone().into(), run: Default::default() }.tag().unwrap_or_else(|| "default".into());
                if std::path::Path::new(&root).join("state.db").exists() {
                    live_roots.insert(tag);
                } else if matches!(words.get(1).map(String::as_str), Some("monitor" | "delay-line" | "supervise" | "agent")) {
                    procs.push((pid, format!("{pid} ({}, root {root})", words[1])));
                }
            }
        }
        let gone = |t: &str| t != own && t != "default" && !live_roots.contains(t) && !crate::store::root_of_tag_exists(t);
        let mut add = Vec::new();
        let why = |t: &str| format!("its root (tag {t}) no longer exists");
        let links = Netlink::new().and_then(|n| n.links_detailed()).unwrap_or_default();
        let tag_of = |l: &crate::sys::netlink::LinkDetail| l.alias.as_deref().and_then(|a| a.strip_prefix("berth:")).map(|r| r.split(':').next().unwrap_or("").to_string());
        // A veth whose namespace nothing but the kernel holds any more is
        // on its way out (a gone root's last connections closing), as for
        // this root's own links: not a leftover.
        let held = if links.iter().any(|l| !l.bridge && tag_of(l).is_some_and(|t| gone(&t))) { held_netns_ids() } else { HashSet::new() };
        for l in &links {
            let Some(tag) = tag_of(l) else { continue };
            let tag = tag.as_str();
            if !l.bridge && l.peer_nsid.is_some_and(|id| !held.contains(&id)) {
                continue;
            }
            if gone(tag) {
                let kind = if l.bridge { "bridge" } else if l.name.starts_with("vd") { "tap" } else { "veth" };
                add.push((kind, l.name.clone(), why(tag), Fix::DeleteLink(l.name.clone())));
            }
        }
        for (family, name) in nft::tables() {
            if let Some(tag) = name.strip_prefix("berth_")
                && gone(tag)
            {
                add.push(("nftables", format!("table {family} {name}"), why(tag), Fix::DeleteTable { family, name: name.clone() }));
            }
        }
        for cg in crate::sys::cgroup::children("") {
            if let Some(tag) = cg.strip_prefix("berth-")
                && gone(tag)
            {
                add.push(("cgroup", cg.clone(), why(tag), Fix::RemoveCgroupTree(cg.clone())));
            }
        }
        for (pid, what) in procs {
            add.push(("process", what, "its root no longer exists".into(), Fix::Kill(pid)));
        }
        for (kind, object, reason, fix) in add {
            self.add(kind, object, reason, fix);
            if let Some((f, _)) = self.found.last_mut() {
                f.other_root = true;
            }
        }
    }

    /// Services whose create, scale or update was cut short: a create not
    /// marked complete, a slot without its replica, an update's `.next`
    /// replica, a replica of another image than the record's. Skipped while
    /// another berth command runs on this root (it may be doing just that).
    fn services(&mut self) -> Result<()> {
        if !other_clients(&self.paths().root.display().to_string()).is_empty() {
            return Ok(());
        }
        let cut = crate::service::stack::deploying(&self.engine.db())?;
        for st in &cut {
            self.add("stack", st.clone(), "its deploy was cut short".into(), Fix::RemoveStack(st.clone()));
        }
        for s in self.engine.services()? {
            // A stack being rolled back takes its services along.
            if s.spec.labels.get(crate::service::stack::STACK_LABEL).is_some_and(|st| cut.contains(st)) {
                continue;
            }
            if s.spec.creating {
                self.add("service", s.name.clone(), "its create was cut short".into(), Fix::RemoveService(s.id.clone()));
                continue;
            }
            let reps = crate::service::replicas(&self.engine.db(), &s.name)?;
            let mut why = Vec::new();
            let missing: Vec<String> = (1..=s.spec.replicas).filter(|k| !reps.iter().any(|(slot, c)| slot == k && !c.name.ends_with(".next"))).map(|k| k.to_string()).collect();
            if !missing.is_empty() {
                why.push(format!("slot(s) {} have no replica", missing.join(", ")));
            }
            let next: Vec<&str> = reps.iter().filter(|(_, c)| c.name.ends_with(".next")).map(|(_, c)| c.name.as_str()).collect();
            if !next.is_empty() {
                why.push(format!("{} left by an update", next.join(", ")));
            }
            let stale = reps.iter().filter(|(_, c)| !c.name.ends_with(".next") && c.image_ref != s.spec.template.image).count();
            if stale > 0 {
                why.push(format!("{stale} replica(s) of another image than {}", s.spec.template.image));
            }
            if !why.is_empty() {
                self.add("service", s.name.clone(), format!("{}: a scale or update was cut short", why.join("; ")), Fix::ReconcileService(s.id.clone()));
            } else if !self.engine.supervised(&s.id) {
                self.add("service", s.name.clone(), "no supervisor keeps its replicas (it was killed)".into(), Fix::Supervise(s.id.clone()));
            }
        }
        Ok(())
    }
}
