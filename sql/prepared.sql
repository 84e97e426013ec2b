--
-- prepared: bounds from parameters are evaluated at execution, for custom
-- and generic plans alike
--
\! "$FAKECTL" reset
SET timezone = 'UTC';

PREPARE orders_between(timestamptz, timestamptz) AS
    SELECT count(*) AS n, sum(total) AS total FROM clover_orders
     WHERE created_time >= $1 AND created_time < $2;

\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-01-01T00:00:00Z 2024-01-15T00:00:00Z`
EXECUTE orders_between('2024-01-01', '2024-01-15') \gset r_
SELECT :r_n = (:'e'::jsonb->>'count')::bigint AS count_matches,
       :r_total = (:'e'::jsonb->>'sum')::numeric AS sum_matches;

\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-02-01T00:00:00Z 2024-03-15T00:00:00Z`
EXECUTE orders_between('2024-02-01', '2024-03-15') \gset r_
SELECT :r_n = (:'e'::jsonb->>'count')::bigint AS count_matches,
       :r_total = (:'e'::jsonb->>'sum')::numeric AS sum_matches;

-- a generic plan has Params in place of the bounds
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE orders_between('2024-01-01', '2024-01-15');
\! "$FAKECTL" reset
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-01-01T00:00:00Z 2024-01-15T00:00:00Z`
EXECUTE orders_between('2024-01-01', '2024-01-15') \gset r_
SELECT :r_n = (:'e'::jsonb->>'count')::bigint AS count_matches,
       :r_total = (:'e'::jsonb->>'sum')::numeric AS sum_matches;
\! "$FAKECTL" stats exports_created
SELECT * FROM clover_explain($$EXECUTE orders_between('2024-01-01', '2024-03-01')$$,
    '{Time Range,Export Windows,Exports Created}');

-- a NULL parameter matches nothing: no request at all
\! "$FAKECTL" reset
EXECUTE orders_between(NULL, '2024-01-15');
\! "$FAKECTL" stats requests_total
RESET plan_cache_mode;

-- date parameters compare in the session's time zone
SET timezone = 'Asia/Tokyo';
PREPARE orders_on(date) AS
    SELECT count(*) FROM clover_orders
     WHERE created_time >= $1 AND created_time < $1 + 1;
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-03-09T15:00:00Z 2024-03-10T15:00:00Z`
EXECUTE orders_on('2024-03-10') \gset r_
SELECT :r_count = (:'e'::jsonb->>'count')::bigint AS count_matches;
RESET timezone;

-- a SQL function whose arguments bound the scan
CREATE FUNCTION orders_in(lo timestamptz, hi timestamptz) RETURNS bigint
    LANGUAGE sql STABLE AS
$$ SELECT count(*) FROM clover_orders WHERE created_time >= lo AND created_time < hi $$;
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-01-05T00:00:00Z 2024-01-06T00:00:00Z`
SELECT orders_in('2024-01-05 00:00+00', '2024-01-06 00:00+00')
     = (:'e'::jsonb->>'count')::bigint AS count_matches;
DROP FUNCTION orders_in;
DEALLOCATE ALL;
