#!/usr/bin/env bash
#
# test-nginx.sh - the nginx template on its own, in front of the
# do-nothing responder (tests/fcgi-null): TLS with optional device client
# certificates, refusal of certificates nginx cannot verify, the
# locations and their body caps.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

PICOMDM_IT_RESPONDER=null
it_start

small=$(it_file small.plist)
plist_write "$small" MessageType=Authenticate UDID=X Topic="$IT_TOPIC"

# body FILE BYTES: a body of exactly BYTES bytes.
body() {
	head -c "$2" /dev/zero | tr '\0' x >"$1"
	printf '%s\n' "$1"
}

checkin "$small" device1
expect_status 200 "check-in with a device certificate reaches the responder"
checkin "$small" none
expect_status 200 "check-in without a client certificate (Mdm-Signature path)"
checkin "$small" foreign
expect_status 400 "certificate from another CA refused by nginx"
checkin "$small" expired
expect_status 400 "expired device certificate refused by nginx"

connect "$small" device1
expect_status 200 "/mdm/connect reaches the responder"
put_raw /mdm -H "Content-Type: $IT_CHECKIN_TYPE" --data-binary "@$small"
expect_status 200 "/mdm (single-URL layout) reaches the responder"
put_raw /api/v1/enrollments -X GET
expect_status 200 "/api/ reaches the responder"
put_raw /mdm/checkin/../../etc/passwd --path-as-is --data-binary "@$small"
expect_status 404 "paths outside the locations are 404"
put_raw /index.html -X GET
expect_status 404 "no static files"

checkin "$(body "$(it_file 64k)" 65536)" device1
expect_status 200 "/mdm/checkin takes 64 KiB"
checkin "$(body "$(it_file 64k1)" 65537)" device1
expect_status 413 "/mdm/checkin refuses 64 KiB + 1"
checkin "$(it_file 64k1)" device1 -H "Transfer-Encoding: chunked"
expect_status 413 "/mdm/checkin refuses 64 KiB + 1 sent chunked"
connect "$(body "$(it_file 4m)" 4194304)" device1
expect_status 200 "/mdm/connect takes 4 MiB"
connect "$(body "$(it_file 4m1)" 4194305)" device1
expect_status 413 "/mdm/connect refuses 4 MiB + 1"
put_raw /mdm --data-binary "@$(it_file 4m1)"
expect_status 413 "/mdm refuses 4 MiB + 1"
put_raw /api/v1/x --data-binary "@$(body "$(it_file 8m1)" 8388609)"
expect_status 413 "/api/ refuses 8 MiB + 1"

it_done
