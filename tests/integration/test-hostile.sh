#!/usr/bin/env bash
#
# test-hostile.sh - hostile input through real nginx and TLS: each case
# asserts its status code and that the store is byte-for-byte unchanged.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

it_start

udid=0000FE00-HOST-0000-0000-000000000001
tok=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
checkin "$(auth_plist "$udid" C02HOSTILE1)" device1
expect_status 200 "setup: Authenticate"
checkin "$(token_plist "$udid" "$tok")" device1
expect_status 200 "setup: TokenUpdate"
before=$(db_digest)

# case NAME WANT FILE [ENDPOINT] [CURL_ARG...]: PUT FILE as device1.
case_() {
	local name=$1 want=$2 file=$3 ep=${4:-/mdm/checkin}
	local -a certargs
	shift $(($# >= 4 ? 4 : 3))
	mapfile -t certargs < <(it_cert_args device1)
	put_raw "$ep" "${certargs[@]}" -H "Content-Type: $IT_CHECKIN_TYPE" \
	    --data-binary "@$file" "$@"
	expect_status "$want" "$name: $want"
	expect_eq "$(db_digest)" "$before" "$name: nothing written"
}

f=$(it_file empty); : >"$f"
case_ "empty body" 400 "$f"
f=$(it_file notplist); printf 'hello, world\n' >"$f"
case_ "not a plist" 400 "$f"
f=$(it_file json); printf '{"MessageType":"TokenUpdate"}' >"$f"
case_ "JSON body" 400 "$f"
f=$(it_file binary)
python3 - "$f" "$udid" <<'PY'
import plistlib, sys
with open(sys.argv[1], "wb") as fh:
    plistlib.dump({"MessageType": "Authenticate", "UDID": sys.argv[2],
                   "Topic": "com.apple.mgmt.x"}, fh, fmt=plistlib.FMT_BINARY)
PY
case_ "binary plist" 400 "$f"
f=$(it_file truncated)
head -c 200 "$(token_plist "$udid" "$tok")" >"$f"
case_ "truncated XML" 400 "$f"
f=$(it_file deep-open)
{ printf '<?xml version="1.0"?><plist version="1.0">'
  for ((i = 0; i < 10000; i++)); do printf '<dict>'; done; } >"$f"
case_ "10,000-deep nesting (unclosed, check-in)" 400 "$f"
f=$(it_file deep-full)
python3 - "$f" <<'PY'
import sys
d = 10000
body = ('<?xml version="1.0"?><plist version="1.0"><dict><key>Status</key>'
        '<string>Idle</string><key>X</key>' + '<array>' * d + '</array>' * d +
        '</dict></plist>')
open(sys.argv[1], "w").write(body)
PY
case_ "10,000-deep nesting (command report)" 400 "$f" /mdm/connect
f=$(it_file overcap)
python3 -c 'import sys; sys.stdout.write("<plist><dict><key>A</key><string>" + "x" * 70000 + "</string></dict></plist>")' >"$f"
case_ "body over the 64 KiB cap" 413 "$f"
f=$(it_file megastring)
python3 -c 'import sys; sys.stdout.write("<plist><dict><key>UDID</key><string>" + "x" * 1048576 + "</string></dict></plist>")' >"$f"
case_ "1 MB string in a command report" 400 "$f" /mdm/connect
case_ "1 MB string in a check-in" 413 "$f"
f=$(it_file badlen); cp "$(token_plist "$udid" "$tok")" "$f"
case_ "Content-Length shorter than the body" 400 "$f" /mdm/checkin \
    -H "Content-Length: 10"
f=$(it_file unknown-type)
plist_write "$f" MessageType=Shutdown UDID="$udid" Topic="$IT_TOPIC"
case_ "unknown MessageType" 400 "$f"
f=$(it_file no-udid)
plist_write "$f" MessageType=TokenUpdate Topic="$IT_TOPIC" \
    Token:data="$tok" PushMagic=x
case_ "missing UDID" 400 "$f"
f=$(it_file udid-int)
plist_write "$f" MessageType=TokenUpdate Topic="$IT_TOPIC" \
    UDID:integer=12345 Token:data="$tok" PushMagic=x
case_ "UDID as integer" 400 "$f"
f=$(it_file token-string)
plist_write "$f" MessageType=TokenUpdate Topic="$IT_TOPIC" UDID="$udid" \
    Token="$tok" PushMagic=x
case_ "Token as string" 400 "$f"
# A TokenUpdate that would apply but for one thing another plist parser
# reads differently from libplist (module/plist.c, the strict form).
good=$(token_plist "$udid" "$tok")
# ambiguous NAME EXTRA [OLD NEW]: the TokenUpdate with EXTRA before its
# closing </dict> (and OLD replaced by NEW), which must be refused.
ambiguous() {
	local f
	f=$(it_file "ambig-$RANDOM")
	python3 - "$good" "$f" "$2" "${3-}" "${4-}" <<'PY'
import sys
src, dst, extra, old, new = sys.argv[1:6]
b = open(src, "rb").read()
if old:
    assert old.encode() in b
    b = b.replace(old.encode(), new.encode().decode("unicode_escape").encode("latin-1"))
i = b.rindex(b"</dict>")
b = b[:i] + extra.encode().decode("unicode_escape").encode("latin-1") + b[i:]
open(dst, "wb").write(b)
PY
	case_ "$1" 400 "$f"
}
ambiguous "repeated key (a second UDID)" \
    '<key>UDID</key><string>0000FE00-HOST-0000-0000-000000000002</string>'
ambiguous "integer with a leading zero" '<key>N</key><integer>010</integer>'
ambiguous "integer past 64 bits" \
    '<key>N</key><integer>99999999999999999999</integer>'
ambiguous "invalid date (30 February)" \
    '<key>D</key><date>2024-02-30T00:00:00Z</date>'
ambiguous "malformed base64 in <data>" '<key>B</key><data>QQ=</data>'
ambiguous "CR LF inside a string" '<key>S</key><string>a\r\nb</string>'
ambiguous "control character reference" '<key>S</key><string>&#1;</string>'
ambiguous "ISO-8859-1 declared" '<key>S</key><string>caf\xe9</string>' \
    'encoding="UTF-8"' 'encoding="ISO-8859-1"'
ambiguous "invalid UTF-8" '<key>S</key><string>caf\xc3</string>'
ambiguous "a key without its value" '<key>Dangling</key>'

f=$(it_file good); cp "$(token_plist "$udid" "$tok")" "$f"
case_ "GET instead of PUT" 405 "$f" /mdm/checkin -X GET
case_ "POST instead of PUT" 405 "$f" /mdm/checkin -X POST
expect_eq "$(sed -n 's/^[Aa]llow: *//p' "$HEADERS" | tr -d '\r')" PUT \
    "  and Allow: PUT"
mapfile -t certargs < <(it_cert_args device1)
put_raw /mdm/checkin "${certargs[@]}" -H "Content-Type: text/plain" \
    --data-binary "@$f"
expect_status 415 "wrong content type: 415"
expect_eq "$(db_digest)" "$before" "wrong content type: nothing written"
put_raw /mdm/checkin -H "Content-Type: $IT_CHECKIN_TYPE" --data-binary "@$f"
expect_status 400 "missing certificate: 400"
expect_eq "$(db_digest)" "$before" "missing certificate: nothing written"
mapfile -t certargs < <(it_cert_args foreign)
put_raw /mdm/checkin "${certargs[@]}" -H "Content-Type: $IT_CHECKIN_TYPE" \
    --data-binary "@$f"
expect_status 400 "certificate from another CA: 400 (nginx)"
expect_eq "$(db_digest)" "$before" "certificate from another CA: nothing written"
put_raw /nowhere -H "Content-Type: $IT_CHECKIN_TYPE" --data-binary "@$f"
if [[ $STATUS == 404 ]]; then pass "unknown path: 404"; else
	fail "unknown path: 404" "status $STATUS"; fi

# The header PICOMDM_CLIENT_CERT cannot be injected as a request header.
esc=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read(), safe=""))' \
    "$IT_CERTS/devices/device1.pem")
put_raw /mdm/checkin -H "Content-Type: $IT_CHECKIN_TYPE" \
    -H "Picomdm-Client-Cert: $esc" -H "PICOMDM_CLIENT_CERT: $esc" \
    --data-binary "@$f"
expect_status 400 "certificate injected as a request header is ignored"
expect_eq "$(db_digest)" "$before" "injected header: nothing written"

# After all that, the device still works.
checkin "$f" device1
expect_status 200 "the device is served normally afterwards"

it_done
