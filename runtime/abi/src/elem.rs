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

    /// The short name tables print: the Rust type's, `f16` for float16
    /// (stored as `u16` bits).
    pub const fn short_name(self) -> &'static str {
        match self {
            ElemType::F16 => "f16",
            other => other.rust_name(),
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

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u16 {}
    impl Sealed for i8 {}
    impl Sealed for u8 {}
    impl Sealed for i32 {}
}

/// A Rust type that holds one [`ElemType`]'s elements: `f32`, `u16` (the
/// bits of an `f16`), `i8`, `u8`, `i32`. Sealed: these five only, plain
/// data (no padding, every bit pattern a value, alignment at most 4), so
/// the runtime may view aligned bytes of the arena and the weight blob as
/// slices of them.
pub trait Elem: Copy + Default + PartialEq + fmt::Debug + Send + Sync + 'static + sealed::Sealed {
    /// The element type it holds.
    const TYPE: ElemType;
}

impl Elem for f32 {
    const TYPE: ElemType = ElemType::F32;
}
impl Elem for u16 {
    const TYPE: ElemType = ElemType::F16;
}
impl Elem for i8 {
    const TYPE: ElemType = ElemType::I8;
}
impl Elem for u8 {
    const TYPE: ElemType = ElemType::U8;
}
impl Elem for i32 {
    const TYPE: ElemType = ElemType::I32;
}

/// An integer element type of quantized tensors: `i8`, `u8`, `i32`.
pub trait Quantized: Elem {
    /// The smallest value.
    const MIN: i32;
    /// The largest value.
    const MAX: i32;
    /// `v`, which lies in `MIN..=MAX`.
    fn from_i32(v: i32) -> Self;
    /// The value as `i32`.
    fn to_i32(self) -> i32;
}

impl Quantized for i8 {
    const MIN: i32 = i8::MIN as i32;
    const MAX: i32 = i8::MAX as i32;
    #[inline(always)]
    fn from_i32(v: i32) -> i8 {
        v as i8
    }
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self as i32
    }
}

impl Quantized for u8 {
    const MIN: i32 = 0;
    const MAX: i32 = u8::MAX as i32;
    #[inline(always)]
    fn from_i32(v: i32) -> u8 {
        v as u8
    }
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self as i32
    }
}

impl Quantized for i32 {
    const MIN: i32 = i32::MIN;
    const MAX: i32 = i32::MAX;
    #[inline(always)]
    fn from_i32(v: i32) -> i32 {
        v
    }
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self
    }
}
