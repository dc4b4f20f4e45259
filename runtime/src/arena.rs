//! Borrowing several tensors of one arena at once, without `unsafe`.
//!
//! Generated code keeps every intermediate tensor in one caller-provided
//! `[f32; ARENA_LEN]` at offsets fixed by the compiler's memory planner. A
//! layer reads one or two tensors and writes one; the planner guarantees the
//! written range overlaps no range read by the same layer, and these helpers
//! check it (a panic here is a compiler bug).
//!
//! Empty ranges overlap nothing. A range with `start > end` is invalid and
//! panics like an out-of-bounds one.

use core::ops::Range;

/// Floats of slack generated code adds to its `ARENA_LEN`, so that
/// [`align_arena`] can start the planned tensors on a 64-byte boundary
/// wherever the caller's arena is.
pub const ARENA_SLACK: usize = 15;

/// `arena` from its first 64-byte boundary on (at most [`ARENA_SLACK`]
/// floats in): the memory plan puts every tensor at a multiple of 16
/// floats from the start, so every tensor then starts on a cache line.
/// A heap-allocated `[f32; N]` is typically 16 bytes past one (glibc's
/// `malloc`), and vectors that straddle two lines cost up to 10% of a
/// whole model (v1 1.0 224 on AVX-512, NOTES.md).
#[inline]
pub fn align_arena(arena: &mut [f32]) -> &mut [f32] {
    let off = arena.as_ptr().align_offset(64);
    let off = if off <= ARENA_SLACK { off } else { 0 };
    let off = off.min(arena.len());
    &mut arena[off..]
}

/// Borrows `input` shared and `output` exclusively.
///
/// # Panics
/// If the ranges overlap or lie outside `arena`.
#[inline]
#[track_caller]
pub fn split2(arena: &mut [f32], input: Range<usize>, output: Range<usize>) -> (&[f32], &mut [f32]) {
    check_range("split2", "input", &input, arena.len());
    check_range("split2", "output", &output, arena.len());
    if output.is_empty() {
        let arena: &[f32] = arena;
        return (&arena[input], Default::default());
    }
    let (before, out, after) = around(arena, &output);
    let input = pick("split2", "input", before, after, &input, &output);
    (input, out)
}

/// Borrows `a` and `b` shared (they may overlap each other) and `output`
/// exclusively.
///
/// # Panics
/// If `output` overlaps `a` or `b`, or a range lies outside `arena`.
#[inline]
#[track_caller]
pub fn split3(
    arena: &mut [f32],
    a: Range<usize>,
    b: Range<usize>,
    output: Range<usize>,
) -> (&[f32], &[f32], &mut [f32]) {
    check_range("split3", "a", &a, arena.len());
    check_range("split3", "b", &b, arena.len());
    check_range("split3", "output", &output, arena.len());
    if output.is_empty() {
        let arena: &[f32] = arena;
        return (&arena[a], &arena[b], Default::default());
    }
    let (before, out, after) = around(arena, &output);
    let a = pick("split3", "a", before, after, &a, &output);
    let b = pick("split3", "b", before, after, &b, &output);
    (a, b, out)
}

/// Borrows `input` shared, and `scratch` and `output` exclusively (a layer
/// that works through a scratch tensor: a pointwise layer run in bands with
/// the depthwise layer after it). An empty range borrows nothing (the input
/// or output is the caller's).
///
/// # Panics
/// If two non-empty ranges overlap, or a range lies outside `arena`.
#[inline]
#[track_caller]
pub fn split_scratch(
    arena: &mut [f32],
    input: Range<usize>,
    scratch: Range<usize>,
    output: Range<usize>,
) -> (&[f32], &mut [f32], &mut [f32]) {
    const F: &str = "split_scratch";
    check_range(F, "input", &input, arena.len());
    check_range(F, "scratch", &scratch, arena.len());
    check_range(F, "output", &output, arena.len());
    let (before, out, after) = carve(arena, 0, &output, "scratch", &scratch);
    // `scratch` lies on one side of `output`; carve it out of that side.
    let (pieces, scr) = if scratch.is_empty() || scratch.end <= output.start {
        let (b0, scr, b1) = carve(before, 0, &scratch, "input", &input);
        ([(b0, 0), (b1, scratch.end), (after, output.end)], scr)
    } else {
        let (a0, scr, a1) = carve(after, output.end, &scratch, "input", &input);
        ([(before, 0), (a0, output.end), (a1, scratch.end)], scr)
    };
    if input.is_empty() {
        return (&[], scr, out);
    }
    for (piece, base) in pieces {
        if input.start >= base && input.end <= base + piece.len() {
            let piece: &[f32] = piece;
            return (&piece[input.start - base..input.end - base], scr, out);
        }
    }
    panic!("{F}: input range {input:?} overlaps scratch {scratch:?} or output {output:?} (compiler bug: memory plan)")
}

/// Splits `s` (which starts at arena offset `base`) into the part before
/// `r`, `r` itself and the part after it; `r` must lie inside `s` or be
/// empty (then it is cut at `s`'s end when `r` lies past `s`, else at its
/// start). `other` (named `name`), if non-empty, must not overlap `r`.
#[inline]
#[track_caller]
#[allow(clippy::type_complexity)]
fn carve<'a>(
    s: &'a mut [f32],
    base: usize,
    r: &Range<usize>,
    name: &str,
    other: &Range<usize>,
) -> (&'a mut [f32], &'a mut [f32], &'a mut [f32]) {
    assert!(
        r.is_empty() || other.is_empty() || other.end <= r.start || other.start >= r.end,
        "split_scratch: {name} range {other:?} overlaps {r:?} (compiler bug: memory plan)"
    );
    let at = if r.is_empty() {
        r.start.clamp(base, base + s.len()) - base
    } else {
        assert!(
            r.start >= base && r.end <= base + s.len(),
            "split_scratch: {r:?} straddles another range (compiler bug: memory plan)"
        );
        r.start - base
    };
    let (before, rest) = s.split_at_mut(at);
    let (mid, after) = rest.split_at_mut(r.len());
    (before, mid, after)
}

/// Panics unless `r` is a valid range inside a slice of `len` elements.
#[inline]
#[track_caller]
fn check_range(func: &str, name: &str, r: &Range<usize>, len: usize) {
    assert!(
        r.start <= r.end && r.end <= len,
        "{func}: {name} range {r:?} is not inside the arena (length {len}) (compiler bug: memory plan)"
    );
}

/// Splits `arena` into the part before `output`, `output` itself, and the part
/// after it. `output` must be a valid range of `arena`.
#[inline]
fn around<'a>(arena: &'a mut [f32], output: &Range<usize>) -> (&'a [f32], &'a mut [f32], &'a [f32]) {
    let (head, after) = arena.split_at_mut(output.end);
    let (before, out) = head.split_at_mut(output.start);
    (before, out, after)
}

/// Borrows the shared range `r` from `before` (which starts at arena offset 0)
/// or `after` (which starts at `output.end`): `r` must lie entirely on one
/// side of the non-empty `output`, or be empty.
#[inline]
#[track_caller]
fn pick<'a>(
    func: &str,
    name: &str,
    before: &'a [f32],
    after: &'a [f32],
    r: &Range<usize>,
    output: &Range<usize>,
) -> &'a [f32] {
    if r.is_empty() {
        &[]
    } else if r.end <= output.start {
        &before[r.clone()]
    } else if r.start >= output.end {
        &after[r.start - output.end..r.end - output.end]
    } else {
        panic!("{func}: {name} range {r:?} overlaps output range {output:?} (compiler bug: memory plan)")
    }
}
