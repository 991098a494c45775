#!/usr/bin/python3
"""The per-request SQL of doc/setup.md (<!-- tested: request-read /
request-write -->), as web_app, directly and through pgbouncer in
transaction pooling, run two ways:
 - as the page says an application runs it: statement by statement, with
   the extended protocol, each psql variable (:'key', :'item') sent as a
   bind value $n in its place (test/hostile/pq.py);
 - as the page says a reader runs it: the blocks as they stand, by psql
   (the server's own, 15 here) with the variables set (-v key=...).

Usage: requests.py --readme README --keys KEYS.json --super CONNINFO
                   --direct CONNINFO [--bouncer CONNINFO] --psql PSQL
KEYS.json: {"acme": ..., "globex": ..., "acme_preview": ..., "acme_read_only": ...}
Prints one "ok"/"FAIL" line per check.
"""
import argparse
import json
import os
import re
import subprocess
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


def bind(stmt):
    """The statement as an application sends it: each psql variable
    :'name' replaced by $1, $2, ... in order; and the names."""
    names = []

    def number(m):
        names.append(m.group(1))
        return "$%d" % len(names)
    return re.sub(r":'([a-z_]+)'", number, stmt), names


def run(conn, stmts, key, item=None):
    """Run one request as an application does: its statements in order,
    each with its variables as bind values.  Returns ("00000", rows of the
    last statement other than BEGIN and COMMIT)
    or, when a statement fails, (sqlstate, message) after a ROLLBACK."""
    rows = None
    values = {"key": key, "item": item}
    for s in stmts:
        sql, names = bind(s)
        state, result = conn.try_query(sql, [values[n] for n in names])
        if state != "00000":
            conn.execute("ROLLBACK")
            return state, result
        if s.upper() not in ("BEGIN", "COMMIT"):
            rows = result
    return "00000", rows


def run_psql(psql, conninfo, text, key, item=None):
    """The block as it stands, run by psql with the variables set, stopping
    at the first error: (exit status, output lines, errors)."""
    args = [psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-v", "key=" + key, "-d", conninfo]
    if item is not None:
        args[-2:-2] = ["-v", "item=" + item]
    p = subprocess.run(args, input=text, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout.split("\n"), p.stderr.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--readme", required=True)
    ap.add_argument("--keys", required=True)
    ap.add_argument("--super", required=True)
    ap.add_argument("--direct", required=True)
    ap.add_argument("--bouncer")
    ap.add_argument("--psql", required=True)
    args = ap.parse_args()
    readme = manual(args.readme)
    read_text, write_text = block(readme, "request-read"), block(readme, "request-write")
    read, write = statements(read_text), statements(write_text)
    keys = json.load(open(args.keys))
    check("the request blocks authenticate with :'key', then query (%d and %d statements)" % (len(read), len(write)),
          any("apikey.authenticate(:'key'" in s for s in read) and any("apikey.authenticate(:'key'" in s for s in write)
          and "$" not in read_text + write_text,
          "no apikey.authenticate(:'key', ...) in them, or a $n psql cannot run")

    written = {"acme": [], "globex": []}
    routes = [("direct", args.direct)] + ([("through pgbouncer", args.bouncer)] if args.bouncer else [])
    for route, conninfo in routes:
        conn = pq.Connection(conninfo)
        # the writes: each tenant's key stores its orders
        ok, why = True, ""
        for tenant, item in (("acme", "acme widget"), ("globex", "globex gadget"), ("acme", "acme gizmo")):
            item = "%s (%s)" % (item, route)
            state, rows = run(conn, write, keys[tenant], item)
            if state != "00000" or len(rows) != 1:
                ok, why = False, "%s: %s %s" % (tenant, state, rows)
            written[tenant].append(item)
        check("%s: the write request stores each tenant's orders" % route, ok, why)

        # the blocks as they stand, in psql: the write twice (a block that
        # can be run again), then the read, for each tenant
        ok, why = True, ""
        for tenant in ("acme", "globex"):
            for n in (1, 2):
                item = "%s psql order %d (%s)" % (tenant, n, route)
                rc, out, err = run_psql(args.psql, conninfo, write_text, keys[tenant], item)
                if rc != 0 or err or not any(re.fullmatch(r"[0-9]+", line) for line in out):
                    ok, why = False, "%s, run %d: exit %d %s %s" % (tenant, n, rc, out, err)
                written[tenant].append(item)
        check("%s: psql runs the write block as it stands, twice for each tenant, each run storing an order"
              % route, ok, why)
        ok, why = True, ""
        for tenant in ("acme", "globex", "acme"):
            rc, out, err = run_psql(args.psql, conninfo, read_text, keys[tenant])
            items = sorted(line.split("|", 1)[1] for line in out if re.match(r"[0-9]+\|", line))
            if rc != 0 or err or items != sorted(written[tenant]):
                ok, why = False, "%s: exit %d, saw %s, not %s %s" % (tenant, rc, items, sorted(written[tenant]), err)
        check("%s: psql runs the read block as it stands: each key sees its own tenant's orders only" % route,
              ok, why)
        rc, out, err = run_psql(args.psql, conninfo, read_text, keys["acme_read_only"])
        rc2, out2, err2 = run_psql(args.psql, conninfo, write_text, keys["acme_read_only"], "should not be stored")
        check("%s: psql stops the write block of a key without orders:write at authenticate, "
              "and the read block of the same key runs" % route,
              rc == 0 and not err and rc2 != 0 and "API key rejected: insufficient_scope" in err2
              and "INSERT" not in err2, "read: exit %d %s; write: exit %d %s" % (rc, err, rc2, err2))

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
