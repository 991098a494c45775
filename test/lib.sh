# Shared by the test and demo scripts: where PostgreSQL is, how to build and
# install the extension, and how to run commands as an unprivileged user
# (PostgreSQL refuses to run as root).
PGVER=${PGVER:-15}
PGBIN=/usr/lib/postgresql/$PGVER/bin
PGXS_DIR=/usr/lib/postgresql/$PGVER/lib/pgxs
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$PGBIN:$PATH

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

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
