--
-- line_items: rows_from makes a row of each element of a list inside each
-- exported object; clover_line_items (from IMPORT FOREIGN SCHEMA in setup)
-- is an order's lineItems.elements
--
-- The wrapper's rows are checked against what PostgreSQL itself makes of
-- the same JSON: jsonb_array_elements over clover_orders' raw for real
-- data, and over the text of a hand-written file (served by the fake,
-- every object on 2024-02-01) for the odd cases.
--
SET timezone = 'UTC';
\set day 'created_time >= ''2024-02-01'' AND created_time < ''2024-02-02'''
\! "$FAKECTL" reset

-- the option is checked where it is set
CREATE FOREIGN TABLE li_bad (id text) SERVER clover
    OPTIONS (export_type 'ORDERS', rows_from '$');
CREATE FOREIGN TABLE li_bad (id text) SERVER clover
    OPTIONS (export_type 'ORDERS', rows_from '');
CREATE FOREIGN TABLE li_bad (id text) SERVER clover
    OPTIONS (export_type 'ORDERS', rows_from 'lineItems..elements');
CREATE FOREIGN TABLE li_bad (id text) SERVER clover
    OPTIONS (export_type 'ORDERS', rows_from 'lineItems.elements.');
CREATE FOREIGN TABLE li_bad (id text) SERVER clover
    OPTIONS (export_type 'ORDERS', rows_from '$parent.lineItems');
ALTER SERVER clover OPTIONS (ADD rows_from 'lineItems.elements');
CREATE FOREIGN TABLE li_bad (id text OPTIONS (rows_from 'lineItems.elements'))
    SERVER clover OPTIONS (export_type 'ORDERS');
CREATE FOREIGN TABLE li_bad (id text OPTIONS (json_path '$parent.'))
    SERVER clover OPTIONS (export_type 'ORDERS', rows_from 'lineItems.elements');

-- "$parent" needs rows_from: a column reading it fails when a query reads
-- it, a timestamp column whenever the table is planned (as it might be
-- the time column)
CREATE FOREIGN TABLE no_parent (
    id text,
    order_id text OPTIONS (json_path '$parent.id'),
    created_time timestamptz
) SERVER clover OPTIONS (export_type 'ORDERS');
SELECT order_id FROM no_parent WHERE :day;
SELECT count(*) FROM no_parent WHERE :day;
ALTER FOREIGN TABLE no_parent ALTER COLUMN created_time
    OPTIONS (ADD json_path '$parent.createdTime');
SELECT count(*) FROM no_parent WHERE :day;
DROP FOREIGN TABLE no_parent;

-- two months, three windows, Clover's endTime inclusive: the line items of
-- each window's orders, once each, are exactly PostgreSQL's own unnesting
-- of the orders' raw lineItems
\set range 'created_time >= ''2024-03-01'' AND created_time < ''2024-05-01'''
CREATE TEMP TABLE li AS
SELECT * FROM clover_line_items WHERE :range;
CREATE TEMP TABLE li_pg AS
SELECT o.merchant_id, o.id AS order_id, e->>'id' AS id, e->>'name' AS name,
       (e->>'price')::bigint AS price, (e->>'unitQty')::integer AS unit_qty,
       (e->>'isRevenue')::boolean AS is_revenue,
       (e->>'refunded')::boolean AS refunded,
       (e->>'exchanged')::boolean AS exchanged,
       e->'item'->>'id' AS item_id, o.created_time, e AS raw
  FROM clover_orders o, jsonb_array_elements(o.raw->'lineItems'->'elements') e
 WHERE :range;
SELECT (SELECT count(*) FROM li) > 15000 AS many_line_items,
       (SELECT count(*) FROM li) = (SELECT count(*) FROM li_pg) AS count_matches,
       (SELECT sum(price) FROM li) = (SELECT sum(price) FROM li_pg) AS sum_matches,
       (SELECT count(DISTINCT id) FROM li) = (SELECT count(*) FROM li) AS ids_unique,
       NOT EXISTS (SELECT id FROM li EXCEPT SELECT id FROM li_pg)
       AND NOT EXISTS (SELECT id FROM li_pg EXCEPT SELECT id FROM li) AS same_ids,
       NOT EXISTS (SELECT * FROM li EXCEPT ALL SELECT * FROM li_pg)
       AND NOT EXISTS (SELECT * FROM li_pg EXCEPT ALL SELECT * FROM li) AS same_rows;
-- the orders on the window edges (midnights) brought their line items once
SELECT created_time, count(*) AS line_items,
       count(*) = (SELECT jsonb_array_length(raw->'lineItems'->'elements')
                     FROM clover_orders o
                    WHERE o.created_time = li.created_time) AS all_of_them
  FROM li
 WHERE created_time IN ('2024-03-01', '2024-03-31', '2024-04-30')
 GROUP BY created_time ORDER BY created_time;
-- count(*) reads no column, and gives the same
SELECT count(*) = (SELECT count(*) FROM li_pg) AS count_star_matches
  FROM clover_line_items WHERE :range;
-- the exports are the orders'; what EXPLAIN ANALYZE counts are rows
SELECT key, CASE key WHEN 'Rows Returned'
                     THEN (value::bigint = (SELECT count(*) FROM li_pg))::text
                     ELSE value END AS value
  FROM clover_explain($$SELECT id FROM clover_line_items WHERE $$ || :'range',
                      '{Clover Export,Export Windows,Exports Created,Rows Returned}');

-- Clover's endTime exclusive: the same rows
\! "$FAKECTL" config end_inclusive=false
SELECT NOT EXISTS (SELECT * FROM li EXCEPT ALL
                   SELECT * FROM clover_line_items WHERE :range)
       AND (SELECT count(*) FROM clover_line_items WHERE :range)
           = (SELECT count(*) FROM li) AS same_rows;
\! "$FAKECTL" config end_inclusive=true
-- a bound on one instant: the midnight order's line items
SELECT count(*) = (SELECT jsonb_array_length(raw->'lineItems'->'elements')
                     FROM clover_orders WHERE created_time = '2024-04-30')
       AS one_order
  FROM clover_line_items WHERE created_time = '2024-04-30';
-- ORDER BY created_time is served by the scan too (no Sort): the latest
-- line items come from the newest window's export alone
EXPLAIN (COSTS OFF)
SELECT id, created_time FROM clover_line_items
 WHERE :range ORDER BY created_time DESC LIMIT 5;
\! "$FAKECTL" reset
SELECT array_agg(created_time) = (SELECT array_agg(created_time)
                                    FROM (SELECT created_time FROM li
                                           ORDER BY created_time DESC LIMIT 20) l)
       AS latest_20
  FROM (SELECT created_time FROM clover_line_items
         WHERE :range ORDER BY created_time DESC LIMIT 20) s;
\! "$FAKECTL" stats exports_created
DROP TABLE li, li_pg;

-- The odd cases, each in PostgreSQL's terms: a list that is absent, null,
-- empty, or under a key that is not there gives no rows (as
-- jsonb_array_elements of raw->'lineItems'->'elements', NULL, would); every
-- element is a row, objects or not (paths into a non-object are NULL, and
-- a JSON null element is SQL NULL); a repeated key means its last value.
-- Columns read in the element unless json_path starts with "$parent";
-- '$.$parent' is a key of that name in the element.
\! "$FAKECTL" reset
\! "$FAKECTL" config queue_ms=0 processing_ms=0
CREATE FOREIGN TABLE li_paths (
    order_id     text        OPTIONS (json_path '$parent.id'),
    pos          text        OPTIONS (json_path 'pos'),
    id           text,
    price        bigint,
    created_time timestamptz OPTIONS (json_path '$parent.createdTime'),
    own_created  timestamptz OPTIONS (json_path 'createdTime'),
    order_raw    jsonb       OPTIONS (json_path '$parent'),
    order_note   jsonb       OPTIONS (json_path '$parent.note'),
    order_items  jsonb       OPTIONS (json_path '$parent.lineItems.elements'),
    dollar_parent text       OPTIONS (json_path '$.$parent'),
    raw          jsonb       OPTIONS (json_path '$'),
    raw_text     text        OPTIONS (json_path '$')
) SERVER clover OPTIONS (export_type 'ORDERS', rows_from '$.lineItems.elements');
\set body '{"elements":[{"id":"O1","createdTime":1706745600000},{"id":"O2","createdTime":1706745601000,"lineItems":null},{"id":"O3","createdTime":1706745602000,"lineItems":{}},{"id":"O4","createdTime":1706745603000,"lineItems":{"elements":null}},{"id":"O5","createdTime":1706745604000,"lineItems":{"elements":[]}},{"id":"O6","lineItems":{"elements":[{"id":"A","pos":"1","price":100,"createdTime":1706745605500,"$parent":"mine"},42,"text",null,[1,{"id":"no"}],{"pos":"6","id":"B","price":-5}]},"note":{"n":1},"createdTime":1706745605000},{"id":"O7","createdTime":1706745606000,"lineItems":{"elements":[{"id":"X1"}]},"lineItems":{"elements":[{"id":"X2","pos":"1"},{"id":"X3","pos":"2"}]}},{"id":"O8","createdTime":1706745607000,"lineItems":{"elements":[{"id":"Y1"}],"elements":[{"id":"Y2"}]}},{"id":"O9","createdTime":1706745608000,"lineItems":[{"elements":[{"id":"Z1"}]}]},{"id":"O10","createdTime":1706745609000,"lineItems":{"elements":[{"id":"W1"}]},"lineItems":null}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT order_id, pos, id, price, own_created, order_note, dollar_parent,
       raw, raw_text
  FROM li_paths WHERE :day;
-- the same rows as PostgreSQL's, every column
CREATE TEMP TABLE pg_rows AS
SELECT o->>'id' AS order_id, e->>'pos' AS pos, e->>'id' AS id,
       (e->>'price')::bigint AS price,
       to_timestamp((o->>'createdTime')::numeric / 1000) AS created_time,
       to_timestamp((e->>'createdTime')::numeric / 1000) AS own_created,
       o AS order_raw, nullif(o->'note', 'null') AS order_note,
       o->'lineItems'->'elements' AS order_items,
       e->>'$parent' AS dollar_parent, nullif(e, 'null') AS raw,
       e #>> '{}' AS raw_text
  FROM jsonb_array_elements(:'body'::jsonb->'elements') o,
       jsonb_array_elements(nullif(o->'lineItems'->'elements', 'null')) e;
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
CREATE TEMP TABLE fdw_rows AS SELECT * FROM li_paths WHERE :day;
SELECT (SELECT count(*) FROM fdw_rows) AS fdw_rows,
       (SELECT count(*) FROM pg_rows) AS pg_rows,
       NOT EXISTS (SELECT * FROM fdw_rows EXCEPT ALL SELECT * FROM pg_rows)
       AND NOT EXISTS (SELECT * FROM pg_rows EXCEPT ALL SELECT * FROM fdw_rows)
       AS same_rows;
-- the same without the whole element, which other jsonb columns are
-- otherwise cut from
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT NOT EXISTS (SELECT order_id, pos, id, order_raw, order_note, order_items
                     FROM li_paths WHERE :day
                   EXCEPT ALL
                   SELECT order_id, pos, id, order_raw, order_note, order_items
                     FROM pg_rows) AS same_without_raw;
-- count(*), and the conversion function, which reads every column
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT count(*) FROM li_paths WHERE :day;
SELECT clover_export_fdw_convert_file(convert_to(:'body', 'UTF8'), 'li_paths');
DROP TABLE pg_rows, fdw_rows;

-- a list that is there but is no array is an error, as it is for
-- jsonb_array_elements, once the scan returns one of the object's rows
\set body '{"elements":[{"id":"O1","createdTime":1706745600000,"lineItems":{"elements":[{"id":"A"}]}},{"id":"O2","createdTime":1706745601000,"lineItems":{"elements":{"id":"B"}}}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT id FROM li_paths WHERE :day;
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT count(*) FROM li_paths WHERE :day;
SELECT count(*) FROM jsonb_array_elements(:'body'::jsonb->'elements') o,
       jsonb_array_elements(o->'lineItems'->'elements') e;
-- outside the window (another day, dropped), the object is not read
\set body '{"elements":[{"id":"O1","createdTime":1706745600000,"lineItems":{"elements":[{"id":"A"}]}},{"id":"O2","createdTime":1706832000000,"lineItems":{"elements":7}}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT id FROM li_paths WHERE :day;

-- a value that does not fit names the element, its list and its object
\set body '{"elements":[{"id":"O1","createdTime":1706745600000,"lineItems":{"elements":[{"id":"A","price":1},{"id":"B","price":"lots"}]}}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT id, price FROM li_paths WHERE :day;
-- an object without createdTime cannot place its rows in a window
\set body '{"elements":[{"id":"O1","createdTime":1706745600000},{"id":"O2","lineItems":{"elements":[{"id":"A","createdTime":1706745600000}]}}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT id FROM li_paths WHERE :day;

-- the time column is the one reading the object's createdTime: the
-- element's own createdTime bounds nothing
CREATE FOREIGN TABLE li_own_time (
    id text, created_time timestamptz)
    SERVER clover OPTIONS (export_type 'ORDERS', rows_from 'lineItems.elements');
SELECT count(*) FROM li_own_time WHERE :day;
DROP FOREIGN TABLE li_own_time, li_paths;
