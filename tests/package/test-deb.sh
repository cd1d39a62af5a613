#!/usr/bin/env bash
#
# test-deb.sh - the Debian package: build it from a copy of the tree with
# "dpkg-buildpackage -us -uc -b" (the unit tests are skipped there, with
# DEB_BUILD_OPTIONS=nocheck: scripts/test has just run them), check its
# files, conffiles and maintainer scripts, run lintian (no errors), then
# install it with dpkg into a throwaway root (--root, maintainer scripts
# run chrootless with DPKG_ROOT) and check that the picomdm user,
# /var/lib/picomdm and every file are there and the programs run; purge
# it again; then tests/package/test-boot.sh boots it under systemd in a
# container. Run by scripts/test (skip with --no-package) or alone:
#	PICOMDM_BUILD=build bash tests/package/test-deb.sh

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
. "$(dirname "$0")/../integration/lib.sh"

# scripts/test installs these (scripts/lib.sh, PM_PACKAGES): one missing
# is a failure, not a skip, so that no run passes without the package.
for tool in dpkg-buildpackage dpkg-deb dh lintian; do
	if ! command -v "$tool" >/dev/null; then
		it_abort "$tool is installed (PM_PACKAGES in scripts/lib.sh)"
	fi
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/picomdm-deb.XXXXXX")
keep=
trap '[[ -n $keep ]] && echo "# test-deb: kept $dir" || rm -rf "$dir"' EXIT
src=$dir/picomdm
mkdir -p "$src"
# The tree as committed plus what is new (not what is ignored: builds).
if git -C "$PM_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$PM_ROOT" && git ls-files -co --exclude-standard -z |
	    xargs -0 cp --parents -t "$src")
else
	(cd "$PM_ROOT" && tar --exclude='./build*' --exclude=./run -cf - .) |
	    (cd "$src" && tar -xf -)
fi

if (cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=${PM_JOBS:-2}" \
    dpkg-buildpackage -us -uc -b) >"$dir/build.log" 2>&1; then
	pass "dpkg-buildpackage -us -uc -b builds"
else
	keep=1
	it_abort "dpkg-buildpackage -us -uc -b builds" \
	    "$(tail -n 5 "$dir/build.log" | tr '\n' ' ')"
fi
debs=("$dir"/picomdm_*.deb)
[[ -f ${debs[0]} ]] || it_abort "picomdm_*.deb was made"
deb=${debs[0]}
pass "made $(basename "$deb")"

# ---- contents ----
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$dir/files"
for f in /usr/sbin/picomdm-fcgi /usr/bin/picomdmctl /usr/bin/picomdm-dep /usr/bin/picomdm-vpp \
    /usr/sbin/picomdm-notify /usr/share/man/man8/picomdm-notify.8.gz \
    /lib/systemd/system/picomdm-notify.service \
    /lib/systemd/system/picomdm-dep.service \
    /lib/systemd/system/picomdm-vpp.service \
    /lib/systemd/system/picomdm-vpp.timer \
    /usr/share/man/man8/picomdm-fcgi.8.gz /usr/share/man/man8/picomdmctl.8.gz \
    /usr/share/man/man5/picomdm.conf.5.gz /usr/share/man/man7/picomdm-api.7.gz \
    /lib/systemd/system/picomdm-fcgi.socket \
    /lib/systemd/system/picomdm-fcgi.service \
    /lib/systemd/system/picomdm-prune.service \
    /lib/systemd/system/picomdm-prune.timer \
    /etc/nginx/snippets/picomdm.conf /etc/picomdm/picomdm.conf \
    /usr/lib/sysusers.d/picomdm.conf /usr/lib/tmpfiles.d/picomdm.conf \
    /usr/share/doc/picomdm/copyright; do
	if grep -qx -- "$f" "$dir/files"; then
		pass "the package holds $f"
	else
		fail "the package holds $f"
	fi
done
mkdir -p "$dir/control"
dpkg-deb -e "$deb" "$dir/control"
for f in /etc/picomdm/picomdm.conf /etc/nginx/snippets/picomdm.conf; do
	if grep -qx -- "$f" "$dir/control/conffiles"; then
		pass "$f is a conffile"
	else
		fail "$f is a conffile"
	fi
done
if grep -q 'systemd-sysusers .*picomdm.conf' "$dir/control/postinst" &&
    grep -q 'systemd-tmpfiles .*--create picomdm.conf' \
    "$dir/control/postinst"; then
	pass "postinst creates the user, then /var/lib/picomdm"
else
	fail "postinst creates the user, then /var/lib/picomdm"
fi
if grep -q 'deb-systemd-helper enable' "$dir/control/postinst" &&
    ! grep -q 'deb-systemd-invoke start' "$dir/control/postinst"; then
	pass "postinst neither enables new units nor starts them"
else
	fail "postinst neither enables new units nor starts them"
fi

# ---- lintian ----
lintian --no-tag-display-limit "$dir"/picomdm_*.changes \
    >"$dir/lintian.log" 2>&1 || true
if grep -q '^E: ' "$dir/lintian.log"; then
	keep=1
	fail "lintian reports no errors" \
	    "$(grep '^E: ' "$dir/lintian.log" | head -n 5 | tr '\n' ' ')"
else
	pass "lintian reports no errors ($(grep -c '^W: ' "$dir/lintian.log" ||
	    true) warnings)"
fi

# ---- install into a throwaway root ----
root=$dir/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
: >"$root/var/lib/dpkg/status"
# Chrootless: the maintainer scripts run here with DPKG_ROOT=$root (no
# shell or libraries needed inside); dependencies are not installed there.
if dpkg --root="$root" --log=/dev/null --force-script-chrootless \
    --force-depends -i "$deb" >"$dir/install.log" 2>&1; then
	pass "dpkg -i into a throwaway root"
else
	keep=1
	fail "dpkg -i into a throwaway root" \
	    "$(tail -n 3 "$dir/install.log" | tr '\n' ' ')"
fi
user=$(grep '^picomdm:' "$root/etc/passwd" || true)
IFS=: read -r _ _ uid gid _ home shell <<<"$user"
if [[ -n $user && $home == /var/lib/picomdm && $shell == */nologin ]] &&
    ((uid > 0 && uid < 1000)); then
	pass "the picomdm system user exists (uid $uid, home $home, $shell)"
else
	fail "the picomdm system user exists" "${user:-no passwd line}"
fi
if grep -q "^picomdm:x:$gid:" "$root/etc/group"; then
	pass "the picomdm group exists"
else
	fail "the picomdm group exists"
fi
st=$(stat -c '%a %u %g' "$root/var/lib/picomdm" 2>/dev/null || true)
expect_eq "$st" "700 $uid $gid" "/var/lib/picomdm: mode 700, picomdm's"
for f in /usr/sbin/picomdm-fcgi /usr/bin/picomdmctl \
    /etc/nginx/snippets/picomdm.conf /etc/picomdm/picomdm.conf \
    /lib/systemd/system/picomdm-fcgi.socket; do
	if [[ -s $root$f ]]; then
		pass "installed: $f"
	else
		fail "installed: $f"
	fi
done
if grep -q "ExecStart=/usr/sbin/picomdm-fcgi --config /etc/picomdm/picomdm.conf" \
    "$root/lib/systemd/system/picomdm-fcgi.service"; then
	pass "the unit starts /usr/sbin/picomdm-fcgi with /etc/picomdm/picomdm.conf"
else
	fail "the unit starts /usr/sbin/picomdm-fcgi with /etc/picomdm/picomdm.conf"
fi
# The installed programs run here (Debian 12 has their libraries), and the
# shipped configuration parses: it stops only at the missing device CA.
"$PM_BUILD/tools/picomdm-gen" --db "$dir/db" --devices 3 >/dev/null 2>&1 ||
    fail "picomdm-gen makes a store of 3 devices"
"$root/usr/bin/picomdmctl" --db "$dir/db" stats --prometheus \
    >"$dir/stats.prom" 2>"$dir/stats.err" || true
expect_eq "$(grep '^picomdm_enrollments{state="enabled"}' "$dir/stats.prom" ||
    true)" 'picomdm_enrollments{state="enabled"} 3' \
    "the installed picomdmctl runs (stats --prometheus: 3 enrollments)"
out=$("$root/usr/sbin/picomdm-fcgi" --config "$root/etc/picomdm/picomdm.conf" \
    --db "$dir/db2" 2>&1 || true)
if [[ $out == *"device ca: cannot load /etc/picomdm/device-ca.pem"* ]]; then
	pass "the shipped picomdm.conf parses (stops at the missing device CA)"
else
	fail "the shipped picomdm.conf parses" "$(head -c 200 <<<"$out")"
fi
if dpkg --root="$root" --log=/dev/null --force-script-chrootless \
    --force-depends -P picomdm >>"$dir/install.log" 2>&1 &&
    [[ ! -e $root/usr/sbin/picomdm-fcgi && ! -e $root/etc/picomdm/picomdm.conf ]]; then
	pass "dpkg -P removes the programs and the conffiles"
else
	fail "dpkg -P removes the programs and the conffiles"
fi

# The same package under a real systemd (skipped, saying why, where
# containers cannot run).
bash "$PM_ROOT/tests/package/test-boot.sh" "$deb" || true

it_done
