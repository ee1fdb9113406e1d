//! The door's build methods, and the engine as the builder's host: the
//! store, its images and a throwaway container per RUN step.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::MutexGuard;

use super::{Attach, Engine, EngineError, chain, other};
use crate::build::builder::{self, BuildError, BuildOptions, HostError, StepOutput};
use crate::container::RunSpec;
use crate::image::Image;
use crate::store::{Db, Paths};

impl From<EngineError> for BuildError {
    fn from(e: EngineError) -> BuildError {
        BuildError::Host(Box::new(e))
    }
}

impl builder::Host for Engine {
    fn paths(&self) -> &Paths {
        &self.paths
    }

    fn db(&self) -> MutexGuard<'_, Db> {
        Engine::db(self)
    }

    fn image(&self, name: &str) -> std::result::Result<Image, HostError> {
        Ok(Engine::image(self, name)?)
    }

    fn image_or_pull(&self, name: &str, always: bool, credentials: Option<(String, String)>, say: &dyn Fn(&str)) -> std::result::Result<Image, HostError> {
        match Engine::image(self, name) {
            Err(e) if e.is_not_found() => {}
            Ok(_) if always => {}
            r => return Ok(r?),
        }
        // The reporter must be Send + Sync and `say` is neither: the lines
        // are gathered, then told in order once the pull has ended.
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let report: crate::image::registry::Reporter = std::sync::Arc::new(move |ev| {
            use crate::image::registry::Event;
            let l = match ev {
                Event::Status { id: Some(id), status } => format!("{id}: {status}"),
                Event::Status { id: None, status } => status,
                _ => return,
            };
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(l);
        });
        say(&format!("Pulling {name}{}", if always { "" } else { ", which is not here" }));
        let r = self.pull_as(name, crate::image::registry::Progress::Events(report), credentials);
        for l in lines.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            say(&l);
        }
        Ok(r?)
    }

    fn step_create(&self, spec: &RunSpec) -> std::result::Result<String, HostError> {
        Ok(self.create(spec)?.id)
    }

    fn step_run(&self, id: &str, show_output: bool) -> std::result::Result<StepOutput, HostError> {
        let attach = if show_output { Attach::Stdio { stdin: false, tty: false } } else { Attach::Capture };
        let o = self.start_attached(id, attach)?;
        Ok(StepOutput { code: o.code, stdout: o.stdout, stderr: o.stderr })
    }

    fn step_remove(&self, id: &str) {
        if let Err(e) = self.remove(id, true) {
            tracing::warn!("build: removing the step container {id}: {e}");
        }
    }
}

/// A build context received as a tar stream (the API's `/build`),
/// unpacked in a directory of its own under the store's tmp and removed
/// when dropped.
pub struct BuildContext {
    dir: PathBuf,
}

impl BuildContext {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for BuildContext {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("build: removing the context {}: {e}", self.dir.display());
        }
    }
}

impl Engine {
    /// Unpacks a build context sent as a tar (plain, gzip or zstd) with
    /// the same guards as a layer: nothing lands outside its directory.
    /// The pid in the name lets a later start sweep what a killed server left.
    pub fn build_context(&self, tar: &mut dyn Read) -> super::Result<BuildContext> {
        let dir = self.paths.tmp().join(format!("build-{}-{}", std::process::id(), &crate::store::new_id()[..16]));
        std::fs::create_dir_all(&dir).map_err(other(&format!("creating {}", dir.display())))?;
        let ctx = BuildContext { dir };
        let plain = crate::image::tar::decompressed(tar).map_err(chain("reading the build context"))?;
        crate::image::tar::unpack(plain, &ctx.dir).map_err(chain("unpacking the build context"))?;
        Ok(ctx)
    }

    /// `berth build`: runs the Dockerfile, tags and returns the image.
    pub fn build(&self, opts: &BuildOptions) -> std::result::Result<Image, BuildError> {
        builder::build(self, opts)
    }

    /// `build`, and whether the image is new: a fully cached build hands
    /// back one that was there before, which is not the caller's to remove.
    pub fn build_new(&self, opts: &BuildOptions) -> std::result::Result<(Image, bool), BuildError> {
        let before: std::collections::HashSet<String> = self.images()?.into_iter().map(|i| i.id).collect();
        let img = self.build(opts)?;
        let new = !before.contains(&img.id);
        Ok((img, new))
    }
}
