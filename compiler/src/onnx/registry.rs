//! The operator registry's entry: one [`OpDef`] per ONNX operator the
//! front end reads (its domain, opset range, inputs, attributes, the
//! import function). The entries live with their families under `ops/`,
//! which lists them; the supported list, the attribute checks and their
//! error texts all come from there.

use super::attrs::{AttrDef, Attrs, NodeError};
use super::import::{Import, Node};
use onnx_protobuf::{NodeProto, TensorProto};
use std::collections::HashMap;
use std::ops::RangeInclusive;

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

/// The largest size any one dimension, stride, pad or kernel may have
/// ([`crate::limits::MAX_DIM`]): a bound on every size attribute, so that
/// shape arithmetic cannot overflow.
pub const MAX_DIM: i64 = crate::limits::MAX_DIM as i64;

/// Whether `domain` names the default domain.
pub fn default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}
