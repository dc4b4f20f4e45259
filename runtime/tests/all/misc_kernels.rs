//! `global_avg_pool`, `softmax`, `add`, `map`, `scale_channels` against f64
//! references.

use crate::common::*;
use mncc_runtime::{add, global_avg_pool, map, nhwc_to_nchw, scale_channels, softmax, Activation, Epilogue};

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

/// `(len, c)`: tiny, around the 256-element activation block, bias periods
/// that do not divide it, a period longer than it, and MobileNet sizes.
const ELEMENTWISE_CASES: [(usize, usize); 16] = [
    (1, 1),
    (12, 3),
    (49 * 24, 24),
    (100, 1),
    (7 * 7 * 17, 17),
    (255, 1),
    (256, 1),
    (257, 1),
    (513, 1),
    (300, 3),
    (255 * 5, 255),
    (256 * 3, 256),
    (257 * 3, 257),
    (600, 300),
    (14 * 14 * 72, 72),
    (0, 4),
];

#[test]
fn add_matches_reference() {
    let mut rng = Rng::new(3);
    for (len, c) in ELEMENTWISE_CASES {
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
            let tag = format!("add len={len} c={c} ep={}", epi.name);
            assert_close(&tag, &out, &want);
            let plain = Epilogue {
                act: Activation::None,
                ..ep
            };
            let mut without = vec![f32::NAN; len];
            add(&a, &b, &plain, &mut without);
            assert_act_applied_once(&tag, epi.act, &out, &without);
        }
    }
}

#[test]
fn map_matches_reference() {
    let mut rng = Rng::new(4);
    for (len, c) in ELEMENTWISE_CASES {
        let x = rng.vec(len, 6.0);
        for epi in epilogues(&mut rng, c, len) {
            let ep = epi.ep();
            let want: Vec<f64> = (0..len).map(|i| ref_epilogue(x[i] as f64, i % c, i, &ep)).collect();
            let mut out = vec![f32::NAN; len];
            map(&x, &ep, &mut out);
            let tag = format!("map len={len} c={c} ep={}", epi.name);
            assert_close(&tag, &out, &want);
            let plain = Epilogue {
                act: Activation::None,
                ..ep
            };
            let mut without = vec![f32::NAN; len];
            map(&x, &plain, &mut without);
            assert_act_applied_once(&tag, epi.act, &out, &without);
        }
    }
}

#[test]
fn map_with_no_epilogue_copies() {
    let x = Rng::new(5).vec(1000, 3.0);
    let mut out = vec![f32::NAN; 1000];
    map(&x, &Epilogue::NONE, &mut out);
    assert_same_bits("map identity", &out, &x);
}

/// The activations at exact points (the formulas' f32 values, bit for bit),
/// and their NaN / infinity behaviour.
#[test]
fn activations_at_exact_points() {
    let x = [-4.0f32, -3.0, -1.5, -0.5, 0.0, 0.5, 1.0, 2.5, 3.0, 4.0, 100.0];
    let run = |act| {
        let ep = Epilogue { act, ..Epilogue::NONE };
        let mut out = [f32::NAN; 11];
        map(&x, &ep, &mut out);
        out
    };
    let hswish = run(Activation::HardSwish);
    let want: Vec<f32> = x.iter().map(|&v| v * (v + 3.0).clamp(0.0, 6.0) * (1.0 / 6.0)).collect();
    assert_same_bits("hardswish", &hswish, &want);
    assert_eq!((hswish[0], hswish[1], hswish[4]), (0.0, 0.0, 0.0));
    assert_eq!((hswish[8], hswish[9], hswish[10]), (3.0, 4.0, 100.0));
    for (name, alpha, beta) in [("onnx", 0.2f32, 0.5f32), ("torch", 1.0 / 6.0, 0.5)] {
        let hsig = run(Activation::HardSigmoid { alpha, beta });
        let want: Vec<f32> = x.iter().map(|&v| (alpha * v + beta).clamp(0.0, 1.0)).collect();
        assert_same_bits(&format!("hardsigmoid {name}"), &hsig, &want);
        assert_eq!((hsig[0], hsig[4], hsig[10]), (0.0, 0.5, 1.0), "hardsigmoid {name}");
    }

    let special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
    let mut out = [0.0; 3];
    let hswish = Epilogue {
        act: Activation::HardSwish,
        ..Epilogue::NONE
    };
    map(&special, &hswish, &mut out);
    // -inf * clamp(-inf, 0, 6) = -inf * 0 = NaN.
    assert!(out[0].is_nan() && out[1] == f32::INFINITY && out[2].is_nan(), "{out:?}");
    let hsig = Epilogue {
        act: HARD_SIGMOID_ONNX,
        ..Epilogue::NONE
    };
    map(&special, &hsig, &mut out);
    assert!(out[0].is_nan() && out[1] == 1.0 && out[2] == 0.0, "{out:?}");
    // The clamp comes first: ReLU6 then HardSwish.
    let relu6_hswish = Epilogue {
        min: 0.0,
        max: 6.0,
        act: Activation::HardSwish,
        ..Epilogue::NONE
    };
    map(&[-5.0, 9.0, f32::NAN], &relu6_hswish, &mut out);
    assert!(out[0] == 0.0 && out[1] == 6.0 && out[2].is_nan(), "{out:?}");
}

#[test]
#[should_panic(expected = "map: `out` has")]
fn map_rejects_length_mismatch() {
    map(&[0.0; 4], &Epilogue::NONE, &mut [0.0; 3]);
}

#[test]
#[should_panic(expected = "map: `ep.residual` has")]
fn map_rejects_wrong_residual_length() {
    let r = [0.0; 3];
    let ep = Epilogue {
        residual: Some(&r),
        ..Epilogue::NONE
    };
    map(&[0.0; 4], &ep, &mut [0.0; 4]);
}

#[test]
#[should_panic(expected = "map: bias length 3 must be non-zero and divide")]
fn map_rejects_bias_not_dividing_length() {
    let bias = [0.0; 3];
    let ep = Epilogue {
        bias: Some(&bias),
        ..Epilogue::NONE
    };
    map(&[0.0; 4], &ep, &mut [0.0; 4]);
}

#[test]
#[should_panic(expected = "map: bias length 0 must be non-zero")]
fn map_rejects_empty_bias() {
    let ep = Epilogue {
        bias: Some(&[]),
        ..Epilogue::NONE
    };
    map(&[0.0; 4], &ep, &mut [0.0; 4]);
}

fn ref_scale_channels(c: usize, x: &[f32], scale: &[f32]) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| v as f64 * scale[i % c] as f64)
        .collect()
}

#[test]
fn scale_channels_matches_reference() {
    let mut rng = Rng::new(6);
    // c = 1, around vector widths 4/8/16, odd; pixels 1, remainders, MobileNetV3
    // SE sizes (56x56x72 is 28x28x72 after the stride; 7x7x960).
    for (pixels, c) in [
        (1, 1),
        (7, 1),
        (257, 1),
        (1, 3),
        (5, 4),
        (5, 7),
        (9, 8),
        (3, 9),
        (17, 15),
        (11, 16),
        (4, 17),
        (13, 33),
        (28 * 28, 72),
        (14 * 14, 120),
        (49, 960),
        (1, 1000),
    ] {
        let x = rng.vec(pixels * c, 4.0);
        let scale = rng.vec(c, 1.0);
        let mut out = vec![f32::NAN; pixels * c];
        scale_channels(pixels, c, &x, &scale, &mut out);
        let tag = format!("scale_channels {pixels}x{c}");
        assert_close(&tag, &out, &ref_scale_channels(c, &x, &scale));
        // One f32 product per element: exact.
        let want: Vec<f32> = x.iter().enumerate().map(|(i, &v)| v * scale[i % c]).collect();
        assert_same_bits(&tag, &out, &want);
    }
}

#[test]
fn scale_channels_empty_and_special_values() {
    scale_channels(0, 5, &[], &[1.0; 5], &mut []);
    scale_channels(5, 0, &[], &[], &mut []);
    let x = [f32::NAN, f32::INFINITY, 2.0, -3.0];
    let mut out = [0.0; 4];
    scale_channels(2, 2, &x, &[0.5, 0.0], &mut out);
    assert!(out[0].is_nan() && out[1].is_nan(), "{out:?}"); // NaN * 0.5, inf * 0
    assert_eq!(&out[2..], &[1.0, -0.0]);
}

#[test]
#[should_panic(expected = "scale_channels: `x` has 11 elements, the shape needs 12")]
fn scale_channels_rejects_wrong_x_length() {
    scale_channels(3, 4, &[0.0; 11], &[0.0; 4], &mut [0.0; 12]);
}

#[test]
#[should_panic(expected = "scale_channels: `scale` has 3 elements, the shape needs 4")]
fn scale_channels_rejects_wrong_scale_length() {
    scale_channels(3, 4, &[0.0; 12], &[0.0; 3], &mut [0.0; 12]);
}

#[test]
#[should_panic(expected = "scale_channels: `out` has 13 elements, the shape needs 12")]
fn scale_channels_rejects_wrong_out_length() {
    scale_channels(3, 4, &[0.0; 12], &[0.0; 4], &mut [0.0; 13]);
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

#[test]
fn nhwc_to_nchw_moves_every_element() {
    // Channel counts around the 16-channel block; pixels 1, odd, larger.
    for &c in &[1usize, 3, 15, 16, 17, 32, 40] {
        for &pixels in &[1usize, 7, 49, 196] {
            let x: Vec<f32> = (0..pixels * c).map(|i| i as f32).collect();
            let mut out = vec![f32::NAN; pixels * c];
            nhwc_to_nchw(pixels, c, &x, &mut out);
            for ch in 0..c {
                for px in 0..pixels {
                    assert_eq!(
                        out[ch * pixels + px],
                        x[px * c + ch],
                        "c {c} pixels {pixels}: channel {ch} pixel {px}"
                    );
                }
            }
        }
    }
}

#[test]
#[should_panic(expected = "nhwc_to_nchw: `out` has")]
fn nhwc_to_nchw_checks_lengths() {
    nhwc_to_nchw(4, 3, &[0.0; 12], &mut [0.0; 11]);
}

/// The value of half `h` in f64, from its fields (independent of the
/// runtime's bit manipulation).
fn half_value(h: u16) -> f64 {
    let sign = if h >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

#[test]
fn f16_conversions_are_exact_and_round_to_nearest_even() {
    use mncc_runtime::{f16_to_f32, f32_to_f16};
    for h in 0..=u16::MAX {
        let v = half_value(h);
        let f = f16_to_f32(h);
        if v.is_nan() {
            assert!(
                f.is_nan() && f32_to_f16(f) & 0x7c00 == 0x7c00 && f32_to_f16(f) & 0x3ff != 0,
                "{h:#06x}"
            );
            continue;
        }
        assert_eq!(f as f64, v, "{h:#06x}");
        assert_eq!(f32_to_f16(f), h, "round trip {h:#06x}");
    }
    // Between two neighbouring finite halves: below, at and above the
    // midpoint (ties go to the even one), and beyond the largest half.
    for h in (0..0x7bffu16).chain(0x8000..0xfbff) {
        let (a, b) = (half_value(h), half_value(h + 1));
        let mid = (a + b) / 2.0;
        let even = if h & 1 == 0 { h } else { h + 1 };
        let below = f32::from_bits((mid as f32).to_bits() - 1) as f64;
        for (x, want) in [(mid, even), (below, h), ((mid + b) / 2.0, h + 1)] {
            let x32 = x as f32;
            assert_eq!(x32 as f64, x, "{h:#06x}: the midpoint is an f32");
            assert_eq!(f32_to_f16(x32), want, "{h:#06x}: {x}");
        }
    }
    assert_eq!(f32_to_f16(65520.0), 0x7c00, "rounds up to infinity");
    assert_eq!(f32_to_f16(65519.99), 0x7bff);
    assert_eq!(f32_to_f16(-1e9), 0xfc00);
    assert_eq!(
        f32_to_f16(2f32.powi(-25)),
        0,
        "half of the smallest subnormal: ties to even (0)"
    );
    assert_eq!(f32_to_f16(2f32.powi(-25) * 1.0001), 1);
}

#[test]
fn f16_layers_convert_and_transpose() {
    let (pixels, c) = (6, 5);
    let x: Vec<f32> = (0..pixels * c).map(|i| i as f32 * 0.25 - 3.0).collect();
    let halves: Vec<u16> = x.iter().map(|&v| mncc_runtime::f32_to_f16(v)).collect();
    // NCHW halves in, NHWC floats out.
    let mut nhwc = vec![0.0; pixels * c];
    mncc_runtime::from_f16(pixels, c, true, &halves, &mut nhwc);
    for ch in 0..c {
        for px in 0..pixels {
            assert_eq!(nhwc[px * c + ch], x[ch * pixels + px]);
        }
    }
    // And back to NCHW halves.
    let mut back = vec![0u16; pixels * c];
    mncc_runtime::to_f16(pixels, c, true, &nhwc, &mut back);
    assert_eq!(back, halves);
    let mut same = vec![0.0; pixels * c];
    mncc_runtime::from_f16(pixels, c, false, &halves, &mut same);
    assert_eq!(same, x);
}
