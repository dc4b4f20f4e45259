//! Property tests over random shapes: every kernel equals the naive f64
//! reference, for random geometry, tiles and epilogues.

use crate::common::Rng;
use crate::common::*;
use mncc_runtime::reference::{conv2d, depthwise, pointwise};
use mncc_runtime::{
    add, align_arena, map, scale_channels, Activation, Conv2d, Conv2dTiles, ConvShape, Depthwise, DepthwiseTiles,
    Layout, Pointwise, PointwiseShape, PointwiseTiles, PwOrder,
};
use proptest::prelude::*;

/// `(in_h, in_w)`, kernel, stride, pad top/left, pad bottom/right.
type Geometry = (
    (usize, usize),
    (usize, usize),
    (usize, usize),
    (usize, usize),
    (usize, usize),
);

/// A random conv geometry; `out_*` follow from the padding (bottom/right
/// pads raised when the kernel would not fit).
fn geometry() -> impl Strategy<Value = Geometry> {
    (1usize..=5, 1usize..=5).prop_flat_map(|(kh, kw)| {
        (
            (1usize..=10, 1usize..=10),
            Just((kh, kw)),
            (1usize..=3, 1usize..=3),
            (0..kh, 0..kw),
            (0..kh, 0..kw),
        )
    })
}

fn shape((hw, k, st, tl, br): Geometry, in_c: usize, out_c: usize) -> ConvShape {
    let bh = br.0.max(k.0.saturating_sub(hw.0 + tl.0));
    let bw = br.1.max(k.1.saturating_sub(hw.1 + tl.1));
    conv_shape(hw, in_c, out_c, k, st, tl, (bh, bw))
}

/// One of the test epilogues (`which`), with its activation replaced by a
/// random one unless `act_which` says to keep it: `0..4` is one of
/// [`ACTIVATIONS`], 4 a HardSigmoid with random `alpha` and `beta`.
fn pick_epilogue(rng: &mut Rng, which: usize, act_which: usize, channels: usize, out_len: usize) -> Epi {
    let mut all = epilogues(rng, channels, out_len);
    let mut epi = all.swap_remove(which % all.len());
    match act_which {
        0..=3 => epi.act = ACTIVATIONS[act_which],
        4 => {
            epi.act = Activation::HardSigmoid {
                alpha: rng.f32(1.0),
                beta: rng.f32(1.0),
            }
        }
        _ => {}
    }
    epi
}

/// `act_which` for [`pick_epilogue`]: 5 and 6 keep the list's activation.
fn act_which() -> impl Strategy<Value = usize> {
    0usize..7
}

#[allow(clippy::too_many_arguments)]
fn conv2d_case<T: mncc_runtime::Pixel, const NR: usize>(
    s: &ConvShape,
    rows: usize,
    layout: Layout,
    nhwc: &[T],
    nhwc_f64: &[f64],
    pad: &[f32],
    w: &[f32],
    epi: &Epi,
) -> Result<(), TestCaseError> {
    let data = match layout {
        Layout::Nhwc => nhwc.to_vec(),
        Layout::Nchw => to_nchw(nhwc, s.in_h, s.in_w, s.in_c),
    };
    let ep = epi.ep();
    let want = ref_conv2d(s, nhwc_f64, pad, w, &ep);
    let mut out = vec![f32::NAN; s.out_len()];
    conv2d::<T, NR>(
        &Conv2d {
            shape: *s,
            layout,
            pad_value: pad,
        },
        &Conv2dTiles { rows },
        &data,
        w,
        &ep,
        &mut out,
    );
    check_close(
        &format!("conv2d NR={NR} {s:?} rows={rows} {layout:?} ep={}", epi.name),
        &out,
        &want,
    )
}

/// `assert_close` as a proptest failure (so proptest shrinks the case).
fn check_close(what: &str, got: &[f32], want: &[f64]) -> Result<(), TestCaseError> {
    let scale = want.iter().fold(1.0f64, |m, &w| m.max(w.abs()));
    let (max_abs, max_rel, at) = errors(got, want);
    prop_assert!(
        max_abs <= 1e-5 * scale,
        "{}: max abs error {:e} at {} (got {}, want {}), max rel error {:e}",
        what,
        max_abs,
        at,
        got[at],
        want[at],
        max_rel
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn conv2d_matches_reference(
        g in geometry(),
        in_c in 1usize..=5,
        out_c in 1usize..=20,
        rows in 1usize..=4,
        nchw in any::<bool>(),
        u8_input in any::<bool>(),
        nr in 0usize..4,
        ep_which in 0usize..32,
        act_which in act_which(),
        seed in any::<u64>(),
    ) {
        let s = shape(g, in_c, out_c);
        let layout = if nchw { Layout::Nchw } else { Layout::Nhwc };
        let mut rng = Rng::new(seed);
        let epi = pick_epilogue(&mut rng, ep_which, act_which, out_c, s.out_len());
        let pad = rng.vec(in_c, if u8_input { 255.0 } else { 1.0 });
        let w = rng.vec(s.kernel_h * s.kernel_w * in_c * out_c, if u8_input { 1.0 / 128.0 } else { 1.0 });
        macro_rules! run {
            ($t:ty, $nhwc:expr) => {{
                let nhwc: Vec<$t> = $nhwc;
                let f: Vec<f64> = nhwc.iter().map(|&x| mncc_runtime::Pixel::to_f32(x) as f64).collect();
                match nr {
                    0 => conv2d_case::<$t, 1>(&s, rows, layout, &nhwc, &f, &pad, &w, &epi),
                    1 => conv2d_case::<$t, 3>(&s, rows, layout, &nhwc, &f, &pad, &w, &epi),
                    2 => conv2d_case::<$t, 8>(&s, rows, layout, &nhwc, &f, &pad, &w, &epi),
                    _ => conv2d_case::<$t, 16>(&s, rows, layout, &nhwc, &f, &pad, &w, &epi),
                }
            }};
        }
        if u8_input {
            run!(u8, rng.bytes(s.in_len()))?;
        } else {
            run!(f32, rng.vec(s.in_len(), 2.0))?;
        }
    }

    #[test]
    fn depthwise_matches_reference(
        g in geometry(),
        c in 1usize..=40,
        rows in 1usize..=4,
        ct in 0usize..5,
        ep_which in 0usize..32,
        act_which in act_which(),
        seed in any::<u64>(),
    ) {
        let s = shape(g, c, c);
        let mut rng = Rng::new(seed);
        let epi = pick_epilogue(&mut rng, ep_which, act_which, c, s.out_len());
        let input = rng.vec(s.in_len(), 2.0);
        let w = rng.vec(s.kernel_h * s.kernel_w * c, 1.0);
        let ep = epi.ep();
        let want = ref_depthwise(&s, &input, &w, &ep);
        let mut out = vec![f32::NAN; s.out_len()];
        let t = DepthwiseTiles { rows };
        match ct {
            0 => depthwise::<1>(&Depthwise { shape: s, tiles: t }, &input, &w, &ep, &mut out),
            1 => depthwise::<4>(&Depthwise { shape: s, tiles: t }, &input, &w, &ep, &mut out),
            2 => depthwise::<8>(&Depthwise { shape: s, tiles: t }, &input, &w, &ep, &mut out),
            3 => depthwise::<16>(&Depthwise { shape: s, tiles: t }, &input, &w, &ep, &mut out),
            _ => depthwise::<5>(&Depthwise { shape: s, tiles: t }, &input, &w, &ep, &mut out),
        }
        check_close(&format!("depthwise ct#{ct} {s:?} rows={rows} ep={}", epi.name), &out, &want)?;
    }

    #[test]
    fn pointwise_matches_reference(
        pixels in 1usize..=40,
        in_c in 1usize..=48,
        out_c in 1usize..=40,
        kc in 1usize..=50,
        pixels_outer in any::<bool>(),
        tile in 0usize..5,
        ep_which in 0usize..32,
        act_which in act_which(),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let epi = pick_epilogue(&mut rng, ep_which, act_which, out_c, pixels * out_c);
        let input = rng.vec(pixels * in_c, 2.0);
        let w = rng.vec(in_c * out_c, 1.0);
        let ep = epi.ep();
        let want = ref_pointwise(pixels, in_c, out_c, &input, &w, &ep);
        let s = PointwiseShape { pixels, in_c, out_c };
        let order = if pixels_outer { PwOrder::PixelsOuter } else { PwOrder::ChannelsOuter };
        let t = PointwiseTiles { kc, order };
        let mut out = vec![f32::NAN; pixels * out_c];
        macro_rules! run {
            ($mr:literal, $nr:literal) => {{
                let packed = pack_pointwise(&w, in_c, out_c, $nr);
                pointwise::<$mr, $nr>(&Pointwise { shape: s, tiles: t }, &input, &packed, &ep, &mut out);
            }};
        }
        match tile {
            0 => run!(1, 1),
            1 => run!(4, 8),
            2 => run!(3, 5),
            3 => run!(8, 16),
            _ => run!(6, 4),
        }
        check_close(&format!("pointwise tile#{tile} {s:?} kc={kc} {order:?} ep={}", epi.name), &out, &want)?;
    }

    #[test]
    fn map_matches_reference(
        rows in 0usize..=40,
        c in 1usize..=300,
        ep_which in 0usize..32,
        act_which in act_which(),
        seed in any::<u64>(),
    ) {
        let len = rows * c;
        let mut rng = Rng::new(seed);
        let epi = pick_epilogue(&mut rng, ep_which, act_which, c, len);
        let x = rng.vec(len, 8.0);
        let ep = epi.ep();
        let want: Vec<f64> = (0..len).map(|i| ref_epilogue(x[i] as f64, i % c, i, &ep)).collect();
        let mut out = vec![f32::NAN; len];
        map(&x, &ep, &mut out);
        check_close(&format!("map {rows}x{c} ep={} {:?}", epi.name, epi.act), &out, &want)?;
    }

    #[test]
    fn add_matches_reference(
        rows in 0usize..=40,
        c in 1usize..=300,
        ep_which in 0usize..32,
        act_which in act_which(),
        seed in any::<u64>(),
    ) {
        let len = rows * c;
        let mut rng = Rng::new(seed);
        let mut epi = pick_epilogue(&mut rng, ep_which, act_which, c, len);
        epi.residual = None;
        let a = rng.vec(len, 4.0);
        let b = rng.vec(len, 4.0);
        let ep = epi.ep();
        let want: Vec<f64> = (0..len)
            .map(|i| ref_epilogue(a[i] as f64 + b[i] as f64, i % c, i, &ep))
            .collect();
        let mut out = vec![f32::NAN; len];
        add(&a, &b, &ep, &mut out);
        check_close(&format!("add {rows}x{c} ep={} {:?}", epi.name, epi.act), &out, &want)?;
    }

    #[test]
    fn scale_channels_is_the_elementwise_product(
        pixels in 0usize..=60,
        c in 0usize..=70,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(pixels * c, 8.0);
        let scale = rng.vec(c, 2.0);
        let mut out = vec![f32::NAN; pixels * c];
        scale_channels(pixels, c, &x, &scale, &mut out);
        for (i, (&o, &v)) in out.iter().zip(&x).enumerate() {
            prop_assert_eq!(o.to_bits(), (v * scale[i % c]).to_bits(), "at {}", i);
        }
    }

    /// `ArenaMut::split2` succeeds exactly when both ranges are inside the arena and
    /// disjoint (empty ranges are disjoint from everything), and then
    /// returns those very ranges.
    #[test]
    fn split2_borrows_exactly_the_ranges(
        a in 0usize..20, b in 0usize..20, c in 0usize..20, d in 0usize..20,
    ) {
        let len = 16;
        let (input, output) = (a.min(b)..a.max(b), c.min(d)..c.max(d));
        let valid = input.end <= len && output.end <= len;
        let disjoint = input.is_empty() || output.is_empty()
            || input.end <= output.start || output.end <= input.start;
        let result = std::panic::catch_unwind(|| {
            let mut buf = floats(len);
            let mut arena = align_arena(&mut buf);
            let base = arena.get::<u8>(0..1).as_ptr() as usize;
            let (mut arena, _) = arena.split_at(len * 4);
            let (i, o) = arena.split2::<f32, f32>(input.start * 4..input.end * 4, output.start * 4..output.end * 4);
            (
                i.to_vec(),
                (i.as_ptr() as usize).wrapping_sub(base),
                i.is_empty(),
                (o.as_ptr() as usize).wrapping_sub(base),
                o.len(),
            )
        });
        prop_assert_eq!(result.is_ok(), valid && disjoint);
        if let Ok((i, i_off, i_empty, o_off, o_len)) = result {
            prop_assert_eq!(i, (input.start..input.end).map(|v| v as f32).collect::<Vec<_>>());
            if !i_empty {
                prop_assert_eq!(i_off, input.start * 4);
            }
            prop_assert_eq!(o_len, output.len());
            if o_len > 0 {
                prop_assert_eq!(o_off, output.start * 4);
            }
        }
    }

    #[test]
    fn split3_borrows_exactly_the_ranges(
        r in proptest::array::uniform6(0usize..18),
    ) {
        let len = 16;
        let a = r[0].min(r[1])..r[0].max(r[1]);
        let b = r[2].min(r[3])..r[2].max(r[3]);
        let o = r[4].min(r[5])..r[4].max(r[5]);
        let valid = a.end <= len && b.end <= len && o.end <= len;
        let apart = |x: &std::ops::Range<usize>| {
            x.is_empty() || o.is_empty() || x.end <= o.start || o.end <= x.start
        };
        let ok = valid && apart(&a) && apart(&b);
        let result = std::panic::catch_unwind(|| {
            let mut buf = floats(len);
            let mut arena = align_arena(&mut buf);
            let (mut arena, _) = arena.split_at(len * 4);
            let (x, y, out) =
                arena.split3::<f32, f32, f32>(a.start * 4..a.end * 4, b.start * 4..b.end * 4, o.start * 4..o.end * 4);
            out.fill(-1.0);
            (x.to_vec(), y.to_vec(), out.len())
        });
        prop_assert_eq!(result.is_ok(), ok);
        if let Ok((x, y, out_len)) = result {
            prop_assert_eq!(x, a.clone().map(|v| v as f32).collect::<Vec<_>>());
            prop_assert_eq!(y, b.clone().map(|v| v as f32).collect::<Vec<_>>());
            prop_assert_eq!(out_len, o.len());
        }
    }
}

/// `len` floats `0.0, 1.0, ...` from the first 64-byte boundary of a byte
/// buffer (with room to reach it).
fn floats(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len * 4 + mncc_runtime::ARENA_SLACK];
    let mut a = align_arena(&mut buf);
    for (i, v) in a.get_mut::<f32>(0..len * 4).iter_mut().enumerate() {
        *v = i as f32;
    }
    buf
}
