use crate::engine::Engine;

pub fn run(_e: Engine) -> anyhow::Result<i32> {
    anyhow::bail!("the REPL is not wired yet")
}
