#!/usr/bin/env bash
# A real HTTP client path: test/http/server.py (Python http.server and
# psycopg2) in front of a throwaway cluster with the example RLS schema,
# driven with curl.  Status codes for good and bad keys, scopes, resources,
# and tenant isolation; key texts must not appear in the server's log.
# timeout: 120
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

PY=/usr/bin/python3	# the Debian python, which has python3-psycopg2
work=$(scratch_dir http)
pg_started=
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then
		# server_pid may be runuser's, which does not pass the signal on
		pkill -TERM -f "server.py --dsn host=$work " 2>/dev/null
		kill "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
	fi
	[ -n "$pg_started" ] && run_as_pg pg_ctl -D "$work/data" -m immediate stop >/dev/null 2>&1
	server_pid=
	pg_started=
}
trap cleanup EXIT
fail() { echo "$1"; cleanup; echo "0 passed, 1 failed"; exit 1; }

pgport=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run_as_pg initdb -D "$work/data" -A trust -U postgres >"$work/initdb.log" 2>&1 || fail "initdb failed"
run_as_pg pg_ctl -D "$work/data" -l "$work/postgres.log" -w \
	-o "-p $pgport -k $work -c listen_addresses=''" start >/dev/null ||
	fail "the server did not start: $(tail -5 "$work/postgres.log")"
pg_started=1
run_as_pg createdb -h "$work" -p "$pgport" -U postgres apikey || fail "createdb failed"
cp "$REPO/test/rls_example.sql" "$work/"
sql() { run_as_pg psql -X -q -At -v ON_ERROR_STOP=1 -h "$work" -p "$pgport" -U postgres -d apikey "$@"; }
sql -v example="$work/rls_example.sql" -f "$REPO/test/app_setup.sql" \
	-f "$REPO/test/http/setup.sql" >"$work/setup.log" 2>&1 ||
	fail "setup failed: $(cat "$work/setup.log")"

# keys (kept in variables, never printed)
newkey() { sql -c "SELECT api_key FROM apikey.create_key($1)"; }
acme_rw=$(newkey "'acme', 'production', 'rw', scopes => '{orders:read,orders:write}'")
acme_ro=$(newkey "'acme', 'production', 'ro', scopes => '{orders:read}'")
acme_c2=$(newkey "'acme', 'production', 'c2', scopes => '{orders:*}', resource => 'collection:2'")
globex_rw=$(newkey "'globex', 'production', 'rw', scopes => '{orders:*}'")
acme_preview=$(newkey "'acme', 'preview', 'preview', scopes => '{orders:*}'")
revoked=$(newkey "'acme', 'production', 'revoked', scopes => '{orders:*}'")
expired=$(newkey "'acme', 'production', 'expired', scopes => '{orders:*}'")
deleted=$(newkey "'acme', 'production', 'deleted', scopes => '{orders:*}'")
idof() { sql -c "SELECT key_id FROM apikey.verify('$1')"; }
sql -c "SELECT apikey.revoke_key('$(idof "$revoked")', 'test')" >/dev/null &&
sql -c "SELECT apikey.set_key_expiry('$(idof "$expired")', now() - interval '1 minute')" >/dev/null &&
sql -c "SELECT apikey.delete_key('$(idof "$deleted")')" >/dev/null || fail "key setup failed"
# a well-formed key of the right shape that was never issued: the deleted
# one is exactly that now

run_as_pg "$PY" "$REPO/test/http/server.py" --dsn "host=$work port=$pgport user=app_api dbname=apikey" \
	>"$work/server.out" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do grep -q '^listening on' "$work/server.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$work/server.out")
[ -n "$port" ] || fail "server did not start: $(cat "$work/server.log")"
base="http://127.0.0.1:$port"

passed=0
failed=0
# check NAME EXPECTED_CODE BODY_REGEX [curl args...]
check() {
	local name=$1 want=$2 re=$3 code body
	shift 3
	code=$(curl -s -m 10 -o "$work/body" -w '%{http_code}' "$@")
	body=$(cat "$work/body" 2>/dev/null)
	if [ "$code" = "$want" ] && [[ "$body" =~ $re ]]; then
		passed=$((passed + 1))
		echo "ok   $want $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name: got $code, want $want; body ${body:0:200}"
	fi
}
# refute NAME REGEX: the last body must not match
refute() {
	if grep -Eq "$2" "$work/body"; then
		failed=$((failed + 1)); echo "FAIL $1"
	else
		passed=$((passed + 1)); echo "ok   $1"
	fi
}

check "valid key: the tenant's orders" 200 '"tenant": "acme".*acme widget.*acme gizmo' \
	-H "X-API-Key: $acme_rw" "$base/orders"
refute "  ... and none of globex's" 'globex'
check "other tenant's key: its own orders" 200 '"tenant": "globex".*globex widget.*globex gadget' \
	-H "X-API-Key: $globex_rw" "$base/orders"
refute "  ... and none of acme's" 'acme'
check "read-only key can read" 200 '"tenant": "acme"' -H "X-API-Key: $acme_ro" "$base/orders"
check "missing header" 401 '"error": "missing_api_key"' "$base/orders"
check "empty header" 401 '"error": "missing_api_key"' -H "X-API-Key;" "$base/orders"
check "malformed key" 401 '"error": "malformed"' -H "X-API-Key: ak_live_notakey" "$base/orders"
# change the last character (part of the checksum) to one it is not
last=${acme_rw: -1}
tampered="${acme_rw%?}$([ "$last" = x ] && echo y || echo x)"
check "tampered key (checksum)" 401 '"error": "malformed"' -H "X-API-Key: $tampered" "$base/orders"
check "garbage header" 401 '"error": "malformed"' -H "X-API-Key: '; DROP TABLE app.orders; --" "$base/orders"
check "unknown key" 401 '"error": "not_found"' -H "X-API-Key: $deleted" "$base/orders"
check "revoked key" 401 '"error": "revoked"' -H "X-API-Key: $revoked" "$base/orders"
check "expired key" 401 '"error": "expired"' -H "X-API-Key: $expired" "$base/orders"
check "wrong environment (preview key, production server)" 401 '"error": "wrong_environment"' \
	-H "X-API-Key: $acme_preview" "$base/orders"
check "401 carries WWW-Authenticate" 401 '' -D "$work/headers" -H "X-API-Key: $revoked" "$base/orders"
if grep -qi '^WWW-Authenticate: ApiKey' "$work/headers"; then passed=$((passed + 1)); echo "ok   WWW-Authenticate header"; else failed=$((failed + 1)); echo "FAIL WWW-Authenticate header"; fi
check "insufficient scope (read-only key writes)" 403 '"error": "insufficient_scope"' \
	-H "X-API-Key: $acme_ro" -H 'Content-Type: application/json' \
	-d '{"collection_id": 1, "item": "acme new", "amount": "5"}' "$base/orders"
check "write with orders:write" 201 '"item": "acme new".*"created_by_key": "[0-9A-Za-z]{11}"' \
	-H "X-API-Key: $acme_rw" -H 'Content-Type: application/json' \
	-d '{"collection_id": 1, "item": "acme new", "amount": "5"}' "$base/orders"
check "the new order is acme's" 200 'acme new' -H "X-API-Key: $acme_rw" "$base/orders"
check "globex does not see it" 200 '"tenant": "globex"' -H "X-API-Key: $globex_rw" "$base/orders"
refute "  ... not a trace" 'acme new'
check "no writing into another tenant's collection" 400 '"error": "invalid_data"' \
	-H "X-API-Key: $acme_rw" -H 'Content-Type: application/json' \
	-d '{"collection_id": 3, "item": "sneaky", "amount": "1"}' "$base/orders"
check "globex never sees the attempt" 200 '"tenant": "globex"' -H "X-API-Key: $globex_rw" "$base/orders"
refute "  ... no sneaky row" 'sneaky'
check "resource-restricted key: its collection" 200 'acme gizmo' -H "X-API-Key: $acme_c2" "$base/collections/2/orders"
refute "  ... nothing of collection 1" 'acme widget'
check "resource-restricted key: other collection" 403 '"error": "wrong_resource"' \
	-H "X-API-Key: $acme_c2" "$base/collections/1/orders"
check "resource-restricted key: /orders is its collection only" 200 'acme gizmo' \
	-H "X-API-Key: $acme_c2" "$base/orders"
refute "  ... nothing of collection 1" 'acme widget'
check "other tenant's collection is empty, not an error" 200 '"orders": \[\]' \
	-H "X-API-Key: $acme_rw" "$base/collections/3/orders"
check "bad JSON" 400 '"error": "invalid_json"' -H "X-API-Key: $acme_rw" -d 'nope' "$base/orders"
check "unknown path" 404 '"error": "not_found"' -H "X-API-Key: $acme_rw" "$base/keys"
# concurrent requests of two tenants: each answer is its own tenant's
for i in $(seq 20); do
	if [ $((i % 2)) -eq 0 ]; then k=$acme_rw; t=acme; else k=$globex_rw; t=globex; fi
	curl -s -m 10 -H "X-API-Key: $k" "$base/orders" -o "$work/par.$i.$t" &
done
wait $(jobs -p | grep -v "^$server_pid\$") 2>/dev/null
bad=0
for f in "$work"/par.*; do
	t=${f##*.}; o=$([ "$t" = acme ] && echo globex || echo acme)
	grep -q "\"tenant\": \"$t\"" "$f" && ! grep -q "$o" "$f" || bad=$((bad + 1))
done
if [ "$bad" -eq 0 ]; then passed=$((passed + 1)); echo "ok   20 concurrent requests, 2 tenants, isolated"
else failed=$((failed + 1)); echo "FAIL $bad of 20 concurrent requests saw the wrong tenant"; fi

# the application never logs a key, nor does PostgreSQL (with its default
# log_min_error_statement = error, a rejected authenticate must not log its
# STATEMENT, which holds the key)
for log in server.log postgres.log; do
	leaks=0
	for k in "$acme_rw" "$acme_ro" "$acme_c2" "$globex_rw" "$acme_preview" "$revoked" "$expired" "$deleted"; do
		grep -qF -- "${k:8}" "$work/$log" && leaks=$((leaks + 1))
	done
	if [ "$leaks" -eq 0 ]; then passed=$((passed + 1)); echo "ok   no key text in $log"
	else failed=$((failed + 1)); echo "FAIL $leaks key texts in $log"; fi
done

cleanup
[ "$failed" -eq 0 ] && rm -rf "$work"
echo "$passed passed, $failed failed"
