#!/usr/bin/env bash
#
# test-boot.sh - the Debian package under a real systemd: boot a Debian 12
# tree (tests/package/rootfs.sh) with systemd-nspawn as PID 1, in its own
# network namespace and on a throw-away overlay, install the package with
# dpkg, and follow README.md "Running in production" step by step: the
# device CA and API key in /etc/picomdm, "systemctl enable --now
# picomdm-fcgi.socket picomdm-prune.timer", the nginx site that includes
# the snippet. Then a device enrolls through nginx and socket activation,
# the API and /healthz answer, the service runs sandboxed as picomdm (no
# capabilities, no new privileges, only loopback-free AF_UNIX), "systemctl
# stop" ends it cleanly and the next request starts it again with nothing
# lost, and the prune service runs to success. Run by test-deb.sh with the
# package it built:
#	bash tests/package/test-boot.sh picomdm_*.deb
# Skipped, with the reason, when not root, when the tree cannot be made
# (no mirror) or where containers cannot run; a missing tool fails.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
. "$(dirname "$0")/../integration/lib.sh"
IT_NAME=test-boot

deb=${1:?usage: test-boot.sh PACKAGE.deb}
deb=$(realpath "$deb")
# Installed by scripts/test (PM_PACKAGES): one missing is a failure.
for tool in systemd-nspawn debootstrap nsenter; do
	if ! command -v "$tool" >/dev/null; then
		it_abort "$tool is installed (PM_PACKAGES in scripts/lib.sh)"
	fi
done
if ((EUID != 0)); then
	echo "# test-boot: skipped (needs root for systemd-nspawn)"
	exit 0
fi
rootfs=${PICOMDM_ROOTFS:-/var/tmp/picomdm-rootfs-bookworm}
if ! out=$(bash "$PM_ROOT/tests/package/rootfs.sh" "$rootfs" 2>&1); then
	echo "# test-boot: skipped (no Debian 12 tree: $out)"
	exit 0
fi

# Containers at all (a sandbox may forbid the namespaces): a plain run.
if ! out=$(SYSTEMD_NSPAWN_LOCK=0 timeout 60 systemd-nspawn -q --register=no \
    --keep-unit --volatile=overlay --private-network -D "$rootfs" \
    /bin/true 2>&1); then
	echo "# test-boot: skipped (systemd-nspawn cannot run a container" \
	    "here: $(head -n 1 <<<"$out"))"
	exit 0
fi

IT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/picomdm-boot.XXXXXX")
chmod 755 "$IT_DIR"
share=$IT_DIR/share
mkdir -p "$share"
cp "$deb" "$share/picomdm.deb"
# RSA device identities, as SCEP issues them; a server certificate for
# localhost.
"$PM_ROOT/scripts/mkcerts" -r "$share/certs" device1 >/dev/null ||
    it_abort "scripts/mkcerts makes the certificates"
chmod -R a+rX "$share"
udid=0000B007-0000-4000-8000-000000000001
auth=$(auth_plist "$udid" C02BOOT00001)
cp "$auth" "$share/auth.plist"
token=$(token_plist "$udid" AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=)
cp "$token" "$share/token.plist"

nspawn_pid=
ct=
cleanup() {
	if [[ -n $ct ]] && kill -0 "$ct" 2>/dev/null; then
		nsenter -t "$ct" -a systemctl poweroff >/dev/null 2>&1 || true
		for _ in $(seq 50); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.2
		done
	fi
	[[ -z $nspawn_pid ]] || kill -9 "$nspawn_pid" 2>/dev/null || true
	if [[ ${IT_FAIL:-0} -eq 0 ]]; then
		rm -rf "$IT_DIR"
	else
		echo "# test-boot: kept $IT_DIR (console.log: the container's console)"
	fi
}
trap cleanup EXIT

# Boot: systemd as PID 1, changes on a tmpfs overlay (the tree stays as
# made), only loopback, the test's files read-only under /mnt/picomdm.
SYSTEMD_NSPAWN_LOCK=0 setsid systemd-nspawn -q --register=no --keep-unit \
    --boot --volatile=overlay --private-network -D "$rootfs" \
    --bind-ro="$share:/mnt/picomdm" --console=read-only \
    >"$IT_DIR/console.log" 2>&1 &
nspawn_pid=$!
# The container's PID 1: the child of systemd-nspawn once it is systemd
# (an inner child comes and goes before).
for _ in $(seq 200); do
	ct=$(pgrep -P "$nspawn_pid" -x systemd | head -n 1 || true)
	[[ -n $ct ]] && break
	sleep 0.1
done
[[ -n $ct ]] || it_abort "systemd-nspawn starts the container" \
    "$(tail -n 3 "$IT_DIR/console.log" | tr '\n' ' ')"
# in_ct CMD...: run CMD in the container (all its namespaces).
in_ct() {
	nsenter -t "$ct" -a -- "$@"
}
state=
for _ in $(seq 120); do
	state=$(in_ct systemctl is-system-running 2>/dev/null || true)
	[[ $state == running || $state == degraded ]] && break
	sleep 0.5
done
if [[ $state == running || $state == degraded ]]; then
	pass "the container booted with systemd as PID 1 ($state, $(in_ct \
	    systemctl --version | head -n 1))"
else
	it_abort "the container booted with systemd as PID 1" \
	    "is-system-running: ${state:-nothing}"
fi

# ---- the package ----
if in_ct dpkg -i /mnt/picomdm/picomdm.deb >"$IT_DIR/dpkg.log" 2>&1; then
	pass "dpkg -i installs the package under systemd"
else
	it_abort "dpkg -i installs the package under systemd" \
	    "$(tail -n 3 "$IT_DIR/dpkg.log" | tr '\n' ' ')"
fi
expect_eq "$(in_ct stat -c '%U %a' /var/lib/picomdm)" "picomdm 700" \
    "postinst made /var/lib/picomdm, picomdm's, mode 700"
expect_eq "$(in_ct systemctl is-enabled picomdm-fcgi.socket 2>&1 || true)" \
    disabled "the package enables nothing by itself"

# ---- README.md "Units", as written there ----
in_ct sh -ec '
install -m 0644 /mnt/picomdm/certs/ca.pem /etc/picomdm/device-ca.pem
(umask 027 && openssl rand -hex 32 | tee /etc/picomdm/api.key >/dev/null)
chgrp picomdm /etc/picomdm/api.key
systemctl enable --now picomdm-fcgi.socket picomdm-prune.timer
' >"$IT_DIR/units.log" 2>&1 ||
    it_abort "README's unit steps run" "$(tail -n 3 "$IT_DIR/units.log")"
pass "README's unit steps run (device CA, API key, enable --now)"
expect_eq "$(in_ct systemctl is-active picomdm-fcgi.socket || true)" active \
    "picomdm-fcgi.socket is listening"
expect_eq "$(in_ct stat -c '%U:%G %a' /run/picomdm/fcgi.sock)" \
    "root:www-data 660" "the socket: group www-data, mode 660"
expect_eq "$(in_ct systemctl is-active picomdm-fcgi.service || true)" \
    inactive "the service waits for its first connection"
expect_eq "$(in_ct systemctl is-active picomdm-prune.timer || true)" active \
    "picomdm-prune.timer is active"

# ---- README.md "nginx": the site that includes the snippet ----
in_ct sh -ec '
install -m 0644 /mnt/picomdm/certs/server.pem /etc/ssl/mdm.pem
install -m 0600 /mnt/picomdm/certs/server.key /etc/ssl/private/mdm.key
cat >/etc/nginx/sites-enabled/picomdm <<EOF
server {
    listen 127.0.0.1:443 ssl;
    server_name localhost;
    ssl_certificate     /etc/ssl/mdm.pem;
    ssl_certificate_key /etc/ssl/private/mdm.key;
    include snippets/picomdm.conf;
}
EOF
nginx -t
systemctl restart nginx
' >"$IT_DIR/nginx.log" 2>&1 ||
    it_abort "nginx takes the site with the snippet" \
    "$(tail -n 3 "$IT_DIR/nginx.log" | tr '\n' ' ')"
pass "nginx takes the site with the snippet (nginx -t, restart)"

# dev_put PATH BODY: a device request through nginx in the container;
# prints the HTTP status.
dev_put() {
	in_ct curl -sS -o /dev/null -w '%{http_code}' --max-time 20 \
	    --cacert /mnt/picomdm/certs/server-ca.pem \
	    --cert /mnt/picomdm/certs/devices/device1.pem \
	    --key /mnt/picomdm/certs/devices/device1.key \
	    -X PUT -H 'Content-Type: application/x-apple-aspen-mdm-checkin' \
	    --data-binary @"/mnt/picomdm/$2" "https://localhost$1" 2>&1 || true
}
expect_eq "$(dev_put /mdm/checkin auth.plist)" 200 \
    "Authenticate through nginx: 200 (the socket started the service)"
expect_eq "$(in_ct systemctl is-active picomdm-fcgi.service || true)" active \
    "picomdm-fcgi.service is running"
expect_eq "$(dev_put /mdm/checkin token.plist)" 200 "TokenUpdate: 200"
key=$(in_ct cat /etc/picomdm/api.key)
api() {
	in_ct curl -sS --max-time 20 --cacert /mnt/picomdm/certs/server-ca.pem \
	    -H "Authorization: Bearer $key" "https://localhost$1" 2>&1 || true
}
expect_jq "$(api "/api/v1/enrollments/$udid")" '.device.serial_number' C02BOOT00001 \
    "the API shows the enrollment"
expect_eq "$(in_ct curl -sS --max-time 20 \
    --cacert /mnt/picomdm/certs/server-ca.pem https://localhost/healthz)" \
    ok "/healthz: ok"

# ---- the sandbox, as the running service has it ----
pid=$(in_ct systemctl show -p MainPID --value picomdm-fcgi.service)
st=$(in_ct cat "/proc/$pid/status" 2>/dev/null || true)
expect_eq "$(in_ct ps -o user= -p "$pid" | tr -d ' ')" picomdm \
    "the service runs as picomdm"
expect_eq "$(awk '/^CapEff:/ { print $2 }' <<<"$st")" 0000000000000000 \
    "the service has no capabilities"
expect_eq "$(awk '/^NoNewPrivs:/ { print $2 }' <<<"$st")" 1 \
    "the service cannot gain privileges"
expect_eq "$(awk '/^Seccomp:/ { print $2 }' <<<"$st")" 2 \
    "the service runs under its system-call filter"

# ---- stop, and start again on the next request ----
in_ct systemctl stop picomdm-fcgi.service 2>/dev/null
expect_eq "$(in_ct systemctl show -p Result --value picomdm-fcgi.service)" \
    success "systemctl stop: the responder exits cleanly (SIGTERM)"
expect_eq "$(dev_put /mdm/checkin token.plist)" 200 \
    "the next request starts it again through the socket"
expect_jq "$(api "/api/v1/enrollments/$udid")" '.enrollment.token_update_tally' 2 \
    "nothing was lost across the stop (two TokenUpdates counted)"
show=$(in_ct picomdmctl --db /var/lib/picomdm show "$udid" 2>&1 || true)
expect_jq "$show" '.device.serial_number' C02BOOT00001 \
    "picomdmctl reads the store beside the running service"

# ---- picomdm-notify.service: starts and stays up as picomdm ----
in_ct systemctl start picomdm-notify.service >/dev/null 2>&1 || true
sleep 2
expect_eq "$(in_ct systemctl is-active picomdm-notify.service || true)/$(in_ct \
    ps -o user= -p "$(in_ct systemctl show -p MainPID --value \
    picomdm-notify.service)" | tr -d ' ')" active/picomdm \
    "picomdm-notify.service runs as picomdm beside the responder"

# ---- the prune timer's service ----
in_ct systemctl start picomdm-prune.service >/dev/null 2>&1 || true
expect_eq "$(in_ct systemctl show -p Result --value picomdm-prune.service)" \
    success "picomdm-prune.service runs to success"

it_done
