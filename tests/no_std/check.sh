#!/usr/bin/env bash
# Proves that a model compiled by `mobilenet!` plus mncc-runtime need no std
# and no allocator:
#
#  1. builds mncc-no-std-check as a staticlib for thumbv7em-none-eabihf
#     (Cortex-M4F), a target that has no `std` at all: using std fails to
#     compile, and using `alloc` fails to link for lack of a global allocator;
#  2. checks with nm that the library neither references nor defines any
#     allocator symbol (`__rust_alloc`, `__rg_alloc`, `malloc`, ...), nor any
#     object of the `alloc` or `std` crates;
#  3. checks that the model's entry point `mncc_classify` is in the library
#     (so the model really was compiled in, and nm really read the archive).
#
# Usage: tests/no_std/check.sh   (from anywhere; exits non-zero on failure)
set -euo pipefail

TARGET=thumbv7em-none-eabihf
PKG=mncc-no-std-check
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

fail() {
    echo "no_std check FAILED: $*" >&2
    exit 1
}

if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "installing the $TARGET target"
    rustup target add "$TARGET" || fail "cannot install the $TARGET target"
fi

echo "building $PKG as a staticlib for $TARGET (release)"
cargo rustc -p "$PKG" --release --target "$TARGET" --crate-type staticlib ||
    fail "$PKG does not build for $TARGET (does the generated code or the runtime use std or alloc?)"

TARGET_DIR="$(cargo metadata --format-version=1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
LIB="$TARGET_DIR/$TARGET/release/libmncc_no_std_check.a"
[ -f "$LIB" ] || fail "no staticlib at $LIB"

# An nm that reads ARM ELF. The precompiled `core` objects carry LLVM bitcode
# (.llvmbc) beside their machine code; an nm whose LLVM is older than rustc's
# tries the bitcode, fails, and (binutils, via the LLVM gold plugin) silently
# reports "no symbols". So: rustup's llvm-tools (rustc's own LLVM) if
# installed; else llvm-nm/rust-nm with --no-llvm-bc; else arm-none-eabi-nm;
# else binutils nm forced to read plain ELF (--target=elf32-little).
SYSROOT="$(rustc --print sysroot)"
NM=()
for cand in "$SYSROOT"/lib/rustlib/*/bin/llvm-nm; do
    [ -x "$cand" ] && NM=("$cand" --no-llvm-bc) && break
done
if [ ${#NM[@]} -eq 0 ]; then
    if command -v llvm-nm >/dev/null; then NM=(llvm-nm --no-llvm-bc)
    elif command -v rust-nm >/dev/null; then NM=(rust-nm --no-llvm-bc)
    elif command -v arm-none-eabi-nm >/dev/null; then NM=(arm-none-eabi-nm)
    elif command -v nm >/dev/null; then NM=(nm --target=elf32-little)
    else fail "no nm found (install binutils, or: rustup component add llvm-tools)"
    fi
fi

NM_ERR="$(mktemp)"
trap 'rm -f "$NM_ERR"' EXIT
SYMBOLS="$("${NM[@]}" -A "$LIB" 2>"$NM_ERR")" || fail "${NM[*]} cannot read $LIB: $(cat "$NM_ERR")"
[ ! -s "$NM_ERR" ] || fail "${NM[*]} had problems reading $LIB: $(cat "$NM_ERR")"
# nm must have read every Rust object, or the check below would be blind:
# `core` and this crate must show symbols (mncc_runtime's own object may be
# empty: its kernels are generic, instantiated here), and the model's entry
# point must be defined (T), which also proves the model was compiled in.
for obj in core mncc_no_std_check; do
    grep -q ":$obj-[0-9a-f]*\.$obj\." <<<"$SYMBOLS" ||
        fail "${NM[*]} shows no symbols for the $obj object in $LIB: cannot trust the symbol check"
done
grep -Eq '[[:space:]]T[[:space:]]+mncc_classify$' <<<"$SYMBOLS" ||
    fail "mncc_classify is not defined in $LIB (according to ${NM[*]})"

# Allocator symbols, referenced (U) or defined. Since Rust 1.9x the allocator
# shims are mangled (`_RNv..7___rustc12___rust_alloc`), so match the Rust
# names anywhere in a symbol; the C allocator names must match exactly.
RUST_ALLOC='__(rust|rg|rdl)_(alloc|alloc_zeroed|dealloc|realloc|oom|alloc_error_handler)|__rust_no_alloc_shim_is_unstable'
C_ALLOC='malloc|calloc|realloc|free|posix_memalign|aligned_alloc'
FOUND="$(grep -E "[[:space:]][A-Za-z][[:space:]]+([^[:space:]]*($RUST_ALLOC)[^[:space:]]*|$C_ALLOC)$" <<<"$SYMBOLS" || true)"
if [ -n "$FOUND" ]; then
    echo "$FOUND" >&2
    fail "allocator symbols referenced or defined in $LIB (above)"
fi
# Nor may the `alloc` or `std` crates be linked in at all.
FOUND="$(grep -E ":(alloc|std)-[0-9a-f]+\.(alloc|std)\." <<<"$SYMBOLS" | head -3 || true)"
if [ -n "$FOUND" ]; then
    echo "$FOUND" >&2
    fail "the alloc or std crate is linked into $LIB (above)"
fi

SIZE="$(wc -c <"$LIB")"
echo "no_std check passed: $LIB ($SIZE bytes) has mncc_classify and no allocator symbol (checked with ${NM[*]})"
