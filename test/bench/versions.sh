#!/usr/bin/env bash
# The core figures of the benchmark on each PostgreSQL version, one after the
# other in one run: 15 on the host, 17, 18 and 19 in their chroots
# (test/chroot.sh), each a run of bench.sh (--quick unless --full), printed
# as one markdown table with a row per version.
#
#   bash test/bench/versions.sh [--full] [VERSION...]     (as root)
#
# Columns: verification inside the server, µs per verification (rows 1.1
# cold and 1.2 seen of bench.sh's table 1, apikey and baseline), and as the
# application sees it, µs per committed statement (rows 2.1 fetching the key
# only and 2.2 verifying it, table 2).  Every run's full tables are kept
# beside the printed table in the directory named on stderr.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

MODE=--quick
[ "${1:-}" = --full ] && { MODE=; shift; }
VERSIONS=("$@")
[ ${#VERSIONS[@]} -gt 0 ] || VERSIONS=(15 $CHROOT_VERSIONS)
OUTDIR=$(mktemp -d "${TMPDIR:-/tmp}/apikey-bench-versions.XXXXXX")
echo "bench: versions ${VERSIONS[*]}, ${MODE:-full} runs, tables in $OUTDIR" >&2

for v in "${VERSIONS[@]}"; do
	echo "bench: PostgreSQL $v (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	if [[ " $CHROOT_VERSIONS " == *" $v "* ]]; then
		dir=$(bash "$REPO/test/chroot.sh" dir "$v")
		dest=/build/bench-$$
		bash "$REPO/test/chroot.sh" copy "$v" "$dest" >/dev/null
		bash "$REPO/test/chroot.sh" run "$v" env PGVER="$v" \
			bash "$dest/test/bench/bench.sh" $MODE --no-peer --out "$dest/bench.md" >/dev/null
		cp "$dir$dest/bench.md" "$OUTDIR/pg$v.md"
		rm -rf --one-file-system "${dir:?}$dest"
	else
		PGVER=$v PGBIN=$([ "$v" = "${PGVER:-15}" ] && echo "$PGBIN" || echo "/usr/lib/postgresql/$v/bin") \
			bash "$REPO/test/bench/bench.sh" $MODE --no-peer --out "$OUTDIR/pg$v.md" >/dev/null
	fi
done

# the figure columns of a row "| 1.1 | text | apikey | baseline | ..."
cell() { awk -F' *\\| *' -v r="$2" -v c="$3" '$2 == r { print $(c + 4); exit }' "$1"; }
echo "| version | 1.1 cold, apikey | 1.1 cold, baseline | 1.2 seen, apikey | 1.2 seen, baseline | 2.1 fetch only | 2.2 verify |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for v in "${VERSIONS[@]}"; do
	f=$OUTDIR/pg$v.md
	echo "| $v | $(cell "$f" 1.1 0) | $(cell "$f" 1.1 1) | $(cell "$f" 1.2 0) | $(cell "$f" 1.2 1) | $(cell "$f" 2.1 0) | $(cell "$f" 2.2 0) |"
done
