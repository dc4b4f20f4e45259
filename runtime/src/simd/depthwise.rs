//! Depthwise convolution, vectorized over channels.

#[cfg(target_arch = "aarch64")]
use super::neon;
use super::portable;
#[cfg(target_arch = "x86_64")]
use super::x86;
use super::Vf32;
use crate::isa;
use crate::kernels::{self, ConvShape, DepthwiseTiles};
use crate::{Activation, Epilogue};

/// Depthwise convolution: the contract of [`kernels::depthwise`](crate::kernels::depthwise)
/// (`weights` packed `[kernel_h][kernel_w][c]`).
///
/// # Panics
/// As [`kernels::depthwise`](crate::kernels::depthwise).
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
            isa::Isa::Avx512 => x86::depthwise_avx512(&d),
            #[cfg(target_arch = "x86_64")]
            isa::Isa::Avx2 => x86::depthwise_avx2(&d),
            #[cfg(target_arch = "aarch64")]
            isa::Isa::Neon => neon::depthwise_neon(&d),
            _ => depthwise_v::<portable::F32x4, portable::F32x4, 4>(&d),
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
