# shellcheck shell=bash
# lib-vpp.sh - what the Apps and Books tests (test-vpp*.sh) share, sourced
# after lib.sh once IT_DIR exists: a CA and a server certificate for the
# local service (tests/mock-vpp.py) in $C, content tokens, the mock started
# and stopped, and its control and statistics endpoints.
#
#	vpp_certs                      $C/ca.pem, $C/server.{pem,key}
#	vpp_mktoken FILE ORG EXPDATE [SECRET]
#	                               a .vpptoken (the sToken's secret,
#	                               base64, defaults to U0VDUkVUUw==)
#	start_mock ARG...              a fresh mock: --token "$VPP_TOKEN"
#	                               and VPP_MOCK_ARGS, then ARG...;
#	                               MOCK_PID, MOCK_PORT, MOCK_LOG (its
#	                               request log, a new one each start)
#	stop_mock                      it_mock_stop (lib.sh)
#	control PATH JSON              POST to a control endpoint (/mock/...)
#	stats FIELD                    a field of /mock/stats
#
# The caller sets VPP_TOKEN (the good token's file) before start_mock and
# may set VPP_MOCK_ARGS (an array) for arguments every start of its mock
# takes.

PY=${PY:-/usr/bin/python3}
C=$IT_DIR/vppcerts
MOCK_PID=
MOCK_PORT=
MOCK_LOG=
MOCK_N=0
VPP_MOCK_ARGS=()

vpp_ossl() {
	openssl "$@" 2>>"$IT_DIR/openssl.log" ||
	    it_abort "setup: openssl $1" "$(tail -n 2 "$IT_DIR/openssl.log")"
}

vpp_certs() {
	mkdir -p "$C"
	vpp_ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$C/ca.key" -out "$C/ca.pem" -days 30 \
	    -subj "/CN=picomdm test VPP CA"
	vpp_ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$C/server.key" -out "$C/server.csr" -subj "/CN=localhost"
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$C/san.ext"
	vpp_ossl x509 -req -in "$C/server.csr" -CA "$C/ca.pem" \
	    -CAkey "$C/ca.key" -CAcreateserial -out "$C/server.pem" -days 30 \
	    -extfile "$C/san.ext"
}

vpp_mktoken() {
	printf '{"token":"%s","expDate":"%s","orgName":"%s"}' \
	    "${4:-U0VDUkVUUw==}" "$3" "$2" | base64 -w0 >"$1"
}

start_mock() {
	stop_mock
	MOCK_LOG=$IT_DIR/mock.$((++MOCK_N)).log
	: >"$MOCK_LOG"
	rm -f "$IT_DIR/mock.port"
	setsid "$PY" "$PM_ROOT/tests/mock-vpp.py" --cert "$C/server.pem" \
	    --key "$C/server.key" --port-file "$IT_DIR/mock.port" \
	    --log "$MOCK_LOG" --token "$(cat "$VPP_TOKEN")" \
	    "${VPP_MOCK_ARGS[@]}" "$@" </dev/null >>"$IT_DIR/mock.stderr" 2>&1 &
	MOCK_PID=$!
	it_mock_started mock-vpp
}

stop_mock() { it_mock_stop; }

control() {
	curl -sS --fail --cacert "$C/ca.pem" -H 'Content-Type: application/json' \
	    --data-binary "$2" "https://127.0.0.1:$MOCK_PORT$1" >/dev/null ||
	    it_abort "setup: mock control $1"
}

stats() {
	curl -sS --fail --cacert "$C/ca.pem" \
	    "https://127.0.0.1:$MOCK_PORT/mock/stats" | jq -r ".$1"
}
