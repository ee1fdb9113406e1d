//! `berth test`: runs the `test("name", || {...})` blocks of `*.rhai` files.
//! Every object a test makes is labelled with the run and removed when the
//! test ends, pass or fail; the run's record lets the next run (or `system
//! prune`) remove what a killed runner left.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
// A test that panics a thread must not take the report down with it:
// locks are taken whether or not an earlier holder panicked.
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rhai::{Dynamic, EvalAltResult, FnPtr, Map};

use super::api::testing;
use super::{Created, Tracker};
use crate::engine::Engine;
use crate::testrun::{self, TestRun};

pub struct Options {
    pub paths: Vec<String>,
    pub jobs: usize,
    pub filter: Option<String>,
    pub junit: Option<String>,
    pub keep_on_failure: bool,
}

/// Set by SIGINT/SIGTERM: scripts stop at their next step, then clean up.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
}

#[derive(Debug, Clone)]
struct TestResult {
    name: String,
    outcome: Outcome,
    time: Duration,
}

struct FileResult {
    file: String,
    tests: Vec<TestResult>,
    time: Duration,
}

/// The tracker of one file: labels name the run and the current test; each
/// object made is noted under the test that made it.
struct Session {
    run_id: String,
    file: String,
    current: Mutex<String>,
    made: Mutex<Vec<Created>>,
    journal: Arc<TestRun>,
    /// The file's name scope (its TEST_ID): `db` is `db.SCOPE` on the host.
    scope: String,
}

impl Tracker for Session {
    fn labels(&self) -> BTreeMap<String, String> {
        let test = self.current.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut m = BTreeMap::new();
        m.insert(testrun::RUN_LABEL.to_string(), self.run_id.clone());
        m.insert(testrun::TEST_LABEL.to_string(), if test.is_empty() { self.file.clone() } else { format!("{} › {test}", self.file) });
        m.insert(testrun::SCOPE_LABEL.to_string(), self.scope.clone());
        m
    }

    fn created(&self, obj: Created) {
        if let Created::Image(id) = &obj {
            self.journal.journal_image(id);
        }
        self.made.lock().unwrap_or_else(PoisonError::into_inner).push(obj);
    }

    fn scope(&self) -> Option<String> {
        Some(self.scope.clone())
    }
}

/// `*.rhai` files under the paths, in a stable order.
fn collect(paths: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "rhai") {
                out.push(p);
            }
        }
        Ok(())
    }
    let defaults = vec!["tests".to_string()];
    let paths = if paths.is_empty() { &defaults } else { paths };
    let mut out = Vec::new();
    for p in paths {
        let path = Path::new(p);
        if path.is_dir() {
            walk(path, &mut out).map_err(|e| anyhow::anyhow!("reading test directory {p}: {e}"))?;
        } else if path.is_file() {
            out.push(path.to_path_buf());
        } else {
            anyhow::bail!("no such test file or directory: {p}");
        }
    }
    if out.is_empty() {
        anyhow::bail!("no *.rhai test files under {}", paths.join(", "));
    }
    Ok(out)
}

pub fn run(e: Engine, o: Options) -> anyhow::Result<i32> {
    let engine = Arc::new(e);
    let swept = testrun::sweep_dead(&engine)?;
    if swept.containers + swept.networks + swept.volumes + swept.images > 0 {
        println!(
            "removed what {} killed test run(s) left: {} container(s), {} network(s), {} volume(s), {} image(s)",
            swept.runs.len(),
            swept.containers,
            swept.networks,
            swept.volumes,
            swept.images
        );
    }
    let files = collect(&o.paths)?;
    let run = Arc::new(TestRun::begin(&engine)?);
    for s in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(s, on_stop as *const () as libc::sighandler_t) };
    }
    let started = Instant::now();
    let queue = Mutex::new(files.iter().enumerate().collect::<std::collections::VecDeque<_>>());
    let results: Mutex<Vec<(usize, FileResult)>> = Mutex::new(Vec::new());
    let kept: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let out = Mutex::new(());
    let jobs = o.jobs.max(1).min(files.len());
    std::thread::scope(|sc| {
        for _ in 0..jobs {
            sc.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
                    let Some((i, f)) = next else { break };
                    let r = run_file(&engine, &run, f, &o, &out, &kept);
                    results.lock().unwrap_or_else(PoisonError::into_inner).push((i, r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    results.sort_by_key(|(i, _)| *i);
    let results: Vec<FileResult> = results.into_iter().map(|(_, r)| r).collect();
    let count = |f: &dyn Fn(&Outcome) -> bool| results.iter().flat_map(|r| &r.tests).filter(|t| f(&t.outcome)).count();
    let passed = count(&|x| *x == Outcome::Passed);
    let failed = count(&|x| matches!(x, Outcome::Failed(_)));
    let skipped = count(&|x| matches!(x, Outcome::Skipped(_)));
    if let Some(path) = &o.junit {
        std::fs::write(path, junit(&results, started.elapsed())).map_err(|e| anyhow::anyhow!("writing JUnit report {path}: {e}"))?;
    }
    let kept = kept.into_inner().unwrap_or_else(PoisonError::into_inner);
    if kept.is_empty() {
        // Whatever still carries the run's label (made in a way no note
        // caught) goes before the record does.
        let _ = testrun::remove_labelled(&engine, &run.id, &[]);
        run.end();
    } else {
        // The record stays while kept objects exist, so --clean finds the
        // images too; marked kept, no sweep takes it.
        run.keep();
        println!("\nkept for inspection (--keep-on-failure): {}", kept.join(", "));
        println!("(berth ps -a --filter label={}={} lists the containers)", testrun::RUN_LABEL, run.id);
        println!("remove them with: berth test --clean {}", run.id);
    }
    if STOP.load(Ordering::SeqCst) {
        println!("interrupted: the tests that ran were cleaned up");
    }
    let mut summary = format!("{passed} passed, {failed} failed");
    if skipped > 0 {
        summary.push_str(&format!(", {skipped} skipped"));
    }
    println!("\n{} file(s) in {:.2} s", results.len(), started.elapsed().as_secs_f64());
    println!("{summary}");
    Ok(if failed > 0 || STOP.load(Ordering::SeqCst) { 1 } else { 0 })
}

/// Removes what a --keep-on-failure run kept.
pub fn clean(e: Engine, run_id: &str) -> anyhow::Result<i32> {
    let s = testrun::remove_run(&e, run_id)?;
    println!("removed {} container(s), {} network(s), {} volume(s), {} image(s) of test run {run_id}", s.containers, s.networks, s.volumes, s.images);
    Ok(0)
}

fn display_path(p: &Path) -> String {
    p.strip_prefix("./").unwrap_or(p).display().to_string()
}

fn run_file(engine: &Arc<Engine>, run: &Arc<TestRun>, path: &Path, o: &Options, out: &Mutex<()>, kept: &Mutex<Vec<String>>) -> FileResult {
    let file = display_path(path);
    let started = Instant::now();
    let file_start = crate::store::now_rfc3339();
    let mut result = FileResult { file: file.clone(), tests: Vec::new(), time: Duration::ZERO };
    let source = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            result.tests.push(TestResult { name: "(load)".into(), outcome: Outcome::Failed(format!("reading {file}: {e}")), time: Duration::ZERO });
            report(out, &file, &result.tests[0]);
            return result;
        }
    };
    // Unique to this file's run: the scope of its names, so files (and
    // copies of one file) run side by side with the names they like.
    let test_id = crate::store::new_id()[..6].to_string();
    let session = Arc::new(Session {
        run_id: run.id.clone(),
        file: file.clone(),
        current: Mutex::new(String::new()),
        made: Mutex::new(Vec::new()),
        journal: run.clone(),
        scope: test_id.clone(),
    });
    let (mut r, mut scope) = super::build_with(engine.clone(), vec![file.clone()], Some(session.clone()));
    scope.push_constant("TEST_ID", test_id);
    let tests: Arc<Mutex<Vec<(String, FnPtr)>>> = Arc::default();
    let hooks: Arc<Mutex<Hooks>> = Arc::default();
    let t = tests.clone();
    testing::TEST.func(&mut r, move |name: &str, f: FnPtr| t.lock().unwrap_or_else(PoisonError::into_inner).push((name.to_string(), f)));
    let h = hooks.clone();
    testing::BEFORE_EACH.func(&mut r, move |f: FnPtr| h.lock().unwrap_or_else(PoisonError::into_inner).before_each = Some(f));
    let h = hooks.clone();
    testing::AFTER_EACH.func(&mut r, move |f: FnPtr| h.lock().unwrap_or_else(PoisonError::into_inner).after_each = Some(f));
    let h = hooks.clone();
    testing::BEFORE_ALL.func(&mut r, move |f: FnPtr| h.lock().unwrap_or_else(PoisonError::into_inner).before_all = Some(f));
    let h = hooks.clone();
    testing::AFTER_ALL.func(&mut r, move |f: FnPtr| h.lock().unwrap_or_else(PoisonError::into_inner).after_all = Some(f));
    r.on_progress(|_| if STOP.load(Ordering::Relaxed) { Some("interrupted".into()) } else { None });

    // The file's top level registers the tests (and may set up shared objects).
    let top = r.compile_with_scope(&scope, &source).map_err(|pe| {
        let err: EvalAltResult = pe.into();
        super::render_error(&file, &source, &err)
    });
    let ast = match top.and_then(|ast| r.run_ast_with_scope(&mut scope, &ast).map(|_| ast).map_err(|e| super::render_error(&file, &source, &e))) {
        Ok(a) => a,
        Err(msg) => {
            let t = TestResult { name: "(file)".into(), outcome: Outcome::Failed(msg), time: started.elapsed() };
            report(out, &file, &t);
            result.tests.push(t);
            cleanup(engine, &session, false, kept, &file_start);
            result.time = started.elapsed();
            return result;
        }
    };
    let list = tests.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let Hooks { before_each: before, after_each: after, before_all, after_all } = hooks.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let selected = |name: &str| o.filter.as_ref().is_none_or(|flt| format!("{file} › {name}").contains(flt.as_str()));
    let any = list.iter().any(|(n, _)| selected(n));
    // before_all: the file's shared fixture, once, if a test will run; a
    // failure fails every test of the file.
    let mut all_failed: Option<String> = None;
    if any && let Some(b) = &before_all {
        *session.current.lock().unwrap_or_else(PoisonError::into_inner) = String::new();
        if let Err(e) = b.call::<Dynamic>(&r, &ast, ()) {
            all_failed = Some(format!("before_all failed: {}{}", super::render_error(&file, &source, &e), container_logs(engine, &session)));
        }
    }
    // Objects the top level and before_all made belong to the whole file.
    let file_objects: Vec<Created> = std::mem::take(&mut *session.made.lock().unwrap_or_else(PoisonError::into_inner));
    for (name, f) in list {
        if !selected(&name) {
            continue;
        }
        if STOP.load(Ordering::SeqCst) {
            break;
        }
        if let Some(msg) = &all_failed {
            let t = TestResult { name, outcome: Outcome::Failed(msg.clone()), time: Duration::ZERO };
            report(out, &file, &t);
            result.tests.push(t);
            continue;
        }
        *session.current.lock().unwrap_or_else(PoisonError::into_inner) = name.clone();
        let t0 = Instant::now();
        let test_start = crate::store::now_rfc3339();
        let mut res: Result<(), Box<EvalAltResult>> = Ok(());
        if let Some(b) = &before {
            res = b.call::<Dynamic>(&r, &ast, ()).map(|_| ());
        }
        if res.is_ok() {
            res = f.call::<Dynamic>(&r, &ast, ()).map(|_| ());
        }
        // after_each runs whatever happened, and its own failure counts.
        if let Some(a) = &after {
            let ra = a.call::<Dynamic>(&r, &ast, ()).map(|_| ());
            if res.is_ok() {
                res = ra;
            }
        }
        let outcome = match res {
            Ok(()) => Outcome::Passed,
            Err(e) => match skip_reason(&e) {
                Some(reason) => Outcome::Skipped(reason),
                None => {
                    let mut msg = super::render_error(&file, &source, &e);
                    msg.push_str(&container_logs(engine, &session));
                    Outcome::Failed(msg)
                }
            },
        };
        let failed = matches!(outcome, Outcome::Failed(_));
        cleanup(engine, &session, failed && o.keep_on_failure, kept, &test_start);
        let t = TestResult { name, outcome, time: t0.elapsed() };
        report(out, &file, &t);
        result.tests.push(t);
    }
    *session.current.lock().unwrap_or_else(PoisonError::into_inner) = String::new();
    // after_all runs whatever happened, before the file's objects go; its
    // failure is reported as a test of its own.
    if any && all_failed.is_none() && let Some(a) = &after_all {
        let t0 = Instant::now();
        if let Err(e) = a.call::<Dynamic>(&r, &ast, ()) {
            let t = TestResult { name: "(after_all)".into(), outcome: Outcome::Failed(super::render_error(&file, &source, &e)), time: t0.elapsed() };
            report(out, &file, &t);
            result.tests.push(t);
        }
    }
    session.made.lock().unwrap_or_else(PoisonError::into_inner).extend(file_objects);
    cleanup(engine, &session, false, kept, &file_start);
    if result.tests.is_empty() && o.filter.is_none() {
        let _g = out.lock().unwrap_or_else(PoisonError::into_inner);
        println!("     {file}: no test(...) in this file");
    }
    result.time = started.elapsed();
    result
}

#[derive(Clone, Default)]
struct Hooks {
    before_each: Option<FnPtr>,
    after_each: Option<FnPtr>,
    before_all: Option<FnPtr>,
    after_all: Option<FnPtr>,
}

fn skip_reason(e: &EvalAltResult) -> Option<String> {
    match e {
        EvalAltResult::ErrorRuntime(v, _) => v.read_lock::<Map>().and_then(|m| m.get(super::SKIP_KEY).map(|r| r.to_string())),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => skip_reason(inner),
        _ => None,
    }
}

/// The last 20 log lines of each container the failed test started.
fn container_logs(engine: &Engine, s: &Session) -> String {
    let mut text = String::new();
    for o in s.made.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        let Created::Container(id) = o else { continue };
        let Ok(c) = engine.container(id) else { continue };
        let lines: Vec<String> = engine.logs(id).map(|l| l.into_iter().map(|x| x.text).collect::<String>().lines().map(str::to_string).collect()).unwrap_or_default();
        let tail = &lines[lines.len().saturating_sub(20)..];
        text.push_str(&format!("\n  logs of {} ({}, last {} lines):", c.name, c.state, tail.len()));
        for l in tail {
            text.push_str(&format!("\n    | {l}"));
        }
    }
    text
}

/// Removes what the session noted (containers first: they hold networks
/// and volumes), or with `keep` lists it instead.
fn cleanup(engine: &Engine, s: &Session, keep: bool, kept: &Mutex<Vec<String>>, since: &str) {
    let mut made: Vec<Created> = std::mem::take(&mut *s.made.lock().unwrap_or_else(PoisonError::into_inner));
    // What carries this test's label without a note: a container whose
    // start failed (run() threw before it could be noted), for one.
    let mine = s.labels().get(testrun::TEST_LABEL).cloned().unwrap_or_default();
    let labelled = |l: &BTreeMap<String, String>| {
        l.get(testrun::RUN_LABEL) == Some(&s.run_id) && l.get(testrun::TEST_LABEL) == Some(&mine) && l.get(testrun::SCOPE_LABEL) == Some(&s.scope)
    };
    for c in engine.containers(true).unwrap_or_default() {
        if labelled(&c.spec.labels) && !c.spec.labels.contains_key(crate::service::SERVICE_LABEL) && !made.contains(&Created::Container(c.id.clone())) {
            made.push(Created::Container(c.id));
        }
    }
    if keep {
        let mut k = kept.lock().unwrap_or_else(PoisonError::into_inner);
        for o in &made {
            k.push(match o {
                Created::Container(id) => engine.container(id).map(|c| format!("container {}", c.name)).unwrap_or_else(|_| format!("container {}", &id[..12])),
                Created::Network(id) => engine.network(id).map(|n| format!("network {}", n.name)).unwrap_or_else(|_| format!("network {}", &id[..12])),
                Created::Volume(n) => format!("volume {n}"),
                Created::Image(id) => format!("image {}", &id.trim_start_matches("sha256:")[..12]),
                Created::Service(id) => engine.service(id).map(|s| format!("service {}", s.name)).unwrap_or_else(|_| format!("service {}", &id[..12])),
                Created::Stack(name) => format!("stack {name}"),
            });
        }
        return;
    }
    // Named volumes the test's containers created on first use go too,
    // once nothing uses them: found before the containers go.
    let mut implicit: Vec<String> = Vec::new();
    let mut o = testrun::Objects::default();
    for x in &made {
        match x {
            Created::Container(id) => {
                if let Ok(c) = engine.container(id) {
                    for m in c.mounts.iter().filter(|m| m.kind == "volume" && !m.anonymous) {
                        if engine.volume(&m.name).is_ok_and(|v| v.labels.is_empty() && v.created.as_str() >= since) {
                            implicit.push(m.name.clone());
                        }
                    }
                }
                o.containers.push(id.clone());
            }
            Created::Network(id) => o.networks.push(id.clone()),
            Created::Volume(n) => o.volumes.push(n.clone()),
            // Only images the test's builds made (a cached build returns one
            // that was there before, and is not noted).
            Created::Image(id) => o.images.push(id.clone()),
            Created::Service(id) => o.services.push(id.clone()),
            Created::Stack(name) => o.stacks.push(name.clone()),
        }
    }
    testrun::remove_objects(engine, &o);
    for v in implicit {
        if engine.volume_users(&v).is_empty() {
            let _ = engine.volume_remove(&v);
        }
    }
}

fn report(out: &Mutex<()>, file: &str, t: &TestResult) {
    let _g = out.lock().unwrap_or_else(PoisonError::into_inner);
    let secs = t.time.as_secs_f64();
    match &t.outcome {
        Outcome::Passed => println!("ok   {file} › {} ({secs:.2} s)", t.name),
        Outcome::Skipped(r) => println!("skip {file} › {} ({r})", t.name),
        Outcome::Failed(msg) => {
            println!("FAIL {file} › {} ({secs:.2} s)", t.name);
            for l in msg.lines() {
                println!("     {l}");
            }
        }
    }
}

fn xml(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            '"' => "&quot;".into(),
            '\'' => "&apos;".into(),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => " ".into(),
            c => c.to_string(),
        })
        .collect()
}

fn junit(results: &[FileResult], total: Duration) -> String {
    let all: Vec<&TestResult> = results.iter().flat_map(|r| &r.tests).collect();
    let failures = all.iter().filter(|t| matches!(t.outcome, Outcome::Failed(_))).count();
    let skipped = all.iter().filter(|t| matches!(t.outcome, Outcome::Skipped(_))).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!("<testsuites name=\"berth test\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\">\n", all.len(), total.as_secs_f64()));
    for r in results {
        let f = r.tests.iter().filter(|t| matches!(t.outcome, Outcome::Failed(_))).count();
        let s = r.tests.iter().filter(|t| matches!(t.outcome, Outcome::Skipped(_))).count();
        x.push_str(&format!("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" skipped=\"{s}\" time=\"{:.3}\">\n", xml(&r.file), r.tests.len(), r.time.as_secs_f64()));
        for t in &r.tests {
            x.push_str(&format!("    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"", xml(&r.file), xml(&t.name), t.time.as_secs_f64()));
            match &t.outcome {
                Outcome::Passed => x.push_str("/>\n"),
                Outcome::Skipped(why) => x.push_str(&format!(">\n      <skipped message=\"{}\"/>\n    </testcase>\n", xml(why))),
                Outcome::Failed(msg) => {
                    let first = msg.lines().next().unwrap_or("");
                    x.push_str(&format!(">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n", xml(first), xml(msg)));
                }
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}
