#!/usr/bin/python3
"""The reference (doc/reference.md) names every function, view and setting
of the installed extension, so one added without documentation fails.

Usage: check_reference.py REFERENCE CATALOG
CATALOG has lines "<kind> <name>": kind is function (a function of schema
apikey, the key_id type's support functions left out by the query that
writes it), view (a view of schema apikey), column (view.column, a column
of such a view) or setting (an apikey.* setting of a server with the
library preloaded).  A function counts as documented
when the reference shows it called, `name(...)` (or `apikey.name(...)`),
a view or a setting when it shows its name in backticks, a column when
the view's bullet ("- `view`: ...", up to the next bullet or paragraph)
names it.
Prints one "ok"/"FAIL" line per kind.
"""
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()
catalog = {"function": set(), "view": set(), "column": set(), "setting": set()}
for line in open(sys.argv[2]):
    kind, name = line.split()
    catalog[kind].add(name)


def bullet(view):
    """The text of the reference's bullet on a view, "" when there is none."""
    m = re.search(r"^- `%s`[^\n]*(\n  [^\n]*)*" % re.escape(view), text, re.M)
    return m.group(0) if m else ""


def documented(kind, name):
    if kind == "column":
        view, column = name.split(".")
        return re.search(r"(?<![a-z_])%s(?![a-z_])" % re.escape(column), bullet(view)) is not None
    if kind == "function":
        return re.search(r"`(apikey\.)?%s\(" % re.escape(name), text) is not None
    if kind == "view":
        return re.search(r"`(apikey\.)?%s`" % re.escape(name), text) is not None
    return "`%s`" % name in text


failed = 0
for kind in ("function", "view", "column", "setting"):
    missing = sorted(n for n in catalog[kind] if not documented(kind, n))
    if catalog[kind] and not missing:
        print("ok   the reference names every %s of the extension (%d)" % (kind, len(catalog[kind])))
    else:
        failed += 1
        print("FAIL the reference does not name the %ss %s (of %d)" % (kind, missing, len(catalog[kind])))
sys.exit(1 if failed else 0)
