//! Cache tiles (chosen by the compiler's schedule, written into generated
//! code) and register tiles (fixed per instruction set in the runtime).

/// Cache tiling of the reference `kernels::conv2d` (the SIMD `conv2d` sizes
/// its pixel blocks by its stack buffer and takes no tiles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dTiles {
    /// Output rows computed per block.
    pub rows: usize,
}

/// Cache tiling of `depthwise`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseTiles {
    /// Output rows computed per block.
    pub rows: usize,
}

/// Loop order of `pointwise`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PwOrder {
    /// For each block of `MR` pixels, all output-channel panels: activations
    /// are read once, the weights once per pixel block (small weights).
    PixelsOuter,
    /// For each panel of `NR` output channels, all pixel blocks: each weight
    /// panel is read once and stays in cache (weights larger than activations).
    ChannelsOuter,
}

/// Cache tiling of `pointwise`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointwiseTiles {
    /// Input channels per cache block (`1..=in_c`); partial sums over blocks
    /// are accumulated in `out` and the epilogue applied after the last block.
    pub kc: usize,
    /// Loop order.
    pub order: PwOrder,
}

/// The register tiles of one instruction set's kernels: what the runtime
/// instantiates, and what the compiler's schedule sizes its cache tiles
/// and names its kernels by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterTiles {
    /// `f32` lanes per vector register.
    pub lanes: usize,
    /// Pointwise register tile: rows (pixels).
    pub pw_mr: usize,
    /// Pointwise register tile: columns (output channels), a whole number
    /// of weight panels.
    pub pw_nr: usize,
    /// Depthwise: pixels per interior block.
    pub dw_pixels: usize,
}

impl RegisterTiles {
    /// AVX-512F: 32 registers of 16 lanes; pointwise 12 x 32 (2 panels),
    /// depthwise 8 pixels x 16 channels.
    pub const AVX512: RegisterTiles = RegisterTiles {
        lanes: 16,
        pw_mr: 12,
        pw_nr: 32,
        dw_pixels: 8,
    };
    /// AVX2 + FMA: 16 registers of 8 lanes; pointwise 6 x 16, depthwise 4 x 8.
    pub const AVX2: RegisterTiles = RegisterTiles {
        lanes: 8,
        pw_mr: 6,
        pw_nr: 16,
        dw_pixels: 4,
    };
    /// aarch64 NEON: 32 registers of 4 lanes; pointwise 6 x 16, depthwise 4 x 4.
    pub const NEON: RegisterTiles = RegisterTiles {
        lanes: 4,
        pw_mr: 6,
        pw_nr: 16,
        dw_pixels: 4,
    };
    /// The portable path (4-lane arrays): pointwise 2 x 16, depthwise 4 x 4.
    pub const PORTABLE: RegisterTiles = RegisterTiles {
        lanes: 4,
        pw_mr: 2,
        pw_nr: 16,
        dw_pixels: 4,
    };
}

/// A pointwise layer (a dense one: one pixel) as the compiler scheduled it:
/// what generated code hands `simd::pointwise`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pointwise {
    /// Geometry.
    pub shape: crate::PointwiseShape,
    /// Cache tiles and loop order.
    pub tiles: PointwiseTiles,
}

/// A depthwise layer as the compiler scheduled it: what generated code
/// hands `simd::depthwise`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Depthwise {
    /// Geometry (`out_c == in_c`).
    pub shape: crate::ConvShape,
    /// Cache tiles.
    pub tiles: DepthwiseTiles,
}

/// A full convolution (groups = 1): its geometry, the layout of its input,
/// and what reads outside the input see (one value per input channel: the
/// raw value that normalizes to 0 when an input normalization was folded
/// into the weights, else zeros).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2d<'a> {
    /// Geometry.
    pub shape: crate::ConvShape,
    /// The input's layout.
    pub layout: crate::Layout,
    /// `shape.in_c` values.
    pub pad_value: &'a [f32],
}
