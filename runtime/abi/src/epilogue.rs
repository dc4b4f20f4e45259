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
