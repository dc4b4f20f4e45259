//! The mncc side of bench/run.py: `src/main.rs` of each generated bench crate
//! (bench/out/crates/<model>/), next to `src/model.rs` from `mncc compile`.
//!
//! Usage: `<bench binary> INPUT.bin` (the model's input, raw f32 little-endian,
//! in the model's input layout). It prints `ready <name> <MACS> <INPUT_LEN>
//! <OUTPUT_LEN> <ARENA_LEN>`, then answers one line per command on stdin:
//!
//! - `run N`: N inferences, timed one by one; prints the N times in ns, space-separated.
//! - `out`: prints the output of one inference (OUTPUT_LEN values, shortest round-trip form).
//! - `threads N`: `ok` if later `run`s use N threads (1, or 2: `run_parallel`
//!   on `mncc_runtime::par::StdPool`, started once), else `unsupported`.
//! - `quit` (or end of input): exits.
//!
//! Anything else gets `error <message>`. Plain safe Rust: no `unsafe`, no FFI.
#![deny(warnings)]
#![forbid(unsafe_code)]

mod model;

use mncc_runtime::par::StdPool;
use std::hint::black_box;
use std::io::{BufRead, Write};
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: bench INPUT.bin");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    assert_eq!(
        bytes.len(),
        model::INPUT_LEN * 4,
        "{path}: expected {} f32 values",
        model::INPUT_LEN
    );
    let mut input: Box<model::Input> = vec![0.0f32; model::INPUT_LEN].into_boxed_slice().try_into().unwrap();
    for (v, b) in input.iter_mut().zip(bytes.chunks_exact(4)) {
        *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    let mut arena: Box<model::Arena> = vec![0u8; model::ARENA_LEN].into_boxed_slice().try_into().unwrap();
    let mut output: Box<model::Output> = Box::new([0.0; model::OUTPUT_LEN]);
    // Started at the first `threads 2` and kept (parked while unused).
    let mut pool: Option<StdPool> = None;
    let mut threads = 1usize;

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(
        out,
        "ready {} {} {} {} {}",
        model::NAME,
        model::MACS,
        model::INPUT_LEN,
        model::OUTPUT_LEN,
        model::ARENA_LEN
    )
    .unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("read stdin");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["run", n] => match n.parse::<usize>() {
                Ok(n) => {
                    let mut times = Vec::with_capacity(n);
                    for _ in 0..n {
                        let t = Instant::now();
                        run(
                            pool.as_ref().filter(|_| threads == 2),
                            black_box(&input),
                            &mut output,
                            &mut arena,
                        );
                        times.push(t.elapsed().as_nanos());
                        black_box(&output);
                    }
                    let text: Vec<String> = times.iter().map(|t| t.to_string()).collect();
                    writeln!(out, "{}", text.join(" ")).unwrap();
                }
                Err(e) => writeln!(out, "error run: {e}").unwrap(),
            },
            ["out"] => {
                // Poison the arena first: the output must not depend on its contents.
                arena.fill(0xff); // every f32 in it a NaN
                run(pool.as_ref().filter(|_| threads == 2), &input, &mut output, &mut arena);
                let text: Vec<String> = output.iter().map(|v| v.to_string()).collect();
                writeln!(out, "{}", text.join(" ")).unwrap();
            }
            ["threads", n] => {
                // 2 threads: the calling thread and the pool's worker.
                match n {
                    "1" => threads = 1,
                    "2" => {
                        threads = 2;
                        pool.get_or_insert_with(StdPool::new);
                    }
                    _ => {}
                }
                let ok = if threads.to_string() == n { "ok" } else { "unsupported" };
                writeln!(out, "{ok}").unwrap();
            }
            ["quit"] => break,
            _ => writeln!(out, "error unknown command `{line}`").unwrap(),
        }
        out.flush().unwrap();
    }
}

/// One inference: `run`, or `run_parallel` on `pool`'s two threads.
fn run(pool: Option<&StdPool>, input: &model::Input, output: &mut model::Output, arena: &mut model::Arena) {
    match pool {
        Some(p) => model::run_parallel(input, output, arena, p),
        None => model::run(input, output, arena),
    }
}
