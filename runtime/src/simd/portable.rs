//! The portable vector: 4 lanes as a plain array (LLVM vectorizes it where
//! the target has SIMD; elsewhere, e.g. Cortex-M4F, it is four scalar ops).

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
        F32x4(core::array::from_fn(|i| a.0[i] * b.0[i] + c.0[i]))
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        F32x4(core::array::from_fn(|i| a.0[i] + b.0[i]))
    }
    #[inline(always)]
    unsafe fn clamp(v: Self, lo: Self, hi: Self) -> Self {
        F32x4(core::array::from_fn(|i| {
            let x = v.0[i];
            if x < lo.0[i] {
                lo.0[i]
            } else if x > hi.0[i] {
                hi.0[i]
            } else {
                x
            }
        }))
    }
}
