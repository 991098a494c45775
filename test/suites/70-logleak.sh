#!/usr/bin/env bash
# Nothing leaks: a throwaway cluster logging at log_min_messages = debug1
# and log_min_error_statement = error; test/hostile/logleak.py runs the
# failure paths (malformed keys, bad checksums, not_found, revoked, expired,
# failed authenticate, key text pasted as a key_id, failing management calls)
# with key text as bind parameters, and key text written into failing
# authenticate calls and key id input, then searches the server log for
# every key text, secret, 12-character piece of a secret and stored hash
# (hex and base64).  Positive controls: where log_statement = all logs
# literals, every key text and secret is found; stored hashes logged on
# purpose are found.  It also shows (not as tests) what literals and
# log_statement = all would reveal.
# timeout: 120
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$REPO/test/hostile/cluster.sh"

work=$(scratch_dir logleak)
trap cluster_stop EXIT
PGPORT=$((30000 + $$ % 10000))
cluster_start "$work" "log_min_messages=debug1" "log_min_error_statement=error" \
	"log_error_verbosity=verbose" "log_connections=on" "log_line_prefix='%m [%p] %q%u@%d '" \
	|| { echo "0 passed, 1 failed"; exit 1; }
out=$(python3 "$REPO/test/hostile/logleak.py" "host=$PGHOST port=$PGPORT dbname=postgres user=postgres" \
	"$CLUSTER_LOG" 2>&1)
rc=$?
echo "$out"
cluster_stop
last=$(tail -n 1 <<<"$out")
if [[ "$last" =~ ^[0-9]+\ passed,\ [0-9]+\ failed$ ]]; then
	[ $rc -eq 0 ] && rm -rf "$work" || echo "server log kept: $CLUSTER_LOG"
	echo "$last"
else
	echo "0 passed, 1 failed"
fi
