#!/usr/bin/env bash
# test/bench/bench.sh - benchmark the wrapper against its limits and alternatives
#
# Starts a throwaway cluster and the fake Clover (no processing delay) and
# runs test/bench/bench.py: curl download, the wrapper's count(*) and
# COPY (SELECT *), PostgreSQL's own jsonb cost on the same objects, a Python
# loader in the style of Clover's example, LIMIT 10 and peak memory.
# Prints medians and ratios measured side by side in this one run.  Not a
# pass/fail test.  With --latency it runs test/bench/latency.py instead, on
# the same set-up: the fake's exports take time and only a few run at once,
# and scans, a join, a repeated query and concurrent sessions are compared
# with the ideal schedule of their exports (a few minutes).  With
# --merchants it runs test/bench/merchants.py: one statement over a table
# partitioned by merchant, 100 merchants x 3 years by default, against the
# ideal schedule the caps allow (about 15 minutes; --count and --years
# shorten it).
#
#   test/bench/bench.sh [--objects 200000] [--repeat 5]
#   test/bench/bench.sh --million             (1 000 000 orders)
#   test/bench/bench.sh --latency [--repeat 3] [--windows 6] [--slots 2] ...
#   test/bench/bench.sh --merchants [--count 100] [--years 3] [--compare] ...

source "$(dirname "$0")/../lib.sh"

args=()
script=bench.py
for a in "$@"; do
	case "$a" in
	--million) args+=(--objects 1000000) ;;
	--latency) script=latency.py ;;
	--merchants) script=merchants.py ;;
	*) args+=("$a") ;;
	esac
done

start_everything --with python3-requests "shared_buffers = '1GB'" "work_mem = '64MB'"
as_pg "$PGBIN/createdb" bench
create_clover_tables BENCHMERCHANT -d bench
as_pg "$PYTHON" "$WORK/src/test/bench/$script" "${args[@]}"
