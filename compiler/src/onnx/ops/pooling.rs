//! Pooling: GlobalAveragePool, AveragePool and ReduceMean where they are
//! a global average over the spatial axes, and MaxPool.

use crate::ir::{Op, PoolCfg};
use crate::onnx::attrs::{attr, attr_until, AttrKind::*, Dflt, NodeError};
use crate::onnx::import::{one, usizes, Import, Node, Value};
use crate::onnx::ops::conv::window;
use crate::onnx::registry::{OpDef, Transposed, MAX_DIM};

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "GlobalAveragePool",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=1,
        attrs: &[],
        check: None,
        import: global_average_pool,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "AveragePool",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=1,
        attrs: &[
            attr("auto_pad", Str, Dflt::Str("NOTSET")),
            attr("ceil_mode", Int, Dflt::Int(0)).range(0, 1),
            attr("count_include_pad", Int, Dflt::Int(0)).range(0, 1),
            attr("kernel_shape", Ints, Dflt::None).len(2).range(1, MAX_DIM),
            attr("pads", Ints, Dflt::None).len(4).range(0, MAX_DIM),
            attr("strides", Ints, Dflt::None).len(2).range(1, MAX_DIM),
            attr("dilations", Ints, Dflt::None).len(2).range(1, MAX_DIM),
        ],
        check: None,
        import: average_pool,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "MaxPool",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=1,
        attrs: &[
            attr("auto_pad", Str, Dflt::Str("NOTSET")),
            attr("ceil_mode", Int, Dflt::Int(0)).range(0, 1),
            attr("dilations", Ints, Dflt::None).len(2).range(1, 1),
            attr("kernel_shape", Ints, Dflt::None).len(2).range(1, MAX_DIM),
            attr("pads", Ints, Dflt::None).len(4).range(0, MAX_DIM),
            attr("storage_order", Int, Dflt::Int(0)).range(0, 0),
            attr("strides", Ints, Dflt::None).len(2).range(1, MAX_DIM),
        ],
        check: None,
        import: max_pool,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "ReduceMean",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=2,
        attrs: &[
            attr_until("axes", Ints, Dflt::None, 17),
            attr("keepdims", Int, Dflt::Int(1)).range(0, 1),
            attr("noop_with_empty_axes", Int, Dflt::Int(0)).range(0, 1),
        ],
        check: None,
        import: reduce_mean,
        transposed: Transposed::Own,
    },
];

fn global_average_pool(n: &mut Node<'_>) -> Import {
    let x = n.tensor(0)?;
    n.push_one(Op::GlobalAvgPool, &[x])
}

fn average_pool(n: &mut Node<'_>) -> Import {
    let x = n.tensor(0)?;
    let s = n.shape(x);
    if s.len() != 4 {
        return Err(format!("the input has shape {s:?}; a 2-D pool reads [n, c, h, w]").into());
    }
    let k = usizes(
        &n.attrs
            .ints("kernel_shape")
            .ok_or(NodeError::attr("kernel_shape", "kernel_shape is missing"))?,
        "kernel_shape",
    )?;
    let pads = n.attrs.ints("pads").unwrap_or(vec![0; 4]);
    if k != s[2..] || pads.iter().any(|&p| p != 0) {
        return Err(format!(
            "only a global average pool is supported (kernel {k:?} over the whole {}x{} input, no padding)",
            s[2], s[3]
        )
        .into());
    }
    n.push_one(Op::GlobalAvgPool, &[x])
}

fn max_pool(n: &mut Node<'_>) -> Import {
    if n.output_read(1) {
        return Err("the Indices output is read; only the pooled values are supported".into());
    }
    let x = n.tensor(0)?;
    let k = usizes(
        &n.attrs
            .ints("kernel_shape")
            .ok_or(NodeError::attr("kernel_shape", "kernel_shape is missing"))?,
        "kernel_shape",
    )?;
    let [kh, kw] = k[..] else {
        return Err(NodeError::attr(
            "kernel_shape",
            format!("kernel_shape {k:?} must have 2 values"),
        ));
    };
    let (stride, pads) = window(n, x, [0; 4], [kh, kw], "max pool")?;
    let cfg = PoolCfg {
        kernel: [kh, kw],
        stride,
        pads,
        ceil: n.attrs.int("ceil_mode") != 0,
    };
    n.push_one(Op::MaxPool(cfg), &[x])
}

fn reduce_mean(n: &mut Node<'_>) -> Import {
    // On a transposed tensor (NHWC, in graphs converted op by op), the
    // axes name the transposed dims: perm[a] is the tensor's.
    let (x, perm) = match n.arg(0) {
        Some(Value::Permuted(inner, p, from)) => match *inner {
            Value::Tensor(t) => (t, Some((p, from))),
            _ => return Err("input 0 is a transposed Pad output; only a Conv may read a Pad".into()),
        },
        _ => (n.tensor(0)?, None),
    };
    let axes = if n.opset() < 18 {
        n.attrs.ints("axes")
    } else {
        n.opt_const(1, "axes")?.map(|c| c.i64s())
    };
    let mut axes = axes.ok_or("reducing over all axes is not supported (give axes [2, 3])")?;
    axes.iter_mut().for_each(|v| *v = if *v < 0 { *v + 4 } else { *v });
    let given = axes.clone();
    if let Some((p, _)) = &perm {
        for a in axes.iter_mut() {
            *a = usize::try_from(*a)
                .ok()
                .and_then(|i| p.get(i))
                .map_or(-1, |&d| d as i64);
        }
    }
    axes.sort();
    if axes != [2, 3] {
        return Err(match &perm {
            None => format!("only the mean over the spatial axes [2, 3] is supported, not {axes:?}"),
            Some((p, _)) => format!(
                "only the mean over the spatial axes is supported; axes {given:?} of a tensor transposed by {p:?} are not"
            ),
        }
        .into());
    }
    let name = n.name.clone();
    let t = n.push(&name, Op::GlobalAvgPool, &[x])?;
    let keep = |v: Value| match perm.clone() {
        Some((p, from)) => v.permuted(p, &from),
        None => v,
    };
    if n.attrs.int("keepdims") == 0 {
        // The dims left keep the tensor's order ([n, c] either way for
        // NCHW and NHWC).
        if let Some((p, _)) = &perm {
            let left: Vec<usize> = p.iter().copied().filter(|&d| d < 2).collect();
            if left != [0, 1] {
                return Err(
                    format!("the mean without keepdims of a tensor transposed by {p:?} reorders its dims").into(),
                );
            }
        }
        let c = n.shape(t)[1];
        one(Value::Tensor(n.push(
            &format!("{name}.squeeze"),
            Op::Reshape(vec![1, c]),
            &[t],
        )?))
    } else {
        one(keep(Value::Tensor(t)))
    }
}
