//! Classifies a deterministic synthetic image with a MobileNet that build.rs
//! compiled with `mncc::Build`.

mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}

/// A smooth deterministic test pattern in [-1, 1], NCHW like the model's input.
fn synthetic_input() -> Box<model::Input> {
    let [_, c, h, w] = model::INPUT_SHAPE;
    let mut x: Box<model::Input> = vec![0.0f32; model::INPUT_LEN]
        .into_boxed_slice()
        .try_into()
        .expect("INPUT_LEN values");
    for ch in 0..c {
        for y in 0..h {
            for xx in 0..w {
                let (fy, fx) = (y as f32 / h as f32, xx as f32 / w as f32);
                x[(ch * h + y) * w + xx] = (6.0 * fx + 4.0 * fy + 2.0 * ch as f32).sin();
            }
        }
    }
    x
}

fn new_arena() -> Box<model::Arena> {
    vec![0u8; model::ARENA_LEN]
        .into_boxed_slice()
        .try_into()
        .expect("ARENA_LEN values")
}

fn main() {
    let input = synthetic_input();
    let mut arena = new_arena();
    let out = model::classify(&input, &mut arena);
    let (top, score) = out
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
    println!("top-1: class {top} (logit {score:.4})");
    println!(
        "ARENA_LEN: {} bytes ({} KiB)",
        model::ARENA_LEN,
        model::ARENA_LEN / 1024
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use mncc::interp::{self, InputData};
    use std::path::Path;

    /// The generated code against the reference interpreter over the whole
    /// output: max abs error <= 1e-4 * max(1, max|reference|).
    #[test]
    fn matches_the_reference_interpreter() {
        let m = mncc::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("model.toml")).expect("load model.toml");
        let input = synthetic_input();
        let want = interp::run(&m.graph, &InputData::F32(input.to_vec())).expect("interpret");
        let mut arena = new_arena();
        arena.fill(0xff); // must not read stale scratch (every f32 in it a NaN)
        let got = model::classify(&input, &mut arena);
        assert_eq!(got.len(), want.len());
        let ref_max = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let max_abs = got
            .iter()
            .zip(&want)
            .map(|(&g, &r)| (g as f64 - r).abs())
            .fold(0.0f64, |m, d| if d.is_nan() { f64::INFINITY } else { m.max(d) });
        let tolerance = 1e-4 * ref_max.max(1.0);
        println!("max abs error {max_abs:.3e} (tolerance {tolerance:.3e}, max |ref| {ref_max:.3e})");
        assert!(
            max_abs <= tolerance,
            "max abs error {max_abs:.3e} > tolerance {tolerance:.3e}"
        );
    }
}
