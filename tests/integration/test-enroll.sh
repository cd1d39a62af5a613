#!/usr/bin/env bash
#
# test-enroll.sh - enrollment end to end: the profile served at
# /mdm/enroll (signature, an independent plist parser, Apple's schema), a
# real SCEP server (Debian's scepserver, its CA under picomdm's device CA)
# issuing the identity to scepclient with the profile's challenge and URL,
# that identity checking in over TLS and with Mdm-Signature, and ADE's
# MachineInfo POSTed signed, signed by another CA, and unsigned, then kept
# (inventory, show, dump, purge); one-time enrollment tokens
# (enroll_access = token: unknown, used, expired, revoked, pruned); and a
# SCEP challenge per profile checked by picomdmctl scep-verify as
# scepserver's -csrverifierexec.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

for tool in scepserver scepclient; do
	command -v "$tool" >/dev/null || {
		echo "# test-enroll: $tool missing (Debian package scep)" >&2
		fail "setup: $tool installed"
		it_done
	}
done

challenge=chal-$(openssl rand -hex 12)
scep_port=
scep_pid=
scep2_port=
scep2_pid=
http_port=

# Before anything starts: the SCEP CA, the profile signer, the stand-in
# device-signing CA, the configuration, and the device CA bundle that
# trusts identities from the SCEP CA.
it_setup_hook() {
	"$PM_ROOT/scripts/mkenroll" "$IT_CERTS" ||
	    it_abort "setup: scripts/mkenroll $IT_CERTS"
	# shellcheck disable=SC2034 # read by it_start (lib.sh)
	IT_DEVICE_CA=$IT_CERTS/device-ca-bundle.pem
	read -r scep_port http_port scep2_port < <(free_ports 3)
	# A plain HTTP listener (as the benchmark has): enrollment refuses it.
	IT_NGINX_ARGS=(HTTP_PORT="$http_port")
	cat >"$IT_DIR/picomdm.conf" <<EOF
# enrollment (picomdm.conf(5)); the URLs are filled in below
enroll_access = open
server_url = https://localhost/mdm/connect
checkin_url = https://localhost/mdm/checkin
push_topic = $IT_TOPIC
scep_url = http://127.0.0.1:$scep_port/scep
scep_challenge = $challenge
scep_organization = picomdm test
profile_identifier = io.picomdm.test.enroll
profile_organization = picomdm test
profile_sign_cert = $IT_CERTS/profile-sign.pem
profile_sign_key = $IT_CERTS/profile-sign.key
machineinfo_ca = $IT_CERTS/machineinfo-ca.pem
EOF
	IT_RESPONDER_ARGS+=(--config "$IT_DIR/picomdm.conf")
}

it_start

# scepserver with its own copy of the depot (it writes serial and index).
mkdir -p "$IT_DIR/depot"
cp "$IT_CERTS/scep/ca.pem" "$IT_CERTS/scep/ca.key" "$IT_DIR/depot/"
scepserver -depot "$IT_DIR/depot" -port "$scep_port" \
    -challenge "$challenge" -capass "$(cat "$IT_CERTS/scep/capass")" \
    >"$IT_DIR/scepserver.log" 2>&1 &
scep_pid=$!
trap 'rc=$?; kill "$scep_pid" 2>/dev/null; wait "$scep_pid" 2>/dev/null || true
    if [[ -n $scep2_pid ]]; then kill "$scep2_pid" 2>/dev/null
    wait "$scep2_pid" 2>/dev/null || true; fi
    it_cleanup "$rc"' EXIT
for _ in $(seq 50); do
	port_in_use "$scep_port" && break
	sleep 0.1
done
port_in_use "$scep_port" || it_abort "setup: scepserver did not start" \
    "$(tail -n 3 "$IT_DIR/scepserver.log" | tr '\n' ' ')"

# get PATH [CURL_ARG...]: a request without a client certificate.
get() {
	local path=$1
	shift
	BODY=$IT_DIR/last.body
	HEADERS=$IT_DIR/last.headers
	: >"$BODY"
	STATUS=$(curl -sS -o "$BODY" -D "$HEADERS" -w '%{http_code}' \
	    --resolve "localhost:$IT_PORT:127.0.0.1" \
	    --cacert "$IT_CERTS/server-ca.pem" --max-time 30 "$@" \
	    "$IT_URL$path" 2>"$IT_DIR/last.curl") || true
	[[ -n $STATUS ]] || STATUS=000
}

# no_challenge WHAT: the last response does not carry the challenge.
no_challenge() {
	if grep -q -- "$challenge" "$BODY" "$HEADERS"; then
		fail "$1" "challenge in the response"
	else
		pass "$1"
	fi
}

# profile_json DER OUT: verify against the profile signer's CA, parse the
# content with Python's plistlib, print it as JSON.
profile_json() {
	openssl cms -verify -inform DER -in "$1" -CAfile \
	    "$IT_CERTS/server-ca.pem" -out "$2.plist" 2>"$2.verify" || return 1
	/usr/bin/python3 - "$2.plist" >"$2" <<'EOF'
import json, plistlib, sys
with open(sys.argv[1], "rb") as f:
    p = plistlib.load(f, fmt=plistlib.FMT_XML)
print(json.dumps(p, default=str))
EOF
}

# ---- the profile

get /mdm/enroll
expect_status 200 "GET /mdm/enroll serves the profile"
expect_eq "$(grep -i '^content-type:' "$HEADERS" | tr -d '\r' |
    cut -d ' ' -f 2)" application/x-apple-aspen-config \
    "served as application/x-apple-aspen-config"
cp "$BODY" "$IT_DIR/profile1.der"
if profile_json "$IT_DIR/profile1.der" "$IT_DIR/p1.json"; then
	pass "openssl cms -verify: signed by the configured signer"
else
	fail "openssl cms -verify: signed by the configured signer" \
	    "$(head -c 200 "$IT_DIR/p1.json.verify")"
fi
p1=$(cat "$IT_DIR/p1.json" 2>/dev/null || echo '{}')
if openssl cms -verify -inform DER -in "$IT_DIR/profile1.der" \
    -CAfile "$IT_CERTS/other-ca.pem" -out /dev/null 2>/dev/null; then
	fail "the signature does not verify against another CA"
else
	pass "the signature does not verify against another CA"
fi
expect_jq "$p1" .PayloadType Configuration "PayloadType Configuration"
expect_jq "$p1" '[.PayloadContent[].PayloadType] | sort | join(",")' \
    com.apple.mdm,com.apple.security.scep "an MDM and a SCEP payload"
scep='.PayloadContent[] | select(.PayloadType == "com.apple.security.scep")'
mdm='.PayloadContent[] | select(.PayloadType == "com.apple.mdm")'
expect_jq "$p1" "($mdm).IdentityCertificateUUID == ($scep).PayloadUUID" \
    true "IdentityCertificateUUID names the SCEP payload"
expect_jq "$p1" "($mdm).Topic" "$IT_TOPIC" "Topic from push_topic"
expect_jq "$p1" "($mdm).ServerURL" https://localhost/mdm/connect \
    "ServerURL from server_url"
expect_jq "$p1" "($mdm).CheckInURL" https://localhost/mdm/checkin \
    "CheckInURL from checkin_url"
expect_jq "$p1" "[($mdm).SignMessage, ($mdm).CheckOutWhenRemoved,
    ($mdm).AccessRights] | map(tostring) | join(\",\")" true,true,8191 \
    "SignMessage, CheckOutWhenRemoved and AccessRights as configured"
expect_jq "$p1" "($mdm).ServerCapabilities | sort | join(\",\")" \
    com.apple.mdm.bootstraptoken,com.apple.mdm.per-user-connections \
    "ServerCapabilities: what picomdm supports"
expect_jq "$p1" "($scep).PayloadContent.Challenge" "$challenge" \
    "SCEP Challenge from scep_challenge"
expect_jq "$p1" "($scep).PayloadContent | [.Keysize, .\"Key Usage\"] |
    map(tostring) | join(\",\")" 2048,5 "SCEP key size and usage"
cn=$(jq -r "($scep).PayloadContent.Subject[][] | select(.[0] == \"CN\") |
    .[1]" <<<"$p1" 2>/dev/null) || cn=
expect_eq "$cn" "picomdm device $(jq -r .PayloadUUID <<<"$p1")" \
    "Subject CN names this profile"

# Every key of each payload is in Apple's schema for its type (the
# generated module/schema_profiles.c) or a common payload key, with the
# schema's type; required keys are there.
schema_check() {
	/usr/bin/python3 - "$PM_ROOT/module/schema_profiles.c" "$1" <<'EOF'
import json, re, sys
src = open(sys.argv[1]).read()
arrays = {}
for name, body in re.findall(r"static const struct schema_key (sk_\d+)\[\] = \{\n(.*?)\n\};", src, re.S):
    arrays[name] = [re.match(r'\t\{("([^"]*)"|NULL), (SCHEMA_\w+), (\d), (\w+), (\d+)\},', l).groups() for l in body.split("\n")]
types = {t: arrays[a] for t, a in re.findall(r'\{"([\w.]+)", (sk_\d+), \d+, NULL, 0\}', src)}
PY = {"SCHEMA_STRING": str, "SCHEMA_INTEGER": int, "SCHEMA_BOOL": bool,
      "SCHEMA_DICT": dict, "SCHEMA_ARRAY": list, "SCHEMA_DATA": bytes}
common = {"PayloadType", "PayloadVersion", "PayloadIdentifier", "PayloadUUID",
          "PayloadDisplayName", "PayloadDescription", "PayloadOrganization"}
def check(d, keys, where, extra=()):
    byname = {k[1]: k for k in keys if k[1]}
    for k in keys:
        if k[1] and k[3] == "1" and k[1] not in d:
            sys.exit("%s: required %s missing" % (where, k[1]))
    for name, v in d.items():
        if name in extra:
            continue
        if name not in byname:
            sys.exit("%s: %s not in the schema" % (where, name))
        k = byname[name]
        want = PY.get(k[2])
        if want and (type(v) is not want):
            sys.exit("%s.%s: %s, schema says %s" % (where, name, type(v).__name__, k[2]))
        if k[2] == "SCHEMA_DICT" and k[4] != "NULL":
            check(v, arrays[k[4]], where + "." + name)
p = json.load(open(sys.argv[2]))
n = 0
for pl in p["PayloadContent"]:
    t = pl["PayloadType"]
    if t not in types:
        sys.exit("%s: payload type not in the schema" % t)
    check(pl, types[t], t, common)
    n += 1
print(n)
EOF
}
expect_eq "$(schema_check "$IT_DIR/p1.json" 2>&1)" 2 \
    "payload keys and types match Apple's schema"

get /mdm/enroll
profile_json "$BODY" "$IT_DIR/p2.json" || true
p2=$(cat "$IT_DIR/p2.json" 2>/dev/null || echo '{}')
expect_eq "$(jq -r '[.PayloadIdentifier, .PayloadContent[].PayloadIdentifier] |
    join(",")' <<<"$p2")" "$(jq -r '[.PayloadIdentifier,
    .PayloadContent[].PayloadIdentifier] | join(",")' <<<"$p1")" \
    "PayloadIdentifiers are stable"
u1=$(jq -r '[.PayloadUUID, .PayloadContent[].PayloadUUID] | join(",")' \
    <<<"$p1")
u2=$(jq -r '[.PayloadUUID, .PayloadContent[].PayloadUUID] | join(",")' \
    <<<"$p2")
if [[ -n $u2 && $u1 != "$u2" && $(tr ',' '\n' <<<"$u1,$u2" | sort -u |
    wc -l) == 6 ]]; then
	pass "each profile has fresh PayloadUUIDs"
else
	fail "each profile has fresh PayloadUUIDs" "$u1 / $u2"
fi

"$PM_BUILD/picomdmctl" --config "$IT_DIR/picomdm.conf" enrollment-profile \
    -o "$IT_DIR/ctl.der" 2>"$IT_DIR/ctl.err" || true
if profile_json "$IT_DIR/ctl.der" "$IT_DIR/ctl.json" &&
    [[ $(schema_check "$IT_DIR/ctl.json" 2>&1) == 2 ]]; then
	pass "picomdmctl enrollment-profile writes a signed, valid profile"
else
	fail "picomdmctl enrollment-profile writes a signed, valid profile" \
	    "$(head -c 200 "$IT_DIR/ctl.err")"
fi
expect_eq "$(stat -c %a "$IT_DIR/ctl.der" 2>/dev/null)" 600 \
    "picomdmctl writes the profile mode 0600"
# The topic from the push certificate instead of push_topic.
{
	grep -v '^push_topic' "$IT_DIR/picomdm.conf"
	echo "push_cert = $IT_CERTS/push.pem"
} >"$IT_DIR/push.conf"
"$PM_BUILD/picomdmctl" --config "$IT_DIR/push.conf" enrollment-profile \
    -o "$IT_DIR/push.der" 2>"$IT_DIR/ctl.err" || true
profile_json "$IT_DIR/push.der" "$IT_DIR/push.json" || true
want=$(openssl x509 -in "$IT_CERTS/push.pem" -noout -subject \
    -nameopt sep_multiline | sed -n 's/^ *UID=//p')
[[ $want == com.apple.mgmt.External.?* ]] || want="(no UID in push.pem)"
expect_eq "$(jq -r "$mdm | .Topic" "$IT_DIR/push.json" 2>/dev/null)" \
    "$want" "push_cert: Topic is the UID in the push certificate's subject"
expect_exit 2 "picomdmctl enrollment-profile without --config: exit 2" \
    "$PM_BUILD/picomdmctl" enrollment-profile
grep -v '^server_url' "$IT_DIR/picomdm.conf" >"$IT_DIR/noserver.conf"
expect_exit 2 "picomdmctl enrollment-profile, no server_url: exit 2" \
    "$PM_BUILD/picomdmctl" --config "$IT_DIR/noserver.conf" \
    enrollment-profile
printf 'scep_key_size = 3000\n' | cat "$IT_DIR/picomdm.conf" - \
    >"$IT_DIR/bad.conf"
expect_exit 2 "picomdmctl enrollment-profile, a bad key: exit 2" \
    "$PM_BUILD/picomdmctl" --config "$IT_DIR/bad.conf" enrollment-profile

# ---- refusals never carry the challenge

digest=$(db_digest)
put_raw /mdm/enroll
expect_status 405 "PUT /mdm/enroll refused"
no_challenge "a refused method gets no challenge"
get /mdm/enroll -X POST -H 'Content-Type: application/pkcs7-signature' \
    --data-binary @"$IT_DIR/p1.json"
expect_status 400 "POST of bytes that are not CMS: 400"
no_challenge "a refused MachineInfo gets no challenge"
head -c 70000 /dev/zero >"$IT_DIR/big"
get /mdm/enroll -X POST -H 'Content-Type: application/pkcs7-signature' \
    --data-binary @"$IT_DIR/big"
expect_status 413 "MachineInfo over 64 KiB: 413"

BODY=$IT_DIR/last.body
: >"$BODY"
HEADERS=$IT_DIR/last.headers
STATUS=$(curl -sS -o "$BODY" -D "$HEADERS" -w '%{http_code}' --max-time 30 \
    "http://127.0.0.1:$http_port/mdm/enroll" 2>"$IT_DIR/last.curl") ||
    STATUS=000
# The responder would serve it (200): the 403 is nginx's TLS-only rule.
expect_status 403 "GET /mdm/enroll without TLS: 403 (nginx)"
no_challenge "the plain-HTTP refusal carries no challenge"

# ---- MachineInfo (ADE)

mi_udid=00008030-001A2B3C4D5E6F70
plist_write "$IT_DIR/mi.plist" UDID="$mi_udid" SERIAL=C02MITEST001 \
    PRODUCT=iPhone14,5 VERSION=21F90 IMEI="35 123456 789012 3" \
    MEID=35123456789012 LANGUAGE=en
openssl cms -sign -nodetach -binary -outform DER -in "$IT_DIR/mi.plist" \
    -signer "$IT_CERTS/machineinfo.pem" -inkey "$IT_CERTS/machineinfo.key" \
    -out "$IT_DIR/mi.der"
openssl cms -sign -nodetach -binary -outform DER -in "$IT_DIR/mi.plist" \
    -signer "$IT_CERTS/devices/foreign.pem" \
    -inkey "$IT_CERTS/devices/foreign.key" -out "$IT_DIR/mi-foreign.der"

mi_post() {
	get /mdm/enroll -X POST -H 'Content-Type: application/pkcs7-signature' \
	    --data-binary @"$1"
}
mi_post "$IT_DIR/mi-foreign.der"
expect_status 403 "MachineInfo signed by another CA: 403"
no_challenge "the 403 carries no challenge"
mi_post "$IT_DIR/mi.plist"
expect_status 400 "unsigned MachineInfo: 400"
no_challenge "the 400 carries no challenge"
get /mdm/enroll -X POST -H 'Content-Type: application/x-apple-aspen-mdm' \
    --data-binary @"$IT_DIR/mi.der"
expect_status 415 "MachineInfo with another content type: 415"
expect_eq "$(db_digest)" "$digest" \
    "refused enrollment requests and profiles served change nothing stored"
mi_post "$IT_DIR/mi.der"
expect_status 200 "MachineInfo signed by machineinfo_ca: the profile"
if profile_json "$BODY" "$IT_DIR/mi.json"; then
	expect_jq "$(cat "$IT_DIR/mi.json")" \
	    "($scep).PayloadContent.Subject[][] | select(.[0] == \"CN\") | .[1]" \
	    "picomdm device $mi_udid" "the profile's CN is the device's UDID"
else
	fail "the MachineInfo answer is a signed profile"
fi

# MachineInfo is data Apple sent: in the inventory under ADE, with its
# purpose, in show, in the dump; purged with the device.
inv=$(ctl inventory "$mi_udid" --json 2>&1) || true
mi_rows='.services[] | select(.service == "ADE") | .fields[] |
    select(.message == "MachineInfo")'
expect_jq "$inv" "[$mi_rows | \"\(.field)=\(.value)\"] | join(\",\")" \
    "UDID=$mi_udid,SERIAL=C02MITEST001,PRODUCT=iPhone14,5,VERSION=21F90,IMEI=35 123456 789012 3,MEID=35123456789012,LANGUAGE=en" \
    "inventory: every MachineInfo field under ADE"
expect_jq "$inv" "[$mi_rows | select(.purpose == null or .received_at == null
    or .kept != \"record\")] | length" 0 \
    "inventory: each with its purpose and when it was received"
expect_jq "$(ctl show "$mi_udid" 2>&1)" '.machineinfo.serial' C02MITEST001 \
    "show: the MachineInfo"
expect_eq "$(ctl dump 2>/dev/null | jq -r 'select(.db == "machineinfo") |
    .value.serial')" C02MITEST001 "dump: the machineinfo record"
ctl purge --yes --verify "$mi_udid" >"$IT_DIR/mi-purge.out" 2>&1 ||
    fail "purge of a device known by its MachineInfo" \
    "$(head -c 300 "$IT_DIR/mi-purge.out")"
expect_exit 1 "after purge: no inventory of that UDID" \
    "$PM_BUILD/picomdmctl" --db "$IT_DB" inventory "$mi_udid"
expect_eq "$(ctl dump 2>/dev/null | jq -r 'select(.db == "machineinfo")' |
    wc -l)" 0 "after purge: no machineinfo record"
mi_post "$IT_DIR/mi.der"
expect_status 200 "MachineInfo again (kept for the checks below)"

# ---- SCEP: the identity, from the profile's URL and challenge

scep_url=$(jq -r "($scep).PayloadContent.URL" <<<"$p1")
scep_chal=$(jq -r "($scep).PayloadContent.Challenge" <<<"$p1")
scep_org=$(jq -r "($scep).PayloadContent.Subject[][] |
    select(.[0] == \"O\") | .[1]" <<<"$p1")
mkdir -p "$IT_DIR/dev"
(cd "$IT_DIR/dev" && scepclient -server-url "$scep_url" \
    -challenge "$scep_chal" -private-key dev.key -certificate dev.pem \
    -cn "$cn" -organization "$scep_org" -keySize 2048) \
    >"$IT_DIR/scepclient.log" 2>&1 || true
if [[ -s $IT_DIR/dev/dev.pem ]] && openssl verify -CAfile "$IT_CERTS/ca.pem" \
    -untrusted "$IT_CERTS/scep/ca.pem" "$IT_DIR/dev/dev.pem" >/dev/null 2>&1
then
	pass "scepclient gets a certificate chaining to the device CA"
else
	fail "scepclient gets a certificate chaining to the device CA" \
	    "$(tail -n 2 "$IT_DIR/scepclient.log" | tr '\n' ' ')"
fi
expect_eq "$(openssl x509 -in "$IT_DIR/dev/dev.pem" -noout -subject \
    -nameopt multiline 2>/dev/null | sed -n 's/^ *commonName *= //p')" "$cn" \
    "the certificate's CN is the profile's"
# In a directory of its own: scepclient reuses a csr.pem it finds.
mkdir -p "$IT_DIR/bad"
(cd "$IT_DIR/bad" && scepclient -server-url "$scep_url" \
    -challenge "not-$scep_chal" -private-key bad.key -certificate bad.pem \
    -cn "picomdm device wrong challenge") >>"$IT_DIR/scepclient.log" 2>&1 ||
    true
# Its request was made (a CSR with the new CN) and refused.
if [[ ! -s $IT_DIR/bad/bad.pem ]] &&
    openssl req -in "$IT_DIR/bad/csr.pem" -noout -subject 2>/dev/null |
    grep -q 'wrong challenge'; then
	pass "a wrong challenge gets no certificate"
else
	fail "a wrong challenge gets no certificate"
fi

# ---- that identity checks in

udid=00008110-000E1A2B3C4D5E6F
put_raw /mdm/checkin --cert "$IT_DIR/dev/dev.pem" \
    --key "$IT_DIR/dev/dev.key" -H "Content-Type: $IT_CHECKIN_TYPE" \
    --data-binary @"$(auth_plist "$udid" ENROLL00001)"
expect_status 200 "the SCEP identity authenticates over TLS"
tok=$(token_plist "$udid" "$(openssl rand -base64 32)")
sig=$(openssl cms -sign -binary -in "$tok" -outform DER \
    -signer "$IT_DIR/dev/dev.pem" -inkey "$IT_DIR/dev/dev.key" |
    base64 -w 0)
put_raw /mdm/checkin -H "Content-Type: $IT_CHECKIN_TYPE" \
    -H "Mdm-Signature: $sig" --data-binary @"$tok"
expect_status 200 "the SCEP identity checks in with Mdm-Signature"
expect_jq "$(ctl show "$udid" 2>&1)" '.enrollments[0].enabled' true \
    "the device is enrolled"
tok=$(token_plist "$udid" "$(openssl rand -base64 32)")
sig=$(openssl cms -sign -binary -in "$tok" -outform DER \
    -signer "$IT_CERTS/devices/foreign.pem" \
    -inkey "$IT_CERTS/devices/foreign.key" | base64 -w 0)
put_raw /mdm/checkin -H "Content-Type: $IT_CHECKIN_TYPE" \
    -H "Mdm-Signature: $sig" --data-binary @"$tok"
expect_status 403 "a certificate from another CA (Mdm-Signature): 403"
# Over TLS nginx itself refuses a certificate it cannot verify (400,
# nginx/README.md); the responder never sees it.
put_raw /mdm/checkin --cert "$IT_CERTS/devices/foreign.pem" \
    --key "$IT_CERTS/devices/foreign.key" \
    -H "Content-Type: $IT_CHECKIN_TYPE" \
    --data-binary @"$(auth_plist 00008110-000E1A2B3C4D5E70 ENROLL00002)"
expect_status 400 "a certificate from another CA over TLS: refused by nginx"

# ---- the profile's topic needs a push certificate in the store

nowarn="has no push certificate in the store"
if grep -q "topic $IT_TOPIC $nowarn" "$IT_DIR/fcgi.log"; then
	pass "start-up warns: no push certificate for the profile's topic"
else
	fail "start-up warns: no push certificate for the profile's topic"
fi
# From here the Topic is push.pem's UID, whose certificate is imported.
it_stop_responder
sed -i '/^push_topic/d' "$IT_DIR/picomdm.conf"
echo "push_cert = $IT_CERTS/push.pem" >>"$IT_DIR/picomdm.conf"
expect_exit 0 "pushcert import of the profile's push certificate" \
    "$PM_BUILD/picomdmctl" --db "$IT_DB" pushcert import \
    "$IT_CERTS/push.pem" "$IT_CERTS/push.key"

# ---- one-time enrollment tokens (enroll_access = token)

sed -i 's/^enroll_access = open$/enroll_access = token/' "$IT_DIR/picomdm.conf"
mark=$(stat -c %s "$IT_DIR/fcgi.log")
it_start_responder
if tail -c +"$((mark + 1))" "$IT_DIR/fcgi.log" | grep -q "$nowarn"; then
	fail "no warning once the store holds the topic's certificate"
else
	pass "no warning once the store holds the topic's certificate"
fi
# shellcheck source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"

get /mdm/enroll
expect_status 403 "token mode: GET without a token: 403"
no_challenge "token mode: the refusal carries no challenge"
digest=$(db_digest)
get "/mdm/enroll?token=$(openssl rand -hex 32)"
expect_status 403 "an unknown token: 403"
no_challenge "an unknown token gets no challenge"
get "/mdm/enroll?token=not-a-token"
expect_status 403 "a malformed token: 403"
expect_eq "$(db_digest)" "$digest" "refused tokens change nothing stored"

api POST /api/v1/enrollment-tokens -H 'Content-Type: application/json' \
    --data-binary '{"note": "iPad of the front desk", "expires_in": 3600}'
expect_status 201 "POST /api/v1/enrollment-tokens: 201"
t1=$(jq -r .token "$BODY" 2>/dev/null)
t1id=$(jq -r .id "$BODY" 2>/dev/null)
expect_eq "$(printf %s "$t1" | sha256sum | cut -d ' ' -f 1)" "$t1id" \
    "the token's ID is its SHA-256"
get "/mdm/enroll?token=$t1"
expect_status 200 "a valid token: the profile"
if profile_json "$BODY" "$IT_DIR/tok.json" &&
    [[ $(schema_check "$IT_DIR/tok.json" 2>&1) == 2 ]]; then
	pass "the token's profile is signed and valid"
else
	fail "the token's profile is signed and valid"
fi
get "/mdm/enroll?token=$t1"
expect_status 403 "the same token twice: 403"
no_challenge "a used token gets no challenge"
api GET /api/v1/enrollment-tokens
expect_body_jq ".tokens[] | select(.id == \"$t1id\") | [.state, .note] |
    join(\",\")" "used,iPad of the front desk" "the list shows it used, with its note"
if jq -e --arg t "$t1" 'tostring | contains($t)' "$BODY" >/dev/null ||
    mdb_dump -a "$IT_DB" | grep -q "$t1" ||
    ctl dump --secrets 2>/dev/null | grep -q "$t1"; then
	fail "the token itself is not stored, listed or dumped"
else
	pass "the token itself is not stored, listed or dumped"
fi

api POST /api/v1/enrollment-tokens --data-binary '{"expires_in": 1}'
t2=$(jq -r .token "$BODY" 2>/dev/null)
sleep 2
get "/mdm/enroll?token=$t2"
expect_status 403 "an expired token: 403"
no_challenge "an expired token gets no challenge"

api POST /api/v1/enrollment-tokens
expect_status 201 "a token with no body (the defaults)"
t3=$(jq -r .token "$BODY" 2>/dev/null)
t3id=$(jq -r .id "$BODY" 2>/dev/null)
api DELETE "/api/v1/enrollment-tokens/$t3id"
expect_status 200 "DELETE revokes a token"
api DELETE "/api/v1/enrollment-tokens/$t3id"
expect_status 404 "DELETE of a revoked token: 404"
get "/mdm/enroll?token=$t3"
expect_status 403 "a revoked token: 403"

api POST /api/v1/enrollment-tokens --data-binary '{"expires_in": 0}'
expect_status 400 "expires_in 0: 400"
api POST /api/v1/enrollment-tokens --data-binary '{"ttl": 5}'
expect_status 400 "an unknown key: 400"
api POST /api/v1/enrollment-tokens --data-binary 'not json'
expect_status 400 "a body that is not JSON: 400"
api DELETE /api/v1/enrollment-tokens/xyz
expect_status 400 "DELETE of a malformed ID: 400"

api POST /api/v1/enrollment-tokens --data-binary '{"note": "kept"}'
t4id=$(jq -r .id "$BODY" 2>/dev/null)
expect_eq "$(ctl dump 2>/dev/null | jq -r 'select(.db == "enrollment_token") |
    .value.note // "-"' | sort | tr '\n' ',')" "-,iPad of the front desk,kept," \
    "dump: the token records (used, expired, kept)"
ctl prune >"$IT_DIR/prune.out" 2>&1 || fail "prune"
expect_eq "$(sed -n 's/^enrollment_tokens\t//p' "$IT_DIR/prune.out")" 2 \
    "prune removes the used and the expired token"
api GET /api/v1/enrollment-tokens
expect_body_jq '[.tokens[].id] | join(",")' "$t4id" \
    "the unused token is kept"

mi_post "$IT_DIR/mi.der"
expect_status 200 "token mode: a verified MachineInfo still gets the profile"
# ---- a SCEP challenge per profile (scep_challenge_issued), checked by
# picomdmctl scep-verify as scepserver's -csrverifierexec

it_stop_responder
echo "scep_challenge_issued = yes" >>"$IT_DIR/picomdm.conf"
it_start_responder
printf '#!/bin/sh\nexec "%s" --db "%s" scep-verify 2>>"%s"\n' \
    "$PM_BUILD/picomdmctl" "$IT_DB" "$IT_DIR/scep-verify.log" \
    >"$IT_DIR/scep-verify"
chmod 755 "$IT_DIR/scep-verify"
mkdir -p "$IT_DIR/depot2"
cp "$IT_CERTS/scep/ca.pem" "$IT_CERTS/scep/ca.key" "$IT_DIR/depot2/"
scepserver -depot "$IT_DIR/depot2" -port "$scep2_port" \
    -csrverifierexec "$IT_DIR/scep-verify" \
    -capass "$(cat "$IT_CERTS/scep/capass")" >"$IT_DIR/scepserver2.log" 2>&1 &
scep2_pid=$!
for _ in $(seq 50); do
	port_in_use "$scep2_port" && break
	sleep 0.1
done
port_in_use "$scep2_port" || fail "setup: the second scepserver started"

# scep_enroll NAME CHALLENGE: scepclient against that scepserver, in a
# directory of its own; true when it got a certificate.
scep_enroll() {
	mkdir -p "$IT_DIR/scep-$1"
	(cd "$IT_DIR/scep-$1" && scepclient \
	    -server-url "http://127.0.0.1:$scep2_port/scep" -challenge "$2" \
	    -private-key dev.key -certificate dev.pem -cn "picomdm device $1" \
	    -keySize 2048) >>"$IT_DIR/scepclient2.log" 2>&1 || true
	[[ -s $IT_DIR/scep-$1/dev.pem ]]
}

api POST /api/v1/enrollment-tokens
t5=$(jq -r .token "$BODY" 2>/dev/null)
get "/mdm/enroll?token=$t5"
expect_status 200 "issued challenges: a token's profile"
profile_json "$BODY" "$IT_DIR/iss.json" || true
c1=$(jq -r "($scep).PayloadContent.Challenge" "$IT_DIR/iss.json" 2>/dev/null)
mi_post "$IT_DIR/mi.der"
profile_json "$BODY" "$IT_DIR/iss2.json" || true
c2=$(jq -r "($scep).PayloadContent.Challenge" "$IT_DIR/iss2.json" 2>/dev/null)
if [[ $c1 =~ ^[0-9a-f]{64}$ && $c2 =~ ^[0-9a-f]{64}$ && $c1 != "$c2" ]]; then
	pass "each profile carries a challenge of its own"
else
	fail "each profile carries a challenge of its own" "$c1 / $c2"
fi
if mdb_dump -a "$IT_DB" | grep -q "$c1"; then
	fail "an issued challenge is stored as its SHA-256 only"
else
	pass "an issued challenge is stored as its SHA-256 only"
fi
if scep_enroll iss1 "$c1"; then
	pass "scepserver + scep-verify: an issued challenge gets a certificate"
else
	fail "scepserver + scep-verify: an issued challenge gets a certificate" \
	    "$(tail -n 2 "$IT_DIR/scep-verify.log" | tr '\n' ' ')"
fi
if scep_enroll iss1-again "$c1"; then
	fail "the same challenge a second time gets none"
else
	pass "the same challenge a second time gets none"
fi
if scep_enroll static "$challenge"; then
	fail "the static challenge gets none from the verifier"
else
	pass "the static challenge gets none from the verifier"
fi
if scep_enroll made-up "$(openssl rand -hex 32)"; then
	fail "a made-up challenge gets none"
else
	pass "a made-up challenge gets none"
fi
if scep_enroll iss2 "$c2"; then
	pass "the MachineInfo profile's challenge gets a certificate"
else
	fail "the MachineInfo profile's challenge gets a certificate"
fi
api GET /api/v1/enrollment-tokens
expect_body_jq '[.tokens[].id] | sort | join(",")' \
    "$( (echo "$t4id"; printf %s "$t5" | sha256sum | cut -d ' ' -f 1) |
    sort | paste -sd ,)" "the token list shows tokens, no issued challenge"

if ctl check >"$IT_DIR/check.out" 2>&1; then
	pass "picomdmctl check: the new kinds check clean"
else
	fail "picomdmctl check: the new kinds check clean" \
	    "$(tail -n 3 "$IT_DIR/check.out")"
fi

it_done
