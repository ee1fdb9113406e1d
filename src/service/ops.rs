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

pub(crate) fn replica_name(service: &str, slot: u32) -> String {
    format!("{service}.{slot}")
}
