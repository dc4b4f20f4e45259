//! The memory planner on real networks: over the v1/v2 matrix of widths and
//! resolutions the arena equals its lower bound (the largest set of tensors
//! live at once), so no model asks for more memory than it must.

use std::path::Path;

#[test]
fn arena_equals_lower_bound_across_the_matrix() {
    let mut report = Vec::new();
    for arch in ["v1", "v2"] {
        for alpha in ["0.25", "0.35", "0.5", "0.75", "1.0", "1.3", "1.4"] {
            for res in [96, 128, 160, 192, 224] {
                // The plan depends only on shapes: zero weights skip loading and calibration.
                let toml = format!("arch = \"{arch}\"\nalpha = {alpha}\nresolution = {res}\n[weights]\nseed = 1\n");
                let spec = mncc::spec::parse(&toml, "m.toml", "m", Path::new(".")).unwrap();
                let layers = mncc::arch::layers(&spec);
                let table = shapes_only(&layers);
                let g = mncc::arch::build(&spec, &layers, &table, res).unwrap();
                let (g, reports) = mncc::passes::optimize(g).unwrap();
                let p = mncc::lower::lower(&g, reports, &mncc::lower::Target::PORTABLE).unwrap();
                if p.arena_len != p.arena_lower_bound {
                    report.push(format!(
                        "{arch} {alpha} {res}: arena {} > lower bound {}",
                        p.arena_len, p.arena_lower_bound
                    ));
                }
            }
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

/// Zero weights of the right shapes (BatchNorm with unit variance).
fn shapes_only(layers: &[mncc::arch::LayerDef]) -> mncc::arch::WeightTable {
    use mncc::arch::{LayerKind, LayerWeights};
    use mncc::ir::{BatchNormCfg, Param};
    let mut t = mncc::arch::WeightTable::new();
    for l in layers {
        let (shape, bn) = match l.kind {
            LayerKind::Conv {
                in_c,
                out_c,
                kernel,
                groups,
                ..
            } => (vec![out_c, in_c / groups, kernel, kernel], Some(out_c)),
            LayerKind::Dense { in_f, out_f } => (vec![out_f, in_f], None),
            LayerKind::Pool => continue,
        };
        let n = shape.iter().product();
        let bn = bn.map(|c| BatchNormCfg {
            gamma: vec![1.0; c],
            beta: vec![0.0; c],
            mean: vec![0.0; c],
            var: vec![1.0; c],
            eps: 1e-5,
        });
        t.insert(
            l.name.clone(),
            LayerWeights {
                weight: Param::new(shape, vec![0.0; n]),
                bias: None,
                bn,
            },
        );
    }
    t
}
