//! Real exporters' files, each checked against onnxruntime, the framework
//! that made it and the interpreter, at the usual tolerance, with the same
//! top-1; no layer may move elements between layouts (every Transpose
//! cancels, the NHWC input and output are used as they come).
//!
//! - tf2onnx on Keras MobileNetV3 Small
//!   (tests/fixtures/make_keras_onnx_fixtures.py): graphs converted op by
//!   op from NHWC, with about 100 Transposes left inside (tf2onnx's
//!   transpose optimizer fails on them), the input's Rescaling on NHWC,
//!   hard-swish written out, squeeze-and-excitation means on NHWC tensors;
//!   one with its classifier, one headless, whose output is an NHWC feature
//!   map; and the one with its classifier through a float TFLite file and
//!   `tf2onnx --tflite` (checked against TFLite's interpreter).
//! - paddle2onnx on `paddle.vision.models` MobileNetV1 and V3 Small
//!   (tests/fixtures/make_paddle_fixtures.py).

use crate::common::{f32_rows, fixture_cases};
use mncc::interp::{self, InputData};
use mncc::lower::Kernel;
use mncc_cli::harness;

#[test]
fn tf2onnx_keras_v3_models_match_onnxruntime_and_keras() {
    check_exports("keras_onnx", 3);
}

#[test]
fn paddle2onnx_models_match_onnxruntime_and_paddle() {
    check_exports("paddle_onnx", 2);
}

/// Every case of `tests/fixtures/<fixtures>` (`n` of them) against
/// onnxruntime's `expected.npy` and the framework's own output.
fn check_exports(fixtures: &str, n: usize) {
    let cases = fixture_cases(fixtures);
    assert_eq!(cases.len(), n, "{fixtures}");
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (framework, what) = [
            ("keras.npy", "Keras"),
            ("paddle.npy", "Paddle"),
            ("litert.npy", "TFLite"),
        ]
        .into_iter()
        .find(|(f, _)| dir.join(f).is_file())
        .unwrap_or_else(|| panic!("{name}: no framework output"));
        let model = mncc::load(&dir.join("model.onnx")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = mncc::compile(&model).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Every Transpose cancelled or absorbed: no layer moves elements
        // but the NHWC input's own order, which needs none.
        let moves: Vec<&str> = p
            .layers
            .iter()
            .filter(|l| matches!(l.kernel, Kernel::NchwToNhwc { .. } | Kernel::NhwcToNchw { .. }))
            .map(|l| l.name.as_str())
            .collect();
        let h = harness::build(&p, true).unwrap();
        let inputs = f32_rows(&dir.join("input.npy"));
        let (ort, keras) = (f32_rows(&dir.join("expected.npy")), f32_rows(&dir.join(framework)));
        let (mut err_ort, mut err_keras, mut err_ref, mut top1) = (0f64, 0f64, 0f64, 0);
        let mut scale = 1f64;
        for ((x, o), k) in inputs.iter().zip(&ort).zip(&keras) {
            let x = InputData::F32(x.clone());
            let got = h.run(&x).unwrap();
            let reference = interp::run(&model.graph, &x).unwrap();
            assert_eq!(got.len(), o.len(), "{name}: output length");
            let max_abs = |a: &[f32], b: &[f64]| {
                a.iter()
                    .zip(b)
                    .map(|(&a, &b)| (a as f64 - b).abs())
                    .fold(0f64, f64::max)
            };
            let o64: Vec<f64> = o.iter().map(|&v| v as f64).collect();
            let k64: Vec<f64> = k.iter().map(|&v| v as f64).collect();
            err_ort = err_ort.max(max_abs(&got, &o64));
            err_keras = err_keras.max(max_abs(&got, &k64));
            err_ref = err_ref.max(max_abs(&got, &reference));
            scale = o64.iter().fold(scale, |m, v| m.max(v.abs()));
            let argmax = |v: &[f64]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
            let g64: Vec<f64> = got.iter().map(|&v| v as f64).collect();
            top1 += usize::from(argmax(&g64) == argmax(&o64));
        }
        let tol = 1e-4 * scale;
        println!(
            "{name}: {} layers, output {:?} {}; max abs error vs onnxruntime {err_ort:.3e}, vs {what} {err_keras:.3e}, vs the interpreter {err_ref:.3e} (tolerance {tol:.1e}); top-1 equal {top1}/{}",
            p.layers.len(),
            p.output_shape,
            if p.output_shape.len() == 4 { p.output_layout.to_string() } else { String::new() },
            inputs.len()
        );
        if !moves.is_empty() || err_ort > tol || err_keras > tol || err_ref > tol || top1 != inputs.len() {
            failures.push(format!(
                "{name}: layout layers {moves:?}, errors {err_ort:.3e} / {err_keras:.3e} / {err_ref:.3e}, top-1 {top1}/{}",
                inputs.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
