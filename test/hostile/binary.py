#!/usr/bin/env python3
"""Hostile input over the extended protocol, which SQL text cannot reach:
key_id bind parameters in binary format of every wrong length (key_id_recv),
text parameters of invalid UTF-8 and with NUL bytes, for the functions that
take key text or a key id.   binary.py CONNINFO
Prints one line per call class and "calls: N, by SQLSTATE: ...", exits 1 on
XX000 or a lost connection."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pq  # noqa: E402

c = pq.Connection(sys.argv[1])
c.execute("SET client_min_messages = warning")
key_id_oid = int(c.query("SELECT 'apikey.key_id'::regtype::oid")[0][0])
text_oid = 25
states = {}
bad = []


def call(sql, value, typ, fmt):
    st, detail = c.try_query(sql, [value], types=[typ], formats=[fmt])
    states[st] = states.get(st, 0) + 1
    if st.startswith("XX") or st.startswith("08") or st == "?????":
        bad.append((sql, value[:40] if value else value, st, detail))


binary_values = [b"", b"\x00", b"\x00" * 7, b"\x01" * 8, b"\xff" * 8, b"\x00" * 9,
                 b"\xff" * 16, b"ak_live_" + b"A" * 44, b"\x00" * 1048576]
text_values = [b"\xff\xfe", b"ak_live_\xc3\x28", b"\xed\xa0\x80", b"ak_live_" + b"\x80" * 44,
               b"\xf4\x90\x80\x80", b"a" * 11, b"A" * 11, b"\x7f" * 11]
for sql in ["SELECT $1::text", "SELECT apikey.rename_key($1, 'x')",
            "SELECT apikey.revoke_key($1)", "SELECT apikey.delete_key($1)",
            "SELECT apikey.set_key_expiry($1, 'infinity')",
            "SELECT count(*) FROM apikey.keys WHERE key_id = $1"]:
    for v in binary_values:
        call(sql, v, key_id_oid, 1)
    for v in text_values:
        call(sql, v, key_id_oid, 0)
for sql in ["SELECT * FROM apikey.verify($1)", "SELECT * FROM apikey.authenticate($1)",
            "SELECT apikey.looks_like_key($1)", "SELECT * FROM apikey.identify($1)",
            "SELECT apikey.has_scope($1)", "SELECT apikey.can_access($1, $1)",
            "SELECT apikey.create_key('acme', 'production', $1)",
            "SELECT apikey.create_key('acme', 'production', 'x', NULL, ARRAY[$1])",
            "SELECT apikey.create_tenant($1)"]:
    for v in text_values + [b"\x00abc"]:
        call(sql, v, text_oid, 0)
    for v in [b"", b"\x00", b"\xff" * 3]:
        call(sql, v, text_oid, 1)
ok = c.query("SELECT 1") == [("1",)]
c.close()
n = sum(states.values())
print(f"binary/encoding calls: {n}, by SQLSTATE: " +
      ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
for b in bad:
    print("BAD:", b)
sys.exit(0 if ok and not bad else 1)
