//! TOML descriptions through parsing, validation and (small ones) the whole
//! compile path with seeded weights.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mncc_cli::fuzzing::toml(text, std::path::Path::new("/nonexistent"));
    }
});
