--
-- scan: a range over several export windows returns exactly what Clover
-- holds for it: same count, same sum, same ids, no duplicates
--
\! "$FAKECTL" reset
SET timezone = 'UTC';

-- 2024-01-01 .. 2024-04-15 is 105 days: four exports of at most 30 days
EXPLAIN (VERBOSE, COSTS OFF)
SELECT count(*) FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-15';

\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-01-01T00:00:00Z 2024-04-15T00:00:00Z`
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS count_matches,
       sum(total) = (:'e'::jsonb->>'sum')::numeric AS sum_matches,
       md5(string_agg(id, E'\n' ORDER BY id)) = :'e'::jsonb->>'ids_md5' AS ids_match,
       count(DISTINCT id) = count(*) AS no_duplicates,
       count(*) > 10000 AS many_rows
  FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-15';
\! "$FAKECTL" stats exports_created
-- the token never reached the file host
\! "$FAKECTL" stats token_on_file_host

-- payments, over three windows, with a BETWEEN (both ends inclusive)
\! "$FAKECTL" reset
\set e `"$FAKECTL" expect PAYMENTS 6E72X1BW38A7T 2024-05-01T00:00:00Z 2024-07-10T00:00:00.001Z`
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS count_matches,
       sum(amount) = (:'e'::jsonb->>'sum')::numeric AS sum_matches,
       md5(string_agg(id, E'\n' ORDER BY id)) = :'e'::jsonb->>'ids_md5' AS ids_match
  FROM clover_payments
 WHERE created_time BETWEEN '2024-05-01' AND '2024-07-10';
\! "$FAKECTL" stats exports_created

-- the windows' own quals meet the query's other quals in PostgreSQL
SELECT count(*) = count(*) FILTER (WHERE result IS NOT NULL) AS all_have_result,
       bool_and(created_time >= '2024-05-01' AND created_time < '2024-05-02') AS in_range
  FROM clover_payments
 WHERE created_time >= '2024-05-01' AND created_time < '2024-05-02'
   AND amount > 0;

-- empty ranges ask Clover nothing at all
\! "$FAKECTL" reset
SELECT count(*) FROM clover_orders
 WHERE created_time >= '2024-02-01' AND created_time < '2024-01-01';
SELECT count(*) FROM clover_orders
 WHERE created_time > '2024-02-01' AND created_time <= '2024-02-01';
SELECT count(*) FROM clover_orders
 WHERE created_time >= '2024-02-01' AND created_time = NULL;
SELECT count(*) FROM clover_orders WHERE created_time > 'infinity';
SELECT count(*) FROM clover_orders
 WHERE created_time >= now() + interval '1 day';
EXPLAIN (COSTS OFF) SELECT * FROM clover_orders
 WHERE created_time >= '2024-02-01' AND created_time < '2024-01-01';
\! "$FAKECTL" stats requests_total

-- without a lower bound the query cannot start
SELECT count(*) FROM clover_orders WHERE created_time < '2024-01-01';
SELECT count(*) FROM clover_orders WHERE total > 100;
SELECT count(*) FROM clover_orders
 WHERE created_time >= '-infinity' AND created_time < '2024-01-01';
-- an OR is not a bound: PostgreSQL checks it, the windows cannot use it
SELECT count(*) FROM clover_orders
 WHERE created_time >= '2024-01-01' OR created_time < '2023-01-01';
-- the error comes at plan time: plain EXPLAIN fails, and a join fails
-- before the other table's export is created
EXPLAIN (COSTS OFF)
SELECT count(*) FROM clover_orders WHERE created_time < '2024-01-01';
\! "$FAKECTL" reset
SELECT count(*) FROM clover_orders o JOIN clover_payments p ON p.order_id = o.id
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-02';
\! "$FAKECTL" stats exports_created
-- but LIMIT 0 (how some tools ask for a query's columns) runs no scan
SELECT id, total FROM clover_orders LIMIT 0;
-- the detail names each condition on created_time that cannot bound the
-- range, and why; the hint rewrites those it can
SELECT count(*) FROM clover_orders
 WHERE created_time::text >= '2024-03'
   AND date_trunc('day', created_time) = '2024-03-01'
   AND created_time >= clock_timestamp() - interval '1 day'
   AND (created_time >= '2024-03-01' OR created_time >= '2024-04-01')
   AND created_time < '2024-05-01';
-- an equality with another table's column is named too
SELECT count(*) FROM clover_orders o
  JOIN clover_payments p ON p.created_time = o.created_time
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-02';
-- history_start gives the default lower bound
ALTER FOREIGN TABLE clover_orders OPTIONS (ADD history_start '2024-01-30 00:00+00');
\! "$FAKECTL" reset
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-01-30T00:00:00Z 2024-02-01T00:00:00Z`
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS count_matches
  FROM clover_orders WHERE created_time < '2024-02-01';
ALTER FOREIGN TABLE clover_orders OPTIONS (DROP history_start);

-- no upper bound: up to the statement's start; stable expressions are
-- evaluated when the scan starts
\! "$FAKECTL" reset
SELECT count(*) > 0 AS recent_orders,
       max(created_time) <= statement_timestamp() AS none_after_start
  FROM clover_orders WHERE created_time >= now() - interval '3 days';
\! "$FAKECTL" stats exports_created

-- LIMIT stops early: one export, at most two files downloaded
\! "$FAKECTL" reset
SELECT count(*) FROM (
    SELECT id FROM clover_orders
     WHERE created_time >= '2023-01-01' AND created_time < '2024-01-01'
     LIMIT 10) s;
\! "$FAKECTL" stats exports_created
\set d `"$FAKECTL" stats file_downloads`
SELECT :d BETWEEN 1 AND 2 AS at_most_two_files;

-- ORDER BY and aggregates
SELECT id, created_time FROM clover_orders
 WHERE created_time >= '2024-03-10' AND created_time < '2024-03-11'
 ORDER BY created_time LIMIT 3;
SELECT date_trunc('day', created_time) AS day, count(*) > 0 AS has_orders
  FROM clover_orders
 WHERE created_time >= '2024-03-10' AND created_time < '2024-03-13'
 GROUP BY 1 ORDER BY 1;

-- columns without json_path map to their name in camelCase
CREATE FOREIGN TABLE orders_plain (
    id text, total bigint, unpaid_balance bigint, pay_type text,
    created_time timestamptz, client_created_time timestamptz)
    SERVER clover OPTIONS (export_type 'ORDERS');
SELECT count(*) AS differences FROM (
    SELECT id, total, unpaid_balance, pay_type, created_time, client_created_time
      FROM orders_plain
     WHERE created_time >= '2024-03-10' AND created_time < '2024-03-12'
    EXCEPT ALL
    SELECT id, total, unpaid_balance, pay_type, created_time, client_created_time
      FROM clover_orders
     WHERE created_time >= '2024-03-10' AND created_time < '2024-03-12') d;
DROP FOREIGN TABLE orders_plain;
