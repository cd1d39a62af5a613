#!/usr/bin/env bash
#
# test-crash.sh - durability under kill -9. Several devices send
# TokenUpdates, each with a fresh push token, through real nginx and TLS
# (tests/loadgen, one connection per device, so each device's requests
# are in order) while the responder is killed with SIGKILL (every
# fourth time stopped with SIGTERM) at random moments and restarted, many
# times. loadgen records every request: the
# device, the status it got (0 for a transport error, -1 when the run
# ended before the answer) and the token it carried.
#
# Afterwards, for every device, the stored token (compared by SHA-256
# through picomdmctl show) must be the token of its last request answered
# 200 or of a request sent after it (one the responder may have committed
# before it died, unanswered); its update tally must count at least every
# 200; picomdmctl check must find nothing wrong; and the responder must
# serve again.
#
# SIGKILL ends the process, not the machine: what the responder wrote
# before dying stays in the page cache, so this checks that no answer
# leaves before its commit and that a commit is all or nothing, not that
# the commit reached the disk (--nosync would pass here). That the disk
# is reached is seen through the syncs themselves: tests/unit/test-store.c
# counts LMDB's fdatasync calls per batch and before each completion, and
# test-promises.sh preloads syncshim.c into the responder (every reply
# after its sync, concurrent operations sharing one).
#
# Environment: PICOMDM_CRASH_KILLS (default 20), PICOMDM_CRASH_DEVICES
# (default 6), PICOMDM_CRASH_SECS (how long the load runs; default the
# number of kills + 8), PICOMDM_CRASH_SUMMARY (a file to get one JSON line
# with the counts: scripts/bench runs this test with 100 stops).

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

kills=${PICOMDM_CRASH_KILLS:-20}
ndev=${PICOMDM_CRASH_DEVICES:-6}
LG=$PM_BUILD/tests/loadgen

it_start
[[ -x $LG ]] || it_abort "setup: $LG not built"

names=()
for ((i = 1; i <= ndev; i++)); do
	names+=("crash$i")
done
"$PM_ROOT/scripts/mkcerts" "$IT_CERTS" "${names[@]}" ||
    it_abort "setup: scripts/mkcerts"

# Enrol every device (Authenticate), then write its TokenUpdate template.
devs=$(it_file devices)
: >"$devs"
for ((i = 0; i < ndev; i++)); do
	udid=$(printf '00008120-C0A5%012d' "$i")
	checkin "$(auth_plist "$udid" "CRASH$i")" "${names[$i]}"
	[[ $STATUS == 200 ]] ||
	    it_abort "setup: Authenticate of ${names[$i]}" "status $STATUS"
	tmpl=$(it_file "token-$i.plist")
	plist_write "$tmpl" AwaitingConfiguration:bool=false \
	    MessageType=TokenUpdate PushMagic=8B0E2D3C-7A61-4F59-9E1C-4D2B6A8F0C13 \
	    Token:data=@TOKEN@ Topic="$IT_TOPIC" UDID="$udid"
	printf '%s %s %s\n' "$tmpl" "$IT_CERTS/devices/${names[$i]}.pem" \
	    "$IT_CERTS/devices/${names[$i]}.key" >>"$devs"
done
note "setup: $ndev devices authenticated"

# The load: one connection per device, for as long as the kills take.
rec=$(it_file record)
secs=${PICOMDM_CRASH_SECS:-$((kills + 8))}
"$LG" --port "$IT_PORT" --tls --cacert "$IT_CERTS/server-ca.pem" \
    --devices "$devs" --connections "$ndev" --duration "$secs" \
    --timeout 10000 --record "$rec" >"$(it_file loadgen.json)" \
    2>"$(it_file loadgen.err)" &
lgpid=$!

# Kill at random moments (0.2 to 1.2 s apart), restart at once. Every
# fourth time it is SIGTERM instead: the responder then stops accepting,
# commits and answers what it holds, and must be gone within 10 s.
sleep 1
restarts=0
terms=0
for ((k = 0; k < kills; k++)); do
	sleep "0.$((RANDOM % 10 + 2))"
	pid=$(pm_pid_is "$IT_DIR/fcgi.pid" picomdm-fcgi) || {
		fail "responder running before kill $((k + 1))"
		break
	}
	if ((k % 4 == 3)); then
		kill -TERM "$pid"
		pm_wait_gone "$pid" 10 ||
		    it_abort "responder $pid still running 10 s after SIGTERM"
		terms=$((terms + 1))
	else
		kill -KILL "$pid"
		pm_wait_gone "$pid" 5 || it_abort "responder $pid survived SIGKILL"
	fi
	rm -f "$IT_SOCK"
	it_start_responder
	restarts=$((restarts + 1))
done
expect_eq "$restarts" "$kills" "responder stopped under load and restarted $kills times ($terms of them by SIGTERM, the rest by SIGKILL)"

rc=0
wait "$lgpid" || rc=$?
expect_eq "$rc" 0 "load generator finished ($(head -c 200 "$(it_file loadgen.err)"))"
summary=$(cat "$(it_file loadgen.json)")
echo "# loadgen: $summary"

# The verdict per device, from the record and the store.
nok=0
for ((i = 0; i < ndev; i++)); do
	udid=$(printf '00008120-C0A5%012d' "$i")
	show=$(ctl show "$udid" 2>&1) || {
		fail "device $i: picomdmctl show" "$show"
		continue
	}
	stored=$(jq -r '.enrollments[0].token.sha256' <<<"$show")
	tally=$(jq -r '.enrollments[0].token_update_tally' <<<"$show")
	# Tokens of the last 200 and of everything this device sent after.
	verdict=$(awk -v d="$i" '
	    $1 == d { n++; st[n] = $2; tok[n] = $3; if ($2 == 200) { last = n; oks++ } }
	    END {
		if (last == 0) { print "none"; exit }
		printf "%d", oks
		for (j = last; j <= n; j++) printf " %s", tok[j]
		print ""
	    }' "$rec")
	if [[ $verdict == none ]]; then
		fail "device $i: at least one TokenUpdate answered 200"
		continue
	fi
	read -r oks cands <<<"$verdict"
	nok=$((nok + oks))
	found=0
	for t in $cands; do
		if [[ $(sha256_b64 "$t") == "$stored" ]]; then
			found=1
			break
		fi
	done
	if ((found)); then
		pass "device $i: stored token is its last acknowledged one or later ($oks acknowledged)"
	else
		fail "device $i: stored token is its last acknowledged one or later" \
		    "stored sha256 $stored, $(wc -w <<<"$cands") candidates"
	fi
	if [[ $tally =~ ^[0-9]+$ ]] && ((tally >= oks)); then
		pass "device $i: update tally $tally counts every acknowledged TokenUpdate"
	else
		fail "device $i: update tally counts every acknowledged TokenUpdate" \
		    "tally $tally, acknowledged $oks"
	fi
done
if ((nok >= ndev * 5)); then
	pass "load got through between kills ($nok TokenUpdates answered 200)"
else
	fail "load got through between kills" "only $nok answered 200"
fi

checked=0
if out=$(ctl check 2>&1); then
	pass "picomdmctl check finds nothing wrong"
	checked=1
else
	fail "picomdmctl check finds nothing wrong" "$(head -c 300 <<<"$out")"
fi

# And it serves again.
token=$(openssl rand -base64 32)
checkin "$(token_plist "$(printf '00008120-C0A5%012d' 0)" "$token")" crash1
expect_status 200 "responder serves a TokenUpdate after the kills"
expect_jq "$(ctlok show "$(printf '00008120-C0A5%012d' 0)")" \
    '.enrollments[0].token.sha256' "$(sha256_b64 "$token")" \
    "that token is stored"

if [[ -n ${PICOMDM_CRASH_SUMMARY-} ]]; then
	printf '{"stops":%d,"sigterm":%d,"devices":%d,"seconds":%d,"acknowledged":%d,"sent":%d,"check_clean":%d,"failed_cases":%d}\n' \
	    "$restarts" "$terms" "$ndev" "$secs" "$nok" "$(wc -l <"$rec")" \
	    "$checked" "$IT_FAIL" >"$PICOMDM_CRASH_SUMMARY"
fi

it_done
