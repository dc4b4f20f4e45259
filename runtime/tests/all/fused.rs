//! `simd::pointwise_depthwise` (a pointwise layer and the depthwise layer
//! after it, in bands of rows) gives the two layers' result bit for bit, on
//! every instruction set this CPU has: strides 1 and 2, 3x3 and 5x5, padding
//! on any side, bands of one row to more than the output, channels below,
//! at and above the vector widths; and so does its parallel form on every
//! executor. The unfused pair is itself checked against an f64 reference.
use crate::common;

use crate::common::{assert_close, conv_shape, on_each_isa, pack_pointwise, ref_depthwise, ref_pointwise, Rng, Scoped};
use mncc_runtime::par::{self, Parallel, Serial};
use mncc_runtime::simd::{BandScratch, Stage};
use mncc_runtime::{simd, Depthwise, Pointwise, PwDwShape};
use mncc_runtime::{Activation, ConvShape, DepthwiseTiles, Epilogue, PointwiseShape, PointwiseTiles, PwOrder};

struct Case {
    s: PwDwShape,
    input: Vec<f32>,
    pw_w: Vec<f32>,
    pw_b: Vec<f32>,
    dw_w: Vec<f32>,
    dw_b: Vec<f32>,
    /// The pointwise weights unpacked (`[in][out]`), for the reference.
    pw_raw: Vec<f32>,
}

impl Case {
    fn new(rng: &mut Rng, dw: ConvShape, in_c: usize, band: usize, kc: usize) -> Case {
        let pw = PointwiseShape {
            pixels: dw.in_h * dw.in_w,
            in_c,
            out_c: dw.in_c,
        };
        let pw_raw = rng.vec(in_c * pw.out_c, 0.5);
        Case {
            s: PwDwShape {
                pw,
                pw_tiles: PointwiseTiles {
                    kc,
                    order: PwOrder::PixelsOuter,
                },
                dw,
                dw_tiles: DepthwiseTiles { rows: 1 },
                band,
            },
            input: rng.vec(pw.pixels * in_c, 1.0),
            pw_w: pack_pointwise(&pw_raw, in_c, pw.out_c, simd::PANEL),
            pw_b: rng.vec(pw.out_c, 0.5),
            dw_w: rng.vec(dw.kernel_h * dw.kernel_w * dw.in_c, 0.5),
            dw_b: rng.vec(dw.in_c, 0.5),
            pw_raw,
        }
    }

    fn eps(&self) -> (Epilogue<'_>, Epilogue<'_>) {
        let pw = Epilogue {
            bias: Some(&self.pw_b),
            min: 0.0,
            max: 6.0,
            residual: None,
            act: Activation::None,
        };
        let dw = Epilogue {
            bias: Some(&self.dw_b),
            min: f32::NEG_INFINITY,
            max: f32::INFINITY,
            residual: None,
            act: Activation::HardSwish,
        };
        (pw, dw)
    }

    /// The two layers one after the other.
    fn unfused(&self) -> Vec<f32> {
        let (pe, de) = self.eps();
        let mut mid = vec![0.0; self.s.pw.pixels * self.s.pw.out_c];
        simd::pointwise(
            &Pointwise {
                shape: self.s.pw,
                tiles: self.s.pw_tiles,
            },
            &self.input,
            &self.pw_w,
            &pe,
            &mut mid,
            None,
        );
        let mut out = vec![0.0; self.s.dw.out_len()];
        simd::depthwise(
            &Depthwise {
                shape: self.s.dw,
                tiles: self.s.dw_tiles,
            },
            &mid,
            &self.dw_w,
            &de,
            &mut out,
        );
        out
    }

    fn fused(&self, scratch_extra: usize) -> Vec<f32> {
        let (pe, de) = self.eps();
        let mut scratch = vec![f32::NAN; self.s.scratch_len() + scratch_extra];
        let mut out = vec![f32::NAN; self.s.dw.out_len()];
        simd::pointwise_depthwise(
            &self.s,
            Stage {
                weights: &self.pw_w,
                ep: &pe,
            },
            Stage {
                weights: &self.dw_w,
                ep: &de,
            },
            &self.input,
            BandScratch {
                rows: &mut scratch[..],
                amx: None,
            },
            &mut out,
        );
        out
    }

    fn fused_par(&self, par: &dyn Parallel) -> Vec<f32> {
        let (pe, de) = self.eps();
        let mut scratch = vec![f32::NAN; 2 * self.s.scratch_len()];
        let mut out = vec![f32::NAN; self.s.dw.out_len()];
        par::pointwise_depthwise(
            par,
            &self.s,
            Stage {
                weights: &self.pw_w,
                ep: &pe,
            },
            Stage {
                weights: &self.dw_w,
                ep: &de,
            },
            &self.input,
            BandScratch {
                rows: &mut scratch[..],
                amx: None,
            },
            &mut out,
        );
        out
    }

    /// f64 reference of the pair (the pointwise output rounded to f32, as
    /// the kernels store it).
    fn reference(&self) -> Vec<f64> {
        let (pe, de) = self.eps();
        let s = &self.s;
        let mid: Vec<f32> = ref_pointwise(s.pw.pixels, s.pw.in_c, s.pw.out_c, &self.input, &self.pw_raw, &pe)
            .iter()
            .map(|&v| v as f32)
            .collect();
        ref_depthwise(&s.dw, &mid, &self.dw_w, &de)
    }
}

#[track_caller]
fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}: element {i} is {g:e}, the unfused layers give {w:e}"
        );
    }
}

/// Shapes: (in h, in w, mid channels, kernel, stride, pads top-left, pads bottom-right).
fn shapes() -> Vec<ConvShape> {
    let mut v = Vec::new();
    for &(h, w) in &[(1, 1), (2, 3), (7, 5), (9, 9), (12, 10)] {
        for &c in &[1, 4, 8, 16, 24, 33] {
            for &(k, stride) in &[(3, 1), (3, 2), (5, 1), (5, 2)] {
                let p = k / 2;
                for &(tl, br) in &[((p, p), (p, p)), ((p, p), (0, 0)), ((0, 0), (p, p))] {
                    if h + tl.0 + br.0 < k || w + tl.1 + br.1 < k {
                        continue;
                    }
                    v.push(conv_shape((h, w), c, c, (k, k), (stride, stride), tl, br));
                }
            }
        }
    }
    v
}

#[test]
fn fused_equals_the_two_layers_bit_for_bit() {
    let mut rng = Rng::new(0xf05e);
    let cases: Vec<Case> = shapes()
        .into_iter()
        .enumerate()
        .map(|(i, dw)| {
            let in_c = [1, 3, 8, 16, 20][i % 5];
            let band = [1, 2, 3, 4, dw.out_h + 2][i % 5];
            Case::new(&mut rng, dw, in_c, band, [in_c, 8][i % 2].max(1))
        })
        .collect();
    // The reference once (it does not depend on the instruction set).
    let mut worst = 0.0f64;
    for (i, c) in cases.iter().enumerate() {
        let want = c.reference();
        let got = c.unfused();
        assert_close(&format!("case {i} {:?} band {}", c.s.dw, c.s.band), &got, &want);
        worst = worst.max(common::errors(&got, &want).0);
    }
    eprintln!(
        "{} cases; unfused pair vs f64 reference: max abs error {worst:.2e}",
        cases.len()
    );
    on_each_isa("pointwise_depthwise", |isa| {
        for (i, c) in cases.iter().enumerate() {
            let what = format!("{isa:?} case {i} {:?} in_c {} band {}", c.s.dw, c.s.pw.in_c, c.s.band);
            let want = c.unfused();
            same_bits(&what, &c.fused(0), &want);
            same_bits(&format!("{what} (larger scratch)"), &c.fused(7), &want);
        }
    });
}

/// Two or three participants run one after the other on this thread.
struct Inline(usize);

impl Parallel for Inline {
    fn threads(&self) -> usize {
        self.0
    }
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        b();
        a();
    }
    fn min_part_macs(&self) -> usize {
        1
    }
}

#[test]
fn parallel_fused_equals_serial_bit_for_bit() {
    let mut rng = Rng::new(0x9a7);
    let execs: [(&str, &dyn Parallel); 4] = [
        ("serial", &Serial),
        ("scoped 2", &Scoped),
        ("inline 2", &Inline(2)),
        ("inline 3", &Inline(3)),
    ];
    on_each_isa("par::pointwise_depthwise", |isa| {
        for (i, dw) in shapes().into_iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            let band = [1, 2, 5][i % 3];
            let c = Case::new(&mut rng, dw, 8, band, 8);
            let want = c.unfused();
            for (name, p) in execs {
                same_bits(&format!("{isa:?} {name} {dw:?} band {band}"), &c.fused_par(p), &want);
            }
        }
    });
}

#[test]
#[should_panic(expected = "one band needs")]
fn short_scratch_panics() {
    let mut rng = Rng::new(1);
    let dw = conv_shape((8, 8), 16, 16, (3, 3), (2, 2), (1, 1), (1, 1));
    let c = Case::new(&mut rng, dw, 8, 2, 8);
    let (pe, de) = c.eps();
    let mut scratch = vec![0.0; c.s.scratch_len() - 1];
    let mut out = vec![0.0; dw.out_len()];
    simd::pointwise_depthwise(
        &c.s,
        Stage {
            weights: &c.pw_w,
            ep: &pe,
        },
        Stage {
            weights: &c.dw_w,
            ep: &de,
        },
        &c.input,
        BandScratch {
            rows: &mut scratch[..],
            amx: None,
        },
        &mut out,
    );
}

#[test]
#[should_panic(expected = "does not feed depthwise")]
fn mismatched_shapes_panic() {
    let mut rng = Rng::new(2);
    let dw = conv_shape((8, 8), 16, 16, (3, 3), (1, 1), (1, 1), (1, 1));
    let mut c = Case::new(&mut rng, dw, 8, 2, 8);
    c.s.pw.pixels -= 1;
    let (pe, de) = c.eps();
    let mut scratch = vec![0.0; c.s.scratch_len()];
    let mut out = vec![0.0; dw.out_len()];
    simd::pointwise_depthwise(
        &c.s,
        Stage {
            weights: &c.pw_w,
            ep: &pe,
        },
        Stage {
            weights: &c.dw_w,
            ep: &de,
        },
        &c.input,
        BandScratch {
            rows: &mut scratch[..],
            amx: None,
        },
        &mut out,
    );
}
