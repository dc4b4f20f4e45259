//! One description of a layer, for the generated code's doc comments and
//! for `mncc inspect`'s table: where it came from, its shapes and types,
//! its work, its kernel, tiles and epilogue, and why that schedule.

use super::{Kernel, Layer, Program};
use crate::ir::Activation;

/// What a layer is and does, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// Index in the program's layers.
    pub index: usize,
    /// The source node.
    pub name: String,
    /// The nodes the passes merged into it.
    pub fused: Vec<String>,
    /// The source op.
    pub op: &'static str,
    /// Input shape (NHWC or `[k]`) and element type, e.g. `[56, 56, 64] f32`.
    pub input: String,
    /// Output shape and element type.
    pub output: String,
    /// A convolution's kernel, stride and pads, e.g. `3x3 stride 2, pads
    /// [top 0, left 0, bottom 1, right 1]`.
    pub geometry: Option<String>,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Parameters.
    pub params: usize,
    /// The kernel and its register tile (`pointwise_12x32`).
    pub kernel: String,
    /// Cache tiles and loop order (`kc=256 pixels-outer`), or `-`.
    pub tiles: String,
    /// The epilogue, in order: `bias`, `residual add`, the clamp, the activation.
    pub epilogue: Vec<String>,
    /// Why this schedule, one line (may be empty).
    pub why: String,
}

/// `[56, 56, 64]`.
pub fn shape_str(s: &[usize]) -> String {
    let v: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", v.join(", "))
}

/// `12.3M`, `4.5K`, `123`.
pub fn human(n: u64) -> String {
    match n {
        n if n >= 10_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

impl Description {
    /// Layer `i` of `p`.
    pub fn of(p: &Program, i: usize) -> Description {
        let l: &Layer = &p.layers[i];
        let geometry = match &l.kernel {
            Kernel::Conv2d { shape: s, .. } | Kernel::Depthwise { shape: s, .. } => Some(format!(
                "{}x{} stride {}, pads [top {}, left {}, bottom {}, right {}]",
                s.kernel_h,
                s.kernel_w,
                s.stride_h,
                s.pad_top,
                s.pad_left,
                s.pad_bottom(),
                s.pad_right()
            )),
            _ => None,
        };
        let mut epilogue = Vec::new();
        if l.bias.is_some() {
            epilogue.push("bias".to_string());
        }
        if l.residual {
            epilogue.push("residual add".to_string());
        }
        if !l.clamp.is_none() {
            epilogue.push(l.clamp.describe());
        }
        if l.act != Activation::None {
            epilogue.push(l.act.to_string());
        }
        let ty = |t: usize| {
            p.tensor_types
                .get(t)
                .map_or("f32".to_string(), |e| e.rust_name().to_string())
        };
        Description {
            index: i,
            name: l.name.clone(),
            fused: l.fused.clone(),
            op: l.op,
            input: format!("{} {}", shape_str(&l.in_shape), ty(l.inputs[0])),
            output: format!("{} {}", shape_str(&l.out_shape), ty(l.output)),
            geometry,
            macs: l.macs,
            params: l.params,
            kernel: l.kernel.name(),
            tiles: l.kernel.tiles(),
            epilogue,
            why: l.why.clone(),
        }
    }

    /// The doc comment lines of the layer's function in generated code
    /// (each with its leading space).
    pub fn doc_lines(&self) -> Vec<String> {
        let mut from = vec![format!("`{}`", self.name)];
        from.extend(self.fused.iter().map(|f| format!("`{f}`")));
        let mut lines = vec![format!(" Layer {}: {} from {}.", self.index, self.op, from.join(" + "))];
        let io = format!("{} -> {}", self.input, self.output);
        let what = match &self.geometry {
            Some(g) => format!(" {g}: {io}"),
            None => format!(" {io}"),
        };
        lines.push(format!(
            "{what}; {} MACs, {} params.",
            human(self.macs),
            human(self.params as u64)
        ));
        let epi = if self.epilogue.is_empty() {
            String::new()
        } else {
            format!(", epilogue {}", self.epilogue.join(" + "))
        };
        lines.push(format!(" Kernel `{}`, tiles {}{epi}.", self.kernel, self.tiles));
        if !self.why.is_empty() {
            lines.push(format!(" Schedule: {}.", self.why));
        }
        lines
    }

    /// The op column of `mncc inspect`: the op and its fused epilogue
    /// (`Conv+res+relu6`; the bias goes without saying).
    pub fn op_column(&self) -> String {
        let epi: Vec<String> = self
            .epilogue
            .iter()
            .filter(|e| *e != "bias")
            .map(|e| {
                if e == "residual add" {
                    "res".to_string()
                } else {
                    e.clone()
                }
            })
            .collect();
        if epi.is_empty() {
            self.op.to_string()
        } else {
            format!("{}+{}", self.op, epi.join("+"))
        }
    }
}
