#!/usr/bin/env bash
# pg_regress on a temporary instance: sql/*.sql against expected/*.out, in
# the order of test/regress.schedule.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

work=$(scratch_dir regress)
cp -r "$REPO/sql" "$REPO/expected" "$REPO/test/regress.schedule" "$work/"
run_as_pg "$PGXS_DIR/src/test/regress/pg_regress" \
	--temp-instance="$work/instance" --bindir="$PGBIN" \
	--inputdir="$work" --outputdir="$work" \
	--load-extension=pgcrypto --load-extension=apikey \
	--dbname=apikey_regression \
	--schedule="$work/regress.schedule" | tee "$work/summary"
rc=${PIPESTATUS[0]}
[ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"

n_ok=$(grep -Ec '^(test | +)[a-z_0-9]+ +\.\.\. ok' "$work/summary")
n_bad=$(grep -Ec '^(test | +)[a-z_0-9]+ +\.\.\. FAILED' "$work/summary")
[ $rc -ne 0 ] && [ "$n_bad" -eq 0 ] && n_bad=1
[ $rc -eq 0 ] && rm -rf "$work"
echo "$n_ok passed, $n_bad failed"
