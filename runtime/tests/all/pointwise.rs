//! `pointwise` against the naive f64 reference.

use crate::common::*;
use mncc_runtime::reference::pointwise;
use mncc_runtime::{Activation, Epilogue, Pointwise, PointwiseShape, PointwiseTiles, PwOrder};

const ORDERS: [PwOrder; 2] = [PwOrder::PixelsOuter, PwOrder::ChannelsOuter];

/// Every epilogue, both orders and several `kc`; compares with the reference
/// and checks that results do not depend on the tiling, and that an
/// activation is exactly the f32 activation of the output without it (so
/// applied once, after the last `kc` block). Returns the output of the last
/// epilogue.
fn check<const MR: usize, const NR: usize>(
    what: &str,
    pixels: usize,
    in_c: usize,
    out_c: usize,
    seed: u64,
) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let s = PointwiseShape { pixels, in_c, out_c };
    let input = rng.vec(pixels * in_c, 2.0);
    let weights = rng.vec(in_c * out_c, 1.0);
    let packed = pack_pointwise(&weights, in_c, out_c, NR);
    assert_eq!(packed.len(), mncc_runtime::abi::pack::panels_len(in_c, out_c, NR));
    let mut kcs = vec![1, 2, 3, 7, in_c.max(1), in_c + 4];
    if in_c > 8 {
        kcs.push(in_c / 2 + 1); // does not divide in_c
        kcs.push(in_c - 1);
    }
    let mut last = Vec::new();
    for epi in epilogues(&mut rng, out_c, pixels * out_c) {
        let ep = epi.ep();
        let want = ref_pointwise(pixels, in_c, out_c, &input, &weights, &ep);
        let mut first: Option<Vec<f32>> = None;
        for &kc in &kcs {
            for order in ORDERS {
                // NaN-filled output: the first kc block must not read it.
                let mut out = vec![f32::NAN; pixels * out_c];
                pointwise::<MR, NR>(
                    &Pointwise {
                        shape: s,
                        tiles: PointwiseTiles { kc, order },
                    },
                    &input,
                    &packed,
                    &ep,
                    &mut out,
                );
                let tag = format!("{what} {MR}x{NR} kc={kc} {order:?} ep={}", epi.name);
                assert_close(&tag, &out, &want);
                match &first {
                    None => first = Some(out),
                    Some(f) => assert_same_bits(&tag, f, &out),
                }
            }
        }
        let first = first.unwrap();
        if epi.act != Activation::None {
            let plain = Epilogue {
                act: Activation::None,
                ..ep
            };
            let mut out = vec![f32::NAN; pixels * out_c];
            let t = PointwiseTiles {
                kc: in_c.max(1),
                order: PwOrder::ChannelsOuter,
            };
            pointwise::<MR, NR>(&Pointwise { shape: s, tiles: t }, &input, &packed, &plain, &mut out);
            let tag = format!("{what} {MR}x{NR} ep={} vs no activation", epi.name);
            assert_act_applied_once(&tag, epi.act, &first, &out);
        }
        last = first;
    }
    last
}

/// One shape under several register tiles; all must agree bit for bit.
fn check_tiles(what: &str, pixels: usize, in_c: usize, out_c: usize, seed: u64) {
    let a = check::<1, 1>(what, pixels, in_c, out_c, seed);
    for b in [
        check::<4, 8>(what, pixels, in_c, out_c, seed),
        check::<3, 5>(what, pixels, in_c, out_c, seed),
        check::<8, 16>(what, pixels, in_c, out_c, seed),
        check::<2, 4>(what, pixels, in_c, out_c, seed),
    ] {
        assert_same_bits(&format!("{what} across tiles"), &a, &b);
    }
}

#[test]
fn channels_around_the_tile() {
    // out_c: 1, NR - 1, NR, NR + 1, multiples of the tiles, odd.
    for out_c in [1, 4, 5, 7, 8, 9, 15, 16, 17, 24, 33] {
        check_tiles(&format!("out_c={out_c}"), 11, 6, out_c, out_c as u64);
    }
}

#[test]
fn pixels_around_the_tile() {
    // pixels < MR, == MR, MR +- 1, multiples.
    for pixels in [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 49] {
        check_tiles(&format!("pixels={pixels}"), pixels, 5, 9, 100 + pixels as u64);
    }
}

#[test]
fn input_channels_and_kc() {
    for in_c in [1, 2, 3, 8, 13, 16, 31, 64] {
        check_tiles(&format!("in_c={in_c}"), 10, in_c, 12, 200 + in_c as u64);
    }
}

#[test]
fn mobilenet_like_layers() {
    // (pixels, in_c, out_c)
    for (i, &(p, ic, oc)) in [(196, 64, 128), (49, 160, 96), (49, 96, 24), (1, 256, 100)]
        .iter()
        .enumerate()
    {
        let a = check::<4, 8>(&format!("case {i}"), p, ic, oc, 300 + i as u64);
        let b = check::<8, 16>(&format!("case {i}"), p, ic, oc, 300 + i as u64);
        assert_same_bits("mobilenet-like across tiles", &a, &b);
    }
}

#[test]
fn fully_connected() {
    // pixels == 1: a classifier head, out_c not a multiple of any tile.
    check_tiles("fc", 1, 40, 37, 400);
}

#[test]
fn zero_input_channels_gives_the_epilogue_of_zero() {
    let s = PointwiseShape {
        pixels: 3,
        in_c: 0,
        out_c: 5,
    };
    let bias = [1.0, -2.0, 3.0, 7.0, -0.5];
    let ep = Epilogue {
        bias: Some(&bias),
        min: 0.0,
        max: 6.0,
        residual: None,
        act: Activation::None,
    };
    let mut out = vec![f32::NAN; 15];
    pointwise::<4, 4>(
        &Pointwise {
            shape: s,
            tiles: PointwiseTiles {
                kc: 1,
                order: PwOrder::PixelsOuter,
            },
        },
        &[],
        &[],
        &ep,
        &mut out,
    );
    assert_eq!(out, [1.0, 0.0, 3.0, 6.0, 0.0].repeat(3));
}

/// With `kc` blocking, partial sums go through `out` and the activation must
/// be applied once, after the last block: applying HardSigmoid or HardSwish
/// to a partial sum (or twice) would change the result.
#[test]
fn activation_is_applied_once_after_the_last_kc_block() {
    let (pixels, in_c, out_c) = (9, 13, 10);
    let mut rng = Rng::new(500);
    // Large inputs: partial sums far outside HardSigmoid's linear range.
    let input = rng.vec(pixels * in_c, 4.0);
    let weights = rng.vec(in_c * out_c, 2.0);
    let bias = rng.vec(out_c, 1.0);
    let s = PointwiseShape { pixels, in_c, out_c };
    let packed = pack_pointwise(&weights, in_c, out_c, 4);
    for act in ACTIVATIONS {
        let ep = Epilogue {
            bias: Some(&bias),
            act,
            ..Epilogue::NONE
        };
        let plain = Epilogue {
            act: Activation::None,
            ..ep
        };
        let want = ref_pointwise(pixels, in_c, out_c, &input, &weights, &ep);
        for kc in [1, 2, 4, 5, 12, 13, 20] {
            for order in ORDERS {
                let t = PointwiseTiles { kc, order };
                let mut out = vec![f32::NAN; pixels * out_c];
                pointwise::<3, 4>(&Pointwise { shape: s, tiles: t }, &input, &packed, &ep, &mut out);
                let tag = format!("{act:?} kc={kc} {order:?}");
                assert_close(&tag, &out, &want);
                let mut without = vec![f32::NAN; pixels * out_c];
                pointwise::<3, 4>(&Pointwise { shape: s, tiles: t }, &input, &packed, &plain, &mut without);
                assert_act_applied_once(&tag, act, &out, &without);
            }
        }
    }
}

#[test]
fn zero_input_channels_gives_the_activation_of_the_bias() {
    let s = PointwiseShape {
        pixels: 2,
        in_c: 0,
        out_c: 4,
    };
    let bias = [-4.0, -1.0, 0.0, 2.0];
    let ep = Epilogue {
        bias: Some(&bias),
        act: HARD_SIGMOID_ONNX,
        ..Epilogue::NONE
    };
    let mut out = vec![f32::NAN; 8];
    let t = PointwiseTiles {
        kc: 1,
        order: PwOrder::ChannelsOuter,
    };
    pointwise::<4, 4>(&Pointwise { shape: s, tiles: t }, &[], &[], &ep, &mut out);
    let want: Vec<f32> = bias.iter().map(|&b| (0.2 * b + 0.5f32).clamp(0.0, 1.0)).collect();
    assert_eq!(out, want.repeat(2));
}

#[test]
#[should_panic(expected = "pointwise: `packed` has")]
fn unpadded_weights_panic() {
    // 10 output channels, NR = 4: the packed length is 3 panels * 4 * in_c.
    let s = PointwiseShape {
        pixels: 2,
        in_c: 3,
        out_c: 10,
    };
    let mut out = vec![0.0; 20];
    pointwise::<2, 4>(
        &Pointwise {
            shape: s,
            tiles: PointwiseTiles {
                kc: 3,
                order: PwOrder::PixelsOuter,
            },
        },
        &[0.0; 6],
        &[0.0; 30],
        &Epilogue::NONE,
        &mut out,
    );
}

#[test]
#[should_panic(expected = "pointwise: tiles.kc must be at least 1")]
fn kc_zero_panics() {
    let s = PointwiseShape {
        pixels: 1,
        in_c: 1,
        out_c: 1,
    };
    let mut out = [0.0];
    pointwise::<1, 1>(
        &Pointwise {
            shape: s,
            tiles: PointwiseTiles {
                kc: 0,
                order: PwOrder::PixelsOuter,
            },
        },
        &[0.0],
        &[0.0],
        &Epilogue::NONE,
        &mut out,
    );
}
