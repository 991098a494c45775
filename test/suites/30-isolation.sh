#!/usr/bin/env bash
# pg_isolation_regress on a temporary instance: concurrent sessions against
# the extension, test/isolation/specs/*.spec against expected/*.out, in the
# order of test/isolation/isolation_schedule.  Counts specs.
# timeout: 180
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

work=$(scratch_dir isolation)
cp -r "$REPO/test/isolation/specs" "$REPO/test/isolation/expected" \
	"$REPO/test/isolation/isolation_schedule" "$REPO/test/isolation/isolation.conf" "$work/"
chown -R --reference="$work" "$work"
run_as_pg "$PGXS_DIR/src/test/isolation/pg_isolation_regress" \
	--temp-instance="$work/instance" --bindir="$PGBIN" --temp-config="$work/isolation.conf" \
	--inputdir="$work" --outputdir="$work" \
	--dbname=apikey_isolation --temp-config="$work/isolation.conf" \
	--schedule="$work/isolation_schedule" | tee "$work/summary"
rc=${PIPESTATUS[0]}
[ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"

# every spec must be in the schedule, or it would silently never run
n_missing=0
for spec in "$REPO"/test/isolation/specs/*.spec; do
	name=$(basename "$spec" .spec)
	if ! grep -Eq "^test: .*\b$name\b" "$REPO/test/isolation/isolation_schedule"; then
		echo "spec $name is not in test/isolation/isolation_schedule"
		n_missing=$((n_missing + 1))
	fi
done

regress_counts "$work/summary" "$work/isolation_schedule"
n_ok=$N_OK n_bad=$N_BAD
[ $rc -ne 0 ] && [ "$n_bad" -eq 0 ] && n_bad=1
n_bad=$((n_bad + n_missing))
[ $rc -eq 0 ] && [ $n_missing -eq 0 ] && rm -rf "$work"
echo "$n_ok passed, $n_bad failed"
