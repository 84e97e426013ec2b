--
-- setup: objects shared by the tests that follow (they run in order, in one
-- database): the extension, a server pointing at the bundled fake Clover, a
-- user mapping, the imported tables and a helper.
--
-- The fake's address comes from the environment (test/run_tests.sh).
\getenv fake_api FAKE_CLOVER_API
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS clover_export_fdw;
RESET client_min_messages;
\! "$FAKECTL" reset

-- The suites reset the fake Clover between cases, which forgets its exports
-- and gives their ids to new ones: a real Clover never does.  So here no
-- statement reuses another's exports (the default is 10 minutes); within a
-- statement they still are (rescans.sql), and reuse across statements and
-- sessions has its own suite (sharing.sql, test_sharing.py).
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (ADD reuse_exports '0');

CREATE SERVER clover FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (region 'sandbox', merchant_id '6E72X1BW38A7T', base_url :'fake_api',
             ecommerce_base_url :'fake_api');
CREATE USER MAPPING FOR CURRENT_USER SERVER clover
    OPTIONS (access_token 'test-token');
IMPORT FOREIGN SCHEMA clover FROM SERVER clover INTO public;

-- clover_explain(query, keys): chosen properties of the foreign scans of an
-- EXPLAIN (ANALYZE, VERBOSE), so that tests show what Clover was asked
-- without timings
CREATE FUNCTION clover_explain(query text, keys text[])
RETURNS TABLE (node int, key text, value text)
LANGUAGE plpgsql AS $$
DECLARE
    plan jsonb;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT JSON) '
        || query INTO plan;
    RETURN QUERY
    WITH RECURSIVE nodes(n, p) AS (
        SELECT 1, plan->0->'Plan'
        UNION ALL
        SELECT n + 1, sub FROM nodes, jsonb_array_elements(p->'Plans') sub
    ), scans AS (
        SELECT row_number() OVER (ORDER BY n)::int AS node, p FROM nodes
         WHERE p->>'Node Type' = 'Foreign Scan'
    )
    SELECT s.node, k, s.p->>k FROM scans s, unnest(keys) k
     ORDER BY s.node, array_position(keys, k);
END $$;
