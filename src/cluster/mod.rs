//! Swarm mode: many hosts as one. Cluster state lives in etcd; this area
//! holds the scheduler's decisions (pure), the cluster records, and the
//! node agent that carries them out through the local engine.

pub mod etcd;
pub mod schedule;
pub mod hosts;
pub mod model;
pub mod membership;
