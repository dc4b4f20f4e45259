//! The real int8 MobileNets of `../shared/models` (public files that may
//! not be copied into this repository: the tests read them from there and
//! say so when they are absent) through the generated code, on the six
//! photos: bit for bit against the integer reference interpreter and
//! against onnxruntime's outputs (saved by
//! `tests/fixtures/make_int8_real_fixtures.py`), and the top-1 of
//! `../shared/models/README.md`.

use crate::common::repo;
use mncc::interp::{self, InputData};
use mncc_cli::harness;
use std::path::PathBuf;

const PHOTOS: [(&str, usize); 6] = [
    ("cat", 285),
    ("dog", 207),
    ("finch", 12),
    ("grace_hopper", 457),
    ("hot_dog", 934),
    ("parrot", 88),
];

fn shared_model(name: &str) -> Option<PathBuf> {
    let p = repo()
        .join("..")
        .join("shared")
        .join("models")
        .join(format!("{name}.onnx"));
    if p.exists() {
        Some(p)
    } else {
        println!(
            "{}: absent (the int8 models are read from ../shared/models); skipped",
            p.display()
        );
        None
    }
}

/// A photo fixture (uint8 NHWC) with torchvision's normalization, NCHW
/// `f32`: `(x / 255 - mean[c]) / std[c]` in `f32`, as the fixture script.
fn torch_input(stem: &str) -> Vec<f32> {
    let x = mncc_cli::npy::read(&repo().join(format!("tests/fixtures/keras_v1/{stem}.input.npy"))).unwrap();
    let mncc_cli::npy::NpyData::U8(px) = x.data else {
        panic!("u8 fixture")
    };
    let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    let mut nchw = vec![0.0f32; px.len()];
    for (i, &v) in px.iter().enumerate() {
        let (c, p) = (i % 3, i / 3);
        nchw[c * 224 * 224 + p] = (v as f32 / 255.0 - mean[c]) / std[c];
    }
    nchw
}

fn f32_npy(path: &str) -> Vec<f32> {
    match mncc_cli::npy::read(&repo().join(path)).unwrap().data {
        mncc_cli::npy::NpyData::F32(v) => v,
        _ => panic!("{path}: f32 expected"),
    }
}

/// Runs `name` on the six photos; returns, per photo, the outputs equal to
/// onnxruntime's (default optimizations) and the largest difference in
/// output quantization steps (the scale of the tensor the model's last
/// DequantizeLinear reads).
fn check_model(name: &str) -> Vec<(usize, f32)> {
    check_model_with(name, &PHOTOS)
}

/// [`check_model`] with the top-1 expected per photo.
fn check_model_with(name: &str, photos: &[(&str, usize)]) -> Vec<(usize, f32)> {
    let Some(path) = shared_model(name) else {
        return Vec::new();
    };
    let model = mncc::load(&path).unwrap();
    let g = &model.graph;
    let step = g
        .nodes
        .iter()
        .rev()
        .find(|n| matches!(n.op, mncc::ir::Op::Dequantize))
        .and_then(|n| g.tensors[n.inputs[0]].ty.quant.as_ref())
        .map_or(1.0, |q| q.scale[0]);
    let p = mncc::compile(&model).unwrap();
    let h = harness::build(&p, true).unwrap();
    let mut out = Vec::new();
    for &(stem, class) in photos {
        let x = InputData::F32(torch_input(stem));
        let got = h.run(&x).unwrap();
        let reference = interp::run(&model.graph, &x).unwrap();
        let ort = f32_npy(&format!("tests/fixtures/int8/{name}/{stem}.all.npy"));
        let same_ref = got.iter().zip(&reference).filter(|(a, b)| **a as f64 == **b).count();
        let same_ort = got.iter().zip(&ort).filter(|(a, b)| a == b).count();
        let steps = got
            .iter()
            .zip(&ort)
            .map(|(a, b)| (a - b).abs() / step)
            .fold(0.0f32, f32::max);
        let top1 = got
            .iter()
            .enumerate()
            .fold(0, |m, (i, v)| if *v > got[m] { i } else { m });
        println!(
            "{name} {stem}: top-1 {top1}; {same_ref}/{} outputs equal the integer reference, {same_ort}/{} onnxruntime's, at most {steps} steps apart",
            got.len(),
            got.len()
        );
        assert_eq!(
            same_ref,
            got.len(),
            "{name} {stem}: generated code differs from the integer reference"
        );
        assert_eq!(top1, class, "{name} {stem}");
        out.push((same_ort, steps));
    }
    out
}

/// The ONNX Model Zoo's QOperator MobileNet v2 (QuantizeLinear,
/// QLinearConv, QLinearAdd, QLinearGlobalAveragePool, QLinearMatMul, a
/// Shape chain, DequantizeLinear): identical to onnxruntime everywhere.
#[test]
fn qoperator_mobilenet_v2_matches_onnxruntime_bit_for_bit() {
    for (same, steps) in check_model("mobilenetv2-12-int8") {
        assert_eq!(same, 1000, "not bit-identical to onnxruntime ({steps} steps)");
    }
}

/// torchvision's MobileNet v2 quantized by onnxruntime's `quantize_static`
/// in QDQ form (uint8, per tensor, no Clip: ReLU6 left to the
/// QuantizeLinear saturation, 70 unused Constant nodes): its groups become
/// the integer layers onnxruntime fuses them into, so the outputs are
/// onnxruntime's (default optimizations) bit for bit. (With optimizations
/// off, onnxruntime computes the groups in float: its two levels disagree
/// on 5,314 of the 6,000 logits, by up to 16 output steps, with the same
/// top-1.)
#[test]
fn qdq_mobilenet_v2_matches_onnxruntime_bit_for_bit() {
    for (same, steps) in check_model("torchvision_mobilenet_v2_qdq_u8") {
        assert_eq!(same, 1000, "not bit-identical to onnxruntime ({steps} steps)");
    }
}

/// torchvision's MobileNet v2 quantized by onnxruntime's `quantize_dynamic`
/// (DynamicQuantizeLinear before each layer, ConvInteger and MatMulInteger
/// on uint8 weights, Cast, the Mul of the two scales, Add of the bias,
/// float Clip and residual Adds): identical to onnxruntime everywhere.
///
/// On grace_hopper this model's top two logits are close (667 mortarboard
/// 12.21, 457 bow tie 11.86 with the fixtures' crop-then-resize):
/// onnxruntime gives 667 on the same input, as mncc does; with
/// torchvision's resize-then-crop (`Resize(256)`, `CenterCrop(224)`), both
/// give the README's 457 (`examples/onnx-classify`'s `--preprocess torch`,
/// tested there).
#[test]
fn dynamic_mobilenet_v2_matches_onnxruntime_bit_for_bit() {
    let mut photos = PHOTOS;
    photos[3] = ("grace_hopper", 667);
    for (same, steps) in check_model_with("torchvision_mobilenet_v2_dynamic_int8", &photos) {
        assert_eq!(same, 1000, "not bit-identical to onnxruntime ({steps} apart)");
    }
}
