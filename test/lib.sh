# Shared by the test and demo scripts: where PostgreSQL is, how to build and
# install the extension, and how to run commands as an unprivileged user
# (PostgreSQL refuses to run as root).
PGVER=${PGVER:-15}
# PGBIN may point at another (relocated) installation of the same version
PGBIN=${PGBIN:-/usr/lib/postgresql/$PGVER/bin}
PGXS_DIR=$(cd "$PGBIN/.." && pwd)/lib/pgxs
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$PGBIN:$PATH

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# Clone anywhere.  The servers and tools the scripts start run as postgres,
# which cannot read a clone in a private directory (a home directory is mode
# 0700), nor files a umask of 077 made.  stage_readable "$0" "$@", called by
# the scripts a user runs (test/run.sh, test/demo.sh, test/bench/bench.sh)
# right after sourcing this file: when root and postgres cannot read the
# tree, copy it to a directory postgres can read, run the same script there
# with the same arguments, remove the copy and exit with the script's
# status.  APIKEY_ORIGIN is then the tree the user ran (beside which
# ../shared/bench may be).
APIKEY_ORIGIN=${APIKEY_ORIGIN:-$REPO}
stage_readable() {
	local script rel stage rc
	[ "$(id -u)" -eq 0 ] && [ -z "${APIKEY_STAGED:-}" ] || return 0
	script=$(realpath "$1")
	shift
	runuser -u postgres -- test -r "$script" -a -r "$REPO/Makefile" -a -x "$REPO/test" && return 0
	rel=${script#"$REPO"/}
	stage=$(mktemp -d /tmp/apikey-src.XXXXXX)
	chmod 755 "$stage"
	cp -a "$REPO/." "$stage/"
	chmod -R a+rX "$stage"
	echo "postgres cannot read $REPO: running a copy in $stage" >&2
	# from the copy's top, where a relative path a user gave (TAP_TESTS) still
	# means the same file, and the servers' users may stand
	(cd "$stage" && APIKEY_STAGED=1 APIKEY_ORIGIN=$REPO bash "$stage/$rel" "$@")
	rc=$?
	rm -rf "$stage"
	exit $rc
}

# run_as_pg CMD...: run as the unprivileged postgres user when we are root
run_as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- env PATH="$PATH" "$@"
	else
		"$@"
	fi
}

# Build and install, one at a time (several suites or sessions may ask).
# A compiler warning fails the build (the code is warning-free on every
# version it supports); the warnings are printed.
build_and_install() {
	(
		flock 9
		local out
		out=$(make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" 2>&1 >/dev/null) ||
			{ echo "$out"; exit 1; }
		if grep -q 'warning:' <<<"$out"; then
			echo "$out"
			echo "the build of apikey for $("$PGBIN/pg_config" --version) warns: a failure"
			exit 1
		fi
		$SUDO make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" install >/dev/null
	) 9>"${TMPDIR:-/tmp}/apikey-build.lock"
}

# regress_counts SUMMARY SCHEDULE: sets N_OK and N_BAD from the summary
# pg_regress or pg_isolation_regress printed.  Up to 15 it prints a line
# "test name ... ok" (or "... FAILED"; "     name ... ok" in a parallel
# group), from 16 TAP lines "ok 1 - name" and "not ok 1 - name" ("+" for a
# parallel group).  Every test the schedule names must have its line: fewer
# results than tests are counted as failures (a run that stopped early, or a
# format this function does not know, must not pass).
regress_counts() {
	local summary=$1 schedule=$2 want name='[a-z_0-9-]+'
	N_OK=$(grep -Ec "^(test | +)$name +\.\.\. ok|^ok +[0-9]+ +[-+] +$name" "$summary")
	N_BAD=$(grep -Ec "^(test | +)$name +\.\.\. FAILED|^not ok +[0-9]+ +[-+] +$name" "$summary")
	want=$(sed -n 's/^test: *//p' "$schedule" | wc -w)
	if [ $((N_OK + N_BAD)) -ne "$want" ]; then
		echo "$(basename "$schedule") names $want tests, the summary shows $((N_OK + N_BAD)) results"
		[ $((N_OK + N_BAD)) -lt "$want" ] && N_BAD=$((want - N_OK)) || N_BAD=$((N_BAD + 1))
	fi
}

# A scratch directory the unprivileged user owns.
scratch_dir() {
	local d
	d=$(mktemp -d "${TMPDIR:-/tmp}/apikey-$1.XXXXXX")
	[ "$(id -u)" -eq 0 ] && chown postgres: "$d"
	chmod 755 "$d"
	echo "$d"
}

# regress_suite NAME DIR SCHEDULE [FILE...]: pg_regress on a temporary
# instance over DIR/sql/*.sql and DIR/expected/*.out in the order of
# SCHEDULE (FILEs are copied beside the inputs; the file REGRESS_CONF names,
# if any, is added to the instance's postgresql.conf); prints the diffs of
# failures and closes with "N passed, M failed".  A test file that the
# schedule does not name is a failure: it would otherwise never run.  The
# extension's own scripts (sql/apikey--*.sql) are not test files.
regress_suite() {
	local name=$1 dir=$2 schedule=$3 work rc n_ok n_bad n_missing=0 f t conf=()
	shift 3
	work=$(scratch_dir "$name")
	cp -r "$dir/sql" "$dir/expected" "$work/"
	cp "$schedule" "$work/schedule"
	[ $# -gt 0 ] && cp "$@" "$work/sql/"
	[ -n "${REGRESS_CONF:-}" ] && conf=(--temp-config="$REGRESS_CONF")
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work"
	run_as_pg "$PGXS_DIR/src/test/regress/pg_regress" \
		--temp-instance="$work/instance" --bindir="$PGBIN" "${conf[@]}" \
		--inputdir="$work" --outputdir="$work" \
		--load-extension=pgcrypto --load-extension=apikey \
		--dbname="apikey_$name" --schedule="$work/schedule" | tee "$work/summary"
	rc=${PIPESTATUS[0]}
	[ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"
	for f in "$dir"/sql/*.sql; do
		t=$(basename "$f" .sql)
		case "$t" in apikey--*) continue ;; esac
		if ! grep -Eq "^test: (.* )?$t( |\$)" "$schedule"; then
			echo "test $t (sql/$t.sql) is not in $(basename "$schedule")"
			n_missing=$((n_missing + 1))
		fi
	done
	regress_counts "$work/summary" "$schedule"
	n_ok=$N_OK n_bad=$N_BAD
	[ $rc -ne 0 ] && [ "$n_bad" -eq 0 ] && n_bad=1
	n_bad=$((n_bad + n_missing))
	[ $rc -eq 0 ] && [ $n_missing -eq 0 ] && rm -rf "$work"
	echo "$n_ok passed, $n_bad failed"
}

# The versions tested in a Debian chroot (test/chroot.sh), and the suites run
# there by default.
CHROOT_VERSIONS="17 18 19"
CHROOT_SUITES="regress authz isolation tap"

# run_in_chroot PGVER [suite...]: the working tree copied into PGVER's chroot
# (created or reused), built there (a warning fails) and the suites run
# there as by test/run.sh; its last line is run.sh's "N passed, M failed".
run_in_chroot() {
	local ver=$1 dir dest rc
	shift
	[ "$(id -u)" -eq 0 ] || { echo "PostgreSQL $ver runs in a chroot: run as root"; echo "0 passed, 1 failed"; return 1; }
	dir=$(bash "$REPO/test/chroot.sh" dir "$ver") ||
		{ echo "FAILED: no chroot for PostgreSQL $ver"; echo "0 passed, 1 failed"; return 1; }
	dest=/build/apikey-$$
	bash "$REPO/test/chroot.sh" copy "$ver" "$dest" >/dev/null ||
		{ echo "FAILED: copying the tree into $dir"; echo "0 passed, 1 failed"; return 1; }
	echo "PostgreSQL $ver in the chroot $dir, the tree in $dest there"
	bash "$REPO/test/chroot.sh" run "$ver" env APIKEY_IN_CHROOT=1 PGVER="$ver" \
		bash "$dest/test/run.sh" "$@" | tee "$dir$dest.log"
	rc=${PIPESTATUS[0]}
	if [ "$rc" -eq 0 ]; then
		rm -rf --one-file-system "${dir:?}$dest" "$dir$dest.log"
	else
		# the count stays the last line
		echo "(the paths above are inside the chroot $dir)"
		tail -n 1 "$dir$dest.log"
	fi
	return "$rc"
}
