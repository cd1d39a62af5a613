#!/usr/bin/env bash
#
# bench-ade.sh - how fast picomdm-dep applies a full ADE fetch: a store
# with one server token (made as in test-ade.sh: token new, a .p7m
# encrypted to its certificate with openssl smime, token import), then
# "picomdm-dep sync --once" of N devices from tests/mock-dep.py in pages
# of 1,000 (Apple's largest), run by scripts/bench. Prints one JSON object:
# devices applied, wall seconds, picomdm-dep's CPU seconds and the mock's
# (the mock, in Python, is usually what limits the rate), and the records
# in the store afterwards.
#
# usage: tests/bench-ade.sh BUILD DEVICES WORKDIR

set -euo pipefail

build=${1:?usage: bench-ade.sh BUILD DEVICES WORKDIR}
n=${2:?}
w=${3:?}
root=$(cd "$(dirname "$0")/.." && pwd)
dep=$build/picomdm-dep
mkdir -p "$w"
cd "$w"

die() {
	echo "bench-ade: $*" >&2
	exit 1
}

rnd() { openssl rand -hex 24; }
printf '{"consumer_key":"CK_%s","consumer_secret":"CS_%s","access_token":"AT_%s","access_secret":"AS_%s","access_token_expiry":"%s"}' \
    "$(rnd)" "$(rnd)" "$(rnd)" "$(rnd)" \
    "$(date -u -d '+200 days' +%Y-%m-%dT%H:%M:%SZ)" >creds.json
# An empty store, as picomdm-fcgi would have made it.
"$build/tools/picomdm-gen" --db db --devices 0 >/dev/null 2>&1 ||
    die "picomdm-gen cannot make a store"
"$dep" --db db token new bench -o cert.pem >/dev/null 2>&1 ||
    die "token new failed"
{
	printf 'Content-Type: text/plain;charset=UTF-8\r\n'
	printf 'Content-Transfer-Encoding: 7bit\r\n\r\n'
	printf -- '-----BEGIN MESSAGE-----\r\n'
	{ fold -w 76 creds.json; echo; } | sed 's/$/\r/'
	printf -- '-----END MESSAGE-----\r\n'
} >token.plain
openssl smime -encrypt -aes256 -in token.plain -out token.p7m cert.pem ||
    die "openssl smime failed"
"$dep" --db db token import bench token.p7m >/dev/null 2>&1 ||
    die "token import failed"

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout tls-key.pem \
    -out tls-cert.pem 2>/dev/null
/usr/bin/python3 "$root/tests/mock-dep.py" --cert tls-cert.pem \
    --key tls-key.pem --credentials creds.json --devices "$n" \
    --port-file port 2>mock.log &
mock=$!
trap 'kill "$mock" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	[[ -s port ]] && break
	sleep 0.1
done
[[ -s port ]] || die "mock-dep did not start: $(head -c 200 mock.log)"

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
m0=$(ticks "$mock")
t0=$(date +%s.%N)
/usr/bin/time -f '%U %S' -o dep.time "$dep" --db db \
    --url "https://127.0.0.1:$(cat port)" --ca tls-cert.pem sync bench \
    --once --limit 1000 >sync.out 2>sync.err ||
    die "sync failed: $(tail -n 2 sync.err)"
t1=$(date +%s.%N)
m1=$(ticks "$mock")
recs=$("$build/picomdmctl" --db db stats |
    awk '$1 == "ade_device" { sub("entries=", "", $2); print $2 }')
read -r du ds <dep.time
hz=$(getconf CLK_TCK)
awk -v n="$n" -v r="${recs:-0}" -v t0="$t0" -v t1="$t1" -v du="$du" \
    -v ds="$ds" -v m0="$m0" -v m1="$m1" -v hz="$hz" 'BEGIN {
	printf "{\"devices\":%d,\"records\":%d,\"s\":%.3f,", n, r, t1 - t0
	printf "\"dep_cpu_s\":%.2f,\"mock_cpu_s\":%.2f}\n", du + ds,
	    (m1 - m0) / hz
}'
