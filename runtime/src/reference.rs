//! The scalar reference kernels of the convolutions: always compiled, the
//! test oracle of the `simd` kernels. Each doc states the weight packing
//! and the preconditions.
//!
//! Register tiles are const generics (`MR`, `NR`, `CT`); the layer (shape,
//! and cache tiles or layout) is the contract's struct ([`Pointwise`],
//! [`Depthwise`], [`Conv2d`]).
//!
//! # Numerics
//!
//! Accumulation is in `f32`. The scalar kernels sum the terms of every output
//! in one fixed order whatever the tile parameters (`NR`, `CT`, `MR`,
//! `rows`, `kc`, `order`) and, for [`conv2d`], whatever the input [`Layout`]:
//! their results are bit-identical across tilings. The epilogue is
//! `act(clamp((acc + bias) + residual, min, max))`, where the clamp is
//! `if v < min { min } else if v > max { max } else { v }`: infinite bounds
//! are no-ops and a NaN propagates (it is not clamped away). The activations
//! are computed in `f32` with that same clamp: [`Activation::HardSwish`](crate::Activation::HardSwish) as
//! `x * clamp(x + 3, 0, 6) * (1 / 6)` (in that order; `-inf` gives NaN, as
//! `-inf * 0` does) and [`Activation::HardSigmoid`](crate::Activation::HardSigmoid) as
//! `clamp(alpha * x + beta, 0, 1)`. The activation is applied to each output
//! exactly once, after the clamp (for [`pointwise`], after the last
//! input-channel block), as a pass over the just-stored tile; the result is
//! the same as applying it element by element.
//!
//! # Checks
//!
//! Every kernel asserts its slice lengths (and tile parameters `>= 1`) at
//! entry, with a message naming the kernel and the slice; past that point no
//! index can go out of bounds.

use crate::abi::{Conv2d, Conv2dTiles, ConvShape, Depthwise, Pointwise, PointwiseShape, PwOrder};
use crate::checks::{check_epilogue, check_len};
use crate::epilogue::store;
use crate::{Epilogue, Layout, Pixel};

/// Full convolution (groups = 1), any kernel size, stride and padding; used
/// for the first layer (3 input channels) and any conv that is neither
/// depthwise nor a stride-1 1x1.
///
/// * `input`: `in_h * in_w * in_c` elements in `c.layout`; `T` is `f32` or
///   `u8` (pixels whose normalization was folded into `weights`).
/// * `c.pad_value`: `in_c` values that reads outside the input see (the raw
///   value that normalizes to 0 when normalization was folded; else zeros).
/// * `weights`: packed `[kernel_h][kernel_w][in_c][out_c]`.
/// * `out`: `out_h * out_w * out_c`, NHWC.
/// * `NR`: output channels per register tile (any `NR >= 1`).
///
/// Any geometry is accepted (each tap tests the input bounds; this kernel
/// runs on few, small-channel layers). `tiles.rows` must be `>= 1`.
///
/// # Panics
/// If a slice length does not match `s`, or `NR` or `tiles.rows` is 0.
#[inline]
pub fn conv2d<T: Pixel, const NR: usize>(
    c: &Conv2d<'_>,
    tiles: &Conv2dTiles,
    input: &[T],
    weights: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    const K: &str = "conv2d";
    let (s, layout, pad_value) = (&c.shape, c.layout, c.pad_value);
    assert!(NR >= 1, "conv2d: register tile NR must be at least 1");
    assert!(tiles.rows >= 1, "conv2d: tiles.rows must be at least 1");
    check_len(K, "input", input.len(), s.in_len());
    check_len(K, "pad_value", pad_value.len(), s.in_c);
    let w_len = s.kernel_h * s.kernel_w * s.in_c * s.out_c;
    check_len(K, "weights", weights.len(), w_len);
    check_len(K, "out", out.len(), s.out_len());
    check_epilogue(K, ep, s.out_c, out.len());
    let cx = ConvCx {
        s: *s,
        input,
        pad_value,
        weights,
        ep: *ep,
    };
    match layout {
        Layout::Nhwc => conv2d_impl::<T, NR, false>(&cx, tiles.rows, out),
        Layout::Nchw => conv2d_impl::<T, NR, true>(&cx, tiles.rows, out),
    }
}

/// Arguments of [`conv2d`] after validation.
struct ConvCx<'a, T> {
    s: ConvShape,
    input: &'a [T],
    pad_value: &'a [f32],
    weights: &'a [f32],
    ep: Epilogue<'a>,
}

/// [`conv2d`] for one layout (`CHW`: input is NCHW).
#[inline(always)]
fn conv2d_impl<T: Pixel, const NR: usize, const CHW: bool>(cx: &ConvCx<'_, T>, rows: usize, out: &mut [f32]) {
    let s = &cx.s;
    let full = s.out_c - s.out_c % NR;
    let mut oy0 = 0;
    while oy0 < s.out_h {
        let oy1 = oy0 + rows.min(s.out_h - oy0);
        let mut co0 = 0;
        while co0 < full {
            conv2d_block::<T, NR, CHW>(cx, oy0, oy1, co0, NR, out);
            co0 += NR;
        }
        if co0 < s.out_c {
            conv2d_block::<T, NR, CHW>(cx, oy0, oy1, co0, s.out_c - co0, out);
        }
        oy0 = oy1;
    }
}

/// Output rows `oy0..oy1`, channels `co0..co0 + n` (`n <= NR`) of [`conv2d`].
#[inline(always)]
fn conv2d_block<T: Pixel, const NR: usize, const CHW: bool>(
    cx: &ConvCx<'_, T>,
    oy0: usize,
    oy1: usize,
    co0: usize,
    n: usize,
    out: &mut [f32],
) {
    let s = &cx.s;
    let (in_h, in_w, in_c, out_c) = (s.in_h, s.in_w, s.in_c, s.out_c);
    let tap_len = in_c * out_c;
    for oy in oy0..oy1 {
        for ox in 0..s.out_w {
            let mut acc = [0.0f32; NR];
            let acc = &mut acc[..n];
            for ky in 0..s.kernel_h {
                // Wraps to a huge value (so fails `< in_h`) above the input.
                let iy = (oy * s.stride_h + ky).wrapping_sub(s.pad_top);
                for kx in 0..s.kernel_w {
                    let ix = (ox * s.stride_w + kx).wrapping_sub(s.pad_left);
                    let tap = (ky * s.kernel_w + kx) * tap_len;
                    let w_tap = &cx.weights[tap..tap + tap_len];
                    if iy < in_h && ix < in_w {
                        if CHW {
                            let plane = in_h * in_w;
                            let at = iy * in_w + ix;
                            for ci in 0..in_c {
                                let x = cx.input[ci * plane + at].to_f32();
                                axpy(acc, x, &w_tap[ci * out_c + co0..][..n]);
                            }
                        } else {
                            let px = &cx.input[(iy * in_w + ix) * in_c..][..in_c];
                            for (ci, &x) in px.iter().enumerate() {
                                axpy(acc, x.to_f32(), &w_tap[ci * out_c + co0..][..n]);
                            }
                        }
                    } else {
                        for (ci, &x) in cx.pad_value.iter().enumerate() {
                            axpy(acc, x, &w_tap[ci * out_c + co0..][..n]);
                        }
                    }
                }
            }
            store(&cx.ep, acc, co0, (oy * s.out_w + ox) * out_c + co0, out);
        }
    }
}

/// Depthwise convolution (groups = channels): `out_c == in_c`, any kernel
/// size, stride and padding (pad value zero).
///
/// * `weights`: packed `[kernel_h][kernel_w][c]` (channel innermost).
/// * `CT`: channels per register tile (any `CT >= 1`; remainder handled).
///
/// The interior (output pixels whose window lies inside the input) runs
/// without per-tap bounds checks; only the border pixels test the bounds.
///
/// Any geometry with strides `>= 1` is accepted (windows may even lie
/// entirely in the padding). `tiles.rows` must be `>= 1`.
///
/// # Panics
/// If a slice length does not match `s`, `out_c != in_c`, a stride is 0, or
/// `CT` or `tiles.rows` is 0.
#[inline]
pub fn depthwise<const CT: usize>(d: &Depthwise, input: &[f32], weights: &[f32], ep: &Epilogue<'_>, out: &mut [f32]) {
    assert!(CT >= 1, "depthwise: register tile CT must be at least 1");
    let (s, tiles) = (&d.shape, &d.tiles);
    let cx = DwCx::new("depthwise", d, input, weights, ep, out.len());
    let c = s.in_c;
    let full = c - c % CT;
    let mut oy0 = 0;
    while oy0 < s.out_h {
        let oy1 = oy0 + tiles.rows.min(s.out_h - oy0);
        let mut c0 = 0;
        while c0 < full {
            depthwise_block::<CT>(&cx, oy0, oy1, c0, CT, out);
            c0 += CT;
        }
        if c0 < c {
            depthwise_block::<CT>(&cx, oy0, oy1, c0, c - c0, out);
        }
        oy0 = oy1;
    }
}

/// Arguments of [`depthwise`] after validation, with the interior ranges.
pub(crate) struct DwCx<'a> {
    pub(crate) s: ConvShape,
    pub(crate) input: &'a [f32],
    pub(crate) weights: &'a [f32],
    pub(crate) ep: Epilogue<'a>,
    /// Output columns whose window lies inside the input columns.
    pub(crate) x_in: (usize, usize),
    /// Output rows whose window lies inside the input rows.
    pub(crate) y_in: (usize, usize),
}

impl<'a> DwCx<'a> {
    /// Validates a depthwise call (panicking with `kernel`'s name) and
    /// computes the interior ranges; shared by [`depthwise`] and
    /// `simd::depthwise`.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn new(
        kernel: &str,
        d: &Depthwise,
        input: &'a [f32],
        weights: &'a [f32],
        ep: &Epilogue<'a>,
        out_len: usize,
    ) -> Self {
        let (s, tiles) = (&d.shape, &d.tiles);
        assert!(tiles.rows >= 1, "{kernel}: tiles.rows must be at least 1");
        assert!(
            s.out_c == s.in_c,
            "{kernel}: out_c ({}) must equal in_c ({})",
            s.out_c,
            s.in_c
        );
        assert!(
            s.stride_h >= 1 && s.stride_w >= 1,
            "{kernel}: strides must be at least 1 (got {}x{})",
            s.stride_h,
            s.stride_w
        );
        check_len(kernel, "input", input.len(), s.in_len());
        check_len(kernel, "weights", weights.len(), s.kernel_h * s.kernel_w * s.in_c);
        check_len(kernel, "out", out_len, s.out_len());
        check_epilogue(kernel, ep, s.out_c, out_len);
        DwCx {
            s: *s,
            input,
            weights,
            ep: *ep,
            x_in: interior(s.pad_left, s.kernel_w, s.stride_w, s.in_w, s.out_w),
            y_in: interior(s.pad_top, s.kernel_h, s.stride_h, s.in_h, s.out_h),
        }
    }
}

/// The range `lo..hi` of output positions `o < out_n` whose window
/// `o * stride - pad + (0..k)` lies inside `0..in_n` (`stride >= 1`).
#[inline(always)]
fn interior(pad: usize, k: usize, stride: usize, in_n: usize, out_n: usize) -> (usize, usize) {
    // o * stride >= pad
    let lo = pad.div_ceil(stride).min(out_n);
    // o * stride - pad + k <= in_n
    let hi = match (in_n + pad).checked_sub(k) {
        Some(room) => (room / stride + 1).min(out_n),
        None => 0,
    };
    (lo, hi.max(lo))
}

/// Output rows `oy0..oy1`, channels `c0..c0 + n` (`n <= CT`) of [`depthwise`].
#[inline(always)]
pub(crate) fn depthwise_block<const CT: usize>(
    cx: &DwCx<'_>,
    oy0: usize,
    oy1: usize,
    c0: usize,
    n: usize,
    out: &mut [f32],
) {
    let (x_lo, x_hi) = cx.x_in;
    let (y_lo, y_hi) = cx.y_in;
    for oy in oy0..oy1 {
        if (y_lo..y_hi).contains(&oy) {
            for ox in 0..x_lo {
                depthwise_border::<CT>(cx, oy, ox, c0, n, out);
            }
            for ox in x_lo..x_hi {
                depthwise_interior::<CT>(cx, oy, ox, c0, n, out);
            }
            for ox in x_hi..cx.s.out_w {
                depthwise_border::<CT>(cx, oy, ox, c0, n, out);
            }
        } else {
            for ox in 0..cx.s.out_w {
                depthwise_border::<CT>(cx, oy, ox, c0, n, out);
            }
        }
    }
}

/// One output pixel whose window lies inside the input: every tap is read,
/// with no padding test. A window row is one contiguous run of
/// `kernel_w * c` inputs, walked pixel by pixel (step `c`) next to the
/// matching run of weights.
#[inline(always)]
fn depthwise_interior<const CT: usize>(cx: &DwCx<'_>, oy: usize, ox: usize, c0: usize, n: usize, out: &mut [f32]) {
    let s = &cx.s;
    let c = s.in_c;
    let iy0 = oy * s.stride_h - s.pad_top;
    let ix0 = ox * s.stride_w - s.pad_left;
    let run = s.kernel_w * c;
    let mut acc = [0.0f32; CT];
    let acc = &mut acc[..n];
    for ky in 0..s.kernel_h {
        let start = ((iy0 + ky) * s.in_w + ix0) * c;
        let x_row = &cx.input[start..start + run];
        let w_row = &cx.weights[ky * run..(ky + 1) * run];
        let mut at = c0;
        for _ in 0..s.kernel_w {
            mul_acc(acc, &x_row[at..at + n], &w_row[at..at + n]);
            at += c;
        }
    }
    store(&cx.ep, acc, c0, (oy * s.out_w + ox) * c + c0, out);
}

/// One output pixel whose window reaches into the (zero) padding: taps
/// outside the input are skipped.
#[inline(always)]
fn depthwise_border<const CT: usize>(cx: &DwCx<'_>, oy: usize, ox: usize, c0: usize, n: usize, out: &mut [f32]) {
    let s = &cx.s;
    let c = s.in_c;
    let mut acc = [0.0f32; CT];
    let acc = &mut acc[..n];
    for ky in 0..s.kernel_h {
        let iy = (oy * s.stride_h + ky).wrapping_sub(s.pad_top);
        if iy >= s.in_h {
            continue;
        }
        for kx in 0..s.kernel_w {
            let ix = (ox * s.stride_w + kx).wrapping_sub(s.pad_left);
            if ix >= s.in_w {
                continue;
            }
            let x = &cx.input[(iy * s.in_w + ix) * c + c0..][..n];
            let w = &cx.weights[(ky * s.kernel_w + kx) * c + c0..][..n];
            mul_acc(acc, x, w);
        }
    }
    store(&cx.ep, acc, c0, (oy * s.out_w + ox) * c + c0, out);
}

/// Pointwise (1x1, stride 1) convolution / fully connected layer.
///
/// * `input`: `pixels * in_c`, NHWC.
/// * `packed`: `ceil(out_c / NR)` panels, each `[in_c][NR]`: element
///   `packed[(p * in_c + ci) * NR + j]` is the weight from input channel `ci`
///   to output channel `p * NR + j`, zero where that channel is `>= out_c`.
///   Length [`abi::pack::panels_len`](crate::abi::pack::panels_len)`(in_c, out_c, NR)`.
/// * `out`: `pixels * out_c`, NHWC.
/// * `MR` pixels by `NR` output channels per register tile.
///
/// The input channels are processed in blocks of `tiles.kc` (the last block
/// may be shorter; a `kc` above `in_c` means one block). Within a block the
/// register tiles are visited in `tiles.order`. The remainder pixel tile
/// (`pixels % MR`) and the last panel's padding channels are never written.
///
/// # Panics
/// If a slice length does not match `s`, or `MR`, `NR` or `tiles.kc` is 0.
#[inline]
pub fn pointwise<const MR: usize, const NR: usize>(
    p: &Pointwise,
    input: &[f32],
    packed: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    const K: &str = "pointwise";
    let (s, tiles) = (&p.shape, &p.tiles);
    assert!(MR >= 1, "pointwise: register tile MR must be at least 1");
    assert!(NR >= 1, "pointwise: register tile NR must be at least 1");
    assert!(tiles.kc >= 1, "pointwise: tiles.kc must be at least 1");
    check_len(K, "input", input.len(), s.pixels * s.in_c);
    check_len(
        K,
        "packed",
        packed.len(),
        crate::abi::pack::panels_len(s.in_c, s.out_c, NR),
    );
    check_len(K, "out", out.len(), s.pixels * s.out_c);
    check_epilogue(K, ep, s.out_c, out.len());
    let cx = PwCx {
        s: *s,
        input,
        packed,
        ep: *ep,
    };
    let panels = s.out_c.div_ceil(NR);
    // Input-channel blocks k0..k1; runs once even when in_c == 0 (so the
    // epilogue is still applied).
    let mut k0 = 0;
    loop {
        let k1 = k0 + tiles.kc.min(s.in_c - k0);
        match tiles.order {
            PwOrder::PixelsOuter => {
                let mut i0 = 0;
                while i0 < s.pixels {
                    let mr = MR.min(s.pixels - i0);
                    for p in 0..panels {
                        pointwise_tile::<MR, NR>(&cx, i0, mr, p, k0, k1, out);
                    }
                    i0 += mr;
                }
            }
            PwOrder::ChannelsOuter => {
                for p in 0..panels {
                    let mut i0 = 0;
                    while i0 < s.pixels {
                        let mr = MR.min(s.pixels - i0);
                        pointwise_tile::<MR, NR>(&cx, i0, mr, p, k0, k1, out);
                        i0 += mr;
                    }
                }
            }
        }
        if k1 == s.in_c {
            break;
        }
        k0 = k1;
    }
}

/// Arguments of [`pointwise`] after validation.
struct PwCx<'a> {
    s: PointwiseShape,
    input: &'a [f32],
    packed: &'a [f32],
    ep: Epilogue<'a>,
}

/// One register tile of [`pointwise`]: pixels `i0..i0 + mr` (`mr <= MR`),
/// panel `p`, input channels `k0..k1`. Dispatches full tiles to a copy with
/// a constant pixel count.
#[inline(always)]
fn pointwise_tile<const MR: usize, const NR: usize>(
    cx: &PwCx<'_>,
    i0: usize,
    mr: usize,
    p: usize,
    k0: usize,
    k1: usize,
    out: &mut [f32],
) {
    if mr == MR {
        pointwise_kernel::<MR, NR>(cx, i0, MR, p, k0, k1, out);
    } else {
        pointwise_kernel::<MR, NR>(cx, i0, mr, p, k0, k1, out);
    }
}

/// The micro-kernel: an `mr x NR` outer-product accumulation over input
/// channels `k0..k1`, starting from zero (first block) or from the partial
/// sums in `out`, then storing partial sums or, after the last block
/// (`k1 == in_c`), the epilogue.
#[inline(always)]
fn pointwise_kernel<const MR: usize, const NR: usize>(
    cx: &PwCx<'_>,
    i0: usize,
    mr: usize,
    p: usize,
    k0: usize,
    k1: usize,
    out: &mut [f32],
) {
    let PointwiseShape { in_c, out_c, .. } = cx.s;
    let c0 = p * NR;
    let n = NR.min(out_c - c0);
    let kb = k1 - k0;
    let mut acc = [[0.0f32; NR]; MR];
    let acc = &mut acc[..mr];
    if k0 > 0 {
        for (r, a) in acc.iter_mut().enumerate() {
            let o = (i0 + r) * out_c + c0;
            a[..n].copy_from_slice(&out[o..o + n]);
        }
    }
    // Row r: pixel i0 + r, channels k0..k1 (all of length kb).
    let rows: [&[f32]; MR] = core::array::from_fn(|r| {
        if r < mr {
            let start = (i0 + r) * in_c + k0;
            &cx.input[start..start + kb]
        } else {
            &[]
        }
    });
    let panel_start = (p * in_c + k0) * NR;
    let panel = &cx.packed[panel_start..panel_start + kb * NR];
    for (k, w) in (0..kb).zip(panel.chunks_exact(NR)) {
        for (a, row) in acc.iter_mut().zip(&rows) {
            let x = row[k];
            for (aj, &wj) in a.iter_mut().zip(w) {
                *aj += x * wj;
            }
        }
    }
    let last = k1 == in_c;
    for (r, a) in acc.iter().enumerate() {
        let o = (i0 + r) * out_c + c0;
        // Full panels get a copy with a constant width.
        if n == NR {
            pointwise_store(&cx.ep, a, last, c0, o, out);
        } else {
            pointwise_store(&cx.ep, &a[..n], last, c0, o, out);
        }
    }
}

/// Stores one row of a [`pointwise`] tile: the epilogue after the last
/// input-channel block, else the raw partial sums.
#[inline(always)]
fn pointwise_store(ep: &Epilogue<'_>, a: &[f32], last: bool, c0: usize, o: usize, out: &mut [f32]) {
    if last {
        store(ep, a, c0, o, out);
    } else {
        out[o..o + a.len()].copy_from_slice(a);
    }
}

/// `acc[j] += x * w[j]` (over the shorter of the two).
#[inline(always)]
fn axpy(acc: &mut [f32], x: f32, w: &[f32]) {
    for (a, &w) in acc.iter_mut().zip(w) {
        *a += x * w;
    }
}

/// `acc[j] += x[j] * w[j]` (over the shortest of the three).
#[inline(always)]
fn mul_acc(acc: &mut [f32], x: &[f32], w: &[f32]) {
    for ((a, &x), &w) in acc.iter_mut().zip(x).zip(w) {
        *a += x * w;
    }
}
