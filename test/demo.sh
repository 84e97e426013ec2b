#!/usr/bin/env bash
# test/demo.sh - set everything up and query Clover orders in psql
#
# On a fresh Debian 12 machine, as root: installs what is missing, builds and
# installs the extension, starts a throwaway PostgreSQL 15 cluster and the
# bundled fake Clover, and runs test/demo.sql in psql: IMPORT FOREIGN SCHEMA,
# a query over several export windows, a join with a local table, a
# materialized view and its refresh.  Everything is removed afterwards
# (KEEP_WORK=1 keeps the cluster's directory).

source "$(dirname "$0")/lib.sh"

start_everything
psql_pg -q -c "CREATE DATABASE demo"
log "running test/demo.sql"
psql_pg -d demo -v fake_api="$FAKE_CLOVER_API" --echo-queries \
	-f "$WORK/src/test/demo.sql"
