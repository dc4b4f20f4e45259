//! mncc: compile MobileNets into allocation-free no_std Rust.
