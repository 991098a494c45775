#!/usr/bin/env bash
# Packaging: `make dist` writes apikey-<version>.zip from the last commit;
# the archive holds the control file, META.json (valid PGXN metadata whose
# versions are the control file's default_version), the sources, the
# released scripts, LICENSE and CHANGELOG, the Debian packaging (debian/,
# built and installed by 17-deb) of the same version, and nothing built or
# left by a test run (test/packaging/check_dist.py); and the extension
# builds from the unpacked archive alone, without a warning.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

PY=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/apikey-packaging.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }

version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$REPO/apikey.control")
zip="$work/apikey-$version.zip"
if make -C "$REPO" -s dist PG_CONFIG="$PGBIN/pg_config" DIST_DIR="$work" >"$work/dist.log" 2>&1 &&
	[ -f "$zip" ]; then
	ok "make dist wrote apikey-$version.zip"
else
	bad "make dist did not write apikey-$version.zip: $(cat "$work/dist.log")"
	echo "$passed passed, $failed failed"
	exit 1
fi

"$PY" "$REPO/test/packaging/check_dist.py" "$zip" >"$work/checks" 2>&1
rc=$?
cat "$work/checks"
passed=$((passed + $(grep -c '^ok ' "$work/checks")))
failed=$((failed + $(grep -c '^FAIL ' "$work/checks")))
if ! grep -Eq '^(ok|FAIL) ' "$work/checks"; then
	bad "check_dist.py checked nothing"
elif [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$work/checks"; then
	bad "check_dist.py stopped (exit $rc)"
fi

# the unpacked archive alone is enough to build the extension
mkdir "$work/unpacked"
if (cd "$work/unpacked" && unzip -q "$zip") &&
	make -C "$work/unpacked/apikey-$version" PG_CONFIG="$PGBIN/pg_config" >"$work/build.log" 2>&1 &&
	[ -f "$work/unpacked/apikey-$version/apikey.so" ] &&
	[ -f "$work/unpacked/apikey-$version/sql/apikey--$version.sql" ]; then
	if grep -q 'warning:' "$work/build.log"; then
		bad "the archive builds, with warnings: $(grep 'warning:' "$work/build.log" | head -3)"
	else
		ok "the unpacked archive builds apikey.so and sql/apikey--$version.sql without a warning"
	fi
else
	bad "the unpacked archive does not build: $(grep -E 'error|\*\*\*' "$work/build.log" | tail -3)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
