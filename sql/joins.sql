--
-- joins: foreign tables in real queries - joins with local tables by every
-- join method, a materialized view and its refreshes
--
\! "$FAKECTL" reset
SET timezone = 'UTC';

-- a local table of employees, named from the data itself
CREATE TABLE employees (id text PRIMARY KEY, name text NOT NULL);
INSERT INTO employees
SELECT employee_id, 'Employee ' || row_number() OVER (ORDER BY employee_id)
  FROM (SELECT DISTINCT employee_id FROM clover_orders
         WHERE created_time >= '2024-03-01' AND created_time < '2024-03-08'
           AND employee_id IS NOT NULL) e;
SELECT count(*) > 0 AS have_employees FROM employees;
ANALYZE employees;

-- the same join by hash, merge and nested loop gives the same answer
CREATE TEMP TABLE join_results (method text, n bigint, total numeric);
SET enable_mergejoin = off; SET enable_nestloop = off;
EXPLAIN (COSTS OFF)
SELECT e.name, count(*), sum(o.total)
  FROM clover_orders o JOIN employees e ON e.id = o.employee_id
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-08'
 GROUP BY e.name;
INSERT INTO join_results
SELECT 'hash', count(*), sum(o.total)
  FROM clover_orders o JOIN employees e ON e.id = o.employee_id
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-08';
RESET enable_mergejoin; SET enable_hashjoin = off;
EXPLAIN (COSTS OFF)
SELECT count(*) FROM clover_orders o JOIN employees e ON e.id = o.employee_id
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-08';
INSERT INTO join_results
SELECT 'merge', count(*), sum(o.total)
  FROM clover_orders o JOIN employees e ON e.id = o.employee_id
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-08';
RESET enable_nestloop; SET enable_mergejoin = off;
EXPLAIN (COSTS OFF)
SELECT count(*) FROM clover_orders o JOIN employees e ON e.id = o.employee_id
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-08';
INSERT INTO join_results
SELECT 'nestloop', count(*), sum(o.total)
  FROM clover_orders o JOIN employees e ON e.id = o.employee_id
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-08';
RESET enable_hashjoin; RESET enable_mergejoin;
SELECT count(DISTINCT (n, total)) = 1 AS all_methods_agree, min(n) > 0 AS nonempty
  FROM join_results;
-- every order of the week has its employee or none (a LEFT JOIN keeps all)
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-03-01T00:00:00Z 2024-03-08T00:00:00Z`
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS left_join_keeps_all
  FROM clover_orders o LEFT JOIN employees e ON e.id = o.employee_id
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-08';

-- orders with their payments: both tables in one statement
SELECT count(*) > 0 AS paid_orders,
       bool_and(p.created_time >= o.created_time) AS paid_after_ordered
  FROM clover_orders o
  JOIN clover_payments p ON p.order_id = o.id
 WHERE o.created_time >= '2024-03-01' AND o.created_time < '2024-03-03'
   AND p.created_time >= '2024-03-01' AND p.created_time < '2024-03-04';

-- a materialized view for reports, refreshed normally and concurrently
\! "$FAKECTL" reset
CREATE MATERIALIZED VIEW march_orders AS
SELECT id, employee_id, total, created_time FROM clover_orders
 WHERE created_time >= '2024-03-01' AND created_time < '2024-04-01';
CREATE UNIQUE INDEX ON march_orders (id);
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-03-01T00:00:00Z 2024-04-01T00:00:00Z`
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS count_matches,
       sum(total) = (:'e'::jsonb->>'sum')::numeric AS sum_matches
  FROM march_orders;
REFRESH MATERIALIZED VIEW march_orders;
REFRESH MATERIALIZED VIEW CONCURRENTLY march_orders;
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS count_matches
  FROM march_orders;
-- each build and refresh ran its own export
\! "$FAKECTL" stats exports_created

-- daily sales per employee, from orders and payments
CREATE VIEW daily_sales AS
SELECT d.day, d.employee_id, d.orders, d.order_total, coalesce(p.paid, 0) AS paid
  FROM (SELECT date_trunc('day', created_time) AS day, employee_id,
               count(*) AS orders, sum(total) AS order_total
          FROM clover_orders
         WHERE created_time >= '2024-03-01' AND created_time < '2024-03-04'
         GROUP BY 1, 2) d
  LEFT JOIN (SELECT date_trunc('day', created_time) AS day, employee_id,
                    sum(amount) AS paid
               FROM clover_payments
              WHERE created_time >= '2024-03-01' AND created_time < '2024-03-04'
                AND result = 'SUCCESS'
              GROUP BY 1, 2) p USING (day, employee_id);
SELECT count(DISTINCT day) AS days, sum(orders) > 0 AS has_orders,
       sum(paid) > 0 AS has_payments
  FROM daily_sales;
DROP VIEW daily_sales;
DROP MATERIALIZED VIEW march_orders;
DROP TABLE employees;
