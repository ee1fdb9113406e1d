//! Stacks: a compose plan deployed as networks, volumes and services named
//! `<stack>_<name>`, every one labelled `berth.stack=<stack>`. Services start
//! in dependency order, a wave at a time, the services of a wave in
//! parallel; `down` removes everything the stack made.

use std::time::Duration;


use crate::store::{Db, StoreError};

pub const STACK_LABEL: &str = "berth.stack";
pub const STACK_SERVICE_LABEL: &str = "berth.stack.service";

/// How long a dependency may take to reach its condition.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Makes the stacks table (see `network::make_tables`).
pub(crate) fn make_tables(db: &Db) -> std::result::Result<(), StoreError> {
    db.conn.execute_batch("CREATE TABLE IF NOT EXISTS stacks(name TEXT PRIMARY KEY, source TEXT NOT NULL, created TEXT NOT NULL, images TEXT NOT NULL DEFAULT '[]')")?;
    // Set until a deploy is complete, so a deploy cut short can be told
    // from a stack and rolled back.
    db.ensure_column("stacks", "deploying", "INTEGER NOT NULL DEFAULT 0")?;
    Ok(())
}

/// Stacks whose deploy never completed.
pub fn deploying(db: &Db) -> std::result::Result<Vec<String>, StoreError> {
    let mut st = db.conn.prepare("SELECT name FROM stacks WHERE deploying=1")?;
    let v = st.query_map([], |r| r.get(0))?.filter_map(|r| r.ok()).collect();
    Ok(v)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StackInfo {
    pub name: String,
    pub source: String,
    pub created: String,
    pub services: Vec<String>,
}

pub(crate) fn valid(name: &str) -> bool {
    !name.is_empty() && name.as_bytes()[0].is_ascii_alphanumeric() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

