//! Full convolution (the first layer). Two routes:
//!
//! * direct (AVX-512, AVX2, NEON; 3x3 kernels, horizontal stride 1 or 2,
//!   1 to 4 input channels: every MobileNet's first layer): per output row,
//!   the 3 input rows are copied once into a stack buffer as `f32` with the
//!   padding in place, then each register tile of pixels x output channels
//!   accumulates the 9 * `in_c` taps by broadcast-FMA at constant offsets,
//!   with a vector epilogue (half-width vectors for 8 leftover channels on
//!   AVX-512). On AVX-512, exactly 8 output channels (v1 0.25) put pixels
//!   in the lanes instead, 16 per register, the stride-2 inputs picked by
//!   `vpermt2ps`, then an 8x16 transpose in three permute stages before
//!   the stores (`x86::conv2d_direct_px8_avx512`);
//! * im2col (everything else, and the portable path, which keeps the
//!   Cortex-M code small): the windows of a block of output pixels gathered
//!   into a stack buffer, then the GEMM micro-kernel.

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod direct;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod rows;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::gemm::{gemm_dispatch, Gemm};
use crate::abi::pack::conv2d_packed_len;
use crate::abi::pack::PANEL;
use crate::abi::{Conv2d, ConvShape, PwOrder};
use crate::checks::{check_epilogue, check_len};
use crate::isa::{self, Isa};
use crate::simd::Kernel;
use crate::{Epilogue, Layout, Pixel};

/// Stack buffer of [`conv2d`]'s gathered input patches, in floats.
const PATCH: usize = 4096;

/// The `conv2d` kernels, one per instruction set: the direct route (3x3
/// first layers, [`crate::abi::conv2d_direct`]) where a vector instruction
/// set has it, im2col through the GEMM body elsewhere (and for the other
/// shapes everywhere). The tests and `bench/kernels` iterate this table.
pub const KERNELS: &[Kernel] = &[
    Kernel::new("conv2d_direct__avx512", Isa::Avx512),
    Kernel::new("conv2d_direct__avx2", Isa::Avx2),
    Kernel::new("conv2d_direct__neon", Isa::Neon),
    Kernel::new("conv2d_im2col_2x16__portable", Isa::Portable),
];

/// Full convolution (groups = 1), any geometry, any [`Layout`], `u8` or
/// `f32` input, `pad_value` outside the input. 3x3 kernels with horizontal
/// stride 1 or 2 and 1 to 4 input channels (first layers) run directly on
/// AVX-512, AVX2 and NEON: the input rows of each output row are copied
/// once into a 15 KiB stack buffer and register tiles of pixels x output
/// channels accumulate their taps. Other shapes, and the portable path,
/// gather the input windows of a block of output pixels (im2col) into a
/// 16 KiB stack buffer and multiply them with the packed weights by the
/// [`pointwise`](super::pointwise) micro-kernel.
///
/// * `weights`: the `[kernel_h * kernel_w * in_c][out_c]` matrix (row
///   `(ky * kernel_w + kx) * in_c + ci`) packed in panels of [`PANEL`]
///   output channels like [`pointwise`](super::pointwise)'s; length
///   [`conv2d_packed_len`].
/// * Other arguments as [`reference::conv2d`](crate::reference::conv2d) (no
///   cache tiles: the pixel block is sized by the buffer).
///
/// # Panics
/// If a slice length does not match `c`.
#[inline]
pub fn conv2d<T: Pixel>(c: &Conv2d<'_>, input: &[T], weights: &[f32], ep: &Epilogue<'_>, out: &mut [f32]) {
    const K: &str = "simd::conv2d";
    let s = &c.shape;
    check_args(K, c, input, weights, ep, s.out_len(), out.len());
    let isa = isa::active_counted();
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if direct_applies(isa, s) {
        rows::run(isa, c, input, weights, ep, 0..s.out_h, out);
        return;
    }
    conv2d_im2col(isa, c, input, weights, ep, out);
}

/// The slice lengths of a [`conv2d`] call of `c` whose output has
/// `want_out` floats (`out` is their number), as `K`'s panics.
fn check_args<T>(
    k: &str,
    c: &Conv2d<'_>,
    input: &[T],
    weights: &[f32],
    ep: &Epilogue<'_>,
    want_out: usize,
    out: usize,
) {
    let s = &c.shape;
    check_len(k, "input", input.len(), s.in_len());
    check_len(k, "pad_value", c.pad_value.len(), s.in_c);
    check_len(k, "weights", weights.len(), conv2d_packed_len(s));
    check_len(k, "out", out, want_out);
    check_epilogue(k, ep, s.out_c, out);
}

/// Whether [`conv2d_rows`] computes `s` on this CPU (the direct route).
pub(crate) fn conv2d_rows_applies(s: &ConvShape) -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    return direct_applies(isa::active_vector(), s);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return {
        let _ = s;
        false
    };
}

/// Output rows `rows` of [`conv2d`] on the whole input, into `out` (those
/// rows only; `ep.residual`, if any, holds those rows only), on the direct
/// route ([`conv2d_rows_applies`]). The parallel mode's split for inputs
/// whose row windows are not one slice (NCHW): each row is computed exactly
/// as by [`conv2d`].
///
/// # Panics
/// If a slice length does not match `s` and `rows`, `rows` is not inside
/// `0..s.out_h`, or the direct route does not apply.
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(unused_variables))]
pub(crate) fn conv2d_rows<T: Pixel>(
    c: &Conv2d<'_>,
    input: &[T],
    weights: &[f32],
    ep: &Epilogue<'_>,
    rows: core::ops::Range<usize>,
    out: &mut [f32],
) {
    const K: &str = "simd::conv2d_rows";
    let s = &c.shape;
    assert!(
        rows.start <= rows.end && rows.end <= s.out_h,
        "{K}: rows {rows:?} outside 0..{}",
        s.out_h
    );
    check_args(K, c, input, weights, ep, rows.len() * s.out_w * s.out_c, out.len());
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let isa = isa::active_counted();
        if direct_applies(isa, s) {
            rows::run(isa, c, input, weights, ep, rows, out);
            return;
        }
    }
    panic!("{K}: only the direct route computes row ranges (conv2d_rows_applies)");
}

/// The im2col route of [`conv2d`] (arguments validated).
#[inline(never)]
fn conv2d_im2col<T: Pixel>(isa: Isa, c: &Conv2d<'_>, input: &[T], weights: &[f32], ep: &Epilogue<'_>, out: &mut [f32]) {
    let s = &c.shape;
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
            gather(c, input, p0, np, k0, kb, &mut patch);
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
#[inline(always)]
fn gather<T: Pixel>(cv: &Conv2d<'_>, input: &[T], p0: usize, np: usize, k0: usize, kb: usize, patch: &mut [f32]) {
    let (s, layout, pad) = (&cv.shape, cv.layout, cv.pad_value);
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
// Direct route.

/// Kernel height and width of the direct route.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) const DK: usize = 3;

/// Whether [`conv2d`] takes the direct route on `isa` for `s`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn direct_applies(isa: Isa, s: &ConvShape) -> bool {
    isa != Isa::Portable && crate::abi::conv2d_direct(s)
}
