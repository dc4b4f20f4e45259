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

/// The three real int8 MobileNet v2 files of `../shared/models` (QOperator,
/// QDQ, dynamic; not in this repository: skipped with a message when
/// absent) classify the six photos as `../shared/models/README.md` lists,
/// with torchvision's preprocessing.
#[test]
fn int8_models_classify_the_photos() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let models = root.join("shared/models");
    let images = root.join("shared/images");
    if !models.is_dir() || !images.is_dir() {
        println!("{}: absent; skipped", models.display());
        return;
    }
    let photos = [
        ("cat.jpg", "285 Egyptian cat"),
        ("dog.jpg", "207 golden retriever"),
        ("finch.jpeg", "12 house finch"),
        ("grace_hopper.jpg", "457 bow tie"),
        ("hot_dog.jpg", "934 hotdog"),
        ("parrot.jpg", "88 macaw"),
    ];
    for model in [
        "mobilenetv2-12-int8",
        "torchvision_mobilenet_v2_qdq_u8",
        "torchvision_mobilenet_v2_dynamic_int8",
    ] {
        let path = models.join(format!("{model}.onnx"));
        if !path.is_file() {
            println!("{}: absent; skipped", path.display());
            continue;
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mncc-onnx-classify"))
            .arg("--model")
            .arg(&path)
            .args(["--preprocess", "torch"])
            .args(photos.iter().map(|(p, _)| images.join(p)))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Each photo: its path line, then its top-5, best first.
        let lines: Vec<&str> = stdout.lines().collect();
        for (photo, want) in photos {
            let at = lines
                .iter()
                .position(|l| l.ends_with(&format!("{photo}:")))
                .unwrap_or_else(|| panic!("{model}: no result for {photo}:\n{stdout}"));
            let top1 = lines.get(at + 1).copied().unwrap_or("");
            println!("{model} {photo}: {}", top1.trim());
            assert!(top1.contains(want), "{model} {photo}: top-1 `{top1}`, README: {want}");
        }
    }
}
