//! ONNX fixtures (made by tests/fixtures/onnx/make_fixtures.py, onnxruntime's
//! outputs saved beside each model): every case is compiled, built and run,
//! and its whole output compared with onnxruntime's (max abs error <=
//! 1e-4 * max(1, max|reference|), same top-1). The malformed models must give
//! clear errors naming what is wrong, never a panic.

use mncc::interp::InputData;
use mncc_cli::harness;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx")
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn every_case_matches_onnxruntime() {
    let cases = cases();
    assert!(cases.len() >= 13, "found {} cases", cases.len());
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let result = (|| -> Result<String, String> {
            let model = mncc::load(&dir.join("model.onnx")).map_err(|e| e.to_string())?;
            let p = mncc::compile(&model).map_err(|e| e.to_string())?;
            let x = mncc_cli::npy::read(&dir.join("input.npy")).map_err(|e| e.to_string())?;
            let mncc_cli::npy::NpyData::F32(x) = x.data else {
                return Err("input.npy is not f32".into());
            };
            let want = mncc_cli::npy::read(&dir.join("expected.npy"))
                .map_err(|e| e.to_string())?
                .to_f64();
            let h = harness::build(&p, true)?;
            let got = h.run(&InputData::F32(x.clone()))?;
            let c = harness::compare(&got, &want);
            // The interpreter on the unoptimized graph agrees too.
            let interp = mncc::interp::run(&model.graph, &InputData::F32(x))?;
            let ci = harness::compare(&interp.iter().map(|&v| v as f32).collect::<Vec<_>>(), &want);
            let line = format!(
                "{name}: max abs {:.3e}, max rel {:.3e} (tolerance {:.3e}), top-1 {} vs {}; interpreter max abs {:.3e}",
                c.max_abs, c.max_rel, c.tolerance, c.argmax.0, c.argmax.1, ci.max_abs
            );
            if c.ok() && c.argmax.0 == c.argmax.1 && ci.ok() {
                Ok(line)
            } else {
                Err(line)
            }
        })();
        match result {
            Ok(line) => println!("{line}"),
            Err(e) => {
                println!("{name}: FAILED: {e}");
                failures.push(name);
            }
        }
    }
    assert!(failures.is_empty(), "failed: {failures:?}");
}

#[test]
fn malformed_models_give_clear_errors() {
    let bad = fixtures().join("bad");
    let expect: &[(&str, &[&str])] = &[
        ("truncated.onnx", &["decode"]),
        ("not_onnx.onnx", &["decode"]),
        ("cycle.onnx", &["cycle"]),
        (
            "missing_initializer.onnx",
            &["features.1.0.weight", "neither a graph input"],
        ),
        ("unsupported_ops.onnx", &["LSTM", "Resize"]),
        ("shape_mismatch.onnx", &["channel"]),
        ("bad_attribute.onnx", &["dilation", "group"]),
    ];
    for (file, needles) in expect {
        let err = match mncc::load(&bad.join(file)) {
            Ok(m) => match mncc::compile(&m) {
                Ok(_) => panic!("{file}: compiled without error"),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        println!("{file}:\n{err}\n");
        for n in *needles {
            assert!(
                err.to_lowercase().contains(&n.to_lowercase()),
                "{file}: {n:?} missing from:\n{err}"
            );
        }
        assert!(err.contains(file), "{file}: the error should name the file:\n{err}");
    }
}

/// The import alone: the reference interpreter on the unoptimized graph
/// matches onnxruntime (fast: no code is built).
#[test]
fn every_case_imports_and_interprets_like_onnxruntime() {
    let mut failures = Vec::new();
    for dir in cases() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let r = (|| -> Result<f64, String> {
            let model = mncc::load(&dir.join("model.onnx")).map_err(|e| e.to_string())?;
            let mncc_cli::npy::NpyData::F32(x) = mncc_cli::npy::read(&dir.join("input.npy"))
                .map_err(|e| e.to_string())?
                .data
            else {
                return Err("input.npy is not f32".into());
            };
            let want = mncc_cli::npy::read(&dir.join("expected.npy"))
                .map_err(|e| e.to_string())?
                .to_f64();
            let got = mncc::interp::run(&model.graph, &InputData::F32(x))?;
            let c = harness::compare(&got.iter().map(|&v| v as f32).collect::<Vec<_>>(), &want);
            if c.ok() {
                Ok(c.max_abs)
            } else {
                Err(format!("max abs {:.3e} > {:.3e}", c.max_abs, c.tolerance))
            }
        })();
        match r {
            Ok(e) => println!("{name}: interpreter max abs {e:.3e}"),
            Err(e) => {
                println!("{name}: FAILED: {e}");
                failures.push(name);
            }
        }
    }
    assert!(failures.is_empty(), "failed: {failures:?}");
}
