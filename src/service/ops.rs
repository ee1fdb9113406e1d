//! The engine's service operations: create, scale, rolling update with
//! rollback, remove. They drive the container and network areas through
//! their public functions and the engine's own container operations.



/// What `service update` changes; None keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ServiceUpdate {
    pub image: Option<String>,
    pub cmd: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub parallelism: Option<u32>,
    pub delay_ms: Option<u64>,
    pub monitor_ms: Option<u64>,
    /// Go back to what the last successful update replaced (image, command,
    /// environment), itself as a rolling update.
    pub rollback: bool,
}

/// The spec an update asks for, and whether replicas must be replaced
/// (image, command or environment changed; not only how updates go). A
/// rollback takes what the last completed update replaced.
pub fn updated_spec(name: &str, old: &super::ServiceSpec, u: &ServiceUpdate) -> Result<(super::ServiceSpec, bool), String> {
    let mut u = u.clone();
    if u.rollback {
        let p = old.previous.clone().ok_or_else(|| format!("service {name}: nothing to roll back to (no update has completed)"))?;
        u.image = Some(p.image);
        u.cmd = p.cmd;
        u.env = Some(p.env);
    }
    let mut new = old.clone();
    if let Some(i) = &u.image {
        new.template.image = i.clone();
    }
    if let Some(c) = &u.cmd {
        new.template.cmd = Some(c.clone());
    }
    if let Some(e) = &u.env {
        new.template.env = e.clone();
    }
    if let Some(p) = u.parallelism {
        new.update.parallelism = p.max(1);
    }
    if let Some(d) = u.delay_ms {
        new.update.delay_ms = d;
    }
    if let Some(m) = u.monitor_ms {
        new.update.monitor_ms = m;
    }
    let same = new.template.image == old.template.image && new.template.cmd == old.template.cmd && new.template.env == old.template.env;
    Ok((new, !same))
}

pub(crate) fn replica_name(service: &str, slot: u32) -> String {
    format!("{service}.{slot}")
}
