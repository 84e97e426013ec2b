--
-- bounds: a scan returns exactly the rows PostgreSQL's own filter keeps,
-- whatever the time column's type, precision or domain and whatever the
-- session's settings.  Each check compares the wrapper with the same
-- condition applied by PostgreSQL to a superset fetched with wide bounds
-- (test/integration/test_time_bounds.py does the same for random cases).
--
SET timezone = 'UTC';
\! "$FAKECTL" reset
-- dense data, so that a range a little too narrow misses objects
\! "$FAKECTL" config queue_ms=0 processing_ms=0 merchants.6E72X1BW38A7T.orders_per_day=2000

CREATE FOREIGN TABLE o_ts (id text, created_time timestamp)
    SERVER clover OPTIONS (export_type 'ORDERS');
CREATE FOREIGN TABLE o_tz0 (id text, created_time timestamptz(0))
    SERVER clover OPTIONS (export_type 'ORDERS');
CREATE DOMAIN created_at AS timestamptz(0) CHECK (VALUE >= '2000-01-01');
CREATE FOREIGN TABLE o_dom (id text, created_time created_at)
    SERVER clover OPTIONS (export_type 'ORDERS');

-- supersets: days around New York's DST changes of 2024, and a day in May
CREATE TEMP TABLE s_ts AS
    SELECT * FROM o_ts WHERE created_time >= '2024-03-08' AND created_time < '2024-03-13'
    UNION ALL
    SELECT * FROM o_ts WHERE created_time >= '2024-11-01' AND created_time < '2024-11-06';
CREATE TEMP TABLE s_tz AS
    SELECT id, created_time FROM clover_orders
     WHERE created_time >= '2024-05-01' AND created_time < '2024-05-03';
CREATE TEMP TABLE s_tz0 AS
    SELECT * FROM o_tz0 WHERE created_time >= '2024-05-01' AND created_time < '2024-05-03';
CREATE TEMP TABLE s_dom AS
    SELECT * FROM o_dom WHERE created_time >= '2024-05-01' AND created_time < '2024-05-03';

-- 1. A timestamp column meets a timestamptz through the session's zone:
-- PostgreSQL converts the column, and that conversion jumps at DST changes.
SET timezone = 'America/New_York';
-- fall back: local 01:00-02:00 comes twice
SELECT (SELECT count(*) FROM o_ts
         WHERE created_time >= '2024-11-03 05:30+00'::timestamptz
           AND created_time < '2024-11-03 03:00'::timestamp) AS wrapper,
       (SELECT count(*) FROM s_ts
         WHERE created_time >= '2024-11-03 05:30+00'::timestamptz
           AND created_time < '2024-11-03 03:00'::timestamp) AS postgres;
-- spring forward: local 02:00-03:00 does not exist, yet columns hold it
SELECT (SELECT count(*) FROM o_ts
         WHERE created_time >= '2024-03-10 07:30+00'::timestamptz
           AND created_time < '2024-03-10 12:00'::timestamp) AS wrapper,
       (SELECT count(*) FROM s_ts
         WHERE created_time >= '2024-03-10 07:30+00'::timestamptz
           AND created_time < '2024-03-10 12:00'::timestamp) AS postgres;
-- an upper bound across the change, and equality
SELECT (SELECT count(*) FROM o_ts
         WHERE created_time > '2024-03-10 00:00'::timestamp
           AND created_time <= '2024-03-10 07:10+00'::timestamptz) AS wrapper,
       (SELECT count(*) FROM s_ts
         WHERE created_time > '2024-03-10 00:00'::timestamp
           AND created_time <= '2024-03-10 07:10+00'::timestamptz) AS postgres;
SELECT (SELECT count(*) FROM o_ts
         WHERE created_time = (SELECT created_time::timestamptz FROM s_ts
                                WHERE created_time >= '2024-11-03 01:00'
                                ORDER BY created_time LIMIT 1)) AS wrapper,
       (SELECT count(*) FROM s_ts
         WHERE created_time = (SELECT created_time::timestamptz FROM s_ts
                                WHERE created_time >= '2024-11-03 01:00'
                                ORDER BY created_time LIMIT 1)) AS postgres;
-- in a zone without DST the range stays exact
SET timezone = 'Asia/Tokyo';
EXPLAIN (COSTS OFF)
SELECT id FROM o_ts WHERE created_time >= '2024-11-03 05:30+00'::timestamptz
                      AND created_time < '2024-11-03 09:00+00'::timestamptz;
SET timezone = 'UTC';

-- 2. A column of lower precision holds createdTime rounded: an order
-- created at .5 s or later shows the next second
SELECT date_trunc('second', created_time) + interval '1 s' AS rounded_up
  FROM s_tz WHERE extract(milliseconds FROM created_time)::int % 1000 >= 500
 ORDER BY created_time LIMIT 1 \gset
SELECT (SELECT count(*) FROM o_tz0 WHERE created_time = :'rounded_up') AS wrapper,
       (SELECT count(*) FROM s_tz0 WHERE created_time = :'rounded_up') AS postgres;
SELECT (SELECT count(*) FROM o_tz0
         WHERE created_time >= :'rounded_up'
           AND created_time < :'rounded_up'::timestamptz + interval '1 min') AS wrapper,
       (SELECT count(*) FROM s_tz0
         WHERE created_time >= :'rounded_up'
           AND created_time < :'rounded_up'::timestamptz + interval '1 min') AS postgres;
-- the range asks Clover for what rounds into the bounds
EXPLAIN (COSTS OFF)
SELECT id FROM o_tz0 WHERE created_time >= '2024-05-01 12:00:00+00'
                       AND created_time <= '2024-05-01 12:00:10+00';

-- 15. A domain as the time column: its base type's bounds and precision
SELECT (SELECT count(*) FROM o_dom WHERE created_time = :'rounded_up') AS wrapper,
       (SELECT count(*) FROM s_dom WHERE created_time = :'rounded_up') AS postgres;
EXPLAIN (COSTS OFF)
SELECT id FROM o_dom WHERE created_time >= '2024-05-01 12:00:00+00'
                       AND created_time < '2024-05-01 13:00:00+00';

-- 3. history_start is an instant, whatever DateStyle and TimeZone the
-- querying session has; a time without a zone is UTC
CREATE FOREIGN TABLE o_hist (id text, created_time timestamptz)
    SERVER clover OPTIONS (export_type 'ORDERS', history_start '2024-03-11');
EXPLAIN (COSTS OFF)
SELECT id FROM o_hist WHERE created_time < '2024-03-12 00:00+00';
SET DateStyle = 'SQL, DMY';
SET timezone = 'Asia/Tokyo';
EXPLAIN (COSTS OFF)
SELECT id FROM o_hist WHERE created_time < '2024-03-12 00:00+00';
-- a date whose order depends on DateStyle is refused
ALTER FOREIGN TABLE o_hist OPTIONS (SET history_start '03/11/2024');
ALTER FOREIGN TABLE o_hist OPTIONS (SET history_start 'now');
ALTER FOREIGN TABLE o_hist OPTIONS (SET history_start '2024-03-11 09:00+09');
RESET DateStyle;
SET timezone = 'UTC';
EXPLAIN (COSTS OFF)
SELECT id FROM o_hist WHERE created_time < '2024-03-12 00:00+00';
-- intervals do not depend on IntervalStyle: "-1 26:00:00" is -1 day +26 h
SET IntervalStyle = 'sql_standard';
ALTER SERVER clover OPTIONS (ADD wait_for_service '-1 26:00:00');
ALTER SERVER clover OPTIONS (DROP wait_for_service);
RESET IntervalStyle;

-- 13. Integer options: decimal digits only, checked with the same parser
-- that reads them
ALTER SERVER clover OPTIONS (ADD max_concurrent_exports '0x2');
ALTER SERVER clover OPTIONS (ADD max_concurrent_exports '1.5');
ALTER SERVER clover OPTIONS (ADD max_concurrent_exports '020');
ALTER SERVER clover OPTIONS (ADD max_concurrent_exports ' 2');
ALTER SERVER clover OPTIONS (ADD max_retries '0144');
ALTER SERVER clover OPTIONS (ADD max_retries '007');
ALTER SERVER clover OPTIONS (DROP max_retries);

-- 14. Intervals that do not fit are refused, not wrapped
ALTER SERVER clover OPTIONS (ADD busy_timeout '20164265 years');
ALTER SERVER clover OPTIONS (ADD busy_timeout '25 days');
-- the longest request_timeout is taken as it is: a file that takes 2 s to
-- start is waited for, not cut off as a stall after 1 s and retried
ALTER SERVER clover OPTIONS (ADD request_timeout '2147483 s');
\! "$FAKECTL" fault kind=delay target=file seconds=2
SELECT key, coalesce(value, 'none') AS value FROM clover_explain($$
    SELECT id FROM clover_orders
     WHERE created_time >= '2024-05-01' AND created_time < '2024-05-01 01:00'$$,
    '{Rows Returned,Retries}');
ALTER SERVER clover OPTIONS (DROP request_timeout);

-- 12. Nothing is older than the Unix epoch: the range starts there
EXPLAIN (COSTS OFF)
SELECT id FROM clover_orders WHERE created_time >= '1960-01-01'
                               AND created_time < '1970-01-02';
EXPLAIN (COSTS OFF)
SELECT id FROM clover_orders WHERE created_time >= '1960-01-01'
                               AND created_time < '1969-12-31';
SELECT count(*) FROM clover_orders WHERE created_time >= '1960-01-01'
                                     AND created_time < '1970-01-02';
-- its export started at 0, not at a negative time
\set exports `"$FAKECTL" stats exports`
SELECT min((e->>'startTime')::bigint) AS earliest_start_time
  FROM jsonb_array_elements(:'exports'::jsonb) e;

-- 16. A condition on the column's date bounds the range: the date of a
-- timestamptz in the session's zone, as PostgreSQL's cast takes it (New
-- York's spring-forward day has 23 hours, its fall-back day 25)
CREATE TEMP TABLE s_tz_dst AS
    SELECT id, created_time FROM clover_orders
     WHERE created_time >= '2024-03-09' AND created_time < '2024-03-12'
    UNION ALL
    SELECT id, created_time FROM clover_orders
     WHERE created_time >= '2024-11-02' AND created_time < '2024-11-05';
SET timezone = 'America/New_York';
EXPLAIN (COSTS OFF)
SELECT id FROM clover_orders WHERE created_time::date = '2024-03-10';
SELECT (SELECT count(*) FROM clover_orders
         WHERE created_time::date = '2024-03-10') AS wrapper,
       (SELECT count(*) FROM s_tz_dst
         WHERE created_time::date = '2024-03-10') AS postgres;
EXPLAIN (COSTS OFF)
SELECT id FROM clover_orders WHERE date(created_time) > '2024-11-02'
                               AND date(created_time) <= '2024-11-03';
SELECT (SELECT count(*) FROM clover_orders
         WHERE date(created_time) > '2024-11-02'
           AND date(created_time) <= '2024-11-03') AS wrapper,
       (SELECT count(*) FROM s_tz_dst
         WHERE date(created_time) > '2024-11-02'
           AND date(created_time) <= '2024-11-03') AS postgres;
SELECT (SELECT count(*) FROM clover_orders
         WHERE CAST(created_time AS date) BETWEEN '2024-11-03' AND '2024-11-04'
           AND created_time < '2024-11-04 12:00') AS wrapper,
       (SELECT count(*) FROM s_tz_dst
         WHERE CAST(created_time AS date) BETWEEN '2024-11-03' AND '2024-11-04'
           AND created_time < '2024-11-04 12:00') AS postgres;
-- a timestamp column holds UTC wall time: its date is that of the value,
-- whatever the session's zone
EXPLAIN (COSTS OFF)
SELECT id FROM o_ts WHERE created_time::date = '2024-03-10';
SELECT (SELECT count(*) FROM o_ts WHERE created_time::date = '2024-03-10') AS wrapper,
       (SELECT count(*) FROM s_ts WHERE created_time::date = '2024-03-10') AS postgres;
-- a domain over timestamptz(0): its date, from createdTime rounded
SET timezone = 'Asia/Tokyo';
EXPLAIN (COSTS OFF)
SELECT id FROM o_dom WHERE created_time::date = '2024-05-02';
SELECT (SELECT count(*) FROM o_dom WHERE created_time::date = '2024-05-02') AS wrapper,
       (SELECT count(*) FROM s_dom WHERE created_time::date = '2024-05-02') AS postgres;
SET timezone = 'UTC';

DROP FOREIGN TABLE o_ts, o_tz0, o_dom, o_hist;
DROP TABLE s_dom;
DROP DOMAIN created_at;
\! "$FAKECTL" reset
