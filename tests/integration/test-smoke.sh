#!/usr/bin/env bash
#
# test-smoke.sh - one device, its own TLS client certificate, through real
# nginx: Authenticate, TokenUpdate, CheckOut, with the stored state checked
# after each step with picomdmctl.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

it_start

udid=00008110-0001A2B3C4D5E6F7
serial=SMOKE0000001
token=$(openssl rand -base64 32)
token_hex=$(base64 -d <<<"$token" | od -An -tx1 | tr -d ' \n')

checkin "$(auth_plist "$udid" "$serial")" device1
expect_status 200 "Authenticate accepted"
expect_eq "$(wc -c <"$BODY")" 0 "Authenticate answered with an empty body"

if show=$(ctl show "$udid"); then
	pass "picomdmctl show finds the device by UDID"
else
	fail "picomdmctl show finds the device by UDID" "exit $?"
fi
expect_jq "$show" .device.udid "$udid" "device UDID stored"
expect_jq "$show" .device.serial_number "$serial" "serial number stored"
expect_jq "$show" .device.product_name iPhone14,5 "product name stored"
expect_jq "$show" .device.os_version 17.5.1 "OS version stored"
expect_jq "$show" '.enrollments[0].id' "$udid" "device channel enrollment"
expect_jq "$show" '.enrollments[0].type' Device "enrollment type Device"
expect_jq "$show" '.enrollments[0].enabled' false \
    "enrollment disabled until the first TokenUpdate"
expect_jq "$(ctlok show "$serial")" .device.udid "$udid" \
    "picomdmctl show finds the device by serial number"

checkin "$(token_plist "$udid" "$token")" device1
expect_status 200 "TokenUpdate accepted"
show=$(ctl show "$udid" 2>&1) || true
expect_jq "$show" '.enrollments[0].enabled' true \
    "enrollment enabled by TokenUpdate"
expect_jq "$show" '.enrollments[0].topic' "$IT_TOPIC" "topic stored"
expect_jq "$show" '.enrollments[0].token.length' 32 "push token length"
expect_jq "$show" '.enrollments[0].token.sha256' "$(sha256_b64 "$token")" \
    "push token stored exactly (SHA-256)"
expect_jq "$show" '.enrollments[0].token_update_tally' 1 \
    "first TokenUpdate counted"
expect_jq "$show" '[.enrollments[0].messages[].message] | join(",")' \
    Authenticate,TokenUpdate "raw messages kept in order"
if grep -qi -e "$token_hex" -e "$token" <<<"$show"; then
	fail "picomdmctl show does not reveal the push token"
else
	pass "picomdmctl show does not reveal the push token"
fi
if ctl devices | grep -q "^${udid}[[:space:]]"; then
	pass "picomdmctl devices lists the device"
else
	fail "picomdmctl devices lists the device" "$(ctl devices 2>&1 | head -3)"
fi

checkin "$(checkout_plist "$udid")" device1
expect_status 200 "CheckOut accepted"
expect_jq "$(ctlok show "$udid")" '.enrollments[0].enabled' false \
    "enrollment disabled by CheckOut"

expect_exit 1 "picomdmctl show of an unknown device exits 1" \
    ctl show 00000000-0000000000000000

it_done
