//! The operator registry: one [`OpDef`] per ONNX operator the front end
//! reads (its domain, opset range, inputs, attributes with their types,
//! the import function). The list of supported operators, the attribute
//! checks and their error texts all come from it.

use super::import::{Node, Value};
use super::ops;
use crate::diag::Diagnostic;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, NodeProto, TensorProto};
use std::collections::HashMap;
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

/// What an import function returns: one value per node output.
pub type Import = Result<Vec<Value>, NodeError>;

/// A check of a node before import, with the graph's initializers at hand
/// (for what a weight's shape says about an attribute).
pub type Check = fn(&NodeProto, &Attrs<'_>, &HashMap<&str, &TensorProto>) -> Vec<NodeError>;

/// One operator.
#[derive(Clone)]
pub struct OpDef {
    /// The ONNX operator type.
    pub name: &'static str,
    /// Its domain: `""` (ai.onnx) or e.g. `"com.microsoft"`.
    pub domain: &'static str,
    /// The opsets of its domain it is read in.
    pub opsets: RangeInclusive<i64>,
    /// How many inputs it takes (optional ones included).
    pub inputs: RangeInclusive<usize>,
    /// Its attributes; any other is rejected.
    pub attrs: &'static [AttrDef],
    /// Checks before import (beyond the attributes' names and types).
    pub check: Option<Check>,
    /// The import: typed IR ops (or a constant, or a pending pad) from the
    /// node.
    pub import: fn(&mut Node<'_>) -> Import,
}

/// Opsets of the default domain the front end reads. (Versions 22 to 25 of
/// the operators above only added element types: float ops are unchanged.)
pub const OPSETS: RangeInclusive<i64> = 7..=25;

/// Every operator, in the order of `ops`' families.
pub fn all() -> impl Iterator<Item = &'static OpDef> {
    [
        ops::conv::OPS,
        ops::elementwise::OPS,
        ops::pooling::OPS,
        ops::linear::OPS,
        ops::shape::OPS,
    ]
    .into_iter()
    .flatten()
}

/// Whether `domain` names the default domain.
pub fn default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// The operator `op` of `domain`, if the front end reads it.
pub fn find(domain: &str, op: &str) -> Option<&'static OpDef> {
    let d = if default_domain(domain) { "" } else { domain };
    all().find(|o| o.name == op && o.domain == d)
}

/// The names of every operator, for error messages.
pub fn names() -> Vec<String> {
    all()
        .map(|o| {
            if o.domain.is_empty() {
                o.name.to_string()
            } else {
                format!("{} ({})", o.name, o.domain)
            }
        })
        .collect()
}

/// A node's attributes, with their definitions.
pub struct Attrs<'a> {
    node: &'a NodeProto,
    defs: &'a [AttrDef],
}

impl<'a> Attrs<'a> {
    /// The attributes of `node`, defined by `def`.
    pub fn new(node: &'a NodeProto, def: &'a OpDef) -> Attrs<'a> {
        Attrs { node, defs: def.attrs }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_is_registered_once() {
        let mut seen = std::collections::HashSet::new();
        for o in all() {
            assert!(seen.insert((o.domain, o.name)), "{} twice", o.name);
            assert!(!o.inputs.is_empty(), "{}", o.name);
            let mut attrs = std::collections::HashSet::new();
            for a in o.attrs {
                assert!(
                    attrs.insert((a.name, *a.opsets.start())),
                    "{}: attribute {} twice",
                    o.name,
                    a.name
                );
            }
        }
        assert!(find("", "Conv").is_some() && find("ai.onnx", "Conv").is_some());
        assert!(find("com.microsoft", "Conv").is_none());
    }
}
