-- test/demo.sql: what a Clover app developer does with clover_export_fdw.
-- Run by test/demo.sh against the bundled fake Clover (:fake_api).
\pset footer off
\timing on
SET timezone = 'UTC';

CREATE EXTENSION clover_export_fdw;

-- one server per merchant; base_url points at the fake instead of
-- https://api.clover.com (only a superuser may set it)
CREATE SERVER clover FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (region 'us', merchant_id '6E72X1BW38A7T', base_url :'fake_api');
CREATE USER MAPPING FOR CURRENT_USER SERVER clover
    OPTIONS (access_token 'test-token');
IMPORT FOREIGN SCHEMA clover FROM SERVER clover INTO public;
\det

-- a quarter of orders: four exports of at most 30 days, run one after
-- another while the rows stream; with progress on, a NOTICE as each window
-- is done and one that sums the scan up
SET clover_export_fdw.progress = on;
SELECT date_trunc('month', created_time)::date AS month,
       count(*) AS orders,
       round(sum(total) / 100.0, 2) AS revenue_usd,
       count(*) FILTER (WHERE note IS NOT NULL) AS with_note
  FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 GROUP BY 1 ORDER BY 1;
RESET clover_export_fdw.progress;

-- the same quarter again: served by the four exports just made, which
-- every session of the cluster may reuse for reuse_exports (10 minutes)
-- (EXPLAIN ANALYZE: Exports Created: 0, Exports Reused: 4); what Clover was
-- asked, and what it cost
EXPLAIN (ANALYZE, VERBOSE, COSTS OFF)
SELECT count(*) FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01';

-- the latest orders of a quarter: the scan returns rows newest first, so
-- only the newest window is needed (on its own, one export; here it is
-- reused)
SELECT id, total, payment_state, created_time, raw->'device'->>'id' AS device
  FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 ORDER BY created_time DESC LIMIT 5;

-- line items, one row per element of an order's lineItems: the best
-- sellers of a week
SELECT name, count(*) AS sold, round(sum(price) / 100.0, 2) AS revenue_usd
  FROM clover_line_items
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-08'
   AND NOT coalesce(refunded, false) AND NOT coalesce(exchanged, false)
 GROUP BY name ORDER BY revenue_usd DESC LIMIT 5;

-- a join with a local table
CREATE TABLE staff (employee_id text PRIMARY KEY, name text);
INSERT INTO staff
SELECT employee_id, 'Employee #' || row_number() OVER (ORDER BY employee_id)
  FROM (SELECT DISTINCT employee_id FROM clover_orders
         WHERE created_time >= '2024-01-01' AND created_time < '2024-01-08'
           AND employee_id IS NOT NULL) e;
SELECT s.name, count(*) AS orders, round(sum(o.total) / 100.0, 2) AS sales_usd
  FROM clover_orders o JOIN staff s USING (employee_id)
 WHERE o.created_time >= '2024-01-01' AND o.created_time < '2024-01-08'
 GROUP BY s.name ORDER BY sales_usd DESC LIMIT 5;

-- payments by tender, both tables in one statement
SELECT p.tender_label, count(*) AS payments,
       round(sum(p.amount) / 100.0, 2) AS amount_usd
  FROM clover_payments p JOIN clover_orders o ON o.id = p.order_id
 WHERE p.created_time >= '2024-01-01' AND p.created_time < '2024-01-15'
   AND o.created_time >= '2024-01-01' AND o.created_time < '2024-01-15'
 GROUP BY 1 ORDER BY 2 DESC;

-- a materialized view for reports, and its refresh
CREATE MATERIALIZED VIEW daily_sales AS
SELECT created_time::date AS day, count(*) AS orders, sum(total) AS total_cents
  FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-03-01'
 GROUP BY 1;
CREATE UNIQUE INDEX ON daily_sales (day);
REFRESH MATERIALIZED VIEW CONCURRENTLY daily_sales;
SELECT count(*) AS days, sum(orders) AS orders,
       round(sum(total_cents) / 100.0, 2) AS revenue_usd
  FROM daily_sales;

-- the exports the cluster knows (no token, no file URL): what the queries
-- above shared
SELECT export_type, window_start, window_end, export_id, status
  FROM clover_export_fdw_exports()
 ORDER BY export_type, window_start;
