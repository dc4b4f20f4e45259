//! `Harness::bench_threads` and `bench_layers`: the harness times
//! `run_parallel` (whole and per layer) on the runtime's two-thread pool
//! (the generated code and the `std` feature build), and rejects thread
//! counts the pool does not have.

use mncc::interp::InputData;
use mncc_cli::harness;
use std::path::Path;

#[test]
fn bench_on_two_threads() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/models/v2_0.35_96.toml");
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
    // Per layer, in either mode (`run_observed`, `run_parallel_observed`):
    // one timing per layer of the program, in order.
    for threads in [1, 2] {
        let layers = h.bench_layers(&x, 0.05, threads).unwrap();
        let names: Vec<&str> = p.layers.iter().map(|l| l.name.as_str()).collect();
        let got: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(got, names, "{threads} threads");
        assert!(
            layers.iter().all(|l| l.median_ms >= 0.0),
            "{threads} threads: {layers:?}"
        );
    }
    let e = h.bench_layers(&x, 0.05, 3).unwrap_err();
    assert!(e.contains("1 or 2"), "{e}");
}
