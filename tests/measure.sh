#!/usr/bin/env bash
# Measures every model of the v1/v2 matrix with the mncc CLI: verify (max abs
# and relative error against the f64 interpreter), bench (median and min
# latency, target-cpu=native, 1 thread) and inspect (arena vs lower bound).
# Prints a Markdown table. Usage: tests/measure.sh [seconds-per-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-2}
cargo build -q --release -p mncc-cli
mncc=target/release/mncc
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
models=()
i=0
for spec in "v1 0.25 128" "v1 0.5 160" "v1 0.75 192" "v1 1.0 224" "v1 1.4 224" \
            "v2 0.35 96" "v2 0.5 128" "v2 0.75 160" "v2 1.0 224" "v2 1.4 224"; do
    set -- $spec
    i=$((i + 1))
    f="$dir/$1_$2_$3.toml"
    printf 'arch = "%s"\nalpha = %s\nresolution = %s\n[input]\nlayout = "nhwc"\ndtype = "u8"\nmean = 127.5\nstd = 127.5\n[weights]\nseed = %s\n' "$1" "$2" "$3" "$i" > "$f"
    models+=("$f")
done
models+=(examples/models/mobilenet_v1_0.25_224.toml)
echo "| model | MACs | max abs err | max rel err | median ms | min ms | arena KiB | lower bound KiB |"
echo "|---|---|---|---|---|---|---|---|"
for m in "${models[@]}"; do
    v=$($mncc verify "$m" 2>/dev/null)
    b=$($mncc bench "$m" --seconds "$secs" 2>/dev/null)
    ins=$($mncc inspect "$m")
    name=$(basename "$m" .toml)
    macs=$(echo "$ins" | awk '/^MACs/ {print $3}' | tr -d '(')
    abs=$(echo "$v" | awk '/^max abs error/ {print $4}')
    rel=$(echo "$v" | awk '/^max rel error/ {print $4}')
    med=$(echo "$b" | awk '/^median/ {print $2}')
    min=$(echo "$b" | awk '/^min/ {print $2}')
    arena=$(echo "$ins" | awk '/^arena bytes/ {printf "%.0f", $3/1024}')
    lb=$(echo "$ins" | awk '/^arena bytes/ {for (i=1;i<=NF;i++) if ($i=="bound") {printf "%.0f", $(i+1)/1024}}')
    echo "| $name | ${macs}M | $abs | $rel | $med | $min | $arena | $lb |"
done
