//! ONNX front end: a `.onnx` file becomes an [`ir::Graph`](crate::ir::Graph).
//!
//! One [`registry::OpDef`] per operator (domain, opset range, inputs,
//! attributes with their types and defaults, the import function), in one
//! file per operator family under `ops/`, which lists them. Before anything is imported,
//! every unsupported operator and every attribute problem of the whole
//! graph is reported at once; then each node's import function emits typed
//! IR ops. Constant sub-graphs (Constant nodes, Shape -> Gather ->
//! Unsqueeze -> Concat chains) are folded during import; a Pad is held
//! until the Conv that reads it absorbs it; a Transpose from NHWC is
//! absorbed into the model input. An error in one node marks its outputs
//! as failed so its readers do not repeat it.
//!
//! Adding an operator: an [`registry::OpDef`] in the file of its family
//! (`ops/*.rs`) with its import function; nothing else lists it.

mod attrs;
mod import;
mod ops;
pub mod registry;

use crate::diag::{Diagnostic, Location};
use crate::ir::{Graph, TensorId, INPUT};
use attrs::Attrs;
use import::{node_name, tensor_const, Importer, Node, Value};
use onnx_protobuf::{Message, ModelProto, NodeProto, TensorProto};
use registry::{Transposed, OPSETS};
use std::collections::HashMap;

/// Reads an ONNX model file into an unoptimized IR graph.
pub fn load(path: &std::path::Path) -> Result<Graph, Vec<Diagnostic>> {
    load_with(path, &crate::LoadOptions::default())
}

/// [`load`], with the input shape or batch fixed as `options` say (the
/// symbolic dims of the model's input take their values; a fixed one must
/// agree).
pub fn load_with(path: &std::path::Path, options: &crate::LoadOptions) -> Result<Graph, Vec<Diagnostic>> {
    let bytes = crate::limits::read_file(path, "ONNX model", crate::limits::MAX_ONNX_BYTES)
        .map_err(|e| vec![Diagnostic::msg(e).in_file(path)])?;
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    parse_with(&bytes, name, options).map_err(|es| es.into_iter().map(|e| e.in_file(path)).collect())
}

/// Parses ONNX bytes.
pub fn parse(bytes: &[u8], name: &str) -> Result<Graph, Vec<Diagnostic>> {
    parse_with(bytes, name, &crate::LoadOptions::default())
}

/// Parses ONNX bytes, with the input shape fixed ([`load_with`]).
pub fn parse_with(bytes: &[u8], name: &str, options: &crate::LoadOptions) -> Result<Graph, Vec<Diagnostic>> {
    let err = |m: String| vec![Diagnostic::msg(m)];
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| {
        err(format!(
            "cannot decode the file as an ONNX model (protobuf: {e}); is it truncated or not ONNX?"
        ))
    })?;
    let Some(graph) = model.graph.as_ref() else {
        return Err(err("not a valid ONNX model: it has no graph".into()));
    };
    if graph.node.len() > crate::limits::MAX_NODES {
        return Err(err(format!(
            "the graph has {} nodes; the limit is {} (a MobileNet has a few hundred)",
            graph.node.len(),
            crate::limits::MAX_NODES
        )));
    }
    if graph.node.is_empty() {
        return Err(err(
            "not a valid ONNX model: its graph has no nodes (is the file truncated?)".into(),
        ));
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| registry::default_domain(&o.domain))
        .map(|o| o.version)
        .ok_or_else(|| err("the model imports no opset of the default domain (ai.onnx)".into()))?;
    if !OPSETS.contains(&opset) {
        return Err(err(format!(
            "opset {opset} is not supported (supported: {} to {})",
            OPSETS.start(),
            OPSETS.end()
        )));
    }

    // Unsupported operators, all at once.
    let mut errors = Vec::new();
    let mut defs = Vec::with_capacity(graph.node.len());
    for (i, n) in graph.node.iter().enumerate() {
        // An operator of another domain is versioned by that domain's opset.
        let version = if registry::default_domain(&n.domain) {
            Some(opset)
        } else {
            model
                .opset_import
                .iter()
                .find(|o| o.domain == n.domain)
                .map(|o| o.version)
        };
        let def = ops::find(&n.domain, &n.op_type).filter(|d| version.is_some_and(|v| d.opsets.contains(&v)));
        // A default-domain operator that does not exist yet at the model's
        // opset (HardSwish before 14, QuantizeLinear before 10).
        if let Some(d) = def.filter(|d| registry::default_domain(d.domain)) {
            if registry::definition(d.name, opset).is_none() {
                let since = registry::HISTORY
                    .iter()
                    .find(|(name, _)| *name == d.name)
                    .and_then(|(_, v)| v.first().copied());
                errors.push(Diagnostic::onnx(
                    &node_name(n, i),
                    &n.op_type,
                    None,
                    match since {
                        Some(s) => format!(
                            "operator {} exists from opset {s}; the model imports opset {opset}",
                            n.op_type
                        ),
                        None => format!("operator {} has no version history in mncc's registry", n.op_type),
                    },
                ));
                defs.push(None);
                continue;
            }
        }
        if def.is_none() {
            let domain = if registry::default_domain(&n.domain) {
                String::new()
            } else {
                format!(" (domain {})", n.domain)
            };
            errors.push(Diagnostic::onnx(
                &node_name(n, i),
                &n.op_type,
                None,
                format!("operator {}{domain} is not supported", n.op_type),
            ));
        }
        defs.push(def);
    }
    if let Some(last) = errors.pop() {
        errors.push(last.with_help(format!("supported operators: {}", ops::names().join(", "))));
        return Err(errors);
    }

    // Inputs and attributes, all at once (before import, so one bad node
    // cannot hide another).
    let weights: HashMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    for (i, (n, def)) in graph.node.iter().zip(&defs).enumerate() {
        let def = def.expect("checked above");
        let attrs = Attrs::new(n, def.attrs);
        let mut problems = attrs.check(opset);
        if !def.inputs.contains(&n.input.len()) {
            problems.push(
                format!(
                    "has {} inputs; {} takes {} to {}",
                    n.input.len(),
                    n.op_type,
                    def.inputs.start(),
                    def.inputs.end()
                )
                .into(),
            );
        }
        if let Some(check) = def.check {
            problems.extend(check(n, &attrs, &weights));
        }
        let name = node_name(n, i);
        errors.extend(problems.into_iter().map(|e| attrs::diagnostic(&name, &n.op_type, e)));
    }
    // Each value has one writer (ONNX's single static assignment): a node
    // output that another node, an initializer or the graph input also
    // defines is ambiguous.
    let mut writer: HashMap<&str, String> = HashMap::new();
    for t in &graph.initializer {
        writer.insert(t.name.as_str(), format!("initializer `{}`", t.name));
    }
    for t in &graph.input {
        writer
            .entry(t.name.as_str())
            .or_insert(format!("graph input `{}`", t.name));
    }
    for (i, n) in graph.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            let name = node_name(n, i);
            match writer.get(o.as_str()) {
                Some(first) => errors.push(Diagnostic::onnx(
                    &name,
                    &n.op_type,
                    None,
                    format!(
                        "writes `{}`, which {first} already defines (each value has one writer)",
                        crate::diag::cut(o)
                    ),
                )),
                None => {
                    writer.insert(o.as_str(), format!("node `{name}`"));
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let order = topological_order(&graph.node)?;
    let mut imp = Importer::new(opset);
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
            Err(e) => {
                // Its readers fail quietly: the initializer's error says it.
                imp.values.insert(t.name.clone(), Value::Failed);
                imp.errors.push(Diagnostic::error(
                    Location::OnnxValue {
                        kind: "initializer",
                        name: t.name.clone(),
                    },
                    e,
                ))
            }
        }
    }
    imp.input_shape = options.input_shape.clone();
    imp.batch = options.batch;
    imp.input(graph, name, &model)?;
    for &i in &order {
        import_node(&mut imp, &graph.node[i], i, defs[i].expect("checked above"));
    }
    // A transposed output: the NHWC transpose of a feature map is given in
    // NHWC, which is how activations are stored; any other is put in ONNX
    // order (a reshape, where only dims of size 1 move).
    let mut output_layout = crate::ir::Layout::Nchw;
    let transposed = graph
        .output
        .first()
        .and_then(|o| Some((&o.name, imp.values.get(&o.name)?.clone())));
    if let Some((out, v @ Value::Permuted(..))) = transposed {
        let nhwc = match &v {
            Value::Permuted(inner, p, _) if p == &[0, 2, 3, 1] => match **inner {
                Value::Tensor(t) => Some(t),
                _ => None,
            },
            _ => None,
        };
        let r = match nhwc {
            Some(t) => {
                output_layout = crate::ir::Layout::Nhwc;
                Ok(Value::Tensor(t))
            }
            None => imp.in_onnx_order(v, out, "the model output"),
        };
        match r {
            Ok(v) => {
                imp.values.insert(out.clone(), v);
            }
            Err(e) => imp.errors.push(Diagnostic::error(
                Location::OnnxValue {
                    kind: "output",
                    name: out.clone(),
                },
                e,
            )),
        }
    }
    if !imp.errors.is_empty() {
        return Err(imp.errors);
    }
    let mut g = imp.finish();
    g.output_layout = output_layout;
    g.batch = imp.batch.unwrap_or(1);
    if graph.output.len() != 1 {
        return Err(err(format!(
            "the model has {} outputs; mncc compiles models with one output",
            graph.output.len()
        )));
    }
    let out = &graph.output[0].name;
    let at = |m: &str| {
        vec![Diagnostic::error(
            Location::OnnxValue {
                kind: "output",
                name: out.clone(),
            },
            m,
        )]
    };
    // A float16 output: the last layer writes halves.
    let elem = graph.output[0].type_.as_ref().and_then(|t| match &t.value {
        Some(onnx_protobuf::type_proto::Value::TensorType(tt)) => Some(tt.elem_type),
        _ => None,
    });
    let f16_out = elem == Some(10) && g.input.dtype != crate::ir::ElemType::F16;
    match imp.values.get(out) {
        // A float32 input cast to a float16 output computes the cast.
        Some(Value::Tensor(t)) if *t != INPUT || f16_out => g.output = *t,
        Some(Value::Tensor(_)) => return Err(at("is the model input: nothing to compute")),
        Some(Value::DynParam(..) | Value::DynScale(..) | Value::IntSums(_)) => {
            return Err(at(
                "is a scale, zero point or int32 sum of dynamic quantization; mncc computes those only within quantize_dynamic's pattern (ConvInteger or MatMulInteger, Cast to float, Mul by the scales), whose float result may be an output",
            ))
        }
        Some(Value::Padded(..)) => return Err(at("is the output of a Pad; only a Conv may read it")),
        Some(Value::Permuted(..)) => return Err(at("is transposed (reported above)")),
        Some(Value::Failed) => return Err(at("is the output of a node that failed")),
        Some(Value::Const(_)) => return Err(at("is a constant: nothing to compute")),
        None => return Err(at("is not produced by any node")),
    }
    if elem == Some(10) {
        let t = g
            .push(
                &format!("{out}.to_float16"),
                crate::ir::Op::Cast(crate::ir::ElemType::F16),
                &[g.output],
            )
            .map_err(|e| at(&e))?;
        if let Some(n) = g.nodes.last_mut() {
            n.source = "(float16 output)".into();
        }
        g.output = t;
    }
    // A QDQ model means what onnxruntime computes of it by default: its
    // DequantizeLinear -> op -> QuantizeLinear groups as integer layers.
    crate::passes::fuse_qdq(&mut g);
    crate::passes::remove_dead(&mut g);
    Ok(g)
}

/// Imports node `n` (index `i`) with its operator's import function.
fn import_node(imp: &mut Importer, n: &NodeProto, i: usize, def: &'static registry::OpDef) {
    let name = node_name(n, i);
    let mut ins = Vec::new();
    for inp in &n.input {
        if inp.is_empty() {
            ins.push(None);
            continue;
        }
        match imp.values.get(inp) {
            Some(Value::Failed) => return imp.fail(n),
            Some(v) => ins.push(Some(v.clone())),
            None => {
                imp.errors.push(Diagnostic::onnx(
                    &name,
                    &n.op_type,
                    None,
                    format!("input `{inp}` is neither a graph input, an initializer nor the output of a node"),
                ));
                return imp.fail(n);
            }
        }
    }
    // Transposed inputs: see `registry::Transposed`.
    let mut perm = None;
    if ins.iter().flatten().any(|v| matches!(v, Value::Permuted(..))) {
        let reader = format!("{} `{}`", n.op_type, crate::diag::cut(&name));
        let scalars = |ins: &[Option<Value>]| {
            ins.iter()
                .flatten()
                .all(|v| !matches!(v, Value::Const(c) if c.len() > 1))
        };
        let r = match def.transposed {
            Transposed::Own => Ok(ins),
            Transposed::Scalars if scalars(&ins) => unpermute_elementwise(imp, ins, &name, &reader).map(|(ins, p)| {
                perm = p;
                ins
            }),
            Transposed::Elementwise => unpermute_elementwise(imp, ins, &name, &reader).map(|(ins, p)| {
                perm = p;
                ins
            }),
            Transposed::Fixed | Transposed::Scalars => ins
                .into_iter()
                .map(|v| v.map(|v| imp.in_onnx_order(v, &name, &reader)).transpose())
                .collect(),
        };
        match r {
            Ok(v) => ins = v,
            Err(e) => {
                imp.errors.push(Diagnostic::onnx(&name, &n.op_type, None, e));
                return imp.fail(n);
            }
        }
    }
    let unique = imp.unique(&name);
    let mut node = Node {
        imp,
        proto: n,
        name: unique,
        ins,
        attrs: Attrs::new(n, def.attrs),
    };
    match (def.import)(&mut node) {
        Ok(outs) => {
            for (o, mut v) in n.output.iter().zip(outs) {
                if let (Some((p, from)), Value::Tensor(_) | Value::Padded(..)) = (&perm, &v) {
                    v = v.permuted(p.clone(), from);
                }
                if !o.is_empty() {
                    imp.values.insert(o.clone(), v);
                }
            }
        }
        Err(e) => {
            imp.errors.push(attrs::diagnostic(&name, &n.op_type, e));
            imp.fail(n);
        }
    }
}

/// The inputs of an elementwise node that reads transposed values, on the
/// tensors under the permutation, and that permutation (its output keeps
/// it): when every computed input carries the same one, the constants are
/// permuted to match. Otherwise each input is put in ONNX order (possible
/// only where the permutation moves dims of size 1), and `None`.
#[allow(clippy::type_complexity)]
fn unpermute_elementwise(
    imp: &mut Importer,
    ins: Vec<Option<Value>>,
    at: &str,
    reader: &str,
) -> Result<(Vec<Option<Value>>, Option<(Vec<usize>, String)>), String> {
    let perm = ins.iter().flatten().find_map(|v| match v {
        Value::Permuted(_, p, from) => Some((p.clone(), from.clone())),
        _ => None,
    });
    // A computed tensor in ONNX order whose permutation back moves only
    // dims of size 1 (a converter's Reshape standing in for a Transpose of
    // a [1, 1, 1, c] tensor) joins by a reshape.
    let joins = |t: &TensorId, p: &[usize]| {
        let s = imp.shape(*t);
        s.len() == p.len() && {
            let at: Vec<usize> = (0..s.len()).filter(|&i| s[i] != 1).map(|i| p[i]).collect();
            at.windows(2).all(|w| w[0] < w[1])
        }
    };
    let common = ins.iter().flatten().all(|v| match v {
        Value::Permuted(_, p, _) => Some(p) == perm.as_ref().map(|(p, _)| p),
        Value::Const(c) => perm.as_ref().is_some_and(|(p, _)| c.unpermuted(p).is_some()),
        Value::Tensor(t) => perm.as_ref().is_some_and(|(p, _)| joins(t, p)),
        _ => false,
    });
    match perm {
        Some(p) if common => {
            let mut out = Vec::with_capacity(ins.len());
            for v in ins {
                out.push(match v {
                    Some(Value::Permuted(inner, ..)) => Some(*inner),
                    Some(Value::Const(c)) => Some(Value::Const(c.unpermuted(&p.0).expect("checked above"))),
                    Some(Value::Tensor(t)) => {
                        let s = imp.shape(t);
                        let mut dims = vec![1; s.len()];
                        for (i, &d) in s.iter().enumerate() {
                            dims[p.0[i]] = d;
                        }
                        let name = imp.unique(&format!("{at}.untranspose"));
                        let g = imp.graph();
                        let r = g.push(&name, crate::ir::Op::Reshape(dims), &[t])?;
                        if let Some(n) = g.nodes.last_mut() {
                            n.source = "Transpose".into();
                        }
                        Some(Value::Tensor(r))
                    }
                    v => v,
                });
            }
            Ok((out, Some(p)))
        }
        _ => {
            let ins = ins
                .into_iter()
                .map(|v| v.map(|v| imp.in_onnx_order(v, at, reader)).transpose())
                .collect::<Result<_, _>>()?;
            Ok((ins, None))
        }
    }
}

/// Nodes in an order where every input is produced before it is read
/// (ONNX requires sorted graphs, but not every file is).
fn topological_order(nodes: &[NodeProto]) -> Result<Vec<usize>, Vec<Diagnostic>> {
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
                        return Err(vec![Diagnostic::msg(format!(
                            "the graph has a cycle through nodes {}",
                            cycle.join(" -> ")
                        ))]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"hello world", &[0xff; 64], &[0x0a, 0x05, 0x01]] {
            assert!(parse(bytes, "m").is_err());
        }
    }
}
