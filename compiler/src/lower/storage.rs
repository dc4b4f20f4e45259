//! Where every tensor lives at run time: the caller's input and output
//! arrays, or a byte range of the arena fixed by the static memory planner
//! ([`crate::plan`]), and the AMX layers' scratch past the planned tensors.

use super::{Kernel, Layer, Step, Storage};
use crate::diag::{Diagnostic, Error};
use crate::ir::{TensorId, INPUT};
use crate::plan::{self, Interval};
use mncc_abi::{amx, ALIGN};

/// The storage of a program's tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Per tensor id: where it lives (`None`: no layer reads or writes it).
    pub storage: Vec<Option<Storage>>,
    /// Arena bytes: the planned tensors, then (from `amx_at`) the AMX
    /// layers' scratch.
    pub arena_len: usize,
    /// Where the AMX scratch starts (a multiple of 64).
    pub amx_at: usize,
    /// Bytes of one thread's AMX scratch (0: no AMX layer).
    pub amx_scratch: usize,
    /// The largest total of tensors live at one step, in bytes.
    pub lower_bound: usize,
}

/// Plans `layers` run as `steps`, writing `output`. `bytes[t]` is tensor
/// `t`'s size (for a banded pair's intermediate tensor: its two threads'
/// scratch).
///
/// Each arena tensor lives from the layer that writes it to the last layer
/// that reads it; a banded pointwise layer's input stays live through the
/// depthwise step after it, which writes while bands still read it.
pub fn plan(layers: &[Layer], steps: &[Step], bytes: &[usize], output: TensorId) -> Result<Plan, Error> {
    let mut storage: Vec<Option<Storage>> = vec![None; bytes.len()];
    storage[INPUT] = Some(Storage::Input);
    if output == INPUT {
        return Err(Error::msg("the model output is its input: nothing to compute"));
    }
    storage[output] = Some(Storage::Output);
    // Layer index -> whether it is the pointwise layer of a banded step.
    let mut banded = vec![false; layers.len()];
    for s in steps {
        if let Step::Banded { pointwise, .. } = s {
            banded[*pointwise] = true;
        }
    }
    let mut ids = Vec::new();
    let mut intervals = Vec::new();
    for (step, l) in layers.iter().enumerate() {
        if l.output == output {
            if step + 1 != layers.len() || layers.iter().any(|m| m.inputs.contains(&output)) {
                return Err(Diagnostic::node(
                    &l.name,
                    l.op,
                    "the model output is read by another node, which is not supported",
                )
                .into());
            }
            continue;
        }
        let last = layers
            .iter()
            .enumerate()
            .filter(|(_, m)| m.inputs.contains(&l.output))
            .map(|(k, _)| k + usize::from(banded[k]))
            .max()
            .unwrap_or(step);
        ids.push(l.output);
        intervals.push(Interval {
            len: bytes[l.output],
            first: step,
            last,
        });
    }
    let p = plan::plan(&intervals);
    for (k, &id) in ids.iter().enumerate() {
        storage[id] = Some(Storage::Arena(p.offsets[k]..p.offsets[k] + intervals[k].len));
    }
    // The AMX scratch: after the planned tensors, one part per thread.
    let amx_scratch = layers
        .iter()
        .filter_map(|l| match &l.kernel {
            Kernel::Pointwise {
                shape,
                tiles,
                amx: true,
                ..
            } => Some(4 * amx::scratch_len(shape.pixels, shape.in_c, shape.out_c, tiles.order)),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let amx_at = p.arena_len.div_ceil(ALIGN) * ALIGN;
    let arena_len = if amx_scratch > 0 {
        amx_at + amx::PARTS * amx_scratch
    } else {
        p.arena_len
    };
    crate::limits::check_bytes("the activations' arena", arena_len, crate::limits::MAX_ARENA_BYTES)
        .map_err(Error::msg)?;
    Ok(Plan {
        storage,
        arena_len,
        amx_at,
        amx_scratch,
        lower_bound: p.lower_bound,
    })
}
