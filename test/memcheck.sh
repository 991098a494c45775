#!/usr/bin/env bash
# The regression suite (and, with --hostile, the hostile-input calls) with
# the server under valgrind memcheck, against the distribution's PostgreSQL
# and the installed extension:   bash test/memcheck.sh [--hostile]
#
# How: a throwaway cluster (set up as test/regress.conf sets up the
# regression suite's, apikey preloaded) whose postmaster is started by hand under
# valgrind (backends are forks, so valgrind follows them without
# --trace-children; it is set anyway for anything exec'd); pg_regress runs
# sql/*.sql against it with --use-existing; then every valgrind log is read.
# The server is not built with USE_VALGRIND, so palloc chunks inside a
# memory context block are not tracked individually: what is caught is
# use of uninitialised memory, invalid reads and writes at malloc-block
# granularity and on the C heap, and invalid frees.  Errors whose stack
# passes through apikey.so fail the run; other errors (the server's own,
# e.g. uninitialised padding written to WAL) are counted and shown, and
# the known ones are suppressed below.
#
# Takes about 1-2 minutes for the regression suite, several more with
# --hostile; not run by test/run.sh.  Needs: valgrind (apt-get install
# valgrind).  Exit status 0 when no error involves apikey.so.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

hostile=0
[ "${1:-}" = "--hostile" ] && hostile=1
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 1; }
build_and_install || { echo "build failed"; exit 1; }

work=$(scratch_dir memcheck)
port=$((30000 + $$ % 10000))
export PGHOST=$work PGPORT=$port

# Suppressions for the server's own known noise (not apikey's).
cat >"$work/pg.supp" <<'EOF'
{
   postgres-wal-write-padding
   Memcheck:Param
   pwrite64(buf)
   fun:pwrite
   ...
   fun:XLogFlush
}
{
   postgres-wal-background-write-padding
   Memcheck:Param
   pwrite64(buf)
   fun:pwrite
   ...
   fun:XLogBackgroundFlush
}
{
   postgres-relcache-init-file-padding
   Memcheck:Param
   write(buf)
   ...
   fun:RelationCacheInitializePhase3
}
{
   postgres-regex-cache-memcpy-overlap
   Memcheck:Overlap
   fun:__memcpy_chk
   fun:RE_compile_and_cache
}
EOF

cat >"$work/postgres" <<EOF
#!/bin/sh
exec valgrind --quiet --trace-children=yes --child-silent-after-fork=no \\
	--num-callers=40 --error-limit=no --read-var-info=no \\
	--suppressions=$work/pg.supp --gen-suppressions=all \\
	--log-file=$work/vg/%p.log $PGBIN/postgres "\$@"
EOF
chmod 755 "$work/postgres"
mkdir -p "$work/vg"
chown -R postgres: "$work" 2>/dev/null

run_as_pg initdb -D "$work/data" -A trust -U postgres --no-sync >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log"; exit 1; }
start=$SECONDS
run_as_pg sh -c "cd '$work' && nohup '$work/postgres' -D '$work/data' -p $port -k '$work' \
	-c listen_addresses='' -c fsync=off -c max_connections=20 -c shared_buffers=16MB \
	-c max_stack_depth=4MB -c autovacuum=off \
	-c shared_preload_libraries=apikey -c max_prepared_transactions=2 \
	-c apikey.usage_flush_interval=3600 >'$work/server.log' 2>&1 &"
for _ in $(seq 120); do run_as_pg pg_isready -q -h "$work" -p $port && break; sleep 1; done
run_as_pg pg_isready -q -h "$work" -p $port || { echo "server did not start"; cat "$work/server.log"; exit 1; }
echo "server up under valgrind after $((SECONDS - start)) s"

cp -r "$REPO/sql" "$REPO/expected" "$REPO/test/regress.schedule" "$work/"
chown -R postgres: "$work"
# --use-existing creates neither the database nor the extensions
run_as_pg psql -X -q -h "$work" -p $port -d postgres -v ON_ERROR_STOP=1 \
	-c 'CREATE DATABASE apikey_regression' &&
	run_as_pg psql -X -q -h "$work" -p $port -d apikey_regression -v ON_ERROR_STOP=1 \
		-c 'CREATE EXTENSION pgcrypto' -c 'CREATE EXTENSION apikey' ||
	{ echo "could not create the database"; exit 1; }
run_as_pg "$PGXS_DIR/src/test/regress/pg_regress" --use-existing \
	--host="$work" --port=$port --bindir="$PGBIN" \
	--inputdir="$work" --outputdir="$work" \
	--dbname=apikey_regression \
	--schedule="$work/regress.schedule" | tee "$work/summary"
regress_rc=${PIPESTATUS[0]}
[ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"

if [ $hostile -eq 1 ]; then
	psql_pg() { run_as_pg psql -X -q -h "$work" -p $port -v ON_ERROR_STOP=1 "$@"; }
	psql_pg -d postgres -c 'CREATE DATABASE hostile' &&
		psql_pg -d hostile -c 'CREATE EXTENSION apikey' &&
		psql_pg -d hostile -f "$REPO/test/hostile/setup.sql" >/dev/null
	hostile_rc=$?
	for pass in superuser tenant_admin app; do
		user=postgres
		[ $pass = app ] && user=hostile_app
		from=0
		# after a backend crash, wait for recovery and go on after the call
		for _ in $(seq 20); do
			psql_pg -d hostile -U $user -c "CALL hostile.run('$pass', $from)" && break
			hostile_rc=1
			for _ in $(seq 120); do run_as_pg pg_isready -q -h "$work" -p $port && break; sleep 1; done
			from=$(psql_pg -d hostile -Atc "SELECT coalesce(max(call_id), 0) + 2 FROM hostile.results WHERE pass = '$pass'")
			echo "pass $pass: backend crashed at call $((from - 1)), going on from $from"
		done
	done
	psql_pg -d hostile -c "SELECT pass, count(*) AS calls, count(*) FILTER (WHERE sqlstate LIKE 'XX%') AS internal_errors FROM hostile.results GROUP BY pass"
else
	hostile_rc=0
fi

run_as_pg pg_ctl -D "$work/data" -m fast -w -t 300 stop >/dev/null
echo "memcheck run took $((SECONDS - start)) s"

# Read the logs: total errors, and the ones whose stack passes through the
# extension (apikey.so, or one of its source files when it has debug info).
ours_re="apikey\\.so|\\(($(cd "$REPO/src" && ls *.c | sed 's/[.]c$//' | paste -sd '|'))\\.c:[0-9]+\\)"
err_re='^==[0-9]+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Source and destination overlap|Mismatched free|Process terminating|Jump to the invalid)'
total=0
ours=0
for f in "$work"/vg/*.log; do
	n=$(grep -cE "$err_re" "$f")
	total=$((total + n))
	if grep -qE "$ours_re" "$f"; then
		ours=$((ours + 1))
		echo "=== errors through the extension in $f:"
		grep -v '^   \|^{\|^}\|<insert_a_suppression' "$f" | head -n 60
	fi
done
nlogs=$(ls "$work"/vg/*.log | wc -l)
echo "valgrind logs: $nlogs processes; errors reported: $total; processes with errors in apikey.so: $ours"
if [ "$total" -gt 0 ]; then
	echo "=== first unsuppressed errors (the server's own):"
	grep -h -A 12 -E "$err_re" "$work"/vg/*.log | head -n 80
fi
status=0
[ "$regress_rc" -ne 0 ] && { echo "regression suite FAILED under valgrind"; status=1; }
[ "$hostile_rc" -ne 0 ] && { echo "hostile calls FAILED under valgrind"; status=1; }
[ "$ours" -ne 0 ] && { echo "valgrind found errors in apikey.so"; status=1; }
[ $status -eq 0 ] && echo "memcheck: clean (no valgrind error through apikey.so)"
echo "logs in $work"
exit $status
