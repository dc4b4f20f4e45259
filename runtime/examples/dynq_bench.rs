use std::time::Instant;
fn main() {
    let n = 112 * 112 * 96;
    let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 3.0).collect();
    let mut y = vec![0u8; n + 8];
    let mut ts = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        mncc_runtime::dynq::quantize(&x, &mut y);
        ts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("quantize {n}: median {:.3} ms", ts[25]);
}
