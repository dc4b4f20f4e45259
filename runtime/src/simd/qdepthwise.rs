//! The integer depthwise convolution on AVX-512 (16 lanes), AVX2 (8
//! lanes) and in portable Rust (arrays of 16 lanes), for
//! [`crate::quant::qdepthwise`], which checked the slice lengths and picked
//! the instruction set. One body, generic over the lanes ([`Lanes`]).
//!
//! Channel blocks of one vector of `i32` lanes are the outer loop: a
//! block's `kh * kw` weight vectors (`w - w_zero_point`, sign-extended) are
//! computed once, kept in registers (3x3 and 5x5 kernels, instantiated with
//! the kernel size a constant) or reloaded per tap (any other size), then
//! every output pixel of the block is computed, row by row:
//!
//! - interior pixels (every tap inside the input) start from the bias
//!   folded with the input's zero point (`bias - x_zp * sum w`), so a tap
//!   is a widening load (`vpmovzxbd`/`vpmovsxbd`), a `vpmulld` and a
//!   `vpaddd`, with no bounds checks;
//! - border pixels add `(x - x_zp) * w` for the taps inside the input only
//!   (the padding reads `x_zp`: it contributes nothing).
//!
//! Both sums are the exact `i32` sum of the definition (wrapping
//! arithmetic; the true sum fits, the compiler checks it). The epilogue is
//! [`requantize`](crate::abi::quant::requantize) in vector form, as in
//! [`super::qgemm`]: the sum to `f32` (`vcvtdq2ps`, round to nearest even),
//! times the multiplier, a NaN made 0 (what the scalar `as i32` gives),
//! clamped in float to the output's range less its zero point, rounded half
//! to even (`vcvtps2dq` in the default rounding mode: clamping to integer
//! bounds before rounding is the same as after), plus the zero point,
//! narrowed to bytes (exactly: the values are in range). The results are
//! the portable path's bit for bit.
//!
//! A channel count that is not a multiple of the lanes ends with a block
//! that overlaps the one before it (channels `c - lanes..c`): those
//! channels are computed twice, identically, and stored twice. Fewer
//! channels than lanes: the caller takes the 8-lane body (AVX-512 with 8 to
//! 15 channels) or its plain portable loop.

use crate::abi::quant::{dyn_output, requantize, QZeroPoints};
use crate::abi::{ConvShape, Quantized};
use crate::quant::QWeights;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// The depthwise body on AVX-512 (16 channels per block).
///
/// # Safety
/// The CPU has AVX-512F; the slices have the lengths of `s` (checked by
/// `qdepthwise`), `s.in_c == s.out_c >= 16`.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
#[target_feature(enable = "avx512f,avx2")]
pub(crate) unsafe fn qdepthwise_avx512<X: Quantized, Y: Quantized>(
    s: &ConvShape,
    x: &[X],
    w: QWeights<'_>,
    zp: QZeroPoints,
    y: &mut [Y],
) {
    // SAFETY: forwarded (the caller's contract); 16 lanes <= in_c.
    unsafe { body::<Z16, X, Y>(s, x.as_ptr() as *const u8, &w, zp, y.as_mut_ptr() as *mut u8, None) }
}

/// The depthwise body on AVX2 (8 channels per block); also what AVX-512
/// runs for 8 to 15 channels.
///
/// # Safety
/// The CPU has AVX2; the slices have the lengths of `s` (checked by
/// `qdepthwise`), `s.in_c == s.out_c >= 8`.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn qdepthwise_avx2<X: Quantized, Y: Quantized>(
    s: &ConvShape,
    x: &[X],
    w: QWeights<'_>,
    zp: QZeroPoints,
    y: &mut [Y],
) {
    // SAFETY: forwarded (the caller's contract); 8 lanes <= in_c.
    unsafe { body::<Y8, X, Y>(s, x.as_ptr() as *const u8, &w, zp, y.as_mut_ptr() as *mut u8, None) }
}

/// The depthwise body in portable Rust (16 channels per block, arrays the
/// optimizer vectorizes where the target has vectors).
///
/// # Safety
/// The slices have the lengths of `s` (checked by `qdepthwise`), `s.in_c
/// == s.out_c >= 16`.
#[inline(never)]
pub(crate) unsafe fn qdepthwise_portable<X: Quantized, Y: Quantized>(
    s: &ConvShape,
    x: &[X],
    w: QWeights<'_>,
    zp: QZeroPoints,
    y: &mut [Y],
) {
    // SAFETY: forwarded (the caller's contract); 16 lanes <= in_c.
    unsafe { body::<P16, X, Y>(s, x.as_ptr() as *const u8, &w, zp, y.as_mut_ptr() as *mut u8, None) }
}

/// The float outputs of a layer on a dynamically quantized input
/// ([`crate::dynq::depthwise`]): per channel `o`, `acc as f32 * (x_scale *
/// scale[o]) + bias[o]`, clamped to `[min, max]`.
pub(crate) struct DynOut<'a> {
    pub x_scale: f32,
    pub scale: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub min: f32,
    pub max: f32,
}

/// [`qdepthwise_avx512`] with float outputs.
///
/// # Safety
/// As [`qdepthwise_avx512`] (`x` of `u8`, `w.bias` the zeros of
/// `crate::dynq`'s depthwise corrections); `y` holds the output's floats.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
#[target_feature(enable = "avx512f,avx2")]
pub(crate) unsafe fn dyn_avx512(
    s: &ConvShape,
    x: &[u8],
    w: QWeights<'_>,
    zp: QZeroPoints,
    f: &DynOut<'_>,
    y: &mut [f32],
) {
    // SAFETY: forwarded (the caller's contract); 16 lanes <= in_c.
    unsafe { body::<Z16, u8, u8>(s, x.as_ptr(), &w, zp, y.as_mut_ptr() as *mut u8, Some(f)) }
}

/// [`qdepthwise_avx2`] with float outputs.
///
/// # Safety
/// As [`dyn_avx512`], with AVX2 and `in_c >= 8`.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn dyn_avx2(
    s: &ConvShape,
    x: &[u8],
    w: QWeights<'_>,
    zp: QZeroPoints,
    f: &DynOut<'_>,
    y: &mut [f32],
) {
    // SAFETY: forwarded (the caller's contract); 8 lanes <= in_c.
    unsafe { body::<Y8, u8, u8>(s, x.as_ptr(), &w, zp, y.as_mut_ptr() as *mut u8, Some(f)) }
}

/// [`qdepthwise_portable`] with float outputs.
///
/// # Safety
/// As [`dyn_avx512`], without a vector instruction set and `in_c >= 16`.
#[inline(never)]
pub(crate) unsafe fn dyn_portable(
    s: &ConvShape,
    x: &[u8],
    w: QWeights<'_>,
    zp: QZeroPoints,
    f: &DynOut<'_>,
    y: &mut [f32],
) {
    // SAFETY: forwarded (the caller's contract); 16 lanes <= in_c.
    unsafe { body::<P16, u8, u8>(s, x.as_ptr(), &w, zp, y.as_mut_ptr() as *mut u8, Some(f)) }
}

/// `N` lanes of `i32` (and of `f32`, [`Lanes::F`]): what the body needs.
///
/// # Safety (every method)
/// The CPU has the instruction set (checked at dispatch); pointers are
/// valid for `N` elements.
trait Lanes: Copy {
    const N: usize;
    /// `N` lanes of `f32`.
    type F: Copy;
    unsafe fn splat(v: i32) -> Self;
    unsafe fn splat_f(v: f32) -> Self::F;
    unsafe fn load_i32(p: *const i32) -> Self;
    unsafe fn load_f32(p: *const f32) -> Self::F;
    /// `N` bytes, zero-extended.
    unsafe fn load_u8(p: *const u8) -> Self;
    /// `N` bytes, sign-extended.
    unsafe fn load_i8(p: *const i8) -> Self;
    unsafe fn add(a: Self, b: Self) -> Self;
    unsafe fn sub(a: Self, b: Self) -> Self;
    /// The low 32 bits of the products.
    unsafe fn mul(a: Self, b: Self) -> Self;
    /// [`requantize`](crate::abi::quant::requantize) of each lane, stored as
    /// `N` bytes (`i8` if `SIGNED`, else `u8`) at `dst`.
    unsafe fn store_q<const SIGNED: bool>(acc: Self, q: &Requant<Self>, dst: *mut u8);
    /// [`dyn_output`](crate::abi::quant::dyn_output) of each lane, stored
    /// as `N` floats at `dst`.
    unsafe fn store_f(acc: Self, f: &FloatOut<Self>, dst: *mut f32);
}

/// A block's float epilogue (a layer on a dynamically quantized input):
/// `acc as f32 * m + bias`, clamped to `[lo, hi]`.
struct FloatOut<V: Lanes> {
    m: V::F,
    bias: V::F,
    lo: V::F,
    hi: V::F,
}

/// A block's requantization constants.
struct Requant<V: Lanes> {
    /// The multipliers.
    m: V::F,
    /// `Y::MIN - zp.y`, `Y::MAX - zp.y`, as `f32`.
    lo: V::F,
    hi: V::F,
    /// `zp.y`.
    zp: V,
}

/// 16 lanes in a `zmm` register.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Z16(__m512i);

/// 8 lanes in a `ymm` register.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Y8(__m256i);

/// 16 lanes in an array (portable).
#[derive(Clone, Copy)]
struct P16([i32; 16]);

impl P16 {
    #[inline(always)]
    fn map2(a: Self, b: Self, f: impl Fn(i32, i32) -> i32) -> Self {
        let mut r = [0; 16];
        for ((r, a), b) in r.iter_mut().zip(a.0).zip(b.0) {
            *r = f(a, b);
        }
        P16(r)
    }
}

// SAFETY (all methods): `Lanes`' contract — pointers valid for 16 elements
// (read and written unaligned).
impl Lanes for P16 {
    const N: usize = 16;
    type F = [f32; 16];
    #[inline(always)]
    unsafe fn splat(v: i32) -> Self {
        P16([v; 16])
    }
    #[inline(always)]
    unsafe fn splat_f(v: f32) -> [f32; 16] {
        [v; 16]
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self {
        // SAFETY: see the impl.
        P16(unsafe { (p as *const [i32; 16]).read_unaligned() })
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> [f32; 16] {
        // SAFETY: see the impl.
        unsafe { (p as *const [f32; 16]).read_unaligned() }
    }
    #[inline(always)]
    unsafe fn load_u8(p: *const u8) -> Self {
        // SAFETY: see the impl.
        let b = unsafe { (p as *const [u8; 16]).read_unaligned() };
        P16(b.map(|v| v as i32))
    }
    #[inline(always)]
    unsafe fn load_i8(p: *const i8) -> Self {
        // SAFETY: see the impl.
        let b = unsafe { (p as *const [i8; 16]).read_unaligned() };
        P16(b.map(|v| v as i32))
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        P16::map2(a, b, i32::wrapping_add)
    }
    #[inline(always)]
    unsafe fn sub(a: Self, b: Self) -> Self {
        P16::map2(a, b, i32::wrapping_sub)
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        P16::map2(a, b, i32::wrapping_mul)
    }
    #[inline(always)]
    unsafe fn store_q<const SIGNED: bool>(acc: Self, q: &Requant<Self>, dst: *mut u8) {
        let (lo, hi) = if SIGNED { (-128, 127) } else { (0, 255) };
        let mut b = [0u8; 16];
        for (k, b) in b.iter_mut().enumerate() {
            *b = requantize(acc.0[k], q.m[k], q.zp.0[k], lo, hi) as u8;
        }
        // SAFETY: see the impl.
        unsafe { (dst as *mut [u8; 16]).write_unaligned(b) }
    }
    #[inline(always)]
    unsafe fn store_f(acc: Self, f: &FloatOut<Self>, dst: *mut f32) {
        let mut v = [0f32; 16];
        for (k, v) in v.iter_mut().enumerate() {
            *v = dyn_output(acc.0[k], f.m[k], f.bias[k], f.lo[k], f.hi[k]);
        }
        // SAFETY: see the impl.
        unsafe { (dst as *mut [f32; 16]).write_unaligned(v) }
    }
}

// SAFETY (all methods): `Lanes`' contract — AVX-512F, pointers valid for 16
// elements.
#[cfg(target_arch = "x86_64")]
impl Lanes for Z16 {
    const N: usize = 16;
    type F = __m512;
    #[inline(always)]
    unsafe fn splat(v: i32) -> Self {
        // SAFETY: see the impl.
        Z16(unsafe { _mm512_set1_epi32(v) })
    }
    #[inline(always)]
    unsafe fn splat_f(v: f32) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self {
        // SAFETY: see the impl.
        Z16(unsafe { _mm512_loadu_si512(p as *const _) })
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_u8(p: *const u8) -> Self {
        // SAFETY: see the impl.
        Z16(unsafe { _mm512_cvtepu8_epi32(_mm_loadu_si128(p as *const __m128i)) })
    }
    #[inline(always)]
    unsafe fn load_i8(p: *const i8) -> Self {
        // SAFETY: see the impl.
        Z16(unsafe { _mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i)) })
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: see the impl.
        Z16(unsafe { _mm512_add_epi32(a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn sub(a: Self, b: Self) -> Self {
        // SAFETY: see the impl.
        Z16(unsafe { _mm512_sub_epi32(a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        // SAFETY: see the impl.
        Z16(unsafe { _mm512_mullo_epi32(a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn store_q<const SIGNED: bool>(acc: Self, q: &Requant<Self>, dst: *mut u8) {
        // SAFETY: see the impl; the clamped values plus the zero point are
        // within the output type's range, so the saturating narrowing is
        // exact.
        unsafe {
            let f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc.0), q.m);
            let f = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(f, f), f);
            let f = _mm512_min_ps(_mm512_max_ps(f, q.lo), q.hi);
            let v = _mm512_add_epi32(_mm512_cvtps_epi32(f), q.zp.0);
            let b = if SIGNED {
                _mm512_cvtsepi32_epi8(v)
            } else {
                _mm512_cvtusepi32_epi8(v)
            };
            _mm_storeu_si128(dst as *mut __m128i, b);
        }
    }
    #[inline(always)]
    unsafe fn store_f(acc: Self, f: &FloatOut<Self>, dst: *mut f32) {
        // SAFETY: see the impl. One rounding each (`vmulps`, `vaddps`).
        unsafe {
            let v = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc.0), f.m), f.bias);
            _mm512_storeu_ps(dst, _mm512_min_ps(_mm512_max_ps(v, f.lo), f.hi));
        }
    }
}

// SAFETY (all methods): `Lanes`' contract — AVX2, pointers valid for 8
// elements.
#[cfg(target_arch = "x86_64")]
impl Lanes for Y8 {
    const N: usize = 8;
    type F = __m256;
    #[inline(always)]
    unsafe fn splat(v: i32) -> Self {
        // SAFETY: see the impl.
        Y8(unsafe { _mm256_set1_epi32(v) })
    }
    #[inline(always)]
    unsafe fn splat_f(v: f32) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self {
        // SAFETY: see the impl.
        Y8(unsafe { _mm256_loadu_si256(p as *const __m256i) })
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_u8(p: *const u8) -> Self {
        // SAFETY: see the impl (8 bytes).
        Y8(unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i)) })
    }
    #[inline(always)]
    unsafe fn load_i8(p: *const i8) -> Self {
        // SAFETY: see the impl (8 bytes).
        Y8(unsafe { _mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)) })
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: see the impl.
        Y8(unsafe { _mm256_add_epi32(a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn sub(a: Self, b: Self) -> Self {
        // SAFETY: see the impl.
        Y8(unsafe { _mm256_sub_epi32(a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        // SAFETY: see the impl.
        Y8(unsafe { _mm256_mullo_epi32(a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn store_q<const SIGNED: bool>(acc: Self, q: &Requant<Self>, dst: *mut u8) {
        // SAFETY: see the impl (8 bytes stored); the values are within the
        // output type's range, so the saturating packs are exact.
        unsafe {
            let f = _mm256_mul_ps(_mm256_cvtepi32_ps(acc.0), q.m);
            let f = _mm256_and_ps(f, _mm256_cmp_ps::<_CMP_ORD_Q>(f, f));
            let f = _mm256_min_ps(_mm256_max_ps(f, q.lo), q.hi);
            let v = _mm256_add_epi32(_mm256_cvtps_epi32(f), q.zp.0);
            let h = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            let b = if SIGNED {
                _mm_packs_epi16(h, h)
            } else {
                _mm_packus_epi16(h, h)
            };
            _mm_storel_epi64(dst as *mut __m128i, b);
        }
    }
    #[inline(always)]
    unsafe fn store_f(acc: Self, f: &FloatOut<Self>, dst: *mut f32) {
        // SAFETY: see the impl. One rounding each (`vmulps`, `vaddps`).
        unsafe {
            let v = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc.0), f.m), f.bias);
            _mm256_storeu_ps(dst, _mm256_min_ps(_mm256_max_ps(v, f.lo), f.hi));
        }
    }
}

/// Every channel block of the layer (see the module docs).
///
/// # Safety
/// The CPU runs `V`; `x` and `y` point to the layer's input and output
/// (`in_h * in_w * c` and `out_h * out_w * c` elements of one byte), `w`'s
/// slices have the layer's lengths, and `c = s.in_c >= V::N`.
#[inline(always)]
unsafe fn body<V: Lanes, X: Quantized, Y: Quantized>(
    s: &ConvShape,
    x: *const u8,
    w: &QWeights<'_>,
    zp: QZeroPoints,
    y: *mut u8,
    f: Option<&DynOut<'_>>,
) {
    let c = s.in_c;
    let mut c0 = 0;
    while c0 < c {
        // The last block overlaps the one before when V::N does not divide c.
        let b = c0.min(c - V::N);
        // SAFETY: the caller's contract; channels b..b + V::N < c.
        unsafe {
            match (s.kernel_h, s.kernel_w) {
                (3, 3) => block::<V, X, Y, 3, 3>(s, x, w, zp, y, b, f),
                (5, 5) => block::<V, X, Y, 5, 5>(s, x, w, zp, y, b, f),
                _ => block::<V, X, Y, 0, 0>(s, x, w, zp, y, b, f),
            }
        }
        c0 += V::N;
    }
}

/// The output pixels `lo..hi` along one axis whose every tap is inside the
/// input: `o * stride - pad + k - 1 < len` and `o * stride >= pad` (an empty
/// range at `lo` when there are none).
fn interior(out: usize, len: usize, k: usize, stride: usize, pad: usize) -> (usize, usize) {
    let lo = pad.div_ceil(stride).min(out);
    let hi = if len + pad >= k {
        ((len + pad - k) / stride + 1).min(out)
    } else {
        0
    };
    (lo, hi.max(lo))
}

/// One channel block's constants (see [`block`]). Helpers are methods,
/// not closures: a closure does not inherit the caller's target features,
/// so the intrinsics in it would not inline.
struct Block<'a, V: Lanes, const KH: usize, const KW: usize> {
    s: &'a ConvShape,
    /// The input at channel `c0`.
    x: *const u8,
    /// The weights at channel `c0`.
    w: *const i8,
    /// The weight zero points.
    wz: V,
    /// The weights less their zero points, `[ky][kx]` (empty if `KH == 0`).
    wv: [[V; KW]; KH],
    kh: usize,
    kw: usize,
    /// The input's zero point.
    zx: V,
    bias: V,
    q: Requant<V>,
    /// The float epilogue instead of `q` (then `y` holds floats).
    f: Option<FloatOut<V>>,
}

impl<V: Lanes, const KH: usize, const KW: usize> Block<'_, V, KH, KW> {
    /// Tap `(ky, kx)`'s weights less the zero points, from memory.
    ///
    /// # Safety
    /// The CPU runs `V`; `ky < kh`, `kx < kw`.
    #[inline(always)]
    unsafe fn weight(&self, ky: usize, kx: usize) -> V {
        // SAFETY: the caller's contract; the tap's weights of the block's
        // channels are within the `[kh][kw][c]` weights.
        unsafe { V::sub(V::load_i8(self.w.add((ky * self.kw + kx) * self.s.in_c)), self.wz) }
    }

    /// Tap `(ky, kx)`'s weights less the zero points.
    ///
    /// # Safety
    /// As [`Block::weight`].
    #[inline(always)]
    unsafe fn tap(&self, ky: usize, kx: usize) -> V {
        if KH > 0 {
            self.wv[ky][kx]
        } else {
            // SAFETY: the caller's contract.
            unsafe { self.weight(ky, kx) }
        }
    }

    /// The block's channels of one input pixel, widened.
    ///
    /// # Safety
    /// The CPU runs `V`; `p` points to `V::N` elements of `X`.
    #[inline(always)]
    unsafe fn load<X: Quantized>(p: *const u8) -> V {
        // SAFETY: the caller's contract.
        unsafe {
            if X::MIN < 0 {
                V::load_i8(p as *const i8)
            } else {
                V::load_u8(p)
            }
        }
    }

    /// The block's channels of one output pixel from their sums.
    ///
    /// # Safety
    /// The CPU runs `V`; `p` points to `V::N` writable elements of `Y`.
    #[inline(always)]
    unsafe fn store<Y: Quantized>(&self, acc: V, p: *mut u8) {
        // SAFETY: the caller's contract.
        unsafe {
            if let Some(f) = &self.f {
                V::store_f(acc, f, p as *mut f32)
            } else if Y::MIN < 0 {
                V::store_q::<true>(acc, &self.q, p)
            } else {
                V::store_q::<false>(acc, &self.q, p)
            }
        }
    }

    /// Border pixel `(oy, ox)` into `dst`: the bias plus `(x - x_zp) * w`
    /// over the taps inside the input.
    ///
    /// # Safety
    /// The CPU runs `V`; `(oy, ox)` is an output pixel, `dst` its block of
    /// channels.
    #[inline(always)]
    unsafe fn border<X: Quantized, Y: Quantized>(&self, oy: usize, ox: usize, dst: *mut u8) {
        let s = self.s;
        let mut acc = self.bias;
        // SAFETY: the caller's contract; the taps read are inside the
        // input (checked), their pixel's block of channels.
        unsafe {
            for ky in 0..self.kh {
                let iy = oy * s.stride_h + ky;
                if iy < s.pad_top || iy - s.pad_top >= s.in_h {
                    continue;
                }
                for kx in 0..self.kw {
                    let ix = ox * s.stride_w + kx;
                    if ix < s.pad_left || ix - s.pad_left >= s.in_w {
                        continue;
                    }
                    let px = (iy - s.pad_top) * s.in_w + ix - s.pad_left;
                    let v = Self::load::<X>(self.x.add(px * s.in_c));
                    acc = V::add(acc, V::mul(V::sub(v, self.zx), self.tap(ky, kx)));
                }
            }
            self.store::<Y>(acc, dst);
        }
    }
}

/// Channels `c0..c0 + V::N` of every output pixel. `KH x KW` kernels
/// (weights in registers), or any kernel with `KH == 0` (weights reloaded
/// per tap).
///
/// # Safety
/// As [`body`], and `c0 + V::N <= c`.
#[inline(always)]
unsafe fn block<V: Lanes, X: Quantized, Y: Quantized, const KH: usize, const KW: usize>(
    s: &ConvShape,
    x: *const u8,
    w: &QWeights<'_>,
    zp: QZeroPoints,
    y: *mut u8,
    c0: usize,
    f: Option<&DynOut<'_>>,
) {
    let c = s.in_c;
    // Bytes per output element.
    let ysz = if f.is_some() { 4 } else { 1 };
    let (kh, kw) = if KH > 0 { (KH, KW) } else { (s.kernel_h, s.kernel_w) };
    // SAFETY: the caller's contract: channels c0..c0 + V::N of the
    // per-channel slices (length c) and of each tap's weights (`[kh][kw][c]`),
    // of each input and output pixel (pointers computed from in-range
    // pixel indices: interior pixels' taps are inside the input by
    // `interior`, border pixels' taps are checked); the CPU runs `V`.
    unsafe {
        let mut b = Block::<V, KH, KW> {
            s,
            x: x.add(c0),
            w: w.values.as_ptr().add(c0),
            wz: V::load_i32(w.zero_point.as_ptr().add(c0)),
            wv: [[V::splat(0); KW]; KH],
            kh,
            kw,
            zx: V::splat(zp.x),
            bias: V::load_i32(w.bias.as_ptr().add(c0)),
            q: Requant {
                m: V::load_f32(w.multiplier.as_ptr().add(c0)),
                lo: V::splat_f((Y::MIN - zp.y) as f32),
                hi: V::splat_f((Y::MAX - zp.y) as f32),
                zp: V::splat(zp.y),
            },
            f: f.map(|f| {
                let (mut m, mut bias) = ([0f32; 16], [0f32; 16]);
                for k in 0..V::N {
                    m[k] = f.x_scale * f.scale[c0 + k];
                    bias[k] = f.bias.map_or(0.0, |b| b[c0 + k]);
                }
                FloatOut {
                    m: V::load_f32(m.as_ptr()),
                    bias: V::load_f32(bias.as_ptr()),
                    lo: V::splat_f(f.min),
                    hi: V::splat_f(f.max),
                }
            }),
        };
        let mut wsum = V::splat(0);
        for ky in 0..kh {
            for kx in 0..kw {
                let t = b.weight(ky, kx);
                if KH > 0 {
                    b.wv[ky][kx] = t;
                }
                wsum = V::add(wsum, t);
            }
        }
        // Interior pixels: sum x * w plus the bias less x_zp * sum w.
        let bias_in = V::sub(b.bias, V::mul(b.zx, wsum));
        let (sh, sw) = (s.stride_h, s.stride_w);
        let row = s.in_w * c;
        let (oy0, oy1) = interior(s.out_h, s.in_h, kh, sh, s.pad_top);
        let (ox0, ox1) = interior(s.out_w, s.in_w, kw, sw, s.pad_left);
        for oy in 0..s.out_h {
            let yrow = y.add((oy * s.out_w * c + c0) * ysz);
            let (lo, hi) = if (oy0..oy1).contains(&oy) { (ox0, ox1) } else { (0, 0) };
            for ox in 0..lo {
                b.border::<X, Y>(oy, ox, yrow.add(ox * c * ysz));
            }
            if lo < hi {
                let mut px = b.x.add((oy * sh - s.pad_top) * row + (lo * sw - s.pad_left) * c);
                for ox in lo..hi {
                    let mut acc = bias_in;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let v = Block::<V, KH, KW>::load::<X>(px.add(ky * row + kx * c));
                            acc = V::add(acc, V::mul(v, b.tap(ky, kx)));
                        }
                    }
                    b.store::<Y>(acc, yrow.add(ox * c * ysz));
                    px = px.add(sw * c);
                }
            }
            for ox in hi..s.out_w {
                b.border::<X, Y>(oy, ox, yrow.add(ox * c * ysz));
            }
        }
    }
}
