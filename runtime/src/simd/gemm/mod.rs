//! Pointwise convolution (and dense layers) as a GEMM on weights packed in
//! panels of [`PANEL`] output channels: the entry points, the dispatch to
//! an instruction set's instantiation of the kernel body ([`kernel`]), and
//! the AMX tiles ([`amx`], x86-64).
//!
//! How the body gets its speed (each measured; NOTES.md has the figures):
//!
//! * Register tiles of `MR` rows by `NR` columns (12x32 AVX-512, 6x16 AVX2
//!   and NEON, 2x16 portable), with smaller tiles for the last rows, so few
//!   rows are computed for nothing. The 12-row AVX-512 tiles of 32 or 16
//!   columns run their K loop in inline assembly (`x86.rs`,
//!   `k_loop_12x2_avx512` / `k_loop_12x1_avx512`, 4 K steps per
//!   iteration): the same FMAs in the same order as the generic loop, so
//!   bit-identical to it.
//! * Channels-outer layers whose weights are at least 256 KiB prefetch
//!   each 12x32 tile's share of the next weight strip, one line per panel
//!   every 4 K steps (in a whole model those weights come from memory).
//! * Dense layers (one row): one-row tiles of 8 vectors, 8 independent FMA
//!   chains.
//! * Full tiles on AVX-512 and AVX2 store through an unrolled epilogue
//!   (`GemmVec::UNROLLED_EPILOGUE`, rows written out by `simd::unroll!` with
//!   constant indices), so the accumulators stay in registers from the K
//!   loop to the stores; they load the bias once per tile, not per row. A
//!   last vector of half the lanes (8 of 16 channels) is a full tile whose
//!   last store is masked by a constant; other narrow last tiles use masked
//!   loads and stores.
//! * Exactly 8 input channels on 16-lane vectors: one lean loop
//!   (`gemm_small_k`), 12 rows by one output vector at a time (8 rows by
//!   all three for 33 to 48 outputs), the same FMAs in the same order, so
//!   bit-identical.
//! * AVX-512, at most 8 output channels and an even K up to 128 in one K
//!   block (`x86::gemm_n8_avx512`): each output's even-K and odd-K partial
//!   sums in a lane pair, added at the end (exactly 8 outputs: two rows per
//!   vector, one epilogue and store per pair): half the loads and FMAs, a
//!   different rounding, the same for every row wherever it falls in a
//!   call.

#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
pub(crate) mod kernel;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::abi::amx as amx_abi;
use crate::abi::pack::{pointwise_packed_len, PANEL};
use crate::abi::{Pointwise, PointwiseShape, PwOrder};
use crate::checks::{check_epilogue, check_len};
use crate::isa::{self, Isa};
use crate::simd::vec::portable::F32x4;
use crate::simd::Kernel;
use crate::Epilogue;
use kernel::{gemm_v, GemmVec};

/// A panel of zero weights: what a layer without input channels points at.
static NO_WEIGHTS: [f32; PANEL] = [0.0; PANEL];

pub(crate) use kernel::{Block, Gemm};

impl GemmVec for F32x4 {}

/// The pointwise kernels, one per instruction set the body is instantiated
/// for: `pointwise_<MR>x<NR>__<isa>` (the register tiles of
/// [`RegisterTiles`](crate::abi::RegisterTiles)), and the AMX tiles. The
/// tests and `bench/kernels` iterate this table.
pub const KERNELS: &[Kernel] = &[
    Kernel::new("pointwise_12x32__avx512", Isa::Avx512),
    Kernel::new("pointwise_6x16__avx2", Isa::Avx2),
    Kernel::new("pointwise_6x16__neon", Isa::Neon),
    Kernel::new("pointwise_2x16__portable", Isa::Portable),
    Kernel::new("pointwise_amx_32x32__amx", Isa::Amx),
];

/// Pointwise (1x1, stride 1) convolution / fully connected layer `p`: the
/// contract of [`reference::pointwise`](crate::reference::pointwise) with
/// `NR = PANEL` packing (`packed` is `ceil(out_c / 16)` panels of
/// `[in_c][16]`).
///
/// With `amx`, a scratch of at least [`amx_abi::scratch_len`] floats (any
/// contents): on the AMX tile unit where the CPU has it ([`Isa::Amx`]), at
/// f32 accuracy (each product summed from six bf16 partial products, see
/// `gemm/amx.rs`; the weights split into bf16 planes at run time), else
/// exactly as without. The AMX result differs from the vector kernels' by
/// float rounding; on the tiles, a pixel gets the same bits wherever it
/// falls in a call.
///
/// # Panics
/// If a slice length does not match `p`, `tiles.kc` is 0, or `amx` is too
/// short.
#[inline]
pub fn pointwise(
    p: &Pointwise,
    input: &[f32],
    packed: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
    amx: Option<&mut [f32]>,
) {
    pointwise_split(p, input, packed, ep, out, amx, false);
}

/// [`pointwise`]; `b_split`: pixels outer, the AMX scratch already holds
/// these weights split (an earlier call on the same weights and scratch,
/// pixels outer: the bands of one layer). Returns whether it ran on the
/// tiles (and so left the weights split in the scratch).
#[inline]
pub(crate) fn pointwise_split(
    p: &Pointwise,
    input: &[f32],
    packed: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
    amx: Option<&mut [f32]>,
    b_split: bool,
) -> bool {
    const K: &str = "simd::pointwise";
    let (s, tiles) = (&p.shape, &p.tiles);
    let g = Gemm {
        m: s.pixels,
        k: s.in_c,
        n: s.out_c,
        a: input.as_ptr(),
        lda: s.in_c,
        // No input channels: no weights to read, but the micro-kernels still
        // offset the panel pointer by up to a panel's width, which on an
        // empty slice's dangling pointer is undefined behaviour (found by
        // Miri): point them at a panel of zeros instead.
        b: if packed.is_empty() {
            NO_WEIGHTS.as_ptr()
        } else {
            packed.as_ptr()
        },
        ep,
        out: out.as_mut_ptr(),
    };
    if let Some(scratch) = amx {
        let need = amx_abi::scratch_len(s.pixels, s.in_c, s.out_c, tiles.order);
        assert!(
            scratch.len() >= need,
            "{K}: the AMX scratch has {} elements, {need} needed",
            scratch.len()
        );
        #[cfg(target_arch = "x86_64")]
        if s.pixels > 0 && s.out_c > 0 && isa::active() == Isa::Amx {
            check_pointwise(K, s, input, packed, ep, out);
            isa::count(Isa::Amx);
            let g = amx::AmxGemm {
                g,
                scratch: scratch.as_mut_ptr(),
                b_split: b_split && tiles.order == PwOrder::PixelsOuter,
            };
            // SAFETY: the lengths were checked above (`AmxGemm`'s contract)
            // and the CPU runs AMX (`Isa::Amx` is only detected where it
            // does).
            unsafe { amx::gemm_amx(&g, tiles.order) };
            return true;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = b_split;
    assert!(tiles.kc >= 1, "{K}: tiles.kc must be at least 1");
    check_pointwise(K, s, input, packed, ep, out);
    let isa = isa::active_counted();
    // SAFETY: the lengths were checked above (`Gemm`'s contract) and `isa`
    // is supported by this CPU (`isa::active`).
    unsafe { gemm(isa, &g, tiles.kc, tiles.order) }
    false
}

/// The slice lengths and the epilogue of a pointwise call, for kernel `k`.
#[inline(always)]
#[track_caller]
fn check_pointwise(k: &str, s: &PointwiseShape, input: &[f32], packed: &[f32], ep: &Epilogue<'_>, out: &[f32]) {
    check_len(k, "input", input.len(), s.pixels * s.in_c);
    check_len(k, "packed", packed.len(), pointwise_packed_len(s.in_c, s.out_c));
    check_len(k, "out", out.len(), s.pixels * s.out_c);
    check_epilogue(k, ep, s.out_c, out.len());
}

/// [`gemm_dispatch`] over all of `k` in blocks of `kc`.
///
/// # Safety
/// `g` satisfies [`Gemm`]'s contract with `ldb = g.k`; `isa` is supported.
unsafe fn gemm(isa: Isa, g: &Gemm<'_>, kc: usize, order: PwOrder) {
    let mut k0 = 0;
    loop {
        let kb = kc.min(g.k - k0);
        let blk = Gemm {
            k: kb,
            // SAFETY: k0 <= k, within each row of `a` and each panel.
            a: unsafe { g.a.add(k0) },
            // SAFETY: as above.
            b: unsafe { g.b.add(k0 * PANEL) },
            ..*g
        };
        // SAFETY: the block is the sub-product over k0..k0 + kb.
        unsafe { gemm_dispatch(isa, &blk, g.k, order, k0 == 0, k0 + kb == g.k) };
        k0 += kb;
        if k0 >= g.k {
            break;
        }
    }
}

/// # Safety
/// As [`gemm`]; `isa` is supported by this CPU.
pub(crate) unsafe fn gemm_dispatch(isa: Isa, g: &Gemm<'_>, ldb: usize, order: PwOrder, first: bool, last: bool) {
    let b = Block {
        g: *g,
        ldb,
        order,
        first,
        last,
    };
    // SAFETY: forwarded contract; the target-feature functions are only
    // called when `isa` says the CPU has the feature.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::gemm_avx512(&b),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::gemm_avx2(&b),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::gemm_neon(&b),
            _ => gemm_v::<F32x4, 2, 2, 2, 4, 4>(&b),
        }
    }
}
