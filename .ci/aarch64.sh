#!/usr/bin/env bash
# aarch64 CI: the runtime and generated code, cross-compiled for
# aarch64-unknown-linux-gnu and run under qemu-aarch64 (user mode).
# Run from anywhere in a checkout, on Debian/Ubuntu, as root (or with sudo);
# installs what it needs (qemu-user, gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross, the rustup target). Does not need ../shared.
#  1. the runtime's tests (every kernel, NEON paths included, against the
#     f64 references): cargo test -p mncc-runtime --target aarch64-...,
#     less the par module's split sweeps (see below);
#  2. which kernel ISA the runtime picks on aarch64 (if it has
#     `mncc_runtime::isa::active()`);
#  3. end to end (module e2e): a seeded v1 and a seeded v2 model compiled by `mobilenet!`
#     (the proc macro runs on the host) against the f64 reference interpreter
#     (run on aarch64 too), plus the pretrained v1 on parrot.jpg (a file read
#     at run time under qemu).
# Prints PASS/FAIL per step and exits non-zero on the first failure.
# Env: CARGO_TARGET_DIR and the linker/runner variables are honoured;
# MNCC_A64_E2E overrides the e2e test list.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
TARGET=aarch64-unknown-linux-gnu
start=$(date +%s)
step_start=$start
step() { step_start=$(date +%s); echo; echo "=== $* (at $(( step_start - start ))s)"; }
took() { echo "    ($(( $(date +%s) - step_start ))s)"; }
pass() { echo "PASS: $* ($(( $(date +%s) - step_start ))s)"; }
fail() { echo "FAIL: $*"; echo "aarch64 CI: FAILED after $(( $(date +%s) - start ))s"; exit 1; }
log=$(mktemp -d /tmp/mncc-a64.XXXXXX)

# Counts "test result:" lines of a cargo test log: "<passed> <failed>".
counts() { grep -E "^test result: " "$1" | awk '{p+=$4; f+=$6} END {print p+0, f+0}'; }

step "dependencies (qemu-user, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, rustup target)"
need=()
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/crt1.o ] || need+=(libc6-dev-arm64-cross)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >"$log/apt.log" \
        || { tail -20 "$log/apt.log"; fail "apt-get install ${need[*]}"; }
fi
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER:-qemu-aarch64 -L /usr/aarch64-linux-gnu}"
cargo --version
rustc --version
qemu-aarch64 --version | sed -n 1p
aarch64-linux-gnu-gcc --version | sed -n 1p
echo "linker: $CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER"
echo "runner: $CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER"
# runtime/tests/all/common.rs fails instead of skipping when a named ISA is absent
# (always neon here, whatever the caller exported for x86).
export MNCC_REQUIRE_ISA=neon
echo "MNCC_REQUIRE_ISA=$MNCC_REQUIRE_ISA"
pass "dependencies"

# Everything below builds for $TARGET; a test binary that ran at all ran
# under the runner (an aarch64 ELF cannot run natively here).
step "runtime tests under qemu: cargo test -p mncc-runtime --target $TARGET"
cargo test -p mncc-runtime --target "$TARGET" --no-run 2>&1 | tail -3
took
run_start=$(date +%s)
# The par module's *_splits_are_bit_identical tests sweep every split of many
# layer shapes on every instruction set: 460 s under qemu (50 s natively).
# The split code is the same on every target and runs natively in the main
# CI lane; the NEON kernels it calls are tested here by the simd* modules.
# The rest of the par module (the pool, small layers, errors) runs.
cargo test -p mncc-runtime --target "$TARGET" -- --skip _splits_are_bit_identical 2>&1 | tee "$log/runtime.log" \
    || fail "runtime tests under qemu (log above)"
read -r p f < <(counts "$log/runtime.log")
grep -q "/$TARGET/" "$log/runtime.log" || fail "runtime tests: no $TARGET test binary ran"
[ "$p" -gt 0 ] && [ "$f" -eq 0 ] || fail "runtime tests: $p passed, $f failed"
echo "    test run under qemu: $(( $(date +%s) - run_start ))s"
pass "runtime tests on aarch64: $p passed, 0 failed"

step "kernel ISA on aarch64"
if grep -qsE "pub (fn|const fn) active" runtime/src/isa.rs runtime/src/isa/mod.rs; then
    crate="$log/isa-check"
    mkdir -p "$crate/src"
    cat >"$crate/Cargo.toml" <<EOF
[package]
name = "mncc-isa-check"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
mncc-runtime = { path = "$PWD/runtime" }
[workspace]
EOF
    echo 'fn main() { println!("mncc_runtime::isa::active() = {:?}", mncc_runtime::isa::active()); }' >"$crate/src/main.rs"
    isa=$(CARGO_TARGET_DIR="$crate/target" cargo run -q --offline --manifest-path "$crate/Cargo.toml" --target "$TARGET" 2>"$log/isa.err") \
        || { cat "$log/isa.err"; fail "building/running the isa::active() check"; }
    echo "$isa"
    echo "$isa" | grep -qi neon || fail "the runtime does not pick NEON on aarch64: $isa"
    pass "kernel ISA on aarch64: NEON"
else
    echo "runtime/src has no isa::active() yet: skipped (the kernels are whatever the runtime compiles for aarch64)"
    pass "kernel ISA: nothing to check"
fi

# Small models: under qemu the f64 interpreter (the oracle) dominates.
# v1 0.25 128 u8 NHWC tf-same (13.6M MACs), v2 0.35 96 u8 NHWC (11.9M MACs),
# 3 seeds each; the pretrained v1 0.25 224 on parrot.jpg (one inference).
e2e_filter=${MNCC_A64_E2E:-"e2e::v1_025_128_u8_nhwc_tf_same e2e::v2_035_96_u8_nhwc e2e::parrot_is_a_macaw"}
n_e2e=$(wc -w <<<"$e2e_filter")
step "end to end under qemu: cargo test -p mncc-tests --no-default-features --test all --target $TARGET -- $e2e_filter"
# --no-default-features: mncc-tests compiles only the three models run here
# (feature all-models; the other seven cost ~10 min of cross builds).
cargo test -p mncc-tests --no-default-features --target "$TARGET" --test all --no-run 2>&1 | tail -3
took
run_start=$(date +%s)
# shellcheck disable=SC2086 # the filter is a word list
cargo test -p mncc-tests --no-default-features --target "$TARGET" --test all -- --exact $e2e_filter --nocapture 2>&1 | tee "$log/e2e.log" \
    || fail "end-to-end tests under qemu (log above)"
read -r p f < <(counts "$log/e2e.log")
grep -q "/$TARGET/" "$log/e2e.log" || fail "e2e: no $TARGET test binary ran"
[ "$p" -eq "$n_e2e" ] && [ "$f" -eq 0 ] || fail "e2e: expected $n_e2e passed, got $p passed, $f failed (a renamed test?)"
echo "    test run under qemu: $(( $(date +%s) - run_start ))s"
pass "end to end on aarch64: $p passed ($e2e_filter)"

echo
echo "aarch64 CI: PASS in $(( $(date +%s) - start ))s"
rm -rf "$log"
