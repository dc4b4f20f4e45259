//! Vectorized kernels: what generated code calls.
//!
//! Each kernel here has the same contract as its portable reference in
//! [`crate::kernels`] (shapes, epilogue, NaN handling) except the weight
//! packing of [`pointwise`] and [`conv2d`], which is fixed to panels of
//! [`PANEL`] output channels, and the float rounding order (FMA, and another
//! summation order): results agree with the reference to float rounding, not
//! bit for bit.
//!
//! Every kernel runs on the instruction set [`crate::isa::active`] names:
//! AVX-512F or AVX2+FMA on x86-64 (chosen at run time by CPUID), NEON on
//! aarch64, and the portable path (4-lane arrays) anywhere. The body of each
//! kernel is written once, generic over a vector type ([`Vf32`]), and
//! instantiated per instruction set inside a `#[target_feature]` function so
//! that the intrinsics inline.
//!
//! # Register tiles
//!
//! | ISA | pointwise `MR x NR` | depthwise pixels x lanes |
//! |---|---|---|
//! | AVX-512 | 12 x 32 (2 panels) | 8 x 16 |
//! | AVX2 | 6 x 16 | 4 x 8 |
//! | NEON | 6 x 16 | 4 x 4 |
//! | portable | 2 x 16 | 4 x 4 |
//!
//! The cache tiles and loop order (`kc`, `order`, `rows`) come from the
//! compiler's schedule, as for the reference kernels.

use crate::isa::{self, Isa};
use crate::kernels::{
    self, check_epilogue, check_len, Conv2dTiles, ConvShape, DepthwiseTiles, PointwiseShape, PointwiseTiles, PwOrder,
};
use crate::{Activation, Epilogue, Layout, Pixel};

#[cfg(target_arch = "aarch64")]
mod neon;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Output channels per packed weight panel of [`pointwise`] and [`conv2d`].
pub const PANEL: usize = 16;

/// A vector of `f32` lanes. Every method is `unsafe`: the caller guarantees
/// the CPU supports the instruction set (checked once, at dispatch) and, for
/// loads and stores, that `N` elements are valid at the pointer.
pub(crate) trait Vf32: Copy {
    /// Lanes.
    const N: usize;
    /// All lanes zero.
    unsafe fn zero() -> Self;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// Loads `N` lanes (unaligned).
    unsafe fn load(p: *const f32) -> Self;
    /// Stores `N` lanes (unaligned).
    unsafe fn store(self, p: *mut f32);
    /// `a * b + c` (fused where the ISA has FMA).
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// `a + b`.
    unsafe fn add(a: Self, b: Self) -> Self;
    /// `clamp(v, lo, hi)` with the reference's semantics up to the sign of
    /// zero: `v < lo` gives `lo`, `v > hi` gives `hi`, NaN stays NaN.
    unsafe fn clamp(v: Self, lo: Self, hi: Self) -> Self;
}

// ---------------------------------------------------------------------------
// Public entry points.

/// Number of `f32` in the packed weights of [`pointwise`] (panels of [`PANEL`]).
pub const fn pointwise_packed_len(in_c: usize, out_c: usize) -> usize {
    kernels::pointwise_packed_len(in_c, out_c, PANEL)
}

/// Pointwise (1x1, stride 1) convolution / fully connected layer: the
/// contract of [`kernels::pointwise`] with `NR = PANEL` packing (`packed`
/// is `ceil(out_c / 16)` panels of `[in_c][16]`).
///
/// # Panics
/// If a slice length does not match `s`, or `tiles.kc` is 0.
#[inline]
pub fn pointwise(
    s: &PointwiseShape,
    tiles: &PointwiseTiles,
    input: &[f32],
    packed: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    const K: &str = "simd::pointwise";
    assert!(tiles.kc >= 1, "{K}: tiles.kc must be at least 1");
    check_len(K, "input", input.len(), s.pixels * s.in_c);
    check_len(K, "packed", packed.len(), pointwise_packed_len(s.in_c, s.out_c));
    check_len(K, "out", out.len(), s.pixels * s.out_c);
    check_epilogue(K, ep, s.out_c, out.len());
    let g = Gemm {
        m: s.pixels,
        k: s.in_c,
        n: s.out_c,
        a: input.as_ptr(),
        lda: s.in_c,
        b: packed.as_ptr(),
        ep,
        out: out.as_mut_ptr(),
    };
    let isa = isa::active_counted();
    // SAFETY: the lengths were checked above (`Gemm`'s contract) and `isa`
    // is supported by this CPU (`isa::active`).
    unsafe { gemm(isa, &g, tiles.kc, tiles.order) }
}

/// Depthwise convolution: the contract of [`kernels::depthwise`]
/// (`weights` packed `[kernel_h][kernel_w][c]`).
///
/// # Panics
/// As [`kernels::depthwise`].
#[inline]
pub fn depthwise(
    s: &ConvShape,
    tiles: &DepthwiseTiles,
    input: &[f32],
    weights: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    let d = Dw {
        cx: kernels::DwCx::new("simd::depthwise", s, tiles, input, weights, ep, out.len()),
        rows: tiles.rows,
        out: out.as_mut_ptr(),
    };
    let isa = isa::active_counted();
    // SAFETY: lengths checked above (`Dw`'s contract); `isa` is supported.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::depthwise_avx512(&d),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::depthwise_avx2(&d),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::depthwise_neon(&d),
            _ => depthwise_v::<portable::F32x4, portable::F32x4, 4>(&d),
        }
    }
}

/// Number of `f32` in the packed weights of [`conv2d`].
pub const fn conv2d_packed_len(s: &ConvShape) -> usize {
    pointwise_packed_len(s.kernel_h * s.kernel_w * s.in_c, s.out_c)
}

/// Stack buffer of [`conv2d`]'s gathered input patches, in floats.
const PATCH: usize = 4096;

/// Full convolution (groups = 1), any geometry: gathers the input windows of
/// a block of output pixels (im2col, with `pad_value` outside the input,
/// any [`Layout`], `u8` or `f32`) into a stack buffer and multiplies them
/// with the packed weights by the [`pointwise`] micro-kernel.
///
/// * `weights`: the `[kernel_h * kernel_w * in_c][out_c]` matrix (row
///   `(ky * kernel_w + kx) * in_c + ci`) packed in panels of [`PANEL`]
///   output channels like [`pointwise`]'s; length [`conv2d_packed_len`].
/// * Other arguments as [`kernels::conv2d`]. `tiles.rows` is not used (the
///   pixel block is sized by the buffer).
///
/// # Panics
/// If a slice length does not match `s`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn conv2d<T: Pixel>(
    s: &ConvShape,
    tiles: &Conv2dTiles,
    layout: Layout,
    input: &[T],
    pad_value: &[f32],
    weights: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    const K: &str = "simd::conv2d";
    let _ = tiles;
    check_len(K, "input", input.len(), s.in_len());
    check_len(K, "pad_value", pad_value.len(), s.in_c);
    check_len(K, "weights", weights.len(), conv2d_packed_len(s));
    check_len(K, "out", out.len(), s.out_len());
    check_epilogue(K, ep, s.out_c, out.len());
    let isa = isa::active_counted();
    let kk = s.kernel_h * s.kernel_w * s.in_c;
    let pixels = s.out_h * s.out_w;
    // K-blocks of at most PATCH / 8 (so a block of 8 pixels fits), then as
    // many pixels as fit the buffer.
    let kb_max = kk.clamp(1, PATCH / 8);
    let mut patch = [0.0f32; PATCH];
    let mut k0 = 0;
    loop {
        let kb = kb_max.min(kk - k0);
        let bp = (PATCH / kb.max(1)).min(pixels.max(1));
        let mut p0 = 0;
        while p0 < pixels {
            let np = bp.min(pixels - p0);
            gather(s, layout, input, pad_value, p0, np, k0, kb, &mut patch);
            let block_ep = Epilogue {
                residual: ep.residual.map(|r| &r[p0 * s.out_c..]),
                ..*ep
            };
            let g = Gemm {
                m: np,
                k: kb,
                n: s.out_c,
                a: patch.as_ptr(),
                lda: kb,
                // SAFETY: k0 <= kk, so the offset is within the first panel.
                b: unsafe { weights.as_ptr().add(k0 * PANEL) },
                ep: &block_ep,
                // SAFETY: p0 < pixels, so the offset is within `out`.
                out: unsafe { out.as_mut_ptr().add(p0 * s.out_c) },
            };
            // SAFETY: `patch` holds `np * kb <= PATCH` gathered values;
            // `b` is at row k0 of panels of `kk` rows (`Gemm::ldb = kk`);
            // `out` and the residual are offset to pixel p0 with `np` rows
            // left; `isa` is supported.
            unsafe { gemm_dispatch(isa, &g, kk, PwOrder::PixelsOuter, k0 == 0, k0 + kb == kk) };
            p0 += np;
        }
        k0 += kb;
        if k0 >= kk {
            break;
        }
    }
}

/// Writes the im2col rows of output pixels `p0..p0 + np`, columns
/// `k0..k0 + kb`, to `patch[r * kb + j]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gather<T: Pixel>(
    s: &ConvShape,
    layout: Layout,
    input: &[T],
    pad: &[f32],
    p0: usize,
    np: usize,
    k0: usize,
    kb: usize,
    patch: &mut [f32],
) {
    let c = s.in_c;
    let plane = s.in_h * s.in_w;
    if k0 == 0 && kb == s.kernel_h * s.kernel_w * c {
        // Whole windows: per tap, one bounds test and a run of channels.
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
        return;
    }
    for r in 0..np {
        let p = p0 + r;
        let (oy, ox) = (p / s.out_w, p % s.out_w);
        let row = &mut patch[r * kb..(r + 1) * kb];
        // Walk taps (ky, kx) and channels ci from k0.
        let (mut tap, mut ci) = (k0 / c, k0 % c);
        for v in row.iter_mut() {
            let (ky, kx) = (tap / s.kernel_w, tap % s.kernel_w);
            let iy = (oy * s.stride_h + ky).wrapping_sub(s.pad_top);
            let ix = (ox * s.stride_w + kx).wrapping_sub(s.pad_left);
            *v = if iy < s.in_h && ix < s.in_w {
                match layout {
                    Layout::Nhwc => input[(iy * s.in_w + ix) * c + ci].to_f32(),
                    Layout::Nchw => input[ci * plane + iy * s.in_w + ix].to_f32(),
                }
            } else {
                pad[ci]
            };
            ci += 1;
            if ci == c {
                ci = 0;
                tap += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// GEMM: C[m x n] (+)= A[m x k] * B[k x n], B packed in panels of 16 columns.

/// A validated matrix product. Contract (checked by the public entry point):
/// `a` has `m` rows of `lda >= k` floats with `k` used; `b` points at row 0
/// of `ceil(n / 16)` panels, panel `p` row `i` at `b + (p * ldb + i) * 16`
/// where `ldb` is passed to [`gemm_dispatch`] (`k` for [`gemm`]); `out` has `m`
/// rows of `n` floats; `ep`'s bias has `n` floats and its residual (if any)
/// starts at row 0 of `out` with the same layout.
#[derive(Clone, Copy)]
pub(crate) struct Gemm<'a> {
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ep: &'a Epilogue<'a>,
    out: *mut f32,
}

/// [`gemm_dispatch`] over all of `k` in blocks of `kc`.
///
/// # Safety
/// `g` satisfies [`Gemm`]'s contract with `ldb = g.k`; `isa` is supported.
unsafe fn gemm(isa: Isa, g: &Gemm<'_>, kc: usize, order: PwOrder) {
    let mut k0 = 0;
    loop {
        let kb = kc.min(g.k - k0);
        let blk = Gemm {
            k: kb,
            // SAFETY: k0 <= k, within each row of `a` and each panel.
            a: unsafe { g.a.add(k0) },
            // SAFETY: as above.
            b: unsafe { g.b.add(k0 * PANEL) },
            ..*g
        };
        // SAFETY: the block is the sub-product over k0..k0 + kb.
        unsafe { gemm_dispatch(isa, &blk, g.k, order, k0 == 0, k0 + kb == g.k) };
        k0 += kb;
        if k0 >= g.k {
            break;
        }
    }
}

/// Arguments of one K-block of the GEMM loop nest.
#[derive(Clone, Copy)]
pub(crate) struct Block<'a> {
    g: Gemm<'a>,
    /// Rows between panels of `b`.
    ldb: usize,
    order: PwOrder,
    /// First K-block: start from zero (else from the partial sums in `out`).
    first: bool,
    /// Last K-block: apply the epilogue (else store partial sums).
    last: bool,
}

/// # Safety
/// As [`gemm`]; `isa` is supported by this CPU.
unsafe fn gemm_dispatch(isa: Isa, g: &Gemm<'_>, ldb: usize, order: PwOrder, first: bool, last: bool) {
    let b = Block {
        g: *g,
        ldb,
        order,
        first,
        last,
    };
    // SAFETY: forwarded contract; the target-feature functions are only
    // called when `isa` says the CPU has the feature.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::gemm_avx512(&b),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::gemm_avx2(&b),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::gemm_neon(&b),
            _ => gemm_v::<portable::F32x4, 2, 2, 2, 4, 4>(&b),
        }
    }
}

/// The loop nest over register tiles of `MR` rows by `NV` vectors
/// (`NV * V::N` columns, a multiple of [`PANEL`]); `NV1 = PANEL / V::N`
/// vectors cover one panel (for the last, narrower tile). The last row
/// tile, when shorter, runs a tile of `MR2` or `MR3` rows (`MR > MR2 > MR3`)
/// if it fits, so few rows are computed for nothing; a single row (`m == 1`,
/// dense layers) uses one-row tiles.
///
/// # Safety
/// As [`gemm`]; the CPU supports `V`'s instruction set.
#[inline(always)]
pub(crate) unsafe fn gemm_v<
    V: Vf32,
    const MR: usize,
    const MR2: usize,
    const MR3: usize,
    const NV: usize,
    const NV1: usize,
>(
    b: &Block<'_>,
) {
    debug_assert!((NV * V::N).is_multiple_of(PANEL) && NV1 * V::N == PANEL);
    let g = &b.g;
    let tile_cols = NV * V::N;
    let tiles_n = g.n.div_ceil(tile_cols);
    let rows = if g.m == 1 { 1 } else { MR };
    let tiles_m = g.m.div_ceil(rows);
    // SAFETY: every tile lies within the matrices of `g`'s contract.
    unsafe {
        match b.order {
            PwOrder::PixelsOuter => {
                for i in 0..tiles_m {
                    for j in 0..tiles_n {
                        tile::<V, MR, MR2, MR3, NV, NV1>(b, i * rows, j * tile_cols);
                    }
                }
            }
            PwOrder::ChannelsOuter => {
                for j in 0..tiles_n {
                    for i in 0..tiles_m {
                        tile::<V, MR, MR2, MR3, NV, NV1>(b, i * rows, j * tile_cols);
                    }
                }
            }
        }
    }
}

/// The register tile at row `i0`, column `c0` (a function, not a closure:
/// closures do not inherit `#[target_feature]`).
///
/// # Safety
/// As [`gemm_v`]; `i0 < m`, `c0 < n`.
#[inline(always)]
unsafe fn tile<V: Vf32, const MR: usize, const MR2: usize, const MR3: usize, const NV: usize, const NV1: usize>(
    b: &Block<'_>,
    i0: usize,
    c0: usize,
) {
    let g = &b.g;
    let mr = MR.min(g.m - i0);
    let n = (NV * V::N).min(g.n - c0);
    let wide = n > NV1 * V::N || NV == NV1;
    // SAFETY: forwarded; each call gets `mr` no larger than its row count.
    unsafe {
        match (mr, wide) {
            (1, true) => micro::<V, 1, NV>(b, i0, 1, c0, n),
            (1, false) => micro::<V, 1, NV1>(b, i0, 1, c0, n),
            (r, true) if r <= MR3 => micro::<V, MR3, NV>(b, i0, r, c0, n),
            (r, false) if r <= MR3 => micro::<V, MR3, NV1>(b, i0, r, c0, n),
            (r, true) if r <= MR2 => micro::<V, MR2, NV>(b, i0, r, c0, n),
            (r, false) if r <= MR2 => micro::<V, MR2, NV1>(b, i0, r, c0, n),
            (r, true) => micro::<V, MR, NV>(b, i0, r, c0, n),
            (r, false) => micro::<V, MR, NV1>(b, i0, r, c0, n),
        }
    }
}

/// The micro-kernel: rows `i0..i0 + mr` (`mr <= MR`; missing rows repeat
/// the last one and are not stored), columns `c0..c0 + n` (`n <= NV * N`,
/// padding columns computed from the zero-padded panels and not stored).
///
/// # Safety
/// As [`gemm`]; the tile lies within the matrices.
#[inline(always)]
unsafe fn micro<V: Vf32, const MR: usize, const NV: usize>(b: &Block<'_>, i0: usize, mr: usize, c0: usize, n: usize) {
    let g = &b.g;
    let cols = NV * V::N;
    // SAFETY: (whole body) pointers stay within the rows `i0..i0 + mr` of
    // `a`/`out`/residual, the panels covering `c0..c0 + cols` (which exist:
    // panels are padded to 16 columns and `cols` is a whole number of
    // panels past `c0`, or `n <= 16` fits one panel), and columns
    // `c0..c0 + n` of `out` and the bias; full-width vector accesses to
    // `out`/bias/residual happen only when `n == cols`.
    unsafe {
        let a: [*const f32; MR] = core::array::from_fn(|r| g.a.add((i0 + r.min(mr - 1)) * g.lda));
        let w: [*const f32; NV] = core::array::from_fn(|v| {
            let col = c0 + v * V::N;
            let panel = (col / PANEL).min((g.n - 1) / PANEL);
            g.b.add(panel * b.ldb * PANEL + col % PANEL)
        });
        let mut acc = [[V::zero(); NV]; MR];
        let full = n == cols;
        if !b.first {
            for (r, row) in acc.iter_mut().enumerate().take(mr) {
                let o = g.out.add((i0 + r) * g.n + c0);
                if full {
                    for (v, x) in row.iter_mut().enumerate() {
                        *x = V::load(o.add(v * V::N));
                    }
                } else {
                    let mut tmp = [0.0f32; 64];
                    core::ptr::copy_nonoverlapping(o, tmp.as_mut_ptr(), n);
                    for (v, x) in row.iter_mut().enumerate() {
                        *x = V::load(tmp.as_ptr().add(v * V::N));
                    }
                }
            }
        }
        for k in 0..g.k {
            let wk: [V; NV] = core::array::from_fn(|v| V::load(w[v].add(k * PANEL)));
            for r in 0..MR {
                let x = V::splat(*a[r].add(k));
                for v in 0..NV {
                    acc[r][v] = V::fma(x, wk[v], acc[r][v]);
                }
            }
        }
        for (r, row) in acc.iter().enumerate().take(mr) {
            let oi = (i0 + r) * g.n + c0;
            let o = g.out.add(oi);
            if full && b.last {
                let lo = V::splat(g.ep.min);
                let hi = V::splat(g.ep.max);
                for (v, &x) in row.iter().enumerate() {
                    let mut x = x;
                    if let Some(bias) = g.ep.bias {
                        x = V::add(x, V::load(bias.as_ptr().add(c0 + v * V::N)));
                    }
                    if let Some(res) = g.ep.residual {
                        x = V::add(x, V::load(res.as_ptr().add(oi + v * V::N)));
                    }
                    V::clamp(x, lo, hi).store(o.add(v * V::N));
                }
                if g.ep.act != Activation::None {
                    kernels::activate(g.ep.act, core::slice::from_raw_parts_mut(o, n));
                }
            } else if full {
                for (v, &x) in row.iter().enumerate() {
                    x.store(o.add(v * V::N));
                }
            } else {
                let mut tmp = [0.0f32; 64];
                for (v, &x) in row.iter().enumerate() {
                    x.store(tmp.as_mut_ptr().add(v * V::N));
                }
                if b.last {
                    // The reference epilogue on the partial row (`out` is
                    // addressed from its start for the residual's index).
                    let out = core::slice::from_raw_parts_mut(o, n);
                    kernels::store_at(g.ep, &tmp[..n], c0, oi, out);
                } else {
                    core::ptr::copy_nonoverlapping(tmp.as_ptr(), o, n);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Depthwise.

/// A validated depthwise call: the reference kernel's context (shape,
/// slices, interior ranges) and the output, which `s` sizes.
pub(crate) struct Dw<'a> {
    cx: kernels::DwCx<'a>,
    rows: usize,
    out: *mut f32,
}

/// Depthwise over all channels: full vectors of `V::N` channels, then of
/// `V2::N` (`<= V::N`), the remaining channels by the reference kernel's
/// block function.
/// `PX` output pixels per interior step.
///
/// # Safety
/// `d` satisfies [`Dw`]'s contract; the CPU supports `V`'s instruction set.
#[inline(always)]
pub(crate) unsafe fn depthwise_v<V: Vf32, V2: Vf32, const PX: usize>(d: &Dw<'_>) {
    let s = &d.cx.s;
    let c = s.in_c;
    let full = c - c % V::N;
    // Then half-width vectors (e.g. 8 channels of ymm on AVX-512), which
    // small models (8, 24, 40 channels) need.
    let full2 = full + (c - full) / V2::N * V2::N;
    let mut oy0 = 0;
    while oy0 < s.out_h {
        let oy1 = oy0 + d.rows.min(s.out_h - oy0);
        let mut c0 = 0;
        while c0 < full {
            // SAFETY: c0 + N <= c.
            unsafe { dw_channels::<V, PX>(d, oy0, oy1, c0) };
            c0 += V::N;
        }
        while c0 < full2 {
            // SAFETY: c0 + N2 <= c.
            unsafe { dw_channels::<V2, PX>(d, oy0, oy1, c0) };
            c0 += V2::N;
        }
        let full = full2;
        if full < c {
            // SAFETY: `out` has `out_len` elements (checked by `DwCx::new`)
            // and no other reference to it is live here.
            let out = unsafe { core::slice::from_raw_parts_mut(d.out, s.out_len()) };
            kernels::depthwise_block::<16>(&d.cx, oy0, oy1, full, c - full, out);
        }
        oy0 = oy1;
    }
}

/// Output rows `oy0..oy1`, channels `c0..c0 + N`: the kernel-size and
/// stride specializations, else every pixel through [`dw_border`].
///
/// # Safety
/// As [`depthwise_v`]; `c0 + N <= c`.
#[inline(always)]
unsafe fn dw_channels<V: Vf32, const PX: usize>(d: &Dw<'_>, oy0: usize, oy1: usize, c0: usize) {
    let s = &d.cx.s;
    // SAFETY: forwarded.
    unsafe {
        match (s.kernel_h, s.kernel_w, s.stride_w) {
            (3, 3, 1) => dw_rows::<V, 3, 3, 1, PX>(d, oy0, oy1, c0),
            (3, 3, 2) => dw_rows::<V, 3, 3, 2, PX>(d, oy0, oy1, c0),
            (5, 5, 1) => dw_rows::<V, 5, 5, 1, PX>(d, oy0, oy1, c0),
            (5, 5, 2) => dw_rows::<V, 5, 5, 2, PX>(d, oy0, oy1, c0),
            _ => {
                for oy in oy0..oy1 {
                    for ox in 0..s.out_w {
                        dw_border::<V>(d, oy, ox, c0);
                    }
                }
            }
        }
    }
}

/// Output rows `oy0..oy1`, channels `c0..c0 + N`, for a `KH x KW` kernel
/// of horizontal stride `SW`: the weights stay in registers across the
/// rows; interior pixels run `PX` at a time with no bounds tests (with `SW`
/// a constant, the input vectors shared by neighbouring pixels' windows are
/// loaded once).
///
/// # Safety
/// As [`depthwise_v`]; `c0 + N <= c`; `SW == s.stride_w`.
#[inline(always)]
unsafe fn dw_rows<V: Vf32, const KH: usize, const KW: usize, const SW: usize, const PX: usize>(
    d: &Dw<'_>,
    oy0: usize,
    oy1: usize,
    c0: usize,
) {
    let s = &d.cx.s;
    let c = s.in_c;
    let (x_lo, x_hi) = d.cx.x_in;
    // SAFETY: (whole body) interior columns' windows lie inside the input
    // columns (what `x_in` means), only window rows inside the input are
    // read (`valid`), channels c0..c0 + N exist, and output pixels are
    // < out_h * out_w.
    unsafe {
        let wts: [[V; KW]; KH] = core::array::from_fn(|ky| {
            core::array::from_fn(|kx| V::load(d.cx.weights.as_ptr().add((ky * KW + kx) * c + c0)))
        });
        for oy in oy0..oy1 {
            // Window rows inside the input (all of them in the interior
            // rows; the others skip the padding rows, not the pixels).
            let iy0 = (oy * s.stride_h) as isize - s.pad_top as isize;
            let valid: [bool; KH] = core::array::from_fn(|ky| {
                let iy = iy0 + ky as isize;
                iy >= 0 && (iy as usize) < s.in_h
            });
            let rows: [*const f32; KH] = core::array::from_fn(|ky| {
                if valid[ky] {
                    d.cx.input
                        .as_ptr()
                        .add(((iy0 + ky as isize) as usize * s.in_w) * c + c0)
                } else {
                    d.cx.input.as_ptr()
                }
            });
            for ox in 0..x_lo {
                dw_border::<V>(d, oy, ox, c0);
            }
            if x_hi - x_lo >= PX {
                let mut ox = x_lo;
                while ox + PX <= x_hi {
                    dw_block::<V, KH, KW, SW, PX>(d, &wts, &valid, &rows, oy, ox, c0);
                    ox += PX;
                }
                if ox < x_hi {
                    // The last block overlaps the previous one: those
                    // pixels are recomputed, with the same result.
                    dw_block::<V, KH, KW, SW, PX>(d, &wts, &valid, &rows, oy, x_hi - PX, c0);
                }
            } else {
                for ox in x_lo..x_hi {
                    let ix0 = (ox * SW - s.pad_left) * c;
                    let mut acc = [V::zero(); KH];
                    for ky in 0..KH {
                        if !valid[ky] {
                            continue;
                        }
                        let row = rows[ky].add(ix0);
                        for (kx, &w) in wts[ky].iter().enumerate() {
                            acc[ky] = V::fma(V::load(row.add(kx * c)), w, acc[ky]);
                        }
                    }
                    let mut a = acc[0];
                    for &x in &acc[1..] {
                        a = V::add(a, x);
                    }
                    dw_store::<V>(d, (oy * s.out_w + ox) * c + c0, c0, a);
                }
            }
            for ox in x_hi.max(x_lo)..s.out_w {
                dw_border::<V>(d, oy, ox, c0);
            }
        }
    }
}

/// `PX` interior output pixels from column `ox` of row `oy` (a function,
/// not a closure: closures do not inherit `#[target_feature]`).
///
/// # Safety
/// As [`dw_rows`]; `rows[ky]` points at channel `c0` of input row
/// `oy * stride_h - pad_top + ky` where `valid[ky]`; `ox..ox + PX` are
/// interior columns.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn dw_block<V: Vf32, const KH: usize, const KW: usize, const SW: usize, const PX: usize>(
    d: &Dw<'_>,
    wts: &[[V; KW]; KH],
    valid: &[bool; KH],
    rows: &[*const f32; KH],
    oy: usize,
    ox: usize,
    c0: usize,
) {
    let s = &d.cx.s;
    let c = s.in_c;
    // SAFETY: the caller's bounds.
    unsafe {
        let ix0 = (ox * SW - s.pad_left) * c;
        let mut acc = [V::zero(); PX];
        for ky in 0..KH {
            if !valid[ky] {
                continue;
            }
            let row = rows[ky].add(ix0);
            for (kx, &w) in wts[ky].iter().enumerate() {
                for (p, a) in acc.iter_mut().enumerate() {
                    *a = V::fma(V::load(row.add((p * SW + kx) * c)), w, *a);
                }
            }
        }
        for (p, &a) in acc.iter().enumerate() {
            dw_store::<V>(d, (oy * s.out_w + ox + p) * c + c0, c0, a);
        }
    }
}

/// One output pixel, channels `c0..c0 + N`, testing every tap's bounds.
///
/// # Safety
/// As [`dw_rows`].
#[inline(always)]
unsafe fn dw_border<V: Vf32>(d: &Dw<'_>, oy: usize, ox: usize, c0: usize) {
    let s = &d.cx.s;
    let c = s.in_c;
    // SAFETY: taps are bounds-tested; c0 + N <= c.
    unsafe {
        let mut a = V::zero();
        for ky in 0..s.kernel_h {
            let iy = (oy * s.stride_h + ky).wrapping_sub(s.pad_top);
            if iy >= s.in_h {
                continue;
            }
            for kx in 0..s.kernel_w {
                let ix = (ox * s.stride_w + kx).wrapping_sub(s.pad_left);
                if ix >= s.in_w {
                    continue;
                }
                let x = V::load(d.cx.input.as_ptr().add((iy * s.in_w + ix) * c + c0));
                let w = V::load(d.cx.weights.as_ptr().add((ky * s.kernel_w + kx) * c + c0));
                a = V::fma(x, w, a);
            }
        }
        dw_store::<V>(d, (oy * s.out_w + ox) * c + c0, c0, a);
    }
}

/// The epilogue of one depthwise output vector at flat index `o`.
///
/// # Safety
/// `o + N <= out_len`, `c0 + N <= c`.
#[inline(always)]
unsafe fn dw_store<V: Vf32>(d: &Dw<'_>, o: usize, c0: usize, a: V) {
    let ep = d.cx.ep;
    // SAFETY: the caller's bounds.
    unsafe {
        let mut x = a;
        if let Some(bias) = ep.bias {
            x = V::add(x, V::load(bias.as_ptr().add(c0)));
        }
        if let Some(res) = ep.residual {
            x = V::add(x, V::load(res.as_ptr().add(o)));
        }
        V::clamp(x, V::splat(ep.min), V::splat(ep.max)).store(d.out.add(o));
        if ep.act != Activation::None {
            kernels::activate(ep.act, core::slice::from_raw_parts_mut(d.out.add(o), V::N));
        }
    }
}
