//! Graph rewrites: small named passes, each followed by the IR verifier.
//!
//! Every pass preserves the graph's function up to float rounding; the tests
//! check each by running the reference interpreter before and after it.
//! Merged nodes are recorded in [`Node::fused`](crate::ir::Node::fused) so the
//! generated code can say where each layer came from.

use crate::ir::{
    Activation, Clamp, Graph, IntOut, Node, Op, QAddCfg, QConvCfg, QDenseCfg, QTableCfg, QType, TableStep, TensorId,
    Values,
};

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
        name: "fuse_hardswish_written_out",
        doc: "clip(x + 3, 0, 6) / 6 becomes HardSigmoid and x * clip(x + 3, 0, 6) / 6 HardSwish (paddle2onnx, older PyTorch and tf2onnx exports); clip(y, 0, 6) / 6 HardSigmoid(1/6, 0) (the + 3 folded into a bias by TFLite converters)",
        run: fuse_hardswish_written_out,
    },
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
pub fn optimize(mut g: Graph) -> Result<(Graph, Vec<PassReport>), crate::Error> {
    g.verify()
        .map_err(|e| format!("the front end built an invalid graph: {}", e.join("; ")))?;
    // Non-finite constants from the model, then any a fold made (a
    // BatchNorm's variance + epsilon of 0, a huge scale): either would
    // reach the generated code, which cannot spell them.
    let bad = g.check_constants();
    if !bad.is_empty() {
        return Err(bad.into());
    }
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
    let bad = g.check_constants();
    if !bad.is_empty() {
        return Err(bad.into());
    }
    Ok((g, reports))
}

/// A graph under rewriting: each tensor's readers and producer kept
/// current, removed nodes left as holes until [`Rw::finish`], so node
/// indices stay valid and each pass is one forward scan (linear in the
/// graph's size, where rescanning from the start after every rewrite with
/// a use count that was itself a scan, was cubic: 5,000 layers took 6 minutes).
struct Rw<'g> {
    g: &'g mut Graph,
    /// Per tensor: the live nodes reading it, once per input slot.
    readers: Vec<Vec<usize>>,
    /// Per tensor: the live node writing it.
    producer: Vec<Option<usize>>,
    dead: Vec<bool>,
}

impl<'g> Rw<'g> {
    fn new(g: &'g mut Graph) -> Rw<'g> {
        let mut readers = vec![Vec::new(); g.tensors.len()];
        let mut producer = vec![None; g.tensors.len()];
        for (k, n) in g.nodes.iter().enumerate() {
            for &t in &n.inputs {
                readers[t].push(k);
            }
            producer[n.output] = Some(k);
        }
        let dead = vec![false; g.nodes.len()];
        Rw {
            g,
            readers,
            producer,
            dead,
        }
    }

    fn len(&self) -> usize {
        self.g.nodes.len()
    }

    fn live(&self, k: usize) -> bool {
        !self.dead[k]
    }

    /// How often `t` is read (the graph output counts once).
    fn uses(&self, t: usize) -> usize {
        self.readers[t].len() + usize::from(self.g.output == t)
    }

    /// The nodes reading `t`, in graph order.
    fn consumers(&self, t: usize) -> Vec<usize> {
        let mut c = self.readers[t].clone();
        c.sort_unstable();
        c.dedup();
        c
    }

    fn producer(&self, t: usize) -> Option<usize> {
        self.producer[t]
    }

    /// Removes node `k` (its output must be unread or re-pointed after).
    fn remove(&mut self, k: usize) -> Node {
        self.dead[k] = true;
        let n = std::mem::replace(
            &mut self.g.nodes[k],
            Node {
                name: String::new(),
                op: Op::Add,
                inputs: Vec::new(),
                output: 0,
                fused: Vec::new(),
                source: String::new(),
            },
        );
        self.unread(k, &n.inputs);
        if self.producer[n.output] == Some(k) {
            self.producer[n.output] = None;
        }
        n
    }

    /// Node `k` no longer reads `inputs` (once per slot).
    fn unread(&mut self, k: usize, inputs: &[usize]) {
        for &t in inputs {
            let r = &mut self.readers[t];
            if let Some(p) = r.iter().position(|&x| x == k) {
                r.swap_remove(p);
            }
        }
    }

    /// Every read of `old` (node inputs, the graph output) reads `new`.
    fn replace_uses(&mut self, old: usize, new: usize) {
        let readers = std::mem::take(&mut self.readers[old]);
        for &k in &readers {
            for i in &mut self.g.nodes[k].inputs {
                if *i == old {
                    *i = new;
                }
            }
        }
        // Each reader once per slot: a node reading `old` twice is listed twice.
        self.readers[new].extend(readers);
        if self.g.output == old {
            self.g.output = new;
        }
    }

    /// Node `k` reads `inputs` instead of what it read.
    fn set_inputs(&mut self, k: usize, inputs: Vec<usize>) {
        let old = std::mem::take(&mut self.g.nodes[k].inputs);
        self.unread(k, &old);
        for &t in &inputs {
            self.readers[t].push(k);
        }
        self.g.nodes[k].inputs = inputs;
    }

    /// Finds, from node `from` on, a node `i` whose output feeds only node
    /// `j`, with `first(i)` and `second(j)`; returns `(i, j)`.
    fn find_pair(
        &self,
        from: usize,
        first: impl Fn(&Node) -> bool,
        second: impl Fn(&Node) -> bool,
    ) -> Option<(usize, usize)> {
        for i in from..self.len() {
            let n = &self.g.nodes[i];
            if !self.live(i) || !first(n) || self.uses(n.output) != 1 || self.g.output == n.output {
                continue;
            }
            if let [j] = self.readers[n.output][..] {
                if second(&self.g.nodes[j]) {
                    return Some((i, j));
                }
            }
        }
        None
    }

    /// Removes node `j` (a single-input, shape-preserving node merged into
    /// node `i`): readers of `j`'s output read `i`'s instead.
    fn absorb(&mut self, i: usize, j: usize) {
        let (out_i, out_j) = (self.g.nodes[i].output, self.g.nodes[j].output);
        let absorbed = self.remove(j);
        self.g.nodes[i].fused.push(absorbed.name);
        self.g.nodes[i].fused.extend(absorbed.fused);
        self.replace_uses(out_j, out_i);
    }

    /// Drops the removed nodes (the others keep their order).
    fn finish(self) {
        let dead = self.dead;
        let mut k = 0;
        self.g.nodes.retain(|_| {
            k += 1;
            !dead[k - 1]
        });
    }
}

/// Runs `rule` over the pairs `first -> second` from the start of the graph
/// to its end, resuming after each rewrite where `rule` says a new pair may
/// start (the rewritten node itself, as a chain `conv -> bn -> bn` folds
/// twice); returns the number of rewrites.
fn rewrite_pairs(
    g: &mut Graph,
    first: impl Fn(&Node) -> bool,
    second: impl Fn(&Node) -> bool,
    mut rule: impl FnMut(&mut Rw<'_>, usize, usize) -> usize,
) -> usize {
    let mut rw = Rw::new(g);
    let mut count = 0;
    let mut from = 0;
    while let Some((i, j)) = rw.find_pair(from, &first, &second) {
        from = rule(&mut rw, i, j);
        count += 1;
    }
    rw.finish();
    count
}

/// `Normalize -> Conv`: `w' = w * scale[ci]`, `b' = b + sum(w * offset[ci])`,
/// and the conv pads with the raw value that normalizes to 0 (`-offset/scale`)
/// so borders stay exact.
pub fn fold_normalize(g: &mut Graph) -> usize {
    rewrite_pairs(
        g,
        // A zero scale has no raw value that normalizes to 0, unless nothing is added.
        |n| matches!(&n.op, Op::Normalize(c) if c.offset.iter().all(|&o| o == 0.0) || c.scale.iter().all(|&s| s != 0.0)),
        |n| matches!(&n.op, Op::Conv(c) if c.pad_value.is_none() && !c.residual && c.weight.f32().is_some()),
        |rw, i, j| {
            let Op::Normalize(norm) = rw.g.nodes[i].op.clone() else {
                unreachable!()
            };
            let src = rw.g.nodes[i].inputs[0];
            let Op::Conv(conv) = &mut rw.g.nodes[j].op else {
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
            let removed = rw.remove(i);
            let mut inputs = rw.g.nodes[j].inputs.clone();
            inputs[0] = src;
            rw.set_inputs(j, inputs);
            rw.g.nodes[j].fused.insert(0, removed.name);
            // The conv now reads `src`: its producer may now pair with it.
            rw.producer(src).unwrap_or(i).min(i)
        },
    )
}

/// Applies a per-output-channel affine `y * s + t` (from `f(o) = (s, t)`)
/// to a conv: `w' = w * s`, `b' = b * s + t`, in f64.
fn scale_outputs(op: &mut Op, f: impl Fn(usize) -> (f64, f64)) {
    let (weight, bias) = match op {
        Op::Conv(c) => (&mut c.weight, &mut c.bias),
        Op::Dense(d) => (&mut d.weight, &mut d.bias),
        _ => unreachable!("callers check a plain conv or dense layer"),
    };
    let oc = weight.shape[0];
    let mut out_bias = bias.take().unwrap_or_else(|| vec![0.0; oc]);
    let wt = weight.f32_mut().expect("callers check f32 weights");
    let per = wt.len() / oc;
    for (o, (b, ws)) in out_bias.iter_mut().zip(wt.chunks_mut(per)).enumerate() {
        let (s, t) = f(o);
        for w in ws {
            *w = (*w as f64 * s) as f32;
        }
        *b = (*b as f64 * s + t) as f32;
    }
    *bias = Some(out_bias);
}

/// A linear conv: no epilogue yet, f32 weights.
fn plain_conv(n: &Node) -> bool {
    matches!(&n.op, Op::Conv(c) if c.clamp.is_none() && c.act == Activation::None && !c.residual && c.weight.f32().is_some())
}

/// A linear conv or dense layer (what a per-output-channel affine folds
/// into: a BatchNorm1d after a Gemm, for one).
fn plain_linear(n: &Node) -> bool {
    plain_conv(n)
        || matches!(&n.op, Op::Dense(d) if d.clamp.is_none() && d.act == Activation::None && d.weight.f32().is_some())
}

/// `Normalize -> Normalize` merged into one; `Conv -> Normalize` (a conv
/// without epilogue) folded: `w' = w * scale[o]`, `b' = b * scale[o] + offset[o]`.
pub fn fold_affine(g: &mut Graph) -> usize {
    // Absorbing `j` into `i` changes no earlier node's readers (`j` reads
    // only `i`), so each scan resumes at `i`.
    let merged = rewrite_pairs(
        g,
        |n| matches!(n.op, Op::Normalize(_)),
        |n| matches!(n.op, Op::Normalize(_)),
        |rw, i, j| {
            let Op::Normalize(second) = rw.g.nodes[j].op.clone() else {
                unreachable!()
            };
            let Op::Normalize(first) = &mut rw.g.nodes[i].op else {
                unreachable!()
            };
            for c in 0..first.scale.len() {
                first.offset[c] = first.offset[c] * second.scale[c] + second.offset[c];
                first.scale[c] *= second.scale[c];
            }
            rw.absorb(i, j);
            i
        },
    );
    merged
        + rewrite_pairs(
            g,
            plain_linear,
            |n| matches!(n.op, Op::Normalize(_)),
            |rw, i, j| {
                let Op::Normalize(aff) = rw.g.nodes[j].op.clone() else {
                    unreachable!()
                };
                scale_outputs(&mut rw.g.nodes[i].op, |o| (aff.scale[o] as f64, aff.offset[o] as f64));
                rw.absorb(i, j);
                i
            },
        )
}

/// `Conv -> BatchNorm` (or `Dense -> BatchNorm`): per output channel `s = gamma / sqrt(var + eps)`,
/// `w' = w * s`, `b' = (b - mean) * s + beta`.
pub fn fold_batchnorm(g: &mut Graph) -> usize {
    rewrite_pairs(
        g,
        plain_linear,
        |n| matches!(n.op, Op::BatchNorm(_)),
        |rw, i, j| {
            let Op::BatchNorm(bn) = rw.g.nodes[j].op.clone() else {
                unreachable!()
            };
            scale_outputs(&mut rw.g.nodes[i].op, |o| {
                let s = bn.gamma[o] as f64 / (bn.var[o] as f64 + bn.eps as f64).sqrt();
                (s, bn.beta[o] as f64 - bn.mean[o] as f64 * s)
            });
            rw.absorb(i, j);
            i
        },
    )
}

/// `Add(Conv(x), r)` where the conv has no clamp yet and `r` is computed
/// before the conv: the conv adds `r` in its epilogue.
pub fn fuse_residual(g: &mut Graph) -> usize {
    // One scan over the Adds: a fusion changes no earlier Add's inputs
    // (an earlier node cannot read the Add's output, and the conv's output
    // was read by the Add alone).
    let mut rw = Rw::new(g);
    let mut count = 0;
    for j in 0..rw.len() {
        if !rw.live(j) || !matches!(rw.g.nodes[j].op, Op::Add) {
            continue;
        }
        for side in 0..2 {
            let (a, r) = (rw.g.nodes[j].inputs[side], rw.g.nodes[j].inputs[1 - side]);
            let Some(i) = rw.producer(a) else { continue };
            let fusable =
                plain_conv(&rw.g.nodes[i]) && rw.uses(a) == 1 && a != r && rw.producer(r).is_none_or(|p| p < i);
            if !fusable {
                continue;
            }
            let Op::Conv(conv) = &mut rw.g.nodes[i].op else {
                unreachable!()
            };
            conv.residual = true;
            let mut inputs = rw.g.nodes[i].inputs.clone();
            inputs.push(r);
            rw.set_inputs(i, inputs);
            rw.absorb(i, j);
            count += 1;
            break;
        }
    }
    rw.finish();
    count
}

/// `Conv -> Clip`: the clip becomes (or tightens) the conv's epilogue clamp
/// (also a dense layer's, and a dynamically quantized layer's: its clamp
/// comes last, as the Clip does).
pub fn fuse_activation(g: &mut Graph) -> usize {
    /// The epilogue of a conv or dense layer, if its activation is still free.
    fn epilogue(op: &mut Op) -> Option<(&mut Clamp, &mut Activation)> {
        match op {
            Op::Conv(c) if c.act == Activation::None => Some((&mut c.clamp, &mut c.act)),
            Op::Dense(d) if d.act == Activation::None => Some((&mut d.clamp, &mut d.act)),
            _ => None,
        }
    }
    rewrite_pairs(
        g,
        |n| {
            matches!(&n.op, Op::Conv(c) if c.act == Activation::None)
                || matches!(&n.op, Op::Dense(d) if d.act == Activation::None)
        },
        |n| matches!(n.op, Op::Clip(_) | Op::Activation(_)),
        |rw, i, j| {
            let next = rw.g.nodes[j].op.clone();
            let (clamp, act) = epilogue(&mut rw.g.nodes[i].op).expect("matched above");
            match next {
                Op::Clip(c) => *clamp = clamp.then(c),
                Op::Activation(a) => *act = a,
                _ => unreachable!(),
            }
            rw.absorb(i, j);
            i
        },
    ) + rewrite_pairs(
        g,
        |n| matches!(n.op, Op::DynQLayer(_)),
        |n| matches!(n.op, Op::Clip(_)),
        |rw, i, j| {
            let Op::Clip(c) = rw.g.nodes[j].op else {
                unreachable!("matched above")
            };
            if let Op::DynQLayer(d) = &mut rw.g.nodes[i].op {
                d.clamp = d.clamp.then(c);
            }
            rw.absorb(i, j);
            i
        },
    )
}

/// Hard-swish and hard-sigmoid written out with Add, Clip, Mul and Div (as
/// paddle2onnx, older PyTorch exports and tf2onnx write them; the front
/// end reads `x + 3` and `/ 6` as per-channel affines): `clip(x + 3, 0, 6)
/// / 6` becomes `HardSigmoid(1/6, 1/2)` and `x * clip(x + 3, 0, 6) / 6`,
/// with the division before or after the product, `HardSwish`. Runs
/// first, before the affines fold into neighbouring convolutions. The
/// results may differ from the written-out float ops in the last bits
/// (one rounding instead of four).
pub fn fuse_hardswish_written_out(g: &mut Graph) -> usize {
    let mut rw = Rw::new(g);
    let mut count = 0;
    let uniform = |op: &Op, scale: f32, offset: f32| {
        matches!(op, Op::Normalize(c)
            if c.scale.iter().all(|&s| (s - scale).abs() <= 1e-6 * scale.abs().max(1.0))
                && c.offset.iter().all(|&o| (o - offset).abs() <= 1e-6 * offset.abs().max(1.0)))
    };
    let relu6 = |op: &Op| matches!(op, Op::Clip(c) if c.min == 0.0 && c.max == 6.0);
    // Node `k` as `clip(x + 3, 0, 6)`: its Add node and `x`.
    let clip_of_plus3 = |rw: &Rw<'_>, k: usize| -> Option<(usize, TensorId)> {
        if !relu6(&rw.g.nodes[k].op) {
            return None;
        }
        let t = rw.g.nodes[k].inputs[0];
        let a = rw.producer(t).filter(|_| rw.uses(t) == 1 && rw.g.output != t)?;
        uniform(&rw.g.nodes[a].op, 1.0, 3.0).then(|| (a, rw.g.nodes[a].inputs[0]))
    };
    // First `clip(x + 3, 0, 6) / 6` -> HardSigmoid (then `x * HardSigmoid(x)`
    // is fuse_hardswish's); then `(x * clip(x + 3, 0, 6)) / 6` -> HardSwish.
    for j in 0..rw.len() {
        if !rw.live(j) || !uniform(&rw.g.nodes[j].op, 1.0 / 6.0, 0.0) {
            continue;
        }
        let t = rw.g.nodes[j].inputs[0];
        let Some(k) = rw.producer(t).filter(|_| rw.uses(t) == 1 && rw.g.output != t) else {
            continue;
        };
        if let Some((a, x)) = clip_of_plus3(&rw, k) {
            let names = [rw.remove(a).name, rw.remove(k).name];
            rw.g.nodes[j].op = Op::Activation(Activation::HardSigmoid {
                alpha: 1.0 / 6.0,
                beta: 0.5,
            });
            rw.set_inputs(j, vec![x]);
            rw.g.nodes[j].fused.splice(0..0, names);
            count += 1;
            continue;
        }
        // `clip(y, 0, 6) / 6` with the + 3 already folded into the bias of
        // the layer before (TFLite converters): HardSigmoid(1/6, 0).
        if relu6(&rw.g.nodes[k].op) {
            let y = rw.g.nodes[k].inputs[0];
            let name = rw.remove(k).name;
            rw.g.nodes[j].op = Op::Activation(Activation::HardSigmoid {
                alpha: 1.0 / 6.0,
                beta: 0.0,
            });
            rw.set_inputs(j, vec![y]);
            rw.g.nodes[j].fused.insert(0, name);
            count += 1;
            continue;
        }
        if !matches!(rw.g.nodes[k].op, Op::Mul) {
            continue;
        }
        for side in 0..2 {
            let (x, c) = (rw.g.nodes[k].inputs[side], rw.g.nodes[k].inputs[1 - side]);
            let Some(ck) = rw.producer(c).filter(|_| rw.uses(c) == 1 && rw.g.output != c) else {
                continue;
            };
            match clip_of_plus3(&rw, ck) {
                Some((a, x2)) if x2 == x => {
                    let names = [rw.remove(a).name, rw.remove(ck).name, rw.remove(k).name];
                    rw.g.nodes[j].op = Op::Activation(Activation::HardSwish);
                    rw.set_inputs(j, vec![x]);
                    rw.g.nodes[j].fused.splice(0..0, names);
                    count += 1;
                    break;
                }
                _ => {}
            }
        }
    }
    rw.finish();
    count
}

/// `Mul(x, HardSigmoid(x))` with alpha 1/6 and beta 1/2 (how PyTorch exports
/// HardSwish before opset 14) becomes `HardSwish(x)`.
pub fn fuse_hardswish(g: &mut Graph) -> usize {
    // One scan over the Muls: a rewrite only lowers how often `x` is read,
    // which cannot make an earlier Mul's HardSigmoid read once.
    let mut rw = Rw::new(g);
    let mut count = 0;
    for j in 0..rw.len() {
        if !rw.live(j) || !matches!(rw.g.nodes[j].op, Op::Mul) {
            continue;
        }
        for side in 0..2 {
            let (x, h) = (rw.g.nodes[j].inputs[side], rw.g.nodes[j].inputs[1 - side]);
            let Some(i) = rw.producer(h) else { continue };
            let is_hs = matches!(rw.g.nodes[i].op, Op::Activation(Activation::HardSigmoid { alpha, beta })
                if (alpha - 1.0 / 6.0).abs() < 1e-6 && (beta - 0.5).abs() < 1e-6);
            if !is_hs || rw.g.nodes[i].inputs[0] != x || rw.uses(h) != 1 || rw.g.output == h {
                continue;
            }
            let hs_name = rw.remove(i).name;
            rw.g.nodes[j].op = Op::Activation(Activation::HardSwish);
            rw.set_inputs(j, vec![x]);
            rw.g.nodes[j].fused.insert(0, hs_name);
            count += 1;
            break;
        }
    }
    rw.finish();
    count
}

/// `Dense(Reshape(x))` where the reshape keeps the batch dim and flattens
/// the rest: the dense layer reads `x` (it flattens in the same NCHW order).
/// Also removes reshapes to the shape they already have.
pub fn reshape_into_dense(g: &mut Graph) -> usize {
    let mut rw = Rw::new(g);
    let mut count = 0;
    let mut from = 0;
    loop {
        let found = (from..rw.len()).find_map(|i| {
            if !rw.live(i) {
                return None;
            }
            let Op::Reshape(to) = &rw.g.nodes[i].op else {
                return None;
            };
            let (x, y) = (rw.g.nodes[i].inputs[0], rw.g.nodes[i].output);
            if &rw.g.tensors[x].shape == to && rw.g.output != y {
                return Some((i, x, y));
            }
            let readers = rw.consumers(y);
            let flatten = to.len() == 2 && rw.g.tensors[x].shape.first() == to.first();
            let only_dense = !readers.is_empty() && readers.iter().all(|&j| matches!(rw.g.nodes[j].op, Op::Dense(_)));
            (flatten && only_dense && rw.g.output != y).then_some((i, x, y))
        });
        let Some((i, x, y)) = found else { break };
        let name = rw.g.nodes[i].name.clone();
        for j in rw.consumers(y) {
            rw.g.nodes[j].fused.insert(0, name.clone());
        }
        rw.remove(i);
        rw.replace_uses(y, x);
        count += 1;
        // `x`'s readers changed: a reshape that made `x` may now qualify.
        from = rw.producer(x).unwrap_or(i).min(i);
    }
    rw.finish();
    count
}

/// A QDQ model's groups `DequantizeLinear -> op -> QuantizeLinear` become
/// the integer layers onnxruntime's graph optimizer makes of them (its
/// `QDQSelectorActionTransformer`, default optimizations), so that the
/// results are the ones it computes. Not a pass of [`PIPELINE`]: it
/// changes results (integer requantization where the graph says float),
/// so the ONNX front end applies it, and the reference interpreter runs
/// the integer graph, the model as onnxruntime computes it.
///
/// * `DQ(x) -> Conv(DQ(w), DQ(int32 bias)) [-> Relu/Clip] -> Q`: `QConv`
///   (QLinearConv), the int32 bias as it is; a Relu or Clip only where the
///   Q's range makes it redundant (else the group stays float);
/// * `DQ(x) -> Gemm(DQ(w), DQ(int32 bias)) -> Q`: `QDense` (QGemm);
/// * `DQ(a), DQ(b) -> Add -> Q`: `QAdd` (QLinearAdd);
/// * `DQ(x) -> GlobalAveragePool -> Q`: `QGlobalAvgPool`;
/// * `DQ(x) -> MaxPool -> Q` and `DQ(x) -> Reshape/Flatten -> Q` with the
///   same scale and zero point on both sides: the pool or reshape of the
///   integers.
///
/// Every group needs its input and output of one 8-bit type, quantized per
/// tensor, the op's output read by the Q alone, and weights of 8 bits per
/// tensor or per output channel. A group that does not qualify stays as it
/// is, in float. The Dequantize nodes left unread go with `remove_dead`.
pub fn fuse_qdq(g: &mut Graph) -> usize {
    let mut rw = Rw::new(g);
    let mut count = 0;
    for j in 0..rw.len() {
        if !rw.live(j) {
            continue;
        }
        let Op::Quantize(out) = rw.g.nodes[j].op else {
            continue;
        };
        let Some((op, inputs, removed)) = qdq_group(&rw, j, out) else {
            continue;
        };
        let mut fused = Vec::new();
        let mut name = None;
        let mut source = String::new();
        for &k in &removed {
            let n = rw.remove(k);
            fused.extend(n.fused);
            if name.is_none() {
                name = Some(n.name);
                source = n.source;
            } else {
                fused.push(n.name);
            }
        }
        let node = &mut rw.g.nodes[j];
        let q_name = std::mem::replace(&mut node.name, name.unwrap_or_default());
        fused.push(q_name);
        node.fused.extend(fused);
        node.source = format!("{source} (QDQ)");
        node.op = op;
        rw.set_inputs(j, inputs);
        count += 1;
    }
    rw.finish();
    count
}

/// The integer op, its inputs and the nodes it replaces (the op, then a
/// Clip) for the group ending in Quantize node `j` writing `out`, if the
/// group qualifies (see [`fuse_qdq`]).
fn qdq_group(rw: &Rw<'_>, j: usize, out: QType) -> Option<(Op, Vec<TensorId>, Vec<usize>)> {
    let g = &*rw.g;
    // The op before the Q, read by the Q alone; a Clip between them.
    let single = |t: TensorId| rw.uses(t) == 1 && g.output != t;
    let t = g.nodes[j].inputs[0];
    let mut p = rw.producer(t).filter(|_| single(t))?;
    if let Some(group) = table_group(rw, p, out) {
        return Some(group);
    }
    let mut removed = Vec::new();
    if let Op::Clip(c) = &g.nodes[p].op {
        if !clip_redundant(c, &out) {
            return None;
        }
        let t = g.nodes[p].inputs[0];
        removed.push(p);
        p = rw.producer(t).filter(|_| single(t))?;
    }
    removed.insert(0, p);
    let clipped = removed.len() > 1;
    // Input `k` of node `p` as `DQ(x)`: x and its type, of `out`'s elem.
    let dq = |k: usize| -> Option<(TensorId, QType)> {
        let d = rw.producer(g.nodes[p].inputs[k])?;
        if !matches!(g.nodes[d].op, Op::Dequantize) {
            return None;
        }
        let x = g.nodes[d].inputs[0];
        let q = g.tensors[x].ty.qtype()?;
        (q.elem == out.elem).then_some((x, q))
    };
    let int_weight = |w: &crate::ir::Param| {
        matches!(w.values, Values::I8(_) | Values::U8(_))
            && w.quant.as_ref().is_some_and(|q| q.axis.is_none_or(|a| a == 0))
    };
    let (op, inputs) = match &g.nodes[p].op {
        Op::Conv(c)
            if int_weight(&c.weight)
                && c.clamp.is_none()
                && c.act == Activation::None
                && !c.residual
                && c.pad_value.is_none()
                && (c.bias.is_none() || c.qbias.is_some()) =>
        {
            let (x, _) = dq(0)?;
            let op = Op::QConv(QConvCfg {
                weight: c.weight.clone(),
                bias: c.qbias.clone(),
                stride: c.stride,
                pads: c.pads,
                groups: c.groups,
                out: IntOut::Requant(out),
            });
            (op, vec![x])
        }
        Op::Dense(d)
            if int_weight(&d.weight)
                && d.clamp.is_none()
                && d.act == Activation::None
                && (d.bias.is_none() || d.qbias.is_some()) =>
        {
            let (x, _) = dq(0)?;
            let op = Op::QDense(QDenseCfg {
                weight: d.weight.clone(),
                bias: d.qbias.clone(),
                out: IntOut::Requant(out),
            });
            (op, vec![x])
        }
        Op::Add if !clipped => {
            let ((a, _), (b, _)) = (dq(0)?, dq(1)?);
            (Op::QAdd(QAddCfg { rhs: None, out }), vec![a, b])
        }
        Op::Mul if !clipped => {
            let ((a, _), (b, _)) = (dq(0)?, dq(1)?);
            (Op::QMul(out), vec![a, b])
        }
        Op::Softmax if !clipped => (Op::QSoftmax(out), vec![dq(0)?.0]),
        // onnxruntime fuses a GlobalAveragePool, not a ReduceMean (which it
        // computes in float, on NHWC data after its layout pass).
        Op::GlobalAvgPool if !clipped && g.nodes[p].source == "ReduceMean" => {
            (Op::QMean { out, pool: false }, vec![dq(0)?.0])
        }
        Op::GlobalAvgPool if !clipped => (Op::QGlobalAvgPool(out), vec![dq(0)?.0]),
        // onnxruntime drops the Q/DQ pair around a MaxPool of one scale and
        // zero point: the pool runs on the integers.
        Op::MaxPool(p) if !clipped => {
            let (x, q) = dq(0)?;
            if q.scale.to_bits() != out.scale.to_bits() || q.zero_point != out.zero_point {
                return None;
            }
            (Op::MaxPool(*p), vec![x])
        }
        Op::Reshape(shape) if !clipped => {
            let (x, q) = dq(0)?;
            if q.scale.to_bits() != out.scale.to_bits() || q.zero_point != out.zero_point {
                return None;
            }
            (Op::Reshape(shape.clone()), vec![x])
        }
        _ => return None,
    };
    Some((op, inputs, removed))
}

/// `DQ(x) -> HardSigmoid/Clip/Sigmoid ... -> Q` ending at node `p` (the last
/// float step), each step read by the next alone: a [`Op::QTable`] of
/// `x` (8-bit, per tensor), the steps exact in `f32` as onnxruntime
/// computes them. (HardSwish is left out: onnxruntime's formula is not
/// [`Activation::apply`]'s.)
fn table_group(rw: &Rw<'_>, p: usize, out: QType) -> Option<(Op, Vec<TensorId>, Vec<usize>)> {
    let g = &*rw.g;
    let single = |t: TensorId| rw.uses(t) == 1 && g.output != t;
    let mut steps = Vec::new();
    let mut k = p;
    loop {
        match &g.nodes[k].op {
            Op::Activation(Activation::HardSigmoid { alpha, beta }) => steps.push((
                k,
                TableStep::HardSigmoid {
                    alpha: *alpha,
                    beta: *beta,
                },
            )),
            Op::Clip(c) => steps.push((k, TableStep::Clip(*c))),
            // onnxruntime fuses it into a QLinearSigmoid, whose table is the
            // same function.
            Op::Sigmoid => steps.push((k, TableStep::Logistic)),
            Op::Dequantize if !steps.is_empty() => break,
            _ => return None,
        }
        let t = g.nodes[k].inputs[0];
        k = rw.producer(t)?;
        if !matches!(g.nodes[k].op, Op::Dequantize) && !single(t) {
            return None;
        }
    }
    let x = g.nodes[k].inputs[0];
    g.tensors[x].ty.qtype()?;
    steps.reverse();
    let op = Op::QTable(QTableCfg {
        steps: steps.iter().map(|&(_, s)| s).collect(),
        out,
    });
    Some((op, vec![x], steps.iter().map(|&(k, _)| k).collect()))
}

/// Whether clamping to `c` before quantizing to `q` changes nothing:
/// onnxruntime's `IsClipMadeRedundantByQ` (a Relu when the zero point is
/// the type's minimum; a Clip whose bounds lie, within `f32::EPSILON`,
/// outside the range `q` can represent).
fn clip_redundant(c: &Clamp, q: &QType) -> bool {
    let (lo, hi) = q.range();
    if *c == Clamp::RELU {
        return q.zero_point == lo;
    }
    let lower = (lo - q.zero_point) as f32 * q.scale;
    let upper = (hi - q.zero_point) as f32 * q.scale;
    let eps = f32::EPSILON;
    !(eps < c.min - lower || eps < upper - c.max)
}

/// Removes nodes whose output is never read and is not the graph output.
pub fn remove_dead(g: &mut Graph) -> usize {
    // One sweep from the output back (nodes are in topological order, so a
    // node's readers come after it): linear in the graph's size, where
    // removing one dead node at a time was quadratic.
    let mut uses = vec![0usize; g.tensors.len()];
    for n in &g.nodes {
        for &i in &n.inputs {
            uses[i] += 1;
        }
    }
    uses[g.output] += 1;
    let mut live = vec![true; g.nodes.len()];
    for (k, n) in g.nodes.iter().enumerate().rev() {
        if uses[n.output] == 0 {
            live[k] = false;
            for &i in &n.inputs {
                uses[i] -= 1;
            }
        }
    }
    let before = g.nodes.len();
    let mut k = 0;
    g.nodes.retain(|_| {
        k += 1;
        live[k - 1]
    });
    before - g.nodes.len()
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
                ("fuse_hardswish_written_out", 0),
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
