//! The compiler library's integration tests in one binary.

mod docs;
mod memory;
