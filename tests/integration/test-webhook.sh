#!/usr/bin/env bash
#
# test-webhook.sh - webhooks (README.md, "Webhooks") through real nginx,
# TLS and picomdm-fcgi, delivered by tests/webhook-drain (webhook_pass,
# as picomdm-notify will run it) to tests/mock-webhook.py: every
# check-in and command report posted in the JSON NanoMDM and MicroMDM
# consumers read, byte for byte raw_payload, signed with
# webhook_secret_file (the receiver verifies the HMAC); in order per
# enrollment, a refused POST holding back only its own enrollment; a dead
# receiver does not slow check-ins; kill -9 of picomdm-notify mid-batch and
# a restart deliver every event; a purged enrollment's events go with
# it; the outcomes in /api/v1/metrics and picomdmctl stats --prometheus.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"

PY=/usr/bin/python3
DRAIN=$PM_BUILD/tests/webhook-drain
MOCK=$PM_ROOT/tests/mock-webhook.py
MOCK_PID=
MOCK_PORT=

# mock_start [SCRIPT_JSON]: (re)start the receiver on MOCK_PORT (a free
# one the first time), logging to $IT_DIR/hook.log.
mock_start() {
	local port_file=$IT_DIR/mock.port args=()
	rm -f "$port_file"
	if [[ -n ${1-} ]]; then
		printf '%s\n' "$1" >"$IT_DIR/mock.script"
		args=(--script "$IT_DIR/mock.script")
	fi
	"$MOCK" --port "${MOCK_PORT:-0}" --port-file "$port_file" \
	    --log "$IT_DIR/hook.log" "${args[@]}" 2>>"$IT_DIR/mock.err" &
	MOCK_PID=$!
	IT_PIDS+=("$MOCK_PID")
	for _ in $(seq 100); do
		[[ -s $port_file ]] && break
		sleep 0.05
	done
	[[ -s $port_file ]] || it_abort "setup: mock-webhook did not start" \
	    "$(tail -n 3 "$IT_DIR/mock.err" 2>/dev/null)"
	MOCK_PORT=$(cat "$port_file")
}

mock_stop() {
	[[ -n $MOCK_PID ]] || return 0
	kill -TERM "$MOCK_PID" 2>/dev/null || true
	wait "$MOCK_PID" 2>/dev/null || true
	MOCK_PID=
}

it_setup_hook() {
	[[ -x $DRAIN ]] || it_abort "setup: $DRAIN not built"
	mock_start
	(umask 077 && printf 'hook-secret-%s\n' "$(openssl rand -hex 16)" \
	    >"$IT_DIR/hook.secret")
	cat >"$IT_DIR/picomdm.conf" <<CONF
# webhooks for test-webhook.sh
webhook_url = http://127.0.0.1:$MOCK_PORT/hook
webhook_secret_file = $IT_DIR/hook.secret
webhook_timeout = 2
webhook_retry_max = 1
nosync = yes
CONF
	IT_RESPONDER_ARGS+=(--config "$IT_DIR/picomdm.conf")
}

it_start

# drain [ARG...]: run the drainer on the test store; DRAIN_OUT its
# "delivered N waiting N" line.
drain() {
	DRAIN_OUT=$("$DRAIN" --db "$IT_DB" --config "$IT_DIR/picomdm.conf" \
	    "$@" 2>>"$IT_DIR/drain.log") || DRAIN_RC=$?
}

# hook PYTHON: run PYTHON with the receiver's log as a list of records
# `log` (each with its parsed JSON as "json") and the secret as `secret`;
# it prints what the case compares.
hook() {
	$PY - "$IT_DIR/hook.log" "$IT_DIR/hook.secret" "$1" <<'PYEOF'
import base64, hashlib, hmac, json, sys
log = []
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    try:
        r["json"] = json.loads(r["body"])
    except Exception:
        r["json"] = None
    log.append(r)
secret = open(sys.argv[2], "rb").read().rstrip(b"\r\n")
def hdr(r, name):
    for k, v in r["headers"]:
        if k == name:
            return v
    return None
def sig_ok(r):
    want = "sha256=" + hmac.new(secret, base64.b64decode(r["body_b64"]),
                                hashlib.sha256).hexdigest()
    return hdr(r, "x-hub-signature-256") == want
def ev(r):
    j = r["json"]
    return j.get("checkin_event") or j.get("acknowledge_event")
def raw(r):
    return base64.b64decode(ev(r)["raw_payload"])
exec(sys.argv[3])
PYEOF
}

udid1=00008120-00AA11BB22CC33DD
udid2=00008120-00EE44FF5566778A
: >"$IT_DIR/hook.log"

# ---- the format ----
auth=$(auth_plist "$udid1" WEBHOOK00001)
checkin "$auth" device1 --url-query "tenant=acme" --url-query "+x=a%20b"
expect_status 200 "Authenticate (with a query string) accepted"
tok=$(token_plist "$udid1" "$(openssl rand -base64 32)")
checkin "$tok" device1
expect_status 200 "TokenUpdate accepted"
enqueue_raw "$udid1" hook-cmd-1 ProfileList
expect_status 200 "a command enqueued"
idle=$(report "$udid1" Idle)
connect "$idle" device1
expect_status 200 "Idle accepted"
ack=$(report "$udid1" Acknowledged hook-cmd-1)
connect "$ack" device1
expect_status 200 "Acknowledged accepted"
expect_eq "$(wc -l <"$IT_DIR/hook.log")" 0 \
    "the responder itself posts nothing"

DRAIN_RC=0
drain
expect_eq "$DRAIN_RC/$DRAIN_OUT" "0/delivered 4 waiting 0" \
    "the drainer delivers the four events and empties the outbox"
expect_eq "$(hook 'print(" ".join(r["json"]["topic"] for r in log))')" \
    "mdm.Authenticate mdm.TokenUpdate mdm.Connect mdm.Connect" \
    "topics in the order the messages came"
expect_eq "$(hook 'print(all(r["method"] == "POST" and r["path"] == "/hook"
    and hdr(r, "content-type") == "application/json" for r in log))')" \
    True "POST /hook, Content-Type application/json"
expect_eq "$(hook 'print(all(sig_ok(r) for r in log), len(log))')" "True 4" \
    "every POST signed: X-Hub-Signature-256 verified with the secret"
expect_eq "$(hook 'import re
print(all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z",
    r["json"]["created_at"]) and re.fullmatch(r"[0-9A-F-]{36}",
    r["json"]["event_id"]) and hdr(r, "x-picomdm-event-id") ==
    r["json"]["event_id"] for r in log),
    len(set(r["json"]["event_id"] for r in log)))')" "True 4" \
    "created_at RFC 3339, event_id a UUID (also in X-Picomdm-Event-Id), one per event"
expect_eq "$(hook 'print(sorted(log[0]["json"]),
    sorted(log[0]["json"]["checkin_event"]))')" \
    "['checkin_event', 'created_at', 'event_id', 'topic'] ['raw_payload', 'udid', 'url_params']" \
    "Authenticate: exactly topic, event_id, created_at, checkin_event{udid, raw_payload, url_params}"
expect_eq "$(hook 'print(ev(log[0])["udid"], json.dumps(ev(log[0])["url_params"], sort_keys=True))')" \
    "$udid1 {\"tenant\": \"acme\", \"x\": \"a b\"}" "udid and url_params (decoded)"
expect_eq "$(hook 'import hashlib
print(hashlib.sha256(raw(log[0])).hexdigest(), hashlib.sha256(raw(log[1])).hexdigest())')" \
    "$(sha256sum <"$auth" | cut -c1-64) $(sha256sum <"$tok" | cut -c1-64)" \
    "raw_payload: the check-ins byte for byte"
expect_eq "$(hook 'print(ev(log[1]).get("token_update_tally"))')" 1 \
    "TokenUpdate: token_update_tally 1"
expect_eq "$(hook 'print(sorted(log[2]["json"]), sorted(ev(log[2])))')" \
    "['acknowledge_event', 'created_at', 'event_id', 'topic'] ['command_uuid', 'raw_payload', 'status', 'udid']" \
    "a report: acknowledge_event{udid, status, command_uuid, raw_payload}"
expect_eq "$(hook 'print(ev(log[2])["status"], repr(ev(log[2])["command_uuid"]),
    ev(log[3])["status"], ev(log[3])["command_uuid"], ev(log[3])["udid"])')" \
    "Idle '' Acknowledged hook-cmd-1 $udid1" "Idle and Acknowledged with their CommandUUID"
expect_eq "$(hook 'import hashlib
print(hashlib.sha256(raw(log[3])).hexdigest())')" \
    "$(sha256sum <"$ack" | cut -c1-64)" "raw_payload: the report byte for byte"
DRAIN_RC=0
drain
expect_eq "$DRAIN_RC/$DRAIN_OUT/$(wc -l <"$IT_DIR/hook.log")" \
    "0/delivered 0 waiting 0/4" "nothing delivered twice once recorded"

# ---- per-enrollment order: a refused POST holds back its own enrollment ----
mock_stop
: >"$IT_DIR/hook.log"
mock_start '{"answers": [{"status": 503}, {"status": 200}]}'
for i in 1 2 3; do
	checkin "$(token_plist "$udid1" "$(openssl rand -base64 32)")" device1
	[[ $STATUS == 200 ]] || fail "TokenUpdate $i of device 1" "$STATUS"
	checkin "$(auth_plist "$udid2" WEBHOOK00002)" device2
	[[ $STATUS == 200 ]] || fail "Authenticate $i of device 2" "$STATUS"
done
DRAIN_RC=0
drain --until-empty 30
expect_eq "$DRAIN_RC/$DRAIN_OUT" "0/delivered 6 waiting 0" \
    "after a 503 every event is delivered once retried"
expect_eq "$(hook 'print(" ".join("%s:%s:%s" % (ev(r)["udid"][-1],
    r["json"]["checkin_event"].get("token_update_tally", "-"), r["status"]) for r in log))')" \
    "D:2:503 A:-:200 A:-:200 A:-:200 D:2:200 D:3:200 D:4:200" \
    "the refused event held back only device 1's later events; device 2's went on; then device 1's in order"
expect_eq "$(hook 'print(all(sig_ok(r) for r in log))')" True "signed after a retry too"
expect_logged_drain() {
	if grep -q 'HTTP 503' "$IT_DIR/drain.log"; then pass "$1"
	else fail "$1" "no 'HTTP 503' in drain.log"; fi
}
expect_logged_drain "the failed POST logged with its status"

# ---- concurrency: enrollments in parallel, each one in order ----
# webhook_concurrency (default 8) POSTs at once, never two of one
# enrollment to one URL; with 1, one at a time. Each answer waits 300 ms,
# so overlaps are certain when allowed. "start"/"time": the mock's clock
# when it had the body and when it answered.
overlap='
rs = sorted(log, key=lambda r: r["start"])
most = max(sum(1 for o in rs if o["start"] <= r["start"] < o["time"])
           for r in rs)
seq_ok = True
for u in set(ev(r)["udid"] for r in rs):
    mine = [r for r in rs if ev(r)["udid"] == u]
    tallies = [ev(r).get("token_update_tally", 0) for r in mine]
    seq_ok &= tallies == sorted(tallies) and all(
        a["time"] <= b["start"] for a, b in zip(mine, mine[1:]))
print(len(rs), most, seq_ok)'
for conc in 8 1; do
	mock_stop
	: >"$IT_DIR/hook.log"
	mock_start '{"answers": [{"status": 200, "delay_ms": 300}]}'
	sed "s/^webhook_url = .*/webhook_url = http:\/\/127.0.0.1:$MOCK_PORT\/hook/" \
	    "$IT_DIR/picomdm.conf" >"$IT_DIR/conc.conf"
	printf 'webhook_concurrency = %s\n' "$conc" >>"$IT_DIR/conc.conf"
	for i in 1 2 3; do
		checkin "$(token_plist "$udid1" "$(openssl rand -base64 32)")" device1
		checkin "$(token_plist "$udid2" "$(openssl rand -base64 32)")" device2
	done
	DRAIN_RC=0
	DRAIN_OUT=$("$DRAIN" --db "$IT_DB" --config "$IT_DIR/conc.conf" \
	    --until-empty 30 2>>"$IT_DIR/drain.log") || DRAIN_RC=$?
	expect_eq "$DRAIN_RC/$DRAIN_OUT" "0/delivered 6 waiting 0" \
	    "webhook_concurrency = $conc: every event delivered"
	expect_eq "$(hook "$overlap")" "6 $((conc < 2 ? conc : 2)) True" \
	    "  $((conc < 2 ? conc : 2)) POSTs at once at the most (two devices), each device's in order, never two of one at once"
done

# ---- a dead receiver does not slow check-ins ----
# timed_checkins N LABEL: N TokenUpdates of device 2; MS their time.
timed_checkins() {
	local t0 t1 i
	t0=$(date +%s%N)
	for i in $(seq "$1"); do
		checkin "$(token_plist "$udid2" "$(openssl rand -base64 32)")" device2
		[[ $STATUS == 200 ]] || fail "TokenUpdate $i $2" "$STATUS"
	done
	t1=$(date +%s%N)
	MS=$(((t1 - t0) / 1000000))
}
# The baseline: the receiver answers 200, the drainer follows.
"$DRAIN" --db "$IT_DB" --config "$IT_DIR/picomdm.conf" --follow \
    2>>"$IT_DIR/drain.log" &
drain_pid=$!
IT_PIDS+=("$drain_pid")
timed_checkins 20 "with the receiver alive"
base_ms=$MS
for _ in $(seq 100); do
	[[ $(ctlok stats --prometheus |
	    awk '$1 == "picomdm_webhook_outbox" {print $2}') == 0 ]] && break
	sleep 0.1
done
kill -TERM "$drain_pid" 2>/dev/null || true
wait "$drain_pid" 2>/dev/null || true
mock_stop
: >"$IT_DIR/hook.log"
"$DRAIN" --db "$IT_DB" --config "$IT_DIR/picomdm.conf" --follow \
    2>>"$IT_DIR/drain.log" &
drain_pid=$!
IT_PIDS+=("$drain_pid")
# A receiver that accepts and never answers in time (the drainer waits
# webhook_timeout = 2 s in its POST of the first event while the others
# come in), then refused connections.
mock_start '{"answers": [{"status": 200, "delay_ms": 4000}]}'
timed_checkins 10 "with the receiver hanging"
dead_ms=$MS
for _ in $(seq 50); do
	grep -q 'timed out after' "$IT_DIR/drain.log" && break
	sleep 0.1
done
mock_stop
timed_checkins 10 "with the receiver down"
dead_ms=$((dead_ms + MS))
# Shared, busy machine: a generous margin, still far below the 2 s a
# single check-in would lose if it waited for one POST.
if ((dead_ms < 2 * base_ms + 1500)); then
	pass "20 check-ins: ${base_ms} ms with the receiver alive, ${dead_ms} ms with it down or hanging and the drainer retrying"
else
	fail "check-ins slowed by a dead receiver" \
	    "alive ${base_ms} ms, dead ${dead_ms} ms"
fi
if grep -q 'timed out after' "$IT_DIR/drain.log"; then
	pass "the hanging receiver's POST ended by webhook_timeout"
else
	fail "the hanging receiver's POST ended by webhook_timeout" \
	    "$(tail -n 3 "$IT_DIR/drain.log")"
fi
sleep 1.5
waiting=$(ctlok stats --prometheus | awk '$1 == "picomdm_webhook_outbox" {print $2}')
expect_eq "$waiting" 20 "the 20 events wait in the outbox"
failed=$(ctlok stats --prometheus |
    awk '$1 == "picomdm_webhook_events_total{outcome=\"failed\"}" {print $2}')
if ((failed >= 2)); then pass "failed POSTs counted ($failed)"
else fail "failed POSTs counted" "$failed"; fi
kill -TERM "$drain_pid" 2>/dev/null || true
wait "$drain_pid" 2>/dev/null || true

# ---- kill -9 mid-batch, restart: every event delivered ----
mock_start '{"answers": [{"status": 200, "delay_ms": 40}]}'
: >"$IT_DIR/hook.log"
for i in $(seq 30); do
	checkin "$(token_plist "$udid1" "$(openssl rand -base64 32)")" device1
	[[ $STATUS == 200 ]] || fail "TokenUpdate $i for the crash" "$STATUS"
done
# 20 of device 2's and 30 of device 1's; remember their event IDs.
ids_before=$(ctlok dump | jq -r 'select(.db == "event") | .value.event_id' | sort)
expect_eq "$(wc -l <<<"$ids_before")" 50 "50 events waiting before the crash"
# The deliverer is picomdm-notify itself (its webhook thread).
"$PM_BUILD/picomdm-notify" --db "$IT_DB" --config "$IT_DIR/picomdm.conf" \
    2>>"$IT_DIR/drain.log" &
drain_pid=$!
IT_PIDS+=("$drain_pid")
for _ in $(seq 200); do
	(($(wc -l <"$IT_DIR/hook.log") >= 12)) && break
	sleep 0.05
done
{ kill -KILL "$drain_pid"; wait "$drain_pid"; } 2>/dev/null || true
sleep 0.2 # the mock logs a POST once answered: the one in flight too
got=$(wc -l <"$IT_DIR/hook.log")
# What the killed run had not recorded as delivered: still in the outbox.
ctlok dump | jq -r 'select(.db == "event") | .value.event_id' | sort \
    >"$IT_DIR/unrecorded"
if ((got >= 12 && got < 50)); then pass "picomdm-notify killed mid-batch ($got of 50 posted)"
else fail "picomdm-notify killed mid-batch" "$got posted"; fi
rc=0
for _ in 1 2 3 4 5 6; do
	"$PM_BUILD/picomdm-notify" --db "$IT_DB" \
	    --config "$IT_DIR/picomdm.conf" --once 2>>"$IT_DIR/drain.log" ||
	    rc=$?
	[[ $(ctlok stats --prometheus | awk '$1 == "picomdm_webhook_outbox" \
	    { print $2 }') == 0 ]] && break
	sleep 1 # an event sent twice may wait for its backoff
done
expect_eq "$rc/$(ctlok stats --prometheus | awk '$1 == "picomdm_webhook_outbox" { print $2 }')" \
    "0/0" "after a restart (picomdm-notify --once) the outbox is empty"
expect_eq "$(hook 'print("\n".join(sorted(set(r["json"]["event_id"] for r in log))))')" \
    "$ids_before" "every event delivered at least once"
expect_eq "$(hook 'seen = set(); firsts = []
for r in log:
    if r["json"]["event_id"] not in seen:
        seen.add(r["json"]["event_id"]); firsts.append(r)
d1 = [ev(r).get("token_update_tally") for r in firsts if ev(r)["udid"] == "'"$udid1"'"]
print(d1 == sorted(d1), len(d1))')" "True 30" \
    "device 1's events first delivered in order"
# Sent twice are exactly the events posted before the kill whose
# outcome was not yet written (module/webhook.c writes outcomes every
# FLUSH_US, 50 ms, or FLUSH_MAX events): none recorded as delivered goes
# again, and those posted within the last flush interval all do.
twice=$(hook 'import collections
c = collections.Counter(r["json"]["event_id"] for r in log)
print("\n".join(sorted(k for k, n in c.items() if n > 1)))')
posted=$(head -n "$got" "$IT_DIR/hook.log" | jq -r '.body | fromjson | .event_id' | sort -u)
lost_marks=$(comm -12 <(printf '%s\n' "$posted") "$IT_DIR/unrecorded" | sed '/^$/d')
expect_eq "$twice" "$lost_marks" \
    "sent again: exactly the posted events whose outcome the kill lost ($(grep -c . <<<"$twice" || true))"
# Each POST takes 40 ms, so a 50 ms flush interval leaves most of the
# posts of a run recorded: a deliverer that wrote outcomes only at the
# end would lose them all.
nlost=$(grep -c . <<<"$lost_marks" || true)
if ((nlost * 2 <= got)); then pass "outcomes written during the run ($nlost of $got posted unrecorded at the kill)"
else fail "outcomes written during the run" "$nlost of $got posted unrecorded at the kill"; fi

# ---- purge: the enrollment's events go with it ----
mock_stop
checkin "$(token_plist "$udid2" "$(openssl rand -base64 32)")" device2
expect_status 200 "a TokenUpdate of device 2 queued"
expect_eq "$(ctlok dump | jq -r 'select(.db == "event") | .value.udid' | sort -u)" \
    "$udid2" "device 2's event waits"
# dump and restore keep the event as it was (the frozen fixture in
# tests/data/store predates the kind).
ctlok dump --secrets >"$IT_DIR/dump1.json"
mkdir -p "$IT_DIR/db2"
expect_exit 0 "restore of a store with a webhook event" \
    "$PM_BUILD/picomdmctl" --db "$IT_DIR/db2" restore "$IT_DIR/dump1.json"
"$PM_BUILD/picomdmctl" --db "$IT_DIR/db2" dump --secrets >"$IT_DIR/dump2.json"
if cmp -s "$IT_DIR/dump1.json" "$IT_DIR/dump2.json" &&
    grep -q '"db":"event"' "$IT_DIR/dump2.json"; then
	pass "dump, restore, dump: the webhook event byte-identical"
else
	fail "dump, restore, dump: the webhook event byte-identical" \
	    "$(diff "$IT_DIR/dump1.json" "$IT_DIR/dump2.json" | head -c 300)"
fi
ctlok purge "$udid2" --yes >/dev/null
expect_eq "$(ctlok dump | jq -r 'select(.db == "event")' | wc -l)" 0 \
    "purge removes the device's webhook events"
expect_eq "$(ctlok check 2>&1 | grep -c -i problem || true)" 0 "check finds no problem"

# ---- bad configuration: refused, the secret never echoed ----
long=$(head -c 4000 /dev/urandom | base64 -w 0)
printf '%s\n' "$long" >"$IT_DIR/long.secret"
printf 'webhook_secret_file = %s\n' "$IT_DIR/long.secret" >"$IT_DIR/bad1.conf"
expect_exit 2 "picomdm-fcgi refuses a webhook secret over 4096 bytes" \
    "$PM_BUILD/picomdm-fcgi" --config "$IT_DIR/bad1.conf" --db "$IT_DIR/db3"
if grep -q 'webhook_secret_file' "$EXIT_ERR" &&
    ! grep -qF "${long:0:40}" "$EXIT_ERR"; then
	pass "the refusal names the key, not the secret"
else
	fail "the refusal names the key, not the secret" "$(head -c 200 "$EXIT_ERR")"
fi
printf 'webhook_url = ftp://127.0.0.1/x\n' >"$IT_DIR/bad2.conf"
expect_exit 2 "picomdm-fcgi refuses a webhook_url that is not http(s)" \
    "$PM_BUILD/picomdm-fcgi" --config "$IT_DIR/bad2.conf" --db "$IT_DIR/db3"
expect_eq "$(grep -c 'webhook_url: bad value' "$EXIT_ERR")" 1 "and says which key"

# ---- metrics ----
api GET /api/v1/metrics
expect_status 200 "GET /api/v1/metrics"
expect_eq "$(grep -c '^picomdm_webhook_events_total{outcome="\(queued\|delivered\|failed\|dropped\)"}' "$BODY")" 4 \
    "/api/v1/metrics shows the webhook outcomes"
# 4 + 6 + 12 (concurrency) + 20 (the latency baseline) + 50 events
# recorded delivered, each once (one sent again after the kill was never
# recorded before it); 93 queued.
promval() { awk -v k="$1" '$1 == k {print $2}' "$2"; }
expect_eq "$(promval 'picomdm_webhook_events_total{outcome="delivered"}' "$BODY")/$(promval 'picomdm_webhook_events_total{outcome="queued"}' "$BODY")" \
    92/93 "92 delivered, 93 queued"
ctlok stats --prometheus >"$IT_DIR/stats.prom"
expect_eq "$(grep '^picomdm_webhook' "$IT_DIR/stats.prom")" \
    "$(grep '^picomdm_webhook' "$BODY")" "picomdmctl stats --prometheus says the same"

# ---- the bound: the oldest dropped, counted and said in the responder's log ----
it_stop_responder
printf 'webhook_max_events = 3\n' >>"$IT_DIR/picomdm.conf"
it_start_responder
for i in $(seq 5); do
	checkin "$(token_plist "$udid1" "$(openssl rand -base64 32)")" device1
	[[ $STATUS == 200 ]] || fail "TokenUpdate $i with the outbox bounded" "$STATUS"
done
ctlok stats --prometheus >"$IT_DIR/stats2.prom"
expect_eq "$(promval picomdm_webhook_outbox "$IT_DIR/stats2.prom")/$(promval 'picomdm_webhook_events_total{outcome="dropped"}' "$IT_DIR/stats2.prom")" \
    3/2 "webhook_max_events = 3: five check-ins leave three events, two dropped and counted"
expect_eq "$(grep -c 'outbox is full (webhook_max_events 3): dropped the 1 oldest' "$IT_DIR/fcgi.log")" 2 \
    "each drop is a warning in the responder's log"
expect_eq "$(ctlok dump | jq -r 'select(.db == "event") | .value.token_update_tally' | tr '\n' ' ')" \
    "$(ctlok dump | jq -r 'select(.db == "enroll" and .key == "'"$udid1"'") | .value.token_update_tally - 2, .value.token_update_tally - 1, .value.token_update_tally' | tr '\n' ' ')" \
    "the newest three kept"

# ---- picomdm-notify delivers the outbox (its webhook thread) ----
NOTIFY=$PM_BUILD/picomdm-notify
mock_stop
: >"$IT_DIR/hook.log"
mock_start
rc=0
"$NOTIFY" --db "$IT_DB" --config "$IT_DIR/picomdm.conf" --once \
    2>>"$IT_DIR/notify.log" || rc=$?
ctlok stats --prometheus >"$IT_DIR/stats3.prom"
expect_eq "$rc/$(wc -l <"$IT_DIR/hook.log")/$(promval picomdm_webhook_outbox "$IT_DIR/stats3.prom")" \
    0/3/0 "picomdm-notify --once posts the three waiting events and empties the outbox"
expect_eq "$(hook 'print(all(sig_ok(r) for r in log))')" True \
    "  each signed"
"$NOTIFY" --db "$IT_DB" --config "$IT_DIR/picomdm.conf" \
    2>>"$IT_DIR/notify.log" &
notify_pid=$!
IT_PIDS+=("$notify_pid")
checkin "$(token_plist "$udid1" "$(openssl rand -base64 32)")" device1
checkin "$(checkout_plist "$udid1")" device1
for _ in $(seq 100); do
	(($(wc -l <"$IT_DIR/hook.log") >= 5)) && break
	sleep 0.1
done
expect_eq "$(hook 'print(" ".join(r["json"]["topic"] for r in log[3:]))')" \
    "mdm.TokenUpdate mdm.CheckOut" \
    "the picomdm-notify daemon posts new check-ins as they come"
kill -TERM "$notify_pid"
rc=0
wait "$notify_pid" || rc=$?
expect_eq "$rc" 0 "  and exits 0 on SIGTERM"

it_done
