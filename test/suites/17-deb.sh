#!/usr/bin/env bash
# The Debian package: `dpkg-buildpackage -us -uc -b` on a copy of the work
# tree builds postgresql-15-apikey (debian/, pg_buildext), its build-time
# test included (debian/tests/regress on a throwaway cluster that preloads
# the packaged library), without a compiler warning; the package holds the
# library, the control file and every version's scripts, and depends on the
# server and the C libraries.  Then it is installed into a clean Debian 12
# chroot (test/chroot.sh's "deb" one: debootstrap minbase and postgresql-15
# from this machine's apt sources, kept in $APIKEY_CHROOTS/bookworm-deb and
# reused while its stamp matches and its package set is as created), where a cluster made by the
# postgres user preloads apikey, creates the extension, a tenant and a key
# that verifies (a wrong secret: not_found), and drops it; purging the
# package leaves none of its files and the chroot's packages as they were.
# Anything that cannot be fetched or installed is a failure, never a skip.
# timeout: 900
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

. "$REPO/test/chroot.sh"
chroot_select deb
root=$chroot_dir
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}

# the package is built for the versions this Debian 12 machine supports (15),
# and installed into a chroot of the same release
if [ "$PGVER" != 15 ]; then
	echo "skipped: the Debian package is built and installed for the host's PostgreSQL 15, not $PGVER"
	echo "0 passed, 0 failed"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "skipped: needs root (debootstrap, chroot, mount)"
	echo "0 passed, 0 failed"
	exit 0
fi

version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$REPO/apikey.control")
debversion=$(dpkg-parsechangelog -l "$REPO/debian/changelog" -S Version)
arch=$(dpkg --print-architecture)
deb=postgresql-$PGVER-apikey_${debversion}_$arch.deb
work=$(mktemp -d "${TMPDIR:-/tmp}/apikey-deb.XXXXXX")
chmod 755 "$work" # the build-time test's server runs as postgres

cleanup() {
	if [ -f "$root/var/tmp/apikey-deb-test/data/postmaster.pid" ]; then
		inroot runuser -u postgres -- pg_ctl -D /var/tmp/apikey-deb-test/data -m immediate stop >/dev/null 2>&1
	fi
	chroot_umount
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# --- the build ---------------------------------------------------------------

# the work tree as git sees it (committed or not), no build products
mkdir "$work/apikey-$version"
chroot_copy_worktree "$work/apikey-$version"
start=$SECONDS
(cd "$work/apikey-$version" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1
rc=$?
echo "# dpkg-buildpackage: $((SECONDS - start)) s, exit status $rc"
if [ $rc -eq 0 ] && [ -f "$work/$deb" ]; then
	ok "dpkg-buildpackage -us -uc -b builds $deb"
else
	bad "dpkg-buildpackage -us -uc -b (exit status $rc, $deb $([ -f "$work/$deb" ] || echo "missing")): $(grep -E 'error|Unmet|\*\*\*' "$work/build.log" | tail -5)"
	tail -n 40 "$work/build.log"
	finish
fi
if grep -q "^### End $PGVER installcheck ###\$" "$work/build.log" &&
	grep -Eq '^(test | +)package +\.\.\. ok|^ok 1 +- package' "$work/build.log"; then
	ok "the build-time test (debian/tests/regress) passed on PostgreSQL $PGVER"
else
	bad "the build-time test did not run or did not pass: $(grep -E '^### |package .*\.\.\.' "$work/build.log" | tail -4)"
fi
if grep -q 'warning:' "$work/build.log"; then
	bad "the package build warns: $(grep 'warning:' "$work/build.log" | head -3)"
else
	ok "the package build has no warning (compiler, dpkg, debhelper)"
fi

# what the package holds and needs
dpkg-deb -c "$work/$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$work/contents"
missing=()
for f in "/usr/lib/postgresql/$PGVER/lib/apikey.so" "/usr/share/postgresql/$PGVER/extension/apikey.control" \
	"/usr/share/postgresql/$PGVER/extension/apikey--$version.sql" \
	"/usr/share/doc/postgresql-$PGVER-apikey/copyright"; do
	grep -qx "$f" "$work/contents" || missing+=("$f")
done
for f in "$REPO"/sql/apikey--*.sql; do
	grep -qx "/usr/share/postgresql/$PGVER/extension/$(basename "$f")" "$work/contents" || missing+=("$(basename "$f")")
done
if [ ${#missing[@]} -eq 0 ]; then
	ok "the package holds apikey.so, apikey.control, the $version install script, every released and update script, the copyright"
else
	bad "the package lacks: ${missing[*]}"
fi
depends=$(dpkg-deb -f "$work/$deb" Depends)
if [[ "$depends" == *"postgresql-$PGVER"* && "$depends" == *libssl3* && "$depends" == *libc6* ]]; then
	ok "the package depends on postgresql-$PGVER, libssl3 and libc6 ($depends)"
else
	bad "the package's dependencies lack the server or a library: $depends"
fi

# --- the chroot --------------------------------------------------------------

# the server's programs first in PATH
inroot() { chroot_exec env PATH="/usr/lib/postgresql/$PGVER/bin:/usr/bin:/bin:/usr/sbin:/sbin" "$@"; }

# one user of the chroot at a time; a run stopped before its purge left the
# package behind
chroot_lock
if [ -f "$root/.apikey-stamp" ] && [ -n "$(inroot dpkg-query -W -f '${Status}' "postgresql-$PGVER-apikey" 2>/dev/null)" ]; then
	echo "# purging postgresql-$PGVER-apikey left by an earlier run"
	inroot dpkg --purge "postgresql-$PGVER-apikey" >/dev/null 2>&1
fi
start=$SECONDS
chroot_state=
if chroot_ensure >"$work/chroot.log" 2>&1; then
	cat "$work/chroot.log"
	ok "a clean $chroot_suite chroot with postgresql-$PGVER from this machine's apt sources ($chroot_state: $root)"
else
	cat "$work/chroot.log"
	bad "no $chroot_suite chroot: $(tail -n 1 "$work/chroot.log")"
	finish
fi
if ! chroot_mount >"$work/mount.log" 2>&1; then
	bad "cannot mount /proc and /dev/shm in the chroot (or it has no /dev/null): $(cat "$work/mount.log")"
	finish
fi

aspg() { inroot runuser -u postgres -- "$@"; }
t=/var/tmp/apikey-deb-test
psql_do() { aspg psql -X -A -t -q -v ON_ERROR_STOP=1 -h "$t" -d postgres "$@" 2>&1; }

rm -rf "${root:?}$t"
mkdir -p "$root$t"
cp "$work/$deb" "$root$t/"
chmod 755 "$root$t"
chmod 644 "$root$t/$deb"
if inroot apt-get install -y -q --no-install-recommends "$t/$deb" >"$work/install.log" 2>&1 &&
	[ "$(inroot dpkg-query -W -f '${Status}' "postgresql-$PGVER-apikey")" = "install ok installed" ]; then
	ok "apt-get installs $deb in the chroot"
else
	bad "apt-get install $deb in the chroot: $(tail -n 5 "$work/install.log")"
	finish
fi

inroot chown postgres: "$t"
if aspg initdb -D "$t/data" -A trust >"$work/initdb.log" 2>&1 &&
	aspg pg_ctl -D "$t/data" -l "$t/server.log" -w \
		-o "-c listen_addresses='' -k $t -c shared_preload_libraries=apikey" start >"$work/start.log" 2>&1; then
	ok "the postgres user makes a cluster that preloads apikey and starts it"
else
	bad "initdb or start as postgres: $(tail -n 3 "$work/initdb.log" "$work/start.log" "$root$t/server.log" 2>/dev/null)"
	finish
fi

out=$(psql_do -c "CREATE EXTENSION apikey" -c "SELECT extversion FROM pg_extension WHERE extname = 'apikey'")
if [ "$out" = "$version" ]; then
	ok "CREATE EXTENSION apikey installs version $version"
else
	bad "CREATE EXTENSION apikey: $out"
fi

out=$(psql_do <<'EOF'
SELECT apikey.create_tenant('deb-chroot') > 0;
SELECT api_key, key_id FROM apikey.create_key('deb-chroot', 'production', 'chroot test') \gset
SELECT valid, status, tenant, environment FROM apikey.verify(:'api_key');
-- rolled without a grace period, the old text holds a wrong secret for its key id
SELECT apikey.roll_key(:'key_id') IS NOT NULL;
SELECT valid, status, tenant FROM apikey.verify(:'api_key');
EOF
)
if [ "$(sed -n 2p <<<"$out")" = "t|valid|deb-chroot|production" ]; then
	ok "a tenant and a key: apikey.verify says valid, tenant deb-chroot, production"
else
	bad "the new key does not verify: $out"
fi
if [ "$(sed -n 4p <<<"$out")" = "f|not_found|" ]; then
	ok "a wrong secret of that key id: apikey.verify says not_found"
else
	bad "a wrong secret: $out"
fi

out=$(psql_do -c "DROP EXTENSION apikey" \
	-c "SELECT count(*) FROM pg_extension WHERE extname = 'apikey'" \
	-c "SELECT count(*) FROM pg_proc WHERE pronamespace = 'apikey'::regnamespace")
if [ "$out" = "$(printf '0\n0')" ]; then
	ok "DROP EXTENSION apikey leaves no apikey function"
else
	bad "DROP EXTENSION apikey: $out"
fi
aspg pg_ctl -D "$t/data" -m fast stop >/dev/null 2>&1

# purging the package leaves none of its files and the chroot as created
inroot dpkg-query -L "postgresql-$PGVER-apikey" >"$work/files" 2>/dev/null
inroot apt-get purge -y -q "postgresql-$PGVER-apikey" >"$work/purge.log" 2>&1
left=()
while read -r f; do
	[ -f "$root$f" ] && left+=("$f")
done <"$work/files"
rm -rf "${root:?}$t"
if [ ${#left[@]} -eq 0 ] && [ -s "$work/files" ] &&
	[ "$(inroot dpkg-query -W -f '${Package} ${Version}\n' | sort)" = "$(cat "$root/.apikey-packages")" ]; then
	ok "apt-get purge removes its $(grep -c . "$work/files") paths; the chroot's packages are as created"
else
	bad "after the purge: files left: ${left[*]:-none}; packages: $(diff <(inroot dpkg-query -W -f '${Package} ${Version}\n' | sort) "$root/.apikey-packages" | head -5)"
fi
echo "# chroot part: $((SECONDS - start)) s"
finish
