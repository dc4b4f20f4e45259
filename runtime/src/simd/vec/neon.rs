//! aarch64 NEON vectors (4 lanes; NEON is part of the aarch64 baseline).

use super::Vf32;
use core::arch::aarch64::*;

/// 4 lanes in a `q` register.
#[derive(Clone, Copy)]
pub(crate) struct Neon(pub(crate) float32x4_t);

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
