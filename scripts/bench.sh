#!/usr/bin/env bash
# Side by side: the bench backends reached directly ("direct", the physical
# limit), Postern, and nginx's mail module (at its defaults, and with 64k
# buffers: "nginx-64k") on the same configuration file and the same number of
# worker processes. Each figure is the median of ROUNDS alternating runs
# (direct, Postern, nginx, nginx-64k, direct, ...); every proxy is started
# afresh for each run and stopped with SIGTERM after it.
#
#   scripts/bench.sh [--quick] [--with-nginx] [--no-build] [SCENARIO...]
#   scripts/bench.sh relay [--quick] [--no-build]   the relay comparison:
#                      direct vs Postern --relay copy vs --relay splice
#                      (scripts/bench.sh relay --help)
#
#   --quick       1 round, short runs (under 2 minutes)
#   --with-nginx  apt-get install nginx-light (or nginx) and
#                 libnginx-mod-mail if nginx is missing. Without nginx the
#                 nginx columns say n/a.
#   --no-build    use the binaries already in target/release
#
# Scenarios (default: all, in this order; "login" = the three logins,
# "bulk" = both bulk runs, "tls" = the three TLS runs):
#   login-imap login-pop3 login-smtp  login+logout per protocol, closed loop,
#                 LOGIN_CLIENTS clients: logins/s, proxy CPU us per login
#   login-imap-proxy  login-imap with each connection opened by a PROXY
#                 protocol v1 header (the load generator plays the balancer:
#                 postern-bench load --proxy-protocol v1) on a listener with
#                 `proxy_protocol; set_real_ip_from 127.0.0.1;`
#   login-delay   IMAP logins through an auth server that answers after
#                 AUTH_DELAY_MS, DELAY_CLIENTS clients: logins/s, CPU/login
#   smtp-session  SMTP sessions sending SMTP_BYTES messages, SESSION_CLIENTS
#                 clients: messages/s, p50 latency, CPU per message
#   bulk-1 bulk-8 IMAP FETCH of a BULK_BYTES message over 1 and 8
#                 connections: MB/s, proxy CPU ms per MB
#   idle          IDLE_CONNS authenticated idle IMAP sessions: proxy PSS KiB
#                 per session, summed over its processes (nginx: master and
#                 workers)
#   tls-handshake-imap  implicit TLS (full handshake) + greeting + LOGOUT per
#                 connection, TLS_CLIENTS clients: handshakes/s, CPU each
#   tls-login-imap  implicit TLS (full handshake) + LOGIN + LOGOUT per
#                 connection, TLS_CLIENTS clients: logins/s, CPU per login
#   tls-bulk-1    bulk-1 with TLS between client and proxy (plain to the
#                 backend): MB/s, proxy CPU ms per MB
#                 TLS runs: each proxy gets `listen ... ssl` with
#                 ssl_certificate/ssl_certificate_key from a throwaway PKI
#                 (postern-bench certs), in a second configuration file, so
#                 that a Postern without TLS still runs the other scenarios
#                 (its TLS runs are marked failed, with its -t message).
#                 "direct" is the bench IMAP backend speaking TLS itself
#                 (rustls), the same TLS work without a relay.
#
# Prints one table: scenario | direct | Postern | nginx | nginx-64k |
# Postern/nginx | Postern/direct, and writes every run's JSON line and a
# summary line to bench/results/<date>-<time>-<commit>.jsonl, and the chart of the
# Postern/nginx ratios (postern-bench chart) to the same name with .png.
#
# Environment (each overrides the default, also under --quick):
#   ROUNDS           runs per target and scenario (3; 1 with --quick)
#   CORES            worker_processes of both proxies (2)
#   LOGIN_SECS       seconds per login run (5; 1 with --quick)
#   SESSION_SECS     seconds per SMTP session run (5; 1 with --quick)
#   LOGIN_CLIENTS    clients of the login runs (50)
#   DELAY_CLIENTS    clients of login-delay (500)
#   AUTH_DELAY_MS    the slow auth server's delay (5)
#   SESSION_CLIENTS  clients of smtp-session (50)
#   SMTP_BYTES       message size of smtp-session (10240)
#   BULK_BYTES       size of the fetched message (67108864; 16777216 with --quick)
#   BULK_COUNT_1     FETCHes of bulk-1 (32; 16 with --quick)
#   BULK_COUNT_8     FETCHes per connection of bulk-8 (4; 2 with --quick)
#   IDLE_CONNS       sessions of idle (9000; at most what RLIMIT_NOFILE allows)
#   IDLE_SECS        seconds the idle sessions are held (1)
#   TLS_CLIENTS      clients of the TLS handshake and login runs (200: nginx
#                    1.22 leaves Nagle on, and over TLSv1.3 its greeting waits
#                    behind the session tickets for the client's delayed ACK,
#                    40 ms; with 50 clients that wait, not CPU, caps it)
#   TLS_KEY          server key type of the TLS runs: ecdsa (P-256) or rsa (2048) (ecdsa)
#   TLS_PROTOCOLS    ssl_protocols of the TLS runs ("TLSv1.2 TLSv1.3"; the client
#                    offers both and the proxies pick TLSv1.3 unless it is left out)
#   POSTERN          Postern binary (target/release/postern)
#   POSTERN_ARGS     extra Postern flags, split on spaces (e.g. "--relay copy")
#   NGINX            nginx binary (nginx on PATH, else /usr/sbin/nginx)
#   NGINX_MODULE     its mail module (/usr/lib/nginx/modules/ngx_mail_module.so)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
. scripts/bench-lib.sh

# Where cargo puts the binaries (CARGO_TARGET_DIR, as cargo reads it).
RELEASE=${CARGO_TARGET_DIR:-target}/release
BENCH=$RELEASE/postern-bench
: "${POSTERN:=$RELEASE/postern}"

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

# ---------------------------------------------------------------------------
# scripts/bench.sh relay: one IMAP client fetching one large message over
# and over, straight from the bench backend ("direct"), then through Postern
# with `--relay copy`, then through Postern with `--relay splice`.

relay_usage() {
    cat <<'EOF'
Relay throughput: one IMAP client fetching one large message over and over,
straight from the bench backend ("direct"), then through Postern with
`--relay copy`, then through Postern with `--relay splice`. Prints the
median MB/s of each target, its ratio to direct, and the CPU seconds per GB
that Postern and the backend spent, and appends every run's JSON line to
target/bench/relay-<date>.jsonl.

  scripts/bench.sh relay              full run: 64 MiB message, 32 fetches, 5 rounds
  scripts/bench.sh relay --quick      smoke run: 8 MiB message, 8 fetches, 3 rounds
  scripts/bench.sh relay --no-build   use the binaries already in target/release

Environment (each overrides the default, also under --quick):
  MSG_BYTES    message size in bytes (67108864; 8388608 with --quick)
  COUNT        FETCHes per connection and round (32; 8 with --quick)
  ROUNDS       rounds per target; the table shows medians (5; 3 with --quick)
  CONNS        parallel client connections (1)
  CORES        Postern's worker_processes (1)
  RELAY_MODES  Postern relay modes to measure, in order ("copy splice");
               "default" runs Postern without --relay
  PIPE_SIZE    passed as --pipe-size to Postern in splice mode (unset: its default)
  POSTERN      Postern binary (target/release/postern)
  POSTERN_ARGS extra Postern flags, split on spaces (e.g. "--no-pin")
EOF
}

relay_main() {
    local quick=0 build=1 arg
    for arg in "$@"; do
        case "$arg" in
            --quick) quick=1 ;;
            --no-build) build=0 ;;
            -h | --help)
                relay_usage
                exit 0
                ;;
            *)
                echo "bench.sh relay: unknown argument \"$arg\" (try --help)" >&2
                exit 2
                ;;
        esac
    done
    if [ "$quick" -eq 1 ]; then
        : "${MSG_BYTES:=$((8 << 20))}" "${COUNT:=8}" "${ROUNDS:=3}"
    else
        : "${MSG_BYTES:=$((64 << 20))}" "${COUNT:=32}" "${ROUNDS:=5}"
    fi
    : "${CONNS:=1}" "${CORES:=1}" "${RELAY_MODES:=copy splice}" "${PIPE_SIZE:=}" "${POSTERN_ARGS:=}"

    need_packages python3:python3
    build_binaries "$build"
    local mode
    for mode in $RELAY_MODES; do
        if [ "$mode" != default ] && ! "$POSTERN" --help 2>/dev/null | grep -q -- '--relay'; then
            echo "bench.sh: $POSTERN has no --relay flag; RELAY_MODES=default measures its built-in relay" >&2
            exit 1
        fi
    done

    WORK=$(mktemp -d /tmp/postern-bench.XXXXXX)
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    echo "== backend: 1 message of $MSG_BYTES bytes"
    start_server backend backend --listen 127.0.0.1:0 --user bench:bench --messages 1 --msg-bytes "$MSG_BYTES"
    BACKEND_ADDR=$ADDR
    BACKEND_PID=$LAST_PID
    start_server auth auth --listen 127.0.0.1:0 --user bench:bench --backend "imap=$BACKEND_ADDR"
    AUTH_ADDR=$ADDR

    RUN=$(date +%Y-%m-%dT%H:%M:%S)
    COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT+dirty"
    RESULTS=$WORK/results.jsonl
    : >"$RESULTS"

    relay_measure direct "$BACKEND_ADDR" null
    for mode in $RELAY_MODES; do
        relay_start_postern "$mode"
        relay_measure "$mode" "$POSTERN_ADDR" "$PROXY_PID"
        stop_proxy "postern --relay $mode" || exit 1
    done

    mkdir -p target/bench
    local log
    log=target/bench/relay-$(date +%Y-%m-%d).jsonl
    cat "$RESULTS" >>"$log"

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
    echo "== JSON lines appended to $log"
}

# relay_start_postern MODE: Postern on a fresh port with relay MODE; sets
# PROXY_PID and POSTERN_ADDR.
relay_start_postern() {
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
    PROXY_LOG=$WORK/postern-$mode.log
    # shellcheck disable=SC2086 # POSTERN_ARGS is split on purpose
    "$POSTERN" -c "$WORK/postern-$mode.conf" ${flags[@]+"${flags[@]}"} $POSTERN_ARGS 2>"$PROXY_LOG" &
    PROXY_PID=$!
    PROXY_PIDS=("$PROXY_PID")
    wait_for "$PROXY_LOG" ' started' "$PROXY_PID"
    POSTERN_ADDR=127.0.0.1:$port
}

# relay_fetch TARGET ARGS...: postern-bench fetch ARGS; on failure, shows
# the end of Postern's log for TARGET and stops the script.
relay_fetch() {
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

# relay_measure TARGET ADDR POSTERN_PID|null: a warm-up fetch, then ROUNDS
# runs, each JSON line tagged with the run, the target and the pids.
relay_measure() {
    local target=$1 addr=$2 ppid=$3 round out pids=(--pid "$BACKEND_PID")
    [ "$ppid" != null ] && pids=(--pid "$ppid" --pid "$BACKEND_PID")
    echo "== $target ($addr)"
    relay_fetch "$target" --addr "$addr" --count 1 >/dev/null
    for round in $(seq "$ROUNDS"); do
        out=$(relay_fetch "$target" --addr "$addr" --count "$COUNT" "${pids[@]}")
        printf '   %s: %s\n' "$round" "$(head -n 1 <<<"$out")"
        tail -n 1 <<<"$out" | sed "s/^{/{\"run\":\"$RUN\",\"commit\":\"$COMMIT\",\"target\":\"$target\",\"round\":$round,\"cores\":$CORES,\"postern_pid\":$ppid,\"backend_pid\":$BACKEND_PID,/" >>"$RESULTS"
    done
}

# build_binaries 1|0: cargo build --release (or not), then checks that the
# binaries are there.
build_binaries() {
    if [ "$1" -eq 1 ]; then
        need_packages gcc:gcc git:git
        need_cargo
        echo "== building (release)"
        cargo build --release --workspace --quiet
    fi
    local bin
    for bin in "$BENCH" "$POSTERN"; do
        [ -x "$bin" ] || {
            echo "bench.sh: $bin is missing; run without --no-build" >&2
            exit 1
        }
    done
}

# ---------------------------------------------------------------------------
# scripts/bench.sh [SCENARIO...]: the comparison with nginx.

ALL_SCENARIOS="login-imap login-pop3 login-smtp login-imap-proxy login-delay smtp-session bulk-1 bulk-8 idle tls-handshake-imap tls-login-imap tls-bulk-1"

# run_one SCENARIO TARGET ROUND: one measurement of SCENARIO against TARGET
# (direct, or the proxy running now), appended to RESULTS.
run_one() {
    local scenario=$1 target=$2 round=$3 out status limit pids=() pid
    local -a cmd
    local imap pop3 smtp delay tls pp
    if [ "$target" = direct ]; then
        imap=$IMAP_ADDR pop3=$POP3_ADDR smtp=$SMTP_ADDR delay="" tls=${IMAP_TLS_ADDR:-} pp=""
    else
        read -r imap pop3 smtp delay tls pp <<<"$(target_addrs "$target")"
        for pid in "${PROXY_PIDS[@]}"; do
            pids+=(--pid "$pid")
        done
    fi
    # Every TLS connection makes a full handshake (no --resume) and checks
    # the certificate against the throwaway CA, as a mail client would.
    local tls_client=(--tls --ca "$WORK/pki/ca.pem")
    local load=("$BENCH" load --user bench:bench --json-only ${pids[@]+"${pids[@]}"})
    case "$scenario" in
        login-imap | login-pop3 | login-smtp)
            local proto=${scenario#login-} addr
            case "$proto" in imap) addr=$imap ;; pop3) addr=$pop3 ;; smtp) addr=$smtp ;; esac
            cmd=("${load[@]}" --mode login --protocol "$proto" --addr "$addr" --conns "$LOGIN_CLIENTS" --duration "$LOGIN_SECS")
            limit=$((LOGIN_SECS + 60))
            ;;
        login-imap-proxy)
            cmd=("${load[@]}" --mode login --protocol imap --addr "$pp" --conns "$LOGIN_CLIENTS" --duration "$LOGIN_SECS"
                --proxy-protocol v1)
            limit=$((LOGIN_SECS + 60))
            ;;
        login-delay)
            cmd=("${load[@]}" --mode login --protocol imap --addr "$delay" --conns "$DELAY_CLIENTS" --duration "$LOGIN_SECS")
            limit=$((LOGIN_SECS + 60))
            ;;
        smtp-session)
            cmd=("${load[@]}" --mode session --protocol smtp --addr "$smtp" --conns "$SESSION_CLIENTS"
                --duration "$SESSION_SECS" --msg-bytes "$SMTP_BYTES")
            limit=$((SESSION_SECS + 60))
            ;;
        bulk-1 | bulk-8)
            local conns=${scenario#bulk-} count=$BULK_COUNT_1
            [ "$conns" = 8 ] && count=$BULK_COUNT_8
            cmd=("$BENCH" fetch --user bench:bench --addr "$imap" --msg 1 --conns "$conns" --count "$count"
                --timeout 30 ${pids[@]+"${pids[@]}"})
            limit=300
            ;;
        idle)
            cmd=("${load[@]}" --mode idle --protocol imap --addr "$imap" --conns "$IDLE_CONNS" --duration "$IDLE_SECS")
            limit=$((IDLE_SECS + 120))
            ;;
        tls-handshake-imap | tls-login-imap)
            local mode=login
            [ "$scenario" = tls-handshake-imap ] && mode=handshake
            cmd=("${load[@]}" --mode "$mode" --protocol imap --addr "$tls" --conns "$TLS_CLIENTS"
                --duration "$LOGIN_SECS" "${tls_client[@]}")
            limit=$((LOGIN_SECS + 60))
            ;;
        tls-bulk-1)
            cmd=("$BENCH" fetch --user bench:bench --addr "$tls" --msg 1 --conns 1 --count "$BULK_COUNT_1"
                --timeout 30 "${tls_client[@]}" ${pids[@]+"${pids[@]}"})
            limit=300
            ;;
    esac
    status=0
    out=$(timeout "$limit" "${cmd[@]}" 2>"$WORK/run.err" | tail -n 1) || status=$?
    [ "$status" -eq 124 ] && echo "timed out after $limit s" >>"$WORK/run.err"
    tag_run "$RESULTS" "$out" "$scenario" "$target" "$round" "$status" "$WORK/run.err" \
        ${PROXY_PIDS[@]+"${PROXY_PIDS[@]}"}
}

# target_addrs TARGET: the IMAP, POP3, SMTP, delayed-auth IMAP and
# implicit-TLS IMAP and PROXY-protocol IMAP addresses of proxy TARGET.
target_addrs() {
    local p
    case "$1" in
        postern) p=("${POSTERN_PORTS[@]}") ;;
        *) p=("${NGINX_PORTS[@]}") ;;
    esac
    echo "127.0.0.1:${p[0]} 127.0.0.1:${p[1]} 127.0.0.1:${p[2]} 127.0.0.1:${p[3]} 127.0.0.1:${p[4]} 127.0.0.1:${p[5]}"
}

# target_ports TARGET [tls]: the ports proxy TARGET listens on: the four
# plain ones, and with "tls" the implicit-TLS one too.
target_ports() {
    local p
    case "$1" in
        postern) p=("${POSTERN_PORTS[@]}") ;;
        *) p=("${NGINX_PORTS[@]}") ;;
    esac
    if [ "${2:-}" = tls ]; then echo "${p[@]:0:5}"; else echo "${p[@]:0:4}"; fi
}

# failed_start SCENARIO TARGET ROUND: records a run that could not start.
failed_start() {
    echo "$2 did not start (see above)" >"$WORK/run.err"
    tag_run "$RESULTS" "" "$1" "$2" "$3" 1 "$WORK/run.err"
}

compare_main() {
    local quick=0 build=1 with_nginx=0 arg scenarios=()
    for arg in "$@"; do
        case "$arg" in
            --quick) quick=1 ;;
            --no-build) build=0 ;;
            --with-nginx) with_nginx=1 ;;
            -h | --help)
                usage
                exit 0
                ;;
            login) scenarios+=(login-imap login-pop3 login-smtp) ;;
            bulk) scenarios+=(bulk-1 bulk-8) ;;
            tls) scenarios+=(tls-handshake-imap tls-login-imap tls-bulk-1) ;;
            all) read -r -a scenarios <<<"$ALL_SCENARIOS" ;;
            -*)
                echo "bench.sh: unknown option \"$arg\" (try --help)" >&2
                exit 2
                ;;
            *)
                if ! grep -qw -- "$arg" <<<"$ALL_SCENARIOS"; then
                    echo "bench.sh: unknown scenario \"$arg\"; scenarios: $ALL_SCENARIOS" >&2
                    exit 2
                fi
                scenarios+=("$arg")
                ;;
        esac
    done
    [ ${#scenarios[@]} -eq 0 ] && read -r -a scenarios <<<"$ALL_SCENARIOS"
    # In the canonical order, each once.
    local s picked=()
    for s in $ALL_SCENARIOS; do
        for arg in "${scenarios[@]}"; do
            if [ "$arg" = "$s" ]; then
                picked+=("$s")
                break
            fi
        done
    done
    export SCENARIOS="${picked[*]}"

    QUICK=$quick
    if [ "$quick" -eq 1 ]; then
        : "${ROUNDS:=1}" "${LOGIN_SECS:=1}" "${SESSION_SECS:=1}"
        : "${BULK_BYTES:=$((16 << 20))}" "${BULK_COUNT_1:=16}" "${BULK_COUNT_8:=2}"
    else
        : "${ROUNDS:=3}" "${LOGIN_SECS:=5}" "${SESSION_SECS:=5}"
        : "${BULK_BYTES:=$((64 << 20))}" "${BULK_COUNT_1:=32}" "${BULK_COUNT_8:=4}"
    fi
    : "${CORES:=2}" "${LOGIN_CLIENTS:=50}" "${DELAY_CLIENTS:=500}" "${AUTH_DELAY_MS:=5}"
    : "${SESSION_CLIENTS:=50}" "${SMTP_BYTES:=10240}" "${IDLE_CONNS:=9000}" "${IDLE_SECS:=1}"
    : "${POSTERN_ARGS:=}" "${NGINX:=}" "${NGINX_MODULE:=/usr/lib/nginx/modules/ngx_mail_module.so}"
    : "${TLS_KEY:=ecdsa}" "${TLS_CLIENTS:=200}" "${TLS_PROTOCOLS:=TLSv1.2 TLSv1.3}"
    case "$TLS_KEY" in
        ecdsa | rsa) ;;
        *)
            echo "bench.sh: TLS_KEY must be ecdsa or rsa, not \"$TLS_KEY\"" >&2
            exit 2
            ;;
    esac
    export QUICK ROUNDS CORES LOGIN_SECS SESSION_SECS LOGIN_CLIENTS DELAY_CLIENTS AUTH_DELAY_MS
    export SESSION_CLIENTS SMTP_BYTES BULK_BYTES BULK_COUNT_1 BULK_COUNT_8 IDLE_CONNS IDLE_SECS POSTERN_ARGS TLS_KEY TLS_PROTOCOLS TLS_CLIENTS

    need_packages python3:python3
    build_binaries "$build"

    nginx_find
    if [ -z "$NGINX" ] && [ "$with_nginx" -eq 1 ]; then
        nginx_install
        nginx_find
    fi
    NGINX_VERSION=""
    if [ -n "$NGINX" ]; then
        NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
    else
        echo "== nginx is not installed (--with-nginx installs it): its columns say n/a"
    fi
    export NGINX NGINX_VERSION

    # Each session holds two sockets in the proxy; the client and the
    # backend hold one each. The hard limit here is 20,000, even for root.
    NOFILE=20000
    ulimit -n "$NOFILE" 2>/dev/null || {
        NOFILE=$(ulimit -Hn)
        ulimit -n "$NOFILE"
    }
    local most=$(((NOFILE - 200) / 2))
    if [ "$IDLE_CONNS" -gt "$most" ]; then
        echo "== RLIMIT_NOFILE is $NOFILE: idle sessions lowered from $IDLE_CONNS to $most"
        IDLE_CONNS=$most
    fi
    # nginx counts both sockets of a session against worker_connections,
    # and one worker may get most of the sessions.
    WORKER_CONNECTIONS=$((NOFILE - 1000))
    [ "$WORKER_CONNECTIONS" -lt $((2 * IDLE_CONNS + 100)) ] && WORKER_CONNECTIONS=$((2 * IDLE_CONNS + 100))

    WORK=$(mktemp -d /tmp/postern-bench.XXXXXX)
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    echo "== backends (IMAP with one $BULK_BYTES-byte message, POP3, SMTP) and auth servers"
    start_server imap backend --protocol imap --user bench:bench --messages 1 --msg-bytes "$BULK_BYTES"
    IMAP_ADDR=$ADDR
    start_server pop3 backend --protocol pop3 --user bench:bench
    POP3_ADDR=$ADDR
    start_server smtp backend --protocol smtp --user bench:bench
    SMTP_ADDR=$ADDR
    local routes=(--user bench:bench --backend "imap=$IMAP_ADDR" --backend "pop3=$POP3_ADDR" --backend "smtp=$SMTP_ADDR")
    start_server auth auth "${routes[@]}"
    AUTH_ADDR=$ADDR
    start_server auth-delay auth "${routes[@]}" --delay-ms "$AUTH_DELAY_MS"
    AUTH_DELAY_ADDR=$ADDR

    local want_tls=0
    [[ " ${picked[*]} " == *" tls-"* ]] && want_tls=1
    TLS_CERT="" TLS_CERT_KEY=""
    if [ "$want_tls" -eq 1 ]; then
        "$BENCH" certs --dir "$WORK/pki" >/dev/null
        TLS_CERT=$WORK/pki/server.pem TLS_CERT_KEY=$WORK/pki/server.key
        [ "$TLS_KEY" = rsa ] && TLS_CERT=$WORK/pki/server-rsa.pem TLS_CERT_KEY=$WORK/pki/server-rsa.key
        echo "== IMAP backend speaking TLS ($TLS_KEY certificate), the direct reference of the TLS runs"
        start_server imap-tls backend --protocol imap --user bench:bench --messages 1 --msg-bytes "$BULK_BYTES" \
            --tls-cert "$TLS_CERT" --tls-key "$TLS_CERT_KEY"
        IMAP_TLS_ADDR=$ADDR
    fi

    local ports
    mapfile -t ports < <(free_ports 12)
    POSTERN_PORTS=("${ports[@]:0:6}")
    NGINX_PORTS=("${ports[@]:6:6}")
    local conf
    for conf in postern nginx nginx-64k; do
        local extra="" pidfile=$WORK/nginx.pid p
        [ "$conf" = postern ] && pidfile=$WORK/postern.pid
        [ "$conf" = nginx-64k ] && extra="proxy_buffer 64k; imap_client_buffer 64k; smtp_client_buffer 64k;"
        read -r -a p <<<"$(target_ports "$conf" tls)"
        local pp="" all
        read -r -a all <<<"$(target_addrs "$conf")"
        [[ " ${picked[*]} " == *" login-imap-proxy "* ]] && pp=${all[5]##*:}
        write_conf "$WORK/$conf.conf" "$pidfile" "${p[@]:0:4}" "$extra" "" "$pp"
        # The TLS runs use a second file: the same text plus an implicit-TLS
        # IMAP server, so that a proxy refusing it fails only those runs.
        [ "$want_tls" -eq 1 ] && write_conf "$WORK/$conf-tls.conf" "$pidfile" "${p[@]:0:4}" "$extra" "${p[4]}"
    done
    if ! "$POSTERN" -t -c "$WORK/postern.conf" >/dev/null 2>&1; then
        echo "bench.sh: Postern rejects the configuration:" >&2
        "$POSTERN" -t -c "$WORK/postern.conf" >&2 || true
        exit 1
    fi
    POSTERN_TLS=1
    if [ "$want_tls" -eq 1 ] && ! "$POSTERN" -t -c "$WORK/postern-tls.conf" >"$WORK/postern-tls.t" 2>&1; then
        echo "bench.sh: Postern rejects the TLS configuration; its TLS runs are marked failed:" >&2
        sed 's/^/    /' "$WORK/postern-tls.t" >&2
        POSTERN_TLS=0
    fi
    if [ -n "$NGINX" ] && ! "$NGINX" -e stderr -t -c "$WORK/nginx.conf" >/dev/null 2>&1; then
        echo "bench.sh: nginx rejects the configuration; its columns say n/a:" >&2
        "$NGINX" -e stderr -t -c "$WORK/nginx.conf" >&2 || true
        NGINX="" NGINX_VERSION=""
    fi
    NGINX_TLS=1
    if [ -n "$NGINX" ] && [ "$want_tls" -eq 1 ] && ! "$NGINX" -e stderr -t -c "$WORK/nginx-tls.conf" >"$WORK/nginx-tls.t" 2>&1; then
        echo "bench.sh: nginx rejects the TLS configuration (no mail SSL module?); its TLS runs are marked failed:" >&2
        sed 's/^/    /' "$WORK/nginx-tls.t" >&2
        NGINX_TLS=0
    fi

    RUN=$(date +%Y-%m-%dT%H:%M:%S)
    COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT+dirty"
    export RUN COMMIT
    local name
    name=bench/results/$(date -d "$RUN" +%Y-%m-%d-%H%M%S 2>/dev/null || date +%Y-%m-%d-%H%M%S)-$COMMIT
    RESULTS=$WORK/results.jsonl
    : >"$RESULTS"

    local targets=(direct postern)
    [ -n "$NGINX" ] && targets+=(nginx nginx-64k)
    echo "== $CORES worker process(es), $ROUNDS round(s); Postern: $POSTERN${POSTERN_ARGS:+ $POSTERN_ARGS}; nginx: ${NGINX_VERSION:-n/a}"
    local started scenario round target
    started=$(date +%s)
    for scenario in "${picked[@]}"; do
        echo "== $scenario"
        for round in $(seq "$ROUNDS"); do
            for target in "${targets[@]}"; do
                case "$target:$scenario" in
                    direct:login-delay | direct:idle | direct:login-imap-proxy) continue ;; # no proxy, nothing to compare
                    direct:*)
                        run_one "$scenario" direct "$round"
                        ;;
                    postern:tls-* | nginx*:tls-*)
                        local ok=$NGINX_TLS tls_ports
                        [ "$target" = postern ] && ok=$POSTERN_TLS
                        read -r -a tls_ports <<<"$(target_ports "$target" tls)"
                        if [ "$ok" -ne 1 ]; then
                            echo "$target rejects the TLS configuration: $(grep -m 1 . "$WORK/${target%-64k}-tls.t")" >"$WORK/run.err"
                            tag_run "$RESULTS" "" "$scenario" "$target" "$round" 1 "$WORK/run.err"
                        elif start_proxy "$target" "$WORK/$target-tls.conf" "$CORES" "${tls_ports[@]}"; then
                            run_one "$scenario" "$target" "$round"
                            stop_proxy "$target" || true
                        else
                            failed_start "$scenario" "$target" "$round"
                        fi
                        ;;
                    *)
                        # shellcheck disable=SC2046 # four ports
                        if start_proxy "$target" "$WORK/$target.conf" "$CORES" $(target_ports "$target"); then
                            run_one "$scenario" "$target" "$round"
                            stop_proxy "$target" || true
                        else
                            failed_start "$scenario" "$target" "$round"
                        fi
                        ;;
                esac
            done
        done
    done
    echo "== measured in $(($(date +%s) - started)) s; medians of $ROUNDS round(s), $CORES worker process(es) each"

    bench_report "$RESULTS"

    mkdir -p bench/results
    cp "$RESULTS" "$name.jsonl"
    echo "== results: $name.jsonl"
    if [ -n "$NGINX" ]; then
        "$BENCH" chart --input "$name.jsonl" --output "$name.png" || echo "bench.sh: no chart" >&2
    else
        echo "== no chart: there are no Postern/nginx ratios without nginx"
    fi
}

if [ "${1:-}" = relay ]; then
    shift
    relay_main "$@"
else
    compare_main "$@"
fi
