#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ one after another, SECONDS each
# (default 60), and says per target how many inputs it ran and whether it
# crashed. A crash leaves its input in fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh                  # every target, 60 s each
#   scripts/fuzz.sh 300 imap_front   # one target, 5 minutes
#
# libFuzzer's instrumentation needs nightly compiler flags; the stable
# toolchain takes them with RUSTC_BOOTSTRAP=1, so no nightly is installed.
# New inputs libFuzzer finds go to a scratch copy of fuzz/corpus, so a run
# does not churn the seed corpus kept in git.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# One build for every target, before the clock of the first starts.
cargo fuzz build --fuzz-dir fuzz -O

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=0
summary=()
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target" "fuzz/artifacts/$target"
    if [ -d "fuzz/corpus/$target" ]; then
        cp -r "fuzz/corpus/$target/." "$scratch/$target/"
    fi
    log="$scratch/$target.log"
    echo "== $target: ${seconds}s"
    status=0
    # -timeout: an input that takes over 10 s is a hang, reported as a crash.
    cargo fuzz run --fuzz-dir fuzz -O "$target" "$scratch/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1 || status=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    if [ "$status" -eq 0 ]; then
        verdict="no crash"
    else
        verdict="CRASHED (exit $status; input in fuzz/artifacts/$target/)"
        failed=1
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -5 || true
        cp "$log" "fuzz/artifacts/$target/last-run.log"
    fi
    summary+=("$(printf '%-14s %5ss %12s execs  %s' "$target" "$seconds" "${execs:-?}" "$verdict")")
done

echo
printf '%s\n' "${summary[@]}"
exit "$failed"
