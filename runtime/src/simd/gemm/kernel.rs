//! The GEMM kernel body, written once over [`GemmVec`]: C[m x n] (+)= A[m
//! x k] * B[k x n], B packed in panels of 16 columns. The pointwise layers
//! and the im2col route of `conv2d` run it.

use crate::abi::pack::PANEL;
use crate::abi::PwOrder;
use crate::simd::epilogue::{load_lanes, store_lanes, VecEpilogue};
use crate::simd::vec::{unroll, Vf32};
use crate::{Activation, Epilogue};

/// What a GEMM kernel body may ask of a vector type beyond [`Vf32`]:
/// hooks an instruction set fills with its own code (assembly K loops),
/// and choices measured per instruction set. Defaults: none.
pub(crate) trait GemmVec: Vf32 {
    /// Whether the pointwise kernel's full tiles store through an unrolled
    /// epilogue (constant trip counts, the epilogue's fields in locals):
    /// 1.05-1.35x faster on AVX-512 and AVX2 for layers with few input
    /// channels, but it made the portable instantiation's K loop 1.2-1.4x
    /// slower (LLVM's register allocation), so off by default.
    const UNROLLED_EPILOGUE: bool = false;
    /// The K loop of a full 12-row, 2-vector register tile, where the ISA
    /// has it written out in assembly: for `k` steps, `acc[r][v] +=
    /// a[r * lda + k] * w[v * wd + k * PANEL]` (`lda`, `wd` in floats).
    /// Returns `false` (and does nothing) where it has not. Unless `pf`
    /// is null, every fourth step `k` (and each of the last `k % 4`)
    /// also prefetches (towards L2; never faults, so `pf` may point
    /// anywhere) the lines at `pf + k / 4 * PANEL` and at `pf + wd + k /
    /// 4 * PANEL`: `k / 4` rows of both panels of the next weight strip,
    /// whose first touch would otherwise miss to memory (each row tile
    /// prefetches its share of them).
    #[inline(always)]
    unsafe fn k_loop_12x2(
        acc: &mut [[Self; 2]; 12],
        a: *const f32,
        lda: usize,
        w: *const f32,
        wd: usize,
        k: usize,
        pf: *const f32,
    ) -> bool {
        let _ = (acc, a, lda, w, wd, k, pf);
        false
    }
    /// [`Vf32::k_loop_12x2`] for a 12-row, 1-vector tile (one panel,
    /// `acc[r] += a[r * lda + k] * w[k * PANEL]`).
    #[inline(always)]
    unsafe fn k_loop_12x1(acc: &mut [Self; 12], a: *const f32, lda: usize, w: *const f32, k: usize) -> bool {
        let _ = (acc, a, lda, w, k);
        false
    }
}

/// A validated matrix product. Contract (checked by the public entry point):
/// `a` has `m` rows of `lda >= k` floats with `k` used; `b` points at row 0
/// of `ceil(n / 16)` panels, panel `p` row `i` at `b + (p * ldb + i) * 16`
/// where `ldb` is passed to [`gemm_dispatch`] (`k` for [`gemm`]); `out` has `m`
/// rows of `n` floats; `ep`'s bias has `n` floats and its residual (if any)
/// starts at row 0 of `out` with the same layout.
#[derive(Clone, Copy)]
pub(crate) struct Gemm<'a> {
    pub(crate) m: usize,
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) a: *const f32,
    pub(crate) lda: usize,
    pub(crate) b: *const f32,
    pub(crate) ep: &'a Epilogue<'a>,
    pub(crate) out: *mut f32,
}

/// Weights (of one K-block) from this size on are prefetched a strip
/// ahead in [`PwOrder::ChannelsOuter`]: in a whole model they come from
/// memory (the rest of the model's weights evicted them). In v1 1.0 224,
/// one thread: 7x7x1024->1024 0.80 -> 0.63 ms, 7x7x512->1024 0.39 ->
/// 0.30, 14x14x512->512 0.58 -> 0.54, 14x14x256->512 (512 KiB) 0.97x;
/// alone, with the weights in cache, it costs 1-2% (NOTES.md). The first
/// row tile of `PixelsOuter` layers prefetching the next strip gave
/// nothing measurable.
const PREFETCH_MIN_BYTES: usize = 1 << 18;

/// Arguments of one K-block of the GEMM loop nest.
#[derive(Clone, Copy)]
pub(crate) struct Block<'a> {
    pub(crate) g: Gemm<'a>,
    /// Rows between panels of `b`.
    pub(crate) ldb: usize,
    pub(crate) order: PwOrder,
    /// First K-block: start from zero (else from the partial sums in `out`).
    pub(crate) first: bool,
    /// Last K-block: apply the epilogue (else store partial sums).
    pub(crate) last: bool,
}

/// The loop nest over register tiles of `MR` rows by `NV` vectors
/// (`NV * V::N` columns, a multiple of [`PANEL`]); `NV1 = PANEL / V::N`
/// vectors cover one panel (for the last, narrower tile). The last row
/// tile, when shorter, runs a tile of `MR2` or `MR3` rows (`MR > MR2 > MR3`)
/// if it fits, so few rows are computed for nothing; a last row tile of
/// one row uses one-row tiles, and a single row (`m == 1`, dense layers)
/// one-row tiles of 8 vectors.
///
/// # Safety
/// As [`gemm`]; the CPU supports `V`'s instruction set.
#[inline(always)]
pub(crate) unsafe fn gemm_v<
    V: GemmVec,
    const MR: usize,
    const MR2: usize,
    const MR3: usize,
    const NV: usize,
    const NV1: usize,
>(
    b: &Block<'_>,
) {
    debug_assert!((NV * V::N).is_multiple_of(PANEL) && NV1 * V::N == PANEL);
    let g = &b.g;
    if g.m == 1 {
        // A dense layer (one row): tiles of `DENSE_NV` vectors, whose
        // independent FMA chains hide the FMA latency (a 1x2 tile waits on
        // its 2 chains: 4 cycles per K step). Each output's terms are summed
        // in the same order either way.
        const DENSE_NV: usize = 8;
        let cols = DENSE_NV * V::N;
        for j in 0..g.n.div_ceil(cols) {
            let c0 = j * cols;
            // SAFETY: the tile lies within the matrices of `g`'s contract.
            unsafe { micro::<V, 1, DENSE_NV, false, false>(b, 0, 1, c0, cols.min(g.n - c0), core::ptr::null()) };
        }
        return;
    }
    // Few input channels on 16-lane vectors: the per-tile setup and
    // epilogue of the register tiles outweigh their short K loops.
    // Measured for 8 (v1 0.25 128 0.974, v2 0.35 128 0.984-0.993); with 16
    // each broadcast feeds one FMA, against two in the tiles: no faster.
    if V::N == 16 && g.k == 8 && b.first && b.last && b.ldb == g.k && g.m >= SMALL_K_ROWS {
        // SAFETY: forwarded.
        return unsafe { gemm_small_k::<V, 8>(b) };
    }
    let tile_cols = NV * V::N;
    let tiles_n = g.n.div_ceil(tile_cols);
    let tiles_m = g.m.div_ceil(MR);
    // SAFETY: every tile lies within the matrices of `g`'s contract.
    unsafe {
        match b.order {
            PwOrder::PixelsOuter => {
                for i in 0..tiles_m {
                    for j in 0..tiles_n {
                        tile::<V, MR, MR2, MR3, NV, NV1>(b, i * MR, j * tile_cols, core::ptr::null());
                    }
                }
            }
            PwOrder::ChannelsOuter => {
                // Large weights stream from memory once per strip of
                // `tile_cols` columns: while the row tiles run over strip
                // `j`, each prefetches its share of strip `j + 1`'s rows
                // (`k / 4` rows from `i * share`: all of them from 4 row
                // tiles on; one line per panel every 4 K steps, not every
                // step: 0.7-0.9% faster on v1 1.0 224, neutral elsewhere).
                let prefetch = g.k * g.n * 4 >= PREFETCH_MIN_BYTES;
                let share = g.k / tiles_m.max(1);
                for j in 0..tiles_n {
                    let next = (j + 1) * tile_cols / PANEL * b.ldb * PANEL;
                    for i in 0..tiles_m {
                        let pf = if prefetch && j + 1 < tiles_n {
                            g.b.wrapping_add(next + i * share * PANEL)
                        } else {
                            core::ptr::null()
                        };
                        tile::<V, MR, MR2, MR3, NV, NV1>(b, i * MR, j * tile_cols, pf);
                    }
                }
            }
        }
    }
}

/// Rows per group of [`gemm_small_k`].
const SMALL_K_ROWS: usize = 12;

/// The whole product for `K` input channels (8: see [`gemm_v`]), one block
/// (`first`, `last`, `ldb == k`): for 3 vectors of columns, groups of
/// [`SMALL_K_ROWS3`] rows by all 3 ([`small_k_rows3`]); then groups of
/// [`SMALL_K_ROWS`] rows (then single rows), and for each group every
/// output vector in turn, with its `K` weight vectors and bias loaded once
/// per group and column vector (merging the two into one function over `NV`
/// vectors made 4096x8->16 1.03-1.07x slower: its weights are best loaded
/// up front, which 3 vectors' cannot be).
/// Each output is `clamp(((0 + x_0 w_0) + ... + x_{K-1} w_{K-1}) + bias
/// (+ residual))`, FMAs in K order: the register tiles' result, bit for bit.
///
/// # Safety
/// As [`gemm_v`]; `g.k == K`.
#[inline(always)]
unsafe fn gemm_small_k<V: GemmVec, const K: usize>(b: &Block<'_>) {
    let g = &b.g;
    let mut i0 = 0;
    // SAFETY: rows `i0..i0 + R` exist (the loops' bounds); the columns as in
    // `small_k_rows`.
    unsafe {
        if g.n > 2 * V::N && g.n <= 3 * V::N {
            while i0 + SMALL_K_ROWS3 <= g.m {
                small_k_rows3::<V, K, SMALL_K_ROWS3>(b, i0);
                i0 += SMALL_K_ROWS3;
            }
        }
        while i0 + SMALL_K_ROWS <= g.m {
            small_k_rows::<V, K, SMALL_K_ROWS>(b, i0);
            i0 += SMALL_K_ROWS;
        }
        while i0 < g.m {
            small_k_rows::<V, K, 1>(b, i0);
            i0 += 1;
        }
    }
}

/// Rows per group of [`small_k_rows3`].
const SMALL_K_ROWS3: usize = 8;

/// Rows `i0..i0 + R` of [`gemm_small_k`] when the output has 3 vectors of
/// columns (the last one possibly partial): all three at once, `R` rows by
/// 3 accumulators, the weights loaded per `k` (3 loads and `R` broadcasts
/// per `3 R` FMAs, against one broadcast per FMA in [`small_k_rows`]).
/// Same sums in the same order as [`small_k_rows`].
///
/// # Safety
/// As [`gemm_small_k`]; `i0 + R <= m`, `2 V::N < n <= 3 V::N`.
#[inline(always)]
unsafe fn small_k_rows3<V: GemmVec, const K: usize, const R: usize>(b: &Block<'_>, i0: usize) {
    const NV: usize = 3;
    let g = &b.g;
    // SAFETY: rows `i0..i0 + R` of `a` (K floats each) and of `out`; the
    // panels of columns `0..3 V::N` hold `K` rows of 16 weights (zero-padded
    // past `n`); bias and residual cover columns `0..n` (`Gemm`'s contract),
    // read and written in whole vectors and a last one of `tail` lanes.
    unsafe {
        let a = g.a.add(i0 * g.lda);
        let wp: [*const f32; NV] = core::array::from_fn(|v| {
            let c = v * V::N;
            g.b.add(c / PANEL * b.ldb * PANEL + c % PANEL)
        });
        let mut acc = [[V::zero(); NV]; R];
        for k in 0..K {
            let w: [V; NV] = core::array::from_fn(|v| V::load(wp[v].add(k * PANEL)));
            unroll!(r < R; {
                let x = V::splat(*a.add(r * g.lda + k));
                for v in 0..NV {
                    acc[r][v] = V::fma(x, w[v], acc[r][v]);
                }
            });
        }
        let tail = g.n - 2 * V::N;
        let mut e = VecEpilogue::<V>::new(g.ep);
        let bias = e.take_tile_bias::<NV>(0, tail);
        unroll!(r < R; {
            let oi = (i0 + r) * g.n;
            for v in 0..NV {
                let c = v * V::N;
                let lanes = if v == NV - 1 { tail } else { V::N };
                let x = e.apply_biased(acc[r][v], bias.map(|bv| bv[v]), c, oi + c, lanes);
                store_lanes(x, g.out.add(oi + c), lanes);
            }
        });
        activate_rows(g, i0, R, 0, g.n);
    }
}

/// Rows `i0..i0 + R` of [`gemm_small_k`], all output columns.
///
/// # Safety
/// As [`gemm_small_k`]; `i0 + R <= m`.
#[inline(always)]
unsafe fn small_k_rows<V: GemmVec, const K: usize, const R: usize>(b: &Block<'_>, i0: usize) {
    let g = &b.g;
    // SAFETY: rows `i0..i0 + R` of `a` (K floats each) and of `out`; panel
    // `c0 / PANEL` holds `K` rows of 16 weights; bias and residual cover
    // columns `c0..c0 + lanes` (`Gemm`'s contract).
    unsafe {
        let a = g.a.add(i0 * g.lda);
        let mut c0 = 0;
        while c0 < g.n {
            let lanes = V::N.min(g.n - c0);
            let wp = g.b.add(c0 / PANEL * b.ldb * PANEL + c0 % PANEL);
            let w: [V; K] = core::array::from_fn(|k| V::load(wp.add(k * PANEL)));
            let mut e = VecEpilogue::<V>::new(g.ep);
            let bias = e.take_tile_bias::<1>(c0, lanes);
            let mut acc = [V::zero(); R];
            for (k, &wk) in w.iter().enumerate() {
                for (r, acc) in acc.iter_mut().enumerate() {
                    *acc = V::fma(V::splat(*a.add(r * g.lda + k)), wk, *acc);
                }
            }
            unroll!(r < R; {
                let oi = (i0 + r) * g.n + c0;
                let x = e.apply_biased(acc[r], bias.map(|bv| bv[0]), c0, oi, lanes);
                store_lanes(x, g.out.add(oi), lanes);
            });
            c0 += V::N;
        }
        activate_rows(g, i0, R, 0, g.n);
    }
}

/// The register tile at row `i0`, column `c0` (a function, not a closure:
/// closures do not inherit `#[target_feature]`); `pf` as in [`micro`]
/// (only full-width strips get a non-null one: the last strip has no next).
///
/// # Safety
/// As [`gemm_v`]; `i0 < m`, `c0 < n`.
#[inline(always)]
unsafe fn tile<V: GemmVec, const MR: usize, const MR2: usize, const MR3: usize, const NV: usize, const NV1: usize>(
    b: &Block<'_>,
    i0: usize,
    c0: usize,
    pf: *const f32,
) {
    let g = &b.g;
    let mr = MR.min(g.m - i0);
    let n = (NV * V::N).min(g.n - c0);
    let wide = n > NV1 * V::N || NV == NV1;
    // SAFETY: forwarded; each call gets `mr` no larger than its row count.
    unsafe {
        match (mr, wide) {
            // Full rows and columns: their own copy (see `micro`'s `FULL`).
            (r, true) if r == MR && n == NV * V::N => micro::<V, MR, NV, true, false>(b, i0, r, c0, n, pf),
            (r, false) if r == MR && n == NV1 * V::N => micro::<V, MR, NV1, true, false>(b, i0, r, c0, n, pf),
            // A last vector of half the lanes (8 of 16 on AVX-512: the 8,
            // 24, 56 channels of small models): full tiles with that
            // vector's store masked by a constant, not the general partial
            // tile (whose epilogue made a 16 -> 8 layer slower than 16 ->
            // 16). Only for 16 lanes, where it was measured (elsewhere the
            // arms fold away and cost no code: Cortex-M).
            (r, true) if V::N == 16 && r == MR && n == NV * V::N - V::N / 2 => {
                micro::<V, MR, NV, true, true>(b, i0, r, c0, n, pf)
            }
            (r, false) if V::N == 16 && r == MR && n == NV1 * V::N - V::N / 2 => {
                micro::<V, MR, NV1, true, true>(b, i0, r, c0, n, pf)
            }
            (1, true) => micro::<V, 1, NV, false, false>(b, i0, 1, c0, n, pf),
            (1, false) => micro::<V, 1, NV1, false, false>(b, i0, 1, c0, n, pf),
            (r, true) if r <= MR3 => micro::<V, MR3, NV, false, false>(b, i0, r, c0, n, pf),
            (r, false) if r <= MR3 => micro::<V, MR3, NV1, false, false>(b, i0, r, c0, n, pf),
            (r, true) if r <= MR2 => micro::<V, MR2, NV, false, false>(b, i0, r, c0, n, pf),
            (r, false) if r <= MR2 => micro::<V, MR2, NV1, false, false>(b, i0, r, c0, n, pf),
            (r, true) => micro::<V, MR, NV, false, false>(b, i0, r, c0, n, pf),
            (r, false) => micro::<V, MR, NV1, false, false>(b, i0, r, c0, n, pf),
        }
    }
}

/// The micro-kernel: rows `i0..i0 + mr` (`mr <= MR`; missing rows repeat
/// the last one and are not stored), columns `c0..c0 + n` (`n <= NV * N`,
/// padding columns computed from the zero-padded panels and not stored).
/// Unless `pf` is null, full 12-row tiles with an assembly K loop also
/// prefetch from `pf` ([`Vf32::k_loop_12x2`]).
///
/// # Safety
/// As [`gemm`]; the tile lies within the matrices.
#[inline(always)]
unsafe fn micro<V: GemmVec, const MR: usize, const NV: usize, const FULL: bool, const HALF: bool>(
    b: &Block<'_>,
    i0: usize,
    mr: usize,
    c0: usize,
    n: usize,
    pf: *const f32,
) {
    let g = &b.g;
    let cols = NV * V::N;
    // SAFETY: (whole body) pointers stay within the rows `i0..i0 + mr` of
    // `a`/`out`/residual, the panels covering `c0..c0 + cols` (which exist:
    // panels are padded to 16 columns and `cols` is a whole number of
    // panels past `c0`, or `n <= 16` fits one panel), and columns
    // `c0..c0 + n` of `out` and the bias; accesses to `out`/bias/residual
    // are whole vectors inside `n` and, past the last whole one, `lanes`
    // floats through `load_n`/`store_n`.
    unsafe {
        let a: [*const f32; MR] = core::array::from_fn(|r| g.a.add((i0 + r.min(mr - 1)) * g.lda));
        let w: [*const f32; NV] = core::array::from_fn(|v| {
            let col = c0 + v * V::N;
            let panel = (col / PANEL).min((g.n - 1) / PANEL);
            g.b.add(panel * b.ldb * PANEL + col % PANEL)
        });
        let mut acc = [[V::zero(); NV]; MR];
        // Columns `c0..c0 + n` are whole vectors and, when `n < cols`, a
        // last partial one. `FULL` (the caller guarantees `n == cols`)
        // makes that a constant, so the full tile's code has no partial
        // accesses (sharing them changed LLVM's register allocation of the
        // K loop: up to 1.1x slower).
        // `HALF` (with `FULL`): the last vector has `V::N / 2` columns.
        let n = if FULL {
            cols - if HALF { V::N / 2 } else { 0 }
        } else {
            n
        };
        if !b.first {
            for (r, row) in acc.iter_mut().enumerate().take(mr) {
                let o = g.out.add((i0 + r) * g.n + c0);
                for (v, x) in row.iter_mut().enumerate() {
                    let c = v * V::N;
                    if c >= n {
                        break;
                    }
                    *x = load_lanes(o.add(c), (n - c).min(V::N));
                }
            }
        }
        // Rows are `lda` apart (`mr == MR`: no repeated row).
        let asm = MR == 12
            && mr == 12
            && match NV {
                // `[[V; NV]; MR]` is `[[V; 2]; 12]` here.
                2 => V::k_loop_12x2(
                    &mut *(acc.as_mut_ptr() as *mut [[V; 2]; 12]),
                    a[0],
                    g.lda,
                    w[0],
                    w[1].offset_from(w[0]) as usize,
                    g.k,
                    pf,
                ),
                // `[[V; 1]; 12]`, laid out as `[V; 12]`.
                1 => V::k_loop_12x1(&mut *(acc.as_mut_ptr() as *mut [V; 12]), a[0], g.lda, w[0], g.k),
                _ => false,
            };
        for k in 0..if asm { 0 } else { g.k } {
            let wk: [V; NV] = core::array::from_fn(|v| V::load(w[v].add(k * PANEL)));
            for r in 0..MR {
                let x = V::splat(*a[r].add(k));
                for v in 0..NV {
                    acc[r][v] = V::fma(x, wk[v], acc[r][v]);
                }
            }
        }
        if FULL && V::UNROLLED_EPILOGUE {
            // Full tiles: the epilogue's fields in locals, so nothing is
            // reloaded per vector (the general loop below reloads `g.ep`'s
            // fields after every store: 1.05-1.15x slower on layers with few
            // input channels), and the rows written out by `unroll!`, so the
            // accumulators go from the K loop's registers to the stores (a
            // rolled row loop indexes them, which puts them on the stack).
            // Only where measured to pay (`Vf32::UNROLLED_EPILOGUE`).
            let (mut e, last) = (VecEpilogue::new(g.ep), b.last);
            // Lanes of the last vector.
            let tail = if HALF { V::N / 2 } else { V::N };
            let bias = e.take_tile_bias::<NV>(c0, tail);
            unroll!(r < MR; {
                let oi = (i0 + r) * g.n + c0;
                let o = g.out.add(oi);
                for (v, &x) in acc[r].iter().enumerate() {
                    let c = v * V::N;
                    let lanes = if v == NV - 1 { tail } else { V::N };
                    let x = if last {
                        e.apply_biased(x, bias.map(|bv| bv[v]), c0 + c, oi + c, lanes)
                    } else {
                        x
                    };
                    store_lanes(x, o.add(c), lanes);
                }
            });
            if last {
                activate_rows(g, i0, MR, c0, n);
            }
            return;
        }
        for (r, row) in acc.iter().enumerate().take(mr) {
            let oi = (i0 + r) * g.n + c0;
            let o = g.out.add(oi);
            for (v, &x) in row.iter().enumerate() {
                let c = v * V::N;
                if c >= n {
                    break;
                }
                let lanes = (n - c).min(V::N);
                // `g.ep`'s fields read per vector, as before the unrolled
                // epilogue: hoisting them here made large layers slower.
                let x = if b.last {
                    VecEpilogue::new(g.ep).apply(x, c0 + c, oi + c, lanes)
                } else {
                    x
                };
                store_lanes(x, o.add(c), lanes);
            }
            if b.last && g.ep.act != Activation::None {
                crate::epilogue::activate(g.ep.act, core::slice::from_raw_parts_mut(o, n));
            }
        }
    }
}

/// `g.ep`'s activation (if any) over columns `c0..c0 + n` of rows
/// `i0..i0 + rows` of `g.out`, after their stores (inside the row loops it
/// kept them from unrolling).
///
/// # Safety
/// Those rows and columns are within `g.out`.
#[inline(always)]
pub(crate) unsafe fn activate_rows(g: &Gemm<'_>, i0: usize, rows: usize, c0: usize, n: usize) {
    if g.ep.act != Activation::None {
        for r in i0..i0 + rows {
            // SAFETY: the caller's bounds.
            let o = unsafe { core::slice::from_raw_parts_mut(g.out.add(r * g.n + c0), n) };
            crate::epilogue::activate(g.ep.act, o);
        }
    }
}
