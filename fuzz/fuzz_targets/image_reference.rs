#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(r) = berth::image::Reference::parse(s) {
            // What parses must print back to something that parses the same.
            let again = berth::image::Reference::parse(&r.tag_key().unwrap_or_else(|| format!("{}@{}", r.familiar_name(), r.digest.clone().unwrap_or_default())));
            assert!(again.is_ok(), "{s:?} parsed but its normal form did not");
        }
    }
});
