//! The runtime's integration tests in one binary (one link, one run; tests in
//! all modules run at once: `isa::set_limit` and `isa::calls` are per
//! thread). Every kernel against a naive f64 reference, on every
//! instruction set of this CPU ([`common::on_each_isa`]).

mod amx;
mod arena;
mod common;
mod conv2d;
mod depthwise;
mod dynq;
mod fused;
mod instrument;
mod miri;
mod misc_kernels;
mod par;
mod pointwise;
mod proptests;
mod quant;
mod simd;
mod simd_conv2d;
mod simd_depthwise;
mod weights;
