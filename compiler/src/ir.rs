//! The typed graph IR.
//!
//! A [`Graph`] is a list of [`Node`]s in topological order over tensors
//! numbered by [`TensorId`]. Tensor 0 is the model input. Every node has one
//! output. Shapes are logical NCHW (`[n, c, h, w]`, or `[n, c]` after a dense
//! layer) whatever the layout the generated code uses; constant tensors
//! (weights) live inside the op configs.
//!
//! Invariants (checked by [`Graph::verify`], run after every pass):
//! * every input of a node is the graph input or the output of an earlier node;
//! * every tensor but the input has exactly one producer;
//! * the recorded shape and type (element type, quantization) of every
//!   tensor equal those inferred from its producer and that producer's
//!   inputs;
//! * every op config is consistent with its input shapes (weights, bias, BN
//!   and normalization vectors of the right lengths, non-zero strides, ...).

pub use mncc_abi::{Activation, ElemType, Layout};
use std::fmt;

/// Index of a tensor in [`Graph::tensors`].
pub type TensorId = usize;

/// The model input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputSpec {
    /// Element type.
    pub dtype: ElemType,
    /// Layout of the caller's buffer.
    pub layout: Layout,
}

/// Quantization of a tensor or parameter of integers: the real value of
/// element `q` is `(q - zero_point) * scale`, with one scale and zero point
/// for the whole tensor, or one per index along `axis` (per output
/// channel).
#[derive(Clone, Debug, PartialEq)]
pub struct Quant {
    /// Scales: one, or one per index along `axis`.
    pub scale: Vec<f32>,
    /// Zero points, as many as scales.
    pub zero_point: Vec<i32>,
    /// The axis of per-channel quantization; `None` per tensor.
    pub axis: Option<usize>,
}

impl Quant {
    /// One scale and zero point for the whole tensor.
    pub fn per_tensor(scale: f32, zero_point: i32) -> Quant {
        Quant {
            scale: vec![scale],
            zero_point: vec![zero_point],
            axis: None,
        }
    }

    /// Scale and zero point computed at run time, from each input's range
    /// (ONNX DynamicQuantizeLinear: [`Op::DynQuantize`]'s output).
    pub fn dynamic() -> Quant {
        Quant {
            scale: Vec::new(),
            zero_point: Vec::new(),
            axis: None,
        }
    }

    /// Whether the parameters are computed at run time ([`Quant::dynamic`]).
    pub fn is_dynamic(&self) -> bool {
        self.scale.is_empty()
    }

    /// The scale and zero point of element `i` of a tensor of `shape`.
    pub fn params_at(&self, shape: &[usize], i: usize) -> (f32, i32) {
        match self.axis {
            None => (self.scale[0], self.zero_point[0]),
            Some(a) => {
                let inner: usize = shape[a + 1..].iter().product();
                let k = (i / inner.max(1)) % shape[a].max(1);
                (self.scale[k], self.zero_point[k])
            }
        }
    }

    /// Checks the parameters against a tensor of `shape` holding `elem`s.
    pub fn check(&self, shape: &[usize], elem: ElemType) -> Result<(), String> {
        if !elem.is_integer() {
            return Err(format!("a quantized tensor holds integers, not {elem}"));
        }
        let want = match self.axis {
            None => 1,
            Some(a) => *shape
                .get(a)
                .ok_or_else(|| format!("quantization axis {a} is out of range for shape {shape:?}"))?,
        };
        if self.scale.len() != want || self.zero_point.len() != want {
            return Err(format!(
                "{} scales and {} zero points for {want} quantization groups",
                self.scale.len(),
                self.zero_point.len()
            ));
        }
        if let Some(s) = self.scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!("quantization scale {s} is not a positive finite number"));
        }
        Ok(())
    }
}

impl fmt::Display for Quant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.axis {
            None if self.is_dynamic() => write!(f, "scale and zero point computed at run time"),
            None => write!(f, "scale {} zero point {}", self.scale[0], self.zero_point[0]),
            Some(a) => write!(f, "{} scales along axis {a}", self.scale.len()),
        }
    }
}

/// The values of a parameter, in its element type.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 16-bit floats, as their bits.
    F16(Vec<u16>),
    /// Signed bytes.
    I8(Vec<i8>),
    /// Unsigned bytes.
    U8(Vec<u8>),
    /// 32-bit integers.
    I32(Vec<i32>),
}

impl Values {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F16(v) => v.len(),
            Values::I8(v) => v.len(),
            Values::U8(v) => v.len(),
            Values::I32(v) => v.len(),
        }
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Their element type.
    pub fn elem(&self) -> ElemType {
        match self {
            Values::F32(_) => ElemType::F32,
            Values::F16(_) => ElemType::F16,
            Values::I8(_) => ElemType::I8,
            Values::U8(_) => ElemType::U8,
            Values::I32(_) => ElemType::I32,
        }
    }
    /// Value `i` as `f64` (exact; an `f16` is widened).
    pub fn get_f64(&self, i: usize) -> f64 {
        match self {
            Values::F32(v) => v[i] as f64,
            Values::F16(v) => f16_to_f64(v[i]),
            Values::I8(v) => v[i] as f64,
            Values::U8(v) => v[i] as f64,
            Values::I32(v) => v[i] as f64,
        }
    }
}

/// The value of IEEE binary16 bits `h`, exactly.
pub fn f16_to_f64(h: u16) -> f64 {
    let sign = if h >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// A constant tensor (weights), row-major in its `shape`, in its element
/// type, quantized or not.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub values: Values,
    /// For integer values, what they stand for.
    pub quant: Option<Quant>,
}

impl Param {
    /// A float parameter of the given shape and values.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Param {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Param {
            shape,
            values: Values::F32(data),
            quant: None,
        }
    }
    /// The element type.
    pub fn elem(&self) -> ElemType {
        self.values.elem()
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// The values, if they are unquantized `f32`s.
    pub fn f32(&self) -> Option<&[f32]> {
        match (&self.values, &self.quant) {
            (Values::F32(v), None) => Some(v),
            _ => None,
        }
    }
    /// [`Param::f32`], mutable.
    pub fn f32_mut(&mut self) -> Option<&mut Vec<f32>> {
        match (&mut self.values, &self.quant) {
            (Values::F32(v), None) => Some(v),
            _ => None,
        }
    }
    /// The real value of element `i`: when quantized, what ONNX
    /// DequantizeLinear makes of it, `(q - zero_point) as f32 * scale` in
    /// `f32`.
    pub fn real(&self, i: usize) -> f64 {
        let v = self.values.get_f64(i);
        match &self.quant {
            None => v,
            Some(q) => {
                let (s, z) = q.params_at(&self.shape, i);
                ((v as i64 - z as i64) as f32 * s) as f64
            }
        }
    }

    /// The values as `f32`: themselves, or dequantized ([`Param::real`]).
    pub fn to_f32(&self) -> std::borrow::Cow<'_, [f32]> {
        match self.f32() {
            Some(v) => std::borrow::Cow::Borrowed(v),
            None => std::borrow::Cow::Owned((0..self.len()).map(|i| self.real(i) as f32).collect()),
        }
    }

    /// Checks that a float layer can read the values as reals: `f32`, or
    /// integers with their quantization (dequantized: a QDQ model's
    /// weights); `what` names the parameter.
    pub fn expect_real(&self, what: &str) -> Result<(), String> {
        match (&self.values, &self.quant) {
            (Values::F32(_), None) | (Values::F16(_), None) => Ok(()),
            (Values::I8(_) | Values::U8(_) | Values::I32(_), Some(q)) => {
                q.check(&self.shape, self.elem()).map_err(|e| format!("{what}: {e}"))
            }
            _ => Err(format!(
                "{what} is {} without quantization: a float layer needs real weights",
                self.elem()
            )),
        }
    }
}

/// The element type of a tensor and, for integers standing for reals, its
/// quantization.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorType {
    /// Element type.
    pub elem: ElemType,
    /// Quantization (integer tensors only).
    pub quant: Option<Quant>,
}

impl TensorType {
    /// Unquantized `f32`.
    pub const F32: TensorType = TensorType {
        elem: ElemType::F32,
        quant: None,
    };

    /// An unquantized tensor of `elem`s.
    pub fn plain(elem: ElemType) -> TensorType {
        TensorType { elem, quant: None }
    }

    /// Its 8-bit per-tensor quantization (`int8`/`uint8` with one scale
    /// and zero point), if it is one: what integer layers read.
    pub fn qtype(&self) -> Option<QType> {
        let q = self.quant.as_ref().filter(|q| q.axis.is_none())?;
        let (&scale, &zero_point) = (q.scale.first()?, q.zero_point.first()?);
        matches!(self.elem, ElemType::I8 | ElemType::U8).then_some(QType {
            elem: self.elem,
            scale,
            zero_point,
        })
    }

    /// Whether float layers can read it as real numbers: unquantized
    /// `f32`, or unquantized `u8` (raw pixels, exact integers).
    pub fn is_real(&self) -> bool {
        self.quant.is_none() && matches!(self.elem, ElemType::F32 | ElemType::U8)
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.quant {
            None => write!(f, "{}", self.elem),
            Some(q) => write!(f, "{} ({q})", self.elem),
        }
    }
}

/// Output clamp applied after bias (and residual): `min = 0` is ReLU,
/// `[0, 6]` ReLU6, infinite bounds no activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clamp {
    /// Lower bound.
    pub min: f32,
    /// Upper bound.
    pub max: f32,
}

impl Clamp {
    /// No clamping.
    pub const NONE: Clamp = Clamp {
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    };
    /// ReLU.
    pub const RELU: Clamp = Clamp {
        min: 0.0,
        max: f32::INFINITY,
    };
    /// ReLU6.
    pub const RELU6: Clamp = Clamp { min: 0.0, max: 6.0 };

    /// Whether this clamp does nothing.
    pub fn is_none(&self) -> bool {
        *self == Clamp::NONE
    }

    /// Applies `self` then `then` (the tighter of the two).
    pub fn then(&self, then: Clamp) -> Clamp {
        Clamp {
            min: self.min.max(then.min).min(then.max),
            max: self.max.min(then.max).max(then.min),
        }
    }

    /// Human name: `relu`, `relu6`, `none` or `clamp[a,b]`.
    pub fn describe(&self) -> String {
        if self.is_none() {
            "none".into()
        } else if *self == Clamp::RELU {
            "relu".into()
        } else if *self == Clamp::RELU6 {
            "relu6".into()
        } else {
            format!("clamp[{}, {}]", self.min, self.max)
        }
    }
}

/// A 2-D convolution and its fused epilogue.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvCfg {
    /// `[out_c, in_c / groups, kh, kw]`.
    pub weight: Param,
    /// One per output channel.
    pub bias: Option<Vec<f32>>,
    /// `[vertical, horizontal]`.
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// 1 (full) or `in_c` (depthwise); other values are rejected by the verifier.
    pub groups: usize,
    /// Value that reads outside the input see, per input channel (set when an
    /// input normalization was folded into this conv); `None` is zeros.
    pub pad_value: Option<Vec<f32>>,
    /// Epilogue clamp.
    pub clamp: Clamp,
    /// If true the node has a second input, added before the clamp.
    pub residual: bool,
    /// Epilogue activation, after the clamp.
    pub act: Activation,
    /// The `int32` values `bias` was dequantized from (a QDQ model's
    /// bias), kept for the integer layer the QDQ group becomes
    /// (onnxruntime's fused kernel adds them as they are).
    pub qbias: Option<Vec<i32>>,
}

impl ConvCfg {
    /// A plain conv (no bias, no epilogue).
    pub fn new(weight: Param, stride: [usize; 2], pads: [usize; 4], groups: usize) -> ConvCfg {
        ConvCfg {
            weight,
            bias: None,
            stride,
            pads,
            groups,
            pad_value: None,
            clamp: Clamp::NONE,
            residual: false,
            act: Activation::None,
            qbias: None,
        }
    }
    /// Output channels.
    pub fn out_c(&self) -> usize {
        self.weight.shape[0]
    }
    /// The weight's dims `[out_c, in_c / groups, kh, kw]` (a 4-D weight is a
    /// verifier invariant).
    pub fn dims(&self) -> [usize; 4] {
        let w = &self.weight.shape;
        [w[0], w[1], w[2], w[3]]
    }
    /// `[kh, kw]`.
    pub fn kernel(&self) -> [usize; 2] {
        [self.weight.shape[2], self.weight.shape[3]]
    }
}

/// Inference-mode BatchNorm: `(x - mean) / sqrt(var + eps) * gamma + beta`.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormCfg {
    /// Scale.
    pub gamma: Vec<f32>,
    /// Shift.
    pub beta: Vec<f32>,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
    /// Epsilon.
    pub eps: f32,
}

/// A fully connected layer on the flattened input: `[n, k] -> [n, out]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseCfg {
    /// `[out, k]` where `k` is the product of the input's non-batch dims
    /// (flattened in NCHW order).
    pub weight: Param,
    /// One per output.
    pub bias: Option<Vec<f32>>,
    /// Epilogue clamp.
    pub clamp: Clamp,
    /// Epilogue activation, after the clamp.
    pub act: Activation,
    /// As [`ConvCfg::qbias`].
    pub qbias: Option<Vec<i32>>,
}

impl DenseCfg {
    /// A dense layer with no epilogue activation.
    pub fn new(weight: Param, bias: Option<Vec<f32>>) -> DenseCfg {
        DenseCfg {
            weight,
            bias,
            clamp: Clamp::NONE,
            act: Activation::None,
            qbias: None,
        }
    }
}

/// Per-channel affine input normalization `x * scale[c] + offset[c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizeCfg {
    /// Multiplier per channel.
    pub scale: Vec<f32>,
    /// Addend per channel.
    pub offset: Vec<f32>,
}

/// An 8-bit integer type standing for reals, one scale and zero point for
/// the whole tensor: what ONNX QuantizeLinear writes, what the integer
/// layers read and write. Real values become integers as
/// `saturate(round_half_even(x / scale) + zero_point)`, the division in
/// `f32` (QuantizeLinear); integers stand for `(q - zero_point) * scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QType {
    /// The integer type (`I8` or `U8`).
    pub elem: ElemType,
    /// Scale.
    pub scale: f32,
    /// Zero point, in `elem`'s range.
    pub zero_point: i32,
}

impl QType {
    /// The tensor type: `elem`, quantized per tensor.
    pub fn tensor_type(&self) -> TensorType {
        TensorType {
            elem: self.elem,
            quant: Some(Quant::per_tensor(self.scale, self.zero_point)),
        }
    }

    /// The range of `elem`.
    pub fn range(&self) -> (i32, i32) {
        int_range(self.elem)
    }

    /// Checks the type, the scale and the zero point.
    pub fn check(&self) -> Result<(), String> {
        if !matches!(self.elem, ElemType::I8 | ElemType::U8) {
            return Err(format!("quantizes to {}; int8 and uint8 are supported", self.elem));
        }
        Quant::per_tensor(self.scale, self.zero_point).check(&[], self.elem)?;
        let (lo, hi) = self.range();
        if !(lo..=hi).contains(&self.zero_point) {
            return Err(format!(
                "zero point {} is outside the range of {}",
                self.zero_point, self.elem
            ));
        }
        Ok(())
    }
}

/// The range of an integer element type (`I8`, `U8`, `I32`).
pub fn int_range(elem: ElemType) -> (i32, i32) {
    match elem {
        ElemType::I8 => (i8::MIN as i32, i8::MAX as i32),
        ElemType::U8 => (0, u8::MAX as i32),
        _ => (i32::MIN, i32::MAX),
    }
}

/// What an integer convolution or dense layer writes from its `i32` sums.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IntOut {
    /// The sums requantized to an 8-bit type (QLinearConv, QLinearMatMul):
    /// see [`requantize`].
    Requant(QType),
    /// The `i32` sums themselves (ConvInteger, MatMulInteger).
    Int32,
}

impl IntOut {
    /// The output tensor's type.
    pub fn tensor_type(&self) -> TensorType {
        match self {
            IntOut::Requant(q) => q.tensor_type(),
            IntOut::Int32 => TensorType::plain(ElemType::I32),
        }
    }
}

/// The `f32` multiplier that takes an integer layer's `i32` sum to its
/// output's integer scale: `input_scale * weight_scale / output_scale`,
/// in that order, each step in `f32` (onnxruntime's QLinearConv and
/// QLinearMatMul compute it so, once per output channel).
pub fn requant_multiplier(input_scale: f32, weight_scale: f32, output_scale: f32) -> f32 {
    input_scale * weight_scale / output_scale
}

/// An integer convolution: `acc[o] = bias[o] + sum (x - x_zero_point) *
/// (w - w_zero_point[o])` exactly in `i32` over the window (reads outside
/// the input see `x_zero_point`, the real value 0), then [`IntOut`]. The
/// input's quantization comes from its tensor type.
#[derive(Clone, Debug, PartialEq)]
pub struct QConvCfg {
    /// `[out_c, in_c / groups, kh, kw]`, `I8` or `U8`, quantized per tensor
    /// or per output channel (axis 0).
    pub weight: Param,
    /// One `i32` per output channel, in units of `input_scale *
    /// weight_scale[o]`.
    pub bias: Option<Vec<i32>>,
    /// `[vertical, horizontal]`.
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// 1 (full) or `in_c` (depthwise).
    pub groups: usize,
    /// What it writes.
    pub out: IntOut,
}

impl QConvCfg {
    /// The weight's dims `[out_c, in_c / groups, kh, kw]`.
    pub fn dims(&self) -> [usize; 4] {
        let w = &self.weight.shape;
        [w[0], w[1], w[2], w[3]]
    }
}

/// An integer dense layer on the flattened input: `[n, k] -> [n, out]`,
/// sums as [`QConvCfg`]'s.
#[derive(Clone, Debug, PartialEq)]
pub struct QDenseCfg {
    /// `[out, k]` (`k` in NCHW flatten order), `I8` or `U8`, quantized per
    /// tensor or per output (axis 0).
    pub weight: Param,
    /// One `i32` per output.
    pub bias: Option<Vec<i32>>,
    /// What it writes.
    pub out: IntOut,
}

/// The weight of an integer layer: its zero point per output channel and
/// its values less their zero point, exactly (`w - w_zero_point[o]`, in
/// `-255..=255`), row-major as the weight; `per_out` is the number of
/// values per output channel. `None` unless `I8`/`U8` quantized per tensor
/// or along axis 0.
pub fn centered_weight(w: &Param) -> Option<Vec<i32>> {
    let q = w.quant.as_ref()?;
    if !matches!(w.elem(), ElemType::I8 | ElemType::U8) || q.axis.is_some_and(|a| a != 0) {
        return None;
    }
    Some(
        (0..w.len())
            .map(|i| w.values.get_f64(i) as i32 - q.params_at(&w.shape, i).1)
            .collect(),
    )
}

/// onnxruntime's QLinearAdd (com.microsoft): `y = saturate(round(
/// a_real + b_real) in y's scale)`, computed as [`qadd`]. The second
/// operand is a computed tensor or, with `rhs`, a constant broadcast over
/// the batch (a bias after QLinearMatMul).
#[derive(Clone, Debug, PartialEq)]
pub struct QAddCfg {
    /// A constant second operand, `I8` or `U8` quantized per tensor, of the
    /// input's shape without its batch dim; `None`: the node's second input.
    pub rhs: Option<Param>,
    /// The output type.
    pub out: QType,
}

/// An elementwise function of an 8-bit tensor quantized per tensor, as
/// onnxruntime computes it (a `DequantizeLinear`, float functions and a
/// `QuantizeLinear`, one `f32` rounding each, or the table of a
/// QLinearSigmoid or QLinearLeakyRelu): with 256 possible inputs, exact as
/// a table built at compile time ([`QTableCfg::table`]).
#[derive(Clone, Debug, PartialEq)]
pub struct QTableCfg {
    /// The float functions between the dequantization and the
    /// quantization, in order.
    pub steps: Vec<TableStep>,
    /// The output type.
    pub out: QType,
}

/// A float function of a [`QTableCfg`], as onnxruntime 1.32 computes it on
/// x86-64 (checked bit for bit against its float operators on 65,536
/// random values each).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TableStep {
    /// Clip (and Relu): `min(max(x, min), max)`.
    Clip(Clamp),
    /// HardSigmoid: `clamp(alpha * x + beta, 0, 1)`, the product and the
    /// sum each rounded.
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// LeakyRelu (QLinearLeakyRelu's table): `x >= 0 ? x : alpha * x`.
    LeakyRelu {
        /// Slope below zero.
        alpha: f32,
    },
    /// The logistic function as MLAS computes it ([`mncc_abi::logistic`]):
    /// QLinearSigmoid's table, and onnxruntime's float Sigmoid.
    Logistic,
}

impl TableStep {
    /// The function of `x`, in `f32`.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            TableStep::Clip(c) => mncc_abi::clamp(x, c.min, c.max),
            TableStep::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            TableStep::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            TableStep::Logistic => mncc_abi::logistic(x),
        }
    }

    /// `clip(0, 6)`, `hardsigmoid(0.2, 0.5)`, `leakyrelu(0.01)`, `logistic`.
    pub fn describe(self) -> String {
        match self {
            TableStep::Clip(c) => format!("clip({}, {})", c.min, c.max),
            TableStep::HardSigmoid { alpha, beta } => format!("hardsigmoid({alpha}, {beta})"),
            TableStep::LeakyRelu { alpha } => format!("leakyrelu({alpha})"),
            TableStep::Logistic => "logistic".into(),
        }
    }

    /// The constants that are not finite ([`Op::non_finite`]).
    fn non_finite(self) -> Option<String> {
        let (what, v) = match self {
            TableStep::Clip(c) if c.min.is_nan() || c.max.is_nan() => {
                return Some(format!("the clamp [{}, {}] has a NaN bound", c.min, c.max))
            }
            TableStep::HardSigmoid { alpha, .. } if !alpha.is_finite() => ("alpha", alpha),
            TableStep::HardSigmoid { beta, .. } if !beta.is_finite() => ("beta", beta),
            TableStep::LeakyRelu { alpha } if !alpha.is_finite() => ("alpha", alpha),
            _ => return None,
        };
        Some(format!("{what} is {v}, not a finite number"))
    }
}

impl QTableCfg {
    /// The real value of `x` through the steps.
    pub fn real(&self, x: f32) -> f32 {
        self.steps.iter().fold(x, |v, s| s.apply(v))
    }

    /// The output of every input value of type `xq`, indexed by its byte
    /// (a `u8` as it is, an `i8` as its two's-complement byte):
    /// dequantized (`(x - zero_point) as f32 * scale`), through the steps,
    /// quantized as onnxruntime does ([`mncc_abi::quant::quantize`]).
    pub fn table(&self, xq: &QType) -> [i32; 256] {
        let (lo, hi) = self.out.range();
        let mut t = [0; 256];
        for (byte, o) in t.iter_mut().enumerate() {
            let x = if xq.elem == ElemType::I8 {
                byte as u8 as i8 as i32
            } else {
                byte as i32
            };
            let real = (x - xq.zero_point) as f32 * xq.scale;
            *o = mncc_abi::quant::quantize(self.real(real), self.out.scale, self.out.zero_point, lo, hi);
        }
        t
    }
}

/// The table of onnxruntime's QLinearSoftmax (`QlinearBuildLookupTableUint32`
/// in `qlinear_softmax.cc`, with `f32` entries as in 1.32) for an input of
/// scale `x_scale` and rows of `d` values: entry `i` is `exp((i - 255 +
/// shift) * x_scale)` computed in `f64` and rounded to `f32`, with `shift
/// = max(0, ln(f32::MAX / d) - 5) / x_scale`, the logarithm of the `f32`
/// quotient taken in `f32` precision (onnxruntime's `log` of a `float`;
/// its `f64` logarithm rounded to `f32` agrees), the rest in `f64`. The
/// largest value of a row reads entry 255, so that the sum of a row stays
/// finite for any `d`.
pub fn softmax_table(x_scale: f32, d: usize) -> [f32; 256] {
    let q = f32::MAX / d as f32;
    let ln = (q as f64).ln() as f32 as f64;
    let shift = (ln - 5.0).max(0.0) / x_scale as f64;
    let mut t = [0f32; 256];
    for (i, e) in t.iter_mut().enumerate() {
        *e = ((i as f64 - 255.0 + shift) * x_scale as f64).exp() as f32;
    }
    t
}

/// A max pool's window: `kernel` (`[h, w]`), `stride`, `pads` (`[top,
/// left, bottom, right]`, each smaller than the kernel: every window holds
/// a pixel of the input), and the output size rounded up (`ceil`, ONNX
/// `ceil_mode`; a last window starting in the bottom or right padding is
/// dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolCfg {
    /// Window `[h, w]`.
    pub kernel: [usize; 2],
    /// Stride `[h, w]`.
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// ONNX `ceil_mode`.
    pub ceil: bool,
}

impl PoolCfg {
    /// The output size along one axis of `size` input pixels (axis 0: height).
    pub fn out(&self, axis: usize, size: usize) -> Result<usize, String> {
        let (k, s) = (self.kernel[axis], self.stride[axis]);
        let (before, after) = (self.pads[axis], self.pads[axis + 2]);
        if before >= k || after >= k {
            return Err(format!(
                "pads {:?} must be smaller than the window {:?}",
                self.pads, self.kernel
            ));
        }
        let span = size + before + after;
        if span < k {
            return Err(format!("the window {:?} is larger than the padded input", self.kernel));
        }
        let mut out = if self.ceil {
            (span - k).div_ceil(s) + 1
        } else {
            (span - k) / s + 1
        };
        if self.ceil && (out - 1) * s >= size + before {
            out -= 1;
        }
        Ok(out)
    }
}

/// The integer layer of a [`DynQCfg`].
#[derive(Clone, Debug, PartialEq)]
pub enum DynInt {
    /// ConvInteger.
    Conv(QConvCfg),
    /// MatMulInteger.
    Dense(QDenseCfg),
}

/// A layer on a tensor quantized at run time ([`Op::DynQuantize`]), as
/// onnxruntime's `quantize_dynamic` writes it: the exact `i32` sums of a
/// ConvInteger or MatMulInteger (`int`, its `out` [`IntOut::Int32`], no
/// integer bias), then in `f32`, one rounding each: `acc as f32 *
/// (x_scale * w_scale[o])` (Cast, then Mul by the Mul of the two scales),
/// `+ bias[o]` (Add), clamped (Clip). Real in, real out.
#[derive(Clone, Debug, PartialEq)]
pub struct DynQCfg {
    /// The integer layer; its weight's quantization holds the weight
    /// scale (from the scales' Mul) and zero point (from the layer).
    pub int: DynInt,
    /// Added after the scaling, one per output channel.
    pub bias: Option<Vec<f32>>,
    /// Applied last.
    pub clamp: Clamp,
}

impl DynQCfg {
    /// The integer layer's weight.
    pub fn weight(&self) -> &Param {
        match &self.int {
            DynInt::Conv(c) => &c.weight,
            DynInt::Dense(d) => &d.weight,
        }
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight().shape[0]
    }

    /// Products per output value.
    pub fn k(&self) -> usize {
        match &self.int {
            DynInt::Conv(c) => {
                let [_, icg, kh, kw] = c.dims();
                icg * kh * kw
            }
            DynInt::Dense(d) => d.weight.shape[1],
        }
    }

    /// The weight scale of output channel `o`.
    pub fn weight_scale(&self, o: usize) -> f32 {
        let q = self.weight().quant.as_ref().expect("the verifier checked the weight");
        q.scale[if q.axis.is_some() { o } else { 0 }]
    }
}

/// An operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Input normalization (folded into the first conv by a pass).
    Normalize(NormalizeCfg),
    /// Convolution with epilogue.
    Conv(ConvCfg),
    /// BatchNorm (folded into the conv before it by a pass).
    BatchNorm(BatchNormCfg),
    /// `clamp(x, min, max)`: ReLU, ReLU6 (fused into the conv before it).
    Clip(Clamp),
    /// Elementwise sum of two tensors of the same shape.
    Add,
    /// Mean over the spatial dims: `[n, c, h, w] -> [n, c, 1, 1]`.
    GlobalAvgPool,
    /// The largest value of each window, per channel, of a float or
    /// quantized tensor (max commutes with quantization).
    MaxPool(PoolCfg),
    /// Fully connected layer.
    Dense(DenseCfg),
    /// Softmax over the last dim of `[n, k]`.
    Softmax,
    /// A standalone activation (fused into the conv or dense layer before it by a pass).
    Activation(Activation),
    /// The logistic function, elementwise, as onnxruntime computes it
    /// ([`mncc_abi::logistic`]).
    Sigmoid,
    /// A float16 model's input to float32 (`Cast(F32)`, exact) or float32
    /// to its float16 output (`Cast(F16)`, to the nearest half, ties to
    /// even). The layers between compute in float32.
    Cast(ElemType),
    /// `x * s` where `s` has `x`'s shape or is `[n, c, 1, 1]` (broadcast over
    /// pixels: squeeze-and-excitation).
    Mul,
    /// Same elements, new shape (NCHW order): Flatten, Reshape, Squeeze,
    /// Unsqueeze. Lowered to nothing when the NHWC storage order is the same.
    Reshape(Vec<usize>),
    /// Real values to a quantized integer tensor.
    Quantize(QType),
    /// A quantized integer tensor to its real values (`f32`): `(q -
    /// zero_point) as f32 * scale`, with the input type's quantization.
    Dequantize,
    /// Integer convolution (QLinearConv, ConvInteger).
    QConv(QConvCfg),
    /// Integer dense layer (QLinearMatMul, MatMulInteger).
    QDense(QDenseCfg),
    /// Sum of two quantized tensors, requantized (QLinearAdd).
    QAdd(QAddCfg),
    /// Mean over the spatial dims of a quantized tensor, requantized
    /// (QLinearGlobalAveragePool).
    QGlobalAvgPool(QType),
    /// Reals to `uint8` with a scale and zero point computed from the
    /// tensor's range at run time (DynamicQuantizeLinear; its output type
    /// is [`Quant::dynamic`], read only by [`Op::DynQLayer`]).
    DynQuantize,
    /// A layer on a tensor quantized at run time ([`DynQCfg`]).
    DynQLayer(DynQCfg),
    /// Product of two quantized tensors, requantized (QLinearMul); the
    /// second has the first's shape or is `[n, c, 1, 1]` (scaling
    /// channels).
    QMul(QType),
    /// An elementwise function of a quantized tensor, as a table.
    QTable(QTableCfg),
    /// Softmax over the last dim of a quantized `[n, k]` (QLinearSoftmax).
    QSoftmax(QType),
    /// Mean over the spatial dims of a quantized tensor computed in float
    /// (`DequantizeLinear -> ReduceMean -> QuantizeLinear`, which
    /// onnxruntime leaves unfused), or QLinearAveragePool over the whole
    /// image (`pool`: its rounding): [`mncc_abi::quant::QMean`].
    QMean {
        /// The output type.
        out: QType,
        /// QLinearAveragePool's rounding.
        pool: bool,
    },
}

impl Op {
    /// Short name, as shown by `mncc inspect` and in errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Normalize(_) => "Normalize",
            Op::Conv(_) => "Conv",
            Op::BatchNorm(_) => "BatchNorm",
            Op::Clip(_) => "Clip",
            Op::Add => "Add",
            Op::GlobalAvgPool => "GlobalAvgPool",
            Op::MaxPool(_) => "MaxPool",
            Op::Dense(_) => "Dense",
            Op::Softmax => "Softmax",
            Op::Reshape(_) => "Reshape",
            Op::Activation(_) => "Activation",
            Op::Mul => "Mul",
            Op::Sigmoid => "Sigmoid",
            Op::Cast(_) => "Cast",
            Op::Quantize(_) => "Quantize",
            Op::Dequantize => "Dequantize",
            Op::QConv(_) => "QConv",
            Op::QDense(_) => "QDense",
            Op::QAdd(_) => "QAdd",
            Op::QGlobalAvgPool(_) => "QGlobalAvgPool",
            Op::DynQuantize => "DynQuantize",
            Op::DynQLayer(DynQCfg {
                int: DynInt::Conv(_), ..
            }) => "DynQConv",
            Op::DynQLayer(_) => "DynQDense",
            Op::QMul(_) => "QMul",
            Op::QTable(_) => "QTable",
            Op::QSoftmax(_) => "QSoftmax",
            Op::QMean { .. } => "QMean",
        }
    }

    /// Number of tensor inputs this op takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Add | Op::Mul | Op::QMul(_) => 2,
            Op::Conv(c) if c.residual => 2,
            Op::QAdd(a) if a.rhs.is_none() => 2,
            _ => 1,
        }
    }

    /// Parameters (weights and biases, BN statistics) held by this op.
    pub fn params(&self) -> usize {
        match self {
            Op::Conv(c) => c.weight.len() + c.bias.as_ref().map_or(0, Vec::len),
            Op::Dense(d) => d.weight.len() + d.bias.as_ref().map_or(0, Vec::len),
            Op::BatchNorm(b) => 4 * b.gamma.len(),
            Op::Normalize(n) => 2 * n.scale.len(),
            Op::QConv(c) => c.weight.len() + c.bias.as_ref().map_or(0, Vec::len),
            Op::QDense(d) => d.weight.len() + d.bias.as_ref().map_or(0, Vec::len),
            Op::QAdd(a) => a.rhs.as_ref().map_or(0, Param::len),
            Op::DynQLayer(d) => d.weight().len() + d.bias.as_ref().map_or(0, Vec::len),
            _ => 0,
        }
    }

    /// Infers the output shape from the input shapes, checking the config.
    // Negated comparisons on purpose: they also reject NaN.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn infer(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        if inputs.len() != self.arity() {
            return Err(format!("takes {} input(s), has {}", self.arity(), inputs.len()));
        }
        let x = inputs[0];
        let per_channel = |what: &str, len: usize, c: usize| -> Result<(), String> {
            if len == c {
                Ok(())
            } else {
                Err(format!("{what} has {len} values for {c} channels"))
            }
        };
        match self {
            Op::Normalize(n) => {
                let c = channels(x)?;
                per_channel("scale", n.scale.len(), c)?;
                per_channel("offset", n.offset.len(), c)?;
                Ok(x.to_vec())
            }
            Op::Conv(cfg) => {
                if let Some(b) = &cfg.bias {
                    per_channel("bias", b.len(), cfg.weight.shape.first().copied().unwrap_or(0))?;
                }
                if let Some(p) = &cfg.pad_value {
                    per_channel("pad_value", p.len(), x.get(1).copied().unwrap_or(0))?;
                }
                let out = conv_out(x, &cfg.weight.shape, cfg.stride, cfg.pads, cfg.groups)?;
                if cfg.residual && inputs[1] != out.as_slice() {
                    return Err(format!(
                        "residual input {:?} does not match the output {out:?}",
                        inputs[1]
                    ));
                }
                Ok(out)
            }
            Op::QConv(cfg) => {
                if let Some(b) = &cfg.bias {
                    per_channel("bias", b.len(), cfg.weight.shape.first().copied().unwrap_or(0))?;
                }
                conv_out(x, &cfg.weight.shape, cfg.stride, cfg.pads, cfg.groups)
            }
            Op::BatchNorm(b) => {
                let c = channels(x)?;
                for (name, v) in [
                    ("gamma", &b.gamma),
                    ("beta", &b.beta),
                    ("mean", &b.mean),
                    ("var", &b.var),
                ] {
                    per_channel(name, v.len(), c)?;
                }
                if let Some(i) = b.var.iter().position(|&v| !(v + b.eps > 0.0)) {
                    return Err(format!("var[{i}] + eps = {} is not positive", b.var[i] + b.eps));
                }
                Ok(x.to_vec())
            }
            Op::Clip(c) => {
                if !(c.min <= c.max) {
                    return Err(format!("min {} > max {}", c.min, c.max));
                }
                Ok(x.to_vec())
            }
            Op::Add => {
                if inputs[0] != inputs[1] {
                    return Err(format!("shapes {:?} and {:?} differ", inputs[0], inputs[1]));
                }
                Ok(x.to_vec())
            }
            Op::GlobalAvgPool => {
                let [n, c, _, _] = nchw(x)?;
                Ok(vec![n, c, 1, 1])
            }
            Op::MaxPool(p) => {
                let [n, c, h, w] = nchw(x)?;
                Ok(vec![n, c, p.out(0, h)?, p.out(1, w)?])
            }
            Op::Activation(_) | Op::Sigmoid | Op::Cast(_) => Ok(x.to_vec()),
            Op::Mul | Op::QMul(_) => {
                let s = inputs[1];
                let broadcast = x.len() == 4 && s.len() == 4 && s[0] == x[0] && s[1] == x[1] && s[2] == 1 && s[3] == 1;
                if s != x && !broadcast {
                    return Err(format!(
                        "cannot multiply {x:?} by {s:?} (same shape or [n, c, 1, 1] expected)"
                    ));
                }
                Ok(x.to_vec())
            }
            Op::Dense(d) => {
                let out = dense_out(x, &d.weight.shape)?;
                if let Some(b) = &d.bias {
                    per_channel("bias", b.len(), out[1])?;
                }
                Ok(out)
            }
            Op::QDense(d) => {
                let out = dense_out(x, &d.weight.shape)?;
                if let Some(b) = &d.bias {
                    per_channel("bias", b.len(), out[1])?;
                }
                Ok(out)
            }
            Op::QAdd(a) => {
                match &a.rhs {
                    None if inputs[0] != inputs[1] => {
                        return Err(format!("shapes {:?} and {:?} differ", inputs[0], inputs[1]));
                    }
                    Some(p) if p.shape.as_slice() != &x[1.min(x.len())..] => {
                        return Err(format!(
                            "the constant addend {:?} does not match the input {x:?} without its batch dim",
                            p.shape
                        ));
                    }
                    _ => {}
                }
                Ok(x.to_vec())
            }
            Op::QTable(_) => Ok(x.to_vec()),
            Op::QMean { .. } => {
                let [n, c, _, _] = nchw(x)?;
                Ok(vec![n, c, 1, 1])
            }
            Op::QSoftmax(_) => {
                if x.len() != 2 {
                    return Err(format!("input must be [n, k], is {x:?}"));
                }
                Ok(x.to_vec())
            }
            Op::QGlobalAvgPool(_) => {
                let [n, c, h, w] = nchw(x)?;
                // onnxruntime's limit; it also keeps the i32 sum exact.
                if h * w >= 1 << 24 {
                    return Err(format!("{h}x{w} pixels are too many to average (at most 2^24 - 1)"));
                }
                Ok(vec![n, c, 1, 1])
            }
            Op::Softmax => {
                if x.len() != 2 {
                    return Err(format!("input must be [n, k], is {x:?}"));
                }
                Ok(x.to_vec())
            }
            Op::Reshape(shape) => {
                let (a, b) = (x.iter().product::<usize>(), shape.iter().product::<usize>());
                if a != b {
                    return Err(format!(
                        "cannot reshape {x:?} ({a} elements) into {shape:?} ({b} elements)"
                    ));
                }
                Ok(shape.clone())
            }
            Op::Quantize(_) | Op::Dequantize | Op::DynQuantize => Ok(x.to_vec()),
            Op::DynQLayer(d) => {
                if let Some(b) = &d.bias {
                    per_channel("bias", b.len(), d.out_channels())?;
                }
                match &d.int {
                    DynInt::Conv(c) => conv_out(x, &c.weight.shape, c.stride, c.pads, c.groups),
                    DynInt::Dense(dd) => dense_out(x, &dd.weight.shape),
                }
            }
        }
    }

    /// Infers the output's element type and quantization from the
    /// inputs', checking that the op can read them: float ops read real
    /// tensors ([`TensorType::is_real`]) and hold float32 weights, a
    /// Reshape keeps its input's type, Quantize reads reals, Dequantize a
    /// quantized tensor.
    pub fn infer_type(&self, inputs: &[&TensorType]) -> Result<TensorType, String> {
        if inputs.len() != self.arity() {
            return Err(format!("takes {} input(s), has {}", self.arity(), inputs.len()));
        }
        let real = |k: usize| -> Result<(), String> {
            let t = inputs[k];
            if t.is_real() {
                Ok(())
            } else {
                Err(format!(
                    "input {k} is {t}; a float operation reads float32 (or raw uint8 pixels)"
                ))
            }
        };
        match self {
            Op::Cast(to) => match (inputs[0].quant.as_ref(), inputs[0].elem, to) {
                (None, ElemType::F16, ElemType::F32) | (None, ElemType::F32, ElemType::F16) => {
                    Ok(TensorType::plain(*to))
                }
                _ => Err(format!(
                    "a cast of {} to {to}: only float16 to float32 and back are supported",
                    inputs[0]
                )),
            },
            Op::Reshape(_) => Ok(inputs[0].clone()),
            Op::MaxPool(_) => {
                let t = inputs[0];
                if t.is_real() || t.qtype().is_some() {
                    Ok(t.clone())
                } else {
                    Err(format!(
                        "input 0 is {t}; a max pool reads float32 or 8-bit per-tensor quantized values"
                    ))
                }
            }
            Op::Quantize(q) => {
                real(0)?;
                q.check()?;
                Ok(q.tensor_type())
            }
            Op::Dequantize => match &inputs[0].quant {
                Some(q) if q.is_dynamic() => Err("dequantizing a tensor quantized at run time is not supported".into()),
                Some(q) if q.axis.is_none() => Ok(TensorType::F32),
                Some(_) => Err("dequantizing per channel is not supported (per tensor is)".into()),
                None => Err(format!("input 0 is {}, not a quantized tensor", inputs[0])),
            },
            Op::QConv(c) => {
                let x = quantized8(inputs[0], 0)?;
                let [_, icg, kh, kw] = c.dims();
                check_int_layer(x, &c.weight, c.bias.as_deref(), icg * kh * kw)?;
                out_type(&c.out)
            }
            Op::QDense(d) => {
                let x = quantized8(inputs[0], 0)?;
                check_int_layer(x, &d.weight, d.bias.as_deref(), d.weight.shape[1])?;
                out_type(&d.out)
            }
            Op::QAdd(a) => {
                quantized8(inputs[0], 0)?;
                match &a.rhs {
                    None => {
                        quantized8(inputs[1], 1)?;
                    }
                    Some(p) => {
                        let t = TensorType {
                            elem: p.elem(),
                            quant: p.quant.clone(),
                        };
                        quantized8(&t, 1).map_err(|e| format!("the constant addend: {e}"))?;
                    }
                }
                a.out.check()?;
                Ok(a.out.tensor_type())
            }
            Op::QGlobalAvgPool(q) | Op::QSoftmax(q) | Op::QMean { out: q, .. } => {
                quantized8(inputs[0], 0)?;
                q.check()?;
                Ok(q.tensor_type())
            }
            Op::QMul(q) => {
                quantized8(inputs[0], 0)?;
                quantized8(inputs[1], 1)?;
                q.check()?;
                Ok(q.tensor_type())
            }
            Op::QTable(t) => {
                quantized8(inputs[0], 0)?;
                t.out.check()?;
                Ok(t.out.tensor_type())
            }
            Op::DynQuantize => {
                real(0)?;
                Ok(TensorType {
                    elem: ElemType::U8,
                    quant: Some(Quant::dynamic()),
                })
            }
            Op::DynQLayer(d) => {
                let t = inputs[0];
                if !(t.elem == ElemType::U8 && t.quant.as_ref().is_some_and(Quant::is_dynamic)) {
                    return Err(format!(
                        "input 0 is {t}; a layer on a dynamically quantized input reads the uint8 output of a DynamicQuantizeLinear"
                    ));
                }
                // Any uint8 zero point: |x - x_zp| <= 255.
                let x = QType {
                    elem: ElemType::U8,
                    scale: 1.0,
                    zero_point: 0,
                };
                check_int_layer(x, d.weight(), None, d.k())?;
                Ok(TensorType::F32)
            }
            _ => {
                for k in 0..inputs.len() {
                    real(k)?;
                }
                match self {
                    Op::Conv(c) => {
                        c.weight.expect_real("the weight")?;
                    }
                    Op::Dense(d) => {
                        d.weight.expect_real("the weight")?;
                    }
                    _ => {}
                }
                Ok(TensorType::F32)
            }
        }
    }

    /// The constants of this op that are not finite (NaN, or infinite
    /// where only a finite value means something), one line each: what,
    /// how many, and the first index. Clamp bounds may be infinite (no
    /// bound), never NaN. Nothing non-finite may reach the generated code.
    pub fn non_finite(&self) -> Vec<String> {
        fn scan(out: &mut Vec<String>, what: &str, n: usize, get: impl Fn(usize) -> f64) {
            let (mut nan, mut inf, mut first) = (0usize, 0usize, None);
            for i in 0..n {
                let v = get(i);
                if v.is_nan() {
                    nan += 1;
                } else if v.is_infinite() {
                    inf += 1;
                } else {
                    continue;
                }
                first.get_or_insert(i);
            }
            if let Some(i) = first {
                let at = if n > 1 {
                    format!(" (the first at index {i})")
                } else {
                    String::new()
                };
                out.push(match (nan, inf) {
                    (0, k) => format!("{what} has {k} infinite value(s){at}"),
                    (k, 0) => format!("{what} has {k} NaN value(s){at}"),
                    (a, b) => format!("{what} has {a} NaN and {b} infinite value(s){at}"),
                });
            }
        }
        fn floats(out: &mut Vec<String>, what: &str, v: &[f32]) {
            scan(out, what, v.len(), |i| v[i] as f64);
        }
        fn param(out: &mut Vec<String>, what: &str, p: &Param) {
            scan(out, what, p.len(), |i| p.real(i));
        }
        fn clamp(out: &mut Vec<String>, c: &Clamp) {
            if c.min.is_nan() || c.max.is_nan() {
                out.push(format!("the clamp [{}, {}] has a NaN bound", c.min, c.max));
            }
        }
        fn act(out: &mut Vec<String>, a: &Activation) {
            if let Activation::HardSigmoid { alpha, beta } = a {
                floats(out, "alpha", &[*alpha]);
                floats(out, "beta", &[*beta]);
            }
        }
        let mut out = Vec::new();
        match self {
            Op::Normalize(c) => {
                floats(&mut out, "the scale", &c.scale);
                floats(&mut out, "the offset", &c.offset);
            }
            Op::Conv(c) => {
                param(&mut out, "the weight", &c.weight);
                floats(&mut out, "the bias", c.bias.as_deref().unwrap_or(&[]));
                floats(&mut out, "the pad value", c.pad_value.as_deref().unwrap_or(&[]));
                clamp(&mut out, &c.clamp);
                act(&mut out, &c.act);
            }
            Op::BatchNorm(c) => {
                floats(&mut out, "the scale", &c.gamma);
                floats(&mut out, "the bias", &c.beta);
                floats(&mut out, "the mean", &c.mean);
                floats(&mut out, "the variance", &c.var);
                floats(&mut out, "epsilon", &[c.eps]);
            }
            Op::Clip(c) => clamp(&mut out, c),
            Op::Dense(d) => {
                param(&mut out, "the weight", &d.weight);
                floats(&mut out, "the bias", d.bias.as_deref().unwrap_or(&[]));
                clamp(&mut out, &d.clamp);
                act(&mut out, &d.act);
            }
            Op::Activation(a) => act(&mut out, a),
            Op::QTable(t) => {
                out.extend(t.steps.iter().filter_map(|s| s.non_finite()));
                let q = &t.out;
                if !(q.scale.is_finite() && q.scale > 0.0) {
                    out.push(format!("the scale {} is not a positive finite number", q.scale));
                }
            }
            Op::Quantize(q)
            | Op::QGlobalAvgPool(q)
            | Op::QMul(q)
            | Op::QSoftmax(q)
            | Op::QMean { out: q, .. }
            | Op::QAdd(QAddCfg { out: q, .. }) => {
                if !(q.scale.is_finite() && q.scale > 0.0) {
                    out.push(format!("the scale {} is not a positive finite number", q.scale));
                }
            }
            Op::QConv(QConvCfg { weight, out: o, .. }) | Op::QDense(QDenseCfg { weight, out: o, .. }) => {
                param(&mut out, "the weight", weight);
                if let IntOut::Requant(q) = o {
                    if !(q.scale.is_finite() && q.scale > 0.0) {
                        out.push(format!("the output scale {} is not a positive finite number", q.scale));
                    }
                }
            }
            Op::DynQLayer(d) => {
                param(&mut out, "the weight", d.weight());
                floats(&mut out, "the bias", d.bias.as_deref().unwrap_or(&[]));
                clamp(&mut out, &d.clamp);
            }
            Op::Add
            | Op::GlobalAvgPool
            | Op::Softmax
            | Op::Mul
            | Op::Sigmoid
            | Op::Cast(_)
            | Op::MaxPool(_)
            | Op::Reshape(_)
            | Op::Dequantize
            | Op::DynQuantize => {}
        }
        out
    }

    /// Multiply-accumulates for one run, given the output shape.
    pub fn macs(&self, out: &[usize]) -> u64 {
        let n: usize = out.iter().product();
        match self {
            Op::Conv(ConvCfg { weight, .. }) | Op::QConv(QConvCfg { weight, .. }) => {
                let ws = &weight.shape;
                (n * ws[1] * ws[2] * ws[3]) as u64
            }
            Op::Dense(DenseCfg { weight, .. }) | Op::QDense(QDenseCfg { weight, .. }) => (n * weight.shape[1]) as u64,
            Op::DynQLayer(d) => (n * d.k()) as u64,
            _ => 0,
        }
    }
}

/// The channels of an NCHW `[n, c, h, w]` or a `[n, c]` tensor (a
/// per-channel op's input: an affine or BatchNorm after a dense layer).
fn channels(x: &[usize]) -> Result<usize, String> {
    match *x {
        [_, c] | [_, c, _, _] => Ok(c),
        _ => Err(format!("input must be [n, c, h, w] or [n, c], is {x:?}")),
    }
}

/// The output shape `[n, out]` of a dense layer on `x` (flattened) with a
/// weight of shape `ws` (`[out, k]`), checking the features.
fn dense_out(x: &[usize], ws: &[usize]) -> Result<Vec<usize>, String> {
    if x.len() < 2 {
        return Err(format!("input must have a batch dim and features, is {x:?}"));
    }
    let k: usize = x[1..].iter().product();
    if ws.len() != 2 || ws[1] != k {
        return Err(format!(
            "weight {ws:?} does not fit {k} input features (expected [out, {k}])"
        ));
    }
    Ok(vec![x[0], ws[0]])
}

/// `t` as an 8-bit tensor quantized per tensor (input `k` of an integer op).
fn quantized8(t: &TensorType, k: usize) -> Result<QType, String> {
    let q = t
        .qtype()
        .ok_or_else(|| format!("input {k} is {t}; an integer operation reads int8 or uint8 quantized per tensor"))?;
    q.check()?;
    Ok(q)
}

fn out_type(out: &IntOut) -> Result<TensorType, String> {
    if let IntOut::Requant(q) = out {
        q.check()?;
    }
    Ok(out.tensor_type())
}

/// Checks an integer layer's weight (8-bit, quantized per tensor or per
/// output channel, zero points in range) and that no `i32` sum of `k`
/// products plus the bias can overflow.
fn check_int_layer(x: QType, w: &Param, bias: Option<&[i32]>, k: usize) -> Result<(), String> {
    let q = match (&w.quant, w.elem()) {
        (Some(q), ElemType::I8 | ElemType::U8) if q.axis.is_none() || q.axis == Some(0) => q,
        _ => {
            return Err(format!(
                "the weight is {}{}; an integer layer takes int8 or uint8 weights quantized per tensor or per output channel",
                w.elem(),
                match &w.quant {
                    Some(q) => format!(" ({q})"),
                    None => String::new(),
                }
            ))
        }
    };
    q.check(&w.shape, w.elem()).map_err(|e| format!("the weight: {e}"))?;
    let (lo, hi) = int_range(w.elem());
    if let Some(z) = q.zero_point.iter().find(|z| !(lo..=hi).contains(*z)) {
        return Err(format!(
            "the weight's zero point {z} is outside the range of {}",
            w.elem()
        ));
    }
    let (xlo, xhi) = x.range();
    let xmax = (x.zero_point - xlo).max(xhi - x.zero_point) as i64;
    let wmax = centered_weight(w).map_or(0, |c| c.iter().map(|v| v.unsigned_abs() as i64).max().unwrap_or(0));
    let bmax = bias.map_or(0, |b| b.iter().map(|v| v.unsigned_abs() as i64).max().unwrap_or(0));
    let worst = (k as i64)
        .saturating_mul(xmax)
        .saturating_mul(wmax)
        .saturating_add(bmax);
    if worst > i32::MAX as i64 {
        return Err(format!(
            "{k} products of up to {xmax} x {wmax} plus a bias of up to {bmax} may overflow the 32-bit sum"
        ));
    }
    Ok(())
}

/// The output shape of a convolution of `x` by a weight of shape `ws`,
/// checking the geometry.
// Negated comparisons on purpose: they also reject NaN.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn conv_out(
    x: &[usize],
    ws: &[usize],
    stride: [usize; 2],
    pads: [usize; 4],
    groups: usize,
) -> Result<Vec<usize>, String> {
    let [n, c, h, w] = nchw(x)?;
    if ws.len() != 4 {
        return Err(format!("weight must be 4-D [out, in/groups, kh, kw], is {ws:?}"));
    }
    let (oc, icg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    if groups == 0 || c % groups != 0 || oc % groups != 0 {
        return Err(format!(
            "groups = {groups} does not divide {c} input and {oc} output channels"
        ));
    }
    if groups != 1 && !(groups == c && oc == c) {
        return Err(format!(
            "groups = {groups} with {c} input and {oc} output channels: only full (groups = 1) and depthwise (groups = channels) convolutions are supported"
        ));
    }
    if icg * groups != c {
        return Err(format!(
            "weight {ws:?} expects {} input channels, input has {c}",
            icg * groups
        ));
    }
    if kh == 0 || kw == 0 || stride[0] == 0 || stride[1] == 0 {
        return Err(format!("kernel {kh}x{kw} and stride {stride:?} must be non-zero"));
    }
    let [pt, pl, pb, pr] = pads;
    if pt >= kh || pb >= kh || pl >= kw || pr >= kw {
        return Err(format!("pads {pads:?} must each be smaller than the kernel {kh}x{kw}"));
    }
    let (hp, wp) = (h + pt + pb, w + pl + pr);
    if hp < kh || wp < kw {
        return Err(format!("kernel {kh}x{kw} is larger than the padded input {hp}x{wp}"));
    }
    Ok(vec![n, oc, (hp - kh) / stride[0] + 1, (wp - kw) / stride[1] + 1])
}

fn nchw(x: &[usize]) -> Result<[usize; 4], String> {
    match *x {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(format!("input must be 4-D [n, c, h, w], is {x:?}")),
    }
}

/// A tensor's static description.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Name (for messages and generated comments).
    pub name: String,
    /// Logical NCHW shape.
    pub shape: Vec<usize>,
    /// Element type and quantization.
    pub ty: TensorType,
}

impl TensorInfo {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One operation applied to tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Unique name, from the front end (a layer name or an ONNX node name).
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// Input tensors.
    pub inputs: Vec<TensorId>,
    /// Output tensor.
    pub output: TensorId,
    /// Names of nodes that passes merged into this one, in order.
    pub fused: Vec<String>,
    /// What the model called the operation (the ONNX operator type, e.g.
    /// `Gemm` for a [`Op::Dense`]); errors name it. [`Op::kind`] unless the
    /// front end says otherwise.
    pub source: String,
}

/// A model.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// Model name.
    pub name: String,
    /// Free-form description (architecture, width, resolution).
    pub description: String,
    /// How callers provide tensor 0.
    pub input: InputSpec,
    /// All tensors; index 0 is the input.
    pub tensors: Vec<TensorInfo>,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// The model output.
    pub output: TensorId,
    /// The order a 4-D output is given to callers in: NCHW (ONNX's, the
    /// IR's), or NHWC where the ONNX model's output is the NHWC transpose
    /// of a feature map (models converted from TensorFlow). Other ranks
    /// ignore it.
    pub output_layout: Layout,
    /// Images per run (1 unless the model or the user fixes more): the
    /// graph computes one image; the generated code and the interpreter
    /// run it on each image of the batch in turn, reusing the arena.
    pub batch: usize,
}

/// The graph input's tensor id.
pub const INPUT: TensorId = 0;

impl Graph {
    /// A graph holding only its input tensor of the given NCHW shape.
    pub fn new(name: &str, description: &str, input: InputSpec, shape: Vec<usize>) -> Graph {
        Graph {
            name: name.into(),
            description: description.into(),
            input,
            tensors: vec![TensorInfo {
                name: "input".into(),
                shape,
                ty: TensorType::plain(input.dtype),
            }],
            nodes: Vec::new(),
            output: INPUT,
            output_layout: Layout::Nchw,
            batch: 1,
        }
    }

    /// Appends a node, inferring its output shape and type.
    pub fn push(&mut self, name: &str, op: Op, inputs: &[TensorId]) -> Result<TensorId, String> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|&t| self.tensors[t].shape.as_slice()).collect();
        let types: Vec<&TensorType> = inputs.iter().map(|&t| &self.tensors[t].ty).collect();
        let at = |e: String| format!("node `{name}` ({}): {e}", op.kind());
        let shape = op.infer(&shapes).map_err(at)?;
        crate::limits::elements(&shape).map_err(at)?;
        let op_kind = op.kind();
        let ty = op.infer_type(&types).map_err(at)?;
        let id = self.tensors.len();
        self.tensors.push(TensorInfo {
            name: name.into(),
            shape,
            ty,
        });
        self.nodes.push(Node {
            name: name.into(),
            op,
            inputs: inputs.to_vec(),
            output: id,
            fused: Vec::new(),
            source: op_kind.to_string(),
        });
        self.output = id;
        Ok(id)
    }

    /// The node producing `t`, if any (a scan from the end: the newest
    /// node, in the front end's use. The passes keep their own index).
    pub fn producer(&self, t: TensorId) -> Option<usize> {
        self.nodes.iter().rposition(|n| n.output == t)
    }

    /// Total multiply-accumulates.
    pub fn macs(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| n.op.macs(&self.tensors[n.output].shape))
            .sum()
    }

    /// Total parameters.
    pub fn params(&self) -> usize {
        self.nodes.iter().map(|n| n.op.params()).sum()
    }

    /// Every node whose constants are not finite ([`Op::non_finite`]),
    /// as diagnostics naming the node (and the nodes folded into it).
    pub fn check_constants(&self) -> Vec<crate::diag::Diagnostic> {
        let mut out = Vec::new();
        for n in &self.nodes {
            let problems = n.op.non_finite();
            if problems.is_empty() {
                continue;
            }
            let folded = if n.fused.is_empty() {
                String::new()
            } else {
                format!(
                    " (after folding {} into it)",
                    n.fused.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                )
            };
            out.push(crate::diag::Diagnostic::node(
                &n.name,
                &n.source,
                format!("{}{folded}: only finite numbers can be compiled", problems.join("; ")),
            ));
        }
        out
    }

    /// Checks the invariants listed in the module docs; returns every problem.
    pub fn verify(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut produced = vec![false; self.tensors.len()];
        if !self.tensors.is_empty() {
            produced[INPUT] = true;
        }
        let mut names = std::collections::HashSet::new();
        for n in &self.nodes {
            let at = format!("node `{}` ({})", n.name, n.op.kind());
            if !names.insert(n.name.as_str()) {
                problems.push(format!("{at}: duplicate node name"));
            }
            let mut ok = true;
            for &i in &n.inputs {
                if i >= self.tensors.len() || !produced[i] {
                    problems.push(format!("{at}: input tensor {i} is not produced before it"));
                    ok = false;
                }
            }
            if n.output >= self.tensors.len() {
                problems.push(format!("{at}: output tensor {} does not exist", n.output));
                continue;
            }
            if produced[n.output] {
                problems.push(format!("{at}: output tensor {} already has a producer", n.output));
            }
            produced[n.output] = true;
            if !ok {
                continue;
            }
            let shapes: Vec<&[usize]> = n.inputs.iter().map(|&t| self.tensors[t].shape.as_slice()).collect();
            match n.op.infer(&shapes) {
                Ok(s) if s != self.tensors[n.output].shape => problems.push(format!(
                    "{at}: output recorded as {:?} but inferred as {s:?}",
                    self.tensors[n.output].shape
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!("{at}: {e}")),
            }
            let types: Vec<&TensorType> = n.inputs.iter().map(|&t| &self.tensors[t].ty).collect();
            match n.op.infer_type(&types) {
                Ok(t) if t != self.tensors[n.output].ty => problems.push(format!(
                    "{at}: output type recorded as {} but inferred as {t}",
                    self.tensors[n.output].ty
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!("{at}: {e}")),
            }
        }
        if !matches!(self.input.dtype, ElemType::F32 | ElemType::U8 | ElemType::F16) {
            problems.push(format!(
                "the model input is {}; float32, float16 and uint8 inputs are supported",
                self.input.dtype
            ));
        }
        if let Some(t) = self.tensors.first() {
            if t.ty != TensorType::plain(self.input.dtype) {
                problems.push(format!(
                    "the input tensor is {} but the input spec says {}",
                    t.ty, self.input.dtype
                ));
            }
        }
        if self.output >= self.tensors.len() || !produced[self.output] {
            problems.push(format!("graph output tensor {} is not produced", self.output));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> Graph {
        Graph::new(
            "t",
            "",
            InputSpec {
                dtype: ElemType::F32,
                layout: Layout::Nchw,
            },
            vec![1, 3, 8, 8],
        )
    }

    #[test]
    fn conv_shapes() {
        let mut g = input();
        let w = Param::new(vec![4, 3, 3, 3], vec![0.0; 108]);
        let t = g
            .push("c", Op::Conv(ConvCfg::new(w, [2, 2], [0, 0, 1, 1], 1)), &[INPUT])
            .unwrap();
        assert_eq!(g.tensors[t].shape, vec![1, 4, 4, 4]);
        g.verify().unwrap();
    }

    #[test]
    fn verify_reports_every_problem() {
        let mut g = input();
        let w = Param::new(vec![4, 3, 1, 1], vec![0.0; 12]);
        let t = g
            .push("c", Op::Conv(ConvCfg::new(w, [1, 1], [0; 4], 1)), &[INPUT])
            .unwrap();
        g.push("r", Op::Clip(Clamp::RELU), &[t]).unwrap();
        g.tensors[t].shape = vec![1, 5, 8, 8];
        g.nodes[1].name = "c".into();
        let e = g.verify().unwrap_err();
        // The bad shape is reported at its producer and at its reader.
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].contains("recorded as [1, 5, 8, 8]"));
        assert!(e[1].contains("duplicate node name"));
        assert!(e[2].contains("inferred as [1, 5, 8, 8]"));
    }

    #[test]
    fn grouped_conv_rejected() {
        let mut g = input();
        let w = Param::new(vec![3, 1, 3, 3], vec![0.0; 27]);
        assert!(g
            .push("dw", Op::Conv(ConvCfg::new(w, [1, 1], [1; 4], 3)), &[INPUT])
            .is_ok());
        let mut g = Graph::new("t", "", g.input, vec![1, 4, 8, 8]);
        let w = Param::new(vec![4, 2, 3, 3], vec![0.0; 72]);
        let e = g
            .push("g2", Op::Conv(ConvCfg::new(w, [1, 1], [1; 4], 2)), &[INPUT])
            .unwrap_err();
        assert!(e.contains("only full"), "{e}");
    }

    #[test]
    fn clamp_composition() {
        assert_eq!(Clamp::NONE.then(Clamp::RELU6), Clamp::RELU6);
        assert_eq!(Clamp::RELU.then(Clamp::RELU6), Clamp::RELU6);
        assert_eq!(Clamp::RELU6.then(Clamp::RELU), Clamp::RELU6);
    }
}
