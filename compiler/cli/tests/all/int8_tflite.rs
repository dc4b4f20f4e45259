//! int8 TFLite MobileNets converted to ONNX by tf2onnx
//! (tests/fixtures/make_tflite_int8_fixtures.py): TFLiteConverter's
//! full-integer quantization of seeded Keras v1 and v2 (int8 activations,
//! int8 per-channel weights with zero point 0, int32 biases, asymmetric
//! pads, NHWC input with the Transpose after its QuantizeLinear). The
//! generated code must equal onnxruntime (default optimizations) and the
//! integer reference bit for bit; against TFLite's own interpreter (its
//! fixed-point requantization is not onnxruntime's) it must stay within
//! one output step, and the difference is printed.

use crate::common::{f32_rows, fixture_cases};
use mncc::interp::{self, InputData};
use mncc_cli::harness;

#[test]
fn tflite_int8_models_match_onnxruntime_bit_for_bit() {
    let cases = fixture_cases("int8_tflite");
    assert_eq!(cases.len(), 2, "v1 and v2");
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let model = mncc::load(&dir.join("model.onnx")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = mncc::compile(&model).unwrap_or_else(|e| panic!("{name}: {e}"));
        let integer = p.layers.iter().filter(|l| l.op.starts_with('Q')).count();
        let h = harness::build(&p, true).unwrap();
        // The output step: the scale the last DequantizeLinear reads.
        let g = &model.graph;
        let step = g
            .nodes
            .iter()
            .rev()
            .find(|n| matches!(n.op, mncc::ir::Op::Dequantize))
            .and_then(|n| g.tensors[n.inputs[0]].ty.quant.as_ref())
            .map(|q| q.scale[0])
            .expect("a dequantized output");
        let inputs = f32_rows(&dir.join("input.npy"));
        let (ort, lite) = (f32_rows(&dir.join("expected.npy")), f32_rows(&dir.join("litert.npy")));
        let (mut same_ort, mut same_ref, mut same_lite, mut n) = (0, 0, 0, 0);
        let mut lite_steps = 0f32;
        for ((x, o), l) in inputs.into_iter().zip(&ort).zip(&lite) {
            let x = InputData::F32(x);
            let got = h.run(&x).unwrap();
            let reference = interp::run(&model.graph, &x).unwrap();
            same_ort += got.iter().zip(o).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
            same_ref += got.iter().zip(&reference).filter(|(a, b)| **a as f64 == **b).count();
            same_lite += got.iter().zip(l).filter(|(a, b)| a == b).count();
            lite_steps = got
                .iter()
                .zip(l)
                .map(|(a, b)| (a - b).abs() / step)
                .fold(lite_steps, f32::max);
            n += got.len();
        }
        println!(
            "{name}: {integer}/{} layers integer; {same_ort}/{n} outputs equal onnxruntime's, {same_ref}/{n} the integer reference, {same_lite}/{n} TFLite's (at most {lite_steps} output steps apart)",
            p.layers.len()
        );
        if same_ort != n || same_ref != n || lite_steps > 1.0 + 1e-3 {
            failures.push(format!(
                "{name}: {same_ort}/{n} onnxruntime, {same_ref}/{n} reference, TFLite {lite_steps} steps"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
