#!/usr/bin/env bash
#
# test-vpp-meta.sh - Apps and Books app metadata and App Store installs
# (tools/vpp_meta.c, module/store_vpp_meta.c, module/api_vpp_install.c)
# against tests/mock-vpp.py over TLS, with the responder and nginx:
#
#   - sync fetches the metadata of the token's assets from the lookup
#     URL the service configuration names (the sToken as the itvt
#     cookie, no bearer), in batches; an app the lookup does not know is
#     kept as "not found"; the fields land in picomdm-vpp metadata, in
#     show SERIAL's vpp list, in inventory SERIAL (with their purpose)
#     and in GET /api/v1/vpp/metadata; dump/restore round-trips them;
#   - the refresh age: a second sync asks for nothing, a new asset alone
#     is asked for, meta --refresh and an age passed ask for all again
#     (the mock counts every adamId asked for);
#   - a failed lookup changes no metadata and never undoes the assets a
#     sync wrote; the metadata of assets gone from the listing goes;
#   - InstallApplication with an iTunesStoreID through POST (JSON) and
#     PUT (plist) enqueue: accepted for a device holding a licence of the
#     adamId (of any token, or of ?vpp_token=), refused 409 naming the
#     serial and adamId otherwise, with nothing queued to any enrollment;
#   - purge --token removes the metadata with the token (--verify), and
#     a licence gone makes the install refused, even when it goes while
#     the install waits to be queued (the check is in the enqueue's
#     transaction).

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

VPP=$PM_BUILD/picomdm-vpp
CTL=$PM_BUILD/picomdmctl
[[ -x $VPP && -x $CTL ]] || it_abort "setup: picomdm-vpp or picomdmctl not built"

it_start
# shellcheck source-path=SCRIPTDIR source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"
DB=$IT_DB
# shellcheck source-path=SCRIPTDIR source=lib-vpp.sh
. "$(dirname "$0")/lib-vpp.sh"
vpp_certs
vpp_mktoken "$IT_DIR/good.vpptoken" "Example Org" 2030-11-08T22:33:22+0000
VPP_TOKEN=$IT_DIR/good.vpptoken
VPP_MOCK_ARGS=(--max-rps 50 --meta)
start_mock --assets 30 --assignments 0 --users 2 --meta-missing 2

# vdb ARG...: picomdm-vpp --db against the mock; RC, out, err.
vdb() {
	RC=0
	"$VPP" --db "$DB" --ca "$C/ca.pem" --rps 50 \
	    --url "https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config" "$@" \
	    >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
}
# lookups: the mock's count of each adamId asked for, as "id:n" sorted.
lookups() {
	curl -sS --fail --cacert "$C/ca.pem" \
	    "https://127.0.0.1:$MOCK_PORT/mock/lookups" |
	    jq -r 'to_entries | map("\(.key):\(.value)") | sort | join(" ")'
}
# same N: every one of the 30 first adamIds asked for N times.
same() {
	local i s=
	for ((i = 0; i < 30; i++)); do s+="$((100000000 + i)):$1 "; done
	printf '%s' "${s% }"
}
metadump() {
	"$CTL" --db "$DB" dump | grep '"db":"vpp_metadata"' >"$1" || true
}
queued() {
	api GET "/api/v1/queue/$1"
	jq -r '.queue | length' "$BODY"
}

udid1=00008110-000A1B2C3D4E5F61
udid2=00008110-000F6E5D4C3B2A11
serial1=VPPMETA00001
serial2=VPPMETA00002
enroll "$udid1" device1 "$serial1"
enroll "$udid2" device2 "$serial2"
control /mock/change "{\"assignments\":[{\"adamId\":\"100000003\",\"pricingParam\":\"STDQ\",\"serialNumber\":\"$serial1\"},{\"adamId\":\"100000028\",\"pricingParam\":\"STDQ\",\"serialNumber\":\"$serial2\"}]}"

# --- the fetch after sync ---------------------------------------------------------
vdb token import campus "$VPP_TOKEN"
vdb sync campus
expect_eq "$RC" 0 "sync: exit 0"
grep -q 'campus: metadata: 28 fetched, 2 not found, 0 current, 0 removed' "$IT_DIR/err" &&
    pass "sync: the metadata of 30 assets fetched, 2 unknown to the lookup" ||
    fail "sync: the metadata of 30 assets fetched, 2 unknown to the lookup" "$(cat "$IT_DIR/err")"
expect_eq "$(lookups)" "$(same 1)" "sync: each adamId asked for once"
expect_eq "$(jq -rs '[.[] | select(.path == "/mock-v2/lookup")] |
    "\(map("\(.status):\(.auth)") | unique | join(" ")) \(length)"' "$MOCK_LOG")" "200:true 2" \
    "sync: two lookups (batches of 20) at the service configuration's URL, with the cookie and no bearer"
vdb metadata campus
m3=$(jq -c 'select(.adam_id == "100000003")' "$IT_DIR/out")
expect_eq "$(wc -l <"$IT_DIR/out"):$(jq -r '[.name, .bundle_id, .icon_url, .genres,
    .store_url, .copyright, .description, .status] | join("|")' <<<"$m3")" \
    "30:Mock App 3|com.example.mock3|https://is1.example.invalid/100000003/512.png|Education, Productivity|https://apps.example.invalid/app/id100000003|© 2026 Example Developer|The mock app number 3.|found" \
    "metadata: every field of an app stored"
expect_eq "$(jq -r 'select(.adam_id == "100000004") | .icon_url' "$IT_DIR/out")" \
    "https://is1.example.invalid/100000004/512x512bb.png" \
    "metadata: an artwork URL template gets its size and format"
expect_eq "$(jq -r 'select(.status == "not found") | .adam_id + ":" + (.name // "-")' \
    "$IT_DIR/out" | tr '\n' ' ')" "100000028:- 100000029:- " \
    "metadata: an app the lookup does not know is kept as not found"
"$CTL" --db "$DB" check >"$IT_DIR/check" 2>&1 && pass "check: clean with metadata" ||
    fail "check: clean with metadata" "$(head -3 "$IT_DIR/check")"

# --- views ------------------------------------------------------------------------
"$CTL" --db "$DB" show "$serial1" >"$IT_DIR/show"
expect_eq "$(jq -r '.vpp[] | [.adam_id, .name, .bundle_id, .token,
    (.assigned_at | test("^20[0-9-]+T"))] | map(tostring) | join("|")' "$IT_DIR/show")" \
    "100000003|Mock App 3|com.example.mock3|campus|true" \
    "show: the vpp list has adamId, app name, bundleId, assigned at and token"
"$CTL" --db "$DB" inventory "$serial1" --json >"$IT_DIR/inv"
expect_eq "$(jq -r '.services[] | select(.service == "VPP") | .fields[] |
    select(.message == "app metadata") | [.field, (.purpose | length > 10),
    (.received_at != null)] | map(tostring) | join("|")' "$IT_DIR/inv" | sort | tr '\n' ' ')" \
    "artwork.url|true|true bundleId|true|true copyright|true|true description.standard|true|true genreNames|true|true id|true|true name|true|true url|true|true " \
    "inventory: every metadata field under the VPP service, with purpose and time"
expect_eq "$(jq -r '.services[] | select(.service == "VPP") | .fields[] |
    select(.message == "app metadata" and .field == "name") | .value' "$IT_DIR/inv")" \
    "Mock App 3" "inventory: the licensed app's name"
expect_eq "$("$CTL" --db "$DB" inventory "$serial2" --json | jq -r '.services[] |
    select(.service == "VPP") | .fields[] | .message + "|" + .field' | sort | tr '\n' ' ')" \
    "assignments|adamId assignments|pricingParam assignments|serialNumber " \
    "inventory: no metadata rows for an app the lookup did not know"
expect_eq "$("$CTL" --db "$DB" show "$serial2" | jq -r '.vpp[] | [.adam_id, .name] | map(tostring) | join("|")')" \
    "100000028|null" "show: no name for an app the lookup did not know"
api GET '/api/v1/vpp/metadata?token=campus&limit=100'
expect_body_jq '[(.metadata | length), (.metadata[] | select(.adam_id == "100000003") |
    .name + "|" + .bundle_id + "|" + .token)] | map(tostring) | join(" ")' \
    "30 Mock App 3|com.example.mock3|campus" "api: GET vpp/metadata"

# --- the refresh age --------------------------------------------------------------
vdb sync campus
{ ((RC == 0)) && grep -q 'metadata: 0 fetched, 0 not found, 30 current' "$IT_DIR/err" &&
    [[ $(lookups) == "$(same 1)" ]]; } &&
    pass "refresh age: a second sync asks the lookup for nothing" ||
    fail "refresh age: a second sync asks the lookup for nothing" "rc $RC $(lookups | head -c 200)"
control /mock/change '{"assets":[{"adamId":"100000100","pricingParam":"STDQ","productType":"App","assignedCount":0,"availableCount":5,"retiredCount":0,"totalCount":5,"deviceAssignable":true,"revocable":true}]}'
vdb sync campus
{ ((RC == 0)) && [[ $(lookups) == "$(same 1) 100000100:1" ]] &&
    grep -q 'metadata: 1 fetched, 0 not found, 30 current' "$IT_DIR/err"; } &&
    pass "refresh age: only the new asset is asked for" ||
    fail "refresh age: only the new asset is asked for" "rc $RC $(cat "$IT_DIR/err")"
vdb meta --refresh campus
{ ((RC == 0)) && [[ $(lookups) == "$(same 2) 100000100:2" ]]; } &&
    pass "meta --refresh: every asset asked for again" ||
    fail "meta --refresh: every asset asked for again" "rc $RC $(cat "$IT_DIR/err")"
vdb meta --meta-max-age 3600 campus
expect_eq "$RC:$(lookups)" "0:$(same 2) 100000100:2" "meta: younger than --meta-max-age, nothing asked"
sleep 1.2
vdb meta --meta-max-age 1 campus
expect_eq "$RC:$(lookups)" "0:$(same 3) 100000100:3" "meta: older than --meta-max-age, asked again"
vdb sync --refresh campus
expect_eq "$RC" 2 "--refresh is for meta only"

# --- a failed lookup ----------------------------------------------------------------
metadump "$IT_DIR/m.before"
control /mock/fail '{"path":"/mock-v2/lookup","answers":[{"status":500,"errorNumber":0,"errorMessage":"lookup down"}]}'
vdb meta --refresh campus
metadump "$IT_DIR/m.after"
{ ((RC == 1)) && grep -q 'metadata: unexpected answer: HTTP 500 (the assets stay as synced)' "$IT_DIR/err" &&
    cmp -s "$IT_DIR/m.before" "$IT_DIR/m.after"; } &&
    pass "a failed lookup: an error, no metadata changed" ||
    fail "a failed lookup: an error, no metadata changed" "rc $RC $(cat "$IT_DIR/err")"
control /mock/change '{"assets":[{"adamId":"100000101","pricingParam":"STDQ","productType":"App","assignedCount":0,"availableCount":5,"retiredCount":0,"totalCount":5,"deviceAssignable":true,"revocable":true}]}'
control /mock/fail '{"path":"/mock-v2/lookup","answers":[{"status":503,"errorMessage":"lookup down"}]}'
vdb sync campus
{ ((RC == 0)) && grep -q 'campus: metadata: unexpected answer: HTTP 503' "$IT_DIR/err" &&
    [[ $("$VPP" --db "$DB" assets campus | jq -r .adam_id | grep -c 100000101) == 1 ]] &&
    [[ $("$VPP" --db "$DB" metadata campus | jq -r .adam_id | grep -c 100000101) == 0 ]]; } &&
    pass "a failed lookup after a sync: the sync's assets stay, exit 0" ||
    fail "a failed lookup after a sync: the sync's assets stay, exit 0" "rc $RC $(cat "$IT_DIR/err")"

# --- dump and restore -----------------------------------------------------------------
"$CTL" --db "$DB" dump --secrets >"$IT_DIR/full.json"
"$CTL" --db "$IT_DIR/restored" restore "$IT_DIR/full.json" >/dev/null 2>&1 ||
    fail "dump/restore: restore"
if "$CTL" --db "$IT_DIR/restored" dump --secrets | cmp -s - "$IT_DIR/full.json" &&
    "$CTL" --db "$IT_DIR/restored" check >/dev/null 2>&1 &&
    [[ $(grep -c '"db":"vpp_metadata"' "$IT_DIR/full.json") == 31 ]]; then
	pass "dump/restore: the metadata round-trips byte for byte and checks clean"
else
	fail "dump/restore: the metadata round-trips byte for byte and checks clean"
fi

# --- InstallApplication: the licence check ---------------------------------------------
ins='{"request_type":"InstallApplication","iTunesStoreID":100000003,"ManagementFlags":1,"Options":{"PurchaseMethod":1},"InstallAsManaged":true}'
api POST "/api/v1/enqueue/$udid1" -H 'Content-Type: application/json' --data-binary "$ins"
expect_status 200 "install: a device holding a licence of the adamId: queued"
api POST "/api/v1/enqueue/$udid1?vpp_token=campus" -H 'Content-Type: application/json' \
    --data-binary "$ins"
expect_status 200 "install: with the licence of the token named: queued"
q1=$(queued "$udid1")
q2=$(queued "$udid2")
expect_eq "$q1:$q2" "2:0" "install: the queues before the refusals"
api POST "/api/v1/enqueue/$udid2" -H 'Content-Type: application/json' --data-binary "$ins"
expect_api_error 409 "install: no licence: 409 naming the serial and adamId" \
    "serial $serial2 holds no Apps and Books licence of adamId 100000003"
api POST "/api/v1/enqueue/$udid1,$udid2" -H 'Content-Type: application/json' \
    --data-binary "$ins"
expect_api_error 409 "install: one of two enrollments without a licence: refused whole" \
    "serial $serial2"
api POST "/api/v1/enqueue/$udid1" -H 'Content-Type: application/json' \
    --data-binary "${ins/100000003/100000005}"
expect_api_error 409 "install: an adamId the device holds no licence of" "adamId 100000005"
api POST "/api/v1/enqueue/$udid1?vpp_token=other" -H 'Content-Type: application/json' \
    --data-binary "$ins"
expect_api_error 404 "install: an unknown vpp_token" "no Apps and Books token other"
"$VPP" --db "$DB" token import other "$VPP_TOKEN" >/dev/null 2>&1 ||
    fail "setup: token import other"
api POST "/api/v1/enqueue/$udid1?vpp_token=other" -H 'Content-Type: application/json' \
    --data-binary "$ins"
expect_api_error 409 "install: a licence of another token than the one named does not count" \
    "adamId 100000003 from token other"
"$VPP" --db "$DB" token remove other >/dev/null 2>&1 || fail "setup: token remove other"
api PUT "/api/v1/enqueue/$udid2" --data-binary "@$(cmd_plist \
    22222222-3333-4444-8555-666666666661 InstallApplication \
    '<key>iTunesStoreID</key><integer>100000003</integer>' \
    '<key>ManagementFlags</key><integer>1</integer>')"
expect_api_error 409 "install: the plist form is checked too" "serial $serial2"
# An iTunesStoreID that is no adamId (negative, 0) is the request's
# fault: 400, not a 409 naming an adamId read as unsigned.
for id in -1 0 -9223372036854775808; do
	api POST "/api/v1/enqueue/$udid1" -H 'Content-Type: application/json' \
	    --data-binary "${ins/100000003/$id}"
	expect_api_error 400 "install: iTunesStoreID $id: 400" \
	    "iTunesStoreID: want the app's adamId, a whole number from 1 to 9223372036854775807"
done
api PUT "/api/v1/enqueue/$udid1" --data-binary "@$(cmd_plist \
    22222222-3333-4444-8555-666666666662 InstallApplication \
    '<key>iTunesStoreID</key><integer>-361309726</integer>')"
expect_api_error 400 "install: a negative iTunesStoreID in a plist: 400" \
    "iTunesStoreID: want the app's adamId"
expect_eq "$(queued "$udid1"):$(queued "$udid2")" "$q1:$q2" \
    "install: nothing queued by any refusal"
api POST "/api/v1/enqueue/$udid2" -H 'Content-Type: application/json' \
    --data-binary '{"request_type":"InstallApplication","ManifestURL":"https://apps.example.invalid/manifest.plist","ManagementFlags":1}'
expect_status 200 "install: an install by ManifestURL needs no licence"
api POST "/api/v1/enqueue/$udid2?vpp_token=campus" -H 'Content-Type: application/json' \
    --data-binary '{"request_type":"DeviceInformation","Queries":["UDID"]}'
expect_api_error 400 "vpp_token on another command is refused" "only for an InstallApplication"

# --- assets gone: their metadata goes ----------------------------------------------------
start_mock --assets 25 --assignments 0 --users 2
vdb sync campus
{ ((RC == 0)) && grep -q 'metadata: 0 fetched, 0 not found, 25 current, 6 removed' "$IT_DIR/err" &&
    [[ $("$VPP" --db "$DB" metadata campus | wc -l) == 25 ]]; } &&
    pass "sync: the metadata of assets the token no longer holds is removed" ||
    fail "sync: the metadata of assets the token no longer holds is removed" "rc $RC $(cat "$IT_DIR/err")"

# --- purge --token ----------------------------------------------------------------------
RC=0
"$CTL" --db "$DB" purge --token campus --yes --verify >"$IT_DIR/out" 2>&1 || RC=$?
{ ((RC == 0)) && grep -q $'^removed\tvpp_metadata\t25$' "$IT_DIR/out" &&
    grep -q $'^verify\t0 hits' "$IT_DIR/out" &&
    [[ $("$CTL" --db "$DB" dump | grep -c '"db":"vpp_') == 0 ]]; } &&
    pass "purge --token: the metadata goes with the token, --verify finds nothing" ||
    fail "purge --token: the metadata goes with the token, --verify finds nothing" \
    "rc $RC $(tr '\n' ' ' <"$IT_DIR/out" | head -c 300)"
expect_eq "$("$CTL" --db "$DB" show "$serial1" | jq -c .vpp)" "[]" \
    "purge --token: no vpp list left"
api POST "/api/v1/enqueue/$udid1" -H 'Content-Type: application/json' --data-binary "$ins"
expect_api_error 409 "install: refused once the licence is gone" "serial $serial1"

# --- the licence check and the enqueue are one transaction ------------------------------
# The licence goes while an install is under way: picomdm-vpp token
# remove --purge holds LMDB's write lock through the 3 s of its commit's
# sync (tests/integration/syncshim.c, preloaded, makes it slow), its
# removal not yet seen by readers, when the install is sent. A check in
# a read transaction of its own would still see the licence, and the
# enqueue, waiting for the lock, would then queue the install; checked
# in the enqueue's write transaction, it runs after the removal and
# refuses.
shim=$IT_DIR/syncshim.so
cc -shared -fPIC -O2 -o "$shim" "$IT_LIB_DIR/syncshim.c" ||
    it_abort "setup: cc syncshim.c"
vdb token import campus "$VPP_TOKEN"
((RC == 0)) || it_abort "setup: token import campus again" "$(cat "$IT_DIR/err")"
start_mock --assets 5 --assignments 0 --users 0
control /mock/change "{\"assignments\":[{\"adamId\":\"100000003\",\"pricingParam\":\"STDQ\",\"serialNumber\":\"$serial1\"}]}"
vdb sync campus
((RC == 0)) || it_abort "setup: sync campus again" "$(cat "$IT_DIR/err")"
api POST "/api/v1/enqueue/$udid1" -H 'Content-Type: application/json' --data-binary "$ins"
expect_status 200 "install: the licence synced again: queued"
q1=$(queued "$udid1")
synclog=$IT_DIR/remove.syncs
: >"$synclog"
LD_PRELOAD="$shim" SYNCSHIM_LOG="$synclog" SYNCSHIM_DELAY_MS=3000 \
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
    "$VPP" --db "$DB" token remove campus --purge >"$IT_DIR/remove.out" 2>&1 &
rmpid=$!
# The removal's commit has begun its sync: the lock is held.
for ((i = 0; i < 200; i++)); do
	[[ -s $synclog ]] && break
	sleep 0.02
done
t0=$(date +%s%N)
api POST "/api/v1/enqueue/$udid1" -H 'Content-Type: application/json' --data-binary "$ins"
ms=$((($(date +%s%N) - t0) / 1000000))
RC=0
wait "$rmpid" || RC=$?
expect_eq "$RC:$(stat -c %s "$synclog")" "0:1" \
    "install race: token remove --purge made one commit, slowed by its sync"
((ms >= 500)) && pass "install race: the enqueue waited for the removal (${ms} ms)" ||
    fail "install race: the enqueue waited for the removal" "answered in ${ms} ms"
expect_api_error 409 "install race: the licence removed during the enqueue: 409" \
    "serial $serial1 holds no Apps and Books licence of adamId 100000003"
expect_eq "$(queued "$udid1")" "$q1" "install race: nothing queued"

kill -TERM "$MOCK_PID" 2>/dev/null || true
it_done
