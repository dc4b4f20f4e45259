//! The weight blob: every layer's weights in its kernel's element type and
//! packed order ([`crate::abi::pack`]), little-endian, each segment on a
//! 64-byte boundary, embedded by generated code as `static WEIGHTS:
//! Aligned<[u8; N]>` (from `include_bytes!` or a byte-string literal) and
//! read through a [`Blob`].

use crate::abi::{Elem, ALIGN};
use crate::elem::cast;
use core::ops::Range;

/// Aligns its content to 64 bytes (a cache line, and any SIMD load).
#[repr(C, align(64))]
pub struct Aligned<T: ?Sized>(pub T);

const _: () = assert!(core::mem::align_of::<Aligned<[u8; 0]>>() == ALIGN);

#[cfg(target_endian = "big")]
compile_error!("mncc weight blobs are little-endian; big-endian targets are not supported");

/// A weight blob, viewed in typed segments.
///
/// Invariant: its bytes start on a 64-byte boundary (an [`Aligned`]'s).
#[derive(Clone, Copy)]
pub struct Blob<'a> {
    bytes: &'a [u8],
}

impl<'a> Blob<'a> {
    /// The blob `w`.
    #[inline]
    pub fn new<const N: usize>(w: &'a Aligned<[u8; N]>) -> Blob<'a> {
        Blob { bytes: &w.0 }
    }

    /// Bytes in the blob.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the blob is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The segment at bytes `r` as `T`s: free (no copy, no decoding):
    /// element `i` is the `T` whose little-endian bytes start at byte
    /// `r.start + i * size_of::<T>()`.
    ///
    /// # Panics
    /// If `r` lies outside the blob, or is not a whole number of `T`s from
    /// a multiple of `T`'s size.
    #[inline]
    #[track_caller]
    pub fn get<T: Elem>(self, r: Range<usize>) -> &'a [T] {
        let size = core::mem::size_of::<T>();
        assert!(
            r.start <= r.end
                && r.end <= self.bytes.len()
                && r.start.is_multiple_of(size)
                && r.len().is_multiple_of(size),
            "weights: bytes {r:?} of {} do not hold {}s (compiler bug: blob layout)",
            self.bytes.len(),
            T::TYPE
        );
        // The blob starts on a 64-byte boundary (the invariant) and
        // `r.start` is a multiple of `T`'s size (checked): aligned for `T`.
        cast(&self.bytes[r])
    }
}
