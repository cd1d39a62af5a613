#!/usr/bin/env bash
#
# test-faults.sh - resource faults through real nginx and TLS (issue 5,
# section 6):
#
#   1. a map that is full and cannot grow (--map-size = --map-max = 1m):
#      reports are stored until the store answers 503; a refused request
#      writes nothing, picomdmctl check stays clean, and a restart with a
#      larger --map-max takes the same request;
#      and the map growing, from 1 MiB, under concurrent load: every
#      request answered, and the responder still stops on SIGTERM;
#      and more connections than request slots (--max-inflight 2): every
#      request answered;
#   2. the store directory read-only for the responder (run as nobody,
#      since root ignores permissions): a clear error and a non-zero exit
#      at start-up;
#   3. the LMDB reader table full (another process holding every slot):
#      device check-ins, which only write, still succeed, API reads get
#      503, and reads work again once the slots are released, also when
#      their holder was killed without releasing them;
#   4. slow clients holding connections (a body trickling in, headers
#      never finished): other devices are still served at once;
#   5. a burst of oversized bodies, over the responder's cap and over
#      nginx's: every one 413, and the responder's memory stays flat.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

LG=$PM_BUILD/tests/loadgen
# A cap below nginx's 64k for /mdm/checkin, so the responder's own 413
# is exercised (bodies between the two reach it).
IT_RESPONDER_ARGS=(--checkin-max 16k)
it_start
[[ -x $LG ]] || it_abort "setup: $LG not built"

udid=00008130-FA017000000000A1
token=$(openssl rand -base64 32)
checkin "$(auth_plist "$udid" FAULTS00001)" device1
[[ $STATUS == 200 ]] || it_abort "setup: Authenticate" "status $STATUS"
checkin "$(token_plist "$udid" "$token")" device1
[[ $STATUS == 200 ]] || it_abort "setup: TokenUpdate" "status $STATUS"

# vm_kb NAME: a /proc status field of the responder, in kB.
vm_kb() {
	awk -v f="$1:" '$1 == f { print $2 }' \
	    "/proc/$(head -n 1 "$IT_DIR/fcgi.pid")/status"
}

# api_get PATH: GET on the operator API; sets STATUS.
api_get() {
	put_raw "$1" -X GET -H "Authorization: Bearer $(cat "$IT_DIR/api.key")"
}

# ---- 5. a burst of oversized bodies (first: the store is still small) ----
big=$(it_file big.plist)
{
	printf '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n<dict>\n'
	printf '\t<key>MessageType</key>\n\t<string>TokenUpdate</string>\n'
	printf '\t<key>Pad</key>\n\t<string>'
	head -c 24000 /dev/zero | tr '\0' 'x'
	printf '</string>\n</dict>\n</plist>\n'
} >"$big"
huge=$(it_file huge.plist)
head -c 100000 /dev/zero | tr '\0' 'y' >"$huge"
over=$(it_file over.devices)
echo "$big $IT_CERTS/devices/device1.pem $IT_CERTS/devices/device1.key" >"$over"
echo "$huge $IT_CERTS/devices/device2.pem $IT_CERTS/devices/device2.key" >>"$over"
burst() {
	"$LG" --port "$IT_PORT" --tls --cacert "$IT_CERTS/server-ca.pem" \
	    --devices "$over" --connections 16 --requests "$1" --timeout 20000
}
burst 400 >/dev/null 2>&1 || true # warm up the responder's threads
rss0=$(vm_kb VmRSS)
out=$(burst 2000 2>&1) || true
rss1=$(vm_kb VmRSS)
n413=$(jq -r '.status["413"] // 0' <<<"$out" 2>/dev/null || echo 0)
expect_eq "$n413" 2000 "a burst of 2000 oversized bodies is answered 413 every time"
if grep -q 'body over the cap' "$IT_DIR/fcgi.log"; then
	pass "bodies over the responder's cap reach it and are refused there"
else
	fail "bodies over the responder's cap reach it and are refused there"
fi
# About 120 MB of bodies went by; flat means a few MB at most (more
# under ASan, whose quarantine keeps freed memory for a while).
lim=4096
grep -q fsanitize "$PM_BUILD/Makefile" 2>/dev/null && lim=49152
if ((rss1 - rss0 < lim)); then
	pass "responder memory flat over the burst (${rss0} -> ${rss1} kB)"
else
	fail "responder memory flat over the burst" "${rss0} -> ${rss1} kB"
fi

# ---- 4. slow clients ----
# What holds this is nginx buffering the whole body before it opens the
# FastCGI request (fastcgi_request_buffering on in nginx/picomdm.conf.in,
# which the harness renders): with it off, the trickling bodies occupy
# both workers and the TokenUpdates below wait for them (tests/
# mutations.list has that mutation; it must be killed here).
# Eight connections (more than the responder's two workers) that send
# a request head and then a body one byte a second, or never finish
# their headers; while they hang, a device must be served quickly.
slow_pid=
python3 - "$IT_PORT" 8 >"$(it_file slow.log)" 2>&1 <<'EOF' &
import socket, ssl, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
socks = []
for i in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                        server_hostname="localhost")
    if i % 2:
        s.send(b"PUT /mdm/checkin HTTP/1.1\r\nHost: localhost\r\n"
               b"Content-Type: application/x-apple-aspen-mdm-checkin\r\n"
               b"Content-Length: 1000\r\n\r\n<")
    else:
        s.send(b"PUT /mdm/checkin HTTP/1.1\r\nHost: loc")
    socks.append(s)
print("holding", len(socks), flush=True)
end = time.time() + 30
while time.time() < end:
    for s in socks[1::2]:
        try:
            s.send(b" ")
        except OSError:
            pass
    time.sleep(1)
EOF
slow_pid=$!
for _ in $(seq 50); do
	grep -q holding "$(it_file slow.log)" 2>/dev/null && break
	sleep 0.1
done
grep -q holding "$(it_file slow.log)" ||
    it_abort "setup: slow clients connected and holding" \
    "$(head -c 200 "$(it_file slow.log)")"
note "slow clients connected and holding"
t0=$(date +%s%N)
for _ in 1 2 3 4 5; do
	checkin "$(token_plist "$udid" "$token")" device1
	[[ $STATUS == 200 ]] || break
done
t1=$(date +%s%N)
expect_status 200 "TokenUpdates served while slow clients hold connections"
ms=$(((t1 - t0) / 1000000))
if ((ms < 5000)); then
	pass "five TokenUpdates took ${ms} ms with slow clients around"
else
	fail "five TokenUpdates served promptly with slow clients around" "${ms} ms"
fi
kill "$slow_pid" 2>/dev/null || true
wait "$slow_pid" 2>/dev/null || true

# ---- 3. the reader table full ----
# A process that opens read transactions (MDB_NOTLS: one slot each)
# until LMDB says the table is full, prints how many it got, and holds
# them until stdin closes or it is killed.
holder_py=$(it_file holder.py)
cat >"$holder_py" <<'EOF'
import ctypes, ctypes.util, os, sys
lib = ctypes.CDLL(ctypes.util.find_library("lmdb") or "liblmdb.so.0")
P = ctypes.c_void_p
lib.mdb_env_create.argtypes = [ctypes.POINTER(P)]
lib.mdb_env_set_maxdbs.argtypes = [P, ctypes.c_uint]
lib.mdb_env_open.argtypes = [P, ctypes.c_char_p, ctypes.c_uint, ctypes.c_int]
lib.mdb_txn_begin.argtypes = [P, P, ctypes.c_uint, ctypes.POINTER(P)]
lib.mdb_txn_abort.argtypes = [P]
lib.mdb_env_close.argtypes = [P]
env = P()
MDB_RDONLY, MDB_NOTLS = 0x20000, 0x200000
assert lib.mdb_env_create(ctypes.byref(env)) == 0
lib.mdb_env_set_maxdbs(env, 64)
rc = lib.mdb_env_open(env, sys.argv[1].encode(), MDB_RDONLY | MDB_NOTLS,
                      0o600)
if rc:
    print("open failed", rc, flush=True)
    sys.exit(1)
txns = []
while True:
    t = P()
    rc = lib.mdb_txn_begin(env, None, MDB_RDONLY, ctypes.byref(t))
    if rc:
        break
    txns.append(t)
print("holding", len(txns), "full" if rc == -30790 else rc, os.getpid(),
      flush=True)
sys.stdin.read()
for t in txns:
    lib.mdb_txn_abort(t)
lib.mdb_env_close(env)
EOF
holder() {
	python3 "$holder_py" "$IT_DB"
}
# hold: start the holder with a pipe as its stdin; wait until it holds.
hold() {
	: >"$(it_file holder.log)"
	exec {hold_fd}> >(holder >"$(it_file holder.log)" 2>&1)
	for _ in $(seq 100); do
		grep -q holding "$(it_file holder.log)" 2>/dev/null && break
		sleep 0.05
	done
	hold_pid=$(cut -d ' ' -f 4 "$(it_file holder.log)")
	[[ $hold_pid =~ ^[0-9]+$ ]] ||
	    it_abort "setup: reader holder" "$(head -c 200 "$(it_file holder.log)")"
}
api_get "/api/v1/enrollments/$udid"
expect_status 200 "API read works before the reader table fills"
hold
[[ $(cut -d ' ' -f 3 "$(it_file holder.log)") == full ]] ||
    it_abort "setup: another process filled the reader table" \
    "$(head -c 200 "$(it_file holder.log)")"
note "another process filled the reader table ($(cut -d ' ' -f 2 "$(it_file holder.log)") slots)"
checkin "$(token_plist "$udid" "$token")" device1
expect_status 200 "TokenUpdate (a write: no reader slot) succeeds with the table full"
api_get "/api/v1/enrollments/$udid"
expect_status 503 "API read answered 503 while no reader slot is free"
if out=$(ctl show "$udid" 2>&1); then
	fail "picomdmctl show fails while no reader slot is free"
else
	pass "picomdmctl show fails while no reader slot is free: $(head -n 1 <<<"$out" | cut -c 1-80)"
fi
exec {hold_fd}>&-
pm_wait_gone "$hold_pid" 5 || true
api_get "/api/v1/enrollments/$udid"
expect_status 200 "API read works again once the slots are released"
# Now a holder that dies without releasing its slots.
hold
kill -KILL "$hold_pid" 2>/dev/null || true
pm_wait_gone "$hold_pid" 5 || true
exec {hold_fd}>&- 2>/dev/null || true
api_get "/api/v1/enrollments/$udid"
# LMDB frees a dead process's slots only when someone calls
# mdb_reader_check(); until then they are lost, and the oldest of them
# also keeps every page freed since from being reused.
expect_status 200 "API read works again after the slots' holder was killed (stale slots reclaimed by mdb_reader_check)"
checkin "$(token_plist "$udid" "$token")" device1
expect_status 200 "TokenUpdate after the reader table faults"

# ---- 1. a full map that cannot grow ----
it_stop_responder
IT_RESPONDER_CMD+=(--map-size 1m --map-max 1m)
rm -rf "$IT_DB"
mkdir -p "$IT_DB"
it_start_responder
checkin "$(auth_plist "$udid" FAULTS00001)" device1
expect_status 200 "Authenticate on a 1 MiB store"
checkin "$(token_plist "$udid" "$token")" device1
expect_status 200 "TokenUpdate on a 1 MiB store"
# Reports of about 60 kB each, kept raw, until the map is full.
report() {
	local f
	f=$(it_file "report-$1.plist")
	{
		printf '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n<dict>\n'
		printf '\t<key>CommandUUID</key>\n\t<string>FULL-%04d</string>\n' "$1"
		printf '\t<key>Pad</key>\n\t<string>'
		head -c 60000 /dev/zero | tr '\0' 'z'
		printf '</string>\n\t<key>Status</key>\n\t<string>Acknowledged</string>\n'
		printf '\t<key>UDID</key>\n\t<string>%s</string>\n</dict>\n</plist>\n' "$udid"
	} >"$f"
	printf '%s\n' "$f"
}
stored=0
for ((i = 0; i < 40; i++)); do
	f=$(report "$i")
	before=$(db_digest)
	connect "$f" device1
	[[ $STATUS == 200 ]] || break
	stored=$((stored + 1))
done
expect_status 503 "a report is answered 503 once the map is full ($stored stored before)"
expect_eq "$(db_digest)" "$before" "the refused report wrote nothing"
if ((stored >= 3)); then
	pass "reports were stored until the map filled"
else
	fail "reports were stored until the map filled" "only $stored"
fi
if grep -q 'store full' "$IT_DIR/fcgi.log"; then
	pass "the responder logs why (store full)"
else
	fail "the responder logs why (store full)"
fi
checkin "$(token_plist "$udid" "$token")" device1
if [[ $STATUS == 200 || $STATUS == 503 ]]; then
	pass "a small check-in on the full map is 200 or 503 ($STATUS), nothing else"
else
	fail "a small check-in on the full map is 200 or 503" "status $STATUS"
fi
expect_exit 0 "picomdmctl check is clean on the full map" ctl check
expect_jq "$(ctlok show "$udid")" '.enrollments[0].token.sha256' \
    "$(sha256_b64 "$token")" "the enrollment is intact on the full map"
it_stop_responder
IT_RESPONDER_CMD+=(--map-max 64m)
it_start_responder
connect "$f" device1
expect_status 200 "after a restart with --map-max 64m the same report is stored"
for ((j = 1; j <= 5; j++)); do
	connect "$(report $((i + j)))" device1
	[[ $STATUS == 200 ]] || break
done
expect_status 200 "and the map keeps growing"
expect_exit 0 "picomdmctl check is clean after growth" ctl check

# term_stops WHAT: SIGTERM the responder; it must be gone within 10 s
# (a worker or request left waiting would keep it alive).
term_stops() {
	local pid
	pid=$(head -n 1 "$IT_DIR/fcgi.pid")
	kill -TERM "$pid" 2>/dev/null || true
	if pm_wait_gone "$pid" 10; then
		pass "$1"
	else
		fail "$1"
		kill -KILL "$pid" 2>/dev/null || true
		pm_wait_gone "$pid" 5 || true
	fi
	rm -f "$IT_DIR/fcgi.pid"
}

# ---- 1b. map growth under concurrent load ----
# Reports of about 20 kB with fresh CommandUUIDs from 16 connections
# into a 1 MiB map that may grow to 256 MiB, with 8 workers: the map
# doubles several times while batches hold several requests, some of
# which hit the full map and are run again after growth. Every request
# must be answered, and no worker may be left waiting for its commit.
it_stop_responder
IT_RESPONDER_CMD+=(--map-size 1m --map-max 256m --workers 8)
rm -rf "$IT_DB"
mkdir -p "$IT_DB"
it_start_responder
checkin "$(auth_plist "$udid" FAULTS00001)" device1
checkin "$(token_plist "$udid" "$token")" device1
expect_status 200 "enrolled again on a fresh 1 MiB store"
grow=$(it_file grow.plist)
{
	printf '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n<dict>\n'
	printf '\t<key>CommandUUID</key>\n\t<string>@TOKEN@</string>\n'
	printf '\t<key>Pad</key>\n\t<string>'
	head -c 20000 /dev/zero | tr '\0' 'g'
	printf '</string>\n\t<key>Status</key>\n\t<string>Acknowledged</string>\n'
	printf '\t<key>UDID</key>\n\t<string>%s</string>\n</dict>\n</plist>\n' "$udid"
} >"$grow"
out=$("$LG" --port "$IT_PORT" --tls --cacert "$IT_CERTS/server-ca.pem" \
    --body "$grow" --cert "$IT_CERTS/devices/device1.pem" \
    --key "$IT_CERTS/devices/device1.key" --path /mdm/connect \
    --content-type "$IT_CONNECT_TYPE" --connections 16 --requests 3000 \
    --timeout 10000 2>&1) || true
echo "# loadgen: $out"
expect_eq "$(jq -r '.status["200"] // 0' <<<"$out" 2>/dev/null)" 3000 \
    "3000 reports from 16 connections all stored while the map grew"
expect_eq "$(jq -r '.errors.timeout // 0' <<<"$out" 2>/dev/null)" 0 \
    "no request left unanswered across map growth"
grows=$(grep -c 'map grown' "$IT_DIR/fcgi.log" || true)
if ((grows >= 3)); then
	pass "the map grew $grows times meanwhile"
else
	fail "the map grew several times meanwhile" "$grows"
fi
term_stops "the responder stops on SIGTERM after map growth (no worker stuck)"
expect_exit 0 "picomdmctl check is clean after growth under load" ctl check

# ---- 1c. more devices than request slots ----
# With --max-inflight 2 and 3 workers, at most two requests are accepted
# and not yet answered; 16 connections of TokenUpdates must all be served
# (workers wait for a slot, nginx holds the connections), and the
# responder must still stop on SIGTERM with workers waiting for slots.
it_stop_responder
IT_RESPONDER_CMD+=(--workers 3 --max-inflight 2)
it_start_responder
tok=$(token_plist "$udid" "$token")
out=$("$LG" --port "$IT_PORT" --tls --cacert "$IT_CERTS/server-ca.pem" \
    --body "$tok" --cert "$IT_CERTS/devices/device1.pem" \
    --key "$IT_CERTS/devices/device1.key" --path /mdm/checkin \
    --content-type "$IT_CHECKIN_TYPE" --connections 16 --requests 2000 \
    --timeout 10000 2>&1) || true
echo "# loadgen: $out"
expect_eq "$(jq -r '.status["200"] // 0' <<<"$out" 2>/dev/null)" 2000 \
    "2000 TokenUpdates from 16 connections through 2 request slots"
expect_eq "$(jq -r '.errors.timeout // 0' <<<"$out" 2>/dev/null)" 0 \
    "no request left unanswered waiting for a slot"
term_stops "the responder stops on SIGTERM with workers waiting for slots"

# ---- 2. a read-only store directory ----
it_stop_responder
# Outside the test directory, which only its owner may enter.
ro=$(mktemp -d "${TMPDIR:-/tmp}/picomdm-ro.XXXXXX")
mkdir -p "$ro/db"
cp "$IT_CERTS/ca.pem" "$ro/ca.pem"
chmod 0755 "$ro" "$ro/db"
chmod 0644 "$ro/ca.pem"
# The test's store as it stands, then the responder started as a user
# who may read it but not write (root ignores permissions: as nobody).
cp -a "$IT_DB/." "$ro/db/"
chmod 0644 "$ro/db/"*
run_ro=()
if ((EUID == 0)); then
	run_ro=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
	bin=$ro/picomdm-fcgi
	cp "$PM_BUILD/picomdm-fcgi" "$bin"
	chmod 0755 "$bin"
else
	chmod 0555 "$ro/db"
	bin=$PM_BUILD/picomdm-fcgi
fi
# The socket where that user may create it: the store must be the
# reason it cannot start.
mkdir -p "$ro/run" && chmod 1777 "$ro/run"
rc=0
timeout 20 "${run_ro[@]}" "$bin" --db "$ro/db" --device-ca "$ro/ca.pem" \
    --socket "$ro/run/s.sock" --workers 1 >"$ro/log" 2>&1 || rc=$?
# 1: "cannot start" (picomdm-fcgi(8)); a sanitizer's exit is 86 here.
if ((rc == 1)); then
	pass "responder on a read-only store directory exits 1"
else
	fail "responder on a read-only store directory exits 1" \
	    "exit $rc: $(head -c 300 "$ro/log")"
fi
if grep -qi -e 'permission denied' -e 'read-only' "$ro/log"; then
	pass "and says why: $(grep -i -m 1 -e 'permission denied' -e 'read-only' "$ro/log" | cut -c 1-100)"
else
	fail "and says why" "$(head -c 300 "$ro/log")"
fi
rm -rf "$ro"

it_start_responder
checkin "$(token_plist "$udid" "$token")" device1
expect_status 200 "the responder serves again on its own store"

it_done
