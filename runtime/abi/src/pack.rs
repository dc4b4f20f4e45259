//! Packing layouts of the weight blob: how the compiler writes each
//! kernel's weights, and how many values that takes. The compiler's
//! packing functions and the kernels' length checks both come from here.

use crate::ConvShape;

/// Output channels per packed weight panel of the SIMD `pointwise` and
/// `conv2d` kernels (every instruction set reads this layout).
pub const PANEL: usize = 16;

/// Number of values in a `[k][n]` matrix packed in panels of `nr` columns
/// (`ceil(n / nr)` panels of `[k][nr]`, zero-padded past `n`).
pub const fn panels_len(k: usize, n: usize, nr: usize) -> usize {
    n.div_ceil(nr) * nr * k
}

/// Where column `o` of row `i` of a `[k][n]` matrix goes in its packing in
/// panels of `nr` columns: `(o / nr * k + i) * nr + o % nr`.
pub const fn panel_index(k: usize, nr: usize, o: usize, i: usize) -> usize {
    (o / nr * k + i) * nr + o % nr
}

/// Number of `f32` in the packed weights of the SIMD `pointwise` (and a
/// dense layer): panels of [`PANEL`] output channels of `[in_c][16]`.
pub const fn pointwise_packed_len(in_c: usize, out_c: usize) -> usize {
    panels_len(in_c, out_c, PANEL)
}

/// Rows of the `[kernel_h * kernel_w * in_c][out_c]` matrix the SIMD
/// `conv2d` multiplies (its im2col rows).
pub const fn conv2d_rows(s: &ConvShape) -> usize {
    s.kernel_h * s.kernel_w * s.in_c
}

/// The im2col row of tap `(ky, kx)` and input channel `ci`:
/// `(ky * kernel_w + kx) * in_c + ci`.
pub const fn conv2d_row(s: &ConvShape, ky: usize, kx: usize, ci: usize) -> usize {
    (ky * s.kernel_w + kx) * s.in_c + ci
}

/// Number of `f32` in the packed weights of the SIMD `conv2d`: its
/// [`conv2d_rows`] x `out_c` matrix in panels of [`PANEL`].
pub const fn conv2d_packed_len(s: &ConvShape) -> usize {
    pointwise_packed_len(conv2d_rows(s), s.out_c)
}

/// Number of `f32` in the packed weights of `depthwise`: `[kernel_h *
/// kernel_w][c]`, channel innermost.
pub const fn depthwise_packed_len(s: &ConvShape) -> usize {
    s.kernel_h * s.kernel_w * s.out_c
}

/// Where tap `k = ky * kernel_w + kx` of channel `c` goes in `depthwise`'s
/// packing of `channels` channels: `k * channels + c`.
pub const fn depthwise_index(channels: usize, k: usize, c: usize) -> usize {
    k * channels + c
}

/// Output channels per panel of the integer GEMM (`qpointwise`, `qconv2d`,
/// a dense layer): one 512-bit vector of `i32` sums.
pub const QPANEL: usize = 16;

/// Reduction values per group of the integer GEMM's panels: the 4 bytes
/// one `vpdpbusd` lane sums.
pub const QGROUP: usize = 4;

/// Number of `i8` in a `[k][n]` integer weight matrix packed for the
/// integer GEMM: `ceil(n / QPANEL)` panels of `ceil(k / QGROUP)` groups of
/// `[QPANEL][QGROUP]`, zero past `n` and past `k`.
pub const fn qpanels_len(k: usize, n: usize) -> usize {
    n.div_ceil(QPANEL) * k.div_ceil(QGROUP) * QPANEL * QGROUP
}

/// Where weight `(o, i)` (output channel `o`, reduction index `i` of `k`)
/// goes in [`qpanels_len`]'s layout: `((o / QPANEL * ceil(k / QGROUP) + i
/// / QGROUP) * QPANEL + o % QPANEL) * QGROUP + i % QGROUP`.
pub const fn qpanel_index(k: usize, o: usize, i: usize) -> usize {
    ((o / QPANEL * k.div_ceil(QGROUP) + i / QGROUP) * QPANEL + o % QPANEL) * QGROUP + i % QGROUP
}
