# shellcheck shell=bash
#
# lib-api.sh - helpers for the operator API and command-queue tests
# (test-api.sh, test-queue.sh), on top of lib.sh: API calls with the
# test's key, enrolling devices with their own certificates, command
# plists and command reports.
#
# Source after lib.sh and it_start.

# api METHOD PATH [CURL_ARG...]: call the operator API with the test's
# key. Sets STATUS, BODY and HEADERS like put_raw.
api() {
	local method=$1 path=$2
	shift 2
	put_raw "$path" -X "$method" \
	    -H "Authorization: Bearer $(cat "$IT_DIR/api.key")" "$@"
}

# api_body: the last response body.
api_body() {
	cat "$BODY"
}

# expect_body_jq FILTER WANT WHAT: jq -r FILTER on the last body.
expect_body_jq() {
	expect_jq "$(cat "$BODY")" "$1" "$2" "$3"
}

# expect_api_error STATUS WHAT [DETAIL_SUBSTRING]: the last reply is a
# JSON error {"error", "detail"} with that status (and detail text).
expect_api_error() {
	local want=$1 what=$2 sub=${3-} got detail
	got=$(jq -r 'if (.error|type) == "string" and (.detail|type) ==
	    "string" then "json-error" else "other" end' "$BODY" 2>/dev/null) ||
	    got="not JSON"
	detail=$(jq -r .detail "$BODY" 2>/dev/null) || detail=
	if [[ $STATUS != "$want" ]]; then
		fail "$what" "status $STATUS, want $want$(it_body_hint)"
	elif [[ $got != json-error ]]; then
		fail "$what" "not a JSON error$(it_body_hint)"
	elif [[ -n $sub && $detail != *"$sub"* ]]; then
		fail "$what" "detail '$detail' lacks '$sub'"
	else
		pass "$what"
	fi
}

# pct STRING: percent-encode everything but unreserved characters.
pct() {
	jq -rn --arg s "$1" '$s|@uri'
}

# enroll UDID CERT SERIAL: Authenticate and TokenUpdate a device with its
# own identity certificate; aborts the test when either is refused.
enroll() {
	local token
	token=$(openssl rand -base64 32)
	checkin "$(auth_plist "$1" "$3")" "$2"
	[[ $STATUS == 200 ]] || it_abort "enroll $1: Authenticate got $STATUS"
	checkin "$(token_plist "$1" "$token")" "$2"
	[[ $STATUS == 200 ]] || it_abort "enroll $1: TokenUpdate got $STATUS"
}

# cmd_plist UUID REQUEST_TYPE [XML...]: a raw command plist (extra
# Command keys as XML); prints its path.
cmd_plist() {
	local f
	f=$(it_file "cmd-$1.plist")
	{
		printf '<?xml version="1.0" encoding="UTF-8"?>\n'
		printf '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
		printf '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
		printf '<plist version="1.0">\n<dict>\n\t<key>Command</key>\n'
		printf '\t<dict>\n\t\t<key>RequestType</key>\n'
		printf '\t\t<string>%s</string>\n' "$2"
		printf '%s\n' "${@:3}"
		printf '\t</dict>\n\t<key>CommandUUID</key>\n'
		printf '\t<string>%s</string>\n</dict>\n</plist>\n' "$1"
	} >"$f"
	printf '%s\n' "$f"
}

# enqueue_raw IDS UUID REQUEST_TYPE [QUERY [XML...]]: PUT a raw command
# (see cmd_plist) with an optional query string.
enqueue_raw() {
	api PUT "/api/v1/enqueue/$1${4:+?$4}" \
	    --data-binary "@$(cmd_plist "$2" "$3" "${@:5}")"
}

# report UDID STATUS [UUID] [KEY=VALUE...]: write a command report and
# print its path (UUID "-" for none, as with Idle).
report() {
	local f udid=$1 status=$2 uuid=${3--}
	f=$(it_file "report-$RANDOM$RANDOM.plist")
	if [[ $uuid == - ]]; then
		plist_write "$f" Status="$status" UDID="$udid" "${@:4}"
	else
		plist_write "$f" Status="$status" UDID="$udid" \
		    CommandUUID="$uuid" "${@:4}"
	fi
	printf '%s\n' "$f"
}

# send UDID CERT STATUS [UUID] [KEY=VALUE...]: report to /mdm/connect
# and print the CommandUUID of the command in the reply ("" when empty).
send() {
	local udid=$1 cert=$2
	shift 2
	connect "$(report "$udid" "$@")" "$cert"
	if [[ $STATUS != 200 ]]; then
		printf 'status-%s\n' "$STATUS"
	elif [[ -s $BODY ]]; then
		sed -n '/<key>CommandUUID<\/key>/{n;s/.*<string>\(.*\)<\/string>.*/\1/p;}' \
		    "$BODY"
	else
		printf '\n'
	fi
}
