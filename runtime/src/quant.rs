//! The integer (quantized) layers, portable: convolution, depthwise,
//! pointwise and dense, add, global average pooling. NHWC, batch 1, any
//! mix of `i8` and `u8` activations.
//!
//! The kernels are never inlined: generic code instantiated in the
//! generated crate with each layer's constant shape was unrolled whole by
//! the optimizer (minutes of compile time, for no speed).
//!
//! Every sum is exact in `i32` (the compiler proves it cannot overflow);
//! the arithmetic that ends a layer is [`abi::quant`](crate::abi::quant)'s,
//! so the result is the same bit for bit whatever the loop order. Weights
//! are `i8`: `u8` weights are stored less 128, their zero points too (the
//! differences `w - w_zero_point` are unchanged); see
//! [`abi::pack::qweights`](crate::abi::pack).

use crate::abi::pack::{qpanel_index, qpanels_len};
use crate::abi::quant::{requantize, QAdd, QAvgPool, QMean, QMul, QSoftmax, QZeroPoints};
use crate::abi::{ConvShape, PointwiseShape, Quantized};
use crate::checks::check_len;

/// The per-output-channel constants of an integer convolution, depthwise,
/// pointwise or dense layer, each a slice of the weight blob. The GEMM
/// kernels ([`qpointwise`], [`qconv2d`]) take their weights in the integer
/// GEMM's panels and the bias folded with the zero points
/// ([`folded_bias`](crate::abi::quant::folded_bias)); [`qdepthwise`] takes
/// `[kh][kw][c]` weights and the bias itself.
#[derive(Clone, Copy, Debug)]
pub struct QWeights<'a> {
    /// The weights, `i8`, in the layer kind's layout (see each kernel).
    pub values: &'a [i8],
    /// The weights' zero point per output channel (in the stored `i8`
    /// terms).
    pub zero_point: &'a [i32],
    /// The `i32` bias per output channel.
    pub bias: &'a [i32],
    /// The requantization multiplier per output channel.
    pub multiplier: &'a [f32],
}

impl QWeights<'_> {
    #[inline(always)]
    #[track_caller]
    fn check(&self, kernel: &str, values: usize, channels: usize) {
        check_len(kernel, "weights", self.values.len(), values);
        check_len(kernel, "zero points", self.zero_point.len(), channels);
        check_len(kernel, "bias", self.bias.len(), channels);
        check_len(kernel, "multipliers", self.multiplier.len(), channels);
    }

    #[inline(always)]
    pub(crate) fn out<Y: Quantized>(&self, o: usize, acc: i32, y_zp: i32) -> Y {
        Y::from_i32(requantize(acc, self.multiplier[o], y_zp, Y::MIN, Y::MAX))
    }
}

/// An input value as the integer GEMM reads it: an unsigned byte (`u8`
/// as it is, `i8` plus 128; the zero point the compiler passes is shifted
/// alike).
#[inline(always)]
fn unsigned<X: Quantized>(v: X) -> i32 {
    v.to_i32() - X::MIN
}

/// An integer pointwise (1x1) convolution, or a dense layer (one pixel):
/// the integer GEMM `y[p][o] = requantize(c[o] + sum_i x[p][i] * w[o][i]
/// minus w_zp[o] * sum_i x[p][i])`, `x` read unsigned ([`unsigned`]), `c` the
/// folded bias ([`folded_bias`](crate::abi::quant::folded_bias), with
/// `zp.x` the input's zero point as read). Weights in the integer GEMM's
/// panels ([`qpanel_index`](crate::abi::pack::qpanel_index)). AVX-512
/// VNNI where the CPU has it ([`crate::isa::vnni`]), else portable: the
/// same sums, the same result.
///
/// # Panics
/// If a slice length does not match the shape.
#[inline(never)]
pub fn qpointwise<X: Quantized, Y: Quantized>(
    shape: &PointwiseShape,
    x: &[X],
    w: QWeights<'_>,
    zp: QZeroPoints,
    y: &mut [Y],
) {
    const K: &str = "qpointwise";
    let (ic, oc) = (shape.in_c, shape.out_c);
    check_len(K, "x", x.len(), shape.pixels * ic);
    check_len(K, "y", y.len(), shape.pixels * oc);
    w.check(K, qpanels_len(ic, oc), oc);
    if shape.pixels == 0 || oc == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::isa::vnni()
        && ic > 0
        && (X::MIN == 0 || ic <= crate::simd::qgemm::ROW_MAX)
        && core::mem::size_of::<Y>() == 1
    {
        crate::isa::count(crate::isa::Isa::Avx512);
        crate::simd::qgemm::pointwise_vnni(shape, x, w, zp, y);
        return;
    }
    crate::isa::count(crate::isa::Isa::Portable);
    for (xrow, yrow) in x.chunks_exact(ic.max(1)).zip(y.chunks_exact_mut(oc)) {
        gemm_row(ic, |i| unsigned(xrow[i]), &w, zp.y, yrow);
    }
}

/// One output row of the integer GEMM, portable: `k` inputs `a(i)`.
#[inline(always)]
fn gemm_row<Y: Quantized>(k: usize, a: impl Fn(usize) -> i32, w: &QWeights<'_>, y_zp: i32, out: &mut [Y]) {
    gemm_sums(
        k,
        a,
        w.values,
        w.zero_point,
        |o| w.bias[o],
        |o, acc| out[o] = w.out(o, acc, y_zp),
    );
}

/// The exact sums of one output row of the integer GEMM (portable): for
/// each output `o < zero_point.len()`, `put(o, bias(o) + sum_i a(i) *
/// w[o][i] - zero_point[o] * sum_i a(i))` over `k` inputs `a(i)`, the
/// weights `values` in the GEMM's panels. Shared by the requantized
/// layers ([`gemm_row`]) and the dynamically quantized ones
/// ([`crate::dynq`]).
#[inline(always)]
pub(crate) fn gemm_sums(
    k: usize,
    a: impl Fn(usize) -> i32,
    values: &[i8],
    zero_point: &[i32],
    bias: impl Fn(usize) -> i32,
    mut put: impl FnMut(usize, i32),
) {
    let asum = (0..k).fold(0i32, |s, i| s.wrapping_add(a(i)));
    for (o, &z) in zero_point.iter().enumerate() {
        let dot = (0..k).fold(0i32, |s, i| {
            s.wrapping_add(a(i).wrapping_mul(values[qpanel_index(k, o, i)] as i32))
        });
        put(o, bias(o).wrapping_add(dot).wrapping_sub(z.wrapping_mul(asum)));
    }
}

/// An integer convolution, groups 1, any kernel, stride and padding: the
/// integer GEMM ([`qpointwise`]) over im2col rows (`(ky * kw + kx) *
/// in_c + ci`), reads outside the input seeing `zp.x` (the zero point as
/// read: they contribute nothing).
///
/// # Panics
/// If a slice length does not match the shape.
#[inline(never)]
pub fn qconv2d<X: Quantized, Y: Quantized>(shape: &ConvShape, x: &[X], w: QWeights<'_>, zp: QZeroPoints, y: &mut [Y]) {
    const K: &str = "qconv2d";
    let s = shape;
    let (ic, oc) = (s.in_c, s.out_c);
    check_len(K, "x", x.len(), s.in_h * s.in_w * ic);
    check_len(K, "y", y.len(), s.out_h * s.out_w * oc);
    let k = s.kernel_h * s.kernel_w * ic;
    w.check(K, qpanels_len(k, oc), oc);
    if oc == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::isa::vnni() && k > 0 && k <= crate::simd::qgemm::CONV_MAX_K && core::mem::size_of::<Y>() == 1 {
        crate::isa::count(crate::isa::Isa::Avx512);
        crate::simd::qgemm::conv2d_vnni(shape, x, w, zp, y);
        return;
    }
    crate::isa::count(crate::isa::Isa::Portable);
    qconv2d_portable(shape, x, w, zp, y);
}

/// [`qconv2d`] on the portable path (lengths checked by the caller).
#[inline(never)]
pub(crate) fn qconv2d_portable<X: Quantized, Y: Quantized>(
    shape: &ConvShape,
    x: &[X],
    w: QWeights<'_>,
    zp: QZeroPoints,
    y: &mut [Y],
) {
    let s = shape;
    let (ic, oc) = (s.in_c, s.out_c);
    let k = s.kernel_h * s.kernel_w * ic;
    for oy in 0..s.out_h {
        for ox in 0..s.out_w {
            let a = |r: usize| {
                let (tap, ci) = (r / ic, r % ic);
                match s.input_at(oy, ox, tap / s.kernel_w, tap % s.kernel_w) {
                    Some(px) => unsigned(x[px * ic + ci]),
                    None => zp.x,
                }
            };
            let yrow = &mut y[(oy * s.out_w + ox) * oc..][..oc];
            gemm_row(k, a, &w, zp.y, yrow);
        }
    }
}

/// Channels per block of the average pool's accumulators (on the stack).
const DW_BLOCK: usize = 64;

/// An integer depthwise convolution (groups = channels, one filter per
/// channel), any kernel, stride and padding. Weights `[kh][kw][c]`; per
/// output pixel and channel, `bias + sum (x - zp.x) * (w - w_zero_point)`
/// over the taps inside the input, requantized.
///
/// AVX-512 or AVX2 ([`crate::isa::active_vector`]; 8 channels at least),
/// else portable (16 channels at least: the same body on arrays of 16
/// lanes; fewer: a plain loop), see `crate::simd::qdepthwise`: the same
/// exact sums and the same epilogue, so the same result bit for bit on
/// every path.
///
/// # Panics
/// If a slice length does not match the shape, or `in_c != out_c`.
#[inline(never)]
pub fn qdepthwise<X: Quantized, Y: Quantized>(
    shape: &ConvShape,
    x: &[X],
    w: QWeights<'_>,
    zp: QZeroPoints,
    y: &mut [Y],
) {
    const K: &str = "qdepthwise";
    let s = shape;
    let c = s.in_c;
    assert!(s.out_c == c, "{K}: in_c {c} != out_c {}", s.out_c);
    check_len(K, "x", x.len(), s.in_h * s.in_w * c);
    check_len(K, "y", y.len(), s.out_h * s.out_w * c);
    w.check(K, s.kernel_h * s.kernel_w * c, c);
    #[cfg(target_arch = "x86_64")]
    if c >= 8 && s.stride_h >= 1 && s.stride_w >= 1 {
        use crate::isa::Isa;
        match crate::isa::active_vector() {
            Isa::Avx512 => {
                crate::isa::count(Isa::Avx512);
                // SAFETY: the CPU has AVX-512F (and so AVX2); the lengths
                // are checked above, in_c == out_c >= 8 (16 for the 16-lane
                // body).
                unsafe {
                    if c >= 16 {
                        crate::simd::qdepthwise::qdepthwise_avx512(s, x, w, zp, y)
                    } else {
                        crate::simd::qdepthwise::qdepthwise_avx2(s, x, w, zp, y)
                    }
                }
                return;
            }
            Isa::Avx2 => {
                crate::isa::count(Isa::Avx2);
                // SAFETY: the CPU has AVX2; the lengths are checked above,
                // in_c == out_c >= 8.
                unsafe { crate::simd::qdepthwise::qdepthwise_avx2(s, x, w, zp, y) };
                return;
            }
            _ => {}
        }
    }
    crate::isa::count(crate::isa::Isa::Portable);
    if c >= 16 && s.stride_h >= 1 && s.stride_w >= 1 {
        // SAFETY: the lengths are checked above, in_c == out_c >= 16.
        unsafe { crate::simd::qdepthwise::qdepthwise_portable(s, x, w, zp, y) };
    } else {
        qdepthwise_narrow(s, x, w, zp, y);
    }
}

/// Channels per block of [`qdepthwise_narrow`].
const DW_LANES: usize = 16;

/// [`qdepthwise`] on the portable path for fewer than 16 channels (lengths
/// checked by the caller; any channel count): per output pixel, the range
/// of taps inside the input, then blocks of [`DW_LANES`] channels.
#[inline(never)]
fn qdepthwise_narrow<X: Quantized, Y: Quantized>(
    s: &ConvShape,
    x: &[X],
    w: QWeights<'_>,
    zp: QZeroPoints,
    y: &mut [Y],
) {
    let c = s.in_c;
    if c == 0 {
        return;
    }
    // The taps `k0..k1` of output `o` inside an input of `len` along one axis.
    let taps = |o: usize, stride: usize, pad: usize, len: usize, k: usize| {
        let start = o * stride;
        (
            pad.saturating_sub(start).min(k),
            (len + pad).saturating_sub(start).min(k),
        )
    };
    for (p, yrow) in y.chunks_exact_mut(c).enumerate() {
        let (oy, ox) = (p / s.out_w, p % s.out_w);
        let (ky0, ky1) = taps(oy, s.stride_h, s.pad_top, s.in_h, s.kernel_h);
        let (kx0, kx1) = taps(ox, s.stride_w, s.pad_left, s.in_w, s.kernel_w);
        let pixel = Pixel {
            s,
            ky: ky0..ky1,
            kx: kx0..kx1,
            iy0: oy * s.stride_h,
            ix0: ox * s.stride_w,
        };
        let mut c0 = 0;
        while c0 + DW_LANES <= c {
            pixel.channels(x, &w, zp, &mut yrow[c0..c0 + DW_LANES], c0);
            c0 += DW_LANES;
        }
        if c0 < c {
            pixel.channels(x, &w, zp, &mut yrow[c0..], c0);
        }
    }
}

/// One output pixel of [`qdepthwise_narrow`]: the taps inside the input,
/// and where tap (0, 0) reads (plus the padding).
struct Pixel<'a> {
    s: &'a ConvShape,
    ky: core::ops::Range<usize>,
    kx: core::ops::Range<usize>,
    iy0: usize,
    ix0: usize,
}

impl Pixel<'_> {
    /// Channels `c0..c0 + out.len()` (at most [`DW_LANES`]).
    #[inline(always)]
    fn channels<X: Quantized, Y: Quantized>(
        &self,
        x: &[X],
        w: &QWeights<'_>,
        zp: QZeroPoints,
        out: &mut [Y],
        c0: usize,
    ) {
        let s = self.s;
        let (c, n) = (s.in_c, out.len());
        let mut acc = [0i32; DW_LANES];
        let acc = &mut acc[..n];
        acc.copy_from_slice(&w.bias[c0..c0 + n]);
        let wz = &w.zero_point[c0..c0 + n];
        for ky in self.ky.clone() {
            let iy = self.iy0 + ky - s.pad_top;
            for kx in self.kx.clone() {
                let ix = self.ix0 + kx - s.pad_left;
                let xs = &x[(iy * s.in_w + ix) * c + c0..][..n];
                let ws = &w.values[(ky * s.kernel_w + kx) * c + c0..][..n];
                for (((a, &xv), &wv), &z) in acc.iter_mut().zip(xs).zip(ws).zip(wz) {
                    *a = a.wrapping_add((xv.to_i32() - zp.x).wrapping_mul(wv as i32 - z));
                }
            }
        }
        for (k, (o, &a)) in out.iter_mut().zip(acc.iter()).enumerate() {
            *o = w.out(c0 + k, a, zp.y);
        }
    }
}

/// onnxruntime's QLinearAdd: `y[i] = add(a[i], b[i % b.len()])` with
/// [`QAdd::apply`]; `b` is as long as `a`, or a constant repeated over it
/// (whose length divides `a`'s).
///
/// # Panics
/// If `y` and `a` differ in length, or `b`'s length does not divide `a`'s.
#[inline(never)]
pub fn qadd<A: Quantized, B: Quantized, Y: Quantized>(a: &[A], b: &[B], params: &QAdd, y: &mut [Y]) {
    broadcast("qadd", a, b, y, |u, v| params.apply(u, v, Y::MIN, Y::MAX));
}

/// `y[i] = f(a[i], b[i % b.len()])` as integers (qadd, qmul): `b` as long
/// as `a`, or repeated over it.
#[inline(always)]
#[track_caller]
fn broadcast<A: Quantized, B: Quantized, Y: Quantized>(
    kernel: &str,
    a: &[A],
    b: &[B],
    y: &mut [Y],
    f: impl Fn(i32, i32) -> i32,
) {
    check_len(kernel, "y", y.len(), a.len());
    assert!(
        !b.is_empty() && a.len().is_multiple_of(b.len()),
        "{kernel}: `b` has {} elements, which must divide `a`'s {}",
        b.len(),
        a.len()
    );
    for (ys, xs) in y.chunks_mut(b.len()).zip(a.chunks(b.len())) {
        for ((o, &u), &v) in ys.iter_mut().zip(xs).zip(b) {
            *o = Y::from_i32(f(u.to_i32(), v.to_i32()));
        }
    }
}

/// onnxruntime's QLinearGlobalAveragePool over NHWC `x` (`pixels * c`):
/// per channel, the exact sum of `x - x_zero_point`, requantized.
///
/// # Panics
/// If a slice length does not match, or `pixels` is 0.
#[inline(never)]
pub fn qglobal_avg_pool<X: Quantized, Y: Quantized>(p: &QAvgPool, x: &[X], y: &mut [Y]) {
    const K: &str = "qglobal_avg_pool";
    check_len(K, "x", x.len(), p.pixels * p.c);
    check_len(K, "y", y.len(), p.c);
    assert!(p.pixels >= 1, "{K}: pixels must be at least 1");
    let mut acc = [0i32; DW_BLOCK];
    for c0 in (0..p.c).step_by(DW_BLOCK) {
        let n = DW_BLOCK.min(p.c - c0);
        let acc = &mut acc[..n];
        acc.fill(0);
        for px in x.chunks_exact(p.c) {
            for (a, &v) in acc.iter_mut().zip(&px[c0..c0 + n]) {
                *a += v.to_i32() - p.x_zero_point;
            }
        }
        for (o, &a) in y[c0..c0 + n].iter_mut().zip(acc.iter()) {
            *o = Y::from_i32(requantize(a, p.multiplier, p.y_zero_point, Y::MIN, Y::MAX));
        }
    }
}

/// onnxruntime's QLinearMul: `y[i] = mul(a[i], b[i % b.len()])` with
/// [`QMul::apply`]; `b` is as long as `a`, or one value per channel of
/// NHWC `a` (whose length divides `a`'s).
///
/// # Panics
/// If `y` and `a` differ in length, or `b`'s length does not divide `a`'s.
#[inline(never)]
pub fn qmul<A: Quantized, B: Quantized, Y: Quantized>(a: &[A], b: &[B], params: &QMul, y: &mut [Y]) {
    broadcast("qmul", a, b, y, |u, v| params.apply(u, v, Y::MIN, Y::MAX));
}

/// An elementwise function of a quantized tensor as a table: `y[i] =
/// table[x[i]'s byte]` (a `u8` as it is, an `i8` as its two's-complement
/// byte). The compiler builds the table from the function's definition.
///
/// # Panics
/// If `x` and `y` differ in length.
#[inline(never)]
pub fn qtable<X: Quantized, Y: Quantized>(x: &[X], table: &[Y; 256], y: &mut [Y]) {
    check_len("qtable", "y", y.len(), x.len());
    for (o, &v) in y.iter_mut().zip(x) {
        *o = table[(v.to_i32() & 0xff) as usize];
    }
}

/// onnxruntime's QLinearSoftmax over rows of `p.d` values ([`QSoftmax`]);
/// `exp` is the compiler's 256-entry table.
///
/// # Panics
/// If a length does not match (`x` a whole number of rows, `y` as long,
/// `exp` 256 entries), or `p.d` is 0.
#[inline(never)]
pub fn qsoftmax<X: Quantized, Y: Quantized>(p: &QSoftmax, exp: &[f32], x: &[X], y: &mut [Y]) {
    const K: &str = "qsoftmax";
    check_len(K, "exp", exp.len(), 256);
    check_len(K, "y", y.len(), x.len());
    assert!(
        p.d >= 1 && x.len().is_multiple_of(p.d),
        "{K}: rows of {} do not divide {}",
        p.d,
        x.len()
    );
    for (xs, ys) in x.chunks_exact(p.d).zip(y.chunks_exact_mut(p.d)) {
        let m = xs.iter().map(|v| v.to_i32()).max().unwrap_or(0);
        // 255 + v - m lies in 0..=255: v and m are values of one 8-bit type.
        let e = |v: &X| exp[(255 + v.to_i32() - m) as usize];
        let mut sum = 0f32;
        for v in xs {
            sum += e(v);
        }
        for (o, v) in ys.iter_mut().zip(xs) {
            *o = Y::from_i32(p.output(e(v), sum, Y::MIN, Y::MAX));
        }
    }
}

/// A mean over the pixels of NHWC `x` (`p.pixels * p.c`) computed in
/// float ([`QMean`]), per channel.
///
/// # Panics
/// If a slice length does not match, or `p.pixels` is 0.
#[inline(never)]
pub fn qmean<X: Quantized, Y: Quantized>(p: &QMean, x: &[X], y: &mut [Y]) {
    const K: &str = "qmean";
    check_len(K, "x", x.len(), p.pixels * p.c);
    check_len(K, "y", y.len(), p.c);
    assert!(p.pixels >= 1, "{K}: pixels must be at least 1");
    let mut acc = [0f32; DW_BLOCK];
    for c0 in (0..p.c).step_by(DW_BLOCK) {
        let n = DW_BLOCK.min(p.c - c0);
        let acc = &mut acc[..n];
        for (a, &v) in acc.iter_mut().zip(&x[c0..c0 + n]) {
            *a = (v.to_i32() - p.x_zero_point) as f32 * p.x_scale;
        }
        for px in x.chunks_exact(p.c).skip(1) {
            for (a, &v) in acc.iter_mut().zip(&px[c0..c0 + n]) {
                *a += (v.to_i32() - p.x_zero_point) as f32 * p.x_scale;
            }
        }
        for (o, &a) in y[c0..c0 + n].iter_mut().zip(acc.iter()) {
            *o = Y::from_i32(p.output(a / p.pixels as f32, Y::MIN, Y::MAX));
        }
    }
}
