#!/usr/bin/python3
"""The README's Python example, run as it stands with psycopg 3.

Usage: check_python.py README DSN KEYS_JSON SERVER_LOG
DSN connects as web_app, whose role logs every statement
(log_statement = all) and no bind value (log_parameter_max_length = 0);
the example's list_orders answers 200 with the tenant's orders for a valid
key and 401 for a wrong one, and the server log, from where it stood when
this started, holds no piece of either key: the example binds the key on
the server.  Prints ok/FAIL lines.
"""
import json
import os
import re
import sys

readme, dsn, keys_file, log_file = sys.argv[1:5]
failures = 0


def check(what, problem):
    global failures
    if problem:
        failures += 1
        print("FAIL %s: %s" % (what, problem))
    else:
        print("ok   %s" % what)


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blocks import manual  # noqa: E402

text = manual(readme)  # the README and the doc/ pages
m = re.search(r"```python\n(import re\n\nimport psycopg\n.*?)```", text, re.S)
if not m:
    check("the README's Python example imports psycopg (3)", "no such block")
    sys.exit(1)
example = {}
exec(compile(m.group(1), "doc/setup.md", "exec"), example)

import psycopg  # noqa: E402  (after the example, which imports it itself)

keys = json.load(open(keys_file))
log_start = os.path.getsize(log_file)
with psycopg.connect(dsn) as conn:
    status, body, _ = example["list_orders"](conn, keys["acme"])
    check("the example answers 200 with the orders for a valid key",
          None if status == 200 and body.get("orders") else "%s %s" % (status, body))
    wrong = keys["acme"][:-4] + ("AAAA" if not keys["acme"].endswith("AAAA") else "BBBB")
    status, body, headers = example["list_orders"](conn, wrong)
    check("the example answers 401 for a wrong key",
          None if status == 401 and "WWW-Authenticate" in headers else "%s %s" % (status, body))
log = open(log_file, encoding="utf-8", errors="replace").read()[log_start:]
check("web_app's statements were logged (log_statement = all)",
      None if "apikey.authenticate($1, $2)" in log else "no statement of the example in the log")
pieces = [k[i:i + 12] for k in (keys["acme"], wrong) for i in range(8, len(k) - 11)]
check("no piece of either key in the server log: the example binds it on the server",
      ", ".join("a piece at %d" % i for i, p in enumerate(pieces) if p in log))
sys.exit(1 if failures else 0)
