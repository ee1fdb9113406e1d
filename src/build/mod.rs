//! Dockerfile builds: the pure parts (parser, shell-word expansion).
//!
//! `dockerfile::parse` turns a Dockerfile into instructions with their line
//! numbers; `shell::expand` / `shell::split_words` apply Dockerfile variable
//! substitution and quoting to an instruction's words. Neither makes a
//! system call.

pub mod dockerfile;
pub mod shell;
pub mod builder;
