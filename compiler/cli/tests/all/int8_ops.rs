//! One quantized operator per model (tests/fixtures/make_int8_op_fixtures.py):
//! QLinearMul (same shape and per channel), QLinearSigmoid,
//! QLinearLeakyRelu, QLinearSoftmax, QLinearAveragePool, a QDQ HardSigmoid
//! a QDQ Sigmoid and a float ReduceMean between Q/DQ, each for uint8 and
//! int8, every value the operator writes an output. The generated code
//! must equal onnxruntime's outputs (default optimizations) and the
//! integer reference bit for bit on every input. One float case, a
//! Sigmoid: onnxruntime's bits too (MLAS's approximation, as mncc computes
//! it), and within 2e-7 of the interpreter's exact logistic.

use crate::common::{f32_rows, fixture_cases};
use mncc::interp::{self, InputData};
use mncc_cli::harness;

#[test]
fn every_operator_matches_onnxruntime_bit_for_bit() {
    let cases = fixture_cases("int8_ops");
    assert_eq!(cases.len(), 19, "9 operators x 2 types, and a float Sigmoid");
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let model = match mncc::load(&dir.join("model.onnx")) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let p = match mncc::compile(&model) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let h = harness::build(&p, true).unwrap();
        let (inputs, expected) = (f32_rows(&dir.join("input.npy")), f32_rows(&dir.join("expected.npy")));
        let (mut same_ort, mut same_ref, mut n) = (0, 0, 0);
        let mut worst = 0f32;
        for (x, ort) in inputs.into_iter().zip(&expected) {
            let x = InputData::F32(x);
            let got = h.run(&x).unwrap();
            let reference = interp::run(&model.graph, &x).unwrap();
            assert_eq!(got.len(), ort.len(), "{name}");
            same_ort += got.iter().zip(ort).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
            let tolerance = if name.starts_with("float_") { 2e-7 } else { 0.0 };
            same_ref += got
                .iter()
                .zip(&reference)
                .filter(|(a, b)| (**a as f64 - **b).abs() <= tolerance)
                .count();
            worst = got.iter().zip(ort).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
            n += got.len();
        }
        println!("{name}: {same_ort}/{n} outputs equal onnxruntime's (max difference {worst:e}), {same_ref}/{n} the integer reference");
        if same_ort != n || same_ref != n {
            failures.push(format!(
                "{name}: {same_ort}/{n} equal onnxruntime's, {same_ref}/{n} the reference"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
