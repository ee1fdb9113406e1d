//! Long-running helpers (a service's supervisor, a swarm node's agent):
//! started by a command, daemonised as a monitor is, and alive while they
//! hold a lock, so a crashed one frees it and the next command starts
//! another. Both sides of that live here.

use std::path::Path;

use super::{Engine, EngineError, Result};
use crate::store::FileLock;
use crate::sys::proc;

impl Engine {
    /// Starts `berth ARGS` as a helper unless one holds `lock`. Cheap when
    /// one does: one lock probe. Its stderr goes to `log`.
    pub(super) fn ensure_helper(&self, lock: &Path, args: &[&str], log: &Path, what: &str) -> Result<()> {
        if let Some(d) = lock.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        match FileLock::try_exclusive(lock) {
            Ok(None) => return Ok(()),
            // Free: let it go before the new one takes it.
            Ok(Some(l)) => drop(l),
            Err(e) => return Err(e.into()),
        }
        let (exe, _sealed) = crate::runtime::sealed_exe().map_err(|e| EngineError::Other(format!("sealing the berth binary: {e}")))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.args(args).env("BERTH_ROOT", &self.paths.root).env("BERTH_RUN", &self.paths.run);
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
        match std::fs::OpenOptions::new().create(true).append(true).open(log) {
            Ok(f) => cmd.stderr(f),
            Err(_) => cmd.stderr(std::process::Stdio::null()),
        };
        // The first process forks the helper and exits at once.
        let mut child = cmd.spawn().map_err(|e| EngineError::Other(format!("starting {what}: {e}")))?;
        let _ = child.wait();
        Ok(())
    }
}

/// Stops this root's helpers started as `berth ARGS...` (SIGTERM, then
/// SIGKILL after `grace`).
pub(super) fn stop_helpers(paths: &crate::store::Paths, args: &[&str], grace: std::time::Duration) {
    let me = std::process::id() as i32;
    let root = paths.root.display().to_string();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        if let Some((words, r)) = crate::system::berth_process(pid)
            && r == root
            && words.len() > args.len()
            && words[1..=args.len()].iter().zip(args).all(|(w, a)| w == a)
        {
            proc::terminate(pid, grace);
        }
    }
}

/// The helper's side, first thing in its entry: takes `lock` (Err(0) when
/// another one holds it), forks (the starter waits for this first process
/// only, and the helper never becomes its zombie), starts a session, logs
/// to stderr (BERTH_LOG, else `level`) and opens the engine. The lock is
/// taken before the fork, which shares it with the helper: when the starter
/// sees the first process end, the lock already says the helper runs.
pub(super) fn become_helper(lock: &Path, what: &str, level: &str) -> std::result::Result<(FileLock, Engine), i32> {
    let held = match FileLock::try_exclusive(lock) {
        Ok(Some(l)) => l,
        // Another one was quicker.
        Ok(None) => return Err(0),
        Err(e) => {
            eprintln!("{what}: {e}");
            return Err(1);
        }
    };
    match proc::fork() {
        Ok(Some(_)) => proc::exit_now(0),
        Ok(None) => {}
        Err(_) => return Err(1),
    }
    let _ = proc::setsid();
    proc::set_signal_default(libc::SIGPIPE, true);
    let filter = std::env::var("BERTH_LOG").unwrap_or_else(|_| level.into());
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).with_ansi(false).with_writer(std::io::stderr).try_init();
    match Engine::open(None) {
        Ok(e) => Ok((held, e)),
        Err(e) => {
            tracing::error!("{what}: {e}");
            Err(1)
        }
    }
}
