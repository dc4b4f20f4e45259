//! The depthwise kernel body, written once over [`Vf32`].

use crate::simd::vec::{unroll, Vf32};
use crate::Activation;

/// A validated depthwise call: the reference kernel's context (shape,
/// slices, interior ranges) and the output, which `s` sizes.
pub(crate) struct Dw<'a> {
    pub(crate) cx: crate::reference::DwCx<'a>,
    pub(crate) rows: usize,
    pub(crate) out: *mut f32,
}

/// Depthwise over all channels, one output row at a time: within a row,
/// blocks of `PX` (then `PX2`, then 1) interior pixels, and for each block
/// every channel vector in turn (full vectors of `V::N` channels, then of
/// `V2::N <= V::N`), so the input rows and the output row are walked in
/// memory order; the remaining channels by the reference kernel's block
/// function. `FULL`: specialize 5x5 kernels too, and run the edge pixels of
/// 3x3 rows in blocks ([`dw_cols_edge_blocks`]); the portable path does
/// not, to keep microcontroller code small (MobileNet v1/v2 use 3x3 only).
///
/// # Safety
/// `d` satisfies [`Dw`]'s contract; the CPU supports `V`'s and `V2`'s
/// instruction set.
#[inline(always)]
pub(crate) unsafe fn depthwise_v<V: Vf32, V2: Vf32, const PX: usize, const PX2: usize, const FULL: bool>(d: &Dw<'_>) {
    let s = &d.cx.s;
    let c = s.in_c;
    let full = c - c % V::N;
    // Then half-width vectors (e.g. 8 channels of ymm on AVX-512), which
    // small models (8, 24, 40 channels) need.
    let full2 = full + (c - full) / V2::N * V2::N;
    // The edge blocks' rows are a separate copy of the row loop: in one
    // body with the others, a layer that did not use them ran 1.08x slower
    // (14x14x512).
    // SAFETY: forwarded.
    unsafe {
        match edge_blocks::<PX, PX2>(d).filter(|_| FULL) {
            Some(right) => dw_rows::<V, V2, PX, PX2, FULL, true>(d, Chans { full, full2, right }),
            None => dw_rows::<V, V2, PX, PX2, FULL, false>(d, Chans { full, full2, right: 0 }),
        }
    }
}

/// The rows of [`depthwise_v`]; `EDGE`: [`edge_blocks`] applies.
///
/// # Safety
/// As [`depthwise_v`]; `ch` within `c`.
#[inline(always)]
unsafe fn dw_rows<V: Vf32, V2: Vf32, const PX: usize, const PX2: usize, const FULL: bool, const EDGE: bool>(
    d: &Dw<'_>,
    ch: Chans,
) {
    let s = &d.cx.s;
    let c = s.in_c;
    let full2 = ch.full2;
    let mut oy0 = 0;
    while oy0 < s.out_h {
        let oy1 = oy0 + d.rows.min(s.out_h - oy0);
        for oy in oy0..oy1 {
            // SAFETY: forwarded; `ch` is within `c`.
            unsafe { dw_row::<V, V2, PX, PX2, FULL, EDGE>(d, oy, ch) };
        }
        if full2 < c {
            // SAFETY: `out` has `out_len` elements (checked by `DwCx::new`)
            // and no other reference to it is live here.
            let out = unsafe { core::slice::from_raw_parts_mut(d.out, s.out_len()) };
            crate::reference::depthwise_block::<16>(&d.cx, oy0, oy1, full2, c - full2, out);
        }
        oy0 = oy1;
    }
}

/// The vectorized channels: `0..full` in vectors of `V::N`, `full..full2`
/// in vectors of `V2::N`; and, for rows in edge blocks, `right`: the
/// window columns of a row's last pixel past the input (from
/// [`edge_blocks`], once per layer).
#[derive(Clone, Copy)]
struct Chans {
    full: usize,
    full2: usize,
    right: usize,
}

/// Output row `oy`, vectorized channels: the kernel-size and stride
/// specializations, else every pixel through [`dw_border`].
///
/// # Safety
/// As [`depthwise_v`]; `ch` within `c`, `oy < out_h`.
#[inline(always)]
unsafe fn dw_row<V: Vf32, V2: Vf32, const PX: usize, const PX2: usize, const FULL: bool, const EDGE: bool>(
    d: &Dw<'_>,
    oy: usize,
    ch: Chans,
) {
    let s = &d.cx.s;
    // SAFETY: forwarded.
    unsafe {
        match (s.kernel_h, s.kernel_w, s.stride_w) {
            (3, 3, 1) => dw_row_k::<V, V2, 3, 1, PX, PX2, EDGE>(d, oy, ch),
            (3, 3, 2) => dw_row_k::<V, V2, 3, 2, PX, PX2, EDGE>(d, oy, ch),
            (5, 5, 1) if FULL && !EDGE => dw_row_k::<V, V2, 5, 1, PX, PX2, false>(d, oy, ch),
            (5, 5, 2) if FULL && !EDGE => dw_row_k::<V, V2, 5, 2, PX, PX2, false>(d, oy, ch),
            _ => {
                for ox in 0..s.out_w {
                    let mut c0 = 0;
                    while c0 < ch.full {
                        dw_border::<V>(d, oy, ox, c0);
                        c0 += V::N;
                    }
                    while V2::N < V::N && c0 < ch.full2 {
                        dw_border::<V2>(d, oy, ox, c0);
                        c0 += V2::N;
                    }
                }
            }
        }
    }
}

/// Where one output row reads: `x0` points at column 0, channel 0 of the
/// first window row inside the input (window row `ky_lo`), `w0` at the
/// weights of that window row, `nky` window rows are inside the input.
#[derive(Clone, Copy)]
struct RowAt {
    x0: *const f32,
    w0: *const f32,
    nky: usize,
    oy: usize,
}

/// Output row `oy` for a `K x K` kernel of horizontal stride `SW`: window
/// rows outside the input are skipped once for the whole row; the columns
/// whose window reaches into the padding go through [`dw_edge`], the
/// interior ones `PX` (then `PX2`, then 1) at a time with no bounds tests.
///
/// # Safety
/// As [`dw_row`]; `K == kernel_h == kernel_w`, `SW == stride_w`.
#[inline(always)]
unsafe fn dw_row_k<
    V: Vf32,
    V2: Vf32,
    const K: usize,
    const SW: usize,
    const PX: usize,
    const PX2: usize,
    const EDGE: bool,
>(
    d: &Dw<'_>,
    oy: usize,
    ch: Chans,
) {
    let s = &d.cx.s;
    let c = s.in_c;
    let iy0 = (oy * s.stride_h) as isize - s.pad_top as isize;
    let ky_lo = (-iy0).clamp(0, K as isize) as usize;
    let ky_hi = (s.in_h as isize - iy0).clamp(ky_lo as isize, K as isize) as usize;
    let nky = ky_hi - ky_lo;
    // SAFETY: window row `ky_lo` is an input row when `nky > 0` (else
    // nothing is read through `x0`); the weights have `K` rows.
    let at = unsafe {
        RowAt {
            x0: if nky > 0 {
                d.cx.input.as_ptr().add((iy0 + ky_lo as isize) as usize * s.in_w * c)
            } else {
                d.cx.input.as_ptr()
            },
            w0: d.cx.weights.as_ptr().add(ky_lo * K * c),
            nky,
            oy,
        }
    };
    // SAFETY: forwarded.
    unsafe { dw_cols::<V, V2, K, SW, PX, PX2, EDGE>(d, at, ch) }
}

/// The columns of one output row (see [`dw_row_k`]).
///
/// # Safety
/// As [`dw_row_k`]; `at` describes row `at.oy`.
#[inline(always)]
unsafe fn dw_cols<
    V: Vf32,
    V2: Vf32,
    const K: usize,
    const SW: usize,
    const PX: usize,
    const PX2: usize,
    const EDGE: bool,
>(
    d: &Dw<'_>,
    at: RowAt,
    ch: Chans,
) {
    let s = &d.cx.s;
    let (x_lo, x_hi) = d.cx.x_in;
    if EDGE {
        // SAFETY: forwarded (`EDGE`: `edge_blocks` applies to this layer).
        return unsafe { dw_cols_edge_blocks::<V, V2, K, SW, PX, PX2>(d, at, ch) };
    }
    // SAFETY: `x_in` is the range of interior columns; the others are
    // bounds-tested per tap.
    unsafe {
        for ox in 0..x_lo {
            dw_edge::<V, V2, K>(d, at, ox, ch);
        }
        let mut ox = x_lo;
        while ox + PX <= x_hi {
            dw_pixels::<V, V2, K, SW, PX, 0, 0>(d, at, ox, ch);
            ox += PX;
        }
        while PX2 < PX && ox + PX2 <= x_hi {
            dw_pixels::<V, V2, K, SW, PX2, 0, 0>(d, at, ox, ch);
            ox += PX2;
        }
        while ox < x_hi {
            dw_pixels::<V, V2, K, SW, 1, 0, 0>(d, at, ox, ch);
            ox += 1;
        }
        for ox in x_hi.max(x_lo)..s.out_w {
            dw_edge::<V, V2, K>(d, at, ox, ch);
        }
    }
}

/// Whether a layer's rows run in blocks only ([`dw_cols_edge_blocks`]):
/// a 3x3 kernel, at most one window column in the padding on each side,
/// rows at least one narrow block wide. `Some(right)`: the window columns
/// of a row's last pixel past the input (0 or 1).
#[inline(always)]
fn edge_blocks<const PX: usize, const PX2: usize>(d: &Dw<'_>) -> Option<usize> {
    let s = &d.cx.s;
    let (x_lo, x_hi) = d.cx.x_in;
    let w = s.out_w;
    if s.kernel_h != 3 || s.kernel_w != 3 || w < PX2 || s.pad_left > 1 || x_lo != s.pad_left || x_hi < x_lo {
        return None;
    }
    let right = ((w - 1) * s.stride_w + 3).saturating_sub(s.pad_left + s.in_w);
    (right <= 1).then_some(right)
}

/// The columns of one output row in blocks, the edge pixels inside blocks
/// whose padding columns are skipped at compile time, not through
/// [`dw_edge`]'s per-tap tests (alone, alternated: 8x8x128 1.8x faster,
/// 4x4x256 1.9x, 16x16x64 1.45x, 7x7x1024 1.3x, 28x28x256 1.1x, 14x14
/// unchanged). Three pixels left after the largest blocks (a pixel on its
/// own runs one FMA chain: 9 dependent FMAs per channel vector) are one
/// more block overlapping the one before (those pixels computed twice, the
/// same way); one or two are single pixels.
///
/// # Safety
/// As [`dw_cols`]; [`edge_blocks`] applies to the layer and gave `ch.right`.
#[inline(always)]
unsafe fn dw_cols_edge_blocks<V: Vf32, V2: Vf32, const K: usize, const SW: usize, const PX: usize, const PX2: usize>(
    d: &Dw<'_>,
    at: RowAt,
    ch: Chans,
) {
    let x_lo = d.cx.x_in.0;
    let w = d.cx.s.out_w;
    let right = ch.right;
    // SAFETY: each block's pixels are within the row, and its window
    // columns outside the input are the `L` first (pixel 0: `pad_left` of
    // them) and the `R` last (the last pixel: `right` of them), skipped.
    unsafe {
        macro_rules! block {
            ($p:expr, $ox:expr, $l:expr, $r:expr) => {
                match ($l, $r) {
                    (0, 0) => dw_pixels::<V, V2, K, SW, $p, 0, 0>(d, at, $ox, ch),
                    (1, 0) => dw_pixels::<V, V2, K, SW, $p, 1, 0>(d, at, $ox, ch),
                    (0, _) => dw_pixels::<V, V2, K, SW, $p, 0, 1>(d, at, $ox, ch),
                    _ => dw_pixels::<V, V2, K, SW, $p, 1, 1>(d, at, $ox, ch),
                }
            };
        }
        // Blocks from the left, the largest that fit; the first holds the
        // left edge (`L`), the one ending at `w` the right edge (`R`).
        let mut ox = 0;
        while ox + PX <= w {
            block!(PX, ox, usize::from(ox == 0) * x_lo, usize::from(ox + PX == w) * right);
            ox += PX;
        }
        while PX2 < PX && ox + PX2 <= w {
            block!(PX2, ox, usize::from(ox == 0) * x_lo, usize::from(ox + PX2 == w) * right);
            ox += PX2;
        }
        if w - ox >= 3 {
            // `ox >= PX2` (the row is at least that wide), so this block
            // does not reach pixel 0.
            block!(PX2, w - PX2, 0, right);
        } else {
            while ox < w {
                block!(1, ox, 0, usize::from(ox + 1 == w) * right);
                ox += 1;
            }
        }
    }
}

/// `P` interior output pixels from column `ox`, all vectorized channels.
///
/// # Safety
/// As [`dw_cols`]; `ox..ox + P` are interior columns.
#[inline(always)]
unsafe fn dw_pixels<
    V: Vf32,
    V2: Vf32,
    const K: usize,
    const SW: usize,
    const P: usize,
    const L: usize,
    const R: usize,
>(
    d: &Dw<'_>,
    at: RowAt,
    ox: usize,
    ch: Chans,
) {
    let s = &d.cx.s;
    let c = s.in_c;
    // SAFETY: the window columns of pixels `ox..ox + P` but the first `L`
    // and the last `R` (the padding) lie inside the row (`x` may point
    // before it, at column -L: only computed, never read); outputs
    // `ox..ox + P` of row `oy` exist.
    unsafe {
        let x = if L == 0 {
            at.x0.add((ox * SW - s.pad_left) * c)
        } else {
            at.x0
                .wrapping_offset(((ox * SW) as isize - s.pad_left as isize) * c as isize)
        };
        let o = (at.oy * s.out_w + ox) * c;
        let mut c0 = 0;
        while c0 < ch.full {
            dw_block::<V, K, SW, P, L, R>(d, at, x.wrapping_add(c0), o + c0, c0);
            c0 += V::N;
        }
        while V2::N < V::N && c0 < ch.full2 {
            dw_block::<V2, K, SW, P, L, R>(d, at, x.wrapping_add(c0), o + c0, c0);
            c0 += V2::N;
        }
    }
}

/// `P` interior output pixels, channels `c0..c0 + N`: `x` points at their
/// window's first input (window row `ky_lo`, column 0, channel `c0`), `o`
/// is the first output's flat index. One FMA chain per pixel, from
/// [`dw_init`] in window order, weights loaded once per window row.
///
/// # Safety
/// As [`dw_pixels`]; `c0 + N <= c`.
#[inline(always)]
unsafe fn dw_block<V: Vf32, const K: usize, const SW: usize, const P: usize, const L: usize, const R: usize>(
    d: &Dw<'_>,
    at: RowAt,
    x: *const f32,
    o: usize,
    c0: usize,
) {
    let s = &d.cx.s;
    let c = s.in_c;
    let row = s.in_w * c;
    // SAFETY: the caller's bounds.
    unsafe {
        let mut acc = [dw_init::<V>(d, c0); P];
        for ky in 0..K {
            if ky >= at.nky {
                break;
            }
            let wr = at.w0.add(ky * K * c + c0);
            let mut w = [V::zero(); K];
            for (kx, wk) in w.iter_mut().enumerate() {
                *wk = V::load(wr.add(kx * c));
            }
            // Each input column of the window row is loaded once, by a
            // pointer stepping one pixel (not by `j * c` offsets, which
            // would each need a register), and feeds every pixel whose
            // window holds it, in the window order of each pixel. The
            // macro unrolls the columns (LLVM does not, at 17 columns of
            // 8 pixels).
            // Columns `j < L` and the last `R` lie in the padding (edge
            // blocks): skipped, as the reference skips their taps; `q`
            // starts at the first column read (inside the row), so the
            // pointer stays in bounds.
            let mut q = x.wrapping_add(ky * row + L * c);
            unroll!(j < (P - 1) * SW + K; {
                if j >= L && j + R < (P - 1) * SW + K {
                    let v = V::load(q);
                    if j + R + 1 < (P - 1) * SW + K {
                        q = q.add(c);
                    }
                    for (p, a) in acc.iter_mut().enumerate() {
                        if j >= p * SW && j - p * SW < K {
                            *a = V::fma(v, w[j - p * SW], *a);
                        }
                    }
                }
            });
        }
        dw_store_n::<V, P>(d, o, &acc);
    }
}

/// One output pixel whose window reaches into the left or right padding,
/// all vectorized channels: the columns inside the input are found once.
///
/// # Safety
/// As [`dw_cols`].
#[inline(always)]
unsafe fn dw_edge<V: Vf32, V2: Vf32, const K: usize>(d: &Dw<'_>, at: RowAt, ox: usize, ch: Chans) {
    let s = &d.cx.s;
    let ix0 = (ox * s.stride_w) as isize - s.pad_left as isize;
    let kx_lo = (-ix0).clamp(0, s.kernel_w as isize) as usize;
    let kx_hi = (s.in_w as isize - ix0).clamp(kx_lo as isize, s.kernel_w as isize) as usize;
    let o = (at.oy * s.out_w + ox) * s.in_c;
    let mut c0 = 0;
    // SAFETY: only columns `ix0 + kx_lo .. ix0 + kx_hi` (inside the input)
    // are read; `ch` within `c`.
    unsafe {
        while c0 < ch.full {
            dw_edge_v::<V, K>(d, at, ix0, kx_lo, kx_hi, o + c0, c0);
            c0 += V::N;
        }
        while V2::N < V::N && c0 < ch.full2 {
            dw_edge_v::<V2, K>(d, at, ix0, kx_lo, kx_hi, o + c0, c0);
            c0 += V2::N;
        }
    }
}

/// One vector of [`dw_edge`]: window columns `kx_lo..kx_hi` (inside the
/// input), in window order.
///
/// # Safety
/// As [`dw_edge`]; `c0 + N <= c`.
#[inline(always)]
unsafe fn dw_edge_v<V: Vf32, const K: usize>(
    d: &Dw<'_>,
    at: RowAt,
    ix0: isize,
    kx_lo: usize,
    kx_hi: usize,
    o: usize,
    c0: usize,
) {
    let s = &d.cx.s;
    let c = s.in_c;
    // SAFETY: the caller's bounds.
    unsafe {
        let mut a = dw_init::<V>(d, c0);
        // Unrolled over the whole window, taps outside it skipped by
        // branches that go the same way for every channel vector.
        for ky in 0..K {
            if ky < at.nky {
                let r = at.x0.add(ky * s.in_w * c + c0);
                let wr = at.w0.add(ky * K * c + c0);
                for kx in 0..K {
                    if kx >= kx_lo && kx < kx_hi {
                        let ix = (ix0 + kx as isize) as usize;
                        a = V::fma(V::load(r.add(ix * c)), V::load(wr.add(kx * c)), a);
                    }
                }
            }
        }
        dw_store::<V>(d, o, a);
    }
}

/// One output pixel, channels `c0..c0 + N`, testing every tap's bounds.
///
/// # Safety
/// As [`dw_row`].
#[inline(always)]
unsafe fn dw_border<V: Vf32>(d: &Dw<'_>, oy: usize, ox: usize, c0: usize) {
    let s = &d.cx.s;
    let c = s.in_c;
    // SAFETY: taps are bounds-tested; c0 + N <= c.
    unsafe {
        let mut a = dw_init::<V>(d, c0);
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
        dw_store::<V>(d, (oy * s.out_w + ox) * c + c0, a);
    }
}

/// The start of every depthwise FMA chain of channels `c0..c0 + N`: the
/// bias (zero without one), so the epilogue has one add fewer per pixel
/// and vector (alone, v2 0.35 128's 64x64x48 s2 and 32x32x48 layers 1.07x
/// and 1.11x faster, the v1/v2 1.0 shapes within noise; the model 0.991).
/// The sum differs from the reference's (taps, then bias) by rounding.
///
/// # Safety
/// `c0 + N <= c`; the CPU supports `V`'s instruction set.
#[inline(always)]
unsafe fn dw_init<V: Vf32>(d: &Dw<'_>, c0: usize) -> V {
    // SAFETY: the bias has `c` floats (`DwCx::new`); the caller's bounds.
    unsafe {
        match d.cx.ep.bias {
            Some(b) => V::load(b.as_ptr().add(c0)),
            None => V::zero(),
        }
    }
}

/// The epilogue of one depthwise output vector at flat index `o`.
///
/// # Safety
/// `o + N <= out_len`.
#[inline(always)]
unsafe fn dw_store<V: Vf32>(d: &Dw<'_>, o: usize, a: V) {
    // SAFETY: forwarded.
    unsafe { dw_store_n::<V, 1>(d, o, &[a]) }
}

/// The epilogue of `P` depthwise output vectors of neighbouring pixels,
/// the first at flat index `o`, whose chains started from the bias
/// ([`dw_init`]): residual and clamp per vector, then the activation (a
/// scalar loop) over all of them.
///
/// # Safety
/// `o + (P - 1) * c + N <= out_len`.
#[inline(always)]
unsafe fn dw_store_n<V: Vf32, const P: usize>(d: &Dw<'_>, o: usize, acc: &[V; P]) {
    let ep = d.cx.ep;
    let c = d.cx.s.in_c;
    // SAFETY: the caller's bounds.
    unsafe {
        let (lo, hi) = (V::splat(ep.min), V::splat(ep.max));
        for (p, &a) in acc.iter().enumerate() {
            let o = o + p * c;
            let mut x = a;
            if let Some(res) = ep.residual {
                x = V::add(x, V::load(res.as_ptr().add(o)));
            }
            V::clamp(x, lo, hi).store(d.out.add(o));
        }
        if ep.act != Activation::None {
            for p in 0..P {
                crate::epilogue::activate(ep.act, core::slice::from_raw_parts_mut(d.out.add(o + p * c), V::N));
            }
        }
    }
}
