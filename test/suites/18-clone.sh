#!/usr/bin/env bash
# Clone anywhere: a clone in a private directory (mode 0700, as a home
# directory is) runs the README's commands as well as one under /tmp.  The
# servers and tools run as postgres, which cannot read there; the scripts
# then run a readable copy of the tree (stage_readable in test/lib.sh).
# From such a clone of the last commit, as root: the demo, and the test
# command with the regression, authorization and one TAP suite; each must
# pass with no permission error, and the copy must have been used.
# timeout: 420
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "skipped: run as $(id -un), not root: the servers run as this user, who can read the clone"
	echo "0 passed, 0 failed"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/apikey-clone.XXXXXX")
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }

home=$work/home
mkdir -m 700 "$home"
git clone -q "$APIKEY_ORIGIN" "$home/apikey" || bad "git clone into a 0700 directory"
cd "$home/apikey" || exit 1
# the nested runs are a user's: not told that they already run a copy
clone_env=(env -u APIKEY_STAGED -u APIKEY_ORIGIN -u TMPDIR)

if "${clone_env[@]}" bash test/demo.sh >"$work/demo.out" 2>&1; then ok "test/demo.sh from a 0700 clone"; else bad "test/demo.sh from a 0700 clone: $(tail -3 "$work/demo.out")"; fi
grep -q '^postgres cannot read .*: running a copy in ' "$work/demo.out" && ok "the demo ran a readable copy" ||
	bad "the demo did not say it ran a readable copy"

"${clone_env[@]}" TAP_TESTS=test/t/030_dump_restore.pl bash test/run.sh regress authz tap >"$work/run.out" 2>&1
rc=$?
last=$(tail -n 1 "$work/run.out")
if [ $rc -eq 0 ] && [[ "$last" =~ ^([0-9]+)\ passed,\ 0\ failed$ ]] && [ "${BASH_REMATCH[1]}" -gt 0 ]; then
	ok "bash test/run.sh regress authz tap from a 0700 clone: $last"
else
	bad "bash test/run.sh regress authz tap from a 0700 clone (exit $rc): $last"
	grep -E 'FAIL|failed|denied' "$work/run.out" | head -20
fi
grep -q '^postgres cannot read .*: running a copy in ' "$work/run.out" && ok "the test command ran a readable copy" ||
	bad "the test command did not say it ran a readable copy"
for f in "$work/demo.out" "$work/run.out"; do
	if grep -qi 'permission denied' "$f"; then bad "$(basename "$f"): a permission error"; grep -i 'permission denied' "$f" | head -3
	else ok "$(basename "$f"): no permission error"; fi
done
# the nested runs installed the last commit; put this tree's build back
cd "$REPO" && build_and_install || bad "reinstalling this tree's build"
[ "$failed" -eq 0 ] && rm -rf "$work"
echo "$passed passed, $failed failed"
