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

if [ -f "$APIKEY_ORIGIN/../shared/bench/peer.sql" ]; then
	echo "the peer ($APIKEY_ORIGIN/../shared/bench) is beside the repository: measured too"
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

# the check refuses a broken table, and names what broke: a figure replaced
# (nan or inf among digits, empty, words), a row missing
broken() { # row description awk-program
	awk "$3" "$work/table.md" >"$work/broken.md"
	if cmp -s "$work/table.md" "$work/broken.md"; then
		check "breaking the table (row $1 $2) changed it" 1
		return
	fi
	bash "$REPO/test/bench/check_table.sh" "$work/broken.md" >"$work/check.out"
	local r=$?
	sed 's/^/  /' "$work/check.out"
	[ $r -ne 0 ] && grep -q "row $1[ ,]" "$work/check.out"
	check "the table check refuses a table with row $1 $2, and says so" $?
}
cell() { # row column value: an awk program putting value in that cell
	echo "BEGIN { FS = OFS = \"|\" } \$2 == \" $1 \" { \$($2 + 1) = \" $3 \" } { print }"
}
broken 2.2 "with nan in its ratio" "$(cell 2.2 4 'vs 2.1: nan× (1.02–1.40)')"
broken 1.1 "with the baseline's figure empty" "$(cell 1.1 4 '')"
broken 3.1 "with inf in a ratio" "$(cell 3.1 5 '1.20× (0.90–inf)')"
broken 5.2 "with words for apikey's figure" "$(cell 5.2 3 'n/a')"
broken 5.4 "missing" 'BEGIN { FS = "|" } $2 != " 5.4 " { print }'

echo "$passed passed, $failed failed"
