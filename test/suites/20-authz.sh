#!/usr/bin/env bash
# Authorization, with pg_regress on a temporary instance: test/authz/sql/*.sql
# against test/authz/expected/*.out, in the order of test/authz.schedule
# (privileges, tenant administrators, the RLS hand-off).  rls.sql includes
# the example application schema test/rls_example.sql.  A test/authz/sql
# file missing from the schedule is a failure.
# timeout: 120
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

regress_suite authz "$REPO/test/authz" "$REPO/test/authz.schedule" "$REPO/test/rls_example.sql"
