//! Geometry of the layers generated code runs.

use core::ops::Range;

/// Geometry of a 2-D convolution (full, depthwise) on NHWC tensors.
///
/// Output pixel `(oy, ox)` reads input rows `oy*stride_h - pad_top + ky` and
/// columns `ox*stride_w - pad_left + kx`; reads outside the input see the pad
/// value (zero, or the per-channel value given to `conv2d`). Padding at the
/// bottom/right is implied by `out_h`/`out_w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Input channels.
    pub in_c: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Output channels (equal to `in_c` for depthwise).
    pub out_c: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Rows of padding above the input.
    pub pad_top: usize,
    /// Columns of padding left of the input.
    pub pad_left: usize,
}

impl ConvShape {
    /// Number of input elements (`in_h * in_w * in_c`).
    pub const fn in_len(&self) -> usize {
        self.in_h * self.in_w * self.in_c
    }
    /// Number of output elements (`out_h * out_w * out_c`).
    pub const fn out_len(&self) -> usize {
        self.out_h * self.out_w * self.out_c
    }
    /// Rows of padding below the input that the last output row's window
    /// The input pixel (`iy * in_w + ix`) that tap `(ky, kx)` of output
    /// pixel `(oy, ox)` reads; `None` where it falls in the padding.
    #[inline(always)]
    pub fn input_at(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
        let iy = (oy * self.stride_h + ky)
            .checked_sub(self.pad_top)
            .filter(|&v| v < self.in_h)?;
        let ix = (ox * self.stride_w + kx)
            .checked_sub(self.pad_left)
            .filter(|&v| v < self.in_w)?;
        Some(iy * self.in_w + ix)
    }

    /// reaches (implied by `out_h`).
    pub const fn pad_bottom(&self) -> usize {
        ((self.out_h - 1) * self.stride_h + self.kernel_h).saturating_sub(self.in_h + self.pad_top)
    }
    /// Columns of padding right of the input that the last output column's
    /// window reaches (implied by `out_w`).
    pub const fn pad_right(&self) -> usize {
        ((self.out_w - 1) * self.stride_w + self.kernel_w).saturating_sub(self.in_w + self.pad_left)
    }
}

/// Whether `conv2d` takes its direct route for `s` on a vector instruction
/// set (AVX-512, AVX2, NEON): 3x3 kernels, horizontal stride 1 or 2, 1 to 4
/// input channels (every MobileNet's first layer). Output rows are then
/// computed from a copy of their three input rows by broadcast-FMA register
/// tiles; other shapes, and the portable path, gather im2col blocks for the
/// GEMM micro-kernel.
pub const fn conv2d_direct(s: &ConvShape) -> bool {
    s.kernel_h == 3
        && s.kernel_w == 3
        && (s.stride_w == 1 || s.stride_w == 2)
        && s.stride_h >= 1
        && s.in_c >= 1
        && s.in_c <= 4
        && s.out_c >= 1
        && s.out_h >= 1
        && s.out_w >= 1
}

/// The geometry of output rows `rows` of a convolution `s` as a convolution
/// of its own: the sub-shape (`out_h = rows.len()`, `in_h` and `pad_top`
/// adjusted) and the input rows it reads (halo included; clipped to the
/// input, the rest is padding as in `s`).
///
/// Each output value of the sub-convolution on those input rows sees the
/// same window, the same taps and the same padding as in `s`: the parallel
/// mode splits layers by it, and banded pairs compute their bands by it.
///
/// # Panics
/// If `rows` is not inside `0..s.out_h` or a stride is 0.
pub fn conv_rows(s: &ConvShape, rows: Range<usize>) -> (ConvShape, Range<usize>) {
    assert!(
        rows.start < rows.end && rows.end <= s.out_h && s.stride_h >= 1,
        "conv_rows: rows {rows:?} not inside 0..{} (or stride 0)",
        s.out_h
    );
    // Input rows (in padded coordinates: + pad_top) the windows cover.
    let lo = rows.start * s.stride_h;
    let hi = (rows.end - 1) * s.stride_h + s.kernel_h;
    let padded = |r: usize| r.clamp(s.pad_top, s.pad_top + s.in_h) - s.pad_top;
    let (r0, r1) = (padded(lo), padded(hi));
    // Padding rows above the sub-input: what lies above r0 in the window.
    let pad_top = (r0 + s.pad_top).saturating_sub(lo);
    let in_h = r1 - r0;
    // A window entirely below the input: no rows, all padding.
    let pad_top = if in_h == 0 { 0 } else { pad_top };
    let sub = ConvShape {
        in_h,
        out_h: rows.end - rows.start,
        pad_top,
        ..*s
    };
    (sub, r0..r1)
}

/// Geometry of a pointwise (1x1, stride 1) convolution: a matrix product
/// `[pixels x in_c] * [in_c x out_c]`. A fully connected layer is the case
/// `pixels == 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointwiseShape {
    /// Number of pixels (`h * w`).
    pub pixels: usize,
    /// Input channels.
    pub in_c: usize,
    /// Output channels.
    pub out_c: usize,
}

/// A pointwise layer and the depthwise layer that alone reads its output,
/// run together in bands of output rows (`simd::pointwise_depthwise`): the
/// geometry, both layers' cache tiles and the band height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PwDwShape {
    /// The pointwise layer: `pixels == dw.in_h * dw.in_w`, `out_c == dw.in_c`.
    pub pw: PointwiseShape,
    /// Its cache tiles (run on each band's rows).
    pub pw_tiles: crate::PointwiseTiles,
    /// The depthwise layer.
    pub dw: ConvShape,
    /// Its cache tiles.
    pub dw_tiles: crate::DepthwiseTiles,
    /// Depthwise output rows per band (at least 1).
    pub band: usize,
}

impl PwDwShape {
    /// Pointwise output rows one band reads at most (its windows' rows).
    pub const fn scratch_rows(&self) -> usize {
        let band = if self.band == 0 { 1 } else { self.band };
        let rows = (band - 1) * self.dw.stride_h + self.dw.kernel_h;
        if rows < self.dw.in_h {
            rows
        } else {
            self.dw.in_h
        }
    }

    /// Elements of scratch `simd::pointwise_depthwise` needs (one band's
    /// rows of the pointwise output); the parallel entry point uses two of
    /// these, one per half of the output rows.
    pub const fn scratch_len(&self) -> usize {
        self.scratch_rows() * self.dw.in_w * self.dw.in_c
    }
}
