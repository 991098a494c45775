#!/usr/bin/env bash
# Under load: pgbench, 2 clients for LOAD_SECONDS (60 by default), a mix of
# verify (weight 5), authenticate (3), create_key (1), revoke + reactivate
# (1) and roll_key (1).  Each client changes only its own keys, so nothing
# may fail: pgbench aborts a client on any error.  Then: no errors, no
# deadlock in the server log, and exactly one audit event per committed
# create or roll and two per revoke + reactivate.
# timeout: 240
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$REPO/test/hostile/cluster.sh"

seconds=${LOAD_SECONDS:-60}
work=$(scratch_dir load)
trap cluster_stop EXIT
PGPORT=$((40000 + $$ % 10000))
cluster_start "$work" || { echo "0 passed, 1 failed"; exit 1; }
cp "$REPO"/test/load/*.sql "$work/"
[ "$(id -u)" -eq 0 ] && chown postgres: "$work"/*.sql
sqlq() { run_as_pg psql -h "$PGHOST" -p "$PGPORT" -U postgres -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }

passed=0 failed=0
check() { # description, condition status
	if [ "$2" -eq 0 ]; then echo "ok: $1"; passed=$((passed + 1)); else echo "FAILED: $1"; failed=$((failed + 1)); fi
}

sqlq -v clients=2 -v per_client=40 -v stable=50 -f "$work/setup.sql" >/dev/null 2>&1 ||
	{ echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
before=$(sqlq -c "SELECT coalesce(max(event_id), 0) FROM apikey.audit")

run_as_pg pgbench -h "$PGHOST" -p "$PGPORT" -U postgres -n -c 2 -j 2 -T "$seconds" \
	-f "$work/verify.sql@5" -f "$work/authenticate.sql@3" -f "$work/create.sql@1" \
	-f "$work/revoke.sql@1" -f "$work/roll.sql@1" postgres >"$work/pgbench.out" 2>&1
rc=$?
grep -E "^(number of (transactions|failed)|latency average|tps|SQL script|.*transactions \()" "$work/pgbench.out"
check "pgbench ran $seconds s with 2 clients and no client aborted" \
	$([ $rc -eq 0 ] && ! grep -qE "aborted|ERROR" "$work/pgbench.out"; echo $?)

# committed transactions per script, in the order of the -f options; the
# changes count themselves exactly (load.done, written in their own
# transaction), since pgbench does not count a transaction in flight when
# its time is up
mapfile -t tx < <(grep -E '^ - [0-9]+ transactions' "$work/pgbench.out" | awk '{ print $2 }')
if [ ${#tx[@]} -eq 5 ]; then
	read -r creates revokes rolls < <(sqlq -F' ' -c "SELECT count(*) FILTER (WHERE kind = 'create'),
		count(*) FILTER (WHERE kind = 'revoke+reactivate'), count(*) FILTER (WHERE kind = 'roll') FROM load.done")
	expected=$((creates + 2 * revokes + rolls))
	events=$(sqlq -c "SELECT count(*) FROM apikey.audit WHERE event_id > $before")
	echo "pgbench: verify ${tx[0]}, authenticate ${tx[1]}, create ${tx[2]}, revoke+reactivate ${tx[3]}, roll ${tx[4]} transactions"
	echo "committed: create $creates, revoke+reactivate $revokes, roll $rolls; $events audit events, $expected expected"
	check "the audit log has one event per committed change" $([ "$events" = "$expected" ]; echo $?)
	check "every kind of transaction ran" $([ "${tx[0]}" -gt 0 ] && [ "${tx[1]}" -gt 0 ] && [ "$creates" -gt 0 ] && [ "$revokes" -gt 0 ] && [ "$rolls" -gt 0 ]; echo $?)
else
	check "pgbench reported every script" 1
fi
check "no deadlock in the server log" $(! grep -q "deadlock detected" "$CLUSTER_LOG"; echo $?)
check "every rolled key text still verifies" \
	$([ "$(sqlq -c "SELECT count(*) FROM load.keys WHERE (apikey.verify(api_key)).status <> 'valid'")" = 0 ]; echo $?)

cluster_stop
[ $failed -eq 0 ] && rm -rf "$work"
echo "$passed passed, $failed failed"
