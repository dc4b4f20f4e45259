//! Depthwise convolution, vectorized over channels: the entry point and the
//! dispatch to an instruction set's instantiation of the kernel body
//! ([`kernel`]).
//!
//! The body works one output row at a time, channels innermost, so the
//! input rows and the output row are read and written in memory order:
//!
//! * interior pixels in blocks of 8, 4, 1 (AVX-512; 4 and 1 elsewhere) with
//!   constant stride and no bounds tests, each input column loaded once per
//!   block;
//! * every FMA chain starts from the bias (`dw_init`: one add fewer per
//!   output vector; the sum differs from the reference's by rounding);
//! * window rows in the padding dropped once per output row;
//! * edge pixels through a fully unrolled window with a test per tap,
//!   except 3x3 layers with padding <= 1 on x86 and NEON, whose rows are
//!   blocks only: the edge pixels inside blocks whose padding columns (the
//!   `L`, `R` const parameters) are skipped at compile time, the last
//!   pixels as one more overlapping block. That choice is made once per
//!   layer, in a separate copy of the row loop (in one body the other path
//!   ran slower);
//! * 3x3 and 5x5 specialized, only 3x3 on the portable path (Cortex-M code
//!   stays small); leftover channels through the reference kernel.

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
