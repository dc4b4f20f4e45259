//! aarch64 NEON vectors and the entry points that instantiate the generic
//! kernels for them (NEON is part of the aarch64 baseline).

use super::conv2d::direct::{direct_v, DirectRow};
use super::depthwise::{depthwise_v, Dw};
use super::gemm::{gemm_v, Block};
use super::Vf32;
use core::arch::aarch64::*;

/// 4 lanes in a `q` register.
#[derive(Clone, Copy)]
pub(crate) struct Neon(float32x4_t);

// SAFETY (all methods): `Vf32`'s contract — NEON is present (aarch64
// baseline, checked at dispatch) and pointers are valid for 4 floats.
impl Vf32 for Neon {
    const N: usize = 4;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: see the impl.
        Neon(unsafe { vdupq_n_f32(0.0) })
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: see the impl.
        Neon(unsafe { vdupq_n_f32(x) })
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: see the impl.
        Neon(unsafe { vld1q_f32(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: see the impl.
        unsafe { vst1q_f32(p, self.0) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: see the impl.
        Neon(unsafe { vfmaq_f32(c.0, a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: see the impl.
        Neon(unsafe { vaddq_f32(a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn clamp(v: Self, lo: Self, hi: Self) -> Self {
        // FMAX/FMIN return NaN when either operand is NaN.
        // SAFETY: see the impl.
        Neon(unsafe { vminq_f32(hi.0, vmaxq_f32(lo.0, v.0)) })
    }
}

/// # Safety
/// `b` satisfies the GEMM contract.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn gemm_neon(b: &Block<'_>) {
    // SAFETY: forwarded.
    unsafe { gemm_v::<Neon, 6, 4, 2, 4, 4>(b) }
}

/// # Safety
/// `d` satisfies the depthwise contract.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn depthwise_neon(d: &Dw<'_>) {
    // SAFETY: forwarded.
    unsafe { depthwise_v::<Neon, Neon, 4, 4, true>(d) }
}

/// # Safety
/// `d` satisfies the direct conv2d contract.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn conv2d_direct_neon(d: &DirectRow<'_>) {
    // SAFETY: forwarded.
    unsafe { direct_v::<Neon, Neon, 4, 4, 12, 12>(d) }
}
