//! The depthwise kernel body's NEON instantiation.

use super::kernel::{depthwise_v, Dw};
use crate::simd::vec::neon::Neon;

/// # Safety
/// `d` satisfies the depthwise contract.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn depthwise_neon(d: &Dw<'_>) {
    // SAFETY: forwarded.
    unsafe { depthwise_v::<Neon, Neon, 4, 4, true>(d) }
}
