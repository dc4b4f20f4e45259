//! A pointwise layer and the depthwise layer that reads its output, run
//! together in bands of output rows, so the pointwise output (the largest
//! tensors of a MobileNet: v1's 112x112x64, v2's 112x112x96 expansions)
//! is never stored whole: each band's input rows are computed into a small
//! scratch buffer that stays in L2 and is consumed right away.

use super::gemm::pointwise_amx_split;
use super::{depthwise, pointwise};
use crate::abi::{amx, conv_rows, PointwiseShape, PwDwShape};
use crate::kernels::check_len;
use crate::Epilogue;
use core::ops::Range;

/// Checks the shapes of `s` agree and the slices have their lengths (`k`
/// names the entry point in the panic message).
#[track_caller]
pub(crate) fn check(
    s: &PwDwShape,
    k: &str,
    input: usize,
    scratch: usize,
    out: usize,
    pw_ep: &Epilogue<'_>,
    dw_ep: &Epilogue<'_>,
) {
    let (pw, dw) = (&s.pw, &s.dw);
    assert!(
        pw.pixels == dw.in_h * dw.in_w && pw.out_c == dw.in_c && dw.in_c == dw.out_c && dw.stride_h >= 1,
        "{k}: pointwise {pw:?} does not feed depthwise {dw:?}"
    );
    assert!(
        pw_ep.residual.is_none() && dw_ep.residual.is_none(),
        "{k}: residual epilogues are not supported (the compiler does not fuse such layers)"
    );
    check_len(k, "input", input, pw.pixels * pw.in_c);
    assert!(
        scratch >= s.scratch_len(),
        "{k}: `scratch` has {scratch} elements, one band needs {}",
        s.scratch_len()
    );
    check_len(k, "out", out, dw.out_len());
}

/// `depthwise(pointwise(input))` without the intermediate tensor: for each
/// band of [`PwDwShape::band`] output rows, the pointwise rows its windows
/// read are computed into `scratch` (rows the previous band computed are
/// moved to the front, not recomputed), then the band's depthwise rows.
///
/// Every value is computed by the same kernels on the same data as the two
/// layers one after the other ([`pointwise`] gives a pixel the same bits
/// wherever it falls in a call; [`depthwise`] on the rows of
/// [`conv_rows`] sees the same windows), so the result is bit for bit that
/// of the unfused pair (`runtime/tests/fused.rs`).
///
/// `pw_weights` and `dw_weights` are packed as for [`pointwise`] and
/// [`depthwise`]; neither epilogue may have a residual.
///
/// # Panics
/// If the shapes disagree, a slice length does not match, or `scratch` has
/// fewer than [`PwDwShape::scratch_len`] elements.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn pointwise_depthwise(
    s: &PwDwShape,
    pw_weights: &[f32],
    pw_ep: &Epilogue<'_>,
    dw_weights: &[f32],
    dw_ep: &Epilogue<'_>,
    input: &[f32],
    scratch: &mut [f32],
    out: &mut [f32],
) {
    whole(s, pw_weights, None, pw_ep, dw_weights, dw_ep, input, scratch, out);
}

/// [`pointwise_depthwise`] with the pointwise layer on the AMX tiles where
/// the CPU has them ([`pointwise_amx`](super::pointwise_amx)): `amx_scratch` at least
/// [`amx::scratch_len`] floats for its pixels-outer order. Bit for
/// bit the unfused pair of [`pointwise_amx`](super::pointwise_amx) and [`depthwise`].
///
/// # Panics
/// As [`pointwise_depthwise`]; if `amx_scratch` is too short.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn pointwise_depthwise_amx(
    s: &PwDwShape,
    pw_weights: &[f32],
    pw_ep: &Epilogue<'_>,
    dw_weights: &[f32],
    dw_ep: &Epilogue<'_>,
    input: &[f32],
    scratch: &mut [f32],
    amx_scratch: &mut [f32],
    out: &mut [f32],
) {
    whole(
        s,
        pw_weights,
        Some(amx_scratch),
        pw_ep,
        dw_weights,
        dw_ep,
        input,
        scratch,
        out,
    );
}

/// [`pointwise_depthwise`] (`amx` None) and [`pointwise_depthwise_amx`]
/// (`amx` its scratch): checks every argument, then all output rows.
#[allow(clippy::too_many_arguments)]
#[inline]
#[track_caller]
fn whole(
    s: &PwDwShape,
    pw_weights: &[f32],
    amx: Option<&mut [f32]>,
    pw_ep: &Epilogue<'_>,
    dw_weights: &[f32],
    dw_ep: &Epilogue<'_>,
    input: &[f32],
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let name = match amx {
        Some(_) => "simd::pointwise_depthwise_amx",
        None => "simd::pointwise_depthwise",
    };
    check(s, name, input.len(), scratch.len(), out.len(), pw_ep, dw_ep);
    if let Some(a) = &amx {
        check_amx(s, a.len());
    }
    bands(
        s,
        0..s.dw.out_h,
        pw_weights,
        amx,
        pw_ep,
        dw_weights,
        dw_ep,
        input,
        scratch,
        out,
    );
}

/// Checks the AMX scratch (`amx_scratch` floats) of a banded pair.
#[track_caller]
pub(crate) fn check_amx(s: &PwDwShape, amx_scratch: usize) {
    let need = amx::scratch_len(s.pw.pixels, s.pw.in_c, s.pw.out_c, s.pw_tiles.order);
    assert!(
        amx_scratch >= need,
        "simd::pointwise_depthwise_amx: `amx_scratch` has {amx_scratch} elements, {need} needed"
    );
}

/// [`pointwise_depthwise`] for output rows `rows` only (`out` holds just
/// those rows), the pointwise rows through [`pointwise_amx`](super::pointwise_amx) when `amx`
/// gives its scratch; the shapes were checked by the caller.
#[allow(clippy::too_many_arguments)]
pub(crate) fn bands(
    s: &PwDwShape,
    rows: Range<usize>,
    pw_weights: &[f32],
    mut amx: Option<&mut [f32]>,
    pw_ep: &Epilogue<'_>,
    dw_weights: &[f32],
    dw_ep: &Epilogue<'_>,
    input: &[f32],
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let dw = &s.dw;
    let row_in = dw.in_w * s.pw.in_c;
    let row_mid = dw.in_w * dw.in_c;
    let row_out = dw.out_w * dw.out_c;
    // Pointwise output rows held in `scratch`, from its start.
    let mut held = 0..0;
    // Whether `amx`'s scratch holds the pointwise weights split.
    let mut b_split = false;
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + s.band.max(1)).min(rows.end);
        let (sub, ins) = conv_rows(dw, r0..r1);
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
            let part = PointwiseShape {
                pixels: new.len() * dw.in_w,
                ..s.pw
            };
            let x = &input[new.start * row_in..new.end * row_in];
            let y = &mut scratch[kept * row_mid..ins.len() * row_mid];
            match &mut amx {
                // The weights are split once, by the first band on the tiles.
                Some(amx_scratch) => {
                    b_split |= pointwise_amx_split(&part, &s.pw_tiles, x, pw_weights, pw_ep, y, amx_scratch, b_split)
                }
                None => pointwise(&part, &s.pw_tiles, x, pw_weights, pw_ep, y),
            }
        }
        depthwise(
            &sub,
            &s.dw_tiles,
            &scratch[..ins.len() * row_mid],
            dw_weights,
            dw_ep,
            &mut out[(r0 - rows.start) * row_out..(r1 - rows.start) * row_out],
        );
        held = ins;
        r0 = r1;
    }
}
