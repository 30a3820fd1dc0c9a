#!/usr/bin/env bash
# Checks what an operator installs: scripts/install.sh staged into a
# scratch root, the default configuration passing -t, the systemd unit
# verified by systemd-analyze (where present), and the Debian package built
# by cargo-deb holding the expected files. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
need_packages dpkg-deb:dpkg
need_cargo

fail() { echo "package-check: $*" >&2; exit 1; }

cargo build --release --package postern
ROOT=$(mktemp -d /tmp/postern-install.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT

echo "== install.sh --destdir"
scripts/install.sh --destdir "$ROOT" --no-build >/dev/null
for f in usr/sbin/postern etc/postern/postern.conf usr/lib/systemd/system/postern.service \
    usr/share/doc/postern/README.md usr/share/doc/postern/copyright; do
    [ -f "$ROOT/$f" ] || fail "install.sh did not install /$f"
done
[ "$(stat -c %a "$ROOT/usr/sbin/postern")" = 755 ] || fail "postern is not mode 755"
# A second run keeps the operator's configuration.
echo "# edited" >>"$ROOT/etc/postern/postern.conf"
scripts/install.sh --destdir "$ROOT" --no-build >/dev/null
grep -q "# edited" "$ROOT/etc/postern/postern.conf" || fail "install.sh overwrote the configuration"
[ -f "$ROOT/etc/postern/postern.conf.dist" ] || fail "no postern.conf.dist beside a kept configuration"

echo "== the default configuration passes -t"
# -t opens the error log, as nginx -t: point it into the staged root.
[ -d "$ROOT/var/log/postern" ] || fail "install.sh did not make /var/log/postern"
sed "s#/var/log/postern/#$ROOT/var/log/postern/#g" "$ROOT/etc/postern/postern.conf" >"$ROOT/postern-t.conf"
"$ROOT/usr/sbin/postern" -t -c "$ROOT/postern-t.conf"

echo "== the unit file"
unit="$ROOT/usr/lib/systemd/system/postern.service"
for want in "ExecStart=/usr/sbin/postern -c /etc/postern/postern.conf" \
    "ExecReload=/bin/kill -HUP \$MAINPID" "AmbientCapabilities=CAP_NET_BIND_SERVICE" \
    "LimitNOFILE=" "LimitMEMLOCK=" "ProtectSystem=strict" "User=postern" "Type=notify" \
    "NotifyAccess=all"; do
    grep -qF "$want" "$unit" || fail "the unit lacks $want"
done
if command -v systemd-analyze >/dev/null 2>&1; then
    # The unit as installed, its executable pointed at the staged binary
    # (verify checks that every Exec path exists). Any remark about it, even
    # a key systemd would merely ignore, fails the check.
    mkdir -p "$ROOT/verify"
    sed "s#/usr/sbin/postern#$ROOT/usr/sbin/postern#g" "$unit" >"$ROOT/verify/postern.service"
    out=$(systemd-analyze verify --man=no "$ROOT/verify/postern.service" 2>&1) ||
        fail "systemd-analyze verify: $out"
    [ -z "$out" ] || fail "systemd-analyze verify: $out"
    echo "systemd-analyze verify: ok"
else
    echo "systemd-analyze not present: unit checked by content only"
fi

echo "== cargo deb"
if ! command -v cargo-deb >/dev/null 2>&1; then
    cargo install cargo-deb --locked --quiet
fi
# Stripped: the release profile keeps line tables for perf(1), which an
# installed binary does not need.
out=$(cargo deb --no-build --strip --package postern 2>&1) || fail "cargo deb: $out"
deb=$(echo "$out" | tail -n 1)
[ -f "$deb" ] || fail "cargo deb produced no package ($deb)"
contents=$(dpkg-deb -c "$deb")
for f in ./usr/sbin/postern ./etc/postern/postern.conf ./usr/lib/systemd/system/postern.service \
    ./usr/share/doc/postern/README.md; do
    echo "$contents" | grep -qE " $f\$" || fail "$deb lacks $f"
done
[ "$(dpkg-deb -f "$deb" Package)" = postern ] || fail "package name"
dpkg-deb -f "$deb" Depends | grep -q adduser || fail "Depends lacks adduser"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/postern/postern.conf ||
    fail "postern.conf is not a conffile"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst | grep -q "adduser --system" ||
    fail "postinst does not create the postern user"
echo "package-check: ok ($deb)"
