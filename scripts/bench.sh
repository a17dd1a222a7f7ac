#!/usr/bin/env bash
# censorprobe's throughput on the testbed (issues 6 and 16): how fast, how heavy, against
# curl, and how many probes one control server takes. Not part of `cargo test`.
#
#   sudo scripts/bench.sh [--sizes "1000 10000"] [--kind urls|domains]
#                         [--blackholed PCT] [--reset PCT] [--stalled PCT] [--addresses N]
#                         [--concurrency N] [--timeout SECS] [--no-clean] [--no-censored]
#                         [--no-curl] [--curl-max N] [--control-clients N] [--control-batch N]
#                         [--control-seconds S] [--no-control-load] [--no-build] [--bin PATH]
#                         [--keep DIR] [--results DIR] [--plot FILE.png] [--history FILE.md]
#   scripts/bench.sh --from bench.json [--from bench.json ...] [--plot FILE.png]
#                    [--history FILE.md]
#
# It builds the release binary, brings the testbed up in bench mode (scripts/testbed.sh
# up --bench: synthetic sites t<i>.bench.test spread over --addresses server addresses,
# all served by nginx with a wildcard certificate from the lab CA), and for each size N
# (--sizes, e.g. "1000 10000 100000"):
#   - runs `censorprobe run --control` in the probe's namespace on N targets under
#     /usr/bin/time -v, once on an honest network ("clean") and once with --blackholed %
#     of the sites' addresses dropped by the censor, --reset % answered with a RST, and
#     --stalled % of the sites named t<i>-stalled.bench.test, on the honest sites'
#     addresses, whose TLS ClientHello the censor drops by its server name ("censored"); prints wall time, targets/s, CPU time (user+sys, and per target),
#     peak RSS, the time to the first measurement and verdict rows, and where the time
#     went (measurements.jsonl);
#   - fetches the same URLs with `curl --parallel --parallel-max <concurrency>` from the
#     same namespace, and prints the probe's targets/s as a share of curl's (not for
#     sizes above --curl-max N: curl pays each blackholed site's timeout in its window of
#     transfers, which makes a censored 100,000 last about half an hour);
# then loads the control server with --control-clients concurrent clients (wrk) POSTing
# batches of --control-batch targets, and prints requests/s, the share of 503s and the
# control's peak RSS. A summary table ends it, with the issue's targets.
#
# Results go to --results DIR (default results/bench-<UTC time>/ in the repository, which
# git ignores): bench.json (every figure of every run, with the commit: see
# docs/performance.md; rewritten after each size, so a bench cut short keeps what it
# measured) and summary.txt (the table). --keep DIR keeps the runs' directories too.
# --bin PATH runs that binary, as probe and as control, instead of building
# target/release/censorprobe: an earlier commit's build, to compare before and after in
# one session (bench.json's `build` then names the binary; `commit` stays the checkout's).
# --plot FILE.png draws wall time and peak RSS against N (gnuplot); --history FILE.md adds
# the runs as rows to the history tables of FILE.md (docs/performance.md). --from reads
# earlier bench.json files instead of running (no root, no lab): it prints their table
# and plots or adds them to the history, merged (a plot of 1k and 10k from one bench and
# 100k from another).
#
# It takes the testbed suite's machine lock (/run/cp-testbed.suite, as tests/testbed.rs
# does), waiting for it, and on exit takes the lab down and lets the lock go. Needs root,
# the testbed's tools (scripts/testbed.sh check), /usr/bin/time, curl, wrk, jq, and
# gnuplot for --plot; these are installed with apt-get when missing and apt-get is there.
set -euo pipefail

SELF=bench.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
TESTBED=$HERE/testbed.sh
STATE=/run/cp-testbed # the lab's default state directory, as the suite uses it
MACHINE_LOCK=/run/cp-testbed.suite
MACHINE_LOCK_WAIT=900 # seconds, as the suite waits
NS_PROBE=cp-probe
NS_NET=cp-net
NS_CENSOR=cp-censor
LAN_IF=to-probe
CONTROL_URL=http://198.18.2.2:8080
CANARY=canary.test

# Address pools of the bench sites (in the testbed's bench range 198.19.64.0/18):
# each pool starts at 198.19.<base>.1, 250 addresses per /24, 16 /24s at most.
POOL_OK=64          # 198.19.64.0/20: honest sites
POOL_BLACKHOLED=80  # 198.19.80.0/20: the censor drops every packet to them
POOL_RESET=96       # 198.19.96.0/20: the censor answers every SYN with a RST

SIZES="1000 10000"
KIND=urls
BLACKHOLED=30
RESET=10
STALLED=0 # names silenced by SNI: several on each honest address, as on a CDN's
ADDRESSES=500
CONCURRENCY=64 # the probe's default
TIMEOUT=3      # the lab's (scripts/testbed/targets.toml)
RUN_CLEAN=1
RUN_CENSORED=1
RUN_CURL=1
CURL_MAX=0 # curl for every size
CONTROL_LOAD=1
CONTROL_CLIENTS=200
CONTROL_BATCH=10
CONTROL_SECONDS=20
BUILD=1
BIN_GIVEN=""
KEEP=""
RESULTS=""
PLOT=""
HISTORY=""
FROM=()

say() { printf '%s: %s\n' "$SELF" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SELF" "$*" >&2
    exit 1
}
# A bad argument: named, exit 2.
bad() {
    printf '%s: error: %s\n' "$SELF" "$*" >&2
    exit 2
}
usage() {
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"
    exit 0
}

# need_value "$@": an option's value, the next argument, must be there and not be
# another option.
need_value() {
    if (($# < 2)) || [[ -z $2 || $2 == --* ]]; then
        bad "$1: needs a value (see --help)"
    fi
}

# A path as given, made absolute (the bench works from the repository's top).
absolute() { if [[ $1 == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi; }

while (($#)); do
    case $1 in
    --sizes) need_value "$@" && SIZES=$2 && shift ;;
    --kind) need_value "$@" && KIND=$2 && shift ;;
    --blackholed) need_value "$@" && BLACKHOLED=$2 && shift ;;
    --reset) need_value "$@" && RESET=$2 && shift ;;
    --stalled) need_value "$@" && STALLED=$2 && shift ;;
    --addresses) need_value "$@" && ADDRESSES=$2 && shift ;;
    --concurrency) need_value "$@" && CONCURRENCY=$2 && shift ;;
    --timeout) need_value "$@" && TIMEOUT=$2 && shift ;;
    --no-clean) RUN_CLEAN=0 ;;
    --no-censored) RUN_CENSORED=0 ;;
    --no-curl) RUN_CURL=0 ;;
    --curl-max) need_value "$@" && CURL_MAX=$2 && shift ;;
    --control-clients) need_value "$@" && CONTROL_CLIENTS=$2 && shift ;;
    --control-batch) need_value "$@" && CONTROL_BATCH=$2 && shift ;;
    --control-seconds) need_value "$@" && CONTROL_SECONDS=$2 && shift ;;
    --no-control-load) CONTROL_LOAD=0 ;;
    --no-build) BUILD=0 ;;
    --bin) need_value "$@" && BIN_GIVEN=$(absolute "$2") && BUILD=0 && shift ;;
    --keep) need_value "$@" && KEEP=$(absolute "$2") && shift ;;
    --results) need_value "$@" && RESULTS=$(absolute "$2") && shift ;;
    --plot) need_value "$@" && PLOT=$(absolute "$2") && shift ;;
    --history) need_value "$@" && HISTORY=$(absolute "$2") && shift ;;
    --from) need_value "$@" && FROM+=("$(absolute "$2")") && shift ;;
    -h | --help) usage ;;
    *) bad "$1: unknown argument (see --help)" ;;
    esac
    shift
done

is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
SIZES=${SIZES//,/ }
[[ -n ${SIZES//[[:space:]]/} ]] || bad "--sizes: no size"
for n in $SIZES; do is_count "$n" || bad "--sizes: '$n' is not a count (want e.g. \"1000 10000 100000\")"; done
SIZES=$(tr -s '[:space:]' '\n' <<<"$SIZES" | grep . | sort -nu | paste -sd' ' -) # in order, once each
((RUN_CLEAN + RUN_CENSORED + CONTROL_LOAD > 0)) || bad "--no-clean, --no-censored and --no-control-load: nothing to run"
[[ $KIND == urls || $KIND == domains ]] || bad "--kind: '$KIND': want urls or domains"
for v in BLACKHOLED RESET STALLED; do
    [[ ${!v} =~ ^[0-9]+$ ]] || bad "--${v,,}: '${!v}': want a whole percentage"
done
((BLACKHOLED + RESET + STALLED < 100)) ||
    bad "--blackholed, --reset and --stalled: $BLACKHOLED% + $RESET% + $STALLED%: together under 100"
if ! is_count "$ADDRESSES" || ((ADDRESSES < 3 || ADDRESSES > 4000)); then
    bad "--addresses: '$ADDRESSES': want 3 to 4000"
fi
[[ $CURL_MAX == 0 ]] || is_count "$CURL_MAX" || bad "--curl-max: '$CURL_MAX': want a number of targets"
for v in CONCURRENCY TIMEOUT CONTROL_CLIENTS CONTROL_BATCH CONTROL_SECONDS; do
    opt=${v,,} && opt=--${opt//_/-}
    is_count "${!v}" || bad "$opt: '${!v}': want a positive whole number"
done
((CONTROL_CLIENTS <= 384)) || bad "--control-clients: $CONTROL_CLIENTS: at most 384 (3 source addresses, 128 connections each)"
for f in "${FROM[@]}"; do
    [[ -f $f && -r $f ]] || bad "--from: no file $f"
    jq -e '.schema == 1 and (.runs | type == "array")' "$f" >/dev/null 2>&1 || bad "--from: $f is not a bench.json of scripts/bench.sh"
done
if ((${#FROM[@]})) && [[ -n $KEEP || -n $RESULTS ]]; then
    bad "--from: no bench runs, so nothing for --keep or --results (it prints, plots, adds to the history)"
fi
[[ -z $PLOT || $PLOT == *.png ]] || bad "--plot: '$PLOT': want a .png file"
if [[ -n $HISTORY ]]; then
    [[ -f $HISTORY && -w $HISTORY ]] || bad "--history: '$HISTORY': no such file (or not writable)"
    grep -qxF -- '<!-- bench.sh --history: runs -->' "$HISTORY" ||
        bad "--history: '$HISTORY' has no line '<!-- bench.sh --history: runs -->' before its history table (see docs/performance.md)"
fi

# --- Preconditions ------------------------------------------------------------------

# Tools the bench needs on top of the testbed's (which `testbed.sh check` tries), each
# with its Debian package: installed with apt-get when missing.
ensure_tools() {
    local missing=() tool
    for tool in "$@"; do
        case $tool in
        time) [[ -x /usr/bin/time ]] || missing+=(time) ;;
        gnuplot) command -v gnuplot >/dev/null 2>&1 || missing+=(gnuplot-nox) ;;
        *) command -v "$tool" >/dev/null 2>&1 || missing+=("$tool") ;;
        esac
    done
    ((${#missing[@]})) || return 0
    if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
        say "installing ${missing[*]} (apt-get)"
        if apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; }; then
            return 0
        fi
    fi
    die "missing tools: ${missing[*]} (Debian/Ubuntu: apt-get install ${missing[*]})"
}
if ((${#FROM[@]})); then
    ensure_tools jq ${PLOT:+gnuplot}
else
    [[ $(id -u) -eq 0 ]] || die "must run as root: the testbed builds network namespaces (try: sudo $0)"
    ensure_tools time curl wrk jq ${PLOT:+gnuplot}
    command -v cargo >/dev/null 2>&1 || ((BUILD == 0)) || die "missing tool: cargo (or pass --no-build with target/release/censorprobe built)"
    curl --help all 2>/dev/null | grep -q -- '--parallel-max' || die "curl has no --parallel-max (curl 7.66 or newer needed)"
fi

# --- Clean-up: whatever happens, the lab goes down and the lock is let go ------------

WORK=""
LOCK_HELD=0
LAB_UP=0
CHILD=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $CHILD ]] && kill -0 "$CHILD" 2>/dev/null; then
        # /usr/bin/time does not pass signals on: its child by id, then itself.
        # shellcheck disable=SC2046
        kill -TERM $(pgrep -P "$CHILD") "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    if ((LAB_UP)); then
        bash "$TESTBED" down >/dev/null 2>&1 || say "warning: scripts/testbed.sh down failed"
    fi
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ -n $KEEP ]]; then
            mkdir -p "$KEEP" && cp -a "$WORK/." "$KEEP/" && say "runs kept in $KEEP"
        fi
        rm -rf "$WORK"
    fi
    if ((LOCK_HELD)) && [[ $(cat "$MACHINE_LOCK/pid" 2>/dev/null) == "$$" ]]; then
        rm -rf "$MACHINE_LOCK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The testbed suite's machine-wide lock: a directory made atomically, holding its
# owner's pid; a lock whose owner died is taken over (tests/testbed.rs, MachineLock).
take_machine_lock() {
    local waited=0 owner age said=0
    while ! mkdir "$MACHINE_LOCK" 2>/dev/null; do
        owner=$(tr -d '[:space:]' <"$MACHINE_LOCK/pid" 2>/dev/null || true)
        if [[ -n $owner ]]; then
            if [[ ! -e /proc/$owner ]]; then
                rm -rf "$MACHINE_LOCK"
                continue
            fi
        else
            age=$(($(date +%s) - $(stat -c %Y "$MACHINE_LOCK" 2>/dev/null || date +%s)))
            if ((age > 10)); then
                rm -rf "$MACHINE_LOCK"
                continue
            fi
        fi
        if ((!said)); then
            say "waiting for the testbed, held by pid ${owner:-?} ($MACHINE_LOCK)"
            said=1
        fi
        ((waited < MACHINE_LOCK_WAIT * 2)) || die "pid ${owner:-?} has held $MACHINE_LOCK for ${MACHINE_LOCK_WAIT}s"
        sleep 0.5
        waited=$((waited + 1))
    done
    echo "$$" >"$MACHINE_LOCK/pid"
    LOCK_HELD=1
}

# --- Helpers --------------------------------------------------------------------------

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}
# A value of /usr/bin/time -v's report.
time_field() { awk -F': ' -v k="$2" 'index($0, k) { print $2; exit }' "$1" | tr -d ' '; }

# --- The bench sites ------------------------------------------------------------------

# hosts: "ADDRESS NAME CATEGORY" for t0 .. t<max-1>.bench.test. Categories take turns by
# the index modulo 100, so every prefix (every size) has the same shares; each
# category's names go round its pool of addresses.
make_hosts() {
    local max=$1 out=$2
    awk -v max="$max" -v bh="$BLACKHOLED" -v rst="$RESET" -v st="$STALLED" -v total="$ADDRESSES" \
        -v pok="$POOL_OK" -v pbh="$POOL_BLACKHOLED" -v prst="$POOL_RESET" '
        function ip(base, k) { return sprintf("198.19.%d.%d", base + int(k / 250), 1 + k % 250) }
        BEGIN {
            nbh = int(total * bh / 100); nrst = int(total * rst / 100)
            if (bh > 0 && nbh < 1) nbh = 1
            if (rst > 0 && nrst < 1) nrst = 1
            nok = total - nbh - nrst
            if (nok > 4000 || nbh > 4000 || nrst > 4000) { print "pool too large" > "/dev/stderr"; exit 1 }
            for (i = 0; i < max; i++) {
                m = i % 100
                if (m < bh)            { print ip(pbh, cbh++ % nbh), "t" i ".bench.test", "blackholed" }
                else if (m < bh + rst) { print ip(prst, crst++ % nrst), "t" i ".bench.test", "reset" }
                else if (m < bh + rst + st) { print ip(pok, cok++ % nok), "t" i "-stalled.bench.test", "stalled" }
                else                   { print ip(pok, cok++ % nok), "t" i ".bench.test", "ok" }
            }
        }' >"$out"
}

# target NAME: how a bench site is named in targets.toml (and in verdicts.csv).
target_of() {
    case $KIND in
    urls) echo "https://$1/" ;;
    domains) echo "$1" ;;
    esac
}

# targets.toml for the first N sites: one service per category, the lab's settings.
make_targets() {
    local n=$1 out=$2 category key
    key=$([[ $KIND == urls ]] && echo urls || echo domains)
    {
        echo "# Generated by scripts/bench.sh: $n synthetic sites of the testbed's bench mode."
        echo "[settings]"
        echo "timeout_secs = $TIMEOUT"
        echo "concurrency = $CONCURRENCY"
        echo 'resolvers = ["system"]'
        echo "canary = \"$CANARY\""
        echo 'treat_as_public = ["198.18.0.0/15"]'
        echo "tls_ports = [443]"
        echo "tcp_ports = [80]"
        for category in ok blackholed reset stalled; do
            head -n "$n" "$WORK/hosts" | awk -v c="$category" -v kind="$KIND" -v key="$key" '
                $3 == c { t = (kind == "urls") ? "https://" $2 "/" : $2; list = list sep "\"" t "\""; sep = ", " }
                END { if (list != "") printf "\n[[service]]\nname = \"bench-%s\"\n%s = [%s]\n", c, key, list }'
        done
    } >"$out"
}

# The censor: honest, or dropping the blackholed pool, resetting the reset pool, and
# dropping every TLS packet that names a stalled site (its ClientHello, and the
# retransmissions of it).
censor_mode() {
    bash "$TESTBED" scenario none >/dev/null
    [[ $1 == censored ]] || return 0
    in_ns "$NS_CENSOR" iptables -w -A FORWARD -i "$LAN_IF" -d "198.19.$POOL_BLACKHOLED.0/20" -j DROP
    in_ns "$NS_CENSOR" iptables -w -A FORWARD -i "$LAN_IF" -p tcp --syn -d "198.19.$POOL_RESET.0/20" \
        -j REJECT --reject-with tcp-reset
    if ((STALLED)); then
        in_ns "$NS_CENSOR" iptables -w -A FORWARD -i "$LAN_IF" -p tcp --dport 443 \
            -m string --string -stalled.bench.test --algo bm -j DROP
    fi
}

# --- Measuring --------------------------------------------------------------------------

# Whether a CSV file has a header and a whole first row (bash builtins only: no fork).
has_row() { [[ -f $1 ]] && { read -r _ && read -r _; } <"$1" 2>/dev/null; }

declare -A FIG=() # figures by "N/mode/what"

# Resets a process's peak resident memory (VmHWM), so that a phase is measured alone.
reset_peak() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }
peak_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }
control_pid() { cat "$STATE/run/control.pid"; }

# probe_run N MODE: one `censorprobe run` with its figures.
probe_run() {
    local n=$1 mode=$2 dir=$WORK/run-$1-$2
    mkdir -p "$dir"
    make_targets "$n" "$dir/targets.toml"
    censor_mode "$mode"
    local cpid
    cpid=$(control_pid)
    reset_peak "$cpid"
    say "probe: $n $KIND, $mode network (load average $(cut -d' ' -f1 /proc/loadavg))"
    local key=$n/$mode
    FIG[$key/date]=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    FIG[$key/load]=$(cut -d' ' -f1 /proc/loadavg)
    local started first_m="" first_v="" t
    started=$(now)
    /usr/bin/time -v -o "$dir/time.txt" ip netns exec "$NS_PROBE" "$BIN" run --yes \
        --targets "$dir/targets.toml" --out "$dir/out" --ca-file "$STATE/ca.pem" \
        --control "$CONTROL_URL" >"$dir/stdout" 2>"$dir/stderr" &
    CHILD=$!
    # The first data row of each file (a header, then a whole line), polled every 10 ms.
    while kill -0 "$CHILD" 2>/dev/null && [[ -z $first_v ]]; do
        t=$(now)
        if [[ -z $first_m ]] && has_row "$dir/out/measurements.csv"; then
            first_m=$(elapsed "$started" "$t")
        fi
        if has_row "$dir/out/verdicts.csv"; then
            first_v=$(elapsed "$started" "$t")
        fi
        sleep 0.01
    done
    local rc=0
    wait "$CHILD" || rc=$?
    CHILD=""
    local wall
    wall=$(elapsed "$started" "$(now)")
    ((rc == 0)) || die "censorprobe run failed (exit $rc): $(tail -n 5 "$dir/stderr")"
    local rows user sys rss
    rows=$(($(wc -l <"$dir/out/verdicts.csv") - 1))
    ((rows == n + 1)) || die "$dir/out/verdicts.csv: $rows rows for $n targets and the canary"
    user=$(time_field "$dir/time.txt" "User time (seconds)")
    sys=$(time_field "$dir/time.txt" "System time (seconds)")
    rss=$(time_field "$dir/time.txt" "Maximum resident set size (kbytes)")
    FIG[$key/wall]=$wall
    FIG[$key/tps]=$(calc "%.0f" "$n / $wall")
    FIG[$key/cpu]=$(calc "%.2f" "$user + $sys")
    FIG[$key/cpu_detail]="$user user + $sys sys"
    FIG[$key/user]=$user
    FIG[$key/sys]=$sys
    FIG[$key/cpu_ms]=$(calc "%.3f" "($user + $sys) * 1000 / $n")
    FIG[$key/rss]=$(calc "%.1f" "$rss / 1024")
    FIG[$key/first_m]=${first_m:-?}
    FIG[$key/first_v]=${first_v:-?}
    FIG[$key/control_rss]=$(peak_mib "$cpid")
    FIG[$key/verdicts]=$(verdict_summary "$dir" "$n")
    verdict_counts "$dir" >"$dir/verdicts.json"
    printf '  %s targets (%s), %s: %s s wall, %s targets/s, CPU %s s (%s; %s ms per target), peak RSS %s MiB, first measurement row %s s, first verdict row %s s; control peak RSS %s MiB\n' \
        "$n" "$KIND" "$mode" "$wall" "${FIG[$key/tps]}" "${FIG[$key/cpu]}" "${FIG[$key/cpu_detail]}" \
        "${FIG[$key/cpu_ms]}" "${FIG[$key/rss]}" "${FIG[$key/first_m]}" "${FIG[$key/first_v]}" "${FIG[$key/control_rss]}"
    printf '  verdicts: %s\n' "${FIG[$key/verdicts]}"
    where_time_goes "$dir" | sed 's/^/  /'
}

# The same as a JSON object, {"bench-ok ok": 700, ...}, for bench.json.
verdict_counts() {
    awk -F, 'NR > 1 && $5 != "canary" { c[$5 " " $7 ($8 != "" ? "/" $8 : "")]++ }
        END { for (k in c) printf "%s\t%d\n", k, c[k] }' "$1/out/verdicts.csv" | sort |
        jq -R -n '[inputs | split("\t") | {(.[0]): (.[1] | tonumber)}] | add // {}'
}

# Verdicts per category ("bench-ok ok/ 700", ...), to show the censor did its part.
verdict_summary() {
    local dir=$1
    awk -F, 'NR > 1 && $5 != "canary" {
        k = $5 " " $7 ($8 != "" ? "/" $8 : ""); c[k]++ }
        END { for (k in c) printf "%s=%d\n", k, c[k] }' "$dir/out/verdicts.csv" | sort | paste -sd' ' -
}

# Where the time went, from measurements.jsonl: per step, how long it took (ms), and per
# target, when its first step started after the run began (queueing), how long from its
# first step to the end of its last (steps and waits between them), and when that was.
where_time_goes() {
    local dir=$1 started
    started=$(jq -r .started_at "$dir/out/run.json")
    jq -r --arg s "$started" 'select(.vantage) | [.vantage, .step, .target, .measured_at, .runtime_ms] | @tsv' \
        "$dir/out/measurements.jsonl" | awk -F'\t' -v started="$started" '
        function secs(t,   h, m, s) { h = substr(t, 12, 2); m = substr(t, 15, 2); s = substr(t, 18); sub(/[Z+].*$/, "", s); return h * 3600 + m * 60 + s }
        BEGIN { t0 = secs(started) }
        {
            at = secs($4) - t0; if (at < -43200) at += 86400
            end = at + $5 / 1000
            print "step", $1 "/" $2, $5
            k = $1 SUBSEP $3
            if (!(k in first) || at < first[k]) first[k] = at
            if (!(k in last) || end > last[k]) last[k] = end
        }
        END { for (k in first) { split(k, p, SUBSEP); print "start", p[1], first[k] * 1000; print "span", p[1], (last[k] - first[k]) * 1000; print "end", p[1], last[k] * 1000 } }
    ' >"$dir/timing.tsv"
    echo "where the time goes, in ms (p50 p90 p99 max, count): steps by vantage; per target"
    echo "from the run's start to its first step (start), first step to last step's end (span),"
    echo "the run's start to its last step's end (end)"
    sort -k1,1 -k2,2 -k3,3g "$dir/timing.tsv" | awk '
        function flush() {
            if (n == 0) return
            printf "    %-6s %-26s", kind, group
            q[1] = 0.5; q[2] = 0.9; q[3] = 0.99
            for (i = 1; i <= 3; i++) { k = int(q[i] * n + 0.999999); printf " %8.0f", v[k] }
            printf " %8.0f %7d\n", v[n], n
        }
        $1 != kind || $2 != group { flush(); kind = $1; group = $2; n = 0 }
        { v[++n] = $3 }
        END { flush() }'
}

# curl_run N MODE: the same URLs with curl --parallel from the probe's namespace.
curl_run() {
    local n=$1 mode=$2 dir=$WORK/curl-$1-$2
    mkdir -p "$dir"
    head -n "$n" "$WORK/hosts" | awk '{ printf "url = \"https://%s/\"\noutput = \"/dev/null\"\n", $2 }' >"$dir/urls.cfg"
    censor_mode "$mode"
    say "curl: $n URLs, $mode network, --parallel-max $CONCURRENCY (load average $(cut -d' ' -f1 /proc/loadavg))"
    local started rc=0 wall
    started=$(now)
    /usr/bin/time -v -o "$dir/time.txt" ip netns exec "$NS_PROBE" curl --parallel --parallel-max "$CONCURRENCY" \
        --cacert "$STATE/ca.pem" --connect-timeout "$TIMEOUT" --max-time "$TIMEOUT" -s \
        -w '%{http_code} %{exitcode}\n' -K "$dir/urls.cfg" >"$dir/results" 2>"$dir/stderr" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    wall=$(elapsed "$started" "$(now)")
    # curl exits non-zero when a transfer failed, which the censored network ensures.
    local results ok
    results=$(wc -l <"$dir/results")
    ((results == n)) || die "curl gave $results results for $n URLs (exit $rc): $(tail -n 3 "$dir/stderr")"
    ok=$(awk '$1 == 200' "$dir/results" | wc -l)
    local key=$n/$mode
    FIG[$key/curl_wall]=$wall
    FIG[$key/curl_ok]=$ok
    FIG[$key/curl_tps]=$(calc "%.0f" "$n / $wall")
    FIG[$key/curl_cpu]=$(calc "%.2f" "$(time_field "$dir/time.txt" "User time (seconds)") + $(time_field "$dir/time.txt" "System time (seconds)")")
    FIG[$key/curl_rss]=$(calc "%.1f" "$(time_field "$dir/time.txt" "Maximum resident set size (kbytes)") / 1024")
    FIG[$key/ratio]=$(calc "%.2f" "${FIG[$key/tps]:-0} / ${FIG[$key/curl_tps]}")
    printf '  curl, %s URLs, %s: %s s wall, %s URLs/s (%s answered 200), CPU %s s, peak RSS %s MiB; censorprobe/curl = %s\n' \
        "$n" "$mode" "$wall" "${FIG[$key/curl_tps]}" "$ok" "${FIG[$key/curl_cpu]}" "${FIG[$key/curl_rss]}" "${FIG[$key/ratio]}"
}

# The control under many clients at once: wrk from three source addresses (the control
# admits 128 connections per client address), each connection a client that POSTs a
# batch of honest sites, waits for the answer, and backs off 250-500 ms after a 503 as
# the probe does.
control_load() {
    local dir=$WORK/control-load
    mkdir -p "$dir"
    bash "$TESTBED" scenario none >/dev/null
    awk '$3 == "ok" { print $1, $2 }' "$WORK/hosts" >"$dir/sites"
    cat >"$dir/post.lua" <<'EOF'
-- Generated by scripts/bench.sh: each connection POSTs /v1/measure with a batch of
-- bench sites, the ECH comparison left for later, taking older shared measurements
-- marked as older than a second (a probe sends how long ago it began the batch's
-- targets, and asks again only where the mark could sway a verdict), and backs off
-- 250-500 ms after a 503, as a probe does.
local sites, batch, kind = {}, 10, "urls"
local backoff = false
n200, n503, nother = 0, 0, 0

function init(args)
    for line in io.lines(args[1]) do
        local ip, name = line:match("^(%S+) (%S+)$")
        sites[#sites + 1] = { ip = ip, name = name }
    end
    batch, kind = tonumber(args[2]), args[3]
    math.randomseed(os.time() + 7919 * tonumber(args[4]))
end

function request()
    local parts = {}
    for i = 1, batch do
        local s = sites[math.random(#sites)]
        local target = kind == "urls" and ("https://" .. s.name .. "/") or s.name
        parts[i] = string.format('{"service":"bench","target":"%s","tls_ports":[443],"tcp_ports":[80],"addresses":["%s"]}', target, s.ip)
    end
    local body = '{"targets":[' .. table.concat(parts, ",") .. '],"control_sni":"canary.test"}'
    return wrk.format("POST", "/v1/measure?ech=later&max_age=1000&older=mark", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
    if status == 200 then n200 = n200 + 1
    elseif status == 503 then n503 = n503 + 1; backoff = true
    else nother = nother + 1 end
end

function delay()
    if backoff then backoff = false; return math.random(250, 500) end
    return 0
end

local threads = {}
function setup(thread) threads[#threads + 1] = thread end

function done(summary, latency, requests)
    local a, b, c = 0, 0, 0
    for _, t in ipairs(threads) do a = a + t:get("n200"); b = b + t:get("n503"); c = c + t:get("nother") end
    local e = summary.errors
    io.write(string.format("statuses: 200=%d 503=%d other=%d\n", a, b, c))
    io.write(string.format("wrk: socket_errors=%d timeouts=%d p50_ms=%.0f p99_ms=%.0f max_ms=%.0f\n",
        e.connect + e.read + e.write, e.timeout,
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
EOF
    local cpid namespaces=("$NS_PROBE" "$NS_NET" "$NS_CENSOR") per i pids=()
    cpid=$(control_pid)
    reset_peak "$cpid"
    FIG[control/date]=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    say "control: $CONTROL_CLIENTS clients, $CONTROL_BATCH $KIND per request, ${CONTROL_SECONDS}s (load average $(cut -d' ' -f1 /proc/loadavg))"
    for i in 0 1 2; do
        per=$(((CONTROL_CLIENTS + 2 - i) / 3))
        ((per > 0)) || continue
        in_ns "${namespaces[$i]}" wrk -t 1 -c "$per" -d "${CONTROL_SECONDS}s" --timeout 60s \
            -s "$dir/post.lua" "$CONTROL_URL/v1/measure" -- "$dir/sites" "$CONTROL_BATCH" "$KIND" "$i" \
            >"$dir/wrk-$i.out" 2>&1 &
        pids+=($!)
    done
    local pid rc=0
    for pid in "${pids[@]}"; do
        CHILD=$pid
        wait "$pid" || rc=$?
    done
    CHILD=""
    ((rc == 0)) || die "wrk failed: $(tail -n 5 "$dir"/wrk-*.out)"
    FIG[control/rss]=$(peak_mib "$cpid")
    local n200 n503 nother errors timeouts p99
    read -r n200 n503 nother < <(cat "$dir"/wrk-*.out | awk -F'[ =]' '/^statuses:/ { a += $3; b += $5; c += $7 } END { print a + 0, b + 0, c + 0 }')
    read -r errors timeouts p99 < <(cat "$dir"/wrk-*.out | awk -F'[ =]' '/^wrk:/ { e += $3; t += $5; if ($9 > p) p = $9 } END { print e + 0, t + 0, p + 0 }')
    FIG[control/errors]=$errors
    FIG[control/timeouts]=$timeouts
    local total=$((n200 + n503 + nother))
    ((total > 0)) || die "the control answered nothing: $(tail -n 5 "$dir"/wrk-*.out)"
    FIG[control/rps]=$(calc "%.1f" "$n200 / $CONTROL_SECONDS")
    FIG[control/all_rps]=$(calc "%.1f" "$total / $CONTROL_SECONDS")
    FIG[control/503]=$(calc "%.1f" "100 * $n503 / $total")
    FIG[control/tps]=$(calc "%.0f" "$n200 * $CONTROL_BATCH / $CONTROL_SECONDS")
    FIG[control/p99]=$p99
    printf '  control: %s clients for %ss: %s answered requests/s (%s targets/s), %s responses/s in all, 503s %s%% (%s of %s), other statuses %s, socket errors %s, timeouts %s; worst p99 latency %s ms; control peak RSS %s MiB\n' \
        "$CONTROL_CLIENTS" "$CONTROL_SECONDS" "${FIG[control/rps]}" "${FIG[control/tps]}" "${FIG[control/all_rps]}" \
        "${FIG[control/503]}" "$n503" "$total" "$nother" "$errors" "$timeouts" "$p99" "${FIG[control/rss]}"
}

# --- The results: bench.json, the summary table, the plot, the history ----------------

# A figure as JSON: a number, or null where it was not measured ("?", "-" or nothing).
num() { if [[ ${1:-} =~ ^-?[0-9]+([.][0-9]+)?$ ]]; then echo "$1"; else echo null; fi; }

# run_json N MODE: one probe run as a JSON object, with curl's figures where curl ran.
run_json() {
    local n=$1 mode=$2 key=$1/$2 verdicts=$WORK/run-$1-$2/verdicts.json
    jq -c -n --arg commit "$COMMIT" --argjson dirty "$DIRTY" --arg date "${FIG[$key/date]}" \
        --arg kind "$KIND" --argjson size "$n" --arg network "$mode" \
        --argjson wall "$(num "${FIG[$key/wall]}")" --argjson tps "$(num "${FIG[$key/tps]}")" \
        --argjson user "$(num "${FIG[$key/user]}")" --argjson sys "$(num "${FIG[$key/sys]}")" \
        --argjson cpu "$(num "${FIG[$key/cpu]}")" --argjson cpu_ms "$(num "${FIG[$key/cpu_ms]}")" \
        --argjson rss "$(num "${FIG[$key/rss]}")" --argjson first_m "$(num "${FIG[$key/first_m]}")" \
        --argjson first_v "$(num "${FIG[$key/first_v]}")" --argjson ctl_rss "$(num "${FIG[$key/control_rss]}")" \
        --argjson load "$(num "${FIG[$key/load]}")" \
        --argjson curl_wall "$(num "${FIG[$key/curl_wall]:-}")" --argjson curl_tps "$(num "${FIG[$key/curl_tps]:-}")" \
        --argjson curl_ok "$(num "${FIG[$key/curl_ok]:-}")" --argjson curl_cpu "$(num "${FIG[$key/curl_cpu]:-}")" \
        --argjson curl_rss "$(num "${FIG[$key/curl_rss]:-}")" --argjson ratio "$(num "${FIG[$key/ratio]:-}")" \
        --slurpfile verdicts "$verdicts" '{
            commit: $commit, dirty: $dirty, date: $date, kind: $kind, size: $size, network: $network,
            wall_s: $wall, targets_per_s: $tps, cpu_user_s: $user, cpu_sys_s: $sys, cpu_s: $cpu,
            cpu_ms_per_target: $cpu_ms, peak_rss_mib: $rss, first_measurement_s: $first_m,
            first_verdict_s: $first_v, control_peak_rss_mib: $ctl_rss, load_average: $load,
            curl_wall_s: $curl_wall, curl_targets_per_s: $curl_tps, curl_answered_200: $curl_ok,
            curl_cpu_s: $curl_cpu, curl_peak_rss_mib: $curl_rss, curl_ratio: $ratio,
            verdicts: $verdicts[0]
        }'
}

# The control under load as a JSON object.
control_json() {
    jq -c -n --arg commit "$COMMIT" --argjson dirty "$DIRTY" --arg date "${FIG[control/date]}" \
        --arg kind "$KIND" --argjson clients "$CONTROL_CLIENTS" --argjson batch "$CONTROL_BATCH" \
        --argjson seconds "$CONTROL_SECONDS" --argjson rps "$(num "${FIG[control/rps]}")" \
        --argjson tps "$(num "${FIG[control/tps]}")" --argjson all "$(num "${FIG[control/all_rps]}")" \
        --argjson p503 "$(num "${FIG[control/503]}")" --argjson p99 "$(num "${FIG[control/p99]}")" \
        --argjson rss "$(num "${FIG[control/rss]}")" --argjson errors "$(num "${FIG[control/errors]}")" \
        --argjson timeouts "$(num "${FIG[control/timeouts]}")" '{
            commit: $commit, dirty: $dirty, date: $date, kind: $kind, clients: $clients,
            batch: $batch, seconds: $seconds, requests_per_s: $rps, targets_per_s: $tps,
            responses_per_s: $all, pct_503: $p503, p99_ms: $p99, peak_rss_mib: $rss,
            socket_errors: $errors, timeouts: $timeouts
        }'
}

# write_json: $WORK/bench.json from the runs so far (written after each size, so that a
# bench cut short keeps what it measured), copied into the results directory.
write_json() {
    local n mode
    for n in $SIZES; do
        for mode in clean censored; do
            if [[ -n ${FIG[$n/$mode/wall]:-} ]]; then run_json "$n" "$mode"; fi
        done
    done >"$WORK/runs.jsonl"
    if [[ -n ${FIG[control/rps]:-} ]]; then control_json; fi >"$WORK/control.jsonl"
    jq -n --arg commit "$COMMIT" --argjson dirty "$DIRTY" --arg describe "$REVISION" \
        --arg build "$(if ((BUILD)); then echo "cargo build --release"; elif [[ -n $BIN_GIVEN ]]; then echo "--bin $BIN_GIVEN"; else echo "--no-build"; fi)" \
        --arg date "$STARTED" --argjson cores "$(nproc)" \
        --argjson memory "$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" \
        --arg kernel "$(uname -r)" --arg kind "$KIND" --argjson timeout "$TIMEOUT" \
        --argjson concurrency "$CONCURRENCY" --argjson addresses "$ADDRESSES" \
        --argjson blackholed "$BLACKHOLED" --argjson reset "$RESET" --argjson stalled "$STALLED" \
        --argjson clients "$CONTROL_CLIENTS" --argjson batch "$CONTROL_BATCH" \
        --argjson seconds "$CONTROL_SECONDS" \
        --slurpfile runs "$WORK/runs.jsonl" --slurpfile control "$WORK/control.jsonl" '{
            schema: 1, tool: "scripts/bench.sh", commit: $commit, dirty: $dirty,
            describe: $describe, build: $build, date: $date,
            machine: { cores: $cores, memory_gib: $memory, kernel: $kernel },
            settings: {
                kind: $kind, timeout_s: $timeout, concurrency: $concurrency, addresses: $addresses,
                blackholed_pct: $blackholed, reset_pct: $reset, stalled_pct: $stalled, control_clients: $clients,
                control_batch: $batch, control_seconds: $seconds
            },
            runs: $runs, control_load: $control
        }' >"$WORK/bench.json"
    mkdir -p "$RESULTS"
    cp "$WORK/bench.json" "$RESULTS/bench.json"
}

# summary_of JSON: the summary table of a bench.json, with the issue's targets.
summary_of() {
    local json=$1 fmt='%-7s %-9s %8s %9s %8s %8s %8s %8s %8s %9s %7s %7s %s\n'
    jq -r '"=== censorprobe bench: \(.date[0:10]), \(.machine.cores) cores, \(.machine.memory_gib) GiB, \(.describe) (\(.build))",
        "    \(.settings.kind) targets; control on; timeout \(.settings.timeout_s)s, concurrency \(.settings.concurrency), per-host 4; \(.settings.addresses) server addresses; censored = \(.settings.blackholed_pct)% blackholed, \(.settings.reset_pct)% reset, \(.settings.stalled_pct // 0)% stalled by name"' "$json"
    # shellcheck disable=SC2059 # the format is the table's
    printf "$fmt" targets network "wall s" targets/s "CPU s" "CPU ms/t" "RSS MiB" "1st row" "1st ver" "curl t/s" "vs curl" "ctl MiB" commit
    jq -r '.runs[] | [.size, .network, .wall_s, .targets_per_s, .cpu_s, .cpu_ms_per_target, .peak_rss_mib,
        .first_measurement_s, .first_verdict_s, .curl_targets_per_s, .curl_ratio, .control_peak_rss_mib,
        (.commit[0:9] + (if .dirty then "+dirty" else "" end))] | map(. // "-" | tostring) | @tsv' "$json" |
        awk -F'\t' -v fmt="$fmt" '{ printf fmt, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 }'
    jq -r '.control_load[] | "control under \(.clients) clients x \(.batch) \(.kind): \(.requests_per_s) requests/s answered (\(.targets_per_s) targets/s), 503s \(.pct_503)%, p99 \(.p99_ms) ms, peak RSS \(.peak_rss_mib) MiB"' "$json"
    # Blackholed targets should cost their timeout about once, in parallel
    # (src/measure/limits.rs): at most half again the clean run, or one timeout and a
    # second more.
    jq -r --slurpfile s <(jq .settings "$json") '
        def mark(c): if c then "met" else "MISSED" end;
        def r2: . * 100 | round / 100;
        $s[0] as $s |
        "targets (issue 6):",
        (.runs | group_by([.commit, .size])[] |
            (.[] |
                (select(.size == 1000) | "  1,000 targets in <= 5 s (\(.network)): \(.wall_s) s: \(mark(.wall_s <= 5))"),
                (select(.size == 10000) | "  10,000 targets in <= 30 s (\(.network)): \(.wall_s) s: \(mark(.wall_s <= 30))",
                    "  peak RSS <= 100 MB at 10,000 (\(.network)): \(.peak_rss_mib) MiB: \(mark(.peak_rss_mib * 1.048576 <= 100))"),
                (select(.curl_ratio != null) | "  at least curl\u0027s targets/s (\(.size), \(.network)): x\(.curl_ratio): \(mark(.curl_ratio >= 1))")),
            ((map(select(.network == "clean"))[0]) as $c | (map(select(.network == "censored"))[0]) as $x |
                select($c != null and $x != null) |
                ($x.wall_s / $c.wall_s | r2) as $ratio | ($x.wall_s - $c.wall_s | r2) as $extra |
                "  censored (\($s.blackholed_pct)% blackholed, \($s.reset_pct)% reset, \($s.stalled_pct // 0)% stalled) does not multiply wall time (\($c.size)): censored/clean = x\($ratio) (+\($extra) s; timeout \($s.timeout_s) s): \(mark($ratio <= 1.5 or $extra <= $s.timeout_s + 1))"))' "$json"
}

# Tics of the N axis: 1000 as 1k, 1000000 as 1M.
size_label() { awk -v n="$1" 'BEGIN { if (n % 1000000 == 0) printf "%dM", n / 1000000; else if (n % 1000 == 0) printf "%dk", n / 1000; else printf "%d", n }'; }

# plot_of JSON PNG: wall time (left axis) and peak RSS (right axis) against the number
# of targets (log scale), clean and censored, from the last run of each size and
# network; with gnuplot.
plot_of() {
    local json=$1 png=$2 data tics="" n title
    data=$(mktemp /tmp/cp-bench-plot.XXXXXX)
    jq -r '.runs | group_by(.size)[] |
        (map(select(.network == "clean")) | last) as $c | (map(select(.network == "censored")) | last) as $x |
        [.[0].size, $c.wall_s, $c.peak_rss_mib, $x.wall_s, $x.peak_rss_mib] | map(. // "NaN" | tostring) | join(" ")' \
        "$json" >"$data"
    [[ -s $data ]] || die "--plot: no runs in $json"
    while read -r n _; do tics+="${tics:+, }\"$(size_label "$n")\" $n"; done <"$data"
    title=$(jq -r '"censorprobe bench, \(.settings.kind) targets: \(.describe), \(.date[0:10]), \(.machine.cores) cores"' "$json")
    local terminal="pngcairo size 900,540 font 'sans,10'"
    gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 || terminal="png size 900,540"
    mkdir -p "$(dirname "$png")"
    gnuplot <<EOF || die "--plot: gnuplot failed"
set terminal $terminal
set output "$png"
set title "$title"
set datafile missing "NaN"
set key top left box opaque
set grid xtics ytics
set logscale x 10
set xrange [$(awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%g:%g", lo / 1.6, hi * 1.6 }' "$data")]
set xtics ($tics)
set xlabel "targets (N, log scale)"
set logscale y 10
set ylabel "wall time, s (log scale)"
set ytics nomirror
set y2label "peak RSS, MiB"
set y2range [0:$(jq '[.runs[].peak_rss_mib // 0] | max * 1.15' "$json")]
set y2tics
set style line 1 lc rgb "#1f77b4" lw 2 pt 7
set style line 2 lc rgb "#1f77b4" lw 2 pt 5 dt 2
set style line 3 lc rgb "#d62728" lw 2 pt 7
set style line 4 lc rgb "#d62728" lw 2 pt 5 dt 2
plot "$data" using 1:2 axes x1y1 with linespoints ls 1 title "wall, clean", \
     "$data" using 1:4 axes x1y1 with linespoints ls 2 title "wall, censored", \
     "$data" using 1:3 axes x1y2 with linespoints ls 3 title "peak RSS, clean", \
     "$data" using 1:5 axes x1y2 with linespoints ls 4 title "peak RSS, censored"
EOF
    rm -f "$data"
    say "plot: $png"
}

# history_of JSON FILE: appends the runs (and the control load) of a bench.json to the
# history tables of FILE, each the table after its marker line; a row already there is
# not added again.
HISTORY_RUNS_MARK='<!-- bench.sh --history: runs -->'
HISTORY_CONTROL_MARK='<!-- bench.sh --history: control -->'
history_of() {
    local json=$1 file=$2 rows part mark
    [[ -f $file ]] || die "--history: no file $file"
    rows=$(mktemp /tmp/cp-bench-history.XXXXXX)
    jq -r 'def c: .commit[0:9] + (if .dirty then "-dirty" else "" end);
        def v: if . == null then "–" else tostring end;
        .runs[] | "| \(.date[0:16] | sub("T"; " ")) | `\(c)` | \(.kind) | \(.size) | \(.network) | \(.wall_s | v) | \(.targets_per_s | v) | \(.cpu_ms_per_target | v) | \(.peak_rss_mib | v) | \(.first_verdict_s | v) | \(.curl_ratio | if . == null then "–" else "×\(.)" end) |"' \
        "$json" >"$rows.runs"
    jq -r 'def c: .commit[0:9] + (if .dirty then "-dirty" else "" end);
        .control_load[] | "| \(.date[0:16] | sub("T"; " ")) | `\(c)` | \(.kind) | \(.clients) × \(.batch) | \(.requests_per_s) | \(.targets_per_s) | \(.pct_503)% | \(.p99_ms) | \(.peak_rss_mib) |"' \
        "$json" >"$rows.control"
    for part in runs control; do
        [[ -s $rows.$part ]] || continue
        mark=$HISTORY_RUNS_MARK
        [[ $part == control ]] && mark=$HISTORY_CONTROL_MARK
        grep -qxF -- "$mark" "$file" || die "--history: $file has no line '$mark' before its table of $part"
        # The table after the marker ends at its first line not starting with "|"; new
        # rows go there, unless the table holds them already.
        awk -v mark="$mark" -v rowsfile="$rows.$part" '
            BEGIN { while ((getline line < rowsfile) > 0) new[++n] = line }
            function flush(   i) { for (i = 1; i <= n; i++) if (!(new[i] in seen)) print new[i]; done = 1 }
            state == 2 && !done && !/^\|/ { flush() }
            { print }
            state == 2 && /^\|/ { seen[$0] = 1 }
            state == 1 && /^\|/ { state = 2; seen[$0] = 1 }
            state == 0 && $0 == mark { state = 1 }
            END { if (state == 2 && !done) flush() }
        ' "$file" >"$rows.out"
        cat "$rows.out" >"$file"
    done
    rm -f "$rows" "$rows".*
    say "history: rows added to $file"
}

# report JSON: the summary (on stdout and, for a bench that ran, in summary.txt beside
# bench.json), then the plot and the history, as asked.
report() {
    local json=$1
    echo
    if [[ -n $RESULTS ]]; then
        summary_of "$json" | tee "$RESULTS/summary.txt"
    else
        summary_of "$json"
    fi
    [[ -z $PLOT ]] || plot_of "$json" "$PLOT"
    [[ -z $HISTORY ]] || history_of "$json" "$HISTORY"
}

# --- Main -----------------------------------------------------------------------------

if ((${#FROM[@]})); then
    # No bench: the runs of earlier ones, merged (settings and machine of the last file).
    WORK=$(mktemp -d /tmp/cp-bench.XXXXXX)
    jq -s '.[-1] + {
        describe: (map(.describe) | unique | join(", ")),
        runs: (map(.runs) | add | sort_by(.size)),
        control_load: (map(.control_load // []) | add)
    }' "${FROM[@]}" >"$WORK/bench.json"
    report "$WORK/bench.json"
    exit 0
fi

take_machine_lock
cd "$REPO"
if ((BUILD)); then
    say "cargo build --release"
    cargo build --release --quiet 2>&1 | tail -n 20 >&2
    ((PIPESTATUS[0] == 0)) || die "cargo build --release failed"
fi
BIN=${BIN_GIVEN:-$REPO/target/release/censorprobe}
[[ -x $BIN ]] || die "no $BIN: build it (cargo build --release), or give --bin an executable"
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
REVISION="$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
COMMIT=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
DIRTY=false
[[ -z $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]] || DIRTY=true
RESULTS=${RESULTS:-$REPO/results/bench-$(date -u -d "$STARTED" +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS" || die "--results: cannot make $RESULTS"
export CENSORPROBE=$BIN # the control server runs the release binary too
export CP_TESTBED_STATE=$STATE

WORK=$(mktemp -d /tmp/cp-bench.XXXXXX)
chmod 755 "$WORK"
max=0
for n in $SIZES; do ((n > max)) && max=$n; done
make_hosts "$max" "$WORK/hosts"
awk '{ print $1, $2 }' "$WORK/hosts" >"$WORK/bench-hosts"
say "testbed up in bench mode: $max sites on $ADDRESSES addresses"
LAB_UP=1
bash "$TESTBED" up --bench "$WORK/bench-hosts" >"$WORK/up.log" 2>&1 || die "scripts/testbed.sh up --bench failed: $(tail -n 5 "$WORK/up.log")"

for n in $SIZES; do
    ((RUN_CLEAN)) && probe_run "$n" clean
    ((RUN_CENSORED)) && probe_run "$n" censored
    if ((RUN_CURL && (CURL_MAX == 0 || n <= CURL_MAX))); then
        ((RUN_CLEAN)) && curl_run "$n" clean
        ((RUN_CENSORED)) && curl_run "$n" censored
    fi
    write_json
done
if ((CONTROL_LOAD)); then
    control_load
    write_json
fi
report "$WORK/bench.json"
say "results: $RESULTS (bench.json, summary.txt)"
