//! A/B benchmark of `simd::depthwise` on the depthwise layers of MobileNet
//! v1 1.0 224 and v2 1.0 224 (and v2 0.35 128's first three) (PyTorch padding 1, bias + ReLU6, the
//! compiler's `rows` for x86-64): the variants run alternately, one call
//! each in turn, on the same 64-byte aligned buffers (as in generated
//! code), so that the machine's swings hit all of them alike. Prints each
//! variant's median and the median of its per-round ratio to the first.
//!
//! Usage: `dw [--seconds S per shape] [--only SUBSTRING] [--variants LIST]`
//! where LIST is comma-separated among `avx512`, `avx2`, `portable` (the
//! instruction set, capped with `isa::set_limit`), `rows-all` (the
//! detected set with one `rows` tile for the whole output) and `reference`
//! (`reference::depthwise`); default `avx512,avx2`.
#![forbid(unsafe_code)]

use mncc_bench_kernels::{fill, median, Aligned};
use mncc_runtime::isa::{self, Isa};
use mncc_runtime::{reference, simd, Activation, ConvShape, Depthwise, DepthwiseTiles, Epilogue};
use std::hint::black_box;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Isa(Isa),
    RowsAll,
    Reference,
}

impl Variant {
    fn parse(s: &str) -> Variant {
        match s {
            "avx512" => Variant::Isa(Isa::Avx512),
            "avx2" => Variant::Isa(Isa::Avx2),
            "portable" => Variant::Isa(Isa::Portable),
            "rows-all" => Variant::RowsAll,
            "reference" => Variant::Reference,
            _ => panic!("--variants: unknown variant {s}"),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Variant::Isa(i) => i.name(),
            Variant::RowsAll => "rows-all",
            Variant::Reference => "reference",
        }
    }
}

/// The compiler's `rows` (`compiler/src/lower.rs`, x86-64: 48 KiB of L1).
fn rows_fitting(in_w: usize, c: usize, stride: usize, k: usize, out_h: usize) -> usize {
    let budget_rows = (48 * 1024 / 2) / (in_w * c * 4).max(1);
    (budget_rows.saturating_sub(k - 1) / stride).clamp(1, out_h.max(1))
}

fn main() {
    let mut seconds = 1.0;
    let mut only: Option<String> = None;
    let mut variants = vec![Variant::Isa(Isa::Avx512), Variant::Isa(Isa::Avx2)];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--seconds" => seconds = v.parse().expect("--seconds"),
            "--only" => only = Some(v),
            "--variants" => variants = v.split(',').map(Variant::parse).collect(),
            a => panic!("unknown argument {a}"),
        }
        i += 2;
    }
    let d = isa::detected();
    variants.retain(|v| match v {
        Variant::Isa(i) => *i <= d || (*i == Isa::Portable),
        _ => true,
    });
    println!(
        "detected {}; variants {}",
        d.name(),
        variants.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
    );
    // (model, input size, channels, stride, kernel).
    let shapes = [
        ("v1", 112, 32, 1, 3),
        ("v1", 112, 64, 2, 3),
        ("v1", 56, 128, 1, 3),
        ("v1", 56, 128, 2, 3),
        ("v1", 28, 256, 1, 3),
        ("v1", 28, 256, 2, 3),
        ("v1", 14, 512, 1, 3),
        ("v1", 14, 512, 2, 3),
        ("v1", 7, 1024, 1, 3),
        ("v2", 112, 96, 2, 3),
        ("v2", 56, 144, 1, 3),
        ("v2", 56, 144, 2, 3),
        ("v2", 28, 192, 1, 3),
        ("v2", 28, 192, 2, 3),
        ("v2", 14, 384, 1, 3),
        ("v2", 14, 576, 1, 3),
        ("v2", 14, 576, 2, 3),
        ("v2", 7, 960, 1, 3),
        ("v2 0.35", 64, 16, 1, 3),
        ("v2 0.35", 64, 48, 2, 3),
        ("v2 0.35", 32, 48, 1, 3),
        ("k5", 28, 96, 1, 5),
        ("k5", 28, 96, 2, 5),
    ];
    let mut log_ratio = vec![0.0f64; variants.len()];
    let mut n_shapes = 0;
    for (model, h, c, stride, k) in shapes {
        let tag = format!("{model} {h}x{h}x{c} {k}x{k} s{stride}");
        if only.as_ref().is_some_and(|o| !tag.contains(o.as_str())) {
            continue;
        }
        let pad = k / 2;
        let out_h = (h + 2 * pad - k) / stride + 1;
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
        let rows = rows_fitting(h, c, stride, k, out_h);
        let input = Aligned::new(&fill(h * h * c, 4));
        let weights = Aligned::new(&fill(k * k * c, 5));
        let bias = Aligned::new(&fill(c, 6));
        let mut out = Aligned::new(&vec![0.0; out_h * out_h * c]);
        let ep = Epilogue {
            bias: Some(bias.get()),
            min: 0.0,
            max: 6.0,
            residual: None,
            act: Activation::None,
        };
        let run = |v: Variant, out: &mut [f32]| {
            let (isa_cap, rows) = match v {
                Variant::Isa(i) => (Some(i), rows),
                Variant::RowsAll => (None, out_h),
                Variant::Reference => (None, rows),
            };
            isa::set_limit(isa_cap);
            let t = DepthwiseTiles { rows };
            if v == Variant::Reference {
                reference::depthwise::<16>(
                    &Depthwise { shape: s, tiles: t },
                    black_box(input.get()),
                    weights.get(),
                    &ep,
                    out,
                );
            } else {
                simd::depthwise(
                    &Depthwise { shape: s, tiles: t },
                    black_box(input.get()),
                    weights.get(),
                    &ep,
                    out,
                );
            }
            black_box(&*out);
        };
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for &v in &variants {
            run(v, out.get_mut());
        }
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < seconds || times[0].len() < 10 {
            for (j, &v) in variants.iter().enumerate() {
                let t0 = Instant::now();
                run(v, out.get_mut());
                times[j].push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        isa::set_limit(None);
        let rounds = times[0].len();
        let macs = (out_h * out_h * c * k * k) as f64;
        let mut line = format!("{tag:<26} rows={rows:<2}");
        for j in 0..variants.len() {
            let ms = median(&mut times[j].clone());
            let ratio = median(&mut (0..rounds).map(|r| times[j][r] / times[0][r]).collect::<Vec<_>>());
            log_ratio[j] += ratio.ln();
            line += &format!(
                "  {} {ms:.4} ms {:.1} GF/s ({ratio:.3})",
                variants[j].name(),
                2.0 * macs / ms / 1e6
            );
        }
        n_shapes += 1;
        println!("{line}  rounds={rounds}");
    }
    if n_shapes > 0 {
        let g: Vec<String> = (0..variants.len())
            .map(|j| format!("{} {:.3}", variants[j].name(), (log_ratio[j] / n_shapes as f64).exp()))
            .collect();
        println!(
            "geometric mean of the ratios to {}: {}",
            variants[0].name(),
            g.join(", ")
        );
    }
}
