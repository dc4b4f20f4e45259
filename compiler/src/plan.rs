//! Static memory planning: arena offsets from tensor lifetimes.
//!
//! Each intermediate tensor lives from the step that writes it to the last
//! step that reads it (inclusive). Two tensors whose lifetimes intersect
//! never share arena space; in particular a layer's output never overlaps
//! its inputs. Placement is greedy, largest tensor first, at the lowest
//! aligned offset that conflicts with no placed tensor (as XNNPACK's memory
//! planner does). The lower bound on any arena is the largest sum of sizes
//! of tensors live at one step.

/// A tensor to place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Size in bytes.
    pub len: usize,
    /// Step that writes it.
    pub first: usize,
    /// Last step that reads it (`>= first`).
    pub last: usize,
}

impl Interval {
    fn overlaps_in_time(&self, o: &Interval) -> bool {
        self.first <= o.last && o.first <= self.last
    }
}

/// Every tensor starts on a multiple of this many bytes (a cache line).
pub const ALIGN: usize = mncc_abi::ALIGN;

/// The result of planning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Offset (bytes) of each interval, in input order.
    pub offsets: Vec<usize>,
    /// Arena size in bytes.
    pub arena_len: usize,
    /// Largest total size of simultaneously live tensors.
    pub lower_bound: usize,
}

/// Places `tensors`: greedy placement in several deterministic orders
/// (largest first, as XNNPACK; longest-lived first; earliest first; largest
/// size x lifetime first), keeping the smallest arena (the first on ties).
pub fn plan(tensors: &[Interval]) -> Plan {
    // Sort keys, smallest first; `M - x` sorts by `x` descending.
    const M: usize = usize::MAX;
    type Key = fn(&Interval) -> (usize, usize);
    let orders: [Key; 4] = [
        |t| (M - t.len, t.first),
        |t| (M - (t.last - t.first), M - t.len),
        |t| (t.first, M - t.len),
        |t| (M - t.len.saturating_mul(t.last - t.first + 1), t.first),
    ];
    let mut best: Option<Vec<usize>> = None;
    let mut best_len = usize::MAX;
    for key in orders {
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        // Ties broken by size then index, for determinism.
        order.sort_by_key(|&i| (key(&tensors[i]), i));
        let offsets = place(tensors, &order);
        let len = arena_len(tensors, &offsets);
        if len < best_len {
            best_len = len;
            best = Some(offsets);
        }
    }
    let offsets = best.unwrap_or_default();
    let steps = tensors.iter().map(|t| t.last + 1).max().unwrap_or(0);
    let lower_bound = (0..steps)
        .map(|s| {
            tensors
                .iter()
                .filter(|t| t.first <= s && s <= t.last)
                .map(|t| t.len)
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    Plan {
        arena_len: arena_len(tensors, &offsets),
        offsets,
        lower_bound,
    }
}

fn arena_len(tensors: &[Interval], offsets: &[usize]) -> usize {
    tensors.iter().zip(offsets).map(|(t, o)| o + t.len).max().unwrap_or(0)
}

/// Places tensors in `order`, each at the lowest aligned offset that
/// conflicts with no tensor already placed and alive at the same time.
fn place(tensors: &[Interval], order: &[usize]) -> Vec<usize> {
    let mut offsets = vec![0; tensors.len()];
    let mut placed: Vec<usize> = Vec::new();
    for &i in order {
        let t = &tensors[i];
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| tensors[j].overlaps_in_time(t))
            .map(|&j| (offsets[j], offsets[j] + tensors[j].len))
            .collect();
        busy.sort_unstable();
        let mut at = 0;
        for (start, end) in busy {
            if start >= at + t.len {
                break;
            }
            at = at.max(end.div_ceil(ALIGN) * ALIGN);
        }
        offsets[i] = at;
        placed.push(i);
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(ts: &[Interval], p: &Plan) {
        for (i, a) in ts.iter().enumerate() {
            assert_eq!(p.offsets[i] % ALIGN, 0);
            assert!(p.offsets[i] + a.len <= p.arena_len);
            for (j, b) in ts.iter().enumerate().skip(i + 1) {
                if a.overlaps_in_time(b) && a.len > 0 && b.len > 0 {
                    let (oa, ob) = (p.offsets[i], p.offsets[j]);
                    assert!(
                        oa + a.len <= ob || ob + b.len <= oa,
                        "tensors {i} and {j} overlap: {ts:?} {p:?}"
                    );
                }
            }
        }
        assert!(p.arena_len >= p.lower_bound);
    }

    #[test]
    fn chain_reaches_lower_bound() {
        // A v1-like chain: each tensor read only by the next step.
        let lens = [401408, 401408, 802816, 200704, 401408, 100352, 200704];
        let ts: Vec<Interval> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| Interval {
                len,
                first: i,
                last: i + 1,
            })
            .collect();
        let p = plan(&ts);
        check(&ts, &p);
        assert_eq!(p.arena_len, p.lower_bound);
        assert_eq!(p.lower_bound, 802816 + 401408);
    }

    #[test]
    fn residual_kept_alive() {
        // t0 is read at step 3 (a residual): it may not share space with t1..t2.
        let ts = [
            Interval {
                len: 64,
                first: 0,
                last: 3,
            },
            Interval {
                len: 384,
                first: 1,
                last: 2,
            },
            Interval {
                len: 384,
                first: 2,
                last: 3,
            },
            Interval {
                len: 64,
                first: 3,
                last: 4,
            },
        ];
        let p = plan(&ts);
        check(&ts, &p);
        assert_eq!(p.lower_bound, 64 + 384 + 384);
        assert_eq!(p.arena_len, p.lower_bound);
    }

    proptest! {
        #[test]
        fn never_overlaps(spec in prop::collection::vec((1usize..5000, 0usize..30, 0usize..6), 0..40)) {
            let ts: Vec<Interval> = spec.iter().map(|&(len, first, dur)| Interval { len, first, last: first + dur }).collect();
            let p = plan(&ts);
            check(&ts, &p);
        }
    }
}
