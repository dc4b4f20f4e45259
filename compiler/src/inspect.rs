//! `mncc inspect`: a table per layer and the totals.

use crate::ir::Act;
use crate::lower::Program;
use std::fmt::Write;

fn shape(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}

fn mib(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.2} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// The report as text.
pub fn report(p: &Program) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} ({})", p.name, p.description);
    let _ = writeln!(
        s,
        "input {} {} {}, output {}",
        shape(&p.input_shape),
        p.input_type.rust_name(),
        p.input_layout,
        shape(&p.output_shape)
    );
    let passes: Vec<String> = p.passes.iter().map(|r| format!("{} x{}", r.name, r.rewrites)).collect();
    let _ = writeln!(s, "passes: {}", passes.join(", "));
    let _ = writeln!(s);
    let rows: Vec<[String; 9]> = p
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut epi = Vec::new();
            if l.residual {
                epi.push("+res".to_string());
            }
            if !l.clamp.is_none() {
                epi.push(l.clamp.describe());
            }
            if l.act != Act::None {
                epi.push(l.act.describe());
            }
            [
                i.to_string(),
                l.name.clone(),
                if epi.is_empty() {
                    l.op.to_string()
                } else {
                    format!("{}+{}", l.op, epi.join("+"))
                },
                shape(&l.in_shape),
                shape(&l.out_shape),
                l.macs.to_string(),
                l.params.to_string(),
                l.kernel.name(),
                l.kernel.tiles(),
            ]
        })
        .collect();
    let head = [
        "#", "layer", "op", "input", "output", "MACs", "params", "kernel", "tiles",
    ];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (k, (c, w)) in cells.iter().zip(width).enumerate() {
            // numbers right-aligned
            if matches!(k, 0 | 5 | 6) {
                let _ = write!(out, "{c:>w$}  ");
            } else {
                let _ = write!(out, "{c:<w$}  ");
            }
        }
        out.trim_end().to_string()
    };
    let _ = writeln!(s, "{}", line(&head.map(String::from)));
    for r in &rows {
        let _ = writeln!(s, "{}", line(r));
    }
    for (i, l) in p.layers.iter().enumerate() {
        if !l.fused.is_empty() {
            let _ = writeln!(s, "  layer {i} `{}` also computes: {}", l.name, l.fused.join(", "));
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "MACs          {} ({:.1} M)", p.macs(), p.macs() as f64 / 1e6);
    let _ = writeln!(s, "params        {}", p.params());
    let _ = writeln!(
        s,
        "weight bytes  {} ({}, packed, with alignment padding)",
        p.blob.len() * 4,
        mib(p.blob.len() * 4)
    );
    let _ = writeln!(
        s,
        "arena bytes   {} ({}); lower bound {} ({}), {:.2}x",
        p.arena_len * 4,
        mib(p.arena_len * 4),
        p.arena_lower_bound * 4,
        mib(p.arena_lower_bound * 4),
        if p.arena_lower_bound == 0 {
            1.0
        } else {
            p.arena_len as f64 / p.arena_lower_bound as f64
        }
    );
    s
}
