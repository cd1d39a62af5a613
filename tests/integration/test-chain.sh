#!/usr/bin/env bash
#
# test-chain.sh - a three-level device CA (root -> intermediate -> device,
# scripts/mkcerts' ca.pem -> device-int-ca.pem -> devices/chained.pem), on
# both identity paths, TLS client certificate (nginx forwards the leaf
# only) and Mdm-Signature (the CMS carries the intermediate), with the
# same file as nginx's ssl_client_certificate and picomdm-fcgi's
# --device-ca, as picomdm-fcgi(8) and nginx/README.md say:
#
#   - the root alone: both paths refused alike, 403, naming the missing
#     intermediate;
#   - root + intermediate: both paths accepted, for devices of the
#     intermediate and of the root.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

it_start

int=$IT_CERTS/device-int-ca.pem
want_reason="certificate issued by CN=picomdm demo device intermediate CA,O=picomdm demo, which is not in --device-ca"
udid=00008110-000C4A1B2C3D4E5F
serial=CHAIN0000001

# What the device sends over TLS: its certificate and the intermediate.
cat "$IT_CERTS/devices/chained.pem" "$int" >"$IT_DIR/chained-full.pem"

# checkin_tls FILE CERTFILE: a check-in with client certificate CERTFILE.
checkin_tls() {
	put_raw /mdm/checkin --cert "$2" --key "$IT_CERTS/devices/chained.key" \
	    -H "Content-Type: $IT_CHECKIN_TYPE" --data-binary "@$1"
}

# checkin_sig FILE: a check-in signed by the chained device, the
# intermediate included in the CMS (as a device's identity would carry
# it), no client certificate.
checkin_sig() {
	local sig
	sig=$(openssl cms -sign -binary -in "$1" -outform DER \
	    -signer "$IT_CERTS/devices/chained.pem" \
	    -inkey "$IT_CERTS/devices/chained.key" -certfile "$int" |
	    base64 -w 0) || it_abort "openssl cms -sign"
	checkin "$1" none -H "Mdm-Signature: $sig"
}

# last_reason: the reason of the responder's last refusal.
last_reason() {
	grep 'status=403' "$IT_DIR/fcgi.log" | tail -n 1 |
	    sed -n 's/.*reason="\(.*\)"$/\1/p'
}

# 1. --device-ca and ssl_client_certificate hold the root only.
auth=$(auth_plist "$udid" "$serial")
before=$(db_digest)
checkin_tls "$auth" "$IT_DIR/chained-full.pem"
expect_status 403 "root only: TLS check-in of an intermediate's device refused"
expect_eq "$(last_reason)" "$want_reason" \
    "root only, TLS: the refusal names the missing intermediate"
checkin_sig "$auth"
expect_status 403 \
    "root only: Mdm-Signature check-in carrying the intermediate refused alike"
expect_eq "$(last_reason)" "$want_reason" \
    "root only, Mdm-Signature: the same refusal"
expect_eq "$(db_digest)" "$before" "root only: nothing written"

# 2. Both hold root + intermediate (one file for nginx and responder).
bundle=$IT_DIR/device-ca-bundle.pem
cat "$IT_CERTS/ca.pem" "$int" >"$bundle"
it_stop_responder
IT_RESPONDER_CMD+=(--device-ca "$bundle")
it_start_responder
stop_nginx "$IT_DIR/nginx"
render_nginx_conf "$PM_ROOT/nginx/picomdm.conf.in" \
    "$IT_DIR/nginx/nginx.conf" PREFIX="$IT_DIR/nginx" \
    PORT="$IT_PORT" ERROR_LOG_LEVEL=info \
    ACCESS_LOG="$IT_DIR/nginx/access.log" \
    SERVER_CERT="$IT_CERTS/server.pem" SERVER_KEY="$IT_CERTS/server.key" \
    DEVICE_CA="$bundle" SOCKET="$IT_SOCK"
(start_nginx "$IT_DIR/nginx" "$IT_DIR/nginx/nginx.conf") ||
    it_abort "nginx did not start again on port $IT_PORT"
IT_PIDS+=("$(head -n 1 "$IT_DIR/nginx/nginx.pid")")

checkin_tls "$auth" "$IT_CERTS/devices/chained.pem"
expect_status 200 "root + intermediate: TLS check-in (leaf only) accepted"
checkin_tls "$(token_plist "$udid" "$(openssl rand -base64 32)")" \
    "$IT_DIR/chained-full.pem"
expect_status 200 "root + intermediate: TLS with the chain sent accepted"
checkin_sig "$(token_plist "$udid" "$(openssl rand -base64 32)")"
expect_status 200 "root + intermediate: Mdm-Signature check-in accepted"
expect_jq "$(ctl show "$udid" 2>&1)" '.enrollments[0].token_update_tally' 2 \
    "both TokenUpdates stored for the intermediate's device"
checkin "$(auth_plist 00008110-000C4A1B2C3D4E60 CHAIN0000002)" device1
expect_status 200 "root + intermediate: a device of the root still accepted"
checkin_signed "$(auth_plist 00008110-000C4A1B2C3D4E61 CHAIN0000003)" device2
expect_status 200 \
    "root + intermediate: a root device's Mdm-Signature still accepted"
checkin "$(auth_plist 00008110-000C4A1B2C3D4E62 CHAIN0000004)" none \
    -H "Mdm-Signature: $(mdm_signature "$auth" foreign)"
expect_status 400 "a foreign device's signature over another body: refused"
sigf=$(auth_plist 00008110-000C4A1B2C3D4E63 CHAIN0000005)
checkin_signed "$sigf" foreign
expect_status 403 "a foreign CA's device is still refused"
expect_eq "$(last_reason)" \
    "certificate issued by CN=picomdm demo other CA,O=picomdm demo, which is not in --device-ca" \
    "the foreign refusal names the foreign CA"

it_done
