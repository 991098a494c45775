#!/usr/bin/env bash
# Build the libFuzzer harnesses of src/keytext.c with ASan and UBSan:
#   bash test/fuzz/build.sh            -> test/fuzz/build/fuzz_<name>
# Then, e.g.:
#   test/fuzz/build/fuzz_keytext -max_total_time=60 test/fuzz/corpus/fuzz_keytext
# (run.sh in this directory runs them all on a copy of the corpus).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CC=${CC:-}
if [ -z "$CC" ]; then
	for c in clang clang-14 clang-15 clang-16; do
		command -v "$c" >/dev/null && { CC=$c; break; }
	done
fi
[ -n "$CC" ] || { echo "no clang found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

out=${FUZZ_BUILD_DIR:-$here/build}
mkdir -p "$out"
# UBSan findings abort (a crash for libFuzzer) instead of printing and going on.
CFLAGS="-g -O1 -std=c11 -Wall -Wextra -Werror -fno-omit-frame-pointer
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
for h in "$here"/fuzz_*.c; do
	name=$(basename "$h" .c)
	# shellcheck disable=SC2086
	$CC $CFLAGS -D_GNU_SOURCE -I"$repo/src" "$h" "$repo/src/keytext.c" -o "$out/$name"
	echo "$out/$name"
done
