#!/usr/bin/env bash
# test/scripts_test.sh - checks of test/demo.sh and test/lib.sh
#
# Run by test/run_tests.sh (suite "scripts"), as the user who runs it, on
# the extension it has installed.  Runs test/demo.sh with KEEP_WORK=1 and
# CLOVER_NO_BUILD=1, and checks what a person sees: no "psql:FILE:LINE:"
# before the NOTICEs, no apt chatter, \timing, a progress NOTICE per window
# and the scan's sum.  Then: the cluster and the fake were kept running,
# the psql command the demo printed connects, another run meanwhile (without
# KEEP_WORK) works and cleans up after itself without touching the kept
# one, and the stop command the demo printed stops both and removes the
# work directory.  Prints "ok - ..." / "not ok - ..." lines; exit status 1
# on any failure.

set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
failed=0
kept=

check() {
	# check NAME COMMAND...: ok if COMMAND succeeds
	local name=$1
	shift
	if "$@"; then
		echo "ok - $name"
	else
		echo "not ok - $name"
		failed=1
	fi
}

# alive PID: the process exists and is not a zombie
alive() {
	[ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat"
}

# gone PID: not alive within 5 s
gone() {
	local i
	for i in $(seq 1 50); do
		alive "$1" || return 0
		sleep 0.1
	done
	return 1
}

# a clean environment: nothing of run_tests.sh's own cluster and fake
clean_env() {
	env -u WORK -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE -u PGLOG \
		-u FAKE_CLOVER_API -u FAKE_CLOVER_ADMIN -u FAKECTL -u KEEP_WORK \
		CLOVER_NO_BUILD=1 "$@"
}

cleanup() {
	if [ -n "$kept" ] && [ -x "$kept/stop" ]; then
		"$kept/stop" >/dev/null 2>&1
	fi
}
trap cleanup EXIT

out=$(mktemp /tmp/clover_export_fdw-demo.XXXXXX)
clean_env KEEP_WORK=1 "$HERE/demo.sh" >"$out" 2>&1
rc=$?
echo "# demo.sh exited with status $rc; its output:"
sed 's/^/#   /' "$out"

kept=$(sed -n 's/^==> stop: *\(.*\)\/stop$/\1/p' "$out")
connect=$(sed -n 's/^==> connect: *//p' "$out")

check "demo: exits with status 0" [ "$rc" = 0 ]
check "demo: no psql:FILE:LINE: prefix" eval '! grep -q "psql:" "$out"'
check "demo: no debconf or apt chatter" eval '! grep -qiE "debconf|^(Selecting|Preparing|Unpacking|Setting up) " "$out"'
check "demo: \\timing is on" eval 'grep -q "^Timing is on\.$" "$out" && grep -q "^Time: [0-9.]* ms" "$out"'
check "demo: a progress NOTICE for each of the 4 windows" \
	eval '[ "$(grep -cE "^NOTICE:  clover_export_fdw: window [1-4] of 4 \(.*\): done \(export [0-9A-Z]{13}, files: [0-9]+\); rows so far: [0-9]+$" "$out")" = 4 ]'
check "demo: a NOTICE sums the scan up" \
	eval 'grep -qE "^NOTICE:  clover_export_fdw: scan of clover_orders done: rows: [0-9]+, windows: 4 of 4, " "$out"'

check "KEEP_WORK: the demo prints its work directory's stop command" \
	eval '[ -n "$kept" ] && [ -x "$kept/stop" ]'
[ -n "$kept" ] || kept=/nonexistent
fake_pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$kept/fake.json" 2>/dev/null)
pg_pid=$(head -n 1 "$kept/data/postmaster.pid" 2>/dev/null)
check "KEEP_WORK: the fake Clover still runs" eval '[ -n "$fake_pid" ] && alive "$fake_pid"'
check "KEEP_WORK: the cluster still runs" eval '[ -n "$pg_pid" ] && alive "$pg_pid"'
check "KEEP_WORK: the printed psql command connects to the demo database" \
	eval '[ "$(eval "$connect -X -Atc \"SELECT count(*) FROM daily_sales\"" 2>&1)" = 60 ]'

# another run meanwhile, without KEEP_WORK: its own cluster and fake, gone
# when it ends, and the kept ones untouched
other=$(clean_env bash -c 'source "$1/lib.sh"
	ensure_packages
	start_work
	start_cluster
	start_fake
	echo "work $WORK"
	echo "fake $FAKE_REAL_PID"
	psql_pg -Atc "SELECT 1"' other "$HERE" 2>&1)
rc=$?
echo "# another run: status $rc: $other" | tr '\n' ' '
echo
other_work=$(sed -n 's/^work //p' <<<"$other")
other_fake=$(sed -n 's/^fake //p' <<<"$other")
check "another run meanwhile works" eval '[ "$rc" = 0 ] && [ "$(tail -n 1 <<<"$other")" = 1 ]'
check "another run meanwhile stops its fake and removes its directory" \
	eval '[ -n "$other_work" ] && [ ! -e "$other_work" ] && [ -n "$other_fake" ] && gone "$other_fake"'
check "another run meanwhile leaves the kept cluster and fake running" \
	eval 'alive "$fake_pid" && alive "$pg_pid" &&
		[ "$(eval "$connect -X -Atc \"SELECT 1\"" 2>&1)" = 1 ]'

"$kept/stop" >"$out.stop" 2>&1
rc=$?
echo "# stop: status $rc: $(cat "$out.stop")"
check "the stop command succeeds" [ "$rc" = 0 ]
check "the stop command stops the fake Clover" eval '[ -n "$fake_pid" ] && gone "$fake_pid"'
check "the stop command stops the cluster" eval '[ -n "$pg_pid" ] && gone "$pg_pid"'
check "the stop command removes the work directory" \
	eval '[ "$kept" != /nonexistent ] && [ ! -e "$kept" ]'

rm -f "$out" "$out.stop"
exit $failed
