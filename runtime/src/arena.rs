//! The arena: one caller-provided byte buffer holding every intermediate
//! tensor at the offsets the compiler's memory planner fixed, borrowed as
//! typed slices without `unsafe` in generated code.
//!
//! Generated code turns the caller's `&mut [u8; ARENA_LEN]` into an
//! [`ArenaMut`] with [`align_arena`] (its first 64-byte boundary on), then
//! each layer borrows the tensors it reads shared and the one it writes
//! exclusively ([`ArenaMut::split2`], [`ArenaMut::split3`],
//! [`ArenaMut::split_scratch`]) as slices of their element types. The
//! planner guarantees the written range overlaps no range read by the same
//! layer, and these methods check it (a panic here is a compiler bug).
//! Ranges are in bytes; each starts at a multiple of its element's size.
//!
//! Empty ranges overlap nothing. A range with `start > end` is invalid and
//! panics like an out-of-bounds one.

use crate::abi::{Elem, ALIGN};
use crate::elem::{cast, cast_mut};
use core::ops::Range;

/// Bytes of slack generated code adds to its `ARENA_LEN`, so that
/// [`align_arena`] can start the planned tensors on a 64-byte boundary
/// wherever the caller's arena is.
pub const ARENA_SLACK: usize = ALIGN - 1;

/// The caller's arena from its first 64-byte boundary on: the memory plan
/// puts every tensor at a multiple of 64 bytes from its start, so every
/// tensor starts on a cache line. (A heap-allocated buffer is typically 16
/// bytes past one; vectors that straddle two lines cost up to 10% of a
/// whole model: v1 1.0 224 on AVX-512, NOTES.md.)
///
/// Invariant: its bytes start on a 64-byte boundary, or there are none.
pub struct ArenaMut<'a> {
    bytes: &'a mut [u8],
}

/// `arena` from its first 64-byte boundary on (at most [`ARENA_SLACK`]
/// bytes in; nothing if it is shorter than that).
#[inline]
pub fn align_arena(arena: &mut [u8]) -> ArenaMut<'_> {
    let off = arena.as_ptr().align_offset(ALIGN);
    if off > arena.len() {
        return ArenaMut { bytes: &mut [] };
    }
    ArenaMut {
        bytes: &mut arena[off..],
    }
}

impl<'a> ArenaMut<'a> {
    /// Bytes from the aligned start.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there are no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The tensor at bytes `r`, shared.
    ///
    /// # Panics
    /// If `r` lies outside the arena or is not a whole number of `T`s from a
    /// multiple of `T`'s size.
    #[inline(always)]
    #[track_caller]
    pub fn get<T: Elem>(&self, r: Range<usize>) -> &[T] {
        check_range("get", "range", &r, self.bytes.len());
        typed(&self.bytes[r.clone()], r.start)
    }

    /// The tensor at bytes `r`, exclusively.
    ///
    /// # Panics
    /// As [`get`](Self::get).
    #[inline(always)]
    #[track_caller]
    pub fn get_mut<T: Elem>(&mut self, r: Range<usize>) -> &mut [T] {
        check_range("get_mut", "range", &r, self.bytes.len());
        let start = r.start;
        typed_mut(&mut self.bytes[r], start)
    }

    /// The arena before byte `at` and from it on, as two arenas (the AMX
    /// layers' scratch lies past the planned tensors).
    ///
    /// # Panics
    /// If `at` is past the end or not a multiple of 64.
    #[inline(always)]
    #[track_caller]
    pub fn split_at(&mut self, at: usize) -> (ArenaMut<'_>, ArenaMut<'_>) {
        assert!(
            at <= self.bytes.len() && at.is_multiple_of(ALIGN),
            "split_at: {at} is past the arena's {} bytes or not a multiple of {ALIGN} (compiler bug: memory plan)",
            self.bytes.len()
        );
        let (a, b) = self.bytes.split_at_mut(at);
        (ArenaMut { bytes: a }, ArenaMut { bytes: b })
    }

    /// Borrows `input` shared and `output` exclusively.
    ///
    /// # Panics
    /// If the ranges overlap or lie outside the arena, or a range does not
    /// fit its element type.
    #[inline(always)]
    #[track_caller]
    pub fn split2<X: Elem, Y: Elem>(&mut self, input: Range<usize>, output: Range<usize>) -> (&[X], &mut [Y]) {
        let arena = &mut *self.bytes;
        check_range("split2", "input", &input, arena.len());
        check_range("split2", "output", &output, arena.len());
        if output.is_empty() {
            let arena: &[u8] = arena;
            return (typed(&arena[input.clone()], input.start), &mut []);
        }
        let (before, out, after) = around(arena, &output);
        let x = pick("split2", "input", before, after, &input, &output);
        (typed(x, input.start), typed_mut(out, output.start))
    }

    /// Borrows `a` and `b` shared (they may overlap each other) and `output`
    /// exclusively.
    ///
    /// # Panics
    /// If `output` overlaps `a` or `b`, a range lies outside the arena, or a
    /// range does not fit its element type.
    #[inline(always)]
    #[track_caller]
    pub fn split3<A: Elem, B: Elem, Y: Elem>(
        &mut self,
        a: Range<usize>,
        b: Range<usize>,
        output: Range<usize>,
    ) -> (&[A], &[B], &mut [Y]) {
        let arena = &mut *self.bytes;
        check_range("split3", "a", &a, arena.len());
        check_range("split3", "b", &b, arena.len());
        check_range("split3", "output", &output, arena.len());
        if output.is_empty() {
            let arena: &[u8] = arena;
            return (
                typed(&arena[a.clone()], a.start),
                typed(&arena[b.clone()], b.start),
                &mut [],
            );
        }
        let (before, out, after) = around(arena, &output);
        let x = pick("split3", "a", before, after, &a, &output);
        let y = pick("split3", "b", before, after, &b, &output);
        (typed(x, a.start), typed(y, b.start), typed_mut(out, output.start))
    }

    /// Borrows `input` shared, and `scratch` and `output` exclusively (a
    /// layer that works through a scratch tensor: a pointwise layer run in
    /// bands with the depthwise layer after it). An empty range borrows
    /// nothing (the input or output is the caller's).
    ///
    /// # Panics
    /// If two non-empty ranges overlap, a range lies outside the arena, or
    /// a range does not fit its element type.
    #[inline(always)]
    #[track_caller]
    pub fn split_scratch<X: Elem, S: Elem, Y: Elem>(
        &mut self,
        input: Range<usize>,
        scratch: Range<usize>,
        output: Range<usize>,
    ) -> (&[X], &mut [S], &mut [Y]) {
        const F: &str = "split_scratch";
        let arena = &mut *self.bytes;
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
        let (scr, out) = (typed_mut(scr, scratch.start), typed_mut(out, output.start));
        if input.is_empty() {
            return (&[], scr, out);
        }
        for (piece, base) in pieces {
            if input.start >= base && input.end <= base + piece.len() {
                let piece: &[u8] = piece;
                return (
                    typed(&piece[input.start - base..input.end - base], input.start),
                    scr,
                    out,
                );
            }
        }
        panic!(
            "{F}: input range {input:?} overlaps scratch {scratch:?} or output {output:?} (compiler bug: memory plan)"
        )
    }
}

/// `bytes` (at offset `start` of an aligned arena) as `T`s.
#[inline(always)]
#[track_caller]
fn typed<T: Elem>(bytes: &[u8], start: usize) -> &[T] {
    check_elem::<T>(start, bytes.len());
    // The arena starts on a 64-byte boundary (`ArenaMut`'s invariant) and
    // `start` is a multiple of `T`'s size (checked), so `bytes` is aligned
    // for `T`, or empty.
    cast(bytes)
}

/// [`typed`], exclusively.
#[inline(always)]
#[track_caller]
fn typed_mut<T: Elem>(bytes: &mut [u8], start: usize) -> &mut [T] {
    check_elem::<T>(start, bytes.len());
    cast_mut(bytes)
}

/// Panics unless a range of `len` bytes from `start` is a whole number of
/// `T`s from a multiple of `T`'s size.
#[inline(always)]
#[track_caller]
fn check_elem<T: Elem>(start: usize, len: usize) {
    let size = core::mem::size_of::<T>();
    assert!(
        start.is_multiple_of(size) && len.is_multiple_of(size),
        "arena: bytes {start}..{} do not hold {}s (compiler bug: memory plan)",
        start + len,
        T::TYPE
    );
}

/// Splits `s` (which starts at arena offset `base`) into the part before
/// `r`, `r` itself and the part after it; `r` must lie inside `s` or be
/// empty (then it is cut at `s`'s end when `r` lies past `s`, else at its
/// start). `other` (named `name`), if non-empty, must not overlap `r`.
#[inline]
#[track_caller]
#[allow(clippy::type_complexity)]
fn carve<'a>(
    s: &'a mut [u8],
    base: usize,
    r: &Range<usize>,
    name: &str,
    other: &Range<usize>,
) -> (&'a mut [u8], &'a mut [u8], &'a mut [u8]) {
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

/// Panics unless `r` is a valid range inside a slice of `len` bytes.
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
fn around<'a>(arena: &'a mut [u8], output: &Range<usize>) -> (&'a [u8], &'a mut [u8], &'a [u8]) {
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
    before: &'a [u8],
    after: &'a [u8],
    r: &Range<usize>,
    output: &Range<usize>,
) -> &'a [u8] {
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
