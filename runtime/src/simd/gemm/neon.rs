//! The GEMM kernel body on NEON.

use super::kernel::{gemm_v, Block, GemmVec};
use crate::simd::vec::neon::Neon;

impl GemmVec for Neon {}

/// # Safety
/// `b` satisfies the GEMM contract.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn gemm_neon(b: &Block<'_>) {
    // SAFETY: forwarded.
    unsafe { gemm_v::<Neon, 6, 4, 2, 4, 4>(b) }
}
