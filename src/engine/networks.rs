//! The door's network methods: create, connect, impair, remove, and the
//! firewall and hosts files they keep in step.


use super::{chain, named, Engine, EngineError, Result};
use crate::container::{self, Container};
use crate::network;

impl Engine {
    /// Wires a container's endpoints (namespace, veths, addresses) before
    /// it starts, and refreshes the hosts files of everyone it meets.
    pub(super) fn plug_networks(&self, c: &Container) -> Result<()> {
        let eps = {
            let db = self.db();
            network::endpoints_of_container(&db, &c.id)?
        };
        if eps.is_empty() {
            return Ok(());
        }
        network::setup(&self.paths, &c.id, &eps).map_err(chain(format!("setting up the network of {}", c.name)))?;
        crate::fault!("start.network");
        self.apply_impairments(c, false)?;
        // Only published ports depend on containers; the networks' own
        // rules were written when they were made.

        if !network::ports_of(&self.db(), &c.id)?.is_empty() {
            crate::fault!("start.ports");
            self.sync_firewall()?;
        }
        for ep in &eps {
            self.refresh_hosts(&ep.network)?;
        }
        Ok(())
    }

    /// The default network exists for users as it does in docker, though
    /// berth makes it on first use: through the door, which also writes its
    /// firewall rules (egress NAT, isolation). A racing maker is no error.
    pub(super) fn ensure_default_network(&self) -> Result<()> {
        if network::get(&self.db(), network::DEFAULT).is_ok() {
            return Ok(());
        }
        match self.network_create(&network::NetworkSpec { name: network::DEFAULT.into(), ..Default::default() }) {
            Ok(_) | Err(EngineError::Network(network::NetworkError::Exists(_))) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Rewrites this root's nftables table from the store, running `nft`
    /// after the database is released.
    pub(crate) fn sync_firewall(&self) -> Result<()> {
        Ok(crate::firewall::sync_with(&self.paths, || crate::firewall::read(&self.db()))?)
    }

    /// Rewrites /etc/hosts of every container on `net` (in place: the file
    /// is bind-mounted, so its inode must stay).
    pub(crate) fn refresh_hosts(&self, net: &network::Network) -> Result<()> {
        let members: Vec<String> = network::endpoints_of_network(&self.db(), net)?.into_iter().map(|(c, _, _)| c).collect();
        self.write_hosts(&members)
    }

    pub(super) fn write_hosts(&self, targets: &[String]) -> Result<()> {
        let files = {
            let db = self.db();
            let all = container::list(&db)?;
            // `--add-host` lines, kept through every rewrite.
            let extra: std::collections::HashMap<String, String> = all
                .iter()
                .filter(|c| !c.spec.extra_hosts.is_empty())
                .map(|c| {
                    // host-gateway: the gateway of its first network.
                    let gateway = network::endpoints_of_container(&db, &c.id).ok().and_then(|e| e.into_iter().min_by_key(|e| e.position)).and_then(|e| e.network.gateway.parse().ok());
                    (c.id.clone(), container::options::hosts_lines(&c.spec.extra_hosts, gateway))
                })
                .collect();
            let names: std::collections::HashMap<String, (String, String)> = all
                .into_iter()
                .map(|c| {
                    let hostname = std::fs::read_to_string(self.paths.container_dir(&c.id).join("hostname")).unwrap_or_default().trim().to_string();
                    (c.id, (c.name, hostname))
                })
                .chain(crate::service::list(&db).unwrap_or_default().into_iter().map(|s| (s.owner(), (s.name, String::new()))))
                .collect();
            let mut files = network::hosts_files(&db, targets, &names)?;
            for (cid, text) in &mut files {
                if let Some(x) = extra.get(cid) {
                    text.push_str(x);
                }
            }
            files
        };
        for (cid, text) in files {
            // In place: a truncate per peer per change was half the time of
            // removing 50 containers one by one from a script.
            let _ = crate::sys::write_in_place(&self.paths.container_dir(&cid).join("hosts"), text, false);
        }
        Ok(())
    }


    pub fn network_create(&self, spec: &network::NetworkSpec) -> Result<network::Network> {
        let n = network::create(&self.paths, &mut self.db(), spec)?;
        self.sync_firewall()?;
        self.event("network", "create", &n.id, &[("name", &n.name), ("type", "bridge")]);
        Ok(n)
    }

    /// Everything `network graph` draws.
    pub fn topology(&self) -> Result<network::Topology> {
        let networks = self.networks()?;
        let mut containers = Vec::new();
        for c in self.containers(true)? {
            let db = self.db();
            let eps = network::endpoints_of_container(&db, &c.id)?;
            if eps.is_empty() {
                continue;
            }
            let ports = network::ports_of(&db, &c.id)?.into_iter().map(|p| format!("{}:{}->{}/{}", p.host_ip, p.host_port, p.container_port, p.proto)).collect();
            containers.push((c.name.clone(), c.state.clone(), eps.into_iter().map(|e| (e.network.name, e.ip.to_string())).collect(), ports));
        }
        Ok(network::Topology { networks, containers })
    }

    /// Published ports of a container.
    pub fn ports(&self, key: &str) -> Result<Vec<network::Published>> {
        self.ports_of(&self.container(key)?)
    }

    /// `ports` of a container already looked up: a list of many need not
    /// look each up again.
    pub fn ports_of(&self, c: &Container) -> Result<Vec<network::Published>> {
        Ok(network::ports_of(&self.db(), &c.id)?)
    }

    pub fn networks(&self) -> Result<Vec<network::Network>> {
        Ok(network::list(&self.db())?)
    }

    /// A network of this root; in a swarm, an overlay not yet used here is
    /// found in etcd and made here.
    pub fn network(&self, key: &str) -> Result<network::Network> {
        // Bound first: a match would hold the store's guard through its
        // arms, and making the overlay takes it again.
        let found = network::get(&self.db(), key);
        match found {
            Err(network::NetworkError::NotFound(k)) if self.swarm().is_some() => {
                let (m, etcd) = self.swarm_etcd()?;
                match self.cluster_overlay(&etcd, key)? {
                    Some(o) => self.overlay_here(&etcd, &m, &o),
                    None => Err(network::NetworkError::NotFound(k).into()),
                }
            }
            r => Ok(r?),
        }
    }

    /// Containers on a network: (container id, name, address).
    pub fn network_members(&self, key: &str) -> Result<Vec<(String, String, std::net::Ipv4Addr)>> {
        let db = self.db();
        let net = network::get(&db, key)?;
        Ok(network::endpoints_of_network(&db, &net)?
            .into_iter()
            .filter(|(id, _, _)| !id.starts_with("svc:"))
            .map(|(id, ip, _)| (id.clone(), container::get(&db, &id).map(|c| c.name).unwrap_or_default(), ip))
            .collect())
    }

    pub fn network_remove(&self, key: &str) -> Result<network::Network> {
        // As docker: the default network stays; `system reset` takes it.
        let n = self.network(key)?;
        if n.name == network::DEFAULT {
            return Err(network::NetworkError::Predefined(n.name).into());
        }
        if n.is_overlay() {
            self.overlay_rm(&n)?;
            self.event("network", "destroy", &n.id, &[("name", &n.name), ("type", "overlay")]);
            return Ok(n);
        }
        self.network_remove_any(&n.id)
    }

    pub(crate) fn network_remove_any(&self, key: &str) -> Result<network::Network> {
        let mut db = self.db();
        let names: Vec<(String, String)> = container::list(&db)?
            .into_iter()
            .map(|c| (c.id, c.name))
            .chain(crate::service::list(&db).unwrap_or_default().into_iter().map(|s| (s.owner(), format!("service {}", s.name))))
            .collect();
        let n = network::remove(&mut db, key, |id| names.iter().find(|(i, _)| i == id).map(|(_, n)| n.clone()).unwrap_or_else(|| id[..12].to_string()))?;
        drop(db);
        self.sync_firewall()?;
        self.event("network", "destroy", &n.id, &[("name", &n.name), ("type", "bridge")]);
        Ok(n)
    }

    /// `network prune`: removes every network no container uses, except the
    /// default one, as docker. Returns their names.
    pub fn network_prune(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for n in self.networks()?.into_iter().filter(|n| n.name != network::DEFAULT) {
            let unused = network::endpoints_of_network(&self.db(), &n)?.is_empty();
            if unused && self.network_remove(&n.id).is_ok() {
                out.push(n.name);
            }
        }
        Ok(out)
    }

    pub fn endpoints(&self, key: &str) -> Result<Vec<network::Endpoint>> {
        self.endpoints_of(&self.container(key)?)
    }

    pub fn endpoints_of(&self, c: &Container) -> Result<Vec<network::Endpoint>> {
        Ok(network::endpoints_of_container(&self.db(), &c.id)?)
    }

    /// `network connect`: recorded now, wired at once when it runs.
    pub fn network_connect(&self, net: &str, key: &str, ip: Option<&str>, aliases: &[String]) -> Result<()> {
        let c = self.container(key)?;
        if net == network::DEFAULT {
            self.ensure_default_network()?;
        }
        let overlay = self.overlay_reserve(net, ip, Some(&c.name), c.spec.labels.contains_key(super::swarm::TASK_LABEL))?;
        let ip_s = overlay.as_ref().map(|(_, a)| a.to_string());
        let ep = {
            let mut db = self.db();
            let n = match &overlay {
                Some((n, _)) => n.clone(),
                None => network::get(&db, net)?,
            };
            match network::attach(&mut db, &c.id, &n, ip_s.as_deref().or(ip), aliases) {
                Ok(ep) => ep,
                Err(e) => {
                    drop(db);
                    if let Some((n, a)) = &overlay {
                        self.overlay_release(n, None, *a);
                    }
                    return Err(e.into());
                }
            }
        };
        if ep.network.is_overlay() {
            self.overlay_announce(&ep.network, &c.name, ep.ip, aliases)?;
        }
        crate::fault!("network.connect");
        if c.running() {
            let r = network::setup(&self.paths, &c.id, std::slice::from_ref(&ep));
            if let Err(e) = r {
                let _ = network::detach(&mut self.db(), &c.id, &ep.network);
                return Err(EngineError::Other(format!("connecting {} to {net}: {e}", c.name)));
            }
        }
        self.refresh_hosts(&ep.network)?;
        self.event("network", "connect", &ep.network.id, &[("name", &ep.network.name), ("container", &c.id)]);
        Ok(())
    }

    /// Link emulation on the container's link to `net`; `None` (or an
    /// empty impairment) removes it. Takes effect at once when the
    /// container's network is up, else when it starts.
    pub fn network_impair(&self, net: &str, key: &str, imp: Option<&network::impair::Impairment>) -> Result<()> {
        let c = self.container(key)?;
        if let Some(i) = imp {
            i.validate().map_err(|e| EngineError::Other(format!("impairing {} on {net}: {e}", c.name)))?;
        }
        {
            let mut db = self.db();
            let n = network::get(&db, net)?;
            network::set_impair(&mut db, &c.id, &n, imp).map_err(|e| named(e, &c.name))?;
        }
        self.apply_impairments(&c, true)
    }

    /// The impairments of each of the container's links, as recorded.
    pub fn impairments(&self, key: &str) -> Result<Vec<(String, network::impair::Impairment)>> {
        let c = self.container(key)?;
        Ok(network::impair_links(&self.db(), &c.id)?.into_iter().map(|l| (l.network, l.impairment)).collect())
    }

    /// Brings the container's links to their recorded impairments, if its
    /// namespace exists. `always` also applies when nothing is impaired (to
    /// undo a previous setting).
    pub(super) fn apply_impairments(&self, c: &Container, always: bool) -> Result<()> {
        let links = network::impair_links(&self.db(), &c.id)?;
        if !always && links.iter().all(|l| l.impairment.is_none()) {
            return Ok(());
        }
        let ns = network::netns_path(&self.paths, &c.id);
        if !ns.exists() {
            return Ok(());
        }
        network::impair::apply(&self.paths, &c.id, &ns, &links).map_err(chain(format!("link emulation on {}", c.name)))?;
        Ok(network::sync_loss(&self.paths, &self.db())?)
    }

    pub fn network_disconnect(&self, net: &str, key: &str) -> Result<()> {
        let c = self.container(key)?;
        let eps = self.endpoints(&c.id)?;
        let n = self.network(net)?;
        let ep = eps.into_iter().find(|e| e.network.id == n.id).ok_or_else(|| network::NetworkError::NotConnected(c.name.clone(), n.name.clone()))?;
        let _ = network::unplug(&self.paths, &c.id, &ep);
        crate::fault!("network.disconnect");
        let was_impaired = network::impair_links(&self.db(), &c.id)?.iter().any(|l| l.position == ep.position && !l.impairment.is_none());
        network::detach(&mut self.db(), &c.id, &n).map_err(|e| named(e, &c.name))?;
        if was_impaired {
            // Its loss rule named an interface that is gone (and whose
            // name a later connect may reuse).
            self.apply_impairments(&c, true)?;
        }
        if n.is_overlay() {
            self.overlay_release(&n, Some(&c.name), ep.ip);
        }
        self.refresh_hosts(&n)?;
        self.event("network", "disconnect", &n.id, &[("name", &n.name), ("container", &c.id)]);
        // Its own file no longer lists the peers of that network.
        self.write_hosts(std::slice::from_ref(&c.id))
    }
}
