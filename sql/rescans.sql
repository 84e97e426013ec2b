--
-- rescans: a scan whose bounds come from each outer row exports whole days
-- that the rescans for neighbouring rows share, a statement serves again
-- what it has exported, and max_exports_per_statement bounds the rest
--
SET timezone = 'UTC';
CREATE FUNCTION clover_top_node(query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    plan jsonb;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan;
    RETURN plan->0->'Plan'->>'Node Type';
END $$;

-- a week of orders and a superset of their payments, fetched by plain
-- scans: PostgreSQL's own join and filter over them is the right answer
CREATE TEMP TABLE week_orders AS
SELECT * FROM clover_orders
 WHERE created_time >= '2024-03-01' AND created_time < '2024-03-08';
CREATE TEMP TABLE payments_superset AS
SELECT * FROM clover_payments
 WHERE created_time >= '2024-03-01' AND created_time < '2024-03-10';
CREATE TEMP TABLE expected AS
SELECT o.id AS order_id, p.id AS payment_id, p.amount, p.created_time
  FROM week_orders o
  JOIN payments_superset p ON p.order_id = o.id
   AND p.created_time >= o.created_time
   AND p.created_time < o.created_time + interval '1 day';

-- each order's payments of the following day: the payments have no bound
-- of their own, so the plan is a nested loop that rescans them per order
SELECT clover_top_node($$
SELECT o.id, p.id FROM clover_orders o
  JOIN clover_payments p ON p.order_id = o.id
   AND p.created_time >= o.created_time
   AND p.created_time < o.created_time + interval '1 day'
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-08'$$)
    AS plan;
\! "$FAKECTL" reset
CREATE TEMP TABLE joined AS
SELECT o.id AS order_id, p.id AS payment_id, p.amount, p.created_time
  FROM clover_orders o
  JOIN clover_payments p ON p.order_id = o.id
   AND p.created_time >= o.created_time
   AND p.created_time < o.created_time + interval '1 day'
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-08';
-- one export of the orders, then one of two whole UTC days per day of
-- orders, not one per order
SELECT count(*) > 100 AS many_outer_rows FROM week_orders;
\! "$FAKECTL" stats exports_created
-- the same rows as PostgreSQL's own join over the superset
SELECT (SELECT count(*) FROM joined) = (SELECT count(*) FROM expected)
       AS same_count,
       (SELECT count(*) FROM expected) > 0 AS some_rows,
       NOT EXISTS (SELECT * FROM joined EXCEPT ALL SELECT * FROM expected)
       AND NOT EXISTS (SELECT * FROM expected EXCEPT ALL SELECT * FROM joined)
       AS same_rows;

-- two scans of one statement over overlapping ranges: the second is served
-- by the first's export (its files are downloaded again).  Both start when
-- the executor starts, so the second waits for the first's export while it
-- runs ("Exports Shared"), even with reuse_exports '0' (setup.sql)
\! "$FAKECTL" reset
SELECT (SELECT count(*) FROM clover_orders
         WHERE created_time >= '2024-03-01' AND created_time < '2024-03-08')
     = (SELECT count(*) FROM week_orders) AS week_matches,
       (SELECT count(*) FROM clover_orders
         WHERE created_time >= '2024-03-02' AND created_time < '2024-03-03')
     = (SELECT count(*) FROM week_orders
         WHERE created_time >= '2024-03-02' AND created_time < '2024-03-03')
       AS day_matches;
\! "$FAKECTL" stats exports_created
\! test "$("$FAKECTL" stats file_downloads)" -ge 2 && echo "files downloaded again"
-- EXPLAIN ANALYZE shows it
SELECT * FROM clover_explain($$
SELECT (SELECT count(*) FROM clover_orders
         WHERE created_time >= '2024-03-01' AND created_time < '2024-03-08'),
       (SELECT count(*) FROM clover_orders
         WHERE created_time >= '2024-03-02' AND created_time < '2024-03-03')$$,
    '{Exports Created,Exports Reused,Exports Shared}');
-- ... but not once Clover is about to delete the files: availableUntil is
-- five minutes away (the fake's clock runs 23 h 55 min behind)
\! "$FAKECTL" reset
\! "$FAKECTL" config clock_offset_ms=-86100000
SELECT (SELECT count(*) FROM clover_orders
         WHERE created_time >= '2024-03-01' AND created_time < '2024-03-08')
     = (SELECT count(*) FROM week_orders) AS week_matches,
       (SELECT count(*) FROM clover_orders
         WHERE created_time >= '2024-03-02' AND created_time < '2024-03-03')
     = (SELECT count(*) FROM week_orders
         WHERE created_time >= '2024-03-02' AND created_time < '2024-03-03')
       AS day_matches;
\! "$FAKECTL" stats exports_created
-- a new statement asks Clover again
\! "$FAKECTL" reset
SELECT count(*) = (SELECT count(*) FROM week_orders) AS week_matches
  FROM clover_orders
 WHERE created_time >= '2024-03-01' AND created_time < '2024-03-08';
SELECT count(*) = (SELECT count(*) FROM week_orders) AS week_matches
  FROM clover_orders
 WHERE created_time >= '2024-03-01' AND created_time < '2024-03-08';
\! "$FAKECTL" stats exports_created

-- max_exports_per_statement: a strict integer of at least 1, on the server
ALTER SERVER clover OPTIONS (ADD max_exports_per_statement '0');
ALTER SERVER clover OPTIONS (ADD max_exports_per_statement '2x');
ALTER FOREIGN TABLE clover_orders OPTIONS (ADD max_exports_per_statement '2');
ALTER SERVER clover OPTIONS (ADD max_exports_per_statement '2');
-- 74 days need three windows: the third export is refused before it is
-- created
\! "$FAKECTL" reset
SELECT count(*) FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-03-15';
\! "$FAKECTL" stats exports_created
-- the join above needs more than two as well
\! "$FAKECTL" reset
SELECT count(*)
  FROM clover_orders o
  JOIN clover_payments p ON p.order_id = o.id
   AND p.created_time >= o.created_time
   AND p.created_time < o.created_time + interval '1 day'
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-08';
\! "$FAKECTL" stats exports_created
-- two windows are within the limit
\! "$FAKECTL" reset
SELECT count(*) > 0 AS rows FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-02-15';
\! "$FAKECTL" stats exports_created
ALTER SERVER clover OPTIONS (DROP max_exports_per_statement);
DROP FUNCTION clover_top_node(text);
