//! Layers on a tensor quantized at run time (onnxruntime's
//! `quantize_dynamic`): [`quantize`] writes `uint8` values with the scale
//! and zero point of the tensor's own range
//! ([`dyn_params`](crate::abi::quant::dyn_params)) after them; the layers
//! ([`pointwise`] and dense, [`conv2d`], [`depthwise`]) read both, sum
//! exactly in `i32` as the integer layers of [`crate::quant`] do, and
//! write floats ([`dyn_output`](crate::abi::quant::dyn_output): the sum
//! times `x_scale * w_scale[o]`, plus the bias, clamped).
//!
//! The weights are stored as for [`crate::quant`] (`i8`, `u8` weights less
//! 128), in the same layouts, so the integer GEMM's AVX-512 VNNI path
//! serves both; its float epilogue computes the same operations as the
//! portable path, so the results are identical.

use crate::abi::pack::qpanels_len;
use crate::abi::quant::{dyn_output, dyn_params, DYN_HEADER};
use crate::abi::{ConvShape, PointwiseShape};
use crate::checks::check_len;

/// The constants of a layer on a dynamically quantized input, each a
/// slice of the weight blob except the clamp bounds.
#[derive(Clone, Copy, Debug)]
pub struct DynWeights<'a> {
    /// The weights, `i8`: the integer GEMM's panels (pointwise, dense,
    /// conv2d) or `[kh][kw][c]` (depthwise).
    pub values: &'a [i8],
    /// The weights' zero point per output channel (in the stored `i8`
    /// terms).
    pub zero_point: &'a [i32],
    /// Per output channel, [`dyn_correction`](crate::abi::quant::dyn_correction) of its weight sum (the GEMM
    /// kernels; zeros for depthwise).
    pub correction: &'a [i32],
    /// The weight scale per output channel.
    pub scale: &'a [f32],
    /// The float bias per output channel, added after the scaling.
    pub bias: Option<&'a [f32]>,
    /// The clamp's lower bound (`-inf`: none).
    pub min: f32,
    /// The clamp's upper bound (`inf`: none).
    pub max: f32,
}

impl DynWeights<'_> {
    #[track_caller]
    fn check(&self, kernel: &str, values: usize, channels: usize) {
        check_len(kernel, "weights", self.values.len(), values);
        check_len(kernel, "zero points", self.zero_point.len(), channels);
        check_len(kernel, "corrections", self.correction.len(), channels);
        check_len(kernel, "scales", self.scale.len(), channels);
        if let Some(b) = self.bias {
            check_len(kernel, "bias", b.len(), channels);
        }
    }

    /// The weights as the integer GEMM reads them (its requantization
    /// constants unused).
    #[cfg(target_arch = "x86_64")]
    fn gemm(&self) -> crate::quant::QWeights<'_> {
        crate::quant::QWeights {
            values: self.values,
            zero_point: self.zero_point,
            bias: &[],
            multiplier: &[],
        }
    }

    /// The GEMM's float epilogue for an input of scale `x_scale` and zero
    /// point `x_zp`.
    #[cfg(target_arch = "x86_64")]
    fn float(&self, x_scale: f32, x_zp: i32) -> crate::simd::qgemm::FloatEpi<'_> {
        crate::simd::qgemm::FloatEpi {
            x_scale,
            x_zp,
            correction: self.correction,
            scale: self.scale,
            bias: self.bias,
            min: self.min,
            max: self.max,
        }
    }

    /// Output channel `o`'s value from its exact sum.
    #[inline(always)]
    fn out(&self, o: usize, acc: i32, x_scale: f32) -> f32 {
        let bias = self.bias.map_or(0.0, |b| b[o]);
        dyn_output(acc, x_scale * self.scale[o], bias, self.min, self.max)
    }
}

/// The range of `x` widened to include 0 (NaNs ignored): with AVX where
/// the CPU has it (the loop below was vectorized by the optimizer in some
/// builds and not in others: 57% of a dynamic model's time once), else in
/// 16 portable lanes. A minimum and a maximum are exact in any order.
fn range(x: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if crate::isa::active_vector() >= crate::isa::Isa::Avx2 {
        // SAFETY: the CPU has AVX2, so AVX.
        return unsafe { range_avx(x) };
    }
    let (mut lo, mut hi) = ([0f32; 16], [0f32; 16]);
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for ch in chunks {
        for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(ch) {
            *l = if v < *l { v } else { *l };
            *h = if v > *h { v } else { *h };
        }
    }
    fold_range(&lo, &hi, rest)
}

/// The lanes' range and the remaining values', with 0.
fn fold_range(lo: &[f32], hi: &[f32], rest: &[f32]) -> (f32, f32) {
    let min = |m: f32, &v: &f32| if v < m { v } else { m };
    let max = |m: f32, &v: &f32| if v > m { v } else { m };
    let lo = rest.iter().fold(lo.iter().fold(0f32, min), min);
    let hi = rest.iter().fold(hi.iter().fold(0f32, max), max);
    (lo, hi)
}

/// [`range`] with AVX: four vectors of 8 lanes each way (`vminps(v, lo)`
/// keeps `lo` when `v` is NaN, as the portable comparison does).
///
/// # Safety
/// The CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn range_avx(x: &[f32]) -> (f32, f32) {
    use core::arch::x86_64::*;
    let mut lo = [_mm256_setzero_ps(); 4];
    let mut hi = [_mm256_setzero_ps(); 4];
    let chunks = x.chunks_exact(32);
    let rest = chunks.remainder();
    for ch in chunks {
        for k in 0..4 {
            // SAFETY: 8 values at 8k of a chunk of 32.
            let v = unsafe { _mm256_loadu_ps(ch.as_ptr().add(8 * k)) };
            lo[k] = _mm256_min_ps(v, lo[k]);
            hi[k] = _mm256_max_ps(v, hi[k]);
        }
    }
    let (mut l, mut h) = ([0f32; 32], [0f32; 32]);
    for k in 0..4 {
        // SAFETY: 8 floats at 8k of 32.
        unsafe {
            _mm256_storeu_ps(l.as_mut_ptr().add(8 * k), lo[k]);
            _mm256_storeu_ps(h.as_mut_ptr().add(8 * k), hi[k]);
        }
    }
    fold_range(&l, &h, rest)
}

/// [`quantize`](crate::abi::quant::quantize) to `uint8` without branches
/// or a saturating float-to-int conversion (so that its loop vectorizes):
/// the same division, the same clamps (a NaN gives the lower bound), then
/// `v + 1.5 * 2^23`, whose rounding is half to even to an integer and
/// whose low mantissa bits are that integer (exact for the clamped values,
/// within 255 of 0).
#[inline(always)]
fn quantize_u8(v: f32, scale: f32, zp: i32) -> u8 {
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: i32 = 0x4B40_0000;
    let (lo, hi) = (-zp as f32, (255 - zp) as f32);
    let v = v / scale;
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let v = if v > lo { v } else { lo };
    let v = if v < hi { v } else { hi };
    ((v + ROUND).to_bits() as i32 - ROUND_BITS + zp) as u8
}

/// Writes the scale and zero point after the values.
fn write_header(y: &mut [u8], scale: f32, zp: i32) {
    let n = y.len() - DYN_HEADER;
    y[n..n + 4].copy_from_slice(&scale.to_le_bytes());
    y[n + 4..].copy_from_slice(&zp.to_le_bytes());
}

/// The values of a dynamically quantized tensor and its scale and zero
/// point.
#[track_caller]
fn read_header<'a>(kernel: &str, x: &'a [u8], len: usize) -> (&'a [u8], f32, i32) {
    check_len(kernel, "x", x.len(), len + DYN_HEADER);
    let (v, h) = x.split_at(len);
    let scale = f32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let zp = i32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    (v, scale, zp)
}

/// ONNX DynamicQuantizeLinear of `x` into `y` (`x.len()` values, then the
/// scale and zero point: [`DYN_HEADER`] bytes).
///
/// # Panics
/// If `y` is not `x.len() + DYN_HEADER` long.
#[inline(never)]
pub fn quantize(x: &[f32], y: &mut [u8]) {
    check_len("dynq::quantize", "y", y.len(), x.len() + DYN_HEADER);
    let (lo, hi) = range(x);
    let (scale, zp) = dyn_params(lo, hi);
    for (o, &v) in y.iter_mut().zip(x) {
        *o = quantize_u8(v, scale, zp);
    }
    write_header(y, scale, zp);
}

/// [`quantize`] of the NCHW model input (`c` planes of `pixels`), written
/// NHWC.
///
/// # Panics
/// If a slice length does not match.
#[inline(never)]
pub fn quantize_nchw(pixels: usize, c: usize, x: &[f32], y: &mut [u8]) {
    check_len("dynq::quantize_nchw", "x", x.len(), pixels * c);
    check_len("dynq::quantize_nchw", "y", y.len(), pixels * c + DYN_HEADER);
    let (lo, hi) = range(x);
    let (scale, zp) = dyn_params(lo, hi);
    for (ch, plane) in x.chunks_exact(pixels.max(1)).enumerate() {
        for (p, &v) in plane.iter().enumerate() {
            y[p * c + ch] = quantize_u8(v, scale, zp);
        }
    }
    write_header(y, scale, zp);
}

/// A pointwise (1x1) convolution or a dense layer (one pixel) on a
/// dynamically quantized input: the integer GEMM of [`crate::quant`]
/// with the float output. Weights in the integer GEMM's panels.
///
/// # Panics
/// If a slice length does not match the shape.
#[inline(never)]
pub fn pointwise(shape: &PointwiseShape, x: &[u8], w: &DynWeights<'_>, y: &mut [f32]) {
    const K: &str = "dynq::pointwise";
    let (ic, oc) = (shape.in_c, shape.out_c);
    let (x, scale, zp) = read_header(K, x, shape.pixels * ic);
    check_len(K, "y", y.len(), shape.pixels * oc);
    w.check(K, qpanels_len(ic, oc), oc);
    if oc == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::isa::vnni() && ic > 0 {
        crate::isa::count(crate::isa::Isa::Avx512);
        crate::simd::qgemm::pointwise_dyn(shape, x, w.gemm(), &w.float(scale, zp), y);
        return;
    }
    crate::isa::count(crate::isa::Isa::Portable);
    for (xrow, yrow) in x.chunks_exact(ic.max(1)).zip(y.chunks_exact_mut(oc)) {
        gemm_row(ic, |i| xrow[i] as i32, w, scale, zp, yrow);
    }
}

/// One output row of the GEMM, portable: `k` inputs `a(i)` (unsigned
/// bytes), the run-time bias `-zp * correction[o]`.
#[inline(always)]
fn gemm_row(k: usize, a: impl Fn(usize) -> i32, w: &DynWeights<'_>, scale: f32, zp: i32, out: &mut [f32]) {
    let bias = |o: usize| 0i32.wrapping_sub(zp.wrapping_mul(w.correction[o]));
    crate::quant::gemm_sums(k, a, w.values, w.zero_point, bias, |o, acc| {
        out[o] = w.out(o, acc, scale)
    });
}

/// A convolution (groups 1, any window) on a dynamically quantized
/// input: the GEMM over im2col rows (`(ky * kw + kx) * in_c + ci`), reads
/// outside the input seeing the zero point.
///
/// # Panics
/// If a slice length does not match the shape.
#[inline(never)]
pub fn conv2d(shape: &ConvShape, x: &[u8], w: &DynWeights<'_>, y: &mut [f32]) {
    const K: &str = "dynq::conv2d";
    let s = shape;
    let (ic, oc) = (s.in_c, s.out_c);
    let (x, scale, zp) = read_header(K, x, s.in_h * s.in_w * ic);
    check_len(K, "y", y.len(), s.out_h * s.out_w * oc);
    let k = s.kernel_h * s.kernel_w * ic;
    w.check(K, qpanels_len(k, oc), oc);
    if oc == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::isa::vnni() && k > 0 && k <= crate::simd::qgemm::CONV_MAX_K {
        crate::isa::count(crate::isa::Isa::Avx512);
        crate::simd::qgemm::conv2d_dyn(shape, x, w.gemm(), &w.float(scale, zp), y);
        return;
    }
    crate::isa::count(crate::isa::Isa::Portable);
    for oy in 0..s.out_h {
        for ox in 0..s.out_w {
            let a = |r: usize| {
                let (tap, ci) = (r / ic, r % ic);
                match s.input_at(oy, ox, tap / s.kernel_w, tap % s.kernel_w) {
                    Some(px) => x[px * ic + ci] as i32,
                    None => zp,
                }
            };
            let yrow = &mut y[(oy * s.out_w + ox) * oc..][..oc];
            gemm_row(k, a, w, scale, zp, yrow);
        }
    }
}

/// A depthwise convolution (groups = channels) on a dynamically quantized
/// input, any kernel, stride and padding. Weights `[kh][kw][c]`.
///
/// # Panics
/// If a slice length does not match the shape, or `in_c != out_c`.
#[inline(never)]
pub fn depthwise(shape: &ConvShape, x: &[u8], w: &DynWeights<'_>, y: &mut [f32]) {
    const K: &str = "dynq::depthwise";
    let s = shape;
    let c = s.in_c;
    assert!(s.out_c == c, "{K}: in_c {c} != out_c {}", s.out_c);
    let (x, scale, zp) = read_header(K, x, s.in_h * s.in_w * c);
    check_len(K, "y", y.len(), s.out_h * s.out_w * c);
    w.check(K, s.kernel_h * s.kernel_w * c, c);
    if c >= 8 && s.stride_h >= 1 && s.stride_w >= 1 {
        use crate::simd::qdepthwise as dw;
        // The integer depthwise body with the float epilogue: the bias
        // slot holds the corrections (zeros), the multiplier slot the
        // weight scales (read, unused).
        let q = crate::quant::QWeights {
            values: w.values,
            zero_point: w.zero_point,
            bias: w.correction,
            multiplier: w.scale,
        };
        let zps = crate::abi::quant::QZeroPoints { x: zp, y: 0 };
        let f = dw::DynOut {
            x_scale: scale,
            scale: w.scale,
            bias: w.bias,
            min: w.min,
            max: w.max,
        };
        #[cfg(target_arch = "x86_64")]
        {
            use crate::isa::Isa;
            match crate::isa::active_vector() {
                Isa::Avx512 => {
                    crate::isa::count(Isa::Avx512);
                    // SAFETY: the CPU has AVX-512F; lengths checked above;
                    // in_c == out_c >= 8 (16 for the 16-lane body).
                    unsafe {
                        if c >= 16 {
                            dw::dyn_avx512(s, x, q, zps, &f, y)
                        } else {
                            dw::dyn_avx2(s, x, q, zps, &f, y)
                        }
                    }
                    return;
                }
                Isa::Avx2 => {
                    crate::isa::count(Isa::Avx2);
                    // SAFETY: the CPU has AVX2; lengths checked above; in_c >= 8.
                    unsafe { dw::dyn_avx2(s, x, q, zps, &f, y) };
                    return;
                }
                _ => {}
            }
        }
        if c >= 16 {
            crate::isa::count(crate::isa::Isa::Portable);
            // SAFETY: lengths checked above; in_c == out_c >= 16.
            unsafe { dw::dyn_portable(s, x, q, zps, &f, y) };
            return;
        }
    }
    crate::isa::count(crate::isa::Isa::Portable);
    const BLOCK: usize = 64;
    let mut acc = [0i32; BLOCK];
    for oy in 0..s.out_h {
        for ox in 0..s.out_w {
            let yrow = &mut y[(oy * s.out_w + ox) * c..][..c];
            for c0 in (0..c).step_by(BLOCK) {
                let n = BLOCK.min(c - c0);
                let acc = &mut acc[..n];
                acc.fill(0);
                for ky in 0..s.kernel_h {
                    for kx in 0..s.kernel_w {
                        let Some(px) = s.input_at(oy, ox, ky, kx) else {
                            continue;
                        };
                        let xs = &x[px * c + c0..][..n];
                        let ws = &w.values[(ky * s.kernel_w + kx) * c + c0..][..n];
                        let wz = &w.zero_point[c0..c0 + n];
                        for (((a, &xv), &wv), &z) in acc.iter_mut().zip(xs).zip(ws).zip(wz) {
                            *a += (xv as i32 - zp) * (wv as i32 - z);
                        }
                    }
                }
                for (k, (out, &a)) in yrow[c0..c0 + n].iter_mut().zip(acc.iter()).enumerate() {
                    *out = w.out(c0 + k, a, scale);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::quant::quantize;

    /// The range, on every path, is the naive one (NaNs ignored, 0
    /// included), for lengths around the vector widths.
    #[test]
    fn range_is_the_naive_range() {
        let mut x = [0f32; 203];
        let mut s = 0x9e37_79b9u32;
        for v in x.iter_mut() {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            *v = (s % 20_001) as f32 / 1000.0 - 7.0;
        }
        x[17] = f32::NAN;
        x[100] = -9.5;
        x[150] = 12.25;
        for n in [0, 1, 7, 16, 31, 32, 33, 64, 95, 101, 151, 203] {
            let v = &x[..n];
            let want = (
                v.iter().fold(0f32, |m, &a| if a < m { a } else { m }),
                v.iter().fold(0f32, |m, &a| if a > m { a } else { m }),
            );
            assert_eq!(range(v), want, "n {n}");
            let (lo, hi) = ([0f32; 16], [0f32; 16]);
            assert_eq!(fold_range(&lo, &hi, v), want, "n {n}");
        }
    }

    /// The branchless quantization is `abi::quant::quantize` to uint8 on
    /// every kind of value: in range, rounding ties, saturating, huge,
    /// infinite, NaN, negative zero.
    #[test]
    fn quantize_u8_is_quantize() {
        let scales = [1.0f32, 0.5, 0.023_529_41, 3.7e-3, 1e-30, 7.0];
        let special = [0.0f32, -0.0, 0.5, 1.5, 2.5, -0.5, -1.5, 254.5, 255.5, 1e30, -1e30];
        let odd = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE, 1e-40];
        let mut s = 0x1234_5678u32;
        let mut values = [0f32; 40_016];
        values[..11].copy_from_slice(&special);
        values[11..16].copy_from_slice(&odd);
        for k in 0..20_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            values[16 + 2 * k] = f32::from_bits(s);
            values[17 + 2 * k] = (s % 100_000) as f32 / 100.0 - 300.0;
        }
        for &scale in &scales {
            for zp in [0, 1, 77, 128, 254, 255] {
                for &v in &values {
                    assert_eq!(
                        quantize_u8(v, scale, zp) as i32,
                        quantize(v, scale, zp, 0, 255),
                        "v {v:e} scale {scale} zp {zp}"
                    );
                }
            }
        }
    }
}
