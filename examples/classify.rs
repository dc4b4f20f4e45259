//! Classifies photos with the pretrained MobileNet v1 (alpha 0.25, 224x224,
//! Keras ImageNet weights) compiled at build time by `mobilenet!`, and prints
//! the top-5 ImageNet classes of each.
//!
//! ```text
//! cargo run --release --bin classify -- examples/images/parrot.jpg
//! ```
//!
//! Preprocessing (as the model was trained, and as tests/fixtures/ do it):
//! RGB, centre crop of 87.5% of the shorter side, bilinear resize to
//! 224x224. The generated code takes the raw u8 pixels: the model's
//! normalization ((x - 127.5) / 127.5) is folded into its first layer.

use image::imageops::FilterType;
use std::path::Path;
use std::process::ExitCode;

mod model {
    mncc_runtime::mobilenet!("models/mobilenet_v1_0.25_224.toml");
}

const LABELS: &str = include_str!("labels/imagenet_classes.txt");
const DEFAULT_IMAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/images/parrot.jpg");

/// Decodes, crops and resizes a photo into the model's input (NHWC RGB u8).
fn load(path: &Path) -> Result<Box<model::Input>, String> {
    let img = image::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let side = (w.min(h) as f64 * 0.875) as u32;
    let crop = image::imageops::crop_imm(&img, (w - side) / 2, (h - side) / 2, side, side).to_image();
    let [_, height, width, _] = model::INPUT_SHAPE;
    let resized = image::imageops::resize(&crop, width as u32, height as u32, FilterType::Triangle);
    let pixels: Box<model::Input> = resized
        .into_raw()
        .into_boxed_slice()
        .try_into()
        .map_err(|_| "unexpected image size".to_string())?;
    Ok(pixels)
}

fn main() -> ExitCode {
    let labels: Vec<&str> = LABELS.lines().collect();
    let mut paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.iter().any(|a| a == "-h" || a == "--help") {
        println!("usage: classify [IMAGE.jpg|png ...]   (default: the parrot photo)");
        return ExitCode::SUCCESS;
    }
    if paths.is_empty() {
        paths.push(DEFAULT_IMAGE.to_string());
    }
    // The arena is 'static-sized by the generated constant; on a heap-less
    // target it would be a `static mut`-free `static` in a cell, or a local.
    let mut arena: Box<model::Arena> = vec![0; model::ARENA_LEN].into_boxed_slice().try_into().unwrap();
    println!(
        "model {}: {:.1} M MACs, {} parameters, arena {} KiB",
        model::NAME,
        model::MACS as f64 / 1e6,
        model::PARAMS,
        model::ARENA_LEN / 1024
    );
    let mut failed = false;
    for p in &paths {
        let input = match load(Path::new(p)) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
                continue;
            }
        };
        let start = std::time::Instant::now();
        let probs = model::classify(&input, &mut arena);
        let elapsed = start.elapsed();
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        println!("{p} ({:.2} ms):", elapsed.as_secs_f64() * 1e3);
        for &i in &order[..5] {
            println!(
                "  {:>6.2}%  {:>3} {}",
                probs[i] * 100.0,
                i,
                labels.get(i).unwrap_or(&"?")
            );
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
