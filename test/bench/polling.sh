#!/usr/bin/env bash
# test/bench/polling.sh - status polls and lateness of the polling schedule,
# this work tree's against an older revision's, side by side in one run
#
# For each export length (the fake's queue_ms + processing_ms) it runs one
# export of one day, with each build installed in turn (a new session loads
# the new library), and prints the polls it cost (the fake's count) and how
# late it was noticed DONE: the query's time minus the export's length, so
# it includes the POST, the download and the scan (a few ms here).  Not a
# pass/fail test.
#
#   test/bench/polling.sh [--old main] [--repeat 2] [--lengths "0.5 3 15 40"]

source "$(dirname "$0")/../lib.sh"

OLD=main
REPEAT=2
LENGTHS="0.5 3 15 40"
while [ $# -gt 0 ]; do
	case "$1" in
	--old) OLD=$2; shift 2 ;;
	--repeat) REPEAT=$2; shift 2 ;;
	--lengths) LENGTHS=$2; shift 2 ;;
	*) echo "usage: $0 [--old REV] [--repeat N] [--lengths \"S ...\"]" >&2; exit 2 ;;
	esac
done

start_everything
OLD_TREE=$WORK/old-tree
mkdir -p "$OLD_TREE"
git -C "$REPO" archive "$OLD" | tar -x -C "$OLD_TREE"
NEW_TREE=$WORK/new-tree
mkdir -p "$NEW_TREE"
(cd "$REPO" && tar -c --exclude=.git .) | tar -x -C "$NEW_TREE"

install_tree() {
	make -C "$1" -s WERROR=1 PG_CONFIG="$PG_CONFIG" >/dev/null
	make -C "$1" -s install PG_CONFIG="$PG_CONFIG" >/dev/null
}

create_clover_tables 6E72X1BW38A7T
psql_pg -q -c "CREATE VIEW day AS SELECT * FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'"

# measure LENGTH: "polls late_ms"
measure() {
	local len=$1 t0 t1 polls
	"$FAKECTL" reset >/dev/null
	"$FAKECTL" config queue_ms=100 \
		processing_ms="$(awk -v l="$len" 'BEGIN { printf "%d", l * 1000 - 100 }')" >/dev/null
	t0=$(date +%s.%N)
	as_pg "$PGBIN/psql" -X -q -A -t -c 'SELECT count(*) FROM day' >/dev/null
	t1=$(date +%s.%N)
	polls=$("$FAKECTL" stats exports.0.polls)
	awk -v p="$polls" -v a="$t0" -v b="$t1" -v l="$len" \
		'BEGIN { printf "%d %d\n", p, (b - a - l) * 1000 }'
}

declare -A result
for build in old new; do
	if [ $build = old ]; then install_tree "$OLD_TREE"; else install_tree "$NEW_TREE"; fi
	for len in $LENGTHS; do
		for r in $(seq 1 "$REPEAT"); do
			result[$build,$len,$r]=$(measure "$len")
		done
	done
done

printf '%-8s %-6s %12s %12s %12s %12s %8s\n' export run \
	"polls old" "polls new" "late old ms" "late new ms" "polls"
for len in $LENGTHS; do
	for r in $(seq 1 "$REPEAT"); do
		read -r po lo <<<"${result[old,$len,$r]}"
		read -r pn ln <<<"${result[new,$len,$r]}"
		printf '%-8s %-6s %12s %12s %12s %12s %8s\n' "${len}s" "$r" \
			"$po" "$pn" "$lo" "$ln" \
			"$(awk -v a="$pn" -v b="$po" 'BEGIN { printf "%.2fx", a / b }')"
	done
done
