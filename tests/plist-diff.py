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

Then, from the inputs picomdm accepted, MUTANTS (default 10000) mutated
copies are made with a fixed seed (markup, entities, numbers, bytes
inserted, deleted or replaced) and compared the same way, so that the
comparison covers much more than the few well-formed corpus inputs.

Every file and mutant also checks picomdm against itself: the tree
plist_safe_parse() builds while it scans must be the one libplist's
parser makes (tests/plist-canon's "builder" member).

Prints one line per disagreement and a summary; exit status 0 only when
there is none. Environment: PLIST_DIFF_MUTANTS, PLIST_DIFF_SEED.
"""
import datetime
import json
import math
import os
import plistlib
import random
import subprocess
import sys
import tempfile

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


TOKENS = [b"<", b">", b"/", b"&", b";", b"#", b"x", b"<![CDATA[", b"]]>",
          b"<!--", b"-->", b"\r", b"\n", b" ", b"=", b'"', b"0", b"-", b".",
          b"e", b"+", b"Z", b"T", b":", b"<key>a</key>", b"<string>",
          b"</string>", b"<integer>", b"</integer>", b"<real>", b"</real>",
          b"<date>", b"</date>", b"<data>", b"</data>", b"<true/>",
          b"<false/>", b"<dict>", b"</dict>", b"<array>", b"</array>",
          b"&amp;", b"&#", b"\xc3", b"\xa9", b"\xef\xbb\xbf", b"\t",
          b"<plist>", b"</plist>", b"CF$UID", b"<key>", b"</key>", b"9",
          b"1", b"A", b"Q", b"=="]


def mutants(seeds, n, seed, outdir):
    """n mutated copies of the seed documents, written to outdir."""
    rnd = random.Random(seed)
    paths = []
    for i in range(n):
        b = bytearray(rnd.choice(seeds))
        for _ in range(rnd.randint(1, 4)):
            op, p = rnd.random(), rnd.randrange(len(b) + 1)
            if op < 0.4:
                b[p:p] = rnd.choice(TOKENS)
            elif op < 0.7 and len(b) > 1:
                del b[p:p + rnd.randint(1, 8)]
            elif op < 0.85 and p < len(b):
                b[p] = rnd.randrange(256)
            else:
                q = rnd.randrange(len(b) + 1)
                b[p:p] = b[q:q + rnd.randint(1, 40)]
        path = os.path.join(outdir, f"mutant-{i:05d}")
        with open(path, "wb") as f:
            f.write(b)
        paths.append(path)
    return paths


def compare(canon_bin, files):
    """Run both parsers on files; (accepted, refused, disagreements,
    accepted file contents)."""
    out = []
    for i in range(0, len(files), 200):
        r = subprocess.run([canon_bin] + files[i:i + 200],
                           stdout=subprocess.PIPE, check=True)
        out += r.stdout.decode("utf-8", "surrogateescape").splitlines()
    if len(out) != len(files):
        print(f"not ok - {len(out)} lines for {len(files)} files")
        return 0, 0, 1, []
    bad = accepted = refused = 0
    docs = []
    for line in out:
        c = json.loads(line)
        name = os.path.basename(c["file"])
        if "builder" in c:
            print(f"not ok - {c['file']}: picomdm's own tree builder: "
                  f"{c['builder']}")
            bad += 1
        if not c["ok"]:
            refused += 1
            if "strict-" in name:
                bad += 1
                print(f"not ok - {c['file']}: refused ({c['err']}) but "
                      "in the strict form")
            continue
        accepted += 1
        if "ambig-" in name:
            bad += 1
            print(f"not ok - {c['file']}: accepted, should be refused")
        with open(c["file"], "rb") as f:
            data = f.read()
        docs.append(data)
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
    return accepted, refused, bad, docs


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
    accepted, refused, bad, docs = compare(sys.argv[1], files)
    print(f"# plist-diff: {len(files)} corpus inputs, {accepted} accepted "
          f"and read alike by plistlib, {refused} refused; {bad} "
          "disagreement(s)")
    if accepted == 0:
        print("not ok - no input accepted: the comparison proved nothing")
        return 1
    n = int(os.environ.get("PLIST_DIFF_MUTANTS", "10000"))
    seed = int(os.environ.get("PLIST_DIFF_SEED", "1"))
    with tempfile.TemporaryDirectory(prefix="plist-diff.") as tmp:
        m = mutants(docs, n, seed, tmp)
        ma, mr, mb, _ = compare(sys.argv[1], m)
    print(f"# plist-diff: {n} mutants (seed {seed}), {ma} accepted and "
          f"read alike by plistlib, {mr} refused; {mb} disagreement(s)")
    return 1 if bad or mb else 0


if __name__ == "__main__":
    sys.exit(main())
