//! Classifies photos with an ONNX MobileNet given on the command line.
//!
//! ```text
//! cargo run --release -p mncc-onnx-classify -- [--model M.onnx] [--preprocess keras|torch] PHOTO...
//! ```
//!
//! mncc is an ahead-of-time compiler, so this example compiles the model
//! (`mncc::load` + `mncc::compile`), builds the generated code in a temporary
//! crate with cargo (as `mncc verify` does; a few seconds, cached after the
//! first build) and runs it on each photo. An application that knows its model
//! uses `mobilenet!` instead (see `examples/classify.rs`).
//!
//! The ONNX file carries no preprocessing: `--preprocess keras` (default;
//! `x / 127.5 - 1`, the shipped Keras model: photos centre-cropped to 87.5%
//! of their shorter side, then resized) or `torch` (`(x / 255 - mean) /
//! std` with ImageNet's mean and std, after torchvision's `Resize(256)` and
//! `CenterCrop(224)`, scaled to the model's size). Resizing is bilinear; the
//! input is in the model's layout (NCHW, or NHWC when the model starts with
//! a transpose).

use image::imageops::FilterType;
use mncc::interp::InputData;
use mncc::ir::Layout;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DEFAULT_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/keras_mobilenet_v1_0.25_224.onnx"
);
const DEFAULT_IMAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../images/parrot.jpg");
const LABELS: &str = include_str!("../../labels/imagenet_classes.txt");

#[derive(Clone, Copy, PartialEq)]
enum Preprocess {
    Keras,
    Torch,
}

fn usage() -> &'static str {
    "usage: onnx-classify [--model MODEL.onnx] [--preprocess keras|torch] [PHOTO.jpg|png ...]\n\
     defaults: the shipped Keras MobileNet v1 0.25 224, keras preprocessing, the parrot photo"
}

/// Decodes, crops, resizes and normalizes a photo for a model whose input
/// is `shape` in `layout`.
fn load_photo(path: &Path, shape: &[usize], layout: Layout, pre: Preprocess) -> Result<Vec<f32>, String> {
    let (h, w) = match layout {
        Layout::Nchw => (shape[2], shape[3]),
        Layout::Nhwc => (shape[1], shape[2]),
    };
    let img = image::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .to_rgb8();
    let (iw, ih) = img.dimensions();
    let rgb = match pre {
        // Keras: crop 87.5% of the shorter side, then resize.
        Preprocess::Keras => {
            let side = (iw.min(ih) as f64 * 0.875) as u32;
            let crop = image::imageops::crop_imm(&img, (iw - side) / 2, (ih - side) / 2, side, side).to_image();
            image::imageops::resize(&crop, w as u32, h as u32, FilterType::Triangle)
        }
        // torchvision: resize the shorter side to the input size / 0.875
        // (256 for 224; the longer side truncated), then crop the centre
        // (`Resize(256)`, `CenterCrop(224)`).
        Preprocess::Torch => {
            let short = (h.min(w) as f64 / 0.875).round() as u32;
            let (rw, rh) = if iw <= ih {
                (short, (short as f64 * ih as f64 / iw as f64) as u32)
            } else {
                ((short as f64 * iw as f64 / ih as f64) as u32, short)
            };
            let resized = image::imageops::resize(&img, rw, rh, FilterType::Triangle);
            let left = ((rw.saturating_sub(w as u32)) as f64 / 2.0).round() as u32;
            let top = ((rh.saturating_sub(h as u32)) as f64 / 2.0).round() as u32;
            image::imageops::crop_imm(&resized, left, top, w as u32, h as u32).to_image()
        }
    };
    let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    let norm = |v: u8, c: usize| match pre {
        Preprocess::Keras => v as f32 / 127.5 - 1.0,
        Preprocess::Torch => (v as f32 / 255.0 - mean[c]) / std[c],
    };
    let mut out = vec![0.0f32; h * w * 3];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            let at = match layout {
                Layout::Nchw => c * h * w + i,
                Layout::Nhwc => i * 3 + c,
            };
            out[at] = norm(px.0[c], c);
        }
    }
    Ok(out)
}

fn run() -> Result<(), String> {
    let mut model = PathBuf::from(DEFAULT_MODEL);
    let mut pre = Preprocess::Keras;
    let mut photos = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            "--model" => model = args.next().ok_or(usage())?.into(),
            "--preprocess" => {
                pre = match args.next().as_deref() {
                    Some("keras") => Preprocess::Keras,
                    Some("torch") => Preprocess::Torch,
                    _ => return Err(usage().into()),
                }
            }
            _ => photos.push(PathBuf::from(a)),
        }
    }
    if photos.is_empty() {
        photos.push(DEFAULT_IMAGE.into());
    }
    let m = mncc::load(&model).map_err(|e| e.to_string())?;
    let program = mncc::compile(&m).map_err(|e| e.to_string())?;
    if program.input_shape.len() != 4 || program.input_shape.iter().filter(|&&d| d == 3).count() == 0 {
        return Err(format!(
            "{}: input {:?} is not an RGB image",
            model.display(),
            program.input_shape
        ));
    }
    eprintln!(
        "{}: {} layers, {:.1} M MACs; building the generated code...",
        model.display(),
        program.layers.len(),
        program.macs() as f64 / 1e6
    );
    let harness = mncc_cli::harness::build(&program, true)?;
    let labels: Vec<&str> = LABELS.lines().collect();
    for p in &photos {
        let x = load_photo(p, &program.input_shape, program.input_layout, pre)?;
        let mut out = harness.run(&InputData::F32(x))?;
        // Logits or probabilities: show probabilities.
        let sum: f32 = out.iter().sum();
        if (sum - 1.0).abs() > 1e-3 || out.iter().any(|&v| v < 0.0) {
            let m = out.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = out.iter().map(|v| (v - m).exp()).collect();
            let s: f32 = e.iter().sum();
            out = e.iter().map(|v| v / s).collect();
        }
        // 1001 classes: TFLite-style, class 0 is "background".
        let offset = usize::from(out.len() == 1001);
        let mut order: Vec<usize> = (0..out.len()).collect();
        order.sort_by(|&a, &b| out[b].total_cmp(&out[a]));
        println!("{}:", p.display());
        for &i in order.iter().take(5) {
            let label = if offset == 1 && i == 0 {
                "background"
            } else {
                labels.get(i - offset).copied().unwrap_or("?")
            };
            println!("  {:>6.2}%  {:>4} {}", out[i] * 100.0, i, label);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            for line in e.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}
