//! The import state: ONNX values as they become IR tensors or constants,
//! and [`Node`], what an operator's import function works with.

use super::attrs::{Attrs, NodeError};
use super::registry::Transposed;
use crate::diag::Diagnostic;
use crate::ir::{DenseCfg, ElemType, Graph, InputSpec, Layout, Op, Param, TensorId, INPUT};
use onnx_protobuf::{GraphProto, ModelProto, NodeProto, TensorProto};
use std::collections::{HashMap, HashSet};

/// A constant's values.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// Floats (float, double).
    F32(Vec<f32>),
    /// Integers (int32, int64, bool).
    I64(Vec<i64>),
    /// 8-bit integers (int8, uint8: the element type says which).
    Int8(ElemType, Vec<i32>),
    /// A DequantizeLinear of a constant: the integers with their
    /// quantization (a QDQ model's weights and int32 biases). As floats,
    /// the dequantized values ([`Param::real`]).
    Quantized(Param),
}

/// A constant tensor (initializer, Constant node or folded sub-graph).
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    /// Dimensions.
    pub dims: Vec<usize>,
    /// Values.
    pub data: Data,
}

impl Const {
    /// The values as floats.
    pub fn f32s(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
            Data::Int8(_, v) => v.iter().map(|&x| x as f32).collect(),
            Data::Quantized(p) => p.to_f32().into_owned(),
        }
    }
    /// The values as integers.
    pub fn i64s(&self) -> Vec<i64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I64(v) => v.clone(),
            Data::Int8(_, v) => v.iter().map(|&x| x as i64).collect(),
            Data::Quantized(p) => p.to_f32().iter().map(|&x| x as i64).collect(),
        }
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::Int8(_, v) => v.len(),
            Data::Quantized(p) => p.len(),
        }
    }
    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Integers of the given shape.
    pub fn i64(dims: Vec<usize>, v: Vec<i64>) -> Const {
        Const {
            dims,
            data: Data::I64(v),
        }
    }
    /// The quantized parameter, when this is a dequantized constant.
    pub fn quantized(&self) -> Option<&Param> {
        match &self.data {
            Data::Quantized(p) => Some(p),
            _ => None,
        }
    }

    /// The constant as a weight of `dims`: the quantized integers when it
    /// is a dequantized constant, else its floats.
    pub fn param(&self, dims: Vec<usize>) -> Param {
        match &self.data {
            Data::Quantized(p) => Param {
                shape: dims,
                ..p.clone()
            },
            _ => Param::new(dims, self.f32s()),
        }
    }

    /// The constant that, broadcast against a tensor, gives what this one
    /// broadcast against the tensor transposed by `perm` gives: its dims
    /// (padded with leading 1s to `perm`'s rank) and values put back in
    /// the tensor's order. `None` where that is not a plain broadcast (more
    /// dims than the tensor, a dequantized constant).
    pub fn unpermuted(&self, perm: &[usize]) -> Option<Const> {
        let r = perm.len();
        if self.len() <= 1 {
            return Some(self.clone());
        }
        if self.dims.len() > r {
            return None;
        }
        let mut d = vec![1; r - self.dims.len()];
        d.extend(&self.dims);
        // The tensor's dim perm[i] is the transposed one's dim i.
        let mut dims = vec![1; r];
        for i in 0..r {
            dims[perm[i]] = d[i];
        }
        let mut stride = vec![1; r];
        for i in (0..r.saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * d[i + 1];
        }
        let mut at = vec![0; r];
        let mut from = Vec::with_capacity(self.len());
        for _ in 0..self.len() {
            from.push((0..r).map(|i| at[perm[i]] * stride[i]).sum::<usize>());
            for j in (0..r).rev() {
                at[j] += 1;
                if at[j] < dims[j] {
                    break;
                }
                at[j] = 0;
            }
        }
        let pick = |v: &[i32]| from.iter().map(|&o| v[o]).collect::<Vec<i32>>();
        let data = match &self.data {
            Data::F32(v) => Data::F32(from.iter().map(|&o| v[o]).collect()),
            Data::I64(v) => Data::I64(from.iter().map(|&o| v[o]).collect()),
            Data::Int8(t, v) => Data::Int8(*t, pick(v)),
            Data::Quantized(_) => return None,
        };
        Some(Const { dims, data })
    }

    /// The value, if there is exactly one.
    pub fn scalar(&self) -> Option<f32> {
        (self.len() == 1).then(|| self.f32s()[0])
    }
}

/// What an ONNX value stands for during import.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A tensor computed at run time.
    Tensor(TensorId),
    /// A constant (initializer, Constant node or folded sub-graph).
    Const(Const),
    /// The output of a Pad node: a tensor and its pending pads `[top, left, bottom, right]`.
    Padded(TensorId, [usize; 4]),
    /// DynamicQuantizeLinear's scale (`true`) or zero point (`false`) of
    /// the dynamically quantized tensor: read only by the integer layer on
    /// that tensor and the Mul of the scales.
    DynParam(TensorId, bool),
    /// The Mul of a dynamically quantized tensor's scale by a constant
    /// weight scale (one, or one per output channel).
    DynScale(TensorId, Const),
    /// The `int32` sums of a ConvInteger or MatMulInteger on a
    /// dynamically quantized tensor, not yet computed: the layer becomes an
    /// [`Op::DynQLayer`] once the Cast to float and the Mul by the scales
    /// follow.
    IntSums(Box<PendingSums>),
    /// A transposed value, nothing moved yet: the ONNX value is `inner`
    /// (a tensor, or a pending Pad of one) transposed by `perm` (ONNX
    /// Transpose's meaning: its dim `i` is `inner`'s dim `perm[i]`). Made
    /// by a Transpose that reorders elements; carried through elementwise
    /// operators, Pad and ReduceMean, and cancelled by the Transpose back
    /// ([`Transposed`](super::registry::Transposed)). Never the identity.
    /// The third field says what made it ("node `t`"), for errors.
    Permuted(Box<Value>, Vec<usize>, String),
    /// The output of a node that failed (already reported).
    Failed,
}

impl Value {
    /// The value under any pending permutation.
    pub fn base(&self) -> &Value {
        match self {
            Value::Permuted(v, ..) => v.base(),
            v => v,
        }
    }

    /// `self` transposed by `perm` (ONNX Transpose's meaning) by node
    /// `from`, nothing moved: permutations compose, and the identity is
    /// the value itself.
    pub fn permuted(self, perm: Vec<usize>, from: &str) -> Value {
        match self {
            Value::Permuted(inner, p, _) => inner.permuted(perm.iter().map(|&i| p[i]).collect(), from),
            v if perm.iter().enumerate().all(|(i, &d)| i == d) => v,
            v => Value::Permuted(Box::new(v), perm, from.to_string()),
        }
    }
}

/// Whether every path from value `input` through elementwise operators
/// (those the registry marks [`Transposed::Elementwise`] or
/// [`Transposed::Scalars`]) ends in a Transpose by [0, 3, 1, 2], and one
/// does: the input is NHWC.
fn reaches_nchw_transposes(graph: &GraphProto, input: &str) -> bool {
    let mut todo = vec![input.to_string()];
    let mut seen = HashSet::new();
    let mut transposes = 0;
    while let Some(v) = todo.pop() {
        if !seen.insert(v.clone()) {
            continue;
        }
        if graph.output.iter().any(|o| o.name == v) {
            return false;
        }
        for n in graph.node.iter().filter(|n| n.input.contains(&v)) {
            let perm = n.attribute.iter().find(|a| a.name == "perm").map(|a| a.ints.as_slice());
            if n.op_type == "Transpose" && perm == Some(&[0, 3, 1, 2]) {
                transposes += 1;
                continue;
            }
            let passes = super::ops::find(&n.domain, &n.op_type)
                .is_some_and(|d| matches!(d.transposed, Transposed::Elementwise | Transposed::Scalars));
            if !passes {
                return false;
            }
            todo.extend(n.output.iter().filter(|o| !o.is_empty()).cloned());
        }
    }
    transposes > 0
}

/// Whether transposing `shape` by `perm` moves only dims of size 1, so that
/// every element keeps its place: a reshape.
pub fn moves_only_ones(shape: &[usize], perm: &[usize]) -> bool {
    let moved: Vec<usize> = perm.iter().copied().filter(|&d| shape[d] != 1).collect();
    moved.windows(2).all(|w| w[0] < w[1])
}

/// Whether `perm` is a permutation of `0..rank`.
pub fn is_permutation(perm: &[usize], rank: usize) -> bool {
    let mut seen = vec![false; rank];
    perm.len() == rank && perm.iter().all(|&d| d < rank && !std::mem::replace(&mut seen[d], true))
}

/// The pending sums of a [`Value::IntSums`].
#[derive(Clone, Debug, PartialEq)]
pub struct PendingSums {
    /// The dynamically quantized input.
    pub x: TensorId,
    /// The integer layer (its weight scale still 1).
    pub int: crate::ir::DynInt,
    /// Whether a Cast to float followed.
    pub float: bool,
    /// The ONNX nodes so far (the layer, the Cast).
    pub nodes: Vec<String>,
}

/// What an import function returns: one value per node output.
pub type Import = Result<Vec<Value>, NodeError>;

/// A tensor initializer or a Constant node's tensor as a [`Const`].
pub fn tensor_const(t: &TensorProto) -> Result<Const, String> {
    if !t.external_data.is_empty() {
        return Err("external data is not supported (save the model with its weights inside)".into());
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dim {d}")))
        .collect::<Result<_, _>>()?;
    let n = crate::limits::elements(&dims)?;
    let raw = &t.raw_data;
    let data = match t.data_type {
        1 => Data::F32(if raw.is_empty() {
            t.float_data.clone()
        } else {
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        }),
        11 => Data::F32(if raw.is_empty() {
            t.double_data.iter().map(|&v| v as f32).collect()
        } else {
            raw.chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                .collect()
        }),
        7 => Data::I64(if raw.is_empty() {
            t.int64_data.clone()
        } else {
            raw.chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                .collect()
        }),
        6 => Data::I64(if raw.is_empty() {
            t.int32_data.iter().map(|&v| v as i64).collect()
        } else {
            raw.chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect()
        }),
        // float16: two bytes each in raw_data, else int32_data holds the
        // bits. mncc computes in float32: converted, exactly.
        10 => Data::F32(if raw.is_empty() {
            t.int32_data
                .iter()
                .map(|&v| crate::weights::f16_to_f32(v as u16))
                .collect()
        } else {
            raw.chunks_exact(2)
                .map(|b| crate::weights::f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect()
        }),
        // uint8, int8: one byte each in raw_data, else int32_data
        2 => Data::Int8(
            ElemType::U8,
            if raw.is_empty() {
                t.int32_data.iter().map(|&v| v as u8 as i32).collect()
            } else {
                raw.iter().map(|&b| b as i32).collect()
            },
        ),
        3 => Data::Int8(
            ElemType::I8,
            if raw.is_empty() {
                t.int32_data.iter().map(|&v| v as i8 as i32).collect()
            } else {
                raw.iter().map(|&b| b as i8 as i32).collect()
            },
        ),
        // bool: one byte each in raw_data, else int32_data
        9 => Data::I64(if raw.is_empty() {
            t.int32_data.iter().map(|&v| v as i64).collect()
        } else {
            raw.iter().map(|&b| b as i64).collect()
        }),
        other => {
            return Err(format!(
                "element type {} is not supported (float, float16, double, int8, uint8, int32, int64, bool are)",
                elem_type_name(other)
            ))
        }
    };
    let c = Const { dims, data };
    if c.len() != n {
        return Err(format!("holds {} values for shape {:?}", c.len(), c.dims));
    }
    Ok(c)
}

/// ONNX's name of element type `t` (`TensorProto.DataType`).
pub fn elem_type_name(t: i32) -> String {
    let name = match t {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "double",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        17..=20 => "float8",
        21 => "uint4",
        22 => "int4",
        23 => "float4",
        _ => return format!("{t}"),
    };
    format!("{name} ({t})")
}

/// `v` as non-negative sizes (`what` names them in the error).
pub fn usizes(v: &[i64], what: &str) -> Result<Vec<usize>, String> {
    v.iter()
        .map(|&x| usize::try_from(x).map_err(|_| format!("{what} has a negative value {x}")))
        .collect()
}

/// A node's name: its own, or `OpType_index` when it has none.
pub fn node_name(n: &NodeProto, i: usize) -> String {
    if n.name.is_empty() {
        format!("{}_{i}", n.op_type)
    } else {
        n.name.clone()
    }
}

/// The state of an import.
pub struct Importer {
    /// The model's opset of the default domain.
    pub opset: i64,
    /// Every ONNX value seen so far, by name.
    pub values: HashMap<String, Value>,
    /// The problems found so far.
    pub errors: Vec<Diagnostic>,
    /// The graph being built (made by [`Importer::input`]).
    g: Option<Graph>,
    /// How many nodes (and graph outputs) read each value.
    pub readers: HashMap<String, usize>,
    /// IR node names taken so far.
    names: HashSet<String>,
    /// The input shape the user gives (`--input-shape`), in the model
    /// input's own dim order: it fixes symbolic dims.
    pub input_shape: Option<Vec<usize>>,
    /// Images per run: given by the user (`--batch`) before the input is
    /// read, else the input's batch dim (1 if symbolic) after.
    pub batch: Option<usize>,
    /// The batch the model's input fixes, if any (> 1): the graph computes
    /// one image, so a Reshape's leading dim equal to it means the batch.
    pub model_batch: Option<usize>,
}

impl Importer {
    /// An import of a model of `opset`.
    pub fn new(opset: i64) -> Importer {
        Importer {
            opset,
            values: HashMap::new(),
            errors: Vec::new(),
            g: None,
            readers: HashMap::new(),
            names: HashSet::new(),
            input_shape: None,
            batch: None,
            model_batch: None,
        }
    }

    /// The graph built.
    pub fn graph(&mut self) -> &mut Graph {
        self.g.as_mut().expect("graph created by input()")
    }

    /// The graph built, to read.
    pub fn graph_ref(&self) -> &Graph {
        self.g.as_ref().expect("graph created by input()")
    }

    /// The graph, taken.
    pub fn finish(&mut self) -> Graph {
        self.g.take().expect("input() creates the graph")
    }

    /// The shape of tensor `t`.
    pub fn shape(&self, t: TensorId) -> Vec<usize> {
        self.g.as_ref().expect("graph").tensors[t].shape.clone()
    }

    /// Creates the graph from the model's one real input.
    pub fn input(&mut self, graph: &GraphProto, name: &str, model: &ModelProto) -> Result<(), Vec<Diagnostic>> {
        let inputs: Vec<_> = graph
            .input
            .iter()
            .filter(|i| !self.values.contains_key(&i.name))
            .collect();
        let [input] = inputs[..] else {
            let names: Vec<String> = inputs.iter().map(|i| format!("`{}`", i.name)).collect();
            return Err(vec![Diagnostic::msg(format!(
                "the model has {} inputs ({}); mncc compiles models with one image input",
                inputs.len(),
                names.join(", ")
            ))]);
        };
        let at = |m: String| {
            vec![Diagnostic::error(
                crate::diag::Location::OnnxValue {
                    kind: "input",
                    name: input.name.clone(),
                },
                m,
            )]
        };
        let Some(onnx_protobuf::type_proto::Value::TensorType(tt)) =
            input.type_.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(at("is not a tensor".into()));
        };
        // A float16 input: the generated code takes its halves, and a
        // first layer converts them (the layers compute in float32).
        let dtype = match tt.elem_type {
            1 => ElemType::F32,
            10 => ElemType::F16,
            t => {
                return Err(at(format!(
                    "element type {} is not supported (float32 and float16 are)",
                    elem_type_name(t)
                )))
            }
        };
        let mut bad = Vec::new();
        let dims: Vec<Option<usize>> = tt
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .enumerate()
                    .map(|(i, d)| match &d.value {
                        Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimValue(v)) => {
                            match usize::try_from(*v) {
                                Ok(v) if v <= crate::limits::MAX_DIM => Some(v),
                                _ => {
                                    bad.push(format!(
                                        "dimension {i} is {v}; a dimension is 0 to {}",
                                        crate::limits::MAX_DIM
                                    ));
                                    None
                                }
                            }
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !bad.is_empty() {
            return Err(at(bad.join("; ")));
        }
        let mut dims = dims;
        if let Some(want) = &self.input_shape {
            if want.len() != dims.len() {
                return Err(at(format!(
                    "has {} dims; the input shape given ({want:?}) has {}",
                    dims.len(),
                    want.len()
                )));
            }
            for (i, (d, &w)) in dims.iter_mut().zip(want).enumerate() {
                match *d {
                    Some(v) if v != w => bad.push(format!("dimension {i} is {v}; the input shape given says {w}")),
                    _ => *d = Some(w),
                }
            }
            if !bad.is_empty() {
                return Err(at(bad.join("; ")));
            }
        }
        // An image, or a batch of feature vectors (a classifier head on
        // its own: `[batch, features]`).
        if dims.len() != 4 && dims.len() != 2 {
            return Err(at(format!(
                "has {} dims; an image input has 4 (NCHW or NHWC), a feature input 2 ([batch, features])",
                dims.len()
            )));
        }
        // Every operator mncc computes treats the images of a batch
        // independently: the graph computes one, and any batch runs it per
        // image, whatever batch the file was exported with.
        self.model_batch = dims[0].filter(|&b| b > 1);
        self.batch = Some(self.batch.or(dims[0]).unwrap_or(1));
        if self.batch.is_some_and(|b| b == 0 || b > crate::limits::MAX_BATCH) {
            return Err(at(format!(
                "has batch size {}; a batch is 1 to {}",
                self.batch.unwrap_or(0),
                crate::limits::MAX_BATCH
            )));
        }
        let fixed = |i: usize| {
            dims[i].ok_or_else(|| {
                at(format!(
                    "dimension {i} is symbolic: give the input shape (`mncc ... --input-shape 1,3,224,224`, `Build::input_shape`, or `input_shape = [1, 3, 224, 224]` in `mobilenet!`), in the input's own dim order"
                ))
            })
        };
        // An NHWC input: every path from it through elementwise operators
        // (and QuantizeLinear: TFLite models converted by tf2onnx) ends in
        // a Transpose to NCHW. The input is stored as it comes and read as
        // the NCHW tensor transposed by [0, 2, 3, 1] (`Value::Permuted`):
        // the Transposes cancel that, the operators before them run on it.
        let nhwc = reaches_nchw_transposes(graph, &input.name);
        let nhwc = nhwc && dims.len() == 4;
        let (layout, shape) = if dims.len() == 2 {
            (Layout::Nchw, vec![1, fixed(1)?])
        } else if nhwc {
            (Layout::Nhwc, vec![1, fixed(3)?, fixed(1)?, fixed(2)?])
        } else {
            (Layout::Nchw, vec![1, fixed(1)?, fixed(2)?, fixed(3)?])
        };
        if shape.contains(&0) {
            return Err(at(format!("has shape {shape:?}: an empty image")));
        }
        crate::limits::elements(&shape).map_err(|e| at(format!("is too large: {e}")))?;
        let description = format!(
            "ONNX model{}{}, opset {}",
            if model.producer_name.is_empty() {
                String::new()
            } else {
                format!(" from {}", model.producer_name)
            },
            if model.producer_version.is_empty() {
                String::new()
            } else {
                format!(" {}", model.producer_version)
            },
            self.opset
        );
        self.g = Some(Graph::new(name, &description, InputSpec { dtype, layout }, shape));
        let mut x = INPUT;
        if dtype == ElemType::F16 {
            let g = self.graph();
            x = g
                .push(&format!("{}.to_float32", input.name), Op::Cast(ElemType::F32), &[INPUT])
                .map_err(at)?;
            if let Some(n) = g.nodes.last_mut() {
                n.source = "(float16 input)".into();
            }
        }
        let v = if nhwc {
            Value::Tensor(x).permuted(vec![0, 2, 3, 1], "the NHWC model input")
        } else {
            Value::Tensor(x)
        };
        self.values.insert(input.name.clone(), v);
        Ok(())
    }

    /// Marks every output of `n` failed (its readers report nothing more).
    pub fn fail(&mut self, n: &NodeProto) {
        for o in &n.output {
            self.values.insert(o.clone(), Value::Failed);
        }
    }

    /// `v` in the order ONNX gives it, for a reader that needs that order
    /// (`reader` names it): a tensor transposed only in dims of size 1
    /// becomes a Reshape named after `at` (the node reading it); any other
    /// transposed value is an error.
    pub fn in_onnx_order(&mut self, v: Value, at: &str, reader: &str) -> Result<Value, String> {
        let Value::Permuted(inner, perm, from) = v else {
            return Ok(v);
        };
        let onnx_shape = |s: &[usize]| perm.iter().map(|&d| s[d]).collect::<Vec<usize>>();
        match *inner {
            Value::Tensor(t) if moves_only_ones(&self.shape(t), &perm) => {
                let shape = onnx_shape(&self.shape(t));
                let name = self.unique(&format!("{at}.transpose"));
                let g = self.graph();
                let r = g.push(&name, Op::Reshape(shape), &[t])?;
                if let Some(n) = g.nodes.last_mut() {
                    n.source = "Transpose".into();
                }
                Ok(Value::Tensor(r))
            }
            Value::Tensor(t) => Err(format!(
                "{reader} reads a tensor transposed by {perm:?} (from {:?} to {:?}, last by {}), which reorders elements, and no Transpose before it cancels that; mncc carries transposes through elementwise operators, Pad and ReduceMean until one cancels them, and moves no elements",
                self.shape(t),
                onnx_shape(&self.shape(t)),
                from
            )),
            _ => Err(format!("{reader} reads a transposed Pad output; only a Conv may read a Pad")),
        }
    }

    /// A unique IR node name for ONNX node `name`.
    pub fn unique(&mut self, name: &str) -> String {
        let mut unique = name.to_string();
        let mut k = 1;
        while !self.names.insert(unique.clone()) {
            k += 1;
            unique = format!("{name}_{k}");
        }
        unique
    }
}

/// An ONNX node being imported: its inputs' values, its attributes, and
/// the import state.
pub struct Node<'a> {
    /// The import state.
    pub imp: &'a mut Importer,
    /// The node.
    pub proto: &'a NodeProto,
    /// Its unique IR name.
    pub name: String,
    /// Its inputs' values (`None`: an empty optional input).
    pub ins: Vec<Option<Value>>,
    /// Its attributes.
    pub attrs: Attrs<'a>,
}

impl Node<'_> {
    /// The model's opset.
    pub fn opset(&self) -> i64 {
        self.imp.opset
    }

    /// Input `k`'s value, if present.
    pub fn arg(&self, k: usize) -> Option<Value> {
        self.ins.get(k).cloned().flatten()
    }

    /// Input `k` as a computed tensor.
    pub fn tensor(&self, k: usize) -> Result<TensorId, NodeError> {
        match self.arg(k) {
            Some(Value::Tensor(t)) => Ok(t),
            Some(Value::Padded(..)) => {
                Err("reads the output of a Pad; only a Conv may (it absorbs the padding)".into())
            }
            Some(Value::Const(_)) => Err(format!("input {k} is a constant; a computed tensor is expected").into()),
            Some(Value::Permuted(_, p, _)) => Err(format!(
                "input {k} is transposed by {p:?} (an earlier Transpose not cancelled yet); {} reads it only in the order ONNX gives it",
                self.proto.op_type
            )
            .into()),
            Some(Value::DynParam(..) | Value::DynScale(..) | Value::IntSums(_)) => Err(format!(
                "input {k} is a scale, zero point or int32 sum of dynamic quantization; mncc reads them as onnxruntime's quantize_dynamic writes them: DynamicQuantizeLinear, then ConvInteger or MatMulInteger, Cast to float, Mul by the product of the two scales, optionally Add of a bias"
            )
            .into()),
            _ => Err(format!("input {k} is missing").into()),
        }
    }

    /// Input `k` as a constant (`what` names it).
    pub fn constant(&self, k: usize, what: &str) -> Result<Const, NodeError> {
        match self.arg(k) {
            Some(Value::Const(c)) => Ok(c),
            Some(_) => Err(format!("{what} (input {k}) must be a constant (an initializer or Constant node)").into()),
            None => Err(format!("{what} (input {k}) is missing").into()),
        }
    }

    /// Optional input `k` as a constant.
    pub fn opt_const(&self, k: usize, what: &str) -> Result<Option<Const>, NodeError> {
        match self.arg(k) {
            None => Ok(None),
            Some(Value::Const(c)) => Ok(Some(c)),
            Some(_) => Err(format!("{what} (input {k}) must be a constant").into()),
        }
    }

    /// The shape of tensor `t`.
    pub fn shape(&self, t: TensorId) -> Vec<usize> {
        self.imp.shape(t)
    }

    /// Whether output `k` of the node is read (by a node or as the graph output).
    pub fn output_read(&self, k: usize) -> bool {
        self.proto
            .output
            .get(k)
            .is_some_and(|o| !o.is_empty() && self.imp.readers.get(o).copied().unwrap_or(0) > 0)
    }

    /// Appends an IR node named `name`.
    pub fn push(&mut self, name: &str, op: Op, inputs: &[TensorId]) -> Result<TensorId, NodeError> {
        // IR errors already name the node; strip that prefix (ours names it too).
        let g = self.imp.graph();
        let t = g
            .push(name, op, inputs)
            .map_err(|e| NodeError::from(e.split_once("): ").map_or(e.clone(), |(_, m)| m.to_string())))?;
        if let Some(n) = g.nodes.last_mut() {
            n.source = self.proto.op_type.clone();
        }
        Ok(t)
    }

    /// Appends an IR node under the node's own name: its one output.
    pub fn push_one(&mut self, op: Op, inputs: &[TensorId]) -> Import {
        let name = self.name.clone();
        Ok(vec![Value::Tensor(self.push(&name, op, inputs)?)])
    }

    /// A constant broadcast per channel over `t` ([c], [c, 1, 1], [1, c, 1, 1]
    /// or a scalar), as `c` values.
    pub fn per_channel(&self, t: TensorId, c: &Const) -> Result<Vec<f32>, NodeError> {
        let s = self.shape(t);
        let ch = *s.get(1).ok_or("the tensor has no channel dim")?;
        let v = c.f32s();
        let dims: Vec<usize> = c.dims.iter().copied().skip_while(|&d| d == 1).collect();
        let per_channel = s.len() == 4 && (dims == [ch] || dims == [ch, 1, 1]);
        if v.len() == 1 {
            Ok(vec![v[0]; ch])
        } else if per_channel || (s.len() == 2 && dims == [ch]) {
            Ok(v)
        } else {
            Err(format!(
                "the constant {:?} is not per-channel for a {s:?} tensor (only scalars and [c, 1, 1] broadcast)",
                c.dims
            )
            .into())
        }
    }

    /// A dense layer on `x` (flattened from 4-D if needed): `weight` is `[out, k]`.
    pub fn dense(&mut self, x: TensorId, out: usize, k: usize, weight: Vec<f32>, bias: Option<Vec<f32>>) -> Import {
        let s = self.shape(x);
        let feats: usize = s[1..].iter().product();
        if feats != k {
            return Err(format!("input {s:?} has {feats} features; the weight expects {k}").into());
        }
        self.push_one(Op::Dense(DenseCfg::new(Param::new(vec![out, k], weight), bias)), &[x])
    }

    /// `Add(t, constant)`: the constant becomes the bias of the Dense or Conv
    /// that computed `t`, when nothing else reads `t`.
    pub fn fold_bias(&mut self, t: TensorId, c: &Const) -> Result<Value, NodeError> {
        let read_once = self.proto.input.iter().any(|i| {
            self.imp.values.get(i).map(Value::base) == Some(&Value::Tensor(t))
                && self.imp.readers.get(i).copied() == Some(1)
        });
        let name = self.name.clone();
        let g = self.imp.graph();
        let not_a_bias = "adding a constant is only supported as the bias of the Gemm, MatMul or Conv before it";
        let Some(p) = g.producer(t).filter(|_| read_once) else {
            return Err(not_a_bias.into());
        };
        let vals = c.f32s();
        let (bias, channels) = match &mut g.nodes[p].op {
            Op::Dense(d) => (&mut d.bias, d.weight.shape[0]),
            Op::Conv(cv) if cv.clamp.is_none() && !cv.residual => (&mut cv.bias, cv.weight.shape[0]),
            // One Add after the scaling, rounded as onnxruntime rounds it.
            Op::DynQLayer(d) if d.bias.is_none() && d.clamp.is_none() => {
                let c = d.out_channels();
                (&mut d.bias, c)
            }
            _ => return Err(not_a_bias.into()),
        };
        if vals.len() != channels {
            return Err(format!(
                "the constant has shape {:?}; a bias of {channels} values is expected",
                c.dims
            )
            .into());
        }
        let b = bias.get_or_insert_with(|| vec![0.0; channels]);
        for (x, v) in b.iter_mut().zip(vals) {
            *x += v;
        }
        g.nodes[p].fused.push(name);
        Ok(Value::Tensor(t))
    }
}

/// One value: the node's only output.
pub fn one(v: Value) -> Import {
    Ok(vec![v])
}
