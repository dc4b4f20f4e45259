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
