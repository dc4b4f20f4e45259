//! The scratch of the AMX pointwise kernel (`simd::pointwise_amx`): its
//! tile geometry and size, which generated code reserves at the arena's end.

use crate::pack::PANEL as PANEL_;
use crate::PwOrder;

/// Input channels per K step of the AMX kernel (one A tile row: 32 bf16).
pub const K: usize = 32;
/// Bytes of one AMX tile (16 rows of 64 bytes).
pub const TILE: usize = 1024;
/// Bytes of one K step of one panel (or one row tile) in the AMX format:
/// three bf16 planes.
pub const STEP: usize = 3 * TILE;

/// Participants of the parallel mode that run AMX layers, each with its own
/// part of the scratch (`par::pointwise_amx` splits a layer over at most
/// this many threads).
pub const PARTS: usize = 2;

/// Number of `f32` of scratch the AMX pointwise kernel needs for `pixels`
/// pixels of `in_c` input and `out_c` output channels in `order`, in 1 KiB
/// tiles of `ceil(in_c / 32)` K steps, three planes each: pixels outer,
/// two blocks of 32 pixels' inputs (two row tiles each) and all the
/// weights (`ceil(out_c / 16)` panels), and two 32 x 32 staging blocks;
/// channels outer, all the pixels' inputs (blocks of 32), two strips'
/// weights (four panels) and a 32 x 32 block of sums per block; plus 64
/// bytes of alignment slack.
pub const fn scratch_len(pixels: usize, in_c: usize, out_c: usize, order: PwOrder) -> usize {
    let step = in_c.div_ceil(K) * STEP;
    let (row_tiles, panels, sums) = match order {
        PwOrder::PixelsOuter => (4, out_c.div_ceil(PANEL_), 2),
        PwOrder::ChannelsOuter => (2 * pixels.div_ceil(32), 4, pixels.div_ceil(32)),
    };
    ((row_tiles + panels) * step + sums * 32 * 32 * 4 + 64) / 4
}
