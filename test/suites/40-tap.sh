#!/usr/bin/env bash
# TAP tests with prove and PostgreSQL's own PostgreSQL::Test::Cluster:
# test/t/*.pl, each on throwaway clusters (hot standby, crash recovery,
# dump and restore, upgrade path).  Counts test files; the assertions are
# reported on the line before.
# timeout: 600
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

work=$(scratch_dir tap)
# the cluster module runs pg_regress --config-auth and the server's binaries
# from PATH, and keeps its clusters and logs under $TESTDIR/tmp_check (15),
# $TESTDATADIR and $TESTLOGDIR (16 and later)
# TAP_TESTS: a subset of the test files, for development
tests=(${TAP_TESTS:-"$REPO"/test/t/*.pl})
run_as_pg env PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
	TESTDIR="$work" TESTDATADIR="$work/tmp_check" TESTLOGDIR="$work/tmp_check/log" \
	TMPDIR="$work" APIKEY_REPO="$REPO" \
	prove -v --timer -I "$PGXS_DIR/src/test/perl" -I "$REPO/test/t" \
	"${tests[@]}" >"$work/prove.out" 2>&1
rc=$?
# assertion lines and results only: clusters' chatter stays in the log files
grep -E '^(\[[0-9:]+\] )?/|^ *(not )?ok |^# |^(Files|Result|Tests)|\.\. *(ok|FAILED|Dubious)' "$work/prove.out"

n_files=${#tests[@]}
# failed files are those prove's "Test Summary Report" lists
n_bad=$(sed -n '/^Test Summary Report/,$p' "$work/prove.out" | grep -Ec '\.pl +\(Wstat')
n_asserts=$(grep -Ec '^ *ok [0-9]+' "$work/prove.out")
n_asserts_bad=$(grep -E '^ *not ok [0-9]+' "$work/prove.out" | grep -vc '# TODO')
n_todo=$(grep -E '^ *not ok [0-9]+' "$work/prove.out" | grep -c '# TODO')
echo "assertions: $n_asserts passed, $n_asserts_bad failed, $n_todo known to fail (TODO, listed above)"
[ $rc -ne 0 ] && [ "$n_bad" -eq 0 ] && n_bad=1
# every file must have run: prove's "Files=N" counts those it ran
n_ran=$(sed -n 's/^Files=\([0-9]*\),.*/\1/p' "$work/prove.out" | tail -n 1)
if [ "${n_ran:-0}" -ne "$n_files" ]; then
	echo "prove ran ${n_ran:-no} test files of $n_files"
	[ "$n_bad" -lt $((n_files - ${n_ran:-0})) ] && n_bad=$((n_files - ${n_ran:-0}))
fi
# a file that planned skip_all ran no check: counted apart, with its reason
n_skip=$(grep -Ec '\.\.\.* skipped: ' "$work/prove.out")
grep -E '\.\.\.* skipped: ' "$work/prove.out" | sed 's/^\[[0-9:]*\] //; s/^/skipped file: /'
n_ok=$((n_files - n_bad - n_skip))
[ $rc -eq 0 ] && [ "$n_bad" -eq 0 ] && rm -rf "$work"
echo "$n_ok passed, $n_bad failed$([ "$n_skip" -gt 0 ] && echo ", $n_skip skipped")"
