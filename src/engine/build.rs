//! The door's build methods, and the engine as the builder's host: the
//! store, its images and a throwaway container per RUN step.

use std::sync::MutexGuard;

use super::{Attach, Engine, EngineError};
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

impl Engine {
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
