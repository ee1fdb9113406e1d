#![no_main]
// What users type on the command line and in compose files: durations,
// sizes and whole compose documents (variables included). None may panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = berth::parse::duration(s, None);
        let _ = berth::parse::duration_ms(s);
        let _ = berth::parse::memory(s);
    }
    // Through a file, as users hand it over, so interpolation runs too.
    let f = std::env::temp_dir().join(format!("berth-fuzz-compose-{}.yaml", std::process::id()));
    if std::fs::write(&f, data).is_ok() {
        let _ = berth::service::compose::parse_file(&f);
    }
});
