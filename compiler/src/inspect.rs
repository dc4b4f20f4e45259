//! `mncc inspect`: a table per layer (from [`crate::lower::describe`]) and
//! the totals. (The footprint of `--code-size`, which builds and links the
//! generated code, is the command line's.)

use crate::lower::describe::Description;
use crate::lower::{Program, Step};
use std::fmt::Write;

fn shape(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}

/// `1.23 GiB`, `1.23 MiB` or `45.6 KiB`.
pub fn mib(bytes: usize) -> String {
    if bytes >= 1 << 30 {
        format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else if bytes >= 1 << 20 {
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
        "input {} {} {}, output {}{}",
        shape(&p.input_shape),
        p.input_type.short_name(),
        p.input_layout,
        shape(&p.output_shape),
        if p.output_shape.len() == 4 {
            format!(" {}", p.output_layout)
        } else {
            String::new()
        }
    );
    if p.batch > 1 {
        let _ = writeln!(
            s,
            "batch {}: `run` computes the layers below for each image in turn, in the same arena",
            p.batch
        );
    }
    let passes: Vec<String> = p.passes.iter().map(|r| format!("{} x{}", r.name, r.rewrites)).collect();
    let _ = writeln!(s, "passes: {}", passes.join(", "));
    let _ = writeln!(s, "target: {}", p.target.describe());
    let _ = writeln!(s);
    let rows: Vec<[String; 10]> = (0..p.layers.len())
        .map(|i| {
            let d = Description::of(p, i);
            let l = &p.layers[i];
            let elem = |t: usize| p.tensor_types[t].short_name();
            [
                i.to_string(),
                cut(&d.name, NAME_COLUMN),
                d.op_column(),
                format!("{}>{}", elem(l.inputs[0]), elem(l.output)),
                shape(&p.layers[i].in_shape),
                shape(&p.layers[i].out_shape),
                d.macs.to_string(),
                d.params.to_string(),
                d.kernel,
                d.tiles,
            ]
        })
        .collect();
    let head = [
        "#", "layer", "op", "types", "input", "output", "MACs", "params", "kernel", "tiles",
    ];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (k, (c, w)) in cells.iter().zip(width).enumerate() {
            // numbers right-aligned
            if matches!(k, 0 | 6 | 7) {
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
    // The integer layers' quantization (weights per tensor or per channel,
    // the output's scale and zero point).
    for (i, l) in p.layers.iter().enumerate() {
        let integer = l.int.is_some()
            || matches!(
                l.kernel,
                crate::lower::Kernel::Quantize { .. }
                    | crate::lower::Kernel::Dequantize { .. }
                    | crate::lower::Kernel::QAdd { .. }
                    | crate::lower::Kernel::QGlobalAvgPool(_)
                    | crate::lower::Kernel::QMul(_)
                    | crate::lower::Kernel::QTable(_)
                    | crate::lower::Kernel::QSoftmax(_)
                    | crate::lower::Kernel::QMean(_)
                    | crate::lower::Kernel::DynQuantize { .. }
            );
        if integer && !l.why.is_empty() {
            let _ = writeln!(s, "  layer {i} `{}`: {}", l.name, l.why);
        }
    }
    for (i, l) in p.layers.iter().enumerate() {
        if !l.fused.is_empty() {
            let _ = writeln!(s, "  layer {i} `{}` also computes: {}", l.name, l.fused.join(", "));
        }
    }
    for step in &p.steps {
        if let Step::Banded {
            pointwise,
            depthwise,
            shape: b,
        } = step
        {
            let o = &p.layers[*pointwise].out_shape;
            let _ = writeln!(
                s,
                "  layers {pointwise} and {depthwise} run in bands of {} output rows: the {}x{}x{} tensor between them is never stored whole (scratch: {} of its rows per thread, 2 threads)",
                b.band,
                o[0],
                o[1],
                o[2],
                b.scratch_rows()
            );
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "MACs          {} ({:.1} M){}",
        p.macs(),
        p.macs() as f64 / 1e6,
        if p.batch > 1 { " per image" } else { "" }
    );
    let _ = writeln!(s, "params        {}", p.params());
    let _ = writeln!(
        s,
        "weight bytes  {} ({}, packed, with alignment padding)",
        p.blob.len(),
        mib(p.blob.len())
    );
    // The planned tensors against their lower bound; the AMX layers'
    // scratch (from `amx_at` on) apart.
    let planned = if p.amx_scratch > 0 { p.amx_at } else { p.arena_len };
    let _ = writeln!(
        s,
        "arena bytes   {} ({}); lower bound {} ({}), {:.2}x{}",
        p.arena_len,
        mib(p.arena_len),
        p.arena_lower_bound,
        mib(p.arena_lower_bound),
        if p.arena_lower_bound == 0 {
            1.0
        } else {
            planned as f64 / p.arena_lower_bound as f64
        },
        if p.amx_scratch > 0 {
            format!(
                "; plus the AMX scratch, {} bytes ({}: {} threads' parts of {} bytes)",
                p.arena_len - planned,
                mib(p.arena_len - planned),
                crate::lower::amx::PARTS,
                p.amx_scratch
            )
        } else {
            String::new()
        }
    );
    s
}

/// The widest layer name the table shows whole (tf2onnx's names run to 250
/// characters); a longer one keeps its start and end around a `…`.
const NAME_COLUMN: usize = 48;

/// `name` cut to `max` characters, if longer: a TFLite fused name
/// (`a;b;c`, the ops folded into one) to its first op, then the middle.
fn cut(name: &str, max: usize) -> String {
    let fused;
    let name = match name.split_once(';') {
        Some((first, _)) if name.chars().count() > max => {
            fused = format!("{first};…");
            fused.as_str()
        }
        _ => name,
    };
    let n = name.chars().count();
    if n <= max {
        return name.to_string();
    }
    let head = (max - 1) / 2;
    let tail = max - 1 - head;
    let start: String = name.chars().take(head).collect();
    let end: String = name.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn long_layer_names_are_cut() {
        assert_eq!(cut("conv_dw_1", 48), "conv_dw_1");
        let fused = format!("{};{}", "a/relu6", "x".repeat(80));
        assert_eq!(cut(&fused, 48), "a/relu6;…");
        // A long first op of a fused name: cut in the middle, once.
        let long_first = format!("{};{}", "y".repeat(60), "z".repeat(60));
        let c = cut(&long_first, 48);
        assert_eq!(c.chars().count(), 48, "{c}");
        assert!(c.starts_with("yyy") && c.ends_with(";…"), "{c}");
        let long = "abcdefghij".repeat(10);
        let c = cut(&long, 11);
        assert_eq!(c, "abcde…fghij");
        assert_eq!(c.chars().count(), 11);
    }
}
