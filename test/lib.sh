# test/lib.sh - shared by test/demo.sh, test/run_tests.sh, test/bench,
# test/fuzz and test/valgrind
#
# Sets up everything a fresh Debian 12 machine lacks, builds and installs the
# extension, and runs a throwaway PostgreSQL 15 cluster plus the bundled fake
# Clover.  PostgreSQL refuses to run as root, so when started as root the
# cluster, the fake and the clients run as the unprivileged "postgres" user
# (created by Debian's postgresql-common package) in a private work
# directory; the repository itself is only read.
#
# Source it, then call start_everything (or its steps: ensure_packages,
# build_and_install, start_work, start_cluster, start_fake).  stop_all runs
# on exit: it stops the cluster and the fake and removes the work directory,
# unless KEEP_WORK=1, which leaves them running and prints how to connect
# and the one command that stops them ($WORK/stop).  CLOVER_NO_BUILD=1
# skips the build and uses the extension already installed.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
PACKAGES=(
	"postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR"
	"postgresql-server-dev-$PG_MAJOR" libcurl4-openssl-dev libjson-c-dev
	pkg-config make gcc curl python3 python3-psycopg2 python3-requests procps
	openssl
)

PYTHON=/usr/bin/python3   # Debian's, with python3-psycopg2 (not a pyenv one on PATH)
export PYTHON

log() { printf '==> %s\n' "$*" >&2; }

# ensure_packages [extra packages...]: apt-get install whatever is missing
ensure_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}" "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		if [ "$(id -u)" != 0 ]; then
			log "missing packages: ${missing[*]} (run as root to install them)"
			exit 1
		fi
		log "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		# apt's chatter (debconf's "delaying package configuration", ...)
		# is shown only when something fails
		local apt_log
		apt_log=$(mktemp /tmp/clover_export_fdw-apt.XXXXXX)
		if ! { apt-get update -qq && apt-get install -y -qq \
			--no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
			cat "$apt_log" >&2
			rm -f "$apt_log"
			log "installing ${missing[*]} failed"
			exit 1
		fi
		rm -f "$apt_log"
	fi
	# CLOVER_PG_CONFIG: another (relocated) copy of PostgreSQL $PG_MAJOR, so
	# that two work trees can build and test side by side
	PG_CONFIG=${CLOVER_PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
	PGBIN=$($PG_CONFIG --bindir)
	PG_REGRESS=$(dirname "$($PG_CONFIG --pgxs)")/../test/regress/pg_regress
	export PG_CONFIG PGBIN PG_REGRESS
}

# build_and_install: warnings are errors
build_and_install() {
	log "building clover_export_fdw (-Wall -Wextra -Werror)"
	make -C "$REPO" -s clean PG_CONFIG="$PG_CONFIG" >/dev/null
	make -C "$REPO" -s WERROR=1 PG_CONFIG="$PG_CONFIG"
	log "installing into $($PG_CONFIG --pkglibdir)"
	make -C "$REPO" -s install PG_CONFIG="$PG_CONFIG" >/dev/null
	make -C "$REPO" -s clean PG_CONFIG="$PG_CONFIG" >/dev/null
}

# as_pg CMD...: run as the cluster's owner
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

free_port() {
	"$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_work: a private directory with a copy of the test files
start_work() {
	WORK=$(mktemp -d /tmp/clover_export_fdw.XXXXXX)
	chmod 755 "$WORK"
	mkdir -p "$WORK/src"
	cp -r "$REPO/sql" "$REPO/expected" "$REPO/test" "$WORK/src/"
	[ "$(id -u)" = 0 ] && chown -R postgres: "$WORK"
	export WORK
	trap stop_all EXIT
}

# start_cluster [postgresql.conf lines...]
start_cluster() {
	log "starting a throwaway PostgreSQL $PG_MAJOR cluster"
	as_pg "$PGBIN/initdb" -D "$WORK/data" -A trust -E UTF8 --locale=C \
		-U postgres >"$WORK/initdb.log" 2>&1 ||
		{ cat "$WORK/initdb.log"; exit 1; }
	PGPORT=$(free_port)
	{
		echo "listen_addresses = ''"
		echo "port = $PGPORT"
		echo "unix_socket_directories = '$WORK'"
		echo "logging_collector = off"
		echo "max_connections = 40"
		local line
		for line in "$@"; do echo "$line"; done
	} >>"$WORK/data/postgresql.conf"
	as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgresql.log" -w \
		start >/dev/null
	export PGHOST=$WORK PGPORT PGUSER=postgres PGDATABASE=postgres
	export PGLOG="$WORK/postgresql.log"
}

# start_fake [fake_clover.py options...]
start_fake() {
	log "starting the fake Clover"
	as_pg "$PYTHON" "$WORK/src/test/fake/fake_clover.py" \
		--ready-file "$WORK/fake.json" --data-dir "$WORK/fake-data" "$@" \
		>"$WORK/fake.log" 2>&1 &
	FAKE_PID=$!
	local i
	for i in $(seq 1 100); do
		[ -s "$WORK/fake.json" ] && break
		kill -0 "$FAKE_PID" 2>/dev/null || { cat "$WORK/fake.log"; exit 1; }
		sleep 0.1
	done
	[ -s "$WORK/fake.json" ] || { log "the fake did not start"; exit 1; }
	local api_port
	api_port=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_port"])' "$WORK/fake.json")
	# FAKE_PID is runuser's (or the subshell's): stop_all needs the fake's
	FAKE_REAL_PID=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$WORK/fake.json")
	export FAKE_CLOVER_API="http://127.0.0.1:$api_port"
	export FAKE_CLOVER_ADMIN="$FAKE_CLOVER_API/_admin"
	export FAKECTL="$WORK/src/test/fake/fakectl"
}

# start_everything [--with PACKAGE]... [postgresql.conf lines...]: every step
# above, in order; --with adds a package to install
start_everything() {
	local extra=()
	while [ "${1:-}" = --with ]; do
		extra+=("$2")
		shift 2
	done
	ensure_packages "${extra[@]}"
	if [ -n "${CLOVER_NO_BUILD:-}" ]; then
		log "using the clover_export_fdw installed in $($PG_CONFIG --pkglibdir) (CLOVER_NO_BUILD)"
	else
		build_and_install
	fi
	start_work
	start_cluster "$@"
	start_fake
}

stop_all() {
	local rc=$?
	if [ -n "${WORK:-}" ] && [ "${KEEP_WORK:-0}" != 0 ]; then
		keep_running
		return $rc
	fi
	if [ -n "${FAKE_REAL_PID:-}" ]; then
		kill "$FAKE_REAL_PID" 2>/dev/null || true
	fi
	if [ -n "${FAKE_PID:-}" ]; then
		kill "$FAKE_PID" 2>/dev/null || true
		wait "$FAKE_PID" 2>/dev/null || true
	fi
	if [ -n "${WORK:-}" ] && [ -f "$WORK/data/postmaster.pid" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate -w stop \
			>/dev/null 2>&1 || true
	fi
	if [ -n "${WORK:-}" ]; then
		rm -rf "$WORK"
	fi
	return $rc
}

# keep_running: KEEP_WORK=1 at exit: leave the cluster and the fake running,
# write $WORK/stop, and say how to connect and how to stop
keep_running() {
	local as_owner=
	[ "$(id -u)" = 0 ] && as_owner="runuser -u postgres -- "
	{
		echo '#!/bin/sh'
		echo '# Stops the cluster and the fake Clover that KEEP_WORK=1 kept'
		echo '# running, then removes their work directory.'
		printf 'WORK=%q\n' "$WORK"
		# a pid is still the fake's (or its runuser's) only while its
		# command line names the work directory
		printf 'for pid in %s; do\n' "${FAKE_REAL_PID:-} ${FAKE_PID:-}"
		echo '	tr "\0" " " <"/proc/$pid/cmdline" 2>/dev/null |'
		echo '		grep -qF "$WORK/" && kill "$pid" 2>/dev/null'
		echo 'done'
		echo 'i=0'
		printf 'while [ $i -lt 50 ] && [ -d /proc/%s ]; do\n' "${FAKE_REAL_PID:-0}"
		echo '	sleep 0.1; i=$((i + 1))'
		echo 'done'
		echo 'if [ -f "$WORK/data/postmaster.pid" ]; then'
		printf '\t%s%q -D "$WORK/data" -m fast -w stop >/dev/null\n' \
			"$as_owner" "$PGBIN/pg_ctl"
		echo 'fi'
		echo 'rm -rf "$WORK"'
		echo 'echo "stopped the cluster and the fake Clover; removed $WORK"'
	} >"$WORK/stop"
	chmod 755 "$WORK/stop"
	log "KEEP_WORK: kept $WORK (logs: postgresql.log, fake.log)"
	if [ -n "${PGPORT:-}" ] && [ -f "$WORK/data/postmaster.pid" ]; then
		log "connect:  ${as_owner}$PGBIN/psql -h $WORK -p $PGPORT -U postgres -d ${CONNECT_DB:-postgres}"
	fi
	if [ -n "${FAKE_CLOVER_API:-}" ]; then
		log "fake Clover: $FAKE_CLOVER_API (FAKE_CLOVER_ADMIN=$FAKE_CLOVER_ADMIN $FAKECTL stats)"
	fi
	log "stop:     $WORK/stop"
}

# psql_pg ARGS...: psql as the cluster owner
psql_pg() {
	as_pg "$PGBIN/psql" -X -v ON_ERROR_STOP=1 "$@"
}

# create_clover_tables MERCHANT [psql args...]: the extension, a server on
# the fake for MERCHANT, the postgres user's mapping and the imported tables,
# in the database the psql args name (the benchmarks' common set-up)
create_clover_tables() {
	local merchant=$1
	shift
	psql_pg -q -v api="$FAKE_CLOVER_API" -v merchant="$merchant" "$@" <<'SQL'
CREATE EXTENSION clover_export_fdw;
CREATE SERVER clover FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (region 'sandbox', merchant_id :'merchant', base_url :'api');
CREATE USER MAPPING FOR CURRENT_USER SERVER clover
    OPTIONS (access_token 'test-token');
IMPORT FOREIGN SCHEMA clover FROM SERVER clover INTO public;
SQL
}
