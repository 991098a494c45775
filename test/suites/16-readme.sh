#!/usr/bin/env bash
# What the README and the doc/ pages tell a new user to run works as they say.
#  - The README's quick start, in a new database as a superuser: the key
#    it creates verifies.
#  - "Setting up an application database" (doc/setup.md): its blocks, extracted
#    from README.md or doc/*.md by their <!-- tested: NAME --> markers
#    (test/readme/blocks.py),
#    run as they stand on a throwaway cluster: the roles, the table and its
#    policies, the first key as the administrator alice; the list of what
#    each grant (grant_delegate's too) allows matches the catalog
#    (check_rights.py); the reference (doc/reference.md) names every
#    function, view (and each view's columns) and setting of the
#    extension (check_reference.py),
#    so one added without documentation fails; pgbouncer runs
#    with the README's configuration (only ports and paths replaced); the
#    per-request SQL runs as web_app with bind parameters, directly and
#    through pgbouncer: each tenant's key sees its own orders and no other's
#    (requests.py); the Python example runs with psycopg 3 as web_app,
#    logging every statement, and leaves no key text in the log
#    (check_python.py); the query that tells a real event from a forged one.
#  - "Using it from an application": the PostgREST pre-request function,
#    called as PostgREST calls it, raises PGRST with the documented JSON
#    and the HTTP status of each verification status (postgrest.sql); the
#    README's status -> HTTP table agrees with test/http/server.py, with
#    what 26-http.sh expects, with the README's Python example and with the
#    PostgREST function (check_http.py).
#  - "Adoption and incidents": the regular expression for key text, its
#    checksum check and the gitleaks rule against generated keys of every
#    prefix and tag length and near misses (check_key_regex.py).
#  - "Tenant members" (doc/tenant-members.md): its setup and each seed's
#    walk-through run as the dashboard role, their results checked, the
#    refusals (no delete right: 42501; another tenant's key id: 42704)
#    refused, act_for gone in the session's next transaction
#    (test/readme/members.sh).
#  - The demo (test/demo.sh): it completes (its queries after the first
#    section run as a key administrator and as the application, not as a
#    superuser, so it queries nothing an administrator could not), and its
#    output reads well: 80 columns, no empty one-cell results, intervals in
#    words, identify, expiry, revoke and an RLS query per tenant
#    (test/readme/check_demo.py).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

. "$REPO/test/hostile/cluster.sh"

PY=/usr/bin/python3
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work=$(scratch_dir readme)
bouncer_pid=
cleanup() {
	[ -n "$bouncer_pid" ] && kill "$bouncer_pid" 2>/dev/null
	cluster_stop
	[ "${failed:-1}" -eq 0 ] && rm -rf "$work"
}
trap cleanup EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
# tally OUTPUT NAME RC: count the ok/FAIL lines a helper printed; a helper
# that failed (RC) without saying FAIL, or checked nothing, is a failure
tally() {
	cat "$1"
	passed=$((passed + $(grep -c '^ok ' "$1")))
	failed=$((failed + $(grep -c '^FAIL ' "$1")))
	if ! grep -Eq '^(ok|FAIL) ' "$1"; then
		bad "$2 checked nothing"
	elif [ "$3" -ne 0 ] && ! grep -q '^FAIL ' "$1"; then
		bad "$2 stopped (exit $3)"
	fi
}

echo "# the demo"
if bash "$REPO/test/demo.sh" >"$work/demo.out" 2>&1; then
	ok "test/demo.sh runs to the end"
else
	bad "test/demo.sh failed: $(grep -E 'ERROR|FATAL' "$work/demo.out" | head -3)"
fi
"$PY" "$REPO/test/readme/check_demo.py" "$work/demo.out" >"$work/demo.checks" 2>&1
tally "$work/demo.checks" check_demo.py $?

echo "# Setting up an application database"
block() { "$PY" "$REPO/test/readme/blocks.py" "$REPO/README.md" "$1" >"$work/$1.txt" || bad "README block $1"; }
for b in quick-start setup-roles rights setup-table setup-first-key pgbouncer request-read \
	request-write postgrest; do block $b; done
chown postgres: "$work"/*.txt
# run_block WHAT OUTPUT PSQL-ARGS...: a README block that must run cleanly
run_block() {
	local what=$1 out=$2
	shift 2
	if cluster_psql -q "$@" >"$out" 2>&1; then
		ok "$what"
	else
		bad "$what: $(cat "$out")"
		return 1
	fi
}
setup() {
	export PGPORT
	PGPORT=$(free_port)
	cluster_start "$work/pg" "listen_addresses=127.0.0.1" "shared_preload_libraries=apikey" >"$work/cluster.log" 2>&1 ||
		{ bad "the cluster did not start: $(tail -3 "$work/cluster.log")"; return 1; }
	cluster_psql -q -c 'CREATE DATABASE appdb' || { bad "CREATE DATABASE appdb"; return 1; }
	run_block "block 1, the roles, runs as a superuser" "$work/roles.out" \
		-d appdb -f "$work/setup-roles.txt" || return 1
	run_block "block 2, the table and its policies, runs as a superuser" "$work/table.out" \
		-d appdb -f "$work/setup-table.txt" || return 1
	run_block "block 3, a tenant and its first key, runs as alice (a member of key_admins)" \
		"$work/first-key.out" -At -U alice -d appdb -f "$work/setup-first-key.txt" || return 1
	grep -Eq '^ak_live_[0-9A-Za-z]+$' "$work/first-key.out" ||
		{ bad "block 3 printed no production key"; return 1; }
}
mkdir -p "$work/pg" && chown postgres: "$work/pg"
if setup; then
	echo "# the README's quick start"
	# as a superuser in a database of its own, as the README's psql is
	cluster_psql -q -c 'CREATE DATABASE keydemo' >/dev/null || bad "CREATE DATABASE keydemo"
	if run_block "the quick start runs as a superuser in a new database" "$work/quick.out" \
		-At -v ON_ERROR_STOP=1 -d keydemo -f "$work/quick-start.txt"; then
		if [ "$(tail -n 1 "$work/quick.out")" = "t|valid|demo|{orders:read}" ]; then
			ok "the quick start's key verifies: t|valid|demo|{orders:read}"
		else
			bad "the quick start ended with: $(tail -n 3 "$work/quick.out")"
		fi
	fi
	# more keys for the requests (the test's own, not the README's)
	newkey() { cluster_psql -q -At -U alice -d appdb -c "SELECT api_key FROM apikey.create_key($1)"; }
	cluster_psql -q -U alice -d appdb -c "SELECT apikey.create_tenant('globex')" >/dev/null
	"$PY" - "$work/keys.json" <<PYEOF
import json, sys
json.dump({"acme": "$(grep '^ak_live_' "$work/first-key.out")",
           "globex": "$(newkey "'globex', 'production', 'backend', scopes => '{orders:read,orders:write}'")",
           "acme_preview": "$(newkey "'acme', 'preview', 'preview', scopes => '{orders:read,orders:write}'")",
           "acme_read_only": "$(newkey "'acme', 'production', 'reader', scopes => '{orders:read}'")"},
          open(sys.argv[1], "w"))
PYEOF
	chmod 600 "$work/keys.json"

	# what each grant allows, from the catalog (the leak reporter is the test's)
	cluster_psql -q -d appdb -c "CREATE ROLE leak_check" -c "SELECT apikey.grant_leak_reporter('leak_check')" \
		>/dev/null || bad "grant_leak_reporter"
	cluster_psql -q -d appdb -c "CREATE ROLE delegate_check" -c "SELECT apikey.grant_delegate('delegate_check')" \
		>/dev/null || bad "grant_delegate"
	cluster_psql -At -d appdb -F ' ' >"$work/catalog.txt" <<-'SQL'
		SELECT 'verifier', p.proname FROM pg_proc AS p
		 WHERE p.pronamespace = 'apikey'::regnamespace AND p.proname !~ '^(_|key_id_)'
		   AND has_function_privilege('web_app', p.oid, 'EXECUTE')
		   AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
		UNION ALL
		SELECT 'verifier', c.relname FROM pg_class AS c
		 WHERE c.relnamespace = 'apikey'::regnamespace
		   AND has_table_privilege('web_app', c.oid, 'SELECT')
		UNION ALL
		SELECT 'admin', p.proname FROM pg_proc AS p
		 WHERE p.pronamespace = 'apikey'::regnamespace AND p.proname !~ '^(_|key_id_)'
		   AND has_function_privilege('alice', p.oid, 'EXECUTE')
		   AND NOT has_function_privilege('web_app', p.oid, 'EXECUTE')
		UNION ALL
		SELECT 'admin', c.relname FROM pg_class AS c
		 WHERE c.relnamespace = 'apikey'::regnamespace
		   AND has_table_privilege('alice', c.oid, 'SELECT')
		   AND NOT has_table_privilege('web_app', c.oid, 'SELECT')
		UNION ALL
		SELECT 'leak_reporter', p.proname FROM pg_proc AS p
		 WHERE p.pronamespace = 'apikey'::regnamespace AND p.proname !~ '^(_|key_id_)'
		   AND has_function_privilege('leak_check', p.oid, 'EXECUTE')
		   AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
		UNION ALL
		SELECT 'delegate', p.proname FROM pg_proc AS p
		 WHERE p.pronamespace = 'apikey'::regnamespace AND p.proname !~ '^(_|key_id_)'
		   AND has_function_privilege('delegate_check', p.oid, 'EXECUTE')
		   AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
		UNION ALL
		SELECT 'delegate', c.relname FROM pg_class AS c
		 WHERE c.relnamespace = 'apikey'::regnamespace
		   AND has_table_privilege('delegate_check', c.oid, 'SELECT')
		UNION ALL
		SELECT 'public', p.proname FROM pg_proc AS p
		 WHERE p.pronamespace = 'apikey'::regnamespace AND p.proname !~ '^(_|key_id_)'
		   AND has_function_privilege('public', p.oid, 'EXECUTE')
	SQL
	"$PY" "$REPO/test/readme/check_rights.py" "$REPO/README.md" "$work/catalog.txt" >"$work/rights.checks" 2>&1
	tally "$work/rights.checks" check_rights.py $?

	# every function, view and setting of the extension is in the reference
	cluster_psql -At -d appdb -F ' ' >"$work/objects.txt" <<-'SQL'
		SELECT DISTINCT 'function', p.proname FROM pg_proc AS p
		 WHERE p.pronamespace = 'apikey'::regnamespace AND p.proname !~ '^key_id_'
		UNION ALL
		SELECT 'view', c.relname FROM pg_class AS c
		 WHERE c.relnamespace = 'apikey'::regnamespace AND c.relkind = 'v'
		UNION ALL
		SELECT 'column', c.relname || '.' || a.attname FROM pg_class AS c
		  JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		 WHERE c.relnamespace = 'apikey'::regnamespace AND c.relkind = 'v'
		UNION ALL
		SELECT 'setting', name FROM pg_settings WHERE name LIKE 'apikey.%'
	SQL
	"$PY" "$REPO/test/readme/check_reference.py" "$REPO/doc/reference.md" "$work/objects.txt" \
		>"$work/reference.checks" 2>&1
	tally "$work/reference.checks" check_reference.py $?

	# pgbouncer with the README's configuration: only its ports and paths
	# are replaced, and a log, a pid file and one server connection added
	# (two clients then share it only if the pooling is per transaction)
	bport=$(free_port)
	password=$(sed -n "s/^CREATE ROLE web_app LOGIN PASSWORD '\([^']*\)'.*/\1/p" "$work/setup-roles.txt")
	printf '"web_app" "%s"\n' "$password" >"$work/userlist.txt"
	sed -e "s/ port=5432 / port=$PGPORT /" -e "s/^listen_port = 6432$/listen_port = $bport/" \
		-e "s|^auth_file = /etc/pgbouncer/userlist.txt$|auth_file = $work/userlist.txt|" \
		"$work/pgbouncer.txt" >"$work/pgbouncer.ini"
	printf '%s\n' "unix_socket_dir =" "logfile = $work/pgbouncer.log" \
		"pidfile = $work/pgbouncer.pid" "default_pool_size = 1" "query_wait_timeout = 10" \
		>>"$work/pgbouncer.ini"
	chown postgres: "$work"/pgbouncer.ini "$work"/userlist.txt
	if [ -z "$password" ] || grep -Eq '5432|6432|/etc/' "$work/pgbouncer.ini"; then
		bad "the README's pgbouncer block or web_app's password changed shape: $(cat "$work/pgbouncer.ini")"
	elif run_as_pg pgbouncer -d "$work/pgbouncer.ini" >"$work/pgbouncer.out" 2>&1; then
		for _ in $(seq 50); do [ -s "$work/pgbouncer.pid" ] && break; sleep 0.1; done
		bouncer_pid=$(cat "$work/pgbouncer.pid" 2>/dev/null)
		ok "pgbouncer starts with the README's configuration"
	else
		bad "pgbouncer did not start: $(cat "$work/pgbouncer.out")"
	fi

	bouncer=()
	[ -n "$bouncer_pid" ] &&
		bouncer=(--bouncer "host=127.0.0.1 port=$bport dbname=appdb user=web_app password='$password'")
	"$PY" "$REPO/test/readme/requests.py" --readme "$REPO/README.md" --keys "$work/keys.json" \
		--super "host=127.0.0.1 port=$PGPORT dbname=appdb user=postgres" \
		--direct "host=127.0.0.1 port=$PGPORT dbname=appdb user=web_app" "${bouncer[@]}" \
		--psql "$PGBIN/psql" \
		>"$work/requests.checks" 2>&1
	tally "$work/requests.checks" requests.py $?

	echo "# Tenant members: the seeds' pages as the dashboard role (doc/tenant-members.md)"
	bash "$REPO/test/readme/members.sh" "$work" >"$work/members.checks" 2>&1
	tally "$work/members.checks" members.sh $?

	echo "# Using it from an application: PostgREST"
	# keys in every state, for the pre-request function
	keyid() { cluster_psql -q -At -d appdb -c "SELECT key_id FROM apikey.verify('$1')"; }
	revoked=$(newkey "'acme', 'production', 'revoked', scopes => '{orders:read}'")
	expired=$(newkey "'acme', 'production', 'expired', scopes => '{orders:read}'")
	deleted=$(newkey "'acme', 'production', 'deleted', scopes => '{orders:read}'")
	limited=$(newkey "'acme', 'production', 'limited', scopes => '{orders:read}'")
	spent=$(newkey "'acme', 'production', 'spent', scopes => '{orders:read}'")
	cluster_psql -q -U alice -d appdb >/dev/null <<-SQL
		SELECT apikey.revoke_key('$(keyid "$revoked")', 'test');
		SELECT apikey.set_key_expiry('$(keyid "$expired")', now() - interval '1 minute');
		SELECT apikey.delete_key('$(keyid "$deleted")');
		SELECT apikey.set_rate_limit('$(keyid "$limited")', 'hourly', 1, '1 hour');
		SELECT apikey.set_credits('$(keyid "$spent")', 0);
	SQL
	# the limited key's one request of the hour
	cluster_psql -q -d appdb -c "SELECT status FROM apikey.verify('$limited')" >/dev/null
	if cluster_psql -q -d appdb -f "$work/postgrest.txt" >"$work/postgrest.out" 2>&1; then
		ok "the PostgREST block runs as a superuser"
		keys=$("$PY" -c 'import json, sys; print(" ".join("-v %s=%s" % kv for kv in json.load(open(sys.argv[1])).items()))' "$work/keys.json")
		# shellcheck disable=SC2086  # keys: -v name=value pairs of base62 text
		cluster_psql -q -U web_app -d appdb $keys -v revoked="$revoked" -v expired="$expired" \
			-v deleted="$deleted" -v limited="$limited" -v spent="$spent" \
			-v public_key="$(cluster_psql -q -At -U alice -d appdb \
				-c "SELECT apikey.public_key('acme', 'production')")" \
			-f "$REPO/test/readme/postgrest.sql" >"$work/postgrest.checks" 2>&1
		tally "$work/postgrest.checks" postgrest.sql $?
	else
		bad "the PostgREST block: $(cat "$work/postgrest.out")"
	fi

	echo "# Adoption and incidents: telling a real event from a forged one"
	# the page's query as it stands, as alice (an administrator), with the
	# psql variable payload the payload of a real event, of the same event
	# with another action, and of an event that never was
	block event-check
	cp "$work/event-check.txt" "$work/event-check.sql"
	chown postgres: "$work/event-check.sql"
	real=$(cluster_psql -q -At -d appdb -c "SELECT json_build_object('event_id', event_id, 'at', at,
		'action', action, 'tenant_id', tenant_id, 'key_id', key_id)
		FROM apikey.audit_log WHERE action = 'revoked' ORDER BY event_id DESC LIMIT 1")
	forged=${real/\"revoked\"/\"leaked\"}
	invented=$(sed -E 's/"event_id" ?: ?[0-9]+/"event_id" : 999999/' <<<"$real")
	answers=""
	for payload in "$real" "$forged" "$invented"; do
		answers+=$(cluster_psql -q -At -U alice -d appdb -v payload="$payload" -f "$work/event-check.sql" 2>&1)" "
	done
	if [ -n "$real" ] && [ "$forged" != "$real" ] && [ "$invented" != "$real" ] && [ "$answers" = "t f f " ]; then
		ok "the README's event check: true for a real event, false for a forged action and an invented id"
	else
		bad "the README's event check answered '$answers' for: $real / $forged / $invented"
	fi

	echo "# Using it from an application: the Python example, with psycopg 3"
	# web_app's statements logged, its bind values not (as Logging advises)
	cluster_psql -q -d appdb -c "ALTER ROLE web_app SET log_statement = 'all'" \
		-c "ALTER ROLE web_app SET log_parameter_max_length = 0" || bad "ALTER ROLE web_app"
	"$PY" "$REPO/test/readme/check_python.py" "$REPO/README.md" \
		"host=127.0.0.1 port=$PGPORT dbname=appdb user=web_app password='$password'" \
		"$work/keys.json" "$CLUSTER_LOG" >"$work/python.checks" 2>&1
	tally "$work/python.checks" check_python.py $?
	cluster_psql -q -d appdb -c "ALTER ROLE web_app RESET log_statement" \
		-c "ALTER ROLE web_app RESET log_parameter_max_length" || bad "ALTER ROLE web_app RESET"

	echo "# Administering keys from psql, and richer keys: run twice as alice"
	# as pasted into psql: an error does not stop the rest (ON_ERROR_STOP=0)
	# errs FILE: the ERROR lines psql printed, without psql's file:line prefix
	errs() { sed -n 's/^psql:[^ ]*: ERROR: */ERROR: /p' "$1"; }
	for b in admin-psql richer-keys; do
		block $b
		chown postgres: "$work/$b.txt"
		for run in 1 2; do
			cluster_psql -q -v ON_ERROR_STOP=0 -U alice -d appdb -f "$work/$b.txt" >"$work/$b.$run.out" 2>&1
		done
	done
	if [ -z "$(errs "$work/admin-psql.1.out")" ] && [ "$(grep -c '^ak_live_' "$work/admin-psql.1.out")" -eq 1 ]; then
		ok "the administration block runs as alice, its key shown once"
	else
		bad "the administration block as alice: $(cat "$work/admin-psql.1.out")"
	fi
	if [ "$(errs "$work/admin-psql.2.out")" = 'ERROR: tenant "initech" already exists' ] &&
		[ "$(grep -c '^ak_live_' "$work/admin-psql.2.out")" -eq 1 ]; then
		ok "run again, the administration block is refused its create_tenant only, as the page says"
	else
		bad "the administration block run again: $(errs "$work/admin-psql.2.out")"
	fi
	if [ "$(errs "$work/richer-keys.1.out")" = "$(errs "$work/richer-keys.2.out" | grep -v support)" ] &&
		[ "$(errs "$work/richer-keys.1.out" | wc -l)" -eq 1 ] && errs "$work/richer-keys.1.out" | grep -q billing &&
		[ "$(errs "$work/richer-keys.2.out" | wc -l)" -eq 2 ] && errs "$work/richer-keys.2.out" | grep -q '"support".*already exists'; then
		ok "the richer keys block runs as alice with one refusal, the first drop_key_role; run again, one more, the role support there already"
	else
		bad "the richer keys block as alice: $(errs "$work/richer-keys.1.out") / run again: $(errs "$work/richer-keys.2.out")"
	fi

	echo "# Adoption and incidents: the regular expression for key text"
	"$PY" "$REPO/test/readme/check_key_regex.py" "$REPO/README.md" \
		"host=127.0.0.1 port=$PGPORT dbname=appdb user=postgres" >"$work/regex.checks" 2>&1
	tally "$work/regex.checks" check_key_regex.py $?
fi

echo "# Using it from an application: the HTTP answers"
"$PY" "$REPO/test/readme/check_http.py" "$REPO" >"$work/http.checks" 2>&1
tally "$work/http.checks" check_http.py $?

echo "# the links between the README and the doc/ pages"
"$PY" "$REPO/test/readme/check_links.py" "$REPO" >"$work/links.checks" 2>&1
tally "$work/links.checks" check_links.py $?

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
