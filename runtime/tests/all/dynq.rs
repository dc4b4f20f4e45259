//! The layers on a dynamically quantized input (`mncc_runtime::dynq`)
//! against a naive reference (the range and parameters in `f32` as
//! onnxruntime computes them, the sums in exact `i64`, the float epilogue
//! one rounding per step), bit for bit, on every instruction set of this
//! CPU; the call counts prove which path ran.

use crate::common::{for_each_isa, Rng};
use mncc_runtime::abi::pack::{qpanel_index, qpanels_len};
use mncc_runtime::dynq::{self, DynWeights};
use mncc_runtime::isa::{self, Isa};
use mncc_runtime::{ConvShape, PointwiseShape};

/// uint8 weights `[out][k]` (row-major in the layer's own order), their
/// zero points, scales and biases.
struct Layer {
    w: Vec<u8>,
    zp: Vec<i32>,
    scale: Vec<f32>,
    bias: Option<Vec<f32>>,
    min: f32,
    max: f32,
}

fn layer(r: &mut Rng, k: usize, n: usize) -> Layer {
    let per_channel = r.below(2) == 0;
    let z = r.below(256) as i32;
    let s = 0.001 + r.below(1000) as f32 / 20000.0;
    let relu6 = r.below(2) == 0;
    Layer {
        w: (0..k * n).map(|_| r.below(256) as u8).collect(),
        zp: (0..n)
            .map(|_| if per_channel { r.below(256) as i32 } else { z })
            .collect(),
        scale: (0..n)
            .map(|_| {
                if per_channel {
                    0.001 + r.below(1000) as f32 / 20000.0
                } else {
                    s
                }
            })
            .collect(),
        bias: (r.below(3) > 0).then(|| (0..n).map(|_| r.below(2001) as f32 / 500.0 - 2.0).collect()),
        min: if relu6 { 0.0 } else { f32::NEG_INFINITY },
        max: if relu6 { 6.0 } else { f32::INFINITY },
    }
}

/// DynamicQuantizeLinear, naively: `(values, scale, zero point)`.
fn quantize(x: &[f32]) -> (Vec<i64>, f32, i64) {
    let lo = x.iter().fold(0f32, |m, &v| m.min(v));
    let hi = x.iter().fold(0f32, |m, &v| m.max(v));
    let scale = if hi == lo { 1.0 } else { (hi - lo) / 255.0 };
    let zp = (0.0 - lo / scale).clamp(0.0, 255.0).round_ties_even() as i64;
    let q = x
        .iter()
        .map(|&v| ((v / scale).round_ties_even() as i64 + zp).clamp(0, 255))
        .collect();
    (q, scale, zp)
}

fn output(acc: i64, x_scale: f32, l: &Layer, o: usize) -> f32 {
    let v = acc as i32 as f32 * (x_scale * l.scale[o]) + l.bias.as_ref().map_or(0.0, |b| b[o]);
    v.max(l.min).min(l.max)
}

/// Weights stored as the compiler stores them: `u8 - 128`, in the GEMM's
/// panels (`k` inputs of `n` outputs, `src(o, i)` the index into `l.w`) or
/// in the given order, with the corrections (`wsum - k * zp` in stored
/// terms; zeros without a GEMM).
fn stored(
    l: &Layer,
    k: usize,
    n: usize,
    gemm: bool,
    src: impl Fn(usize, usize) -> usize,
) -> (Vec<i8>, Vec<i32>, Vec<i32>) {
    let zp: Vec<i32> = l.zp.iter().map(|z| z - 128).collect();
    if !gemm {
        let v = (0..k * n)
            .map(|i| (l.w[src(i % n, i / n)] as i32 - 128) as i8)
            .collect();
        return (v, zp, vec![0; n]);
    }
    let mut p = vec![0i8; qpanels_len(k, n)];
    let mut corr = Vec::new();
    for o in 0..n {
        let mut sum = 0i32;
        for i in 0..k {
            let v = (l.w[src(o, i)] as i32 - 128) as i8;
            p[qpanel_index(k, o, i)] = v;
            sum += v as i32;
        }
        corr.push(sum - k as i32 * zp[o]);
    }
    (p, zp, corr)
}

fn weights<'a>(l: &'a Layer, v: &'a [i8], zp: &'a [i32], corr: &'a [i32]) -> DynWeights<'a> {
    DynWeights {
        values: v,
        zero_point: zp,
        correction: corr,
        scale: &l.scale,
        bias: l.bias.as_deref(),
        min: l.min,
        max: l.max,
    }
}

fn input(r: &mut Rng, len: usize) -> Vec<f32> {
    let shift = r.below(3) as f32;
    (0..len).map(|_| r.below(4001) as f32 / 1000.0 - shift).collect()
}

/// Runs `run` on every instruction set; checks that it ran on `expect(isa)`.
fn on_each_path(what: &str, expect: impl Fn(Isa) -> Isa, mut run: impl FnMut()) {
    for_each_isa(|i| {
        let want = expect(i);
        let before = isa::calls(want);
        run();
        assert!(isa::calls(want) > before, "{what}: {want:?} did not run under {i:?}");
    });
}

fn gemm_path(i: Isa) -> Isa {
    if i == Isa::Avx512 && isa::vnni() {
        Isa::Avx512
    } else {
        Isa::Portable
    }
}

#[test]
fn dyn_pointwise_matches_the_reference_on_every_path() {
    for seed in 0..40 {
        let mut r = Rng::new(seed);
        let (pixels, k, n) = (1 + r.below(30), 1 + r.below(90), 1 + r.below(40));
        let l = layer(&mut r, k, n);
        let x = input(&mut r, pixels * k);
        let (q, xs, xz) = quantize(&x);
        let want: Vec<f32> = (0..pixels * n)
            .map(|j| {
                let (p, o) = (j / n, j % n);
                let acc: i64 = (0..k)
                    .map(|i| (q[p * k + i] - xz) * (l.w[o * k + i] as i64 - l.zp[o] as i64))
                    .sum();
                output(acc, xs, &l, o)
            })
            .collect();
        let (v, zp, corr) = stored(&l, k, n, true, |o, i| o * k + i);
        let w = weights(&l, &v, &zp, &corr);
        let shape = PointwiseShape {
            pixels,
            in_c: k,
            out_c: n,
        };
        on_each_path("dyn pointwise", gemm_path, || {
            let mut xq = vec![0u8; x.len() + 8];
            dynq::quantize(&x, &mut xq);
            let mut y = vec![0f32; pixels * n];
            dynq::pointwise(&shape, &xq, &w, &mut y);
            let bad = y.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(bad, 0, "seed {seed}: {bad} of {} outputs differ", y.len());
        });
    }
}

/// A random convolution: groups 1 (`dw = false`) or depthwise.
fn check_conv(seed: u64, dw: bool) {
    let mut r = Rng::new(seed);
    let (kh, kw) = [(3, 3), (5, 5), (1, 1), (2, 3)][r.below(4)];
    let (sh, sw) = (1 + r.below(2), 1 + r.below(2));
    let (in_h, in_w) = (1 + r.below(14), 1 + r.below(14));
    let ic = if dw {
        [1, 7, 8, 9, 16, 17, 33, 40][r.below(8)]
    } else {
        1 + r.below(12)
    };
    let oc = if dw { ic } else { 1 + r.below(24) };
    let (pt, pl) = (r.below(kh), r.below(kw));
    let (pb, pr) = (r.below(kh), r.below(kw));
    let out_h = (in_h + pt + pb).saturating_sub(kh) / sh + 1;
    let out_w = (in_w + pl + pr).saturating_sub(kw) / sw + 1;
    if in_h + pt + pb < kh || in_w + pl + pr < kw {
        return;
    }
    let s = ConvShape {
        in_h,
        in_w,
        in_c: ic,
        out_h,
        out_w,
        out_c: oc,
        kernel_h: kh,
        kernel_w: kw,
        stride_h: sh,
        stride_w: sw,
        pad_top: pt,
        pad_left: pl,
    };
    let icg = if dw { 1 } else { ic };
    let k = kh * kw * icg;
    let l = layer(&mut r, k, oc);
    let x = input(&mut r, in_h * in_w * ic);
    let (q, xs, xz) = quantize(&x);
    // Reference weights [o][ci][ky][kx] (ci < icg), input NHWC.
    let mut want = vec![0f32; out_h * out_w * oc];
    for oy in 0..out_h {
        for ox in 0..out_w {
            for o in 0..oc {
                let mut acc = 0i64;
                for ci in 0..icg {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let (iy, ix) = (
                                (oy * sh + ky) as isize - pt as isize,
                                (ox * sw + kx) as isize - pl as isize,
                            );
                            if iy < 0 || ix < 0 || iy >= in_h as isize || ix >= in_w as isize {
                                continue;
                            }
                            let c = if dw { o } else { ci };
                            let xv = q[(iy as usize * in_w + ix as usize) * ic + c];
                            let wv = l.w[((o * icg + ci) * kh + ky) * kw + kx] as i64;
                            acc += (xv - xz) * (wv - l.zp[o] as i64);
                        }
                    }
                }
                want[(oy * out_w + ox) * oc + o] = output(acc, xs, &l, o);
            }
        }
    }
    let (v, zp, corr) = if dw {
        // [kh][kw][c]: stored index i = tap * c + o.
        stored(&l, kh * kw, oc, false, |o, tap| o * kh * kw + tap)
    } else {
        // im2col rows (ky * kw + kx) * ic + ci.
        stored(&l, k, oc, true, |o, r| (o * icg + r % icg) * kh * kw + r / icg)
    };
    let w = weights(&l, &v, &zp, &corr);
    let expect = |i: Isa| {
        if dw {
            match i {
                Isa::Avx512 | Isa::Avx2 if ic >= 8 => i,
                _ => Isa::Portable,
            }
        } else {
            gemm_path(i)
        }
    };
    on_each_path(if dw { "dyn depthwise" } else { "dyn conv2d" }, expect, || {
        let mut xq = vec![0u8; x.len() + 8];
        dynq::quantize(&x, &mut xq);
        let mut y = vec![0f32; want.len()];
        if dw {
            dynq::depthwise(&s, &xq, &w, &mut y);
        } else {
            dynq::conv2d(&s, &xq, &w, &mut y);
        }
        let bad = y.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(bad, 0, "seed {seed} {s:?}: {bad} of {} outputs differ", y.len());
    });
}

#[test]
fn dyn_conv2d_matches_the_reference_on_every_path() {
    for seed in 0..60 {
        check_conv(seed, false);
    }
}

#[test]
fn dyn_depthwise_matches_the_reference_on_every_path() {
    for seed in 0..60 {
        check_conv(1000 + seed, true);
    }
}

/// The NCHW model-input variant writes the same bytes as the NHWC one on
/// the transposed input.
#[test]
fn dyn_quantize_nchw_matches_nhwc() {
    let mut r = Rng::new(7);
    let (pixels, c) = (37, 3);
    let nchw = input(&mut r, pixels * c);
    let nhwc: Vec<f32> = (0..pixels * c).map(|i| nchw[(i % c) * pixels + i / c]).collect();
    let (mut a, mut b) = (vec![0u8; pixels * c + 8], vec![0u8; pixels * c + 8]);
    dynq::quantize_nchw(pixels, c, &nchw, &mut a);
    dynq::quantize(&nhwc, &mut b);
    assert_eq!(a, b);
}
