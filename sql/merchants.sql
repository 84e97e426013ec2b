--
-- merchants: merchant_id, one table partitioned by merchant, and adding and
-- removing a merchant in one statement
--
-- Every table IMPORT FOREIGN SCHEMA makes has merchant_id first: the
-- table's merchant (its options, table over server), never NULL.  A column
-- named merchant_id without json_path means the same in hand-written DDL.
-- The fake knows three merchants here, each with its own data; test-token
-- may read all three.  The results are compared with the fake's own
-- answer for each merchant (fakectl expect) and with PostgreSQL's own
-- computations over the rows.
--
SET timezone = 'UTC';
\getenv fake_api FAKE_CLOVER_API
\setenv MERCHANTS 'queue_ms=0 processing_ms=0 merchants.B7Q2M4K9X1ZPA.orders_per_day=40 merchants.C8R3N5T2W6Y4D.orders_per_day=20'
\! "$FAKECTL" reset
\! "$FAKECTL" config $MERCHANTS

-- 1. merchant_id of the six imported tables (server clover, merchant
-- 6E72X1BW38A7T): every row has it, and nothing else
SELECT t, n > 0 AS has_rows, n_merchant = n AS all_the_merchant
  FROM (SELECT 'clover_orders' AS t, count(*) AS n,
               count(*) FILTER (WHERE merchant_id = '6E72X1BW38A7T') AS n_merchant
          FROM clover_orders
         WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
        UNION ALL
        SELECT 'clover_line_items', count(*),
               count(*) FILTER (WHERE merchant_id = '6E72X1BW38A7T')
          FROM clover_line_items
         WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
        UNION ALL
        SELECT 'clover_payments', count(*),
               count(*) FILTER (WHERE merchant_id = '6E72X1BW38A7T')
          FROM clover_payments
         WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
        UNION ALL
        SELECT 'clover_charges', count(*),
               count(*) FILTER (WHERE merchant_id = '6E72X1BW38A7T')
          FROM clover_charges
         WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
        UNION ALL
        SELECT 'clover_refunds', count(*),
               count(*) FILTER (WHERE merchant_id = '6E72X1BW38A7T')
          FROM clover_refunds
         WHERE created_time >= '2024-01-01' AND created_time < '2024-02-15'
        UNION ALL
        SELECT 'clover_ecommerce_orders', count(*),
               count(*) FILTER (WHERE merchant_id = '6E72X1BW38A7T')
          FROM clover_ecommerce_orders
         WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02') s;

-- a whole-row reference has it too, and EXPLAIN VERBOSE lists it like any
-- column
SELECT (o).merchant_id, (o).id IS NOT NULL AS has_id
  FROM clover_orders o
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-01 00:30'
 ORDER BY (o).id LIMIT 1;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT merchant_id, id FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';

-- the table's option merchant_id wins over the server's
CREATE FOREIGN TABLE m_table_opt (merchant_id text, id text,
                                  created_time timestamptz)
    SERVER clover OPTIONS (export_type 'ORDERS', merchant_id 'B7Q2M4K9X1ZPA');
SELECT merchant_id, count(*) > 0 AS has_rows FROM m_table_opt
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
 GROUP BY 1;

-- with a json_path, merchant_id is a key like any other column
CREATE FOREIGN TABLE m_json (merchant_id text OPTIONS (json_path 'id'),
                             id text, created_time timestamptz)
    SERVER clover OPTIONS (export_type 'ORDERS');
SELECT count(*) > 0 AS has_rows, bool_and(merchant_id = id) AS the_id
  FROM m_json
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';

-- the value is what the column type's input function gives: a varchar(13)
-- and a domain hold it, a type too short or a domain whose CHECK fails is
-- an error naming the column (EXPLAIN alone converts nothing)
CREATE DOMAIN m_ok AS varchar(13) CHECK (VALUE ~ '^[0-9A-Z]{13}$');
CREATE DOMAIN m_other AS text CHECK (VALUE = 'B7Q2M4K9X1ZPA');
CREATE FOREIGN TABLE m_types (merchant_id m_ok, id text,
                              created_time timestamptz)
    SERVER clover OPTIONS (export_type 'ORDERS');
SELECT merchant_id, pg_typeof(merchant_id), count(*) > 0 AS has_rows
  FROM m_types
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
 GROUP BY 1, 2;
CREATE FOREIGN TABLE m_short (merchant_id varchar(5), id text,
                              created_time timestamptz)
    SERVER clover OPTIONS (export_type 'ORDERS');
SELECT merchant_id FROM m_short
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
CREATE FOREIGN TABLE m_check (merchant_id m_other, id text,
                              created_time timestamptz)
    SERVER clover OPTIONS (export_type 'ORDERS');
EXPLAIN (COSTS OFF) SELECT merchant_id FROM m_check
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
SELECT merchant_id FROM m_check
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02';
-- and so does clover_export_fdw_convert_file, which fills rows as a scan
\set file '{"elements":[{"id":"A","createdTime":1704067200000},{"id":"B","createdTime":1704067201000}]}'
SELECT clover_export_fdw_convert_file(convert_to(:'file', 'UTF8'), 'clover_orders');
SELECT clover_export_fdw_convert_file(convert_to(:'file', 'UTF8'), 'm_types');
SELECT clover_export_fdw_convert_file(convert_to(:'file', 'UTF8'), 'm_check');

-- 2. The hand-written DDL of README.md: a table partitioned by merchant,
-- its partitions foreign tables of one server per merchant
CREATE SERVER m1 FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (region 'sandbox', merchant_id '6E72X1BW38A7T', base_url :'fake_api');
CREATE SERVER m2 FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (region 'sandbox', merchant_id 'B7Q2M4K9X1ZPA', base_url :'fake_api');
CREATE SERVER m3 FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (region 'sandbox', merchant_id 'C8R3N5T2W6Y4D', base_url :'fake_api');
CREATE USER MAPPING FOR CURRENT_USER SERVER m1 OPTIONS (access_token 'test-token');
CREATE USER MAPPING FOR CURRENT_USER SERVER m2 OPTIONS (access_token 'test-token');
CREATE USER MAPPING FOR CURRENT_USER SERVER m3 OPTIONS (access_token 'other-token');
CREATE TABLE all_orders (merchant_id text NOT NULL, id text, total bigint,
                         created_time timestamptz)
    PARTITION BY LIST (merchant_id);
CREATE FOREIGN TABLE orders_m1 PARTITION OF all_orders
    FOR VALUES IN ('6E72X1BW38A7T') SERVER m1 OPTIONS (export_type 'ORDERS');
CREATE FOREIGN TABLE orders_m2 PARTITION OF all_orders
    FOR VALUES IN ('B7Q2M4K9X1ZPA') SERVER m2 OPTIONS (export_type 'ORDERS');
CREATE FOREIGN TABLE orders_m3 PARTITION OF all_orders
    FOR VALUES IN ('C8R3N5T2W6Y4D') SERVER m3 OPTIONS (export_type 'ORDERS');

-- each merchant's rows are exactly the fake's answer for that merchant
\set e1 `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-01-01T00:00:00Z 2024-01-02T00:00:00Z`
\set e2 `"$FAKECTL" expect ORDERS B7Q2M4K9X1ZPA 2024-01-01T00:00:00Z 2024-01-02T00:00:00Z`
\set e3 `"$FAKECTL" expect ORDERS C8R3N5T2W6Y4D 2024-01-01T00:00:00Z 2024-01-02T00:00:00Z`
CREATE TEMP TABLE expected_orders AS
SELECT m, (e->>'count')::bigint AS n, (e->>'sum')::numeric AS total,
       e->>'ids_md5' AS ids_md5
  FROM (VALUES ('6E72X1BW38A7T', :'e1'::jsonb), ('B7Q2M4K9X1ZPA', :'e2'::jsonb),
               ('C8R3N5T2W6Y4D', :'e3'::jsonb)) v(m, e);
SELECT count(DISTINCT ids_md5) AS different_merchants FROM expected_orders;
SELECT x.m, g.n = x.n AS count_ok, g.total = x.total AS sum_ok,
       g.ids_md5 = x.ids_md5 AS ids_ok
  FROM expected_orders x
  LEFT JOIN (SELECT merchant_id, count(*) AS n, sum(total) AS total,
                    md5(string_agg(id, E'\n' ORDER BY id)) AS ids_md5
               FROM all_orders
              WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
              GROUP BY merchant_id) g ON g.merchant_id = x.m
 ORDER BY x.m;

-- 3. Partition pruning: only the merchants asked for are exported
-- exports_by_merchant(): the fake's exports since its last reset, by merchant
CREATE FUNCTION exports_by_merchant(exports jsonb)
RETURNS TABLE (merchant text, exports bigint)
LANGUAGE sql AS $$
    SELECT e->>'merchant', count(*) FROM jsonb_array_elements(exports) e
     GROUP BY 1 ORDER BY 1
$$;
EXPLAIN (COSTS OFF)
SELECT count(*) FROM all_orders
 WHERE merchant_id = 'B7Q2M4K9X1ZPA'
   AND created_time >= '2024-01-01' AND created_time < '2024-01-02';
EXPLAIN (COSTS OFF)
SELECT count(*) FROM all_orders
 WHERE merchant_id IN ('6E72X1BW38A7T', 'C8R3N5T2W6Y4D')
   AND created_time >= '2024-01-01' AND created_time < '2024-01-02';
\! "$FAKECTL" reset
\! "$FAKECTL" config $MERCHANTS
SELECT count(*) = (SELECT n FROM expected_orders WHERE m = 'B7Q2M4K9X1ZPA') AS ok
  FROM all_orders
 WHERE merchant_id = 'B7Q2M4K9X1ZPA'
   AND created_time >= '2024-01-01' AND created_time < '2024-01-02';
\set exports `"$FAKECTL" stats exports`
SELECT * FROM exports_by_merchant(:'exports');
\! "$FAKECTL" reset
\! "$FAKECTL" config $MERCHANTS
SELECT count(*) = (SELECT sum(n) FROM expected_orders
                    WHERE m IN ('6E72X1BW38A7T', 'C8R3N5T2W6Y4D')) AS ok
  FROM all_orders
 WHERE merchant_id IN ('6E72X1BW38A7T', 'C8R3N5T2W6Y4D')
   AND created_time >= '2024-01-01' AND created_time < '2024-01-02';
\set exports `"$FAKECTL" stats exports`
SELECT * FROM exports_by_merchant(:'exports');

-- a parameter of a generic plan prunes when the executor starts
SET plan_cache_mode = force_generic_plan;
PREPARE by_merchant(text) AS
SELECT count(*) FROM all_orders
 WHERE merchant_id = $1
   AND created_time >= '2024-01-01' AND created_time < '2024-01-02';
EXPLAIN (COSTS OFF) EXECUTE by_merchant('C8R3N5T2W6Y4D');
\! "$FAKECTL" reset
\! "$FAKECTL" config $MERCHANTS
EXECUTE by_merchant('C8R3N5T2W6Y4D');
SELECT n FROM expected_orders WHERE m = 'C8R3N5T2W6Y4D';
\set exports `"$FAKECTL" stats exports`
SELECT * FROM exports_by_merchant(:'exports');
DEALLOCATE by_merchant;
RESET plan_cache_mode;

-- 4. Adding and removing a merchant in one statement.  The first call
-- makes schema mc and the partitioned tables, with IMPORT's columns.
\set srv_opts '{region,sandbox,base_url,' :fake_api ',ecommerce_base_url,' :fake_api '}'
SELECT clover_add_merchant('6E72X1BW38A7T', 'test-token', 'mc', :'srv_opts');
SELECT clover_add_merchant('B7Q2M4K9X1ZPA', 'test-token', 'mc', :'srv_opts');
SELECT clover_add_merchant(merchant_id => 'C8R3N5T2W6Y4D',
                           access_token => 'other-token',
                           into_schema => 'mc', server_options => :'srv_opts',
                           ecommerce_access_token => 'test-token');
\d mc.clover_orders
SELECT c.relname AS parent, count(*) AS partitions
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent
 WHERE c.relnamespace = 'mc'::regnamespace
 GROUP BY 1 ORDER BY 1;
\det mc.*
-- the parents have exactly the columns IMPORT gives
CREATE SCHEMA m_imported;
IMPORT FOREIGN SCHEMA clover FROM SERVER clover INTO m_imported;
SELECT c.relname,
       (SELECT array_agg(attname || ' ' || format_type(atttypid, atttypmod) ORDER BY attnum)
          FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0)
     = (SELECT array_agg(attname || ' ' || format_type(atttypid, atttypmod) ORDER BY attnum)
          FROM pg_attribute WHERE attrelid = ('m_imported.' || c.relname)::regclass
           AND attnum > 0) AS same_columns
  FROM pg_class c
 WHERE c.relnamespace = 'mc'::regnamespace AND c.relkind = 'p'
 ORDER BY 1;
-- and so do the partitions, with IMPORT's json_path options
CREATE FUNCTION m_columns(rel regclass) RETURNS text[]
LANGUAGE sql AS $$
    SELECT array_agg(attname || ' ' || format_type(atttypid, atttypmod) || ' '
                     || coalesce(attfdwoptions::text, '') ORDER BY attnum)
      FROM pg_attribute WHERE attrelid = rel AND attnum > 0
$$;
SELECT count(*) AS partitions,
       count(*) FILTER (WHERE m_columns(i.inhrelid) =
                        m_columns(('m_imported.' || p.relname)::regclass))
           AS same_columns_and_paths
  FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
 WHERE p.relnamespace = 'mc'::regnamespace;
DROP FUNCTION m_columns(regclass);
DROP SCHEMA m_imported CASCADE;
-- the tokens are in the user mappings only
SELECT s.srvname, um.usename,
       (SELECT array_agg(split_part(o, '=', 1)) FROM unnest(um.umoptions) o)
           AS user_mapping_options
  FROM pg_foreign_server s LEFT JOIN pg_user_mappings um ON um.srvid = s.oid
 WHERE s.srvname LIKE 'clover\_%' ORDER BY 1;
SELECT srvname, regexp_replace(srvoptions::text, ':[0-9]+', ':PORT', 'g')
           AS server_options
  FROM pg_foreign_server
 WHERE srvname LIKE 'clover\_%' ORDER BY 1;

-- exact per-merchant results over the partitions
\! "$FAKECTL" reset
\! "$FAKECTL" config $MERCHANTS
SELECT x.m, g.n = x.n AS count_ok, g.total = x.total AS sum_ok,
       g.ids_md5 = x.ids_md5 AS ids_ok
  FROM expected_orders x
  LEFT JOIN (SELECT merchant_id, count(*) AS n, sum(total) AS total,
                    md5(string_agg(id, E'\n' ORDER BY id)) AS ids_md5
               FROM mc.clover_orders
              WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
              GROUP BY merchant_id) g ON g.merchant_id = x.m
 ORDER BY x.m;
\set p1 `"$FAKECTL" expect PAYMENTS 6E72X1BW38A7T 2024-01-01T00:00:00Z 2024-01-02T00:00:00Z`
\set p2 `"$FAKECTL" expect PAYMENTS B7Q2M4K9X1ZPA 2024-01-01T00:00:00Z 2024-01-02T00:00:00Z`
\set p3 `"$FAKECTL" expect PAYMENTS C8R3N5T2W6Y4D 2024-01-01T00:00:00Z 2024-01-02T00:00:00Z`
SELECT x.m, g.n = (x.e->>'count')::bigint AS count_ok,
       g.amount = (x.e->>'sum')::numeric AS sum_ok,
       g.ids_md5 = x.e->>'ids_md5' AS ids_ok
  FROM (VALUES ('6E72X1BW38A7T', :'p1'::jsonb), ('B7Q2M4K9X1ZPA', :'p2'::jsonb),
               ('C8R3N5T2W6Y4D', :'p3'::jsonb)) x(m, e)
  LEFT JOIN (SELECT merchant_id, count(*) AS n, sum(amount) AS amount,
                    md5(string_agg(id, E'\n' ORDER BY id)) AS ids_md5
               FROM mc.clover_payments
              WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
              GROUP BY merchant_id) g ON g.merchant_id = x.m
 ORDER BY x.m;
-- line items (rows_from): each merchant's are the elements of its orders'
-- lineItems, as PostgreSQL counts them
SELECT o.merchant_id, o.items > 0 AS has_items, li.items = o.items AS same
  FROM (SELECT merchant_id,
               sum(coalesce(jsonb_array_length(line_items->'elements'), 0)) AS items
          FROM mc.clover_orders
         WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
         GROUP BY 1) o
  LEFT JOIN (SELECT merchant_id, count(*) AS items FROM mc.clover_line_items
              WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
              GROUP BY 1) li USING (merchant_id)
 ORDER BY 1;
-- the e-commerce lists: each row says its partition's merchant
SELECT merchant_id, count(*) > 0 AS has_rows, tableoid::regclass
  FROM mc.clover_charges
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
 GROUP BY 1, 3 ORDER BY 1;

-- pruning over the partitions the function made
\! "$FAKECTL" reset
\! "$FAKECTL" config $MERCHANTS
SELECT count(*) > 0 AS has_rows FROM mc.clover_payments
 WHERE merchant_id = '6E72X1BW38A7T'
   AND created_time >= '2024-01-01' AND created_time < '2024-01-02';
\set exports `"$FAKECTL" stats exports`
SELECT * FROM exports_by_merchant(:'exports');

-- 5. One merchant failing (its token refused) fails the whole statement,
-- naming the merchant and its server: never the others' rows alone
ALTER USER MAPPING FOR CURRENT_USER SERVER clover_c8r3n5t2w6y4d
    OPTIONS (SET access_token 'noperm-token');
SELECT merchant_id, count(*) FROM mc.clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
 GROUP BY 1 ORDER BY 1;
ALTER USER MAPPING FOR CURRENT_USER SERVER clover_c8r3n5t2w6y4d
    OPTIONS (SET access_token 'other-token');

-- 6. Errors say what to do; a token is never echoed
SELECT clover_add_merchant('B7Q2M4K9X1ZPA', 'test-token', 'mc', :'srv_opts');
SELECT clover_add_merchant('D9S4P6V3X7Z5E', 'not a token', 'mc', :'srv_opts');
SELECT clover_add_merchant('D9S4P6V3X7Z5E', 'test-token', 'mc', '{region}');
SELECT clover_add_merchant('d9s4p6v3x7z5e', 'test-token', 'mc', '{region,sandbox}');
-- public holds the foreign tables setup.sql imported, not partitioned ones
SELECT clover_add_merchant('D9S4P6V3X7Z5E', 'test-token', 'public', :'srv_opts');
SELECT count(*) AS servers_left_behind FROM pg_foreign_server
 WHERE srvname = 'clover_d9s4p6v3x7z5e';
SELECT clover_remove_merchant('D9S4P6V3X7Z5E', 'mc');

-- removing: partitions, user mappings and server go; the others stay
CREATE USER MAPPING FOR PUBLIC SERVER clover_b7q2m4k9x1zpa
    OPTIONS (access_token 'other-token');
SELECT clover_remove_merchant('B7Q2M4K9X1ZPA', 'mc');
SELECT clover_remove_merchant('B7Q2M4K9X1ZPA', 'mc');
SELECT count(*) AS servers FROM pg_foreign_server
 WHERE srvname = 'clover_b7q2m4k9x1zpa';
\det mc.*
SELECT merchant_id, count(*) > 0 AS has_rows FROM mc.clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'
 GROUP BY 1 ORDER BY 1;
-- and it can be added again
SELECT clover_add_merchant('B7Q2M4K9X1ZPA', 'test-token', 'mc', :'srv_opts');
SELECT count(*) AS partitions FROM pg_inherits
 WHERE inhparent = 'mc.clover_orders'::regclass;
-- something else on the server stops its removal, and nothing is dropped
CREATE FOREIGN TABLE m_own (id text, created_time timestamptz)
    SERVER clover_b7q2m4k9x1zpa OPTIONS (export_type 'ORDERS');
SELECT clover_remove_merchant('B7Q2M4K9X1ZPA', 'mc');
SELECT count(*) AS partitions FROM pg_inherits
 WHERE inhparent = 'mc.clover_orders'::regclass;
DROP FOREIGN TABLE m_own;
SELECT clover_remove_merchant('B7Q2M4K9X1ZPA', 'mc');
SELECT clover_remove_merchant('6E72X1BW38A7T', 'mc');
SELECT clover_remove_merchant('C8R3N5T2W6Y4D', 'mc');
SELECT count(*) AS partitions FROM pg_inherits
 WHERE inhparent = 'mc.clover_orders'::regclass;

-- 7. ALTER EXTENSION UPDATE from 1.1 brings the functions
CREATE DATABASE merchants_update;
\c merchants_update
SET client_min_messages = warning;
CREATE EXTENSION clover_export_fdw VERSION '1.1';
RESET client_min_messages;
SELECT count(*) AS functions FROM pg_proc WHERE proname LIKE 'clover\_%merchant';
ALTER EXTENSION clover_export_fdw UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'clover_export_fdw';
SELECT proname, pg_get_function_identity_arguments(oid) AS args
  FROM pg_proc WHERE proname LIKE 'clover\_%merchant' ORDER BY 1;
SELECT clover_add_merchant('6E72X1BW38A7T', 'test-token', 'clover', '{region,eu}');
\det clover.*
SELECT clover_remove_merchant('6E72X1BW38A7T');
\c contrib_regression
DROP DATABASE merchants_update;

DROP SCHEMA mc CASCADE;
DROP TABLE all_orders;
DROP FOREIGN TABLE m_table_opt, m_json, m_types, m_short, m_check;
DROP DOMAIN m_ok, m_other;
DROP FUNCTION exports_by_merchant(jsonb);
DROP SERVER m1, m2, m3 CASCADE;
\! "$FAKECTL" reset
