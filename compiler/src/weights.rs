//! Weights for a layer table: from a safetensors file (mncc's naming or
//! torchvision's state_dict names for v2), or seeded random weights whose
//! BatchNorm statistics are calibrated so activations keep their scale.

use crate::arch::{self, LayerDef, LayerKind, LayerWeights, WeightTable};
use crate::interp::{self, InputData};
use crate::ir::{BatchNormCfg, Op, Param, INPUT};
use crate::rng::Rng;
use crate::spec::{ModelSpec, WeightSource};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeSet;
use std::path::Path;

/// Loads or generates the weights of `layers` (whose sizes
/// [`check_sizes`] has accepted). Every problem in a weights file is
/// reported at once, one per line.
pub fn load(spec: &ModelSpec, layers: &[LayerDef]) -> Result<WeightTable, String> {
    match &spec.weights {
        WeightSource::Seed(seed) => seeded(spec, layers, *seed),
        WeightSource::File(path) => {
            let bytes =
                crate::limits::read(path, "weights file", crate::limits::MAX_WEIGHT_BYTES).map_err(|e| match e {
                    crate::limits::ReadError::Io(io) => format!(
                        "cannot read weights file {} (named by {}): {io}",
                        path.display(),
                        spec.weights_origin
                    ),
                    crate::limits::ReadError::Refused(m) => {
                        format!("{}: {m} (named by {})", path.display(), spec.weights_origin)
                    }
                })?;
            from_safetensors(spec, layers, &bytes, path)
        }
    }
}

/// Every layer's weight against [`crate::limits`], before anything of that
/// size is allocated.
pub fn check_sizes(layers: &[LayerDef]) -> Result<(), String> {
    const HINT: &str = "lower `classes`, `alpha` or `resolution`";
    let mut total = 0usize;
    for l in layers {
        if let Some(shape) = weight_shape(&l.kind) {
            let n = crate::limits::elements(&shape).map_err(|e| format!("layer `{}`: {e} ({HINT})", l.name))?;
            total = total.saturating_add(4 * n);
        }
    }
    crate::limits::check_bytes("the weights as f32", total, crate::limits::MAX_WEIGHT_BYTES)
        .map_err(|e| format!("{e} ({HINT})"))
}

/// The expected shape of a layer's weight.
fn weight_shape(kind: &LayerKind) -> Option<Vec<usize>> {
    match *kind {
        LayerKind::Conv {
            in_c,
            out_c,
            kernel,
            groups,
            ..
        } => Some(vec![out_c, in_c / groups, kernel, kernel]),
        LayerKind::Dense { in_f, out_f } => Some(vec![out_f, in_f]),
        LayerKind::Pool => None,
    }
}

fn out_channels(kind: &LayerKind) -> usize {
    match *kind {
        LayerKind::Conv { out_c, .. } => out_c,
        LayerKind::Dense { out_f, .. } => out_f,
        LayerKind::Pool => 0,
    }
}

/// What a safetensors decoding error says about the file, in words (the
/// library's variant names mean nothing to a user).
fn explain_safetensors(e: &safetensors::SafeTensorError, len: usize) -> String {
    use safetensors::SafeTensorError as E;
    let header = "a safetensors file starts with an 8-byte little-endian header length, then that many bytes of JSON";
    match e {
        E::HeaderTooSmall => format!("the file is {len} bytes, too short for a header ({header})"),
        E::HeaderTooLarge => format!("the header length in the first 8 bytes is over 100 MB: is this a safetensors file? ({header})"),
        E::InvalidHeaderLength => format!("the header length in the first 8 bytes is larger than the {len}-byte file ({header}): is it truncated?"),
        E::InvalidHeader | E::InvalidHeaderStart | E::InvalidHeaderDeserialization | E::JsonError(_) => {
            format!("the header is not the JSON object of tensor names, dtypes, shapes and offsets ({header})")
        }
        E::InvalidOffset(name) => format!(
            "the data offsets of tensor `{}` do not fit the data after the header (they must be in order, contiguous and within the file): is it truncated?",
            crate::diag::cut(name)
        ),
        E::MetadataIncompleteBuffer => "the tensors' data offsets do not cover the data after the header exactly (is the file truncated, or has bytes appended?)".into(),
        E::TensorInvalidInfo | E::ValidationOverflow | E::InvalidTensorView(..) => {
            "a tensor's shape and dtype do not match its data offsets".into()
        }
        E::TensorNotFound(name) => format!("tensor `{}` is not in the file", crate::diag::cut(name)),
        E::IoError(io) => format!("read error: {io}"),
    }
}

/// Parses safetensors bytes against the layer table.
pub fn from_safetensors(
    spec: &ModelSpec,
    layers: &[LayerDef],
    bytes: &[u8],
    path: &Path,
) -> Result<WeightTable, String> {
    let shown = path.display();
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        format!(
            "{shown}: not a valid safetensors file: {}",
            explain_safetensors(&e, bytes.len())
        )
    })?;
    let names: BTreeSet<String> = st.names().into_iter().cloned().collect();
    let torchvision = names.iter().any(|n| n.starts_with("features."));
    if torchvision
        && layers
            .iter()
            .all(|l| l.torchvision.is_none() || matches!(l.kind, LayerKind::Pool))
    {
        return Err(format!(
            "{shown}: tensor names look like torchvision's (`features.*`), which mncc accepts only for mobilenet_v2; \
             rename them to mncc's convention (README, \"Weights\")"
        ));
    }
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    let mut table = WeightTable::new();
    let get = |key: &str,
               shapes: &[Vec<usize>],
               problems: &mut Vec<String>,
               used: &mut BTreeSet<String>|
     -> Option<Vec<f32>> {
        used.insert(key.to_string());
        let t = match st.tensor(key) {
            Ok(t) => t,
            Err(_) => {
                problems.push(format!("missing tensor `{key}` (expected shape {:?})", shapes[0]));
                return None;
            }
        };
        if !shapes.iter().any(|s| s.as_slice() == t.shape()) {
            let alts: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
            problems.push(format!(
                "tensor `{key}` has shape {:?}, expected {}",
                t.shape(),
                alts.join(" or ")
            ));
            return None;
        }
        match to_f32(t.dtype(), t.data()) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(format!("tensor `{key}`: {e}"));
                None
            }
        }
    };
    for l in layers {
        let Some(wshape) = weight_shape(&l.kind) else {
            continue;
        };
        let oc = out_channels(&l.kind);
        let (wkey, bnkey) = match (&l.torchvision, torchvision) {
            (Some((w, bn)), true) => (w.clone(), bn.clone()),
            _ => (l.name.clone(), Some(format!("{}.bn", l.name))),
        };
        let mut shapes = vec![wshape.clone()];
        if let LayerKind::Dense { in_f, out_f } = l.kind {
            shapes.push(vec![out_f, in_f, 1, 1]);
        }
        let weight = get(&format!("{wkey}.weight"), &shapes, &mut problems, &mut used);
        let bias_key = format!("{wkey}.bias");
        let bias = if names.contains(&bias_key) {
            get(&bias_key, &[vec![oc]], &mut problems, &mut used)
        } else {
            None
        };
        let mut bn = None;
        if let Some(bk) = bnkey.filter(|_| matches!(l.kind, LayerKind::Conv { .. })) {
            let parts = ["weight", "bias", "running_mean", "running_var"];
            let present: Vec<bool> = parts.iter().map(|p| names.contains(&format!("{bk}.{p}"))).collect();
            if present.iter().any(|&p| p) || (bias.is_none() && !names.contains(&bias_key)) {
                let vals: Vec<Option<Vec<f32>>> = parts
                    .iter()
                    .map(|p| get(&format!("{bk}.{p}"), &[vec![oc]], &mut problems, &mut used))
                    .collect();
                used.insert(format!("{bk}.num_batches_tracked"));
                if let [Some(g), Some(b), Some(m), Some(v)] = &vals[..] {
                    bn = Some(BatchNormCfg {
                        gamma: g.clone(),
                        beta: b.clone(),
                        mean: m.clone(),
                        var: v.clone(),
                        eps: spec.bn_eps,
                    });
                }
            }
        }
        if let Some(w) = weight {
            table.insert(
                l.name.clone(),
                LayerWeights {
                    weight: Param::new(wshape, w),
                    bias,
                    bn,
                },
            );
        }
    }
    let extra: Vec<&String> = names.iter().filter(|n| !used.contains(*n)).collect();
    if !extra.is_empty() {
        let list: Vec<String> = extra.iter().take(10).map(|n| format!("`{n}`")).collect();
        let more = if extra.len() > 10 {
            format!(" and {} more", extra.len() - 10)
        } else {
            String::new()
        };
        problems.push(format!(
            "unexpected tensor(s) {}{more}: not part of this model",
            list.join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(table)
    } else {
        Err(format!(
            "{shown} does not fit {} ({} problem(s)):\n  {}",
            spec.describe(),
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

fn to_f32(dtype: Dtype, data: &[u8]) -> Result<Vec<f32>, String> {
    Ok(match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
            .collect(),
        other => {
            return Err(format!(
                "element type {other:?} is not supported (F32, F64, F16, BF16 are)"
            ))
        }
    })
}

/// IEEE half to single, exact.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // subnormal: value = frac * 2^-24
            return f32::from_bits(sign) + (if sign != 0 { -1.0 } else { 1.0 }) * frac as f32 * 2f32.powi(-24);
        }
        (0x1f, _) => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 112) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

/// Random weights: He-normal convs (`std = sqrt(2 / fan_in)`), classifier
/// `std = sqrt(1 / fan_in)`, BatchNorm `gamma` in [0.7, 1.3], `beta` in
/// [-0.1, 0.3]; the running mean and variance are then measured on a seeded
/// random input, layer by layer, so each BN really normalizes its input and
/// activations neither vanish nor explode through the net.
pub fn seeded(spec: &ModelSpec, layers: &[LayerDef], seed: u64) -> Result<WeightTable, String> {
    let mut rng = Rng::new(seed);
    let mut table = WeightTable::new();
    for l in layers {
        let Some(shape) = weight_shape(&l.kind) else {
            continue;
        };
        let n: usize = shape.iter().product();
        let oc = shape[0];
        let fan_in = n / oc;
        let (std, bias, bn) = match l.kind {
            LayerKind::Dense { .. } => ((1.0 / fan_in as f64).sqrt(), Some(vec![0.0; oc]), None),
            _ => {
                let bn = BatchNormCfg {
                    gamma: (0..oc).map(|_| rng.uniform(0.7, 1.3) as f32).collect(),
                    beta: (0..oc).map(|_| rng.uniform(-0.1, 0.3) as f32).collect(),
                    mean: vec![0.0; oc],
                    var: vec![1.0; oc],
                    eps: spec.bn_eps,
                };
                ((2.0 / fan_in as f64).sqrt(), None, Some(bn))
            }
        };
        let data = (0..n).map(|_| (rng.normal() * std) as f32).collect();
        table.insert(
            l.name.clone(),
            LayerWeights {
                weight: Param::new(shape, data),
                bias,
                bn,
            },
        );
    }
    calibrate(spec, layers, &mut table, seed)?;
    Ok(table)
}

/// The largest resolution seeded weights are calibrated at. Beyond it the
/// deep layers' maps are 16x16 or more, where padding no longer biases the
/// statistics, and the f64 reference would take minutes (v1 1.0 at 2048:
/// 47 G multiply-adds, 250 s; at 512, 16 s).
pub const CALIBRATION_MAX_RESOLUTION: usize = 512;

/// Sets every BN's running statistics to the measured per-channel mean and
/// variance of its input on a random input at the model's resolution (a
/// smaller one would see mostly padding in the deep 3x3 layers and
/// underestimate their variance), up to [`CALIBRATION_MAX_RESOLUTION`].
fn calibrate(spec: &ModelSpec, layers: &[LayerDef], table: &mut WeightTable, seed: u64) -> Result<(), String> {
    let g = arch::build(spec, layers, table, spec.resolution.min(CALIBRATION_MAX_RESOLUTION))?;
    let input = InputData::random(spec.input.dtype, g.tensors[INPUT].shape.iter().product(), seed ^ 0xca1b);
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); g.tensors.len()];
    values[INPUT] = interp::input_nchw(&g, &input)?;
    // Each value is dropped after its last reader: the live set, not every
    // activation of the model, is in memory (a v1 1.0 at 2048x2048 would
    // otherwise hold 10 GB of f64).
    let mut last_read = vec![0usize; g.tensors.len()];
    for (k, n) in g.nodes.iter().enumerate() {
        for &i in &n.inputs {
            last_read[i] = k;
        }
    }
    for (k, n) in g.nodes.iter().enumerate() {
        let mut op = n.op.clone();
        if let Op::BatchNorm(bn) = &mut op {
            let x = &values[n.inputs[0]];
            let s = &g.tensors[n.inputs[0]].shape;
            let (c, hw) = (s[1], s[2] * s[3]);
            let layer = n.name.trim_end_matches(".bn");
            let stored = table
                .get_mut(layer)
                .and_then(|w| w.bn.as_mut())
                .ok_or("internal error: BN without layer")?;
            for ch in 0..c {
                let v = &x[ch * hw..(ch + 1) * hw];
                let mean = v.iter().sum::<f64>() / hw as f64;
                let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / hw as f64;
                bn.mean[ch] = mean as f32;
                bn.var[ch] = var.max(1e-4) as f32;
            }
            stored.mean = bn.mean.clone();
            stored.var = bn.var.clone();
        }
        let ins: Vec<&[f64]> = n.inputs.iter().map(|&i| values[i].as_slice()).collect();
        let shapes: Vec<&[usize]> = n.inputs.iter().map(|&i| g.tensors[i].shape.as_slice()).collect();
        let types: Vec<_> = n.inputs.iter().map(|&i| &g.tensors[i].ty).collect();
        values[n.output] = interp::eval(&op, &ins, &shapes, &types, &g.tensors[n.output].shape);
        for &i in &n.inputs {
            if last_read[i] == k && i != g.output {
                values[i] = Vec::new();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every activation of seeded models keeps a sane scale, from the first
    /// layer to the logits.
    #[test]
    fn seeded_activations_neither_vanish_nor_explode() {
        for toml in [
            "arch = \"v1\"\nalpha = 0.5\nresolution = 160\nactivation = \"relu\"\n[weights]\nseed = 2\n",
            "arch = \"v2\"\nalpha = 0.35\nresolution = 128\n[input]\ndtype = \"u8\"\nmean = 127.5\nstd = 127.5\n[weights]\nseed = 5\n",
        ] {
            let spec = crate::spec::parse(toml, "t.toml", "t", Path::new(".")).unwrap();
            let m = crate::from_spec(spec).unwrap();
            let x = InputData::random(m.graph.input.dtype, m.graph.tensors[INPUT].len(), 9);
            let values = interp::run_all(&m.graph, &x).unwrap();
            for n in &m.graph.nodes {
                let v = &values[n.output];
                let rms = (v.iter().map(|a| a * a).sum::<f64>() / v.len() as f64).sqrt();
                assert!((0.05..20.0).contains(&rms), "{}: rms {rms}", n.name);
            }
        }
    }

    /// Writes `table` as safetensors under torchvision's names (or mncc's).
    fn to_safetensors(layers: &[LayerDef], table: &WeightTable, torchvision: bool) -> Vec<u8> {
        use safetensors::tensor::TensorView;
        let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        for l in layers {
            let Some(w) = table.get(&l.name) else { continue };
            let (wk, bk) = match (&l.torchvision, torchvision) {
                (Some((w, bn)), true) => (w.clone(), bn.clone()),
                _ => (l.name.clone(), Some(format!("{}.bn", l.name))),
            };
            named.push((
                format!("{wk}.weight"),
                w.weight.shape.clone(),
                bytes(w.weight.f32().unwrap()),
            ));
            if let Some(b) = &w.bias {
                named.push((format!("{wk}.bias"), vec![b.len()], bytes(b)));
            }
            if let (Some(bn), Some(bk)) = (&w.bn, bk) {
                for (p, v) in [
                    ("weight", &bn.gamma),
                    ("bias", &bn.beta),
                    ("running_mean", &bn.mean),
                    ("running_var", &bn.var),
                ] {
                    named.push((format!("{bk}.{p}"), vec![v.len()], bytes(v)));
                }
                if torchvision {
                    named.push((format!("{bk}.num_batches_tracked"), vec![], 7i64.to_le_bytes().to_vec()));
                }
            }
        }
        let views: Vec<(String, TensorView)> = named
            .iter()
            .map(|(n, shape, b)| {
                let dtype = if n.ends_with("num_batches_tracked") {
                    Dtype::I64
                } else {
                    Dtype::F32
                };
                (n.clone(), TensorView::new(dtype, shape.clone(), b).unwrap())
            })
            .collect();
        safetensors::serialize(views, &None).unwrap()
    }

    /// torchvision's MobileNetV2 `state_dict` names (features.N.conv.K..., as in
    /// torchvision/models/mobilenetv2.py) load into the same weights as mncc's names.
    #[test]
    fn torchvision_and_mncc_names_load_the_same_weights() {
        for alpha in ["0.35", "1.0"] {
            let toml = format!("arch = \"v2\"\nalpha = {alpha}\nresolution = 96\n[weights]\nseed = 3\n");
            let spec = crate::spec::parse(&toml, "t.toml", "t", Path::new(".")).unwrap();
            let layers = arch::layers(&spec);
            let table = seeded(&spec, &layers, 3).unwrap();
            for tv in [true, false] {
                let bytes = to_safetensors(&layers, &table, tv);
                let loaded = from_safetensors(&spec, &layers, &bytes, Path::new("w.safetensors")).unwrap();
                assert!(loaded == table, "alpha {alpha}, torchvision names: {tv}");
            }
            // A few names as torchvision spells them.
            let names: Vec<String> = SafeTensors::deserialize(&to_safetensors(&layers, &table, true))
                .unwrap()
                .names()
                .into_iter()
                .cloned()
                .collect();
            for n in [
                "features.0.0.weight",
                "features.1.conv.0.0.weight",
                "features.1.conv.1.weight",
                "features.1.conv.2.running_var",
                "features.2.conv.0.0.weight",
                "features.2.conv.1.0.weight",
                "features.2.conv.2.weight",
                "features.2.conv.3.bias",
                "features.17.conv.3.running_mean",
                "features.18.0.weight",
                "features.18.1.weight",
                "classifier.1.weight",
                "classifier.1.bias",
            ] {
                assert!(names.iter().any(|m| m == n), "{n} missing");
            }
        }
    }

    #[test]
    fn f16_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
