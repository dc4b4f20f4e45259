//! x86-64 vectors (AVX-512F, AVX2+FMA) and the `#[target_feature]` entry
//! points that instantiate the generic kernels for them.

use super::conv2d::direct::{direct_v, DirectRow};
use super::depthwise::{depthwise_v, Dw};
use super::gemm::{gemm_v, Block};
use super::Vf32;
use core::arch::x86_64::*;

/// 16 lanes in a `zmm` register.
#[derive(Clone, Copy)]
pub(crate) struct Avx512(__m512);

/// 8 lanes in a `ymm` register.
#[derive(Clone, Copy)]
pub(crate) struct Avx2(__m256);

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

/// # Safety
/// The CPU has AVX-512F; `b` satisfies the GEMM contract.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn gemm_avx512(b: &Block<'_>) {
    // SAFETY: forwarded.
    unsafe { gemm_v::<Avx512, 12, 8, 4, 2, 1>(b) }
}

/// # Safety
/// The CPU has AVX2 and FMA; `b` satisfies the GEMM contract.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn gemm_avx2(b: &Block<'_>) {
    // SAFETY: forwarded.
    unsafe { gemm_v::<Avx2, 6, 4, 2, 2, 2>(b) }
}

/// # Safety
/// The CPU has AVX-512F; `d` satisfies the depthwise contract.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn depthwise_avx512(d: &Dw<'_>) {
    // SAFETY: forwarded.
    unsafe { depthwise_v::<Avx512, Avx2, 8, 4, true>(d) }
}

/// # Safety
/// The CPU has AVX2 and FMA; `d` satisfies the depthwise contract.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn depthwise_avx2(d: &Dw<'_>) {
    // SAFETY: forwarded.
    unsafe { depthwise_v::<Avx2, super::portable::F32x4, 4, 2, true>(d) }
}

/// # Safety
/// The CPU has AVX-512F; `d` satisfies the direct conv2d contract.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn conv2d_direct_avx512(d: &DirectRow<'_>) {
    // SAFETY: forwarded.
    unsafe { direct_v::<Avx512, Avx2, 2, 8, 16, 8>(d) }
}

/// # Safety
/// The CPU has AVX2 and FMA; `d` satisfies the direct conv2d contract.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn conv2d_direct_avx2(d: &DirectRow<'_>) {
    // SAFETY: forwarded.
    unsafe { direct_v::<Avx2, Avx2, 2, 4, 8, 8>(d) }
}
