//! The scalar epilogue: `act(clamp((acc + bias) + residual, min, max))`
//! (the clamp and activations as `mncc_abi` defines them), stored tile by
//! tile: what the reference kernels and the elementwise ones use, and the
//! activation pass the SIMD kernels run after their vector stores.

use crate::abi::clamp;
use crate::{Activation, Epilogue};

/// Writes the epilogue of `acc` to `out[o..o + acc.len()]`: output channels
/// `c0..c0 + acc.len()`, flat output index `o` (which also indexes the
/// residual). The clamp, then the activation as one pass over the tile
/// (`ep.act` is matched once per tile).
#[inline(always)]
pub(crate) fn store(ep: &Epilogue<'_>, acc: &[f32], c0: usize, o: usize, out: &mut [f32]) {
    let dst = &mut out[o..o + acc.len()];
    store_clamped(ep, acc, c0, o, dst);
    activate(ep.act, dst);
}

/// `dst[j] = clamp((acc[j] + bias[c0 + j]) + residual[o + j], min, max)`
/// (no activation). The bias/residual cases are separate loops.
#[inline(always)]
pub(crate) fn store_clamped(ep: &Epilogue<'_>, acc: &[f32], c0: usize, o: usize, dst: &mut [f32]) {
    let n = acc.len();
    let (min, max) = (ep.min, ep.max);
    match (ep.bias, ep.residual) {
        (None, None) => {
            for (d, &a) in dst.iter_mut().zip(acc) {
                *d = clamp(a, min, max);
            }
        }
        (Some(bias), None) => {
            let bias = &bias[c0..c0 + n];
            for ((d, &a), &b) in dst.iter_mut().zip(acc).zip(bias) {
                *d = clamp(a + b, min, max);
            }
        }
        (None, Some(res)) => {
            let res = &res[o..o + n];
            for ((d, &a), &r) in dst.iter_mut().zip(acc).zip(res) {
                *d = clamp(a + r, min, max);
            }
        }
        (Some(bias), Some(res)) => {
            let bias = &bias[c0..c0 + n];
            let res = &res[o..o + n];
            for (((d, &a), &b), &r) in dst.iter_mut().zip(acc).zip(bias).zip(res) {
                *d = clamp((a + b) + r, min, max);
            }
        }
    }
}

/// Applies `act` in place to a just-stored tile ([`Activation::apply`]).
#[inline(always)]
pub(crate) fn activate(act: Activation, dst: &mut [f32]) {
    if act != Activation::None {
        for d in dst.iter_mut() {
            *d = act.apply(*d);
        }
    }
}
