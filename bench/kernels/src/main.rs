//! Kernel-level benchmark: `mncc_runtime::simd::{pointwise, depthwise}` on
//! the layer shapes of MobileNet v1 1.0 224 and v2 1.0 224, with the
//! compiler's default schedule (or `--kc N` / `--order pixels|channels`).
//! Prints the median time and GFLOP/s of each shape (2 flops per MAC).
//!
//! Usage: `mncc-bench-kernels [--seconds S] [--kc N] [--order pixels|channels]
//! [--only pw|dw] [--isa NAME] [--amx]` (`--isa`: an instruction set of
//! the kernel tables `simd::POINTWISE` and `simd::DEPTHWISE`)
//!
//! `--amx`: the pointwise shapes with an AMX scratch (the AMX tiles where
//! the CPU has them; `--isa avx512` or less caps them off).
#![forbid(unsafe_code)]

use mncc_bench_kernels::{fill, Aligned};
use mncc_runtime::simd;
use mncc_runtime::{
    Activation, ConvShape, Depthwise, DepthwiseTiles, Epilogue, Pointwise, PointwiseShape, PointwiseTiles, PwOrder,
};
use std::hint::black_box;
use std::time::Instant;

struct Opts {
    seconds: f64,
    kc: Option<usize>,
    order: Option<PwOrder>,
    only: Option<String>,
    shape: Option<(usize, usize, usize)>,
    /// `--compare kc:order,...`: alternate these schedules on `--shape`.
    compare: Vec<(usize, PwOrder)>,
    /// `--amx`: `simd::pointwise_amx`.
    amx: bool,
}

fn median_ms(seconds: f64, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut times = Vec::new();
    while start.elapsed().as_secs_f64() < seconds || times.len() < 5 {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}

/// The compiler's default tiles (`compiler/src/lower.rs`, `Target::X86_64`).
fn default_tiles(pixels: usize, in_c: usize, out_c: usize) -> PointwiseTiles {
    let (l1, mr) = (48 * 1024, if pixels == 1 { 1 } else { 12 });
    let budget = l1 / (4 * mr);
    let kc = if in_c <= budget {
        in_c
    } else {
        let blocks = in_c.div_ceil(budget.max(8));
        (in_c.div_ceil(blocks)).div_ceil(8) * 8
    };
    let order = if in_c * out_c > pixels * in_c {
        PwOrder::ChannelsOuter
    } else {
        PwOrder::PixelsOuter
    };
    PointwiseTiles { kc, order }
}

/// A pointwise layer's data: seeded input, packed weights and bias in
/// 64-byte aligned buffers (as the generated code's), bias + ReLU6.
struct PwCase {
    s: PointwiseShape,
    input: Aligned,
    packed: Aligned,
    bias: Aligned,
    out: Aligned,
}

impl PwCase {
    fn new(pixels: usize, in_c: usize, out_c: usize) -> PwCase {
        PwCase {
            s: PointwiseShape { pixels, in_c, out_c },
            input: Aligned::new(&fill(pixels * in_c, 1)),
            packed: Aligned::new(&fill(mncc_runtime::abi::pack::pointwise_packed_len(in_c, out_c), 2)),
            bias: Aligned::new(&fill(out_c, 3)),
            out: Aligned::new(&vec![0.0; pixels * out_c]),
        }
    }

    /// One call of `simd::pointwise` with tiles `t` (`simd::pointwise_amx`
    /// with `scratch`, if given).
    fn run(&mut self, t: &PointwiseTiles) {
        self.run_on(t, None)
    }

    fn run_on(&mut self, t: &PointwiseTiles, scratch: Option<&mut [f32]>) {
        let ep = Epilogue {
            bias: Some(self.bias.get()),
            min: 0.0,
            max: 6.0,
            residual: None,
            act: Activation::None,
        };
        match scratch {
            Some(scratch) => simd::pointwise(
                &Pointwise {
                    shape: self.s,
                    tiles: *t,
                },
                black_box(self.input.get()),
                self.packed.get(),
                &ep,
                self.out.get_mut(),
                Some(scratch),
            ),
            None => simd::pointwise(
                &Pointwise {
                    shape: self.s,
                    tiles: *t,
                },
                black_box(self.input.get()),
                self.packed.get(),
                &ep,
                self.out.get_mut(),
                None,
            ),
        }
        black_box(self.out.get());
    }
}

fn pointwise(o: &Opts, name: &str, pixels: usize, in_c: usize, out_c: usize) -> (f64, f64) {
    let mut t = default_tiles(pixels, in_c, out_c);
    if let Some(kc) = o.kc {
        t.kc = kc.min(in_c);
    }
    if let Some(ord) = o.order {
        t.order = ord;
    }
    let mut case = PwCase::new(pixels, in_c, out_c);
    let mut scratch = vec![0.0; mncc_runtime::abi::amx::scratch_len(pixels, in_c, out_c, t.order)];
    let ms = median_ms(o.seconds, || {
        case.run_on(&t, o.amx.then_some(&mut scratch[..]));
    });
    let macs = (pixels * in_c * out_c) as f64;
    let gf = 2.0 * macs / ms / 1e6;
    println!(
        "pw {name:<18} {pixels:>6} x {in_c:>4} -> {out_c:>4}  kc={:<4} {:<8} {ms:>8.4} ms {gf:>7.1} GFLOP/s",
        t.kc,
        if t.order == PwOrder::PixelsOuter {
            "pixels"
        } else {
            "channels"
        }
    );
    (ms, macs)
}

#[allow(clippy::too_many_arguments)]
fn depthwise(o: &Opts, name: &str, h: usize, c: usize, k: usize, stride: usize) -> (f64, f64) {
    let out_h = h.div_ceil(stride);
    let pad = ((out_h - 1) * stride + k).saturating_sub(h) / 2;
    let s = ConvShape {
        in_h: h,
        in_w: h,
        in_c: c,
        out_h,
        out_w: out_h,
        out_c: c,
        kernel_h: k,
        kernel_w: k,
        stride_h: stride,
        stride_w: stride,
        pad_top: pad,
        pad_left: pad,
    };
    let t = DepthwiseTiles { rows: 1 };
    let input = fill(h * h * c, 4);
    let w = fill(k * k * c, 5);
    let bias = fill(c, 6);
    let mut out = vec![0.0; out_h * out_h * c];
    let ep = Epilogue {
        bias: Some(&bias),
        min: 0.0,
        max: 6.0,
        residual: None,
        act: Activation::None,
    };
    let ms = median_ms(o.seconds, || {
        simd::depthwise(&Depthwise { shape: s, tiles: t }, black_box(&input), &w, &ep, &mut out);
        black_box(&out);
    });
    let macs = (out_h * out_h * c * k * k) as f64;
    let gf = 2.0 * macs / ms / 1e6;
    println!("dw {name:<18} {h:>4}x{h:<4} c={c:<5} {k}x{k} s{stride}  {ms:>8.4} ms {gf:>7.1} GFLOP/s");
    (ms, macs)
}

/// Alternates the schedules of `--compare` on one shape, 40 rounds of
/// about `seconds / 40` each, and prints each schedule's median.
fn compare(o: &Opts, pixels: usize, in_c: usize, out_c: usize) {
    let mut case = PwCase::new(pixels, in_c, out_c);
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); o.compare.len()];
    for _ in 0..40 {
        for (j, &(kc, order)) in o.compare.iter().enumerate() {
            let t = PointwiseTiles {
                kc: kc.min(in_c),
                order,
            };
            let start = Instant::now();
            while start.elapsed().as_secs_f64() < o.seconds / 40.0 {
                let t0 = Instant::now();
                case.run(&t);
                times[j].push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let macs = (pixels * in_c * out_c) as f64;
    for (j, &(kc, order)) in o.compare.iter().enumerate() {
        let t = &mut times[j];
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let ms = t[t.len() / 2];
        println!(
            "{pixels:>6} x {in_c:>4} -> {out_c:>4}  kc={kc:<5} {:<8} {ms:>8.4} ms {:>7.1} GFLOP/s",
            if order == PwOrder::PixelsOuter {
                "pixels"
            } else {
                "channels"
            },
            2.0 * macs / ms / 1e6
        );
    }
}

/// Sums of per-shape medians times the number of layers of that shape.
#[derive(Default)]
struct Totals {
    ms: f64,
    macs: f64,
}

impl Totals {
    fn add(&mut self, (ms, macs): (f64, f64), n: usize) {
        self.ms += ms * n as f64;
        self.macs += macs * n as f64;
    }
    fn print(&mut self, what: &str) {
        println!(
            "{what} total {:.3} ms, {:.1} GFLOP/s",
            self.ms,
            2.0 * self.macs / self.ms / 1e6
        );
        *self = Totals::default();
    }
}

fn main() {
    let mut o = Opts {
        seconds: 0.3,
        kc: None,
        order: None,
        only: None,
        shape: None,
        compare: Vec::new(),
        amx: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--seconds" => o.seconds = v.parse().expect("--seconds"),
            "--kc" => o.kc = Some(v.parse().expect("--kc")),
            "--order" => {
                o.order = Some(match v.as_str() {
                    "pixels" => PwOrder::PixelsOuter,
                    "channels" => PwOrder::ChannelsOuter,
                    _ => panic!("--order pixels|channels"),
                })
            }
            "--only" => o.only = Some(v),
            "--compare" => {
                o.compare = v
                    .split(',')
                    .map(|c| {
                        let (kc, ord) = c.split_once(':').unwrap_or((c, "pixels"));
                        let ord = if ord.starts_with('c') {
                            PwOrder::ChannelsOuter
                        } else {
                            PwOrder::PixelsOuter
                        };
                        (kc.parse().expect("--compare kc:order,..."), ord)
                    })
                    .collect()
            }
            "--shape" => {
                let d: Vec<usize> = v.split(',').map(|x| x.parse().expect("--shape P,I,O")).collect();
                o.shape = Some((d[0], d[1], d[2]));
            }
            "--isa" => {
                // The instruction sets the kernel tables name, on this CPU.
                let kernels: Vec<_> = simd::POINTWISE
                    .iter()
                    .chain(simd::DEPTHWISE)
                    .filter(|k| mncc_runtime::isa::available(k.isa))
                    .collect();
                let Some(k) = kernels.iter().find(|k| k.isa.name() == v) else {
                    let names: Vec<&str> = kernels.iter().map(|k| k.name).collect();
                    panic!("--isa {v}: this CPU runs {}", names.join(", "));
                };
                mncc_runtime::isa::set_limit(Some(k.isa));
            }
            "--amx" => {
                o.amx = true;
                i -= 1; // a flag: no value
            }
            a => panic!("unknown argument {a}"),
        }
        i += 2;
    }
    let active = mncc_runtime::isa::active_vector();
    let names: Vec<&str> = simd::POINTWISE
        .iter()
        .chain(simd::DEPTHWISE)
        .filter(|k| k.isa == active || (o.amx && k.isa == mncc_runtime::isa::active()))
        .map(|k| k.name)
        .collect();
    println!(
        "isa {:?}: {}{}",
        mncc_runtime::isa::active(),
        names.join(", "),
        if o.amx { "; pointwise with an AMX scratch" } else { "" }
    );
    if let Some((p, i, c)) = o.shape {
        if o.compare.is_empty() {
            pointwise(&o, "shape", p, i, c);
        } else {
            compare(&o, p, i, c);
        }
        return;
    }
    let run_pw = o.only.as_deref() != Some("dw");
    let run_dw = o.only.as_deref() != Some("pw");
    let mut tot = Totals::default();
    if run_pw {
        // MobileNet v1 1.0 224: (pixels, in, out, count).
        for (p, i, c, n) in [
            (12544, 32, 64, 1),
            (3136, 64, 128, 1),
            (3136, 128, 128, 1),
            (784, 128, 256, 1),
            (784, 256, 256, 1),
            (196, 256, 512, 1),
            (196, 512, 512, 5),
            (49, 512, 1024, 1),
            (49, 1024, 1024, 1),
            (1, 1024, 1000, 1),
        ] {
            tot.add(pointwise(&o, "v1_224", p, i, c), n);
        }
        tot.print("pw v1_224");
        // MobileNet v2 1.0 224 (expand / project), t = 6.
        for (p, i, c, n) in [
            (12544, 32, 16, 1),
            (12544, 16, 96, 1),
            (3136, 96, 24, 1),
            (3136, 24, 144, 2),
            (3136, 144, 24, 1),
            (784, 144, 32, 1),
            (784, 32, 192, 3),
            (784, 192, 32, 2),
            (196, 192, 64, 1),
            (196, 64, 384, 4),
            (196, 384, 64, 3),
            (196, 384, 96, 1),
            (196, 96, 576, 3),
            (196, 576, 96, 2),
            (49, 576, 160, 1),
            (49, 160, 960, 3),
            (49, 960, 160, 2),
            (49, 960, 320, 1),
            (49, 320, 1280, 1),
        ] {
            tot.add(pointwise(&o, "v2_224", p, i, c), n);
        }
        tot.print("pw v2_224");
    }
    if run_dw {
        for (h, c, s, n) in [
            (112, 32, 1, 1),
            (112, 64, 2, 1),
            (56, 128, 1, 1),
            (56, 128, 2, 1),
            (28, 256, 1, 1),
            (28, 256, 2, 1),
            (14, 512, 1, 5),
            (14, 512, 2, 1),
            (7, 1024, 1, 1),
        ] {
            tot.add(depthwise(&o, "v1_224", h, c, 3, s), n);
        }
        tot.print("dw v1_224");
    }
}
