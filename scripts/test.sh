#!/usr/bin/env bash
# Runs every test: unit tests of the sans-IO core, and end-to-end tests that
# start Postern, the bench auth server and backends on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

# gcc and git: glommio's build compiles liburing; curl: a real IMAP client;
# haproxy: the balancer in front of Postern in tests/proxy_protocol.rs;
# ip (iproute2): the network namespace of tests/dead_peer.rs.
need_packages curl:curl gcc:gcc git:git python3:python3 openssl:openssl haproxy:haproxy ip:iproute2
need_cargo

cargo build --workspace --all-targets
cargo test --workspace "$@"

# Kernel TLS end to end: this kernel has no tls module, Debian's has; it
# boots in qemu (scripts/vm/run.sh installs qemu and fetches the kernel).
POSTERN_VM_PROFILE=debug scripts/vm/ktls.sh

# The fuzz targets are their own workspace (libFuzzer wants nightly flags to
# run); type-checking them here keeps them in step with the code they drive.
(cd fuzz && RUSTC_BOOTSTRAP=1 cargo check --bins)

# What an operator installs: install.sh, the unit, the Debian package.
scripts/package-check.sh
