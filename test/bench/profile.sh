#!/usr/bin/env bash
# Instruction profile of apikey.verify (valgrind --tool=callgrind counts
# instructions repeatably; this machine's perf has no hardware counters).
#
#   bash test/bench/profile.sh [KEYS]      (default 20000 keys; ~2 min)
#
# Builds a throwaway cluster with KEYS keys, stops it, and runs one
# single-user backend under callgrind on this statement sequence, one dump
# per statement (--dump-before=PortalRun):
#   1 warm-up verify loop   2 measured verify loop   3 bare loop
#   4 garbage loop (bad checksums)   5 SELECT 1
# and prints instructions per verification with the inclusive breakdown.
# Leaves the callgrind files in the printed directory.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
N=${1:-20000}

bash "$REPO/test/deps.sh" --minimal >&2
command -v valgrind >/dev/null || { apt-get install -y -q valgrind >/dev/null; }
build_and_install

W=$(scratch_dir profile)
run_as_pg initdb -D "$W/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
run_as_pg pg_ctl -D "$W/data" -l "$W/server.log" -w \
	-o "-c listen_addresses='' -c unix_socket_directories='$W' -c fsync=off -c shared_buffers=256MB" start >/dev/null
P() { run_as_pg psql -h "$W" -U postgres -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
P -c "CREATE EXTENSION apikey CASCADE" >/dev/null
P -v tenants=120 -f "$REPO/test/bench/setup.sql" >/dev/null
P -c "INSERT INTO bench.created (k) SELECT (apikey.create_key('t' || (1 + g % 120),
        CASE WHEN g % 2 = 0 THEN 'production' ELSE 'preview' END, 'k' || g)).api_key
      FROM generate_series(1, $N) g" >/dev/null
P <<'SQL' >/dev/null
CREATE TABLE bench.akeys AS SELECT (row_number() OVER (ORDER BY random()))::int AS id, k FROM bench.created;
CREATE TABLE bench.g_checksum AS SELECT id,
  left(k, -1) || CASE WHEN right(k, 1) = 'A' THEN 'B' ELSE 'A' END AS k FROM bench.akeys;
VACUUM ANALYZE;
SQL
run_as_pg pg_ctl -D "$W/data" -w stop >/dev/null

cd "$W"
run_as_pg valgrind --tool=callgrind --dump-before=PortalRun \
	--callgrind-out-file="$W/cg.out" \
	"$PGBIN/postgres" --single -D "$W/data" -c shared_buffers=256MB postgres \
	>"$W/single.out" 2>"$W/valgrind.err" <<SQL
SELECT count(*) FROM bench.akeys WHERE id <= $((N / 10)) AND (apikey.verify(k)).valid
SELECT count(*) FROM bench.akeys WHERE (apikey.verify(k)).valid
SELECT count(length(k)) FROM bench.akeys
SELECT count(*) FROM bench.g_checksum WHERE (apikey.verify(k)).valid
SELECT 1
SQL

# dumps are cg.out.1 .. : .1 is before statement 1 (startup), .2 holds
# statement 1, .3 statement 2, and so on
total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'; }
ver=$(total "$W/cg.out.3") bare=$(total "$W/cg.out.4") garb=$(total "$W/cg.out.5")
echo "callgrind, $N keys, instructions per row (whole statement):"
echo "  verify loop:  $((ver / N))"
echo "  bare loop:    $((bare / N))   (count(length(k)): scan + aggregate)"
echo "  garbage loop: $((garb / N))   (bad checksums)"
echo "  => verify ~$(((ver - bare) / N)), garbage rejection ~$(((garb - bare) / N)) instructions net of the loop"
echo
echo "inclusive instructions per verification (measured loop, top entries):"
callgrind_annotate --inclusive=yes "$W/cg.out.3" 2>/dev/null |
	awk -v n="$N" '/^ *[0-9,]+ / { c = $1; gsub(",", "", c); if (c / n >= 5) { $1 = ""; printf "%8.0f %s\n", c / n, $0 } }' | head -n 60
echo
echo "self instructions per verification (top entries):"
callgrind_annotate "$W/cg.out.3" 2>/dev/null |
	awk -v n="$N" '/^ *[0-9,]+ / { c = $1; gsub(",", "", c); if (c / n >= 5) { $1 = ""; printf "%8.0f %s\n", c / n, $0 } }' | head -n 40
echo
echo "callgrind files: $W/cg.out.* (callgrind_annotate --inclusive=yes FILE)"
