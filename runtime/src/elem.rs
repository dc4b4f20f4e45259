//! Aligned bytes as slices of an element type: the runtime's one pair of
//! reinterpreting casts, for the arena and the weight blob.

use crate::abi::Elem;

/// `bytes` as `T`s.
///
/// The caller guarantees that `bytes` starts at an address aligned for
/// `T` or is empty (the arena and the blob start on 64-byte boundaries,
/// and their typed ranges at multiples of the element size), and that its
/// length is a multiple of `T`'s size (checked in debug builds, like the
/// alignment; a wrong caller gets a panic there, never a misread).
#[inline(always)]
pub(crate) fn cast<T: Elem>(bytes: &[u8]) -> &[T] {
    if bytes.is_empty() {
        return &[];
    }
    check::<T>(bytes.as_ptr(), bytes.len());
    // SAFETY:
    // * Alignment: the caller's contract (asserted above in debug builds):
    //   `bytes` is non-empty and starts at an address aligned for `T`.
    // * Length: `len / size_of::<T>()` elements cover exactly the bytes of
    //   `bytes` (its length is a multiple of the size) and nothing past it.
    // * Validity: `Elem` is sealed in `mncc-abi` and implemented only for
    //   `f32`, `u16`, `i8`, `u8`, `i32`: plain data without padding, for
    //   which every initialized bit pattern is a value.
    // * Aliasing and lifetime: the result borrows `bytes` shared for its own
    //   lifetime; no type involved has interior mutability.
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / core::mem::size_of::<T>()) }
}

/// [`cast`], exclusively.
#[inline(always)]
pub(crate) fn cast_mut<T: Elem>(bytes: &mut [u8]) -> &mut [T] {
    if bytes.is_empty() {
        return &mut [];
    }
    check::<T>(bytes.as_ptr(), bytes.len());
    // SAFETY: as in `cast`; in addition the result borrows `bytes`
    // exclusively for its own lifetime, and any bit pattern written through
    // it is a valid `u8`.
    unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<T>(), bytes.len() / core::mem::size_of::<T>()) }
}

/// The alignment and length contract of [`cast`], in debug builds.
#[inline(always)]
fn check<T: Elem>(p: *const u8, len: usize) {
    debug_assert!(
        p.align_offset(core::mem::align_of::<T>()) == 0 && len.is_multiple_of(core::mem::size_of::<T>()),
        "cast: {len} bytes at {p:?} are not aligned {}s",
        T::TYPE
    );
}
