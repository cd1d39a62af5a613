#!/usr/bin/env bash
#
# test-pushcert.sh - push certificates in the store (picomdmctl(8)
# "pushcert", picomdm-api(7) "Push certificates"):
#
#   - picomdmctl pushcert import (PEM certificate and key, or PKCS#12 with
#     --password-file), list (topic, subject, not-after, days left, state,
#     a warning within 30 days), remove;
#   - a certificate of the same topic replaces the stored one; one of
#     another topic is refused while the store's only certificate has an
#     enrollment on its topic, and accepted with --force (force=1 in the
#     API); bad certificates are refused and change nothing;
#   - PUT /api/v1/pushcert (JSON {"cert","key"} or concatenated PEM) and
#     GET /api/v1/pushcert (no keys);
#   - the responder warns at start-up of a certificate within 30 days;
#   - a private key is never in the responder's log, nor in a dump
#     without --secrets, and is with --secrets;
#   - check, dump --secrets and restore carry them;
#   - purge --topic removes the topic's certificate and --verify finds
#     nothing left; check is clean.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"

TOPIC2=com.apple.mgmt.External.second-tenant-0001

it_start
C=$IT_DIR/push
mkdir -p "$C"

# ossl ARGS...: openssl, quiet unless it fails.
ossl() {
	openssl "$@" 2>>"$IT_DIR/openssl.log" ||
	    it_abort "setup: openssl $1" "$(tail -n 2 "$IT_DIR/openssl.log")"
}
# mkpush NAME UID DAYS: a push certificate (RSA, as Apple's) by a test CA.
mkpush() {
	ossl req -newkey rsa:2048 -nodes -keyout "$C/$1.key" \
	    -out "$C/$1.csr" -subj "/UID=$2/CN=APSP:$1/C=US"
	ossl x509 -req -in "$C/$1.csr" -CA "$C/pca.pem" -CAkey "$C/pca.key" \
	    -CAcreateserial -out "$C/$1.pem" -days "$3"
}
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$C/pca.key" -out "$C/pca.pem" -days 30 \
    -subj "/CN=picomdm test push CA"
mkpush a "$IT_TOPIC" 365
mkpush a2 "$IT_TOPIC" 400
mkpush b "$TOPIC2" 20
mkpush notmdm com.example.not-mdm 365
printf 'p12 pass\n' >"$C/p12.pw"
ossl pkcs12 -export -in "$C/b.pem" -inkey "$C/b.key" -out "$C/b.p12" \
    -passout "file:$C/p12.pw"
# A line from the middle of each key: what must never leak.
for k in a a2 b; do
	sed -n 5p "$C/$k.key" >"$C/$k.keyline"
	[[ -s $C/$k.keyline ]] || it_abort "setup: key $k too short"
done
sha() {
	openssl x509 -in "$C/$1.pem" -outform DER | sha256sum | cut -d ' ' -f 1
}

# expect_true WHAT DETAIL CMD...: CMD succeeds.
expect_true() {
	local what=$1 detail=$2
	shift 2
	if "$@"; then pass "$what"; else fail "$what" "$detail"; fi
}

# leaks FILE NAME...: the keys of NAMEs whose line is found in FILE.
leaks() {
	local f=$1 k out=
	shift
	for k in "$@"; do
		grep -qF -- "$(cat "$C/$k.keyline")" "$f" && out+="$k "
	done
	printf '%s' "$out"
}

# ---- picomdmctl pushcert ----
out=$(ctl pushcert list)
expect_eq "$out" "" "list of a store without certificates is empty"

rc=0
ctl pushcert import "$C/notmdm.pem" "$C/notmdm.key" >/dev/null \
    2>"$IT_DIR/err" || rc=$?
expect_eq "$rc" 2 "a certificate whose UID is not com.apple.mgmt. is refused"
expect_true "  and says why" "$(cat "$IT_DIR/err")" \
    grep -q "com.apple.mgmt" "$IT_DIR/err"
rc=0
ctl pushcert import "$C/a.pem" "$C/b.key" >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 2 "a key that does not match the certificate is refused"
expect_eq "$(ctl pushcert list)" "" "  and nothing was stored"

out=$(ctl pushcert import "$C/a.pem" "$C/a.key")
expect_eq "$(cut -f 1,2 <<<"$out")" "imported	$IT_TOPIC" "import CERT KEY"
out=$(ctl pushcert list 2>"$IT_DIR/err")
expect_eq "$(cut -f 1 <<<"$out")" "$IT_TOPIC" "list shows the topic"
# Days left: whole days, so 364 for a certificate of 365 days made a
# second ago, 365 when made within the same second (and so below).
expect_eq "$(cut -f 4,5 <<<"$out" | sed 's/^365	/364	/')" "364	valid" \
    "list shows days left and state"
expect_true "list shows the subject" "$out" grep -q "APSP:a" <<<"$(cut -f 2 <<<"$out")"
expect_true "list shows not-after" "$out" \
    grep -Eq '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T' <<<"$(cut -f 3 <<<"$out")"
expect_eq "$(cat "$IT_DIR/err")" "" "no warning for a certificate of a year"
expect_eq "$(ctl pushcert list --json | jq -r '.[0].sha256')" "$(sha a)" \
    "list --json: the certificate's SHA-256"

# A device enrolled on the topic.
enroll 0000FE00-PUSH-0000-0000-000000000001 device1 C02PUSHCERT1

out=$(ctl pushcert import "$C/a2.pem" "$C/a2.key")
expect_eq "$(cut -f 1,2 <<<"$out")" "replaced	$IT_TOPIC" \
    "a certificate of the same topic replaces it"
expect_eq "$(ctl pushcert list --json | jq -r 'length, .[0].sha256' |
    tr '\n' ' ')" "1 $(sha a2) " "  the new one is stored"

rc=0
ctl pushcert import --password-file "$C/p12.pw" "$C/b.p12" \
    >/dev/null 2>"$IT_DIR/err" || rc=$?
expect_eq "$rc" 2 "another topic is refused while enrollments use the only one"
expect_true "  and says which topic and --force" "$(cat "$IT_DIR/err")" \
    grep -q "refused.*$IT_TOPIC.*enrollments.*--force" "$IT_DIR/err"
expect_eq "$(ctl pushcert list | wc -l)" 1 "  nothing was added"
rc=0
ctl pushcert import --password-file "$C/a.keyline" "$C/b.p12" --force \
    >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 2 "a PKCS#12 with the wrong password is refused"

out=$(ctl pushcert import "$C/b.p12" --password-file "$C/p12.pw" --force \
    2>"$IT_DIR/err")
expect_eq "$(cut -f 1,2 <<<"$out")" "imported	$TOPIC2" \
    "--force adds the other topic (PKCS#12)"
expect_true "  import warns of 20-day certificate" "$(cat "$IT_DIR/err")" \
    grep -Eq "warning.*$TOPIC2.*(19|20) days" "$IT_DIR/err"
out=$(ctl pushcert list 2>"$IT_DIR/err")
expect_eq "$(cut -f 1,5 <<<"$out" | sort | tr '\n' ' ')" \
    "$IT_TOPIC	valid $TOPIC2	expiring " "list shows both, one expiring"
expect_true "list warns within 30 days" "$(cat "$IT_DIR/err")" \
    grep -Eq "warning: push certificate for $TOPIC2 expires soon \((19|20) days" \
    "$IT_DIR/err"

# With two certificates the store is multi-tenant: a third topic is added.
out=$(ctl pushcert remove "$TOPIC2")
expect_eq "$out" "removed	$TOPIC2" "remove TOPIC"
expect_exit 1 "remove of a topic without a certificate: not found" \
    ctl pushcert remove "$TOPIC2"
expect_eq "$(ctl pushcert list | cut -f 1)" "$IT_TOPIC" "  only the first left"

# ---- dump: the key only with --secrets ----
ctl dump -o "$IT_DIR/plain.json"
ctl dump --secrets -o "$IT_DIR/secret.json"
expect_eq "$(leaks "$IT_DIR/plain.json" a a2)" "" "dump without --secrets: no key"
expect_eq "$(leaks "$IT_DIR/secret.json" a2)" "a2 " "dump --secrets: the key"
expect_eq "$(jq -r 'select(.db=="pushcert") | .value.key_pem | type' \
    "$IT_DIR/plain.json")" "object" "  shown as length and SHA-256"

# ---- the API ----
api GET /api/v1/pushcert
expect_status 200 "GET /api/v1/pushcert"
expect_body_jq '.pushcerts | length, .[0].topic,
    (.[0].days_left | if . == 400 then 399 else . end)' \
    "$(printf '1\n%s\n399' "$IT_TOPIC")" "  lists the certificate"
expect_eq "$(leaks "$BODY" a2)$(grep -c PRIVATE "$BODY" || true)" "0" \
    "  without its key"
jq -n --rawfile c "$C/b.pem" --rawfile k "$C/b.key" '{cert: $c, key: $k}' \
    >"$IT_DIR/b.json"
api PUT /api/v1/pushcert --data-binary "@$IT_DIR/b.json"
expect_api_error 409 "PUT of another topic: refused" "$IT_TOPIC"
api PUT "/api/v1/pushcert?force=1" --data-binary "@$IT_DIR/b.json"
expect_status 200 "PUT ?force=1 (JSON body)"
expect_body_jq '.topic, .replaced, .state' \
    "$(printf '%s\nfalse\nexpiring' "$TOPIC2")" "  answers the certificate"
cat "$C/a.pem" "$C/a.key" >"$IT_DIR/a.concat"
api PUT /api/v1/pushcert --data-binary "@$IT_DIR/a.concat"
expect_status 200 "PUT of the concatenated PEM, same topic"
expect_body_jq '.replaced, .sha256' "$(printf 'true\n%s' "$(sha a)")" \
    "  replaced it"
api PUT /api/v1/pushcert --data-binary '{"cert": "x"}'
expect_api_error 400 "PUT without a key: 400"
cat "$C/notmdm.pem" "$C/notmdm.key" >"$IT_DIR/n.concat"
api PUT /api/v1/pushcert --data-binary "@$IT_DIR/n.concat"
expect_api_error 400 "PUT of a non-MDM certificate: 400" "com.apple.mgmt."
api GET /api/v1/pushcert
expect_body_jq '[.pushcerts[].topic] | sort | join(",")' \
    "$(printf '%s\n%s' "$IT_TOPIC" "$TOPIC2" | sort | paste -sd,)" \
    "  GET shows both"

# ---- start-up warning; no key in the log ----
it_stop_responder
it_start_responder
for _ in $(seq 50); do
	grep -q "push certificate for $TOPIC2 expires" "$IT_DIR/fcgi.log" &&
	    break
	sleep 0.1
done
expect_true "the responder warns at start-up" \
    "$(tail -n 3 "$IT_DIR/fcgi.log")" \
    grep -Eq "push certificate for $TOPIC2 expires in (19|20) days" \
    "$IT_DIR/fcgi.log"
expect_eq "$(grep -c "push certificate for $IT_TOPIC" "$IT_DIR/fcgi.log" ||
    true)" 0 "no warning for a valid certificate"
expect_eq "$(leaks "$IT_DIR/fcgi.log" a a2 b)" "" \
    "no key in the responder's log"

# ---- check, dump and restore carry the certificates ----
expect_exit 0 "check is clean with certificates stored" ctl check
ctl dump --secrets -o "$IT_DIR/both.json"
"$PM_BUILD/picomdmctl" --db "$IT_DIR/db2" restore "$IT_DIR/both.json" \
    >/dev/null 2>&1 || fail "restore of dump --secrets" "exit $?"
expect_eq "$("$PM_BUILD/picomdmctl" --db "$IT_DIR/db2" pushcert list --json |
    jq -c 'map([.topic, .sha256])')" \
    "$(ctl pushcert list --json | jq -c 'map([.topic, .sha256])')" \
    "restore of dump --secrets: the same certificates"
expect_exit 0 "  and the restored store checks clean" \
    "$PM_BUILD/picomdmctl" --db "$IT_DIR/db2" check

# ---- purge --topic ----
out=$(ctl purge --topic "$TOPIC2" --yes --verify 2>&1) || true
expect_true "purge --topic removes the topic's certificate" "$out" \
    grep -q "^removed	pushcert	1$" <<<"$out"
expect_true "  --verify finds nothing" "$out" grep -q "^verify	0 hits" <<<"$out"
expect_eq "$(ctl pushcert list | cut -f 1)" "$IT_TOPIC" "  the other stays"
out=$(ctl purge --topic "$IT_TOPIC" --yes --verify 2>&1) || true
expect_true "purge --topic with devices takes the certificate too" "$out" \
    grep -Ezq "removed	device	1.*removed	pushcert	1" <<<"$out"
expect_true "  --verify finds nothing" "$out" grep -q "^verify	0 hits" <<<"$out"
expect_eq "$(ctl pushcert list)" "" "  no certificate left"
ctl dump --secrets -o "$IT_DIR/after.json"
expect_eq "$(leaks "$IT_DIR/after.json" a a2 b)" "" "  no key in the store"
expect_exit 0 "check is clean" ctl check

it_done
