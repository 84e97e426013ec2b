# Makefile for clover_export_fdw (PGXS)
#
#   make                 build (PG_CFLAGS=-Werror in CI)
#   make install         install into the PostgreSQL found by pg_config
#   test/run_tests.sh    every test suite against a throwaway cluster and the
#                        bundled fake Clover (see README.md)

MODULE_big = clover_export_fdw
OBJS = \
	src/api_json.o \
	src/clover_errors.o \
	src/clover_export_fdw.o \
	src/ecommerce_pages.o \
	src/cluster_state.o \
	src/export_answers.o \
	src/export_progress.o \
	src/export_registry.o \
	src/export_share.o \
	src/export_slots.o \
	src/exports.o \
	src/http.o \
	src/import_schema.o \
	src/json_lex.o \
	src/json_split.o \
	src/jsonb_build.o \
	src/merchant_sql.o \
	src/options.o \
	src/pacing.o \
	src/registry_sql.o \
	src/row_convert.o \
	src/row_plan.o \
	src/scan_exec.o \
	src/scan_async.o \
	src/scan_explain.o \
	src/scan_plan.o \
	src/service_hours.o \
	src/sorted_scan.o \
	src/statement_exports.o \
	src/time_quals.o \
	src/time_range.o \
	src/windows.o

EXTENSION = clover_export_fdw
DATA = sql/clover_export_fdw--1.0.sql sql/clover_export_fdw--1.0--1.1.sql \
	sql/clover_export_fdw--1.1--1.2.sql
PGFILEDESC = "clover_export_fdw - foreign data wrapper for Clover's export API"

REGRESS = setup options import scan types edges bounds errors prepared joins planner order rescans sharing faults rows_review line_items merchants ecommerce
REGRESS_OPTS = --encoding=UTF8 --inputdir=.

PG_CPPFLAGS = -Isrc $(shell curl-config --cflags) $(shell pkg-config --cflags json-c)
# -Wextra without unused-parameter: PostgreSQL's own inline headers (fmgr.h,
# ilist.h, bufpage.h) trip it, as does every FDW callback.  WERROR=1 makes
# any warning fatal (the test script builds that way).
PG_CFLAGS += -Wall -Wextra -Wno-unused-parameter $(if $(WERROR),-Werror)
SHLIB_LINK = $(shell curl-config --libs) $(shell pkg-config --libs json-c)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# test/unit/test_core: the parts in src/clover_core.h, built without a
# backend (-DFRONTEND, libpgcommon, libpgport) and run by test/run_tests.sh
CORE_SRCS = src/pacing.c src/service_hours.c src/windows.c
UNIT_TEST ?= test/unit/test_core
unit-test: $(UNIT_TEST)
$(UNIT_TEST): test/unit/test_core.c $(CORE_SRCS) src/clover_core.h
	$(CC) -DFRONTEND -Wall -Wextra -Werror -O2 -Isrc -I$(includedir_server) \
		-o $@ test/unit/test_core.c $(CORE_SRCS) \
		-L$(pkglibdir) -lpgcommon -lpgport -lm
.PHONY: unit-test

# the regression tests, for test/run_tests.sh
print-regress:
	@echo $(REGRESS)
.PHONY: print-regress
