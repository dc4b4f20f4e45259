//! Vectors of `f32` lanes: the one trait every generic kernel body is
//! written over ([`Vf32`]), and its implementations per instruction set.
//! Knows nothing of the kernels.

#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
pub(crate) mod portable;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

/// A vector of `f32` lanes. Every method is `unsafe`: the caller guarantees
/// the CPU supports the instruction set (checked once, at dispatch) and, for
/// loads and stores, that `N` elements are valid at the pointer.
pub(crate) trait Vf32: Copy {
    /// Lanes.
    const N: usize;
    /// All lanes zero.
    unsafe fn zero() -> Self;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// Loads `N` lanes (unaligned).
    unsafe fn load(p: *const f32) -> Self;
    /// Stores `N` lanes (unaligned).
    unsafe fn store(self, p: *mut f32);
    /// `a * b + c` (fused where the ISA has FMA).
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// `a + b`.
    unsafe fn add(a: Self, b: Self) -> Self;
    /// `clamp(v, lo, hi)` with the reference's semantics up to the sign of
    /// zero: `v < lo` gives `lo`, `v > hi` gives `hi`, NaN stays NaN.
    unsafe fn clamp(v: Self, lo: Self, hi: Self) -> Self;
    /// Loads the first `n <= N` lanes (the rest zero); reads only those `n`
    /// floats (AVX-512: a masked load).
    #[inline(always)]
    unsafe fn load_n(p: *const f32, n: usize) -> Self {
        let mut t = [0.0f32; 16];
        // SAFETY: the caller guarantees `n` floats at `p`; `n <= N <= 16`.
        unsafe {
            core::ptr::copy_nonoverlapping(p, t.as_mut_ptr(), n);
            Self::load(t.as_ptr())
        }
    }
    /// Stores the first `n <= N` lanes; writes only those `n` floats.
    #[inline(always)]
    unsafe fn store_n(self, p: *mut f32, n: usize) {
        let mut t = [0.0f32; 16];
        // SAFETY: the caller guarantees room for `n` floats at `p`; `n <= N <= 16`.
        unsafe {
            self.store(t.as_mut_ptr());
            core::ptr::copy_nonoverlapping(t.as_ptr(), p, n);
        }
    }
}

/// Runs `$body` with `$i` = 0, 1, ... up to (not including) `$n` <= 20,
/// written out (the `if`s on constants fold away): for loops LLVM would
/// keep rolled, which indexes register arrays through the stack.
macro_rules! unroll {
    ($i:ident < $n:expr; $body:block) => {
        $crate::simd::vec::unroll!(@ $i, $n, $body; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19)
    };
    (@ $i:ident, $n:expr, $body:block; $($lit:literal)*) => {
        const { assert!($n <= 20) };
        $(
            if $lit < $n {
                let $i: usize = $lit;
                $body
            }
        )*
    };
}
pub(crate) use unroll;
