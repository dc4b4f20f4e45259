//! mncc: an ahead-of-time compiler from MobileNet descriptions to
//! allocation-free, `no_std` Rust.
//!
//! The pipeline (see ARCHITECTURE.md): a front end ([`spec`] + [`arch`] +
//! [`weights`] for TOML, [`onnx`]) builds a typed [`ir::Graph`]; [`passes`]
//! fold and fuse it, verified after each pass; [`lower`] picks kernels and
//! schedules, packs weights and plans memory ([`plan`]); [`codegen`] writes
//! Rust. The [`interp`]reter runs any graph as the reference. Problems are
//! [`Diagnostic`]s. The `mncc` command (building and running generated
//! code, `.npy` files, footprints) is the `mncc-cli` crate.
//!
//! ```no_run
//! // In build.rs:
//! mncc::Build::new("models/v1_0.25_128.toml").compile().unwrap();
//! // In src/lib.rs:
//! // mod model { include!(concat!(env!("OUT_DIR"), "/v1_0.25_128.rs")); }
//! ```

pub mod arch;
pub mod codegen;
pub mod diag;
pub mod inspect;
pub mod interp;
pub mod ir;
pub mod limits;
pub mod lower;
pub mod onnx;
pub mod passes;
pub mod plan;
pub mod rng;
pub mod spec;
pub mod target;
pub mod weights;

pub use target::Target;

pub use diag::{Diagnostic, Error};
use std::path::{Path, PathBuf};

/// A model as a front end built it: the reference graph (unoptimized, as
/// the interpreter should see it) and the files it was read from.
#[derive(Clone, Debug)]
pub struct Model {
    /// The graph before any pass.
    pub graph: ir::Graph,
    /// The description and weight files (a build must be redone when they change).
    pub files: Vec<PathBuf>,
}

/// Reads a model: a TOML description (`.toml`) or an ONNX file (`.onnx`).
pub fn load(path: &Path) -> Result<Model, Error> {
    load_with(path, &LoadOptions::default())
}

/// How to read a model file ([`load_with`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The ONNX input's shape, in its own dim order (`[1, 3, 224, 224]` for
    /// NCHW): fixes symbolic dims (`[-1, 3, -1, -1]` exports); a dim the
    /// model fixes must agree. Not for a TOML description, whose
    /// resolution is its own.
    pub input_shape: Option<Vec<usize>>,
    /// Images per run (`--batch`): the generated `run` takes this many
    /// images one after another (one arena, reused), whatever batch an ONNX
    /// file was exported with (every operator mncc computes treats images
    /// independently). Default: the ONNX input's fixed batch, else 1.
    pub batch: Option<usize>,
}

/// [`load`] with options.
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Model, Error> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") if options.input_shape.is_some() => Err(Error::msg(format!(
            "{}: an input shape is for ONNX models; a TOML description sets its own resolution",
            path.display()
        ))),
        _ if options.batch.is_some_and(|b| b == 0 || b > limits::MAX_BATCH) => Err(Error::msg(format!(
            "a batch of {} images: a batch is 1 to {}",
            options.batch.unwrap_or(0),
            limits::MAX_BATCH
        ))),
        Some("toml") => {
            let spec = spec::load(path).map_err(Error)?;
            let mut model = build_spec(spec, Some(path))?;
            model.files.insert(0, path.to_path_buf());
            model.graph.batch = options.batch.unwrap_or(1);
            Ok(model)
        }
        Some("onnx") => {
            let graph = onnx::load_with(path, options).map_err(Error)?;
            Ok(Model {
                graph,
                files: vec![path.to_path_buf()],
            })
        }
        _ => Err(Error::msg(format!(
            "{}: expected a model description (.toml) or an ONNX model (.onnx)",
            path.display()
        ))),
    }
}

/// Builds the model of a parsed description (loading or generating weights).
pub fn from_spec(spec: spec::ModelSpec) -> Result<Model, Error> {
    build_spec(spec, None)
}

/// [`from_spec`]; a size over the limits is placed in `file` (the
/// description), other errors name their own files.
fn build_spec(spec: spec::ModelSpec, file: Option<&Path>) -> Result<Model, Error> {
    let layers = arch::layers(&spec);
    weights::check_sizes(&layers).map_err(|e| match file {
        Some(f) => Error::msg(e).in_file(f),
        None => Error::msg(e),
    })?;
    let table = weights::load(&spec, &layers)?;
    let graph = arch::build(&spec, &layers, &table, spec.resolution)?;
    let files = match &spec.weights {
        spec::WeightSource::File(w) => vec![w.clone()],
        spec::WeightSource::Seed(_) => Vec::new(),
    };
    Ok(Model { graph, files })
}

/// Optimizes and lowers a model with the default schedule target,
/// [`Target::X86_64`] (the generated code runs on every CPU; the
/// target only sizes the cache tiles).
pub fn compile(model: &Model) -> Result<lower::Program, Error> {
    compile_for(model, &Target::X86_64)
}

/// Optimizes and lowers a model with the cache tiles chosen for `target`
/// (see [`Target::ALL`]; the CLI's `--target`). Problems are placed in the
/// model's first file.
pub fn compile_for(model: &Model, target: &Target) -> Result<lower::Program, Error> {
    let place = |e: Error| match model.files.first() {
        Some(f) => e.in_file(f),
        None => e,
    };
    let (g, reports) = passes::optimize(model.graph.clone()).map_err(place)?;
    lower::lower(&g, reports, target).map_err(place)
}

impl Model {
    /// An error if writing `out` (a `.rs` file) and its weight blob would
    /// overwrite one of the model's own files (`mncc compile model.onnx -o
    /// model.onnx`, a weights file named `model.weights.bin`).
    pub fn check_output(&self, out: &Path) -> Result<(), Error> {
        let blob = out.with_file_name(format!(
            "{}.weights.bin",
            out.file_stem().and_then(|s| s.to_str()).unwrap_or("model")
        ));
        for written in [out, blob.as_path()] {
            for input in &self.files {
                if same_file(written, input) {
                    return Err(Error::msg(format!(
                        "{}: writing the generated code here would overwrite the model's file {}; choose another output",
                        written.display(),
                        input.display()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Whether `a` and `b` name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Writes `out` (a `.rs` file) and its weight blob beside it
/// (`<stem>.weights.bin`); returns the blob's path.
pub fn write(program: &lower::Program, out: &Path, origin: &str) -> Result<PathBuf, Error> {
    if out.extension().and_then(|e| e.to_str()) != Some("rs") {
        return Err(Error::msg(format!(
            "{}: the output is Rust source: give a path ending in .rs",
            out.display()
        )));
    }
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| Error::msg(format!("{}: not a file name", out.display())))?;
    let blob_name = format!("{stem}.weights.bin");
    let blob_path = out.with_file_name(&blob_name);
    let src = codegen::source(program, &codegen::WeightsEmbed::IncludeBytes(blob_name), origin)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::msg(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(out, src).map_err(|e| Error::msg(format!("cannot write {}: {e}", out.display())))?;
    std::fs::write(&blob_path, &program.blob)
        .map_err(|e| Error::msg(format!("cannot write {}: {e}", blob_path.display())))?;
    Ok(blob_path)
}

/// The build-script API: compiles a model into `$OUT_DIR/<stem>.rs`.
///
/// ```no_run
/// // build.rs, in fn main():
/// mncc::Build::new("models/v1_0.25_128.toml").compile().unwrap();
/// // src/lib.rs:
/// // pub mod model { include!(concat!(env!("OUT_DIR"), "/v1_0.25_128.rs")); }
/// ```
#[derive(Clone, Debug)]
pub struct Build {
    model: PathBuf,
    out_dir: Option<PathBuf>,
    name: Option<String>,
    target: Target,
    options: LoadOptions,
}

impl Build {
    /// A build of the model described at `model` (relative to the package
    /// root), for the target cargo builds the package for (`TARGET`, see
    /// [`Target::for_triple`]; [`Target::X86_64`] outside a
    /// build script).
    pub fn new(model: impl Into<PathBuf>) -> Build {
        let target = std::env::var("TARGET")
            .map(|t| Target::for_triple(&t))
            .unwrap_or(Target::X86_64);
        Build {
            model: model.into(),
            out_dir: None,
            name: None,
            target,
            options: LoadOptions::default(),
        }
    }

    /// The schedule target (default: from cargo's `TARGET`, see
    /// [`Build::new`]): the cache tiles are chosen for it; the code runs
    /// everywhere.
    pub fn target(mut self, target: Target) -> Build {
        self.target = target;
        self
    }

    /// The ONNX input's shape, in its own dim order (see
    /// [`LoadOptions::input_shape`]): for models exported with symbolic
    /// height and width.
    pub fn input_shape(mut self, shape: impl Into<Vec<usize>>) -> Build {
        self.options.input_shape = Some(shape.into());
        self
    }

    /// Images per run (see [`LoadOptions::batch`]).
    pub fn batch(mut self, images: usize) -> Build {
        self.options.batch = Some(images);
        self
    }

    /// Where to write (default: `$OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Build {
        self.out_dir = Some(dir.into());
        self
    }

    /// The generated file's stem (default: the model file's stem).
    pub fn file_stem(mut self, name: impl Into<String>) -> Build {
        self.name = Some(name.into());
        self
    }

    /// Compiles; prints `cargo:rerun-if-changed` for the model and its
    /// weights; returns the generated `.rs` path.
    pub fn compile(&self) -> Result<PathBuf, Error> {
        let dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => PathBuf::from(std::env::var_os("OUT_DIR").ok_or_else(|| {
                Error::msg("OUT_DIR is not set: call Build::compile from a build script, or set out_dir")
            })?),
        };
        let stem = match &self.name {
            Some(n) => n.clone(),
            None => self
                .model
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("model")
                .to_string(),
        };
        let model = load_with(&self.model, &self.options)?;
        for f in &model.files {
            println!("cargo:rerun-if-changed={}", f.display());
        }
        let out = dir.join(format!("{stem}.rs"));
        model.check_output(&out)?;
        let program = compile_for(&model, &self.target)?;
        write(&program, &out, &self.model.display().to_string())?;
        Ok(out)
    }
}
