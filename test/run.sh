#!/usr/bin/env bash
# Every test suite of apikey, on throwaway clusters:  bash test/run.sh [suite...]
# Installs what is missing, builds and installs the extension, then runs each
# test/suites/*.sh (or the named ones) and closes with a table of the suites
# and "N passed, M failed", the sum of the suites' own counts, followed by
# what was skipped and why.
#
# The contract with a suite:
# - its last line is "N passed, M failed" and it exits non-zero on failure;
# - "0 passed, 0 failed" is accepted only from a suite that also printed a
#   line "skipped: <why>" (anything else that proves nothing is a failure);
# - it declares its time limit in a header line "# timeout: <seconds>"
#   (600 when it does not; SUITE_TIMEOUT=<seconds> overrides every limit,
#   e.g. for a long LOAD_SECONDS or FUZZ_SECONDS); a suite still running then
#   is stopped (TERM, then KILL) and counted as failed, and servers it left
#   behind are stopped.
# Each suite gets its own TMPDIR, kept when anything failed (the logs the
# suites point to are there).
#
# Other PostgreSQL versions: PGVER=17 bash test/run.sh [suite...] runs the
# suites in a Debian chroot with that version (17, 18 and 19; see
# test/chroot.sh), by default those that need nothing but the server: the
# regression files (10-regress, both orders), 20-authz, the isolation specs
# and the TAP tests.  The other suites use host tools (pgbouncer, Python and
# its drivers, curl, clang's fuzzer, the load and benchmark clients) and do
# not depend on the server version; they run on the host's 15 only.  The
# suites 95-pg17, 96-pg18 and 97-pg19 run exactly that for each version, so
# the full run (no arguments) covers 15 and the chroot matrix.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
stage_readable "$0" "$@"

if [ -z "${APIKEY_IN_CHROOT:-}" ] && [[ " $CHROOT_VERSIONS " == *" $PGVER "* ]]; then
	run_in_chroot "$PGVER" "$@"
	exit
fi

if [ -n "${APIKEY_IN_CHROOT:-}" ]; then
	# the chroot has what these need (test/chroot.sh installs it)
	[ $# -gt 0 ] || set -- $CHROOT_SUITES
else
	bash "$REPO/test/deps.sh" || exit 1
fi
build_and_install || { echo "build failed"; exit 1; }

if [ $# -gt 0 ]; then
	suites=()
	for name in "$@"; do suites+=("$REPO"/test/suites/*"$name"*.sh); done
else
	suites=("$REPO"/test/suites/*.sh)
fi

DEFAULT_TIMEOUT=600
suite_timeout() {
	local t
	[ -n "${SUITE_TIMEOUT:-}" ] && { echo "$SUITE_TIMEOUT"; return; }
	t=$(sed -n '1,30s/^# timeout: \([0-9][0-9]*\)\b.*/\1/p' "$1" | sed -n 1p)
	echo "${t:-$DEFAULT_TIMEOUT}"
}

# Stop what a suite that was stopped left running under its TMPDIR: servers
# (by their data directory) and pgbouncers (by their pid file).
sweep() {
	local pidfile pid
	while IFS= read -r pidfile; do
		run_as_pg pg_ctl -D "$(dirname "$pidfile")" -m immediate stop >/dev/null 2>&1
	done < <(find "$1" -name postmaster.pid 2>/dev/null)
	while IFS= read -r pidfile; do
		pid=$(cat "$pidfile" 2>/dev/null)
		[ -n "$pid" ] && kill "$pid" 2>/dev/null
	done < <(find "$1" -name pgbouncer.pid 2>/dev/null)
}

runtmp=$(mktemp -d "${TMPDIR:-/tmp}/apikey-run.XXXXXX")
chmod 755 "$runtmp"

# The chroots of the selected version suites (NN-pgVV) are created or
# checked in the background while the host's suites run (debootstrap and apt
# mostly wait on the mirror); each version's suite then waits for its own
# (test/chroot.sh locks it) and reports a failure to create it.
for s in "${suites[@]}"; do
	if [[ "$(basename "$s")" =~ ^[0-9]+-pg([0-9]+)\.sh$ ]]; then
		bash "$REPO/test/chroot.sh" dir "${BASH_REMATCH[1]}" \
			>"$runtmp/chroot-pg${BASH_REMATCH[1]}.log" 2>&1 &
	fi
done
log=$runtmp/suite.log
passed=0
failed=0
broken=()
skipped=()
table=()
for s in "${suites[@]}"; do
	name=$(basename "$s" .sh)
	limit=$(suite_timeout "$s")
	mkdir -p "$runtmp/$name"
	chmod 755 "$runtmp/$name"
	# the unprivileged user makes its own temporary files there too
	[ "$(id -u)" -eq 0 ] && chown postgres: "$runtmp/$name"
	echo "=== $name (time limit $limit s)"
	start=$SECONDS
	TMPDIR=$runtmp/$name timeout -k 30 "$limit" bash "$s" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	secs=$((SECONDS - start))
	out=$(tail -n 1 "$log")
	why=$(sed -n 's/^skipped: //p' "$log" | sed -n 1p)
	n_ok=0 n_bad=0 note=
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		sweep "$runtmp/$name"
		[[ "$out" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]] && n_ok=${BASH_REMATCH[1]}
		n_bad=1
		note="stopped after its time limit of $limit s"
		echo "$name: $note"
	elif [[ "$out" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
		n_ok=${BASH_REMATCH[1]}
		n_bad=${BASH_REMATCH[2]}
		if [ "$n_ok" -eq 0 ] && [ "$n_bad" -eq 0 ]; then
			if [ -n "$why" ] && [ "$rc" -eq 0 ]; then
				skipped+=("$name ($why)")
				note="skipped: $why"
			else
				n_bad=1
				note="proved nothing and gave no reason"
			fi
		elif [ "$rc" -ne 0 ] && [ "$n_bad" -eq 0 ]; then
			n_bad=1
			note="exit status $rc"
		fi
	else
		n_bad=1
		note="no final count (exit status $rc)"
	fi
	passed=$((passed + n_ok))
	failed=$((failed + n_bad))
	[ "$n_bad" -gt 0 ] && broken+=("$name")
	table+=("$(printf '%-16s %7d %7d %8d  %s' "$name" "$n_ok" "$n_bad" "$secs" "$note")")
	echo "--- $name: $n_ok passed, $n_bad failed ($secs s)${note:+; $note}"
done

wait
echo
printf '%-16s %7s %7s %8s  %s\n' suite passed failed seconds note
printf '%s\n' "${table[@]}"
echo
if [ ${#broken[@]} -gt 0 ]; then
	echo "suites with failures: ${broken[*]} (their files are in $runtmp)"
else
	rm -rf "$runtmp"
fi
skipnote=
if [ ${#skipped[@]} -gt 0 ]; then
	skipnote="; skipped: $(printf '%s, ' "${skipped[@]}")"
	skipnote=${skipnote%, }
fi
echo "$passed passed, $failed failed$skipnote"
[ "$failed" -eq 0 ] && [ ${#broken[@]} -eq 0 ]
