#!/usr/bin/env bash
# Hostile input: every public function (and the internal C entry points)
# called with NULLs, empty and 1 MB strings, non-ASCII and control
# characters, SQL injection, 100k-element arrays, extreme intervals and
# timestamps, key text of other tenants and environments and key ids of the
# wrong shape (test/hostile/setup.sql generates the calls), in three passes:
# as superuser, as a tenant administrator authenticated with a key, and as
# an application role with grant_verifier only.  Every call must end in a
# result or an error other than XX000, with the backend alive; the server
# log must show no crash.  Tests: one per pass (no crash, no XX000), one
# for "every error is a clear user error" (no syntax error or the like from
# the extension's own SQL), one for the server log.
# timeout: 300
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$REPO/test/hostile/cluster.sh"

work=$(scratch_dir hostile)
trap cluster_stop EXIT
PGPORT=$((20000 + $$ % 10000))
cluster_start "$work" "log_min_messages=warning" "log_min_error_statement=panic" "shared_preload_libraries=apikey" \
	|| { echo "0 passed, 1 failed"; exit 1; }
cp "$REPO/test/hostile/setup.sql" "$work/"
cluster_psql -q -f "$work/setup.sql" >"$work/setup.out" || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
start_time=$(cluster_psql -Atc 'SELECT pg_postmaster_start_time()')
ncalls=$(cluster_psql -Atc 'SELECT count(*) FROM hostile.calls')
cluster_psql -Atc "SELECT format('functions called: %s (%s internal)', count(*), count(*) FILTER (WHERE fn LIKE 'apikey\\_internal.%'))
	FROM hostile.fns"
cluster_psql -Atc "SELECT string_agg(fn, ' ' ORDER BY fn) FROM hostile.fns" | fold -s -w 100 | sed 's/^/    /'

passed=0
failed=0
for pass in superuser tenant_admin app; do
	user=postgres
	[ $pass = app ] && user=hostile_app
	from=0
	crashes=0
	# CALL until every call has a result; after a crash, record it and go on
	while :; do
		if cluster_psql -q -U $user -c "CALL hostile.run('$pass', $from)" >"$work/run-$pass.out" 2>&1; then
			break
		fi
		cat "$work/run-$pass.out"
		for _ in $(seq 60); do cluster_alive && break; sleep 1; done
		last=$(cluster_psql -Atc "SELECT coalesce(max(call_id), 0) FROM hostile.results WHERE pass = '$pass'")
		next=$(cluster_psql -Atc "SELECT min(id) FROM hostile.calls WHERE id > $last")
		[ -z "$next" ] && break
		cluster_psql -q -c "INSERT INTO hostile.results VALUES ('$pass', $next, 'CRASH', 'backend died', NULL)"
		crashes=$((crashes + 1))
		from=$((next + 1))
		[ $crashes -ge 20 ] && { echo "too many crashes, giving up on pass $pass"; break; }
	done
	# what the pass proved, in numbers: calls, results, errors by class
	cluster_psql -Atc "
		SELECT format('pass %s: %s calls in %s s (slowest %s ms): %s results, %s errors',
		              '$pass', count(*), round(sum(ms) / 1000, 1), round(max(ms), 1),
		              count(*) FILTER (WHERE sqlstate = '00000'),
		              count(*) FILTER (WHERE sqlstate <> '00000'))
		  FROM hostile.results WHERE pass = '$pass'"
	cluster_psql -Atc "
		SELECT '    errors by class: ' || coalesce(string_agg(format('%s %s %s', class, hostile.class_name(class), n),
		                                                       ', ' ORDER BY class), 'none')
		  FROM (SELECT left(sqlstate, 2) AS class, count(*) AS n FROM hostile.results
		         WHERE pass = '$pass' AND sqlstate <> '00000' GROUP BY 1) AS c"
	bad=$(cluster_psql -Atc "
		SELECT count(*) FROM hostile.calls c LEFT JOIN hostile.results r
		    ON r.call_id = c.id AND r.pass = '$pass'
		 WHERE r.sqlstate IS NULL OR r.sqlstate IN ('XX000', 'CRASH')
		    OR r.sqlstate LIKE 'XX%' OR r.sqlstate LIKE '58%'")
	if [ "$bad" -eq 0 ]; then
		passed=$((passed + 1))
		echo "ok: pass $pass, $ncalls calls, no crash, no internal error"
	else
		failed=$((failed + 1))
		echo "FAILED: pass $pass, $bad calls crashed, raised an internal error or have no result:"
		cluster_psql -P footer=off -c "
			SELECT c.id, c.fn, c.arg, c.label, r.sqlstate, left(r.message, 100) AS message
			  FROM hostile.calls c LEFT JOIN hostile.results r
			    ON r.call_id = c.id AND r.pass = '$pass'
			 WHERE r.sqlstate IS NULL OR r.sqlstate IN ('XX000', 'CRASH')
			    OR r.sqlstate LIKE 'XX%' OR r.sqlstate LIKE '58%'
			 ORDER BY c.id LIMIT 50"
	fi
done

# key_id in binary format (key_id_recv) and text of invalid encoding: only
# the extended protocol reaches these
if python3 "$REPO/test/hostile/binary.py" "host=$PGHOST port=$PGPORT dbname=postgres user=postgres"; then
	passed=$((passed + 1))
	echo "ok: binary key_id and invalid encodings"
else
	failed=$((failed + 1))
	echo "FAILED: binary key_id and invalid encodings"
fi

total=$(cluster_psql -Atc 'SELECT count(*) FROM hostile.results')
n_internal=$(cluster_psql -Atc "SELECT count(*) FROM hostile.results WHERE sqlstate LIKE 'XX%' OR sqlstate LIKE '58%' OR sqlstate = 'CRASH'")
echo "hostile calls: $total ($ncalls per pass, 3 passes), $n_internal internal errors or crashes"

# errors that are not the caller's fault but the extension's own SQL going
# wrong (a syntax error in a generated statement, an undefined column ...)
unclear="'42601', '42703', '42883', '42P01', '42804', '42P18', '0A000'"
n_unclear=$(cluster_psql -Atc "SELECT count(*) FROM hostile.results WHERE sqlstate IN ($unclear)")
if [ "$n_unclear" -eq 0 ]; then
	passed=$((passed + 1))
	echo "ok: every error is a clear user error"
else
	failed=$((failed + 1))
	echo "FAILED: $n_unclear calls ended in an error of the extension's own SQL, not a clear user error:"
	cluster_psql -P footer=off -c "
		SELECT r.pass, c.fn, c.label, r.sqlstate, left(r.message, 60) AS message,
		       left(c.sql, 70) AS call
		  FROM hostile.calls c JOIN hostile.results r ON r.call_id = c.id
		 WHERE r.sqlstate IN ($unclear) ORDER BY r.pass, c.id"
fi

# the server never crashed or restarted
if [ "$(cluster_psql -Atc 'SELECT pg_postmaster_start_time()')" = "$start_time" ] &&
	! grep -Eq 'terminated by signal|server process .* was terminated|PANIC|TRAP:' "$CLUSTER_LOG"; then
	passed=$((passed + 1))
	echo "ok: server log shows no crash"
else
	failed=$((failed + 1))
	echo "FAILED: the server crashed or restarted:"
	grep -E 'terminated by signal|was terminated|PANIC|TRAP:' "$CLUSTER_LOG" | head -n 20
fi
cluster_stop
[ $failed -eq 0 ] && rm -rf "$work"
echo "$passed passed, $failed failed"
