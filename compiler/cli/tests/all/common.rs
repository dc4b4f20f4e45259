//! Shared by the command-line tests (`cli.rs`, `footprint.rs`): run the
//! `mncc` binary from the repository root, as a user would.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `mncc args...` from the repository root.
pub fn mncc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mncc"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run mncc")
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Stdout and stderr as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The case directories (each with a `model.onnx`) of
/// `tests/fixtures/<fixtures>`, sorted.
pub fn fixture_cases(fixtures: &str) -> Vec<PathBuf> {
    let dir = repo().join("tests/fixtures").join(fixtures);
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    v.sort();
    v
}

/// The rows of a float32 `.npy` (one per value of dim 0).
pub fn f32_rows(path: &Path) -> Vec<Vec<f32>> {
    let a = mncc_cli::npy::read(path).unwrap();
    let mncc_cli::npy::NpyData::F32(v) = a.data else {
        panic!("{}: not f32", path.display())
    };
    let n = a.shape[0];
    v.chunks(v.len() / n).map(<[f32]>::to_vec).collect()
}
