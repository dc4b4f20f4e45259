//! The reference interpreter: the oracle of every test and of `mncc verify`.
//!
//! Straightforward loops in `f64` over logical NCHW tensors, one function per
//! op, no tiling, no layout tricks; it shares no code with the runtime
//! kernels (which work in NHWC `f32`). It runs any graph the verifier
//! accepts, before or after the passes, so each pass is tested by running the
//! interpreter on both sides of it.

use crate::ir::{
    centered_weight, requant_multiplier, ConvCfg, DynInt, DynQCfg, ElemType, Graph, IntOut, Layout, Op, Param,
    QConvCfg, QDenseCfg, QType, TableStep, TensorType, INPUT,
};

/// The model input as callers give it to the generated code.
#[derive(Clone, Debug, PartialEq)]
pub enum InputData {
    /// `f32` values in the graph's input layout.
    F32(Vec<f32>),
    /// `u8` pixels in the graph's input layout.
    U8(Vec<u8>),
}

impl InputData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            InputData::F32(v) => v.len(),
            InputData::U8(v) => v.len(),
        }
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Image `i` of a batch of `n` equal parts.
    pub fn image(&self, i: usize, n: usize) -> InputData {
        let k = self.len() / n.max(1);
        match self {
            InputData::F32(v) => InputData::F32(v[i * k..(i + 1) * k].to_vec()),
            InputData::U8(v) => InputData::U8(v[i * k..(i + 1) * k].to_vec()),
        }
    }
    /// The values as f64, in the caller's layout.
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            InputData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            InputData::U8(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
    /// Deterministic pseudo-random input of `len` elements for `dtype`:
    /// uniform pixels for `u8`, uniform in [-1, 1] for `f32` (the model
    /// input types the verifier allows).
    pub fn random(dtype: ElemType, len: usize, seed: u64) -> InputData {
        let mut rng = crate::rng::Rng::new(seed);
        match dtype {
            ElemType::U8 => InputData::U8((0..len).map(|_| (rng.next_u64() >> 56) as u8).collect()),
            _ => InputData::F32((0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()),
        }
    }
}

/// Runs the graph; returns every tensor's value (NCHW, f64), indexed by id.
pub fn run_all(g: &Graph, input: &InputData) -> Result<Vec<Vec<f64>>, String> {
    g.verify().map_err(|e| e.join("; "))?;
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); g.tensors.len()];
    values[INPUT] = input_nchw(g, input)?;
    for n in &g.nodes {
        let ins: Vec<&[f64]> = n.inputs.iter().map(|&i| values[i].as_slice()).collect();
        let shapes: Vec<&[usize]> = n.inputs.iter().map(|&i| g.tensors[i].shape.as_slice()).collect();
        let types: Vec<&TensorType> = n.inputs.iter().map(|&i| &g.tensors[i].ty).collect();
        values[n.output] = eval(&n.op, &ins, &shapes, &types, &g.tensors[n.output].shape);
    }
    Ok(values)
}

/// Checks `input` against the graph's input and returns it as NCHW f64.
pub fn input_nchw(g: &Graph, input: &InputData) -> Result<Vec<f64>, String> {
    let shape = &g.tensors[INPUT].shape;
    let want: usize = shape.iter().product();
    if input.len() != want {
        return Err(format!(
            "input has {} values, the model takes {want} ({shape:?})",
            input.len()
        ));
    }
    match (input, g.input.dtype) {
        (InputData::F32(_), ElemType::F32) | (InputData::U8(_), ElemType::U8) => {}
        // A float16 input is given as floats: each is taken to the nearest
        // half, as the caller of the generated code must.
        (InputData::F32(_), ElemType::F16) => {
            let x: Vec<f64> = input.to_f64().into_iter().map(round_to_f16).collect();
            return Ok(to_nchw(&x, shape, g.input.layout));
        }
        _ => {
            return Err(format!(
                "input element type does not match the model's {}",
                g.input.dtype.rust_name()
            ))
        }
    }
    Ok(to_nchw(&input.to_f64(), shape, g.input.layout))
}

/// `v` rounded to the nearest IEEE half (ties to even; beyond the largest
/// half, infinity), as a value.
pub fn round_to_f16(v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    let a = v.abs();
    // 65504 is the largest half; from the midpoint to the next power up on,
    // the rounding overflows.
    if a >= 65520.0 {
        return v.signum() * f64::INFINITY;
    }
    // The spacing of halves around `a`: 2^-24 below 2^-14 (subnormals),
    // else 2^(e - 10) for a in [2^e, 2^(e+1)).
    let e = a.log2().floor().max(-14.0) as i32;
    let e = if 2f64.powi(e) > a { e - 1 } else { e }.max(-14);
    let ulp = 2f64.powi(e - 10);
    let q = a / ulp;
    let r = q.round();
    let r = if (q - q.floor() - 0.5).abs() == 0.0 && r % 2.0 != 0.0 {
        r - 1.0
    } else {
        r
    };
    v.signum() * r * ulp
}

/// Runs the graph on each image of the batch; returns its outputs one
/// after another (f64, a 4-D one in the graph's output layout).
pub fn run(g: &Graph, input: &InputData) -> Result<Vec<f64>, String> {
    let per_image: usize = g.tensors[INPUT].shape.iter().product();
    if input.len() != per_image * g.batch {
        return Err(format!(
            "input has {} values, the model takes {} ({} images of {:?})",
            input.len(),
            per_image * g.batch,
            g.batch,
            g.tensors[INPUT].shape
        ));
    }
    let mut out = Vec::new();
    for i in 0..g.batch {
        out.extend(run_image(g, &input.image(i, g.batch))?);
    }
    Ok(out)
}

/// [`run`] on one image.
fn run_image(g: &Graph, input: &InputData) -> Result<Vec<f64>, String> {
    let mut all = run_all(g, input)?;
    let y = std::mem::take(&mut all[g.output]);
    Ok(match (g.output_layout, g.tensors[g.output].shape.as_slice()) {
        (Layout::Nhwc, &[n, c, h, w]) => {
            let mut out = vec![0.0; y.len()];
            for b in 0..n {
                for ch in 0..c {
                    for p in 0..h * w {
                        out[(b * h * w + p) * c + ch] = y[(b * c + ch) * h * w + p];
                    }
                }
            }
            out
        }
        _ => y,
    })
}

fn to_nchw(x: &[f64], shape: &[usize], layout: Layout) -> Vec<f64> {
    match (layout, shape) {
        (Layout::Nhwc, &[n, c, h, w]) => {
            let mut out = vec![0.0; x.len()];
            for b in 0..n {
                for y in 0..h {
                    for xx in 0..w {
                        for ch in 0..c {
                            out[((b * c + ch) * h + y) * w + xx] = x[((b * h + y) * w + xx) * c + ch];
                        }
                    }
                }
            }
            out
        }
        _ => x.to_vec(),
    }
}

/// Evaluates one op. `shapes` and `in_types` are the inputs' shapes and
/// types, `out_shape` the output's. Quantized tensors hold their integers.
pub fn eval(op: &Op, ins: &[&[f64]], shapes: &[&[usize]], in_types: &[&TensorType], out_shape: &[usize]) -> Vec<f64> {
    let x = ins[0];
    match op {
        Op::Normalize(cfg) => per_channel(x, shapes[0], |ch, v| v * cfg.scale[ch] as f64 + cfg.offset[ch] as f64),
        Op::Conv(cfg) => conv(cfg, x, shapes[0], out_shape, ins.get(1).copied()),
        Op::BatchNorm(b) => per_channel(x, shapes[0], |ch, v| {
            let inv = 1.0 / (b.var[ch] as f64 + b.eps as f64).sqrt();
            (v - b.mean[ch] as f64) * inv * b.gamma[ch] as f64 + b.beta[ch] as f64
        }),
        Op::Clip(c) => x.iter().map(|&v| clamp(v, c.min, c.max)).collect(),
        // The sum of two f32 values, rounded to f32 as the generated code
        // (and onnxruntime) rounds it: exact in f64, one rounding. (A layer
        // that quantizes its input at run time must see those bits.)
        Op::Add => x.iter().zip(ins[1]).map(|(a, b)| (a + b) as f32 as f64).collect(),
        Op::GlobalAvgPool => {
            let hw = shapes[0][2] * shapes[0][3];
            x.chunks(hw).map(avg_f32).collect()
        }
        Op::MaxPool(p) => {
            let [_, c, h, w] = [shapes[0][0], shapes[0][1], shapes[0][2], shapes[0][3]];
            let (oh, ow) = (out_shape[2], out_shape[3]);
            let mut out = Vec::with_capacity(c * oh * ow);
            for ch in 0..c {
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut m = f64::NEG_INFINITY;
                        for ky in 0..p.kernel[0] {
                            for kx in 0..p.kernel[1] {
                                let (iy, ix) = (
                                    (y * p.stride[0] + ky) as isize - p.pads[0] as isize,
                                    (xx * p.stride[1] + kx) as isize - p.pads[1] as isize,
                                );
                                if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                                    m = m.max(x[(ch * h + iy as usize) * w + ix as usize]);
                                }
                            }
                        }
                        out.push(m);
                    }
                }
            }
            out
        }
        Op::Dense(d) => {
            let (n, k, o) = (shapes[0][0], d.weight.shape[1], d.weight.shape[0]);
            let wt = reals(&d.weight);
            let mut out = vec![0.0; n * o];
            for b in 0..n {
                for j in 0..o {
                    let mut acc = d.bias.as_ref().map_or(0.0, |bias| bias[j] as f64);
                    for i in 0..k {
                        acc += x[b * k + i] * wt[j * k + i];
                    }
                    out[b * o + j] = d.act.reference(clamp(acc, d.clamp.min, d.clamp.max));
                }
            }
            out
        }
        Op::Reshape(_) => x.to_vec(),
        Op::Quantize(q) => {
            let (lo, hi) = q.range();
            x.iter().map(|&v| quantize(v, q.scale, q.zero_point, lo, hi)).collect()
        }
        Op::QConv(cfg) => qconv(cfg, x, shapes[0], qtype(in_types[0]), out_shape),
        Op::QDense(d) => qdense(d, x, shapes[0], qtype(in_types[0])),
        Op::DynQuantize => dyn_quantize(x),
        Op::DynQLayer(d) => dyn_layer(d, x, shapes[0], out_shape),
        Op::QAdd(a) => {
            let (qa, qb) = (
                qtype(in_types[0]),
                match &a.rhs {
                    Some(p) => qtype(&TensorType {
                        elem: p.elem(),
                        quant: p.quant.clone(),
                    }),
                    None => qtype(in_types[1]),
                },
            );
            let rhs: Vec<f64> = match &a.rhs {
                Some(p) => (0..x.len()).map(|i| p.values.get_f64(i % p.len())).collect(),
                None => ins[1].to_vec(),
            };
            x.iter()
                .zip(&rhs)
                .map(|(&u, &v)| qadd(u as i32, qa, v as i32, qb, &a.out) as f64)
                .collect()
        }
        Op::QGlobalAvgPool(q) => {
            let xq = qtype(in_types[0]);
            let hw = shapes[0][2] * shapes[0][3];
            x.chunks(hw)
                .map(|ch| qavg(ch.iter().map(|&v| v as i64).sum(), hw, xq, q) as f64)
                .collect()
        }
        Op::QMul(q) => {
            let (qa, qb) = (qtype(in_types[0]), qtype(in_types[1]));
            let s = ins[1];
            let hw = if s.len() == x.len() {
                1
            } else {
                shapes[0][2] * shapes[0][3]
            };
            x.iter()
                .enumerate()
                .map(|(i, &u)| qmul(u as i32, qa, s[i / hw] as i32, qb, q) as f64)
                .collect()
        }
        Op::QTable(t) => {
            let xq = qtype(in_types[0]);
            let (lo, hi) = t.out.range();
            x.iter()
                .map(|&v| {
                    let real = t
                        .steps
                        .iter()
                        .fold(dequantize(v, xq.scale, xq.zero_point) as f32, |v, s| match *s {
                            TableStep::Clip(c) => v.max(c.min).min(c.max),
                            // onnxruntime's HardSigmoid: `alpha * x + beta` (two
                            // roundings), then clamped to [0, 1].
                            TableStep::HardSigmoid { alpha, beta } => (alpha * v + beta).clamp(0.0, 1.0),
                            TableStep::LeakyRelu { alpha } => {
                                if v >= 0.0 {
                                    v
                                } else {
                                    alpha * v
                                }
                            }
                            TableStep::Logistic => mncc_abi::logistic(v),
                        });
                    quantize(real as f64, t.out.scale, t.out.zero_point, lo, hi)
                })
                .collect()
        }
        Op::QSoftmax(q) => {
            let xq = qtype(in_types[0]);
            let d = shapes[0][1];
            let table = crate::ir::softmax_table(xq.scale, d);
            let factor = (1.0f32 / q.scale).floor() as f64;
            let (lo, hi) = q.range();
            let mut out = Vec::with_capacity(x.len());
            for row in x.chunks(d) {
                let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f32> = row.iter().map(|&v| table[(255.0 + v - m) as usize]).collect();
                let sum = e.iter().fold(0f32, |s, &v| s + v);
                out.extend(e.iter().map(|&v| {
                    let r = (v as f64 * factor / sum as f64).round_ties_even();
                    if r.is_nan() {
                        hi as f64
                    } else {
                        (r + q.zero_point as f64).clamp(lo as f64, hi as f64)
                    }
                }));
            }
            out
        }
        Op::QMean { out: q, pool } => {
            let xq = qtype(in_types[0]);
            let hw = shapes[0][2] * shapes[0][3];
            let (lo, hi) = q.range();
            x.chunks(hw)
                .map(|ch| {
                    let sum = ch
                        .iter()
                        .fold(0f32, |s, &v| s + dequantize(v, xq.scale, xq.zero_point) as f32);
                    let mean = sum / hw as f32;
                    if *pool {
                        // QLinearAveragePool: `nearbyintf(mean / y_scale +
                        // y_zero_point)`, saturated.
                        let v = (mean / q.scale + q.zero_point as f32).round_ties_even() as f64;
                        v.clamp(lo as f64, hi as f64)
                    } else {
                        quantize(mean as f64, q.scale, q.zero_point, lo, hi)
                    }
                })
                .collect()
        }
        Op::Dequantize => {
            let q = in_types[0]
                .quant
                .as_ref()
                .expect("the verifier checked a quantized input");
            x.iter().map(|&v| dequantize(v, q.scale[0], q.zero_point[0])).collect()
        }
        Op::Activation(a) => x.iter().map(|&v| a.reference(v)).collect(),
        Op::Sigmoid => x.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect(),
        Op::Cast(ElemType::F16) => x.iter().map(|&v| round_to_f16(v)).collect(),
        Op::Cast(_) => x.to_vec(),
        Op::Mul => {
            let s = ins[1];
            if s.len() == x.len() {
                x.iter().zip(s).map(|(a, b)| a * b).collect()
            } else {
                // [n, c, 1, 1] over [n, c, h, w]
                let hw = shapes[0][2] * shapes[0][3];
                x.iter().enumerate().map(|(i, &v)| v * s[i / hw]).collect()
            }
        }
        Op::Softmax => {
            let k = shapes[0][1];
            let mut out = Vec::with_capacity(x.len());
            for row in x.chunks(k) {
                let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = row.iter().map(|&v| (v - m).exp()).collect();
                let s: f64 = e.iter().sum();
                out.extend(e.iter().map(|v| v / s));
            }
            out
        }
    }
}

/// The per-tensor 8-bit quantization of an integer op's input (checked
/// by the verifier).
fn qtype(t: &TensorType) -> QType {
    t.qtype().expect("the verifier checked a quantized input")
}

/// An integer layer's output from its exact sum `acc` (which the verifier
/// proved fits `i32`): the sum itself, or requantized: `acc` to `f32`
/// (round to nearest even), times the multiplier, rounded half to even,
/// plus the zero point, saturated.
fn int_out(acc: i64, out: &IntOut, x_scale: f32, w_scale: f32) -> f64 {
    let acc = i32::try_from(acc).expect("the verifier bounds the sums");
    match out {
        IntOut::Int32 => acc as f64,
        IntOut::Requant(q) => {
            let m = requant_multiplier(x_scale, w_scale, q.scale);
            let (lo, hi) = q.range();
            let v = (acc as f32 * m).round_ties_even() as i64 + q.zero_point as i64;
            v.clamp(lo as i64, hi as i64) as f64
        }
    }
}

/// Integer convolution: exact sums of `(x - x_zp) * (w - w_zp)` over the
/// window, reads outside the input contributing nothing (they see the zero
/// point), then [`int_out`].
fn qconv(cfg: &QConvCfg, x: &[f64], ins: &[usize], xq: QType, outs: &[usize]) -> Vec<f64> {
    let (n, c, h, w) = (ins[0], ins[1], ins[2], ins[3]);
    let (oc, oh, ow) = (outs[1], outs[2], outs[3]);
    let [_, icg, kh, kw] = cfg.dims();
    let ocg = oc / cfg.groups;
    let wt = centered_weight(&cfg.weight).expect("the verifier checked the weight");
    let wq = cfg.weight.quant.as_ref().expect("a quantized weight");
    let mut out = vec![0.0; n * oc * oh * ow];
    for b in 0..n {
        for o in 0..oc {
            let g = o / ocg;
            let w_scale = wq.scale[if wq.axis.is_some() { o } else { 0 }];
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = cfg.bias.as_ref().map_or(0, |bias| bias[o] as i64);
                    for ic in 0..icg {
                        let ci = g * icg + ic;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let Some((iy, ix)) = window_at(cfg.stride, cfg.pads, [h, w], [oy, ox], [ky, kx]) else {
                                    continue;
                                };
                                let v = x[((b * c + ci) * h + iy) * w + ix] as i64;
                                acc += (v - xq.zero_point as i64) * wt[((o * icg + ic) * kh + ky) * kw + kx] as i64;
                            }
                        }
                    }
                    out[((b * oc + o) * oh + oy) * ow + ox] = int_out(acc, &cfg.out, xq.scale, w_scale);
                }
            }
        }
    }
    out
}

/// The mean of one channel's values (`f32` values) in `f32`, in
/// onnxruntime's order (MLAS's global pooling: four partial sums over
/// groups of four, `(s0 + s2) + (s1 + s3)`, the rest one by one, divided
/// by the count): not the exact mean, but the bits a layer that quantizes
/// it at run time ([`Op::DynQuantize`]) must see to agree with
/// onnxruntime. (Within 1e-6 relative of the exact mean on MobileNets.)
fn avg_f32(x: &[f64]) -> f64 {
    let groups = x.len() / 4;
    let mut lanes = [0f32; 4];
    for g in 0..groups {
        for (l, s) in lanes.iter_mut().enumerate() {
            *s += x[4 * g + l] as f32;
        }
    }
    let mut s = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
    for &v in &x[4 * groups..] {
        s += v as f32;
    }
    (s / x.len() as f32) as f64
}

/// Integer dense layer: exact sums of `(x - x_zp) * (w - w_zp)` over the
/// flattened input, then [`int_out`].
fn qdense(d: &QDenseCfg, x: &[f64], ins: &[usize], xq: QType) -> Vec<f64> {
    let (n, k, o) = (ins[0], d.weight.shape[1], d.weight.shape[0]);
    let w = centered_weight(&d.weight).expect("the verifier checked the weight");
    let wq = d.weight.quant.as_ref().expect("a quantized weight");
    let mut out = vec![0.0; n * o];
    for b in 0..n {
        for j in 0..o {
            let mut acc = d.bias.as_ref().map_or(0, |bias| bias[j] as i64);
            for i in 0..k {
                acc += (x[b * k + i] as i64 - xq.zero_point as i64) * w[j * k + i] as i64;
            }
            let w_scale = wq.scale[if wq.axis.is_some() { j } else { 0 }];
            out[b * o + j] = int_out(acc, &d.out, xq.scale, w_scale);
        }
    }
    out
}

/// ONNX DynamicQuantizeLinear as onnxruntime computes it: the range of
/// `x` widened to include 0, `scale = (max - min) / 255` (1 when the
/// range is empty), `zero_point = round_half_even(clamp(0 - min / scale,
/// 0, 255))`, all in `f32`, then QuantizeLinear. The values, then the
/// scale and zero point appended (what [`dyn_layer`] reads).
fn dyn_quantize(x: &[f64]) -> Vec<f64> {
    let (lo, hi) = x
        .iter()
        .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v as f32), hi.max(v as f32)));
    let scale = if hi == lo { 1.0 } else { (hi - lo) / 255.0 };
    let zp = (0.0 - lo / scale).clamp(0.0, 255.0).round_ties_even() as i32;
    let mut out: Vec<f64> = x.iter().map(|&v| quantize(v, scale, zp, 0, 255)).collect();
    out.extend([scale as f64, zp as f64]);
    out
}

/// A layer on a dynamically quantized input ([`DynQCfg`]): the exact
/// integer sums, then `acc as f32 * (x_scale * w_scale[o])`, `+ bias[o]`,
/// clamped, each step in `f32`.
fn dyn_layer(d: &DynQCfg, x: &[f64], ins: &[usize], outs: &[usize]) -> Vec<f64> {
    let n = x.len() - 2;
    let xq = QType {
        elem: ElemType::U8,
        scale: x[n] as f32,
        zero_point: x[n + 1] as i32,
    };
    let (sums, per_channel) = match &d.int {
        DynInt::Conv(c) => (qconv(c, &x[..n], ins, xq, outs), outs[2] * outs[3]),
        DynInt::Dense(dd) => (qdense(dd, &x[..n], ins, xq), 1),
    };
    let oc = d.out_channels();
    sums.iter()
        .enumerate()
        .map(|(i, &acc)| {
            let o = (i / per_channel) % oc;
            let v = acc as f32 * (xq.scale * d.weight_scale(o)) + d.bias.as_ref().map_or(0.0, |b| b[o]);
            clamp(v as f64, d.clamp.min, d.clamp.max)
        })
        .collect()
}

/// QLinearAdd of two quantized values: onnxruntime 1.32's x86-64 kernel,
/// `cvtps(fma(a, ra, fma(b, rb, fixed)))` saturated, with `ra`, `rb` the
/// scale ratios and `fixed = c_zp - fma(ra, a_zp, rb * b_zp)`, all in
/// `f32` (std's `mul_add` is the fused multiply-add; `cvtps` gives
/// `i32::MIN` out of range). See `mncc_abi::quant::QAdd` for the source.
fn qadd(a: i32, qa: QType, b: i32, qb: QType, out: &QType) -> i32 {
    let ra = qa.scale / out.scale;
    let rb = qb.scale / out.scale;
    let fixed = out.zero_point as f32 - ra.mul_add(qa.zero_point as f32, rb * qb.zero_point as f32);
    let v = (a as f32).mul_add(ra, (b as f32).mul_add(rb, fixed)).round_ties_even();
    let v = if (-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        v as i32
    } else {
        i32::MIN
    };
    let (lo, hi) = out.range();
    v.clamp(lo, hi)
}

/// QLinearMul of two quantized values: onnxruntime 1.32's x86-64 kernel
/// (SSE2), `cvtps((a - a_zp) * (b - b_zp) as f32 * ratio + c_zp)`, the
/// product and the sum each rounded to `f32`, `ratio = a_scale * b_scale
/// / c_scale`, saturated. See `mncc_abi::quant::QMul` for the source.
fn qmul(a: i32, qa: QType, b: i32, qb: QType, out: &QType) -> i32 {
    let ratio = qa.scale * qb.scale / out.scale;
    let p = ((a - qa.zero_point) * (b - qb.zero_point)) as f32;
    let v = (p * ratio + out.zero_point as f32).round_ties_even();
    let v = if (-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        v as i32
    } else {
        i32::MIN
    };
    let (lo, hi) = out.range();
    v.clamp(lo, hi)
}

/// QLinearGlobalAveragePool of one channel's integer sum over `pixels`:
/// onnxruntime's `acc = sum - x_zp * pixels` requantized with the
/// multiplier `x_scale / (y_scale * pixels)` in `f32`.
fn qavg(sum: i64, pixels: usize, xq: QType, out: &QType) -> i32 {
    let scale = xq.scale / (out.scale * pixels as f32);
    let acc = sum - xq.zero_point as i64 * pixels as i64;
    let v = (acc as i32 as f32 * scale).round_ties_even() as i64 + out.zero_point as i64;
    let (lo, hi) = out.range();
    v.clamp(lo as i64, hi as i64) as i32
}

/// A parameter's real values ([`Param::real`]).
fn reals(p: &Param) -> Vec<f64> {
    (0..p.len()).map(|i| p.real(i)).collect()
}

/// ONNX QuantizeLinear of a real `v` (an `f32` value in the generated
/// code), as onnxruntime computes it: `v / scale` in `f32`, rounded half
/// to even, plus the zero point, saturated to `[lo, hi]`; a NaN gives
/// `lo` (its kernel clamps with `maxps` first).
fn quantize(v: f64, scale: f32, zero_point: i32, lo: i32, hi: i32) -> f64 {
    let q = ((v as f32) / scale) as f64;
    if q.is_nan() {
        return lo as f64;
    }
    (q.round_ties_even() + zero_point as f64).clamp(lo as f64, hi as f64)
}

/// ONNX DequantizeLinear: `(q - zero_point)` exactly, times `scale` in `f32`.
fn dequantize(q: f64, scale: f32, zero_point: i32) -> f64 {
    ((q - zero_point as f64) as f32 * scale) as f64
}

/// `f(channel, value)` over an NCHW tensor.
fn per_channel(x: &[f64], shape: &[usize], f: impl Fn(usize, f64) -> f64) -> Vec<f64> {
    // [n, c, h, w], or [n, c] (one value per channel).
    let (c, hw) = (shape[1], shape[2..].iter().product::<usize>());
    x.iter().enumerate().map(|(i, &v)| f((i / hw) % c, v)).collect()
}

fn clamp(v: f64, min: f32, max: f32) -> f64 {
    v.max(min as f64).min(max as f64)
}

/// The input pixel `(iy, ix)` that tap `(ky, kx)` of output pixel `(oy,
/// ox)` reads, for an `[h, w]` input under `stride` and `pads` (`[top,
/// left, ...]`); `None` in the padding.
fn window_at(
    stride: [usize; 2],
    pads: [usize; 4],
    [h, w]: [usize; 2],
    [oy, ox]: [usize; 2],
    [ky, kx]: [usize; 2],
) -> Option<(usize, usize)> {
    let iy = (oy * stride[0] + ky).checked_sub(pads[0]).filter(|&v| v < h)?;
    let ix = (ox * stride[1] + kx).checked_sub(pads[1]).filter(|&v| v < w)?;
    Some((iy, ix))
}

/// Direct convolution: for every output element, the sum over its window.
fn conv(cfg: &ConvCfg, x: &[f64], ins: &[usize], outs: &[usize], residual: Option<&[f64]>) -> Vec<f64> {
    let (n, c, h, w) = (ins[0], ins[1], ins[2], ins[3]);
    let (oc, oh, ow) = (outs[1], outs[2], outs[3]);
    let [_, icg, kh, kw] = cfg.dims();
    let ocg = oc / cfg.groups;
    let wt = reals(&cfg.weight);
    let mut out = vec![0.0; n * oc * oh * ow];
    for b in 0..n {
        for o in 0..oc {
            let g = o / ocg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = cfg.bias.as_ref().map_or(0.0, |bias| bias[o] as f64);
                    for ic in 0..icg {
                        let ci = g * icg + ic;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let v = match window_at(cfg.stride, cfg.pads, [h, w], [oy, ox], [ky, kx]) {
                                    Some((iy, ix)) => x[((b * c + ci) * h + iy) * w + ix],
                                    None => cfg.pad_value.as_ref().map_or(0.0, |p| p[ci] as f64),
                                };
                                acc += v * wt[((o * icg + ic) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    let i = ((b * oc + o) * oh + oy) * ow + ox;
                    if let Some(r) = residual {
                        acc += r[i];
                    }
                    out[i] = cfg.act.reference(clamp(acc, cfg.clamp.min, cfg.clamp.max));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{InputSpec, Param};

    #[test]
    fn conv_by_hand() {
        // 1 channel 3x3 input, 2x2 kernel of ones, stride 1, pad bottom/right 1.
        let mut g = Graph::new(
            "t",
            "",
            InputSpec {
                dtype: ElemType::F32,
                layout: Layout::Nchw,
            },
            vec![1, 1, 3, 3],
        );
        let w = Param::new(vec![1, 1, 2, 2], vec![1.0; 4]);
        g.push("c", Op::Conv(ConvCfg::new(w, [1, 1], [0, 0, 1, 1], 1)), &[INPUT])
            .unwrap();
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let y = run(&g, &InputData::F32(x)).unwrap();
        assert_eq!(y, vec![12.0, 16.0, 9.0, 24.0, 28.0, 15.0, 15.0, 17.0, 9.0]);
    }

    #[test]
    fn nhwc_input_is_transposed() {
        let mut g = Graph::new(
            "t",
            "",
            InputSpec {
                dtype: ElemType::U8,
                layout: Layout::Nhwc,
            },
            vec![1, 2, 1, 2],
        );
        g.push("gap", Op::GlobalAvgPool, &[INPUT]).unwrap();
        // pixels (c0,c1): (1,10), (3,30)
        let y = run(&g, &InputData::U8(vec![1, 10, 3, 30])).unwrap();
        assert_eq!(y, vec![2.0, 20.0]);
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut g = Graph::new(
            "t",
            "",
            InputSpec {
                dtype: ElemType::F32,
                layout: Layout::Nchw,
            },
            vec![1, 3, 1, 1],
        );
        let w = Param::new(vec![3, 3], vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        let d = g
            .push("fc", Op::Dense(crate::ir::DenseCfg::new(w, None)), &[INPUT])
            .unwrap();
        g.push("sm", Op::Softmax, &[d]).unwrap();
        let y = run(&g, &InputData::F32(vec![1000.0, 1000.0, 0.0])).unwrap();
        assert!((y[0] - 0.5).abs() < 1e-12 && (y[1] - 0.5).abs() < 1e-12 && y[2] < 1e-300);
    }
}
