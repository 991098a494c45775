#!/usr/bin/python3
"""Checks of the demo's output as a new user reads it (test/suites/16-readme.sh).

Usage: check_demo.py OUTPUT_FILE
Prints "ok   <check>" or "FAIL <check>: <why>" per check.
"""
import re
import sys

lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
failures = 0


def check(name, problems):
    global failures
    if problems:
        failures += 1
        print("FAIL %s: %s" % (name, "; ".join(problems[:5])))
    else:
        print("ok   %s" % name)


check("every line of the demo fits 80 columns",
      ["%d characters: %s" % (len(l), l) for l in lines if len(l) > 80])

# psql's aligned format: a header, a line of dashes (with + between columns),
# then the rows.  A single column whose only row is blank is the empty
# result of a function returning void.
empty = []
for i in range(1, len(lines) - 2):
    if re.fullmatch(r"-+", lines[i]) and not lines[i + 1].strip():
        empty.append("after '%s'" % lines[i - 1].strip())
check("no result table that is one empty cell", empty)

check("no interval printed as seconds (e.g. 3600.000000)",
      [l for l in lines if re.search(r"\b\d+\.\d{6}\b", l)])


def section(title):
    """The lines of the section whose heading starts with title."""
    out, inside = [], False
    for l in lines:
        if l.startswith("== "):
            inside = l.startswith(title)
        elif inside:
            out.append(l)
    return out


def rows_after(sec, marker):
    """The data rows of each table that follows the line starting with marker."""
    tables, i = [], 0
    start = next((k for k, l in enumerate(sec) if l.startswith(marker)), None)
    if start is None:
        return tables
    i = start
    while i < len(sec):
        if re.fullmatch(r"[-+]+", sec[i]):
            rows = []
            i += 1
            while i < len(sec) and sec[i].strip():
                rows.append([c.strip() for c in sec[i].split("|")])
                i += 1
            tables.append(rows)
        i += 1
    return tables


s1 = section("== 1.")
check("identify(public key) names the tenant and environment",
      [] if any(re.fullmatch(r"\s*acme\s*\|\s*production\s*", l) for l in s1) else ["no 'acme | production' row"])

tables = rows_after(section("== 5."), "Each tenant reads")
acme = tables[0] if tables else []
globex = tables[1] if len(tables) > 1 else []
nobody = tables[2] if len(tables) > 2 else []


def items(rows):
    return sorted(r[2] for r in rows if len(r) == 3)


check("RLS as the application: each tenant reads its own orders and no other's",
      [] if items(acme) == ["1 gizmo", "2 widgets"] and items(globex) == ["5 gadgets"]
      and all(r[0] == "acme" for r in acme) and all(r[0] == "globex" for r in globex)
      and nobody == [["", "0"]] else ["tables after 'Each tenant reads': %s" % tables])

s7 = section("== 7.")
check("expiry: a key with a 1 hour lifetime, then expired",
      [] if any(re.search(r"\|\s*1 hour\s*$", l) for l in s7) and any(l.strip() == "expired" for l in s7)
      else ["no '1 hour' lifetime or no 'expired' status"])

s6 = section("== 6.")
check("revoke and reactivate show the key's status",
      [] if any(re.search(r"\|\s*revoked\s*\|", l) for l in s6) and any(re.search(r"\|\s*active\s*$", l) for l in s6)
      else ["no revoked and active rows"])

s10 = rows_after(section("== 10."), " request")
requests = s10[0] if s10 else []
listing = s10[1] if len(s10) > 1 else []
check("usage control: two requests valid (credits 2, 1), the third rate_limited with a retry time, "
      "its credit not spent",
      [] if requests[:2] == [["1", "valid", "2", ""], ["2", "valid", "1", ""]]
      and len(requests) == 3 and requests[2][:3] == ["3", "rate_limited", ""]
      # the window is a minute and one of its 31 sub-windows: 60 to 62 seconds
      and requests[2][3] in ("60", "61", "62")
      and listing == [["Partner feed", "1"]] else ["requests %s, listing %s" % (requests, listing)])

s11 = rows_after(section("== 11."), "      name")
check("an owner's keys revoked in one call, and verify says revoked",
      [] if len(s11) >= 4 and s11[1] == [["2"]]
      and [r[1] for r in s11[2]] == ["revoked", "revoked"] and s11[3] == [["revoked"]]
      else ["tables in section 11: %s" % s11])

sys.exit(1 if failures else 0)
