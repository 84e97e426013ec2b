--
-- rows_review: a column's value is what PostgreSQL makes of the same JSON
-- (issue 9): paths with empty keys, json_path '$.$', the whole-object
-- column next to odd paths, domains, every scalar type through its input
-- function, and who may call clover_export_fdw_convert_file
--
-- Each query gets its own hand-written file from the fake (a file fault
-- whose 200 body is the text of :body, verbatim); every object lies on
-- 2024-02-01.
--
SET timezone = 'UTC';
\set day 'created_time >= ''2024-02-01'' AND created_time < ''2024-02-02'''
\! "$FAKECTL" reset
\! "$FAKECTL" config queue_ms=0 processing_ms=0

-- Column names whose default paths have empty keys: "a..b" is the keys a,
-- "", b; "_" and "__" the key ""; ".." and "_.._" three empty keys.  A
-- column means the same whether raw is read or not.  json_path '$.$' is
-- the key "$", not the whole object.
CREATE FOREIGN TABLE odd_paths (
    id          text,
    created_time timestamptz,
    "a..b"      jsonb,
    "_"         jsonb,
    "__"        text,
    ".."        jsonb,
    "_.._"      text,
    dollar      text OPTIONS (json_path '$.$'),
    dollar_b    jsonb OPTIONS (json_path '$.$.b'),
    raw         jsonb OPTIONS (json_path '$')
) SERVER clover OPTIONS (export_type 'ORDERS');
\set body '{"elements":[{"id":"P1","createdTime":1706745600000,"a":{"":{"b":7},"b":8},"":"empty","$":"dollar"},{"id":"P2","createdTime":1706745601000,"":{"":{"":"deep"}},"$":{"b":[1,2]}},{"id":"P3","createdTime":1706745602000}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT id, "a..b", "_", "__", "..", "_.._", dollar, dollar_b
  FROM odd_paths WHERE :day ORDER BY id;
-- the same with raw: the same values, and each is raw's own
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT id, "a..b", "_", "__", "..", "_.._", dollar, dollar_b,
       "a..b" IS NOT DISTINCT FROM raw #> '{a,"",b}'
       AND "_" IS NOT DISTINCT FROM raw -> ''
       AND "__" IS NOT DISTINCT FROM raw ->> ''
       AND ".." IS NOT DISTINCT FROM raw #> '{"","",""}'
       AND "_.._" IS NOT DISTINCT FROM raw #>> '{"","",""}'
       AND dollar IS NOT DISTINCT FROM raw ->> '$'
       AND dollar_b IS NOT DISTINCT FROM raw #> '{$,b}' AS same_as_raw
  FROM odd_paths WHERE :day ORDER BY id;
-- the conversion function reads every column, raw included
SELECT clover_export_fdw_convert_file(convert_to(:'body', 'UTF8'), 'odd_paths');

-- clover_export_fdw_convert_file needs SELECT on the table, like a scan
CREATE ROLE rows_review_user;
SET ROLE rows_review_user;
SELECT clover_export_fdw_convert_file(convert_to(:'body', 'UTF8'), 'odd_paths');
RESET ROLE;
GRANT SELECT ON odd_paths TO rows_review_user;
SET ROLE rows_review_user;
SELECT clover_export_fdw_convert_file(convert_to(:'body', 'UTF8'), 'odd_paths');
RESET ROLE;
REVOKE SELECT ON odd_paths FROM rows_review_user;
DROP ROLE rows_review_user;

-- Domains over supported types: converted as their base type, then the
-- domain's checks apply.  Scalars of any type go through the type's input
-- function with the text raw->>'key' gives: JSON numbers into double
-- precision, real, money, oid, boolean; objects into text as jsonb's text.
CREATE DOMAIN rr_cents AS bigint CHECK (VALUE >= 0);
CREATE DOMAIN rr_label AS varchar(10) CHECK (VALUE <> 'forbidden');
CREATE DOMAIN rr_object AS jsonb CHECK (jsonb_typeof(VALUE) = 'object');
CREATE DOMAIN rr_stamp AS timestamptz CHECK (VALUE >= '2020-01-01');
CREATE DOMAIN rr_price AS numeric(8,2);
CREATE DOMAIN rr_required AS integer NOT NULL;
CREATE FOREIGN TABLE review_types (
    id          text,
    created_time timestamptz,
    amount      rr_cents,
    label       rr_label,
    payload     rr_object,
    modified    rr_stamp OPTIONS (json_path 'modifiedTime'),
    price       rr_price,
    f8          double precision,
    f4          real,
    m           money,
    o           oid,
    i           integer,
    t           text,
    b           boolean,
    n           numeric,
    raw         jsonb OPTIONS (json_path '$')
) SERVER clover OPTIONS (export_type 'ORDERS');
CREATE FOREIGN TABLE review_required (
    id text, created_time timestamptz, r rr_required
) SERVER clover OPTIONS (export_type 'ORDERS');
SET lc_monetary = 'C';
\set body '{"elements":[{"id":"T1","createdTime":1706745600000,"amount":5,"label":"ok","payload":{"x":1},"modifiedTime":1706745600000,"price":12.345,"f8":1.5,"f4":0.1,"m":1.5,"o":5,"i":1e2,"t":1.50,"b":1,"n":1E+2},{"id":"T2","createdTime":1706745601000,"amount":"7","label":"fine","payload":{"y":[]},"modifiedTime":"1706745600000","price":"3","f8":"1.5","f4":-0,"m":"2.25","o":"42","i":"12","t":{"b":1,"a":[true,null]},"b":"yes","n":-0},{"id":"T3","createdTime":1706745602000,"amount":null,"f8":2e-3,"t":-0,"b":false,"i":-0}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT id, amount, label, payload, modified, price, f8, f4, m, o, i, t, b, n
  FROM review_types WHERE :day ORDER BY id;
-- each equals PostgreSQL's own cast of raw->>'key'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT id,
       amount IS NOT DISTINCT FROM (raw->>'amount')::rr_cents AS amount,
       label IS NOT DISTINCT FROM (raw->>'label')::rr_label AS label,
       payload IS NOT DISTINCT FROM (raw->'payload')::rr_object AS payload,
       price IS NOT DISTINCT FROM (raw->>'price')::rr_price AS price,
       f8 IS NOT DISTINCT FROM (raw->>'f8')::float8 AS f8,
       f4 IS NOT DISTINCT FROM (raw->>'f4')::real AS f4,
       m IS NOT DISTINCT FROM (raw->>'m')::money AS m,
       o IS NOT DISTINCT FROM (raw->>'o')::oid AS o,
       i IS NOT DISTINCT FROM (raw->>'i')::integer AS i,
       t IS NOT DISTINCT FROM (raw->>'t')::text AS t,
       b IS NOT DISTINCT FROM (raw->>'b')::boolean AS b,
       n IS NOT DISTINCT FROM (raw->>'n')::numeric AS n
  FROM review_types WHERE :day ORDER BY id;
-- values a domain or a type refuses: PostgreSQL's error, in context
\set body '{"elements":[{"id":"E1","createdTime":1706745600000,"amount":-1}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT amount FROM review_types WHERE :day;
\set body '{"elements":[{"id":"E2","createdTime":1706745600000,"payload":[1]}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT payload FROM review_types WHERE :day;
\set body '{"elements":[{"id":"E3","createdTime":1706745600000,"modifiedTime":0}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT modified FROM review_types WHERE :day;
\set body '{"elements":[{"id":"E4","createdTime":1706745600000,"f4":1e39}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT f4 FROM review_types WHERE :day;
\set body '{"elements":[{"id":"E5","createdTime":1706745600000,"i":1.5}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT i FROM review_types WHERE :day;
\set body '{"elements":[{"id":"E6","createdTime":1706745600000,"b":2}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT b FROM review_types WHERE :day;
\set body '{"elements":[{"id":"E7","createdTime":1706745600000,"label":"forbidden"}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT label FROM review_types WHERE :day;
\set body '{"elements":[{"id":"E8","createdTime":1706745600000,"r":3},{"id":"E9","createdTime":1706745600000}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT r FROM review_required WHERE :day;
\set body '{"elements":[{"id":"E10","createdTime":1706745600000,"o":-1.5}]}'
\setenv BODY :body
\! printf '%s' "$BODY" | "$FAKECTL" serve
SELECT o FROM review_types WHERE :day;
RESET lc_monetary;

\! "$FAKECTL" reset
DROP FOREIGN TABLE odd_paths, review_types, review_required;
DROP DOMAIN rr_cents, rr_label, rr_object, rr_stamp, rr_price, rr_required;
