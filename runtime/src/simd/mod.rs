//! Vectorized kernels: what generated code calls.
//!
//! Each kernel here has the same contract as its portable reference in
//! [`crate::reference`] (shapes, epilogue, NaN handling) except the weight
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

mod conv2d;
mod depthwise;
mod epilogue;
mod fused;
mod gemm;
pub(crate) mod qdepthwise;
#[cfg(target_arch = "x86_64")]
pub(crate) mod qgemm;
pub(crate) mod vec;

pub use crate::abi::pack::PANEL;

pub use conv2d::conv2d;
pub(crate) use conv2d::{conv2d_rows, conv2d_rows_applies};
pub use depthwise::depthwise;
pub(crate) use fused::bands as pointwise_depthwise_bands;
pub(crate) use fused::{check as check_pwdw, check_amx};
pub use fused::{pointwise_depthwise, BandScratch, Stage};
pub use gemm::pointwise;

/// The kernels of each family, one per instruction set.
pub use conv2d::KERNELS as CONV2D;
pub use depthwise::KERNELS as DEPTHWISE;
pub use gemm::KERNELS as POINTWISE;

/// One instantiation of a kernel family: its name
/// (`<op>_<register tile>__<isa>`, the grammar of `mncc inspect`'s kernel
/// names plus the instruction set) and the instruction set it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// `pointwise_12x32__avx512`, ...
    pub name: &'static str,
    /// Where it runs.
    pub isa: crate::isa::Isa,
}

impl Kernel {
    const fn new(name: &'static str, isa: crate::isa::Isa) -> Kernel {
        Kernel { name, isa }
    }
}
