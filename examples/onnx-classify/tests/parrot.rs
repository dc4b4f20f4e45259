//! The example as a user runs it: the shipped ONNX model calls the parrot a macaw.

#[test]
fn parrot_is_a_macaw() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mncc-onnx-classify"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top1 = stdout.lines().nth(1).unwrap_or("");
    assert!(top1.contains("88 macaw"), "{stdout}");
}

#[test]
fn bad_model_is_a_clean_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mncc-onnx-classify"))
        .args(["--model", "Cargo.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.starts_with("error: ") && !stderr.contains("panicked"),
        "{stderr}"
    );
}
