#!/usr/bin/env bash
# Backend instructions per committed statement (valgrind's callgrind), the
# repeatable companion of the timed benchmark: wall-clock ratios on a small
# shared machine swing by tens of percent, instruction counts by well under
# one.  Run by bench.sh (make bench) after its timed tables; standalone:
#
#   bash test/bench/instructions.sh [--keys N] [--out FILE] [--keep]   (default 100000 keys;
#        --keep leaves the cluster and the callgrind files behind)
#
# How it counts: the postmaster runs under valgrind --tool=callgrind
# --trace-children=yes --collect-atstart=no --toggle-collect=PostgresMain,
# so only client backends' work counts (not the postmaster's, the
# checkpointer's or apikey's background workers').  Each statement form runs
# as pgbench -M prepared -c 1 with a fixed --random-seed twice, 500 and 2,500
# transactions; the difference of the two backends' totals divided by 2,000
# is the cost of one statement, without connection start-up and the first
# statements' planning.  Setup as in bench.sh: shared_preload_libraries =
# apikey, last-used tracking on, keys in random order.
#
# Under valgrind OpenSSL's SHA-256 takes its AVX2 path instead of the SHA
# extensions (about 1,850 instructions more per hash than natively on a CPU
# with them): every verification form counts one such hash.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
stage_readable "$0" "$@"
BENCH_DIR="$REPO/test/bench"

N=100000 OUT= SEED=20261207 BUILD=1 KEEP=0 ONLY=
while [ $# -gt 0 ]; do
	case "$1" in
		--keys) N=$2; shift ;;
		--out) OUT=$2; shift ;;
		--no-build) BUILD=0 ;;
		--keep) KEEP=1 ;;
		--only) ONLY=$2; shift ;;
		-h|--help) sed -n '2,21p' "$0"; exit 0 ;;
		*) echo "instructions: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
TENANTS=120
log() { echo "instructions: $*" >&2; }
die() { echo "instructions: $*" >&2; exit 1; }

command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
if [ $BUILD -eq 1 ]; then
	bash "$REPO/test/deps.sh" --minimal >&2
	build_and_install || die "build failed"
fi

W=$(scratch_dir instructions)
cleanup() {
	run_as_pg pg_ctl -D "$W/data" -m immediate stop >/dev/null 2>&1 || true
	if [ $KEEP -eq 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
SETTINGS=(-c listen_addresses= -c unix_socket_directories="$W"
	-c shared_preload_libraries=apikey -c shared_buffers=512MB
	-c max_parallel_workers_per_gather=0 -c autovacuum=off -c fsync=off)
run_as_pg initdb -D "$W/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
run_as_pg pg_ctl -D "$W/data" -l "$W/server.log" -w -o "${SETTINGS[*]}" start >/dev/null
P() { run_as_pg psql -h "$W" -U postgres -X -q -v ON_ERROR_STOP=1 -d bench "$@"; }
run_as_pg createdb -h "$W" -U postgres bench

log "loading apikey, the baseline and $N keys each"
P -c "CREATE EXTENSION apikey CASCADE" -c "CREATE EXTENSION pg_prewarm" >/dev/null
P -f "$BENCH_DIR/baseline.sql" >/dev/null
P -v tenants=$TENANTS -f "$BENCH_DIR/setup.sql" >/dev/null
P -c "INSERT INTO bench.created (k)
	SELECT (apikey.create_key('t' || (1 + g % $TENANTS), 'production', 'bench key ' || g)).api_key
	  FROM generate_series(1, $N) g" >/dev/null
P -v from=1 -v to="$N" -v tenants=$TENANTS -f "$BENCH_DIR/baseline-load.sql" >/dev/null
P >/dev/null <<'SQL'
CREATE TABLE bench.akeys AS SELECT (row_number() OVER (ORDER BY random()))::int AS id, k FROM bench.created;
ALTER TABLE bench.akeys ADD PRIMARY KEY (id);
CREATE TABLE bench.bkeys AS SELECT (row_number() OVER (ORDER BY random()))::int AS id, k FROM baseline.issued;
ALTER TABLE bench.bkeys ADD PRIMARY KEY (id);
VACUUM ANALYZE;
CHECKPOINT;
SQL
run_as_pg pg_ctl -D "$W/data" -w -m fast stop >/dev/null

# the postmaster under callgrind; one output file per process.  At start the
# event relay notes every key's row location (apikey.shared_key_locations):
# wait for it (its DEBUG1 line), so that cold means what it means on a
# server that runs: a key this connection has not verified, its row known.
CG="$W/cg"; mkdir "$CG"; chmod 777 "$CG"
start_server() {
	local i
	run_as_pg valgrind --tool=callgrind --trace-children=yes --collect-atstart=no \
		--toggle-collect=PostgresMain --callgrind-out-file="$CG/cg.%p" \
		"$PGBIN/postgres" -D "$W/data" "${SETTINGS[@]}" -c log_min_messages=debug1 "$@" >"$W/valgrind.log" 2>&1 &
	for ((i = 0; i < 300; i++)); do
		run_as_pg pg_isready -q -h "$W" -d bench && break
		sleep 1
	done
	run_as_pg pg_isready -q -h "$W" -d bench || { cat "$W/valgrind.log" >&2; die "the server did not start"; }
	PM=$(head -n 1 "$W/data/postmaster.pid")
	if [[ " $* " != *" apikey.shared_key_locations=0 "* ]]; then
		for ((i = 0; i < 600; i++)); do
			grep -q "noted the row locations of" "$W/valgrind.log" && break
			sleep 1
		done
		grep -q "noted the row locations of" "$W/valgrind.log" || die "the event relay did not note the keys' locations"
		log "  $(grep -o 'noted the row locations of [0-9]* keys' "$W/valgrind.log" | head -n 1)"
	fi
	# every page of the benchmark's tables and indexes in shared buffers, so
	# that no statement counted reads one (a count(*) can be an index-only
	# scan that leaves the heap unread; on a cluster with data checksums,
	# PostgreSQL 18's default, each page read adds its checksum, about
	# 2,000 instructions)
	P -c "SELECT count(pg_prewarm(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname IN ('apikey', 'baseline', 'bench') AND c.relkind IN ('r', 'i', 't', 'm')" >/dev/null
	sleep 2
	BASE_CHILDREN=$(children)
}
stop_server() {
	run_as_pg pg_ctl -D "$W/data" -w -m fast stop >/dev/null
	wait
}
children() { pgrep -P "$PM" | wc -l; }
log "starting the server under callgrind"
start_server

# instructions of the client backends that ran since marker file $1
backend_total() {
	local waited=0
	# every backend that ran has exited and written its file
	while [ "$(children)" -gt "$BASE_CHILDREN" ] && [ $waited -lt 600 ]; do
		sleep 0.5; waited=$((waited + 1))
	done
	find "$CG" -name 'cg.*' -newer "$1" -print0 |
		xargs -0 -r awk '/^totals:/ { s += $2 } END { print s + 0 }'
}
# count NAME RANGE BODY [OPTIONS]: instructions per statement of a pgbench
# script (OPTIONS: the sessions' PGOPTIONS)
declare -A PER
count() {
	local name=$1 range=$2 body=$3 options=${4:-} t
	if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then PER[$name]=1; return; fi
	local -a totals=()
	printf '\\set i random(1, %d)\n%s\n' "$range" "$body" >"$W/$name.sql"
	chmod a+r "$W/$name.sql"
	for t in 500 2500; do
		touch "$W/marker"; sleep 1
		run_as_pg env PGOPTIONS="$options" pgbench -h "$W" -U postgres -n -M prepared -c 1 -t $t --random-seed=$SEED \
			-f "$W/$name.sql" bench >"$W/$name.$t.out" 2>&1 ||
			{ cat "$W/$name.$t.out" >&2; die "pgbench $name failed"; }
		grep -q "number of transactions actually processed: $t/$t" "$W/$name.$t.out" ||
			{ cat "$W/$name.$t.out" >&2; die "pgbench $name: not all transactions"; }
		totals+=("$(backend_total "$W/marker")")
		# the run's files aside, for callgrind_annotate (--keep)
		mkdir "$CG/$name.$t"
		find "$CG" -maxdepth 1 -name 'cg.*' -newer "$W/marker" -exec mv {} "$CG/$name.$t/" \;
	done
	PER[$name]=$(awk -v a="${totals[0]}" -v b="${totals[1]}" 'BEGIN { printf "%.0f", (b - a) / 2000 }')
	log "  $name: ${PER[$name]} instructions per statement"
}

AV="apikey.verify(k, 'production')"
log "counting (pgbench -M prepared -c 1, 500 and 2500 statements each)"
count triv "$N" "SELECT length(k) FROM bench.akeys WHERE id = :i;"
# cold: keys this backend has not verified (2,500 drawn from N)
count scalar "$N" "SELECT ($AV).valid FROM bench.akeys WHERE id = :i;"
count from "$N" "SELECT v.valid FROM bench.akeys t, apikey.verify(t.k, 'production') v WHERE t.id = :i;"
count scalar_nt "$N" "SELECT ($AV).valid FROM bench.akeys WHERE id = :i;" "-c apikey.track_usage=off"
# cached: 50 keys, each verified again and again by the same backend
count triv_hot 50 "SELECT length(k) FROM bench.akeys WHERE id = :i;"
count scalar_hot 50 "SELECT ($AV).valid FROM bench.akeys WHERE id = :i;"
count baseline "$N" "SELECT (baseline.verify_key(k, 'live')).valid FROM bench.bkeys WHERE id = :i;"
count btriv "$N" "SELECT length(k) FROM bench.bkeys WHERE id = :i;"
# cold without shared row locations: the primary key index descended per key
log "restarting the server with apikey.shared_key_locations = 0"
stop_server
start_server -c apikey.shared_key_locations=0
count scalar_idx "$N" "SELECT ($AV).valid FROM bench.akeys WHERE id = :i;"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
	echo "### 9. Backend instructions per committed statement (callgrind)"
	echo
	echo "pgbench -M prepared -c 1, one statement per transaction, $N keys in random order; the difference of runs of"
	echo "2,500 and 500 statements ÷ 2,000 (repeatable within 0.2%). Under valgrind OpenSSL's SHA-256 takes its AVX2 path,"
	echo "not SHA-NI: about 1,850 instructions more per hash (one per verification) than natively."
	echo
	echo "| # | statement | instructions | × the trivial fetch |"
	echo "|---|---|---:|---:|"
	echo "| 9.1 | trivial fetch: \`SELECT length(k) FROM akeys WHERE id = :i\` | ${PER[triv]} | 1.00 |"
	echo "| 9.2 | select-list form, cold (a key this connection has not verified; its row location noted at the server's start, see 9.7): \`SELECT (apikey.verify(k, 'production')).valid FROM akeys WHERE id = :i\` | ${PER[scalar]} | $(ratio "${PER[scalar]}" "${PER[triv]}") |"
	echo "| 9.3 | FROM form, cold: \`SELECT v.valid FROM akeys t, apikey.verify(t.k, 'production') v WHERE t.id = :i\` | ${PER[from]} | $(ratio "${PER[from]}" "${PER[triv]}") |"
	echo "| 9.4 | select-list form, cold, with \`apikey.track_usage = off\` | ${PER[scalar_nt]} | $(ratio "${PER[scalar_nt]}" "${PER[triv]}") |"
	echo "| 9.5 | select-list form, cached (50 keys, each verified again by the same connection; × the trivial fetch over them) | ${PER[scalar_hot]} | $(ratio "${PER[scalar_hot]}" "${PER[triv_hot]}") |"
	echo "| 9.6 | baseline (pgcrypto + PL/pgSQL), select-list form (× the trivial fetch of its keys) | ${PER[baseline]} | $(ratio "${PER[baseline]}" "${PER[btriv]}") |"
	echo "| 9.7 | select-list form, cold, without shared row locations (\`apikey.shared_key_locations = 0\`: the primary key index descended for each key) | ${PER[scalar_idx]} | $(ratio "${PER[scalar_idx]}" "${PER[triv]}") |"
	echo
	echo "A cold verification adds $((PER[scalar] - PER[triv])) instructions to the trivial fetch ($((PER[scalar_idx] - PER[triv])) through the index), a cached one $((PER[scalar_hot] - PER[triv_hot])), the baseline's $((PER[baseline] - PER[btriv]))."
} >"$W/instructions.md"
cat "$W/instructions.md"
[ -n "$OUT" ] && cp "$W/instructions.md" "$OUT"
exit 0
