//! The command line's words: every subcommand, flag and help text berth
//! accepts, and their turning into the engine's request structs.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use super::{more, parse_bytes, parse_kv, service};
use crate::container::{RestartPolicy, RunSpec};

#[derive(Parser)]
#[command(name = "berth", version, about = "A container engine whose first interface is a script", disable_help_subcommand = true)]
pub struct Cli {
    /// State directory (default /var/lib/berth, or $BERTH_ROOT)
    #[arg(long, global = true)]
    pub(super) root: Option<PathBuf>,
    /// Registry credentials file, docker's config.json format (default ~/.berth/config.json, or $BERTH_REGISTRY_CONFIG)
    #[arg(long = "registry-config", global = true)]
    pub(super) registry_config: Option<PathBuf>,
    #[command(subcommand)]
    pub(super) cmd: Option<Cmd>,
}

/// The commands scripts and test runners start in a loop, parsed alone:
/// building the whole command tree (every subcommand's flags and help) cost
/// a `berth run` about 2 ms of its 14. The same argument structs as `Cli`;
/// anything this does not accept (help, a typo) goes to `Cli`, so errors
/// and help read the same.
#[derive(Parser)]
#[command(name = "berth", disable_help_flag = true, disable_version_flag = true)]
pub(super) struct FastCli {
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[arg(long = "registry-config", global = true)]
    registry_config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: FastCmd,
}

#[derive(Subcommand)]
enum FastCmd {
    Run(RunArgs),
    Exec(ExecArgs),
}

impl FastCli {
    /// `Cli` for `berth run ...` or `berth exec ...`; None for anything
    /// else, or anything the full parser should answer.
    pub(super) fn parse_hot(args: &[String]) -> Option<Cli> {
        // The subcommand: the first word after the global flags.
        let mut i = 1;
        while let Some(a) = args.get(i) {
            match a.as_str() {
                "--root" | "--registry-config" => i += 2,
                a if a.starts_with("--root=") || a.starts_with("--registry-config=") => i += 1,
                _ => break,
            }
        }
        if !matches!(args.get(i).map(String::as_str), Some("run" | "exec")) || args.iter().any(|a| a == "--help" || a == "-h") {
            return None;
        }
        let f = FastCli::try_parse_from(args).ok()?;
        let cmd = match f.cmd {
            FastCmd::Run(a) => Cmd::Run(a),
            FastCmd::Exec(a) => Cmd::Exec(a),
        };
        Some(Cli { root: f.root, registry_config: f.registry_config, cmd: Some(cmd) })
    }
}

#[derive(Subcommand)]
pub(super) enum Cmd {
    /// Run a command in a new container, or a .rhai script
    Run(RunArgs),
    /// Create a new container
    Create(RunArgs),
    /// Start stopped containers
    Start(StartArgs),
    /// Stop running containers
    Stop(StopArgs),
    /// Restart containers
    Restart(StopArgs),
    /// Kill running containers
    Kill(KillArgs),
    /// Pause all processes within containers
    Pause(Names),
    /// Unpause all processes within containers
    Unpause(Names),
    /// Block until containers stop, then print their exit codes
    Wait(Names),
    /// Remove containers
    Rm(RmArgs),
    /// Rename a container
    Rename { old: String, new: String },
    /// List containers
    Ps(PsArgs),
    /// Display detailed information on containers or images
    Inspect(InspectArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Display the running processes of a container (`top C aux`: the host's ps with those options, docker's ps_args)
    Top {
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Copy files between a container and the local filesystem
    Cp { src: String, dst: String },
    /// List a container's published ports
    Port { container: String },
    /// Display system-wide information (as `system info`)
    Info {
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Show the version information
    Version {
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Inspect changes to files or directories on a container's filesystem
    Diff { container: String },
    /// Export a container's filesystem as a tar archive
    Export(more::ExportArgs),
    /// Create a new image from a container's changes
    Commit(more::CommitArgs),
    /// Update the limits and restart policy of containers
    Update(more::UpdateArgs),
    /// Attach this terminal's input and output to a running container
    Attach(more::AttachArgs),
    /// Get events as they happen (and, with --since, those recorded)
    Events(more::EventsArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Checkpoints of running containers (CRIU)
    #[command(subcommand)]
    Checkpoint(CheckpointCmd),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// List images
    Images(ImagesArgs),
    /// Remove images
    Rmi(RmiArgs),
    /// Show the history of an image
    History {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(long)]
        format: Option<String>,
        image: String,
    },
    /// Import a filesystem tarball as an image
    Import(ImportArgs),
    /// Create a tag TARGET that refers to SOURCE
    Tag { source: String, target: String },
    /// Build an image from a Dockerfile
    Build(BuildArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PullArgs),
    /// Log in to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout { server: String },
    /// Search a registry's repositories
    Search(SearchArgs),
    /// Save images to a tar archive (docker-archive, or --format oci)
    Save(SaveArgs),
    /// Load images from a tar archive or standard input
    Load(LoadArgs),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Manage services: replicas behind one virtual IP
    #[command(subcommand)]
    Service(service::ServiceCmd),
    /// Manage stacks: compose files deployed as services
    #[command(subcommand)]
    Stack(service::StackCmd),
    /// Live resource use of containers: CPU, memory, network, block I/O, pids
    Stats {
        /// Print once and exit
        #[arg(long)]
        no_stream: bool,
        #[arg(long)]
        format: Option<String>,
        containers: Vec<String>,
    },
    /// Engine-wide information and housekeeping
    #[command(subcommand)]
    System(SystemCmd),
    /// Interactive Rhai session
    Repl,
    /// Run .rhai test files
    Test(TestArgs),
    /// Serve the Docker Engine API (for the docker CLI, Compose and SDKs)
    Serve(ServeArgs),
    /// Hosts for multi-host labs on this machine (network namespaces, each with its own root)
    #[command(subcommand)]
    Lab(super::lab::LabCmd),
    /// Swarm mode: many hosts as one (cluster state in etcd)
    #[command(subcommand)]
    Swarm(super::swarm::SwarmCmd),
    /// The swarm's nodes
    #[command(subcommand)]
    Node(super::swarm::NodeCmd),
    #[command(hide = true)]
    Monitor { id: String },
}

#[derive(Args)]
pub(super) struct ServeArgs {
    /// unix:///PATH (default unix://$BERTH_RUN/docker.sock) or tcp://ADDRESS:PORT
    pub(super) address: Option<String>,
    /// Exit after this many seconds without a request and with no connection open (0 = never)
    #[arg(short, long, default_value_t = 0)]
    pub(super) time: u64,
    /// Require clients to show a certificate signed by --tlscacert (mutual TLS)
    #[arg(long)]
    pub(super) tlsverify: bool,
    #[arg(long, value_name = "FILE")]
    pub(super) tlscacert: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub(super) tlscert: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub(super) tlskey: Option<PathBuf>,
    /// Allow plain TCP without TLS (anyone who reaches the port can run containers as root)
    #[arg(long)]
    pub(super) insecure: bool,
}

#[derive(Subcommand)]
pub(super) enum VolumeCmd {
    /// Create a volume (a generated name when none is given)
    Create {
        #[arg(long)]
        label: Vec<String>,
        name: Option<String>,
    },
    #[command(alias = "list")]
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(long)]
        format: Option<String>,
    },
    Inspect {
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes (refused while a container uses them)
    #[command(alias = "remove")]
    Rm {
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove unused anonymous volumes (-a: every unused volume)
    Prune {
        #[arg(short = 'a', long)]
        all: bool,
        #[arg(short = 'f', long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum SystemCmd {
    /// What berth runs on and what it holds
    Info {
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Disk used by images, containers, volumes and the build cache
    Df {
        #[arg(short, long)]
        verbose: bool,
        #[arg(long)]
        format: Option<String>,
    },
    /// Remove stopped containers, unused networks, dangling images (-a: all
    /// unused images and the build cache), and with --volumes unused
    /// anonymous volumes
    Prune {
        #[arg(short = 'a', long)]
        all: bool,
        #[arg(long)]
        volumes: bool,
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Remove everything this root holds: containers (running ones too),
    /// services, stacks, every network (the default one too), volumes,
    /// images and the build cache
    Reset {
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Look for leftovers: links, nftables rules, mounts, directories and
    /// processes the store no longer accounts for
    Check {
        /// Remove what is found
        #[arg(long)]
        repair: bool,
        /// Also count (and with --repair remove) what roots that no longer
        /// exist left behind; without it those are only noted
        #[arg(long)]
        all_roots: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum ContainerCmd {
    #[command(alias = "list")]
    Ls(PsArgs),
    Run(RunArgs),
    Create(RunArgs),
    Start(StartArgs),
    Stop(StopArgs),
    Restart(StopArgs),
    Kill(KillArgs),
    Pause(Names),
    Unpause(Names),
    Wait(Names),
    #[command(alias = "remove")]
    Rm(RmArgs),
    Rename { old: String, new: String },
    Inspect(InspectArgs),
    Logs(LogsArgs),
    Exec(ExecArgs),
    Top {
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    Cp { src: String, dst: String },
    /// Remove all stopped containers
    Prune(more::PruneArgs),
    Diff { container: String },
    Export(more::ExportArgs),
    Commit(more::CommitArgs),
    Update(more::UpdateArgs),
    Attach(more::AttachArgs),
    Port { container: String },
    /// Checkpoint a running container (CRIU), as podman's
    Checkpoint(ContainerCheckpointArgs),
    /// Restore a container from a checkpoint or an exported archive
    Restore(ContainerRestoreArgs),
    /// Move a running container to another swarm node
    Migrate { container: String, node: String },
}

#[derive(Subcommand)]
pub(super) enum CheckpointCmd {
    /// Checkpoint a running container
    Create(CheckpointCreateArgs),
    /// List a container's checkpoints
    #[command(alias = "list")]
    Ls { container: String },
    /// Remove a checkpoint
    #[command(alias = "remove")]
    Rm { container: String, checkpoint: String },
}

#[derive(Args)]
pub(super) struct CheckpointCreateArgs {
    /// Leave the container running after the checkpoint
    #[arg(long)]
    pub(super) leave_running: bool,
    /// Keep established TCP connections
    #[arg(long)]
    pub(super) tcp_established: bool,
    /// Also write the checkpoint to this archive (tar.zst)
    #[arg(long)]
    pub(super) export: Option<PathBuf>,
    pub(super) container: String,
    /// Its name (default: checkpoint-TIMESTAMP)
    pub(super) checkpoint: Option<String>,
}

#[derive(Args)]
pub(super) struct ContainerCheckpointArgs {
    /// Write the checkpoint to this archive (tar.zst)
    #[arg(short = 'e', long)]
    pub(super) export: Option<PathBuf>,
    /// Leave the container running after the checkpoint
    #[arg(short = 'R', long)]
    pub(super) leave_running: bool,
    /// Keep established TCP connections
    #[arg(long)]
    pub(super) tcp_established: bool,
    /// The checkpoint's name (default: checkpoint-TIMESTAMP)
    #[arg(long = "checkpoint")]
    pub(super) name: Option<String>,
    pub(super) container: String,
}

#[derive(Args)]
pub(super) struct ContainerRestoreArgs {
    /// Restore a new container from this archive (`checkpoint --export`)
    #[arg(short = 'i', long = "import")]
    pub(super) import: Option<PathBuf>,
    /// The restored container's name (with --import)
    #[arg(short = 'n', long)]
    pub(super) name: Option<String>,
    /// The checkpoint to restore (without --import; default: the latest)
    #[arg(long)]
    pub(super) checkpoint: Option<String>,
    /// The stopped container to restore (without --import)
    pub(super) container: Option<String>,
}

#[derive(Subcommand)]
pub(super) enum ImageCmd {
    #[command(alias = "list")]
    Ls(ImagesArgs),
    #[command(alias = "remove")]
    Rm(RmiArgs),
    Inspect(InspectArgs),
    Import(ImportArgs),
    History {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(long)]
        format: Option<String>,
        image: String,
    },
    Tag { source: String, target: String },
    Save(SaveArgs),
    Load(LoadArgs),
    Pull(PullArgs),
    Push(PullArgs),
    /// Remove unused images
    Prune {
        /// Remove every image no container uses, not only untagged ones
        #[arg(short = 'a', long)]
        all: bool,
        /// Do not ask for confirmation
        #[arg(short = 'f', long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum NetworkCmd {
    /// Create a bridge network, or an overlay across a swarm's nodes
    Create {
        #[arg(long)]
        subnet: Option<String>,
        #[arg(long)]
        gateway: Option<String>,
        /// bridge, or overlay (on a swarm manager)
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// An overlay that plain containers (not only services) may join
        #[arg(long)]
        attachable: bool,
        /// Driver options: mtu=N (com.docker.network.driver.mtu=N),
        /// vxlan port with com.docker.network.driver.overlay.vxlan_port=N
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        #[arg(long)]
        label: Vec<String>,
        name: String,
    },
    #[command(alias = "list")]
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(long)]
        format: Option<String>,
    },
    #[command(alias = "remove")]
    Rm {
        /// Do not fail for a network that does not exist
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    Inspect {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Connect a container to a network
    Connect {
        #[arg(long)]
        ip: Option<String>,
        #[arg(long)]
        alias: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Do not fail when the container is not connected to it
        #[arg(short = 'f', long)]
        force: bool,
        network: String,
        container: String,
    },
    /// Emulate a slow or lossy link for what a container sends on a network
    /// (no option: show the current setting)
    Impair {
        /// Added latency, like 50ms
        #[arg(long)]
        delay: Option<String>,
        /// Random variation of the latency, like 5ms
        #[arg(long)]
        jitter: Option<String>,
        /// Percent of packets dropped, like 1.5
        #[arg(long)]
        loss: Option<String>,
        /// Bandwidth, like 10mbit
        #[arg(long)]
        rate: Option<String>,
        /// Remove every impairment
        #[arg(long, conflicts_with_all = ["delay", "jitter", "loss", "rate"])]
        clear: bool,
        network: String,
        container: String,
    },
    /// Draw the topology: networks, containers, addresses, published ports
    Graph {
        /// dot (default), mermaid or svg
        #[arg(long, default_value = "dot")]
        format: String,
    },
    /// Remove every network no container uses
    Prune {
        #[arg(short = 'f', long)]
        force: bool,
    },
}

#[derive(Args)]
pub(super) struct BuildArgs {
    #[arg(short = 't', long)]
    pub(super) tag: Option<String>,
    #[arg(short = 'f', long)]
    pub(super) file: Option<PathBuf>,
    #[arg(long = "build-arg")]
    pub(super) build_arg: Vec<String>,
    #[arg(long)]
    pub(super) target: Option<String>,
    #[arg(long = "no-cache")]
    pub(super) no_cache: bool,
    /// Pull the FROM images even when they are here
    #[arg(long)]
    pub(super) pull: bool,
    #[arg(short = 'q', long)]
    pub(super) quiet: bool,
    pub(super) context: PathBuf,
}

#[derive(Args)]
pub(super) struct PullArgs {
    #[arg(short = 'q', long)]
    pub(super) quiet: bool,
    pub(super) image: String,
}

#[derive(Args)]
pub(super) struct LoginArgs {
    #[arg(short = 'u', long)]
    pub(super) username: String,
    #[arg(short = 'p', long)]
    pub(super) password: Option<String>,
    #[arg(long = "password-stdin")]
    pub(super) password_stdin: bool,
    pub(super) server: String,
}

#[derive(Args)]
pub(super) struct SearchArgs {
    /// Registry to search (default: the one in BERTH_REGISTRY, else Docker Hub)
    #[arg(long)]
    pub(super) registry: Option<String>,
    pub(super) term: String,
}

#[derive(Args)]
pub(super) struct SaveArgs {
    /// Write to a file instead of standard output
    #[arg(short = 'o', long)]
    pub(super) output: Option<String>,
    /// docker (default) or oci
    #[arg(long, default_value = "docker")]
    pub(super) format: String,
    #[arg(required = true)]
    pub(super) images: Vec<String>,
}

#[derive(Args)]
pub(super) struct LoadArgs {
    /// Read from a file instead of standard input
    #[arg(short = 'i', long)]
    pub(super) input: Option<String>,
    #[arg(short = 'q', long)]
    pub(super) quiet: bool,
}

#[derive(Args, Clone)]
pub(super) struct RunArgs {
    #[arg(short = 'd', long)]
    pub(super) detach: bool,
    /// Mount a volume: NAME:/DST, /HOST/PATH:/DST or /DST, with :ro for read-only
    #[arg(short = 'v', long)]
    pub(super) volume: Vec<String>,
    /// Mount every volume of container C at the same places (C:ro for read-only)
    #[arg(long)]
    pub(super) volumes_from: Vec<String>,
    #[arg(short = 'i', long)]
    pub(super) interactive: bool,
    #[arg(short = 't', long)]
    pub(super) tty: bool,
    #[arg(long)]
    pub(super) rm: bool,
    #[arg(long)]
    pub(super) name: Option<String>,
    #[arg(short = 'e', long = "env")]
    pub(super) env: Vec<String>,
    #[arg(short = 'w', long = "workdir")]
    pub(super) workdir: Option<String>,
    #[arg(long)]
    pub(super) hostname: Option<String>,
    #[arg(short = 'u', long)]
    pub(super) user: Option<String>,
    #[arg(long)]
    pub(super) entrypoint: Option<String>,
    #[arg(short = 'l', long = "label")]
    pub(super) label: Vec<String>,
    #[arg(short = 'm', long)]
    pub(super) memory: Option<String>,
    #[arg(long)]
    pub(super) cpus: Option<f64>,
    #[arg(long = "pids-limit")]
    pub(super) pids_limit: Option<i64>,
    /// Give a host device: HOST[:CONTAINER[:PERMS]] (PERMS of rwm).
    #[arg(long = "device")]
    pub(super) device: Vec<String>,
    /// The cgroup to put the container's cgroup under.
    #[arg(long = "cgroup-parent")]
    pub(super) cgroup_parent: Option<String>,
    #[arg(long, default_value = "no")]
    pub(super) restart: String,
    #[arg(long = "cap-add")]
    pub(super) cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    pub(super) cap_drop: Vec<String>,
    #[arg(long = "sysctl")]
    pub(super) sysctl: Vec<String>,
    #[arg(long)]
    pub(super) privileged: bool,
    #[arg(long = "network", alias = "net")]
    pub(super) network: Option<String>,
    #[arg(long)]
    pub(super) ip: Option<String>,
    #[arg(long = "network-alias", alias = "net-alias")]
    pub(super) network_alias: Vec<String>,
    /// Publish a port: [IP:][HOST:]CONTAINER[/udp]
    #[arg(short = 'p', long = "publish")]
    pub(super) publish: Vec<String>,
    /// Publish every EXPOSEd port to a free host port
    #[arg(short = 'P', long = "publish-all")]
    pub(super) publish_all: bool,
    #[arg(long = "stop-signal")]
    pub(super) stop_signal: Option<String>,
    #[arg(long = "stop-timeout")]
    pub(super) stop_timeout: Option<u64>,
    /// Log option of the json-file driver: max-size=10m, max-file=3 (default 20m and 5; max-size=-1 keeps all)
    #[arg(long = "log-opt")]
    pub(super) log_opt: Vec<String>,
    /// Command run (by /bin/sh -c) to check health
    #[arg(long = "health-cmd")]
    pub(super) health_cmd: Option<String>,
    /// Time between checks (e.g. 1s, 500ms; default 30s)
    #[arg(long = "health-interval")]
    pub(super) health_interval: Option<String>,
    #[arg(long = "health-timeout")]
    pub(super) health_timeout: Option<String>,
    #[arg(long = "health-start-period")]
    pub(super) health_start_period: Option<String>,
    /// Consecutive failures that make the container unhealthy (default 3)
    #[arg(long = "health-retries")]
    pub(super) health_retries: Option<u32>,
    /// Disable the image's HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub(super) no_healthcheck: bool,
    /// Mount the root filesystem read-only (/dev, /proc, volumes and tmpfs stay writable)
    #[arg(long = "read-only")]
    pub(super) read_only: bool,
    /// Mount a tmpfs: /PATH[:OPTS] such as /run:size=64m,mode=1777
    #[arg(long)]
    pub(super) tmpfs: Vec<String>,
    /// Size of /dev/shm (default 64m)
    #[arg(long = "shm-size")]
    pub(super) shm_size: Option<String>,
    /// A line of /etc/hosts: NAME:IP
    #[arg(long = "add-host")]
    pub(super) add_host: Vec<String>,
    /// Name server for /etc/resolv.conf (replaces the host's)
    #[arg(long)]
    pub(super) dns: Vec<String>,
    /// Search domain for /etc/resolv.conf (. for none)
    #[arg(long = "dns-search")]
    pub(super) dns_search: Vec<String>,
    /// Resolver option for /etc/resolv.conf, such as ndots:2
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub(super) dns_option: Vec<String>,
    /// Resource limit: NAME=SOFT[:HARD] such as nofile=1024:2048 (at most the host's hard limit)
    #[arg(long)]
    pub(super) ulimit: Vec<String>,
    /// Image, then the command and its arguments
    #[arg(required = true, trailing_var_arg = true, num_args = 1..)]
    pub(super) image_and_cmd: Vec<String>,
}

#[derive(Args)]
pub(super) struct StartArgs {
    #[arg(short = 'i', long)]
    pub(super) interactive: bool,
    /// Restore from this checkpoint (`checkpoint create`)
    #[arg(long)]
    pub(super) checkpoint: Option<String>,
    #[arg(short = 'a', long)]
    pub(super) attach: bool,
    #[arg(required = true)]
    pub(super) containers: Vec<String>,
}

#[derive(Args)]
pub(super) struct StopArgs {
    #[arg(short = 't', long = "time", alias = "timeout")]
    pub(super) time: Option<u64>,
    #[arg(required = true)]
    pub(super) containers: Vec<String>,
}

#[derive(Args)]
pub(super) struct KillArgs {
    #[arg(short = 's', long, default_value = "KILL")]
    pub(super) signal: String,
    #[arg(required = true)]
    pub(super) containers: Vec<String>,
}

#[derive(Args)]
pub(super) struct Names {
    #[arg(required = true)]
    pub(super) containers: Vec<String>,
}

#[derive(Args)]
pub(super) struct RmArgs {
    #[arg(short = 'f', long)]
    pub(super) force: bool,
    #[arg(short = 'v', long)]
    pub(super) volumes: bool,
    pub(super) containers: Vec<String>,
}

#[derive(Args)]
pub(super) struct PsArgs {
    #[arg(short = 'a', long)]
    pub(super) all: bool,
    /// label=KEY[=VALUE], name=TEXT, status=STATE, id=PREFIX (repeatable; all must hold)
    #[arg(short = 'f', long = "filter")]
    pub(super) filter: Vec<String>,
    #[arg(short = 'q', long)]
    pub(super) quiet: bool,
    #[arg(long)]
    pub(super) format: Option<String>,
}

#[derive(Args)]
pub(super) struct ImagesArgs {
    /// Show the intermediate images of builds too
    #[arg(short = 'a', long)]
    pub(super) all: bool,
    #[arg(short = 'q', long)]
    pub(super) quiet: bool,
    #[arg(long)]
    pub(super) format: Option<String>,
}

#[derive(Args)]
pub(super) struct RmiArgs {
    #[arg(short = 'f', long)]
    pub(super) force: bool,
    pub(super) images: Vec<String>,
}

#[derive(Args)]
pub(super) struct InspectArgs {
    #[arg(long, short = 'f')]
    pub(super) format: Option<String>,
    #[arg(required = true)]
    pub(super) names: Vec<String>,
}

#[derive(Args)]
pub(super) struct LogsArgs {
    #[arg(short = 'f', long)]
    pub(super) follow: bool,
    #[arg(short = 't', long)]
    pub(super) timestamps: bool,
    pub(super) container: String,
}

#[derive(Args)]
pub(super) struct ExecArgs {
    #[arg(short = 'i', long)]
    pub(super) interactive: bool,
    #[arg(short = 't', long)]
    pub(super) tty: bool,
    #[arg(short = 'd', long)]
    pub(super) detach: bool,
    #[arg(short = 'e', long = "env")]
    pub(super) env: Vec<String>,
    #[arg(short = 'w', long = "workdir")]
    pub(super) workdir: Option<String>,
    #[arg(short = 'u', long)]
    pub(super) user: Option<String>,
    #[arg(long)]
    pub(super) privileged: bool,
    #[arg(required = true, trailing_var_arg = true, num_args = 2..)]
    pub(super) container_and_cmd: Vec<String>,
}

#[derive(Args)]
pub(super) struct ImportArgs {
    /// Tarball path, or - for standard input
    pub(super) file: String,
    pub(super) reference: Option<String>,
    #[arg(short = 'c', long = "change")]
    pub(super) change: Vec<String>,
}

#[derive(Args)]
pub(super) struct TestArgs {
    /// Test files, or directories searched for *.rhai (default: tests/)
    pub(super) paths: Vec<String>,
    /// Files run at once (each gets its own TEST_ID for names)
    #[arg(long, default_value_t = 1)]
    pub(super) jobs: usize,
    /// Run only tests whose "FILE › NAME" contains this text
    #[arg(long)]
    pub(super) filter: Option<String>,
    /// Also write a JUnit XML report to this file
    #[arg(long)]
    pub(super) junit: Option<String>,
    /// Keep a failed test's containers, networks and volumes for inspection
    #[arg(long = "keep-on-failure")]
    pub(super) keep_on_failure: bool,
    /// Remove what a --keep-on-failure run kept (the run id it printed)
    #[arg(long, value_name = "RUN_ID")]
    pub(super) clean: Option<String>,
}

impl RunArgs {
    pub(super) fn to_spec(&self) -> anyhow::Result<RunSpec> {
        let mut it = self.image_and_cmd.iter();
        let image = it.next().cloned().context("an image name is required")?;
        let cmd: Vec<String> = it.cloned().collect();
        let env = self.env.iter().map(|e| if e.contains('=') { e.clone() } else { format!("{e}={}", std::env::var(e).unwrap_or_default()) }).collect();
        Ok(RunSpec {
            image,
            name: self.name.clone(),
            cmd: (!cmd.is_empty()).then_some(cmd),
            entrypoint: self.entrypoint.as_ref().map(|e| if e.is_empty() { vec![] } else { vec![e.clone()] }),
            env,
            workdir: self.workdir.clone(),
            hostname: self.hostname.clone(),
            user: self.user.clone(),
            labels: parse_kv(&self.label.iter().map(|l| if l.contains('=') { l.clone() } else { format!("{l}=") }).collect::<Vec<_>>(), "label")?,
            tty: self.tty,
            interactive: self.interactive,
            rm: self.rm,
            memory: self.memory.as_deref().map(parse_bytes).transpose().map_err(anyhow::Error::msg)?,
            cpus: self.cpus,
            pids_limit: self.pids_limit,
            restart: RestartPolicy::parse(&self.restart)?,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            sysctls: parse_kv(&self.sysctl, "sysctl")?,
            privileged: self.privileged,
            network: self.network.clone(),
            ip: self.ip.clone(),
            aliases: self.network_alias.clone(),
            publish: self.publish.clone(),
            publish_all: self.publish_all,
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            volumes: self.volume.clone(),
            volumes_from: self.volumes_from.clone(),
            health: self.health()?,
            devices: self.device.clone(),
            cgroup_parent: self.cgroup_parent.clone(),
            log_opts: parse_kv(&self.log_opt, "--log-opt")?,
            read_only: self.read_only,
            tmpfs: self.tmpfs.clone(),
            shm_size: self.shm_size.as_deref().map(crate::container::options::shm_size).transpose()?,
            extra_hosts: self.add_host.clone(),
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            dns_options: self.dns_option.clone(),
            ulimits: self.ulimit.clone(),
        })
    }

    /// `--health-*` as a check of the container's own; timing flags alone
    /// adjust the image's check.
    fn health(&self) -> anyhow::Result<Option<crate::container::health::HealthSpec>> {
        use crate::container::health::HealthSpec;
        if self.no_healthcheck {
            if self.health_cmd.is_some() {
                bail!("--no-healthcheck conflicts with --health-cmd");
            }
            return Ok(Some(HealthSpec { test: vec!["NONE".into()], ..Default::default() }));
        }
        let timing = self.health_interval.is_some() || self.health_timeout.is_some() || self.health_start_period.is_some() || self.health_retries.is_some();
        if self.health_cmd.is_none() && !timing {
            return Ok(None);
        }
        let ms = |flag: &str, v: &Option<String>| -> anyhow::Result<u64> {
            match v {
                None => Ok(0),
                Some(t) => crate::parse::duration_ms(t).map_err(|e| anyhow::anyhow!("{flag}: {e}")),
            }
        };
        Ok(Some(HealthSpec {
            // Empty test: the image's command with these timings (the engine fills it in).
            test: self.health_cmd.as_ref().map(|c| vec!["CMD-SHELL".to_string(), c.clone()]).unwrap_or_default(),
            interval_ms: ms("--health-interval", &self.health_interval)?,
            timeout_ms: ms("--health-timeout", &self.health_timeout)?,
            start_period_ms: ms("--health-start-period", &self.health_start_period)?,
            retries: self.health_retries.unwrap_or(0),
        }))
    }
}

#[cfg(test)]
mod fast_tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_hot_commands_parse_alone_as_the_full_parser_parses_them() {
        let line = "berth --root /tmp/r run --rm -e A=1 -p 8080:80 --network none --name x busybox sh -c true";
        let (fast, full) = (FastCli::parse_hot(&argv(line)).expect("run is hot"), Cli::try_parse_from(argv(line)).unwrap());
        let (Some(Cmd::Run(a)), Some(Cmd::Run(b))) = (&fast.cmd, &full.cmd) else { panic!("both parse run") };
        assert_eq!((a.rm, &a.env, &a.publish, &a.network, &a.name, &a.image_and_cmd), (b.rm, &b.env, &b.publish, &b.network, &b.name, &b.image_and_cmd));
        assert_eq!(fast.root, full.root);
        let line = "berth run --read-only --tmpfs /run:size=1m --tmpfs /tmp --shm-size 128m --add-host db:10.0.0.5 --dns 10.0.0.2 --dns-search lab.test --dns-option ndots:2 --ulimit nofile=512:1024 busybox true";
        let (Some(Cmd::Run(a)), Some(Cmd::Run(b))) = (FastCli::parse_hot(&argv(line)).expect("run is hot").cmd, Cli::try_parse_from(argv(line)).unwrap().cmd) else { panic!("both parse run") };
        let opts = |r: &RunArgs| (r.read_only, r.tmpfs.clone(), r.shm_size.clone(), r.add_host.clone(), r.dns.clone(), r.dns_search.clone(), r.dns_option.clone(), r.ulimit.clone());
        assert_eq!(opts(&a), opts(&b));
        let s = a.to_spec().unwrap();
        assert!(s.read_only);
        assert_eq!((s.tmpfs, s.shm_size, s.extra_hosts), (vec!["/run:size=1m".to_string(), "/tmp".into()], Some(128 << 20), vec!["db:10.0.0.5".to_string()]));
        assert_eq!((s.dns, s.dns_search, s.dns_options, s.ulimits), (vec!["10.0.0.2".to_string()], vec!["lab.test".to_string()], vec!["ndots:2".to_string()], vec!["nofile=512:1024".to_string()]));
        let line = "berth run --shm-size lots busybox true";
        let Some(Cmd::Run(a)) = FastCli::parse_hot(&argv(line)).unwrap().cmd else { panic!("run") };
        assert!(a.to_spec().unwrap_err().to_string().contains("--shm-size: invalid size \"lots\""));
        let line = "berth exec -it -u 1000 c1 ls -l";
        let (Some(Cmd::Exec(a)), Some(Cmd::Exec(b))) = (FastCli::parse_hot(&argv(line)).unwrap().cmd, Cli::try_parse_from(argv(line)).unwrap().cmd) else { panic!("both parse exec") };
        assert_eq!((a.interactive, a.tty, &a.user, &a.container_and_cmd), (b.interactive, b.tty, &b.user, &b.container_and_cmd));
        // Help, other commands and mistakes go to the full parser.
        for other in ["berth run --help", "berth ps", "berth run --no-such-flag busybox", "berth --version"] {
            assert!(FastCli::parse_hot(&argv(other)).is_none(), "{other}");
        }
    }
}
