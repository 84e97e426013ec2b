#!/usr/bin/env bash
# test/demo.sh - set everything up and query Clover orders in psql
#
# On a fresh Debian 12 machine, as root: installs what is missing, builds and
# installs the extension, starts a throwaway PostgreSQL 15 cluster and the
# bundled fake Clover, and runs test/demo.sql in psql: IMPORT FOREIGN SCHEMA,
# a query over several export windows with its progress NOTICEs, a join with
# a local table, a materialized view and its refresh.  Everything is removed
# afterwards; KEEP_WORK=1 leaves the cluster and the fake running and prints
# the psql command that connects to the demo database and the command that
# stops them.

source "$(dirname "$0")/lib.sh"

CONNECT_DB=demo
start_everything
psql_pg -q -c "CREATE DATABASE demo"
log "running test/demo.sql"
# from standard input, so that psql does not put "psql:demo.sql:LINE:"
# before each NOTICE
psql_pg -d demo -v fake_api="$FAKE_CLOVER_API" --echo-queries \
	<"$WORK/src/test/demo.sql"
