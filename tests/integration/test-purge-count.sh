#!/usr/bin/env bash
#
# test-purge-count.sh - the count picomdmctl purge asks its question about
# (tools/ctl_privacy.c; store.h, "given a read transaction"), on a store
# from picomdm-gen (four devices, two topics) with an ADE token and an
# Apps and Books token holding records of its devices:
#
#   - the count names what the purge then removes, entry for entry, for a
#     device (its user channel, ADE record, licences, write event and the
#     command only it was sent go with it; one of its results missing
#     from result_index, found by its key, counted once), a
#     topic, an ADE token and an Apps and Books token;
#   - the count takes no write lock: while another process holds LMDB's
#     write lock (picomdm-gen committing, its sync made slow by
#     syncshim.c), the question is asked, and answered no, nothing goes;
#   - the purge removes no device the count did not name: a device that
#     enrolled through the topic between the question and the answer
#     makes the purge refuse (exit 3, a message, nothing changed); run
#     again, it names and removes both.
#
# The question needs a terminal: ptyanswer.py gives it one and answers.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

CTL=$PM_BUILD/picomdmctl
GEN=$PM_BUILD/tools/picomdm-gen
ANSWER=$IT_LIB_DIR/ptyanswer.py
it_workdir
[[ -x $CTL && -x $GEN ]] || it_abort "setup: picomdmctl or picomdm-gen not built"

T=2026-12-06T11:57:59.190724Z
S1=GEN000000001
S2=GEN000000002
D1=00008101-0000000000000001
ADAM=361309726
TOPIC=com.apple.mgmt.External.picomdm-gen-1

"$GEN" --db "$IT_DIR/gen" --devices 4 --queue 2 --results 2 --topics 2 \
    >"$IT_DIR/gen.out" 2>&1 || it_abort "setup: picomdm-gen failed"
"$CTL" --db "$IT_DIR/gen" dump --secrets | grep -v '"end"' >"$IT_DIR/base.jsonl"
{
	printf '{"db":"ade_token","key":"school","value":{"name":"school","consumer_key":"ck","consumer_secret":"cs","access_token":"at","access_secret":"as","created_at":"%s"}}\n' "$T"
	for s in "$S1" "$S2"; do
		printf '{"db":"ade_device","key":"%s","value":{"serial_number":"%s","token":"school","synced_at":"%s"}}\n' "$s" "$s" "$T"
	done
	printf '{"db":"vpp_token","key":"apps","value":{"name":"apps","stoken":"s2","org":"Org"}}\n'
	for s in "$S1" "$S2"; do
		printf '{"db":"vpp_assignment","key":["apps","device","%s","%s"],"value":{"adam_id":"%s","pricing_param":"STDQ","serial_number":"%s"}}\n' \
		    "$s" "$ADAM" "$ADAM" "$s"
	done
	printf '{"db":"vpp_event","key":["apps","EVT1"],"value":{"event_id":"EVT1","type":"ASSOCIATE","item_kind":"serial","items":"[\\"%s\\",\\"%s\\"]","adam_id":"%s","status":"COMPLETE","created_at":"%s"}}\n' \
	    "$S1" "$S2" "$ADAM" "$T"
	# A user channel of the first device, as a UserAuthenticate leaves it.
	printf '{"db":"enroll","key":"%s:U1","value":{"id":"%s:U1","device_id":"%s","type":"User","topic":"%s","enabled":true,"created_at":"%s","last_seen":"%s","eid":100}}\n' \
	    "$D1" "$D1" "$D1" "$TOPIC" "$T" "$T"
	printf '{"db":"eid","key":100,"value":"%s:U1"}\n' "$D1"
	printf '{"db":"uchan","key":[1,100],"value":""}\n'
} >>"$IT_DIR/base.jsonl"
cp "$IT_DIR/base.jsonl" "$IT_DIR/full.jsonl"
echo "{\"end\":true,\"records\":$(($(wc -l <"$IT_DIR/base.jsonl") - 1))}" >>"$IT_DIR/full.jsonl"
"$CTL" --db "$IT_DIR/base" restore "$IT_DIR/full.jsonl" >/dev/null 2>&1 ||
    it_abort "setup: restore of the base store failed"
# A command only the first device was sent: its purge takes the command.
cat >"$IT_DIR/cmd.plist" <<'PLIST'
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict><key>CommandUUID</key><string>ONLY-ONE</string><key>Command</key><dict><key>RequestType</key><string>DeviceInformation</string><key>Queries</key><array><string>UDID</string></array></dict></dict></plist>
PLIST
"$CTL" --db "$IT_DIR/base" enqueue 00008101-0000000000000001 "$IT_DIR/cmd.plist" \
    >/dev/null 2>&1 || it_abort "setup: enqueue to the first device failed"
sed -i 's/ONLY-ONE/HOLD-0001/' "$IT_DIR/cmd.plist"

# fresh NAME: a copy of the base store; DB is its path.
fresh() {
	DB=$IT_DIR/$1
	rm -rf "$DB"
	cp -r "$IT_DIR/base" "$DB"
}
digest() {
	"$CTL" --db "$DB" dump --secrets | sha256sum
}

# has WHAT FILE PATTERN...: each grep pattern matches a line of FILE.
has() {
	local what=$1 file=$2 p
	shift 2
	for p in "$@"; do
		if ! grep -q -- "$p" "$file"; then
			fail "$what" "no '$p' in: $(head -c 600 "$file")"
			return 0
		fi
	done
	pass "$what"
}

# --- the count is what the purge removes -------------------------------------
# counted WHAT ARGS...: purge ARGS on a fresh store, answered yes; the
# "would remove" lines asked about are the lines of what was removed
# (kept in count.out).
counted() {
	local what=$1 out
	shift
	fresh count
	out=$IT_DIR/count.out
	expect_exit 0 "purge $what: answered yes, purged" \
	    python3 "$ANSWER" y "" "$CTL" --db "$DB" purge "$@"
	cp "$EXIT_OUT" "$out"
	expect_eq "$(grep '^would remove ' "$out" | sed 's/^would remove //')" \
	    "$(grep -v -e '^would remove ' -e '\[y/N\]' "$out")" \
	    "purge $what: the count names exactly what went"
}
counted "a device" "$S1"
has "purge a device: its user channel, ADE record, licence, write event and command counted" \
    "$IT_DIR/count.out" '^removed	ade_device	1$' '^removed	vpp_assignment	1$' \
    '^removed	vpp_event	1$' '^removed	cmd	1$' '^removed	uchan	1$'
# One of the device's results not in result_index (check reports it):
# the purge takes it by its key, the other through the index; the count
# names each once.
cp -r "$IT_DIR/base" "$IT_DIR/base.keep"
"$CTL" --db "$IT_DIR/base" dump --secrets | grep -v '"end"' |
    awk '/"db":"result_index","key":\[1,/ && !dropped { dropped = 1; next } 1' \
    >"$IT_DIR/noix.jsonl"
echo "{\"end\":true,\"records\":$(($(wc -l <"$IT_DIR/noix.jsonl") - 1))}" >>"$IT_DIR/noix.jsonl"
rm -rf "$IT_DIR/base"
"$CTL" --db "$IT_DIR/base" restore "$IT_DIR/noix.jsonl" >/dev/null 2>&1 ||
    it_abort "setup: restore of the store with a result not in result_index failed"
counted "a device, one result not in result_index" "$S1"
has "purge a device: both its results counted, one index entry" \
    "$IT_DIR/count.out" '^removed	result	2$' '^removed	result_index	1$'
rm -rf "$IT_DIR/base"
mv "$IT_DIR/base.keep" "$IT_DIR/base"
counted "--topic" --topic "$TOPIC"
has "purge --topic: two devices counted and removed" "$IT_DIR/count.out" \
    '^removed	device	2$'
counted "--ade-token" --ade-token school
counted "--vpp-token" --vpp-token apps

# --- the count takes no write lock ----------------------------------------
# picomdmctl enqueues a command to a device of the other topic; its
# commit's sync sleeps 20 s (syncshim.c) with LMDB's write lock held. The
# count is read meanwhile: the question comes (ptyanswer.py waits 60 s at
# most), names the two devices, and is answered no; then the holder is
# ended before its commit is whole.
shim=$IT_DIR/syncshim.so
cc -shared -fPIC -O2 -o "$shim" "$IT_LIB_DIR/syncshim.c" ||
    it_abort "setup: cc syncshim.c"
fresh lock
synclog=$IT_DIR/hold.syncs
: >"$synclog"
LD_PRELOAD="$shim" SYNCSHIM_LOG="$synclog" SYNCSHIM_DELAY_MS=20000 \
    "$CTL" --db "$DB" enqueue 00008101-0000000000000002 "$IT_DIR/cmd.plist" \
    >"$IT_DIR/hold.out" 2>&1 &
holder=$!
for _ in $(seq 100); do
	[[ -s $synclog ]] && break
	sleep 0.1
done
[[ -s $synclog ]] || it_abort "setup: the holder never synced"
before=$(digest)
start=$(date +%s)
expect_exit 1 "purge --topic while another process holds the write lock: asked, answered no" \
    python3 "$ANSWER" n "" "$CTL" --db "$DB" purge --topic "$TOPIC"
took=$(($(date +%s) - start))
if kill -0 "$holder" 2>/dev/null && ((took < 15)); then
	pass "the question came while the write lock was held (${took} s)"
else
	fail "the question came while the write lock was held" \
	    "after ${took} s; $(head -c 300 "$EXIT_OUT")"
fi
has "the question names the two devices committed" "$EXIT_OUT" \
    'purge 2 devices and 3 enrollments'
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
expect_eq "$(digest)" "$before" "answered no: nothing changed"

# --- the purge removes what the question named, no more --------------------
# A device enrolls through the topic between the question and the answer.
fresh changed
addone="'$GEN' --db '$DB' --devices 1 --start 10 --topic '$TOPIC' >/dev/null 2>&1"
expect_exit 3 "purge --topic, a device enrolled after the count: refused, exit 3" \
    python3 "$ANSWER" y "$addone" "$CTL" --db "$DB" purge --topic "$TOPIC"
has "refused: the message says to run purge again" "$EXIT_OUT" \
    'the store changed since the count.*run purge again'
has "the question named two devices" "$EXIT_OUT" \
    'purge 2 devices and 3 enrollments'
expect_eq "$("$CTL" --db "$DB" devices | cut -f 1 | sort | tr '\n' ' ')" \
    "00008101-0000000000000001 00008101-0000000000000001:U1 00008101-0000000000000002 00008101-0000000000000003 00008101-0000000000000004 00008101-000000000000000A " \
    "refused: every device stays, the new one too"
expect_exit 0 "purge --topic again: asked about three, purged" \
    python3 "$ANSWER" y "" "$CTL" --db "$DB" purge --topic "$TOPIC"
has "run again: the new device named and removed" "$EXIT_OUT" \
    'purge 3 devices and 4 enrollments' '^device	00008101-000000000000000A$'
expect_exit 0 "check is clean" "$CTL" --db "$DB" check

it_done
