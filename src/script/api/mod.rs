//! The functions a script calls, one module per Rhai type (and one for the
//! global utilities). Each function is registered together with its help:
//! the signature, a one-line description and the details `help(name)`
//! prints travel in the function's metadata, where `help` reads them back.

pub mod container;
pub mod host;
pub mod swarm;
pub mod image;
pub mod network;
pub mod serve;
pub mod service;
pub mod stack;
pub mod system;
pub mod testing;
pub mod util;
pub mod volume;

use std::any::TypeId;
use std::collections::BTreeMap;
use std::sync::Arc;

use rhai::{FuncRegistration, RhaiNativeFunc, Variant};

use super::{Container, Created, Image, Names, Network, Service, Stack, Tracker, Volume};
use crate::container::RunSpec;
use crate::engine::Engine;

/// How a function is called, what it does and, for `help(name)`, its
/// options: registered with the function, so neither exists without the
/// other.
#[derive(Clone, Copy)]
pub struct Doc {
    /// `run(image, [opts]) -> Container`; a property has no parentheses:
    /// `name -> string`. It starts with the name the function is
    /// registered under, so the two cannot differ.
    pub sig: &'static str,
    pub doc: &'static str,
    pub more: &'static str,
}

/// A function's help: signature and one line.
pub const fn doc(sig: &'static str, doc: &'static str) -> Doc {
    Doc { sig, doc, more: "" }
}

impl Doc {
    /// The same, with details (options, an example) for `help(name)`.
    pub const fn more(self, more: &'static str) -> Doc {
        Doc { more, ..self }
    }

    /// The name the signature calls: `run` of `run(image, [opts])`, `id`
    /// of `id -> string`.
    pub fn name(&self) -> &'static str {
        let end = self.sig.find(['(', ' ']).unwrap_or(self.sig.len());
        &self.sig[..end]
    }

    /// As a Rhai doc comment: the signature, the line, then the details.
    pub fn comment(&self) -> String {
        let mut lines = vec![self.sig, self.doc];
        lines.extend(self.more.lines());
        lines.iter().map(|l| if l.is_empty() { "///".to_string() } else { format!("/// {l}") }).collect::<Vec<_>>().join("\n")
    }

    /// Registers `f` as (one overload of) the function the signature names.
    pub fn func<A: 'static, const N: usize, const X: bool, R: Variant + Clone, const F: bool>(
        &self,
        r: &mut rhai::Engine,
        f: impl RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
    ) {
        FuncRegistration::new(self.name()).with_comments([self.comment()]).register_into_engine(r, f);
    }

    /// Registers `f` as the getter of the property the signature names.
    pub fn get<A: 'static, const X: bool, R: Variant + Clone, const F: bool>(
        &self,
        r: &mut rhai::Engine,
        f: impl RhaiNativeFunc<A, 1, X, R, F> + Send + Sync + 'static,
    ) {
        FuncRegistration::new_getter(self.name()).with_comments([self.comment()]).register_into_engine(r, f);
    }
}

/// A host type as scripts see it: its Rust type, its name, what it is.
pub struct HostType {
    pub id: TypeId,
    pub name: &'static str,
    pub doc: &'static str,
}

/// The engine's object types, in the order `help()` names them.
pub fn host_types() -> [HostType; 9] {
    let t = |id, (name, doc): (&'static str, &'static str)| HostType { id, name, doc };
    [
        t(TypeId::of::<Container>(), container::TYPE),
        t(TypeId::of::<Image>(), image::TYPE),
        t(TypeId::of::<Network>(), network::TYPE),
        t(TypeId::of::<Volume>(), volume::TYPE),
        t(TypeId::of::<Service>(), service::TYPE),
        t(TypeId::of::<Stack>(), stack::TYPE),
        t(TypeId::of::<serve::ApiServer>(), serve::TYPE),
        t(TypeId::of::<host::Host>(), host::TYPE),
        t(TypeId::of::<swarm::Node>(), swarm::TYPE),
    ]
}

/// Registers the host types under their script names: first, so every
/// signature registered after names them.
pub fn register_types(r: &mut rhai::Engine) {
    r.register_type_with_name::<Container>(container::TYPE.0);
    r.register_type_with_name::<Image>(image::TYPE.0);
    r.register_type_with_name::<Network>(network::TYPE.0);
    r.register_type_with_name::<Volume>(volume::TYPE.0);
    r.register_type_with_name::<Service>(service::TYPE.0);
    r.register_type_with_name::<Stack>(stack::TYPE.0);
    r.register_type_with_name::<serve::ApiServer>(serve::TYPE.0);
    r.register_type_with_name::<host::Host>(host::TYPE.0);
    r.register_type_with_name::<swarm::Node>(swarm::TYPE.0);
}

/// What the registrations share: the engine, the script's name scope, and
/// under `berth test` the tracker that labels and notes what a test makes.
#[derive(Clone)]
pub struct Ctx {
    pub engine: Arc<Engine>,
    pub(super) names: Names,
    tracker: Option<Arc<dyn Tracker>>,
}

impl Ctx {
    pub fn new(engine: Arc<Engine>, tracker: Option<Arc<dyn Tracker>>) -> Ctx {
        let names = Names { scope: tracker.as_ref().and_then(|t| t.scope()), engine: engine.clone() };
        Ctx { engine, names, tracker }
    }

    /// The labels a tracked run adds to what it makes (none otherwise).
    pub fn extra(&self) -> BTreeMap<String, String> {
        self.tracker.as_ref().map(|t| t.labels()).unwrap_or_default()
    }

    pub fn label(&self, spec: &mut RunSpec) {
        spec.labels.extend(self.extra());
    }

    /// Tells the tracker, if any, that an object was made.
    pub fn note(&self, o: Created) {
        if let Some(t) = &self.tracker {
            t.created(o);
        }
    }
}
