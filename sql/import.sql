--
-- import: IMPORT FOREIGN SCHEMA creates clover_orders, clover_line_items
-- (one row per element of an order's lineItems) and clover_payments
--
-- Clover has no schemas: any remote schema name gives the same tables, and
-- LIMIT TO / EXCEPT choose among them.  Nothing is sent to Clover.
--
CREATE EXTENSION IF NOT EXISTS clover_export_fdw;
CREATE SERVER imp_srv FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id '6E72X1BW38A7T');

CREATE SCHEMA imp_all;
IMPORT FOREIGN SCHEMA clover FROM SERVER imp_srv INTO imp_all;
\det+ imp_all.*
\d+ imp_all.clover_orders
\d+ imp_all.clover_line_items
\d+ imp_all.clover_payments

-- LIMIT TO and EXCEPT; any remote schema name
CREATE SCHEMA imp_limit;
IMPORT FOREIGN SCHEMA "whatever you like" LIMIT TO (clover_payments)
    FROM SERVER imp_srv INTO imp_limit;
CREATE SCHEMA imp_except;
IMPORT FOREIGN SCHEMA clover EXCEPT (clover_payments)
    FROM SERVER imp_srv INTO imp_except;
CREATE SCHEMA imp_items;
IMPORT FOREIGN SCHEMA clover LIMIT TO (clover_line_items)
    FROM SERVER imp_srv INTO imp_items;
CREATE SCHEMA imp_no_items;
IMPORT FOREIGN SCHEMA clover EXCEPT (clover_line_items)
    FROM SERVER imp_srv INTO imp_no_items;
CREATE SCHEMA imp_none;
IMPORT FOREIGN SCHEMA clover LIMIT TO (no_such_table)
    FROM SERVER imp_srv INTO imp_none;
SELECT foreign_table_schema, foreign_table_name
  FROM information_schema.foreign_tables
 WHERE foreign_table_schema LIKE 'imp_%'
 ORDER BY 1, 2;

-- importing twice collides like any CREATE
IMPORT FOREIGN SCHEMA clover LIMIT TO (clover_orders)
    FROM SERVER imp_srv INTO imp_all;

-- the imported tables plan without Clover
EXPLAIN (COSTS OFF)
SELECT o.id, p.amount
  FROM imp_all.clover_orders o
  JOIN imp_all.clover_payments p ON p.order_id = o.id
 WHERE o.created_time >= '2024-01-01 00:00+00' AND o.created_time < '2024-01-08 00:00+00'
   AND p.created_time >= '2024-01-01 00:00+00' AND p.created_time < '2024-01-08 00:00+00';

DROP SCHEMA imp_all, imp_limit, imp_except, imp_items, imp_no_items, imp_none
    CASCADE;
DROP SERVER imp_srv;
