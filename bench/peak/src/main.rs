//! Single-core f32 FMA peak: `CHAINS` independent accumulators of 16 floats,
//! each updated `x = x * b + c` (one FMA) per iteration. Enough independent
//! chains hide the FMA latency (4 cycles on recent x86; with two FMA ports at
//! least 8 vectors must be in flight), so the loop runs at the FMA ports'
//! throughput. Plain Rust, no intrinsics and no `unsafe`: `f32::mul_add` is
//! `llvm.fma.f32`, which LLVM packs into `vfmadd213ps` on zmm registers when
//! built with `-C target-cpu=native -C target-feature=-prefer-256-bit`
//! (bench/run.py's default). Without `-prefer-256-bit` LLVM uses ymm on Intel
//! CPUs that prefer 256-bit vectors (Skylake-X to Sapphire Rapids): half the
//! peak. Check with
//! `cargo rustc --release -- --emit asm` and grep for `vfmadd213ps %zmm`.
//!
//! 4 chains is latency-bound (it shows the FMA latency); 32 chains of zmm
//! need 34 registers with `b` and `c`, so it spills. The peak is the best
//! configuration.
//!
//! Prints one line per configuration, then `peak <GFLOP/s>` (the best):
//! 2 flops per FMA lane. Usage: `mncc-bench-peak [seconds per config, default 0.4]`.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Instant;

/// One FMA per lane: `x = x * b + c` (the lane loop is unrolled and packed into one vector).
#[inline(always)]
fn fma<const LANES: usize>(x: &mut [f32; LANES], b: f32, c: f32) {
    for v in x.iter_mut() {
        *v = v.mul_add(b, c);
    }
}

/// `fma_loop!(name, CHAINS)`: a function running `iters` iterations over `CHAINS` named
/// accumulators. Named locals (not an array indexed in a loop) so LLVM keeps each in a
/// register: an array over the chains ends up in memory and gets gathers.
macro_rules! fma_loop {
    ($name:ident, $($a:ident)+) => {
        #[inline(never)]
        fn $name<const LANES: usize>(acc: &mut [[f32; LANES]], b: f32, c: f32, iters: u64) {
            let mut it = acc.iter();
            $(let mut $a = *it.next().unwrap();)+
            for _ in 0..iters {
                $(fma(&mut $a, b, c);)+
            }
            let mut it = acc.iter_mut();
            $(*it.next().unwrap() = $a;)+
        }
    };
}

fma_loop!(chains4, a0 a1 a2 a3);
fma_loop!(chains8, a0 a1 a2 a3 a4 a5 a6 a7);
fma_loop!(chains12, a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11);
fma_loop!(chains16, a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11 a12 a13 a14 a15);
fma_loop!(chains24, a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11 a12 a13 a14 a15 b0 b1 b2 b3 b4 b5 b6 b7);
fma_loop!(chains32, a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11 a12 a13 a14 a15
                    b0 b1 b2 b3 b4 b5 b6 b7 b8 b9 b10 b11 b12 b13 b14 b15);

const REPS: usize = 200;

type Kernel<const LANES: usize> = fn(&mut [[f32; LANES]], f32, f32, u64);

/// Best GFLOP/s of `REPS` timed repetitions of about `seconds / REPS` each: short
/// repetitions and the best of them, so a shared, busy machine still shows its peak
/// (a repetition that ran without being preempted).
fn measure<const LANES: usize>(kernel: Kernel<LANES>, chains: usize, seconds: f64) -> f64 {
    let mut acc = vec![[0.0f32; LANES]; chains];
    let (b, c) = (black_box(0.999_9f32), black_box(1e-4f32)); // fixed point 1: no overflow, no denormals
    let mut iters = 1_000u64;
    loop {
        let t = Instant::now();
        kernel(&mut acc, b, c, iters);
        let dt = t.elapsed().as_secs_f64();
        if dt > 0.001 {
            iters = ((iters as f64) * (seconds / REPS as f64) / dt).max(1.0) as u64;
            break;
        }
        iters *= 4;
    }
    let mut best = 0.0f64;
    for _ in 0..REPS {
        let t = Instant::now();
        kernel(&mut acc, b, c, iters);
        let dt = t.elapsed().as_secs_f64();
        best = best.max(2.0 * (chains * LANES) as f64 * iters as f64 / dt / 1e9);
    }
    assert!(black_box(&acc).iter().flatten().all(|v| v.is_finite()));
    best
}

fn main() {
    let seconds: f64 = std::env::args().nth(1).map(|s| s.parse().expect("seconds")).unwrap_or(0.4);
    let mut peak = 0.0f64;
    let mut report = |lanes: usize, chains: usize, g: f64| {
        println!("lanes {lanes:2} chains {chains:2}: {g:7.1} GFLOP/s");
        peak = peak.max(g);
    };
    report(16, 4, measure::<16>(chains4, 4, seconds));
    report(16, 8, measure::<16>(chains8, 8, seconds));
    report(16, 12, measure::<16>(chains12, 12, seconds));
    report(16, 16, measure::<16>(chains16, 16, seconds));
    report(16, 24, measure::<16>(chains24, 24, seconds));
    report(16, 32, measure::<16>(chains32, 32, seconds));
    println!("peak {peak:.1}");
}
