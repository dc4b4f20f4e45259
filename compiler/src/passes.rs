//! Graph rewrites: small named passes, each followed by the IR verifier.
//!
//! Every pass preserves the graph's function up to float rounding; the tests
//! check each by running the reference interpreter before and after it.
//! Merged nodes are recorded in [`Node::fused`](crate::ir::Node::fused) so the
//! generated code can say where each layer came from.

use crate::ir::{Activation, Clamp, Graph, Node, Op};

/// One pass: a name and a rewrite returning how many rewrites it made.
pub struct Pass {
    /// Name shown by `mncc inspect` and in verifier errors.
    pub name: &'static str,
    /// What it does, one line.
    pub doc: &'static str,
    /// The rewrite.
    pub run: fn(&mut Graph) -> usize,
}

/// The pipeline, in order.
pub const PIPELINE: &[Pass] = &[
    Pass {
        name: "reshape_into_dense",
        doc: "a flatten read only by a dense layer removed (the dense layer flattens in the same order)",
        run: reshape_into_dense,
    },
    Pass {
        name: "fold_affine",
        doc: "per-channel scale/shift (BatchNorm exported as Mul and Add) merged, and folded into the conv before it",
        run: fold_affine,
    },
    Pass {
        name: "fold_normalize",
        doc: "input normalization folded into the first conv's weights, bias and pad value",
        run: fold_normalize,
    },
    Pass {
        name: "fold_batchnorm",
        doc: "BatchNorm folded into the preceding conv's weights and bias",
        run: fold_batchnorm,
    },
    Pass {
        name: "fuse_residual",
        doc: "residual Add fused into the epilogue of the linear conv before it",
        run: fuse_residual,
    },
    Pass {
        name: "fuse_hardswish",
        doc: "x * hardsigmoid(x) (PyTorch's HardSwish export before opset 14) becomes one HardSwish",
        run: fuse_hardswish,
    },
    Pass {
        name: "fuse_activation",
        doc: "ReLU/ReLU6 fused into the preceding conv's epilogue clamp",
        run: fuse_activation,
    },
    Pass {
        name: "remove_dead",
        doc: "nodes whose output nothing reads removed",
        run: remove_dead,
    },
];

/// What one pass did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassReport {
    /// Pass name.
    pub name: &'static str,
    /// Number of rewrites made.
    pub rewrites: usize,
}

/// Runs [`PIPELINE`], verifying the graph after each pass.
pub fn optimize(mut g: Graph) -> Result<(Graph, Vec<PassReport>), String> {
    g.verify()
        .map_err(|e| format!("the front end built an invalid graph: {}", e.join("; ")))?;
    let mut reports = Vec::new();
    for pass in PIPELINE {
        let rewrites = (pass.run)(&mut g);
        g.verify()
            .map_err(|e| format!("internal error: pass `{}` broke the graph: {}", pass.name, e.join("; ")))?;
        reports.push(PassReport {
            name: pass.name,
            rewrites,
        });
    }
    Ok((g, reports))
}

/// Finds a node `i` whose output feeds only node `j`, with `pred(i)` and
/// `pred_next(j)`; returns `(i, j)`.
fn find_pair(g: &Graph, first: impl Fn(&Node) -> bool, second: impl Fn(&Node) -> bool) -> Option<(usize, usize)> {
    for (i, n) in g.nodes.iter().enumerate() {
        if !first(n) || g.uses(n.output) != 1 || g.output == n.output {
            continue;
        }
        let cs = g.consumers(n.output);
        if let [j] = cs[..] {
            if second(&g.nodes[j]) {
                return Some((i, j));
            }
        }
    }
    None
}

/// Removes node `j` (a single-input, shape-preserving node merged into node
/// `i`): readers of `j`'s output read `i`'s instead.
fn absorb(g: &mut Graph, i: usize, j: usize) {
    let (out_i, out_j) = (g.nodes[i].output, g.nodes[j].output);
    let absorbed = g.nodes.remove(j);
    let i = if j < i { i - 1 } else { i };
    g.nodes[i].fused.push(absorbed.name);
    g.nodes[i].fused.extend(absorbed.fused);
    g.replace_uses(out_j, out_i);
}

/// `Normalize -> Conv`: `w' = w * scale[ci]`, `b' = b + sum(w * offset[ci])`,
/// and the conv pads with the raw value that normalizes to 0 (`-offset/scale`)
/// so borders stay exact.
pub fn fold_normalize(g: &mut Graph) -> usize {
    let mut count = 0;
    while let Some((i, j)) = find_pair(
        g,
        // A zero scale has no raw value that normalizes to 0, unless nothing is added.
        |n| matches!(&n.op, Op::Normalize(c) if c.offset.iter().all(|&o| o == 0.0) || c.scale.iter().all(|&s| s != 0.0)),
        |n| matches!(&n.op, Op::Conv(c) if c.pad_value.is_none() && !c.residual && c.weight.f32().is_some()),
    ) {
        let Op::Normalize(norm) = g.nodes[i].op.clone() else {
            unreachable!()
        };
        let src = g.nodes[i].inputs[0];
        let Op::Conv(conv) = &mut g.nodes[j].op else {
            unreachable!()
        };
        let [oc, icg, kh, kw] = conv.dims();
        let ocg = oc / conv.groups;
        let wt = conv.weight.f32_mut().expect("the predicate checked f32 weights");
        let mut bias: Vec<f64> = conv
            .bias
            .as_ref()
            .map_or(vec![0.0; oc], |b| b.iter().map(|&v| v as f64).collect());
        for (o, b) in bias.iter_mut().enumerate() {
            for ic in 0..icg {
                let ci = (o / ocg) * icg + ic;
                for k in 0..kh * kw {
                    let w = &mut wt[(o * icg + ic) * kh * kw + k];
                    *b += *w as f64 * norm.offset[ci] as f64;
                    *w = (*w as f64 * norm.scale[ci] as f64) as f32;
                }
            }
        }
        conv.bias = Some(bias.iter().map(|&b| b as f32).collect());
        // A pure scale keeps zero padding (and the conv may stay depthwise).
        if norm.offset.iter().any(|&o| o != 0.0) {
            conv.pad_value = Some(
                norm.scale
                    .iter()
                    .zip(&norm.offset)
                    .map(|(s, o)| (-(*o as f64) / *s as f64) as f32)
                    .collect(),
            );
        }
        let name = g.nodes[i].name.clone();
        g.nodes[j].inputs[0] = src;
        g.nodes[j].fused.insert(0, name);
        g.nodes.remove(i);
        count += 1;
    }
    count
}

/// Applies a per-output-channel affine `y * s + t` (from `f(o) = (s, t)`)
/// to a conv: `w' = w * s`, `b' = b * s + t`, in f64.
fn scale_outputs(conv: &mut crate::ir::ConvCfg, f: impl Fn(usize) -> (f64, f64)) {
    let oc = conv.out_c();
    let mut bias = conv.bias.take().unwrap_or_else(|| vec![0.0; oc]);
    let wt = conv.weight.f32_mut().expect("callers check f32 weights");
    let per = wt.len() / oc;
    for (o, (b, ws)) in bias.iter_mut().zip(wt.chunks_mut(per)).enumerate() {
        let (s, t) = f(o);
        for w in ws {
            *w = (*w as f64 * s) as f32;
        }
        *b = (*b as f64 * s + t) as f32;
    }
    conv.bias = Some(bias);
}

/// `Normalize -> Normalize` merged into one; `Conv -> Normalize` (a conv
/// without epilogue) folded: `w' = w * scale[o]`, `b' = b * scale[o] + offset[o]`.
pub fn fold_affine(g: &mut Graph) -> usize {
    let mut count = 0;
    while let Some((i, j)) = find_pair(
        g,
        |n| matches!(n.op, Op::Normalize(_)),
        |n| matches!(n.op, Op::Normalize(_)),
    ) {
        let Op::Normalize(second) = g.nodes[j].op.clone() else {
            unreachable!()
        };
        let Op::Normalize(first) = &mut g.nodes[i].op else {
            unreachable!()
        };
        for c in 0..first.scale.len() {
            first.offset[c] = first.offset[c] * second.scale[c] + second.offset[c];
            first.scale[c] *= second.scale[c];
        }
        absorb(g, i, j);
        count += 1;
    }
    while let Some((i, j)) = find_pair(
        g,
        |n| matches!(&n.op, Op::Conv(c) if c.clamp.is_none() && c.act == Activation::None && !c.residual && c.weight.f32().is_some()),
        |n| matches!(n.op, Op::Normalize(_)),
    ) {
        let Op::Normalize(aff) = g.nodes[j].op.clone() else {
            unreachable!()
        };
        let Op::Conv(conv) = &mut g.nodes[i].op else {
            unreachable!()
        };
        scale_outputs(conv, |o| (aff.scale[o] as f64, aff.offset[o] as f64));
        absorb(g, i, j);
        count += 1;
    }
    count
}

/// `Conv -> BatchNorm`: per output channel `s = gamma / sqrt(var + eps)`,
/// `w' = w * s`, `b' = (b - mean) * s + beta`.
pub fn fold_batchnorm(g: &mut Graph) -> usize {
    let mut count = 0;
    while let Some((i, j)) = find_pair(
        g,
        |n| matches!(&n.op, Op::Conv(c) if c.clamp.is_none() && c.act == Activation::None && !c.residual && c.weight.f32().is_some()),
        |n| matches!(n.op, Op::BatchNorm(_)),
    ) {
        let Op::BatchNorm(bn) = g.nodes[j].op.clone() else {
            unreachable!()
        };
        let Op::Conv(conv) = &mut g.nodes[i].op else {
            unreachable!()
        };
        scale_outputs(conv, |o| {
            let s = bn.gamma[o] as f64 / (bn.var[o] as f64 + bn.eps as f64).sqrt();
            (s, bn.beta[o] as f64 - bn.mean[o] as f64 * s)
        });
        absorb(g, i, j);
        count += 1;
    }
    count
}

/// `Add(Conv(x), r)` where the conv has no clamp yet and `r` is computed
/// before the conv: the conv adds `r` in its epilogue.
pub fn fuse_residual(g: &mut Graph) -> usize {
    let mut count = 0;
    'again: loop {
        for j in 0..g.nodes.len() {
            if !matches!(g.nodes[j].op, Op::Add) {
                continue;
            }
            for side in 0..2 {
                let (a, r) = (g.nodes[j].inputs[side], g.nodes[j].inputs[1 - side]);
                let Some(i) = g.producer(a) else { continue };
                let fusable = matches!(&g.nodes[i].op, Op::Conv(c) if c.clamp.is_none() && c.act == Activation::None && !c.residual && c.weight.f32().is_some())
                    && g.uses(a) == 1
                    && a != r
                    && g.producer(r).is_none_or(|p| p < i);
                if !fusable {
                    continue;
                }
                let Op::Conv(conv) = &mut g.nodes[i].op else {
                    unreachable!()
                };
                conv.residual = true;
                g.nodes[i].inputs.push(r);
                absorb(g, i, j);
                count += 1;
                continue 'again;
            }
        }
        return count;
    }
}

/// `Conv -> Clip`: the clip becomes (or tightens) the conv's epilogue clamp.
pub fn fuse_activation(g: &mut Graph) -> usize {
    /// The epilogue of a conv or dense layer, if its activation is still free.
    fn epilogue(op: &mut Op) -> Option<(&mut Clamp, &mut Activation)> {
        match op {
            Op::Conv(c) if c.act == Activation::None => Some((&mut c.clamp, &mut c.act)),
            Op::Dense(d) if d.act == Activation::None => Some((&mut d.clamp, &mut d.act)),
            _ => None,
        }
    }
    let mut count = 0;
    while let Some((i, j)) = find_pair(
        g,
        |n| {
            matches!(&n.op, Op::Conv(c) if c.act == Activation::None)
                || matches!(&n.op, Op::Dense(d) if d.act == Activation::None)
        },
        |n| matches!(n.op, Op::Clip(_) | Op::Activation(_)),
    ) {
        let next = g.nodes[j].op.clone();
        let (clamp, act) = epilogue(&mut g.nodes[i].op).expect("matched above");
        match next {
            Op::Clip(c) => *clamp = clamp.then(c),
            Op::Activation(a) => *act = a,
            _ => unreachable!(),
        }
        absorb(g, i, j);
        count += 1;
    }
    count
}

/// `Mul(x, HardSigmoid(x))` with alpha 1/6 and beta 1/2 (how PyTorch exports
/// HardSwish before opset 14) becomes `HardSwish(x)`.
pub fn fuse_hardswish(g: &mut Graph) -> usize {
    let mut count = 0;
    'again: loop {
        for j in 0..g.nodes.len() {
            if !matches!(g.nodes[j].op, Op::Mul) {
                continue;
            }
            for side in 0..2 {
                let (x, h) = (g.nodes[j].inputs[side], g.nodes[j].inputs[1 - side]);
                let Some(i) = g.producer(h) else { continue };
                let is_hs = matches!(g.nodes[i].op, Op::Activation(Activation::HardSigmoid { alpha, beta })
                    if (alpha - 1.0 / 6.0).abs() < 1e-6 && (beta - 0.5).abs() < 1e-6);
                if !is_hs || g.nodes[i].inputs[0] != x || g.uses(h) != 1 || g.output == h {
                    continue;
                }
                let hs_name = g.nodes.remove(i).name;
                let j = if i < j { j - 1 } else { j };
                g.nodes[j].op = Op::Activation(Activation::HardSwish);
                g.nodes[j].inputs = vec![x];
                g.nodes[j].fused.insert(0, hs_name);
                count += 1;
                continue 'again;
            }
        }
        return count;
    }
}

/// `Dense(Reshape(x))` where the reshape keeps the batch dim and flattens
/// the rest: the dense layer reads `x` (it flattens in the same NCHW order).
/// Also removes reshapes to the shape they already have.
pub fn reshape_into_dense(g: &mut Graph) -> usize {
    let mut count = 0;
    loop {
        let found = (0..g.nodes.len()).find_map(|i| {
            let Op::Reshape(to) = &g.nodes[i].op else { return None };
            let (x, y) = (g.nodes[i].inputs[0], g.nodes[i].output);
            if &g.tensors[x].shape == to && g.output != y {
                return Some((i, x, y));
            }
            let readers = g.consumers(y);
            let flatten = to.len() == 2 && g.tensors[x].shape.first() == to.first();
            let only_dense = !readers.is_empty() && readers.iter().all(|&j| matches!(g.nodes[j].op, Op::Dense(_)));
            (flatten && only_dense && g.output != y).then_some((i, x, y))
        });
        let Some((i, x, y)) = found else { return count };
        let name = g.nodes[i].name.clone();
        for j in g.consumers(y) {
            g.nodes[j].fused.insert(0, name.clone());
        }
        g.replace_uses(y, x);
        g.nodes.remove(i);
        count += 1;
    }
}

/// Removes nodes whose output is never read and is not the graph output.
pub fn remove_dead(g: &mut Graph) -> usize {
    let mut count = 0;
    while let Some(i) = g.nodes.iter().rposition(|n| g.uses(n.output) == 0) {
        g.nodes.remove(i);
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::{run, InputData};
    use crate::ir::*;
    use crate::rng::Rng;

    fn param(rng: &mut Rng, shape: Vec<usize>) -> Param {
        let n = shape.iter().product();
        Param::new(shape, (0..n).map(|_| rng.normal() as f32 * 0.5).collect())
    }

    fn vecf(rng: &mut Rng, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| rng.uniform(lo, hi) as f32).collect()
    }

    /// u8 input -> normalize -> conv(stride 2, TF pads) -> BN -> relu6 -> dw -> BN -> relu
    /// -> pw -> BN -> add(residual) -> relu6 -> gap -> dense -> softmax, plus a dead branch.
    fn sample(seed: u64, dtype: ElemType, layout: Layout) -> Graph {
        let mut r = Rng::new(seed);
        let mut g = Graph::new("t", "", InputSpec { dtype, layout }, vec![1, 3, 9, 9]);
        let bn = |r: &mut Rng, c| {
            Op::BatchNorm(BatchNormCfg {
                gamma: vecf(r, c, 0.5, 1.5),
                beta: vecf(r, c, -0.5, 0.5),
                mean: vecf(r, c, -0.5, 0.5),
                var: vecf(r, c, 0.5, 2.0),
                eps: 1e-3,
            })
        };
        let x = g
            .push(
                "norm",
                Op::Normalize(NormalizeCfg {
                    scale: vec![1.0 / 127.5, 0.02, 0.01],
                    offset: vec![-1.0, -2.0, 0.5],
                }),
                &[INPUT],
            )
            .unwrap();
        let x = g
            .push(
                "c1",
                Op::Conv(ConvCfg::new(param(&mut r, vec![4, 3, 3, 3]), [2, 2], [0, 0, 1, 1], 1)),
                &[x],
            )
            .unwrap();
        let x = g.push("c1.bn", bn(&mut r, 4), &[x]).unwrap();
        let x = g.push("c1.relu", Op::Clip(Clamp::RELU6), &[x]).unwrap();
        let y = g
            .push(
                "dw",
                Op::Conv(ConvCfg::new(param(&mut r, vec![4, 1, 3, 3]), [1, 1], [1; 4], 4)),
                &[x],
            )
            .unwrap();
        let y = g.push("dw.bn", bn(&mut r, 4), &[y]).unwrap();
        let y = g.push("dw.relu", Op::Clip(Clamp::RELU), &[y]).unwrap();
        let _dead = g.push("dead", Op::Clip(Clamp::RELU), &[y]).unwrap();
        let y = g
            .push(
                "pw",
                Op::Conv(ConvCfg::new(param(&mut r, vec![4, 4, 1, 1]), [1, 1], [0; 4], 1)),
                &[y],
            )
            .unwrap();
        let y = g.push("pw.bn", bn(&mut r, 4), &[y]).unwrap();
        let y = g.push("add", Op::Add, &[x, y]).unwrap();
        let y = g.push("add.relu", Op::Clip(Clamp::RELU6), &[y]).unwrap();
        let y = g.push("gap", Op::GlobalAvgPool, &[y]).unwrap();
        let d = DenseCfg::new(param(&mut r, vec![5, 4]), Some(vecf(&mut r, 5, -1.0, 1.0)));
        let y = g.push("fc", Op::Dense(d), &[y]).unwrap();
        g.push("softmax", Op::Softmax, &[y]).unwrap();
        g
    }

    fn max_err(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
    }

    #[test]
    fn each_pass_preserves_the_function() {
        for (dtype, layout) in [(ElemType::U8, Layout::Nhwc), (ElemType::F32, Layout::Nchw)] {
            let mut g = sample(3, dtype, layout);
            let input = InputData::random(dtype, 3 * 81, 11);
            let want = run(&g, &input).unwrap();
            for pass in PIPELINE {
                (pass.run)(&mut g);
                g.verify().unwrap();
                let got = run(&g, &input).unwrap();
                let e = max_err(&want, &got);
                assert!(e < 1e-5, "{}: max abs error {e}", pass.name);
            }
            let kinds: Vec<&str> = g.nodes.iter().map(|n| n.op.kind()).collect();
            assert_eq!(kinds, ["Conv", "Conv", "Conv", "GlobalAvgPool", "Dense", "Softmax"]);
            assert_eq!(g.nodes[0].fused, ["norm", "c1.bn", "c1.relu"]);
            assert_eq!(g.nodes[2].fused, ["pw.bn", "add", "add.relu"]);
            let Op::Conv(pw) = &g.nodes[2].op else { panic!() };
            assert!(pw.residual && pw.clamp == Clamp::RELU6);
        }
    }

    #[test]
    fn optimize_reports_counts() {
        let (_, reports) = optimize(sample(5, ElemType::U8, Layout::Nhwc)).unwrap();
        let counts: Vec<(&str, usize)> = reports.iter().map(|r| (r.name, r.rewrites)).collect();
        assert_eq!(
            counts,
            [
                ("reshape_into_dense", 0),
                ("fold_affine", 0),
                ("fold_normalize", 1),
                ("fold_batchnorm", 3),
                ("fuse_residual", 1),
                ("fuse_hardswish", 0),
                ("fuse_activation", 3),
                ("remove_dead", 1)
            ]
        );
    }

    #[test]
    fn activation_before_add_blocks_residual_fusion() {
        // relu(conv(x)) + x must not become clamp(conv(x) + x).
        let mut r = Rng::new(1);
        let mut g = Graph::new(
            "t",
            "",
            InputSpec {
                dtype: ElemType::F32,
                layout: Layout::Nchw,
            },
            vec![1, 2, 3, 3],
        );
        let c = g
            .push(
                "c",
                Op::Conv(ConvCfg::new(param(&mut r, vec![2, 2, 1, 1]), [1, 1], [0; 4], 1)),
                &[INPUT],
            )
            .unwrap();
        let c = g.push("relu", Op::Clip(Clamp::RELU), &[c]).unwrap();
        g.push("add", Op::Add, &[c, INPUT]).unwrap();
        let input = InputData::random(ElemType::F32, 18, 2);
        let want = run(&g, &input).unwrap();
        let (g2, _) = optimize(g).unwrap();
        assert_eq!(g2.nodes.len(), 2);
        assert!(max_err(&want, &run(&g2, &input).unwrap()) < 1e-6);
    }
}
