#!/usr/bin/env bash
#
# test-store-files.sh - picomdmctl's store files, without a responder:
#
#   - the frozen store of tests/data/store restored by picomdmctl (from
#     its raw bytes) dumps with "dump --secrets" to exactly the JSON kept
#     with it, and its inventory, a purge of a device and a purge by topic
#     (with --verify) print exactly what they printed and leave exactly
#     the store they left when the fixture was made;
#   - the store, "dump -o" and a backup's data.mdb are all 0600 (each
#     holds every secret);
#   - a refused restore leaves nothing behind: no store in a directory it
#     created or found empty, and an existing store as it was;
#   - the first writable open moves the fixture's queue positions into
#     their cmdq records, rekeys its results by sequence with an index
#     and records store format 3; a store of a newer format is refused in
#     one line by picomdmctl (exit 2) and picomdm-fcgi (exit 1), and left
#     as it was.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

FIX=$PM_ROOT/tests/data/store
D=$(mktemp -d "${TMPDIR:-/tmp}/picomdm-it.$IT_NAME.XXXXXX")
trap 'rc=$?; if ((IT_FAIL == 0 && rc == 0)); then rm -rf "$D"; else echo "# kept $D"; fi' EXIT
pmctl() {
	"$PM_BUILD/picomdmctl" "$@"
}
mode() {
	stat -c %a "$1"
}
# same WHAT WANT GOT: the files are byte-identical.
same() {
	if cmp -s "$2" "$3"; then
		pass "$1"
	else
		fail "$1" "$(diff "$2" "$3" | head -c 300)"
	fi
}

# ---- the fixture, through picomdmctl ----
pmctl --db "$D/fix" restore "$FIX/store.raw" >"$D/restore.out" ||
    it_abort "restore of the fixture's raw form" "$(cat "$D/restore.out")"
expect_eq "$(cat "$D/restore.out")" "restored 110 records" \
    "restore: every entry of the fixture"
pmctl --db "$D/fix" dump --secrets -o "$D/fix.json"
same "dump --secrets of the restored fixture is byte-identical" \
    "$FIX/store.json" "$D/fix.json"
pmctl --db "$D/fix" check >"$D/check.out" 2>&1 ||
    fail "check of the restored fixture" "$(tail -n 3 "$D/check.out")"

# The fixture is a store of the format before queue positions moved into
# the DBI_CMDQ records (it keeps them in qpos) and results were keyed by
# sequence first (store format 1). A read-only open leaves it so (above);
# the first writable open moves them over, and the store is
# store-upgraded.json: no qpos entry, each position in its cmdq record,
# each result under [sequence, eid] with its result_index entry.
pmctl --db "$D/upg" restore "$FIX/store.raw" >/dev/null
pmctl --verbose --db "$D/upg" check --repair >"$D/check.out" 2>&1 ||
    fail "check --repair of the restored fixture" "$(tail -n 3 "$D/check.out")"
# The upgrade says so in the log, once: no way back for an older picomdm.
expect_eq "$(grep -c 'upgraded from store format 1 to 3; an older picomdm refuses it now' "$D/check.out")" \
    1 "the upgrade says in the log that an older picomdm refuses the store"
pmctl --db "$D/upg" dump --secrets -o "$D/upg.json"
same "a writable open moves the fixture's queue positions over" \
    "$FIX/store-upgraded.json" "$D/upg.json"
expect_eq "$(grep -c '"db":"qpos"' "$D/upg.json")" 0 \
    "and leaves no qpos entry"
expect_eq "$(grep -c '"db":"qpos"' "$FIX/store.json")" 9 \
    "(the fixture has nine)"
expect_eq "$(grep -c '"db":"result_index"' "$D/upg.json")" \
    "$(grep -c '"db":"result"' "$FIX/store.json")" \
    "and indexes every result"
pmctl --db "$D/upg" check >"$D/check.out" 2>&1 ||
    fail "check of the upgraded fixture" "$(tail -n 3 "$D/check.out")"
# The moved positions are used: a cancel finds the entry by its position.
pmctl --db "$D/upg" cancel 0000FE00-FIXT-0000-0000-000000000001 \
    FIXT-CMD-4 >"$D/cancel.out" 2>&1 ||
    fail "cancel of a command queued in the old format" \
    "$(cat "$D/cancel.out")"
pmctl --db "$D/upg" dump --secrets -o "$D/upg2.json"
expect_eq "$(grep -c '"db":"queue","key":\[4,0,28\]' "$D/upg2.json")" 0 \
    "and removes its queue entry"
expect_eq "$(grep '"db":"cmdq","key":\["FIXT-CMD-4",4\]' "$D/upg2.json" |
    grep -c '"status":"Cancelled"')" 1 "and records it cancelled"
expect_eq "$(grep '"db":"cmdq","key":\["FIXT-CMD-4",4\]' "$D/upg2.json" |
    grep -c 'queue_seq')" 0 "without a position"
pmctl --db "$D/upg" check >"$D/check.out" 2>&1 ||
    fail "check after the cancel" "$(tail -n 3 "$D/check.out")"

# The upgrade recorded this format (3) in meta, which an older picomdm
# refuses. A store of a format newer than this build knows is refused
# the same way, by every command and by the responder, in one line, and
# left as it was.
expect_eq "$(mdb_dump -s meta "$D/upg" |
    grep -A 1 '^ 736368656d615f76657273696f6e$' | tail -n 1)" \
    " 0000000000000003" "the upgrade records store format 3"
printf '%s\n' VERSION=3 format=bytevalue database=meta type=btree \
    HEADER=END ' 736368656d615f76657273696f6e' ' 0000000000000004' \
    DATA=END >"$D/format4.txt"
mdb_load -s meta -f "$D/format4.txt" "$D/upg" ||
    it_abort "mdb_load of a newer format into a scratch store"
cp "$D/upg/data.mdb" "$D/upg.before"
newer="store: $D/upg: made by a newer picomdm (store format 4, this one \
knows 3 at most): run that version or a later one"
for args in check "check --repair" "dump -o $D/newer.json"; do
	# shellcheck disable=SC2086 # the words of a command line
	expect_exit 2 "picomdmctl $args refuses a newer store format" \
	    pmctl --db "$D/upg" $args
	expect_eq "$(cat "$EXIT_ERR")" "picomdmctl: $newer" \
	    "in one line ($args)"
done
[[ ! -e $D/newer.json ]] || fail "the refused dump wrote no file"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$D/ca.key" -out "$D/ca.pem" -subj /CN=format-test -days 1 \
    2>/dev/null || it_abort "openssl req for a device CA"
expect_exit 1 "picomdm-fcgi refuses to start on a newer store format" \
    "$PM_BUILD/picomdm-fcgi" --db "$D/upg" --socket "$D/fcgi.sock" \
    --device-ca "$D/ca.pem"
expect_eq "$(grep -c "error $newer\$" "$EXIT_ERR")" 1 "and says why"
[[ ! -e $D/fcgi.sock ]] || fail "the refused start left no socket"
same "the store of a newer format is left as it was" "$D/upg.before" \
    "$D/upg/data.mdb"

# The inventory of a device, a purge of it and a purge by topic, as the
# code that made the fixture printed them, and the store they leave.
pmctl --db "$D/fix" inventory 0000FE00-FIXT-0000-0000-000000000001 --json \
    >"$D/inventory.json"
same "inventory of the fixture's device is as it was" \
    "$FIX/inventory.json" "$D/inventory.json"
pmctl --db "$D/pur" restore "$FIX/store.raw" >/dev/null
pmctl --db "$D/pur" purge 0000FE00-FIXT-0000-0000-000000000001 --yes \
    --verify >"$D/purge-device.out" 2>"$D/purge.err" ||
    fail "purge of a device" "$(cat "$D/purge.err")"
same "purge of a device removes what it removed" \
    "$FIX/purge-device.out" "$D/purge-device.out"
pmctl --db "$D/pur" purge --topic "$IT_TOPIC" --yes --verify \
    >"$D/purge-topic.out" 2>"$D/purge.err" ||
    fail "purge by topic" "$(cat "$D/purge.err")"
same "purge by topic removes what it removed" \
    "$FIX/purge-topic.out" "$D/purge-topic.out"
pmctl --db "$D/pur" dump --secrets -o "$D/after-purge.json"
same "and leaves the store it left" "$FIX/after-purge.json" \
    "$D/after-purge.json"

# ---- modes ----
expect_eq "$(mode "$D/fix/data.mdb")" 600 "the store is 0600"
expect_eq "$(mode "$D/fix.json")" 600 "dump -o is 0600"
pmctl --db "$D/fix" backup "$D/bak" >/dev/null 2>&1 ||
    fail "backup" "exit $?"
expect_eq "$(mode "$D/bak/data.mdb")" 600 "a backup's data.mdb is 0600"
pmctl --db "$D/bak" dump --secrets -o "$D/bak.json"
same "the backup holds the same store" "$FIX/store.json" "$D/bak.json"
expect_exit 2 "a backup over a store is refused" \
    pmctl --db "$D/fix" backup "$D/bak"
expect_eq "$(mode "$D/bak/data.mdb")" 600 "and leaves that store as it was"

# ---- a refused restore leaves nothing behind ----
head -c 20000 "$FIX/store.json" >"$D/truncated.json"
pmctl --db "$D/fix" dump -o "$D/plain.json" # secrets redacted
for bad in truncated plain; do
	expect_exit 2 "restore of a $bad dump into a new directory refused" \
	    pmctl --db "$D/new-$bad" restore "$D/$bad.json"
	if [[ -e $D/new-$bad ]]; then
		fail "the refused restore left nothing ($bad)" \
		    "$(find "$D/new-$bad" | tr '\n' ' ')"
	else
		pass "the refused restore left nothing ($bad)"
	fi
	mkdir "$D/empty-$bad"
	expect_exit 2 "restore of a $bad dump into an empty directory refused" \
	    pmctl --db "$D/empty-$bad" restore "$D/$bad.json"
	expect_eq "$(find "$D/empty-$bad" -mindepth 1 | wc -l)" 0 \
	    "the empty directory is left empty ($bad)"
	expect_exit 2 "restore --force of a $bad dump over a store refused" \
	    pmctl --db "$D/fix" restore --force "$D/$bad.json"
	pmctl --db "$D/fix" dump --secrets -o "$D/after.json"
	# (upgraded by the refused restore's writable open, nothing else)
	same "the store is as it was ($bad)" "$FIX/store-upgraded.json" \
	    "$D/after.json"
	rm -f "$D/after.json"
done
expect_exit 1 "restore over a store without --force refused" \
    pmctl --db "$D/fix" restore "$FIX/store.json"
if [[ -e $D/fix/data.mdb ]]; then
	pass "and the store is still there"
else
	fail "and the store is still there"
fi

it_done
