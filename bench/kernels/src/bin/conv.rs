//! The first convolution (3x3, stride 2, 3 input channels) of the benchmark
//! models: `simd::conv2d` ("new") against a copy of its previous im2col
//! route ("old": the gather into a 16 KiB buffer, then the GEMM through the
//! public `simd::pointwise`, which runs the same micro-kernel), alternating
//! one call of each in one process (the machine's throughput swings within
//! seconds: only same-run ratios mean anything). Prints the medians, the
//! median of the per-pair ratios old/new, and the largest difference
//! between the two outputs.
//!
//! Usage: `conv [--seconds S] [--isa avx512|avx2|portable] [--only NAME]`
#![forbid(unsafe_code)]

use mncc_bench_kernels::{fill, median};
use mncc_runtime::isa::{self, Isa};
use mncc_runtime::{simd, Activation, Conv2d, ConvShape, Epilogue, Layout, Pixel, Pointwise, PointwiseShape};
use mncc_runtime::{PointwiseTiles, PwOrder};
use std::hint::black_box;
use std::time::Instant;

/// Input side, output channels: the first layers of v1 0.25 128, v1 1.0
/// 224 and v2 0.35 128 (3x3, stride 2, PyTorch padding 1).
const SHAPES: [(&str, usize, usize); 3] = [
    ("v1_0.25_128", 128, 8),
    ("v1_1.0_224", 224, 32),
    ("v2_0.35_128", 128, 16),
];

/// The previous `simd::conv2d` route, for 3x3-like first layers (all
/// im2col columns in one K-block, as for every `kk <= 512`).
#[allow(clippy::too_many_arguments)]
fn old_conv2d<T: Pixel>(
    s: &ConvShape,
    layout: Layout,
    input: &[T],
    pad: &[f32],
    weights: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
    patch: &mut [f32; 4096],
) {
    let kk = s.kernel_h * s.kernel_w * s.in_c;
    assert!(kk <= 512);
    let pixels = s.out_h * s.out_w;
    let bp = (4096 / kk).min(pixels);
    let mut p0 = 0;
    while p0 < pixels {
        let np = bp.min(pixels - p0);
        gather(s, layout, input, pad, p0, np, patch);
        let block_ep = Epilogue {
            residual: ep.residual.map(|r| &r[p0 * s.out_c..][..np * s.out_c]),
            ..*ep
        };
        simd::pointwise(
            &Pointwise {
                shape: PointwiseShape {
                    pixels: np,
                    in_c: kk,
                    out_c: s.out_c,
                },
                tiles: PointwiseTiles {
                    kc: kk,
                    order: PwOrder::PixelsOuter,
                },
            },
            &patch[..np * kk],
            weights,
            &block_ep,
            &mut out[p0 * s.out_c..][..np * s.out_c],
            None,
        );
        p0 += np;
    }
}

/// The previous whole-window gather, verbatim.
fn gather<T: Pixel>(s: &ConvShape, layout: Layout, input: &[T], pad: &[f32], p0: usize, np: usize, patch: &mut [f32]) {
    let c = s.in_c;
    let kb = s.kernel_h * s.kernel_w * c;
    let plane = s.in_h * s.in_w;
    let (mut oy, mut ox) = (p0 / s.out_w, p0 % s.out_w);
    for row in patch[..np * kb].chunks_exact_mut(kb.max(1)) {
        let mut taps = row.chunks_exact_mut(c.max(1));
        for ky in 0..s.kernel_h {
            let iy = (oy * s.stride_h + ky).wrapping_sub(s.pad_top);
            for kx in 0..s.kernel_w {
                let ix = (ox * s.stride_w + kx).wrapping_sub(s.pad_left);
                let Some(dst) = taps.next() else { return };
                if iy < s.in_h && ix < s.in_w {
                    match layout {
                        Layout::Nhwc => {
                            let px = &input[(iy * s.in_w + ix) * c..][..c];
                            for (d, &x) in dst.iter_mut().zip(px) {
                                *d = x.to_f32();
                            }
                        }
                        Layout::Nchw => {
                            let at = iy * s.in_w + ix;
                            for (ci, d) in dst.iter_mut().enumerate() {
                                *d = input[ci * plane + at].to_f32();
                            }
                        }
                    }
                } else {
                    dst.copy_from_slice(pad);
                }
            }
        }
        ox += 1;
        if ox == s.out_w {
            ox = 0;
            oy += 1;
        }
    }
}

struct Case<'a, T> {
    s: ConvShape,
    layout: Layout,
    input: &'a [T],
    pad: &'a [f32],
}

/// Alternates old and new for `seconds`; returns (old ms, new ms, median
/// ratio old/new, max |old - new|).
fn run<T: Pixel>(c: &Case<'_, T>, weights: &[f32], ep: &Epilogue<'_>, seconds: f64) -> (f64, f64, f64, f32) {
    let s = &c.s;
    let mut patch = [0.0f32; 4096];
    let mut out_old = vec![0.0; s.out_len()];
    let mut out_new = vec![0.0; s.out_len()];
    let old = |out: &mut [f32], patch: &mut [f32; 4096]| {
        old_conv2d(s, c.layout, black_box(c.input), c.pad, weights, ep, out, patch)
    };
    let new = |out: &mut [f32]| {
        simd::conv2d(
            &Conv2d {
                shape: *s,
                layout: c.layout,
                pad_value: c.pad,
            },
            black_box(c.input),
            weights,
            ep,
            out,
        )
    };
    old(&mut out_old, &mut patch);
    new(&mut out_new);
    let diff = out_old
        .iter()
        .zip(&out_new)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let (mut to, mut tn, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || to.len() < 11 {
        let t = Instant::now();
        old(&mut out_old, &mut patch);
        let a = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        new(&mut out_new);
        let b = t.elapsed().as_secs_f64() * 1e3;
        black_box((&out_old, &out_new));
        to.push(a);
        tn.push(b);
        ratios.push(a / b);
    }
    (median(&mut to), median(&mut tn), median(&mut ratios), diff)
}

fn main() {
    let mut seconds = 2.0;
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).expect("--seconds S"),
            "--only" => only = args.next(),
            "--isa" => {
                let isa = match args.next().as_deref() {
                    Some("avx512") => Isa::Avx512,
                    Some("avx2") => Isa::Avx2,
                    Some("portable") => Isa::Portable,
                    o => panic!("--isa avx512|avx2|portable, not {o:?}"),
                };
                isa::set_limit(Some(isa));
            }
            o => panic!("unknown argument {o}"),
        }
    }
    println!("isa: {}", isa::active().name());
    println!(
        "{:<14} {:<10} {:>9} {:>9} {:>8} {:>10}",
        "shape", "input", "old ms", "new ms", "old/new", "max diff"
    );
    for (name, side, out_c) in SHAPES {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let out_side = side / 2;
        let s = ConvShape {
            in_h: side,
            in_w: side,
            in_c: 3,
            out_h: out_side,
            out_w: out_side,
            out_c,
            kernel_h: 3,
            kernel_w: 3,
            stride_h: 2,
            stride_w: 2,
            pad_top: 1,
            pad_left: 1,
        };
        let weights = fill(mncc_runtime::abi::pack::conv2d_packed_len(&s), 2);
        let bias = fill(out_c, 3);
        let ep = Epilogue {
            bias: Some(&bias),
            min: 0.0,
            max: 6.0,
            residual: None,
            act: Activation::None,
        };
        let floats = fill(s.in_len(), 1);
        let bytes: Vec<u8> = floats.iter().map(|&x| ((x + 0.5) * 255.0) as u8).collect();
        let zeros = [0.0f32; 3];
        let pad_u8 = [124.0f32, 116.0, 104.0];
        let u8_weights: Vec<f32> = weights.iter().map(|w| w / 64.0).collect();
        let f = Case {
            s,
            layout: Layout::Nchw,
            input: &floats,
            pad: &zeros,
        };
        let (o, n, r, d) = run(&f, &weights, &ep, seconds);
        println!("{name:<14} {:<10} {o:>9.4} {n:>9.4} {r:>8.2} {d:>10.2e}", "f32 NCHW");
        let u = Case {
            s,
            layout: Layout::Nhwc,
            input: &bytes,
            pad: &pad_u8,
        };
        let (o, n, r, d) = run(&u, &u8_weights, &ep, seconds);
        println!("{name:<14} {:<10} {o:>9.4} {n:>9.4} {r:>8.2} {d:>10.2e}", "u8 NHWC");
    }
}
