//! Gemm and MatMul (a dense layer on constant weights), Softmax.

use crate::ir::Op;
use crate::onnx::attrs::{attr, AttrKind::*, Dflt, NodeError};
use crate::onnx::import::{one, Import, Node, Value};
use crate::onnx::registry::{OpDef, Transposed};

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "Gemm",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 2..=3,
        attrs: &[
            attr("alpha", Float, Dflt::Float(1.0)),
            attr("beta", Float, Dflt::Float(1.0)),
            attr("transA", Int, Dflt::Int(0)).range(0, 1),
            attr("transB", Int, Dflt::Int(0)).range(0, 1),
        ],
        check: None,
        import: gemm,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "MatMul",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 2..=2,
        attrs: &[],
        check: None,
        import: matmul,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "Softmax",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=1,
        attrs: &[attr("axis", Int, Dflt::None)],
        check: None,
        import: softmax,
        transposed: Transposed::Fixed,
    },
];

fn gemm(n: &mut Node<'_>) -> Import {
    let x = n.tensor(0)?;
    if n.attrs.int("transA") != 0 {
        return Err(NodeError::attr("transA", "transA = 1 is not supported"));
    }
    let b = n.constant(1, "B")?;
    let c = n.opt_const(2, "C")?;
    let (alpha, beta) = (n.attrs.float("alpha"), n.attrs.float("beta"));
    let [r, cols] = b.dims[..] else {
        return Err(format!("B has shape {:?}; expected 2-D", b.dims).into());
    };
    let bv = b.f32s();
    // weight [out, k]
    let (out, k, weight): (usize, usize, Vec<f32>) = if n.attrs.int("transB") != 0 {
        (r, cols, bv.iter().map(|v| v * alpha).collect())
    } else {
        (
            cols,
            r,
            (0..cols * r).map(|i| bv[(i % r) * cols + i / r] * alpha).collect(),
        )
    };
    let bias = match &c {
        None => None,
        Some(c) if c.len() == 1 => Some(vec![c.f32s()[0] * beta; out]),
        Some(c) if c.len() == out => Some(c.f32s().iter().map(|v| v * beta).collect()),
        Some(c) => return Err(format!("C has shape {:?}; expected [{out}] or a scalar", c.dims).into()),
    };
    let r = n.dense(x, out, k, weight, bias)?;
    // A QDQ model's weight (transposed, per tensor or per output) and int32
    // bias stay integers, for the integer layer the group becomes.
    let qweight = b
        .quantized()
        .filter(|p| {
            n.attrs.int("transB") != 0
                && alpha == 1.0
                && p.quant.as_ref().is_some_and(|q| q.axis.is_none_or(|a| a == 0))
        })
        .cloned();
    let qbias = c
        .as_ref()
        .filter(|c| beta == 1.0 && c.len() == out)
        .and_then(crate::onnx::ops::conv::int32_bias);
    if qweight.is_some() || qbias.is_some() {
        let g = n.imp.graph();
        if let Some(Op::Dense(d)) = g.nodes.last_mut().map(|l| &mut l.op) {
            if let Some(w) = qweight {
                d.weight = w;
            }
            d.qbias = qbias;
        }
    }
    Ok(r)
}

fn matmul(n: &mut Node<'_>) -> Import {
    let x = n.tensor(0)?;
    let b = n.constant(1, "B")?;
    let [k, out] = b.dims[..] else {
        return Err(format!("B has shape {:?}; expected a constant 2-D matrix", b.dims).into());
    };
    let bv = b.f32s();
    let weight = (0..out * k).map(|i| bv[(i % k) * out + i / k]).collect();
    n.dense(x, out, k, weight, None)
}

fn softmax(n: &mut Node<'_>) -> Import {
    let x = n.tensor(0)?;
    let s = n.shape(x);
    let rank = s.len() as i64;
    let given = n.attrs.opt_int("axis").unwrap_or(if n.opset() < 13 { 1 } else { -1 });
    let axis = if given < 0 { given.saturating_add(rank) } else { given };
    if !(0..rank).contains(&axis) {
        return Err(NodeError::attr(
            "axis",
            format!(
                "axis {given} is out of range for the rank-{rank} input {s:?} (allowed: {} to {})",
                -rank,
                rank - 1
            ),
        ));
    }
    // The graph computes one image of the batch: a softmax over the batch
    // dim (opset < 13 with axis 0 coerces all the images into one row)
    // would mix them.
    if axis == 0 && n.imp.batch.unwrap_or(1) > 1 {
        return Err(NodeError::attr(
            "axis",
            format!(
                "a softmax over axis 0 of a batch of {} mixes the images; only a softmax per image is supported",
                n.imp.batch.unwrap_or(1)
            ),
        ));
    }
    // Before opset 13 the input is coerced to 2-D at `axis`; from 13 the softmax is over `axis` alone.
    let over: usize = if n.opset() < 13 {
        s[axis as usize..].iter().product()
    } else {
        s.get(axis as usize).copied().unwrap_or(0)
    };
    let total: usize = s.iter().product();
    if s[0] != 1 || over != total {
        return Err(format!(
            "softmax over axis {axis} of {s:?}: only a softmax over all of a [1, k] tensor's classes is supported"
        )
        .into());
    }
    if s.len() == 2 {
        return n.push_one(Op::Softmax, &[x]);
    }
    let name = n.name.clone();
    let flat = n.push(&format!("{name}.flatten"), Op::Reshape(vec![1, total]), &[x])?;
    let sm = n.push(&name, Op::Softmax, &[flat])?;
    one(Value::Tensor(n.push(
        &format!("{name}.unflatten"),
        Op::Reshape(s),
        &[sm],
    )?))
}
