//! The tools behind the `mncc` command that the compiler library does not
//! need: [`harness`] builds generated code in a scratch crate and runs it
//! (`mncc verify`, `mncc bench`, the end-to-end tests), [`npy`] reads and
//! writes NumPy arrays, [`footprint`] measures a linked build (`mncc
//! inspect --code-size`).

pub mod footprint;
pub mod harness;
pub mod npy;
