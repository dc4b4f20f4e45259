//! A pointwise layer and the depthwise layer that reads its output, run
//! together in bands of output rows, so the pointwise output (the largest
//! tensors of a MobileNet: v1's 112x112x64, v2's 112x112x96 expansions)
//! is never stored whole: each band's input rows are computed into a small
//! scratch buffer that stays in L2 and is consumed right away.

use super::depthwise;
use super::gemm::pointwise_split;
use crate::abi::{amx, conv_rows, Depthwise, Pointwise, PointwiseShape, PwDwShape};
use crate::checks::check_len;
use crate::Epilogue;
use core::ops::Range;

/// A layer's packed weights and epilogue: one of the two layers of
/// [`pointwise_depthwise`].
#[derive(Clone, Copy, Debug)]
pub struct Stage<'a> {
    /// The weights, packed as the layer's own kernel reads them.
    pub weights: &'a [f32],
    /// The epilogue (no residual).
    pub ep: &'a Epilogue<'a>,
}

/// The scratch of [`pointwise_depthwise`]: a band's pointwise rows (at
/// least [`PwDwShape::scratch_len`] floats; the parallel mode's entry
/// point takes two of them), and, to run the pointwise layer on the AMX
/// tiles where the CPU has them, their scratch (at least
/// [`amx::scratch_len`] floats for its pixels-outer order; the parallel
/// mode's, [`amx::PARTS`] of them).
#[derive(Debug)]
pub struct BandScratch<'a> {
    /// The pointwise rows of a band.
    pub rows: &'a mut [f32],
    /// The AMX scratch, or `None` for the vector kernels.
    pub amx: Option<&'a mut [f32]>,
}

/// Checks the shapes of `s` agree and the slices have their lengths (`k`
/// names the entry point in the panic message).
#[track_caller]
pub(crate) fn check(s: &PwDwShape, k: &str, input: usize, scratch: usize, out: usize, pw: &Stage<'_>, dw: &Stage<'_>) {
    let (pws, dws) = (&s.pw, &s.dw);
    assert!(
        pws.pixels == dws.in_h * dws.in_w && pws.out_c == dws.in_c && dws.in_c == dws.out_c && dws.stride_h >= 1,
        "{k}: pointwise {pws:?} does not feed depthwise {dws:?}"
    );
    assert!(
        pw.ep.residual.is_none() && dw.ep.residual.is_none(),
        "{k}: residual epilogues are not supported (the compiler does not fuse such layers)"
    );
    check_len(k, "input", input, pws.pixels * pws.in_c);
    assert!(
        scratch >= s.scratch_len(),
        "{k}: `scratch.rows` has {scratch} elements, one band needs {}",
        s.scratch_len()
    );
    check_len(k, "out", out, dws.out_len());
}

/// Checks the AMX scratch (`amx_scratch` floats) of a banded pair (`k`
/// names the entry point).
#[track_caller]
pub(crate) fn check_amx(s: &PwDwShape, k: &str, amx_scratch: usize) {
    let need = amx::scratch_len(s.pw.pixels, s.pw.in_c, s.pw.out_c, s.pw_tiles.order);
    assert!(
        amx_scratch >= need,
        "{k}: `scratch.amx` has {amx_scratch} elements, {need} needed"
    );
}

/// `depthwise(pointwise(input))` without the intermediate tensor: for each
/// band of [`PwDwShape::band`] output rows, the pointwise rows its windows
/// read are computed into `scratch.rows` (rows the previous band computed
/// are moved to the front, not recomputed), then the band's depthwise
/// rows; the pointwise layer on the AMX tiles where the CPU has them when
/// `scratch.amx` is given.
///
/// Every value is computed by the same kernels on the same data as the two
/// layers one after the other ([`pointwise`](super::pointwise) gives a
/// pixel the same bits wherever it falls in a call; [`depthwise`] on the
/// rows of [`conv_rows`] sees the same windows), so the result is bit for
/// bit that of the unfused pair (`runtime/tests/all/fused.rs`).
///
/// `pw.weights` and `dw.weights` are packed as for
/// [`pointwise`](super::pointwise) and [`depthwise`]; neither epilogue may
/// have a residual.
///
/// # Panics
/// If the shapes disagree, a slice length does not match, or a scratch is
/// too short.
#[inline]
pub fn pointwise_depthwise(
    s: &PwDwShape,
    pw: Stage<'_>,
    dw: Stage<'_>,
    input: &[f32],
    scratch: BandScratch<'_>,
    out: &mut [f32],
) {
    const K: &str = "simd::pointwise_depthwise";
    check(s, K, input.len(), scratch.rows.len(), out.len(), &pw, &dw);
    if let Some(a) = &scratch.amx {
        check_amx(s, K, a.len());
    }
    bands(s, 0..s.dw.out_h, pw, dw, input, scratch, out);
}

/// [`pointwise_depthwise`] for output rows `rows` only (`out` holds just
/// those rows); the shapes were checked by the caller.
pub(crate) fn bands(
    s: &PwDwShape,
    rows: Range<usize>,
    pw: Stage<'_>,
    dw: Stage<'_>,
    input: &[f32],
    scratch: BandScratch<'_>,
    out: &mut [f32],
) {
    let BandScratch { rows: scratch, mut amx } = scratch;
    let dws = &s.dw;
    let row_in = dws.in_w * s.pw.in_c;
    let row_mid = dws.in_w * dws.in_c;
    let row_out = dws.out_w * dws.out_c;
    // Pointwise output rows held in `scratch`, from its start.
    let mut held = 0..0;
    // Whether `amx`'s scratch holds the pointwise weights split.
    let mut b_split = false;
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + s.band.max(1)).min(rows.end);
        let (sub, ins) = conv_rows(dws, r0..r1);
        // Rows of the previous band this one reads again: to the front.
        let kept = if held.start <= ins.start && ins.start < held.end {
            held.end.min(ins.end) - ins.start
        } else {
            0
        };
        if kept > 0 && held.start != ins.start {
            let from = (ins.start - held.start) * row_mid;
            scratch.copy_within(from..from + kept * row_mid, 0);
        }
        let new = ins.start + kept..ins.end;
        if !new.is_empty() {
            let part = Pointwise {
                shape: PointwiseShape {
                    pixels: new.len() * dws.in_w,
                    ..s.pw
                },
                tiles: s.pw_tiles,
            };
            let x = &input[new.start * row_in..new.end * row_in];
            let y = &mut scratch[kept * row_mid..ins.len() * row_mid];
            // The weights are split once, by the first band on the tiles.
            b_split |= pointwise_split(&part, x, pw.weights, pw.ep, y, amx.as_deref_mut(), b_split);
        }
        depthwise(
            &Depthwise {
                shape: sub,
                tiles: s.dw_tiles,
            },
            &scratch[..ins.len() * row_mid],
            dw.weights,
            dw.ep,
            &mut out[(r0 - rows.start) * row_out..(r1 - rows.start) * row_out],
        );
        held = ins;
        r0 = r1;
    }
}
