# The benchmark's tables (report) and the developers' target checks
# (targets), sourced by bench.sh once everything is measured.
#
# Table rows are "| id | what | figure ... |": every figure cell holds a
# measured number (or "–" where the column does not apply, or "not available
# in this build" in table 8); test/bench/check_table.sh holds the list of
# rows a complete table has and refuses empty, nan and inf figures.

human() { awk -v n="$1" 'BEGIN { if (n >= 1000000) printf "%gM", n / 1000000; else if (n >= 1000) printf "%gk", n / 1000; else print n }'; }
# calc EXPR [DECIMALS]: arithmetic; nan in, nan out
calc() {
	case "$1" in *nan*) echo nan; return ;; esac
	awk "BEGIN { printf \"%.${2:-2}f\", $1 }"
}
# rx EXPR LABEL...: a ratio as the median over the rounds of EXPR, where $1,
# $2, ... are the labels' figures in that round (measured minutes apart at
# most, so a drift of the machine's speed between rounds cancels), with the
# lowest and highest round in parentheses; mx(a, b) is the larger of two.
# "nan×" when a label has no figures.
rx() {
	local expr=$1 l files=()
	shift
	for l in "$@"; do
		[ -s "$RES/$l" ] || { echo "nan×"; return; }
		files+=("$RES/$l")
	done
	paste "${files[@]}" | awk "function mx(a, b) { return a > b ? a : b } { print $expr }" | sort -g |
		awk '{ v[NR] = $1 } END { printf "%.2f× (%.2f–%.2f)", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR] }'
}
kb() { calc "($1) / 1024" 0 | sed 's/$/ kB/'; }
row() { local out="|" c; for c in "$@"; do out+=" $c |"; done; echo "$out"; }
peer_cols() { [ $PEER -eq 1 ] && printf '%s' "$1"; return 0; }
# a row of table 1: apikey, baseline (and peer) figures and the ratios
srow() { # id label label-kind (cold, seen, cold_g, seen_g)
	local a b p
	a=$(us a_$3 $N) b=$(us b_$3 $N)
	if [ $PEER -eq 1 ]; then
		p=$(us p_$3 $N)
		row "$1" "$2" "$a" "$b" "$p" "$(rx '$2 / $1' a_$3 b_$3)" "$(rx '$2 / $1' a_$3 p_$3)"
	else
		row "$1" "$2" "$a" "$b" "$(rx '$2 / $1' a_$3 b_$3)"
	fi
}
# a row of tables 4 and 5: one cell per key table, FN TABLE printing it
trow() { # id label fn
	local id=$1 label=$2 fn=$3 cells=() t
	for t in "${KEY_TABLES[@]}"; do cells+=("$($fn "$t")"); done
	row "$id" "$label" "${cells[@]}"
}
theader() { # the header of tables 4 and 5
	if [ $PEER -eq 1 ]; then echo "| # | $1 | apikey | baseline | peer |"; echo "|---|---|---:|---:|---:|"
	else echo "| # | $1 | apikey | baseline |"; echo "|---|---|---:|---:|"; fi
}

# per-round garbage ratios: valid ÷ garbage, "net" (each loop minus its bare
# loop) and raw; echoes "worst-net worst-raw" over the rounds
garbage_worst() { # kind
	paste "$RES/a_cold" "$RES/a_bare" "$RES/g_$1" "$RES/gb_$1" | awk -v n=$N '
		{ v = $1 * 1000 / n; vb = $2 * 1000 / n; g = $3 * 1000 / n; gb = $4 * 1000 / n
		  d = g - gb; clamp = 0; if (d < 0.001) { d = 0.001; clamp = 1 }
		  net = (v - vb) / d; raw = v / g
		  if (NR == 1 || net < wn) { wn = net; wc = clamp }
		  if (NR == 1 || raw < wr) wr = raw }
		END { printf "%s%.1f %.1f\n", (wc ? "≥ " : ""), wn, wr }'
}

compute() {
	NK=$(human $N) NG=$(human $GROW)
	# 1. inside the server, µs per verification
	a1=$(us a_cold $N) b1=$(us b_cold $N) a2=$(us a_seen $N) b2=$(us b_seen $N)
	a3=$(us a_cold_g $N) b3=$(us b_cold_g $N) a4=$(us a_seen_g $N) b4=$(us b_seen_g $N)
	ab=$(us a_bare $N) bb=$(us b_bare $N) abg=$(us a_bare_g $N) bbg=$(us b_bare_g $N)
	a_auth=$(us a_auth $N) a_nt=$(us a_nt $N) a_seenall=$(us a_seenall $N)
	# the last-used times: rows inserted / updated / HOT-updated during the run
	read -r uu0 uh0 _ ui0 <<<"$USAGE_BEFORE"; read -r uu1 uh1 _ ui1 <<<"$USAGE_AFTER"
	usage_ins=$((ui1 - ui0)) usage_upd=$((uu1 - uu0)) usage_hot=$((uh1 - uh0))
	if [ $PEER -eq 1 ]; then
		p1=$(us p_cold $N) p2=$(us p_seen $N) p3=$(us p_cold_g $N) p4=$(us p_seen_g $N)
		pb=$(us p_bare $N) pbg=$(us p_bare_g $N)
	fi
	# 2. client-visible, µs per committed statement or transaction
	for s in "${CLIENT_LABELS[@]}"; do declare -g "cv_$s=$(median "$s")"; done
	# 3. garbage
	for g in checksum length random; do
		declare -g "gu_$g=$(us g_$g $N)" "gbu_$g=$(us gb_$g $N)"
		read -r w1 w2 < <(garbage_worst $g | sed 's/≥ /≥_/')
		declare -g "gnet_$g=${w1/≥_/≥ }" "graw_$g=$w2"
	done
	# 4. creation, keys per second
	k_a=$(calc "$CREATE_N / ($(median k_a) / 1000)" 0) k_b=$(calc "$CREATE_N / ($(median k_b) / 1000)" 0)
	[ $PEER -eq 1 ] && k_p=$(calc "$CREATE_N / ($(median k_p) / 1000)" 0)
	# 5. storage and bookkeeping
	declare -gA UPD HOT NONHOT WPS SECS
	for t in "${KEY_TABLES[@]}"; do
		read -r u0 h0 t0 _ <<<"${STAT_BEFORE[$t]}"
		read -r u1 h1 t1 _ <<<"${STAT_AFTER[$t]}"
		HOT[$t]=$((h1 - h0)) NONHOT[$t]=$((u1 - u0 - (h1 - h0))) UPD[$t]=$((u1 - u0))
		SECS[$t]=$(calc "$t1 - $t0" 0)
		WPS[$t]=$(calc "($u1 - $u0) / ($t1 - $t0)" 0)
	done
	usage_wps=$(calc "($usage_ins + $usage_upd) / ${SECS[apikey.keys]:-1}" 0)
	# 6. identity in policies, ns per row
	rls_h=$(calc "$(median rls_helper) * 1000000 / $RLS_ROWS" 1)
	rls_o=$(calc "$(median rls_once) * 1000000 / $RLS_ROWS" 1)
	rls_c=$(calc "$(median rls_const) * 1000000 / $RLS_ROWS" 1)
	# 7. memory
	read -r ma0 mt0 <<<"${MEM_A[0]}"; read -r ma1 mt1 <<<"${MEM_A[1]}"; read -r ma2 mt2 <<<"${MEM_A[2]}"
	read -r _ bt0 <<<"${MEM_B[0]}"; read -r _ bt1 <<<"${MEM_B[1]}"; read -r _ bt2 <<<"${MEM_B[2]}"
	# (/proc/cpuinfo, not lscpu: a minimal system, such as the test chroots, lacks it)
	CPU=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | sed -n 1p)
	PGV=$(psqlb -At -c "SELECT version()" | sed 's/ on .*//')
	MEMGB=$(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)
	MODE=$([ $QUICK -eq 1 ] && echo "quick run (--quick: sizes too small for conclusions)" || echo "full run")
}

creation_cell() { case $1 in apikey.*) echo "$k_a" ;; baseline.*) echo "$k_b" ;; *) echo "$k_p" ;; esac; }
bytes_before_cell() { bytes_fmt "${BYTES_BEFORE[$1]}"; }
bytes_after_cell() { bytes_fmt "${BYTES_AFTER[$1]}"; }
bytes_grow_cell() { bytes_fmt "${BYTES_GROW[$1]}"; }
hot_cell() { echo "${HOT[$1]} / ${NONHOT[$1]}"; }
wps_cell() { echo "${WPS[$1]}"; }
resident_cell() { echo "${RESIDENT[$1]}%"; }

feature_row() { # id name: a row of table 8
	local id=$1 f=$2 na="not available in this build"
	if [ -n "${FEAT_WHY[$f]}" ]; then
		row "$id" "${FEAT_TITLE[$f]}" "$na" "$na" "$na" "$na"
	elif [ $f = import ]; then
		local with without
		with=$(for g in checksum length random; do us gi_$g $N; echo; done | sort -g | tail -n 1)
		without=$(for g in checksum length random; do us gn_$g $N; echo; done | sort -g | tail -n 1)
		row "$id" "${FEAT_TITLE[$f]} ($(human $F) imported; ×: vs none imported)" "$with" "$(rx 'mx(mx($4, $5), $6) / mx(mx($1, $2), $3)' gn_checksum gn_length gn_random gi_checksum gi_length gi_random)" "–" "–"
	else
		local s sp c cp
		s=$(us fs_$f $F) sp=$(us fp_$f $F) c=$(median fc_$f) cp=$(median fcp_$f)
		row "$id" "${FEAT_TITLE[$f]}" "$s" "$(rx '$2 / $1' fp_$f fs_$f)" "$c" "$(rx '$2 / $1' fcp_$f fc_$f)"
	fi
}

report() {
	compute
	cat <<EOF
## apikey benchmark: $(date -u '+%Y-%m-%d'), $MODE

- machine: $(nproc) cores ($CPU), $MEMGB RAM; $PGV; load average (1, 5, 15 min)
  $LOAD_START at the start, $LOAD_END at the end
- server: a throwaway cluster on a Unix socket, set up as doc/setup.md recommends
  (\`shared_preload_libraries = 'apikey'\`, so \`last_used_at\` is kept, with
  PostgreSQL's defaults otherwise) except \`shared_buffers = $SHARED_BUFFERS\` (every key
  stays in memory), \`max_parallel_workers_per_gather = 0\` (each loop runs in one process)
  and \`max_wal_size = 4GB\`
- keys: $NK per setup, all in one environment, presented in random order; later grown to $NG
  - apikey: \`apikey.create_key\` over $TENANTS tenants, verified as \`apikey.verify(k, 'production')\`
  - baseline: what a team writes by hand (\`test/bench/baseline.sql\`): pgcrypto and PL/pgSQL, the
    key's lookup part found through a unique index, SHA-256 of a 160-bit secret, revocation,
    expiry and environment checked, a status returned; it keeps no \`last_used_at\`
$(peer_cols "  - peer: \`$(realpath --relative-to="$APIKEY_ORIGIN" "${PEER_SHOWN:-$PEER_DIR/peer.sql}")\`, another hand-written implementation (\`peer.verify(k)\`)")
- inside the server: one statement loops over the $NK key texts held in a table, timed in the
  server; *cold* is a fresh connection that has verified none of them, *seen* the same loop
  again on the connection that just verified them all
- as the application sees it: \`pgbench -M prepared\`, $CLIENTS clients, ${PGB_T} s per run; every
  statement its own (autocommit) transaction; µs per committed statement from the throughput
- every figure is the **median of $ROUNDS rounds**; within a round all setups alternate, in an
  order reversed every other round; a ratio (×) is the median of the rounds' own ratios (the two
  figures of a round are measured minutes apart at most), the lowest and the highest round's in
  parentheses; so it may differ from the ratio of the two medians

### 1. Verification inside the server (µs per verification)

$(if [ $PEER -eq 1 ]; then
	echo "| # | loop over $NK keys | apikey | baseline | peer | baseline ÷ apikey | peer ÷ apikey |"
	echo "|---|---|---:|---:|---:|---:|---:|"
else
	echo "| # | loop over $NK keys | apikey | baseline | baseline ÷ apikey |"
	echo "|---|---|---:|---:|---:|"
fi)
$(srow 1.1 "cold: each key the first time on this connection" cold)
$(srow 1.2 "seen: each key again on the same connection" seen)
$(srow 1.3 "cold, $NK of $NG keys" cold_g)
$(srow 1.4 "seen, $NK of $NG keys" seen_g)
$(if [ $PEER -eq 1 ]; then
	row 1.5 "the loop alone, \`count(length(k))\` (included above), $NK / $NG keys" "$ab / $abg" "$bb / $bbg" "$pb / $pbg" – –
else
	row 1.5 "the loop alone, \`count(length(k))\` (included above), $NK / $NG keys" "$ab / $abg" "$bb / $bbg" –
fi)

| # | apikey variant, $NK keys | µs | × row 1.1 | baseline ÷ apikey |
|---|---|---:|---:|---:|
$(row 1.6 "cold, \`apikey.authenticate(k)\` (identity set for the transaction)" $a_auth "$(rx '$2 / $1' a_cold a_auth)" "$(rx '$2 / $1' a_auth b_cold)")
$(row 1.7 "cold, \`apikey.verify\` with \`apikey.track_usage = off\`" $a_nt "$(rx '$2 / $1' a_cold a_nt)" "$(rx '$2 / $1' a_nt b_cold)")
$(row 1.8 "seen, on a connection with \`apikey.key_cache_size = $CACHE_ALL\` (room for all $NK keys; rows 1.2 and 1.4 run with the default, $CACHE_DEFAULT)" $a_seenall "$(rx '$2 / $1' a_cold a_seenall)" "$(rx '$2 / $1' a_seenall b_seen)")

### 2. As the application sees it (µs per committed statement)

| # | statement (\$1: a random key's row id) | µs | ratio |
|---|---|---:|---:|
$(row 2.1 "\`SELECT length(k) FROM bench.akeys WHERE id = \$1\` (trivial: fetch the key, no verification)" $cv_c_triv_a –)
$(row 2.2 "\`SELECT (apikey.verify(k, 'production')).valid FROM bench.akeys WHERE id = \$1\`" $cv_c_a_scalar "vs 2.1: $(rx '$2 / $1' c_triv_a c_a_scalar)")
$(row 2.3 "\`SELECT v.valid FROM bench.akeys t, apikey.verify(t.k, 'production') v WHERE t.id = \$1\`" $cv_c_a_from "vs 2.1: $(rx '$2 / $1' c_triv_a c_a_from)")
$(row 2.4 "2.2 with \`apikey.track_usage = off\`" $cv_c_a_nt "2.2 ÷ this: $(rx '$2 / $1' c_a_nt c_a_scalar)")
$(row 2.5 "\`SELECT length(k) FROM bench.bkeys WHERE id = \$1\` (trivial, baseline's keys)" $cv_c_triv_b –)
$(row 2.6 "baseline: \`SELECT (baseline.verify_key(k, 'live')).valid FROM bench.bkeys WHERE id = \$1\`" $cv_c_b_scalar "vs 2.5: $(rx '$2 / $1' c_triv_b c_b_scalar)")
$(if [ $PEER -eq 1 ]; then
row 2.7 "\`SELECT length(k) FROM bench.pkeys WHERE id = \$1\` (trivial, peer's keys)" $cv_c_triv_p –
row 2.8 "peer: \`SELECT peer.verify(k) IS NOT NULL FROM bench.pkeys WHERE id = \$1\`" $cv_c_p_ver "vs 2.7: $(rx '$2 / $1' c_triv_p c_p_ver)"
fi)
$(row 2.9 "\`BEGIN; SELECT length(k) … WHERE id = \$1; COMMIT\` (per transaction)" $cv_t_triv –)
$(row 2.10 "\`BEGIN; SELECT (apikey.authenticate(k)).valid … WHERE id = \$1; COMMIT\`" $cv_t_auth "vs 2.9: $(rx '$2 / $1' t_triv t_auth)")

With the key text itself as the bound parameter \$1, fetched by a first statement of the same
script (\`SELECT ak, bk FROM bench.pairs WHERE id = \$1\`, the keys of both setups): µs per run of
the two statements, and what the second one adds to the fetch alone (run − row 2.11):

| # | second statement | µs per run | µs of the statement | × 2.12 |
|---|---|---:|---:|---:|
$(row 2.11 "none (the fetch alone)" $cv_p_fetch – –)
$(row 2.12 "\`SELECT length(\$1)\` (trivial)" $cv_p_triv "$(calc "$cv_p_triv - $cv_p_fetch")" –)
$(row 2.13 "\`SELECT (apikey.verify(\$1, 'production')).valid\`" $cv_p_a_scalar "$(calc "$cv_p_a_scalar - $cv_p_fetch")" "$(rx '($3 - $1) / ($2 - $1)' p_fetch p_triv p_a_scalar)")
$(row 2.14 "\`SELECT v.valid FROM apikey.verify(\$1, 'production') v\`" $cv_p_a_from "$(calc "$cv_p_a_from - $cv_p_fetch")" "$(rx '($3 - $1) / ($2 - $1)' p_fetch p_triv p_a_from)")
$(row 2.15 "baseline: \`SELECT (baseline.verify_key(\$1, 'live')).valid\`" $cv_p_b_scalar "$(calc "$cv_p_b_scalar - $cv_p_fetch")" "$(rx '($3 - $1) / ($2 - $1)' p_fetch p_triv p_b_scalar)")

### 3. Rejecting garbage (inside the server, µs per key, $NK texts)

| # | input | µs | the loop alone | valid ÷ this, worst round: net of the loop | raw |
|---|---|---:|---:|---:|---:|
$(row 3.1 "a key with a wrong checksum" $gu_checksum $gbu_checksum "$gnet_checksum×" "$graw_checksum×")
$(row 3.2 "a key 3 characters short" $gu_length $gbu_length "$gnet_length×" "$graw_length×")
$(row 3.3 "random text (64 hex digits)" $gu_random $gbu_random "$gnet_random×" "$graw_random×")
$(row 3.4 "a valid key (row 1.1)" $a1 $ab – –)
$(row 3.5 "shared buffers touched rejecting 300k garbage texts built in the query (the same loop over a valid key, 1000 times: $VALID_BUFFERS)" "$GARBAGE_BUFFERS" – – –)

### 4. Creating keys (keys per second, one session, $(human $CREATE_N) per statement, rolled back)

$(theader "")
$(trow 4.1 "\`apikey.create_key\` (with its audit event) / \`baseline.create_key\`$(peer_cols " / \`peer.create_key\`")" creation_cell)

### 5. Storage and bookkeeping

$(theader "key table")
$(trow 5.1 "bytes per key at $NK keys, before the run: heap / TOAST / indexes = total" bytes_before_cell)
$(trow 5.2 "… after the run (sections 1–3 and 6, ${SECS[apikey.keys]} s)" bytes_after_cell)
$(trow 5.3 "… at $NG keys" bytes_grow_cell)
$(trow 5.4 "rows updated during the run: HOT / not HOT" hot_cell)
$(trow 5.5 "rows updated per second during the run (apikey: the last-used writer)" wps_cell)
$(trow 5.6 "pages of the table and its indexes in shared_buffers at $NG keys" resident_cell)

| # | last-used times (apikey's narrow table \`apikey.key_usage\`), during the run | apikey |
|---|---|---:|
$(row 5.7 "rows inserted / updated (of which HOT)" "$usage_ins / $usage_upd ($usage_hot)")
$(row 5.8 "rows written per second" "$usage_wps")
$(row 5.9 "its size on disk (heap and index) per row, a row per key used, after the run, in bytes" "$USAGE_BYTES")

The last-used writer after the run: \`$WRITER_STATE\`.

### 6. Identity in row-level-security policies ($(human $RLS_ROWS) rows, ns per row)

| # | filter of \`SELECT count(*) FROM big WHERE …\` | ns | × 6.3 |
|---|---|---:|---:|
$(row 6.1 "\`tenant_id = apikey.current_tenant_id()\` (called for every row)" $rls_h "$(rx '$2 / $1' rls_const rls_helper)")
$(row 6.2 "\`tenant_id = (SELECT apikey.current_tenant_id())\` (once per statement)" $rls_o "$(rx '$2 / $1' rls_const rls_once)")
$(row 6.3 "\`tenant_id = <constant>\`" $rls_c –)

### 7. Memory

| # | figure | apikey | baseline |
|---|---|---:|---:|
$(row 7.1 "memory contexts named apikey, after verifying $NK different keys on one connection" "$(kb $ma1)" –)
$(row 7.2 "… after verifying them all a second time" "$(kb $ma2)" –)
$(row 7.3 "the connection's memory growth (all contexts) after verifying $NK different keys" "$(kb "$mt1 - $mt0")" "$(kb "$bt1 - $bt0")")
$(row 7.4 "shared memory of the server with apikey preloaded (its settings at their defaults), minus without" "$(kb "$SHMEM_WITH - $SHMEM_WITHOUT")" –)

Contexts named apikey after one pass: ${MEM_CONTEXTS:-none}.

### 8. Version 0.3 features ($(human $F) keys each, cold; × the same loop or statement over as many plain keys, same rounds)

| # | verification | µs inside the server | × | µs per committed statement | × |
|---|---|---:|---:|---:|---:|
$(feature_row 8.1 rate)
$(feature_row 8.2 credits)
$(feature_row 8.3 roles)
$(feature_row 8.4 analytics)
$(feature_row 8.5 import)
$(for f in "${FEATURES[@]}" import; do [ -n "${FEAT_WHY[$f]}" ] && echo "$f"; done | sed -n 1p | sed 's/.*/\nWhy a row is not available:/')
$(for f in "${FEATURES[@]}" import; do [ -n "${FEAT_WHY[$f]}" ] && echo "- ${FEAT_TITLE[$f]}: ${FEAT_WHY[$f]}"; done)
EOF
}

# The project's own goals, judged on the figures above (for developers).
targets() {
	local seen_x cold_x
	check() { # description measured ok?
		printf '%-10s %s: %s\n' "$([ "$3" = 1 ] && echo met || echo 'NOT met')" "$1" "$2"
	}
	le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }
	ok() { if [ "$1" = nan ]; then echo 0; elif le "$1" "$2"; then echo 1; else echo 0; fi; }
	echo "targets (the project's goals; $MODE):"
	unx() { sed 's/×.*$//'; }
	seen_x=$(rx '$2 / $1' a_seen b_seen | unx) cold_x=$(rx '$2 / $1' a_cold b_cold | unx)
	check "server-side, seen keys, baseline ÷ apikey ≥ 8 (row 1.2)" "$seen_x" "$(ok 8 "$seen_x")"
	seen_x=$(rx '$2 / $1' a_seenall b_seen | unx)
	check "server-side, seen keys, every key remembered, baseline ÷ apikey ≥ 8 (row 1.8)" "$seen_x" "$(ok 8 "$seen_x")"
	check "server-side, cold, baseline ÷ apikey ≥ 4 (row 1.1)" "$cold_x" "$(ok 4 "$cold_x")"
	local r track
	r=$(rx '$2 / $1' c_triv_a c_a_scalar | unx)
	check "client-visible, verify ÷ trivial ≤ 1.20, scalar form (2.2 ÷ 2.1)" "$r" "$(ok "$r" 1.20)"
	r=$(rx '$2 / $1' c_triv_a c_a_from | unx)
	check "client-visible, verify ÷ trivial ≤ 1.20, FROM form (2.3 ÷ 2.1)" "$r" "$(ok "$r" 1.20)"
	track=$(rx '($2 / $1 - 1) * 100' c_a_nt c_a_scalar | unx)
	check "last-used tracking ≤ 5% client-visible (2.2 ÷ 2.4)" "$track%" "$(ok "$track" 5)"
	local g worst
	for g in checksum length random; do
		worst=$(eval echo "\$gnet_$g" | sed 's/≥ //')
		check "garbage ($g) ≥ 20× cheaper than valid in every round, net of the loop (row 3)" "$worst×" "$(ok 20 "$worst")"
	done
	check "growth, cold: $NG ÷ $NK ≤ 1.3 (1.3 ÷ 1.1)" "$(calc "$a3 / $a1")" "$(ok "$(calc "$a3 / $a1")" 1.3)"
	check "growth, seen: $NG ÷ $NK ≤ 1.3 (1.4 ÷ 1.2)" "$(calc "$a4 / $a2")" "$(ok "$(calc "$a4 / $a2")" 1.3)"
	local before after
	before=$(awk '{ print $4 }' <<<"${BYTES_BEFORE[apikey.keys]}") after=$(awk '{ print $4 }' <<<"${BYTES_AFTER[apikey.keys]}")
	check "key table keeps its size after a run with tracking on, taken as ≤ +5% (5.2 ÷ 5.1)" \
		"$before → $after bytes per key" "$(ok "$after" "$(calc "$before * 1.05" 0)")"
	local f lim
	for f in rate roles analytics; do
		case $f in rate) lim=1.15 ;; roles) lim=1.10 ;; analytics) lim=1.05 ;; esac
		if [ -n "${FEAT_WHY[$f]}" ]; then
			printf '%-10s %s\n' "n/a" "${FEAT_TITLE[$f]} ≤ ${lim}× client-visible: not available in this build"
		else
			r=$(rx '$2 / $1' fcp_$f fc_$f | unx)
			check "${FEAT_TITLE[$f]} ≤ ${lim}× client-visible (table 8)" "$r" "$(ok "$r" $lim)"
		fi
	done
	echo "every round's figure (ms per loop inside the server; µs per statement or transaction"
	echo "from pgbench), in round order:"
	local f
	for f in "$RES"/*; do
		printf '  %-14s %s\n' "$(basename "$f")" "$(tr '\n' ' ' <"$f")"
	done
}
