//! `simd::conv2d`'s direct route (3x3 kernels, horizontal stride 1 or 2,
//! 1 to 4 input channels, on AVX-512, AVX2 and NEON) against the naive f64
//! reference, on every instruction set this CPU has (the portable path
//! takes the im2col route: it is the control). Edge shapes: output channels
//! that fill the wide, single and half-width register tiles or leave a
//! partial one (1, 8, 12, 16, 24, 32, 40, 48), widths the pixel tiles do not
//! divide, padding on every side (also rows and columns entirely in the
//! padding), rows wider than the row buffer, mixed strides, every epilogue
//! (residual included), `u8` and `f32` inputs in both layouts. Inputs and
//! outputs are cut out of NaN-filled buffers: a read outside the input
//! shows up as NaN, a write outside the output as a changed guard.
//!
//! As in `simd.rs`, `MNCC_REQUIRE_ISA` turns a missing instruction set into
//! a failure.

use crate::common::*;
use mncc_runtime::isa::Isa;
use mncc_runtime::{simd, Conv2d, ConvShape, Epilogue, Layout, Pixel};

/// Which epilogues a check runs.
#[derive(Clone, Copy, PartialEq)]
enum Eps {
    /// All of `common::epilogues`.
    All,
    /// None, bias + ReLU6, bias + residual + ReLU6, bias + residual + HardSwish.
    Few,
}

const FEW: [&str; 4] = ["none", "bias+relu6", "bias+residual+relu6", "bias+residual+hardswish"];

/// Guard elements around the input and output slices.
const GUARD: usize = 37;

/// `simd::conv2d` on `x` (in `layout`), with the input and output cut out
/// of NaN-filled buffers; checks the output guards are untouched.
#[allow(clippy::too_many_arguments)]
fn run<T: Pixel>(
    tag: &str,
    s: &ConvShape,
    layout: Layout,
    x: &[T],
    nan: T,
    pad: &[f32],
    packed: &[f32],
    ep: &Epilogue<'_>,
) -> Vec<f32> {
    let mut inbuf = vec![nan; x.len() + 2 * GUARD];
    inbuf[GUARD..GUARD + x.len()].copy_from_slice(x);
    let mut outbuf = vec![f32::NAN; s.out_len() + 2 * GUARD];
    let guard = -12345.0f32;
    outbuf[..GUARD].fill(guard);
    outbuf[GUARD + s.out_len()..].fill(guard);
    simd::conv2d(
        &Conv2d {
            shape: *s,
            layout,
            pad_value: pad,
        },
        &inbuf[GUARD..GUARD + x.len()],
        packed,
        ep,
        &mut outbuf[GUARD..GUARD + s.out_len()],
    );
    assert!(
        outbuf[..GUARD]
            .iter()
            .chain(&outbuf[GUARD + s.out_len()..])
            .all(|&g| g == guard),
        "{tag}: wrote outside the output"
    );
    outbuf[GUARD..GUARD + s.out_len()].to_vec()
}

fn check(isa: Isa, s: ConvShape, seed: u64, eps: Eps) {
    let mut rng = Rng::new(seed);
    let kk = s.kernel_h * s.kernel_w * s.in_c;
    let weights = rng.vec(kk * s.out_c, (4.0 / (kk as f32).sqrt()).min(1.0));
    let packed = pack_pointwise(&weights, kk, s.out_c, simd::PANEL);
    assert_eq!(packed.len(), mncc_runtime::abi::pack::conv2d_packed_len(&s));
    // u8 inputs see weights scaled as a folded `(x - mean) / std` would.
    let w_u8: Vec<f32> = weights.iter().map(|w| w / 128.0).collect();
    let packed_u8 = pack_pointwise(&w_u8, kk, s.out_c, simd::PANEL);
    let pad_u8: Vec<f32> = (0..s.in_c).map(|_| 128.0 + rng.f32(40.0)).collect();
    let pad_f32 = rng.vec(s.in_c, 2.0);
    let bytes = rng.bytes(s.in_len());
    let floats = rng.vec(s.in_len(), 2.0);
    let bytes_f64: Vec<f64> = bytes.iter().map(|&b| b as f64).collect();
    let floats_f64: Vec<f64> = floats.iter().map(|&f| f as f64).collect();
    for epi in epilogues(&mut rng, s.out_c, s.out_len()) {
        if eps == Eps::Few && !FEW.contains(&epi.name) {
            continue;
        }
        let ep = epi.ep();
        let want_u8 = ref_conv2d(&s, &bytes_f64, &pad_u8, &w_u8, &ep);
        let want_f32 = ref_conv2d(&s, &floats_f64, &pad_f32, &weights, &ep);
        for layout in [Layout::Nhwc, Layout::Nchw] {
            let tag = format!("{} conv2d {s:?} {layout:?} ep={}", isa.name(), epi.name);
            let (xb, xf) = match layout {
                Layout::Nhwc => (bytes.clone(), floats.clone()),
                Layout::Nchw => (
                    to_nchw(&bytes, s.in_h, s.in_w, s.in_c),
                    to_nchw(&floats, s.in_h, s.in_w, s.in_c),
                ),
            };
            // u8 has no NaN: its guards are 255, which the f32 case's NaN
            // guards back up.
            let got = run(&tag, &s, layout, &xb, 255u8, &pad_u8, &packed_u8, &ep);
            assert_close(&format!("{tag} u8"), &got, &want_u8);
            let got = run(&tag, &s, layout, &xf, f32::NAN, &pad_f32, &packed, &ep);
            assert_close(&format!("{tag} f32"), &got, &want_f32);
        }
    }
}

/// Every register-tile kind and a partial one, for every input channel
/// count and both strides, at widths the tiles do not divide and with
/// padding on all four sides (or none, or only bottom/right).
#[test]
fn direct_edge_shapes() {
    on_each_isa("conv2d direct edges", |isa| {
        let widths = [1, 2, 3, 5, 7, 13, 17, 19, 29, 33, 26, 12];
        let pads = [
            ((1, 1), (1, 1)),
            ((0, 0), (2, 2)),
            ((2, 2), (0, 0)),
            ((0, 0), (0, 0)),
            ((1, 2), (2, 1)),
        ];
        let mut t = 0;
        for in_c in 1..=4 {
            for stride in [1, 2] {
                for out_c in [1, 8, 12, 16, 24, 32, 40, 48] {
                    let (tl, br) = pads[t % pads.len()];
                    // At least one output (the padded input covers the kernel).
                    let w = widths[t % widths.len()].max(3 - (tl.1 + br.1).min(2));
                    let h = (2 + t % 5).max(3 - (tl.0 + br.0).min(2));
                    let s = conv_shape((h, w), in_c, out_c, (3, 3), (stride, stride), tl, br);
                    check(isa, s, 100 + t as u64, Eps::Few);
                    t += 1;
                }
            }
        }
    });
}

/// Every epilogue (bias, clamps, residual, activations) on the tile kinds
/// of the benchmark models' first layers.
#[test]
fn direct_all_epilogues() {
    on_each_isa("conv2d direct epilogues", |isa| {
        for (i, out_c) in [8, 16, 32, 24, 1].into_iter().enumerate() {
            let s = conv_shape((9, 23), 3, out_c, (3, 3), (2, 2), (1, 1), (1, 1));
            check(isa, s, 200 + i as u64, Eps::All);
        }
        check(isa, same_shape(11, 3, 16, 3, 1), 210, Eps::All);
    });
}

/// Rows wider than the row buffer (chunks of a row), stride 1 and 2.
#[test]
fn direct_wide_rows() {
    on_each_isa("conv2d direct wide rows", |isa| {
        check(
            isa,
            conv_shape((3, 700), 3, 8, (3, 3), (1, 1), (1, 1), (1, 1)),
            300,
            Eps::Few,
        );
        check(
            isa,
            conv_shape((4, 701), 3, 16, (3, 3), (2, 2), (1, 1), (1, 1)),
            301,
            Eps::Few,
        );
        check(
            isa,
            conv_shape((3, 650), 1, 32, (3, 3), (2, 2), (0, 0), (2, 2)),
            302,
            Eps::Few,
        );
        check(
            isa,
            conv_shape((2, 333), 4, 24, (3, 3), (1, 1), (2, 0), (0, 2)),
            303,
            Eps::Few,
        );
    });
}

/// Vertical stride other than the horizontal one, padding wider than the
/// kernel (outputs that see only padding), a 1x1 input.
#[test]
fn direct_odd_geometry() {
    on_each_isa("conv2d direct geometry", |isa| {
        let cases = [
            conv_shape((9, 10), 3, 16, (3, 3), (1, 2), (1, 1), (1, 1)),
            conv_shape((11, 9), 3, 8, (3, 3), (3, 1), (1, 1), (1, 1)),
            conv_shape((5, 5), 3, 8, (3, 3), (2, 2), (4, 4), (4, 4)),
            conv_shape((4, 6), 2, 32, (3, 3), (1, 1), (3, 4), (5, 3)),
            conv_shape((1, 1), 3, 16, (3, 3), (1, 1), (1, 1), (1, 1)),
            conv_shape((1, 1), 4, 8, (3, 3), (2, 2), (2, 2), (2, 2)),
            // The shapes of the benchmark models' first layers, scaled down.
            same_shape(32, 3, 8, 3, 2),
            conv_shape((32, 32), 3, 32, (3, 3), (2, 2), (1, 1), (1, 1)),
        ];
        for (i, s) in cases.into_iter().enumerate() {
            check(isa, s, 400 + i as u64, Eps::Few);
        }
    });
}

/// Shapes the direct route does not take still go through im2col: other
/// kernels and strides, more input channels.
#[test]
fn other_shapes_take_im2col() {
    on_each_isa("conv2d im2col", |isa| {
        let cases = [
            conv_shape((9, 9), 3, 16, (3, 3), (3, 3), (1, 1), (1, 1)),
            conv_shape((9, 9), 3, 8, (5, 5), (2, 2), (2, 2), (2, 2)),
            conv_shape((7, 7), 5, 8, (3, 3), (1, 1), (1, 1), (1, 1)),
            conv_shape((7, 8), 3, 16, (2, 3), (1, 1), (0, 1), (1, 1)),
        ];
        for (i, s) in cases.into_iter().enumerate() {
            check(isa, s, 500 + i as u64, Eps::Few);
        }
    });
}
