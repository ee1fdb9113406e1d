//! berth: a container engine whose first interface is a script.
//!
//! One `Engine` (engine.rs) is the only door into the core; the fronts
//! (cli/, script/) turn words into request structs and render results.

pub mod cli;
pub mod container;
pub mod changes;
pub mod engine;
pub mod events;
pub mod firewall;
pub mod build;
pub mod image;
pub mod network;
pub mod parse;
pub mod render;
pub mod runtime;
pub mod script;
pub mod service;
pub mod store;
pub mod sys;
pub mod system;
pub mod testrun;
#[cfg(test)]
mod testutil;
pub mod volume;

pub use engine::Engine;
