#!/bin/sh
# Guest script for scripts/vm/run.sh (busybox sh): kernel TLS end to end on
# a kernel that has it. scripts/vm/ktls.sh builds what it needs and runs it.
#   $1: the library's unit-test binary (its kernel TLS tests run first)
#   $2: rounds of the kernel TLS vs rustls comparison (0: none)
#   $3: the size of the big message (a debug build under emulation is slow)
set -eu
TESTS=$1 ROUNDS=${2:-0} BIG=${3:-4000000}
W=/tmp/ktls
mkdir -p "$W"

fail() { echo "ktls: $*"; [ -f "$W/postern.log" ] && cat "$W/postern.log"; exit 1; }

# wait_for FILE TEXT: until TEXT appears in FILE, at most 30 s.
wait_for() {
    i=0
    until grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -le 300 ] || fail "timed out waiting for \"$2\" in $1"
        sleep 0.1
    done
}

echo "== kernel $(uname -r); tcp_available_ulp: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"
grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp || fail "no tls ULP in this kernel"

echo "== unit tests: the hand-off on a real session, each TLS 1.2 and 1.3 cipher"
"$TESTS" --test-threads 1 tls::ktls 2>&1 | tail -n 12
"$TESTS" --test-threads 1 tls::ktls >/dev/null 2>&1 || fail "the kernel TLS unit tests failed"

echo "== backend ($BIG-byte messages), auth server, PKI"
postern-bench certs --dir "$W/pki" >/dev/null
postern-bench backend --listen 127.0.0.1:11143 --user demo:demo-password \
    --messages 2 --msg-bytes "$BIG" >"$W/backend.out" 2>&1 &
wait_for "$W/backend.out" listening
postern-bench auth --listen 127.0.0.1:9000 --user demo:demo-password \
    --backend imap=127.0.0.1:11143 >"$W/auth.out" 2>&1 &
wait_for "$W/auth.out" listening
# The same behind TLS, for proxy_ssl.
postern-bench backend --listen 127.0.0.1:11993 --user demo:demo-password \
    --messages 2 --msg-bytes "$BIG" --tls-cert "$W/pki/server.pem" --tls-key "$W/pki/server.key" \
    >"$W/backend-tls.out" 2>&1 &
wait_for "$W/backend-tls.out" listening
postern-bench auth --listen 127.0.0.1:9001 --user demo:demo-password \
    --backend imap=127.0.0.1:11993 >"$W/auth-tls.out" 2>&1 &
wait_for "$W/auth-tls.out" listening

# start_postern MODE: Postern with --ktls MODE, an IMAPS and a STARTTLS port.
start_postern() {
    cat >"$W/postern.conf" <<CONF
worker_processes 2;
error_log stderr info;
pid $W/postern.pid;
metrics_listen 127.0.0.1:9187;
# Room for the idle sessions on either core (SO_REUSEPORT spreads them
# unevenly; past worker_connections a core stops accepting).
events { worker_connections 4096; }
mail {
    auth_http 127.0.0.1:9000/auth;
    ssl_certificate $W/pki/server.pem;
    ssl_certificate_key $W/pki/server.key;
    server {
        listen 127.0.0.1:10993 ssl;
        listen 127.0.0.1:10143;
        starttls on;
        protocol imap;
    }
    server {
        listen 127.0.0.1:10994 ssl;
        listen 127.0.0.1:10144;
        protocol imap;
        auth_http 127.0.0.1:9001/auth;
        proxy_ssl on;
    }
}
CONF
    postern --ktls "$1" -c "$W/postern.conf" 2>"$W/postern.log" &
    PID=$!
    wait_for "$W/postern.log" started
    # glommio's rings show up as anon_inode:[io_uring] descriptors.
    rings=0
    for fd in "/proc/$PID"/fd/*; do
        case $(readlink "$fd") in *io_uring*) rings=$((rings + 1)) ;; esac
    done
    [ "$rings" -gt 0 ] || fail "Postern has no io_uring"
}
stop_postern() {
    kill "$PID"
    wait "$PID" || true
}

start_postern auto
grep "kernel TLS" "$W/postern.log"
grep -q "kernel TLS on (TLS 1.2 AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305; TLS 1.3 AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305)" \
    "$W/postern.log" || fail "Postern did not find every cipher in the kernel"

echo "== IMAPS, STARTTLS, IMAPS to a TLS backend, plain to a TLS backend: every byte checked"
postern-bench fetch --addr 127.0.0.1:10993 --tls --ca "$W/pki/ca.pem" \
    --user demo:demo-password --count 3 --verify || fail "IMAPS fetch failed"
postern-bench fetch --addr 127.0.0.1:10143 --starttls --ca "$W/pki/ca.pem" \
    --user demo:demo-password --count 3 --verify || fail "STARTTLS fetch failed"
postern-bench fetch --addr 127.0.0.1:10994 --tls --ca "$W/pki/ca.pem" \
    --user demo:demo-password --count 3 --verify || fail "IMAPS to a TLS backend failed"
postern-bench fetch --addr 127.0.0.1:10144 \
    --user demo:demo-password --count 3 --verify || fail "plain IMAP to a TLS backend failed"
# The fetch's LOGOUT ends each session; the lines come just after.
i=0
until [ "$(grep -c 'session done' "$W/postern.log")" -ge 4 ]; do
    i=$((i + 1)); [ "$i" -le 300 ] || fail "no session done lines"; sleep 0.1
done
grep "session done" "$W/postern.log"
[ "$(grep -c 'session done (ktls)' "$W/postern.log")" -eq 4 ] || fail "not every session went through kernel TLS"
# The metrics say the same, summed over the cores.
handed=$(wget -q -O - http://127.0.0.1:9187/metrics |
    awk '/^postern_ktls_handoffs_total\{.*result="kernel"/ { n += $NF } END { print n + 0 }')
echo "== postern_ktls_handoffs_total{result=\"kernel\"}: $handed"
[ "$handed" -eq 4 ] || fail "the metrics count $handed sessions handed to the kernel"
# Each took most of its three messages by splice (a TLS backend's smaller
# records go by copy more often), and ended without an error.
grep 'session done (ktls)' "$W/postern.log" | while read -r line; do
    spliced=$(echo "$line" | sed -n 's/.* \([0-9]*\) spliced.*/\1/p')
    [ "${spliced:-0}" -gt $((BIG * 3 / 2)) ] || fail "only ${spliced:-0} bytes spliced: $line"
    case $line in *"backend->client:"* | *"client->backend:"* | *proxy_timeout*) fail "ended with an error: $line" ;; esac
done
stop_postern

if [ "$ROUNDS" -gt 0 ]; then
    echo "== kernel TLS vs rustls: $BIG bytes fetched 16 times over IMAPS, $ROUNDS alternating rounds"
    echo "   (under emulation when run.sh has no KVM: a ratio, not a speed)"
    r=0
    while [ "$r" -lt "$ROUNDS" ]; do
        for mode in auto off; do
            start_postern "$mode"
            printf '%s: ' "$mode"
            postern-bench fetch --addr 127.0.0.1:10993 --tls --ca "$W/pki/ca.pem" \
                --user demo:demo-password --count 16 --pid "$PID" | tail -n 1
            stop_postern
        done
        r=$((r + 1))
    done
    echo "== idle logged-in IMAPS sessions, 1000: Postern's memory per session"
    for mode in auto off; do
        start_postern "$mode"
        printf '%s: ' "$mode"
        postern-bench load --mode idle --protocol imap --addr 127.0.0.1:10993 --tls --ca "$W/pki/ca.pem" \
            --user demo:demo-password --conns 1000 --duration 3 --pid "$PID" --json-only
        stop_postern
    done
fi
echo "== kernel TLS: ok"
