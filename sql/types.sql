--
-- types: every supported column type, checked against PostgreSQL's own
-- reading of the same JSON (the whole object, as jsonb), over thousands of
-- real objects; nulls and absent keys; values that do not fit
--
\! "$FAKECTL" reset
SET timezone = 'UTC';

CREATE FOREIGN TABLE order_types (
    id              text,
    total_text      text        OPTIONS (json_path 'total'),
    total_int       integer     OPTIONS (json_path 'total'),
    total_big       bigint      OPTIONS (json_path 'total'),
    total_num       numeric     OPTIONS (json_path 'total'),
    total_num2      numeric(14,2) OPTIONS (json_path 'total'),
    is_vat          boolean     OPTIONS (json_path 'isVat'),
    is_vat_text     text        OPTIONS (json_path 'isVat'),
    created_tstz    timestamptz OPTIONS (json_path 'createdTime'),
    created_ts      timestamp   OPTIONS (json_path 'createdTime'),
    created_date    date        OPTIONS (json_path 'createdTime'),
    created_ms      bigint      OPTIONS (json_path 'createdTime'),
    note            text,
    note_varchar    varchar     OPTIONS (json_path 'note'),
    note_json       json        OPTIONS (json_path 'note'),
    employee        jsonb       OPTIONS (json_path 'employee'),
    employee_json   json        OPTIONS (json_path 'employee'),
    employee_text   text        OPTIONS (json_path 'employee'),
    employee_id     text        OPTIONS (json_path 'employee.id'),
    line_items      jsonb       OPTIONS (json_path 'lineItems'),
    item_count      jsonb       OPTIONS (json_path 'lineItems.elements'),
    state           text,
    missing         text        OPTIONS (json_path 'noSuchKey'),
    missing_deep    text        OPTIONS (json_path 'employee.noSuchKey.x'),
    raw             jsonb       OPTIONS (json_path '$'),
    raw_json        json        OPTIONS (json_path '$'),
    raw_text        text        OPTIONS (json_path '$')
) SERVER clover OPTIONS (export_type 'ORDERS');

-- a week of orders, kept locally to compare column by column
CREATE TEMP TABLE typed AS
SELECT * FROM order_types
 WHERE created_tstz >= '2024-02-01' AND created_tstz < '2024-02-08';
SELECT count(*) > 500 AS enough_rows FROM typed;

-- each typed column equals what PostgreSQL makes of the same JSON value
SELECT count(*) FILTER (WHERE total_text IS DISTINCT FROM raw->>'total') AS total_text,
       count(*) FILTER (WHERE total_int IS DISTINCT FROM (raw->>'total')::integer) AS total_int,
       count(*) FILTER (WHERE total_big IS DISTINCT FROM (raw->>'total')::bigint) AS total_big,
       count(*) FILTER (WHERE total_num IS DISTINCT FROM (raw->'total')::numeric) AS total_num,
       count(*) FILTER (WHERE total_num2 IS DISTINCT FROM (raw->'total')::numeric(14,2)) AS total_num2,
       count(*) FILTER (WHERE is_vat IS DISTINCT FROM (raw->'isVat')::boolean) AS is_vat,
       count(*) FILTER (WHERE is_vat_text IS DISTINCT FROM raw->>'isVat') AS is_vat_text
  FROM typed;
SELECT count(*) FILTER (WHERE created_tstz IS DISTINCT FROM
                        to_timestamp((raw->>'createdTime')::numeric / 1000)) AS created_tstz,
       count(*) FILTER (WHERE created_ts IS DISTINCT FROM
                        to_timestamp((raw->>'createdTime')::numeric / 1000) AT TIME ZONE 'UTC') AS created_ts,
       count(*) FILTER (WHERE created_date IS DISTINCT FROM
                        (to_timestamp((raw->>'createdTime')::numeric / 1000) AT TIME ZONE 'UTC')::date) AS created_date,
       count(*) FILTER (WHERE created_ms IS DISTINCT FROM (raw->>'createdTime')::bigint) AS created_ms
  FROM typed;
SELECT count(*) FILTER (WHERE note IS DISTINCT FROM raw->>'note') AS note,
       count(*) FILTER (WHERE note_varchar IS DISTINCT FROM raw->>'note') AS note_varchar,
       count(*) FILTER (WHERE note_json::jsonb IS DISTINCT FROM nullif(raw->'note', 'null')) AS note_json,
       count(*) FILTER (WHERE employee IS DISTINCT FROM nullif(raw->'employee', 'null')) AS employee,
       count(*) FILTER (WHERE employee_json::jsonb IS DISTINCT FROM nullif(raw->'employee', 'null')) AS employee_json,
       count(*) FILTER (WHERE employee_text::jsonb IS DISTINCT FROM nullif(raw->'employee', 'null')) AS employee_text,
       count(*) FILTER (WHERE employee_id IS DISTINCT FROM raw->'employee'->>'id') AS employee_id,
       count(*) FILTER (WHERE line_items IS DISTINCT FROM raw->'lineItems') AS line_items,
       count(*) FILTER (WHERE item_count IS DISTINCT FROM raw->'lineItems'->'elements') AS items,
       count(*) FILTER (WHERE state IS DISTINCT FROM raw->>'state') AS state
  FROM typed;
-- the three whole-object columns are the same object
SELECT count(*) FILTER (WHERE raw_json::jsonb IS DISTINCT FROM raw) AS raw_json,
       count(*) FILTER (WHERE raw_text::jsonb IS DISTINCT FROM raw) AS raw_text,
       count(*) FILTER (WHERE missing IS NOT NULL OR missing_deep IS NOT NULL) AS missing
  FROM typed;

-- the data has what makes conversion hard, and it comes through intact
SELECT count(*) FILTER (WHERE note LIKE '%' || chr(10) || '%') > 0 AS newlines,
       count(*) FILTER (WHERE note LIKE '%"%') > 0 AS quotes,
       count(*) FILTER (WHERE strpos(note, E'\\') > 0) > 0 AS backslashes,
       count(*) FILTER (WHERE note ~ '[^\x01-\x7f]') > 0 AS non_ascii,
       count(*) FILTER (WHERE raw ? 'note' AND raw->'note' = 'null') > 0 AS null_notes,
       count(*) FILTER (WHERE NOT raw ? 'note') > 0 AS absent_notes,
       count(*) FILTER (WHERE note IS NULL) =
       count(*) FILTER (WHERE NOT raw ? 'note' OR raw->'note' = 'null') AS nulls_match
  FROM typed;

-- values that do not fit their column: an error naming the column and the
-- object, never a silently different value
CREATE FOREIGN TABLE order_small (
    id text, created_time timestamptz,
    created_int integer OPTIONS (json_path 'createdTime'), note varchar(5))
    SERVER clover OPTIONS (export_type 'ORDERS');
SELECT count(created_int) FROM order_small
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-02';
SELECT count(note) FROM order_small
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-02';
-- the same table is fine when those columns are not read
SELECT count(*) > 0 AS fine FROM order_small
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-02';

-- Clover data anomalies, injected by the fake into the first object of
-- every file
\! "$FAKECTL" config 'anomalies=["huge_total"]'
SELECT sum(total) FROM clover_orders
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-02';
SELECT sum(total_num) > 0 AS numeric_holds_it FROM order_types
 WHERE created_tstz >= '2024-02-01' AND created_tstz < '2024-02-02';
\! "$FAKECTL" config 'anomalies=["float_total"]'
SELECT sum(total) FROM clover_orders
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-02';
SELECT count(*) FILTER (WHERE total_num % 1 <> 0) AS fractional FROM order_types
 WHERE created_tstz >= '2024-02-01' AND created_tstz < '2024-02-02';
\! "$FAKECTL" config 'anomalies=["string_client_time"]'
SELECT max(client_created_time) FROM clover_orders
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-02';
SELECT count(*) > 0 AS unread_columns_do_not_matter FROM clover_orders
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-02';
\! "$FAKECTL" config 'anomalies=["nul_in_note"]'
SELECT count(note) FROM clover_orders
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-02';
SELECT count(raw) FROM clover_orders
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-02';
SELECT count(note_json) > 0 AS json_keeps_the_escape FROM order_types
 WHERE created_tstz >= '2024-02-01' AND created_tstz < '2024-02-02';
\! "$FAKECTL" config 'anomalies=["deep_nesting"]'
SELECT count(*) FILTER (WHERE jsonb_typeof(raw->'note') = 'array') > 0 AS nested,
       count(*) FILTER (WHERE note LIKE '[[[%') > 0 AS note_as_json_text
  FROM clover_orders
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-02';
\! "$FAKECTL" config 'anomalies=[]'

-- jsonb columns are built from the file's bytes without jsonb_in: they
-- must be exactly what jsonb_in makes of the same text, escapes, unicode,
-- big and fractional numbers and deep nesting included
CREATE FOREIGN TABLE order_raw (
    raw jsonb OPTIONS (json_path '$'),
    raw_text text OPTIONS (json_path '$'),
    line_items jsonb,
    line_items_text text OPTIONS (json_path 'lineItems'),
    created_time timestamptz)
    SERVER clover OPTIONS (export_type 'ORDERS');
\! "$FAKECTL" config 'anomalies=["float_total", "deep_nesting"]'
SELECT count(*) > 1000 AS many,
       count(*) FILTER (WHERE raw IS DISTINCT FROM raw_text::jsonb
                           OR raw::text IS DISTINCT FROM raw_text::jsonb::text) AS raw_differs
  FROM order_raw
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-08';
\! "$FAKECTL" config 'anomalies=["huge_total"]'
SELECT count(*) FILTER (WHERE raw::text IS DISTINCT FROM raw_text::jsonb::text) AS raw_differs
  FROM order_raw
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-08';
-- a hand-written file: duplicate keys (the last wins, also among 40 keys
-- with long shared prefixes, non-ASCII and empty keys), keys that sort by
-- length then bytes, every escape, surrogate pairs, numbers jsonb keeps as
-- written (1.50, 1e5), empty and deeply nested containers, white space
-- everywhere
\! "$FAKECTL" config 'anomalies=[]'
\! "$FAKECTL" serve "$(dirname "$FAKECTL")/../data/tricky_export.json"
SELECT count(*) AS objects,
       count(*) FILTER (WHERE raw = raw_text::jsonb
                          AND raw::text = raw_text::jsonb::text) AS same_as_jsonb_in,
       count(*) FILTER (WHERE line_items::text IS NOT DISTINCT FROM
                              line_items_text::jsonb::text) AS same_line_items,
       max(raw->>'note') AS note,
       max((raw->'total')::text) AS total,
       max((raw->'exp')::text) AS exp,
       max(raw->>'createdTimeX07') AS x07,
       max(raw->>'') AS empty_key,
       max(jsonb_array_length(jsonb_path_query_array(raw, '$.keyvalue()'))) AS most_keys
  FROM order_raw
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-02';
-- line items alone (built from their own bytes, not cut from raw)
\! "$FAKECTL" serve "$(dirname "$FAKECTL")/../data/tricky_export.json"
SELECT count(*) AS objects,
       count(*) FILTER (WHERE line_items::text IS NOT DISTINCT FROM
                              line_items_text::jsonb::text) AS same_line_items,
       max(line_items->'elements'->0->>'name') AS name
  FROM order_raw
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-02';
\! "$FAKECTL" reset
-- line items alone are built from their own bytes, not cut from raw
SELECT count(*) FILTER (WHERE line_items::text IS DISTINCT FROM
                              line_items_text::jsonb::text) AS line_items_differ
  FROM order_raw
 WHERE created_time >= '2024-02-01' AND created_time < '2024-02-08';
\! "$FAKECTL" config 'anomalies=[]'

DROP FOREIGN TABLE order_types, order_small, order_raw;
