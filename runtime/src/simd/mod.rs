//! Vectorized kernels: what generated code calls.
//!
//! Each kernel here has the same contract as its portable reference in
//! [`crate::kernels`] (shapes, epilogue, NaN handling) except the weight
//! packing of [`pointwise`] and [`conv2d`], which is fixed to panels of
//! [`PANEL`] output channels, and the float rounding order (FMA, and another
//! summation order): results agree with the reference to float rounding, not
//! bit for bit.
//!
//! Every kernel runs on the instruction set [`crate::isa::active`] names:
//! AVX-512F or AVX2+FMA on x86-64 (chosen at run time by CPUID), NEON on
//! aarch64, and the portable path (4-lane arrays) anywhere. The body of each
//! kernel is written once, generic over a vector type (`Vf32`), and
//! instantiated per instruction set inside a `#[target_feature]` function so
//! that the intrinsics inline.
//!
//! # Register tiles
//!
//! | ISA | pointwise `MR x NR` | depthwise pixels x lanes | first conv (direct) pixels x channels |
//! |---|---|---|---|
//! | AVX-512 | 12 x 32 (2 panels) | 8 x 16 | 8 x 32, 16 x 16, 8 x 8 |
//! | AVX2 | 6 x 16 | 4 x 8 | 4 x 16, 8 x 8 |
//! | NEON | 6 x 16 | 4 x 4 | 4 x 16, 12 x 4 |
//! | portable | 2 x 16 | 4 x 4 | (im2col through the 2 x 16 GEMM) |
//!
//! The cache tiles and loop order (`kc`, `order`, `rows`) come from the
//! compiler's schedule, as for the reference kernels.

#[cfg(target_arch = "x86_64")]
mod amx;

mod conv2d;
mod depthwise;
mod fused;
mod gemm;
#[cfg(target_arch = "aarch64")]
mod neon;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use crate::abi::pack::PANEL;

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
    /// Whether the pointwise kernel's full tiles store through an unrolled
    /// epilogue (constant trip counts, the epilogue's fields in locals):
    /// 1.05-1.35x faster on AVX-512 and AVX2 for layers with few input
    /// channels, but it made the portable instantiation's K loop 1.2-1.4x
    /// slower (LLVM's register allocation), so off by default.
    const UNROLLED_EPILOGUE: bool = false;
    /// The K loop of a full 12-row, 2-vector register tile, where the ISA
    /// has it written out in assembly: for `k` steps, `acc[r][v] +=
    /// a[r * lda + k] * w[v * wd + k * PANEL]` (`lda`, `wd` in floats).
    /// Returns `false` (and does nothing) where it has not. Unless `pf`
    /// is null, every fourth step `k` (and each of the last `k % 4`)
    /// also prefetches (towards L2; never faults, so `pf` may point
    /// anywhere) the lines at `pf + k / 4 * PANEL` and at `pf + wd + k /
    /// 4 * PANEL`: `k / 4` rows of both panels of the next weight strip,
    /// whose first touch would otherwise miss to memory (each row tile
    /// prefetches its share of them).
    #[inline(always)]
    unsafe fn k_loop_12x2(
        acc: &mut [[Self; 2]; 12],
        a: *const f32,
        lda: usize,
        w: *const f32,
        wd: usize,
        k: usize,
        pf: *const f32,
    ) -> bool {
        let _ = (acc, a, lda, w, wd, k, pf);
        false
    }
    /// [`Vf32::k_loop_12x2`] for a 12-row, 1-vector tile (one panel,
    /// `acc[r] += a[r * lda + k] * w[k * PANEL]`).
    #[inline(always)]
    unsafe fn k_loop_12x1(acc: &mut [Self; 12], a: *const f32, lda: usize, w: *const f32, k: usize) -> bool {
        let _ = (acc, a, lda, w, k);
        false
    }
}

/// Runs `$body` with `$i` = 0, 1, ... up to (not including) `$n` <= 20,
/// written out (the `if`s on constants fold away): for loops LLVM would
/// keep rolled, which indexes register arrays through the stack.
macro_rules! unroll {
    ($i:ident < $n:expr; $body:block) => {
        $crate::simd::unroll!(@ $i, $n, $body; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19)
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

pub use conv2d::conv2d;
pub(crate) use conv2d::{conv2d_rows, conv2d_rows_applies};
pub use depthwise::depthwise;
pub(crate) use fused::bands as pointwise_depthwise_bands;
pub(crate) use fused::{check as check_pwdw, check_amx};
pub use fused::{pointwise_depthwise, pointwise_depthwise_amx};
pub use gemm::{pointwise, pointwise_amx};
