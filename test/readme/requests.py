#!/usr/bin/python3
"""The README's per-request SQL (<!-- tested: request-read / request-write -->),
run statement by statement as the application does: each with the
extended protocol and its $n as bind values (test/hostile/pq.py), as
web_app, directly and through pgbouncer in transaction pooling.

Usage: requests.py --readme README --keys KEYS.json --super CONNINFO
                   --direct CONNINFO [--bouncer CONNINFO]
KEYS.json: {"acme": ..., "globex": ..., "acme_preview": ..., "acme_read_only": ...}
Prints one "ok"/"FAIL" line per check.
"""
import argparse
import json
import os
import re
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "hostile"))
from blocks import block, manual  # noqa: E402
import pq  # noqa: E402

failures = 0


def check(name, ok, why=""):
    global failures
    if ok:
        print("ok   %s" % name)
    else:
        failures += 1
        print("FAIL %s: %s" % (name, why))


def statements(sql):
    """The block's statements, comments removed."""
    sql = re.sub(r"--[^\n]*", "", sql)
    return [s.strip() for s in sql.split(";") if s.strip()]


def run(conn, stmts, key, data=()):
    """Run one request: its statements in order, each with its own bind
    values (the key for authenticate, the request's data for the others),
    as a driver sends them.  Returns ("00000", rows of the last statement
    other than BEGIN and COMMIT)
    or, when a statement fails, (sqlstate, message) after a ROLLBACK."""
    rows = None
    for s in stmts:
        params = [key] if "authenticate(" in s else list(data)
        n = max([int(m) for m in re.findall(r"\$(\d+)", s)] or [0])
        state, result = conn.try_query(s, params[:n])
        if state != "00000":
            conn.execute("ROLLBACK")
            return state, result
        if s.upper() not in ("BEGIN", "COMMIT"):
            rows = result
    return "00000", rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--readme", required=True)
    ap.add_argument("--keys", required=True)
    ap.add_argument("--super", required=True)
    ap.add_argument("--direct", required=True)
    ap.add_argument("--bouncer")
    args = ap.parse_args()
    readme = manual(args.readme)
    read = statements(block(readme, "request-read"))
    write = statements(block(readme, "request-write"))
    keys = json.load(open(args.keys))
    check("the request blocks authenticate, then query (%d and %d statements)" % (len(read), len(write)),
          any("apikey.authenticate($1" in s for s in read) and any("apikey.authenticate($1" in s for s in write),
          "no apikey.authenticate($1, ...) in them")

    written = {"acme": [], "globex": []}
    routes = [("direct", args.direct)] + ([("through pgbouncer", args.bouncer)] if args.bouncer else [])
    for route, conninfo in routes:
        conn = pq.Connection(conninfo)
        # the writes: each tenant's key stores its orders
        ok, why = True, ""
        for tenant, item in (("acme", "acme widget"), ("globex", "globex gadget"), ("acme", "acme gizmo")):
            item = "%s (%s)" % (item, route)
            state, rows = run(conn, write, keys[tenant], [item])
            if state != "00000" or len(rows) != 1:
                ok, why = False, "%s: %s %s" % (tenant, state, rows)
            written[tenant].append(item)
        check("%s: the write request stores each tenant's orders" % route, ok, why)

        # the reads, alternating tenants: each sees its own orders only;
        # between them another client runs a request without a key
        other = pq.Connection(conninfo)
        pids = set()
        ok, why = True, ""
        for i in range(10):
            tenant = ("acme", "globex")[i % 2]
            state, rows = run(conn, read, keys[tenant])
            items = sorted(r[1] for r in rows) if state == "00000" else None
            if items != sorted(written[tenant]):
                ok, why = False, "%s saw %s, not %s" % (tenant, items or rows, sorted(written[tenant]))
                break
            pids.add(conn.query("SELECT pg_backend_pid()")[0][0])
            state, rows = run(other, ["BEGIN", "SELECT apikey.current_tenant(), count(*), pg_backend_pid()"
                                               " FROM app.orders", "COMMIT"], None)
            if state != "00000" or rows[0][:2] != (None, "0"):
                ok, why = False, "after %s's request, a request without a key saw %s" % (tenant, rows)
                break
            pids.add(rows[0][2])
        other.close()
        check("%s: 10 reads, alternating tenants, each followed by another client's request "
              "without a key: each key sees its own tenant's orders only, the keyless request none"
              % route, ok, why)
        if route != "direct":
            check("%s: both clients were served by one server connection (transaction pooling)" % route,
                  len(pids) == 1, "server backends %s" % sorted(pids))

        state, msg = run(conn, read, keys["acme_preview"])
        check("%s: a preview key is refused (28000 wrong_environment: the role serves production)" % route,
              state == "28000" and "wrong_environment" in msg, "%s %s" % (state, msg))
        state, msg = run(conn, write, keys["acme_read_only"], ["should not be stored"])
        check("%s: a key without orders:write cannot write (28000 insufficient_scope)" % route,
              state == "28000" and "insufficient_scope" in msg, "%s %s" % (state, msg))
        state, msg = run(conn, read, "ak_live_not_a_key")
        check("%s: garbage is refused (28000 malformed)" % route,
              state == "28000" and "malformed" in msg, "%s %s" % (state, msg))
        conn.close()

    # what the writes stored, seen past row-level security
    su = pq.Connection(args.super)
    rows = su.query("SELECT k.tenant, o.environment, o.item, o.tenant_id = k.tenant_id"
                    "  FROM app.orders AS o LEFT JOIN apikey.key_list AS k ON k.key_id = o.created_by_key")
    want = sorted((t, "production", item, "t") for t in written for item in written[t])
    check("the stored orders carry their key's tenant, environment and key id (%d orders)" % len(want),
          sorted(rows) == want, "%s" % rows)
    su.close()
    sys.exit(1 if failures else 0)


try:
    main()
except pq.Error as e:
    print("FAIL the requests stopped: %s" % e)
    sys.exit(1)
