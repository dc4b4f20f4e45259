//! `conv2d` against the naive f64 reference.

use crate::common::*;
use mncc_runtime::reference::conv2d;
use mncc_runtime::{Activation, Conv2d, Conv2dTiles, ConvShape, Epilogue, Layout, Pixel};

/// Input data for one case, as the kernel reads it (`T`, `layout`) and as the
/// reference reads it (NHWC f64).
struct Input<T> {
    data: Vec<T>,
    nhwc: Vec<f64>,
    pad_value: Vec<f32>,
    layout: Layout,
}

fn f32_input(rng: &mut Rng, s: &ConvShape, layout: Layout, nonzero_pad: bool) -> Input<f32> {
    let nhwc = rng.vec(s.in_len(), 2.0);
    let pad_value = if nonzero_pad {
        rng.vec(s.in_c, 1.0)
    } else {
        vec![0.0; s.in_c]
    };
    let data = match layout {
        Layout::Nhwc => nhwc.clone(),
        Layout::Nchw => to_nchw(&nhwc, s.in_h, s.in_w, s.in_c),
    };
    Input {
        data,
        nhwc: nhwc.iter().map(|&x| x as f64).collect(),
        pad_value,
        layout,
    }
}

fn u8_input(rng: &mut Rng, s: &ConvShape, layout: Layout) -> Input<u8> {
    let nhwc = rng.bytes(s.in_len());
    // Like a folded ImageNet mean: pad with the raw value that normalizes to 0.
    let pad_value = (0..s.in_c).map(|c| [123.675, 116.28, 103.53][c % 3]).collect();
    let data = match layout {
        Layout::Nhwc => nhwc.clone(),
        Layout::Nchw => to_nchw(&nhwc, s.in_h, s.in_w, s.in_c),
    };
    Input {
        data,
        nhwc: nhwc.iter().map(|&x| x as f64).collect(),
        pad_value,
        layout,
    }
}

/// Runs every epilogue and several `rows` on one shape; compares with the
/// reference, checks results do not depend on `rows`, and that an activation
/// is exactly the f32 activation of the output without it.
fn check<T: Pixel, const NR: usize>(what: &str, s: &ConvShape, inp: &Input<T>, w_scale: f32, seed: u64) {
    let mut rng = Rng::new(seed);
    let weights = rng.vec(s.kernel_h * s.kernel_w * s.in_c * s.out_c, w_scale);
    for epi in epilogues(&mut rng, s.out_c, s.out_len()) {
        let ep = epi.ep();
        let want = ref_conv2d(s, &inp.nhwc, &inp.pad_value, &weights, &ep);
        let mut first: Option<Vec<f32>> = None;
        for rows in [1, 2, 3, s.out_h.max(1), s.out_h + 5] {
            let mut out = vec![f32::NAN; s.out_len()];
            conv2d::<T, NR>(
                &Conv2d {
                    shape: *s,
                    layout: inp.layout,
                    pad_value: &inp.pad_value,
                },
                &Conv2dTiles { rows },
                &inp.data,
                &weights,
                &ep,
                &mut out,
            );
            let tag = format!("{what} NR={NR} {:?} rows={rows} ep={}", inp.layout, epi.name);
            assert_close(&tag, &out, &want);
            match &first {
                None => first = Some(out),
                Some(f) => assert_same_bits(&tag, f, &out),
            }
        }
        if epi.act != Activation::None {
            let plain = Epilogue {
                act: Activation::None,
                ..ep
            };
            let mut out = vec![f32::NAN; s.out_len()];
            let t = Conv2dTiles { rows: 2 };
            conv2d::<T, NR>(
                &Conv2d {
                    shape: *s,
                    layout: inp.layout,
                    pad_value: &inp.pad_value,
                },
                &t,
                &inp.data,
                &weights,
                &plain,
                &mut out,
            );
            let tag = format!("{what} NR={NR} {:?} ep={} vs no activation", inp.layout, epi.name);
            assert_act_applied_once(&tag, epi.act, first.as_ref().unwrap(), &out);
        }
    }
}

fn all_layouts_f32<const NR: usize>(what: &str, s: &ConvShape, seed: u64) {
    let mut rng = Rng::new(seed ^ 0x5555);
    for layout in [Layout::Nhwc, Layout::Nchw] {
        for nonzero_pad in [false, true] {
            let inp = f32_input(&mut rng, s, layout, nonzero_pad);
            check::<f32, NR>(what, s, &inp, 0.5, seed);
        }
    }
}

#[test]
fn first_layer_224_same_stride2_u8() {
    // TF SAME, stride 2: 224 -> 112 with pad_top = pad_left = 0 (bottom/right
    // padding of 1 implied by out_h/out_w).
    let s = same_shape(224, 3, 32, 3, 2);
    assert_eq!((s.out_h, s.pad_top), (112, 0));
    let mut rng = Rng::new(1);
    for layout in [Layout::Nhwc, Layout::Nchw] {
        let inp = u8_input(&mut rng, &s, layout);
        let weights = rng.vec(27 * 32, 1.0 / 64.0);
        let bias = rng.vec(32, 1.0);
        let ep = Epilogue {
            bias: Some(&bias),
            min: 0.0,
            max: 6.0,
            residual: None,
            act: Activation::None,
        };
        let want = ref_conv2d(&s, &inp.nhwc, &inp.pad_value, &weights, &ep);
        let mut out = vec![f32::NAN; s.out_len()];
        conv2d::<u8, 8>(
            &Conv2d {
                shape: s,
                layout,
                pad_value: &inp.pad_value,
            },
            &Conv2dTiles { rows: 4 },
            &inp.data,
            &weights,
            &ep,
            &mut out,
        );
        assert_close(&format!("224 first layer {layout:?}"), &out, &want);
    }
}

#[test]
fn mobilenet_v3_first_layer_hardswish() {
    // MobileNetV3: 3x3 stride 2, 16 channels, BN folded, HardSwish; PyTorch
    // padding 1 on every side.
    let s = conv_shape((224, 224), 3, 16, (3, 3), (2, 2), (1, 1), (1, 1));
    assert_eq!(s.out_h, 112);
    let mut rng = Rng::new(3);
    for layout in [Layout::Nhwc, Layout::Nchw] {
        let inp = u8_input(&mut rng, &s, layout);
        let weights = rng.vec(27 * 16, 1.0 / 64.0);
        let bias = rng.vec(16, 1.0);
        let ep = Epilogue {
            bias: Some(&bias),
            act: Activation::HardSwish,
            ..Epilogue::NONE
        };
        let want = ref_conv2d(&s, &inp.nhwc, &inp.pad_value, &weights, &ep);
        let mut out = vec![f32::NAN; s.out_len()];
        let t = Conv2dTiles { rows: 4 };
        conv2d::<u8, 8>(
            &Conv2d {
                shape: s,
                layout,
                pad_value: &inp.pad_value,
            },
            &t,
            &inp.data,
            &weights,
            &ep,
            &mut out,
        );
        assert_close(&format!("v3 first layer {layout:?}"), &out, &want);
        assert!(out.iter().any(|&v| v < 0.0) && out.iter().any(|&v| v > 3.0));
    }
}

#[test]
fn u8_nonzero_pad_small_shapes() {
    let mut rng = Rng::new(2);
    for (i, s) in [
        same_shape(15, 3, 16, 3, 2),
        same_shape(9, 3, 7, 5, 1),
        same_shape(8, 3, 5, 3, 2),
        conv_shape((7, 10), 3, 9, (3, 3), (2, 1), (1, 0), (2, 2)),
    ]
    .iter()
    .enumerate()
    {
        for layout in [Layout::Nhwc, Layout::Nchw] {
            let inp = u8_input(&mut rng, s, layout);
            check::<u8, 8>(&format!("u8 case {i}"), s, &inp, 1.0 / 128.0, 10 + i as u64);
            check::<u8, 3>(&format!("u8 case {i}"), s, &inp, 1.0 / 128.0, 10 + i as u64);
        }
    }
}

#[test]
fn channels_around_the_tile() {
    // out_c: 1, NR - 1, NR, NR + 1, 2 NR, 3 NR - 1.
    for out_c in [1, 7, 8, 9, 16, 23] {
        let s = same_shape(7, 3, out_c, 3, 1);
        all_layouts_f32::<8>(&format!("out_c={out_c}"), &s, out_c as u64);
    }
    for out_c in [1, 2, 3, 4, 6, 10] {
        let s = same_shape(6, 2, out_c, 3, 2);
        all_layouts_f32::<3>(&format!("out_c={out_c}"), &s, 100 + out_c as u64);
        all_layouts_f32::<1>(&format!("out_c={out_c}"), &s, 200 + out_c as u64);
    }
    for out_c in [15, 16, 17, 32] {
        let s = same_shape(5, 4, out_c, 1, 1);
        all_layouts_f32::<16>(&format!("out_c={out_c}"), &s, 300 + out_c as u64);
    }
}

#[test]
fn kernels_strides_and_padding() {
    let cases = [
        // (in_hw, in_c, out_c, k, stride, pad top/left, pad bottom/right)
        ((5, 5), 3, 4, (1, 1), (1, 1), (0, 0), (0, 0)),
        ((6, 7), 2, 5, (1, 1), (2, 2), (0, 0), (0, 0)),
        ((7, 7), 3, 8, (3, 3), (1, 1), (1, 1), (1, 1)),
        ((9, 9), 3, 8, (3, 3), (2, 2), (0, 0), (1, 1)), // TF SAME, odd input
        ((10, 10), 3, 8, (3, 3), (2, 2), (0, 0), (1, 1)), // TF SAME, even input
        ((11, 6), 1, 3, (5, 5), (1, 1), (2, 2), (2, 2)),
        ((11, 13), 3, 6, (5, 5), (2, 2), (1, 2), (2, 1)),
        ((4, 4), 2, 3, (3, 5), (1, 2), (2, 0), (0, 4)), // rectangular kernel
        ((3, 3), 2, 5, (3, 3), (1, 1), (2, 2), (2, 2)), // windows fully in padding
        ((1, 1), 3, 4, (3, 3), (1, 1), (1, 1), (1, 1)),
        ((6, 6), 3, 4, (3, 3), (2, 2), (0, 0), (0, 0)), // VALID
    ];
    for (i, &(hw, in_c, out_c, k, st, tl, br)) in cases.iter().enumerate() {
        let s = conv_shape(hw, in_c, out_c, k, st, tl, br);
        let what = format!("case {i} {s:?}");
        all_layouts_f32::<4>(&what, &s, 1000 + i as u64);
        all_layouts_f32::<5>(&what, &s, 1000 + i as u64);
    }
}

#[test]
fn results_do_not_depend_on_nr_or_layout() {
    let s = same_shape(9, 3, 13, 3, 2);
    let mut rng = Rng::new(77);
    let nhwc = rng.vec(s.in_len(), 1.0);
    let nchw = to_nchw(&nhwc, s.in_h, s.in_w, s.in_c);
    let pad = rng.vec(3, 1.0);
    let w = rng.vec(9 * 3 * 13, 1.0);
    let bias = rng.vec(13, 1.0);
    let ep = Epilogue {
        bias: Some(&bias),
        min: -1.0,
        max: 6.0,
        residual: None,
        act: Activation::HardSwish,
    };
    let run = |f: &dyn Fn(&mut [f32])| {
        let mut out = vec![f32::NAN; s.out_len()];
        f(&mut out);
        out
    };
    let t = Conv2dTiles { rows: 2 };
    let base = run(&|o| {
        conv2d::<f32, 1>(
            &Conv2d {
                shape: s,
                layout: Layout::Nhwc,
                pad_value: &pad,
            },
            &t,
            &nhwc,
            &w,
            &ep,
            o,
        )
    });
    for out in [
        run(&|o| {
            conv2d::<f32, 4>(
                &Conv2d {
                    shape: s,
                    layout: Layout::Nhwc,
                    pad_value: &pad,
                },
                &t,
                &nhwc,
                &w,
                &ep,
                o,
            )
        }),
        run(&|o| {
            conv2d::<f32, 13>(
                &Conv2d {
                    shape: s,
                    layout: Layout::Nhwc,
                    pad_value: &pad,
                },
                &t,
                &nhwc,
                &w,
                &ep,
                o,
            )
        }),
        run(&|o| {
            conv2d::<f32, 16>(
                &Conv2d {
                    shape: s,
                    layout: Layout::Nchw,
                    pad_value: &pad,
                },
                &t,
                &nchw,
                &w,
                &ep,
                o,
            )
        }),
        run(&|o| {
            conv2d::<f32, 8>(
                &Conv2d {
                    shape: s,
                    layout: Layout::Nchw,
                    pad_value: &pad,
                },
                &t,
                &nchw,
                &w,
                &ep,
                o,
            )
        }),
    ] {
        assert_same_bits("conv2d across NR/layout", &base, &out);
    }
}

#[test]
#[should_panic(expected = "conv2d: `weights` has")]
fn wrong_weight_length_panics() {
    let s = same_shape(4, 3, 4, 3, 1);
    let input = vec![0.0f32; s.in_len()];
    let mut out = vec![0.0; s.out_len()];
    conv2d::<f32, 4>(
        &Conv2d {
            shape: s,
            layout: Layout::Nhwc,
            pad_value: &[0.0; 3],
        },
        &Conv2dTiles { rows: 1 },
        &input,
        &[0.0; 10],
        &mncc_runtime::Epilogue::NONE,
        &mut out,
    );
}

#[test]
#[should_panic(expected = "conv2d: `ep.bias` has")]
fn wrong_bias_length_panics() {
    let s = same_shape(4, 3, 4, 3, 1);
    let input = vec![0.0f32; s.in_len()];
    let w = vec![0.0; 9 * 3 * 4];
    let mut out = vec![0.0; s.out_len()];
    let bias = [0.0; 3];
    let ep = mncc_runtime::Epilogue {
        bias: Some(&bias),
        ..mncc_runtime::Epilogue::NONE
    };
    conv2d::<f32, 4>(
        &Conv2d {
            shape: s,
            layout: Layout::Nhwc,
            pad_value: &[0.0; 3],
        },
        &Conv2dTiles { rows: 1 },
        &input,
        &w,
        &ep,
        &mut out,
    );
}
