#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let env = |k: &str| if k == "V" { Some("value with spaces".to_string()) } else { None };
        let _ = berth::build::shell::expand(s, &env, '\\');
        let _ = berth::build::shell::split_words(s, &env, '`');
    }
});
