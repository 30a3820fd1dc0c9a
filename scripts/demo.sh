#!/usr/bin/env bash
# The main job, end to end: build Postern, start the bench auth server and
# IMAP, POP3 and SMTP backends, start Postern with conf/postern.conf, fetch a message through
# it with curl over IMAP and POP3, send one over SMTP, then the same over TLS
# (IMAPS and SMTP STARTTLS, with a certificate made on the fly), print the
# sessions, and stop everything it started.
#   scripts/demo.sh          run the demo and clean up
#   scripts/demo.sh --keep   leave the three servers running
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

need_packages curl:curl gcc:gcc git:git openssl:openssl
need_cargo

echo "== building (release)"
cargo build --release --workspace --quiet
BIN=target/release
WORK=$(mktemp -d /tmp/postern-demo.XXXXXX)
PIDS=()

cleanup() {
    if [ "$KEEP" -eq 0 ]; then
        for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# wait_for FILE TEXT: until TEXT appears in FILE (the servers announce
# themselves), at most 20 s.
wait_for() {
    for _ in $(seq 200); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for \"$2\" in $1:" >&2
    cat "$1" >&2
    exit 1
}

echo "== starting the IMAP backend on 127.0.0.1:11143 (3 seeded messages)"
"$BIN/postern-bench" backend --listen 127.0.0.1:11143 --user demo:demo-password \
    --messages 3 --msg-bytes 600 >"$WORK/backend.out" 2>&1 &
PIDS+=($!)
wait_for "$WORK/backend.out" listening

echo "== starting the POP3 backend on 127.0.0.1:11110 and the SMTP backend on 127.0.0.1:11025"
"$BIN/postern-bench" backend --protocol pop3 --listen 127.0.0.1:11110 --user demo:demo-password \
    --messages 3 --msg-bytes 600 >"$WORK/pop3.out" 2>&1 &
PIDS+=($!)
wait_for "$WORK/pop3.out" listening
mkdir -p "$WORK/delivered"
"$BIN/postern-bench" backend --protocol smtp --listen 127.0.0.1:11025 --user demo:demo-password \
    --deliveries "$WORK/delivered" >"$WORK/smtp.out" 2>&1 &
PIDS+=($!)
wait_for "$WORK/smtp.out" listening

echo "== starting the auth_http server on 127.0.0.1:9000"
"$BIN/postern-bench" auth --listen 127.0.0.1:9000 --user demo:demo-password \
    --backend imap=127.0.0.1:11143 --backend pop3=127.0.0.1:11110 --backend smtp=127.0.0.1:11025 \
    --wait 1 >"$WORK/auth.out" 2>&1 &
PIDS+=($!)
wait_for "$WORK/auth.out" listening

echo "== checking conf/postern.conf"
"$BIN/postern" -t -c conf/postern.conf

echo "== starting Postern: IMAP 127.0.0.1:10143, POP3 :10110, SMTP :10025"
"$BIN/postern" -c conf/postern.conf 2>"$WORK/postern.log" &
PIDS+=($!)
wait_for "$WORK/postern.log" started

echo "== curl imap://127.0.0.1:10143/INBOX;MAILINDEX=1 as demo (the IMAP dialogue, then the message)"
curl -sS -v --max-time 20 -u demo:demo-password 'imap://127.0.0.1:10143/INBOX;MAILINDEX=1' \
    2>"$WORK/curl.trace" >"$WORK/message.eml"
# The SASL response line carries the password (base64): not shown.
grep -E '^[<>] ' "$WORK/curl.trace" | grep -vE '^> [A-Za-z0-9+/]+=*[[:space:]]*$' || true
echo "-- message (first 6 lines of $(wc -c <"$WORK/message.eml") bytes):"
head -n 6 "$WORK/message.eml"

echo "== a wrong password: the auth server refuses, with Auth-Wait 1 s"
printf 'a1 LOGIN demo wrong\r\na2 LOGOUT\r\n' | timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/10143; cat >&3; cat <&3' || true

echo "== curl pop3://127.0.0.1:10110/2 as demo (USER/PASS, RETR through Postern)"
curl -sS --max-time 20 -u demo:demo-password 'pop3://127.0.0.1:10110/2' | head -n 4

echo "== curl smtp://127.0.0.1:10025 as demo (EHLO, AUTH, XCLIENT to the backend, DATA)"
printf 'Subject: hello from the Postern demo\r\n\r\nSent through Postern.\r\n' >"$WORK/mail.txt"
curl -sS --max-time 20 -u demo:demo-password --mail-from demo@postern.test \
    --mail-rcpt friend@postern.test --upload-file "$WORK/mail.txt" 'smtp://127.0.0.1:10025'
echo "-- the SMTP backend received:"
cat "$WORK/delivered/1.eml"

echo "== TLS: a throwaway CA and a certificate for localhost/127.0.0.1, made on the fly"
"$BIN/postern-bench" certs --dir "$WORK/pki" >/dev/null
cat >"$WORK/tls.conf" <<CONF
worker_processes 2;
error_log stderr info;
pid $WORK/postern-tls.pid;
mail {
    auth_http 127.0.0.1:9000/auth;
    ssl_certificate $WORK/pki/server.pem;
    ssl_certificate_key $WORK/pki/server.key;
    server {
        listen 127.0.0.1:10993 ssl;
        protocol imap;
    }
    server {
        listen 127.0.0.1:10587;
        protocol smtp;
        starttls only;
    }
}
CONF
"$BIN/postern" -t -c "$WORK/tls.conf"
"$BIN/postern" -c "$WORK/tls.conf" 2>"$WORK/postern-tls.log" &
PIDS+=($!)
wait_for "$WORK/postern-tls.log" started

echo "== curl imaps://127.0.0.1:10993 (implicit TLS, the certificate verified against the CA)"
curl -sS --max-time 20 --cacert "$WORK/pki/ca.pem" -u demo:demo-password \
    'imaps://127.0.0.1:10993/INBOX;MAILINDEX=2' | head -n 4

echo "== openssl s_client: the TLS session Postern offers"
printf 'a LOGOUT\r\n' | timeout 10 openssl s_client -connect 127.0.0.1:10993 -CAfile "$WORK/pki/ca.pem" \
    -verify_return_error -brief 2>&1 | grep -E 'Protocol|Ciphersuite|Verification|^\* OK' || true

echo "== curl smtp://127.0.0.1:10587 with STARTTLS required (starttls only: no AUTH before it)"
curl -sS --max-time 20 --ssl-reqd --cacert "$WORK/pki/ca.pem" -u demo:demo-password \
    --mail-from demo@postern.test --mail-rcpt friend@postern.test --upload-file "$WORK/mail.txt" \
    'smtp://127.0.0.1:10587'
echo "-- the SMTP backend received $(ls "$WORK/delivered" | wc -l) messages"

echo "== Postern's log"
cat "$WORK/postern.log"
echo "== Postern's log (TLS)"
cat "$WORK/postern-tls.log"

if [ "$KEEP" -eq 1 ]; then
    echo "== left running (pids ${PIDS[*]}); logs in $WORK"
fi
