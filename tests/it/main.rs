//! Integration tests of berth: real containers, run as root, each test in
//! its own BERTH_ROOT/BERTH_RUN (see util::Env).

mod util;

mod api;
mod api_clients;
mod api_containers;
mod api_exec;
mod api_images;
mod api_objects;
mod archive;
mod build;
mod checkpoint;
mod cluster_etcd;
mod commands;
mod escape;
mod concurrency;
mod crash;
mod examples;
mod exitcodes;
mod import;
mod labhosts;
mod lifecycle;
mod limits;
mod monitor;
mod network;
mod overlay_dataplane;
mod registry;
mod repl;
mod rootless;
mod rootless_cgroup;
mod runner;
mod runopts;
mod scripting;
mod security;
mod services;
mod swarm;
mod system;
mod volumes;
