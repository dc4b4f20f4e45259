//! The `simd` kernels on every instruction set this CPU has, against the
//! naive f64 references, on edge shapes (channels equal to the vector width
//! and the register tile, multiples, remainders, 1) and random shapes.
//!
//! Each test runs the kernel once per instruction set with
//! `isa::set_limit`, and checks with `isa::calls` that the set it claims to
//! test did run. A set the CPU lacks is skipped with a message, unless the
//! environment variable `MNCC_REQUIRE_ISA` names it (comma-separated, e.g.
//! `avx512,avx2` in CI on an AVX-512 machine, `neon` under qemu-aarch64):
//! then its absence fails the test.

use crate::common::*;
use mncc_runtime::isa::Isa;
use mncc_runtime::{
    simd, Activation, Conv2d, ConvShape, Depthwise, DepthwiseTiles, Epilogue, Layout, Pixel, Pointwise, PointwiseShape,
};
use mncc_runtime::{PointwiseTiles, PwOrder};

/// A pointwise test case: seeded input and weights, the weights packed for
/// `simd::pointwise`, and the generator (next: the epilogues).
struct PwCase {
    rng: Rng,
    s: PointwiseShape,
    input: Vec<f32>,
    weights: Vec<f32>,
    packed: Vec<f32>,
}

impl PwCase {
    fn new(seed: u64, pixels: usize, in_c: usize, out_c: usize) -> Self {
        let mut rng = Rng::new(seed);
        let input = rng.vec(pixels * in_c, 2.0);
        let weights = rng.vec(in_c * out_c, 1.0);
        let packed = pack_pointwise(&weights, in_c, out_c, simd::PANEL);
        assert_eq!(packed.len(), mncc_runtime::abi::pack::pointwise_packed_len(in_c, out_c));
        PwCase {
            rng,
            s: PointwiseShape { pixels, in_c, out_c },
            input,
            weights,
            packed,
        }
    }

    /// Every epilogue of `common::epilogues` for this shape.
    fn epilogues(&mut self) -> Vec<Epi> {
        epilogues(&mut self.rng, self.s.out_c, self.s.pixels * self.s.out_c)
    }

    /// `simd::pointwise` in K blocks of `kc`, pixels outer.
    fn run(&self, kc: usize, ep: &Epilogue<'_>) -> Vec<f32> {
        let mut out = vec![f32::NAN; self.s.pixels * self.s.out_c];
        let t = PointwiseTiles {
            kc,
            order: PwOrder::PixelsOuter,
        };
        simd::pointwise(
            &Pointwise {
                shape: self.s,
                tiles: t,
            },
            &self.input,
            &self.packed,
            ep,
            &mut out,
            None,
        );
        out
    }

    /// The f64 reference's output under `ep`.
    fn want(&self, ep: &Epilogue<'_>) -> Vec<f64> {
        ref_pointwise(self.s.pixels, self.s.in_c, self.s.out_c, &self.input, &self.weights, ep)
    }
}

pub(crate) fn check_pointwise(isa: Isa, pixels: usize, in_c: usize, out_c: usize, seed: u64) {
    let mut case = PwCase::new(seed, pixels, in_c, out_c);
    let mut kcs = vec![in_c.max(1), 1, 7];
    if in_c > 8 {
        kcs.push(in_c / 2 + 1);
    }
    for epi in case.epilogues() {
        let ep = epi.ep();
        let want = case.want(&ep);
        for &kc in &kcs {
            for order in [PwOrder::PixelsOuter, PwOrder::ChannelsOuter] {
                let mut out = vec![f32::NAN; pixels * out_c];
                simd::pointwise(
                    &Pointwise {
                        shape: case.s,
                        tiles: PointwiseTiles { kc, order },
                    },
                    &case.input,
                    &case.packed,
                    &ep,
                    &mut out,
                    None,
                );
                let tag = format!(
                    "{} pointwise {pixels}x{in_c}->{out_c} kc={kc} {order:?} ep={}",
                    isa.name(),
                    epi.name
                );
                assert_close(&tag, &out, &want);
            }
        }
    }
}

#[test]
fn pointwise_edge_shapes() {
    on_each_isa("pointwise", |isa| {
        let mut seed = 1;
        for &pixels in &[1, 2, 5, 6, 7, 12, 13, 25] {
            // 8, 24, 40, 56: a last vector of half the lanes on AVX-512.
            for &out_c in &[1, 8, 15, 16, 17, 24, 32, 33, 40, 48, 56, 64] {
                for &in_c in &[1, 3, 16, 17] {
                    seed += 1;
                    check_pointwise(isa, pixels, in_c, out_c, seed);
                }
            }
        }
        // Degenerate: no input channels (bias only), no pixels.
        check_pointwise(isa, 3, 0, 20, 7);
        check_pointwise(isa, 0, 5, 20, 8);
    });
}

/// 8 input channels take their own path on 16-lane vectors (one layer
/// call, no K blocks): against the reference, and bit-identical to the
/// register tiles (the same product in K blocks of 4, which goes through
/// them and sums in the same order), for row counts around its 12-row
/// groups (8-row groups for 33 to 48 columns) and column counts around the
/// vector width. (At most 8 columns go through the even/odd path on
/// AVX-512, `pointwise_eight_outputs`.)
#[test]
fn pointwise_eight_input_channels() {
    on_each_isa("pointwise, 8 input channels", |isa| {
        let in_c = 8;
        let mut seed = 500;
        for &pixels in &[7, 8, 9, 11, 12, 13, 16, 20, 23, 24, 25, 36, 100] {
            for &out_c in &[1, 8, 15, 16, 17, 24, 32, 33, 40, 47, 48] {
                seed += 1;
                let mut case = PwCase::new(seed, pixels, in_c, out_c);
                for epi in case.epilogues() {
                    let ep = epi.ep();
                    let want = case.want(&ep);
                    let tag = format!("{} pointwise {pixels}x{in_c}->{out_c} ep={}", isa.name(), epi.name);
                    let whole = case.run(in_c, &ep);
                    assert_close(&tag, &whole, &want);
                    if out_c > 8 || isa != Isa::Avx512 {
                        assert_same_bits(&tag, &whole, &case.run(4, &ep));
                    }
                }
            }
        }
    });
}

/// At most 8 output channels, an even K up to 128, one K block: on
/// AVX-512 two partial sums per output (even and odd input channels) in a
/// vector's lane pairs. Against the reference; every row computed the same
/// wherever it falls in a call (rows 5.. on their own give the same bits),
/// as the parallel split needs; and K blocks (the register tiles) agree
/// to rounding.
#[test]
fn pointwise_eight_outputs() {
    on_each_isa("pointwise, at most 8 outputs", |isa| {
        let mut seed = 700;
        for &in_c in &[2, 3, 8, 16, 48, 96, 128, 130] {
            for &out_c in &[1, 5, 8, 9] {
                for &pixels in &[12, 13, 30] {
                    seed += 1;
                    let mut case = PwCase::new(seed, pixels, in_c, out_c);
                    for epi in case.epilogues() {
                        let ep = epi.ep();
                        let want = case.want(&ep);
                        let tag = format!("{} pointwise {pixels}x{in_c}->{out_c} ep={}", isa.name(), epi.name);
                        let out = case.run(in_c, &ep);
                        assert_close(&tag, &out, &want);
                        assert_close(&tag, &case.run(in_c / 2 + 1, &ep), &want);
                        // Rows 5.. as a call of their own (the residual
                        // offset with them).
                        let skip = 5;
                        let s2 = PointwiseShape {
                            pixels: pixels - skip,
                            in_c,
                            out_c,
                        };
                        let ep2 = mncc_runtime::Epilogue {
                            residual: ep.residual.map(|r| &r[skip * out_c..]),
                            ..ep
                        };
                        let mut part = vec![f32::NAN; (pixels - skip) * out_c];
                        let t = PointwiseTiles {
                            kc: in_c,
                            order: PwOrder::PixelsOuter,
                        };
                        simd::pointwise(
                            &Pointwise { shape: s2, tiles: t },
                            &case.input[skip * in_c..],
                            &case.packed,
                            &ep2,
                            &mut part,
                            None,
                        );
                        assert_same_bits(&format!("{tag} rows {skip}.."), &out[skip * out_c..], &part);
                    }
                }
            }
        }
    });
}

#[test]
fn pointwise_random_shapes() {
    on_each_isa("pointwise random", |isa| {
        let mut rng = Rng::new(42);
        for t in 0..12 {
            let pixels = 1 + rng.below(60);
            let in_c = 1 + rng.below(200);
            let out_c = 1 + rng.below(150);
            check_pointwise(isa, pixels, in_c, out_c, 1000 + t);
        }
    });
}

/// A real MobileNet shape (v1 1.0 224's last pointwise, 7x7x1024 -> 1024;
/// and the classifier 1024 -> 1000) with real-sized accumulations.
#[test]
fn pointwise_mobilenet_shapes() {
    on_each_isa("pointwise mobilenet", |isa| {
        for &(pixels, in_c, out_c) in &[(49, 1024, 1024), (1, 1024, 1000), (196, 96, 24)] {
            let mut rng = Rng::new(pixels as u64);
            let s = PointwiseShape { pixels, in_c, out_c };
            let input = rng.vec(pixels * in_c, 1.0);
            let weights = rng.vec(in_c * out_c, 0.1);
            let packed = pack_pointwise(&weights, in_c, out_c, simd::PANEL);
            let epi = Epi {
                name: "relu6",
                bias: Some(rng.vec(out_c, 1.0)),
                min: 0.0,
                max: 6.0,
                residual: None,
                act: Activation::None,
            };
            let ep = epi.ep();
            let want = ref_pointwise(pixels, in_c, out_c, &input, &weights, &ep);
            for kc in [in_c, 256] {
                let mut out = vec![f32::NAN; pixels * out_c];
                let t = PointwiseTiles {
                    kc,
                    order: PwOrder::ChannelsOuter,
                };
                simd::pointwise(&Pointwise { shape: s, tiles: t }, &input, &packed, &ep, &mut out, None);
                let tag = format!("{} pointwise {pixels}x{in_c}->{out_c} kc={kc}", isa.name());
                let (abs, rel, _) = errors(&out, &want);
                println!("{tag}: max abs {abs:.3e} max rel {rel:.3e}");
                assert_close(&tag, &out, &want);
            }
        }
    });
}

pub(crate) fn check_depthwise(isa: Isa, s: ConvShape, seed: u64) {
    let mut rng = Rng::new(seed);
    let c = s.in_c;
    let input = rng.vec(s.in_len(), 2.0);
    let weights = rng.vec(s.kernel_h * s.kernel_w * c, 1.0);
    for epi in epilogues(&mut rng, c, s.out_len()) {
        let ep = epi.ep();
        let want = ref_depthwise(&s, &input, &weights, &ep);
        for rows in [1, 3, s.out_h.max(1)] {
            let mut out = vec![f32::NAN; s.out_len()];
            simd::depthwise(
                &Depthwise {
                    shape: s,
                    tiles: DepthwiseTiles { rows },
                },
                &input,
                &weights,
                &ep,
                &mut out,
            );
            let tag = format!("{} depthwise {s:?} rows={rows} ep={}", isa.name(), epi.name);
            assert_close(&tag, &out, &want);
        }
    }
}

#[test]
fn depthwise_edge_shapes() {
    on_each_isa("depthwise", |isa| {
        let mut seed = 100;
        for &c in &[1, 4, 7, 8, 15, 16, 17, 32, 33, 48] {
            for &n in &[1, 2, 3, 5, 8, 13, 16] {
                for &(k, stride) in &[(3, 1), (3, 2), (5, 1), (5, 2)] {
                    seed += 1;
                    check_depthwise(isa, same_shape(n, c, c, k, stride), seed);
                }
            }
        }
        // Valid padding, PyTorch-style symmetric padding on odd/even sizes,
        // a non-square kernel, and an asymmetric pad.
        for (i, s) in [
            conv_shape((9, 9), 16, 16, (3, 3), (1, 1), (0, 0), (0, 0)),
            conv_shape((10, 10), 32, 32, (3, 3), (2, 2), (1, 1), (1, 1)),
            conv_shape((11, 7), 24, 24, (3, 3), (2, 2), (1, 1), (1, 1)),
            conv_shape((8, 8), 16, 16, (1, 3), (1, 1), (0, 1), (0, 1)),
            conv_shape((12, 12), 40, 40, (5, 5), (2, 2), (1, 2), (2, 1)),
            conv_shape((7, 7), 16, 16, (7, 7), (1, 1), (3, 3), (3, 3)),
        ]
        .into_iter()
        .enumerate()
        {
            check_depthwise(isa, s, 500 + i as u64);
        }
    });
}

#[test]
fn depthwise_random_shapes() {
    on_each_isa("depthwise random", |isa| {
        let mut rng = Rng::new(7);
        for t in 0..16 {
            let n = 1 + rng.below(20);
            let c = 1 + rng.below(70);
            let k = [3, 5][rng.below(2)];
            let stride = 1 + rng.below(2);
            check_depthwise(isa, same_shape(n, c, c, k, stride), 2000 + t);
        }
    });
}

pub(crate) fn check_conv2d(isa: Isa, s: ConvShape, seed: u64) {
    let mut rng = Rng::new(seed);
    let kk = s.kernel_h * s.kernel_w * s.in_c;
    // He-like scale for long sums (as in a trained net): outputs stay O(1)
    // and the 1e-5 tolerance keeps its meaning.
    let weights = rng.vec(kk * s.out_c, (4.0 / (kk.max(1) as f32).sqrt()).min(1.0));
    let packed = pack_pointwise(&weights, kk, s.out_c, simd::PANEL);
    assert_eq!(packed.len(), mncc_runtime::abi::pack::conv2d_packed_len(&s));
    // u8 inputs see weights scaled as a folded `(x - mean) / std` would
    // (1/128), so sums stay O(1) as in a real first layer.
    let w_u8: Vec<f32> = weights.iter().map(|w| w / 128.0).collect();
    let packed_u8 = pack_pointwise(&w_u8, kk, s.out_c, simd::PANEL);
    let pad: Vec<f32> = (0..s.in_c).map(|_| 128.0 + rng.f32(40.0)).collect();
    let pad_f32 = rng.vec(s.in_c, 2.0);
    let bytes = rng.bytes(s.in_len());
    let floats = rng.vec(s.in_len(), 2.0);
    for epi in epilogues(&mut rng, s.out_c, s.out_len()) {
        let ep = epi.ep();
        for layout in [Layout::Nhwc, Layout::Nchw] {
            let tag = format!("{} conv2d {s:?} {layout:?} ep={}", isa.name(), epi.name);
            let u8_case = Conv2dCase {
                layout,
                nhwc: &bytes,
                pad: &pad,
                weights: &w_u8,
                packed: &packed_u8,
            };
            u8_case.check(&format!("{tag} u8"), &s, &ep);
            let f32_case = Conv2dCase {
                layout,
                nhwc: &floats,
                pad: &pad_f32,
                weights: &weights,
                packed: &packed,
            };
            f32_case.check(&format!("{tag} f32"), &s, &ep);
        }
    }
}

/// One input type and layout of [`check_conv2d`].
struct Conv2dCase<'a, T> {
    layout: Layout,
    nhwc: &'a [T],
    pad: &'a [f32],
    weights: &'a [f32],
    packed: &'a [f32],
}

impl<T: Pixel + Into<f64>> Conv2dCase<'_, T> {
    fn check(&self, tag: &str, s: &ConvShape, ep: &Epilogue<'_>) {
        let input: Vec<f64> = self.nhwc.iter().map(|&v| v.into()).collect();
        let want = ref_conv2d(s, &input, self.pad, self.weights, ep);
        let x = match self.layout {
            Layout::Nchw => to_nchw(self.nhwc, s.in_h, s.in_w, s.in_c),
            Layout::Nhwc => self.nhwc.to_vec(),
        };
        let mut out = vec![f32::NAN; s.out_len()];
        simd::conv2d(
            &Conv2d {
                shape: *s,
                layout: self.layout,
                pad_value: self.pad,
            },
            &x,
            self.packed,
            ep,
            &mut out,
        );
        assert_close(tag, &out, &want);
    }
}

#[test]
fn conv2d_edge_shapes() {
    on_each_isa("conv2d", |isa| {
        let mut seed = 300;
        for &out_c in &[1, 8, 16, 17, 32, 33] {
            for &(n, in_c) in &[(1, 3), (7, 3), (16, 3), (9, 1), (8, 4)] {
                seed += 1;
                check_conv2d(isa, same_shape(n, in_c, out_c, 3, 2), seed);
                check_conv2d(
                    isa,
                    conv_shape((n, n), in_c, out_c, (3, 3), (2, 2), (1, 1), (1, 1)),
                    seed + 50,
                );
            }
        }
        // Rows of several tiles, both strides: 8 output channels (pixels in
        // lanes on AVX-512, tiles of 32 pixels) and 16.
        for (i, &out_c) in [8, 16].iter().enumerate() {
            check_conv2d(isa, same_shape(37, 3, out_c, 3, 1), 910 + i as u64);
            check_conv2d(isa, same_shape(70, 3, out_c, 3, 2), 920 + i as u64);
        }
        // More than 512 im2col columns: K-blocks with partial sums in `out`.
        check_conv2d(isa, same_shape(6, 64, 20, 3, 1), 900);
        check_conv2d(isa, same_shape(5, 130, 40, 2, 1), 901);
    });
}

/// The kernels must not read past a tensor: run on exactly-sized slices cut
/// out of the middle of larger, NaN-filled buffers.
#[test]
fn no_reads_outside_the_slices() {
    // 33: a partial tile; 24: a full tile with a half-width last vector.
    on_each_isa("bounds", |isa| {
        for (pixels, in_c, out_c) in [(13, 17, 33), (24, 5, 24)] {
            check_bounds(isa, pixels, in_c, out_c);
        }
    });
}

pub(crate) fn check_bounds(isa: Isa, pixels: usize, in_c: usize, out_c: usize) {
    {
        let mut rng = Rng::new(3);
        let mut buf = vec![f32::NAN; pixels * in_c + 64];
        let input = rng.vec(pixels * in_c, 1.0);
        buf[32..32 + pixels * in_c].copy_from_slice(&input);
        let weights = rng.vec(in_c * out_c, 1.0);
        let packed = pack_pointwise(&weights, in_c, out_c, simd::PANEL);
        let bias = rng.vec(out_c, 1.0);
        let ep = Epilogue {
            bias: Some(&bias),
            ..Epilogue::NONE
        };
        let mut out = vec![f32::NAN; pixels * out_c + 64];
        let s = PointwiseShape { pixels, in_c, out_c };
        let t = PointwiseTiles {
            kc: in_c,
            order: PwOrder::PixelsOuter,
        };
        simd::pointwise(
            &Pointwise { shape: s, tiles: t },
            &buf[32..32 + pixels * in_c],
            &packed,
            &ep,
            &mut out[32..32 + pixels * out_c],
            None,
        );
        assert!(
            out[..32].iter().chain(&out[32 + pixels * out_c..]).all(|v| v.is_nan()),
            "{}: wrote outside",
            isa.name()
        );
        let want = ref_pointwise(pixels, in_c, out_c, &input, &weights, &ep);
        assert_close(isa.name(), &out[32..32 + pixels * out_c], &want);
    }
}

/// The kernel tables' names: their register tiles are the contract's, and
/// their suffix the instruction set's name.
#[test]
fn kernel_tables_name_the_contracts_tiles() {
    use mncc_runtime::abi::RegisterTiles;
    use mncc_runtime::isa::Isa;
    use mncc_runtime::simd::{CONV2D, DEPTHWISE, POINTWISE};
    let tiles = |isa| match isa {
        Isa::Avx512 => RegisterTiles::AVX512,
        Isa::Avx2 => RegisterTiles::AVX2,
        Isa::Neon => RegisterTiles::NEON,
        _ => RegisterTiles::PORTABLE,
    };
    for k in POINTWISE.iter().filter(|k| k.isa != Isa::Amx) {
        let t = tiles(k.isa);
        assert_eq!(k.name, format!("pointwise_{}x{}__{}", t.pw_mr, t.pw_nr, k.isa.name()));
    }
    for k in DEPTHWISE {
        let t = tiles(k.isa);
        assert_eq!(
            k.name,
            format!("depthwise_{}x{}__{}", t.dw_pixels, t.lanes, k.isa.name())
        );
    }
    for k in POINTWISE.iter().chain(DEPTHWISE).chain(CONV2D) {
        assert!(k.name.ends_with(&format!("__{}", k.isa.name())), "{}", k.name);
    }
}
