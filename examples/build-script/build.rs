//! Compiles model.toml into `$OUT_DIR/model.rs` (and its weight blob
//! `$OUT_DIR/model.weights.bin`, which model.rs embeds with `include_bytes!`).
//! `Build::compile` prints `cargo:rerun-if-changed` for the description and
//! any weights file, so editing them recompiles the model.

fn main() {
    // Display (not Debug) shows each problem on its own line.
    mncc::Build::new("model.toml")
        .compile()
        .unwrap_or_else(|e| panic!("{e}"));
}
