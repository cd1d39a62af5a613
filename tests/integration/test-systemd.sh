#!/usr/bin/env bash
#
# test-systemd.sh - the units in systemd/ and socket activation:
#   1. picomdm-fcgi started by systemd-socket-activate (the listening
#      socket passed as fd 3 with LISTEN_FDS/LISTEN_PID, as systemd does
#      for picomdm-fcgi.socket) serves /healthz and a check-in through
#      nginx; then, on a socket held by tests/integration/sockholder.py
#      as systemd holds it, SIGTERM leaves the socket listening and a
#      check-in sent while the responder is down is served by its next
#      start (tests/package/test-boot.sh does the same under systemd);
#   2. where systemd-analyze exists: "systemd-analyze verify" passes for
#      every unit (rendered as make install renders them) and "security
#      --offline" rates each service's exposure at 2.0 or less, while a
#      service without the sandbox rates above (so the check can fail).

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

udid=00008110-000A1B2C3D4E5F60
token=$(openssl rand -base64 32)

# ---- 1. socket activation ----
if command -v systemd-socket-activate >/dev/null; then
	it_start
	it_stop_responder
	rm -f "$IT_SOCK"
	IT_RESPONDER_CMD=("$(command -v systemd-socket-activate)" -l "$IT_SOCK"
	    "$PM_BUILD/picomdm-fcgi" --db "$IT_DB" --device-ca
	    "$IT_CERTS/ca.pem" --api-key-file "$IT_DIR/api.key" --workers 2
	    --log-level debug)
	it_start_responder
	put_raw /healthz -X GET
	expect_status 200 "socket-activated: healthz 200"
	if grep -q 'serving fd 3 (socket activation)' "$IT_DIR/fcgi.log"; then
		pass "the responder serves the passed socket (fd 3)"
	else
		fail "the responder serves the passed socket (fd 3)" \
		    "$(grep serving "$IT_DIR/fcgi.log")"
	fi
	checkin "$(auth_plist "$udid" SYSTEMD0001)" device1
	expect_status 200 "socket-activated: Authenticate"
	checkin "$(token_plist "$udid" "$token")" device1
	expect_status 200 "socket-activated: TokenUpdate"
	expect_jq "$(ctl show "$udid")" '.enrollments[0].enabled' true \
	    "socket-activated: the enrollment is stored"

	# ---- 1b. stop and start again on the socket systemd keeps ----
	it_stop_responder
	rm -f "$IT_SOCK"
	IT_RESPONDER_CMD=(/usr/bin/python3 "$PM_ROOT/tests/integration/sockholder.py"
	    "$IT_SOCK" "$PM_BUILD/picomdm-fcgi" --db "$IT_DB" --device-ca
	    "$IT_CERTS/ca.pem" --api-key-file "$IT_DIR/api.key" --workers 2)
	serving=$(grep -c 'picomdm-fcgi serving' "$IT_DIR/fcgi.log" || true)
	it_start_responder
	holder=$(head -n 1 "$IT_DIR/fcgi.pid")
	child=$(pgrep -P "$holder" | head -n 1 || true)
	[[ -n $child ]] || it_abort "setup: sockholder started picomdm-fcgi"
	# A stop of a serving responder, not of one still starting up (the
	# holder's socket accepts before the responder has begun).
	for _ in $(seq 100); do
		(($(grep -c 'picomdm-fcgi serving' "$IT_DIR/fcgi.log" ||
		    true) > serving)) && break
		sleep 0.1
	done
	kill -TERM "$child"
	pm_wait_gone "$child" 10 || it_abort "setup: picomdm-fcgi stops on SIGTERM"
	# The holder starts it again a second later; this waits in the backlog.
	checkin "$(token_plist "$udid" "$token")" device1
	expect_status 200 \
	    "a check-in sent while stopped is served by the next start"
	if grep -q 'sockholder: exit 0 listening' "$IT_DIR/fcgi.log"; then
		pass "SIGTERM leaves the passed socket listening (no POLLHUP for systemd)"
	else
		fail "SIGTERM leaves the passed socket listening (no POLLHUP for systemd)" \
		    "$(grep sockholder: "$IT_DIR/fcgi.log" | head -n 2)"
	fi
	expect_jq "$(ctl show "$udid")" '.enrollments[0].token_update_tally' 2 \
	    "both TokenUpdates stored across the restart"
else
	IT_MAIN_PID=$BASHPID
	fail "setup: no systemd-socket-activate (package systemd, PM_PACKAGES in scripts/lib.sh): part 1 not run"
fi

# ---- 2. the units ----
if ! command -v systemd-analyze >/dev/null; then
	it_abort "setup: no systemd-analyze (package systemd, PM_PACKAGES in scripts/lib.sh): part 2 not run"
fi
units=$(mktemp -d "${TMPDIR:-/tmp}/picomdm-units.XXXXXX")
trap 'rm -rf "$units"; it_cleanup' EXIT
for f in "$PM_ROOT"/systemd/*; do
	case $f in
	*.in)
		sed -e "s|@sbindir[@]|$PM_BUILD|g" -e "s|@bindir[@]|$PM_BUILD|g" \
		    "$f" >"$units/$(basename "$f" .in)" ;;
	*) cp "$f" "$units/" ;;
	esac
done
for u in picomdm-fcgi.socket picomdm-fcgi.service picomdm-prune.service \
    picomdm-prune.timer picomdm-notify.service picomdm-dep.service \
    picomdm-vpp.service picomdm-vpp.timer; do
	[[ -f $units/$u ]] || fail "systemd/ has $u"
done
if out=$(cd "$units" && systemd-analyze verify --man=no ./*.service \
    ./*.socket ./*.timer 2>&1); then
	pass "systemd-analyze verify passes for every unit"
else
	fail "systemd-analyze verify passes for every unit" \
	    "$(tr '\n' ' ' <<<"$out")"
fi

# exposure UNIT_FILE: systemd-analyze's overall exposure, e.g. 0.4.
exposure() {
	(cd "$(dirname "$1")" && systemd-analyze security --offline=yes \
	    "./$(basename "$1")" 2>/dev/null) |
	    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) .*/\1/p'
}
for u in picomdm-fcgi.service picomdm-prune.service picomdm-notify.service \
    picomdm-dep.service picomdm-vpp.service; do
	e=$(exposure "$units/$u")
	if [[ -n $e ]] && awk -v e="$e" 'BEGIN { exit !(e <= 2.0) }'; then
		pass "$u: exposure $e (2.0 or less)"
	else
		fail "$u: exposure 2.0 or less" "got '$e'"
	fi
done
# The same service without its sandbox: the check above can fail.
sed -n '1,/^# Sandbox/p' "$units/picomdm-fcgi.service" >"$units/bare.service"
e=$(exposure "$units/bare.service")
if [[ -n $e ]] && awk -v e="$e" 'BEGIN { exit !(e > 2.0) }'; then
	pass "without the sandbox the exposure is $e (above 2.0)"
else
	fail "without the sandbox the exposure is above 2.0" "got '$e'"
fi

it_done
