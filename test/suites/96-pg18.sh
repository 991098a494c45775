#!/usr/bin/env bash
# PostgreSQL 18 in a Debian chroot (sid): the
# build (a warning fails) and the suites that depend on the server version,
# as PGVER=18 bash test/run.sh runs them (see test/run.sh and test/chroot.sh).
# Creating the chroot the first time takes a few minutes more.
# timeout: 1500
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

run_in_chroot 18
