//! The tools behind the `mncc` command that the compiler library does not
//! need: [`harness`] builds generated code in a scratch crate and runs it
//! (`mncc verify`, `mncc bench`, the end-to-end tests), [`npy`] reads and
//! writes NumPy arrays, [`footprint`] measures a linked build (`mncc
//! inspect --code-size`); [`fuzzing`] runs the compile path from one
//! input's bytes (the fuzz targets, the robustness tests), [`onnx_build`]
//! builds ONNX models in code.

pub mod footprint;
pub mod fuzzing;
pub mod harness;
pub mod npy;
pub mod onnx_build;
