--
-- faults: Clover's documented rules and its misbehaviour, injected by the
-- fake, and what the wrapper makes of them
--
\getenv fake_api FAKE_CLOVER_API
SET timezone = 'UTC';
-- short retries keep the test fast
ALTER SERVER clover OPTIONS (ADD max_retries '3', ADD request_timeout '1s',
                             ADD busy_timeout '30s');
CREATE VIEW week AS SELECT * FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-08';
\set e `"$FAKECTL" expect ORDERS 6E72X1BW38A7T 2024-01-01T00:00:00Z 2024-01-08T00:00:00Z`
-- with few objects per file a week is several files
\! "$FAKECTL" reset

--
-- Transient failures of polls and downloads are retried
--
\! "$FAKECTL" config objects_per_file=300
\! "$FAKECTL" fault kind=status target=poll status=500 count=2
\! "$FAKECTL" fault kind=status target=file status=502 count=1
\! "$FAKECTL" fault kind=drop target=file count=1
\! "$FAKECTL" fault kind=reset target=file count=1
\! "$FAKECTL" fault kind=truncate target=file count=1
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS complete,
       count(DISTINCT id) = count(*) AS no_duplicates
  FROM week;
\! "$FAKECTL" stats faults_fired

-- a stalled download (headers, some bytes, then silence) is given up after
-- request_timeout and fetched again
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=stall target=file seconds=20 count=1
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS complete FROM week;

-- a poll that keeps failing: max_retries, then an error naming the export
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=poll status=503 count=-1 'body={"message":"upstream unavailable"}'
SELECT count(*) FROM week;
-- a download that keeps failing (one download at a time, so that the
-- first file is the one that fails for good)
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=file status=500 count=-1
ALTER SERVER clover OPTIONS (ADD max_parallel_downloads '1');
SELECT count(*) FROM week;
ALTER SERVER clover OPTIONS (DROP max_parallel_downloads);

--
-- A POST is retried only when it cannot have created an export
--
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=post status=500 count=1
SELECT count(*) FROM week;
\! "$FAKECTL" stats posts
-- the connection dropped after Clover created the export: not repeated
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=drop target=post process=true count=1
SELECT count(*) FROM week;
\! "$FAKECTL" stats exports_created
-- nobody listening: nothing was sent, so it is retried, then it fails
CREATE SERVER clover_down FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id '6E72X1BW38A7T', base_url 'http://127.0.0.1:9',
             max_retries '2');
CREATE USER MAPPING FOR CURRENT_USER SERVER clover_down
    OPTIONS (access_token 'test-token');
CREATE FOREIGN TABLE down_orders (id text, created_time timestamptz)
    SERVER clover_down OPTIONS (export_type 'ORDERS');
\set VERBOSITY terse
SELECT count(*) FROM down_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-01-08';
\set VERBOSITY default
DROP SERVER clover_down CASCADE;

--
-- Busy: Clover runs only a few exports; a 503 while open is retried with
-- backoff until busy_timeout
--
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=post status=503 count=2 'body={"message":"Too many concurrent exports, please try again later"}'
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS complete FROM week;
\! "$FAKECTL" stats posts
-- busy for longer than busy_timeout
\! "$FAKECTL" reset
\! "$FAKECTL" config max_concurrent_exports=0
ALTER SERVER clover OPTIONS (SET busy_timeout '2s');
\set VERBOSITY terse
SELECT count(*) FROM week;
\set VERBOSITY default
ALTER SERVER clover OPTIONS (SET busy_timeout '30s');

-- never more exports at once than max_concurrent_exports (default 1)
\! "$FAKECTL" reset
SELECT count(*) > 0 AS ok FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-05-01';
\! "$FAKECTL" stats max_running_exports
ALTER SERVER clover OPTIONS (ADD max_concurrent_exports '3');
\! "$FAKECTL" reset
SELECT count(*) > 0 AS ok FROM clover_orders
 WHERE created_time >= '2024-01-01' AND created_time < '2024-07-01';
\! "$FAKECTL" stats max_running_exports
ALTER SERVER clover OPTIONS (DROP max_concurrent_exports);

--
-- Rate limits: a 429 is retried no sooner than its Retry-After
--
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=poll status=429 retry_after=1 count=1 'headers={"X-RateLimit-tokenConcurrentLimit": "5"}'
\! "$FAKECTL" fault kind=status target=post status=429 count=1
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS complete FROM week;
-- Clover lengthens the penalty of early callers; there were none
\! "$FAKECTL" stats rate_limited
\! "$FAKECTL" stats early_retries
-- polling backs off: a 6-second export costs a handful of polls
\! "$FAKECTL" reset
\! "$FAKECTL" config processing_ms=6000
SELECT key, CASE key WHEN 'Exports Created' THEN value::int = 1
                    ELSE value::int BETWEEN 3 AND 9 END AS as_expected
  FROM clover_explain('SELECT count(*) FROM week', '{Exports Created,Status Polls}');
-- and never comes near Clover's 16 requests/s per token
\! test "$("$FAKECTL" stats max_polls_per_second)" -le 8 && echo "at most 8 polls/s"
-- polls go when percentComplete predicts DONE: a 15-second export costs at
-- most 7 polls (50 ms doubling to 5 s cost 9)
\! "$FAKECTL" reset
\! "$FAKECTL" config processing_ms=15000
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS complete FROM week;
\! test "$("$FAKECTL" stats exports.0.polls)" -le 7 && echo "at most 7 polls"

--
-- Broken files are downloaded again once, then the query fails naming
-- the export, the file and the byte offset
--
\! "$FAKECTL" reset
\! "$FAKECTL" config objects_per_file=300
\! "$FAKECTL" fault kind=malformed target=file count=1
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS complete FROM week;
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=malformed target=file count=-1
SELECT count(*) FROM week;
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=no_elements target=file count=-1
SELECT count(*) FROM week;
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=element_not_object target=file count=-1
SELECT count(*) FROM week;

--
-- Files deleted at Clover: the export is created again once, if nothing
-- of that window was returned yet
--
-- (one download at a time from here: the first file is the one named)
ALTER SERVER clover OPTIONS (ADD max_parallel_downloads '1');
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=file status=410 count=1
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS complete FROM week;
\! "$FAKECTL" stats exports_created
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=file status=404 count=-1
SELECT count(*) FROM week;
-- rows of the window were already returned: no second export
\! "$FAKECTL" reset
\! "$FAKECTL" config objects_per_file=300
\! "$FAKECTL" fault kind=status target=file status=403 skip=1 count=-1
SELECT count(*) FROM week;
ALTER SERVER clover OPTIONS (DROP max_parallel_downloads);

--
-- Service hours: a 503 outside them
--
\! "$FAKECTL" reset
\! "$FAKECTL" config region=us clock_ms=1704164400000
-- the server's own calendar (sandbox: always) disagrees with Clover
SELECT count(*) FROM week;
-- with the server's hours the hint gives the next opening: hours that
-- open two hours from now, whatever the time of day the suite runs at
-- (the calendar is read on the real clock, the fake's is frozen)
DO $$
DECLARE
    h int := (extract(hour FROM now() AT TIME ZONE 'UTC')::int + 2) % 24;
BEGIN
    EXECUTE format('ALTER SERVER clover OPTIONS (ADD service_hours %L)',
                   format('MON-SUN %s:00-%s:00', lpad(h::text, 2, '0'),
                          lpad((h + 1)::text, 2, '0')));
END $$;
DO $$
DECLARE
    msg text; detail text; hint text;
BEGIN
    PERFORM count(*) FROM week;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
                            hint = PG_EXCEPTION_HINT;
    RAISE NOTICE 'message: %', msg;
    RAISE NOTICE 'detail: %', detail;
    RAISE NOTICE 'hint names the hours and the next opening: %',
        hint ~ ('^Clover accepts exports during MON-SUN \d\d:00-\d\d:00 \(UTC\); '
                'it next opens at \d{4}-\d\d-\d\d \d\d:00:00 UTC, in \d+ (h|min|s)'
                '.* set the server option wait_for_service');
END $$;
ALTER SERVER clover OPTIONS (DROP service_hours);

--
-- Polls answered 503 "closed" (Clover's hours: it may refuse more than new
-- exports) are no failure of the export: they are polled again on the
-- polling schedule, and do not count against max_retries (3 here)
--
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=poll status=503 count=5 'body={"message":"Export service is only available during these hours (UTC): MON-SUN 10:00-15:00"}'
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS complete FROM week;
\! "$FAKECTL" stats faults_fired

--
-- An export that stays PENDING or IN_PROGRESS: export_timeout, then an
-- error naming the export, its last status and percent, and the window
-- (statement_timeout only stops a build without export_timeout)
--
SET statement_timeout = '30s';
ALTER SERVER clover OPTIONS (ADD export_timeout '2s');
\! "$FAKECTL" reset
\! "$FAKECTL" config queue_ms=600000
DO $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    PERFORM count(*) FROM week;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'waited at least export_timeout: %',
        clock_timestamp() - t0 >= interval '2s';
    RAISE;
END $$;
\! "$FAKECTL" reset
\! "$FAKECTL" config queue_ms=600000
\! "$FAKECTL" fault kind=export_status target=poll stuck=true
SELECT count(*) FROM week;
-- a stuck export is polled until export_timeout, on the growing interval
\! polls="$("$FAKECTL" stats polls)"; test "$polls" -ge 5 -a "$polls" -le 8 && echo "polled 5 to 8 times in 2 s"
-- polls answered "closed" until export_timeout: the detail says so
\! "$FAKECTL" reset
\! "$FAKECTL" fault kind=status target=poll status=503 count=-1 'body={"message":"Export service is only available during these hours (UTC): MON-SUN 10:00-15:00"}'
DO $$
DECLARE
    msg text; detail text;
BEGIN
    PERFORM count(*) FROM week;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
    RAISE NOTICE 'message: %', msg;
    RAISE NOTICE 'detail names the closed polls: %',
        detail ~ '^Its last status was PENDING, 0% complete, for the ORDERS window .*; the last \d+ polls were answered HTTP 503 \(service closed\)\.$';
END $$;
ALTER SERVER clover OPTIONS (DROP export_timeout);
RESET statement_timeout;

-- the session is fine, and holds nothing, after all of this
\! "$FAKECTL" reset
SELECT count(*) = (:'e'::jsonb->>'count')::bigint AS complete FROM week;
SELECT * FROM clover_export_fdw_open_handles();
\! "$FAKECTL" stats token_on_file_host
DROP VIEW week;
ALTER SERVER clover OPTIONS (DROP max_retries, DROP request_timeout,
                             DROP busy_timeout);
