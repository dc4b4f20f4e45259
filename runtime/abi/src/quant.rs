//! Integer (quantized) layers: their constants and the arithmetic that
//! ends each one, defined once for every kernel. The compiler computes the
//! constants; the kernels apply them. (The compiler's reference
//! interpreter has its own straightforward copy of the arithmetic: the two
//! are compared, never shared.)
//!
//! Definitions follow onnxruntime's CPU kernels on x86-64, so that results
//! match it bit for bit: see each item.

/// `v` rounded to the nearest integer, ties to even (what `cvtps2dq`
/// does in the default rounding mode; `core` has no `round_ties_even`
/// without `std`): adding and subtracting 2^23 leaves no fraction bits.
/// `|v| >= 2^23`, infinities and NaN are returned as they are.
#[inline(always)]
pub fn round_half_even(v: f32) -> f32 {
    const TWO_23: f32 = 8_388_608.0;
    if (0.0..TWO_23).contains(&v) {
        (v + TWO_23) - TWO_23
    } else if v < 0.0 && v > -TWO_23 {
        (v - TWO_23) + TWO_23
    } else {
        v
    }
}

/// ONNX QuantizeLinear of one value as onnxruntime computes it
/// (`MlasQuantizeLinear`): `x / scale` (a true `f32` division), clamped in
/// float to `[lo - zero_point, hi - zero_point]` (a NaN gives the lower
/// bound, as `maxps` does), rounded half to even, plus the zero point.
#[inline(always)]
pub fn quantize(x: f32, scale: f32, zero_point: i32, lo: i32, hi: i32) -> i32 {
    let v = x / scale;
    let (lo_f, hi_f) = ((lo - zero_point) as f32, (hi - zero_point) as f32);
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let v = if v > lo_f { v } else { lo_f };
    let v = if v < hi_f { v } else { hi_f };
    round_half_even(v) as i32 + zero_point
}

/// `cvtps2dq`: `v` rounded half to even to `i32`; out of range or NaN
/// gives `i32::MIN` (the "integer indefinite" value).
#[inline(always)]
pub fn cvtps_epi32(v: f32) -> i32 {
    let r = round_half_even(v);
    if (-2_147_483_648.0..2_147_483_648.0).contains(&r) {
        r as i32
    } else {
        i32::MIN
    }
}

/// `a * b + c` rounded once to `f32` (a fused multiply-add, as
/// `vfmadd` computes it), without `std` or an FMA instruction: the
/// product is exact in `f64`, and the `f64` sum is rounded to odd (its
/// last bit set when inexact) so that its rounding to `f32` is the one
/// rounding of the exact value.
#[inline(always)]
pub fn fma(a: f32, b: f32, c: f32) -> f32 {
    let p = a as f64 * b as f64;
    let c = c as f64;
    let s = p + c;
    // Two-sum: the exact error of `s`.
    let bb = s - p;
    let err = (p - (s - bb)) + (c - bb);
    let bits = s.to_bits();
    if err != 0.0 && s.is_finite() && bits & 1 == 0 {
        // Inexact with an even last bit: step to the odd neighbour on the
        // exact value's side.
        let away = (err > 0.0) == (s > 0.0);
        return f64::from_bits(if away { bits + 1 } else { bits - 1 }) as f32;
    }
    s as f32
}

/// The output of an integer convolution or dense layer from its exact
/// `i32` sum (bias included): `acc` to `f32` (round to nearest even),
/// times `multiplier`, rounded half to even, plus `zero_point`, saturated
/// to `[lo, hi]`. onnxruntime's `MlasRequantizeOutput` (clamping in float
/// to `[lo - zero_point, hi - zero_point]` before rounding is the same,
/// the bounds being integers).
#[inline(always)]
pub fn requantize(acc: i32, multiplier: f32, zero_point: i32, lo: i32, hi: i32) -> i32 {
    let v = round_half_even(acc as f32 * multiplier);
    let lo_f = (lo - zero_point) as f32;
    let hi_f = (hi - zero_point) as f32;
    let v = if v < lo_f {
        lo_f
    } else if v > hi_f {
        hi_f
    } else {
        v
    };
    v as i32 + zero_point
}

/// The constant part of an integer GEMM's sum (`qpointwise`, `qconv2d`,
/// a dense layer), folded at compile time: the sum of `k` products
/// `(x - x_zp) * (w - w_zp)` is `sum x * w - w_zp * sum x + c` with
/// `c = bias - x_zp * sum w + k * x_zp * w_zp` (`wsum`: the output
/// channel's `sum w`). Wrapping arithmetic: the true sum fits `i32` (the
/// compiler checks it), so the kernels' wrapping sums give it exactly.
pub const fn folded_bias(bias: i32, wsum: i32, k: usize, x_zp: i32, w_zp: i32) -> i32 {
    bias.wrapping_sub(x_zp.wrapping_mul(wsum))
        .wrapping_add((k as i32).wrapping_mul(x_zp).wrapping_mul(w_zp))
}

/// Bytes after the values of a tensor quantized at run time: its scale
/// (`f32`) and zero point (`i32`), little-endian.
pub const DYN_HEADER: usize = 8;

/// ONNX DynamicQuantizeLinear's parameters for values in `[min, max]`
/// (the range of the tensor, `min <= 0 <= max`), as onnxruntime computes
/// them (`GetQuantizationParameter`, uint8): `scale = (max - min) / 255`,
/// 1 when `max == min`; `zero_point = round_half_even(clamp(0 - min /
/// scale, 0, 255))`, in `f32`. The values are then quantized with
/// [`quantize`].
#[inline(always)]
pub fn dyn_params(min: f32, max: f32) -> (f32, i32) {
    let scale = if max == min { 1.0 } else { (max - min) / 255.0 };
    let z = 0.0 - min / scale;
    // std::max(0, std::min(255, z)): a NaN `z` gives 0.
    let z = if z < 255.0 { z } else { 255.0 };
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let z = if !(z > 0.0) { 0.0 } else { z };
    (scale, round_half_even(z) as i32)
}

/// The part of a dynamically quantized layer's folded bias
/// ([`folded_bias`], with no integer bias) that does not depend on the
/// input: `wsum - k * w_zp`; at run time the bias is `-x_zp * correction`.
pub const fn dyn_correction(wsum: i32, k: usize, w_zp: i32) -> i32 {
    wsum.wrapping_sub((k as i32).wrapping_mul(w_zp))
}

/// The float output of a dynamically quantized layer from its exact sum,
/// as onnxruntime's graph computes it, one rounding per node: Cast
/// (`acc as f32`), Mul by `multiplier` (the Mul of the input and weight
/// scales, `x_scale * w_scale`), Add of the bias, Clip.
#[inline(always)]
pub fn dyn_output(acc: i32, multiplier: f32, bias: f32, min: f32, max: f32) -> f32 {
    let v = acc as f32 * multiplier + bias;
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let v = if v < min { min } else { v };
    if v > max {
        max
    } else {
        v
    }
}

/// The constants of an integer convolution, depthwise or dense layer
/// besides its weights: the zero points of its input and output. (The
/// weights' zero points, the biases and the multipliers are per output
/// channel, in the weight blob.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QZeroPoints {
    /// The input's zero point (what reads outside the input see).
    pub x: i32,
    /// The output's zero point.
    pub y: i32,
}

/// onnxruntime's QLinearAdd (com.microsoft) of two quantized tensors `a`
/// and `b` into `c`'s type, as its x86-64 AVX2 kernel computes it
/// (`MlasQLinearAddKernelAvx2Helper`, compiled by GCC with `-mfma`, which
/// contracts some products and sums into fused multiply-adds; established
/// against onnxruntime 1.32 on parameter sets where the variants
/// disagree): with `ra = a_scale / c_scale`, `rb = b_scale / c_scale`
/// and `fixed = c_zero_point - fma(ra, a_zero_point, rb * b_zero_point)`,
/// `c = saturate(cvtps(fma(a, ra, fma(b, rb, fixed))))`: the zero point is
/// added before rounding, there is no float clamp, and a value out of
/// `i32`'s range becomes `i32::MIN` before saturating. A scalar `b` gives
/// the same. (A scalar `a` swaps the roles of `a` and `b`: the compiler
/// puts the constant second.)
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QAdd {
    /// `a_scale / c_scale`.
    pub ra: f32,
    /// `b_scale / c_scale`.
    pub rb: f32,
    /// `c_zero_point - fma(ra, a_zero_point, rb * b_zero_point)`.
    pub fixed: f32,
}

impl QAdd {
    /// `a` plus `b` in the output's type `[lo, hi]`.
    #[inline(always)]
    pub fn apply(&self, a: i32, b: i32, lo: i32, hi: i32) -> i32 {
        cvtps_epi32(fma(a as f32, self.ra, fma(b as f32, self.rb, self.fixed))).clamp(lo, hi)
    }

    /// The constants from the three types' scales and zero points.
    pub fn new(a: (f32, i32), b: (f32, i32), c: (f32, i32)) -> QAdd {
        let ra = a.0 / c.0;
        let rb = b.0 / c.0;
        QAdd {
            ra,
            rb,
            fixed: c.1 as f32 - fma(ra, a.1 as f32, rb * b.1 as f32),
        }
    }
}

/// onnxruntime's QLinearGlobalAveragePool (com.microsoft) over `pixels`
/// values per channel: the exact `i32` sum of `x - x_zero_point`, then
/// [`requantize`] with `multiplier = x_scale / (y_scale * pixels)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QAvgPool {
    /// Pixels per channel.
    pub pixels: usize,
    /// Channels.
    pub c: usize,
    /// The input's zero point.
    pub x_zero_point: i32,
    /// `x_scale / (y_scale * pixels)`.
    pub multiplier: f32,
    /// The output's zero point.
    pub y_zero_point: i32,
}

impl QAvgPool {
    /// The multiplier of `pixels` values from `x_scale` to `y_scale`.
    pub fn multiplier(x_scale: f32, y_scale: f32, pixels: usize) -> f32 {
        x_scale / (y_scale * pixels as f32)
    }
}

/// onnxruntime's QLinearMul (com.microsoft) of two quantized tensors `a`
/// and `b` into `c`'s type, as its x86-64 kernel computes it
/// (`MlasQLinearMulKernel`, SSE2: no fused multiply-add): the exact `i32`
/// product `p = (a - a_zero_point) * (b - b_zero_point)`, then
/// `cvtps(p as f32 * ratio + c_zero_point as f32)` (a product and a sum,
/// each rounded to `f32`) with `ratio = a_scale * b_scale / c_scale`
/// (left to right, in `f32`), saturated to `c`'s type (a value out of
/// `i32`'s range becomes `i32::MIN`, then the type's minimum). A scalar
/// `b` gives the same. Checked against onnxruntime 1.32 on 160,000 random
/// values of both types, same shapes and per-channel broadcast.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QMul {
    /// `a_scale * b_scale / c_scale`.
    pub ratio: f32,
    /// `a`'s zero point.
    pub a_zero_point: i32,
    /// `b`'s zero point.
    pub b_zero_point: i32,
    /// `c`'s zero point.
    pub c_zero_point: i32,
}

impl QMul {
    /// `a` times `b` in the output's type `[lo, hi]`.
    #[inline(always)]
    pub fn apply(&self, a: i32, b: i32, lo: i32, hi: i32) -> i32 {
        let p = (a - self.a_zero_point) * (b - self.b_zero_point);
        cvtps_epi32(p as f32 * self.ratio + self.c_zero_point as f32).clamp(lo, hi)
    }

    /// The constants from the three types' scales and zero points.
    pub fn new(a: (f32, i32), b: (f32, i32), c: (f32, i32)) -> QMul {
        QMul {
            ratio: a.0 * b.0 / c.0,
            a_zero_point: a.1,
            b_zero_point: b.1,
            c_zero_point: c.1,
        }
    }
}

/// `v` rounded to the nearest integer, ties to even, in `f64` (as
/// [`round_half_even`]; `|v| >= 2^52`, infinities and NaN as they are).
#[inline(always)]
pub fn round_half_even_f64(v: f64) -> f64 {
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    if (0.0..TWO_52).contains(&v) {
        (v + TWO_52) - TWO_52
    } else if v < 0.0 && v > -TWO_52 {
        (v - TWO_52) + TWO_52
    } else {
        v
    }
}

/// onnxruntime's QLinearSoftmax (com.microsoft) over a row of `d` values,
/// as its CPU kernel computes it in onnxruntime 1.32 (established against
/// it on random rows of both types where the variants disagree): a table
/// `exp[i]`, `i` in `0..256`, built at compile time from the input scale
/// and `d` (see the compiler's `softmax_table`: `f32` values of
/// `exp((i - 255 + shift) * x_scale)`, `shift` keeping the sum finite);
/// per row, `m` the row's largest value and each `e = exp[255 + x - m]`;
/// `sum` the `f32` sum of the `e` in order; each output
/// `round_half_even(e * y_factor / sum)` computed in `f64`, plus the
/// output zero point, saturated to the type. `y_factor = floor(1 /
/// y_scale)` in `f32`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QSoftmax {
    /// Values per row (the softmax's axis).
    pub d: usize,
    /// `floor(1 / y_scale)`.
    pub y_factor: f32,
    /// The output's zero point.
    pub y_zero_point: i32,
}

impl QSoftmax {
    /// The output of one value from its table entry `e` and its row's
    /// `sum`, in `[lo, hi]`.
    #[inline(always)]
    pub fn output(&self, e: f32, sum: f32, lo: i32, hi: i32) -> i32 {
        let v = round_half_even_f64(e as f64 * self.y_factor as f64 / sum as f64);
        // NaN (a zero sum) and values beyond the type saturate high.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        let v = if v >= (lo - self.y_zero_point) as f64 {
            v
        } else {
            (hi - self.y_zero_point) as f64
        };
        let v = if v <= (hi - self.y_zero_point) as f64 {
            v
        } else {
            (hi - self.y_zero_point) as f64
        };
        v as i32 + self.y_zero_point
    }
}

/// A mean over the pixels of a quantized tensor computed in float, as
/// onnxruntime computes a `DequantizeLinear -> ReduceMean -> QuantizeLinear`
/// group (which it does not fuse) once its layout pass has put the tensor
/// in NHWC, and its QLinearAveragePool (`qlinear_pool.cc`) over the whole
/// image: each value dequantized (`(x - x_zero_point) as f32 * x_scale`),
/// summed per channel in pixel order in `f32`, divided by the pixel count
/// (`f32`), then quantized: [`quantize`] (QuantizeLinear), or for
/// QLinearAveragePool (`pool`) `round_half_even(mean / y_scale +
/// y_zero_point)` saturated (the zero point added in float before
/// rounding).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QMean {
    /// Pixels per channel.
    pub pixels: usize,
    /// Channels.
    pub c: usize,
    /// The input's scale.
    pub x_scale: f32,
    /// The input's zero point.
    pub x_zero_point: i32,
    /// The output's scale.
    pub y_scale: f32,
    /// The output's zero point.
    pub y_zero_point: i32,
    /// QLinearAveragePool's rounding (see above).
    pub pool: bool,
}

impl QMean {
    /// The output of a channel's `mean` in `[lo, hi]`.
    #[inline(always)]
    pub fn output(&self, mean: f32, lo: i32, hi: i32) -> i32 {
        if self.pool {
            cvtps_epi32(mean / self.y_scale + self.y_zero_point as f32).clamp(lo, hi)
        } else {
            quantize(mean, self.y_scale, self.y_zero_point, lo, hi)
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn fma_rounds_once() {
        // A case where two roundings differ from one: 1 + 2^-24 + 2^-48.
        let a = 1.0 + f32::EPSILON; // 1 + 2^-23
        let b = 1.0 + f32::EPSILON;
        let c = -1.0;
        // exact: 2^-22 + 2^-46, representable in f32 as is.
        assert_eq!(fma(a, b, c), 2f32.powi(-22) + 2f32.powi(-46));
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..1_000_000 {
            let a = (next() % 512) as f32 - 256.0;
            let b = f32::from_bits(0x3c00_0000 + (next() % 0x0200_0000) as u32);
            let c =
                f32::from_bits(0x3f00_0000 + (next() % 0x0200_0000) as u32) * if next() % 2 == 0 { 1.0 } else { -1.0 };
            let r = fma(a, b, c);
            // std's `mul_add` is the correctly rounded fused multiply-add.
            assert_eq!(r.to_bits(), a.mul_add(b, c).to_bits(), "{a} * {b} + {c}");
        }
    }

    #[test]
    fn requantize_saturates_and_rounds_half_to_even() {
        assert_eq!(requantize(5, 0.5, 0, 0, 255), 2); // 2.5 -> 2
        assert_eq!(requantize(7, 0.5, 0, 0, 255), 4); // 3.5 -> 4
        assert_eq!(requantize(-100, 1.0, 10, 0, 255), 0);
        assert_eq!(requantize(1000, 1.0, 10, 0, 255), 255);
        assert_eq!(requantize(-3, 1.0, 0, -128, 127), -3);
    }
}
