#!/usr/bin/env bash
# test/valgrind/valgrind.sh - the regression suites with every backend under valgrind
#
# Starts the throwaway cluster's postmaster under valgrind's memcheck (with
# --trace-children, so every backend is checked), runs the pg_regress suites
# against the fake Clover, and reports valgrind's errors: all of them, and
# those whose stack passes through clover_export_fdw (which must be none).
# Not part of test/run_tests.sh: it takes many minutes.
#
#   test/valgrind/valgrind.sh [test names...]     (default: every test in REGRESS)

source "$(dirname "$0")/../lib.sh"

start_everything --with valgrind "max_connections = 10"

# restart the postmaster under valgrind
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null
mkdir -p "$WORK/valgrind"
[ "$(id -u)" = 0 ] && chown postgres: "$WORK/valgrind"
log "starting PostgreSQL under valgrind (slow)"
as_pg valgrind --trace-children=yes --track-origins=yes \
	--read-var-info=yes --num-callers=30 --error-limit=no \
	--suppressions="$REPO/test/valgrind/valgrind.supp" \
	--log-file="$WORK/valgrind/%p.log" \
	"$PGBIN/postgres" -D "$WORK/data" >"$WORK/postgresql.log" 2>&1 &
for i in $(seq 1 600); do
	as_pg "$PGBIN/pg_isready" -q -h "$PGHOST" -p "$PGPORT" && break
	sleep 0.5
done

tests=${*:-$(make -s -C "$REPO" print-regress PG_CONFIG="$PG_CONFIG")}
mkdir -p "$WORK/regress"
[ "$(id -u)" = 0 ] && chown postgres: "$WORK/regress"
set +e
as_pg "$PG_REGRESS" --inputdir="$WORK/src" --outputdir="$WORK/regress" \
	--bindir="$PGBIN" --host="$PGHOST" --port="$PGPORT" --user=postgres \
	--dbname=contrib_regression --encoding=UTF8 $tests
set -e
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w -t 600 stop >/dev/null || true

# every process's log: errors overall, and errors in our code
total=$(cat "$WORK"/valgrind/*.log | sed -nE 's/.*ERROR SUMMARY: ([0-9]+) errors.*/\1/p' |
	awk '{s += $1} END {print s + 0}')
ours=$("$PYTHON" - "$REPO"/src "$WORK"/valgrind/*.log <<'EOF'
import os, re, sys
count = 0
# a frame in our library or in one of our source files (every src/*.c)
names = sorted(f[:-2] for f in os.listdir(sys.argv[1]) if f.endswith(".c"))
ours = re.compile(r"clover_export_fdw\.so|\((%s)\.c:\d+\)" % "|".join(map(re.escape, names)))
for path in sys.argv[2:]:
    text = open(path, errors="replace").read()
    # an error is a block of "==pid==" lines starting at a non-blank message
    for block in re.split(r"\n==\d+== \n", text):
        if ours.search(block) and ("at 0x" in block or "by 0x" in block):
            count += 1
            print(block, file=sys.stderr)
print(count)
EOF
)
procs=$(ls "$WORK"/valgrind/*.log | wc -l)
echo "valgrind: $procs processes checked, $total errors in all, $ours in clover_export_fdw"
[ "$ours" = 0 ]
