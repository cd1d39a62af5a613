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

Legacy v1 (read only; picomdm-vpp sync --v1):
  GET|POST /mdm/VPPServiceConfigSrv  no authentication; clientConfigSrvUrl
                               and getLicensesSrvUrl on /mock-v1/ paths
  POST <clientConfigSrvUrl>    organizationId, organizationIdHash,
                               facilitatorMemberId, location{locationId}
  POST <getLicensesSrvUrl>     the live assignments' licences (licenseIdStr,
                               adamIdStr, serialNumber or clientUserIdStr),
                               --v1-batch a batch; batchToken while more
                               remain, sinceModifiedToken ("m<version>") on
                               the last; sinceModifiedToken=mK lists the
                               licences of assignments changed after K
  The sToken is in the body; errors are HTTP 200 with status -1 and
  errorNumber (9621, 9622, 9625 as for v2; 9602 for a bad batchToken or
  sinceModifiedToken); /mock/fail scripts them too (status 503 and
  retry_after included; an answer {"pass": true} lets that request be
  answered as usual, so that a later one fails).

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
  POST /mock/change {"assignments":[{...}], "users":[{...}],
                     "remove": {"assignments":[{IDs}], "users":[{IDs}]}}
      adds and removes records at a new version (one version per call).
      Apple's v2 documents no removal marker for a delta; this mock's
      convention, which picomdm-vpp follows (man/picomdm-vpp.8): a delta
      returns a removed assignment with "deleted": true and a removed
      user with status "Deleted"; a full listing leaves both out.
  POST /mock/fail {"path": "<path>", "answers": [ANSWER, ...]}
      queues answers for the next requests to that path, in order;
      ANSWER is {"status": 200, "errorNumber": 9603, "errorMessage": "..",
      "retry_after": "2"} (any field optional)
  GET /mock/stats
      {"requests": N, "over_rate": N, "max_per_second": N}
  GET /mock/lookups
      {adamId: times asked for, ...} by the metadata lookup
  POST /mock/rate-reset
      starts over_rate, max_per_second and the one-second window afresh

Writes (asynchronous, as Apple's): POST <associateAssets>,
<disassociateAssets>, <revokeAssets>, <createUsers>, <retireUsers> check
the request (Content-Type 415 9727; no assets 9718, over maxAssets 9700,
an unknown adamId/pricingParam 9602, serials to an asset not
deviceAssignable 9707; neither serialNumbers nor clientUserIds 9719;
over maxSerialNumbers/maxRevokeSerialNumbers 9702, over
maxClientUserIds/maxRevokeClientUserIds 9701; duplicates 9703/9704;
no users 9720, over maxUsers 9714, a user without clientUserId 9602, a
bad email 9717) and answer {"eventId": ...}. GET <eventStatus>?eventId=
answers PENDING until --event-delay seconds have passed (unknown event:
400 9708), then COMPLETE (FAILED when every item failed) with
numRequested, numCompleted and failures [{errorNumber, errorMessage,
errorInfo: {serialNumbers|clientUserIds: [...]}}]: an item named by
/mock/events "fail" fails with that number, an associate past the
asset's available licences 9709, a clientUserId that exists 9716. The
effect is applied to the data once, at a new version (assignments
added or removed, counts, users added or Retired). POSTs count in the
rate window and /mock/fail scripts them as GETs.
  POST /mock/events {"delay": SECONDS, "fail": {"ITEM": errorNumber},
                    "finish": true}
      the delay of events sent from now on, items that will fail, and
      (finish) every pending event due now
  --limits JSON overrides service-configuration limits.
  GET /mock/digest?kind=assets|assignments|users
      {"count": N, "sha256": H}: H of what a full listing holds, its
      keys ("adamId|pricingParam", "adamId|serialNumber" or
      "adamId|clientUserId", "clientUserId") sorted bytewise, one a line

--log FILE gets one JSON line per request: t (seconds), method, path,
query, auth (the bearer matched --token), status, errorNumber.
"""
import argparse
import base64
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
P.add_argument("--event-delay", type=float, default=1.0)
P.add_argument("--limits", default=None)
P.add_argument("--v1-batch", type=int, default=100)
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
         "pricingParam": "STDQ", "serialNumber": "C02MOCK%05d" % i, "_v": 1,
         "_lic": 900000000 + i}
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

VIEWS = {}
LICENCE = [950000000]


def ident(kind, r):
    """A record's IDs, as the store keys it."""
    if kind == "assets":
        return (r.get("adamId"), r.get("pricingParam"))
    if kind == "users":
        return (r.get("clientUserId"),)
    return (r.get("adamId"), r.get("serialNumber"), r.get("clientUserId"))


def remove(kind, r):
    """Take a record away at the current version: the live one is marked
    gone (full listings leave it out) and a tombstone goes after it, which
    deltas since an older version return: an assignment with "deleted":
    true, a user with status "Deleted"."""
    key = ident(kind, r)
    for x in DATA[kind]:
        if not x.get("_gone") and ident(kind, x) == key:
            x["_gone"] = True
    t = {k: v for k, v in r.items()}
    if kind == "users":
        t["status"] = "Deleted"
    else:
        t["deleted"] = True
    t["_v"] = VERSION[0]
    t["_tomb"] = True
    DATA[kind].append(t)


def view(kind, since):
    """What a listing since that version returns (0: a full one): built
    once per version and kept, so that each page is a slice."""
    v = VIEWS.get((kind, since))
    if v is None:
        if since == 0:
            v = [r for r in DATA[kind]
                 if not r.get("_gone") and not r.get("_tomb")]
        else:
            # The last state of each record changed since then.
            last = {}
            for r in DATA[kind]:
                if r["_v"] > since:
                    last[ident(kind, r)] = r
            v = list(last.values())
        VIEWS[(kind, since)] = v
    return v


def digest(kind):
    """What a full listing holds: the count, and the SHA-256 of its
    records' keys ("adamId|serialNumber or clientUserId", or
    "adamId|pricingParam", or "clientUserId"), sorted bytewise, one a
    line."""
    import hashlib
    keys = sorted("|".join(x for x in ident(kind, r) if x is not None)
                  for r in view(kind, 0))
    h = hashlib.sha256("".join(k + "\n" for k in keys).encode())
    return {"count": len(keys), "sha256": h.hexdigest()}


LISTS = {"/mock-v2/assets/list": ("assets", False),
         "/mock-v2/assignments/list": ("assignments", True),
         "/mock-v2/users/list": ("users", True)}


LIMITS = {"maxAssets": 25, "maxClientUserIds": 1000,
          "maxSerialNumbers": 1000, "maxRevokeClientUserIds": 100,
          "maxRevokeSerialNumbers": 100, "maxUsers": 100,
          "maxRequestPerSecond": A.max_rps}
LIMITS.update(json.loads(A.limits) if A.limits else {})
EVENTS = {}
EVENT_CONF = {"delay": A.event_delay, "fail": {}}
WRITES = {"/mock-v2/assets/associate": "ASSOCIATE",
          "/mock-v2/assets/disassociate": "DISASSOCIATE",
          "/mock-v2/assets/revoke": "REVOKE",
          "/mock-v2/users/create": "CREATE",
          "/mock-v2/users/retire": "RETIRE"}


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
        "limits": LIMITS,
        "errorCodes": [],
    }


def v1_service_config():
    """Legacy v1's service configuration: its URLs at the top level, on
    paths of the mock's own."""
    base = "https://127.0.0.1:%d/mock-v1" % PORT[0]
    return {"clientConfigSrvUrl": base + "/VPPClientConfigSrv",
            "getLicensesSrvUrl": base + "/getVPPLicensesSrv",
            "getVPPAssetsSrvUrl": base + "/getVPPAssetsSrv",
            "getUsersSrvUrl": base + "/getVPPUsersSrv",
            "maxBatchAssociateLicenseCount": 10,
            "maxBatchDisassociateLicenseCount": 10,
            "errorCodes": [{"errorNumber": 9602,
                            "errorMessage": "Invalid argument"}]}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The answer's head and body are two writes: without this, Nagle
    # holds the body until the client's delayed ACK (40 ms an answer).
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def answer(self, status, body, number=0, retry_after=None, auth=False):
        data = json.dumps(body).encode()
        # Logged before the answer goes out: a client that has its answer
        # and exits must find its request in the log already.
        u = urllib.parse.urlsplit(self.path)
        LOG.write(json.dumps({"t": time.time(), "method": self.command,
                              "path": u.path, "query": u.query,
                              "auth": auth, "status": status,
                              "errorNumber": number}) + "\n")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, number, msg, retry_after=None, auth=False):
        self.answer(status, {"errorNumber": number, "errorMessage": msg},
                    number, retry_after, auth)

    def over_rate(self):
        """Count the request; True when it is over --max-rps."""
        STATS["requests"] += 1
        now = time.monotonic()
        WINDOW.append(now)
        while WINDOW and WINDOW[0] <= now - 1.0:
            WINDOW.popleft()
        STATS["max_per_second"] = max(STATS["max_per_second"], len(WINDOW))
        if len(WINDOW) > A.max_rps:
            STATS["over_rate"] += 1
            return True
        return False

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
                    if k == "assignments":
                        LICENCE[0] += 1
                        r["_lic"] = LICENCE[0]
                    DATA[k].append(r)
            for k, recs in body.get("remove", {}).items():
                for r in recs:
                    remove(k, r)
            VIEWS.clear()
            return self.answer(200, {"versionId": "v%d" % VERSION[0]})
        if u.path == "/mock/fail":
            FAIL[body["path"]].extend(body["answers"])
            return self.answer(200, {})
        if u.path == "/mock/rate-reset":
            WINDOW.clear()
            STATS["over_rate"] = STATS["max_per_second"] = 0
            return self.answer(200, {})
        if u.path == "/mock/events":
            if body.pop("finish", False):
                for ev in EVENTS.values():
                    ev["due"] = min(ev["due"], time.monotonic())
            EVENT_CONF.update(body)
            return self.answer(200, {})
        if u.path in WRITES:
            return self.write(u.path, body)
        if u.path == "/mdm/VPPServiceConfigSrv":
            return self.answer(200, v1_service_config())
        if u.path.startswith("/mock-v1/"):
            return self.v1(u.path, body)
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

    def write(self, path, body):
        """A write endpoint: checked, then an event."""
        if self.over_rate():
            return self.error(429, 9646, "Too many requests", 1)
        e = bearer_error(self.headers.get("Authorization", ""))
        if e is not None:
            return self.error(*e)
        if FAIL[path]:
            a = FAIL[path].pop(0)
            return self.error(a.get("status", 200), a.get("errorNumber", 0),
                              a.get("errorMessage", "scripted"),
                              a.get("retry_after"), True)
        if self.headers.get("Content-Type", "") != "application/json":
            return self.error(415, 9727, "Content-Type", auth=True)
        kind = WRITES[path]
        e = check_write(kind, body)
        if e is not None:
            return self.error(*e, auth=True)
        eid = "%d%06d" % (int(time.time()), len(EVENTS) + 1)
        n = (len(body.get("users", [])) if kind in ("CREATE", "RETIRE") else
             (len(body.get("serialNumbers", [])) +
              len(body.get("clientUserIds", []))) *
             max(1, len(body.get("assets", []))))
        EVENTS[eid] = {"type": kind, "body": body, "num": n,
                       "due": time.monotonic() + EVENT_CONF["delay"],
                       "fail": dict(EVENT_CONF["fail"]), "result": None}
        return self.answer(200, {"eventId": eid, "uId": "mock-library-1",
                                 "tokenExpirationDate":
                                 "2030-11-08T22:33:22+0000"}, auth=True)

    def status(self, q):
        ev = EVENTS.get(q.get("eventId", ""))
        if ev is None:
            return self.error(400, 9708, "eventId not found", auth=True)
        if time.monotonic() < ev["due"]:
            return self.answer(200, {"eventStatus": "PENDING",
                                     "eventType": ev["type"],
                                     "numRequested": ev["num"],
                                     "numCompleted": 0}, auth=True)
        return self.answer(200, complete(ev), auth=True)

    def v1(self, path, body):
        """Legacy v1: the sToken in the body, status 0 or -1 with
        errorNumber, HTTP 200 either way (503 only when scripted)."""
        STATS["requests"] += 1
        def err(n, m, auth=False):
            self.answer(200, {"status": -1, "errorNumber": n,
                              "errorMessage": m}, n, None, auth)
        tok = body.get("sToken")
        if not isinstance(tok, str) or not tok:
            return err(9600, "Missing sToken")
        if A.expired is not None and tok == A.expired:
            return err(9621, "Token expired")
        if A.revoked is not None and tok == A.revoked:
            return err(9625, "Token revoked")
        if tok != A.token:
            return err(9622, "Invalid authentication token")
        if not self.headers.get("Content-Type", "").startswith(
                "application/json"):
            return err(9602, "Content-Type", True)
        if FAIL[path] and FAIL[path][0].get("pass"):
            FAIL[path].pop(0)  # this one answered as usual
        elif FAIL[path]:
            a = FAIL[path].pop(0)
            b = {"status": -1, "errorNumber": a.get("errorNumber", 9603),
                 "errorMessage": a.get("errorMessage", "scripted")}
            return self.answer(a.get("status", 200), b, b["errorNumber"],
                               a.get("retry_after"), True)
        if path == "/mock-v1/VPPClientConfigSrv":
            return self.answer(200, {
                "status": 0, "appleId": "vpp-admin@example.com",
                "email": "vpp-admin@example.com",
                "organizationId": 1234567890123,
                "organizationIdHash": "5f1e" * 16,
                "facilitatorMemberId": 4242, "countryCode": "US",
                "defaultPlatform": "volumestore", "uId": "mock-library-1",
                "location": {"locationId": 22222222222,
                             "locationName": "Mock Campus"}}, auth=True)
        if path != "/mock-v1/getVPPLicensesSrv":
            return err(9604, "not found", True)
        # Batches by batchToken ("<since>.<offset>", base64); the last
        # one carries sinceModifiedToken ("m<version>") instead.
        since, off = 0, 0
        if "batchToken" in body:
            try:
                a, b = base64.b64decode(body["batchToken"],
                                        validate=True).decode().split(".")
                since, off = int(a), int(b)
            except (ValueError, TypeError, UnicodeDecodeError):
                return err(9602, "Invalid batchToken", True)
        elif "sinceModifiedToken" in body:
            m = str(body["sinceModifiedToken"])
            if (not m.startswith("m") or not m[1:].isdigit()
                    or int(m[1:]) > VERSION[0]):
                return err(9602, "Invalid sinceModifiedToken", True)
            since = int(m[1:])
        recs = [r for r in view("assignments", since)
                if not r.get("_tomb")]
        batch = recs[off:off + A.v1_batch]
        lic = []
        for r in batch:
            x = {"licenseId": r["_lic"], "licenseIdStr": str(r["_lic"]),
                 "adamId": int(r["adamId"]), "adamIdStr": r["adamId"],
                 "pricingParam": r.get("pricingParam", "STDQ"),
                 "productTypeId": 8, "productTypeName": "Application",
                 "isIrrevocable": False, "status": "Associated"}
            if "serialNumber" in r:
                x["serialNumber"] = r["serialNumber"]
            else:
                x["clientUserIdStr"] = r.get("clientUserId", "")
            lic.append(x)
        out = {"status": 0, "licenses": lic, "totalCount": len(recs),
               "totalBatchCount": str(max(1, -(-len(recs) // A.v1_batch))),
               "batchCount": len(lic), "uId": "mock-library-1",
               "location": {"locationId": 22222222222,
                            "locationName": "Mock Campus"}}
        if off + A.v1_batch < len(recs):
            out["batchToken"] = base64.b64encode(
                ("%d.%d" % (since, off + A.v1_batch)).encode()).decode()
        else:
            out["sinceModifiedToken"] = "m%d" % VERSION[0]
        return self.answer(200, out, auth=True)

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
        if u.path == "/mock/digest":
            return self.answer(200, digest(q.get("kind", "assignments")))
        if self.over_rate():
            return self.error(429, 9646, "Too many requests", 1)
        if u.path == "/mdm/v2/service/config":
            return self.answer(200, service_config())
        if u.path == "/mdm/VPPServiceConfigSrv":
            return self.answer(200, v1_service_config())
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
        if u.path == "/mock-v2/status":
            return self.status(q)
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
        recs = view(kind, since)
        size = A.page_size
        total = max(1, (len(recs) + size - 1) // size)
        page = q.get("pageIndex", "0")
        if not page.isdigit() or int(page) >= total:
            return self.error(400, 9650, "Invalid page index", auth=True)
        page = int(page)
        common.update({kind: [{k: v for k, v in r.items() if k[0] != "_"}
                              for r in recs[page * size:(page + 1) * size]],
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


def bearer_error(h):
    """The error tuple for an Authorization header, or None."""
    if not h.startswith("Bearer ") or len(h) <= 7:
        return (401, 9722, "Invalid Authorization header")
    b = h[7:]
    if A.expired is not None and b == A.expired:
        return (401, 9621, "Token expired")
    if A.revoked is not None and b == A.revoked:
        return (401, 9625, "Token revoked")
    if b != A.token:
        return (200, 9622, "Invalid authentication token")
    return None


def find_asset(adam, pp):
    for a in DATA["assets"]:
        if a["adamId"] == adam and a["pricingParam"] == pp:
            return a
    return None


def check_write(kind, body):
    """(status, errorNumber, message) when the request is refused."""
    if kind in ("ASSOCIATE", "DISASSOCIATE", "REVOKE"):
        serials = body.get("serialNumbers", [])
        users = body.get("clientUserIds", [])
        if not isinstance(serials, list) or not isinstance(users, list):
            return (400, 9602, "Invalid argument")
        if not serials and not users:
            return (400, 9719, "Either clientUserIds or serialNumbers")
        rs = "maxRevokeSerialNumbers" if kind == "REVOKE" else "maxSerialNumbers"
        ru = "maxRevokeClientUserIds" if kind == "REVOKE" else "maxClientUserIds"
        if len(serials) > LIMITS[rs]:
            return (400, 9702, "Too many serial numbers")
        if len(users) > LIMITS[ru]:
            return (400, 9701, "Too many clientUserIds")
        if len(set(serials)) != len(serials):
            return (400, 9703, "Duplicate serial numbers")
        if len(set(users)) != len(users):
            return (400, 9704, "Duplicate clientUserIds")
        if kind == "REVOKE":
            return None
        assets = body.get("assets")
        if not isinstance(assets, list) or not assets:
            return (400, 9718, "No assets")
        if len(assets) > LIMITS["maxAssets"]:
            return (400, 9700, "Too many assets")
        for x in assets:
            a = find_asset(x.get("adamId"), x.get("pricingParam"))
            if a is None:
                return (400, 9602, "Invalid argument: unknown asset")
            if serials and kind == "ASSOCIATE" and not a["deviceAssignable"]:
                return (400, 9707, "Asset is not device assignable")
        return None
    users = body.get("users")
    if not isinstance(users, list) or not users:
        return (400, 9720, "No users")
    if len(users) > LIMITS["maxUsers"]:
        return (400, 9714, "Too many users")
    ids = [u.get("clientUserId") for u in users]
    if not all(isinstance(i, str) and i for i in ids):
        return (400, 9602, "Invalid argument: clientUserId")
    if len(set(ids)) != len(ids):
        return (400, 9715, "Duplicate users")
    for u in users:
        e = u.get("email")
        if e is not None and (not isinstance(e, str) or "@" not in e):
            return (400, 9717, "Invalid email")
    return None


def complete(ev):
    """Apply an event whose delay has passed (once); its status body."""
    if ev.get("result") is not None:
        return ev["result"]
    kind, body = ev["type"], ev["body"]
    fails = {}  # errorNumber -> {list name: [items]}
    done = 0
    VERSION[0] += 1
    v = VERSION[0]
    VIEWS.clear()  # the listings change at this version

    def failed(item, lst, number):
        fails.setdefault(number, {}).setdefault(lst, []).append(item)

    def assigned(adam, lst, item):
        key = "serialNumber" if lst == "serialNumbers" else "clientUserId"
        return [r for r in DATA["assignments"]
                if r.get(key) == item and (adam is None or r["adamId"] == adam)]

    items = [("serialNumbers", s) for s in body.get("serialNumbers", [])] + \
        [("clientUserIds", c) for c in body.get("clientUserIds", [])]
    if kind in ("ASSOCIATE", "DISASSOCIATE"):
        for x in body["assets"]:
            a = find_asset(x["adamId"], x["pricingParam"])
            for lst, item in items:
                key = "serialNumber" if lst == "serialNumbers" else "clientUserId"
                if item in ev["fail"]:
                    failed(item, lst, ev["fail"][item])
                    continue
                have = assigned(a["adamId"], lst, item)
                if kind == "ASSOCIATE" and not have:
                    if a["availableCount"] <= 0:
                        failed(item, lst, 9709)
                        continue
                    DATA["assignments"].append(
                        {"adamId": a["adamId"], "pricingParam": a["pricingParam"],
                         key: item, "_v": v})
                    a["availableCount"] -= 1
                    a["assignedCount"] += 1
                    a["_v"] = v
                elif kind == "DISASSOCIATE":
                    for r in have:
                        DATA["assignments"].remove(r)
                        a["availableCount"] += 1
                        a["assignedCount"] = max(0, a["assignedCount"] - 1)
                        a["_v"] = v
                done += 1
    elif kind == "REVOKE":
        for lst, item in items:
            if item in ev["fail"]:
                failed(item, lst, ev["fail"][item])
                continue
            for r in assigned(None, lst, item):
                DATA["assignments"].remove(r)
                a = find_asset(r["adamId"], r["pricingParam"])
                if a is not None:
                    a["availableCount"] += 1
                    a["assignedCount"] = max(0, a["assignedCount"] - 1)
                    a["_v"] = v
            done += 1
    else:
        for u in body["users"]:
            cid = u["clientUserId"]
            have = [r for r in DATA["users"] if r["clientUserId"] == cid]
            if cid in ev["fail"]:
                failed(cid, "clientUserIds", ev["fail"][cid])
                continue
            if kind == "CREATE":
                if have:
                    failed(cid, "clientUserIds", 9716)
                    continue
                r = {"clientUserId": cid, "status": "Registered",
                     "inviteCode": "inv-" + cid[:8], "_v": v}
                if "email" in u:
                    r["email"] = u["email"]
                DATA["users"].append(r)
            else:
                for r in have:
                    r["status"] = "Retired"
                    r["_v"] = v
            done += 1
    msgs = {9709: "Not enough licenses", 9716: "clientUserId already exists",
            9603: "Internal error", 9635: "Apple ID can't be associated"}
    failures = [{"errorNumber": n, "errorMessage": msgs.get(n, "failed"),
                 "errorInfo": info} for n, info in sorted(fails.items())]
    n = ev["num"]
    ev["result"] = {"eventStatus": "FAILED" if done == 0 and n else "COMPLETE",
                    "eventType": kind, "numRequested": n,
                    "numCompleted": done, "failures": failures}
    return ev["result"]


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
