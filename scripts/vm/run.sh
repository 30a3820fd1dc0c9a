#!/usr/bin/env bash
# Boot Debian's own kernel in qemu (KVM when usable) with a throwaway
# initramfs and run a test script inside it: for what the host kernel lacks,
# such as kernel TLS (the tls module).
#
#   scripts/vm/run.sh [--bin HOST_BINARY]... [--file HOST_PATH[:GUEST_PATH]]...
#                     [--module NAME]... [--timeout SECS] -- GUEST_SCRIPT [ARGS...]
#
# --bin      copied to /opt/bin (on the guest's PATH) with the libraries ldd lists
# --file     a file or directory, at GUEST_PATH (default: the same absolute path)
# --module   a kernel module loaded before the script, besides tls
# --timeout  seconds before qemu is stopped (default 300)
#
# The guest has busybox only (/bin/sh is ash): a script that wants bash needs
# --bin /bin/bash. Its stdout and stderr go to the serial console, which is
# printed here; this script exits with the guest script's status.
# Environment: POSTERN_VM_CACHE (the kernel's cache, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/postern-vm), POSTERN_VM_KERNEL (a
# linux-image-* package instead of the one linux-image-amd64 depends on),
# POSTERN_VM_ACCEL=kvm|tcg (else KVM if a first boot under it works; the
# verdict is cached in the kernel's cache directory).
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/../common.sh"

die() { echo "vm: $*" >&2; exit 1; }

BINS=() FILES=() MODULES=(tls) TIMEOUT=300
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BINS+=("$2"); shift 2 ;;
        --file) FILES+=("$2"); shift 2 ;;
        --module) MODULES+=("$2"); shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --) shift; break ;;
        *) die "unknown option $1 (usage: see the top of $0)" ;;
    esac
done
[ $# -ge 1 ] || die "no guest script (usage: see the top of $0)"
SCRIPT=$1; shift
[ -f "$SCRIPT" ] || die "no such guest script: $SCRIPT"

need_packages qemu-system-x86_64:qemu-system-x86 cpio:cpio busybox:busybox-static
# The guest gets /bin/busybox alone, without libraries.
ldd /bin/busybox >/dev/null 2>&1 &&
    die "/bin/busybox is dynamically linked: apt-get install busybox-static (it replaces busybox)"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo

CACHE=${POSTERN_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/postern-vm}
mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/postern-vm.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The kernel package linux-image-amd64 points at, e.g. linux-image-6.1.0-48-amd64.
kernel_pkg() {
    [ -n "${POSTERN_VM_KERNEL:-}" ] && { echo "$POSTERN_VM_KERNEL"; return; }
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1
}
PKG=$(kernel_pkg)
exec 9>"$CACHE/lock"
flock 9 # one download at a time into the cache
if [ -z "$PKG" ] || [ ! -e "$CACHE/$PKG/.done" ]; then
    # Download, don't install: the host's /boot and /lib/modules stay as they are.
    [ -n "$PKG" ] || { $SUDO apt-get update -qq; PKG=$(kernel_pkg); }
    [ -n "$PKG" ] || die "apt-cache knows no linux-image-amd64"
    # As root apt downloads as _apt, which cannot write to a mktemp directory.
    APT_OPTS=(); [ "$(id -u)" -eq 0 ] && APT_OPTS=(-o APT::Sandbox::User=root)
    if [ ! -e "$CACHE/$PKG/.done" ]; then
        echo "vm: downloading $PKG into $CACHE" >&2
        (cd "$WORK" && apt-get "${APT_OPTS[@]}" download -qq "$PKG") ||
            { $SUDO apt-get update -qq &&
                (cd "$WORK" && apt-get "${APT_OPTS[@]}" download -qq "$PKG"); } ||
            die "cannot download $PKG"
        rm -rf "${CACHE:?}/$PKG"
        dpkg-deb -x "$WORK"/"$PKG"_*.deb "$CACHE/$PKG"
        # Later Debian kernels compress their modules; busybox insmod wants them plain.
        find "$CACHE/$PKG/lib/modules" -name '*.ko.xz' -exec xz -d {} +
        find "$CACHE/$PKG/lib/modules" -name '*.ko.zst' -exec zstd -q -d --rm {} +
        find "$CACHE/$PKG/lib/modules" -name '*.ko.gz' -exec gzip -d {} +
        # The package has no modules.dep (its postinst runs depmod): make one.
        KVER=$(ls "$CACHE/$PKG/lib/modules")
        busybox depmod -b "$CACHE/$PKG" "$KVER"
        rm -f "$WORK"/*.deb
        touch "$CACHE/$PKG/.done"
    fi
fi
flock -u 9
KDIR=$CACHE/$PKG
KVER=$(ls "$KDIR/lib/modules")
VMLINUZ=$KDIR/boot/vmlinuz-$KVER

# The initramfs tree.
ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,etc,opt/bin,opt/vm}
cp /bin/busybox "$ROOT/bin/busybox"
for applet in $(/bin/busybox --list-full); do
    [ -e "$ROOT/$applet" ] || ln -s /bin/busybox "$ROOT/$applet"
done
printf '127.0.0.1 localhost\n::1 localhost\n' >"$ROOT/etc/hosts"
echo 'root:x:0:0:root:/root:/bin/sh' >"$ROOT/etc/passwd"

# Modules: the tls module and the crypto ones it may ask the kernel for
# (gcm(aes), rfc7539(chacha20,poly1305)... are loaded on demand through
# /sbin/modprobe and modules.alias), each with what modules.dep says it needs.
MDIR=lib/modules/$KVER
want=$(cd "$KDIR/$MDIR" && find kernel/net/tls kernel/crypto kernel/arch/x86/crypto \
    kernel/lib/crypto -name '*.ko' 2>/dev/null)
for m in "${MODULES[@]}"; do
    # modules.dep names files; a module name may spell - as _.
    pattern="$(printf '%s' "$m" | sed 's/[-_]/[-_]/g')"
    path=$(sed -n "s#^\([^:]*/$pattern\.ko\):.*#\1#p" "$KDIR/$MDIR/modules.dep")
    [ -n "$path" ] || die "no module $m in $PKG"
    want+=$'\n'$path
done
deps=$(for p in $want; do grep "^$p:" "$KDIR/$MDIR/modules.dep" | cut -d: -f2; done)
# shellcheck disable=SC2086 # one path a word
for p in $(printf '%s\n' $want $deps | sort -u); do
    mkdir -p "$ROOT/$MDIR/$(dirname "$p")"
    cp "$KDIR/$MDIR/$p" "$ROOT/$MDIR/$p"
done
busybox depmod -b "$ROOT" "$KVER"

# Binaries and the shared libraries (and loader) they need, at their host paths.
for bin in "${BINS[@]}"; do
    [ -x "$bin" ] || die "not an executable: $bin"
    cp "$bin" "$ROOT/opt/bin/"
    # Debug info is most of a Rust binary (90 MB for a debug build): the
    # initramfs is unpacked into the guest's memory.
    strip --strip-debug "$ROOT/opt/bin/$(basename "$bin")" 2>/dev/null || true
    for lib in $(ldd "$bin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
        mkdir -p "$ROOT/$(dirname "$lib")"
        cp -L "$lib" "$ROOT/$lib"
    done
done
for spec in "${FILES[@]}"; do
    host=${spec%%:*}
    guest=${spec#*:}
    [ "$guest" = "$spec" ] && guest=$(realpath "$host")
    [ -e "$host" ] || die "no such file: $host"
    mkdir -p "$ROOT/$(dirname "$guest")"
    cp -a "$host" "$ROOT/$guest"
done
GUEST_SCRIPT=/opt/vm/$(basename "$SCRIPT")
cp "$SCRIPT" "$ROOT$GUEST_SCRIPT"
chmod +x "$ROOT$GUEST_SCRIPT"

# The script and its arguments, single-quoted for the guest's shell.
quote() { printf "'%s' " "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
COMMAND=$(quote "$GUEST_SCRIPT"; for a in "$@"; do quote "$a"; done)
# A marker the guest script cannot print by accident.
MARK=POSTERN-VM-EXIT-$$-$RANDOM
cat >"$ROOT/init" <<INIT
#!/bin/sh
export PATH=/opt/bin:/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t devtmpfs dev /dev
# The kernel starts init without a console when the cpio has no /dev/console.
exec </dev/null >/dev/console 2>&1
echo
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
ip link set lo up || ifconfig lo 127.0.0.1 up
for m in ${MODULES[*]}; do modprobe "\$m" || echo "init: cannot load module \$m"; done
ulimit -l unlimited
ulimit -n 1048576 || ulimit -n 65536
cd /tmp
$COMMAND
rc=\$?
echo
echo "$MARK=\$rc"
poweroff -f
INIT
chmod +x "$ROOT/init"
(cd "$ROOT" && find . | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$WORK/initrd.gz"

# KVM only if this kernel really boots under it: a /dev/kvm can be there and
# still run no stock kernel (e.g. kvm_pvm, nested virtualization without
# VMX, which only runs PVM guest kernels: Debian's hangs after unpacking).
# A busybox-only VM answers once per kernel and host kernel; else TCG.
qemu() {
    timeout "$1" qemu-system-x86_64 "${@:2}" -m 1024 -smp 2 -nographic -no-reboot -nic none \
        -append "console=ttyS0 quiet panic=-1" -kernel "$VMLINUZ" </dev/null 2>&1
}
KVM_OK=$KDIR/.kvm-$(uname -r)
ACCEL=${POSTERN_VM_ACCEL:-}
if [ -z "$ACCEL" ] && [ ! -w /dev/kvm ]; then
    ACCEL=tcg
elif [ -z "$ACCEL" ] && [ ! -e "$KVM_OK" ]; then
    mkdir -p "$WORK/probe/bin"
    cp /bin/busybox "$WORK/probe/bin/"
    printf '#!/bin/busybox sh\n/bin/busybox echo KVM-BOOTED\n/bin/busybox poweroff -f\n' >"$WORK/probe/init"
    chmod +x "$WORK/probe/init"
    (cd "$WORK/probe" && find . | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$WORK/probe.gz"
    echo "vm: checking that $KVER boots under KVM" >&2
    qemu 30 -enable-kvm -cpu host -initrd "$WORK/probe.gz" >"$WORK/probe.log" || true
    if grep -q KVM-BOOTED "$WORK/probe.log"; then echo kvm; else echo tcg; fi >"$KVM_OK"
fi
[ -n "$ACCEL" ] || ACCEL=$(cat "$KVM_OK")
if [ "$ACCEL" = kvm ]; then
    ACCEL_OPTS=(-enable-kvm -cpu host)
else
    echo "vm: no KVM here (verdict in $KVM_OK, or POSTERN_VM_ACCEL): TCG, slower" >&2
    ACCEL_OPTS=()
fi

echo "vm: booting $KVER ($(du -h "$WORK/initrd.gz" | cut -f1) initramfs)" >&2
qrc=0
# SeaBIOS clears the screen on the serial line: drop escape sequences and CRs.
qemu "$TIMEOUT" "${ACCEL_OPTS[@]}" -initrd "$WORK/initrd.gz" |
    sed -u 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g; s/\r$//' | tee "$WORK/console.log" || qrc=$?
status=$(sed -n "s/^$MARK=\([0-9]*\)\$/\1/p" "$WORK/console.log" | tail -n 1)
if [ -z "$status" ]; then
    [ "$qrc" -eq 124 ] && die "timed out after $TIMEOUT s without the guest's exit marker"
    die "the guest never printed its exit marker (qemu exited $qrc): see the console above"
fi
echo "vm: guest script exited $status" >&2
exit "$status"
