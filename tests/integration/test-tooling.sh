#!/usr/bin/env bash
#
# test-tooling.sh - picomdmctl on a store of 100,000 synthetic devices
# (tools/picomdm-gen, with queues and results) while picomdm-fcgi serves
# it behind nginx and a background loop of check-ins keeps it busy:
#
#   - a real device goes through Authenticate, TokenUpdate and two
#     command reports with an ErrorChain; its inventory shows each field
#     with its service, message and time, and no secret;
#   - a hot backup opens as a store; its dump -> restore -> dump is
#     byte-identical;
#   - check is clean; entries orphaned on purpose (written with
#     mdb_load) are each reported, repaired, and check is clean again;
#   - purge of one device: --verify finds nothing, a compacting backup
#     taken afterwards holds no byte string of its UDID or serial, and
#     the store is then exactly the first backup less the purged entries
#     (the backup held what the store held; no other device was
#     touched); purge by topic; purge by an
#     unknown token; prune of a checked-out device;
#   - dump --raw is read by mdb_load;
#   - no check-in of the load loop failed.
#
# PICOMDM_IT_DEVICES sets the number of synthetic devices (default
# 100000).

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"

N=${PICOMDM_IT_DEVICES:-100000}
GEN=$PM_BUILD/tools/picomdm-gen
T0=$SECONDS

note() {
	printf '# %s (%ds)\n' "$*" $((SECONDS - T0))
}

# The ID of synthetic device I, as picomdm-gen makes them.
gen_udid() {
	printf '00008101-%016X' "$1"
}
gen_serial() {
	printf 'GEN%09d' "$1"
}

[[ -x $GEN ]] || it_abort "setup: $GEN not built"
it_start
it_stop_responder
"$GEN" --db "$IT_DB" --devices "$N" --queue 1 --results 2 2>"$IT_DIR/gen.log" ||
    it_abort "setup: picomdm-gen" "$(cat "$IT_DIR/gen.log")"
note "$(cat "$IT_DIR/gen.log")"
it_start_responder

# ---- load: a device checking in, in a loop, all along ----

LOAD_UDID=0000FE00-TOOLING-LOAD-0001
checkin "$(auth_plist "$LOAD_UDID" C02TOOLLOAD1)" device2
[[ $STATUS == 200 ]] || it_abort "load device Authenticate" "$STATUS"
LOAD_PLIST=$(token_plist "$LOAD_UDID" "$(openssl rand -base64 32)")
LOAD_PID=

load_loop() {
	local code
	while [[ ! -e $IT_DIR/load.stop ]]; do
		code=$(curl -sS -o /dev/null -w '%{http_code}' \
		    --resolve "localhost:$IT_PORT:127.0.0.1" \
		    --cacert "$IT_CERTS/server-ca.pem" --max-time 60 \
		    --cert "$IT_CERTS/devices/device2.pem" \
		    --key "$IT_CERTS/devices/device2.key" -X PUT -A MDM/1.0 \
		    -H "Content-Type: $IT_CHECKIN_TYPE" \
		    --data-binary "@$LOAD_PLIST" "$IT_URL/mdm/checkin" \
		    2>>"$IT_DIR/load.curl") || code=000
		printf '%s\n' "$code" >>"$IT_DIR/load.codes"
		sleep 0.05
	done
}

load_stop() {
	[[ -n $LOAD_PID ]] || return 0
	touch "$IT_DIR/load.stop"
	wait "$LOAD_PID" 2>/dev/null || true
	LOAD_PID=
}
trap 'it_rc=$?; load_stop; (exit $it_rc); it_cleanup' EXIT

: >"$IT_DIR/load.codes"
load_loop &
LOAD_PID=$!

# Lines of a dump that are not about the load device, whose check-ins go
# on between snapshots (nor the end line, which counts them all).
steady() {
	# The enrollment counters in meta change with every purge.
	grep -v -F -e "$LOAD_UDID" -e '{"end":' \
	    -e '{"db":"meta","key":"enrollments_' "$1" >"$2"
}

# ---- a real device: Authenticate, TokenUpdate, two reports ----

REAL=0000FE00-TOOLING-REAL-0001
REAL_SERIAL=C02TOOLREAL1
REAL_TOKEN=$(openssl rand -base64 32)
REAL_UNLOCK=$(openssl rand -base64 48)
checkin "$(auth_plist "$REAL" "$REAL_SERIAL")" device1
expect_status 200 "real device: Authenticate through nginx"
checkin "$(token_plist "$REAL" "$REAL_TOKEN" UnlockToken:data="$REAL_UNLOCK")" \
    device1
expect_status 200 "real device: TokenUpdate through nginx"
for u in TOOL-CMD-1 TOOL-CMD-2; do
	f=$(it_file "$u.plist")
	plist_write "$f" \
	    Command:raw='<dict><key>RequestType</key><string>DeviceInformation</string><key>Queries</key><array><string>OSVersion</string></array></dict>' \
	    CommandUUID="$u"
	ctl enqueue "$REAL" "$f" >/dev/null ||
	    fail "picomdmctl enqueue $u"
done
chain='<array><dict><key>ErrorCode</key><integer>12021</integer><key>ErrorDomain</key><string>MCMDMErrorDomain</string><key>LocalizedDescription</key><string>Nope</string><key>USEnglishDescription</key><string>Not now, not ever</string></dict></array>'
expect_eq "$(send "$REAL" device1 Idle)" TOOL-CMD-1 "Idle gets the first command"
expect_eq "$(send "$REAL" device1 Error TOOL-CMD-1 ErrorChain:raw="$chain")" \
    TOOL-CMD-2 "an Error report gets the second"
expect_eq "$(send "$REAL" device1 Error TOOL-CMD-2 ErrorChain:raw="$chain")" \
    "" "a second Error report empties the queue"

# ---- inventory ----

inv=$(ctl inventory "$REAL" --json) || fail "inventory --json"
sel() { # SERVICE SOURCE MESSAGE FIELD -> the rows, one JSON per line
	jq -c --arg s "$1" --arg src "$2" --arg m "$3" --arg f "$4" \
	    '.services[] | select(.service == $s) | .fields[] |
	    select(.source == $src and .message == $m and .field == $f)' \
	    <<<"$inv"
}
row=$(sel check-in message Authenticate SerialNumber)
expect_jq "$row" .value "$REAL_SERIAL" "inventory: SerialNumber from Authenticate"
expect_jq "$row" '.received_at | test("^20[0-9-]+T[0-9:]+Z$")' true \
    "inventory: with the time it was received"
expect_jq "$row" .topic "$IT_TOPIC" "inventory: and the topic it came through"
row=$(sel check-in message TokenUpdate Token)
expect_jq "$row" .value.sha256 "$(sha256_b64 "$REAL_TOKEN")" \
    "inventory: push token as its SHA-256"
expect_jq "$row" .value.secret true "inventory: push token marked secret"
row=$(sel check-in record TokenUpdate UnlockToken)
expect_jq "$row" .value.sha256 "$(sha256_b64 "$REAL_UNLOCK")" \
    "inventory: UnlockToken kept in the device record, as its SHA-256"
rows=$(sel command report report 'ErrorChain[0].ErrorCode')
expect_eq "$(jq -s length <<<"$rows")" 2 \
    "inventory: both reports' ErrorChain codes"
expect_eq "$(jq -r -s 'map(.command_uuid) | sort | join(",")' <<<"$rows")" \
    TOOL-CMD-1,TOOL-CMD-2 "inventory: each with its command"
expect_eq "$(jq -r -s 'map("\(.value) \(.status) \(.request_type) \(.received_at != null)") | unique | join(",")' <<<"$rows")" \
    "12021 Error DeviceInformation true" \
    "inventory: code, status, request type and time of each report"
row=$(sel command report report 'ErrorChain[0].USEnglishDescription' | head -n 1)
expect_jq "$row" .purpose "error text in US English, for the operator" \
    "inventory: purpose from the catalogue"
expect_jq "$inv" '[.services[].service] | join(",")' "check-in,command,ADE,VPP" \
    "inventory: grouped by the four services"
text=$(ctl inventory "$REAL_SERIAL")
leak=0
unlock_hex=$(base64 -d <<<"$REAL_UNLOCK" | od -An -tx1 | tr -d ' \n')
token_hex=$(base64 -d <<<"$REAL_TOKEN" | od -An -tx1 | tr -d ' \n')
for s in "$REAL_TOKEN" "$REAL_UNLOCK" "$unlock_hex" "$token_hex" \
    8B0E2D3C-7A61-4F59-9E1C-4D2B6A8F0C13; do
	[[ $inv$text != *"$s"* ]] || leak=1
done
expect_eq "$leak" 0 "inventory: no secret printed (token, UnlockToken, PushMagic)"
expect_eq "$(grep -c $'^0000FE00-TOOLING-REAL-0001\treport\treport (DeviceInformation)\t' <<<"$text")" \
    "$(jq -s length <<<"$(jq -c '.services[1].fields[]' <<<"$inv")")" \
    "inventory text: one line per report field"
ncat=$(ctl inventory --catalogue --json | jq -r 'map(.service) | unique | join(",")')
expect_eq "$ncat" "ADE,VPP,check-in,command" "catalogue covers the four services"

# ---- backup; dump -> restore -> dump ----

# The backup is taken first and dumped: the dump is then the store as it
# was at the backup, which the store after the purge is checked against.
note "backup"
s=$SECONDS
ctl backup "$IT_DIR/bk" >/dev/null || fail "backup"
t_backup=$((SECONDS - s))
sz_backup=$(stat -c %s "$IT_DIR/bk/data.mdb")
sz_db=$(stat -c %s "$IT_DB/data.mdb")
expect_exit 0 "the backup opens as a store and checks clean" \
    "$PM_BUILD/picomdmctl" --db "$IT_DIR/bk" check
note "dump"
s=$SECONDS
"$PM_BUILD/picomdmctl" --db "$IT_DIR/bk" dump --secrets -o "$IT_DIR/d1.jsonl" ||
    fail "dump --secrets"
t_dump=$((SECONDS - s))
expect_eq "$(head -c 30 "$IT_DIR/d1.jsonl")" '{"format":"picomdm-dump","vers' \
    "dump: JSON Lines with a header"
expect_eq "$(tail -n 1 "$IT_DIR/d1.jsonl" | jq -r .records)" \
    "$(($(wc -l <"$IT_DIR/d1.jsonl") - 2))" "dump: end line counts every record"
expect_eq "$(grep -c '"value_b64"\|"key_b64"' "$IT_DIR/d1.jsonl" || true)" 0 \
    "dump: every record decoded"
note "restore"
s=$SECONDS
"$PM_BUILD/picomdmctl" --db "$IT_DIR/restored" restore "$IT_DIR/d1.jsonl" \
    >/dev/null || fail "restore into an empty store"
t_restore=$((SECONDS - s))
expect_exit 1 "restore refuses a store that is not empty" \
    "$PM_BUILD/picomdmctl" --db "$IT_DIR/restored" restore "$IT_DIR/d1.jsonl"
"$PM_BUILD/picomdmctl" --db "$IT_DIR/restored" dump --secrets \
    -o "$IT_DIR/d2.jsonl" || fail "dump of the restored store"
if cmp -s "$IT_DIR/d1.jsonl" "$IT_DIR/d2.jsonl"; then
	pass "dump -> restore -> dump is byte-identical"
else
	fail "dump -> restore -> dump is byte-identical" \
	    "$(cmp "$IT_DIR/d1.jsonl" "$IT_DIR/d2.jsonl" 2>&1 | head -n 1)"
fi
sz_dump=$(stat -c %s "$IT_DIR/d1.jsonl")
sz_restored=$(stat -c %s "$IT_DIR/restored/data.mdb")
steady "$IT_DIR/d1.jsonl" "$IT_DIR/pre.jsonl"
rm -rf "$IT_DIR/restored" "$IT_DIR/d2.jsonl" "$IT_DIR/d1.jsonl" "$IT_DIR/bk"

# ---- check, orphans, repair ----

note "check"
s=$SECONDS
expect_exit 0 "check is clean" ctl check
t_check=$((SECONDS - s))
# Entries around the API, with mdb_load into the served store: a
# dangling serial and certificate binding, an enrollment number naming
# nothing, a raw message and a result (key: sequence, then enrollment
# number) of an enrollment that does not exist, a queue entry (device 1) for a command that does not exist, a
# queue position naming no entry, a command status of a missing command,
# a user-channel entry naming no enrollment.
hexs() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
cat >"$IT_DIR/orphans.txt" <<EOF
VERSION=3
format=bytevalue
database=serial
type=btree
HEADER=END
 $(hexs SERIAL-GHOST)
 $(hexs NO-SUCH-DEVICE)
DATA=END
VERSION=3
format=bytevalue
database=cert
type=btree
HEADER=END
 $(printf '77%.0s' $(seq 32))
 $(hexs NO-SUCH-DEVICE)
DATA=END
VERSION=3
format=bytevalue
database=eid
type=btree
HEADER=END
 00000000ffffff01
 $(hexs NO-SUCH-ENROLLMENT)
DATA=END
VERSION=3
format=bytevalue
database=msg
type=btree
HEADER=END
 00000000ffffff0200
 700301
DATA=END
VERSION=3
format=bytevalue
database=result
type=btree
HEADER=END
 000000000000000100000000ffffff02
 700601
DATA=END
VERSION=3
format=bytevalue
database=queue
type=btree
HEADER=END
 0000000000000001ff0000000000000001
 7005010100000009$(hexs CMD-GHOST)
DATA=END
VERSION=3
format=bytevalue
database=qpos
type=btree
HEADER=END
 0000000000000001$(hexs CMD-NOWHERE)
 ff0000000000000002
DATA=END
VERSION=3
format=bytevalue
database=cmdq
type=btree
HEADER=END
 000b$(hexs CMD-GHOST-2)0000000000000001
 700701
DATA=END
VERSION=3
format=bytevalue
database=uchan
type=btree
HEADER=END
 000000000000000100000000ffffff03
 
DATA=END
EOF
mdb_load -f "$IT_DIR/orphans.txt" "$IT_DB" || fail "mdb_load of the orphans"
rc=0
ctl check >"$IT_DIR/check.out" 2>&1 || rc=$?
expect_eq "$rc" 1 "check exits 1 on problems"
expect_eq "$(grep -c '^problem' "$IT_DIR/check.out" || true)" 9 \
    "check names each of the nine problems"
for what in $'serial\t"SERIAL-GHOST"\tnames device "NO-SUCH-DEVICE"' \
    $'eid\t4294967041\tnames enrollment "NO-SUCH-ENROLLMENT"' \
    'queues command CMD-GHOST, which does not exist' \
    'points at no queue entry' 'status of command CMD-GHOST-2' \
    'raw message of enrollment number 4294967042' \
    'result of enrollment number 4294967042' \
    'names user channel number 4294967043'; do
	if grep -q -F "$what" "$IT_DIR/check.out"; then
		pass "check: $what"
	else
		fail "check: $what" "$(head -c 300 "$IT_DIR/check.out")"
	fi
done
rc=0
ctl check --repair >"$IT_DIR/repair.out" 2>&1 || rc=$?
expect_eq "$rc:$(grep -c '^repaired' "$IT_DIR/repair.out" || true)" 0:9 \
    "check --repair repairs all nine"
expect_exit 0 "check is clean after the repair" ctl check

# ---- purge ----

P=$((N / 2 + 42))
PUDID=$(gen_udid $P)
PSERIAL=$(gen_serial $P)
note "purge $PUDID"
ctl show "$PSERIAL" >/dev/null || fail "device $PSERIAL exists before"
rc=0
ctl purge "$PSERIAL" </dev/null >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 2 "purge refuses without --yes when stdin is not a terminal"
s=$SECONDS
ctl purge "$PSERIAL" --yes --verify >"$IT_DIR/purge.out" 2>&1 ||
    fail "purge --yes --verify" "$(tail -n 3 "$IT_DIR/purge.out")"
t_purge=$((SECONDS - s))
expect_eq "$(grep -c "^device"$'\t'"$PUDID\$" "$IT_DIR/purge.out")" 1 \
    "purge names the device it removed"
expect_eq "$(grep '^verify' "$IT_DIR/purge.out" | cut -f 2)" "0 hits" \
    "purge --verify: no key or value holds its UDID or serial"
removed=$(awk -F '\t' '$1 == "removed" { n += $3 } END { print n + 0 }' \
    "$IT_DIR/purge.out")
expect_exit 1 "the device is gone" ctl show "$PSERIAL"
ctl backup "$IT_DIR/bk2" >/dev/null || fail "backup after the purge"
expect_eq "$(grep -c -a -F -e "$PUDID" -e "$PSERIAL" "$IT_DIR/bk2/data.mdb" || true)" 0 \
    "the compacted backup's data.mdb holds no byte string of UDID or serial"
if grep -q -a -F "$(gen_udid $((P + 1)))" "$IT_DIR/bk2/data.mdb"; then
	pass "... where the next device's UDID is found"
else
	fail "... where the next device's UDID is found"
fi
rm -rf "$IT_DIR/bk2"
s=$SECONDS
ctl dump --secrets -o "$IT_DIR/post-all.jsonl" || fail "dump after the purge"
t_live=$((SECONDS - s))
steady "$IT_DIR/post-all.jsonl" "$IT_DIR/post.jsonl"
# Every line of the store now is a line of the backup, in order, and what
# is missing is exactly what the purge said it removed: the backup held
# what the store held, and no other device was touched.
missing=$(python3 - "$IT_DIR/pre.jsonl" "$IT_DIR/post.jsonl" <<'EOF'
import sys
pre = open(sys.argv[1], "rb")
missing = 0
for line in open(sys.argv[2], "rb"):
    while True:
        p = pre.readline()
        if not p:
            print("extra")
            sys.exit(0)
        if p == line:
            break
        missing += 1
missing += sum(1 for _ in pre)
print(missing)
EOF
)
expect_eq "$missing" "$removed" \
    "store = backup less the $removed purged entries: other devices untouched"
[[ $missing != "$removed" ]] ||
    rm -f "$IT_DIR/pre.jsonl" "$IT_DIR/post.jsonl" "$IT_DIR/post-all.jsonl"

RETIRED=com.apple.mgmt.External.retired-by-the-organisation
"$GEN" --db "$IT_DB" --devices 200 --start 900001 --topic "$RETIRED" \
    --results 1 2>/dev/null || fail "picomdm-gen of the retired topic"
ctl purge --topic "$RETIRED" --yes --verify >"$IT_DIR/topic.out" 2>&1 ||
    fail "purge --topic" "$(tail -n 3 "$IT_DIR/topic.out")"
expect_eq "$(grep -c '^device' "$IT_DIR/topic.out")" 200 \
    "purge --topic removes its 200 devices"
expect_eq "$(grep '^verify' "$IT_DIR/topic.out" | cut -f 2,3)" \
    "0 hits	601 identifiers" "purge --topic --verify: not a trace of them"
rc=0
ctl purge --token acme-vpp-token --yes 2>"$IT_DIR/token.err" || rc=$?
expect_eq "$rc:$(cat "$IT_DIR/token.err")" \
    "1:picomdmctl: purge: acme-vpp-token: no such token" \
    "purge --token of a token that does not exist"

# ---- prune ----

"$PM_ROOT/scripts/mkcerts" "$IT_CERTS" leaver >/dev/null
LEAVER=0000FE00-TOOLING-LEAVER-01
checkin "$(auth_plist "$LEAVER" C02TOOLLEAVE)" leaver
checkin "$(token_plist "$LEAVER" "$(openssl rand -base64 32)")" leaver
checkin "$(checkout_plist "$LEAVER")" leaver
expect_status 200 "a device checks out"
ctl prune --results-days 36500 --checked-out-days 0 >"$IT_DIR/prune.out" ||
    fail "prune"
expect_eq "$(grep -E '^(enrollments|devices)' "$IT_DIR/prune.out" | tr '\t\n' '= ')" \
    "enrollments=1 devices=1 " "prune removes the checked-out device"
expect_exit 1 "... which is gone" ctl show "$LEAVER"
expect_exit 0 "check is clean after the purges and the prune" ctl check

# ---- the raw form and mdb_load (a small store: the raw form is hex) ----

"$GEN" --db "$IT_DIR/small" --devices 50 --queue 1 --results 2 2>/dev/null ||
    fail "picomdm-gen of a small store"
"$PM_BUILD/picomdmctl" --db "$IT_DIR/small" dump --raw --secrets \
    -o "$IT_DIR/small.raw" || fail "dump --raw"
mkdir -p "$IT_DIR/small-loaded"
if mdb_load -f "$IT_DIR/small.raw" "$IT_DIR/small-loaded" &&
    "$PM_BUILD/picomdmctl" --db "$IT_DIR/small" dump --secrets \
    -o "$IT_DIR/small-1.jsonl" &&
    "$PM_BUILD/picomdmctl" --db "$IT_DIR/small-loaded" dump --secrets \
    -o "$IT_DIR/small-2.jsonl" &&
    cmp -s "$IT_DIR/small-1.jsonl" "$IT_DIR/small-2.jsonl"; then
	pass "dump --raw loads with mdb_load into the same store"
else
	fail "dump --raw loads with mdb_load into the same store"
fi
expect_exit 2 "dump --raw without --secrets is refused" \
    "$PM_BUILD/picomdmctl" --db "$IT_DIR/small" dump --raw
rm -rf "$IT_DIR"/small*

# ---- the load ----

load_stop
total=$(wc -l <"$IT_DIR/load.codes")
bad=$(grep -c -v '^200$' "$IT_DIR/load.codes" || true)
if ((total >= 20 && bad == 0)); then
	pass "no check-in failed under load ($total check-ins meanwhile)"
else
	fail "no check-in failed under load" \
	    "$bad of $total failed: $(sort "$IT_DIR/load.codes" | uniq -c | tr '\n' ' ')"
fi
note "$N devices: db $((sz_db >> 20)) MiB; backup ${t_backup}s ($((sz_backup >> 20)) MiB); dump ${t_dump}s ($((sz_dump >> 20)) MiB), of the live store ${t_live}s; restore ${t_restore}s ($((sz_restored >> 20)) MiB); check ${t_check}s; purge+verify ${t_purge}s"
it_done
