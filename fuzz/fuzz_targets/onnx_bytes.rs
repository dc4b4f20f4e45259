//! ONNX bytes (mutated from the fixtures) through the whole compile path up
//! to the generated source.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mncc_cli::fuzzing::onnx(data);
});
