//! `simd::depthwise` beyond `simd.rs`'s shapes: rows wide enough for every
//! interior block size (8, 4 and single pixels on AVX-512), non-square
//! inputs, different vertical and horizontal strides, output rows whose
//! window lies entirely in the padding, channel counts with vector and
//! half-vector remainders, the MobileNet v1/v2 shapes, and bit-identical
//! results across `rows` tiles. Every instruction set this CPU has, as in
//! `simd.rs`.

use crate::common::*;
use mncc_runtime::isa::Isa;
use mncc_runtime::{simd, ConvShape, Depthwise, DepthwiseTiles};

/// Every epilogue against the f64 reference with `rows` = 1, 2 and all;
/// the three results bit-identical.
fn check(isa: Isa, s: ConvShape, seed: u64) {
    let mut rng = Rng::new(seed);
    let c = s.in_c;
    let input = rng.vec(s.in_len(), 2.0);
    let weights = rng.vec(s.kernel_h * s.kernel_w * c, 1.0);
    for epi in epilogues(&mut rng, c, s.out_len()) {
        let ep = epi.ep();
        let want = ref_depthwise(&s, &input, &weights, &ep);
        let mut first: Option<Vec<f32>> = None;
        for rows in [1, 2, s.out_h.max(1)] {
            let mut out = vec![f32::NAN; s.out_len()];
            simd::depthwise(
                &Depthwise {
                    shape: s,
                    tiles: DepthwiseTiles { rows },
                },
                &input,
                &weights,
                &ep,
                &mut out,
            );
            let tag = format!("{} depthwise {s:?} rows={rows} ep={}", isa.name(), epi.name);
            assert_close(&tag, &out, &want);
            match &first {
                Some(f) => assert_same_bits(&tag, f, &out),
                None => first = Some(out),
            }
        }
    }
}

#[test]
fn depthwise_wide_rows() {
    on_each_isa("depthwise wide rows", |isa| {
        let mut seed = 10;
        // Interior widths with every remainder modulo 8 and 4.
        for w in [17, 18, 19, 20, 21, 22, 23, 24, 29, 37] {
            for &(k, stride) in &[(3, 1), (3, 2), (5, 1), (5, 2)] {
                for c in [16, 24, 36] {
                    seed += 1;
                    let pad = k / 2;
                    check(
                        isa,
                        conv_shape((3, w), c, c, (k, k), (stride, stride), (pad, pad), (pad, pad)),
                        seed,
                    );
                }
            }
        }
    });
}

/// Rows that run in blocks only, edges included (3x3, padding at most 1):
/// every width from below one block to two wide blocks plus 1, 2 or 3
/// pixels (the last three: one more overlapping block), both strides,
/// symmetric padding and right-only padding.
#[test]
fn depthwise_narrow_rows_in_edge_blocks() {
    on_each_isa("depthwise narrow rows", |isa| {
        let mut seed = 1100;
        for w in 1..=19 {
            for stride in [1, 2] {
                for (pad_l, pad_r) in [(1, 1), (0, 1)] {
                    if w + pad_l + pad_r < 3 {
                        continue;
                    }
                    for c in [16, 40] {
                        seed += 1;
                        check(
                            isa,
                            conv_shape((5, w), c, c, (3, 3), (stride, stride), (1, pad_l), (1, pad_r)),
                            seed,
                        );
                    }
                }
            }
        }
    });
}

#[test]
fn depthwise_odd_geometry() {
    on_each_isa("depthwise odd geometry", |isa| {
        for (i, s) in [
            // Non-square, taller than wide and wider than tall.
            conv_shape((4, 40), 32, 32, (3, 3), (1, 1), (1, 1), (1, 1)),
            conv_shape((23, 3), 32, 32, (3, 3), (1, 1), (1, 1), (1, 1)),
            // Vertical and horizontal strides differ.
            conv_shape((9, 30), 16, 16, (3, 3), (2, 1), (1, 1), (1, 1)),
            conv_shape((9, 30), 16, 16, (3, 3), (1, 2), (1, 1), (1, 1)),
            conv_shape((11, 27), 16, 16, (5, 5), (1, 2), (2, 2), (2, 2)),
            // Padding larger than the kernel: whole output rows and
            // columns read nothing but padding.
            conv_shape((4, 20), 16, 16, (3, 3), (1, 1), (3, 4), (3, 4)),
            conv_shape((5, 5), 8, 8, (5, 5), (2, 2), (5, 5), (5, 5)),
            // Only one pixel of input, bigger than the kernel's reach.
            conv_shape((1, 1), 16, 16, (3, 3), (1, 1), (1, 1), (1, 1)),
            // No padding at all, and only bottom/right padding.
            conv_shape((12, 26), 48, 48, (3, 3), (1, 1), (0, 0), (0, 0)),
            conv_shape((12, 26), 48, 48, (3, 3), (2, 2), (0, 0), (1, 1)),
            // A kernel size with no specialization.
            conv_shape((10, 21), 16, 16, (3, 5), (1, 1), (1, 2), (1, 2)),
        ]
        .into_iter()
        .enumerate()
        {
            check(isa, s, 300 + i as u64);
        }
    });
}

#[test]
fn depthwise_channel_remainders() {
    on_each_isa("depthwise channels", |isa| {
        // Full vectors, then half vectors (8 lanes on AVX-512, 4 on AVX2),
        // then the reference kernel's channels.
        for (i, c) in [9, 12, 20, 24, 31, 40, 44, 47, 56, 63, 72].into_iter().enumerate() {
            check(
                isa,
                conv_shape((6, 19), c, c, (3, 3), (1, 1), (1, 1), (1, 1)),
                700 + i as u64,
            );
            check(
                isa,
                conv_shape((7, 21), c, c, (3, 3), (2, 2), (1, 1), (1, 1)),
                800 + i as u64,
            );
        }
    });
}

#[test]
fn depthwise_mobilenet_shapes() {
    on_each_isa("depthwise mobilenet", |isa| {
        // (size, channels, stride) of v1 and v2 at 224 (PyTorch padding
        // 1), sizes reduced where the channel count is small enough to
        // keep the f64 reference quick.
        for (i, (n, c, stride)) in [
            (28, 32, 1),
            (28, 64, 2),
            (14, 128, 1),
            (14, 128, 2),
            (14, 144, 1),
            (14, 144, 2),
            (14, 192, 2),
            (14, 256, 1),
            (14, 384, 1),
            (14, 576, 2),
            (7, 960, 1),
            (7, 1024, 1),
        ]
        .into_iter()
        .enumerate()
        {
            let s = conv_shape((n, n), c, c, (3, 3), (stride, stride), (1, 1), (1, 1));
            let mut rng = Rng::new(900 + i as u64);
            let input = rng.vec(s.in_len(), 2.0);
            let weights = rng.vec(9 * c, 1.0);
            let bias = rng.vec(c, 2.0);
            let ep = mncc_runtime::Epilogue {
                bias: Some(&bias),
                min: 0.0,
                max: 6.0,
                residual: None,
                act: mncc_runtime::Activation::None,
            };
            let want = ref_depthwise(&s, &input, &weights, &ep);
            let mut out = vec![f32::NAN; s.out_len()];
            simd::depthwise(
                &Depthwise {
                    shape: s,
                    tiles: DepthwiseTiles { rows: 1 },
                },
                &input,
                &weights,
                &ep,
                &mut out,
            );
            assert_close(&format!("{} depthwise {s:?}", isa.name()), &out, &want);
        }
    });
}

#[test]
fn depthwise_nan_reaches_its_windows_only() {
    on_each_isa("depthwise nan", |isa| {
        // A NaN reaches exactly the outputs whose window holds it (and, in
        // particular, no output through a padding tap: padding taps are
        // skipped, not multiplied by zero).
        for (k, stride) in [(3, 1), (3, 2), (5, 1), (5, 2)] {
            let pad = k / 2;
            let s = conv_shape((9, 25), 16, 16, (k, k), (stride, stride), (pad, pad), (pad, pad));
            let mut rng = Rng::new(42);
            let mut input = rng.vec(s.in_len(), 1.0);
            let weights = rng.vec(k * k * 16, 1.0);
            let (iy, ix) = (4, 12);
            input[(iy * s.in_w + ix) * 16 + 3] = f32::NAN;
            let epi = &epilogues(&mut rng, 16, s.out_len())[0];
            assert_eq!(epi.name, "none");
            let mut out = vec![0.0; s.out_len()];
            simd::depthwise(
                &Depthwise {
                    shape: s,
                    tiles: DepthwiseTiles { rows: 1 },
                },
                &input,
                &weights,
                &epi.ep(),
                &mut out,
            );
            // Window of output `o` along one axis: `o * stride - pad + (0..k)`.
            let holds = |o: usize, i: usize| (0..k).any(|t| (o * stride + t) as isize - pad as isize == i as isize);
            for (i, &g) in out.iter().enumerate() {
                let (px, ch) = (i / 16, i % 16);
                let (oy, ox) = (px / s.out_w, px % s.out_w);
                let want = ch == 3 && holds(oy, iy) && holds(ox, ix);
                assert_eq!(
                    g.is_nan(),
                    want,
                    "{} k={k} s={stride}: NaN at ({oy}, {ox}, {ch})",
                    isa.name()
                );
            }
            assert!(out.iter().any(|x| x.is_nan()), "the NaN reached no output");
        }
    });
}
