//! The direct route's NEON instantiation.

use super::direct::{direct_v, DirectRow};
use crate::simd::vec::neon::Neon;

/// # Safety
/// `d` satisfies the direct conv2d contract.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn conv2d_direct_neon(d: &DirectRow<'_>) {
    // SAFETY: forwarded.
    unsafe { direct_v::<Neon, Neon, 4, 4, 12, 12>(d) }
}
