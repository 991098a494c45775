#!/usr/bin/python3
"""The README's list of what grant_verifier, grant_admin, grant_delegate,
grant_leak_reporter and PUBLIC allow
(<!-- tested: rights -->) against the catalog of a database set up by it.

Usage: check_rights.py README CATALOG
CATALOG has lines "<who> <name>": who is verifier (functions and views the
verifier role may use beyond PUBLIC), admin (what grant_admin adds),
leak_reporter (what a role granted grant_leak_reporter may use beyond
PUBLIC), delegate (what a role granted grant_delegate may use beyond
PUBLIC) or public; internal objects (a leading underscore) and the key_id type's
support functions are left out by the query that writes it.
Prints one "ok"/"FAIL" line per group.
"""
import re
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from blocks import block, manual  # noqa: E402

text = block(manual(sys.argv[1]), "rights")
bullets = re.split(r"\n(?=- )", text.strip())
said = {"verifier": set(), "admin": set(), "leak_reporter": set(), "delegate": set(), "public": set()}
for b in bullets:
    names = set(re.findall(r"`([a-z_]+)`", b)) - {"grant_verifier", "grant_admin", "grant_leak_reporter",
                                                       "grant_delegate"}
    if b.startswith("- Every role"):
        said["public"] |= names
    elif b.startswith("- `grant_admin`"):
        said["admin"] |= names
    elif b.startswith("- `grant_delegate`"):
        said["delegate"] |= names
    elif b.startswith("- `grant_leak_reporter`"):
        said["leak_reporter"] |= names
    else:
        said["verifier"] |= names

catalog = {"verifier": set(), "admin": set(), "leak_reporter": set(), "delegate": set(), "public": set()}
for line in open(sys.argv[2]):
    who, name = line.split()
    catalog[who].add(name)

failed = 0
for who, what in (("verifier", "grant_verifier allows"), ("admin", "grant_admin adds"),
                  ("leak_reporter", "grant_leak_reporter allows"), ("delegate", "grant_delegate allows"), ("public", "every role may use")):
    missing = sorted(catalog[who] - said[who])
    wrong = sorted(said[who] - catalog[who])
    if catalog[who] and not missing and not wrong:
        print("ok   the README says what %s (%d objects)" % (what, len(catalog[who])))
    else:
        failed += 1
        print("FAIL the README on what %s: not listed %s; listed but not so %s" % (what, missing, wrong))
sys.exit(1 if failed else 0)
