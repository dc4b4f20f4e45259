//! The TOML model description (documented in the README).
//!
//! Parsing collects every problem it can see at once, each with its line and
//! column, the field, and what is allowed.

use crate::diag::cut;
use crate::diag::Diagnostic;
use crate::ir::{Clamp, ElemType, InputSpec, Layout};
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Which MobileNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// MobileNet v1 (Howard et al. 2017): 13 depthwise-separable blocks.
    V1,
    /// MobileNet v2 (Sandler et al. 2018): inverted residuals, linear bottlenecks.
    V2,
}

impl Arch {
    /// The name used in TOML.
    pub fn name(self) -> &'static str {
        match self {
            Arch::V1 => "mobilenet_v1",
            Arch::V2 => "mobilenet_v2",
        }
    }
}

/// How convolutions pad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// `k / 2` on every side (PyTorch, torchvision).
    Symmetric,
    /// TensorFlow "SAME": the total padding `max((out - 1) * s + k - in, 0)`
    /// split with the extra row/column at the bottom/right (stride-2 layers on
    /// even sizes pad only bottom and right).
    TfSame,
}

/// Where the weights come from.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightSource {
    /// A safetensors file (absolute, or resolved against the TOML's folder).
    File(PathBuf),
    /// Deterministic random weights with calibrated BatchNorm statistics.
    Seed(u64),
}

/// A parsed, validated model description.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Model name (default: the file stem).
    pub name: String,
    /// Architecture.
    pub arch: Arch,
    /// Width multiplier.
    pub alpha: f64,
    /// Input height and width.
    pub resolution: usize,
    /// Number of classes.
    pub classes: usize,
    /// Activation after each conv+BN (ReLU6 unless `activation = "relu"`).
    pub activation: Clamp,
    /// Padding convention.
    pub padding: Padding,
    /// Whether the output is softmax probabilities (else logits).
    pub softmax: bool,
    /// Input element type and layout.
    pub input: InputSpec,
    /// Normalization as `x * scale[c] + offset[c]` per channel, if not identity.
    pub normalize: Option<(Vec<f32>, Vec<f32>)>,
    /// Weights.
    pub weights: WeightSource,
    /// BatchNorm epsilon used with weights that carry BN statistics.
    pub bn_eps: f32,
    /// Where the weights file was named (`weights.file` at file:line:column), for messages.
    pub weights_origin: String,
}

impl ModelSpec {
    /// One line: "mobilenet_v1 alpha 0.25, 224x224, 1000 classes".
    pub fn describe(&self) -> String {
        format!(
            "{} alpha {}, {}x{}, {} classes",
            self.arch.name(),
            self.alpha,
            self.resolution,
            self.resolution,
            self.classes
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<Spanned<String>>,
    arch: Option<Spanned<String>>,
    alpha: Option<Spanned<Number>>,
    resolution: Option<Spanned<i64>>,
    classes: Option<Spanned<i64>>,
    activation: Option<Spanned<String>>,
    padding: Option<Spanned<String>>,
    output: Option<Spanned<String>>,
    input: Option<RawInput>,
    weights: Option<Spanned<RawWeights>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    layout: Option<Spanned<String>>,
    dtype: Option<Spanned<String>>,
    mean: Option<Spanned<PerChannel>>,
    std: Option<Spanned<PerChannel>>,
    scale: Option<Spanned<Number>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeights {
    file: Option<Spanned<String>>,
    seed: Option<Spanned<i64>>,
    bn_eps: Option<Spanned<Number>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn get(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum PerChannel {
    One(Number),
    Three(Vec<Number>),
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

struct Problems<'a> {
    path: &'a str,
    text: &'a str,
    list: Vec<Diagnostic>,
}

impl Problems<'_> {
    /// A problem with the file as a whole (no line to point at).
    fn whole(&mut self, message: String) {
        self.list.push(Diagnostic::msg(message).in_file(Path::new(self.path)));
    }

    fn at(&mut self, span: Range<usize>, message: String) {
        let (line, column) = line_col(self.text, span.start);
        self.list
            .push(Diagnostic::toml(line, column, message).in_file(Path::new(self.path)));
    }
}

/// Reads and validates a TOML description from a file. Relative weight paths
/// are resolved against the file's folder.
pub fn load(path: &Path) -> Result<ModelSpec, Vec<Diagnostic>> {
    let shown = path.display().to_string();
    let bytes = crate::limits::read_file(path, "model description", crate::limits::MAX_TOML_BYTES)
        .map_err(|e| vec![Diagnostic::msg(e).in_file(path)])?;
    let text = String::from_utf8(bytes)
        .map_err(|e| vec![Diagnostic::msg(format!("the model description is not UTF-8 text ({e})")).in_file(path)])?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, &shown, stem, dir)
}

/// Parses and validates a TOML description. `path` is only for messages,
/// `default_name` names the model when it has no `name`, `dir` resolves a
/// relative `weights.file`.
pub fn parse(text: &str, path: &str, default_name: &str, dir: &Path) -> Result<ModelSpec, Vec<Diagnostic>> {
    let mut p = Problems {
        path,
        text,
        list: Vec::new(),
    };
    let raw: Raw = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().to_string();
            p.at(span.clone(), explain_serde(&msg, field_at(text, span.start).as_deref()));
            return Err(p.list);
        }
    };

    let arch = match &raw.arch {
        None => {
            p.whole("missing field `arch`: add `arch = \"mobilenet_v1\"` or `arch = \"mobilenet_v2\"`".into());
            Arch::V1
        }
        Some(a) => match a.get_ref().as_str() {
            "mobilenet_v1" | "v1" => Arch::V1,
            "mobilenet_v2" | "v2" => Arch::V2,
            other => {
                p.at(
                    a.span(),
                    format!(
                        "`arch = \"{}\"` is not supported: allowed are \"mobilenet_v1\" and \"mobilenet_v2\"",
                        cut(other)
                    ),
                );
                Arch::V1
            }
        },
    };
    let alpha = match &raw.alpha {
        None => 1.0,
        Some(a) => {
            let v = a.get_ref().get();
            if !(0.1..=2.0).contains(&v) {
                p.at(a.span(), format!("`alpha = {v}` is out of range: the width multiplier must be in 0.1..=2.0 (common: 0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4)"));
            }
            v
        }
    };
    let resolution = match &raw.resolution {
        None => 224,
        Some(r) => {
            let v = *r.get_ref();
            if !(96..=2048).contains(&v) || v % 32 != 0 {
                p.at(r.span(), format!("`resolution = {v}` is not allowed: it must be a multiple of 32 from 96 to 2048 (e.g. 96, 128, 160, 192, 224)"));
            }
            v.max(0) as usize
        }
    };
    let classes = match &raw.classes {
        None => 1000,
        Some(c) => {
            let v = *c.get_ref();
            if !(1..=1_000_000).contains(&v) {
                p.at(c.span(), format!("`classes = {v}` is out of range: 1..=1000000"));
            }
            v.max(1) as usize
        }
    };
    let activation = match &raw.activation {
        None => Clamp::RELU6,
        Some(a) => match a.get_ref().as_str() {
            "relu6" => Clamp::RELU6,
            "relu" if arch == Arch::V1 => Clamp::RELU,
            other => {
                let allowed = if arch == Arch::V1 {
                    "\"relu6\" or \"relu\""
                } else {
                    "\"relu6\" (mobilenet_v2 is defined with ReLU6)"
                };
                p.at(
                    a.span(),
                    format!(
                        "`activation = \"{}\"` is not supported: allowed is {allowed}",
                        cut(other)
                    ),
                );
                Clamp::RELU6
            }
        },
    };
    let padding = match &raw.padding {
        None => Padding::Symmetric,
        Some(s) => match s.get_ref().as_str() {
            "symmetric" => Padding::Symmetric,
            "tf_same" => Padding::TfSame,
            other => {
                p.at(s.span(), format!("`padding = \"{}\"` is not supported: allowed are \"symmetric\" (PyTorch) and \"tf_same\" (TensorFlow/Keras SAME)", cut(other)));
                Padding::Symmetric
            }
        },
    };
    let softmax = match &raw.output {
        None => false,
        Some(o) => match o.get_ref().as_str() {
            "logits" => false,
            "softmax" => true,
            other => {
                p.at(
                    o.span(),
                    format!(
                        "`output = \"{}\"` is not supported: allowed are \"logits\" and \"softmax\"",
                        cut(other)
                    ),
                );
                false
            }
        },
    };

    let mut input = InputSpec {
        dtype: ElemType::F32,
        layout: Layout::Nchw,
    };
    let mut normalize = None;
    if let Some(i) = &raw.input {
        if let Some(l) = &i.layout {
            input.layout = match l.get_ref().to_ascii_lowercase().as_str() {
                "nchw" => Layout::Nchw,
                "nhwc" => Layout::Nhwc,
                other => {
                    p.at(
                        l.span(),
                        format!(
                            "`input.layout = \"{}\"` is not supported: allowed are \"nchw\" and \"nhwc\"",
                            cut(other)
                        ),
                    );
                    Layout::Nchw
                }
            };
        }
        if let Some(d) = &i.dtype {
            input.dtype = match d.get_ref().as_str() {
                "f32" => ElemType::F32,
                "u8" => ElemType::U8,
                other => {
                    p.at(
                        d.span(),
                        format!(
                            "`input.dtype = \"{}\"` is not supported: allowed are \"f32\" and \"u8\"",
                            cut(other)
                        ),
                    );
                    ElemType::F32
                }
            };
        }
        let mut three = |field: &str, v: &Option<Spanned<PerChannel>>, default: f64, nonzero: bool| -> [f64; 3] {
            let Some(v) = v else { return [default; 3] };
            let vals: Vec<f64> = match v.get_ref() {
                PerChannel::One(n) => vec![n.get(); 3],
                PerChannel::Three(ns) => ns.iter().map(|n| n.get()).collect(),
            };
            if vals.len() != 3 {
                p.at(
                    v.span(),
                    format!(
                        "`input.{field}` has {} values: give one number or 3 (one per RGB channel)",
                        vals.len()
                    ),
                );
                return [default; 3];
            }
            if vals.iter().any(|x| !x.is_finite()) {
                p.at(v.span(), format!("`input.{field}` must be a finite number"));
                return [default; 3];
            }
            if nonzero && vals.contains(&0.0) {
                p.at(v.span(), format!("`input.{field}` must be non-zero"));
                return [default; 3];
            }
            [vals[0], vals[1], vals[2]]
        };
        let mean = three("mean", &i.mean, 0.0, false);
        let std = three("std", &i.std, 1.0, true);
        let scale = match &i.scale {
            None => 1.0,
            Some(s) => {
                let v = s.get_ref().get();
                if v == 0.0 || !v.is_finite() {
                    p.at(s.span(), "`input.scale` must be finite and non-zero".into());
                }
                v
            }
        };
        // x_norm = (x * scale - mean) / std = x * (scale / std) + (-mean / std)
        let sc: Vec<f32> = (0..3).map(|c| (scale / std[c]) as f32).collect();
        let off: Vec<f32> = (0..3).map(|c| (-mean[c] / std[c]) as f32).collect();
        if sc.iter().chain(&off).any(|v| !v.is_finite()) {
            let span = i.std.as_ref().map_or(0..0, |s| s.span());
            p.at(
                span,
                format!(
                    "`input.std` {std:?} is too small for `input.mean` {mean:?} and `input.scale` {scale}: the normalization x * scale / std - mean / std overflows f32"
                ),
            );
        }
        if sc.iter().any(|&s| s != 1.0) || off.iter().any(|&o| o != 0.0) {
            normalize = Some((sc, off));
        }
    }

    let mut weights = WeightSource::Seed(0);
    let mut weights_origin = String::new();
    let mut bn_eps = 1e-5;
    match &raw.weights {
        None => p.whole(
            "missing table `[weights]`: add `[weights]` with `file = \"model.safetensors\"` or `seed = 1` (random weights)".into(),
        ),
        Some(w) => {
            let span = w.span();
            let w = w.get_ref();
            match (&w.file, &w.seed) {
                (Some(f), None) => {
                    if f.get_ref().is_empty() {
                        p.at(f.span(), "`weights.file` is empty: give the path of a .safetensors file".into());
                    }
                    weights = WeightSource::File(dir.join(f.get_ref()));
                    let (line, column) = line_col(text, f.span().start);
                    weights_origin = format!("`weights.file` at {path}:{line}:{column}");
                }
                (None, Some(s)) => {
                    if *s.get_ref() < 0 {
                        p.at(s.span(), "`weights.seed` must be a non-negative integer".into());
                    }
                    weights = WeightSource::Seed(*s.get_ref() as u64);
                }
                (Some(f), Some(_)) => p.at(f.span(), "`[weights]` has both `file` and `seed`: give exactly one".into()),
                (None, None) => p.at(span, "`[weights]` needs `file = \"model.safetensors\"` or `seed = N`".into()),
            }
            if let Some(e) = &w.bn_eps {
                let v = e.get_ref().get();
                if !(v > 0.0 && v < 1.0) {
                    p.at(e.span(), format!("`weights.bn_eps = {v}` must be in (0, 1) (PyTorch uses 1e-5, Keras 1e-3)"));
                }
                bn_eps = v as f32;
            }
        }
    }

    if !p.list.is_empty() {
        return Err(p.list);
    }
    let name = raw
        .name
        .map(|n| n.into_inner())
        .unwrap_or_else(|| default_name.to_string());
    Ok(ModelSpec {
        name,
        arch,
        alpha,
        resolution,
        classes,
        activation,
        padding,
        softmax,
        input,
        normalize,
        weights,
        bn_eps,
        weights_origin,
    })
}

/// What each field takes, for messages about a value of the wrong type.
const FIELDS: &[(&str, &str)] = &[
    ("name", "a string (the module's name)"),
    ("arch", "\"mobilenet_v1\" or \"mobilenet_v2\""),
    ("alpha", "a number from 0.1 to 2.0 (the width multiplier)"),
    ("resolution", "an integer, a multiple of 32 from 96 to 2048"),
    ("classes", "an integer from 1 to 1000000"),
    ("activation", "\"relu\" or \"relu6\""),
    ("padding", "\"symmetric\" or \"tf_same\""),
    ("output", "\"logits\" or \"softmax\""),
    ("input.layout", "\"nchw\" or \"nhwc\""),
    ("input.dtype", "\"f32\" or \"u8\""),
    ("input.mean", "a number or an array of 3 numbers"),
    ("input.std", "a non-zero number or an array of 3"),
    ("input.scale", "a non-zero number"),
    ("weights.file", "a string (the path of a .safetensors file)"),
    ("weights.seed", "a non-negative integer"),
    ("weights.bn_eps", "a number in (0, 1)"),
];

/// The dotted name of the field whose value starts at byte `offset` of
/// `text` (`input.mean`), from the key before it and the table it is in.
fn field_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = text[line_start..offset].split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix('[').and_then(|l| l.split(']').next()))
        .map(|t| t.trim().to_string());
    Some(match table {
        Some(t) if !key.contains('.') => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

/// Turns serde's messages into something a user can act on: the field,
/// what it takes, values cut to a readable length.
fn explain_serde(msg: &str, field: Option<&str>) -> String {
    let wants = field
        .and_then(|f| FIELDS.iter().find(|(n, _)| *n == f))
        .map(|(_, w)| *w);
    let found = msg
        .strip_prefix("invalid type: ")
        .and_then(|m| m.split(", expected").next());
    match (field, wants, found) {
        (Some(f), Some(w), Some(found)) => format!("`{f}`: expected {w}; found {}", cut(found)),
        (Some(f), Some(w), None) if msg.contains("untagged enum") => format!("`{f}`: expected {w}"),
        _ if msg.contains("untagged enum Number") => "expected a number".into(),
        _ if msg.contains("untagged enum PerChannel") => "expected a number or an array of 3 numbers".into(),
        _ => cut_quoted(msg),
    }
}

/// `msg` with every quoted run longer than ~60 characters cut.
fn cut_quoted(msg: &str) -> String {
    let mut out = String::new();
    for (i, part) in msg.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        out.push_str(&if i % 2 == 1 { cut(part) } else { part.to_string() });
    }
    if out.chars().count() > 300 {
        out = cut(&out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Location;

    fn parse_str(s: &str) -> Result<ModelSpec, Vec<Diagnostic>> {
        parse(s, "m.toml", "m", Path::new("/models"))
    }

    #[test]
    fn minimal_and_full() {
        let s = parse_str("arch = \"mobilenet_v2\"\n[weights]\nseed = 3\n").unwrap();
        assert_eq!((s.arch, s.alpha, s.resolution, s.classes), (Arch::V2, 1.0, 224, 1000));
        assert_eq!(s.weights, WeightSource::Seed(3));
        assert!(s.normalize.is_none());
        let s = parse_str(
            "arch = \"mobilenet_v1\"\nalpha = 0.25\nresolution = 192\nclasses = 10\npadding = \"tf_same\"\noutput = \"softmax\"\n\
             [input]\nlayout = \"nhwc\"\ndtype = \"u8\"\nmean = 127.5\nstd = [127.5, 127.5, 127.5]\n[weights]\nfile = \"w.safetensors\"\nbn_eps = 1e-3\n",
        )
        .unwrap();
        assert_eq!(s.weights, WeightSource::File(PathBuf::from("/models/w.safetensors")));
        assert_eq!(
            s.input,
            InputSpec {
                dtype: ElemType::U8,
                layout: Layout::Nhwc
            }
        );
        let (sc, off) = s.normalize.unwrap();
        assert_eq!((sc[0], off[0]), (1.0 / 127.5, -1.0));
        assert!(s.softmax && s.padding == Padding::TfSame && s.bn_eps == 1e-3);
    }

    #[test]
    fn every_problem_with_line_and_column() {
        let e = parse_str("arch = \"mobilenet_v3\"\nalpha = 3\nresolution = 100\n[weights]\nseed = 1\n").unwrap_err();
        let shown: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert!(
            shown[0].starts_with("m.toml:1:8: `arch = \"mobilenet_v3\"` is not supported"),
            "{}",
            shown[0]
        );
        assert!(
            shown[1].starts_with("m.toml:2:9: `alpha = 3` is out of range"),
            "{}",
            shown[1]
        );
        assert!(shown[2].starts_with("m.toml:3:14: `resolution = 100`"), "{}", shown[2]);
    }

    #[test]
    fn unknown_field_and_bad_syntax() {
        let e = parse_str("arch = \"v1\"\nalpah = 0.5\n[weights]\nseed = 1\n").unwrap_err();
        assert_eq!(e[0].location, Location::Toml { line: 2, column: 1 });
        assert!(e[0].message.contains("unknown field `alpah`"), "{}", e[0].message);
        let e = parse_str("arch = \"v1\"\nalpha = = 0.5\n").unwrap_err();
        assert!(matches!(e[0].location, Location::Toml { line: 2, .. }), "{:?}", e[0]);
        let e = parse_str("arch = \"v1\"\nalpha = \"big\"\n[weights]\nseed = 1\n").unwrap_err();
        assert!(matches!(e[0].location, Location::Toml { line: 2, .. }), "{:?}", e[0]);
        assert!(e[0].message.contains("expected a number"), "{}", e[0].message);
    }

    #[test]
    fn weights_table_rules() {
        let e = parse_str("arch = \"v1\"\n").unwrap_err();
        assert!(e[0].message.contains("missing table `[weights]`"));
        let e = parse_str("arch = \"v1\"\n[weights]\nseed = 1\nfile = \"x\"\n").unwrap_err();
        assert!(e[0].message.contains("both `file` and `seed`"));
        let e = parse_str("arch = \"v1\"\n[input]\nmean = [1, 2]\n[weights]\nseed = 1\n").unwrap_err();
        assert!(e[0].message.contains("has 2 values"), "{}", e[0].message);
    }
}
