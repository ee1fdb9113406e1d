//! The modules in `stdlib/`, compiled into the binary: `import "lab" as lab;`
//! works wherever the binary goes. Other import paths are script files,
//! resolved relative to the importing script as Rhai does by default.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use rhai::module_resolvers::FileModuleResolver;
use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

type SharedModule = Shared<Module>;

/// (import name, source) of every embedded module.
pub const MODULES: &[(&str, &str)] = &[("lab", include_str!("../../stdlib/lab.rhai")), ("wait", include_str!("../../stdlib/wait.rhai"))];

/// The source of an embedded module, for error messages and `help`.
pub fn source(name: &str) -> Option<&'static str> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

pub struct Resolver {
    files: FileModuleResolver,
    // Each module is compiled once per engine, on first import.
    loaded: Mutex<HashMap<String, SharedModule>>,
}

impl Resolver {
    pub fn new() -> Resolver {
        Resolver { files: FileModuleResolver::new(), loaded: Mutex::new(HashMap::new()) }
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Self::new()
    }
}

impl ModuleResolver for Resolver {
    fn resolve(&self, engine: &Engine, source: Option<&str>, path: &str, pos: Position) -> Result<SharedModule, Box<EvalAltResult>> {
        let Some(text) = self::source(path) else {
            return self.files.resolve(engine, source, path, pos);
        };
        if let Some(m) = self.loaded.lock().unwrap_or_else(PoisonError::into_inner).get(path) {
            return Ok(m.clone());
        }
        let mut ast = engine.compile(text).map_err(|e| Box::new(EvalAltResult::ErrorInModule(path.to_string(), Box::new(e.into()), pos)))?;
        ast.set_source(format!("stdlib/{path}.rhai"));
        let mut m = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(|e| Box::new(EvalAltResult::ErrorInModule(path.to_string(), e, pos)))?;
        m.build_index();
        let shared: SharedModule = m.into();
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner).insert(path.to_string(), shared.clone());
        Ok(shared)
    }
}
