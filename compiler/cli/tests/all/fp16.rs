//! Float16 models as onnxconverter-common writes them
//! (tests/fixtures/make_fp16_fixtures.py): one with float16 input and
//! output, one with float32 input and output and Casts inside
//! (`keep_io_types`). mncc computes in float32 on the float16 weights
//! (converted exactly at compile time), takes and returns halves where the
//! model does; the result must match that arithmetic (onnxruntime on the
//! widened model) at the usual tolerance, and the test prints how far it is
//! from onnxruntime's run of the float16 model itself.

use crate::common::{f32_rows, fixture_cases};
use mncc::interp::{self, InputData};
use mncc::ir::ElemType;
use mncc_cli::harness;

#[test]
fn float16_models_compute_in_float32_on_their_halves() {
    let cases = fixture_cases("fp16");
    assert_eq!(cases.len(), 2, "float16 i/o and keep_io_types");
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let model = mncc::load(&dir.join("model.onnx")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = mncc::compile(&model).unwrap_or_else(|e| panic!("{name}: {e}"));
        let halves = !name.contains("keepio");
        let want_type = if halves { ElemType::F16 } else { ElemType::F32 };
        assert_eq!(
            (p.input_type, p.output_type),
            (want_type, want_type),
            "{name}: i/o types"
        );
        let kernels: Vec<String> = p.layers.iter().map(|l| l.kernel.name()).collect();
        assert_eq!(
            (
                kernels.iter().any(|k| k == "from_f16"),
                kernels.iter().any(|k| k == "to_f16")
            ),
            (halves, halves),
            "{name}: {kernels:?}"
        );
        let h = harness::build(&p, true).unwrap();
        let x = InputData::F32(f32_rows(&dir.join("input.npy")).concat());
        let want: Vec<f64> = f32_rows(&dir.join("expected.npy"))
            .concat()
            .iter()
            .map(|&v| v as f64)
            .collect();
        let ort16: Vec<f64> = f32_rows(&dir.join("ort_float16.npy"))
            .concat()
            .iter()
            .map(|&v| v as f64)
            .collect();
        let got = h.run(&x).unwrap();
        let reference = interp::run(&model.graph, &x).unwrap();
        let c = harness::compare(&got, &want);
        let ci = harness::compare(&reference.iter().map(|&v| v as f32).collect::<Vec<_>>(), &want);
        let c16 = harness::compare(&got, &ort16);
        println!(
            "{name}: {} in, {} out; max abs error {:.3e} (tolerance {:.1e}), interpreter {:.3e}; vs onnxruntime's float16 run {:.3e}; top-1 {} vs {}",
            p.input_type, p.output_type, c.max_abs, c.tolerance, ci.max_abs, c16.max_abs, c.argmax.0, c.argmax.1
        );
        if !c.ok() || !ci.ok() || c.argmax.0 != c.argmax.1 {
            failures.push(format!("{name}: {:.3e} / {:.3e}", c.max_abs, ci.max_abs));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
