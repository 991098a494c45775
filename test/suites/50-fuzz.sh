#!/usr/bin/env bash
# libFuzzer harnesses of src/keytext.c (key text and checksum, key ids,
# scopes, resources) built with ASan and UBSan, each run briefly from the
# committed corpus (test/fuzz/corpus).  FUZZ_SECONDS per harness, default
# 10 (four harnesses: about 40 s).  One test per harness.
# timeout: 300
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

secs=${FUZZ_SECONDS:-10}
if ! command -v clang >/dev/null && ! command -v clang-14 >/dev/null; then
	echo "clang is missing (test/deps.sh installs it)"
	echo "0 passed, 1 failed"
	exit 1
fi

build=$(mktemp -d "${TMPDIR:-/tmp}/apikey-fuzzbuild.XXXXXX")
trap 'rm -rf "$build"' EXIT
out=$(FUZZ_BUILD_DIR="$build" bash "$REPO/test/fuzz/run.sh" -t "$secs" 2>&1)
echo "$out"
n_ok=$(grep -c '^fuzz_[a-z_]*: ok ' <<<"$out")
n_bad=$(grep -c '^fuzz_[a-z_]*: FAILED' <<<"$out")
n_expected=$(ls "$REPO"/test/fuzz/fuzz_*.c | wc -l)
[ $((n_ok + n_bad)) -lt "$n_expected" ] && n_bad=$((n_expected - n_ok))
echo "$n_ok passed, $n_bad failed"
