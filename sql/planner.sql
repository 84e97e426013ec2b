--
-- planner: estimates, rescans, parameterized paths, LIMIT, ORDER BY,
-- aggregates, and both tables in one statement
--
SET timezone = 'UTC';
\! "$FAKECTL" reset
CREATE FUNCTION clover_plan_json(query text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    plan jsonb;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan;
    RETURN plan;
END $$;

-- row estimates are the range's days times rows_per_day (default 200)
SELECT (j->0->'Plan'->>'Plan Rows')::int AS rows_for_ten_days
  FROM (SELECT clover_plan_json($$SELECT * FROM clover_orders
          WHERE created_time >= '2024-01-01' AND created_time < '2024-01-11'$$) j) s;
ALTER FOREIGN TABLE clover_orders OPTIONS (ADD rows_per_day '250');
SELECT (j->0->'Plan'->>'Plan Rows')::int AS rows_for_ten_days
  FROM (SELECT clover_plan_json($$SELECT * FROM clover_orders
          WHERE created_time >= '2024-01-01' AND created_time < '2024-01-11'$$) j) s;
ALTER FOREIGN TABLE clover_orders OPTIONS (DROP rows_per_day);
-- a window is a remote job: even a tiny range costs more at startup than
-- any local scan, so the planner does not re-run exports per outer row
SELECT (j->0->'Plan'->>'Startup Cost')::float >= 1000 AS expensive_startup
  FROM (SELECT clover_plan_json($$SELECT * FROM clover_orders
          WHERE created_time >= '2024-01-01' AND created_time < '2024-01-01 00:01'$$) j) s;

-- EXPLAIN shows the time range once, and VERBOSE where its windows meet;
-- every qual is still checked by PostgreSQL (the Filter line)
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-02-15'
   AND total > 1000 AND state = 'locked';

-- the range ends where the query ends it: "<=" gives a closed end, and
-- no upper bound the statement start (no instant that changes each run)
EXPLAIN (COSTS OFF)
SELECT id FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time <= '2024-01-02 12:00';
SELECT j->0->'Plan'->>'Time Range' AS time_range
  FROM (SELECT clover_plan_json($$SELECT id FROM clover_orders
          WHERE created_time >= '2024-01-01'$$) j) s;
-- the scan outputs the columns the query uses: for count(*), none
EXPLAIN (VERBOSE, COSTS OFF)
SELECT count(*) FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';

-- LIMIT stops the scan early: one export, at most two files, over a year
\! "$FAKECTL" reset
SELECT count(*) AS rows FROM (SELECT id FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2025-01-01' LIMIT 10) s;
\! "$FAKECTL" stats exports_created
\! test "$("$FAKECTL" stats file_downloads)" -le 2 && echo "at most two files"

-- ORDER BY created_time with LIMIT is right (a sort above the scan)
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-02-01T00:00:00Z 2024-02-03T00:00:00Z`
SELECT (SELECT array_agg(created_time) FROM
          (SELECT created_time FROM clover_orders
            WHERE created_time >= '2024-02-01' AND created_time < '2024-02-03'
            ORDER BY created_time LIMIT 5) s)
     = (SELECT (array_agg(created_time ORDER BY created_time))[1:5]
          FROM clover_orders
         WHERE created_time >= '2024-02-01' AND created_time < '2024-02-03')
       AS first_five_in_order;
-- aggregates over the tables agree with the fake's own figures
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS count_matches,
       sum(total) = (:'e'::jsonb->>'sum')::numeric AS sum_matches,
       max(created_time) < '2024-02-03' AS max_in_range
  FROM clover_orders
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-03';

-- a rescan with the same parameters replays what it fetched: the inner side
-- of a nested loop scans Clover once, however many outer rows there are
\! "$FAKECTL" reset
CREATE TABLE some_ids (id text);
INSERT INTO some_ids SELECT 'no such id ' || g FROM generate_series(1, 5) g;
ANALYZE some_ids;
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SET enable_material = off;
SELECT * FROM clover_explain($$
SELECT count(o.id) FROM some_ids s LEFT JOIN clover_orders o
    ON o.id = s.id
   AND o.created_time >= '2024-01-01' AND o.created_time < '2024-01-03'$$,
    '{Exports Created,Rows Replayed On Rescans}');
\! "$FAKECTL" stats exports_created
RESET enable_hashjoin;
RESET enable_mergejoin;
RESET enable_material;

-- bounds from another table: a parameterized path gives each outer row
-- its own windows, and only those days are exported
\! "$FAKECTL" reset
CREATE TABLE days (lo timestamptz, hi timestamptz);
INSERT INTO days VALUES ('2024-01-02', '2024-01-03'), ('2024-03-05', '2024-03-06');
ANALYZE days;
EXPLAIN (COSTS OFF)
SELECT d.lo, count(o.id) FROM days d
  JOIN clover_orders o ON o.created_time >= d.lo AND o.created_time < d.hi
 GROUP BY d.lo ORDER BY d.lo;
\set e1 `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-01-02T00:00:00Z 2024-01-03T00:00:00Z count`
\set e2 `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-03-05T00:00:00Z 2024-03-06T00:00:00Z count`
SELECT d.lo, count(o.id) = CASE WHEN d.lo < '2024-02-01' THEN :e1 ELSE :e2 END AS count_matches
  FROM days d
  JOIN clover_orders o ON o.created_time >= d.lo AND o.created_time < d.hi
 GROUP BY d.lo ORDER BY d.lo;
-- two one-day exports, not a history-long scan
\! "$FAKECTL" stats exports_created
DROP TABLE days, some_ids;

-- both tables in one statement never run more exports at once than
-- max_concurrent_exports (default 1), also when each spans windows
\! "$FAKECTL" reset
\! "$FAKECTL" config processing_ms=300
SELECT (SELECT count(*) FROM clover_orders
         WHERE created_time >= '2024-01-01' AND created_time < '2024-03-01') > 0 AS orders,
       (SELECT count(*) FROM clover_payments
         WHERE created_time >= '2024-01-01' AND created_time < '2024-03-01') > 0 AS payments;
\! "$FAKECTL" stats max_running_exports
SELECT count(*) > 0 AS joined
  FROM clover_orders o JOIN clover_payments p ON p.order_id = o.id
 WHERE o.created_time >= '2024-01-01' AND o.created_time < '2024-02-15'
   AND p.created_time >= '2024-01-01' AND p.created_time < '2024-02-15';
\! "$FAKECTL" stats max_running_exports
\! "$FAKECTL" stats exports_created

-- costs: an export costs as much as reading 10 000 pages, so a plain scan
-- of 90 days (three windows) stays below jit_above_cost (no JIT for a plan
-- whose time goes to waiting for Clover) ...
SELECT (j->0->'Plan'->>'Total Cost')::float
         < current_setting('jit_above_cost')::float AS below_jit_above_cost
  FROM (SELECT clover_plan_json($$SELECT * FROM clover_orders
          WHERE created_time >= '2024-01-01' AND created_time < '2024-03-31'$$) j) s;
-- ... while exporting per outer row is chosen only for a tiny outer side:
-- one outer row may rescan a parameterized scan, a thousand join with one
-- scan of the payments' constant range
CREATE TABLE one_order (id text, created_time timestamptz);
INSERT INTO one_order VALUES ('no such id', '2024-03-02 10:00+00');
CREATE TABLE many_orders (id text, created_time timestamptz);
INSERT INTO many_orders
SELECT 'no such id ' || g, '2024-03-01'::timestamptz + g * interval '10 minutes'
  FROM generate_series(1, 1000) g;
ANALYZE one_order, many_orders;
CREATE FUNCTION clover_join_node(outer_table text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN jsonb_path_query_first(clover_plan_json(format($q$
SELECT count(*) FROM %I o
  JOIN clover_payments p ON p.order_id = o.id
   AND p.created_time >= o.created_time
   AND p.created_time < o.created_time + interval '1 day'
 WHERE p.created_time >= '2024-03-01' AND p.created_time < '2024-03-09'$q$,
        outer_table)),
        'strict $.**."Node Type" ? (@ like_regex "Join|Loop")') #>> '{}';
END $$;
SELECT clover_join_node('one_order') AS one_outer_row,
       clover_join_node('many_orders') AS thousand_outer_rows;
DROP FUNCTION clover_join_node(text);
DROP TABLE one_order, many_orders;
DROP FUNCTION clover_plan_json(text);
