//! Borrowing several tensors of one arena at once, without `unsafe`.
//!
//! Generated code keeps every intermediate tensor in one caller-provided
//! `[f32; ARENA_LEN]` at offsets fixed by the compiler's memory planner. A
//! layer reads one or two tensors and writes one; the planner guarantees the
//! written range overlaps no range read by the same layer, and these helpers
//! check it (a panic here is a compiler bug).

use core::ops::Range;

/// Borrows `input` shared and `output` exclusively.
///
/// # Panics
/// If the ranges overlap or lie outside `arena`.
pub fn split2(arena: &mut [f32], input: Range<usize>, output: Range<usize>) -> (&[f32], &mut [f32]) {
    let _ = (arena, input, output);
    todo!("split2")
}

/// Borrows `a` and `b` shared (they may overlap each other) and `output`
/// exclusively.
///
/// # Panics
/// If `output` overlaps `a` or `b`, or a range lies outside `arena`.
pub fn split3(
    arena: &mut [f32],
    a: Range<usize>,
    b: Range<usize>,
    output: Range<usize>,
) -> (&[f32], &[f32], &mut [f32]) {
    let _ = (arena, a, b, output);
    todo!("split3")
}
