#!/usr/bin/python3
"""fcgi-keepconn.py - talk FastCGI directly to picomdm-fcgi on one
connection with FCGI_KEEP_CONN (FastCGI spec, 5.1), as nginx does with
"fastcgi_keep_conn on", over TCP or a unix socket.

usage: fcgi-keepconn.py HOST:PORT | SOCKET-PATH [CERT AUTH TOKEN]

Sends, on one connection: three API requests with FCGI_KEEP_CONN, a GET
with a 100 KB body to a device endpoint (405, answered before the body is read),
another kept request, and a last request without FCGI_KEEP_CONN. Every
request must be answered completely (FCGI_END_REQUEST) within 5 s, the
connection must stay open after each kept request and be closed by the
responder after the last. With CERT (a device identity, PEM) and the
check-in bodies AUTH and TOKEN, an Authenticate and a TokenUpdate as that
device come first, kept too: they are answered by the responder's
completion thread once committed, the case that once stalled. Prints one "ok"/"not ok" line per check and
exits 1 on any failure.
"""
import socket
import struct
import sys
import time
import urllib.parse

failed = 0


def check(ok, what):
    global failed
    print(("ok - " if ok else "not ok - ") + what)
    if not ok:
        failed += 1


def rec(t, content):
    pad = (8 - len(content) % 8) % 8
    return (struct.pack(">BBHHBB", 1, t, 1, len(content), pad, 0) +
            content + b"\0" * pad)


def nv(k, v):
    """A name-value pair (FastCGI spec, 3.4)."""
    def n(x):
        if len(x) < 128:
            return bytes([len(x)])
        return struct.pack(">I", len(x) | 0x80000000)
    return n(k) + n(v) + k + v


def request(s, keep, params, body=b""):
    """Send one request; (status line, how it ended, ms)."""
    t0 = time.monotonic()
    p = b"".join(nv(k.encode(), v.encode()) for k, v in params.items())
    msg = rec(1, struct.pack(">HB5x", 1, 1 if keep else 0))
    msg += rec(4, p) + rec(4, b"")
    for i in range(0, len(body), 65535):
        msg += rec(5, body[i:i + 65535])
    s.sendall(msg + rec(5, b""))
    out = buf = b""
    while True:
        try:
            d = s.recv(65536)
        except socket.timeout:
            return "", "timeout", (time.monotonic() - t0) * 1000
        if not d:
            return out.split(b"\r\n")[0].decode(), "eof", 0
        buf += d
        while len(buf) >= 8:
            _, t, _, cl, pl, _ = struct.unpack(">BBHHBB", buf[:8])
            if len(buf) < 8 + cl + pl:
                break
            c, buf = buf[8:8 + cl], buf[8 + cl + pl:]
            if t == 6:
                out += c
            if t == 3:
                return (out.split(b"\r\n")[0].decode(), "end",
                        (time.monotonic() - t0) * 1000)


def still_open(s):
    s.settimeout(0.3)
    try:
        d = s.recv(1)
        return "closed" if d == b"" else "data"
    except socket.timeout:
        return "open"
    finally:
        s.settimeout(5)


def main():
    addr = sys.argv[1]
    if addr.startswith("/"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(addr)
    else:
        h, p = addr.rsplit(":", 1)
        s = socket.create_connection((h, int(p)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(5)
    api = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/api/v1/enrollments",
           "DOCUMENT_URI": "/api/v1/enrollments", "CONTENT_LENGTH": "0"}
    # A body larger than the responder's 16 KiB input buffer, in records
    # of at most 65535 bytes, so that most of it is still in the socket
    # when the 405 is sent: the next request, sent on that reply, must be
    # left in the connection while the rest of the body is read.
    big = b"x" * 100000
    dev = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/mdm/checkin",
           "DOCUMENT_URI": "/mdm/checkin", "CONTENT_LENGTH": str(len(big))}
    if len(sys.argv) == 5:
        with open(sys.argv[2]) as f:
            cert = urllib.parse.quote(f.read(), safe="")
        for name, path in (("Authenticate", sys.argv[3]),
                           ("TokenUpdate", sys.argv[4])):
            with open(path, "rb") as f:
                body = f.read()
            p = {"REQUEST_METHOD": "PUT", "REQUEST_URI": "/mdm/checkin",
                 "DOCUMENT_URI": "/mdm/checkin",
                 "CONTENT_TYPE": "application/x-apple-aspen-mdm-checkin",
                 "CONTENT_LENGTH": str(len(body)), "HTTPS": "on",
                 "PICOMDM_CLIENT_CERT": cert,
                 "PICOMDM_CLIENT_VERIFY": "SUCCESS"}
            st, how, ms = request(s, True, p, body)
            check(how == "end" and st.startswith("Status: 200"),
                  f"kept {name} answered ({st or how}, {ms:.1f} ms)")
    for i in range(3):
        st, how, ms = request(s, True, api)
        check(how == "end" and st.startswith("Status: "),
              f"kept request {i + 1} answered ({st or how}, {ms:.1f} ms)")
        check(still_open(s) == "open", f"connection kept after request {i + 1}")
    st, how, _ = request(s, True, dev, big)
    check(how == "end" and st.startswith("Status: 405"),
          f"GET with a body on a device endpoint: 405 ({st or how})")
    st, how, _ = request(s, True, api)
    check(how == "end" and st.startswith("Status: "),
          f"the request after the unread body answered ({st or how})")
    st, how, _ = request(s, False, api)
    check(how == "end", f"last request, not kept, answered ({st or how})")
    check(still_open(s) == "closed", "and the connection closed after it")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
