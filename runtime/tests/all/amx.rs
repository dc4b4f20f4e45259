//! The AMX pointwise kernel (`simd::pointwise_amx`, its parallel and banded
//! forms): against the naive f64 reference at the f32 tolerance of every
//! other kernel (`assert_close`: 1e-5 of the largest output), on edge shapes
//! (pixels, input and output channels around the 16- and 32-wide tiles, 1,
//! remainders), both loop orders and every epilogue; each pixel's bits the
//! same wherever it falls in a call (what the parallel split relies on), the
//! parallel and banded forms bit for bit the serial unfused ones; and on a
//! CPU without AMX (or with it capped), exactly `simd::pointwise`. The
//! weights are the same panels `simd::pointwise` reads, split into bf16
//! planes by the kernel.
//!
//! The tests that need the tiles are skipped with a message where the CPU
//! (or the OS) has none, unless `MNCC_REQUIRE_ISA` names `amx`: then they
//! fail.

use crate::common::*;
use mncc_runtime::isa::{self, Isa};
use mncc_runtime::par::{self, Parallel};
use mncc_runtime::simd::{BandScratch, Stage};
use mncc_runtime::{simd, Depthwise, Pointwise, PwDwShape};
use mncc_runtime::{ConvShape, DepthwiseTiles, Epilogue, PointwiseShape, PointwiseTiles, PwOrder};

/// A pointwise layer: seeded input and weights, packed in panels.
struct Case {
    s: PointwiseShape,
    input: Vec<f32>,
    weights: Vec<f32>,
    packed: Vec<f32>,
    rng: Rng,
}

impl Case {
    fn new(seed: u64, pixels: usize, in_c: usize, out_c: usize) -> Self {
        let mut rng = Rng::new(seed);
        let input = rng.vec(pixels * in_c, 2.0);
        let weights = rng.vec(in_c * out_c, 1.0);
        let packed = pack_pointwise(&weights, in_c, out_c, simd::PANEL);
        Case {
            s: PointwiseShape { pixels, in_c, out_c },
            input,
            weights,
            packed,
            rng,
        }
    }

    fn epilogues(&mut self) -> Vec<Epi> {
        epilogues(&mut self.rng, self.s.out_c, self.s.pixels * self.s.out_c)
    }

    fn tiles(&self, order: PwOrder) -> PointwiseTiles {
        PointwiseTiles {
            kc: self.s.in_c.max(1),
            order,
        }
    }

    /// `simd::pointwise_amx` on a scratch of exactly the documented length.
    fn amx(&self, order: PwOrder, ep: &Epilogue<'_>) -> Vec<f32> {
        let mut out = vec![f32::NAN; self.s.pixels * self.s.out_c];
        let mut scratch =
            vec![f32::NAN; mncc_runtime::abi::amx::scratch_len(self.s.pixels, self.s.in_c, self.s.out_c, order)];
        let t = self.tiles(order);
        simd::pointwise(
            &Pointwise {
                shape: self.s,
                tiles: t,
            },
            &self.input,
            &self.packed,
            ep,
            &mut out,
            Some(&mut scratch[..]),
        );
        out
    }

    fn avx(&self, order: PwOrder, ep: &Epilogue<'_>) -> Vec<f32> {
        let mut out = vec![f32::NAN; self.s.pixels * self.s.out_c];
        simd::pointwise(
            &Pointwise {
                shape: self.s,
                tiles: self.tiles(order),
            },
            &self.input,
            &self.packed,
            ep,
            &mut out,
            None,
        );
        out
    }

    fn reference(&self, ep: &Epilogue<'_>) -> Vec<f64> {
        let s = &self.s;
        ref_pointwise(s.pixels, s.in_c, s.out_c, &self.input, &self.weights, ep)
    }
}

/// Pixels, input and output channels: around the tiles (16 rows, 32 input
/// channels, 16-column panels, 32-column strips), 1, remainders; the
/// MobileNet shapes' kinds.
const SHAPES: [(usize, usize, usize); 14] = [
    (1, 1, 1),
    (1, 33, 17),
    (15, 32, 16),
    (16, 31, 32),
    (17, 64, 33),
    (31, 8, 48),
    (32, 100, 1),
    (33, 96, 24),
    (49, 128, 160),
    (64, 16, 96),
    (100, 37, 64),
    (196, 64, 128),
    (200, 144, 40),
    (260, 256, 80),
];

#[test]
fn pointwise_amx_matches_the_reference() {
    for isa in amx_isas() {
        isa::set_limit(Some(isa));
        for (n, &(pixels, in_c, out_c)) in SHAPES.iter().enumerate() {
            let mut c = Case::new(n as u64 + 1, pixels, in_c, out_c);
            for e in c.epilogues() {
                let ep = e.ep();
                let want = c.reference(&ep);
                for order in [PwOrder::PixelsOuter, PwOrder::ChannelsOuter] {
                    let before = isa::calls(Isa::Amx);
                    let got = c.amx(order, &ep);
                    assert!(
                        isa::calls(Isa::Amx) > before,
                        "{pixels}x{in_c}->{out_c}: the tiles did not run"
                    );
                    assert_close(
                        &format!("amx {pixels}x{in_c}->{out_c} {order:?} {}", e.name),
                        &got,
                        &want,
                    );
                }
            }
        }
        isa::set_limit(None);
    }
}

#[test]
fn pointwise_amx_is_as_accurate_as_f32() {
    // The tiles sum six bf16 partial products per weight: the error of an
    // f32 GEMM, not of bf16 (three products would be ~30x the f32 error).
    for isa in amx_isas() {
        isa::set_limit(Some(isa));
        let mut c = Case::new(7, 196, 512, 64);
        let e = c.epilogues().into_iter().find(|e| e.name == "none").unwrap();
        let ep = e.ep();
        let want = c.reference(&ep);
        let scale = want.iter().fold(1.0f64, |m, &w| m.max(w.abs()));
        let (amx, _, _) = errors(&c.amx(PwOrder::ChannelsOuter, &ep), &want);
        isa::set_limit(Some(Isa::Avx512));
        let (avx, _, _) = errors(&c.avx(PwOrder::ChannelsOuter, &ep), &want);
        eprintln!("196x512->64: max abs error amx {amx:e}, avx-512 {avx:e}, scale {scale}");
        assert!(
            amx <= 2.0 * avx.max(1e-7 * scale),
            "amx error {amx:e} against f32's {avx:e}"
        );
        isa::set_limit(None);
    }
}

#[test]
fn each_pixel_gets_the_same_bits_wherever_it_falls() {
    // The parallel split and the bands call the kernel on parts of a layer.
    for isa in amx_isas() {
        isa::set_limit(Some(isa));
        let mut c = Case::new(11, 150, 72, 56);
        for e in c.epilogues().into_iter().filter(|e| e.name.contains("residual")) {
            let ep = e.ep();
            for order in [PwOrder::PixelsOuter, PwOrder::ChannelsOuter] {
                let whole = c.amx(order, &ep);
                for (a, b) in [(0, 7), (7, 45), (45, 150), (5, 6)] {
                    let s = PointwiseShape { pixels: b - a, ..c.s };
                    let (ic, oc) = (c.s.in_c, c.s.out_c);
                    let part_ep = Epilogue {
                        residual: ep.residual.map(|r| &r[a * oc..b * oc]),
                        ..ep
                    };
                    let mut out = vec![f32::NAN; (b - a) * oc];
                    let mut scratch = vec![0.0; mncc_runtime::abi::amx::scratch_len(b - a, ic, oc, order)];
                    simd::pointwise(
                        &Pointwise {
                            shape: s,
                            tiles: c.tiles(order),
                        },
                        &c.input[a * ic..b * ic],
                        &c.packed,
                        &part_ep,
                        &mut out,
                        Some(&mut scratch[..]),
                    );
                    assert_same_bits(
                        &format!("pixels {a}..{b} {order:?} {}", e.name),
                        &out,
                        &whole[a * oc..b * oc],
                    );
                }
            }
        }
        isa::set_limit(None);
    }
}

#[test]
fn without_the_tiles_it_is_simd_pointwise() {
    for_each_isa(|isa| {
        let mut c = Case::new(3, 70, 40, 36);
        for e in c.epilogues() {
            let ep = e.ep();
            for order in [PwOrder::PixelsOuter, PwOrder::ChannelsOuter] {
                let before = isa::calls(Isa::Amx);
                let got = c.amx(order, &ep);
                assert_eq!(isa::calls(Isa::Amx), before, "capped at {isa:?}: the tiles ran");
                assert_same_bits(&format!("{isa:?} {order:?} {}", e.name), &got, &c.avx(order, &ep));
            }
        }
    });
}

/// Splits into `n` parts of any size and runs them on the calling thread.
struct Inline(usize);

impl Parallel for Inline {
    fn threads(&self) -> usize {
        self.0
    }
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        a();
        b();
    }
    fn min_part_macs(&self) -> usize {
        1
    }
}

fn executors() -> Vec<(&'static str, Box<dyn Parallel>)> {
    vec![
        ("inline 2", Box::new(Inline(2))),
        ("inline 5", Box::new(Inline(5))),
        ("scoped 2", Box::new(Scoped)),
    ]
}

#[test]
fn parallel_splits_are_bit_identical() {
    let mut limits: Vec<Option<Isa>> = amx_isas().into_iter().map(Some).collect();
    limits.push(Some(isa::active_vector()));
    for limit in limits {
        isa::set_limit(limit);
        for &(pixels, in_c, out_c) in &[(100, 40, 72), (196, 64, 128), (33, 32, 32), (260, 96, 24)] {
            let mut c = Case::new(5, pixels, in_c, out_c);
            for e in c.epilogues().into_iter().filter(|e| e.name != "none").take(3) {
                let ep = e.ep();
                for order in [PwOrder::PixelsOuter, PwOrder::ChannelsOuter] {
                    let want = c.amx(order, &ep);
                    let slot = mncc_runtime::abi::amx::scratch_len(pixels, in_c, out_c, order);
                    for (name, p) in executors() {
                        let mut got = vec![f32::NAN; pixels * out_c];
                        let mut scratch = vec![f32::NAN; mncc_runtime::abi::amx::PARTS * slot];
                        par::pointwise(
                            &*p,
                            &Pointwise {
                                shape: c.s,
                                tiles: c.tiles(order),
                            },
                            &c.input,
                            &c.packed,
                            &ep,
                            &mut got,
                            Some(&mut scratch[..]),
                        );
                        assert_same_bits(
                            &format!("{limit:?} {pixels}x{in_c}->{out_c} {order:?} {} on {name}", e.name),
                            &got,
                            &want,
                        );
                    }
                }
            }
        }
    }
    isa::set_limit(None);
}

#[test]
fn banded_pairs_are_the_unfused_pair() {
    let mut limits: Vec<Option<Isa>> = amx_isas().into_iter().map(Some).collect();
    limits.push(Some(isa::active_vector()));
    for limit in limits {
        isa::set_limit(limit);
        for &(h, in_c, mid, stride, band) in &[(20, 32, 48, 1, 3), (17, 40, 64, 2, 2), (9, 64, 32, 1, 8)] {
            let mut rng = Rng::new(9);
            let w = h;
            let pw = PointwiseShape {
                pixels: h * w,
                in_c,
                out_c: mid,
            };
            let out_h = h.div_ceil(stride);
            let dw = ConvShape {
                in_h: h,
                in_w: w,
                in_c: mid,
                out_h,
                out_w: out_h,
                out_c: mid,
                kernel_h: 3,
                kernel_w: 3,
                stride_h: stride,
                stride_w: stride,
                pad_top: 1,
                pad_left: 1,
            };
            let s = PwDwShape {
                pw,
                pw_tiles: PointwiseTiles {
                    kc: in_c,
                    order: PwOrder::PixelsOuter,
                },
                dw,
                dw_tiles: DepthwiseTiles { rows: 1 },
                band,
            };
            let input = rng.vec(pw.pixels * in_c, 2.0);
            let weights = rng.vec(in_c * mid, 1.0);
            let packed = pack_pointwise(&weights, in_c, mid, simd::PANEL);
            let (pw_bias, dw_w, dw_bias) = (rng.vec(mid, 1.0), rng.vec(9 * mid, 1.0), rng.vec(mid, 1.0));
            let pw_ep = Epilogue {
                bias: Some(&pw_bias),
                min: 0.0,
                max: 6.0,
                residual: None,
                act: mncc_runtime::Activation::None,
            };
            let dw_ep = Epilogue {
                bias: Some(&dw_bias),
                ..pw_ep
            };
            let amx_len = mncc_runtime::abi::amx::scratch_len(pw.pixels, in_c, mid, PwOrder::PixelsOuter);
            // The unfused pair.
            let mut mid_t = vec![f32::NAN; pw.pixels * mid];
            let mut scratch = vec![0.0; amx_len];
            simd::pointwise(
                &Pointwise {
                    shape: pw,
                    tiles: s.pw_tiles,
                },
                &input,
                &packed,
                &pw_ep,
                &mut mid_t,
                Some(&mut scratch[..]),
            );
            let mut want = vec![f32::NAN; dw.out_len()];
            simd::depthwise(
                &Depthwise {
                    shape: dw,
                    tiles: s.dw_tiles,
                },
                &mid_t,
                &dw_w,
                &dw_ep,
                &mut want,
            );
            // Banded, serial and on two threads.
            let mut got = vec![f32::NAN; dw.out_len()];
            let mut band_scratch = vec![f32::NAN; 2 * s.scratch_len()];
            let mut amx_scratch = vec![f32::NAN; mncc_runtime::abi::amx::PARTS * amx_len];
            simd::pointwise_depthwise(
                &s,
                Stage {
                    weights: &packed,
                    ep: &pw_ep,
                },
                Stage {
                    weights: &dw_w,
                    ep: &dw_ep,
                },
                &input,
                BandScratch {
                    rows: &mut band_scratch[..s.scratch_len()],
                    amx: Some(&mut amx_scratch[..amx_len]),
                },
                &mut got,
            );
            assert_same_bits(&format!("{limit:?} banded {h}x{in_c}->{mid} s{stride}"), &got, &want);
            for (name, p) in executors() {
                let mut got = vec![f32::NAN; dw.out_len()];
                par::pointwise_depthwise(
                    &*p,
                    &s,
                    Stage {
                        weights: &packed,
                        ep: &pw_ep,
                    },
                    Stage {
                        weights: &dw_w,
                        ep: &dw_ep,
                    },
                    &input,
                    BandScratch {
                        rows: &mut band_scratch[..],
                        amx: Some(&mut amx_scratch[..]),
                    },
                    &mut got,
                );
                assert_same_bits(
                    &format!("{limit:?} banded {h}x{in_c}->{mid} s{stride} on {name}"),
                    &got,
                    &want,
                );
                // One AMX part only: the serial call.
                let mut got = vec![f32::NAN; dw.out_len()];
                par::pointwise_depthwise(
                    &*p,
                    &s,
                    Stage {
                        weights: &packed,
                        ep: &pw_ep,
                    },
                    Stage {
                        weights: &dw_w,
                        ep: &dw_ep,
                    },
                    &input,
                    BandScratch {
                        rows: &mut band_scratch[..],
                        amx: Some(&mut amx_scratch[..amx_len]),
                    },
                    &mut got,
                );
                assert_same_bits(
                    &format!("{limit:?} banded {h}x{in_c}->{mid} s{stride} on {name}, one AMX part"),
                    &got,
                    &want,
                );
            }
        }
    }
    isa::set_limit(None);
}

#[test]
#[should_panic(expected = "simd::pointwise: the AMX scratch has 10 elements")]
fn a_short_scratch_panics() {
    let c = Case::new(1, 40, 32, 32);
    let mut out = vec![0.0; 40 * 32];
    let ep = Epilogue::NONE;
    simd::pointwise(
        &Pointwise {
            shape: c.s,
            tiles: c.tiles(PwOrder::PixelsOuter),
        },
        &c.input,
        &c.packed,
        &ep,
        &mut out,
        Some(&mut [0.0; 10]),
    );
}

#[test]
#[should_panic(expected = "simd::pointwise_depthwise: `scratch.amx` has 10 elements")]
fn a_short_banded_scratch_panics_on_two_threads() {
    let h = 8;
    let (in_c, mid) = (32, 32);
    let pw = PointwiseShape {
        pixels: h * h,
        in_c,
        out_c: mid,
    };
    let dw = ConvShape {
        in_h: h,
        in_w: h,
        in_c: mid,
        out_h: h,
        out_w: h,
        out_c: mid,
        kernel_h: 3,
        kernel_w: 3,
        stride_h: 1,
        stride_w: 1,
        pad_top: 1,
        pad_left: 1,
    };
    let s = PwDwShape {
        pw,
        pw_tiles: PointwiseTiles {
            kc: in_c,
            order: PwOrder::PixelsOuter,
        },
        dw,
        dw_tiles: DepthwiseTiles { rows: 1 },
        band: 2,
    };
    let ep = Epilogue::NONE;
    let mut band_scratch = vec![0.0; 2 * s.scratch_len()];
    let mut out = vec![0.0; dw.out_len()];
    par::pointwise_depthwise(
        &Inline(2),
        &s,
        Stage {
            weights: &vec![0.0; mncc_runtime::abi::pack::pointwise_packed_len(in_c, mid)],
            ep: &ep,
        },
        Stage {
            weights: &[0.0; 9 * 32],
            ep: &ep,
        },
        &vec![0.0; pw.pixels * in_c],
        BandScratch {
            rows: &mut band_scratch[..],
            amx: Some(&mut [0.0; 10]),
        },
        &mut out,
    );
}
