//! The schedule rules: which register tile, cache tiles and loop order each
//! layer gets on a [`Target`], and why (one line, written into the
//! generated code's docs and shown by `mncc inspect`).
//!
//! * Weights of `pointwise` and `conv2d` are packed in panels of
//!   [`PANEL`](mncc_abi::pack::PANEL) (16) output channels, the layout every instruction set
//!   reads.
//! * `pointwise` ([`pointwise`]): `kc` = all input channels if the `MR x
//!   kc` block of input rows that one register tile row reuses across all
//!   output panels fits L1, else `in_c` split into the fewest equal blocks
//!   (a multiple of 8) that fit. The weight panel streams from L2 (the
//!   hardware prefetcher follows it), so it is not counted; every extra
//!   K-block costs a read-modify-write of the output. Measured on the
//!   MobileNet shapes (AVX-512, 48 KiB L1, `bench/kernels --compare`): kc =
//!   in_c (up to 1024) is never slower than 128 or 256 and up to 15%
//!   faster. Loop order `ChannelsOuter` when the weights are larger than
//!   the input activations (late layers: each weight panel is loaded
//!   once), else `PixelsOuter` (early layers: each input row once).
//! * `depthwise` ([`depthwise`]): `rows` = the output rows whose input rows
//!   (`rows * stride + k - 1` rows of `in_w * c` floats) fit half of L1, at
//!   least 1.
//! * `conv2d` ([`conv2d`]): no cache tiles. The runtime takes a direct route
//!   for 3x3 kernels on 1 to 4 input channels (every MobileNet's first
//!   layer; one output row at a time) on vector instruction sets, and
//!   otherwise blocks of output pixels whose im2col rows fit its 16 KiB
//!   stack buffer.
//! * AMX ([`use_amx`]): which pointwise layers run on the AMX tiles on the
//!   `x86-64-amx` target.
//! * Bands: see [`super::bands`].

use crate::target::Target;
use mncc_abi::{ConvShape, DepthwiseTiles, PointwiseShape, PointwiseTiles, PwOrder, RegisterTiles};

/// A pointwise layer's schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointwise {
    /// Register tile rows (pixels): the target's, or 1 for a dense layer.
    pub mr: usize,
    /// Register tile columns (output channels).
    pub nr: usize,
    /// Cache tiles and loop order.
    pub tiles: PointwiseTiles,
    /// Whether it runs on the AMX tiles where the CPU has them.
    pub amx: bool,
    /// Why, one line.
    pub why: String,
}

/// The schedule of a pointwise layer (or a dense one: one pixel) of shape
/// `s` on `t`.
pub fn pointwise(t: &Target, s: &PointwiseShape) -> Pointwise {
    let nr = t.tiles.pw_nr;
    let mr = if s.pixels == 1 { 1 } else { t.tiles.pw_mr };
    let budget = t.l1_bytes / (4 * mr); // input channels whose MR x kc block of input rows fits L1
    let kc = if s.in_c <= budget {
        s.in_c
    } else {
        let blocks = s.in_c.div_ceil(budget.max(8));
        (s.in_c.div_ceil(blocks)).div_ceil(8) * 8
    };
    let weight_bytes = s.in_c * s.out_c * 4;
    let act_bytes = s.pixels * s.in_c * 4;
    let order = if weight_bytes > act_bytes {
        PwOrder::ChannelsOuter
    } else {
        PwOrder::PixelsOuter
    };
    let mut why = format!(
        "kc={kc}: a {mr}x{kc} block of input rows fits L1 (NR={nr}); {} ({} KiB weights vs {} KiB input)",
        if order == PwOrder::ChannelsOuter {
            "channels-outer"
        } else {
            "pixels-outer"
        },
        weight_bytes / 1024,
        act_bytes / 1024
    );
    let amx = use_amx(t, s);
    if amx {
        why += &format!(
            "; AMX tiles (bf16x6), {} scratch floats per thread",
            mncc_abi::amx::scratch_len(s.pixels, s.in_c, s.out_c, order)
        );
    }
    Pointwise {
        mr,
        nr,
        tiles: PointwiseTiles { kc, order },
        amx,
        why,
    }
}

/// The schedule of a depthwise layer of shape `s` on `t`: its cache tiles
/// and why.
pub fn depthwise(t: &Target, s: &ConvShape) -> (DepthwiseTiles, String) {
    let row_bytes = (s.in_w * s.in_c * 4).max(1);
    let budget_rows = (t.l1_bytes / 2) / row_bytes; // input rows that fit half of L1
    let rows = (budget_rows.saturating_sub(s.kernel_h.saturating_sub(1)) / s.stride_h).clamp(1, s.out_h.max(1));
    let why = format!(
        "{rows} output rows read {} input rows of {} floats, within half of L1",
        rows * s.stride_h + s.kernel_h - 1,
        s.in_w * s.in_c
    );
    (DepthwiseTiles { rows }, why)
}

/// The route `conv2d` takes for `s` on `t` (whether direct) and why.
pub fn conv2d(t: &Target, s: &ConvShape) -> (bool, String) {
    let direct = t.tiles != RegisterTiles::PORTABLE && mncc_abi::conv2d_direct(s);
    let why = if direct {
        "direct route: each output row from a copy of its 3 input rows, broadcast-FMA register tiles of pixels x channels".into()
    } else {
        format!(
            "im2col blocks of output pixels through the {}x{} pointwise micro-kernel",
            t.tiles.pw_mr, t.tiles.pw_nr
        )
    };
    (direct, why)
}

/// Pointwise layers with fewer pixels stay on AVX-512 on an AMX target:
/// the tiles gain nothing there (see [`use_amx`]).
pub const AMX_MIN_PIXELS: usize = 64;

/// Pointwise layers with fewer input or output channels stay on AVX-512 on
/// an AMX target (see [`use_amx`]).
pub const AMX_MIN_CHANNELS: usize = 32;

/// Whether a pointwise layer runs on the AMX tiles on target `t`: at least
/// [`AMX_MIN_PIXELS`] pixels and [`AMX_MIN_CHANNELS`] input and output
/// channels. A tile product covers 32 input channels of 32 pixels by 16
/// output channels, and every pixel costs vector work (splitting its
/// inputs, the epilogue) the AVX-512 kernel does not have; narrower
/// layers waste most of the tiles. Measured in whole models (`mncc bench
/// --layers`, AMX / AVX-512 time per layer): v1 1.0 224's 112x112x32->64
/// to 14x14x512->512 0.52-0.70, its 7x7 layers (49 pixels) 0.95-0.96 (both
/// on AVX-512: noise); v2 1.0 224's 28x28x32->192 0.77-0.89, 14x14 layers
/// 0.63-0.88, but 112x112x32->16 1.30, 112x112x16->96 1.10, 56x56x144->24
/// 1.08, 56x56x24->144 0.99-1.06; v2 0.35 128's 16x16x48->16 2.33,
/// 16x16x96->16 1.28, 8x8x32->192 0.70-0.72, 8x8x144->32 1.03.
/// The first AMX layer of an inference also pays the tiles' warm-up
/// (about 5 us after the classifier and the layers before ran without
/// them: v2 0.35 128's first AMX layer 0.0079-0.0090 ms against 0.0042-0.0047
/// for the same work later); v2 0.35 128, whose AMX layers are 2.2M MACs,
/// runs the same on either target (whole model alternated, 0.998), and
/// the models with more AMX work gain (v1 0.25 128, 8.4M MACs: 0.89).
pub fn use_amx(t: &Target, s: &PointwiseShape) -> bool {
    t.amx && s.pixels >= AMX_MIN_PIXELS && s.in_c >= AMX_MIN_CHANNELS && s.out_c >= AMX_MIN_CHANNELS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(pixels: usize, in_c: usize, out_c: usize) -> PointwiseShape {
        PointwiseShape { pixels, in_c, out_c }
    }

    #[test]
    fn pointwise_kc_is_all_channels_while_the_row_block_fits_l1() {
        // x86-64: 48 KiB L1, MR 12: 1024 input channels per 12-row block.
        let s = pointwise(&Target::X86_64, &pw(3136, 1024, 64));
        assert_eq!((s.mr, s.nr, s.tiles.kc), (12, 32, 1024));
        // 1280 > 1024: two blocks of 640.
        assert_eq!(pointwise(&Target::X86_64, &pw(49, 1280, 64)).tiles.kc, 640);
        // A dense layer (one pixel): MR 1, so all of a 4096-channel input fits.
        let d = pointwise(&Target::X86_64, &pw(1, 4096, 1000));
        assert_eq!((d.mr, d.tiles.kc), (1, 4096));
        // Blocks are multiples of 8: 1100 on the portable target (32 KiB L1,
        // MR 2: 4096 fit) is one block; on AVX2 (MR 6: 1365 fit) too.
        assert_eq!(pointwise(&Target::PORTABLE, &pw(100, 1100, 16)).tiles.kc, 1100);
        assert_eq!(pointwise(&Target::X86_64_AVX2, &pw(100, 2000, 16)).tiles.kc, 1000);
    }

    #[test]
    fn pointwise_order_follows_the_larger_operand() {
        // 112x112x32 -> 64: 8 KiB of weights against 1.5 MiB of input.
        assert_eq!(
            pointwise(&Target::X86_64, &pw(12544, 32, 64)).tiles.order,
            PwOrder::PixelsOuter
        );
        // 7x7x1024 -> 1024: 4 MiB of weights against 196 KiB.
        assert_eq!(
            pointwise(&Target::X86_64, &pw(49, 1024, 1024)).tiles.order,
            PwOrder::ChannelsOuter
        );
    }

    #[test]
    fn amx_only_where_the_tiles_pay() {
        let t = Target::X86_64_AMX;
        assert!(use_amx(&t, &pw(64, 32, 32)));
        assert!(!use_amx(&t, &pw(49, 1024, 1024)), "7x7 layers stay on AVX-512");
        assert!(!use_amx(&t, &pw(12544, 32, 16)), "narrow outputs stay on AVX-512");
        assert!(!use_amx(&Target::X86_64, &pw(3136, 128, 128)), "only on the AMX target");
        assert!(pointwise(&t, &pw(3136, 128, 128)).why.contains("AMX tiles"));
    }

    #[test]
    fn depthwise_rows_fit_half_of_l1() {
        let s = ConvShape {
            in_h: 112,
            in_w: 112,
            in_c: 64,
            out_h: 56,
            out_w: 56,
            out_c: 64,
            kernel_h: 3,
            kernel_w: 3,
            stride_h: 2,
            stride_w: 2,
            pad_top: 0,
            pad_left: 0,
        };
        // 24 KiB / (112 * 64 * 4 B) = 0 whole rows: at least one output row.
        assert_eq!(depthwise(&Target::X86_64, &s).0.rows, 1);
        let small = ConvShape {
            in_h: 7,
            in_w: 7,
            in_c: 32,
            out_h: 7,
            out_w: 7,
            pad_top: 1,
            pad_left: 1,
            stride_h: 1,
            stride_w: 1,
            out_c: 32,
            ..s
        };
        // 24 KiB / 896 B = 27 input rows: all 7 output rows.
        assert_eq!(depthwise(&Target::X86_64, &small).0.rows, 7);
    }

    #[test]
    fn conv2d_route_is_direct_only_on_vector_targets() {
        let first = ConvShape {
            in_h: 224,
            in_w: 224,
            in_c: 3,
            out_h: 112,
            out_w: 112,
            out_c: 32,
            kernel_h: 3,
            kernel_w: 3,
            stride_h: 2,
            stride_w: 2,
            pad_top: 0,
            pad_left: 0,
        };
        assert!(conv2d(&Target::X86_64, &first).0);
        assert!(conv2d(&Target::AARCH64, &first).0);
        assert!(!conv2d(&Target::PORTABLE, &first).0);
        let wide = ConvShape { in_c: 8, ..first };
        assert!(!conv2d(&Target::X86_64, &wide).0, "more than 4 input channels: im2col");
    }
}
