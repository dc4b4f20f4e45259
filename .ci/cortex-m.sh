#!/usr/bin/env bash
# Cortex-M CI: the pretrained MobileNet v1 (0.25, 224) compiled by mncc, on an
# Arm Cortex-M4F under QEMU (examples/cortex-m, machine mps2-an386).
#  1. installs what it needs (as root: qemu-system-arm and
#     binutils-arm-none-eabi from apt; the thumbv7em-none-eabihf target);
#  2. builds the firmware (examples/cortex-m, release profile) and runs it
#     under qemu-system-arm with -icount shift=0 (one instruction per virtual
#     nanosecond) and a timeout; it must exit 0 (it checks its own top-5
#     against the reference interpreter's, computed on the host by build.rs);
#  3. builds and runs the same crate on the host and compares the two top-5:
#     same classes, probabilities within 1e-4;
#  4. footprint of the linked firmware: .text/.rodata/.data/.bss, .text per
#     origin (generated module, mncc-runtime, the rest); checks that the
#     weights are in flash (.rodata, nothing copied to RAM: .data is empty),
#     that no allocator is linked, and that .text is under the budget
#     (MNCC_CM_TEXT_BUDGET bytes, default 65536); the stack the inference
#     used (the firmware paints the stack before it);
#  5. the instruction count of one inference (SysTick ticks at 25 MHz x 40).
# Prints PASS/FAIL per step and exits non-zero on the first failure.
# Env: CARGO_TARGET_DIR is honoured (default examples/cortex-m/target);
# MNCC_CM_TIMEOUT (seconds for the QEMU run, default 300).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
export CARGO_TERM_COLOR=never
TARGET=thumbv7em-none-eabihf
CRATE="$ROOT/examples/cortex-m"
BUDGET="${MNCC_CM_TEXT_BUDGET:-65536}"
TIMEOUT="${MNCC_CM_TIMEOUT:-300}"
QEMU=(qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic
    -semihosting-config enable=on,target=native -icount shift=0)
start=$(date +%s)
step_start=$start
step() { step_start=$(date +%s); echo; echo "=== $* (at $(( step_start - start ))s)"; }
pass() { echo "PASS: $* ($(( $(date +%s) - step_start ))s)"; }
fail() { echo "FAIL: $*"; echo "Cortex-M CI: FAILED after $(( $(date +%s) - start ))s"; exit 1; }
log=$(mktemp -d /tmp/mncc-cortex-m.XXXXXX)

step "tools"
missing=()
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
command -v arm-none-eabi-size >/dev/null || missing+=(binutils-arm-none-eabi)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || fail "missing ${missing[*]}: run as root, or apt-get install ${missing[*]}"
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$log/apt.log" 2>&1 || fail "apt-get update (see $log/apt.log)"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log/apt.log" 2>&1 ||
        fail "apt-get install ${missing[*]} (see $log/apt.log)"
fi
if ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET" || fail "rustup target add $TARGET"
fi
qemu-system-arm --version | head -1
arm-none-eabi-size --version | head -1
cargo --version
pass "tools"

step "build the firmware ($TARGET, release)"
cd "$CRATE"
TARGET_DIR="$(cargo metadata --format-version=1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
ELF="$TARGET_DIR/$TARGET/release/mncc-cortex-m"
cargo build --release 2>&1 | tail -3
[ -f "$ELF" ] || fail "no firmware at $ELF"
pass "firmware built: $ELF"

step "run on the Cortex-M4F (qemu-system-arm -machine mps2-an386 -icount shift=0, timeout ${TIMEOUT}s)"
t0=$(date +%s)
set +e
timeout "$TIMEOUT" "${QEMU[@]}" -kernel "$ELF" </dev/null >"$log/cortex-m.txt" 2>&1
status=$?
set -e
cat "$log/cortex-m.txt"
[ $status -ne 124 ] || fail "the firmware did not finish within ${TIMEOUT}s"
[ $status -eq 0 ] || fail "the firmware exited with status $status"
grep -q "^reference .*: ok$" "$log/cortex-m.txt" || fail "the firmware's own check against the reference did not pass"
[ "$(grep -c '^top5 ' "$log/cortex-m.txt")" = 5 ] || fail "the firmware did not print a top-5"
pass "Cortex-M run ($(( $(date +%s) - t0 ))s in QEMU)"

step "run the same crate on the host and compare the top-5"
HOST="$(rustc -vV | sed -n 's/^host: //p')"
cargo run --release -q --target "$HOST" >"$log/host.txt" 2>"$log/host.err" || { cat "$log/host.err"; fail "the host run failed"; }
cat "$log/host.txt"
# "top5 <rank> class <c> p <prob> bits <hex> <label>": compare class -> prob.
awk '/^top5 /{print $4, $6}' "$log/host.txt" >"$log/host.top5"
awk '/^top5 /{print $4, $6}' "$log/cortex-m.txt" >"$log/cortex-m.top5"
awk 'NR == FNR { h[$1] = $2; nh++; next }
     { d[$1] = $2; nd++ }
     END {
        bad = (nh != 5 || nd != 5)
        for (c in h) {
            if (!(c in d)) { print "class " c " is in the host top-5 only"; bad = 1; continue }
            x = h[c] - d[c]; if (x < 0) x = -x; if (x > max) max = x
            if (x > 1e-4) { print "class " c ": host p " h[c] ", Cortex-M p " d[c]; bad = 1 }
        }
        for (c in d) if (!(c in h)) { print "class " c " is in the Cortex-M top-5 only"; bad = 1 }
        printf "max |p_host - p_cortex_m| over the top-5: %.7f (tolerance 0.0001)\n", max
        exit bad
     }' "$log/host.top5" "$log/cortex-m.top5" || fail "the Cortex-M top-5 differs from the host's"
if diff -q "$log/host.top5" "$log/cortex-m.top5" >/dev/null; then
    echo "same classes in the same order, same probabilities to 7 decimals"
else
    echo "same classes, probabilities within 1e-4 (order or 7th decimal differ)"
fi
pass "host ($HOST) and Cortex-M agree"

step "footprint of the linked firmware"
arm-none-eabi-size -A "$ELF" | tee "$log/size.txt"
sec() { awk -v s="$1" '$1 == s { print $2 + 0, $3 + 0; f = 1 } END { if (!f) print 0, 0 }' "$log/size.txt"; }
read -r text _ < <(sec .text)
read -r vt _ < <(sec .vector_table)
read -r rodata ro_addr < <(sec .rodata)
read -r data _ < <(sec .data)
read -r bss _ < <(sec .bss)
arm-none-eabi-nm -S -C --size-sort -t d "$ELF" >"$log/nm.txt"
# .text by origin (function symbols; what LTO inlined counts where it landed).
awk '$3 ~ /^[tTwW]$/ {
        size = $2 + 0; name = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", name)
        if (name ~ /mncc_cortex_m::model::/) gen += size
        else if (name ~ /mncc_runtime::/) rt += size
        else if (name ~ /mncc_cortex_m|cortex_m/) ex += size
        else other += size
     }
     END { printf "  generated module %d, mncc-runtime %d, example + cortex-m-rt + semihosting %d, core + compiler-builtins %d (function symbols)\n", gen, rt, ex, other }' \
    "$log/nm.txt" >"$log/origin.txt" || true
weights_line="$(grep -E ' mncc_cortex_m::model::WEIGHTS$' "$log/nm.txt" || true)"
[ -n "$weights_line" ] || fail "no WEIGHTS symbol in the firmware"
w_addr=$(awk '{print $1 + 0}' <<<"$weights_line")
w_size=$(awk '{print $2 + 0}' <<<"$weights_line")
arena=$(grep -E '^memory: ' "$log/cortex-m.txt" | sed -n 's/.* arena \([0-9]*\) bytes.*/\1/p')
ticks=$(sed -n 's/.*inference: \([0-9]*\) SysTick ticks.*/\1/p' "$log/cortex-m.txt")
stack=$(sed -n 's/.*stack used by the inference: \([0-9]*\) bytes.*/\1/p' "$log/cortex-m.txt")
echo "flash: .vector_table $vt + .text $text bytes of code ($(( text / 1024 )) KiB), .rodata $rodata bytes (weights $w_size at $(printf '%#010x' $w_addr))"
echo "RAM:   .data $data bytes, .bss $bss bytes (arena $arena), stack ${stack:-?} bytes used by the inference"
cat "$log/origin.txt"
# Weights in flash, read in place: inside .rodata, below the RAM, and .data
# (the only section copied from flash to RAM at boot) is empty.
[ $w_addr -ge $ro_addr ] && [ $(( w_addr + w_size )) -le $(( ro_addr + rodata )) ] ||
    fail "the weights are not in .rodata"
[ $(( w_addr + w_size )) -le $(( 0x00400000 )) ] || fail "the weights are not in the 4 MiB flash region"
[ "$data" -le 64 ] || fail ".data is $data bytes: something is copied from flash to RAM at boot"
[ "$bss" -ge "$arena" ] || fail ".bss ($bss) is smaller than the arena ($arena)"
# No allocator: as tests/no_std/check.sh, on the linked image.
RUST_ALLOC='__(rust|rg|rdl)_(alloc|alloc_zeroed|dealloc|realloc|oom|alloc_error_handler)|__rust_no_alloc_shim_is_unstable'
if arm-none-eabi-nm "$ELF" | grep -Eq "($RUST_ALLOC)|[[:space:]](malloc|calloc|realloc|free)$"; then
    fail "allocator symbols in the firmware"
fi
[ "$text" -le "$BUDGET" ] || fail ".text is $text bytes, over the budget of $BUDGET"
pass "footprint: .text $text <= $BUDGET, weights in flash, arena in .bss, no allocator"

step "instructions per inference"
[ -n "$ticks" ] || fail "the firmware did not print its SysTick count"
echo "one inference: $ticks SysTick ticks at 25 MHz = $(( ticks * 40 )) instructions (qemu -icount shift=0: 1 instruction = 1 ns; resolution 40)"
pass "instruction count"

echo
echo "Cortex-M CI: PASS in $(( $(date +%s) - start ))s"
rm -rf "$log"
