//! `mncc inspect --code-size TARGET`: the memory a model needs, and the
//! code size of the generated module and the runtime as linked for a
//! target (an ELF file read with the `object` crate).

use crate::harness::write as write_file;
use mncc::inspect::mib;
use mncc::lower::Program;
use object::{Object, ObjectSection, ObjectSymbol, SectionFlags, SectionKind, SymbolKind};
use std::fmt::Write;

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
    let m = measure(&bytes, &pkg).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(CodeSize {
        target: target.to_string(),
        opt_level: opt_level.to_string(),
        artifact: artifact.to_string(),
        code: m.code,
        rodata: m.rodata,
        data: m.data,
        bss: m.bss,
        weights: m.weights,
        functions: m.functions,
    })
}

/// What [`measure`] finds in a linked file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Measure {
    /// Bytes of allocated executable sections.
    pub code: u64,
    /// Bytes of allocated read-only data sections.
    pub rodata: u64,
    /// Bytes of allocated writable data sections.
    pub data: u64,
    /// Bytes of allocated zero-initialized sections.
    pub bss: u64,
    /// Bytes of the largest `model::WEIGHTS` symbol.
    pub weights: u64,
    /// Function bytes of the generated module (symbols naming `app`, and
    /// `mncc_run`), of `mncc_runtime`, and of everything else; `None`
    /// without a symbol table.
    pub functions: Option<[u64; 3]>,
}

/// Sizes the allocated sections and the functions of an ELF file (built
/// from package `app`).
pub fn measure(bytes: &[u8], app: &str) -> Result<Measure, String> {
    let file = object::File::parse(bytes).map_err(|e| format!("not a valid ELF file ({e})"))?;
    const SHF_WRITE: u64 = 1;
    const SHF_ALLOC: u64 = 2;
    const SHF_EXECINSTR: u64 = 4;
    let mut m = Measure::default();
    for sec in file.sections() {
        let SectionFlags::Elf { sh_flags } = sec.flags() else {
            return Err("not an ELF file".into());
        };
        if sh_flags & SHF_ALLOC == 0 {
            continue;
        }
        let size = sec.size();
        if sh_flags & SHF_EXECINSTR != 0 {
            m.code += size;
        } else if matches!(
            sec.kind(),
            SectionKind::UninitializedData | SectionKind::UninitializedTls
        ) {
            m.bss += size;
        } else if sh_flags & SHF_WRITE != 0 {
            m.data += size;
        } else {
            m.rodata += size;
        }
    }
    let mut f = [0u64; 3];
    let mut any = false;
    for sym in file.symbols() {
        any = true;
        let name = sym.name().unwrap_or("");
        match sym.kind() {
            SymbolKind::Data if name.contains("5model7WEIGHTS") => m.weights = m.weights.max(sym.size()),
            SymbolKind::Text => {
                let k = if name.contains(app) || name == "mncc_run" {
                    0
                } else if name.contains("mncc_runtime") {
                    1
                } else {
                    2
                };
                f[k] += sym.size();
            }
            _ => {}
        }
    }
    if any {
        m.functions = Some(f);
    }
    Ok(m)
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
