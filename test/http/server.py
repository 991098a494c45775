#!/usr/bin/python3
"""A small HTTP API in front of the example RLS schema (test/rls_example.sql):
the way to use apikey from an application.

Each request reads the X-API-Key header and runs in one transaction that
starts with apikey.authenticate(key, scope); the row-level security policies
then show and accept the rows of that key's tenant only.  The key is passed
as a query parameter, never formatted into SQL, and never logged.

  GET  /orders                      orders:read   the tenant's orders
  GET  /collections/<id>/orders     orders:read   one collection's orders
                                                  (403 wrong_resource for a
                                                  key restricted elsewhere)
  POST /orders {"collection_id", "item", "amount"}
                                    orders:write  201 and the new order

  POST /github/secret-scanning      (with --leak-dsn and --github-keys)
      GitHub's secret-scanning partner format: a JSON array of {"token",
      "type", "url", "source"}, signed by GitHub (ECDSA P-256 with SHA-256
      over the raw body, base64 in Github-Public-Key-Signature, the key
      named by Github-Public-Key-Identifier).  Each token is reported with
      apikey.report_leak, as a role granted only that; the answer is a JSON
      array of {"token_raw", "token_type", "label"}, label true_positive for
      a real key (now revoked) and false_positive otherwise.  A missing,
      unknown or wrong signature: 401, nothing reported.

Errors: no key, or a key that is malformed, unknown, revoked, expired or of
another environment: 401.  A valid key without the scope, or restricted to
another resource: 403.  A key over its rate limit: 429 with Retry-After; a
key out of credits: 402.  The connection sets apikey.environment, so keys of
other environments are wrong_environment.  All --pool-size connections busy
for --pool-wait seconds, or the database unreachable: 503 with Retry-After
(a request is answered, never dropped).

Usage: server.py --dsn DSN [--port 0] [--environment production]
                 [--pool-size 8] [--pool-wait 5] [--pid-file FILE]
                 [--leak-dsn DSN --github-keys FILE]
--github-keys is a file in the format of GitHub's
https://api.github.com/meta/public_keys/secret_scanning (the keys GitHub
signs with); --leak-dsn connects as a role granted apikey.grant_leak_reporter.
Prints "listening on <port>" once ready.
"""
import argparse
import base64
import binascii
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import psycopg2.extras
import psycopg2.pool

FORBIDDEN = {"insufficient_scope", "wrong_resource"}
# the statuses authenticate raises with SQLSTATEs of their own (not 28000)
OWN_SQLSTATES = {"KA429": ("rate_limited", 429), "KA402": ("usage_exceeded", 402)}
LEAKED = {"revoked", "already_revoked"}     # report_leak's answers for a real key
MAX_REPORT = 1 << 20                        # bytes of a secret-scanning request


def load_github_keys(path):
    """GitHub's signing keys by identifier, from a file in the format of
    https://api.github.com/meta/public_keys/secret_scanning."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    with open(path) as f:
        keys = json.load(f)["public_keys"]
    return {k["key_identifier"]: load_pem_public_key(k["key"].encode()) for k in keys}


def signature_valid(keys, key_id, signature, body):
    """Is signature (base64 of a DER ECDSA signature) the one of the key
    named key_id over the raw body?"""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    key = keys.get(key_id or "")
    if key is None or not signature:
        return False
    try:
        key.verify(base64.b64decode(signature, validate=True), body, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, binascii.Error, ValueError):
        return False


class Rejected(Exception):
    def __init__(self, http_status, status, retry_after=None):
        super().__init__(status)
        self.http_status = http_status
        self.status = status
        self.retry_after = retry_after


def authenticate(cur, conn, api_key, scope):
    """Make the key the identity of this transaction, or raise Rejected.

    The hot path is one statement.  A key over its rate limit or out of
    credits has a SQLSTATE of its own (KA429, whose detail says when to retry,
    and KA402).  Only when authenticate refuses the key with SQLSTATE 28000
    do we ask apikey.verify, in a fresh transaction, for the status, to
    choose between 401 and 403 without parsing an error message.
    """
    try:
        cur.execute("SELECT apikey.authenticate(%s, %s)", (api_key, scope))
    except psycopg2.Error as e:
        conn.rollback()
        if e.pgcode in OWN_SQLSTATES:
            status, http_status = OWN_SQLSTATES[e.pgcode]
            m = re.search(r"retry after ([0-9]+) seconds", e.diag.message_detail or "")
            raise Rejected(http_status, status, m.group(1) if m else None)
        if e.pgcode != "28000":
            raise
        cur.execute("SELECT status FROM apikey.verify(%s, scope => %s)", (api_key, scope))
        status = cur.fetchone()["status"]
        conn.rollback()
        raise Rejected(403 if status in FORBIDDEN else 401, status)


class Handler(BaseHTTPRequestHandler):
    server_version = "apikey-example/1"
    pool = None
    slots = None            # one per pooled connection
    pool_wait = 5.0         # seconds a request waits for a free connection
    leak_pool = None        # connections of the leak reporter's role
    github_keys = {}

    def log_message(self, fmt, *args):
        # method, path and status only: never headers (the key is one)
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def reply(self, code, body, retry_after=None):
        data = json.dumps(body, default=str).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code == 401:
            self.send_header("WWW-Authenticate", 'ApiKey header="X-API-Key"')
        if code == 503:
            self.send_header("Retry-After", "1")
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(data)

    def handle_request(self, scope, work):
        api_key = self.headers.get("X-API-Key")
        if not api_key:
            return self.reply(401, {"error": "missing_api_key"})
        # wait a little for a free connection, then say so: never drop the request
        if not self.slots.acquire(timeout=self.pool_wait):
            return self.reply(503, {"error": "busy"})
        conn = None
        try:
            try:
                conn = self.pool.getconn()
            except psycopg2.Error:          # pool exhausted, or no database
                return self.reply(503, {"error": "unavailable"})
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                authenticate(cur, conn, api_key, scope)
                code, body = work(cur)
                conn.commit()
            self.reply(code, body)
        except Rejected as r:
            self.reply(r.http_status, {"error": r.status}, r.retry_after)
        except psycopg2.Error as e:
            conn.rollback()
            if e.pgcode == "42501":         # a row-level security policy said no
                self.reply(403, {"error": "forbidden"})
            elif e.pgcode and e.pgcode[:2] in ("22", "23"):
                self.reply(400, {"error": "invalid_data"})
            else:
                self.reply(500, {"error": "internal"})
        except Exception:
            if conn is not None:
                conn.rollback()
            self.reply(500, {"error": "internal"})
        finally:
            if conn is not None:
                conn.rollback()             # nothing survives the request
                self.pool.putconn(conn)
            self.slots.release()

    def do_GET(self):
        if self.path == "/orders":
            def work(cur):
                cur.execute("SELECT apikey.current_tenant() AS tenant")
                tenant = cur.fetchone()["tenant"]
                cur.execute("SELECT order_id, collection_id, item, amount FROM app.orders ORDER BY order_id")
                return 200, {"tenant": tenant, "orders": cur.fetchall()}
            return self.handle_request("orders:read", work)
        m = re.fullmatch(r"/collections/([0-9]{1,18})/orders", self.path)
        if m:
            collection_id = int(m.group(1))

            def work(cur):
                cur.execute("SELECT apikey.can_access(%s, 'orders:read') AS ok",
                            ("collection:%d" % collection_id,))
                if not cur.fetchone()["ok"]:
                    raise Rejected(403, "wrong_resource")
                cur.execute("SELECT order_id, item, amount FROM app.orders"
                            " WHERE collection_id = %s ORDER BY order_id", (collection_id,))
                return 200, {"orders": cur.fetchall()}
            return self.handle_request("orders:read", work)
        self.reply(404, {"error": "not_found"})

    def report_leaks(self):
        """GitHub's secret-scanning partner endpoint: each token to report_leak."""
        if self.leak_pool is None:
            return self.reply(404, {"error": "not_found"})
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return self.reply(400, {"error": "invalid_json"})
        if length > MAX_REPORT:
            return self.reply(413, {"error": "too_large"})
        body = self.rfile.read(length)
        # the signature first: nothing unsigned reaches the database
        if not signature_valid(self.github_keys, self.headers.get("Github-Public-Key-Identifier"),
                               self.headers.get("Github-Public-Key-Signature"), body):
            return self.reply(401, {"error": "bad_signature"})
        try:
            matches = json.loads(body)
            if not isinstance(matches, list) or not all(
                    isinstance(m, dict) and isinstance(m.get("token"), str) for m in matches):
                raise ValueError
        except ValueError:
            return self.reply(400, {"error": "invalid_json"})
        conn = self.leak_pool.getconn()
        try:
            answer = []
            with conn.cursor() as cur:
                for m in matches:
                    where = " ".join(str(m.get(k) or "") for k in ("source", "url")).strip()
                    source = "".join(c for c in "github " + where if " " <= c != "\x7f")[:500]
                    cur.execute("SELECT apikey.report_leak(%s, %s)", (m["token"], source))
                    status = cur.fetchone()[0]
                    answer.append({"token_raw": m["token"], "token_type": m.get("type"),
                                   "label": "true_positive" if status in LEAKED else "false_positive"})
            conn.commit()
        except psycopg2.Error:
            conn.rollback()
            return self.reply(500, {"error": "internal"})
        finally:
            self.leak_pool.putconn(conn)
        self.reply(200, answer)

    def do_POST(self):
        if self.path == "/github/secret-scanning":
            return self.report_leaks()
        if self.path != "/orders":
            return self.reply(404, {"error": "not_found"})
        try:
            length = int(self.headers.get("Content-Length") or 0)
            order = json.loads(self.rfile.read(min(length, 65536)) or b"null")
            values = (int(order["collection_id"]), str(order["item"]), str(order["amount"]))
        except (ValueError, KeyError, TypeError):
            return self.reply(400, {"error": "invalid_json"})

        def work(cur):
            # tenant_id and created_by_key come from the identity (defaults)
            cur.execute("INSERT INTO app.orders (collection_id, item, amount) VALUES (%s, %s, %s)"
                        " RETURNING order_id, collection_id, item, amount, created_by_key::text", values)
            return 201, cur.fetchone()
        self.handle_request("orders:write", work)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--environment", default="production")
    ap.add_argument("--pool-size", type=int, default=8)
    ap.add_argument("--pool-wait", type=float, default=5.0)
    ap.add_argument("--pid-file")
    ap.add_argument("--leak-dsn")
    ap.add_argument("--github-keys")
    args = ap.parse_args()
    if (args.leak_dsn is None) != (args.github_keys is None):
        ap.error("--leak-dsn and --github-keys go together")
    if args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write("%d\n" % os.getpid())
    # the environment this deployment serves, for every verification
    Handler.pool = psycopg2.pool.ThreadedConnectionPool(
        1, args.pool_size, args.dsn, options="-c apikey.environment=%s" % args.environment)
    Handler.slots = threading.BoundedSemaphore(args.pool_size)
    Handler.pool_wait = args.pool_wait
    if args.leak_dsn:
        Handler.github_keys = load_github_keys(args.github_keys)
        Handler.leak_pool = psycopg2.pool.ThreadedConnectionPool(1, 2, args.leak_dsn)
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("listening on %d" % httpd.server_address[1], flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        Handler.pool.closeall()
        if Handler.leak_pool is not None:
            Handler.leak_pool.closeall()


if __name__ == "__main__":
    main()
