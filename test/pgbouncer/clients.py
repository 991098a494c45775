#!/usr/bin/python3
"""Many clients over few server connections: pgbouncer in transaction
pooling mode in front of a cluster with the example RLS schema.

Each client thread runs a fixed number of transactions, alternating tenants:
authenticated ones (BEGIN; authenticate(key of X); read current_tenant() and
the RLS-protected rows; COMMIT), unauthenticated ones (must see no identity
and no rows), ones that authenticate and roll back, and ones whose
authenticate fails.  Two more clients use autocommit: an authenticate in one
statement must be gone by the next.  Every transaction's observations are
checked; no client may ever see another tenant's identity or rows.

The suite is five checks: every client connected and ran its whole plan
(a failed connection or any exception loses the client); exactly the
planned transactions were checked, kind by kind; none saw another tenant
or an identity it did not authenticate; all clients shared at most
pool-size server connections; the server saw no more application sessions.

Key texts stay in this process's memory and are never printed.
The last line is "N passed, M failed".
"""
import argparse
import random
import sys
import threading
import time

import psycopg2

TENANTS = ["pgb-t1", "pgb-t2", "pgb-t3", "pgb-t4"]


def setup(direct_dsn):
    """Tenants, keys and rows, made by the superuser.  Returns
    {slug: (tenant_id, key, order_count)} and a revoked key."""
    conn = psycopg2.connect(direct_dsn)
    conn.autocommit = True
    cur = conn.cursor()
    tenants = {}
    for n, slug in enumerate(TENANTS, start=1):
        cur.execute("SELECT apikey.create_tenant(%s)", (slug,))
        tenant_id = cur.fetchone()[0]
        cur.execute("SELECT api_key FROM apikey.create_key(%s, 'production', 'pooled client',"
                    " scopes => '{orders:read,collections:read}')", (slug,))
        key = cur.fetchone()[0]
        cur.execute("INSERT INTO app.collections (collection_id, tenant_id, name) VALUES (%s, %s, %s)",
                    (n, tenant_id, slug))
        count = n + 1           # a different number of orders per tenant
        for i in range(count):
            cur.execute("INSERT INTO app.orders (tenant_id, collection_id, item, amount)"
                        " VALUES (%s, %s, %s, %s)", (tenant_id, n, "%s order %d" % (slug, i), i + 1))
        tenants[slug] = (tenant_id, key, count)
    cur.execute("SELECT key_id, api_key FROM apikey.create_key(%s, 'production', 'revoked',"
                " scopes => '{orders:read}')", (TENANTS[0],))
    key_id, revoked = cur.fetchone()
    cur.execute("SELECT apikey.revoke_key(%s, 'test')", (key_id,))
    conn.close()
    return tenants, revoked


READ = """SELECT apikey.current_tenant(), apikey.current_tenant_id(), apikey.current_key_id()::text,
                 pg_backend_pid(),
                 (SELECT count(*) FROM app.orders),
                 (SELECT coalesce(array_agg(DISTINCT tenant_id), '{}') FROM app.orders),
                 (SELECT coalesce(array_agg(item), '{}') FROM app.orders),
                 (SELECT count(*) FROM app.collections),
                 (SELECT tenant FROM app.order_summary())"""


class Client:
    """One client's plan and what became of it."""

    def __init__(self, num, autocommit, transactions):
        self.num = num
        self.autocommit = autocommit
        self.planned = transactions
        self.done = 0                   # iterations completed
        self.lost = None                # why the client stopped early

    def expected(self):
        """The observations (checked transactions) its plan makes, by kind."""
        kinds = {}

        def add(k):
            kinds[k] = kinds.get(k, 0) + 1
        for j in range(self.planned):
            if self.autocommit:
                add("autocommit")
            elif j % 5 in (0, 1, 2):
                add("authenticated")
            elif j % 5 == 3:
                add("unauthenticated")
            elif j % 2 == 0:
                add("rolled back")
                add("after rollback")
            else:
                add("rejected")
                add("after rejection")
        return kinds


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.failed = 0
        self.failures = []
        self.pids = set()
        self.kinds = {}

    def record(self, kind, ok, why, pid=None):
        with self.lock:
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            if pid is not None:
                self.pids.add(pid)
            if not ok:
                self.failed += 1
                if len(self.failures) < 20:
                    self.failures.append("%s: %s" % (kind, why))


def check_tenant(row, slug, tenant_id, count):
    tenant, tid, key_id, pid, n, tenant_ids, items, ncoll, summary = row
    if tenant != slug or tid != tenant_id or key_id is None:
        return False, "identity %r/%r, expected %s" % (tenant, tid, slug)
    if n != count or list(tenant_ids) != [tenant_id]:
        return False, "%s saw %d orders of tenants %r" % (slug, n, tenant_ids)
    if any(not item.startswith(slug + " ") for item in items):
        return False, "%s saw rows of another tenant" % slug
    if ncoll != 1 or summary != slug:
        return False, "%s: %d collections, summary as %r" % (slug, ncoll, summary)
    return True, ""


def check_nobody(row):
    tenant, tid, key_id, pid, n, tenant_ids, items, ncoll, summary = row
    if tenant is not None or tid is not None or key_id is not None or summary is not None:
        return False, "identity %r leaked into an unauthenticated transaction" % tenant
    if n != 0 or ncoll != 0:
        return False, "%d orders, %d collections without authenticate" % (n, ncoll)
    return True, ""


def run_client(c, target, *args):
    """Run a client to the end of its plan; any exception, a failed
    connection included, loses the client (and fails the suite)."""
    try:
        target(c, *args)
    except Exception as e:          # noqa: BLE001: every way of dying counts
        code = getattr(e, "pgcode", None)
        c.lost = "%s%s after %d of %d transactions" % (
            type(e).__name__, " " + code if code else "", c.done, c.planned)


def client(c, dsn, tenants, revoked, results, deadline):
    rnd = random.Random(c.num)
    conn = psycopg2.connect(dsn, connect_timeout=10)
    cur = conn.cursor()
    for j in range(c.planned):
        if time.monotonic() > deadline:
            c.lost = "ran out of time after %d of %d transactions" % (c.done, c.planned)
            break
        slug = TENANTS[(c.num + j) % len(TENANTS)]
        tenant_id, key, count = tenants[slug]
        kind = j % 5
        if kind in (0, 1, 2):
            # BEGIN (implicit); authenticate; read; COMMIT
            cur.execute("SELECT (apikey.authenticate(%s, 'orders:read')).tenant", (key,))
            if rnd.random() < 0.5:
                cur.execute("SELECT pg_sleep(0.002)")
            cur.execute(READ)
            row = cur.fetchone()
            conn.commit()
            ok, why = check_tenant(row, slug, tenant_id, count)
            results.record("authenticated", ok, why, row[3])
        elif kind == 3:
            # a transaction that never authenticates
            cur.execute(READ)
            row = cur.fetchone()
            conn.commit()
            ok, why = check_nobody(row)
            results.record("unauthenticated", ok, why, row[3])
        elif j % 2 == 0:
            # authenticate, read, ROLLBACK; then a transaction without it
            cur.execute("SELECT apikey.authenticate(%s)", (key,))
            cur.execute(READ)
            row = cur.fetchone()
            conn.rollback()
            ok, why = check_tenant(row, slug, tenant_id, count)
            results.record("rolled back", ok, why, row[3])
            cur.execute(READ)
            row = cur.fetchone()
            conn.commit()
            ok, why = check_nobody(row)
            results.record("after rollback", ok, why, row[3])
        else:
            # a failed authenticate (revoked key): 28000, then nothing
            try:
                cur.execute("SELECT apikey.authenticate(%s)", (revoked,))
                ok, why = False, "a revoked key authenticated"
            except psycopg2.Error as e:
                ok = e.pgcode == "28000" and "revoked" in str(e) and revoked not in str(e)
                why = "unexpected error %s" % e.pgcode
            conn.rollback()
            results.record("rejected", ok, why)
            cur.execute(READ)
            row = cur.fetchone()
            conn.commit()
            ok, why = check_nobody(row)
            results.record("after rejection", ok, why, row[3])
        c.done += 1
        time.sleep(rnd.random() * 0.003)
    conn.close()


def autocommit_client(c, dsn, tenants, results, deadline):
    """authenticate in one autocommitted statement, read in the next: each
    is its own transaction, possibly on another server connection."""
    conn = psycopg2.connect(dsn, connect_timeout=10)
    conn.autocommit = True
    cur = conn.cursor()
    for j in range(c.planned):
        if time.monotonic() > deadline:
            c.lost = "ran out of time after %d of %d transactions" % (c.done, c.planned)
            break
        slug = TENANTS[(c.num + j) % len(TENANTS)]
        tenant_id, key, count = tenants[slug]
        cur.execute("SELECT (apikey.authenticate(%s)).tenant", (key,))
        first = cur.fetchone()[0]
        cur.execute(READ)
        row = cur.fetchone()
        ok, why = check_nobody(row)
        if ok and first != slug:
            ok, why = False, "authenticate answered %r for %s" % (first, slug)
        results.record("autocommit", ok, why, row[3])
        c.done += 1
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--direct", required=True, help="superuser DSN, straight to the server")
    ap.add_argument("--bouncer", required=True, help="application DSN through pgbouncer")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--transactions", type=int, default=100, help="per client")
    ap.add_argument("--pool-size", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=120)
    args = ap.parse_args()

    tenants, revoked = setup(args.direct)
    results = Results()
    deadline = time.monotonic() + args.seconds
    clients = [Client(n, False, args.transactions) for n in range(args.clients)]
    clients += [Client(args.clients + n, True, args.transactions // 2) for n in range(2)]
    threads = []
    for c in clients:
        if c.autocommit:
            work = (autocommit_client, args.bouncer, tenants, results, deadline)
        else:
            work = (client, args.bouncer, tenants, revoked, results, deadline)
        threads.append(threading.Thread(target=run_client, args=(c,) + work))
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic() + 10))
    elapsed = time.monotonic() - start
    for c, t in zip(clients, threads):
        if t.is_alive() and c.lost is None:
            c.lost = "still running after the deadline, %d of %d transactions" % (c.done, c.planned)

    checks = []

    def check(ok, what, details=()):
        checks.append(ok)
        print("%s %s" % ("ok:" if ok else "FAILED:", what))
        for d in details:
            print("    " + d)

    # 1. every client connected and ran its whole plan
    lost = [c for c in clients if c.lost is not None or c.done != c.planned]
    n_auto = sum(1 for c in clients if c.autocommit)
    check(not lost, "%d clients (%d transaction, %d autocommit), %d lost"
          % (len(clients), len(clients) - n_auto, n_auto, len(lost)),
          ["client %d: %s" % (c.num, c.lost or "%d of %d transactions" % (c.done, c.planned))
           for c in lost])

    # 2. exactly the transactions of the plans were checked, kind by kind
    expected = {}
    for c in clients:
        for k, n in c.expected().items():
            expected[k] = expected.get(k, 0) + n
    with results.lock:
        seen = dict(results.kinds)
    n_seen, n_expected = sum(seen.values()), sum(expected.values())
    check(seen == expected, "%d transactions checked, %d planned (%s)"
          % (n_seen, n_expected, ", ".join("%s %d" % kv for kv in sorted(seen.items()))),
          ["%s: %d checked, %d planned" % (k, seen.get(k, 0), expected.get(k, 0))
           for k in sorted(set(seen) | set(expected)) if seen.get(k, 0) != expected.get(k, 0)])

    # 3. no transaction saw another tenant's identity or rows, nor an
    # identity it did not authenticate
    check(results.failed == 0, "%d cross-tenant or leaked identities in %d transactions"
          % (results.failed, n_seen), results.failures)

    # 4. the pooling really happened: all clients shared at most pool-size
    # server connections, and the server saw no more application sessions
    check(0 < len(results.pids) <= args.pool_size,
          "%d server connections served all clients (pool size %d)" % (len(results.pids), args.pool_size))
    conn = psycopg2.connect(args.direct)
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_api'")
    sessions = cur.fetchone()[0]
    conn.close()
    check(0 < sessions <= args.pool_size,
          "%d app_api sessions on the server (pool size %d)" % (sessions, args.pool_size))

    print("%d clients, %d transactions in %.1f s, %d cross-tenant"
          % (len(clients), n_seen, elapsed, results.failed))
    n_ok = sum(1 for ok in checks if ok)
    print("%d passed, %d failed" % (n_ok, len(checks) - n_ok))
    return 0 if n_ok == len(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
