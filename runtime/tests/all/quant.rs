//! The integer GEMM kernels (`qpointwise`, `qconv2d`) against a naive
//! reference in exact integers, bit for bit, on every instruction set of
//! this CPU: AVX-512 VNNI where it has it, the portable path always (the
//! call counts prove which ran).

use crate::common::{for_each_isa, Rng};
use mncc_runtime::abi::pack::{qpanel_index, qpanels_len};
use mncc_runtime::abi::quant::{folded_bias, QZeroPoints};
use mncc_runtime::abi::Quantized;
use mncc_runtime::isa::{self, Isa};
use mncc_runtime::quant::{qconv2d, qpointwise, QWeights};
use mncc_runtime::{ConvShape, PointwiseShape};

/// A layer's constants: `w[o][i]` (stored i8), zero points, raw biases,
/// multipliers.
struct Layer {
    w: Vec<i8>,
    zp: Vec<i32>,
    bias: Vec<i32>,
    mult: Vec<f32>,
}

fn layer(r: &mut Rng, k: usize, n: usize) -> Layer {
    Layer {
        w: (0..k * n).map(|_| r.next_u64() as i8).collect(),
        zp: (0..n)
            .map(|_| if r.below(3) == 0 { 0 } else { r.below(200) as i32 - 100 })
            .collect(),
        bias: (0..n).map(|_| r.below(20001) as i32 - 10000).collect(),
        mult: (0..n).map(|_| 1.0 / (200.0 + r.below(4000) as f32)).collect(),
    }
}

/// The naive output of one sum: `bias + sum (a - x_zp)(w - w_zp)`, to
/// `f32`, times the multiplier, rounded half to even, plus the zero point,
/// saturated.
fn reference<Y: Quantized>(acc: i64, m: f32, y_zp: i32) -> Y {
    let v = ((acc as i32) as f32 * m).round_ties_even() as i64 + y_zp as i64;
    Y::from_i32(v.clamp(Y::MIN as i64, Y::MAX as i64) as i32)
}

/// The kernel's constants: packed weights and folded biases for inputs
/// read with zero point `x_zp` (unsigned).
fn packed(l: &Layer, k: usize, n: usize, x_zp: i32) -> (Vec<i8>, Vec<i32>) {
    let mut p = vec![0i8; qpanels_len(k, n)];
    let mut folded = Vec::new();
    for o in 0..n {
        let mut sum = 0;
        for i in 0..k {
            p[qpanel_index(k, o, i)] = l.w[o * k + i];
            sum += l.w[o * k + i] as i32;
        }
        folded.push(folded_bias(l.bias[o], sum, k, x_zp, l.zp[o]));
    }
    (p, folded)
}

fn unsigned<X: Quantized>(v: X) -> i32 {
    v.to_i32() - X::MIN
}

/// Runs `run` on every instruction set; checks the result each time and
/// that VNNI ran where the CPU has it, the portable path elsewhere.
fn on_each_path(what: &str, mut run: impl FnMut()) {
    for_each_isa(|i| {
        let (vnni_before, portable_before) = (isa::calls(Isa::Avx512), isa::calls(Isa::Portable));
        run();
        if isa::vnni() {
            assert!(
                isa::calls(Isa::Avx512) > vnni_before,
                "{what}: VNNI did not run on {i:?}"
            );
        } else {
            assert!(
                isa::calls(Isa::Portable) > portable_before,
                "{what}: the portable path did not run on {i:?}"
            );
        }
    });
    if !isa::vnni() {
        eprintln!("{what}: this CPU has no AVX-512 VNNI; the portable path only");
    }
}

fn check_pointwise<X: Quantized, Y: Quantized>(seed: u64) {
    let mut r = Rng::new(seed);
    let (pixels, k, n) = (1 + r.below(30), 1 + r.below(70), 1 + r.below(40));
    let x: Vec<X> = (0..pixels * k)
        .map(|_| X::from_i32(X::MIN + r.below(256) as i32))
        .collect();
    let l = layer(&mut r, k, n);
    let x_zp = r.below(256) as i32; // unsigned
    let y_zp = Y::MIN + r.below(256) as i32;
    let want: Vec<Y> = (0..pixels * n)
        .map(|j| {
            let (p, o) = (j / n, j % n);
            let acc: i64 = l.bias[o] as i64
                + (0..k)
                    .map(|i| (unsigned(x[p * k + i]) - x_zp) as i64 * (l.w[o * k + i] as i64 - l.zp[o] as i64))
                    .sum::<i64>();
            reference(acc, l.mult[o], y_zp)
        })
        .collect();
    let (p, folded) = packed(&l, k, n, x_zp);
    let w = QWeights {
        values: &p,
        zero_point: &l.zp,
        bias: &folded,
        multiplier: &l.mult,
    };
    let shape = PointwiseShape {
        pixels,
        in_c: k,
        out_c: n,
    };
    let what = format!("qpointwise seed {seed} {pixels}x{k}x{n}");
    on_each_path(&what, || {
        let mut y = vec![Y::from_i32(Y::MIN); pixels * n];
        qpointwise(&shape, &x, w, QZeroPoints { x: x_zp, y: y_zp }, &mut y);
        assert_eq!(y, want, "{what}");
    });
}

fn check_conv2d<X: Quantized, Y: Quantized>(seed: u64) {
    let mut r = Rng::new(seed);
    let (kh, kw) = (1 + r.below(5), 1 + r.below(3));
    let (ih, iw, ic, n) = (kh + r.below(9), kw + r.below(9), 1 + r.below(9), 1 + r.below(40));
    let (sh, sw) = (1 + r.below(2), 1 + r.below(2));
    let (pt, pl) = (r.below(kh), r.below(kw));
    let (pb, pr) = (r.below(kh), r.below(kw));
    let (oh, ow) = ((ih + pt + pb - kh) / sh + 1, (iw + pl + pr - kw) / sw + 1);
    let s = ConvShape {
        in_h: ih,
        in_w: iw,
        in_c: ic,
        out_h: oh,
        out_w: ow,
        out_c: n,
        kernel_h: kh,
        kernel_w: kw,
        stride_h: sh,
        stride_w: sw,
        pad_top: pt,
        pad_left: pl,
    };
    let k = kh * kw * ic;
    let x: Vec<X> = (0..ih * iw * ic)
        .map(|_| X::from_i32(X::MIN + r.below(256) as i32))
        .collect();
    let l = layer(&mut r, k, n);
    let x_zp = r.below(256) as i32;
    let y_zp = Y::MIN + r.below(256) as i32;
    let mut want = Vec::new();
    for oy in 0..oh {
        for ox in 0..ow {
            for o in 0..n {
                let mut acc = l.bias[o] as i64;
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy * sh + ky) as isize - pt as isize;
                        let ix = (ox * sw + kx) as isize - pl as isize;
                        if iy < 0 || ix < 0 || iy >= ih as isize || ix >= iw as isize {
                            continue; // the zero point: contributes nothing
                        }
                        for c in 0..ic {
                            let v = unsigned(x[(iy as usize * iw + ix as usize) * ic + c]) - x_zp;
                            let wi = (ky * kw + kx) * ic + c;
                            acc += v as i64 * (l.w[o * k + wi] as i64 - l.zp[o] as i64);
                        }
                    }
                }
                want.push(reference::<Y>(acc, l.mult[o], y_zp));
            }
        }
    }
    let (p, folded) = packed(&l, k, n, x_zp);
    let w = QWeights {
        values: &p,
        zero_point: &l.zp,
        bias: &folded,
        multiplier: &l.mult,
    };
    let what = format!("qconv2d seed {seed} {s:?}");
    on_each_path(&what, || {
        let mut y = vec![Y::from_i32(Y::MIN); oh * ow * n];
        qconv2d(&s, &x, w, QZeroPoints { x: x_zp, y: y_zp }, &mut y);
        assert_eq!(y, want, "{what}");
    });
}

#[test]
fn qpointwise_matches_the_integer_reference_on_every_path() {
    for seed in 0..12 {
        check_pointwise::<u8, u8>(seed);
        check_pointwise::<i8, u8>(seed + 100);
        check_pointwise::<u8, i8>(seed + 200);
        check_pointwise::<i8, i8>(seed + 300);
    }
}

#[test]
fn qconv2d_matches_the_integer_reference_on_every_path() {
    for seed in 0..12 {
        check_conv2d::<u8, u8>(seed);
        check_conv2d::<i8, i8>(seed + 100);
        check_conv2d::<u8, i8>(seed + 200);
    }
}
