//! ONNX front end: a `.onnx` file becomes an [`ir::Graph`](crate::ir::Graph).
//!
//! One processor per op type checks the node's attributes (unknown ones are
//! rejected), its inputs and the opset-dependent forms (attributes that
//! became inputs, changed defaults), and emits typed IR ops. Constant
//! sub-graphs (Constant nodes, Shape -> Gather -> Unsqueeze -> Concat chains)
//! are folded during import; a Pad is held until the Conv that reads it
//! absorbs it; a Transpose from NHWC is absorbed into the model input.
//!
//! Every unsupported node is reported at once; an error in one node marks its
//! outputs as failed so its readers do not repeat it.

use crate::ir::{
    Activation, BatchNormCfg, Clamp, ConvCfg, DenseCfg, ElemType, Graph, InputSpec, Layout, NormalizeCfg, Op, Param,
    TensorId, INPUT,
};
use onnx_protobuf::{AttributeProto, Message, ModelProto, NodeProto, TensorProto};
use std::collections::{HashMap, HashSet};

/// Operators the front end understands (domain `ai.onnx`).
const SUPPORTED: &[&str] = &[
    "Conv",
    "BatchNormalization",
    "Relu",
    "Clip",
    "Add",
    "GlobalAveragePool",
    "AveragePool",
    "ReduceMean",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Gemm",
    "MatMul",
    "Softmax",
    "Dropout",
    "Identity",
    "Constant",
    "Transpose",
    "Shape",
    "Gather",
    "Concat",
    "Cast",
    "Pad",
    "HardSigmoid",
    "HardSwish",
    "Mul",
];

/// Opsets of the default domain this front end reads. (Versions 22 to 25 of
/// the operators above only added element types: float ops are unchanged.)
const OPSETS: std::ops::RangeInclusive<i64> = 7..=25;

#[derive(Clone, Debug, PartialEq)]
enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

#[derive(Clone, Debug, PartialEq)]
struct Const {
    dims: Vec<usize>,
    data: Data,
}

impl Const {
    fn f32s(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    fn i64s(&self) -> Vec<i64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I64(v) => v.clone(),
        }
    }
    fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }
    fn i64(dims: Vec<usize>, v: Vec<i64>) -> Const {
        Const {
            dims,
            data: Data::I64(v),
        }
    }
    fn scalar(&self) -> Option<f32> {
        (self.len() == 1).then(|| self.f32s()[0])
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Value {
    /// A tensor computed at run time.
    Tensor(TensorId),
    /// A constant (initializer, Constant node or folded sub-graph).
    Const(Const),
    /// The output of a Pad node: a tensor and its pending pads `[top, left, bottom, right]`.
    Padded(TensorId, [usize; 4]),
    /// The output of a node that failed (already reported).
    Failed,
}

/// Reads an ONNX model file into an unoptimized IR graph.
pub fn load(path: &std::path::Path) -> Result<Graph, Vec<String>> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| vec![format!("{shown}: cannot read: {e}")])?;
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    parse(&bytes, name).map_err(|es| es.into_iter().map(|e| format!("{shown}: {e}")).collect())
}

/// Parses ONNX bytes.
pub fn parse(bytes: &[u8], name: &str) -> Result<Graph, Vec<String>> {
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| {
        vec![format!(
            "cannot decode the file as an ONNX model (protobuf: {e}); is it truncated or not ONNX?"
        )]
    })?;
    let Some(graph) = model.graph.as_ref() else {
        return Err(vec!["not a valid ONNX model: it has no graph".into()]);
    };
    if graph.node.is_empty() {
        return Err(vec![
            "not a valid ONNX model: its graph has no nodes (is the file truncated?)".into(),
        ]);
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| vec!["the model imports no opset of the default domain (ai.onnx)".to_string()])?;
    if !OPSETS.contains(&opset) {
        return Err(vec![format!(
            "opset {opset} is not supported (supported: {} to {})",
            OPSETS.start(),
            OPSETS.end()
        )]);
    }

    // Unsupported operators, all at once.
    let mut errors = Vec::new();
    for (i, n) in graph.node.iter().enumerate() {
        let known = (n.domain.is_empty() || n.domain == "ai.onnx") && SUPPORTED.contains(&n.op_type.as_str());
        if !known {
            let domain = if n.domain.is_empty() {
                String::new()
            } else {
                format!(" (domain {})", n.domain)
            };
            errors.push(format!(
                "node `{}`: operator {}{domain} is not supported",
                node_name(n, i),
                n.op_type
            ));
        }
    }
    if !errors.is_empty() {
        errors.push(format!("supported operators: {}", SUPPORTED.join(", ")));
        return Err(errors);
    }

    // Attributes, all at once (before import, so one bad node cannot hide another).
    let weights: HashMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    for (i, n) in graph.node.iter().enumerate() {
        if let Err(e) = precheck(n, opset, &weights) {
            errors.push(format!("node `{}` ({}): {e}", node_name(n, i), n.op_type));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let order = topological_order(&graph.node)?;
    let mut imp = Importer {
        opset,
        values: HashMap::new(),
        errors: Vec::new(),
        g: None,
        readers: HashMap::new(),
        names: HashSet::new(),
    };
    for n in &graph.node {
        for i in &n.input {
            *imp.readers.entry(i.clone()).or_insert(0) += 1;
        }
    }
    for o in &graph.output {
        *imp.readers.entry(o.name.clone()).or_insert(0) += 1;
    }
    for t in &graph.initializer {
        match tensor_const(t) {
            Ok(c) => {
                imp.values.insert(t.name.clone(), Value::Const(c));
            }
            Err(e) => imp.errors.push(format!("initializer `{}`: {e}", t.name)),
        }
    }
    imp.input(graph, name, &model)?;
    for &i in &order {
        imp.node(&graph.node[i], i);
    }
    if !imp.errors.is_empty() {
        return Err(imp.errors);
    }
    let mut g = imp.g.take().expect("input() creates the graph");
    if graph.output.len() != 1 {
        return Err(vec![format!(
            "the model has {} outputs; mncc compiles models with one output",
            graph.output.len()
        )]);
    }
    let out = &graph.output[0].name;
    match imp.values.get(out) {
        Some(Value::Tensor(t)) if *t != INPUT => g.output = *t,
        Some(Value::Tensor(_)) => return Err(vec![format!("output `{out}` is the model input: nothing to compute")]),
        Some(_) => return Err(vec![format!("output `{out}` is a constant: nothing to compute")]),
        None => return Err(vec![format!("output `{out}` is not produced by any node")]),
    }
    Ok(g)
}

/// The attributes each operator may carry (others are rejected).
fn allowed_attributes(op: &str, opset: i64) -> &'static [&'static str] {
    match op {
        "Conv" => &["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"],
        "Pad" => &["mode", "pads", "value"],
        "BatchNormalization" => &[
            "epsilon",
            "momentum",
            "training_mode",
            "spatial",
            "is_test",
            "consumed_inputs",
        ],
        "Clip" if opset < 11 => &["min", "max"],
        "HardSigmoid" => &["alpha", "beta"],
        "AveragePool" => &[
            "auto_pad",
            "ceil_mode",
            "count_include_pad",
            "kernel_shape",
            "pads",
            "strides",
            "dilations",
        ],
        "ReduceMean" => &["axes", "keepdims", "noop_with_empty_axes"],
        "Flatten" | "Softmax" | "Gather" | "Concat" => &["axis"],
        "Reshape" => &["allowzero"],
        "Squeeze" | "Unsqueeze" if opset < 13 => &["axes"],
        "Gemm" => &["alpha", "beta", "transA", "transB"],
        "Dropout" => &["ratio", "seed", "is_test"],
        "Constant" => &["value", "value_float", "value_floats", "value_int", "value_ints"],
        "Transpose" => &["perm"],
        "Shape" => &["start", "end"],
        "Cast" => &["to", "saturate", "round_mode"],
        _ => &[],
    }
}

/// Checks a node's attributes (and, for Conv, what its weight's shape says
/// about groups) without looking at its inputs' values.
fn precheck(n: &NodeProto, opset: i64, weights: &HashMap<&str, &TensorProto>) -> Result<(), String> {
    let a = Attrs::allow(n, allowed_attributes(&n.op_type, opset))?;
    if n.op_type == "Conv" {
        let mut problems = Vec::new();
        if let Some(d) = a.ints("dilations").filter(|d| d.iter().any(|&v| v != 1)) {
            problems.push(format!("dilations {d:?} are not supported (only 1)"));
        }
        let group = a.int("group", 1);
        let per_group = n
            .input
            .get(1)
            .and_then(|w| weights.get(w.as_str()))
            .and_then(|w| w.dims.get(1).copied());
        if group != 1 && per_group.is_some_and(|c| c != 1) {
            problems.push(format!(
                "group = {group} with {} input channels per group is a grouped convolution; only full (group = 1) and depthwise (group = channels) are supported",
                per_group.unwrap_or(0)
            ));
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
    }
    Ok(())
}

fn node_name(n: &NodeProto, i: usize) -> String {
    if n.name.is_empty() {
        format!("{}_{i}", n.op_type)
    } else {
        n.name.clone()
    }
}

/// Nodes in an order where every input is produced before it is read
/// (ONNX requires sorted graphs, but not every file is).
fn topological_order(nodes: &[NodeProto]) -> Result<Vec<usize>, Vec<String>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in &n.output {
            if !o.is_empty() {
                producer.insert(o, i);
            }
        }
    }
    let deps: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            n.input
                .iter()
                .filter_map(|i| producer.get(i.as_str()).copied())
                .collect()
        })
        .collect();
    let mut state = vec![0u8; nodes.len()]; // 0 new, 1 on stack, 2 done
    let mut order = Vec::with_capacity(nodes.len());
    for root in 0..nodes.len() {
        let mut stack = vec![(root, 0usize)];
        while let Some(&mut (i, ref mut k)) = stack.last_mut() {
            if *k == 0 {
                if state[i] == 2 {
                    stack.pop();
                    continue;
                }
                state[i] = 1;
            }
            if let Some(&d) = deps[i].get(*k) {
                *k += 1;
                match state[d] {
                    0 => stack.push((d, 0)),
                    1 => {
                        let cycle: Vec<String> = stack
                            .iter()
                            .skip_while(|(j, _)| *j != d)
                            .map(|(j, _)| format!("`{}`", node_name(&nodes[*j], *j)))
                            .collect();
                        return Err(vec![format!(
                            "the graph has a cycle through nodes {}",
                            cycle.join(" -> ")
                        )]);
                    }
                    _ => {}
                }
            } else {
                state[i] = 2;
                order.push(i);
                stack.pop();
            }
        }
    }
    Ok(order)
}

fn tensor_const(t: &TensorProto) -> Result<Const, String> {
    if !t.external_data.is_empty() {
        return Err("external data is not supported (save the model with its weights inside)".into());
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dim {d}")))
        .collect::<Result<_, _>>()?;
    let n: usize = dims.iter().product();
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
        // bool: one byte each in raw_data, else int32_data
        9 => Data::I64(if raw.is_empty() {
            t.int32_data.iter().map(|&v| v as i64).collect()
        } else {
            raw.iter().map(|&b| b as i64).collect()
        }),
        other => {
            return Err(format!(
                "element type {other} is not supported (float, double, int32, int64, bool are)"
            ))
        }
    };
    let c = Const { dims, data };
    if c.len() != n {
        return Err(format!("holds {} values for shape {:?}", c.len(), c.dims));
    }
    Ok(c)
}

struct Importer {
    opset: i64,
    values: HashMap<String, Value>,
    errors: Vec<String>,
    g: Option<Graph>,
    /// How many nodes (and graph outputs) read each value.
    readers: HashMap<String, usize>,
    names: HashSet<String>,
}

/// A node's attributes, checked against the list its processor accepts.
struct Attrs<'a>(&'a NodeProto);

impl<'a> Attrs<'a> {
    fn allow(n: &'a NodeProto, allowed: &[&str]) -> Result<Attrs<'a>, String> {
        let unknown: Vec<&str> = n
            .attribute
            .iter()
            .map(|a| a.name.as_str())
            .filter(|a| !allowed.contains(a))
            .collect();
        if unknown.is_empty() {
            Ok(Attrs(n))
        } else {
            Err(format!(
                "unsupported attribute(s) {} (supported: {})",
                unknown.join(", "),
                allowed.join(", ")
            ))
        }
    }
    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.0.attribute.iter().find(|a| a.name == name)
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }
    fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map_or(default, |a| a.f)
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }
    fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
}

fn usizes(v: &[i64], what: &str) -> Result<Vec<usize>, String> {
    v.iter()
        .map(|&x| usize::try_from(x).map_err(|_| format!("{what} has a negative value {x}")))
        .collect()
}

impl Importer {
    fn g(&mut self) -> &mut Graph {
        self.g.as_mut().expect("graph created by input()")
    }

    fn shape(&self, t: TensorId) -> Vec<usize> {
        self.g.as_ref().expect("graph").tensors[t].shape.clone()
    }

    /// Creates the graph from the model's one real input.
    fn input(&mut self, graph: &onnx_protobuf::GraphProto, name: &str, model: &ModelProto) -> Result<(), Vec<String>> {
        let inputs: Vec<_> = graph
            .input
            .iter()
            .filter(|i| !self.values.contains_key(&i.name))
            .collect();
        let [input] = inputs[..] else {
            let names: Vec<String> = inputs.iter().map(|i| format!("`{}`", i.name)).collect();
            return Err(vec![format!(
                "the model has {} inputs ({}); mncc compiles models with one image input",
                inputs.len(),
                names.join(", ")
            )]);
        };
        let at = |m: String| vec![format!("input `{}`: {m}", input.name)];
        let Some(onnx_protobuf::type_proto::Value::TensorType(tt)) =
            input.type_.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(at("is not a tensor".into()));
        };
        if tt.elem_type != 1 {
            return Err(at(format!(
                "element type {} is not supported (float32 is)",
                tt.elem_type
            )));
        }
        let dims: Vec<Option<usize>> = tt
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimValue(v)) => {
                            usize::try_from(*v).ok()
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if dims.len() != 4 {
            return Err(at(format!(
                "has {} dims; an image input has 4 (NCHW or NHWC)",
                dims.len()
            )));
        }
        match dims[0] {
            None | Some(1) => {}
            Some(b) => {
                return Err(at(format!(
                    "batch size {b} is not supported (only 1; a symbolic batch is compiled as 1)"
                )))
            }
        }
        let fixed = |i: usize| dims[i].ok_or_else(|| at(format!("dimension {i} is symbolic; only the batch may be")));
        // NHWC followed only by Transpose(0,3,1,2): absorb the transposes.
        let readers: Vec<&NodeProto> = graph.node.iter().filter(|n| n.input.contains(&input.name)).collect();
        let nhwc = !readers.is_empty()
            && readers.iter().all(|n| {
                n.op_type == "Transpose" && n.attribute.iter().any(|a| a.name == "perm" && a.ints == [0, 3, 1, 2])
            });
        let (layout, shape) = if nhwc {
            (Layout::Nhwc, vec![1, fixed(3)?, fixed(1)?, fixed(2)?])
        } else {
            (Layout::Nchw, vec![1, fixed(1)?, fixed(2)?, fixed(3)?])
        };
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
        self.g = Some(Graph::new(
            name,
            &description,
            InputSpec {
                dtype: ElemType::F32,
                layout,
            },
            shape,
        ));
        self.values.insert(input.name.clone(), Value::Tensor(INPUT));
        if nhwc {
            for r in readers {
                for o in &r.output {
                    self.values.insert(o.clone(), Value::Tensor(INPUT));
                }
            }
        }
        Ok(())
    }

    fn node(&mut self, n: &NodeProto, i: usize) {
        let name = node_name(n, i);
        // Transposes of the input were absorbed by `input()`.
        if n.op_type == "Transpose"
            && n.output
                .iter()
                .all(|o| self.values.get(o) == Some(&Value::Tensor(INPUT)))
        {
            return;
        }
        let mut ins = Vec::new();
        for inp in &n.input {
            if inp.is_empty() {
                ins.push(None);
                continue;
            }
            match self.values.get(inp) {
                Some(Value::Failed) => return self.fail(n),
                Some(v) => ins.push(Some(v.clone())),
                None => {
                    self.errors.push(format!(
                        "node `{name}` ({}): input `{inp}` is neither a graph input, an initializer nor the output of a node",
                        n.op_type
                    ));
                    return self.fail(n);
                }
            }
        }
        let mut unique = name.clone();
        let mut k = 1;
        while !self.names.insert(unique.clone()) {
            k += 1;
            unique = format!("{name}_{k}");
        }
        match self.op(n, &unique, &ins) {
            Ok(outs) => {
                for (o, v) in n.output.iter().zip(outs) {
                    if !o.is_empty() {
                        self.values.insert(o.clone(), v);
                    }
                }
            }
            Err(e) => {
                self.errors.push(format!("node `{name}` ({}): {e}", n.op_type));
                self.fail(n);
            }
        }
    }

    fn fail(&mut self, n: &NodeProto) {
        for o in &n.output {
            self.values.insert(o.clone(), Value::Failed);
        }
    }

    fn push(&mut self, name: &str, op: Op, inputs: &[TensorId]) -> Result<Value, String> {
        // IR errors already name the node; strip that prefix (ours names it too).
        self.g()
            .push(name, op, inputs)
            .map(Value::Tensor)
            .map_err(|e| e.split_once("): ").map_or(e.clone(), |(_, m)| m.to_string()))
    }

    fn op(&mut self, n: &NodeProto, name: &str, ins: &[Option<Value>]) -> Result<Vec<Value>, String> {
        let arg = |k: usize| ins.get(k).cloned().flatten();
        let tensor = |k: usize| match arg(k) {
            Some(Value::Tensor(t)) => Ok(t),
            Some(Value::Padded(..)) => {
                Err("reads the output of a Pad; only a Conv may (it absorbs the padding)".to_string())
            }
            Some(Value::Const(_)) => Err(format!("input {k} is a constant; a computed tensor is expected")),
            _ => Err(format!("input {k} is missing")),
        };
        let constant = |k: usize, what: &str| match arg(k) {
            Some(Value::Const(c)) => Ok(c),
            Some(_) => Err(format!(
                "{what} (input {k}) must be a constant (an initializer or Constant node)"
            )),
            None => Err(format!("{what} (input {k}) is missing")),
        };
        let opt_const = |k: usize, what: &str| match arg(k) {
            None => Ok(None),
            Some(Value::Const(c)) => Ok(Some(c)),
            Some(_) => Err(format!("{what} (input {k}) must be a constant")),
        };
        let opset = self.opset;
        let one = |v: Value| Ok(vec![v]);
        match n.op_type.as_str() {
            "Conv" => {
                let a = Attrs(n);
                let (x, pending) = match arg(0) {
                    Some(Value::Padded(t, p)) => (t, p),
                    _ => (tensor(0)?, [0; 4]),
                };
                let w = constant(1, "weight")?;
                let b = opt_const(2, "bias")?;
                if w.dims.len() != 4 {
                    return Err(format!(
                        "weight has shape {:?}; a 2-D convolution needs [out, in/group, kh, kw]",
                        w.dims
                    ));
                }
                let (kh, kw) = (w.dims[2], w.dims[3]);
                if let Some(ks) = a.ints("kernel_shape") {
                    if usizes(&ks, "kernel_shape")? != [kh, kw] {
                        return Err(format!("kernel_shape {ks:?} does not match the weight's {:?}", w.dims));
                    }
                }
                let strides = usizes(&a.ints("strides").unwrap_or(vec![1, 1]), "strides")?;
                let [sh, sw] = strides[..] else {
                    return Err(format!("strides {strides:?} must have 2 values"));
                };
                let xs = self.shape(x);
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
                        let p = usizes(&a.ints("pads").unwrap_or(vec![0; 4]), "pads")?;
                        let [t, l, b, r] = p[..] else {
                            return Err(format!("pads {p:?} must have 4 values"));
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
                        return Err(format!(
                            "auto_pad {other} is not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER are)"
                        ))
                    }
                };
                let pads = [
                    pads[0] + pending[0],
                    pads[1] + pending[1],
                    pads[2] + pending[2],
                    pads[3] + pending[3],
                ];
                let group = a.int("group", 1);
                let group = usize::try_from(group).map_err(|_| format!("group {group} is invalid"))?;
                let mut cfg = ConvCfg::new(Param::new(w.dims.clone(), w.f32s()), [sh, sw], pads, group);
                if let Some(b) = b {
                    cfg.bias = Some(b.f32s());
                }
                one(self.push(name, Op::Conv(cfg), &[x])?)
            }
            "Pad" => {
                let a = Attrs(n);
                let x = tensor(0)?;
                let mode = a.string("mode").unwrap_or_else(|| "constant".into());
                if mode != "constant" {
                    return Err(format!("mode {mode} is not supported (only constant)"));
                }
                let (pads, value) = if opset < 11 {
                    (
                        a.ints("pads").ok_or("pads attribute is missing")?,
                        a.float("value", 0.0),
                    )
                } else {
                    if arg(3).is_some() {
                        return Err("the axes input is not supported".into());
                    }
                    let v = opt_const(2, "constant_value")?
                        .map_or(Some(0.0), |c| c.scalar())
                        .ok_or("constant_value must be a scalar")?;
                    (constant(1, "pads")?.i64s(), v)
                };
                if value != 0.0 {
                    return Err(format!("padding with {value} is not supported (only 0)"));
                }
                let p = usizes(&pads, "pads")?;
                if p.len() != 8 || p[0] != 0 || p[1] != 0 || p[4] != 0 || p[5] != 0 {
                    return Err(format!(
                        "pads {pads:?}: only height and width of a 4-D tensor may be padded"
                    ));
                }
                one(Value::Padded(x, [p[2], p[3], p[6], p[7]]))
            }
            "BatchNormalization" => {
                let a = Attrs(n);
                if a.int("training_mode", 0) != 0 {
                    return Err("training_mode = 1 is not supported (inference only)".into());
                }
                if n.output
                    .iter()
                    .skip(1)
                    .any(|o| !o.is_empty() && self.readers.get(o).copied().unwrap_or(0) > 0)
                {
                    return Err("the running mean/variance outputs are read; only inference is supported".into());
                }
                let x = tensor(0)?;
                let [g, b, m, v] =
                    [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")].map(|(k, w)| constant(k, w).map(|c| c.f32s()));
                let cfg = BatchNormCfg {
                    gamma: g?,
                    beta: b?,
                    mean: m?,
                    var: v?,
                    eps: a.float("epsilon", 1e-5),
                };
                one(self.push(name, Op::BatchNorm(cfg), &[x])?)
            }
            "Relu" => {
                let x = tensor(0)?;
                one(self.push(name, Op::Clip(Clamp::RELU), &[x])?)
            }
            "Clip" => {
                let x = tensor(0)?;
                let (min, max) = if opset < 11 {
                    let a = Attrs(n);
                    (a.float("min", f32::NEG_INFINITY), a.float("max", f32::INFINITY))
                } else {
                    let bound = |k, what, d| -> Result<f32, String> {
                        opt_const(k, what)?.map_or(Ok(d), |c| c.scalar().ok_or(format!("{what} must be a scalar")))
                    };
                    (bound(1, "min", f32::NEG_INFINITY)?, bound(2, "max", f32::INFINITY)?)
                };
                one(self.push(name, Op::Clip(Clamp { min, max }), &[x])?)
            }
            "Add" => match (arg(0), arg(1)) {
                (Some(Value::Tensor(a)), Some(Value::Tensor(b))) => one(self.push(name, Op::Add, &[a, b])?),
                (Some(Value::Tensor(t)), Some(Value::Const(c))) | (Some(Value::Const(c)), Some(Value::Tensor(t))) => {
                    match self.fold_bias(n, name, t, &c) {
                        Ok(v) => one(v),
                        // Not the bias of a conv or dense layer: a per-channel shift
                        // (passes fold it into a neighbouring conv where they can).
                        Err(_) => {
                            let offset = self.per_channel(t, &c)?;
                            let scale = vec![1.0; offset.len()];
                            one(self.push(name, Op::Normalize(NormalizeCfg { scale, offset }), &[t])?)
                        }
                    }
                }
                _ => Err("adds two constants or a pending Pad; expected tensors".into()),
            },
            "HardSigmoid" => {
                let a = Attrs(n);
                let x = tensor(0)?;
                let act = Activation::HardSigmoid {
                    alpha: a.float("alpha", 0.2),
                    beta: a.float("beta", 0.5),
                };
                one(self.push(name, Op::Activation(act), &[x])?)
            }
            "HardSwish" => {
                let x = tensor(0)?;
                one(self.push(name, Op::Activation(Activation::HardSwish), &[x])?)
            }
            "Mul" => {
                match (arg(0), arg(1)) {
                    (Some(Value::Tensor(a)), Some(Value::Tensor(b))) => {
                        // The full-size operand first; the [n, c, 1, 1] one is broadcast.
                        let (sa, sb) = (self.shape(a), self.shape(b));
                        let (x, s) = if sa.iter().product::<usize>() >= sb.iter().product::<usize>() {
                            (a, b)
                        } else {
                            (b, a)
                        };
                        one(self.push(name, Op::Mul, &[x, s])?)
                    }
                    (Some(Value::Tensor(t)), Some(Value::Const(c)))
                    | (Some(Value::Const(c)), Some(Value::Tensor(t))) => {
                        let scale = self.per_channel(t, &c)?;
                        let offset = vec![0.0; scale.len()];
                        one(self.push(name, Op::Normalize(NormalizeCfg { scale, offset }), &[t])?)
                    }
                    _ => Err("multiplies two constants or a pending Pad; expected a tensor".into()),
                }
            }
            "GlobalAveragePool" => {
                let x = tensor(0)?;
                one(self.push(name, Op::GlobalAvgPool, &[x])?)
            }
            "AveragePool" => {
                let a = Attrs(n);
                let x = tensor(0)?;
                let s = self.shape(x);
                let k = usizes(
                    &a.ints("kernel_shape").ok_or("kernel_shape is missing")?,
                    "kernel_shape",
                )?;
                let pads = a.ints("pads").unwrap_or(vec![0; 4]);
                if k != s[2..] || pads.iter().any(|&p| p != 0) {
                    return Err(format!(
                        "only a global average pool is supported (kernel {k:?} over the whole {}x{} input, no padding)",
                        s[2], s[3]
                    ));
                }
                one(self.push(name, Op::GlobalAvgPool, &[x])?)
            }
            "ReduceMean" => {
                let a = Attrs(n);
                let x = tensor(0)?;
                let axes = if opset < 18 {
                    a.ints("axes")
                } else {
                    opt_const(1, "axes")?.map(|c| c.i64s())
                };
                let mut axes = axes.ok_or("reducing over all axes is not supported (give axes [2, 3])")?;
                axes.iter_mut().for_each(|v| *v = if *v < 0 { *v + 4 } else { *v });
                axes.sort();
                if axes != [2, 3] {
                    return Err(format!(
                        "only the mean over the spatial axes [2, 3] is supported, not {axes:?}"
                    ));
                }
                let v = self.push(name, Op::GlobalAvgPool, &[x])?;
                if a.int("keepdims", 1) == 0 {
                    let Value::Tensor(t) = v else { unreachable!() };
                    let c = self.shape(t)[1];
                    one(self.push(&format!("{name}.squeeze"), Op::Reshape(vec![1, c]), &[t])?)
                } else {
                    one(v)
                }
            }
            "Flatten" => {
                let a = Attrs(n);
                let axis = a.int("axis", 1);
                match arg(0) {
                    Some(Value::Const(c)) => {
                        let (l, r) = split_dims(&c.dims, axis)?;
                        one(Value::Const(Const { dims: vec![l, r], ..c }))
                    }
                    _ => {
                        let x = tensor(0)?;
                        let (l, r) = split_dims(&self.shape(x), axis)?;
                        one(self.push(name, Op::Reshape(vec![l, r]), &[x])?)
                    }
                }
            }
            "Reshape" => {
                let a = Attrs(n);
                let target = constant(1, "shape")?.i64s();
                let allowzero = a.int("allowzero", 0) != 0;
                match arg(0) {
                    Some(Value::Const(c)) => {
                        let dims = reshape_dims(&c.dims, &target, allowzero)?;
                        one(Value::Const(Const { dims, ..c }))
                    }
                    _ => {
                        let x = tensor(0)?;
                        let dims = reshape_dims(&self.shape(x), &target, allowzero)?;
                        one(self.push(name, Op::Reshape(dims), &[x])?)
                    }
                }
            }
            "Squeeze" | "Unsqueeze" => {
                let axes = if opset < 13 {
                    Attrs(n).ints("axes")
                } else {
                    opt_const(1, "axes")?.map(|c| c.i64s())
                };
                let squeeze = n.op_type == "Squeeze";
                let dims_of = |dims: &[usize]| -> Result<Vec<usize>, String> {
                    if squeeze {
                        let rank = dims.len() as i64;
                        let axes: Vec<usize> = match &axes {
                            None => (0..dims.len()).filter(|&i| dims[i] == 1).collect(),
                            Some(a) => a.iter().map(|&v| (if v < 0 { v + rank } else { v }) as usize).collect(),
                        };
                        if let Some(&bad) = axes.iter().find(|&&i| dims.get(i) != Some(&1)) {
                            return Err(format!("cannot squeeze axis {bad} of shape {dims:?}"));
                        }
                        Ok(dims
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| !axes.contains(i))
                            .map(|(_, &d)| d)
                            .collect())
                    } else {
                        let axes = axes.clone().ok_or("axes are missing")?;
                        let rank = (dims.len() + axes.len()) as i64;
                        let mut axes: Vec<usize> = axes
                            .iter()
                            .map(|&v| (if v < 0 { v + rank } else { v }) as usize)
                            .collect();
                        axes.sort();
                        let mut out = dims.to_vec();
                        for a in axes {
                            if a > out.len() {
                                return Err(format!("axis {a} is out of range for shape {dims:?}"));
                            }
                            out.insert(a, 1);
                        }
                        Ok(out)
                    }
                };
                match arg(0) {
                    Some(Value::Const(c)) => {
                        let dims = dims_of(&c.dims)?;
                        one(Value::Const(Const { dims, ..c }))
                    }
                    _ => {
                        let x = tensor(0)?;
                        let dims = dims_of(&self.shape(x))?;
                        one(self.push(name, Op::Reshape(dims), &[x])?)
                    }
                }
            }
            "Gemm" => {
                let a = Attrs(n);
                let x = tensor(0)?;
                if a.int("transA", 0) != 0 {
                    return Err("transA = 1 is not supported".into());
                }
                let b = constant(1, "B")?;
                let c = opt_const(2, "C")?;
                let (alpha, beta) = (a.float("alpha", 1.0), a.float("beta", 1.0));
                let [r, cols] = b.dims[..] else {
                    return Err(format!("B has shape {:?}; expected 2-D", b.dims));
                };
                let bv = b.f32s();
                // weight [out, k]
                let (out, k, weight): (usize, usize, Vec<f32>) = if a.int("transB", 0) != 0 {
                    (r, cols, bv.iter().map(|v| v * alpha).collect())
                } else {
                    (
                        cols,
                        r,
                        (0..cols * r).map(|i| bv[(i % r) * cols + i / r] * alpha).collect(),
                    )
                };
                let bias = match c {
                    None => None,
                    Some(c) if c.len() == 1 => Some(vec![c.f32s()[0] * beta; out]),
                    Some(c) if c.len() == out => Some(c.f32s().iter().map(|v| v * beta).collect()),
                    Some(c) => return Err(format!("C has shape {:?}; expected [{out}] or a scalar", c.dims)),
                };
                self.dense(name, x, out, k, weight, bias)
            }
            "MatMul" => {
                let x = tensor(0)?;
                let b = constant(1, "B")?;
                let [k, out] = b.dims[..] else {
                    return Err(format!("B has shape {:?}; expected a constant 2-D matrix", b.dims));
                };
                let bv = b.f32s();
                let weight = (0..out * k).map(|i| bv[(i % k) * out + i / k]).collect();
                self.dense(name, x, out, k, weight, None)
            }
            "Softmax" => {
                let a = Attrs(n);
                let x = tensor(0)?;
                let s = self.shape(x);
                let rank = s.len() as i64;
                let axis = a.int("axis", if opset < 13 { 1 } else { -1 });
                let axis = if axis < 0 { axis + rank } else { axis };
                // Before opset 13 the input is coerced to 2-D at `axis`; from 13 the softmax is over `axis` alone.
                let over: usize = if opset < 13 {
                    s[axis as usize..].iter().product()
                } else {
                    s.get(axis as usize).copied().unwrap_or(0)
                };
                let total: usize = s.iter().product();
                if s[0] != 1 || over != total {
                    return Err(format!("softmax over axis {axis} of {s:?}: only a softmax over all of a [1, k] tensor's classes is supported"));
                }
                if s.len() == 2 {
                    one(self.push(name, Op::Softmax, &[x])?)
                } else {
                    let Value::Tensor(flat) =
                        self.push(&format!("{name}.flatten"), Op::Reshape(vec![1, total]), &[x])?
                    else {
                        unreachable!()
                    };
                    let Value::Tensor(sm) = self.push(name, Op::Softmax, &[flat])? else {
                        unreachable!()
                    };
                    one(self.push(&format!("{name}.unflatten"), Op::Reshape(s), &[sm])?)
                }
            }
            "Dropout" => {
                if n.output
                    .get(1)
                    .is_some_and(|m| !m.is_empty() && self.readers.get(m).copied().unwrap_or(0) > 0)
                {
                    return Err("the mask output is read; only inference is supported".into());
                }
                if opt_const(2, "training_mode")?.is_some_and(|c| c.i64s().iter().any(|&v| v != 0)) {
                    return Err("training_mode = true is not supported (inference only)".into());
                }
                Ok(vec![arg(0).ok_or("input is missing")?])
            }
            "Identity" => Ok(vec![arg(0).ok_or("input is missing")?]),
            "Constant" => {
                let a = Attrs(n);
                let c = if let Some(t) = a.get("value") {
                    tensor_const(t.t.as_ref().ok_or("value has no tensor")?)?
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
            "Transpose" => Err("only the NHWC -> NCHW transpose (perm 0,3,1,2) of the model input is supported".into()),
            "Shape" => {
                let a = Attrs(n);
                let dims = match arg(0) {
                    Some(Value::Const(c)) => c.dims,
                    _ => self.shape(tensor(0)?),
                };
                let rank = dims.len() as i64;
                let clip = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
                let (s, e) = (clip(a.int("start", 0)), clip(a.int("end", rank)));
                let v: Vec<i64> = dims[s..e.max(s)].iter().map(|&d| d as i64).collect();
                one(Value::Const(Const::i64(vec![v.len()], v)))
            }
            "Gather" => {
                let a = Attrs(n);
                let data = constant(0, "data")?;
                let idx = constant(1, "indices")?;
                if a.int("axis", 0) != 0 || data.dims.len() != 1 {
                    return Err("only gathering from a 1-D constant (a shape) is supported".into());
                }
                let len = data.len() as i64;
                let vals = data.i64s();
                let mut out = Vec::new();
                for i in idx.i64s() {
                    let j = if i < 0 { i + len } else { i };
                    out.push(
                        *vals
                            .get(j as usize)
                            .ok_or(format!("index {i} is out of range for {len} values"))?,
                    );
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
            "Concat" => {
                let a = Attrs(n);
                let parts: Vec<Const> = (0..ins.len()).map(|k| constant(k, "part")).collect::<Result<_, _>>()?;
                if parts.iter().any(|p| p.dims.len() != 1) || a.int("axis", 0) != 0 {
                    return Err("only concatenating 1-D constants (shapes) is supported".into());
                }
                let v: Vec<i64> = parts.iter().flat_map(|p| p.i64s()).collect();
                one(Value::Const(Const::i64(vec![v.len()], v)))
            }
            "Cast" => {
                let a = Attrs(n);
                let c = constant(0, "input")?;
                let data = match a.int("to", 0) {
                    1 | 11 => Data::F32(c.f32s()),
                    6 | 7 => Data::I64(c.i64s()),
                    t => return Err(format!("cast to element type {t} is not supported")),
                };
                one(Value::Const(Const { dims: c.dims, data }))
            }
            other => Err(format!("operator {other} is not supported")),
        }
    }

    /// A constant broadcast per channel over `t` ([c], [c, 1, 1], [1, c, 1, 1]
    /// or a scalar), as `c` values.
    fn per_channel(&self, t: TensorId, c: &Const) -> Result<Vec<f32>, String> {
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
            ))
        }
    }

    /// A dense layer on `x` (flattened from 4-D if needed).
    fn dense(
        &mut self,
        name: &str,
        x: TensorId,
        out: usize,
        k: usize,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
    ) -> Result<Vec<Value>, String> {
        let s = self.shape(x);
        let feats: usize = s[1..].iter().product();
        if feats != k {
            return Err(format!("input {s:?} has {feats} features; the weight expects {k}"));
        }
        Ok(vec![self.push(
            name,
            Op::Dense(DenseCfg::new(Param::new(vec![out, k], weight), bias)),
            &[x],
        )?])
    }

    /// `Add(t, constant)`: the constant becomes the bias of the Dense or Conv
    /// that computed `t`, when nothing else reads `t`.
    fn fold_bias(&mut self, n: &NodeProto, name: &str, t: TensorId, c: &Const) -> Result<Value, String> {
        let read_once = n
            .input
            .iter()
            .any(|i| self.values.get(i) == Some(&Value::Tensor(t)) && self.readers.get(i).copied() == Some(1));
        let g = self.g();
        let Some(p) = g.producer(t).filter(|_| read_once) else {
            return Err("adding a constant is only supported as the bias of the Gemm, MatMul or Conv before it".into());
        };
        let vals = c.f32s();
        let (bias, channels) = match &mut g.nodes[p].op {
            Op::Dense(d) => (&mut d.bias, d.weight.shape[0]),
            Op::Conv(cv) if cv.clamp.is_none() && !cv.residual => (&mut cv.bias, cv.weight.shape[0]),
            _ => {
                return Err(
                    "adding a constant is only supported as the bias of the Gemm, MatMul or Conv before it".into(),
                )
            }
        };
        if vals.len() != channels {
            return Err(format!(
                "the constant has shape {:?}; a bias of {channels} values is expected",
                c.dims
            ));
        }
        let b = bias.get_or_insert_with(|| vec![0.0; channels]);
        for (x, v) in b.iter_mut().zip(vals) {
            *x += v;
        }
        g.nodes[p].fused.push(name.to_string());
        Ok(Value::Tensor(t))
    }
}

fn split_dims(dims: &[usize], axis: i64) -> Result<(usize, usize), String> {
    let rank = dims.len() as i64;
    let a = if axis < 0 { axis + rank } else { axis };
    if !(0..=rank).contains(&a) {
        return Err(format!("axis {axis} is out of range for shape {dims:?}"));
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

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"hello world", &[0xff; 64], &[0x0a, 0x05, 0x01]] {
            assert!(parse(bytes, "m").is_err());
        }
    }
}
