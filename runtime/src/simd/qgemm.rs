//! The integer GEMM on AVX-512 VNNI: `qpointwise` (and dense layers) and
//! `qconv2d` (through im2col rows gathered on the stack), for
//! [`crate::quant`], which checked the slice lengths and that the CPU has
//! VNNI ([`crate::isa::vnni`]).
//!
//! A register tile is `MR` pixels x `NV` vectors of 16 output channels of
//! `i32` sums: per group of 4 input channels, one `vpdpbusd` per pixel and
//! vector (the 4 unsigned input bytes broadcast, times a vector of 16 x 4
//! signed weights of the panel layout, summed exactly into `i32`). The
//! epilogue is [`requantize`](crate::abi::quant::requantize) in vector
//! form: the folded bias, minus the weight zero point times the input row's
//! sum, to `f32` (round to nearest even), times the multiplier, clamped in
//! float to the output's range less its zero point, rounded half to even
//! (`vcvtps2dq` in the default rounding mode), plus the zero point: the
//! same operations in the same order as the scalar definition, so the
//! results are identical to the portable path's.

use crate::abi::pack::{QGROUP, QPANEL};
use crate::abi::quant::QZeroPoints;
use crate::abi::{ConvShape, PointwiseShape, Quantized};
use crate::quant::QWeights;
use core::arch::x86_64::*;

/// Pixels per register tile.
const MR: usize = 8;
/// Bytes of one panel group: 16 channels x 4 inputs.
const GROUP_BYTES: usize = QPANEL * QGROUP;
/// The longest im2col row `conv2d_vnni` gathers on the stack (a 3x3
/// window of 113 channels); longer rows take the portable path.
pub(crate) const CONV_MAX_K: usize = 1024;
/// The longest int8 input row `pointwise_vnni` flips on the stack; longer
/// rows of an int8 input take the portable path.
pub(crate) const ROW_MAX: usize = 2048;

/// See the module docs. The caller checked the lengths and VNNI. Never
/// inlined: with the shape a constant at the call site (and AVX-512
/// enabled there by `-C target-cpu`), inlining unrolled whole layers,
/// minutes of compile time for no speed.
#[inline(never)]
pub(crate) fn pointwise_vnni<X: Quantized, Y: Quantized>(
    shape: &PointwiseShape,
    x: &[X],
    w: QWeights<'_>,
    zp: QZeroPoints,
    y: &mut [Y],
) {
    // SAFETY: the caller (`quant::qpointwise`) checked every slice length
    // against the shape and that the CPU has AVX-512F/BW and VNNI.
    unsafe { pointwise_impl::<X, Y>(shape, x, w, zp, y.as_mut_ptr() as *mut u8, Epi::Requant) }
}

/// [`pointwise_vnni`] with float outputs: a layer on a dynamically
/// quantized input ([`crate::dynq::pointwise`], which checked the lengths
/// and VNNI).
#[inline(never)]
pub(crate) fn pointwise_dyn(shape: &PointwiseShape, x: &[u8], w: QWeights<'_>, f: &FloatEpi<'_>, y: &mut [f32]) {
    let zp = QZeroPoints { x: f.x_zp, y: 0 };
    // SAFETY: as `pointwise_vnni`; `y` holds `pixels * out_c` floats.
    unsafe { pointwise_impl::<u8, u8>(shape, x, w, zp, y.as_mut_ptr() as *mut u8, Epi::Float(f)) }
}

/// See the module docs. The caller checked the lengths and VNNI. Never
/// inlined (see [`pointwise_vnni`]).
#[inline(never)]
pub(crate) fn conv2d_vnni<X: Quantized, Y: Quantized>(
    shape: &ConvShape,
    x: &[X],
    w: QWeights<'_>,
    zp: QZeroPoints,
    y: &mut [Y],
) {
    let k = shape.kernel_h * shape.kernel_w * shape.in_c;
    if k > CONV_MAX_K {
        crate::quant::qconv2d_portable(shape, x, w, zp, y);
        return;
    }
    // SAFETY: as `pointwise_vnni`; `k <= CONV_MAX_K` (the row buffer).
    unsafe { conv2d_impl::<X, Y>(shape, x, w, zp, y.as_mut_ptr() as *mut u8, Epi::Requant) }
}

/// [`conv2d_vnni`] with float outputs ([`crate::dynq::conv2d`], which
/// checked the lengths, VNNI and `k <= CONV_MAX_K`).
#[inline(never)]
pub(crate) fn conv2d_dyn(shape: &ConvShape, x: &[u8], w: QWeights<'_>, f: &FloatEpi<'_>, y: &mut [f32]) {
    let zp = QZeroPoints { x: f.x_zp, y: 0 };
    // SAFETY: as `conv2d_vnni`; `y` holds `pixels * out_c` floats.
    unsafe { conv2d_impl::<u8, u8>(shape, x, w, zp, y.as_mut_ptr() as *mut u8, Epi::Float(f)) }
}

/// The float epilogue of a layer on a dynamically quantized input: per
/// output channel `o`, the sum plus `-x_zp * correction[o]` (the folded
/// bias), `as f32 * (x_scale * scale[o]) + bias[o]`, clamped
/// ([`dyn_output`](crate::abi::quant::dyn_output)).
pub(crate) struct FloatEpi<'a> {
    pub x_scale: f32,
    pub x_zp: i32,
    pub correction: &'a [i32],
    pub scale: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub min: f32,
    pub max: f32,
}

/// What a tile's epilogue writes.
#[derive(Clone, Copy)]
enum Epi<'a> {
    /// Bytes of `Y`, requantized with the weights' folded bias and
    /// multipliers.
    Requant,
    /// Floats.
    Float(&'a FloatEpi<'a>),
}

/// # Safety
/// The slices have the lengths of `shape` (x: `pixels * in_c`, y: `pixels
/// * out_c`, the weights in panels), and the CPU has AVX-512F/BW/VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn pointwise_impl<X: Quantized, Y: Quantized>(
    shape: &PointwiseShape,
    x: &[X],
    w: QWeights<'_>,
    zp: QZeroPoints,
    y: *mut u8,
    epi: Epi<'_>,
) {
    let (k, n) = (shape.in_c, shape.out_c);
    // An int8 input is read flipped to unsigned bytes (plus 128), copied
    // into a row buffer: flipping in registers (an `xor` before each
    // `vpdpbusd`) made the optimizer take minutes over the kernel.
    let flip = X::MIN != 0;
    let xb = x.as_ptr() as *const u8;
    let mut buf = [0u8; MR * ROW_MAX];
    for p0 in (0..shape.pixels).step_by(MR) {
        let rows = MR.min(shape.pixels - p0);
        let mut a = [xb; MR];
        for r in 0..rows {
            // SAFETY: row p0 + r < pixels: its k bytes are within `x`.
            let row = unsafe { core::slice::from_raw_parts(xb.add((p0 + r) * k), k) };
            if flip {
                let dst = &mut buf[r * ROW_MAX..][..k];
                for (d, &b) in dst.iter_mut().zip(row) {
                    *d = b ^ 0x80;
                }
                a[r] = dst.as_ptr();
            } else {
                a[r] = row.as_ptr();
            }
        }
        // SAFETY: `a[..rows]` point to rows of `k` bytes; the panels and
        // output rows p0..p0 + rows are within the checked slices.
        unsafe { block::<Y>(a, rows, k, &w, y, p0, n, zp, epi) }
    }
}

/// # Safety
/// As [`pointwise_impl`], for a `qconv2d` of `shape` with `kernel_h *
/// kernel_w * in_c <= CONV_MAX_K`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn conv2d_impl<X: Quantized, Y: Quantized>(
    shape: &ConvShape,
    x: &[X],
    w: QWeights<'_>,
    zp: QZeroPoints,
    y: *mut u8,
    epi: Epi<'_>,
) {
    let s = shape;
    let (ic, n) = (s.in_c, s.out_c);
    let k = s.kernel_h * s.kernel_w * ic;
    let pixels = s.out_h * s.out_w;
    let mut buf = [0u8; MR * CONV_MAX_K];
    let pad = zp.x as u8;
    for p0 in (0..pixels).step_by(MR) {
        let rows = MR.min(pixels - p0);
        for r in 0..rows {
            let (oy, ox) = ((p0 + r) / s.out_w, (p0 + r) % s.out_w);
            let row = &mut buf[r * CONV_MAX_K..][..k];
            for ky in 0..s.kernel_h {
                for kx in 0..s.kernel_w {
                    let dst = &mut row[(ky * s.kernel_w + kx) * ic..][..ic];
                    match s.input_at(oy, ox, ky, kx) {
                        Some(px) => {
                            for (d, v) in dst.iter_mut().zip(&x[px * ic..][..ic]) {
                                *d = (v.to_i32() - X::MIN) as u8;
                            }
                        }
                        None => dst.fill(pad),
                    }
                }
            }
        }
        let mut a = [buf.as_ptr(); MR];
        for (r, a) in a.iter_mut().enumerate().take(rows) {
            // SAFETY: row r < MR of `buf`.
            *a = unsafe { buf.as_ptr().add(r * CONV_MAX_K) };
        }
        // SAFETY: `a[..rows]` point to gathered rows of `k` bytes in `buf`;
        // the panels and output rows are within the checked slices.
        unsafe { block::<Y>(a, rows, k, &w, y, p0, n, zp, epi) };
    }
}

/// One block of `rows` input rows `a[..rows]` (`k` unsigned bytes each)
/// into output rows `row0..row0 + rows` of `y` (`[pixels][n]`): each row's
/// sum where a weight zero point needs it, the rows past the last
/// repeating it (computed, not stored), then every panel.
///
/// # Safety
/// `a[..rows]` point to `k` readable bytes each, `1 <= rows <= MR`; `w`
/// holds the panels of `n` channels of `k` inputs; `y` has rows
/// `row0..row0 + rows` of `n` bytes; the CPU has AVX-512F/BW/VNNI.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn block<Y: Quantized>(
    mut a: [*const u8; MR],
    rows: usize,
    k: usize,
    w: &QWeights<'_>,
    y: *mut u8,
    row0: usize,
    n: usize,
    zp: QZeroPoints,
    epi: Epi<'_>,
) {
    let mut asum = [0i32; MR];
    if w.zero_point.iter().any(|&z| z != 0) {
        for (s, &p) in asum.iter_mut().zip(&a).take(rows) {
            // SAFETY: the row's k bytes (the caller's contract).
            let row = unsafe { core::slice::from_raw_parts(p, k) };
            *s = row.iter().map(|&b| b as i32).sum();
        }
    }
    for r in rows..MR {
        a[r] = a[rows - 1];
    }
    let out = Out {
        y,
        row0,
        n,
        rows,
        asum: &asum,
        zp,
        epi,
    };
    // SAFETY: the caller's contract.
    unsafe { panels::<Y>(&a, k, w, &out) }
}

/// Where a tile's results go: rows `row0..row0 + rows` of the `[pixels][n]`
/// output, with each row's input sum.
struct Out<'a> {
    y: *mut u8,
    row0: usize,
    n: usize,
    rows: usize,
    asum: &'a [i32; MR],
    zp: QZeroPoints,
    epi: Epi<'a>,
}

/// All output channels of one block of rows, two panels at a time.
///
/// # Safety
/// `a[..rows]` point to `k` readable bytes each; `w` holds the panels of
/// `out.n` channels of `k` inputs; `out` addresses rows of the output.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn panels<Y: Quantized>(a: &[*const u8; MR], k: usize, w: &QWeights<'_>, out: &Out<'_>) {
    let stride = k.div_ceil(QGROUP) * GROUP_BYTES;
    let npanels = out.n.div_ceil(QPANEL);
    let mut pn = 0;
    while pn < npanels {
        // SAFETY: panel pn (and pn + 1 when two) exist.
        let b = unsafe { w.values.as_ptr().add(pn * stride) };
        let two = pn + 1 < npanels;
        // SAFETY: the caller's contract, for panels `pn..pn + 1 or 2`.
        unsafe {
            if two {
                tile::<2, Y>(a, k, b, stride, w, out, pn)
            } else {
                tile::<1, Y>(a, k, b, stride, w, out, pn)
            }
        }
        pn += if two { 2 } else { 1 };
    }
}

/// `MR` rows x `NV` panels from panel `pn`: the sums, then the epilogue
/// of the first `out.rows` rows (a block of fewer rows repeats its last
/// row in `a`, and stores only its own: one instantiation, not one per
/// row count).
///
/// # Safety
/// As [`panels`], with panels `pn..pn + NV` existing.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
#[allow(clippy::needless_range_loop)] // acc[r][v]: two indices
unsafe fn tile<const NV: usize, Y: Quantized>(
    a: &[*const u8; MR],
    k: usize,
    b: *const i8,
    stride: usize,
    w: &QWeights<'_>,
    out: &Out<'_>,
    pn: usize,
) {
    const R: usize = MR;
    let mut acc = [[_mm512_setzero_si512(); NV]; R];
    let groups = k / QGROUP;
    for g in 0..groups {
        let mut wv = [_mm512_setzero_si512(); NV];
        for (v, wv) in wv.iter_mut().enumerate() {
            // SAFETY: group g of panel pn + v is within the weights.
            *wv = unsafe { _mm512_loadu_si512(b.add(v * stride + g * GROUP_BYTES) as *const _) };
        }
        for r in 0..R {
            // SAFETY: bytes 4g..4g + 4 of row r are within its k bytes.
            let word = unsafe { (a[r].add(g * QGROUP) as *const u32).read_unaligned() };
            let bc = _mm512_set1_epi32(word as i32);
            for v in 0..NV {
                acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], bc, wv[v]);
            }
        }
    }
    let tail = k % QGROUP;
    if tail != 0 {
        let g = groups;
        let mut wv = [_mm512_setzero_si512(); NV];
        for (v, wv) in wv.iter_mut().enumerate() {
            // SAFETY: the last group of each panel exists (zero past k).
            *wv = unsafe { _mm512_loadu_si512(b.add(v * stride + g * GROUP_BYTES) as *const _) };
        }
        for r in 0..R {
            let mut bytes = [0u8; 4];
            for (t, byte) in bytes.iter_mut().enumerate().take(tail) {
                // SAFETY: byte 4g + t < k of row r.
                *byte = unsafe { *a[r].add(g * QGROUP + t) };
            }
            let bc = _mm512_set1_epi32(u32::from_le_bytes(bytes) as i32);
            for v in 0..NV {
                acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], bc, wv[v]);
            }
        }
    }
    if let Epi::Float(f) = out.epi {
        // SAFETY: the caller's contract; `out.y` addresses floats.
        unsafe { float_epilogue::<NV>(&acc, w, f, out, pn) };
        return;
    }
    // The epilogue, per vector of 16 channels.
    let lo = _mm512_set1_ps((Y::MIN - out.zp.y) as f32);
    let hi = _mm512_set1_ps((Y::MAX - out.zp.y) as f32);
    let yzp = _mm512_set1_epi32(out.zp.y);
    for v in 0..NV {
        let o0 = (pn + v) * QPANEL;
        let cnt = QPANEL.min(out.n - o0);
        let mask: __mmask16 = if cnt == QPANEL { 0xffff } else { (1u16 << cnt) - 1 };
        // SAFETY: channels o0..o0 + cnt of the per-channel slices (length n).
        let (bias, wzp, mult) = unsafe {
            (
                _mm512_maskz_loadu_epi32(mask, w.bias.as_ptr().add(o0)),
                _mm512_maskz_loadu_epi32(mask, w.zero_point.as_ptr().add(o0)),
                _mm512_maskz_loadu_ps(mask, w.multiplier.as_ptr().add(o0)),
            )
        };
        for r in 0..out.rows {
            let s = _mm512_sub_epi32(
                _mm512_add_epi32(acc[r][v], bias),
                _mm512_mullo_epi32(wzp, _mm512_set1_epi32(out.asum[r])),
            );
            let f = _mm512_mul_ps(_mm512_cvtepi32_ps(s), mult);
            let f = _mm512_min_ps(_mm512_max_ps(f, lo), hi);
            let q = _mm512_add_epi32(_mm512_cvtps_epi32(f), yzp);
            // SAFETY: output row row0 + r, channels o0..o0 + cnt (masked).
            let dst = unsafe { out.y.add((out.row0 + r) * out.n + o0) };
            // SAFETY: as `dst`, a masked store of `cnt` bytes; the values are
            // within Y's range, so the saturating narrowing is exact.
            unsafe {
                if Y::MIN < 0 {
                    _mm512_mask_cvtsepi32_storeu_epi8(dst as *mut _, mask, q)
                } else {
                    _mm512_mask_cvtusepi32_storeu_epi8(dst as *mut _, mask, q)
                }
            }
        }
    }
}

/// The float epilogue ([`FloatEpi`]) of a tile's sums, in the order of
/// the scalar definition: the folded bias `-x_zp * correction` and the
/// weight zero point times the row sum, exactly in `i32`; to `f32`
/// (`vcvtdq2ps`, round to nearest even), times `x_scale * scale[o]`
/// (computed in `f32`, as the scalar), plus the bias, each rounded once
/// (`vmulps`, `vaddps`: no FMA), then clamped.
///
/// # Safety
/// As [`tile`]; `out.y` addresses `[pixels][n]` floats.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::needless_range_loop)] // acc[r][v]: two indices
unsafe fn float_epilogue<const NV: usize>(
    acc: &[[__m512i; NV]; MR],
    w: &QWeights<'_>,
    f: &FloatEpi<'_>,
    out: &Out<'_>,
    pn: usize,
) {
    let (lo, hi) = (_mm512_set1_ps(f.min), _mm512_set1_ps(f.max));
    let (xs, xzp) = (_mm512_set1_ps(f.x_scale), _mm512_set1_epi32(f.x_zp));
    for v in 0..NV {
        let o0 = (pn + v) * QPANEL;
        let cnt = QPANEL.min(out.n - o0);
        let mask: __mmask16 = if cnt == QPANEL { 0xffff } else { (1u16 << cnt) - 1 };
        // SAFETY: channels o0..o0 + cnt of the per-channel slices (length n).
        let (corr, wzp, scale, bias) = unsafe {
            (
                _mm512_maskz_loadu_epi32(mask, f.correction.as_ptr().add(o0)),
                _mm512_maskz_loadu_epi32(mask, w.zero_point.as_ptr().add(o0)),
                _mm512_maskz_loadu_ps(mask, f.scale.as_ptr().add(o0)),
                match f.bias {
                    Some(b) => _mm512_maskz_loadu_ps(mask, b.as_ptr().add(o0)),
                    None => _mm512_setzero_ps(),
                },
            )
        };
        let cbias = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_mullo_epi32(xzp, corr));
        let mult = _mm512_mul_ps(xs, scale);
        for r in 0..out.rows {
            let s = _mm512_sub_epi32(
                _mm512_add_epi32(acc[r][v], cbias),
                _mm512_mullo_epi32(wzp, _mm512_set1_epi32(out.asum[r])),
            );
            let y = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s), mult), bias);
            let y = _mm512_min_ps(_mm512_max_ps(y, lo), hi);
            // SAFETY: output row row0 + r, channels o0..o0 + cnt (masked).
            unsafe {
                let dst = (out.y as *mut f32).add((out.row0 + r) * out.n + o0);
                _mm512_mask_storeu_ps(dst, mask, y)
            }
        }
    }
}
