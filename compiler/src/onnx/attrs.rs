//! A node's attributes: their definitions (name, type, default, opsets),
//! the checks every node gets before import, and typed access; and a
//! node's problems.

use crate::diag::Diagnostic;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, NodeProto};
use std::ops::RangeInclusive;

/// An attribute's type, as ONNX declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrKind {
    /// `INT`.
    Int,
    /// `FLOAT`.
    Float,
    /// `STRING`.
    Str,
    /// `INTS`.
    Ints,
    /// `FLOATS`.
    Floats,
    /// `TENSOR`.
    Tensor,
}

impl AttrKind {
    fn proto(self) -> AttributeType {
        match self {
            AttrKind::Int => AttributeType::INT,
            AttrKind::Float => AttributeType::FLOAT,
            AttrKind::Str => AttributeType::STRING,
            AttrKind::Ints => AttributeType::INTS,
            AttrKind::Floats => AttributeType::FLOATS,
            AttrKind::Tensor => AttributeType::TENSOR,
        }
    }
}

/// An attribute's default, where ONNX gives one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dflt {
    /// None: absent means absent.
    None,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f32),
    /// A string.
    Str(&'static str),
}

/// An attribute an operator may carry.
#[derive(Clone, Debug, PartialEq)]
pub struct AttrDef {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: AttrKind,
    /// Its default.
    pub default: Dflt,
    /// The opsets that define it (attributes that became inputs end there).
    pub opsets: RangeInclusive<i64>,
}

/// An attribute of every opset.
pub const fn attr(name: &'static str, kind: AttrKind, default: Dflt) -> AttrDef {
    AttrDef {
        name,
        kind,
        default,
        opsets: 1..=i64::MAX,
    }
}

/// An attribute of the opsets up to `last`.
pub const fn attr_until(name: &'static str, kind: AttrKind, default: Dflt, last: i64) -> AttrDef {
    AttrDef {
        name,
        kind,
        default,
        opsets: 1..=last,
    }
}

/// A problem of one node, possibly with one of its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeError {
    /// The attribute concerned, if any.
    pub attribute: Option<&'static str>,
    /// What is wrong.
    pub message: String,
}

impl NodeError {
    /// A problem with attribute `name`.
    pub fn attr(name: &'static str, message: impl Into<String>) -> NodeError {
        NodeError {
            attribute: Some(name),
            message: message.into(),
        }
    }
}

impl From<String> for NodeError {
    fn from(message: String) -> NodeError {
        NodeError {
            attribute: None,
            message,
        }
    }
}

impl From<&str> for NodeError {
    fn from(message: &str) -> NodeError {
        NodeError::from(message.to_string())
    }
}

/// A node's attributes, with their definitions.
pub struct Attrs<'a> {
    node: &'a NodeProto,
    defs: &'a [AttrDef],
}

impl<'a> Attrs<'a> {
    /// The attributes of `node`, defined by `defs`.
    pub fn new(node: &'a NodeProto, defs: &'a [AttrDef]) -> Attrs<'a> {
        Attrs { node, defs }
    }

    /// Every problem with the node's attributes at `opset`: unknown names,
    /// attributes of other opsets, wrong types.
    pub fn check(&self, opset: i64) -> Vec<NodeError> {
        let mut problems = Vec::new();
        let allowed: Vec<&str> = self
            .defs
            .iter()
            .filter(|d| d.opsets.contains(&opset))
            .map(|d| d.name)
            .collect();
        let mut unknown = Vec::new();
        for a in &self.node.attribute {
            let Some(def) = self.defs.iter().find(|d| d.name == a.name && d.opsets.contains(&opset)) else {
                unknown.push(a.name.clone());
                continue;
            };
            let got = a.type_.enum_value_or(AttributeType::UNDEFINED);
            // Old exporters leave the type unset; the field that holds the value tells.
            if got != AttributeType::UNDEFINED && got != def.kind.proto() {
                problems.push(NodeError::attr(
                    def.name,
                    format!("is {got:?}, but {} expects {:?}", self.node.op_type, def.kind.proto()),
                ));
            }
        }
        if !unknown.is_empty() {
            problems.push(NodeError::from(format!(
                "unsupported attribute(s) {} (supported: {})",
                unknown.join(", "),
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            )));
        }
        problems
    }

    /// The attribute `name`, if the node has it.
    pub fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    fn default(&self, name: &str) -> Dflt {
        self.defs
            .iter()
            .find(|d| d.name == name)
            .map_or(Dflt::None, |d| d.default)
    }

    /// An INT attribute, or its default (0 without one).
    pub fn int(&self, name: &str) -> i64 {
        self.opt_int(name).unwrap_or(match self.default(name) {
            Dflt::Int(v) => v,
            _ => 0,
        })
    }

    /// An INT attribute, if present.
    pub fn opt_int(&self, name: &str) -> Option<i64> {
        self.get(name).map(|a| a.i)
    }

    /// A FLOAT attribute, or its default (0 without one).
    pub fn float(&self, name: &str) -> f32 {
        self.get(name).map_or(
            match self.default(name) {
                Dflt::Float(v) => v,
                _ => 0.0,
            },
            |a| a.f,
        )
    }

    /// An INTS attribute, if present.
    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }

    /// A STRING attribute, or its default.
    pub fn string(&self, name: &str) -> Option<String> {
        match self.get(name) {
            Some(a) => Some(String::from_utf8_lossy(&a.s).into_owned()),
            None => match self.default(name) {
                Dflt::Str(s) => Some(s.to_string()),
                _ => None,
            },
        }
    }
}

/// A diagnostic for node `name` (op `op`) from `e`.
pub fn diagnostic(name: &str, op: &str, e: NodeError) -> Diagnostic {
    Diagnostic::onnx(name, op, e.attribute, e.message)
}
