#!/usr/bin/env bash
#
# test-queue.sh - the command protocol through real nginx and TLS with
# each device's own client certificate, commands queued over the operator
# API and picomdmctl: Idle gets a command byte for byte; Acknowledged gets
# the next; an Error's ErrorChain is stored and readable over the API; the
# NotNow sequence (Idle->A, NotNow(A)->B, Ack(B)->A, NotNow(A)->empty,
# Idle->A, Ack(A)->empty); a duplicate Ack and an unknown CommandUUID are
# recorded and change nothing; priority order; expiry; cancel; one
# command to 100 enrollments; a user channel's queue apart from its
# device's; a 3 MB InstalledApplicationList result kept byte for byte.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-api.sh
. "$(dirname "$0")/lib-api.sh"

it_start

udid=00008120-0012345678ABCDEF
enroll "$udid" device1 QUEUE0000001

# ---- Idle, Acknowledged, Error ----

enqueue_raw "$udid" cmd-a ProfileList
expect_status 200 "enqueue A"
enqueue_raw "$udid" cmd-b DeviceInformation "" \
    '<key>Queries</key><array><string>UDID</string></array>'
enqueue_raw "$udid" cmd-c CertificateList
connect "$(report "$udid" Idle)" device1
expect_status 200 "Idle answered"
if cmp -s "$BODY" "$(it_file cmd-cmd-a.plist)"; then
	pass "Idle gets A byte for byte as enqueued"
else
	fail "Idle gets A byte for byte as enqueued" "$(it_body_hint)"
fi
expect_eq "$(send "$udid" device1 Idle)" cmd-a \
    "A sent again while unanswered (at least once)"
expect_eq "$(send "$udid" device1 Acknowledged cmd-a)" cmd-b \
    "Acknowledged(A) gets B"
chain='<array><dict><key>ErrorCode</key><integer>12021</integer>'
chain+='<key>ErrorDomain</key><string>MCMDMErrorDomain</string>'
chain+='<key>LocalizedDescription</key><string>Not managed.</string>'
chain+='<key>USEnglishDescription</key><string>The app is not managed.'
chain+='</string></dict><dict><key>ErrorCode</key><integer>4</integer>'
chain+='<key>ErrorDomain</key><string>MCInstallationErrorDomain</string>'
chain+='</dict></array>'
expect_eq "$(send "$udid" device1 Error cmd-b ErrorChain:raw="$chain")" \
    cmd-c "Error(B) gets C"
expect_eq "$(send "$udid" device1 Acknowledged cmd-c)" "" \
    "Acknowledged(C): empty reply, queue done"
expect_eq "$(wc -c <"$BODY")" 0 "the empty reply has no body"

api GET "/api/v1/results/$udid?limit=1&before=$(jq -r '.results[0].seq' \
    <<<"$(api GET "/api/v1/results/$udid"; cat "$BODY")")"
expect_body_jq '.results[0].command_uuid' cmd-b "history: B before C"
expect_body_jq '.results[0].status' Error "B's status is Error"
expect_body_jq '[.results[0].error_chain[].code] | join(",")' 12021,4 \
    "ErrorChain codes readable over the API"
expect_body_jq '[.results[0].error_chain[].domain] | join(",")' \
    MCMDMErrorDomain,MCInstallationErrorDomain "ErrorChain domains"
expect_body_jq '.results[0].error_chain[0].us_english_description' \
    "The app is not managed." "ErrorChain description"
expect_body_jq '.results[0].error_chain[1].description' null \
    "a missing description is null"
api GET /api/v1/commands/cmd-b
expect_body_jq '.targets[0].status' Error "command B: Error for the device"

# ---- NotNow ----

enqueue_raw "$udid" nn-a ProfileList
enqueue_raw "$udid" nn-b ProfileList
expect_eq "$(send "$udid" device1 Idle)" nn-a "NotNow: Idle -> A"
expect_eq "$(send "$udid" device1 NotNow nn-a)" nn-b "NotNow(A) -> B"
expect_eq "$(send "$udid" device1 Acknowledged nn-b)" nn-a \
    "Acknowledged(B) -> A again"
expect_eq "$(send "$udid" device1 NotNow nn-a)" "" "NotNow(A) -> empty"
api GET "/api/v1/queue/$udid"
expect_body_jq '.queue[0].status' NotNow "A stays queued as NotNow"
expect_body_jq '.queue[0].not_now_count' 2 "NotNow counted twice"
expect_eq "$(send "$udid" device1 Idle)" nn-a "Idle -> A"
expect_eq "$(send "$udid" device1 Acknowledged nn-a)" "" \
    "Acknowledged(A) -> empty"

# ---- duplicate and unknown reports ----
# With two commands queued: a duplicate or unknown CommandUUID is
# recorded, answered with the next command, and leaves the queue as it
# was (neither cancels, answers nor reorders anything).

enqueue_raw "$udid" dup-1 ProfileList
enqueue_raw "$udid" dup-2 ProfileList
expect_eq "$(send "$udid" device1 Acknowledged nn-a)" dup-1 \
    "a duplicate Acknowledged is answered with the next command"
expect_eq "$(send "$udid" device1 Acknowledged no-such-command)" dup-1 \
    "an unknown CommandUUID is answered with the next command"
expect_eq "$(send "$udid" device1 Error no-such-command-2)" dup-1 \
    "an unknown CommandUUID's Error is answered with the next command"
api GET "/api/v1/results/$udid?limit=3"
expect_body_jq '[.results[].command_uuid] | join(",")' \
    no-such-command-2,no-such-command,nn-a "the three reports recorded"
expect_body_jq '[.results[].known] | join(",")' false,false,false \
    "and marked as not queued"
api GET "/api/v1/queue/$udid"
expect_status 200 "queue readable after them"
expect_body_jq '[.queue[].command_uuid] | join(",")' dup-1,dup-2 \
    "both queued commands still there, in order"
expect_eq "$(send "$udid" device1 Acknowledged dup-1)" dup-2 \
    "the queue still works after them"
expect_eq "$(send "$udid" device1 Acknowledged dup-2)" "" "and empties"

# ---- priority ----

enqueue_raw "$udid" p-low ProfileList
enqueue_raw "$udid" p-high ProfileList priority=200
enqueue_raw "$udid" p-mid ProfileList priority=50
enqueue_raw "$udid" p-high2 ProfileList priority=200
order=$(send "$udid" device1 Idle)
for u in p-high p-high2 p-mid p-low; do
	order+=",$(send "$udid" device1 Acknowledged "$u")"
done
expect_eq "$order" "p-high,p-high2,p-mid,p-low," \
    "priority first, then enqueue order"

# ---- expiry ----

enqueue_raw "$udid" exp-1 ProfileList expires=1
expect_status 200 "enqueue with expires=1"
enqueue_raw "$udid" exp-2 ProfileList \
    "expires=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)"
api GET "/api/v1/queue/$udid"
expect_body_jq '[.queue[].command_uuid] | join(",")' exp-1,exp-2 \
    "both queued"
sleep 1.5
expect_eq "$(send "$udid" device1 Idle)" exp-2 "the expired one is never sent"
api GET /api/v1/commands/exp-1
expect_body_jq '.targets[0].status' Expired "and is reported as Expired"
expect_eq "$(send "$udid" device1 Acknowledged exp-2)" "" "queue empty"

# ---- cancel ----

enqueue_raw "$udid" can-1 ProfileList
enqueue_raw "$udid" can-2 ProfileList
enqueue_raw "$udid" can-3 ProfileList
api DELETE "/api/v1/queue/$udid/can-1"
expect_status 200 "cancel one over the API"
expect_eq "$(send "$udid" device1 Idle)" can-2 "a cancelled command is not sent"
api DELETE "/api/v1/queue/$udid"
expect_body_jq .cancelled 2 "cancel all: the sent-but-unanswered one too"
expect_eq "$(send "$udid" device1 Idle)" "" "nothing left to send"
api GET /api/v1/commands/can-2
expect_body_jq '.targets[0].status' Cancelled "reported as Cancelled"

# The same through picomdmctl, on the store the responder serves.
cmd_plist ctl-1 ProfileList >/dev/null
if out=$(ctl enqueue "$udid" "$(it_file cmd-ctl-1.plist)" --priority 3); then
	pass "picomdmctl enqueue"
else
	fail "picomdmctl enqueue" "exit $?: $out"
fi
expect_jq "$out" ".status[\"$udid\"].status" queued "picomdmctl: queued"
expect_jq "$(ctlok queue "$udid")" '.queue[0].command_uuid' ctl-1 \
    "picomdmctl queue lists it"
expect_jq "$(ctlok queue "$udid")" '.queue[0].priority' 3 "with its priority"
expect_jq "$(printf '{"request_type": "DeviceLock", "command_uuid": "ctl-2"}' |
    ctl enqueue "$udid,NOBODY" -)" '.status.NOBODY.status' \
    "unknown enrollment" "picomdmctl enqueue of JSON from stdin"
expect_exit 2 "picomdmctl enqueue of a duplicate CommandUUID exits 2" \
    ctl enqueue "$udid" "$(it_file cmd-ctl-1.plist)"
expect_exit 2 "picomdmctl enqueue of a bad command exits 2" \
    ctl enqueue "$udid" /dev/null
expect_eq "$(send "$udid" device1 Idle)" ctl-1 \
    "the device gets what picomdmctl queued"
expect_exit 0 "picomdmctl cancel one" ctl cancel "$udid" ctl-2
expect_exit 1 "picomdmctl cancel of what is not queued exits 1" \
    ctl cancel "$udid" ctl-2
expect_exit 0 "picomdmctl cancel all" ctl cancel "$udid"
expect_eq "$(send "$udid" device1 Idle)" "" "nothing left after that"
expect_jq "$(ctlok results "$udid" --limit 1)" '.results[0].command_uuid' \
    exp-2 "picomdmctl results, newest first"
expect_jq "$(ctlok results "$udid" --limit 3)" '.results | length' 3 \
    "picomdmctl results --limit"
expect_exit 1 "picomdmctl results of an unknown enrollment exits 1" \
    ctl results NOBODY

# ---- user channel ----

user=3A2B1C0D-9E8F-4A7B-B6C5-D4E3F2A1B0C9
uid="$udid:$user"
checkin "$(token_plist "$udid" "$(openssl rand -base64 32)" UserID="$user" \
    UserShortName=jane UserLongName="Jane Appleseed")" device1
expect_status 200 "user channel enrolled"
enqueue_raw "$(pct "$uid")" u-1 ProfileList
expect_status 200 "enqueue to the user channel"
enqueue_raw "$udid" d-1 ProfileList
ureport() {
	connect "$(report "$udid" "$1" "${2--}" UserID="$user" \
	    UserShortName=jane UserLongName="Jane Appleseed")" device1
	if [[ -s $BODY ]]; then
		sed -n '/<key>CommandUUID<\/key>/{n;s/.*<string>\(.*\)<\/string>.*/\1/p;}' \
		    "$BODY"
	else
		printf '\n'
	fi
}
expect_eq "$(send "$udid" device1 Idle)" d-1 "device channel: its own command"
expect_eq "$(send "$udid" device1 Acknowledged d-1)" "" \
    "device channel never gets the user's"
expect_eq "$(ureport Idle)" u-1 "user channel: its own command"
expect_eq "$(ureport Acknowledged u-1)" "" "user channel then empty"
api GET "/api/v1/results/$(pct "$uid")"
expect_body_jq '.results[0].command_uuid' u-1 "user channel's own history"

# ---- a 3 MB result ----

api POST "/api/v1/enqueue/$udid" --data-binary \
    '{"request_type": "InstalledApplicationList", "command_uuid": "apps-1"}'
expect_status 200 "enqueue InstalledApplicationList (JSON)"
expect_eq "$(send "$udid" device1 Idle)" apps-1 "Idle gets it"
big=$(it_file apps.plist)
{
	printf '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n'
	printf '<dict>\n<key>Status</key><string>Acknowledged</string>\n'
	printf '<key>UDID</key><string>%s</string>\n' "$udid"
	printf '<key>CommandUUID</key><string>apps-1</string>\n'
	printf '<key>InstalledApplicationList</key>\n<array>\n'
	awk 'BEGIN { for (i = 0; i < 13000; i++) printf "<dict><key>Identifier</key><string>com.example.app%06d</string><key>Name</key><string>Example App %d</string><key>Version</key><string>%d.0.1</string><key>ShortVersion</key><string>%d.0</string><key>BundleSize</key><integer>%d</integer><key>IsValidated</key><true/></dict>\n", i, i, i % 90, i % 90, i * 1000 }'
	printf '</array>\n</dict>\n</plist>\n'
} >"$big"
size=$(wc -c <"$big")
((size > 3000000 && size < 4000000)) ||
    it_abort "setup: the result file is 3 MB" "$size bytes"
note "result file: $size bytes"
connect "$big" device1
expect_status 200 "3 MB result accepted"
api GET "/api/v1/results/$udid?limit=1"
expect_body_jq '.results[0].command_uuid' apps-1 "3 MB result recorded"
expect_body_jq '.results[0].length' "$size" "with its full length"
seq=$(jq -r '.results[0].seq' "$BODY")
api GET "/api/v1/results/$udid/$seq"
expect_status 200 "the 3 MB result over the API"
expect_eq "$(jq -j .raw "$BODY" | sha256sum | cut -d' ' -f1)" \
    "$(sha256sum <"$big" | cut -d' ' -f1)" "raw result byte for byte"
expect_body_jq '.plist.InstalledApplicationList | length' 13000 \
    "decoded: every application"
expect_body_jq '.plist.InstalledApplicationList[12999].Identifier' \
    com.example.app012999 "decoded: the last one"

# ---- one command to 100 enrollments ----

# 100 identities the device CA issued: one key, 100 certificates (each
# its own serial, so each its own SHA-256 and binding); scripts/mkcerts
# would make a key per certificate, which takes far longer.
fleet=$IT_DIR/fleet
mkdir -p "$fleet"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$fleet/fleet.key" 2>/dev/null
openssl req -new -key "$fleet/fleet.key" -subj "/O=picomdm test/CN=fleet" \
    -out "$fleet/fleet.csr"
printf '%s\n' "basicConstraints = critical, CA:FALSE" \
    "keyUsage = critical, digitalSignature" \
    "extendedKeyUsage = clientAuth" >"$fleet/ext"
nums=$(seq -f %03g 1 100)
for n in $nums; do
	openssl x509 -req -in "$fleet/fleet.csr" -CA "$IT_CERTS/ca.pem" \
	    -CAkey "$IT_CERTS/ca.key" -set_serial "$((7000 + 10#$n))" \
	    -days 30 -extfile "$fleet/ext" -out "$fleet/$n.pem" 2>/dev/null ||
	    it_abort "setup: fleet certificate $n"
done
fleet_id() {
	printf '00008120-FLEET0000000%s\n' "$1"
}

# fleet_put PHASE PATH CTYPE: PUT $fleet/PHASE-NNN.plist for each of the
# 100 devices with its own certificate, in one curl running transfers in
# parallel; replies in $fleet/PHASE-NNN.out; prints how many got 200.
fleet_put() {
	local phase=$1 path=$2 ctype=$3 n cfg=$fleet/$1.curl first=1
	: >"$cfg"
	for n in $nums; do
		((first)) || printf 'next\n' >>"$cfg"
		first=0
		printf '%s\n' "url = \"$IT_URL$path\"" "request = PUT" \
		    "resolve = \"localhost:$IT_PORT:127.0.0.1\"" \
		    "cacert = \"$IT_CERTS/server-ca.pem\"" \
		    "cert = \"$fleet/$n.pem\"" "key = \"$fleet/fleet.key\"" \
		    "header = \"Content-Type: $ctype\"" \
		    "data-binary = \"@$fleet/$phase-$n.plist\"" \
		    "output = \"$fleet/$phase-$n.out\"" \
		    "write-out = \"%{http_code}\\n\"" >>"$cfg"
	done
	curl -sS --parallel --parallel-max 8 --max-time 60 -K "$cfg" \
	    2>"$fleet/$phase.err" |
	    grep -c '^200$' || true
}

for n in $nums; do
	plist_write "$fleet/auth-$n.plist" MessageType=Authenticate \
	    Topic="$IT_TOPIC" UDID="$(fleet_id "$n")" SerialNumber="FLEET$n" \
	    Model=MLPF3LL/A ModelName=iPhone OSVersion=17.5.1
	plist_write "$fleet/token-$n.plist" MessageType=TokenUpdate \
	    Topic="$IT_TOPIC" UDID="$(fleet_id "$n")" \
	    PushMagic=8B0E2D3C-7A61-4F59-9E1C-4D2B6A8F0C13 \
	    Token:data="$(openssl rand -base64 32)"
	plist_write "$fleet/idle-$n.plist" Status=Idle UDID="$(fleet_id "$n")"
	plist_write "$fleet/ack-$n.plist" Status=Acknowledged \
	    UDID="$(fleet_id "$n")" CommandUUID=fleet-cmd
done
expect_eq "$(fleet_put auth /mdm/checkin "$IT_CHECKIN_TYPE")" 100 \
    "100 devices authenticate, each with its own certificate"
expect_eq "$(fleet_put token /mdm/checkin "$IT_CHECKIN_TYPE")" 100 \
    "and send their TokenUpdate"
ids=$(for n in $nums; do fleet_id "$n"; done | paste -sd, -)
api PUT "/api/v1/enqueue/$ids,NOT-ENROLLED" \
    --data-binary "@$(cmd_plist fleet-cmd DeviceInformation \
    '<key>Queries</key><array><string>OSVersion</string></array>')"
expect_status 207 "one command to 100 enrollments (and one unknown)"
expect_body_jq '[.status[] | select(.status == "queued")] | length' 100 \
    "queued for all 100"
expect_body_jq '.status["NOT-ENROLLED"].status' "unknown enrollment" \
    "the unknown one reported"
expect_eq "$(fleet_put idle /mdm/connect "$IT_CONNECT_TYPE")" 100 \
    "100 devices poll (Idle)"
expect_eq "$(grep -l '<string>fleet-cmd</string>' "$fleet"/idle-*.out |
    wc -l)" 100 "each of the 100 gets the command"
if cmp -s "$fleet/idle-042.out" "$(it_file cmd-fleet-cmd.plist)"; then
	pass "byte for byte as enqueued"
else
	fail "byte for byte as enqueued"
fi
nums=$(seq -f %03g 1 50)
expect_eq "$(fleet_put ack /mdm/connect "$IT_CONNECT_TYPE")" 50 \
    "50 acknowledge it"
api GET /api/v1/commands/fleet-cmd
expect_body_jq '.targets | length' 100 "the command has 100 targets"
expect_body_jq '.counts.Acknowledged' 50 "50 acknowledged"
expect_body_jq '.counts.Queued' 50 "50 still queued"
api GET "/api/v1/enrollments?type=Device&enabled=true&limit=1000"
expect_body_jq '.enrollments | length' 101 "101 enabled devices listed"

it_done
