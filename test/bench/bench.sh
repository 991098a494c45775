#!/usr/bin/env bash
# The benchmark of issue 4: apikey side by side with the hand-written peer
# (../shared/bench/peer.sql: pgcrypto + PL/pgSQL), measured in one run on a
# throwaway cluster, printed as a markdown table with each target and whether
# it is met.
#
#   bash test/bench/bench.sh            full run (100k keys, growth to 1M; ~6-8 min)
#   bash test/bench/bench.sh --quick    smoke run (20k keys, growth to 100k; ~1-2 min)
#   options: --keep (leave the cluster's directory behind), --out FILE (also
#            write the table to FILE)
#
# How it measures (printed with the table too):
# - server-side figures are a loop inside one statement, timed in the server
#   by clock_timestamp() around EXECUTE (bench.run in setup.sql), nothing
#   subtracted; the bare loop over the same rows is reported for orientation;
# - each figure is the MEDIAN of R rounds, and within a round apikey and peer
#   statements alternate (the order reverses every round) so drift cancels;
# - client latency is pgbench -M prepared, 2 clients, per-statement latency
#   (-r) of the measured statement; the key text is fetched by a separate
#   statement of the same script (\gset) and passed to the measured one as a
#   bound parameter, so neither the verify nor the trivial statement pays a
#   lookup of its own.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

QUICK=0 KEEP=0 OUT=
while [ $# -gt 0 ]; do
	case "$1" in
		--quick) QUICK=1 ;;
		--keep) KEEP=1 ;;
		--out) OUT=$2; shift ;;
		-h|--help) sed -n '2,9p' "$0"; exit 0 ;;
		*) echo "bench: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

PEER_DIR="$REPO/../shared/bench"
for f in peer.sql peer-load.sql; do
	if [ ! -f "$PEER_DIR/$f" ]; then
		echo "bench: the peer is missing: $PEER_DIR/$f not found." >&2
		echo "bench: it lives in shared/bench beside the repository (see issue 4)." >&2
		exit 1
	fi
done

if [ $QUICK -eq 1 ]; then
	N=20000 GROW=100000 TENANTS=120 ROUNDS=3 PGB_T=2 PGB_ROUNDS=1 CREATE_N=2000 RLS_ROWS=200000
	SHARED_BUFFERS=256MB
else
	N=100000 GROW=1000000 TENANTS=120 ROUNDS=5 PGB_T=10 PGB_ROUNDS=3 CREATE_N=20000 RLS_ROWS=1000000
	# 1M apikey keys (~210 MB with indexes) plus 1M peer keys (~185 MB) must
	# stay in the buffer pool, or the growth figure measures page-cache reads
	SHARED_BUFFERS=1GB
fi
SHARED_BUFFERS=${BENCH_SHARED_BUFFERS:-$SHARED_BUFFERS}

log() { echo "bench: $*" >&2; }

bash "$REPO/test/deps.sh" --minimal >&2
build_and_install || { echo "bench: build failed" >&2; exit 1; }

W=$(scratch_dir bench)
PORT=5432
cleanup() {
	run_as_pg pg_ctl -D "$W/data" -m immediate stop >/dev/null 2>&1 || true
	if [ $KEEP -eq 0 ]; then rm -rf "$W"; else log "kept $W"; fi
}
trap cleanup EXIT

log "cluster in $W (shared_buffers=$SHARED_BUFFERS)"
run_as_pg initdb -D "$W/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
SETTINGS="-c listen_addresses='' -c unix_socket_directories='$W' -c port=$PORT
 -c shared_buffers=$SHARED_BUFFERS -c max_parallel_workers_per_gather=0
 -c fsync=off -c synchronous_commit=off -c full_page_writes=off
 -c max_wal_size=4GB -c checkpoint_timeout=30min -c autovacuum=off
 -c jit=off -c work_mem=64MB -c maintenance_work_mem=256MB
 -c shared_preload_libraries=apikey"
run_as_pg pg_ctl -D "$W/data" -l "$W/server.log" -w -o "$SETTINGS" start >/dev/null

psqlb() { run_as_pg psql -h "$W" -p $PORT -U postgres -X -q -v ON_ERROR_STOP=1 -d bench "$@"; }
run_as_pg createdb -h "$W" -p $PORT -U postgres bench

# ---------------------------------------------------------------- loading
log "loading the extension, the peer and $N keys each over $TENANTS tenants"
psqlb -c "CREATE EXTENSION apikey CASCADE" >/dev/null
psqlb -f "$PEER_DIR/peer.sql" >/dev/null 2>&1 || { psqlb -f "$PEER_DIR/peer.sql"; exit 1; }
psqlb -v tenants=$TENANTS -f "$REPO/test/bench/setup.sql" >/dev/null

# apikey keys through the public API, production and preview alternating
create_keys() { # from to
	psqlb -c "INSERT INTO bench.created (k)
		SELECT (apikey.create_key('t' || (1 + g % $TENANTS),
		        CASE WHEN g % 2 = 0 THEN 'production' ELSE 'preview' END,
		        'bench key ' || g)).api_key
		  FROM generate_series($1, $2) g" >/dev/null
}
t0=$SECONDS
create_keys 1 $N
log "  apikey: $N keys in $((SECONDS - t0)) s"
t0=$SECONDS
psqlb -v n=$N -f "$PEER_DIR/peer-load.sql" >/dev/null
log "  peer: $N keys in $((SECONDS - t0)) s"

# The loops visit keys in random order (requests arrive in no order), the
# same for both: akeys/pkeys hold every key text, shuffled, ids 1..N.
psqlb <<SQL >/dev/null
CREATE TABLE bench.akeys AS
  SELECT (row_number() OVER (ORDER BY random()))::int AS id, k FROM bench.created;
ALTER TABLE bench.akeys ADD PRIMARY KEY (id);
CREATE TABLE bench.pkeys AS
  SELECT (row_number() OVER (ORDER BY random()))::int AS id, k FROM peer.plain;
ALTER TABLE bench.pkeys ADD PRIMARY KEY (id);
-- garbage: a valid key with its checksum broken, a truncated key, random text
CREATE TABLE bench.g_checksum AS SELECT id,
  left(k, -1) || CASE WHEN right(k, 1) = 'A' THEN 'B' ELSE 'A' END AS k FROM bench.akeys;
CREATE TABLE bench.g_length AS SELECT id, left(k, -3) AS k FROM bench.akeys;
CREATE TABLE bench.g_random AS SELECT id, md5(k) || md5(id::text) AS k FROM bench.akeys;
VACUUM ANALYZE;
SQL

size_row() { # table -> "bytes_per_key|count"
	psqlb -At -c "SELECT round(pg_total_relation_size('$1') / count(*)::numeric), count(*) FROM $1"
}
A_BYTES_N=$(size_row apikey.keys | cut -d'|' -f1)
P_BYTES_N=$(size_row peer.keys | cut -d'|' -f1)

# ------------------------------------------------------------ measuring
RES="$W/res"; mkdir -p "$RES"; chmod 777 "$RES"
# measure LABEL EXPECTED_COUNT SQL: one timed run of SQL, its ms appended to
# $RES/LABEL; the statement's count must be EXPECTED_COUNT ('-' = any)
measure() {
	local label=$1 expect=$2 sql=$3 out ms n pre=()
	[ -n "${PRE[$label]:-}" ] && pre=(-c "${PRE[$label]}")
	out=$(psqlb -At -F' ' "${pre[@]}" -c "SELECT ms, n FROM bench.run(\$bq\$$sql\$bq\$)" | tail -n 1)
	ms=${out% *} n=${out#* }
	if [ "$expect" != - ] && [ "$n" != "$expect" ]; then
		echo "bench: $label: expected count $expect, got $n: $sql" >&2
		exit 1
	fi
	echo "$ms" >>"$RES/$label"
}
# measure_rollback: the same, inside a transaction that is rolled back
measure_rollback() {
	local label=$1 sql=$2 out
	out=$(psqlb -At -F' ' -c "BEGIN" -c "SELECT ms FROM bench.run(\$bq\$$sql\$bq\$)" -c "ROLLBACK")
	echo "$out" >>"$RES/$label"
}
median() { sort -g "$RES/$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# per-operation microseconds of LABEL's median over LOOP operations
us() { awk -v ms="$(median "$1")" -v n="$2" 'BEGIN { printf "%.3f", ms * 1000 / n }'; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
# is A <= B (numbers)?
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
verdict() { if le "$1" "$2"; then echo met; else echo "**NOT met**"; fi; }

# round-robin over labels: odd rounds in the given order, even rounds reversed
# (PRE[label]: a command run first in that label's session)
declare -A Q E PRE
run_rounds() { # rounds label...
	local rounds=$1 r i labels
	shift
	labels=("$@")
	for ((r = 1; r <= rounds; r++)); do
		if ((r % 2)); then
			for ((i = 0; i < ${#labels[@]}; i++)); do measure "${labels[i]}" "${E[${labels[i]}]}" "${Q[${labels[i]}]}"; done
		else
			for ((i = ${#labels[@]} - 1; i >= 0; i--)); do measure "${labels[i]}" "${E[${labels[i]}]}" "${Q[${labels[i]}]}"; done
		fi
	done
}

log "1. server-side verification, 3. garbage, 6. authenticate: $ROUNDS rounds"
Q[a_bare]="SELECT count(length(k)) FROM bench.akeys";                                E[a_bare]=$N
Q[a_ver]="SELECT count(*) FROM bench.akeys WHERE (apikey.verify(k)).valid";        E[a_ver]=$N
Q[a_lat]="SELECT count(*) FROM bench.akeys p, LATERAL apikey.verify(p.k) v WHERE v.valid"; E[a_lat]=$N
# the same loop with last_used_at tracking off (the cluster preloads apikey)
Q[a_vnt]="${Q[a_ver]}"; E[a_vnt]=$N; PRE[a_vnt]="SET apikey.track_usage = off"
# the same loop as a second pass in one session: the backend remembers where
# each key's row is (apikey.key_cache_size), as a pooled connection would
Q[a_warm]="${Q[a_ver]}"; E[a_warm]=$N
PRE[a_warm]="SELECT count(*) FROM bench.akeys WHERE (apikey.verify(k)).valid"
Q[a_auth]="SELECT count(*) FROM bench.akeys WHERE (apikey.authenticate(k)).valid"; E[a_auth]=$N
Q[p_bare]="SELECT count(length(k)) FROM bench.pkeys";                                E[p_bare]=$N
Q[p_ver]="SELECT count(peer.verify(k)) FROM bench.pkeys";                            E[p_ver]=$N
Q[p_sql]="SELECT count(peer.verify_sql(k)) FROM bench.pkeys";                        E[p_sql]=$N
for g in checksum length random; do
	Q[g_$g]="SELECT count(*) FROM bench.g_$g WHERE (apikey.verify(k)).valid";       E[g_$g]=0
	Q[gb_$g]="SELECT count(length(k)) FROM bench.g_$g";                             E[gb_$g]=$N
done
Q[pg_random]="SELECT count(peer.verify(k)) FROM bench.g_random";                    E[pg_random]=0
# every garbage key is rejected as malformed, not merely not valid
for g in checksum length random; do
	n=$(psqlb -At -c "SELECT count(*) FROM bench.g_$g WHERE (apikey.verify(k)).status = 'malformed'")
	[ "$n" = "$N" ] || { echo "bench: g_$g: $n of $N rejected as malformed" >&2; exit 1; }
done
# warm-up: one pass of each, not counted
for l in a_ver p_ver; do measure warm - "${Q[$l]}"; done
run_rounds $ROUNDS a_bare a_ver p_ver a_vnt a_warm a_lat p_sql p_bare a_auth \
	g_checksum gb_checksum g_length gb_length g_random gb_random pg_random

# the proof that garbage touches no table: a loop over text built in the
# query (no table), under EXPLAIN (ANALYZE, BUFFERS)
SAMPLE=$(psqlb -At -c "SELECT k FROM bench.akeys WHERE id = 1")
GARBAGE_EXPLAIN=$(psqlb -At -v k="$SAMPLE" <<'SQL'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT count(*) FROM (SELECT generate_series(1, 100000) AS g) s,
  LATERAL (VALUES
    (overlay(:'k' placing lpad(to_hex(g), 8, '0') from length(:'k') - 14 for 8)), -- bad checksum
    (left(:'k', -1 - g % 5)),                                                    -- wrong length
    (md5(g::text) || md5((-g)::text)))                                          -- random text
  AS x(k),
  LATERAL apikey.verify(x.k) v
 WHERE v.valid OR v.status <> 'malformed';
SQL
)
# the same loop over the valid key, for contrast
VALID_EXPLAIN=$(psqlb -At -v k="$SAMPLE" <<'SQL'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT count(*) FROM (SELECT generate_series(1, 1000) AS g) s,
  LATERAL apikey.verify(:'k' || left(g::text, 0)) v WHERE v.valid;
SQL
)
GARBAGE_BUFFERS=$(echo "$GARBAGE_EXPLAIN" | sed '/^Planning/,$d' | grep -c 'Buffers:' || true)

# ---------------------------------------------------------------- creation
log "4. creation throughput: $CREATE_N keys per round, $ROUNDS rounds (rolled back)"
for ((r = 1; r <= ROUNDS; r++)); do
	a="SELECT count(*) FROM generate_series(1, $CREATE_N) g,
	     LATERAL apikey.create_key('t' || (1 + g % $TENANTS), 'production', 'created ' || g) c"
	p="SELECT count(peer.create_key(g % 1000, 'live')) FROM generate_series(1, $CREATE_N) g"
	if ((r % 2)); then measure_rollback c_a "$a"; measure_rollback c_p "$p"
	else measure_rollback c_p "$p"; measure_rollback c_a "$a"; fi
done

# ---------------------------------------------------------------- pgbench
log "2. client latency: pgbench -M prepared, 2 clients, ${PGB_T} s per run, $PGB_ROUNDS rounds"
PGB="$W/pgb"; mkdir -p "$PGB"
for side in a p; do
	tbl=$([ $side = a ] && echo akeys || echo pkeys)
	head="\\set i random(1, $N)
SELECT k FROM bench.$tbl WHERE id = :i \\gset"
	printf '%s\nSELECT length(:k);\n' "$head" >"$PGB/${side}_triv.sql"
done
printf '%s\nSELECT valid, tenant_id FROM apikey.verify(:k);\n' "$(head -2 "$PGB/a_triv.sql")" >"$PGB/a_ver.sql"
printf '%s\nSELECT peer.verify(:k);\n' "$(head -2 "$PGB/p_triv.sql")" >"$PGB/p_ver.sql"
chmod -R a+rX "$PGB"
pgbench_run() { # script -> ms per measured statement (its -r line: the last)
	local out
	out=$(run_as_pg pgbench -h "$W" -p $PORT -U postgres -n -M prepared -c 2 -j 2 \
		-T "$PGB_T" -r -f "$PGB/$1.sql" bench 2>&1) || { echo "$out" >&2; exit 1; }
	echo "$out" | grep -E '^ +[0-9.]+ +[0-9]+ +SELECT' | tail -n 1 | awk '{ print $1 }' >>"$RES/b_$1"
}
pgbench_run a_ver >/dev/null; rm -f "$RES/b_a_ver"   # warm-up
for ((r = 1; r <= PGB_ROUNDS; r++)); do
	if ((r % 2)); then order="a_triv a_ver p_triv p_ver"; else order="p_ver p_triv a_ver a_triv"; fi
	for s in $order; do pgbench_run "$s"; done
done

# ---------------------------------------------------------------- RLS helpers
log "6. current_tenant_id() over $RLS_ROWS rows"
psqlb -c "CREATE TABLE bench.big AS SELECT g AS id, (1 + g % $TENANTS)::bigint AS tenant_id, g AS payload
           FROM generate_series(1, $RLS_ROWS) g" -c "VACUUM ANALYZE bench.big" >/dev/null
AUTH_TENANT=$(psqlb -At -c "SELECT (apikey.verify(k)).tenant_id FROM bench.akeys WHERE id = 1")
{
	echo "BEGIN;"
	echo "SELECT 'auth', (apikey.authenticate('$SAMPLE')).valid;"
	for ((r = 1; r <= ROUNDS; r++)); do
		h="SELECT 'helper', ms, n FROM bench.run('SELECT count(*) FROM bench.big WHERE tenant_id = apikey.current_tenant_id()');"
		i="SELECT 'once', ms, n FROM bench.run('SELECT count(*) FROM bench.big WHERE tenant_id = (SELECT apikey.current_tenant_id())');"
		c="SELECT 'const', ms, n FROM bench.run('SELECT count(*) FROM bench.big WHERE tenant_id = $AUTH_TENANT');"
		if ((r % 2)); then echo "$h"; echo "$i"; echo "$c"; else echo "$c"; echo "$i"; echo "$h"; fi
	done
	echo "COMMIT;"
} | psqlb -At -F' ' >"$W/rls.out"
grep -q '^auth t$' "$W/rls.out" || { echo "bench: authenticate failed" >&2; cat "$W/rls.out" >&2; exit 1; }
awk '$1 == "helper" { print $2 }' "$W/rls.out" >"$RES/rls_helper"
awk '$1 == "const" { print $2 }' "$W/rls.out" >"$RES/rls_const"
awk '$1 == "once" { print $2 }' "$W/rls.out" >"$RES/rls_once"
[ "$(awk '$1 != "auth" { print $3 }' "$W/rls.out" | sort -u | wc -l)" = 1 ] ||
	{ echo "bench: current_tenant_id() and the constant selected different rows" >&2; exit 1; }

# ---------------------------------------------------------------- growth
log "5. growth to $GROW keys each"
t0=$SECONDS
for ((from = N + 1; from <= GROW; from += 100000)); do
	to=$((from + 99999)); [ $to -gt $GROW ] && to=$GROW
	create_keys $from $to
done
log "  apikey: $((GROW - N)) more keys in $((SECONDS - t0)) s"
psqlb -c "INSERT INTO bench.pcreated (k) SELECT peer.create_key(g % 1000,
            CASE WHEN g % 2 = 0 THEN 'live' ELSE 'test' END) FROM generate_series($((N + 1)), $GROW) g" >/dev/null
psqlb <<SQL >/dev/null
VACUUM ANALYZE;
-- N keys sampled from all of them, shuffled: the same loop length as before
CREATE TABLE bench.akeys_big AS SELECT (row_number() OVER (ORDER BY random()))::int AS id, k
  FROM (SELECT k FROM bench.created ORDER BY random() LIMIT $N) s;
CREATE TABLE bench.pkeys_big AS SELECT (row_number() OVER (ORDER BY random()))::int AS id, k
  FROM (SELECT k FROM (SELECT k FROM peer.plain UNION ALL SELECT k FROM bench.pcreated) u
        ORDER BY random() LIMIT $N) s;
VACUUM ANALYZE bench.akeys_big, bench.pkeys_big;
SQL
A_BYTES_G=$(size_row apikey.keys | cut -d'|' -f1)
P_BYTES_G=$(size_row peer.keys | cut -d'|' -f1)
Q[A_ver]="SELECT count(*) FROM bench.akeys_big WHERE (apikey.verify(k)).valid"; E[A_ver]=$N
Q[P_ver]="SELECT count(peer.verify(k)) FROM bench.pkeys_big";                   E[P_ver]=$N
Q[A_bare]="SELECT count(length(k)) FROM bench.akeys_big";                       E[A_bare]=$N
for l in A_ver P_ver; do measure warm - "${Q[$l]}"; done
run_rounds $ROUNDS A_ver P_ver A_bare

# ---------------------------------------------------------------- report
human() { awk -v n="$1" 'BEGIN { if (n >= 1000000) printf "%gM", n / 1000000; else if (n >= 1000) printf "%gk", n / 1000; else print n }'; }
a_ver=$(us a_ver $N) p_ver=$(us p_ver $N) a_lat=$(us a_lat $N) p_sql=$(us p_sql $N)
a_vnt=$(us a_vnt $N) track_pct=$(calc "($(us a_ver $N) / $(us a_vnt $N) - 1) * 100" 1)
a_warm=$(us a_warm $N)
a_bare=$(us a_bare $N) p_bare=$(us p_bare $N) a_auth=$(us a_auth $N)
speedup=$(calc "$p_ver / $a_ver")
bt_a=$(median b_a_triv) bv_a=$(median b_a_ver) bt_p=$(median b_p_triv) bv_p=$(median b_p_ver)
br_a=$(calc "$bv_a / $bt_a") br_p=$(calc "$bv_p / $bt_p")
for g in checksum length random; do
	declare "gu_$g=$(us g_$g $N)" "gb_$g=$(us gb_$g $N)"
done
pg_random=$(us pg_random $N)
# rejection speed vs a valid verification: raw, and net of each one's bare loop
g_worst=$(printf '%s\n' "$gu_checksum" "$gu_length" "$gu_random" | sort -g | tail -n 1)
g_worst_net=$(for g in checksum length random; do
	calc "$(eval echo \$gu_$g) - $(eval echo \$gb_$g)" 3; echo; done | sort -g | tail -n 1)
g_ratio=$(calc "$a_ver / $g_worst" 1)
g_ratio_net=$(awk -v v="$a_ver" -v b="$a_bare" -v g="$g_worst_net" \
	'BEGIN { if (g < 0.001) g = 0.001; printf "%.1f", (v - b) / g }')
c_a=$(calc "$CREATE_N / ($(median c_a) / 1000)" 0) c_p=$(calc "$CREATE_N / ($(median c_p) / 1000)" 0)
A_ver=$(us A_ver $N) P_ver=$(us P_ver $N) A_bare=$(us A_bare $N)
growth=$(calc "$A_ver / $a_ver") pgrowth=$(calc "$P_ver / $p_ver")
rls_h=$(median rls_helper) rls_c=$(median rls_const)
rls_ratio=$(calc "$rls_h / $rls_c") rls_ns=$(calc "($rls_h - $rls_c) * 1000000 / $RLS_ROWS" 1)
rls_row_ns=$(calc "$rls_h * 1000000 / $RLS_ROWS" 1) rls_crow_ns=$(calc "$rls_c * 1000000 / $RLS_ROWS" 1)
rls_o=$(median rls_once) rls_oratio=$(calc "$rls_o / $rls_c")
rls_orow_ns=$(calc "$rls_o * 1000000 / $RLS_ROWS" 1)
met_ge() { if le "$2" "$1"; then echo met; else echo "**NOT met**"; fi; }

CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
PGV=$(psqlb -At -c "SELECT version()" | sed 's/ on .*//')
MEM=$(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)
NK=$(human $N) NG=$(human $GROW)
MODE=$([ $QUICK -eq 1 ] && echo "quick (--quick)" || echo full)

report() {
cat <<EOF
## apikey benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $MODE run

- machine: $(nproc) cores ($CPU), $MEM RAM; $PGV
- cluster: throwaway, unix socket, shared_buffers=$SHARED_BUFFERS, max_parallel_workers_per_gather=0,
  jit=off, autovacuum=off, **fsync=off, synchronous_commit=off, full_page_writes=off**
  (no durability: affects only the creation figures, which write);
  shared_preload_libraries=apikey, so last_used_at is tracked (written every 10 s)
- data: $NK apikey keys over $TENANTS tenants (apikey.create_key), $NK peer keys over 1000 tenants
  (peer-load.sql); loops visit keys in random order; the growth row adds keys to $NG each
- server-side: one statement loops over $NK key texts held in a table, timed in the server
  (clock_timestamp around EXECUTE), nothing subtracted; **median of $ROUNDS rounds**, apikey and peer
  alternating, order reversed every round
- client: pgbench -M prepared -c 2 -j 2, ${PGB_T} s per run, **median of $PGB_ROUNDS runs** per statement,
  runs alternating; per-statement latency (-r, 1 µs resolution) of the measured statement only: the
  key text comes from a separate \`SELECT k FROM bench.<keys> WHERE id = :i \\gset\` in the same script
  and reaches the measured statement as bound parameter \$1

| # | figure | apikey | peer | ratio | target | |
|---|---|---:|---:|---:|---|---|
| 1 | server-side µs per valid verification, $NK keys: \`count(*) … WHERE (apikey.verify(k)).valid\` vs \`count(peer.verify(k))\` | $a_ver | $p_ver | apikey ${speedup}× faster | ≥ 6× faster | $(met_ge "$speedup" 6) |
| 1 | … same, second pass in one session (row locations remembered, as on a long-lived pooled connection) | $a_warm | | apikey $(calc "$p_ver / $a_warm")× faster | | |
| 1 | … same with last_used_at tracking off (\`apikey.track_usage = off\`; the figure above has it on) | $a_vnt | | tracking costs ${track_pct}% | ≤ 10% | $(verdict "$track_pct" 10) |
| 1 | … same, as \`FROM keys, LATERAL apikey.verify(k) v WHERE v.valid\` (function scan per row) | $a_lat | | $(calc "$p_ver / $a_lat")× | | |
| 1 | … peer.verify_sql (the peer's inlinable SQL variant), for orientation | | $p_sql | $(calc "$p_sql / $a_ver")× | | |
| 1 | … bare loop \`count(length(k))\` over the same rows (included in the above) | $a_bare | $p_bare | | | |
| 2 | client ms, trivial \`SELECT length(\$1)\` on the same key text | $bt_a | $bt_p | | | |
| 2 | client ms, verify statement (apikey: \`SELECT valid, tenant_id FROM apikey.verify(\$1)\`; peer: \`SELECT peer.verify(\$1)\`) | $bv_a | $bv_p | apikey ${br_a}× trivial, peer ${br_p}× trivial | ≤ 1.15× trivial | $(verdict "$br_a" 1.15) |
| 3 | garbage µs per key: bad checksum (bare loop $gb_checksum) | $gu_checksum | | | | |
| 3 | garbage µs per key: wrong length (bare loop $gb_length) | $gu_length | | | | |
| 3 | garbage µs per key: random text (bare loop $gb_random) | $gu_random | $pg_random | | | |
| 3 | valid verification ÷ slowest garbage rejection: raw / net of the bare loops | ${g_ratio}× / ${g_ratio_net}× | | | ≥ 20× (judged net) | $(met_ge "$g_ratio_net" 20) |
| 3 | buffer accesses in a loop over 100k garbage keys built in the query (EXPLAIN below) | $GARBAGE_BUFFERS nodes with Buffers | | | 0 | $([ "$GARBAGE_BUFFERS" = 0 ] && echo met || echo "**NOT met**") |
| 4 | keys created per second, one session ($CREATE_N per statement) | $c_a | $c_p | apikey $(calc "$c_a / $c_p")× the peer | ≥ 1× the peer | $(met_ge "$(calc "$c_a / $c_p")" 1) |
| 5 | server-side µs per valid verification at $NG keys ($NK sampled keys, same loop) | $A_ver | $P_ver | apikey $(calc "$P_ver / $A_ver")× faster | | |
| 5 | growth $NK → $NG keys, per-verification cost (bare loop at $NG: $A_bare) | ${growth}× | ${pgrowth}× | | ≤ 1.3× | $(verdict "$growth" 1.3) |
| 5 | bytes per key (table + TOAST + indexes) at $NK / $NG keys | $A_BYTES_N / $A_BYTES_G | $P_BYTES_N / $P_BYTES_G | | | |
| 6 | authenticate: server-side µs per call (loop, $NK keys; verify ${a_ver}) | $a_auth | | $(calc "$a_auth / $a_ver")× verify | | |
| 6 | \`count(*) FROM big WHERE tenant_id = apikey.current_tenant_id()\` (called per row in a seq scan) vs \`= constant\`, $(human $RLS_ROWS) rows: ns per row | $rls_row_ns vs $rls_crow_ns (+$rls_ns) | | ${rls_ratio}× the constant | | |
| 6 | … written as policies should: \`tenant_id = (SELECT apikey.current_tenant_id())\` (evaluated once per statement) vs \`= constant\`: ns per row | $rls_orow_ns vs $rls_crow_ns | | ${rls_oratio}× the constant | ≤ 1.10× | $(verdict "$rls_oratio" 1.10) |

Not measured: 10M keys. Creating keys runs at ~$c_a/s through apikey.create_key, so 10M would take
about $(calc "10000000 / $c_a / 60" 0) minutes of loading alone: beyond the few minutes this run may take.

Garbage loop without a table (100k iterations, each over a bad-checksum, a wrong-length and a random
text), \`EXPLAIN (ANALYZE, BUFFERS)\`: no node reports a buffer access.

\`\`\`
$GARBAGE_EXPLAIN
\`\`\`

For contrast, the same kind of loop over one valid key (1000 iterations):

\`\`\`
$VALID_EXPLAIN
\`\`\`
EOF
}
report
[ -n "$OUT" ] && report >"$OUT"
exit 0
