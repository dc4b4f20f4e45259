//! UI tests of `mobilenet!`: every error a user can hit is a compile error
//! spanned on the path literal, and reads well (tests/ui/*.stderr).
//!
//! Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p mncc-macros --test ui`, then read every
//! changed `.stderr` before committing it.
//!
//! # Paths
//!
//! The macro resolves its path against `CARGO_MANIFEST_DIR`, and trybuild
//! compiles each `tests/ui/*.rs` as a bin of a generated crate whose manifest
//! dir is `<target-dir>/tests/trybuild/mncc-macros/`, not this package. So the
//! test files are written the way a user would write them
//! (`mobilenet!("models/x.toml")`), and before trybuild runs, this test copies
//! `tests/ui/models/` to `<target-dir>/tests/trybuild/mncc-macros/models/`
//! (and writes the generated `bad_weights.safetensors` there). The
//! target dir comes from `cargo metadata`, exactly as trybuild finds it, so
//! the models are found wherever the target dir is.
//!
//! The alternatives are worse: a relative path climbing out of the target
//! dir (`"../../../../macros/tests/ui/models/x.toml"`) hard-codes the target
//! dir's location and shows up verbatim in the messages, and an absolute
//! path is not portable.
//!
//! The messages contain the resolved absolute path (as they should: it tells
//! the user where the macro looked). trybuild rewrites the workspace root to
//! `$WORKSPACE`, so the `.stderr` files say
//! `$WORKSPACE/target/tests/trybuild/mncc-macros/models/...`, which matches
//! only when the target dir is `<workspace>/target` (the default). With
//! another `CARGO_TARGET_DIR`, only the passing case runs and the test says
//! why on stderr.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Files whose expected stderr mentions no path outside `tests/ui/`.
const PATHLESS: &[&str] = &["empty_path", "not_a_string", "no_argument", "bad_target"];

/// Files whose expected stderr contains the resolved model path.
const WITH_PATHS: &[&str] = &[
    "missing_file",
    "bad_syntax",
    "unknown_field",
    "bad_values",
    "no_weights",
    "missing_weights_file",
    "bad_weights",
];

#[test]
fn ui() {
    let (target_dir, workspace) = cargo_dirs();
    let project = target_dir.join("tests").join("trybuild").join("mncc-macros");
    let models = project.join("models");
    copy_models(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/models"), &models);
    write_bad_weights(&models.join("bad_weights.safetensors"));

    // trybuild builds its project (the compiler behind the macro, its
    // dependencies, the runtime) in its own target dir with the default dev
    // profile; without debuginfo that first build is a good deal shorter.
    // The variable reaches only the cargo that trybuild runs. Single
    // writer: this binary has one test.
    std::env::set_var("CARGO_PROFILE_DEV_DEBUG", "0");
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass_tiny.rs");
    for name in PATHLESS {
        t.compile_fail(format!("tests/ui/{name}.rs"));
    }
    if same_dir(&target_dir, &workspace.join("target")) {
        for name in WITH_PATHS {
            t.compile_fail(format!("tests/ui/{name}.rs"));
        }
    } else {
        eprintln!(
            "note: target dir {} is not {}/target: skipping the UI cases whose \
             expected stderr contains paths under the target dir",
            target_dir.display(),
            workspace.display()
        );
    }
}

/// `(target_directory, workspace_root)` as `cargo metadata` reports them
/// (what trybuild uses).
fn cargo_dirs() -> (PathBuf, PathBuf) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version=1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8(out.stdout).expect("cargo metadata output is UTF-8");
    (
        PathBuf::from(json_string(&json, "target_directory")),
        PathBuf::from(json_string(&json, "workspace_root")),
    )
}

/// The value of a top-level string field in cargo's JSON (paths only need
/// `\\` and `\"` unescaped).
fn json_string(json: &str, key: &str) -> String {
    let pat = format!("\"{key}\":\"");
    let start = json.rfind(&pat).unwrap_or_else(|| panic!("no {key} in cargo metadata")) + pat.len();
    let mut value = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return value,
            '\\' => value.extend(chars.next()),
            c => value.push(c),
        }
    }
    panic!("unterminated {key} in cargo metadata")
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn copy_models(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the trybuild models dir");
    for entry in std::fs::read_dir(from).expect("read tests/ui/models") {
        let path = entry.expect("read tests/ui/models").path();
        let dest = to.join(path.file_name().expect("a file name"));
        // Write only on change: the macro tracks these files, so rewriting
        // them would rebuild the test crates on every run.
        let bytes = std::fs::read(&path).expect("read a model");
        if std::fs::read(&dest).ok().as_deref() != Some(&bytes[..]) {
            std::fs::write(&dest, bytes).expect("copy a model");
        }
    }
}

/// Writes a safetensors file for `models/bad_weights.toml` (mobilenet_v1
/// alpha 0.25, 10 classes) that has every tensor of the model (zeros) except:
/// `conv_pw_3.weight` has shape [32, 32] instead of [32, 32, 1, 1],
/// `conv_dw_7.bn.running_var` is missing, and `fc.weight` is extra.
/// Generated rather than committed: it is 0.9 MB of zeros.
fn write_bad_weights(path: &Path) {
    let mut tensors: Vec<(String, Vec<usize>)> = Vec::new();
    let mut conv = |name: String, shape: Vec<usize>| {
        let oc = shape[0];
        tensors.push((format!("{name}.weight"), shape));
        for part in ["weight", "bias", "running_mean", "running_var"] {
            tensors.push((format!("{name}.bn.{part}"), vec![oc]));
        }
    };
    let ch = |c: usize| c / 4; // alpha 0.25
    let mut c = ch(32);
    conv("conv1".into(), vec![c, 3, 3, 3]);
    let blocks = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024];
    for (i, &pc) in blocks.iter().enumerate() {
        let pc = ch(pc);
        conv(format!("conv_dw_{}", i + 1), vec![c, 1, 3, 3]);
        conv(format!("conv_pw_{}", i + 1), vec![pc, c, 1, 1]);
        c = pc;
    }
    tensors.push(("classifier.weight".into(), vec![10, c]));
    tensors.push(("classifier.bias".into(), vec![10]));
    for (name, shape) in &mut tensors {
        if name == "conv_pw_3.weight" {
            shape.truncate(2);
        }
    }
    tensors.retain(|(name, _)| name != "conv_dw_7.bn.running_var");
    tensors.push(("fc.weight".into(), vec![10, c]));

    let mut header = String::from("{");
    let mut offset = 0;
    for (i, (name, shape)) in tensors.iter().enumerate() {
        let bytes = 4 * shape.iter().product::<usize>();
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        header += &format!(
            "{}\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
            if i == 0 { "" } else { "," },
            dims.join(","),
            offset + bytes
        );
        offset += bytes;
    }
    header.push('}');
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.resize(file.len() + offset, 0);
    if std::fs::read(path).ok().as_deref() != Some(&file[..]) {
        std::fs::write(path, file).expect("write bad_weights.safetensors");
    }
}
