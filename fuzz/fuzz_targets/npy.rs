//! `.npy` bytes through the reader `mncc verify` uses.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mncc_cli::fuzzing::npy(data);
});
