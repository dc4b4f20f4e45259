//! A node's attributes: their definitions (name, type, default, opsets),
//! the checks every node gets before import, and typed access; and a
//! node's problems.

use crate::diag::{cut, Diagnostic};
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
    /// What values it may take; checked before import, for every node.
    pub rule: Rule,
}

/// The values an attribute may take (beyond its type): checked by
/// [`Attrs::check`] before any import function sees the node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    /// INTS/FLOATS: exactly this many values.
    pub len: Option<usize>,
    /// INT/INTS: the smallest and largest value allowed.
    pub range: Option<(i64, i64)>,
    /// STRING: the values allowed.
    pub one_of: Option<&'static [&'static str]>,
    /// FLOAT/FLOATS: infinities allowed (a clamp bound); NaN never is.
    pub infinite: bool,
}

impl Rule {
    /// No constraint but finiteness.
    pub const ANY: Rule = Rule {
        len: None,
        range: None,
        one_of: None,
        infinite: false,
    };
}

/// An attribute of every opset.
pub const fn attr(name: &'static str, kind: AttrKind, default: Dflt) -> AttrDef {
    AttrDef {
        name,
        kind,
        default,
        opsets: 1..=i64::MAX,
        rule: Rule::ANY,
    }
}

/// An attribute of the opsets up to `last`.
/// An attribute defined from opset `first` on.
pub const fn attr_from(name: &'static str, kind: AttrKind, default: Dflt, first: i64) -> AttrDef {
    AttrDef {
        name,
        kind,
        default,
        opsets: first..=i64::MAX,
        rule: Rule::ANY,
    }
}

/// An attribute defined up to opset `last`.
pub const fn attr_until(name: &'static str, kind: AttrKind, default: Dflt, last: i64) -> AttrDef {
    AttrDef {
        name,
        kind,
        default,
        opsets: 1..=last,
        rule: Rule::ANY,
    }
}

impl AttrDef {
    /// INTS/FLOATS of exactly `n` values.
    pub const fn len(mut self, n: usize) -> AttrDef {
        self.rule.len = Some(n);
        self
    }

    /// INT/INTS values in `lo..=hi`.
    pub const fn range(mut self, lo: i64, hi: i64) -> AttrDef {
        self.rule.range = Some((lo, hi));
        self
    }

    /// A STRING among `values`.
    pub const fn one_of(mut self, values: &'static [&'static str]) -> AttrDef {
        self.rule.one_of = Some(values);
        self
    }

    /// A FLOAT that may be infinite.
    pub const fn infinite(mut self) -> AttrDef {
        self.rule.infinite = true;
        self
    }

    /// Whether `a` (this attribute's value) breaks the rule, and how.
    fn broken(&self, a: &AttributeProto) -> Option<String> {
        let r = &self.rule;
        let shown = |v: &[i64]| cut(&format!("{v:?}"));
        match self.kind {
            AttrKind::Int => {
                if let Some((lo, hi)) = r.range.filter(|(lo, hi)| !(lo..=hi).contains(&&a.i)) {
                    return Some(format!("{} is out of range (allowed: {})", a.i, range_text(lo, hi)));
                }
            }
            AttrKind::Ints => {
                if let Some(n) = r.len.filter(|&n| a.ints.len() != n) {
                    return Some(format!(
                        "{} has {} value(s); {n} are expected",
                        shown(&a.ints),
                        a.ints.len()
                    ));
                }
                if let Some((lo, hi)) = r
                    .range
                    .filter(|(lo, hi)| a.ints.iter().any(|v| !(lo..=hi).contains(&v)))
                {
                    return Some(format!(
                        "{} has a value out of range (allowed: {})",
                        shown(&a.ints),
                        range_text(lo, hi)
                    ));
                }
            }
            AttrKind::Float => {
                if a.f.is_nan() || (a.f.is_infinite() && !r.infinite) {
                    return Some(format!("{} is not a finite number", a.f));
                }
            }
            AttrKind::Floats => {
                if let Some(n) = r.len.filter(|&n| a.floats.len() != n) {
                    return Some(format!("has {} value(s); {n} are expected", a.floats.len()));
                }
                if let Some(v) = a.floats.iter().find(|v| v.is_nan() || (v.is_infinite() && !r.infinite)) {
                    return Some(format!("holds {v}, not a finite number"));
                }
            }
            AttrKind::Str => {
                let v = String::from_utf8_lossy(&a.s);
                if let Some(allowed) = r.one_of.filter(|allowed| !allowed.contains(&v.as_ref())) {
                    return Some(format!("{:?} is not one of {}", cut(&v), allowed.join(", ")));
                }
            }
            AttrKind::Tensor => {}
        }
        None
    }
}

fn range_text(lo: i64, hi: i64) -> String {
    match (lo, hi) {
        (lo, i64::MAX) => format!("{lo} or more"),
        (lo, hi) => format!("{lo} to {hi}"),
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
            } else if let Some(why) = def.broken(a) {
                problems.push(NodeError::attr(def.name, why));
            }
        }
        if !unknown.is_empty() {
            // An attribute of other opsets (Clip's min and max became inputs
            // at opset 11) says so.
            let elsewhere: Vec<String> = unknown
                .iter()
                .filter_map(|u| {
                    let d = self.defs.iter().find(|d| d.name == u)?;
                    Some(format!(
                        "{u} is an attribute of opsets {} to {} only",
                        d.opsets.start(),
                        d.opsets.end()
                    ))
                })
                .collect();
            let names: Vec<String> = unknown.iter().map(|u| cut(u)).collect();
            problems.push(NodeError::from(format!(
                "unsupported attribute(s) {} at opset {opset} (supported: {}){}",
                names.join(", "),
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                },
                if elsewhere.is_empty() {
                    String::new()
                } else {
                    format!("; {}", elsewhere.join("; "))
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
