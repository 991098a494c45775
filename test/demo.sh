#!/usr/bin/env bash
# The apikey demo on a throwaway local cluster:  bash test/demo.sh
# Installs what is missing, builds and installs the extension, starts a
# temporary PostgreSQL as an unprivileged user, runs test/demo.sql, and
# removes the cluster again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
stage_readable "$0" "$@"

bash "$REPO/test/deps.sh" --minimal
build_and_install

work=$(scratch_dir demo)
cleanup() {
	run_as_pg pg_ctl -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

run_as_pg initdb -D "$work/data" -A trust -U postgres >/dev/null
run_as_pg pg_ctl -D "$work/data" -l "$work/log" -w \
	-o "-c listen_addresses='' -c unix_socket_directories='$work' -c shared_preload_libraries=apikey" start >/dev/null
run_as_pg psql -h "$work" -U postgres -X -q -c 'CREATE EXTENSION apikey' postgres
cp "$REPO/test/demo.sql" "$work/demo.sql"
run_as_pg psql -h "$work" -U postgres -X -q -f "$work/demo.sql" postgres
echo
echo "(the statements behind this output: test/demo.sql)"
