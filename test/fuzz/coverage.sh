#!/usr/bin/env bash
# Line and branch coverage of src/keytext.c reached by the committed corpus
# (every harness replays its corpus once, no fuzzing):
#   bash test/fuzz/coverage.sh [--lines]   (--lines: annotated source too)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CC=${CC:-clang}
PROFDATA=$(command -v llvm-profdata || command -v llvm-profdata-14)
COV=$(command -v llvm-cov || command -v llvm-cov-14)
out=$(mktemp -d "${TMPDIR:-/tmp}/apikey-fuzzcov.XXXXXX")
trap 'rm -rf "$out"' EXIT
objects=()
for h in "$here"/fuzz_*.c; do
	name=$(basename "$h" .c)
	$CC -g -O0 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
		-D_GNU_SOURCE -I"$repo/src" "$h" "$repo/src/keytext.c" -o "$out/$name"
	LLVM_PROFILE_FILE="$out/$name.profraw" "$out/$name" -runs=0 "$here/corpus/$name" >/dev/null 2>&1
	objects+=(-object "$out/$name")
done
"$PROFDATA" merge -o "$out/all.profdata" "$out"/*.profraw
first=${objects[1]}
"$COV" report "$first" "${objects[@]:2}" -instr-profile="$out/all.profdata" \
	-show-functions "$repo/src/keytext.c"
[ "${1:-}" = "--lines" ] &&
	"$COV" show "$first" "${objects[@]:2}" -instr-profile="$out/all.profdata" \
		-show-branches=count "$repo/src/keytext.c"
exit 0
