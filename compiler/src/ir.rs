//! The typed graph IR.
//!
//! A [`Graph`] is a list of [`Node`]s in topological order over tensors
//! numbered by [`TensorId`]. Tensor 0 is the model input. Every node has one
//! output. Shapes are logical NCHW (`[n, c, h, w]`, or `[n, c]` after a dense
//! layer) whatever the layout the generated code uses; constant tensors
//! (weights) live inside the op configs.
//!
//! Invariants (checked by [`Graph::verify`], run after every pass):
//! * every input of a node is the graph input or the output of an earlier node;
//! * every tensor but the input has exactly one producer;
//! * the recorded shape of every tensor equals the shape inferred from its
//!   producer and that producer's inputs;
//! * every op config is consistent with its input shapes (weights, bias, BN
//!   and normalization vectors of the right lengths, non-zero strides, ...).

pub use mncc_abi::Activation;
use std::fmt;

/// Index of a tensor in [`Graph::tensors`].
pub type TensorId = usize;

/// Element type of the model input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 8-bit unsigned pixels.
    U8,
}

impl DType {
    /// Rust type name used by generated code.
    pub fn rust_name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::U8 => "u8",
        }
    }
}

/// Memory layout of the model input as callers provide it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Channels last.
    Nhwc,
    /// Channels first.
    Nchw,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Nhwc => "NHWC",
            Layout::Nchw => "NCHW",
        })
    }
}

/// The model input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    /// Element type.
    pub dtype: DType,
    /// Layout of the caller's buffer.
    pub layout: Layout,
}

/// A constant tensor (weights), row-major in its `shape`.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl Param {
    /// A parameter of the given shape and values.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Param {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Param { shape, data }
    }
}

/// Output clamp applied after bias (and residual): `min = 0` is ReLU,
/// `[0, 6]` ReLU6, infinite bounds no activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clamp {
    /// Lower bound.
    pub min: f32,
    /// Upper bound.
    pub max: f32,
}

impl Clamp {
    /// No clamping.
    pub const NONE: Clamp = Clamp {
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    };
    /// ReLU.
    pub const RELU: Clamp = Clamp {
        min: 0.0,
        max: f32::INFINITY,
    };
    /// ReLU6.
    pub const RELU6: Clamp = Clamp { min: 0.0, max: 6.0 };

    /// Whether this clamp does nothing.
    pub fn is_none(&self) -> bool {
        *self == Clamp::NONE
    }

    /// Applies `self` then `then` (the tighter of the two).
    pub fn then(&self, then: Clamp) -> Clamp {
        Clamp {
            min: self.min.max(then.min).min(then.max),
            max: self.max.min(then.max).max(then.min),
        }
    }

    /// Human name: "relu", "relu6", "none" or "clamp[a,b]".
    pub fn describe(&self) -> String {
        if self.is_none() {
            "none".into()
        } else if *self == Clamp::RELU {
            "relu".into()
        } else if *self == Clamp::RELU6 {
            "relu6".into()
        } else {
            format!("clamp[{}, {}]", self.min, self.max)
        }
    }
}

/// A 2-D convolution and its fused epilogue.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvCfg {
    /// `[out_c, in_c / groups, kh, kw]`.
    pub weight: Param,
    /// One per output channel.
    pub bias: Option<Vec<f32>>,
    /// `[vertical, horizontal]`.
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// 1 (full) or `in_c` (depthwise); other values are rejected by the verifier.
    pub groups: usize,
    /// Value that reads outside the input see, per input channel (set when an
    /// input normalization was folded into this conv); `None` is zeros.
    pub pad_value: Option<Vec<f32>>,
    /// Epilogue clamp.
    pub clamp: Clamp,
    /// If true the node has a second input, added before the clamp.
    pub residual: bool,
    /// Epilogue activation, after the clamp.
    pub act: Activation,
}

impl ConvCfg {
    /// A plain conv (no bias, no epilogue).
    pub fn new(weight: Param, stride: [usize; 2], pads: [usize; 4], groups: usize) -> ConvCfg {
        ConvCfg {
            weight,
            bias: None,
            stride,
            pads,
            groups,
            pad_value: None,
            clamp: Clamp::NONE,
            residual: false,
            act: Activation::None,
        }
    }
    /// Output channels.
    pub fn out_c(&self) -> usize {
        self.weight.shape[0]
    }
    /// The weight's dims `[out_c, in_c / groups, kh, kw]` (a 4-D weight is a
    /// verifier invariant).
    pub fn dims(&self) -> [usize; 4] {
        let w = &self.weight.shape;
        [w[0], w[1], w[2], w[3]]
    }
    /// `[kh, kw]`.
    pub fn kernel(&self) -> [usize; 2] {
        [self.weight.shape[2], self.weight.shape[3]]
    }
}

/// Inference-mode BatchNorm: `(x - mean) / sqrt(var + eps) * gamma + beta`.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormCfg {
    /// Scale.
    pub gamma: Vec<f32>,
    /// Shift.
    pub beta: Vec<f32>,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
    /// Epsilon.
    pub eps: f32,
}

/// A fully connected layer on the flattened input: `[n, k] -> [n, out]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseCfg {
    /// `[out, k]` where `k` is the product of the input's non-batch dims
    /// (flattened in NCHW order).
    pub weight: Param,
    /// One per output.
    pub bias: Option<Vec<f32>>,
    /// Epilogue clamp.
    pub clamp: Clamp,
    /// Epilogue activation, after the clamp.
    pub act: Activation,
}

impl DenseCfg {
    /// A dense layer with no epilogue activation.
    pub fn new(weight: Param, bias: Option<Vec<f32>>) -> DenseCfg {
        DenseCfg {
            weight,
            bias,
            clamp: Clamp::NONE,
            act: Activation::None,
        }
    }
}

/// Per-channel affine input normalization `x * scale[c] + offset[c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizeCfg {
    /// Multiplier per channel.
    pub scale: Vec<f32>,
    /// Addend per channel.
    pub offset: Vec<f32>,
}

/// An operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Input normalization (folded into the first conv by a pass).
    Normalize(NormalizeCfg),
    /// Convolution with epilogue.
    Conv(ConvCfg),
    /// BatchNorm (folded into the conv before it by a pass).
    BatchNorm(BatchNormCfg),
    /// `clamp(x, min, max)`: ReLU, ReLU6 (fused into the conv before it).
    Clip(Clamp),
    /// Elementwise sum of two tensors of the same shape.
    Add,
    /// Mean over the spatial dims: `[n, c, h, w] -> [n, c, 1, 1]`.
    GlobalAvgPool,
    /// Fully connected layer.
    Dense(DenseCfg),
    /// Softmax over the last dim of `[n, k]`.
    Softmax,
    /// A standalone activation (fused into the conv or dense layer before it by a pass).
    Activation(Activation),
    /// `x * s` where `s` has `x`'s shape or is `[n, c, 1, 1]` (broadcast over
    /// pixels: squeeze-and-excitation).
    Mul,
    /// Same elements, new shape (NCHW order): Flatten, Reshape, Squeeze,
    /// Unsqueeze. Lowered to nothing when the NHWC storage order is the same.
    Reshape(Vec<usize>),
}

impl Op {
    /// Short name, as shown by `mncc inspect` and in errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Normalize(_) => "Normalize",
            Op::Conv(_) => "Conv",
            Op::BatchNorm(_) => "BatchNorm",
            Op::Clip(_) => "Clip",
            Op::Add => "Add",
            Op::GlobalAvgPool => "GlobalAvgPool",
            Op::Dense(_) => "Dense",
            Op::Softmax => "Softmax",
            Op::Reshape(_) => "Reshape",
            Op::Activation(_) => "Activation",
            Op::Mul => "Mul",
        }
    }

    /// Number of tensor inputs this op takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Add | Op::Mul => 2,
            Op::Conv(c) if c.residual => 2,
            _ => 1,
        }
    }

    /// Parameters (weights and biases, BN statistics) held by this op.
    pub fn params(&self) -> usize {
        match self {
            Op::Conv(c) => c.weight.data.len() + c.bias.as_ref().map_or(0, Vec::len),
            Op::Dense(d) => d.weight.data.len() + d.bias.as_ref().map_or(0, Vec::len),
            Op::BatchNorm(b) => 4 * b.gamma.len(),
            Op::Normalize(n) => 2 * n.scale.len(),
            _ => 0,
        }
    }

    /// Infers the output shape from the input shapes, checking the config.
    // Negated comparisons on purpose: they also reject NaN.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        if inputs.len() != self.arity() {
            return Err(format!("takes {} input(s), has {}", self.arity(), inputs.len()));
        }
        let x = inputs[0];
        let per_channel = |what: &str, len: usize, c: usize| -> Result<(), String> {
            if len == c {
                Ok(())
            } else {
                Err(format!("{what} has {len} values for {c} channels"))
            }
        };
        match self {
            Op::Normalize(n) => {
                let [_, c, _, _] = nchw(x)?;
                per_channel("scale", n.scale.len(), c)?;
                per_channel("offset", n.offset.len(), c)?;
                Ok(x.to_vec())
            }
            Op::Conv(cfg) => {
                let [n, c, h, w] = nchw(x)?;
                let ws = &cfg.weight.shape;
                if ws.len() != 4 {
                    return Err(format!("weight must be 4-D [out, in/groups, kh, kw], is {ws:?}"));
                }
                let (oc, icg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
                if cfg.groups == 0 || c % cfg.groups != 0 || oc % cfg.groups != 0 {
                    return Err(format!(
                        "groups = {} does not divide {c} input and {oc} output channels",
                        cfg.groups
                    ));
                }
                if cfg.groups != 1 && !(cfg.groups == c && oc == c) {
                    return Err(format!(
                        "groups = {} with {c} input and {oc} output channels: only full (groups = 1) and depthwise (groups = channels) convolutions are supported",
                        cfg.groups
                    ));
                }
                if icg * cfg.groups != c {
                    return Err(format!(
                        "weight {ws:?} expects {} input channels, input has {c}",
                        icg * cfg.groups
                    ));
                }
                if kh == 0 || kw == 0 || cfg.stride[0] == 0 || cfg.stride[1] == 0 {
                    return Err(format!("kernel {kh}x{kw} and stride {:?} must be non-zero", cfg.stride));
                }
                if let Some(b) = &cfg.bias {
                    per_channel("bias", b.len(), oc)?;
                }
                if let Some(p) = &cfg.pad_value {
                    per_channel("pad_value", p.len(), c)?;
                }
                let [pt, pl, pb, pr] = cfg.pads;
                if pt >= kh || pb >= kh || pl >= kw || pr >= kw {
                    return Err(format!(
                        "pads {:?} must each be smaller than the kernel {kh}x{kw}",
                        cfg.pads
                    ));
                }
                let (hp, wp) = (h + pt + pb, w + pl + pr);
                if hp < kh || wp < kw {
                    return Err(format!("kernel {kh}x{kw} is larger than the padded input {hp}x{wp}"));
                }
                let out = vec![n, oc, (hp - kh) / cfg.stride[0] + 1, (wp - kw) / cfg.stride[1] + 1];
                if cfg.residual && inputs[1] != out.as_slice() {
                    return Err(format!(
                        "residual input {:?} does not match the output {out:?}",
                        inputs[1]
                    ));
                }
                Ok(out)
            }
            Op::BatchNorm(b) => {
                let [_, c, _, _] = nchw(x)?;
                for (name, v) in [
                    ("gamma", &b.gamma),
                    ("beta", &b.beta),
                    ("mean", &b.mean),
                    ("var", &b.var),
                ] {
                    per_channel(name, v.len(), c)?;
                }
                if let Some(i) = b.var.iter().position(|&v| !(v + b.eps > 0.0)) {
                    return Err(format!("var[{i}] + eps = {} is not positive", b.var[i] + b.eps));
                }
                Ok(x.to_vec())
            }
            Op::Clip(c) => {
                if !(c.min <= c.max) {
                    return Err(format!("min {} > max {}", c.min, c.max));
                }
                Ok(x.to_vec())
            }
            Op::Add => {
                if inputs[0] != inputs[1] {
                    return Err(format!("shapes {:?} and {:?} differ", inputs[0], inputs[1]));
                }
                Ok(x.to_vec())
            }
            Op::GlobalAvgPool => {
                let [n, c, _, _] = nchw(x)?;
                Ok(vec![n, c, 1, 1])
            }
            Op::Activation(_) => Ok(x.to_vec()),
            Op::Mul => {
                let s = inputs[1];
                let broadcast = x.len() == 4 && s.len() == 4 && s[0] == x[0] && s[1] == x[1] && s[2] == 1 && s[3] == 1;
                if s != x && !broadcast {
                    return Err(format!(
                        "cannot multiply {x:?} by {s:?} (same shape or [n, c, 1, 1] expected)"
                    ));
                }
                Ok(x.to_vec())
            }
            Op::Dense(d) => {
                if x.len() < 2 {
                    return Err(format!("input must have a batch dim and features, is {x:?}"));
                }
                let k: usize = x[1..].iter().product();
                let ws = &d.weight.shape;
                if ws.len() != 2 || ws[1] != k {
                    return Err(format!(
                        "weight {ws:?} does not fit {k} input features (expected [out, {k}])"
                    ));
                }
                if let Some(b) = &d.bias {
                    per_channel("bias", b.len(), ws[0])?;
                }
                Ok(vec![x[0], ws[0]])
            }
            Op::Softmax => {
                if x.len() != 2 {
                    return Err(format!("input must be [n, k], is {x:?}"));
                }
                Ok(x.to_vec())
            }
            Op::Reshape(shape) => {
                let (a, b) = (x.iter().product::<usize>(), shape.iter().product::<usize>());
                if a != b {
                    return Err(format!(
                        "cannot reshape {x:?} ({a} elements) into {shape:?} ({b} elements)"
                    ));
                }
                Ok(shape.clone())
            }
        }
    }

    /// Multiply-accumulates for one run, given the output shape.
    pub fn macs(&self, out: &[usize]) -> u64 {
        let n: usize = out.iter().product();
        match self {
            Op::Conv(c) => {
                let ws = &c.weight.shape;
                (n * ws[1] * ws[2] * ws[3]) as u64
            }
            Op::Dense(d) => (n * d.weight.shape[1]) as u64,
            _ => 0,
        }
    }
}

fn nchw(x: &[usize]) -> Result<[usize; 4], String> {
    match *x {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(format!("input must be 4-D [n, c, h, w], is {x:?}")),
    }
}

/// A tensor's static description.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Name (for messages and generated comments).
    pub name: String,
    /// Logical NCHW shape.
    pub shape: Vec<usize>,
}

impl TensorInfo {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One operation applied to tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Unique name, from the front end (a layer name or an ONNX node name).
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// Input tensors.
    pub inputs: Vec<TensorId>,
    /// Output tensor.
    pub output: TensorId,
    /// Names of nodes that passes merged into this one, in order.
    pub fused: Vec<String>,
}

/// A model.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// Model name.
    pub name: String,
    /// Free-form description (architecture, width, resolution).
    pub description: String,
    /// How callers provide tensor 0.
    pub input: InputSpec,
    /// All tensors; index 0 is the input.
    pub tensors: Vec<TensorInfo>,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// The model output.
    pub output: TensorId,
}

/// The graph input's tensor id.
pub const INPUT: TensorId = 0;

impl Graph {
    /// A graph holding only its input tensor of the given NCHW shape.
    pub fn new(name: &str, description: &str, input: InputSpec, shape: Vec<usize>) -> Graph {
        Graph {
            name: name.into(),
            description: description.into(),
            input,
            tensors: vec![TensorInfo {
                name: "input".into(),
                shape,
            }],
            nodes: Vec::new(),
            output: INPUT,
        }
    }

    /// Appends a node, inferring its output shape.
    pub fn push(&mut self, name: &str, op: Op, inputs: &[TensorId]) -> Result<TensorId, String> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|&t| self.tensors[t].shape.as_slice()).collect();
        let shape = op
            .infer(&shapes)
            .map_err(|e| format!("node `{name}` ({}): {e}", op.kind()))?;
        let id = self.tensors.len();
        self.tensors.push(TensorInfo {
            name: name.into(),
            shape,
        });
        self.nodes.push(Node {
            name: name.into(),
            op,
            inputs: inputs.to_vec(),
            output: id,
            fused: Vec::new(),
        });
        self.output = id;
        Ok(id)
    }

    /// The node producing `t`, if any.
    pub fn producer(&self, t: TensorId) -> Option<usize> {
        self.nodes.iter().position(|n| n.output == t)
    }

    /// Indices of nodes reading `t`.
    pub fn consumers(&self, t: TensorId) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].inputs.contains(&t))
            .collect()
    }

    /// Number of uses of `t` (by nodes, plus one if it is the graph output).
    pub fn uses(&self, t: TensorId) -> usize {
        self.nodes
            .iter()
            .map(|n| n.inputs.iter().filter(|&&i| i == t).count())
            .sum::<usize>()
            + usize::from(self.output == t)
    }

    /// Replaces every use of `old` by `new` (node inputs and graph output).
    pub fn replace_uses(&mut self, old: TensorId, new: TensorId) {
        for n in &mut self.nodes {
            for i in &mut n.inputs {
                if *i == old {
                    *i = new;
                }
            }
        }
        if self.output == old {
            self.output = new;
        }
    }

    /// Total multiply-accumulates.
    pub fn macs(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| n.op.macs(&self.tensors[n.output].shape))
            .sum()
    }

    /// Total parameters.
    pub fn params(&self) -> usize {
        self.nodes.iter().map(|n| n.op.params()).sum()
    }

    /// Checks the invariants listed in the module docs; returns every problem.
    pub fn verify(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut produced = vec![false; self.tensors.len()];
        if !self.tensors.is_empty() {
            produced[INPUT] = true;
        }
        let mut names = std::collections::HashSet::new();
        for n in &self.nodes {
            let at = format!("node `{}` ({})", n.name, n.op.kind());
            if !names.insert(n.name.as_str()) {
                problems.push(format!("{at}: duplicate node name"));
            }
            let mut ok = true;
            for &i in &n.inputs {
                if i >= self.tensors.len() || !produced[i] {
                    problems.push(format!("{at}: input tensor {i} is not produced before it"));
                    ok = false;
                }
            }
            if n.output >= self.tensors.len() {
                problems.push(format!("{at}: output tensor {} does not exist", n.output));
                continue;
            }
            if produced[n.output] {
                problems.push(format!("{at}: output tensor {} already has a producer", n.output));
            }
            produced[n.output] = true;
            if !ok {
                continue;
            }
            let shapes: Vec<&[usize]> = n.inputs.iter().map(|&t| self.tensors[t].shape.as_slice()).collect();
            match n.op.infer(&shapes) {
                Ok(s) if s != self.tensors[n.output].shape => problems.push(format!(
                    "{at}: output recorded as {:?} but inferred as {s:?}",
                    self.tensors[n.output].shape
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!("{at}: {e}")),
            }
        }
        if self.output >= self.tensors.len() || !produced[self.output] {
            problems.push(format!("graph output tensor {} is not produced", self.output));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> Graph {
        Graph::new(
            "t",
            "",
            InputSpec {
                dtype: DType::F32,
                layout: Layout::Nchw,
            },
            vec![1, 3, 8, 8],
        )
    }

    #[test]
    fn conv_shapes() {
        let mut g = input();
        let w = Param::new(vec![4, 3, 3, 3], vec![0.0; 108]);
        let t = g
            .push("c", Op::Conv(ConvCfg::new(w, [2, 2], [0, 0, 1, 1], 1)), &[INPUT])
            .unwrap();
        assert_eq!(g.tensors[t].shape, vec![1, 4, 4, 4]);
        g.verify().unwrap();
    }

    #[test]
    fn verify_reports_every_problem() {
        let mut g = input();
        let w = Param::new(vec![4, 3, 1, 1], vec![0.0; 12]);
        let t = g
            .push("c", Op::Conv(ConvCfg::new(w, [1, 1], [0; 4], 1)), &[INPUT])
            .unwrap();
        g.push("r", Op::Clip(Clamp::RELU), &[t]).unwrap();
        g.tensors[t].shape = vec![1, 5, 8, 8];
        g.nodes[1].name = "c".into();
        let e = g.verify().unwrap_err();
        // The bad shape is reported at its producer and at its reader.
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].contains("recorded as [1, 5, 8, 8]"));
        assert!(e[1].contains("duplicate node name"));
        assert!(e[2].contains("inferred as [1, 5, 8, 8]"));
    }

    #[test]
    fn grouped_conv_rejected() {
        let mut g = input();
        let w = Param::new(vec![3, 1, 3, 3], vec![0.0; 27]);
        assert!(g
            .push("dw", Op::Conv(ConvCfg::new(w, [1, 1], [1; 4], 3)), &[INPUT])
            .is_ok());
        let mut g = Graph::new("t", "", g.input.clone(), vec![1, 4, 8, 8]);
        let w = Param::new(vec![4, 2, 3, 3], vec![0.0; 72]);
        let e = g
            .push("g2", Op::Conv(ConvCfg::new(w, [1, 1], [1; 4], 2)), &[INPUT])
            .unwrap_err();
        assert!(e.contains("only full"), "{e}");
    }

    #[test]
    fn clamp_composition() {
        assert_eq!(Clamp::NONE.then(Clamp::RELU6), Clamp::RELU6);
        assert_eq!(Clamp::RELU.then(Clamp::RELU6), Clamp::RELU6);
        assert_eq!(Clamp::RELU6.then(Clamp::RELU), Clamp::RELU6);
    }
}
