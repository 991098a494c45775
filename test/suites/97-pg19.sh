#!/usr/bin/env bash
# PostgreSQL 19 in a Debian chroot (sid, with postgresql-19, its -dev package
# and libpq from experimental): the
# build (a warning fails) and the suites that depend on the server version,
# as PGVER=19 bash test/run.sh runs them (see test/run.sh and test/chroot.sh).
# Creating the chroot the first time takes a few minutes more.
# timeout: 1500
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

run_in_chroot 19
