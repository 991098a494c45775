#!/usr/bin/env bash
# Smoke test of the benchmark: `bench.sh --quick` runs end to end from a
# plain clone (the peer beside the repository, ../shared/bench, is measured
# too when it is there, and not needed) and prints a complete table with
# every figure measured (test/bench/check_table.sh).  The figures themselves
# are not judged: a CI machine's figures are not the benchmark's.  The table
# check is itself checked: it must refuse a table with one figure broken.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
check() { # description status
	if [ "$2" -eq 0 ]; then
		echo "ok: $1"; passed=$((passed + 1))
	else
		echo "FAILED: $1"; failed=$((failed + 1))
	fi
}

if [ -f "$REPO/../shared/bench/peer.sql" ]; then
	echo "the peer ($REPO/../shared/bench) is beside the repository: measured too"
else
	echo "no peer beside the repository: apikey and the baseline only"
fi
start=$SECONDS
bash "$REPO/test/bench/bench.sh" --quick >"$work/table.md" 2>"$work/stderr"
rc=$?
cat "$work/table.md"
grep -v '^bench: ' "$work/stderr" | sed 's/^/  /'
echo "(bench.sh --quick: $((SECONDS - start)) s)"
check "bench.sh --quick exits 0 (exit $rc)" $rc
[ $rc -eq 0 ] || tail -n 20 "$work/stderr"
bash "$REPO/test/bench/check_table.sh" "$work/table.md"
check "the table is complete and every figure is measured" $?
grep -q '^targets (' "$work/stderr"
check "the developers' target checks are printed on stderr" $?

# the check refuses a broken table: a figure replaced (nan, inf, empty,
# words), a row missing
broken() { # description awk-program
	awk "$2" "$work/table.md" >"$work/broken.md"
	if cmp -s "$work/table.md" "$work/broken.md"; then
		check "breaking the table ($1) changed it" 1
		return
	fi
	bash "$REPO/test/bench/check_table.sh" "$work/broken.md" >"$work/check.out"
	local r=$?
	sed 's/^/  /' "$work/check.out"
	check "the table check refuses a table with $1" $((r == 0))
}
cell() { # row column value: an awk program putting value in that cell
	echo "BEGIN { FS = OFS = \"|\" } \$2 == \" $1 \" { \$($2 + 1) = \" $3 \" } { print }"
}
broken "row 2.2's figure as nan" "$(cell 2.2 3 nan)"
broken "row 1.1's baseline figure empty" "$(cell 1.1 4 '')"
broken "row 3.1's ratio as inf" "$(cell 3.1 5 'inf×')"
broken "row 5.2's apikey figure as words" "$(cell 5.2 3 'n/a')"
broken "row 5.4 missing" 'BEGIN { FS = "|" } $2 != " 5.4 " { print }'

echo "$passed passed, $failed failed"
