//! Element types and layouts.

use core::fmt;

/// The element type of a tensor: of the model input and output, of the
/// arena's tensors, of each segment of the weight blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElemType {
    /// 32-bit float.
    F32,
    /// 16-bit float (IEEE binary16).
    F16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer (also raw pixels).
    U8,
    /// Signed 32-bit integer (quantized biases, accumulators).
    I32,
}

impl ElemType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            ElemType::F32 | ElemType::I32 => 4,
            ElemType::F16 => 2,
            ElemType::I8 | ElemType::U8 => 1,
        }
    }

    /// The Rust type generated code uses (`f16` is stored as its bits).
    pub const fn rust_name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::F16 => "u16",
            ElemType::I8 => "i8",
            ElemType::U8 => "u8",
            ElemType::I32 => "i32",
        }
    }

    /// Whether it is an integer type.
    pub const fn is_integer(self) -> bool {
        matches!(self, ElemType::I8 | ElemType::U8 | ElemType::I32)
    }
}

/// ONNX's names: `float32`, `float16`, `int8`, `uint8`, `int32`.
impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ElemType::F32 => "float32",
            ElemType::F16 => "float16",
            ElemType::I8 => "int8",
            ElemType::U8 => "uint8",
            ElemType::I32 => "int32",
        })
    }
}

/// Memory layout of an image tensor (the model input, a feature-map output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[H][W][C]`, channels last (what image decoders produce).
    Nhwc,
    /// `[C][H][W]`, channels first (PyTorch's default).
    Nchw,
}

/// `NHWC` or `NCHW`.
impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Nhwc => "NHWC",
            Layout::Nchw => "NCHW",
        })
    }
}
