//! The depthwise kernel body's AVX-512 and AVX2 instantiations.

use super::kernel::{depthwise_v, Dw};
use crate::simd::vec::portable::F32x4;
use crate::simd::vec::x86::{Avx2, Avx512};

/// # Safety
/// The CPU has AVX-512F; `d` satisfies the depthwise contract.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn depthwise_avx512(d: &Dw<'_>) {
    // SAFETY: forwarded.
    unsafe { depthwise_v::<Avx512, Avx2, 8, 4, true>(d) }
}

/// # Safety
/// The CPU has AVX2 and FMA; `d` satisfies the depthwise contract.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn depthwise_avx2(d: &Dw<'_>) {
    // SAFETY: forwarded.
    unsafe { depthwise_v::<Avx2, F32x4, 4, 2, true>(d) }
}
