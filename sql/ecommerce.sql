--
-- ecommerce: the e-commerce /v1 lists (charges, refunds, orders) paged with
-- cursors: options, the tables IMPORT creates, what Clover is asked, and
-- the rows against the fake's own account and PostgreSQL's own filter
--
\getenv fake_api FAKE_CLOVER_API
SET timezone = 'UTC';
\! "$FAKECTL" reset

--
-- Options: a table reads an export type or a list, exactly one
--
CREATE FOREIGN TABLE ec_bad (id text) SERVER clover
    OPTIONS (ecommerce_object 'payments');
CREATE FOREIGN TABLE ec_bad (id text) SERVER clover
    OPTIONS (ecommerce_object 'charges', export_type 'ORDERS');
CREATE FOREIGN TABLE ec_ok (id text) SERVER clover
    OPTIONS (ecommerce_object 'Charges');
ALTER FOREIGN TABLE ec_ok OPTIONS (DROP ecommerce_object);
ALTER FOREIGN TABLE ec_ok OPTIONS (ADD export_type 'ORDERS');
DROP FOREIGN TABLE ec_ok;
CREATE SERVER ec_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (ecommerce_object 'charges');
CREATE SERVER ec_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (ecommerce_base_url 'ftp://example.com');
ALTER USER MAPPING FOR CURRENT_USER SERVER clover
    OPTIONS (ADD ecommerce_access_token 'a token');
-- only a superuser may decide where tokens are sent
CREATE ROLE clover_ec_user;
GRANT USAGE ON FOREIGN DATA WRAPPER clover_export_fdw TO clover_ec_user;
SET ROLE clover_ec_user;
CREATE SERVER ec_user_srv FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id '6E72X1BW38A7T', ecommerce_base_url 'http://evil.example.com');
RESET ROLE;
REVOKE USAGE ON FOREIGN DATA WRAPPER clover_export_fdw FROM clover_ec_user;
DROP ROLE clover_ec_user;
-- only the sandbox's e-commerce host is documented
CREATE SERVER ec_us FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (region 'us', merchant_id '6E72X1BW38A7T');
CREATE FOREIGN TABLE ec_us_charges (id text) SERVER ec_us
    OPTIONS (ecommerce_object 'charges');
SELECT * FROM ec_us_charges;
CREATE SERVER ec_sandbox FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (region 'sandbox', merchant_id '6E72X1BW38A7T');
CREATE FOREIGN TABLE ec_sandbox_charges (id text, created_time timestamptz
                                         OPTIONS (json_path 'created'))
    SERVER ec_sandbox OPTIONS (ecommerce_object 'charges');
EXPLAIN (COSTS OFF) SELECT * FROM ec_sandbox_charges
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
DROP SERVER ec_us, ec_sandbox CASCADE;

--
-- The tables: what IMPORT FOREIGN SCHEMA made in setup
--
\d clover_charges
\d clover_refunds
\d clover_ecommerce_orders

--
-- What Clover is asked: created.gt and created.lt are strict, in whole
-- milliseconds, so [lo, hi) becomes (ceil(lo) - 1, ceil(hi))
--
EXPLAIN (COSTS OFF) SELECT id FROM clover_charges
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
EXPLAIN (COSTS OFF) SELECT id FROM clover_charges
 WHERE created_time > '2024-01-01 00:00:00.0005' AND created_time <= '2024-01-02';
EXPLAIN (COSTS OFF) SELECT id FROM clover_refunds
 WHERE created_time::date = '2024-01-03';
-- without a lower bound the whole list is paged (LIMIT still stops it)
SELECT key, value FROM clover_explain($$
  SELECT id FROM clover_refunds WHERE created_time < '2024-01-01' LIMIT 1
$$, '{Clover List, Pages Fetched, List Requests, Rows Returned}');
-- a history_start gives the lower bound
ALTER FOREIGN TABLE clover_refunds OPTIONS (ADD history_start '2023-06-01');
EXPLAIN (COSTS OFF) SELECT id FROM clover_refunds
 WHERE created_time < '2024-01-01';
ALTER FOREIGN TABLE clover_refunds OPTIONS (DROP history_start);
-- an empty range asks nothing
EXPLAIN (COSTS OFF) SELECT id FROM clover_refunds
 WHERE created_time >= '2024-01-02' AND created_time < '2024-01-01';
-- parameters are computed at execution
PREPARE ec_p(timestamptz) AS SELECT count(*) FROM clover_charges
 WHERE created_time >= $1 AND created_time < $1 + interval '1 day';
EXPLAIN (COSTS OFF) EXECUTE ec_p('2024-01-01');

--
-- The rows: exactly the fake's own account, under both readings of the
-- cursor and both list orders, over ranges of several pages
--
\set ch `"$FAKECTL" expect CHARGES 6E72X1BW38A7T 2024-01-01T00:00:00Z 2024-01-05T00:00:00Z`
\set rf `"$FAKECTL" expect REFUNDS 6E72X1BW38A7T 2024-01-01T00:00:00Z 2024-02-15T00:00:00Z`
\set eo `"$FAKECTL" expect ECOMMERCE_ORDERS 6E72X1BW38A7T 2024-01-01T00:00:00Z 2024-01-05T00:00:00Z`
SELECT (:'ch'::jsonb->>'count')::int > 300 AS charges_span_pages,
       (:'eo'::jsonb->>'count')::int > 300 AS orders_span_pages,
       (:'rf'::jsonb->>'count')::int > 100 AS refunds_span_pages;
CREATE VIEW ec_account AS
SELECT 'charges' AS list, count(*) = (:'ch'::jsonb->>'count')::bigint AS count,
       sum(amount) = (:'ch'::jsonb->>'sum')::bigint AS sum,
       md5(string_agg(id, E'\n' ORDER BY id)) = :'ch'::jsonb->>'ids_md5' AS ids
  FROM clover_charges
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-05'
UNION ALL
SELECT 'refunds', count(*) = (:'rf'::jsonb->>'count')::bigint,
       sum(amount) = (:'rf'::jsonb->>'sum')::bigint,
       md5(string_agg(id, E'\n' ORDER BY id)) = :'rf'::jsonb->>'ids_md5'
  FROM clover_refunds
 WHERE created_time >= '2024-01-01' AND created_time < '2024-02-15'
UNION ALL
SELECT 'orders', count(*) = (:'eo'::jsonb->>'count')::bigint,
       sum(amount) = (:'eo'::jsonb->>'sum')::bigint,
       md5(string_agg(id, E'\n' ORDER BY id)) = :'eo'::jsonb->>'ids_md5'
  FROM clover_ecommerce_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-05';
\! "$FAKECTL" config v1_cursor=included v1_order=unsorted
SELECT * FROM ec_account;
\! "$FAKECTL" config v1_cursor=included v1_order=newest_first
SELECT * FROM ec_account;
\! "$FAKECTL" config v1_cursor=excluded v1_order=unsorted
SELECT * FROM ec_account;
\! "$FAKECTL" config v1_cursor=excluded v1_order=newest_first
SELECT * FROM ec_account;
-- the repeats of the included reading are counted, never returned
\! "$FAKECTL" reset
SELECT key, value FROM clover_explain($$
  SELECT id FROM clover_charges
   WHERE created_time >= '2024-01-01' AND created_time < '2024-01-05'
$$, '{Pages Fetched, List Requests, Repeated Objects Skipped}');
\! "$FAKECTL" stats v1_pages
\! "$FAKECTL" stats v1_max_limit

--
-- The same rows as PostgreSQL's own filter over a superset, with bounds
-- exactly on objects' created times
--
CREATE TEMP TABLE ec_superset AS SELECT * FROM clover_charges
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-04';
SELECT created_time AS b1 FROM ec_superset ORDER BY created_time OFFSET 57 LIMIT 1 \gset
SELECT created_time AS b2 FROM ec_superset ORDER BY created_time OFFSET 251 LIMIT 1 \gset
CREATE FUNCTION ec_differences(lo_op text, hi_op text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE format($q$
        SELECT count(*) FROM (
          (SELECT id FROM clover_charges WHERE created_time %1$s $1 AND created_time %2$s $2
           EXCEPT ALL
           SELECT id FROM ec_superset WHERE created_time %1$s $1 AND created_time %2$s $2)
          UNION ALL
          (SELECT id FROM ec_superset WHERE created_time %1$s $1 AND created_time %2$s $2
           EXCEPT ALL
           SELECT id FROM clover_charges WHERE created_time %1$s $1 AND created_time %2$s $2)) d
      $q$, lo_op, hi_op) INTO n USING current_setting('ec.b1')::timestamptz,
                                      current_setting('ec.b2')::timestamptz;
    RETURN n;
END $$;
SELECT set_config('ec.b1', :'b1', false) IS NOT NULL AS b1,
       set_config('ec.b2', :'b2', false) IS NOT NULL AS b2;
SELECT lo, hi, ec_differences(lo, hi) AS differences,
       (SELECT count(*) FROM ec_superset) > 300 AS superset_spans_pages
  FROM (VALUES ('>=', '<'), ('>', '<='), ('>=', '<='), ('>', '<')) v(lo, hi);

--
-- LIMIT stops paging: LIMIT 5 is one request of limit=100
--
\! "$FAKECTL" reset
SELECT count(*) FROM (SELECT id FROM clover_charges
 WHERE created_time >= '2024-01-01' LIMIT 5) l;
\! "$FAKECTL" stats v1_requests
\! "$FAKECTL" stats v1_max_limit

--
-- Faults: Clover's error shape reaches the detail; 429 waits; 5xx and
-- dropped connections are retried; a page that does not advance stops
--
ALTER SERVER clover OPTIONS (ADD max_retries '3', ADD busy_timeout '30s');
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=v1 status=400 'body={"error":{"type":"invalid_request_error","code":"parameter_invalid","message":"Invalid value for created.gt","param":"created.gt"}}'
SELECT count(*) FROM clover_charges WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=v1 status=429 retry_after=1 skip=1
\! "$FAKECTL" fault kind=status target=v1 status=503 skip=2
\! "$FAKECTL" fault kind=drop target=v1 skip=3
\! "$FAKECTL" fault kind=malformed target=v1 skip=4
SELECT * FROM ec_account WHERE list = 'charges';
\! "$FAKECTL" stats early_retries
\! "$FAKECTL" stats faults_fired
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=v1 status=500 count=-1
SELECT count(*) FROM clover_charges WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=malformed target=v1 count=-1
SELECT count(*) FROM clover_charges WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
-- a page that adds no object yet says it has more, forever
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=v1 status=200 skip=1 count=-1 'body={"object":"list","url":"/v1/charges","has_more":true,"data":[]}'
SELECT count(*) FROM clover_charges WHERE created_time >= '2024-01-01' AND created_time < '2024-01-05';
\! "$FAKECTL" stats v1_requests
-- a token the e-commerce API refuses
\! "$FAKECTL" reset
CREATE ROLE clover_ec_reader;
CREATE USER MAPPING FOR clover_ec_reader SERVER clover
    OPTIONS (access_token 'test-token', ecommerce_access_token 'no-such-token');
GRANT SELECT ON clover_charges TO clover_ec_reader;
SET ROLE clover_ec_reader;
SELECT count(*) FROM clover_charges WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
RESET ROLE;
DROP USER MAPPING FOR clover_ec_reader SERVER clover;
REVOKE SELECT ON clover_charges FROM clover_ec_reader;
DROP ROLE clover_ec_reader;
ALTER SERVER clover OPTIONS (DROP max_retries, DROP busy_timeout);
\! "$FAKECTL" reset
DROP VIEW ec_account;
DROP FUNCTION ec_differences(text, text);
