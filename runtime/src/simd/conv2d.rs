//! Full convolution (the first layer): im2col into a stack buffer, then
//! the GEMM micro-kernel.

use super::gemm::{gemm_dispatch, pointwise_packed_len, Gemm};
use super::PANEL;
use crate::isa;
use crate::kernels::{check_epilogue, check_len, Conv2dTiles, ConvShape, PwOrder};
use crate::{Epilogue, Layout, Pixel};

/// Number of `f32` in the packed weights of [`conv2d`].
pub const fn conv2d_packed_len(s: &ConvShape) -> usize {
    pointwise_packed_len(s.kernel_h * s.kernel_w * s.in_c, s.out_c)
}

/// Stack buffer of [`conv2d`]'s gathered input patches, in floats.
const PATCH: usize = 4096;

/// Full convolution (groups = 1), any geometry: gathers the input windows of
/// a block of output pixels (im2col, with `pad_value` outside the input,
/// any [`Layout`], `u8` or `f32`) into a stack buffer and multiplies them
/// with the packed weights by the [`pointwise`](super::pointwise) micro-kernel.
///
/// * `weights`: the `[kernel_h * kernel_w * in_c][out_c]` matrix (row
///   `(ky * kernel_w + kx) * in_c + ci`) packed in panels of [`PANEL`]
///   output channels like [`pointwise`](super::pointwise)'s; length [`conv2d_packed_len`].
/// * Other arguments as [`kernels::conv2d`](crate::kernels::conv2d). `tiles.rows` is not used (the
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
