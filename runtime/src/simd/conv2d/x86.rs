//! The direct route's AVX-512 and AVX2 instantiations, and its
//! pixels-in-lanes AVX-512 kernel for 8 output channels.

use super::direct::{direct_v, DirectRow};
use crate::simd::vec::x86::{Avx2, Avx512};
use crate::simd::vec::Vf32;
use core::arch::x86_64::*;

/// # Safety
/// The CPU has AVX-512F; `d` satisfies the direct conv2d contract.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn conv2d_direct_avx512(d: &DirectRow<'_>) {
    // SAFETY: forwarded.
    unsafe { direct_v::<Avx512, Avx2, 2, 8, 16, 8>(d) }
}

/// # Safety
/// The CPU has AVX2 and FMA; `d` satisfies the direct conv2d contract.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn conv2d_direct_avx2(d: &DirectRow<'_>) {
    // SAFETY: forwarded.
    unsafe { direct_v::<Avx2, Avx2, 2, 4, 8, 8>(d) }
}

/// Lane indices of one stage of [`transpose_8x16`]: the register pair
/// `(a, b)` (register bit 0 and 1) exchanges that bit with lane bit `q`.
/// `hi` selects the output holding the elements whose lane bit `q` was 1;
/// `last` also moves lane `c * 2 + p0` to `p0 * 8 + c` (the transpose's
/// final order).
const fn swap_lanes(q: u32, hi: bool, last: bool) -> [i32; 16] {
    let mut idx = [0i32; 16];
    let mut dst = 0;
    while dst < 16 {
        // The lane this output lane holds before the final reordering.
        let l = if last { (dst % 8) * 2 + dst / 8 } else { dst };
        let bit = 1 << q;
        idx[dst] = match (l & bit == 0, hi) {
            (true, false) => l as i32,
            (false, false) => 16 + (l & !bit) as i32,
            (true, true) => (l | bit) as i32,
            (false, true) => 16 + l as i32,
        };
        dst += 1;
    }
    idx
}

/// The stages of [`transpose_8x16`]: register bit `s` swaps with lane bit
/// `s + 1`, low and high outputs.
const TRANSPOSE_IDX: [[[i32; 16]; 2]; 3] = [
    [swap_lanes(1, false, false), swap_lanes(1, true, false)],
    [swap_lanes(2, false, false), swap_lanes(2, true, false)],
    [swap_lanes(3, false, true), swap_lanes(3, true, true)],
];

/// Channels-by-pixels to pixels-by-channels: `x[c]` lane `p` (8 channels
/// of 16 pixels) becomes `y[p / 2]` lane `(p % 2) * 8 + c`, i.e. `y` is the
/// 16 pixels' 8 channels in memory order. Three stages of 2-source
/// permutes, each exchanging one bit of the register index with one bit of
/// the lane index (24 `vpermt2ps`).
///
/// # Safety
/// The CPU has AVX-512F.
#[inline(always)]
unsafe fn transpose_8x16(x: [__m512; 8]) -> [__m512; 8] {
    // SAFETY: AVX-512F (the caller's contract); the index arrays are 16
    // `i32`s each.
    unsafe {
        let mut x = x;
        for (s, idx) in TRANSPOSE_IDX.iter().enumerate() {
            let lo = _mm512_loadu_si512(idx[0].as_ptr().cast());
            let hi = _mm512_loadu_si512(idx[1].as_ptr().cast());
            let bit = 1 << s;
            let mut y = x;
            for r in 0..8 {
                if r & bit == 0 {
                    y[r] = _mm512_permutex2var_ps(x[r], lo, x[r | bit]);
                    y[r | bit] = _mm512_permutex2var_ps(x[r], hi, x[r | bit]);
                }
            }
            x = y;
        }
        x
    }
}

/// The direct first-layer convolution for exactly 8 output channels on
/// AVX-512 (MobileNet v1 at width 0.25): pixels in the lanes instead of
/// channels, so the FMAs use all 16 lanes (the channel-vector tiles use
/// half a `zmm` or a `ymm` here). Per tap, each vector of 16 pixels' inputs
/// (for stride 2, the even elements of two loads, by one permute) times
/// each channel's broadcast weight; then bias and clamp per channel, a
/// transpose to pixel-major order and whole 2-pixel stores. Tiles of 32
/// pixels (16 accumulators), then one of 16 for the rest.
///
/// # Safety
/// `d` satisfies [`DirectRow`]'s contract with `out_c == 8`, planar rows,
/// no residual and no activation; the CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn conv2d_direct_px8_avx512(d: &DirectRow<'_>) {
    // SAFETY: forwarded.
    unsafe {
        if d.stride == 1 {
            px8_row::<1>(d)
        } else {
            px8_row::<2>(d)
        }
    }
}

/// [`conv2d_direct_px8_avx512`] for horizontal stride `S`.
///
/// # Safety
/// As [`conv2d_direct_px8_avx512`].
#[inline(always)]
unsafe fn px8_row<const S: usize>(d: &DirectRow<'_>) {
    let mut px = 0;
    // SAFETY: forwarded; `px < d.n`.
    unsafe {
        while d.n - px > 16 {
            px8_tile::<S, 2>(d, px);
            px += 32.min(d.n - px);
        }
        if px < d.n {
            px8_tile::<S, 1>(d, px);
        }
    }
}

/// Pixels `px..px + 16 * NV` of the chunk (those past `d.n` computed and
/// not stored; `NV == 2` only when `px + 16 < d.n`).
///
/// # Safety
/// As [`conv2d_direct_px8_avx512`]; `px < d.n`.
#[inline(always)]
unsafe fn px8_tile<const S: usize, const NV: usize>(d: &DirectRow<'_>, px: usize) {
    use super::direct::{DK, ROW_STRIDE, ROW_W};
    use crate::abi::pack::PANEL;
    const C: usize = 8;
    // SAFETY: (whole body) input reads: pixel vector `v` reads buffer
    // columns from `(px + 16 v) * S + kx` to `(px + 16 v) * S + kx + 16 S`
    // (two loads for S == 2), and its first pixel is below `d.n`, so the
    // last column is below `(d.n + 15) * S + DK`, inside the buffer
    // (`DirectRow`'s contract: `(n + PMAX - 1) * S + DK <= ROW_W`, PMAX
    // 16); weight reads: rows `0..9 c` of the first panel, columns 0..8;
    // stores: pixels below `d.n`, 8 floats each, inside the output.
    unsafe {
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        // `acc[v][c]`: channel `c` of pixel vector `v`.
        let mut acc = [[_mm512_setzero_ps(); C]; NV];
        for ky in 0..DK {
            for ci in 0..d.c {
                let r = d.rows.add(ky * ROW_STRIDE + ci * ROW_W);
                for kx in 0..DK {
                    let x: [__m512; NV] = core::array::from_fn(|v| {
                        let p = r.add((px + 16 * v) * S + kx);
                        if S == 1 {
                            _mm512_loadu_ps(p)
                        } else {
                            _mm512_permutex2var_ps(_mm512_loadu_ps(p), even, _mm512_loadu_ps(p.add(16)))
                        }
                    });
                    let wk = d.w.add(((ky * DK + kx) * d.c + ci) * PANEL);
                    for c in 0..C {
                        let w = _mm512_set1_ps(*wk.add(c));
                        for (accv, &xv) in acc.iter_mut().zip(&x) {
                            accv[c] = _mm512_fmadd_ps(xv, w, accv[c]);
                        }
                    }
                }
            }
        }
        // The epilogue per channel: its bias (if any) broadcast, the clamp.
        let ep = d.ep;
        let (lo, hi) = (Avx512::splat(ep.min), Avx512::splat(ep.max));
        for c in 0..C {
            for accv in acc.iter_mut() {
                let x = match ep.bias {
                    Some(b) => _mm512_add_ps(accv[c], _mm512_set1_ps(b[c])),
                    None => accv[c],
                };
                accv[c] = Avx512::clamp(Avx512(x), lo, hi).0;
            }
        }
        for (v, &accv) in acc.iter().enumerate() {
            let p0 = px + 16 * v;
            let y = transpose_8x16(accv);
            let o = d.out.add(d.o + p0 * C);
            for (j, &yj) in y.iter().enumerate() {
                let p = p0 + 2 * j;
                if p + 1 < d.n {
                    _mm512_storeu_ps(o.add(2 * j * C), yj);
                } else if p < d.n {
                    _mm512_mask_storeu_ps(o.add(2 * j * C), 0x00ff, yj);
                }
            }
        }
    }
}
