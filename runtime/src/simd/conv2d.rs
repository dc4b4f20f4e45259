//! Full convolution (the first layer). Two routes:
//!
//! * direct (AVX-512, AVX2, NEON; 3x3 kernels, horizontal stride 1 or 2,
//!   1 to 4 input channels: every MobileNet's first layer): per output row,
//!   the 3 input rows are copied once into a stack buffer as `f32` with the
//!   padding in place, then each register tile of pixels x output channels
//!   accumulates the 9 * `in_c` taps by broadcast-FMA at constant offsets,
//!   with a vector epilogue (half-width vectors for 8 leftover channels on
//!   AVX-512);
//! * im2col (everything else, and the portable path, which keeps the
//!   Cortex-M code small): the windows of a block of output pixels gathered
//!   into a stack buffer, then the GEMM micro-kernel.

use super::gemm::{gemm_dispatch, Gemm};
use super::PANEL;
use crate::abi::pack::conv2d_packed_len;
use crate::abi::{ConvShape, PwOrder};
use crate::isa::{self, Isa};
use crate::kernels::{check_epilogue, check_len};
use crate::{Epilogue, Layout, Pixel};

/// Stack buffer of [`conv2d`]'s gathered input patches, in floats.
const PATCH: usize = 4096;

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
/// * Other arguments as [`kernels::conv2d`](crate::kernels::conv2d) (no
///   cache tiles: the pixel block is sized by the buffer).
///
/// # Panics
/// If a slice length does not match `s`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn conv2d<T: Pixel>(
    s: &ConvShape,
    layout: Layout,
    input: &[T],
    pad_value: &[f32],
    weights: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    const K: &str = "simd::conv2d";
    check_args(K, s, input, pad_value, weights, ep, s.out_len(), out.len());
    let isa = isa::active_counted();
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if direct_applies(isa, s) {
        direct::run(isa, s, layout, input, pad_value, weights, ep, 0..s.out_h, out);
        return;
    }
    conv2d_im2col(isa, s, layout, input, pad_value, weights, ep, out);
}

/// The slice lengths of a [`conv2d`] call of shape `s` whose output has
/// `want_out` floats (`out` is their number), as `K`'s panics.
#[allow(clippy::too_many_arguments)]
fn check_args<T>(
    k: &str,
    s: &ConvShape,
    input: &[T],
    pad_value: &[f32],
    weights: &[f32],
    ep: &Epilogue<'_>,
    want_out: usize,
    out: usize,
) {
    check_len(k, "input", input.len(), s.in_len());
    check_len(k, "pad_value", pad_value.len(), s.in_c);
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
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(unused_variables))]
pub(crate) fn conv2d_rows<T: Pixel>(
    s: &ConvShape,
    layout: Layout,
    input: &[T],
    pad_value: &[f32],
    weights: &[f32],
    ep: &Epilogue<'_>,
    rows: core::ops::Range<usize>,
    out: &mut [f32],
) {
    const K: &str = "simd::conv2d_rows";
    assert!(
        rows.start <= rows.end && rows.end <= s.out_h,
        "{K}: rows {rows:?} outside 0..{}",
        s.out_h
    );
    check_args(
        K,
        s,
        input,
        pad_value,
        weights,
        ep,
        rows.len() * s.out_w * s.out_c,
        out.len(),
    );
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let isa = isa::active_counted();
        if direct_applies(isa, s) {
            direct::run(isa, s, layout, input, pad_value, weights, ep, rows, out);
            return;
        }
    }
    panic!("{K}: only the direct route computes row ranges (conv2d_rows_applies)");
}

/// The im2col route of [`conv2d`] (arguments validated).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn conv2d_im2col<T: Pixel>(
    isa: Isa,
    s: &ConvShape,
    layout: Layout,
    input: &[T],
    pad_value: &[f32],
    weights: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
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

/// The direct route: row buffer, register tiles, per-ISA entry points.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod direct {
    use super::super::gemm::{store_lanes, VecEpilogue};
    use super::super::{Vf32, PANEL};
    pub(crate) use super::DK;
    use crate::abi::ConvShape;
    use crate::isa::Isa;
    use crate::kernels;
    use crate::{Activation, Epilogue, Layout, Pixel};

    /// Input columns per channel in the row buffer.
    pub(crate) const ROW_W: usize = 320;
    /// Floats per buffered input row (up to 4 channels of `ROW_W` columns).
    pub(crate) const ROW_STRIDE: usize = 4 * ROW_W;
    /// The largest pixel tile of any instruction set. A tile computes all
    /// its pixels, also those past the chunk (not stored): the buffer
    /// leaves room for their reads.
    const PMAX: usize = 16;

    /// One chunk of an output row, for the register tiles. Contract
    /// (established by [`run`]): `rows` points at `DK * ROW_STRIDE` floats,
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
        kk: usize,
        pub(crate) w: *const f32,
        pub(crate) ep: &'a Epilogue<'a>,
        pub(crate) o: usize,
        pub(crate) out: *mut f32,
    }

    /// The direct route, row by row: copy the 3 input rows of each output
    /// row (in chunks of pixels if the row is wider than the buffer), then
    /// run the register tiles on them.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn run<T: Pixel>(
        isa: Isa,
        s: &ConvShape,
        layout: Layout,
        input: &[T],
        pad: &[f32],
        weights: &[f32],
        ep: &Epilogue<'_>,
        rows: core::ops::Range<usize>,
        out: &mut [f32],
    ) {
        let (c, sw) = (s.in_c, s.stride_w);
        debug_assert!(s.kernel_h == DK && s.kernel_w == DK && (1..=2).contains(&sw) && (1..=4).contains(&c));
        // NHWC with 3 channels stays interleaved (the tiles read it at
        // constant offsets); other NHWC inputs are de-interleaved.
        let interleaved = layout == Layout::Nhwc && c == 3;
        let n_max = (ROW_W - DK - PMAX * sw) / sw;
        let mut buf = [0.0f32; DK * ROW_STRIDE];
        // `out` (and the residual) hold output rows `rows`.
        for oy in rows.clone() {
            let mut ox0 = 0;
            while ox0 < s.out_w {
                let n = n_max.min(s.out_w - ox0);
                let x0 = (ox0 * sw) as isize - s.pad_left as isize;
                let span = (n - 1) * sw + DK;
                for (ky, row) in buf.chunks_exact_mut(ROW_STRIDE).enumerate() {
                    let iy = (oy * s.stride_h + ky).wrapping_sub(s.pad_top);
                    fill_row(s, layout, interleaved, input, pad, iy, x0, span, row);
                }
                let d = DirectRow {
                    rows: buf.as_ptr(),
                    c,
                    stride: sw,
                    interleaved,
                    n,
                    out_c: s.out_c,
                    kk: DK * DK * c,
                    w: weights.as_ptr(),
                    ep,
                    o: ((oy - rows.start) * s.out_w + ox0) * s.out_c,
                    out: out.as_mut_ptr(),
                };
                // SAFETY: `DirectRow`'s contract: `buf` has the 3 rows,
                // `n <= n_max` keeps tile reads inside it, the slice
                // lengths were checked by `conv2d` (the chunk's pixels are
                // within the output) and `isa` is supported.
                unsafe { dispatch(isa, &d) };
                ox0 += n;
            }
        }
    }

    /// # Safety
    /// `d` satisfies [`DirectRow`]'s contract; the CPU supports `isa`.
    unsafe fn dispatch(isa: Isa, d: &DirectRow<'_>) {
        // SAFETY: forwarded; each entry point runs only on its instruction set.
        unsafe {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 if px8_applies(d) => super::super::x86::conv2d_direct_px8_avx512(d),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => super::super::x86::conv2d_direct_avx512(d),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => super::super::x86::conv2d_direct_avx2(d),
                #[cfg(target_arch = "aarch64")]
                Isa::Neon => super::super::neon::conv2d_direct_neon(d),
                _ => unreachable!("simd::conv2d: no direct route on {isa:?}"),
            }
        }
    }

    /// Whether the pixels-in-lanes kernel of 8 output channels
    /// (`x86::conv2d_direct_px8_avx512`) computes `d` on AVX-512.
    #[cfg(target_arch = "x86_64")]
    fn px8_applies(d: &DirectRow<'_>) -> bool {
        d.out_c == 8 && !d.interleaved && d.ep.residual.is_none() && d.ep.act == Activation::None
    }

    /// Copies input row `iy` (padding if outside), columns `x0..x0 + span`
    /// (padding outside `0..in_w`), to `row` as `f32`: planar
    /// `row[ci * ROW_W + j]`, or `row[j * 3 + ci]` when `interleaved`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn fill_row<T: Pixel>(
        s: &ConvShape,
        layout: Layout,
        interleaved: bool,
        input: &[T],
        pad: &[f32],
        iy: usize,
        x0: isize,
        span: usize,
        row: &mut [f32],
    ) {
        let c = s.in_c;
        // Buffer columns jl..jr are inside the input, the others padding.
        let (jl, jr) = if iy < s.in_h {
            let jl = (-x0).clamp(0, span as isize) as usize;
            let jr = (s.in_w as isize - x0).clamp(jl as isize, span as isize) as usize;
            (jl, jr)
        } else {
            (span, span)
        };
        let inside = jr - jl;
        // First input element of the inside run (unused if empty).
        let xs = (x0 + jl as isize).max(0) as usize;
        if interleaved {
            for j in (0..jl).chain(jr..span) {
                row[j * c..(j + 1) * c].copy_from_slice(pad);
            }
            if inside > 0 {
                let src = &input[(iy * s.in_w + xs) * c..][..inside * c];
                for (d, &x) in row[jl * c..jr * c].iter_mut().zip(src) {
                    *d = x.to_f32();
                }
            }
            return;
        }
        let plane = s.in_h * s.in_w;
        for (ci, &p) in pad.iter().enumerate() {
            let r = &mut row[ci * ROW_W..][..span];
            r[..jl].fill(p);
            r[jr..].fill(p);
            if inside == 0 {
                continue;
            }
            let dst = &mut r[jl..jr];
            if layout == Layout::Nchw || c == 1 {
                let src = &input[ci * plane + iy * s.in_w + xs..][..inside];
                for (d, &x) in dst.iter_mut().zip(src) {
                    *d = x.to_f32();
                }
            } else {
                let src = &input[(iy * s.in_w + xs) * c + ci..][..(inside - 1) * c + 1];
                for (d, &x) in dst.iter_mut().zip(src.iter().step_by(c)) {
                    *d = x.to_f32();
                }
            }
        }
    }

    /// The generic body of the per-ISA entry points: output channels in
    /// groups of `NVW` vectors (`PW` pixels per tile), then of one vector
    /// `V` (`P1` pixels), then a last group of at most `H::N` channels in
    /// one `H` (`PH` pixels) when `H` is narrower, else in one `V`.
    ///
    /// # Safety
    /// `d` satisfies [`DirectRow`]'s contract; the CPU supports `V` and `H`.
    #[inline(always)]
    pub(crate) unsafe fn direct_v<
        V: Vf32,
        H: Vf32,
        const NVW: usize,
        const PW: usize,
        const P1: usize,
        const PH: usize,
    >(
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
                    kernels::activate(ep.act, core::slice::from_raw_parts_mut(o, n));
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
}
