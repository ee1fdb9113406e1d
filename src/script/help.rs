//! `help()`, `help("Type")` and `help("name")`, and the REPL's completion,
//! read from the engine's metadata: every berth function is registered
//! with its help (`api::Doc`), and the functions of the stdlib modules carry
//! theirs as doc comments in their Rhai source. So a function cannot exist
//! without its help, nor help without its function.

use std::any::TypeId;
use std::collections::BTreeSet;

use rhai::{Dynamic, EvalAltResult, Position};

use super::api::{self, doc};

/// One function, method or property. `owner` is "" for a global function,
/// a type name ("Container") for a member, or a module name ("lab").
#[derive(Clone, Debug)]
pub struct Entry {
    pub owner: String,
    pub name: String,
    /// How it is called: `run(image, [opts]) -> Container`; a property has
    /// no parentheses: `name -> string`.
    pub sig: String,
    pub doc: String,
    /// Options and details for `help("name")`; may be empty.
    pub more: String,
}

impl Entry {
    pub fn is_property(&self) -> bool {
        !self.sig.contains('(')
    }

    /// The type a call returns, from the signature (`-> Container`).
    pub fn returns(&self) -> Option<&str> {
        self.sig.rsplit_once("-> ").map(|(_, t)| t.trim())
    }

    /// An entry from a doc comment written as `api::Doc::comment` writes
    /// it: the signature, the one line, then the details. None when the
    /// comment does not have the first two.
    fn from_comment(owner: &str, name: &str, comment: &str) -> Option<Entry> {
        let mut lines = comment.lines().map(|l| {
            let l = l.trim_start().trim_start_matches("///");
            l.strip_prefix(' ').unwrap_or(l)
        });
        let sig = lines.next()?.trim();
        let doc = lines.next()?.trim();
        if sig.is_empty() || doc.is_empty() {
            return None;
        }
        let more = lines.collect::<Vec<_>>().join("\n").trim_end().to_string();
        Some(Entry { owner: owner.into(), name: name.into(), sig: sig.into(), doc: doc.into(), more })
    }
}

/// The map a command returns. It is a plain Map, so nothing is registered
/// for it: its keys are described here.
const RESULT: (&str, &str) = ("Result", "the map a command returns: #{ code, stdout, stderr } (c.exec, run_once)");
const RESULT_KEYS: &[(&str, &str)] = &[("code -> int", "the exit code"), ("stdout -> string", "what the command wrote on stdout"), ("stderr -> string", "what the command wrote on stderr")];

/// Names help describes that no berth registration carries: Rhai's own
/// print (a keyword), and the constant the test runner puts in scope.
const BUILTINS: &[(&str, &str)] = &[
    ("print(value)", "prints a value on its own line"),
    ("TEST_ID -> string", "under berth test: six hex digits unique to this file's run, for names that must not clash with files run alongside (--jobs)"),
];

/// A documented type or module: its name and what it is.
pub struct Topic {
    pub name: String,
    pub doc: String,
}

/// Everything help knows, read once from an engine.
pub struct Catalogue {
    pub topics: Vec<Topic>,
    pub entries: Vec<Entry>,
}

impl Catalogue {
    pub fn of(r: &rhai::Engine) -> Catalogue {
        let hosts = api::host_types();
        let mut topics: Vec<Topic> = hosts.iter().map(|h| Topic { name: h.name.into(), doc: h.doc.into() }).collect();
        topics.push(Topic { name: RESULT.0.into(), doc: RESULT.1.into() });
        let mut entries = berth_entries(r);
        let fixed = BUILTINS.iter().map(|(sig, line)| ("", doc(sig, line))).chain(RESULT_KEYS.iter().map(|(sig, line)| (RESULT.0, doc(sig, line))));
        entries.extend(fixed.filter_map(|(owner, d)| Entry::from_comment(owner, d.name(), &d.comment())));
        for (module, _) in super::stdlib::MODULES {
            let Some(ast) = compile_module(r, module) else { continue };
            let about = ast.doc().lines().map(|l| l.trim_start_matches("//!").trim()).collect::<Vec<_>>().join(" ");
            topics.push(Topic { name: module.to_string(), doc: format!("module: {about}") });
            entries.extend(module_entries(&ast, module));
        }
        // Properties first, as a type's state reads before its actions.
        entries.sort_by_cached_key(|e| (e.owner.clone(), !e.is_property(), e.name.to_lowercase()));
        entries.dedup_by(|a, b| a.owner == b.owner && a.name == b.name);
        Catalogue { topics, entries }
    }

    /// The global functions.
    pub fn globals(&self) -> Vec<&Entry> {
        self.members("")
    }

    /// The members of a type (or the functions of a module).
    pub fn members(&self, owner: &str) -> Vec<&Entry> {
        self.entries.iter().filter(|e| e.owner == owner).collect()
    }

    /// The documented types and modules.
    pub fn type_names(&self) -> Vec<&str> {
        self.topics.iter().map(|t| t.name.as_str()).collect()
    }
}

/// The owner a registered function belongs to: the host type of its first
/// parameter, or "" for a global function.
fn owner_of(param_types: &[TypeId]) -> &'static str {
    param_types.first().and_then(|t| api::host_types().into_iter().find(|h| h.id == *t)).map_or("", |h| h.name)
}

/// berth's registered functions with their help. Rhai's protocol
/// functions (to_string, operators) have none and are left out.
fn berth_entries(r: &rhai::Engine) -> Vec<Entry> {
    r.collect_fn_metadata(
        None,
        |f| {
            let m = f.metadata;
            let name = m.name.strip_prefix("get$").unwrap_or(&m.name);
            let comment = m.comments.iter().map(|c| c.as_str()).collect::<Vec<_>>().join("\n");
            Entry::from_comment(owner_of(&m.param_types), name, &comment)
        },
        false,
    )
}

fn compile_module(r: &rhai::Engine, module: &str) -> Option<rhai::AST> {
    super::stdlib::source(module).and_then(|src| r.compile(src).ok())
}

/// The documented public functions of a stdlib module; of several
/// overloads, the one with the doc comment.
fn module_entries(ast: &rhai::AST, module: &str) -> Vec<Entry> {
    ast.iter_functions()
        .filter(|f| f.access == rhai::FnAccess::Public)
        .filter_map(|f| Entry::from_comment(module, f.name, &f.comments.join("\n")))
        .collect()
}

/// Rhai's own types, by TypeId, with the names help and completion use.
fn std_type(t: TypeId) -> Option<&'static str> {
    let known = [
        (TypeId::of::<rhai::Map>(), "Map"),
        (TypeId::of::<rhai::Array>(), "Array"),
        (TypeId::of::<rhai::ImmutableString>(), "string"),
        (TypeId::of::<rhai::INT>(), "int"),
        (TypeId::of::<rhai::FLOAT>(), "float"),
        (TypeId::of::<bool>(), "bool"),
        (TypeId::of::<char>(), "char"),
        (TypeId::of::<rhai::Blob>(), "Blob"),
        (TypeId::of::<rhai::FnPtr>(), "Fn"),
    ];
    known.iter().find(|(id, _)| *id == t).map(|(_, n)| *n)
}

/// A value's type as help names it: "Container", "Map", "string", ...
pub fn type_of(r: &rhai::Engine, v: &Dynamic) -> String {
    std_type(v.type_id()).map(String::from).unwrap_or_else(|| r.map_type_name(v.type_name()).to_string())
}

/// One function or property the engine knows.
pub struct Known {
    /// The type of its first parameter ("Container", "Map", ...), if any.
    pub first: Option<String>,
    pub name: String,
    pub property: bool,
}

impl Known {
    /// The object type it is a member of, or "" for a global function.
    pub fn owner(&self) -> &str {
        self.first.as_deref().filter(|t| api::host_types().iter().any(|h| h.name == *t)).unwrap_or("")
    }
}

/// Every function and property the engine has: berth's own, and with
/// `with_stdlib` Rhai's standard library too. Operators, setters and
/// indexers are left out.
pub fn registered(r: &rhai::Engine, with_stdlib: bool) -> Vec<Known> {
    r.collect_fn_metadata(
        None,
        |f| {
            let m = f.metadata;
            let (name, property) = match m.name.strip_prefix("get$") {
                Some(p) => (p, true),
                None => (m.name.as_str(), false),
            };
            if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') || name.contains('$') || name == "to_debug" {
                return None;
            }
            // Host types are known by the names they were registered with,
            // which the parameter list carries ("_: &mut Container").
            let first = m.param_types.first().map(|t| match std_type(*t) {
                Some(n) => n.to_string(),
                None => {
                    let ty = m.params_info.first().map(|p| p.split_once(':').map_or(p.as_str(), |(_, t)| t)).unwrap_or("");
                    r.map_type_name(ty.trim().trim_start_matches("&mut ").trim()).to_string()
                }
            });
            Some(Known { first, name: name.to_string(), property })
        },
        with_stdlib,
    )
}

/// The public functions of a stdlib module (`lab`), read from its source.
pub fn module_functions(r: &rhai::Engine, module: &str) -> Vec<String> {
    let Some(ast) = compile_module(r, module) else { return vec![] };
    let names: BTreeSet<String> = ast.iter_functions().filter(|f| f.access == rhai::FnAccess::Public).map(|f| f.name.to_string()).collect();
    names.into_iter().collect()
}

fn table(entries: &[&Entry], prefix: &str) -> String {
    let w = entries.iter().map(|e| prefix.len() + e.sig.len()).max().unwrap_or(0);
    entries.iter().map(|e| format!("  {:<w$}   {}\n", format!("{prefix}{}", e.sig), e.doc)).collect()
}

fn is_module(name: &str) -> bool {
    super::stdlib::source(name).is_some()
}

/// The text of `help()`.
pub fn overview(c: &Catalogue) -> String {
    let mut s = String::from("Functions (help(\"run\") describes one; help(\"Container\") lists a type's members):\n");
    s += &table(&c.globals(), "");
    s += "Types: ";
    s += &c.type_names().into_iter().filter(|n| n.starts_with(char::is_uppercase)).collect::<Vec<_>>().join(", ");
    let modules: Vec<&str> = super::stdlib::MODULES.iter().map(|(m, _)| *m).collect();
    s += &format!("\nModules: {} (import \"lab\" as lab; then lab::chain(..)); help(\"lab\") lists a module's functions\n", modules.join(", "));
    s
}

/// The text of `help("Container")` (or a module's).
pub fn type_help(c: &Catalogue, name: &str) -> Option<String> {
    let t = c.topics.iter().find(|t| t.name == name)?;
    let mut s = format!("{}: {}\n", t.name, t.doc);
    let var = match name {
        _ if is_module(name) => String::new(),
        "Result" => "r.".to_string(),
        _ => format!("{}.", name[..1].to_lowercase()),
    };
    s += &table(&c.members(name), &var);
    Some(s)
}

fn entry_help(e: &Entry) -> String {
    let who = if e.owner.is_empty() || is_module(&e.owner) { String::new() } else { format!("{}.", e.owner) };
    let mut s = format!("{who}{}\n  {}\n", e.sig, e.doc);
    for l in e.more.lines() {
        s += &format!("  {l}\n");
    }
    s
}

/// The text of `help(name)`: a type, a module, a function, `Type.member`,
/// `module::function`, or a member name shared by several types.
pub fn describe(c: &Catalogue, name: &str) -> Result<String, String> {
    let name = name.trim();
    if let Some(s) = type_help(c, name) {
        return Ok(s);
    }
    let find = |owner: &str, n: &str| c.entries.iter().filter(|e| e.owner == owner && e.name == n).map(entry_help).collect::<String>();
    let s = find("", name);
    if !s.is_empty() {
        return Ok(s);
    }
    if let Some((owner, n)) = name.split_once("::").or_else(|| name.split_once('.')) {
        let s = find(owner, n);
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let s: String = c.entries.iter().filter(|e| e.name == name).map(entry_help).collect();
    if !s.is_empty() {
        return Ok(s);
    }
    // "CONTAINER" or "Lab": a type or module, spelt in another case.
    if let Some(s) = c.topics.iter().find(|t| t.name.eq_ignore_ascii_case(name)).and_then(|t| type_help(c, &t.name)) {
        return Ok(s);
    }
    Err(format!("help: nothing is called {name:?}; known types and modules: {}; help() lists the functions", c.type_names().join(", ")))
}

/// Registers `help()` and `help(name)` on a Rhai engine.
pub fn register(r: &mut rhai::Engine) {
    // The engine's metadata is complete only once every function is
    // registered: read it when help is called.
    let d = doc("help([name])", "this listing; help(\"Container\") for a type, help(\"run\") for one function")
        .more("Types and modules: Container, Image, Network, Volume, Service, Stack, Result, lab, wait.");
    d.func(r, |ctx: rhai::NativeCallContext| {
        print!("{}", overview(&Catalogue::of(ctx.engine())));
    });
    d.func(r, |ctx: rhai::NativeCallContext, name: &str| -> Result<(), Box<EvalAltResult>> {
        match describe(&Catalogue::of(ctx.engine()), name) {
            Ok(s) => {
                print!("{s}");
                Ok(())
            }
            Err(msg) => Err(Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(msg), Position::NONE))),
        }
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;

    /// The Rhai engine `berth run` and the REPL use, over a store in a
    /// fresh directory.
    fn engine(test: &str) -> rhai::Engine {
        let root = std::env::temp_dir().join(format!("berth-help-{test}-{}", std::process::id()));
        let e = crate::engine::Engine::open(Some(root.clone())).expect("a store in a temporary directory");
        let r = super::super::build(Arc::new(e), vec![]).0;
        // Only the metadata is read: the store can go at once.
        let _ = std::fs::remove_dir_all(&root);
        r
    }

    /// Rhai's protocol functions: they print and compare values, and are
    /// not called by name.
    fn protocol(name: &str) -> bool {
        !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') || name == "to_string"
    }

    #[test]
    fn every_registered_function_has_help() {
        let r = engine("registered");
        let mut comments: BTreeMap<(String, String), String> = BTreeMap::new();
        let all = r.collect_fn_metadata(None, |f| Some((f.metadata.name.to_string(), owner_of(&f.metadata.param_types), f.metadata.comments.join("\n"))), false);
        assert!(all.len() > 100, "berth's functions are found: {}", all.len());
        for (name, owner, comment) in all {
            if protocol(&name) {
                continue;
            }
            let short = name.strip_prefix("get$").unwrap_or(&name);
            let e = Entry::from_comment(owner, short, &comment).unwrap_or_else(|| panic!("{owner}.{name} has no help: {comment:?}"));
            assert!(e.sig.starts_with(short), "{owner}.{short}: signature {:?} names another function", e.sig);
            assert_eq!(e.is_property(), name.starts_with("get$"), "{owner}.{short}: a property's signature has no parentheses, a call's has");
            assert!(!e.doc.contains('\n'), "{owner}.{short}: the doc is one line");
            // Overloads share one help, so none of them hides another's.
            if let Some(c) = comments.insert((owner.to_string(), name.clone()), comment.clone()) {
                assert_eq!(c, comment, "{owner}.{name}: overloads with different help");
            }
        }
    }

    #[test]
    fn every_help_entry_names_a_function() {
        let r = engine("entries");
        let c = Catalogue::of(&r);
        let registered: BTreeSet<(String, String)> = registered(&r, false).into_iter().map(|k| (k.owner().to_string(), k.name)).collect();
        for e in &c.entries {
            if is_module(&e.owner) {
                assert!(module_functions(&r, &e.owner).contains(&e.name), "{}::{} is not in the module", e.owner, e.name);
                assert!(e.sig.starts_with(&format!("{}::{}(", e.owner, e.name)), "{}::{}: signature {:?}", e.owner, e.name, e.sig);
            } else if e.owner == RESULT.0 {
                assert!(RESULT_KEYS.iter().any(|(s, _)| s.starts_with(&e.name)));
            } else if !BUILTINS.iter().any(|(s, _)| s.starts_with(&e.name)) {
                assert!(registered.contains(&(e.owner.clone(), e.name.clone())), "{}.{} is described but not registered", e.owner, e.name);
            }
        }
        // A stdlib module's public functions are documented (one overload
        // is enough).
        for (m, _) in super::super::stdlib::MODULES {
            for f in module_functions(&r, m) {
                assert!(c.members(m).iter().any(|e| e.name == f), "{m}::{f} has no help: a /// comment with its signature and one line");
            }
        }
    }

    #[test]
    fn every_type_has_members() {
        let r = engine("types");
        let c = Catalogue::of(&r);
        assert_eq!(c.type_names(), ["Container", "Image", "Network", "Volume", "Service", "Stack", "ApiServer", "Host", "Node", "Result", "lab", "wait"]);
        for t in c.type_names() {
            assert!(!c.members(t).is_empty(), "{t} has no members");
        }
        assert!(c.members("Container").iter().any(|e| e.name == "exec" && !e.is_property()));
        assert!(c.members("Container").iter().any(|e| e.name == "state" && e.is_property()));
        assert_eq!(c.globals().iter().find(|e| e.name == "container").and_then(|e| e.returns()), Some("Container"));
        for f in ["test", "before_all", "skip", "print", "TEST_ID", "help", "sleep"] {
            assert!(c.globals().iter().any(|e| e.name == f), "{f} is described");
        }
    }

    #[test]
    fn describe_finds_types_functions_and_members() {
        let r = engine("describe");
        let c = Catalogue::of(&r);
        assert!(describe(&c, "Container").unwrap().contains("c.exec(cmd)"));
        assert!(describe(&c, "run").unwrap().contains("cmd: [\"sleep\""), "run's options");
        assert!(describe(&c, "lab").unwrap().contains("lab::chain(name, n, [opts])"));
        assert!(describe(&c, "lab::chain").unwrap().contains("lab::chain(name, n, [opts])"));
        assert!(describe(&c, "wait::port").unwrap().contains("Options: timeout"));
        assert!(describe(&c, "Network.impair").unwrap().contains("netem"));
        assert!(describe(&c, "remove").unwrap().matches("remove(").count() >= 4, "every type's remove");
        assert!(describe(&c, "volume").unwrap().starts_with("volume(name"), "the function, not the type");
        assert!(describe(&c, "Result").unwrap().contains("r.code -> int"));
        assert!(overview(&c).contains("run(image, [opts]) -> Container"));
        let err = describe(&c, "nosuch").unwrap_err();
        assert!(err.contains("Container, Image, Network, Volume"), "{err}");
    }
}
