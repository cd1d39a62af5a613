#!/usr/bin/env bash
#
# bench-webhook.sh - how fast the webhook outbox is delivered
# (module/webhook.c, README.md "Webhooks"): EVENTS command-report events
# of 200 enrollments written into a fresh store with tests/webhook-drain
# --fill, then delivered by webhook-drain --until-empty (webhook_pass, as
# picomdm-notify runs it) to tests/mock-webhook.py, with
# webhook_concurrency 1 and 8, against a receiver that answers at once and
# one that answers after 20 ms (a receiver across a network; a tenth of
# EVENTS there, at least 200, as its rate is the round trip's and the
# full count took 100 s a run one at a time). Each cell is filled and
# delivered RUNS times; the median is kept. Run by
# scripts/bench; prints one JSON object, a list of cells with events,
# delivery seconds, events per second and webhook-drain's CPU seconds.
#
# usage: tests/bench-webhook.sh BUILD EVENTS RUNS WORKDIR

set -euo pipefail

build=${1:?usage: bench-webhook.sh BUILD EVENTS RUNS WORKDIR}
n=${2:?}
runs=${3:?}
w=${4:?}
root=$(cd "$(dirname "$0")/.." && pwd)
drain=$build/tests/webhook-drain
PY=/usr/bin/python3
mkdir -p "$w"
cd "$w"

die() {
	echo "bench-webhook: $*" >&2
	exit 1
}
[[ -x $drain ]] || die "$drain not built"

mock_pid=
trap '[[ -z $mock_pid ]] || kill -TERM "$mock_pid" 2>/dev/null || true' EXIT
mock_start() { # DELAY_MS
	rm -f port
	printf '{"answers": [{"status": 200, "delay_ms": %s}]}\n' "$1" \
	    >script.json
	"$PY" "$root/tests/mock-webhook.py" --port 0 --port-file port \
	    --script script.json 2>>mock.err &
	mock_pid=$!
	for _ in $(seq 100); do
		[[ -s port ]] && return 0
		sleep 0.05
	done
	die "mock-webhook did not start"
}
mock_stop() {
	[[ -n $mock_pid ]] || return 0
	kill -TERM "$mock_pid" 2>/dev/null || true
	wait "$mock_pid" 2>/dev/null || true
	mock_pid=
}

# cell DELAY_MS CONCURRENCY EVENTS: one line "t0 t1 user system" per run.
cell() {
	local r t0 t1 u0 u1 n=$3
	mock_start "$1"
	for ((r = 0; r < runs; r++)); do
		rm -rf db
		mkdir db
		cat >conf <<CONF
webhook_url = http://127.0.0.1:$(cat port)/hook
webhook_secret = bench-secret
webhook_timeout = 10
webhook_concurrency = $2
nosync = yes
CONF
		"$drain" --db db --config conf --fill "$n" --enrollments 200 ||
		    die "fill failed"
		t0=$(date +%s.%N)
		/usr/bin/time -f '%U %S' -o cpu "$drain" --db db --config conf \
		    --until-empty 600 >out 2>>drain.err ||
		    die "delivery failed: $(cat out) $(tail -n 2 drain.err)"
		t1=$(date +%s.%N)
		[[ $(cat out) == "delivered $n waiting 0" ]] ||
		    die "delivered: $(cat out)"
		read -r u0 u1 <cpu
		echo "$t0 $t1 $u0 $u1"
	done
	mock_stop
}

{
	for d in 0 20; do
		m=$n
		((d == 0)) || m=$((n / 10 > 200 ? n / 10 : 200))
		((m <= n)) || m=$n
		for c in 1 8; do
			echo "cell $d $c $m"
			cell "$d" "$c" "$m"
		done
	done
} >runs.txt

"$PY" - "$n" runs.txt <<'PY'
import json, statistics, sys
n = int(sys.argv[1])
cells, cur = [], None
for line in open(sys.argv[2]):
    f = line.split()
    if f[0] == "cell":
        cur = {"delay_ms": int(f[1]), "concurrency": int(f[2]),
               "events": int(f[3]), "runs": []}
        cells.append(cur)
    else:
        t0, t1, u, s = map(float, f)
        cur["runs"].append((t1 - t0, u + s))
out = []
for c in cells:
    secs = statistics.median(r[0] for r in c["runs"])
    cpu = statistics.median(r[1] for r in c["runs"])
    out.append({"delay_ms": c["delay_ms"], "concurrency": c["concurrency"],
                "events": c["events"], "seconds": round(secs, 3),
                "events_per_s": round(c["events"] / secs),
                "cpu_s": round(cpu, 2)})
print(json.dumps({"events": n, "enrollments": 200, "cells": out}))
PY
