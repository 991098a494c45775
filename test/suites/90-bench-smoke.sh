#!/usr/bin/env bash
# Smoke test of the benchmark: `bench.sh --quick` runs end to end and prints
# its table.  Targets are not judged here (a CI machine's figures are not the
# benchmark's); only that the benchmark works.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

# the peer lives beside the repository (../shared/bench); without it there
# is nothing to compare against: say so rather than fail
if [ ! -f "$REPO/../shared/bench/peer.sql" ]; then
	echo "skipped: the peer ($REPO/../shared/bench/peer.sql) is not beside the repository"
	echo "0 passed, 0 failed"
	exit 0
fi

out=$(mktemp)
bash "$REPO/test/bench/bench.sh" --quick >"$out"
rc=$?
cat "$out"
if [ $rc -eq 0 ] && grep -q '^## apikey benchmark' "$out" &&
	grep -q '^| 1 | server-side' "$out" && grep -q '^| 6 |' "$out" &&
	! grep -Eq '\| +\|? *(nan|inf|-nan)' "$out"; then
	rm -f "$out"
	echo "1 passed, 0 failed"
else
	echo "bench.sh --quick failed (exit $rc) or printed no complete table"
	rm -f "$out"
	echo "0 passed, 1 failed"
fi
