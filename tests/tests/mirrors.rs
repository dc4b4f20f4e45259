//! The compiler cannot depend on the runtime (the runtime re-exports the
//! proc macro, which depends on the compiler), so it mirrors the sizes the
//! generated code passes to the kernels. Mirrored types fail to compile in
//! the end-to-end tests when they drift; these functions and constants
//! would only fail on the shapes some model happens to have, so they are
//! compared here on a grid of shapes.

use mncc::lower;
use mncc_runtime::{kernels, simd, PwOrder};

const CHANNELS: [usize; 12] = [1, 3, 8, 15, 16, 17, 31, 32, 33, 96, 144, 1280];
const PIXELS: [usize; 8] = [1, 16, 31, 32, 33, 49, 196, 12544];

#[test]
fn amx_scratch_and_parts_match_the_runtime() {
    assert_eq!(lower::AMX_PARTS, mncc_runtime::par::AMX_PARTS);
    for (order, mirror) in [
        (PwOrder::PixelsOuter, lower::PwOrder::PixelsOuter),
        (PwOrder::ChannelsOuter, lower::PwOrder::ChannelsOuter),
    ] {
        for pixels in PIXELS {
            for in_c in CHANNELS {
                for out_c in CHANNELS {
                    assert_eq!(
                        lower::amx_scratch_len(pixels, in_c, out_c, mirror),
                        simd::pointwise_amx_scratch_len(pixels, in_c, out_c, order),
                        "{pixels}x{in_c}->{out_c} {order:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn packing_sizes_match_the_runtime() {
    assert_eq!(lower::PANEL, simd::PANEL);
    for in_c in CHANNELS {
        for out_c in CHANNELS {
            assert_eq!(
                lower::pointwise_packed_len(in_c, out_c, lower::PANEL),
                simd::pointwise_packed_len(in_c, out_c),
                "{in_c}->{out_c}"
            );
            for nr in [1, 2, 4, 16, 32] {
                assert_eq!(
                    lower::pointwise_packed_len(in_c, out_c, nr),
                    kernels::pointwise_packed_len(in_c, out_c, nr),
                    "{in_c}->{out_c} nr {nr}"
                );
            }
        }
    }
}
