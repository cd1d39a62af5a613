# shellcheck shell=bash
#
# lib.sh - harness for the integration tests: a private nginx (real TLS,
# real device client certificates from scripts/mkcerts) in front of a
# private picomdm-fcgi with its own LMDB store, on free ports in a temp
# directory, and helpers that talk to it like a device.
#
# A test is an executable tests/integration/test-NAME.sh:
#
#	. "$(dirname "$0")/lib.sh"
#	it_start    # IT_RESPONDER_ARGS=(--allow-retro) first for extra options
#	checkin "$(auth_plist UDID SERIAL)" device1
#	expect_status 200 "Authenticate accepted"
#	expect_jq "$(ctl show UDID)" .device.serial_number SERIAL "serial"
#	it_done
#
# Every expect_* and pass/fail prints one line, "ok N - what" or
# "not ok N - what (detail)", and is tallied; it_done prints the totals
# and exits 1 if anything failed. When scripts/test runs the tests it sets
# PICOMDM_IT_TALLY to a file that gets one "pass" or "fail" line per case.
#
# Environment:
#	PICOMDM_BUILD       build directory (default: build/ in the checkout)
#	PICOMDM_IT_CERTS    certificate directory to share between tests
#	                    (made with scripts/mkcerts if missing)
#	PICOMDM_IT_RESPONDER=null   serve with tests/fcgi-null instead of
#	                    picomdm-fcgi (checks the harness itself)
#	PICOMDM_IT_KEEP=1   keep the temp directory even when all passed
#	PICOMDM_IT_FAILFAST=1  stop at the first failed case (scripts/mutate)
#
# Sanitizers: it_start points ASAN_OPTIONS and UBSAN_OPTIONS (appended to
# what the caller set) at $IT_DIR/san/, so every process the test starts
# with a sanitized build (responders, picomdmctl, loadgen, fcgi-null)
# writes its report there, and makes ASan exit 86, never a code a test
# expects; it_done fails the test when any report exists. expect_exit and
# ctlok also fail on a sanitizer exit. Checks of the harness itself use
# note (printed, not counted) or it_abort, never pass.
#	IT_NGINX_KEEPALIVE=N  (set by a test before it_start) nginx keeps up
#	                    to N idle FastCGI connections (it_nginx_keepalive)
#
# After a request: STATUS holds the HTTP status (000 when curl failed),
# BODY the file holding the response body, HEADERS the response headers.

IT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib.sh
. "$IT_LIB_DIR/../../scripts/lib.sh"

IT_NAME=$(basename "$0" .sh)
IT_PASS=0
IT_FAIL=0
IT_N=0
IT_DIR=
IT_PORT=
IT_CERTS=
IT_DB=
IT_SOCK=
IT_URL=
IT_RESPONDER=
IT_RESPONDER_CMD=()
IT_CERT_ARGS=()
IT_PIDS=()
IT_MAIN_PID=
[[ -n ${IT_RESPONDER_ARGS+x} ]] || IT_RESPONDER_ARGS=()
# More NAME=VALUE for render_nginx_conf (e.g. HTTP_PORT=...), set by a
# test before it_start or in its it_setup_hook.
[[ -n ${IT_NGINX_ARGS+x} ]] || IT_NGINX_ARGS=()
STATUS=
BODY=
HEADERS=

# The content types devices send (Apple: check-in; command reports).
IT_CHECKIN_TYPE=application/x-apple-aspen-mdm-checkin
IT_CONNECT_TYPE=application/x-apple-aspen-mdm

# A Topic such as a push certificate would have.
IT_TOPIC=com.apple.mgmt.External.1f3a5b7c-9d2e-4f60-8a1b-2c3d4e5f6a7b

it_tally() {
	[[ -z ${PICOMDM_IT_TALLY-} ]] || printf '%s\n' "$1" >>"$PICOMDM_IT_TALLY"
}

# pass WHAT / fail WHAT [DETAIL]: record one case.
pass() {
	IT_N=$((IT_N + 1))
	IT_PASS=$((IT_PASS + 1))
	it_tally pass
	printf 'ok %d - %s: %s\n' "$IT_N" "$IT_NAME" "$1"
}

fail() {
	IT_N=$((IT_N + 1))
	IT_FAIL=$((IT_FAIL + 1))
	it_tally fail
	# In a subshell ($(...)) the counter is lost: it_done reads this.
	if [[ -n $IT_DIR && -n $IT_MAIN_PID && $BASHPID != "$IT_MAIN_PID" ]]; then
		printf '%s\n' "$1" >>"$IT_DIR/subshell-failures"
	fi
	printf 'not ok %d - %s: %s%s\n' "$IT_N" "$IT_NAME" "$1" \
	    "${2:+ ($2)}"
	# scripts/mutate: the first failure is the verdict.
	[[ -z ${PICOMDM_IT_FAILFAST-} || -n ${IT_DONE-} ]] || it_done
}

# note WHAT: a line about the harness or the setup; not a case.
note() {
	printf '# %s: %s\n' "$IT_NAME" "$1"
}

# it_abort WHAT: record a failure and stop this test (logs are kept).
it_abort() {
	fail "$1" "${2-}"
	it_done
}

# it_workdir: the test's directory IT_DIR, removed when the test exits
# (kept if a case failed), and the sanitizer reports of every process
# started from here on collected in it; 1777: some tests run programs as
# nobody. it_start begins with it; a test with no server calls it alone.
it_workdir() {
	IT_MAIN_PID=$BASHPID
	IT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/picomdm-it.$IT_NAME.XXXXXX")
	trap it_cleanup EXIT
	mkdir -p "$IT_DIR/san" && chmod 1777 "$IT_DIR/san" && chmod 0711 "$IT_DIR"
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$IT_DIR/san/asan:exitcode=86"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$IT_DIR/san/ubsan"
}

# it_start: make certificates, a store directory, start picomdm-fcgi
# (with the extra arguments in the array IT_RESPONDER_ARGS) and nginx. Everything is
# stopped and removed when the test exits (kept if a case failed).
it_start() {
	local port

	it_workdir
	IT_CERTS=${PICOMDM_IT_CERTS:-$IT_DIR/certs}
	"$PM_ROOT/scripts/mkcerts" "$IT_CERTS" ||
	    it_abort "setup: scripts/mkcerts $IT_CERTS"
	# A test may add certificates and responder options here, before
	# anything starts (test-enroll.sh), and set IT_DEVICE_CA.
	if declare -F it_setup_hook >/dev/null; then it_setup_hook; fi
	IT_DB=$IT_DIR/db
	IT_SOCK=$IT_DIR/fcgi.sock
	mkdir -p "$IT_DB" "$IT_DIR/nginx"
	(umask 077 && openssl rand -hex 32 >"$IT_DIR/api.key")

	if [[ ${PICOMDM_IT_RESPONDER-} == null ]]; then
		IT_RESPONDER=fcgi-null
		IT_RESPONDER_CMD=("$PM_BUILD/tests/fcgi-null" --socket "$IT_SOCK"
		    --workers 2)
	else
		IT_RESPONDER=picomdm-fcgi
		IT_RESPONDER_CMD=("$PM_BUILD/picomdm-fcgi" --db "$IT_DB"
		    --socket "$IT_SOCK" --device-ca "${IT_DEVICE_CA:-$IT_CERTS/ca.pem}"
		    --api-key-file "$IT_DIR/api.key" --workers 2
		    --log-level debug "${IT_RESPONDER_ARGS[@]}")
	fi
	it_start_responder

	# nginx binds at start-up; retry if another test took the port.
	for _ in 1 2 3; do
		port=$(free_ports 1)
		render_nginx_conf "$PM_ROOT/nginx/picomdm.conf.in" \
		    "$IT_DIR/nginx/nginx.conf" PREFIX="$IT_DIR/nginx" \
		    PORT="$port" ERROR_LOG_LEVEL=info \
		    ACCESS_LOG="$IT_DIR/nginx/access.log" \
		    SERVER_CERT="$IT_CERTS/server.pem" \
		    SERVER_KEY="$IT_CERTS/server.key" \
		    DEVICE_CA="${IT_DEVICE_CA:-$IT_CERTS/ca.pem}" SOCKET="$IT_SOCK" \
		    "${IT_NGINX_ARGS[@]}"
		[[ -z ${IT_NGINX_KEEPALIVE-} ]] ||
		    it_nginx_keepalive "$IT_DIR/nginx/nginx.conf"
		if (start_nginx "$IT_DIR/nginx" "$IT_DIR/nginx/nginx.conf") \
		    2>>"$IT_DIR/nginx/start.log"; then
			IT_PORT=$port
			IT_PIDS+=("$(head -n 1 "$IT_DIR/nginx/nginx.pid")")
			break
		fi
	done
	[[ -n $IT_PORT ]] || it_abort "setup: nginx did not start" \
	    "$(tail -n 3 "$IT_DIR/nginx/start.log" | tr '\n' ' ')"
	IT_URL=https://localhost:$IT_PORT
}

# it_nginx_keepalive CONF: nginx_conf_keepalive (scripts/lib.sh) with
# IT_NGINX_KEEPALIVE idle connections per nginx worker.
it_nginx_keepalive() {
	nginx_conf_keepalive "$1" "$IT_NGINX_KEEPALIVE" ||
	    it_abort "setup: keepalive lines not added to $1"
}

# it_start_responder / it_stop_responder: start the responder again with
# the same command line (after it_stop_responder, or after a test killed
# it), or stop it (SIGTERM) and wait for it to exit.
it_start_responder() {
	local served i
	[[ -x ${IT_RESPONDER_CMD[0]} ]] ||
	    it_abort "setup: ${IT_RESPONDER_CMD[0]} not built"
	served=$(grep -c " serving " "$IT_DIR/fcgi.log" 2>/dev/null) || :
	start_responder "$IT_DIR/fcgi.pid" "$IT_DIR/fcgi.log" \
	    "${IT_RESPONDER_CMD[@]}"
	IT_PIDS+=("$(head -n 1 "$IT_DIR/fcgi.pid")")
	wait_for_socket "$IT_SOCK" 10 "$IT_DIR/fcgi.pid" ||
	    it_abort "setup: $IT_RESPONDER did not start" \
	    "$(tail -n 3 "$IT_DIR/fcgi.log" | tr '\n' ' ')"
	# The socket listens before the store opens (and an open may write:
	# counts, upgrades): picomdm-fcgi is started once it says it serves.
	[[ ${IT_RESPONDER_CMD[0]##*/} == picomdm-fcgi ]] || return 0
	for ((i = 0; i < 100; i++)); do
		(($(grep -c " serving " "$IT_DIR/fcgi.log") > ${served:-0})) &&
		    return 0
		sleep 0.1
	done
	it_abort "setup: $IT_RESPONDER did not say it serves" \
	    "$(tail -n 3 "$IT_DIR/fcgi.log" | tr '\n' ' ')"
}

it_stop_responder() {
	stop_responder "$IT_DIR/fcgi.pid" "$IT_RESPONDER"
}

# it_cleanup [STATUS]: the EXIT trap (a test that sets its own EXIT trap
# calls it from there). Stops nginx and the responder, also when their pid
# files are gone, and removes the temp directory unless something failed.
# Does nothing in a subshell: only the test's own shell tears down.
it_cleanup() {
	local rc=${1:-$?} pid
	set +e
	[[ -n $IT_DIR && $BASHPID == "$IT_MAIN_PID" ]] || return 0
	stop_nginx "$IT_DIR/nginx"
	stop_responder "$IT_DIR/fcgi.pid" "${IT_RESPONDER:-picomdm-fcgi}"
	# Started by this test and still there (pid file removed or
	# overwritten): stop by the pid noted at start, if it is still ours.
	for pid in "${IT_PIDS[@]}"; do
		if pm_pid_cmd_has "$pid" "$IT_DIR"; then
			kill -TERM "$pid" 2>/dev/null
			pm_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null
		fi
	done
	if ((IT_FAIL > 0 || rc != 0)) || [[ -n ${PICOMDM_IT_KEEP-} ]]; then
		echo "# $IT_NAME: kept $IT_DIR (responder log fcgi.log," \
		    "nginx logs in nginx/)"
		if ((IT_FAIL > 0 || rc != 0)); then
			echo "# last lines of fcgi.log:"
			tail -n 10 "$IT_DIR/fcgi.log" 2>/dev/null | sed 's/^/#   /'
		fi
	else
		rm -rf "$IT_DIR"
	fi
	return 0
}

# it_done: stop nginx and the responder, count a sanitizer report in the
# responder's log as a failure, print the totals; exit 0 when nothing
# failed.
it_done() {
	IT_DONE=1
	if [[ -n $IT_MAIN_PID && $BASHPID != "$IT_MAIN_PID" ]]; then
		# it_abort in a subshell: only that subshell ends.
		exit 1
	fi
	if [[ -n $IT_DIR && -f $IT_DIR/fcgi.pid ]]; then
		stop_nginx "$IT_DIR/nginx"
		it_stop_responder
		if grep -q -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' \
		    -e 'runtime error:' "$IT_DIR/fcgi.log" 2>/dev/null; then
			fail "$IT_RESPONDER: no sanitizer reports" \
			    "see $IT_DIR/fcgi.log"
		fi
	fi
	it_sanitizer_reports
	it_refusal_reasons
	if [[ -s $IT_DIR/subshell-failures ]]; then
		IT_FAIL=$((IT_FAIL + $(wc -l <"$IT_DIR/subshell-failures")))
	fi
	echo "# $IT_NAME: $IT_PASS passed, $IT_FAIL failed"
	((IT_FAIL == 0)) || exit 1
	exit 0
}

# it_sanitizer_reports: fail when any process wrote a sanitizer report
# into $IT_DIR/san (see the top of this file).
it_sanitizer_reports() {
	local -a reps=()
	[[ -n $IT_DIR && -d $IT_DIR/san ]] || return 0
	mapfile -t reps < <(find "$IT_DIR/san" -type f -size +0 | sort)
	if ((${#reps[@]} > 0)); then
		fail "no sanitizer reports from any process" \
		    "${#reps[@]} in $IT_DIR/san: $(head -c 300 "${reps[0]}" | tr '\n' ' ')"
	fi
}

# it_refusal_reasons: every refusal in the responder's log carries its
# reason (README: "Every refusal is logged with its reason").
it_refusal_reasons() {
	local n bad
	[[ $IT_RESPONDER == picomdm-fcgi && -f $IT_DIR/fcgi.log ]] || return 0
	n=$(grep -c -E ' status=[45][0-9][0-9] ' "$IT_DIR/fcgi.log" || true)
	((n > 0)) || return 0
	bad=$(grep -E ' status=[45][0-9][0-9] ' "$IT_DIR/fcgi.log" |
	    grep -v -E 'reason="[^"-][^"]*"' | head -n 1 || true)
	if [[ -z $bad ]]; then
		pass "every refusal in fcgi.log names its reason ($n refusals)"
	else
		fail "every refusal in fcgi.log names its reason" "$bad"
	fi
}

# it_sanitizer_exit RC ERRFILE: succeed when RC or ERRFILE shows a
# sanitizer report.
it_sanitizer_exit() {
	((${1} == 86)) && return 0
	grep -q -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' \
	    -e 'runtime error:' "$2" 2>/dev/null
}

# put_raw PATH [CURL_ARG...]: PUT to PATH on the test server. CURL_ARG
# adds headers (-H), a body (--data-binary @FILE), a client certificate
# (--cert/--key), a different method (-X GET)... Sets STATUS, BODY and
# HEADERS.
put_raw() {
	local path=$1
	shift
	BODY=$IT_DIR/last.body
	HEADERS=$IT_DIR/last.headers
	: >"$BODY"
	IT_LOG_MARK=$(stat -c %s "$IT_DIR/fcgi.log" 2>/dev/null || echo 0)
	STATUS=$(curl -sS -o "$BODY" -D "$HEADERS" -w '%{http_code}' \
	    --resolve "localhost:$IT_PORT:127.0.0.1" \
	    --cacert "$IT_CERTS/server-ca.pem" --max-time 30 \
	    -X PUT -A MDM/1.0 "$@" "$IT_URL$path" 2>"$IT_DIR/last.curl") ||
	    true
	[[ -n $STATUS ]] || STATUS=000
}

# it_cert_args NAME: print the curl arguments for device identity NAME
# (devices/NAME.pem), one a line, nothing for "none":
#	mapfile -t certargs < <(it_cert_args device1)
it_cert_args() {
	it_cert_array "$1"
	((${#IT_CERT_ARGS[@]} == 0)) || printf '%s\n' "${IT_CERT_ARGS[@]}"
}

# it_cert_array NAME: the same into the array IT_CERT_ARGS, without a
# subshell.
it_cert_array() {
	IT_CERT_ARGS=()
	if [[ $1 != none ]]; then
		IT_CERT_ARGS=(--cert "$IT_CERTS/devices/$1.pem"
		    --key "$IT_CERTS/devices/$1.key")
	fi
}

# checkin FILE [CERT] [CURL_ARG...]: PUT the plist FILE to /mdm/checkin
# as a device with identity CERT (default device1; "none" for no client
# certificate).
checkin() {
	local file=$1
	it_cert_array "${2:-device1}"
	shift $(($# >= 2 ? 2 : 1))
	put_raw /mdm/checkin "${IT_CERT_ARGS[@]}" \
	    -H "Content-Type: $IT_CHECKIN_TYPE" --data-binary "@$file" "$@"
}

# connect FILE [CERT] [CURL_ARG...]: PUT a command report to /mdm/connect.
connect() {
	local file=$1
	it_cert_array "${2:-device1}"
	shift $(($# >= 2 ? 2 : 1))
	put_raw /mdm/connect "${IT_CERT_ARGS[@]}" \
	    -H "Content-Type: $IT_CONNECT_TYPE" --data-binary "@$file" "$@"
}

# mdm_signature FILE CERT: print the Mdm-Signature header value a device
# with identity CERT sends for body FILE: base64 of a detached CMS
# SignedData over the exact bytes, signer certificate included.
mdm_signature() {
	openssl cms -sign -binary -in "$1" -outform DER \
	    -signer "$IT_CERTS/devices/$2.pem" -inkey "$IT_CERTS/devices/$2.key" |
	    base64 -w 0
}

# checkin_signed FILE CERT [CURL_ARG...]: a check-in without a TLS client
# certificate, identified by Mdm-Signature made with CERT.
checkin_signed() {
	local file=$1 cert=$2 sig
	shift 2
	sig=$(mdm_signature "$file" "$cert") || it_abort "openssl cms -sign"
	checkin "$file" none -H "Mdm-Signature: $sig" "$@"
}

# db_digest: a digest of everything in the test store (mdb_dump of every
# sub-database), to show that a refused request wrote nothing.
db_digest() {
	mdb_dump -a "$IT_DB" 2>&1 | sha256sum | cut -d ' ' -f 1
}

# ctl ARG...: picomdmctl on the test store.
ctl() {
	"$PM_BUILD/picomdmctl" --db "$IT_DB" "$@"
}

# ctlok ARG...: ctl whose output a check reads, e.g.
# expect_jq "$(ctlok show UDID)" ...: a non-zero exit is a failed case of
# its own (inside $(...) the status would otherwise be lost), with its
# stderr; the output is printed either way.
ctlok() {
	local rc=0 err
	err=$IT_DIR/ctlok.$BASHPID.err
	"$PM_BUILD/picomdmctl" --db "$IT_DB" "$@" 2>"$err" || rc=$?
	if ((rc != 0)); then
		fail "picomdmctl $* succeeds" "exit $rc: $(head -c 200 "$err")"
	fi
	cat "$err" >&2
	rm -f "$err"
	return 0
}

# it_mock_started NAME: a local mock (an Apple service) started in the
# background as MOCK_PID with --port-file $IT_DIR/mock.port and its
# stderr in $IT_DIR/mock.stderr: kept for the cleanup, waited for (at
# most 20 s), its port in MOCK_PORT; the test stops if it did not start.
it_mock_started() {
	local i
	disown "$MOCK_PID"
	IT_PIDS+=("$MOCK_PID")
	for ((i = 0; i < 400; i++)); do
		[[ -s $IT_DIR/mock.port ]] && break
		kill -0 "$MOCK_PID" 2>/dev/null || break
		sleep 0.05
	done
	[[ -s $IT_DIR/mock.port ]] || it_abort "setup: $1 did not start" \
	    "$(tail -n 3 "$IT_DIR/mock.stderr" | tr '\n' ' ')"
	read -r MOCK_PORT <"$IT_DIR/mock.port"
}

# it_mock_stop: stop MOCK_PID if it is still this test's mock.
it_mock_stop() {
	if [[ -n $MOCK_PID ]] && pm_pid_cmd_has "$MOCK_PID" "$IT_DIR"; then
		kill -TERM "$MOCK_PID" 2>/dev/null || true
		pm_wait_gone "$MOCK_PID" 10 || kill -KILL "$MOCK_PID" 2>/dev/null
	fi
	MOCK_PID=
}

# expect_status CODE WHAT: the last request got HTTP status CODE.
expect_status() {
	if [[ $STATUS == "$1" ]]; then
		pass "$2"
	else
		fail "$2" "status $STATUS, want $1$(it_body_hint)"
	fi
}

it_body_hint() {
	local b
	[[ -s $BODY ]] || return 0
	b=$(head -c 120 "$BODY" | tr -c '[:print:]' ' ')
	printf '; body: %s' "$b"
}

# expect_logged CODE REASON WHAT: the responder logged the last request
# as refused with status CODE and exactly this reason (every refusal is
# logged with its reason; the line may follow the reply by a moment).
IT_LOG_MARK=0
expect_logged() {
	local want="status=$1 " reason="reason=\"$2\"" i lines
	for ((i = 0; i < 40; i++)); do
		lines=$(tail -c +"$((IT_LOG_MARK + 1))" "$IT_DIR/fcgi.log" |
		    grep -F -- "$want" || true)
		if [[ $lines == *"$reason"* ]]; then
			pass "$3"
			return 0
		fi
		sleep 0.05
	done
	fail "$3" "no '$want... $reason' in fcgi.log; got: $(tail -c +"$((IT_LOG_MARK + 1))" "$IT_DIR/fcgi.log" |
	    grep -F 'status=' | head -c 300)"
}

# expect_eq GOT WANT WHAT
expect_eq() {
	if [[ $1 == "$2" ]]; then
		pass "$3"
	else
		fail "$3" "got '$1', want '$2'"
	fi
}

# expect_jq JSON FILTER WANT WHAT: jq -r FILTER on JSON prints WANT.
expect_jq() {
	local got
	got=$(jq -r "$2" <<<"$1" 2>&1) || got="(jq: $got)"
	expect_eq "$got" "$3" "$4"
}

# expect_exit CODE WHAT CMD...: CMD exits with status CODE and no
# sanitizer report; on a mismatch its stderr is shown. EXIT_OUT and
# EXIT_ERR name files holding its stdout and stderr afterwards.
EXIT_OUT=
EXIT_ERR=
expect_exit() {
	local want=$1 what=$2 rc=0
	shift 2
	EXIT_OUT=$IT_DIR/exit.out
	EXIT_ERR=$IT_DIR/exit.err
	"$@" >"$EXIT_OUT" 2>"$EXIT_ERR" || rc=$?
	if it_sanitizer_exit "$rc" "$EXIT_ERR"; then
		fail "$what" "sanitizer report (exit $rc): $(head -c 300 "$EXIT_ERR")"
	elif [[ $rc == "$want" ]]; then
		pass "$what"
	else
		fail "$what" "exit $rc, want $want: $(head -c 300 "$EXIT_ERR" | tr '\n' ' ')"
	fi
}

# sha256_b64 BASE64: hex SHA-256 of the decoded bytes.
sha256_b64() {
	base64 -d <<<"$1" | sha256sum | cut -d ' ' -f 1
}

# it_file NAME: a path for a request body in the test directory.
it_file() {
	printf '%s/%s\n' "$IT_DIR" "$1"
}

# auth_plist UDID SERIAL [KEY=VALUE...]: write an Authenticate message
# for a device and print its path.
auth_plist() {
	local f
	f=$IT_DIR/auth-$1-$RANDOM.plist
	plist_write "$f" BuildVersion=21F90 DeviceName="Test iPhone" \
	    MessageType=Authenticate Model=MLPF3LL/A ModelName=iPhone \
	    OSVersion=17.5.1 ProductName=iPhone14,5 SerialNumber="$2" \
	    Topic="$IT_TOPIC" UDID="$1" "${@:3}"
	printf '%s\n' "$f"
}

# token_plist UDID TOKEN_B64 [KEY=VALUE...]: a TokenUpdate; prints its path.
token_plist() {
	local f
	f=$IT_DIR/token-$1-$RANDOM.plist
	plist_write "$f" AwaitingConfiguration:bool=false \
	    MessageType=TokenUpdate \
	    PushMagic=8B0E2D3C-7A61-4F59-9E1C-4D2B6A8F0C13 \
	    Token:data="$2" Topic="$IT_TOPIC" UDID="$1" "${@:3}"
	printf '%s\n' "$f"
}

# checkout_plist UDID: a CheckOut; prints its path.
checkout_plist() {
	local f
	f=$IT_DIR/checkout-$1-$RANDOM.plist
	plist_write "$f" MessageType=CheckOut Topic="$IT_TOPIC" UDID="$1"
	printf '%s\n' "$f"
}
