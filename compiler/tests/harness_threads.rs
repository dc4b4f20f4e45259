//! `Harness::bench_threads`: the harness times `run_parallel` on the
//! runtime's two-thread pool (the generated code and the `std` feature
//! build), and rejects thread counts the pool does not have.

use mncc::harness;
use mncc::interp::InputData;
use std::path::Path;

#[test]
fn bench_on_two_threads() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/models/v2_0.35_96.toml");
    let m = mncc::load(&model).unwrap();
    let p = mncc::compile(&m).unwrap();
    let x = InputData::random(p.input_type, p.input_len(), 1);
    let h = harness::build(&p, true).unwrap();
    for threads in [1, 2] {
        let t = h.bench_threads(&x, 0.05, threads).unwrap();
        assert!(
            t.runs >= 5 && t.median_ms > 0.0 && t.min_ms <= t.median_ms,
            "{threads} threads: {t:?}"
        );
    }
    let e = h.bench_threads(&x, 0.05, 3).unwrap_err();
    assert!(e.contains("1 or 2"), "{e}");
}
