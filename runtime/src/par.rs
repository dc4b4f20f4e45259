//! The optional parallel mode: one inference on several threads.
//!
//! The runtime stays `no_std` and owns no threads. The caller hands the
//! generated `run_parallel` an executor through the [`Parallel`] trait, whose
//! one primitive is a fork-join of two closures ([`Parallel::join`]). A
//! std-based executor with one persistent worker thread, `StdPool`, is
//! behind the `std` cargo feature (off by default); on other platforms
//! (an RTOS, a second core of a microcontroller, rayon) the user implements
//! the trait in a few lines. [`Serial`] runs everything on the calling thread.
//!
//! # Why `join`
//!
//! * It is the smallest primitive every executor has (`rayon::join`,
//!   `std::thread::scope`, a second core with a mailbox), so the user's
//!   implementation is a few lines.
//! * The runtime needs nothing else: both closures claim chunks of the
//!   layer from one atomic word until none are left (the calling thread
//!   from the front, the other from the back, so each keeps to its own part
//!   of the tensors from layer to layer), so the work adapts
//!   to a thread that starts late or is descheduled (a busy machine), and an
//!   executor that runs the second closure after the first (or on the same
//!   thread) is still correct.
//! * More than two threads nest joins (`threads() = n`: the calling thread
//!   and `n - 1` others through `n - 1` nested joins).
//!
//! # How layers are split
//!
//! A layer is cut into chunks (up to [`CHUNKS_PER_THREAD`] per thread, each
//! at least [`Parallel::min_part_macs`]) that the threads claim one by one.
//! Every chunk runs the same kernel ([`crate::simd`]) on a disjoint part of
//! the output, so the result is bit-identical to the serial call (each output
//! value is computed by the same micro-kernel with the same summation order;
//! `runtime/tests/all/par.rs` checks it exactly):
//!
//! * [`pointwise`]: by pixels (rows of the `[pixels x in_c]` matrix), at
//!   multiples of [`PIXEL_ALIGN`] so no register tile straddles two chunks;
//!   one chunk per thread when the weights outweigh the input (every chunk
//!   streams all of them); a single pixel (the classifier) by output
//!   channels, at multiples of [`COLUMN_ALIGN`];
//! * [`depthwise`] and [`conv2d`]: by output rows; each part reads the input
//!   rows its windows need (halo included) through a smaller
//!   [`ConvShape`](crate::ConvShape) from [`conv_rows`] (`in_h`, `pad_top` adjusted).
//!   [`conv2d`] with an NCHW input (not one slice per row window) computes
//!   its parts' rows from the whole input on the direct route (the first
//!   layer), and runs on one thread otherwise.
//!
//! Layers too small to pay for a fork ([`Parallel::min_part_macs`]) run
//! whole on the calling thread. The one `unsafe` block hands each claimed
//! chunk its `&mut` part of the output.

use crate::abi::{amx, conv_rows, Conv2d, Depthwise, Pointwise, PointwiseShape, PwDwShape};
use crate::simd::{BandScratch, Stage};
use crate::{simd, Epilogue, Layout, Pixel};
use core::ops::Range;

#[cfg(feature = "std")]
mod pool;
#[cfg(feature = "std")]
pub use pool::StdPool;

/// An executor for the parallel mode: runs two closures, possibly at the
/// same time, and returns when both are done.
///
/// Implementations must run each closure exactly once before returning
/// (either may run on the calling thread), and must tolerate `join` being
/// called from inside a closure it runs when [`threads`](Parallel::threads)
/// is above 2 (nested joins; running the inner pair serially is fine).
/// A panic in a closure should propagate to the caller of `join` after both
/// closures have finished.
///
/// With rayon: `rayon::join(|| a(), || b());`. With scoped threads:
/// `std::thread::scope(|s| { s.spawn(|| b()); a(); })` (correct, but a
/// thread per layer costs tens of microseconds; prefer a persistent worker
/// like `StdPool`).
pub trait Parallel: Sync {
    /// How many threads the work is split for (`1` means do not split).
    fn threads(&self) -> usize;
    /// Runs `a` and `b` (each once), possibly in parallel; returns when both
    /// have finished.
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send));
    /// The least work (multiply-accumulates) worth a part of its own: a
    /// layer is split into parts of at least this much, smaller layers run
    /// whole on the calling thread. Default [`MIN_MACS_PER_PART`]; an
    /// executor whose fork-join costs more (or less) than about a
    /// microsecond can say so.
    fn min_part_macs(&self) -> usize {
        MIN_MACS_PER_PART
    }
}

/// Runs everything on the calling thread (`threads() == 1`): the parallel
/// entry points then do exactly what the serial ones do.
#[derive(Clone, Copy, Debug, Default)]
pub struct Serial;

impl Parallel for Serial {
    fn threads(&self) -> usize {
        1
    }
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        a();
        b();
    }
}

/// A layer is split only into chunks of at least this many
/// multiply-accumulates (a fork-join costs about a microsecond; smaller
/// layers run whole).
pub const MIN_MACS_PER_PART: usize = 1 << 16;

/// [`pointwise`] splits pixels at multiples of this: the register tiles' row
/// counts (12 on AVX-512, 6 on AVX2/NEON, 2 portable) divide it.
pub const PIXEL_ALIGN: usize = 12;

/// [`pointwise`] with one pixel splits output channels at multiples of this:
/// a whole number of weight panels ([`simd::PANEL`]) and of every register
/// tile's width (32 on AVX-512, 16 elsewhere).
pub const COLUMN_ALIGN: usize = 32;

/// Chunks per thread a layer is cut into at most: the threads claim chunks
/// one at a time, so a thread that is descheduled for a while (a busy
/// machine) delays its layer by at most one chunk, not by half the layer.
pub const CHUNKS_PER_THREAD: usize = 4;

/// Chunks a layer is cut into at most, whatever [`Parallel::threads`] says
/// (the claims of a layer's chunks are counted in half a word).
const MAX_CHUNKS: usize = 1 << 12;
const _: () = assert!(MAX_CHUNKS < 1 << (usize::BITS / 2));

/// How many chunks `units` units (rows or pixels) of `macs_per_unit` each
/// are cut into on `par`: at most `max_chunks`, with at least `align` units
/// and [`Parallel::min_part_macs`] per chunk; 1 means "do not split".
fn chunk_count(par: &dyn Parallel, units: usize, align: usize, macs_per_unit: usize, max_chunks: usize) -> usize {
    let by_macs = units.saturating_mul(macs_per_unit) / par.min_part_macs().max(1);
    let n = by_macs.min(max_chunks).min(units / align.max(1)).min(MAX_CHUNKS);
    if par.threads() < 2 {
        1
    } else {
        n.max(1)
    }
}

/// Chunk `i` of `n` over `0..units`: boundaries at `i * units / n` rounded
/// to the nearest multiple of `align` (the last chunk ends at `units`), so
/// the chunks are balanced to within `align` units. Strictly increasing
/// when `n <= units / align`.
fn chunk(i: usize, n: usize, units: usize, align: usize) -> Range<usize> {
    let align = align.max(1);
    let at = |i: usize| {
        if i >= n {
            units
        } else {
            ((i * units / n + align / 2) / align * align).min(units)
        }
    };
    at(i)..at(i + 1)
}

/// The output pointer shared by the threads of [`for_chunks`].
#[cfg(target_has_atomic = "ptr")]
struct OutPtr(*mut f32);

// SAFETY: `for_chunks` hands each chunk of the pointed-to slice to exactly
// one thread (see there); the pointer itself is only copied.
#[cfg(target_has_atomic = "ptr")]
unsafe impl Sync for OutPtr {}

#[cfg(target_has_atomic = "ptr")]
impl OutPtr {
    /// The pointer (a method, so closures capture the `Sync` wrapper).
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// How a layer's output is cut: `n` chunks covering `0..units` (see
/// [`chunk`]) at multiples of `align`, each unit `unit` elements of the
/// output.
#[derive(Clone, Copy, Debug)]
struct Split {
    units: usize,
    n: usize,
    align: usize,
    unit: usize,
}

/// Runs `f(range, out_part)` for the chunks `range` of `split`, where
/// `out_part` is the part of `out` the chunk writes. `par.threads()`
/// participants (the calling thread and the others, through nested
/// [`Parallel::join`]s) claim chunks until none are left: the calling
/// thread from the front, the first other participant from the back, any
/// further ones from the front ([`Claims`]). So with two threads each keeps
/// to its own end of the tensor, the same end in every layer (the rows it
/// wrote are the rows it reads next, in its own cache), and the two meet
/// wherever the work runs out. Targets without atomic read-modify-write
/// run all chunks on the calling thread.
fn for_chunks<F>(par: &dyn Parallel, split: Split, out: &mut [f32], f: &F)
where
    F: Fn(Range<usize>, &mut [f32]) + Sync,
{
    for_chunks_of(par, usize::MAX, split, out, &|_, r, o| f(r, o));
}

/// [`for_chunks`] with at most `most` participants (the calling thread is
/// participant 0), each chunk's `f` told which participant runs it.
fn for_chunks_of<F>(par: &dyn Parallel, most: usize, split: Split, out: &mut [f32], f: &F)
where
    F: Fn(usize, Range<usize>, &mut [f32]) + Sync,
{
    let Split { units, n, align, unit } = split;
    assert_eq!(out.len(), units * unit, "par: output length (compiler bug)");
    #[cfg(target_has_atomic = "ptr")]
    if n > 1 && par.threads() > 1 && most > 1 {
        let claims = Claims::new(n);
        let base = OutPtr(out.as_mut_ptr());
        let work = |participant: usize| {
            while let Some(i) = claims.claim(participant == 1) {
                let r = chunk(i, n, units, align);
                if r.is_empty() {
                    continue;
                }
                // SAFETY: `Claims::claim` gives each chunk index to exactly
                // one participant, and the chunks' element ranges
                // `r.start * unit..r.end * unit` are disjoint and inside `out`
                // (`r.end <= units`, `out.len() == units * unit`). `out` is
                // borrowed exclusively by this function, which returns only
                // after `join` did, i.e. after every participant finished.
                let part = unsafe {
                    core::slice::from_raw_parts_mut(base.get().add(r.start * unit), (r.end - r.start) * unit)
                };
                f(participant, r, part);
            }
        };
        participate(par, par.threads().min(n).min(most), 0, &work);
        return;
    }
    f(0, 0..units, out);
}

/// The unclaimed chunks `front..back` of a layer, packed in one atomic word
/// (`front` in the low half, `back` in the high half), so a participant
/// takes a chunk from either end with one compare-exchange.
#[cfg(target_has_atomic = "ptr")]
struct Claims(core::sync::atomic::AtomicUsize);

#[cfg(target_has_atomic = "ptr")]
impl Claims {
    const HALF: u32 = usize::BITS / 2;

    /// Chunks `0..n` unclaimed.
    ///
    /// # Panics
    /// If `n` does not fit half a word ([`chunk_count`] gives at most
    /// [`MAX_CHUNKS`], which does).
    fn new(n: usize) -> Self {
        assert!(n < 1 << Self::HALF, "par: {n} chunks (compiler bug)");
        Claims(core::sync::atomic::AtomicUsize::new(n << Self::HALF))
    }

    /// Claims the first unclaimed chunk (the last one if `from_back`), or
    /// `None` when all are taken.
    fn claim(&self, from_back: bool) -> Option<usize> {
        use core::sync::atomic::Ordering;
        let mask = (1usize << Self::HALF) - 1;
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let (front, back) = (cur & mask, cur >> Self::HALF);
            if front >= back {
                return None;
            }
            let (next, i) = if from_back {
                (front | (back - 1) << Self::HALF, back - 1)
            } else {
                ((front + 1) | back << Self::HALF, front)
            };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(i),
                Err(now) => cur = now,
            }
        }
    }
}

/// `par.join(a, b)`; with the `instrument` feature, `a` and `b` run with
/// the calling thread's instruction-set cap and their kernel calls count as
/// its own, whichever thread runs them ([`isa::set_limit`]).
#[inline]
fn join(par: &dyn Parallel, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
    #[cfg(feature = "instrument")]
    {
        let limit = crate::isa::limit_raw();
        let (mut made_a, mut made_b) = ([0; 5], [0; 5]);
        par.join(&mut || made_a = crate::isa::run_part(limit, a), &mut || {
            made_b = crate::isa::run_part(limit, b)
        });
        crate::isa::add_calls(made_a);
        crate::isa::add_calls(made_b);
    }
    #[cfg(not(feature = "instrument"))]
    par.join(a, b);
}

/// Runs `work(i)` on `k` participants `i = first..first + k`: the calling
/// thread, and `k - 1` more through nested joins.
#[cfg(target_has_atomic = "ptr")]
fn participate(par: &dyn Parallel, k: usize, first: usize, work: &(dyn Fn(usize) + Sync)) {
    if k <= 1 {
        work(first);
    } else {
        join(par, &mut || work(first), &mut || {
            participate(par, k - 1, first + 1, work)
        });
    }
}

/// `ep` for the part of a layer whose output is elements `elems` of the
/// whole: the residual sliced alike (left whole when too short, so the
/// kernel reports the length error).
fn part_epilogue<'a>(ep: &Epilogue<'a>, elems: Range<usize>) -> Epilogue<'a> {
    Epilogue {
        residual: ep.residual.map(|r| r.get(elems).unwrap_or(r)),
        ..*ep
    }
}

/// [`simd::pointwise`] on `par`'s threads: split by pixels (at multiples
/// of [`PIXEL_ALIGN`]), a single pixel (the classifier) by output channels;
/// with an AMX scratch, on at most [`AMX_PARTS`] of them, each with its
/// own part of `amx` (one [`amx::scratch_len`] per participant), split at
/// multiples of 32 (the tile rows) where the tiles run. Same arguments,
/// same result bit for bit.
///
/// # Panics
/// As [`simd::pointwise`]; if `amx` has fewer than [`AMX_PARTS`] parts.
#[inline]
pub fn pointwise(
    par: &dyn Parallel,
    p: &Pointwise,
    input: &[f32],
    packed: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
    amx: Option<&mut [f32]>,
) {
    let s = &p.shape;
    if let Some(scratch) = amx {
        let slot = amx::scratch_len(s.pixels, s.in_c, s.out_c, p.tiles.order);
        assert!(
            scratch.len() >= AMX_PARTS * slot,
            "par::pointwise: the AMX scratch has {} elements, {AMX_PARTS} parts of {slot} needed",
            scratch.len()
        );
        let align = if crate::isa::active() == crate::isa::Isa::Amx {
            32
        } else {
            PIXEL_ALIGN
        };
        let parts = ScratchParts(scratch.as_mut_ptr(), slot);
        let how = PixelSplit { most: AMX_PARTS, align };
        return by_pixels(par, p, how, input, ep, out, &|participant, sub, x, ep, y| {
            simd::pointwise(sub, x, packed, ep, y, Some(parts.get(participant)))
        });
    }
    if s.pixels == 1 {
        return pointwise_columns(par, p, input, packed, ep, out);
    }
    let how = PixelSplit {
        most: usize::MAX,
        align: PIXEL_ALIGN,
    };
    by_pixels(par, p, how, input, ep, out, &|_, sub, x, ep, y| {
        simd::pointwise(sub, x, packed, ep, y, None)
    });
}

/// On how many participants, at most, and at multiples of how many pixels a
/// pointwise layer is split.
#[derive(Clone, Copy, Debug)]
struct PixelSplit {
    most: usize,
    align: usize,
}

/// A pointwise layer `p` split by pixels as `how` says: `run(participant,
/// sub, input, ep, out)` computes one chunk (or, in one part, the whole
/// layer as participant 0, also when a length does not match: the kernel
/// reports it).
#[inline]
fn by_pixels<F>(
    par: &dyn Parallel,
    p: &Pointwise,
    how: PixelSplit,
    input: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
    run: &F,
) where
    F: Fn(usize, &Pointwise, &[f32], &Epilogue<'_>, &mut [f32]) + Sync,
{
    let s = &p.shape;
    // Weights larger than the input: every chunk streams all of them, so
    // one chunk per thread.
    let per_thread = if s.out_c > s.pixels { 1 } else { CHUNKS_PER_THREAD };
    let max_chunks = par.threads().min(how.most).saturating_mul(per_thread);
    let n = chunk_count(par, s.pixels, how.align, s.in_c * s.out_c, max_chunks);
    if n <= 1 || input.len() != s.pixels * s.in_c || out.len() != s.pixels * s.out_c {
        return run(0, p, input, ep, out);
    }
    let part = |participant: usize, px: Range<usize>, out: &mut [f32]| {
        let sub = Pointwise {
            shape: PointwiseShape {
                pixels: px.end - px.start,
                ..*s
            },
            tiles: p.tiles,
        };
        let ep = part_epilogue(ep, px.start * s.out_c..px.end * s.out_c);
        run(participant, &sub, &input[px.start * s.in_c..px.end * s.in_c], &ep, out);
    };
    let split = Split {
        units: s.pixels,
        n,
        align: how.align,
        unit: s.out_c,
    };
    for_chunks_of(par, how.most, split, out, &part);
}

/// Participants of [`pointwise`] and [`pointwise_depthwise`] with an AMX
/// scratch: the scratch they are given holds this many per-thread parts.
pub use crate::abi::amx::PARTS as AMX_PARTS;

/// The per-participant parts of a scratch slice: `.1` elements each, at
/// least [`AMX_PARTS`] of them from `.0`.
struct ScratchParts(*mut f32, usize);

// SAFETY: `get` hands part `p` only to participant `p`, and a participant
// index belongs to one thread at a time (`participate` gives each closure
// its own); the pointer itself is only copied.
unsafe impl Sync for ScratchParts {}

impl ScratchParts {
    /// Participant `p`'s part (`p < AMX_PARTS`).
    #[allow(clippy::mut_from_ref)]
    fn get(&self, p: usize) -> &mut [f32] {
        assert!(p < AMX_PARTS, "par: participant {p} has no scratch part (compiler bug)");
        // SAFETY: parts `0..AMX_PARTS` lie inside the scratch slice (checked
        // by the caller against `AMX_PARTS * .1`), are disjoint, and part
        // `p` is only used by participant `p`, which runs one chunk at a
        // time; the slice is borrowed exclusively by the caller until
        // `by_pixels` (which joins every participant) returns.
        unsafe { core::slice::from_raw_parts_mut(self.0.add(p * self.1), self.1) }
    }
}

/// [`pointwise`] with one pixel (a dense layer: the classifier): split by
/// output channels at multiples of [`COLUMN_ALIGN`], each part multiplying
/// the input by its own panels of the weights (the layer streams its weights
/// once, half on each thread).
fn pointwise_columns(
    par: &dyn Parallel,
    p: &Pointwise,
    input: &[f32],
    packed: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    let s = &p.shape;
    let n = chunk_count(par, s.out_c, COLUMN_ALIGN, s.in_c, par.threads());
    let ok = |x: Option<&[f32]>| x.is_none_or(|x| x.len() == s.out_c);
    if n <= 1
        || input.len() != s.in_c
        || packed.len() != crate::abi::pack::pointwise_packed_len(s.in_c, s.out_c)
        || out.len() != s.out_c
        || !ok(ep.bias)
        || !ok(ep.residual)
    {
        // One part (or a length error, which the kernel reports).
        return simd::pointwise(p, input, packed, ep, out, None);
    }
    let part = |cols: Range<usize>, out: &mut [f32]| {
        let sub = Pointwise {
            shape: PointwiseShape {
                out_c: cols.end - cols.start,
                ..*s
            },
            tiles: p.tiles,
        };
        let ep = Epilogue {
            bias: ep.bias.map(|b| &b[cols.clone()]),
            residual: ep.residual.map(|r| &r[cols.clone()]),
            ..*ep
        };
        // Panel `p` (columns `16p..16p + 16`) starts at `p * 16 * in_c`;
        // `cols.start` is a multiple of 16.
        let w = &packed[cols.start * s.in_c..][..crate::abi::pack::pointwise_packed_len(s.in_c, sub.shape.out_c)];
        simd::pointwise(&sub, input, w, &ep, out, None);
    };
    let split = Split {
        units: s.out_c,
        n,
        align: COLUMN_ALIGN,
        unit: 1,
    };
    for_chunks(par, split, out, &part);
}

/// [`simd::depthwise`] on `par`'s threads, split by output rows. Same
/// arguments, same result bit for bit.
///
/// # Panics
/// If a slice length does not match `d` (as [`simd::depthwise`]).
#[inline]
pub fn depthwise(
    par: &dyn Parallel,
    d: &Depthwise,
    input: &[f32],
    weights: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    let s = &d.shape;
    let row_macs = s.out_w * s.out_c * s.kernel_h * s.kernel_w;
    let max_chunks = par.threads().saturating_mul(CHUNKS_PER_THREAD);
    let n = chunk_count(par, s.out_h, 1, row_macs, max_chunks);
    if n <= 1 || input.len() != s.in_len() || out.len() != s.out_len() || s.stride_h == 0 {
        return simd::depthwise(d, input, weights, ep, out);
    }
    let row_in = s.in_w * s.in_c;
    let row_out = s.out_w * s.out_c;
    let part = |rows: Range<usize>, out: &mut [f32]| {
        let (sub, ins) = conv_rows(s, rows.clone());
        let ep = part_epilogue(ep, rows.start * row_out..rows.end * row_out);
        let sub = Depthwise {
            shape: sub,
            tiles: d.tiles,
        };
        simd::depthwise(&sub, &input[ins.start * row_in..ins.end * row_in], weights, &ep, out);
    };
    let split = Split {
        units: s.out_h,
        n,
        align: 1,
        unit: row_out,
    };
    for_chunks(par, split, out, &part);
}

/// [`simd::pointwise_depthwise`] on two of `par`'s threads: the output
/// rows in two halves, each run in bands on its own half of
/// `scratch.rows` (which holds two [`PwDwShape::scratch_len`]s; the
/// pointwise rows both halves' windows read are computed by both) and,
/// with the AMX tiles, its own part of `scratch.amx` ([`AMX_PARTS`]). Same
/// arguments, same result bit for bit. The halves are fixed, not claimed
/// in chunks: each band reuses the rows of the one before it in its
/// thread's scratch. With fewer than 2 threads, too little work for two
/// parts ([`Parallel::min_part_macs`]) or one output row, it runs
/// serially.
///
/// # Panics
/// As [`simd::pointwise_depthwise`].
#[inline]
pub fn pointwise_depthwise(
    par: &dyn Parallel,
    s: &PwDwShape,
    pw: Stage<'_>,
    dw: Stage<'_>,
    input: &[f32],
    scratch: BandScratch<'_>,
    out: &mut [f32],
) {
    const K: &str = "par::pointwise_depthwise";
    let slot = s.scratch_len();
    let amx_slot = amx::scratch_len(s.pw.pixels, s.pw.in_c, s.pw.out_c, s.pw_tiles.order);
    let macs = s.pw.pixels * s.pw.in_c * s.pw.out_c + s.dw.out_len() * s.dw.kernel_h * s.dw.kernel_w;
    let out_h = s.dw.out_h;
    let serial = par.threads() < 2
        || out_h < 2
        || macs / 2 < par.min_part_macs()
        || scratch.rows.len() < 2 * slot
        || scratch.amx.as_ref().is_some_and(|a| a.len() < AMX_PARTS * amx_slot)
        || out.len() != s.dw.out_len();
    if serial {
        return simd::pointwise_depthwise(s, pw, dw, input, scratch, out);
    }
    // Checks every length (and the shapes) before any part runs.
    simd::check_pwdw(s, K, input.len(), slot, out.len(), &pw, &dw);
    let BandScratch { rows, amx } = scratch;
    let (a0, a1) = match amx {
        Some(a) => {
            simd::check_amx(s, K, amx_slot);
            let (a0, a1) = a.split_at_mut(amx_slot);
            (Some(a0), Some(a1))
        }
        None => (None, None),
    };
    let half = out_h / 2;
    let (s0, s1) = rows.split_at_mut(slot);
    let (o0, o1) = out.split_at_mut(half * s.dw.out_w * s.dw.out_c);
    let mut first = Some((BandScratch { rows: s0, amx: a0 }, o0));
    let mut second = Some((BandScratch { rows: s1, amx: a1 }, o1));
    join(
        par,
        &mut || {
            if let Some((scratch, out)) = first.take() {
                simd::pointwise_depthwise_bands(s, 0..half, pw, dw, input, scratch, out);
            }
        },
        &mut || {
            if let Some((scratch, out)) = second.take() {
                simd::pointwise_depthwise_bands(s, half..out_h, pw, dw, input, scratch, out);
            }
        },
    );
}

/// [`simd::conv2d`] on `par`'s threads, split by output rows (an NCHW input
/// only on the direct route, which computes rows of the whole input; other
/// NCHW layers run whole on the calling thread). Same arguments, same result
/// bit for bit.
///
/// # Panics
/// If a slice length does not match `c` (as [`simd::conv2d`]).
#[inline]
pub fn conv2d<T: Pixel + Sync>(
    par: &dyn Parallel,
    c: &Conv2d<'_>,
    input: &[T],
    weights: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    let s = &c.shape;
    let row_macs = s.out_w * s.out_c * s.kernel_h * s.kernel_w * s.in_c;
    let max_chunks = par.threads().saturating_mul(CHUNKS_PER_THREAD);
    let n = chunk_count(par, s.out_h, 1, row_macs, max_chunks);
    if n <= 1 || input.len() != s.in_len() || out.len() != s.out_len() || s.stride_h == 0 {
        return simd::conv2d(c, input, weights, ep, out);
    }
    let row_in = s.in_w * s.in_c;
    let row_out = s.out_w * s.out_c;
    let rows_ep = |rows: &Range<usize>| part_epilogue(ep, rows.start * row_out..rows.end * row_out);
    let split = Split {
        units: s.out_h,
        n,
        align: 1,
        unit: row_out,
    };
    if c.layout != Layout::Nhwc {
        // An NCHW row window is not one slice: the direct route computes
        // output rows of the whole input; other shapes run whole.
        if !simd::conv2d_rows_applies(s) {
            return simd::conv2d(c, input, weights, ep, out);
        }
        let part = |rows: Range<usize>, out: &mut [f32]| {
            simd::conv2d_rows(c, input, weights, &rows_ep(&rows), rows, out);
        };
        return for_chunks(par, split, out, &part);
    }
    let part = |rows: Range<usize>, out: &mut [f32]| {
        let (sub, ins) = conv_rows(s, rows.clone());
        let x = &input[ins.start * row_in..ins.end * row_in];
        let sub = Conv2d { shape: sub, ..*c };
        simd::conv2d(&sub, x, weights, &rows_ep(&rows), out);
    };
    for_chunks(par, split, out, &part);
}

#[cfg(test)]
mod tests {
    use super::chunk;

    #[test]
    #[cfg(target_has_atomic = "ptr")]
    fn claims_from_both_ends_take_each_chunk_once() {
        use super::Claims;
        for n in 1..20 {
            for pattern in 0u32..64 {
                let c = Claims::new(n);
                let mut seen = [false; 20];
                let (mut front, mut back) = (0, n);
                for step in 0.. {
                    let from_back = pattern >> (step % 6) & 1 == 1;
                    match c.claim(from_back) {
                        Some(i) => {
                            assert!(!seen[i], "n {n}: chunk {i} twice");
                            seen[i] = true;
                            if from_back {
                                back -= 1;
                                assert_eq!(i, back, "n {n}: from the back");
                            } else {
                                assert_eq!(i, front, "n {n}: from the front");
                                front += 1;
                            }
                        }
                        None => break,
                    }
                }
                assert!(seen[..n].iter().all(|&s| s), "n {n}: a chunk was never claimed");
                assert_eq!(c.claim(false), None);
                assert_eq!(c.claim(true), None);
            }
        }
    }

    #[test]
    fn chunks_cover_in_order_and_balance() {
        for align in [1, 2, 12] {
            for units in 1..300 {
                for n in 1..=(units / align).max(1) {
                    let mut end = 0;
                    for i in 0..n {
                        let r = chunk(i, n, units, align);
                        assert_eq!(r.start, end, "units {units} n {n} align {align}: chunk {i} {r:?}");
                        assert!(r.end > r.start, "units {units} n {n} align {align}: chunk {i} empty");
                        assert!(
                            i + 1 == n || r.end.is_multiple_of(align),
                            "chunk {i} ends off the alignment"
                        );
                        // Within `align` of the even share.
                        let len = (r.end - r.start) as f64;
                        let share = units as f64 / n as f64;
                        assert!(
                            (len - share).abs() <= align as f64,
                            "units {units} n {n} align {align}: {r:?}"
                        );
                        end = r.end;
                    }
                    assert_eq!(end, units);
                }
            }
        }
    }
}
