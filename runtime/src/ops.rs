//! The small kernels: pooling, softmax, elementwise add and epilogue,
//! channel scaling, the output transpose, quantization. Portable scalar
//! code (they are a sliver of a model's time). Generated code calls them
//! from the crate root.

use crate::abi::quant::quantize as quantize_one;
use crate::abi::{clamp, ConvShape};
use crate::checks::check_len;
use crate::epilogue::{activate, store_clamped};
use crate::math::exp;
use crate::Epilogue;

/// Global average pooling: `input` is `pixels * c` (NHWC), `out` is `c`.
///
/// Sums in `f32` in the order of onnxruntime's CPU kernel (MLAS's global
/// pooling: per channel, four partial sums over the pixels in groups of
/// four, `(s0 + s2) + (s1 + s3)`, then the remaining pixels one by one),
/// then divides by `pixels`: the same bits as onnxruntime, which a layer
/// that quantizes the result at run time needs.
///
/// # Panics
/// If a slice length does not match, or `pixels == 0` (with `c > 0`).
#[inline]
pub fn global_avg_pool(pixels: usize, c: usize, input: &[f32], out: &mut [f32]) {
    const K: &str = "global_avg_pool";
    check_len(K, "input", input.len(), pixels * c);
    check_len(K, "out", out.len(), c);
    if c == 0 {
        return;
    }
    assert!(pixels >= 1, "global_avg_pool: pixels must be at least 1");
    const B: usize = 64;
    let groups = pixels / 4;
    let mut lanes = [[0f32; B]; 4];
    for c0 in (0..c).step_by(B) {
        let n = B.min(c - c0);
        for lane in lanes.iter_mut() {
            lane[..n].fill(0.0);
        }
        for g in 0..groups {
            for (l, lane) in lanes.iter_mut().enumerate() {
                let px = &input[(4 * g + l) * c + c0..][..n];
                for (a, &x) in lane[..n].iter_mut().zip(px) {
                    *a += x;
                }
            }
        }
        for (k, o) in out[c0..c0 + n].iter_mut().enumerate() {
            let mut s = (lanes[0][k] + lanes[2][k]) + (lanes[1][k] + lanes[3][k]);
            for p in 4 * groups..pixels {
                s += input[p * c + c0 + k];
            }
            *o = s / pixels as f32;
        }
    }
}

/// Numerically stable softmax over `input` (subtracting its max), into `out`.
///
/// `e^x` is computed in `f32` without libm (relative error below `2e-7`);
/// the sum uses 8 partial sums. An empty input is a no-op; an input whose
/// max is infinite (all `-inf`, or some `+inf`), or that contains a NaN,
/// gives NaNs.
///
/// # Panics
/// If `out.len() != input.len()`.
#[inline]
pub fn softmax(input: &[f32], out: &mut [f32]) {
    check_len("softmax", "out", out.len(), input.len());
    if input.is_empty() {
        return;
    }
    let max = input.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    if max.is_infinite() {
        // `x - max` would be NaN or -inf everywhere: there is no meaningful
        // finite answer (all -inf, or some +inf).
        out.fill(f32::NAN);
        return;
    }
    const LANES: usize = 8;
    let mut sums = [0.0f32; LANES];
    let mut o_chunks = out.chunks_exact_mut(LANES);
    let mut x_chunks = input.chunks_exact(LANES);
    for (o, x) in (&mut o_chunks).zip(&mut x_chunks) {
        for ((o, &x), s) in o.iter_mut().zip(x).zip(&mut sums) {
            *o = exp(x - max);
            *s += *o;
        }
    }
    for ((o, &x), s) in o_chunks
        .into_remainder()
        .iter_mut()
        .zip(x_chunks.remainder())
        .zip(&mut sums)
    {
        *o = exp(x - max);
        *s += *o;
    }
    let sum = ((sums[0] + sums[4]) + (sums[1] + sums[5])) + ((sums[2] + sums[6]) + (sums[3] + sums[7]));
    for o in out.iter_mut() {
        *o /= sum;
    }
}

/// Elementwise `out = act(clamp(a + b + bias[i % c], min, max))` where `c`
/// is the bias length; the residual of `ep` must be `None` (use `b`).
///
/// # Panics
/// If `a`, `b` and `out` differ in length, `ep.residual` is `Some`, or the
/// bias is empty or its length does not divide `out.len()`.
#[inline]
pub fn add(a: &[f32], b: &[f32], ep: &Epilogue<'_>, out: &mut [f32]) {
    const K: &str = "add";
    check_len(K, "a", a.len(), out.len());
    check_len(K, "b", b.len(), out.len());
    assert!(
        ep.residual.is_none(),
        "add: the epilogue residual must be None (pass the second operand as `b`)"
    );
    let c = bias_period(K, ep.bias, out.len());
    let block = act_block(c);
    let (min, max) = (ep.min, ep.max);
    let blocks = out.chunks_mut(block).zip(a.chunks(block)).zip(b.chunks(block));
    match ep.bias {
        None => {
            for ((o, a), b) in blocks {
                for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                    *o = clamp(x + y, min, max);
                }
                activate(ep.act, o);
            }
        }
        Some(bias) => {
            for ((o, a), b) in blocks {
                let rows = o.chunks_exact_mut(c).zip(a.chunks_exact(c)).zip(b.chunks_exact(c));
                for ((o, x), y) in rows {
                    for (((o, &x), &y), &bi) in o.iter_mut().zip(x).zip(y).zip(bias) {
                        *o = clamp((x + y) + bi, min, max);
                    }
                }
                activate(ep.act, o);
            }
        }
    }
}

/// Applies an epilogue elementwise: `out[i] = act(clamp(x[i] + bias[i % c] + residual[i], min, max))`
/// where `c` is the bias length (an activation that follows no convolution).
///
/// The sums are `(x + bias) + residual`, as in the convolution epilogues.
///
/// # Panics
/// If `x`, `out` and the residual differ in length, or the bias is empty or
/// its length does not divide `x.len()`.
#[inline]
pub fn map(x: &[f32], ep: &Epilogue<'_>, out: &mut [f32]) {
    const K: &str = "map";
    check_len(K, "out", out.len(), x.len());
    if let Some(residual) = ep.residual {
        check_len(K, "ep.residual", residual.len(), x.len());
    }
    let c = bias_period(K, ep.bias, x.len());
    let block = act_block(c);
    // Rows share the bias offset 0 (`store_clamped` reads `bias[0..row]`).
    let row = if ep.bias.is_some() { c } else { block };
    let mut o0 = 0;
    while o0 < x.len() {
        let o1 = (o0 + block).min(x.len());
        let mut r0 = o0;
        while r0 < o1 {
            let r1 = (r0 + row).min(o1);
            store_clamped(ep, &x[r0..r1], 0, r0, &mut out[r0..r1]);
            r0 = r1;
        }
        activate(ep.act, &mut out[o0..o1]);
        o0 = o1;
    }
}

/// Multiplies each channel by a per-channel scale (squeeze-and-excitation):
/// `out[p * c + ch] = x[p * c + ch] * scale[ch]`; `x` and `out` are `pixels * c` (NHWC), `scale` is `c`.
///
/// # Panics
/// If `x` or `out` does not have `pixels * c` elements, or `scale` does not
/// have `c`.
#[inline]
pub fn scale_channels(pixels: usize, c: usize, x: &[f32], scale: &[f32], out: &mut [f32]) {
    const K: &str = "scale_channels";
    check_len(K, "x", x.len(), pixels * c);
    check_len(K, "scale", scale.len(), c);
    check_len(K, "out", out.len(), pixels * c);
    match c {
        0 => {}
        1 => {
            let s = scale[0];
            for (o, &v) in out.iter_mut().zip(x) {
                *o = v * s;
            }
        }
        _ => {
            for (o, x) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                for ((o, &v), &s) in o.iter_mut().zip(x).zip(scale) {
                    *o = v * s;
                }
            }
        }
    }
}

/// Max pooling of NHWC `x` (`s.in_h * s.in_w * s.in_c`) into `y`
/// (`s.out_h * s.out_w * s.out_c`, `out_c == in_c`): each output the
/// largest of its window's values inside the input (the padding is not a
/// value; the compiler guarantees each window holds at least one pixel).
/// Any element type: max commutes with a quantization's monotonic map.
///
/// # Panics
/// If a length does not match the shape, the channels differ, or a window
/// holds no input pixel.
#[inline(never)]
pub fn max_pool<T: Copy + PartialOrd>(s: &ConvShape, x: &[T], y: &mut [T]) {
    const K: &str = "max_pool";
    check_len(K, "x", x.len(), s.in_h * s.in_w * s.in_c);
    check_len(K, "y", y.len(), s.out_h * s.out_w * s.out_c);
    assert!(
        s.in_c == s.out_c,
        "{K}: {} input and {} output channels",
        s.in_c,
        s.out_c
    );
    let c = s.in_c;
    // The input rows (columns) window `o` covers.
    let span = |o: usize, stride: usize, pad: usize, k: usize, size: usize| {
        let start = (o * stride) as isize - pad as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + k as isize).max(0) as usize).min(size);
        assert!(lo < hi, "{K}: a window holds no input pixel");
        lo..hi
    };
    for oy in 0..s.out_h {
        let rows = span(oy, s.stride_h, s.pad_top, s.kernel_h, s.in_h);
        for ox in 0..s.out_w {
            let cols = span(ox, s.stride_w, s.pad_left, s.kernel_w, s.in_w);
            let out = &mut y[(oy * s.out_w + ox) * c..][..c];
            out.copy_from_slice(&x[(rows.start * s.in_w + cols.start) * c..][..c]);
            for iy in rows.clone() {
                for ix in cols.clone() {
                    for (o, &v) in out.iter_mut().zip(&x[(iy * s.in_w + ix) * c..][..c]) {
                        if v > *o {
                            *o = v;
                        }
                    }
                }
            }
        }
    }
}

/// The logistic function of each value, as onnxruntime computes it
/// ([`abi::logistic`](crate::abi::logistic)).
///
/// # Panics
/// If `x` and `out` differ in length.
#[inline(never)]
pub fn sigmoid(x: &[f32], out: &mut [f32]) {
    check_len("sigmoid", "out", out.len(), x.len());
    for (o, &v) in out.iter_mut().zip(x) {
        *o = crate::abi::logistic(v);
    }
}

/// Channels-first to channels-last: `x` is `c * pixels` (NCHW), `out[px *
/// c + ch] = x[ch * pixels + px]`. Generated code calls it once, first,
/// when an NCHW float model input is read by a layer other than a
/// convolution (which reads NCHW where it is).
///
/// # Panics
/// If `x` or `out` does not have `pixels * c` elements.
#[inline]
pub fn nchw_to_nhwc(pixels: usize, c: usize, x: &[f32], out: &mut [f32]) {
    // The same transpose with the roles of the two dims swapped.
    nhwc_to_nchw(c, pixels, x, out);
}

/// Channels-last to channels-first: `x` is `pixels * c` (NHWC), `out[ch *
/// pixels + px] = x[px * c + ch]`. Generated code calls it once, into the
/// caller's output, when the model's output is a `[1, c, h, w]` tensor
/// (NCHW, as ONNX defines it) with more than one pixel and channel.
///
/// # Panics
/// If `x` or `out` does not have `pixels * c` elements.
#[inline]
pub fn nhwc_to_nchw(pixels: usize, c: usize, x: &[f32], out: &mut [f32]) {
    const K: &str = "nhwc_to_nchw";
    check_len(K, "x", x.len(), pixels * c);
    check_len(K, "out", out.len(), pixels * c);
    if pixels == 0 || c == 0 {
        return;
    }
    // 16x16 tiles: 16 pixels' runs of 16 channels in, 16 channels' runs of
    // 16 pixels out, so reads and writes stay within 32 cache lines.
    const T: usize = 16;
    for p0 in (0..pixels).step_by(T) {
        let pb = T.min(pixels - p0);
        for c0 in (0..c).step_by(T) {
            let cb = T.min(c - c0);
            for j in 0..cb {
                let row = &mut out[(c0 + j) * pixels + p0..][..pb];
                for (p, o) in row.iter_mut().enumerate() {
                    *o = x[(p0 + p) * c + c0 + j];
                }
            }
        }
    }
}

/// The period of the bias over a flat tensor of `len` elements: the bias
/// length, which must be non-zero and divide `len`; 1 without a bias.
#[inline(always)]
#[track_caller]
fn bias_period(kernel: &str, bias: Option<&[f32]>, len: usize) -> usize {
    match bias {
        None => 1,
        Some(bias) => {
            let c = bias.len();
            assert!(
                c >= 1 && len.is_multiple_of(c),
                "{kernel}: bias length {c} must be non-zero and divide the tensor length {len}"
            );
            c
        }
    }
}

/// Elements per activation pass of the elementwise kernels ([`add`],
/// [`map`]): small enough that the block is still in cache.
const ACT_BLOCK: usize = 256;

/// The activation block of an elementwise kernel whose bias has period `c`:
/// a whole number of periods, at least one.
#[inline(always)]
fn act_block(c: usize) -> usize {
    if c >= ACT_BLOCK {
        c
    } else {
        ACT_BLOCK / c * c
    }
}

/// ONNX QuantizeLinear with one scale and zero point for the whole tensor:
/// `out[i] = saturate(round(x[i] / scale) + zero_point)`, as
/// [`abi::quant::quantize`](crate::abi::quant::quantize) defines it (the
/// division in `f32`, rounding half to even; a NaN gives `T`'s minimum).
///
/// # Panics
/// If `x` and `out` differ in length.
#[inline]
pub fn quantize<T: crate::abi::Quantized>(x: &[f32], scale: f32, zero_point: i32, out: &mut [T]) {
    check_len("quantize", "out", out.len(), x.len());
    for (o, &v) in out.iter_mut().zip(x) {
        *o = T::from_i32(quantize_one(v, scale, zero_point, T::MIN, T::MAX));
    }
}

/// [`quantize`] of an NCHW tensor of `c` channels of `pixels` values,
/// written NHWC.
///
/// # Panics
/// If a slice length does not match.
#[inline]
pub fn quantize_nchw<T: crate::abi::Quantized>(
    pixels: usize,
    c: usize,
    x: &[f32],
    scale: f32,
    zero_point: i32,
    out: &mut [T],
) {
    check_len("quantize_nchw", "x", x.len(), pixels * c);
    check_len("quantize_nchw", "out", out.len(), pixels * c);
    for (ch, plane) in x.chunks_exact(pixels.max(1)).enumerate() {
        for (p, &v) in plane.iter().enumerate() {
            out[p * c + ch] = T::from_i32(quantize_one(v, scale, zero_point, T::MIN, T::MAX));
        }
    }
}

/// ONNX DequantizeLinear with one scale and zero point for the whole
/// tensor: `out[i] = (x[i] - zero_point) as f32 * scale` (the difference
/// exact in `i32`, one rounding in the product).
///
/// # Panics
/// If `x` and `out` differ in length.
#[inline]
pub fn dequantize<T: crate::abi::Quantized>(x: &[T], scale: f32, zero_point: i32, out: &mut [f32]) {
    check_len("dequantize", "out", out.len(), x.len());
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v.to_i32() as i64 - zero_point as i64) as f32 * scale;
    }
}

/// IEEE binary16 bits to `f32` (exact: every half is an `f32`).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: man * 2^-24, normalized for f32.
            let shift = man.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | ((man << shift) & 0x3ff) << 13
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// `f32` to IEEE binary16 bits, rounded to the nearest half, ties to even
/// (as onnxruntime's and numpy's casts): beyond 65504 the rounding
/// overflows to infinity, below 2^-14 the result is subnormal, NaN stays
/// NaN.
#[inline]
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 | (man >> 13) as u16 } else { 0 };
    }
    let e = exp - 112;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let round = |m: u32, shift: u32| -> u32 {
        let (r, rem, half) = (m >> shift, m & ((1 << shift) - 1), 1 << (shift - 1));
        r + u32::from(rem > half || (rem == half && r & 1 == 1))
    };
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        // Subnormal: (man | 1.0) * 2^(e - 14) in units of 2^-24.
        return sign | round(man | 0x80_0000, (14 - e) as u32) as u16;
    }
    // A carry out of the mantissa raises the exponent, up to infinity.
    sign | round(((e as u32) << 23) | man, 13) as u16
}

/// A float16 model input to the `f32` activations: `x` is `pixels * c`
/// halves, NCHW when `nchw` (then stored channels-last), else NHWC.
/// Generated code calls it first for a model whose input is float16.
///
/// # Panics
/// If `x` or `out` does not have `pixels * c` elements.
#[inline]
pub fn from_f16(pixels: usize, c: usize, nchw: bool, x: &[u16], out: &mut [f32]) {
    const K: &str = "from_f16";
    check_len(K, "x", x.len(), pixels * c);
    check_len(K, "out", out.len(), pixels * c);
    if nchw {
        for (ch, plane) in x.chunks_exact(pixels.max(1)).enumerate().take(c) {
            for (px, &h) in plane.iter().enumerate() {
                out[px * c + ch] = f16_to_f32(h);
            }
        }
    } else {
        for (o, &h) in out.iter_mut().zip(x) {
            *o = f16_to_f32(h);
        }
    }
}

/// The `f32` activations to a float16 model output: `x` is `pixels * c`
/// (NHWC), `out` the halves, NCHW when `nchw`. Generated code calls it
/// last for a model whose output is float16.
///
/// # Panics
/// If `x` or `out` does not have `pixels * c` elements.
#[inline]
pub fn to_f16(pixels: usize, c: usize, nchw: bool, x: &[f32], out: &mut [u16]) {
    const K: &str = "to_f16";
    check_len(K, "x", x.len(), pixels * c);
    check_len(K, "out", out.len(), pixels * c);
    if nchw {
        for (px, row) in x.chunks_exact(c.max(1)).enumerate().take(pixels) {
            for (ch, &v) in row.iter().enumerate() {
                out[ch * pixels + px] = f32_to_f16(v);
            }
        }
    } else {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = f32_to_f16(v);
        }
    }
}
