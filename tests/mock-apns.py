#!/usr/bin/python3
"""mock-apns.py - a local stand-in for APNs' HTTP/2 provider API, for tests.

It speaks HTTP/2 over TLS (python3-h2, Debian's package; run it with
/usr/bin/python3) on 127.0.0.1, asks for a client certificate, and checks
every request the way APNs does for an MDM push:

  - POST /3/device/<device token as hex>         405 MethodNotAllowed,
                                                 400 BadDeviceToken /
                                                 MissingDeviceToken
  - a client certificate whose subject UID is the topic
                                                 403 BadCertificate
  - apns-topic equal to that UID                 400 MissingTopic / BadTopic
  - apns-push-type: mdm                          400 InvalidPushType
  - apns-priority: 10                            400 BadPriority
  - apns-expiration: Unix seconds                400 BadExpirationDate
  - each header once                             400 DuplicateHeaders
  - body at most 4096 bytes                      413 PayloadTooLarge
  - body exactly {"mdm":"<PushMagic>"}           400 PayloadEmpty, or
    (stricter than APNs, which does not          400 MockBadPayload /
    check an MDM body: mock-only reasons)        MockBadContentType

A request that passes gets 200 with an apns-id header, unless the script
says otherwise for its token. Errors have the JSON body APNs sends,
{"reason": "..."} (410 adds "timestamp", milliseconds).

--script FILE is JSON:
  {"tokens": {"<hex token>": [ANSWER, ...], ...},
   "goaway_after": N,        # GOAWAY (NO_ERROR) after N requests on a
                             # connection, the last one answered first
   "max_streams": N}         # SETTINGS_MAX_CONCURRENT_STREAMS (1000)
  ANSWER is {"status": 410, "reason": "Unregistered"}, {"status": 200},
  {"goaway": true} (the connection goes away before answering: this
  request is not processed), {"reset": true} (RST_STREAM) or
  {"delay_ms": N, ...} added to any of them. A token's answers are used
  in order; the last one repeats.

--anonymous-topic TOPIC takes a connection without a client certificate
as one with that topic, so that h2load (which cannot send a certificate)
can measure the mock's own ceiling.

--log FILE gets one JSON line per connection ({"event": "connection",
"conn": N, "uid": ...}) and per request ({"event": "request", "conn",
"stream", "method", "path", "headers": [[name, value], ...], "body",
"uid", "status", "reason", "apns_id", "open": the most streams open at
once on this connection so far, "open_limited": the same counting only
streams opened after the client acknowledged max_streams}). The bound port is written to
--port-file once it listens. SIGTERM stops it.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import ssl
import sys
import time
import uuid

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

HEX_TOKEN = re.compile(r"^[0-9a-fA-F]+$")
# Push types APNs knows; anything else is InvalidPushType.
PUSH_TYPES = {"alert", "background", "location", "voip", "complication",
              "fileprovider", "mdm", "liveactivity", "pushtotalk"}


class Mock:
    def __init__(self, args):
        self.script = {}
        if args.script:
            with open(args.script, encoding="utf-8") as f:
                self.script = json.load(f)
        self.answers = {k.lower(): list(v)
                        for k, v in self.script.get("tokens", {}).items()}
        self.goaway_after = int(self.script.get("goaway_after", 0))
        self.max_streams = int(self.script.get("max_streams", 1000))
        self.log = open(args.log, "a", encoding="utf-8") if args.log else None
        self.conns = 0
        self.anonymous_topic = args.anonymous_topic

    def record(self, obj):
        if self.log:
            self.log.write(json.dumps(obj, sort_keys=True) + "\n")
            self.log.flush()

    def answer_for(self, token):
        """The scripted answer for a token (consumed in order, the last
        one repeats), or None."""
        lst = self.answers.get(token.lower())
        if not lst:
            return None
        return lst.pop(0) if len(lst) > 1 else lst[0]


def peer_uid(peercert):
    """The subject UID (OID 0.9.2342.19200300.100.1.1) of the client
    certificate, or None."""
    if not peercert:
        return None
    uids = [v for rdn in peercert.get("subject", ()) for (k, v) in rdn
            if k in ("userId", "UID")]
    return uids[0] if len(uids) == 1 else None


def check(method, path, headers, body, uid):
    """APNs' checks in the order it makes them: (status, reason) of the
    first that fails, or (200, None)."""
    names = [n for n, _ in headers]
    if any(names.count(n) > 1 for n in names if not n.startswith(":")):
        return 400, "DuplicateHeaders"
    h = dict(headers)
    if method != "POST":
        return 405, "MethodNotAllowed"
    if not path.startswith("/3/device/"):
        return 404, "BadPath"
    token = path[len("/3/device/"):]
    if token == "":
        return 400, "MissingDeviceToken"
    if (not HEX_TOKEN.match(token) or len(token) % 2 or len(token) < 32
            or len(token) > 200):
        return 400, "BadDeviceToken"
    if uid is None:
        return 403, "BadCertificate"
    if not uid.startswith("com.apple.mgmt."):
        return 403, "BadCertificateEnvironment"
    if "apns-topic" not in h:
        return 400, "MissingTopic"
    if h["apns-topic"] != uid:
        return 400, "BadTopic"
    if h.get("apns-push-type") not in PUSH_TYPES:
        return 400, "InvalidPushType"
    if h.get("apns-push-type") != "mdm":
        return 400, "MockWrongPushType"
    if h.get("apns-priority") not in ("5", "10"):
        return 400, "BadPriority"
    if h.get("apns-priority") != "10":
        return 400, "MockWrongPriority"
    exp = h.get("apns-expiration")
    if exp is None or not exp.isdigit():
        return 400, "BadExpirationDate"
    if len(body) > 4096:
        return 413, "PayloadTooLarge"
    if len(body) == 0:
        return 400, "PayloadEmpty"
    if h.get("content-type") != "application/json":
        return 400, "MockBadContentType"
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return 400, "MockBadPayload"
    if (not isinstance(obj, dict) or list(obj) != ["mdm"]
            or not isinstance(obj["mdm"], str) or obj["mdm"] == ""
            or body != json.dumps(obj, separators=(",", ":"),
                                  ensure_ascii=False).encode("utf-8")):
        return 400, "MockBadPayload"
    return 200, None


class Conn:
    def __init__(self, mock, reader, writer):
        self.mock = mock
        self.reader = reader
        self.writer = writer
        mock.conns += 1
        self.id = mock.conns
        self.uid = peer_uid(writer.get_extra_info("peercert"))
        if self.uid is None and mock.anonymous_topic:
            self.uid = mock.anonymous_topic
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8"))
        self.streams = {}
        self.handled = 0
        self.closing = False
        self.goaway = False
        self.ready = []
        self.max_open = 0
        self.max_open_acked = 0
        self.ack_sid = None

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.writer.write(data)

    async def run(self):
        self.mock.record({"event": "connection", "conn": self.id,
                          "uid": self.uid})
        # The limit applies once the client acknowledges it; streams it
        # opened before that are accepted (h2 would end the connection).
        self.h2.initiate_connection()
        self.h2.update_settings({
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS:
                self.mock.max_streams})
        self.flush()
        try:
            while not self.closing:
                data = await self.reader.read(65536)
                if not data:
                    break
                for ev in self.h2.receive_data(data):
                    self.event(ev)
                # Answer after the whole read: streams that arrived
                # together are open together (what "open" measures).
                for sid, headers, body in self.ready:
                    if not self.closing:
                        await self.request(sid, headers, body)
                self.ready = []
                self.flush()
                await self.writer.drain()
            if self.goaway:
                # Like a real server after GOAWAY: keep reading (and
                # dropping) until the client closes, so that closing with
                # unread data does not reset answers still in flight.
                self.flush()
                await self.writer.drain()
                while await asyncio.wait_for(self.reader.read(65536), 5):
                    pass
        except (ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError,
                asyncio.TimeoutError):
            pass
        finally:
            self.flush()
            try:
                self.writer.close()
            except (ConnectionError, ssl.SSLError):
                pass

    def event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            self.streams[ev.stream_id] = [ev.headers, bytearray()]
            self.max_open = max(self.max_open,
                                len(self.streams) + len(self.ready))
            if self.ack_sid is not None:
                # Streams opened by a client that knew the limit.
                n = sum(1 for i in self.streams if i > self.ack_sid) + \
                    sum(1 for r in self.ready if r[0] > self.ack_sid)
                self.max_open_acked = max(self.max_open_acked, n)
        elif isinstance(ev, h2.events.SettingsAcknowledged):
            if self.ack_sid is None:
                self.ack_sid = max(list(self.streams) +
                                   [r[0] for r in self.ready] +
                                   [self.h2.highest_inbound_stream_id or 0])
        elif isinstance(ev, h2.events.DataReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None and len(st[1]) < 65536:
                st[1] += ev.data
            self.h2.acknowledge_received_data(ev.flow_controlled_length,
                                              ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            st = self.streams.pop(ev.stream_id, None)
            if st is not None:
                self.ready.append((ev.stream_id, st[0], bytes(st[1])))
        elif isinstance(ev, h2.events.StreamReset):
            self.streams.pop(ev.stream_id, None)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.closing = True

    async def request(self, sid, headers, body):
        pseudo = {n: v for n, v in headers if n.startswith(":")}
        plain = [(n, v) for n, v in headers if not n.startswith(":")]
        method = pseudo.get(":method", "")
        path = pseudo.get(":path", "")
        status, reason = check(method, path, plain, body, self.uid)
        token = path[len("/3/device/"):] if path.startswith("/3/device/") \
            else ""
        rec = {"event": "request", "conn": self.id, "stream": sid,
               "method": method, "path": path,
               "headers": [[n, v] for n, v in plain],
               "body": body.decode("utf-8", "replace"), "uid": self.uid,
               "open": self.max_open, "open_limited": self.max_open_acked}
        scripted = self.mock.answer_for(token) if status == 200 else None
        if scripted is not None:
            if scripted.get("delay_ms"):
                await asyncio.sleep(scripted["delay_ms"] / 1000.0)
            if scripted.get("goaway"):
                # Not processed: the last stream id names the one before.
                rec.update(status=None, reason="goaway")
                self.mock.record(rec)
                self.h2.close_connection(
                    error_code=h2.errors.ErrorCodes.NO_ERROR,
                    additional_data=b'{"reason":"Shutdown"}',
                    last_stream_id=max(0, sid - 2))
                self.closing = self.goaway = True
                return
            if scripted.get("drop"):
                # Connection loss: no GOAWAY, no answer, TCP closed.
                rec.update(status=None, reason="drop")
                self.mock.record(rec)
                self.writer.transport.abort()
                self.closing = True
                return
            if scripted.get("reset"):
                rec.update(status=None, reason="reset")
                self.mock.record(rec)
                self.h2.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                return
            status = int(scripted.get("status", 200))
            reason = scripted.get("reason")
        apns_id = dict(plain).get("apns-id") or str(uuid.uuid4()).upper()
        rh = [(":status", str(status)), ("apns-id", apns_id)]
        body_out = b""
        if status != 200:
            err = {"reason": reason or "InternalServerError"}
            if status == 410:
                err["timestamp"] = int(time.time() * 1000)
            body_out = json.dumps(err).encode()
            rh += [("content-type", "application/json"),
                   ("content-length", str(len(body_out)))]
        rec.update(status=status, reason=reason, apns_id=apns_id)
        self.mock.record(rec)
        try:
            self.h2.send_headers(sid, rh, end_stream=not body_out)
            if body_out:
                self.h2.send_data(sid, body_out, end_stream=True)
        except h2.exceptions.StreamClosedError:
            return  # the client gave up on it (a timeout)
        self.handled += 1
        if self.mock.goaway_after and self.handled >= self.mock.goaway_after:
            self.h2.close_connection(
                error_code=h2.errors.ErrorCodes.NO_ERROR,
                additional_data=b'{"reason":"Shutdown"}',
                last_stream_id=sid)
            self.closing = self.goaway = True


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cert", required=True, help="server certificate PEM")
    ap.add_argument("--key", required=True, help="server key PEM")
    ap.add_argument("--client-ca", required=True,
                    help="CA that issued the push certificates")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--script")
    ap.add_argument("--log")
    ap.add_argument("--anonymous-topic",
                    help="treat a connection without a client certificate "
                    "as this topic's (h2load cannot send one)")
    args = ap.parse_args()

    mock = Mock(args)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    ctx.load_verify_locations(args.client_ca)
    # Optional: a connection without a certificate is answered 403.
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["h2"])

    async def accept(reader, writer):
        await Conn(mock, reader, writer).run()

    server = await asyncio.start_server(accept, "127.0.0.1", args.port,
                                        ssl=ctx, backlog=512)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w", encoding="utf-8") as f:
            f.write("%d\n" % port)
        os.rename(args.port_file + ".tmp", args.port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
