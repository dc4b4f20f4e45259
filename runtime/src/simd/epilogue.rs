//! The vector epilogue every kernel family shares: bias, residual and
//! clamp per vector ([`VecEpilogue`]), and whole or partial vector loads
//! and stores.

use super::vec::Vf32;
use crate::Epilogue;

/// The epilogue of one vector, before the activation: `clamp((x + bias) +
/// residual, min, max)`, the terms `ep` has, in the reference's order.
#[derive(Clone, Copy)]
pub(crate) struct VecEpilogue<'a, V> {
    pub(crate) bias: Option<&'a [f32]>,
    residual: Option<&'a [f32]>,
    lo: V,
    hi: V,
}

impl<'a, V: Vf32> VecEpilogue<'a, V> {
    /// `ep`'s bias, residual and clamp bounds.
    ///
    /// # Safety
    /// The CPU supports `V`'s instruction set.
    #[inline(always)]
    pub(crate) unsafe fn new(ep: &Epilogue<'a>) -> Self {
        // SAFETY: forwarded.
        let (lo, hi) = unsafe { (V::splat(ep.min), V::splat(ep.max)) };
        VecEpilogue {
            bias: ep.bias,
            residual: ep.residual,
            lo,
            hi,
        }
    }

    /// The bias of columns `c0..c0 + NV * V::N` as `NV` vectors (the last
    /// one `tail` lanes, the rest zero), removed from `self`: for full
    /// tiles, whose bias depends on the column only, so they add it once
    /// per tile instead of once per row (the stores in between would make
    /// the compiler reload it). `None` without a bias.
    ///
    /// # Safety
    /// `bias[c0..c0 + (NV - 1) * V::N + tail]` is in bounds; the CPU
    /// supports `V`'s instruction set.
    #[inline(always)]
    pub(crate) unsafe fn take_tile_bias<const NV: usize>(&mut self, c0: usize, tail: usize) -> Option<[V; NV]> {
        let bias = self.bias.take()?;
        // SAFETY: the caller's bounds and instruction set.
        unsafe {
            let mut bv = [V::zero(); NV];
            for (v, b) in bv.iter_mut().enumerate() {
                let lanes = if v == NV - 1 { tail } else { V::N };
                *b = load_lanes(bias.as_ptr().add(c0 + v * V::N), lanes);
            }
            Some(bv)
        }
    }

    /// [`apply`](Self::apply) after adding `bias`, a vector of
    /// [`take_tile_bias`](Self::take_tile_bias) (the reference's order:
    /// bias, residual, clamp).
    ///
    /// # Safety
    /// As [`apply`](Self::apply).
    #[inline(always)]
    pub(crate) unsafe fn apply_biased(&self, x: V, bias: Option<V>, bi: usize, ri: usize, lanes: usize) -> V {
        // SAFETY: forwarded.
        unsafe {
            let x = match bias {
                Some(b) => V::add(x, b),
                None => x,
            };
            self.apply(x, bi, ri, lanes)
        }
    }

    /// `x` (output channels `bi..bi + lanes`, flat output index `ri`, which
    /// indexes the residual) through the epilogue; `lanes <= N`, lanes past
    /// it are not read.
    ///
    /// # Safety
    /// `bias[bi..bi + lanes]` and `residual[ri..ri + lanes]` are in bounds
    /// (where present); the CPU supports `V`'s instruction set.
    #[inline(always)]
    pub(crate) unsafe fn apply(&self, x: V, bi: usize, ri: usize, lanes: usize) -> V {
        // SAFETY: forwarded.
        unsafe {
            let mut x = x;
            if let Some(bias) = self.bias {
                x = V::add(x, load_lanes(bias.as_ptr().add(bi), lanes));
            }
            if let Some(res) = self.residual {
                x = V::add(x, load_lanes(res.as_ptr().add(ri), lanes));
            }
            V::clamp(x, self.lo, self.hi)
        }
    }
}

/// The first `lanes <= N` floats at `p` (the rest zero): a whole-vector
/// load when `lanes == N`.
///
/// # Safety
/// `lanes` floats are readable at `p`; the CPU supports `V`'s instruction set.
#[inline(always)]
pub(crate) unsafe fn load_lanes<V: Vf32>(p: *const f32, lanes: usize) -> V {
    // SAFETY: forwarded.
    unsafe {
        if lanes == V::N {
            V::load(p)
        } else {
            V::load_n(p, lanes)
        }
    }
}

/// Stores the first `lanes <= N` lanes of `x` at `p`: a whole-vector store
/// when `lanes == N`.
///
/// # Safety
/// `lanes` floats are writable at `p`; the CPU supports `V`'s instruction set.
#[inline(always)]
pub(crate) unsafe fn store_lanes<V: Vf32>(x: V, p: *mut f32, lanes: usize) {
    // SAFETY: forwarded.
    unsafe {
        if lanes == V::N {
            x.store(p)
        } else {
            x.store_n(p, lanes)
        }
    }
}
