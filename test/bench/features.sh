# The benchmark's rows for the 0.3 features (table 8), sourced by bench.sh.
#
# Each row is measured when the extension under test has what the row needs
# (looked up in pg_proc / pg_class) and printed as "not available in this
# build" otherwise, so the rows light up as the features land.  A feature is:
#   feat_<name>_check   prints why it cannot be measured, or nothing
#   feat_<name>_setup   SQL creating its keys into bench.f_<name>_src (k text)
#   FEAT_EXPR[name]     the verification, over the key text k
#   FEAT_OPT[name], FEAT_PLAIN_OPT[name]   session settings of the feature's
#                       loop and of its plain comparison
#   FEAT_PLAIN_KEYS[name]   optional: named arguments of create_key for keys
#                       that answer the feature's verification without the
#                       feature (e.g. the role's scopes as the key's own);
#                       the comparison then runs FEAT_EXPR over those keys
# and is compared with the same loop and statement over as many plain keys
# (bench.f_plain, or those keys), measured in the same rounds, alternating.  The rows run
# after the growth phase, so the key table then holds GROW keys and more.
# (No ":" in their SQL: pgbench takes ":name" in a literal for a variable.)

FEATURES=(rate credits roles analytics)
declare -A FEAT_TITLE FEAT_WHY FEAT_EXPR FEAT_OPT FEAT_PLAIN_OPT FEAT_PLAIN_KEYS
FEAT_TITLE[rate]="a key with a rate limit (never reached)"
FEAT_TITLE[credits]="a key with credits (one charged per verification)"
FEAT_TITLE[roles]="a key with a role and an IP allowlist, verified with a scope and a client address (compared with keys that hold the scope themselves)"
FEAT_TITLE[analytics]="usage analytics on"
FEAT_TITLE[import]="rejecting garbage (slowest of the three kinds) with imported keys present"

# have_function NAME [ARGUMENT-NAME...]: does apikey.NAME exist (with those
# argument names)?
have_function() {
	local name=$1 names
	shift
	names=
	[ $# -gt 0 ] && names=$(printf "'%s'," "$@") && names=${names%,}
	[ "$(psqlb -At -c "SELECT EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'apikey' AND p.proname = '$name'
		  AND coalesce(p.proargnames, '{}') @> ARRAY[$names]::text[])")" = t ]
}
no_function() { # NAME [ARGUMENT-NAME...]: the reason, for a missing function
	if [ $# -gt 1 ]; then
		local n=$1; shift
		echo "apikey.$n has no argument $(echo "$*" | sed 's/ / or /g') in pg_proc"
	else
		echo "apikey.$1 is not in pg_proc"
	fi
}
# keys created through the public API for a feature: SQL creating
# bench.f_<name>_src (key_id, k) with F keys, EXTRA named arguments of create_key
feature_keys() { # name extra-arguments
	echo "CREATE TABLE bench.f_$1_src AS SELECT c.key_id, c.api_key AS k
	        FROM generate_series(1, $F) g,
	        LATERAL apikey.create_key('t' || (1 + g % $TENANTS), 'production', '$1 ' || g$2) c;"
}

feat_rate_check() { have_function set_rate_limit || no_function set_rate_limit; }
feat_rate_setup() {
	feature_keys rate ""
	echo "SELECT count(*) FROM (SELECT apikey.set_rate_limit(key_id, 'bench', 2147483647, interval '1 hour')
	        FROM bench.f_rate_src) s;"
}
FEAT_EXPR[rate]="apikey.verify(k, 'production')"

feat_credits_check() { have_function set_credits || no_function set_credits; }
feat_credits_setup() {
	feature_keys credits ""
	echo "SELECT count(*) FROM (SELECT apikey.set_credits(key_id, 1000000000000)
	        FROM bench.f_credits_src) s;"
}
FEAT_EXPR[credits]="apikey.verify(k, 'production')"

feat_roles_check() {
	if ! have_function create_key_role; then no_function create_key_role
	elif ! have_function create_key key_roles allowed_ips; then no_function create_key key_roles allowed_ips
	elif ! have_function verify client_ip; then no_function verify client_ip
	fi
}
feat_roles_setup() {
	echo "SELECT count(*) FROM (SELECT apikey.create_key_role('t' || g, 'reader', '{reports}')
	        FROM generate_series(1, $TENANTS) g) s;"
	feature_keys roles ", key_roles => '{reader}', allowed_ips => '{10.0.0.0/8,192.168.0.0/16}'"
}
FEAT_EXPR[roles]="apikey.verify(k, 'production', scope => 'reports', client_ip => '10.1.2.3')"
# the same verification of keys that hold the scope themselves, with no allowlist
FEAT_PLAIN_KEYS[roles]=", scopes => '{reports}'"

# analytics: the view, and the setting that turns it off when there is one
# (else the comparison is with last-used tracking off, all bookkeeping)
feat_analytics_check() {
	[ "$(psqlb -At -c "SELECT to_regclass('apikey.usage_stats') IS NOT NULL")" = t ] ||
		echo "the view apikey.usage_stats is not in pg_class"
}
feat_analytics_setup() {
	local switch
	switch=$(psqlb -At -c "SELECT name FROM pg_settings WHERE name LIKE 'apikey.%' AND vartype = 'bool'
	                         AND (name LIKE '%analytic%' OR name LIKE '%stats%') ORDER BY name LIMIT 1")
	if [ -n "$switch" ]; then
		FEAT_OPT[analytics]="-c $switch=on" FEAT_PLAIN_OPT[analytics]="-c $switch=off"
	else
		FEAT_PLAIN_OPT[analytics]="-c apikey.track_usage=off"
		FEAT_TITLE[analytics]="usage analytics on (compared with apikey.track_usage = off)"
	fi
	feature_keys analytics ""
}
FEAT_EXPR[analytics]="apikey.verify(k, 'production')"

feat_import_check() { have_function import_key api_key || no_function import_key api_key; }
# a second database where F keys of another system's format were imported,
# with the same garbage tables: garbage is measured in both, alternating
feat_import_setup() {
	run_as_pg createdb -h "$W" -U postgres bench_imp
	DB=bench_imp psqlo "" -c "CREATE EXTENSION apikey CASCADE" >/dev/null
	[ -n "$FEATURES_SQL" ] && DB=bench_imp psqlo "" -f "$W/features.sql" >/dev/null
	DB=bench_imp psqlo "" -c "SELECT apikey.create_tenant('t1')" \
		-c "SELECT count(*) FROM (SELECT apikey.import_key('t1', 'production', 'imported ' || g,
		      api_key => 'sk_live_' || md5(g::text) || md5((-g)::text)) FROM generate_series(1, $F) g) s" \
		-c "CREATE SCHEMA bench" >/dev/null
	DB=bench_imp psqlo "" -c "CREATE FUNCTION bench.run(q text, OUT ms float8, OUT n bigint) LANGUAGE plpgsql AS \$\$
		DECLARE t0 timestamptz; BEGIN t0 := clock_timestamp(); EXECUTE q INTO n;
		ms := 1000 * extract(epoch FROM clock_timestamp() - t0); END \$\$" >/dev/null
	for g in checksum length random; do
		DB=bench_imp psqlo "" -c "CREATE TABLE bench.g_$g (id int, k text)" >/dev/null
		psqlb -c "COPY bench.g_$g TO STDOUT" | DB=bench_imp psqlo "" -c "COPY bench.g_$g FROM STDIN"
		Q[gi_$g]=${Q[g_$g]}; E[gi_$g]=0; DBN[gi_$g]=bench_imp
		Q[gn_$g]=${Q[g_$g]}; E[gn_$g]=0
		FEAT_SERVER+=(gn_$g gi_$g)
	done
	DB=bench_imp psqlo "" -c "VACUUM ANALYZE" >/dev/null
}

features_run() {
	local f why any=0 setup plain plain_expr
	FEAT_SERVER=() FEAT_CLIENT=()
	F=$N
	if [ -n "$FEATURES_SQL" ]; then
		install -m 644 "$FEATURES_SQL" "$W/features.sql"
		psqlb -f "$W/features.sql" >/dev/null
	fi
	for f in "${FEATURES[@]}" import; do
		why=$(feat_${f}_check)
		FEAT_WHY[$f]=$why
		if [ -n "$why" ]; then
			log "8. ${FEAT_TITLE[$f]}: not available in this build ($why)"
			continue
		fi
		any=1
		log "8. ${FEAT_TITLE[$f]}: setting up $F keys"
		if [ $f = import ]; then feat_import_setup; continue; fi
		setup=$(feat_${f}_setup)
		{ echo "$setup"; shuffled bench.f_$f "SELECT k FROM bench.f_${f}_src"; } | psqlb >/dev/null
		Q[fs_$f]="SELECT count(*) FROM bench.f_$f WHERE (${FEAT_EXPR[$f]}).valid"; E[fs_$f]=$F
		OPT[fs_$f]=${FEAT_OPT[$f]:-}
		plain=bench.f_plain plain_expr=$AV
		if [ -n "${FEAT_PLAIN_KEYS[$f]:-}" ]; then
			plain=bench.f_${f}_plain plain_expr=${FEAT_EXPR[$f]}
			{ feature_keys ${f}_plain "${FEAT_PLAIN_KEYS[$f]}"
			  shuffled $plain "SELECT k FROM bench.f_${f}_plain_src"; } | psqlb >/dev/null
		fi
		Q[fp_$f]="SELECT count(*) FROM $plain WHERE ($plain_expr).valid"; E[fp_$f]=$F
		OPT[fp_$f]=${FEAT_PLAIN_OPT[$f]:-}
		FEAT_SERVER+=(fs_$f fp_$f)
		script fc_$f t "${FEAT_OPT[$f]:-}" "SELECT (${FEAT_EXPR[$f]}).valid FROM bench.f_$f WHERE id = :i;"
		script fcp_$f t "${FEAT_PLAIN_OPT[$f]:-}" "SELECT ($plain_expr).valid FROM $plain WHERE id = :i;"
		FEAT_CLIENT+=(fc_$f fcp_$f)
	done
	[ $any -eq 1 ] || return 0
	shuffled bench.f_plain "SELECT k FROM bench.created ORDER BY random() LIMIT $F" | psqlb >/dev/null
	psqlb -c "VACUUM ANALYZE" >/dev/null
	log "8. the 0.3 features: $ROUNDS rounds"
	run_rounds $ROUNDS measure "${FEAT_SERVER[@]}"
	if [ ${#FEAT_CLIENT[@]} -gt 0 ]; then
		for s in "${FEAT_CLIENT[@]}"; do write_script "$s" $F; done
		run_rounds $ROUNDS pgbench_run "${FEAT_CLIENT[@]}"
	fi
}
