//! Executing a Dockerfile: stages, RUN in real containers, COPY/ADD from the
//! context or another stage, one layer per filesystem step (the difference
//! only, deletions as whiteouts), metadata steps as history, and a cache
//! keyed by parent, instruction, build args and source content.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use oci_spec::image::Descriptor;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::dockerfile::{self, Args, Instruction};
use super::shell;
use crate::container::RunSpec;
use crate::image::{self, History, Image, ImageConfig, RootFs};
use crate::store;

#[derive(thiserror::Error, Debug)]
pub enum BuildError {
    #[error("{file}:{line}: {msg}")]
    At { file: String, line: usize, msg: String },
    #[error("{0}")]
    Other(String),
    #[error(transparent)]
    Image(#[from] image::ImageError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A file operation that failed, with what it was for.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The build cache's table in the store.
    #[error("build cache: {0}")]
    Cache(#[from] rusqlite::Error),
    /// What the host running the build (the engine) reported.
    #[error("{0}")]
    Host(#[source] HostError),
}

pub type HostError = Box<dyn std::error::Error + Send + Sync>;

fn io(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> BuildError {
    let context = context.to_string();
    move |source| BuildError::Io { context, source }
}

/// What a RUN step's container printed and returned.
pub struct StepOutput {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// What a build needs from whoever runs it: the store, its images, and a
/// throwaway container for each RUN step. The engine implements it, so the
/// door calls the builder and the builder never calls the door.
pub trait Host {
    fn paths(&self) -> &store::Paths;
    fn db(&self) -> std::sync::MutexGuard<'_, store::Db>;
    fn image(&self, name: &str) -> std::result::Result<Image, HostError>;
    /// A FROM's image: the one here, else pulled from its registry (as
    /// docker's build does) with `credentials` when given, its progress
    /// told line by line to `say`.
    /// `always`: pulled even when here.
    fn image_or_pull(&self, name: &str, always: bool, credentials: Option<(String, String)>, say: &dyn Fn(&str)) -> std::result::Result<Image, HostError>;
    /// A container for a RUN step; returns its id.
    fn step_create(&self, spec: &RunSpec) -> std::result::Result<String, HostError>;
    /// Runs the step's container to its end: its output goes to our stdout
    /// with `show_output`, else it is captured.
    fn step_run(&self, id: &str, show_output: bool) -> std::result::Result<StepOutput, HostError>;
    /// Removes the step's container (its upper directory read).
    fn step_remove(&self, id: &str);
}

type Result<T> = std::result::Result<T, BuildError>;

pub struct BuildOptions {
    pub context: PathBuf,
    /// Dockerfile path; default `Dockerfile` in the context.
    pub file: Option<PathBuf>,
    pub tag: Option<String>,
    pub args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// Stream RUN output to our stdout (the CLI) or not (scripts, quiet).
    pub show_output: bool,
    /// Where the lines go instead of our stdout (the API streams them to
    /// its client); RUN output is then captured and passed on per step.
    pub log: Option<BuildLog>,
    /// Labels set on the final image (docker's `build --label`).
    pub labels: BTreeMap<String, String>,
    /// Credentials per registry host for pulling FROM images (the API's
    /// X-Registry-Config); a registry not named uses those `login` stored.
    pub credentials: BTreeMap<String, (String, String)>,
    /// Pull FROM images even when they are here (docker's `build --pull`),
    /// for a base that moved on in its registry.
    pub pull: bool,
}

pub type BuildLog = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Where a stage stands: its image so far.
#[derive(Clone)]
struct State {
    config: ImageConfig,
    /// Layer descriptors, bottom first.
    descs: Vec<Descriptor>,
    /// Image id when the state is a committed image (cache and RUN need one).
    id: Option<String>,
    /// Args declared in this stage, with values.
    args: BTreeMap<String, String>,
    shell: Vec<String>,
    /// A hash of the base and every step so far: the cache key of "this
    /// state", independent of when intermediate images were committed.
    chain: String,
}

struct Ctx<'a> {
    engine: &'a dyn Host,
    opts: &'a BuildOptions,
    file: String,
    escape: char,
    ignore: Vec<(bool, String)>,
    /// Built stages by name and index.
    stages: HashMap<String, State>,
    step: usize,
    steps: usize,
    /// ARGs before the first FROM, with defaults overridden by --build-arg.
    global_args: BTreeMap<String, String>,
}

fn at(file: &str, line: usize, msg: impl std::fmt::Display) -> BuildError {
    BuildError::At { file: file.to_string(), line, msg: msg.to_string() }
}

/// Quiet builds (`-q`, scripts) print nothing but errors. Each build
/// decides for itself: builds run side by side in one process.
fn say(opts: &BuildOptions, s: &str) {
    if !opts.show_output {
        return;
    }
    if let Some(log) = &opts.log {
        return log(s);
    }
    let mut o = std::io::stdout();
    let _ = writeln!(o, "{s}");
    let _ = o.flush();
}

/// Builds the Dockerfile; tags and returns the final stage's image.
pub fn build(engine: &dyn Host, opts: &BuildOptions) -> Result<Image> {
    let started = Instant::now();
    let file = opts.file.clone().unwrap_or_else(|| opts.context.join("Dockerfile"));
    let file = if file.is_relative() && !file.exists() { opts.context.join(&file) } else { file };
    let fname = file.display().to_string();
    if !opts.context.is_dir() {
        return Err(BuildError::Other(format!("build context {} is not a directory", opts.context.display())));
    }
    let src = std::fs::read_to_string(&file).map_err(io(format!("reading {fname}")))?;
    let df = dockerfile::parse(&src).map_err(|e| BuildError::Other(format!("{fname}: {e}")))?;
    df.validate().map_err(|e| BuildError::Other(format!("{fname}: {e}")))?;
    let ignore = read_dockerignore(&opts.context);
    let mut cx = Ctx { engine, opts, file: fname.clone(), escape: df.escape, ignore, stages: HashMap::new(), step: 0, steps: 0, global_args: BTreeMap::new() };
    // Split into stages.
    let mut pre = Vec::new();
    let mut stages: Vec<(Instruction, Vec<Instruction>)> = Vec::new();
    for ins in df.instructions {
        if ins.cmd == "from" {
            stages.push((ins, Vec::new()));
        } else if let Some(s) = stages.last_mut() {
            s.1.push(ins);
        } else if ins.cmd == "arg" {
            pre.push(ins);
        } else {
            return Err(at(&fname, ins.line, format!("{} before the first FROM: only ARG may come first", ins.cmd.to_uppercase())));
        }
    }
    if stages.is_empty() {
        return Err(BuildError::Other(format!("{fname}: no FROM instruction")));
    }
    for a in &pre {
        for (k, v) in arg_decls(a) {
            let v = match opts.args.get(&k) {
                Some(v) => v.clone(),
                None => {
                    let g = cx.global_args.clone();
                    let d = v.unwrap_or_default();
                    shell::expand(&d, &|x: &str| g.get(x).cloned(), df.escape).map_err(|e| at(&fname, a.line, e))?
                }
            };
            cx.global_args.insert(k, v);
        }
    }
    // Stage names, and which to build: the target and what it needs.
    let names: Vec<Option<String>> = stages.iter().map(|(f, _)| from_parts(f).2).collect();
    let last = match &opts.target {
        Some(t) => names.iter().position(|n| n.as_deref() == Some(t.as_str())).ok_or_else(|| BuildError::Other(format!("target stage {t:?} could not be found in {fname}")))?,
        None => stages.len() - 1,
    };
    let needed = needed_stages(&stages, &names, last);
    cx.steps = stages.iter().enumerate().filter(|(i, _)| needed.contains(i)).map(|(_, s)| 1 + s.1.len()).sum();
    let mut final_state = None;
    for (i, (from, body)) in stages.iter().enumerate().take(last + 1) {
        if !needed.contains(&i) {
            continue;
        }
        let st = cx.stage(from, body)?;
        cx.stages.insert(i.to_string(), st.clone());
        if let Some(n) = &names[i] {
            cx.stages.insert(n.clone(), st.clone());
        }
        final_state = Some(st);
    }
    let mut st = final_state.expect("at least one stage");
    cx.label_final(&mut st);
    // A final stage of metadata only still needs an image of its own.
    let id = cx.parent_id(&mut st)?;
    let img = {
        let mut db = engine.db();
        if let Some(t) = &opts.tag {
            crate::fault!("build.tag");
            image::tag(engine.paths(), &mut db, &id, t)?
        } else {
            image::resolve(&db, &id)?
        }
    };
    // A front with a log of its own tells the result in its own words
    // (the API: docker's aux ID and "Successfully built ID", which clients parse).
    if opts.log.is_none() {
        say(opts, &format!("Successfully built {} in {:.2}s", img.short_id(), started.elapsed().as_secs_f64()));
        if let Some(t) = &opts.tag {
            say(opts, &format!("Successfully tagged {t}"));
        }
    }
    Ok(img)
}

/// FROM [--platform=..] image [AS name] -> (image, platform, name).
fn from_parts(f: &Instruction) -> (String, Option<String>, Option<String>) {
    let words = words_of(f);
    let image = words.first().cloned().unwrap_or_default();
    let name = if words.len() >= 3 && words[1].eq_ignore_ascii_case("as") { Some(words[2].to_lowercase()) } else { None };
    let platform = f.flags.iter().find_map(|x| x.strip_prefix("--platform=").map(String::from));
    (image, platform, name)
}

fn words_of(i: &Instruction) -> Vec<String> {
    words_of_args(&i.args)
}

/// ARG K[=default] declarations; defaults keep their quotes here and are
/// expanded (quotes removed) where they are used.
fn arg_decls(i: &Instruction) -> Vec<(String, Option<String>)> {
    words_of(i)
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        })
        .collect()
}

fn needed_stages(stages: &[(Instruction, Vec<Instruction>)], names: &[Option<String>], last: usize) -> Vec<usize> {
    let find = |r: &str| -> Option<usize> {
        let r = r.to_lowercase();
        names.iter().position(|n| n.as_deref() == Some(r.as_str())).or_else(|| r.parse::<usize>().ok().filter(|i| *i < stages.len()))
    };
    let mut need = vec![last];
    let mut i = 0;
    while i < need.len() {
        let s = need[i];
        let (from, body) = &stages[s];
        let mut deps = Vec::new();
        if let Some(d) = find(&from_parts(from).0)
            && d < s {
                deps.push(d);
            }
        for ins in body {
            for f in &ins.flags {
                if let Some(r) = f.strip_prefix("--from=")
                    && let Some(d) = find(r)
                        && d < s {
                            deps.push(d);
                        }
            }
        }
        for d in deps {
            if !need.contains(&d) {
                need.push(d);
            }
        }
        i += 1;
    }
    need
}

impl Ctx<'_> {
    /// The build's credentials for the registry of image `name`.
    fn credentials_for(&self, name: &str) -> Option<(String, String)> {
        let r = crate::image::Reference::parse(name).ok()?;
        self.opts.credentials.get(&r.registry).cloned()
    }

    fn step_line(&mut self, ins: &Instruction) {
        crate::fault!("build.step");
        self.step += 1;
        say(self.opts, &format!("Step {}/{} : {}", self.step, self.steps, ins.original.trim()));
    }

    fn env_lookup(&self, st: &State) -> impl Fn(&str) -> Option<String> + use<> {
        let mut vars: HashMap<String, String> = HashMap::new();
        for (k, v) in &st.args {
            vars.insert(k.clone(), v.clone());
        }
        for e in &st.config.config.env {
            if let Some((k, v)) = e.split_once('=') {
                vars.insert(k.to_string(), v.to_string());
            }
        }
        move |k: &str| vars.get(k).cloned()
    }

    fn expand(&self, st: &State, ins: &Instruction, word: &str) -> Result<String> {
        let env = self.env_lookup(st);
        shell::expand(word, &env, self.escape).map_err(|e| at(&self.file, ins.line, e))
    }

    fn stage(&mut self, from: &Instruction, body: &[Instruction]) -> Result<State> {
        self.step_line(from);
        let (base, _platform, _name) = from_parts(from);
        let gl = self.global_args.clone();
        let base = shell::expand(&base, &|k: &str| gl.get(k).cloned(), self.escape).map_err(|e| at(&self.file, from.line, e))?;
        let mut st = if base == "scratch" {
            State {
                config: ImageConfig { architecture: image::host_arch().into(), os: "linux".into(), rootfs: RootFs { kind: "layers".into(), diff_ids: vec![] }, ..Default::default() },
                descs: vec![],
                id: None,
                args: BTreeMap::new(),
                shell: vec!["/bin/sh".into(), "-c".into()],
                chain: "scratch".into(),
            }
        } else if let Some(s) = self.stages.get(&base.to_lowercase()) {
            let mut s = s.clone();
            s.args.clear();
            s
        } else {
            let img = self.engine.image_or_pull(&base, self.opts.pull, self.credentials_for(&base), &|l| say(self.opts, l)).map_err(|e| at(&self.file, from.line, format!("{e} (check the FROM line, and that its registry is reachable)")))?;
            state_of(self.engine, &img).map_err(|e| at(&self.file, from.line, e))?
        };
        if st.id.is_some() {
            say(self.opts, &format!(" ---> {}", short(st.id.as_deref().unwrap_or(""))));
        }
        // The base image's ONBUILD triggers run first, and are not inherited.
        let triggers = std::mem::take(&mut st.config.config.on_build);
        if !triggers.is_empty() {
            let df = dockerfile::parse(&triggers.join("\n")).map_err(|e| at(&self.file, from.line, format!("ONBUILD trigger of {base}: {e}")))?;
            self.steps += df.instructions.len();
            for ins in &df.instructions {
                say(self.opts, &format!("# Executing ONBUILD trigger: {}", ins.original.trim()));
                self.instruction(&mut st, ins)?;
            }
        }
        for ins in body {
            self.instruction(&mut st, ins)?;
        }
        Ok(st)
    }

    fn instruction(&mut self, st: &mut State, ins: &Instruction) -> Result<()> {
        self.step_line(ins);
        let t0 = Instant::now();
        match ins.cmd.as_str() {
            "run" => self.run(st, ins)?,
            "copy" | "add" => self.copy(st, ins)?,
            // ARG and SHELL change only the build's own state.
            other @ ("arg" | "shell") => {
                let key = self.chain_after(st, ins, "");
                self.metadata(st, ins, other)?;
                st.chain = key;
                st.id = None;
            }
            other => {
                // Metadata steps add history and no layer, as docker does;
                // each is still an image of its own, so it can be cached.
                let key = self.chain_after(st, ins, "");
                if !self.try_cache(st, &key)? {
                    self.metadata(st, ins, other)?;
                    st.chain = key.clone();
                    let id = self.commit(st, None, &key)?;
                    say(self.opts, &format!(" ---> {}", short(&id)));
                }
            }
        }
        say(self.opts, &format!(" ---> done in {:.2}s", t0.elapsed().as_secs_f64()));
        Ok(())
    }

    fn metadata(&mut self, st: &mut State, ins: &Instruction, cmd: &str) -> Result<()> {
        let file = self.file.clone();
        let exec_or_shell = |args: &Args, shell: &[String]| -> Vec<String> {
            match args {
                Args::Json(v) => v.clone(),
                Args::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
                other => shell.iter().cloned().chain([words_join(other)]).collect(),
            }
        };
        match cmd {
            "env" | "label" => {
                let pairs = match &ins.args {
                    Args::KeyValues(kv) => kv.clone(),
                    _ => return Err(at(&file, ins.line, format!("{} needs KEY=VALUE pairs", cmd.to_uppercase()))),
                };
                for (k, v, _) in pairs {
                    let v = {
                        let env = self.env_lookup(st);
                        shell::expand(&v, &env, self.escape).map_err(|e| at(&file, ins.line, e))?
                    };
                    let k = self.expand(st, ins, &k)?;
                    let c = &mut st.config.config;
                    if cmd == "env" {
                        c.env.retain(|e| e.split('=').next() != Some(k.as_str()));
                        c.env.push(format!("{k}={v}"));
                    } else {
                        c.labels.insert(k, v);
                    }
                }
            }
            "arg" => {
                for (k, v) in arg_decls(ins) {
                    let v = match (self.opts.args.get(&k), v) {
                        (Some(given), _) => given.clone(),
                        (None, Some(default)) => self.expand(st, ins, &default)?,
                        // `ARG V` in a stage takes the global default.
                        (None, None) => self.global_args.get(&k).cloned().unwrap_or_default(),
                    };
                    st.args.insert(k, v);
                }
            }
            "workdir" => {
                let w = self.expand(st, ins, &words_join(&ins.args))?;
                let cur = st.config.config.working_dir.clone();
                let base = if cur.is_empty() { "/".to_string() } else { cur };
                st.config.config.working_dir = if w.starts_with('/') { w } else { format!("{}/{w}", base.trim_end_matches('/')) };
            }
            "user" => st.config.config.user = self.expand(st, ins, &words_join(&ins.args))?,
            "expose" => {
                for p in words_of(ins) {
                    let p = self.expand(st, ins, &p)?;
                    let p = if p.contains('/') { p } else { format!("{p}/tcp") };
                    st.config.config.exposed_ports.insert(p, json!({}));
                }
            }
            "volume" => {
                for v in words_of(ins) {
                    let v = self.expand(st, ins, &v)?;
                    st.config.config.volumes.insert(v, json!({}));
                }
            }
            "cmd" => st.config.config.cmd = Some(exec_or_shell(&ins.args, &st.shell)),
            "entrypoint" => {
                st.config.config.entrypoint = Some(exec_or_shell(&ins.args, &st.shell));
                // A new ENTRYPOINT clears an inherited CMD, as docker does.
                st.config.config.cmd = None;
            }
            "shell" => match &ins.args {
                Args::Json(v) if !v.is_empty() => st.shell = v.clone(),
                _ => return Err(at(&file, ins.line, "SHELL requires the exec form: SHELL [\"executable\", \"parameters\"]")),
            },
            "stopsignal" => st.config.config.stop_signal = self.expand(st, ins, &words_join(&ins.args))?,
            "healthcheck" => {
                let (kind, cmd) = match &ins.args {
                    Args::Healthcheck { kind, cmd } => (kind.clone(), cmd.clone()),
                    _ => return Err(at(&file, ins.line, "HEALTHCHECK needs NONE or CMD ...")),
                };
                if kind.eq_ignore_ascii_case("none") {
                    st.config.config.healthcheck = Some(json!({"Test": ["NONE"]}));
                } else {
                    let test: Vec<String> = match cmd.as_deref() {
                        Some(Args::Json(v)) => std::iter::once("CMD".to_string()).chain(v.iter().cloned()).collect(),
                        Some(other) => vec!["CMD-SHELL".into(), words_join(other)],
                        None => return Err(at(&file, ins.line, "HEALTHCHECK CMD needs a command")),
                    };
                    let mut h = json!({ "Test": test });
                    for f in &ins.flags {
                        for (flag, key) in [("--interval=", "Interval"), ("--timeout=", "Timeout"), ("--start-period=", "StartPeriod"), ("--retries=", "Retries")] {
                            if let Some(v) = f.strip_prefix(flag) {
                                h[key] = if key == "Retries" {
                                    json!(v.parse::<u64>().map_err(|_| at(&file, ins.line, &format!("HEALTHCHECK {flag}{v}: a count such as 3")))?)
                                } else {
                                    let d = crate::parse::duration(v, None).map_err(|e| at(&file, ins.line, &format!("HEALTHCHECK {flag}{v}: {e}")))?;
                                    json!(d.as_nanos() as u64)
                                };
                            }
                        }
                    }
                    st.config.config.healthcheck = Some(h);
                }
            }
            "onbuild" => {
                // Recorded for builds FROM this image, as docker does.
                if let Args::OnBuild(inner) = &ins.args {
                    st.config.config.on_build.push(inner.original.trim().to_string());
                }
            }
            "maintainer" => {
                let m = words_join(&ins.args);
                st.config.config.labels.insert("maintainer".into(), m);
            }
            other => return Err(at(&file, ins.line, format!("unknown instruction: {}", other.to_uppercase()))),
        }
        st.config.history.push(History { created: store::now_image_time(), created_by: history_text(ins), comment: String::new(), empty_layer: true });
        Ok(())
    }

    /// Commits the state as an image, with `layer` (a stored layer) on top
    /// when given; records the cache key.
    fn commit(&self, st: &mut State, layer: Option<image::StoredLayer>, key: &str) -> Result<String> {
        if let Some(l) = layer {
            st.descs.push(l.descriptor()?);
            st.config.rootfs.diff_ids.push(l.diff_id);
        }
        st.config.created = store::now_image_time();
        let mut db = self.engine.db();
        let img = image::commit_image(self.engine.paths(), &mut db, &st.config, st.descs.clone(), st.config.rootfs.diff_ids.clone(), None)?;
        if !key.is_empty() {
            cache_put(&db, key, &img.id)?;
        }
        st.id = Some(img.id.clone());
        Ok(img.id)
    }

    /// `--label`s on the final image, as one more metadata step (cached
    /// like the others: the labels are part of its key).
    fn label_final(&self, st: &mut State) {
        if self.opts.labels.is_empty() {
            return;
        }
        let mut h = Sha256::new();
        h.update(st.chain.as_bytes());
        for (k, v) in &self.opts.labels {
            h.update(format!("\0label {k}={v}").as_bytes());
            st.config.config.labels.insert(k.clone(), v.clone());
        }
        let text = self.opts.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(" ");
        st.config.history.push(History { created: store::now_image_time(), created_by: format!("LABEL {text}"), comment: String::new(), empty_layer: true });
        st.chain = hex::encode(h.finalize());
        st.id = None;
    }

    /// The state's image id, committing metadata-only changes first (or
    /// reusing the image an earlier build committed for the same chain).
    fn parent_id(&self, st: &mut State) -> Result<String> {
        if let Some(id) = &st.id {
            return Ok(id.clone());
        }
        if !self.opts.no_cache {
            let db = self.engine.db();
            if let Some(id) = cache_get(&db, &st.chain)?
                && image::resolve(&db, &id).is_ok() {
                    st.id = Some(id.clone());
                    return Ok(id);
                }
        }
        let key = st.chain.clone();
        self.commit(st, None, &key)
    }

    /// The chain hash after `ins`: parent chain, instruction text, heredoc
    /// bodies, build args in scope, and `extra` (COPY's source content).
    fn chain_after(&self, st: &State, ins: &Instruction, extra: &str) -> String {
        let mut h = Sha256::new();
        h.update(st.chain.as_bytes());
        h.update(b"\0");
        h.update(ins.original.as_bytes());
        for hd in &ins.heredocs {
            h.update(hd.content.as_bytes());
        }
        for (k, v) in &st.args {
            h.update(format!("\0{k}={v}").as_bytes());
        }
        h.update(extra.as_bytes());
        hex::encode(h.finalize())
    }

    /// Reuses a cached result: the step's image becomes the state.
    fn try_cache(&self, st: &mut State, key: &str) -> Result<bool> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let db = self.engine.db();
        let Some(id) = cache_get(&db, key)? else { return Ok(false) };
        let Ok(img) = image::resolve(&db, &id) else { return Ok(false) };
        drop(db);
        let args = std::mem::take(&mut st.args);
        let shell = std::mem::take(&mut st.shell);
        *st = state_of(self.engine, &img).map_err(BuildError::Other)?;
        st.args = args;
        st.shell = shell;
        st.chain = key.to_string();
        say(self.opts, &format!(" ---> CACHED {}", short(&img.id)));
        Ok(true)
    }

    fn run(&mut self, st: &mut State, ins: &Instruction) -> Result<()> {
        let mut script: Vec<String> = match &ins.args {
            Args::Json(v) => v.clone(),
            Args::Shell(s) => st.shell.iter().cloned().chain([s.clone()]).collect(),
            other => st.shell.iter().cloned().chain([words_join(other)]).collect(),
        };
        // A heredoc is the script itself (RUN <<EOF ... EOF).
        if let Some(hd) = ins.heredocs.first() {
            let body = if hd.expand { self.expand(st, ins, &hd.content).unwrap_or(hd.content.clone()) } else { hd.content.clone() };
            script = st.shell.iter().cloned().chain([body]).collect();
        }
        if script.is_empty() {
            return Err(at(&self.file, ins.line, "RUN needs a command"));
        }
        let key = self.chain_after(st, ins, "");
        if self.try_cache(st, &key)? {
            return Ok(());
        }
        let parent = self.parent_id(st)?;
        if st.descs.is_empty() {
            return Err(at(&self.file, ins.line, "RUN on an image without layers (FROM scratch) has no shell to run; COPY a filesystem first"));
        }
        // Build args are visible to RUN as environment, not kept in the image.
        let mut env: Vec<String> = st.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.extend(st.config.config.env.iter().cloned());
        let spec = RunSpec {
            image: parent.clone(),
            cmd: Some(script.clone()),
            entrypoint: Some(vec![]),
            env,
            workdir: Some(st.config.config.working_dir.clone()).filter(|w| !w.is_empty()),
            user: Some(st.config.config.user.clone()).filter(|u| !u.is_empty()),
            network: Some("none".into()),
            ..Default::default()
        };
        let cid = self.engine.step_create(&spec).map_err(BuildError::Host)?;
        say(self.opts, &format!(" ---> Running in {}", short(&cid)));
        let live = self.opts.show_output && self.opts.log.is_none();
        let out = self.engine.step_run(&cid, live);
        let result = (|| -> Result<String> {
            let out = out.map_err(BuildError::Host)?;
            if self.opts.log.is_some() {
                for o in [&out.stdout, &out.stderr] {
                    let text = String::from_utf8_lossy(o);
                    if !text.is_empty() {
                        say(self.opts, text.trim_end_matches('\n'));
                    }
                }
            }
            if out.code != 0 {
                return Err(at(&self.file, ins.line, format!("step {}: RUN {} returned a non-zero code: {}", self.step, script.join(" "), out.code)));
            }
            let upper = self.engine.paths().container_dir(&cid).join("upper");
            let layer = self.layer_from_dir(&upper, st, true)?;
            st.config.history.push(History { created: store::now_image_time(), created_by: history_text(ins), comment: String::new(), empty_layer: false });
            let id = self.commit(st, Some(layer), &key)?;
            st.chain = key.clone();
            Ok(id)
        })();
        self.engine.step_remove(&cid);
        let id = result?;
        say(self.opts, &format!(" ---> {}", short(&id)));
        Ok(())
    }

    fn copy(&mut self, st: &mut State, ins: &Instruction) -> Result<()> {
        let is_add = ins.cmd == "add";
        let mut words: Vec<String> = match &ins.args {
            Args::Json(v) => v.clone(),
            other => words_of_args(other),
        };
        let heredoc_files: Vec<(String, String)> = ins.heredocs.iter().map(|h| (h.name.clone(), h.content.clone())).collect();
        if words.len() < 2 && heredoc_files.is_empty() {
            return Err(at(&self.file, ins.line, format!("{} requires at least two arguments: SRC... DEST", ins.cmd.to_uppercase())));
        }
        for w in words.iter_mut() {
            *w = self.expand(st, ins, w)?;
        }
        let dest_raw = words.pop().unwrap_or_default();
        let workdir = if st.config.config.working_dir.is_empty() { "/".to_string() } else { st.config.config.working_dir.clone() };
        let dest = if dest_raw.starts_with('/') { dest_raw.clone() } else { format!("{}/{}", workdir.trim_end_matches('/'), dest_raw) };
        let dest_is_dir = dest_raw.ends_with('/') || words.len() > 1 || dest_raw == "." || dest_raw == "./";
        let from = ins.flags.iter().find_map(|f| f.strip_prefix("--from=").map(String::from));
        let chown = ins.flags.iter().find_map(|f| f.strip_prefix("--chown=").map(String::from));
        let chmod = ins.flags.iter().find_map(|f| f.strip_prefix("--chmod=").and_then(|m| u32::from_str_radix(m, 8).ok()));
        let (uid, gid) = match &chown {
            Some(c) => parse_chown(c).ok_or_else(|| at(&self.file, ins.line, format!("--chown={c}: only numeric uid[:gid] is supported")))?,
            None => (None, None),
        };
        // Sources: (path on the host, path inside the context or stage).
        let (root, mounted) = match &from {
            None => (self.opts.context.canonicalize().map_err(io("build context"))?, None),
            Some(f) => self.stage_root(f, ins)?,
        };
        let mut sources: Vec<PathBuf> = Vec::new();
        for s in &words {
            if is_add && (s.starts_with("http://") || s.starts_with("https://")) {
                return Err(at(&self.file, ins.line, format!("ADD {s}: remote URLs are not supported (berth builds never reach the network); download it into the context")));
            }
            let matched = glob_in(&root, s, if from.is_none() { &self.ignore } else { &[] }).map_err(|m| at(&self.file, ins.line, m))?;
            if matched.is_empty() {
                return Err(at(&self.file, ins.line, format!("{} failed: source {s:?} not found in the {} (or excluded by .dockerignore)", ins.cmd.to_uppercase(), if from.is_some() { "stage" } else { "build context" })));
            }
            sources.extend(matched);
        }
        // The cache key covers the sources' content.
        let mut h = Sha256::new();
        // The context's file digests are remembered between builds; a
        // stage's root is a fresh mount each time, so it is read in full.
        let mut sums = from.is_none().then(|| SumCache::load(self.engine.paths().build_sums()));
        for s in &sources {
            hash_tree(&root, s, &mut h, sums.as_mut());
        }
        if let Some(c) = sums {
            c.save();
        }
        for (n, c) in &heredoc_files {
            h.update(format!("{n}\0{c}").as_bytes());
        }
        let key = self.chain_after(st, ins, &hex::encode(h.finalize()));
        if self.try_cache(st, &key)? {
            if let Some(m) = mounted {
                m.release();
            }
            return Ok(());
        }
        let tmp = self.engine.paths().tmp().join(format!("import-{}-copy-{}", std::process::id(), &store::new_id()[..12]));
        let result = (|| -> Result<image::StoredLayer> {
            let tarpath = tmp.with_extension("tar");
            let f = std::fs::File::create(&tarpath).map_err(io(tarpath.display()))?;
            let mut tb = tar::Builder::new(std::io::BufWriter::new(f));
            tb.follow_symlinks(false);
            let mut added_dirs = Vec::new();
            for src in &sources {
                let rel = src.strip_prefix(&root).unwrap_or(src);
                let md = std::fs::symlink_metadata(src).map_err(io(src.display()))?;
                let target = if md.is_dir() {
                    // Copying a directory copies its contents.
                    dest.clone()
                } else if dest_is_dir {
                    format!("{}/{}", dest.trim_end_matches('/'), src.file_name().unwrap_or_default().to_string_lossy())
                } else {
                    dest.clone()
                };
                if is_add && md.is_file() && is_archive(src) {
                    self.add_archive(&mut tb, src, &dest, &tmp).map_err(|e| at(&self.file, ins.line, e))?;
                    continue;
                }
                parent_dirs(&mut tb, &target, &mut added_dirs).map_err(io("writing the step's layer"))?;
                append_tree(&mut tb, src, Path::new(target.trim_start_matches('/')), uid, gid, chmod, &root, if from.is_none() { &self.ignore } else { &[] }, rel)
                    .map_err(io(src.display()))?;
            }
            for (name, content) in &heredoc_files {
                let target = if dest_is_dir || heredoc_files.len() > 1 { format!("{}/{name}", dest.trim_end_matches('/')) } else { dest.clone() };
                parent_dirs(&mut tb, &target, &mut added_dirs).map_err(io("writing the step's layer"))?;
                let mut hd = tar::Header::new_gnu();
                hd.set_size(content.len() as u64);
                hd.set_mode(chmod.unwrap_or(0o644));
                hd.set_uid(uid.unwrap_or(0) as u64);
                hd.set_gid(gid.unwrap_or(0) as u64);
                hd.set_mtime(0);
                tb.append_data(&mut hd, target.trim_start_matches('/'), content.as_bytes()).map_err(io("writing the step's layer"))?;
            }
            tb.into_inner().and_then(|mut w| w.flush()).map_err(io("writing the step's layer"))?;
            let mut f = std::fs::File::open(&tarpath).map_err(io(tarpath.display()))?;
            let parent_chain = top_chain(st);
            let mut db = self.engine.db();
            let l = image::store_layer(self.engine.paths(), &mut db, &mut f, parent_chain.as_deref(), &format!("{} step {}", ins.cmd.to_uppercase(), self.step), None, None)
                ?;
            let _ = std::fs::remove_file(&tarpath);
            Ok(l)
        })();
        if let Some(m) = mounted {
            m.release();
        }
        let _ = std::fs::remove_dir_all(&tmp);
        let layer = result?;
        st.config.history.push(History { created: store::now_image_time(), created_by: history_text(ins), comment: String::new(), empty_layer: false });
        let id = self.commit(st, Some(layer), &key)?;
        st.chain = key;
        say(self.opts, &format!(" ---> {}", short(&id)));
        Ok(())
    }

    /// ADD of a local tar: its content, unpacked safely, goes under dest.
    fn add_archive(&self, tb: &mut tar::Builder<std::io::BufWriter<std::fs::File>>, src: &Path, dest: &str, tmp: &Path) -> std::result::Result<(), String> {
        let dir = tmp.join("add");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let f = std::fs::File::open(src).map_err(|e| e.to_string())?;
        let rd = image::tar::decompressed(f).map_err(|e| e.to_string())?;
        image::tar::unpack(rd, &dir).map_err(|e| format!("ADD {}: {e}", src.display()))?;
        append_tree(tb, &dir, Path::new(dest.trim_start_matches('/')), None, None, None, &dir, &[], Path::new("")).map_err(|e| e.to_string())
    }

    /// A readable root of a stage or image for COPY --from.
    fn stage_root(&self, r: &str, ins: &Instruction) -> Result<(PathBuf, Option<Mounted>)> {
        let st = match self.stages.get(&r.to_lowercase()) {
            Some(s) => s.clone(),
            None => {
                let img = self.engine.image(r).map_err(|e| at(&self.file, ins.line, format!("COPY --from={r}: {e}")))?;
                state_of(self.engine, &img).map_err(BuildError::Other)?
            }
        };
        let dirs: Vec<PathBuf> = chains_of(&st).iter().rev().map(|c| self.engine.paths().layer_dir(c).join("diff")).collect();
        match dirs.len() {
            0 => Err(at(&self.file, ins.line, format!("COPY --from={r}: the stage has no files"))),
            1 => Ok((dirs[0].clone(), None)),
            _ => {
                let m = self.engine.paths().tmp().join(format!("import-{}-from-{}", std::process::id(), &store::new_id()[..12]));
                std::fs::create_dir_all(&m).map_err(io(m.display()))?;
                let data = format!("lowerdir={}", dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":"));
                crate::sys::mount::mount(Some("overlay"), &m, Some("overlay"), crate::sys::mount::MsFlags::MS_RDONLY, Some(&data))
                    .map_err(|e| at(&self.file, ins.line, format!("COPY --from={r}: {e}")))?;
                Ok((m.clone(), Some(Mounted(m))))
            }
        }
    }

    /// The difference a RUN made: its container's upper dir as a layer.
    fn layer_from_dir(&self, upper: &Path, st: &State, skip_runtime_files: bool) -> Result<image::StoredLayer> {
        let tarpath = self.engine.paths().tmp().join(format!("import-{}-run-{}.tar", std::process::id(), &store::new_id()[..12]));
        let r = (|| -> std::io::Result<()> {
            let f = std::fs::File::create(&tarpath)?;
            let mut tb = tar::Builder::new(std::io::BufWriter::new(f));
            tb.follow_symlinks(false);
            diff_tree(&mut tb, upper, Path::new(""), skip_runtime_files)?;
            tb.into_inner()?.flush()
        })();
        r.map_err(io("reading the step's changes"))?;
        let mut f = std::fs::File::open(&tarpath).map_err(io(tarpath.display()))?;
        let parent_chain = top_chain(st);
        let mut db = self.engine.db();
        let l = image::store_layer(self.engine.paths(), &mut db, &mut f, parent_chain.as_deref(), "RUN step", None, None);
        let _ = std::fs::remove_file(&tarpath);
        Ok(l?)
    }
}

/// A temporary read-only overlay, unmounted on release.
struct Mounted(PathBuf);

impl Mounted {
    fn release(self) {
        let _ = crate::sys::mount::umount_detach(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

fn words_join(a: &Args) -> String {
    match a {
        Args::Shell(s) | Args::Text(s) => s.clone(),
        Args::Words(w) | Args::Json(w) => w.join(" "),
        Args::KeyValues(kv) => kv.iter().map(|(k, v, s)| format!("{k}{s}{v}")).collect::<Vec<_>>().join(" "),
        Args::Healthcheck { .. } | Args::OnBuild(_) | Args::Empty => String::new(),
    }
}

fn words_of_args(a: &Args) -> Vec<String> {
    match a {
        Args::Shell(s) | Args::Text(s) => s.split_whitespace().map(String::from).collect(),
        Args::Words(w) | Args::Json(w) => w.clone(),
        Args::KeyValues(kv) => kv.iter().map(|(k, v, _)| format!("{k}={v}")).collect(),
        Args::Healthcheck { .. } | Args::OnBuild(_) | Args::Empty => vec![],
    }
}

fn history_text(ins: &Instruction) -> String {
    let o = ins.original.trim();
    match ins.cmd.as_str() {
        "run" => format!("RUN {}", o.split_once(char::is_whitespace).map(|x| x.1).unwrap_or("").trim()),
        _ => o.to_string(),
    }
}

fn parse_chown(c: &str) -> Option<(Option<u32>, Option<u32>)> {
    let (u, g) = match c.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (c, None),
    };
    let u: u32 = if u == "root" { 0 } else { u.parse().ok()? };
    let g: u32 = match g {
        None => u,
        Some("root") => 0,
        Some(g) => g.parse().ok()?,
    };
    Some((Some(u), Some(g)))
}

fn is_archive(p: &Path) -> bool {
    let mut b = [0u8; 262];
    let n = std::fs::File::open(p).and_then(|mut f| f.read(&mut b)).unwrap_or(0);
    let compressed = matches!(image::tar::Compression::sniff(&b[..n]), image::tar::Compression::Gzip | image::tar::Compression::Zstd);
    compressed || (n >= 262 && &b[257..262] == b"ustar")
}

fn chains_of(st: &State) -> Vec<String> {
    let mut out = Vec::new();
    let mut parent: Option<String> = None;
    for d in &st.config.rootfs.diff_ids {
        let c = image::chain_id(parent.as_deref(), d);
        out.push(c.clone());
        parent = Some(c);
    }
    out
}

fn top_chain(st: &State) -> Option<String> {
    chains_of(st).pop()
}

/// A stage state from a stored image.
fn state_of(engine: &dyn Host, img: &Image) -> std::result::Result<State, String> {
    let descs = image::manifest_of(engine.paths(), img).map_err(|e| e.to_string())?.layers().clone();
    Ok(State { config: img.config.clone(), descs, id: Some(img.id.clone()), args: BTreeMap::new(), shell: vec!["/bin/sh".into(), "-c".into()], chain: img.id.clone() })
}

// ---- .dockerignore and sources ----

fn read_dockerignore(ctx: &Path) -> Vec<(bool, String)> {
    std::fs::read_to_string(ctx.join(".dockerignore"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.strip_prefix('!') {
            Some(p) => (false, clean_pattern(p)),
            None => (true, clean_pattern(l)),
        })
        .collect()
}

fn clean_pattern(p: &str) -> String {
    p.trim().trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_string()
}

/// Is `rel` (a path relative to the context) excluded? The last matching
/// pattern wins, as in docker; a pattern matching a parent excludes children.
pub fn ignored(rules: &[(bool, String)], rel: &str) -> bool {
    let mut out = false;
    let parts: Vec<&str> = rel.split('/').collect();
    for (exclude, pat) in rules {
        let hit = (1..=parts.len()).any(|n| glob_match(pat, &parts[..n].join("/")));
        if hit {
            out = *exclude;
        }
    }
    out
}

/// Glob with `*`, `?`, `[...]` within a component and `**` across them.
pub fn glob_match(pat: &str, s: &str) -> bool {
    let p: Vec<&str> = pat.split('/').collect();
    let t: Vec<&str> = s.split('/').collect();
    match_parts(&p, &t)
}

fn match_parts(p: &[&str], t: &[&str]) -> bool {
    match (p.first(), t.first()) {
        (None, None) => true,
        (Some(&"**"), _) => match_parts(&p[1..], t) || (!t.is_empty() && match_parts(p, &t[1..])),
        (Some(a), Some(b)) => component_match(a.as_bytes(), b.as_bytes()) && match_parts(&p[1..], &t[1..]),
        _ => false,
    }
}

fn component_match(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => component_match(&p[1..], s) || (!s.is_empty() && component_match(p, &s[1..])),
        (Some(b'?'), Some(_)) => component_match(&p[1..], &s[1..]),
        (Some(b'['), Some(c)) => match p.iter().position(|&x| x == b']') {
            Some(end) => {
                let set = &p[1..end];
                let (neg, set) = if set.first() == Some(&b'^') || set.first() == Some(&b'!') { (true, &set[1..]) } else { (false, set) };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == b'-' {
                        hit |= set[i] <= *c && *c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == *c;
                        i += 1;
                    }
                }
                hit != neg && component_match(&p[end + 1..], &s[1..])
            }
            None => false,
        },
        (Some(b'\\'), Some(c)) if p.len() > 1 => p[1] == *c && component_match(&p[2..], &s[1..]),
        (Some(a), Some(b)) => a == b && component_match(&p[1..], &s[1..]),
        _ => false,
    }
}

/// Resolves a COPY source (maybe a glob) inside `root`; never outside.
fn glob_in(root: &Path, src: &str, ignore: &[(bool, String)]) -> std::result::Result<Vec<PathBuf>, String> {
    let mut clean = PathBuf::new();
    for c in Path::new(src).components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::ParentDir
                if !clean.pop() => {
                    return Err(format!("source {src:?} is outside the build context"));
                }
            _ => {}
        }
    }
    let rel = clean.to_string_lossy().into_owned();
    if rel.is_empty() {
        return Ok(vec![root.to_path_buf()]);
    }
    if !rel.contains(['*', '?', '[']) {
        let p = root.join(&rel);
        // A symlink in the context must not lead a COPY out of it.
        if let Ok(real) = p.canonicalize()
            && !real.starts_with(root) {
                return Err(format!("source {src:?} is outside the build context (it resolves to {})", real.display()));
            }
        if std::fs::symlink_metadata(&p).is_err() || ignored(ignore, &rel) {
            return Ok(vec![]);
        }
        return Ok(vec![p]);
    }
    let mut out = Vec::new();
    walk_match(root, root, &rel, ignore, &mut out);
    out.sort();
    Ok(out)
}

fn walk_match(root: &Path, dir: &Path, pat: &str, ignore: &[(bool, String)], out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned();
        if ignored(ignore, &rel) {
            continue;
        }
        if glob_match(pat, &rel) {
            out.push(p.clone());
        } else if p.is_dir() && !e.file_type().map(|t| t.is_symlink()).unwrap_or(true) && pat.split('/').count() > rel.split('/').count() {
            walk_match(root, &p, pat, ignore, out);
        }
    }
}

fn hash_tree(root: &Path, p: &Path, h: &mut Sha256, mut sums: Option<&mut SumCache>) {
    let Ok(md) = std::fs::symlink_metadata(p) else { return };
    h.update(p.strip_prefix(root).unwrap_or(p).to_string_lossy().as_bytes());
    h.update(format!("\0{:o}\0", md.mode()).as_bytes());
    if md.is_file() {
        let known = sums.as_deref().and_then(|c| c.get(p, &md));
        let sum = match known {
            Some(s) => s,
            None => match crate::sys::sha256_file(p) {
                Ok(s) => {
                    if let Some(c) = sums.as_deref_mut() {
                        c.put(p, &md, &s);
                    }
                    s
                }
                Err(_) => return,
            },
        };
        h.update(sum.as_bytes());
    } else if md.file_type().is_symlink() {
        if let Ok(t) = std::fs::read_link(p) {
            h.update(t.to_string_lossy().as_bytes());
        }
    } else if md.is_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(p).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        names.sort();
        for n in names {
            hash_tree(root, &n, h, sums.as_deref_mut());
        }
    }
}

/// Digests of the build context's files, kept in `Paths::build_sums` from one
/// build to the next under what stat says of each file (device, inode,
/// size, mtime and ctime), as git's index and BuildKit keep theirs: a
/// cached rebuild with a 10 MiB COPY then reads no file (8 ms less).
/// Nothing can set a file's ctime back, so a changed file misses; a file
/// changed within the last 2 s is not remembered, since a change in the
/// same clock tick as its hashing would leave its times as they were.
struct SumCache {
    path: PathBuf,
    map: HashMap<String, (String, String)>,
    dirty: bool,
}

/// Entries kept at most: a few MB of context files' digests.
const SUMS_MAX: usize = 20_000;

impl SumCache {
    fn load(path: PathBuf) -> SumCache {
        let mut map = HashMap::new();
        for l in std::fs::read_to_string(&path).unwrap_or_default().lines() {
            let mut f = l.splitn(3, '\t');
            if let (Some(k), Some(s), Some(p)) = (f.next(), f.next(), f.next()) {
                map.insert(p.to_string(), (k.to_string(), s.to_string()));
            }
        }
        SumCache { path, map, dirty: false }
    }

    fn stat_key(md: &std::fs::Metadata) -> String {
        format!("{}:{}:{}:{}.{}:{}.{}", md.dev(), md.ino(), md.size(), md.mtime(), md.mtime_nsec(), md.ctime(), md.ctime_nsec())
    }

    fn get(&self, p: &Path, md: &std::fs::Metadata) -> Option<String> {
        let (k, s) = self.map.get(p.to_str()?)?;
        (*k == Self::stat_key(md)).then(|| s.clone())
    }

    fn put(&mut self, p: &Path, md: &std::fs::Metadata, sum: &str) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let Some(name) = p.to_str() else { return };
        if now - md.ctime() < 2 || name.contains(['\t', '\n']) || (self.map.len() >= SUMS_MAX && !self.map.contains_key(name)) {
            return;
        }
        self.map.insert(name.to_string(), (Self::stat_key(md), sum.to_string()));
        self.dirty = true;
    }

    /// Written whole and renamed over: two builds at once lose, at worst,
    /// the other's new entries.
    fn save(self) {
        if !self.dirty {
            return;
        }
        let mut out = String::new();
        for (p, (k, s)) in &self.map {
            out.push_str(&format!("{k}\t{s}\t{p}\n"));
        }
        let tmp = self.path.with_extension(format!("{}.tmp", std::process::id()));
        if std::fs::write(&tmp, out).and_then(|_| std::fs::rename(&tmp, &self.path)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

fn parent_dirs<W: Write>(tb: &mut tar::Builder<W>, target: &str, added: &mut Vec<String>) -> std::io::Result<()> {
    let t = target.trim_start_matches('/');
    let parts: Vec<&str> = t.split('/').collect();
    for n in 1..parts.len() {
        let d = parts[..n].join("/");
        if d.is_empty() || added.contains(&d) {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        tb.append_data(&mut h, format!("{d}/"), std::io::empty())?;
        added.push(d);
    }
    Ok(())
}

/// Adds a file or tree under `target` (relative), with ownership and mode
/// overrides; skips what .dockerignore excludes.
#[allow(clippy::too_many_arguments)]
fn append_tree<W: Write>(
    tb: &mut tar::Builder<W>,
    src: &Path,
    target: &Path,
    uid: Option<u32>,
    gid: Option<u32>,
    chmod: Option<u32>,
    root: &Path,
    ignore: &[(bool, String)],
    rel: &Path,
) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(src)?;
    let mut h = tar::Header::new_gnu();
    h.set_metadata(&md);
    if let Some(u) = uid {
        h.set_uid(u as u64);
    }
    if let Some(g) = gid {
        h.set_gid(g as u64);
    }
    if md.is_dir() {
        if !target.as_os_str().is_empty() {
            if let Some(m) = chmod {
                h.set_mode(m);
            }
            h.set_size(0);
            tb.append_data(&mut h, format!("{}/", target.display()), std::io::empty())?;
        }
        let mut names: Vec<_> = std::fs::read_dir(src)?.flatten().collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let child_rel = rel.join(e.file_name());
            if !ignore.is_empty() && ignored(ignore, &child_rel.to_string_lossy()) {
                continue;
            }
            append_tree(tb, &e.path(), &target.join(e.file_name()), uid, gid, chmod, root, ignore, &child_rel)?;
        }
        return Ok(());
    }
    if md.file_type().is_symlink() {
        let t = std::fs::read_link(src)?;
        h.set_size(0);
        tb.append_link(&mut h, target, t)?;
        return Ok(());
    }
    if md.is_file() {
        if let Some(m) = chmod {
            h.set_mode(m);
        }
        let f = std::fs::File::open(src)?;
        tb.append_data(&mut h, target, f)?;
    }
    Ok(())
}

/// Walks an overlay upper dir: whiteouts (0:0 char devices) become `.wh.`
/// entries, opaque dirs get `.wh..wh..opq`, everything else as it is.
pub(crate) fn diff_tree<W: Write>(tb: &mut tar::Builder<W>, dir: &Path, rel: &Path, skip_runtime_files: bool) -> std::io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let p = e.path();
        let r = rel.join(e.file_name());
        let md = std::fs::symlink_metadata(&p)?;
        if skip_runtime_files && md.is_file() && md.len() == 0 && ["etc/hosts", "etc/hostname", "etc/resolv.conf"].contains(&r.to_string_lossy().as_ref()) {
            // Mount points the runtime made, not the step's work.
            continue;
        }
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(0);
            h.set_mode(0o644);
            h.set_mtime(0);
            let wh = r.parent().unwrap_or(Path::new("")).join(format!(".wh.{}", e.file_name().to_string_lossy()));
            tb.append_data(&mut h, wh, std::io::empty())?;
            continue;
        }
        if md.is_dir() {
            let mut h = tar::Header::new_gnu();
            h.set_metadata(&md);
            h.set_size(0);
            tb.append_data(&mut h, format!("{}/", r.display()), std::io::empty())?;
            if xattr_opaque(&p) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(0);
                h.set_mode(0o644);
                h.set_mtime(0);
                tb.append_data(&mut h, r.join(".wh..wh..opq"), std::io::empty())?;
            }
            diff_tree(tb, &p, &r, false)?;
            continue;
        }
        tb.append_path_with_name(&p, &r)?;
    }
    Ok(())
}

fn xattr_opaque(p: &Path) -> bool {
    crate::sys::xattr::get(p, "trusted.overlay.opaque").map(|v| v == b"y").unwrap_or(false)
}

// ---- the cache table ----

fn cache_table(db: &store::Db) -> Result<()> {
    db.conn
        .execute_batch("CREATE TABLE IF NOT EXISTS build_cache(key TEXT PRIMARY KEY, image_id TEXT NOT NULL)")
        .map_err(BuildError::Cache)
}

fn cache_get(db: &store::Db, key: &str) -> Result<Option<String>> {
    cache_table(db)?;
    store::get_opt::<String>(&db.conn, "SELECT image_id FROM build_cache WHERE key=?1", [key]).map_err(BuildError::from)
}

fn cache_put(db: &store::Db, key: &str, id: &str) -> Result<()> {
    cache_table(db)?;
    db.conn
        .execute("INSERT OR REPLACE INTO build_cache(key, image_id) VALUES(?1, ?2)", [key, id])
        .map(|_| ())
        .map_err(BuildError::Cache)
}

/// Images the build cache holds as intermediate steps.
pub fn cached_image_ids(db: &store::Db) -> Vec<String> {
    if cache_table(db).is_err() {
        return vec![];
    }
    let Ok(mut st) = db.conn.prepare("SELECT DISTINCT image_id FROM build_cache") else { return vec![] };
    st.query_map([], |r| r.get::<_, String>(0)).map(|rows| rows.filter_map(|r| r.ok()).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "d/a.txt"));
        assert!(glob_match("**/*.txt", "d/e/a.txt"));
        assert!(glob_match("file[0-9]", "file7"));
        assert!(!glob_match("file[!0-9]", "file7"));
        assert!(glob_match("a?c", "abc"));
    }

    #[test]
    fn dockerignore_last_match_wins() {
        let rules = vec![(true, "*.log".to_string()), (false, "keep.log".to_string()), (true, "build".to_string())];
        assert!(ignored(&rules, "x.log"));
        assert!(!ignored(&rules, "keep.log"));
        assert!(ignored(&rules, "build/out.o"));
        assert!(!ignored(&rules, "src/main.c"));
    }

    #[test]
    fn chown_is_numeric() {
        assert_eq!(parse_chown("1000:1000"), Some((Some(1000), Some(1000))));
        assert_eq!(parse_chown("33"), Some((Some(33), Some(33))));
        assert_eq!(parse_chown("www-data"), None);
    }
}
