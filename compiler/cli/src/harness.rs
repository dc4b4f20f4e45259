//! Builds generated code in a temporary crate and runs it: the engine of
//! `mncc verify` and `mncc bench`, and of the end-to-end tests.
//!
//! The crate holds the runtime (its sources are embedded in this compiler at
//! build time, so no network or checkout is needed), the generated module
//! under `#![deny(warnings)]`, and a small `main` that reads an input file
//! and writes the output, or times repeated runs. It is built in release
//! mode for the host CPU (`-C target-cpu=native`). Built artifacts are cached
//! in `$MNCC_HARNESS_TARGET` (default: a folder in the system temp dir),
//! together with one copy of the runtime per runtime version, so the runtime
//! is compiled once per target dir, not once per harness.

use mncc::codegen::{self, WeightsEmbed};
use mncc::interp::InputData;
use mncc::ir::ElemType;
use mncc::lower::Program;
use std::path::{Path, PathBuf};
use std::process::Command;

include!(concat!(env!("OUT_DIR"), "/runtime_sources.rs"));

/// A built harness binary.
pub struct Harness {
    dir: tempfile::TempDir,
    exe: PathBuf,
    input_type: ElemType,
}

/// Timing of repeated runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Runs timed.
    pub runs: usize,
    /// Median latency, milliseconds.
    pub median_ms: f64,
    /// Minimum latency, milliseconds.
    pub min_ms: f64,
}

/// Kernel calls per instruction set of one run (`isa::calls`), the sets
/// with at least one.
pub type IsaCalls = Vec<(String, u64)>;

const MAIN: &str = r#"#![deny(warnings)]
mod model;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&args[2]).expect("read input");
    let mut input: Box<model::Input> = vec![Default::default(); model::INPUT_LEN].into_boxed_slice().try_into().unwrap();
    decode(&bytes, &mut input[..]);
    let mut arena: Box<model::Arena> = vec![0u8; model::ARENA_LEN].into_boxed_slice().try_into().unwrap();
    let mut output: Box<model::Output> = Box::new([OUT_ZERO; model::OUTPUT_LEN]);
    // `bench <input> <seconds> 2`, `layers <input> <seconds> 2`: run_parallel
    // on the runtime's two-thread pool.
    let pool = (args.len() > 4 && args[4] == "2").then(mncc_runtime::par::StdPool::new);
    match args[1].as_str() {
        "run" => {
            // Poison the arena (every f32 in it a NaN): the model must not
            // depend on its contents.
            arena.fill(0xff);
            model::run(&input, &mut output, &mut arena);
            let out: Vec<u8> = output.iter().flat_map(|&v| out_f32(v).to_le_bytes()).collect();
            std::fs::write(&args[3], out).expect("write output");
            // Which instruction sets the kernels ran on (calls per set).
            for isa in mncc_runtime::isa::Isa::ALL {
                let n = mncc_runtime::isa::calls(isa);
                if n > 0 {
                    println!("{} {n}", isa.name());
                }
            }
        }
        "bench" => {
            let seconds: f64 = args[3].parse().unwrap();
            let run = |input: &model::Input, output: &mut model::Output, arena: &mut model::Arena| match &pool {
                Some(p) => model::run_parallel(input, output, arena, p),
                None => model::run(input, output, arena),
            };
            for _ in 0..3 {
                run(&input, &mut output, &mut arena);
            }
            let mut times = Vec::new();
            let start = std::time::Instant::now();
            while times.len() < 5 || (start.elapsed().as_secs_f64() < seconds && times.len() < 100_000) {
                let t = std::time::Instant::now();
                run(std::hint::black_box(&input), &mut output, &mut arena);
                times.push(t.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(&output);
            }
            times.sort_by(|a, b| a.partial_cmp(b).unwrap());
            println!("{} {} {}", times.len(), times[times.len() / 2], times[0]);
        }
        "layers" => {
            let seconds: f64 = args[3].parse().unwrap();
            let n = model::LAYERS.len();
            let mut times: Vec<Vec<f64>> = vec![Vec::new(); n];
            let start = std::time::Instant::now();
            let mut runs = 0;
            while runs < 5 || (start.elapsed().as_secs_f64() < seconds && runs < 100_000) {
                let mut t = std::time::Instant::now();
                let mut after = |i: usize| {
                    let now = std::time::Instant::now();
                    times[i].push((now - t).as_secs_f64() * 1e3);
                    t = now;
                };
                match &pool {
                    Some(p) => model::run_parallel_observed(std::hint::black_box(&input), &mut output, &mut arena, p, &mut after),
                    None => model::run_observed(std::hint::black_box(&input), &mut output, &mut arena, &mut after),
                }
                std::hint::black_box(&output);
                runs += 1;
            }
            for (i, t) in times.iter_mut().enumerate() {
                t.sort_by(|a, b| a.partial_cmp(b).unwrap());
                let (name, kernel, macs) = model::LAYERS[i];
                println!("{i}\t{name}\t{kernel}\t{macs}\t{}", t[t.len() / 2]);
            }
        }
        other => panic!("unknown mode {other}"),
    }
}
"#;

const DECODE_F32: &str = r#"
fn decode(bytes: &[u8], input: &mut [f32]) {
    assert_eq!(bytes.len(), input.len() * 4, "input file size");
    for (v, b) in input.iter_mut().zip(bytes.chunks_exact(4)) {
        *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}
"#;

const DECODE_F16: &str = r#"
fn decode(bytes: &[u8], input: &mut [u16]) {
    assert_eq!(bytes.len(), input.len() * 4, "input file size");
    for (v, b) in input.iter_mut().zip(bytes.chunks_exact(4)) {
        *v = mncc_runtime::f32_to_f16(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    }
}
"#;

const OUTPUT_F32: &str = r#"
const OUT_ZERO: f32 = 0.0;
fn out_f32(v: f32) -> f32 {
    v
}
"#;

const OUTPUT_F16: &str = r#"
const OUT_ZERO: u16 = 0;
fn out_f32(v: u16) -> f32 {
    mncc_runtime::f16_to_f32(v)
}
"#;

const DECODE_U8: &str = r#"
fn decode(bytes: &[u8], input: &mut [u8]) {
    assert_eq!(bytes.len(), input.len(), "input file size");
    input.copy_from_slice(bytes);
}
"#;

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("MNCC_HARNESS_TARGET")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("mncc-harness-target"))
}

pub(crate) fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), String> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

const RUNTIME_MANIFEST: &str = "[package]\nname = \"mncc-runtime\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[features]\ndefault = []\nmacros = []\nstd = []\ninstrument = [\"std\"]\n\n[dependencies]\nmncc-abi = { path = \"abi\" }\n\n# Its own workspace root: the copy may sit inside someone else's workspace\n# (e.g. `$MNCC_HARNESS_TARGET` under a checkout's `target/`).\n[workspace]\n";

const ABI_MANIFEST: &str = "[package]\nname = \"mncc-abi\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";

/// The embedded runtime, written once per runtime version to
/// `<target dir>/src/mncc-runtime-<hash>/` and shared by every scratch crate
/// built into that target dir. A stable path (and untouched mtimes) lets
/// cargo reuse the compiled runtime instead of rebuilding it for each
/// harness: the runtime's SIMD kernels take about 45 CPU seconds to build in
/// release, the generated module a few. Concurrent writers race safely: each
/// writes a private directory and renames it into place; the loser discards
/// its copy.
pub(crate) fn shared_runtime(target: &Path) -> Result<PathBuf, String> {
    let mut key = [RUNTIME_MANIFEST, ABI_MANIFEST].concat().into_bytes();
    for (rel, text) in RUNTIME_SOURCES {
        key.extend_from_slice(rel.as_bytes());
        key.push(0);
        key.extend_from_slice(text.as_bytes());
        key.push(0);
    }
    let parent = target.join("src");
    let dir = parent.join(format!("mncc-runtime-{:016x}", fnv1a(&key)));
    if dir.join("Cargo.toml").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".mncc-runtime-")
        .tempdir_in(&parent)
        .map_err(|e| format!("cannot create a temp dir in {}: {e}", parent.display()))?;
    for (rel, text) in RUNTIME_SOURCES {
        write(&tmp.path().join(rel), text)?;
    }
    write(&tmp.path().join("abi/Cargo.toml"), ABI_MANIFEST)?;
    // The manifest last: its presence marks a complete copy.
    write(&tmp.path().join("Cargo.toml"), RUNTIME_MANIFEST)?;
    match std::fs::rename(tmp.path(), &dir) {
        Ok(()) => {
            // Renamed away: nothing left for the guard to delete.
            let _ = tmp.keep();
            Ok(dir)
        }
        // Another process put its (identical) copy there first.
        Err(_) if dir.join("Cargo.toml").is_file() => Ok(dir),
        Err(e) => Err(format!("cannot create {}: {e}", dir.display())),
    }
}

/// A temporary workspace with an `app` package holding the generated module
/// (`app/src/model.rs` and its weights) and depending on the shared runtime
/// copy ([`shared_runtime`]); the caller adds `app/src/main.rs` or `lib.rs`
/// and any config, and builds with `CARGO_TARGET_DIR` = [`target_dir`].
/// The package is named `{prefix}_{hash}` from the module, its weights and
/// `salt`, so concurrent builds sharing a target cache never overwrite each
/// other's output. `profile` is the body of `[profile.release]`;
/// `app_extra` is appended to the app's `[package]` table.
pub(crate) fn scratch_crate(
    program: &Program,
    prefix: &str,
    salt: &str,
    profile: &str,
    app_extra: &str,
) -> Result<(tempfile::TempDir, String), String> {
    let src = codegen::source(
        program,
        &WeightsEmbed::IncludeBytes("model.weights.bin".into()),
        &program.name,
    )?;
    let blob = codegen::blob_bytes(program);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}-", prefix.replace('_', "-")))
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let root = dir.path();
    let mut key = src.clone().into_bytes();
    key.extend_from_slice(blob);
    key.extend_from_slice(salt.as_bytes());
    let pkg = format!("{prefix}_{:016x}", fnv1a(&key));
    let runtime = shared_runtime(&target_dir())?;
    write(
        &root.join("Cargo.toml"),
        format!("[workspace]\nresolver = \"2\"\nmembers = [\"app\"]\n\n[profile.release]\n{profile}"),
    )?;
    // A TOML literal string: no escapes, so Windows paths survive.
    write(
        &root.join("app/Cargo.toml"),
        format!(
            "[package]\nname = \"{pkg}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n{app_extra}\n[dependencies]\nmncc-runtime = {{ path = '{}' }}\n",
            runtime.display()
        ),
    )?;
    write(&root.join("app/src/model.rs"), src)?;
    write(&root.join("app/src/model.weights.bin"), blob)?;
    Ok((dir, pkg))
}

/// The generated module plus the temporary crate around it.
pub fn build(program: &Program, quiet: bool) -> Result<Harness, String> {
    let (dir, pkg) = scratch_crate(program, "mncc_harness", "", "opt-level = 3\ndebug = false\n", "")?;
    let root = dir.path();
    write(
        &root.join(".cargo/config.toml"),
        "[build]\nrustflags = [\"-C\", \"target-cpu=native\"]\n",
    )?;
    // A float16 model's halves: the input file's floats taken to the
    // nearest half, the output's halves written as floats.
    let decode = match program.input_type {
        ElemType::U8 => DECODE_U8,
        ElemType::F16 => DECODE_F16,
        _ => DECODE_F32,
    };
    let output = if program.output_type == ElemType::F16 {
        OUTPUT_F16
    } else {
        OUTPUT_F32
    };
    write(&root.join("app/src/main.rs"), format!("{MAIN}{decode}{output}"))?;

    let target = target_dir();
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // The runtime's `std` feature: the two-thread pool of `bench_threads`;
    // `instrument`: `isa::calls`, for `run_isa` (a thread-local count per
    // kernel call).
    cmd.args([
        "build",
        "--release",
        "--offline",
        "-p",
        &pkg,
        "--features",
        "mncc-runtime/std,mncc-runtime/instrument",
    ])
    .current_dir(root)
    .env("CARGO_TARGET_DIR", &target);
    cmd.env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    if quiet {
        cmd.arg("--quiet");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run cargo: {e} (is Rust installed?)"))?;
    if !out.status.success() {
        return Err(format!(
            "the generated code did not compile:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let exe = target
        .join("release")
        .join(format!("{pkg}{}", std::env::consts::EXE_SUFFIX));
    Ok(Harness {
        dir,
        exe,
        input_type: program.input_type,
    })
}

fn input_bytes(input: &InputData) -> Vec<u8> {
    match input {
        InputData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        InputData::U8(v) => v.clone(),
    }
}

impl Harness {
    fn input_file(&self, input: &InputData) -> Result<PathBuf, String> {
        let ok = matches!(
            (input, self.input_type),
            (InputData::F32(_), ElemType::F32 | ElemType::F16) | (InputData::U8(_), ElemType::U8)
        );
        if !ok {
            return Err(format!("the model takes {} input", self.input_type));
        }
        let p = self.dir.path().join("input.bin");
        write(&p, input_bytes(input))?;
        Ok(p)
    }

    /// Runs the harness binary; returns its stdout.
    fn exec(&self, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>, String> {
        let out = Command::new(&self.exe)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run the harness: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the generated code failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(out.stdout)
    }

    /// Runs the model once on `input`.
    pub fn run(&self, input: &InputData) -> Result<Vec<f32>, String> {
        Ok(self.run_isa(input)?.0)
    }

    /// Runs the model once on `input`; also returns the instruction sets
    /// the kernels ran on, with their call counts (`isa::calls`), e.g.
    /// `[("avx512", 28), ("amx", 13)]`.
    pub fn run_isa(&self, input: &InputData) -> Result<(Vec<f32>, IsaCalls), String> {
        let inp = self.input_file(input)?;
        let outp = self.dir.path().join("output.bin");
        let stdout = self.exec(&["run".as_ref(), inp.as_os_str(), outp.as_os_str()])?;
        let bytes = std::fs::read(&outp).map_err(|e| format!("cannot read the output: {e}"))?;
        let isa = String::from_utf8_lossy(&stdout)
            .lines()
            .filter_map(|l| {
                let (name, n) = l.split_once(' ')?;
                Some((name.to_string(), n.trim().parse().ok()?))
            })
            .collect();
        let out = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((out, isa))
    }

    /// Times repeated runs for about `seconds`.
    pub fn bench(&self, input: &InputData, seconds: f64) -> Result<Timing, String> {
        self.bench_threads(input, seconds, 1)
    }

    /// Times repeated runs for about `seconds` on `threads` threads: 1
    /// (`run`) or 2 (`run_parallel` on the runtime's `par::StdPool`).
    pub fn bench_threads(&self, input: &InputData, seconds: f64, threads: usize) -> Result<Timing, String> {
        let threads = threads_arg(threads)?;
        let inp = self.input_file(input)?;
        let secs = seconds.to_string();
        let stdout = self.exec(&["bench".as_ref(), inp.as_os_str(), secs.as_ref(), threads.as_ref()])?;
        let text = String::from_utf8_lossy(&stdout);
        let f: Vec<f64> = text.split_whitespace().filter_map(|t| t.parse().ok()).collect();
        match f[..] {
            [runs, median_ms, min_ms] => Ok(Timing {
                runs: runs as usize,
                median_ms,
                min_ms,
            }),
            _ => Err(format!("unexpected harness output: {text}")),
        }
    }
}

/// The harness binary's thread-count argument: 1 (`run`) or 2 (the
/// runtime's two-thread pool).
fn threads_arg(threads: usize) -> Result<String, String> {
    if (1..=2).contains(&threads) {
        Ok(threads.to_string())
    } else {
        Err(format!("{threads} threads: the harness runs 1 or 2"))
    }
}

/// One layer's median time in a run of the whole model.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTiming {
    /// Source node.
    pub name: String,
    /// Kernel.
    pub kernel: String,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Median milliseconds.
    pub median_ms: f64,
}

impl Harness {
    /// Times each layer within repeated whole-model runs for about `seconds`,
    /// on `threads` threads (1: `run_observed`; 2: `run_parallel_observed`
    /// on the runtime's two-thread pool).
    pub fn bench_layers(&self, input: &InputData, seconds: f64, threads: usize) -> Result<Vec<LayerTiming>, String> {
        let threads = threads_arg(threads)?;
        let inp = self.input_file(input)?;
        let secs = seconds.to_string();
        let stdout = self.exec(&["layers".as_ref(), inp.as_os_str(), secs.as_ref(), threads.as_ref()])?;
        let text = String::from_utf8_lossy(&stdout);
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                match f[..] {
                    [_, name, kernel, macs, ms] => Ok(LayerTiming {
                        name: name.into(),
                        kernel: kernel.into(),
                        macs: macs.parse().map_err(|_| format!("bad harness line {line}"))?,
                        median_ms: ms.parse().map_err(|_| format!("bad harness line {line}"))?,
                    }),
                    _ => Err(format!("unexpected harness output: {line}")),
                }
            })
            .collect()
    }
}

/// A per-layer table and a per-kernel-type summary (median ms, GFLOP/s,
/// percent of `peak` GFLOP/s).
pub fn layer_report(layers: &[LayerTiming], peak: f64) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let gf = |macs: u64, ms: f64| if ms > 0.0 { 2.0 * macs as f64 / (ms * 1e6) } else { 0.0 };
    let _ = writeln!(
        s,
        "\n| # | layer | kernel | MACs | median ms | GFLOP/s | % peak |\n|---|---|---|---|---|---|---|"
    );
    for (i, l) in layers.iter().enumerate() {
        let g = gf(l.macs, l.median_ms);
        let _ = writeln!(
            s,
            "| {i} | {} | {} | {:.2}M | {:.4} | {g:.1} | {:.1} |",
            l.name,
            l.kernel,
            l.macs as f64 / 1e6,
            l.median_ms,
            100.0 * g / peak
        );
    }
    let mut kinds: Vec<(String, u64, f64)> = Vec::new();
    for l in layers {
        // "pointwise_12x32+depthwise_3x3_ct16": a banded pair, timed as one.
        // AMX layers ("pointwise_amx_32x32") apart: their "% peak" is of
        // the f32 FMA peak, which the tiles exceed.
        let amx = if l.kernel.starts_with("pointwise_amx") {
            " (AMX)"
        } else {
            ""
        };
        let kind = if l.kernel.starts_with('(') {
            continue;
        } else if l.kernel.contains('+') {
            format!("pointwise+depthwise (bands){amx}")
        } else {
            format!("{}{amx}", l.kernel.split('_').next().unwrap_or(""))
        };
        let kind = if kind == "global" {
            "global_avg_pool".to_string()
        } else {
            kind
        };
        match kinds.iter_mut().find(|k| k.0 == kind) {
            Some(k) => {
                k.1 += l.macs;
                k.2 += l.median_ms;
            }
            None => kinds.push((kind, l.macs, l.median_ms)),
        }
    }
    let total: f64 = layers.iter().map(|l| l.median_ms).sum();
    let _ = writeln!(
        s,
        "\n| kernel type | MACs | ms (sum of medians) | share of time | GFLOP/s | % peak |\n|---|---|---|---|---|---|"
    );
    for (kind, macs, ms) in kinds {
        let g = gf(macs, ms);
        let _ = writeln!(
            s,
            "| {kind} | {:.1}M | {ms:.3} | {:.1}% | {g:.1} | {:.1} |",
            macs as f64 / 1e6,
            100.0 * ms / total.max(1e-12),
            100.0 * g / peak
        );
    }
    s
}

/// Errors of an output against a reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// Largest absolute difference.
    pub max_abs: f64,
    /// `max_abs / max(1, max|reference|)`: the error relative to the output's scale.
    pub max_rel: f64,
    /// Largest `|reference|`.
    pub ref_max: f64,
    /// Allowed `max_abs`: `1e-4 * max(1, max|reference|)`.
    pub tolerance: f64,
    /// Index of the largest output and of the largest reference value.
    pub argmax: (usize, usize),
}

impl Comparison {
    /// Whether the whole tensor is within tolerance.
    pub fn ok(&self) -> bool {
        self.max_abs <= self.tolerance
    }
}

/// The index of the largest value (the first of equals).
pub fn argmax(v: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in v.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// Compares whole tensors (NaN counts as an infinite error).
pub fn compare(got: &[f32], reference: &[f64]) -> Comparison {
    let ref_max = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut max_abs = if got.len() == reference.len() {
        0.0f64
    } else {
        f64::INFINITY
    };
    for (g, r) in got.iter().zip(reference) {
        let d = (*g as f64 - r).abs();
        max_abs = if d.is_nan() { f64::INFINITY } else { max_abs.max(d) };
    }
    let scale = ref_max.max(1.0);
    Comparison {
        max_abs,
        max_rel: max_abs / scale,
        ref_max,
        tolerance: 1e-4 * scale,
        argmax: (argmax(got.iter().map(|&v| v as f64)), argmax(reference.iter().copied())),
    }
}
