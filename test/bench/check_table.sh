#!/usr/bin/env bash
# Is a benchmark report (bench.sh's stdout) complete?
#
#   bash test/bench/check_table.sh FILE
#
# Every row below is there exactly once (2.7 and 2.8, the peer's, only when
# the peer was measured; 9.*, the instruction counts, only where valgrind
# is); every row has as many cells as its table's header;
# every figure cell (after the id and the description) is a measured figure:
# not empty, no nan or inf, holding a digit, or "–" where the column does
# not apply, or (table 8 only) "not available in this build"; and every row
# holds at least one figure.  Prints what is wrong and exits 1, or prints
# how many rows it checked.
set -euo pipefail
[ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: check_table.sh FILE" >&2; exit 2; }

REQUIRED="1.1 1.2 1.3 1.4 1.5 1.6 1.7 1.8
2.1 2.2 2.3 2.4 2.5 2.6 2.9 2.10 2.11 2.12 2.13 2.14 2.15
3.1 3.2 3.3 3.4 3.5
4.1
5.1 5.2 5.3 5.4 5.5 5.6 5.7 5.8 5.9
6.1 6.2 6.3
7.1 7.2 7.3 7.4
8.1 8.2 8.3 8.4 8.5"
OPTIONAL="2.7 2.8 9.1 9.2 9.3 9.4 9.5 9.6 9.7"

awk -v required="$REQUIRED" -v optional="$OPTIONAL" '
function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
function problem(msg) { print "check_table: " msg; bad++ }
BEGIN {
	n = split(required, r, /[ \n]+/); for (i = 1; i <= n; i++) { want[r[i]] = 1; order[++nw] = r[i] }
	n = split(optional, o, /[ \n]+/); for (i = 1; i <= n; i++) maybe[o[i]] = 1
}
/^## apikey benchmark/ { title = 1 }
/^\|/ {
	line = $0
	sub(/^\|/, "", line); sub(/\|[ \t]*$/, "", line)
	ncells = split(line, c, /\|/)
	id = trim(c[1])
	if (id == "#") { width = ncells; next }
	if (id ~ /^-+$/) next
	if (!(id in want) && !(id in maybe)) { problem("unexpected row \"" id "\""); next }
	seen[id]++
	if (ncells != width) problem("row " id ": " ncells " cells, its table has " width)
	figures = 0
	for (i = 3; i <= ncells; i++) {
		v = trim(c[i])
		if (v == "") problem("row " id ", column " i ": empty figure")
		else if (tolower(v) ~ /nan|inf/) problem("row " id ", column " i ": \"" v "\"")
		else if (v == "–") continue
		else if (v == "not available in this build") {
			if (id !~ /^8\./) problem("row " id ", column " i ": \"not available\" outside table 8")
			else figures++
		}
		else if (v !~ /[0-9]/) problem("row " id ", column " i ": \"" v "\" is no figure")
		else figures++
	}
	if (figures == 0) problem("row " id ": no figure")
	rows++
}
END {
	if (!title) problem("no \"## apikey benchmark\" title")
	for (i = 1; i <= nw; i++) if (!(order[i] in seen)) problem("row " order[i] " is missing")
	for (id in seen) if (seen[id] > 1) problem("row " id " appears " seen[id] " times")
	if (("2.7" in seen) != ("2.8" in seen)) problem("rows 2.7 and 2.8 come together")
	if (bad) exit 1
	print "check_table: " rows " rows, complete, every figure measured"
}' "$1"
