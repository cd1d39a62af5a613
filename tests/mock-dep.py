#!/usr/bin/python3
"""mock-dep.py - a local stand-in for Apple's ADE service (mdmenrollment.apple.com)
for picomdm-dep's tests. HTTPS on 127.0.0.1 only.

It behaves as Apple documents the service:
  - GET /session checks the OAuth 1.0a header (HMAC-SHA1 signature over the base
    string rebuilt from the Host header, the consumer key and access token, the
    timestamp window, a (timestamp, nonce) pair never reused; Content-Type
    application/json;charset=UTF8 as Apple's simulator wants, 415 otherwise)
    and answers {"auth_session_token": ...};
  - every other call needs User-Agent (400 USER_AGENT_MISSING) and a live
    X-ADM-Auth-Session (401 when unknown or expired, 403 FORBIDDEN when issued
    before a "restart"); with --rotate-every N every Nth call hands a new session
    token over in the X-ADM-Auth-Session response header and the old one stops
    working;
  - POST /server/devices pages over the devices present when the fetch started
    (limit: default 100, at most 1000), then answers EXHAUSTED_CURSOR to a
    finished fetch cursor; POST /devices/sync returns the added/modified/deleted
    events after its cursor with op_type and op_date; CURSOR_REQUIRED,
    INVALID_CURSOR and EXPIRED_CURSOR (older than 7 days on the mock's clock);
  - GET /account, POST /devices, POST /profile, GET /profile?profile_uuid=,
    POST and PUT /profile/devices (assign), DELETE /profile/devices
    (remove: profile_status back to "empty") with their documented
    validation codes.
Error bodies are the bare code (--quoted-errors: JSON-quoted, as Apple's own
simulator does).

Control endpoints for tests (no authentication, not part of Apple's API):
  POST /_mock/fail     {"path":P,"status":S,"body":B,"count":N,"retry_after":R,
                        "skip":K}
                       after K more requests to P are served normally, the
                       next N get status S with body B (and a Retry-After
                       header when R is given)
  POST /_mock/events   {"add":N,"modify":[serial...],"delete":[serial...]}
  POST /_mock/expire-sessions   every current session answers 401 from now on
  POST /_mock/restart           every current session answers 403 FORBIDDEN
  POST /_mock/clock    {"advance":SECONDS}
  POST /_mock/session-calls {"calls":N}  a session answers 401 after N data
                       calls (0: no limit), as Apple's sessions expire
  POST /_mock/throttle {"count":N,"retry_after":S}  the next N serials sent
                       to POST/PUT /profile/devices are answered THROTTLED
                       (protocol 9) with retry_after_seconds S (protocol 10)

Every request is appended to --log as a JSON line: time, method, path, session,
whether it carried an Authorization header, user agent, protocol version,
content type, request body, status and error code.
"""

import argparse
import base64
import hashlib
import hmac
import http.server
import json
import re
import secrets
import ssl
import sys
import threading
import time
import urllib.parse


def pct(s):
    return urllib.parse.quote(s, safe="-._~")


def b64(s):
    return base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")


def unb64(s):
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,2000}", s):
        return None
    try:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


MODELS = [("iPad Pro", "iPad", "iPadOS", "SILVER"),
          ("iPhone 15", "iPhone", "iOS", "BLACK"),
          ("MacBook Air", "Mac", "OSX", "MIDNIGHT"),
          ("Apple TV 4K", "AppleTV", "tvOS", "BLACK")]


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        with open(args.credentials) as f:
            c = json.load(f)
        self.ck, self.cs = c["consumer_key"], c["consumer_secret"]
        self.at, self.as_ = c["access_token"], c["access_secret"]
        self.clock_offset = 0.0
        self.sessions = {}  # token -> {"issued": t, "generation": g}
        self.generation = 0  # bumped by /_mock/restart
        self.nonces = set()
        self.calls = 0
        self.session_calls = 0
        self.failures = []  # scripted responses
        self.events = []  # (seq, op_type, op_date, device)
        self.state_cache = {}
        self.next_serial = 0
        self.profiles = {}
        self.throttle = 0
        self.throttle_after = None
        self.log = open(args.log, "a") if args.log else None
        t0 = self.now() - 86400 * 30
        for _ in range(args.devices):
            self.add_device(t0)
            t0 += 1

    def now(self):
        return time.time() + self.clock_offset

    def add_device(self, when):
        i = self.next_serial
        self.next_serial += 1
        model, family, os_, color = MODELS[i % len(MODELS)]
        d = {"serial_number": "MOCK%08d" % i, "model": model,
             "description": "%s %s" % (model.upper(), color),
             "color": color, "os": os_, "device_family": family,
             "profile_status": "empty",
             "device_assigned_date": rfc3339(when),
             "device_assigned_by": "it@example.test"}
        if i % 3 == 0:
            d["asset_tag"] = "TAG%05d" % i
        self.event("added", d, when)

    def event(self, op, device, when):
        self.events.append((len(self.events) + 1, op, rfc3339(when), dict(device)))
        self.state_cache.clear()

    def state_at(self, seq):
        """The devices present after event seq: serial -> device."""
        if seq in self.state_cache:
            return self.state_cache[seq]
        st = {}
        for (s, op, _, d) in self.events[:seq]:
            if op == "deleted":
                st.pop(d["serial_number"], None)
            else:
                st[d["serial_number"]] = d
        self.state_cache[seq] = st
        return st

    def current(self):
        return self.state_at(len(self.events))

    def record(self, entry):
        if self.log:
            self.log.write(json.dumps(entry, sort_keys=True) + "\n")
            self.log.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The answer's head and body are two writes: without this, Nagle
    # holds the body until the client's delayed ACK (40 ms an answer).
    disable_nagle_algorithm = True
    server_version = "mock-dep/1"

    def log_message(self, fmt, *a):
        if self.server.state.args.verbose:
            sys.stderr.write("mock-dep: " + (fmt % a) + "\n")

    # --- plumbing ---

    def reply(self, status, body, extra=None, code=None):
        st = self.server.state
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            ctype = "application/json;charset=UTF8"
        else:
            if code is not None and st.args.quoted_errors:
                body = json.dumps(body)
            data = body.encode()
            ctype = "text/plain;charset=UTF8"
        # Logged before the answer goes out: a client that has its answer
        # and exits must find its request in the log already.
        entry = dict(self.entry)
        entry.update(status=status, code=code,
                     new_session=(extra or {}).get("X-ADM-Auth-Session"))
        st.record(entry)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, extra=None):
        self.reply(status, code, extra, code=code)

    def handle_any(self, method):
        st = self.server.state
        u = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if 0 < n <= 4 << 20 else b""
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("latin-1")
        self.entry = {"t": time.time(), "method": method, "path": u.path,
                      "query": u.query,
                      "session": self.headers.get("X-ADM-Auth-Session"),
                      "auth": self.headers.get("Authorization") is not None,
                      "ua": self.headers.get("User-Agent"),
                      "proto": self.headers.get("X-Server-Protocol-Version"),
                      "ctype": self.headers.get("Content-Type"),
                      "body": body if u.path != "/_mock/fail" else None}
        with st.lock:
            if u.path.startswith("/_mock/"):
                return self.control(u.path, body)
            for f in st.failures:
                if f["path"] == u.path and f["count"] > 0:
                    if f["skip"] > 0:
                        f["skip"] -= 1
                        break
                    f["count"] -= 1
                    extra = {}
                    if f.get("retry_after") is not None:
                        extra["Retry-After"] = str(f["retry_after"])
                    code = f["body"] if f["status"] != 200 else None
                    return self.reply(f["status"], f["body"], extra, code=code)
            if not self.headers.get("User-Agent"):
                return self.error(400, "USER_AGENT_MISSING")
            if u.path == "/session":
                if method != "GET":
                    return self.error(405, "METHOD_NOT_ALLOWED")
                # Apple's simulator wants this content type even here.
                ct = (self.headers.get("Content-Type") or "").replace(" ", "")
                if ct.lower() != "application/json;charset=utf8":
                    return self.error(415, "UNSUPPORTED_MEDIA_TYPE")
                return self.session()
            if u.path not in ROUTES or method not in ROUTES[u.path]:
                return self.error(404 if u.path not in ROUTES else 405,
                                  "NOT_FOUND" if u.path not in ROUTES
                                  else "METHOD_NOT_ALLOWED")
            extra = {}
            tok = self.headers.get("X-ADM-Auth-Session")
            s = st.sessions.get(tok)
            if s is None:
                return self.error(401, "UNAUTHORIZED")
            if s["generation"] != st.generation:
                return self.error(403, "FORBIDDEN")
            if s.get("expired") or (st.args.session_ttl and
                                    st.now() - s["issued"] > st.args.session_ttl) \
                    or (st.session_calls and s["uses"] >= st.session_calls):
                return self.error(401, "UNAUTHORIZED")
            s["uses"] += 1
            st.calls += 1
            if st.args.rotate_every and st.calls % st.args.rotate_every == 0:
                new = secrets.token_hex(16)
                st.sessions[new] = {"issued": st.now(), "uses": 0,
                                    "generation": st.generation}
                del st.sessions[tok]
                extra["X-ADM-Auth-Session"] = new
            if method in ("POST", "PUT", "DELETE"):
                ct = self.headers.get("Content-Type", "")
                if not ct.lower().startswith("application/json"):
                    return self.error(415, "UNSUPPORTED_MEDIA_TYPE", extra)
                if not isinstance(body, dict):
                    return self.error(400, "MALFORMED_REQUEST_BODY", extra)
            return ROUTES[u.path][method](self, body or {},
                                          urllib.parse.parse_qs(u.query), extra)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")

    # --- control ---

    def control(self, path, body):
        st = self.server.state
        body = body if isinstance(body, dict) else {}
        if path == "/_mock/fail":
            st.failures.append({"path": body["path"], "status": int(body["status"]),
                                "body": body.get("body", ""),
                                "count": int(body.get("count", 1)),
                                "skip": int(body.get("skip", 0)),
                                "retry_after": body.get("retry_after")})
        elif path == "/_mock/events":
            t = st.now()
            for _ in range(int(body.get("add", 0))):
                st.add_device(t)
            cur = st.current()
            for s in body.get("modify", []):
                d = dict(cur[s])
                d["asset_tag"] = "MOD-" + s
                st.event("modified", d, t)
            for s in body.get("delete", []):
                st.event("deleted", cur[s], t)
        elif path == "/_mock/expire-sessions":
            for s in st.sessions.values():
                s["expired"] = True
        elif path == "/_mock/restart":
            st.generation += 1
        elif path == "/_mock/session-calls":
            st.session_calls = int(body.get("calls", 0))
        elif path == "/_mock/throttle":
            st.throttle = int(body.get("count", 0))
            st.throttle_after = body.get("retry_after")
        elif path == "/_mock/clock":
            st.clock_offset += float(body.get("advance", 0))
        else:
            return self.reply(404, "NOT_FOUND")
        return self.reply(200, {"ok": True})

    # --- /session ---

    def session(self):
        st = self.server.state
        h = self.headers.get("Authorization", "")
        if not h.startswith("OAuth "):
            return self.error(401, "UNAUTHORIZED")
        params = {}
        for k, v in re.findall(r'([A-Za-z_]+)="([^"]*)"', h[6:]):
            if k in params:
                return self.error(400, "DUPLICATE_OAUTH_PARAMETER")
            params[k] = urllib.parse.unquote(v)
        need = ["oauth_consumer_key", "oauth_token", "oauth_signature_method",
                "oauth_signature", "oauth_timestamp", "oauth_nonce",
                "oauth_version"]
        if any(k not in params for k in need):
            return self.error(400, "MISSING_OAUTH_PARAMETER")
        if params["oauth_signature_method"] != "HMAC-SHA1" or \
                params["oauth_version"] != "1.0":
            return self.error(400, "UNSUPPORTED_OAUTH_PARAMETERS")
        if params["oauth_consumer_key"] != st.ck or params["oauth_token"] != st.at:
            return self.error(401, "UNAUTHORIZED")
        try:
            ts = int(params["oauth_timestamp"])
        except ValueError:
            return self.error(400, "UNSUPPORTED_OAUTH_PARAMETERS")
        if abs(ts - time.time()) > 300:
            return self.error(401, "UNAUTHORIZED")
        key = (ts, params["oauth_nonce"])
        if key in st.nonces:
            return self.error(401, "UNAUTHORIZED")
        host = (self.headers.get("Host") or "").lower()
        if host.endswith(":443"):
            host = host[:-4]
        uri = "https://" + host + "/session"
        signed = sorted((k, v) for k, v in params.items()
                        if k.startswith("oauth_") and k != "oauth_signature")
        base = "GET&" + pct(uri) + "&" + pct("&".join(
            pct(k) + "=" + pct(v) for k, v in signed))
        mac = hmac.new((pct(st.cs) + "&" + pct(st.as_)).encode(),
                       base.encode(), hashlib.sha1).digest()
        if not hmac.compare_digest(base64.b64encode(mac).decode(),
                                   params["oauth_signature"]):
            return self.error(401, "UNAUTHORIZED")
        st.nonces.add(key)
        tok = secrets.token_hex(16)
        st.sessions[tok] = {"issued": st.now(), "uses": 0,
                            "generation": st.generation}
        return self.reply(200, {"auth_session_token": tok})

    # --- data calls ---

    def account(self, body, q, extra):
        return self.reply(200, {
            "server_name": "picomdm mock", "server_uuid": "6E1D0A7C-MOCK",
            "admin_id": "admin@example.test", "org_name": "Example Org",
            "org_email": "it@example.test", "org_phone": "+1 555 0100",
            "org_address": "1 Example Road", "org_id": "1234567",
            "org_id_hash": "mockhash", "org_type": "org", "org_version": "v2",
            "urls": [{"uri": "/server/devices", "http_method": ["POST"],
                      "limit": {"default": 100, "maximum": 1000}},
                     {"uri": "/devices/sync", "http_method": ["POST"],
                      "limit": {"default": 100, "maximum": 1000}}]}, extra)

    def limit_of(self, body):
        n = body.get("limit", 100)
        if not isinstance(n, int) or n < 1:
            return None
        return min(n, 1000)

    def parse_cursor(self, c):
        """("f", offset, snapseq, ms) or ("s", seq, ms), or an error code."""
        st = self.server.state
        s = unb64(c) if isinstance(c, str) else None
        parts = s.split(":") if s else []
        try:
            if len(parts) == 4 and parts[0] == "f":
                cur = ("f", int(parts[1]), int(parts[2]), int(parts[3]))
                seq = cur[2]
            elif len(parts) == 3 and parts[0] == "s":
                cur = ("s", int(parts[1]), int(parts[2]))
                seq = cur[1]
            else:
                return "INVALID_CURSOR"
        except ValueError:
            return "INVALID_CURSOR"
        if seq > len(st.events) or seq < 0:
            return "INVALID_CURSOR"
        if st.now() * 1000 - cur[-1] > 7 * 86400 * 1000:
            return "EXPIRED_CURSOR"
        return cur

    def page(self, devices, cursor, more, extra):
        st = self.server.state
        return self.reply(200, {"devices": devices, "cursor": cursor,
                                "more_to_follow": more,
                                "fetched_until": rfc3339(st.now())}, extra)

    def fetch(self, body, q, extra):
        st = self.server.state
        limit = self.limit_of(body)
        if limit is None:
            return self.error(400, "MALFORMED_REQUEST_BODY", extra)
        ms = int(st.now() * 1000)
        if "cursor" in body:
            cur = self.parse_cursor(body["cursor"])
            if isinstance(cur, str):
                return self.error(400, cur, extra)
            if cur[0] == "s":
                return self.error(400, "EXHAUSTED_CURSOR", extra)
            _, off, snap, _ = cur
        else:
            off, snap = 0, len(st.events)
        devs = sorted(st.state_at(snap).values(), key=lambda d: d["serial_number"])
        if off >= len(devs) and "cursor" in body:
            return self.error(400, "EXHAUSTED_CURSOR", extra)
        chunk = devs[off:off + limit]
        end = off + len(chunk)
        if end < len(devs):
            return self.page(chunk, b64("f:%d:%d:%d" % (end, snap, ms)), True, extra)
        return self.page(chunk, b64("s:%d:%d" % (snap, ms)), False, extra)

    def sync(self, body, q, extra):
        st = self.server.state
        limit = self.limit_of(body)
        if limit is None:
            return self.error(400, "MALFORMED_REQUEST_BODY", extra)
        if "cursor" not in body:
            return self.error(400, "CURSOR_REQUIRED", extra)
        cur = self.parse_cursor(body["cursor"])
        if isinstance(cur, str):
            return self.error(400, cur, extra)
        seq = cur[1] if cur[0] == "s" else cur[2]
        evs = st.events[seq:seq + limit]
        out = []
        for (s, op, when, d) in evs:
            x = dict(d)
            x["op_type"], x["op_date"] = op, when
            out.append(x)
        last = seq + len(evs)
        return self.page(out, b64("s:%d:%d" % (last, int(st.now() * 1000))),
                         last < len(st.events), extra)

    def details(self, body, q, extra):
        st = self.server.state
        serials = body.get("devices")
        if not isinstance(serials, list) or not serials:
            return self.error(400, "DEVICE_ID_REQUIRED", extra)
        cur = st.current()
        res = {}
        for s in serials:
            if s in cur:
                res[s] = dict(cur[s], response_status="SUCCESS")
            else:
                res[s] = {"response_status": "NOT_ACCESSIBLE"}
        return self.reply(200, {"devices": res}, extra)

    def profile_define(self, body, q, extra):
        st = self.server.state
        name, url = body.get("profile_name"), body.get("url")
        if not name:
            return self.error(400, "CONFIG_NAME_REQUIRED", extra)
        if not isinstance(name, str) or len(name) > 125:
            return self.error(400, "CONFIG_NAME_INVALID", extra)
        if not url:
            return self.error(400, "CONFIG_URL_REQUIRED", extra)
        if not isinstance(url, str) or len(url) > 2000 or \
                not url.startswith("https://"):
            return self.error(400, "CONFIG_URL_INVALID", extra)
        if body.get("is_mdm_removable") is False and not body.get("is_supervised"):
            return self.error(400, "FLAGS_INVALID", extra)
        for k, n, code in (("department", 125, "DEPARTMENT_INVALID"),
                           ("org_magic", 256, "MAGIC_INVALID"),
                           ("support_email_address", 250, "SUPPORT_EMAIL_INVALID"),
                           ("support_phone_number", 50, "SUPPORT_PHONE_INVALID")):
            if k in body and (not isinstance(body[k], str) or len(body[k]) > n):
                return self.error(400, code, extra)
        uuid = secrets.token_hex(16).upper()
        p = {k: v for k, v in body.items() if k != "devices"}
        p["profile_uuid"] = uuid
        st.profiles[uuid] = p
        res = {"profile_uuid": uuid}
        if body.get("devices"):
            res["devices"] = self.assign_to(uuid, body["devices"])
        return self.reply(200, res, extra)

    def profile_get(self, body, q, extra):
        st = self.server.state
        uuid = (q.get("profile_uuid") or [""])[0]
        if not uuid:
            return self.error(400, "PROFILE_UUID_REQUIRED", extra)
        if uuid not in st.profiles:
            return self.error(400, "PROFILE_NOT_FOUND", extra)
        return self.reply(200, st.profiles[uuid], extra)

    def assign_to(self, uuid, serials):
        st = self.server.state
        cur = st.current()
        res = {}
        t = st.now()
        for s in serials:
            if s not in cur:
                res[s] = "NOT_ACCESSIBLE"
                continue
            if st.throttle > 0:
                st.throttle -= 1
                res[s] = "THROTTLED"
                continue
            d = dict(cur[s])
            d.update(profile_status="assigned", profile_uuid=uuid,
                     profile_assign_time=rfc3339(t))
            st.event("modified", d, t)
            res[s] = "SUCCESS"
        return res

    def profile_assign(self, body, q, extra):
        st = self.server.state
        uuid, serials = body.get("profile_uuid"), body.get("devices")
        if not uuid:
            return self.error(400, "PROFILE_UUID_REQUIRED", extra)
        if not isinstance(serials, list) or not serials:
            return self.error(400, "DEVICE_ID_REQUIRED", extra)
        if len(serials) > 1000:
            return self.error(400, "DEVICE_ID_INVALID", extra)
        if uuid not in st.profiles:
            return self.error(404, "PROFILE_NOT_FOUND", extra)
        res = {"profile_uuid": uuid, "devices": self.assign_to(uuid, serials)}
        if "THROTTLED" in res["devices"].values() and st.throttle_after:
            res["retry_after_seconds"] = int(st.throttle_after)
        return self.reply(200, res, extra)

    def profile_remove(self, body, q, extra):
        st = self.server.state
        serials = body.get("devices")
        if not isinstance(serials, list) or not serials:
            return self.error(400, "DEVICE_ID_REQUIRED", extra)
        if len(serials) > 1000:
            return self.error(400, "DEVICE_ID_INVALID", extra)
        cur = st.current()
        res = {}
        t = st.now()
        for s in serials:
            if s not in cur or not cur[s].get("profile_uuid"):
                res[s] = "NOT_ACCESSIBLE"
                continue
            d = dict(cur[s])
            d.pop("profile_uuid", None)
            d.pop("profile_assign_time", None)
            d["profile_status"] = "empty"
            st.event("modified", d, t)
            res[s] = "SUCCESS"
        return self.reply(200, {"devices": res}, extra)


ROUTES = {
    "/account": {"GET": Handler.account},
    "/server/devices": {"POST": Handler.fetch},
    "/devices/sync": {"POST": Handler.sync},
    "/devices": {"POST": Handler.details},
    "/profile": {"POST": Handler.profile_define, "GET": Handler.profile_get},
    "/profile/devices": {"POST": Handler.profile_assign,
                         "PUT": Handler.profile_assign,
                         "DELETE": Handler.profile_remove},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cert", required=True, help="server certificate (PEM)")
    ap.add_argument("--key", required=True, help="its private key (PEM)")
    ap.add_argument("--credentials", required=True,
                    help="token JSON: consumer_key, consumer_secret, ...")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the port bound here")
    ap.add_argument("--devices", type=int, default=0)
    ap.add_argument("--session-ttl", type=float, default=0)
    ap.add_argument("--rotate-every", type=int, default=0)
    ap.add_argument("--quoted-errors", action="store_true")
    ap.add_argument("--log")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.state = State(args)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write("%d\n" % srv.server_address[1])
        import os
        os.rename(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
