//! The contract between the mncc compiler and its runtime.
//!
//! Everything the compiler and the kernels must agree on is defined here,
//! once: the shapes and cache tiles generated code passes to the kernels
//! ([`ConvShape`], [`PointwiseShape`], [`PwDwShape`], the `*Tiles`), the
//! packing layouts of the weight blob and their lengths ([`pack`]), the
//! scratch sizes ([`amx`], [`PwDwShape::scratch_len`]), the epilogue and
//! its activations ([`Epilogue`], [`Activation`]), element types
//! ([`ElemType`]), alignment ([`ALIGN`]) and the register tiles of every
//! instruction set ([`RegisterTiles`]). The runtime re-exports this crate;
//! the compiler depends on it directly (it cannot depend on the runtime,
//! which re-exports the compiler's proc macro). Nothing here is mirrored.
//!
//! `#![no_std]`, no dependencies, no `unsafe`.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod amx;
mod elem;
mod epilogue;
pub mod pack;
pub mod quant;
mod shape;
mod tiles;

pub use elem::{Elem, ElemType, Layout, Quantized};
pub use epilogue::{clamp, logistic, Activation, Epilogue};
pub use shape::{conv2d_direct, conv_rows, ConvShape, PointwiseShape, PwDwShape};
pub use tiles::{Conv2d, Conv2dTiles, Depthwise, DepthwiseTiles, Pointwise, PointwiseTiles, PwOrder, RegisterTiles};

/// Alignment in bytes of every tensor the memory planner places in the
/// arena and of every segment of the weight blob: a cache line, and any
/// SIMD load.
pub const ALIGN: usize = 64;
