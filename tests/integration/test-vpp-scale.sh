#!/usr/bin/env bash
#
# test-vpp-scale.sh - picomdm-vpp sync at the scale issue 14 names,
# against tests/mock-vpp.py over TLS:
#
#   - 5,000 assets and 50,000 assignments over many pages are synced
#     exactly once: every page asked for once, and the store's count and
#     checksum of keys are the mock's (GET /mock/digest);
#   - a delta then picks up only the changes: one page, assignments added
#     and removed, and the store matches the mock again;
#   - a sync killed with SIGKILL mid-listing and run again ends with the
#     store of the uninterrupted sync, no page fetched twice;
#   - two syncs of one token started at once take turns (the token's
#     lock): never over the service's rate limit together.
#
# Kept well under the suite's time limit under ASan: the mock allows 100
# requests a second and pages of 500.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

VPP=$PM_BUILD/picomdm-vpp
CTL=$PM_BUILD/picomdmctl
IT_MAIN_PID=$BASHPID
IT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/picomdm-it.$IT_NAME.XXXXXX")
trap it_cleanup EXIT
NASSETS=5000
NASSIGN=50000
PAGE=500

[[ -x $VPP && -x $CTL ]] || it_abort "setup: picomdm-vpp or picomdmctl not built"

# shellcheck source-path=SCRIPTDIR source=lib-vpp.sh
. "$(dirname "$0")/lib-vpp.sh"
vpp_certs
TOKEN=$IT_DIR/good.vpptoken
vpp_mktoken "$TOKEN" "Scale Org" 2030-11-08T22:33:22+0000 U0NBTEU=
VPP_TOKEN=$TOKEN
start_mock --assets "$NASSETS" --assignments "$NASSIGN" --users 100 \
    --page-size "$PAGE" --max-rps 100
URL=https://127.0.0.1:$MOCK_PORT/mdm/v2/service/config

# sync DB [ARG...]: picomdm-vpp sync into DB; RC, errors in $IT_DIR/err.
sync() {
	local db=$1
	shift
	RC=0
	"$VPP" --db "$db" --ca "$C/ca.pem" --url "$URL" --rps 100 "$@" sync \
	    >"$IT_DIR/out" 2>"$IT_DIR/err" || RC=$?
}
# mock_digest KIND: "count sha256" of what the mock lists in full.
mock_digest() {
	curl -sS --fail --cacert "$C/ca.pem" \
	    "https://127.0.0.1:$MOCK_PORT/mock/digest?kind=$1" |
	    jq -r '"\(.count) \(.sha256)"'
}
# store_digest DB KIND: the same over the store's records.
store_digest() {
	local f
	case $2 in
	assets) f='[.adam_id, .pricing_param]' ;;
	assignments) f='[.adam_id, (.serial_number // .client_user_id)]' ;;
	esac
	"$VPP" --db "$1" "$2" | jq -r "$f | join(\"|\")" | LC_ALL=C sort >"$IT_DIR/keys"
	printf '%s %s\n' "$(wc -l <"$IT_DIR/keys")" \
	    "$(sha256sum <"$IT_DIR/keys" | cut -d' ' -f1)"
}
# pages PATH: the page requests to PATH since the log was emptied, and
# how many distinct.
pages() {
	jq -r --arg p "$1" 'select(.path == $p and .status == 200) | .query' \
	    "$MOCK_LOG" >"$IT_DIR/q"
	printf '%s/%s\n' "$(wc -l <"$IT_DIR/q")" "$(sort -u "$IT_DIR/q" | wc -l)"
}

# --- the whole listing, exactly once ---------------------------------------
DB=$IT_DIR/db
"$VPP" --db "$DB" token import big "$TOKEN" >/dev/null 2>&1 ||
    it_abort "setup: token import"
t0=$(date +%s.%N)
sync "$DB"
t1=$(date +%s.%N)
expect_eq "$RC" 0 "scale: sync exit 0"
note "scale: $NASSETS assets and $NASSIGN assignments synced in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
expect_eq "$(pages /mock-v2/assets/list)" "$((NASSETS / PAGE))/$((NASSETS / PAGE))" \
    "scale: every asset page asked for once"
expect_eq "$(pages /mock-v2/assignments/list)" "$((NASSIGN / PAGE))/$((NASSIGN / PAGE))" \
    "scale: every assignment page asked for once ($((NASSIGN / PAGE)) pages)"
want=$(mock_digest assets)
[[ $want == "$NASSETS "* ]] || it_abort "setup: the mock's asset digest" "$want"
expect_eq "$(store_digest "$DB" assets)" "$want" \
    "scale: $NASSETS assets, keys' checksum the mock's"
want=$(mock_digest assignments)
[[ $want == "$NASSIGN "* ]] || it_abort "setup: the mock's assignment digest" "$want"
expect_eq "$(store_digest "$DB" assignments)" "$want" \
    "scale: $NASSIGN assignments, keys' checksum the mock's"
"$CTL" --db "$DB" check >"$IT_DIR/check" 2>&1 &&
    pass "scale: the store checks clean" ||
    fail "scale: the store checks clean" "$(head -3 "$IT_DIR/check")"

# --- a delta: only the changes ---------------------------------------------
add='' rm=''
for ((i = 0; i < 30; i++)); do
	add+="${add:+,}{\"adamId\":\"$((100000000 + i))\",\"pricingParam\":\"STDQ\",\"serialNumber\":\"C02SCALE$(printf %04d "$i")\"}"
done
for ((i = 0; i < 20; i++)); do
	n=$((i * 2477))
	rm+="${rm:+,}{\"adamId\":\"$((100000000 + n % NASSETS))\",\"pricingParam\":\"STDQ\",\"serialNumber\":\"C02MOCK$(printf %05d "$n")\"}"
done
control /mock/change "{\"assignments\":[$add],\"remove\":{\"assignments\":[$rm]}}"
cp -r "$DB" "$IT_DIR/before-delta"
: >"$MOCK_LOG"
sync "$DB"
expect_eq "$RC:$(pages /mock-v2/assignments/list)" "0:1/1" \
    "delta: one assignment page, since the last version"
grep -q 'assignments: 30 changed since v1, 20 removed' "$IT_DIR/err" &&
    pass "delta: 30 added and 20 removed, as reported" ||
    fail "delta: 30 added and 20 removed, as reported" "$(cat "$IT_DIR/err")"
expect_eq "$(store_digest "$DB" assignments)" "$(mock_digest assignments)" \
    "delta: $((NASSIGN + 10)) assignments, keys' checksum the mock's"
# Only the changes were written: every other assignment is as it was.
strip() { "$CTL" --db "$1" dump | grep '"db":"vpp_assignment"' |
    jq -c 'del(.value.synced_at)' | LC_ALL=C sort; }
changed=$(LC_ALL=C comm -3 <(strip "$IT_DIR/before-delta") <(strip "$DB") | wc -l)
expect_eq "$changed" 50 "delta: the store differs in the 50 changed assignments only"

# --- kill -9 mid-sync, run again: the same result ----------------------------
DB2=$IT_DIR/db2
"$VPP" --db "$DB2" token import big "$TOKEN" >/dev/null 2>&1
: >"$MOCK_LOG"
"$VPP" --db "$DB2" --ca "$C/ca.pem" --url "$URL" --rps 40 sync \
    >/dev/null 2>&1 &
KPID=$!
# Killed once a fifth of the assignment pages are in.
for ((i = 0; i < 600; i++)); do
	(($(grep -c '"/mock-v2/assignments/list"' "$MOCK_LOG") >= NASSIGN / PAGE / 5)) && break
	kill -0 "$KPID" 2>/dev/null || break
	sleep 0.05
done
{ kill -KILL "$KPID" && wait "$KPID"; } 2>/dev/null || true
half=$("$VPP" --db "$DB2" assignments | wc -l)
((half > 0 && half < NASSIGN)) &&
    pass "kill -9: killed mid-listing ($half of $((NASSIGN + 10)))" ||
    fail "kill -9: killed mid-listing ($half of $((NASSIGN + 10)))"
sync "$DB2"
grep -q '(resumed)' "$IT_DIR/err" && pass "kill -9: the rerun resumes at its cursor" ||
    fail "kill -9: the rerun resumes at its cursor" "$(cat "$IT_DIR/err")"
expect_eq "$RC:$(store_digest "$DB2" assignments)" "0:$(mock_digest assignments)" \
    "kill -9: after the rerun, the assignments are the mock's"
expect_eq "$(store_digest "$DB2" assets)" "$(mock_digest assets)" \
    "kill -9: after the rerun, the assets are the mock's"
allv() { "$CTL" --db "$1" dump | grep '"db":"vpp_' |
    jq -c 'del(.value.synced_at, .value.imported_at)' | LC_ALL=C sort; }
if diff <(allv "$DB") <(allv "$DB2") >/dev/null; then
	pass "kill -9: the store is the uninterrupted sync's"
else
	fail "kill -9: the store is the uninterrupted sync's"
fi
# Every page fetched, and again at most the one in flight at the kill
# (asked for, never written: the rerun asks again).
p=$(pages /mock-v2/assignments/list)
np=$(((NASSIGN + 10 + PAGE - 1) / PAGE))
{ ((${p#*/} == np)) && ((${p%/*} - ${p#*/} <= 1)); } &&
    pass "kill -9: all $np assignment pages over both runs, none twice but the one in flight ($p)" ||
    fail "kill -9: all $np assignment pages over both runs, none twice but the one in flight ($p)"
expect_eq "$(curl -sS --cacert "$C/ca.pem" "https://127.0.0.1:$MOCK_PORT/mock/stats" |
    jq -r .over_rate)" 0 "rate: never over the service's maxRequestPerSecond"

# --- two runs on one token at once: the second waits for the first ---------
# Each paces itself to the service's limit; together, at once, they would
# be at twice it (the mock's 429s, counted as over_rate).
DB3=$IT_DIR/db3
"$VPP" --db "$DB3" token import big "$TOKEN" >/dev/null 2>&1
control /mock/rate-reset '{}'
for i in 1 2; do
	"$VPP" --db "$DB3" --ca "$C/ca.pem" --url "$URL" --rps 100 sync \
	    >/dev/null 2>"$IT_DIR/err.$i" &
	eval "P$i=\$!"
done
R1=0 R2=0
wait "$P1" || R1=$?
wait "$P2" || R2=$?
expect_eq "$R1:$R2" "0:0" "two at once: both syncs succeed"
nw=$(cat "$IT_DIR/err.1" "$IT_DIR/err.2" |
    grep -c 'big: waiting for another picomdm-vpp run on this token' || true)
expect_eq "$nw" 1 "two at once: one of them waited for the other, and said so"
expect_eq "$(stats over_rate)" 0 "two at once: never over the service's maxRequestPerSecond"
expect_eq "$(store_digest "$DB3" assignments)" "$(mock_digest assignments)" \
    "two at once: the assignments are the mock's"

it_done
