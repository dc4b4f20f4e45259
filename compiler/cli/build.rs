//! Embeds the runtime crate's sources (and those of `mncc-abi`, its one
//! dependency) in the compiler, so `mncc verify` and `mncc bench` can build
//! generated code against the exact runtime this compiler targets, with no
//! network and no path to a checkout.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, base, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p.strip_prefix(base).unwrap().to_path_buf());
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let runtime = manifest.join("../../runtime");
    let mut files = Vec::new();
    for dir in ["src", "abi/src"] {
        let d = runtime.join(dir);
        collect(&d, &runtime, &mut files);
        println!("cargo:rerun-if-changed={}", d.display());
    }
    let mut code = String::from(
        "/// The runtime crate's `src/` and `abi/src/` files: (path relative to `runtime/`, contents).\npub const RUNTIME_SOURCES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        let abs = runtime.join(f);
        println!("cargo:rerun-if-changed={}", abs.display());
        code += &format!(
            "    ({:?}, include_str!({:?})),\n",
            f.to_string_lossy().replace('\\', "/"),
            abs.to_string_lossy()
        );
    }
    code += "];\n";
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("runtime_sources.rs");
    std::fs::write(out, code).unwrap();
}
