//! `depthwise` against the naive f64 reference.

use crate::common::*;
use mncc_runtime::reference::depthwise;
use mncc_runtime::{Activation, ConvShape, Depthwise, DepthwiseTiles, Epilogue};

/// Every epilogue, several `rows`; compares with the reference, checks the
/// result does not depend on `rows`, and that an activation is exactly the
/// f32 activation of the output without it.
fn check<const CT: usize>(what: &str, s: &ConvShape, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let input = rng.vec(s.in_len(), 2.0);
    let weights = rng.vec(s.kernel_h * s.kernel_w * s.in_c, 1.0);
    let mut last = Vec::new();
    for epi in epilogues(&mut rng, s.out_c, s.out_len()) {
        let ep = epi.ep();
        let want = ref_depthwise(s, &input, &weights, &ep);
        let mut first: Option<Vec<f32>> = None;
        for rows in [1, 2, 3, s.out_h.max(1), s.out_h + 3] {
            let mut out = vec![f32::NAN; s.out_len()];
            depthwise::<CT>(
                &Depthwise {
                    shape: *s,
                    tiles: DepthwiseTiles { rows },
                },
                &input,
                &weights,
                &ep,
                &mut out,
            );
            let tag = format!("{what} CT={CT} rows={rows} ep={}", epi.name);
            assert_close(&tag, &out, &want);
            match &first {
                None => first = Some(out),
                Some(f) => assert_same_bits(&tag, f, &out),
            }
        }
        let first = first.unwrap();
        if epi.act != Activation::None {
            let plain = Epilogue {
                act: Activation::None,
                ..ep
            };
            let mut out = vec![f32::NAN; s.out_len()];
            depthwise::<CT>(
                &Depthwise {
                    shape: *s,
                    tiles: DepthwiseTiles { rows: 2 },
                },
                &input,
                &weights,
                &plain,
                &mut out,
            );
            let tag = format!("{what} CT={CT} ep={} vs no activation", epi.name);
            assert_act_applied_once(&tag, epi.act, &first, &out);
        }
        last = first;
    }
    last
}

/// The same shape under CT = 1, 4, 8, 16 (and one odd CT); all must agree
/// bit for bit.
fn check_all_ct(what: &str, s: &ConvShape, seed: u64) {
    let a = check::<1>(what, s, seed);
    for b in [
        check::<4>(what, s, seed),
        check::<8>(what, s, seed),
        check::<16>(what, s, seed),
        check::<3>(what, s, seed),
    ] {
        assert_same_bits(&format!("{what} across CT"), &a, &b);
    }
}

#[test]
fn channels_around_the_tile() {
    // c = 1, CT - 1, CT, CT + 1, multiples of 8 and 16, odd.
    for c in [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 32, 33] {
        let s = same_shape(7, c, c, 3, 1);
        check_all_ct(&format!("c={c}"), &s, c as u64);
    }
}

#[test]
fn mobilenet_like_layers() {
    // TF SAME stride 2 (pad_top = pad_left = 0, implied bottom/right pad),
    // PyTorch-style symmetric padding, and stride 1.
    let cases = [
        same_shape(56, 32, 32, 3, 1),
        same_shape(112, 16, 16, 3, 2),
        same_shape(14, 40, 40, 5, 1),
        same_shape(14, 24, 24, 5, 2),
        conv_shape((14, 14), 24, 24, (3, 3), (2, 2), (1, 1), (1, 1)),
        conv_shape((7, 7), 48, 48, (3, 3), (1, 1), (1, 1), (1, 1)),
    ];
    for (i, s) in cases.iter().enumerate() {
        if i == 0 {
            assert_eq!(s.pad_top, 1);
        }
        if i == 1 {
            assert_eq!((s.out_h, s.pad_top), (56, 0));
        }
        let a = check::<8>(&format!("case {i} {s:?}"), s, 500 + i as u64);
        let b = check::<16>(&format!("case {i} {s:?}"), s, 500 + i as u64);
        assert_same_bits(&format!("case {i} across CT"), &a, &b);
    }
}

#[test]
fn kernels_strides_and_padding() {
    let cases = [
        // (in_hw, c, k, stride, pad top/left, pad bottom/right)
        ((5, 5), 3, (1, 1), (1, 1), (0, 0), (0, 0)),
        ((6, 7), 5, (1, 1), (2, 2), (0, 0), (0, 0)),
        ((7, 7), 6, (3, 3), (1, 1), (1, 1), (1, 1)),
        ((9, 9), 6, (3, 3), (2, 2), (0, 0), (1, 1)),   // TF SAME, odd input
        ((10, 10), 6, (3, 3), (2, 2), (0, 0), (1, 1)), // TF SAME, even input
        ((11, 6), 4, (5, 5), (1, 1), (2, 2), (2, 2)),
        ((11, 13), 9, (5, 5), (2, 2), (1, 2), (2, 1)),
        ((13, 13), 9, (5, 5), (2, 2), (1, 1), (2, 2)), // TF SAME k5 s2, odd
        ((4, 4), 3, (3, 5), (1, 2), (2, 0), (0, 4)),   // rectangular kernel
        ((3, 3), 2, (3, 3), (1, 1), (2, 2), (2, 2)),   // windows fully in padding
        ((2, 2), 3, (5, 5), (1, 1), (2, 2), (2, 2)),   // no interior at all
        ((1, 1), 3, (3, 3), (1, 1), (1, 1), (1, 1)),
        ((1, 9), 3, (1, 3), (1, 1), (0, 1), (0, 1)),
        ((6, 6), 7, (3, 3), (2, 2), (0, 0), (0, 0)), // VALID: all interior
        ((8, 8), 5, (3, 3), (3, 3), (1, 1), (0, 0)), // stride 3
    ];
    for (i, &(hw, c, k, st, tl, br)) in cases.iter().enumerate() {
        let s = conv_shape(hw, c, c, k, st, tl, br);
        check_all_ct(&format!("case {i} {s:?}"), &s, 1000 + i as u64);
    }
}

#[test]
fn output_smaller_than_padding_implies() {
    // out_h/out_w smaller than the padded input allows (negative implied
    // bottom/right padding): the extra input is simply never read.
    let s = ConvShape {
        in_h: 9,
        in_w: 9,
        in_c: 5,
        out_h: 3,
        out_w: 2,
        out_c: 5,
        kernel_h: 3,
        kernel_w: 3,
        stride_h: 2,
        stride_w: 2,
        pad_top: 1,
        pad_left: 1,
    };
    check_all_ct("cropped", &s, 9);
}

#[test]
#[should_panic(expected = "depthwise: out_c")]
fn out_c_must_equal_in_c() {
    let s = conv_shape((4, 4), 3, 4, (3, 3), (1, 1), (1, 1), (1, 1));
    let mut out = vec![0.0; s.out_len()];
    depthwise::<4>(
        &Depthwise {
            shape: s,
            tiles: DepthwiseTiles { rows: 1 },
        },
        &vec![0.0; s.in_len()],
        &[0.0; 27],
        &Epilogue::NONE,
        &mut out,
    );
}

#[test]
#[should_panic(expected = "depthwise: `ep.residual` has")]
fn wrong_residual_length_panics() {
    let s = same_shape(4, 3, 3, 3, 1);
    let mut out = vec![0.0; s.out_len()];
    let res = vec![0.0; s.out_len() - 1];
    let ep = Epilogue {
        residual: Some(&res),
        ..Epilogue::NONE
    };
    depthwise::<4>(
        &Depthwise {
            shape: s,
            tiles: DepthwiseTiles { rows: 1 },
        },
        &vec![0.0; s.in_len()],
        &[0.0; 27],
        &ep,
        &mut out,
    );
}
