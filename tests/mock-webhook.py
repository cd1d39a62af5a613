#!/usr/bin/python3
"""mock-webhook.py - a webhook receiver for tests: records every request.

Listens for HTTP/1.1 on 127.0.0.1 (plain; put nginx in front to test TLS),
answers each request as --script says, and appends one JSON line per
request to --log: {"n": N, "method", "path", "headers": [[name, value],
...], "body_b64", "body" (text, when UTF-8), "status", "start" (the body
read), "time" (the answer about to be sent)}. Requests are served
concurrently, one thread each. Tests read
the log to check what arrived, in which order, how often (at least once
means duplicates are allowed, losses are not) and with which signature
header.

--script FILE is JSON: {"answers": [ANSWER, ...]}; ANSWER is
{"status": 503}, {"status": 200, "delay_ms": 2000} or {"close": true}
(the connection is closed without an answer). Answers are used in
order; the last one repeats; with no script every request gets 200.
The bound port is written to --port-file once it listens. SIGTERM
stops it.
"""

import argparse
import base64
import http.server
import json
import os
import signal
import sys
import threading
import time

BODY_MAX = 16 * 1024 * 1024


class State:
    def __init__(self, args):
        self.answers = [{"status": 200}]
        if args.script:
            with open(args.script, encoding="utf-8") as f:
                self.answers = json.load(f).get("answers") or self.answers
        self.log = open(args.log, "a", encoding="utf-8") if args.log else None
        self.lock = threading.Lock()
        self.n = 0

    def next_answer(self):
        with self.lock:
            self.n += 1
            a = self.answers.pop(0) if len(self.answers) > 1 \
                else self.answers[0]
            return self.n, a

    def record(self, obj):
        if self.log:
            with self.lock:
                self.log.write(json.dumps(obj, sort_keys=True) + "\n")
                self.log.flush()


def make_handler(state):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The answer's head and body are two writes: without this, Nagle
        # holds the body until the client's delayed ACK (40 ms a POST).
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):
            pass

        def handle_any(self):
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > BODY_MAX:
                self.send_error(400)
                return
            body = self.rfile.read(length) if length else b""
            start = time.time()
            n, ans = state.next_answer()
            if ans.get("delay_ms"):
                time.sleep(ans["delay_ms"] / 1000.0)
            rec = {"n": n, "method": self.command, "path": self.path,
                   "headers": [[k.lower(), v] for k, v in
                               self.headers.items()],
                   "body_b64": base64.b64encode(body).decode(),
                   "start": start, "time": time.time()}
            try:
                rec["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                rec["body"] = None
            if ans.get("close"):
                rec["status"] = None
                state.record(rec)
                self.close_connection = True
                self.connection.close()
                return
            status = int(ans.get("status", 200))
            rec["status"] = status
            state.record(rec)
            out = b"{}" if status < 400 else b'{"error":"mock"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_POST = do_PUT = do_GET = handle_any

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--script")
    ap.add_argument("--log")
    args = ap.parse_args()
    state = State(args)
    # socketserver's listen backlog is 5: more connections at once than
    # that (webhook_concurrency is 8 by default) wait out a SYN retry.
    http.server.ThreadingHTTPServer.request_queue_size = 128
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port),
                                          make_handler(state))
    srv.daemon_threads = True
    if args.port_file:
        with open(args.port_file + ".tmp", "w", encoding="utf-8") as f:
            f.write("%d\n" % srv.server_address[1])
        os.rename(args.port_file + ".tmp", args.port_file)
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(
        target=srv.shutdown).start())
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    srv.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
