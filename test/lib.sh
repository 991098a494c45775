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
build_and_install() {
	(
		flock 9
		make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" >/dev/null &&
			$SUDO make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" install >/dev/null
	) 9>"${TMPDIR:-/tmp}/apikey-build.lock"
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
	n_ok=$(grep -Ec '^(test | +)[a-z_0-9]+ +\.\.\. ok' "$work/summary")
	n_bad=$(grep -Ec '^(test | +)[a-z_0-9]+ +\.\.\. FAILED' "$work/summary")
	[ $rc -ne 0 ] && [ "$n_bad" -eq 0 ] && n_bad=1
	n_bad=$((n_bad + n_missing))
	[ $rc -eq 0 ] && [ $n_missing -eq 0 ] && rm -rf "$work"
	echo "$n_ok passed, $n_bad failed"
}
