//! The operators, one file per family; each file's `OPS` lists its
//! registry entries ([`super::registry::OpDef`]).

pub mod conv;
pub mod elementwise;
pub mod linear;
pub mod pooling;
pub mod shape;
