//! The whole compile path from one input's bytes to generated source,
//! without building it: what the fuzz targets (`fuzz/`) and the robustness
//! tests run. Each returns the error mncc reports; a panic, an abort or a
//! hang is the bug they look for.

use mncc::{codegen, Error};
use std::path::Path;

/// Optimizes, lowers and generates the source of `model`.
pub fn source(model: &mncc::Model) -> Result<String, Error> {
    let program = mncc::compile(model)?;
    codegen::source(
        &program,
        &codegen::WeightsEmbed::IncludeBytes("m.weights.bin".into()),
        "fuzz",
    )
    .map_err(Error::msg)
}

/// ONNX bytes to generated source.
pub fn onnx(bytes: &[u8]) -> Result<String, Error> {
    let graph = mncc::onnx::parse(bytes, "fuzz").map_err(Error)?;
    source(&mncc::Model {
        graph,
        files: Vec::new(),
    })
}

/// Whether a description is small enough to compile in a fuzzing run (the
/// seeded weights' calibration of a large model takes seconds: the limits
/// themselves are tested directly).
fn cheap(spec: &mncc::spec::ModelSpec) -> bool {
    spec.resolution <= 128 && spec.alpha <= 0.5 && spec.classes <= 1000
}

/// TOML text to generated source (weights files are resolved in `dir`).
/// Expensive descriptions are parsed and validated but not compiled.
pub fn toml(text: &str, dir: &Path) -> Result<Option<String>, Error> {
    let spec = mncc::spec::parse(text, "fuzz.toml", "fuzz", dir).map_err(Error)?;
    if !cheap(&spec) {
        return Ok(None);
    }
    source(&mncc::from_spec(spec)?).map(Some)
}

/// The description the safetensors target reads its weights for:
/// MobileNet v1 0.25 at 96x96, 10 classes, under torchvision's or mncc's
/// tensor names.
pub const SAFETENSORS_SPEC: &str =
    "arch = \"mobilenet_v1\"\nalpha = 0.25\nresolution = 96\nclasses = 10\n[weights]\nfile = \"w.safetensors\"\n";

/// Safetensors bytes, as the weights of [`SAFETENSORS_SPEC`], to generated
/// source.
pub fn safetensors(bytes: &[u8]) -> Result<String, Error> {
    let spec = mncc::spec::parse(SAFETENSORS_SPEC, "fuzz.toml", "fuzz", Path::new(".")).map_err(Error)?;
    let layers = mncc::arch::layers(&spec);
    let table = mncc::weights::from_safetensors(&spec, &layers, bytes, Path::new("w.safetensors"))?;
    let graph = mncc::arch::build(&spec, &layers, &table, spec.resolution)?;
    source(&mncc::Model {
        graph,
        files: Vec::new(),
    })
}

/// `.npy` bytes: parsed, and converted as `mncc verify` would.
pub fn npy(bytes: &[u8]) -> Result<usize, String> {
    let a = crate::npy::parse(bytes).map_err(|e| e.to_string())?;
    Ok(a.to_f64().len())
}
