#!/usr/bin/env bash
#
# test-vpp-write.sh - picomdm-vpp's writes (tools/vpp_write.c,
# module/vpp_write.c, module/store_vpp_event.c) against
# tests/mock-vpp.py over TLS, with a store:
#
#   - assign to a serial: the associate event is recorded, polled at the
#     service configuration's eventStatus URL until COMPLETE, and the
#     assignment is in `picomdmctl show SERIAL` with no sync; unassign
#     removes it; assign to a user; revoke takes every licence of a
#     serial; user create (a GUID we make) and user retire;
#   - per-item failures (Apple's 9709) are recorded per item and only
#     the items that succeeded are applied;
#   - bad input is refused and changes nothing, with nothing sent: an
#     unknown adamId, an asset not device-assignable, too few licences,
#     bad serial/GUID/adamId syntax, more items than the service's limit
#     (from its configuration), an unknown user, HTTP 200 with
#     errorNumber, a location another MDM holds;
#   - --no-wait records a pending event and poll finishes it; kill -9
#     while polling and poll again gives the same store as an
#     uninterrupted run; a new write waits for an earlier pending one;
#   - dump/restore and check cover the event kind; purge --token
#     removes the events and --verify proves it;
#   - the client never exceeds maxRequestPerSecond (the mock counts).

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

VPP=$PM_BUILD/picomdm-vpp
CTL=$PM_BUILD/picomdmctl
GEN=$PM_BUILD/tools/picomdm-gen
IT_MAIN_PID=$BASHPID
IT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/picomdm-it.$IT_NAME.XXXXXX")
trap it_cleanup EXIT
DB=$IT_DIR/db
RPS=8

[[ -x $VPP && -x $CTL && -x $GEN ]] || it_abort "setup: picomdm-vpp, picomdmctl or picomdm-gen not built"

# shellcheck source-path=SCRIPTDIR source=lib-vpp.sh
. "$(dirname "$0")/lib-vpp.sh"
vpp_certs
vpp_mktoken "$IT_DIR/good.vpptoken" "Example Org" 2030-11-08T22:33:22+0000
VPP_TOKEN=$IT_DIR/good.vpptoken
# Each mock: events due after 0.4 s, at most $RPS requests a second, at
# most 3 serials per associate and 2 per revoke, as its service
# configuration says.
VPP_MOCK_ARGS=(--assets 4 --assignments 2 --users 2 --max-rps "$RPS"
    --event-delay 0.4
    --limits '{"maxSerialNumbers": 3, "maxRevokeSerialNumbers": 2}')

# vdb ARG...: picomdm-vpp --db against the mock, polling every 0.1 s;
# output in $IT_DIR/out, errors in $IT_DIR/err, exit status in RC.
vdb() {
	RC=0
	"$VPP" --db "$DB" --ca "$C/ca.pem" --poll-interval 0.1 \
	    --url "https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config" "$@" \
	    >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
}

# posts: write requests the mock received (any answer).
posts() {
	jq -s '[.[] | select(.method == "POST" and (.path | test("/(assets|users)/")))] | length' \
	    "$MOCK_LOG"
}

# vppof SERIAL: the adamIds picomdmctl show lists for the device.
vppof() {
	"$CTL" --db "$DB" show "$1" | jq -r '[.vpp[].adam_id] | sort | join(",")'
}

# dumpall FILE: the whole store, secrets included.
dumpall() {
	"$CTL" --db "$DB" dump --secrets >"$1"
}

# refused NAME RC PATTERN ARG...: the write is refused with exit RC and
# a message matching PATTERN; nothing sent, nothing changed.
refused() {
	local name=$1 want=$2 pat=$3 p
	shift 3
	dumpall "$IT_DIR/before"
	p=$(posts)
	vdb "$@"
	dumpall "$IT_DIR/after"
	if ((RC == want)) && grep -q -- "$pat" "$IT_DIR/err" &&
	    [[ $(posts) == "$p" ]] && cmp -s "$IT_DIR/before" "$IT_DIR/after"; then
		pass "refused: $name; nothing sent, nothing changed"
	else
		fail "refused: $name; nothing sent, nothing changed" \
		    "rc $RC posts $p->$(posts) $(head -c 300 "$IT_DIR/err")"
	fi
}

# --- setup: devices, the token, a sync -------------------------------------------
"$GEN" --db "$DB" --devices 4 --queue 0 --results 0 2>"$IT_DIR/gen.log" ||
    it_abort "setup: picomdm-gen" "$(cat "$IT_DIR/gen.log")"
start_mock
# An asset only users can have, and one with a single licence left.
control /mock/change '{"assets":[{"adamId":"200000001","pricingParam":"STDQ","deviceAssignable":false,"availableCount":5,"assignedCount":0,"retiredCount":0,"totalCount":5,"revocable":true,"productType":"Book"},{"adamId":"200000002","pricingParam":"STDQ","deviceAssignable":true,"availableCount":1,"assignedCount":9,"retiredCount":0,"totalCount":10,"revocable":true,"productType":"App"}]}'
vdb token import campus "$IT_DIR/good.vpptoken"
vdb sync
[[ $RC == 0 ]] || it_abort "setup: sync" "$(cat "$IT_DIR/err")"
lists=$(jq -s '[.[] | select(.path | endswith("/list"))] | length' "$MOCK_LOG")

# --- assign to a serial: the event, polled, and show ----------------------------------
expect_eq "$(vppof GEN000000001)" "" "assign: the device has no VPP app before"
vdb assign 100000001 --serial GEN000000001
expect_eq "$RC" 0 "assign: exit 0"
expect_eq "$(jq -r '[.type, .status, .items, .adam_id, .pricing_param, .num_requested, .num_completed, .failures] | map(tostring) | join("|")' "$IT_DIR/out")" \
    'ASSOCIATE|COMPLETE|["GEN000000001"]|100000001|STDQ|1|1|[]' \
    "assign: the event's record, COMPLETE"
EV1=$(jq -r .event_id "$IT_DIR/out")
expect_eq "$(vppof GEN000000001)" 100000001 \
    "assign: picomdmctl show lists the app right after, with no sync"
expect_eq "$(jq -s '[.[] | select(.path | endswith("/list"))] | length' "$MOCK_LOG")" \
    "$lists" "assign: no listing was fetched"
expect_eq "$(jq -rs '[.[] | select(.method == "POST" and .path == "/mock-v2/assets/associate")] | length' "$MOCK_LOG")" \
    1 "assign: one POST to the associateAssets URL of the service configuration"
expect_eq "$(jq -rs --arg q "eventId=$EV1" '[.[] | select(.path == "/mock-v2/status" and .query == $q and .auth)] | length > 1' "$MOCK_LOG")" \
    true "assign: the eventStatus URL polled with the eventId until over (PENDING first)"
expect_eq "$(jq -r '.polls > 1' "$IT_DIR/out")" true "assign: the polls are counted"
expect_eq "$("$VPP" --db "$DB" assets campus | jq -r 'select(.adam_id == "100000001") | "\(.assigned_count)|\(.available_count)"')" \
    "2|9" "assign: the asset's counts follow (1+1 assigned, 10-1 available)"
vdb events
expect_eq "$RC:$(jq -r '.event_id + "|" + .status + "|" + .token' "$IT_DIR/out")" \
    "0:$EV1|COMPLETE|campus" "events: the event listed, with its token"
vdb assign 100000001 --serial GEN000000001
{ ((RC == 0)) && grep -q 'is already assigned to GEN000000001' "$IT_DIR/err" &&
    [[ $(jq -rs '[.[] | select(.path == "/mock-v2/assets/associate")] | length' "$MOCK_LOG") == 1 ]]; } &&
    pass "assign: already assigned, nothing sent" ||
    fail "assign: already assigned, nothing sent" "rc $RC $(cat "$IT_DIR/err")"

# --- unassign ---------------------------------------------------------------------------
vdb unassign 100000001 --serial GEN000000001
expect_eq "$RC:$(jq -r '.type + "|" + .status' "$IT_DIR/out")" "0:DISASSOCIATE|COMPLETE" \
    "unassign: a DISASSOCIATE event, COMPLETE"
expect_eq "$(vppof GEN000000001)" "" "unassign: gone from picomdmctl show"
expect_eq "$("$VPP" --db "$DB" assets campus | jq -r 'select(.adam_id == "100000001") | "\(.assigned_count)|\(.available_count)"')" \
    "1|10" "unassign: the counts back"

# --- users: create, assign, retire ------------------------------------------------------------
vdb user create --email new@example.com
expect_eq "$RC:$(jq -r '.type + "|" + .status + "|" + .email' "$IT_DIR/out")" \
    "0:CREATE|COMPLETE|new@example.com" "user create: a CREATE event, COMPLETE"
U1=$(jq -r '.items | fromjson | .[0]' "$IT_DIR/out")
[[ $U1 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] &&
    pass "user create: the clientUserId is a GUID we made (v4)" ||
    fail "user create: the clientUserId is a GUID we made (v4)" "$U1"
expect_eq "$("$VPP" --db "$DB" users campus | jq -r --arg u "$U1" 'select(.client_user_id == $u) | .status + "|" + .email')" \
    "Registered|new@example.com" "user create: the user in the store"
expect_eq "$(jq -rs '[.[] | select(.path == "/mock-v2/users/create")] | length' "$MOCK_LOG")" 1 \
    "user create: sent to the createUsers URL"
vdb assign 200000001 --user "$U1"
expect_eq "$RC:$("$VPP" --db "$DB" assignments campus | jq -r --arg u "$U1" 'select(.client_user_id == $u) | .adam_id')" \
    "0:200000001" "assign --user: a user-only asset assigned to the user"
vdb user retire "$U1"
expect_eq "$RC:$(jq -r '.type + "|" + .status' "$IT_DIR/out"):$("$VPP" --db "$DB" users campus | jq -r --arg u "$U1" 'select(.client_user_id == $u) | .status')" \
    "0:RETIRE|COMPLETE:Retired" "user retire: RETIRE event, the user Retired"
refused "assign to a retired user" 1 "is retired" assign 100000002 --user "$U1"

# --- revoke -------------------------------------------------------------------------------------
vdb assign 100000002 --serial GEN000000002 GEN000000003
vdb assign 100000003 --serial GEN000000002
expect_eq "$(vppof GEN000000002)" 100000002,100000003 "revoke: two apps on the device before"
vdb revoke --serial GEN000000002
expect_eq "$RC:$(jq -r '.type + "|" + .status' "$IT_DIR/out")" "0:REVOKE|COMPLETE" \
    "revoke: a REVOKE event, COMPLETE"
expect_eq "$(vppof GEN000000002):$(vppof GEN000000003)" ":100000002" \
    "revoke: every licence of the serial gone, the other device's kept"

# --- per-item failures --------------------------------------------------------------------------
control /mock/events '{"fail": {"GEN000000004": 9709}}'
vdb assign 100000001 --serial GEN000000001 GEN000000004
expect_eq "$RC" 6 "per item: exit 6 when an item failed"
expect_eq "$(jq -r '.failures | fromjson | map("\(.item)|\(.errorNumber)|\(.errorMessage)") | join(",")' "$IT_DIR/out")" \
    "GEN000000004|9709|Not enough licenses" "per item: Apple's failure recorded for its item"
expect_eq "$(vppof GEN000000001):$(vppof GEN000000004)" "100000001:" \
    "per item: the item that succeeded applied, the failed one not"
control /mock/events '{"fail": {}}'

# --- refused input ---------------------------------------------------------------------------------
refused "unknown adamId" 1 "no asset 999999999 in token campus" \
    assign 999999999 --serial GEN000000001
refused "not device-assignable to a serial" 1 "is not device-assignable" \
    assign 200000001 --serial GEN000000001
refused "no licences available" 1 "needs 2 licences, 1 available" \
    assign 200000002 --serial GEN000000001 GEN000000004
refused "bad serial syntax" 2 "not a serial number" assign 100000001 --serial 'GEN/0001'
refused "bad GUID syntax" 2 "not a clientUserId" assign 100000001 --user not-a-guid
refused "bad adamId" 2 "not an adamId" assign 12x4 --serial GEN000000001
refused "a serial given twice" 2 "given twice" assign 100000000 --serial GEN000000001 GEN000000001
refused "both --serial and --user" 2 "assign|unassign ADAMID" assign 100000000 --serial --user GEN000000001
refused "no items" 2 "assign|unassign ADAMID" assign 100000000 --serial
refused "an unknown user" 1 "no user 0b2a6a3c-0000-4000-8000-000000000000" \
    assign 100000000 --user 0b2a6a3c-0000-4000-8000-000000000000
refused "over the service's maxSerialNumbers" 2 "at most 3 (limits.maxSerialNumbers)" \
    assign 100000000 --serial GEN000000001 GEN000000002 GEN000000003 GEN000000004
refused "over the service's maxRevokeSerialNumbers" 2 "at most 2 (limits.maxRevokeSerialNumbers)" \
    revoke --serial GEN000000001 GEN000000002 GEN000000003
refused "a bad email" 2 "take an address" user create --email nobody
refused "an unknown token" 1 "no token nosuch" --token nosuch assign 100000000 --serial GEN000000001
control /mock/fail '{"path": "/mock-v2/assets/associate", "answers": [{"status": 200, "errorNumber": 9622, "errorMessage": "Invalid authentication token"}, {"status": 400, "errorNumber": 9602, "errorMessage": "Invalid argument"}]}'
dumpall "$IT_DIR/before"
vdb assign 100000000 --serial GEN000000001
dumpall "$IT_DIR/after"
{ ((RC == 3)) && grep -q 'content token is not valid (9622)' "$IT_DIR/err" &&
    cmp -s "$IT_DIR/before" "$IT_DIR/after"; } &&
    pass "HTTP 200 with errorNumber 9622: a token error (exit 3), nothing recorded" ||
    fail "HTTP 200 with errorNumber 9622: a token error (exit 3), nothing recorded" "rc $RC $(cat "$IT_DIR/err")"
vdb assign 100000000 --serial GEN000000001
dumpall "$IT_DIR/after"
{ ((RC == 1)) && grep -q 'Apple error 9602 (HTTP 400): Invalid argument' "$IT_DIR/err" &&
    cmp -s "$IT_DIR/before" "$IT_DIR/after"; } &&
    pass "400 9602: Apple's error reported, nothing recorded" ||
    fail "400 9602: Apple's error reported, nothing recorded" "rc $RC $(cat "$IT_DIR/err")"
refused "poll of an event not recorded" 1 "no such event" poll 1234567

# --- 429 on a write: waited out; an event Apple forgot (9708) ---------------------------------------
control /mock/fail '{"path": "/mock-v2/assets/associate", "answers": [{"status": 429, "errorNumber": 9646, "errorMessage": "Too many requests", "retry_after": "1"}]}'
p=$(posts)
vdb assign 100000003 --serial GEN000000004
expect_eq "$RC:$(($(posts) - p)):$(jq -r .status "$IT_DIR/out"):$(vppof GEN000000004)" \
    "0:2:COMPLETE:100000003" "429/9646 on the associate: sent again after Retry-After, completed"
vdb unassign 100000003 --serial GEN000000004 --no-wait
EV9=$(jq -r .event_id "$IT_DIR/out")
control /mock/fail '{"path": "/mock-v2/status", "answers": [{"status": 400, "errorNumber": 9708, "errorMessage": "eventId not found"}]}'
vdb poll "$EV9"
expect_eq "$RC:$(jq -r '.status + "|" + (.failures | fromjson | .[0].errorNumber | tostring)' "$IT_DIR/out"):$(vppof GEN000000004)" \
    "6:FAILED|9708:100000003" "9708 on /status: the event FAILED, nothing applied"

# --- --no-wait, poll; a pending event holds new writes back ----------------------------------------
vdb assign 100000000 --serial GEN000000001 --no-wait
EV2=$(jq -r .event_id "$IT_DIR/out")
expect_eq "$RC:$(jq -r .status "$IT_DIR/out"):$("$VPP" --db "$DB" events --pending | jq -r .event_id)" \
    "0:PENDING:$EV2" "--no-wait: the event recorded PENDING, listed by events --pending"
expect_eq "$(vppof GEN000000001)" 100000001 "--no-wait: not applied yet"
vdb poll
expect_eq "$RC:$(jq -r '.event_id + "|" + .status' "$IT_DIR/out")" "0:$EV2|COMPLETE" \
    "poll: the pending event finished"
expect_eq "$(vppof GEN000000001):$("$VPP" --db "$DB" events --pending | wc -l)" \
    "100000000,100000001:0" "poll: applied, nothing pending"
control /mock/events '{"delay": 30}'
vdb unassign 100000000 --serial GEN000000001 --wait 1
expect_eq "$RC:$(jq -r .status "$IT_DIR/out")" 5:PENDING "--wait: still pending at the limit is exit 5"
EV3=$(jq -r .event_id "$IT_DIR/out")
p=$(posts)
vdb --wait 1 assign 100000003 --serial GEN000000003
{ ((RC == 5)) && grep -q 'an earlier event is still pending: nothing sent' "$IT_DIR/err" &&
    [[ $(posts) == "$p" && $(vppof GEN000000003) == 100000002 ]]; } &&
    pass "a new write waits for an earlier pending event: nothing sent" ||
    fail "a new write waits for an earlier pending event: nothing sent" "rc $RC $(cat "$IT_DIR/err")"

# --- kill -9 while polling, then poll: the same store as without the kill -----------------------------
# The reference: a copy of the store, its pending event polled to the end.
mkdir -p "$IT_DIR/ref"
"$CTL" --db "$DB" dump --secrets >"$IT_DIR/pre.json"
"$CTL" --db "$IT_DIR/ref" restore "$IT_DIR/pre.json" >/dev/null 2>&1 ||
    it_abort "setup: restore of the reference copy"
n0=$(jq -s --arg q "eventId=$EV3" '[.[] | select(.query == $q)] | length' "$MOCK_LOG")
"$VPP" --db "$DB" --ca "$C/ca.pem" --poll-interval 0.1 \
    --url "https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config" \
    poll >"$IT_DIR/kill.out" 2>"$IT_DIR/kill.err" &
KPID=$!
for ((i = 0; i < 100; i++)); do
	(($(jq -s --arg q "eventId=$EV3" '[.[] | select(.query == $q)] | length' "$MOCK_LOG") >= n0 + 3)) && break
	sleep 0.1
done
kill -KILL "$KPID" 2>/dev/null
wait "$KPID" 2>/dev/null || true
expect_eq "$("$VPP" --db "$DB" events --pending | jq -r .event_id):$(vppof GEN000000001)" \
    "$EV3:100000000,100000001" "kill -9: killed while polling, the event still pending"
control /mock/events '{"delay": 0.4, "finish": true}'
vdb poll
expect_eq "$RC:$(jq -r '.event_id + "|" + .status' "$IT_DIR/out")" "0:$EV3|COMPLETE" \
    "kill -9: poll again finishes the event"
"$VPP" --db "$IT_DIR/ref" --ca "$C/ca.pem" --poll-interval 0.1 \
    --url "https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config" poll \
    >/dev/null 2>&1 || fail "kill -9: the reference poll"
# Everything but the times and poll counts of the event is the same.
norm() {
	"$CTL" --db "$1" dump | jq -c 'if .db == "vpp_event" then .value |= del(.polls, .updated_at, .completed_at) elif (.value | type) == "object" then .value |= del(.synced_at) else . end'
}
norm "$DB" >"$IT_DIR/norm.killed"
norm "$IT_DIR/ref" >"$IT_DIR/norm.ref"
if (($(grep -c '"db":"vpp_event"' "$IT_DIR/norm.ref") >= 8)) &&
    cmp -s "$IT_DIR/norm.killed" "$IT_DIR/norm.ref"; then
	pass "kill -9: the store is the same as an uninterrupted run's"
else
	fail "kill -9: the store is the same as an uninterrupted run's" \
	    "$(diff <(norm "$DB") <(norm "$IT_DIR/ref") | head -5)"
fi
expect_eq "$(vppof GEN000000001):$("$VPP" --db "$DB" assets campus | jq -r 'select(.adam_id == "100000000") | .assigned_count')" \
    "100000001:0" "kill -9: unassigned once (the count went down by one, not two)"
vdb poll
expect_eq "$RC" 0 "poll: nothing pending is fine"

# --- the rate limit in one run: twelve pending events polled back to back ------------------------
# Sent to the mock directly (curl), recorded in a copy of the store by
# restore; then one poll asks the status of each, as fast as its pacing
# lets it, and the mock counts the requests of every second.
expect_eq "$(stats over_rate)" 0 "rate: none over maxRequestPerSecond so far, over runs back to back"
(($(stats max_per_second) <= RPS)) && pass "rate: at most $RPS requests in any second so far (POSTs counted)" ||
    fail "rate: at most $RPS requests in any second so far (POSTs counted)" "$(stats max_per_second)"
"$CTL" --db "$DB" dump --secrets | grep -v '"end":true' >"$IT_DIR/rate.json"
for ((i = 0; i < 12; i++)); do
	u=$(printf 'eeeeeeee-0000-4000-8000-%012d' "$i")
	ev=$(curl -sS --fail --cacert "$C/ca.pem" -H 'Content-Type: application/json' \
	    -H "Authorization: Bearer $(cat "$IT_DIR/good.vpptoken")" \
	    --data-binary "{\"users\":[{\"clientUserId\":\"$u\"}]}" \
	    "https://127.0.0.1:$MOCK_PORT/mock-v2/users/create" | jq -r .eventId) ||
	    it_abort "setup: a users/create to the mock"
	jq -nc --arg e "$ev" --arg u "$u" '{db: "vpp_event", key: ["campus", $e],
	    value: {event_id: $e, type: "CREATE", item_kind: "user",
	    items: ([$u] | tojson), status: "PENDING", num_requested: 1}}' \
	    >>"$IT_DIR/rate.json"
	sleep 0.15 # curl keeps to the mock's rate by hand
done
"$CTL" --db "$DB" dump --secrets | grep '"end":true' | jq -c '.records += 12' >>"$IT_DIR/rate.json"
"$CTL" --db "$IT_DIR/ratedb" restore "$IT_DIR/rate.json" >/dev/null 2>&1 ||
    it_abort "setup: restore of the store with 12 pending events"
sleep 0.5
control /mock/rate-reset '{}'
RC=0
"$VPP" --db "$IT_DIR/ratedb" --ca "$C/ca.pem" --poll-interval 0.1 \
    --url "https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config" poll \
    >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
expect_eq "$RC:$(jq -s '(map(.status) | unique | join(",")) + " " + (length | tostring)' -r "$IT_DIR/out")" "0:COMPLETE 12" \
    "rate: one poll finishes twelve pending events"
expect_eq "$("$VPP" --db "$IT_DIR/ratedb" users campus | jq -r .client_user_id | grep -c '^eeeeeeee-')" \
    12 "rate: the twelve users in the store"
expect_eq "$(stats over_rate)" 0 "rate: thirteen requests back to back, none over maxRequestPerSecond"
m=$(stats max_per_second)
((m <= RPS && m >= RPS - 1)) &&
    pass "rate: $m requests in the busiest second, at most $RPS" ||
    fail "rate: at most $RPS requests in the busiest second, and near it" "$m"

# --- the store: check, dump/restore, purge --token --------------------------------------------
"$CTL" --db "$DB" check >"$IT_DIR/check" 2>&1 &&
    pass "check: the store with events checks clean" ||
    fail "check: the store with events checks clean" "$(head -3 "$IT_DIR/check")"
dumpall "$IT_DIR/full.json"
expect_eq "$(grep -c '"db":"vpp_event"' "$IT_DIR/full.json")" \
    "$("$VPP" --db "$DB" events | wc -l)" "dump: every event in the dump"
(($(grep -c '"db":"vpp_event"' "$IT_DIR/full.json") >= 10)) &&
    pass "dump: ten events or more recorded" || fail "dump: ten events or more recorded"
"$CTL" --db "$IT_DIR/restored" restore "$IT_DIR/full.json" >/dev/null 2>&1 ||
    fail "restore of a store with events"
"$CTL" --db "$IT_DIR/restored" dump --secrets | cmp -s - "$IT_DIR/full.json" &&
    pass "dump/restore: the events round-trip byte for byte" ||
    fail "dump/restore: the events round-trip byte for byte"
grep -v '"db":"vpp_token"' "$IT_DIR/full.json" | jq -c 'if .end then .records -= 1 else . end' \
    >"$IT_DIR/orphans.json"
"$CTL" --db "$IT_DIR/orphans" restore "$IT_DIR/orphans.json" >/dev/null 2>&1 || true
RC=0
"$CTL" --db "$IT_DIR/orphans" check >"$IT_DIR/out" 2>&1 || RC=$?
{ ((RC != 0)) && grep 'vpp_event' "$IT_DIR/out" | grep -q 'belongs to VPP token campus, which does not exist'; } &&
    pass "check: an event without its token is a problem" ||
    fail "check: an event without its token is a problem" "rc $RC $(grep vpp_event "$IT_DIR/out" | head -2)"
vdb token remove campus
{ ((RC == 1)) && [[ $("$VPP" --db "$DB" events | wc -l) -ge 10 ]]; } &&
    pass "token remove: refused without --purge, the events kept" ||
    fail "token remove: refused without --purge, the events kept" "rc $RC"
cp -r "$DB" "$IT_DIR/db2"
"$VPP" --db "$IT_DIR/db2" token remove campus --purge >/dev/null 2>&1
expect_eq "$("$CTL" --db "$IT_DIR/db2" dump | grep -c '"db":"vpp_')" 0 \
    "token remove --purge: the events go with the token"
"$CTL" --db "$DB" dump | grep -v -e '"db":"vpp_' -e '"end":true' >"$IT_DIR/rest.before"
RC=0
"$CTL" --db "$DB" purge --token campus --yes --verify >"$IT_DIR/out" 2>&1 || RC=$?
{ ((RC == 0)) && grep -q $'^removed\tvpp_event\t[1-9]' "$IT_DIR/out" &&
    grep -q '^verify	0 hits' "$IT_DIR/out" &&
    [[ $("$CTL" --db "$DB" dump | grep -c '"db":"vpp_') == 0 ]]; } &&
    pass "purge --token: the events removed, --verify finds none" ||
    fail "purge --token: the events removed, --verify finds none" "rc $RC $(tr '\n' ' ' <"$IT_DIR/out" | head -c 300)"
"$CTL" --db "$DB" dump | grep -v -e '"db":"vpp_' -e '"end":true' >"$IT_DIR/rest.after"
cmp -s "$IT_DIR/rest.before" "$IT_DIR/rest.after" &&
    pass "purge --token: nothing else removed" || fail "purge --token: nothing else removed"

# --- the rate limit held since the reset, over runs back to back ----------------------------------------
expect_eq "$(stats over_rate)" 0 "rate: never over maxRequestPerSecond ($RPS)"
(($(stats max_per_second) <= RPS)) && pass "rate: at most $RPS requests in any second (POSTs counted)" ||
    fail "rate: at most $RPS requests in any second (POSTs counted)" "$(stats max_per_second)"
(($(stats requests) > 60)) && pass "rate: the mock counted $(stats requests) requests" ||
    fail "rate: the mock counted the requests" "$(stats requests)"

# --- another MDM holds the location ---------------------------------------------------------------------
start_mock --mdm-info '{"id":"other-mdm-7","name":"Other MDM","metadata":""}'
vdb token import campus "$IT_DIR/good.vpptoken"
vdb --force sync
start_mock --mdm-info '{"id":"other-mdm-7","name":"Other MDM","metadata":""}'
refused "a location another MDM holds" 4 "managed by another MDM (Other MDM, id other-mdm-7); --force" \
    assign 100000001 --serial GEN000000001

stop_mock
it_done
