//! Lowering: the optimized graph becomes a [`Program`], a list of kernel
//! calls with their schedules, packed weights and planned storage.
//!
//! # Kernel choice (per conv node)
//! * groups = channels: `simd::depthwise`;
//! * 1x1, stride 1, no padding, groups 1, reading an NHWC f32 tensor:
//!   `simd::pointwise`;
//! * any other groups-1 conv, and any conv reading the model input when that
//!   input is u8 or NCHW: `simd::conv2d` (im2col through the pointwise
//!   micro-kernel; it reads either layout and type and pads with the folded
//!   normalization's pad value).
//!
//! Dense layers are `simd::pointwise` with one pixel; pooling, softmax and
//! unfused adds have their own kernels. The `simd` kernels pick AVX-512,
//! AVX2, NEON or the portable path at run time; the register tiles are the
//! runtime's per instruction set, the cache tiles below are written into the
//! generated code.
//!
//! # Schedule rule (see [`Target`]; the default is [`Target::X86_64`])
//! * Weights of `pointwise` and `conv2d` are packed in panels of [`PANEL`]
//!   (16) output channels, the layout every instruction set reads.
//! * `pointwise`: `kc` = all input channels if the `MR x kc` block of input
//!   rows that one register tile row reuses across all output panels fits
//!   L1, else `in_c` split into the fewest equal blocks (a multiple of 8)
//!   that fit. The weight panel streams from L2 (the hardware prefetcher
//!   follows it), so it is not counted; every extra K-block costs a
//!   read-modify-write of the output. Measured on the MobileNet shapes
//!   (AVX-512, 48 KiB L1, `bench/kernels --compare`): kc = in_c (up to
//!   1024) is never slower than 128 or 256 and up to 15% faster; loop order
//!   `ChannelsOuter` when the weights are larger than the input activations
//!   (late layers: each weight panel is loaded once), else `PixelsOuter`
//!   (early layers: each input row once).
//! * `depthwise`: `rows` = the output rows whose input rows (`rows * stride
//!   + k - 1` rows of `in_w * c` floats) fit half of L1, at least 1.
//! * `conv2d`: no cache tiles to choose. The runtime takes a direct route
//!   for 3x3 kernels on 1 to 4 input channels (every MobileNet's first
//!   layer; one output row at a time) and otherwise blocks of output pixels
//!   whose im2col rows fit its 16 KiB stack buffer.
//! * Bands ([`fuse_bands`]): a pixels-outer `pointwise` layer whose output
//!   (at least a quarter of L2) only the next, depthwise, layer reads runs
//!   with it in bands of output rows (`simd::pointwise_depthwise`), so that
//!   tensor is never stored whole.

use crate::ir::{Activation, Clamp, DType, Graph, Layout, Op, TensorId, INPUT};
use crate::passes::PassReport;
use crate::plan::{self, Interval};
use mncc_abi::pack::{self, PANEL};
pub use mncc_abi::{amx, ConvShape, DepthwiseTiles, PointwiseShape, PointwiseTiles, PwDwShape, PwOrder, RegisterTiles};
use std::ops::Range;

/// What the schedule rule assumes of the CPU. The runtime picks the
/// instruction set at run time; the target fixes the cache tiles written
/// into the generated code (so builds are reproducible whatever the host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Name shown by `mncc inspect` and accepted by `--target`.
    pub name: &'static str,
    /// The register tiles of the instruction set the target's CPUs run
    /// (the runtime's, from `mncc_abi`).
    pub tiles: RegisterTiles,
    /// L1 data cache bytes.
    pub l1_bytes: usize,
    /// L2 cache bytes per core: a pointwise output from a quarter of this
    /// on is run in bands with the depthwise layer that reads it (see
    /// [`fuse_bands`]); 0 never fuses.
    pub l2_bytes: usize,
    /// Whether pointwise layers call `simd::pointwise_amx` (see
    /// [`use_amx`]), which runs them on the AMX-BF16 tiles where the CPU
    /// has them.
    pub amx: bool,
}

impl Target {
    /// x86-64 with AVX-512 (AVX2 and portable fallbacks chosen at run time):
    /// 16 lanes, 48 KiB L1, 2 MiB L2 (Sapphire Rapids and later Xeons),
    /// 12 x 32 pointwise tiles.
    pub const X86_64: Target = Target {
        name: "x86-64",
        tiles: RegisterTiles::AVX512,
        l1_bytes: 48 * 1024,
        l2_bytes: 2 * 1024 * 1024,
        amx: false,
    };
    /// [`Target::X86_64`] plus the AMX-BF16 tile unit (Sapphire Rapids and
    /// later Xeons, on Linux): pointwise layers chosen by [`use_amx`] run on
    /// the tiles at f32 accuracy (their weights split into bf16 planes at
    /// run time, in a scratch at the arena's end); on a CPU without AMX the
    /// same code runs on AVX-512 (or less).
    pub const X86_64_AMX: Target = Target {
        name: "x86-64-amx",
        amx: true,
        ..Target::X86_64
    };
    /// x86-64 with AVX2 at most: 8 lanes, 32 KiB L1, 1 MiB L2, 6 x 16 tiles.
    pub const X86_64_AVX2: Target = Target {
        name: "x86-64-avx2",
        tiles: RegisterTiles::AVX2,
        l1_bytes: 32 * 1024,
        l2_bytes: 1024 * 1024,
        amx: false,
    };
    /// aarch64 NEON: 4 lanes, 64 KiB L1, 1 MiB L2, 6 x 16 tiles.
    pub const AARCH64: Target = Target {
        name: "aarch64",
        tiles: RegisterTiles::NEON,
        l1_bytes: 64 * 1024,
        l2_bytes: 1024 * 1024,
        amx: false,
    };
    /// Anything else (Cortex-M, wasm): the portable path, 2 x 16 tiles, no
    /// banded layers (less code; a microcontroller has no cache to keep
    /// them in).
    pub const PORTABLE: Target = Target {
        name: "portable",
        tiles: RegisterTiles::PORTABLE,
        l1_bytes: 32 * 1024,
        l2_bytes: 0,
        amx: false,
    };
    /// All targets, for `--target`.
    pub const ALL: [Target; 5] = [
        Target::X86_64,
        Target::X86_64_AMX,
        Target::X86_64_AVX2,
        Target::AARCH64,
        Target::PORTABLE,
    ];

    /// The target for a Rust target triple (cargo's `TARGET` in a build
    /// script): `x86_64-*` [`Target::X86_64`], `aarch64-*`
    /// [`Target::AARCH64`], anything else (`thumbv7em-none-eabihf`,
    /// `wasm32-*`, `riscv32*`) [`Target::PORTABLE`].
    pub fn for_triple(triple: &str) -> Target {
        match triple.split('-').next().unwrap_or("") {
            "x86_64" => Target::X86_64,
            "aarch64" | "arm64" => Target::AARCH64,
            _ => Target::PORTABLE,
        }
    }

    /// The target named `name`.
    pub fn by_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name == name)
    }

    /// [`Target::by_name`], or an error listing the names.
    pub fn parse(name: &str) -> Result<Target, String> {
        Target::by_name(name).ok_or_else(|| {
            let names: Vec<&str> = Target::ALL.iter().map(|t| t.name).collect();
            format!("unknown target `{name}`: expected one of {}", names.join(", "))
        })
    }

    /// One line for reports: name, lanes, L1, L2, pointwise register tile.
    pub fn describe(&self) -> String {
        format!(
            "{} ({} f32 lanes, {} KiB L1, {} KiB L2, pointwise tile {}x{}{})",
            self.name,
            self.tiles.lanes,
            self.l1_bytes / 1024,
            self.l2_bytes / 1024,
            self.tiles.pw_mr,
            self.tiles.pw_nr,
            if self.amx {
                "; AMX tiles 32x32 for pointwise layers"
            } else {
                ""
            }
        )
    }
}

/// Where a tensor lives at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// The caller's input array.
    Input,
    /// The caller's output array.
    Output,
    /// `arena[range]`.
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
        input_type: DType,
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
    NhwcToNchw {
        /// Pixels.
        pixels: usize,
        /// Channels.
        c: usize,
    },
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
            Kernel::Softmax => "softmax".into(),
            Kernel::Add => "add".into(),
            Kernel::Map => "map".into(),
            Kernel::ScaleChannels { .. } => "scale_channels".into(),
            Kernel::NhwcToNchw { .. } => "nhwc_to_nchw".into(),
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
    /// Packed weights in the blob.
    pub weights: Option<Range<usize>>,
    /// Bias in the blob.
    pub bias: Option<Range<usize>>,
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
    /// A pointwise layer run in bands with the next layer, the depthwise
    /// layer that alone reads its output (see [`fuse_bands`]).
    pub band: Option<Band>,
}

/// How a pointwise layer runs in bands with the depthwise layer after it:
/// the pair's geometry and band height ([`PwDwShape::band`]); one thread's
/// scratch holds [`PwDwShape::scratch_rows`] rows, the planned tensor two
/// threads' [`PwDwShape::scratch_len`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    /// The pair, as the runtime takes it.
    pub shape: PwDwShape,
}

/// A model ready for code generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// Model name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Input element type and layout.
    pub input_type: DType,
    /// Input layout.
    pub input_layout: Layout,
    /// Input shape in the caller's layout.
    pub input_shape: Vec<usize>,
    /// Output shape.
    pub output_shape: Vec<usize>,
    /// Layers in execution order.
    pub layers: Vec<Layer>,
    /// Storage of each tensor id used by a layer.
    pub storage: Vec<Option<Storage>>,
    /// Weight blob (f32, each segment 16-aligned).
    pub blob: Vec<f32>,
    /// Arena elements: the planned tensors, then (from [`Program::amx_at`])
    /// the AMX layers' scratch.
    pub arena_len: usize,
    /// Where the AMX scratch starts in the arena: [`amx::PARTS`] parts of
    /// [`Program::amx_scratch`] elements, one per thread of the parallel
    /// mode, shared by every AMX layer (none: 0 elements).
    pub amx_at: usize,
    /// Elements of one thread's AMX scratch (the most any AMX layer needs).
    pub amx_scratch: usize,
    /// Largest live set (elements).
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
}

fn push_blob(blob: &mut Vec<f32>, data: &[f32]) -> Range<usize> {
    blob.resize(blob.len().div_ceil(plan::ALIGN) * plan::ALIGN, 0.0);
    let start = blob.len();
    blob.extend_from_slice(data);
    start..blob.len()
}

fn nhwc(shape: &[usize]) -> Vec<usize> {
    match *shape {
        [_, c, h, w] => vec![h, w, c],
        [_, k] => vec![k],
        _ => shape.to_vec(),
    }
}

fn rows_fitting(t: &Target, in_w: usize, c: usize, stride: usize, k: usize, out_h: usize) -> usize {
    let row_bytes = (in_w * c * 4).max(1);
    let budget_rows = (t.l1_bytes / 2) / row_bytes; // input rows that fit half of L1
    (budget_rows.saturating_sub(k.saturating_sub(1)) / stride).clamp(1, out_h.max(1))
}

/// Lowers an optimized graph (see [`crate::passes::optimize`]).
pub fn lower(g: &Graph, passes: Vec<PassReport>, target: &Target) -> Result<Program, String> {
    let mut blob = Vec::new();
    let mut layers = Vec::new();
    let input_is_plain = g.input.dtype == DType::F32 && g.input.layout == Layout::Nhwc;
    // A Reshape that keeps the NHWC storage order is a view: its output is
    // stored where its input is (`alias[t]` is the tensor that holds `t`).
    let mut alias: Vec<TensorId> = (0..g.tensors.len()).collect();
    for n in &g.nodes {
        let x = &g.tensors[n.inputs[0]].shape;
        let y = &g.tensors[n.output].shape;
        let at = |msg: String| format!("node `{}` ({}): {msg}", n.name, n.op.kind());
        if x.first() != Some(&1) {
            return Err(at(format!("batch size {} is not supported (only 1)", x[0])));
        }
        if let Op::Reshape(_) = n.op {
            if !(same_order_in_nhwc(x) && same_order_in_nhwc(y)) {
                return Err(at(format!(
                    "reshaping {x:?} to {y:?} reorders elements in channels-last storage; only a dense layer may read such a flatten"
                )));
            }
            alias[n.output] = alias[n.inputs[0]];
            continue;
        }
        let reads_input = alias[n.inputs[0]] == INPUT;
        // Every kernel but conv2d reads NHWC f32; only a convolution's main
        // input (lowered to conv2d when needed) may be a u8 or NCHW model input.
        let reads_raw_input = n
            .inputs
            .iter()
            .enumerate()
            .any(|(k, &t)| alias[t] == INPUT && (k > 0 || !matches!(n.op, Op::Conv(_))));
        if !input_is_plain && reads_raw_input {
            return Err(at(format!(
                "only a convolution can read the model input ({} {}) directly",
                g.input.dtype.rust_name(),
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
            clamp: Clamp::NONE,
            residual: false,
            act: Activation::None,
            macs: n.op.macs(y),
            params: n.op.params(),
            why: String::new(),
            band: None,
        };
        match &n.op {
            Op::Conv(c) => {
                let (ic, ih, iw) = (x[1], x[2], x[3]);
                let (oc, oh, ow) = (y[1], y[2], y[3]);
                let [kh, kw] = c.kernel();
                let w = &c.weight.data;
                let shape = ConvShape {
                    in_h: ih,
                    in_w: iw,
                    in_c: ic,
                    out_h: oh,
                    out_w: ow,
                    out_c: oc,
                    kernel_h: kh,
                    kernel_w: kw,
                    stride_h: c.stride[0],
                    stride_w: c.stride[1],
                    pad_top: c.pads[0],
                    pad_left: c.pads[1],
                };
                layer.clamp = c.clamp;
                layer.residual = c.residual;
                layer.act = c.act;
                if let Some(b) = &c.bias {
                    layer.bias = Some(push_blob(&mut blob, b));
                }
                let depthwise = c.groups > 1;
                let plain_in = !reads_input || input_is_plain;
                if depthwise {
                    if !plain_in || c.pad_value.is_some() {
                        return Err(at(
                            "a depthwise convolution cannot read a u8 or NCHW model input directly".into(),
                        ));
                    }
                    let mut packed = vec![0.0; kh * kw * oc];
                    for ch in 0..oc {
                        for k in 0..kh * kw {
                            packed[k * oc + ch] = w[ch * kh * kw + k];
                        }
                    }
                    layer.weights = Some(push_blob(&mut blob, &packed));
                    let rows = rows_fitting(target, iw, ic, c.stride[0], kh, oh);
                    layer.why = format!(
                        "{rows} output rows read {} input rows of {} floats, within half of L1",
                        rows * c.stride[0] + kh - 1,
                        iw * ic
                    );
                    layer.kernel = Kernel::Depthwise {
                        shape,
                        ct: target.tiles.lanes,
                        tiles: DepthwiseTiles { rows },
                    };
                } else if kh == 1
                    && kw == 1
                    && c.stride == [1, 1]
                    && c.pads == [0; 4]
                    && plain_in
                    && c.pad_value.is_none()
                {
                    let pixels = oh * ow;
                    let (mut kernel, packed, why) = pointwise(target, pixels, ic, oc, |o, i| w[o * ic + i]);
                    layer.weights = Some(push_blob(&mut blob, &packed));
                    layer.why = why;
                    if let Kernel::Pointwise { amx, shape, tiles, .. } = &mut kernel {
                        if use_amx(target, shape) {
                            *amx = true;
                            layer.why += &format!(
                                "; AMX tiles (bf16x6), {} scratch floats per thread",
                                amx::scratch_len(shape.pixels, ic, oc, tiles.order)
                            );
                        }
                    }
                    layer.kernel = kernel;
                } else {
                    // im2col row (k * ic + i) = tap k, input channel i.
                    let packed = pack_panels(kh * kw * ic, oc, |o, r| w[(o * ic + r % ic) * kh * kw + r / ic]);
                    layer.weights = Some(push_blob(&mut blob, &packed));
                    let nr = target.tiles.pw_nr;
                    let (input_type, layout) = if reads_input {
                        (g.input.dtype, g.input.layout)
                    } else {
                        (DType::F32, Layout::Nhwc)
                    };
                    let direct = target.tiles != RegisterTiles::PORTABLE && mncc_abi::conv2d_direct(&shape);
                    layer.why = if direct {
                        "direct route: each output row from a copy of its 3 input rows, broadcast-FMA register tiles of pixels x channels".into()
                    } else {
                        format!(
                            "im2col blocks of output pixels through the {}x{nr} pointwise micro-kernel",
                            target.tiles.pw_mr
                        )
                    };
                    layer.kernel = Kernel::Conv2d {
                        shape,
                        nr,
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
                layer.clamp = d.clamp;
                layer.act = d.act;
                // The input is stored NHWC; the weight columns are in NCHW flatten order.
                let (c, hw) = if x.len() == 4 { (x[1], x[2] * x[3]) } else { (k, 1) };
                let col = |kn: usize| (kn % c) * hw + kn / c; // NHWC index -> NCHW column
                let (kernel, packed, why) = pointwise(target, 1, k, out, |o, i| d.weight.data[o * k + col(i)]);
                layer.weights = Some(push_blob(&mut blob, &packed));
                if let Some(b) = &d.bias {
                    layer.bias = Some(push_blob(&mut blob, b));
                }
                layer.why = why;
                layer.kernel = kernel;
            }
            Op::GlobalAvgPool => {
                layer.kernel = Kernel::GlobalAvgPool {
                    pixels: x[2] * x[3],
                    c: x[1],
                };
            }
            Op::Softmax => layer.kernel = Kernel::Softmax,
            Op::Add => {
                layer.kernel = Kernel::Add;
            }
            Op::Clip(_) | Op::Activation(_) => {
                // An activation with no conv or dense layer before it.
                match &n.op {
                    Op::Clip(c) => layer.clamp = *c,
                    Op::Activation(a) => layer.act = *a,
                    _ => unreachable!(),
                }
                layer.kernel = Kernel::Map;
            }
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
            Op::Reshape(_) => unreachable!("reshapes are views, handled above"),
            Op::Normalize(_) | Op::BatchNorm(_) => {
                return Err(at(
                    "could not be folded into a preceding or following convolution".into()
                ));
            }
        }
        layers.push(layer);
    }

    let mut tensor_lens: Vec<usize> = g.tensors.iter().map(|t| t.len()).collect();
    fuse_bands(&mut layers, &mut tensor_lens, alias[g.output], target);

    // Activations are stored channels-last; a `[1, c, h, w]` output with
    // more than one pixel and channel is NCHW for the caller (as ONNX and
    // the interpreter define it): one last layer writes it in that order,
    // into a tensor id past the graph's.
    let mut output = alias[g.output];
    let out_shape = &g.tensors[g.output].shape;
    if !same_order_in_nhwc(out_shape) && output != INPUT {
        let (c, h, w) = (out_shape[1], out_shape[2], out_shape[3]);
        let last = tensor_lens.len();
        tensor_lens.push(c * h * w);
        layers.push(Layer {
            name: "(output layout)".into(),
            op: "Transpose",
            fused: Vec::new(),
            kernel: Kernel::NhwcToNchw { pixels: h * w, c },
            inputs: vec![output],
            output: last,
            in_shape: vec![h, w, c],
            out_shape: vec![c, h, w],
            weights: None,
            bias: None,
            clamp: Clamp::NONE,
            residual: false,
            act: Activation::None,
            macs: 0,
            params: 0,
            why: "the model output is NCHW; activations are stored NHWC".into(),
            band: None,
        });
        output = last;
    }

    // Storage: input and output are the caller's; the rest is planned.
    let mut storage: Vec<Option<Storage>> = vec![None; tensor_lens.len()];
    storage[INPUT] = Some(Storage::Input);
    if output == INPUT {
        return Err("the model output is its input: nothing to compute".into());
    }
    storage[output] = Some(Storage::Output);
    let mut ids = Vec::new();
    let mut intervals = Vec::new();
    for (step, l) in layers.iter().enumerate() {
        if l.output == output {
            if step + 1 != layers.len() || layers.iter().any(|m| m.inputs.contains(&output)) {
                return Err(format!(
                    "node `{}`: the model output is read by another node, which is not supported",
                    l.name
                ));
            }
            continue;
        }
        // A banded pointwise layer still reads its input while the
        // depthwise layer after it writes (one step later).
        let last = layers
            .iter()
            .enumerate()
            .filter(|(_, m)| m.inputs.contains(&l.output))
            .map(|(k, m)| k + usize::from(m.band.is_some()))
            .max()
            .unwrap_or(step);
        ids.push(l.output);
        intervals.push(Interval {
            len: tensor_lens[l.output],
            first: step,
            last,
        });
    }
    let p = plan::plan(&intervals);
    for (k, &id) in ids.iter().enumerate() {
        storage[id] = Some(Storage::Arena(p.offsets[k]..p.offsets[k] + intervals[k].len));
    }
    // The AMX scratch: after the planned tensors, one part per thread.
    let amx_scratch = layers
        .iter()
        .filter_map(|l| match &l.kernel {
            Kernel::Pointwise {
                shape,
                tiles,
                amx: true,
                ..
            } => Some(amx::scratch_len(shape.pixels, shape.in_c, shape.out_c, tiles.order)),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let amx_at = p.arena_len.div_ceil(plan::ALIGN) * plan::ALIGN;
    let arena_len = if amx_scratch > 0 {
        amx_at + amx::PARTS * amx_scratch
    } else {
        p.arena_len
    };
    let input_shape = match (g.input.layout, g.tensors[INPUT].shape.as_slice()) {
        (Layout::Nhwc, &[n, c, h, w]) => vec![n, h, w, c],
        (_, s) => s.to_vec(),
    };
    Ok(Program {
        name: g.name.clone(),
        description: g.description.clone(),
        input_type: g.input.dtype,
        input_layout: g.input.layout,
        input_shape,
        output_shape: g.tensors[g.output].shape.clone(),
        layers,
        storage,
        blob,
        arena_len,
        amx_at,
        amx_scratch,
        arena_lower_bound: p.lower_bound,
        passes,
        target: *target,
    })
}

/// Pairs a pointwise layer with the depthwise layer after it when the
/// pointwise output (the depthwise input) is large, so the pair runs in
/// bands of rows (`mncc_runtime::simd::pointwise_depthwise`) and that
/// tensor is never stored whole: its rows are consumed from L2, not
/// written out to L3 or memory and read back. The cost model:
///
/// * fuse when the intermediate tensor is at least a quarter of L2
///   (`target.l2_bytes`: 512 KiB on x86-64, which takes v1 1.0 224's five
///   largest, 112x112x64 to 28x28x256, and v2's expansions down to
///   28x28x192), where the layers before and after evict it from L2 on
///   its way between the two layers. Measured (whole models, both
///   compilers in one process, one thread): at 1/4 v1 1.0 224 0.970, v2
///   1.0 224 0.942, v2 0.35 128 0.990, v1 0.75 192 0.983; at 1/2 0.980,
///   0.957, 0.996, 0.986; at 1/8 the 128-pixel models were 1.4-3.6%
///   slower (their 256-512 KiB tensors stay in L2 anyway, and bands only
///   add calls);
/// * only pixels-outer pointwise layers (their weights are read once per
///   row tile anyway, so cutting the pixels into bands costs nothing; a
///   channels-outer layer would stream its weights once per band), with no
///   residual on either layer, and the depthwise layer the only reader;
/// * a band is as many depthwise output rows as keep one thread's scratch
///   (the pointwise rows the band's windows read) within a quarter of L2
///   and half the tensor's rows; the planned scratch holds two, one per
///   thread of the parallel mode, so the arena does not grow (v1 1.0 224:
///   4.59 -> 3.28 MiB, v2 1.0 224: 5.74 -> 3.06 MiB).
///
/// The scratch replaces the intermediate tensor (`tensor_lens`), and the
/// pointwise input stays live through the depthwise step (see the plan).
fn fuse_bands(layers: &mut [Layer], tensor_lens: &mut [usize], output: TensorId, t: &Target) {
    if t.l2_bytes == 0 {
        return;
    }
    for i in 0..layers.len().saturating_sub(1) {
        let (a, b) = (&layers[i], &layers[i + 1]);
        let (Kernel::Pointwise { shape: pw, tiles, .. }, Kernel::Depthwise { shape: dw, .. }) = (&a.kernel, &b.kernel)
        else {
            continue;
        };
        let mid = a.output;
        let readers = layers.iter().filter(|l| l.inputs.contains(&mid)).count();
        let fits = pw.pixels > 1
            && tiles.order == PwOrder::PixelsOuter
            && !a.residual
            && !b.residual
            && b.inputs[0] == mid
            && readers == 1
            && mid != output
            && pw.pixels == dw.in_h * dw.in_w
            && pw.out_c == dw.in_c;
        let bytes = tensor_lens[mid] * 4;
        if !fits || bytes < t.l2_bytes / 4 {
            continue;
        }
        let row_bytes = dw.in_w * dw.in_c * 4;
        let budget_rows = (t.l2_bytes / 4 / row_bytes).max(dw.kernel_h);
        // Both threads' scratch within the tensor it replaces, where it can be.
        let half_rows = (dw.in_h / 2).max(dw.kernel_h);
        let rows = ((budget_rows.min(half_rows) - dw.kernel_h) / dw.stride_h + 1).clamp(1, dw.out_h);
        let Kernel::Depthwise { tiles: dw_tiles, .. } = b.kernel else {
            unreachable!("matched above")
        };
        let shape = PwDwShape {
            pw: *pw,
            pw_tiles: *tiles,
            dw: *dw,
            dw_tiles,
            band: rows,
        };
        tensor_lens[mid] = 2 * shape.scratch_len();
        layers[i].band = Some(Band { shape });
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

/// Packs the `[k][n]` matrix `w(o, i)` (column `o`, row `i`) in panels of
/// [`PANEL`] columns: `packed[(p * k + i) * PANEL + j] = w(p * PANEL + j, i)`,
/// zero past `n` (the layout of `mncc_runtime::simd::pointwise`).
fn pack_panels(k: usize, n: usize, w: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let panels = n.div_ceil(PANEL);
    let mut packed = vec![0.0; pack::panels_len(k, n, PANEL)];
    for p in 0..panels {
        for i in 0..k {
            for j in 0..PANEL {
                let o = p * PANEL + j;
                if o < n {
                    packed[(p * k + i) * PANEL + j] = w(o, i);
                }
            }
        }
    }
    packed
}

/// Schedules and packs a pointwise layer; `w(o, i)` is the weight from input
/// channel `i` (in the stored order) to output `o`.
fn pointwise(
    t: &Target,
    pixels: usize,
    in_c: usize,
    out_c: usize,
    w: impl Fn(usize, usize) -> f32,
) -> (Kernel, Vec<f32>, String) {
    let nr = t.tiles.pw_nr;
    let mr = if pixels == 1 { 1 } else { t.tiles.pw_mr };
    let budget = t.l1_bytes / (4 * mr); // input channels whose MR x kc block of input rows fits L1
    let kc = if in_c <= budget {
        in_c
    } else {
        let blocks = in_c.div_ceil(budget.max(8));
        (in_c.div_ceil(blocks)).div_ceil(8) * 8
    };
    let weight_bytes = in_c * out_c * 4;
    let act_bytes = pixels * in_c * 4;
    let order = if weight_bytes > act_bytes {
        PwOrder::ChannelsOuter
    } else {
        PwOrder::PixelsOuter
    };
    let why = format!(
        "kc={kc}: a {mr}x{kc} block of input rows fits L1 (NR={nr}); {} ({} KiB weights vs {} KiB input)",
        if order == PwOrder::ChannelsOuter {
            "channels-outer"
        } else {
            "pixels-outer"
        },
        weight_bytes / 1024,
        act_bytes / 1024
    );
    let packed = pack_panels(in_c, out_c, w);
    let kernel = Kernel::Pointwise {
        shape: PointwiseShape { pixels, in_c, out_c },
        mr,
        nr,
        tiles: PointwiseTiles { kc, order },
        amx: false,
    };
    (kernel, packed, why)
}

/// Pointwise layers with fewer pixels stay on AVX-512 on an AMX target:
/// the tiles gain nothing there (see [`use_amx`]).
pub const AMX_MIN_PIXELS: usize = 64;

/// Pointwise layers with fewer input or output channels stay on AVX-512 on
/// an AMX target (see [`use_amx`]).
pub const AMX_MIN_CHANNELS: usize = 32;

/// Whether a pointwise layer runs on the AMX tiles on target `t`: at least
/// [`AMX_MIN_PIXELS`] pixels and [`AMX_MIN_CHANNELS`] input and output
/// channels. A tile product covers 32 input channels of 32 pixels by 16
/// output channels, and every pixel costs vector work (splitting its
/// inputs, the epilogue) the AVX-512 kernel does not have; narrower
/// layers waste most of the tiles. Measured in whole models (`mncc bench
/// --layers`, AMX / AVX-512 time per layer): v1 1.0 224's 112x112x32->64
/// to 14x14x512->512 0.52-0.70, its 7x7 layers (49 pixels) 0.95-0.96 (both
/// on AVX-512: noise); v2 1.0 224's 28x28x32->192 0.77-0.89, 14x14 layers
/// 0.63-0.88, but 112x112x32->16 1.30, 112x112x16->96 1.10, 56x56x144->24
/// 1.08, 56x56x24->144 0.99-1.06; v2 0.35 128's 16x16x48->16 2.33,
/// 16x16x96->16 1.28, 8x8x32->192 0.70-0.72, 8x8x144->32 1.03.
/// The first AMX layer of an inference also pays the tiles' warm-up
/// (about 5 us after the classifier and the layers before ran without
/// them: v2 0.35 128's first AMX layer 0.0079-0.0090 ms against 0.0042-0.0047
/// for the same work later); v2 0.35 128, whose AMX layers are 2.2M MACs,
/// runs the same on either target (whole model alternated, 0.998), and
/// the models with more AMX work gain (v1 0.25 128, 8.4M MACs: 0.89).
pub fn use_amx(t: &Target, s: &PointwiseShape) -> bool {
    t.amx && s.pixels >= AMX_MIN_PIXELS && s.in_c >= AMX_MIN_CHANNELS && s.out_c >= AMX_MIN_CHANNELS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{ConvCfg, InputSpec, Param};

    fn graph(dtype: DType, layout: Layout) -> Graph {
        Graph::new("t", "", InputSpec { dtype, layout }, vec![1, 4, 6, 6])
    }

    #[test]
    fn target_for_a_triple() {
        assert_eq!(Target::for_triple("x86_64-unknown-linux-gnu"), Target::X86_64);
        assert_eq!(Target::for_triple("aarch64-apple-darwin"), Target::AARCH64);
        for t in [
            "thumbv7em-none-eabihf",
            "wasm32-unknown-unknown",
            "riscv32imc-unknown-none-elf",
            "",
        ] {
            assert_eq!(Target::for_triple(t), Target::PORTABLE, "{t}");
        }
    }

    #[test]
    fn only_a_convolution_reads_a_raw_input() {
        for (dtype, layout) in [(DType::U8, Layout::Nhwc), (DType::F32, Layout::Nchw)] {
            let mut g = graph(dtype, layout);
            g.push("gap", Op::GlobalAvgPool, &[INPUT]).unwrap();
            let e = lower(&g, vec![], &Target::PORTABLE).unwrap_err();
            assert!(
                e.contains("node `gap`") && e.contains("only a convolution can read the model input"),
                "{e}"
            );

            // A conv may read it as its main input, not as its residual.
            let mut g = graph(dtype, layout);
            let mut cfg = ConvCfg::new(Param::new(vec![4, 4, 1, 1], vec![0.5; 16]), [1, 1], [0; 4], 1);
            cfg.residual = true;
            g.push("c", Op::Conv(cfg.clone()), &[INPUT, INPUT]).unwrap();
            let e = lower(&g, vec![], &Target::PORTABLE).unwrap_err();
            assert!(e.contains("node `c`"), "{e}");
            cfg.residual = false;
            let mut g = graph(dtype, layout);
            g.push("c", Op::Conv(cfg), &[INPUT]).unwrap();
            let p = lower(&g, vec![], &Target::PORTABLE).unwrap();
            assert!(matches!(p.layers[0].kernel, Kernel::Conv2d { .. }));
        }
        // Plain f32 NHWC input: anything may read it.
        let mut g = graph(DType::F32, Layout::Nhwc);
        g.push("gap", Op::GlobalAvgPool, &[INPUT]).unwrap();
        assert!(lower(&g, vec![], &Target::PORTABLE).is_ok());
    }
}
