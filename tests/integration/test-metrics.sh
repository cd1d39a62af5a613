#!/usr/bin/env bash
#
# test-metrics.sh - GET /api/v1/metrics and GET /healthz through real
# nginx and TLS: the key (and metrics_public = yes), exact counts after a
# known load (N TokenUpdates move the request counter, the latency
# histogram and the operations per commit by exactly N), the store's
# figures (enrollments by state, queued commands, stored results),
# identity refusals by reason, the whole exposition parsed by
# python3-prometheus-client's parser, and /healthz turning 503 when the
# map is full and 200 again once a write is stored.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"

PY=/usr/bin/python3

it_start
# A failure, not a skip: scripts/lib.sh's PM_PACKAGES installs it.
$PY -c 'import prometheus_client' 2>/dev/null ||
    it_abort "setup: python3-prometheus-client is not installed (PM_PACKAGES in scripts/lib.sh)"

# scrape: GET /api/v1/metrics with the key, parse the whole
# body with prometheus_client's text parser into $IT_DIR/metrics.flat,
# one sample a line: NAME{k="v",...} VALUE, labels sorted. Sets
# PARSED to ok or to the parser's complaint.
scrape() {
	api GET /api/v1/metrics
	parse_metrics "$BODY" 20
}

# parse_metrics FILE FAMILIES: parse FILE (at least FAMILIES families)
# into $IT_DIR/metrics.flat; PARSED is ok or the complaint.
parse_metrics() {
	PARSED=$($PY - "$1" "$IT_DIR/metrics.flat" "$2" <<'EOF' 2>&1
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
out = []
fams = 0
for fam in text_string_to_metric_families(text):
    fams += 1
    for s in fam.samples:
        lab = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        out.append("%s{%s} %r" % (s.name, lab, float(s.value)))
# Every sample line of the body must have come through the parser.
lines = [l for l in text.splitlines() if l and not l.startswith("#")]
if len(lines) != len(out):
    sys.exit("parsed %d samples of %d lines" % (len(out), len(lines)))
if fams < int(sys.argv[3]):
    sys.exit("only %d families" % fams)
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("ok")
EOF
	) || true
}

# metric 'NAME{labels}': the value of one sample in the last scrape
# (labels sorted by name, as scrape writes them), 0 when absent.
metric() {
	awk -v k="$1" 'substr($0, 1, length(k) + 1) == k " " &&
	    index(substr($0, length(k) + 2), " ") == 0 {
		v = substr($0, length(k) + 2)
	} END { printf "%.0f\n", v + 0 }' "$IT_DIR/metrics.flat"
}

udid=00008110-000A1B2C3D4E5F60
token=$(openssl rand -base64 32)
N=7
TU='picomdm_requests_total{endpoint="checkin",status="200",type="TokenUpdate"}'
LATC='picomdm_request_duration_seconds_count{endpoint="checkin"}'
OPS='picomdm_commit_operations_sum{}'
COMMITS='picomdm_commits_total{}'

# ---- the key ----
put_raw /api/v1/metrics -X GET
expect_status 401 "metrics without the key: 401"
scrape
expect_status 200 "metrics with the key: 200"
if grep -qi '^content-type: text/plain; version=0.0.4' "$HEADERS"; then
	pass "metrics are text/plain; version=0.0.4"
else
	fail "metrics are text/plain; version=0.0.4" \
	    "$(grep -i content-type "$HEADERS")"
fi
expect_eq "$PARSED" ok "the whole exposition parses (empty store)"
expect_eq "$(metric 'picomdm_enrollments{state="enabled"}')" 0 \
    "no enrollment yet"

# ---- a known load ----
checkin "$(auth_plist "$udid" METRICS0001)" device1
expect_status 200 "Authenticate"
scrape
tu0=$(metric "$TU") lat0=$(metric "$LATC") ops0=$(metric "$OPS")
commits0=$(metric "$COMMITS")
for ((i = 0; i < N; i++)); do
	checkin "$(token_plist "$udid" "$token")" device1
	[[ $STATUS == 200 ]] || break
done
expect_status 200 "$N TokenUpdates"
scrape
expect_eq "$PARSED" ok "the whole exposition parses after the load"
expect_eq $(($(metric "$TU") - tu0)) "$N" \
    "TokenUpdate 200 counter moved by exactly $N"
expect_eq $(($(metric "$LATC") - lat0)) "$N" \
    "checkin latency histogram counted exactly $N"
expect_eq $(($(metric "$OPS") - ops0)) "$N" \
    "operations per commit summed to exactly $N"
commits=$(($(metric "$COMMITS") - commits0))
if ((commits >= 1 && commits <= N)); then
	pass "$commits group commits for $N writes"
else
	fail "1 to $N group commits for $N writes" "$commits"
fi
expect_eq "$(metric 'picomdm_enrollments{state="enabled"}')" 1 \
    "one enrollment enabled"
expect_eq "$(metric 'picomdm_requests_inflight_max{}')" 256 \
    "max_inflight is shown"
expect_eq "$(metric 'picomdm_requests_inflight{}')" 1 \
    "in flight: the scrape itself"
expect_eq "$(metric 'picomdm_store_writable{}')" 1 "store writable"
expect_eq "$(metric 'picomdm_store_up{}')" 1 "store figures read"
if (($(metric 'picomdm_store_map_size_bytes{}') == 64 << 20)) &&
    (($(metric 'picomdm_store_map_max_bytes{}') == 16 << 30)) &&
    (($(metric 'picomdm_store_pages_used{}') > 0)); then
	pass "map size 64 MiB, map_max 16 GiB, pages used"
else
	fail "map size 64 MiB, map_max 16 GiB, pages used" \
	    "$(grep picomdm_store_ "$IT_DIR/metrics.flat" | tr '\n' ' ')"
fi

# ---- queue, results, CheckOut ----
enqueue_raw "$udid" 6F1B4A1E-0D3C-4B7A-9E2F-000000000001 DeviceInformation \
    "" '<key>Queries</key><array><string>OSVersion</string></array>'
expect_status 200 "first command queued"
enqueue_raw "$udid" 6F1B4A1E-0D3C-4B7A-9E2F-000000000002 ProfileList
expect_status 200 "second command queued"
scrape
expect_eq "$(metric 'picomdm_commands_queued{}')" 2 "two commands queued"
expect_eq "$(metric 'picomdm_results_stored{}')" 0 "no result yet"
got=$(send "$udid" device1 Idle)
expect_eq "$got" 6F1B4A1E-0D3C-4B7A-9E2F-000000000001 "Idle gets the first"
send "$udid" device1 Acknowledged 6F1B4A1E-0D3C-4B7A-9E2F-000000000001 \
    >/dev/null
scrape
expect_eq "$(metric 'picomdm_results_stored{}')" 1 "one result stored"
expect_eq "$(metric 'picomdm_commands_queued{}')" 1 "one command queued"
expect_eq "$(metric 'picomdm_requests_total{endpoint="connect",status="200",type="Idle"}')" \
    1 "one Idle report counted"
checkin "$(checkout_plist "$udid")" device1
expect_status 200 "CheckOut"
scrape
expect_eq "$(metric 'picomdm_enrollments{state="enabled"}')" 0 \
    "CheckOut: no enrollment enabled"
expect_eq "$(metric 'picomdm_enrollments{state="disabled"}')" 1 \
    "CheckOut: one disabled"

# The same figures from picomdmctl, for node_exporter's textfile collector.
ctl stats --prometheus >"$IT_DIR/ctl.prom" ||
    fail "picomdmctl stats --prometheus exits 0"
parse_metrics "$IT_DIR/ctl.prom" 9
expect_eq "$PARSED" ok "picomdmctl stats --prometheus parses"
expect_eq "$(metric 'picomdm_enrollments{state="disabled"}')" 1 \
    "picomdmctl stats --prometheus: one enrollment disabled"
expect_eq "$(metric 'picomdm_results_stored{}')" 1 \
    "picomdmctl stats --prometheus: one result"
expect_eq "$(metric 'picomdm_commands_queued{}')" 1 \
    "picomdmctl stats --prometheus: one command queued"
if grep -q '^picomdm_requests_total' "$IT_DIR/ctl.prom"; then
	fail "picomdmctl stats --prometheus has no request counters"
else
	pass "picomdmctl stats --prometheus has no request counters"
fi
expect_exit 2 "picomdmctl stats --json --prometheus is a usage error" \
    ctl stats --json --prometheus

# ---- identity refusals ----
checkin "$(token_plist "$udid" "$token")" none
expect_status 400 "a check-in without any certificate: 400"
checkin "$(token_plist "$udid" "$token")" device2
expect_status 403 "a check-in with another device's certificate: 403"
checkin "$(token_plist "$udid" "$token")" device2
scrape
expect_eq "$(metric 'picomdm_identity_refusals_total{reason="no client certificate"}')" \
    1 "refusal counted: no client certificate"
expect_eq "$(metric 'picomdm_identity_refusals_total{reason="certificate not bound to this enrollment"}')" \
    2 "refusal counted twice: certificate not bound to this enrollment"
expect_eq "$(metric 'picomdm_requests_total{endpoint="checkin",status="403",type="TokenUpdate"}')" \
    2 "the 403s by type and status"
expect_eq "$PARSED" ok "the whole exposition parses with refusals"
# Every request so far came alone: none was being read beside another,
# so the writer held no commit back (--commit-delay), refusals and API
# calls included (a request that ends without a write stops counting).
expect_eq "$(metric 'picomdm_commit_delays_total{}')/$(metric 'picomdm_commit_delay_seconds_total{}')" \
    0/0 "requests one at a time: no commit held back"
if grep -q '^picomdm_commit_delays_total{} ' "$IT_DIR/metrics.flat" &&
    grep -q '^picomdm_commit_delay_seconds_total{} ' "$IT_DIR/metrics.flat"; then
	pass "the commit delay counters are shown"
else
	fail "the commit delay counters are shown" \
	    "$(grep commit_delay "$IT_DIR/metrics.flat")"
fi

# ---- the enrollment counters: a purge, and a store without them ----
# The gauges are two counters in meta that every write keeps
# (module/store_counts.c), not a count of the records at each scrape.
checkin "$(auth_plist "$udid" METRICS0001)" device1
checkin "$(token_plist "$udid" "$token")" device1
expect_status 200 "Authenticate and TokenUpdate again after the CheckOut"
scrape
expect_eq "$(metric 'picomdm_enrollments{state="enabled"}')/$(metric 'picomdm_enrollments{state="disabled"}')" \
    1/0 "re-enrolled: the disabled enrollment is enabled again"
# A refused request ends without a write (store_request_end after
# serve): ten refusals, each followed by a TokenUpdate, one at a time,
# hold no commit back either. (Sent one at a time they mostly reach the
# same worker, whose next request would end a count left behind; a
# leak would show only under concurrency.)
for ((i = 0; i < 10; i++)); do
	checkin "$(token_plist "$udid" "$token")" none
	[[ $STATUS == 400 ]] || break
	checkin "$(token_plist "$udid" "$token")" device1
	[[ $STATUS == 200 ]] || break
done
expect_status 200 "ten refusals, each followed by a TokenUpdate"
scrape
expect_eq "$(metric 'picomdm_commit_delays_total{}')" 0 \
    "  no commit held back after them"
# The same under concurrency: 256 refusals (a body that is no plist) over
# 16 connections at once (tests/loadgen) reach several workers, and every
# one must stop counting when it has answered; a count left behind by any
# of them would hold the next TokenUpdate's commit back.
refused=$IT_DIR/refused.body
printf 'not a property list\n' >"$refused"
"$PM_BUILD/tests/loadgen" --port "$IT_PORT" --tls \
    --cacert "$IT_CERTS/server-ca.pem" --servername localhost \
    --cert "$IT_CERTS/devices/device1.pem" \
    --key "$IT_CERTS/devices/device1.key" \
    --body "$refused" --path /mdm/checkin --method PUT \
    --content-type "$IT_CHECKIN_TYPE" --connections 16 --threads 2 \
    --requests 256 >"$IT_DIR/refusals.json" 2>"$IT_DIR/refusals.err" ||
    fail "loadgen: refusals at once" "$(head -c 300 "$IT_DIR/refusals.err")"
if grep -q '"status":{"400":256}' "$IT_DIR/refusals.json"; then
	pass "256 refusals at once, all 400"
else
	fail "256 refusals at once, all 400" "$(head -c 300 "$IT_DIR/refusals.json")"
fi
# A worker leaves the count just after its reply goes out: give the last
# ones that moment before the TokenUpdate.
sleep 0.3
checkin "$(token_plist "$udid" "$token")" device1
expect_status 200 "a TokenUpdate after them"
scrape
expect_eq "$(metric 'picomdm_commit_delays_total{}')" 0 \
    "  its commit is not held back"
ctl purge "$udid" --yes >/dev/null || fail "purge of the device"
scrape
expect_eq "$(metric 'picomdm_enrollments{state="enabled"}')/$(metric 'picomdm_enrollments{state="disabled"}')" \
    0/0 "purged beside the responder: the gauges follow"
# A store made before the counters: the fixture's raw dump (6 enrollments
# enabled, 1 disabled) loaded with mdb_load, so nothing of picomdm wrote
# it. Read-only, picomdmctl counts the records; the responder's open
# writes the counters once.
hexname() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
old_db=$IT_DIR/old-store
mkdir -p "$old_db"
mdb_load -f "$PM_ROOT/tests/data/store/store.raw" "$old_db" ||
    fail "mdb_load of the fixture"
expect_eq "$(mdb_dump -s meta "$old_db" | grep -c "$(hexname enrollments_)")" \
    0 "the fixture's store has no counters"
"$PM_BUILD/picomdmctl" --db "$old_db" stats --prometheus >"$IT_DIR/old.prom" ||
    fail "picomdmctl stats --prometheus of the old store"
parse_metrics "$IT_DIR/old.prom" 9
expect_eq "$(metric 'picomdm_enrollments{state="enabled"}')/$(metric 'picomdm_enrollments{state="disabled"}')" \
    6/1 "read-only, without counters: the records are counted"
it_stop_responder
saved_cmd=("${IT_RESPONDER_CMD[@]}")
IT_RESPONDER_CMD+=(--db "$old_db") # the last --db counts
it_start_responder
# The socket listens before the store is opened: a scrape answered
# means the open (and its counting) is done.
scrape
expect_eq "$(mdb_dump -s meta "$old_db" | grep -c "$(hexname enrollments_)")" \
    2 "the responder's open wrote the two counters"
expect_eq "$(metric 'picomdm_enrollments{state="enabled"}')/$(metric 'picomdm_enrollments{state="disabled"}')" \
    6/1 "  and /metrics reads them"
expect_exit 0 "check is clean after the count" \
    "$PM_BUILD/picomdmctl" --db "$old_db" check
it_stop_responder
IT_RESPONDER_CMD=("${saved_cmd[@]}")
it_start_responder

# ---- /healthz ----
put_raw /healthz -X GET
expect_status 200 "healthz without a key: 200"
expect_eq "$(cat "$BODY")" ok "healthz says ok"
put_raw /healthz -X POST --data-binary x
expect_status 405 "healthz refuses POST"
expect_eq "$(sed -n 's/^[Aa]llow: *//p' "$HEADERS" | tr -d '\r')" "GET, HEAD" \
    "  with Allow: GET, HEAD"

# ---- metrics_public = yes ----
printf 'metrics_public = yes\n' >"$IT_DIR/public.conf"
it_stop_responder
IT_RESPONDER_CMD+=(--config "$IT_DIR/public.conf")
it_start_responder
put_raw /api/v1/metrics -X GET
expect_status 200 "metrics_public = yes: metrics without the key"
put_raw /api/v1/metrics -X HEAD -I
expect_status 200 "metrics_public = yes: HEAD of the metrics without the key"
put_raw /api/v1/enrollments -X GET
expect_status 401 "metrics_public = yes: the rest of the API still wants it"

# ---- the map full and back ----
it_stop_responder
IT_RESPONDER_CMD+=(--map-size 1m --map-max 1m)
rm -rf "$IT_DB"
mkdir -p "$IT_DB"
it_start_responder
checkin "$(auth_plist "$udid" METRICS0001)" device1
expect_status 200 "Authenticate on a 1 MiB store"
checkin "$(token_plist "$udid" "$token")" device1
expect_status 200 "TokenUpdate on a 1 MiB store"
big() {
	local f
	f=$(it_file "big-$1.plist")
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
for ((i = 0; i < 40; i++)); do
	connect "$(big "$i")" device1
	[[ $STATUS == 200 ]] || break
done
expect_status 503 "reports until the map is full: 503"
put_raw /healthz -X GET
expect_status 503 "healthz: 503 on a full map"
expect_eq "$(cat "$BODY")" "store full: the map cannot grow (map_max)" \
    "healthz says why, in one line"
scrape
expect_eq "$(metric 'picomdm_store_writable{}')" 0 "metrics: store not writable"
expect_eq "$(metric 'picomdm_requests_total{endpoint="connect",status="503",type="Acknowledged"}')" \
    1 "metrics: the 503 counted"
expect_eq "$PARSED" ok "the whole exposition parses on a full map"
# Make room (picomdmctl writes beside the responder), then one write.
expect_exit 0 "picomdmctl prune --results-days 0 makes room" \
    ctl prune --results-days 0
checkin "$(token_plist "$udid" "$token")" device1
expect_status 200 "a TokenUpdate is stored again"
put_raw /healthz -X GET
expect_status 200 "healthz: 200 again once a write is stored"
expect_eq "$(cat "$BODY")" ok "healthz says ok again"

it_done
