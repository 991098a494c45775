#!/usr/bin/env python3
"""Nothing leaks: run the failure paths of apikey against a server logging
at log_min_messages = debug1 and log_min_error_statement = error, then look
for key text and secret fragments in the server log.

    logleak.py CONNINFO SERVER_LOG

Phases, each fenced in the log by a RAISE LOG marker:
  params            the recommended way: key text only ever as a bind
                    parameter (extended protocol), every failure path   [test]
  params_wrong_arg  bind parameters, but key text passed by mistake where a
                    tenant, environment, scope, resource, slug, prefix or
                    label belongs                                      [test]
  params_log_all_maxlen0
                    log_statement = all with log_parameter_max_length = 0
                                                                       [test]
  literals_key_id   key text written into the SQL text of a failing
                    authenticate, or where a key id belongs (cast,
                    management functions): apikey keeps these
                    statements out of the log                          [test]
  control_hashes    the stored hash of every key, logged on purpose in
                    hex and base64                                  [control]
  literals          key text written into the SQL text (what psql, or
                    psycopg2's client-side interpolation, sends)       [shown]
  params_on_error_all
                    bind parameters, log_parameter_max_length_on_error
                    = -1 (bind values logged with errors)              [shown]
  params_log_all    log_statement = all, bind parameters               [shown]
  literals_log_all  log_statement = all, literals                      [shown]
A [test] phase fails when any key text, any 27-character secret, any
12-character piece of one, or the SHA-256 of a key text (the stored hash,
in hex or base64) appears in its part of the log; [shown] phases only
report what leaks, for the README.  Two positive controls prove that the
search finds what is there: literals_log_all must find every key text and
every secret (so an empty or wrong slice of the log cannot pass), and
control_hashes every stored hash in both encodings; each of these must also
be among the needles the [test] phases search for (so the needles are the
key texts, secrets and stored hashes).  Prints "N passed, M failed".
"""
import base64
import hashlib
import os
import random
import re
import sys
import zlib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pq  # noqa: E402

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def b62(value, width):
    out = ""
    for _ in range(width):
        out = B62[value % 62] + out
        value //= 62
    return out


def fabricate(prefix, tag, key_id, secret):
    """Key text with a valid checksum (the format of keytext.h)."""
    head = f"{prefix}_{tag}_{b62(key_id, 11)}{secret}"
    return head + b62(zlib.crc32(head.encode()) & 0xFFFFFFFF, 6)


def secret_of(key):
    body = key.split("_", 2)[2]
    return body[11:38] if len(body) >= 38 else None


def main():
    conninfo, logfile = sys.argv[1], sys.argv[2]
    rnd = random.Random(5)
    c = pq.Connection(conninfo)
    c.execute("SET client_min_messages = warning")

    # Fixture (no key text in any statement: keys come back as results).
    c.execute("SELECT apikey.create_tenant('acme')")
    c.execute("SELECT apikey.create_tenant('globex')")

    def create(tenant, env, name, scopes="{orders:read}", resource=None):
        return c.query("SELECT key_id, api_key FROM apikey.create_key($1, $2, $3, NULL, $4, NULL, $5)",
                       [tenant, env, name, scopes, resource])[0]

    keys = {}
    ids = {}
    for label, args in [
            ("active", ("acme", "production", "active", "{orders:read,apikey:admin}", "collection:42")),
            ("plain", ("acme", "production", "plain", "{orders:read}")),
            ("revoked", ("acme", "production", "revoked")),
            ("expired", ("acme", "production", "expired")),
            ("rolled", ("acme", "production", "rolled")),
            ("preview", ("acme", "preview", "preview")),
            ("other_tenant", ("globex", "production", "globex")),
            ("deleted", ("acme", "production", "deleted"))]:
        ids[label], keys[label] = create(*args)
    c.query("SELECT apikey.revoke_key($1)", [ids["revoked"]])
    c.query("SELECT apikey.set_key_expiry($1, now() - interval '1 hour')", [ids["expired"]])
    keys["rolled_new"] = c.query("SELECT apikey.roll_key($1)", [ids["rolled"]])[0][0]
    c.query("SELECT apikey.delete_key($1)", [ids["deleted"]])
    pk = c.query("SELECT apikey.public_key('acme', 'production')")[0][0]

    def rand_secret():
        return "".join(rnd.choice(B62) for _ in range(27))

    keys["not_found"] = fabricate("ak", "live", rnd.getrandbits(64), rand_secret())
    keys["wrong_secret"] = fabricate("ak", "live", int(0), rand_secret())
    # same id as a real key, another secret: not_found
    real_id = keys["active"].split("_", 2)[2][:11]
    keys["stolen_id"] = fabricate("ak", "live", sum(B62.index(ch) * 62 ** (10 - i) for i, ch in enumerate(real_id)), rand_secret())
    a = keys["active"]
    malformed = {
        "bad_checksum": a[:-1] + ("A" if a[-1] != "A" else "B"),
        "truncated": a[:-1],
        "extended": a + "x",
        "padded": " " + a + "\n",
        "upper": a.upper(),
        "swapped": a[:20] + a[21] + a[20] + a[22:],
    }
    for k, v in malformed.items():
        keys["malformed_" + k] = v

    # What must never appear: every key text, every secret, every 12-char
    # piece of a secret (a longer fragment contains one of those).
    needles = set()
    for k in list(keys.values()) + [pk]:
        needles.add(k.strip())
    for k in keys.values():
        s = secret_of(k.strip())
        if s and re.fullmatch(r"[0-9A-Za-z]{27}", s):
            needles.add(s)
            for i in range(len(s) - 11):
                needles.add(s[i:i + 12])
    # the public key is not a secret; only whole private key texts and secrets matter
    needles.discard(pk)
    # the stored hash: SHA-256 of the whole key text, as hex (bytea output)
    # and base64 (standard and URL-safe, with or without padding)
    hash_needles = {}
    for k in keys.values():
        d = hashlib.sha256(k.strip().encode()).digest()
        hash_needles[k.strip()] = {d.hex(), d.hex().upper(),
                                   base64.b64encode(d).decode().rstrip("="),
                                   base64.urlsafe_b64encode(d).decode().rstrip("=")}
    for hs in hash_needles.values():
        needles |= hs

    key_id_oid = int(c.query("SELECT 'apikey.key_id'::regtype::oid")[0][0])
    private = list(keys.values())

    def failure_paths(run):
        """Every failure path with key text in its proper argument."""
        for k in private:
            run("SELECT * FROM apikey.verify($1)", [k])
            run("SELECT * FROM apikey.verify($1, 'production', 'orders:write', 'collection:1')", [k])
            run("SELECT * FROM apikey.authenticate($1)", [k])
            run("SELECT * FROM apikey.authenticate($1, 'nope:scope')", [k])
            run("SELECT apikey.looks_like_key($1)", [k])
            run("SELECT * FROM apikey.identify($1)", [k])
            # key text pasted where a key id belongs
            run("SELECT apikey.revoke_key($1::apikey.key_id)", [k])
            run("SELECT apikey.rename_key($1, 'x')", [k], types=[key_id_oid])
            run("SELECT apikey.delete_key($1)", [k], types=[key_id_oid], formats=[1])
            s = secret_of(k.strip()) or k
            run("SELECT $1::apikey.key_id", [s])
            run("SELECT $1::apikey.key_id", [k.strip().split("_", 2)[-1][:38]])
        run("SELECT * FROM apikey.verify($1)", [pk])
        run("SELECT * FROM apikey.authenticate($1)", [pk])
        # authenticated, then management calls that fail
        for k, sql in [(keys["plain"], "SELECT apikey.create_key('acme', 'production', 'x')"),
                       (keys["active"], "SELECT apikey.create_key('globex', 'production', 'x')"),
                       (keys["active"], "SELECT apikey.create_key('acme', 'production', 'x', scopes => '{billing:*}')"),
                       (keys["active"], "SELECT apikey.revoke_key(key_id) FROM apikey.keys WHERE tenant = 'globex'"),
                       (keys["active"], "SELECT apikey.create_tenant('x')")]:
            run("BEGIN", [])
            run("SELECT * FROM apikey.authenticate($1)", [k])
            run(sql, [])
            run("ROLLBACK", [])
        # authenticated and failing in one statement: the error is not
        # authenticate's own, so the statement text is logged
        run("SELECT (apikey.authenticate($1)).valid, apikey.create_key('globex', 'production', 'x')",
            [keys["active"]])
        run("SELECT (apikey.authenticate($1)).valid, 1 / 0", [keys["active"]])
        # create_key errors of every kind
        for sql in ["SELECT apikey.create_key('acme', 'production', 'x', expires_in => '-1 day')",
                    "SELECT apikey.create_key('acme', 'production', 'x', scopes => '{BAD}')",
                    "SELECT apikey.create_key('acme', 'production', '')",
                    "SELECT apikey.create_key('nosuch', 'production', 'x')",
                    "SELECT apikey.roll_key(key_id) FROM apikey.keys WHERE revoked_at IS NOT NULL"]:
            run(sql, [])

    def key_id_and_authenticate(run):
        """Key text in the SQL text of a failing authenticate or where a key
        id belongs: apikey keeps these statements out of the log."""
        for k in private:
            run("SELECT * FROM apikey.authenticate($1, 'nope:scope')", [k])
            run("SELECT $1::apikey.key_id", [k])
            run("SELECT apikey.revoke_key($1)", [k])
            run("SELECT apikey.rename_key($1, 'x')", [k])
            run("SELECT apikey.delete_key($1)", [k])
            run("SELECT $1::apikey.key_id", [secret_of(k.strip()) or k])
            run("SELECT $1::apikey.key_id", [k.strip().split("_", 2)[-1][:38]])

    def log_stored_hashes(run):
        """Control: the stored hashes, logged on purpose."""
        run("DO $$BEGIN RAISE LOG 'stored hashes: %', (SELECT string_agg(encode(key_hash, 'hex')"
            " || ' ' || translate(encode(key_hash, 'base64'), E'\\n', ''), ' ') FROM apikey.keys); END$$", [])

    def wrong_arguments(run):
        """Key text passed by mistake in other arguments."""
        for k in [keys["active"], keys["not_found"]]:
            for sql in ["SELECT apikey.create_key($1, 'production', 'x')",
                        "SELECT apikey.create_key('acme', $1, 'x')",
                        "SELECT apikey.create_key('acme', 'production', 'x', NULL, ARRAY[$1])",
                        "SELECT apikey.create_key('acme', 'production', 'x', NULL, '{}', NULL, $1)",
                        "SELECT apikey.create_key('acme', 'production', $1 || E'\\n')",
                        "SELECT apikey.create_key('acme', 'production', repeat($1, 5))",
                        "SELECT apikey.create_key('acme', 'production', 'x', repeat($1, 20))",
                        "SELECT apikey.create_tenant($1)",
                        "SELECT apikey.create_environment('acme', $1, 'x')",
                        "SELECT apikey.create_environment('acme', 'x', $1)",
                        "SELECT apikey.set_key_policy('acme', NULL, NULL, $1)",
                        "SELECT apikey.public_key($1, 'production')",
                        "SELECT apikey.public_key('acme', $1)",
                        "SELECT apikey.revoke_key(key_id, repeat($1, 20)) FROM apikey.keys LIMIT 1",
                        "SELECT * FROM apikey.verify($1, $1, $1, $1)",
                        "SELECT apikey.has_scope($1), apikey.can_access($1, $1)"]:
                run(sql, [k])

    def by_params(sql, params, **kw):
        return c.try_query(sql, params, **kw)

    def by_literals(sql, params, **kw):
        text = sql
        for i in reversed(range(len(params))):
            text = text.replace(f"${i + 1}", "'" + params[i].replace("'", "''") + "'")
        return c.try_execute(text)

    phases = [
        ("params", True, [], failure_paths, by_params),
        ("params_wrong_arg", True, [], wrong_arguments, by_params),
        ("params_log_all_maxlen0", True,
         ["SET log_statement = 'all'", "SET log_parameter_max_length = 0"], failure_paths, by_params),
        ("literals_key_id", True, [], key_id_and_authenticate, by_literals),
        ("control_hashes", False, [], log_stored_hashes, by_params),
        ("literals", False, [], failure_paths, by_literals),
        ("params_on_error_all", False, ["SET log_parameter_max_length_on_error = -1"],
         failure_paths, by_params),
        ("params_log_all", False, ["SET log_statement = 'all'"], failure_paths, by_params),
        ("literals_log_all", False, ["SET log_statement = 'all'"], failure_paths, by_literals),
    ]
    calls = {}
    for name, _, settings, paths, how in phases:
        c.execute("RESET ALL")
        c.execute("SET client_min_messages = warning")
        c.execute(f"DO $$BEGIN RAISE LOG 'logleak phase begins: {name}'; END$$")
        for s in settings:
            c.execute(s)
        states = {}

        def run(sql, params, **kw):
            st, _ = how(sql, params, **kw)
            states[st] = states.get(st, 0) + 1
        paths(run)
        c.execute("RESET ALL")
        c.execute(f"DO $$BEGIN RAISE LOG 'logleak phase ends: {name}'; END$$")
        calls[name] = states
    c.close()

    with open(logfile, encoding="utf-8", errors="replace") as f:
        log = f.read()
    passed = failed = 0
    for name, is_test, settings, _, _ in phases:
        begin = log.index(f"logleak phase begins: {name}\n")
        end = log.index(f"logleak phase ends: {name}\n")
        part = log[begin:end]
        lines = [ln for ln in part.splitlines() if any(n in ln for n in needles)]
        kinds = {}
        for ln in lines:
            m = re.search(r"\b(LOG|ERROR|STATEMENT|DETAIL|CONTEXT|HINT|DEBUG\d?):\s+(\S+)", ln)
            kind = (m.group(1) + ": " + m.group(2)) if m else ln[:40]
            kinds[kind] = kinds.get(kind, 0) + 1
        ncalls = sum(calls[name].values())
        summary = ", ".join(f"{k} {v}" for k, v in sorted(calls[name].items()))
        print(f"phase {name}: {ncalls} calls ({summary}); "
              f"{len(part.splitlines())} log lines, {len(lines)} with key text or secret fragments")
        for k, v in sorted(kinds.items()):
            print(f"    leaking lines starting {k!r}: {v}")
        if is_test:
            if lines:
                failed += 1
                print(f"FAILED: {name}: key material in the server log, e.g.:")
                shown = set()
                for ln in lines:
                    short = re.sub(r"[0-9A-Za-z]{12,}", "<...>", ln)[:160]
                    if short not in shown:
                        shown.add(short)
                        print("    " + short)
                    if len(shown) >= 12:
                        break
            else:
                passed += 1
                print(f"ok: {name}: no key text, secret fragment or hash in the log")
        if name == "literals_log_all":
            # positive control: with log_statement = all every literal is
            # logged, so every key text and secret must be found
            texts = {k.strip() for k in private}
            secrets = {secret_of(t) for t in texts} - {None}
            missing = [n for n in texts | secrets if n not in part]
            # and the search of the [test] phases looks for exactly these
            unsearched = [n for n in texts | secrets if n not in needles]
            if missing or unsearched:
                failed += 1
                print(f"FAILED: control: of {len(texts)} key texts and {len(secrets)} secrets, "
                      f"{len(missing)} missing where log_statement = all logged them, "
                      f"{len(unsearched)} not among the needles the [test] phases search for")
            else:
                passed += 1
                print(f"ok: control: all {len(texts)} key texts and {len(secrets)} secrets found "
                      f"where log_statement = all logged them, and searched for by the [test] phases")
        elif name == "control_hashes":
            # positive control: the stored hashes, logged on purpose, are
            # found by the hash needles of the keys that exist
            existing = [keys[label] for label in ("active", "plain", "revoked", "expired",
                                                   "rolled_new", "preview", "other_tenant")]
            hexes = [hashlib.sha256(k.encode()).hexdigest() for k in existing]
            b64s = [base64.b64encode(hashlib.sha256(k.encode()).digest()).decode().rstrip("=")
                    for k in existing]
            missing = [h for h in hexes + b64s if h not in part]
            # and the search of the [test] phases looks for exactly these
            unsearched = [h for h in hexes + b64s if h not in needles]
            if missing or unsearched:
                failed += 1
                print(f"FAILED: control: of {len(hexes) + len(b64s)} stored hashes (hex and base64), "
                      f"{len(missing)} not found where they were logged, {len(unsearched)} not among "
                      f"the needles the [test] phases search for")
            else:
                passed += 1
                print(f"ok: control: the {len(existing)} stored hashes found in hex and base64 "
                      f"where they were logged, and searched for by the [test] phases")
    print(f"{len(needles)} needles (key texts, secrets, 12-character secret pieces, hashes in hex"
          f" and base64) searched for")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
