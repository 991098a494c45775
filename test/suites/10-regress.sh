#!/usr/bin/env bash
# pg_regress on a temporary instance: sql/*.sql against expected/*.out, in
# the order of test/regress.schedule, with the settings of test/regress.conf.
# A sql/*.sql missing from the schedule is a failure.
# timeout: 120
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

REGRESS_CONF=$REPO/test/regress.conf regress_suite regress "$REPO" "$REPO/test/regress.schedule"
