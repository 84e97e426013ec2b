--
-- errors: what a user sees when Clover says no, and what to do about it
--
\getenv fake_api FAKE_CLOVER_API
\! "$FAKECTL" reset
SET timezone = 'UTC';

-- a token Clover does not know: 401
CREATE SERVER clover_badtoken FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (region 'sandbox', merchant_id '6E72X1BW38A7T', base_url :'fake_api');
CREATE USER MAPPING FOR CURRENT_USER SERVER clover_badtoken
    OPTIONS (access_token 'wrong-token');
CREATE FOREIGN TABLE bad_orders (id text, created_time timestamptz)
    SERVER clover_badtoken OPTIONS (export_type 'ORDERS');
SELECT count(*) FROM bad_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
-- a known token without permission for this merchant: also 401
ALTER USER MAPPING FOR CURRENT_USER SERVER clover_badtoken
    OPTIONS (SET access_token 'noperm-token');
SELECT count(*) FROM bad_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';

-- a merchant of another region: 404 from this region's host
ALTER USER MAPPING FOR CURRENT_USER SERVER clover_badtoken
    OPTIONS (SET access_token 'test-token');
ALTER FOREIGN TABLE bad_orders OPTIONS (ADD merchant_id 'EU7Q2M4K9X1ZP');
SELECT count(*) FROM bad_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';

-- no user mapping, or one without a token
DROP USER MAPPING FOR CURRENT_USER SERVER clover_badtoken;
SELECT count(*) FROM bad_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
-- through a view the owner's mapping is used: the hint names the owner
CREATE ROLE clover_view_owner;
GRANT SELECT ON bad_orders TO clover_view_owner;
CREATE VIEW bad_orders_view AS SELECT * FROM bad_orders;
ALTER VIEW bad_orders_view OWNER TO clover_view_owner;
SELECT count(*) FROM bad_orders_view
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
DROP VIEW bad_orders_view;
REVOKE SELECT ON bad_orders FROM clover_view_owner;
DROP ROLE clover_view_owner;
CREATE USER MAPPING FOR CURRENT_USER SERVER clover_badtoken;
SELECT count(*) FROM bad_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
-- EXPLAIN needs neither: nothing is sent
EXPLAIN (COSTS OFF) SELECT count(*) FROM bad_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
DROP SERVER clover_badtoken CASCADE;

-- an export that ends in an undocumented status is created once more,
-- then the query fails naming the export and the status
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=export_status target=poll status=FAILED count=2
SELECT count(*) FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
\! "$FAKECTL" stats exports_created
-- one failure only: the second export succeeds
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=export_status target=poll status=FAILED count=1
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-01-01T00:00:00Z 2024-01-02T00:00:00Z`
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS count_matches
  FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';

-- Clover rejects the request itself (400): its message is shown
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=post status=400 'body={"message":"Invalid export type"}'
SELECT count(*) FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';

-- the session is fine after all of these
\! "$FAKECTL" reset
SELECT count(*) > 0 AS still_works FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
SELECT * FROM clover_export_fdw_open_handles();
