//! Kernels. Each is the portable scalar path (always compiled, the test
//! oracle for later SIMD paths); its doc states the weight packing and the
//! preconditions.
//!
//! Kernel-name grammar: `<op>[_<variant>]`, e.g. `conv2d`, `depthwise`,
//! `pointwise`, `global_avg_pool`, `softmax`, `add`. Register tiles are const
//! generics (`MR`, `NR`, `CT`), cache tiles and loop order are `*Tiles` fields.

use crate::{Epilogue, Layout, Pixel};

/// Geometry of a 2-D convolution (full, depthwise) on NHWC tensors.
///
/// Output pixel `(oy, ox)` reads input rows `oy*stride_h - pad_top + ky` and
/// columns `ox*stride_w - pad_left + kx`; reads outside the input see the pad
/// value (zero, or the per-channel value given to [`conv2d`]). Padding at the
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
}

/// Cache tiling of [`conv2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dTiles {
    /// Output rows computed per block.
    pub rows: usize,
}

/// Full convolution (groups = 1), any kernel size, stride and padding; used
/// for the first layer (3 input channels) and any conv that is neither
/// depthwise nor a stride-1 1x1.
///
/// * `input`: `in_h * in_w * in_c` elements in `layout`; `T` is `f32` or `u8`
///   (pixels whose normalization was folded into `weights`).
/// * `pad_value`: `in_c` values that reads outside the input see (the raw
///   value that normalizes to 0 when normalization was folded; else zeros).
/// * `weights`: packed `[kernel_h][kernel_w][in_c][out_c]`.
/// * `out`: `out_h * out_w * out_c`, NHWC.
/// * `NR`: output channels per register tile (any `NR >= 1`).
pub fn conv2d<T: Pixel, const NR: usize>(
    s: &ConvShape,
    tiles: &Conv2dTiles,
    layout: Layout,
    input: &[T],
    pad_value: &[f32],
    weights: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    let _ = (s, tiles, layout, input, pad_value, weights, ep, out);
    todo!("conv2d")
}

/// Cache tiling of [`depthwise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseTiles {
    /// Output rows computed per block.
    pub rows: usize,
}

/// Depthwise convolution (groups = channels): `out_c == in_c`, any kernel
/// size, stride and padding (pad value zero).
///
/// * `weights`: packed `[kernel_h][kernel_w][c]` (channel innermost).
/// * `CT`: channels per register tile (any `CT >= 1`; remainder handled).
///
/// The interior (output pixels whose window lies inside the input) runs
/// without per-tap bounds checks; only the border pixels test the bounds.
pub fn depthwise<const CT: usize>(
    s: &ConvShape,
    tiles: &DepthwiseTiles,
    input: &[f32],
    weights: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    let _ = (s, tiles, input, weights, ep, out);
    todo!("depthwise")
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

/// Loop order of [`pointwise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PwOrder {
    /// For each block of `MR` pixels, all output-channel panels: activations
    /// are read once, the weights once per pixel block (small weights).
    PixelsOuter,
    /// For each panel of `NR` output channels, all pixel blocks: each weight
    /// panel is read once and stays in cache (weights larger than activations).
    ChannelsOuter,
}

/// Cache tiling of [`pointwise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointwiseTiles {
    /// Input channels per cache block (`1..=in_c`); partial sums over blocks
    /// are accumulated in `out` and the epilogue applied after the last block.
    pub kc: usize,
    /// Loop order.
    pub order: PwOrder,
}

/// Number of `f32` in the packed weights of [`pointwise`] for `NR`.
pub const fn pointwise_packed_len(in_c: usize, out_c: usize, nr: usize) -> usize {
    out_c.div_ceil(nr) * nr * in_c
}

/// Pointwise (1x1, stride 1) convolution / fully connected layer.
///
/// * `input`: `pixels * in_c`, NHWC.
/// * `packed`: `ceil(out_c / NR)` panels, each `[in_c][NR]`: element
///   `packed[(p * in_c + ci) * NR + j]` is the weight from input channel `ci`
///   to output channel `p * NR + j`, zero where that channel is `>= out_c`.
///   Length [`pointwise_packed_len`].
/// * `out`: `pixels * out_c`, NHWC.
/// * `MR` pixels by `NR` output channels per register tile.
pub fn pointwise<const MR: usize, const NR: usize>(
    s: &PointwiseShape,
    tiles: &PointwiseTiles,
    input: &[f32],
    packed: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    let _ = (s, tiles, input, packed, ep, out);
    todo!("pointwise")
}

/// Global average pooling: `input` is `pixels * c` (NHWC), `out` is `c`.
pub fn global_avg_pool(pixels: usize, c: usize, input: &[f32], out: &mut [f32]) {
    let _ = (pixels, c, input, out);
    todo!("global_avg_pool")
}

/// Numerically stable softmax over `input` (subtracting its max), into `out`.
pub fn softmax(input: &[f32], out: &mut [f32]) {
    let _ = (input, out);
    todo!("softmax")
}

/// Elementwise `out = clamp(a + b + bias[i % c], min, max)` where `c` is the
/// bias length; the residual of `ep` must be `None` (use `b`).
pub fn add(a: &[f32], b: &[f32], ep: &Epilogue<'_>, out: &mut [f32]) {
    let _ = (a, b, ep, out);
    todo!("add")
}
