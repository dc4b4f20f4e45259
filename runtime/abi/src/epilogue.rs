//! What a kernel does to each output value after its accumulation, and the
//! activations: their definitions, in `f32` as the kernels compute them
//! and in `f64` as the compiler's reference interpreter does.

use core::fmt;

/// A nonlinearity applied after the clamp: `out = act(clamp(acc + bias +
/// residual, min, max))`.
///
/// Adding one: a variant here with its [`apply`](Activation::apply),
/// [`reference`](Activation::reference), [`name`](Activation::name) and
/// [`params`](Activation::params) arms; the kernels, the interpreter and
/// the code generator use these.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// None (the clamp alone: identity, ReLU, ReLU6).
    None,
    /// `x * min(max(x + 3, 0), 6) / 6` (ONNX HardSwish).
    HardSwish,
    /// `min(max(alpha * x + beta, 0), 1)` (ONNX HardSigmoid).
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
}

impl Activation {
    /// The activation of `x` as every kernel computes it, in `f32`:
    /// HardSwish as `x * clamp(x + 3, 0, 6) * (1 / 6)` (in that order;
    /// `-inf` gives NaN, as `-inf * 0` does), HardSigmoid as `clamp(alpha *
    /// x + beta, 0, 1)`, with [`clamp`]'s semantics.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::HardSwish => x * clamp(x + 3.0, 0.0, 6.0) * (1.0 / 6.0),
            Activation::HardSigmoid { alpha, beta } => clamp(alpha * x + beta, 0.0, 1.0),
        }
    }

    /// The mathematical definition, in `f64` (the reference interpreter's).
    pub fn reference(self, x: f64) -> f64 {
        match self {
            Activation::None => x,
            Activation::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Activation::HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
        }
    }

    /// The variant's name in Rust (`"HardSigmoid"`).
    pub const fn name(self) -> &'static str {
        match self {
            Activation::None => "None",
            Activation::HardSwish => "HardSwish",
            Activation::HardSigmoid { .. } => "HardSigmoid",
        }
    }

    /// The variant's named `f32` fields, in declaration order (none for a
    /// unit variant): what the code generator writes.
    pub fn params(self) -> ([(&'static str, f32); 2], usize) {
        match self {
            Activation::None | Activation::HardSwish => ([("", 0.0); 2], 0),
            Activation::HardSigmoid { alpha, beta } => ([("alpha", alpha), ("beta", beta)], 2),
        }
    }
}

/// Lowercase, with parameters: `none`, `hardswish`, `hardsigmoid(0.2, 0.5)`.
impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Activation::None => f.write_str("none"),
            Activation::HardSwish => f.write_str("hardswish"),
            Activation::HardSigmoid { alpha, beta } => write!(f, "hardsigmoid({alpha}, {beta})"),
        }
    }
}

/// The logistic function `1 / (1 + e^-x)` as onnxruntime computes it on
/// x86-64 (MLAS's `MlasComputeLogistic`, `logistic.cpp`, the rational
/// approximation Eigen uses, in its FMA3 kernel): `x` clamped to `[-18,
/// 18]`, with `s = x * x`, `p = x * (a1 + s * (a3 + s * (a5 + s * (a7 + s *
/// a9))))` and `q = b0 + s * (b2 + s * (b4 + s * (b6 + s * (b8 + s *
/// b10))))` evaluated from the innermost term out, each step one fused
/// multiply-add, then `clamp(p / q + 0.5, 0, 1)`. Equal to onnxruntime
/// 1.32's Sigmoid bit for bit on 4,096 random values in `[-20, 20]`
/// (without the fused multiply-adds, 1,460 differ); within `2e-7` of the
/// true function. A NaN gives 0.5 + NaN = NaN, clamped as [`clamp`] does.
pub fn logistic(x: f32) -> f32 {
    use crate::quant::fma;
    // MLAS's constants, as written there.
    #[allow(clippy::excessive_precision)]
    const A: [f32; 5] = [
        4.37031012579801e-11,
        1.15627324459942e-07,
        6.08574864600143e-05,
        8.51377133304701e-03,
        2.48287947061529e-01,
    ];
    #[allow(clippy::excessive_precision)]
    const B: [f32; 6] = [
        6.10247389755681e-13,
        5.76102136993427e-09,
        6.29106785017040e-06,
        1.70198817374094e-03,
        1.16817656904453e-01,
        9.93151921023180e-01,
    ];
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let v = if x < -18.0 { -18.0 } else { x };
    let v = if v > 18.0 { 18.0 } else { v };
    let s = v * v;
    let mut p = fma(s, A[0], A[1]);
    for &a in &A[2..] {
        p = fma(p, s, a);
    }
    let p = p * v;
    let mut q = fma(s, B[0], B[1]);
    for &b in &B[2..] {
        q = fma(q, s, b);
    }
    clamp(p / q + 0.5, 0.0, 1.0)
}

/// The epilogue clamp: `v < min` gives `min`, `v > max` gives `max`,
/// anything else (NaN included) `v`; infinite bounds are no-ops.
#[inline(always)]
pub fn clamp(v: f32, min: f32, max: f32) -> f32 {
    if v < min {
        min
    } else if v > max {
        max
    } else {
        v
    }
}

/// What a kernel does to each output value after the accumulation:
/// `out = act(clamp(acc + bias[c] + residual[i], min, max))`.
///
/// BatchNorm folds into the weights and `bias`, ReLU is `min = 0`,
/// ReLU6 is `min = 0, max = 6`, no activation is `min = -inf, max = inf`,
/// a residual Add fused into the conv before it is `residual`, and a
/// HardSwish or HardSigmoid that follows is `act`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// One value per output channel, or `None`.
    pub bias: Option<&'a [f32]>,
    /// Lower clamp bound (`f32::NEG_INFINITY` for none).
    pub min: f32,
    /// Upper clamp bound (`f32::INFINITY` for none).
    pub max: f32,
    /// A tensor of the output's shape and layout added before the clamp.
    pub residual: Option<&'a [f32]>,
    /// The nonlinearity applied after the clamp ([`Activation::None`] for none).
    pub act: Activation,
}

impl Epilogue<'_> {
    /// No bias, no clamp, no residual, no activation.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
        residual: None,
        act: Activation::None,
    };
}
