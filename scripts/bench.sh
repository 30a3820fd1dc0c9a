#!/usr/bin/env bash
# Relay throughput: one IMAP client fetching one large message over and over,
# straight from the bench backend ("direct"), then through Postern with
# `--relay copy`, then through Postern with `--relay splice`. Prints the
# median MB/s of each target, its ratio to direct, and the CPU seconds per GB
# that Postern and the backend spent, and appends every run's JSON line to
# target/bench/relay-<date>.jsonl.
#
#   scripts/bench.sh              full run: 64 MiB message, 32 fetches, 5 rounds
#   scripts/bench.sh --quick      smoke run: 8 MiB message, 8 fetches, 3 rounds
#   scripts/bench.sh --no-build   use the binaries already in target/release
#
# Environment (each overrides the default, also under --quick):
#   MSG_BYTES    message size in bytes (67108864; 8388608 with --quick)
#   COUNT        FETCHes per connection and round (32; 8 with --quick)
#   ROUNDS       rounds per target; the table shows medians (5; 3 with --quick)
#   CONNS        parallel client connections (1)
#   CORES        Postern's worker_processes (1)
#   RELAY_MODES  Postern relay modes to measure, in order ("copy splice");
#                "default" runs Postern without --relay
#   PIPE_SIZE    passed as --pipe-size to Postern in splice mode (unset: its default)
#   POSTERN      Postern binary (target/release/postern)
#   POSTERN_ARGS extra Postern flags, split on spaces (e.g. "--no-pin")
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

QUICK=0
BUILD=1
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "bench.sh: unknown argument \"$arg\" (try --help)" >&2
            exit 2
            ;;
    esac
done

if [ "$QUICK" -eq 1 ]; then
    : "${MSG_BYTES:=$((8 << 20))}" "${COUNT:=8}" "${ROUNDS:=3}"
else
    : "${MSG_BYTES:=$((64 << 20))}" "${COUNT:=32}" "${ROUNDS:=5}"
fi
: "${CONNS:=1}" "${CORES:=1}" "${RELAY_MODES:=copy splice}" "${PIPE_SIZE:=}" "${POSTERN_ARGS:=}"
: "${POSTERN:=target/release/postern}"
BENCH=target/release/postern-bench

need_packages python3:python3
if [ "$BUILD" -eq 1 ]; then
    need_packages gcc:gcc git:git
    need_cargo
    echo "== building (release)"
    cargo build --release --workspace --quiet
fi
for bin in "$BENCH" "$POSTERN"; do
    [ -x "$bin" ] || { echo "bench.sh: $bin is missing; run without --no-build" >&2; exit 1; }
done
for mode in $RELAY_MODES; do
    if [ "$mode" != default ] && ! "$POSTERN" --help 2>/dev/null | grep -q -- '--relay'; then
        echo "bench.sh: $POSTERN has no --relay flag; RELAY_MODES=default measures its built-in relay" >&2
        exit 1
    fi
done

WORK=$(mktemp -d /tmp/postern-bench.XXXXXX)
PIDS=()
POSTERN_PID=""

cleanup() {
    local pid
    for pid in ${POSTERN_PID:+"$POSTERN_PID"} ${PIDS[@]+"${PIDS[@]}"}; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for FILE TEXT PID: until TEXT appears in FILE, at most 30 s, failing
# at once if process PID has exited.
wait_for() {
    local _
    for _ in $(seq 300); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        if ! kill -0 "$3" 2>/dev/null; then
            echo "bench.sh: process $3 exited before printing \"$2\":" >&2
            cat "$1" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "bench.sh: timed out waiting for \"$2\" in $1:" >&2
    cat "$1" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server NAME ARGS...: starts postern-bench ARGS and sets ADDR to the
# address of its `listening` line.
start_server() {
    local name=$1 pid
    shift
    "$BENCH" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    pid=$!
    PIDS+=("$pid")
    wait_for "$WORK/$name.out" '^listening ' "$pid"
    ADDR=$(sed -n 's/^listening //p' "$WORK/$name.out")
    LAST_PID=$pid
}

echo "== backend: 1 message of $MSG_BYTES bytes"
start_server backend backend --listen 127.0.0.1:0 --user bench:bench --messages 1 --msg-bytes "$MSG_BYTES"
BACKEND_ADDR=$ADDR
BACKEND_PID=$LAST_PID
start_server auth auth --listen 127.0.0.1:0 --user bench:bench --backend "imap=$BACKEND_ADDR"
AUTH_ADDR=$ADDR

# start_postern MODE: Postern on a fresh port with relay MODE; sets
# POSTERN_PID and POSTERN_ADDR.
start_postern() {
    local mode=$1 port flags=()
    port=$(free_port)
    cat >"$WORK/postern-$mode.conf" <<EOF
worker_processes $CORES;
error_log stderr notice;

mail {
    auth_http $AUTH_ADDR/auth;

    server {
        listen 127.0.0.1:$port;
        protocol imap;
    }
}
EOF
    [ "$mode" != default ] && flags+=(--relay "$mode")
    [ "$mode" = splice ] && [ -n "$PIPE_SIZE" ] && flags+=(--pipe-size "$PIPE_SIZE")
    # shellcheck disable=SC2086 # POSTERN_ARGS is split on purpose
    "$POSTERN" -c "$WORK/postern-$mode.conf" ${flags[@]+"${flags[@]}"} $POSTERN_ARGS 2>"$WORK/postern-$mode.log" &
    POSTERN_PID=$!
    wait_for "$WORK/postern-$mode.log" ' started' "$POSTERN_PID"
    POSTERN_ADDR=127.0.0.1:$port
}

stop_postern() {
    kill -TERM "$POSTERN_PID"
    wait "$POSTERN_PID" || {
        echo "bench.sh: postern exited with status $? on SIGTERM:" >&2
        cat "$WORK/postern-$1.log" >&2
        exit 1
    }
    POSTERN_PID=""
}

RUN=$(date +%Y-%m-%dT%H:%M:%S)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT+dirty"
RESULTS=$WORK/results.jsonl
: >"$RESULTS"

# fetch TARGET ARGS...: postern-bench fetch ARGS; on failure, shows the
# end of Postern's log for TARGET and stops the script.
fetch() {
    local target=$1
    shift
    "$BENCH" fetch --user bench:bench --msg 1 --conns "$CONNS" --timeout 20 "$@" && return 0
    echo "bench.sh: fetching from $target failed" >&2
    if [ -f "$WORK/postern-$target.log" ]; then
        echo "-- end of Postern's log ($target):" >&2
        tail -n 20 "$WORK/postern-$target.log" >&2
    fi
    exit 1
}

# measure TARGET ADDR POSTERN_PID|null: a warm-up fetch, then ROUNDS runs,
# each JSON line tagged with the run, the target and the pids.
measure() {
    local target=$1 addr=$2 ppid=$3 round out pids=(--pid "$BACKEND_PID")
    [ "$ppid" != null ] && pids=(--pid "$ppid" --pid "$BACKEND_PID")
    echo "== $target ($addr)"
    fetch "$target" --addr "$addr" --count 1 >/dev/null
    for round in $(seq "$ROUNDS"); do
        out=$(fetch "$target" --addr "$addr" --count "$COUNT" "${pids[@]}")
        printf '   %s: %s\n' "$round" "$(head -n 1 <<<"$out")"
        tail -n 1 <<<"$out" | sed "s/^{/{\"run\":\"$RUN\",\"commit\":\"$COMMIT\",\"target\":\"$target\",\"round\":$round,\"cores\":$CORES,\"postern_pid\":$ppid,\"backend_pid\":$BACKEND_PID,/" >>"$RESULTS"
    done
}

measure direct "$BACKEND_ADDR" null
for mode in $RELAY_MODES; do
    start_postern "$mode"
    measure "$mode" "$POSTERN_ADDR" "$POSTERN_PID"
    stop_postern "$mode"
done

mkdir -p target/bench
LOG=target/bench/relay-$(date +%Y-%m-%d).jsonl
cat "$RESULTS" >>"$LOG"

echo "== $MSG_BYTES-byte message, $COUNT fetch(es) x $CONNS conn(s), $ROUNDS round(s), $CORES core(s); medians"
python3 - "$RESULTS" <<'EOF'
import json, statistics, sys

runs = [json.loads(line) for line in open(sys.argv[1])]
targets = list(dict.fromkeys(r["target"] for r in runs))

def per_gb(run, pid):
    if pid is None:
        return None
    return run["cpu"][str(pid)] / (run["bytes"] / 1e9)

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

def cell(value, fmt):
    return "-" if value is None else format(value, fmt)

rows = []
for target in targets:
    rs = [r for r in runs if r["target"] == target]
    rows.append((
        target,
        median(r["mb_per_s"] for r in rs),
        min(r["mb_per_s"] for r in rs),
        max(r["mb_per_s"] for r in rs),
        median(per_gb(r, r["postern_pid"]) for r in rs),
        median(per_gb(r, r["backend_pid"]) for r in rs),
        median(r["client_cpu"] / (r["bytes"] / 1e9) for r in rs),
    ))
direct = rows[0][1] if rows and rows[0][0] == "direct" else None
head = ("target", "MB/s", "min", "max", "vs direct", "postern s/GB", "backend s/GB", "client s/GB")
print("%-8s %9s %9s %9s %10s %13s %13s %12s" % head)
for target, mbps, low, high, postern, backend, client in rows:
    ratio = mbps / direct if direct else None
    print("%-8s %9.1f %9.1f %9.1f %10s %13s %13s %12s" % (
        target, mbps, low, high, cell(ratio, ".3f"), cell(postern, ".3f"), cell(backend, ".3f"), cell(client, ".3f")))
EOF
echo "== JSON lines appended to $LOG"
