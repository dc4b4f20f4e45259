//! MobileNet v1 and v2 as layer tables (the papers' tables, with the
//! reference implementations' channel rounding), and the graph builder.
//!
//! Layer names are the weight-naming convention (README, "Weights"):
//! v1: `conv1`, `conv_dw_{1..13}`, `conv_pw_{1..13}`, `classifier`;
//! v2: `conv1`, `block{1..17}.{expand,depthwise,project}`, `conv_last`,
//! `classifier`. Each v2 layer also knows its torchvision state_dict prefix.

use crate::ir::{BatchNormCfg, Clamp, ConvCfg, DenseCfg, Graph, NormalizeCfg, Op, Param, TensorId, INPUT};
use crate::spec::{Arch, ModelSpec, Padding};
use std::collections::BTreeMap;

/// What a layer computes.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerKind {
    /// Convolution (full or depthwise), square kernel.
    Conv {
        /// Input channels.
        in_c: usize,
        /// Output channels.
        out_c: usize,
        /// Kernel size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// 1 or `in_c`.
        groups: usize,
    },
    /// Global average pooling (no weights).
    Pool,
    /// Fully connected classifier.
    Dense {
        /// Input features.
        in_f: usize,
        /// Outputs (classes).
        out_f: usize,
    },
}

/// One layer of the network.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerDef {
    /// Canonical name (weights are `{name}.weight`, ...).
    pub name: String,
    /// What it computes.
    pub kind: LayerKind,
    /// Activation after conv (+BN) (+residual); `Clamp::NONE` for linear.
    pub act: Clamp,
    /// This layer's input is saved as the current block's residual.
    pub block_start: bool,
    /// Add the saved residual after this layer's conv (+BN), before `act`.
    pub residual: bool,
    /// torchvision names: (conv or linear prefix, BatchNorm prefix).
    pub torchvision: Option<(String, Option<String>)>,
}

/// Keras' v1 rounding: `int(c * alpha)`, at least 1.
fn v1_channels(c: usize, alpha: f64) -> usize {
    ((c as f64 * alpha) as usize).max(1)
}

/// torchvision's / TF's `_make_divisible(v, 8)`.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = ((v + d / 2.0) as usize / divisor * divisor).max(divisor);
    if (new_v as f64) < 0.9 * v {
        new_v += divisor;
    }
    new_v
}

fn conv(
    name: String,
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    depthwise: bool,
    act: Clamp,
) -> LayerDef {
    LayerDef {
        name,
        kind: LayerKind::Conv {
            in_c,
            out_c,
            kernel,
            stride,
            groups: if depthwise { in_c } else { 1 },
        },
        act,
        block_start: false,
        residual: false,
        torchvision: None,
    }
}

/// The layer table of the model described by `spec`.
pub fn layers(spec: &ModelSpec) -> Vec<LayerDef> {
    let a = spec.alpha;
    let act = spec.activation;
    let mut out = Vec::new();
    match spec.arch {
        Arch::V1 => {
            // (pointwise channels, depthwise stride) of the 13 blocks (paper, Table 1).
            const BLOCKS: [(usize, usize); 13] = [
                (64, 1),
                (128, 2),
                (128, 1),
                (256, 2),
                (256, 1),
                (512, 2),
                (512, 1),
                (512, 1),
                (512, 1),
                (512, 1),
                (512, 1),
                (1024, 2),
                (1024, 1),
            ];
            let mut c = v1_channels(32, a);
            out.push(conv("conv1".into(), 3, c, 3, 2, false, act));
            for (i, &(pc, s)) in BLOCKS.iter().enumerate() {
                let pc = v1_channels(pc, a);
                out.push(conv(format!("conv_dw_{}", i + 1), c, c, 3, s, true, act));
                out.push(conv(format!("conv_pw_{}", i + 1), c, pc, 1, 1, false, act));
                c = pc;
            }
            push_head(&mut out, c, spec.classes, None);
        }
        Arch::V2 => {
            // (expansion t, channels c, repeats n, first stride s) (paper, Table 2).
            const BLOCKS: [(usize, usize, usize, usize); 7] = [
                (1, 16, 1, 1),
                (6, 24, 2, 2),
                (6, 32, 3, 2),
                (6, 64, 4, 2),
                (6, 96, 3, 1),
                (6, 160, 3, 2),
                (6, 320, 1, 1),
            ];
            let mut c = make_divisible(32.0 * a, 8);
            let mut first = conv("conv1".into(), 3, c, 3, 2, false, act);
            first.torchvision = Some(("features.0.0".into(), Some("features.0.1".into())));
            out.push(first);
            let mut b = 0;
            for &(t, ch, n, s) in &BLOCKS {
                let oc = make_divisible(ch as f64 * a, 8);
                for i in 0..n {
                    b += 1;
                    let stride = if i == 0 { s } else { 1 };
                    let hidden = (c as f64 * t as f64).round() as usize;
                    let f = format!("features.{b}.conv");
                    let start = out.len();
                    if t != 1 {
                        let mut e = conv(format!("block{b}.expand"), c, hidden, 1, 1, false, act);
                        e.torchvision = Some((format!("{f}.0.0"), Some(format!("{f}.0.1"))));
                        out.push(e);
                    }
                    let k = usize::from(t != 1); // torchvision index shift when there is no expand conv
                    let mut d = conv(format!("block{b}.depthwise"), hidden, hidden, 3, stride, true, act);
                    d.torchvision = Some((format!("{f}.{k}.0"), Some(format!("{f}.{k}.1"))));
                    out.push(d);
                    let mut p = conv(format!("block{b}.project"), hidden, oc, 1, 1, false, Clamp::NONE);
                    p.torchvision = Some((format!("{f}.{}", k + 1), Some(format!("{f}.{}", k + 2))));
                    p.residual = stride == 1 && c == oc;
                    out.push(p);
                    out[start].block_start = true;
                    c = oc;
                }
            }
            let last = make_divisible(1280.0 * a.max(1.0), 8);
            let mut l = conv("conv_last".into(), c, last, 1, 1, false, act);
            l.torchvision = Some(("features.18.0".into(), Some("features.18.1".into())));
            out.push(l);
            push_head(&mut out, last, spec.classes, Some("classifier.1"));
        }
    }
    out
}

fn push_head(out: &mut Vec<LayerDef>, c: usize, classes: usize, tv: Option<&str>) {
    out.push(LayerDef {
        name: "pool".into(),
        kind: LayerKind::Pool,
        act: Clamp::NONE,
        block_start: false,
        residual: false,
        torchvision: None,
    });
    out.push(LayerDef {
        name: "classifier".into(),
        kind: LayerKind::Dense {
            in_f: c,
            out_f: classes,
        },
        act: Clamp::NONE,
        block_start: false,
        residual: false,
        torchvision: tv.map(|t| (t.to_string(), None)),
    });
}

/// The weights of one layer, in PyTorch layouts.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    /// Conv `[out, in/groups, k, k]` or dense `[out, in]`.
    pub weight: Param,
    /// Bias.
    pub bias: Option<Vec<f32>>,
    /// BatchNorm after the conv.
    pub bn: Option<BatchNormCfg>,
}

/// Weights by layer name.
pub type WeightTable = BTreeMap<String, LayerWeights>;

/// Per-side pads `[top, left, bottom, right]` for a square kernel.
pub fn pads(padding: Padding, in_size: usize, kernel: usize, stride: usize) -> [usize; 4] {
    match padding {
        Padding::Symmetric => [kernel / 2; 4],
        Padding::TfSame => {
            let out = in_size.div_ceil(stride);
            let total = ((out - 1) * stride + kernel).saturating_sub(in_size);
            let (lo, hi) = (total / 2, total - total / 2);
            [lo, lo, hi, hi]
        }
    }
}

/// Builds the unoptimized graph of `spec` at `resolution` with `weights`
/// (which must hold every weighted layer of `layers`).
pub fn build(spec: &ModelSpec, layers: &[LayerDef], weights: &WeightTable, resolution: usize) -> Result<Graph, String> {
    let mut g = Graph::new(
        &spec.name,
        &spec.describe(),
        spec.input,
        vec![1, 3, resolution, resolution],
    );
    let mut x: TensorId = INPUT;
    if let Some((scale, offset)) = &spec.normalize {
        x = g.push(
            "input.normalize",
            Op::Normalize(NormalizeCfg {
                scale: scale.clone(),
                offset: offset.clone(),
            }),
            &[x],
        )?;
    }
    let mut saved = x;
    for l in layers {
        if l.block_start {
            saved = x;
        }
        let w = || {
            weights
                .get(&l.name)
                .ok_or_else(|| format!("internal error: no weights for layer `{}`", l.name))
        };
        match l.kind {
            LayerKind::Conv {
                kernel, stride, groups, ..
            } => {
                let w = w()?;
                let size = g.tensors[x].shape[2];
                let mut cfg = ConvCfg::new(
                    w.weight.clone(),
                    [stride; 2],
                    pads(spec.padding, size, kernel, stride),
                    groups,
                );
                cfg.bias = w.bias.clone();
                x = g.push(&l.name, Op::Conv(cfg), &[x])?;
                if let Some(bn) = &w.bn {
                    x = g.push(&format!("{}.bn", l.name), Op::BatchNorm(bn.clone()), &[x])?;
                }
            }
            LayerKind::Pool => x = g.push(&l.name, Op::GlobalAvgPool, &[x])?,
            LayerKind::Dense { .. } => {
                let w = w()?;
                x = g.push(
                    &l.name,
                    Op::Dense(DenseCfg::new(w.weight.clone(), w.bias.clone())),
                    &[x],
                )?;
            }
        }
        if l.residual {
            x = g.push(&format!("{}.add", l.name), Op::Add, &[x, saved])?;
        }
        if !l.act.is_none() {
            let act = if l.act == Clamp::RELU6 { "relu6" } else { "relu" };
            x = g.push(&format!("{}.{act}", l.name), Op::Clip(l.act), &[x])?;
        }
    }
    if spec.softmax {
        g.push("softmax", Op::Softmax, &[x])?;
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_torchvision() {
        // Values computed with torchvision.models._utils._make_divisible.
        assert_eq!(make_divisible(32.0 * 0.35, 8), 16);
        assert_eq!(make_divisible(16.0 * 0.35, 8), 8);
        assert_eq!(make_divisible(24.0 * 0.35, 8), 8);
        assert_eq!(make_divisible(96.0 * 0.35, 8), 32);
        assert_eq!(make_divisible(320.0 * 1.4, 8), 448);
        assert_eq!(make_divisible(1280.0 * 1.4, 8), 1792);
        assert_eq!(make_divisible(24.0 * 0.75, 8), 24);
        assert_eq!(make_divisible(32.0 * 0.75, 8), 24);
    }

    #[test]
    fn tf_same_pads() {
        assert_eq!(pads(Padding::TfSame, 224, 3, 2), [0, 0, 1, 1]);
        assert_eq!(pads(Padding::TfSame, 112, 3, 1), [1, 1, 1, 1]);
        assert_eq!(pads(Padding::TfSame, 7, 3, 2), [1, 1, 1, 1]);
        assert_eq!(pads(Padding::TfSame, 8, 1, 1), [0; 4]);
        assert_eq!(pads(Padding::Symmetric, 224, 3, 2), [1; 4]);
    }
}
