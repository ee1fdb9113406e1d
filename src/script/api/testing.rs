//! The functions of test files. `berth test` registers the working ones
//! (runner.rs) over the ones here, under the same help; elsewhere they
//! say where they work, and help describes them in every engine.

use rhai::{EvalAltResult, FnPtr, Map, Position};

use super::{doc, Doc};
use crate::script::{rerr, RResult, SKIP_KEY};

pub const TEST: Doc = doc("test(name, fn)", "a test case under `berth test`; its objects are removed after it");
pub const BEFORE_EACH: Doc = doc("before_each(fn)", "under `berth test`: runs before each test of the file");
pub const AFTER_EACH: Doc = doc("after_each(fn)", "under `berth test`: runs after each test of the file, pass or fail");
pub const BEFORE_ALL: Doc = doc("before_all(fn)", "under `berth test`: runs once before the file's first test; what it makes (a shared fixture) is removed after the last");
pub const AFTER_ALL: Doc = doc("after_all(fn)", "under `berth test`: runs once after the file's last test, pass or fail");

fn elsewhere(name: &str) -> Box<EvalAltResult> {
    rerr(format!("{name}() works in test files run by `berth test FILE`"))
}

pub fn register(r: &mut rhai::Engine) {
    TEST.func(r, |_: &str, _: FnPtr| -> RResult<()> { Err(elsewhere("test")) });
    for hook in [BEFORE_EACH, AFTER_EACH, BEFORE_ALL, AFTER_ALL] {
        hook.func(r, move |_: FnPtr| -> RResult<()> { Err(elsewhere(hook.name())) });
    }
    // A skipped test ends by this error; the runner tells it from a failure.
    doc("skip(reason)", "ends the current test as skipped").func(r, |reason: &str| -> RResult<()> {
        let mut m = Map::new();
        m.insert(SKIP_KEY.into(), reason.into());
        Err(Box::new(EvalAltResult::ErrorRuntime(m.into(), Position::NONE)))
    });
}
