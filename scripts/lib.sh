# shellcheck shell=bash
#
# lib.sh - shell helpers shared by scripts/quickstart, scripts/test, the
# benchmark and the integration tests. Source it; it defines functions and
# a few variables and runs nothing.
#
#   PM_ROOT    the checkout (this file's parent directory's parent)
#   PM_BUILD   the build directory: $PICOMDM_BUILD, else $PM_ROOT/build
#   PM_JOBS    parallel make jobs: $PICOMDM_JOBS, else 2
#
# Processes are started in the background with their pid in a file and
# stopped by that pid only, after checking the pid still names the program
# that was started.

# shellcheck disable=SC2034 # used by the scripts that source this file
PM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PM_BUILD=${PICOMDM_BUILD:-$PM_ROOT/build}
PM_JOBS=${PICOMDM_JOBS:-2}

# Debian 12 packages needed to build, test and run everything here.
PM_PACKAGES=(
	build-essential autoconf automake libtool pkg-config
	libfcgi-dev libplist-dev liblmdb-dev lmdb-utils libssl-dev
	libjansson-dev libcurl4-openssl-dev python3-h2 nghttp2-client
	openssl nginx-light spawn-fcgi curl wrk jq python3 python3-yaml mandoc
	clang libclang-rt-14-dev valgrind
	scep debootstrap systemd systemd-container debhelper lintian
	python3-prometheus-client
)

pm_msg() {
	printf '%s: %s\n' "${0##*/}" "$*" >&2
}

pm_die() {
	pm_msg "$*"
	exit 1
}

# ensure_packages: apt-get install whichever of PM_PACKAGES are not
# installed (a script needing more appends to PM_PACKAGES first). Does nothing, and needs no network, when all
# are present; uses sudo only when not root.
ensure_packages() {
	local -a missing=() sudo=()
	local p st

	for p in "${PM_PACKAGES[@]}"; do
		st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null ||
		    true)
		[[ $st == ii* ]] || missing+=("$p")
	done
	((${#missing[@]} > 0)) || return 0
	command -v apt-get >/dev/null ||
	    pm_die "missing packages (${missing[*]}) and no apt-get"
	if ((EUID != 0)); then
		command -v sudo >/dev/null ||
		    pm_die "missing packages (${missing[*]}); not root, no sudo"
		sudo=(sudo)
	fi
	pm_msg "installing ${missing[*]}"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
	    pm_die "apt-get update failed"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends "${missing[@]}" ||
	    pm_die "apt-get install failed"
}

# build DIR [--any-config] [CONFIGURE_ARG...]: configure the checkout out
# of tree in DIR and make. Runs autoreconf when there is no configure
# script yet; re-runs configure (and make clean) when the arguments differ
# from the last run in DIR, unless --any-config says an existing
# configuration of any kind will do.
build() {
	local dir=$1 any=0 args stamp
	shift
	if [[ ${1-} == --any-config ]]; then
		any=1
		shift
	fi
	args="$*"
	if [[ ! -x $PM_ROOT/configure ]]; then
		pm_msg "autoreconf"
		(cd "$PM_ROOT" && autoreconf -fi) || pm_die "autoreconf failed"
	fi
	# An in-tree ./configure makes every out-of-tree one fail ("source
	# directory already configured"): say what to do instead.
	if [[ -f $PM_ROOT/config.status && $dir != "$PM_ROOT" ]]; then
		pm_die "the checkout itself has been configured (./configure" \
		    "run in $PM_ROOT); run 'make distclean' there, then" \
		    "build out of tree as README.md says (Building by hand)"
	fi
	mkdir -p "$dir"
	stamp=$dir/.picomdm-configure-args
	if [[ ! -f $dir/Makefile ]] ||
	    { ((any == 0)) && [[ "$(cat "$stamp" 2>/dev/null)" != "$args" ]]; }; then
		pm_msg "configure ${args:-(defaults)} in ${dir#"$PM_ROOT"/}"
		if [[ -f $dir/Makefile ]]; then
			make -C "$dir" -s clean >/dev/null 2>&1 || true
		fi
		if ! (cd "$dir" && "$PM_ROOT/configure" "$@") \
		    >"$dir/configure.out" 2>&1; then
			tail -n 30 "$dir/configure.out" >&2
			pm_die "configure failed (see $dir/config.log)"
		fi
		printf '%s\n' "$args" >"$stamp"
	fi
	make -C "$dir" -j"$PM_JOBS" || pm_die "make failed in $dir"
}

# render_nginx_conf TEMPLATE OUT NAME=VALUE...: substitute @NAME@ in the
# nginx template (see the list at the top of nginx/picomdm.conf.in).
# Lines naming an optional placeholder left empty are dropped; any
# placeholder left over is an error.
render_nginx_conf() {
	local tmpl=$1 out=$2 kv key val
	local -A v
	local -a sedargs=()
	local optional=" HTTP_PORT NULL_PORT NULL_HTTP_PORT "
	shift 2

	v=([DAEMON]=on [NGINX_WORKERS]=1 [ERROR_LOG_LEVEL]=warn
	    [ACCESS_LOG]=off [LISTEN]=127.0.0.1 [USER]=""
	    [HTTP_PORT]="" [NULL_PORT]="" [NULL_HTTP_PORT]="")
	if ((EUID == 0)); then
		# Workers run as whoever started nginx, so that they can
		# reach sockets and files made by the same user.
		v[USER]="user $(id -un) $(id -gn);"
	fi
	for kv in "$@"; do
		[[ $kv == *=* ]] || pm_die "render_nginx_conf: $kv: not NAME=VALUE"
		v[${kv%%=*}]=${kv#*=}
	done
	for key in PREFIX PORT SERVER_CERT SERVER_KEY DEVICE_CA SOCKET; do
		[[ -n ${v[$key]-} ]] || pm_die "render_nginx_conf: $key not set"
	done
	[[ -n ${v[NULL_SOCKET]-} ]] || v[NULL_SOCKET]=${v[PREFIX]}/fcgi-null.sock
	for key in "${!v[@]}"; do
		val=${v[$key]}
		[[ $val != *$'\n'* ]] || pm_die "render_nginx_conf: newline in $key"
		if [[ -z $val && $optional == *" $key "* ]]; then
			sedargs=(-e "/@${key}@/d" "${sedargs[@]}")
		else
			val=$(printf '%s' "$val" | sed 's/[\\|&]/\\&/g')
			sedargs+=(-e "s|@${key}@|${val}|g")
		fi
	done
	sed "${sedargs[@]}" "$tmpl" >"$out.tmp" || pm_die "cannot write $out"
	if grep -n '@[A-Z_][A-Z_]*@' "$out.tmp" >&2; then
		rm -f "$out.tmp"
		pm_die "render_nginx_conf: placeholders left in $tmpl"
	fi
	mv "$out.tmp" "$out"
}

# nginx_conf_keepalive CONF N: turn on keepalive to the responders in a
# rendered nginx configuration, the two lines nginx/picomdm.conf.in names:
# "keepalive N;" in each upstream and "fastcgi_keep_conn on;" in the
# server. Fails when the template no longer has the lines they follow.
nginx_conf_keepalive() {
	sed -i -e "s|^\([[:space:]]*server unix:.*;\)\$|\1\n\t\tkeepalive $2;|" \
	    -e 's|^\([[:space:]]*\)fastcgi_request_buffering on;$|&\n\1fastcgi_keep_conn on;|' \
	    "$1" || return 1
	[[ $(grep -c "^[[:space:]]*keepalive $2;\$" "$1") == 2 &&
	    $(grep -c '^[[:space:]]*fastcgi_keep_conn on;$' "$1") == 1 ]]
}

# pm_pid_is PIDFILE NAME: succeed when PIDFILE names a live process whose
# command line mentions NAME; print the pid.
pm_pid_is() {
	local pid
	[[ -f $1 ]] || return 1
	read -r pid <"$1" || [[ -n $pid ]] || return 1
	pm_pid_cmd_has "$pid" "$2" || return 1
	printf '%s\n' "$pid"
}

# pm_pid_cmd_has PID TEXT: succeed when PID is alive and its command line
# contains TEXT. (No pipeline: with pipefail, "tr | grep -q" can fail when
# grep exits first.)
pm_pid_cmd_has() {
	local cmd
	[[ $1 =~ ^[0-9]+$ && -r /proc/$1/cmdline ]] || return 1
	cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
	[[ $cmd == *"$2"* ]]
}

# pm_wait_gone PID SECONDS: wait until PID exits; fail on timeout.
pm_wait_gone() {
	local pid=$1 i
	for ((i = 0; i < $2 * 20; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

# start_nginx PREFIX CONF: start nginx with that prefix and configuration
# (which must say "daemon on"), and wait for its pid file.
start_nginx() {
	local prefix=$1 conf=$2 i
	command -v nginx >/dev/null || pm_die "nginx not found"
	mkdir -p "$prefix/tmp"
	if ! nginx -q -t -p "$prefix/" -e "$prefix/error.log" -c "$conf"; then
		pm_die "nginx rejects $conf"
	fi
	nginx -p "$prefix/" -e "$prefix/error.log" -c "$conf" ||
	    pm_die "nginx did not start (see $prefix/error.log)"
	for ((i = 0; i < 100; i++)); do
		pm_pid_is "$prefix/nginx.pid" nginx >/dev/null && return 0
		sleep 0.05
	done
	tail -n 5 "$prefix/error.log" >&2 || true
	pm_die "nginx did not write $prefix/nginx.pid"
}

# stop_nginx PREFIX: stop the nginx whose pid file is in PREFIX, if any.
stop_nginx() {
	local pid
	pid=$(pm_pid_is "$1/nginx.pid" nginx) || {
		rm -f "$1/nginx.pid"
		return 0
	}
	kill -TERM "$pid" 2>/dev/null || true
	if ! pm_wait_gone "$pid" 10; then
		pm_msg "nginx $pid did not stop; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		pm_wait_gone "$pid" 5 || true
	fi
	rm -f "$1/nginx.pid"
}

# start_responder PIDFILE LOG PROGRAM [ARG...]: run a FastCGI responder in
# the background in its own session, stderr appended to LOG, and record
# its pid. Pair with wait_for_socket.
start_responder() {
	local pidfile=$1 log=$2
	shift 2
	[[ -x $1 ]] || pm_die "$1: not built"
	setsid "$@" </dev/null >>"$log" 2>&1 &
	printf '%s\n' "$!" >"$pidfile"
	# Not a job of this shell: no "Killed" notice when it is stopped.
	disown "$!"
}

# stop_responder PIDFILE [NAME]: stop the process in PIDFILE (SIGTERM, then
# SIGKILL after 10 s), if it is still NAME (default: picomdm-fcgi).
stop_responder() {
	local pid
	pid=$(pm_pid_is "$1" "${2:-picomdm-fcgi}") || {
		rm -f "$1"
		return 0
	}
	kill -TERM "$pid" 2>/dev/null || true
	if ! pm_wait_gone "$pid" 10; then
		pm_msg "${2:-picomdm-fcgi} $pid did not stop; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		pm_wait_gone "$pid" 5 || true
	fi
	rm -f "$1"
}

# wait_for_socket PATH [SECONDS] [PIDFILE]: wait until something listens
# on the unix socket PATH; fail early when the process in PIDFILE has
# exited. The file alone is not enough: it appears at bind(), before
# listen(), and a connection in between is refused (nginx answers 502).
# /proc/net/unix flags a listening socket 00010000.
wait_for_socket() {
	local path=$1 secs=${2:-10} pidfile=${3-} i pid=
	[[ -z $pidfile ]] || pid=$(head -n 1 "$pidfile")
	for ((i = 0; i < secs * 20; i++)); do
		[[ -S $path ]] && awk -v p="$path" \
		    '$NF == p && $4 == "00010000" { f = 1 } END { exit !f }' \
		    /proc/net/unix && return 0
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		sleep 0.05
	done
	return 1
}

# free_ports N: print N distinct TCP ports free on 127.0.0.1 right now.
free_ports() {
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# port_in_use PORT: succeed when something listens on 127.0.0.1:PORT.
port_in_use() {
	python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
EOF
}

# xml_escape STRING: print STRING with &, < and > escaped for XML text.
xml_escape() {
	pm_xml_escape "$1"
	printf '%s' "$REPLY"
}

# pm_xml_escape STRING: the same into REPLY, without a subshell (plists
# are written in loops; each command substitution costs a fork).
pm_xml_escape() {
	REPLY=$1
	# Quoted replacements: bash 5.2 reads a bare & as the match.
	REPLY=${REPLY//&/"&amp;"}
	REPLY=${REPLY//</"&lt;"}
	REPLY=${REPLY//>/"&gt;"}
}

# plist_write FILE|- KEY[:TYPE]=VALUE...: write an XML plist whose top
# level is a dict of these keys, in order. TYPE is string (the default),
# data (VALUE is base64), bool (true|false), integer, or raw (VALUE is
# inserted as is, e.g. a nested <dict>...</dict>).
plist_write() {
	local out=$1
	shift
	if [[ $out == - ]]; then
		pm_plist_print "$@"
	else
		pm_plist_print "$@" >"$out"
	fi
}

pm_plist_print() {
	local kv key type val

	printf '<?xml version="1.0" encoding="UTF-8"?>\n'
	printf '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
	printf '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
	printf '<plist version="1.0">\n<dict>\n'
	for kv in "$@"; do
		key=${kv%%=*}
		val=${kv#*=}
		type=string
		if [[ $key == *:* ]]; then
			type=${key##*:}
			key=${key%:*}
		fi
		pm_xml_escape "$key"
		printf '\t<key>%s</key>\n' "$REPLY"
		case $type in
		string)
			pm_xml_escape "$val"
			printf '\t<string>%s</string>\n' "$REPLY"
			;;
		data) printf '\t<data>%s</data>\n' "$val" ;;
		bool) printf '\t<%s/>\n' "$val" ;;
		integer) printf '\t<integer>%s</integer>\n' "$val" ;;
		raw) printf '\t%s\n' "$val" ;;
		*) pm_die "plist_write: $key: unknown type $type" ;;
		esac
	done
	printf '</dict>\n</plist>\n'
}
