#!/usr/bin/env bash
#
# test-operator.sh - the mistakes a new operator makes, and the one line
# that says what to do about each: picomdmctl on a wrong --db (and every
# command's --help without a store), picomdm-fcgi's configuration errors,
# an API body sent with the other method, a check-in sent to /mdm without
# its content type, and an nginx site that passes no
# PICOMDM_CLIENT_VERIFY. Also the workers' priority (--worker-nice).

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

it_start

pmctl=$PM_BUILD/picomdmctl
fcgi=$PM_BUILD/picomdm-fcgi
out=$IT_DIR/out
err=$IT_DIR/err

# run WANT_RC WHAT CMD...: CMD exits WANT_RC; its stdout in $out, stderr
# in $err.
run() {
	local want=$1 what=$2 rc=0
	shift 2
	"$@" >"$out" 2>"$err" </dev/null || rc=$?
	expect_eq "$rc" "$want" "$what: exit $want"
}

# one_line WHAT TEXT: stderr is exactly TEXT, one line.
one_line() {
	expect_eq "$(cat "$err")" "$2" "$1: one line saying what is missing"
}

# ---- picomdmctl on a wrong --db ----
missing=$IT_DIR/no-such-store
for cmd in devices "show X" stats "queue X" "results X" "cancel X" dump \
    check "inventory X" "purge X --yes" prune "backup $IT_DIR/bk" \
    "enqueue X $IT_DIR/api.key"; do
	# shellcheck disable=SC2086
	run 2 "picomdmctl --db (missing) $cmd" "$pmctl" --db "$missing" $cmd
	one_line "picomdmctl $cmd" \
	    "picomdmctl: $missing: no store here (create one with picomdm-fcgi or restore)"
done
[[ ! -e $missing && ! -e $IT_DIR/bk ]] &&
    pass "no command created a store or a backup on a missing --db" ||
    fail "no command created a store or a backup on a missing --db"
mkdir -p "$IT_DIR/empty"
run 2 "picomdmctl on a directory without data.mdb" "$pmctl" \
    --db "$IT_DIR/empty" devices
one_line "directory without data.mdb" \
    "picomdmctl: $IT_DIR/empty: no store here (no data.mdb; create one with picomdm-fcgi or restore)"
run 2 "picomdmctl --db FILE" "$pmctl" --db "$IT_DIR/api.key" stats
one_line "--db names a file" \
    "picomdmctl: $IT_DIR/api.key: not a directory (--db names the store's directory)"
mkdir -p "$IT_DIR/junk"
head -c 16384 /dev/urandom >"$IT_DIR/junk/data.mdb"
run 2 "picomdmctl on a file that is not LMDB" "$pmctl" --db "$IT_DIR/junk" \
    devices
expect_eq "$(wc -l <"$err")" 1 "not LMDB: one line"
grep -q '^picomdmctl: .*junk.*' "$err" && ! grep -q 'Z error ' "$err" &&
    pass "not LMDB: a command-line message, not a log line" ||
    fail "not LMDB: a command-line message, not a log line" "$(cat "$err")"
run 2 "picomdmctl --verbose on a file that is not LMDB" "$pmctl" --verbose \
    --db "$IT_DIR/junk" devices
grep -q 'Z error ' "$err" && pass "--verbose gives the log lines" ||
    fail "--verbose gives the log lines" "$(cat "$err")"

# Every command's --help: usage on stdout, exit 0, no store needed.
for cmd in devices show stats enqueue queue results cancel dump restore \
    backup check inventory purge prune; do
	run 0 "picomdmctl $cmd --help without a store" "$pmctl" \
	    --db "$missing" "$cmd" --help
	grep -q "^usage: picomdmctl --db DIR $cmd" "$out" &&
	    pass "$cmd --help prints its usage on stdout" ||
	    fail "$cmd --help prints its usage on stdout" "$(head -n 2 "$out" "$err")"
done
run 2 "picomdmctl with an unknown command" "$pmctl" --db "$IT_DB" frobnicate
grep -q '^picomdmctl: frobnicate: no such command' "$err" &&
    pass "an unknown command is named" ||
    fail "an unknown command is named" "$(head -n 1 "$err")"
# The purge question cannot be asked: usage error, 2, as picomdmctl(8) says.
checkin "$(auth_plist 00008110-000D0E0F10111213 OPER00000001)" device1
expect_status 200 "a device to purge"
run 2 "purge without --yes on a pipe" "$pmctl" --db "$IT_DB" purge \
    OPER00000001
run 0 "the device is still there" "$pmctl" --db "$IT_DB" show OPER00000001

# ---- picomdm-fcgi configuration errors ----
ca=$IT_CERTS/ca.pem
run 2 "picomdm-fcgi --config (missing)" "$fcgi" --config "$IT_DIR/nope.conf"
expect_eq "$(wc -l <"$err")" 1 "missing --config: one line"
grep -q "config: $IT_DIR/nope.conf: No such file or directory" "$err" &&
    ! grep -q 'are required' "$err" &&
    pass "missing --config: names the file, nothing more" ||
    fail "missing --config: names the file, nothing more" "$(cat "$err")"
printf 'db = %s\nlog_level = verbose\n' "$IT_DIR/db3" >"$IT_DIR/bad1.conf"
run 2 "config with a bad value" "$fcgi" --config "$IT_DIR/bad1.conf" \
    --device-ca "$ca"
grep -q "config: $IT_DIR/bad1.conf:2: log_level: bad value \"verbose\" (error, warn, info or debug)" \
    "$err" && pass "bad value: file, line and the valid values" ||
    fail "bad value: file, line and the valid values" "$(cat "$err")"
expect_eq "$(wc -l <"$err")" 1 "bad value: one line"
printf 'worker = 4\n' >"$IT_DIR/bad2.conf"
run 2 "config with an unknown key" "$fcgi" --config "$IT_DIR/bad2.conf"
grep -q "config: $IT_DIR/bad2.conf:1: unknown key worker (did you mean workers?)" \
    "$err" && pass "unknown key: the nearest key suggested" ||
    fail "unknown key: the nearest key suggested" "$(cat "$err")"
run 2 "an option out of range" "$fcgi" --config /dev/null \
    --db "$IT_DIR/db3" --device-ca "$ca" --workers 0
grep -q 'workers: bad value "0" (1 to 256)' "$err" &&
    pass "an option's bad value lists the range" ||
    fail "an option's bad value lists the range" "$(cat "$err")"

# ---- the workers' priority (--worker-nice) ----
# nices PID: the nice value of each of PID's threads, one a line.
nices() {
	local t
	for t in /proc/"$1"/task/*/stat; do
		awk '{ print $19 }' "$t"
	done
}
pid=$(head -n 1 "$IT_DIR/fcgi.pid")
base=$(awk '{ print $19 }' "/proc/$pid/stat")
low=$((base + 5 > 19 ? 19 : base + 5))
# The test's responder runs --workers 2: two threads 5 below the rest.
expect_eq "$(nices "$pid" | grep -cx -- "$low")" 2 \
    "default: both workers run at nice $low (the process's + 5)"
expect_eq "$(nices "$pid" | grep -cvx -- "$low")" \
    "$(($(nices "$pid" | wc -l) - 2))" \
    "default: the writer, completion and main threads keep nice $base"
nice_db=$IT_DIR/db-nice
mkdir -p "$nice_db"
"$fcgi" --db "$nice_db" --socket "$IT_DIR/nice.sock" --device-ca "$ca" \
    --workers 3 --worker-nice 0 --log-level info </dev/null \
    >"$IT_DIR/nice.log" 2>&1 &
nice_pid=$!
for _ in $(seq 100); do
	grep -q " serving " "$IT_DIR/nice.log" && break
	sleep 0.1
done
expect_eq "$(nices "$nice_pid" | sort -u)" "$base" \
    "--worker-nice 0: every thread at the process's nice"
kill "$nice_pid" && wait "$nice_pid" || :
run 2 "--worker-nice out of range" "$fcgi" --config /dev/null \
    --db "$IT_DIR/db3" --device-ca "$ca" --worker-nice 20
grep -q 'worker-nice: bad value "20" (0 to 19)' "$err" &&
    pass "--worker-nice 20: the range named" ||
    fail "--worker-nice 20: the range named" "$(cat "$err")"

# ---- the operator API: the other method's body ----
api() {
	local method=$1 path=$2
	shift 2
	put_raw "$path" -X "$method" \
	    -H "Authorization: Bearer $(cat "$IT_DIR/api.key")" "$@"
}
printf '{"request_type": "DeviceInformation", "Queries": ["OSVersion"]}' \
    >"$IT_DIR/cmd.json"
cat >"$IT_DIR/cmd.plist" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Command</key>
	<dict><key>RequestType</key><string>ProfileList</string></dict>
	<key>CommandUUID</key><string>0E5C3E4A-9A55-4C1B-8E0D-6A7F3B2C1D00</string>
</dict>
</plist>
EOF
before=$(db_digest)
api PUT /api/v1/enqueue/00008110-000D0E0F10111213 --data-binary "@$IT_DIR/cmd.json"
expect_status 400 "JSON sent with PUT: 400"
expect_jq "$(cat "$BODY")" .detail \
    "the body is JSON: POST takes the JSON form, PUT a command plist" \
    "JSON sent with PUT: says POST takes JSON"
api POST /api/v1/enqueue/00008110-000D0E0F10111213 --data-binary "@$IT_DIR/cmd.plist"
expect_status 400 "a plist sent with POST: 400"
expect_jq "$(cat "$BODY")" .detail \
    "the body is a plist: PUT takes a command plist, POST its JSON form" \
    "a plist sent with POST: says PUT takes plists"
expect_eq "$(db_digest)" "$before" "neither was queued"
api PUT /api/v1/enqueue/00008110-000D0E0F10111213 --data-binary "@$IT_DIR/cmd.plist"
expect_status 200 "the plist with PUT is queued"

# ---- a check-in sent to /mdm without the check-in content type ----
before=$(db_digest)
it_cert_array device1
put_raw /mdm "${IT_CERT_ARGS[@]}" -H "Content-Type: text/xml" \
    --data-binary "@$(token_plist 00008110-000D0E0F10111213 "$(openssl rand -base64 32)")"
expect_status 400 "a check-in to /mdm as text/xml: 400"
grep 'status=400' "$IT_DIR/fcgi.log" | tail -n 1 |
    grep -q 'this is a check-in (MessageType): send it with Content-Type: application/x-apple-aspen-mdm-checkin' &&
    pass "the refusal hints at the check-in content type" ||
    fail "the refusal hints at the check-in content type" \
    "$(grep 'status=400' "$IT_DIR/fcgi.log" | tail -n 1)"
expect_eq "$(db_digest)" "$before" "nothing written"

# ---- an nginx site without PICOMDM_CLIENT_VERIFY ----
stop_nginx "$IT_DIR/nginx"
render_nginx_conf "$PM_ROOT/nginx/picomdm.conf.in" \
    "$IT_DIR/nginx/nginx.conf.full" PREFIX="$IT_DIR/nginx" \
    PORT="$IT_PORT" ERROR_LOG_LEVEL=info \
    ACCESS_LOG="$IT_DIR/nginx/access.log" \
    SERVER_CERT="$IT_CERTS/server.pem" SERVER_KEY="$IT_CERTS/server.key" \
    DEVICE_CA="$IT_CERTS/ca.pem" SOCKET="$IT_SOCK"
grep -v 'fastcgi_param PICOMDM_CLIENT_VERIFY' "$IT_DIR/nginx/nginx.conf.full" \
    >"$IT_DIR/nginx/nginx.conf"
(start_nginx "$IT_DIR/nginx" "$IT_DIR/nginx/nginx.conf") ||
    it_abort "nginx did not start again on port $IT_PORT"
IT_PIDS+=("$(head -n 1 "$IT_DIR/nginx/nginx.pid")")
checkin "$(auth_plist 00008110-000D0E0F10111214 OPER00000002)" none
expect_status 400 "no certificate, site without PICOMDM_CLIENT_VERIFY: 400"
grep 'status=400' "$IT_DIR/fcgi.log" | tail -n 1 |
    grep -q 'nginx passes no PICOMDM_CLIENT_VERIFY parameter (see nginx/README.md)' &&
    pass "the log says nginx passes no PICOMDM_CLIENT_VERIFY" ||
    fail "the log says nginx passes no PICOMDM_CLIENT_VERIFY" \
    "$(grep 'status=400' "$IT_DIR/fcgi.log" | tail -n 1)"

it_done
