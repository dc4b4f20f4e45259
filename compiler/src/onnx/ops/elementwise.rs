//! Elementwise operators: Relu, Clip, HardSigmoid, HardSwish (activations
//! the passes fuse into the layer before), Sigmoid, Add, Sub and Div by a
//! constant, Mul (residuals, biases,
//! per-channel affines, squeeze-and-excitation), and the identities of
//! inference, Dropout and Identity.

use crate::ir::{Activation, Clamp, NormalizeCfg, Op};
use crate::onnx::attrs::{attr, attr_until, AttrKind::*, Dflt, NodeError};
use crate::onnx::import::{one, Const, Data, Import, Node, Value};
use crate::onnx::registry::{OpDef, Transposed};

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "Relu",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=1,
        attrs: &[],
        check: None,
        import: relu,
        transposed: Transposed::Elementwise,
    },
    OpDef {
        name: "Clip",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=3,
        attrs: &[
            attr_until("min", Float, Dflt::Float(f32::NEG_INFINITY), 10).infinite(),
            attr_until("max", Float, Dflt::Float(f32::INFINITY), 10).infinite(),
        ],
        check: None,
        import: clip,
        transposed: Transposed::Elementwise,
    },
    OpDef {
        name: "HardSigmoid",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=1,
        attrs: &[
            attr("alpha", Float, Dflt::Float(0.2)),
            attr("beta", Float, Dflt::Float(0.5)),
        ],
        check: None,
        import: hard_sigmoid,
        transposed: Transposed::Elementwise,
    },
    OpDef {
        name: "Sigmoid",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=1,
        attrs: &[],
        check: None,
        import: sigmoid,
        transposed: Transposed::Elementwise,
    },
    OpDef {
        name: "HardSwish",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=1,
        attrs: &[],
        check: None,
        import: hard_swish,
        transposed: Transposed::Elementwise,
    },
    OpDef {
        name: "Add",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 2..=2,
        attrs: &[],
        check: None,
        import: add,
        transposed: Transposed::Elementwise,
    },
    OpDef {
        name: "Sub",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 2..=2,
        attrs: &[],
        check: None,
        import: sub,
        transposed: Transposed::Elementwise,
    },
    OpDef {
        name: "Div",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 2..=2,
        attrs: &[],
        check: None,
        import: div,
        transposed: Transposed::Elementwise,
    },
    OpDef {
        name: "Mul",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 2..=2,
        attrs: &[],
        check: None,
        import: mul,
        transposed: Transposed::Elementwise,
    },
    OpDef {
        name: "Dropout",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=3,
        attrs: &[
            attr("ratio", Float, Dflt::Float(0.5)),
            attr("seed", Int, Dflt::None),
            attr("is_test", Int, Dflt::Int(0)),
        ],
        check: None,
        import: dropout,
        transposed: Transposed::Elementwise,
    },
    OpDef {
        name: "Identity",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=1,
        attrs: &[],
        check: None,
        import: identity,
        transposed: Transposed::Elementwise,
    },
];

fn relu(n: &mut Node<'_>) -> Import {
    let x = n.tensor(0)?;
    n.push_one(Op::Clip(Clamp::RELU), &[x])
}

fn clip(n: &mut Node<'_>) -> Import {
    let x = n.tensor(0)?;
    let (min, max) = if n.opset() < 11 {
        (n.attrs.float("min"), n.attrs.float("max"))
    } else {
        let bound = |k, what, d| -> Result<f32, NodeError> {
            n.opt_const(k, what)?
                .map_or(Ok(d), |c| c.scalar().ok_or(format!("{what} must be a scalar").into()))
        };
        (bound(1, "min", f32::NEG_INFINITY)?, bound(2, "max", f32::INFINITY)?)
    };
    n.push_one(Op::Clip(Clamp { min, max }), &[x])
}

fn hard_sigmoid(n: &mut Node<'_>) -> Import {
    let x = n.tensor(0)?;
    let act = Activation::HardSigmoid {
        alpha: n.attrs.float("alpha"),
        beta: n.attrs.float("beta"),
    };
    n.push_one(Op::Activation(act), &[x])
}

fn hard_swish(n: &mut Node<'_>) -> Import {
    let x = n.tensor(0)?;
    n.push_one(Op::Activation(Activation::HardSwish), &[x])
}

fn add(n: &mut Node<'_>) -> Import {
    match (n.arg(0), n.arg(1)) {
        (Some(Value::Tensor(a)), Some(Value::Tensor(b))) => n.push_one(Op::Add, &[a, b]),
        (Some(Value::Tensor(t)), Some(Value::Const(c))) | (Some(Value::Const(c)), Some(Value::Tensor(t))) => {
            match n.fold_bias(t, &c) {
                Ok(v) => one(v),
                // Not the bias of a conv or dense layer: a per-channel shift
                // (passes fold it into a neighbouring conv where they can).
                Err(_) => {
                    let offset = n.per_channel(t, &c)?;
                    let scale = vec![1.0; offset.len()];
                    n.push_one(Op::Normalize(NormalizeCfg { scale, offset }), &[t])
                }
            }
        }
        _ => Err("adds two constants or a pending Pad; expected tensors".into()),
    }
}

/// `c` with every value through `f`, as floats.
fn map_const(c: &Const, f: impl Fn(f32) -> f32) -> Const {
    Const {
        dims: c.dims.clone(),
        data: Data::F32(c.f32s().into_iter().map(f).collect()),
    }
}

/// `x - c` is `x + (-c)` (a bias, or a per-channel shift); `c - x` a
/// per-channel affine with scale -1 (hard-swish written out, `x - mean`
/// normalizations).
fn sub(n: &mut Node<'_>) -> Import {
    match (n.arg(0), n.arg(1)) {
        (Some(Value::Tensor(t)), Some(Value::Const(c))) => {
            let c = map_const(&c, |v| -v);
            match n.fold_bias(t, &c) {
                Ok(v) => one(v),
                Err(_) => {
                    let offset = n.per_channel(t, &c)?;
                    let scale = vec![1.0; offset.len()];
                    n.push_one(Op::Normalize(NormalizeCfg { scale, offset }), &[t])
                }
            }
        }
        (Some(Value::Const(c)), Some(Value::Tensor(t))) => {
            let offset = n.per_channel(t, &c)?;
            let scale = vec![-1.0; offset.len()];
            n.push_one(Op::Normalize(NormalizeCfg { scale, offset }), &[t])
        }
        (Some(Value::Tensor(_)), Some(Value::Tensor(_))) => {
            Err("subtracts two computed tensors; only a constant (per tensor or per channel) is supported".into())
        }
        _ => Err("subtracts two constants or a pending Pad; expected a tensor".into()),
    }
}

/// `x / c` is `x * (1 / c)`: a per-channel scale (the reciprocal rounded
/// once to f32, so a value may differ from onnxruntime's quotient by one
/// unit in the last place).
fn div(n: &mut Node<'_>) -> Import {
    match (n.arg(0), n.arg(1)) {
        (Some(Value::Tensor(t)), Some(Value::Const(c))) => {
            let scale = n.per_channel(t, &map_const(&c, |v| 1.0 / v))?;
            let offset = vec![0.0; scale.len()];
            n.push_one(Op::Normalize(NormalizeCfg { scale, offset }), &[t])
        }
        _ => Err("only the division of a tensor by a constant (per tensor or per channel) is supported".into()),
    }
}

fn mul(n: &mut Node<'_>) -> Import {
    if let Some(r) = super::quant::dyn_mul(n) {
        return r;
    }
    match (n.arg(0), n.arg(1)) {
        (Some(Value::Tensor(a)), Some(Value::Tensor(b))) => {
            // The full-size operand first; the [n, c, 1, 1] one is broadcast.
            let (sa, sb) = (n.shape(a), n.shape(b));
            let (x, s) = if sa.iter().product::<usize>() >= sb.iter().product::<usize>() {
                (a, b)
            } else {
                (b, a)
            };
            n.push_one(Op::Mul, &[x, s])
        }
        (Some(Value::Tensor(t)), Some(Value::Const(c))) | (Some(Value::Const(c)), Some(Value::Tensor(t))) => {
            let scale = n.per_channel(t, &c)?;
            let offset = vec![0.0; scale.len()];
            n.push_one(Op::Normalize(NormalizeCfg { scale, offset }), &[t])
        }
        _ => Err("multiplies two constants or a pending Pad; expected a tensor".into()),
    }
}

fn dropout(n: &mut Node<'_>) -> Import {
    if n.output_read(1) {
        return Err("the mask output is read; only inference is supported".into());
    }
    if n.opt_const(2, "training_mode")?
        .is_some_and(|c| c.i64s().iter().any(|&v| v != 0))
    {
        return Err("training_mode = true is not supported (inference only)".into());
    }
    Ok(vec![n.arg(0).ok_or("input is missing")?])
}

fn identity(n: &mut Node<'_>) -> Import {
    Ok(vec![n.arg(0).ok_or("input is missing")?])
}

fn sigmoid(n: &mut Node<'_>) -> Import {
    let x = n.tensor(0)?;
    n.push_one(Op::Sigmoid, &[x])
}
