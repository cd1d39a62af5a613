#!/usr/bin/env bash
#
# test-api.sh - the operator API through real nginx and TLS: the API key
# (missing, wrong scheme, wrong key), unknown paths and wrong methods,
# every endpoint, enrollment filters and paging, enqueue in both forms
# with per-enrollment outcomes, bad JSON and wrong types against Apple's
# schema, query parameters, the JSON 413, percent-encoded IDs with ':'
# and '@', cancelling, a command's targets, result history with paging
# and one result decoded.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"

it_start

# A responder with a 1 MiB API cap, below nginx's 8m, so that the 413 is
# the responder's JSON one.
printf 'api_max = 1m\n' >"$IT_DIR/api.conf"
it_stop_responder
IT_RESPONDER_CMD+=(--config "$IT_DIR/api.conf")
it_start_responder

udid1=00008110-000A1B2C3D4E5F60
udid2=00008110-000F6E5D4C3B2A10
serial1=APITEST00001
serial2=APITEST00002
shared=student.42@school.example.edu
uid1="$udid1:$shared"

# ---- authentication ----

put_raw /api/v1/enrollments -X GET
expect_api_error 401 "no Authorization: 401" "Bearer"
put_raw /api/v1/enrollments -X GET -H "Authorization: Basic dXNlcjpwYXNz"
expect_api_error 401 "Basic scheme: 401" "Bearer"
put_raw /api/v1/enrollments -X GET -H "Authorization: Bearer wrong-key"
expect_api_error 403 "wrong key: 403" "wrong API key"
put_raw /api/v1/enrollments -X GET \
    -H "Authorization: Bearer $(cat "$IT_DIR/api.key")x"
expect_api_error 403 "key with an extra character: 403"
put_raw /api/v1/nope -X GET
expect_api_error 401 "unknown path without a key: 401 (nothing revealed)"
put_raw /api/v1/enrollments -X GET \
    -H "Authorization: bearer $(cat "$IT_DIR/api.key")"
expect_status 200 "scheme name is case-insensitive"
# The key is checked before the body is read: without it a body over
# api_max (1 MiB here; nginx takes 8m) gets 401 or 403, not 413, so
# api_max is not learnt and no worker holds the body.
head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$(it_file big2m)"
put_raw /api/v1/nope -X PUT --data-binary "@$(it_file big2m)"
expect_api_error 401 "2 MiB body without a key: 401, not 413" "Bearer"
put_raw "/api/v1/enqueue/$udid1" -X PUT --data-binary "@$(it_file big2m)" \
    -H "Authorization: Bearer wrong-key"
expect_api_error 403 "2 MiB body with a wrong key: 403, not 413" \
    "wrong API key"
put_raw /api/v1/enrollments -X GET --data-binary "@$(it_file big2m)"
expect_api_error 401 "2 MiB GET body without a key: 401, not 413"

# ---- routing ----

api GET /api/v1/nope
expect_api_error 404 "unknown endpoint: 404"
api GET /api/v2/enrollments
expect_api_error 404 "unknown version: 404"
api GET /api/v1/enrollments/a/b/c
expect_api_error 404 "too many segments: 404"
api POST /api/v1/enrollments
expect_api_error 405 "POST enrollments: 405"
api GET /api/v1/enqueue/x
expect_api_error 405 "GET enqueue: 405"
api PUT /api/v1/queue/x
expect_api_error 405 "PUT queue: 405"
api GET /api/v1/queue/x/y
expect_api_error 405 "GET one queued command: 405"
api DELETE /api/v1/results/x
expect_api_error 405 "DELETE results: 405"
# allow_is WANT WHAT: the last answer's Allow header is WANT.
allow_is() {
	expect_eq "$(sed -n 's/^[Aa]llow: *//p' "$HEADERS" | tr -d '\r')" "$1" "$2"
}
allow_is "GET, HEAD" "  with Allow: GET, HEAD"
api PUT /api/v1/queue/x
allow_is "GET, HEAD, DELETE" "PUT queue: Allow: GET, HEAD, DELETE"
api GET /api/v1/queue/x/y
allow_is DELETE "GET one queued command: Allow: DELETE (no HEAD without GET)"

# ---- HEAD ----

# header_is NAME WANT WHAT: the last answer's header NAME is WANT.
header_is() {
	expect_eq "$(sed -n "s/^$1: *//Ip" "$HEADERS" | tr -d '\r')" "$2" "$3"
}
# HEAD is served wherever GET is (RFC 9110, 9.3.2): GET's status and
# headers, Content-Length included, and no body. curl -I reads no body.
for p in enrollments enrollments/nope pushcert; do
	api GET "/api/v1/$p"
	want=$STATUS len=$(stat -c %s "$BODY")
	api HEAD "/api/v1/$p" -I
	expect_status "$want" "HEAD $p: GET's status $want"
	header_is Content-Length "$len" "  and GET's Content-Length ($len)"
done
api HEAD /api/v1/enrollments -I
header_is Content-Type application/json "HEAD enrollments: GET's Content-Type"
api HEAD "/api/v1/enqueue/x" -I
expect_status 405 "HEAD enqueue (no GET): 405"
allow_is "PUT, POST" "  with Allow: PUT, POST"
api HEAD /api/v1/queue/x/y -I
expect_status 405 "HEAD one queued command (no GET): 405"
put_raw /api/v1/enrollments -X HEAD -I
expect_status 401 "HEAD without a key: 401"
# What the responder itself sends to a HEAD, straight over FastCGI:
# the headers with GET's Content-Length, and not one byte of body.
api GET /api/v1/enrollments
len=$(stat -c %s "$BODY")
out=$(/usr/bin/python3 - "$IT_SOCK" "$(cat "$IT_DIR/api.key")" <<'PY'
import socket, struct, sys
def rec(t, c):
    pad = (8 - len(c) % 8) % 8
    return struct.pack(">BBHHBB", 1, t, 1, len(c), pad, 0) + c + b"\0" * pad
def nv(k, v):
    return bytes([len(k)]) + bytes([len(v)]) + k + v
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(5)
p = {"REQUEST_METHOD": "HEAD", "REQUEST_URI": "/api/v1/enrollments",
     "DOCUMENT_URI": "/api/v1/enrollments", "CONTENT_LENGTH": "0",
     "HTTP_AUTHORIZATION": "Bearer " + sys.argv[2]}
msg = rec(1, struct.pack(">HB5x", 1, 0))
msg += rec(4, b"".join(nv(k.encode(), v.encode()) for k, v in p.items()))
s.sendall(msg + rec(4, b"") + rec(5, b""))
out = buf = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    buf += d
    while len(buf) >= 8:
        _, t, _, cl, pl, _ = struct.unpack(">BBHHBB", buf[:8])
        if len(buf) < 8 + cl + pl:
            break
        if t == 6:
            out += buf[8:8 + cl]
        buf = buf[8 + cl + pl:]
head, _, body = out.partition(b"\r\n\r\n")
cl = [h.split(b":", 1)[1].strip().decode() for h in head.split(b"\r\n")
      if h.lower().startswith(b"content-length:")]
print(head.split(b"\r\n")[0].decode(), cl[0] if cl else "-", len(body))
PY
)
expect_eq "$out" "Status: 200 OK $len 0" \
    "the responder answers HEAD with GET's Content-Length and no body"
api GET /api/v1/enrollments/
expect_status 200 "a trailing slash is ignored"

# ---- enrollments ----

api GET /api/v1/enrollments
expect_status 200 "empty store: list answers"
expect_body_jq '.enrollments | type == "array" and length == 0' true "empty store: no enrollments"
expect_body_jq .next null "empty store: next is null"

enroll "$udid1" device1 "$serial1"
enroll "$udid2" device2 "$serial2"
checkin "$(token_plist "$udid1" "$(openssl rand -base64 32)" \
    UserID=FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF UserShortName="$shared" \
    UserLongName="Student Forty-Two")" device1
expect_status 200 "Shared iPad user channel enrolled"

api GET /api/v1/enrollments
expect_status 200 "list enrollments"
expect_body_jq '[.enrollments[].id] | join(",")' "$udid1,$uid1,$udid2" \
    "all three in ID order"
expect_body_jq '.enrollments[0].serial_number' "$serial1" \
    "list shows the serial number"
expect_body_jq '.enrollments[1].serial_number' "$serial1" \
    "a user channel shows its device's serial"
expect_body_jq '.enrollments[1].type' SharediPad "user channel type"
expect_body_jq '.enrollments[0].enabled' true "enabled after TokenUpdate"
expect_body_jq '.enrollments[0] | has("token")' false \
    "the list carries no push token"
expect_body_jq .next null "one page: next is null"

# Paging: limit 1 walks all three.
ids=() after=
for _ in 1 2 3 4; do
	api GET "/api/v1/enrollments?limit=1${after:+&after=$(pct "$after")}"
	[[ $STATUS == 200 ]] || break
	ids+=("$(jq -r '.enrollments[0].id // empty' "$BODY")")
	after=$(jq -r '.next // empty' "$BODY")
	[[ -n $after ]] || break
done
expect_eq "$(IFS=,; echo "${ids[*]}")" "$udid1,$uid1,$udid2" \
    "paging with limit=1 and after visits each once"
expect_eq "$after" "" "the last page has next null"

checkin "$(checkout_plist "$udid2")" device2
expect_status 200 "CheckOut of the second device"
api GET "/api/v1/enrollments?enabled=false"
expect_body_jq '[.enrollments[].id] | join(",")' "$udid2" "filter enabled=false"
api GET "/api/v1/enrollments?enabled=true&type=device"
expect_body_jq '[.enrollments[].id] | join(",")' "$udid1" \
    "filter enabled=true and type=device"
api GET "/api/v1/enrollments?type=SharediPad"
expect_body_jq '[.enrollments[].id] | join(",")' "$uid1" "filter type=SharediPad"
api GET "/api/v1/enrollments?serial=$serial1"
expect_body_jq '.enrollments | length' 2 "filter serial: device and its user"
api GET "/api/v1/enrollments?topic=$IT_TOPIC&limit=1000"
expect_body_jq '.enrollments | length' 3 "filter topic"
api GET "/api/v1/enrollments?topic=com.apple.mgmt.other"
expect_body_jq '.enrollments | type == "array" and length == 0' true "filter on another topic"
all3="$udid1,$uid1,$udid2"
api GET "/api/v1/enrollments?seen_since=2000-01-01T00:00:00Z"
expect_status 200 "seen_since in the past (Z): 200"
expect_body_jq '[.enrollments[].id] | join(",")' "$all3" "seen_since in the past"
api GET "/api/v1/enrollments?seen_since=2099-01-01T00:00:00%2B01:00"
expect_status 200 "seen_since with a + offset: 200"
expect_body_jq '.enrollments | type == "array" and length == 0' true \
    "seen_since in the future: an empty list"
# 30 minutes ago, written as local time at +01:00 (so the digits say 30
# minutes ahead of UTC): all three when the offset is applied, none when
# it is ignored.
api GET "/api/v1/enrollments?seen_since=$(date -u -d '+30 min' +%Y-%m-%dT%H:%M:%S)%2B01:00"
expect_status 200 "seen_since 30 minutes ago at +01:00: 200"
expect_body_jq '[.enrollments[].id] | join(",")' "$all3" \
    "seen_since at +01:00 is read with its offset"
api GET "/api/v1/enrollments?seen_since=$(date -u -d '-30 min' +%Y-%m-%dT%H:%M:%S)-01:00"
expect_status 200 "seen_since with a - offset: 200"
expect_body_jq '.enrollments | type == "array" and length == 0' true \
    "seen_since 30 minutes ahead at -01:00: none"
api GET "/api/v1/enrollments?enabled=maybe"
expect_api_error 400 "enabled=maybe: 400" "enabled"
api GET "/api/v1/enrollments?type=Printer"
expect_api_error 400 "unknown type: 400" "type"
api GET "/api/v1/enrollments?limit=0"
expect_api_error 400 "limit=0: 400" "limit"
api GET "/api/v1/enrollments?limit=1001"
expect_api_error 400 "limit=1001: 400" "limit"
api GET "/api/v1/enrollments?seen_since=yesterday"
expect_api_error 400 "seen_since not RFC 3339: 400" "seen_since"
api GET "/api/v1/enrollments?colour=blue"
expect_api_error 400 "unknown parameter: 400" "colour"
api GET "/api/v1/enrollments?limit=1&limit=2"
expect_api_error 400 "repeated parameter: 400" "twice"
# One rule for every query parameter (picomdm-api(7), Errors): an empty
# value is 400 naming it, as is one longer than the store holds for it;
# a value at that bound is still a filter.
for q in enabled type topic seen_since serial limit after; do
	api GET "/api/v1/enrollments?$q="
	expect_api_error 400 "enrollments: an empty $q is 400" "$q: empty"
done
api GET "/api/v1/enrollments?serial"
expect_api_error 400 "enrollments: serial without = is empty: 400" \
    "serial: empty"
api GET "/api/v1/enrollments?topic=$(printf 't%.0s' {1..256})"
expect_api_error 400 "enrollments: a topic of 256 bytes is 400" \
    "topic: longer than any APNs topic (255 bytes)"
api GET "/api/v1/enrollments?topic=$(printf 't%.0s' {1..255})"
expect_body_jq '.enrollments | length' 0 \
    "enrollments: a topic of 255 bytes is a filter"
api GET "/api/v1/enrollments?serial=$(printf 's%.0s' {1..512})"
expect_api_error 400 "enrollments: a serial of 512 bytes is 400" \
    "serial: longer than any serial number (511 bytes)"
api GET "/api/v1/enrollments?serial=$(printf 's%.0s' {1..511})"
expect_body_jq '.enrollments | length' 0 \
    "enrollments: a serial of 511 bytes is a filter"
api GET "/api/v1/enrollments?after=$(printf 'A%.0s' {1..482})"
expect_api_error 400 "enrollments: an after of 482 bytes is 400" \
    "after: longer than any enrollment ID (481 bytes)"
api GET "/api/v1/enrollments?after=$(printf 'A%.0s' {1..481})"
expect_status 200 "enrollments: an after of 481 bytes is a cursor"

api GET "/api/v1/enrollments/$udid1"
expect_status 200 "one enrollment"
expect_body_jq .device.serial_number "$serial1" "device facts included"
expect_body_jq .device.product_name iPhone14,5 "product name included"
expect_body_jq '.enrollment.token.length' 32 "push token as its length"
expect_body_jq '.enrollment.token.sha256 | length' 64 "and its SHA-256"
expect_body_jq '.enrollment.push_magic | has("sha256")' true \
    "PushMagic as length and SHA-256"
expect_body_jq '.user_channels | join(",")' "$uid1" "user channels listed"
expect_body_jq .queued 0 "nothing queued yet"
api GET "/api/v1/enrollments/$(pct "$uid1")"
expect_status 200 "percent-encoded user channel ID (':' and '@')"
expect_body_jq .enrollment.user_short_name "$shared" "user channel details"
expect_body_jq .enrollment.device_id "$udid1" "user channel's device"
api GET /api/v1/enrollments/NOSUCHDEVICE
expect_api_error 404 "unknown enrollment: 404" "NOSUCHDEVICE"
# An ID longer than any enrollment's (481 bytes, 512 here: over the
# store's key too) names none: 404 as for any unknown ID, not a 500.
long=$(printf 'A%.0s' {1..512})
api GET "/api/v1/enrollments/$long"
expect_api_error 404 "enrollment ID of 512 bytes: 404" "no enrollment"
api GET "/api/v1/queue/$long"
expect_api_error 404 "queue of a 512-byte ID: 404" "no enrollment"
api DELETE "/api/v1/queue/$long"
expect_api_error 404 "cancel on a 512-byte ID: 404" "no enrollment"
api DELETE "/api/v1/queue/$long/$long"
expect_api_error 404 "cancel one on a 512-byte ID: 404" "no enrollment"
api GET "/api/v1/results/$long"
expect_api_error 404 "results of a 512-byte ID: 404" "no enrollment"
api GET "/api/v1/results/$long/1"
expect_api_error 404 "one result of a 512-byte ID: 404" "no enrollment"

# ---- enqueue, raw ----

u1=11111111-2222-4333-8444-555555555551
enqueue_raw "$udid1" "$u1" ProfileList
expect_status 200 "raw enqueue to one enrollment"
expect_body_jq .command_uuid "$u1" "answer names the CommandUUID"
expect_body_jq .request_type ProfileList "answer names the RequestType"
expect_body_jq ".status[\"$udid1\"].status" queued "per-ID status queued"
api PUT "/api/v1/enqueue/$udid2" --data-binary "@$(it_file "cmd-$u1.plist")"
expect_api_error 409 "same CommandUUID again: 409" "$u1"

u2=11111111-2222-4333-8444-555555555552
enqueue_raw "$udid1,NOSUCH,$(pct "$uid1")" "$u2" ProfileList
expect_status 207 "some IDs unknown: 207"
expect_body_jq ".status[\"$udid1\"].status" queued "known device queued"
expect_body_jq ".status[\"$uid1\"].status" queued "user channel queued"
expect_body_jq '.status.NOSUCH.status' "unknown enrollment" \
    "unknown ID reported"

u3=11111111-2222-4333-8444-555555555553
enqueue_raw "NOSUCH,OTHER" "$u3" ProfileList
expect_api_error 404 "no ID known: 404"
expect_body_jq '.status.OTHER.status' "unknown enrollment" \
    "404 still gives per-ID status"
api GET "/api/v1/commands/$u3"
expect_api_error 404 "a command queued nowhere is not kept"

# IDs holding '/', ',' and '%' are addressed percent-encoded: the API reads
# the raw path, so an encoded '/' or ',' is part of the ID, not a separator.
u3b=11111111-2222-4333-8444-55555555555b
enqueue_raw "$(pct 'odd/id,with%chars'),NOSUCH2" "$u3b" ProfileList
expect_body_jq '.status["odd/id,with%chars"].status' "unknown enrollment" \
    "an encoded '/', ',' and '%' stay inside one ID"
expect_body_jq '.status | length' 2 "two IDs, not four"

api PUT "/api/v1/enqueue/$udid1" --data-binary "bplist00garbage"
expect_api_error 400 "binary plist refused" "not an XML plist"
api PUT "/api/v1/enqueue/$udid1" --data-binary \
    "@$(cmd_plist 11111111-2222-4333-8444-55555555555f NoSuchCommand)"
expect_api_error 400 "unknown RequestType refused" "NoSuchCommand"
api PUT "/api/v1/enqueue/$udid1" --data-binary \
    "@$(cmd_plist 11111111-2222-4333-8444-55555555555e DeviceInformation \
    '<key>Queries</key><string>UDID</string>')"
expect_api_error 400 "raw plist with a wrong key type" \
    "Command.Queries: want array, got string"
api PUT "/api/v1/enqueue/$udid1" -H "Content-Length: 0"
expect_api_error 400 "empty body refused" "empty body"
api PUT "/api/v1/enqueue/$udid1," --data-binary "@$(it_file "cmd-$u1.plist")"
expect_api_error 400 "empty ID in the list refused" "empty"

# ---- enqueue, JSON ----

api POST "/api/v1/enqueue/$udid1?priority=7" -H 'Content-Type: application/json' \
    --data-binary '{"request_type": "DeviceInformation",
    "Queries": ["UDID", "SerialNumber"]}'
expect_status 200 "JSON enqueue"
ju=$(jq -r .command_uuid "$BODY")
expect_eq "$(grep -Ec '^[0-9A-F]{8}-[0-9A-F]{4}-7[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$' <<<"$ju")" \
    1 "a version 7 CommandUUID is made"
# Its first 48 bits are the enqueue time in ms (picomdm-api(7)): within
# a minute of now, and later commands sort after it.
ms=$((16#$(tr -d - <<<"$ju" | cut -c1-12)))
now=$(($(date +%s%3N)))
expect_eq "$((ms <= now && now - ms < 60000))" 1 \
    "the CommandUUID begins with the enqueue time"
uuids=("$ju")
for i in 1 2 3 4; do
	sleep 0.01
	api POST "/api/v1/enqueue/$udid1" -H 'Content-Type: application/json' \
	    --data-binary '{"request_type": "DeviceInformation", "Queries": ["UDID"]}'
	uuids+=("$(jq -r .command_uuid "$BODY")")
done
expect_eq "$(printf '%s\n' "${uuids[@]}" | LC_ALL=C sort -c 2>&1 && echo sorted)" \
    sorted "CommandUUIDs made later sort after earlier ones"
for i in 1 2 3 4; do # out of the queue the checks below expect
	api DELETE "/api/v1/queue/$udid1/${uuids[i]}"
	expect_status 200 "ordering check's command $i cancelled"
done
api GET "/api/v1/commands/$ju"
expect_status 200 "the JSON command is stored"
expect_body_jq '.command.Command.Queries | join(",")' UDID,SerialNumber \
    "converted plist holds the queries"
expect_body_jq '.command.CommandUUID' "$ju" "and its CommandUUID"
expect_body_jq '.raw | startswith("<?xml")' true "stored as an XML plist"

api POST "/api/v1/enqueue/$udid1" --data-binary '{"request_type": "InstallProfile",
    "command_uuid": "json-profile-1", "Payload": "PD94bWwgdmVyc2lvbj0iMS4wIj8+"}'
expect_status 200 "JSON with base64 data"
api GET /api/v1/commands/json-profile-1
expect_body_jq '.command.Command.Payload' PD94bWwgdmVyc2lvbj0iMS4wIj8+ \
    "data kept (shown as base64)"
expect_body_jq '.raw | contains("<data>")' true "sent as <data>"

api POST "/api/v1/enqueue/$udid1" --data-binary '{"request_type": '
expect_api_error 400 "truncated JSON: 400" "invalid JSON"
api POST "/api/v1/enqueue/$udid1" --data-binary '[1, 2]'
expect_api_error 400 "JSON array: 400" "JSON object"
api POST "/api/v1/enqueue/$udid1" --data-binary '{"Queries": []}'
expect_api_error 400 "no request_type: 400" "request_type"
api POST "/api/v1/enqueue/$udid1" --data-binary '{"request_type": "Reboot"}'
expect_api_error 400 "unknown request_type: 400" '"Reboot"'
api POST "/api/v1/enqueue/$udid1" --data-binary \
    '{"request_type": "DeviceInformation", "Queries": "UDID"}'
expect_api_error 400 "wrong type names the key" \
    "Queries: want array, got string"
api POST "/api/v1/enqueue/$udid1" --data-binary \
    '{"request_type": "DeviceInformation", "Queries": ["UDID", 5]}'
expect_api_error 400 "wrong item type names the index" "Queries[1]"
api POST "/api/v1/enqueue/$udid1" --data-binary \
    '{"request_type": "InstallProfile", "Payload": "***"}'
expect_api_error 400 "data that is not base64" "Payload: want base64"
api POST "/api/v1/enqueue/$udid1" --data-binary \
    '{"request_type": "InstallApplication", "iTunesStoreID": "12"}'
expect_api_error 400 "string for an integer" "iTunesStoreID: want integer"
api POST "/api/v1/enqueue/$udid1" --data-binary \
    '{"request_type": "EraseDevice", "ReturnToService": {"Enabled": 1}}'
expect_api_error 400 "nested key named by its path" \
    "ReturnToService.Enabled: want boolean"
api POST "/api/v1/enqueue/$udid1" --data-binary \
    '{"request_type": "DeviceInformation", "Queries": [], "Extra": true}'
expect_api_error 400 "unknown key refused" "Extra: unknown key"
api POST "/api/v1/enqueue/$udid1" --data-binary \
    '{"request_type": "DeviceInformation"}'
expect_api_error 400 "missing required key" "Queries: required key missing"

api POST "/api/v1/enqueue/$udid1?priority=256" --data-binary \
    '{"request_type": "ProfileList"}'
expect_api_error 400 "priority 256: 400" "priority"
# A number starts with a digit: no white space before it (strtoll would
# skip it). Empty bodies: a priority taken would end in "empty body".
for ws in 0a 0b 0c 0d 09 20; do
	api POST "/api/v1/enqueue/$udid1?priority=%${ws}5" -H "Content-Length: 0"
	expect_api_error 400 "priority=%${ws}5: 400" "priority"
done
api POST "/api/v1/enqueue/$udid1?expires=2001-01-01T00:00:00Z" \
    --data-binary '{"request_type": "ProfileList"}'
expect_api_error 400 "expiry in the past: 400" "expires"
# One rule for both forms: after now, at most ten years ahead.
for e in 9999-12-31T23:59:59Z "$(date -u -d '+3661 days' +%Y-%m-%dT%H:%M:%SZ)" 316224001; do
	api POST "/api/v1/enqueue/$udid1?expires=$e" \
	    --data-binary '{"request_type": "ProfileList"}'
	expect_api_error 400 "expires=$e, over ten years ahead: 400" \
	    "at most ten years (316224000 s) ahead"
done
api POST "/api/v1/enqueue/$udid1?expires=soon" --data-binary \
    '{"request_type": "ProfileList"}'
expect_api_error 400 "expiry not a time: 400" "expires"
api POST "/api/v1/enqueue/$udid1?push=1" --data-binary \
    '{"request_type": "ProfileList"}'
expect_api_error 400 "unknown enqueue parameter: 400" "push"
for q in priority expires nopush push_wait vpp_token; do
	api POST "/api/v1/enqueue/$udid1?$q=" --data-binary \
	    '{"request_type": "ProfileList"}'
	expect_api_error 400 "enqueue: an empty $q is 400" "$q: empty"
done
api POST "/api/v1/enqueue/$udid1?vpp_token=$(printf 'a%.0s' {1..510})" \
    --data-binary '{"request_type": "ProfileList"}'
expect_api_error 400 "enqueue: a vpp_token of 510 bytes is 400" \
    "vpp_token: longer than any token's name (509 bytes)"
api PUT "/api/v1/pushcert?force=" --data-binary '{}'
expect_api_error 400 "pushcert: an empty force is 400" "force: empty"
api POST "/api/v1/enqueue/$udid1?nopush=1&expires=3600&priority=0" \
    --data-binary '{"request_type": "ProfileList", "command_uuid": "exp-1"}'
expect_status 200 "nopush, expires and priority accepted"
# push_wait with nopush=1 would wait for a push never queued: refused,
# nothing queued.
api POST "/api/v1/enqueue/$udid1?nopush=1&push_wait=1000" \
    --data-binary '{"request_type": "ProfileList", "command_uuid": "nopush-wait"}'
expect_api_error 400 "push_wait with nopush=1: 400" \
    "push_wait: nopush=1 queues no push to wait for"
api GET /api/v1/commands/nopush-wait
expect_status 404 "  and nothing was queued"
api POST "/api/v1/enqueue/NOSUCH?nopush=1&push_wait=0" \
    --data-binary '{"request_type": "ProfileList"}'
expect_api_error 404 "push_wait=0 (no wait) with nopush=1 is taken" \
    "queued to no enrollment"

head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' >"$(it_file big.json)"
api POST "/api/v1/enqueue/$udid1" --data-binary "@$(it_file big.json)"
expect_api_error 413 "body over api_max: JSON 413" "cap"

# ---- queue ----

api GET "/api/v1/queue/$udid1"
expect_status 200 "queue of the device"
expect_body_jq '[.queue[].command_uuid] | join(",")' \
    "$ju,$u1,$u2,json-profile-1,exp-1" "queue in delivery order (priority first)"
expect_body_jq '.queue[0].priority' 7 "priority shown"
expect_body_jq '.queue[0].request_type' DeviceInformation "RequestType shown"
expect_body_jq '.queue[0].status' Queued "status Queued"
expect_body_jq '.queue[4].expires_at | length' 20 "expiry shown (RFC 3339)"
api GET "/api/v1/queue/$(pct "$uid1")"
expect_body_jq '[.queue[].command_uuid] | join(",")' "$u2" \
    "the user channel's queue is its own"
api GET /api/v1/queue/NOSUCH
expect_api_error 404 "queue of an unknown enrollment: 404"

api DELETE "/api/v1/queue/$udid1/$u1"
expect_status 200 "cancel one"
expect_body_jq .cancelled 1 "one cancelled"
api DELETE "/api/v1/queue/$udid1/$u1"
expect_api_error 404 "cancel it again: 404" "not queued"
api DELETE "/api/v1/queue/NOSUCH/$u1"
expect_api_error 404 "cancel on an unknown enrollment: 404"
api GET "/api/v1/commands/$u1"
expect_body_jq ".targets[] | select(.enrollment_id == \"$udid1\") | .status" \
    Cancelled "the command shows Cancelled for the device"

api DELETE "/api/v1/queue/$(pct "$uid1")"
expect_status 200 "cancel all of the user channel"
expect_body_jq .cancelled 1 "its one command cancelled"
api GET "/api/v1/commands/$u2"
expect_body_jq '.counts | to_entries | map("\(.key)=\(.value)") | join(",")' \
    "Queued=1,Cancelled=1" "command counts per status"
expect_body_jq '.targets | length' 2 "two targets"
expect_body_jq .next null "no next page"
# Paging the targets: counts stay over all of them.
api GET "/api/v1/commands/$u2?limit=1"
expect_body_jq '.targets | length' 1 "limit=1: one target"
expect_body_jq '[.counts[]] | add' 2 "limit=1: counts over both targets"
first=$(jq -r '.targets[0].enrollment_id' "$BODY")
expect_body_jq .next "$first" "next names the page's last target"
api GET "/api/v1/commands/$u2?limit=1&after=$(pct "$first")"
expect_body_jq '.targets | length' 1 "the second page: one target"
expect_body_jq '.targets[0].enrollment_id != "'"$first"'"' true \
    "the second page holds the other target"
expect_body_jq .next null "the second page is the last"
api GET "/api/v1/commands/$u2?after=NOSUCH"
expect_api_error 400 "after: not a target: 400" "not a target"
api GET "/api/v1/commands/$u2?limit=0"
expect_api_error 400 "limit=0: 400"
api GET "/api/v1/commands/$u2?page=2"
expect_api_error 400 "unknown query parameter: 400"
for q in limit after; do
	api GET "/api/v1/commands/$u2?$q="
	expect_api_error 400 "commands: an empty $q is 400" "$q: empty"
done
api GET "/api/v1/commands/$u2?after=$(printf 'A%.0s' {1..482})"
expect_api_error 400 "commands: an after of 482 bytes is 400" \
    "after: longer than any enrollment ID (481 bytes)"

# ---- results ----

# The device polls: it gets the first command, acknowledges it, and so on.
got=$(send "$udid1" device1 Idle)
expect_eq "$got" "$ju" "Idle gets the highest priority command"
got=$(send "$udid1" device1 Acknowledged "$ju" \
    QueryResponses:raw='<dict><key>UDID</key><string>x</string></dict>')
expect_eq "$got" "$u2" "Acknowledged gets the next"
got=$(send "$udid1" device1 Error "$u2" \
    ErrorChain:raw='<array><dict><key>ErrorCode</key><integer>12021</integer><key>ErrorDomain</key><string>MCMDMErrorDomain</string><key>LocalizedDescription</key><string>Nope</string><key>USEnglishDescription</key><string>Nope</string></dict></array>')
expect_eq "$got" json-profile-1 "Error gets the next"
got=$(send "$udid1" device1 Acknowledged json-profile-1)
expect_eq "$got" exp-1 "then the last"

api GET "/api/v1/results/$udid1"
expect_status 200 "result history"
expect_body_jq '[.results[].command_uuid] | join(",")' \
    "json-profile-1,$u2,$ju" "newest first"
expect_body_jq '.results[1].status' Error "status decoded"
expect_body_jq '.results[1].error_chain[0].code' 12021 "ErrorChain code"
expect_body_jq '.results[1].error_chain[0].domain' MCMDMErrorDomain \
    "ErrorChain domain"
expect_body_jq '.results[1].error_chain[0].us_english_description' Nope \
    "ErrorChain description"
expect_body_jq '.results[0].known' true "known command"
expect_body_jq '.results[0].well_formed' true "well-formed"
expect_body_jq .next null "one page"
seq_err=$(jq -r '.results[1].seq' "$BODY")
api GET "/api/v1/results/$udid1?limit=2"
expect_body_jq '.results | length' 2 "limit=2"
next=$(jq -r .next "$BODY")
api GET "/api/v1/results/$udid1?limit=2&before=$next"
expect_body_jq '[.results[].command_uuid] | join(",")' "$ju" \
    "before=next gives the rest"
expect_body_jq .next null "and ends"
api GET "/api/v1/results/$udid1/$seq_err"
expect_status 200 "one result"
expect_body_jq .plist.Status Error "decoded plist"
expect_body_jq '.plist.ErrorChain[0].ErrorCode' 12021 "decoded ErrorChain"
expect_body_jq '.raw | contains("<string>MCMDMErrorDomain</string>")' true \
    "raw plist as text"
expect_body_jq .request_type ProfileList "RequestType of the command"
api GET "/api/v1/results/$udid1/999999"
expect_api_error 404 "unknown seq: 404"
# A seq that is no whole number from 1 up is a malformed path: 400.
for s in abc 0 -1 "%0a$seq_err" 99999999999999999999; do
	api GET "/api/v1/results/$udid1/$s"
	expect_api_error 400 "seq $s: 400, a malformed path" \
	    "path: a result is named by its seq, a whole number from 1"
done
api GET "/api/v1/results/NOSUCH/abc"
expect_api_error 400 "seq abc of an unknown enrollment: 400 too"
api GET /api/v1/results/NOSUCH
expect_api_error 404 "results of an unknown enrollment: 404"
api GET "/api/v1/results/$udid1?before=0"
expect_api_error 400 "before=0: 400" "before"
for q in limit before; do
	api GET "/api/v1/results/$udid1?$q="
	expect_api_error 400 "results: an empty $q is 400" "$q: empty"
done

api GET "/api/v1/commands/$u2"
expect_body_jq ".targets[] | select(.enrollment_id == \"$udid1\") | .status" \
    Error "command status per enrollment: Error"
expect_body_jq ".targets[] | select(.enrollment_id == \"$udid1\") |
    .result_seq" "$seq_err" "with its result's seq"
api GET /api/v1/commands/NOSUCH
expect_api_error 404 "unknown command: 404"

# An Acknowledged report is checked against the response keys of its
# command's RequestType: stored either way, well_formed says whether it
# matched (ProfileList needs a ProfileList array).
u5=11111111-2222-4333-8444-555555555559
enqueue_raw "$udid1" "$u5" ProfileList
expect_status 200 "a ProfileList command queued"
send "$udid1" device1 Acknowledged "$u5" \
    ProfileList:raw='<string>not a list</string>' >/dev/null
api GET "/api/v1/results/$udid1?limit=1"
expect_body_jq '.results[0].command_uuid' "$u5" "the report is stored"
expect_body_jq '.results[0].well_formed' false \
    "ProfileList as a string: not well-formed"
send "$udid1" device1 Acknowledged "$u5" \
    ProfileList:raw='<array><dict><key>PayloadUUID</key><string>P1</string><key>PayloadIdentifier</key><string>com.example.p1</string></dict></array>' \
    >/dev/null
api GET "/api/v1/results/$udid1?limit=1"
expect_body_jq '.results[0].well_formed' true \
    "ProfileList as Apple describes it: well-formed"
if grep -q 'kept raw: ProfileList' "$IT_DIR/fcgi.log"; then
	pass "the mismatch is logged with its reason"
else
	fail "the mismatch is logged with its reason" \
	    "$(grep 'kept raw' "$IT_DIR/fcgi.log" | tail -n 1)"
fi

# ---- push certificates: the JSON body ----

# Refused before any certificate is read; nothing is stored.
api GET /api/v1/pushcert
expect_status 200 "push certificates listed"
npc=$(jq '.pushcerts | length' "$BODY")
api PUT /api/v1/pushcert --data-binary '{"cert": "x", "key": "y", "cert": "z"}'
expect_api_error 400 "pushcert JSON with a duplicate key: 400" "duplicate"
api PUT /api/v1/pushcert --data-binary '{"cert": "x", "key": "y", "force": true}'
expect_api_error 400 "pushcert JSON with an unknown key: 400" \
    'unknown key "force"'
api PUT /api/v1/pushcert --data-binary $' \r\n\t{"cert": "x", "key": "y", "n": 1}'
expect_api_error 400 "pushcert JSON after white space is read as JSON" \
    'unknown key "n"'
api PUT /api/v1/pushcert --data-binary '{"cert": "x", "key": '
expect_api_error 400 "truncated pushcert JSON names the error" "invalid JSON"
api GET /api/v1/pushcert
expect_body_jq '.pushcerts | length' "$npc" "no push certificate stored"

# ---- pushes and metrics take no query (and a push no body) ----

api POST "/api/v1/push/$udid1?nopush=1"
expect_api_error 400 "push with a query parameter: 400" 'unknown query parameter "nopush"'
api POST "/api/v1/push/$udid1" --data-binary garbage
expect_api_error 400 "push with a body: 400" "no body"
api POST "/api/v1/push/$udid1"
expect_status 200 "push without query or body: 200"
expect_body_jq ".status[\"$udid1\"] | has(\"push\")" true \
    "push answers a status for the ID"
api GET "/api/v1/metrics?bogus=1"
expect_api_error 400 "metrics with a query parameter: 400" 'unknown query parameter "bogus"'
api GET /api/v1/metrics
expect_status 200 "metrics without a query: 200"

# ---- enrollment tokens: JSON errors are named ----

api GET /api/v1/enrollment-tokens
expect_status 200 "enrollment tokens listed"
ntok=$(jq '.tokens | length' "$BODY")
api POST /api/v1/enrollment-tokens --data-binary '{"expires_in": 60, "expires_in": 61}'
expect_api_error 400 "token body with a duplicate key: 400" "duplicate"
api POST /api/v1/enrollment-tokens --data-binary '{"expires_in": 99999999999999999999}'
expect_api_error 400 "token body with a too big integer: 400" "too big"
api POST /api/v1/enrollment-tokens --data-binary '{"note": '
expect_api_error 400 "truncated token body: 400" "line 1"
api POST /api/v1/enrollment-tokens --data-binary '[60]'
expect_api_error 400 "token body not an object: 400" "want a JSON object"
api GET /api/v1/enrollment-tokens
expect_body_jq '.tokens | length' "$ntok" "no enrollment token issued"

# A key file with white space inside the key (two keys, as when a
# rotation is tried by appending one, or a space): no Authorization could
# ever match it, so the responder refuses to start, with one line that
# says why and the exit status of any configuration error.
it_stop_responder
printf '%s\n%s\n' "$(openssl rand -hex 32)" "$(openssl rand -hex 32)" \
    >"$IT_DIR/two.key"
printf '%s %s\n' "$(openssl rand -hex 16)" "$(openssl rand -hex 16)" \
    >"$IT_DIR/space.key"
for kf in two.key space.key; do
	mapfile -t cmd < <(printf '%s\n' "${IT_RESPONDER_CMD[@]}" |
	    sed "/^--api-key-file\$/{n;s|.*|$IT_DIR/$kf|;}")
	rc=0
	timeout 10 "${cmd[@]}" </dev/null >"$IT_DIR/$kf.out" 2>&1 || rc=$?
	expect_eq "$rc" 1 "key file $kf: the responder exits 1"
	expect_eq "$(grep -c "api key: $IT_DIR/$kf: .*one key on one line" \
	    "$IT_DIR/$kf.out")" 1 "key file $kf: one line says why"
done
it_start_responder
api GET /api/v1/enrollments
expect_status 200 "the good key file still starts the responder"

# No key file: the API is disabled.
it_stop_responder
mapfile -t IT_RESPONDER_CMD < <(printf '%s\n' "${IT_RESPONDER_CMD[@]}" |
    sed '/^--api-key-file$/,+1d')
it_start_responder
api GET /api/v1/enrollments
expect_api_error 503 "no API key configured: 503" "disabled"
grep -qi '^Retry-After:' "$HEADERS" &&
    fail "  and no Retry-After: only a reconfiguration helps" "$(cat "$HEADERS")" ||
    pass "  and no Retry-After: only a reconfiguration helps"

it_done
