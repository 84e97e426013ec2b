#!/usr/bin/env bash
# test/run_tests.sh - set everything up and run every test suite
#
# Works on a fresh Debian 12 machine as root (or as a user who can install
# into PostgreSQL's directories, with the packages already present):
# installs missing packages, builds with -Werror, installs the extension,
# starts a throwaway PostgreSQL 15 cluster and the fake Clover, and runs
#
#   1. the pg_regress suites (sql/*.sql against expected/*.out),
#   2. the unit tests of the pure parts (test/unit) and the fake Clover's
#      own self-test,
#   3. the integration suites in test/integration/ (cancellation, leaks,
#      faults, security), each a Python script printing "ok"/"not ok" lines,
#   4. test/scripts_test.sh ("scripts"): test/demo.sh and KEEP_WORK.
#
# The last line is "N passed, M failed"; the exit status is 1 on any
# failure.  KEEP_WORK=1 leaves the cluster and the fake running with the
# work directory (logs, diffs) for a look, and prints the psql command that
# connects and the command that stops them.
#
#   test/run_tests.sh                      everything (the README's command)
#   test/run_tests.sh types test_cancel    only these pg_regress suites and
#                                          scripts ("selftest" is the fake's,
#                                          "unit" the unit tests)
#
# A selection runs pg_regress's "setup" suite first, as the others need it.

source "$(dirname "$0")/lib.sh"

# debug5 logging lets the security suite check that no secret is ever logged
start_everything "log_min_messages = debug5" "log_error_verbosity = verbose" \
	"log_statement = 'all'"

passed=0
failed=0
failed_names=()

record() {
	# record NAME STATUS
	if [ "$2" = ok ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failed_names+=("$1")
	fi
}

# wanted NAME: was NAME selected on the command line (or nothing was)?
wanted() {
	[ ${#SELECTED[@]} = 0 ] && return 0
	local s
	for s in "${SELECTED[@]}"; do [ "$s" = "$1" ] && return 0; done
	return 1
}
SELECTED=("$@")

# 1. pg_regress
log "pg_regress suites"
tests=
for t in $(make -s -C "$REPO" print-regress PG_CONFIG="$PG_CONFIG"); do
	if [ "$t" = setup ] || wanted "$t"; then tests="$tests $t"; fi
done
mkdir -p "$WORK/regress"
[ "$(id -u)" = 0 ] && chown postgres: "$WORK/regress"
set +e
as_pg "$PG_REGRESS" --inputdir="$WORK/src" --outputdir="$WORK/regress" \
	--bindir="$PGBIN" --host="$PGHOST" --port="$PGPORT" --user=postgres \
	--dbname=contrib_regression --encoding=UTF8 $tests |
	tee "$WORK/regress/summary.out"
set -e
# every listed test must say ok; one that says nothing (pg_regress stopped)
# is a failure too
for t in $tests; do
	if grep -qE "^(test| ) *$t +\.\.\. ok" "$WORK/regress/summary.out"; then
		record "regress/$t" ok
	else
		record "regress/$t" failed
	fi
done
if [ -s "$WORK/regress/regression.diffs" ]; then
	log "regression.diffs:"
	cat "$WORK/regress/regression.diffs"
fi

# 2 and 3: scripts that print TAP-style "ok - name" / "not ok - name"
run_tap() {
	local suite=$1
	shift
	log "$suite"
	set +e
	"$@" 2>&1 | tee "$WORK/suite.out"
	local rc=${PIPESTATUS[0]}
	set -e
	local n=0 bad=0 line
	while IFS= read -r line; do
		case "$line" in
		"ok - "*) record "$suite: ${line#ok - }" ok; n=$((n + 1)) ;;
		"not ok - "*) record "$suite: ${line#not ok - }" failed; n=$((n + 1)); bad=$((bad + 1)) ;;
		esac
	done <"$WORK/suite.out"
	# a suite that ran nothing, or died without saying why, is a failure
	if [ "$n" = 0 ] || { [ "$rc" != 0 ] && [ "$bad" = 0 ]; }; then
		record "$suite: exited with status $rc after $n checks" failed
	fi
}

if wanted unit; then
	log "unit tests (test/unit/test_core.c)"
	make -s -C "$REPO" unit-test UNIT_TEST="$WORK/test_core" PG_CONFIG="$PG_CONFIG"
	run_tap "unit" "$WORK/test_core"
fi
wanted selftest &&
	run_tap "fake self-test" as_pg "$PYTHON" "$WORK/src/test/fake/selftest.py"
for suite in "$WORK"/src/test/integration/test_*.py; do
	[ -e "$suite" ] || continue
	wanted "$(basename "$suite" .py)" || continue
	run_tap "integration/$(basename "$suite" .py)" as_pg "$PYTHON" "$suite"
done
wanted scripts && run_tap "scripts" "$REPO/test/scripts_test.sh"

if [ "$failed" -gt 0 ]; then
	log "failed:"
	printf '  %s\n' "${failed_names[@]}" >&2
	log "server log: last lines"
	tail -n 30 "$WORK/postgresql.log" >&2 || true
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
