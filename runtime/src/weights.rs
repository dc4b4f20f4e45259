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
/// # Panics
/// If `N` is not a multiple of 4.
pub fn f32_view<const N: usize>(blob: &Aligned<[u8; N]>) -> &[f32] {
    let _ = blob;
    todo!("f32_view")
}
