//! The GEMM kernel body on x86-64: its AVX-512 and AVX2 instantiations,
//! the assembly K loops of the 12-row AVX-512 tiles, and the pointwise
//! layers of at most 8 outputs on AVX-512.

use super::kernel::{gemm_v, Block, GemmVec};
use crate::simd::vec::x86::{Avx2, Avx512};
use crate::simd::vec::Vf32;
use core::arch::x86_64::*;

// SAFETY (the hooks): `GemmVec`'s contract, as `Vf32`'s.
impl GemmVec for Avx512 {
    const UNROLLED_EPILOGUE: bool = true;
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
        // SAFETY: forwarded (the caller runs on an AVX-512 CPU).
        unsafe { k_loop_12x2_avx512(acc, a, lda, w, wd, k, pf) };
        true
    }
    #[inline(always)]
    unsafe fn k_loop_12x1(acc: &mut [Self; 12], a: *const f32, lda: usize, w: *const f32, k: usize) -> bool {
        // SAFETY: forwarded (the caller runs on an AVX-512 CPU).
        unsafe { k_loop_12x1_avx512(acc, a, lda, w, k) };
        true
    }
}

impl GemmVec for Avx2 {
    const UNROLLED_EPILOGUE: bool = true;
}

/// The K loop of the 12-row AVX-512 kernels. `$step` is a macro of the
/// kernel's that writes one K step's instructions (one string, lines
/// separated by `\n`) with its loads at byte offsets `$ao` (the rows) and
/// `$wo` (the weights) past the pointers: rows are addressed from 4 base
/// registers and `lda` (bytes; 1x, 2x), row `r` at `[{a0} + $ao]`, `[{a0} +
/// {lda} + $ao]`, `[{a0} + {lda}*2 + $ao]`, `[{a3} + $ao]`, ... `[{a9} +
/// {lda}*2 + $ao]`, the K step's weights at `[{w} + $wo]`. The loop runs 4
/// steps per iteration (constant offsets, then one set of 5 pointer
/// increments: those adds compete with the FMAs for ports 0 and 5, and 4
/// steps per iteration was 1.07-1.09x faster on whole layers, NOTES.md),
/// then the `k % 4` steps left one at a time; either way each accumulator
/// gets its FMAs in K order. `$a`, `$lda`, `$w`, `$k` are places the loop
/// consumes (`$k >= 1`); `[$inc4]` and `[$inc1]` are the kernel's own
/// pointer increments after 4 steps and after 1; `$ops` are the kernel's
/// own operands (weight offsets, scratch and accumulator registers), each
/// followed by a comma.
macro_rules! k_loop_12_asm {
    ($a:ident, $lda:ident, $w:ident, $k:ident, $step:ident, [$($inc4:expr),*], [$($inc1:expr),*], $($ops:tt)*) => {
        core::arch::asm!(
            "test {k4}, {k4}",
            "jz 3f",
            "2:",
            $step!("0", "0"),
            $step!("4", "64"),
            $step!("8", "128"),
            $step!("12", "192"),
            "add {a0}, 16",
            "add {a3}, 16",
            "add {a6}, 16",
            "add {a9}, 16",
            "add {w}, 256",
            $($inc4,)*
            "dec {k4}",
            "jnz 2b",
            "3:",
            "test {k1}, {k1}",
            "jz 5f",
            "4:",
            $step!("0", "0"),
            "add {a0}, 4",
            "add {a3}, 4",
            "add {a6}, 4",
            "add {a9}, 4",
            "add {w}, 64",
            $($inc1,)*
            "dec {k1}",
            "jnz 4b",
            "5:",
            a0 = inout(reg) $a => _,
            a3 = inout(reg) $a.wrapping_byte_add(3 * $lda) => _,
            a6 = inout(reg) $a.wrapping_byte_add(6 * $lda) => _,
            a9 = inout(reg) $a.wrapping_byte_add(9 * $lda) => _,
            lda = in(reg) $lda,
            w = inout(reg) $w => _,
            k4 = inout(reg) $k / 4 => _,
            k1 = inout(reg) $k % 4 => _,
            $($ops)*
            options(nostack, readonly),
        )
    };
}

/// One K step of [`k_loop_12x2_avx512`] (see [`k_loop_12_asm`]).
macro_rules! step_12x2 {
    ($ao:literal, $wo:literal) => {
        concat!(
            "vmovups {b0:z}, zmmword ptr [{w} + ",
            $wo,
            "]\n",
            "vmovups {b1:z}, zmmword ptr [{w} + {wd} + ",
            $wo,
            "]\n",
            "vbroadcastss {x:z}, dword ptr [{a0} + ",
            $ao,
            "]\n",
            "vfmadd231ps {c0_0:z}, {b0:z}, {x:z}\n",
            "vfmadd231ps {c0_1:z}, {b1:z}, {x:z}\n",
            "vbroadcastss {y:z}, dword ptr [{a0} + {lda} + ",
            $ao,
            "]\n",
            "vfmadd231ps {c1_0:z}, {b0:z}, {y:z}\n",
            "vfmadd231ps {c1_1:z}, {b1:z}, {y:z}\n",
            "vbroadcastss {x:z}, dword ptr [{a0} + {lda}*2 + ",
            $ao,
            "]\n",
            "vfmadd231ps {c2_0:z}, {b0:z}, {x:z}\n",
            "vfmadd231ps {c2_1:z}, {b1:z}, {x:z}\n",
            "vbroadcastss {y:z}, dword ptr [{a3} + ",
            $ao,
            "]\n",
            "vfmadd231ps {c3_0:z}, {b0:z}, {y:z}\n",
            "vfmadd231ps {c3_1:z}, {b1:z}, {y:z}\n",
            "vbroadcastss {x:z}, dword ptr [{a3} + {lda} + ",
            $ao,
            "]\n",
            "vfmadd231ps {c4_0:z}, {b0:z}, {x:z}\n",
            "vfmadd231ps {c4_1:z}, {b1:z}, {x:z}\n",
            "vbroadcastss {y:z}, dword ptr [{a3} + {lda}*2 + ",
            $ao,
            "]\n",
            "vfmadd231ps {c5_0:z}, {b0:z}, {y:z}\n",
            "vfmadd231ps {c5_1:z}, {b1:z}, {y:z}\n",
            "vbroadcastss {x:z}, dword ptr [{a6} + ",
            $ao,
            "]\n",
            "vfmadd231ps {c6_0:z}, {b0:z}, {x:z}\n",
            "vfmadd231ps {c6_1:z}, {b1:z}, {x:z}\n",
            "vbroadcastss {y:z}, dword ptr [{a6} + {lda} + ",
            $ao,
            "]\n",
            "vfmadd231ps {c7_0:z}, {b0:z}, {y:z}\n",
            "vfmadd231ps {c7_1:z}, {b1:z}, {y:z}\n",
            "vbroadcastss {x:z}, dword ptr [{a6} + {lda}*2 + ",
            $ao,
            "]\n",
            "vfmadd231ps {c8_0:z}, {b0:z}, {x:z}\n",
            "vfmadd231ps {c8_1:z}, {b1:z}, {x:z}\n",
            "vbroadcastss {y:z}, dword ptr [{a9} + ",
            $ao,
            "]\n",
            "vfmadd231ps {c9_0:z}, {b0:z}, {y:z}\n",
            "vfmadd231ps {c9_1:z}, {b1:z}, {y:z}\n",
            "vbroadcastss {x:z}, dword ptr [{a9} + {lda} + ",
            $ao,
            "]\n",
            "vfmadd231ps {c10_0:z}, {b0:z}, {x:z}\n",
            "vfmadd231ps {c10_1:z}, {b1:z}, {x:z}\n",
            "vbroadcastss {y:z}, dword ptr [{a9} + {lda}*2 + ",
            $ao,
            "]\n",
            "vfmadd231ps {c11_0:z}, {b0:z}, {y:z}\n",
            "vfmadd231ps {c11_1:z}, {b1:z}, {y:z}",
        )
    };
}

/// [`step_12x2`], the first of every 4 (`$wo == "0"`) with a `prefetcht2`
/// of the lines at `{pf}` and `{pf} + {wd}` (the next weight strip's, see
/// [`GemmVec::k_loop_12x2`]).
macro_rules! step_12x2_pf {
    ($ao:literal, "0") => {
        concat!(
            step_12x2!($ao, "0"),
            "\nprefetcht2 byte ptr [{pf}]\nprefetcht2 byte ptr [{pf} + {wd}]",
        )
    };
    ($ao:literal, $wo:literal) => {
        step_12x2!($ao, $wo)
    };
}

/// One K step of [`k_loop_12x1_avx512`] (see [`k_loop_12_asm`]).
macro_rules! step_12x1 {
    ($ao:literal, $wo:literal) => {
        concat!(
            "vmovups {b:z}, zmmword ptr [{w} + ",
            $wo,
            "]\n",
            "vfmadd231ps {c0:z}, {b:z}, dword ptr [{a0} + ",
            $ao,
            "]{{1to16}}\n",
            "vfmadd231ps {c1:z}, {b:z}, dword ptr [{a0} + {lda} + ",
            $ao,
            "]{{1to16}}\n",
            "vfmadd231ps {c2:z}, {b:z}, dword ptr [{a0} + {lda}*2 + ",
            $ao,
            "]{{1to16}}\n",
            "vfmadd231ps {c3:z}, {b:z}, dword ptr [{a3} + ",
            $ao,
            "]{{1to16}}\n",
            "vfmadd231ps {c4:z}, {b:z}, dword ptr [{a3} + {lda} + ",
            $ao,
            "]{{1to16}}\n",
            "vfmadd231ps {c5:z}, {b:z}, dword ptr [{a3} + {lda}*2 + ",
            $ao,
            "]{{1to16}}\n",
            "vfmadd231ps {c6:z}, {b:z}, dword ptr [{a6} + ",
            $ao,
            "]{{1to16}}\n",
            "vfmadd231ps {c7:z}, {b:z}, dword ptr [{a6} + {lda} + ",
            $ao,
            "]{{1to16}}\n",
            "vfmadd231ps {c8:z}, {b:z}, dword ptr [{a6} + {lda}*2 + ",
            $ao,
            "]{{1to16}}\n",
            "vfmadd231ps {c9:z}, {b:z}, dword ptr [{a9} + ",
            $ao,
            "]{{1to16}}\n",
            "vfmadd231ps {c10:z}, {b:z}, dword ptr [{a9} + {lda} + ",
            $ao,
            "]{{1to16}}\n",
            "vfmadd231ps {c11:z}, {b:z}, dword ptr [{a9} + {lda}*2 + ",
            $ao,
            "]{{1to16}}",
        )
    };
}

/// [`GemmVec::k_loop_12x2`] for AVX-512: per K step 2 weight loads, 12
/// broadcasts and 24 FMAs, rows addressed from 4 base registers and `lda`
/// (1x, 2x), so the loop carries 5 pointer increments instead of the 13
/// adds LLVM emits to rebuild 12 row pointers it cannot keep in registers.
/// Same operations in the same order as the generic loop (bit-identical
/// results); 1-8% faster on the MobileNet pointwise shapes (NOTES.md).
///
/// # Safety
/// As [`GemmVec::k_loop_12x2`]; the CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn k_loop_12x2_avx512(
    acc: &mut [[Avx512; 2]; 12],
    a: *const f32,
    lda: usize,
    w: *const f32,
    wd: usize,
    k: usize,
    pf: *const f32,
) {
    if k == 0 {
        return;
    }
    // SAFETY: `Avx512` is a `__m512` newtype (same size and layout).
    let mut c: [[__m512; 2]; 12] = unsafe { core::mem::transmute_copy(acc) };
    let lda = lda * 4;
    // Typed scratch registers (an untyped `_` prints as a byte register).
    let (_scratch_b0, _scratch_b1, _scratch_x, _scratch_y): (__m512, __m512, __m512, __m512);
    // SAFETY: the caller guarantees (`Vf32::k_loop_12x2`) that rows
    // `a + r * lda`, `r < 12`, have `k` floats and that `w + v * wd + i
    // * 16`, `v < 2`, `i < k`, have 16; the loop reads exactly those,
    // writes only its register operands, and touches no stack or flags
    // the compiler relies on.
    unsafe {
        macro_rules! k_loop {
            ($step:ident, [$($inc4:expr),*], [$($inc1:expr),*], $($pf:tt)*) => {
                k_loop_12_asm!(
                    a,
                    lda,
                    w,
                    k,
                    $step,
                    [$($inc4),*],
                    [$($inc1),*],
                    wd = in(reg) wd * 4,
                    b0 = out(zmm_reg) _scratch_b0,
                    b1 = out(zmm_reg) _scratch_b1,
                    x = out(zmm_reg) _scratch_x,
                    y = out(zmm_reg) _scratch_y,
                    c0_0 = inout(zmm_reg) c[0][0],
                    c0_1 = inout(zmm_reg) c[0][1],
                    c1_0 = inout(zmm_reg) c[1][0],
                    c1_1 = inout(zmm_reg) c[1][1],
                    c2_0 = inout(zmm_reg) c[2][0],
                    c2_1 = inout(zmm_reg) c[2][1],
                    c3_0 = inout(zmm_reg) c[3][0],
                    c3_1 = inout(zmm_reg) c[3][1],
                    c4_0 = inout(zmm_reg) c[4][0],
                    c4_1 = inout(zmm_reg) c[4][1],
                    c5_0 = inout(zmm_reg) c[5][0],
                    c5_1 = inout(zmm_reg) c[5][1],
                    c6_0 = inout(zmm_reg) c[6][0],
                    c6_1 = inout(zmm_reg) c[6][1],
                    c7_0 = inout(zmm_reg) c[7][0],
                    c7_1 = inout(zmm_reg) c[7][1],
                    c8_0 = inout(zmm_reg) c[8][0],
                    c8_1 = inout(zmm_reg) c[8][1],
                    c9_0 = inout(zmm_reg) c[9][0],
                    c9_1 = inout(zmm_reg) c[9][1],
                    c10_0 = inout(zmm_reg) c[10][0],
                    c10_1 = inout(zmm_reg) c[10][1],
                    c11_0 = inout(zmm_reg) c[11][0],
                    c11_1 = inout(zmm_reg) c[11][1],
                    $($pf)*
                )
            };
        }
        if pf.is_null() {
            k_loop!(step_12x2, [], [],);
        } else {
            k_loop!(step_12x2_pf, ["add {pf}, 64"], ["add {pf}, 16"], pf = inout(reg) pf => _,);
        }
    }
    // SAFETY: as above.
    *acc = unsafe { core::mem::transmute_copy(&c) };
}

/// [`GemmVec::k_loop_12x1`] for AVX-512: [`k_loop_12x2_avx512`] with one
/// weight vector (the tiles of at most 16 columns: narrow layers and the
/// last tile of the others). Per K step 1 weight load and 12 FMAs with
/// the row's value broadcast from memory; LLVM's loop rebuilt the row
/// addresses with a chain of dependent adds (1.2-1.5x slower, NOTES.md).
///
/// # Safety
/// As [`GemmVec::k_loop_12x1`]; the CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn k_loop_12x1_avx512(acc: &mut [Avx512; 12], a: *const f32, lda: usize, w: *const f32, k: usize) {
    if k == 0 {
        return;
    }
    // SAFETY: `Avx512` is a `__m512` newtype (same size and layout).
    let mut c: [__m512; 12] = unsafe { core::mem::transmute_copy(acc) };
    let lda = lda * 4;
    let _scratch_b: __m512;
    // SAFETY: the caller guarantees (`Vf32::k_loop_12x1`) that rows
    // `a + r * lda`, `r < 12`, have `k` floats and that `w + i * 16`,
    // `i < k`, have 16; the loop reads exactly those, writes only its
    // register operands, and touches no stack or flags the compiler
    // relies on.
    unsafe {
        k_loop_12_asm!(
            a,
            lda,
            w,
            k,
            step_12x1,
            [],
            [],
            b = out(zmm_reg) _scratch_b,
            c0 = inout(zmm_reg) c[0],
            c1 = inout(zmm_reg) c[1],
            c2 = inout(zmm_reg) c[2],
            c3 = inout(zmm_reg) c[3],
            c4 = inout(zmm_reg) c[4],
            c5 = inout(zmm_reg) c[5],
            c6 = inout(zmm_reg) c[6],
            c7 = inout(zmm_reg) c[7],
            c8 = inout(zmm_reg) c[8],
            c9 = inout(zmm_reg) c[9],
            c10 = inout(zmm_reg) c[10],
            c11 = inout(zmm_reg) c[11],
        );
    }
    // SAFETY: as above.
    *acc = unsafe { core::mem::transmute_copy(&c) };
}

/// # Safety
/// The CPU has AVX-512F; `b` satisfies the GEMM contract.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn gemm_avx512(b: &Block<'_>) {
    // SAFETY: forwarded.
    unsafe {
        if !gemm_n8_avx512(b) {
            gemm_v::<Avx512, 12, 8, 4, 2, 1>(b)
        }
    }
}

/// Input channels (even, at most this many) of [`gemm_n8_avx512`]: its
/// weight pairs live on the stack (`N8_MAX_K * 16` floats).
const N8_MAX_K: usize = 128;

/// Pointwise layers with at most 8 output channels (v2 0.35's project
/// layers to 8): a tile of 16 lanes would leave 8 empty and feed each
/// broadcast input to one FMA. Here each vector holds an output's two
/// partial sums, over the even and the odd input channels (lanes `2o`,
/// `2o + 1`): one 8-byte broadcast brings a row's `x[k], x[k + 1]`, one FMA
/// multiplies them by `w[k][o], w[k + 1][o]`, and at the end the pairs are
/// added (`even + odd`) and packed into 8 lanes. Half the loads and FMAs of
/// the half-empty tiles. Each output is `(sum over even k + sum over odd
/// k) + bias (+ residual)`, clamped, each sum by FMAs in K order from zero:
/// the same for every row, wherever it falls in a call (the parallel split
/// stays bit-identical); it differs from the tiles' order by rounding.
/// With exactly 8 outputs, rows go in pairs through one vector (one
/// epilogue and store per two rows: 4096x16->8 0.0120 -> 0.0094 ms,
/// 1024x48->8 0.0067 -> 0.0061), each sum as above.
/// `false` (nothing done) where it does not apply: more than 8 outputs, K
/// odd or above [`N8_MAX_K`], K blocks (whatever the row count, so a row's
/// result does not depend on the size of the call it is in).
///
/// # Safety
/// As [`gemm_avx512`].
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn gemm_n8_avx512(b: &Block<'_>) -> bool {
    let g = &b.g;
    if g.n > 8 || g.k < 2 || !g.k.is_multiple_of(2) || g.k > N8_MAX_K || !b.first || !b.last || b.ldb != g.k {
        return false;
    }
    let pairs = g.k / 2;
    // Lanes (2o, 2o + 1) = (w[2j][o], w[2j + 1][o]): from panel 0's rows
    // 2j and 2j + 1 (16 floats each, columns past `n` zero).
    let mut w2 = [_mm512_setzero_ps(); N8_MAX_K / 2];
    // SAFETY: panel 0 has `k` rows of 16 floats (`Gemm`'s contract).
    unsafe {
        let idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        for (j, w) in w2.iter_mut().enumerate().take(pairs) {
            let lo = _mm512_loadu_ps(g.b.add(2 * j * super::PANEL));
            let hi = _mm512_loadu_ps(g.b.add((2 * j + 1) * super::PANEL));
            *w = _mm512_permutex2var_ps(lo, idx, hi);
        }
        let mut i0 = 0;
        while i0 + 12 <= g.m {
            n8_rows::<12>(b, i0, &w2[..pairs]);
            i0 += 12;
        }
        while i0 < g.m {
            n8_rows::<1>(b, i0, &w2[..pairs]);
            i0 += 1;
        }
    }
    true
}

/// Rows `i0..i0 + R` of [`gemm_n8_avx512`].
///
/// # Safety
/// As [`gemm_n8_avx512`] (which checked the shape); `i0 + R <= m`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn n8_rows<const R: usize>(b: &Block<'_>, i0: usize, w2: &[__m512]) {
    use super::kernel::activate_rows;
    use crate::simd::epilogue::{store_lanes, VecEpilogue};
    let g = &b.g;
    let n = g.n;
    // SAFETY: rows `i0..i0 + R` of `a` have `k = 2 * w2.len()` floats (8
    // bytes per pair) and of `out` `n` floats; the bias and residual cover
    // them (`Gemm`'s contract).
    unsafe {
        let a = g.a.add(i0 * g.lda);
        let mut acc = [_mm512_setzero_ps(); R];
        for (j, &w) in w2.iter().enumerate() {
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_castpd_ps(_mm512_set1_pd(
                    (a.add(r * g.lda + 2 * j) as *const f64).read_unaligned(),
                ));
                *acc = _mm512_fmadd_ps(x, w, *acc);
            }
        }
        let mut e = VecEpilogue::<Avx512>::new(g.ep);
        if n == 8 && R.is_multiple_of(2) {
            // Rows in pairs (adjacent in `out`): one vector holds both rows'
            // 8 sums, even + odd as below, and takes one epilogue and one
            // store (the bias in both halves).
            let lo = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let hi = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            let bias = e.bias.take().map(|b| {
                let b8 = _mm256_loadu_ps(b.as_ptr());
                Avx512(_mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(b8))))
            });
            for r in (0..R).step_by(2) {
                let (v0, v1) = (acc[r], acc[r + 1]);
                let even = _mm512_permutex2var_ps(v0, lo, v1);
                let odd = _mm512_permutex2var_ps(v0, hi, v1);
                let x = Avx512(_mm512_add_ps(even, odd));
                let oi = (i0 + r) * n;
                e.apply_biased(x, bias, 0, oi, 16).store(g.out.add(oi));
            }
            activate_rows(g, i0, R, 0, n);
            return;
        }
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
        let bias = e.take_tile_bias::<1>(0, n);
        for (r, &v) in acc.iter().enumerate() {
            // Lane 2o: even + odd (the swapped neighbour).
            let sum = _mm512_add_ps(v, _mm512_shuffle_ps::<0b10_11_00_01>(v, v));
            let x = Avx512(_mm512_permutexvar_ps(even, sum));
            let oi = (i0 + r) * n;
            store_lanes(e.apply_biased(x, bias.map(|bv| bv[0]), 0, oi, n), g.out.add(oi), n);
        }
        activate_rows(g, i0, R, 0, n);
    }
}

/// # Safety
/// The CPU has AVX2 and FMA; `b` satisfies the GEMM contract.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn gemm_avx2(b: &Block<'_>) {
    // SAFETY: forwarded.
    unsafe { gemm_v::<Avx2, 6, 4, 2, 2, 2>(b) }
}
