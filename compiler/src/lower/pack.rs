//! Weight packing: the blob generated code embeds, and each kernel's
//! layout in it ([`mncc_abi::pack`] defines the layouts and their lengths;
//! this is their only writer).

use mncc_abi::pack::{self, PANEL};
use mncc_abi::{ConvShape, ElemType, ALIGN};
use std::ops::Range;

/// The weight blob being built: little-endian values, each segment in its
/// kernel's element type, starting on a multiple of [`ALIGN`] bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blob {
    bytes: Vec<u8>,
}

/// A value the blob holds: its element type and little-endian bytes.
pub trait BlobElem: Copy {
    /// The element type.
    const TYPE: ElemType;
    /// Appends its little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
}

impl BlobElem for f32 {
    const TYPE: ElemType = ElemType::F32;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl BlobElem for i8 {
    const TYPE: ElemType = ElemType::I8;
    fn put(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
}
impl BlobElem for u8 {
    const TYPE: ElemType = ElemType::U8;
    fn put(self, out: &mut Vec<u8>) {
        out.push(self);
    }
}
impl BlobElem for i32 {
    const TYPE: ElemType = ElemType::I32;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Blob {
    /// Appends `data` on the next [`ALIGN`]-byte boundary; returns its byte
    /// range.
    pub fn push<T: BlobElem>(&mut self, data: &[T]) -> Range<usize> {
        self.bytes.resize(self.bytes.len().div_ceil(ALIGN) * ALIGN, 0);
        let start = self.bytes.len();
        for &v in data {
            v.put(&mut self.bytes);
        }
        start..self.bytes.len()
    }

    /// The bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Packs the `[k][n]` matrix `w(o, i)` (column `o`, row `i`) in panels of
/// [`PANEL`] columns, zero past `n` ([`pack::panel_index`]): the layout of
/// the SIMD `pointwise` and `conv2d`.
pub fn panels(k: usize, n: usize, w: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let mut packed = vec![0.0; pack::panels_len(k, n, PANEL)];
    for o in 0..n {
        for i in 0..k {
            packed[pack::panel_index(k, PANEL, o, i)] = w(o, i);
        }
    }
    packed
}

/// A conv's `[out_c][in_c][kh][kw]` weights as the SIMD `conv2d`'s im2col
/// matrix in panels ([`pack::conv2d_row`]).
pub fn conv2d(s: &ConvShape, w: &[f32]) -> Vec<f32> {
    let (ic, kh, kw) = (s.in_c, s.kernel_h, s.kernel_w);
    let mut row_of = vec![0; pack::conv2d_rows(s)];
    for ky in 0..kh {
        for kx in 0..kw {
            for ci in 0..ic {
                row_of[pack::conv2d_row(s, ky, kx, ci)] = (ci * kh + ky) * kw + kx;
            }
        }
    }
    let per_out = ic * kh * kw;
    panels(pack::conv2d_rows(s), s.out_c, |o, r| w[o * per_out + row_of[r]])
}

/// A depthwise conv's `[c][1][kh][kw]` weights, channel innermost
/// ([`pack::depthwise_index`]).
pub fn depthwise(s: &ConvShape, w: &[f32]) -> Vec<f32> {
    let taps = s.kernel_h * s.kernel_w;
    let mut packed = vec![0.0; pack::depthwise_packed_len(s)];
    for c in 0..s.out_c {
        for k in 0..taps {
            packed[pack::depthwise_index(s.out_c, k, c)] = w[c * taps + k];
        }
    }
    packed
}

/// An integer layer's weight as the runtime's integer kernels take it:
/// `i8` values and an `i32` zero point per output channel, `u8` weights
/// and their zero points less 128 (the differences `w - zero_point`, all
/// the kernels use, are unchanged).
pub struct QWeight<'a> {
    param: &'a crate::ir::Param,
    /// Per output channel (axis 0), or one for all.
    per_channel: bool,
}

impl<'a> QWeight<'a> {
    /// The weight of an integer layer (8-bit, quantized per tensor or
    /// along axis 0: the verifier checked it).
    pub fn new(param: &'a crate::ir::Param) -> QWeight<'a> {
        let per_channel = param.quant.as_ref().is_some_and(|q| q.axis.is_some());
        QWeight { param, per_channel }
    }

    fn shift(&self) -> i32 {
        match self.param.elem() {
            ElemType::U8 => 128,
            _ => 0,
        }
    }

    /// `len` stored values, value `i` being the weight's value `src(i)`
    /// (row-major in its shape).
    pub fn gather(&self, len: usize, src: impl Fn(usize) -> usize) -> Vec<i8> {
        let sh = self.shift();
        (0..len)
            .map(|i| (self.param.values.get_f64(src(i)) as i32 - sh) as i8)
            .collect()
    }

    /// The `[k][n]` matrix `w(o, i) = value src(o, i)` in the integer
    /// GEMM's panels ([`mncc_abi::pack::qpanel_index`]), and each output
    /// channel's sum of its stored values.
    pub fn qpanels(&self, k: usize, n: usize, src: impl Fn(usize, usize) -> usize) -> (Vec<i8>, Vec<i32>) {
        let sh = self.shift();
        let mut out = vec![0i8; pack::qpanels_len(k, n)];
        let mut sums = vec![0i32; n];
        for o in 0..n {
            for i in 0..k {
                let v = (self.param.values.get_f64(src(o, i)) as i32 - sh) as i8;
                out[pack::qpanel_index(k, o, i)] = v;
                sums[o] += v as i32;
            }
        }
        (out, sums)
    }

    /// The weight scale and zero point (in the stored `i8` terms) of each
    /// of `out_c` output channels.
    fn per_channel_params(&self, out_c: usize) -> (Vec<f32>, Vec<i32>) {
        let q = self
            .param
            .quant
            .as_ref()
            .expect("an integer layer's weight is quantized");
        let at = |o: usize| if self.per_channel { o } else { 0 };
        (0..out_c)
            .map(|o| (q.scale[at(o)], q.zero_point[at(o)] - self.shift()))
            .unzip()
    }

    /// Pushes the zero points, the biases (zeros if none) and the
    /// multipliers of `out_c` output channels into `blob`. With `fold =
    /// Some((k, x_zp, wsum))` (the integer GEMM: `k` products per sum, the
    /// input's zero point as the kernel sees it, each channel's sum of
    /// stored weights), the biases are folded
    /// ([`mncc_abi::quant::folded_bias`]).
    pub fn consts(
        &self,
        blob: &mut Blob,
        out_c: usize,
        bias: Option<&[i32]>,
        fold: Option<(usize, i32, &[i32])>,
        x: crate::ir::QType,
        y: crate::ir::QType,
    ) -> super::IntConsts {
        let (scale, zp) = self.per_channel_params(out_c);
        let bias: Vec<i32> = (0..out_c)
            .map(|o| {
                let b = bias.map_or(0, |b| b[o]);
                match fold {
                    Some((k, x_zp, wsum)) => mncc_abi::quant::folded_bias(b, wsum[o], k, x_zp, zp[o]),
                    None => b,
                }
            })
            .collect();
        let mult: Vec<f32> = (0..out_c)
            .map(|o| crate::ir::requant_multiplier(x.scale, scale[o], y.scale))
            .collect();
        super::IntConsts {
            zero_point: blob.push(&zp),
            bias: blob.push(&bias),
            multiplier: blob.push(&mult),
        }
    }

    /// Pushes the constants of a layer on a dynamically quantized input:
    /// the zero points, the corrections ([`mncc_abi::quant::dyn_correction`]
    /// of each channel's weight sum; zeros for the depthwise kernel, which
    /// subtracts the input's zero point itself: `gemm = None`), and the
    /// weight scales.
    pub fn dyn_consts(&self, blob: &mut Blob, out_c: usize, gemm: Option<(usize, &[i32])>) -> super::IntConsts {
        let (scale, zp) = self.per_channel_params(out_c);
        let corr: Vec<i32> = (0..out_c)
            .map(|o| gemm.map_or(0, |(k, wsum)| mncc_abi::quant::dyn_correction(wsum[o], k, zp[o])))
            .collect();
        super::IntConsts {
            zero_point: blob.push(&zp),
            bias: blob.push(&corr),
            multiplier: blob.push(&scale),
        }
    }

    /// `uint8 weights per channel`, for the layer's description.
    pub fn describe(&self) -> String {
        let q = self
            .param
            .quant
            .as_ref()
            .expect("an integer layer's weight is quantized");
        let zp = match (q.zero_point.iter().min(), q.zero_point.iter().max()) {
            (Some(a), Some(b)) if a == b => format!("zero point {a}"),
            (Some(a), Some(b)) => format!("zero points {a} to {b}"),
            _ => String::new(),
        };
        format!(
            "{} weights per {}, {zp}",
            self.param.elem(),
            if self.per_channel { "channel" } else { "tensor" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_start_on_cache_lines() {
        let mut b = Blob::default();
        assert_eq!(b.push(&[1.0f32, 2.0]), 0..8);
        assert_eq!(b.push(&[3i8]), 64..65);
        assert_eq!(b.push(&[-1i32]), 128..132);
        let bytes = b.into_bytes();
        assert_eq!(&bytes[0..4], &1.0f32.to_le_bytes());
        assert_eq!(bytes[64], 3);
        assert_eq!(&bytes[128..132], &[0xff; 4]);
    }

    #[test]
    fn panels_zero_pad_the_last_one() {
        // 2 rows, 17 columns: two panels of 16.
        let p = panels(2, 17, |o, i| (o * 10 + i) as f32 + 1.0);
        assert_eq!(p.len(), 2 * 2 * 16);
        assert_eq!(p[0], 1.0); // column 0, row 0
        assert_eq!(p[16], 2.0); // column 0, row 1
        assert_eq!(p[15], 151.0); // column 15, row 0
        assert_eq!(p[32], 161.0); // column 16 (panel 1), row 0
        assert_eq!(p[33], 0.0); // column 17 does not exist
    }
}
