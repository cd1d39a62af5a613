#!/usr/bin/env bash
#
# test-socket.sh - picomdm-fcgi's listening socket, as picomdm-fcgi(8)
# describes it: a second responder on a socket that is served refuses
# (exit 1, one line) and the first keeps serving; a stale socket is
# replaced; fd 0 that is not a listening socket is refused with a hint, one
# that is is served; a failed start leaves no socket file; anything else at
# the path is left alone; socket_owner / socket_group / socket_mode.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

it_start

fcgi=$PM_BUILD/picomdm-fcgi
ca=$IT_CERTS/ca.pem
udid=00008110-00050C4E7A1B2C3D
serial=SOCKET000001

# run_fcgi LOG ARG...: a responder that is expected to stop at start-up;
# prints its exit status (killed after 10 s if it does not stop).
run_fcgi() {
	local log=$1 rc=0
	shift
	timeout -s KILL 10 "$fcgi" --workers 2 "$@" </dev/null >"$log" 2>&1 ||
	    rc=$?
	printf '%s\n' "$rc"
}

# lines FILE: how many lines FILE has.
lines() {
	wc -l <"$1" | tr -d ' '
}

checkin "$(auth_plist "$udid" "$serial")" device1
expect_status 200 "first responder serves"
ino=$(stat -c %i "$IT_SOCK")

# 1. A second responder on the served socket.
log2=$IT_DIR/second.log
mkdir -p "$IT_DIR/db2"
rc=$(run_fcgi "$log2" --db "$IT_DIR/db2" --device-ca "$ca" --socket "$IT_SOCK")
expect_eq "$rc" 1 "second responder on a served socket exits 1"
expect_eq "$(lines "$log2")" 1 "second responder says why in one line"
if grep -q "socket $IT_SOCK: another responder is serving on it" "$log2"; then
	pass "the refusal names the socket and the reason"
else
	fail "the refusal names the socket and the reason" "$(cat "$log2")"
fi
expect_eq "$(stat -c %i "$IT_SOCK" 2>&1)" "$ino" \
    "the served socket file is left as it was"
checkin "$(token_plist "$udid" "$(openssl rand -base64 32)")" device1
expect_status 200 "first responder still serves after the refusal"
expect_jq "$(ctl show "$udid" 2>&1)" '.enrollments[0].enabled' true \
    "the check-in went to the first responder's store"
if [[ -e $IT_DIR/db2/data.mdb ]] &&
    "$PM_BUILD/picomdmctl" --db "$IT_DIR/db2" show "$udid" >/dev/null 2>&1; then
	fail "the refused responder's store got nothing"
else
	pass "the refused responder's store got nothing"
fi

# 2. Anything but a socket at the path is left alone.
printf 'keep me\n' >"$IT_DIR/notasocket"
rc=$(run_fcgi "$IT_DIR/file.log" --db "$IT_DIR/db2" --device-ca "$ca" \
    --socket "$IT_DIR/notasocket")
expect_eq "$rc" 1 "a regular file at the socket path: exit 1"
expect_eq "$(cat "$IT_DIR/notasocket")" "keep me" "the file is left alone"
grep -q "is not a socket" "$IT_DIR/file.log" &&
    pass "the refusal says it is not a socket" ||
    fail "the refusal says it is not a socket" "$(cat "$IT_DIR/file.log")"

# 3. A missing directory is named; exit 1 (not libfcgi's errno).
rc=$(run_fcgi "$IT_DIR/nodir.log" --db "$IT_DIR/db2" --device-ca "$ca" \
    --socket "$IT_DIR/nodir/fcgi.sock")
expect_eq "$rc" 1 "socket in a missing directory: exit 1"
grep -q "directory $IT_DIR/nodir does not exist" "$IT_DIR/nodir.log" &&
    pass "the missing directory is named" ||
    fail "the missing directory is named" "$(cat "$IT_DIR/nodir.log")"

# 4. A start that fails after the socket was made leaves no socket file.
s4=$IT_DIR/fail4.sock
rc=$(run_fcgi "$IT_DIR/fail4.log" --db /proc/picomdm-no-store \
    --device-ca "$ca" --socket "$s4")
expect_eq "$rc" 1 "store that cannot be opened: exit 1"
[[ ! -e $s4 ]] && pass "failed start leaves no socket file" ||
    fail "failed start leaves no socket file"
rc=$(run_fcgi "$IT_DIR/fail5.log" --db "$IT_DIR/db2" --device-ca "$ca" \
    --socket "$s4" --socket-group picomdm-no-such-group)
expect_eq "$rc" 1 "unknown socket_group: exit 1"
grep -q 'socket_group: no such group "picomdm-no-such-group"' \
    "$IT_DIR/fail5.log" && pass "unknown group named" ||
    fail "unknown group named" "$(cat "$IT_DIR/fail5.log")"
[[ ! -e $s4 ]] && pass "no socket file after a bad socket_group" ||
    fail "no socket file after a bad socket_group"

# 5. socket_group and socket_mode from the config file.
grp=$(id -gn)
s5=$IT_DIR/grp.sock
printf 'socket = %s\nsocket_group = %s  # nginx'"'"'s group\nsocket_mode = 0640\n' \
    "$s5" "$grp" >"$IT_DIR/grp.conf"
"$fcgi" --config "$IT_DIR/grp.conf" --db "$IT_DIR/db2" --device-ca "$ca" \
    --workers 1 </dev/null >"$IT_DIR/grp.log" 2>&1 &
p5=$!
for _ in $(seq 100); do
	grep -q serving "$IT_DIR/grp.log" 2>/dev/null && break
	kill -0 "$p5" 2>/dev/null || break
	sleep 0.05
done
expect_eq "$(stat -c '%G %a' "$s5" 2>&1)" "$grp 640" \
    "socket_group and socket_mode applied (comment after a value)"
if ((EUID == 0)) && id nobody >/dev/null 2>&1; then
	kill -TERM "$p5" && wait "$p5" || true
	"$fcgi" --config "$IT_DIR/grp.conf" --db "$IT_DIR/db2" \
	    --device-ca "$ca" --socket-owner nobody --workers 1 \
	    </dev/null >"$IT_DIR/grp.log" 2>&1 &
	p5=$!
	# Up to 15 s: CI runs this beside the sanitizer pass.
	for _ in $(seq 300); do
		grep -q serving "$IT_DIR/grp.log" 2>/dev/null && break
		kill -0 "$p5" 2>/dev/null || break
		sleep 0.05
	done
	got=$(stat -c '%U' "$s5" 2>&1) ||
	    got="$got; responder $(kill -0 "$p5" 2>/dev/null && echo running ||
		echo gone); its log: $(tail -n 3 "$IT_DIR/grp.log" | tr '\n' ' ')"
	expect_eq "$got" nobody "socket_owner applied"
fi
kill -TERM "$p5" && wait "$p5" || true
[[ ! -e $s5 ]] && pass "socket removed at a clean stop" ||
    fail "socket removed at a clean stop"

# 5b. A responder whose socket file was replaced by another's leaves the
# other's alone when it stops.
s6=$IT_DIR/two.sock
# serve LOG ARG...: start a responder on s6 in the background, wait until
# it serves; its pid in $spid.
serve() {
	local log=$1
	shift
	"$fcgi" --db "$IT_DIR/db2" --device-ca "$ca" --socket "$s6" \
	    --workers 1 "$@" </dev/null >"$log" 2>&1 &
	spid=$!
	for _ in $(seq 100); do
		grep -q serving "$log" 2>/dev/null && return 0
		kill -0 "$spid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
serve "$IT_DIR/a.log" || fail "responder A starts" "$(cat "$IT_DIR/a.log")"
pa=$spid
rm -f "$s6"
serve "$IT_DIR/b.log" --nosync || fail "responder B starts" "$(cat "$IT_DIR/b.log")"
pb=$spid
inob=$(stat -c %i "$s6")
kill -TERM "$pa" && wait "$pa" || true
expect_eq "$(stat -c %i "$s6" 2>&1)" "$inob" \
    "a responder stopping leaves a socket it did not make"
kill -TERM "$pb" && wait "$pb" || true
[[ ! -e $s6 ]] && pass "the socket's own responder removes it" ||
    fail "the socket's own responder removes it"

# 6. A stale socket (its responder killed) is replaced.
pid=$(head -n 1 "$IT_DIR/fcgi.pid")
kill -KILL "$pid"
pm_wait_gone "$pid" 10 || true
[[ -S $IT_SOCK ]] && pass "kill -9 leaves a stale socket" ||
    fail "kill -9 leaves a stale socket"
: >"$IT_DIR/fcgi.log.before"
cp "$IT_DIR/fcgi.log" "$IT_DIR/fcgi.log.before"
it_start_responder
for _ in $(seq 100); do
	grep -q "serving $IT_SOCK" <(tail -n +"$(($(lines "$IT_DIR/fcgi.log.before") + 1))" \
	    "$IT_DIR/fcgi.log") && break
	sleep 0.05
done
if tail -n +"$(($(lines "$IT_DIR/fcgi.log.before") + 1))" "$IT_DIR/fcgi.log" |
    grep -q "replacing a stale socket"; then
	pass "the stale socket is reported as replaced"
else
	fail "the stale socket is reported as replaced" \
	    "$(tail -n 3 "$IT_DIR/fcgi.log")"
fi
checkin "$(token_plist "$udid" "$(openssl rand -base64 32)")" device1
expect_status 200 "the responder serves on the replaced socket"

# 7. fd 0: not a listening socket, refused with a hint.
for what in devnull file; do
	case $what in
	devnull) in=/dev/null ;;
	file) in=$IT_DIR/grp.conf ;;
	esac
	rc=0
	timeout -s KILL 10 "$fcgi" --db "$IT_DIR/db2" --device-ca "$ca" \
	    --workers 1 <"$in" >"$IT_DIR/fd0.log" 2>&1 || rc=$?
	expect_eq "$rc" 1 "no --socket, fd 0 is $what: exit 1 at once"
	grep -q "file descriptor 0 is not a listening socket: give --socket PATH, or start picomdm-fcgi under spawn-fcgi or systemd socket activation" \
	    "$IT_DIR/fd0.log" && pass "fd 0 $what: the hint names --socket" ||
	    fail "fd 0 $what: the hint names --socket" "$(cat "$IT_DIR/fd0.log")"
done
# A connected (not listening) socket on fd 0 is refused too.
rc=$(/usr/bin/python3 - "$fcgi" "$IT_DIR/db2" "$ca" <<'EOF'
import socket, subprocess, sys
a, b = socket.socketpair()
p = subprocess.run([sys.argv[1], "--db", sys.argv[2], "--device-ca",
                    sys.argv[3], "--workers", "1"], stdin=b,
                   stderr=subprocess.DEVNULL, timeout=10)
print(p.returncode)
EOF
)
expect_eq "$rc" 1 "no --socket, fd 0 a connected socket: exit 1"

# ... and a listening socket on fd 0 (spawn-fcgi's way) is served.
it_stop_responder
rm -f "$IT_SOCK"
/usr/bin/python3 - "$IT_SOCK" "$fcgi" "$IT_DB" "$ca" "$IT_DIR/api.key" \
    >>"$IT_DIR/fcgi.log" 2>&1 <<'EOF' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(64)
os.dup2(s.fileno(), 0)
os.execv(sys.argv[2], [sys.argv[2], "--db", sys.argv[3], "--device-ca",
         sys.argv[4], "--api-key-file", sys.argv[5], "--workers", "2"])
EOF
p7=$!
IT_PIDS+=("$p7")
for _ in $(seq 100); do
	grep -q "serving fd 0" "$IT_DIR/fcgi.log" && break
	sleep 0.05
done
checkin "$(token_plist "$udid" "$(openssl rand -base64 32)")" device1
expect_status 200 "a listening socket handed over on fd 0 is served"
kill -TERM "$p7" && wait "$p7" || true
[[ -S $IT_SOCK ]] && pass "a socket handed over is not removed at exit" ||
    fail "a socket handed over is not removed at exit"

it_done
