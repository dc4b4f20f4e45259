#!/usr/bin/env bash
# Fuzzing in CI: every target of fuzz/ (cargo fuzz, libFuzzer) for a short
# time from its committed seed corpus (fuzz/corpus/<target>), plus Miri on
# the runtime's unsafe code (the arena splitting, the weight views, the
# portable kernels on small shapes).
# Run from anywhere in a checkout; installs what it needs (the nightly
# toolchain's miri and rust-src components, cargo-fuzz from crates.io).
# Env: MNCC_FUZZ_SECONDS (per target, default 20), MNCC_FUZZ_TARGETS
# (default: all), MNCC_MIRI=0 to skip Miri.
# A crash, a panic, an abort, a timeout (20 s per input) or an input over
# 4 GiB of memory fails the run; the input is kept under fuzz/artifacts.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export CARGO_TERM_COLOR=never
seconds=${MNCC_FUZZ_SECONDS:-20}
targets=${MNCC_FUZZ_TARGETS:-"onnx_bytes onnx_graph toml safetensors npy"}
start=$(date +%s)
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup component add --toolchain nightly miri rust-src >/dev/null
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
cargo +nightly fuzz build -O --fuzz-dir . 2>&1 | tail -3
echo "fuzz targets built ($(( $(date +%s) - start ))s)"
for t in $targets; do
    # The committed corpus stays as it is: the run grows a copy.
    work=$(mktemp -d /tmp/mncc-fuzz-$t.XXXXXX)
    [ -d "corpus/$t" ] && cp -r "corpus/$t/." "$work/"
    max_len=200000
    [ "$t" = onnx_graph ] && max_len=4096
    log="$work.log"
    if cargo +nightly fuzz run -O --fuzz-dir . "$t" "$work" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len="$max_len" \
        -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
        cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -o 'cov: [0-9]*' || true)
        echo "PASS: fuzz $t: ${runs:-?} inputs in ${seconds}s, $cov"
    else
        tail -40 "$log"
        echo "FAIL: fuzz $t (input kept under fuzz/artifacts/$t)"
        exit 1
    fi
    rm -rf "$work" "$log"
done
if [ "${MNCC_MIRI:-1}" != 0 ]; then
    cd ..
    # Small shapes only: Miri interprets every instruction (about 10^4 times
    # slower); the portable vector type is what runs under it.
    MIRIFLAGS=-Zmiri-disable-isolation cargo +nightly miri test -q -p mncc-runtime --test all -- \
        miri:: arena:: weights:: misc_kernels::softmax_matches misc_kernels::activations_at 2>&1 | tail -4
    echo "PASS: miri on the runtime's arena, weight views and kernels (small shapes)"
fi
echo "fuzz and miri: done in $(( $(date +%s) - start ))s"
