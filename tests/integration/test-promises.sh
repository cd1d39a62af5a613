#!/usr/bin/env bash
#
# test-promises.sh - promises of README.md and the man pages that no
# other test held, each checked so that it fails when the promise breaks
# (tests/mutations.list breaks them on purpose; scripts/mutate runs this):
#
#   - picomdm-fcgi: exit 2 for usage and configuration errors, 1 when it
#     cannot start; command-line options override --config; socket_mode;
#     --db created mode 0700;
#   - UserAuthenticate declined with 410 by default, the refusal logged
#     with its reason and nothing written;
#   - allow_retro in a running responder: a migrated enrollment (no
#     certificate binding) is refused without it and binds with it;
#   - purge --verify exits 1, naming each hit, when something is left;
#   - dump -o creates its file mode 0600; dump and show without --secrets
#     hold no secret, and the responder's log holds neither secrets nor
#     the API key;
#   - 1,000 IDs per enqueue, and no more (API and picomdmctl);
#   - retention: prune --results-days keeps younger results, drops older;
#   - durability and group commit, with LMDB's syncs counted and slowed
#     (syncshim.c): every reply after its sync, concurrent operations
#     sharing syncs.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"

FCGI=$PM_BUILD/picomdm-fcgi
it_start

udid=00008140-00AA00BB00CC00DD
serial=PROMISE00001
token=$(openssl rand -base64 32)
enroll "$udid" device1 "$serial"

# ---- picomdm-fcgi: exit status, options over --config ----

scratch=$IT_DIR/scratch
mkdir -p "$scratch"
fcgi_exit() { # WANT WHAT ARG...: picomdm-fcgi exits WANT at start-up
	local want=$1 what=$2
	shift 2
	expect_exit "$want" "$what" timeout 10 "$FCGI" "$@"
}
fcgi_exit 2 "unknown option: exit 2" --db "$scratch/db" \
    --device-ca "$IT_CERTS/ca.pem" --no-such-option
fcgi_exit 2 "an extra argument: exit 2" --db "$scratch/db" \
    --device-ca "$IT_CERTS/ca.pem" extra
fcgi_exit 2 "--db missing: exit 2" --device-ca "$IT_CERTS/ca.pem"
fcgi_exit 2 "--workers 0: exit 2" --db "$scratch/db" \
    --device-ca "$IT_CERTS/ca.pem" --workers 0
printf 'no_such_key = 1\n' >"$scratch/bad-key.conf"
fcgi_exit 2 "unknown key in --config: exit 2" --config "$scratch/bad-key.conf" \
    --db "$scratch/db" --device-ca "$IT_CERTS/ca.pem"
printf 'socket_mode = 0999\n' >"$scratch/bad-val.conf"
fcgi_exit 2 "bad value in --config: exit 2" --config "$scratch/bad-val.conf" \
    --db "$scratch/db" --device-ca "$IT_CERTS/ca.pem"
fcgi_exit 2 "--config that does not exist: exit 2" \
    --config "$scratch/none.conf" --db "$scratch/db" \
    --device-ca "$IT_CERTS/ca.pem"
fcgi_exit 1 "a device CA that does not exist: exit 1" --db "$scratch/db" \
    --device-ca "$scratch/none.pem" --socket "$scratch/s.sock"

# The running responder again, now with a config file that the command
# line overrides: checkin_max 1k and workers 7 in the file, --checkin-max
# 64k and --workers 2 on the command line; socket_mode from the file; --db a directory that does
# not exist yet.
it_stop_responder
printf '%s\n' 'checkin_max = 1k' 'socket_mode = 0604' 'workers = 7' \
    >"$IT_DIR/promises.conf"
newdb=$IT_DIR/newdb/store
mkdir -p "$IT_DIR/newdb"
IT_DB_SAVED=$IT_DB
IT_DB=$newdb
IT_RESPONDER_CMD=("$FCGI" --config "$IT_DIR/promises.conf" --db "$newdb"
    --socket "$IT_SOCK" --device-ca "$IT_CERTS/ca.pem"
    --api-key-file "$IT_DIR/api.key" --workers 2 --checkin-max 64k
    --log-level debug)
(umask 022 && it_start_responder)
IT_PIDS+=("$(head -n 1 "$IT_DIR/fcgi.pid")")
expect_eq "$(stat -c %a "$newdb")" 700 "--db created with mode 0700"
expect_eq "$(stat -c %a "$IT_SOCK")" 604 "socket_mode from --config applied"
enroll "$udid" device1 "$serial"
pad=$(head -c 3000 /dev/zero | tr '\0' 'x')
f=$(token_plist "$udid" "$token" Pad="$pad")
checkin "$f" device1
expect_status 200 "--checkin-max 64k overrides checkin_max = 1k of --config"
expect_eq "$(grep -o -E 'with [0-9]+ workers' "$IT_DIR/fcgi.log" | sort -u)" \
    "with 2 workers" \
    "--workers 2 overrides workers = 7 of --config"

# Without --workers or a workers line: four per online CPU, 8 to 64
# (config_default_workers in module/config.c).
want=$(($(nproc) * 4))
((want >= 8)) || want=8
((want <= 64)) || want=64
"$FCGI" --db "$scratch/dw" --socket "$scratch/dw.sock" \
    --device-ca "$IT_CERTS/ca.pem" 2>"$scratch/dw.log" &
dwpid=$!
for _ in $(seq 100); do
	grep -q ' workers' "$scratch/dw.log" && break
	sleep 0.1
done
kill "$dwpid"
wait "$dwpid" || true
expect_eq "$(grep -o -E 'with [0-9]+ workers' "$scratch/dw.log")" \
    "with $want workers" \
    "the default worker count is four per online CPU, 8 to 64 ($(nproc) CPUs)"

# ---- UserAuthenticate: declined with 410 by default ----

before=$(db_digest)
f=$(it_file ua.plist)
plist_write "$f" MessageType=UserAuthenticate UDID="$udid" \
    UserID=B1B2C3D4-0000-1111-2222-333344445555 UserShortName=bob \
    UserLongName="Bob Example"
checkin "$f" device1
expect_status 410 "UserAuthenticate declined with 410 by default"
expect_logged 410 "UserAuthenticate declined" "... logged with its reason"
expect_eq "$(db_digest)" "$before" "the declined UserAuthenticate wrote nothing"

# ---- allow_retro: a migrated enrollment without a certificate binding ----

retro=00008140-00EE00FF00110022
"$PM_ROOT/scripts/mkcerts" "$IT_CERTS" retro1 retro2 >/dev/null ||
    it_abort "setup: mkcerts retro1 retro2"
checkin "$(auth_plist "$retro" RETRO0000001)" retro1
[[ $STATUS == 200 ]] || it_abort "setup: Authenticate of $retro" "$STATUS"
checkin "$(token_plist "$retro" "$token")" retro1
[[ $STATUS == 200 ]] || it_abort "setup: TokenUpdate of $retro" "$STATUS"
# Migrated: the same store without that device's binding (dump, drop the
# certificate index entry and the device's hash, restore).
it_stop_responder
ctl dump --secrets -o "$IT_DIR/pre-retro.jsonl" || it_abort "setup: dump"
jq -c --arg id "$retro" '
    if .db == "cert" and .value == $id then empty
    elif .db == "device" and .key == $id then del(.value.identity_cert_sha256)
    else . end' "$IT_DIR/pre-retro.jsonl" |
    jq -c -s '(map(select(.end != true)) | length - 1) as $n |
        .[] | if .end == true then .records = $n else . end' \
    >"$IT_DIR/retro.jsonl"
rm -rf "$newdb"
ctl restore "$IT_DIR/retro.jsonl" >/dev/null 2>"$IT_DIR/restore.err" ||
    it_abort "setup: restore without the binding" "$(head -c 300 "$IT_DIR/restore.err")"
expect_jq "$(ctlok show "$retro")" .device.identity_cert_sha256 null \
    "the migrated device has no certificate binding"
it_start_responder
before=$(db_digest)
checkin "$(token_plist "$retro" "$token")" retro2
expect_status 403 "without allow_retro an unbound enrollment is refused"
expect_logged 403 "certificate not bound to this enrollment" "... with its reason logged"
expect_eq "$(db_digest)" "$before" "... and nothing written"
it_stop_responder
IT_RESPONDER_CMD+=(--allow-retro)
it_start_responder
checkin "$(token_plist "$retro" "$token")" retro2
expect_status 200 "with --allow-retro the unbound enrollment binds the certificate"
expect_jq "$(ctlok show "$retro")" .device.identity_cert_sha256 \
    "$(openssl x509 -in "$IT_CERTS/devices/retro2.pem" -outform DER |
    sha256sum | cut -d ' ' -f 1)" "... which is now its certificate"
checkin "$(token_plist "$retro" "$token")" retro1
expect_status 403 "then another certificate is refused even with allow_retro"

# ---- purge --verify: exit 1 when something is left ----

# A command result of device 1 that mentions the retro device's serial:
# purging the retro device leaves that string in another device's data.
printf '{"request_type": "ProfileList", "command_uuid": "mention-1"}\n' \
    >"$IT_DIR/mention.json"
ctl enqueue "$udid" "$IT_DIR/mention.json" >/dev/null ||
    it_abort "setup: enqueue mention-1"
f=$(report "$udid" Acknowledged mention-1 \
    Note="about the device RETRO0000001")
connect "$f" device1
expect_status 200 "a result mentioning another device's serial stored"
it_stop_responder
expect_exit 1 "purge --verify exits 1 when an identifier is left" \
    ctl purge "$retro" --yes --verify
expect_eq "$(grep -c $'^hit\tresult\t.*\tRETRO0000001$' "$EXIT_OUT" || true)" 1 \
    "... naming the hit: the result, and the serial it holds"
expect_eq "$(grep '^verify' "$EXIT_OUT" | cut -f 2)" "1 hits" "... and counting it"
expect_exit 1 "the purged device is gone" ctl show "$retro"
expect_exit 0 "purge --verify of a device with no trace left exits 0" \
    ctl purge "$serial" --yes --verify
expect_eq "$(grep '^verify' "$EXIT_OUT" | cut -f 2)" "0 hits" "... 0 hits"

# ---- secrets: dump -o 0600, nothing secret without --secrets ----

it_start_responder
enroll "$udid" device1 "$serial"
f=$(it_file bst.plist)
plist_write "$f" MessageType=SetBootstrapToken UDID="$udid" \
    BootstrapToken:data=cHJvbWlzZS1ib290c3RyYXA= AwaitingConfiguration:bool=false
checkin "$f" device1
expect_status 200 "SetBootstrapToken"
checkin "$(token_plist "$udid" "$token" UnlockToken:data=cHJvbWlzZS11bmxvY2s=)" device1
expect_status 200 "TokenUpdate with an UnlockToken"
it_stop_responder
rm -f "$IT_DIR/dump.jsonl"
(umask 000 && ctl dump -o "$IT_DIR/dump.jsonl") || fail "dump -o"
expect_eq "$(stat -c %a "$IT_DIR/dump.jsonl")" 600 "dump -o creates its file mode 0600 (umask 000)"
secrets=("$token" "$(base64 -d <<<"$token" | xxd -p -c 256)"
    cHJvbWlzZS1ib290c3RyYXA= promise-bootstrap cHJvbWlzZS11bmxvY2s=
    promise-unlock 8B0E2D3C-7A61-4F59-9E1C-4D2B6A8F0C13)
ctl show "$udid" >"$IT_DIR/show.json" || fail "show"
ctl inventory "$udid" --json >"$IT_DIR/inventory.json" || fail "inventory"
for out in dump.jsonl show.json inventory.json fcgi.log; do
	leaks=
	for s in "${secrets[@]}"; do
		grep -q -F -- "$s" "$IT_DIR/$out" && leaks+=" ${s:0:12}..."
	done
	expect_eq "${leaks:-none}" none "no secret in $out"
done
expect_eq "$(grep -c -F -- "$(cat "$IT_DIR/api.key")" "$IT_DIR/fcgi.log" || true)" 0 \
    "the API key is not in fcgi.log"
ctl dump --secrets -o "$IT_DIR/dump-secrets.jsonl" || fail "dump --secrets"
n=0
for s in "$token" cHJvbWlzZS1ib290c3RyYXA= cHJvbWlzZS11bmxvY2s=; do
	grep -q -F -- "$s" "$IT_DIR/dump-secrets.jsonl" && n=$((n + 1))
done
expect_eq "$n" 3 "dump --secrets holds push token, BootstrapToken and UnlockToken"
rm -f "$IT_DIR"/dump*.jsonl "$IT_DIR"/pre-retro.jsonl "$IT_DIR"/retro.jsonl

# ---- durability and group commit, seen through the syncs ----
# tests/integration/syncshim.c, preloaded into the responder, counts
# LMDB's fdatasync/fsync/msync calls and makes each take 400 ms. A reply
# sent before its sync, or no sync at all (MDB_NOSYNC), answers faster
# than that; one sync per operation instead of one per batch shows in the
# count.
shim=$IT_DIR/syncshim.so
cc -shared -fPIC -O2 -o "$shim" "$IT_LIB_DIR/syncshim.c" ||
    it_abort "setup: cc syncshim.c"
synclog=$IT_DIR/syncs
: >"$synclog"
plain_cmd=("${IT_RESPONDER_CMD[@]}")
IT_RESPONDER_CMD=(/usr/bin/env LD_PRELOAD="$shim" SYNCSHIM_LOG="$synclog"
    SYNCSHIM_DELAY_MS=400
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
    "${plain_cmd[@]}")
it_start_responder
syncs() { stat -c %s "$synclog"; }
for i in 1 2 3; do
	s0=$(syncs)
	t0=$(date +%s%N)
	checkin "$(token_plist "$udid" "$(openssl rand -base64 32)")" device1
	ms=$((($(date +%s%N) - t0) / 1000000))
	expect_status 200 "TokenUpdate $i with a 400 ms sync"
	if ((ms >= 400)); then
		pass "TokenUpdate $i answered after its sync (${ms} ms)"
	else
		fail "TokenUpdate $i answered after its sync" \
		    "answered in ${ms} ms, a sync takes 400"
	fi
	expect_eq "$(($(syncs) > s0))" 1 "TokenUpdate $i was synced ($((\
	    $(syncs) - s0)) syncs)"
done
# 16 requests at once: they wait together behind one sync. One curl
# makes the 16 transfers in parallel (--parallel), so that they arrive
# within a sync or two of each other also on a busy machine, where 16
# curl processes doing their TLS handshakes one core at a time took
# longer than 6 syncs to arrive.
s0=$(syncs)
mapfile -t certargs < <(it_cert_args device1)
gcargs=()
for i in $(seq 16); do
	f=$(token_plist "$udid" "$(openssl rand -base64 32)")
	((i == 1)) || gcargs+=(--next)
	gcargs+=(-sS -o /dev/null -w '%{http_code}\n'
	    --resolve "localhost:$IT_PORT:127.0.0.1"
	    --cacert "$IT_CERTS/server-ca.pem" --max-time 60 -X PUT
	    "${certargs[@]}" -H "Content-Type: $IT_CHECKIN_TYPE"
	    --data-binary "@$f" "$IT_URL/mdm/checkin")
done
curl -sS --parallel --parallel-immediate --parallel-max 16 "${gcargs[@]}" \
    >"$IT_DIR/gc" 2>"$IT_DIR/gc.err" || true
expect_eq "$(sort "$IT_DIR/gc" | uniq -c | tr -s ' ')" " 16 200" \
    "16 concurrent TokenUpdates answered 200 (curl's errors: gc.err)"
n=$(($(syncs) - s0))
if ((n >= 1 && n <= 6)); then
	pass "16 concurrent operations shared batches: $n syncs"
else
	fail "16 concurrent operations share batches and syncs" "$n syncs"
fi
it_stop_responder
IT_RESPONDER_CMD=("${plain_cmd[@]}")
rm -f "$IT_DIR"/gc.*

# ---- 1,000 IDs per enqueue ----

it_start_responder
ids=$udid
for ((i = 1; i < 1000; i++)); do
	ids+=$(printf ',X%03d' "$i")
done
api PUT "/api/v1/enqueue/$ids" --data-binary "@$(cmd_plist ids-1000 ProfileList)"
expect_status 207 "1000 IDs in one enqueue (one enrolled): 207"
expect_body_jq '.status | length' 1000 "... an outcome for each of the 1000"
expect_body_jq ".status[\"$udid\"].status" queued "... the enrolled one queued"
api PUT "/api/v1/enqueue/$ids,X1000" --data-binary "@$(cmd_plist ids-1001 ProfileList)"
expect_api_error 400 "1001 IDs: 400" "more than 1000"
api GET "/api/v1/commands/ids-1001"
expect_status 404 "... and the command was not kept"
printf '{"request_type": "ProfileList", "command_uuid": "ctl-1001"}\n' \
    >"$IT_DIR/ctl.json"
expect_exit 2 "picomdmctl enqueue of 1001 IDs exits 2" \
    ctl enqueue "$ids,X1000" "$IT_DIR/ctl.json"

# ---- retention: prune --results-days ----

printf '{"request_type": "ProfileList", "command_uuid": "keep-1"}\n' \
    >"$IT_DIR/keep.json"
ctl enqueue "$udid" "$IT_DIR/keep.json" >/dev/null || it_abort "setup: enqueue keep-1"
expect_eq "$(send "$udid" device1 Idle)" ids-1000 "Idle gets ids-1000"
expect_eq "$(send "$udid" device1 Acknowledged ids-1000)" keep-1 "then keep-1"
expect_eq "$(send "$udid" device1 Acknowledged keep-1)" "" "both results stored"
it_stop_responder
expect_jq "$(ctlok results "$udid")" '[.results[].command_uuid] | join(",")' \
    keep-1,ids-1000 "two results before pruning"
expect_exit 0 "prune --results-days 1" ctl prune --results-days 1
expect_jq "$(ctlok results "$udid")" '[.results[].command_uuid] | join(",")' \
    keep-1,ids-1000 "prune --results-days 1 keeps today's results"
expect_exit 0 "prune --results-days 0" ctl prune --results-days 0
expect_jq "$(ctlok results "$udid")" '.results | type == "array" and length == 0' \
    true "prune --results-days 0 removes them"
expect_jq "$(ctlok show "$udid")" '.enrollments[0].enabled' true \
    "... and keeps the enrolled device"

IT_DB=$IT_DB_SAVED
it_done
