//! `global_avg_pool`, `softmax`, `add` against f64 references.
mod common;

use common::*;
use mncc_runtime::{add, global_avg_pool, softmax, Epilogue};

fn ref_gap(pixels: usize, c: usize, input: &[f32]) -> Vec<f64> {
    (0..c)
        .map(|ch| (0..pixels).map(|p| input[p * c + ch] as f64).sum::<f64>() / pixels as f64)
        .collect()
}

fn ref_softmax(input: &[f32]) -> Vec<f64> {
    let m = input.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let e: Vec<f64> = input.iter().map(|&x| (x as f64 - m).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

#[test]
fn global_avg_pool_matches_reference() {
    let mut rng = Rng::new(1);
    for (pixels, c) in [(1, 1), (1, 7), (49, 1), (49, 1024), (9, 13), (196, 17), (12544, 3)] {
        let input = rng.vec(pixels * c, 3.0);
        let mut out = vec![f32::NAN; c];
        global_avg_pool(pixels, c, &input, &mut out);
        assert_close(&format!("gap {pixels}x{c}"), &out, &ref_gap(pixels, c, &input));
    }
}

#[test]
#[should_panic(expected = "global_avg_pool: `input` has")]
fn global_avg_pool_wrong_length_panics() {
    let mut out = [0.0; 4];
    global_avg_pool(3, 4, &[0.0; 11], &mut out);
}

#[test]
fn softmax_matches_reference() {
    let mut rng = Rng::new(2);
    for (n, scale) in [
        (1, 1.0),
        (2, 1.0),
        (7, 5.0),
        (8, 1.0),
        (9, 30.0),
        (10, 100.0),
        (1000, 10.0),
        (1001, 3.0),
    ] {
        let input = rng.vec(n, scale);
        let mut out = vec![f32::NAN; n];
        softmax(&input, &mut out);
        let want = ref_softmax(&input);
        assert_close(&format!("softmax n={n} scale={scale}"), &out, &want);
        // Relative accuracy of every probability (not just the large ones),
        // as long as it is a normal f32.
        for (i, (&g, &w)) in out.iter().zip(&want).enumerate() {
            if w > 1e-37 {
                let rel = ((g as f64 - w) / w).abs();
                assert!(rel < 2e-6, "softmax n={n}: element {i} rel error {rel:e} ({g} vs {w})");
            }
        }
        let sum: f64 = out.iter().map(|&v| v as f64).sum();
        assert!((sum - 1.0).abs() < 1e-5, "softmax n={n}: sum {sum}");
    }
}

#[test]
fn softmax_is_stable_for_large_and_equal_logits() {
    // Would overflow without subtracting the max.
    let input = [1000.0f32, 999.0, 998.0, -1000.0];
    let mut out = [0.0; 4];
    softmax(&input, &mut out);
    assert_close("large logits", &out, &ref_softmax(&input));
    let input = [3.5f32; 10];
    let mut out = [0.0; 10];
    softmax(&input, &mut out);
    assert!(out.iter().all(|&v| v == 0.1), "{out:?}");
    // Logits far below the max underflow to exactly 0.
    let input = [0.0f32, -200.0];
    softmax(&input, &mut out[..2]);
    assert_eq!(&out[..2], &[1.0, 0.0]);
    // Empty input is a no-op.
    softmax(&[], &mut []);
}

#[test]
fn softmax_degenerate_inputs_give_nan() {
    let mut out = [0.0; 3];
    softmax(&[f32::NEG_INFINITY; 3], &mut out);
    assert!(out.iter().all(|v| v.is_nan()));
    softmax(&[1.0, f32::NAN, 2.0], &mut out);
    assert!(out.iter().all(|v| v.is_nan()));
}

#[test]
#[should_panic(expected = "softmax: `out` has")]
fn softmax_wrong_length_panics() {
    softmax(&[1.0, 2.0], &mut [0.0; 3]);
}

#[test]
fn add_matches_reference() {
    let mut rng = Rng::new(3);
    for (len, c) in [(1, 1), (12, 3), (49 * 24, 24), (100, 1), (7 * 7 * 17, 17)] {
        let a = rng.vec(len, 4.0);
        let b = rng.vec(len, 4.0);
        for epi in epilogues(&mut rng, c, len) {
            if epi.residual.is_some() {
                continue;
            }
            let ep = epi.ep();
            let want: Vec<f64> = (0..len)
                .map(|i| ref_epilogue(a[i] as f64 + b[i] as f64, i % c, i, &ep))
                .collect();
            let mut out = vec![f32::NAN; len];
            add(&a, &b, &ep, &mut out);
            assert_close(&format!("add len={len} c={c} ep={}", epi.name), &out, &want);
        }
    }
}

#[test]
fn clamp_propagates_nan_and_ignores_infinite_bounds() {
    let a = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30];
    let b = [0.0; 5];
    let mut out = [0.0; 5];
    add(&a, &b, &Epilogue::NONE, &mut out);
    assert!(out[0].is_nan());
    assert_eq!(&out[1..], &a[1..]);
    let relu6 = Epilogue {
        min: 0.0,
        max: 6.0,
        ..Epilogue::NONE
    };
    add(&a, &b, &relu6, &mut out);
    assert!(out[0].is_nan());
    assert_eq!(&out[1..], &[6.0, 0.0, 6.0, 0.0]);
}

#[test]
#[should_panic(expected = "add: the epilogue residual must be None")]
fn add_rejects_residual() {
    let r = [0.0; 2];
    let ep = Epilogue {
        residual: Some(&r),
        ..Epilogue::NONE
    };
    add(&[0.0; 2], &[0.0; 2], &ep, &mut [0.0; 2]);
}

#[test]
#[should_panic(expected = "add: bias length 3 must be non-zero and divide")]
fn add_rejects_bias_not_dividing_length() {
    let bias = [0.0; 3];
    let ep = Epilogue {
        bias: Some(&bias),
        ..Epilogue::NONE
    };
    add(&[0.0; 4], &[0.0; 4], &ep, &mut [0.0; 4]);
}

#[test]
#[should_panic(expected = "add: `b` has")]
fn add_rejects_length_mismatch() {
    add(&[0.0; 4], &[0.0; 3], &Epilogue::NONE, &mut [0.0; 4]);
}
