#!/usr/bin/env bash
# Kernel TLS end to end, on Debian's kernel in qemu (the host's has no tls
# module): builds Postern, the bench tools and the unit tests, then runs
# scripts/vm/ktls-guest.sh through scripts/vm/run.sh.
#   scripts/vm/ktls.sh [ROUNDS]   ROUNDS > 0 adds a kernel TLS vs rustls comparison
# POSTERN_VM_PROFILE=debug uses the debug build (scripts/test.sh has it built).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-0}
PROFILE=${POSTERN_VM_PROFILE:-release}
case $PROFILE in
    release) FLAG=(--release) BIG=4000000 ;;
    debug) FLAG=() BIG=500000 ;;
    *) echo "ktls: POSTERN_VM_PROFILE is release or debug" >&2; exit 1 ;;
esac
cargo build "${FLAG[@]}" --workspace --bins
# The path of the library's unit-test binary, from cargo's JSON messages.
TESTS=$(cargo test "${FLAG[@]}" --lib --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | head -n 1)
[ -x "$TESTS" ] || { echo "ktls: no unit-test binary found" >&2; exit 1; }
TARGET=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
exec scripts/vm/run.sh --timeout 600 \
    --bin "$TARGET/$PROFILE/postern" --bin "$TARGET/$PROFILE/postern-bench" --bin "$TESTS" \
    -- scripts/vm/ktls-guest.sh "$(basename "$TESTS")" "$ROUNDS" "$BIG"
