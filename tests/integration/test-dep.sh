#!/usr/bin/env bash
# "COND && pass || fail" is safe here (pass never fails); cleanup is the
# EXIT trap.
# shellcheck disable=SC2015,SC2317
#
# test-dep.sh - picomdm-dep against tests/mock-dep.py, a local HTTPS
# stand-in for Apple's ADE service that checks the OAuth signature and
# session header like Apple and records every request:
#
#   - token new writes a certificate and a 0600 key; a server token made
#     here with `openssl smime -encrypt` to that certificate decrypts
#     (expiry shown, no secret printed); one encrypted to another
#     certificate and an expired one are refused and write nothing;
#   - a token file readable by others is refused;
#   - account: GET /session signed (the mock verifies HMAC-SHA1), the
#     session header, User-Agent and X-Server-Protocol-Version on every
#     call;
#   - devices: a full fetch over several pages, each device exactly once,
#     with the session the mock rotates adopted on the next call; then
#     sync deltas (added/modified/deleted) from the cursor file, the
#     finished fetch cursor answered EXHAUSTED_CURSOR and followed by
#     sync;
#   - expired session (401) and a restarted service (403 FORBIDDEN):
#     authenticated again once and the call replayed;
#   - T_C_NOT_SIGNED and ACCESS_DENIED (on /session and on a data call):
#     reported, exit 3, not retried;
#   - 429 and 503 with Retry-After: waited for, then retried; a wait
#     beyond --max-wait is not attempted;
#   - EXPIRED_CURSOR (mock clock moved 8 days) and INVALID_CURSOR: a
#     full fetch again;
#   - a fetch interrupted by a malformed page resumes from the cursor
#     file, every device printed once over both runs;
#   - profile define/show/assign (batches of 1,000) and device details;
#     malformed JSON; wrong credentials; an untrusted TLS certificate;
#   - 10,000 devices over 10 pages, each exactly once.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

BUILD=${PICOMDM_BUILD:-$PM_ROOT/build}
DEP=$BUILD/picomdm-dep
MOCK=$PM_ROOT/tests/mock-dep.py
[[ -x $DEP ]] || it_abort "no $DEP (build first)"

T=$(mktemp -d "${TMPDIR:-/tmp}/test-dep.XXXXXX")
MOCK_PID=
cleanup() {
	local rc=$?
	if [[ -n $MOCK_PID ]] && kill -0 "$MOCK_PID" 2>/dev/null; then
		kill -TERM "$MOCK_PID" 2>/dev/null || true
		wait "$MOCK_PID" 2>/dev/null || true
	fi
	if ((IT_FAIL > 0 || rc != 0)) || [[ -n ${PICOMDM_IT_KEEP-} ]]; then
		echo "# $IT_NAME: kept $T (mock.log, requests.jsonl)"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
cd "$T"

# --- tokens ---------------------------------------------------------------

"$DEP" token new "picomdm test" -o cert.pem --key-out key.pem >new.out
expect_eq "$(openssl x509 -in cert.pem -noout -subject)" \
    "subject=CN = picomdm test" "token new: certificate subject"
expect_eq "$(stat -c %a key.pem)" 600 "token new: key file mode 0600"
if openssl x509 -in cert.pem -noout -ext keyUsage |
    grep -q "Digital Signature, Key Encipherment"; then
	pass "token new: key usage digitalSignature, keyEncipherment"
else
	fail "token new: key usage"
fi
expect_exit 1 "token new: an existing file is not overwritten" \
    "$DEP" token new again -o cert.pem --key-out key2.pem
[[ ! -e key2.pem ]] && pass "token new: nothing written on refusal" ||
	fail "token new: nothing written on refusal"
"$DEP" token new "other server" -o other-cert.pem --key-out other-key.pem \
    >/dev/null

rnd() { openssl rand -hex 24; }
CK=CK_$(rnd) CS=CS_$(rnd) AT=AT_$(rnd) AS=AS_$(rnd)
expiry=$(date -u -d '+200 days' +%Y-%m-%dT%H:%M:%SZ)
creds() { # creds EXPIRY
	printf '{"consumer_key":"%s","consumer_secret":"%s","access_token":"%s","access_secret":"%s","access_token_expiry":"%s"}' \
	    "$CK" "$CS" "$AT" "$AS" "$1"
}
creds "$expiry" >creds.json
# What Apple sends: an S/MIME envelope of a MIME text part holding the
# JSON between BEGIN/END MESSAGE lines, wrapped.
mkp7m() { # mkp7m JSONFILE CERT OUT
	{
		printf 'Content-Type: text/plain;charset=UTF-8\r\n'
		printf 'Content-Transfer-Encoding: 7bit\r\n\r\n'
		printf -- '-----BEGIN MESSAGE-----\r\n'
		{ fold -w 76 "$1"; echo; } | sed 's/$/\r/'
		printf -- '-----END MESSAGE-----\r\n'
	} >"$3.plain"
	openssl smime -encrypt -aes256 -in "$3.plain" -out "$3" "$2"
	rm -f "$3.plain"
}
mkp7m creds.json cert.pem token.p7m
mkp7m creds.json other-cert.pem other.p7m
creds "2020-01-01T00:00:00Z" >expired.json
mkp7m expired.json cert.pem expired.p7m

rc=0
"$DEP" token decrypt token.p7m --key key.pem -o token.json >dec.out \
    2>dec.err || rc=$?
expect_eq "$rc" 0 "token decrypt: accepted"
expect_eq "$(cat dec.out)" "token token.json
expiry $expiry" "token decrypt: prints the file and the expiry only"
if grep -q -e "$CS" -e "$AS" -e "$AT" -e "$CK" dec.out dec.err; then
	fail "token decrypt: no secret printed"
else
	pass "token decrypt: no secret printed"
fi
expect_eq "$(stat -c %a token.json)" 600 "token decrypt: token file 0600"
expect_eq "$(jq -S -c . token.json)" "$(jq -S -c . creds.json)" \
    "token decrypt: the four credentials and the expiry"

rc=0
"$DEP" token decrypt other.p7m --key key.pem -o wrong.json >/dev/null \
    2>wrong.err || rc=$?
expect_eq "$rc" 1 "token decrypt: another server's token refused"
grep -q "encrypted to another certificate" wrong.err &&
    pass "token decrypt: says it is for another certificate" ||
	fail "token decrypt: wrong-key message" "$(cat wrong.err)"
[[ ! -e wrong.json ]] && pass "token decrypt: nothing written (wrong key)" ||
	fail "token decrypt: nothing written (wrong key)"
rc=0
"$DEP" token decrypt expired.p7m --key key.pem -o exp.json >/dev/null \
    2>exp.err || rc=$?
expect_eq "$rc" 1 "token decrypt: expired token refused"
grep -q "expired on 2020-01-01T00:00:00Z" exp.err &&
    pass "token decrypt: says when it expired" ||
	fail "token decrypt: expired message" "$(cat exp.err)"
[[ ! -e exp.json ]] && pass "token decrypt: nothing written (expired)" ||
	fail "token decrypt: nothing written (expired)"
creds "$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)" >soon.json
mkp7m soon.json cert.pem soon.p7m
rc=0
"$DEP" token decrypt soon.p7m --key key.pem >/dev/null 2>soon.err || rc=$?
expect_eq "$rc" 0 "token decrypt: a token expiring in 10 days is accepted"
grep -q "warning: the token expires in [0-9]* days" soon.err &&
    pass "token decrypt: warns 30 days ahead" ||
	fail "token decrypt: warns 30 days ahead" "$(cat soon.err)"
grep -q warning dec.err && fail "token decrypt: no warning 200 days ahead" ||
	pass "token decrypt: no warning 200 days ahead"
expect_exit 1 "token decrypt: not a token" \
    "$DEP" token decrypt cert.pem --key key.pem

# --- the mock --------------------------------------------------------------

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout tls-key.pem \
    -out tls-cert.pem 2>/dev/null
/usr/bin/python3 "$MOCK" --cert tls-cert.pem --key tls-key.pem \
    --credentials creds.json --devices 250 --rotate-every 4 \
    --port-file "$T/port" --log "$T/requests.jsonl" 2>mock.log &
MOCK_PID=$!
IT_PIDS+=("$MOCK_PID")
for _ in $(seq 100); do
	[[ -s port ]] && break
	sleep 0.1
done
[[ -s port ]] || it_abort "mock-dep did not start: $(cat mock.log)"
URL=https://127.0.0.1:$(cat port)
dep() {
	"$DEP" --url "$URL" --ca tls-cert.pem --user-agent picomdm-test/1 \
	    --protocol-version 9 --max-wait 5 "$@"
}
ctl() { # ctl PATH JSON: a control request to the mock
	curl -sf --cacert tls-cert.pem -H 'Content-Type: application/json' \
	    -d "$2" "$URL$1" >/dev/null || it_abort "mock control $1 failed"
}
mark() { wc -l <requests.jsonl; }
since() { tail -n +"$(($1 + 1))" requests.jsonl; }

# Token files must not be readable by others.
chmod 644 token.json
rc=0
dep account --token token.json >/dev/null 2>perm.err || rc=$?
expect_eq "$rc" 1 "token file readable by others: refused"
grep -q "mode 0600" perm.err && pass "token file mode: says so" ||
	fail "token file mode: message" "$(cat perm.err)"
expect_eq "$(wc -l <requests.jsonl)" 0 "token file refused: no request sent"
chmod 600 token.json

# --- account: OAuth, headers ---------------------------------------------------

m=$(mark)
rc=0
dep account --token token.json >account.out 2>account.err || rc=$?
expect_eq "$rc" 0 "account: exit 0"
expect_jq "$(cat account.out)" .org_name "Example Org" "account: org_name"
expect_eq "$(since "$m" | jq -r '"\(.method) \(.path) \(.status)"' | tr '\n' ,)" \
    "GET /session 200,GET /account 200," "account: signed /session, then /account"
expect_eq "$(since "$m" | jq -r 'select(.path=="/session") | .auth')" true \
    "account: /session carries the OAuth header"
s1=$(since "$m" | jq -r 'select(.path=="/account") | .session')
[[ ${#s1} == 32 ]] && pass "account: X-ADM-Auth-Session sent" ||
	fail "account: X-ADM-Auth-Session sent" "$s1"
expect_eq "$(since "$m" | jq -r '"\(.ua) \(.proto)"' | sort -u)" \
    "picomdm-test/1 9" "account: User-Agent and protocol version on every call"

# --- the mock checks what Apple checks -------------------------------------------

# A /session header signed here, independently of picomdm-dep.
oauth_header() { # oauth_header NONCE [SECRET]
	/usr/bin/python3 - "$URL" "$CK" "$CS" "$AT" "${2:-$AS}" "$1" <<'PY'
import base64, hashlib, hmac, sys, time, urllib.parse
url, ck, cs, at, as_, nonce = sys.argv[1:]
q = lambda s: urllib.parse.quote(s, safe="-._~")
p = {"oauth_consumer_key": ck, "oauth_token": at, "oauth_nonce": nonce,
     "oauth_signature_method": "HMAC-SHA1", "oauth_version": "1.0",
     "oauth_timestamp": str(int(time.time()))}
base = "GET&" + q(url + "/session") + "&" + q("&".join(
    q(k) + "=" + q(v) for k, v in sorted(p.items())))
p["oauth_signature"] = base64.b64encode(hmac.new(
    (q(cs) + "&" + q(as_)).encode(), base.encode(), hashlib.sha1).digest()).decode()
print("OAuth realm=\"ADM\", " + ", ".join('%s="%s"' % (k, q(v)) for k, v in p.items()))
PY
}
session_status() { # session_status AUTH [CONTENT-TYPE]
	curl -s -o /dev/null -w '%{http_code}' --cacert tls-cert.pem \
	    -A picomdm-test/1 -H "Content-Type: ${2-application/json;charset=UTF8}" \
	    -H "Authorization: $1" "$URL/session"
}
h=$(oauth_header n1-$RANDOM)
expect_eq "$(session_status "$h")" 200 "mock: a correctly signed /session"
expect_eq "$(session_status "$h")" 401 "mock: the same nonce again is refused"
expect_eq "$(session_status "$(oauth_header n2-$RANDOM AS_other)")" 401 \
    "mock: a wrong signature is refused"
expect_eq "$(session_status "$(oauth_header n3-$RANDOM)" text/plain)" 415 \
    "mock: /session without the JSON content type is refused"
expect_eq "$(curl -s --cacert tls-cert.pem -A '' -H 'X-ADM-Auth-Session: x' \
    "$URL/account")" USER_AGENT_MISSING "mock: User-Agent required"
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' --cacert tls-cert.pem \
    -A t "$URL/account")" 401 "mock: no session, 401"

# --- devices: full fetch, session rotation ---------------------------------------

m=$(mark)
rc=0
dep devices --token token.json --cursor-file cursor --limit 40 \
    >fetch.out 2>fetch.err || rc=$?
expect_eq "$rc" 0 "devices: full fetch exit 0"
expect_eq "$(wc -l <fetch.out)" 250 "devices: 250 devices printed"
expect_eq "$(jq -r .serial_number fetch.out | sort -u | wc -l)" 250 \
    "devices: each device exactly once"
expect_eq "$(jq -r 'has("op_type")' fetch.out | sort -u)" false \
    "devices: fetch entries carry no op_type"
expect_eq "$(since "$m" | jq -r 'select(.path=="/server/devices") | .status' |
    tr '\n' ' ')" "200 200 200 200 200 200 200 " \
    "devices: 7 pages of at most 40"
expect_eq "$(since "$m" | jq -r 'select(.path=="/devices/sync") | .status')" \
    200 "devices: then one sync call"
expect_eq "$(since "$m" | jq -c 'select(.path=="/session")' | wc -l)" 1 \
    "devices: one /session for the whole run"
# Every rotated session was used on the very next call.
adopted=$(since "$m" | jq -rs '[range(0; length - 1) as $i |
    select(.[$i].new_session != null) |
    (.[$i + 1].session == .[$i].new_session)] | "\(length) \(all)"')
expect_eq "$adopted" "2 true" "devices: rotated X-ADM-Auth-Session adopted"
[[ -s cursor ]] && pass "devices: cursor stored" || fail "devices: cursor stored"
expect_eq "$(stat -c %a cursor)" 600 "devices: cursor file 0600"

# --- sync deltas ------------------------------------------------------------------

ctl /_mock/events '{"add":5,"modify":["MOCK00000001","MOCK00000002"],"delete":["MOCK00000003","MOCK00000004","MOCK00000005"]}'
m=$(mark)
rc=0
dep devices --token token.json --cursor-file cursor --limit 4 \
    >sync.out 2>sync.err || rc=$?
expect_eq "$rc" 0 "sync: exit 0"
expect_eq "$(since "$m" | jq -r 'select(.path != "/session") | "\(.path) \(.status) \(.code)"' | head -1)" \
    "/server/devices 400 EXHAUSTED_CURSOR" \
    "sync: the finished fetch cursor is EXHAUSTED_CURSOR"
expect_eq "$(jq -r .op_type sync.out | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')" \
    "added=5 deleted=3 modified=2 " "sync: 5 added, 2 modified, 3 deleted"
expect_eq "$(jq -r 'select(.op_type=="modified") | .asset_tag' sync.out | tr '\n' ' ')" \
    "MOD-MOCK00000001 MOD-MOCK00000002 " "sync: the modified records"
expect_eq "$(since "$m" | jq -r 'select(.path=="/devices/sync") | .status' | wc -l)" 3 \
    "sync: 10 changes over pages of 4"
m=$(mark)
dep devices --token token.json --cursor-file cursor >again.out 2>/dev/null
expect_eq "$(wc -l <again.out)" 0 "sync: nothing new, nothing printed"

# --- session expiry and restart --------------------------------------------------

ctl /_mock/expire-sessions '{}'
m=$(mark)
rc=0
dep account --token token.json >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 0 "expired session: account still succeeds"
expect_eq "$(since "$m" | jq -r '"\(.path) \(.status)"' | tr '\n' ,)" \
    "/session 200,/account 200," "expired session: a fresh process authenticates"
# Within one process: the session expires between two pages.
ctl /_mock/expire-sessions '{}'
ctl /_mock/events '{"add":3}'
m=$(mark)
rc=0
dep devices --token token.json --cursor-file cursor >exp1.out 2>&1 || rc=$?
expect_eq "$(since "$m" | jq -r '"\(.path) \(.status)"' | tr '\n' ,)" \
    "/session 200,/server/devices 400,/devices/sync 200," \
    "new process: authenticates first"
# Within one call: a 401 on the data path (the session expired).
ctl /_mock/fail '{"path":"/account","status":401,"body":"UNAUTHORIZED","count":1}'
m=$(mark)
rc=0
dep -v account --token token.json >/dev/null 2>reauth.err || rc=$?
expect_eq "$rc" 0 "401: re-authenticated and replayed"
expect_eq "$(since "$m" | jq -r '"\(.path) \(.status)"' | tr '\n' ,)" \
    "/session 200,/account 401,/session 200,/account 200," \
    "401: /session again, then the same call once more"
ctl /_mock/fail '{"path":"/account","status":401,"body":"UNAUTHORIZED","count":2}'
m=$(mark)
rc=0
dep account --token token.json >/dev/null 2>reauth2.err || rc=$?
expect_eq "$rc" 3 "401 twice: reported (exit 3)"
expect_eq "$(since "$m" | jq -c 'select(.path=="/account")' | wc -l)" 2 \
    "401 twice: re-authenticated once only"
ctl /_mock/restart '{}'
m=$(mark)
rc=0
dep devices --token token.json --cursor-file cursor >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 0 "restart: devices succeeds"
# One process: /session, fetch → EXHAUSTED, sync; a restart between runs
# is seen only by a kept session, so script one FORBIDDEN.
ctl /_mock/fail '{"path":"/account","status":403,"body":"FORBIDDEN","count":1}'
m=$(mark)
rc=0
dep account --token token.json >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 0 "403 FORBIDDEN: re-authenticated and replayed"
expect_eq "$(since "$m" | jq -r '"\(.path) \(.status)"' | tr '\n' ,)" \
    "/session 200,/account 403,/session 200,/account 200," \
    "403 FORBIDDEN: /session again, then the call"

# Sessions that expire every 3 calls during a paged fetch: each expiry is
# met by one re-authentication, and every device still arrives once.
ctl /_mock/session-calls '{"calls":3}'
m=$(mark)
rc=0
dep devices --token token.json --limit 20 >ttl.out 2>/dev/null || rc=$?
expect_eq "$rc" 0 "session expiring mid-fetch: devices succeeds"
expect_eq "$(jq -r 'select(has("op_type") | not) | .serial_number' ttl.out |
    sort | uniq -d | wc -l) $(jq -r 'select(has("op_type") | not)' ttl.out |
    jq -s length)" "0 $(($(wc -l <fetch.out) + 5 - 3 + 3))" \
    "session expiring mid-fetch: every device once"
n401=$(since "$m" | jq -c 'select(.status==401)' | wc -l)
nses=$(since "$m" | jq -c 'select(.path=="/session")' | wc -l)
((n401 >= 2)) && pass "session expiring mid-fetch: 401s met ($n401)" ||
	fail "session expiring mid-fetch: 401s met" "$n401"
expect_eq "$nses" "$((n401 + 1))" \
    "session expiring mid-fetch: one /session per 401"
ctl /_mock/session-calls '{"calls":0}'

# A fetch that breaks on its third page (malformed JSON) resumes from the
# cursor file stored after the second: together the two runs print every
# device exactly once.
ctl /_mock/fail '{"path":"/server/devices","status":200,"body":"{not json","count":1,"skip":2}'
rc=0
dep devices --token token.json --limit 40 --cursor-file resume.cursor \
    >resume1.out 2>resume1.err || rc=$?
expect_eq "$rc" 1 "interrupted fetch: fails on the third page"
expect_eq "$(wc -l <resume1.out)" 80 "interrupted fetch: two pages printed"
rc=0
dep devices --token token.json --limit 40 --cursor-file resume.cursor \
    >resume2.out 2>/dev/null || rc=$?
expect_eq "$rc" 0 "interrupted fetch: the second run completes"
expect_eq "$(cat resume1.out resume2.out | jq -r .serial_number | sort |
    uniq -d | wc -l) $(cat resume1.out resume2.out | wc -l)" \
    "0 $(($(wc -l <fetch.out) + 5 - 3 + 3))" \
    "interrupted fetch: every device exactly once over both runs"

# Error bodies as Apple's simulator ("CODE") and other mocks
# ({"code": "CODE"}) write them.
ctl /_mock/fail '{"path":"/account","status":403,"body":"\"T_C_NOT_SIGNED\"","count":1}'
rc=0
dep account --token token.json >/dev/null 2>q.err || rc=$?
expect_eq "$rc" 3 "quoted error body: T_C_NOT_SIGNED recognised"
ctl /_mock/fail '{"path":"/account","status":403,"body":"{\"code\":\"ACCESS_DENIED\"}","count":1}'
rc=0
dep account --token token.json >/dev/null 2>q.err || rc=$?
expect_eq "$rc" 3 "JSON error body: ACCESS_DENIED recognised"
grep -q ACCESS_DENIED q.err && pass "JSON error body: reported" ||
	fail "JSON error body: reported" "$(cat q.err)"
ctl /_mock/fail '{"path":"/account","status":403,"body":"SOMETHING_ELSE","count":1}'
m=$(mark)
rc=0
dep account --token token.json >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 3 "other 403: reported"
expect_eq "$(since "$m" | jq -c 'select(.path=="/account")' | wc -l)" 1 \
    "other 403: no re-authentication"

# --- terms not signed, access denied: reported, not retried ---------------------------

for where in /session /account; do
	for code in T_C_NOT_SIGNED ACCESS_DENIED; do
		ctl /_mock/fail "{\"path\":\"$where\",\"status\":403,\"body\":\"$code\",\"count\":1}"
		m=$(mark)
		rc=0
		dep account --token token.json >/dev/null 2>tc.err || rc=$?
		expect_eq "$rc" 3 "$code on $where: exit 3"
		case $code in
		T_C_NOT_SIGNED) want="must accept Apple's new terms" ;;
		*) want="this token has no access" ;;
		esac
		grep -q "picomdm-dep: account: $code: .*$want" tc.err &&
			pass "$code on $where: reported to the operator" ||
			fail "$code on $where: reported" "$(cat tc.err)"
		expect_eq "$(since "$m" | jq -c "select(.path==\"$where\")" | wc -l)" 1 \
		    "$code on $where: not retried"
	done
done

# --- Retry-After ------------------------------------------------------------------

for st in 429 503; do
	ctl /_mock/fail "{\"path\":\"/account\",\"status\":$st,\"body\":\"TOO_MANY_REQUESTS\",\"count\":1,\"retry_after\":2}"
	m=$(mark)
	rc=0
	dep account --token token.json >/dev/null 2>&1 || rc=$?
	expect_eq "$rc" 0 "$st Retry-After 2: succeeds after waiting"
	gap=$(since "$m" | jq -rs '[.[] | select(.path=="/account") | .t] |
	    if length == 2 then (.[1] - .[0]) * 10 | floor else -1 end')
	((gap >= 20 && gap < 150)) && pass "$st: waited 2 s before retrying" ||
		fail "$st: waited 2 s before retrying" "gap ${gap} tenths"
done
ctl /_mock/fail '{"path":"/account","status":429,"body":"TOO_MANY_REQUESTS","count":1,"retry_after":120}'
m=$(mark)
rc=0
t0=$(date +%s)
dep account --token token.json >/dev/null 2>ra.err || rc=$?
expect_eq "$rc" 1 "Retry-After beyond --max-wait: gives up"
(($(date +%s) - t0 < 60)) && pass "Retry-After beyond --max-wait: no wait" ||
	fail "Retry-After beyond --max-wait: no wait"
grep -q "retry later" ra.err && pass "Retry-After beyond --max-wait: says so" ||
	fail "Retry-After beyond --max-wait: message" "$(cat ra.err)"
ctl /_mock/fail '{"path":"/account","status":429,"body":"TOO_MANY_REQUESTS","count":4,"retry_after":0}'
m=$(mark)
rc=0
dep account --token token.json >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 1 "429 without end: gives up"
expect_eq "$(since "$m" | jq -r 'select(.path=="/account")' | jq -s length)" 4 \
    "429 without end: 3 retries, then gives up"

# --- cursor errors ----------------------------------------------------------------

total=$(($(jq -r .serial_number fetch.out | wc -l) + 5 - 3 + 3))
ctl /_mock/clock '{"advance":691200}'
m=$(mark)
rc=0
dep devices --token token.json --cursor-file cursor >expired.out \
    2>expired.err || rc=$?
expect_eq "$rc" 0 "EXPIRED_CURSOR: devices succeeds"
grep -q EXPIRED_CURSOR expired.err && pass "EXPIRED_CURSOR: reported" ||
	fail "EXPIRED_CURSOR: reported" "$(cat expired.err)"
expect_eq "$(jq -r 'select(has("op_type") | not) | .serial_number' expired.out |
    sort -u | wc -l)" "$total" "EXPIRED_CURSOR: a full fetch again ($total)"
printf 'not-a-cursor!\n' >cursor
rc=0
dep devices --token token.json --cursor-file cursor >invalid.out \
    2>invalid.err || rc=$?
expect_eq "$rc" 0 "INVALID_CURSOR: devices succeeds"
expect_eq "$(jq -r 'select(has("op_type") | not)' invalid.out | jq -s length)" \
    "$total" "INVALID_CURSOR: a full fetch again"

# --- profiles and details --------------------------------------------------------

cat >profile.json <<'EOF'
{"profile_name":"picomdm","url":"https://mdm.example.test/mdm/enroll",
 "is_supervised":true,"is_mdm_removable":false,"department":"IT"}
EOF
dep profile define --token token.json profile.json >pdef.out
uuid=$(jq -r .profile_uuid pdef.out)
[[ $uuid =~ ^[0-9A-F]{32}$ ]] && pass "profile define: profile_uuid" ||
	fail "profile define: profile_uuid" "$uuid"
expect_jq "$(dep profile show --token token.json "$uuid")" .url \
    https://mdm.example.test/mdm/enroll "profile show: the url"
out=$(dep profile assign --token token.json "$uuid" MOCK00000010 NOSUCH)
expect_jq "$out" .devices.MOCK00000010 SUCCESS "profile assign: SUCCESS"
expect_jq "$out" .devices.NOSUCH NOT_ACCESSIBLE \
    "profile assign: NOT_ACCESSIBLE"
out=$(dep details --token token.json MOCK00000010)
expect_jq "$out" .devices.MOCK00000010.profile_status assigned \
    "details: profile_status assigned"
expect_jq "$out" .devices.MOCK00000010.profile_uuid "$uuid" \
    "details: the profile uuid"
# More than 1,000 serials: batches of at most 1,000.
mapfile -t many < <(seq -f 'MOCK%08g' 0 1000)
m=$(mark)
dep profile assign --token token.json "$uuid" "${many[@]}" >batch.out
expect_eq "$(since "$m" | jq -r 'select(.path=="/profile/devices") |
    .body.devices | length' | tr '\n' ' ')" "1000 1 " \
    "profile assign: 1,001 serials in batches of 1,000 and 1"
expect_eq "$(jq -r '.devices[]' batch.out | sort | uniq -c |
    awk '{print $2 "=" $1}' | tr '\n' ' ')" \
    "NOT_ACCESSIBLE=$((1001 - total)) SUCCESS=$total " \
    "profile assign: each serial answered (the $total present succeed)"
rc=0
dep profile show --token token.json 00000000000000000000000000000000 \
    >/dev/null 2>pnf.err || rc=$?
expect_eq "$rc" 1 "profile show: unknown uuid fails"
grep -q "PROFILE_NOT_FOUND" pnf.err && pass "profile show: PROFILE_NOT_FOUND" ||
	fail "profile show: PROFILE_NOT_FOUND" "$(cat pnf.err)"
echo '{"profile_name":"x"}' >bad-profile.json
expect_exit 1 "profile define: a profile without url is refused locally" \
    dep profile define --token token.json bad-profile.json

# --- malformed responses, wrong credentials, TLS ---------------------------------------

ctl /_mock/fail '{"path":"/account","status":200,"body":"{not json","count":1}'
rc=0
dep account --token token.json >/dev/null 2>mal.err || rc=$?
expect_eq "$rc" 1 "malformed JSON: an error"
grep -q "unexpected response" mal.err && pass "malformed JSON: reported" ||
	fail "malformed JSON: reported" "$(cat mal.err)"
jq -c '.access_secret = "AS_wrong"' token.json >bad.json
chmod 600 bad.json
m=$(mark)
rc=0
dep account --token bad.json >/dev/null 2>bad.err || rc=$?
expect_eq "$rc" 3 "wrong secret: the mock's signature check refuses it"
expect_eq "$(since "$m" | jq -r '"\(.path) \(.status)"')" "/session 401" \
    "wrong secret: one /session, 401"
rc=0
"$DEP" --url "$URL" account --token token.json >/dev/null 2>tls.err || rc=$?
expect_eq "$rc" 1 "untrusted TLS certificate: refused"

# --- scale: 10,000 devices over many pages arrive exactly once ------------------

ctl /_mock/events "{\"add\":$((10000 - total))}"
m=$(mark)
rc=0
dep devices --token token.json --limit 1000 >big.out 2>big.err || rc=$?
expect_eq "$rc" 0 "10,000 devices: exit 0"
expect_eq "$(jq -r 'select(has("op_type") | not) | .serial_number' big.out |
    sort -u | wc -l) $(jq -c 'select(has("op_type") | not)' big.out | wc -l)" \
    "10000 10000" "10,000 devices: each exactly once"
expect_eq "$(since "$m" | jq -c 'select(.path=="/server/devices")' | wc -l)" 10 \
    "10,000 devices: 10 pages of 1,000"

it_done
