//! Shapes and constants: Flatten, Reshape, Squeeze, Unsqueeze (views of a
//! tensor, or folded on constants), Constant, Shape, Gather, Concat, Cast
//! (folded: the chains that compute a Reshape's target shape), Transpose
//! (of the NHWC input only; absorbed into the input layout).

use crate::ir::Op;
use crate::onnx::attrs::{attr, attr_until, AttrKind::*, Dflt, NodeError};
use crate::onnx::import::{is_permutation, one, tensor_const, Const, Data, Import, Node, Value};
use crate::onnx::registry::{OpDef, Transposed};

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "Flatten",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=1,
        attrs: &[attr("axis", Int, Dflt::Int(1))],
        check: None,
        import: flatten,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "Reshape",
        domain: "",
        opsets: 5..=i64::MAX,
        inputs: 2..=2,
        attrs: &[attr("allowzero", Int, Dflt::Int(0)).range(0, 1)],
        check: None,
        import: reshape,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "Squeeze",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=2,
        attrs: &[attr_until("axes", Ints, Dflt::None, 12)],
        check: None,
        import: squeeze,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "Unsqueeze",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=2,
        attrs: &[attr_until("axes", Ints, Dflt::None, 12)],
        check: None,
        import: unsqueeze,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "Constant",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 0..=0,
        attrs: &[
            attr("value", Tensor, Dflt::None),
            attr("value_float", Float, Dflt::None),
            attr("value_floats", Floats, Dflt::None),
            attr("value_int", Int, Dflt::None),
            attr("value_ints", Ints, Dflt::None),
        ],
        check: None,
        import: constant,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "Transpose",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=1,
        attrs: &[attr("perm", Ints, Dflt::None)],
        check: None,
        import: transpose,
        transposed: Transposed::Own,
    },
    OpDef {
        name: "Shape",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=1,
        attrs: &[attr("start", Int, Dflt::Int(0)), attr("end", Int, Dflt::None)],
        check: None,
        import: shape,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "Gather",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 2..=2,
        attrs: &[attr("axis", Int, Dflt::Int(0))],
        check: None,
        import: gather,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "Slice",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=5,
        attrs: &[
            attr_until("starts", Ints, Dflt::None, 9),
            attr_until("ends", Ints, Dflt::None, 9),
            attr_until("axes", Ints, Dflt::None, 9),
        ],
        check: None,
        import: slice,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "Concat",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=usize::MAX,
        attrs: &[attr("axis", Int, Dflt::None)],
        check: None,
        import: concat,
        transposed: Transposed::Fixed,
    },
    OpDef {
        name: "Cast",
        domain: "",
        opsets: 1..=i64::MAX,
        inputs: 1..=1,
        attrs: &[
            attr("to", Int, Dflt::None),
            attr("saturate", Int, Dflt::Int(1)),
            attr("round_mode", Str, Dflt::None),
        ],
        check: None,
        import: cast,
        transposed: Transposed::Elementwise,
    },
];

/// `dims` split at `axis` into the products before and after it.
fn split_dims(dims: &[usize], axis: i64) -> Result<(usize, usize), NodeError> {
    let rank = dims.len() as i64;
    let a = if axis < 0 { axis + rank } else { axis };
    if !(0..=rank).contains(&a) {
        return Err(NodeError::attr(
            "axis",
            format!("axis {axis} is out of range for shape {dims:?}"),
        ));
    }
    Ok((dims[..a as usize].iter().product(), dims[a as usize..].iter().product()))
}

/// ONNX Reshape semantics: 0 copies the input's dim (unless `allowzero`),
/// -1 is inferred.
fn reshape_dims(input: &[usize], target: &[i64], allowzero: bool) -> Result<Vec<usize>, String> {
    let total: usize = input.iter().product();
    let mut dims = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(1);
            }
            0 if !allowzero => dims.push(*input.get(i).ok_or(format!(
                "shape {target:?}: dim {i} copies a dim the input {input:?} lacks"
            ))?),
            t if t >= 0 => dims.push(t as usize),
            _ => return Err(format!("shape {target:?} is invalid")),
        }
    }
    let known: usize = dims.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} into {target:?}"));
        }
        dims[i] = total / known;
    }
    if dims.iter().product::<usize>() != total {
        return Err(format!("cannot reshape {input:?} ({total} elements) into {target:?}"));
    }
    Ok(dims)
}

/// A view of input 0 with dims `f(its dims)`: a constant keeps its values,
/// a tensor gets a Reshape.
fn view(n: &mut Node<'_>, f: impl Fn(&[usize]) -> Result<Vec<usize>, NodeError>) -> Import {
    match n.arg(0) {
        Some(Value::Const(c)) => {
            let dims = f(&c.dims)?;
            one(Value::Const(Const { dims, ..c }))
        }
        _ => {
            let x = n.tensor(0)?;
            let dims = f(&n.shape(x))?;
            n.push_one(Op::Reshape(dims), &[x])
        }
    }
}

fn flatten(n: &mut Node<'_>) -> Import {
    let axis = n.attrs.int("axis");
    view(n, |d| split_dims(d, axis).map(|(l, r)| vec![l, r]))
}

fn reshape(n: &mut Node<'_>) -> Import {
    let mut target = n.constant(1, "shape")?.i64s();
    // The graph computes one image: a leading dim equal to the batch (a
    // head's `[batch, -1]`, written as a constant by the exporter) is 1.
    let batch = n.imp.model_batch.unwrap_or(1);
    let tensor = matches!(n.arg(0), Some(Value::Tensor(_) | Value::Permuted(..)));
    if batch > 1 && tensor && target.first() == Some(&(batch as i64)) {
        target[0] = 1;
    }
    let allowzero = n.attrs.int("allowzero") != 0;
    view(n, |d| Ok(reshape_dims(d, &target, allowzero)?))
}

/// The axes of a Squeeze or Unsqueeze: the attribute before opset 13, the
/// input from it on.
fn axes(n: &Node<'_>) -> Result<Option<Vec<i64>>, NodeError> {
    if n.opset() < 13 {
        Ok(n.attrs.ints("axes"))
    } else {
        Ok(n.opt_const(1, "axes")?.map(|c| c.i64s()))
    }
}

fn squeeze(n: &mut Node<'_>) -> Import {
    let axes = axes(n)?;
    view(n, |dims| {
        let rank = dims.len() as i64;
        let axes: Vec<usize> = match &axes {
            None => (0..dims.len()).filter(|&i| dims[i] == 1).collect(),
            Some(a) => a.iter().map(|&v| (if v < 0 { v + rank } else { v }) as usize).collect(),
        };
        if let Some(&bad) = axes.iter().find(|&&i| dims.get(i) != Some(&1)) {
            return Err(format!("cannot squeeze axis {bad} of shape {dims:?}").into());
        }
        Ok(dims
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect())
    })
}

fn unsqueeze(n: &mut Node<'_>) -> Import {
    let axes = axes(n)?.ok_or("axes are missing")?;
    view(n, |dims| {
        let rank = (dims.len() + axes.len()) as i64;
        let mut axes: Vec<usize> = axes
            .iter()
            .map(|&v| (if v < 0 { v + rank } else { v }) as usize)
            .collect();
        axes.sort();
        let mut out = dims.to_vec();
        for a in axes {
            if a > out.len() {
                return Err(format!("axis {a} is out of range for shape {dims:?}").into());
            }
            out.insert(a, 1);
        }
        Ok(out)
    })
}

fn constant(n: &mut Node<'_>) -> Import {
    let a = &n.attrs;
    let c = if let Some(t) = a.get("value") {
        tensor_const(t.t.as_ref().ok_or(NodeError::attr("value", "value has no tensor"))?)
            .map_err(|e| NodeError::attr("value", e))?
    } else if let Some(v) = a.get("value_float") {
        Const {
            dims: vec![],
            data: Data::F32(vec![v.f]),
        }
    } else if let Some(v) = a.get("value_floats") {
        Const {
            dims: vec![v.floats.len()],
            data: Data::F32(v.floats.clone()),
        }
    } else if let Some(v) = a.get("value_int") {
        Const::i64(vec![], vec![v.i])
    } else if let Some(v) = a.get("value_ints") {
        Const::i64(vec![v.ints.len()], v.ints.clone())
    } else {
        return Err("has no value".into());
    };
    one(Value::Const(c))
}

/// A Transpose moves no elements: it is held as a permutation
/// ([`Value::Permuted`]) that composes with the next Transposes until they
/// cancel it, or, where only dims of size 1 move, becomes a reshape when
/// a reader needs ONNX's order (the NCHW -> NHWC Transpose of a
/// `[1, c, 1, 1]` tensor before a TFLite-converted head, for one). The NHWC -> NCHW transpose of the model input is absorbed by
/// the importer.
fn transpose(n: &mut Node<'_>) -> Import {
    let v = n.arg(0).ok_or("input is missing")?;
    let s = match v.base() {
        Value::Tensor(t) | Value::Padded(t, _) => n.shape(*t),
        _ => return Err("input 0 is not a computed tensor".into()),
    };
    let rank = s.len();
    let perm: Vec<usize> = match n.attrs.ints("perm") {
        Some(p) => p
            .iter()
            .map(|&v| usize::try_from(v).ok().filter(|&v| v < rank))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| NodeError::attr("perm", format!("perm {p:?} is not a permutation of 0..{rank}")))?,
        None => (0..rank).rev().collect(),
    };
    if !is_permutation(&perm, rank) {
        return Err(NodeError::attr(
            "perm",
            format!("perm {perm:?} is not a permutation of 0..{rank}"),
        ));
    }
    let from = format!("node `{}`", crate::diag::cut(&n.name));
    one(v.permuted(perm, &from))
}

fn shape(n: &mut Node<'_>) -> Import {
    let dims = match n.arg(0) {
        Some(Value::Const(c)) => c.dims,
        _ => n.shape(n.tensor(0)?),
    };
    let rank = dims.len() as i64;
    let clip = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let (s, e) = (clip(n.attrs.int("start")), clip(n.attrs.opt_int("end").unwrap_or(rank)));
    let v: Vec<i64> = dims[s..e.max(s)].iter().map(|&d| d as i64).collect();
    one(Value::Const(Const::i64(vec![v.len()], v)))
}

fn gather(n: &mut Node<'_>) -> Import {
    let data = n.constant(0, "data")?;
    let idx = n.constant(1, "indices")?;
    if n.attrs.int("axis") != 0 || data.dims.len() != 1 {
        return Err("only gathering from a 1-D constant (a shape) is supported".into());
    }
    let len = data.len() as i64;
    let vals = data.i64s();
    let mut out = Vec::new();
    for i in idx.i64s() {
        let j = if i < 0 { i + len } else { i };
        let v = usize::try_from(j).ok().and_then(|j| vals.get(j));
        out.push(*v.ok_or(format!("index {i} is out of range for {len} values"))?);
    }
    let is_f32 = matches!(data.data, Data::F32(_));
    let c = Const::i64(idx.dims.clone(), out);
    one(Value::Const(if is_f32 {
        Const {
            data: Data::F32(c.f32s()),
            ..c
        }
    } else {
        c
    }))
}

/// Slice of a 1-D constant (a shape: `Shape -> Slice` in a head's shape
/// computation), folded; ONNX's clamping of starts and ends, any nonzero
/// step.
fn slice(n: &mut Node<'_>) -> Import {
    let data = n.constant(0, "data")?;
    if data.dims.len() != 1 {
        return Err("only slicing a 1-D constant (a shape) is supported".into());
    }
    let ints = |k: usize, what: &str, attr: &str| -> Result<Option<Vec<i64>>, NodeError> {
        if n.opset() < 10 {
            Ok(n.attrs.ints(attr))
        } else {
            Ok(n.opt_const(k, what)?.map(|c| c.i64s()))
        }
    };
    let one_value = |v: Option<Vec<i64>>, what: &str| -> Result<Option<i64>, NodeError> {
        match v.as_deref() {
            None => Ok(None),
            Some([x]) => Ok(Some(*x)),
            Some(v) => Err(format!("{what} {v:?}: a 1-D slice takes one value").into()),
        }
    };
    let start = one_value(ints(1, "starts", "starts")?, "starts")?.ok_or("starts is missing")?;
    let end = one_value(ints(2, "ends", "ends")?, "ends")?.ok_or("ends is missing")?;
    if let Some(axis) = one_value(ints(3, "axes", "axes")?, "axes")? {
        if axis != 0 && axis != -1 {
            return Err(format!("axis {axis} is out of range for a 1-D constant").into());
        }
    }
    let step = if n.opset() < 10 {
        None
    } else {
        one_value(ints(4, "steps", "steps")?, "steps")?
    }
    .unwrap_or(1);
    if step == 0 {
        return Err("a step of 0 is invalid".into());
    }
    let vals = data.i64s();
    let len = vals.len() as i64;
    let clamp = |v: i64, lo: i64, hi: i64| (if v < 0 { v.saturating_add(len) } else { v }).clamp(lo, hi);
    let mut out = Vec::new();
    if step > 0 {
        let (mut i, e) = (clamp(start, 0, len), clamp(end, 0, len));
        while i < e {
            out.push(vals[i as usize]);
            i += step;
        }
    } else {
        let (mut i, e) = (clamp(start, 0, len - 1), clamp(end, -1, len - 1));
        while i > e {
            out.push(vals[i as usize]);
            i += step;
        }
    }
    one(Value::Const(Const::i64(vec![out.len()], out)))
}

fn concat(n: &mut Node<'_>) -> Import {
    let parts: Vec<Const> = (0..n.ins.len())
        .map(|k| n.constant(k, "part"))
        .collect::<Result<_, _>>()?;
    if parts.iter().any(|p| p.dims.len() != 1) || n.attrs.int("axis") != 0 {
        return Err("only concatenating 1-D constants (shapes) is supported".into());
    }
    let v: Vec<i64> = parts.iter().flat_map(|p| p.i64s()).collect();
    one(Value::Const(Const::i64(vec![v.len()], v)))
}

fn cast(n: &mut Node<'_>) -> Import {
    if let Some(v) = super::quant::dyn_cast(n) {
        return Ok(vec![v?]);
    }
    // mncc computes in float32: a Cast of a tensor between float32 and
    // float16 (a float16 model's, or one kept with float32 inputs and
    // outputs) keeps the float32 values, unrounded.
    let to = n.attrs.int("to");
    if let Some(Value::Tensor(t)) = n.arg(0) {
        return match to {
            1 | 10 => one(Value::Tensor(t)),
            t => Err(NodeError::attr(
                "to",
                format!(
                    "a cast of a computed tensor to {} is not supported (to float32 or float16 is)",
                    crate::onnx::import::elem_type_name(t as i32)
                ),
            )),
        };
    }
    let c = n.constant(0, "input")?;
    let data = match to {
        1 | 10 | 11 => Data::F32(c.f32s()),
        6 | 7 => Data::I64(c.i64s()),
        t => {
            return Err(NodeError::attr(
                "to",
                format!("cast to element type {t} is not supported"),
            ))
        }
    };
    one(Value::Const(Const { dims: c.dims, data }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_semantics() {
        assert_eq!(
            reshape_dims(&[1, 256, 1, 1], &[-1, 256, 1, 1], false).unwrap(),
            vec![1, 256, 1, 1]
        );
        assert_eq!(
            reshape_dims(&[1, 1000, 1, 1], &[1, 1000], false).unwrap(),
            vec![1, 1000]
        );
        assert_eq!(reshape_dims(&[1, 8, 2, 2], &[0, -1], false).unwrap(), vec![1, 32]);
        assert!(reshape_dims(&[1, 8], &[3, -1], false).is_err());
        assert!(reshape_dims(&[1, 8], &[-1, -1], false).is_err());
    }
}
