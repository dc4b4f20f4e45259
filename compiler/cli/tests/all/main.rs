//! The CLI's and the harness's integration tests in one binary: `mncc`'s
//! commands, the footprint measure, random graphs and the ONNX fixtures
//! through generated code.

mod cli;
mod common;
mod exports;
mod footprint;
mod fp16;
mod harness_threads;
mod int8_families;
mod int8_models;
mod int8_ops;
mod int8_tflite;
mod onnx_fixtures;
mod random_graphs;
mod robustness;
