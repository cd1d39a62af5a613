#!/usr/bin/env bash
#
# test-multiproc.sh - two picomdm-fcgi processes serve one LMDB
# environment behind one nginx upstream while picomdmctl reads it: every
# write of either process is visible to the other and to the CLI.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

it_start

# A second responder on its own socket, same store.
sock2=$IT_DIR/fcgi2.sock
start_responder "$IT_DIR/fcgi2.pid" "$IT_DIR/fcgi2.log" \
    "$PM_BUILD/picomdm-fcgi" --db "$IT_DB" --socket "$sock2" \
    --device-ca "$IT_CERTS/ca.pem" --workers 2 --log-level info
wait_for_socket "$sock2" 10 "$IT_DIR/fcgi2.pid" ||
    it_abort "second responder did not start"
trap 'it_rc=$?; stop_responder "$IT_DIR/fcgi2.pid" picomdm-fcgi; (exit $it_rc); it_cleanup' EXIT
sed -i "s|server unix:$IT_SOCK;|server unix:$IT_SOCK;\n\t\tserver unix:$sock2;|" \
    "$IT_DIR/nginx/nginx.conf"
nginx -p "$IT_DIR/nginx/" -e "$IT_DIR/nginx/error.log" \
    -c "$IT_DIR/nginx/nginx.conf" -s reload
sleep 0.5

n=0
for i in $(seq 1 12); do
	udid=$(printf '0000FE00-MULTI-%04d' "$i")
	"$PM_ROOT/scripts/mkcerts" "$IT_CERTS" "mp$i" >/dev/null
	checkin "$(auth_plist "$udid" "C02MP$i")" "mp$i"
	[[ $STATUS == 200 ]] || fail "Authenticate $udid" "status $STATUS"
	tok=$(head -c 32 /dev/urandom | base64 -w 0)
	checkin "$(token_plist "$udid" "$tok")" "mp$i"
	[[ $STATUS == 200 ]] || fail "TokenUpdate $udid" "status $STATUS"
	got=$(ctlok show "$udid" | jq -r '.enrollments[0].token.sha256')
	[[ $got == "$(sha256_b64 "$tok")" ]] && n=$((n + 1))
done
expect_eq "$n" 12 "every device's token visible to picomdmctl at once"
c1=$(grep -c 'status=200' "$IT_DIR/fcgi.log" || true)
c2=$(grep -c 'status=200' "$IT_DIR/fcgi2.log" || true)
if ((c1 > 0 && c2 > 0)); then
	pass "both responder processes served ($c1 and $c2 requests)"
else
	fail "both responder processes served" "$c1 and $c2 requests"
fi
# nginx alternates: the Authenticate went to one process and the
# TokenUpdate to the other, so the binding was read from the shared store.
expect_eq "$(ctlok devices | wc -l)" 12 "picomdmctl devices lists all twelve"

stop_responder "$IT_DIR/fcgi2.pid" picomdm-fcgi
it_done
