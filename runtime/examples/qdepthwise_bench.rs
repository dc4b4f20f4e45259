//! Times `quant::qdepthwise` on MobileNet v2's depthwise shapes (u8 in,
//! u8 out, as mobilenetv2-12-int8) on each path this CPU has (AVX-512,
//! AVX2, portable, forced with `isa::set_limit`), against a copy of the
//! kernel it replaced (pixel-outer, 64-channel blocks, `input_at` per tap).
//! One thread; the median of repeated calls.
//!
//! `cargo run --release -p mncc-runtime --example qdepthwise_bench`

use mncc_runtime::abi::quant::{requantize, QZeroPoints};
use mncc_runtime::abi::Quantized;
use mncc_runtime::isa::{self, Isa};
use mncc_runtime::quant::{qdepthwise, QWeights};
use mncc_runtime::ConvShape;
use std::hint::black_box;
use std::time::Instant;

/// The kernel before this change, as it was (the baseline).
#[inline(never)]
fn qdepthwise_old<X: Quantized, Y: Quantized>(s: &ConvShape, x: &[X], w: QWeights<'_>, zp: QZeroPoints, y: &mut [Y]) {
    const DW_BLOCK: usize = 64;
    let c = s.in_c;
    let mut acc = [0i32; DW_BLOCK];
    for oy in 0..s.out_h {
        for ox in 0..s.out_w {
            let yrow = &mut y[(oy * s.out_w + ox) * c..][..c];
            for c0 in (0..c).step_by(DW_BLOCK) {
                let n = DW_BLOCK.min(c - c0);
                let acc = &mut acc[..n];
                acc.copy_from_slice(&w.bias[c0..c0 + n]);
                for ky in 0..s.kernel_h {
                    for kx in 0..s.kernel_w {
                        let Some(px) = s.input_at(oy, ox, ky, kx) else {
                            continue;
                        };
                        let xs = &x[px * c + c0..][..n];
                        let ws = &w.values[(ky * s.kernel_w + kx) * c + c0..][..n];
                        let wz = &w.zero_point[c0..c0 + n];
                        for (((a, &xv), &wv), &z) in acc.iter_mut().zip(xs).zip(ws).zip(wz) {
                            *a += (xv.to_i32() - zp.x) * (wv as i32 - z);
                        }
                    }
                }
                for (k, (out, &a)) in yrow[c0..c0 + n].iter_mut().zip(acc.iter()).enumerate() {
                    *out = Y::from_i32(requantize(a, w.multiplier[c0 + k], zp.y, Y::MIN, Y::MAX));
                }
            }
        }
    }
}

/// Median milliseconds of `f` over about `budget` seconds (at least 7 runs).
fn median_ms(budget: f64, mut f: impl FnMut()) -> f64 {
    f();
    let mut t = Vec::new();
    let start = Instant::now();
    while t.len() < 7 || (start.elapsed().as_secs_f64() < budget && t.len() < 2000) {
        let t0 = Instant::now();
        f();
        t.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

fn main() {
    let budget: f64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(0.3);
    // (input h = w, channels, kernel, stride): v2's depthwise layers, and
    // one 5x5 (v3's).
    let shapes = [
        (112, 32, 3, 1),
        (112, 96, 3, 2),
        (56, 144, 3, 1),
        (56, 144, 3, 2),
        (28, 192, 3, 1),
        (28, 192, 3, 2),
        (14, 384, 3, 1),
        (14, 576, 3, 1),
        (14, 576, 3, 2),
        (7, 960, 3, 1),
        (14, 480, 5, 1),
    ];
    let paths: Vec<Isa> = [Isa::Avx512, Isa::Avx2, Isa::Portable]
        .into_iter()
        .filter(|&i| isa::available(i))
        .collect();
    print!("| shape | old ms |");
    for p in &paths {
        print!(" {} ms |", p.name());
    }
    for p in &paths {
        print!(" old / {} |", p.name());
    }
    println!();
    let mut total_old = 0.0;
    let mut totals = vec![0.0; paths.len()];
    for &(h, c, k, st) in &shapes {
        let out = (h + 2 * (k / 2) - k) / st + 1;
        let s = ConvShape {
            in_h: h,
            in_w: h,
            in_c: c,
            out_h: out,
            out_w: out,
            out_c: c,
            kernel_h: k,
            kernel_w: k,
            stride_h: st,
            stride_w: st,
            pad_top: k / 2,
            pad_left: k / 2,
        };
        let mut seed = 0x1234_5678_u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        let x: Vec<u8> = (0..h * h * c).map(|_| next() as u8).collect();
        let wv: Vec<i8> = (0..k * k * c).map(|_| next() as i8).collect();
        let wzp = vec![0i32; c];
        let bias: Vec<i32> = (0..c).map(|_| (next() % 2001) as i32 - 1000).collect();
        let mult: Vec<f32> = (0..c).map(|_| 1.0 / (500.0 + (next() % 3000) as f32)).collect();
        let w = QWeights {
            values: &wv,
            zero_point: &wzp,
            bias: &bias,
            multiplier: &mult,
        };
        let zp = QZeroPoints { x: 3, y: 121 };
        let mut want = vec![0u8; out * out * c];
        let old = median_ms(budget, || {
            qdepthwise_old(&s, black_box(&x), w, zp, &mut want);
        });
        total_old += old;
        let mut times = Vec::new();
        for &p in &paths {
            isa::set_limit(Some(p));
            let mut y = vec![0u8; out * out * c];
            let t = median_ms(budget, || qdepthwise(&s, black_box(&x), w, zp, &mut y));
            assert_eq!(y, want, "{s:?} on {p:?}");
            times.push(t);
        }
        isa::set_limit(None);
        print!("| {h}x{h}x{c} {k}x{k} s{st} | {old:.4} |");
        for (t, total) in times.iter().zip(totals.iter_mut()) {
            print!(" {t:.4} |");
            *total += t;
        }
        for t in &times {
            print!(" {:.1}x |", old / t);
        }
        println!();
    }
    print!("| total | {total_old:.4} |");
    for t in &totals {
        print!(" {t:.4} |");
    }
    for t in &totals {
        print!(" {:.1}x |", total_old / t);
    }
    println!();
}
