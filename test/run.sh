#!/usr/bin/env bash
# Every test suite of apikey, on throwaway clusters:  bash test/run.sh [suite...]
# Installs what is missing, builds and installs the extension, then runs each
# test/suites/*.sh (or the named ones) and closes with "N passed, N failed",
# the sum of the suites' own counts.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

bash "$REPO/test/deps.sh" || exit 1
build_and_install || { echo "build failed"; exit 1; }

if [ $# -gt 0 ]; then
	suites=()
	for name in "$@"; do suites+=("$REPO"/test/suites/*"$name"*.sh); done
else
	suites=("$REPO"/test/suites/*.sh)
fi

passed=0
failed=0
broken=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for s in "${suites[@]}"; do
	name=$(basename "$s" .sh)
	echo "=== $name"
	start=$SECONDS
	bash "$s" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	out=$(tail -n 1 "$log")
	if [[ "$out" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
		passed=$((passed + BASH_REMATCH[1]))
		failed=$((failed + BASH_REMATCH[2]))
		{ [ "${BASH_REMATCH[2]}" -gt 0 ] || [ "$rc" -ne 0 ]; } && broken+=("$name")
	else
		failed=$((failed + 1))
		broken+=("$name")
	fi
	echo "--- $name: $out ($((SECONDS - start)) s)"
done

echo
[ ${#broken[@]} -gt 0 ] && echo "suites with failures: ${broken[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#broken[@]} -eq 0 ]
