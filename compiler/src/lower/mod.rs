//! Lowering: the optimized graph becomes a [`Program`], a list of kernel
//! calls with their schedules, packed weights and planned storage. In named
//! parts, in the order [`lower`] runs them:
//!
//! * `select`: the kernel of each node (and the checks that one exists);
//! * [`schedule`]: the rules that size its register and cache tiles on the
//!   [`Target`], and why;
//! * [`pack`]: its weights in the blob, in its kernel's layout;
//! * [`bands`]: which pointwise -> depthwise pairs run in bands of rows
//!   ([`Step::Banded`]);
//! * [`storage`]: where each tensor lives (the static memory plan, in bytes);
//! * [`describe`]: one description of each layer, for the generated docs
//!   and `mncc inspect`.

pub mod bands;
pub mod describe;
pub mod pack;
pub mod schedule;
mod select;
pub mod storage;

use crate::diag::Error;
use crate::ir::{Activation, Clamp, ElemType, Graph, Layout, Op, TensorId, INPUT};
use crate::passes::PassReport;
pub use crate::target::Target;
pub use mncc_abi::quant::{QAdd, QAvgPool, QMean, QMul, QSoftmax, QZeroPoints};
pub use mncc_abi::{amx, ConvShape, DepthwiseTiles, PointwiseShape, PointwiseTiles, PwDwShape, PwOrder, RegisterTiles};
use std::ops::Range;

/// Where a tensor lives at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// The caller's input array.
    Input,
    /// The caller's output array.
    Output,
    /// Bytes `range` of the arena.
    Arena(Range<usize>),
}

/// A kernel call with its constants.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
    /// Full convolution.
    Conv2d {
        /// Geometry.
        shape: ConvShape,
        /// Output channels per register tile of the im2col route.
        nr: usize,
        /// Whether the runtime takes its direct route on the target's
        /// instruction set ([`mncc_abi::conv2d_direct`]; never on the
        /// portable path), else im2col blocks through the GEMM micro-kernel.
        direct: bool,
        /// Element type of the input.
        input_type: ElemType,
        /// Layout of the input.
        layout: Layout,
        /// Pad value per input channel.
        pad_value: Vec<f32>,
    },
    /// Depthwise convolution.
    Depthwise {
        /// Geometry.
        shape: ConvShape,
        /// Channels per register tile.
        ct: usize,
        /// Cache tiles.
        tiles: DepthwiseTiles,
    },
    /// Pointwise convolution or dense layer.
    Pointwise {
        /// Geometry.
        shape: PointwiseShape,
        /// Pixels per register tile.
        mr: usize,
        /// Output channels per register tile.
        nr: usize,
        /// Cache tiles and loop order.
        tiles: PointwiseTiles,
        /// Whether the layer runs on the AMX tiles where the CPU has them
        /// (`mncc_runtime::simd::pointwise_amx`, on the same weights).
        amx: bool,
    },
    /// Global average pooling.
    GlobalAvgPool {
        /// Pixels averaged.
        pixels: usize,
        /// Channels.
        c: usize,
    },
    /// Max pooling (`mncc_runtime::max_pool`), any element type.
    MaxPool(ConvShape),
    /// Softmax.
    Softmax,
    /// Elementwise add.
    Add,
    /// The epilogue alone, elementwise (an activation after no conv).
    Map,
    /// Per-channel scaling by a computed `[c]` vector (squeeze-and-excitation).
    ScaleChannels {
        /// Pixels.
        pixels: usize,
        /// Channels.
        c: usize,
    },
    /// The model output from channels-last storage to the NCHW order its
    /// `[1, c, h, w]` shape promises (added by lowering, no graph node).
    NchwToNhwc {
        /// Pixels per channel.
        pixels: usize,
        /// Channels.
        c: usize,
    },
    /// A float16 model input to float32 (`mncc_runtime::from_f16`),
    /// stored channels-last.
    FromF16 {
        /// Pixels.
        pixels: usize,
        /// Channels.
        c: usize,
        /// Whether the input is NCHW.
        nchw: bool,
    },
    /// Float32 to a float16 model output (`mncc_runtime::to_f16`).
    ToF16 {
        /// Pixels.
        pixels: usize,
        /// Channels.
        c: usize,
        /// Whether the output is NCHW (the cast also transposes).
        nchw: bool,
    },
    /// Channels-last to channels-first (the model output's layout).
    NhwcToNchw {
        /// Pixels.
        pixels: usize,
        /// Channels.
        c: usize,
    },
    /// Reals to integers (`mncc_runtime::quantize`).
    Quantize {
        /// The integer type.
        elem: ElemType,
        /// Scale.
        scale: f32,
        /// Zero point.
        zero_point: i32,
        /// `Some((pixels, c))` when it reads an NCHW model input (and
        /// writes NHWC: `mncc_runtime::quantize_nchw`).
        nchw: Option<(usize, usize)>,
    },
    /// Integer convolution, depthwise or pointwise/dense
    /// (`mncc_runtime::quant::q*`), its constants in [`Layer::int`].
    QConv {
        /// Which kernel.
        kind: QConvKind,
        /// The input's and output's zero points.
        zp: QZeroPoints,
    },
    /// Reals to `uint8` with the scale and zero point of their range,
    /// written after the values (`mncc_runtime::dynq::quantize`).
    DynQuantize {
        /// `Some((pixels, c))` when it reads an NCHW model input (and
        /// writes NHWC).
        nchw: Option<(usize, usize)>,
    },
    /// An integer convolution, depthwise, pointwise or dense layer on a
    /// [`Kernel::DynQuantize`]d input, with a float output
    /// (`mncc_runtime::dynq::*`): its constants in [`Layer::int`] (the
    /// weight zero points, [`mncc_abi::quant::dyn_correction`]s, the weight
    /// scales), the float bias in [`Layer::bias`].
    DynQ {
        /// Which kernel.
        kind: QConvKind,
    },
    /// onnxruntime's QLinearAdd (`mncc_runtime::quant::qadd`).
    QAdd {
        /// The constants.
        params: QAdd,
        /// The element type of a constant second operand (which is
        /// [`Layer::weights`]); `None`: the layer's second input.
        constant: Option<ElemType>,
    },
    /// onnxruntime's QLinearGlobalAveragePool
    /// (`mncc_runtime::quant::qglobal_avg_pool`).
    QGlobalAvgPool(QAvgPool),
    /// The logistic function, elementwise (`mncc_runtime::sigmoid`).
    Sigmoid,
    /// onnxruntime's QLinearMul (`mncc_runtime::quant::qmul`); the second
    /// input has the first's size or one value per channel.
    QMul(QMul),
    /// An elementwise function as a table (`mncc_runtime::quant::qtable`):
    /// the output of each input byte.
    QTable(Box<[i32; 256]>),
    /// onnxruntime's QLinearSoftmax (`mncc_runtime::quant::qsoftmax`); its
    /// 256 `f32` table in [`Layer::weights`].
    QSoftmax(QSoftmax),
    /// A float mean over pixels of a quantized tensor
    /// (`mncc_runtime::quant::qmean`).
    QMean(QMean),
    /// Integers to reals (`mncc_runtime::dequantize`).
    Dequantize {
        /// The integer type.
        elem: ElemType,
        /// Scale.
        scale: f32,
        /// Zero point.
        zero_point: i32,
    },
}

/// The kernel of an integer convolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QConvKind {
    /// Groups 1, any window: `qconv2d`, weights `[out_c][kh][kw][in_c]`.
    Conv2d(ConvShape),
    /// Depthwise: `qdepthwise`, weights `[kh][kw][c]`.
    Depthwise(ConvShape),
    /// 1x1 unpadded stride 1, or dense: `qpointwise`, weights
    /// `[out_c][in_c]`.
    Pointwise(PointwiseShape),
}

/// The per-output-channel constants of an integer layer in the blob
/// (`mncc_runtime::quant::QWeights`; the weights are [`Layer::weights`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntConsts {
    /// The weights' zero points (`i32`).
    pub zero_point: Range<usize>,
    /// The biases (`i32`).
    pub bias: Range<usize>,
    /// The requantization multipliers (`f32`).
    pub multiplier: Range<usize>,
}

impl Kernel {
    /// The kernel's name and register tile, e.g. `pointwise_12x32`.
    pub fn name(&self) -> String {
        match self {
            Kernel::Conv2d {
                shape, direct: true, ..
            } => format!("conv2d_{}x{}_direct", shape.kernel_h, shape.kernel_w),
            Kernel::Conv2d { shape, nr, .. } => {
                format!("conv2d_{}x{}_nr{nr}", shape.kernel_h, shape.kernel_w)
            }
            Kernel::Depthwise { shape, ct, .. } => {
                format!("depthwise_{}x{}_ct{ct}", shape.kernel_h, shape.kernel_w)
            }
            Kernel::Pointwise { amx: true, .. } => "pointwise_amx_32x32".into(),
            Kernel::Pointwise { mr, nr, .. } => format!("pointwise_{mr}x{nr}"),
            Kernel::GlobalAvgPool { .. } => "global_avg_pool".into(),
            Kernel::MaxPool(s) => format!("max_pool_{}x{}", s.kernel_h, s.kernel_w),
            Kernel::Softmax => "softmax".into(),
            Kernel::Add => "add".into(),
            Kernel::Map => "map".into(),
            Kernel::ScaleChannels { .. } => "scale_channels".into(),
            Kernel::NhwcToNchw { .. } => "nhwc_to_nchw".into(),
            Kernel::NchwToNhwc { .. } => "nchw_to_nhwc".into(),
            Kernel::FromF16 { .. } => "from_f16".into(),
            Kernel::ToF16 { .. } => "to_f16".into(),
            Kernel::Quantize { elem, .. } => format!("quantize_{}", elem.rust_name()),
            Kernel::Dequantize { elem, .. } => format!("dequantize_{}", elem.rust_name()),
            Kernel::QConv { kind, .. } => match kind {
                QConvKind::Conv2d(s) => format!("qconv2d_{}x{}", s.kernel_h, s.kernel_w),
                QConvKind::Depthwise(s) => format!("qdepthwise_{}x{}", s.kernel_h, s.kernel_w),
                QConvKind::Pointwise(_) => "qpointwise".into(),
            },
            Kernel::DynQuantize { .. } => "dyn_quantize".into(),
            Kernel::DynQ { kind } => match kind {
                QConvKind::Conv2d(s) => format!("dyn_qconv2d_{}x{}", s.kernel_h, s.kernel_w),
                QConvKind::Depthwise(s) => format!("dyn_qdepthwise_{}x{}", s.kernel_h, s.kernel_w),
                QConvKind::Pointwise(_) => "dyn_qpointwise".into(),
            },
            Kernel::QAdd { .. } => "qadd".into(),
            Kernel::QGlobalAvgPool(_) => "qglobal_avg_pool".into(),
            Kernel::QMul(_) => "qmul".into(),
            Kernel::Sigmoid => "sigmoid".into(),
            Kernel::QTable(_) => "qtable".into(),
            Kernel::QSoftmax(_) => "qsoftmax".into(),
            Kernel::QMean(_) => "qmean".into(),
        }
    }

    /// The cache tiles and loop order, e.g. `kc=256 channels-outer`.
    pub fn tiles(&self) -> String {
        match self {
            Kernel::Depthwise { tiles, .. } => format!("rows={}", tiles.rows),
            Kernel::Pointwise { tiles, .. } => format!(
                "kc={} {}",
                tiles.kc,
                match tiles.order {
                    PwOrder::PixelsOuter => "pixels-outer",
                    PwOrder::ChannelsOuter => "channels-outer",
                }
            ),
            _ => "-".into(),
        }
    }
}

/// One generated layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Source node name.
    pub name: String,
    /// Source node op kind.
    pub op: &'static str,
    /// Nodes merged into it by the passes.
    pub fused: Vec<String>,
    /// The kernel.
    pub kernel: Kernel,
    /// Input tensors (the second is a residual or the other addend).
    pub inputs: Vec<TensorId>,
    /// Output tensor.
    pub output: TensorId,
    /// Input shape, NHWC (`[h, w, c]`) or `[k]`.
    pub in_shape: Vec<usize>,
    /// Output shape, NHWC or `[k]`.
    pub out_shape: Vec<usize>,
    /// Packed weights in the blob (bytes).
    pub weights: Option<Range<usize>>,
    /// Bias in the blob (bytes, `f32`).
    pub bias: Option<Range<usize>>,
    /// An integer layer's zero points, biases and multipliers in the blob.
    pub int: Option<IntConsts>,
    /// Epilogue clamp.
    pub clamp: Clamp,
    /// Whether `inputs[1]` is added in the epilogue.
    pub residual: bool,
    /// Epilogue activation after the clamp.
    pub act: Activation,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Parameters.
    pub params: usize,
    /// Why this schedule, one line.
    pub why: String,
}

/// What generated code runs, in order: one layer, or a pointwise layer and
/// the depthwise layer that alone reads its output, in bands of rows
/// ([`bands`]). Indices are into [`Program::layers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Layer `.0` on its own.
    Layer(usize),
    /// Layers `pointwise` and `depthwise` (the next one) together: the
    /// tensor between them is never stored whole, only the rows a band
    /// reads (`shape.scratch_len()` elements per thread, two threads'
    /// worth planned in its place).
    Banded {
        /// The pointwise layer.
        pointwise: usize,
        /// The depthwise layer.
        depthwise: usize,
        /// The pair as the runtime takes it (band height included).
        shape: PwDwShape,
    },
}

impl Step {
    /// The first layer of the step (which names its generated function).
    pub fn first(&self) -> usize {
        match *self {
            Step::Layer(i) => i,
            Step::Banded { pointwise, .. } => pointwise,
        }
    }
    /// The layers of the step.
    pub fn layers(&self) -> std::ops::RangeInclusive<usize> {
        match *self {
            Step::Layer(i) => i..=i,
            Step::Banded {
                pointwise, depthwise, ..
            } => pointwise..=depthwise,
        }
    }
}

/// A model ready for code generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// Model name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Input element type.
    pub input_type: ElemType,
    /// Input layout.
    pub input_layout: Layout,
    /// Input shape in the caller's layout (the batch's: dim 0 is
    /// [`Program::batch`]).
    pub input_shape: Vec<usize>,
    /// Images per run: the layers compute one, `run` repeats them.
    pub batch: usize,
    /// Output element type.
    pub output_type: ElemType,
    /// Output shape, in the caller's layout.
    pub output_shape: Vec<usize>,
    /// Output layout (of a 4-D output).
    pub output_layout: Layout,
    /// Layers in execution order.
    pub layers: Vec<Layer>,
    /// How they run: each layer in exactly one step, in order.
    pub steps: Vec<Step>,
    /// Storage of each tensor id used by a layer.
    pub storage: Vec<Option<Storage>>,
    /// Element type of each tensor id.
    pub tensor_types: Vec<ElemType>,
    /// Weight blob: each segment in its kernel's type and layout, on a
    /// 64-byte boundary.
    pub blob: Vec<u8>,
    /// Arena bytes: the planned tensors, then (from [`Program::amx_at`])
    /// the AMX layers' scratch.
    pub arena_len: usize,
    /// Where the AMX scratch starts in the arena: [`amx::PARTS`] parts of
    /// [`Program::amx_scratch`] bytes, one per thread of the parallel
    /// mode, shared by every AMX layer (none: 0 bytes).
    pub amx_at: usize,
    /// Bytes of one thread's AMX scratch (the most any AMX layer needs).
    pub amx_scratch: usize,
    /// Largest live set (bytes).
    pub arena_lower_bound: usize,
    /// What the passes did.
    pub passes: Vec<PassReport>,
    /// The target the cache tiles were chosen for.
    pub target: Target,
}

impl Program {
    /// Input elements.
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }
    /// Output elements.
    pub fn output_len(&self) -> usize {
        self.output_shape.iter().product()
    }
    /// Total MACs.
    pub fn macs(&self) -> u64 {
        self.layers.iter().map(|l| l.macs).sum()
    }
    /// Total parameters.
    pub fn params(&self) -> usize {
        self.layers.iter().map(|l| l.params).sum()
    }
    /// The banded step layer `i` belongs to, if any.
    pub fn band_of(&self, i: usize) -> Option<&Step> {
        self.steps
            .iter()
            .find(|s| matches!(s, Step::Banded { .. }) && s.layers().contains(&i))
    }
}

/// Whether a tensor's elements are in the same order in NCHW and NHWC
/// storage (at most one of channels and pixels is larger than 1).
fn same_order_in_nhwc(shape: &[usize]) -> bool {
    match *shape {
        [_, c, h, w] => c == 1 || h * w == 1,
        _ => true,
    }
}

/// A layer that changes the storage order of tensor `from` into `to` (each
/// with its shape as stored), for `why`.
pub(super) fn layout_layer(
    name: &str,
    kernel: Kernel,
    from: (TensorId, Vec<usize>),
    to: (TensorId, Vec<usize>),
    why: String,
) -> Layer {
    Layer {
        name: name.into(),
        op: "Transpose",
        fused: Vec::new(),
        kernel,
        inputs: vec![from.0],
        output: to.0,
        in_shape: from.1,
        out_shape: to.1,
        weights: None,
        bias: None,
        int: None,
        clamp: Clamp::NONE,
        residual: false,
        act: Activation::None,
        macs: 0,
        params: 0,
        why,
    }
}

/// Lowers an optimized graph (see [`crate::passes::optimize`]).
pub fn lower(g: &Graph, passes: Vec<PassReport>, target: &Target) -> Result<Program, Error> {
    let mut blob = pack::Blob::default();
    let mut layers = Vec::new();
    // A Reshape that keeps the NHWC storage order is a view: its output is
    // stored where its input is (`alias[t]` is the tensor that holds `t`).
    let mut alias: Vec<TensorId> = (0..g.tensors.len()).collect();
    // An NCHW float input read by anything but a convolution (which reads
    // it where it is): one first layer stores it channels-last, in a
    // tensor id past the graph's, and every reader reads that.
    let in_shape = &g.tensors[INPUT].shape;
    let input_layout = g.input.dtype == ElemType::F32
        && g.input.layout == Layout::Nchw
        && !same_order_in_nhwc(in_shape)
        && g.nodes.iter().any(|n| {
            n.inputs.iter().enumerate().any(|(k, &t)| {
                t == INPUT && !(k == 0 && matches!(n.op, Op::Conv(_) | Op::Quantize(_) | Op::DynQuantize))
            })
        });
    if input_layout {
        let (c, h, w) = (in_shape[1], in_shape[2], in_shape[3]);
        let reader = g
            .nodes
            .iter()
            .find(|n| n.inputs.contains(&INPUT) && !matches!(n.op, Op::Conv(_)))
            .map_or("a layer", |n| n.source.as_str());
        alias[INPUT] = g.tensors.len();
        layers.push(layout_layer(
            "(input layout)",
            Kernel::NchwToNhwc { pixels: h * w, c },
            (INPUT, vec![c, h, w]),
            (g.tensors.len(), vec![h, w, c]),
            format!("the model input is NCHW and a {reader} reads it; activations are stored NHWC"),
        ));
    }
    for n in &g.nodes {
        if let Some(layer) = select::layer(g, n, &mut alias, target, &mut blob)? {
            layers.push(layer);
        }
    }
    // A tensor quantized at run time carries its scale and zero point
    // after its values (`mncc_abi::quant::DYN_HEADER` bytes).
    let mut bytes: Vec<usize> = g
        .tensors
        .iter()
        .map(|t| {
            let dynamic = t.ty.quant.as_ref().is_some_and(crate::ir::Quant::is_dynamic);
            t.len() * t.ty.elem.size() + if dynamic { mncc_abi::quant::DYN_HEADER } else { 0 }
        })
        .collect();
    let mut tensor_types: Vec<ElemType> = g.tensors.iter().map(|t| t.ty.elem).collect();
    if input_layout {
        bytes.push(g.tensors[INPUT].len() * 4);
        tensor_types.push(ElemType::F32);
    }

    // Activations are stored channels-last; a `[1, c, h, w]` output with
    // more than one pixel and channel is NCHW for the caller (as ONNX and
    // the interpreter define it): one last layer writes it in that order,
    // into a tensor id past the graph's.
    let mut output = alias[g.output];
    let out_shape = &g.tensors[g.output].shape;
    let out_type = g.tensors[g.output].ty.elem;
    let nhwc_out = g.output_layout == Layout::Nhwc && out_shape.len() == 4;
    // A float16 output's cast layer writes the NCHW order itself.
    if !nhwc_out && !same_order_in_nhwc(out_shape) && output != INPUT && out_type != ElemType::F16 {
        if out_type != ElemType::F32 {
            return Err(Error::msg(format!(
                "the model output is a {out_type} feature map; only float32 feature maps are transposed to NCHW"
            )));
        }
        let (c, h, w) = (out_shape[1], out_shape[2], out_shape[3]);
        let last = bytes.len();
        bytes.push(c * h * w * 4);
        tensor_types.push(ElemType::F32);
        layers.push(layout_layer(
            "(output layout)",
            Kernel::NhwcToNchw { pixels: h * w, c },
            (output, vec![h, w, c]),
            (last, vec![c, h, w]),
            "the model output is NCHW; activations are stored NHWC".into(),
        ));
        output = last;
    }

    let steps = bands::steps(&layers, output, target);
    for s in &steps {
        if let Step::Banded { pointwise, shape, .. } = s {
            // The intermediate tensor: two threads' scratch of f32s.
            bytes[layers[*pointwise].output] = 2 * shape.scratch_len() * 4;
        }
    }
    let plan = storage::plan(&layers, &steps, &bytes, output)?;
    let mut input_shape = match (g.input.layout, g.tensors[INPUT].shape.as_slice()) {
        (Layout::Nhwc, &[n, c, h, w]) => vec![n, h, w, c],
        (_, s) => s.to_vec(),
    };
    let mut output_shape = match (nhwc_out, out_shape.as_slice()) {
        (true, &[n, c, h, w]) => vec![n, h, w, c],
        _ => out_shape.clone(),
    };
    // The batch's shapes: dim 0 counts the images (an output without a
    // leading 1, e.g. `[classes]`, gets one).
    if g.batch > 1 {
        for s in [&mut input_shape, &mut output_shape] {
            match s.first() {
                Some(1) => s[0] = g.batch,
                _ => s.insert(0, g.batch),
            }
        }
    }
    let blob = blob.into_bytes();
    crate::limits::check_bytes("the packed weights", blob.len(), crate::limits::MAX_WEIGHT_BYTES)
        .map_err(Error::msg)?;
    Ok(Program {
        name: g.name.clone(),
        description: g.description.clone(),
        input_type: g.input.dtype,
        input_layout: g.input.layout,
        input_shape,
        batch: g.batch,
        output_type: out_type,
        output_shape,
        output_layout: if nhwc_out { Layout::Nhwc } else { Layout::Nchw },
        layers,
        steps,
        storage: plan.storage,
        tensor_types,
        blob,
        arena_len: plan.arena_len,
        amx_at: plan.amx_at,
        amx_scratch: plan.amx_scratch,
        arena_lower_bound: plan.lower_bound,
        passes,
        target: *target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{ConvCfg, InputSpec, Op, Param};

    fn graph(dtype: ElemType, layout: Layout) -> Graph {
        Graph::new("t", "", InputSpec { dtype, layout }, vec![1, 4, 6, 6])
    }

    #[test]
    fn only_a_convolution_reads_a_raw_input() {
        // uint8 pixels: only a convolution reads them (as its main input).
        let (dtype, layout) = (ElemType::U8, Layout::Nhwc);
        let mut g = graph(dtype, layout);
        g.push("gap", Op::GlobalAvgPool, &[INPUT]).unwrap();
        let e = lower(&g, vec![], &Target::PORTABLE).unwrap_err().to_string();
        assert!(
            e.contains("node `gap`") && e.contains("only a convolution can read the model input"),
            "{e}"
        );
        let mut g = graph(dtype, layout);
        let mut cfg = ConvCfg::new(Param::new(vec![4, 4, 1, 1], vec![0.5; 16]), [1, 1], [0; 4], 1);
        cfg.residual = true;
        g.push("c", Op::Conv(cfg.clone()), &[INPUT, INPUT]).unwrap();
        let e = lower(&g, vec![], &Target::PORTABLE).unwrap_err().to_string();
        assert!(e.contains("node `c`"), "{e}");
        cfg.residual = false;
        for layout in [Layout::Nhwc, Layout::Nchw] {
            let mut g = graph(dtype, layout);
            g.push("c", Op::Conv(cfg.clone()), &[INPUT]).unwrap();
            let p = lower(&g, vec![], &Target::PORTABLE).unwrap();
            assert!(matches!(p.layers[0].kernel, Kernel::Conv2d { .. }));
        }
        // An NCHW float input: a convolution reads it where it is; anything
        // else after a first layer that stores it channels-last.
        let mut g = graph(ElemType::F32, Layout::Nchw);
        g.push("c", Op::Conv(cfg), &[INPUT]).unwrap();
        let p = lower(&g, vec![], &Target::PORTABLE).unwrap();
        assert!(matches!(p.layers[0].kernel, Kernel::Conv2d { .. }));
        let mut g = graph(ElemType::F32, Layout::Nchw);
        g.push("gap", Op::GlobalAvgPool, &[INPUT]).unwrap();
        let p = lower(&g, vec![], &Target::PORTABLE).unwrap();
        let kinds: Vec<String> = p.layers.iter().map(|l| l.kernel.name()).collect();
        assert_eq!(kinds, ["nchw_to_nhwc", "global_avg_pool"]);
        // Plain f32 NHWC input: anything may read it.
        let mut g = graph(ElemType::F32, Layout::Nhwc);
        g.push("gap", Op::GlobalAvgPool, &[INPUT]).unwrap();
        assert!(lower(&g, vec![], &Target::PORTABLE).is_ok());
    }
}
