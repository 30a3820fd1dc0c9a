#!/usr/bin/env bash
# scripts/soak.sh [DURATION_SECS]: a long mixed load against Postern, watching
# its memory and descriptors.
#
# Builds in release, starts the bench auth server, IMAP/POP3/SMTP backends
# and Postern (2 cores), then runs for DURATION_SECS (default 600), all at
# once and at fixed rates (open loop, so the run does not take every CPU):
# logins for the three protocols, sessions moving messages, IMAP bulk
# fetches, idle sessions held open, and bad clients (wrong passwords,
# garbage lines, over-long lines, clients that connect and vanish, slow
# clients) for the three protocols.
#
# A warm-up of the same mix (DURATION/10, at least 10 s) runs first; once it
# has stopped and Postern's descriptors have settled, that is the baseline.
# RSS (VmRSS) and open fds are sampled at start, after the warm-up, every
# 30 s, and after the load stops. Exits non-zero if Postern died, or if after
# the load it holds more than 20% and 2 MiB more RSS than at the baseline
# (noise: allocator and page-cache jitter) or more than 50 more fds.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

DURATION=${1:-600}
case "$DURATION" in '' | *[!0-9]*) echo "usage: scripts/soak.sh [DURATION_SECS]" >&2; exit 2 ;; esac
WARMUP=$((DURATION / 10 < 10 ? 10 : DURATION / 10))

need_cargo
need_packages python3:python3
cargo build --release --workspace -q
TARGET=${CARGO_TARGET_DIR:-target}/release
BENCH=$TARGET/postern-bench
POSTERN=$TARGET/postern

WORK=$(mktemp -d /tmp/postern-soak.XXXXXX)
PIDS=()
POSTERN_PID=""
cleanup() {
    local pid
    for pid in ${POSTERN_PID:+"$POSTERN_PID"} ${PIDS[@]+"${PIDS[@]}"}; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

alive() {
    local state
    state=$(sed 's/.*) //' /proc/"$1"/stat 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# start_server NAME ARGS...: runs postern-bench ARGS; ADDR is its address.
start_server() {
    local name=$1 _
    shift
    : >"$WORK/$name.out"
    "$BENCH" "$@" >"$WORK/$name.out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 200); do
        ADDR=$(sed -n 's/^listening //p' "$WORK/$name.out")
        [ -n "$ADDR" ] && return 0
        sleep 0.05
    done
    echo "soak.sh: $name did not start:" >&2
    cat "$WORK/$name.out" >&2
    exit 1
}

read -r IMAP_PORT POP3_PORT SMTP_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

start_server imap-backend backend --protocol imap --user bob:secret --messages 2 --msg-bytes 262144
IMAP_BACKEND=$ADDR
start_server pop3-backend backend --protocol pop3 --user bob:secret --messages 2 --msg-bytes 20000
POP3_BACKEND=$ADDR
start_server smtp-backend backend --protocol smtp --user bob:secret
SMTP_BACKEND=$ADDR
start_server auth auth --user bob:secret --backend "imap=$IMAP_BACKEND" \
    --backend "pop3=$POP3_BACKEND" --backend "smtp=$SMTP_BACKEND"
AUTH=$ADDR

cat >"$WORK/postern.conf" <<EOF
worker_processes 2;
error_log $WORK/postern.log info;
events { worker_connections 4096; }
mail {
    server_name soak.example;
    auth_http $AUTH/auth;
    timeout 30s;
    server { listen 127.0.0.1:$IMAP_PORT; protocol imap; }
    server { listen 127.0.0.1:$POP3_PORT; protocol pop3; }
    server { listen 127.0.0.1:$SMTP_PORT; protocol smtp; }
}
EOF
"$POSTERN" -c "$WORK/postern.conf" 2>>"$WORK/postern.stderr" &
POSTERN_PID=$!
for _ in $(seq 200); do
    grep -q started "$WORK/postern.log" 2>/dev/null && break
    alive "$POSTERN_PID" || { echo "soak.sh: postern exited:" >&2; cat "$WORK/postern.stderr" "$WORK/postern.log" >&2; exit 1; }
    sleep 0.05
done

rss_kib() { awk '/^VmRSS:/ { print $2 }' /proc/"$POSTERN_PID"/status; }
fds() { find /proc/"$POSTERN_PID"/fd -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
sample() {
    if ! alive "$POSTERN_PID"; then
        echo "soak.sh: FAIL: postern died ($1)" >&2
        tail -20 "$WORK/postern.log" "$WORK/postern.stderr" >&2
        exit 1
    fi
    printf '%-22s rss %7s KiB  fds %5s\n' "$1" "$(rss_kib)" "$(fds)" | tee -a "$WORK/samples"
}

# settle: waits (at most 15 s) until postern's fd count stops falling.
settle() {
    local last now _
    last=$(fds)
    for _ in $(seq 15); do
        sleep 1
        now=$(fds)
        [ "$now" -ge "$last" ] && return 0
        last=$now
    done
}

# run_mix SECS TAG: the whole mix for SECS seconds, one load process per
# line; each writes its JSON line to $WORK/TAG-NAME.json.
run_mix() {
    local secs=$1 tag=$2 loads=() spec name proto rest
    while read -r name proto rest; do
        [ -z "$name" ] && continue
        local port
        case $proto in imap) port=$IMAP_PORT ;; pop3) port=$POP3_PORT ;; smtp) port=$SMTP_PORT ;; esac
        # shellcheck disable=SC2086
        "$BENCH" load --protocol "$proto" --addr "127.0.0.1:$port" --user bob:secret \
            --duration "$secs" --json-only --timeout 20 $rest \
            >"$WORK/$tag-$name.json" 2>"$WORK/$tag-$name.err" &
        loads+=($!)
    done <<'EOF'
login-imap      imap --mode login --conns 4 --rate 60
login-pop3      pop3 --mode login --conns 4 --rate 60
login-smtp      smtp --mode login --conns 4 --rate 60
session-imap    imap --mode session --conns 4 --rate 40
session-pop3    pop3 --mode session --conns 4 --rate 40
session-smtp    smtp --mode session --conns 4 --rate 40
bulk-imap       imap --mode bulk --conns 1 --rate 4
idle-imap       imap --mode idle --conns 300
wrongpass-imap  imap --mode bad --bad wrong-pass --conns 2 --rate 15
wrongpass-pop3  pop3 --mode bad --bad wrong-pass --conns 2 --rate 15
wrongpass-smtp  smtp --mode bad --bad wrong-pass --conns 2 --rate 15
garbage-imap    imap --mode bad --bad garbage --conns 2 --rate 10
garbage-pop3    pop3 --mode bad --bad garbage --conns 2 --rate 10
garbage-smtp    smtp --mode bad --bad garbage --conns 2 --rate 10
longline-imap   imap --mode bad --bad long-line --conns 2 --rate 5
longline-pop3   pop3 --mode bad --bad long-line --conns 2 --rate 5
longline-smtp   smtp --mode bad --bad long-line --conns 2 --rate 5
vanish-imap     imap --mode bad --bad vanish --conns 2 --rate 15
vanish-pop3     pop3 --mode bad --bad vanish --conns 2 --rate 15
vanish-smtp     smtp --mode bad --bad vanish --conns 2 --rate 15
slow-imap       imap --mode bad --bad slow --conns 2
slow-pop3       pop3 --mode bad --bad slow --conns 2
slow-smtp       smtp --mode bad --bad slow --conns 2
EOF
    LOADS=("${loads[@]}")
}

# wait_loads: waits for the load processes, sampling every 30 s.
wait_loads() {
    local started=$SECONDS next=30 pid
    while :; do
        local running=0
        for pid in "${LOADS[@]}"; do alive "$pid" && running=1; done
        [ "$running" -eq 0 ] && break
        if [ $((SECONDS - started)) -ge "$next" ]; then
            sample "load +${next}s"
            next=$((next + 30))
        fi
        alive "$POSTERN_PID" || sample "during load"
        sleep 1
    done
    for pid in "${LOADS[@]}"; do wait "$pid" || true; done
}

echo "soak: postern pid $POSTERN_PID, imap $IMAP_PORT pop3 $POP3_PORT smtp $SMTP_PORT, ${DURATION}s (warm-up ${WARMUP}s)"
sample "start"
run_mix "$WARMUP" warmup
wait_loads
settle
sample "baseline (warmed up)"
BASE_RSS=$(rss_kib)
BASE_FDS=$(fds)
: >"$WORK/postern.log.mark"
LOG_START=$(wc -l <"$WORK/postern.log")
run_mix "$DURATION" soak
wait_loads
sample "load stopped"
settle
sample "end (settled)"
END_RSS=$(rss_kib)
END_FDS=$(fds)

echo
echo "load runs (ops / errors; first error if any):"
python3 - "$WORK" <<'EOF'
import glob, json, os, sys
work = sys.argv[1]
total_ops = total_err = 0
for path in sorted(glob.glob(os.path.join(work, "soak-*.json"))):
    name = os.path.basename(path)[5:-5]
    lines = [l for l in open(path).read().splitlines() if l.startswith("{")]
    err = open(path[:-5] + ".err").read().strip()
    if not lines:
        print(f"  {name:<16} no report: {err[:200]}")
        total_err += 1
        continue
    r = json.loads(lines[-1])
    total_ops += r["ops"]
    total_err += r["errors"]
    first = ("  first: " + err.split("first: ", 1)[-1][:120]) if r["errors"] else ""
    print(f"  {name:<16} {r['ops']:>8} ops {r['errors']:>6} errors{first}")
print(f"  {'total':<16} {total_ops:>8} ops {total_err:>6} errors")
EOF
echo
echo "postern sessions during the soak, by how they ended:"
tail -n +"$((LOG_START + 1))" "$WORK/postern.log" | python3 -c '
import collections, re, sys
ends = collections.Counter()
# nginx mail context after the message: ", client: IP[ using starttls],
# server: ADDR[, login: "user"[, upstream: ADDR]]".
pattern = re.compile(r"\*\d+ (.*?), client: \S+(?: using starttls)?, server: \S+(?:, login: \"(?:[^\"\\]|\\.)*\")?(?:, upstream: \S+)?$")
for line in sys.stdin:
    m = pattern.search(line.rstrip("\n"))
    # Steps of a session, not its end.
    if not m or m.group(1) == "logged in" or m.group(1).startswith("client login failed"):
        continue
    reason = re.sub(r" \((splice|copy)\),.*", "", m.group(1))
    reason = re.sub(r"^(reading from|writing to) (client|backend): .*", r"\1 \2: I/O error", reason)
    ends[reason] += 1
for reason, n in ends.most_common():
    print(f"  {n:>8}  {reason}")
print(f"  {sum(ends.values()):>8}  sessions in all")
'
echo "  alerts or worse in the log: $(grep -c -E '\[(alert|crit|emerg)\]' "$WORK/postern.log" || true)"
echo
echo "samples:"
sed 's/^/  /' "$WORK/samples"
echo
echo "rss: start $(sed -n '1s/.*rss *\([0-9]*\).*/\1/p' "$WORK/samples") KiB, baseline $BASE_RSS KiB, end $END_RSS KiB"
echo "fds: start $(sed -n '1s/.*fds *\([0-9]*\).*/\1/p' "$WORK/samples"), baseline $BASE_FDS, end $END_FDS"
FAIL=0
if [ "$END_RSS" -gt $((BASE_RSS * 120 / 100)) ] && [ "$END_RSS" -gt $((BASE_RSS + 2048)) ]; then
    echo "soak.sh: FAIL: RSS grew from $BASE_RSS to $END_RSS KiB (over 20% and 2 MiB)" >&2
    FAIL=1
fi
if [ "$END_FDS" -gt $((BASE_FDS + 50)) ]; then
    echo "soak.sh: FAIL: fds grew from $BASE_FDS to $END_FDS (over 50)" >&2
    FAIL=1
fi
alive "$POSTERN_PID" || { echo "soak.sh: FAIL: postern died" >&2; FAIL=1; }
[ "$FAIL" -eq 0 ] && echo "soak: OK"
exit "$FAIL"
