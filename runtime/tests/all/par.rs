//! The parallel mode (`mncc_runtime::par`): every split of a layer gives the
//! serial kernel's result bit for bit, on edge shapes (rows or pixels not
//! divisible by the parts, one row, fewer pixels than two register tiles,
//! residuals, windows in the padding), on every instruction set this CPU
//! has; and the `std` pool's contract (both closures run, panics propagate,
//! nested joins, an idle pool parks).
use crate::common;

use crate::common::{for_each_isa, Epi, Rng};
use mncc_runtime::par::{self, Parallel, Serial};
use mncc_runtime::{simd, Conv2d, ConvShape, Depthwise, DepthwiseTiles, Epilogue, Layout, Pixel, Pointwise};
use mncc_runtime::{PointwiseShape, PointwiseTiles, PwOrder};

/// Splits into `n` parts (any size: `min_part_macs` 1) and runs them on the
/// calling thread, in order (`rev: false`) or the second closure first.
struct Inline {
    n: usize,
    rev: bool,
}

impl Parallel for Inline {
    fn threads(&self) -> usize {
        self.n
    }
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        if self.rev {
            b();
            a();
        } else {
            a();
            b();
        }
    }
    fn min_part_macs(&self) -> usize {
        1
    }
}

/// Real threads without the `std` feature: a scoped thread per join.
struct Scoped(usize);

impl Parallel for Scoped {
    fn threads(&self) -> usize {
        self.0
    }
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        std::thread::scope(|s| {
            s.spawn(b);
            a();
        });
    }
    fn min_part_macs(&self) -> usize {
        1
    }
}

/// The executors every split is checked with.
fn executors() -> Vec<(String, Box<dyn Parallel>)> {
    let mut v: Vec<(String, Box<dyn Parallel>)> = Vec::new();
    for n in [2, 3, 4, 7] {
        v.push((format!("inline {n}"), Box::new(Inline { n, rev: false })));
    }
    v.push(("inline 2 reversed".into(), Box::new(Inline { n: 2, rev: true })));
    v.push(("scoped 2".into(), Box::new(Scoped(2))));
    v.push(("scoped 3".into(), Box::new(Scoped(3))));
    v
}

/// Exact equality, bit for bit (NaNs of any payload are equal).
#[track_caller]
fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{what}: differs from the serial kernel at {i}: {g:e} vs {w:e}"
        );
    }
}

/// Epilogues to try (a subset of the kernel tests'): plain, bias + ReLU6,
/// residuals with activations.
fn epilogues(rng: &mut Rng, c: usize, len: usize) -> Vec<Epi> {
    let keep = [
        "none",
        "bias+relu6",
        "bias+residual+hardswish",
        "residual+hardsigmoid(1/6,0.5)",
    ];
    common::epilogues(rng, c, len)
        .into_iter()
        .filter(|e| keep.contains(&e.name))
        .collect()
}

fn check_pointwise(pixels: usize, in_c: usize, out_c: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let s = PointwiseShape { pixels, in_c, out_c };
    let input = rng.vec(pixels * in_c, 2.0);
    let packed = rng.vec(mncc_runtime::abi::pack::pointwise_packed_len(in_c, out_c), 1.0);
    for e in epilogues(&mut rng, out_c, pixels * out_c) {
        let ep = e.ep();
        for kc in [in_c.max(1), in_c / 2 + 1] {
            for order in [PwOrder::PixelsOuter, PwOrder::ChannelsOuter] {
                let tiles = PointwiseTiles { kc, order };
                let mut want = vec![f32::NAN; pixels * out_c];
                simd::pointwise(&Pointwise { shape: s, tiles }, &input, &packed, &ep, &mut want, None);
                for (name, p) in executors() {
                    let mut got = vec![f32::NAN; pixels * out_c];
                    par::pointwise(
                        &*p,
                        &Pointwise { shape: s, tiles },
                        &input,
                        &packed,
                        &ep,
                        &mut got,
                        None,
                    );
                    same_bits(
                        &format!("pointwise {s:?} kc {kc} {order:?} {} on {name}", e.name),
                        &got,
                        &want,
                    );
                }
            }
        }
    }
}

#[test]
fn pointwise_splits_are_bit_identical() {
    for_each_isa(|_| {
        // Pixels: 1, fewer than two tiles of every ISA, not divisible by
        // the parts or the tiles, a 7x7 layer, a larger one.
        for (i, &pixels) in [1, 2, 5, 11, 12, 13, 23, 25, 49, 100, 197].iter().enumerate() {
            for &(in_c, out_c) in &[(3, 16), (16, 17), (33, 40), (64, 1)] {
                check_pointwise(pixels, in_c, out_c, 1000 + i as u64);
            }
        }
        // One pixel (a classifier) splits by output channels, at multiples
        // of 32: columns not divisible by the parts, a partial last panel.
        for (i, &(in_c, out_c)) in [(24, 64), (24, 100), (7, 1000), (40, 33)].iter().enumerate() {
            check_pointwise(1, in_c, out_c, 1100 + i as u64);
        }
    });
}

/// Depthwise and conv2d shapes: kernel, stride, input rows, padding top and
/// bottom; width and channels vary with the case.
fn conv_shapes(in_c: usize, out_c: usize) -> Vec<ConvShape> {
    let mut v = Vec::new();
    for k in [1, 3, 5] {
        for stride in [1, 2] {
            for in_h in [1, 2, 3, 7, 8, 14] {
                for (pt, pb) in [(0, 0), (k / 2, k / 2), (0, k - 1), (k - 1, 0), (k + 1, k + 2)] {
                    if in_h + pt + pb < k {
                        continue;
                    }
                    let out_h = (in_h + pt + pb - k) / stride + 1;
                    let in_w = 5 + in_h % 4;
                    let out_w = (in_w + 2 * (k / 2) - k) / stride + 1;
                    v.push(ConvShape {
                        in_h,
                        in_w,
                        in_c,
                        out_h,
                        out_w,
                        out_c,
                        kernel_h: k,
                        kernel_w: k,
                        stride_h: stride,
                        stride_w: stride,
                        pad_top: pt,
                        pad_left: k / 2,
                    });
                }
            }
        }
    }
    v
}

#[test]
fn depthwise_splits_are_bit_identical() {
    for_each_isa(|_| {
        let mut seed = 2000;
        for c in [1, 8, 19, 32] {
            for s in conv_shapes(c, c) {
                seed += 1;
                let mut rng = Rng::new(seed);
                let input = rng.vec(s.in_len(), 2.0);
                let weights = rng.vec(s.kernel_h * s.kernel_w * c, 1.0);
                for e in epilogues(&mut rng, c, s.out_len()) {
                    let ep = e.ep();
                    for rows in [1, 4] {
                        let tiles = DepthwiseTiles { rows };
                        let mut want = vec![f32::NAN; s.out_len()];
                        simd::depthwise(&Depthwise { shape: s, tiles }, &input, &weights, &ep, &mut want);
                        for (name, p) in executors() {
                            let mut got = vec![f32::NAN; s.out_len()];
                            par::depthwise(&*p, &Depthwise { shape: s, tiles }, &input, &weights, &ep, &mut got);
                            same_bits(
                                &format!("depthwise {s:?} rows {rows} {} on {name}", e.name),
                                &got,
                                &want,
                            );
                        }
                    }
                }
            }
        }
    });
}

fn check_conv2d<T: Pixel + Sync>(s: &ConvShape, input: &[T], layout: Layout, rng: &mut Rng) {
    let pad = rng.vec(s.in_c, 1.0);
    let weights = rng.vec(mncc_runtime::abi::pack::conv2d_packed_len(s), 1.0);
    for e in epilogues(rng, s.out_c, s.out_len()) {
        let ep = e.ep();
        let mut want = vec![f32::NAN; s.out_len()];
        simd::conv2d(
            &Conv2d {
                shape: *s,
                layout,
                pad_value: &pad,
            },
            input,
            &weights,
            &ep,
            &mut want,
        );
        for (name, p) in executors() {
            let mut got = vec![f32::NAN; s.out_len()];
            par::conv2d(
                &*p,
                &Conv2d {
                    shape: *s,
                    layout,
                    pad_value: &pad,
                },
                input,
                &weights,
                &ep,
                &mut got,
            );
            same_bits(&format!("conv2d {s:?} {layout:?} {} on {name}", e.name), &got, &want);
        }
    }
}

#[test]
fn conv2d_splits_are_bit_identical() {
    for_each_isa(|_| {
        let mut seed = 3000;
        for (in_c, out_c) in [(3, 8), (3, 32), (2, 17)] {
            for s in conv_shapes(in_c, out_c)
                .into_iter()
                .filter(|s| s.kernel_h == 3 || s.in_h == 7)
            {
                seed += 1;
                let mut rng = Rng::new(seed);
                let x = rng.vec(s.in_len(), 2.0);
                check_conv2d(&s, &x, Layout::Nhwc, &mut rng);
                check_conv2d(&s, &x, Layout::Nchw, &mut rng);
                let bytes = rng.bytes(s.in_len());
                check_conv2d(&s, &bytes, Layout::Nhwc, &mut rng);
                check_conv2d(&s, &bytes, Layout::Nchw, &mut rng);
            }
        }
        // The first layer of a 224 model (K-blocks and pixel blocks of the
        // im2col buffer fall differently in the parts).
        let s = ConvShape {
            in_h: 224,
            in_w: 224,
            in_c: 3,
            out_h: 112,
            out_w: 112,
            out_c: 32,
            kernel_h: 3,
            kernel_w: 3,
            stride_h: 2,
            stride_w: 2,
            pad_top: 0,
            pad_left: 0,
        };
        let mut rng = Rng::new(3999);
        let x = rng.vec(s.in_len(), 2.0);
        check_conv2d(&s, &x, Layout::Nhwc, &mut rng);
        // NCHW (an ONNX model's input): the parts' rows from the whole input.
        check_conv2d(&s, &x, Layout::Nchw, &mut rng);
    });
}

#[test]
fn conv_rows_covers_the_windows() {
    for s in conv_shapes(1, 1) {
        for a in 0..s.out_h {
            for b in a + 1..=s.out_h {
                let (sub, ins) = mncc_runtime::abi::conv_rows(&s, a..b);
                assert_eq!(sub.out_h, b - a);
                assert_eq!(sub.in_h, ins.end - ins.start, "{s:?} rows {a}..{b}");
                assert!(ins.end <= s.in_h);
                // Every tap of every output row maps to the same input row
                // (or to padding in both).
                for oy in a..b {
                    for ky in 0..s.kernel_h {
                        let full = (oy * s.stride_h + ky).checked_sub(s.pad_top).filter(|&r| r < s.in_h);
                        let part = ((oy - a) * sub.stride_h + ky)
                            .checked_sub(sub.pad_top)
                            .filter(|&r| r < sub.in_h)
                            .map(|r| r + ins.start);
                        assert_eq!(full, part, "{s:?} rows {a}..{b}: output row {oy} tap {ky}");
                    }
                }
            }
        }
    }
}

#[test]
fn serial_and_small_layers_run_whole() {
    // Serial: threads() == 1, the parallel entry point is the serial kernel.
    let s = PointwiseShape {
        pixels: 49,
        in_c: 8,
        out_c: 16,
    };
    let mut rng = Rng::new(7);
    let input = rng.vec(49 * 8, 1.0);
    let packed = rng.vec(mncc_runtime::abi::pack::pointwise_packed_len(8, 16), 1.0);
    let tiles = PointwiseTiles {
        kc: 8,
        order: PwOrder::PixelsOuter,
    };
    let mut want = vec![0.0; 49 * 16];
    simd::pointwise(
        &Pointwise { shape: s, tiles },
        &input,
        &packed,
        &Epilogue::NONE,
        &mut want,
        None,
    );
    let mut got = vec![0.0; 49 * 16];
    par::pointwise(
        &Serial,
        &Pointwise { shape: s, tiles },
        &input,
        &packed,
        &Epilogue::NONE,
        &mut got,
        None,
    );
    same_bits("serial", &got, &want);

    /// Counts joins; the default `min_part_macs`.
    struct Counting(std::sync::atomic::AtomicUsize);
    impl Parallel for Counting {
        fn threads(&self) -> usize {
            2
        }
        fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            a();
            b();
        }
    }
    // 49 * 8 * 16 MACs: below the default threshold, no fork.
    let c = Counting(Default::default());
    par::pointwise(
        &c,
        &Pointwise { shape: s, tiles },
        &input,
        &packed,
        &Epilogue::NONE,
        &mut got,
        None,
    );
    assert_eq!(c.0.load(std::sync::atomic::Ordering::Relaxed), 0);
    same_bits("small layer", &got, &want);
    // A 1-pixel classifier (1M MACs) is split once, by output channels.
    let s1 = PointwiseShape {
        pixels: 1,
        in_c: 1024,
        out_c: 1000,
    };
    let input = rng.vec(1024, 1.0);
    let packed = rng.vec(mncc_runtime::abi::pack::pointwise_packed_len(1024, 1000), 1.0);
    let mut out = vec![0.0; 1000];
    let mut want = vec![0.0; 1000];
    par::pointwise(
        &c,
        &Pointwise { shape: s1, tiles },
        &input,
        &packed,
        &Epilogue::NONE,
        &mut out,
        None,
    );
    assert_eq!(c.0.load(std::sync::atomic::Ordering::Relaxed), 1);
    simd::pointwise(
        &Pointwise { shape: s1, tiles },
        &input,
        &packed,
        &Epilogue::NONE,
        &mut want,
        None,
    );
    same_bits("classifier", &out, &want);
    c.0.store(0, std::sync::atomic::Ordering::Relaxed);
    // A 56x56 layer is split once on two threads.
    let s2 = PointwiseShape {
        pixels: 56 * 56,
        in_c: 64,
        out_c: 128,
    };
    let input = rng.vec(56 * 56 * 64, 1.0);
    let packed = rng.vec(mncc_runtime::abi::pack::pointwise_packed_len(64, 128), 1.0);
    let mut out = vec![0.0; 56 * 56 * 128];
    par::pointwise(
        &c,
        &Pointwise { shape: s2, tiles },
        &input,
        &packed,
        &Epilogue::NONE,
        &mut out,
        None,
    );
    assert_eq!(c.0.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
#[should_panic(expected = "simd::pointwise")]
fn length_errors_are_the_kernels() {
    let s = PointwiseShape {
        pixels: 100,
        in_c: 64,
        out_c: 64,
    };
    let packed = vec![0.0; mncc_runtime::abi::pack::pointwise_packed_len(64, 64)];
    let mut out = vec![0.0; 100 * 64];
    let tiles = PointwiseTiles {
        kc: 64,
        order: PwOrder::PixelsOuter,
    };
    par::pointwise(
        &Inline { n: 2, rev: false },
        &Pointwise { shape: s, tiles },
        &[0.0; 10],
        &packed,
        &Epilogue::NONE,
        &mut out,
        None,
    );
}

#[cfg(feature = "std")]
mod std_pool {
    use super::*;
    use mncc_runtime::par::StdPool;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn join_runs_both_on_two_threads() {
        use std::sync::atomic::AtomicBool;
        let pool = StdPool::new();
        assert_eq!(pool.threads(), 2);
        let me = std::thread::current().id();
        for _ in 0..200 {
            // `a` waits for `b`: `b` must run on the worker, at the same time.
            let started = AtomicBool::new(false);
            let mut tb = None;
            pool.join(
                &mut || {
                    while !started.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                },
                &mut || {
                    tb = Some(std::thread::current().id());
                    started.store(true, Ordering::Release);
                },
            );
            assert!(tb.is_some() && tb != Some(me), "b runs on the worker");
        }
        for _ in 0..1000 {
            // Short closures: `b` runs on the worker, or on the caller when
            // the worker has not started it by the time `a` is done.
            let (mut x, mut y, mut ta) = (0, 0, None);
            pool.join(
                &mut || {
                    x += 1;
                    ta = Some(std::thread::current().id());
                },
                &mut || y += 2,
            );
            assert_eq!((x, y, ta), (1, 2, Some(me)), "each closure runs once, a on the caller");
        }
    }

    #[test]
    fn splits_on_the_pool_are_bit_identical() {
        let pool = StdPool::new();
        let s = ConvShape {
            in_h: 56,
            in_w: 56,
            in_c: 128,
            out_h: 28,
            out_w: 28,
            out_c: 128,
            kernel_h: 3,
            kernel_w: 3,
            stride_h: 2,
            stride_w: 2,
            pad_top: 0,
            pad_left: 0,
        };
        let mut rng = Rng::new(11);
        let input = rng.vec(s.in_len(), 1.0);
        let weights = rng.vec(9 * 128, 1.0);
        let res = rng.vec(s.out_len(), 1.0);
        let ep = Epilogue {
            residual: Some(&res),
            ..Epilogue::NONE
        };
        let tiles = DepthwiseTiles { rows: 2 };
        let mut want = vec![0.0; s.out_len()];
        simd::depthwise(&Depthwise { shape: s, tiles }, &input, &weights, &ep, &mut want);
        for _ in 0..50 {
            let mut got = vec![f32::NAN; s.out_len()];
            par::depthwise(&pool, &Depthwise { shape: s, tiles }, &input, &weights, &ep, &mut got);
            same_bits("depthwise on StdPool", &got, &want);
        }
    }

    #[test]
    fn panics_propagate_and_the_pool_survives() {
        let pool = StdPool::with_spin(Duration::from_micros(10));
        let ran = AtomicUsize::new(0);
        for side in 0..2 {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.join(
                    &mut || {
                        ran.fetch_add(1, Ordering::SeqCst);
                        assert!(side != 0, "a panics");
                    },
                    &mut || {
                        std::thread::sleep(Duration::from_millis(5));
                        ran.fetch_add(1, Ordering::SeqCst);
                        assert!(side != 1, "b panics");
                    },
                )
            }));
            assert!(r.is_err(), "side {side}: the panic must reach the caller");
            // Both closures finished before join returned (even when `a`
            // panicked while `b` still ran).
            assert_eq!(ran.swap(0, Ordering::SeqCst), 2);
        }
        let mut n = 0;
        pool.join(&mut || n += 1, &mut || std::thread::sleep(Duration::from_millis(1)));
        assert_eq!(n, 1);
    }

    #[test]
    fn nested_joins_run_inline() {
        let pool = StdPool::new();
        let count = AtomicUsize::new(0);
        let inc = || {
            count.fetch_add(1, Ordering::SeqCst);
        };
        pool.join(&mut || pool.join(&mut || inc(), &mut || inc()), &mut || {
            pool.join(&mut || inc(), &mut || inc())
        });
        assert_eq!(count.load(Ordering::SeqCst), 4);
        // Several callers sharing one pool.
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..200 {
                        pool.join(&mut || inc(), &mut || inc());
                    }
                });
            }
        });
        assert_eq!(count.load(Ordering::SeqCst), 4 + 3 * 200 * 2);
    }

    /// CPU time (user + system, clock ticks) of the thread whose
    /// `/proc/<pid>/task/<tid>` directory is `task`.
    #[cfg(target_os = "linux")]
    fn cpu_ticks(task: &std::path::Path) -> u64 {
        let stat = std::fs::read_to_string(task.join("stat")).unwrap();
        // Fields after the command name (which is in parentheses): utime and
        // stime are fields 14 and 15 of stat, 12 and 13 after the name.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn an_idle_pool_parks() {
        let pool = StdPool::new();
        // The worker's /proc entry, read on the worker.
        let mut task = None;
        pool.join(&mut || {}, &mut || task = std::fs::read_link("/proc/thread-self").ok());
        // The link reads `<pid>/task/<tid>`, relative to /proc.
        let task = std::path::Path::new("/proc").join(task.expect("/proc/thread-self"));
        let t0 = cpu_ticks(&task);
        std::thread::sleep(Duration::from_millis(500));
        // At most the spin time (0.5 ms) plus scheduling noise; a worker
        // that kept spinning would use ~50 ticks (100 per second).
        let used = cpu_ticks(&task) - t0;
        assert!(used <= 5, "the idle worker used {used} clock ticks in 500 ms");
        drop(pool);
    }
}
