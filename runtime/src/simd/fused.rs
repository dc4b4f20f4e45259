//! Depthwise convolution followed by a pointwise one, in bands of rows.

use crate::kernels::{check_epilogue, check_len, ConvShape, DepthwiseTiles, PointwiseShape, PointwiseTiles};
use crate::Epilogue;

/// Tiles of [`depthwise_pointwise`]: the band of depthwise output rows
/// that goes through the pointwise layer at once, and each layer's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DwPwTiles {
    /// Depthwise output rows per band (at least 1).
    pub band: usize,
    /// The depthwise layer's tiles (within a band).
    pub dw: DepthwiseTiles,
    /// The pointwise layer's tiles (on a band's pixels).
    pub pw: PointwiseTiles,
}

/// Floats of scratch [`depthwise_pointwise`] needs: one band of the
/// depthwise output.
pub const fn depthwise_pointwise_scratch_len(s: &ConvShape, band: usize) -> usize {
    band * s.out_w * s.out_c
}

/// [`depthwise`](super::depthwise) with shape `s`, weights `dw_weights`
/// and epilogue `dw_ep` (no residual), then [`pointwise`](super::pointwise)
/// from `s.out_c` to `out_c` channels with `pw_packed` and `pw_ep`, one
/// band of `tiles.band` depthwise output rows at a time: the band goes
/// through `scratch` (at least [`depthwise_pointwise_scratch_len`]
/// floats), which stays in cache, instead of a whole intermediate tensor
/// written to memory and read back. Every output value is computed as by
/// the two kernels one after the other, bit for bit.
///
/// # Panics
/// If a slice length does not match the shapes, `tiles.band` is 0, `s` is
/// not depthwise (`in_c != out_c`) or `dw_ep` has a residual.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn depthwise_pointwise(
    s: &ConvShape,
    out_c: usize,
    tiles: &DwPwTiles,
    input: &[f32],
    dw_weights: &[f32],
    dw_ep: &Epilogue<'_>,
    pw_packed: &[f32],
    pw_ep: &Epilogue<'_>,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    const K: &str = "simd::depthwise_pointwise";
    assert!(tiles.band >= 1, "{K}: tiles.band must be at least 1");
    assert!(s.in_c == s.out_c, "{K}: depthwise needs in_c == out_c");
    assert!(dw_ep.residual.is_none(), "{K}: the depthwise epilogue has no residual");
    check_len(K, "input", input.len(), s.in_len());
    check_len(K, "out", out.len(), s.out_h * s.out_w * out_c);
    check_epilogue(K, pw_ep, out_c, out.len());
    let band_len = depthwise_pointwise_scratch_len(s, tiles.band.min(s.out_h));
    assert!(
        scratch.len() >= band_len,
        "{K}: `scratch` has {} elements, a band needs {band_len}",
        scratch.len()
    );
    band_rows(
        s,
        out_c,
        tiles,
        0..s.out_h,
        input,
        dw_weights,
        dw_ep,
        pw_packed,
        pw_ep,
        scratch,
        out,
    );
}

/// Output rows `rows` of [`depthwise_pointwise`] (`out` holds just those
/// rows, `pw_ep`'s residual, if any, the whole output), band by band from
/// `rows.start`. Shared with `par::depthwise_pointwise`, so a row's values
/// do not depend on how the rows were split.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn band_rows(
    s: &ConvShape,
    out_c: usize,
    tiles: &DwPwTiles,
    rows: core::ops::Range<usize>,
    input: &[f32],
    dw_weights: &[f32],
    dw_ep: &Epilogue<'_>,
    pw_packed: &[f32],
    pw_ep: &Epilogue<'_>,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let (c, row_in, row_out) = (s.out_c, s.in_w * s.in_c, s.out_w * out_c);
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + tiles.band).min(rows.end);
        let (sub, ins) = crate::par::conv_rows(s, r0..r1);
        let pixels = (r1 - r0) * s.out_w;
        let band = &mut scratch[..pixels * c];
        super::depthwise(
            &sub,
            &tiles.dw,
            &input[ins.start * row_in..ins.end * row_in],
            dw_weights,
            dw_ep,
            band,
        );
        let ep = Epilogue {
            residual: pw_ep.residual.map(|r| &r[r0 * row_out..r1 * row_out]),
            ..*pw_ep
        };
        let shape = PointwiseShape { pixels, in_c: c, out_c };
        let o = (r0 - rows.start) * row_out..(r1 - rows.start) * row_out;
        super::pointwise(&shape, &tiles.pw, band, pw_packed, &ep, &mut out[o]);
        r0 = r1;
    }
}
