#!/usr/bin/env bash
# What the README tells a new user to run works as it says.
#  - The demo (test/demo.sh): it completes (its queries after the first
#    section run as a key administrator and as the application, not as a
#    superuser, so it queries nothing an administrator could not), and its
#    output reads well: 80 columns, no empty one-cell results, intervals in
#    words, identify, expiry, revoke and an RLS query per tenant
#    (test/readme/check_demo.py).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

PY=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/apikey-readme.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
# count the ok/FAIL lines a helper printed
tally() {
	cat "$1"
	passed=$((passed + $(grep -c '^ok ' "$1")))
	failed=$((failed + $(grep -c '^FAIL ' "$1")))
	grep -Eq '^(ok|FAIL) ' "$1" || bad "$2 checked nothing"
}

echo "--- the demo"
if bash "$REPO/test/demo.sh" >"$work/demo.out" 2>&1; then
	ok "test/demo.sh runs to the end"
else
	bad "test/demo.sh failed: $(grep -E 'ERROR|FATAL' "$work/demo.out" | head -3)"
fi
"$PY" "$REPO/test/readme/check_demo.py" "$work/demo.out" >"$work/demo.checks" 2>&1
tally "$work/demo.checks" check_demo.py

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
