/* sql/clover_export_fdw--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION clover_export_fdw UPDATE TO '1.1'" to load this file. \quit

-- The exports every session of the cluster shares (see README.md, "Reuse,
-- sharing and the cap"): one row per export and server of this database
-- that the caller may use.  Never a token or a file URL.
CREATE FUNCTION clover_export_fdw_exports(
    OUT server text,
    OUT merchant_id text,
    OUT export_type text,
    OUT window_start timestamptz,
    OUT window_end timestamptz,
    OUT export_id text,
    OUT status text,
    OUT created timestamptz,
    OUT available_until timestamptz,
    OUT scans integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT VOLATILE;

-- Forget the exports of the servers the caller may use, so that the next
-- queries export again; exports still running at Clover stay.  Returns how
-- many were forgotten.
CREATE FUNCTION clover_export_fdw_forget_exports()
RETURNS bigint
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT VOLATILE;
