//! Depthwise convolution, vectorized over channels: the entry point and the
//! dispatch to an instruction set's instantiation of the kernel body
//! ([`kernel`]).

pub(crate) mod kernel;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::abi::Depthwise;
use crate::isa::{self, Isa};
use crate::simd::vec::portable::F32x4;
use crate::simd::Kernel;
use crate::Epilogue;
use kernel::{depthwise_v, Dw};

/// The depthwise kernels, one per instruction set the body is instantiated
/// for: `depthwise_<pixels>x<lanes>__<isa>`. The tests and `bench/kernels`
/// iterate this table.
pub const KERNELS: &[Kernel] = &[
    Kernel::new("depthwise_8x16__avx512", Isa::Avx512),
    Kernel::new("depthwise_4x8__avx2", Isa::Avx2),
    Kernel::new("depthwise_4x4__neon", Isa::Neon),
    Kernel::new("depthwise_4x4__portable", Isa::Portable),
];

/// Depthwise convolution: the contract of [`reference::depthwise`](crate::reference::depthwise)
/// (`weights` packed `[kernel_h][kernel_w][c]`).
///
/// # Panics
/// As [`reference::depthwise`](crate::reference::depthwise).
#[inline]
pub fn depthwise(dw: &Depthwise, input: &[f32], weights: &[f32], ep: &Epilogue<'_>, out: &mut [f32]) {
    let d = Dw {
        cx: crate::reference::DwCx::new("simd::depthwise", dw, input, weights, ep, out.len()),
        rows: dw.tiles.rows,
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
