//! `berth-monitor monitor ID`: one small single-threaded process per
//! running container, run from the small binary (see `super::helper`). It
//! is the parent of the container's init: it reaps it, records exit code
//! and time, writes the JSON-lines log, owns the pty and the attach socket,
//! runs health probes and applies the restart policy. A second into a run
//! it gives back the start-up's pages (`sys::exe::drop_startup_pages`), so
//! an idle monitor holds about 350 KiB (PSS, ten running).

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::attach::{self, frame};
use super::init::{self, InitError, Stdio};
use super::EXIT_ENGINE;
use crate::container::health::{self, HealthSpec, HealthState, Probe};
use crate::container::{self, RestartPolicy};
use crate::store::{self, Db, Paths};
use crate::sys::cgroup::{Cgroup, Limits};
use crate::sys::{proc, pty};

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    wants_output: bool,
}

struct Running {
    pid: i32,
    /// pty master, or stdout pipe
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    tty: bool,
    cgroup: Cgroup,
}

struct Monitor {
    paths: Paths,
    id: String,
    /// Open only while recording: an idle monitor holds no SQLite cache.
    db: Option<Db>,
    spec: Spec,
    sig: OwnedFd,
    listener: UnixListener,
    clients: Vec<Client>,
    log: container::logfile::LogWriter,
    /// A write to the log failed (said once, not per line).
    log_failed: bool,
    partial: [Vec<u8>; 2],
    interactive: bool,
    restart: RestartPolicy,
    autoremove: bool,
    stop_signal: i32,
    manual_stop: bool,
    kill_at: Option<Instant>,
    winsize: Option<(u16, u16)>,
    /// The cgroup of the run that just ended, removed once the clients have
    /// their answer (rmdir in every hierarchy is not free).
    spent: Option<Cgroup>,
    health: Option<HealthSpec>,
    checks: Checks,
    /// A service's replica: its state changes move the balancing.
    replica: bool,
    /// The root mounted by fuse-overlayfs for this run (rootless, where
    /// the kernel refuses overlayfs), unmounted when it ends.
    fuse_root: Option<std::path::PathBuf>,
    /// The running init's host pid, which probes enter by.
    init_pid: i32,
    /// The fields above that come from the container's record (restart,
    /// autoremove, health, replica) have been read (`load_record`).
    loaded: bool,
    /// The container's record as last read: at the first start, then at
    /// each exit, in the transaction that writes the exit. Events take its
    /// name, image and labels.
    record: Option<container::Container>,
    /// `record` is the one the exit just handled left: the restart
    /// decision and `finish` use it rather than read it again (three
    /// queries and JSON parses off the path to a `run --rm`'s return).
    /// Cleared when the container restarts.
    record_at_exit: bool,
    /// A `--rm` container's record was dropped with its exit
    /// (`container::exit_and_forget`): what `finish` still owes, and
    /// whether it had published ports.
    forgotten: Option<(container::Forgotten, bool)>,
}

/// The health check's clock and the probe in flight.
#[derive(Default)]
struct Checks {
    state: HealthState,
    next: Option<Instant>,
    started_run: Option<Instant>,
    probe: Option<InFlight>,
}

/// A probe running: the `berth exec` that runs the check.
struct InFlight {
    pid: i32,
    started: Instant,
    stamp: String,
    /// Killed at its timeout; its reaping records the failure.
    timed_out: bool,
}

/// A probe is the exec helper (`enter`, from our own sealed binary) of the
/// check's command: the same path as a user's exec, its output kept in a
/// file for inspect.
fn spawn_probe(paths: &Paths, id: &str, pid: i32, cgroup: &str, argv: &[String]) -> Option<i32> {
    use std::os::unix::process::CommandExt;
    // Not current_exe(): once the binary is replaced (an upgrade, a
    // rebuild) that names a deleted file; /proc/self/exe still runs it.
    let exe = std::path::PathBuf::from("/proc/self/exe");
    let out = std::fs::File::create(paths.container_run(id).join("health.out")).ok()?;
    let err = out.try_clone().ok()?;
    let o = super::exec::ExecOptions { args: argv.to_vec(), env: Vec::new(), workdir: None, user: None, tty: false, interactive: false, privileged: false };
    let mut cmd = std::process::Command::new(exe);
    cmd.args(super::helper::enter_args(pid, cgroup, &paths.container_dir(id), &o)).env_remove("BERTH_LOG");
    cmd.stdin(std::process::Stdio::null()).stdout(out).stderr(err);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            proc::unblock_all_signals();
            Ok(())
        });
    }
    // Reaped by the monitor's own SIGCHLD loop, not by std.
    let child = cmd.spawn().ok()?;
    let pid = child.id() as i32;
    std::mem::forget(child);
    Some(pid)
}

/// Set (to anything) for a monitor started before its container exists.
pub const PENDING: &str = "BERTH_MONITOR_PENDING";

/// Set (to anything) by a starter that exits soon after the container
/// does (the command line's `run` and `start`): the monitor stays its
/// child instead of daemonising. It is reparented when the starter exits,
/// and a starter that outlives it leaves a zombie only until it exits too.
/// Long-lived starters (scripts, the REPL, the API) leave it unset.
pub const STAY_CHILD: &str = "BERTH_MONITOR_STAY_CHILD";

/// Waits for data on the starter's socket: false at its end.
fn frame_comes(fd: &OwnedFd) -> bool {
    use nix::sys::socket::{recv, MsgFlags};
    loop {
        match recv(fd.as_raw_fd(), &mut [0u8; 1], MsgFlags::MSG_PEEK) {
            Ok(n) => return n > 0,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Entry point of the hidden `monitor` subcommand. `first` is the socket of
/// the client that started us, if any.
pub fn main(paths: Paths, id: &str, first: Option<OwnedFd>) -> i32 {
    // Daemonise: a long-lived client waits for this first process only, and
    // the real monitor, reparented, never becomes its zombie. A short-lived
    // one keeps us as its child, which saves a fork and its exit (a tenth of
    // a run's CPU).
    if std::env::var_os(STAY_CHILD).is_none() {
        match proc::fork() {
            Ok(Some(_)) => proc::exit_now(0),
            Ok(None) => {}
            Err(_) => return EXIT_ENGINE,
        }
    }
    // Off the starter's terminal and its process group's signals. Fails
    // only for a process group leader, which neither a forked nor a spawned
    // monitor is.
    let _ = proc::setsid();
    // What needs only the id is made while `run` still creates the
    // container, not on the path from its go to the container's start.
    let early = Early::make(&paths, id);
    if std::env::var_os(PENDING).is_some() {
        // `run` started us while it makes the container: its first frame
        // says go; a closed socket, that the create failed.
        if !first.as_ref().is_some_and(frame_comes) {
            if let Ok(e) = early {
                e.discard(&paths, id);
            }
            proc::exit_now(0);
        }
        let log = paths.container_dir(id).join("monitor.log");
        if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(&log) {
            let _ = proc::dup_onto(f.as_raw_fd(), 2);
        }
    }
    proc::set_signal_default(libc::SIGPIPE, true);
    // Warnings reach monitor.log (our stderr) even without BERTH_LOG: what
    // a monitor could not record is never silent.
    super::helper::init_log();
    tracing::debug!("monitor: daemonised");
    let first = first.map(UnixStream::from);
    match early.and_then(|e| Monitor::new(paths, id, first.as_ref(), e)) {
        Ok(mut m) => {
            if let Some(f) = first {
                m.add_client(f, true);
            }
            m.serve();
            0
        }
        Err(e) => {
            if let Some(mut f) = first {
                // The starter may be gone already: no one is left to tell.
                let _ = attach::write_frame(&mut f, attach::ERROR, &attach::error_payload(EXIT_ENGINE, &e));
            }
            EXIT_ENGINE
        }
    }
}

/// A monitor's signal descriptor, run directory and attach socket, and its
/// connection to the store: what it can make knowing only the container's
/// id.
struct Early {
    sig: OwnedFd,
    listener: UnixListener,
    db: Option<Db>,
}

impl Early {
    fn make(paths: &Paths, id: &str) -> Result<Early, String> {
        let sig = proc::signalfd(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP]).map_err(|e| e.to_string())?;
        let run = paths.container_run(id);
        std::fs::create_dir_all(&run).map_err(|e| format!("{}: {e}", run.display()))?;
        let sock = paths.attach_socket(id);
        // Its log is not set up yet: a stale socket that cannot be removed
        // is told with the bind's failure, which it causes.
        let stale = std::fs::remove_file(&sock).err().filter(|e| e.kind() != std::io::ErrorKind::NotFound);
        let listener = UnixListener::bind(&sock).map_err(|e| match &stale {
            Some(s) => format!("{}: {e} (removing the stale socket first: {s})", sock.display()),
            None => format!("{}: {e}", sock.display()),
        })?;
        listener.set_nonblocking(true).ok();
        // A store that cannot be opened now is opened (and the reason
        // logged) when first needed.
        Ok(Early { sig, listener, db: Db::open(paths).ok() })
    }

    /// Takes back the socket and run directory of a container never made
    /// (its create failed); the client may have removed them already.
    fn discard(self, paths: &Paths, id: &str) {
        drop(self.listener);
        let _ = std::fs::remove_file(paths.attach_socket(id));
        let _ = std::fs::remove_dir(paths.container_run(id));
    }
}

impl Monitor {
    /// Runs `f` on the store, opened on first use. A store that cannot be
    /// opened or a write that fails (busy past its timeout, a full disk) is
    /// logged to monitor.log and dropped: the container goes on either way.
    fn with_store<T, E: std::fmt::Display>(&mut self, what: &str, f: impl FnOnce(&mut Db, &Paths, &str) -> Result<T, E>) -> Option<T> {
        let mut db = match self.db.take() {
            Some(d) => d,
            None => match Db::open(&self.paths) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(container = %self.id, "{what}: the store cannot be opened: {e}");
                    return None;
                }
            },
        };
        match f(&mut db, &self.paths, &self.id) {
            Ok(v) => {
                self.db = Some(db);
                Some(v)
            }
            Err(e) => {
                // A fresh connection next time: this one may be the problem.
                tracing::warn!(container = %self.id, "{what}: {e}");
                None
            }
        }
    }

    /// Like `with_store`, for what the engine relies on (a start, an exit):
    /// retried until the store takes it, for up to 10 minutes.
    fn must_store<E: std::fmt::Display>(&mut self, what: &str, mut f: impl FnMut(&mut Db, &Paths, &str) -> Result<(), E>) {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut wait = Duration::from_millis(50);
        while self.with_store(what, &mut f).is_none() {
            if Instant::now() > deadline {
                tracing::error!(container = %self.id, "{what}: gave up after 10 minutes");
                return;
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }

    /// Records a container event (`berth events`) from the monitor: starts
    /// and exits happen here, whoever asked for them.
    fn event(&mut self, action: &str, extra: &[(&str, String)]) {
        if let Some(c) = &self.record {
            crate::events::container(&self.paths, c, action, extra);
        } else if let Some(c) = self.with_store("reading the container for its event", |db, _, id| container::get(db, id)) {
            crate::events::container(&self.paths, &c, action, extra);
        }
    }

    /// What a start needs comes from the bundle; the container's record
    /// is read by `load_record` while init builds its root (opening the
    /// store and resolving the image's health check take a millisecond).
    fn new(paths: Paths, id: &str, first: Option<&UnixStream>, early: Early) -> Result<Monitor, String> {
        let Early { sig, listener, mut db } = early;
        let bundle = paths.container_dir(id);
        let spec = super::load_spec(&bundle).map_err(|e| e.to_string())?;
        let annotation = |k: &str| spec.annotations().as_ref().and_then(|a| a.get(k)).cloned();
        // A bundle written before the annotation existed: from the record.
        let interactive = match annotation(container::spec::INTERACTIVE) {
            Some(v) => v == "true",
            None => {
                let d = match db.take() {
                    Some(d) => d,
                    None => Db::open(&paths).map_err(|e| e.to_string())?,
                };
                let c = container::get(&d, id).map_err(|e| e.to_string())?;
                db = Some(d);
                c.spec.interactive
            }
        };
        let log_cfg = container::logfile::LogConfig::from_annotations(spec.annotations().as_ref());
        let log = container::logfile::LogWriter::open(&container::log_path(&paths, id), log_cfg).map_err(|e| e.to_string())?;
        let stop_signal = annotation("berth.stop-signal").and_then(|s| proc::signal_number(&s)).unwrap_or(libc::SIGTERM);
        let mut m = Monitor {
            id: id.to_string(),
            db,
            spec,
            sig,
            listener,
            clients: vec![],
            log,
            log_failed: false,
            partial: [vec![], vec![]],
            interactive,
            restart: RestartPolicy::No,
            autoremove: false,
            stop_signal,
            manual_stop: false,
            kill_at: None,
            winsize: None,
            spent: None,
            health: None,
            checks: Checks::default(),
            replica: false,
            fuse_root: None,
            init_pid: 0,
            loaded: false,
            record: None,
            record_at_exit: false,
            forgotten: None,
            paths,
        };
        // The starter's HELLO (and first RESIZE) come before anything runs,
        // so no output is produced before it listens.
        if let Some(f) = first {
            let _ = f.set_read_timeout(Some(Duration::from_secs(5)));
            if let Ok(Some((attach::RESIZE, p))) = attach::read_frame(&mut &*f)
                && p.len() >= 4 {
                    m.winsize = Some((u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]])));
                }
            let _ = f.set_read_timeout(None);
        }
        Ok(m)
    }

    /// Gives back what the start phase used: the database connection and
    /// freed heap pages (a monitor lives as long as its container). Once
    /// the container has run a second: a short run keeps the connection
    /// for its exit, which would otherwise open the store again (0.5 ms).
    fn slim_down(&mut self) {
        self.db = None;
        proc::trim_heap();
    }

    fn add_client(&mut self, s: UnixStream, wants_output: bool) {
        let _ = s.set_nonblocking(true);
        self.clients.push(Client { stream: s, buf: vec![], wants_output });
    }

    fn broadcast(&mut self, kind: u8, payload: &[u8], output: bool) {
        let f = frame(kind, payload);
        self.clients.retain(|c| {
            if output && !c.wants_output {
                return true;
            }
            proc::write_all_fd(c.stream.as_raw_fd(), &f).is_ok()
        });
    }

    fn serve(&mut self) {
        let mut restarts = 0u32;
        let mut failed = None;
        let mut delay = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            let run = match self.start() {
                Ok(r) => r,
                Err(e) => {
                    let (code, msg) = (e.code, e.msg.clone());
                    // An --rm container goes even when it never ran.
                    if let Err(x) = self.load_record() {
                        tracing::warn!("monitor: {x}");
                    }
                    self.must_store("recording the failed start", |db, _, id| container::record_exited(db, id, code, false, &msg));
                    failed = Some(e);
                    break;
                }
            };
            let (pid, health) = (run.pid, self.health.is_some());
            self.must_store("recording the start", |db, _, id| container::record_started(db, id, pid, proc::getpid(), restarts > 0, health));
            self.event("start", &[]);
            // A replica without a check serves once running, on a first start
            // as on a restart (with a check, its first healthy probe does it).
            if self.replica && self.health.is_none() {
                self.with_store("adding the replica to its service's balancing", |db, paths, _| crate::firewall::sync(paths, db));
            }
            if let Some(h) = &self.health {
                self.checks = Checks { state: HealthState { status: "starting".into(), ..Default::default() }, next: Some(Instant::now() + h.interval()), started_run: Some(Instant::now()), probe: None };
            }
            self.broadcast(attach::STARTED, &attach::i32_payload(run.pid), false);
            let code = self.supervise(run);
            // A checkpoint stopped it: not a crash to restart from.
            let dumped = self.paths.container_run(&self.id).join(crate::runtime::criu::DUMPING);
            if dumped.exists() {
                let _ = std::fs::remove_file(&dumped);
                self.manual_stop = true;
            }
            // `berth update` may have changed the policy and the limits
            // since: a restart follows the container's record.
            if let Some(c) = self.record.as_ref().filter(|_| self.record_at_exit) {
                self.restart = c.spec.restart.clone();
            } else if let Some(c) = self.with_store("reading the restart policy", |db, _, id| container::get(db, id)) {
                self.restart = c.spec.restart;
            }
            if self.replica {
                // A replica that stopped leaves its service's balancing now.
                self.with_store("taking the replica out of its service's balancing", |db, paths, _| crate::firewall::sync(paths, db));
            }
            let again = !self.manual_stop
                && match &self.restart {
                    RestartPolicy::No => false,
                    RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
                    RestartPolicy::OnFailure(max) => code != 0 && (*max == 0 || restarts < *max),
                };
            if !again {
                break;
            }
            // The next start runs with the limits `update` may have written.
            if let Ok(s) = super::load_spec(&self.paths.container_dir(&self.id)) {
                self.spec = s;
            }
            self.drop_spent_cgroup();
            restarts += 1;
            self.record_at_exit = false;
            // Docker's back-off: doubling from 100 ms, reset after a run
            // of 10 s or more.
            if started.elapsed() >= Duration::from_secs(10) {
                delay = Duration::from_millis(100);
            }
            self.with_store("recording the restart", |db, _, id| container::set_state(db, id, "restarting"));
            if !self.idle(delay) {
                self.must_store("recording the exit", |db, _, id| container::set_state(db, id, "exited"));
                break;
            }
            delay = (delay * 2).min(Duration::from_secs(60));
        }
        self.finish(failed);
    }

    /// Cleans up, then tells the clients: a `run --rm` client must find
    /// the container gone once it has its answer.
    fn finish(&mut self, failed: Option<InitError>) {
        if let Some(r) = self.fuse_root.take() {
            crate::sys::fuseoverlay::unmount(&r);
        }
        let me = match self.record_at_exit {
            true => self.record.take(),
            false => self.with_store("reading the container", |db, _, id| container::get(db, id)),
        };
        let code = me.as_ref().map(|c| c.exit_code).unwrap_or(EXIT_ENGINE);
        let mut forgotten = None;
        if self.autoremove {
            let had_ports = match self.forgotten.take() {
                Some((f, ports)) => {
                    forgotten = Some(f);
                    if let Some(me) = me.as_ref().filter(|c| c.mounts.iter().any(|m| m.anonymous)) {
                        self.with_store("removing the anonymous volumes", |db, paths, _| {
                            container::remove_anonymous_volumes(paths, db, me);
                            Ok::<_, std::convert::Infallible>(())
                        });
                    }
                    ports
                }
                None => {
                    let had_ports = self.with_store("reading the published ports", |db, _, id| crate::network::ports_of(db, id)).is_some_and(|p| !p.is_empty());
                    if let Some(me) = &me {
                        forgotten = self.with_store("forgetting the container", |db, paths, _| container::forget_container(paths, db, me));
                    }
                    had_ports
                }
            };
            // Its published ports leave the firewall with it.
            if had_ports {
                self.with_store("removing the published ports", |db, paths, _| crate::firewall::sync(paths, db));
            }
            // As docker's events tell an automatic removal.
            if let Some(me) = me.as_ref().filter(|_| forgotten.is_some()) {
                crate::events::container(&self.paths, me, "destroy", &[]);
            }
        } else {
            self.must_store("recording the monitor's end", |db, _, id| container::record_monitor_gone(db, id));
            // A stopped container is off its networks, as in docker: its
            // namespace would otherwise still answer (and route) for it.
            // Its addresses stay reserved; start wires a fresh namespace.
            // Before the clients hear of the exit, so a start that follows
            // at once does not meet this namespace half gone.
            let lossy = self.with_store("reading the link emulation", |db, _, id| Ok::<_, std::convert::Infallible>(crate::network::has_loss(db, id))).unwrap_or(false);
            crate::network::teardown(&self.paths, &self.id);
            if lossy {
                self.with_store("removing the link emulation", |db, paths, _| crate::network::sync_loss(paths, db));
            }
            // A --rm container kept for a restart: its root, mounted
            // volatile, came down with its init, so its upper layer is
            // whole; the mark that mount leaves in the work directory would
            // make the kernel refuse the next one. That directory is
            // scratch between mounts: emptied, as a spare's is
            // (`container::spare`), it takes the mark along. (After a host
            // crash the mark stays, and the kernel rightly refuses.)
            if me.as_ref().is_some_and(|c| c.spec.rm) {
                warn_err("emptying the overlay's work directory", crate::volume::empty_tree(&self.paths.container_dir(&self.id).join("work")));
            }
        }
        tracing::debug!("monitor: recorded");
        match failed {
            Some(e) => self.broadcast(attach::ERROR, &attach::error_payload(e.code, &e.msg), false),
            None => self.broadcast(attach::EXIT, &attach::i32_payload(code), false),
        }
        // The clients have their answer; the slow part of cleaning up
        // happens while they go on.
        if self.autoremove {
            // Its addresses leave the host before its starter goes on: a
            // run that follows at once may take them; its link emulation's
            // rules go with its links. Then nothing of it is
            // left that berth shows or that another container can meet, and
            // a `run --rm` returns (0.4 ms sooner) while its cgroup and
            // files go: `system check` counts those as its monitor's while
            // the monitor lives.
            crate::network::teardown(&self.paths, &self.id);
            if let Some(f) = forgotten.take() {
                self.with_store("removing its link emulation", |db, paths, _| {
                    f.files_removed(paths, db);
                    Ok::<_, std::convert::Infallible>(())
                });
            }
            self.clients.clear();
            crate::fault!("rm.finish");
        }
        self.drop_spent_cgroup();
        if self.autoremove {
            let spare = container::remove_files_but_reset(&self.paths, &self.id, Some(self.cgroup_path())).unwrap_or_else(|e| {
                tracing::warn!("monitor: removing the container's files: {e}");
                None
            });
            // Our stderr is the monitor.log now among the spares: what we
            // would still say would reach the next container's.
            if spare.is_some()
                && let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null")
            {
                let _ = proc::dup_onto(null.as_raw_fd(), 2);
            }
            if let Some(p) = spare {
                p.finish();
            }
        } else {
            warn_err("removing the attach socket", std::fs::remove_file(self.paths.attach_socket(&self.id)));
            warn_err("removing the run directory", std::fs::remove_dir(self.paths.container_run(&self.id)));
        }
        tracing::debug!("monitor: finished");
    }

    fn drop_spent_cgroup(&mut self) {
        if let Some(cg) = self.spent.take() {
            // Usually empty: init's pid namespace took its processes along.
            if cg.delete_if_empty().unwrap_or(false) {
                return;
            }
            warn_err("killing what is left in the cgroup", cg.kill_all());
            warn_err("removing the cgroup", cg.delete());
            // The root's own parent stays, as docker's does: made and
            // removed with each container run alone, it cost seven mkdirs
            // and seven rmdirs a run on cgroup v1. `system reset` takes it.
        }
    }

    /// Reads what the container's record says about this monitor's
    /// duties: its restart policy, --rm, its health check (its own or its
    /// image's) and whether it is a service's replica.
    fn load_record(&mut self) -> Result<(), String> {
        if self.loaded {
            return Ok(());
        }
        let (c, health) = self
            .with_store("reading the container", |db, _, id| {
                container::get(db, id).map(|c| {
                    // Only a check of the container's own with a command
                    // needs nothing from the image.
                    let own_test = c.spec.health.as_ref().is_some_and(|h| !h.test.is_empty());
                    let image = if own_test { None } else { crate::image::healthcheck(db, &c.image_id).ok().flatten() };
                    let health = health::effective(c.spec.health.as_ref(), image.as_ref());
                    (c, health)
                })
            })
            .ok_or_else(|| format!("container {}: its record cannot be read (see monitor.log)", self.id))?;
        self.restart = c.spec.restart.clone();
        self.autoremove = c.spec.rm;
        self.replica = c.spec.labels.contains_key(crate::service::SERVICE_LABEL);
        self.health = health;
        self.record = Some(c);
        self.loaded = true;
        Ok(())
    }

    fn limits(&self) -> Limits {
        let mut l = Limits { memory: None, cpu_quota: None, cpu_period: None, pids: None, devices: vec![] };
        let Some(r) = self.spec.linux().as_ref().and_then(|x| x.resources().as_ref()) else { return l };
        l.memory = r.memory().as_ref().and_then(|m| m.limit());
        if let Some(c) = r.cpu() {
            l.cpu_quota = c.quota();
            l.cpu_period = c.period();
        }
        l.pids = r.pids().as_ref().map(|p| p.limit());
        for d in r.devices().clone().unwrap_or_default() {
            if !d.allow() {
                continue;
            }
            let t = match d.typ() {
                Some(oci_spec::runtime::LinuxDeviceType::C) => 'c',
                Some(oci_spec::runtime::LinuxDeviceType::B) => 'b',
                _ => 'a',
            };
            l.devices.push((t, d.major().unwrap_or(-1), d.minor().unwrap_or(-1), d.access().clone().unwrap_or_else(|| "rwm".into())));
        }
        l
    }

    /// The container's cgroup, as its spec names it.
    fn cgroup_path(&self) -> String {
        self.spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()).map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| crate::container::cgroup_path(&self.paths, None, &self.id))
    }

    fn ns_flags(&self) -> i32 {
        let mut f = 0;
        for n in self.spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default() {
            if n.path().is_some() {
                continue;
            }
            f |= match n.typ() {
                LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
                LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
                LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
                LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
                LinuxNamespaceType::Network => libc::CLONE_NEWNET,
                LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
                _ => 0,
            };
        }
        f
    }

    /// Creates the cgroup and stdio, clones init and waits until it has
    /// exec'd the user's command (or failed trying).
    fn start(&mut self) -> Result<Running, InitError> {
        let e = |m: String| InitError { code: EXIT_ENGINE, msg: m };
        // A restore the engine asked for: CRIU brings the processes back.
        let order_file = self.paths.container_run(&self.id).join(crate::runtime::criu::ORDER);
        if let Ok(b) = std::fs::read(&order_file) {
            let _ = std::fs::remove_file(&order_file);
            let order: crate::runtime::criu::RestoreOrder = serde_json::from_slice(&b).map_err(|x| e(format!("the restore order is unreadable: {x}")))?;
            self.load_record().map_err(e)?;
            return self.restore(order);
        }
        let cg_path = self.cgroup_path();
        tracing::debug!("monitor: start");
        crate::fault!("start.monitor");
        let tty = self.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
        let (go_r, go_w) = proc::pipe().map_err(|x| e(x.to_string()))?;
        let (err_r, err_w) = proc::pipe().map_err(|x| e(x.to_string()))?;
        let mut keep_child: Vec<OwnedFd> = Vec::new();
        let mut console: Option<UnixStream> = None;
        let (stdio, out, errp, stdin) = if tty {
            let (ours, theirs) = UnixStream::pair().map_err(|x| e(format!("socketpair: {x}")))?;
            let s = Stdio::ContainerPty { console: theirs.as_raw_fd(), size: self.winsize };
            console = Some(ours);
            keep_child.push(OwnedFd::from(theirs));
            (s, None, None, None)
        } else {
            let (or, ow) = proc::pipe().map_err(|x| e(x.to_string()))?;
            let (er, ew) = proc::pipe().map_err(|x| e(x.to_string()))?;
            let (ir, iw) = if self.interactive {
                let (r, w) = proc::pipe().map_err(|x| e(x.to_string()))?;
                (Some(r), Some(w))
            } else {
                (None, None)
            };
            let s = Stdio::Pipes { stdin: ir.as_ref().map(|r| r.as_raw_fd()).unwrap_or(-1), stdout: ow.as_raw_fd(), stderr: ew.as_raw_fd() };
            keep_child.extend(ir);
            keep_child.extend([ow, ew]);
            (s, Some(or), Some(er), iw)
        };
        if crate::rootless::active() && crate::sys::fuseoverlay::driver(&self.paths.run) == crate::sys::fuseoverlay::Driver::Fuse {
            self.mount_fuse_root().map_err(|x| e(format!("mounting the container's root: {x}")))?;
        }
        let flags = self.ns_flags();
        // On v2 the cgroup is made first and init is born in it (no move,
        // see proc::clone_into_cgroup); a v2 kernel that refuses that has
        // init move itself in first thing. On v1 the monitor makes it while
        // init builds its root on the other core, and init moves itself in
        // after "go" through the hierarchies it holds open (cgroup::Door):
        // a thread moving itself skips the lock a move by us waits on.
        let (made_first, door) = if crate::sys::cgroup::is_v2() {
            (Some(Cgroup::create(&cg_path, &self.limits()).map_err(|x| e(x.to_string()))?), None)
        } else {
            (None, Some(crate::sys::cgroup::door(&cg_path).map_err(|x| e(x.to_string()))?))
        };
        let born_in = made_first.as_ref().and_then(|c| c.v2_dir_fd()).and_then(|fd| proc::clone_into_cgroup(flags, &fd).ok());
        let cloned = match born_in {
            Some(r) => r,
            None => match proc::clone_fork(flags) {
                Ok(r) => r,
                Err(x) => {
                    if let Some(c) = &made_first {
                        warn_err("removing the cgroup", c.delete());
                    }
                    return Err(e(format!("clone: {x}")));
                }
            },
        };
        let born_in_cgroup = born_in.is_some();
        match cloned {
            None => {
                let go = go_r.as_raw_fd();
                let errfd = err_w.as_raw_fd();
                std::mem::forget(go_r);
                std::mem::forget(err_w);
                // Our copy of "go"'s write end would keep init waiting for
                // a monitor that died before init could ask for a signal.
                drop(go_w);
                drop(err_r);
                if !born_in_cgroup
                    && let Some(c) = &made_first
                    && let Err(x) = c.enter()
                {
                    init::report(errfd, &InitError { code: EXIT_ENGINE, msg: x.to_string() });
                    proc::exit_now(1)
                }
                init::run(&self.spec, stdio, go, errfd, door)
            }
            Some(pid) => {
                drop(keep_child);
                drop(go_r);
                drop(err_w);
                drop(door);
                tracing::debug!("monitor: cloned{}", if born_in_cgroup { " into its cgroup" } else { "" });
                let cgroup = match made_first {
                    Some(c) => c,
                    None => match Cgroup::create(&cg_path, &self.limits()) {
                        Ok(c) => c,
                        Err(x) => {
                            warn_err("killing init after a failed start", proc::kill(pid, libc::SIGKILL));
                            warn_err("reaping init", proc::wait_pid(pid));
                            return Err(e(x.to_string()));
                        }
                    },
                };
                crate::fault!("start.cgroup");
                // While init builds its root on the other core.
                if let Err(x) = self.load_record() {
                    warn_err("killing init after a failed start", proc::kill(pid, libc::SIGKILL));
                    warn_err("reaping init", proc::wait_pid(pid));
                    warn_err("removing the cgroup", cgroup.delete());
                    return Err(e(x));
                }
                let mut g = std::fs::File::from(go_w);
                // Init gone before "go" shows up as its report or its exit below.
                let _ = g.write_all(b"g");
                drop(g);
                // With a tty, init opens it in the container's devpts and
                // hands us the master; a failure before that closes the socket.
                let out = match &console {
                    Some(c) => pty::recv_fd(c.as_raw_fd()).ok().flatten(),
                    None => out,
                };
                drop(console);
                if let Some(err) = init::read_report(err_r) {
                    warn_err("reaping init", proc::wait_pid(pid));
                    warn_err("removing the cgroup", cgroup.delete());
                    return Err(err);
                }
                tracing::debug!("monitor: exec done");
                for fd in [&out, &errp].into_iter().flatten() {
                    warn_err("setting the output non-blocking", proc::set_nonblocking(fd.as_raw_fd(), true));
                }
                Ok(Running { pid, out, err: errp, stdin, tty, cgroup })
            }
        }
    }

    /// Restores a checkpoint: the root mounted here (CRIU binds it as the
    /// container's), new output pipes in place of the old ones, the
    /// network namespace berth made again; the restored init is our child.
    fn restore(&mut self, order: crate::runtime::criu::RestoreOrder) -> Result<Running, InitError> {
        use crate::runtime::criu;
        let e = |m: String| InitError { code: EXIT_ENGINE, msg: m };
        let cg_path = self.cgroup_path();
        let root = self.spec.root().as_ref().map(|r| r.path().clone()).unwrap_or_default();
        let mounts = self.spec.mounts().clone().unwrap_or_default();
        let rootm = mounts.iter().find(|m| m.destination() == std::path::Path::new("/")).ok_or_else(|| e("the spec has no root mount".into()))?;
        let opts = rootm.options().clone().unwrap_or_default();
        std::fs::create_dir_all(&root).map_err(|x| e(format!("{}: {x}", root.display())))?;
        crate::sys::mount::mount(Some("overlay"), &root, Some("overlay"), crate::sys::mount::MsFlags::empty(), Some(&crate::sys::mount::overlay_data(&opts))).map_err(|x| e(format!("mounting the root to restore into: {x}")))?;
        // A terminal: a new pair here, its slave in place of the old one.
        let pty = match &order.tty {
            Some(_) => Some(crate::sys::pty::open_here(self.winsize).map_err(|x| e(format!("allocating a pty: {x}")))?),
            None => None,
        };
        let (or, ow) = proc::pipe().map_err(|x| e(x.to_string()))?;
        let (er, ew) = proc::pipe().map_err(|x| e(x.to_string()))?;
        let (ir, iw) = if self.interactive && pty.is_none() {
            let (r, w) = proc::pipe().map_err(|x| e(x.to_string()))?;
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        let mut pipes = Vec::new();
        for (fd, ino) in [(Some(&ow), order.pipes[1]), (Some(&ew), order.pipes[2]), (ir.as_ref(), order.pipes[0])] {
            if let (Some(fd), Some(ino)) = (fd, ino) {
                pipes.push((fd.as_raw_fd(), ino));
            }
        }
        let netns = self.spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default().into_iter().find(|n| n.typ() == LinuxNamespaceType::Network).and_then(|n| n.path().clone());
        let netns = match netns {
            Some(p) => Some(std::fs::File::open(&p).map_err(|x| e(format!("{}: {x}", p.display())))?),
            None => None,
        };
        let ext = criu::external_mounts(&self.spec);
        let tty = match (&pty, &order.tty) {
            (Some(p), Some(k)) => Some((p.slave.as_raw_fd(), k.as_str())),
            _ => None,
        };
        let restored = criu::restore(&criu::RestoreOpts { images: &order.images, root: &root, tcp_established: order.tcp_established, tty, netns: netns.as_ref(), mounts: &ext, pipes: &pipes });
        // The restored mount namespace holds its own view of the root.
        warn_err("unmounting the restore's root", crate::sys::mount::umount_detach(&root));
        drop((ow, ew, ir, netns));
        let pid = restored.map_err(|x| e(x.to_string()))?;
        let cgroup = match Cgroup::create(&cg_path, &self.limits()) {
            Ok(cg) => cg,
            Err(x) => {
                warn_err("killing the restored container after a cgroup failure", proc::kill(pid, libc::SIGKILL));
                warn_err("reaping it", proc::wait_pid(pid));
                return Err(e(x.to_string()));
            }
        };
        for p in std::iter::once(pid).chain(proc::descendants(pid)) {
            warn_err("moving a restored process into the cgroup", cgroup.add(p));
        }
        if let Some(p) = pty {
            let master = p.master;
            drop(p.slave);
            warn_err("setting the output non-blocking", proc::set_nonblocking(master.as_raw_fd(), true));
            return Ok(Running { pid, out: Some(master), err: None, stdin: None, tty: true, cgroup });
        }
        for fd in [Some(&or), Some(&er)].into_iter().flatten() {
            warn_err("setting the output non-blocking", proc::set_nonblocking(fd.as_raw_fd(), true));
        }
        Ok(Running { pid, out: Some(or), err: Some(er), stdin: iw, tty: false, cgroup })
    }

    /// fuse-overlayfs at the root path, here in the user's mount namespace
    /// that init's is copied from; init finds it mounted.
    fn mount_fuse_root(&mut self) -> std::io::Result<()> {
        let root = self.spec.root().as_ref().map(|r| r.path().clone()).unwrap_or_default();
        let mut mounts = self.spec.mounts().clone().unwrap_or_default();
        let Some(m) = mounts.iter_mut().find(|m| m.destination() == std::path::Path::new("/")) else { return Ok(()) };
        let mut opts = m.options().clone().unwrap_or_default();
        if !crate::sys::mount::is_mounted(&root) {
            std::fs::create_dir_all(&root)?;
            crate::sys::fuseoverlay::mount(&root, &opts)?;
        }
        self.fuse_root = Some(root);
        opts.push(crate::sys::fuseoverlay::PREMOUNTED.to_string());
        m.set_options(Some(opts));
        self.spec.set_mounts(Some(mounts));
        Ok(())
    }

    /// Runs the event loop until init exits; returns its exit code.
    fn supervise(&mut self, mut run: Running) -> i32 {
        self.init_pid = run.pid;
        let mut status: Option<proc::WaitStatus> = None;
        let mut drain_until: Option<Instant> = None;
        let mut buf = vec![0u8; 65536];
        // A container still running after a second will likely run long:
        // then the start-up's code pages and its store connection go (see
        // drop_startup_pages, slim_down). Not at once: a short run would
        // only fault them back for its exit.
        let mut slim_at = Some(Instant::now() + Duration::from_secs(1));
        loop {
            if status.is_some() && run.out.is_none() && run.err.is_none() {
                break;
            }
            if let Some(t) = drain_until
                && Instant::now() >= t {
                    break;
                }
            let mut fds: Vec<(RawFd, i16)> = vec![(self.sig.as_raw_fd(), libc::POLLIN), (self.listener.as_raw_fd(), libc::POLLIN)];
            let out_idx = run.out.as_ref().map(|f| {
                fds.push((f.as_raw_fd(), libc::POLLIN));
                fds.len() - 1
            });
            let err_idx = run.err.as_ref().map(|f| {
                fds.push((f.as_raw_fd(), libc::POLLIN));
                fds.len() - 1
            });
            let client_base = fds.len();
            for c in &self.clients {
                fds.push((c.stream.as_raw_fd(), libc::POLLIN));
            }
            let mut wake: Option<Instant> = match (self.kill_at, drain_until) {
                (_, Some(t)) | (Some(t), None) => Some(t),
                _ => None,
            };
            for t in [if status.is_none() { self.probe_due() } else { None }, slim_at].into_iter().flatten() {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
            let timeout = wake.map(|t| t.saturating_duration_since(Instant::now()).as_millis() as i32 + 1).unwrap_or(-1);
            let rev = match proc::poll(&fds, timeout) {
                Ok(r) => r,
                Err(_) => continue,
            };
            if slim_at.is_some_and(|t| Instant::now() >= t) {
                slim_at = None;
                self.slim_down();
                crate::sys::exe::drop_startup_pages();
            }
            if let Some(t) = self.kill_at
                && Instant::now() >= t && status.is_none() {
                    warn_err("killing the container after its stop timeout", proc::kill(run.pid, libc::SIGKILL));
                    self.kill_at = None;
                }
            if rev[0] != 0 {
                for s in proc::read_signalfd(&self.sig) {
                    match s {
                        libc::SIGCHLD => {
                            while let Some((pid, st)) = proc::reap_any() {
                                if pid == run.pid {
                                    status = Some(st);
                                    drain_until = Some(Instant::now() + Duration::from_secs(2));
                                } else if self.checks.probe.as_ref().is_some_and(|p| p.pid == pid) {
                                    self.probe_done(st.code());
                                }
                            }
                        }
                        _ => self.request_stop(&run, 10),
                    }
                }
            }
            if status.is_none() {
                self.probe_tick();
            }
            if rev[1] != 0 {
                while let Ok((s, _)) = self.listener.accept() {
                    self.add_client(s, false);
                }
            }
            for (idx, stream) in [(out_idx, 0usize), (err_idx, 1usize)] {
                let Some(i) = idx else { continue };
                if rev[i] == 0 {
                    continue;
                }
                let fd = if stream == 0 { run.out.as_ref() } else { run.err.as_ref() }.map(|f| f.as_raw_fd()).unwrap();
                match proc::read_fd(fd, &mut buf) {
                    Ok(0) => self.close_stream(&mut run, stream),
                    Ok(n) => {
                        let data = buf[..n].to_vec();
                        self.output(stream, &data);
                    }
                    Err(x) if x.kind() == std::io::ErrorKind::WouldBlock || x.kind() == std::io::ErrorKind::Interrupted => {}
                    // A pty master reports EIO once the last slave closes.
                    Err(_) => self.close_stream(&mut run, stream),
                }
            }
            for (fd, r) in fds[client_base..].iter().map(|f| f.0).zip(rev[client_base..].iter()) {
                if *r == 0 {
                    continue;
                }
                let Some((k, frames)) = self.read_client(fd) else { continue };
                for (kind, p) in frames {
                    self.handle(k, kind, &p, &mut run);
                }
            }
        }
        for s in 0..2 {
            self.flush_partial(s);
        }
        tracing::debug!("monitor: init exited, output drained");
        let code = status.map(|s| s.code()).unwrap_or(EXIT_ENGINE);
        let oom = run.cgroup.oom_killed();
        let mut exited = None;
        // A `--rm` container that will not start again (no policy, no
        // checkpoint just taken) goes with its exit: one transaction.
        let dumped = || self.paths.container_run(&self.id).join(crate::runtime::criu::DUMPING).exists();
        if self.autoremove && matches!(self.restart, RestartPolicy::No) && !dumped() {
            let mut gone = None;
            self.must_store("recording the exit", |db, _, id| {
                gone = container::exit_and_forget(db, id, code, oom)?;
                Ok::<(), container::ContainerError>(())
            });
            if let Some((c, f, ports)) = gone {
                exited = Some(c);
                self.forgotten = Some((f, ports));
            }
        } else {
            self.must_store("recording the exit", |db, _, id| {
                container::record_exited(db, id, code, oom, "")?;
                exited = container::get(db, id).ok();
                Ok::<(), container::ContainerError>(())
            });
        }
        self.record_at_exit = exited.is_some();
        self.record = exited;
        if oom {
            self.event("oom", &[]);
        }
        self.event("die", &[("exitCode", code.to_string())]);
        self.spent = Some(run.cgroup);
        self.kill_at = None;
        code
    }

    /// When the health check next needs attention: a probe to start, or
    /// one running past its timeout.
    fn probe_due(&self) -> Option<Instant> {
        let h = self.health.as_ref()?;
        match &self.checks.probe {
            Some(p) if p.timed_out => None,
            Some(p) => Some(p.started + h.timeout()),
            None => self.checks.next,
        }
    }

    fn probe_tick(&mut self) {
        let Some(h) = self.health.clone() else { return };
        let now = Instant::now();
        if let Some(p) = &mut self.checks.probe {
            if !p.timed_out && now >= p.started + h.timeout() {
                // The check command runs two forks below `berth exec`,
                // inside the container: all of them go, not just the client.
                for d in proc::descendants(p.pid).into_iter().rev() {
                    warn_err("killing a timed-out health check", proc::kill(d, libc::SIGKILL));
                }
                warn_err("killing a timed-out health check", proc::kill(p.pid, libc::SIGKILL));
                p.timed_out = true;
            }
            return;
        }
        if self.checks.next.is_some_and(|t| now >= t) {
            self.checks.next = None;
            let cgroup = self.cgroup_path();
            match h.argv().and_then(|argv| spawn_probe(&self.paths, &self.id, self.init_pid, &cgroup, &argv)) {
                Some(pid) => self.checks.probe = Some(InFlight { pid, started: now, stamp: store::now_rfc3339(), timed_out: false }),
                None => {
                    // A probe that cannot start is a failed probe, not silence.
                    let at = store::now_rfc3339();
                    self.record_probe(&h, Probe { start: at.clone(), end: at, exit_code: -1, output: "the health check could not be started".into() }, false);
                }
            }
        }
    }

    fn probe_done(&mut self, code: i32) {
        let Some(h) = self.health.clone() else { return };
        let Some(p) = self.checks.probe.take() else { return };
        let end = store::now_rfc3339();
        let probe = if p.timed_out {
            Probe { start: p.stamp, end, exit_code: -1, output: format!("health check exceeded its timeout ({:?})", h.timeout()) }
        } else {
            let mut output = std::fs::read(self.paths.container_run(&self.id).join("health.out")).unwrap_or_default();
            output.truncate(4096);
            Probe { start: p.stamp, end, exit_code: code, output: String::from_utf8_lossy(&output).into_owned() }
        };
        let in_start = !p.timed_out && self.checks.started_run.is_some_and(|t| t.elapsed() < Duration::from_millis(h.start_period_ms));
        self.record_probe(&h, probe, in_start);
    }

    /// Folds a probe into the health, records it, and moves the balancing
    /// when the status changed (only healthy replicas get traffic).
    fn record_probe(&mut self, h: &HealthSpec, p: Probe, in_start_period: bool) {
        let changed = self.checks.state.record(p, h.retries(), in_start_period);
        let state = self.checks.state.clone();
        self.with_store("recording the health", |db, _, id| container::set_health(db, id, &state));
        if changed {
            self.with_store("moving the service's balancing", |db, paths, _| crate::firewall::sync(paths, db));
        }
        self.db = None;
        self.checks.next = Some(Instant::now() + h.interval());
    }

    fn close_stream(&mut self, run: &mut Running, stream: usize) {
        if stream == 0 {
            run.out = None;
        } else {
            run.err = None;
        }
    }

    fn request_stop(&mut self, run: &Running, timeout: u32) {
        self.manual_stop = true;
        // A frozen process cannot act on a signal.
        warn_err("thawing the cgroup to stop it", run.cgroup.thaw());
        warn_err("sending the stop signal", proc::kill(run.pid, self.stop_signal));
        let at = Instant::now() + Duration::from_secs(timeout as u64);
        self.kill_at = Some(self.kill_at.map_or(at, |k| k.min(at)));
        if timeout == 0 {
            warn_err("killing the container", proc::kill(run.pid, libc::SIGKILL));
        }
    }

    fn handle(&mut self, k: usize, kind: u8, p: &[u8], run: &mut Running) {
        match kind {
            attach::HELLO => self.clients[k].wants_output = p.first().is_some_and(|f| f & attach::WANT_OUTPUT != 0),
            attach::STDIN => {
                let fd = if run.tty { run.out.as_ref() } else { run.stdin.as_ref() };
                if let Some(fd) = fd {
                    warn_err("passing stdin on", proc::write_all_fd(fd.as_raw_fd(), p));
                }
            }
            attach::STDIN_EOF
                if !run.tty => {
                    run.stdin = None;
                }
            attach::RESIZE if p.len() >= 4 => {
                if let (true, Some(m)) = (run.tty, run.out.as_ref()) {
                    pty::set_size(m.as_raw_fd(), u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]]));
                }
            }
            attach::STOP => {
                if p.get(4).is_some_and(|f| f & attach::STOP_KEEP != 0) {
                    self.autoremove = false;
                }
                self.request_stop(run, attach::payload_i32(p).max(0) as u32)
            }
            attach::KILL => {
                let sig = attach::payload_i32(p);
                if [libc::SIGKILL, libc::SIGTERM, libc::SIGINT].contains(&sig) {
                    self.manual_stop = true;
                    warn_err("thawing the cgroup to signal it", run.cgroup.thaw());
                }
                warn_err("signalling the container", proc::kill(run.pid, sig));
            }
            _ => {}
        }
    }

    /// Waits `delay` before a restart while still serving clients; false
    /// when a stop request arrived meanwhile.
    fn idle(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        while Instant::now() < until {
            let mut fds = vec![(self.listener.as_raw_fd(), libc::POLLIN)];
            for c in &self.clients {
                fds.push((c.stream.as_raw_fd(), libc::POLLIN));
            }
            let ms = until.saturating_duration_since(Instant::now()).as_millis() as i32 + 1;
            let Ok(rev) = proc::poll(&fds, ms) else { continue };
            if rev[0] != 0 {
                while let Ok((s, _)) = self.listener.accept() {
                    self.add_client(s, false);
                }
            }
            for (fd, r) in fds[1..].iter().map(|f| f.0).zip(rev[1..].iter()) {
                if *r == 0 {
                    continue;
                }
                let Some((_, frames)) = self.read_client(fd) else { continue };
                if frames.iter().any(|(kind, _)| *kind == attach::STOP || *kind == attach::KILL) {
                    self.manual_stop = true;
                    return false;
                }
            }
        }
        true
    }

    /// Reads what client `fd` sent: its index and the complete frames, or
    /// None when nothing complete arrived. A client that closed or failed is
    /// dropped. Clients may have been dropped since the poll (a failed write
    /// in broadcast), so they are found by fd, not by index.
    fn read_client(&mut self, fd: RawFd) -> Option<(usize, Vec<(u8, Vec<u8>)>)> {
        let k = self.clients.iter().position(|c| c.stream.as_raw_fd() == fd)?;
        let mut tmp = [0u8; 8192];
        match std::io::Read::read(&mut &self.clients[k].stream, &mut tmp) {
            Ok(0) => {
                self.clients.remove(k);
                None
            }
            Ok(n) => {
                self.clients[k].buf.extend_from_slice(&tmp[..n]);
                Some((k, attach::take_frames(&mut self.clients[k].buf)))
            }
            Err(x) if x.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(_) => {
                self.clients.remove(k);
                None
            }
        }
    }

    fn output(&mut self, stream: usize, data: &[u8]) {
        self.broadcast(if stream == 0 { attach::STDOUT } else { attach::STDERR }, data, true);
        self.partial[stream].extend_from_slice(data);
        while let Some(pos) = self.partial[stream].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial[stream].drain(..=pos).collect();
            self.log_line(stream, &line);
        }
        // Keep memory bounded for output without newlines.
        if self.partial[stream].len() > 16384 {
            self.flush_partial(stream);
        }
    }

    fn flush_partial(&mut self, stream: usize) {
        if !self.partial[stream].is_empty() {
            let line = std::mem::take(&mut self.partial[stream]);
            self.log_line(stream, &line);
        }
    }

    fn log_line(&mut self, stream: usize, line: &[u8]) {
        let rec = serde_json::json!({
            "log": String::from_utf8_lossy(line),
            "stream": if stream == 0 { "stdout" } else { "stderr" },
            "time": store::now_rfc3339(),
        });
        let mut s = rec.to_string();
        s.push('\n');
        // A full disk loses lines, not the container; monitor.log says so once.
        match self.log.write_record(s.as_bytes()) {
            Err(e) if !self.log_failed => {
                self.log_failed = true;
                tracing::warn!("monitor: writing the container's log: {e} (lines are lost until it works again)");
            }
            Ok(()) => self.log_failed = false,
            Err(_) => {}
        }
    }
}

/// Names the descriptor that holds the starter's socket: 0, our stdin,
/// from a client of this version.
pub const MONITOR_FD: &str = "BERTH_MONITOR_FD";

/// The starter's socket, whose number the client put in BERTH_MONITOR_FD.
pub fn inherited_socket() -> Option<OwnedFd> {
    let fd: RawFd = std::env::var(MONITOR_FD).ok()?.parse().ok()?;
    // fcntl tells whether the fd is open without touching it.
    proc::set_cloexec(fd, true).ok()?;
    if fd > 2 {
        // SAFETY: the fd is open and was placed there for us by the client.
        return Some(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    // Off stdin, which /dev/null takes: a child we spawn with an inherited
    // stdin must not hold the starter's socket open.
    // SAFETY: fcntl on an open descriptor; the new one is ours alone.
    let moved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if moved < 0 {
        return None;
    }
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = proc::dup_onto(null.as_raw_fd(), fd);
    }
    // SAFETY: `moved` was just made and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// Logs (at warn, to monitor.log) a step the monitor goes on without. A
/// target that is already gone (a file, a process, a cgroup) is what the
/// step wanted, so that is not logged.
fn warn_err<T>(what: &str, r: std::io::Result<T>) {
    if let Err(e) = r
        && e.kind() != std::io::ErrorKind::NotFound
        && e.raw_os_error() != Some(libc::ESRCH)
        && e.raw_os_error() != Some(libc::ECHILD)
    {
        tracing::warn!("monitor: {what}: {e}");
    }
}
