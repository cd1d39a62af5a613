#!/usr/bin/env bash
#
# rootfs.sh - make (once) the Debian 12 tree that tests/package/test-boot.sh
# boots with systemd-nspawn: debootstrap's minbase plus systemd, nginx and
# the libraries the picomdm package depends on, so the package installs
# there with dpkg alone. The tree is kept between runs; a stamp file names
# the package list it was made with, and a different list makes it again.
# Two runs at once (scripts/test starts one early, in the background, and
# test-boot.sh waits for it) share the work through a lock.
#
# usage: tests/package/rootfs.sh [DIR]
#	DIR defaults to $PICOMDM_ROOTFS or /var/tmp/picomdm-rootfs-bookworm.
# Needs root, debootstrap and a reachable Debian mirror (apt's own, from
# /etc/apt/sources.list*, or deb.debian.org). Exits 0 when the tree is
# ready, 1 with a one-line reason otherwise.

set -euo pipefail

dir=${1:-${PICOMDM_ROOTFS:-/var/tmp/picomdm-rootfs-bookworm}}
pkgs=systemd,systemd-sysv,dbus,nginx-light,curl,openssl,ca-certificates,procps,libplist3,liblmdb0,libjansson4,libcurl4,libssl3

die() {
	echo "rootfs.sh: $*" >&2
	exit 1
}

((EUID == 0)) || die "needs root (debootstrap, systemd-nspawn)"
command -v debootstrap >/dev/null || die "no debootstrap"
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [[ -f $dir/.picomdm-rootfs && $(cat "$dir/.picomdm-rootfs") == "$pkgs" ]]; then
	exit 0
fi
# The mirror apt uses here (a deb822 "URIs:" line or a one-line "deb"),
# else Debian's.
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p; s/^deb  *\(http[^ ]*\)  *bookworm .*/\1/p' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
    /etc/apt/sources.list.d/*.list 2>/dev/null |
    grep -E '/debian/?$' | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
rm -rf "$dir"
log=$dir.log
if ! debootstrap --variant=minbase --include="$pkgs" bookworm "$dir" \
    "$mirror" >"$log" 2>&1; then
	die "debootstrap from $mirror failed: $(tail -n 2 "$log" | tr '\n' ' ')"
fi
# The container runs with its own network namespace (only loopback); its
# nginx starts with picomdm's site only, written by test-boot.sh.
rm -f "$dir/etc/nginx/sites-enabled/default"
echo "$pkgs" >"$dir/.picomdm-rootfs"
