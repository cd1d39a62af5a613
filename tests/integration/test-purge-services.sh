#!/usr/bin/env bash
#
# test-purge-services.sh - what a purge or prune does to the records of
# Apple's services (ADE device records, Apps and Books tokens and
# licences) beside the MDM data (module/store_purge.c,
# tools/ctl_privacy.c, tools/dep_store.c; README.md, "What Apple sent us,
# and deleting it"). A store from picomdm-gen (three devices) with an ADE
# token "school" listing two of them, and two Apps and Books tokens,
# "school" (the same name) and "apps", holding licences of all three:
#
#   - purge --token school: the name is both services'; refused, exit 2,
#     nothing changed;
#   - purge --ade-token school: the ADE token and its records go, every
#     Apps and Books record stays (--verify clean); picomdm-dep token
#     remove --purge likewise;
#   - purge --vpp-token school: that token and its licence go, the other
#     token's licences and the ADE records stay;
#   - purge --token apps (one service only): its token and licences go;
#   - purge of a device: its ADE record and its licences go with it, no
#     other device's, and its serial leaves the write events naming it;
#   - a serial known only by a MachineInfo, by an ADE record beside one,
#     or by a licence: inventory finds it, purge --verify removes it;
#   - purge of a device takes no device whose ID merely starts with
#     its ID and a ':' (a user channel's form);
#   - a device whose results are missing from result_index: purge finds
#     them by their key's enrollment number, --verify and check clean;
#   - purge of a device takes its licence under a token whose record
#     is gone;
#   - purge --verify looks for what else identified the device (IMEI,
#     push token, ...) but a value other devices share;
#   - prune of a device checked out long ago: its MDM data goes, its ADE
#     record and licences (Apple's current records) stay; its results go
#     when result_index lacks them too;
#   - check is clean after each.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

CTL=$PM_BUILD/picomdmctl
DEP=$PM_BUILD/picomdm-dep
GEN=$PM_BUILD/tools/picomdm-gen
it_workdir
[[ -x $CTL && -x $DEP && -x $GEN ]] ||
    it_abort "setup: picomdmctl, picomdm-dep or picomdm-gen not built"

T=2026-12-06T11:57:59.190724Z
S1=GEN000000001
S2=GEN000000002
S3=GEN000000003
D2=00008101-0000000000000002
ADAM=361309726

# The base store: picomdm-gen's devices, then the services' records.
"$GEN" --db "$IT_DIR/gen" --devices 3 --queue 2 --results 2 \
    >"$IT_DIR/gen.out" 2>&1 || it_abort "setup: picomdm-gen failed"
"$CTL" --db "$IT_DIR/gen" dump --secrets | grep -v '"end"' >"$IT_DIR/base.jsonl"
assign() { # TOKEN SERIAL
	printf '{"db":"vpp_assignment","key":["%s","device","%s","%s"],"value":{"adam_id":"%s","pricing_param":"STDQ","serial_number":"%s"}}\n' \
	    "$1" "$2" "$ADAM" "$ADAM" "$2"
}
{
	printf '{"db":"ade_token","key":"school","value":{"name":"school","consumer_key":"ck","consumer_secret":"cs","access_token":"at","access_secret":"as","created_at":"%s"}}\n' "$T"
	for s in "$S1" "$S2"; do
		printf '{"db":"ade_device","key":"%s","value":{"serial_number":"%s","token":"school","synced_at":"%s"}}\n' "$s" "$s" "$T"
	done
	printf '{"db":"vpp_token","key":"school","value":{"name":"school","stoken":"s1","org":"Org"}}\n'
	printf '{"db":"vpp_token","key":"apps","value":{"name":"apps","stoken":"s2","org":"Org"}}\n'
	assign apps "$S1"
	assign apps "$S2"
	assign school "$S3"
	# A write picomdm-vpp made: two serials, one of them failed.
	printf '{"db":"vpp_event","key":["apps","EVT1"],"value":{"event_id":"EVT1","type":"ASSOCIATE","item_kind":"serial","items":"[\\"%s\\",\\"%s\\"]","failures":"[{\\"item\\":\\"%s\\",\\"errorNumber\\":9610,\\"errorMessage\\":\\"x\\"}]","adam_id":"%s","status":"COMPLETE","created_at":"%s"}}\n' \
	    "$S1" "$S2" "$S1" "$ADAM" "$T"
} >>"$IT_DIR/base.jsonl"
finish() { # IN OUT: a dump with its end line
	cp "$1" "$2"
	echo "{\"end\":true,\"records\":$(($(wc -l <"$1") - 1))}" >>"$2"
}
finish "$IT_DIR/base.jsonl" "$IT_DIR/full.jsonl"
"$CTL" --db "$IT_DIR/base" restore "$IT_DIR/full.jsonl" >/dev/null 2>&1 ||
    it_abort "setup: restore of the base store failed"
"$CTL" --db "$IT_DIR/base" check >/dev/null 2>&1 ||
    it_abort "setup: the base store does not check clean"

# fresh NAME: a copy of the base store in $IT_DIR/NAME; DB is its path.
fresh() {
	DB=$IT_DIR/$1
	rm -rf "$DB"
	cp -r "$IT_DIR/base" "$DB"
}
# svc: the service records of $DB (but the write events), one "db key"
# line each, sorted.
svc() {
	"$CTL" --db "$DB" dump |
	    jq -r 'select(.db != null and (.db | test("^(ade_|vpp_(token|assignment))")))
		| "\(.db) \(.key | if type == "array" then join("/") else . end)"' |
	    sort | tr '\n' ' '
}
# event FIELD: that field of $DB's write event EVT1 ("gone" without one).
event() {
	"$CTL" --db "$DB" dump | jq -r --arg f "$1" \
	    'select(.db == "vpp_event") | .value[$f]' | grep . || echo gone
}

# same WHAT WANT GOT
same() {
	expect_eq "$3" "$2" "$1"
}
# clean WHAT: check exits 0 on $DB.
clean() {
	expect_exit 0 "$1: check is clean" "$CTL" --db "$DB" check
}
ALL="ade_device $S1 ade_device $S2 ade_token school vpp_assignment apps/device/$S1/$ADAM vpp_assignment apps/device/$S2/$ADAM vpp_assignment school/device/$S3/$ADAM vpp_token apps vpp_token school "
DB=$IT_DIR/base
same "the base store holds both services' records" "$ALL" "$(svc)"

# --- a name both services use -------------------------------------------------
fresh both
before=$("$CTL" --db "$DB" dump --secrets | sha256sum)
expect_exit 2 "purge --token school: refused, both services have the name" \
    "$CTL" --db "$DB" purge --token school --yes
grep -q -- '--ade-token or --vpp-token' "$EXIT_ERR" &&
    pass "  and the error says how to name one" ||
    fail "  and the error says how to name one" "$(cat "$EXIT_ERR")"
same "  and nothing changed" "$before" \
    "$("$CTL" --db "$DB" dump --secrets | sha256sum)"

expect_exit 0 "purge --ade-token school --verify" \
    "$CTL" --db "$DB" purge --ade-token school --yes --verify
same "  the ADE token and its records went, every licence stayed" \
    "vpp_assignment apps/device/$S1/$ADAM vpp_assignment apps/device/$S2/$ADAM vpp_assignment school/device/$S3/$ADAM vpp_token apps vpp_token school " \
    "$(svc)"
grep -q "^device" "$EXIT_OUT" &&
    fail "  and no device" "$(cat "$EXIT_OUT")" || pass "  and no device"
clean "purge --ade-token"

fresh dep
expect_exit 0 "picomdm-dep token remove school --purge" \
    "$DEP" --db "$DB" token remove school --purge
same "  the ADE token and its records went, every licence stayed" \
    "vpp_assignment apps/device/$S1/$ADAM vpp_assignment apps/device/$S2/$ADAM vpp_assignment school/device/$S3/$ADAM vpp_token apps vpp_token school " \
    "$(svc)"
clean "picomdm-dep token remove --purge"

fresh vpp
same "purge --ade-token: the write event stays whole" \
    "[\"$S1\",\"$S2\"]" "$(DB=$IT_DIR/both event items)"
expect_exit 0 "purge --vpp-token school --verify" \
    "$CTL" --db "$DB" purge --vpp-token school --yes --verify
same "  that token and its licence went, the rest stayed" \
    "ade_device $S1 ade_device $S2 ade_token school vpp_assignment apps/device/$S1/$ADAM vpp_assignment apps/device/$S2/$ADAM vpp_token apps " \
    "$(svc)"
clean "purge --vpp-token"

# --- a name one service uses ---------------------------------------------------
fresh apps
expect_exit 0 "purge --token apps (Apps and Books only) --verify" \
    "$CTL" --db "$DB" purge --token apps --yes --verify
same "  its token and licences went" \
    "ade_device $S1 ade_device $S2 ade_token school vpp_assignment school/device/$S3/$ADAM vpp_token school " \
    "$(svc)"
same "  and its write event" gone "$(event items)"
clean "purge --token apps"
expect_exit 1 "purge --ade-token apps: no such ADE token" \
    "$CTL" --db "$IT_DIR/base" purge --ade-token apps --yes
grep -q "no such ADE token" "$EXIT_ERR" && pass "  and it says so" ||
    fail "  and it says so" "$(cat "$EXIT_ERR")"

# --- a device ------------------------------------------------------------------
fresh device
expect_exit 0 "purge $S1 --verify: the device, proven gone" \
    "$CTL" --db "$DB" purge "$S1" --yes --verify
same "  the write event no longer names it in its items" \
    "[\"$S2\"]" "$(event items)"
same "  nor in its failures" "[]" "$(event failures)"
same "  its ADE record and licence went with it, no other's" \
    "ade_device $S2 ade_token school vpp_assignment apps/device/$S2/$ADAM vpp_assignment school/device/$S3/$ADAM vpp_token apps vpp_token school " \
    "$(svc)"
clean "purge of a device"

# --- serials known without an enrollment ---------------------------------------
# UDID-AAAA sent MachineInfo, and ADE lists its serial; UDID-BBBB sent
# MachineInfo only; SERVPP holds a licence only.
{
	head -n 1 "$IT_DIR/base.jsonl"
	grep '"db":"meta","key":"schema_version"' "$IT_DIR/base.jsonl"
	printf '{"db":"machineinfo","key":"UDID-AAAA","value":{"udid":"UDID-AAAA","serial":"SERAAAA","imei":"35 111111 111111 1","received_at":"%s"}}\n' "$T"
	printf '{"db":"machineinfo","key":"UDID-BBBB","value":{"udid":"UDID-BBBB","serial":"SERBBBB","received_at":"%s"}}\n' "$T"
	printf '{"db":"ade_device","key":"SERAAAA","value":{"serial_number":"SERAAAA","token":"school","synced_at":"%s"}}\n' "$T"
	printf '{"db":"vpp_token","key":"apps","value":{"name":"apps","stoken":"s2","org":"Org"}}\n'
	assign apps SERVPP
} >"$IT_DIR/mi.jsonl"
finish "$IT_DIR/mi.jsonl" "$IT_DIR/mi-full.jsonl"
DB=$IT_DIR/mi
"$CTL" --db "$DB" restore "$IT_DIR/mi-full.jsonl" >/dev/null 2>&1 ||
    it_abort "setup: restore of the MachineInfo store failed"
expect_exit 0 "inventory SERBBBB: a device known by its MachineInfo only" \
    "$CTL" --db "$DB" inventory SERBBBB
expect_exit 0 "purge SERAAAA --verify: its MachineInfo and ADE record, proven gone" \
    "$CTL" --db "$DB" purge SERAAAA --yes --verify
expect_exit 0 "purge SERBBBB --verify: a MachineInfo alone, proven gone" \
    "$CTL" --db "$DB" purge SERBBBB --yes --verify
expect_exit 0 "inventory SERVPP: a serial known by its licence only" \
    "$CTL" --db "$DB" inventory SERVPP
expect_exit 0 "purge SERVPP --verify: its licence, proven gone" \
    "$CTL" --db "$DB" purge SERVPP --yes --verify
same "  nothing of the three is left" "vpp_token apps " "$(svc)"
same "  nor any MachineInfo" "" \
    "$("$CTL" --db "$DB" dump | jq -r 'select(.db == "machineinfo") | .key')"
clean "purge by serials known without an enrollment"

# --- a device whose ID holds a ':' ----------------------------------------------
# Device 2 renamed D1:B: a device of its own (its records name it), not
# a user channel of D1, though its ID has that form.
D1=00008101-0000000000000001
"$CTL" --db "$IT_DIR/gen" dump --secrets | sed "s/$D2/$D1:B/g" >"$IT_DIR/colon.jsonl"
DB=$IT_DIR/colon
"$CTL" --db "$DB" restore "$IT_DIR/colon.jsonl" >/dev/null 2>&1 ||
    it_abort "setup: restore of the store with D1:B failed"
expect_exit 0 "purge $D1, beside a device $D1:B" "$CTL" --db "$DB" purge "$D1" --yes
grep -q "^enrollment	$D1:B\$" "$EXIT_OUT" &&
    fail "  the purge does not list $D1:B" "$(cat "$EXIT_OUT")" ||
    pass "  the purge does not list $D1:B"
expect_exit 0 "  $D1:B is still there" "$CTL" --db "$DB" show "$D1:B"
same "  with its queue" 2 \
    "$("$CTL" --db "$DB" show "$D1:B" | jq '.enrollments[0].queue | length')"
clean "purge beside a device whose ID holds a ':'"

# --- results missing from their index -------------------------------------------
# Device 1's results without their result_index entries (check reports
# them): the purge finds them by their key's enrollment number.
grep -v '"db":"result_index","key":\[1,' "$IT_DIR/base.jsonl" >"$IT_DIR/noix.jsonl"
finish "$IT_DIR/noix.jsonl" "$IT_DIR/noix-full.jsonl"
DB=$IT_DIR/noix
"$CTL" --db "$DB" restore "$IT_DIR/noix-full.jsonl" >/dev/null 2>&1 ||
    it_abort "setup: restore of the store without result_index entries failed"
expect_exit 1 "check: device 1's results are not in result_index" \
    "$CTL" --db "$DB" check
expect_exit 0 "purge $S1 --verify: its unindexed results, proven gone" \
    "$CTL" --db "$DB" purge "$S1" --yes --verify
same "  the purge counts them" "removed	result	2" \
    "$(grep "^removed	result	" "$EXIT_OUT")"
same "  the other devices' results stayed" 4 \
    "$("$CTL" --db "$DB" dump | jq -s '[.[] | select(.db == "result")] | length')"
clean "purge of a device whose results are not in result_index"

# --- a licence whose token record is gone ----------------------------------------
# Device 3's licence under a token "gone" that has no record any more
# (check reports it): the purge of the device finds it all the same.
{
	cat "$IT_DIR/base.jsonl"
	assign gone "$S3"
} >"$IT_DIR/gone.jsonl"
finish "$IT_DIR/gone.jsonl" "$IT_DIR/gone-full.jsonl"
DB=$IT_DIR/gone
"$CTL" --db "$DB" restore "$IT_DIR/gone-full.jsonl" >/dev/null 2>&1 ||
    it_abort "setup: restore of the store with a token-less licence failed"
expect_exit 0 "purge $S3 --verify: its licence under a token gone, proven gone" \
    "$CTL" --db "$DB" purge "$S3" --yes --verify
same "  both its licences counted" "removed	vpp_assignment	2" \
    "$(grep "^removed	vpp_assignment	" "$EXIT_OUT")"
clean "purge of a device with a licence under a token gone"

# --- what else identifies a device ----------------------------------------------
# Device 1 with the IMEI of its MachineInfo; an enrollment token's note
# (never a device's, so it stays) names that IMEI, then its push token
# as Apple sends it (base64), then the PushMagic every picomdm-gen
# device shares (no one device's: --verify does not look for it).
D1=00008101-0000000000000001
IMEI="35 111111 111111 1"
TOK=$(jq -r --arg d "$D1" 'select(.db == "enroll" and .key == $d) | .value.token.b64' "$IT_DIR/base.jsonl")
MAGIC=$(jq -r --arg d "$D1" 'select(.db == "enroll" and .key == $d) | .value.push_magic' "$IT_DIR/base.jsonl")
note_store() { # NAME NOTE: $DB, a copy of the base store with such a note
	{
		cat "$IT_DIR/base.jsonl"
		printf '{"db":"machineinfo","key":"%s","value":{"udid":"%s","serial":"%s","imei":"%s","received_at":"%s"}}\n' \
		    "$D1" "$D1" "$S1" "$IMEI" "$T"
		printf '{"db":"enrollment_token","key":"%064d","value":{"note":"%s","created_at":"%s","expires_at":"2099-01-01T00:00:00.000000Z"}}\n' \
		    7 "$2" "$T"
	} >"$IT_DIR/$1.jsonl"
	finish "$IT_DIR/$1.jsonl" "$IT_DIR/$1-full.jsonl"
	DB=$IT_DIR/$1
	"$CTL" --db "$DB" restore "$IT_DIR/$1-full.jsonl" >/dev/null 2>&1 ||
	    it_abort "setup: restore of the store $1 failed"
}
note_store imei "phone $IMEI"
expect_exit 1 "purge $S1 --verify: a note left with its MachineInfo's IMEI is found" \
    "$CTL" --db "$DB" purge "$S1" --yes --verify
same "  the hit names the note and the IMEI" "hit enrollment_token $IMEI" \
    "$(awk -F '\t' '/^hit/ { print $1, $2, $4 }' "$EXIT_OUT")"
note_store token "token $TOK"
expect_exit 1 "purge $S1 --verify: a note left with its push token is found" \
    "$CTL" --db "$DB" purge "$S1" --yes --verify
note_store magic "magic $MAGIC"
expect_exit 0 "purge $S1 --verify: a PushMagic other devices share is no hit" \
    "$CTL" --db "$DB" purge "$S1" --yes --verify

# --- retention -----------------------------------------------------------------
# Device 2 checked out in 2020: prune's --checked-out-days takes it.
sed -e "/\"db\":\"enroll\",\"key\":\"$D2\"/s/\"enabled\":true/\"enabled\":false,\"checked_out_at\":\"2020-01-01T00:00:00.000000Z\"/" \
    -e 's/"enrollments_disabled","value":0/"enrollments_disabled","value":1/' \
    -e 's/"enrollments_enabled","value":3/"enrollments_enabled","value":2/' \
    "$IT_DIR/base.jsonl" >"$IT_DIR/co.jsonl"
finish "$IT_DIR/co.jsonl" "$IT_DIR/co-full.jsonl"
DB=$IT_DIR/prune
"$CTL" --db "$DB" restore "$IT_DIR/co-full.jsonl" >/dev/null 2>&1 ||
    it_abort "setup: restore of the checked-out store failed"
expect_exit 0 "prune: a device checked out in 2020" "$CTL" --db "$DB" prune
expect_exit 1 "  its device record went" "$CTL" --db "$DB" show "$D2"
same "  its ADE record and licence stayed (Apple's current records)" \
    "$ALL" "$(svc)"
clean "prune"
# The same with device 2's results missing from result_index: prune
# (whose batches find results through the index) takes them too.
grep -v '"db":"result_index","key":\[2,' "$IT_DIR/co.jsonl" >"$IT_DIR/co-noix.jsonl"
finish "$IT_DIR/co-noix.jsonl" "$IT_DIR/co-noix-full.jsonl"
DB=$IT_DIR/prune-noix
"$CTL" --db "$DB" restore "$IT_DIR/co-noix-full.jsonl" >/dev/null 2>&1 ||
    it_abort "setup: restore of the checked-out store without result_index entries failed"
expect_exit 0 "prune: a device checked out in 2020, its results not in result_index" \
    "$CTL" --db "$DB" prune
same "  its results went, the other devices' stayed" 4 \
    "$("$CTL" --db "$DB" dump | jq -s '[.[] | select(.db == "result")] | length')"
clean "prune of a device whose results are not in result_index"

it_done
