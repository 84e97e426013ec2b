/* sql/clover_export_fdw--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION clover_export_fdw" to load this file. \quit

CREATE FUNCTION clover_export_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT;

CREATE FUNCTION clover_export_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER clover_export_fdw
  HANDLER clover_export_fdw_handler
  VALIDATOR clover_export_fdw_validator;

-- Diagnostic: external resources (curl handles, download buffers) that this
-- backend currently holds.  Zero whenever no scan is running; the tests use it
-- to show that errors and cancels leave nothing behind.
CREATE FUNCTION clover_export_fdw_open_handles(
    OUT curl_handles integer,
    OUT download_buffers integer,
    OUT buffer_bytes bigint)
RETURNS record
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT VOLATILE;

-- Diagnostic: convert an export file (as Clover serves it) into rows of a
-- clover_export_fdw foreign table, exactly as a scan would after the
-- download, and return how many rows it holds.  Raises the scan's errors.
CREATE FUNCTION clover_export_fdw_convert_file(file bytea, target regclass)
RETURNS bigint
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT VOLATILE;
