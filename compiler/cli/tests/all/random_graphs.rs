//! Random graphs through the whole pipeline: passes, lowering, codegen, a
//! release build of the generated code, compared over the whole output with
//! the reference interpreter on the unoptimized graph.
//!
//! The graphs go beyond what the v1/v2 tables produce: 1x1, 3x3 and 5x5
//! kernels, strides 1 and 2, asymmetric pads, strided and padded 1x1 convs
//! (lowered to `conv2d`), residual adds, BatchNorm with and without bias,
//! ReLU/ReLU6/none, a dense layer on a flattened spatial tensor (its weight
//! columns are permuted from NCHW to NHWC order at compile time), softmax,
//! u8 and f32 inputs in both layouts.

use mncc::interp::{self, InputData};
use mncc::ir::*;
use mncc::rng::Rng;
use mncc_cli::harness;

fn param(r: &mut Rng, shape: Vec<usize>) -> Param {
    let n: usize = shape.iter().product();
    let fan_in = n / shape[0];
    let std = (2.0 / fan_in as f64).sqrt();
    Param::new(shape, (0..n).map(|_| (r.normal() * std) as f32).collect())
}

fn vecf(r: &mut Rng, n: usize, lo: f64, hi: f64) -> Vec<f32> {
    (0..n).map(|_| r.uniform(lo, hi) as f32).collect()
}

fn bn(r: &mut Rng, c: usize) -> Op {
    Op::BatchNorm(BatchNormCfg {
        gamma: vecf(r, c, 0.5, 1.5),
        beta: vecf(r, c, -0.2, 0.2),
        mean: vecf(r, c, -0.2, 0.2),
        var: vecf(r, c, 0.5, 2.0),
        eps: 1e-3,
    })
}

fn pick<T: Copy>(r: &mut Rng, xs: &[T]) -> T {
    xs[(r.next_u64() % xs.len() as u64) as usize]
}

fn random_graph(seed: u64) -> Graph {
    let mut r = Rng::new(seed);
    // Seeds cycle through every input type and layout.
    let dtype = [ElemType::U8, ElemType::F32][seed as usize % 2];
    let layout = [Layout::Nhwc, Layout::Nchw][seed as usize / 2 % 2];
    let size = pick(&mut r, &[13usize, 16, 21]);
    let mut g = Graph::new(
        "random",
        &format!("seed {seed}"),
        InputSpec { dtype, layout },
        vec![1, 3, size, size],
    );
    let mut x = INPUT;
    if dtype == ElemType::U8 {
        let n = NormalizeCfg {
            scale: vec![1.0 / 58.0, 1.0 / 57.0, 1.0 / 57.5],
            offset: vec![-2.1, -2.0, -1.8],
        };
        x = g.push("normalize", Op::Normalize(n), &[x]).unwrap();
    }
    // Stem: a full conv with random kernel, stride and (asymmetric) pads.
    let k = pick(&mut r, &[3usize, 5]);
    let s = pick(&mut r, &[1usize, 2]);
    let pads = [
        pick(&mut r, &[0, 1]),
        pick(&mut r, &[0, 1, 2]),
        pick(&mut r, &[0, 1]),
        pick(&mut r, &[1, 2]),
    ];
    let mut c = pick(&mut r, &[4usize, 8, 11]);
    x = g
        .push(
            "stem",
            Op::Conv(ConvCfg::new(param(&mut r, vec![c, 3, k, k]), [s, s], pads, 1)),
            &[x],
        )
        .unwrap();
    x = g.push("stem.bn", bn(&mut r, c), &[x]).unwrap();
    x = g.push("stem.relu6", Op::Clip(Clamp::RELU6), &[x]).unwrap();
    for b in 0..3 {
        let block_in = x;
        let k = pick(&mut r, &[3usize, 5]);
        let s = if b == 1 { 2 } else { 1 };
        let p = k / 2;
        let pads = if s == 2 { [p - 1, p - 1, p, p] } else { [p; 4] };
        let mut cfg = ConvCfg::new(param(&mut r, vec![c, 1, k, k]), [s, s], pads, c);
        if r.unit() < 0.5 {
            cfg.bias = Some(vecf(&mut r, c, -0.1, 0.1));
        }
        x = g.push(&format!("b{b}.dw"), Op::Conv(cfg), &[x]).unwrap();
        x = g.push(&format!("b{b}.dw.bn"), bn(&mut r, c), &[x]).unwrap();
        x = g
            .push(
                &format!("b{b}.dw.relu"),
                Op::Clip(pick(&mut r, &[Clamp::RELU, Clamp::RELU6])),
                &[x],
            )
            .unwrap();
        let oc = if s == 1 && r.unit() < 0.6 {
            c
        } else {
            pick(&mut r, &[c, 8, 13, 16])
        };
        x = g
            .push(
                &format!("b{b}.pw"),
                Op::Conv(ConvCfg::new(param(&mut r, vec![oc, c, 1, 1]), [1, 1], [0; 4], 1)),
                &[x],
            )
            .unwrap();
        x = g.push(&format!("b{b}.pw.bn"), bn(&mut r, oc), &[x]).unwrap();
        if s == 1 && oc == c {
            x = g.push(&format!("b{b}.add"), Op::Add, &[x, block_in]).unwrap();
        } else {
            x = g.push(&format!("b{b}.pw.relu6"), Op::Clip(Clamp::RELU6), &[x]).unwrap();
        }
        c = oc;
    }
    // A strided, padded 1x1 conv: not a pointwise kernel, lowered to conv2d.
    let oc = pick(&mut r, &[6usize, 9]);
    x = g
        .push(
            "proj",
            Op::Conv(ConvCfg::new(param(&mut r, vec![oc, c, 1, 1]), [2, 2], [0, 0, 0, 0], 1)),
            &[x],
        )
        .unwrap();
    x = g.push("proj.relu", Op::Clip(Clamp::RELU), &[x]).unwrap();
    // Head: either pooling then dense, or dense on the flattened spatial tensor.
    let flat: usize = g.tensors[x].shape[1..].iter().product();
    let (k_in, x) = if seed.is_multiple_of(2) {
        (oc, g.push("pool", Op::GlobalAvgPool, &[x]).unwrap())
    } else {
        (flat, x)
    };
    let classes = pick(&mut r, &[5usize, 10]);
    let w = param(&mut r, vec![classes, k_in]);
    let mut y = g
        .push(
            "fc",
            Op::Dense(DenseCfg::new(w, Some(vecf(&mut r, classes, -0.5, 0.5)))),
            &[x],
        )
        .unwrap();
    if r.unit() < 0.5 {
        y = g.push("softmax", Op::Softmax, &[y]).unwrap();
    }
    let _ = y;
    g
}

#[test]
fn random_graphs_match_the_interpreter() {
    for seed in 0..4u64 {
        let g = random_graph(seed);
        if let Some(fc) = g.nodes.iter().find(|n| n.name == "fc") {
            let s = &g.tensors[fc.inputs[0]].shape;
            assert!(
                seed % 2 == 0 || s[2] * s[3] > 1,
                "seed {seed}: the flattened dense must see spatial > 1, got {s:?}"
            );
        }
        let (opt, reports) = mncc::passes::optimize(g.clone()).unwrap();
        let p = mncc::lower::lower(&opt, reports, &mncc::lower::Target::PORTABLE).unwrap();
        let kernels: Vec<String> = p.layers.iter().map(|l| l.kernel.name()).collect();
        let h = harness::build(&p, true).unwrap();
        for input_seed in 0..2 {
            let x = InputData::random(g.input.dtype, g.tensors[INPUT].len(), input_seed);
            let want = interp::run(&g, &x).unwrap();
            let got = h.run(&x).unwrap();
            let c = harness::compare(&got, &want);
            println!(
                "seed {seed} input {input_seed}: max abs {:.3e}, max rel {:.3e} (tolerance {:.3e}); {:?} {}; {kernels:?}",
                c.max_abs, c.max_rel, c.tolerance, g.input.dtype, g.input.layout
            );
            assert!(
                c.ok(),
                "seed {seed}: max abs error {:.3e} > {:.3e}",
                c.max_abs,
                c.tolerance
            );
        }
    }
}

/// A chain of pointwise -> depthwise pairs: the first pointwise layer reads
/// the model input, the last depthwise layer (a window over the whole
/// feature map) writes the model output; random kernels, strides, pads,
/// channels (below, at and above the vector widths) and epilogues.
fn banded_graph(seed: u64) -> Graph {
    let mut r = Rng::new(seed ^ 0xba4d);
    let size = pick(&mut r, &[13usize, 16, 21]);
    let mut c = 3;
    let mut g = Graph::new(
        "banded",
        &format!("seed {seed}"),
        InputSpec {
            dtype: ElemType::F32,
            layout: Layout::Nhwc,
        },
        vec![1, c, size, size],
    );
    let mut x = INPUT;
    for b in 0..3 {
        let oc = pick(&mut r, &[4usize, 8, 16, 24, 40]);
        x = g
            .push(
                &format!("b{b}.pw"),
                Op::Conv(ConvCfg::new(param(&mut r, vec![oc, c, 1, 1]), [1, 1], [0; 4], 1)),
                &[x],
            )
            .unwrap();
        x = g.push(&format!("b{b}.pw.bn"), bn(&mut r, oc), &[x]).unwrap();
        x = g.push(&format!("b{b}.pw.relu6"), Op::Clip(Clamp::RELU6), &[x]).unwrap();
        c = oc;
        let (h, w) = (g.tensors[x].shape[2], g.tensors[x].shape[3]);
        let (kh, kw, s, pads) = if b == 2 {
            (h, w, 1, [0; 4])
        } else {
            let k = pick(&mut r, &[3usize, 5]);
            let s = pick(&mut r, &[1usize, 2]);
            let p = k / 2;
            (
                k,
                k,
                s,
                [pick(&mut r, &[0, p]), pick(&mut r, &[0, p]), p, pick(&mut r, &[0, p])],
            )
        };
        x = g
            .push(
                &format!("b{b}.dw"),
                Op::Conv(ConvCfg::new(param(&mut r, vec![c, 1, kh, kw]), [s, s], pads, c)),
                &[x],
            )
            .unwrap();
        x = g.push(&format!("b{b}.dw.bn"), bn(&mut r, c), &[x]).unwrap();
        x = g.push(&format!("b{b}.dw.relu"), Op::Clip(Clamp::RELU), &[x]).unwrap();
    }
    let _ = x;
    g
}

/// Pointwise -> depthwise chains on x86-64 with an L2 so small that every
/// pixels-outer pair runs in bands (of one row, then of a few rows): the banded pairs
/// give the interpreter's output, reading the model input and writing the
/// model output directly.
#[test]
fn banded_layers_match_the_interpreter() {
    let mut banded = 0;
    for (l2, seeds) in [(64usize, 0..4u64), (24 * 1024, 4..8)] {
        let target = mncc::lower::Target {
            l2_bytes: l2,
            ..mncc::lower::Target::X86_64
        };
        for seed in seeds {
            let g = banded_graph(seed);
            let (opt, reports) = mncc::passes::optimize(g.clone()).unwrap();
            let p = mncc::lower::lower(&opt, reports, &target).unwrap();
            let bands: Vec<(usize, usize)> = p
                .steps
                .iter()
                .filter_map(|s| match s {
                    mncc::lower::Step::Banded { pointwise, shape, .. } => Some((*pointwise, shape.band)),
                    _ => None,
                })
                .collect();
            // (A channels-outer pointwise layer, weights larger than its
            // input, is not banded.)
            assert!(!bands.is_empty(), "seed {seed}: no banded pair");
            banded += bands.len();
            let h = harness::build(&p, true).unwrap();
            let x = InputData::random(g.input.dtype, g.tensors[INPUT].len(), seed);
            let want = interp::run(&g, &x).unwrap();
            let got = h.run(&x).unwrap();
            let c = harness::compare(&got, &want);
            println!(
                "seed {seed}, L2 {l2} B: banded (layer, rows) {bands:?}; max abs {:.3e}, max rel {:.3e} (tolerance {:.3e})",
                c.max_abs, c.max_rel, c.tolerance
            );
            assert!(
                c.ok(),
                "seed {seed}: max abs error {:.3e} > {:.3e}",
                c.max_abs,
                c.tolerance
            );
        }
    }
    assert!(banded >= 16, "only {banded} banded pairs in 8 graphs");
}

/// An int8 tensor through planning and codegen: the model input quantized
/// to int8 (scale 1/100, zero point -3), stored in the arena as one byte
/// per element, dequantized and read by a convolution. The quantization is
/// exact on both sides (the input is f32 already), so the generated code
/// matches the interpreter to float rounding; the int8 tensor's arena range
/// is its element count in bytes, and the generated code borrows it as
/// `&[i8]` / `&mut [i8]`.
#[test]
fn an_int8_tensor_through_planning_and_codegen() {
    let mut r = Rng::new(8);
    let input = InputSpec {
        dtype: ElemType::F32,
        layout: Layout::Nhwc,
    };
    let mut g = Graph::new("int8", "quantize -> dequantize -> conv", input, vec![1, 8, 6, 6]);
    let q = g
        .push(
            "quantize",
            Op::Quantize(QType {
                elem: ElemType::I8,
                scale: 0.01,
                zero_point: -3,
            }),
            &[INPUT],
        )
        .unwrap();
    assert_eq!(g.tensors[q].ty.elem, ElemType::I8);
    let d = g.push("dequantize", Op::Dequantize, &[q]).unwrap();
    let mut conv = ConvCfg::new(param(&mut r, vec![16, 8, 1, 1]), [1, 1], [0; 4], 1);
    conv.bias = Some(vecf(&mut r, 16, -0.1, 0.1));
    conv.clamp = Clamp::RELU6;
    let c = g.push("conv", Op::Conv(conv), &[d]).unwrap();
    g.push("pool", Op::GlobalAvgPool, &[c]).unwrap();
    g.verify().unwrap();

    let (opt, reports) = mncc::passes::optimize(g.clone()).unwrap();
    let p = mncc::lower::lower(&opt, reports, &mncc::Target::X86_64).unwrap();
    assert_eq!(p.tensor_types[q], ElemType::I8);
    let Some(mncc::lower::Storage::Arena(r8)) = &p.storage[q] else {
        panic!("the int8 tensor is not in the arena: {:?}", p.storage[q])
    };
    assert_eq!(r8.len(), 6 * 6 * 8, "one byte per int8 element");
    assert_eq!(r8.start % 64, 0);
    let Some(mncc::lower::Storage::Arena(rf)) = &p.storage[d] else {
        panic!("the dequantized tensor is not in the arena")
    };
    assert_eq!(rf.len(), 6 * 6 * 8 * 4, "four bytes per f32 element");
    let src = mncc::codegen::source(&p, &mncc::codegen::WeightsEmbed::Inline, "test").unwrap();
    assert!(src.contains("&mut [i8]") && src.contains("&[i8]"), "{src}");
    assert!(
        src.contains("quantize::<i8>") && src.contains("dequantize::<i8>"),
        "{src}"
    );

    let h = harness::build(&p, true).unwrap();
    for seed in 0..3 {
        let x = InputData::random(ElemType::F32, 6 * 6 * 8, seed);
        let want = interp::run(&g, &x).unwrap();
        let got = h.run(&x).unwrap();
        let c = harness::compare(&got, &want);
        assert!(c.ok(), "seed {seed}: {c:?}");
    }
}
