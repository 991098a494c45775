#!/usr/bin/env bash
# A real HTTP client path: test/http/server.py (Python http.server and
# psycopg2) in front of a throwaway cluster with the example RLS schema,
# driven with curl.  Status codes for good and bad keys, scopes, resources,
# and tenant isolation; 429 with Retry-After over a rate limit, 402 out of
# credits; 20 concurrent requests, 12 of them waiting for one of the 8
# pooled connections, all answered 200; 503, not a dropped
# connection, when every pooled connection stays busy; leak reports in
# GitHub's secret-scanning partner format, signed with a key pair the test
# makes (openssl), labelled and revoking the leaked key, and refused when the
# signature is wrong; key texts must not appear in the server's log.
# timeout: 120
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

PY=/usr/bin/python3	# the Debian python, which has python3-psycopg2
work=$(scratch_dir http)
pg_started=
server_pids=()
locker_pid=
cleanup() {
	local p
	# the servers' own pids (from their pid files): runuser would not pass
	# a signal on
	for p in "${server_pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${server_pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
	[ -n "$locker_pid" ] && kill "$locker_pid" 2>/dev/null
	[ -n "$pg_started" ] && run_as_pg pg_ctl -D "$work/data" -m immediate stop >/dev/null 2>&1
	server_pids=()
	locker_pid=
	pg_started=
}
trap cleanup EXIT
fail() { echo "$1"; cleanup; echo "0 passed, 1 failed"; exit 1; }

pgport=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run_as_pg initdb -D "$work/data" -A trust -U postgres >"$work/initdb.log" 2>&1 || fail "initdb failed"
run_as_pg pg_ctl -D "$work/data" -l "$work/postgres.log" -w \
	-o "-p $pgport -k $work -c listen_addresses='' -c shared_preload_libraries=apikey" start >/dev/null ||
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
leaked=$(newkey "'acme', 'production', 'leaked', scopes => '{orders:*}'")
spared=$(newkey "'acme', 'production', 'spared', scopes => '{orders:*}'")
limited=$(newkey "'acme', 'production', 'limited', scopes => '{orders:read}'")
metered=$(newkey "'acme', 'production', 'metered', scopes => '{orders:read}'")
idof() { sql -c "SELECT key_id FROM apikey.verify('$1')"; }
sql -c "SELECT apikey.revoke_key('$(idof "$revoked")', 'test')" >/dev/null &&
sql -c "SELECT apikey.set_key_expiry('$(idof "$expired")', now() - interval '1 minute')" >/dev/null &&
sql -c "SELECT apikey.delete_key('$(idof "$deleted")')" >/dev/null &&
sql -c "SELECT apikey.set_rate_limit('$(idof "$limited")', 'hourly', 2, '1 hour')" >/dev/null &&
sql -c "SELECT apikey.set_credits('$(idof "$metered")', 1)" >/dev/null || fail "key setup failed"
# a well-formed key of the right shape that was never issued: the deleted
# one is exactly that now

# start_server NAME [server.py options...]: sets port; the server's log is
# $work/NAME.log
start_server() {
	local name=$1 pid
	shift
	run_as_pg "$PY" "$REPO/test/http/server.py" --dsn "host=$work port=$pgport user=app_api dbname=apikey" \
		--pid-file "$work/$name.pid" "$@" >"$work/$name.out" 2>"$work/$name.log" &
	port=
	for _ in $(seq 100); do grep -q '^listening on' "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
	pid=$(cat "$work/$name.pid" 2>/dev/null)
	[ -n "$pid" ] && server_pids+=("$pid")
	port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$work/$name.out")
	[ -n "$port" ] || fail "server $name did not start: $(cat "$work/$name.log")"
}
# GitHub's signing key for secret-scanning reports: a key pair of the
# test's own, published to the receiver in GitHub's format; and a key
# GitHub does not sign with
openssl ecparam -name prime256v1 -genkey -noout -out "$work/github.key" 2>/dev/null &&
	openssl ec -in "$work/github.key" -pubout -out "$work/github.pub" 2>/dev/null &&
	openssl ecparam -name prime256v1 -genkey -noout -out "$work/forger.key" 2>/dev/null ||
	fail "openssl could not make the key pairs"
github_key_id=$(openssl pkey -pubin -in "$work/github.pub" -outform DER | sha256sum | cut -d' ' -f1)
"$PY" - "$work/github.pub" "$github_key_id" >"$work/github_keys.json" <<'PYEOF'
import json, sys
print(json.dumps({"public_keys": [{"key_identifier": sys.argv[2], "key": open(sys.argv[1]).read(),
                                   "is_current": True}]}))
PYEOF
# (a request waits up to 30 s for a pooled connection: the concurrency check
# below holds all 8 while 12 more requests wait)
start_server server --leak-dsn "host=$work port=$pgport user=leak_bot dbname=apikey" \
	--github-keys "$work/github_keys.json" --pool-wait 30
base="http://127.0.0.1:$port"

passed=0
failed=0
# check NAME EXPECTED_CODE BODY_REGEX [curl args...]
check() {
	local name=$1 want=$2 re=$3 code body
	shift 3
	rm -f "$work/body"
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
check "rate-limited key (2 per hour): first" 200 '"tenant": "acme"' -H "X-API-Key: $limited" "$base/orders"
check "rate-limited key: second" 200 '"tenant": "acme"' -H "X-API-Key: $limited" "$base/orders"
check "rate-limited key: third" 429 '"error": "rate_limited"' -D "$work/headers" -H "X-API-Key: $limited" "$base/orders"
# Retry-After: when the hour's first request leaves the window (an hour and
# at most 1/31 of it), in whole seconds
retry=$(sed -n 's/^Retry-After: \([0-9]*\)\r\{0,1\}$/\1/Ip' "$work/headers")
if [ -n "$retry" ] && [ "$retry" -ge 3500 ] && [ "$retry" -le 3720 ]; then
	passed=$((passed + 1)); echo "ok   429 carries Retry-After ($retry s)"
else
	failed=$((failed + 1)); echo "FAIL 429 carries Retry-After: got '${retry}'"
fi
check "key with one credit: first" 200 '"tenant": "acme"' -H "X-API-Key: $metered" "$base/orders"
check "key with one credit: out of credits" 402 '"error": "usage_exceeded"' -H "X-API-Key: $metered" "$base/orders"
check "bad JSON" 400 '"error": "invalid_json"' -H "X-API-Key: $acme_rw" -d 'nope' "$base/orders"
check "unknown path" 404 '"error": "not_found"' -H "X-API-Key: $acme_rw" "$base/keys"
# leak reports in GitHub's secret-scanning partner format.
# leak_body FILE TOKEN...: a request body, one match per token
leak_body() {
	local f=$1
	shift
	"$PY" - "$@" >"$f" <<'PYEOF'
import json, sys
print(json.dumps([{"token": t, "type": "apikey_private_key", "source": "content",
                   "url": "https://github.com/acme/app/blob/main/.env"} for t in sys.argv[1:]]))
PYEOF
}
# leak_post NAME WANT_CODE BODY SIGNING_KEY [KEY_ID [SIGNATURE]]: POST, signed
# (the signature is over the raw body, base64 of DER); the answer in
# $work/leak.answer, never printed (it holds the tokens)
leak_post() {
	local name=$1 want=$2 body=$3 keyfile=$4 id=${5:-$github_key_id} sig code
	sig=${6:-$(openssl dgst -sha256 -sign "$keyfile" "$body" | base64 -w0)}
	code=$(curl -s -m 10 -o "$work/leak.answer" -w '%{http_code}' -X POST --data-binary "@$body" \
		-H 'Content-Type: application/json' -H "Github-Public-Key-Identifier: $id" \
		-H "Github-Public-Key-Signature: $sig" "$base/github/secret-scanning")
	if [ "$code" = "$want" ]; then
		passed=$((passed + 1)); echo "ok   $want $name"
	else
		failed=$((failed + 1)); echo "FAIL $name: got $code, want $want"
	fi
}
# leak_labels NAME BODY LABEL...: the answer names each token of the body,
# in order, with its type and these labels
leak_labels() {
	local name=$1 body=$2
	shift 2
	if "$PY" - "$body" "$work/leak.answer" "$@" <<'PYEOF'
import json, sys
sent = json.load(open(sys.argv[1]))
try:
    answer = json.load(open(sys.argv[2]))
except ValueError:
    sys.exit(1)
ok = isinstance(answer, list) and len(answer) == len(sent) == len(sys.argv) - 3 and all(
    a.get("token_raw") == s["token"] and a.get("token_type") == s["type"] and a.get("label") == want
    for a, s, want in zip(answer, sent, sys.argv[3:]))
sys.exit(0 if ok else 1)
PYEOF
	then passed=$((passed + 1)); echo "ok   $name"
	else failed=$((failed + 1)); echo "FAIL $name: labels $("$PY" -c 'import json,sys; print([a.get("label") for a in json.load(open(sys.argv[1]))])' "$work/leak.answer" 2>&1 | head -c 200)"
	fi
}
public_key=$(sql -c "SELECT apikey.public_key('acme', 'production')")
leak_body "$work/leak.body" "$leaked" "$revoked" "$public_key" "not a key" "$deleted"
check "the key to be leaked works" 200 '"tenant": "acme"' -H "X-API-Key: $leaked" "$base/orders"
leak_post "GitHub's report, signed" 200 "$work/leak.body" "$work/github.key"
leak_labels "  ... labels: a real key (revoked now, or already) true_positive, else false_positive" \
	"$work/leak.body" true_positive true_positive false_positive false_positive false_positive
check "the leaked key is revoked at once" 401 '"error": "revoked"' -H "X-API-Key: $leaked" "$base/orders"
if [ "$(sql -c "SELECT string_agg(a.actor_role || ' ' || (a.details ->> 'source'), ',') FROM apikey.audit_log AS a
		WHERE a.action = 'leaked' AND a.key_id = '$(idof "$leaked")'")" = \
	"leak_bot github content https://github.com/acme/app/blob/main/.env" ]; then
	passed=$((passed + 1)); echo "ok   the report is audited as leaked, by the leak reporter's role, with where it was found"
else
	failed=$((failed + 1)); echo "FAIL the leak report's audit event"
fi
leak_post "the same report again" 200 "$work/leak.body" "$work/github.key"
leak_labels "  ... still true_positive for the real keys" \
	"$work/leak.body" true_positive true_positive false_positive false_positive false_positive
leak_body "$work/spare.body" "$spared"
leak_post "signed by a key GitHub does not use: refused" 401 "$work/spare.body" "$work/forger.key"
leak_post "signed by GitHub's key but named as another: refused" 401 "$work/spare.body" "$work/github.key" unknown
good_sig=$(openssl dgst -sha256 -sign "$work/github.key" "$work/spare.body" | base64 -w0)
cp "$work/spare.body" "$work/tampered.body" && echo " " >>"$work/tampered.body"
leak_post "a body changed after signing: refused" 401 "$work/tampered.body" - "$github_key_id" "$good_sig"
leak_post "a signature that is not base64: refused" 401 "$work/spare.body" - "$github_key_id" 'not*base64'
code=$(curl -s -m 10 -o "$work/leak.answer" -w '%{http_code}' -X POST --data-binary "@$work/spare.body" \
	"$base/github/secret-scanning")
if [ "$code" = 401 ]; then passed=$((passed + 1)); echo "ok   401 unsigned: refused"
else failed=$((failed + 1)); echo "FAIL unsigned report: got $code, want 401"; fi
check "  ... and the key in the refused reports still works" 200 '"tenant": "acme"' -H "X-API-Key: $spared" "$base/orders"
echo '{"token": "not a list"}' >"$work/bad.body"
leak_post "a signed body that is not a list of matches: 400" 400 "$work/bad.body" "$work/github.key"

# 20 concurrent requests of two tenants, more than the server's 8 pooled
# connections, held by a lock on the orders until all 8 connections wait on
# it (so the other 12 requests wait for a connection): once the lock is gone
# every one is answered 200 with its own tenant's orders
waitfor() { # SQL that becomes true within 10 s
	for _ in $(seq 100); do [ "$(sql -c "$1")" = t ] && return 0; sleep 0.1; done
	return 1
}
lock_orders() { # application name: a session holding app.orders locked for 60 s
	run_as_pg env PGAPPNAME="$1" psql -X -q -At -h "$work" -p "$pgport" -U postgres -d apikey \
		-c "BEGIN; LOCK TABLE app.orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60)" >/dev/null 2>&1 &
	locker_pid=$!
	waitfor "SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		WHERE a.application_name = '$1' AND l.relation = 'app.orders'::regclass AND l.granted)" ||
		fail "the lock on app.orders was not taken"
}
unlock_orders() { # application name
	sql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$1'" >/dev/null
	wait "$locker_pid" 2>/dev/null
	locker_pid=
}
lock_orders http_locker_all
curls=()
for i in $(seq 20); do
	if [ $((i % 2)) -eq 0 ]; then k=$acme_rw; t=acme; else k=$globex_rw; t=globex; fi
	curl -s -m 30 -H "X-API-Key: $k" "$base/orders" -o "$work/par.$i.$t" -w '%{http_code}' \
		>"$work/code.$i.$t" &
	curls+=($!)
done
if waitfor "SELECT count(*) >= 8 FROM pg_stat_activity WHERE usename = 'app_api' AND wait_event_type = 'Lock'"; then
	pool_full=yes
else
	pool_full="no: $(sql -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_api' AND wait_event_type = 'Lock'") waiting"
fi
unlock_orders http_locker_all
wait "${curls[@]}"
n_answers=0 n_200=0 n_own=0
for i in $(seq 20); do
	if [ $((i % 2)) -eq 0 ]; then t=acme; o=globex; else t=globex; o=acme; fi
	[ -s "$work/par.$i.$t" ] && n_answers=$((n_answers + 1))
	[ "$(cat "$work/code.$i.$t" 2>/dev/null)" = 200 ] && n_200=$((n_200 + 1))
	grep -q "\"tenant\": \"$t\"" "$work/par.$i.$t" 2>/dev/null && ! grep -q "$o" "$work/par.$i.$t" &&
		n_own=$((n_own + 1))
done
if [ "$pool_full" = yes ] && [ "$n_answers" -eq 20 ] && [ "$n_200" -eq 20 ] && [ "$n_own" -eq 20 ]; then
	passed=$((passed + 1)); echo "ok   20 concurrent requests, all 8 connections busy: 20 answers, 20 times 200, each its own tenant's"
else
	failed=$((failed + 1))
	echo "FAIL 20 concurrent requests: all 8 connections busy: $pool_full; $n_answers answers, $n_200 times 200, $n_own with their own tenant's orders only"
	echo "     codes: $(cat "$work"/code.* 2>/dev/null | tr '\n' ' ')"
fi

# every pooled connection busy: a server with one connection, which a request
# holds while it waits on a lock; the next request gets 503, not a dropped
# connection, and the first one finishes once the lock is gone
lock_orders http_locker
start_server busy --pool-size 1 --pool-wait 0.5
busy="http://127.0.0.1:$port"
curl -s -m 30 -H "X-API-Key: $acme_rw" "$busy/orders" -o "$work/held.body" -w '%{http_code}' >"$work/held.code" &
held=$!
if waitfor "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE usename = 'app_api' AND wait_event_type = 'Lock')"; then
	check "pool exhausted: 503, not a dropped connection" 503 '"error": "busy"' -D "$work/headers" \
		-H "X-API-Key: $acme_rw" "$busy/orders"
	if grep -qi '^Retry-After: ' "$work/headers"; then passed=$((passed + 1)); echo "ok   503 carries Retry-After"
	else failed=$((failed + 1)); echo "FAIL 503 carries Retry-After"; fi
else
	failed=$((failed + 1)); echo "FAIL the request holding the only connection never waited on the lock"
fi
unlock_orders http_locker
wait "$held"
if [ "$(cat "$work/held.code")" = 200 ] && grep -q '"tenant": "acme"' "$work/held.body"; then
	passed=$((passed + 1)); echo "ok   the request that held the connection is answered 200 once the lock is gone"
else
	failed=$((failed + 1)); echo "FAIL the request that held the connection: $(cat "$work/held.code")"
fi
check "the connection is free again: 200" 200 '"tenant": "acme"' -H "X-API-Key: $acme_rw" "$busy/orders"

# the application never logs a key, nor does PostgreSQL (with its default
# log_min_error_statement = error, a rejected authenticate must not log its
# STATEMENT, which holds the key)
for log in server.log busy.log postgres.log; do
	leaks=0
	for k in "$acme_rw" "$acme_ro" "$acme_c2" "$globex_rw" "$acme_preview" "$revoked" "$expired" "$deleted" \
		"$leaked" "$spared" "$limited" "$metered"; do
		grep -qF -- "${k:8}" "$work/$log" && leaks=$((leaks + 1))
	done
	if [ "$leaks" -eq 0 ]; then passed=$((passed + 1)); echo "ok   no key text in $log"
	else failed=$((failed + 1)); echo "FAIL $leaks key texts in $log"; fi
done

cleanup
[ "$failed" -eq 0 ] && rm -rf "$work"
echo "$passed passed, $failed failed"
