//! The `mncc` command line.

use clap::{Parser, Subcommand};
use mncc::interp::{self, InputData};
use mncc::ir::ElemType;
use mncc::{Error, Target};
use mncc_cli::harness::{self, Comparison};
use mncc_cli::{footprint, npy};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// mncc: compile MobileNets into allocation-free, no_std Rust.
#[derive(Parser)]
#[command(name = "mncc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// How to read the model (every command).
#[derive(clap::Args)]
struct LoadArgs {
    /// The ONNX input's shape, in its own dim order (e.g. 1,3,224,224): fixes the
    /// symbolic dims of models exported with a dynamic height and width.
    #[arg(long = "input-shape", value_name = "DIMS", value_delimiter = ',')]
    input_shape: Option<Vec<usize>>,
    /// Images per run: the generated `run` takes N images one after another (one
    /// arena, reused), whatever batch an ONNX file was exported with. Default: the
    /// ONNX input's fixed batch, else 1.
    #[arg(long, value_name = "N")]
    batch: Option<usize>,
}

impl LoadArgs {
    fn options(&self) -> mncc::LoadOptions {
        mncc::LoadOptions {
            input_shape: self.input_shape.clone(),
            batch: self.batch,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile MODEL into a Rust module OUT.rs and its weights OUT.weights.bin.
    Compile {
        /// The model: a description (.toml) or an ONNX file (.onnx).
        model: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
        /// The CPU the schedule is sized for (cache tiles, bands; x86-64-amx: pointwise
        /// layers on the AMX tiles). The generated code runs on any CPU of the
        /// architecture either way.
        #[arg(long, default_value = "x86-64", value_parser = target_parser())]
        target: Target,
        /// The Rust file to write.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Show each generated layer (op, shapes, MACs, params, kernel, tiles) and the totals.
    Inspect {
        /// The model: a description (.toml) or an ONNX file (.onnx).
        model: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
        /// The CPU the schedule is sized for (cache tiles, bands; x86-64-amx: pointwise
        /// layers on the AMX tiles). The generated code runs on any CPU of the
        /// architecture either way.
        #[arg(long, default_value = "x86-64", value_parser = target_parser())]
        target: Target,
        /// Also report the memory the model needs and the code size of the generated module and the
        /// runtime as linked for TARGET (a target triple installed with rustup; repeatable).
        #[arg(long = "code-size", value_name = "TARGET")]
        code_size: Vec<String>,
        /// Optimization level of the --code-size builds (0, 1, 2, 3, s, z).
        #[arg(long, default_value = "s", requires = "code_size")]
        opt_level: String,
    },
    /// Build the generated code, run it, and compare its whole output with a reference.
    ///
    /// The reference is --expect, or else the reference interpreter (f64). Exits
    /// with status 1 when the max abs error exceeds 1e-4 * max(1, max|reference|).
    Verify {
        /// The model: a description (.toml) or an ONNX file (.onnx).
        model: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
        /// The CPU the schedule is sized for (cache tiles, bands; x86-64-amx: pointwise
        /// layers on the AMX tiles). The generated code runs on any CPU of the
        /// architecture either way.
        #[arg(long, default_value = "x86-64", value_parser = target_parser())]
        target: Target,
        /// Input tensor (.npy, f32 or u8, in the model's input layout); default: seeded random.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Expected output (.npy); default: the reference interpreter's.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Seed of the random input.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Build the generated code and time it: median and min latency over repeated runs.
    Bench {
        /// The model: a description (.toml) or an ONNX file (.onnx).
        model: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
        /// The CPU the schedule is sized for (cache tiles, bands; x86-64-amx: pointwise
        /// layers on the AMX tiles). The generated code runs on any CPU of the
        /// architecture either way.
        #[arg(long, default_value = "x86-64", value_parser = target_parser())]
        target: Target,
        /// Seconds of timed runs.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Also time each layer (within whole-model runs, on --threads threads)
        /// and summarize per kernel.
        #[arg(long)]
        layers: bool,
        /// Threads per inference: 1 (`run`) or 2 (`run_parallel` on the runtime's
        /// two-thread pool).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        threads: u8,
        /// f32 FMA peak of one core in GFLOP/s, for the "% of peak" columns
        /// (177 on the Xeon the README's figures come from; `bench/peak` measures yours;
        /// layers on the AMX tiles can exceed it).
        #[arg(long, default_value_t = 177.0)]
        peak: f64,
    },
}

/// `--target`: one of [`Target::ALL`]'s names (listed by `--help`).
fn target_parser() -> impl clap::builder::TypedValueParser<Value = Target> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Target::ALL.map(|t| t.name))
        .map(|name| Target::by_name(&name).unwrap_or(Target::X86_64))
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal compiler error: {info}\nPlease report this with the model that caused it.");
    }));
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            for line in e.0 {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

fn load_input(path: Option<&Path>, program: &mncc::lower::Program, seed: u64) -> Result<InputData, Error> {
    let len = program.input_len();
    let Some(path) = path else {
        return Ok(InputData::random(program.input_type, len, seed));
    };
    let n = npy::read(path).map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    if n.len() != len {
        return Err(Error::msg(format!(
            "{}: has shape {:?} ({} values); the model takes {:?} ({len} values)",
            path.display(),
            n.shape,
            n.len(),
            program.input_shape
        )));
    }
    Ok(match (program.input_type, n.data) {
        (ElemType::U8, npy::NpyData::U8(v)) => InputData::U8(v),
        (ElemType::U8, _) => {
            return Err(Error::msg(format!(
                "{}: the model takes u8 pixels; save the input as uint8",
                path.display()
            )))
        }
        (_, npy::NpyData::F32(v)) => InputData::F32(v),
        (_, npy::NpyData::F64(v)) => InputData::F32(v.iter().map(|&x| x as f32).collect()),
        (_, npy::NpyData::U8(v)) => InputData::F32(v.iter().map(|&x| x as f32).collect()),
    })
}

fn print_comparison(c: &Comparison, what: &str, got: &[f32], reference: &[f64], images: usize) {
    println!("reference     {what}");
    println!("max abs error {:.3e}", c.max_abs);
    println!(
        "max rel error {:.3e} (max abs / max(1, max|reference| = {:.4}))",
        c.max_rel, c.ref_max
    );
    println!("tolerance     {:.3e} (1e-4 * max(1, max|reference|))", c.tolerance);
    if images > 1 && got.len() == reference.len() {
        let k = got.len() / images;
        let tops: Vec<String> = (0..images)
            .map(|i| {
                let g = harness::argmax(got[i * k..(i + 1) * k].iter().map(|&v| v as f64));
                let r = harness::argmax(reference[i * k..(i + 1) * k].iter().copied());
                format!("{g}/{r}")
            })
            .collect();
        println!("top-1         per image, generated/reference: {}", tops.join(" "));
    } else {
        println!("top-1         generated {} / reference {}", c.argmax.0, c.argmax.1);
    }
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Cmd::Compile {
            model,
            load,
            target,
            out,
        } => {
            let m = mncc::load_with(&model, &load.options())?;
            m.check_output(&out)?;
            let p = mncc::compile_for(&m, &target)?;
            let blob = mncc::write(&p, &out, &model.display().to_string())?;
            println!(
                "wrote {} and {} ({} layers, {:.1} M MACs, arena {} bytes)",
                out.display(),
                blob.display(),
                p.layers.len(),
                p.macs() as f64 / 1e6,
                p.arena_len
            );
        }
        Cmd::Inspect {
            model,
            load,
            target,
            code_size,
            opt_level,
        } => {
            let m = mncc::load_with(&model, &load.options())?;
            let p = mncc::compile_for(&m, &target)?;
            print!("{}", mncc::inspect::report(&p));
            if !code_size.is_empty() {
                let mut sizes = Vec::new();
                for target in &code_size {
                    eprintln!("building for {target} (release, opt-level {opt_level})...");
                    sizes.push(footprint::code_size(&p, target, &opt_level)?);
                }
                print!("{}", footprint::footprint_report(&p, &sizes));
            }
        }
        Cmd::Verify {
            model,
            load,
            target,
            input,
            expect,
            seed,
        } => {
            let m = mncc::load_with(&model, &load.options())?;
            let p = mncc::compile_for(&m, &target)?;
            let x = load_input(input.as_deref(), &p, seed)?;
            let (reference, what) = match &expect {
                Some(e) => {
                    let n = npy::read(e).map_err(|err| Error::msg(format!("{}: {err}", e.display())))?;
                    (n.to_f64(), format!("{}", e.display()))
                }
                None => (interp::run(&m.graph, &x)?, "reference interpreter (f64)".to_string()),
            };
            eprintln!("building the generated code (release)...");
            let h = harness::build(&p, true)?;
            let (got, isa) = h.run_isa(&x)?;
            let c = harness::compare(&got, &reference);
            println!("model         {} ({})", p.name, p.description);
            let ran: Vec<String> = isa.iter().map(|(name, n)| format!("{name} ({n} calls)")).collect();
            println!("ran on        {}", ran.join(", "));
            print_comparison(&c, &what, &got, &reference, p.batch);
            if !c.ok() {
                println!(
                    "FAILED: max abs error {:.3e} exceeds the tolerance {:.3e}",
                    c.max_abs, c.tolerance
                );
                return Ok(ExitCode::FAILURE);
            }
            println!("ok");
        }
        Cmd::Bench {
            model,
            load,
            target,
            seconds,
            layers,
            threads,
            peak,
        } => {
            if !(seconds > 0.0 && seconds <= 600.0) {
                return Err(Error::msg("--seconds must be in (0, 600]"));
            }
            let m = mncc::load_with(&model, &load.options())?;
            let p = mncc::compile_for(&m, &target)?;
            let x = InputData::random(p.input_type, p.input_len(), 1);
            eprintln!("building the generated code (release, target-cpu=native)...");
            let h = harness::build(&p, true)?;
            let t = h.bench_threads(&x, seconds, threads as usize)?;
            println!(
                "model    {} ({}), {:.1} M MACs",
                p.name,
                p.description,
                p.macs() as f64 / 1e6
            );
            println!(
                "runs     {} ({threads} thread{})",
                t.runs,
                if threads == 1 { "" } else { "s" }
            );
            println!("median   {:.3} ms", t.median_ms);
            println!("min      {:.3} ms", t.min_ms);
            let gflops = 2.0 * p.macs() as f64 / (t.median_ms * 1e6);
            println!(
                "GFLOP/s  {gflops:.2} (2 x MACs / median), {:.1}% of a {peak} GFLOP/s peak",
                100.0 * gflops / peak
            );
            if layers {
                let lt = h.bench_layers(&x, seconds, threads as usize)?;
                print!("{}", harness::layer_report(&lt, peak));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
