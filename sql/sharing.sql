--
-- sharing: exports reused by later statements (reuse_exports), the
-- registry of the cluster's exports and its functions
--
-- Sessions running at once are tested by test/integration/test_sharing.py;
-- here one session shows what a later statement reuses.
--
\getenv fake_api FAKE_CLOVER_API
SET timezone = 'UTC';
\! "$FAKECTL" reset
-- the fake has forgotten its exports: so must the registry
SELECT clover_export_fdw_forget_exports() >= 0 AS forgotten;
CREATE SERVER clover_reuse FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (region 'sandbox', merchant_id '6E72X1BW38A7T',
             base_url :'fake_api', reuse_exports '10 min');
CREATE USER MAPPING FOR CURRENT_USER SERVER clover_reuse
    OPTIONS (access_token 'test-token');
CREATE FOREIGN TABLE reuse_orders (id text, total bigint,
                                   created_time timestamptz)
    SERVER clover_reuse OPTIONS (export_type 'ORDERS');

-- 45 days: two exports
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-01-01T00:00:00Z 2024-02-15T00:00:00Z`
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS count_matches
  FROM reuse_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-02-15';
\! "$FAKECTL" stats exports_created

-- the same query again, and a range inside it: no new export
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS count_matches
  FROM reuse_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-02-15';
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-01-10T00:00:00Z 2024-01-20T00:00:00Z`
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS count_matches
  FROM reuse_orders
 WHERE created_time >= '2024-01-10' AND created_time < '2024-01-20';
\! "$FAKECTL" stats exports_created

-- 57 days of which the last 12 were never exported: one new export, for
-- the gap only
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-01-01T00:00:00Z 2024-02-27T00:00:00Z`
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS count_matches
  FROM reuse_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-02-27';
\! "$FAKECTL" stats exports_created
\! "$FAKECTL" stats exports.2.startTime
\! "$FAKECTL" stats exports.2.endTime

-- EXPLAIN ANALYZE says which windows were reused
SELECT * FROM clover_explain($$
SELECT count(*) FROM reuse_orders
 WHERE created_time >= '2024-01-20' AND created_time < '2024-02-20'$$,
    '{Export Windows,Exports Created,Exports Reused}');

-- the registry: no token, no file URL; no scan uses them now
SELECT merchant_id, export_type, window_start, window_end, export_id, status,
       created IS NOT NULL AS has_created,
       available_until > now() AS available, scans
  FROM clover_export_fdw_exports()
 WHERE server = 'clover_reuse'
 ORDER BY window_start;

-- a table's reuse_exports overrides its server's: '0' never reuses
ALTER FOREIGN TABLE reuse_orders OPTIONS (ADD reuse_exports '0');
SELECT count(*) > 0 AS some_rows FROM reuse_orders
 WHERE created_time >= '2024-01-10' AND created_time < '2024-01-20';
\! "$FAKECTL" stats exports_created
ALTER FOREIGN TABLE reuse_orders OPTIONS (DROP reuse_exports);

-- a range reaching the statement's start is served by an export that
-- reached its own statement's start: that is what reuse_exports allows
SELECT count(*) >= 0 AS counted FROM reuse_orders
 WHERE created_time >= now() - interval '2 days';
\! "$FAKECTL" stats exports_created
SELECT count(*) >= 0 AS counted FROM reuse_orders
 WHERE created_time >= now() - interval '2 days';
\! "$FAKECTL" stats exports_created

-- every scan starts its first export when the executor starts, so both
-- tables of a join export at once; never for a plain EXPLAIN, nor under
-- LIMIT 0 (no export covers March)
\! "$FAKECTL" stats exports_created
EXPLAIN (COSTS OFF)
SELECT count(*) FROM reuse_orders o JOIN clover_payments p ON p.order_id = o.id
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-02'
   AND p.created_time >= '2024-03-01' AND p.created_time < '2024-03-02';
SELECT * FROM reuse_orders
 WHERE created_time >= '2024-03-01' AND created_time < '2024-03-02' LIMIT 0;
\! "$FAKECTL" stats exports_created

-- a user without USAGE on the server sees none of its exports
CREATE ROLE sharing_outsider;
SET ROLE sharing_outsider;
SELECT count(*) AS visible FROM clover_export_fdw_exports();
SELECT clover_export_fdw_forget_exports() AS forgotten;
RESET ROLE;
DROP ROLE sharing_outsider;

-- forgetting them: the next query exports again
SELECT clover_export_fdw_forget_exports() AS forgotten;
SELECT count(*) AS listed FROM clover_export_fdw_exports()
 WHERE server = 'clover_reuse';
SELECT count(*) > 0 AS some_rows FROM reuse_orders
 WHERE created_time >= '2024-01-10' AND created_time < '2024-01-20';
\! "$FAKECTL" stats exports_created

-- reuse_exports on the wrapper is a default for every server; it is no
-- option of a user mapping
ALTER USER MAPPING FOR CURRENT_USER SERVER clover_reuse
    OPTIONS (ADD reuse_exports '1 min');

DROP FOREIGN TABLE reuse_orders;
DROP USER MAPPING FOR CURRENT_USER SERVER clover_reuse;
DROP SERVER clover_reuse;
