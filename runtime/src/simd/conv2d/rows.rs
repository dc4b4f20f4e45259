//! The direct route's row loop: the 3 input rows of each output row copied
//! into a buffer, then the register tiles of the instruction set run on
//! them.

use super::direct::{DirectRow, DK, PMAX, ROW_STRIDE, ROW_W};
#[cfg(target_arch = "aarch64")]
use super::neon;
#[cfg(target_arch = "x86_64")]
use super::x86;
use crate::abi::Conv2d;
use crate::isa::Isa;
#[cfg(target_arch = "x86_64")]
use crate::Activation;
use crate::{Epilogue, Layout, Pixel};

/// The direct route, row by row: copy the 3 input rows of each output
/// row (in chunks of pixels if the row is wider than the buffer), then
/// run the register tiles on them.
#[inline(never)]
pub(super) fn run<T: Pixel>(
    isa: Isa,
    cv: &Conv2d<'_>,
    input: &[T],
    weights: &[f32],
    ep: &Epilogue<'_>,
    rows: core::ops::Range<usize>,
    out: &mut [f32],
) {
    let (s, layout) = (&cv.shape, cv.layout);
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
                fill_row(cv, interleaved, input, iy, x0, span, row);
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
            Isa::Avx512 if px8_applies(d) => x86::conv2d_direct_px8_avx512(d),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::conv2d_direct_avx512(d),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::conv2d_direct_avx2(d),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::conv2d_direct_neon(d),
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
#[inline(always)]
fn fill_row<T: Pixel>(
    cv: &Conv2d<'_>,
    interleaved: bool,
    input: &[T],
    iy: usize,
    x0: isize,
    span: usize,
    row: &mut [f32],
) {
    let (s, layout, pad) = (&cv.shape, cv.layout, cv.pad_value);
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
