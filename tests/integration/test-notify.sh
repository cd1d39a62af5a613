#!/usr/bin/env bash
#
# test-notify.sh - the push outbox and picomdm-notify (man/picomdm-notify.8,
# README.md "Waking devices") with the real picomdm-fcgi behind nginx and
# tests/mock-apns.py as APNs (HTTP/2, TLS, client certificates):
#
#   - an enqueue writes the push in its own transaction and says so per
#     ID ("queued", "pending" when coalesced, "nopush" with nopush=1);
#     POST /api/v1/push and picomdmctl push queue one on demand;
#   - picomdm-notify --once sends it: exactly one request, with the path,
#     headers, body {"mdm":"<PushMagic>"}, topic and client certificate
#     APNs wants; its apns-id is in the enrollment's push state (API and
#     picomdmctl show); the outbox is empty; the counters say delivered;
#   - each error class has its effect: 410 Unregistered and 400
#     BadDeviceToken mark the token invalid (no push is queued until a
#     TokenUpdate, which clears it); 403 stops the topic (the push waits,
#     a loud log line) and it resumes after push_topic_retry; 429 is
#     retried after a backoff and delivered; 500 every time is given up
#     after push_max_attempts;
#   - the re-push pass pushes enrollments with commands queued that were
#     not seen since their last push, and not the others;
#   - with APNs dead, enqueue and check-ins stay fast and the push waits;
#   - kill -9 of picomdm-notify while APNs holds its request, then a
#     restart: the push is still delivered; SIGTERM stops the daemon;
#   - enqueue with push_wait=MS answers with the push's result and
#     apns-id when picomdm-notify writes it in time;
#   - 10,000 pushes in one --once run reach the mock over one connection;
#   - dump and restore carry the push records; purge removes an
#     enrollment's outbox entry and push state; check is clean at the end.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"

PY=/usr/bin/python3
NOTIFY=$PM_BUILD/picomdm-notify
MAGIC=8B0E2D3C-7A61-4F59-9E1C-4D2B6A8F0C13
[[ -x $NOTIFY ]] || it_abort "setup: $NOTIFY not built"
$PY -c 'import h2' 2>/dev/null || it_abort "setup: python3-h2 missing"

it_start
C=$IT_DIR/apns
mkdir -p "$C"

ossl() {
	openssl "$@" 2>>"$IT_DIR/openssl.log" ||
	    it_abort "setup: openssl $1" "$(tail -n 2 "$IT_DIR/openssl.log")"
}
# The mock's server CA and certificate, a push CA (Apple's, for the
# mock) and the push certificate of the test's topic.
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$C/sca.key" -out "$C/sca.pem" -days 30 -subj "/CN=test APNs CA"
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$C/server.key" -out "$C/server.csr" -subj "/CN=localhost"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$C/san.ext"
ossl x509 -req -in "$C/server.csr" -CA "$C/sca.pem" -CAkey "$C/sca.key" \
    -CAcreateserial -out "$C/server.pem" -days 30 -extfile "$C/san.ext"
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$C/pca.key" -out "$C/pca.pem" -days 30 -subj "/CN=test push CA"
ossl req -newkey rsa:2048 -nodes -keyout "$C/push.key" -out "$C/push.csr" \
    -subj "/UID=$IT_TOPIC/CN=APSP:test/C=US"
ossl x509 -req -in "$C/push.csr" -CA "$C/pca.pem" -CAkey "$C/pca.key" \
    -CAcreateserial -out "$C/push.pem" -days 365
ctl pushcert import "$C/push.pem" "$C/push.key" >/dev/null 2>&1 ||
    it_abort "setup: pushcert import"

# Two devices with tokens we know (hex; the device sends the bytes).
D1=NOTIFY-0000-0000-0001
D2=NOTIFY-0000-0000-0002
TOK1=$(printf 'a1%062x' 1)
TOK2=$(printf 'b2%062x' 2)
TOK2B=$(printf 'c3%062x' 3)
b64() { xxd -r -p <<<"$1" | base64 -w 0; }
# token_update UDID CERT HEX: a TokenUpdate with that token.
token_update() {
	checkin "$(token_plist "$1" "$(b64 "$3")")" "$2"
	[[ $STATUS == 200 ]] || it_abort "TokenUpdate $1 got $STATUS"
}
checkin "$(auth_plist "$D1" SERIALN0001)" device1
[[ $STATUS == 200 ]] || it_abort "setup: Authenticate $D1 got $STATUS"
token_update "$D1" device1 "$TOK1"
checkin "$(auth_plist "$D2" SERIALN0002)" device2
[[ $STATUS == 200 ]] || it_abort "setup: Authenticate $D2 got $STATUS"
token_update "$D2" device2 "$TOK2"

# --- the mock APNs ---
MOCK_PID=
MOCK_PORT=
MOCK_LOG=
# start_mock NAME [SCRIPT-JSON]
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
	    "${sargs[@]}" </dev/null >>"$IT_DIR/mock.stderr" 2>&1 &
	MOCK_PID=$!
	it_mock_started mock-apns
}
stop_mock() { it_mock_stop; }
# requests [JQ]: the mock's request records.
requests() {
	jq -c "select(.event == \"request\")${1:+ | $1}" "$MOCK_LOG"
}
# header NAME: that header of the last request.
header() {
	requests | tail -n 1 |
	    jq -r --arg n "$1" '[.headers[] | select(.[0] == $n) | .[1]] | join(",")'
}

# picomdm-notify's settings: short backoffs for the test.
cat >"$IT_DIR/notify.conf" <<EOF
apns_ca = $C/sca.pem
push_backoff_ms = 50
push_backoff_max_ms = 100
push_max_attempts = 3
push_topic_retry = 1
notify_poll_ms = 50
repush_interval = 0
log_level = debug
EOF
# notify ARG...: picomdm-notify on the test store and the mock (NRC: exit).
NRC=
notify() {
	NRC=0
	"$NOTIFY" --db "$IT_DB" --config "$IT_DIR/notify.conf" \
	    --apns-url "https://127.0.0.1:${MOCK_PORT:-1}" "$@" \
	    >>"$IT_DIR/notify.log" 2>&1 || NRC=$?
}
# prom NAME: a figure of picomdmctl stats --prometheus.
prom() {
	ctl stats --prometheus | awk -v n="$1" '$1 == n { print $2 }'
}
# pushview ID: the "push" object of GET /api/v1/enrollments/ID.
pushview() {
	api GET "/api/v1/enrollments/$1"
	jq -c .push "$BODY"
}
UUIDN=0
# enq ID [QUERY]: enqueue a ProfileList command; BODY holds the answer.
enq() {
	UUIDN=$((UUIDN + 1))
	enqueue_raw "$1" "$(printf 'C0FFEE00-0000-4000-8000-%012d' "$UUIDN")" \
	    ProfileList "${2-}"
}

start_mock basic

# --- an enqueue queues a push in its transaction ---
enq "$D1"
expect_status 200 "enqueue to an enrollment with a token"
expect_body_jq ".status[\"$D1\"].push" queued "the enqueue answer says a push was queued"
enq "$D1"
expect_body_jq ".status[\"$D1\"].push" pending "a second enqueue coalesces into the pending push"
expect_eq "$(prom picomdm_push_outbox_depth)" 1 "one outbox record for the enrollment"
expect_jq "$(pushview "$D1")" '.pending.reason' enqueue "the enrollment view shows the pending push"
enq "$D2" nopush=1
expect_body_jq ".status[\"$D2\"].push" nopush "nopush=1 queues no push"
expect_eq "$(prom picomdm_push_outbox_depth)" 1 "nopush=1 wrote no outbox record"

# --- picomdm-notify sends exactly the right request ---
t0=$(date +%s)
notify --once
expect_eq "$NRC" 0 "picomdm-notify --once exits 0"
expect_eq "$(requests | wc -l)" 1 "one push for two coalesced enqueues"
expect_eq "$(requests .path)" "\"/3/device/$TOK1\"" "the path carries the token in hex"
expect_eq "$(requests .method)" '"POST"' "method POST"
expect_eq "$(header apns-push-type)" mdm "apns-push-type: mdm"
expect_eq "$(header apns-topic)" "$IT_TOPIC" "apns-topic is the enrollment's topic"
expect_eq "$(header apns-priority)" 10 "apns-priority: 10"
exp=$(header apns-expiration)
if ((exp >= t0 + 7 * 86400 - 5 && exp <= $(date +%s) + 7 * 86400 + 5)); then
	pass "apns-expiration is now + 7 days"
else
	fail "apns-expiration is now + 7 days" "got $exp"
fi
expect_eq "$(requests .body)" "\"{\\\"mdm\\\":\\\"$MAGIC\\\"}\"" "the body is {\"mdm\":\"<PushMagic>\"}"
expect_eq "$(requests .uid)" "\"$IT_TOPIC\"" "sent with the topic's client certificate"
expect_eq "$(requests .status)" 200 "the mock accepted it"
apns_id=$(requests .apns_id | tr -d '"')
pv=$(pushview "$D1")
expect_jq "$pv" .apns_id "$apns_id" "the API shows the apns-id APNs answered"
expect_jq "$pv" '.last_outcome + " " + (.pending|tostring)' "delivered null" "delivered, nothing pending"
expect_jq "$(ctlok show "$D1")" .enrollments[0].push.apns_id "$apns_id" "picomdmctl show shows it too"
expect_eq "$(prom picomdm_push_outbox_depth)" 0 "the outbox is empty"
expect_eq "$(prom 'picomdm_pushes_total{result="delivered"}')" 1 "counted as delivered (stats --prometheus)"
api GET /api/v1/metrics
expect_eq "$(grep -c '^picomdm_pushes_total{result="delivered"} 1$' "$BODY")" 1 "and in /api/v1/metrics"

# --- POST /api/v1/push and picomdmctl push ---
api POST "/api/v1/push/$D1,NOSUCH-ENROLLMENT"
expect_status 200 "POST /api/v1/push"
expect_body_jq "[.status[\"$D1\"].push, .status[\"NOSUCH-ENROLLMENT\"].push] | join(\",\")" \
    "queued,unknown enrollment" "it queues per ID and names the unknown one"
api POST "/api/v1/push/NOSUCH-ENROLLMENT"
expect_api_error 404 "POST /api/v1/push with no enrollment is 404"
expect_exit 0 "picomdmctl push of a pending one" ctl push "$D1"
expect_jq "$(cat "$EXIT_OUT")" ".status[\"$D1\"].push" pending "picomdmctl push says it is pending"
notify --once
expect_eq "$(requests | wc -l)" 2 "that push is sent"

# --- 410 Unregistered: the token is invalid until a TokenUpdate ---
start_mock unreg "{\"tokens\": {\"$TOK2\": [{\"status\": 410, \"reason\": \"Unregistered\"}]}}"
expect_exit 0 "picomdmctl push" ctl push "$D2"
notify --once
expect_eq "$(requests .status)" 410 "APNs said 410"
pv=$(pushview "$D2")
expect_jq "$pv" '[.token_invalid, .token_invalid_reason, .pending] | map(tostring) | join(",")' \
    "true,Unregistered,null" "410 Unregistered marks the token invalid, nothing pending"
enq "$D2"
expect_body_jq ".status[\"$D2\"].push" "token invalid" "an enqueue says why no push was queued"
expect_exit 1 "picomdmctl push of an invalid token exits 1" ctl push "$D2"
expect_jq "$(ctlok show "$D2")" .enrollments[0].push.token_invalid true "picomdmctl show: token invalid"
expect_eq "$(prom picomdm_push_tokens_invalid)" 1 \
    "picomdm_push_tokens_invalid counts the enrollment"
token_update "$D2" device2 "$TOK2B"
expect_jq "$(pushview "$D2")" .token_invalid false "a TokenUpdate clears it"
expect_eq "$(prom picomdm_push_tokens_invalid)" 0 \
    "  and picomdm_push_tokens_invalid no longer counts it"
enq "$D2"
expect_body_jq ".status[\"$D2\"].push" queued "and pushes are queued again"
notify --once
expect_eq "$(requests .path | tail -n 1)" "\"/3/device/$TOK2B\"" "the new token is pushed"
expect_eq "$(prom 'picomdm_pushes_total{result="token-invalid"}')" 1 "counted as token-invalid"

# --- 400 BadDeviceToken ---
start_mock bad "{\"tokens\": {\"$TOK1\": [{\"status\": 400, \"reason\": \"BadDeviceToken\"}]}}"
ctl push "$D1" >/dev/null
notify --once
expect_jq "$(pushview "$D1")" '.token_invalid_reason' BadDeviceToken "400 BadDeviceToken marks the token invalid"
token_update "$D1" device1 "$TOK1"
expect_jq "$(pushview "$D1")" .token_invalid false "a TokenUpdate, even with the same token, clears it"

# --- 403: the topic stops, the push waits, then resumes ---
start_mock stop "{\"tokens\": {\"$TOK1\": [{\"status\": 403, \"reason\": \"BadCertificate\"}, {\"status\": 200}]}}"
ctl push "$D1" >/dev/null
notify --once
expect_eq "$NRC" 0 "--once returns while the topic is stopped"
expect_eq "$(grep -c "topic $IT_TOPIC STOPPED" "$IT_DIR/notify.log")" 1 "a stopped topic is logged loudly"
expect_jq "$(pushview "$D1")" .pending.last_result topic-stopped "the push waits in the outbox"
expect_eq "$(prom 'picomdm_pushes_total{result="topic-stopped"}')" 1 "counted as topic-stopped"
sleep 1.2 # push_topic_retry
notify --once
expect_jq "$(pushview "$D1")" '.last_outcome + " " + (.pending|tostring)' "delivered null" \
    "after push_topic_retry the topic resumes and the push is delivered"

# --- 429: retried after a backoff ---
start_mock busy "{\"tokens\": {\"$TOK1\": [{\"status\": 429, \"reason\": \"TooManyRequests\"}, {\"status\": 200}]}}"
ctl push "$D1" >/dev/null
notify --once
expect_jq "$(pushview "$D1")" '[.pending.attempts, .pending.last_result] | map(tostring) | join(",")' \
    "1,retry" "429: one attempt counted, retried later"
sleep 0.3
notify --once
expect_eq "$(requests .status | tr '\n' ' ')" "429 200 " "delivered on the retry"
expect_jq "$(pushview "$D1")" '.pending' null "nothing pending after the retry"

# --- 500 every time: given up after push_max_attempts (daemon mode) ---
start_mock down "{\"tokens\": {\"$TOK1\": [{\"status\": 500, \"reason\": \"InternalServerError\"}]}}"
ctl push "$D1" >/dev/null
"$NOTIFY" --db "$IT_DB" --config "$IT_DIR/notify.conf" \
    --apns-url "https://127.0.0.1:$MOCK_PORT" >>"$IT_DIR/notify.log" 2>&1 &
npid=$!
IT_PIDS+=("$npid")
for ((i = 0; i < 100; i++)); do
	[[ $(prom 'picomdm_pushes_total{result="gave-up"}') == 1 ]] && break
	sleep 0.1
done
expect_eq "$(requests | wc -l)" 4 "500: the first try and push_max_attempts retries"
expect_exit 1 "a second picomdm-notify on the store: refused" \
    "$NOTIFY" --db "$IT_DB" --config "$IT_DIR/notify.conf" --once \
    --apns-url "https://127.0.0.1:$MOCK_PORT"
grep -q "another picomdm-notify is sending for this store" "$EXIT_ERR" &&
    pass "  and says why" || fail "  and says why" "$(cat "$EXIT_ERR")"
expect_jq "$(pushview "$D1")" '.last_outcome + " " + (.pending|tostring)' "gave-up null" "then given up"
t1=$(date +%s%N)
kill -TERM "$npid"
rc=0
wait "$npid" || rc=$?
t2=$(date +%s%N)
expect_eq "$rc" 0 "SIGTERM: picomdm-notify exits 0"
if (((t2 - t1) / 1000000 < 2000)); then pass "SIGTERM: it exits at once"; else
	fail "SIGTERM: it exits at once" "$(((t2 - t1) / 1000000)) ms"; fi

# --- APNs dead: enqueue and check-ins do not wait; the push waits ---
stop_mock
MOCK_PORT=$(free_ports 1)
t1=$(date +%s%N)
enq "$D1"
expect_body_jq ".status[\"$D1\"].push" queued "APNs down: the enqueue queues the push"
connect "$(report "$D1" Idle)" device1
expect_status 200 "APNs down: the device checks in"
t2=$(date +%s%N)
if (((t2 - t1) / 1000000 < 1500)); then pass "APNs down: enqueue and check-in take no longer"; else
	fail "APNs down: enqueue and check-in take no longer" "$(((t2 - t1) / 1000000)) ms"; fi
notify --once
expect_jq "$(pushview "$D1")" '.pending.last_result' retry "APNs down: the push is kept for a retry"

# --- kill -9 while APNs holds the request, then a restart ---
start_mock slow "{\"tokens\": {\"$TOK1\": [{\"delay_ms\": 5000, \"status\": 200}]}}"
sleep 0.2 # the retry's backoff
"$NOTIFY" --db "$IT_DB" --config "$IT_DIR/notify.conf" \
    --apns-url "https://127.0.0.1:$MOCK_PORT" >>"$IT_DIR/notify.log" 2>&1 &
npid=$!
IT_PIDS+=("$npid")
for ((i = 0; i < 100; i++)); do
	grep -q '"event": *"connection"' "$MOCK_LOG" && break
	sleep 0.05
done
sleep 0.5
kill -KILL "$npid"
wait "$npid" 2>/dev/null || true
expect_eq "$(prom picomdm_push_outbox_depth)" 1 "kill -9 mid-send: the push is still in the outbox"
start_mock after
notify --once
expect_eq "$(requests .status)" 200 "after a restart it is delivered"
expect_eq "$(prom picomdm_push_outbox_depth)" 0 "and the outbox is empty"

# --- the re-push pass: commands queued, no contact since the last push ---
sed 's/^repush_interval = 0$/repush_interval = 1/' "$IT_DIR/notify.conf" \
    >"$IT_DIR/repush.conf"
# daemon_for SECONDS: picomdm-notify with re-push on, for that long.
daemon_for() {
	"$NOTIFY" --db "$IT_DB" --config "$IT_DIR/repush.conf" \
	    --apns-url "https://127.0.0.1:$MOCK_PORT" >>"$IT_DIR/notify.log" 2>&1 &
	npid=$!
	IT_PIDS+=("$npid")
	sleep "$1"
	kill -TERM "$npid"
	wait "$npid" || true
}
tok1_pushes() {
	requests .path | grep -c "$TOK1" || true
}
start_mock repush
connect "$(report "$D1" Idle)" device1 # seen after its last push
sleep 1.1
daemon_for 1.5
expect_eq "$(tok1_pushes)" 0 "re-push: not for an enrollment seen since its last push"
ctl push "$D1" >/dev/null
daemon_for 2.5
n=$(tok1_pushes)
if ((n >= 2)); then pass "re-push: pushed again when not seen since ($n pushes)"; else
	fail "re-push: pushed again when not seen since" "$n pushes"; fi
if grep -q 'notify: re-push: [0-9]* enrollments' "$IT_DIR/notify.log"; then
	pass "re-push is logged"
else
	fail "re-push is logged"
fi

# --- push_wait: the enqueue answer carries picomdm-notify's result ---
start_mock wait
"$NOTIFY" --db "$IT_DB" --config "$IT_DIR/notify.conf" \
    --apns-url "https://127.0.0.1:$MOCK_PORT" >>"$IT_DIR/notify.log" 2>&1 &
npid=$!
IT_PIDS+=("$npid")
enq "$D1" push_wait=5000
expect_body_jq "[.status[\"$D1\"].push, .status[\"$D1\"].push_result] | join(\",\")" \
    "queued,delivered" "push_wait: the answer has the push's result"
expect_body_jq ".status[\"$D1\"].apns_id" "$(requests .apns_id | tail -n 1 | tr -d '"')" \
    "push_wait: and its apns-id"
kill -TERM "$npid"
wait "$npid" || true
enq "$D1" push_wait=100
expect_body_jq "[.status[\"$D1\"].push, (.status[\"$D1\"].push_result|tostring)] | join(\",\")" \
    "queued,null" "push_wait: no result when none comes in time"
api PUT "/api/v1/enqueue/$D1?push_wait=10001" --data-binary "@$(cmd_plist C0FFEE00-0000-4000-8000-999999999999 ProfileList)"
expect_api_error 400 "push_wait over 10000 ms is refused"
ctl push "$D1" >/dev/null # leave nothing pending for what follows
notify --once

# --- bad invocations change nothing ---
expect_exit 1 "no store at --db: exit 1" "$NOTIFY" --db "$IT_DIR/nostore" --once
[[ ! -e $IT_DIR/nostore ]] && pass "and no store is made there" ||
    fail "and no store is made there"
printf 'push_max_attempts = 0\n' >"$IT_DIR/bad.conf"
expect_exit 2 "a bad key value: exit 2" "$NOTIFY" --db "$IT_DB" --config "$IT_DIR/bad.conf" --once
expect_exit 2 "an unknown option: exit 2" "$NOTIFY" --db "$IT_DB" --bogus

# --- dump and restore carry the push records ---
ctl push "$D2" >/dev/null
ctl dump --secrets >"$IT_DIR/dump.jsonl"
expect_eq "$(jq -r 'select(.db == "push_outbox" or .db == "push_state") | .db' \
    "$IT_DIR/dump.jsonl" | sort | tr '\n' ' ')" "push_outbox push_state push_state " \
    "dump shows the outbox record and both push states"
"$PM_BUILD/picomdmctl" --db "$IT_DIR/db2" restore "$IT_DIR/dump.jsonl" >/dev/null 2>&1 ||
    fail "restore into a new store"
expect_eq "$("$PM_BUILD/picomdmctl" --db "$IT_DIR/db2" dump --secrets | sha256sum)" \
    "$(sha256sum <"$IT_DIR/dump.jsonl")" "restore then dump gives the same bytes"

# --- purge takes the push records with the enrollment ---
ctl purge "$D2" --yes >/dev/null 2>&1 || fail "purge $D2"
expect_eq "$(ctl dump | jq -r 'select(.db == "push_outbox" or .db == "push_state") | .db' | wc -l)" 1 \
    "purge removes the enrollment's outbox entry and push state (the other's stays)"
expect_exit 0 "check is clean" ctl check

# --- 10,000 pushes in one run, over one connection per topic ---
S=$IT_DIR/scale
"$PM_BUILD/tools/picomdm-gen" --db "$S" --devices 10000 --topic "$IT_TOPIC" \
    >/dev/null 2>&1 || it_abort "setup: picomdm-gen"
"$PM_BUILD/picomdmctl" --db "$S" pushcert import "$C/push.pem" "$C/push.key" \
    >/dev/null 2>&1 || it_abort "setup: pushcert import (scale)"
mapfile -t ids < <(for ((i = 1; i <= 10000; i++)); do printf '00008101-%016X\n' "$i"; done)
expect_exit 0 "picomdmctl push of 10,000 enrollments" \
    "$PM_BUILD/picomdmctl" --db "$S" push "${ids[@]}"
start_mock scale
t1=$(date +%s%N)
expect_exit 0 "picomdm-notify --once sends them" "$NOTIFY" --db "$S" \
    --config "$IT_DIR/notify.conf" --apns-url "https://127.0.0.1:$MOCK_PORT" --once
t2=$(date +%s%N)
expect_eq "$(requests .status | grep -c '^200$')" 10000 "the mock got 10,000 pushes, each accepted"
expect_eq "$(requests .path | sort -u | wc -l)" 10000 "one per device"
expect_eq "$(jq -c 'select(.event == "connection")' "$MOCK_LOG" | wc -l)" 1 "over one connection"
expect_eq "$("$PM_BUILD/picomdmctl" --db "$S" stats --prometheus |
    awk '$1 == "picomdm_push_outbox_depth" { print $2 }')" 0 "the outbox is empty"
note "10,000 pushes in $(((t2 - t1) / 1000000)) ms (Python mock, shared machine)"

stop_mock
it_done
