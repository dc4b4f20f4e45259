//! The integer GEMM kernels (`qpointwise`, `qconv2d`) and the integer
//! depthwise convolution (`qdepthwise`) against a naive reference in exact
//! integers, bit for bit, on every instruction set of this CPU: AVX-512
//! VNNI where it has it, the portable path always, for the depthwise
//! kernel also AVX2 and AVX-512 (the call counts prove which ran).

use crate::common::{for_each_isa, Rng};
use mncc_runtime::abi::pack::{qpanel_index, qpanels_len};
use mncc_runtime::abi::quant::{folded_bias, requantize, QZeroPoints};
use mncc_runtime::abi::Quantized;
use mncc_runtime::isa::{self, Isa};
use mncc_runtime::quant::{qconv2d, qdepthwise, qpointwise, QWeights};
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

/// A random depthwise layer: `(kernel, stride, channels)` drawn from the
/// sizes MobileNets use and a few others (the generic kernel path, channel
/// counts around the vector widths), small odd spatial sizes, pads of every
/// kind (asymmetric, none, all-padding windows).
fn depthwise_shape(r: &mut Rng) -> ConvShape {
    const KERNELS: [(usize, usize); 8] = [(3, 3), (5, 5), (3, 3), (5, 5), (3, 3), (1, 1), (2, 3), (7, 4)];
    const CHANNELS: [usize; 13] = [1, 7, 8, 9, 15, 16, 17, 24, 40, 64, 96, 145, 33];
    let (kh, kw) = KERNELS[r.below(KERNELS.len())];
    let c = CHANNELS[r.below(CHANNELS.len())];
    let big = r.below(4) == 0;
    let (ih, iw) = if big {
        (8 + r.below(17), 8 + r.below(17))
    } else {
        (1 + r.below(9), 1 + r.below(9))
    };
    let (sh, sw) = (1 + r.below(2), 1 + r.below(2));
    let (pt, pl) = (r.below(kh), r.below(kw));
    // Enough padding below and right for one output (`pb`, `pr` < kernel).
    let pb = r.below(kh).max(kh.saturating_sub(ih + pt));
    let pr = r.below(kw).max(kw.saturating_sub(iw + pl));
    ConvShape {
        in_h: ih,
        in_w: iw,
        in_c: c,
        out_h: (ih + pt + pb - kh) / sh + 1,
        out_w: (iw + pl + pr - kw) / sw + 1,
        out_c: c,
        kernel_h: kh,
        kernel_w: kw,
        stride_h: sh,
        stride_w: sw,
        pad_top: pt,
        pad_left: pl,
    }
}

/// A requantization multiplier: mostly a real layer's (a few thousandths:
/// some outputs saturate, most do not), else one that saturates nearly
/// everything, one that rounds nearly everything to the zero point, or
/// (rarely) 0, infinity or NaN.
fn multiplier(r: &mut Rng) -> f32 {
    match r.below(40) {
        0 => 0.0,
        1 => f32::INFINITY,
        2 => f32::NAN,
        3..=8 => 0.05 + r.below(1000) as f32 / 100.0,
        9..=12 => 1e-6 * (1 + r.below(100)) as f32,
        _ => 1.0 / (100.0 + r.below(4000) as f32),
    }
}

fn check_depthwise<X: Quantized, Y: Quantized>(seed: u64) {
    let mut r = Rng::new(seed);
    let s = depthwise_shape(&mut r);
    let c = s.in_c;
    let (kh, kw) = (s.kernel_h, s.kernel_w);
    let x: Vec<X> = (0..s.in_h * s.in_w * c)
        .map(|_| X::from_i32(X::MIN + r.below(256) as i32))
        .collect();
    let wv: Vec<i8> = (0..kh * kw * c).map(|_| r.next_u64() as i8).collect();
    let wzp: Vec<i32> = (0..c)
        .map(|_| if r.below(3) == 0 { 0 } else { r.below(256) as i32 - 128 })
        .collect();
    let bias: Vec<i32> = (0..c).map(|_| r.below(40001) as i32 - 20000).collect();
    let mult: Vec<f32> = (0..c).map(|_| multiplier(&mut r)).collect();
    let x_zp = X::MIN + r.below(256) as i32;
    let y_zp = Y::MIN + r.below(256) as i32;
    let mut want = Vec::new();
    for oy in 0..s.out_h {
        for ox in 0..s.out_w {
            for ch in 0..c {
                let mut acc = bias[ch] as i64;
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy * s.stride_h + ky) as i64 - s.pad_top as i64;
                        let ix = (ox * s.stride_w + kx) as i64 - s.pad_left as i64;
                        if iy < 0 || ix < 0 || iy >= s.in_h as i64 || ix >= s.in_w as i64 {
                            continue; // the zero point: contributes nothing
                        }
                        let v = x[(iy as usize * s.in_w + ix as usize) * c + ch].to_i32() as i64 - x_zp as i64;
                        acc += v * (wv[(ky * kw + kx) * c + ch] as i64 - wzp[ch] as i64);
                    }
                }
                let acc = i32::try_from(acc).expect("the sum fits i32");
                want.push(Y::from_i32(requantize(acc, mult[ch], y_zp, Y::MIN, Y::MAX)));
            }
        }
    }
    let w = QWeights {
        values: &wv,
        zero_point: &wzp,
        bias: &bias,
        multiplier: &mult,
    };
    let zp = QZeroPoints { x: x_zp, y: y_zp };
    let what = format!(
        "qdepthwise<{}, {}> seed {seed} {s:?}",
        std::any::type_name::<X>(),
        std::any::type_name::<Y>()
    );
    for_each_isa(|i| {
        // The vector paths take 8 channels or more; fewer run portable.
        let path = if matches!(i, Isa::Avx2 | Isa::Avx512) && c >= 8 {
            i
        } else {
            Isa::Portable
        };
        let before = isa::calls(path);
        let mut y = vec![Y::from_i32(Y::MIN); s.out_h * s.out_w * c];
        qdepthwise(&s, &x, w, zp, &mut y);
        assert_eq!(y, want, "{what} on {i:?}");
        assert_eq!(isa::calls(path), before + 1, "{what}: {path:?} did not run on {i:?}");
    });
}

#[test]
fn qdepthwise_matches_the_integer_reference_on_every_path() {
    for seed in 0..60 {
        check_depthwise::<u8, u8>(seed);
        check_depthwise::<i8, u8>(seed + 1000);
        check_depthwise::<u8, i8>(seed + 2000);
        check_depthwise::<i8, i8>(seed + 3000);
    }
}

/// MobileNet v2's depthwise shapes (and a 5x5 one), each on every path.
#[test]
fn qdepthwise_on_mobilenet_shapes_matches_every_path() {
    let shapes = [
        (28, 28, 144, 3, 1),
        (28, 28, 144, 3, 2),
        (14, 14, 96, 5, 1),
        (7, 7, 960, 3, 1),
        (15, 15, 40, 5, 2),
    ];
    for (n, &(h, wd, c, k, st)) in shapes.iter().enumerate() {
        let mut r = Rng::new(77 + n as u64);
        let s = ConvShape {
            in_h: h,
            in_w: wd,
            in_c: c,
            out_h: (h + k - 1 - k) / st + 1,
            out_w: (wd + k - 1 - k) / st + 1,
            out_c: c,
            kernel_h: k,
            kernel_w: k,
            stride_h: st,
            stride_w: st,
            pad_top: k / 2,
            pad_left: k / 2,
        };
        let x: Vec<u8> = r.bytes(h * wd * c);
        let wv: Vec<i8> = r.bytes(k * k * c).into_iter().map(|b| b as i8).collect();
        let wzp = vec![0; c];
        let bias: Vec<i32> = (0..c).map(|_| r.below(2001) as i32 - 1000).collect();
        let mult: Vec<f32> = (0..c).map(|_| 1.0 / (500.0 + r.below(3000) as f32)).collect();
        let w = QWeights {
            values: &wv,
            zero_point: &wzp,
            bias: &bias,
            multiplier: &mult,
        };
        let zp = QZeroPoints { x: 3, y: 121 };
        let mut outs = Vec::new();
        for_each_isa(|_| {
            let mut y = vec![0u8; s.out_h * s.out_w * c];
            qdepthwise(&s, &x, w, zp, &mut y);
            outs.push(y);
        });
        isa::set_limit(Some(Isa::Portable));
        let mut want = vec![0u8; s.out_h * s.out_w * c];
        qdepthwise(&s, &x, w, zp, &mut want);
        isa::set_limit(None);
        for y in &outs {
            assert_eq!(y, &want, "{s:?}");
        }
    }
}
