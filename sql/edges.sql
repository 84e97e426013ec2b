--
-- edges: objects exactly on window edges are returned once, whether Clover
-- treats endTime as inclusive or exclusive
--
-- The fake has an order (and a payment) at every UTC midnight.  A range
-- starting at a midnight puts every window edge on one.
--
SET timezone = 'UTC';

-- inclusive endTime: Clover returns the edge objects twice, once outside
-- their window (Clover Rows Outside Windows); each window keeps only its own
\! "$FAKECTL" reset
\! "$FAKECTL" config end_inclusive=true
SELECT * FROM clover_explain($$
    SELECT id FROM clover_orders
     WHERE created_time >= '2024-03-01' AND created_time < '2024-05-01'$$,
    '{Export Windows,Exports Created,Rows Returned,Clover Rows Outside Windows}');
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-03-01T00:00:00Z 2024-05-01T00:00:00Z`
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS count_matches,
       md5(string_agg(id, E'\n' ORDER BY id)) = :'e'::jsonb->>'ids_md5' AS ids_match,
       count(DISTINCT id) = count(*) AS no_duplicates
  FROM clover_orders
 WHERE created_time >= '2024-03-01' AND created_time < '2024-05-01';
-- the edge objects themselves
SELECT created_time FROM clover_orders
 WHERE created_time >= '2024-03-01' AND created_time < '2024-05-01'
   AND created_time IN ('2024-03-01', '2024-03-31', '2024-04-30')
 ORDER BY 1;

-- exclusive endTime: nothing to drop
\! "$FAKECTL" reset
\! "$FAKECTL" config end_inclusive=false
SELECT * FROM clover_explain($$
    SELECT id FROM clover_orders
     WHERE created_time >= '2024-03-01' AND created_time < '2024-05-01'$$,
    '{Export Windows,Exports Created,Rows Returned,Clover Rows Outside Windows}');
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS count_matches,
       md5(string_agg(id, E'\n' ORDER BY id)) = :'e'::jsonb->>'ids_md5' AS ids_match,
       count(DISTINCT id) = count(*) AS no_duplicates
  FROM clover_orders
 WHERE created_time >= '2024-03-01' AND created_time < '2024-05-01';

-- inclusive bounds of the query itself: <= and > at a midnight
\! "$FAKECTL" config end_inclusive=true
SELECT count(*) AS orders_at_both_ends
  FROM clover_orders
 WHERE created_time BETWEEN '2024-03-01' AND '2024-03-31'
   AND created_time IN ('2024-03-01', '2024-03-31');
SELECT count(*) AS none_at_the_excluded_start
  FROM clover_orders
 WHERE created_time > '2024-03-01' AND created_time < '2024-03-02'
   AND created_time = '2024-03-01';
-- a single instant
SELECT count(*) AS exactly_one FROM clover_orders
 WHERE created_time = '2024-04-30';
SELECT count(*) AS payments_at_midnight FROM clover_payments
 WHERE created_time = '2024-04-30';

-- sub-millisecond bounds: Clover speaks milliseconds, the windows do not
SELECT count(*) AS just_after_midnight FROM clover_orders
 WHERE created_time > '2024-04-29 23:59:59.9995' AND created_time < '2024-04-30 00:00:00.0005';

-- a timestamp (without time zone) column holds UTC, and date bounds use
-- the session time zone like PostgreSQL's own comparisons
CREATE FOREIGN TABLE orders_local (
    id text, created_time timestamp OPTIONS (json_path 'createdTime'))
    SERVER clover OPTIONS (export_type 'ORDERS');
SELECT count(*) AS at_utc_midnight FROM orders_local
 WHERE created_time = '2024-04-30 00:00';
SET timezone = 'America/New_York';
SELECT (SELECT count(*) FROM clover_orders
         WHERE created_time >= '2024-04-30'::date
           AND created_time < '2024-05-01'::date)
     = (SELECT count(*) FROM clover_orders
         WHERE created_time >= '2024-04-30 04:00+00'
           AND created_time < '2024-05-01 04:00+00') AS date_bounds_use_timezone;
RESET timezone;
DROP FOREIGN TABLE orders_local;
