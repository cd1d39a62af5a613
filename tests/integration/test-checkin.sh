#!/usr/bin/env bash
#
# test-checkin.sh - the check-in protocol through real nginx and TLS with
# real device certificates: identity binding (another device's certificate
# is refused and changes nothing; renewal replaces the binding), the
# Mdm-Signature path without a TLS client certificate, user channels, User
# Enrollment and Shared iPad IDs, every other check-in message, and the
# single /mdm URL routed by content type. Refusals are checked by their
# logged reason too (a certificate bound to one device Authenticating as
# another, never-seen UDID is refused as bound to another enrollment);
# re-Authenticate clears the queues of the device and its user channels,
# disables them and keeps the BootstrapToken; DeclarativeManagement
# answers exactly the keys Apple's schema names; no secret the test sent
# appears in the responder's log.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

conf_dir=$(mktemp -d)
IT_RESPONDER_ARGS=(--config "$conf_dir/picomdm.conf")
printf '%s\n' 'user_authenticate = challenge' \
    'digest_challenge = picomdm-test-challenge' >"$conf_dir/picomdm.conf"
it_start
rm -rf "$conf_dir"

udid=0000FE00-AAAA-1111-2222-333344445555
serial=C02TESTCHK01
tok1=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
tok2=HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=
gen() { "$PM_ROOT/scripts/mkcerts" "$IT_CERTS" "$@"; }

# ---- device1 and device2 enroll; device2's certificate cannot act as 1 ----
udid2=0000FE00-BBBB-1111-2222-333344445555
checkin "$(auth_plist "$udid" "$serial")" device1
expect_status 200 "Authenticate with device1's certificate"
checkin "$(token_plist "$udid" "$tok1" UnlockToken:data=dW5sb2Nr)" device1
expect_status 200 "TokenUpdate with device1's certificate"
checkin "$(auth_plist "$udid2" C02TESTCHK02)" device2
expect_status 200 "Authenticate of a second device with its own certificate"
before=$(db_digest)
checkin "$(token_plist "$udid" "$tok2")" device2
expect_status 403 "TokenUpdate for device1's UDID with device2's certificate"
expect_logged 403 "certificate bound to another enrollment" \
    "... refused as bound to another enrollment (logged)"
expect_eq "$(db_digest)" "$before" "the refused TokenUpdate changed nothing"
checkin "$(auth_plist "$udid" "$serial")" device2
expect_status 403 \
    "Authenticate for device1's UDID with device2's (bound) certificate"
expect_logged 403 "certificate bound to another enrollment" \
    "... refused as bound to another enrollment (logged)"
expect_eq "$(db_digest)" "$before" "the refused Authenticate changed nothing"
# device2's certificate, bound to udid2, Authenticates as a UDID never
# seen: no renewal rule applies, only "bound to another enrollment".
udid3=0000FE00-CCCC-1111-2222-333344445555
checkin "$(auth_plist "$udid3" C02TESTCHK03)" device2
expect_status 403 "Authenticate of a new UDID with a certificate bound to another"
expect_logged 403 "certificate bound to another enrollment" \
    "... refused as bound to another enrollment (logged)"
expect_eq "$(db_digest)" "$before" "the refused new-UDID Authenticate changed nothing"
expect_exit 1 "... and that UDID is not known afterwards" ctl show "$udid3"
f=$(it_file idle-as-1.plist)
plist_write "$f" Status=Idle UDID="$udid"
connect "$f" device2
expect_status 403 "command report for device1's UDID with device2's certificate"
expect_logged 403 "certificate bound to another enrollment" \
    "... refused as bound to another enrollment (logged)"
show=$(ctl show "$udid")
expect_jq "$show" '.enrollments[0].token.sha256' "$(sha256_b64 "$tok1")" \
    "device1's push token is intact"

# A certificate from another CA, an expired one, none: refused before
# anything is written. With "ssl_verify_client optional" nginx itself
# answers 400 for a certificate it cannot verify.
checkin "$(token_plist "$udid" "$tok2")" foreign
expect_status 400 "certificate from another CA refused by nginx"
checkin "$(token_plist "$udid" "$tok2")" expired
expect_status 400 "expired certificate refused by nginx"
checkin "$(token_plist "$udid" "$tok2")" none
expect_status 400 "no certificate at all refused"
expect_eq "$(db_digest)" "$before" "refused requests changed nothing"

# With "optional_no_ca" nginx lets any certificate through: the responder
# must refuse it itself, against its own --device-ca.
sed -i 's/ssl_verify_client optional;/ssl_verify_client optional_no_ca;/' \
    "$IT_DIR/nginx/nginx.conf"
nginx -p "$IT_DIR/nginx/" -e "$IT_DIR/nginx/error.log" \
    -c "$IT_DIR/nginx/nginx.conf" -s reload
sleep 0.5
checkin "$(token_plist "$udid" "$tok2")" foreign
expect_status 403 "optional_no_ca: certificate from another CA refused (403)"
expect_logged 403 "nginx client verification failed" \
    "... with its reason logged"
checkin "$(token_plist "$udid" "$tok2")" expired
expect_status 400 "optional_no_ca: nginx still refuses an expired certificate"
checkin_signed "$(token_plist "$udid" "$tok2")" expired
expect_status 403 "expired certificate in Mdm-Signature refused (403)"
checkin "$(auth_plist "$udid" "$serial")" foreign
expect_status 403 "optional_no_ca: foreign Authenticate refused (403)"
expect_eq "$(db_digest)" "$before" "foreign and expired certificates wrote nothing"
checkin "$(token_plist "$udid" "$tok1")" device1
expect_status 200 "optional_no_ca: the device's own certificate still works"
before=$(db_digest)

# ---- renewal: a new certificate on Authenticate replaces the binding ----
gen renewed >/dev/null
checkin "$(auth_plist "$udid" "$serial")" renewed
expect_status 200 "Authenticate with a renewed certificate (same UDID)"
checkin "$(token_plist "$udid" "$tok2")" renewed
expect_status 200 "TokenUpdate with the renewed certificate"
checkin "$(token_plist "$udid" "$tok1")" device1
expect_status 403 "the superseded certificate is refused after renewal"
expect_logged 403 "certificate superseded by a renewal" \
    "... as superseded by a renewal (logged)"
show=$(ctl show "$udid")
expect_jq "$show" '.enrollments[0].token.sha256' "$(sha256_b64 "$tok2")" \
    "token from the renewed device stored"
expect_jq "$show" '.enrollments[0].token_update_tally' 1 \
    "tally restarts after re-Authenticate (newly enrolled)"
expect_jq "$show" '.device.unlock_token.length' 6 \
    "UnlockToken kept though the later TokenUpdate omitted it"

# ---- Mdm-Signature: no TLS client certificate ----
sudid=0000FE00-SIGN-0000-0000-000000000001
gen signer1 >/dev/null
f=$(auth_plist "$sudid" C02SIGNED001)
checkin_signed "$f" signer1
expect_status 200 "Authenticate identified by Mdm-Signature"
checkin_signed "$(token_plist "$sudid" "$tok1")" signer1
expect_status 200 "TokenUpdate identified by Mdm-Signature"
f=$(token_plist "$sudid" "$tok2")
sig=$(mdm_signature "$f" signer1)
printf ' ' >>"$f" # the body no longer matches the signature
checkin "$f" none -H "Mdm-Signature: $sig"
expect_status 400 "Mdm-Signature over a different body refused"
f=$(token_plist "$sudid" "$tok2")
checkin_signed "$f" foreign
expect_status 403 "Mdm-Signature by a foreign certificate refused"
expect_logged 403 "certificate issued by CN=picomdm demo other CA,O=picomdm demo, which is not in --device-ca" \
    "... by the responder's own chain check (logged)"
checkin_signed "$(checkout_plist "$sudid")" signer1
expect_status 200 "CheckOut identified by Mdm-Signature"

# ---- Mdm-Signature by an RSA identity, the key SCEP makes a device use ----
rudid=0000FE00-SIGN-0000-0000-0000000000A5
"$PM_ROOT/scripts/mkcerts" -r "$IT_CERTS" rsasigner1 >/dev/null
expect_eq "$(openssl pkey -in "$IT_CERTS/devices/rsasigner1.key" -noout \
    -text | head -n 1)" "Private-Key: (2048 bit, 2 primes)" \
    "mkcerts -r made an RSA-2048 device key"
checkin_signed "$(auth_plist "$rudid" C02SIGNRSA01)" rsasigner1
expect_status 200 "Authenticate signed by an RSA identity"
checkin_signed "$(token_plist "$rudid" "$tok1")" rsasigner1
expect_status 200 "TokenUpdate signed by the same RSA identity (seen before)"
f=$(token_plist "$rudid" "$tok2")
sig=$(mdm_signature "$f" rsasigner1)
printf ' ' >>"$f"
checkin "$f" none -H "Mdm-Signature: $sig"
expect_status 400 "RSA Mdm-Signature over a different body refused"
expect_jq "$(ctlok show "$rudid")" '.enrollments[0].token_update_tally' 1 \
    "the refused body changed nothing"
expect_jq "$(ctlok show "$sudid")" '.enrollments[0].enabled' false \
    "CheckOut disabled the signed enrollment"

# ---- a user channel on the device (macOS-style) ----
uid=A1B2C3D4-0000-1111-2222-333344445555
checkin "$(token_plist "$udid" "$tok1" UserID="$uid" \
    UserShortName=alice UserLongName="Alice Example")" renewed
expect_status 200 "user-channel TokenUpdate"
show=$(ctl show "$udid")
expect_jq "$show" '.enrollments[1].id' "$udid:$uid" "user channel ID is UDID:UserID"
expect_jq "$show" '.enrollments[1].type' User "user channel type"
expect_jq "$show" '.enrollments[1].user_short_name' alice "short name stored"

# ---- Shared iPad: all-F UserID, ID from the short name ----
ipad=0000FE00-IPAD-0000-0000-000000000001
gen ipad1 >/dev/null
checkin "$(auth_plist "$ipad" C02IPAD0001)" ipad1
checkin "$(token_plist "$ipad" "$tok1")" ipad1
checkin "$(token_plist "$ipad" "$tok2" \
    UserID=FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF \
    UserShortName=student@school.example)" ipad1
expect_status 200 "Shared iPad user TokenUpdate"
expect_jq "$(ctlok show "$ipad:student@school.example")" \
    '.enrollments[1].type' SharediPad "Shared iPad user channel stored"

# ---- User Enrollment: EnrollmentID, no UDID, no serial ----
ue=UE-ENROLLMENT-0000-0001
gen ue1 >/dev/null
f=$(it_file ue-auth.plist)
plist_write "$f" MessageType=Authenticate Topic="$IT_TOPIC" EnrollmentID="$ue"
checkin "$f" ue1
expect_status 200 "User Enrollment Authenticate (EnrollmentID)"
f=$(it_file ue-token.plist)
plist_write "$f" MessageType=TokenUpdate Topic="$IT_TOPIC" EnrollmentID="$ue" \
    Token:data="$tok1" PushMagic=UE-MAGIC
checkin "$f" ue1
expect_status 200 "User Enrollment device-channel TokenUpdate"
f=$(it_file ue-user.plist)
plist_write "$f" MessageType=TokenUpdate Topic="$IT_TOPIC" EnrollmentID="$ue" \
    EnrollmentUserID=UE-USER-1 Token:data="$tok2" PushMagic=UE-MAGIC-2
checkin "$f" ue1
expect_status 200 "User Enrollment user-channel TokenUpdate"
show=$(ctl show "$ue")
expect_jq "$show" '.enrollments[0].type' UserEnrollmentDevice "UE device type"
expect_jq "$show" '.enrollments[1].id' "$ue:UE-USER-1" "UE user ID"
expect_jq "$show" '.device.serial_number' null "no serial for User Enrollment"

# ---- the other check-in messages ----
f=$(it_file set-bst.plist)
plist_write "$f" MessageType=SetBootstrapToken UDID="$udid" \
    BootstrapToken:data=Ym9vdHN0cmFwLXNlY3JldA== AwaitingConfiguration:bool=false
checkin "$f" renewed
expect_status 200 "SetBootstrapToken"
f=$(it_file get-bst.plist)
plist_write "$f" MessageType=GetBootstrapToken UDID="$udid" \
    AwaitingConfiguration:bool=false
checkin "$f" renewed
expect_status 200 "GetBootstrapToken"
if grep -q 'Ym9vdHN0cmFwLXNlY3JldA==' "$BODY"; then
	pass "GetBootstrapToken answers the stored token"
else
	fail "GetBootstrapToken answers the stored token" "$(it_body_hint)"
fi
expect_jq "$(ctlok show "$udid")" '.device.bootstrap_token.length' 16 \
    "bootstrap token shown as length only"
f=$(it_file del-bst.plist)
plist_write "$f" MessageType=SetBootstrapToken UDID="$udid"
checkin "$f" renewed
expect_status 200 "SetBootstrapToken without a token (delete)"
checkin "$(it_file get-bst.plist)" renewed
expect_eq "$(wc -c <"$BODY")" 0 "GetBootstrapToken with none stored: empty body"
expect_jq "$(ctlok show "$udid")" .device.bootstrap_token null \
    "the deleted bootstrap token is gone from the store"
checkin "$(it_file set-bst.plist)" renewed
expect_status 200 "SetBootstrapToken again"
f=$(it_file empty-bst.plist)
plist_write "$f" MessageType=SetBootstrapToken UDID="$udid" BootstrapToken:data= \
    AwaitingConfiguration:bool=false
checkin "$f" renewed
expect_status 200 "SetBootstrapToken with an empty token (delete)"
checkin "$(it_file get-bst.plist)" renewed
expect_eq "$(wc -c <"$BODY")" 0 "an empty token deleted it: empty body"
expect_jq "$(ctlok show "$udid")" .device.bootstrap_token null \
    "an empty token deleted it from the store"

f=$(it_file dm-tokens.plist)
plist_write "$f" MessageType=DeclarativeManagement UDID="$udid" Endpoint=tokens
checkin "$f" renewed
expect_status 200 "DeclarativeManagement tokens"
expect_jq "$(cat "$BODY")" '[keys, (.SyncTokens | keys)] | tostring' \
    '[["SyncTokens"],["DeclarationsToken","Timestamp"]]' \
    "tokens answers exactly SyncTokens{DeclarationsToken, Timestamp}"
expect_jq "$(cat "$BODY")" '.SyncTokens.DeclarationsToken | type == "string" and length > 0' \
    true "tokens answers a DeclarationsToken string"
f=$(it_file dm-items.plist)
plist_write "$f" MessageType=DeclarativeManagement UDID="$udid" \
    Endpoint=declaration-items
checkin "$f" renewed
expect_status 200 "DeclarativeManagement declaration-items"
expect_jq "$(cat "$BODY")" '[keys, (.Declarations | keys)] | tostring' \
    '[["Declarations","DeclarationsToken"],["Activations","Assets","Configurations","Management"]]' \
    "declaration-items answers exactly Declarations and DeclarationsToken"
expect_jq "$(cat "$BODY")" \
    '[.Declarations[] | type == "array" and length == 0] | all' true \
    "each declaration list is an empty array"
expect_jq "$(cat "$BODY")" '.DeclarationsToken | type == "string" and length > 0' \
    true "with a DeclarationsToken"
report=$(printf '{"StatusItems":{"device":{"identifier":{"udid":"%s"}}}}' \
    "$udid" | base64 -w 0)
f=$(it_file dm-status.plist)
plist_write "$f" MessageType=DeclarativeManagement UDID="$udid" \
    Endpoint=status Data:data="$report"
checkin "$f" renewed
expect_status 200 "DeclarativeManagement status report stored"
expect_jq "$(ctlok show "$udid")" \
    '[.enrollments[0].messages[].message] | index("DeclarativeManagement") != null' \
    true "status report kept among the device's messages"
f=$(it_file dm-decl.plist)
plist_write "$f" MessageType=DeclarativeManagement UDID="$udid" \
    Endpoint=declaration/configuration/none
checkin "$f" renewed
expect_status 404 "a declaration that does not exist: 404"

f=$(it_file gettoken.plist)
plist_write "$f" MessageType=GetToken UDID="$udid" \
    TokenServiceType=com.apple.maid
checkin "$f" renewed
expect_status 501 "GetToken without a token service: clear 501"

# UserAuthenticate: challenge configured for this responder.
f=$(it_file ua1.plist)
plist_write "$f" MessageType=UserAuthenticate UDID="$udid" UserID="$uid" \
    UserShortName=alice UserLongName="Alice Example"
checkin "$f" renewed
expect_status 200 "UserAuthenticate first request (challenge configured)"
if grep -q 'picomdm-test-challenge' "$BODY"; then
	pass "UserAuthenticate answers DigestChallenge"
else
	fail "UserAuthenticate answers DigestChallenge" "$(it_body_hint)"
fi
f=$(it_file ua2.plist)
plist_write "$f" MessageType=UserAuthenticate UDID="$udid" UserID="$uid" \
    DigestResponse=response-value
checkin "$f" renewed
expect_status 200 "UserAuthenticate second request (DigestResponse)"
expect_eq "$(wc -c <"$BODY")" 0 "second UserAuthenticate: empty body"

# Every kept message knows the APNs topic it came through, even those
# that carry no Topic key (purge --topic relies on it).
expect_jq "$(ctlok show "$udid")" \
    '[.enrollments[].messages[].topic] | all(. == "'"$IT_TOPIC"'")' true \
    "every stored message of the device carries its topic"

# ---- the single /mdm URL, routed by content type ----
mudid=0000FE00-MDM1-0000-0000-000000000001
gen mdm1 >/dev/null
mapfile -t certargs < <(it_cert_args mdm1)
put_raw /mdm "${certargs[@]}" -H "Content-Type: $IT_CHECKIN_TYPE" \
    --data-binary "@$(auth_plist "$mudid" C02MDMURL01)"
expect_status 200 "Authenticate on the single /mdm URL"
put_raw /mdm "${certargs[@]}" -H "Content-Type: $IT_CHECKIN_TYPE" \
    --data-binary "@$(token_plist "$mudid" "$tok1")"
expect_status 200 "TokenUpdate on the single /mdm URL"
f=$(it_file idle.plist)
plist_write "$f" Status=Idle UDID="$mudid"
put_raw /mdm "${certargs[@]}" -H "Content-Type: $IT_CONNECT_TYPE" \
    --data-binary "@$f"
expect_status 200 "command report (Idle) on the single /mdm URL"
expect_eq "$(wc -c <"$BODY")" 0 "Idle with an empty queue: empty body"

# ---- CheckOut of the device disables its user channels ----
checkin "$(checkout_plist "$udid")" renewed
expect_status 200 "CheckOut"
show=$(ctl show "$udid")
expect_jq "$show" '[.enrollments[].enabled] | any' false \
    "CheckOut disabled the device and its user channels"

# ---- re-Authenticate: queues cleared, channels disabled until the next
# TokenUpdate, the BootstrapToken kept ----
checkin "$(token_plist "$udid" "$tok1")" renewed
expect_status 200 "TokenUpdate re-enables the device channel"
checkin "$(token_plist "$udid" "$tok2" UserID="$uid" UserShortName=alice \
    UserLongName="Alice Example")" renewed
expect_status 200 "TokenUpdate re-enables the user channel"
checkin "$(it_file set-bst.plist)" renewed
expect_status 200 "SetBootstrapToken before re-Authenticate"
printf '{"request_type": "ProfileList"}\n' >"$(it_file cmd.json)"
for id in "$udid" "$udid:$uid"; do
	ctl enqueue "$id" "$(it_file cmd.json)" >/dev/null ||
	    it_abort "setup: picomdmctl enqueue to $id"
	ctl enqueue "$id" "$(it_file cmd.json)" --priority 9 >/dev/null ||
	    it_abort "setup: picomdmctl enqueue to $id"
done
expect_jq "$(ctlok queue "$udid")" '.queue | length' 2 "two commands queued for the device"
expect_jq "$(ctlok queue "$udid:$uid")" '.queue | length' 2 "two for its user"
expect_jq "$(ctlok show "$udid")" '[.enrollments[].enabled] | all' true \
    "device and user channels enabled"
checkin "$(auth_plist "$udid" "$serial")" renewed
expect_status 200 "re-Authenticate of the device"
expect_jq "$(ctlok queue "$udid")" '.queue | type == "array" and length == 0' true \
    "re-Authenticate cleared the device's queue"
expect_jq "$(ctlok queue "$udid:$uid")" '.queue | type == "array" and length == 0' true \
    "... and its user channel's queue"
show=$(ctl show "$udid")
expect_jq "$show" '[.enrollments[] | [.id, .enabled]] | tostring' \
    "[[\"$udid\",false],[\"$udid:$uid\",false]]" \
    "... and disabled the device and its user channel"
expect_jq "$show" '.device.bootstrap_token.length' 16 \
    "the BootstrapToken is kept across re-Authenticate"
checkin "$(it_file get-bst.plist)" renewed
if grep -q 'Ym9vdHN0cmFwLXNlY3JldA==' "$BODY"; then
	pass "GetBootstrapToken after re-Authenticate answers it"
else
	fail "GetBootstrapToken after re-Authenticate answers it" "$(it_body_hint)"
fi

# ---- secrets never in the responder's log (it runs at debug level) ----
it_stop_responder
grep -q ' debug ' "$IT_DIR/fcgi.log" ||
    it_abort "setup: the responder logged at debug level"
leaks=
for secret in "$tok1" "$tok2" "$(base64 -d <<<"$tok1" | xxd -p -c 256)" \
    "$(base64 -d <<<"$tok2" | xxd -p -c 256)" dW5sb2Nr unlock \
    Ym9vdHN0cmFwLXNlY3JldA== bootstrap-secret \
    8B0E2D3C-7A61-4F59-9E1C-4D2B6A8F0C13 UE-MAGIC picomdm-test-challenge \
    response-value; do
	if grep -q -F -- "$secret" "$IT_DIR/fcgi.log"; then
		leaks+=" $secret"
	fi
done
expect_eq "${leaks:-none}" none \
    "no push token, PushMagic, UnlockToken, BootstrapToken or digest in fcgi.log"

it_done
