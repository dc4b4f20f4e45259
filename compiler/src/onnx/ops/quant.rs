//! Quantized operators: QuantizeLinear, DequantizeLinear and the integer
//! layers of onnxruntime's QOperator form (QLinearConv, QLinearMatMul, and
//! the com.microsoft QLinearAdd, QLinearGlobalAveragePool), and the
//! dynamic form of onnxruntime's `quantize_dynamic`: DynamicQuantizeLinear,
//! ConvInteger, MatMulInteger, read with the Cast and the Mul of the
//! scales after them ([`dyn_mul`]) as one [`Op::DynQLayer`].
//!
//! An integer tensor carries its quantization in its IR type (what its
//! producer wrote). ONNX gives the scale and zero point again at every
//! reader; a reader whose parameters differ from the producer's is
//! refused, naming both.

use crate::ir::{
    Clamp, DynInt, DynQCfg, ElemType, IntOut, Op, Param, QAddCfg, QConvCfg, QDenseCfg, QTableCfg, QType, Quant,
    TableStep, TensorId, Values,
};
use crate::onnx::attrs::{attr, AttrKind::*, Attrs, Dflt, NodeError};
use crate::onnx::import::{one, Const, Data, Import, Node, PendingSums, Value};
use crate::onnx::ops::conv::{check_conv_weight, geometry, CONV_ATTRS};
use crate::onnx::registry::{OpDef, Transposed, MAX_DIM};
use onnx_protobuf::{NodeProto, TensorProto};
use std::collections::HashMap;

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "QuantizeLinear",
        domain: "",
        opsets: 10..=i64::MAX,
        inputs: 2..=3,
        attrs: &[
            crate::onnx::attrs::attr_from("axis", Int, Dflt::Int(1), 13),
            crate::onnx::attrs::attr_from("saturate", Int, Dflt::Int(1), 19).range(0, 1),
            crate::onnx::attrs::attr_from("block_size", Int, Dflt::Int(0), 21).range(0, 0),
            crate::onnx::attrs::attr_from("output_dtype", Int, Dflt::Int(0), 21),
        ],
        check: None,
        import: quantize_linear,
        transposed: Transposed::Scalars,
    },
    OpDef {
        name: "DequantizeLinear",
        domain: "",
        opsets: 10..=i64::MAX,
        inputs: 2..=3,
        attrs: &[
            crate::onnx::attrs::attr_from("axis", Int, Dflt::Int(1), 13),
            crate::onnx::attrs::attr_from("block_size", Int, Dflt::Int(0), 21).range(0, 0),
            crate::onnx::attrs::attr_from("output_dtype", Int, Dflt::Int(0), 23),
        ],
        check: None,
        import: dequantize_linear,
        transposed: Transposed::Scalars,
    },
    OpDef {
        name: "QLinearConv",
        domain: "",
        opsets: 10..=i64::MAX,
        inputs: 8..=9,
        attrs: CONV_ATTRS,
        check: Some(check_qlinear_conv),
        import: qlinear_conv,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "QLinearMatMul",
        domain: "",
        opsets: 10..=i64::MAX,
        inputs: 8..=8,
        attrs: &[],
        check: None,
        import: qlinear_matmul,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "QLinearAdd",
        domain: "com.microsoft",
        opsets: 1..=1,
        inputs: 7..=8,
        attrs: &[],
        check: None,
        import: qlinear_add,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "QLinearMul",
        domain: "com.microsoft",
        opsets: 1..=1,
        inputs: 7..=8,
        attrs: &[],
        check: None,
        import: qlinear_mul,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "QLinearSoftmax",
        domain: "com.microsoft",
        opsets: 1..=1,
        inputs: 4..=5,
        attrs: &[attr("axis", Int, Dflt::None), attr("opset", Int, Dflt::None)],
        check: None,
        import: qlinear_softmax,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "QLinearSigmoid",
        domain: "com.microsoft",
        opsets: 1..=1,
        inputs: 4..=5,
        attrs: &[],
        check: None,
        import: qlinear_sigmoid,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "QLinearLeakyRelu",
        domain: "com.microsoft",
        opsets: 1..=1,
        inputs: 4..=5,
        attrs: &[attr("alpha", Float, Dflt::Float(0.01))],
        check: None,
        import: qlinear_leaky_relu,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "QLinearAveragePool",
        domain: "com.microsoft",
        opsets: 1..=1,
        inputs: 4..=5,
        attrs: &[
            attr("auto_pad", Str, Dflt::Str("NOTSET")),
            attr("ceil_mode", Int, Dflt::Int(0)).range(0, 1),
            attr("channels_last", Int, Dflt::Int(0)).range(0, 1),
            attr("count_include_pad", Int, Dflt::Int(0)).range(0, 1),
            attr("kernel_shape", Ints, Dflt::None).len(2).range(1, MAX_DIM),
            attr("pads", Ints, Dflt::None).len(4).range(0, MAX_DIM),
            attr("strides", Ints, Dflt::None).len(2).range(1, MAX_DIM),
        ],
        check: None,
        import: qlinear_average_pool,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "QLinearGlobalAveragePool",
        domain: "com.microsoft",
        opsets: 1..=1,
        inputs: 5..=5,
        attrs: &[attr("channels_last", Int, Dflt::Int(0)).range(0, 1)],
        check: None,
        import: qlinear_global_average_pool,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "QGemm",
        domain: "com.microsoft",
        opsets: 1..=1,
        inputs: 6..=9,
        attrs: &[
            attr("alpha", Float, Dflt::Float(1.0)),
            attr("transA", Int, Dflt::Int(0)).range(0, 0),
            attr("transB", Int, Dflt::Int(0)).range(0, 1),
        ],
        check: None,
        import: qgemm,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "DynamicQuantizeLinear",
        domain: "",
        opsets: 11..=i64::MAX,
        inputs: 1..=1,
        attrs: &[],
        check: None,
        import: dynamic_quantize_linear,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "ConvInteger",
        domain: "",
        opsets: 10..=i64::MAX,
        inputs: 2..=4,
        attrs: CONV_ATTRS,
        check: Some(check_conv_integer),
        import: conv_integer,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "MatMulInteger",
        domain: "",
        opsets: 10..=i64::MAX,
        inputs: 2..=4,
        attrs: &[],
        check: None,
        import: matmul_integer,
        transposed: Transposed::Fixed,
    },
];

fn check_conv_integer(n: &NodeProto, a: &Attrs<'_>, weights: &HashMap<&str, &TensorProto>) -> Vec<NodeError> {
    check_conv_weight(n, a, weights, 1)
}

fn check_qlinear_conv(n: &NodeProto, a: &Attrs<'_>, weights: &HashMap<&str, &TensorProto>) -> Vec<NodeError> {
    check_conv_weight(n, a, weights, 3)
}

/// A scale and zero point given as node inputs `ks` and `kz` (the zero
/// point optional: 0 of `default` type), for one tensor (`per` = `None`)
/// or one per index of an axis of `per` values.
fn qparams(
    n: &Node<'_>,
    ks: usize,
    kz: usize,
    what: &str,
    default: ElemType,
    per: Option<usize>,
) -> Result<(ElemType, Vec<f32>, Vec<i32>), NodeError> {
    let s = n.constant(ks, &format!("{what}'s scale"))?;
    let z = n.opt_const(kz, &format!("{what}'s zero point"))?;
    let (elem, zp) = match &z {
        None => (default, vec![0; s.len()]),
        Some(Const {
            data: Data::Int8(e, v), ..
        }) => (*e, v.clone()),
        // An int32 bias's zero point (int32, which DequantizeLinear allows).
        Some(Const { data: Data::I64(v), .. }) if default == ElemType::I32 => (
            ElemType::I32,
            v.iter()
                .map(|&x| i32::try_from(x).map_err(|_| format!("{what}'s zero point {x} is not an int32")))
                .collect::<Result<_, _>>()?,
        ),
        Some(c) => {
            return Err(format!(
                "{what}'s zero point (input {kz}) is {}; int8 and uint8 are supported",
                match c.data {
                    Data::F32(_) => "a float",
                    _ => "a wider integer",
                }
            )
            .into())
        }
    };
    let scale = match &s.data {
        Data::F32(v) => v.clone(),
        _ => return Err(format!("{what}'s scale (input {ks}) must be a float").into()),
    };
    let want = per.unwrap_or(1);
    let ok = |len: usize| len == 1 || (per.is_some() && len == want);
    if !ok(scale.len()) || scale.len() != zp.len() {
        return Err(format!(
            "{what} has {} scale(s) and {} zero point(s); {}",
            scale.len(),
            zp.len(),
            match per {
                None => "one of each is supported (per tensor)".to_string(),
                Some(c) => format!("one of each, or {c} of each (per channel), is expected"),
            }
        )
        .into());
    }
    Quant {
        scale: scale.clone(),
        zero_point: zp.clone(),
        axis: None,
    }
    .check(&[], elem)
    .or_else(|e| if scale.len() > 1 { Ok(()) } else { Err(e) })
    .map_err(|e| format!("{what}: {e}"))?;
    if let Some(s) = scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(format!("{what}'s scale {s} is not a positive finite number").into());
    }
    let (lo, hi) = crate::ir::int_range(elem);
    if let Some(z) = zp.iter().find(|z| !(lo..=hi).contains(*z)) {
        return Err(format!("{what}'s zero point {z} is outside the range of {elem}").into());
    }
    Ok((elem, scale, zp))
}

/// Input `kx`, a computed integer tensor, checked against the scale and
/// zero point inputs `ks`, `kz` the node gives for it.
fn q_tensor(n: &Node<'_>, kx: usize, ks: usize, kz: usize, what: &str) -> Result<(TensorId, QType), NodeError> {
    let x = n.tensor(kx)?;
    let (elem, scale, zp) = qparams(n, ks, kz, what, ElemType::U8, None)?;
    let given = QType {
        elem,
        scale: scale[0],
        zero_point: zp[0],
    };
    let ty = &n.imp.graph_ref().tensors[x].ty;
    match ty.qtype() {
        Some(h) if h.elem == given.elem && h.scale.to_bits() == given.scale.to_bits() && h.zero_point == given.zero_point => {
            Ok((x, h))
        }
        Some(h) => Err(format!(
            "{what} is {} with scale {} and zero point {} as written, but this node reads it as {} with scale {} and zero point {}; mncc needs them to agree",
            h.elem, h.scale, h.zero_point, given.elem, given.scale, given.zero_point
        )
        .into()),
        None => Err(format!("{what} (input {kx}) is {ty}, not a tensor quantized per tensor").into()),
    }
}

/// A constant integer tensor of inputs `kw` (values), `ks`, `kz` (its
/// scale and zero point, per tensor or one per index of dim `axis`).
fn q_const(n: &Node<'_>, kw: usize, ks: usize, kz: usize, what: &str, axis: usize) -> Result<Param, NodeError> {
    let w = n.constant(kw, what)?;
    let Data::Int8(welem, values) = &w.data else {
        return Err(format!("{what} (input {kw}) must be int8 or uint8").into());
    };
    let per = w.dims.get(axis).copied();
    let (zelem, scale, zp) = qparams(n, ks, kz, what, *welem, per)?;
    if zelem != *welem {
        return Err(format!("{what} is {welem} but its zero point is {zelem}").into());
    }
    let values = match welem {
        ElemType::I8 => crate::ir::Values::I8(values.iter().map(|&v| v as i8).collect()),
        _ => crate::ir::Values::U8(values.iter().map(|&v| v as u8).collect()),
    };
    let axis = (scale.len() > 1).then_some(axis);
    Ok(Param {
        shape: w.dims.clone(),
        values,
        quant: Some(Quant {
            scale,
            zero_point: zp,
            axis,
        }),
    })
}

/// The output type from inputs `ks`, `kz`.
fn q_out(n: &Node<'_>, ks: usize, kz: usize) -> Result<QType, NodeError> {
    let (elem, scale, zp) = qparams(n, ks, kz, "the output", ElemType::U8, None)?;
    Ok(QType {
        elem,
        scale: scale[0],
        zero_point: zp[0],
    })
}

/// An `int32` bias (input `kb`) of `c` values.
fn i32_bias(n: &Node<'_>, kb: usize, c: usize) -> Result<Option<Vec<i32>>, NodeError> {
    let Some(b) = n.opt_const(kb, "the bias")? else {
        return Ok(None);
    };
    let v = match &b.data {
        Data::I64(v) => v,
        _ => return Err(format!("the bias (input {kb}) must be int32").into()),
    };
    if v.len() != c {
        return Err(format!("the bias has {} values for {c} output channels", v.len()).into());
    }
    Ok(Some(
        v.iter()
            .map(|&x| i32::try_from(x).map_err(|_| format!("the bias value {x} is not an int32")))
            .collect::<Result<_, _>>()?,
    ))
}

fn quantize_linear(n: &mut Node<'_>) -> Import {
    let x = n.tensor(0)?;
    if n.opset() >= 21 && n.attrs.int("output_dtype") != 0 && n.arg(2).is_none() {
        return Err(NodeError::attr(
            "output_dtype",
            "output_dtype without a zero point is not supported (give the zero point)",
        ));
    }
    if n.opset() >= 19 && n.attrs.int("saturate") == 0 {
        return Err(NodeError::attr(
            "saturate",
            "saturate = 0 only applies to float8 outputs, which are not supported",
        ));
    }
    let (elem, scale, zp) = qparams(n, 1, 2, "the output", ElemType::U8, None)?;
    n.push_one(
        Op::Quantize(QType {
            elem,
            scale: scale[0],
            zero_point: zp[0],
        }),
        &[x],
    )
}

fn dequantize_linear(n: &mut Node<'_>) -> Import {
    if let Some(Value::Const(c)) = n.arg(0) {
        // A constant (a QDQ model's weight or bias): kept as its integers
        // and their quantization, which the layer reading it takes.
        let rank = c.dims.len() as i64;
        let axis = if n.opset() >= 13 { n.attrs.int("axis") } else { 1 };
        let axis = if axis < 0 { axis + rank } else { axis };
        let per = usize::try_from(axis).ok().and_then(|a| c.dims.get(a).copied());
        let (values, elem) = match &c.data {
            Data::Int8(e, v) => (
                match e {
                    ElemType::I8 => Values::I8(v.iter().map(|&x| x as i8).collect()),
                    _ => Values::U8(v.iter().map(|&x| x as u8).collect()),
                },
                *e,
            ),
            Data::I64(v) => (
                Values::I32(
                    v.iter()
                        .map(|&x| i32::try_from(x).map_err(|_| format!("the value {x} is not an int32")))
                        .collect::<Result<_, _>>()?,
                ),
                ElemType::I32,
            ),
            _ => return Err("the input (a constant) must be int8, uint8 or int32".into()),
        };
        let (zelem, scale, zp) = qparams(n, 1, 2, "the input", elem, per)?;
        if zelem != elem {
            return Err(format!("the input is {elem} but its zero point is {zelem}").into());
        }
        if scale.len() > 1 && per.is_none() {
            return Err(NodeError::attr(
                "axis",
                format!("axis {axis} is out of range for the input's shape {:?}", c.dims),
            ));
        }
        let param = Param {
            shape: c.dims.clone(),
            values,
            quant: Some(Quant {
                axis: (scale.len() > 1).then_some(axis as usize),
                scale,
                zero_point: zp,
            }),
        };
        return Ok(vec![Value::Const(Const {
            dims: c.dims,
            data: Data::Quantized(param),
        })]);
    }
    let (x, _) = q_tensor(n, 0, 1, 2, "the input")?;
    n.push_one(Op::Dequantize, &[x])
}

fn qlinear_conv(n: &mut Node<'_>) -> Import {
    let (x, xq) = q_tensor(n, 0, 1, 2, "the input x")?;
    let weight = q_const(n, 3, 4, 5, "the weight", 0)?;
    let out = q_out(n, 6, 7)?;
    let (stride, pads, groups) = geometry(n, x, [0; 4], &weight.shape)?;
    let bias = i32_bias(n, 8, weight.shape[0])?;
    let _ = xq;
    n.push_one(
        Op::QConv(QConvCfg {
            weight,
            bias,
            stride,
            pads,
            groups,
            out: IntOut::Requant(out),
        }),
        &[x],
    )
}

fn qlinear_matmul(n: &mut Node<'_>) -> Import {
    let (x, _) = q_tensor(n, 0, 1, 2, "the input a")?;
    let b = q_const(n, 3, 4, 5, "the weight b", 1)?;
    let out = q_out(n, 6, 7)?;
    let [k, cols] = b.shape[..] else {
        return Err(format!("the weight b has shape {:?}; a 2-D [k, n] weight is expected", b.shape).into());
    };
    let xs = n.shape(x);
    if xs.len() != 2 {
        return Err(format!("the input a has shape {xs:?}; [batch, k] is supported").into());
    }
    let weight = transposed(&b, k, cols);
    n.push_one(
        Op::QDense(QDenseCfg {
            weight,
            bias: None,
            out: IntOut::Requant(out),
        }),
        &[x],
    )
}

/// A `[k, cols]` 8-bit weight as `[cols, k]`: per-column quantization
/// becomes per row.
fn transposed(b: &Param, k: usize, cols: usize) -> Param {
    let t = |i: usize| (i % k) * cols + i / k;
    let values = match &b.values {
        Values::I8(v) => Values::I8((0..v.len()).map(|i| v[t(i)]).collect()),
        Values::U8(v) => Values::U8((0..v.len()).map(|i| v[t(i)]).collect()),
        _ => unreachable!("8-bit values"),
    };
    let mut quant = b.quant.clone().expect("quantized");
    if quant.axis.is_some() {
        quant.axis = Some(0);
    }
    Param {
        shape: vec![cols, k],
        values,
        quant: Some(quant),
    }
}

/// onnxruntime's QGemm (com.microsoft): `A * B' + C` on 8-bit `A` and `B`
/// (`B` constant, `[k, n]`, or `[n, k]` with `transB`), an `int32` bias `C`
/// in units of `a_scale * b_scale`, requantized to `y` (onnxruntime's
/// output scale `alpha * a_scale * b_scale[o] / y_scale` with `alpha` 1 is
/// [`crate::ir::requant_multiplier`]): an integer dense layer.
fn qgemm(n: &mut Node<'_>) -> Import {
    if n.attrs.float("alpha") != 1.0 {
        return Err(NodeError::attr("alpha", "only alpha = 1 is supported"));
    }
    if n.arg(7).is_none() || n.arg(8).is_none() {
        return Err(
            "a float output (no y_scale and y_zero_point) is not supported; mncc reads QGemm with a quantized output"
                .into(),
        );
    }
    let (x, _) = q_tensor(n, 0, 1, 2, "the input A")?;
    let trans_b = n.attrs.int("transB") == 1;
    let b = q_const(n, 3, 4, 5, "the weight B", if trans_b { 0 } else { 1 })?;
    let out = q_out(n, 7, 8)?;
    let [r, c] = b.shape[..] else {
        return Err(format!("the weight B has shape {:?}; a 2-D weight is expected", b.shape).into());
    };
    let weight = if trans_b {
        let mut w = b;
        if let Some(q) = w.quant.as_mut().filter(|q| q.axis.is_some()) {
            q.axis = Some(0);
        }
        w
    } else {
        transposed(&b, r, c)
    };
    let xs = n.shape(x);
    let k = weight.shape[1];
    if xs.len() != 2 || xs[1] != k {
        return Err(format!("the input A has shape {xs:?}; [batch, {k}] is expected for the weight").into());
    }
    let bias = i32_bias(n, 6, weight.shape[0])?;
    n.push_one(
        Op::QDense(QDenseCfg {
            weight,
            bias,
            out: IntOut::Requant(out),
        }),
        &[x],
    )
}

fn qlinear_add(n: &mut Node<'_>) -> Import {
    let (a, _) = q_tensor(n, 0, 1, 2, "the input A")?;
    let out = q_out(n, 6, 7)?;
    match n.arg(3) {
        Some(Value::Const(_)) => {
            let xs = n.shape(a);
            let rhs = q_const(n, 3, 4, 5, "the input B", 0)?;
            if rhs.quant.as_ref().is_some_and(|q| q.axis.is_some()) {
                return Err("the constant B must be quantized per tensor".into());
            }
            let mut rhs = rhs;
            // [1, k] or [k] against [n, k]: drop leading ones.
            let dims: Vec<usize> = rhs.shape.iter().copied().skip_while(|&d| d == 1).collect();
            if dims.as_slice() != &xs[1.min(xs.len())..] {
                return Err(format!(
                    "the constant B has shape {:?}; adding a constant of A's shape {xs:?} without its batch dim is supported",
                    rhs.shape
                )
                .into());
            }
            rhs.shape = dims;
            n.push_one(Op::QAdd(QAddCfg { rhs: Some(rhs), out }), &[a])
        }
        _ => {
            let (b, _) = q_tensor(n, 3, 4, 5, "the input B")?;
            n.push_one(Op::QAdd(QAddCfg { rhs: None, out }), &[a, b])
        }
    }
}

fn qlinear_mul(n: &mut Node<'_>) -> Import {
    if matches!(n.arg(0), Some(Value::Const(_))) || matches!(n.arg(3), Some(Value::Const(_))) {
        return Err("a constant factor is not supported (QLinearMul of two computed tensors is)".into());
    }
    let (a, _) = q_tensor(n, 0, 1, 2, "the input A")?;
    let (b, _) = q_tensor(n, 3, 4, 5, "the input B")?;
    let out = q_out(n, 6, 7)?;
    // The product is symmetric (onnxruntime's too: the scales' product
    // and the integer product commute): the per-channel factor goes
    // second.
    let (sa, sb) = (n.shape(a), n.shape(b));
    let per_channel = |x: &[usize], s: &[usize]| {
        x.len() == 4 && s.len() == 4 && s[0] == x[0] && s[1] == x[1] && s[2] == 1 && s[3] == 1
    };
    if sa == sb || per_channel(&sa, &sb) {
        n.push_one(Op::QMul(out), &[a, b])
    } else if per_channel(&sb, &sa) {
        n.push_one(Op::QMul(out), &[b, a])
    } else {
        Err(format!("cannot multiply {sa:?} by {sb:?} (the same shape, or one [n, c, 1, 1] factor per channel)").into())
    }
}

fn qlinear_softmax(n: &mut Node<'_>) -> Import {
    let opset = n.attrs.opt_int("opset").ok_or(NodeError::attr(
        "opset",
        "the opset attribute is missing (onnxruntime requires it)",
    ))?;
    let (x, _) = q_tensor(n, 0, 1, 2, "the input")?;
    let out = q_out(n, 3, 4)?;
    let s = n.shape(x);
    let rank = s.len() as i64;
    let given = n.attrs.opt_int("axis").unwrap_or(if opset < 13 { 1 } else { -1 });
    let axis = if given < 0 { given.saturating_add(rank) } else { given };
    if rank != 2 || axis != 1 {
        return Err(NodeError::attr(
            "axis",
            format!("a softmax over axis {given} of {s:?}: only the last axis of a [n, k] input is supported"),
        ));
    }
    n.push_one(Op::QSoftmax(out), &[x])
}

fn qlinear_sigmoid(n: &mut Node<'_>) -> Import {
    qlinear_table(n, TableStep::Logistic)
}

fn qlinear_leaky_relu(n: &mut Node<'_>) -> Import {
    let alpha = n.attrs.float("alpha");
    qlinear_table(n, TableStep::LeakyRelu { alpha })
}

/// onnxruntime's `QLinearLookupBase`: X, X_scale, X_zero_point, Y_scale,
/// Y_zero_point (both zero points optional; the output has the input's
/// type), a table of `step`.
fn qlinear_table(n: &mut Node<'_>, step: TableStep) -> Import {
    let (x, xq) = q_tensor(n, 0, 1, 2, "the input")?;
    let (elem, scale, zp) = qparams(n, 3, 4, "the output", xq.elem, None)?;
    if elem != xq.elem {
        return Err(format!(
            "the output is {elem} and the input {}: they must be of one type",
            xq.elem
        )
        .into());
    }
    let out = QType {
        elem,
        scale: scale[0],
        zero_point: zp[0],
    };
    n.push_one(Op::QTable(QTableCfg { steps: vec![step], out }), &[x])
}

fn qlinear_average_pool(n: &mut Node<'_>) -> Import {
    if n.attrs.int("channels_last") != 0 {
        return Err(NodeError::attr(
            "channels_last",
            "channels_last = 1 is not supported (the input is NCHW)",
        ));
    }
    let (x, xq) = q_tensor(n, 0, 1, 2, "the input")?;
    let (elem, scale, zp) = qparams(n, 3, 4, "the output", xq.elem, None)?;
    let out = QType {
        elem,
        scale: scale[0],
        zero_point: zp[0],
    };
    let s = n.shape(x);
    if s.len() != 4 {
        return Err(format!("the input has shape {s:?}; a 2-D pool reads [n, c, h, w]").into());
    }
    let k = n
        .attrs
        .ints("kernel_shape")
        .ok_or(NodeError::attr("kernel_shape", "kernel_shape is missing"))?;
    let pads = n.attrs.ints("pads").unwrap_or(vec![0; 4]);
    let whole = k.len() == 2 && k[0] == s[2] as i64 && k[1] == s[3] as i64;
    if !whole
        || pads.iter().any(|&p| p != 0)
        || n.attrs
            .string("auto_pad")
            .is_some_and(|p| p != "NOTSET" && p != "VALID")
    {
        return Err(format!(
            "only an average over the whole {}x{} input is supported (kernel {k:?}, no padding)",
            s[2], s[3]
        )
        .into());
    }
    n.push_one(Op::QMean { out, pool: true }, &[x])
}

fn qlinear_global_average_pool(n: &mut Node<'_>) -> Import {
    if n.attrs.int("channels_last") != 0 {
        return Err(NodeError::attr(
            "channels_last",
            "channels_last = 1 is not supported (the input is NCHW)",
        ));
    }
    let (x, _) = q_tensor(n, 0, 1, 2, "the input")?;
    let out = q_out(n, 3, 4)?;
    n.push_one(Op::QGlobalAvgPool(out), &[x])
}

fn dynamic_quantize_linear(n: &mut Node<'_>) -> Import {
    let x = n.tensor(0)?;
    let name = n.name.clone();
    let t = n.push(&name, Op::DynQuantize, &[x])?;
    Ok(vec![
        Value::Tensor(t),
        Value::DynParam(t, true),
        Value::DynParam(t, false),
    ])
}

/// Input `kx`, the output of a DynamicQuantizeLinear, with its zero point
/// as input `kz`.
fn dyn_input(n: &Node<'_>, kx: usize, kz: usize) -> Result<TensorId, NodeError> {
    let x = n.tensor(kx)?;
    let ty = &n.imp.graph_ref().tensors[x].ty;
    if !ty.quant.as_ref().is_some_and(Quant::is_dynamic) {
        return Err(format!(
            "input {kx} is {ty}; mncc reads {} on the output of a DynamicQuantizeLinear (onnxruntime's quantize_dynamic)",
            n.proto.op_type
        )
        .into());
    }
    match n.arg(kz) {
        Some(Value::DynParam(t, false)) if t == x => Ok(x),
        _ => Err(format!(
            "the input's zero point (input {kz}) must be the one the DynamicQuantizeLinear of input {kx} computed"
        )
        .into()),
    }
}

/// A constant 8-bit weight (input `kw`) with its optional zero point (input
/// `kz`: one, or one per index of dim `axis`), its scale 1 until the
/// scales' Mul gives it.
fn int_weight(n: &Node<'_>, kw: usize, kz: usize, axis: usize) -> Result<Param, NodeError> {
    let w = n.constant(kw, "the weight")?;
    let Data::Int8(elem, values) = &w.data else {
        return Err(format!("the weight (input {kw}) must be int8 or uint8").into());
    };
    let zp = match n.opt_const(kz, "the weight's zero point")? {
        None => vec![0],
        Some(Const {
            data: Data::Int8(e, v), ..
        }) if e == *elem => v,
        Some(_) => return Err(format!("the weight's zero point (input {kz}) must be {elem}, as the weight").into()),
    };
    let per = w.dims.get(axis).copied();
    if zp.is_empty() || (zp.len() > 1 && Some(zp.len()) != per) {
        return Err(format!(
            "the weight has {} zero points; one, or one per output channel ({}), is expected",
            zp.len(),
            per.unwrap_or(0)
        )
        .into());
    }
    let values = match elem {
        ElemType::I8 => Values::I8(values.iter().map(|&v| v as i8).collect()),
        _ => Values::U8(values.iter().map(|&v| v as u8).collect()),
    };
    Ok(Param {
        shape: w.dims.clone(),
        values,
        quant: Some(Quant {
            scale: vec![1.0; zp.len()],
            axis: (zp.len() > 1).then_some(axis),
            zero_point: zp,
        }),
    })
}

fn conv_integer(n: &mut Node<'_>) -> Import {
    let x = dyn_input(n, 0, 2)?;
    let weight = int_weight(n, 1, 3, 0)?;
    let (stride, pads, groups) = geometry(n, x, [0; 4], &weight.shape)?;
    let int = DynInt::Conv(QConvCfg {
        weight,
        bias: None,
        stride,
        pads,
        groups,
        out: IntOut::Int32,
    });
    one(Value::IntSums(Box::new(PendingSums {
        x,
        int,
        float: false,
        nodes: vec![n.name.clone()],
    })))
}

fn matmul_integer(n: &mut Node<'_>) -> Import {
    let x = dyn_input(n, 0, 2)?;
    let b = int_weight(n, 1, 3, 1)?;
    let [k, cols] = b.shape[..] else {
        return Err(format!("the weight B has shape {:?}; a 2-D [k, n] weight is expected", b.shape).into());
    };
    let xs = n.shape(x);
    if xs.len() != 2 {
        return Err(format!("the input A has shape {xs:?}; [batch, k] is supported").into());
    }
    let int = DynInt::Dense(QDenseCfg {
        weight: transposed(&b, k, cols),
        bias: None,
        out: IntOut::Int32,
    });
    one(Value::IntSums(Box::new(PendingSums {
        x,
        int,
        float: false,
        nodes: vec![n.name.clone()],
    })))
}

/// Cast of pending sums (a ConvInteger's or MatMulInteger's) to float:
/// still pending; `None` if the input is something else.
pub fn dyn_cast(n: &Node<'_>) -> Option<Result<Value, NodeError>> {
    let Some(Value::IntSums(mut s)) = n.arg(0) else {
        return None;
    };
    if n.attrs.int("to") != 1 {
        return Some(Err(NodeError::attr(
            "to",
            "int32 sums of dynamic quantization are read cast to float (1)",
        )));
    }
    s.float = true;
    s.nodes.push(n.name.clone());
    Some(Ok(Value::IntSums(s)))
}

/// A Mul in quantize_dynamic's pattern: the input's scale by the weight's
/// (pending), or the float sums by that product (the layer, pushed as an
/// [`Op::DynQLayer`] under the integer node's name). `None` if neither
/// input belongs to dynamic quantization.
pub fn dyn_mul(n: &mut Node<'_>) -> Option<Import> {
    let (a, b) = (n.arg(0)?, n.arg(1)?);
    match (a, b) {
        (Value::DynParam(t, true), Value::Const(c)) | (Value::Const(c), Value::DynParam(t, true)) => {
            let v = c.f32s();
            if v.is_empty() {
                return Some(Err("the weight scale is empty".into()));
            }
            if let Some(s) = v.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                return Some(Err(format!("the weight scale {s} is not a positive finite number").into()));
            }
            Some(one(Value::DynScale(t, c)))
        }
        (Value::IntSums(s), Value::DynScale(t, c)) | (Value::DynScale(t, c), Value::IntSums(s)) => Some(dyn_layer(n, *s, t, &c)),
        (Value::DynParam(..) | Value::DynScale(..) | Value::IntSums(_), _)
        | (_, Value::DynParam(..) | Value::DynScale(..) | Value::IntSums(_)) => Some(Err(
            "multiplies a scale, zero point or int32 sum of dynamic quantization by something else than quantize_dynamic's pattern (the input's scale by a constant weight scale, then the float sums by that product)".into(),
        )),
        _ => None,
    }
}

/// The layer of quantize_dynamic's pattern: pending sums `s` times the
/// product of the input's scale (of tensor `t`) and the weight scale `c`.
fn dyn_layer(n: &mut Node<'_>, s: PendingSums, t: TensorId, c: &Const) -> Import {
    if !s.float {
        return Err("multiplies the int32 sums before a Cast to float".into());
    }
    if t != s.x {
        return Err("the scale is not that of the layer's own input".into());
    }
    let PendingSums { x, mut int, nodes, .. } = s;
    let (w, conv) = match &mut int {
        DynInt::Conv(cv) => (&mut cv.weight, true),
        DynInt::Dense(d) => (&mut d.weight, false),
    };
    let oc = w.shape[0];
    let ws = c.f32s();
    // Per channel: broadcast along the output's channel dim.
    let dims: Vec<usize> = c.dims.iter().copied().skip_while(|&d| d == 1).collect();
    let along_channels = if conv { dims == [oc, 1, 1] } else { dims == [oc] };
    if ws.len() != 1 && !(ws.len() == oc && along_channels) {
        return Err(format!(
            "the weight scale has shape {:?}; one scale, or one per output channel ({oc}) along the channel dim, is expected",
            c.dims
        )
        .into());
    }
    let q = w.quant.as_mut().expect("int_weight quantizes");
    if ws.len() == 1 && q.zero_point.len() == 1 {
        q.scale = ws;
    } else {
        q.scale = (0..oc).map(|o| ws[if ws.len() == 1 { 0 } else { o }]).collect();
        let zp = q.zero_point.clone();
        q.zero_point = (0..oc).map(|o| zp[if zp.len() == 1 { 0 } else { o }]).collect();
        q.axis = Some(0);
    }
    let source = if conv { "ConvInteger" } else { "MatMulInteger" };
    let (first, rest) = nodes.split_first().expect("the integer node");
    let out = n.push(
        first,
        Op::DynQLayer(DynQCfg {
            int,
            bias: None,
            clamp: Clamp::NONE,
        }),
        &[x],
    )?;
    let name = n.name.clone();
    if let Some(node) = n.imp.graph().nodes.last_mut() {
        node.source = source.into();
        node.fused.extend(rest.iter().cloned());
        node.fused.push(name);
    }
    one(Value::Tensor(out))
}
