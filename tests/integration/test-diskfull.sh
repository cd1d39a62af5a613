#!/usr/bin/env bash
#
# test-diskfull.sh - the store's file system fills up: a write that no
# longer fits is answered 503 with Retry-After on device and API paths
# alike ("unavailable", not "internal error"), the cause is logged by
# name, nothing is half-written, the responder stays up, and it serves
# writes again once space is freed.
#
# The store lives on a 3 MiB tmpfs (mount needs root; the test says so
# and runs no case without it), filled by API enqueues of a profile of
# 32 KiB; space is freed by growing the tmpfs (mount -o remount).

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"

if ((EUID != 0)); then
	echo "# test-diskfull: skipped, mounting a tmpfs needs root"
	exit 0
fi
LG=$PM_BUILD/tests/loadgen

IT_RESPONDER_ARGS=(--log-level info)
it_start
[[ -x $LG ]] || it_abort "setup: $LG not built"
it_stop_responder
rm -rf "$IT_DB"
mkdir -p "$IT_DB"
mount -t tmpfs -o size=3m,mode=0700 picomdm-test "$IT_DB" ||
    it_abort "setup: mount -t tmpfs $IT_DB"
trap 'rc=$?; umount -l "$IT_DB" 2>/dev/null; it_cleanup "$rc"' EXIT
it_start_responder
fcgi_pid=$(head -n 1 "$IT_DIR/fcgi.pid")

udid=00008120-D15CF0110000000A
checkin "$(auth_plist "$udid" DISKFULL001)" device1
expect_status 200 "Authenticate on the small store"
checkin "$(token_plist "$udid" "$(openssl rand -base64 32)")" device1
expect_status 200 "TokenUpdate on the small store"

# Fill it: enqueues of a 32 KiB profile until they no longer fit.
cmd=$(it_file profile.json)
printf '{"request_type":"InstallProfile","Payload":"%s"}\n' \
    "$(head -c 32768 /dev/urandom | base64 -w 0)" >"$cmd"
out=$("$LG" --port "$IT_PORT" --tls --cacert "$IT_CERTS/server-ca.pem" \
    --cert "$IT_CERTS/devices/device1.pem" \
    --key "$IT_CERTS/devices/device1.key" --method POST \
    --path "/api/v1/enqueue/$udid" --content-type application/json \
    --header "Authorization: Bearer $(cat "$IT_DIR/api.key")" \
    --body "$cmd" --connections 4 --requests 300 --timeout 20000 2>&1) ||
    true
echo "# loadgen: $out"
n200=$(jq '.status["200"] // 0' <<<"$out" 2>/dev/null) || n200=0
n503=$(jq '.status["503"] // 0' <<<"$out" 2>/dev/null) || n503=0
if ((n200 > 10 && n503 > 0)); then
	pass "enqueues fill the file system: $n200 stored, then $n503 refused 503"
else
	fail "enqueues fill the file system, then 503" "$out"
fi
expect_eq "$(jq -c '.status | keys - ["200", "503"]' <<<"$out" 2>/dev/null)" \
    '[]' "no enqueue answered anything but 200 or 503 (no 500)"
expect_eq "$(jq '.errors.timeout' <<<"$out" 2>/dev/null)" 0 \
    "every enqueue answered"

# Take what space is left, then one more write of each kind. (LMDB
# reuses pages freed by earlier commits, so a small write may still fit on
# a full file system; a 64 KiB command or report cannot.)
dd if=/dev/zero of="$IT_DB/filler" bs=4k 2>/dev/null || true
queued=$(ctl queue "$udid" | jq ".queue | length") || queued=
expect_eq "$queued" "$n200" "the queue holds every enqueue answered 200"
before=$(db_digest)
api POST "/api/v1/enqueue/$udid" --data-binary "@$cmd"
expect_api_error 503 "API enqueue on a full file system: 503" "file system full"
expect_body_jq .error unavailable "the API error says unavailable"
if grep -qi '^Retry-After: [1-9][0-9]*' "$HEADERS"; then
	pass "API 503 carries Retry-After"
else
	fail "API 503 carries Retry-After" "$(tr -d '\r' <"$HEADERS" | head -n 5 | tr '\n' ' ')"
fi
report=$(it_file report.plist)
{
	printf '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n<dict>\n'
	printf '\t<key>CommandUUID</key>\n\t<string>%s</string>\n' \
	    "$(ctl queue "$udid" | jq -r ".queue[0].command_uuid")"
	printf '\t<key>Pad</key>\n\t<string>'
	head -c 65536 /dev/zero | tr '\0' 'p'
	printf '</string>\n\t<key>Status</key>\n\t<string>Acknowledged</string>\n'
	printf '\t<key>UDID</key>\n\t<string>%s</string>\n</dict>\n</plist>\n' "$udid"
} >"$report"
connect "$report" device1
expect_status 503 "device report on a full file system: 503"
if grep -qi '^Retry-After: [1-9][0-9]*' "$HEADERS"; then
	pass "device 503 carries Retry-After"
else
	fail "device 503 carries Retry-After" "$(tr -d '\r' <"$HEADERS" | head -n 5 | tr '\n' ' ')"
fi
expect_eq "$(db_digest)" "$before" "the refused requests changed nothing"
if grep -q 'commit of [0-9]* operations failed: file system full' \
    "$IT_DIR/fcgi.log"; then
	pass "the responder logs the cause by name (file system full)"
else
	fail "the responder logs the cause by name" \
	    "$(grep -i 'store' "$IT_DIR/fcgi.log" | tail -n 2 | tr '\n' ' ')"
fi
if pm_pid_cmd_has "$fcgi_pid" picomdm-fcgi; then
	pass "the responder stays up"
else
	fail "the responder stays up" "pid $fcgi_pid gone"
fi

put_raw /healthz -X GET
expect_status 503 "healthz: 503 while the file system is full"
if grep -q 'file system full' "$BODY"; then
	pass "healthz says why: file system full"
else
	fail "healthz says why: file system full" "$(head -c 200 "$BODY")"
fi

api GET /api/v1/metrics
n=$(sed -n 's/^picomdm_store_commit_failures_total{cause="nospc"} \([0-9]*\)$/\1/p' "$BODY")
if [[ $STATUS == 200 && ${n:-0} -ge 1 ]]; then
	pass "/metrics counts the commits the full file system refused ($n)"
else
	fail "/metrics counts the commits the full file system refused" \
	    "status $STATUS, nospc '${n:-}'"
fi

# Free space: the store serves writes again without a restart.
mount -o remount,size=64m "$IT_DB" || it_abort "setup: remount $IT_DB"
checkin "$(token_plist "$udid" "$(openssl rand -base64 32)")" device1
expect_status 200 "device TokenUpdate once space is freed"
api POST "/api/v1/enqueue/$udid" --data-binary "@$cmd"
expect_status 200 "API enqueue once space is freed"
rm -f "$IT_DB/filler"
connect "$report" device1
expect_status 200 "device report once space is freed"
expect_eq "$(ctl queue "$udid" | jq ".queue | length")" "$queued" \
    "the queue holds every enqueue answered 200, one more, one fewer"
expect_eq "$(head -n 1 "$IT_DIR/fcgi.pid")" "$fcgi_pid" \
    "by the same responder process"
if grep -q 'commits succeed again' "$IT_DIR/fcgi.log"; then
	pass "the responder logs that commits succeed again"
else
	fail "the responder logs that commits succeed again"
fi
put_raw /healthz -X GET
expect_status 200 "healthz: 200 again once a write is stored"
expect_exit 0 "picomdmctl check is clean" ctl check

it_done
