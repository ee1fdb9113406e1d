//! `berth repl`: one Scope for the session; each line's functions and
//! imports are kept so later lines can use them; engine objects print as the
//! CLI's tables; Tab completes names; Ctrl-C stops a running statement.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, EvalAltResult, Map, ParseError, ParseErrorType, Scope, Stmt, AST};
use rustyline::completion::Completer;
use rustyline::config::{CompletionType, Config};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::{help, Container, Image, Network, Service, Volume};
use crate::render as table;
use crate::engine::Engine;

/// Values printed on one line up to this width; wider maps and arrays are
/// broken over several lines.
const WIDTH: usize = 100;

pub fn run(e: Engine) -> anyhow::Result<i32> {
    let engine = Arc::new(e);
    let (mut r, mut scope) = super::build(engine.clone(), vec![]);
    let stop = Interrupt::install()?;
    stop.attach(&mut r);
    // List completion (as bash): Tab completes what all candidates share,
    // a second Tab lists them.
    let config = Config::builder().completion_type(CompletionType::List).max_history_size(1000)?.build();
    let mut rl: Editor<Assist, DefaultHistory> = Editor::with_config(config)?;
    rl.set_helper(Some(Assist::new(engine.clone(), &r)));
    let hist = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".berth_history"));
    if let Some(h) = &hist {
        let _ = rl.load_history(h);
    }
    println!("berth REPL: Rhai with engine objects. Try `help()`, `images()`, `let c = run(\"busybox\", #{{ cmd: [\"sleep\", \"60\"] }})`.");
    println!("Tab completes, Ctrl-C stops a statement, Ctrl-D leaves.");
    let mut session = Session::default();
    let mut buf = String::new();
    loop {
        if let Some(h) = rl.helper_mut() {
            h.refresh(&r, &scope, &session);
        }
        let prompt = if buf.is_empty() { "berth> " } else { "  ...> " };
        let line = match rl.readline(prompt) {
            Ok(l) => l,
            // Ctrl-C drops the line being typed, and an unfinished block.
            Err(ReadlineError::Interrupted) => {
                buf.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(err) => return Err(err.into()),
        };
        if buf.is_empty() && line.trim().is_empty() {
            continue;
        }
        buf.push_str(&line);
        buf.push('\n');
        let ast = match r.compile_with_scope(&scope, &buf) {
            Ok(a) => a,
            Err(pe) if needs_more(&buf, &pe) => continue,
            Err(pe) => {
                let _ = rl.add_history_entry(buf.trim_end());
                let err: EvalAltResult = pe.into();
                eprintln!("{}", super::render_error("repl", &buf, &err));
                buf.clear();
                continue;
            }
        };
        let src = std::mem::take(&mut buf);
        let _ = rl.add_history_entry(src.trim_end());
        stop.arm();
        let result = r.eval_ast_with_scope::<Dynamic>(&mut scope, &session.program(&ast));
        let interrupted = stop.disarm();
        match result {
            Ok(v) if !interrupted => {
                session.keep(&ast);
                show(&engine, v);
            }
            other => {
                // Functions a line defines exist even when the line stopped early.
                session.keep_functions(&ast);
                match other {
                    Err(err) if !interrupted => eprintln!("{}", super::render_error("repl", &src, &err)),
                    // A sleep() woken by Ctrl-C may end the line without an error.
                    _ => eprintln!("interrupted"),
                }
            }
        }
    }
    if let Some(h) = &hist {
        let _ = rl.save_history(h);
    }
    Ok(0)
}

/// What earlier lines left for later ones besides the Scope: script
/// functions and module imports (Rhai forgets both after each evaluation).
#[derive(Default)]
struct Session {
    functions: AST,
    imports: Vec<Stmt>,
    /// alias -> module path, for completing `alias::`.
    modules: Vec<(String, String)>,
}

impl Session {
    /// The line's statements, run after the imports, with every function.
    fn program(&self, line: &AST) -> AST {
        // Modules are cached by the resolver: importing again is cheap.
        let prelude = AST::new(self.imports.iter().cloned(), rhai::Module::new());
        prelude.merge(&self.functions).merge(line)
    }

    fn keep_functions(&mut self, line: &AST) {
        self.functions = self.functions.merge(&line.clone_functions_only());
    }

    fn keep(&mut self, line: &AST) {
        self.keep_functions(line);
        for s in line.statements() {
            if let Stmt::Import(x, _) = s {
                let alias = x.1.name.to_string();
                if let rhai::Expr::StringConstant(path, _) = &x.0 {
                    self.modules.retain(|(a, _)| *a != alias);
                    self.modules.push((alias, path.to_string()));
                }
                self.imports.push(s.clone());
            }
        }
    }
}

/// Is the parse error only that the input stopped early (an open block,
/// bracket or expression), so the next line should continue it?
fn needs_more(src: &str, pe: &ParseError) -> bool {
    if matches!(pe.err_type(), ParseErrorType::UnexpectedEOF) {
        return true;
    }
    // A string left open is a mistake on its line, not a continuation.
    if matches!(pe.err_type(), ParseErrorType::BadInput(_)) {
        return false;
    }
    let pos = pe.position();
    let Some(line) = pos.line() else { return false };
    let Some((last_line, text)) = src.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).last() else { return false };
    let last_line = last_line + 1;
    line > last_line || (line == last_line && pos.position().unwrap_or(0) > text.trim_end().chars().count())
}

/// Ctrl-C while a statement runs. SIGINT stays blocked in every thread for
/// the whole session and a watcher thread reads it from a signalfd, so no
/// signal handler (and no unsafe code) is needed; while the editor reads a
/// line the terminal is raw and Ctrl-C arrives as a key instead.
struct Interrupt {
    flag: Arc<AtomicBool>,
    running: Arc<AtomicBool>,
}

impl Interrupt {
    fn install() -> std::io::Result<Interrupt> {
        // Blocks SIGINT in this thread; threads started later inherit the
        // mask, and children get a clean one from std::process::Command.
        let fd = crate::sys::proc::signalfd(&[libc::SIGINT])?;
        let flag = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicBool::new(false));
        let (f, run) = (flag.clone(), running.clone());
        std::thread::Builder::new().name("repl-sigint".into()).spawn(move || {
            // Set while a Ctrl-C has not stopped the statement yet.
            let mut pending = false;
            loop {
                let Ok(ready) = crate::sys::proc::poll(&[(fd.as_raw_fd(), libc::POLLIN)], if pending { 1000 } else { -1 }) else { return };
                if ready.first().copied().unwrap_or(0) == 0 {
                    if pending && run.load(Ordering::SeqCst) && f.load(Ordering::SeqCst) {
                        eprintln!("\n(a call is still blocking and stops only when it returns; Ctrl-C again leaves the REPL)");
                    }
                    pending = false;
                    continue;
                }
                if crate::sys::proc::read_signalfd(&fd).is_empty() || !run.load(Ordering::SeqCst) {
                    continue;
                }
                // A second Ctrl-C while a native call (c.wait(), a pull)
                // still blocks is the way out.
                if f.swap(true, Ordering::SeqCst) {
                    eprintln!("\ninterrupted again while a call was blocking: leaving the REPL");
                    std::process::exit(130);
                }
                pending = true;
            }
        })?;
        Ok(Interrupt { flag, running })
    }

    /// Makes the engine stop at its next operation once Ctrl-C was pressed,
    /// and `sleep()` wake for it.
    fn attach(&self, r: &mut rhai::Engine) {
        let f = self.flag.clone();
        r.on_progress(move |_| f.load(Ordering::Relaxed).then(|| Dynamic::from("interrupted")));
        let f = self.flag.clone();
        super::api::util::SLEEP.func(r, move |ms: i64| {
            let end = Instant::now() + Duration::from_millis(ms.max(0) as u64);
            while !f.load(Ordering::Relaxed) {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(20)));
            }
        });
    }

    fn arm(&self) {
        self.flag.store(false, Ordering::SeqCst);
        self.running.store(true, Ordering::SeqCst);
    }

    /// Ends an evaluation; was it interrupted?
    fn disarm(&self) -> bool {
        self.running.store(false, Ordering::SeqCst);
        self.flag.swap(false, Ordering::SeqCst)
    }
}

// ---- printing ----

fn show(engine: &Engine, v: Dynamic) {
    if v.is_unit() {
        return;
    }
    if let Some(t) = table_of(engine, &v) {
        print!("{t}");
        return;
    }
    if v.is_string() {
        let s = v.to_string();
        if s.ends_with('\n') { print!("{s}") } else { println!("{s}") }
        return;
    }
    println!("{}", pretty(&v, 0));
}

/// The CLI's table for an engine object or an array of one kind of them.
fn table_of(engine: &Engine, v: &Dynamic) -> Option<String> {
    let one = std::slice::from_ref(v);
    let items: &[Dynamic] = match v.read_lock::<Array>() {
        Some(a) if !a.is_empty() => return table_of_all(engine, &a),
        Some(_) => return None,
        None => one,
    };
    table_of_all(engine, items)
}

fn table_of_all(engine: &Engine, items: &[Dynamic]) -> Option<String> {
    fn all<T: Clone + 'static, U>(items: &[Dynamic], get: impl Fn(T) -> Option<U>) -> Option<Vec<U>> {
        if !items.iter().all(|x| x.is::<T>()) {
            return None;
        }
        // An object removed meanwhile is left out rather than failing the print.
        Some(items.iter().filter_map(|x| get(x.clone().cast::<T>())).collect())
    }
    if let Some(l) = all(items, |c: Container| engine.container(&c.id).ok()) {
        return Some(table::containers(&l, |c| engine.ports(&c.id).map(|p| table::ports(&p)).unwrap_or_default()));
    }
    if let Some(l) = all(items, |i: Image| engine.image(&i.id).ok()) {
        return Some(table::images(&l));
    }
    if let Some(l) = all(items, |n: Network| engine.network(&n.id).ok()) {
        return Some(table::networks(&l));
    }
    if let Some(l) = all(items, |v: Volume| engine.volume(&v.name).ok()) {
        return Some(table::volumes(&l));
    }
    if let Some(l) = all(items, |s: Service| Some((engine.service(&s.id).ok()?, engine.service_serving(&s.id).map(|v| v.len()).unwrap_or(0)))) {
        return Some(table::services(&l));
    }
    None
}

/// A value as Rhai writes it (`#{"a": 1}`, `[1, 2]`, `"text"`), broken over
/// lines with indentation when it does not fit in WIDTH.
fn pretty(v: &Dynamic, indent: usize) -> String {
    let flat = one_line(v);
    if indent + flat.chars().count() <= WIDTH {
        return flat;
    }
    let pad = " ".repeat(indent + 4);
    if let Some(m) = v.read_lock::<Map>() {
        let body: String = m.iter().map(|(k, x)| format!("{pad}{:?}: {},\n", k.as_str(), pretty(x, indent + 4))).collect();
        return format!("#{{\n{body}{}}}", " ".repeat(indent));
    }
    if let Some(a) = v.read_lock::<Array>() {
        let body: String = a.iter().map(|x| format!("{pad}{},\n", pretty(x, indent + 4))).collect();
        return format!("[\n{body}{}]", " ".repeat(indent));
    }
    flat
}

fn one_line(v: &Dynamic) -> String {
    if let Some(m) = v.read_lock::<Map>() {
        let parts: Vec<String> = m.iter().map(|(k, x)| format!("{:?}: {}", k.as_str(), one_line(x))).collect();
        return format!("#{{{}}}", parts.join(", "));
    }
    if let Some(a) = v.read_lock::<Array>() {
        let parts: Vec<String> = a.iter().map(one_line).collect();
        return format!("[{}]", parts.join(", "));
    }
    let short = |id: &str| id.trim_start_matches("sha256:").chars().take(12).collect::<String>();
    if let Some(c) = v.read_lock::<Container>() {
        return format!("Container({})", short(&c.id));
    }
    if let Some(i) = v.read_lock::<Image>() {
        return format!("Image({})", short(&i.id));
    }
    if let Some(n) = v.read_lock::<Network>() {
        return format!("Network({})", short(&n.id));
    }
    if let Some(x) = v.read_lock::<Volume>() {
        return format!("Volume({})", x.name);
    }
    if let Some(s) = v.read_lock::<Service>() {
        return format!("Service({})", short(&s.id));
    }
    format!("{v:?}")
}

// ---- completion ----

/// What a completion knows of a value's type.
#[derive(Clone, Default, Debug)]
struct Ty {
    /// "Container", "Map", "Array", "string", "Result", ...
    name: String,
    /// The elements' type, for arrays.
    elem: Option<Box<Ty>>,
    /// A map's keys and their values' types.
    keys: Vec<(String, Ty)>,
}

impl Ty {
    fn named(name: &str) -> Ty {
        // "[Container]" in a signature is an array of Container.
        match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
            Some(inner) => Ty { name: "Array".into(), elem: Some(Box::new(Ty::named(inner))), keys: vec![] },
            None => Ty { name: name.into(), ..Default::default() },
        }
    }

    /// A value's type, looking `depth` levels into maps and arrays.
    fn of(r: &rhai::Engine, v: &Dynamic, depth: usize) -> Ty {
        let mut t = Ty::named(&help::type_of(r, v));
        if depth == 0 {
            return t;
        }
        if let Some(m) = v.read_lock::<Map>() {
            t.keys = m.iter().map(|(k, x)| (k.to_string(), Ty::of(r, x, depth - 1))).collect();
        }
        if let Some(a) = v.read_lock::<Array>() {
            t.elem = a.first().map(|x| Box::new(Ty::of(r, x, depth - 1)));
        }
        t
    }
}

/// The REPL's rustyline helper: completion from the session's variables,
/// the engine's functions and the store's object names.
struct Assist {
    engine: Arc<Engine>,
    /// Members the engine has per type ("Container" -> ["exec(", "name", ..]).
    members: HashMap<String, BTreeSet<String>>,
    /// berth's global functions, as "name(".
    globals: BTreeSet<String>,
    /// Refreshed before each prompt.
    vars: Vec<(String, Ty)>,
    functions: BTreeSet<String>,
    modules: Vec<(String, String)>,
    /// The public functions of each stdlib module.
    module_fns: HashMap<String, Vec<String>>,
    /// help's catalogue: the members' signatures tell what a call returns.
    catalogue: help::Catalogue,
}

fn as_candidate(name: &str, property: bool) -> String {
    if property { name.to_string() } else { format!("{name}(") }
}

impl Assist {
    fn new(engine: Arc<Engine>, r: &rhai::Engine) -> Assist {
        let mut members: HashMap<String, BTreeSet<String>> = HashMap::new();
        let catalogue = help::Catalogue::of(r);
        let mut globals: BTreeSet<String> = catalogue.globals().iter().map(|e| as_candidate(&e.name, false)).collect();
        let ours = help::registered(r, false);
        for k in &ours {
            match k.owner() {
                "" => {
                    globals.insert(as_candidate(&k.name, false));
                }
                o => {
                    members.entry(o.to_string()).or_default().insert(as_candidate(&k.name, k.property));
                }
            }
        }
        // Rhai's own methods of its types (len, push, split, ...). berth's
        // functions taking a map or a string first (containers(opts),
        // env(name)) are not methods of those.
        let ours: BTreeSet<(Option<String>, String)> = ours.into_iter().map(|k| (k.first, k.name)).collect();
        for k in help::registered(r, true) {
            let candidate = as_candidate(&k.name, k.property);
            if let Some(t) = k.first
                && !ours.contains(&(Some(t.clone()), k.name))
            {
                members.entry(t).or_default().insert(candidate);
            }
        }
        let module_fns = super::stdlib::MODULES.iter().map(|(m, _)| (m.to_string(), help::module_functions(r, m))).collect();
        Assist { engine, members, globals, vars: vec![], functions: BTreeSet::new(), modules: vec![], module_fns, catalogue }
    }

    fn refresh(&mut self, r: &rhai::Engine, scope: &Scope, session: &Session) {
        self.vars = scope.iter_raw().map(|(name, _, v)| (name.to_string(), Ty::of(r, v, 3))).collect();
        self.functions = session.functions.iter_functions().map(|f| format!("{}(", f.name)).collect();
        self.modules = session.modules.clone();
    }

    /// The members `x.` offers for a value of type `t`.
    fn members_of(&self, t: &Ty) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.catalogue.members(&t.name).iter().map(|e| as_candidate(&e.name, e.is_property())).collect();
        // A Result is a map; a map's own keys read like properties.
        let base = if t.name == "Result" { "Map" } else { t.name.as_str() };
        if let Some(m) = self.members.get(base) {
            out.extend(m.iter().cloned());
        }
        out.extend(t.keys.iter().map(|(k, _)| k.clone()));
        out
    }

    /// The type of the expression that ends `text` (what stands before a
    /// dot): a variable, a call of a known function, a property or method
    /// of a known type, or an element of a known array.
    fn type_before(&self, text: &str) -> Option<Ty> {
        let text = text.trim_end();
        if let Some(inner) = text.strip_suffix(']') {
            let open = matching_open(inner, '[', ']')?;
            return self.type_before(&inner[..open])?.elem.map(|b| *b);
        }
        let (head, called) = match text.strip_suffix(')') {
            Some(inner) => (&inner[..matching_open(inner, '(', ')')?], true),
            None => (text, false),
        };
        let start = head.len() - head.chars().rev().take_while(|c| is_ident(*c)).map(char::len_utf8).sum::<usize>();
        let name = &head[start..];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let before = head[..start].trim_end();
        if let Some(recv) = before.strip_suffix('.') {
            let owner = self.type_before(recv)?;
            if !called && let Some((_, t)) = owner.keys.iter().find(|(k, _)| k == name) {
                return Some(t.clone());
            }
            let e = self.catalogue.members(&owner.name).into_iter().find(|e| e.name == name && e.is_property() != called)?;
            return e.returns().map(Ty::named);
        }
        if let Some(module) = before.strip_suffix("::") {
            let m = self.module_of(module.rsplit(|c: char| !is_ident(c)).next().unwrap_or(""));
            return self.catalogue.members(&m).into_iter().find(|e| e.name == name).and_then(|e| e.returns()).map(Ty::named);
        }
        if called {
            return self.catalogue.globals().into_iter().find(|e| e.name == name).and_then(|e| e.returns()).map(Ty::named);
        }
        self.vars.iter().rev().find(|(n, _)| n == name).map(|(_, t)| t.clone())
    }

    /// The stdlib module an alias was imported from (`import "lab" as l;`).
    fn module_of(&self, alias: &str) -> String {
        self.modules.iter().rev().find(|(a, _)| a == alias).map(|(_, m)| m.clone()).unwrap_or_else(|| alias.to_string())
    }

    /// Names of stored objects for a string literal, chosen by what the
    /// string is for: `container("`, `#{ network: "`, ...
    fn object_names(&self, before_quote: &str) -> Vec<String> {
        let t = before_quote.trim_end();
        let word = |s: &str| s.trim_end().rsplit(|c: char| !is_ident(c)).next().unwrap_or("").to_string();
        let what = if let Some(x) = t.strip_suffix('(') {
            word(x)
        } else if let Some(x) = t.strip_suffix(':') {
            word(x)
        } else {
            String::new()
        };
        let e = &self.engine;
        let containers = || e.containers(true).map(|l| l.into_iter().map(|c| c.name).collect::<Vec<_>>()).unwrap_or_default();
        let images = || {
            let mut v = Vec::new();
            for i in e.images().unwrap_or_default() {
                for t in i.tags {
                    // busybox:latest is also just busybox.
                    if let Some(short) = t.strip_suffix(":latest") {
                        v.push(short.to_string());
                    }
                    v.push(t);
                }
            }
            v
        };
        let networks = || e.networks().map(|l| l.into_iter().map(|n| n.name).collect::<Vec<_>>()).unwrap_or_default();
        let volumes = || e.volumes().map(|l| l.into_iter().map(|v| v.name).collect::<Vec<_>>()).unwrap_or_default();
        match what.as_str() {
            "container" | "volumes_from" => containers(),
            "image" | "run" | "run_once" | "tag" => images(),
            "network" | "connect" | "disconnect" => networks(),
            "volume" => volumes(),
            _ => [containers(), images(), networks(), volumes()].concat(),
        }
    }

    fn complete_at(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = &line[..pos];
        if let Some(q) = open_quote(before) {
            let prefix = &before[q + 1..];
            let mut names: Vec<String> = self.object_names(&before[..q]).into_iter().filter(|n| n.starts_with(prefix)).collect();
            names.sort();
            names.dedup();
            return (q + 1, names);
        }
        let start = pos - before.chars().rev().take_while(|c| is_ident(*c)).map(char::len_utf8).sum::<usize>();
        let word = &before[start..];
        let head = &before[..start];
        let pool: BTreeSet<String> = if let Some(recv) = head.strip_suffix('.') {
            match self.type_before(recv) {
                Some(t) => self.members_of(&t),
                None => BTreeSet::new(),
            }
        } else if let Some(m) = head.strip_suffix("::") {
            let alias = m.rsplit(|c: char| !is_ident(c)).next().unwrap_or("");
            let module = self.module_of(alias);
            let mut p: BTreeSet<String> = self.catalogue.members(&module).iter().map(|e| as_candidate(&e.name, false)).collect();
            p.extend(self.module_fns.get(&module).into_iter().flatten().map(|n| as_candidate(n, false)));
            p
        } else {
            let mut p = self.globals.clone();
            p.extend(self.functions.iter().cloned());
            p.extend(self.vars.iter().map(|(n, _)| n.clone()));
            p.extend(self.modules.iter().map(|(a, _)| format!("{a}::")));
            p
        };
        (start, pool.into_iter().filter(|c| c.starts_with(word)).collect())
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Where the bracket that `text`'s final closing bracket closes opens.
fn matching_open(text: &str, open: char, close: char) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices().rev() {
        if c == close {
            depth += 1;
        } else if c == open {
            if depth == 0 {
                return Some(i);
            }
            depth -= 1;
        }
    }
    None
}

/// The byte offset of the `"` of a string literal still open at the end
/// of `text`, if any.
fn open_quote(text: &str) -> Option<usize> {
    let mut open: Option<usize> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (open, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(_), '"') => open = None,
            (None, '"') => open = Some(i),
            // 'x' is a character: a quote in it opens nothing.
            (None, '\'') => {
                for (_, d) in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                }
            }
            (None, '/') if chars.peek().map(|(_, d)| *d) == Some('/') => return None,
            _ => {}
        }
    }
    open
}

impl Completer for Assist {
    type Candidate = String;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(self.complete_at(line, pos))
    }
}

impl Hinter for Assist {
    type Hint = String;
}

impl Highlighter for Assist {}

impl Validator for Assist {}

impl Helper for Assist {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_needs_more(src: &str) -> bool {
        let r = rhai::Engine::new();
        match r.compile(src) {
            Ok(_) => false,
            Err(pe) => needs_more(src, &pe),
        }
    }

    #[test]
    fn unfinished_input_continues() {
        for src in ["fn f() {\n", "if x {\n", "let a = [1,\n", "let m = #{\n", "let m = #{ a: 1,\n", "let x = 1 +\n", "foo(1,\n", "if x { // note\n"] {
            assert!(parse_needs_more(src), "{src:?} should continue on the next line");
        }
        for src in ["foo(1 2)\n", "let = 5;\n", "}\n", "let s = \"open\n", "fn f() {\n 1 2 }\n"] {
            assert!(!parse_needs_more(src), "{src:?} is an error, not unfinished");
        }
    }

    #[test]
    fn quotes_are_found() {
        assert_eq!(open_quote("container(\"we"), Some(10));
        assert_eq!(open_quote("container(\"web\")"), None);
        assert_eq!(open_quote(r#"print("a\"b"#), Some(6));
        assert_eq!(open_quote(r#"let c = '"'; run(""#), Some(17));
        assert_eq!(open_quote("x // \"note"), None);
    }

    #[test]
    fn brackets_match() {
        assert_eq!(matching_open("run(\"a\", f(1)", '(', ')'), Some(3));
        assert_eq!(matching_open("xs[i", '[', ']'), Some(2));
    }

    #[test]
    fn printing_is_rhai_like() {
        let mut m = Map::new();
        m.insert("a".into(), Dynamic::from(1_i64));
        m.insert("b".into(), Dynamic::from("x"));
        assert_eq!(pretty(&Dynamic::from(m), 0), r#"#{"a": 1, "b": "x"}"#);
        let long: Array = (0..40).map(|i| Dynamic::from(format!("item{i}"))).collect();
        let p = pretty(&Dynamic::from(long), 0);
        assert!(p.starts_with("[\n    \"item0\",\n"), "{p}");
        assert!(p.lines().all(|l| l.len() <= WIDTH));
    }
}
