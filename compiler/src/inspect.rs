//! `mncc inspect`: a table per layer and the totals; with `--code-size
//! TARGET`, the footprint: the memory the model needs and the code size of
//! the generated module and the runtime as linked for that target.

use crate::harness::write as write_file;
use crate::lower::describe::Description;
use crate::lower::{Program, Step};
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
    let _ = writeln!(s, "target: {}", p.target.describe());
    let _ = writeln!(s);
    let rows: Vec<[String; 9]> = (0..p.layers.len())
        .map(|i| {
            let d = Description::of(p, i);
            [
                i.to_string(),
                d.name.clone(),
                d.op_column(),
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
    let _ = writeln!(s, "MACs          {} ({:.1} M)", p.macs(), p.macs() as f64 / 1e6);
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

// ---------------------------------------------------------------------------
// Footprint: the memory a model needs, and its code as linked for a target.

/// Sizes of a model's generated module and the runtime, linked for one
/// target (see [`code_size`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeSize {
    /// The target triple.
    pub target: String,
    /// The optimization level it was built with (`0`..`3`, `s`, `z`).
    pub opt_level: String,
    /// What was linked: a bare-metal image or a shared library.
    pub artifact: String,
    /// Bytes of executable sections (`.text` and the like).
    pub code: u64,
    /// Bytes of read-only data sections (`.rodata` and the like), weights included.
    pub rodata: u64,
    /// Bytes of initialized writable data (copied from flash to RAM at boot on a microcontroller).
    pub data: u64,
    /// Bytes of zero-initialized data.
    pub bss: u64,
    /// Bytes of the weight blob's `static`, as linked (with its alignment padding).
    pub weights: u64,
    /// Function bytes by origin: the generated module (and the entry point
    /// calling it), `mncc_runtime` functions, everything else (`core`,
    /// `compiler_builtins`, loader stubs). Code inlined by LTO counts where
    /// it landed. `None` without a symbol table.
    pub functions: Option<[u64; 3]>,
}

/// Whether a triple names a bare-metal target (`thumbv7em-none-eabihf`,
/// `riscv32imac-unknown-none-elf`, ...).
pub fn is_bare_metal(target: &str) -> bool {
    target.split('-').any(|c| c == "none")
}

/// The crate root of the code-size build, after its `#![no_std]` (and, for
/// a bare-metal image, `#![no_main]`): the one exported entry point.
const SIZE_MAIN: &str = r#"mod model;

/// The image's entry point (or the library's one export): one inference
/// on the caller's buffers.
#[no_mangle]
pub extern "C" fn mncc_run(input: &model::Input, output: &mut model::Output, arena: &mut model::Arena) {
    model::run(input, output, arena);
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
"#;

/// Everything reachable from the entry point, in four output sections.
const SIZE_LINK_SCRIPT: &str = "ENTRY(mncc_run);
SECTIONS
{
  .text : { *(.text .text.*) }
  .rodata : { *(.rodata .rodata.*) }
  .data : { *(.data .data.*) }
  .bss (NOLOAD) : { *(.bss .bss.* COMMON) }
}
";

/// Builds the generated module and the runtime for `target` and measures
/// the linked result.
///
/// The crate around the model is minimal: for a bare-metal target (a
/// triple with `none`) an image whose entry point (`mncc_run`, the only
/// root of the linker's garbage collection) calls `run` on the caller's
/// buffers, with a plain linker script; for any other target a `no_std`
/// `cdylib` exporting that function. Both are built in release mode at
/// `opt_level` with fat LTO, one codegen unit and `panic = "abort"` (as
/// `examples/cortex-m`), against the runtime this compiler embeds, in
/// `$MNCC_HARNESS_TARGET` like `mncc verify`. A firmware's own code
/// (startup, drivers, formatting) comes on top. The target must be
/// installed (`rustup target add`); only ELF outputs can be measured.
pub fn code_size(p: &Program, target: &str, opt_level: &str) -> Result<CodeSize, String> {
    use std::path::PathBuf;
    use std::process::Command;
    if !matches!(opt_level, "0" | "1" | "2" | "3" | "s" | "z") {
        return Err(format!("opt-level `{opt_level}`: allowed are 0, 1, 2, 3, s and z"));
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot.join("lib/rustlib").join(target).join("lib").is_dir() {
        return Err(format!(
            "target `{target}`: not installed for {} (rustup target add {target}; `rustc --print target-list` lists the known ones)",
            sysroot.display()
        ));
    }
    let bare = is_bare_metal(target);
    let opt = if opt_level.parse::<u8>().is_ok() {
        opt_level.to_string()
    } else {
        format!("\"{opt_level}\"")
    };
    let kind = if bare {
        ""
    } else {
        "\n[lib]\ncrate-type = [\"cdylib\"]\n"
    };
    let (dir, pkg) = crate::harness::scratch_crate(
        p,
        "mncc_size",
        &format!("{target} {opt_level}"),
        &format!("opt-level = {opt}\nlto = true\ncodegen-units = 1\npanic = \"abort\"\ndebug = false\n"),
        kind,
    )?;
    let root = dir.path();
    if bare {
        write_file(
            &root.join("app/src/main.rs"),
            format!("#![no_std]\n#![no_main]\n{SIZE_MAIN}"),
        )?;
    } else {
        write_file(&root.join("app/src/lib.rs"), format!("#![no_std]\n{SIZE_MAIN}"))?;
    }
    if bare {
        let script = root.join("link.x");
        write_file(&script, SIZE_LINK_SCRIPT)?;
        write_file(
            &root.join(".cargo/config.toml"),
            format!(
                "[target.{target}]\nrustflags = [\"-C\", \"link-arg=-T{}\"]\n",
                script.display().to_string().replace('\\', "/")
            ),
        )?;
    }

    let target_dir = crate::harness::target_dir();
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args([
        "build",
        "--release",
        "--offline",
        "--quiet",
        "--target",
        target,
        "-p",
        &pkg,
    ])
    .current_dir(root)
    .env("CARGO_TARGET_DIR", &target_dir)
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    .env_remove("CARGO_BUILD_TARGET");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run cargo: {e} (is Rust installed?)"))?;
    if !out.status.success() {
        return Err(format!(
            "building for {target} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let dir_out = target_dir.join(target).join("release");
    let (file, artifact) = if bare {
        (dir_out.join(&pkg), "a bare-metal image whose entry point calls `run`")
    } else {
        (
            dir_out.join(format!("lib{pkg}.so")),
            "a no_std cdylib exporting a function that calls `run`",
        )
    };
    let bytes = std::fs::read(&file)
        .map_err(|e| format!("cannot read {} ({e}): only ELF targets can be measured", file.display()))?;
    let elf = Elf::parse(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut s = CodeSize {
        target: target.to_string(),
        opt_level: opt_level.to_string(),
        artifact: artifact.to_string(),
        code: 0,
        rodata: 0,
        data: 0,
        bss: 0,
        weights: 0,
        functions: None,
    };
    for sec in &elf.sections {
        if sec.flags & SHF_ALLOC == 0 {
            continue;
        }
        if sec.flags & SHF_EXECINSTR != 0 {
            s.code += sec.size;
        } else if sec.kind == SHT_NOBITS {
            s.bss += sec.size;
        } else if sec.flags & SHF_WRITE != 0 {
            s.data += sec.size;
        } else {
            s.rodata += sec.size;
        }
    }
    let app = pkg.as_str();
    let mut f = [0u64; 3];
    for sym in &elf.symbols {
        if sym.kind == STT_OBJECT && sym.name.contains("5model7WEIGHTS") {
            s.weights = s.weights.max(sym.size);
        }
        if sym.kind == STT_FUNC {
            let k = if sym.name.contains(app) || sym.name == "mncc_run" {
                0
            } else if sym.name.contains("mncc_runtime") {
                1
            } else {
                2
            };
            f[k] += sym.size;
        }
    }
    if !elf.symbols.is_empty() {
        s.functions = Some(f);
    }
    Ok(s)
}

/// The memory a model needs (target-independent: weights and arena)
/// and, per measured target, its code as linked.
pub fn footprint_report(p: &Program, sizes: &[CodeSize]) -> String {
    let mut s = String::new();
    let weights = p.blob.len();
    let arena = p.arena_len;
    let input = p.input_len() * p.input_type.size();
    let output = p.output_len() * p.output_type.size();
    let _ = writeln!(s);
    let _ = writeln!(s, "footprint (the same on every target: weights and activations)");
    let _ = writeln!(
        s,
        "  weights     {weights} bytes ({}): one 64-byte-aligned `static`, read in place (flash on a microcontroller)",
        mib(weights)
    );
    let _ = writeln!(
        s,
        "  arena       {arena} bytes ({}), lower bound {} bytes: RAM, the caller's (`Arena`, `ARENA_LEN` bytes)",
        mib(arena),
        p.arena_lower_bound
    );
    let _ = writeln!(s, "  input       {input} bytes, output {output} bytes: the caller's");
    for c in sizes {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "code size on {} (opt-level {}, fat LTO, panic=abort; {}):",
            c.target, c.opt_level, c.artifact
        );
        let _ = writeln!(s, "  code        {} bytes ({})", c.code, mib(c.code as usize));
        if let Some([g, r, o]) = c.functions {
            let _ = writeln!(
                s,
                "              functions: generated module {g}, mncc-runtime {r}, core/compiler-builtins/other {o} (inlined code counts where it landed)"
            );
        }
        let _ = writeln!(
            s,
            "  rodata      {} bytes: weights {} + other {}",
            c.rodata,
            c.weights,
            c.rodata.saturating_sub(c.weights)
        );
        let _ = writeln!(s, "  data, bss   {} and {} bytes", c.data, c.bss);
        let _ = writeln!(
            s,
            "  total       {} bytes to store (code + rodata + data: flash); {} bytes of RAM (arena + data + bss) plus the stack",
            c.code + c.rodata + c.data,
            arena as u64 + c.data + c.bss
        );
    }
    s
}

const SHT_NOBITS: u32 = 8;
const SHT_SYMTAB: u32 = 2;
const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;

/// A section header of an ELF file (the fields the footprint needs).
#[derive(Clone, Debug)]
pub struct Section {
    /// Its name.
    pub name: String,
    /// `sh_type`.
    pub kind: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// Bytes.
    pub size: u64,
}

/// A symbol of an ELF file's `.symtab`.
#[derive(Clone, Debug)]
pub struct Symbol {
    /// Its (mangled) name.
    pub name: String,
    /// `STT_*`.
    pub kind: u8,
    /// Bytes.
    pub size: u64,
}

/// The sections and symbols of a little-endian ELF file (32- or 64-bit).
#[derive(Clone, Debug)]
pub struct Elf {
    /// Section headers, in file order.
    pub sections: Vec<Section>,
    /// `.symtab`'s symbols (empty if stripped).
    pub symbols: Vec<Symbol>,
}

impl Elf {
    /// Reads the section headers and the symbol table.
    pub fn parse(b: &[u8]) -> Result<Elf, String> {
        let bad = |what: &str| format!("not a valid little-endian ELF file ({what})");
        let get = |off: usize, n: usize| -> Result<u64, String> {
            let end = off.checked_add(n).ok_or_else(|| bad("offset"))?;
            let s = b.get(off..end).ok_or_else(|| bad("truncated"))?;
            Ok(s.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64))
        };
        if b.len() < 16 || &b[..4] != b"\x7fELF" {
            return Err(bad("no ELF magic"));
        }
        let wide = match b[4] {
            1 => false,
            2 => true,
            _ => return Err(bad("class")),
        };
        if b[5] != 1 {
            return Err(bad("big-endian"));
        }
        let w = if wide { 8 } else { 4 };
        let (shoff, shentsize, shnum, shstrndx) = if wide {
            (get(0x28, 8)?, get(0x3a, 2)?, get(0x3c, 2)?, get(0x3e, 2)?)
        } else {
            (get(0x20, 4)?, get(0x2e, 2)?, get(0x30, 2)?, get(0x32, 2)?)
        };
        struct Raw {
            name: u64,
            kind: u32,
            flags: u64,
            offset: u64,
            size: u64,
            link: u64,
            entsize: u64,
        }
        let mut raw = Vec::new();
        for i in 0..shnum {
            let h = shoff.saturating_add(i.saturating_mul(shentsize)) as usize;
            raw.push(Raw {
                name: get(h, 4)?,
                kind: get(h + 4, 4)? as u32,
                flags: get(h + 8, w)?,
                offset: get(h + 8 + 2 * w, w)?,
                size: get(h + 8 + 3 * w, w)?,
                link: get(h + 8 + 4 * w, 4)?,
                entsize: get(h + 16 + 5 * w, w)?,
            });
        }
        let cstr = |table: &Raw, at: u64| -> String {
            let start = table.offset.saturating_add(at) as usize;
            let end = (table.offset.saturating_add(table.size) as usize).min(b.len());
            let s = b.get(start..end).unwrap_or(&[]);
            let n = s.iter().position(|&c| c == 0).unwrap_or(s.len());
            String::from_utf8_lossy(&s[..n]).into_owned()
        };
        let names = raw.get(shstrndx as usize).ok_or_else(|| bad("section name table"))?;
        let sections = raw
            .iter()
            .map(|r| Section {
                name: cstr(names, r.name),
                kind: r.kind,
                flags: r.flags,
                size: r.size,
            })
            .collect();
        let mut symbols = Vec::new();
        if let Some(t) = raw.iter().find(|r| r.kind == SHT_SYMTAB) {
            let strings = raw.get(t.link as usize).ok_or_else(|| bad("symbol name table"))?;
            let n = t.size.checked_div(t.entsize).unwrap_or(0);
            for i in 0..n {
                let e = t.offset.saturating_add(i.saturating_mul(t.entsize)) as usize;
                let (name, info, size) = if wide {
                    (get(e, 4)?, get(e + 4, 1)?, get(e + 16, 8)?)
                } else {
                    (get(e, 4)?, get(e + 12, 1)?, get(e + 8, 4)?)
                };
                symbols.push(Symbol {
                    name: cstr(strings, name),
                    kind: (info & 0xf) as u8,
                    size,
                });
            }
        }
        Ok(Elf { sections, symbols })
    }
}
