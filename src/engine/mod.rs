//! `Engine`: the only door into the core. Fronts build request structs,
//! call one method and render the typed result.

use std::path::PathBuf;
use std::sync::Mutex;

use crate::container::{Container, ContainerError};
use crate::image::{self, ImageError};
use crate::network;
use crate::runtime;
use crate::store::{self, Db, Paths, StoreError};

mod build;
mod changes;
mod checkpoints;
mod migrate;
pub use checkpoints::{CheckpointOpts, Meta as CheckpointMeta};
mod containers;
mod images;
mod networks;
mod overlays;
pub use overlays::OverlayOpts;
mod helper;
mod hosts;
mod services;
mod sessions;
mod stacks;
pub mod supervisor;
pub mod agent;
mod swarm;
pub use swarm::{NodeContainer, NodeInfo, TaskInfo, SWARM_SERVICE_LABEL};
mod system;
mod volumes;

pub use build::BuildContext;
pub use containers::{PathStat, ProcInfo, split_dir_entry};
pub use sessions::{AttachEvent, AttachInput, AttachStream, ExecSession, ExecTerminal, PendingAttach, Waited};

#[derive(thiserror::Error, Debug)]
pub enum EngineError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Network(#[from] network::NetworkError),
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
    #[error(transparent)]
    Service(#[from] crate::service::ServiceError),
    /// A system call or file operation that failed, with what it was for.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// A step that failed, with what the step was for and its cause.
    #[error("{context}: {source}")]
    Chain { context: String, source: Box<dyn std::error::Error + Send + Sync> },
    /// A start that failed before the user's command ran: docker's
    /// 125 / 126 / 127.
    #[error("{msg}")]
    Start { code: i32, msg: String },
    #[error("{0}")]
    Other(String),
}

impl EngineError {
    /// The object named does not exist (no such container, network, ...).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            EngineError::Container(ContainerError::NotFound(_))
                | EngineError::Network(network::NetworkError::NotFound(_))
                | EngineError::Volume(crate::volume::VolumeError::NotFound(_))
                | EngineError::Image(ImageError::NotFound(_))
        )
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Start { code, .. } => *code,
            _ => runtime::EXIT_ENGINE,
        }
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// The network layer knows containers by id; users know them by name.
fn named(e: network::NetworkError, name: &str) -> network::NetworkError {
    match e {
        network::NetworkError::NotConnected(_, net) => network::NetworkError::NotConnected(name.to_string(), net),
        e => e,
    }
}

fn other(context: &str) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io { context: context.to_string(), source }
}

/// Wraps any error with what the failing step was for.
fn chain<E: std::error::Error + Send + Sync + 'static>(context: impl Into<String>) -> impl FnOnce(E) -> EngineError {
    let context = context.into();
    move |e| EngineError::Chain { context, source: Box::new(e) }
}

/// How a client follows a container it starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Attach {
    /// Print the id and leave it running.
    Detached,
    /// Relay this process's stdio (and terminal) until it exits.
    Stdio { stdin: bool, tty: bool },
    /// Collect stdout and stderr until it exits (scripts' run_once).
    Capture,
}

#[derive(Debug, Default, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

pub struct LogLine {
    pub stream: String,
    pub text: String,
    pub time: String,
}

pub struct Engine {
    pub(crate) paths: Paths,
    db: Mutex<Db>,
    /// docker-style config.json holding registry credentials.
    pub auth_file: PathBuf,
    /// This process exits soon after the containers it starts (see
    /// `short_lived`): their monitors may stay its children.
    short_lived: std::sync::atomic::AtomicBool,
}

impl Engine {
    pub fn open(root: Option<PathBuf>) -> Result<Engine> {
        let paths = Paths::from_env(root);
        store::ensure_dirs(&paths)?;
        let db = Db::open(&paths)?;
        image::sweep_tmp(&paths);
        let auth_file = std::env::var_os("BERTH_REGISTRY_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".berth/config.json")))
            .unwrap_or_else(|| paths.root.join("config.json"));
        Ok(Engine { paths, db: Mutex::new(db), auth_file, short_lived: Default::default() })
    }

    /// Says this process ends with the command it runs (the command line's
    /// `run` and `start`, not a script, the REPL or the API): the monitors
    /// it starts stay its children rather than daemonise, which saves them
    /// a fork. A monitor that exits first is a zombie only until we exit.
    pub fn short_lived(&self) {
        self.short_lived.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an event (`berth events`) about a container: its name and
    /// image, and its labels, as docker's attributes.
    pub(crate) fn container_event(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        crate::events::container(&self.paths, c, action, extra);
    }

    /// The recorded events (`berth events --since`), oldest first.
    pub fn events(&self, since: Option<f64>, until: Option<f64>, f: &crate::events::Filter) -> Vec<crate::events::Event> {
        crate::events::recorded(&self.paths, since, until, f)
    }

    /// Events as they happen, until `until` or until `each` says stop.
    pub fn follow_events(&self, until: Option<f64>, f: &crate::events::Filter, each: impl FnMut(&crate::events::Event) -> bool) {
        crate::events::follow(&self.paths, until, f, each)
    }

    /// `follow_events`, with `each` also called with None at every poll, so
    /// a follower can stop when its reader has gone though no event comes.
    pub fn follow_events_ticking(&self, until: Option<f64>, f: &crate::events::Filter, each: impl FnMut(Option<&crate::events::Event>) -> bool) {
        crate::events::follow_ticking(&self.paths, until, f, each)
    }

    /// Records an event about an image, network, volume or service.
    pub(crate) fn event(&self, typ: &str, action: &str, id: &str, attrs: &[(&str, &str)]) {
        crate::events::emit(&self.paths, typ, action, id, attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    }
}
