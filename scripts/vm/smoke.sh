#!/bin/sh
# Guest script for scripts/vm/run.sh (busybox sh, not bash): the kernel has
# kernel TLS, and Postern runs on it (io_uring) serving IMAPS in front of the
# bench backend. Run from the repository:
#   cargo build --release --workspace --bins
#   scripts/vm/run.sh --bin target/release/postern --bin target/release/postern-bench \
#       -- scripts/vm/smoke.sh
set -eu
W=/tmp/smoke
mkdir -p "$W"

# wait_for FILE TEXT: until TEXT appears in FILE, at most 20 s.
wait_for() {
    i=0
    until grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt 200 ]; then
            echo "smoke: timed out waiting for \"$2\" in $1:"
            cat "$1"
            exit 1
        fi
        sleep 0.1
    done
}

echo "== kernel $(uname -r); tcp_available_ulp: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"
grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp || { echo "smoke: no tls ULP"; exit 1; }

echo "== test PKI, backend and auth server"
postern-bench certs --dir /tmp/pki >/dev/null
postern-bench backend --listen 127.0.0.1:11143 --user demo:demo-password \
    --messages 3 --msg-bytes 600 >"$W/backend.out" 2>&1 &
wait_for "$W/backend.out" listening
postern-bench auth --listen 127.0.0.1:9000 --user demo:demo-password \
    --backend imap=127.0.0.1:11143 >"$W/auth.out" 2>&1 &
wait_for "$W/auth.out" listening

echo "== Postern with an IMAPS listener"
cat >"$W/postern.conf" <<CONF
worker_processes 2;
error_log stderr info;
pid $W/postern.pid;
mail {
    auth_http 127.0.0.1:9000/auth;
    ssl_certificate /tmp/pki/server.pem;
    ssl_certificate_key /tmp/pki/server.key;
    server {
        listen 127.0.0.1:10993 ssl;
        protocol imap;
    }
}
CONF
postern -c "$W/postern.conf" 2>"$W/postern.log" &
pid=$!
wait_for "$W/postern.log" started
# glommio's rings show up as anon_inode:[io_uring] descriptors.
rings=0
for fd in "/proc/$pid"/fd/*; do
    case $(readlink "$fd") in *io_uring*) rings=$((rings + 1)) ;; esac
done
echo "== Postern (pid $pid) holds $rings io_uring instance(s)"
[ "$rings" -gt 0 ] || { echo "smoke: Postern has no io_uring"; exit 1; }

echo "== postern-bench fetch over TLS through Postern"
status=0
postern-bench fetch --addr 127.0.0.1:10993 --tls --ca /tmp/pki/ca.pem \
    --user demo:demo-password --count 4 --verify || status=$?

echo "== Postern's log"
cat "$W/postern.log"
if grep -q "kernel TLS on" "$W/postern.log"; then
    echo "== Postern found kernel TLS"
else
    echo "smoke: Postern did not find kernel TLS"
    status=1
fi
echo "== fetch exited $status"
exit "$status"
