//! ONNX models built in code, for tests and fuzzing: a graph of nodes with
//! attributes and float initializers, one float input and one output,
//! serialized to the bytes an exporter would write.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto::{Tensor, Value};
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};

/// An attribute.
pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INT.into(),
        i: v,
        ..Default::default()
    }
}

/// An INTS attribute.
pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INTS.into(),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A FLOAT attribute.
pub fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::FLOAT.into(),
        f: v,
        ..Default::default()
    }
}

/// A STRING attribute.
pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::STRING.into(),
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// A graph under construction. Node outputs are named after their nodes.
#[derive(Clone, Debug)]
pub struct Model {
    /// The default domain's opset.
    pub opset: i64,
    /// The input's dims (`[1, 3, h, w]` for NCHW).
    pub input: Vec<i64>,
    /// Nodes, in order.
    pub nodes: Vec<NodeProto>,
    /// Initializers.
    pub inits: Vec<TensorProto>,
}

impl Model {
    /// An empty graph reading `input` (named "input").
    pub fn new(opset: i64, input: &[i64]) -> Model {
        Model {
            opset,
            input: input.to_vec(),
            nodes: Vec::new(),
            inits: Vec::new(),
        }
    }

    /// A float initializer; returns its name.
    pub fn init(&mut self, name: &str, dims: &[i64], data: Vec<f32>) -> String {
        self.inits.push(TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: 1,
            float_data: data,
            ..Default::default()
        });
        name.into()
    }

    /// An int64 initializer; returns its name.
    pub fn init_i64(&mut self, name: &str, dims: &[i64], data: Vec<i64>) -> String {
        self.inits.push(TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: 7,
            int64_data: data,
            ..Default::default()
        });
        name.into()
    }

    /// An initializer of ONNX element type `data_type` from its raw
    /// little-endian bytes; returns its name.
    pub fn init_raw(&mut self, name: &str, dims: &[i64], data_type: i32, raw: Vec<u8>) -> String {
        self.inits.push(TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type,
            raw_data: raw,
            ..Default::default()
        });
        name.into()
    }

    /// A node `name` of `op` on `inputs`; returns its output's name.
    pub fn node(&mut self, op: &str, name: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = format!("{name}_out");
        self.nodes.push(NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// The model with `output` as its one output, as bytes.
    pub fn bytes(&self, output: &str) -> Vec<u8> {
        let info = |name: &str, dims: &[i64]| ValueInfoProto {
            name: name.into(),
            type_: Some(TypeProto {
                value: Some(Value::TensorType(Tensor {
                    elem_type: 1,
                    shape: Some(TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| Dimension {
                                value: Some(dimension::Value::DimValue(d)),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .into(),
                    ..Default::default()
                })),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let graph = GraphProto {
            name: "built".into(),
            node: self.nodes.clone(),
            initializer: self.inits.clone(),
            input: vec![info("input", &self.input)],
            output: vec![info(output, &[])],
            ..Default::default()
        };
        let model = ModelProto {
            ir_version: 8,
            producer_name: "mncc tests".into(),
            opset_import: vec![
                OperatorSetIdProto {
                    domain: String::new(),
                    version: self.opset,
                    ..Default::default()
                },
                // onnxruntime's contrib operators (QLinearAdd, ...): nodes
                // that use them set their `domain`.
                OperatorSetIdProto {
                    domain: "com.microsoft".into(),
                    version: 1,
                    ..Default::default()
                },
            ],
            graph: Some(graph).into(),
            ..Default::default()
        };
        model.write_to_bytes().unwrap_or_default()
    }
}

/// A small valid MobileNet-like model (conv 3x3 stride 2 + BatchNorm +
/// ReLU, depthwise 3x3 + ReLU6 (Clip), pointwise 1x1, global average pool,
/// flatten, Gemm to 10 classes) on a `[1, 3, 16, 16]` input, and its output's
/// name: what the robustness tests mutate. Node names: `stem`, `bn`,
/// `relu`, `dw`, `clip`, `pw`, `gap`, `flatten`, `fc`.
pub fn small() -> (Model, String) {
    let mut m = Model::new(13, &[1, 3, 16, 16]);
    let w = |n: usize, s: f32| {
        (0..n)
            .map(|i| ((i * 7919 % 97) as f32 / 97.0 - 0.5) * s)
            .collect::<Vec<f32>>()
    };
    let sw = m.init("stem.w", &[8, 3, 3, 3], w(8 * 27, 0.5));
    let stem = m.node(
        "Conv",
        "stem",
        &["input", &sw],
        vec![
            ints("strides", &[2, 2]),
            ints("pads", &[1, 1, 1, 1]),
            ints("kernel_shape", &[3, 3]),
        ],
    );
    let [g, b, mu, v] = ["bn.g", "bn.b", "bn.m", "bn.v"];
    m.init(g, &[8], vec![1.0; 8]);
    m.init(b, &[8], vec![0.1; 8]);
    m.init(mu, &[8], vec![0.0; 8]);
    m.init(v, &[8], vec![1.0; 8]);
    let bn = m.node(
        "BatchNormalization",
        "bn",
        &[&stem, g, b, mu, v],
        vec![float("epsilon", 1e-5)],
    );
    let relu = m.node("Relu", "relu", &[&bn], vec![]);
    let dww = m.init("dw.w", &[8, 1, 3, 3], w(72, 0.5));
    let dw = m.node(
        "Conv",
        "dw",
        &[&relu, &dww],
        vec![int("group", 8), ints("pads", &[1, 1, 1, 1])],
    );
    let lo = m.init("clip.lo", &[], vec![0.0]);
    let hi = m.init("clip.hi", &[], vec![6.0]);
    let clip = m.node("Clip", "clip", &[&dw, &lo, &hi], vec![]);
    let pww = m.init("pw.w", &[16, 8, 1, 1], w(128, 0.5));
    let pw = m.node("Conv", "pw", &[&clip, &pww], vec![]);
    let gap = m.node("GlobalAveragePool", "gap", &[&pw], vec![]);
    let flat = m.node("Flatten", "flatten", &[&gap], vec![int("axis", 1)]);
    let fw = m.init("fc.w", &[10, 16], w(160, 0.5));
    let fb = m.init("fc.b", &[10], vec![0.0; 10]);
    let out = m.node("Gemm", "fc", &[&flat, &fw, &fb], vec![int("transB", 1)]);
    (m, out)
}
