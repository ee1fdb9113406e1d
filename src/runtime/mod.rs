//! The runtime underneath: it turns the OCI spec (config.json) into a
//! running process tree: the monitor, the container's init, exec'd
//! processes. `init` and `exec` read only the spec. The monitor cannot: it
//! outlives every client, so it is the one that records a start and an exit
//! in the store, moves a service replica in and out of the firewall's
//! balancing, drops a `--rm` container, runs health probes and emits the
//! container's events. Those are its only ties to the engine's areas
//! (container records, the firewall, events), each a call through the
//! store that never blocks the container (see `Monitor::with_store`).

pub mod attach;
pub mod criu;
pub mod exec;
pub mod helper;
pub mod init;
pub mod monitor;

use std::path::Path;

use oci_spec::runtime::Spec;

pub fn load_spec(bundle: &Path) -> std::io::Result<Spec> {
    let p = bundle.join("config.json");
    let bytes = std::fs::read(&p)?;
    serde_json::from_slice(&bytes).map_err(|e| std::io::Error::other(format!("{}: {e}", p.display())))
}

/// The path to start a monitor or exec helper from, and the descriptor
/// that keeps it valid until the child has started: those processes enter
/// containers, so they run from a copy that cannot be written (see
/// `sys::exe`). That is the small `berth-monitor` binary when it is
/// installed beside berth, else berth itself, which answers the same
/// commands (see [`helper`]).
pub fn sealed_helper() -> std::io::Result<(std::path::PathBuf, std::os::fd::OwnedFd)> {
    match crate::sys::exe::helper_path() {
        Some(p) => as_path(crate::sys::exe::sealed(&p)?),
        None => sealed_exe(),
    }
}

/// The same for berth itself (a service's supervisor, a node's agent).
pub fn sealed_exe() -> std::io::Result<(std::path::PathBuf, std::os::fd::OwnedFd)> {
    as_path(crate::sys::exe::sealed_self()?)
}

fn as_path(fd: std::os::fd::OwnedFd) -> std::io::Result<(std::path::PathBuf, std::os::fd::OwnedFd)> {
    use std::os::fd::AsRawFd;
    Ok((format!("/proc/self/fd/{}", fd.as_raw_fd()).into(), fd))
}

/// Exit codes a failed start maps to, as docker's CLI reports them.
pub const EXIT_ENGINE: i32 = 125;
pub const EXIT_CANNOT_INVOKE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;
