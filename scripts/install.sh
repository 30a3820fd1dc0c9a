#!/usr/bin/env bash
# Installs Postern as a system service: the release binary, a default
# configuration (kept if one exists), the systemd unit and the README.
#   scripts/install.sh                 build, install under /, create the
#                                      `postern` user, reload systemd
#   scripts/install.sh --destdir DIR   stage the files under DIR (packaging,
#                                      tests): no user, no systemctl
#   --no-build                         use target/release/postern as it is
# The unit runs Postern as `postern` with CAP_NET_BIND_SERVICE only; enable
# it with `systemctl enable --now postern` once the configuration is right
# (`postern -t -c /etc/postern/postern.conf`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

DESTDIR=""
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --destdir) DESTDIR="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if [ "$BUILD" -eq 1 ]; then
    need_packages gcc:gcc git:git
    need_cargo
    cargo build --release --package postern
fi
BIN=target/release/postern
[ -x "$BIN" ] || { echo "install.sh: $BIN is missing (build first or drop --no-build)" >&2; exit 1; }

install -D -m 0755 "$BIN" "$DESTDIR/usr/sbin/postern"
install -D -m 0644 packaging/postern.service "$DESTDIR/usr/lib/systemd/system/postern.service"
install -D -m 0644 README.md "$DESTDIR/usr/share/doc/postern/README.md"
install -D -m 0644 LICENSE "$DESTDIR/usr/share/doc/postern/copyright"
# An operator's configuration is never overwritten.
if [ -e "$DESTDIR/etc/postern/postern.conf" ]; then
    install -D -m 0644 packaging/postern.conf "$DESTDIR/etc/postern/postern.conf.dist"
    echo "kept $DESTDIR/etc/postern/postern.conf; the default is postern.conf.dist beside it"
else
    install -D -m 0644 packaging/postern.conf "$DESTDIR/etc/postern/postern.conf"
fi

# The default configuration logs here (the unit's LogsDirectory makes it
# too); `postern -t` opens the log, as `nginx -t` does, so it must exist.
install -d -m 0750 "$DESTDIR/var/log/postern"

if [ -z "$DESTDIR" ]; then
    if ! id postern >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin postern
    fi
    chown postern:postern /var/log/postern
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
    echo "installed; check the configuration with: postern -t -c /etc/postern/postern.conf"
    echo "then start it with: systemctl enable --now postern"
else
    echo "staged under $DESTDIR"
fi
