#!/usr/bin/env bash
# pgbouncer in transaction-pooling mode in front of a throwaway cluster with
# the example RLS schema: many clients, alternating tenants, over two server
# connections; no client may see another tenant's identity or rows, and a
# transaction that does not authenticate sees none (test/pgbouncer/clients.py);
# and act_for of the dashboard role ends with its transaction, so the next
# client of the server connection inherits nothing (test/pgbouncer/members.py).
# timeout: 180
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

PY=/usr/bin/python3	# the Debian python, which has python3-psycopg2
# The server and pgbouncer listen on Unix sockets in this suite's own
# directory only: the port numbers just name the sockets, nobody else can
# hold them.
pgport=5432
bport=6432

work=$(scratch_dir pgbouncer)
pg_started=
bouncer_pid=
cleanup() {
	if [ -n "$bouncer_pid" ]; then
		kill "$bouncer_pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$bouncer_pid" 2>/dev/null || break; sleep 0.1; done
	fi
	[ -n "$pg_started" ] && run_as_pg pg_ctl -D "$work/data" -m immediate stop >/dev/null 2>&1
	bouncer_pid=
	pg_started=
}
trap cleanup EXIT
fail() { echo "$1"; cleanup; echo "0 passed, 1 failed"; exit 1; }

run_as_pg initdb -D "$work/data" -A trust -U postgres >"$work/initdb.log" 2>&1 || fail "initdb failed"
run_as_pg pg_ctl -D "$work/data" -l "$work/postgres.log" -w \
	-o "-p $pgport -k $work -c listen_addresses='' -c max_connections=20" start >/dev/null ||
	fail "the server did not start: $(tail -5 "$work/postgres.log")"
pg_started=1
run_as_pg createdb -h "$work" -p "$pgport" -U postgres apikey || fail "createdb failed"
cp "$REPO/test/rls_example.sql" "$work/"
run_as_pg psql -X -q -h "$work" -p "$pgport" -U postgres -d apikey -v example="$work/rls_example.sql" \
	-f "$REPO/test/app_setup.sql" >"$work/setup.log" 2>&1 || fail "setup failed: $(cat "$work/setup.log")"

# the application's dashboard role, for act_for (test/pgbouncer/members.py)
run_as_pg psql -X -q -h "$work" -p "$pgport" -U postgres -d apikey -c 'CREATE ROLE app_dashboard LOGIN' \
	-c "SELECT apikey.grant_delegate('app_dashboard')" >>"$work/setup.log" 2>&1 ||
	fail "the dashboard role: $(cat "$work/setup.log")"
printf '%s\n' '"app_api" ""' '"app_dashboard" ""' >"$work/userlist.txt"
sed -e "s|@PGPORT@|$pgport|" -e "s|@BOUNCERPORT@|$bport|" -e "s|@WORK@|$work|g" \
	"$REPO/test/pgbouncer/pgbouncer.ini.in" >"$work/pgbouncer.ini"
chown postgres: "$work"/* 2>/dev/null
run_as_pg pgbouncer -d "$work/pgbouncer.ini" || fail "pgbouncer did not start: $(tail -5 "$work/pgbouncer.log")"
for _ in $(seq 100); do [ -s "$work/pgbouncer.pid" ] && break; sleep 0.1; done
bouncer_pid=$(cat "$work/pgbouncer.pid" 2>/dev/null)
[ -n "$bouncer_pid" ] || fail "pgbouncer wrote no pid file: $(tail -5 "$work/pgbouncer.log")"
# ready when a query goes through it to the server
ready=
for _ in $(seq 100); do
	if run_as_pg psql -X -q -At -h "$work" -p "$bport" -U app_api -d apikey -c 'SELECT 1' >/dev/null 2>&1; then
		ready=1
		break
	fi
	sleep 0.1
done
[ -n "$ready" ] || fail "pgbouncer did not answer within 10 s: $(tail -5 "$work/pgbouncer.log")"

out=$(run_as_pg timeout 140 "$PY" "$REPO/test/pgbouncer/clients.py" \
	--direct "host=$work port=$pgport user=postgres dbname=apikey" \
	--bouncer "host=$work port=$bport user=app_api dbname=apikey" \
	--clients 8 --transactions 100 --pool-size 2 --seconds 100 2>&1)
rc=$?
# act_for behind the same pool: it ends with its transaction
mout=$(run_as_pg timeout 60 "$PY" "$REPO/test/pgbouncer/members.py" \
	--direct "host=$work port=$pgport user=postgres dbname=apikey" \
	--bouncer "host=$work port=$bport user=app_dashboard dbname=apikey" --pool-size 2 2>&1)
mrc=$?
cleanup
echo "$out" | sed '$d'
echo "$mout" | sed '$d'
mlast=$(echo "$mout" | tail -n 1)
if [[ "$mlast" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
	m_ok=${BASH_REMATCH[1]} m_bad=${BASH_REMATCH[2]}
else
	echo "members.py did not finish (exit $mrc): $mlast"
	m_ok=0 m_bad=1
fi
[ $mrc -ne 0 ] && [ "$m_bad" -eq 0 ] && m_bad=1
last=$(echo "$out" | tail -n 1)
if [[ "$last" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
	last="$((BASH_REMATCH[1] + m_ok)) passed, $((BASH_REMATCH[2] + m_bad)) failed"
	[ "$m_bad" -gt 0 ] && rc=1
fi
if [[ "$last" =~ ^[0-9]+\ passed,\ [0-9]+\ failed$ ]]; then
	if [ $rc -eq 0 ]; then rm -rf "$work"; else echo "logs in $work"; fi
	echo "$last"
	exit $rc
fi
echo "clients.py did not finish (exit $rc); logs in $work"
echo "0 passed, 1 failed"
exit 1
