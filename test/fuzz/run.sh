#!/usr/bin/env bash
# Run the keytext fuzzers:  bash test/fuzz/run.sh [-t SECONDS] [-m] [harness...]
#   -t SECONDS  time per harness (default 20)
#   -m          afterwards, add to test/fuzz/corpus/<harness> the inputs found
#               that reach new coverage (libFuzzer -merge=1: the committed
#               files stay, only a minimal set of new ones is added)
# Each harness starts from a scratch copy of its committed corpus, so a
# plain run never changes the checkout.  Prints, per harness, a line
#   fuzz_<name>: ok|FAILED  <executions> execs  cov: <n>  ft: <n>  corpus: <n>
# and exits non-zero when any harness found a crash or property violation
# (the reproducer is kept as <workdir>/<harness>/crash-*).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=20
merge=0
while getopts t:m opt; do
	case $opt in
		t) secs=$OPTARG ;;
		m) merge=1 ;;
		*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))

bash "$here/build.sh" >/dev/null || { echo "fuzz build failed"; exit 1; }
bin=${FUZZ_BUILD_DIR:-$here/build}
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=($(cd "$here" && ls fuzz_*.c | sed 's/\.c$//'))

work=$(mktemp -d "${TMPDIR:-/tmp}/apikey-fuzz.XXXXXX")
status=0
for h in "${harnesses[@]}"; do
	mkdir -p "$work/$h/corpus"
	cp "$here/corpus/$h/"* "$work/$h/corpus/" 2>/dev/null
	"$bin/$h" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
		-rss_limit_mb=2048 -artifact_prefix="$work/$h/" \
		"$work/$h/corpus" >"$work/$h/log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: //p' "$work/$h/log")
	last=$(grep -E '^#[0-9]+' "$work/$h/log" | tail -n 1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
	if [ $rc -eq 0 ] && ! ls "$work/$h"/crash-* "$work/$h"/leak-* "$work/$h"/timeout-* >/dev/null 2>&1; then
		echo "$h: ok  ${execs:-0} execs  cov: ${cov:-?}  ft: ${ft:-?}  corpus: ${corp:-?}  (${secs} s)"
	else
		echo "$h: FAILED (exit $rc)  ${execs:-0} execs; log and reproducer in $work/$h"
		grep -E 'ERROR|property violated|SUMMARY|runtime error' "$work/$h/log" | head -n 20
		status=1
	fi
	if [ $merge -eq 1 ] && [ $rc -eq 0 ]; then
		before=$(ls "$here/corpus/$h" | wc -l)
		"$bin/$h" -merge=1 "$here/corpus/$h" "$work/$h/corpus" \
			>"$work/$h/merge.log" 2>&1 &&
			echo "$h: corpus $before -> $(ls "$here/corpus/$h" | wc -l) files, $(cat "$here/corpus/$h"/* | wc -c) bytes"
	fi
done
[ $status -eq 0 ] && [ -z "${FUZZ_KEEP:-}" ] && rm -rf "$work"
[ $status -ne 0 ] || [ -n "${FUZZ_KEEP:-}" ] && echo "work directory: $work"
exit $status
