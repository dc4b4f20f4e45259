//! Safetensors bytes as the weights of a v1 0.25 96 description, through
//! the whole compile path.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mncc_cli::fuzzing::safetensors(data);
});
