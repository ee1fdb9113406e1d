#![no_main]
//! Whole compose documents, handed over as a file the way users do, so that
//! YAML parsing, `${VAR}` interpolation and every section's walk all run.
//! Any input: a plan or an error, never a panic.

use std::path::PathBuf;
use std::sync::OnceLock;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    let f = FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("berth-fuzz-compose-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("compose.yaml")
    });
    std::fs::write(f, data).unwrap();
    let _ = berth::service::compose::parse_file(f);
});
