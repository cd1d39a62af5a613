#!/usr/bin/env bash
#
# test-keepalive.sh - nginx keeps FastCGI connections to the responder
# ("keepalive 4;" in the upstream, "fastcgi_keep_conn on;"): every request
# on a kept connection is answered at once, on device and API paths alike.
#
# 1. One request at a time (one nginx worker, so each reuses the kept
#    connection): Authenticate, TokenUpdate, connect, an API call, a
#    refusal whose body the responder never reads (405) and one over
#    its cap (413), each answered within 5 s (a request left unread on
#    a kept connection waits for nginx's 60 s fastcgi_read_timeout and
#    gets 504).
# 2. 64 concurrent connections for a few seconds, mixing check-ins
#    (TokenUpdate), connects (a device working through its queue) and API
#    calls (enqueues): every request 200, none timed out, p99 under a
#    generous bound, and no 504 or upstream error in nginx's logs.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"

LG=$PM_BUILD/tests/loadgen
ndev=8
secs=${PICOMDM_KEEPALIVE_SECONDS:-6}
p99_max_ms=${PICOMDM_KEEPALIVE_P99_MS:-3000}

IT_NGINX_KEEPALIVE=4
# A check-in cap below nginx's 64k, so that a body between the two gets
# the responder's own 413, answered before the body is read.
IT_RESPONDER_ARGS=(--workers 4 --log-level info --checkin-max 16k)
it_start
[[ -x $LG ]] || it_abort "setup: $LG not built"
grep -q 'fastcgi_keep_conn on;' "$IT_DIR/nginx/nginx.conf" ||
    it_abort "setup: nginx.conf without fastcgi_keep_conn"

names=()
for ((i = 1; i <= ndev; i++)); do
	names+=("ka$i")
done
"$PM_ROOT/scripts/mkcerts" "$IT_CERTS" "${names[@]}" kafcgi ||
    it_abort "setup: scripts/mkcerts"
udid_of() {
	printf '00008120-0E5A%012d' "$1"
}

# timed WHAT CMD...: run a request helper, then check it was 200 and
# answered within 5 s.
timed() {
	local what=$1 t0 ms
	shift
	t0=$(date +%s%N)
	"$@"
	ms=$((($(date +%s%N) - t0) / 1000000))
	if [[ $STATUS == 200 ]] && ((ms < 5000)); then
		pass "$what: 200 in $ms ms"
	else
		fail "$what" "status $STATUS after $ms ms$(it_body_hint)"
	fi
}

# ---- 1. one request at a time ----
u=$(udid_of 0)
timed "Authenticate" checkin "$(auth_plist "$u" KEEPALIVE00)" ka1
timed "TokenUpdate on the kept connection" \
    checkin "$(token_plist "$u" "$(openssl rand -base64 32)")" ka1
# The responder now holds the connection open for nginx's next request.
kept=$(ss -xH state established 2>/dev/null | grep -cF "$IT_SOCK" || true)
if ((kept >= 1)); then
	pass "nginx keeps its connection to the responder open ($kept)"
else
	fail "nginx keeps its connection to the responder open" \
	    "no established connection on $IT_SOCK"
fi
idle=$(it_file idle0.plist)
plist_write "$idle" Status=Idle UDID="$u"
timed "connect Idle on the kept connection" connect "$idle" ka1
timed "API GET on the kept connection" api GET /api/v1/enrollments
# A refusal answered before the body is read (405): the body left on the
# connection must not be taken for the next request.
put_raw /mdm/checkin -X GET -H "Content-Type: $IT_CHECKIN_TYPE" \
    --data-binary "@$idle" --cert "$IT_CERTS/devices/ka1.pem" \
    --key "$IT_CERTS/devices/ka1.key"
expect_status 405 "GET with a body on a device endpoint refused"
# Over the responder's cap: 413 at once, the same way (the 40 KB body is
# read and dropped after the reply, not before it).
big=$(it_file big.plist)
head -c 40000 /dev/zero | tr '\0' a >"$big"
t0=$(date +%s%N)
put_raw /mdm/checkin -X PUT -H "Content-Type: $IT_CHECKIN_TYPE" \
    --data-binary "@$big" --cert "$IT_CERTS/devices/ka1.pem" \
    --key "$IT_CERTS/devices/ka1.key"
ms=$((($(date +%s%N) - t0) / 1000000))
expect_status 413 "a body over the responder's cap refused"
if ((ms < 5000)); then
	pass "the 413 answered in $ms ms"
else
	fail "the 413 answered within 5 s" "$ms ms"
fi
for k in 1 2 3; do
	timed "TokenUpdate $k after the refusal" \
	    checkin "$(token_plist "$u" "$(openssl rand -base64 32)")" ka1
done

# ---- 2. 64 connections mixing check-ins, connects and API calls ----
tok=$(it_file token.devices)
ack=$(it_file ack.devices)
: >"$tok"
: >"$ack"
ids=()
qr='<dict><key>DeviceName</key><string>KA iPhone</string><key>OSVersion</key><string>17.5.1</string></dict>'
for ((i = 0; i < ndev; i++)); do
	u=$(udid_of "$i")
	c="$IT_CERTS/devices/${names[$i]}.pem $IT_CERTS/devices/${names[$i]}.key"
	checkin "$(auth_plist "$u" "KEEPALIVE$i")" "${names[$i]}"
	[[ $STATUS == 200 ]] || it_abort "setup: Authenticate $i" "$STATUS"
	t=$(token_plist "$u" "$(openssl rand -base64 32)")
	checkin "$t" "${names[$i]}"
	[[ $STATUS == 200 ]] || it_abort "setup: TokenUpdate $i" "$STATUS"
	echo "$t $c" >>"$tok"
	plist_write "$(it_file "idle-$i.plist")" Status=Idle UDID="$u"
	plist_write "$(it_file "ack-$i.plist")" CommandUUID=@CommandUUID@ \
	    QueryResponses:raw="$qr" Status=Acknowledged UDID="$u"
	echo "$(it_file "ack-$i.plist") $c $(it_file "idle-$i.plist")" >>"$ack"
	ids+=("$u")
done
idlist=$(IFS=,; echo "${ids[*]}")
cmd=$(it_file cmd.json)
printf '{"request_type":"DeviceInformation","Queries":["OSVersion","DeviceName"]}\n' >"$cmd"
tls=(--port "$IT_PORT" --tls --cacert "$IT_CERTS/server-ca.pem"
    --timeout 10000)

"$LG" "${tls[@]}" --devices "$tok" --path /mdm/checkin \
    --content-type "$IT_CHECKIN_TYPE" --connections 24 --duration "$secs" \
    >"$(it_file lg-checkin.json)" 2>"$(it_file lg-checkin.err)" &
p1=$!
"$LG" "${tls[@]}" --devices "$ack" --chain --path /mdm/connect \
    --content-type "$IT_CONNECT_TYPE" --connections 24 --duration "$secs" \
    >"$(it_file lg-connect.json)" 2>"$(it_file lg-connect.err)" &
p2=$!
"$LG" "${tls[@]}" --method POST --path "/api/v1/enqueue/$idlist" \
    --content-type application/json \
    --header "Authorization: Bearer $(cat "$IT_DIR/api.key")" \
    --body "$cmd" --cert "$IT_CERTS/devices/ka1.pem" \
    --key "$IT_CERTS/devices/ka1.key" --connections 16 --duration "$secs" \
    >"$(it_file lg-api.json)" 2>"$(it_file lg-api.err)" &
p3=$!

for part in checkin:$p1 connect:$p2 api:$p3; do
	name=${part%%:*}
	rc=0
	wait "${part#*:}" || rc=$?
	out=$(cat "$(it_file "lg-$name.json")")
	echo "# loadgen $name: $out"
	expect_eq "$rc" 0 "$name load finished ($(head -c 200 "$(it_file "lg-$name.err")"))"
	expect_eq "$(jq -c '.status | keys' <<<"$out" 2>/dev/null)" '["200"]' \
	    "$name: every request 200"
	expect_eq "$(jq '[.errors[]] | add' <<<"$out" 2>/dev/null)" 0 \
	    "$name: no request timed out or failed"
	n=$(jq '.requests' <<<"$out" 2>/dev/null) || n=
	[[ -n $n ]] || n=0
	if ((n >= 20)); then
		pass "$name: $n requests answered"
	else
		fail "$name: requests answered" "$n"
	fi
	p99=$(jq '.p99_ms | floor' <<<"$out" 2>/dev/null) || p99=
	[[ -n $p99 ]] || p99=999999
	if ((p99 < p99_max_ms)); then
		pass "$name: p99 $p99 ms (bound $p99_max_ms ms)"
	else
		fail "$name: p99 under $p99_max_ms ms" "$p99 ms"
	fi
done
acks=$(jq '.requests - .chain_empty' <"$(it_file lg-connect.json)")
if ((acks > 0)); then
	pass "connects acknowledged $acks commands enqueued meanwhile"
else
	fail "connects acknowledged commands enqueued meanwhile" "$acks"
fi

n504=$(grep -cE '" (502|503|504) ' "$IT_DIR/nginx/access.log" || true)
expect_eq "$n504" 0 "no 502, 503 or 504 in nginx's access log"
upstream_err=$(grep -E 'upstream (timed out|prematurely closed)|recv\(\) failed|connect\(\) .*failed' \
    "$IT_DIR/nginx/error.log" | head -n 2 || true)
expect_eq "$upstream_err" "" "no upstream error in nginx's error log"
expect_exit 0 "picomdmctl check is clean" ctl check

# ---- 3. FastCGI directly, over a unix socket and over TCP ----
# tests/integration/fcgi-keepconn.py: kept requests through the writer
# and the completion thread, an unread body, the close after a request
# that is not kept.
u=$(udid_of 90)
auth=$(auth_plist "$u" KEEPALIVE90)
tokf=$(token_plist "$u" "$(openssl rand -base64 32)")
out=$(/usr/bin/python3 "$IT_LIB_DIR/fcgi-keepconn.py" "$IT_SOCK" \
    "$IT_CERTS/devices/kafcgi.pem" "$auth" "$tokf" 2>&1) || true
echo "$out" | sed 's/^/# unix: /'
expect_eq "$(grep -c '^not ok' <<<"$out")/$(grep -c '^ok' <<<"$out")" 0/12 \
    "FastCGI with FCGI_KEEP_CONN on the unix socket: 12 checks"
tport=$(free_ports 1)
tdb=$IT_DIR/db-tcp
mkdir -p "$tdb"
start_responder "$IT_DIR/fcgi-tcp.pid" "$IT_DIR/fcgi-tcp.log" \
    "$PM_BUILD/picomdm-fcgi" --db "$tdb" --socket "127.0.0.1:$tport" \
    --device-ca "$IT_CERTS/ca.pem" --workers 2 --log-level info
IT_PIDS+=("$(head -n 1 "$IT_DIR/fcgi-tcp.pid")")
for _ in $(seq 50); do
	(: </dev/tcp/127.0.0.1/"$tport") 2>/dev/null && break
	sleep 0.1
done
out=$(/usr/bin/python3 "$IT_LIB_DIR/fcgi-keepconn.py" "127.0.0.1:$tport" \
    "$IT_CERTS/devices/kafcgi.pem" "$auth" "$tokf" 2>&1) || true
echo "$out" | sed 's/^/# tcp: /'
expect_eq "$(grep -c '^not ok' <<<"$out")/$(grep -c '^ok' <<<"$out")" 0/12 \
    "FastCGI with FCGI_KEEP_CONN over TCP: 12 checks"
stop_responder "$IT_DIR/fcgi-tcp.pid" picomdm-fcgi

it_done
