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
    /// How it reads a transposed input ([`Transposed`]).
    pub transposed: Transposed,
}

/// How an operator reads an input the importer holds transposed: an IR
/// tensor and a permutation still to apply (`Value::Permuted`, made by a
/// Transpose that reorders elements). Graphs converted op by op from NHWC
/// (tf2onnx) wrap every Conv in Transposes to NCHW and back; between them
/// the elementwise operators, pads and means run on NHWC. Carrying the
/// permutation through those lets the next Transpose cancel it, so no
/// element is ever moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transposed {
    /// Elementwise, constants broadcast numpy-style: it runs on the IR
    /// tensor, with its constants permuted to match, and its output keeps
    /// the permutation.
    Elementwise,
    /// Elementwise where its constants are scalars (QuantizeLinear and
    /// DequantizeLinear per tensor), else [`Transposed::Fixed`] (per axis).
    Scalars,
    /// Its import function reads the permutation itself (Transpose
    /// composes it, ReduceMean and Pad permute their axes and pads).
    Own,
    /// It needs the dims in the order ONNX gives them: a permutation that
    /// moves only dims of size 1 becomes a reshape; any other is an error.
    Fixed,
}

/// Opsets of the default domain the front end reads: up to the newest the
/// `onnx` package knows (1.23.2: 28), for every operator mncc reads has
/// been checked against its version history ([`HISTORY`]): a model is
/// read at its opset when each node's definition at that opset is one mncc
/// implements, not by a global maximum.
pub const OPSETS: RangeInclusive<i64> = 7..=28;

/// The version history of every default-domain operator mncc reads, as the
/// `onnx` package 1.23.2 lists it (`onnx.defs.get_all_schemas_with_history`:
/// each definition's `since_version`), reviewed up to [`OPSETS`]'s end:
/// every definition here is one mncc implements. The changes from opset 14
/// on only add element types (bfloat16, float8, int4, float6, ...), which
/// mncc refuses where they occur with their own error, except those the
/// import functions read by opset (ReduceMean 18 and Pad 18: axes as an
/// input; Pad 19's `wrap` mode, refused by the attribute check; AveragePool
/// 19's dilations). A new opset needs its new definitions reviewed here
/// before [`OPSETS`] grows (a test checks that every entry is within it).
pub const HISTORY: &[(&str, &[i64])] = &[
    ("Add", &[1, 6, 7, 13, 14]),
    ("AveragePool", &[1, 7, 10, 11, 19, 22]),
    ("BatchNormalization", &[1, 6, 7, 9, 14, 15]),
    ("Cast", &[1, 6, 9, 13, 19, 21, 23, 24, 25, 28]),
    ("Clip", &[1, 6, 11, 12, 13]),
    ("Concat", &[1, 4, 11, 13]),
    ("Constant", &[1, 9, 11, 12, 13, 19, 21, 23, 24, 25]),
    ("Conv", &[1, 11, 22]),
    ("ConvInteger", &[10]),
    ("Div", &[1, 6, 7, 13, 14]),
    ("DequantizeLinear", &[10, 13, 19, 21, 23, 24, 25, 28]),
    ("Dropout", &[1, 6, 7, 10, 12, 13, 22]),
    ("DynamicQuantizeLinear", &[11]),
    ("Flatten", &[1, 9, 11, 13, 21, 23, 24, 25]),
    ("Gather", &[1, 11, 13]),
    ("Gemm", &[1, 6, 7, 9, 11, 13]),
    ("GlobalAveragePool", &[1, 22]),
    ("HardSigmoid", &[1, 6, 22]),
    ("HardSwish", &[14, 22]),
    ("Identity", &[1, 13, 14, 16, 19, 21, 23, 24, 25]),
    ("MatMul", &[1, 9, 13]),
    ("MatMulInteger", &[10]),
    ("MaxPool", &[1, 8, 10, 11, 12, 22]),
    ("Mul", &[1, 6, 7, 13, 14]),
    ("Pad", &[1, 2, 11, 13, 18, 19, 21, 23, 24, 25]),
    ("QLinearConv", &[10]),
    ("QLinearMatMul", &[10, 21]),
    ("QuantizeLinear", &[10, 13, 19, 21, 23, 24, 25, 28]),
    ("ReduceMean", &[1, 11, 13, 18]),
    ("Relu", &[1, 6, 13, 14]),
    ("Reshape", &[1, 5, 13, 14, 19, 21, 23, 24, 25]),
    ("Shape", &[1, 13, 15, 19, 21, 23, 24, 25]),
    ("Sigmoid", &[1, 6, 13]),
    ("Slice", &[1, 10, 11, 13]),
    ("Softmax", &[1, 11, 13]),
    ("Squeeze", &[1, 11, 13, 21, 23, 24, 25]),
    ("Sub", &[1, 6, 7, 13, 14]),
    ("Transpose", &[1, 13, 21, 23, 24, 25]),
    ("Unsqueeze", &[1, 11, 13, 21, 23, 24, 25]),
];

/// The definition of default-domain operator `op` in effect at `opset`
/// (the largest `since_version` not above it), or `None` when the operator
/// did not exist yet (or has no [`HISTORY`] entry).
pub fn definition(op: &str, opset: i64) -> Option<i64> {
    HISTORY
        .iter()
        .find(|(name, _)| *name == op)
        .and_then(|(_, v)| v.iter().copied().filter(|&s| s <= opset).max())
}

/// The largest size any one dimension, stride, pad or kernel may have
/// ([`crate::limits::MAX_DIM`]): a bound on every size attribute, so that
/// shape arithmetic cannot overflow.
pub const MAX_DIM: i64 = crate::limits::MAX_DIM as i64;

/// Whether `domain` names the default domain.
pub fn default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_domain_operator_has_a_reviewed_history() {
        for def in crate::onnx::ops::all() {
            if !default_domain(def.domain) {
                continue;
            }
            let (_, versions) = HISTORY
                .iter()
                .find(|(n, _)| *n == def.name)
                .unwrap_or_else(|| panic!("{}: no version history in HISTORY", def.name));
            assert!(
                versions.iter().all(|v| v <= OPSETS.end()),
                "{}: a definition newer than opset {} is listed: review it and extend OPSETS",
                def.name,
                OPSETS.end()
            );
        }
        assert_eq!(definition("Conv", 28), Some(22));
        assert_eq!(definition("Conv", 21), Some(11));
        assert_eq!(definition("HardSwish", 13), None);
    }
}
