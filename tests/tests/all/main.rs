//! End to end, in one binary: generated models against the reference
//! interpreter and onnxruntime's outputs, serial and parallel.

mod e2e;
mod parallel;
