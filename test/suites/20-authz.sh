#!/usr/bin/env bash
# Authorization, with pg_regress on a temporary instance: test/authz/sql/*.sql
# against test/authz/expected/*.out, in the order of test/authz.schedule
# (privileges, tenant administrators, the RLS hand-off).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

work=$(scratch_dir authz)
cp -r "$REPO/test/authz/sql" "$REPO/test/authz/expected" "$REPO/test/authz.schedule" "$work/"
# rls.sql includes the example application schema from here
cp "$REPO/test/rls_example.sql" "$work/sql/"
chown -R postgres: "$work" 2>/dev/null
run_as_pg "$PGXS_DIR/src/test/regress/pg_regress" \
	--temp-instance="$work/instance" --bindir="$PGBIN" \
	--inputdir="$work" --outputdir="$work" \
	--load-extension=pgcrypto --load-extension=apikey \
	--dbname=apikey_authz \
	--schedule="$work/authz.schedule" | tee "$work/summary"
rc=${PIPESTATUS[0]}
[ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"

n_ok=$(grep -Ec '^(test | +)[a-z_0-9]+ +\.\.\. ok' "$work/summary")
n_bad=$(grep -Ec '^(test | +)[a-z_0-9]+ +\.\.\. FAILED' "$work/summary")
[ $rc -ne 0 ] && [ "$n_bad" -eq 0 ] && n_bad=1
[ $rc -eq 0 ] && rm -rf "$work"
echo "$n_ok passed, $n_bad failed"
