//! The portable vector: 4 lanes as a plain array (LLVM vectorizes it where
//! the target has SIMD; elsewhere, e.g. Cortex-M4F, it is four scalar ops).
//! The lanes are written out by hand: at opt-level "s" (what a
//! microcontroller build uses) `array::from_fn` is not unrolled, which cost
//! 2.7x the instructions on Cortex-M4F.

use super::Vf32;

#[derive(Clone, Copy)]
pub(crate) struct F32x4([f32; 4]);

impl Vf32 for F32x4 {
    const N: usize = 4;
    #[inline(always)]
    unsafe fn zero() -> Self {
        F32x4([0.0; 4])
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        F32x4([x; 4])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 4 readable floats at `p`.
        F32x4(unsafe { p.cast::<[f32; 4]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 4 writable floats at `p`.
        unsafe { p.cast::<[f32; 4]>().write_unaligned(self.0) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // Multiply then add (not `mul_add`: without hardware FMA that is a
        // slow libm call, and `no_std` has none).
        let ([a0, a1, a2, a3], [b0, b1, b2, b3], [c0, c1, c2, c3]) = (a.0, b.0, c.0);
        F32x4([a0 * b0 + c0, a1 * b1 + c1, a2 * b2 + c2, a3 * b3 + c3])
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        let ([a0, a1, a2, a3], [b0, b1, b2, b3]) = (a.0, b.0);
        F32x4([a0 + b0, a1 + b1, a2 + b2, a3 + b3])
    }
    #[inline(always)]
    unsafe fn clamp(v: Self, lo: Self, hi: Self) -> Self {
        let c = |x: f32, lo: f32, hi: f32| {
            if x < lo {
                lo
            } else if x > hi {
                hi
            } else {
                x
            }
        };
        let ([v0, v1, v2, v3], [l0, l1, l2, l3], [h0, h1, h2, h3]) = (v.0, lo.0, hi.0);
        F32x4([c(v0, l0, h0), c(v1, l1, h1), c(v2, l2, h2), c(v3, l3, h3)])
    }
}
