#!/usr/bin/env bash
# How fast `censorprobe import --ooni` reads OONI's archive, and in how much memory
# (issue 11). Not part of `cargo test`; needs no root and no network.
#
#   scripts/bench-import.sh [--count N] [--keep DIR] [--no-build]
#
# Makes N measurements (default 1,000,000) by cycling through OONI's 50 QA measurements
# (tests/data/ooni/wc-qa, one compact JSON line each), pipes them into
# `censorprobe import --ooni - --out DIR` under /usr/bin/time -v, and prints the wall
# time, measurements/s, CPU time and peak RSS, and the size of what was written. The
# input is made on the fly, so it never lands on disk; the run directory does (about
# 10 KB per measurement) and is removed afterwards unless --keep.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
COUNT=1000000
KEEP=
BUILD=1

while (($#)); do
    case $1 in
        --count) COUNT=$2; shift 2 ;;
        --keep) KEEP=$2; shift 2 ;;
        --no-build) BUILD=; shift ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "bench-import.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || { echo "bench-import.sh: --count must be a positive number, not $COUNT" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "bench-import.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

if [[ -n $BUILD ]]; then
    cargo build --release --manifest-path "$REPO/Cargo.toml" >&2
fi
BIN=$REPO/target/release/censorprobe

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
OUT=${KEEP:-$WORK/run}
LINES=$WORK/qa.jsonl
for f in "$REPO"/tests/data/ooni/wc-qa/*.json; do
    python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), separators=(",", ":")))' "$f"
done >"$LINES"
PER_LINE=$(($(wc -c <"$LINES") / $(wc -l <"$LINES")))

# N lines, the 50 cases in turn.
feed() {
    python3 - "$LINES" "$COUNT" <<'PY'
import sys
lines = open(sys.argv[1], "rb").read().splitlines(keepends=True)
count = int(sys.argv[2])
block = b"".join(lines)
out = sys.stdout.buffer
whole, rest = divmod(count, len(lines))
for _ in range(whole):
    out.write(block)
out.write(b"".join(lines[:rest]))
PY
}

echo "importing $COUNT measurements (OONI's QA cases in turn, $PER_LINE bytes each on average)" >&2
feed | /usr/bin/time -v "$BIN" import --ooni - --out "$OUT" >"$WORK/stdout" 2>"$WORK/stderr" || {
    echo "bench-import.sh: the import failed:" >&2
    cat "$WORK/stderr" >&2
    exit 1
}
field() { sed -n "s/^\s*$1: //p" "$WORK/stderr"; }
WALL=$(field 'Elapsed (wall clock) time (h:mm:ss or m:ss)' | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
USER=$(field 'User time (seconds)')
SYS=$(field 'System time (seconds)')
RSS_KB=$(field 'Maximum resident set size (kbytes)')
SIZE=$(du -sm "$OUT" | cut -f1)
cat "$WORK/stdout"
printf '| measurements | wall | measurements/s | CPU (user+sys) | CPU per measurement | peak RSS | written |\n'
printf '|---|---|---|---|---|---|---|\n'
awk -v n="$COUNT" -v wall="$WALL" -v user="$USER" -v sys="$SYS" -v rss="$RSS_KB" -v size="$SIZE" 'BEGIN {
    printf "| %d | %.1f s | %.0f | %.1f s | %.0f µs | %.1f MiB | %d MiB |\n",
        n, wall, n / wall, user + sys, (user + sys) / n * 1e6, rss / 1024, size
}'
