#!/usr/bin/env bash
# The apikey benchmark: apikey beside API keys written by hand (the baseline,
# test/bench/baseline.sql: pgcrypto and PL/pgSQL), measured in one run on a
# throwaway cluster configured as the README recommends
# (shared_preload_libraries = 'apikey', last-used tracking on), printed as
# markdown tables on stdout.
#
#   bash test/bench/bench.sh            full run (100k keys, growth to 1M; about 10 minutes)
#   bash test/bench/bench.sh --quick    smoke run (10k keys, growth to 50k; about a minute)
#   options: --out FILE      also write the tables to FILE
#            --targets FILE  also write the developers' target checks to FILE
#            --peer DIR      compare with DIR/peer.sql too (default: ../shared/bench
#                            beside the repository, when it is there); --no-peer: don't
#            --keep          leave the cluster's directory behind
#            --no-instructions  skip the instruction counts (test/bench/instructions.sh,
#                            run after the timed tables when valgrind is installed)
#            --features-sql FILE  run FILE in the benchmark's databases before
#                            table 8's rows look for their functions (to try those
#                            rows against a prototype)
#
# The tables go to stdout; progress and the developers' target checks (the
# project's own goals, not part of the product's figures) go to stderr.
#
# How it measures (printed with the tables too):
# - inside the server: one statement loops over N key texts held in a table
#   in random order, timed in the server by clock_timestamp() around EXECUTE
#   (bench.run in setup.sql), nothing subtracted; "cold" is a fresh backend
#   that has verified none of the keys, "seen" the same loop again in the
#   backend that just verified them all;
# - as the application sees it: pgbench -M prepared, 2 clients, each
#   statement its own autocommit transaction; µs per committed statement
#   (from the throughput);
# - every figure is the median of R rounds; within a round all setups
#   alternate, in an order reversed every other round, so drift cancels.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
stage_readable "$0" "$@"
BENCH_DIR="$REPO/test/bench"

QUICK=0 KEEP=0 INSTRUCTIONS=1 OUT= TARGETS= FEATURES_SQL= PEER_DIR="$APIKEY_ORIGIN/../shared/bench" PEER_WANTED=auto
while [ $# -gt 0 ]; do
	case "$1" in
		--quick) QUICK=1 ;;
		--keep) KEEP=1 ;;
		--out) OUT=$2; shift ;;
		--targets) TARGETS=$2; shift ;;
		--peer) PEER_DIR=$2; PEER_WANTED=yes; shift ;;
		--no-peer) PEER_WANTED=no ;;
		--no-instructions) INSTRUCTIONS=0 ;;
		--features-sql) FEATURES_SQL=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift ;;
		-h|--help) sed -n '2,22p' "$0"; exit 0 ;;
		*) echo "bench: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

PEER=0
if [ $PEER_WANTED != no ] && [ -f "$PEER_DIR/peer.sql" ] && [ -f "$PEER_DIR/peer-load.sql" ]; then
	PEER=1
	PEER_DIR=$(cd "$PEER_DIR" && pwd)
elif [ $PEER_WANTED = yes ]; then
	echo "bench: --peer $PEER_DIR: peer.sql or peer-load.sql not found there" >&2
	exit 2
fi

if [ $QUICK -eq 1 ]; then
	N=10000 GROW=50000 ROUNDS=3 PGB_T=1 RLS_ROWS=100000 CREATE_N=1000 SHARED_BUFFERS=256MB
else
	# 1M keys of each setup, the key texts the loops read and the samples
	# must stay in the buffer pool, or growth measures page-cache reads
	N=100000 GROW=1000000 ROUNDS=5 PGB_T=4 RLS_ROWS=1000000 CREATE_N=20000 SHARED_BUFFERS=2GB
fi
SHARED_BUFFERS=${BENCH_SHARED_BUFFERS:-$SHARED_BUFFERS}
TENANTS=120 CLIENTS=2
STARTED=$SECONDS
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

bash "$REPO/test/deps.sh" --minimal >&2
build_and_install || die "build failed"

W=$(scratch_dir bench)
# the peer's files, where the server's user can read them
if [ $PEER -eq 1 ]; then
	mkdir "$W/peer"
	cp "$PEER_DIR/peer.sql" "$PEER_DIR/peer-load.sql" "$W/peer/"
	chmod -R a+rX "$W/peer"
	PEER_SHOWN=$PEER_DIR/peer.sql PEER_DIR=$W/peer
fi
cleanup() {
	run_as_pg pg_ctl -D "$W/data" -m immediate stop >/dev/null 2>&1 || true
	if [ $KEEP -eq 0 ]; then rm -rf "$W"; else log "kept $W"; fi
}
trap cleanup EXIT

# The README's recommended setup; beside it only what a benchmark needs: a
# buffer pool that holds every key, and loops that stay in one process.
# (apikey.rate_limit_buckets: room for the rate-limited keys of table 8,
# each verified within its window)
SETTINGS="-c listen_addresses='' -c unix_socket_directories='$W'
 -c shared_preload_libraries=apikey -c shared_buffers=$SHARED_BUFFERS
 -c max_parallel_workers_per_gather=0 -c max_wal_size=4GB
 -c apikey.rate_limit_buckets=262144"
# (pg_ctl hands -o to a shell: one line, or the rest is lost)
start_server() {
	run_as_pg pg_ctl -D "$W/data" -l "$W/server.log" -w -o "$(echo $SETTINGS)" start >/dev/null
}
log "cluster in $W (shared_buffers=$SHARED_BUFFERS)"
run_as_pg initdb -D "$W/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
start_server

psqlb() { run_as_pg psql -h "$W" -U postgres -X -q -v ON_ERROR_STOP=1 -d bench "$@"; }
# psqlo OPTIONS ...: the same with PGOPTIONS (settings of that session)
psqlo() { local o=$1; shift; run_as_pg env PGOPTIONS="$o" psql -h "$W" -U postgres -X -q -v ON_ERROR_STOP=1 -d "${DB:-bench}" "$@"; }
run_as_pg createdb -h "$W" -U postgres bench
# the settings are in force
[ "$(psqlb -At -c "SELECT current_setting('shared_preload_libraries') || ' ' || current_setting('shared_buffers')")" = \
	"apikey $SHARED_BUFFERS" ] || die "the server did not take the settings: $SETTINGS"

# ---------------------------------------------------------------- loading
log "loading apikey, the baseline$([ $PEER -eq 1 ] && echo ", the peer") and $N keys each"
psqlb -c "CREATE EXTENSION apikey CASCADE" -c "CREATE EXTENSION pg_buffercache" >/dev/null
psqlb -f "$BENCH_DIR/baseline.sql" >/dev/null
if [ $PEER -eq 1 ]; then
	psqlb -f "$PEER_DIR/peer.sql" >/dev/null 2>&1 || { psqlb -f "$PEER_DIR/peer.sql"; exit 1; }
fi
psqlb -v tenants=$TENANTS -f "$BENCH_DIR/setup.sql" >/dev/null

# apikey keys through the public API, all in production
create_keys() { # from to
	psqlb -c "INSERT INTO bench.created (k)
		SELECT (apikey.create_key('t' || (1 + g % $TENANTS), 'production', 'bench key ' || g)).api_key
		  FROM generate_series($1, $2) g" >/dev/null
}
create_baseline() { # from to
	psqlb -v from="$1" -v to="$2" -v tenants=$TENANTS -f "$BENCH_DIR/baseline-load.sql" >/dev/null
}
create_peer() { # from to
	psqlb -c "INSERT INTO peer.plain SELECT g, peer.create_key(g % 1000, 'live')
	            FROM generate_series($1, $2) g" >/dev/null
}
t0=$SECONDS; create_keys 1 $N; log "  apikey: $N keys in $((SECONDS - t0)) s"
t0=$SECONDS; create_baseline 1 $N; log "  baseline: $N keys in $((SECONDS - t0)) s"
if [ $PEER -eq 1 ]; then t0=$SECONDS; create_peer 1 $N; log "  peer: $N keys in $((SECONDS - t0)) s"; fi

# The loops visit keys in random order (requests arrive in no order):
# akeys/bkeys/pkeys hold every key text, shuffled, ids 1..N.
shuffled() { # table source-query
	echo "CREATE TABLE $1 AS SELECT (row_number() OVER (ORDER BY random()))::int AS id, k FROM ($2) s;
	      ALTER TABLE $1 ADD PRIMARY KEY (id);"
}
{
	shuffled bench.akeys "SELECT k FROM bench.created"
	shuffled bench.bkeys "SELECT k FROM baseline.issued"
	[ $PEER -eq 1 ] && shuffled bench.pkeys "SELECT k FROM peer.plain"
	cat <<'SQL'
-- garbage: a valid key with its checksum broken, a truncated key, random text
CREATE TABLE bench.g_checksum AS SELECT id,
  left(k, -1) || CASE WHEN right(k, 1) = 'A' THEN 'B' ELSE 'A' END AS k FROM bench.akeys;
CREATE TABLE bench.g_length AS SELECT id, left(k, -3) AS k FROM bench.akeys;
CREATE TABLE bench.g_random AS SELECT id, md5(k) || md5(id::text) AS k FROM bench.akeys;
VACUUM ANALYZE;
SQL
} | psqlb >/dev/null

# Both implementations really check what they claim: statuses of a revoked,
# an expired, a wrong-environment and a deleted key (apikey) or a wrong
# secret (baseline), garbage.
check_statuses() {
	local got want="valid revoked expired wrong_environment not_found malformed"
	got=$(psqlb -At <<'SQL' | tr '\n' ' ' | sed 's/ $//'
BEGIN;
SELECT (apikey.verify(k, 'production')).status FROM bench.akeys WHERE id = 1;
SELECT apikey.revoke_key((apikey.verify(k)).key_id) FROM bench.akeys WHERE id = 2 \g /dev/null
SELECT (apikey.verify(k, 'production')).status FROM bench.akeys WHERE id = 2;
SELECT apikey.set_key_expiry((apikey.verify(k)).key_id, now() - interval '1 s') FROM bench.akeys WHERE id = 3 \g /dev/null
SELECT (apikey.verify(k, 'production')).status FROM bench.akeys WHERE id = 3;
SELECT (apikey.verify(k, 'preview')).status FROM bench.akeys WHERE id = 4;
SELECT key_id AS gone_id, api_key AS gone FROM apikey.create_key('t1', 'production', 'deleted') \gset
SELECT apikey.delete_key(:'gone_id') \g /dev/null
SELECT (apikey.verify(:'gone', 'production')).status;
SELECT (apikey.verify('ak_live_not a key', 'production')).status;
ROLLBACK;
BEGIN;
SELECT (baseline.verify_key(k, 'live')).status FROM bench.bkeys WHERE id = 1;
SELECT baseline.revoke_key(split_part(k, '_', 3)) FROM bench.bkeys WHERE id = 2 \g /dev/null
SELECT (baseline.verify_key(k, 'live')).status FROM bench.bkeys WHERE id = 2;
UPDATE baseline.api_keys SET expires_at = now() - interval '1 s'
 WHERE lookup = (SELECT split_part(k, '_', 3) FROM bench.bkeys WHERE id = 3);
SELECT (baseline.verify_key(k, 'live')).status FROM bench.bkeys WHERE id = 3;
SELECT (baseline.verify_key(k, 'test')).status FROM bench.bkeys WHERE id = 4;
SELECT (baseline.verify_key(left(k, -12) || right(k2, 12), 'live')).status
  FROM bench.bkeys, LATERAL (SELECT k AS k2 FROM bench.bkeys WHERE id = 6) c WHERE id = 5;
SELECT (baseline.verify_key('bk_live_not a key', 'live')).status;
ROLLBACK;
SQL
)
	[ "$got" = "$want $want" ] || die "statuses: expected '$want' twice (apikey, baseline), got '$got'"
}
check_statuses

# ------------------------------------------------------------ measuring
RES="$W/res"; mkdir -p "$RES"; chmod 777 "$RES"
declare -A Q E PRE OPT DBN

# measure LABEL: one timed run of Q[LABEL] in a fresh session of database
# DBN[LABEL] (default bench), after PRE[LABEL], with the settings OPT[LABEL];
# its ms appended to $RES/LABEL;
# the statement's count must be E[LABEL] ('-' = any)
measure() {
	local label=$1 out ms n pre=() DB=${DBN[$1]:-bench}
	[ -n "${PRE[$label]:-}" ] && pre=(-c "${PRE[$label]}")
	out=$(psqlo "${OPT[$label]:-}" -At -F' ' "${pre[@]}" \
		-c "SELECT ms, n FROM bench.run(\$bq\$${Q[$label]}\$bq\$)" | tail -n 1)
	ms=${out% *} n=${out#* }
	if [ "${E[$label]:--}" != - ] && [ "$n" != "${E[$label]}" ]; then
		die "$label: expected count ${E[$label]}, got $n: ${Q[$label]}"
	fi
	echo "$ms" >>"$RES/$label"
}
# median of a result file; "nan" (which the table check refuses) when empty
median() {
	[ -s "$RES/$1" ] || { echo nan; return; }
	sort -g "$RES/$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# round R's value of a result file
nth() { sed -n "${2}p" "$RES/$1"; }
# µs per operation of LABEL's median over COUNT operations
us() { awk -v ms="$(median "$1")" -v n="$2" 'BEGIN { if (ms == "nan") print "nan"; else printf "%.2f", ms * 1000 / n }'; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }

# round-robin over labels: odd rounds in the given order, even rounds reversed
run_rounds() { # rounds function label...
	local rounds=$1 fn=$2 r i
	shift 2
	local labels=("$@")
	for ((r = 1; r <= rounds; r++)); do
		if ((r % 2)); then
			for ((i = 0; i < ${#labels[@]}; i++)); do $fn "${labels[i]}"; done
		else
			for ((i = ${#labels[@]} - 1; i >= 0; i--)); do $fn "${labels[i]}"; done
		fi
	done
}

# --------------------------------------------------- server-side: labels
AV="apikey.verify(k, 'production')"
BV="baseline.verify_key(k, 'live')"
loop_labels() { # suffix akeys-table bkeys-table pkeys-table
	local s=$1
	Q[a_cold$s]="SELECT count(*) FROM $2 WHERE ($AV).valid"; E[a_cold$s]=$N
	Q[a_seen$s]=${Q[a_cold$s]}; E[a_seen$s]=$N; PRE[a_seen$s]=${Q[a_cold$s]}
	Q[a_bare$s]="SELECT count(length(k)) FROM $2"; E[a_bare$s]=$N
	Q[b_cold$s]="SELECT count(*) FROM $3 WHERE ($BV).valid"; E[b_cold$s]=$N
	Q[b_seen$s]=${Q[b_cold$s]}; E[b_seen$s]=$N; PRE[b_seen$s]=${Q[b_cold$s]}
	Q[b_bare$s]="SELECT count(length(k)) FROM $3"; E[b_bare$s]=$N
	SERVER_LABELS=(a_cold$s b_cold$s a_seen$s b_seen$s a_bare$s b_bare$s)
	if [ $PEER -eq 1 ]; then
		Q[p_cold$s]="SELECT count(peer.verify(k)) FROM $4"; E[p_cold$s]=$N
		Q[p_seen$s]=${Q[p_cold$s]}; E[p_seen$s]=$N; PRE[p_seen$s]=${Q[p_cold$s]}
		Q[p_bare$s]="SELECT count(length(k)) FROM $4"; E[p_bare$s]=$N
		SERVER_LABELS+=(p_cold$s p_seen$s p_bare$s)
	fi
}
loop_labels "" bench.akeys bench.bkeys bench.pkeys
# apikey variants: authenticate (in the environment of apikey.environment),
# and verify with last-used tracking off
Q[a_auth]="SELECT count(*) FROM bench.akeys WHERE (apikey.authenticate(k)).valid"; E[a_auth]=$N
OPT[a_auth]="-c apikey.environment=production"
Q[a_nt]=${Q[a_cold]}; E[a_nt]=$N; OPT[a_nt]="-c apikey.track_usage=off"
# seen, on a connection whose cache of verified keys holds every one of the
# N keys (the default apikey.key_cache_size holds fewer than 100k, so row
# 1.2 mostly measures keys the connection has forgotten again)
CACHE_ALL=$((N * 2))
Q[a_seenall]=${Q[a_cold]}; E[a_seenall]=$N; PRE[a_seenall]=${Q[a_cold]}
OPT[a_seenall]="-c apikey.key_cache_size=$CACHE_ALL"
SERVER_LABELS+=(a_auth a_nt a_seenall)
for g in checksum length random; do
	Q[g_$g]="SELECT count(*) FROM bench.g_$g WHERE ($AV).valid"; E[g_$g]=0
	Q[gb_$g]="SELECT count(length(k)) FROM bench.g_$g"; E[gb_$g]=$N
	SERVER_LABELS+=(g_$g gb_$g)
	# every garbage text is rejected as malformed, not merely not valid
	n=$(psqlb -At -c "SELECT count(*) FROM bench.g_$g WHERE ($AV).status = 'malformed'")
	[ "$n" = "$N" ] || die "g_$g: $n of $N rejected as malformed"
done

# ------------------------------------------ client-visible: pgbench scripts
# the key texts of both setups by row id, for scripts that bind a key text
psqlb -c "CREATE TABLE bench.pairs AS SELECT id, a.k AS ak, b.k AS bk FROM bench.akeys a JOIN bench.bkeys b USING (id)" \
	-c "ALTER TABLE bench.pairs ADD PRIMARY KEY (id)" -c "VACUUM ANALYZE bench.pairs" >/dev/null
PGB="$W/pgb"; mkdir -p "$PGB"
declare -A S_BODY S_OPT S_EXPECT
CLIENT_LABELS=()
# script NAME EXPECT OPTIONS BODY: a pgbench script (:i is a random row id)
# whose figure is µs per run of the script, from the throughput: 1e6 ×
# clients ÷ transactions per second.  (pgbench -r's per-statement latencies
# are not used: in PostgreSQL 15 they fall short of the round trip.)
# EXPECT: what psql prints running it for i = 1.
script() {
	S_EXPECT[$1]=$2 S_OPT[$1]=$3 S_BODY[$1]=$4
	CLIENT_LABELS+=("$1")
}
script c_triv_a '[0-9]+' "" "SELECT length(k) FROM bench.akeys WHERE id = :i;"
script c_a_scalar t "" "SELECT ($AV).valid FROM bench.akeys WHERE id = :i;"
script c_a_from t "" "SELECT v.valid FROM bench.akeys t, apikey.verify(t.k, 'production') v WHERE t.id = :i;"
script c_a_nt t "-c apikey.track_usage=off" "SELECT ($AV).valid FROM bench.akeys WHERE id = :i;"
script c_triv_b '[0-9]+' "" "SELECT length(k) FROM bench.bkeys WHERE id = :i;"
script c_b_scalar t "" "SELECT ($BV).valid FROM bench.bkeys WHERE id = :i;"
if [ $PEER -eq 1 ]; then
	script c_triv_p '[0-9]+' "" "SELECT length(k) FROM bench.pkeys WHERE id = :i;"
	script c_p_ver t "" "SELECT peer.verify(k) IS NOT NULL FROM bench.pkeys WHERE id = :i;"
fi
script t_triv '[0-9]+' "-c apikey.environment=production" "BEGIN;
SELECT length(k) FROM bench.akeys WHERE id = :i;
COMMIT;"
script t_auth t "-c apikey.environment=production" "BEGIN;
SELECT (apikey.authenticate(k)).valid FROM bench.akeys WHERE id = :i;
COMMIT;"
# the key text as a bound parameter: fetched by a first statement; the
# second statement's cost is the script's minus the fetch alone's
FETCH="SELECT ak, bk FROM bench.pairs WHERE id = :i \\gset"
script p_fetch "" "" "$FETCH"
script p_triv '[0-9]+' "" "$FETCH
SELECT length(:ak);"
script p_a_scalar t "" "$FETCH
SELECT (apikey.verify(:ak, 'production')).valid;"
script p_a_from t "" "$FETCH
SELECT v.valid FROM apikey.verify(:ak, 'production') v;"
script p_b_scalar t "" "$FETCH
SELECT (baseline.verify_key(:bk, 'live')).valid;"

write_script() { # name keys
	printf '\\set i random(1, %d)\n%s\n' "$2" "${S_BODY[$1]}" >"$PGB/$1.sql"
	chmod a+r "$PGB/$1.sql"
	# run it once with psql (which quotes :'ak' where pgbench binds :ak)
	local got
	got=$(printf '%s\n' "${S_BODY[$1]}" | sed "s/:\\([ab]k\\)\\b/:'\\1'/g" |
		psqlo "${S_OPT[$1]}" -At -v i=1 | tail -n 1)
	[[ "$got" =~ ^${S_EXPECT[$1]}$ ]] || die "script $1 printed '$got', expected ${S_EXPECT[$1]}"
}
# pgbench_run NAME: one run, its figure (µs) appended to $RES/NAME
pgbench_run() {
	local out fig
	out=$(run_as_pg env PGOPTIONS="${S_OPT[$1]}" pgbench -h "$W" -U postgres -n -M prepared \
		-c $CLIENTS -j $CLIENTS -T "$PGB_T" -f "$PGB/$1.sql" bench 2>&1) ||
		{ echo "$out" >&2; die "pgbench $1 failed"; }
	grep -q '^number of failed transactions: 0 ' <<<"$out" || { echo "$out" >&2; die "pgbench $1: failures"; }
	fig=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | awk -v c=$CLIENTS '{ printf "%.2f", 1e6 * c / $1 }')
	[ -n "$fig" ] || { echo "$out" >&2; die "pgbench $1: no figure"; }
	echo "$fig" >>"$RES/$1"
}

# ------------------------------------------------------ the 0.3 features
. "$BENCH_DIR/features.sh"

# ----------------------------------------------------- bookkeeping state
# state: key table updates (all, HOT) and the time, for the run's writes
stat_snapshot() {
	psqlb -At -F' ' -c "SELECT n_tup_upd, n_tup_hot_upd, extract(epoch FROM clock_timestamp()), n_tup_ins
	                      FROM pg_stat_user_tables WHERE relid = '$1'::regclass"
}
# wait until the last-used writer has written every pending use (or, if the
# extension does not say, for two of its intervals)
wait_for_writer() {
	local interval waited=0 state
	interval=$(psqlb -At -c "SELECT coalesce(extract(epoch FROM
		current_setting('apikey.usage_flush_interval', true)::interval)::int, 10)")
	while [ $waited -le $((interval * 3 + 5)) ]; do
		state=$(psqlb -At -c "SELECT apikey.usage_tracking()" 2>/dev/null || true)
		if [[ "$state" =~ ([0-9]+)\ keys\ pending ]]; then
			[ "${BASH_REMATCH[1]}" = 0 ] && { sleep 1; echo "$state"; return; }
		elif [ $waited -ge $((interval * 2)) ]; then
			echo "$state"; return
		fi
		sleep 1; waited=$((waited + 1))
	done
	echo "$state"
}
bytes_row() { psqlb -At -F' ' -c "SELECT heap, toast, indexes, total FROM bench.bytes_per_row('$1')"; }
# "heap / TOAST / indexes = total" of a bytes_row line
bytes_fmt() { awk '{ printf "%d / %d / %d = %d", $1, $2, $3, $4 }' <<<"$1"; }

KEY_TABLES=(apikey.keys baseline.api_keys)
[ $PEER -eq 1 ] && KEY_TABLES+=(peer.keys)
declare -A BYTES_BEFORE BYTES_AFTER BYTES_GROW STAT_BEFORE STAT_AFTER RESIDENT
for t in "${KEY_TABLES[@]}"; do
	BYTES_BEFORE[$t]=$(bytes_row $t)
	STAT_BEFORE[$t]=$(stat_snapshot $t)
done
# apikey keeps last_used_at in a narrow table of its own: rows inserted,
# updated and HOT-updated there during the run, and its size per row (a row
# per key used)
USAGE_BEFORE=$(stat_snapshot apikey.key_usage)
# the default size of the cache of verified keys, for the report
CACHE_DEFAULT=$(psqlb -At -c "SHOW apikey.key_cache_size")

# ------------------------------------------------------ server-side rounds
log "inside the server: $ROUNDS rounds over $N keys (${#SERVER_LABELS[@]} loops each)"
for l in a_cold b_cold; do measure "$l"; done; rm -f "$RES"/a_cold "$RES"/b_cold  # warm-up
run_rounds $ROUNDS measure "${SERVER_LABELS[@]}"

# the proof that garbage touches no table: a loop over text built in the
# query under EXPLAIN (ANALYZE, BUFFERS), on a connection that has verified
# a key and rejected a text before (so has its catalog entries, and knows
# whether any keys were imported: it looks once per connection): the
# shared buffers the execution touched (the top node's count; planning excluded).  The same
# loop over a valid key must show some, or this measurement sees nothing
# (with the cache of verified keys off: a key verified before is otherwise
# answered from backend memory, touching no buffer either).
SAMPLE=$(psqlb -At -c "SELECT k FROM bench.akeys WHERE id = 1")
explain_buffers() { # iterations text-expression status rows-expected [setting]
	local plan
	plan=$(psqlb -At -v k="$SAMPLE" <<SQL
${5:-}
SELECT (apikey.verify(:'k', 'production')).valid \\g /dev/null
SELECT (apikey.verify(md5('warm-up') || md5('warm-up'), 'production')).valid \\g /dev/null
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT count(*) FROM (SELECT generate_series(1, $1) AS g) s, LATERAL (VALUES $2) AS x(k)
 WHERE (apikey.verify(x.k, 'production')).status = '$3';
SQL
)
	# (from 18 EXPLAIN prints rows with two decimals: rows=1.00)
	grep -Eq '^Aggregate \(actual rows=1(\.00)? loops=1\)' <<<"$plan" || die "no plan: $plan"
	sed '/^Planning/,$d' <<<"$plan" | sed -n 's/.*Buffers: shared\(.*\)/\1/p' | sed -n 1p |
		grep -oE '[0-9]+' | awk '{ s += $1 } END { print s + 0 }'
	# every text had the status asked for (the rows under the aggregate)
	local rows
	rows=$(sed -n 's/^  ->  .* (actual rows=\([0-9]*\)\(\.00\)\{0,1\} .*/\1/p' <<<"$plan" | sed -n 1p)
	[ "$rows" = "$(($1 * $4))" ] || die "expected $(($1 * $4)) rows of status $3, got '$rows': $plan"
}
GARBAGE_BUFFERS=$(explain_buffers 100000 "
    (overlay(:'k' placing lpad(to_hex(g), 8, '0') from length(:'k') - 14 for 8)), -- bad checksum
    (left(:'k', -1 - g % 5)),                                                    -- wrong length
    (md5(g::text) || md5((-g)::text))                                            -- random text
  " malformed 3)
VALID_BUFFERS=$(explain_buffers 1000 "(:'k' || left(g::text, 0))" valid 1 "SET apikey.key_cache_size = 0;")
[ "$VALID_BUFFERS" -gt 0 ] || die "EXPLAIN shows no buffers even for valid keys"

# ------------------------------------------------------ client-visible rounds
log "as the application sees it: pgbench, $ROUNDS rounds of ${#CLIENT_LABELS[@]} scripts, ${PGB_T} s each"
for s in "${CLIENT_LABELS[@]}"; do write_script "$s" $N; done
pgbench_run c_a_scalar; pgbench_run c_b_scalar; rm -f "$RES"/c_a_scalar "$RES"/c_b_scalar  # warm-up
run_rounds $ROUNDS pgbench_run "${CLIENT_LABELS[@]}"

# ----------------------------------------------- identity in policies (RLS)
log "current_tenant_id() over $RLS_ROWS rows"
psqlb -c "CREATE TABLE bench.big AS SELECT g AS id, (1 + g % $TENANTS)::bigint AS tenant_id, g AS payload
           FROM generate_series(1, $RLS_ROWS) g" -c "VACUUM ANALYZE bench.big" >/dev/null
AUTH_TENANT=$(psqlb -At -c "SELECT ($AV).tenant_id FROM bench.akeys WHERE id = 1")
{
	echo "BEGIN;"
	echo "SET LOCAL apikey.environment = 'production';"
	echo "SELECT 'auth', (apikey.authenticate('$SAMPLE')).valid;"
	for ((r = 1; r <= ROUNDS; r++)); do
		h="SELECT 'helper', ms, n FROM bench.run('SELECT count(*) FROM bench.big WHERE tenant_id = apikey.current_tenant_id()');"
		i="SELECT 'once', ms, n FROM bench.run('SELECT count(*) FROM bench.big WHERE tenant_id = (SELECT apikey.current_tenant_id())');"
		c="SELECT 'const', ms, n FROM bench.run('SELECT count(*) FROM bench.big WHERE tenant_id = $AUTH_TENANT');"
		if ((r % 2)); then echo "$h"; echo "$i"; echo "$c"; else echo "$c"; echo "$i"; echo "$h"; fi
	done
	echo "COMMIT;"
} | psqlb -At -F' ' >"$W/rls.out"
grep -q '^auth t$' "$W/rls.out" || { cat "$W/rls.out" >&2; die "authenticate failed"; }
for x in helper once const; do awk -v x=$x '$1 == x { print $2 }' "$W/rls.out" >"$RES/rls_$x"; done
[ "$(awk '$1 != "auth" { print $3 }' "$W/rls.out" | sort -u | wc -l)" = 1 ] ||
	die "current_tenant_id() and the constant selected different rows"

# ------------------------------------------------- after the run: bookkeeping
log "waiting for the last-used writer"
WRITER_STATE=$(wait_for_writer)
for t in "${KEY_TABLES[@]}"; do
	STAT_AFTER[$t]=$(stat_snapshot $t)
	BYTES_AFTER[$t]=$(bytes_row $t)
done
USAGE_AFTER=$(stat_snapshot apikey.key_usage)
USAGE_BYTES=$(bytes_row apikey.key_usage | awk '{ print $4 }')

# ------------------------------------------------------------ backend memory
# one session: the contexts named after apikey and the whole backend, before
# any verification, after verifying the N keys once, and after a second pass
memory_of() { # verify-query
	psqlb -At -F' ' <<SQL
SELECT coalesce(sum(total_bytes) FILTER (WHERE name ILIKE '%apikey%' OR ident ILIKE '%apikey%'), 0),
       sum(total_bytes) FROM pg_backend_memory_contexts;
$1 \\g /dev/null
SELECT coalesce(sum(total_bytes) FILTER (WHERE name ILIKE '%apikey%' OR ident ILIKE '%apikey%'), 0),
       sum(total_bytes) FROM pg_backend_memory_contexts;
$1 \\g /dev/null
SELECT coalesce(sum(total_bytes) FILTER (WHERE name ILIKE '%apikey%' OR ident ILIKE '%apikey%'), 0),
       sum(total_bytes) FROM pg_backend_memory_contexts;
SQL
}
mapfile -t MEM_A < <(memory_of "${Q[a_cold]}")
mapfile -t MEM_B < <(memory_of "${Q[b_cold]}")
MEM_CONTEXTS=$(psqlb -At <<SQL
${Q[a_cold]} \\g /dev/null
SELECT string_agg(format('%s%s: %s bytes', name, coalesce(' (' || ident || ')', ''), total_bytes), '; ')
  FROM pg_backend_memory_contexts WHERE name ILIKE '%apikey%' OR ident ILIKE '%apikey%';
SQL
)

# ---------------------------------------------------------------- creation
log "creation: $CREATE_N keys per round, $ROUNDS rounds (rolled back)"
measure_rollback() {
	psqlb -At -c "BEGIN" -c "SELECT ms FROM bench.run(\$bq\$${Q[$1]}\$bq\$)" -c "ROLLBACK" >>"$RES/$1"
}
Q[k_a]="SELECT count(*) FROM generate_series(1, $CREATE_N) g,
  LATERAL apikey.create_key('t' || (1 + g % $TENANTS), 'production', 'created ' || g) c"
Q[k_b]="SELECT count(baseline.create_key(1 + g % $TENANTS, 'live', 'created ' || g)) FROM generate_series(1, $CREATE_N) g"
CREATE_LABELS=(k_a k_b)
if [ $PEER -eq 1 ]; then
	Q[k_p]="SELECT count(peer.create_key(g % 1000, 'live')) FROM generate_series(1, $CREATE_N) g"
	CREATE_LABELS+=(k_p)
fi
run_rounds $ROUNDS measure_rollback "${CREATE_LABELS[@]}"

# ---------------------------------------------------------------- growth
log "growth to $GROW keys each"
t0=$SECONDS
for ((from = N + 1; from <= GROW; from += 100000)); do
	to=$((from + 99999)); [ $to -gt $GROW ] && to=$GROW
	create_keys $from $to
	create_baseline $from $to
	[ $PEER -eq 1 ] && create_peer $from $to
done
log "  $((GROW - N)) more keys each in $((SECONDS - t0)) s"
# N keys sampled from all of them, shuffled: the same loop length as before
{
	echo "VACUUM ANALYZE;"
	shuffled bench.akeys_g "SELECT k FROM bench.created ORDER BY random() LIMIT $N"
	shuffled bench.bkeys_g "SELECT k FROM baseline.issued ORDER BY random() LIMIT $N"
	[ $PEER -eq 1 ] && shuffled bench.pkeys_g "SELECT k FROM peer.plain ORDER BY random() LIMIT $N"
	echo "VACUUM ANALYZE;"
} | psqlb >/dev/null
loop_labels _g bench.akeys_g bench.bkeys_g bench.pkeys_g
for l in a_cold_g b_cold_g; do measure "$l"; done; rm -f "$RES"/a_cold_g "$RES"/b_cold_g  # warm-up
[ $PEER -eq 1 ] && { measure p_cold_g; rm -f "$RES"/p_cold_g; }
for t in "${KEY_TABLES[@]}"; do
	BYTES_GROW[$t]=$(bytes_row $t)
	RESIDENT[$t]=$(psqlb -At -c "SELECT bench.resident_pct('$t')")
done
run_rounds $ROUNDS measure "${SERVER_LABELS[@]}"

# ------------------------------------------------------ the 0.3 features
features_run

# ------------------------------------ shared memory: with and without apikey
# (with apikey's settings at their defaults)
run_as_pg pg_ctl -D "$W/data" -w -m fast stop >/dev/null
SETTINGS=${SETTINGS/-c apikey.rate_limit_buckets=262144/}
start_server
SHMEM_WITH=$(psqlb -At -c "SELECT sum(allocated_size) FROM pg_shmem_allocations WHERE name IS NOT NULL")
run_as_pg pg_ctl -D "$W/data" -w -m fast stop >/dev/null
SETTINGS=${SETTINGS/-c shared_preload_libraries=apikey/}
start_server
SHMEM_WITHOUT=$(psqlb -At -c "SELECT sum(allocated_size) FROM pg_shmem_allocations WHERE name IS NOT NULL")

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
. "$BENCH_DIR/report.sh"
report >"$W/report.md"
# the backend's instructions per statement (callgrind), on a cluster of its
# own once this one is stopped
run_as_pg pg_ctl -D "$W/data" -w -m fast stop >/dev/null
if [ $INSTRUCTIONS -eq 1 ] && command -v valgrind >/dev/null; then
	log "instructions per statement under callgrind ($N keys)"
	if PGBIN="$PGBIN" PGVER="$PGVER" bash "$BENCH_DIR/instructions.sh" --no-build --keys "$N" --out "$W/instructions.md" >/dev/null; then
		{ echo; cat "$W/instructions.md"; } >>"$W/report.md"
	else
		log "the instruction counts failed"
	fi
elif [ $INSTRUCTIONS -eq 1 ]; then
	log "valgrind is not installed: no instruction counts (apt-get install valgrind)"
fi
cat "$W/report.md"
[ -n "$OUT" ] && cp "$W/report.md" "$OUT"
targets >"$W/targets.txt"
cat "$W/targets.txt" >&2
[ -n "$TARGETS" ] && cp "$W/targets.txt" "$TARGETS"
log "done in $((SECONDS - STARTED)) s"
exit 0
