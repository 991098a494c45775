#!/usr/bin/python3
"""The HTTP answers the README states (<!-- tested: http-status -->) against
what the code does: test/http/server.py (its FORBIDDEN set and the statuses
authenticate raises with SQLSTATEs of their own), the statuses
test/suites/26-http.sh expects, the README's Python example and its
PostgREST function; and every verification status of the README's
reference is given an answer.

Usage: check_http.py REPO
Prints one "ok"/"FAIL" line per comparison.
"""
import os
import re
import sys

sys.dont_write_bytecode = True
repo = sys.argv[1]
sys.path.insert(0, os.path.join(repo, "test", "readme"))
sys.path.insert(0, os.path.join(repo, "test", "http"))
from blocks import block, manual  # noqa: E402
import server  # noqa: E402  (test/http/server.py: nothing runs on import)

readme = manual(os.path.join(repo, "README.md"))
failures = 0


def check(name, problems):
    global failures
    if problems:
        failures += 1
        print("FAIL %s: %s" % (name, "; ".join(problems)))
    else:
        print("ok   %s" % name)


# every status of the reference's table "| status | meaning |"
ref = readme[readme.index("| status | meaning |"):]
ref = ref[:ref.index("\n\n")]
statuses = set(re.findall(r"^\| `([a-z_]+)` \|", ref, re.M))

# the README's answers: status -> HTTP code
said = {}
for row in block(readme, "http-status").split("\n")[2:]:
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    if len(cells) < 2:
        continue
    code = int(re.search(r"\b(\d{3})\b", cells[1]).group(1))
    names = [n for n in re.findall(r"`([a-z_]+)`", cells[0]) if n in statuses]
    names += re.findall(r'"error": "([a-z_]+)"', cells[1])
    for n in names:
        if n in said and said[n] != code:
            check("the README gives %s one answer" % n, ["%d and %d" % (said[n], code)])
        said[n] = code
check("the README answers every verification status (%d)" % len(statuses),
      ["%s has no answer" % s for s in sorted(statuses - set(said))])

refused = {s for s in statuses if s != "valid"}
forbidden = {s for s in refused if said.get(s) == 403}
check("server.py answers 403 exactly for the README's 403 statuses (%s)" % ", ".join(sorted(forbidden)),
      [] if forbidden == set(server.FORBIDDEN) else ["server.py: %s" % sorted(server.FORBIDDEN)])
# statuses with a SQLSTATE of their own: the README names it in the row, and
# server.py answers the README's code for it
own = {status: (sqlstate, code) for sqlstate, (status, code) in server.OWN_SQLSTATES.items()}
rows = block(readme, "http-status")
check("server.py answers the README's code for each status with a SQLSTATE of its own (%s)"
      % ", ".join("%s %s" % (s, c) for s, (_, c) in sorted(own.items())),
      ["%s: README %s, server.py %d" % (s, said.get(s), c) for s, (_, c) in sorted(own.items()) if said.get(s) != c]
      + ["the README's row for %s does not name SQLSTATE %s" % (s, q) for s, (q, _) in sorted(own.items())
         if not re.search(r"`%s`[^\n]*`%s`" % (s, q), rows)])
check("server.py answers 401 for the README's 401 statuses (all other refusals)",
      ["%s: README %s" % (s, said.get(s)) for s in sorted(refused - set(server.FORBIDDEN) - set(own))
       if said.get(s) != 401])

# what 26-http.sh expects of the key checks: check "name" 401|403 '"error": "status"'
suite = open(os.path.join(repo, "test", "suites", "26-http.sh"), encoding="utf-8").read()
expected = re.findall(r"""^check\s+"[^"]*"\s+(\d{3})\s+'"error": "([a-z_]+)"'""", suite, re.M)
tested = {}
for code, status in expected:
    # 404 {"error": "not_found"} is server.py's unknown path, not the key status
    if status in said and code in ("401", "403", "402", "429"):
        tested.setdefault(status, set()).add(int(code))
check("26-http.sh expects the README's answer for each status it tests (%s)" % ", ".join(sorted(tested)),
      ["%s: 26-http %s, README %d" % (s, sorted(c), said[s]) for s, c in sorted(tested.items()) if c != {said[s]}])
untested = sorted(s for s in said if s not in tested and s != "valid")
print("     (answers 26-http.sh does not exercise: %s)" % (", ".join(untested) or "none"))

# the README's own code
m = re.search(r'403 if status in \(([^)]*)\) else 401', readme)
example = set(re.findall(r'"([a-z_]+)"', m.group(1))) if m else None
check("the README's Python example answers 403 for the same statuses",
      [] if example == forbidden else ["it has %s" % example])
m = re.search(r"WHEN status IN \(([^)]*)\)\s+THEN json_build_object\('status', 403", block(readme, "postgrest"))
pgrst = set(re.findall(r"'([a-z_]+)'", m.group(1))) if m else None
check("the README's PostgREST function answers 403 for the same statuses",
      [] if pgrst == forbidden else ["it has %s" % pgrst])
# and each SQLSTATE of its own with its status and the README's code
handlers = re.split(r"\n\s*WHEN ", block(readme, "postgrest"))
problems = []
for status, (sqlstate, code) in sorted(own.items()):
    h = [x for x in handlers if x.startswith("SQLSTATE '%s'" % sqlstate)]
    if not h or "'code', '%s'" % status not in h[0] or "'status', %d" % code not in h[0]:
        problems.append("no handler of SQLSTATE %s answering %d %s" % (sqlstate, code, status))
if not re.search(r"SQLSTATE 'KA429'[\s\S]*'Retry-After'", block(readme, "postgrest")):
    problems.append("no Retry-After with 429")
check("the README's PostgREST function answers each SQLSTATE of its own (%s)" % ", ".join(sorted(server.OWN_SQLSTATES)),
      problems)
m = re.findall(r'e\.sqlstate == "(K[A-Z0-9]{4})":[^\n]*\n[^\n]*\n?\s*return (\d{3})', readme)
py = {q: int(c) for q, c in m}
check("the README's Python example answers each SQLSTATE of its own with the README's code",
      ["%s: %s" % (q, py.get(q)) for q, (_, c) in sorted(server.OWN_SQLSTATES.items()) if py.get(q) != c])
sys.exit(1 if failures else 0)
