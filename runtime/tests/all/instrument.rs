//! The test instrumentation itself: `isa::set_limit` and `isa::calls` are per
//! thread (the tests of this binary run at once), and a `par` call carries
//! the caller's cap to the threads it runs parts on and counts their
//! kernel calls as the caller's.

use crate::common::{assert_same_bits, isas, Rng};
use mncc_runtime::isa::{self, Isa};
use mncc_runtime::par::{self, Parallel};
use mncc_runtime::{ConvShape, Depthwise, DepthwiseTiles, Epilogue};

/// Two participants, parts however small; `b` always on a new thread.
struct SpawnB;

impl Parallel for SpawnB {
    fn threads(&self) -> usize {
        2
    }
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        std::thread::scope(|s| {
            s.spawn(b);
            a();
        });
    }
    fn min_part_macs(&self) -> usize {
        1
    }
}

/// [`SpawnB`]'s split, both closures on the calling thread.
struct Inline2;

impl Parallel for Inline2 {
    fn threads(&self) -> usize {
        2
    }
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        a();
        b();
    }
    fn min_part_macs(&self) -> usize {
        1
    }
}

fn calls() -> [u32; 5] {
    Isa::ALL.map(isa::calls)
}

fn delta(before: [u32; 5], after: [u32; 5]) -> [u32; 5] {
    core::array::from_fn(|i| after[i].wrapping_sub(before[i]))
}

#[test]
fn a_cap_holds_on_its_own_thread_only() {
    isa::set_limit(Some(Isa::Portable));
    assert_eq!(isa::active(), Isa::Portable);
    let elsewhere = std::thread::spawn(isa::active).join().unwrap();
    assert_eq!(elsewhere, isa::detected(), "another thread is not capped");
    isa::set_limit(None);
    assert_eq!(isa::active(), isa::detected());
}

#[test]
fn par_parts_run_with_the_callers_cap_and_count_as_its_calls() {
    let s = ConvShape {
        in_h: 20,
        in_w: 20,
        in_c: 48,
        out_h: 20,
        out_w: 20,
        out_c: 48,
        kernel_h: 3,
        kernel_w: 3,
        stride_h: 1,
        stride_w: 1,
        pad_top: 1,
        pad_left: 1,
    };
    let d = Depthwise {
        shape: s,
        tiles: DepthwiseTiles { rows: 2 },
    };
    let mut rng = Rng::new(5);
    let input = rng.vec(s.in_len(), 1.0);
    let weights = rng.vec(9 * s.in_c, 1.0);
    for cap in isas() {
        isa::set_limit(Some(cap));
        let mut want = vec![0.0; s.out_len()];
        let before = calls();
        par::depthwise(&Inline2, &d, &input, &weights, &Epilogue::NONE, &mut want);
        let inline = delta(before, calls());
        let mut got = vec![f32::NAN; s.out_len()];
        let before = calls();
        par::depthwise(&SpawnB, &d, &input, &weights, &Epilogue::NONE, &mut got);
        let spawned = delta(before, calls());
        // Every part's call counted, all on the cap (a part on the new
        // thread without the cap would count on the detected set).
        let parts = inline[cap as usize - 1];
        assert!(parts >= 2, "{cap:?}: the layer was not split ({inline:?})");
        let mut only_cap = [0; 5];
        only_cap[cap as usize - 1] = parts;
        assert_eq!(inline, only_cap, "{cap:?}: calls inline");
        assert_eq!(spawned, only_cap, "{cap:?}: calls with a part on another thread");
        assert_same_bits(&format!("{cap:?}: spawned vs inline"), &got, &want);
    }
    isa::set_limit(None);
}
