//! Bands: a pointwise layer and the depthwise layer after it run together
//! in bands of rows (`simd::pointwise_depthwise`), so the tensor between
//! them is never stored whole: its rows are consumed from L2, not written
//! out to L3 or memory and read back.
//!
//! The cost model:
//!
//! * fuse when the intermediate tensor is at least a quarter of L2
//!   (`target.l2_bytes`: 512 KiB on x86-64, which takes v1 1.0 224's five
//!   largest, 112x112x64 to 28x28x256, and v2's expansions down to
//!   28x28x192), where the layers before and after evict it from L2 on
//!   its way between the two layers. Measured (whole models, both
//!   compilers in one process, one thread): at 1/4 v1 1.0 224 0.970, v2
//!   1.0 224 0.942, v2 0.35 128 0.990, v1 0.75 192 0.983; at 1/2 0.980,
//!   0.957, 0.996, 0.986; at 1/8 the 128-pixel models were 1.4-3.6%
//!   slower (their 256-512 KiB tensors stay in L2 anyway, and bands only
//!   add calls);
//! * only pixels-outer pointwise layers (their weights are read once per
//!   row tile anyway, so cutting the pixels into bands costs nothing; a
//!   channels-outer layer would stream its weights once per band), with no
//!   residual on either layer, and the depthwise layer the only reader;
//! * a band is as many depthwise output rows as keep one thread's scratch
//!   (the pointwise rows the band's windows read) within a quarter of L2
//!   and half the tensor's rows; the planned scratch holds two, one per
//!   thread of the parallel mode, so the arena does not grow (v1 1.0 224:
//!   4.59 -> 3.28 MiB, v2 1.0 224: 5.74 -> 3.06 MiB).
//!
//! The scratch replaces the intermediate tensor in the memory plan, and the
//! pointwise input stays live through the depthwise step (see
//! [`super::storage`]).

use super::{Kernel, Layer, Step};
use crate::ir::TensorId;
use crate::target::Target;
use mncc_abi::{PwDwShape, PwOrder};

/// The steps of `layers` (in order): each layer alone, but for the
/// pointwise -> depthwise pairs the cost model bands. `output` is the
/// model's output tensor (never banded away).
pub fn steps(layers: &[Layer], output: TensorId, t: &Target) -> Vec<Step> {
    let mut steps = Vec::with_capacity(layers.len());
    let mut i = 0;
    while i < layers.len() {
        match band(layers, i, output, t) {
            Some(shape) => {
                steps.push(Step::Banded {
                    pointwise: i,
                    depthwise: i + 1,
                    shape,
                });
                i += 2;
            }
            None => {
                steps.push(Step::Layer(i));
                i += 1;
            }
        }
    }
    steps
}

/// The band of layers `i` (pointwise) and `i + 1` (depthwise), if the cost
/// model pairs them.
fn band(layers: &[Layer], i: usize, output: TensorId, t: &Target) -> Option<PwDwShape> {
    if t.l2_bytes == 0 {
        return None;
    }
    let (a, b) = (&layers[i], layers.get(i + 1)?);
    let (
        Kernel::Pointwise { shape: pw, tiles, .. },
        Kernel::Depthwise {
            shape: dw,
            tiles: dw_tiles,
            ..
        },
    ) = (&a.kernel, &b.kernel)
    else {
        return None;
    };
    let mid = a.output;
    let readers = layers.iter().filter(|l| l.inputs.contains(&mid)).count();
    let fits = pw.pixels > 1
        && tiles.order == PwOrder::PixelsOuter
        && !a.residual
        && !b.residual
        && b.inputs[0] == mid
        && readers == 1
        && mid != output
        && pw.pixels == dw.in_h * dw.in_w
        && pw.out_c == dw.in_c;
    let bytes = pw.pixels * pw.out_c * 4;
    if !fits || bytes < t.l2_bytes / 4 {
        return None;
    }
    let row_bytes = dw.in_w * dw.in_c * 4;
    let budget_rows = (t.l2_bytes / 4 / row_bytes).max(dw.kernel_h);
    // Both threads' scratch within the tensor it replaces, where it can be.
    let half_rows = (dw.in_h / 2).max(dw.kernel_h);
    let rows = ((budget_rows.min(half_rows) - dw.kernel_h) / dw.stride_h + 1).clamp(1, dw.out_h);
    Some(PwDwShape {
        pw: *pw,
        pw_tiles: *tiles,
        dw: *dw,
        dw_tiles: *dw_tiles,
        band: rows,
    })
}
