#!/usr/bin/python3
"""plist-diff.py - the differential test of picomdm's plist parsing.

usage: plist-diff.py PLIST-CANON DIR...

Every file under the DIRs (the fuzz corpora) goes through picomdm's
plist_safe_parse() (tests/plist-canon prints what it read) and through
Python's plistlib, an independent parser built on expat. For every file
picomdm accepts, plistlib must read the same values; a file picomdm
refuses needs nothing (refusing is always safe). Besides, a file whose
name starts with "strict-" must be accepted and one whose name starts
with "ambig-" refused: they pin down the rules (module/plist.c lists
them) from both sides.

Prints one line per disagreement and a summary; exit status 0 only when
there is none.
"""
import datetime
import json
import math
import os
import plistlib
import subprocess
import sys

EPOCH = datetime.datetime(2001, 1, 1)


def canon(v):
    """plistlib's value in plist-canon's form."""
    if isinstance(v, bool):
        return {"b": v}
    if isinstance(v, dict):
        return {"d": [[k, canon(x)] for k, x in v.items()]}
    if isinstance(v, list):
        return {"a": [canon(x) for x in v]}
    if isinstance(v, str):
        return {"s": v}
    if isinstance(v, int):
        return {"i": str(v)}
    if isinstance(v, float):
        return {"r": format(v, ".17g")}
    if isinstance(v, datetime.datetime):
        d = v - EPOCH
        if d.microseconds:
            return {"?": "date with us"}
        return {"t": d.days * 86400 + d.seconds}
    if isinstance(v, (bytes, bytearray)):
        return {"x": bytes(v).hex()}
    return {"?": type(v).__name__}


def norm(v):
    """Dicts compared as sets of pairs (libplist's order is its own)."""
    if "d" in v:
        return {"d": sorted([k, norm(x)] for k, x in v["d"])}
    if "a" in v:
        return {"a": [norm(x) for x in v["a"]]}
    if "r" in v:
        # Both print %.17g; spell inf and nan one way.
        f = float(v["r"])
        return {"r": "nan" if math.isnan(f) else format(f, ".17g")}
    return v


def main():
    if len(sys.argv) < 3:
        print("usage: plist-diff.py PLIST-CANON DIR...", file=sys.stderr)
        return 2
    files = []
    for d in sys.argv[2:]:
        for root, _, names in os.walk(d):
            files += [os.path.join(root, n) for n in sorted(names)]
    files.sort()
    if not files:
        print("plist-diff: no corpus files", file=sys.stderr)
        return 1
    out = []
    for i in range(0, len(files), 200):
        r = subprocess.run([sys.argv[1]] + files[i:i + 200],
                           stdout=subprocess.PIPE, check=True)
        out += r.stdout.decode("utf-8", "surrogateescape").splitlines()
    if len(out) != len(files):
        print(f"plist-diff: {len(out)} lines for {len(files)} files")
        return 1
    bad = accepted = refused = 0
    for line in out:
        c = json.loads(line)
        name = os.path.basename(c["file"])
        if not c["ok"]:
            refused += 1
            if name.startswith("strict-"):
                bad += 1
                print(f"not ok - {c['file']}: refused ({c['err']}) but "
                      "in the strict form")
            continue
        accepted += 1
        if name.startswith("ambig-"):
            bad += 1
            print(f"not ok - {c['file']}: accepted, should be refused")
        with open(c["file"], "rb") as f:
            data = f.read()
        try:
            py = plistlib.loads(data, fmt=plistlib.FMT_XML)
        except Exception as e:  # any refusal by plistlib
            bad += 1
            print(f"not ok - {c['file']}: picomdm accepts, plistlib "
                  f"refuses: {type(e).__name__}: {e}")
            continue
        if norm(canon(py)) != norm(c["v"]):
            bad += 1
            print(f"not ok - {c['file']}: read differently\n"
                  f"#   picomdm:  {json.dumps(c['v'])[:300]}\n"
                  f"#   plistlib: {json.dumps(canon(py))[:300]}")
    print(f"# plist-diff: {len(files)} inputs, {accepted} accepted and "
          f"read alike by plistlib, {refused} refused; "
          f"{bad} disagreement(s)")
    if accepted == 0:
        print("not ok - no input accepted: the comparison proved nothing")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
