//! The runtime's `unsafe` code under Miri (`cargo +nightly miri test -p
//! mncc-runtime --test all -- miri:: arena:: weights::`, run by
//! `.ci/fuzz.sh`): the kernels on shapes small enough for an interpreter
//! (Miri runs about 10^4 times slower), on every instruction set available
//! (under Miri: the portable vectors), against the f64 references, on
//! exactly-sized slices cut out of larger buffers. The same checks run
//! natively with the other kernel tests.

use crate::common::*;
use crate::simd::{check_bounds, check_conv2d, check_depthwise, check_pointwise};

#[test]
fn pointwise_small() {
    on_each_isa("miri pointwise", |isa| {
        for (i, &(pixels, in_c, out_c)) in [(1, 1, 1), (5, 2, 17), (2, 0, 4)].iter().enumerate() {
            check_pointwise(isa, pixels, in_c, out_c, 700 + i as u64);
        }
        check_bounds(isa, 5, 3, 9);
    });
}

#[test]
fn depthwise_small() {
    on_each_isa("miri depthwise", |isa| {
        for (i, &(n, c, k, stride)) in [(3, 5, 3, 1), (4, 3, 3, 2)].iter().enumerate() {
            check_depthwise(isa, same_shape(n, c, c, k, stride), 710 + i as u64);
        }
    });
}

#[test]
fn conv2d_small() {
    on_each_isa("miri conv2d", |isa| {
        check_conv2d(isa, conv_shape((4, 3), 2, 3, (3, 3), (2, 1), (1, 1), (1, 0)), 721);
    });
}
