//! The weight blob: little-endian `f32`s in the kernels' packed order,
//! embedded by generated code as `static W: Aligned<[u8; N]>` (from
//! `include_bytes!` or a byte-string literal) and viewed as `&[f32]`.

/// Aligns its content to 64 bytes (a cache line, and any SIMD load).
#[repr(C, align(64))]
pub struct Aligned<T: ?Sized>(pub T);

#[cfg(target_endian = "big")]
compile_error!("mncc weight blobs are little-endian; big-endian targets are not supported");

/// Views an aligned blob of little-endian `f32`s as a slice of `f32`.
///
/// The view is free (no copy, no decoding): `f32_view(&W)[i]` is the `f32`
/// whose little-endian bytes are `W.0[4 * i..4 * i + 4]`.
///
/// # Panics
/// If `N` is not a multiple of 4.
#[inline]
pub fn f32_view<const N: usize>(blob: &Aligned<[u8; N]>) -> &[f32] {
    assert!(
        N.is_multiple_of(4),
        "f32_view: weight blob length {N} is not a multiple of 4"
    );
    let bytes: &[u8; N] = &blob.0;
    // SAFETY:
    // * Alignment: `Aligned` is `repr(C, align(64))` with the array as its
    //   only field (offset 0), so `bytes` starts on a 64-byte boundary, a
    //   multiple of `align_of::<f32>() == 4`.
    // * Length: `N % 4 == 0` (asserted above), so `N / 4` `f32`s cover exactly
    //   the `N` initialized bytes of the array and nothing past it.
    // * Validity: every bit pattern is a valid `f32` (possibly NaN), and the
    //   bytes are initialized `u8`s.
    // * Meaning: the blob is little-endian and the `compile_error!` above
    //   rejects big-endian targets, so native `f32` loads read the right value.
    // * Aliasing and lifetime: the result borrows `blob` shared for its own
    //   lifetime, and `u8`/`f32` have no interior mutability.
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), N / 4) }
}
