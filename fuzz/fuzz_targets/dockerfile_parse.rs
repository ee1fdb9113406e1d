#![no_main]
// Any input: parse and validate return Ok or Err, never panic; what parses
// prints back as S-expressions without panicking either.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(df) = berth::build::dockerfile::parse(s) {
            let _ = df.validate();
            for i in &df.instructions {
                let _ = berth::build::dockerfile::to_sexpr(i);
            }
        }
    }
});
