//! Capability sets, by name (`CAP_NET_ADMIN`).

use std::collections::HashSet;
use std::io;
use std::str::FromStr;

pub use caps::Capability;

/// Docker's default set.
pub const DEFAULT: &[&str] = &[
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];

/// Normalises `net_admin`, `NET_ADMIN` or `CAP_NET_ADMIN` to `CAP_NET_ADMIN`;
/// None when the kernel knows no such capability.
pub fn normalise(name: &str) -> Option<String> {
    let up = name.trim().to_ascii_uppercase();
    let full = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
    Capability::from_str(&full).ok().map(|c| c.to_string())
}

/// Every capability this process's bounding set holds: what `--privileged`
/// gives (root may lack some, e.g. CAP_SYS_RESOURCE here).
pub fn host_bounding() -> Vec<String> {
    caps::read(None, caps::CapSet::Bounding).map(|s| s.into_iter().map(|c| c.to_string()).collect()).unwrap_or_default()
}

fn set_of(names: &[String]) -> HashSet<Capability> {
    names.iter().filter_map(|n| Capability::from_str(n).ok()).collect()
}

/// Drops every capability not in `keep` from the bounding set. Done while
/// still root, since it needs CAP_SETPCAP.
pub fn limit_bounding(keep: &[String]) -> io::Result<()> {
    let e = |e: caps::errors::CapsError| io::Error::other(format!("dropping bounding capabilities: {e}"));
    let keep = set_of(keep);
    for c in caps::all() {
        if !keep.contains(&c) && caps::has_cap(None, caps::CapSet::Bounding, c).unwrap_or(false) {
            caps::drop(None, caps::CapSet::Bounding, c).map_err(e)?;
        }
    }
    Ok(())
}

/// Sets the other four sets. capset checks each call against the sets in
/// force, so effective shrinks before permitted does.
pub fn apply(effective: &[String], permitted: &[String], inheritable: &[String], ambient: &[String]) -> io::Result<()> {
    let e = |e: caps::errors::CapsError| io::Error::other(format!("setting capabilities: {e}"));
    caps::set(None, caps::CapSet::Inheritable, &set_of(inheritable)).map_err(e)?;
    caps::set(None, caps::CapSet::Effective, &set_of(effective)).map_err(e)?;
    caps::set(None, caps::CapSet::Permitted, &set_of(permitted)).map_err(e)?;
    let _ = caps::clear(None, caps::CapSet::Ambient);
    for c in set_of(ambient) {
        caps::raise(None, caps::CapSet::Ambient, c).map_err(e)?;
    }
    Ok(())
}
