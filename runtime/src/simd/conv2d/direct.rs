//! The direct route of `conv2d` (3x3 first layers): a row buffer, the
//! register-tile body written once over [`Vf32`], and the row loop.

pub(crate) use super::DK;
use crate::abi::pack::PANEL;
use crate::simd::epilogue::{store_lanes, VecEpilogue};
use crate::simd::vec::Vf32;
use crate::{Activation, Epilogue};

/// Input columns per channel in the row buffer.
pub(crate) const ROW_W: usize = 320;
/// Floats per buffered input row (up to 4 channels of `ROW_W` columns).
pub(crate) const ROW_STRIDE: usize = 4 * ROW_W;
/// The largest pixel tile of any instruction set. A tile computes all
/// its pixels, also those past the chunk (not stored): the buffer
/// leaves room for their reads.
pub(crate) const PMAX: usize = 16;

/// One chunk of an output row, for the register tiles. Contract
/// (established by `rows::run`): `rows` points at `DK * ROW_STRIDE` floats,
/// input row `ky` of the window at `ky * ROW_STRIDE`, holding input
/// columns `x0..x0 + (n - 1) * stride + DK` of the chunk from column 0,
/// planar (`[c][ROW_W]`) or, when `interleaved` (then `c == 3`),
/// `[column][3]`; `stride` is 1 or 2 and `(n + PMAX - 1) * stride + DK
/// <= ROW_W`; `w` is the packed weights of `kk = DK * DK * c` rows and
/// `out_c` columns; `out` (and `ep.residual`, if any) has at least
/// `o + n * out_c` floats; `ep.bias`, if any, has `out_c`.
pub(crate) struct DirectRow<'a> {
    pub(crate) rows: *const f32,
    pub(crate) c: usize,
    pub(crate) stride: usize,
    pub(crate) interleaved: bool,
    pub(crate) n: usize,
    pub(crate) out_c: usize,
    pub(crate) kk: usize,
    pub(crate) w: *const f32,
    pub(crate) ep: &'a Epilogue<'a>,
    pub(crate) o: usize,
    pub(crate) out: *mut f32,
}

/// The generic body of the per-ISA entry points: output channels in
/// groups of `NVW` vectors (`PW` pixels per tile), then of one vector
/// `V` (`P1` pixels), then a last group of at most `H::N` channels in
/// one `H` (`PH` pixels) when `H` is narrower, else in one `V`.
///
/// # Safety
/// `d` satisfies [`DirectRow`]'s contract; the CPU supports `V` and `H`.
#[inline(always)]
pub(crate) unsafe fn direct_v<V: Vf32, H: Vf32, const NVW: usize, const PW: usize, const P1: usize, const PH: usize>(
    d: &DirectRow<'_>,
) {
    // SAFETY: forwarded.
    unsafe {
        match (d.stride, d.interleaved) {
            (1, false) => groups::<V, H, NVW, PW, P1, PH, 1, 0>(d),
            (1, true) => groups::<V, H, NVW, PW, P1, PH, 1, 3>(d),
            (_, false) => groups::<V, H, NVW, PW, P1, PH, 2, 0>(d),
            (_, true) => groups::<V, H, NVW, PW, P1, PH, 2, 3>(d),
        }
    }
}

/// [`direct_v`] for horizontal stride `S` and `IC` interleaved channels
/// (0: planar).
///
/// # Safety
/// As [`direct_v`].
#[inline(always)]
unsafe fn groups<
    V: Vf32,
    H: Vf32,
    const NVW: usize,
    const PW: usize,
    const P1: usize,
    const PH: usize,
    const S: usize,
    const IC: usize,
>(
    d: &DirectRow<'_>,
) {
    let wide = NVW * V::N;
    let mut c0 = 0;
    // SAFETY: every group lies within the `out_c` columns.
    unsafe {
        while d.out_c - c0 >= wide {
            pixels::<V, NVW, PW, S, IC>(d, c0, wide);
            c0 += wide;
        }
        while d.out_c - c0 >= V::N {
            pixels::<V, 1, P1, S, IC>(d, c0, V::N);
            c0 += V::N;
        }
        let rest = d.out_c - c0;
        if rest > 0 {
            if H::N < V::N && rest <= H::N {
                pixels::<H, 1, PH, S, IC>(d, c0, rest);
            } else {
                pixels::<V, 1, P1, S, IC>(d, c0, rest);
            }
        }
    }
}

/// Columns `c0..c0 + n` of all the chunk's pixels, `P` at a time.
///
/// # Safety
/// As [`direct_v`]; `n <= NV * V::N`, `c0 + n <= out_c`, `c0` a
/// multiple of `V::N`, and `n == NV * V::N` unless `NV == 1`.
#[inline(always)]
unsafe fn pixels<V: Vf32, const NV: usize, const P: usize, const S: usize, const IC: usize>(
    d: &DirectRow<'_>,
    c0: usize,
    n: usize,
) {
    let mut px = 0;
    while px < d.n {
        // SAFETY: forwarded, `px < n`.
        unsafe { tile::<V, NV, P, S, IC>(d, px, c0, n) };
        px += P;
    }
}

/// One register tile: pixels `px..px + P` (those past the chunk are
/// computed from the buffer's spare columns and not stored) by
/// columns `c0..c0 + n`.
///
/// # Safety
/// As [`pixels`]; `px < d.n`.
#[inline(always)]
unsafe fn tile<V: Vf32, const NV: usize, const P: usize, const S: usize, const IC: usize>(
    d: &DirectRow<'_>,
    px: usize,
    c0: usize,
    n: usize,
) {
    debug_assert!(P <= PMAX && (NV == 1 || n == NV * V::N) && NV * V::N <= 64);
    // SAFETY: (whole body) the reads stay in the row buffer (columns
    // below `(px + P - 1) * S + DK <= ROW_W`, `DirectRow`'s contract),
    // the weight loads in the panels covering `c0..c0 + NV * V::N`
    // (`c0` is a multiple of `V::N`, which divides `PANEL`; panels are
    // zero-padded to `PANEL` columns), the stores and the bias and
    // residual loads in columns `c0..c0 + n` of the chunk's pixels.
    unsafe {
        let mut w = [d.w; NV];
        for (v, wv) in w.iter_mut().enumerate() {
            let col = c0 + v * V::N;
            *wv = d.w.add((col / PANEL) * d.kk * PANEL + col % PANEL);
        }
        let mut acc = [[V::zero(); NV]; P];
        // Column and channel strides of the buffer, input channels.
        let (cs, co, nc) = if IC == 0 { (1, ROW_W, d.c) } else { (IC, 1, IC) };
        for ky in 0..DK {
            for ci in 0..nc {
                let r = d.rows.add(ky * ROW_STRIDE + ci * co + px * S * cs);
                taps::<V, NV, P, S>(&mut acc, &w, (ky * DK * nc + ci) * PANEL, nc * PANEL, r, cs);
            }
        }
        let ep = d.ep;
        let (lo, hi) = (V::splat(ep.min), V::splat(ep.max));
        let mp = P.min(d.n - px);
        let full = n == NV * V::N;
        // Full tiles add the bias here, once per tile (then `e` has
        // none); the others through `e` per vector.
        let mut e = VecEpilogue::<V>::new(ep);
        if full {
            if let Some(b) = e.take_tile_bias::<NV>(c0, V::N) {
                for accp in acc.iter_mut() {
                    for (a, &bv) in accp.iter_mut().zip(&b) {
                        *a = V::add(*a, bv);
                    }
                }
            }
            if mp == P && ep.residual.is_none() && ep.act == Activation::None {
                // The first layer's case: no per-pixel branches.
                let o = d.out.add(d.o + px * d.out_c + c0);
                for (p, accp) in acc.iter().enumerate() {
                    for (v, &x) in accp.iter().enumerate() {
                        V::clamp(x, lo, hi).store(o.add(p * d.out_c + v * V::N));
                    }
                }
                return;
            }
        }
        // The other cases index pixels by a run-time count: from a copy
        // in memory, so that `acc` itself stays in registers.
        let mut spill = [[V::zero(); NV]; P];
        let sp = spill.as_mut_ptr().cast::<f32>();
        for (p, accp) in acc.iter().enumerate() {
            for (v, &x) in accp.iter().enumerate() {
                x.store(sp.add((p * NV + v) * V::N));
            }
        }
        // Whole vectors and, in a narrower last tile, a partial one
        // (masked on AVX-512); full tiles have the bias added above.
        for p in 0..mp {
            let oi = d.o + (px + p) * d.out_c + c0;
            let o = d.out.add(oi);
            let accp = sp.add(p * NV * V::N);
            for v in 0..NV {
                let c = v * V::N;
                if c >= n {
                    break;
                }
                let lanes = (n - c).min(V::N);
                let x = e.apply(V::load(accp.add(c)), c0 + c, oi + c, lanes);
                store_lanes(x, o.add(c), lanes);
            }
            if ep.act != Activation::None {
                crate::epilogue::activate(ep.act, core::slice::from_raw_parts_mut(o, n));
            }
        }
    }
}

/// The `DK` taps of one input row and channel: weight rows `k` (float
/// offset `k0`), `k0 + kstep`, `k0 + 2 * kstep` (kx = 0, 1, 2) held in
/// registers, times the input at `x + (p * S + kx) * cs` for each pixel
/// `p` of the tile. Pixel by pixel, so the input shared by neighbouring
/// pixels (stride < 3) is loaded once and not kept live across the
/// tile (a function, not a closure: closures do not inherit
/// `#[target_feature]`).
///
/// # Safety
/// As [`tile`]: the reads are inside the buffer and the panels.
#[inline(always)]
unsafe fn taps<V: Vf32, const NV: usize, const P: usize, const S: usize>(
    acc: &mut [[V; NV]; P],
    w: &[*const f32; NV],
    k0: usize,
    kstep: usize,
    x: *const f32,
    cs: usize,
) {
    // SAFETY: forwarded.
    unsafe {
        let mut wk = [[V::zero(); NV]; DK];
        for (kx, wkx) in wk.iter_mut().enumerate() {
            for (wv, &p) in wkx.iter_mut().zip(w) {
                *wv = V::load(p.add(k0 + kx * kstep));
            }
        }
        for (p, accp) in acc.iter_mut().enumerate() {
            for (kx, wkx) in wk.iter().enumerate() {
                let xv = V::splat(*x.add((p * S + kx) * cs));
                for (a, &wv) in accp.iter_mut().zip(wkx) {
                    *a = V::fma(xv, wv, *a);
                }
            }
        }
    }
}
