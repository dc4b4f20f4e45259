//! Kernel choice, per node of the optimized graph:
//!
//! * a conv with groups = channels: `simd::depthwise`;
//! * a 1x1, stride 1, unpadded conv (groups 1) reading an NHWC f32 tensor:
//!   `simd::pointwise`;
//! * any other groups-1 conv, and any conv reading the model input when that
//!   input is u8 or NCHW: `simd::conv2d` (it reads either layout and type
//!   and pads with the folded normalization's pad value);
//! * a dense layer: `simd::pointwise` with one pixel;
//! * pooling, softmax, unfused adds and activations, channel scaling,
//!   quantization: their own kernels;
//! * the integer layers: `quant::q*` (requantized output) or `dynq::*`
//!   (an input quantized at run time, a float output);
//! * a Reshape that keeps the NHWC storage order: nothing (a view of its
//!   input, recorded in `alias`).
//!
//! The `simd` kernels pick AVX-512, AVX2, NEON or the portable path at run
//! time; [`super::schedule`] sizes their tiles for the target.

use super::pack::{self, Blob};
use super::{
    same_order_in_nhwc, schedule, Kernel, Layer, QAdd, QAvgPool, QConvKind, QMean, QMul, QSoftmax, QZeroPoints,
};
use crate::diag::{Diagnostic, Error};
use crate::ir::{
    int_range, Activation, Clamp, DynInt, ElemType, Graph, IntOut, Layout, Node, Op, QConvCfg, QDenseCfg, QType,
    TensorId, Values, INPUT,
};
use crate::target::Target;
use mncc_abi::{ConvShape, PointwiseShape};

/// Input shape `[n, c, h, w]` as NHWC `[h, w, c]`, `[n, k]` as `[k]`.
fn nhwc(shape: &[usize]) -> Vec<usize> {
    match *shape {
        [_, c, h, w] => vec![h, w, c],
        [_, k] => vec![k],
        _ => shape.to_vec(),
    }
}

/// The layer of node `n` (`None` for a view), its weights packed into
/// `blob`; `alias` maps each tensor to the one that stores it.
pub(super) fn layer(
    g: &Graph,
    n: &Node,
    alias: &mut [TensorId],
    target: &Target,
    blob: &mut Blob,
) -> Result<Option<Layer>, Error> {
    // NHWC storage, or an NCHW one with one channel or one pixel (the same
    // order).
    let input_is_plain = g.input.dtype == ElemType::F32
        && (g.input.layout == Layout::Nhwc || same_order_in_nhwc(&g.tensors[INPUT].shape));
    let x = &g.tensors[n.inputs[0]].shape;
    let y = &g.tensors[n.output].shape;
    let at = |msg: String| Error::from(Diagnostic::node(&n.name, &n.source, msg));
    if x.first() != Some(&1) {
        return Err(at(format!("batch size {} is not supported (only 1)", x[0])));
    }
    if let Op::Reshape(_) = n.op {
        // (An NCHW model input read by a reshape is first stored NHWC by
        // the input layout layer, so `x` is channels-last here too.)
        let reorders = !(same_order_in_nhwc(x) && same_order_in_nhwc(y));
        // A flatten of a feature map as the model output (a backbone's
        // features, a node test's Flatten): ONNX's order is NCHW's, so one
        // layer writes the output in that order.
        if reorders && n.output == g.output && x.len() == 4 && g.tensors[n.output].ty.elem == ElemType::F32 {
            let (c, h, w) = (x[1], x[2], x[3]);
            return Ok(Some(super::layout_layer(
                &n.name,
                Kernel::NhwcToNchw { pixels: h * w, c },
                (alias[n.inputs[0]], vec![h, w, c]),
                (n.output, y.to_vec()),
                format!("the model output flattens {x:?} in NCHW order; activations are stored NHWC"),
            )));
        }
        if reorders {
            return Err(at(format!(
                "reshaping {x:?} to {y:?} reorders elements in channels-last storage; only a dense layer may read such a flatten"
            )));
        }
        alias[n.output] = alias[n.inputs[0]];
        return Ok(None);
    }
    let reads_input = alias[n.inputs[0]] == INPUT;
    // Every kernel but conv2d reads NHWC f32; only a convolution's main
    // input (lowered to conv2d when needed) may be a u8 or NCHW model input.
    let reads_raw_input = n.inputs.iter().enumerate().any(|(k, &t)| {
        alias[t] == INPUT
            && (k > 0
                || !(matches!(n.op, Op::Conv(_))
                    || (matches!(n.op, Op::Cast(_)) && g.input.dtype == ElemType::F16)
                    || (matches!(n.op, Op::Quantize(_) | Op::DynQuantize) && g.input.dtype == ElemType::F32)))
    });
    if !input_is_plain && reads_raw_input {
        return Err(at(format!(
            "only a convolution can read the model input ({} {}) directly",
            g.input.dtype.short_name(),
            g.input.layout
        )));
    }
    let mut layer = Layer {
        name: n.name.clone(),
        op: n.op.kind(),
        fused: n.fused.clone(),
        kernel: Kernel::Softmax,
        inputs: n.inputs.iter().map(|&t| alias[t]).collect(),
        output: n.output,
        in_shape: nhwc(x),
        out_shape: nhwc(y),
        weights: None,
        bias: None,
        int: None,
        clamp: Clamp::NONE,
        residual: false,
        act: Activation::None,
        macs: n.op.macs(y),
        params: n.op.params(),
        why: String::new(),
    };
    match &n.op {
        Op::Conv(c) => {
            let ic = x[1];
            let (oc, oh, ow) = (y[1], y[2], y[3]);
            let [kh, kw] = c.kernel();
            let w = c.weight.to_f32();
            let w = &w[..];
            let shape = conv_shape(x, y, [kh, kw], c.stride, c.pads);
            layer.clamp = c.clamp;
            layer.residual = c.residual;
            layer.act = c.act;
            if let Some(b) = &c.bias {
                layer.bias = Some(blob.push(b));
            }
            let plain_in = !reads_input || input_is_plain;
            if c.groups > 1 {
                if !plain_in || c.pad_value.is_some() {
                    return Err(at(
                        "a depthwise convolution cannot read a u8 or NCHW model input directly".into(),
                    ));
                }
                layer.weights = Some(blob.push(&pack::depthwise(&shape, w)));
                let (tiles, why) = schedule::depthwise(target, &shape);
                layer.why = why;
                layer.kernel = Kernel::Depthwise {
                    shape,
                    ct: target.tiles.lanes,
                    tiles,
                };
            } else if kh == 1 && kw == 1 && c.stride == [1, 1] && c.pads == [0; 4] && plain_in && c.pad_value.is_none()
            {
                let shape = PointwiseShape {
                    pixels: oh * ow,
                    in_c: ic,
                    out_c: oc,
                };
                layer.weights = Some(blob.push(&pack::panels(ic, oc, |o, i| w[o * ic + i])));
                layer.kernel = pointwise(target, shape, &mut layer.why);
            } else {
                layer.weights = Some(blob.push(&pack::conv2d(&shape, w)));
                let (input_type, layout) = if reads_input {
                    (g.input.dtype, g.input.layout)
                } else {
                    (ElemType::F32, Layout::Nhwc)
                };
                let (direct, why) = schedule::conv2d(target, &shape);
                layer.why = why;
                layer.kernel = Kernel::Conv2d {
                    shape,
                    nr: target.tiles.pw_nr,
                    direct,
                    input_type,
                    layout,
                    pad_value: c.pad_value.clone().unwrap_or_else(|| vec![0.0; ic]),
                };
            }
        }
        Op::Dense(d) => {
            let k = d.weight.shape[1];
            let out = d.weight.shape[0];
            let w = d.weight.to_f32();
            let w = &w[..];
            layer.clamp = d.clamp;
            layer.act = d.act;
            // The input is stored NHWC; the weight columns are in NCHW flatten order.
            let (c, hw) = if x.len() == 4 { (x[1], x[2] * x[3]) } else { (k, 1) };
            let col = |kn: usize| (kn % c) * hw + kn / c; // NHWC index -> NCHW column
            layer.weights = Some(blob.push(&pack::panels(k, out, |o, i| w[o * k + col(i)])));
            if let Some(b) = &d.bias {
                layer.bias = Some(blob.push(b));
            }
            let shape = PointwiseShape {
                pixels: 1,
                in_c: k,
                out_c: out,
            };
            layer.kernel = pointwise(target, shape, &mut layer.why);
        }
        Op::GlobalAvgPool => {
            layer.kernel = Kernel::GlobalAvgPool {
                pixels: x[2] * x[3],
                c: x[1],
            };
        }
        Op::Softmax => layer.kernel = Kernel::Softmax,
        Op::MaxPool(p) => {
            layer.kernel = Kernel::MaxPool(ConvShape {
                in_h: x[2],
                in_w: x[3],
                in_c: x[1],
                out_h: y[2],
                out_w: y[3],
                out_c: y[1],
                kernel_h: p.kernel[0],
                kernel_w: p.kernel[1],
                stride_h: p.stride[0],
                stride_w: p.stride[1],
                pad_top: p.pads[0],
                pad_left: p.pads[1],
            });
        }
        Op::Add => layer.kernel = Kernel::Add,
        Op::Clip(c) => {
            // A clamp with no conv or dense layer before it.
            layer.clamp = *c;
            layer.kernel = Kernel::Map;
        }
        Op::Activation(a) => {
            layer.act = *a;
            layer.kernel = Kernel::Map;
        }
        Op::Sigmoid => layer.kernel = Kernel::Sigmoid,
        Op::Mul => {
            let s = &g.tensors[n.inputs[1]].shape;
            if s == x {
                return Err(at(format!(
                    "an elementwise product of two {x:?} tensors is not supported (only scaling channels by a [n, c, 1, 1] tensor)"
                )));
            }
            layer.kernel = Kernel::ScaleChannels {
                pixels: x[2] * x[3],
                c: x[1],
            };
        }
        Op::Cast(to) => {
            let (pixels, c) = (x[2..].iter().product(), x[1]);
            // The NCHW order on the way in (the input) or out (the output
            // of a `[1, c, h, w]` model): the cast layer also transposes.
            let order = |nchw: bool| nchw && x.len() == 4 && pixels > 1 && c > 1;
            layer.kernel = if *to == ElemType::F16 {
                let nchw = order(n.output == g.output && g.output_layout == Layout::Nchw);
                Kernel::ToF16 { pixels, c, nchw }
            } else {
                let nchw = order(reads_input && g.input.layout == Layout::Nchw);
                Kernel::FromF16 { pixels, c, nchw }
            };
            layer.why = "float16 at the model's edge; the layers compute in float32".into();
        }
        Op::Quantize(q) => {
            layer.kernel = Kernel::Quantize {
                elem: q.elem,
                scale: q.scale,
                zero_point: q.zero_point,
                nchw: (reads_input && g.input.layout == Layout::Nchw && x.len() == 4).then(|| (x[2] * x[3], x[1])),
            };
            layer.why = format!("scale {}, zero point {}", q.scale, q.zero_point);
        }
        Op::Dequantize => {
            let t = &g.tensors[n.inputs[0]].ty;
            let q = t
                .quant
                .as_ref()
                .ok_or_else(|| at("its input is not quantized".into()))?;
            layer.kernel = Kernel::Dequantize {
                elem: t.elem,
                scale: q.scale[0],
                zero_point: q.zero_point[0],
            };
            layer.why = format!("scale {}, zero point {}", q.scale[0], q.zero_point[0]);
        }
        Op::QConv(c) => {
            if reads_input {
                return Err(at(
                    "an integer convolution cannot read the model input (quantize it first)".into(),
                ));
            }
            let xq = qtype(g, n.inputs[0]);
            let IntOut::Requant(yq) = c.out else {
                return Err(at(
                    "integer convolutions with int32 outputs are not supported yet".into()
                ));
            };
            let x_zp = unsigned_zero_point(&xq);
            let (kind, w, wsum) = pack_qconv(c, x, y, blob, &mut layer);
            let fold = wsum.as_ref().map(|(k, wsum)| (*k, x_zp, wsum.as_slice()));
            layer.int = Some(w.consts(blob, y[1], c.bias.as_deref(), fold, xq, yq));
            layer.why = format!("{}; output {}", w.describe(), yq_describe(&yq));
            layer.kernel = Kernel::QConv {
                kind,
                zp: QZeroPoints {
                    x: if fold.is_some() { x_zp } else { xq.zero_point },
                    y: yq.zero_point,
                },
            };
        }
        Op::QDense(d) => {
            let xq = qtype(g, n.inputs[0]);
            let IntOut::Requant(yq) = d.out else {
                return Err(at(
                    "integer dense layers with int32 outputs are not supported yet".into()
                ));
            };
            let x_zp = unsigned_zero_point(&xq);
            let (kind, w, (k, wsum)) = pack_qdense(d, x, blob, &mut layer);
            layer.int = Some(w.consts(
                blob,
                d.weight.shape[0],
                d.bias.as_deref(),
                Some((k, x_zp, &wsum)),
                xq,
                yq,
            ));
            layer.why = format!("{}; output {}", w.describe(), yq_describe(&yq));
            layer.kernel = Kernel::QConv {
                kind,
                zp: QZeroPoints {
                    x: x_zp,
                    y: yq.zero_point,
                },
            };
        }
        Op::DynQuantize => {
            layer.kernel = Kernel::DynQuantize {
                nchw: (reads_input && g.input.layout == Layout::Nchw && x.len() == 4).then(|| (x[2] * x[3], x[1])),
            };
            layer.why = "uint8, scale and zero point from the tensor's range at run time".into();
        }
        Op::DynQLayer(d) => {
            let (kind, w, wsum) = match &d.int {
                DynInt::Conv(c) => pack_qconv(c, x, y, blob, &mut layer),
                DynInt::Dense(dd) => {
                    let (kind, w, wsum) = pack_qdense(dd, x, blob, &mut layer);
                    (kind, w, Some(wsum))
                }
            };
            layer.int = Some(w.dyn_consts(blob, d.out_channels(), wsum.as_ref().map(|(k, s)| (*k, s.as_slice()))));
            if let Some(b) = &d.bias {
                layer.bias = Some(blob.push(b));
            }
            layer.clamp = d.clamp;
            layer.why = format!("{}; float output", w.describe());
            layer.kernel = Kernel::DynQ { kind };
        }
        Op::QAdd(a) => {
            let qa = qtype(g, n.inputs[0]);
            let qb = match &a.rhs {
                Some(p) => {
                    let q = p.quant.as_ref().expect("the verifier checked the addend");
                    layer.weights = Some(match &p.values {
                        Values::I8(v) => blob.push(v),
                        Values::U8(v) => blob.push(v),
                        _ => return Err(at("the constant addend is not 8-bit".into())),
                    });
                    QType {
                        elem: p.elem(),
                        scale: q.scale[0],
                        zero_point: q.zero_point[0],
                    }
                }
                None => qtype(g, n.inputs[1]),
            };
            let o = a.out;
            layer.why = format!(
                "a: {}, b: {}{}; output {}",
                yq_describe(&qa),
                yq_describe(&qb),
                if a.rhs.is_some() { " (constant)" } else { "" },
                yq_describe(&o)
            );
            layer.kernel = Kernel::QAdd {
                params: QAdd::new(
                    (qa.scale, qa.zero_point),
                    (qb.scale, qb.zero_point),
                    (o.scale, o.zero_point),
                ),
                constant: a.rhs.as_ref().map(|p| p.elem()),
            };
        }
        Op::QGlobalAvgPool(o) => {
            let xq = qtype(g, n.inputs[0]);
            let pixels = x[2] * x[3];
            layer.why = format!("input {}; output {}", yq_describe(&xq), yq_describe(o));
            layer.kernel = Kernel::QGlobalAvgPool(QAvgPool {
                pixels,
                c: x[1],
                x_zero_point: xq.zero_point,
                multiplier: QAvgPool::multiplier(xq.scale, o.scale, pixels),
                y_zero_point: o.zero_point,
            });
        }
        Op::QMul(o) => {
            let (qa, qb) = (qtype(g, n.inputs[0]), qtype(g, n.inputs[1]));
            let per_channel = g.tensors[n.inputs[1]].shape != g.tensors[n.inputs[0]].shape;
            layer.why = format!(
                "a: {}, b: {}{}; output {}",
                yq_describe(&qa),
                yq_describe(&qb),
                if per_channel { " (one per channel)" } else { "" },
                yq_describe(o)
            );
            layer.kernel = Kernel::QMul(QMul::new(
                (qa.scale, qa.zero_point),
                (qb.scale, qb.zero_point),
                (o.scale, o.zero_point),
            ));
        }
        Op::QTable(t) => {
            let xq = qtype(g, n.inputs[0]);
            let steps: Vec<String> = t.steps.iter().map(|s| s.describe()).collect();
            layer.why = format!(
                "input {}; {} as a 256-entry table; output {}",
                yq_describe(&xq),
                steps.join(", "),
                yq_describe(&t.out)
            );
            layer.kernel = Kernel::QTable(Box::new(t.table(&xq)));
        }
        Op::QSoftmax(o) => {
            let xq = qtype(g, n.inputs[0]);
            let d = x[1];
            layer.weights = Some(blob.push(&crate::ir::softmax_table(xq.scale, d)[..]));
            layer.why = format!(
                "input {}; exp table of 256 f32; output {}",
                yq_describe(&xq),
                yq_describe(o)
            );
            layer.kernel = Kernel::QSoftmax(QSoftmax {
                d,
                y_factor: (1.0f32 / o.scale).floor(),
                y_zero_point: o.zero_point,
            });
        }
        Op::QMean { out: o, pool } => {
            let xq = qtype(g, n.inputs[0]);
            layer.why = format!(
                "input {}; float mean{}; output {}",
                yq_describe(&xq),
                if *pool { " (QLinearAveragePool's rounding)" } else { "" },
                yq_describe(o)
            );
            layer.kernel = Kernel::QMean(QMean {
                pixels: x[2] * x[3],
                c: x[1],
                x_scale: xq.scale,
                x_zero_point: xq.zero_point,
                y_scale: o.scale,
                y_zero_point: o.zero_point,
                pool: *pool,
            });
        }
        Op::Reshape(_) => unreachable!("reshapes are views, handled above"),
        Op::Normalize(_) => {
            return Err(at(
                "a per-channel scale and shift that mncc cannot fold: it must directly follow a convolution without activation or residual (read by nothing else), or be the only input of a convolution that is not padded with other values".into()
            ));
        }
        Op::BatchNorm(_) => {
            return Err(at(
                "a BatchNormalization that mncc cannot fold: it must directly follow a convolution without activation or residual, whose output nothing else reads".into()
            ));
        }
    }
    Ok(Some(layer))
}

/// Packs an integer convolution's weights into the blob (`layer.weights`):
/// its kernel, its weight, and for the GEMM kernels (not depthwise) the
/// products per sum and each channel's sum of stored weights.
fn pack_qconv<'a>(
    c: &'a QConvCfg,
    x: &[usize],
    y: &[usize],
    blob: &mut Blob,
    layer: &mut Layer,
) -> (QConvKind, pack::QWeight<'a>, Option<(usize, Vec<i32>)>) {
    let [oc, icg, kh, kw] = c.dims();
    let ic = x[1];
    let shape = conv_shape(x, y, [kh, kw], c.stride, c.pads);
    let w = pack::QWeight::new(&c.weight);
    if c.groups > 1 {
        // [c][1][kh][kw] -> [kh][kw][c]
        layer.weights = Some(blob.push(&w.gather(kh * kw * oc, |i| (i % oc) * kh * kw + i / oc)));
        (QConvKind::Depthwise(shape), w, None)
    } else if kh == 1 && kw == 1 && c.stride == [1, 1] && c.pads == [0; 4] {
        let (packed, wsum) = w.qpanels(ic, oc, |o, i| o * ic + i);
        layer.weights = Some(blob.push(&packed));
        let kind = QConvKind::Pointwise(PointwiseShape {
            pixels: y[2] * y[3],
            in_c: ic,
            out_c: oc,
        });
        (kind, w, Some((ic, wsum)))
    } else {
        // im2col rows (ky * kw + kx) * ic + ci from [oc][ic][kh][kw]
        let k = kh * kw * icg;
        let (packed, wsum) = w.qpanels(k, oc, |o, r| {
            let (tap, ci) = (r / icg, r % icg);
            (o * icg + ci) * kh * kw + tap
        });
        layer.weights = Some(blob.push(&packed));
        (QConvKind::Conv2d(shape), w, Some((k, wsum)))
    }
}

/// Packs an integer dense layer's weights into the blob (`layer.weights`):
/// its kernel (a one-pixel pointwise), its weight, the products per sum
/// and each output's sum of stored weights.
fn pack_qdense<'a>(
    d: &'a QDenseCfg,
    x: &[usize],
    blob: &mut Blob,
    layer: &mut Layer,
) -> (QConvKind, pack::QWeight<'a>, (usize, Vec<i32>)) {
    let (out, k) = (d.weight.shape[0], d.weight.shape[1]);
    // The input is stored NHWC; the weight columns are in NCHW flatten order.
    let (c, hw) = if x.len() == 4 { (x[1], x[2] * x[3]) } else { (k, 1) };
    let w = pack::QWeight::new(&d.weight);
    let (packed, wsum) = w.qpanels(k, out, |o, kn| o * k + (kn % c) * hw + kn / c);
    layer.weights = Some(blob.push(&packed));
    let kind = QConvKind::Pointwise(PointwiseShape {
        pixels: 1,
        in_c: k,
        out_c: out,
    });
    (kind, w, (k, wsum))
}

/// The geometry of a convolution from its NCHW input and output shapes.
fn conv_shape(x: &[usize], y: &[usize], [kh, kw]: [usize; 2], stride: [usize; 2], pads: [usize; 4]) -> ConvShape {
    ConvShape {
        in_h: x[2],
        in_w: x[3],
        in_c: x[1],
        out_h: y[2],
        out_w: y[3],
        out_c: y[1],
        kernel_h: kh,
        kernel_w: kw,
        stride_h: stride[0],
        stride_w: stride[1],
        pad_top: pads[0],
        pad_left: pads[1],
    }
}

/// The input's zero point as the integer GEMM kernels read the input:
/// unsigned bytes, an int8 input (and its zero point) shifted by 128.
fn unsigned_zero_point(q: &QType) -> i32 {
    q.zero_point - int_range(q.elem).0
}

/// The per-tensor quantization of tensor `t` (the verifier checked it).
fn qtype(g: &Graph, t: TensorId) -> QType {
    g.tensors[t]
        .ty
        .qtype()
        .expect("the verifier checked a quantized tensor")
}

/// `uint8 scale 0.02 zero point 128`.
fn yq_describe(q: &QType) -> String {
    format!("{} scale {} zero point {}", q.elem, q.scale, q.zero_point)
}

/// A pointwise kernel of `shape`, scheduled for `target`; its reason goes
/// to `why`.
fn pointwise(target: &Target, shape: PointwiseShape, why: &mut String) -> Kernel {
    let s = schedule::pointwise(target, &shape);
    *why = s.why;
    Kernel::Pointwise {
        shape,
        mr: s.mr,
        nr: s.nr,
        tiles: s.tiles,
        amx: s.amx,
    }
}
