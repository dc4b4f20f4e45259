//! Conv, Pad (absorbed by the Conv that reads it), BatchNormalization.

use crate::ir::{BatchNormCfg, ConvCfg, Op, TensorId};
use crate::onnx::attrs::{attr, AttrDef, AttrKind::*, Attrs, Dflt, NodeError};
use crate::onnx::import::{one, usizes, Import, Node, Value};
use crate::onnx::registry::{OpDef, Transposed, MAX_DIM};
use onnx_protobuf::{NodeProto, TensorProto};
use std::collections::HashMap;

/// The attributes of a convolution (Conv, QLinearConv, ConvInteger), read
/// by [`geometry`].
pub const CONV_ATTRS: &[AttrDef] = &[
    attr("auto_pad", Str, Dflt::Str("NOTSET")),
    attr("dilations", Ints, Dflt::None).len(2).range(1, MAX_DIM),
    attr("group", Int, Dflt::Int(1)).range(1, MAX_DIM),
    attr("kernel_shape", Ints, Dflt::None).len(2).range(1, MAX_DIM),
    attr("pads", Ints, Dflt::None).len(4).range(0, MAX_DIM),
    attr("strides", Ints, Dflt::None).len(2).range(1, MAX_DIM),
];

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "Conv",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 2..=3,
        attrs: CONV_ATTRS,
        check: Some(check_conv),
        import: conv,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "Pad",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=4,
        attrs: &[
            attr("mode", Str, Dflt::Str("constant")),
            crate::onnx::attrs::attr_until("pads", Ints, Dflt::None, 10)
                .len(8)
                .range(0, MAX_DIM),
            crate::onnx::attrs::attr_until("value", Float, Dflt::Float(0.0), 10),
        ],
        check: None,
        import: pad,
        transposed: Transposed::Own,
    },
    OpDef {
        name: "BatchNormalization",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 5..=5,
        attrs: &[
            attr("epsilon", Float, Dflt::Float(1e-5)),
            attr("momentum", Float, Dflt::Float(0.9)),
            attr("training_mode", Int, Dflt::Int(0)).range(0, 1),
            attr("spatial", Int, Dflt::Int(1)),
            attr("is_test", Int, Dflt::Int(0)),
            attr("consumed_inputs", Ints, Dflt::None),
        ],
        check: None,
        import: batch_norm,
        transposed: Transposed::Fixed,
    },
];

/// Dilations other than 1, and groups that are neither 1 nor depthwise
/// (what the weight's shape says), before import.
fn check_conv(n: &NodeProto, a: &Attrs<'_>, weights: &HashMap<&str, &TensorProto>) -> Vec<NodeError> {
    check_conv_weight(n, a, weights, 1)
}

/// [`check_conv`] for a convolution whose weight is input `kw`.
pub fn check_conv_weight(
    n: &NodeProto,
    a: &Attrs<'_>,
    weights: &HashMap<&str, &TensorProto>,
    kw: usize,
) -> Vec<NodeError> {
    let mut problems = Vec::new();
    if let Some(d) = a.ints("dilations").filter(|d| d.iter().any(|&v| v != 1)) {
        problems.push(NodeError::attr(
            "dilations",
            format!("dilations {d:?} are not supported (only 1)"),
        ));
    }
    let group = a.int("group");
    let per_group = n
        .input
        .get(kw)
        .and_then(|w| weights.get(w.as_str()))
        .and_then(|w| w.dims.get(1).copied());
    if group != 1 && per_group.is_some_and(|c| c != 1) {
        problems.push(NodeError::attr(
            "group",
            format!(
                "group = {group} with {} input channels per group is a grouped convolution; only full (group = 1) and depthwise (group = channels) are supported",
                per_group.unwrap_or(0)
            ),
        ));
    }
    problems
}

fn conv(n: &mut Node<'_>) -> Import {
    let (x, pending) = match n.arg(0) {
        Some(Value::Padded(t, p)) => (t, p),
        _ => (n.tensor(0)?, [0; 4]),
    };
    let w = n.constant(1, "weight")?;
    let b = n.opt_const(2, "bias")?;
    let (stride, pads, group) = geometry(n, x, pending, &w.dims)?;
    let mut cfg = ConvCfg::new(w.param(w.dims.clone()), stride, pads, group);
    if let Some(b) = b {
        cfg.bias = Some(b.f32s());
        cfg.qbias = int32_bias(&b);
    }
    n.push_one(Op::Conv(cfg), &[x])
}

/// The `int32` values of a dequantized bias (a QDQ model's), if it is one.
pub fn int32_bias(b: &crate::onnx::import::Const) -> Option<Vec<i32>> {
    match &b.quantized()?.values {
        crate::ir::Values::I32(v) => Some(v.clone()),
        _ => None,
    }
}

/// A convolution's strides, pads (`[top, left, bottom, right]`, with the
/// `pending` pads of a Pad node it absorbs) and groups, from its
/// attributes, its input `x` and its weight's dims (Conv, QLinearConv,
/// ConvInteger).
pub fn geometry(
    n: &Node<'_>,
    x: TensorId,
    pending: [usize; 4],
    wdims: &[usize],
) -> Result<([usize; 2], [usize; 4], usize), NodeError> {
    if wdims.len() != 4 {
        return Err(format!("weight has shape {wdims:?}; a 2-D convolution needs [out, in/group, kh, kw]").into());
    }
    let (kh, kw) = (wdims[2], wdims[3]);
    if let Some(ks) = n.attrs.ints("kernel_shape") {
        if usizes(&ks, "kernel_shape")? != [kh, kw] {
            return Err(NodeError::attr(
                "kernel_shape",
                format!("kernel_shape {ks:?} does not match the weight's {wdims:?}"),
            ));
        }
    }
    let (stride, pads) = window(n, x, pending, [kh, kw], "convolution")?;
    let group = n.attrs.int("group");
    let group = usize::try_from(group).map_err(|_| NodeError::attr("group", format!("group {group} is invalid")))?;
    Ok((stride, pads, group))
}

/// The strides and pads (`[top, left, bottom, right]`, with the `pending`
/// pads of a Pad node absorbed) of a sliding window of `kernel` over `x`
/// (a convolution's or a pool's), from the node's `strides`, `pads` and
/// `auto_pad`.
pub fn window(
    n: &Node<'_>,
    x: TensorId,
    pending: [usize; 4],
    kernel: [usize; 2],
    what: &str,
) -> Result<([usize; 2], [usize; 4]), NodeError> {
    let a = &n.attrs;
    let [kh, kw] = kernel;
    let strides =
        usizes(&a.ints("strides").unwrap_or(vec![1, 1]), "strides").map_err(|e| NodeError::attr("strides", e))?;
    let [sh, sw] = strides[..] else {
        return Err(NodeError::attr(
            "strides",
            format!("strides {strides:?} must have 2 values"),
        ));
    };
    let xs = n.shape(x);
    if xs.len() != 4 {
        return Err(format!("the input has shape {xs:?}; a 2-D {what} reads [n, c, h, w]").into());
    }
    let (ih, iw) = (xs[2] + pending[0] + pending[2], xs[3] + pending[1] + pending[3]);
    let same = |size: usize, k: usize, s: usize, upper: bool| -> (usize, usize) {
        let out = size.div_ceil(s);
        let total = ((out - 1) * s + k).saturating_sub(size);
        let small = total / 2;
        if upper {
            (small, total - small)
        } else {
            (total - small, small)
        }
    };
    let pads = match a.string("auto_pad").as_deref().unwrap_or("NOTSET") {
        "NOTSET" | "" => {
            let p = usizes(&a.ints("pads").unwrap_or(vec![0; 4]), "pads").map_err(|e| NodeError::attr("pads", e))?;
            let [t, l, b, r] = p[..] else {
                return Err(NodeError::attr("pads", format!("pads {p:?} must have 4 values")));
            };
            [t, l, b, r]
        }
        "VALID" => [0; 4],
        mode @ ("SAME_UPPER" | "SAME_LOWER") => {
            let upper = mode == "SAME_UPPER";
            let (t, b) = same(ih, kh, sh, upper);
            let (l, r) = same(iw, kw, sw, upper);
            [t, l, b, r]
        }
        other => {
            return Err(NodeError::attr(
                "auto_pad",
                format!("auto_pad {other} is not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER are)"),
            ))
        }
    };
    let pads = [
        pads[0] + pending[0],
        pads[1] + pending[1],
        pads[2] + pending[2],
        pads[3] + pending[3],
    ];
    Ok(([sh, sw], pads))
}

fn pad(n: &mut Node<'_>) -> Import {
    // On a transposed tensor (NHWC, in graphs converted op by op), the
    // pads name the transposed dims: dim i's are the tensor's dim perm[i]'s.
    let (x, perm) = match n.arg(0) {
        Some(Value::Permuted(inner, p, from)) => match *inner {
            Value::Tensor(t) => (t, Some((p, from))),
            _ => return Err("pads a Pad's output".into()),
        },
        _ => (n.tensor(0)?, None),
    };
    let a = &n.attrs;
    let mode = a.string("mode").unwrap_or_else(|| "constant".into());
    if mode != "constant" {
        return Err(NodeError::attr(
            "mode",
            format!("mode {mode} is not supported (only constant)"),
        ));
    }
    let (pads, value) = if n.opset() < 11 {
        (
            a.ints("pads")
                .ok_or(NodeError::attr("pads", "the pads attribute is missing"))?,
            a.float("value"),
        )
    } else {
        if n.arg(3).is_some() {
            return Err("the axes input is not supported".into());
        }
        let v = n
            .opt_const(2, "constant_value")?
            .map_or(Some(0.0), |c| c.scalar())
            .ok_or("constant_value must be a scalar")?;
        (n.constant(1, "pads")?.i64s(), v)
    };
    if value != 0.0 {
        return Err(format!("padding with {value} is not supported (only 0)").into());
    }
    let mut p = usizes(&pads, "pads")?;
    if let Some((perm, _)) = perm.as_ref().filter(|(q, _)| q.len() * 2 == p.len()) {
        let r = perm.len();
        let given = p.clone();
        for i in 0..r {
            p[perm[i]] = given[i];
            p[r + perm[i]] = given[r + i];
        }
    }
    if p.len() != 8 || p[0] != 0 || p[1] != 0 || p[4] != 0 || p[5] != 0 {
        return Err(format!("pads {pads:?}: only height and width of a 4-D tensor may be padded").into());
    }
    let padded = Value::Padded(x, [p[2], p[3], p[6], p[7]]);
    one(match perm {
        Some((q, from)) => padded.permuted(q, &from),
        None => padded,
    })
}

fn batch_norm(n: &mut Node<'_>) -> Import {
    if n.attrs.int("training_mode") != 0 {
        return Err(NodeError::attr(
            "training_mode",
            "training_mode = 1 is not supported (inference only)",
        ));
    }
    if (1..n.proto.output.len()).any(|k| n.output_read(k)) {
        return Err("the running mean/variance outputs are read; only inference is supported".into());
    }
    let x = n.tensor(0)?;
    let [g, b, m, v] =
        [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")].map(|(k, w)| n.constant(k, w).map(|c| c.f32s()));
    let cfg = BatchNormCfg {
        gamma: g?,
        beta: b?,
        mean: m?,
        var: v?,
        eps: n.attrs.float("epsilon"),
    };
    n.push_one(Op::BatchNorm(cfg), &[x])
}
