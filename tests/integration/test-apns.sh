#!/usr/bin/env bash
#
# test-apns.sh - the APNs push client (module/apns.c, through
# tests/apns-push) against the local APNs, tests/mock-apns.py (HTTP/2 over
# TLS, client certificates from a push CA this test makes):
#
#   - the mock checks what APNs checks: no client certificate, a wrong
#     method, topic, push type, priority, expiration or body are each
#     refused with APNs' status and reason (plain curl requests);
#   - a pushed device gets exactly the right request: path with the token
#     in lowercase hex, apns-push-type mdm, apns-topic = the certificate's
#     UID, apns-priority 10, apns-expiration now + 7 days (or as set),
#     content-type, body exactly {"mdm":"<PushMagic>"}; its apns-id is
#     recorded; a PKCS#12 certificate works the same;
#   - every error class gets its classification: token invalid (400
#     BadDeviceToken / DeviceTokenNotForTopic, 410 Unregistered with its
#     timestamp), topic stopped (403 certificates, 400 BadTopic when the
#     topic is not the certificate's), retry (429, 5xx, GOAWAY, a reset
#     stream, a dropped connection, nobody listening, no answer in
#     time), rejected (other 400s); a TLS handshake APNs refuses because
#     of our certificate stops the topic too; a retried push is delivered after the backoff; retries stop
#     at the limit;
#   - 10,000 pushes complete over one connection (the mock counts them),
#     hundreds of streams at once;
#     with a GOAWAY every 1,000 requests all 3,000 pushes still arrive,
#     each once, over a handful of connections;
#   - push certificates that cannot push are refused before any request;
#   - h2load, which cannot send a client certificate, gets 200s from the
#     mock with --anonymous-topic (the ceiling scripts/bench will need);
#   - the webhook receiver (tests/mock-webhook.py) records what it gets
#     and answers as scripted.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

PUSH=$PM_BUILD/tests/apns-push
PY=/usr/bin/python3
TOPIC=com.apple.mgmt.External.4b1d9e2a-7c3f-4a5e-9b8d-0e1f2a3b4c5d
TOPIC2=com.apple.mgmt.External.second-tenant

IT_MAIN_PID=$BASHPID
IT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/picomdm-it.$IT_NAME.XXXXXX")
trap it_cleanup EXIT
C=$IT_DIR/certs
MOCK_PORT=
MOCK_ARGS=()
MOCK_LOG=
MOCK_PID=

[[ -x $PUSH ]] || it_abort "setup: $PUSH not built"
$PY -c 'import h2' 2>/dev/null || it_abort "setup: python3-h2 missing"

# tok N: device token number N, 32 bytes of hex.
tok() {
	printf '%064x' "$1"
}

# ossl ARGS...: openssl, quiet unless it fails.
ossl() {
	openssl "$@" 2>>"$IT_DIR/openssl.log" ||
	    it_abort "setup: openssl $1" "$(tail -n 2 "$IT_DIR/openssl.log")"
}

# A server CA and the mock's certificate (what --apns-ca trusts), a push
# CA (Apple's, for the mock), push certificates for two topics, one with
# a topic APNs would never issue, one from an unknown CA, and a PKCS#12.
make_certs() {
	mkdir -p "$C"
	ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$C/sca.key" -out "$C/sca.pem" -days 30 \
	    -subj "/CN=picomdm test APNs server CA"
	ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$C/server.key" -out "$C/server.csr" -subj "/CN=localhost"
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$C/san.ext"
	ossl x509 -req -in "$C/server.csr" -CA "$C/sca.pem" \
	    -CAkey "$C/sca.key" -CAcreateserial -out "$C/server.pem" \
	    -days 30 -extfile "$C/san.ext"
	ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$C/pca.key" -out "$C/pca.pem" -days 30 \
	    -subj "/CN=picomdm test push CA"
	# push NAME UID DAYS [CA]: a push certificate (RSA, as Apple's).
	pushcert() {
		local ca=${4:-pca}
		ossl req -newkey rsa:2048 -nodes -keyout "$C/$1.key" \
		    -out "$C/$1.csr" -subj "/UID=$2/CN=APSP:$1/C=US"
		ossl x509 -req -in "$C/$1.csr" -CA "$C/$ca.pem" \
		    -CAkey "$C/$ca.key" -CAcreateserial -out "$C/$1.pem" \
		    -days "$3"
	}
	pushcert push "$TOPIC" 365
	pushcert push2 "$TOPIC2" 10
	pushcert notmdm com.example.not-mdm 365
	ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$C/xca.key" -out "$C/xca.pem" -days 30 -subj "/CN=other CA"
	pushcert stranger "$TOPIC" 365 xca
	printf 'p12 pass\n' >"$C/p12.pw"
	ossl pkcs12 -export -in "$C/push.pem" -inkey "$C/push.key" \
	    -out "$C/push.p12" -passout "file:$C/p12.pw"
}

# start_mock NAME [SCRIPT-JSON]: a fresh mock APNs logging to NAME.log.
start_mock() {
	stop_mock
	MOCK_LOG=$IT_DIR/$1.log
	: >"$MOCK_LOG"
	rm -f "$IT_DIR/mock.port"
	local sargs=()
	if [[ -n ${2-} ]]; then
		printf '%s\n' "$2" >"$IT_DIR/$1.script.json"
		sargs=(--script "$IT_DIR/$1.script.json")
	fi
	setsid "$PY" "$PM_ROOT/tests/mock-apns.py" --cert "$C/server.pem" \
	    --key "$C/server.key" --client-ca "$C/pca.pem" \
	    --port-file "$IT_DIR/mock.port" --log "$MOCK_LOG" \
	    "${sargs[@]}" "${MOCK_ARGS[@]}" </dev/null \
	    >>"$IT_DIR/mock.stderr" 2>&1 &
	MOCK_PID=$!
	it_mock_started mock-apns
}

stop_mock() { it_mock_stop; }

# push [ARG...]: tests/apns-push against the mock with the push
# certificate (unless ARGs name another); stdout in OUT, the summary in
# SUMMARY, the exit status in RC.
OUT=$IT_DIR/push.out
SUMMARY=
RC=
push() {
	local certs=(--cert "$C/push.pem" --key "$C/push.key")
	[[ " $* " != *" --cert "* && " $* " != *" --p12 "* ]] || certs=()
	RC=0
	"$PUSH" --url "https://127.0.0.1:$MOCK_PORT" --ca "$C/sca.pem" \
	    "${certs[@]}" "$@" >"$OUT" 2>"$IT_DIR/push.err" || RC=$?
	SUMMARY=$(tail -n 1 "$IT_DIR/push.err")
	cat "$IT_DIR/push.err" >>"$IT_DIR/push.all.err"
}

# field TOKEN N: field N of the output line for TOKEN (1 token, 2
# result, 3 status, 4 reason, 5 apns-id, 6 timestamp, 7 attempts).
field() {
	awk -v t="$1" -v n="$2" '$1 == t { print $n }' "$OUT"
}

# summary KEY: a number from the summary line ("delivered", ...).
summary() {
	awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' \
	    <<<"$SUMMARY"
}

# requests [JQ-FILTER]: the request records of the mock's log.
requests() {
	jq -c "select(.event == \"request\")${1:+ | $1}" "$MOCK_LOG"
}

make_certs
start_mock basic

# --- The mock checks what APNs checks (plain curl, HTTP/2). ---
# mcurl EXPECT-STATUS EXPECT-REASON WHAT [CURL-ARG...]
mcurl() {
	local want=$1 reason=$2 what=$3 got body
	shift 3
	body=$IT_DIR/mcurl.body
	got=$(curl -s --http2 --cacert "$C/sca.pem" -o "$body" \
	    -w '%{http_code}' "$@") || got="curl failed"
	if [[ $got == "$want" ]] &&
	    [[ $(jq -r '.reason // ""' "$body" 2>/dev/null) == "$reason" ]]; then
		pass "mock: $what"
	else
		fail "mock: $what" "got $got $(head -c 100 "$body")"
	fi
}
U=https://127.0.0.1:$MOCK_PORT/3/device/$(tok 1)
H=(-H "apns-push-type: mdm" -H "apns-topic: $TOPIC" -H "apns-priority: 10"
    -H "apns-expiration: 0" -H "content-type: application/json")
CC=(--cert "$C/push.pem" --key "$C/push.key")
mcurl 200 "" "a correct push is accepted" "${CC[@]}" "${H[@]}" \
    --data-binary '{"mdm":"m"}' "$U"
mcurl 403 BadCertificate "no client certificate" "${H[@]}" \
    --data-binary '{"mdm":"m"}' "$U"
mcurl 403 BadCertificateEnvironment "a certificate not for MDM" \
    --cert "$C/notmdm.pem" --key "$C/notmdm.key" "${H[@]}" \
    --data-binary '{"mdm":"m"}' "$U"
mcurl 405 MethodNotAllowed "GET" "${CC[@]}" "${H[@]}" -X GET "$U"
mcurl 400 BadDeviceToken "a token that is not hex" "${CC[@]}" "${H[@]}" \
    --data-binary '{"mdm":"m"}' "${U%/*}/xyz$(tok 1 | cut -c 4-)"
mcurl 400 MissingTopic "no apns-topic" "${CC[@]}" -H "apns-push-type: mdm" \
    -H "apns-priority: 10" -H "apns-expiration: 0" \
    -H "content-type: application/json" --data-binary '{"mdm":"m"}' "$U"
mcurl 400 BadTopic "another topic than the certificate's" "${CC[@]}" \
    -H "apns-topic: $TOPIC2" -H "apns-push-type: mdm" -H "apns-priority: 10" \
    -H "apns-expiration: 0" -H "content-type: application/json" \
    --data-binary '{"mdm":"m"}' "$U"
mcurl 400 MockWrongPushType "push type alert" "${CC[@]}" \
    -H "apns-push-type: alert" -H "apns-topic: $TOPIC" -H "apns-priority: 10" \
    -H "apns-expiration: 0" -H "content-type: application/json" \
    --data-binary '{"mdm":"m"}' "$U"
mcurl 400 BadPriority "priority 7" "${CC[@]}" -H "apns-push-type: mdm" \
    -H "apns-topic: $TOPIC" -H "apns-priority: 7" -H "apns-expiration: 0" \
    -H "content-type: application/json" --data-binary '{"mdm":"m"}' "$U"
mcurl 400 BadExpirationDate "no expiration" "${CC[@]}" \
    -H "apns-push-type: mdm" -H "apns-topic: $TOPIC" -H "apns-priority: 10" \
    -H "content-type: application/json" --data-binary '{"mdm":"m"}' "$U"
mcurl 400 MockBadPayload "an aps key in the body" "${CC[@]}" "${H[@]}" \
    --data-binary '{"mdm":"m","aps":{}}' "$U"
mcurl 400 MockBadPayload "a body with spaces" "${CC[@]}" "${H[@]}" \
    --data-binary '{"mdm": "m"}' "$U"
mcurl 400 PayloadEmpty "an empty body" "${CC[@]}" "${H[@]}" -X POST "$U"

# --- One push: exactly the right request. ---
: >"$MOCK_LOG"
T1=$(tok 0xabcdef | tr a-f A-F)
t_before=$(date +%s)
push "$T1:8A2E1C4D-0B3F-4E5A-9C6D-7E8F90A1B2C3"
t_after=$(date +%s)
expect_eq "$RC" 0 "push: apns-push exits 0"
expect_eq "$(field "$T1" 2)" delivered "push: delivered"
expect_eq "$(field "$T1" 3)" 200 "push: status 200"
expect_eq "$(requests | wc -l)" 1 "push: the mock got one request"
R=$(requests)
expect_jq "$R" .method POST "push: POST"
expect_jq "$R" .path "/3/device/$(tok 0xabcdef)" \
    "push: path /3/device/<lowercase hex token>"
expect_jq "$R" .body '{"mdm":"8A2E1C4D-0B3F-4E5A-9C6D-7E8F90A1B2C3"}' \
    "push: body exactly {\"mdm\":\"<PushMagic>\"}"
expect_jq "$R" .uid "$TOPIC" "push: TLS client certificate with the topic"
hdr() {
	jq -r --arg h "$1" '[.headers[] | select(.[0] == $h) | .[1]] |
	    if length == 1 then .[0] else "count \(length)" end' <<<"$R"
}
expect_eq "$(hdr apns-push-type)" mdm "push: apns-push-type: mdm"
expect_eq "$(hdr apns-topic)" "$TOPIC" "push: apns-topic is the UID"
expect_eq "$(hdr apns-priority)" 10 "push: apns-priority: 10"
expect_eq "$(hdr content-type)" application/json "push: content-type"
exp=$(hdr apns-expiration)
if [[ $exp =~ ^[0-9]+$ ]] && ((exp >= t_before + 604800 &&
    exp <= t_after + 604800)); then
	pass "push: apns-expiration is now + 7 days"
else
	fail "push: apns-expiration is now + 7 days" "got $exp at $t_before"
fi
expect_eq "$(field "$T1" 5)" "$(jq -r .apns_id <<<"$R")" \
    "push: the apns-id answered is recorded"
want=apns-expiration,apns-priority,apns-push-type,apns-topic
want+=,content-length,content-type
expect_eq "$(jq -r '.headers | map(.[0]) | sort | join(",")' <<<"$R")" \
    "$want" "push: no other header"

: >"$MOCK_LOG"
push --expiration 3600 "$(tok 2):m"
R=$(requests)
exp=$(hdr apns-expiration)
now=$(date +%s)
if ((exp >= now + 3600 - 5 && exp <= now + 3600)); then
	pass "push: --expiration 3600 is now + 1 hour"
else
	fail "push: --expiration 3600 is now + 1 hour" "got $exp at $now"
fi
: >"$MOCK_LOG"
push --expiration 0 "$(tok 2):m"
R=$(requests)
expect_eq "$(hdr apns-expiration)" 0 "push: --expiration 0 sends 0"

# PKCS#12, and the second tenant's certificate: its own topic.
: >"$MOCK_LOG"
push --p12 "$C/push.p12" --password-file "$C/p12.pw" "$(tok 3):p12"
expect_eq "$(field "$(tok 3)" 2)" delivered "p12: delivered"
expect_eq "$(requests .uid)" "\"$TOPIC\"" "p12: the certificate's topic"
: >"$MOCK_LOG"
push --cert "$C/push2.pem" --key "$C/push2.key" "$(tok 4):t2"
expect_eq "$(field "$(tok 4)" 2)" delivered "second topic: delivered"
R=$(requests)
expect_eq "$(hdr apns-topic)" "$TOPIC2" "second topic: apns-topic"

# --- Each error class and its classification. ---
script=$(jq -cn --arg a "$(tok 10)" --arg b "$(tok 11)" --arg c "$(tok 12)" \
    --arg d "$(tok 13)" --arg e "$(tok 14)" --arg f "$(tok 15)" \
    --arg g "$(tok 16)" --arg h "$(tok 17)" --arg i "$(tok 18)" \
    --arg j "$(tok 19)" --arg k "$(tok 20)" --arg l "$(tok 21)" '{tokens: {
	($a): [{status: 400, reason: "BadDeviceToken"}],
	($b): [{status: 400, reason: "DeviceTokenNotForTopic"}],
	($c): [{status: 410, reason: "Unregistered"}],
	($d): [{status: 403, reason: "BadCertificate"}],
	($e): [{status: 403, reason: "Forbidden"}],
	($f): [{status: 400, reason: "TopicDisallowed"}],
	($g): [{status: 429, reason: "TooManyRequests"}],
	($h): [{status: 500, reason: "InternalServerError"}],
	($i): [{status: 503, reason: "ServiceUnavailable"}],
	($j): [{reset: true}],
	($k): [{status: 400, reason: "BadExpirationDate"}],
	($l): [{status: 413, reason: "PayloadTooLarge"}]}}')
start_mock errors "$script"
list=()
for n in 10 11 12 13 14 15 16 17 18 19 20 21 22; do
	list+=("$(tok "$n"):magic-$n")
done
t0=$(($(date +%s) * 1000))
push "${list[@]}"
expect_eq "$RC" 0 "errors: apns-push exits 0"
# classify N RESULT STATUS REASON
classify() {
	local got
	local t
	t=$(tok "$1")
	got="$(field "$t" 2) $(field "$t" 3) $(field "$t" 4)"
	expect_eq "$got" "$2 $3 $4" "errors: $3 ${4//_/ } is $2"
}
classify 10 token-invalid 400 BadDeviceToken
classify 11 token-invalid 400 DeviceTokenNotForTopic
classify 12 token-invalid 410 Unregistered
classify 13 topic-stopped 403 BadCertificate
classify 14 topic-stopped 403 Forbidden
classify 15 topic-stopped 400 TopicDisallowed
classify 16 retry 429 TooManyRequests
classify 17 retry 500 InternalServerError
classify 18 retry 503 ServiceUnavailable
classify 20 rejected 400 BadExpirationDate
classify 21 rejected 413 PayloadTooLarge
expect_eq "$(field "$(tok 19)" 2) $(field "$(tok 19)" 3)" "retry 0" \
    "errors: a reset stream is retry"
expect_eq "$(field "$(tok 22)" 2)" delivered \
    "errors: the unscripted push of the same batch is delivered"
ts=$(field "$(tok 12)" 6)
if [[ $ts =~ ^[0-9]+$ ]] && ((ts >= t0 - 1000 && ts <= t0 + 60000)); then
	pass "errors: 410's timestamp is recorded"
else
	fail "errors: 410's timestamp is recorded" "got $ts"
fi
expect_eq "$(summary connections)" 1 "errors: one connection for the batch"

# The topic is checked by the mock against the certificate: BadTopic.
push --topic "$TOPIC2" "$(tok 30):m"
expect_eq "$(field "$(tok 30)" 2) $(field "$(tok 30)" 4)" \
    "topic-stopped BadTopic" "errors: a topic not the certificate's stops it"

# Retry: answered after a 503 and a 429; and the limit.
script=$(jq -cn --arg a "$(tok 40)" --arg b "$(tok 41)" --arg c "$(tok 42)" \
    --arg d "$(tok 43)" '{tokens: {
	($a): [{status: 503, reason: "ServiceUnavailable"},
	    {status: 429, reason: "TooManyRequests"}, {status: 200}],
	($b): [{status: 500, reason: "InternalServerError"}],
	($c): [{goaway: true}, {status: 200}],
	($d): [{drop: true}, {status: 200}]}}')
start_mock retry "$script"
push --retries 3 --backoff-ms 50 "$(tok 40):m"
expect_eq "$(field "$(tok 40)" 2) $(field "$(tok 40)" 7)" "delivered 3" \
    "retry: 503, 429, then delivered at the third attempt"
expect_eq "$(requests "select(.path | endswith(\"$(tok 40)\")) | .status" |
    tr '\n' ' ')" "503 429 200 " "retry: the mock saw 503, 429, 200"
started=$SECONDS
push --retries 2 --backoff-ms 300 "$(tok 41):m"
expect_eq "$(field "$(tok 41)" 2) $(field "$(tok 41)" 7)" "retry 3" \
    "retry: gives up after the limit (3 attempts)"
# Two backoffs of at least 150 and 300 ms.
if ((SECONDS - started < 30)); then
	pass "retry: the limit is reached in bounded time"
else
	fail "retry: the limit is reached in bounded time" "$((SECONDS - started)) s"
fi
push "$(tok 42):m"
expect_eq "$(field "$(tok 42)" 2) $(field "$(tok 42)" 3)" "retry 0" \
    "retry: GOAWAY before the answer is retry"
push "$(tok 43):m"
expect_eq "$(field "$(tok 43)" 2) $(field "$(tok 43)" 3)" "retry 0" \
    "retry: a dropped connection is retry"
push --retries 1 --backoff-ms 10 "$(tok 42):m" "$(tok 43):m"
expect_eq "$(summary delivered)" 2 "retry: both delivered on a new connection"

# A push APNs does not answer in time; the connection stays usable.
start_mock timeout "$(jq -cn --arg a "$(tok 47)" \
    '{tokens: {($a): [{delay_ms: 2000, status: 200}]}}')"
push --timeout-ms 300 "$(tok 47):m" "$(tok 48):m"
expect_eq "$(field "$(tok 47)" 2) $(field "$(tok 47)" 3)" "retry 0" \
    "retry: no answer within the timeout is retry"
expect_eq "$(field "$(tok 47)" 4 | grep -c -i -e timeout -e timed_out)" 1 \
    "retry: ... saying it timed out"

stop_mock
push "$(tok 44):m"
expect_eq "$(field "$(tok 44)" 2) $(field "$(tok 44)" 3)" "retry 0" \
    "retry: nobody listening is retry"

# The server's certificate is checked: without --ca it is not trusted.
start_mock trust
RC=0
"$PUSH" --url "https://127.0.0.1:$MOCK_PORT" --cert "$C/push.pem" \
    --key "$C/push.key" "$(tok 45):m" >"$OUT" 2>/dev/null || RC=$?
expect_eq "$(field "$(tok 45)" 2) $(requests | wc -l)" "retry 0" \
    "trust: an untrusted APNs server gets nothing"
# A push certificate the mock does not know: no request gets through.
push --cert "$C/stranger.pem" --key "$C/stranger.key" "$(tok 46):m"
expect_eq "$(field "$(tok 46)" 2) $(requests | wc -l)" "retry 0" \
    "trust: a certificate the server refuses sends nothing"
# A server that refuses it with a TLS alert about our certificate (the
# mock's Python TLS just closes): that stops the topic, like APNs' 403.
stop_mock
# It prints ACCEPT once it listens; another port if it could not bind.
for _ in 1 2 3; do
	read -r MOCK_PORT < <(free_ports 1)
	: >"$IT_DIR/s_server.log"
	setsid openssl s_server -accept "127.0.0.1:$MOCK_PORT" \
	    -cert "$C/server.pem" -key "$C/server.key" -CAfile "$C/pca.pem" \
	    -Verify 1 -verify_return_error -alpn h2 -www </dev/null \
	    >>"$IT_DIR/s_server.log" 2>&1 &
	spid=$!
	IT_PIDS+=("$spid")
	disown "$spid"
	for ((i = 0; i < 200; i++)); do
		grep -q '^ACCEPT' "$IT_DIR/s_server.log" && break 2
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.05
	done
done
grep -q '^ACCEPT' "$IT_DIR/s_server.log" ||
    it_abort "setup: openssl s_server did not start"
push --cert "$C/stranger.pem" --key "$C/stranger.key" "$(tok 46):m"
expect_eq "$(field "$(tok 46)" 2) $(field "$(tok 46)" 4)" \
    "topic-stopped TLS_alert:_unknown_ca" \
    "trust: a TLS alert about our certificate stops the topic"

# --- Push certificates that cannot push: refused before any request. ---
push --cert "$C/notmdm.pem" --key "$C/notmdm.key" "$(tok 50):m"
expect_eq "$RC" 1 "pushcert: a non-MDM topic is refused"
expect_eq "$(grep -c 'does not start with com.apple.mgmt.' \
    "$IT_DIR/push.err")" 1 "pushcert: ... saying why"
push --cert "$C/push.pem" --key "$C/push2.key" "$(tok 50):m"
expect_eq "$RC $(grep -c 'does not match' "$IT_DIR/push.err")" "1 1" \
    "pushcert: a key of another certificate is refused"
printf 'wrong\n' >"$IT_DIR/wrong.pw"
push --p12 "$C/push.p12" --password-file "$IT_DIR/wrong.pw" "$(tok 50):m"
expect_eq "$RC $(grep -c 'wrong PKCS#12 password' "$IT_DIR/push.err")" \
    "1 1" "pushcert: a wrong PKCS#12 password is refused"
expect_eq "$(requests | wc -l)" 0 "pushcert: the mock got no request"
expect_eq "$("$PUSH" --check --cert "$C/push2.pem" --key "$C/push2.key" |
    awk '$1 == "topic" || $1 == "state" { printf "%s ", $2 }')" \
    "$TOPIC2 expiring " \
    "pushcert: a certificate 10 days from its end is expiring"
expect_eq "$("$PUSH" --check --p12 "$C/push.p12" --password-file "$C/p12.pw" |
    awk '$1 == "state" { print $2 }')" valid "pushcert: a year left is valid"
push "$(tok 51)"
expect_eq "$RC" 2 "usage: a push without :MAGIC is a usage error"

# --- 10,000 pushes over one connection. ---
start_mock many
for ((i = 1; i <= 10000; i++)); do
	printf '%064x:magic-%d\n' $((0x100000 + i)) "$i"
done >"$IT_DIR/many.list"
started=$SECONDS
push --file "$IT_DIR/many.list"
secs=$((SECONDS - started))
expect_eq "$(summary delivered)" 10000 "10,000 pushes: all delivered"
expect_eq "$(awk '$2 == "delivered" && $7 == 1' "$OUT" | wc -l)" 10000 \
    "10,000 pushes: each at the first attempt"
expect_eq "$(requests .path | sort -u | wc -l)" 10000 \
    "10,000 pushes: the mock saw 10,000 distinct tokens"
expect_eq "$(jq -c 'select(.event == "connection")' "$MOCK_LOG" | wc -l)" 1 \
    "10,000 pushes: over one TLS connection (counted by the mock)"
expect_eq "$(summary connections)" 1 "10,000 pushes: the client counts one"
open=$(requests .open | sort -n | tail -n 1)
if ((open >= 20)); then
	pass "10,000 pushes: multiplexed ($open streams open at once)"
else
	fail "10,000 pushes: multiplexed" "at most $open streams open at once"
fi
echo "# 10,000 pushes in ${secs}s"

# APNs allows only 8 streams at once: still one connection, never more
# than 8 streams open.
start_mock streams '{"max_streams": 8}'
head -n 1000 "$IT_DIR/many.list" >"$IT_DIR/1k.list"
push --file "$IT_DIR/1k.list"
expect_eq "$(summary delivered)" 1000 "8 streams: 1,000 pushes delivered"
expect_eq "$(jq -c 'select(.event == "connection")' "$MOCK_LOG" | wc -l)" 1 \
    "8 streams: over one connection"
open=$(requests .open_limited | sort -n | tail -n 1)
if ((open >= 2 && open <= 8)); then
	pass "8 streams: the server's limit is kept ($open at once)"
else
	fail "8 streams: the server's limit is kept" "$open at once"
fi

# A GOAWAY every 1,000 requests: each push arrives once, on a few
# connections (curl resends the streams APNs did not process).
start_mock goaway '{"goaway_after": 1000}'
head -n 3000 "$IT_DIR/many.list" >"$IT_DIR/3k.list"
push --retries 3 --backoff-ms 10 --file "$IT_DIR/3k.list"
expect_eq "$(summary delivered)" 3000 "GOAWAY: all 3,000 delivered"
expect_eq "$(awk '$7 != 1' "$OUT" | wc -l)" 0 \
    "GOAWAY: libcurl resent the unprocessed streams itself (one attempt each)"
expect_eq "$(requests 'select(.status == 200) | .path' | sort | uniq -d |
    wc -l)" 0 "GOAWAY: no push answered twice"
nconn=$(jq -c 'select(.event == "connection")' "$MOCK_LOG" | wc -l)
if ((nconn >= 3 && nconn <= 6)); then
	pass "GOAWAY: a handful of connections ($nconn)"
else
	fail "GOAWAY: a handful of connections" "$nconn"
fi

# The mock's own ceiling is measured with h2load (no client certificate:
# --anonymous-topic stands in for it), as scripts/bench will.
if command -v h2load >/dev/null; then
	MOCK_ARGS=(--anonymous-topic "$TOPIC")
	start_mock h2load
	MOCK_ARGS=()
	printf '{"mdm":"m"}' >"$IT_DIR/h2load.body"
	h2load -n 1000 -c 1 -m 100 -d "$IT_DIR/h2load.body" \
	    -H 'apns-push-type: mdm' -H "apns-topic: $TOPIC" \
	    -H 'apns-priority: 10' -H 'apns-expiration: 0' \
	    -H 'content-type: application/json' \
	    "https://127.0.0.1:$MOCK_PORT/3/device/$(tok 60)" \
	    >"$IT_DIR/h2load.out" 2>&1 || true
	expect_eq "$(awk '/^status codes:/ { print $3 }' "$IT_DIR/h2load.out")" \
	    1000 "h2load: 1,000 requests without a certificate answered 200"
	echo "# mock ceiling: $(grep 'finished in' "$IT_DIR/h2load.out")"
else
	fail "h2load: installed (nghttp2-client)"
fi
stop_mock

# --- The webhook receiver for the tests to come. ---
rm -f "$IT_DIR/wh.port"
printf '%s\n' '{"answers": [{"status": 503}, {"status": 200}]}' \
    >"$IT_DIR/wh.script.json"
setsid "$PY" "$PM_ROOT/tests/mock-webhook.py" --port-file "$IT_DIR/wh.port" \
    --log "$IT_DIR/wh.log" --script "$IT_DIR/wh.script.json" \
    </dev/null >>"$IT_DIR/wh.stderr" 2>&1 &
IT_PIDS+=("$!")
disown "$!"
for ((i = 0; i < 200; i++)); do
	[[ -s $IT_DIR/wh.port ]] && break
	sleep 0.05
done
read -r WH_PORT <"$IT_DIR/wh.port" || it_abort "setup: mock-webhook"
wh() {
	curl -s -o /dev/null -w '%{http_code}' -H 'X-Signature: s1' \
	    -H 'Content-Type: application/json' --data-binary "$1" \
	    "http://127.0.0.1:$WH_PORT/hook"
}
expect_eq "$(wh '{"topic":"mdm.Connect","n":1}')" 503 \
    "webhook: the first answer is the scripted 503"
expect_eq "$(wh '{"topic":"mdm.Connect","n":2}')" 200 "webhook: then 200"
expect_eq "$(wh '{"topic":"mdm.Connect","n":3}')" 200 \
    "webhook: the last repeats"
expect_eq "$(jq -r '[.n, .status, (.body | fromjson | .n),
    (.headers[] | select(.[0] == "x-signature") | .[1])] | join(" ")' \
    "$IT_DIR/wh.log" | tr '\n' ',')" "1 503 1 s1,2 200 2 s1,3 200 3 s1," \
    "webhook: every request recorded in order, body and headers"

if grep -q -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' \
    -e 'runtime error:' "$IT_DIR/push.all.err"; then
	fail "apns-push: no sanitizer reports" "see $IT_DIR/push.all.err"
fi
it_done
