#!/usr/bin/env bash
#
# make-fixture.sh - write the store fixture in this directory: a small
# store with an entry of every sub-database and every record kind, secrets
# included (push tokens, UnlockToken, BootstrapToken, raw messages, command
# results), made by real check-ins through nginx plus tools/picomdm-gen,
# then kept twice:
#
#	store.raw   "picomdmctl dump --raw": the store's exact bytes
#	store.json  "picomdmctl dump --secrets": its JSON form
#
# and what picomdmctl made of it: inventory.json (inventory --json of the
# first device), purge-device.out and purge-topic.out (purge of that
# device, then purge by the test topic, both --verify) and
# after-purge.json (dump --secrets after both). test-store-files.sh
# requires all of them unchanged.
#
# tests/unit/test-admin restores store.raw into an empty store with the
# code being tested and requires its "dump --secrets" to be byte-identical
# to store.json (and the same of a restore of store.json): the proof that
# a change to the store's codec, registry or dump left their output as it
# was. Both files are frozen: run this again only when the store's format
# changes on purpose, and say so in the commit.
#
# store.raw and store.json are of store format 1, before queue positions
# moved from the qpos sub-database into the cmdq records and before
# results were keyed by sequence with result_index (formats 2 and 3, both
# 2026-12-05): they are also the old store that test-store-files.sh
# upgrades, and
# store-upgraded.json is that store after its first writable open
# ("picomdmctl check --repair" of a restore of store.raw, then dump
# --secrets); purge-device.out and after-purge.json are of the purges
# after that upgrade. Running this again writes the new format: keep the
# old store.raw and store.json elsewhere for the upgrade test.
#
# usage: PICOMDM_BUILD=build tests/data/store/make-fixture.sh

set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../integration/lib.sh
. "$here/../../integration/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../../integration/lib-api.sh
. "$here/../../integration/lib-api.sh"

gen() { "$PM_ROOT/scripts/mkcerts" "$IT_CERTS" "$@"; }
must() { # STATUS WHAT
	[[ $STATUS == "$1" ]] || it_abort "$2: got $STATUS, not $1"
}

it_start
it_stop_responder
"$PM_BUILD/tools/picomdm-gen" --db "$IT_DB" --devices 3 --queue 2 \
    --results 3 --topics 2 2>"$IT_DIR/gen.log" ||
    it_abort "picomdm-gen" "$(cat "$IT_DIR/gen.log")"
it_start_responder

udid=0000FE00-FIXT-0000-0000-000000000001
uid=A1B2C3D4-0000-1111-2222-333344445555
tok1=$(openssl rand -base64 32)
tok2=$(openssl rand -base64 32)
checkin "$(auth_plist "$udid" C02FIXTURE01 IMEI="35 123456 789012 3" \
    MEID=A1000012345678)" device1
must 200 Authenticate
checkin "$(token_plist "$udid" "$tok1" UnlockToken:data="$(openssl rand -base64 48)")" device1
must 200 TokenUpdate
checkin "$(token_plist "$udid" "$tok2" UserID="$uid" UserShortName=alice \
    UserLongName="Alice Example")" device1
must 200 "user-channel TokenUpdate"
f=$(it_file set-bst.plist)
plist_write "$f" MessageType=SetBootstrapToken UDID="$udid" \
    BootstrapToken:data="$(openssl rand -base64 24)" \
    AwaitingConfiguration:bool=false
checkin "$f" device1
must 200 SetBootstrapToken
report=$(printf '{"StatusItems":{"device":{"identifier":{"udid":"%s"}}}}' \
    "$udid" | base64 -w 0)
f=$(it_file dm-status.plist)
plist_write "$f" MessageType=DeclarativeManagement UDID="$udid" \
    Endpoint=status Data:data="$report"
checkin "$f" device1
must 200 "DeclarativeManagement status"

# User Enrollment: an EnrollmentID, no UDID.
ue=UE-FIXTURE-0000-0001
gen ue1 >/dev/null
f=$(it_file ue-auth.plist)
plist_write "$f" MessageType=Authenticate Topic="$IT_TOPIC" EnrollmentID="$ue"
checkin "$f" ue1
must 200 "UE Authenticate"
f=$(it_file ue-token.plist)
plist_write "$f" MessageType=TokenUpdate Topic="$IT_TOPIC" EnrollmentID="$ue" \
    Token:data="$tok1" PushMagic=UE-MAGIC
checkin "$f" ue1
must 200 "UE TokenUpdate"

# Commands: acknowledged with a result, failed with an ErrorChain,
# NotNow, one left queued, one for both channels.
enqueue_raw "$udid" FIXT-CMD-1 DeviceInformation "" \
    '<key>Queries</key><array><string>OSVersion</string></array>'
must 200 "enqueue 1"
enqueue_raw "$udid" FIXT-CMD-2 ProfileList
must 200 "enqueue 2"
enqueue_raw "$udid" FIXT-CMD-3 SecurityInfo
must 200 "enqueue 3"
enqueue_raw "$udid,$udid:$uid" FIXT-CMD-4 InstalledApplicationList
must 200 "enqueue 4"
[[ $(send "$udid" device1 Idle) == FIXT-CMD-1 ]] || it_abort "Idle"
[[ $(send "$udid" device1 Acknowledged FIXT-CMD-1 \
    QueryResponses:raw='<dict><key>OSVersion</key><string>17.5.1</string></dict>') == FIXT-CMD-2 ]] ||
    it_abort "Acknowledged"
chain='<array><dict><key>ErrorCode</key><integer>12021</integer><key>ErrorDomain</key><string>MCMDMErrorDomain</string><key>LocalizedDescription</key><string>Nope</string></dict></array>'
[[ $(send "$udid" device1 Error FIXT-CMD-2 ErrorChain:raw="$chain") == FIXT-CMD-3 ]] ||
    it_abort "Error"
send "$udid" device1 NotNow FIXT-CMD-3 >/dev/null
must 200 NotNow

# A device that checked out.
udid2=0000FE00-FIXT-0000-0000-000000000002
enroll "$udid2" device2 C02FIXTURE02
checkin "$(checkout_plist "$udid2")" device2
must 200 CheckOut

it_stop_responder
"$PM_BUILD/picomdmctl" --db "$IT_DB" dump --raw --secrets -o "$here/store.raw"
"$PM_BUILD/picomdmctl" --db "$IT_DB" dump --secrets -o "$here/store.json"
P=("$PM_BUILD/picomdmctl" --db "$IT_DB")
"${P[@]}" inventory "$udid" --json >"$here/inventory.json"
"${P[@]}" purge "$udid" --yes --verify >"$here/purge-device.out"
"${P[@]}" purge --topic "$IT_TOPIC" --yes --verify >"$here/purge-topic.out"
"${P[@]}" dump --secrets -o "$here/after-purge.json"
chmod 0644 "$here"/*.json "$here"/*.out "$here/store.raw"
it_done
