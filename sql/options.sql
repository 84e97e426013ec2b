--
-- options: which options exist, where they belong, what values they take
--
-- Needs no Clover: every check here is done by the validator or at plan time.
--
-- the wrapper takes reuse_exports (setup.sql sets it for these suites) and
-- the limits of the whole app
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (region 'us');
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (ADD max_exports_per_hots '2');
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (
    ADD app_requests_per_second '40', ADD app_max_concurrent_requests '8',
    ADD max_exports_per_host '5', ADD node_share '0.5');
SELECT fdwoptions FROM pg_foreign_data_wrapper WHERE fdwname = 'clover_export_fdw';
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (
    DROP app_requests_per_second, DROP app_max_concurrent_requests,
    DROP max_exports_per_host, DROP node_share);
-- their values: positive integers, and a share in (0, 1]
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (ADD app_requests_per_second '0');
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (ADD app_max_concurrent_requests '2.5');
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (ADD max_exports_per_host '-1');
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (ADD max_exports_per_host '100001');
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (ADD node_share '0');
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (ADD node_share '1.5');
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (ADD node_share 'half');
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (ADD node_share '1');
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (DROP node_share);
-- they belong to the wrapper alone: all servers share one app
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (max_exports_per_host '2');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (node_share '0.5');

-- a good server, with every server option
CREATE SERVER opt_all FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (
    region 'eu', base_url 'http://127.0.0.1:9/', merchant_id '6E72X1BW38A7T',
    history_start '2023-01-01 00:00+00',
    service_hours 'MON-FRI 10:00-15:00, SAT 10:00-13:00',
    wait_for_service '2 hours', busy_timeout '5 min', export_timeout '1 hour',
    max_concurrent_exports '2', max_parallel_downloads '8',
    reuse_exports '30 min', connect_timeout '5s', request_timeout '30s', max_retries '3',
    ca_file '/etc/ssl/certs/ca-certificates.crt');
SELECT srvname, array_length(srvoptions, 1) FROM pg_foreign_server
 WHERE srvname = 'opt_all';

-- unknown options: the hint lists what exists on that object
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (regoin 'us');
-- options in the wrong place say where they belong
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (access_token 'secret');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (export_type 'ORDERS');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (json_path 'id');

-- bad values
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (region 'mars');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (base_url 'ftp://api.clover.com');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (base_url 'https://');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (base_url 'https://api.clover.com/?access_token=x');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (base_url 'https://user:pw@api.clover.com');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id '../../v2');
-- a merchant id is 13 upper-case letters and digits (clover-api.md)
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id 'ABC');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id '');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id '6E72X1BW38A7');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id '6E72X1BW38A7TT');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id '6E72X1BW-38A7');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id ' 6E72X1BW38A7');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id '6E72X1BW38A7Ä');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id '6e72x1bw38a7t');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (history_start 'not a time');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (history_start 'infinity');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (service_hours 'MON-FRI 15:00-10:00');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (service_hours 'weekdays 10:00-15:00');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (service_hours 'MON 10:00-15:00 TUE 10:00-15:00');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (service_hours 'MON 10:00-25:00');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (wait_for_service '-1 hour');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (busy_timeout 'soon');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (busy_timeout '30 days');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (max_concurrent_exports '0');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (max_parallel_downloads 'four');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (reuse_exports 'a while');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (reuse_exports '-10 min');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (request_timeout '0');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (export_timeout '0');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (max_retries '-1');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (ca_file 'certs/ca.pem');
-- the same option twice
CREATE SERVER opt_bad FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (region 'us', region 'eu');

-- service hours: any day order, wrapping ranges, "always"
CREATE SERVER opt_hours FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (service_hours 'always');
ALTER SERVER opt_hours OPTIONS (SET service_hours 'fri-mon 22:00-24:00, Wed 00:00-01:30');

-- tables
CREATE FOREIGN TABLE opt_orders (id text, created_time timestamptz)
    SERVER opt_all OPTIONS (export_type 'orders', rows_per_day '50');
CREATE FOREIGN TABLE opt_bad (id text) SERVER opt_all
    OPTIONS (export_type 'REFUNDS');
CREATE FOREIGN TABLE opt_bad (id text) SERVER opt_all
    OPTIONS (export_type 'ORDERS', region 'us');
CREATE FOREIGN TABLE opt_bad (id text) SERVER opt_all
    OPTIONS (export_type 'ORDERS', rows_per_day '-5');
-- a table must say what it exports: from its CREATE on, for good
CREATE FOREIGN TABLE opt_bad (id text) SERVER opt_all;
CREATE FOREIGN TABLE opt_bad (id text) SERVER opt_all
    OPTIONS (rows_per_day '50');
ALTER FOREIGN TABLE opt_orders OPTIONS (DROP export_type);
ALTER FOREIGN TABLE opt_orders OPTIONS (SET export_type 'PAYMENTS');
ALTER FOREIGN TABLE opt_orders OPTIONS (SET export_type 'orders');
-- merchant_id and history_start may be overridden per table
ALTER FOREIGN TABLE opt_orders OPTIONS (ADD merchant_id 'AAAAAAAAAAAAA',
    ADD history_start '2024-06-01 00:00+00');
ALTER FOREIGN TABLE opt_orders OPTIONS (SET merchant_id 'not valid!');
ALTER FOREIGN TABLE opt_orders OPTIONS (SET merchant_id 'abc');
-- so may reuse_exports ('0': never reuse an export for this table)
ALTER FOREIGN TABLE opt_orders OPTIONS (ADD reuse_exports '0');
ALTER FOREIGN TABLE opt_orders OPTIONS (SET reuse_exports '25 days');
-- async_capable: a boolean, on the server and on the table
ALTER SERVER opt_all OPTIONS (ADD async_capable 'false');
ALTER FOREIGN TABLE opt_orders OPTIONS (ADD async_capable 'on');
ALTER FOREIGN TABLE opt_orders OPTIONS (SET async_capable 'maybe');
ALTER SERVER opt_all OPTIONS (SET async_capable '');
ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (ADD async_capable 'true');
ALTER FOREIGN TABLE opt_orders ALTER COLUMN id OPTIONS (async_capable 'true');
CREATE USER MAPPING FOR PUBLIC SERVER opt_all
    OPTIONS (access_token 'tok', async_capable 'true');
-- a table's async_capable wins over its server's (EXPLAIN of an Append)
CREATE FOREIGN TABLE opt_orders2 (id text, created_time timestamptz)
    SERVER opt_all OPTIONS (export_type 'orders');
EXPLAIN (COSTS OFF) SELECT id FROM opt_orders
 WHERE created_time >= '2024-07-01 00:00+00' AND created_time < '2024-07-02 00:00+00'
UNION ALL SELECT id FROM opt_orders2
 WHERE created_time >= '2024-07-01 00:00+00' AND created_time < '2024-07-02 00:00+00';
ALTER FOREIGN TABLE opt_orders OPTIONS (DROP async_capable);
ALTER SERVER opt_all OPTIONS (DROP async_capable);
DROP FOREIGN TABLE opt_orders2;

-- columns
ALTER FOREIGN TABLE opt_orders ALTER COLUMN id OPTIONS (json_path 'id');
ALTER FOREIGN TABLE opt_orders ADD COLUMN emp text OPTIONS (json_path 'employee.id');
ALTER FOREIGN TABLE opt_orders ADD COLUMN raw jsonb OPTIONS (json_path '$');
ALTER FOREIGN TABLE opt_orders ADD COLUMN last4 text
    OPTIONS (json_path '$.cardTransaction.last4');
ALTER FOREIGN TABLE opt_orders ADD COLUMN bad1 text OPTIONS (json_path '');
ALTER FOREIGN TABLE opt_orders ADD COLUMN bad2 text OPTIONS (json_path 'a..b');
ALTER FOREIGN TABLE opt_orders ADD COLUMN bad3 text OPTIONS (json_path 'a.');
ALTER FOREIGN TABLE opt_orders ADD COLUMN bad4 text OPTIONS (export_type 'ORDERS');

-- user mappings take the token and nothing else
CREATE USER MAPPING FOR CURRENT_USER SERVER opt_all OPTIONS (access_token 'tok-123');
CREATE USER MAPPING FOR PUBLIC SERVER opt_all OPTIONS (access_token '');
CREATE USER MAPPING FOR PUBLIC SERVER opt_all OPTIONS (access_token 'two words');
CREATE USER MAPPING FOR PUBLIC SERVER opt_all OPTIONS (access_token E'tok\r\nX-Evil: 1');
CREATE USER MAPPING FOR PUBLIC SERVER opt_all OPTIONS (region 'us');

-- rules that span objects are checked when a query is planned
CREATE SERVER opt_nomerchant FOREIGN DATA WRAPPER clover_export_fdw;
CREATE FOREIGN TABLE opt_t1 (id text) SERVER opt_nomerchant OPTIONS (export_type 'ORDERS');
EXPLAIN (COSTS OFF) SELECT * FROM opt_t1;
-- the table's merchant and history_start win over the server's
EXPLAIN (COSTS OFF) SELECT id FROM opt_orders
 WHERE created_time < '2024-07-01 00:00+00';

-- only a superuser may decide where tokens are sent
CREATE ROLE clover_opt_user;
GRANT USAGE ON FOREIGN DATA WRAPPER clover_export_fdw TO clover_opt_user;
SET ROLE clover_opt_user;
CREATE SERVER opt_user_srv FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id '6E72X1BW38A7T');
ALTER SERVER opt_user_srv OPTIONS (ADD base_url 'http://evil.example.com');
ALTER SERVER opt_user_srv OPTIONS (ADD ca_file '/tmp/evil.pem');
ALTER SERVER opt_user_srv OPTIONS (ADD region 'sandbox');
DROP SERVER opt_user_srv;
RESET ROLE;
REVOKE USAGE ON FOREIGN DATA WRAPPER clover_export_fdw FROM clover_opt_user;
DROP ROLE clover_opt_user;

-- the default JSON key of a column is its name in camelCase
CREATE FOREIGN TABLE opt_names (
    created_time timestamptz, unpaid_balance bigint, x text)
    SERVER opt_all OPTIONS (export_type 'ORDERS');
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM opt_names
 WHERE created_time >= '2024-01-01 00:00+00' AND created_time < '2024-01-02 00:00+00';

DROP SERVER opt_all, opt_hours, opt_nomerchant CASCADE;
