#!/usr/bin/python3
"""mock-vpp.py - a local stand-in for Apple's Apps and Books API (v2),
for tests. HTTPS (http.server + ssl) on 127.0.0.1; run with /usr/bin/python3.

  GET /mdm/v2/service/config   no authentication; names every other URL,
                               on paths of its own (/mock-v2/...) so a
                               client that hard-codes Apple's paths fails,
                               and limits.maxRequestPerSecond (--max-rps)
  GET <clientConfig>           countryISO2ACode, locationName, uId, ...,
                               and mdmInfo once an MDM claimed the location
  POST <clientConfig>          {"mdmInfo": {"id", "name", "metadata"}}
                               claims the location (id and name 1..100
                               characters, metadata at most 255, else 400
                               9723); answers the client configuration
                               (--mdm-info JSON: held by another MDM from
                               the start)
  GET <getAssets>              assets, paged          (pageIndex)
  GET <getAssignments>         assignments, paged     (pageIndex, sinceVersionId)
  GET <getUsers>               users, paged           (pageIndex, sinceVersionId)
  GET <contentMetadataLookup>  app metadata in the legacy lookup's shape,
                               {"results": {adamId: {...}}}, for the ids
                               of id=a,b,...; no bearer: the sToken goes
                               as the cookie itvt= (without it, or with
                               another, results are empty, as Apple's
                               are for an organisation's custom apps);
                               only with --meta are there any, and then
                               the last --meta-missing assets (of the
                               start) have none (absent from results),
                               as without --meta every asset; queued
                               /mock/fail answers apply; every id asked
                               for is counted (GET /mock/lookups)

Every authenticated request needs "Authorization: Bearer <--token>":
no or a malformed header is 401 errorNumber 9722; a bearer given as
--expired is 401 9621, as --revoked 401 9625; any other bearer is HTTP
200 with errorNumber 9622 (what Apple was seen to answer). A bad
pageIndex is 400 9650, a sinceVersionId not of the form vN (N at most
the current version) 400 9721. More than --max-rps requests within one
second is 429 9646 with Retry-After: 1 (and counted as "over_rate").

Page fields: currentPageIndex, nextPageIndex (only when there is a next
page), size, totalPages, versionId ("v<current version>").
Records start at version 1; a listing with sinceVersionId=vK returns
only records whose version is above K.

Control (no authentication, for the test):
  POST /mock/change {"assignments":[{...}], "users":[{...}]}
      adds records at a new version (one version per call)
  POST /mock/fail {"path": "<path>", "answers": [ANSWER, ...]}
      queues answers for the next requests to that path, in order;
      ANSWER is {"status": 200, "errorNumber": 9603, "errorMessage": "..",
      "retry_after": "2"} (any field optional)
  GET /mock/stats
      {"requests": N, "over_rate": N, "max_per_second": N}
  GET /mock/lookups
      {adamId: times asked for, ...} by the metadata lookup

--log FILE gets one JSON line per request: t (seconds), method, path,
query, auth (the bearer matched --token), status, errorNumber.
"""
import argparse
import collections
import json
import ssl
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

P = argparse.ArgumentParser()
P.add_argument("--cert", required=True)
P.add_argument("--key", required=True)
P.add_argument("--port-file", required=True)
P.add_argument("--log", required=True)
P.add_argument("--token", required=True)
P.add_argument("--expired", default=None)
P.add_argument("--revoked", default=None)
P.add_argument("--assets", type=int, default=10)
P.add_argument("--assignments", type=int, default=10)
P.add_argument("--users", type=int, default=10)
P.add_argument("--page-size", type=int, default=100)
P.add_argument("--max-rps", type=int, default=15)
P.add_argument("--mdm-info", default=None)
P.add_argument("--meta", action="store_true")
P.add_argument("--meta-missing", type=int, default=0)
A = P.parse_args()

VERSION = [1]
DATA = {
    "assets": [
        {"adamId": str(100000000 + i), "assignedCount": i % 7,
         "availableCount": 10, "retiredCount": 0, "totalCount": 10 + i % 7,
         "deviceAssignable": True, "revocable": i % 2 == 0,
         "pricingParam": "STDQ", "productType": "App" if i % 5 else "Book",
         "supportedPlatforms": ["iOS"], "_v": 1}
        for i in range(A.assets)],
    "assignments": [
        {"adamId": str(100000000 + i % max(A.assets, 1)),
         "pricingParam": "STDQ", "serialNumber": "C02MOCK%05d" % i, "_v": 1}
        for i in range(A.assignments)],
    "users": [
        {"clientUserId": "00000000-0000-4000-8000-%012d" % i,
         "email": "user%d@example.com" % i, "status": "Registered",
         "inviteCode": "inv%d" % i, "_v": 1}
        for i in range(A.users)],
}
FAIL = collections.defaultdict(list)
MDM_INFO = [json.loads(A.mdm_info) if A.mdm_info else None]
STATS = {"requests": 0, "over_rate": 0, "max_per_second": 0}
WINDOW = collections.deque()
LOOKUPS = collections.Counter()
MISSING = set(r["adamId"] for r in DATA["assets"][len(DATA["assets"]) -
                                                    A.meta_missing:]
              ) if A.meta_missing else set()
LOG = open(A.log, "a", buffering=1)
PORT = [0]

LISTS = {"/mock-v2/assets/list": ("assets", False),
         "/mock-v2/assignments/list": ("assignments", True),
         "/mock-v2/users/list": ("users", True)}


def service_config():
    base = "https://127.0.0.1:%d/mock-v2" % PORT[0]
    return {
        "urls": {
            "clientConfig": base + "/client/config",
            "getAssets": base + "/assets/list",
            "getAssignments": base + "/assignments/list",
            "getUsers": base + "/users/list",
            "createUsers": base + "/users/create",
            "updateUsers": base + "/users/update",
            "retireUsers": base + "/users/retire",
            "associateAssets": base + "/assets/associate",
            "disassociateAssets": base + "/assets/disassociate",
            "revokeAssets": base + "/assets/revoke",
            "eventStatus": base + "/status",
            "contentMetadataLookup": base + "/lookup",
        },
        "limits": {"maxAssets": 25, "maxClientUserIds": 1000,
                   "maxSerialNumbers": 1000, "maxUsers": 100,
                   "maxRequestPerSecond": A.max_rps},
        "errorCodes": [],
    }


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body, number=0, retry_after=None, auth=False):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.end_headers()
        self.wfile.write(data)
        u = urllib.parse.urlsplit(self.path)
        LOG.write(json.dumps({"t": time.time(), "method": self.command,
                              "path": u.path, "query": u.query,
                              "auth": auth, "status": status,
                              "errorNumber": number}) + "\n")

    def error(self, status, number, msg, retry_after=None, auth=False):
        self.answer(status, {"errorNumber": number, "errorMessage": msg},
                    number, retry_after, auth)

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self.error(400, 9602, "not JSON")
        if u.path == "/mock/change":
            VERSION[0] += 1
            for k in ("assignments", "users", "assets"):
                for r in body.get(k, []):
                    r["_v"] = VERSION[0]
                    DATA[k].append(r)
            return self.answer(200, {"versionId": "v%d" % VERSION[0]})
        if u.path == "/mock/fail":
            FAIL[body["path"]].extend(body["answers"])
            return self.answer(200, {})
        if u.path != "/mock-v2/client/config":
            return self.error(405, 9726, "method not allowed")
        h = self.headers.get("Authorization", "")
        if not h.startswith("Bearer ") or h[7:] != A.token:
            return self.error(401, 9722, "Invalid Authorization header")
        if self.headers.get("Content-Type", "") != "application/json":
            return self.error(415, 9727, "Content-Type", auth=True)
        mi = body.get("mdmInfo")
        if (not isinstance(mi, dict) or
                not isinstance(mi.get("id"), str) or
                not 1 <= len(mi["id"]) <= 100 or
                not isinstance(mi.get("name"), str) or
                not 1 <= len(mi["name"]) <= 100 or
                len(mi.get("metadata", "")) > 255):
            return self.error(400, 9723, "Invalid mdmInfo", auth=True)
        MDM_INFO[0] = {"id": mi["id"], "name": mi["name"],
                       "metadata": mi.get("metadata", "")}
        return self.answer(200, self.client_config(), auth=True)

    def client_config(self):
        c = {"uId": "mock-library-1",
             "tokenExpirationDate": "2030-11-08T22:33:22+0000",
             "countryISO2ACode": "US", "defaultPlatform": "volumestore",
             "locationName": "Mock Campus",
             "websiteURL": "https://example.invalid/"}
        if MDM_INFO[0] is not None:
            c["mdmInfo"] = MDM_INFO[0]
        return c

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        if u.path == "/mock/stats":
            return self.answer(200, STATS)
        if u.path == "/mock/lookups":
            return self.answer(200, dict(LOOKUPS))
        STATS["requests"] += 1
        now = time.monotonic()
        WINDOW.append(now)
        while WINDOW and WINDOW[0] <= now - 1.0:
            WINDOW.popleft()
        STATS["max_per_second"] = max(STATS["max_per_second"], len(WINDOW))
        if len(WINDOW) > A.max_rps:
            STATS["over_rate"] += 1
            return self.error(429, 9646, "Too many requests", 1)
        if u.path == "/mdm/v2/service/config":
            return self.answer(200, service_config())
        if u.path == "/mock-v2/lookup":
            return self.lookup(q)
        h = self.headers.get("Authorization", "")
        if not h.startswith("Bearer ") or len(h) <= 7:
            return self.error(401, 9722, "Invalid Authorization header")
        bearer = h[7:]
        if A.expired is not None and bearer == A.expired:
            return self.error(401, 9621, "Token expired")
        if A.revoked is not None and bearer == A.revoked:
            return self.error(401, 9625, "Token revoked")
        if bearer != A.token:
            return self.error(200, 9622, "Invalid authentication token")
        if FAIL[u.path]:
            a = FAIL[u.path].pop(0)
            return self.error(a.get("status", 200), a.get("errorNumber", 0),
                              a.get("errorMessage", "scripted"),
                              a.get("retry_after"), True)
        common = {"uId": "mock-library-1",
                  "tokenExpirationDate": "2030-11-08T22:33:22+0000"}
        if u.path == "/mock-v2/client/config":
            return self.answer(200, self.client_config(), auth=True)
        if u.path not in LISTS:
            return self.error(404, 9604, "not found", auth=True)
        kind, deltas = LISTS[u.path]
        since = 0
        if "sinceVersionId" in q:
            s = q["sinceVersionId"]
            if (not deltas or not s.startswith("v") or not s[1:].isdigit()
                    or int(s[1:]) > VERSION[0]):
                return self.error(400, 9721, "Invalid versionId", auth=True)
            since = int(s[1:])
        recs = [{k: v for k, v in r.items() if k != "_v"}
                for r in DATA[kind] if r["_v"] > since]
        size = A.page_size
        total = max(1, (len(recs) + size - 1) // size)
        page = q.get("pageIndex", "0")
        if not page.isdigit() or int(page) >= total:
            return self.error(400, 9650, "Invalid page index", auth=True)
        page = int(page)
        common.update({kind: recs[page * size:(page + 1) * size],
                       "currentPageIndex": page, "size": size,
                       "totalPages": total, "versionId": "v%d" % VERSION[0]})
        if page + 1 < total:
            common["nextPageIndex"] = page + 1
        return self.answer(200, common, auth=True)

    def lookup(self, q):
        """The content-metadata lookup (Apple's legacy shape)."""
        c = self.headers.get("Cookie", "")
        auth = ("itvt=" + A.token) in [x.strip() for x in c.split(";")]
        if self.headers.get("Authorization") is not None:
            return self.error(400, 9602, "no bearer here", auth=auth)
        ids = [i for i in q.get("id", "").split(",") if i]
        if (not ids or q.get("version") != "2" or
                q.get("p") != "mdm-lockup" or q.get("caller") != "MDM" or
                not q.get("platform") or not q.get("cc")):
            return self.error(400, 9602, "bad lookup query", auth=auth)
        for i in ids:
            LOOKUPS[i] += 1
        if FAIL["/mock-v2/lookup"]:
            a = FAIL["/mock-v2/lookup"].pop(0)
            return self.error(a.get("status", 200), a.get("errorNumber", 0),
                              a.get("errorMessage", "scripted"),
                              a.get("retry_after"), auth)
        known = set(r["adamId"] for r in DATA["assets"]) - MISSING
        res = {}
        for i in ids:
            if not auth or not A.meta or i not in known:
                continue
            n = int(i) % 1000
            art = ({"url": "https://is1.example.invalid/%s/{w}x{h}bb.{f}" % i,
                    "width": 1024, "height": 1024} if n % 2 == 0 else
                   [{"url": "https://is1.example.invalid/%s/512.png" % i,
                     "width": 512, "height": 512}])
            res[i] = {"id": i, "name": "Mock App %d" % n,
                      "nameRaw": "Mock App %d" % n,
                      "bundleId": "com.example.mock%d" % n,
                      "artistName": "Example Developer",
                      "copyright": "\u00a9 2026 Example Developer",
                      "description": {"standard": "The mock app number %d."
                                      % n},
                      "url": "https://apps.example.invalid/app/id%s" % i,
                      "artwork": art,
                      "genreNames": ["Education", "Productivity"],
                      "kind": "iosSoftware"}
        return self.answer(200, {"results": res, "version": 2,
                                 "isAuthenticated": False,
                                 "meta": {"storefront": {"id": "143441",
                                                         "cc": q["cc"]},
                                          "language": {"tag": "en-us"}}},
                           auth=auth)


def main():
    srv = HTTPServer(("127.0.0.1", 0), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(A.cert, A.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    PORT[0] = srv.server_address[1]
    with open(A.port_file + ".tmp", "w") as f:
        f.write("%d\n" % PORT[0])
    import os
    os.rename(A.port_file + ".tmp", A.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
