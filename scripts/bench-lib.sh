# shellcheck shell=bash
# Helpers for scripts/bench.sh: background servers, proxies (Postern and
# nginx) started and stopped by pid, and the report. Sourced after
# scripts/common.sh; the caller sets BENCH (the postern-bench binary) and
# WORK (a scratch directory that bench_cleanup removes).

BG_PIDS=()     # every background process started here, for bench_cleanup
PROXY_PID=""   # the running proxy (Postern, or nginx's master)
PROXY_PIDS=()  # its processes whose CPU and memory are measured
PROXY_LOG=""

# bench_cleanup: stops what was started here (by pid: the servers, the
# proxy and any nginx worker left behind) and removes WORK.
bench_cleanup() {
    local pid
    for pid in ${PROXY_PID:+"$PROXY_PID"} ${BG_PIDS[@]+"${BG_PIDS[@]}"}; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.2
    for pid in ${PROXY_PIDS[@]+"${PROXY_PIDS[@]}"}; do
        if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    wait 2>/dev/null || true
    [ -n "${WORK:-}" ] && rm -rf "$WORK"
}

# alive PID: whether process PID exists and has not exited (an exited
# child of ours that is not yet reaped still answers kill -0).
alive() {
    local state
    state=$(sed 's/.*) //' /proc/"$1"/stat 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# wait_for FILE TEXT PID: until TEXT appears in FILE, at most 30 s, failing
# at once if process PID has exited.
wait_for() {
    local _
    for _ in $(seq 300); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        if ! alive "$3"; then
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

# free_ports N: N distinct free TCP ports on 127.0.0.1, one per line.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
EOF
}

free_port() {
    free_ports 1
}

# start_server NAME ARGS...: starts postern-bench ARGS and sets ADDR to the
# address of its `listening` line and LAST_PID to its pid.
start_server() {
    local name=$1 pid
    shift
    "$BENCH" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    pid=$!
    BG_PIDS+=("$pid")
    wait_for "$WORK/$name.out" '^listening ' "$pid"
    # shellcheck disable=SC2034 # ADDR and LAST_PID are for the caller
    ADDR=$(sed -n 's/^listening //p' "$WORK/$name.out")
    # shellcheck disable=SC2034
    LAST_PID=$pid
}

# listening PORT: whether something listens on 127.0.0.1:PORT (from
# /proc/net/tcp, so that no connection is made to find out).
listening() {
    local hex
    hex=$(printf '%04X' "$1")
    grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A " /proc/net/tcp
}

# children PID: the pids of PID's child processes.
children() {
    cat /proc/"$1"/task/*/children 2>/dev/null || true
}

# start_proxy NAME CONF WORKERS PORT...: starts proxy NAME (postern, or
# nginx / nginx-*) on CONF and waits, at most 20 s, until it listens on
# every PORT and (nginx) has WORKERS worker processes. Sets PROXY_PID and
# PROXY_PIDS (nginx: the master and its workers). Returns 1, with the log on
# stderr, if it does not get there.
start_proxy() {
    local name=$1 conf=$2 workers=$3 port ready _
    shift 3
    PROXY_LOG=$WORK/$name.log
    case "$name" in
        postern)
            # shellcheck disable=SC2086 # POSTERN_ARGS is split on purpose
            "$POSTERN" -c "$conf" $POSTERN_ARGS 2>>"$PROXY_LOG" &
            ;;
        nginx*)
            "$NGINX" -e stderr -c "$conf" 2>>"$PROXY_LOG" &
            ;;
    esac
    PROXY_PID=$!
    PROXY_PIDS=("$PROXY_PID")
    for _ in $(seq 200); do
        if ! alive "$PROXY_PID"; then
            wait "$PROXY_PID" 2>/dev/null || true
            echo "bench.sh: $name exited at start:" >&2
            tail -n 20 "$PROXY_LOG" >&2
            PROXY_PID=""
            PROXY_PIDS=()
            return 1
        fi
        ready=1
        for port in "$@"; do
            listening "$port" || { ready=0; break; }
        done
        if [ "$ready" -eq 1 ] && [ "$name" != postern ]; then
            # shellcheck disable=SC2207 # pids are words
            PROXY_PIDS=("$PROXY_PID" $(children "$PROXY_PID"))
            [ "${#PROXY_PIDS[@]}" -eq $((workers + 1)) ] || ready=0
        fi
        [ "$ready" -eq 1 ] && return 0
        sleep 0.1
    done
    echo "bench.sh: $name did not start listening in 20 s:" >&2
    tail -n 20 "$PROXY_LOG" >&2
    stop_proxy "$name" || true
    return 1
}

# stop_proxy NAME: SIGTERM to the proxy, then waits for it and its workers
# to exit (at most 10 s; then SIGKILL). Returns 1 if it did not exit with
# status 0.
stop_proxy() {
    local name=$1 status=0 pid _
    [ -n "$PROXY_PID" ] || return 0
    kill -TERM "$PROXY_PID" 2>/dev/null || true
    for _ in $(seq 200); do
        alive "$PROXY_PID" || break
        sleep 0.05
    done
    if alive "$PROXY_PID"; then
        echo "bench.sh: $name did not exit within 10 s of SIGTERM; SIGKILL" >&2
        kill -KILL "$PROXY_PID" 2>/dev/null || true
    fi
    wait "$PROXY_PID" 2>/dev/null || status=$?
    for pid in "${PROXY_PIDS[@]}"; do
        for _ in $(seq 50); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            echo "bench.sh: $name process $pid still there after its master exited; SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    PROXY_PID=""
    PROXY_PIDS=()
    if [ "$status" -ne 0 ]; then
        echo "bench.sh: $name exited with status $status on SIGTERM; end of its log:" >&2
        tail -n 10 "$PROXY_LOG" >&2
        return 1
    fi
}

# nginx_find: sets NGINX to the nginx binary ("" if there is none) and
# NGINX_MODULE_LINE to the load_module line its mail module needs ("" when
# the module is built in). NGINX stays "" when there is no mail module.
nginx_find() {
    NGINX=${NGINX:-$(command -v nginx 2>/dev/null || true)}
    [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
    NGINX_MODULE_LINE=""
    [ -n "$NGINX" ] || return 0
    if [ ! -x "$NGINX" ]; then
        echo "bench.sh: $NGINX is not an executable; nginx is n/a" >&2
        NGINX=""
        return 0
    fi
    if [ -f "$NGINX_MODULE" ]; then
        NGINX_MODULE_LINE="load_module $NGINX_MODULE;"
    elif ! "$NGINX" -V 2>&1 | grep -q -- '--with-mail\( \|$\)'; then
        echo "bench.sh: $NGINX has no mail module ($NGINX_MODULE is missing); nginx is n/a" >&2
        NGINX=""
    fi
}

# nginx_install: Debian's nginx-light (or nginx) and libnginx-mod-mail,
# without starting the nginx service that the package would start.
nginx_install() {
    local sudo="" policy=/usr/sbin/policy-rc.d made_policy=0
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "== installing nginx and its mail module (apt-get)"
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && made_policy=1
    fi
    $sudo apt-get update -qq || true
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-mail >/dev/null ||
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-mail >/dev/null ||
        echo "bench.sh: could not install nginx; its columns will say n/a" >&2
    [ "$made_policy" -eq 1 ] && $sudo rm -f "$policy"
    return 0
}

# write_conf FILE PIDFILE IMAP POP3 SMTP DELAY [EXTRA [TLS [PP]]]: the
# configuration both proxies read, listening on the four ports given (IMAP
# also carries the bulk relay; DELAY is IMAP through the slow auth server).
# EXTRA is added to the mail block (nginx-64k's buffers). With TLS, a fifth
# server speaks implicit TLS on that port with TLS_CERT, TLS_CERT_KEY and
# TLS_PROTOCOLS, relaying to the plain IMAP backend. The protocols are set,
# not left to each proxy's default: nginx before 1.23.4 leaves TLSv1.3 out,
# and the two would then be measured on different handshakes.
write_conf() {
    local file=$1 pidfile=$2 imap=$3 pop3=$4 smtp=$5 delay=$6 extra=${7:-} tls=${8:-} pp=${9:-}
    {
        echo "# Written by scripts/bench.sh; Postern and nginx read the same text (only ports and pid differ)."
        [ -n "$NGINX_MODULE_LINE" ] && echo "$NGINX_MODULE_LINE"
        cat <<EOF
worker_processes $CORES;
worker_rlimit_nofile $NOFILE;
error_log stderr error;
pid $pidfile;
daemon off;

events {
    worker_connections $WORKER_CONNECTIONS;
}

mail {
    server_name mail.postern.test;
    auth_http   $AUTH_ADDR/auth;
    smtp_auth   plain login;
EOF
        [ -n "$extra" ] && echo "    $extra"
        cat <<EOF

    server { listen 127.0.0.1:$imap; protocol imap; }
    server { listen 127.0.0.1:$pop3; protocol pop3; }
    server { listen 127.0.0.1:$smtp; protocol smtp; }
    server { listen 127.0.0.1:$delay; protocol imap; auth_http $AUTH_DELAY_ADDR/auth; }
EOF
        # login-imap-proxy: the load generator plays the balancer.
        [ -n "$pp" ] && cat <<EOF
    server { listen 127.0.0.1:$pp proxy_protocol; protocol imap; set_real_ip_from 127.0.0.1; }
EOF
        [ -n "$tls" ] && cat <<EOF
    server {
        listen 127.0.0.1:$tls ssl;
        protocol imap;
        ssl_certificate     $TLS_CERT;
        ssl_certificate_key $TLS_CERT_KEY;
        ssl_protocols       $TLS_PROTOCOLS;
    }
EOF
        echo "}"
    } >"$file"
}

# tag_run FILE JSON SCENARIO TARGET ROUND STATUS STDERR_FILE PIDS...: appends
# one run's JSON line to FILE with the run's fields in front (a failed run
# gets "failed":true and the first line of its stderr), and prints a short
# progress line.
tag_run() {
    python3 - "$@" <<'EOF'
import json, os, sys
path, line, scenario, target, rnd, status, errfile, *pids = sys.argv[1:]
run = {"kind": "run", "run": os.environ["RUN"], "commit": os.environ["COMMIT"], "scenario": scenario,
       "target": target, "round": int(rnd), "cores": int(os.environ["CORES"]), "proxy_pids": [int(p) for p in pids]}
stderr = ""
try:
    stderr = open(errfile, errors="replace").read().strip()
except OSError:
    pass
data = None
try:
    data = json.loads(line)
except ValueError:
    pass
if status != "0" or not isinstance(data, dict):
    first = next((l for l in stderr.splitlines() if l.strip()), "no output")
    run.update({"failed": True, "status": int(status), "error": first[:500]})
    print("   %-13s %-9s r%s: FAILED (%s)" % (scenario, target, rnd, first[:160]))
else:
    run.update(data)
    if data.get("errors"):
        run["stderr"] = stderr[:500]
    cpu = 0.0
    for p in pids:
        c = data.get("cpu", {}).get(p)
        cpu += c["s"] if isinstance(c, dict) else (c or 0.0)
    if data.get("mode") == "fetch":
        text = "%.0f MB/s" % data["mb_per_s"]
        if pids:
            text += ", %.3f ms CPU/MB" % (cpu * 1e3 / (data["bytes"] / 1e6))
    elif data.get("mode") == "idle":
        pss = sum(m["pss_kib_per_session"] for p, m in data.get("mem", {}).items() if p in pids)
        text = "%d sessions, %.2f KiB PSS/session" % (data["ops"], pss)
    else:
        text = "%.0f ops/s, p50 %.1f ms" % (data["ops_per_s"], data["latency_us"]["p50"] / 1e3)
        if pids and data["ops"]:
            text += ", %.0f us CPU/op" % (cpu * 1e6 / data["ops"])
    if data.get("errors"):
        text += ", %d error(s)" % data["errors"]
    print("   %-13s %-9s r%s: %s" % (scenario, target, rnd, text))
with open(path, "a") as f:
    f.write(json.dumps(run, separators=(",", ":")) + "\n")
EOF
}

# bench_report RESULTS: prints the table of RESULTS' runs (medians per
# target) and appends the summary line to RESULTS.
bench_report() {
    python3 - "$1" <<'EOF'
import json, os, statistics, sys

path = sys.argv[1]
runs = [json.loads(l) for l in open(path) if l.strip()]
runs = [r for r in runs if r.get("kind") == "run"]
env = os.environ
scenarios = env["SCENARIOS"].split()
have_nginx = bool(env.get("NGINX"))

def cpu(r):
    total = 0.0
    for p in r["proxy_pids"]:
        c = r.get("cpu", {}).get(str(p))
        total += c["s"] if isinstance(c, dict) else (c or 0.0)
    return total

def per_op_us(r):
    return cpu(r) * 1e6 / r["ops"] if r["ops"] else None

def per_mb_ms(r):
    return cpu(r) * 1e3 / (r["bytes"] / 1e6) if r["bytes"] else None

def pss(r):
    mem = r.get("mem", {})
    vals = [mem[str(p)]["pss_kib_per_session"] for p in r["proxy_pids"] if str(p) in mem]
    return sum(vals) if vals else None

rate = lambda r: r["ops_per_s"]
mbps = lambda r: r["mb_per_s"]
p50 = lambda r: r["latency_us"]["p50"] / 1e3

lc, dc, sc = env["LOGIN_CLIENTS"], env["DELAY_CLIENTS"], env["SESSION_CLIENTS"]
kb = int(env["SMTP_BYTES"]) / 1024
# scenario -> rows: (label, better, value of a run, format, whether direct has it)
METRICS = {}
for proto in ("imap", "pop3", "smtp"):
    P = proto.upper()
    METRICS["login-" + proto] = [
        ("%s login, %s clients: logins/s" % (P, lc), "higher", rate, "{:,.0f}", True),
        ("%s login: proxy CPU us/login" % P, "lower", per_op_us, "{:,.0f}", False),
    ]
METRICS["login-imap-proxy"] = [
    ("IMAP login behind PROXY protocol v1, %s clients: logins/s" % lc, "higher", rate, "{:,.0f}", False),
    ("IMAP login behind PROXY protocol v1: proxy CPU us/login", "lower", per_op_us, "{:,.0f}", False),
]
METRICS["login-delay"] = [
    ("IMAP login, auth +%s ms, %s clients: logins/s" % (env["AUTH_DELAY_MS"], dc), "higher", rate, "{:,.0f}", False),
    ("IMAP login, auth +%s ms: proxy CPU us/login" % env["AUTH_DELAY_MS"], "lower", per_op_us, "{:,.0f}", False),
]
METRICS["smtp-session"] = [
    ("SMTP %g KB message, %s clients: messages/s" % (kb, sc), "higher", rate, "{:,.0f}", True),
    ("SMTP %g KB message: p50 latency ms" % kb, "lower", p50, "{:,.2f}", True),
    ("SMTP %g KB message: proxy CPU us/message" % kb, "lower", per_op_us, "{:,.0f}", False),
]
for n in ("1", "8"):
    METRICS["bulk-" + n] = [
        ("bulk relay (IMAP FETCH), %s conn(s): MB/s" % n, "higher", mbps, "{:,.0f}", True),
        ("bulk relay, %s conn(s): proxy CPU ms/MB" % n, "lower", per_mb_ms, "{:.3f}", False),
    ]
key = env.get("TLS_KEY", "ecdsa").upper()
tc = env.get("TLS_CLIENTS", lc)
METRICS["tls-handshake-imap"] = [
    ("IMAPS handshake (%s) + greeting, %s clients: handshakes/s" % (key, tc), "higher", rate, "{:,.0f}", True),
    ("IMAPS handshake + greeting: p50 latency ms", "lower", p50, "{:,.2f}", True),
    ("IMAPS handshake: proxy CPU us/handshake", "lower", per_op_us, "{:,.0f}", False),
]
METRICS["tls-login-imap"] = [
    ("IMAPS login (%s, full handshake), %s clients: logins/s" % (key, tc), "higher", rate, "{:,.0f}", True),
    ("IMAPS login: proxy CPU us/login", "lower", per_op_us, "{:,.0f}", False),
]
METRICS["tls-bulk-1"] = [
    ("bulk relay over client TLS, 1 conn: MB/s", "higher", mbps, "{:,.0f}", True),
    ("bulk relay over client TLS: proxy CPU ms/MB", "lower", per_mb_ms, "{:.3f}", False),
]
METRICS["idle"] = [
    ("idle IMAP sessions (%s): proxy PSS KiB/session" % env["IDLE_CONNS"], "lower", pss, "{:.2f}", False),
]

TARGETS = ["direct", "postern", "nginx", "nginx-64k"]

def median_of(scenario, target, fn):
    vals = []
    for r in runs:
        if r["scenario"] != scenario or r["target"] != target or r.get("failed"):
            continue
        try:
            v = fn(r)
        except (KeyError, TypeError, ZeroDivisionError):
            v = None
        if v is not None:
            vals.append(v)
    return statistics.median(vals) if vals else None

def attempted(scenario, target):
    return any(r["scenario"] == scenario and r["target"] == target for r in runs)

rows, table = [], []
for scenario in scenarios:
    for label, better, fn, fmt, direct_ok in METRICS[scenario]:
        vals, cells = {}, {}
        for t in TARGETS:
            v = median_of(scenario, t, fn)
            vals[t] = v
            if t == "direct" and not direct_ok:
                cells[t] = "-"
            elif t.startswith("nginx") and not have_nginx:
                cells[t] = "n/a"
            elif v is None:
                cells[t] = "fail" if attempted(scenario, t) else "-"
            else:
                cells[t] = fmt.format(v)
        ng = [vals[t] for t in ("nginx", "nginx-64k") if vals[t] is not None]
        best = (max(ng) if better == "higher" else min(ng)) if ng else None
        vs_nginx = vals["postern"] / best if vals["postern"] is not None and best else None
        vs_direct = (vals["postern"] / vals["direct"]
                     if direct_ok and vals["postern"] is not None and vals["direct"] else None)
        if vs_nginx is None:
            vn = "n/a" if not have_nginx else "-"
        else:
            ahead = vs_nginx > 1 if better == "higher" else vs_nginx < 1
            vn = "%.2fx (%s)" % (vs_nginx, "better" if ahead else "worse")
        vd = "-" if vs_direct is None else "%.2fx" % vs_direct
        table.append([label, cells["direct"], cells["postern"], cells["nginx"], cells["nginx-64k"], vn, vd])
        rows.append({"scenario": scenario, "label": label, "better": better,
                     "direct": vals["direct"] if direct_ok else None, "postern": vals["postern"],
                     "nginx": vals["nginx"], "nginx_64k": vals["nginx-64k"], "nginx_best": best,
                     "postern_vs_nginx": vs_nginx, "postern_vs_direct": vs_direct})

head = ["scenario", "direct", "Postern", "nginx", "nginx-64k", "Postern/nginx", "Postern/direct"]
widths = [max(len(row[i]) for row in table + [head]) for i in range(len(head))]
line = lambda row: " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
print(line(head))
print("-|-".join("-" * w for w in widths))
for row in table:
    print(line(row))
print("Postern/nginx: against the better of nginx's two columns; (better)/(worse) is Postern's side.")

failures = [{"scenario": r["scenario"], "target": r["target"], "round": r["round"], "error": r.get("error")}
            for r in runs if r.get("failed")]
errored = [{"scenario": r["scenario"], "target": r["target"], "round": r["round"], "errors": r["errors"],
            "ops": r.get("ops"), "stderr": r.get("stderr", "")}
           for r in runs if not r.get("failed") and r.get("errors")]
for f in failures:
    print("FAILED: %s %s round %s: %s" % (f["scenario"], f["target"], f["round"], f["error"]))
for e in errored:
    print("errors: %s %s round %s: %s failed operation(s) beside %s: %s" % (
        e["scenario"], e["target"], e["round"], e["errors"], e["ops"], (e["stderr"].splitlines() or ["?"])[-1]))

summary = {"kind": "summary", "run": env["RUN"], "commit": env["COMMIT"], "cores": int(env["CORES"]),
           "rounds": int(env["ROUNDS"]), "quick": env["QUICK"] == "1",
           "nginx": env.get("NGINX_VERSION") or None, "postern_args": env.get("POSTERN_ARGS", ""),
           "tls_key": env.get("TLS_KEY"), "tls_protocols": env.get("TLS_PROTOCOLS"),
           "settings": {k.lower(): int(env[k]) for k in ("LOGIN_SECS", "LOGIN_CLIENTS", "DELAY_CLIENTS", "AUTH_DELAY_MS",
                                                     "SESSION_SECS", "SESSION_CLIENTS", "SMTP_BYTES", "BULK_BYTES",
                                                     "BULK_COUNT_1", "BULK_COUNT_8", "IDLE_CONNS", "IDLE_SECS")},
           "rows": rows, "failures": failures, "runs_with_errors": errored}
with open(path, "a") as f:
    f.write(json.dumps(summary, separators=(",", ":")) + "\n")
EOF
}
