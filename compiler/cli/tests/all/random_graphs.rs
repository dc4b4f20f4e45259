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

/// A random 8-bit weight of `shape`: `elem` values, quantized per tensor or
/// per output channel (axis 0) with random scales and zero points.
fn qparam(r: &mut Rng, shape: Vec<usize>, elem: ElemType, per_channel: bool) -> Param {
    let n: usize = shape.iter().product();
    let groups = if per_channel { shape[0] } else { 1 };
    let (lo, hi) = int_range(elem);
    let zero_point: Vec<i32> = (0..groups)
        .map(|_| match elem {
            // Symmetric int8 weights (zero point 0) as quantizers write them, sometimes not.
            ElemType::I8 if r.next_u64().is_multiple_of(2) => 0,
            _ => lo + (r.next_u64() % (hi - lo + 1) as u64) as i32 / 4 + (hi - lo) * 3 / 8,
        })
        .collect();
    let scale: Vec<f32> = (0..groups).map(|_| r.uniform(0.002, 0.02) as f32).collect();
    let v: Vec<i32> = (0..n)
        .map(|_| lo + (r.next_u64() % (hi - lo + 1) as u64) as i32)
        .collect();
    Param {
        shape,
        values: match elem {
            ElemType::I8 => Values::I8(v.iter().map(|&x| x as i8).collect()),
            _ => Values::U8(v.iter().map(|&x| x as u8).collect()),
        },
        quant: Some(Quant {
            scale,
            zero_point,
            axis: per_channel.then_some(0),
        }),
    }
}

/// A random output type: `elem` with a scale of `typical` times 0.5..2 and
/// a zero point anywhere in the middle half of its range.
fn qtype(r: &mut Rng, elem: ElemType, typical: f64) -> QType {
    let (lo, hi) = int_range(elem);
    QType {
        elem,
        scale: (typical * r.uniform(0.5, 2.0)) as f32,
        zero_point: lo + (hi - lo) / 4 + (r.next_u64() % ((hi - lo) / 2) as u64) as i32,
    }
}

/// A random integer graph like the QOperator MobileNets: QuantizeLinear of
/// the f32 input, a strided padded stem (`qconv2d`), depthwise 3x3 and 5x5
/// at strides 1 and 2, pointwise layers, a residual QLinearAdd, a strided
/// 1x1 (`qconv2d`), the average pool, a dense layer and its constant bias
/// added by QLinearAdd, DequantizeLinear. Each tensor's type is int8 or
/// uint8 at random, weights per tensor or per channel, int8 or uint8.
fn random_int_graph(seed: u64) -> Graph {
    let mut r = Rng::new(seed);
    let layout = [Layout::Nhwc, Layout::Nchw][seed as usize % 2];
    let size = pick(&mut r, &[11usize, 16, 19]);
    let mut g = Graph::new(
        "random_int8",
        &format!("seed {seed}"),
        InputSpec {
            dtype: ElemType::F32,
            layout,
        },
        vec![1, 3, size, size],
    );
    let types = [ElemType::U8, ElemType::I8];
    let mut t = pick(&mut r, &types);
    let mut q = qtype(&mut r, t, 1.0 / 60.0);
    let mut x = g.push("quantize", Op::Quantize(q), &[INPUT]).unwrap();
    let mut c = 3;
    // One integer convolution from `x` (`c` channels) to `oc` channels.
    let conv = |g: &mut Graph,
                r: &mut Rng,
                x: TensorId,
                q: QType,
                name: &str,
                geo: ([usize; 4], [usize; 2], [usize; 4], usize)| {
        let (wshape, stride, pads, groups) = geo;
        let k = wshape[1] * wshape[2] * wshape[3];
        let we = pick(r, &types);
        let per_channel = r.next_u64().is_multiple_of(2);
        let weight = qparam(r, wshape.to_vec(), we, per_channel);
        let ws = weight.quant.as_ref().unwrap().scale[0] as f64;
        let bias = if !r.next_u64().is_multiple_of(3) {
            Some((0..wshape[0]).map(|_| (r.next_u64() % 4001) as i32 - 2000).collect())
        } else {
            None
        };
        let yt = pick(r, &types);
        // Sums of k products of about 40 * 60 in units of q.scale * ws.
        let out = qtype(r, yt, q.scale as f64 * ws * 40.0 * 60.0 * (k as f64).sqrt() / 35.0);
        let cfg = QConvCfg {
            weight,
            bias,
            stride,
            pads,
            groups,
            out: IntOut::Requant(out),
        };
        (g.push(name, Op::QConv(cfg), &[x]).unwrap(), out)
    };
    let k = pick(&mut r, &[3usize, 5]);
    let oc = pick(&mut r, &[8usize, 16, 19]);
    let pads = [
        pick(&mut r, &[0, 1]),
        pick(&mut r, &[0, 1, 2]),
        pick(&mut r, &[0, 1]),
        pick(&mut r, &[1, 2]),
    ];
    (x, q) = conv(&mut g, &mut r, x, q, "stem", ([oc, c, k, k], [2, 2], pads, 1));
    c = oc;
    for (i, (k, s)) in [(3usize, 1usize), (5, 2), (3, 2)].into_iter().enumerate() {
        let p = k / 2;
        (x, q) = conv(
            &mut g,
            &mut r,
            x,
            q,
            &format!("dw{i}"),
            ([c, 1, k, k], [s, s], [p; 4], c),
        );
        let oc = pick(&mut r, &[8usize, 24, 70]);
        let (y, qy) = conv(
            &mut g,
            &mut r,
            x,
            q,
            &format!("pw{i}"),
            ([oc, c, 1, 1], [1, 1], [0; 4], 1),
        );
        if oc == c {
            let ot = pick(&mut r, &types);
            let o = qtype(&mut r, ot, qy.scale as f64);
            x = g
                .push(&format!("add{i}"), Op::QAdd(QAddCfg { rhs: None, out: o }), &[y, x])
                .unwrap();
            q = o;
        } else {
            (x, q) = (y, qy);
        }
        c = oc;
        t = q.elem;
    }
    let _ = t;
    let oc = pick(&mut r, &[16usize, 33]);
    (x, q) = conv(&mut g, &mut r, x, q, "strided_1x1", ([oc, c, 1, 1], [2, 2], [0; 4], 1));
    c = oc;
    let ot = pick(&mut r, &types);
    let o = qtype(&mut r, ot, q.scale as f64 * 0.5);
    x = g.push("pool", Op::QGlobalAvgPool(o), &[x]).unwrap();
    q = o;
    x = g.push("flatten", Op::Reshape(vec![1, c]), &[x]).unwrap();
    let n = pick(&mut r, &[10usize, 17]);
    let we = pick(&mut r, &types);
    let per_channel = r.next_u64().is_multiple_of(2);
    let weight = qparam(&mut r, vec![n, c], we, per_channel);
    let ws = weight.quant.as_ref().unwrap().scale[0] as f64;
    let ot = pick(&mut r, &types);
    let out = qtype(&mut r, ot, q.scale as f64 * ws * 40.0 * 60.0 * (c as f64).sqrt() / 35.0);
    x = g
        .push(
            "fc",
            Op::QDense(QDenseCfg {
                weight,
                bias: None,
                out: IntOut::Requant(out),
            }),
            &[x],
        )
        .unwrap();
    let rt = pick(&mut r, &types);
    let rhs = qparam(&mut r, vec![n], rt, false);
    let ot = pick(&mut r, &types);
    let o = qtype(&mut r, ot, out.scale as f64);
    x = g
        .push("bias", Op::QAdd(QAddCfg { rhs: Some(rhs), out: o }), &[x])
        .unwrap();
    g.push("dequantize", Op::Dequantize, &[x]).unwrap();
    g.verify().unwrap();
    g
}

/// Integer graphs: the generated code equals the integer reference
/// interpreter bit for bit (no tolerance), on every input, and does not
/// saturate everything (the random types keep values spread).
#[test]
fn random_int8_graphs_match_the_integer_reference_exactly() {
    for seed in 0..6 {
        let g = random_int_graph(seed);
        let (opt, reports) = mncc::passes::optimize(g.clone()).unwrap();
        let p = mncc::lower::lower(&opt, reports, &mncc::Target::X86_64).unwrap();
        let kernels: Vec<String> = p.layers.iter().map(|l| l.kernel.name()).collect();
        for k in [
            "qconv2d_",
            "qdepthwise_3x3",
            "qdepthwise_5x5",
            "qpointwise",
            "qadd",
            "qglobal_avg_pool",
        ] {
            assert!(
                kernels.iter().any(|n| n.starts_with(k)),
                "seed {seed}: no {k} in {kernels:?}"
            );
        }
        let h = harness::build(&p, true).unwrap();
        let len = g.tensors[INPUT].len();
        for input_seed in 0..3 {
            let x = InputData::random(ElemType::F32, len, 100 * seed + input_seed);
            let all = interp::run_all(&g, &x).unwrap();
            let want = &all[g.output];
            let got = h.run(&x).unwrap();
            let same = got.iter().zip(want).filter(|(a, b)| **a as f64 == **b).count();
            // Not all saturated: the last integer tensor takes several values.
            let last = &all[g.nodes[g.nodes.len() - 1].inputs[0]];
            let distinct: std::collections::BTreeSet<i64> = last.iter().map(|&v| v as i64).collect();
            println!(
                "seed {seed}.{input_seed}: {same}/{} outputs identical, {} distinct values",
                want.len(),
                distinct.len()
            );
            assert!(distinct.len() >= 3, "seed {seed}: degenerate output {last:?}");
            assert_eq!(same, want.len(), "seed {seed}: generated {got:?}\nreference {want:?}");
        }
    }
}
