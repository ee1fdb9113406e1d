//! The record of a `berth test` run, kept by the engine so that what a run
//! made is removed even when the runner itself dies: every container,
//! network and volume a test creates carries the label `berth.test.run=<id>`,
//! and images it builds (which carry no labels of ours) are written to the
//! run's journal. A run whose process is gone is swept by the next
//! `berth test` and by `berth system prune`.

use std::io::Write;
use std::path::PathBuf;

use crate::engine::{Engine, Result};
use crate::sys::proc;

/// The label every object of a test run carries.
pub const RUN_LABEL: &str = "berth.test.run";
/// The label naming the file and test that made an object.
pub const TEST_LABEL: &str = "berth.test";
/// The label holding the name scope of the file's run (one file may run
/// twice in one run).
pub const SCOPE_LABEL: &str = "berth.test.scope";

const KEPT: &str = "kept";

pub struct TestRun {
    pub id: String,
    dir: PathBuf,
}

/// The process identity of a run: pid plus its start time, so a recycled
/// pid does not keep a dead run alive.
fn me() -> String {
    let pid = std::process::id() as i32;
    format!("{pid} {}", proc::start_time(pid).unwrap_or(0))
}

fn alive(owner: &str) -> bool {
    let mut w = owner.split_whitespace();
    let (Some(pid), Some(start)) = (w.next().and_then(|p| p.parse::<i32>().ok()), w.next().and_then(|s| s.parse::<u64>().ok())) else { return false };
    proc::is_alive(pid, Some(start))
}

fn runs_dir(e: &Engine) -> PathBuf {
    e.paths.root.join("test-runs")
}

impl TestRun {
    pub fn begin(e: &Engine) -> Result<TestRun> {
        let id = crate::store::new_id()[..12].to_string();
        let dir = runs_dir(e).join(&id);
        // Built aside and renamed into place: a sweep never sees a run
        // without its owner.
        let tmp = runs_dir(e).join(format!(".{id}"));
        let fail = |source: std::io::Error| crate::engine::EngineError::Io { context: format!("recording test run in {}", dir.display()), source };
        std::fs::create_dir_all(&tmp).map_err(fail)?;
        std::fs::write(tmp.join("owner"), me()).map_err(fail)?;
        std::fs::rename(&tmp, &dir).map_err(fail)?;
        Ok(TestRun { id, dir })
    }

    /// Notes an image the run built, before anything else can fail.
    pub fn journal_image(&self, id: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("images")) {
            let _ = writeln!(f, "{id}");
        }
    }

    /// The run ended normally: its objects are gone, so is its record.
    pub fn end(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The run ended keeping failed tests' objects: no sweep may take them;
    /// `berth test --clean ID` does.
    pub fn keep(&self) {
        let tmp = self.dir.join(".owner");
        if std::fs::write(&tmp, KEPT).is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join("owner"));
        }
    }
}

/// What a sweep removed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Swept {
    pub runs: Vec<String>,
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
    pub images: usize,
}

/// Removes everything runs whose runner is gone left behind.
pub fn sweep_dead(e: &Engine) -> Result<Swept> {
    let mut s = Swept::default();
    for d in std::fs::read_dir(runs_dir(e)).into_iter().flatten().flatten() {
        let young = d.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|a| a < std::time::Duration::from_secs(60)));
        if d.file_name().to_string_lossy().starts_with('.') {
            // A record being made, or one a crash left half made.
            if !young {
                let _ = std::fs::remove_dir_all(d.path());
            }
            continue;
        }
        let owner = std::fs::read_to_string(d.path().join("owner")).unwrap_or_default();
        if alive(&owner) || owner == KEPT {
            continue;
        }
        let id = d.file_name().to_string_lossy().into_owned();
        let images: Vec<String> = std::fs::read_to_string(d.path().join("images")).unwrap_or_default().lines().map(str::to_string).collect();
        let r = remove_labelled(e, &id, &images)?;
        s.containers += r.containers;
        s.networks += r.networks;
        s.volumes += r.volumes;
        s.images += r.images;
        s.runs.push(id);
        let _ = std::fs::remove_dir_all(d.path());
    }
    Ok(s)
}

/// Removes every object of a run, and its record.
pub fn remove_run(e: &Engine, id: &str) -> Result<Swept> {
    let dir = runs_dir(e).join(id);
    if id.is_empty() || id.contains('/') || !dir.is_dir() {
        return Err(crate::engine::EngineError::Other(format!("no record of test run {id:?} (under {})", runs_dir(e).display())));
    }
    let images: Vec<String> = std::fs::read_to_string(dir.join("images")).unwrap_or_default().lines().map(str::to_string).collect();
    let s = remove_labelled(e, id, &images)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(s)
}

/// Removes the objects labelled with `label=value` pairs matching `run`
/// (and, if given, the test label), plus the listed images. Volumes used
/// only by the removed containers go too.
pub fn remove_labelled(e: &Engine, run: &str, images: &[String]) -> Result<Swept> {
    remove_matching(e, &|labels| labels.get(RUN_LABEL).map(String::as_str) == Some(run), images)
}

pub fn remove_matching(e: &Engine, pick: &dyn Fn(&std::collections::BTreeMap<String, String>) -> bool, images: &[String]) -> Result<Swept> {
    let networks = e.networks()?;
    let stacks: std::collections::BTreeSet<String> =
        networks.iter().filter(|n| pick(&n.labels)).filter_map(|n| n.labels.get(crate::service::stack::STACK_LABEL).cloned()).collect();
    let o = Objects {
        stacks: stacks.into_iter().collect(),
        services: e.services()?.into_iter().filter(|x| pick(&x.spec.labels)).map(|x| x.id).collect(),
        containers: e.containers(true)?.into_iter().filter(|c| pick(&c.spec.labels)).map(|c| c.id).collect(),
        networks: networks.into_iter().filter(|n| pick(&n.labels)).map(|n| n.id).collect(),
        volumes: e.volumes()?.into_iter().filter(|v| pick(&v.labels)).map(|v| v.name).collect(),
        images: images.to_vec(),
    };
    Ok(remove_objects(e, &o))
}

/// Objects to remove together, by id (volumes and stacks by name).
#[derive(Debug, Default)]
pub struct Objects {
    pub stacks: Vec<String>,
    pub services: Vec<String>,
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    /// Oldest first, as built.
    pub images: Vec<String>,
}

/// Removes them in the order that lets each go: stacks and services (their
/// replicas along), containers, stacks again (a container of the caller's
/// may have held a stack's network), networks, volumes, then images, newest
/// first (a build's final image before the step images under it) and never
/// by force (one another user tagged or runs stays).
pub fn remove_objects(e: &Engine, o: &Objects) -> Swept {
    let mut s = Swept::default();
    for st in &o.stacks {
        let _ = e.stack_remove(st);
    }
    for id in &o.services {
        let _ = e.service_remove(id);
    }
    for id in &o.containers {
        if e.remove_with(id, true, true).is_ok() {
            s.containers += 1;
        }
    }
    for st in &o.stacks {
        if e.stacks().is_ok_and(|l| l.iter().any(|x| &x.name == st)) {
            let _ = e.stack_remove(st);
        }
    }
    for id in &o.networks {
        if e.network_remove(id).is_ok() {
            s.networks += 1;
        }
    }
    for v in &o.volumes {
        if e.volume_remove(v).is_ok() {
            s.volumes += 1;
        }
    }
    for id in o.images.iter().rev() {
        if e.image_remove(id, false).is_ok() {
            s.images += 1;
        }
    }
    s
}
