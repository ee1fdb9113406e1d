//! The door's container methods: create, start and follow, stop, kill,
//! pause, remove, logs, exec, top and cp.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{other, Attach, Engine, EngineError, LogLine, Output, Result};
use crate::container::{self, Container, ContainerError, RunSpec};
use crate::network;
use crate::runtime::{self, attach};
use crate::store::{self, Db};
use crate::sys::{cgroup::Cgroup, proc, pty};

impl Engine {

    pub fn create(&self, spec: &RunSpec) -> Result<Container> {
        self.create_as(spec, None)
    }

    /// `create`, under the id `id` when given.
    fn create_as(&self, spec: &RunSpec, id: Option<&str>) -> Result<Container> {
        if spec.network.as_deref().is_none_or(|n| n == network::DEFAULT) {
            self.ensure_default_network()?;
        }
        // Rootless without cgroups: limits cannot hold; said once, as podman does.
        if crate::rootless::active() && (spec.memory.is_some() || spec.cpus.is_some() || spec.pids_limit.is_some()) && !crate::sys::cgroup::writable() {
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                let why = crate::sys::cgroup::rootless_without().unwrap_or_default();
                eprintln!("warning: resource limits (--memory, --cpus, --pids-limit) are ignored: a rootless berth cannot make cgroups here: {why}");
            }
        }
        // An overlay's address comes from the swarm, before the row.
        let overlay = match spec.network.as_deref() {
            Some(n) if !matches!(n, "none" | "host" | network::DEFAULT) => {
                let task = spec.labels.contains_key(super::swarm::TASK_LABEL);
                self.overlay_reserve(n, spec.ip.as_deref(), spec.name.as_deref(), task)?
            }
            _ => None,
        };
        let with_ip;
        let spec = match &overlay {
            Some((_, ip)) => {
                with_ip = RunSpec { ip: Some(ip.to_string()), ..spec.clone() };
                &with_ip
            }
            None => spec,
        };
        // Bound first: a match would hold the store's guard through its arms.
        let made = container::create(&self.paths, &mut self.db(), spec, id);
        let c = match made {
            Ok(c) => c,
            Err(e) => {
                if let Some((n, ip)) = &overlay {
                    self.overlay_release(n, None, *ip);
                }
                return Err(e.into());
            }
        };
        if let Some((n, ip)) = &overlay
            && let Err(e) = self.overlay_announce(n, &c.name, *ip, &spec.aliases)
        {
            let _ = self.remove_with(&c.id, true, true);
            return Err(e);
        }
        self.container_event(&c, "create", &[]);
        Ok(c)
    }

    /// Finds a container and brings its recorded state up to date: a
    /// container whose monitor died is no longer running.
    pub fn container(&self, key: &str) -> Result<Container> {
        let mut db = self.db();
        let c = container::get(&db, key)?;
        Ok(self.refresh(&mut db, c))
    }

    pub(super) fn refresh(&self, db: &mut Db, c: Container) -> Container {
        if matches!(c.state.as_str(), "running" | "paused" | "restarting") && !proc::is_alive(c.monitor_pid, None) {
            let _ = container::record_exited(db, &c.id, if c.exit_code != 0 { c.exit_code } else { 255 }, false, "monitor process died");
            return container::get(db, &c.id).unwrap_or(c);
        }
        c
    }

    pub fn containers(&self, all: bool) -> Result<Vec<Container>> {
        let mut db = self.db();
        let list = container::list(&db)?;
        Ok(list.into_iter().map(|c| self.refresh(&mut db, c)).filter(|c| all || c.running() || c.state == "restarting").collect())
    }

    pub fn run(&self, spec: &RunSpec, attach: Attach) -> Result<(Container, Output)> {
        tracing::debug!("run: begin");
        // The monitor starts (exec, daemonise) on the other core while the
        // container is created; it waits for its first frame, and a create
        // that fails closes the socket, which sends it away.
        let id = store::new_id();
        let mut early = self.spawn_monitor(&id, true).inspect_err(|e| tracing::debug!("run: starting the monitor early: {e}")).ok();
        let c = self.create_as(spec, Some(&id)).inspect_err(|_| {
            if let Some(m) = early.take() {
                m.dismiss()
            }
        })?;
        tracing::debug!(id = %c.short_id(), "run: created");
        let rm_and_waited = spec.rm && attach != Attach::Detached;
        let out = self.start_record(&c, attach, early)?;
        // An --rm container followed to its exit is gone by now.
        let c = if rm_and_waited { c } else { self.container(&c.id).unwrap_or(c) };
        Ok((c, out))
    }

    pub fn start(&self, key: &str) -> Result<Container> {
        let c = self.container(key)?;
        if c.running() {
            return Ok(c);
        }
        self.start_attached(&c.id, Attach::Detached)?;
        self.now_or_gone(c)
    }

    /// `c` as it is now, or as it was when it is gone already: an --rm
    /// container can exit and be removed before its starter looks again.
    fn now_or_gone(&self, c: Container) -> Result<Container> {
        match self.container(&c.id) {
            Err(e) if e.is_not_found() => Ok(c),
            r => r,
        }
    }

    /// Spawns the monitor and follows the container as `attach` says.
    pub fn start_attached(&self, key: &str, attach: Attach) -> Result<Output> {
        self.start_with(key, attach, None)
    }

    /// Starts a monitor for container `id`, which takes its first frame as
    /// the order to start. `pending`: the container is still being made;
    /// the monitor opens its monitor.log itself once that frame comes.
    fn spawn_monitor(&self, id: &str, pending: bool) -> Result<Spawned> {
        let (ours, theirs) = UnixStream::pair().map_err(other("socketpair"))?;
        let (exe, _sealed) = runtime::sealed_helper().map_err(other("sealing berth's monitor binary"))?;
        let mut cmd = std::process::Command::new(exe);
        // Named for ps and top, not /proc/self/fd/N.
        std::os::unix::process::CommandExt::arg0(&mut cmd, crate::sys::exe::HELPER);
        cmd.arg("monitor").arg(id).env("BERTH_ROOT", &self.paths.root).env("BERTH_RUN", &self.paths.run);
        // The socket goes in as the monitor's stdin, which posix_spawn dups
        // there in the child alone. An inheritable copy in this process (how
        // it went before) leaked into the monitors other threads spawned
        // meanwhile (`run_all`, `service scale`, the API server), and each
        // kept it for its life. No pre-exec hook either, so std can use
        // posix_spawn (vfork), which is measurably faster than fork for our
        // big binary.
        cmd.stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(theirs))).stdout(std::process::Stdio::null());
        cmd.env(runtime::monitor::MONITOR_FD, "0");
        let stays = self.short_lived.load(std::sync::atomic::Ordering::Relaxed);
        if stays {
            cmd.env(runtime::monitor::STAY_CHILD, "1");
        }
        if pending {
            cmd.stderr(std::process::Stdio::null()).env(runtime::monitor::PENDING, "1");
        } else {
            let mlog = self.paths.container_dir(id).join("monitor.log");
            match std::fs::OpenOptions::new().create(true).append(true).open(&mlog) {
                Ok(f) => cmd.stderr(f),
                Err(_) => cmd.stderr(std::process::Stdio::null()),
            };
        }
        let spawned = cmd.spawn();
        // (cmd holds the monitor's end until it is dropped)
        drop(cmd);
        Ok(Spawned { sock: ours, child: spawned.map_err(other("starting the monitor"))?, stays })
    }

    /// `start_attached` with a monitor `run` may have started already.
    fn start_with(&self, key: &str, attach: Attach, early: Option<Spawned>) -> Result<Output> {
        let c = self.container(key)?;
        self.start_record(&c, attach, early)
    }

    /// `start_with` of a container as just read (or just created).
    fn start_record(&self, c: &Container, attach: Attach, early: Option<Spawned>) -> Result<Output> {
        let early = early.map(Spawned::into_socket);
        if c.running() {
            return Err(ContainerError::BadState { name: c.name.clone(), state: c.state.clone(), what: "it is already running".into() }.into());
        }
        self.plug_networks(c)?;
        let mut ours = match early {
            Some(s) => s,
            None => self.spawn_monitor(&c.id, false)?.into_socket(),
        };
        // The first frame tells the monitor the terminal size, before the
        // container's pty exists.
        let size = if let Attach::Stdio { tty: true, .. } = attach { pty::get_size(0) } else { None };
        let (rows, cols) = size.unwrap_or((24, 80));
        let mut p = rows.to_be_bytes().to_vec();
        p.extend(cols.to_be_bytes());
        attach::write_frame(&mut ours, attach::RESIZE, &p).map_err(other("attach"))?;
        tracing::debug!("start: monitor spawned");
        let r = self.follow(&mut ours, attach);
        tracing::debug!("start: done");
        if attach == Attach::Detached {
            self.hand_over_start(&c.id, r.is_ok().then_some(ours));
        }
        r
    }

    pub(super) fn follow(&self, sock: &mut UnixStream, attach: Attach) -> Result<Output> {
        let mut out = Output::default();
        // Until STARTED or ERROR arrives the start may still fail.
        loop {
            match attach::read_frame(sock).map_err(other("attach"))? {
                None => return Err(EngineError::Start { code: runtime::EXIT_ENGINE, msg: "the container's monitor exited before starting it (see monitor.log in its directory)".into() }),
                Some((attach::STARTED, _)) => {
                    tracing::debug!("start: started");
                    break;
                }
                Some((attach::ERROR, p)) => {
                    let (code, msg) = attach::parse_error(&p);
                    return Err(EngineError::Start { code, msg });
                }
                Some(_) => {}
            }
        }
        match attach {
            Attach::Detached => Ok(out),
            Attach::Capture => {
                hello(sock, attach::WANT_OUTPUT)?;
                while let Some((k, p)) = attach::read_frame(sock).map_err(other("attach"))? {
                    match k {
                        attach::STDOUT => out.stdout.extend(p),
                        attach::STDERR => out.stderr.extend(p),
                        attach::EXIT => {
                            out.code = attach::payload_i32(&p);
                            wait_monitor_gone(sock);
                            return Ok(out);
                        }
                        attach::ERROR => {
                            let (code, msg) = attach::parse_error(&p);
                            return Err(EngineError::Start { code, msg });
                        }
                        _ => {}
                    }
                }
                Ok(out)
            }
            Attach::Stdio { stdin, tty } => {
                hello(sock, attach::WANT_OUTPUT | if stdin { attach::SENDS_STDIN } else { 0 })?;
                match relay_attached(sock, stdin, tty)? {
                    Some(code) => {
                        out.code = code;
                        wait_monitor_gone(sock);
                    }
                    // Detached (Ctrl-P Ctrl-Q): the container goes on.
                    None => out.code = 0,
                }
                Ok(out)
            }
        }
    }

    /// `berth update`: limits and restart policy of a container, applied
    /// at once when it runs and kept for its next start.
    pub fn update(&self, key: &str, u: &container::Update) -> Result<Container> {
        let c = self.container(key)?;
        let c = container::update(&self.paths, &mut self.db(), &c, u)?;
        if c.running() {
            let (cpu_quota, cpu_period) = match u.cpus {
                Some(x) => (Some((x * 100_000.0).round() as i64), Some(100_000)),
                None => (None, None),
            };
            let l = crate::sys::cgroup::Limits { memory: u.memory, cpu_quota, cpu_period, pids: u.pids_limit, devices: vec![] };
            Cgroup::load(&c.cgroup(&self.paths)).set_limits(&l).map_err(other(&format!("container {}: writing its cgroup limits", c.name)))?;
        }
        Ok(c)
    }

    /// `berth attach`: this process's stdio to a running container's, until
    /// it exits (its code) or the user detaches (None).
    pub fn attach(&self, key: &str, stdin: bool) -> Result<Option<i32>> {
        let c = self.container(key)?;
        if !c.running() {
            return Err(ContainerError::BadState { name: c.name, state: c.state, what: "you cannot attach to a container that is not running; start it first".into() }.into());
        }
        let mut sock = UnixStream::connect(self.paths.attach_socket(&c.id)).map_err(other(&format!("container {}: connecting to its monitor", c.name)))?;
        attach::write_frame(&mut sock, attach::HELLO, &[attach::WANT_OUTPUT | if stdin { attach::SENDS_STDIN } else { 0 }]).map_err(other("attach"))?;
        let r = relay_attached(&mut sock, stdin, c.spec.tty)?;
        if r.is_some() {
            wait_monitor_gone(&mut sock);
        }
        Ok(r)
    }

    /// `container prune`: stopped containers that match every filter
    /// (label=K[=V], label!=K[=V], until=TIME); their ids and the bytes
    /// freed.
    pub fn container_prune(&self, filters: &[(String, String)]) -> Result<(Vec<String>, u64)> {
        let mut out = (Vec::new(), 0);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        for c in self.containers(true)? {
            if c.running() || c.state == "paused" || c.state == "restarting" {
                continue;
            }
            let has = |v: &str| match v.split_once('=') {
                Some((lk, lv)) => c.spec.labels.get(lk).map(String::as_str) == Some(lv),
                None => c.spec.labels.contains_key(v),
            };
            let keep = filters.iter().any(|(k, v)| match k.as_str() {
                "label" => !has(v),
                "label!" => has(v),
                "until" => {
                    let limit = crate::parse::duration(v, None).map(|d| now - d.as_secs_f64()).ok().or_else(|| store::parse_rfc3339(v)).or_else(|| v.parse::<f64>().ok()).unwrap_or(f64::MAX);
                    store::parse_rfc3339(&c.created).is_none_or(|t| t >= limit)
                }
                _ => true,
            });
            if keep {
                continue;
            }
            let size = crate::volume::disk_usage(&self.paths.container_dir(&c.id).join("upper"));
            if self.remove(&c.id, false).is_ok() {
                out.0.push(c.id.clone());
                out.1 += size;
            }
        }
        Ok(out)
    }

    /// docker's inspect JSON of a container.
    pub fn container_inspect(&self, c: &Container) -> serde_json::Value {
        container::inspect_json(&self.paths, &self.db(), c)
    }

    pub(super) fn connect(&self, c: &Container) -> Option<UnixStream> {
        UnixStream::connect(self.paths.attach_socket(&c.id)).ok()
    }

    /// Sends a control frame and waits until the monitor closes the
    /// connection (it has exited) or `timeout` passes.
    pub(super) fn control_and_wait(&self, c: &Container, kind: u8, arg: i32, timeout: Option<Duration>) -> Result<()> {
        self.control_with(c, kind, &attach::i32_payload(arg), timeout)
    }

    fn control_with(&self, c: &Container, kind: u8, payload: &[u8], timeout: Option<Duration>) -> Result<()> {
        let Some(mut s) = self.connect(c) else { return Ok(()) };
        attach::write_frame(&mut s, attach::HELLO, &[0]).map_err(other("attach"))?;
        attach::write_frame(&mut s, kind, payload).map_err(other("attach"))?;
        wait_closed(&mut s, timeout);
        Ok(())
    }

    pub fn stop(&self, key: &str, timeout: Option<u64>) -> Result<Container> {
        self.stop_keeping(key, timeout, false)
    }

    /// `stop`; `keep`: a `--rm` container stays, exited, for a restart.
    fn stop_keeping(&self, key: &str, timeout: Option<u64>, keep: bool) -> Result<Container> {
        let c = self.container(key)?;
        let t = timeout.or(c.spec.stop_timeout).unwrap_or(10);
        if c.running() || c.state == "restarting" {
            let mut p = attach::i32_payload(t as i32).to_vec();
            if keep {
                p.push(attach::STOP_KEEP);
            }
            self.control_with(&c, attach::STOP, &p, None)?;
            self.container_event(&c, "stop", &[]);
        }
        // A `--rm` container is gone once stopped: stopped all the same.
        self.now_or_gone(c)
    }

    pub fn kill(&self, key: &str, signal: &str) -> Result<Container> {
        let c = self.container(key)?;
        let sig = proc::signal_number(signal).ok_or_else(|| EngineError::Other(format!("invalid signal: {signal}")))?;
        if !c.running() {
            return Err(ContainerError::BadState { name: c.name, state: c.state, what: "cannot kill a container that is not running".into() }.into());
        }
        let wait = if sig == libc::SIGKILL { Some(Duration::from_secs(10)) } else { Some(Duration::from_millis(1)) };
        self.control_and_wait(&c, attach::KILL, sig, wait)?;
        self.container_event(&c, "kill", &[("signal", sig.to_string())]);
        self.now_or_gone(c)
    }

    /// Stops and starts again. A `--rm` container is kept through its
    /// restart, as docker keeps it, and goes at its next exit.
    pub fn restart(&self, key: &str, timeout: Option<u64>) -> Result<Container> {
        let c = self.stop_keeping(key, timeout, true)?;
        let c = self.start(&c.id)?;
        self.container_event(&c, "restart", &[]);
        Ok(c)
    }

    pub fn pause(&self, key: &str) -> Result<Container> {
        let c = self.container(key)?;
        if c.state != "running" {
            return Err(ContainerError::BadState { name: c.name, state: c.state, what: "only a running container can be paused".into() }.into());
        }
        Cgroup::load(&c.cgroup(&self.paths)).freeze().map_err(other("pause"))?;
        container::set_state(&mut self.db(), &c.id, "paused")?;
        self.container_event(&c, "pause", &[]);
        self.replica_moved(&c)?;
        self.container(&c.id)
    }

    pub fn unpause(&self, key: &str) -> Result<Container> {
        let c = self.container(key)?;
        if c.state != "paused" {
            return Err(ContainerError::BadState { name: c.name, state: c.state, what: "it is not paused".into() }.into());
        }
        Cgroup::load(&c.cgroup(&self.paths)).thaw().map_err(other("unpause"))?;
        container::set_state(&mut self.db(), &c.id, "running")?;
        self.container_event(&c, "unpause", &[]);
        self.replica_moved(&c)?;
        self.container(&c.id)
    }

    /// A service replica that pauses or resumes leaves or rejoins the
    /// balancing.
    pub(super) fn replica_moved(&self, c: &Container) -> Result<()> {
        if c.spec.labels.contains_key(crate::service::SERVICE_LABEL) {
            self.sync_firewall()?;
        }
        Ok(())
    }

    /// Blocks until the container stops; returns its exit code.
    pub fn wait(&self, key: &str) -> Result<i32> {
        let c = self.container(key)?;
        if let Some(mut s) = self.connect(&c) {
            let _ = attach::write_frame(&mut s, attach::HELLO, &[0]);
            while let Ok(Some((k, p))) = attach::read_frame(&mut s) {
                if k == attach::EXIT {
                    return Ok(attach::payload_i32(&p));
                }
            }
        }
        match self.container(&c.id) {
            Ok(c) => Ok(c.exit_code),
            // Removed by --rm meanwhile.
            Err(_) => Ok(0),
        }
    }

    /// Blocks until the container's monitor reports an exit or is gone
    /// (Some, with the exit code when the monitor told it), or `limit`
    /// passes (None). The monitor records the exit, and removes an `--rm`
    /// container, before it reports it; the code is how a waiter learns
    /// the exit of a container that is already gone.
    pub fn watch_exit(&self, c: &Container, limit: Duration) -> Option<Option<i32>> {
        let Some(mut s) = self.connect(c) else { return Some(None) };
        if attach::write_frame(&mut s, attach::HELLO, &[0]).is_err() || s.set_read_timeout(Some(limit)).is_err() {
            return Some(None);
        }
        loop {
            match attach::read_frame(&mut s) {
                Ok(Some((k, p))) if k == attach::EXIT => return Some(Some(attach::payload_i32(&p))),
                Ok(Some((k, _))) if k == attach::ERROR => return Some(None),
                Ok(Some(_)) => {}
                Ok(None) => return Some(None),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return None,
                Err(_) => return Some(None),
            }
        }
    }

    pub fn remove(&self, key: &str, force: bool) -> Result<String> {
        self.remove_with(key, force, false)
    }

    /// `rm [-f] [-v]`: `volumes` also removes the container's anonymous
    /// volumes.
    pub fn remove_with(&self, key: &str, force: bool, volumes: bool) -> Result<String> {
        self.remove_deferring(key, force, volumes, None)
    }

    /// Removes several: the peers' hosts files are written once at the
    /// end, not once per container (50 on one network: 50 rewrites of
    /// each peer's file instead of 1225). Results in `keys`' order.
    pub fn remove_many(&self, keys: &[String], force: bool, volumes: bool) -> Vec<Result<String>> {
        // The running ones are killed side by side first: each waits for
        // its monitor to see the exit.
        if force && keys.len() > 1 {
            let running: Vec<Container> = keys.iter().filter_map(|k| self.container(k).ok()).filter(|c| c.running() || c.state == "restarting").collect();
            std::thread::scope(|sc| {
                for chunk in running.chunks(running.len().div_ceil(8).max(1)) {
                    sc.spawn(move || {
                        for c in chunk {
                            let _ = self.control_and_wait(c, attach::KILL, libc::SIGKILL, Some(Duration::from_secs(10)));
                        }
                    });
                }
            });
        }
        let mut nets: Vec<network::Network> = Vec::new();
        let out = keys.iter().map(|k| self.remove_deferring(k, force, volumes, Some(&mut nets))).collect();
        let mut seen = std::collections::HashSet::new();
        for n in nets {
            if seen.insert(n.id.clone())
                && let Err(e) = self.refresh_hosts(&n)
            {
                tracing::warn!("rm: rewriting the hosts files of network {}: {e}", n.name);
            }
        }
        out
    }

    fn remove_deferring(&self, key: &str, force: bool, volumes: bool, defer: Option<&mut Vec<network::Network>>) -> Result<String> {
        let c = self.container(key)?;
        if c.running() || c.state == "restarting" {
            if !force {
                return Err(ContainerError::BadState {
                    name: c.name,
                    state: c.state,
                    what: "cannot remove a running container; stop it first or use rm -f".into(),
                }
                .into());
            }
            self.control_and_wait(&c, attach::KILL, libc::SIGKILL, Some(Duration::from_secs(10)))?;
        }
        let had_ports = !network::ports_of(&self.db(), &c.id)?.is_empty();
        let eps = network::endpoints_of_container(&self.db(), &c.id)?;
        let nets: Vec<network::Network> = eps.iter().map(|e| e.network.clone()).collect();
        {
            let mut db = self.db();
            match container::get(&db, &c.id) {
                Ok(c) => container::delete(&self.paths, &mut db, &c)?,
                Err(ContainerError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.container_event(&c, "destroy", &[]);
        if volumes {
            container::remove_anonymous_volumes(&self.paths, &mut self.db(), &c);
        }
        if had_ports {
            self.sync_firewall()?;
        }
        for e in eps.iter().filter(|e| e.network.is_overlay()) {
            self.overlay_release(&e.network, Some(&c.name), e.ip);
        }
        // Peers forget its name.
        match defer {
            Some(d) => d.extend(nets),
            None => {
                for n in &nets {
                    self.refresh_hosts(n)?;
                }
            }
        }
        Ok(c.name)
    }

    /// Renames; peers' hosts files follow the new name.
    pub fn rename(&self, key: &str, new: &str) -> Result<()> {
        let old = self.container(key)?;
        container::rename(&mut self.db(), key, new)?;
        if let Ok(c) = self.container(&old.id) {
            self.container_event(&c, "rename", &[("oldName", format!("/{}", old.name))]);
        }
        for ep in self.endpoints(new)? {
            // Other nodes learn the new name from the swarm.
            if ep.network.is_overlay() {
                self.overlay_rename(&ep.network, &old.name, new, ep.ip, &ep.aliases)?;
            }
            self.refresh_hosts(&ep.network)?;
        }
        Ok(())
    }

    pub fn logs(&self, key: &str) -> Result<Vec<LogLine>> {
        let c = self.container(key)?;
        let text = container::logfile::read_all(&container::log_path(&self.paths, &c.id));
        Ok(text.lines().filter_map(parse_log_line).collect())
    }

    /// Calls `each` for every log line, then for new ones until the
    /// container stops.
    pub fn follow_logs(&self, key: &str, each: &mut dyn FnMut(&LogLine)) -> Result<()> {
        self.follow_logs_until(key, &|| false, each)
    }

    /// `follow_logs` that also ends when `stop` says so (a client of the
    /// API that went away), checked while no new line comes.
    pub fn follow_logs_until(&self, key: &str, stop: &dyn Fn() -> bool, each: &mut dyn FnMut(&LogLine)) -> Result<()> {
        let c = self.container(key)?;
        let path = container::log_path(&self.paths, &c.id);
        let mut f = container::logfile::Follower::open(&path).map_err(other("opening the log"))?;
        let mut pending = String::new();
        // The last lines may land between a read that found nothing and
        // the look at the state: one more read after the container stopped.
        let mut last = false;
        while !stop() {
            let chunk = f.read_new().map_err(other("reading the log"))?;
            pending.push_str(&chunk);
            while let Some(i) = pending.find('\n') {
                let line: String = pending.drain(..=i).collect();
                if let Some(l) = parse_log_line(line.trim_end()) {
                    each(&l);
                }
            }
            if chunk.is_empty() {
                if last {
                    return Ok(());
                }
                last = !self.container(&c.id).map(|c| c.running() || c.state == "restarting").unwrap_or(false);
                if !last {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        Ok(())
    }

    /// Runs a command in a running container, through the exec helper
    /// (`runtime::helper`). With `capture == false` in a single-threaded
    /// process (the `berth exec` client) this process becomes the helper,
    /// keeping its pid and terminal; otherwise the helper is a child whose
    /// output is captured.
    pub fn exec(&self, key: &str, opts: runtime::exec::ExecOptions, capture: bool) -> Result<Output> {
        let c = self.container(key)?;
        if c.state != "running" {
            return Err(ContainerError::BadState { name: c.name, state: c.state, what: "exec needs a running container".into() }.into());
        }
        if !capture && proc::thread_count() == 1 {
            use std::os::unix::process::CommandExt;
            let (mut cmd, _sealed) = self.berth_exec(&c, &opts)?;
            let e = cmd.exec();
            return Err(EngineError::Start { code: runtime::EXIT_ENGINE, msg: format!("exec: starting berth's exec helper: {e}") });
        }
        let (mut cmd, _sealed) = self.berth_exec(&c, &runtime::exec::ExecOptions { interactive: false, tty: false, ..opts })?;
        cmd.stdin(std::process::Stdio::null());
        let o = cmd.output().map_err(other("running berth exec"))?;
        let code = o.status.code().unwrap_or(runtime::EXIT_ENGINE);
        if code >= 125 && o.stdout.is_empty() {
            let msg = String::from_utf8_lossy(&o.stderr).trim().trim_start_matches("berth: ").to_string();
            if msg.starts_with("exec:") || msg.contains("not running") {
                return Err(EngineError::Start { code, msg });
            }
        }
        Ok(Output { code, stdout: o.stdout, stderr: o.stderr })
    }

    /// Processes of a container: (pid, ppid, uid, start ticks, cpu ticks, tty nr, command).
    pub fn top(&self, key: &str) -> Result<Vec<ProcInfo>> {
        let c = self.container(key)?;
        if !c.running() {
            return Err(ContainerError::BadState { name: c.name, state: c.state, what: "top needs a running container".into() }.into());
        }
        let mut v: Vec<ProcInfo> = Cgroup::load(&c.cgroup(&self.paths)).procs().into_iter().filter_map(proc_info).collect();
        v.sort_by_key(|p| p.pid);
        Ok(v)
    }

    /// `top C ARGS` as docker does it: the host's `ps ARGS`, kept to the
    /// rows of the container's processes (found by the PID column, which
    /// ARGS must therefore print); titles and rows, the last column holding
    /// the rest of its line (a command with spaces).
    pub fn top_ps(&self, key: &str, args: &str) -> Result<(Vec<String>, Vec<Vec<String>>)> {
        let pids: Vec<String> = self.top(key)?.iter().map(|p| p.pid.to_string()).collect();
        let bad = |why: String| EngineError::from(ContainerError::BadOption(format!("ps_args {args:?}: {why}")));
        let words: Vec<&str> = args.split_ascii_whitespace().collect();
        // ps's own selection (-q) keeps a busy host's table short; ARGS
        // that choose processes themselves conflict with it, so without.
        let run = |quick: bool| {
            let mut cmd = std::process::Command::new("ps");
            cmd.args(&words);
            if quick {
                cmd.arg("-q").arg(pids.join(","));
            }
            cmd.env("LC_ALL", "C").stdin(std::process::Stdio::null()).output()
        };
        let out = match run(true) {
            Ok(o) if o.status.success() => o,
            _ => run(false).map_err(|e| EngineError::Io { context: "running ps for top (procps is needed for ps_args)".into(), source: e })?,
        };
        if !out.status.success() {
            return Err(bad(format!("ps refused it: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let titles: Vec<String> = lines.next().unwrap_or("").split_ascii_whitespace().map(String::from).collect();
        let Some(at) = titles.iter().position(|t| t == "PID") else {
            return Err(bad("its output has no PID column to find the container's processes by (add pid to -o)".into()));
        };
        let mut rows = Vec::new();
        for l in lines {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            if f.len() < titles.len() || !pids.iter().any(|p| p == f[at]) {
                continue;
            }
            let last = titles.len() - 1;
            let mut row: Vec<String> = f[..last].iter().map(|s| s.to_string()).collect();
            row.push(f[last..].join(" "));
            rows.push(row);
        }
        Ok((titles, rows))
    }

    /// `berth cp`: one of src/dst is `CONTAINER:PATH`.
    pub fn copy(&self, src: &str, dst: &str) -> Result<()> {
        let split = |s: &str| -> Option<(String, String)> {
            let (c, p) = s.split_once(':')?;
            (!c.contains('/') && !c.is_empty()).then(|| (c.to_string(), p.to_string()))
        };
        match (split(src), split(dst)) {
            // Resolved by the kernel inside the root, step by step: the
            // container may be swapping paths for symlinks meanwhile.
            (Some((c, p)), None) => self.with_root(&c, |root| crate::sys::rootfs::copy_out(root, Path::new(&p), Path::new(dst)).map_err(other(&format!("copying {src} to {dst}")))),
            (None, Some((c, p))) => {
                writable_for_copy(&self.container(&c)?, &p)?;
                self.with_root(&c, |root| crate::sys::rootfs::copy_in(Path::new(src), root, Path::new(&p), &mut Default::default()).map_err(other(&format!("copying {src} to {dst}"))))
            }
            _ => Err(EngineError::Other("cp: exactly one of SRC and DST must be CONTAINER:PATH".into())),
        }
    }

    /// One reading of a container's raw counters (the API's stats, which
    /// clients turn into percentages); zeros for one that is not running.
    pub fn stats_sample(&self, key: &str) -> Result<crate::sys::stats::Sample> {
        let c = self.container(key)?;
        Ok(self.sample(&c))
    }

    /// lstat of `path` in the container (docker's archive stat). A path
    /// that is not there is an `Io` error of kind NotFound.
    pub fn path_stat(&self, key: &str, path: &str) -> Result<PathStat> {
        let mut info = None;
        self.with_root(key, |root| {
            info = Some(crate::sys::rootfs::stat_in(root, Path::new(path)).map_err(other(&format!("container {key}")))?);
            Ok(())
        })?;
        let i = info.ok_or_else(|| EngineError::Other(format!("container {key}: {path}: no answer")))?;
        Ok(PathStat { name: split_dir_entry(path).1, size: i.size, mode: i.mode, mtime: i.mtime, link_target: i.link_target.map(|t| t.to_string_lossy().into_owned()) })
    }

    /// `path` of the container as a tar stream (docker's `GET archive`),
    /// entries named from the path's last component.
    pub fn archive_out(&self, key: &str, path: &str, out: &mut dyn Write) -> Result<()> {
        // The root has no name of its own: its content goes as `./...`.
        let base = Some(split_dir_entry(path).1).filter(|b| b != "/").unwrap_or_else(|| ".".into());
        self.with_root(key, |root| crate::sys::rootfs::tar_out(root, Path::new(path), Path::new(&base), out).map_err(other(&format!("container {key}: archiving"))))
    }

    /// Extracts a tar stream (plain, gzip or zstd) into the directory
    /// `path` of the container (docker's `PUT archive`). It is unpacked on
    /// the host first, by the image extractor that never writes outside its
    /// target, then copied in as `berth cp` does. With `no_replace_kind` a
    /// directory may not replace a file, nor a file a directory.
    pub fn archive_in(&self, key: &str, path: &str, src: &mut dyn Read, no_replace_kind: bool) -> Result<()> {
        let c = self.container(key)?;
        writable_for_copy(&c, path)?;
        let dir = self.path_stat(&c.id, path)?;
        if dir.mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(ContainerError::BadOption(format!("container {}: {path} is not a directory; the archive is extracted into a directory", c.name)).into());
        }
        let tmp = self.paths.tmp().join(format!("cp-{}-{}", std::process::id(), &store::new_id()[..12]));
        std::fs::create_dir_all(&tmp).map_err(other(&format!("creating {}", tmp.display())))?;
        let r = (|| {
            let plain = crate::image::tar::decompressed(src).map_err(super::chain(format!("container {}: reading the archive", c.name)))?;
            crate::image::tar::unpack(plain, &tmp).map_err(super::chain(format!("container {}: unpacking the archive", c.name)))?;
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&tmp).map_err(other("reading the unpacked archive"))?.flatten().map(|e| e.path()).collect();
            entries.sort();
            for e in &entries {
                drop_specials(e).map_err(other("reading the unpacked archive"))?;
            }
            self.with_root(&c.id, |root| {
                let mut copied = Default::default();
                for e in &entries {
                    let name = e.file_name().unwrap_or_default().to_string_lossy().into_owned();
                    let dst = Path::new(path).join(&name);
                    if no_replace_kind && let Ok(have) = crate::sys::rootfs::stat_in(root, &dst) {
                        let dir_there = have.mode & libc::S_IFMT == libc::S_IFDIR;
                        if dir_there != std::fs::symlink_metadata(e).is_ok_and(|m| m.is_dir()) {
                            let (a, b) = if dir_there { ("directory", "non-directory") } else { ("non-directory", "directory") };
                            return Err(ContainerError::BadOption(format!("cannot overwrite {a} {} with {b} {name}", dst.display())).into());
                        }
                    }
                    crate::sys::rootfs::copy_in(e, root, Path::new(path), &mut copied).map_err(other(&format!("container {}: copying {name} into {path}", c.name)))?;
                }
                Ok(())
            })
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        r
    }

    /// Gives `f` the container's root: /proc/PID/root while it runs, else a
    /// short-lived overlay mount of its layers.
    pub(super) fn with_root(&self, key: &str, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let c = self.container(key)?;
        if c.running() {
            return f(&PathBuf::from(format!("/proc/{}/root", c.pid)));
        }
        let dir = self.paths.container_dir(&c.id);
        let spec = runtime::load_spec(&dir).map_err(other("reading config.json"))?;
        let m = spec.mounts().clone().unwrap_or_default().into_iter().find(|m| m.destination() == Path::new("/")).ok_or_else(|| EngineError::Other("no root mount".into()))?;
        let opts: Vec<String> = m.options().clone().unwrap_or_default();
        let lower: Vec<String> = opts
            .iter()
            .find_map(|o| o.strip_prefix("lowerdir="))
            .unwrap_or("")
            .split(':')
            .map(|l| self.paths.layers().join(l).to_string_lossy().into_owned())
            .collect();
        let data = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), dir.join("upper").display(), dir.join("work").display());
        let merged = dir.join("merged");
        crate::sys::mount::mount(Some("overlay"), &merged, Some("overlay"), crate::sys::mount::MsFlags::empty(), Some(&data)).map_err(other("mounting the container's filesystem"))?;
        let r = f(&merged);
        let _ = crate::sys::mount::umount_detach(&merged);
        r
    }
}

/// A path in a container as docker's archive header describes it.
pub struct PathStat {
    /// The last component of the path asked for.
    pub name: String,
    pub size: u64,
    /// st_mode: type and permission bits.
    pub mode: u32,
    pub mtime: i64,
    pub link_target: Option<String>,
}

/// docker's SplitPathDirEntry: ("/a", "b") for "/a/b" and "/a/b/", and
/// ("/a/b", ".") for "/a/b/.", which names a directory's content.
pub fn split_dir_entry(path: &str) -> (String, String) {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if path == "." || path.ends_with("/.") {
        return (format!("/{}", parts.join("/")), ".".into());
    }
    match parts.split_last() {
        Some((last, rest)) => (format!("/{}", rest.join("/")), last.to_string()),
        None => ("/".into(), "/".into()),
    }
}

/// Takes out of an unpacked archive what `cp` must not copy into a
/// container: FIFOs, sockets and device nodes (a FIFO would hang the copy).
fn drop_specials(p: &Path) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(p)?;
    if md.is_dir() {
        for e in std::fs::read_dir(p)? {
            drop_specials(&e?.path())?;
        }
    } else if !md.is_file() && !md.file_type().is_symlink() {
        std::fs::remove_file(p)?;
    }
    Ok(())
}

pub struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub start_ticks: u64,
    pub cpu_ticks: u64,
    pub tty: String,
    pub cmd: String,
}

fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmd = cmdline.split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect::<Vec<_>>().join(" ");
    let tty_nr: u64 = f.get(4)?.parse().ok()?;
    let tty = if tty_nr == 0 { "?".to_string() } else { format!("pts/{}", (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00)) };
    Some(ProcInfo {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        uid,
        start_ticks: f.get(19)?.parse().ok()?,
        cpu_ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
        tty,
        cmd,
    })
}

fn parse_log_line(l: &str) -> Option<LogLine> {
    let v: serde_json::Value = serde_json::from_str(l).ok()?;
    Some(LogLine { stream: v["stream"].as_str()?.to_string(), text: v["log"].as_str()?.to_string(), time: v["time"].as_str().unwrap_or("").to_string() })
}

/// Says what this client wants. A container that ended at once may have
/// had its monitor send everything and close before this: the frames are
/// still ours to read, so a closed socket here is no error.
fn hello(sock: &mut UnixStream, flags: u8) -> Result<()> {
    match attach::write_frame(sock, attach::HELLO, &[flags]) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(other("attach")),
    }
}

/// After EXIT the monitor still removes the cgroup; the socket closes when
/// it is done. Waiting for that makes a returned `run` a finished one, as
/// docker's is. An --rm container's monitor closes it once the container
/// is off its networks (its record went before EXIT): its cgroup and files
/// go while we return.
fn wait_monitor_gone(sock: &mut UnixStream) {
    wait_closed(sock, Some(Duration::from_secs(5)));
}

/// Reads and drops whatever comes until the peer closes (or `timeout`).
fn wait_closed(sock: &mut UnixStream, timeout: Option<Duration>) {
    if timeout.is_some() {
        let _ = sock.set_read_timeout(timeout);
    }
    let mut buf = [0u8; 512];
    while let Ok(n) = sock.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// Relays this process's stdin/stdout/stderr over the attach socket until
/// the EXIT frame: the exit code; None when the user detached with docker's
/// keys, Ctrl-P Ctrl-Q, on a terminal.
fn relay_attached(sock: &mut UnixStream, stdin: bool, tty: bool) -> Result<Option<i32>> {
    const CTRL_P: u8 = 0x10;
    const CTRL_Q: u8 = 0x11;
    let mut held_p = false;
    let _raw = if tty && pty::is_tty(0) { pty::RawMode::enter(std::io::stdin()).ok() } else { None };
    let s = sock.as_raw_fd();
    let mut buf = vec![0u8; 65536];
    let mut pending = Vec::new();
    let mut stdin_open = stdin;
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let started = Instant::now();
    loop {
        let mut fds = vec![(s, libc::POLLIN)];
        if stdin_open {
            fds.push((0, libc::POLLIN));
        }
        let rev = proc::poll(&fds, -1).map_err(other("poll"))?;
        if rev[0] != 0 {
            let n = proc::read_fd(s, &mut buf).map_err(other("attach"))?;
            if n == 0 {
                return Err(EngineError::Other(format!("lost the connection to the container's monitor after {:?}", started.elapsed())));
            }
            pending.extend_from_slice(&buf[..n]);
            for (k, p) in attach::take_frames(&mut pending) {
                match k {
                    attach::STDOUT => {
                        let _ = out.write_all(&p);
                        let _ = out.flush();
                    }
                    attach::STDERR => {
                        let _ = err.write_all(&p);
                    }
                    attach::EXIT => return Ok(Some(attach::payload_i32(&p))),
                    _ => {}
                }
            }
        }
        if stdin_open && rev.get(1).copied().unwrap_or(0) != 0 {
            match proc::read_fd(0, &mut buf) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    let _ = attach::write_frame(sock, attach::STDIN_EOF, &[]);
                }
                Ok(n) => {
                    let mut data = Vec::with_capacity(n + 1);
                    for &b in &buf[..n] {
                        if tty && held_p {
                            held_p = false;
                            if b == CTRL_Q {
                                return Ok(None);
                            }
                            data.push(CTRL_P);
                        }
                        if tty && b == CTRL_P {
                            held_p = true;
                            continue;
                        }
                        data.push(b);
                    }
                    if !data.is_empty() {
                        let _ = attach::write_frame(sock, attach::STDIN, &data);
                    }
                }
            }
        }
    }
}

/// docker's rule for a copy into a container: a `--read-only` root takes
/// nothing, its writable volumes and binds do.
fn writable_for_copy(c: &Container, path: &str) -> Result<()> {
    if !c.spec.read_only {
        return Ok(());
    }
    // Lexically, so `/data/../etc` is not under /data.
    let clean = crate::volume::clean(&Path::new("/").join(path));
    if c.mounts.iter().any(|m| m.rw && clean.starts_with(&m.destination)) {
        return Ok(());
    }
    Err(ContainerError::BadOption(format!(
        "container {}: cannot copy into {path}: its root filesystem is read-only (--read-only); copy into one of its volumes, or run it without --read-only",
        c.name
    ))
    .into())
}

/// A monitor process just started, and our end of its socket.
struct Spawned {
    sock: UnixStream,
    child: std::process::Child,
    /// The child is the monitor itself, not a first process that forks it.
    stays: bool,
}

impl Spawned {
    /// The socket, once a first process that only daemonises is reaped
    /// (a short wait). A monitor that stays our child is left running.
    fn into_socket(mut self) -> UnixStream {
        if !self.stays {
            let _ = self.child.wait();
        }
        self.sock
    }

    /// Sends the monitor away unused: it exits when its socket closes.
    fn dismiss(mut self) {
        drop(self.sock);
        let _ = self.child.wait();
    }
}
