# Sourced by the hostile-input and log-leak suites (after test/lib.sh): a
# throwaway cluster, started by hand, reachable only over its own Unix
# socket directory.
#   cluster_start DIR [postgres -c settings...]   initdb, start, CREATE EXTENSION
#   cluster_psql ARGS...                          psql as the postgres user
#   cluster_alive                                 is the postmaster up and accepting?
#   cluster_stop
# Sets CLUSTER_DIR, CLUSTER_LOG (the server log file), PGHOST, PGPORT.

cluster_start() {
	CLUSTER_DIR=$1
	shift
	CLUSTER_LOG=$CLUSTER_DIR/server.log
	export PGHOST=$CLUSTER_DIR PGPORT=${PGPORT:-5499} PGDATABASE=postgres
	local opts="-c listen_addresses='' -k $CLUSTER_DIR -p $PGPORT -c fsync=off"
	for o in "$@"; do opts+=" -c $o"; done
	run_as_pg initdb -D "$CLUSTER_DIR/data" -A trust -U postgres --no-sync \
		>"$CLUSTER_DIR/initdb.log" 2>&1 || { cat "$CLUSTER_DIR/initdb.log"; return 1; }
	run_as_pg pg_ctl -D "$CLUSTER_DIR/data" -l "$CLUSTER_LOG" -o "$opts" -w start \
		>/dev/null || { cat "$CLUSTER_LOG"; return 1; }
	cluster_psql -q -c 'CREATE EXTENSION apikey' || return 1
}

cluster_psql() {
	run_as_pg env PGHOST="$PGHOST" PGPORT="$PGPORT" psql -X -v ON_ERROR_STOP=1 "$@"
}

cluster_alive() {
	run_as_pg pg_isready -q -h "$PGHOST" -p "$PGPORT"
}

cluster_stop() {
	[ -n "${CLUSTER_DIR:-}" ] && [ -f "$CLUSTER_DIR/data/postmaster.pid" ] &&
		run_as_pg pg_ctl -D "$CLUSTER_DIR/data" -m immediate stop >/dev/null 2>&1
	return 0
}
