#!/usr/bin/env bash
# pg_regress on a temporary instance: sql/*.sql against expected/*.out, in
# the order of test/regress.schedule, with the settings of test/regress.conf.
# A sql/*.sql missing from the schedule is a failure.  Then the same files
# once more, in reverse order on a fresh instance: a file that depends on
# what an earlier one left behind (or on an empty database) fails there.
# Counts the files, plus one test for the reverse run.
# timeout: 120
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

export REGRESS_CONF=$REPO/test/regress.conf
out=$(regress_suite regress "$REPO" "$REPO/test/regress.schedule")
echo "$out" | sed '$d'
[[ "$(tail -n 1 <<<"$out")" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]] || { echo "0 passed, 1 failed"; exit 1; }
n_ok=${BASH_REMATCH[1]} n_bad=${BASH_REMATCH[2]}

reversed=$(mktemp "${TMPDIR:-/tmp}/apikey-reversed.XXXXXX")
{ echo "# test/regress.schedule, last file first"; grep '^test:' "$REPO/test/regress.schedule" | tac; } >"$reversed"
echo "=== the same files in reverse order"
rout=$(regress_suite regress-reversed "$REPO" "$reversed")
rm -f "$reversed"
echo "$rout" | sed '$d'
if [[ "$(tail -n 1 <<<"$rout")" =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then
	n_ok=$((n_ok + 1))
	echo "ok: every file passes in reverse order too"
else
	n_bad=$((n_bad + 1))
	echo "FAILED: in reverse order: $(tail -n 1 <<<"$rout")"
fi
echo "$n_ok passed, $n_bad failed"
[ "$n_bad" -eq 0 ]
