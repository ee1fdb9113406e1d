//! The runtime underneath: it reads only the OCI spec (config.json) and
//! turns it into a running process tree: the monitor, the container's init,
//! exec'd processes.

pub mod attach;
pub mod exec;
pub mod init;
pub mod monitor;

use std::path::Path;

use oci_spec::runtime::Spec;

pub fn load_spec(bundle: &Path) -> std::io::Result<Spec> {
    let p = bundle.join("config.json");
    let bytes = std::fs::read(&p)?;
    serde_json::from_slice(&bytes).map_err(|e| std::io::Error::other(format!("{}: {e}", p.display())))
}

/// Exit codes a failed start maps to, as docker's CLI reports them.
pub const EXIT_ENGINE: i32 = 125;
pub const EXIT_CANNOT_INVOKE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;
