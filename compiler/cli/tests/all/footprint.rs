//! `mncc inspect --code-size`: the memory a model needs and the code size of
//! the generated module and the runtime as linked for a target.

use crate::common::{mncc, text};
use mncc_cli::footprint::measure;
use std::path::PathBuf;
use std::process::Command;

/// A small seeded model (v1 0.25, 96x96, u8 NHWC, 10 classes).
const MODEL: &str = "tests/no_std/model.toml";

fn rustc() -> Command {
    Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
}

fn host() -> String {
    let o = rustc().arg("-vV").output().expect("run rustc -vV");
    let v = String::from_utf8_lossy(&o.stdout).into_owned();
    v.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("host triple")
        .to_string()
}

fn installed(target: &str) -> bool {
    let o = rustc().args(["--print", "sysroot"]).output().expect("run rustc");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    sysroot.join("lib/rustlib").join(target).join("lib").is_dir()
}

/// The integers on the first line that starts with `prefix` (exactly, spaces included).
fn numbers(out: &str, prefix: &str) -> Vec<u64> {
    let line = out
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"));
    line[prefix.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect()
}

/// Runs `mncc inspect MODEL --code-size target` and checks what holds on
/// every target; returns stdout.
fn inspect_code_size(target: &str) -> String {
    let o = mncc(&["inspect", MODEL, "--code-size", target]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    // The footprint repeats the totals' weight and arena bytes.
    let blob = numbers(&out, "weight bytes  ")[0];
    let arena = numbers(&out, "arena bytes   ")[0];
    assert_eq!(numbers(&out, "  weights     ")[0], blob, "{out}");
    assert_eq!(numbers(&out, "  arena       ")[0], arena, "{out}");
    assert!(
        out.contains(&format!("code size on {target} (opt-level s, fat LTO")),
        "{out}"
    );
    // The linked weight `static` is the blob, padded to its 64-byte alignment.
    let [rodata, weights, other] = numbers(&out, "  rodata      ")[..] else {
        panic!("{out}")
    };
    assert_eq!(weights, blob.div_ceil(64) * 64, "{out}");
    assert_eq!(rodata, weights + other, "{out}");
    let code = numbers(&out, "  code        ")[0];
    let [generated, runtime, other] = numbers(&out, "              functions: ")[..] else {
        panic!("{out}")
    };
    assert!(generated > 0 && runtime + generated > 1000, "{out}");
    assert!(generated + runtime + other <= code, "{out}");
    out
}

#[test]
fn code_size_on_the_host() {
    let out = inspect_code_size(&host());
    println!("{out}");
}

#[test]
fn code_size_on_a_cortex_m4f() {
    let target = "thumbv7em-none-eabihf";
    if !installed(target) {
        eprintln!("SKIPPED: the {target} target is not installed (rustup target add {target})");
        return;
    }
    let out = inspect_code_size(target);
    println!("{out}");
    // Bare metal: nothing to copy from flash to RAM, and the code of a small
    // v1 fits the 64 KiB budget (examples/cortex-m measures the 224 one).
    assert_eq!(numbers(&out, "  data, bss   ")[0], 0, "{out}");
    let code = numbers(&out, "  code        ")[0];
    assert!(code < 64 * 1024, "{code} bytes of code:\n{out}");
}

#[test]
fn code_size_errors_are_clean() {
    for (args, needle) in [
        (
            vec!["--code-size", "no-such-target"],
            "target `no-such-target`: not installed",
        ),
        (
            vec!["--code-size", "x", "--opt-level", "4"],
            "opt-level `4`: allowed are",
        ),
    ] {
        let mut all = vec!["inspect", MODEL];
        all.extend(args);
        let o = mncc(&all);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
        assert!(
            err.lines().any(|l| l.starts_with("error: ") && l.contains(needle)),
            "{err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("internal compiler error"),
            "{err}"
        );
    }
}

#[test]
fn elf_measure_reads_sections_and_symbols_and_rejects_garbage() {
    let exe = std::fs::read(env!("CARGO_BIN_EXE_mncc")).unwrap();
    if exe.starts_with(b"\x7fELF") {
        let m = measure(&exe, "mncc").unwrap();
        assert!(m.code > 0 && m.rodata > 0, "{m:?}");
        let [app, _, other] = m.functions.expect("a symbol table");
        assert!(app > 0 && other > 0, "{m:?}");
        // Truncated: an error, never a panic.
        for len in [0, 3, 16, 64, exe.len() / 2] {
            let _ = measure(&exe[..len], "mncc");
        }
    }
    assert!(measure(b"not an ELF file at all", "x").is_err());
    let mut junk = b"\x7fELF\x01\x01\x01".to_vec();
    junk.resize(64, 0xff);
    assert!(measure(&junk, "x").is_err());
}
