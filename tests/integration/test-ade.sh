#!/usr/bin/env bash
# "COND && pass || fail" is safe here (pass never fails).
# shellcheck disable=SC2015,SC2317
#
# test-ade.sh - ADE in the store: picomdm-dep --db against
# tests/mock-dep.py, with the responder running on the same store
# (picomdm-dep(8), picomdmctl(8) show/inventory/purge --token,
# picomdm-api(7) "ADE devices"):
#
#   - token new keeps the key pair in the store and writes the
#     certificate; a second token of that name is refused; token import
#     decrypts a .p7m made here with openssl smime -encrypt to it,
#     refusing one encrypted to another certificate and an expired one
#     (nothing changes); token list shows org, server, expiry and warns
#     30 days ahead; no secret is printed or in a dump without --secrets,
#     and dump --secrets then restore gives them back byte for byte;
#   - sync: /account kept with the token; a full fetch of 10,000 devices
#     over 100 pages, every page requested once; added/modified/deleted
#     applied (a deleted device kept as a tombstone); EXPIRED_CURSOR
#     fetches everything again;
#   - sync killed with SIGKILL mid-fetch: the store holds exactly the
#     devices of the pages before the stored cursor (page and cursor in
#     one transaction), and the restarted sync continues from that
#     cursor to the same result as an uninterrupted one;
#   - sync --daemon passes again every --interval and stops on SIGTERM;
#   - profile define (url from --enroll-url, or from picomdm.conf's
#     server_url with --config; --default), show, assign
#     (THROTTLED serials sent again), remove; sync --auto-assign assigns
#     added devices to the token's default profile;
#   - show SERIAL has the ade object, with and without an enrollment;
#     inventory lists every ADE field with its purpose;
#   - GET /api/v1/ade/devices (token, profile_status, enrolled, paging)
#     and /ade/devices/SERIAL;
#   - prune removes tombstones older than --days (default 90);
#   - purge UDID removes the device's ADE record;
#   - purge --token removes the token's ADE records and nothing else
#     (--verify); token remove, --purge; check is clean throughout.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"

DEP=$PM_BUILD/picomdm-dep
N=10000 # devices the mock holds at first (issue 13: 10,000)
MOCK=$PM_ROOT/tests/mock-dep.py
[[ -x $DEP ]] || it_abort "no $DEP (build first)"

it_start
A=$IT_DIR/ade
mkdir -p "$A"
cd "$A"

expect_true() { # expect_true WHAT DETAIL CMD...
	local what=$1 detail=$2
	shift 2
	if "$@"; then pass "$what"; else fail "$what" "$detail"; fi
}

# --- server tokens ------------------------------------------------------------

rnd() { openssl rand -hex 24; }
CK=CK_$(rnd) CS=CS_$(rnd) AT=AT_$(rnd) AS=AS_$(rnd)
creds() { # creds EXPIRY
	printf '{"consumer_key":"%s","consumer_secret":"%s","access_token":"%s","access_secret":"%s","access_token_expiry":"%s"}' \
	    "$CK" "$CS" "$AT" "$AS" "$1"
}
expiry=$(date -u -d '+200 days' +%Y-%m-%dT%H:%M:%SZ)
creds "$expiry" >creds.json
mkp7m() { # mkp7m JSONFILE CERT OUT: what Apple sends
	{
		printf 'Content-Type: text/plain;charset=UTF-8\r\n'
		printf 'Content-Transfer-Encoding: 7bit\r\n\r\n'
		printf -- '-----BEGIN MESSAGE-----\r\n'
		{ fold -w 76 "$1"; echo; } | sed 's/$/\r/'
		printf -- '-----END MESSAGE-----\r\n'
	} >"$3.plain"
	openssl smime -encrypt -aes256 -in "$3.plain" -out "$3" "$2"
	rm -f "$3.plain"
}
# leaks FILE...: the secrets found in the files, if any.
leaks() {
	grep -l -e "$CK" -e "$CS" -e "$AT" -e "$AS" -e "$(cat key-line)" \
	    "$@" 2>/dev/null || true
}

expect_exit 0 "token new: makes the key pair in the store" \
    "$DEP" --db "$IT_DB" token new abm-main -o cert.pem
expect_eq "$(openssl x509 -in cert.pem -noout -subject)" \
    "subject=CN = abm-main" "token new: the certificate to upload"
expect_exit 1 "token new: a second token of that name is refused" \
    "$DEP" --db "$IT_DB" token new abm-main -o cert2.pem
[[ ! -e cert2.pem ]] && pass "  and nothing is written" ||
	fail "  and nothing is written"
expect_exit 2 "token new: a name with a control character is refused" \
    "$DEP" --db "$IT_DB" token new $'bad\tname'
expect_exit 1 "token new: a store directory that does not exist" \
    "$DEP" --db "$IT_DIR/nodb" token new x
"$DEP" token new other -o other-cert.pem --key-out other-key.pem >/dev/null
# A line of the stored private key: it must never leak.
"$PM_BUILD/picomdmctl" --db "$IT_DB" dump --secrets |
    jq -r 'select(.db=="ade_token") | .value.key_pem' >key.pem
sed -n 5p key.pem >key-line
[[ $(wc -c <key-line) -gt 40 ]] ||
	it_abort "setup: no private key in the store's token"
expect_eq "$(openssl pkey -in key.pem -pubout 2>/dev/null | sha256sum)" \
    "$(openssl x509 -in cert.pem -pubkey -noout | sha256sum)" \
    "token new: the stored key is the certificate's"

mkp7m creds.json cert.pem token.p7m
mkp7m creds.json other-cert.pem other.p7m
creds 2020-01-01T00:00:00Z >expired.json
mkp7m expired.json cert.pem expired.p7m
d0=$(db_digest)
expect_exit 1 "token import: a token for another server is refused" \
    "$DEP" --db "$IT_DB" token import abm-main other.p7m
grep -q "encrypted to another certificate" "$EXIT_ERR" &&
    pass "  says so" || fail "  says so" "$(cat "$EXIT_ERR")"
expect_exit 1 "token import: an expired token is refused" \
    "$DEP" --db "$IT_DB" token import abm-main expired.p7m
grep -q "expired on 2020-01-01T00:00:00Z" "$EXIT_ERR" &&
    pass "  says when" || fail "  says when" "$(cat "$EXIT_ERR")"
expect_exit 1 "token import: an unknown token name" \
    "$DEP" --db "$IT_DB" token import nosuch token.p7m
expect_eq "$(db_digest)" "$d0" "token import refused: the store unchanged"
expect_exit 0 "token import: accepted" \
    "$DEP" --db "$IT_DB" token import abm-main token.p7m
expect_eq "$(cat "$EXIT_OUT")" "token abm-main imported, expiry $expiry" \
    "token import: prints the name and expiry only"
expect_eq "$(leaks "$EXIT_OUT" "$EXIT_ERR")" "" "token import: no secret printed"

"$DEP" --db "$IT_DB" token new soon -o soon-cert.pem >/dev/null
creds "$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)" >soon.json
mkp7m soon.json soon-cert.pem soon.p7m
"$DEP" --db "$IT_DB" token import soon soon.p7m >/dev/null 2>soon.err
grep -q "warning: token soon expires in [0-9]* days" soon.err &&
    pass "token import: warns 30 days ahead" ||
	fail "token import: warns 30 days ahead" "$(cat soon.err)"
expect_exit 0 "token list" "$DEP" --db "$IT_DB" token list
list=$(cat "$EXIT_OUT")
expect_eq "$(jq -r .name <<<"$list" | tr '\n' ,)" "abm-main,soon," \
    "token list: every token by name"
expect_jq "$(head -n 1 <<<"$list")" '[.imported, .expiry, .days_left] | @csv' \
    "true,\"$expiry\",199" "token list: imported, expiry, days left"
grep -q "warning: token soon expires" "$EXIT_ERR" &&
    ! grep -q "abm-main" "$EXIT_ERR" &&
    pass "token list: warns of the one within 30 days only" ||
	fail "token list: warning" "$(cat "$EXIT_ERR")"
expect_exit 0 "token remove: without --purge" \
    "$DEP" --db "$IT_DB" token remove soon
expect_exit 1 "token remove: an unknown token" \
    "$DEP" --db "$IT_DB" token remove soon

# --- the mock ------------------------------------------------------------------

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout tls-key.pem \
    -out tls-cert.pem 2>/dev/null
/usr/bin/python3 "$MOCK" --cert tls-cert.pem --key tls-key.pem \
    --credentials creds.json --devices "$N" --rotate-every 7 \
    --port-file "$A/port" --log "$A/requests.jsonl" 2>mock.log &
IT_PIDS+=("$!")
for _ in $(seq 100); do
	[[ -s port ]] && break
	sleep 0.1
done
[[ -s port ]] || it_abort "mock-dep did not start: $(cat mock.log)"
URL=https://127.0.0.1:$(cat port)
dep() { # dep DB ARG...
	local db=$1
	shift
	"$DEP" --db "$db" --url "$URL" --ca tls-cert.pem --max-wait 5 "$@"
}
mock() { # mock PATH JSON: a control request to the mock
	curl -sf --cacert tls-cert.pem -H 'Content-Type: application/json' \
	    -d "$2" "$URL$1" >/dev/null || it_abort "mock control $1 failed"
}
mark() { wc -l <requests.jsonl; }
since() { tail -n +"$(($1 + 1))" requests.jsonl; }
# count DB: ADE device records in a store.
count() {
	"$PM_BUILD/picomdmctl" --db "$1" stats |
	    awk '$1 == "ade_device" { sub("entries=", "", $2); print $2 }'
}

# --- sync ------------------------------------------------------------------

m=$(mark)
expect_exit 0 "sync: a full fetch" dep "$IT_DB" sync abm-main --limit 100
grep -q "sync abm-main: $N devices fetched" "$EXIT_ERR" &&
    pass "  reports $N devices fetched" ||
	fail "  reports $N devices fetched" "$(cat "$EXIT_ERR")"
expect_eq "$(count "$IT_DB")" "$N" "  $N ADE records in the store"
expect_eq "$(since "$m" | jq -r 'select(.path=="/server/devices") |
    (.body|tostring)' | sort | uniq -d | wc -l)" 0 \
    "  no page requested twice"
expect_eq "$(since "$m" | jq -r 'select(.path=="/server/devices")' |
    jq -s length)" $((N / 100)) "  $((N / 100)) pages"
expect_eq "$(since "$m" | jq -r .path | head -n 2 | tr '\n' ,)" \
    "/session,/account," "  /account first"
list=$("$DEP" --db "$IT_DB" token list)
expect_jq "$list" '[.org_name, .server_name, .fetched, .devices] | @csv' \
    "\"Example Org\",\"picomdm mock\",true,$N" \
    "  token list: the account, fetched, $N devices"

mock /_mock/events '{"add":3,"modify":["MOCK00000001"],"delete":["MOCK00000002"]}'
m=$(mark)
expect_exit 0 "sync: the changes" dep "$IT_DB" sync
expect_eq "$(since "$m" | jq -r 'select(.path|test("devices")) | .path' |
    sort -u | tr '\n' ,)" "/devices/sync," "  by /devices/sync only"
grep -q "0 devices fetched, 5 changes synced" "$EXIT_ERR" &&
    pass "  5 changes" || fail "  5 changes" "$(cat "$EXIT_ERR")"
expect_eq "$(count "$IT_DB")" $((N + 3)) "  3 added (the deleted one kept)"
show=$("$PM_BUILD/picomdmctl" --db "$IT_DB" show MOCK00000001)
expect_jq "$show" '[.device, .ade.asset_tag, .ade.op_type, .ade.token] | @csv' \
    ',"MOD-MOCK00000001","modified","abm-main"' \
    "show: a modified device, without an enrollment"
expect_jq "$show" '.ade | keys | length' 14 \
    "  every field Apple sent, the token and the sync time"
expect_jq "$("$PM_BUILD/picomdmctl" --db "$IT_DB" show MOCK00000002)" \
    '.ade.op_type' deleted "show: a deleted device is a tombstone"
expect_jq "$("$PM_BUILD/picomdmctl" --db "$IT_DB" show "$(printf MOCK%08d $((N + 2)))")" \
    '.ade.op_type' added "show: an added device"
expect_exit 1 "show: an unknown serial" \
    "$PM_BUILD/picomdmctl" --db "$IT_DB" show NOSUCHSERIAL

# EXPIRED_CURSOR: everything again.
mock /_mock/clock '{"advance":691200}'
expect_exit 0 "sync: EXPIRED_CURSOR" dep "$IT_DB" sync abm-main
grep -q "EXPIRED_CURSOR.*fetching every device again" "$EXIT_ERR" &&
    grep -q "$((N + 2)) devices fetched" "$EXIT_ERR" &&
    pass "  fetches every device again" ||
	fail "  fetches every device again" "$(cat "$EXIT_ERR")"
expect_eq "$(count "$IT_DB")" $((N + 3)) "  the same records"

# --- killed mid-sync ----------------------------------------------------------

DB2=$IT_DIR/db2
mkdir -m 0700 "$DB2"
"$DEP" --db "$DB2" token new abm-main -o cert-k.pem >/dev/null
mkp7m creds.json cert-k.pem token-k.p7m
"$DEP" --db "$DB2" token import abm-main token-k.p7m >/dev/null
m=$(mark)
# Not through dep(): $! must be picomdm-dep itself, not a subshell; the
# whole in a subshell whose stderr takes bash's "Killed" notice.
(
	"$DEP" --db "$DB2" --url "$URL" --ca tls-cert.pem sync abm-main \
	    --limit 10 >kill.out 2>kill.err &
	pid=$!
	for _ in $(seq 400); do
		(($(since "$m" | grep -c '"/server/devices"') >= 30)) && break
		sleep 0.01
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" || true
) 2>/dev/null
cursor=$("$PM_BUILD/picomdmctl" --db "$DB2" dump |
    jq -r 'select(.db=="ade_token") | .value.cursor')
# The mock's fetch cursor is base64url "f:OFFSET:SNAPSHOT:MS".
# (unpadded: pad it to a multiple of four for base64 -d)
pad=$(printf '%*s' $(((4 - ${#cursor} % 4) % 4)) '' | tr ' ' =)
off=$(tr '_-' '/+' <<<"$cursor$pad" | base64 -d 2>/dev/null | cut -d : -f 2) || off=
n=$(count "$DB2")
if [[ $off =~ ^[0-9]+$ ]] && ((off < N + 2)); then
	pass "sync killed mid-fetch (after $n devices)"
	expect_eq "$n" "$off" "  the store holds exactly the pages before its cursor"
else
	fail "sync killed mid-fetch" "cursor '$cursor' offset '$off', $n devices"
fi
m=$(mark)
expect_exit 0 "sync after the kill" dep "$DB2" sync abm-main --limit 100
expect_eq "$(since "$m" | jq -c 'select(.path=="/server/devices") |
    .body.cursor' | head -n 1)" "\"$cursor\"" \
    "  continues from the stored cursor"
expect_eq "$(count "$DB2")" $((N + 2)) "  every device (a full fetch: no tombstone)"
tail_fields() { # the records without their sync time
	"$PM_BUILD/picomdmctl" --db "$1" dump |
	    jq -c 'select(.db=="ade_device" and .value.op_type != "deleted") |
	    .value | del(.synced_at)' |
	    sort | sha256sum
}
expect_eq "$(tail_fields "$DB2")" "$(tail_fields "$IT_DB")" \
    "  the same records as the uninterrupted sync"

# A sync that fails right after the full fetch: the token is fetched,
# and the next sync asks /devices/sync only.
DB3=$IT_DIR/db3
mkdir -m 0700 "$DB3"
"$DEP" --db "$DB3" token new abm-main -o cert-3.pem >/dev/null
mkp7m creds.json cert-3.pem token-3.p7m
"$DEP" --db "$DB3" token import abm-main token-3.p7m >/dev/null
mock /_mock/fail '{"path":"/devices/sync","status":500,"body":"X","count":1}'
expect_exit 1 "sync: /devices/sync fails after the full fetch" \
    dep "$DB3" sync abm-main --limit 1000
expect_jq "$("$DEP" --db "$DB3" token list)" '[.fetched, .devices] | @csv' \
    "true,$((N + 2))" "  the fetch is kept, and marked complete"
m=$(mark)
expect_exit 0 "  the next sync" dep "$DB3" sync abm-main
expect_eq "$(since "$m" | jq -r 'select(.path|test("devices")) | .path' |
    sort -u | tr '\n' ,)" "/devices/sync," "  asks /devices/sync only"

# --- inventory ---------------------------------------------------------------

inv=$("$PM_BUILD/picomdmctl" --db "$IT_DB" inventory MOCK00000001 --json)
expect_jq "$inv" '[.services[] | select(.service=="ADE") | .fields[] |
    select(.purpose != null and .purpose != "" and .kept == "record")] |
    length' 10 "inventory: the 10 ADE fields it has, each with its purpose"
expect_jq "$inv" '[.services[] | select(.service=="ADE") | .fields[] |
    select(.field=="asset_tag")][0] | [.value, .token] | @csv' \
    '"MOD-MOCK00000001","abm-main"' "  with the value and the token"

# --- profiles --------------------------------------------------------------

printf '{"profile_name":"picomdm","is_supervised":true}\n' >profile.json
expect_exit 1 "profile define: no url and no --enroll-url" \
    dep "$IT_DB" profile define abm-main profile.json
grep -q "enroll-url" "$EXIT_ERR" && pass "  says what to give" ||
	fail "  says what to give" "$(cat "$EXIT_ERR")"
expect_exit 0 "profile define: url from --enroll-url, made the default" \
    dep "$IT_DB" profile define abm-main profile.json \
    --enroll-url https://mdm.example.test/mdm/enroll --default
UUID=$(cat "$EXIT_OUT")
expect_jq "$(dep "$IT_DB" profile show abm-main "$UUID")" .url \
    https://mdm.example.test/mdm/enroll "  the profile Apple holds"
expect_jq "$("$DEP" --db "$IT_DB" token list)" .default_profile "$UUID" \
    "  the token's default profile"
# --config: the store, the service and the profile's url from
# picomdm.conf (https://HOST/mdm/enroll on server_url's host).
printf 'db = %s\ndep_url = %s\nserver_url = %s\n' "$IT_DB" "$URL" \
    https://mdm.conf.test/mdm/connect >dep.conf
expect_exit 0 "profile define --config: url from server_url" \
    "$DEP" --config dep.conf --ca tls-cert.pem profile define abm-main \
    profile.json
expect_jq "$(dep "$IT_DB" profile show abm-main "$(cat "$EXIT_OUT")")" .url \
    https://mdm.conf.test/mdm/enroll "  https://HOST/mdm/enroll"
printf 'dep_sync_interval = 5\n' >bad.conf
expect_exit 2 "--config: a bad dep_sync_interval is refused" \
    "$DEP" --config bad.conf --db "$IT_DB" token list
grep -q "dep_sync_interval" "$EXIT_ERR" && pass "  names the key" ||
	fail "  names the key" "$(cat "$EXIT_ERR")"
mock /_mock/throttle '{"count":2,"retry_after":1}'
m=$(mark)
expect_exit 1 "profile assign: one serial Apple does not know" \
    dep "$IT_DB" profile assign abm-main "$UUID" MOCK00000010 MOCK00000011 \
    MOCK00000012 NOSUCH
expect_jq "$(cat "$EXIT_OUT")" '[.assigned, (.failed|keys|@csv)] | @csv' \
    '3,"""NOSUCH"""' "  three assigned, the unknown one named"
expect_eq "$(since "$m" | jq -r 'select(.path=="/profile/devices") |
    (.body.devices|length)' | tr '\n' ,)" "4,2," \
    "  the THROTTLED two sent again"
expect_exit 0 "profile remove" dep "$IT_DB" profile remove abm-main \
    MOCK00000012
expect_exit 0 "sync: the assignments" dep "$IT_DB" sync abm-main
expect_jq "$("$PM_BUILD/picomdmctl" --db "$IT_DB" show MOCK00000010)" \
    '[.ade.profile_status, .ade.profile_uuid] | @csv' "\"assigned\",\"$UUID\"" \
    "  an assigned device in the store"
expect_exit 0 "details: Apple's current record, on demand" \
    dep "$IT_DB" details abm-main MOCK00000010 NOSUCH
expect_jq "$(cat "$EXIT_OUT")" \
    '[.devices.MOCK00000010.profile_status, .devices.NOSUCH.response_status] | @csv' \
    '"assigned","NOT_ACCESSIBLE"' "  per serial"
expect_jq "$("$PM_BUILD/picomdmctl" --db "$IT_DB" show MOCK00000012)" \
    '[.ade.profile_status, .ade.profile_uuid] | @csv' '"empty",' \
    "  a removed one"
mock /_mock/events '{"add":2}'
m=$(mark)
expect_exit 0 "sync --auto-assign" dep "$IT_DB" sync abm-main --auto-assign
expect_eq "$(since "$m" | jq -r 'select(.path=="/profile/devices") |
    .body.devices | sort | @csv')" "$(printf '"MOCK%08d","MOCK%08d"' \
    $((N + 3)) $((N + 4)))" \
    "  the added devices assigned to the default profile"
expect_exit 0 "sync" dep "$IT_DB" sync abm-main
expect_jq "$("$PM_BUILD/picomdmctl" --db "$IT_DB" show "$(printf MOCK%08d $((N + 4)))")" \
    '.ade.profile_status' assigned "  and then synced as assigned"

# --- with an enrollment; the API -----------------------------------------------

UDID=0000FE00-ADE0-4000-8000-000000000003
enroll "$UDID" device1 MOCK00000003
expect_jq "$("$PM_BUILD/picomdmctl" --db "$IT_DB" show "$UDID")" \
    '[.device.serial_number, .ade.serial_number, .ade.model] | @csv' \
    '"MOCK00000003","MOCK00000003","Apple TV 4K"' \
    "show: an enrolled device has its ADE record"

api GET "/api/v1/ade/devices/MOCK00000001"
expect_status 200 "API: one ADE device"
expect_body_jq '[.serial_number, .asset_tag, .token, .device_id] | @csv' \
    '"MOCK00000001","MOD-MOCK00000001","abm-main",' "  Apple's fields"
api GET "/api/v1/ade/devices/MOCK00000003"
expect_body_jq .device_id "$UDID" "  an enrolled one names its device"
api GET "/api/v1/ade/devices/NOSUCH"
expect_api_error 404 "API: an unknown serial" "NOSUCH"
api GET "/api/v1/ade/nosuch"
expect_api_error 404 "API: not the devices collection"
api GET "/api/v1/ade/devices?enrolled=true"
expect_body_jq '[.devices[].serial_number] | @csv' '"MOCK00000003"' \
    "API: enrolled=true"
api GET "/api/v1/ade/devices?enrolled=maybe"
expect_api_error 400 "API: enrolled must be true or false" enrolled
api GET "/api/v1/ade/devices?token=nosuch"
expect_body_jq '[(.devices|length), .next] | @csv' '0,' "API: token filter"
api GET "/api/v1/ade/devices?token="
expect_api_error 400 "API: an empty token filter is 400, as on vpp/" "token: empty"
# One rule for every query parameter (picomdm-api(7), Errors): empty is
# 400 naming it, as is longer than the store holds; at the bound a filter.
for q in profile_status enrolled limit after; do
	api GET "/api/v1/ade/devices?$q="
	expect_api_error 400 "API: an empty $q is 400" "$q: empty"
done
api GET "/api/v1/ade/devices?token=$(printf 'a%.0s' $(seq 600))"
expect_api_error 400 "API: a token of 600 bytes is 400, as on vpp/" \
    "token: longer than any token's name (64 bytes)"
api GET "/api/v1/ade/devices?token=$(printf 'a%.0s' $(seq 64))"
expect_body_jq '[(.devices|length), .next] | @csv' '0,' \
    "API: a token of 64 bytes is a filter"
api GET "/api/v1/ade/devices?after=$(printf 'Z%.0s' $(seq 512))"
expect_api_error 400 "API: an after of 512 bytes is 400, not the first page" \
    "after: longer than any serial number (511 bytes)"
api GET "/api/v1/ade/devices?after=$(printf 'Z%.0s' $(seq 511))"
expect_body_jq '[(.devices|length), .next] | @csv' '0,' \
    "API: an after of 511 bytes is a cursor (past every serial)"
total=0 after="" pages=0
while :; do
	api GET "/api/v1/ade/devices?limit=1000&token=abm-main${after:+&after=$after}"
	[[ $STATUS == 200 ]] || break
	total=$((total + $(jq '.devices|length' "$BODY")))
	pages=$((pages + 1))
	after=$(jq -r '.next // empty' "$BODY")
	[[ -n $after ]] || break
done
expect_eq "$total/$pages" "$((N + 5))/$(((N + 5 + 999) / 1000))" \
    "API: paging over every device, 1000 a page"
api GET "/api/v1/ade/devices?profile_status=empty&limit=5"
expect_body_jq '[.devices[].profile_status] | unique | @csv' '"empty"' \
    "API: profile_status filter"

# A purged device takes its ADE record with it.
UDID2=0000FE00-ADE0-4000-8000-000000000004
enroll "$UDID2" device2 MOCK00000004
out=$("$PM_BUILD/picomdmctl" --db "$IT_DB" purge "$UDID2" --yes --verify \
    2>&1) || true
expect_true "purge UDID: the device's ADE record too" "$out" \
    grep -q "^removed	ade_device	1$" <<<"$out"
expect_true "  --verify finds nothing" "$out" \
    grep -q "^verify	0 hits" <<<"$out"
api GET "/api/v1/ade/devices/MOCK00000004"
expect_api_error 404 "  gone from the API"

"$PM_BUILD/picomdmctl" --db "$IT_DB" dump -o dump.json
"$PM_BUILD/picomdmctl" --db "$IT_DB" dump --secrets -o dump-secrets.json
expect_eq "$(leaks dump.json)" "" "no secret in a dump without --secrets"
expect_eq "$(leaks dump-secrets.json)" dump-secrets.json \
    "  and they are with --secrets"
expect_exit 0 "restore of dump --secrets" \
    "$PM_BUILD/picomdmctl" --db "$IT_DIR/db4" restore dump-secrets.json
"$PM_BUILD/picomdmctl" --db "$IT_DIR/db4" dump --secrets -o dump4.json
expect_true "  gives the same ADE tokens and records, byte for byte" \
    "$(cmp dump-secrets.json dump4.json 2>&1)" \
    cmp -s dump-secrets.json dump4.json

# --- prune: tombstones -----------------------------------------------------

expect_exit 0 "prune: tombstones older than 90 days" \
    "$DEP" --db "$IT_DB" prune
expect_eq "$(cat "$EXIT_OUT")" "tombstones	0" "  none: the tombstone is recent"
expect_exit 0 "prune --days 0" "$DEP" --db "$IT_DB" prune --days 0
expect_eq "$(cat "$EXIT_OUT")" "tombstones	1" "  removes the tombstone"
expect_exit 1 "  which show no longer finds" \
    "$PM_BUILD/picomdmctl" --db "$IT_DB" show MOCK00000002

# --- purge --token; token remove --purge ------------------------------------

out=$("$PM_BUILD/picomdmctl" --db "$IT_DB" purge --token abm-main --yes \
    --verify 2>&1) || true
expect_true "purge --token: every ADE record of the token" "$out" \
    grep -q "^removed	ade_device	$((N + 3))$" <<<"$out"
expect_true "  and the token" "$out" grep -q "^removed	ade_token	1$" <<<"$out"
expect_true "  --verify finds nothing" "$out" \
    grep -q "^verify	0 hits" <<<"$out"
grep -q "^removed	\(device\|enroll\)	" <<<"$out" &&
    fail "  and nothing else" "$out" || pass "  and nothing else"
expect_jq "$("$PM_BUILD/picomdmctl" --db "$IT_DB" show "$UDID")" \
    '[.device.serial_number, .ade] | @csv' '"MOCK00000003",' \
    "  the enrolled device stays, without its ADE record"
# --daemon: a pass every --interval seconds, until SIGTERM (exit 0).
"$DEP" --db "$DB2" --url "$URL" --ca tls-cert.pem sync --daemon \
    --interval 1 >daemon.out 2>daemon.err &
pid=$!
for _ in $(seq 100); do
	[[ $(count "$DB2") == $((N + 4)) ]] && break
	sleep 0.1
done
expect_eq "$(count "$DB2")" $((N + 4)) "sync --daemon: the changes since the fetch"
mock /_mock/events '{"add":1}'
for _ in $(seq 100); do
	[[ $(count "$DB2") == $((N + 5)) ]] && break
	sleep 0.1
done
expect_eq "$(count "$DB2")" $((N + 5)) "  and a device added later, at the next pass"
expect_exit 1 "  a second sync on the store meanwhile: refused" \
    "$DEP" --db "$DB2" --url "$URL" --ca tls-cert.pem sync --once
grep -q "another picomdm-dep sync is running on this store" "$EXIT_ERR" &&
    pass "  and says why" || fail "  and says why" "$(cat "$EXIT_ERR")"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
expect_eq "$rc" 0 "  SIGTERM: exit 0"
expect_exit 0 "token remove --purge" "$DEP" --db "$DB2" token remove \
    abm-main --purge
grep -q "removed with $((N + 5)) ADE device records" "$EXIT_OUT" &&
    pass "  says how many" || fail "  says how many" "$(cat "$EXIT_OUT")"
expect_eq "$(count "$DB2")/$("$DEP" --db "$DB2" token list)" "0/" \
    "  nothing left"

expect_exit 0 "check is clean" "$PM_BUILD/picomdmctl" --db "$IT_DB" check
expect_exit 0 "check is clean (killed sync's store)" \
    "$PM_BUILD/picomdmctl" --db "$DB2" check

it_done
