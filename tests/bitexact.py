#!/usr/bin/env python3
"""Bit-for-bit comparison of generated models' outputs between two checkouts.

A restructure must keep every output bit-identical. This script compiles
every model the tests use (tests/models/*.toml, examples/models/*.toml and
*.onnx, tests/fixtures/onnx/*/model.onnx) with `mncc compile` for several
targets, builds them into one crate per target against the checkout's own
runtime, runs each on a seeded input under every instruction set of this CPU
(`isa::set_limit`) through `run`, `run_parallel` on the runtime's StdPool and
`run_parallel` on `par::Serial`, and prints one FNV-1a hash of the output
bytes per (model, target, instruction set, entry point).

    python3 tests/bitexact.py                        # this checkout: hashes to stdout
    python3 tests/bitexact.py --against HEAD~3       # also a worktree of HEAD~3, then compare
    python3 tests/bitexact.py --against REV --targets x86-64 portable
    python3 tests/bitexact.py > before.txt; ...; python3 tests/bitexact.py --compare before.txt

With --against or --compare, exit status 1 when any hash differs (the differing lines are
printed). Work files go to target/bitexact/ of each checkout.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGETS = ["x86-64", "x86-64-amx", "portable"]


def models(root):
    """Model paths relative to `root`, in a fixed order."""
    out = sorted(str(p.relative_to(root)) for p in (root / "tests/models").glob("*.toml"))
    out += sorted(str(p.relative_to(root)) for p in (root / "examples/models").glob("*.toml"))
    out += sorted(str(p.relative_to(root)) for p in (root / "examples/models").glob("*.onnx"))
    out += sorted(str(p.relative_to(root)) for p in (root / "tests/fixtures/onnx").glob("*/model.onnx"))
    return out


def mncc_binary(root, target_dir):
    """Builds the checkout's `mncc` command line and returns its path."""
    pkg = "mncc-cli" if (root / "compiler/cli/Cargo.toml").exists() else "mncc"
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    subprocess.run(["cargo", "build", "-q", "--release", "-p", pkg], cwd=root, env=env, check=True)
    return target_dir / "release" / "mncc"


MAIN = r'''
#![allow(dead_code)]
use mncc_runtime::isa::{self, Isa};
use mncc_runtime::par::{Serial, StdPool};

trait Gen: Copy + Default {
    fn gen(r: u64) -> Self;
    fn poison() -> Self;
}
impl Gen for f32 {
    fn gen(r: u64) -> f32 { (r >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0 }
    fn poison() -> f32 { f32::NAN }
}
impl Gen for u8 {
    fn gen(r: u64) -> u8 { (r >> 56) as u8 }
    fn poison() -> u8 { 0xa5 }
}
impl Gen for i8 {
    fn gen(r: u64) -> i8 { (r >> 56) as u8 as i8 }
    fn poison() -> i8 { -91 }
}

fn fill<T: Gen>(x: &mut [T], seed: u64) {
    let mut s = seed;
    for v in x {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        *v = T::gen(z ^ (z >> 31));
    }
}

fn poison<T: Gen>(x: &mut [T]) {
    x.iter_mut().for_each(|v| *v = T::poison());
}

fn fnv(out: &[f32]) -> u64 {
    out.iter().flat_map(|v| v.to_le_bytes()).fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn isas() -> Vec<(&'static str, Option<Isa>)> {
    let best = isa::detected();
    let mut v = vec![("best", None)];
    let caps: &[Isa] = if cfg!(target_arch = "x86_64") { &[Isa::Avx512, Isa::Avx2, Isa::Portable] } else { &[Isa::Portable] };
    for &i in caps {
        if i < best {
            v.push((i.name(), Some(i)));
        }
    }
    v
}

macro_rules! check {
    ($pool:expr, $($m:ident = $name:literal),* $(,)?) => {$(
        {
            use $m as m;
            let mut input: Box<m::Input> = vec![Default::default(); m::INPUT_LEN].into_boxed_slice().try_into().unwrap();
            fill(&mut input[..], 7);
            let mut arena: Box<m::Arena> = vec![Default::default(); m::ARENA_LEN].into_boxed_slice().try_into().unwrap();
            let mut output: Box<m::Output> = Box::new([0.0; m::OUTPUT_LEN]);
            for (iname, limit) in isas() {
                isa::set_limit(limit);
                poison(&mut arena[..]);
                m::run(&input, &mut output, &mut arena);
                println!("{} {} {} run {:016x}", $name, TARGET, iname, fnv(&output[..]));
                poison(&mut arena[..]);
                m::run_parallel(&input, &mut output, &mut arena, $pool);
                println!("{} {} {} run_parallel/pool {:016x}", $name, TARGET, iname, fnv(&output[..]));
                poison(&mut arena[..]);
                m::run_parallel(&input, &mut output, &mut arena, &Serial);
                println!("{} {} {} run_parallel/serial {:016x}", $name, TARGET, iname, fnv(&output[..]));
            }
            isa::set_limit(None);
        }
    )*};
}
'''


def run_checkout(root, targets, only=None):
    """Hash lines for every model and target of the checkout at `root`."""
    work = root / "target" / "bitexact"
    work.mkdir(parents=True, exist_ok=True)
    mncc = mncc_binary(root, work / "cargo")
    names = models(ROOT) if only is None else only
    runtime_toml = (root / "runtime/Cargo.toml").read_text()
    features = ["std"] + (["instrument"] if "instrument =" in runtime_toml else [])
    lines = []
    for target in targets:
        crate = work / f"crate-{target}"
        src = crate / "src"
        src.mkdir(parents=True, exist_ok=True)
        mods = []
        for i, m in enumerate(names):
            path = root / m
            if not path.exists():
                print(f"skip {m}: not in {root}", file=sys.stderr)
                continue
            out = src / f"m{i}.rs"
            r = subprocess.run([str(mncc), "compile", str(path), "--target", target, "-o", str(out)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{m} {target}: mncc compile failed:\n{r.stderr}", file=sys.stderr)
                lines.append(f"{m} {target} - compile-failed -")
                continue
            mods.append((f"m{i}", m))
        (crate / "Cargo.toml").write_text(
            "[package]\nname = \"bitexact\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n"
            f"[dependencies]\nmncc-runtime = {{ path = \"{root / 'runtime'}\", features = {features!r} }}\n\n"
            "[profile.release]\nopt-level = 3\ncodegen-units = 16\n\n[workspace]\n".replace("'", '"'))
        body = MAIN + "".join(f"#[path = \"{n}.rs\"] mod {n};\n" for n, _ in mods)
        body += f"const TARGET: &str = \"{target}\";\n"
        body += "fn main() {\n    let pool = StdPool::new();\n    check!(&pool,\n"
        body += "".join(f"        {n} = \"{m}\",\n" for n, m in mods)
        body += "    );\n}\n"
        (src / "main.rs").write_text(body)
        env = dict(os.environ, CARGO_TARGET_DIR=str(work / "cargo-crates"))
        env.pop("RUSTFLAGS", None)
        print(f"building {len(mods)} models for {target} in {root}...", file=sys.stderr, flush=True)
        subprocess.run(["cargo", "build", "-q", "--release"], cwd=crate, env=env, check=True)
        exe = work / "cargo-crates" / "release" / "bitexact"
        r = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
        lines += r.stdout.splitlines()
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", metavar="REV", help="also run a worktree of REV and compare")
    ap.add_argument("--targets", nargs="+", default=TARGETS)
    ap.add_argument("--models", nargs="+", default=None, help="model paths relative to the checkout")
    ap.add_argument("--compare", metavar="FILE", type=Path, help="compare with the hashes an earlier run printed")
    args = ap.parse_args()
    new = run_checkout(ROOT, args.targets, args.models)
    if args.compare:
        old, what = args.compare.read_text().splitlines(), str(args.compare)
    elif args.against:
        what = args.against
        with tempfile.TemporaryDirectory(prefix="mncc-bitexact-") as tmp:
            wt = Path(tmp) / "old"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(wt), args.against], cwd=ROOT, check=True)
            try:
                old = run_checkout(wt, args.targets, args.models)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT)
    else:
        print("\n".join(new))
        return 0
    key = lambda l: " ".join(l.split()[:4])
    old_map = {key(l): l.split()[4] for l in old}
    new_map = {key(l): l.split()[4] for l in new}
    diff = [k for k in sorted(set(old_map) | set(new_map)) if old_map.get(k) != new_map.get(k)]
    same = len([k for k in new_map if old_map.get(k) == new_map[k]])
    print(f"{same} outputs bit-identical to {what}, {len(diff)} differ or are missing")
    for k in diff:
        print(f"  {k}: {what} {old_map.get(k, 'missing')}, now {new_map.get(k, 'missing')}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
