#!/usr/bin/env bash
#
# test-vpp.sh - picomdm-vpp and the Apps and Books v2 client
# (module/vpp.c, module/vpp_token.c) against tests/mock-vpp.py over TLS:
#
#   - token show: organisation and expiry, never the secret; the 30-day
#     warning; expired and malformed tokens refused;
#   - the service configuration is read first and its URLs (the mock's
#     own paths) are used for everything else;
#   - assets, assignments and users over many pages, each record once;
#     a delta (sinceVersionId) returns only what changed; a bad version
#     id is Apple's 9721;
#   - errorNumber on HTTP 200 is an error; 429/9646 and 503 Retry-After
#     are waited out (bounded by --max-wait, retries bounded); a 500
#     without Retry-After is not retried;
#   - token errors 9622 (HTTP 200), 9621, 9625 and 9722 are reported as
#     such (exit 3);
#   - the client keeps to the service's maxRequestPerSecond even when
#     asked for more (the mock counts requests per second).

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

VPP=$PM_BUILD/picomdm-vpp
IT_MAIN_PID=$BASHPID
IT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/picomdm-it.$IT_NAME.XXXXXX")
trap it_cleanup EXIT
# shellcheck source-path=SCRIPTDIR source=lib-vpp.sh
. "$(dirname "$0")/lib-vpp.sh"

[[ -x $VPP ]] || it_abort "setup: $VPP not built"

vpp_certs
T=$IT_DIR/tokens
mkdir -p "$T"
vpp_mktoken "$T/good.vpptoken" "Example Org" 2030-11-08T22:33:22+0000
vpp_mktoken "$T/other.vpptoken" "Example Org" 2030-11-08T22:33:22+0000 T1RIRVI=
vpp_mktoken "$T/srvexpired.vpptoken" "Example Org" 2030-11-08T22:33:22+0000 RVhQ
vpp_mktoken "$T/revoked.vpptoken" "Example Org" 2030-11-08T22:33:22+0000 UkVW
vpp_mktoken "$T/expired.vpptoken" "Old Org" 2020-01-01T00:00:00+0000
vpp_mktoken "$T/soon.vpptoken" "Soon Org" \
    "$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%S+0000)"
printf 'not a token\n' >"$T/bad.vpptoken"
VPP_TOKEN=$T/good.vpptoken
# Every mock says 200 requests a second instead of Apple's 15 (the mock's
# default), and the client is run with --rps 200 (FAST) instead of its
# default 15, so that the syncs here are not paced to a crawl: pacing is
# checked where it is the subject, by the rate tests below (the mock says
# 15 again) and by test-vpp-write (8 a second, writes included).
FAST=(--rps 200)
VPP_MOCK_ARGS=(--expired "$(cat "$T/srvexpired.vpptoken")"
    --revoked "$(cat "$T/revoked.vpptoken")" --max-rps 200)

# vpp [--token FILE] ARG...: picomdm-vpp against the mock; output in
# $IT_DIR/out, errors in $IT_DIR/err, exit status in RC.
vpp() {
	local tok=$T/good.vpptoken
	if [[ ${1-} == --token ]]; then
		tok=$2
		shift 2
	fi
	RC=0
	"$VPP" --token "$tok" --ca "$C/ca.pem" "${FAST[@]}" \
	    --url "https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config" "$@" \
	    >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
}

# count PATH: requests to PATH in the current mock's log.
count() {
	jq -r --arg p "$1" 'select(.path == $p) | .path' "$MOCK_LOG" | wc -l
}

# --- token show -----------------------------------------------------------
RC=0
"$VPP" token show "$T/good.vpptoken" >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
expect_eq "$RC" 0 "token show: exit 0"
expect_eq "$(jq -r .org "$IT_DIR/out")" "Example Org" "token show: org"
expect_eq "$(jq -r .expires "$IT_DIR/out")" 2030-11-08T22:33:22+0000 \
    "token show: expiry"
if grep -q -e U0VDUkVUUw -e "$(cat "$T/good.vpptoken")" "$IT_DIR/out" \
    "$IT_DIR/err"; then
	fail "token show: the secret is never printed"
else
	pass "token show: the secret is never printed"
fi
[[ ! -s $IT_DIR/err ]] && pass "token show: no warning a year ahead" ||
    fail "token show: no warning a year ahead" "$(cat "$IT_DIR/err")"
RC=0
"$VPP" token show "$T/soon.vpptoken" >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
expect_eq "$RC" 0 "token show: a token 10 days from expiry is shown"
grep -q 'warning: the token of Soon Org expires in [0-9]* days' "$IT_DIR/err" &&
    pass "token show: 30-day warning" ||
    fail "token show: 30-day warning" "$(cat "$IT_DIR/err")"
for bad in expired:expired bad:'not one base64 string'; do
	RC=0
	"$VPP" token show "$T/${bad%%:*}.vpptoken" >"$IT_DIR/out" \
	    2>"$IT_DIR/err" || RC=$?
	if ((RC == 1)) && [[ ! -s $IT_DIR/out ]] &&
	    grep -q "${bad#*:}" "$IT_DIR/err"; then
		pass "token show: ${bad%%:*} token refused"
	else
		fail "token show: ${bad%%:*} token refused" \
		    "rc $RC $(cat "$IT_DIR/err")"
	fi
done

# --- listings over pages ----------------------------------------------------
start_mock --assets 250 --assignments 1234 --users 37 --page-size 100
vpp config
expect_eq "$RC" 0 "config: exit 0"
expect_eq "$(jq -r .locationName "$IT_DIR/out")" "Mock Campus" \
    "config: the client configuration"
expect_eq "$(jq -rs '.[0].path' "$MOCK_LOG")" /mdm/v2/service/config \
    "the service configuration is read first"
expect_eq "$(jq -rs '[.[] | select(.path == "/mock-v2/client/config" and .auth)] | length' \
    "$MOCK_LOG")" 1 "config: the URL the service configuration names, with the bearer"

vpp assets
expect_eq "$RC" 0 "assets: exit 0"
expect_eq "$(wc -l <"$IT_DIR/out")" 250 "assets: 250 over 3 pages"
expect_eq "$(jq -r .adamId "$IT_DIR/out" | sort -u | wc -l)" 250 \
    "assets: each once"
expect_eq "$(count /mock-v2/assets/list)" 3 "assets: 3 page requests"

vpp assignments
expect_eq "$RC" 0 "assignments: exit 0"
expect_eq "$(wc -l <"$IT_DIR/out")" 1234 "assignments: 1234 over 13 pages"
expect_eq "$(jq -r .serialNumber "$IT_DIR/out" | sort -u | wc -l)" 1234 \
    "assignments: each once"
grep -qx 'picomdm-vpp: versionId v1' "$IT_DIR/err" &&
    pass "assignments: versionId reported" ||
    fail "assignments: versionId reported" "$(cat "$IT_DIR/err")"
vpp users
expect_eq "$RC:$(wc -l <"$IT_DIR/out")" 0:37 "users: 37 on one page"

# --- deltas -------------------------------------------------------------------
control /mock/change '{"assignments":[{"adamId":"100000001","pricingParam":"STDQ","serialNumber":"C02DELTA0001"},{"adamId":"100000002","pricingParam":"STDQ","serialNumber":"C02DELTA0002"}]}'
vpp assignments --since v1
expect_eq "$RC" 0 "delta: exit 0"
expect_eq "$(jq -r .serialNumber "$IT_DIR/out" | sort | tr '\n' ' ')" \
    "C02DELTA0001 C02DELTA0002 " "delta: only the two changed assignments"
grep -qx 'picomdm-vpp: versionId v2' "$IT_DIR/err" &&
    pass "delta: the new versionId" ||
    fail "delta: the new versionId" "$(cat "$IT_DIR/err")"
expect_eq "$(jq -rs '[.[] | select(.query == "sinceVersionId=v1")] | length' \
    "$MOCK_LOG")" 1 "delta: sinceVersionId sent"
vpp assignments --since v9
{ ((RC == 1)) && grep -q 'Apple error 9721 (HTTP 400)' "$IT_DIR/err"; } &&
    pass "delta: an unknown versionId is 9721" ||
    fail "delta: an unknown versionId is 9721" "rc $RC $(cat "$IT_DIR/err")"
n=$(wc -l <"$MOCK_LOG")
vpp assignments --since 'v1&pageIndex=3'
{ ((RC == 1)) && (($(wc -l <"$MOCK_LOG") == n)); } &&
    pass "delta: a version id with query characters is refused before sending" ||
    fail "delta: a version id with query characters is refused before sending" "rc $RC"

# --- errorNumber on 200, Retry-After ---------------------------------------------
control /mock/fail '{"path":"/mock-v2/users/list","answers":[{"status":200,"errorNumber":9603,"errorMessage":"Internal error"}]}'
vpp users
{ ((RC == 1)) && [[ ! -s $IT_DIR/out ]] &&
    grep -q 'Apple error 9603 (HTTP 200): Internal error' "$IT_DIR/err"; } &&
    pass "errorNumber on HTTP 200 is an error" ||
    fail "errorNumber on HTTP 200 is an error" "rc $RC $(cat "$IT_DIR/err")"

control /mock/fail '{"path":"/mock-v2/client/config","answers":[{"status":429,"errorNumber":9646,"retry_after":"2"}]}'
s=$(date +%s.%N)
vpp config
e=$(date +%s.%N)
expect_eq "$RC" 0 "429/9646: the request succeeds after Retry-After"
awk -v s="$s" -v e="$e" 'BEGIN { exit !(e - s >= 1.9) }' &&
    pass "429/9646: waited Retry-After (2 s)" ||
    fail "429/9646: waited Retry-After (2 s)" "$s -> $e"
control /mock/fail '{"path":"/mock-v2/client/config","answers":[{"status":503,"errorNumber":9729,"retry_after":"1"}]}'
vpp config
expect_eq "$RC" 0 "503 with Retry-After: retried and succeeds"
control /mock/fail '{"path":"/mock-v2/client/config","answers":[{"status":503,"retry_after":"30"}]}'
s=$(date +%s)
vpp --max-wait 1 config
e=$(date +%s)
{ ((RC == 0)) && ((e - s <= 5)); } &&
    pass "Retry-After is bounded by --max-wait" ||
    fail "Retry-After is bounded by --max-wait" "rc $RC, $((e - s)) s"
control /mock/fail '{"path":"/mock-v2/client/config","answers":[{"status":500,"errorNumber":9603}]}'
n=$(count /mock-v2/client/config)
vpp config
{ ((RC == 1)) && (($(count /mock-v2/client/config) == n + 1)); } &&
    pass "500 without Retry-After: not retried, an error" ||
    fail "500 without Retry-After: not retried, an error" "rc $RC"
control /mock/fail '{"path":"/mock-v2/client/config","answers":[{"status":429,"errorNumber":9646,"retry_after":"1"},{"status":429,"errorNumber":9646,"retry_after":"1"},{"status":429,"errorNumber":9646,"retry_after":"1"},{"status":429,"errorNumber":9646,"retry_after":"1"},{"status":429,"errorNumber":9646,"retry_after":"1"}]}'
n=$(count /mock-v2/client/config)
vpp --max-wait 1 config
{ ((RC == 1)) && (($(count /mock-v2/client/config) == n + 4)) &&
    grep -q 'Apple error 9646 (HTTP 429)' "$IT_DIR/err"; } &&
    pass "429: retries stop after 3, then an error" ||
    fail "429: retries stop after 3, then an error" \
    "rc $RC, $(($(count /mock-v2/client/config) - n)) requests"

# --- token errors ---------------------------------------------------------------------
for c in other:9622:'not valid' srvexpired:9621:expired revoked:9625:revoked; do
	IFS=: read -r f num what <<<"$c"
	vpp --token "$T/$f.vpptoken" assets
	{ ((RC == 3)) && [[ ! -s $IT_DIR/out ]] &&
	    grep -q "$what ($num)" "$IT_DIR/err"; } &&
	    pass "token error $num reported" ||
	    fail "token error $num reported" "rc $RC $(cat "$IT_DIR/err")"
done
expect_eq "$(jq -rs '[.[] | select(.errorNumber == 9622 and .status == 200)] | length' \
    "$MOCK_LOG")" 1 "9622 came with HTTP 200"
RC=0
curl -sS --cacert "$C/ca.pem" -o "$IT_DIR/out" -w '%{http_code}' \
    "https://127.0.0.1:$MOCK_PORT/mock-v2/assets/list" >"$IT_DIR/code" || RC=$?
expect_eq "$(cat "$IT_DIR/code"):$(jq -r .errorNumber "$IT_DIR/out")" \
    401:9722 "mock: no bearer is 401 9722"

# --- rate limit -------------------------------------------------------------------------
start_mock --assignments 1500 --page-size 50 --max-rps 15
# One curl for the 20, so that a loaded machine's process start-up does
# not spread them over more than a second.
burst=()
for ((i = 0; i < 20; i++)); do
	burst+=(-o /dev/null "https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config")
done
curl -sS --cacert "$C/ca.pem" "${burst[@]}" || true
(($(stats over_rate) > 0)) && pass "mock: a burst of 20 is over its rate" ||
    fail "mock: a burst of 20 is over its rate"
start_mock --assignments 1500 --page-size 50 --max-rps 15
vpp --rps 1000 assignments
expect_eq "$RC:$(wc -l <"$IT_DIR/out")" 0:1500 "rate: 1500 assignments over 30 pages"
expect_eq "$(stats over_rate)" 0 "rate: never over maxRequestPerSecond"
(($(stats max_per_second) <= 15)) && pass "rate: at most 15 requests in any second" ||
    fail "rate: at most 15 requests in any second" "$(stats max_per_second)"

# --- the store: token import / list / remove ---------------------------------------
CTL=$PM_BUILD/picomdmctl
GEN=$PM_BUILD/tools/picomdm-gen
DB=$IT_DIR/db
[[ -x $GEN && -x $CTL ]] || it_abort "setup: picomdmctl or picomdm-gen not built"
"$GEN" --db "$DB" --devices 3 --queue 0 --results 0 2>"$IT_DIR/gen.log" ||
    it_abort "setup: picomdm-gen" "$(cat "$IT_DIR/gen.log")"

# vdb ARG...: picomdm-vpp --db against the mock; RC, out, err as vpp.
vdb() {
	RC=0
	"$VPP" --db "$DB" --ca "$C/ca.pem" "${FAST[@]}" \
	    --url "https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config" "$@" \
	    >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
}
# dumpv FILE [--secrets]: the store's VPP entries.
dumpv() {
	"$CTL" --db "$DB" dump ${2:+"$2"} | grep '"db":"vpp_' >"$1" || true
}

vdb token import campus "$T/good.vpptoken"
expect_eq "$RC:$(jq -r '.org + "|" + .expires' "$IT_DIR/out")" \
    "0:Example Org|2030-11-08T22:33:22+0000" "token import: org and expiry shown"
dumpv "$IT_DIR/d0"
dumpv "$IT_DIR/d0s" --secrets
if grep -q -e U0VDUkVUUw -e "$(cat "$T/good.vpptoken")" "$IT_DIR/out" \
    "$IT_DIR/err" "$IT_DIR/d0"; then
	fail "token import: the sToken is in no output and no dump without --secrets"
else
	pass "token import: the sToken is in no output and no dump without --secrets"
fi
grep -qF "$(cat "$T/good.vpptoken")" "$IT_DIR/d0s" &&
    pass "token import: dump --secrets holds the sToken" ||
    fail "token import: dump --secrets holds the sToken"
cp "$IT_DIR/d0s" "$IT_DIR/before"
vdb token import 'bad/name' "$T/good.vpptoken"
dumpv "$IT_DIR/d1" --secrets
{ ((RC == 2)) && cmp -s "$IT_DIR/before" "$IT_DIR/d1"; } &&
    pass "token import: a bad name is refused, nothing changed" ||
    fail "token import: a bad name is refused, nothing changed" "rc $RC"
vdb token import old "$T/expired.vpptoken"
dumpv "$IT_DIR/d1" --secrets
{ ((RC == 1)) && cmp -s "$IT_DIR/before" "$IT_DIR/d1"; } &&
    pass "token import: an expired token is refused, nothing changed" ||
    fail "token import: an expired token is refused, nothing changed" "rc $RC"
vdb token import soon "$T/soon.vpptoken"
{ ((RC == 0)) && grep -q 'warning: the token of Soon Org expires in' "$IT_DIR/err"; } &&
    pass "token import: 30-day warning" ||
    fail "token import: 30-day warning" "rc $RC $(cat "$IT_DIR/err")"
vdb token list
expect_eq "$RC:$(jq -r .name "$IT_DIR/out" | tr '\n' ' ')" "0:campus soon " \
    "token list: both tokens"
grep -q 'warning: token soon expires in' "$IT_DIR/err" &&
    pass "token list: 30-day warning" || fail "token list: 30-day warning"
vdb token remove soon
expect_eq "$RC:$("$VPP" --db "$DB" token list 2>/dev/null | jq -r .name)" \
    "0:campus" "token remove: gone from the list"
vdb token remove nosuch
expect_eq "$RC" 1 "token remove: an unknown token is an error"

# --- sync -----------------------------------------------------------------------------
start_mock --assets 250 --assignments 1234 --users 37 --page-size 100
control /mock/change '{"assignments":[{"adamId":"100000007","pricingParam":"STDQ","serialNumber":"GEN000000001"}]}'
vdb sync
expect_eq "$RC" 0 "sync: exit 0"
expect_eq "$(jq -rs '[.[] | select(.path | startswith("/mock/") | not)][0].path' \
    "$MOCK_LOG")" /mdm/v2/service/config "sync: the service configuration is read first"
expect_eq "$("$VPP" --db "$DB" assets campus | jq -r .adam_id | sort -u | wc -l)" 250 \
    "sync: 250 assets, each once"
expect_eq "$("$VPP" --db "$DB" assignments | wc -l)" 1235 "sync: 1235 assignments"
expect_eq "$("$VPP" --db "$DB" users | wc -l)" 37 "sync: 37 users"
expect_eq "$("$VPP" --db "$DB" token list | jq -r '.location + "|" + .country')" \
    "Mock Campus|US" "sync: the client configuration's location on the token"
expect_eq "$(count /mock-v2/assignments/list)" 13 "sync: 13 assignment pages, each once"
"$CTL" --db "$DB" check >"$IT_DIR/check" 2>&1 &&
    pass "sync: the store checks clean" || fail "sync: the store checks clean" \
    "$(head -3 "$IT_DIR/check")"
"$CTL" --db "$DB" dump --secrets >"$IT_DIR/full.json"
"$CTL" --db "$IT_DIR/restored" restore "$IT_DIR/full.json" >/dev/null 2>&1 ||
    fail "dump/restore: restore"
if "$CTL" --db "$IT_DIR/restored" dump --secrets | cmp -s - "$IT_DIR/full.json" &&
    "$CTL" --db "$IT_DIR/restored" check >/dev/null 2>&1; then
	pass "dump/restore: the VPP kinds round-trip byte for byte and check clean"
else
	fail "dump/restore: the VPP kinds round-trip byte for byte and check clean"
fi
grep -v '"db":"vpp_token"' "$IT_DIR/full.json" | jq -c 'if .end then .records -= 1 else . end' \
    >"$IT_DIR/orphans.json"
"$CTL" --db "$IT_DIR/orphans" restore "$IT_DIR/orphans.json" >/dev/null 2>&1 ||
    fail "check: restore of records without their token"
RC=0
"$CTL" --db "$IT_DIR/orphans" check >"$IT_DIR/out" 2>&1 || RC=$?
{ ((RC != 0)) && grep -q 'belongs to VPP token campus, which does not exist' "$IT_DIR/out"; } &&
    pass "check: VPP records without their token are a problem" ||
    fail "check: VPP records without their token are a problem" "rc $RC $(head -2 "$IT_DIR/out")"
"$CTL" --db "$IT_DIR/orphans" check --repair >/dev/null 2>&1 || true
{ "$CTL" --db "$IT_DIR/orphans" check >/dev/null 2>&1 &&
    [[ $("$CTL" --db "$IT_DIR/orphans" dump | grep -c '"db":"vpp_') == 0 ]]; } &&
    pass "check --repair: drops VPP records without their token" ||
    fail "check --repair: drops VPP records without their token"
"$CTL" --db "$DB" dump >"$IT_DIR/nosecrets.json"
RC=0
"$CTL" --db "$IT_DIR/restored2" restore "$IT_DIR/nosecrets.json" >"$IT_DIR/out" 2>&1 || RC=$?
{ ((RC != 0)) && grep -q 'made without --secrets' "$IT_DIR/out"; } &&
    pass "dump/restore: a dump without --secrets does not restore a token" ||
    fail "dump/restore: a dump without --secrets does not restore a token" "rc $RC $(head -2 "$IT_DIR/out")"
"$CTL" --db "$DB" show GEN000000001 >"$IT_DIR/show"
expect_eq "$(jq -r '.vpp[] | .adam_id + "|" + .token' "$IT_DIR/show")" \
    "100000007|campus" "show: the device's vpp list"
expect_eq "$("$CTL" --db "$DB" show GEN000000002 | jq -c .vpp)" "[]" \
    "show: no vpp list for a device without licences"
"$CTL" --db "$DB" inventory GEN000000001 --json >"$IT_DIR/inv"
expect_eq "$(jq -r '.services[] | select(.service == "VPP") | .fields[] |
    select(.source == "record") | [.message, .field, .value, (.purpose | length > 10),
    (.received_at != null)] | map(tostring) | join("|")' "$IT_DIR/inv" | sort | tr '\n' ' ')" \
    "assignments|adamId|100000007|true|true assignments|pricingParam|STDQ|true|true assignments|serialNumber|GEN000000001|true|true " \
    "inventory: the device's VPP fields under the VPP service, with purpose and time"
# A device purge takes its licences (kept per token, but they name it),
# and --verify finds its serial nowhere; on a copy, the rest goes on.
mkdir -p "$IT_DIR/purgecopy"
cp "$DB/data.mdb" "$IT_DIR/purgecopy/"
RC=0
"$CTL" --db "$IT_DIR/purgecopy" purge GEN000000001 --yes --verify \
    >"$IT_DIR/out" 2>&1 || RC=$?
{ ((RC == 0)) && grep -q '^removed	vpp_assignment	1$' "$IT_DIR/out" &&
    grep -q '^verify	0 hits' "$IT_DIR/out" &&
    [[ $("$CTL" --db "$IT_DIR/purgecopy" dump |
    grep -c 'GEN000000001') == 0 ]]; } &&
    pass "purge SERIAL: its VPP licences go too, and --verify finds it nowhere" ||
    fail "purge SERIAL: its VPP licences go too, and --verify finds it nowhere" \
    "rc $RC $(tr '\n' ' ' <"$IT_DIR/out" | head -c 300)"

expect_eq "$(jq -rs '[.[] | select(.method == "POST" and .path == "/mock-v2/client/config" and .status == 200)] | length' \
    "$MOCK_LOG")" 1 "mdmInfo: the first sync claims the location"
grep -q 'campus: claimed the location$' "$IT_DIR/err" &&
    pass "mdmInfo: the claim reported" || fail "mdmInfo: the claim reported" "$(cat "$IT_DIR/err")"
expect_eq "$("$CTL" --db "$DB" dump | jq -r 'select(.db == "vpp_token") | .value.mdm_id')" \
    "picomdm@$(hostname)" "mdmInfo: our id on the token"

# Delta: only the change, asked with the last versionId.
control /mock/change '{"assignments":[{"adamId":"100000001","pricingParam":"STDQ","serialNumber":"C02DELTA0001"}],"users":[{"clientUserId":"11111111-0000-4000-8000-000000000001","status":"Registered"}]}'
n=$(count /mock-v2/assignments/list)
vdb sync campus
expect_eq "$RC:$(($(count /mock-v2/assignments/list) - n))" 0:1 "delta sync: one page"
expect_eq "$(jq -rs '[.[] | select(.path == "/mock-v2/assignments/list")] | last | .query' \
    "$MOCK_LOG")" "sinceVersionId=v2" "delta sync: sinceVersionId of the last sync"
expect_eq "$("$VPP" --db "$DB" assignments | wc -l):$("$VPP" --db "$DB" users | wc -l)" \
    1236:38 "delta sync: the changes added, nothing lost"
grep -q 'assignments: 1 changed since v2' "$IT_DIR/err" &&
    pass "delta sync: reported" || fail "delta sync: reported" "$(cat "$IT_DIR/err")"

# A delta that reports records gone: out of the store with that page.
control /mock/change '{"remove":{"assignments":[{"adamId":"100000001","pricingParam":"STDQ","serialNumber":"C02DELTA0001"}],"users":[{"clientUserId":"11111111-0000-4000-8000-000000000001"}]}}'
n=$(count /mock-v2/assignments/list)
vdb sync campus
expect_eq "$RC:$(($(count /mock-v2/assignments/list) - n))" 0:1 "delta removal: one page"
expect_eq "$("$VPP" --db "$DB" assignments | wc -l):$("$VPP" --db "$DB" users | wc -l)" \
    1235:37 "delta removal: the assignment and the user reported gone are removed"
expect_eq "$("$VPP" --db "$DB" assignments | grep -c C02DELTA0001)$("$VPP" --db "$DB" users |
    grep -c 11111111-0000-4000-8000-000000000001)" 00 "delta removal: the very records"
{ grep -q 'assignments: 0 changed since v3, 1 removed' "$IT_DIR/err" &&
    grep -q 'users: 0 changed since v3, 1 removed' "$IT_DIR/err"; } &&
    pass "delta removal: reported" || fail "delta removal: reported" "$(cat "$IT_DIR/err")"
# Gone twice (Apple repeats it; a rerun): nothing to remove, no error.
control /mock/change '{"remove":{"assignments":[{"adamId":"100000001","pricingParam":"STDQ","serialNumber":"C02DELTA0001"}]}}'
vdb sync campus
expect_eq "$RC:$("$VPP" --db "$DB" assignments | wc -l)" 0:1235 \
    "delta removal: a record already gone is no error"

# --config: db and vpp_url from picomdm.conf; --url and --db win.
cat >"$IT_DIR/picomdm.conf" <<EOF
# picomdm-vpp reads db and vpp_url; the rest is the responder's
db = $DB
vpp_url = https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config
workers = 4
EOF
n=$(count /mdm/v2/service/config)
RC=0
"$VPP" --config "$IT_DIR/picomdm.conf" --ca "$C/ca.pem" "${FAST[@]}" sync campus \
    >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
{ ((RC == 0)) && (($(count /mdm/v2/service/config) == n + 1)) &&
    grep -q 'campus: assignments: 0 changed since' "$IT_DIR/err"; } &&
    pass "--config: the store and the service configuration URL from picomdm.conf" ||
    fail "--config: the store and the service configuration URL from picomdm.conf" \
    "rc $RC $(cat "$IT_DIR/err")"
sed 's|^vpp_url = .*|vpp_url = https://127.0.0.1:1/mdm/v2/service/config|' \
    "$IT_DIR/picomdm.conf" >"$IT_DIR/wrong.conf"
RC=0
"$VPP" --config "$IT_DIR/wrong.conf" --ca "$C/ca.pem" "${FAST[@]}" sync campus \
    >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
((RC == 1)) && pass "--config: vpp_url is the URL used (a wrong one fails)" ||
    fail "--config: vpp_url is the URL used (a wrong one fails)" "rc $RC"
n=$(count /mdm/v2/service/config)
RC=0
"$VPP" --config "$IT_DIR/wrong.conf" --ca "$C/ca.pem" "${FAST[@]}" \
    --url "https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config" sync campus \
    >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
{ ((RC == 0)) && (($(count /mdm/v2/service/config) == n + 1)); } &&
    pass "--url overrides vpp_url" || fail "--url overrides vpp_url" "rc $RC $(cat "$IT_DIR/err")"
"$VPP" --db "$IT_DIR/otherdb" token import other "$T/good.vpptoken" >/dev/null 2>&1
RC=0
"$VPP" --config "$IT_DIR/picomdm.conf" --db "$IT_DIR/otherdb" token list \
    >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
expect_eq "$RC:$(jq -r .name "$IT_DIR/out")" 0:other "--db overrides the file's db"
printf 'db = %s\nvpp_url = http://127.0.0.1:%s/x\n' "$DB" "$MOCK_PORT" \
    >"$IT_DIR/bad.conf"
dumpv "$IT_DIR/before" --secrets
RC=0
"$VPP" --config "$IT_DIR/bad.conf" --ca "$C/ca.pem" "${FAST[@]}" sync campus \
    >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
dumpv "$IT_DIR/after" --secrets
{ ((RC == 2)) && grep -q 'vpp_url' "$IT_DIR/err" &&
    cmp -s "$IT_DIR/before" "$IT_DIR/after"; } &&
    pass "--config: an http vpp_url is refused (exit 2), nothing changed" ||
    fail "--config: an http vpp_url is refused (exit 2), nothing changed" \
    "rc $RC $(cat "$IT_DIR/err")"
RC=0
"$VPP" --config "$IT_DIR/nosuch.conf" token list >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
((RC == 2)) && pass "--config: a missing file is exit 2" ||
    fail "--config: a missing file is exit 2" "rc $RC"

# A bad record from Apple: an error, and the page is not half written.
dumpv "$IT_DIR/before" --secrets
control /mock/change '{"users":[{"clientUserId":"22222222-0000-4000-8000-000000000002","status":5}]}'
vdb sync campus
dumpv "$IT_DIR/after" --secrets
{ ((RC == 1)) && grep -q 'users page 0' "$IT_DIR/err" &&
    [[ $(grep -c vpp_user "$IT_DIR/after") == 37 ]]; } &&
    pass "sync: a record of the wrong type fails its page whole" ||
    fail "sync: a record of the wrong type fails its page whole" "rc $RC $(cat "$IT_DIR/err")"

vdb token remove campus
{ ((RC == 1)) && grep -q 'has 1,*[0-9]* asset, assignment, user, metadata and event records' "$IT_DIR/err" &&
    [[ $("$VPP" --db "$DB" token list | jq -r .name) == campus ]]; } &&
    pass "token remove: a token with records is refused without --purge" ||
    fail "token remove: a token with records is refused without --purge" "rc $RC $(cat "$IT_DIR/err")"

# --- another MDM holds the location -----------------------------------------------------
start_mock --assets 5 --assignments 5 --users 5 \
    --mdm-info '{"id":"other-mdm-7","name":"Other MDM","metadata":""}'
dumpv "$IT_DIR/before" --secrets
vdb sync campus
dumpv "$IT_DIR/after" --secrets
{ ((RC == 4)) && grep -q 'managed by another MDM (Other MDM, id other-mdm-7); --force' "$IT_DIR/err" &&
    (($(count /mock-v2/assets/list) == 0)) && cmp -s "$IT_DIR/before" "$IT_DIR/after" &&
    (($(jq -rs '[.[] | select(.method == "POST")] | length' "$MOCK_LOG") == 0)); } &&
    pass "mdmInfo: a location another MDM holds is left alone, nothing synced" ||
    fail "mdmInfo: a location another MDM holds is left alone, nothing synced" \
    "rc $RC $(cat "$IT_DIR/err")"
vdb --force sync campus
{ ((RC == 0)) && grep -q 'claimed the location from other-mdm-7 (--force)' "$IT_DIR/err" &&
    [[ $("$VPP" --db "$DB" assets | wc -l) == 5 ]] &&
    [[ $("$VPP" --db "$DB" assignments | wc -l) == 5 ]] &&
    grep -q 'assignments: versionId v[0-9]* refused (9721): listing all' "$IT_DIR/err"; } &&
    pass "mdmInfo: --force takes the location over and syncs (a versionId Apple refuses: all listed again)" ||
    fail "mdmInfo: --force takes the location over and syncs (a versionId Apple refuses: all listed again)" "rc $RC $(cat "$IT_DIR/err")"
n=$(jq -rs '[.[] | select(.method == "POST")] | length' "$MOCK_LOG")
vdb sync campus
expect_eq "$RC:$(jq -rs '[.[] | select(.method == "POST")] | length' "$MOCK_LOG")" "0:$n" \
    "mdmInfo: a location we hold is not claimed again"

# --- killed mid-sync, run again: the same result -------------------------------------
start_mock --assets 40 --assignments 3000 --users 5 --page-size 50
"$VPP" --db "$IT_DIR/ref" token import campus "$T/good.vpptoken" >/dev/null
"$VPP" --db "$IT_DIR/ref" --ca "$C/ca.pem" "${FAST[@]}" \
    --url "https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config" sync 2>/dev/null ||
    fail "kill -9: the reference sync"
rm -rf "$DB"
"$VPP" --db "$DB" token import campus "$T/good.vpptoken" >/dev/null
: >"$MOCK_LOG"
"$VPP" --db "$DB" --ca "$C/ca.pem" --rps 8 \
    --url "https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config" sync \
    >/dev/null 2>&1 &
KPID=$!
sleep 3
kill -KILL "$KPID" 2>/dev/null
wait "$KPID" 2>/dev/null || true
half=$("$VPP" --db "$DB" assignments | wc -l)
((half > 0 && half < 3000)) && pass "kill -9: killed mid-listing ($half of 3000)" ||
    fail "kill -9: killed mid-listing ($half of 3000)"
vdb sync
grep -q '(resumed)' "$IT_DIR/err" && pass "kill -9: the sync resumes at its cursor" ||
    fail "kill -9: the sync resumes at its cursor" "$(cat "$IT_DIR/err")"
strip() { "$CTL" --db "$1" dump --secrets | grep '"db":"vpp_' |
    jq -c 'del(.value.synced_at, .value.imported_at)'; }
if [[ $RC == 0 ]] && diff <(strip "$IT_DIR/ref") <(strip "$DB") >/dev/null; then
	pass "kill -9: after the rerun, the store is the uninterrupted sync's"
else
	fail "kill -9: after the rerun, the store is the uninterrupted sync's" "rc $RC"
fi
dup=$(jq -r 'select(.path == "/mock-v2/assignments/list") | .query' "$MOCK_LOG" |
    sort | uniq -d | wc -l)
expect_eq "$dup" 0 "kill -9: no assignment page fetched twice (none lost either)"

# A full listing replaces: assets Apple no longer lists are gone.
start_mock --assets 7 --assignments 3 --users 2
vdb sync campus
expect_eq "$RC:$("$VPP" --db "$DB" assets | wc -l)" 0:7 \
    "sync: a full asset listing replaces the old one"

# --- legacy v1 reads (--v1) --------------------------------------------------------------
# What only v1 carries, from the URLs v1's service configuration names:
# the organisation, facilitator and location IDs onto the token, the
# licence ID onto each assignment; batches by batchToken, then deltas
# by sinceModifiedToken.
V1DB=$IT_DIR/v1db
"$GEN" --db "$V1DB" --devices 3 --queue 0 --results 0 2>/dev/null
start_mock --assets 20 --assignments 250 --users 3 --v1-batch 100
control /mock/change '{"assignments":[{"adamId":"100000004","pricingParam":"STDQ","serialNumber":"GEN000000002"}]}'
"$VPP" --db "$V1DB" token import campus "$T/good.vpptoken" >/dev/null 2>&1
# v1db ARG...: picomdm-vpp --db V1DB with v1 reads against the mock.
v1db() {
	RC=0
	"$VPP" --db "$V1DB" --ca "$C/ca.pem" "${FAST[@]}" \
	    --url "https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config" \
	    --v1-url "https://127.0.0.1:$MOCK_PORT/mdm/VPPServiceConfigSrv" "$@" \
	    >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
}
v1db sync campus
expect_eq "$RC" 0 "v1: sync --v1-url exit 0"
expect_eq "$("$VPP" --db "$V1DB" token list |
    jq -r '[.org_id, .facilitator_member_id, .location_id] | join(" ")')" \
    "1234567890123 4242 22222222222" "v1: organisation, facilitator and location IDs on the token"
expect_eq "$("$VPP" --db "$V1DB" assignments | jq -r 'select(.serial_number |
    startswith("C02MOCK")) | select(.license_id == (900000000 +
    (.serial_number[7:] | tonumber) | tostring)) | .serial_number' | wc -l)" 250 \
    "v1: each of the 250 assignments has its own licence ID"
expect_eq "$(jq -rs '[.[] | select(.path == "/mock-v1/getVPPLicensesSrv")] | length' \
    "$MOCK_LOG"):$(jq -rs '[.[] | select(.path | startswith("/mock-v1/")) | .auth] | all' \
    "$MOCK_LOG")" "3:true" "v1: 3 licence batches by batchToken, the sToken in each"
expect_eq "$(jq -rs '[.[] | select(.path | test("v1|VPPServiceConfig"))][0].path' "$MOCK_LOG")" \
    /mdm/VPPServiceConfigSrv "v1: its service configuration read first, its URLs used"
grep -q 'v1 licences: 251 licence IDs onto assignments, 0 without one' "$IT_DIR/err" &&
    pass "v1: reported" || fail "v1: reported" "$(cat "$IT_DIR/err")"
"$CTL" --db "$V1DB" inventory GEN000000002 --json >"$IT_DIR/inv"
expect_eq "$(jq -r '.services[] | select(.service == "VPP") | .fields[] |
    select(.field == "licenseId") | [.message, .value, (.purpose | length > 10)] |
    map(tostring) | join("|")' "$IT_DIR/inv")" "licences|950000001|true" \
    "v1: inventory shows the device's licence ID with its purpose"
expect_eq "$(jq -r '.services[] | select(.service == "VPP") | .fields[] |
    select(.message == "client config") | [.field, .value, (.purpose | length > 10)] |
    map(tostring) | join("|")' "$IT_DIR/inv" | LC_ALL=C sort | tr '\n' ' ')" \
    "facilitatorMemberId|4242|true location.locationId|22222222222|true organizationIdHash|$(printf '5f1e%.0s' {1..16})|true organizationId|1234567890123|true " \
    "v1: inventory shows v1's IDs of the licence's token with their purposes"
"$CTL" --db "$V1DB" check >/dev/null 2>&1 && pass "v1: the store checks clean" ||
    fail "v1: the store checks clean"
# A delta: only the licences of what changed.
control /mock/change '{"assignments":[{"adamId":"100000005","pricingParam":"STDQ","serialNumber":"C02V1NEW0001"},{"adamId":"100000006","pricingParam":"STDQ","clientUserId":"00000000-0000-4000-8000-000000000001"}]}'
v1db sync campus
{ ((RC == 0)) && grep -q 'v1 licences: 2 licence IDs onto assignments, 0 without one, modified since m2' "$IT_DIR/err"; } &&
    pass "v1: a delta by sinceModifiedToken lists only the new licences" ||
    fail "v1: a delta by sinceModifiedToken lists only the new licences" "rc $RC $(cat "$IT_DIR/err")"
expect_eq "$("$VPP" --db "$V1DB" assignments | jq -r 'select(.client_user_id != null) |
    .client_user_id + " " + .license_id')" \
    "00000000-0000-4000-8000-000000000001 950000003" "v1: a user's licence too"
# Errors: v1's errorNumber on HTTP 200 is an error and changes nothing;
# 503 with Retry-After is waited out; a token error is exit 3.
dumpv1() { "$CTL" --db "$V1DB" dump --secrets | grep '"db":"vpp_' >"$1" || true; }
dumpv1 "$IT_DIR/before"
control /mock/fail '{"path":"/mock-v1/getVPPLicensesSrv","answers":[{"status":200,"errorNumber":9603,"errorMessage":"Internal error"}]}'
v1db sync campus
dumpv1 "$IT_DIR/after"
{ ((RC == 1)) && grep -q 'Apple error 9603 (HTTP 200): Internal error' "$IT_DIR/err" &&
    diff <(jq -c 'del(.value.synced_at)' "$IT_DIR/before") \
    <(jq -c 'del(.value.synced_at)' "$IT_DIR/after") >/dev/null; } &&
    pass "v1: status -1 with errorNumber on HTTP 200 is an error, the licences unchanged" ||
    fail "v1: status -1 with errorNumber on HTTP 200 is an error, the licences unchanged" \
    "rc $RC $(cat "$IT_DIR/err")"
control /mock/fail '{"path":"/mock-v1/VPPClientConfigSrv","answers":[{"status":503,"errorNumber":9603,"retry_after":"1"}]}'
v1db sync campus
expect_eq "$RC" 0 "v1: 503 with Retry-After is retried"
control /mock/fail '{"path":"/mock-v1/VPPClientConfigSrv","answers":[{"status":200,"errorNumber":9625}]}'
v1db sync campus
{ ((RC == 3)) && grep -q 'revoked (9625)' "$IT_DIR/err"; } &&
    pass "v1: a token error is exit 3" || fail "v1: a token error is exit 3" "rc $RC $(cat "$IT_DIR/err")"
# A whole v2 assignment listing replaces the assignments and their
# licence IDs: the v1 listing after it is whole too.
start_mock --assets 20 --assignments 120 --users 3 --v1-batch 100
v1db sync campus
{ ((RC == 0)) && grep -q 'v1 licences: 120 licence IDs onto assignments, 0 without one$' "$IT_DIR/err" &&
    [[ $("$VPP" --db "$V1DB" assignments | jq -r 'select(.license_id != null) |
    .serial_number' | wc -l) == 120 ]]; } &&
    pass "v1: after a whole v2 listing, a whole v1 listing" ||
    fail "v1: after a whole v2 listing, a whole v1 listing" "rc $RC $(cat "$IT_DIR/err")"
v1db sync campus
{ ((RC == 0)) && grep -q 'modified since m1' "$IT_DIR/err" &&
    [[ $("$VPP" --db "$V1DB" assignments | jq -r 'select(.license_id != null) |
    .serial_number' | wc -l) == 120 ]]; } &&
    pass "v1: the delta after a whole listing keeps every licence ID" ||
    fail "v1: the delta after a whole listing keeps every licence ID" "rc $RC $(cat "$IT_DIR/err")"
# A licence listing stopped after its first batch resumes at the second.
rm -rf "$V1DB"
"$VPP" --db "$V1DB" token import campus "$T/good.vpptoken" >/dev/null 2>&1
start_mock --assets 20 --assignments 250 --users 3 --v1-batch 100
control /mock/fail '{"path":"/mock-v1/getVPPLicensesSrv","answers":[{"pass":true},{"status":200,"errorNumber":9603}]}'
v1db sync campus
half=$("$VPP" --db "$V1DB" assignments | jq -r 'select(.license_id != null) | .license_id' | wc -l)
expect_eq "$RC:$half" 1:100 "v1: stopped after the first batch, its 100 licence IDs kept"
v1db sync campus
{ ((RC == 0)) && grep -q 'v1 licences: 150 licence IDs onto assignments, 0 without one (resumed)' "$IT_DIR/err" &&
    [[ $("$VPP" --db "$V1DB" assignments | jq -r 'select(.license_id != null) | .license_id' |
    sort -u | wc -l) == 250 ]] &&
    [[ $(jq -rs '[.[] | select(.path == "/mock-v1/getVPPLicensesSrv" and .errorNumber == 0)] | length' \
    "$MOCK_LOG") == 3 ]]; } &&
    pass "v1: the rerun resumes at the batch after the last one written, none fetched twice" ||
    fail "v1: the rerun resumes at the batch after the last one written, none fetched twice" \
    "rc $RC $(cat "$IT_DIR/err")"
n=$(jq -rs '[.[] | select(.path | startswith("/mock-v1/"))] | length' "$MOCK_LOG")
RC=0
"$VPP" --db "$V1DB" --ca "$C/ca.pem" \
    --url "https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config" sync campus \
    >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
expect_eq "$RC:$(($(jq -rs '[.[] | select(.path | startswith("/mock-v1/"))] | length' \
    "$MOCK_LOG") - n))" 0:0 "v1: without --v1 no v1 request"

# --- purge --token ---------------------------------------------------------------------
"$GEN" --db "$DB" --devices 3 --queue 0 --results 0 2>/dev/null
"$CTL" --db "$DB" dump | grep -v -e '"db":"vpp_' -e '"end":true' >"$IT_DIR/rest.before"
RC=0
"$CTL" --db "$DB" purge --token campus --yes >"$IT_DIR/out" 2>&1 || RC=$?
expect_eq "$RC" 0 "purge --token: exit 0"
expect_eq "$("$CTL" --db "$DB" dump | grep -c '"db":"vpp_')" 0 \
    "purge --token: every VPP record of the token gone"
"$CTL" --db "$DB" dump | grep -v -e '"db":"vpp_' -e '"end":true' >"$IT_DIR/rest.after"
cmp -s "$IT_DIR/rest.before" "$IT_DIR/rest.after" &&
    pass "purge --token: nothing else removed" ||
    fail "purge --token: nothing else removed"
grep -q $'removed\tvpp_assignment\t3000' "$IT_DIR/out" &&
    pass "purge --token: reports what it removed" ||
    fail "purge --token: reports what it removed" "$(cat "$IT_DIR/out")"

# --- the operator API: GET /api/v1/vpp/... ------------------------------------------------
# The responder, nginx and a store of their own (it_start makes a new
# IT_DIR; this one, with the certificates and tokens, goes at the end).
stop_mock
VPP_DIR=$IT_DIR
it_start
# shellcheck source-path=SCRIPTDIR source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"
DB=$IT_DB
start_mock --assets 30 --assignments 25 --users 4 --page-size 10
vdb token import campus "$T/good.vpptoken"
vdb sync campus
expect_eq "$RC" 0 "api: synced into the responder's store while it runs"
api GET /api/v1/vpp/assets
expect_status 200 "api: GET vpp/assets"
expect_body_jq '[(.assets | length), (.next | tostring), .assets[0].token] | map(tostring) | join(" ")' \
    "30 null campus" "api: every asset, with its token"
api GET '/api/v1/vpp/assignments?limit=10'
expect_body_jq '[(.assignments | length), (.next | type)] | map(tostring) | join(" ")' \
    "10 string" "api: a first page and the cursor of the next"
# Every page by its cursor: each assignment once, in order.
all=() after='' pages=0
while :; do
	api GET "/api/v1/vpp/assignments?limit=7${after:+&after=$after}"
	[[ $STATUS == 200 ]] || break
	mapfile -t -O "${#all[@]}" all < <(jq -r '.assignments[].serial_number' "$BODY")
	after=$(jq -r '.next // empty' "$BODY")
	pages=$((pages + 1))
	[[ -n $after && $pages -lt 20 ]] || break
done
expect_eq "$pages:${#all[@]}:$(printf '%s\n' "${all[@]}" | sort -u | wc -l)" "4:25:25" \
    "api: 25 assignments over 4 pages by after, each once"
# Stable while records come and go between pages: remove one not yet
# seen and one already seen, add two; the rest of the walk neither
# repeats nor skips a record that stayed.
api GET '/api/v1/vpp/assignments?limit=10'
first=$(jq -r '.assignments[].serial_number' "$BODY")
cur=$(jq -r .next "$BODY")
control /mock/change '{"assignments":[{"adamId":"100000003","pricingParam":"STDQ","serialNumber":"C02MOCK00000A"},{"adamId":"100000003","pricingParam":"STDQ","serialNumber":"ZZZAPINEW0001"}],"remove":{"assignments":[{"adamId":"100000000","pricingParam":"STDQ","serialNumber":"C02MOCK00000"},{"adamId":"100000020","pricingParam":"STDQ","serialNumber":"C02MOCK00020"}]}}'
vdb sync campus
rest=()
while [[ -n $cur ]]; do
	api GET "/api/v1/vpp/assignments?limit=10&after=$cur"
	[[ $STATUS == 200 ]] || break
	mapfile -t -O "${#rest[@]}" rest < <(jq -r '.assignments[].serial_number' "$BODY")
	cur=$(jq -r '.next // empty' "$BODY")
done
seen=$(printf '%s\n' $first "${rest[@]}" | sort)
want=$({ "$VPP" --db "$DB" assignments | jq -r .serial_number; echo C02MOCK00000; } | sort)
{ [[ $seen == "$want" ]] && ! printf '%s\n' "${rest[@]}" | grep -q C02MOCK00020 &&
    printf '%s\n' "${rest[@]}" | grep -qx ZZZAPINEW0001; } &&
    pass "api: paging by after is stable while records are added and removed" ||
    fail "api: paging by after is stable while records are added and removed" \
    "$(diff <(echo "$seen") <(echo "$want") | head -5 | tr '\n' ' ')"
api GET '/api/v1/vpp/assignments?after=zz'
expect_api_error 400 "api: a cursor that is not hex is 400"
api GET '/api/v1/vpp/assignments?after=0001'
expect_api_error 400 "api: a cursor that is not a key is 400"
api GET '/api/v1/vpp/assets?limit=1'
c=$(jq -r .next "$BODY")
api GET "/api/v1/vpp/assets?after=$c&token=other"
expect_api_error 400 "api: a cursor of another token is 400"
api GET "/api/v1/vpp/assets?after=$c&token=campus&limit=1000"
expect_body_jq '.assets | length' 29 "api: a cursor of the token is good with token="
api GET '/api/v1/vpp/assignments?offset=20'
expect_api_error 400 "api: offset is no longer a parameter (400)"
api GET '/api/v1/vpp/users?token=campus'
expect_body_jq '.users | map(.client_user_id) | length' 4 "api: users of one token"
api GET '/api/v1/vpp/users?token=nosuch'
expect_body_jq '.users | length' 0 "api: no users for a token that does not exist"
api GET '/api/v1/vpp/assets?token='
expect_api_error 400 "api: an empty token filter is 400, as on ade/devices" "token: empty"
api GET "/api/v1/vpp/assets?token=$(printf 'a%.0s' $(seq 600))"
expect_api_error 400 "api: a token name too long for any token is 400, naming token" \
    "token: longer than any"
api GET "/api/v1/vpp/assets?token=$(printf 'a%.0s' $(seq 509))"
expect_body_jq '[(.assets|length), .next] | @csv' '0,' \
    "api: a token name of 509 bytes is a filter"
api GET "/api/v1/vpp/assets?token=$(printf 'a%.0s' $(seq 510))"
expect_api_error 400 "api: a token name of 510 bytes is 400" \
    "token: longer than any token's name (509 bytes)"
for q in limit after; do
	api GET "/api/v1/vpp/users?$q="
	expect_api_error 400 "api: an empty $q is 400" "$q: empty"
done
api GET "/api/v1/vpp/users?after=$(printf '0%.0s' $(seq 1024))"
expect_api_error 400 "api: an after longer than any cursor is 400" \
    "after: longer than any cursor (1022 bytes)"
api GET /api/v1/vpp/licences
expect_api_error 404 "api: vpp/ of nothing is 404"
api GET '/api/v1/vpp/assets?limit=0'
expect_api_error 400 "api: a bad limit is 400"
put_raw /api/v1/vpp/assets
expect_status 401 "api: vpp/ needs the API key"
stop_mock
rm -rf "$VPP_DIR"
it_done
