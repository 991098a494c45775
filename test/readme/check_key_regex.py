#!/usr/bin/python3
"""The README's regular expression for key text, its checksum check and its
gitleaks rule (<!-- tested: key-regex -->, key-checksum and gitleaks)
against keys the extension generates, with every prefix and tag length
from 1 to 8, and against near misses: a wrong checksum, a character too few
or too many, separators in the body, an uppercase or too long prefix, and
public keys.  apikey.looks_like_key is the oracle.

Usage: check_key_regex.py README DSN
DSN connects as a superuser; tenants rx-1 ... rx-8 are created.  Prints one
"ok"/"FAIL" line per check, never key text.
"""
import re
import sys
import tomllib

import psycopg2

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from blocks import block, manual  # noqa: E402

readme = manual(sys.argv[1])
regex = block(readme, "key-regex").strip()
checksum = {}
exec(block(readme, "key-checksum"), checksum)  # the README's own code
rules = tomllib.loads(block(readme, "gitleaks"))["rules"]

conn = psycopg2.connect(sys.argv[2])
conn.autocommit = True
cur = conn.cursor()
private, public = [], []
for n in range(1, 9):
    prefix = "kabcdefg"[:n]
    tags = ["t1234567"[:m] for m in range(1, 9)]
    cur.execute("SELECT apikey.create_tenant(%s, NULL, %s, %s)",
                ("rx-%d" % n, ["e%d:%s" % (m, t) for m, t in enumerate(tags, 1)], prefix))
    for m in range(1, 9):
        cur.execute("SELECT api_key FROM generate_series(1, 3), apikey.create_key(%s, %s, 'regex')",
                    ("rx-%d" % n, "e%d" % m))
        private += [r[0] for r in cur.fetchall()]
        cur.execute("SELECT apikey.public_key(%s, %s)", ("rx-%d" % n, "e%d" % m))
        public.append(cur.fetchone()[0])

failed = 0


def check(ok, what):
    global failed
    print(("ok   " if ok else "FAIL ") + what)
    failed += not ok


def looks_like_key(texts):
    cur.execute("SELECT apikey.looks_like_key(t) FROM unnest(%s::text[]) WITH ORDINALITY AS x(t, i) ORDER BY i",
                (texts,))
    return [r[0] for r in cur.fetchall()]


shapes = {(len(k.split("_")[0]), len(k.split("_")[1])) for k in private}
check(len(shapes) == 64, "keys generated with every prefix and tag length, 1 to 8 (%d combinations, %d keys)"
      % (len(shapes), len(private)))
check(all(looks_like_key(private)), "  ... every one well-formed by apikey.looks_like_key")

contexts = ["%s", "API_KEY=%s\n", '"%s"', "'%s'", "key: %s,", "(%s)", "Authorization: Bearer %s",
            "first line\n  %s\nlast line"]
for name, pattern in [("the README's regular expression", regex)] + \
        [("the gitleaks rule %s" % r.get("id"), r["regex"]) for r in rules]:
    rx = re.compile(pattern)
    check(all(rx.fullmatch(k) for k in private), "%s matches every generated key" % name)
    check(all([m.group(0) for m in rx.finditer(c % k)] == [k] for k in private for c in contexts),
          "  ... and finds it, exactly, in %d kinds of surrounding text" % len(contexts))
    check(not any(rx.search(c % p) for p in public for c in contexts), "  ... and no public key")
check(len(rules) == 1 and rules[0]["regex"] == regex and rules[0].get("id") and rules[0].get("description"),
      "the gitleaks rule has an id, a description and the README's regular expression")

find_keys, checksum_ok = checksum["find_keys"], checksum["checksum_ok"]
check(all(checksum_ok(k) for k in private), "the README's checksum check accepts every generated key")
check(all(find_keys(c % k) == [k] for k in private for c in contexts),
      "  ... and find_keys finds each, exactly, in %d kinds of surrounding text" % len(contexts))


def other_digit(c):
    return "x" if c != "x" else "y"


misses = {
    "a wrong checksum": [k[:-1] + other_digit(k[-1]) for k in private],
    "a wrong secret digit": [k[:-10] + other_digit(k[-10]) + k[-9:] for k in private],
    "a character too few": [k[:-1] for k in private],
    "a character too many": [k + "A" for k in private] + [k[:-6] + "A" + k[-6:] for k in private],
    "a '-' in the body": [k[:-20] + "-" + k[-20:] for k in private],
    "a '_' in the body": [k[:-20] + "_" + k[-20:] for k in private],
    "a '.' in the body": [k[:-20] + "." + k[-20:] for k in private],
    "an uppercase prefix": [k.split("_", 1)[0].upper() + "_" + k.split("_", 1)[1] for k in private],
    "a prefix of 9 characters": ["x" + k for k in private if len(k.split("_")[0]) == 8],
}
rx = re.compile(regex)
for what, texts in misses.items():
    check(not any(find_keys(c % t) for t in texts for c in contexts) and not any(looks_like_key(texts)),
          "near miss, %s (%d): found by neither find_keys nor looks_like_key" % (what, len(texts)))
check(not any(find_keys(c % p) for p in public for c in contexts),
      "public keys (%d, well-formed but no secret): not found by find_keys" % len(public))
check(all(rx.fullmatch(t) for t in misses["a wrong checksum"] + misses["a wrong secret digit"]),
      "  ... while the regular expression alone matches the wrong checksums (the checksum tells them apart)")
check(not any(rx.search(c % t) for what in ("a character too few", "a character too many",
                                             "a '-' in the body", "a '.' in the body",
                                             "an uppercase prefix", "a prefix of 9 characters")
              for t in misses[what] for c in contexts),
      "  ... and matches none of the wrong lengths, separators and prefixes")
sys.exit(1 if failed else 0)
