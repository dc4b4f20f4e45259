//! The host side of the Cortex-M example, run by cargo before it compiles
//! `src/main.rs` (for the board or for the host):
//!
//!  1. compiles the model with mncc into `$OUT_DIR/model.rs` and its weight
//!     blob `$OUT_DIR/model.weights.bin` (which model.rs embeds in a `static`
//!     with `include_bytes!`: .rodata, flash);
//!  2. decodes the photo and preprocesses it exactly as
//!     `examples/classify.rs` does (RGB, centre crop of 87.5% of the shorter
//!     side, bilinear resize to the model's input) into `$OUT_DIR/photo.rgb`,
//!     raw H x W x 3 bytes that the firmware embeds in flash;
//!  3. runs mncc's reference interpreter (f64, unfused graph) on those bytes
//!     and writes its top-5 to `$OUT_DIR/reference.rs`: the firmware checks
//!     its own top-5 against it;
//!  4. for a bare-metal target, puts `memory.x` on the linker's search path
//!     (cortex-m-rt's `link.x` includes it).
//!
//! Env (both relative to this crate): `MNCC_MODEL`, default the README's
//! pretrained MobileNet v1 0.25 224; `MNCC_PHOTO`, default `parrot.jpg`.

use image::imageops::FilterType;
use mncc::interp::{self, InputData};
use mncc::ir::{ElemType, Layout};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const DEFAULT_MODEL: &str = "../models/mobilenet_v1_0.25_224.toml";
const DEFAULT_PHOTO: &str = "../images/parrot.jpg";

/// `examples/classify.rs`'s `load`, line for line (same crate version).
fn preprocess(path: &Path, width: u32, height: u32) -> Vec<u8> {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = img.dimensions();
    let side = (w.min(h) as f64 * 0.875) as u32;
    let crop = image::imageops::crop_imm(&img, (w - side) / 2, (h - side) / 2, side, side).to_image();
    image::imageops::resize(&crop, width, height, FilterType::Triangle).into_raw()
}

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=MNCC_MODEL");
    println!("cargo:rerun-if-env-changed=MNCC_PHOTO");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=memory.x");
    let model_path = std::env::var("MNCC_MODEL").unwrap_or_else(|_| DEFAULT_MODEL.into());
    let photo_path = std::env::var("MNCC_PHOTO").unwrap_or_else(|_| DEFAULT_PHOTO.into());
    println!("cargo:rerun-if-changed={photo_path}");

    // 1. The model.
    let model = mncc::load(Path::new(&model_path)).unwrap_or_else(|e| panic!("{e}"));
    for f in &model.files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    // Schedules for the board (`portable` for thumbv7em: no bands, the
    // smallest code), not for the host the build script runs on.
    let target = mncc::lower::Target::for_triple(&std::env::var("TARGET").unwrap_or_default());
    let program = mncc::compile_for(&model, &target).unwrap_or_else(|e| panic!("{e}"));
    mncc::write(&program, &out.join("model.rs"), &model_path).unwrap_or_else(|e| panic!("{e}"));

    // 2. The photo, as the model's raw input bytes.
    let [1, h, w, 3] = program.input_shape[..] else {
        panic!(
            "{model_path}: the example needs a model taking one NHWC RGB image, not {:?}",
            program.input_shape
        )
    };
    assert!(
        program.input_type == ElemType::U8 && program.input_layout == Layout::Nhwc,
        "{model_path}: the example feeds raw RGB bytes: the model needs `[input] layout = \"nhwc\"` and `dtype = \"u8\"`"
    );
    let pixels = preprocess(Path::new(&photo_path), w as u32, h as u32);
    std::fs::write(out.join("photo.rgb"), &pixels).unwrap();

    // 3. The reference: the interpreter on the same bytes.
    let probs = interp::run(&model.graph, &InputData::U8(pixels)).unwrap_or_else(|e| panic!("{e}"));
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let scale = probs.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let mut code = String::new();
    let name = |p: &str| Path::new(p).file_name().unwrap().to_string_lossy().into_owned();
    let _ = writeln!(
        code,
        "/// The model description.\npub const MODEL: &str = {:?};",
        name(&model_path)
    );
    let _ = writeln!(code, "/// The photo.\npub const PHOTO: &str = {:?};", name(&photo_path));
    let _ = writeln!(
        code,
        "/// Top-5 (class, value) of mncc's reference interpreter (f64, on the host) on the same bytes."
    );
    let top: Vec<String> = order[..5.min(order.len())]
        .iter()
        .map(|&i| format!("({i}, {:?}f32)", probs[i] as f32))
        .collect();
    let _ = writeln!(
        code,
        "pub const TOP5: [(usize, f32); {}] = [{}];",
        top.len(),
        top.join(", ")
    );
    let _ = writeln!(
        code,
        "/// Allowed difference: 1e-4 * max(1, max|reference|).\npub const TOLERANCE: f32 = {:?}f32;",
        (1e-4 * scale) as f32
    );
    std::fs::write(out.join("reference.rs"), code).unwrap();

    // 4. The memory map, for bare-metal targets only.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        std::fs::copy("memory.x", out.join("memory.x")).unwrap();
        println!("cargo:rustc-link-search={}", out.display());
    }
}
