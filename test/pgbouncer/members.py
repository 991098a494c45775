#!/usr/bin/python3
"""act_for behind pgbouncer in transaction pooling: a delegation ends with
its transaction, so the next client of the same server connection never
inherits it.

The dashboard role (grant_delegate) acts for a member of one tenant in some
transactions and for no one in others.  Checked: a client's transaction
run on the server connection another client's act_for used just before
(same backend pid) sees no key and may manage none, after a commit, a
rollback and a failed transaction; and many clients over the pool, each
transaction acting for a random tenant or for no one, never see a key of
a tenant they did not act for, nor any key without act_for.
The last line is "N passed, M failed".
"""
import argparse
import random
import sys
import threading

import psycopg2

TENANTS = ["pgb-m1", "pgb-m2", "pgb-m3"]


def setup(direct_dsn):
    conn = psycopg2.connect(direct_dsn)
    conn.autocommit = True
    cur = conn.cursor()
    for slug in TENANTS:
        cur.execute("SELECT apikey.create_tenant(%s)", (slug,))
        cur.execute("SELECT apikey.create_key(%s, 'production', 'member key')", (slug,))
    conn.close()


def seen(cur):
    """(pid, tenants listed, whether create_key is refused) of this transaction."""
    cur.execute("SELECT pg_backend_pid(), coalesce(array_agg(DISTINCT tenant ORDER BY tenant), '{}')"
                " FROM apikey.key_list")
    pid, tenants = cur.fetchone()
    cur.execute("SAVEPOINT s")
    try:
        cur.execute("SELECT apikey.create_key(%s, 'production', 'leak')", (TENANTS[0],))
        refused = False
    except psycopg2.Error as e:
        refused = e.pgcode == "42501"
    cur.execute("ROLLBACK TO SAVEPOINT s")
    return pid, tenants, refused


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--direct", required=True)
    ap.add_argument("--bouncer", required=True, help="the dashboard role's DSN through pgbouncer")
    ap.add_argument("--pool-size", type=int, default=2)
    args = ap.parse_args()
    setup(args.direct)
    checks = []

    def check(ok, what):
        checks.append(ok)
        print("%s %s" % ("ok  " if ok else "FAIL", what))

    # handover: client a acts for someone, client b's next transaction on
    # the same backend has nothing
    for ending in ("commit", "rollback", "error"):
        handovers, leaks = 0, []
        for _ in range(20):
            a = psycopg2.connect(args.bouncer)
            b = psycopg2.connect(args.bouncer)
            ca, cb = a.cursor(), b.cursor()
            ca.execute("SELECT pg_backend_pid()")
            pid_a = ca.fetchone()[0]
            ca.execute("SELECT apikey.act_for(%s, 'ann')", (TENANTS[0],))
            if ending == "commit":
                a.commit()
            elif ending == "rollback":
                a.rollback()
            else:
                try:
                    ca.execute("SELECT 1/0")
                except psycopg2.Error:
                    pass
                a.rollback()
            pid_b, tenants, refused = seen(cb)
            b.commit()
            if pid_b == pid_a:
                handovers += 1
                if tenants or not refused:
                    leaks.append((tenants, refused))
            a.close()
            b.close()
            if handovers >= 5:
                break
        check(handovers > 0 and not leaks,
              "after act_for and a %s, the next client on the same server connection sees nothing, "
              "manages nothing (%d handovers%s)" % (ending, handovers, ", leaks %r" % leaks if leaks else ""))

    # many clients over the pool
    bad = []
    pids = set()
    counts = {"member": 0, "nobody": 0}
    lock = threading.Lock()

    def client(n):
        rnd = random.Random(n)
        conn = psycopg2.connect(args.bouncer)
        cur = conn.cursor()
        for _ in range(60):
            slug = rnd.choice(TENANTS + [None])
            if slug:
                cur.execute("SELECT apikey.act_for(%s, %s)", (slug, "member %d" % n))
            pid, tenants, refused = seen(cur)
            if rnd.random() < 0.5:
                conn.commit()
            else:
                conn.rollback()
            with lock:
                pids.add(pid)
                counts["member" if slug else "nobody"] += 1
                if slug and tenants != [slug]:
                    bad.append(("acting for %s saw %r" % (slug, tenants)))
                if not slug and (tenants or not refused):
                    bad.append(("acting for no one saw %r, refused %r" % (tenants, refused)))
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not bad and counts["member"] > 0 and counts["nobody"] > 0,
          "%d transactions acting for a member, %d for no one, over the pool: each saw its own tenant only, "
          "or nothing%s" % (counts["member"], counts["nobody"], ": %r" % bad[:3] if bad else ""))
    check(len(pids) <= args.pool_size,
          "the clients shared %d server connections (pool of %d)" % (len(pids), args.pool_size))
    n_ok = sum(checks)
    print("%d passed, %d failed" % (n_ok, len(checks) - n_ok))
    sys.exit(0 if n_ok == len(checks) else 1)


if __name__ == "__main__":
    try:
        main()
    except psycopg2.Error as e:
        # e.g. act_for refused because a delegation outlived its transaction
        print("FAIL %s: %s" % (e.pgcode, str(e).splitlines()[0]))
        print("0 passed, 1 failed")
        sys.exit(1)
