#![recursion_limit = "256"]
//! berth: a container engine whose first interface is a script.
//!
//! One `Engine` (engine/) is the only door into the core; the fronts
//! (cli/, script/, and testrun, which both use) turn words into request
//! structs and render results. The areas below the door (container, image,
//! network, volume, service, build, runtime, store, sys, ...) never import
//! it: the door calls them, and where an area needs the engine back (a
//! build's RUN steps), it says what it needs as a trait the engine
//! implements (`build::builder::Host`).

pub mod api;
pub mod cli;
pub mod container;
pub mod changes;
pub mod engine;
pub mod events;
#[macro_use]
pub mod fault;
pub mod firewall;
pub mod build;
pub mod cluster;
pub mod image;
pub mod network;
pub mod parse;
pub mod render;
pub mod rootless;
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
