#!/usr/bin/env bash
#
# test-deploy.sh - the deployment README.md describes ("Deploying behind
# nginx"), followed as written, under a temporary root R instead of / and
# as the user running the test (no service user, nginx's group is ours):
#
#   make install (DESTDIR=R), the picomdm.conf of the README, the installed
#   picomdm-fcgi on its unix socket, the installed nginx/picomdm-site.conf
#   included as is by an nginx.conf of Debian's shape, then the README's
#   curl check-in and command report, with its plists.
#
# The only changes made to what the docs say are the path prefix R, the
# port (443 -> a free one) and the socket's group; the test checks that the
# site needed no other change. It also checks that the site's parameters
# and locations are those of nginx/picomdm.conf.in, the template the other
# tests use.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

IT_MAIN_PID=$BASHPID
IT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/picomdm-it.$IT_NAME.XXXXXX")
trap 'deploy_cleanup' EXIT
IT_CERTS=${PICOMDM_IT_CERTS:-$IT_DIR/certs}
"$PM_ROOT/scripts/mkcerts" "$IT_CERTS" || it_abort "setup: scripts/mkcerts"
R=$IT_DIR/root
readme=$PM_ROOT/README.md
fpid=
port=

deploy_cleanup() {
	local rc=$?
	set +e
	[[ $BASHPID == "$IT_MAIN_PID" ]] || return 0
	stop_nginx "$R/nginx"
	if [[ -n $fpid ]] && kill -0 "$fpid" 2>/dev/null; then
		kill -TERM "$fpid"
		pm_wait_gone "$fpid" 10 || kill -KILL "$fpid"
	fi
	IT_DIR_SAVE=$IT_DIR
	IT_DIR=
	if ((IT_FAIL > 0 || rc != 0)) || [[ -n ${PICOMDM_IT_KEEP-} ]]; then
		echo "# $IT_NAME: kept $IT_DIR_SAVE"
		tail -n 5 "$IT_DIR_SAVE/fcgi.log" 2>/dev/null | sed 's/^/#   /'
	else
		rm -rf "$IT_DIR_SAVE"
	fi
}

# doc_heredoc FILE: the here-document of README.md written to FILE
# ("cat >FILE <<'EOF'" ... "EOF").
doc_heredoc() {
	awk -v start="cat >$1 <<'EOF'" '
		$0 == start { on = 1; next }
		on && $0 == "EOF" { exit }
		on { print }' "$readme"
}

# doc_command PREFIX N: the Nth (1-based) command of README.md starting
# with PREFIX, continuation lines joined.
doc_command() {
	awk -v p="$1" -v n="$2" '
		index($0, p) == 1 { k++; if (k == n) on = 1 }
		on { line = line $0 "\n"; if ($0 !~ /\\$/) { printf "%s", line; exit } }' \
	    "$readme"
}

# to_root: the documented absolute paths, under R; the port; our group.
to_root() {
	sed -e "s|/etc/picomdm/|$R/etc/picomdm/|g" \
	    -e "s|/run/picomdm/|$R/run/picomdm/|g" \
	    -e "s|/var/lib/picomdm|$R/var/lib/picomdm|g" \
	    -e "s|/usr/local/|$R$prefix/|g" \
	    -e "s|https://mdm.example.com|https://localhost:$port|g" \
	    -e "s|listen 443 ssl;|listen 127.0.0.1:$port ssl;|" \
	    -e "s|socket_group = www-data|socket_group = $(id -gn)|"
}

# Step 1: make install.
prefix=$(sed -n 's/^prefix = //p' "$PM_BUILD/Makefile")
if make -C "$PM_BUILD" -s install DESTDIR="$R" >"$IT_DIR/install.log" 2>&1; then
	pass "make install"
else
	it_abort "make install" "$(tail -n 3 "$IT_DIR/install.log")"
fi
site=$R$prefix/share/picomdm/nginx/picomdm-site.conf
for f in "$R$prefix/sbin/picomdm-fcgi" "$R$prefix/bin/picomdmctl" "$site" \
    "$R$prefix/share/man/man8/picomdm-fcgi.8"; do
	[[ -e $f ]] && pass "installed ${f#"$R"}" || fail "installed ${f#"$R"}"
done

# Steps 2 to 4: directories, certificates, API key.
install -d -m 0700 "$R/var/lib/picomdm"
install -d -m 0750 "$R/run/picomdm"
install -d -m 0755 "$R/etc/picomdm" "$R/etc/picomdm/tls"
cp "$IT_CERTS/ca.pem" "$R/etc/picomdm/device-ca.pem"
cp "$IT_CERTS/server.pem" "$IT_CERTS/server.key" "$R/etc/picomdm/tls/"
(umask 077 && openssl rand -hex 32 >"$R/etc/picomdm/api.key")

port=$(free_ports 1)

# Step 5: picomdm.conf, as README.md has it.
conf=$(doc_heredoc /etc/picomdm/picomdm.conf)
[[ -n $conf ]] || it_abort "README.md has the picomdm.conf here-document"
to_root <<<"$conf" >"$R/etc/picomdm/picomdm.conf"

# Step 6: the installed responder with that file.
"$R$prefix/sbin/picomdm-fcgi" --config "$R/etc/picomdm/picomdm.conf" \
    --workers 2 </dev/null >"$IT_DIR/fcgi.log" 2>&1 &
fpid=$!
wait_for_socket "$R/run/picomdm/fcgi.sock" 10 ||
    it_abort "picomdm-fcgi did not start" "$(tail -n 3 "$IT_DIR/fcgi.log")"
expect_eq "$(stat -c '%G %a' "$R/run/picomdm/fcgi.sock")" "$(id -gn) 660" \
    "socket group and mode as configured"

# Step 7: the installed site, included as is by a Debian-shaped nginx.conf.
mkdir -p "$R/nginx/tmp" "$R/etc/nginx/conf.d"
to_root <"$site" >"$R/etc/nginx/conf.d/picomdm.conf"
changed=$(diff <(grep -v '^[[:space:]]*#' "$site") \
    <(grep -v '^[[:space:]]*#' "$R/etc/nginx/conf.d/picomdm.conf") |
    grep -c '^>' || true)
expect_eq "$changed" 5 \
    "the site needed only its 4 documented paths and the port changed"
{
	if ((EUID == 0)); then
		echo "user $(id -un) $(id -gn);"
	fi
	cat <<EOF
worker_processes 1;
pid $R/nginx/nginx.pid;
error_log $R/nginx/error.log info;
events { worker_connections 256; }
http {
	access_log $R/nginx/access.log;
	client_body_temp_path $R/nginx/tmp/body;
	fastcgi_temp_path $R/nginx/tmp/fastcgi;
	proxy_temp_path $R/nginx/tmp/proxy;
	scgi_temp_path $R/nginx/tmp/scgi;
	uwsgi_temp_path $R/nginx/tmp/uwsgi;
	include $R/etc/nginx/conf.d/*.conf;
}
EOF
} >"$R/etc/nginx/nginx.conf"
if nginx -q -t -p "$R/nginx/" -e "$R/nginx/error.log" \
    -c "$R/etc/nginx/nginx.conf" 2>"$IT_DIR/nginx-t.log"; then
	pass "nginx -t accepts the site"
else
	it_abort "nginx -t accepts the site" "$(tail -n 2 "$IT_DIR/nginx-t.log")"
fi
(start_nginx "$R/nginx" "$R/etc/nginx/nginx.conf") 2>>"$IT_DIR/nginx-t.log" ||
    it_abort "nginx starts" "$(tail -n 2 "$IT_DIR/nginx-t.log")"

# The README's check-in and command report, with its plists and curl.
cd "$IT_DIR"
doc_heredoc authenticate.plist >authenticate.plist
doc_heredoc idle.plist >idle.plist
udid=$(sed -n 's|.*<key>UDID</key><string>\(.*\)</string>|\1|p' idle.plist)
serial=$(sed -n 's|.*<key>SerialNumber</key><string>\(.*\)</string>|\1|p' \
    authenticate.plist)
[[ -n $udid && -n $serial ]] || it_abort "README.md has the two plists"
mkdir -p "$R/etc/picomdm/demo"
cp -r "$IT_CERTS/." "$R/etc/picomdm/demo/"

# doc_curl N: run README.md's Nth "curl --cert" command; STATUS, BODY.
doc_curl() {
	local cmd
	cmd=$(doc_command "curl --cert" "$1" | to_root)
	[[ -n $cmd ]] || it_abort "README.md has curl command $1"
	BODY=$IT_DIR/body.$1
	cmd=${cmd//$'\\\n'/ }
	STATUS=$(eval "$cmd -sS -o '$BODY' -w '%{http_code}'" \
	    "--resolve localhost:$port:127.0.0.1" 2>"$IT_DIR/curl.err") ||
	    STATUS=000
}

doc_curl 1
expect_status 200 "the README's curl check-in: 200"
expect_eq "$(wc -c <"$BODY")" 0 "the check-in is answered with an empty body"
ctl=$R$prefix/bin/picomdmctl
expect_jq "$("$ctl" --db "$R/var/lib/picomdm" show "$serial" 2>&1)" \
    .device.udid "$udid" "picomdmctl show (installed) finds the device"

doc_curl 2
expect_status 200 "the README's curl command report: 200"
expect_eq "$(wc -c <"$BODY")" 0 "Idle with nothing queued: empty body"

printf '{"request_type": "DeviceInformation", "Queries": ["OSVersion"]}\n' \
    >cmd.json
if "$ctl" --db "$R/var/lib/picomdm" enqueue "$udid" cmd.json \
    >enqueue.out 2>&1; then
	pass "picomdmctl enqueue"
else
	fail "picomdmctl enqueue" "$(cat enqueue.out)"
fi
doc_curl 2
expect_status 200 "Idle again: 200"
if grep -q '<string>DeviceInformation</string>' "$BODY"; then
	pass "Idle gets the queued command's plist"
else
	fail "Idle gets the queued command's plist" "$(head -c 200 "$BODY")"
fi

# The site and the template the tests use agree on what reaches the
# responder.
params() {
	grep -E '^[[:space:]]*(fastcgi_param|client_max_body_size|location|ssl_verify)' \
	    "$1" | tr -s ' \t' ' ' | sed 's/^ //'
}
if diff <(params "$site") <(params "$PM_ROOT/nginx/picomdm.conf.in") \
    >"$IT_DIR/params.diff"; then
	pass "site and template: the same parameters, locations and caps"
else
	fail "site and template: the same parameters, locations and caps" \
	    "$(head -n 4 "$IT_DIR/params.diff" | tr '\n' ' ')"
fi

# A clean stop removes the socket.
kill -TERM "$fpid"
pm_wait_gone "$fpid" 10 || true
[[ ! -e $R/run/picomdm/fcgi.sock ]] && pass "socket removed at stop" ||
    fail "socket removed at stop"
if grep -q -e 'ERROR: AddressSanitizer' -e 'runtime error:' \
    "$IT_DIR/fcgi.log"; then
	fail "no sanitizer reports" "see $IT_DIR/fcgi.log"
fi
cd /
echo "# $IT_NAME: $IT_PASS passed, $IT_FAIL failed"
((IT_FAIL == 0)) || exit 1
exit 0
