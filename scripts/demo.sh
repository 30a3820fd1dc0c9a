#!/usr/bin/env bash
# The main job, end to end: build Postern, start the bench auth server and
# IMAP backend, start Postern with conf/postern.conf, fetch a message through
# it with curl, print the session, and stop everything it started.
#   scripts/demo.sh          run the demo and clean up
#   scripts/demo.sh --keep   leave the three servers running
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

need_packages curl:curl gcc:gcc git:git
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

echo "== starting the auth_http server on 127.0.0.1:9000"
"$BIN/postern-bench" auth --listen 127.0.0.1:9000 --user demo:demo-password \
    --backend imap=127.0.0.1:11143 --wait 1 >"$WORK/auth.out" 2>&1 &
PIDS+=($!)
wait_for "$WORK/auth.out" listening

echo "== checking conf/postern.conf"
"$BIN/postern" -t -c conf/postern.conf

echo "== starting Postern on 127.0.0.1:10143"
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

echo "== Postern's log"
cat "$WORK/postern.log"

if [ "$KEEP" -eq 1 ]; then
    echo "== left running (pids ${PIDS[*]}); logs in $WORK"
fi
