//! x86-64 vectors: AVX-512F (16 lanes) and AVX2+FMA (8 lanes).

use super::Vf32;
use core::arch::x86_64::*;

/// 16 lanes in a `zmm` register.
#[derive(Clone, Copy)]
pub(crate) struct Avx512(pub(crate) __m512);

/// 8 lanes in a `ymm` register.
#[derive(Clone, Copy)]
pub(crate) struct Avx2(pub(crate) __m256);

// SAFETY (all methods of both impls): `Vf32`'s contract — the caller runs
// on a CPU with the instruction set (checked at dispatch) and passes
// pointers valid for `N` floats.
impl Vf32 for Avx512 {
    const N: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: see the impl.
        Avx512(unsafe { _mm512_setzero_ps() })
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: see the impl.
        Avx512(unsafe { _mm512_set1_ps(x) })
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: see the impl.
        Avx512(unsafe { _mm512_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: see the impl.
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: see the impl.
        Avx512(unsafe { _mm512_fmadd_ps(a.0, b.0, c.0) })
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: see the impl.
        Avx512(unsafe { _mm512_add_ps(a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn clamp(v: Self, lo: Self, hi: Self) -> Self {
        // MAXPS/MINPS return the second operand when either is NaN or both
        // are zeros: with `v` second, NaN propagates and `v == lo` gives `v`.
        // SAFETY: see the impl.
        Avx512(unsafe { _mm512_min_ps(hi.0, _mm512_max_ps(lo.0, v.0)) })
    }
    #[inline(always)]
    unsafe fn load_n(p: *const f32, n: usize) -> Self {
        // SAFETY: see the impl; masked-off lanes are not read (no fault).
        Avx512(unsafe { _mm512_maskz_loadu_ps(((1u32 << n) - 1) as u16, p) })
    }
    #[inline(always)]
    unsafe fn store_n(self, p: *mut f32, n: usize) {
        // SAFETY: see the impl; masked-off lanes are not written.
        unsafe { _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as u16, self.0) }
    }
}

impl Vf32 for Avx2 {
    const N: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: see the impl.
        Avx2(unsafe { _mm256_setzero_ps() })
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: see the impl.
        Avx2(unsafe { _mm256_set1_ps(x) })
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: see the impl.
        Avx2(unsafe { _mm256_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: see the impl.
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: see the impl.
        Avx2(unsafe { _mm256_fmadd_ps(a.0, b.0, c.0) })
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: see the impl.
        Avx2(unsafe { _mm256_add_ps(a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn clamp(v: Self, lo: Self, hi: Self) -> Self {
        // As for AVX-512: `v` is the second operand of both.
        // SAFETY: see the impl.
        Avx2(unsafe { _mm256_min_ps(hi.0, _mm256_max_ps(lo.0, v.0)) })
    }
}
