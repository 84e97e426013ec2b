--
-- order: ORDER BY created_time [DESC] is served by the scan itself (windows
-- in that direction, each sorted locally), so a LIMIT needs one window, and
-- the rows are those of PostgreSQL's own ORDER BY, whatever the order of
-- Clover's files
--
SET timezone = 'UTC';
\! "$FAKECTL" reset

-- no Sort node: the scan provides the order, in either direction
EXPLAIN (COSTS OFF)
SELECT id, created_time FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 ORDER BY created_time DESC LIMIT 5;
EXPLAIN (COSTS OFF)
SELECT id, created_time FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 ORDER BY created_time LIMIT 5;
-- without a LIMIT too
EXPLAIN (COSTS OFF)
SELECT id FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 ORDER BY created_time DESC;
-- a second key without a LIMIT: one Sort of all the rows costs less than
-- sorting each window and then the rows of equal times
EXPLAIN (COSTS OFF)
SELECT id FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 ORDER BY created_time, id;
-- an order the scan does not give keeps its Sort
EXPLAIN (COSTS OFF)
SELECT id FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 ORDER BY total LIMIT 5;

-- the latest orders of three months (four windows): the newest window's
-- export only, and its newest orders
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-01-01T00:00:00Z 2024-04-01T00:00:00Z`
\! "$FAKECTL" reset
SELECT count(*) AS rows,
       max(created_time) = to_timestamp((:'e'::jsonb->>'max_created')::numeric / 1000)
         AS first_is_newest,
       bool_and(created_time >= '2024-03-31') AS all_from_newest_window
  FROM (SELECT id, created_time FROM clover_orders
         WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
         ORDER BY created_time DESC LIMIT 5) s;
\! "$FAKECTL" stats exports_created
-- the oldest orders likewise: the oldest window only
\! "$FAKECTL" reset
SELECT min(created_time) = to_timestamp((:'e'::jsonb->>'min_created')::numeric / 1000)
         AS first_is_oldest
  FROM (SELECT id, created_time FROM clover_orders
         WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
         ORDER BY created_time LIMIT 5) s;
\! "$FAKECTL" stats exports_created

-- reading a whole 30-day window (five files) to sort it is no sign that
-- more is wanted: 900 of its 4500 rows create no export ahead
\! "$FAKECTL" reset
SELECT count(*) AS rows FROM (SELECT id FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-03-31'
 ORDER BY created_time DESC LIMIT 900) s;
\! "$FAKECTL" stats exports_created
\! "$FAKECTL" stats file_downloads

-- a sorted scan run again with new bounds (a correlated subquery) starts
-- over: one one-day export per outer row, each giving that day's latest
\! "$FAKECTL" reset
CREATE TEMP TABLE days (lo timestamptz, hi timestamptz);
INSERT INTO days VALUES ('2024-01-02', '2024-01-03'), ('2024-03-05', '2024-03-06'),
    ('2024-05-05', '2024-05-06');
EXPLAIN (COSTS OFF)
SELECT d.lo, (SELECT created_time FROM clover_orders o
               WHERE o.created_time >= d.lo AND o.created_time < d.hi
               ORDER BY created_time DESC LIMIT 1) AS latest
  FROM days d;
CREATE TEMP TABLE latest AS
SELECT d.lo, (SELECT created_time FROM clover_orders o
               WHERE o.created_time >= d.lo AND o.created_time < d.hi
               ORDER BY created_time DESC LIMIT 1) AS latest
  FROM days d;
\! "$FAKECTL" stats exports_created
SELECT l.lo, l.latest = (SELECT max(created_time) FROM clover_orders o
                          WHERE o.created_time >= d.lo AND o.created_time < d.hi)
         AS is_latest
  FROM latest l JOIN days d USING (lo) ORDER BY l.lo;
DROP TABLE days, latest;

-- the rows are PostgreSQL's own ORDER BY of the same rows, with Clover's
-- objects shuffled across files of 250; a timestamptz(0) column has ties
-- (their order among themselves is unspecified: the times are compared in
-- order, the rows as sets)
\! "$FAKECTL" reset
\! "$FAKECTL" config shuffle=true objects_per_file=250
CREATE FOREIGN TABLE orders_sec (id text, created_time timestamptz(0))
    SERVER clover OPTIONS (export_type 'ORDERS');
CREATE TEMP TABLE copy AS
SELECT id, created_time FROM orders_sec
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01';
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS all_rows,
       count(*) > count(DISTINCT created_time) AS has_ties
  FROM copy;
CREATE FUNCTION same_as_copy(query text) RETURNS TABLE (times_in_order bool, same_rows bool)
LANGUAGE plpgsql AS $$
DECLARE
    descending bool := query ~ 'DESC';
BEGIN
    EXECUTE 'CREATE TEMP TABLE got AS SELECT row_number() OVER () AS n, id, created_time FROM ('
        || query || ') s';
    RETURN QUERY
    SELECT (SELECT array_agg(created_time ORDER BY n) FROM got)
             = (SELECT CASE WHEN descending
                            THEN array_agg(created_time ORDER BY created_time DESC)
                            ELSE array_agg(created_time ORDER BY created_time) END
                  FROM copy),
           (SELECT array_agg((id, created_time)::text ORDER BY id) FROM got)
             = (SELECT array_agg((id, created_time)::text ORDER BY id) FROM copy);
    DROP TABLE got;
END $$;
SELECT * FROM same_as_copy($$SELECT id, created_time FROM orders_sec
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 ORDER BY created_time DESC$$);
SELECT * FROM same_as_copy($$SELECT id, created_time FROM orders_sec
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 ORDER BY created_time$$);
-- and the planner did use the scan's order for them
EXPLAIN (COSTS OFF)
SELECT id, created_time FROM orders_sec
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 ORDER BY created_time DESC;

-- a window bigger than work_mem is sorted on disk, with the same result
SET work_mem = '64kB';
SELECT * FROM clover_explain($$SELECT id, created_time FROM orders_sec
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 ORDER BY created_time DESC$$, '{Window Order,Windows Sorted,Windows Sorted On Disk}');
SELECT * FROM same_as_copy($$SELECT id, created_time FROM orders_sec
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 ORDER BY created_time DESC$$);
RESET work_mem;

-- a timestamp column holds UTC wall time, so its order is createdTime's
-- even across a DST change of the session's zone (2024-11-03 in New York)
SET timezone = 'America/New_York';
CREATE FOREIGN TABLE orders_ts (id text, created_time timestamp)
    SERVER clover OPTIONS (export_type 'ORDERS');
DROP TABLE copy;
CREATE TEMP TABLE copy AS
SELECT id, created_time FROM orders_ts
 WHERE created_time >= '2024-10-20' AND created_time < '2024-11-20';
SELECT * FROM same_as_copy($$SELECT id, created_time FROM orders_ts
 WHERE created_time >= '2024-10-20' AND created_time < '2024-11-20'
 ORDER BY created_time DESC$$);
EXPLAIN (COSTS OFF)
SELECT id, created_time FROM orders_ts
 WHERE created_time >= '2024-10-20' AND created_time < '2024-11-20'
 ORDER BY created_time DESC LIMIT 5;
SET timezone = 'UTC';

-- a domain over timestamptz orders like its base type
CREATE DOMAIN order_stamp AS timestamptz CHECK (VALUE >= '2020-01-01');
CREATE FOREIGN TABLE orders_dom (id text, created_time order_stamp)
    SERVER clover OPTIONS (export_type 'ORDERS');
EXPLAIN (COSTS OFF)
SELECT id FROM orders_dom
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 ORDER BY created_time DESC LIMIT 5;

-- EXPLAIN ANALYZE shows the windows as they ran: newest first
SELECT * FROM clover_explain($$
SELECT id FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'
 ORDER BY created_time DESC LIMIT 100000$$,
    '{Export Windows,Window Edges,Exports Created}');

DROP FUNCTION same_as_copy(text);
DROP TABLE copy;
DROP FOREIGN TABLE orders_sec, orders_ts, orders_dom;
DROP DOMAIN order_stamp;
\! "$FAKECTL" reset
