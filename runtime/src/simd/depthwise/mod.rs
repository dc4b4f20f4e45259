//! Depthwise convolution, vectorized over channels: the entry point and the
//! dispatch to an instruction set's instantiation of the kernel body
//! ([`kernel`]).

pub(crate) mod kernel;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::abi::{ConvShape, DepthwiseTiles};
use crate::isa;
use crate::kernels;
use crate::simd::vec::portable::F32x4;
use crate::Epilogue;
use kernel::{depthwise_v, Dw};

/// Depthwise convolution: the contract of [`kernels::depthwise`](crate::kernels::depthwise)
/// (`weights` packed `[kernel_h][kernel_w][c]`).
///
/// # Panics
/// As [`kernels::depthwise`](crate::kernels::depthwise).
#[inline]
pub fn depthwise(
    s: &ConvShape,
    tiles: &DepthwiseTiles,
    input: &[f32],
    weights: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    let d = Dw {
        cx: kernels::DwCx::new("simd::depthwise", s, tiles, input, weights, ep, out.len()),
        rows: tiles.rows,
        out: out.as_mut_ptr(),
    };
    let isa = isa::active_counted();
    // SAFETY: lengths checked above (`Dw`'s contract); `isa` is supported.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            isa::Isa::Avx512 => x86::depthwise_avx512(&d),
            #[cfg(target_arch = "x86_64")]
            isa::Isa::Avx2 => x86::depthwise_avx2(&d),
            #[cfg(target_arch = "aarch64")]
            isa::Isa::Neon => neon::depthwise_neon(&d),
            _ => depthwise_v::<F32x4, F32x4, 4, 4, false>(&d),
        }
    }
}
