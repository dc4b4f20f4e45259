//! Pointwise convolution on the AMX tile unit, at f32 accuracy.
//!
//! AMX multiplies bf16 matrices (8 significant bits) into f32 sums, 16 times
//! the f32 FMA rate of AVX-512 on the same core. Every f32 `x` is the exact
//! sum of three bf16 values, `x = x1 + x2 + x3` (`x1` its first 8
//! significant bits, `x2` the next 8, `x3` the rest: truncation, so the sum
//! is exact), and a product `x * w` is summed from the six partial products
//! above the f32 rounding level (`x1 w1 + x1 w2 + x1 w3 + x2 w1 + x2 w2 + x3
//! w1`; the three dropped are below `2^-23 |x w|`). Each partial product of
//! two bf16 is exact in f32 and the tile unit accumulates in f32, so the
//! result has the accuracy of an f32 GEMM ("bf16x6", as XLA's `HIGHEST`
//! precision on bf16 hardware), at 16 / 6 of its rate.
//!
//! * Weights: the f32 panels every kernel reads (`[panel][in_c][16]`),
//!   split at run time into the three planes' B tiles: per panel of 16
//!   output channels and K step of 32 input channels, 16 rows of 16 input
//!   channel pairs (VNNI order: row `q` holds, for each of the 16 columns,
//!   the bf16 pair of input channels `2q`, `2q + 1`), 1 KiB each ([`split_weights`]).
//!   Pixels outer: all of them first; channels outer: the next strip's
//!   while the current one runs. So the blob holds the weights once, and
//!   they stream from memory at 4 bytes each.
//! * Inputs: split at run time into the three planes' A tiles (16 pixels by
//!   32 input channels, 1 KiB) ([`split_rows`]): a block of 32 pixels at a
//!   time, the next while the current one runs (pixels outer), or all of
//!   them first (channels outer).
//! * Both go to a caller's scratch ([`amx::scratch_len`](crate::abi::amx::scratch_len)).
//! * Register tiles: C is 32 pixels by 32 channels (tiles 0-3), A and B two
//!   tiles each (4-5, 6-7); one K step is 24 tile products and 6 + 12 tile
//!   loads, the 6 of the operand that comes from L2 ([`k_loop`]; a tile
//!   load takes about 9 cycles from L1, 22 from L2, a product 16-18). A
//!   last block of fewer rows or columns repeats its tile (computed, not
//!   stored).
//! * Epilogue: the C tiles are stored to a staging block, then bias,
//!   residual and clamp per vector and the activation per row, as the
//!   AVX-512 kernel's epilogue ([`VecEpilogue`]).
//!
//! Each output value is computed from the same tiles in the same order
//! wherever its pixel falls in a call, so parallel splits are bit for bit
//! the serial result.

use super::kernel::{activate_rows, Gemm};
use crate::abi::PwOrder;
use crate::simd::epilogue::{store_lanes, VecEpilogue};
use crate::simd::vec::x86::Avx512;
use crate::simd::vec::Vf32;
use crate::Activation;
use core::arch::x86_64::*;

use crate::abi::amx::{K as AMX_K, STEP, TILE};
use crate::abi::pack::PANEL;

/// K steps of `in_c` input channels.
const fn ksteps(in_c: usize) -> usize {
    in_c.div_ceil(AMX_K)
}

/// A validated AMX pointwise call: the product `g` (the same contract as
/// for the vector kernels, with `lda = k` and the weights packed as for
/// `simd::pointwise`: `ceil(n / 16)` panels of `[k][16]`); `scratch` has
/// [`amx::scratch_len`](crate::abi::amx::scratch_len)`(m, k, n, order)`
/// floats.
pub(crate) struct AmxGemm<'a> {
    pub(crate) g: Gemm<'a>,
    pub(crate) scratch: *mut f32,
    /// Pixels outer: the weights are already split in the scratch (by a
    /// call on the same weights and scratch: the bands of one layer).
    pub(crate) b_split: bool,
}

impl<'a> core::ops::Deref for AmxGemm<'a> {
    type Target = Gemm<'a>;
    #[inline(always)]
    fn deref(&self) -> &Gemm<'a> {
        &self.g
    }
}

/// The tile configuration: palette 1, tiles 0-7 of 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    const fn new() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut t = 0;
        while t < 8 {
            c[16 + 2 * t] = 64; // bytes per row
            c[48 + t] = 16; // rows
            t += 1;
        }
        TileConfig(c)
    }
}

static CONFIG: TileConfig = TileConfig::new();

/// K steps per K block of the channels-outer loop: the block's weights
/// (two panels, 24 KiB) stay in L1 while every row block runs over them.
const KB: usize = 4;

/// The whole product: tiles configured, the loop nest of `order`, tiles
/// released.
///
/// * Pixels outer: all the weights split first; per block of 32 pixels,
///   every strip of 32 output channels, each K step loading its weight
///   tiles once ([`Step::WeightsOnce`]; the block's A tiles, up to 128
///   input channels, stay in L1).
/// * Channels outer (few pixels, many weights): all inputs split first;
///   per strip, K blocks of [`KB`] steps whose weights stay in L1 while
///   every row block runs over them ([`Step::InputsOnce`]), the partial
///   sums kept in the scratch between blocks; the next strip's weights
///   split meanwhile.
///
/// The vector work (splitting the next block's inputs or the next strip's
/// weights, the epilogue of the previous C block) is done a slice after
/// each K step, while the tile unit works through it ([`Work`]): as
/// separate phases it took as long as the tile products (its loads wait on
/// memory, and data a tile store just wrote reads back only once the stores
/// have drained).
///
/// # Safety
/// The CPU can run AMX-BF16 (`isa::Isa::Amx`) and AVX-512F/BW; `g`
/// satisfies [`AmxGemm`]'s contract.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
pub(crate) unsafe fn gemm_amx(g: &AmxGemm<'_>, order: PwOrder) {
    let ks = ksteps(g.k);
    // SAFETY: (whole body) the caller's contract; every pointer formed
    // stays in the scratch (aligned up by at most 60 bytes, inside its
    // slack, laid out as `amx::scratch_len` counts it), the
    // weights or the rows of `a` and `out`.
    unsafe {
        let base = g.scratch.cast::<u8>();
        let scratch = base.add(base.align_offset(64));
        let strips = g.n.div_ceil(32);
        let panels = g.n.div_ceil(PANEL);
        let blocks = g.m.div_ceil(32);
        // One K step of one panel or one row tile: `STEP` bytes.
        let (row_tiles, weight_panels) = match order {
            PwOrder::PixelsOuter => (4, panels),
            PwOrder::ChannelsOuter => (2 * blocks, 4),
        };
        let atiles = scratch;
        let btiles = atiles.add(row_tiles * ks * STEP);
        let sums = btiles.add(weight_panels * ks * STEP).cast::<f32>();
        core::arch::asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly));
        let mut w = Work::default();
        match order {
            PwOrder::PixelsOuter => {
                // Two A buffers (block `i + 1` is split while block `i`
                // computes) and two staging blocks (the epilogue of one C
                // block runs during the next).
                if !g.b_split {
                    split_weights(g, 0, panels, btiles, 0, panels * ks * 16);
                }
                let abuf = [atiles, atiles.add(2 * ks * STEP)];
                let stages = [sums, sums.add(32 * 32)];
                split_rows(g, 0, g.m.min(32), abuf[0], 0, 32);
                let mut item = 0;
                for bi in 0..blocks {
                    let i0 = 32 * bi;
                    let rows = (g.m - i0).min(32);
                    if bi + 1 < blocks {
                        w.split = Some(Split {
                            i0: i0 + 32,
                            at: abuf[(bi + 1) % 2],
                            next: 0,
                        });
                    }
                    // Split rows per K step, so the next block is done by
                    // the end of this one.
                    let split_per = 32usize.div_ceil(strips * ks);
                    for j in 0..strips {
                        let t = Tiles::new(
                            abuf[bi % 2],
                            rows,
                            btiles.add(2 * j * ks * STEP),
                            2 * j + 1 < panels,
                            ks,
                        );
                        zero_c();
                        let ep_per = 32usize.div_ceil(ks);
                        for s in 0..ks {
                            k_loop(Step::WeightsOnce, t.at_step(s), 1);
                            w.run(g, ep_per, split_per, 0);
                        }
                        w.run(g, 32, 0, 0);
                        store_c(stages[item % 2]);
                        w.ep = Some(Pending {
                            c: stages[item % 2],
                            i0,
                            rows,
                            c0: 32 * j,
                            next: 0,
                        });
                        item += 1;
                    }
                    w.run(g, 0, 32, 0);
                }
            }
            PwOrder::ChannelsOuter => {
                let mut i0 = 0;
                while i0 < g.m {
                    split_rows(g, i0, (g.m - i0).min(32), atiles.add(i0 / 16 * ks * STEP), 0, 32);
                    i0 += 32;
                }
                // Two strips' weights: strip `j + 1`'s split while `j` runs.
                let bbuf = [btiles, btiles.add(2 * ks * STEP)];
                split_weights(g, 0, panels.min(2), bbuf[0], 0, panels.min(2) * ks * 16);
                let kblocks = ks.div_ceil(KB);
                // Pair rows of the next strip's weights to split per K step.
                let pairs_per = (2 * ks * 16).div_ceil(kblocks * blocks * KB.min(ks)) + 1;
                for j in 0..strips {
                    if j + 1 < strips {
                        let p0 = 2 * (j + 1);
                        let np = (panels - p0).min(2);
                        w.splitb = Some(SplitB {
                            p0,
                            np,
                            at: bbuf[(j + 1) % 2],
                            next: 0,
                        });
                    }
                    for kb in 0..kblocks {
                        let (s0, n) = (kb * KB, KB.min(ks - kb * KB));
                        for b in 0..blocks {
                            let rows = (g.m - 32 * b).min(32);
                            let t =
                                Tiles::new(atiles.add(2 * b * ks * STEP), rows, bbuf[j % 2], 2 * j + 1 < panels, ks)
                                    .at_step(s0);
                            let c = sums.add(b * 32 * 32);
                            if kb == 0 {
                                zero_c();
                            } else {
                                load_c(c);
                            }
                            for s in 0..n {
                                k_loop(Step::InputsOnce, t.at_step(s), 1);
                                w.run(g, 32usize.div_ceil(n), 0, pairs_per);
                            }
                            w.run(g, 32, 0, 0);
                            store_c(c);
                            if kb + 1 == kblocks {
                                w.ep = Some(Pending {
                                    c,
                                    i0: 32 * b,
                                    rows,
                                    c0: 32 * j,
                                    next: 0,
                                });
                            }
                        }
                    }
                    w.run(g, 0, 0, usize::MAX);
                }
            }
        }
        w.run(g, 32, 32, usize::MAX);
        core::arch::asm!("tilerelease", options(nostack, nomem));
    }
}

/// The vector work done between K steps: the epilogue of a stored C block,
/// the split of the next block's inputs or of the next strip's weights, a
/// few rows at a time.
#[derive(Default)]
struct Work {
    ep: Option<Pending>,
    split: Option<Split>,
    splitb: Option<SplitB>,
}

/// A C block stored at `c` (32 rows of 32 floats) for output pixels `i0..i0
/// + rows`, channels `c0..`: rows below `next` are done.
struct Pending {
    c: *const f32,
    i0: usize,
    rows: usize,
    c0: usize,
    next: usize,
}

/// Pixels `i0..i0 + 32` (those below `m`) split into the A tiles at `at`:
/// rows below `next` are done.
struct Split {
    i0: usize,
    at: *mut u8,
    next: usize,
}

/// Panels `p0..p0 + np` of the weights split into the B tiles at `at`: pair
/// rows below `next` are done.
struct SplitB {
    p0: usize,
    np: usize,
    at: *mut u8,
    next: usize,
}

impl Work {
    /// Up to `ep_rows` epilogue rows, `split_n` input rows and `pairs`
    /// weight pair rows.
    ///
    /// # Safety
    /// As [`gemm_amx`]; the pending block and split targets are valid.
    #[inline(always)]
    unsafe fn run(&mut self, g: &AmxGemm<'_>, ep_rows: usize, split_n: usize, pairs: usize) {
        // SAFETY: the caller's contract.
        unsafe {
            if let Some(p) = &mut self.ep {
                let end = (p.next + ep_rows).min(p.rows);
                epilogue(g, p.c, p.i0, p.next, end, p.c0);
                p.next = end;
                if end == p.rows {
                    self.ep = None;
                }
            }
            if let Some(sp) = &mut self.split {
                let end = (sp.next + split_n).min(32);
                split_rows(g, sp.i0, (g.m - sp.i0).min(32), sp.at, sp.next, end);
                sp.next = end;
                if end == 32 {
                    self.split = None;
                }
            }
            if let Some(sb) = &mut self.splitb {
                let total = sb.np * ksteps(g.k) * 16;
                let end = sb.next.saturating_add(pairs).min(total);
                split_weights(g, sb.p0, sb.np, sb.at, sb.next, end);
                sb.next = end;
                if end == total {
                    self.splitb = None;
                }
            }
        }
    }
}

/// Splits pair rows `from..to` of panels `p0..p0 + np` of the weights into
/// the B tiles at `at`: pair row `r` is row `q = r % 16` of K step `s = r /
/// 16 % ks` of panel `p0 + r / (16 ks)`, the tile of plane `j` at `at +
/// ((p * ks + s) * 3 + j) * 1024` (`p` from 0), its row `q` at `+ 64 q`:
/// for each of the 16 columns the bf16 pair of input channels `32 s + 2
/// q` and the next (zero past `k`).
///
/// # Safety
/// As [`gemm_amx`]; panels below `ceil(n / 16)`; `at` has room for `np *
/// ks` steps.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn split_weights(g: &AmxGemm<'_>, p0: usize, np: usize, at: *mut u8, from: usize, to: usize) {
    let ks = ksteps(g.k);
    // Word `2c` from the first row's lane `c` (its high half, word `2c +
    // 1`), word `2c + 1` from the second row's (`32 + 2c + 1`).
    let pair = _mm512_set_epi16(
        63, 31, 61, 29, 59, 27, 57, 25, 55, 23, 53, 21, 51, 19, 49, 17, 47, 15, 45, 13, 43, 11, 41, 9, 39, 7, 37, 5,
        35, 3, 33, 1,
    );
    let mask = _mm512_set1_epi32(0xffff_0000_u32 as i32);
    // SAFETY: the caller's contract: rows `k0`, `k0 + 1` below `k` of
    // panel `p0 + p` are 16 floats each in the packed weights; the tiles
    // written are inside `at`'s room; prefetches never fault.
    unsafe {
        let to = to.min(np * ks * 16);
        if from >= to {
            return;
        }
        // Pair row `from` as (panel, step, row), then stepped (no division
        // per row: it showed in the profile).
        let (mut p, mut s, mut q) = (from / (16 * ks), from / 16 % ks, from % 16);
        let panel = |p: usize| g.b.add((p0 + p) * g.k * PANEL);
        for _ in from..to {
            let k0 = 32 * s + 2 * q;
            let src = panel(p);
            let row = |k: usize| {
                if k < g.k {
                    _mm512_loadu_ps(src.add(k * PANEL))
                } else {
                    _mm512_setzero_ps()
                }
            };
            let (mut r0, mut r1) = (row(k0), row(k0 + 1));
            let dst = at.add((p * ks + s) * STEP + q * 64);
            for j in 0..3 {
                let (h0, h1) = if j < 2 {
                    (
                        _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(r0), mask)),
                        _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(r1), mask)),
                    )
                } else {
                    (r0, r1)
                };
                let packed = _mm512_permutex2var_epi16(_mm512_castps_si512(h0), pair, _mm512_castps_si512(h1));
                _mm512_storeu_si512(dst.add(j * TILE).cast(), packed);
                r0 = _mm512_sub_ps(r0, h0);
                r1 = _mm512_sub_ps(r1, h1);
            }
            q += 1;
            if q == 16 {
                q = 0;
                s += 1;
                if s == ks {
                    s = 0;
                    p += 1;
                }
            }
        }
        // The next slice's rows (as many pair rows again, contiguous within
        // a panel) towards L1: the split waits on memory otherwise.
        if p < np {
            let k0 = 32 * s + 2 * q;
            let lines = 2 * (to - from).min((np - p) * ks * 16 - (s * 16 + q));
            let first = panel(p).add(k0 * PANEL).cast::<i8>();
            for l in 0..lines {
                _mm_prefetch::<_MM_HINT_T0>(first.add(64 * l));
            }
        }
    }
}

/// The operand tiles of one C block at one K step: A row tiles `a0`, `a1`
/// (the second repeating the first for a block of 16 rows or fewer), B
/// panels `b0`, `b1` (the second repeating the first past the last panel).
#[derive(Clone, Copy)]
struct Tiles {
    a0: *const u8,
    a1: *const u8,
    b0: *const u8,
    b1: *const u8,
}

impl Tiles {
    /// Block of `rows` pixels whose A tiles start at `a`, a strip whose B
    /// tiles start at `b` (a second panel after the first's `ks` steps if
    /// `two`), at K step 0.
    ///
    /// # Safety
    /// `a` and `b` as in [`gemm_amx`].
    unsafe fn new(a: *const u8, rows: usize, b: *const u8, two: bool, ks: usize) -> Self {
        // SAFETY: the caller's contract.
        unsafe {
            let a1 = if rows > 16 { a.add(ks * STEP) } else { a };
            let b1 = if two { b.add(ks * STEP) } else { b };
            Tiles { a0: a, a1, b0: b, b1 }
        }
    }

    /// The same block at K step `s`.
    ///
    /// # Safety
    /// `s` is below the K steps of the layer.
    unsafe fn at_step(self, s: usize) -> Self {
        // SAFETY: the caller's contract.
        unsafe {
            Tiles {
                a0: self.a0.add(s * STEP),
                a1: self.a1.add(s * STEP),
                b0: self.b0.add(s * STEP),
                b1: self.b1.add(s * STEP),
            }
        }
    }
}

/// C tiles 0-3 to zero.
///
/// # Safety
/// The tiles are configured.
#[inline(always)]
unsafe fn zero_c() {
    // SAFETY: register-only.
    unsafe {
        core::arch::asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        )
    };
}

/// C tiles 0-3 from the 32 x 32 floats at `c` (rows of 128 bytes).
///
/// # Safety
/// The tiles are configured; `c` holds 32 x 32 floats.
#[inline(always)]
unsafe fn load_c(c: *const f32) {
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!(
            "tileloadd tmm0, [{s} + {st}*1]",
            "tileloadd tmm1, [{s} + {st}*1 + 64]",
            "tileloadd tmm2, [{s} + {st}*1 + 2048]",
            "tileloadd tmm3, [{s} + {st}*1 + 2112]",
            s = in(reg) c,
            st = in(reg) 128usize,
            options(nostack, readonly)
        )
    };
}

/// C tiles 0-3 to the 32 x 32 floats at `c` (rows of 128 bytes).
///
/// # Safety
/// The tiles are configured; `c` has room for 32 x 32 floats.
#[inline(always)]
unsafe fn store_c(c: *mut f32) {
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!(
            "tilestored [{s} + {st}*1], tmm0",
            "tilestored [{s} + {st}*1 + 64], tmm1",
            "tilestored [{s} + {st}*1 + 2048], tmm2",
            "tilestored [{s} + {st}*1 + 2112], tmm3",
            s = in(reg) c,
            st = in(reg) 128usize,
            options(nostack)
        )
    };
}

/// Splits rows `from..to` of the block of pixels `i0..i0 + rows` (`rows <=
/// 32`) into the A tiles at `at`:
/// row tile `t` (pixels `i0 + 16 t ..`), K step `s`, plane `p` at `at +
/// ((t * ks + s) * 3 + p) * 1024`, 16 rows of 32 bf16; a missing row tile
/// (16 rows or fewer) is not written, missing rows and channels are zero.
///
/// # Safety
/// As [`gemm_amx`]; `at` has room for `rows.div_ceil(16)` row tiles.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn split_rows(g: &AmxGemm<'_>, i0: usize, rows: usize, at: *mut u8, from: usize, to: usize) {
    let ks = ksteps(g.k);
    // Odd 16-bit halves of 32 f32 lanes (the bf16 truncation of each).
    let hi = _mm512_set_epi16(
        63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9,
        7, 5, 3, 1,
    );
    let mask = _mm512_set1_epi32(0xffff_0000_u32 as i32);
    // SAFETY: the caller's contract: row `i0 + r` of `a` has `k` floats,
    // read with masks past `k`; the tiles written are inside `at`'s room.
    unsafe {
        for row in from..to.min(rows.div_ceil(16) * 16) {
            let (t, r) = (row / 16, row % 16);
            {
                for s in 0..ks {
                    let dst = at.add((t * ks + s) * STEP + r * 64);
                    let (x0, x1) = if row < rows {
                        let src = g.a.add((i0 + row) * g.lda + s * AMX_K);
                        let n = (g.k - s * AMX_K).min(AMX_K);
                        let m0 = if n >= 16 { 0xffff } else { (1u32 << n) as u16 - 1 };
                        let m1 = if n >= 32 {
                            0xffff
                        } else if n > 16 {
                            (1u32 << (n - 16)) as u16 - 1
                        } else {
                            0
                        };
                        (_mm512_maskz_loadu_ps(m0, src), _mm512_maskz_loadu_ps(m1, src.add(16)))
                    } else {
                        (_mm512_setzero_ps(), _mm512_setzero_ps())
                    };
                    // x = x1 + x2 + x3, each the bf16 truncation of the rest.
                    let (mut r0, mut r1) = (x0, x1);
                    for p in 0..3 {
                        let (h0, h1) = if p < 2 {
                            (
                                _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(r0), mask)),
                                _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(r1), mask)),
                            )
                        } else {
                            (r0, r1)
                        };
                        let packed = _mm512_permutex2var_epi16(_mm512_castps_si512(h0), hi, _mm512_castps_si512(h1));
                        _mm512_storeu_si512(dst.add(p * TILE).cast(), packed);
                        r0 = _mm512_sub_ps(r0, h0);
                        r1 = _mm512_sub_ps(r1, h1);
                    }
                }
            }
        }
    }
}

/// Which operand a K step loads once (the other is loaded again for each
/// partial product that needs it: 6 + 12 tile loads per 24 products).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The A (input) tiles once, the B (weight) tiles from L1 again.
    InputsOnce,
    /// The B tiles once (from L2), the A tiles from L1 again.
    WeightsOnce,
}

/// `n` K steps of one C block: per step, the six partial products (A plane
/// `p` with B plane `q`, `p + q <= 2`) into tiles 0-3, in the order of
/// `step`, then every pointer one step on. (Prefetching the next strip's
/// weights from here, 48 lines per step, made 49x1024->1024 1.18x slower
/// than leaving them to the hardware.)
///
/// # Safety
/// The tiles are configured; `t`'s pointers have `n` more steps of three
/// planes each.
#[inline(always)]
unsafe fn k_loop(step: Step, t: Tiles, n: usize) {
    macro_rules! products {
        () => {
            concat!(
                "tdpbf16ps tmm0, tmm4, tmm6\n",
                "tdpbf16ps tmm1, tmm4, tmm7\n",
                "tdpbf16ps tmm2, tmm5, tmm6\n",
                "tdpbf16ps tmm3, tmm5, tmm7\n",
            )
        };
    }
    macro_rules! a {
        ($off:literal) => {
            concat!(
                "tileloadd tmm4, [{a0} + {st}*1 + ",
                $off,
                "]\n",
                "tileloadd tmm5, [{a1} + {st}*1 + ",
                $off,
                "]\n"
            )
        };
    }
    macro_rules! b {
        ($off:literal) => {
            concat!(
                "tileloadd tmm6, [{b0} + {st}*1 + ",
                $off,
                "]\n",
                "tileloadd tmm7, [{b1} + {st}*1 + ",
                $off,
                "]\n"
            )
        };
    }
    macro_rules! inputs_once {
        () => {
            concat!(
                a!("0"),
                b!("0"),
                products!(),
                b!("1024"),
                products!(),
                b!("2048"),
                products!(),
                a!("1024"),
                b!("0"),
                products!(),
                b!("1024"),
                products!(),
                a!("2048"),
                b!("0"),
                products!(),
            )
        };
    }
    macro_rules! weights_once {
        () => {
            concat!(
                b!("0"),
                a!("0"),
                products!(),
                a!("1024"),
                products!(),
                a!("2048"),
                products!(),
                b!("1024"),
                a!("0"),
                products!(),
                a!("1024"),
                products!(),
                b!("2048"),
                a!("0"),
                products!(),
            )
        };
    }
    macro_rules! body {
        ($products:expr) => {
            concat!(
                "2:\n",
                $products,
                "add {a0}, 3072\n",
                "add {a1}, 3072\n",
                "add {b0}, 3072\n",
                "add {b1}, 3072\n",
                "dec {n}\n",
                "jnz 2b\n",
            )
        };
    }
    macro_rules! run {
        ($products:expr) => {
            core::arch::asm!(
                body!($products),
                a0 = inout(reg) t.a0 => _,
                a1 = inout(reg) t.a1 => _,
                b0 = inout(reg) t.b0 => _,
                b1 = inout(reg) t.b1 => _,
                n = inout(reg) n => _,
                st = in(reg) 64usize,
                options(nostack, readonly)
            )
        };
    }
    if n == 0 {
        return;
    }
    // SAFETY: the caller's contract.
    unsafe {
        match step {
            Step::InputsOnce => run!(inputs_once!()),
            Step::WeightsOnce => run!(weights_once!()),
        }
    }
}

/// Rows `i0 + from..i0 + to`, columns `c0..c0 + 32` (those below `n`) of
/// the output from the staging block (32 rows of 32 floats): bias, residual,
/// clamp per vector ([`VecEpilogue`]), the activation per row.
///
/// # Safety
/// As [`gemm_amx`].
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn epilogue(g: &AmxGemm<'_>, staging: *const f32, i0: usize, from: usize, to: usize, c0: usize) {
    // SAFETY: the caller's contract: `staging` holds 32 x 32 floats; the
    // columns stored are below `n`.
    unsafe {
        let e = VecEpilogue::<Avx512>::new(g.ep);
        let cols = (g.n - c0).min(32);
        if from >= to {
            return;
        }
        for r in from..to {
            let oi = (i0 + r) * g.n + c0;
            let mut c = 0;
            while c < cols {
                let lanes = (cols - c).min(16);
                let x = Avx512::load(staging.add(r * 32 + c));
                store_lanes(e.apply(x, c0 + c, oi + c, lanes), g.out.add(oi + c), lanes);
                c += 16;
            }
        }
        if g.ep.act != Activation::None {
            let gm = super::kernel::Gemm {
                m: g.m,
                k: g.k,
                n: g.n,
                a: g.a,
                lda: g.lda,
                b: core::ptr::null(),
                ep: g.ep,
                out: g.out,
            };
            activate_rows(&gm, i0 + from, to - from, c0, cols);
        }
    }
}
