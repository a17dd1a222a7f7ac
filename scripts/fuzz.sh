#!/usr/bin/env bash
# A short fuzzing pass: every cargo-fuzz target of fuzz/ (the parsers at the probe's
# edges, `censorprobe::fuzzing`) for SECONDS each (default 20), from its seeds
# (fuzz/seeds/TARGET) and what earlier passes found (fuzz/corpus/TARGET, not committed).
#
#   scripts/fuzz.sh [SECONDS]
#
# Fails if any target crashes: panics, fails an assertion, takes more than 10 s on one
# input or more than 1 GiB of memory. Each crashing input is kept in fuzz/artifacts/TARGET/
# (cargo-fuzz's place) and copied into fuzz/seeds/TARGET/, where tests/fuzz_parsers.rs
# (`seeds_never_panic`) replays it in every `cargo test`: commit it with the fix, and it is
# a regression test from then on.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a C++ compiler. Runs on the stable
# toolchain: libFuzzer's instrumentation needs unstable compiler flags, which
# RUSTC_BOOTSTRAP=1 lets a stable rustc take (nightly needs nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
if [[ ! "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS]   (seconds per target, default 20)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "error: cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
fi
export RUSTC_BOOTSTRAP=1
# An unoptimised build without a sanitizer: a third of the build time of cargo-fuzz's
# default (optimised, AddressSanitizer), and as many executions a second on these
# targets. The code fuzzed is safe Rust, where a sanitizer finds little; debug
# assertions and overflow checks are on, and find more. FUZZ_BUILD overrides this,
# e.g. FUZZ_BUILD="--release --sanitizer address" for a long run.
read -r -a build <<<"${FUZZ_BUILD:---dev --sanitizer none}"

cargo fuzz build "${build[@]}"
mapfile -t targets < <(cargo fuzz list)
started=$(mktemp)
trap 'rm -f "$started"' EXIT
crashed=()
total_runs=0
# Not in the artifacts directory, where cargo-fuzz looks for the crashing input.
logs=fuzz/target/fuzz-logs
mkdir -p "$logs"
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    log="$logs/$target.log"
    mkdir -p "$corpus" "$artifacts"
    touch "$started"
    status=0
    cargo fuzz run "${build[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
    total_runs=$((total_runs + ${runs:-0}))
    found=()
    while IFS= read -r -d '' input; do
        found+=("$input")
    done < <(find "$artifacts" -type f -newer "$started" \
        \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) -print0)
    if [[ "$status" -eq 0 && "${#found[@]}" -eq 0 ]]; then
        echo "fuzz $target: ${runs:-?} inputs in ${seconds} s, peak ${peak:-?} MB, no crash"
        continue
    fi
    crashed+=("$target")
    echo "fuzz $target: FAILED (exit $status) after ${runs:-?} inputs; the end of $log:"
    # What the target said when it failed, and how to reproduce it (long lines cut).
    grep -v -e '^#[0-9]' -e '^INFO: ' "$log" | tail -n 30 | cut -c1-300 | sed 's/^/    /'
    for input in "${found[@]}"; do
        cp "$input" "fuzz/seeds/$target/"
        echo "    kept $input, and as a regression seed in fuzz/seeds/$target/$(basename "$input")"
    done
done
echo "fuzzing: ${#targets[@]} targets, $total_runs inputs, ${seconds} s each"
if [[ "${#crashed[@]}" -gt 0 ]]; then
    echo "error: crashes in: ${crashed[*]}" >&2
    exit 1
fi
