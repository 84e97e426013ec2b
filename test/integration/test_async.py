"""Scans of many merchants under an asynchronous Append (issue 14).

Four merchants of their own on the fake (and a fifth for the /v1 lists),
each with its own server, user mapping and tables; their tables are read
together through UNION ALL and through a table partitioned BY LIST whose
partitions are the merchants' foreign tables.  Exports take about a second
at the fake (queue_ms, processing_ms); the fake's own running cap is
raised, the wrapper's per-merchant max_concurrent_exports stays 1.

 1. EXPLAIN shows "Async Foreign Scan" under the Append of a UNION ALL and
    of the partitioned table; not with async_capable 'false' on a server or
    on a table, nor with enable_async_append off, nor for a scan sorted by
    created_time;
 2. per merchant, count, sum and the md5 of the sorted ids equal the fake's
    (fakectl expect) over several windows, async and not, through UNION
    ALL and through the partitions; orders and payments of one merchant in
    one Append (both waiting for that merchant's one slot) too;
 3. concurrency from the fake's records: under a LIMIT larger than the
    result (a scan then creates its next export only once its rows are
    read) the exports after each merchant's first run at the same time for
    several merchants under async (the fake's createdTime / modifiedTime of
    each export; without async one merchant at a time, a note); the fake
    saw 4 exports running at once, never more (one slot per merchant);
    Clover's per-token limits (5 requests at once, 16/s) still hold;
 4. LIMIT 10 over the Append creates only the merchants' first exports;
 5. one merchant failing (its user mapping's token lacks permission, or
    the merchant is not on the region's host) fails the statement with an
    error naming that merchant and its server: no rows;
 6. pg_cancel_backend(), statement_timeout and Ctrl-C in psql end an async
    Append within 0.5 s while its exports run and while it downloads; the
    session is usable, holds no curl handle or buffer and has as many open
    descriptors as before (no epoll or timerfd left), also after an error;
 7. the e-commerce /v1 lists (clover_charges) of two merchants under an
    async Append: exact;
 8. rescans of async scans, against PostgreSQL's own answer over the rows
    copied into tables: the Append in a correlated subquery (new runs per
    parameter, reusing the statement's exports), in an uncorrelated ALL
    subquery (rescanned after a partial read: replayed), bounded by each
    outer row (new windows per row, exact per day), and a join of two
    async UNION ALLs whose orders and payments need the same merchants'
    slots.

Pass or fail is decided by rows against the fake's expected data, counts
from the fake's stats and plans; the async and non-async timings are
notes.
"""

import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import psycopg2

from common import (ADMIN, API, backend_pid, connect, describe, fake_config,
                    fake_fault, fake_reset, fake_stats, fresh_database,
                    open_handles, plan_nodes, run_in_thread, wait_until, Tap)

DB = "itest_async"
# merchants of their own: 13 upper-case letters and digits
MERCHANTS = ["ASYNC0MERCH01", "ASYNC0MERCH02", "ASYNC0MERCH03", "ASYNC0MERCH04"]
ORDERS_PER_DAY = [60, 90, 120, 150]
V1_MERCHANT = "ASYNC0MERCH05"      # /v1: one token reaches one merchant
V1_TOKENS = {"async-v1-token-1": MERCHANTS[0], "async-v1-token-5": V1_MERCHANT}
TIMING = {"queue_ms": 100, "processing_ms": 1000, "max_concurrent_exports": 20}
LIMIT_SECS = 0.5
# 75 days: windows of 30, 30 and 15 days per merchant
RANGE = ("2024-01-01", "2024-03-16")
RANGE2 = ("2024-05-03", "2024-06-20")   # 48 days: two windows


def server(i):
    return "async_m%d" % (i + 1)


def orders(i):
    return "orders_m%d" % (i + 1)


def payments(i):
    return "payments_m%d" % (i + 1)


# ------------------------------------------------------------------ helpers

def expect_full(kind, merchant, start, end):
    """The fake's answer for created in [start, end), with the ids."""
    q = urllib.parse.urlencode({"type": kind, "merchant": merchant, "ids": 1,
                                "start": start + "T00:00:00Z", "end": end + "T00:00:00Z"})
    with urllib.request.urlopen(ADMIN + "/expect?" + q, timeout=120) as resp:
        return json.loads(resp.read())


def expect(kind, merchant, start, end):
    """The fake's (count, sum, md5 of the sorted ids) for created in
    [start, end)."""
    e = expect_full(kind, merchant, start, end)
    return (e["count"], e["sum"], e["ids_md5"] if e["count"] else None)


def expect_ids(kind, indexes, start, end):
    """Each merchant's ids, by index."""
    return {i: expect_full(kind, MERCHANTS[i], start, end)["ids"] for i in indexes}


def reset(**config):
    """A fresh fake with this suite's merchants, tokens and slow exports."""
    fake_reset()
    fake_config(merchants=dict({m: {"region": "*", "orders_per_day": n}
                                for m, n in zip(MERCHANTS, ORDERS_PER_DAY)},
                               **{V1_MERCHANT: {"region": "*", "orders_per_day": 80}}),
                tokens={t: [m] for t, m in V1_TOKENS.items()},
                **dict(TIMING, **config))


def query(conn, sql, params=None):
    """(rows, None) or (None, the error)."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return (cur.fetchall() if cur.description else []), None
    except psycopg2.Error as e:
        return None, e


def run(conn, sql):
    rows, err = query(conn, sql)
    if err:
        raise err
    return rows



def set_async(conn, on):
    run(conn, "SET enable_async_append = %s" % ("on" if on else "off"))


def bounds(start, end, col="created_time"):
    return ("%s >= '%s 00:00+00' AND %s < '%s 00:00+00'" % (col, start, col, end))


# A branch of a UNION ALL that computes a column (SELECT 1 AS m, ...,
# even SELECT tableoid, ...), or whose columns the query above uses only in
# part or in another order, is a Subquery Scan, which PostgreSQL 15 never
# runs asynchronously: the UNION ALLs here select plain columns, all used
# in order, and rows are told apart by their ids (the fake's lists of each
# merchant's ids).
# A partitioned table's rows say their partition by tableoid, whose name
# ends in the merchant's number.
MERCHANT_NO = "substring(%s::regclass::text from '[0-9]+$')::int - 1"


def union_rows(tables, start, end, cols="id, total"):
    """A UNION ALL of the tables' rows."""
    return " UNION ALL ".join("SELECT %s FROM %s WHERE %s" % (cols, t, bounds(start, end))
                              for _, t in tables)


def union_sql(tables, start, end):
    """count and sum over a UNION ALL (whose branches select just the
    column the aggregates use: see MERCHANT_NO)."""
    return ("SELECT count(*), coalesce(sum(total), 0) FROM (%s) u"
            % union_rows(tables, start, end, "total"))


def per_merchant(rows, want_ids, indexes):
    """(index, count, sum, md5 of the sorted ids) per merchant of rows of
    (id, amount), each row given to the merchant whose ids hold it; rows
    of none count as merchant -1."""
    owner = {}
    for i in indexes:
        for x in want_ids[i]:
            owner[x] = i
    ids = {}
    sums = {}
    for rid, amount in rows:
        i = owner.get(rid, -1)
        ids.setdefault(i, []).append(rid)
        sums[i] = sums.get(i, 0) + int(amount or 0)
    return [(i, len(ids[i]), sums[i],
             hashlib.md5("\n".join(sorted(ids[i])).encode()).hexdigest())
            for i in sorted(ids)]


def partitions_sql(start, end):
    """The same per partition of all_orders (grouped by tableoid: the
    partition key column is not filled on this branch, see setup)."""
    return ("SELECT " + MERCHANT_NO % "tableoid" + ", count(*), coalesce(sum(total), 0), "
            "md5(string_agg(id, E'\\n' ORDER BY id)) FROM all_orders "
            "WHERE %s GROUP BY 1 ORDER BY 1" % bounds(start, end))


def want_per_merchant(kind, indexes, start, end):
    return [(i,) + expect(kind, MERCHANTS[i], start, end) for i in indexes]


def normalize(rows):
    return [(int(r[0]), int(r[1]), int(r[2]), r[3]) for r in rows] if rows else rows


def plan_text(conn, sql):
    return "\n".join(r[0] for r in run(conn, "EXPLAIN (COSTS OFF) " + sql))


def plan_json(conn, sql, analyze=False):
    rows = run(conn, "EXPLAIN (%sFORMAT JSON) %s" % ("ANALYZE, " if analyze else "", sql))
    plan = rows[0][0]
    return json.loads(plan) if isinstance(plan, str) else plan


def nodes(plan, node_type):
    return plan_nodes(plan, node_type)


def count_async(text):
    return text.count("Async Foreign Scan")


def backend_fds(conn):
    """Open descriptors of the connection's backend, as it lists them."""
    return run(conn, "SELECT count(*) FROM pg_ls_dir('/proc/' || pg_backend_pid() || '/fd')")[0][0]


def export_times():
    """Per export of the fake: (merchant, startTime, createdTime,
    modifiedTime): the fake's own record of when it was created and when it
    last changed status (DONE, for a finished export)."""
    out = []
    for ex in fake_stats()["exports"]:
        url = "%s/v3/merchants/%s/exports/%s" % (API, ex["merchant"], ex["id"])
        req = urllib.request.Request(url, headers={"Authorization": "Bearer test-token"})
        obj = json.loads(urllib.request.urlopen(req, timeout=30).read())
        out.append((ex["merchant"], obj["startTime"], obj["createdTime"],
                    obj["modifiedTime"], obj["status"]))
    return out


def later_overlap(times):
    """The most merchants whose exports after their first were running at
    one instant (by the fake's createdTime and modifiedTime)."""
    first = {}
    for m, start, _, _, _ in times:
        first[m] = min(first.get(m, start), start)
    later = [(c, mod, m) for m, start, c, mod, _ in times if start != first[m]]
    best = 0
    for c, _, _ in later:
        running = {m for c2, mod2, m in later if c2 <= c < mod2}
        best = max(best, len(running))
    return best




# -------------------------------------------------------------------- setup

def setup():
    """The database: per merchant a server, a user mapping (test-token),
    orders and payments tables; all_orders partitioned by merchant."""
    conn = fresh_database(DB)
    reset()
    with conn.cursor() as cur:
        for i, m in enumerate(MERCHANTS + [V1_MERCHANT]):
            # a scan waiting in line for a slot fails after busy_timeout
            cur.execute("CREATE SERVER %s FOREIGN DATA WRAPPER clover_export_fdw "
                        "OPTIONS (region 'sandbox', merchant_id %%s, base_url %%s, "
                        "ecommerce_base_url %%s, busy_timeout '30s')" % server(i),
                        (m, API, API))
            cur.execute("SET log_statement = 'none'")
            cur.execute("CREATE USER MAPPING FOR CURRENT_USER SERVER %s "
                        "OPTIONS (access_token 'test-token')" % server(i))
            cur.execute("RESET log_statement")
            cur.execute("CREATE FOREIGN TABLE %s (id text, total bigint, "
                        "created_time timestamptz) SERVER %s "
                        "OPTIONS (export_type 'ORDERS')" % (orders(i), server(i)))
            cur.execute("CREATE FOREIGN TABLE %s (id text, order_id text OPTIONS (json_path 'order.id'), "
                        "amount bigint, created_time timestamptz) SERVER %s "
                        "OPTIONS (export_type 'PAYMENTS')" % (payments(i), server(i)))
            cur.execute("CREATE FOREIGN TABLE charges_m%d (id text, amount bigint, "
                        "created_time timestamptz OPTIONS (json_path 'created')) "
                        "SERVER %s OPTIONS (ecommerce_object 'charges')"
                        % (i + 1, server(i)))
        # a table partitioned by merchant: the merchant's own column
        # (merchant_id without json_path, issue 14) is not filled on this
        # branch, so the rows are grouped by partition (tableoid), and the
        # key serves the partition bounds (and pruning) only
        cur.execute("CREATE TABLE all_orders (merchant_id text, id text, total bigint, "
                    "created_time timestamptz) PARTITION BY LIST (merchant_id)")
        for i, m in enumerate(MERCHANTS):
            cur.execute("CREATE FOREIGN TABLE all_orders_%d PARTITION OF all_orders "
                        "FOR VALUES IN (%%s) SERVER %s OPTIONS (export_type 'ORDERS')"
                        % (i + 1, server(i)), (m,))
        cur.execute("SET log_statement = 'none'")
        for token, m in V1_TOKENS.items():
            i = (MERCHANTS + [V1_MERCHANT]).index(m)
            cur.execute("ALTER USER MAPPING FOR CURRENT_USER SERVER %s "
                        "OPTIONS (ADD ecommerce_access_token %%s)" % server(i), (token,))
        cur.execute("RESET log_statement")
    return conn


ALL = list(enumerate(orders(i) for i in range(len(MERCHANTS))))


# ------------------------------------------------------------------- checks

def explain_checks(tap, conn):
    """Check 1: which plans run their scans asynchronously."""
    n = len(MERCHANTS)
    union = union_rows(ALL, *RANGE)
    text = plan_text(conn, union)
    tap.check(count_async(text) == n and "Append" in text,
              "1: EXPLAIN of a UNION ALL of %d merchants: %d Async Foreign Scans" % (n, n),
              text)
    text = plan_text(conn, union_sql(ALL, *RANGE))
    tap.check(count_async(text) == n,
              "1: EXPLAIN of count and sum over that UNION ALL: %d Async Foreign Scans" % n,
              text)
    text = plan_text(conn, partitions_sql(*RANGE))
    tap.check(count_async(text) == n,
              "1: EXPLAIN of a table partitioned by merchant: %d Async Foreign Scans" % n,
              text)
    text = plan_text(conn, "SELECT count(*) FROM all_orders WHERE merchant_id IN "
                     "('%s', '%s') AND %s" % (MERCHANTS[0], MERCHANTS[2], bounds(*RANGE)))
    tap.check(count_async(text) == 2 and MERCHANTS[1] not in text
              and MERCHANTS[0] in text and MERCHANTS[2] in text,
              "1: partitions pruned by merchant_id IN (...): 2 Async Foreign Scans", text)

    run(conn, "ALTER SERVER %s OPTIONS (ADD async_capable 'false')" % server(1))
    text = plan_text(conn, union)
    tap.check(count_async(text) == n - 1 and "Async Foreign Scan on %s" % orders(1) not in text,
              "1: async_capable 'false' on one server: its scan is not async", text)
    run(conn, "ALTER FOREIGN TABLE %s OPTIONS (ADD async_capable 'true')" % orders(1))
    text = plan_text(conn, union)
    tap.check(count_async(text) == n,
              "1: async_capable 'true' on the table wins over the server's 'false'", text)
    run(conn, "ALTER FOREIGN TABLE %s OPTIONS (DROP async_capable)" % orders(1))
    run(conn, "ALTER SERVER %s OPTIONS (DROP async_capable)" % server(1))
    run(conn, "ALTER FOREIGN TABLE %s OPTIONS (ADD async_capable 'off')" % orders(2))
    text = plan_text(conn, union)
    tap.check(count_async(text) == n - 1,
              "1: async_capable 'off' on one table: its scan is not async", text)
    run(conn, "ALTER FOREIGN TABLE %s OPTIONS (DROP async_capable)" % orders(2))

    set_async(conn, False)
    text = plan_text(conn, union)
    tap.check(count_async(text) == 0 and "Foreign Scan" in text,
              "1: enable_async_append off: no Async Foreign Scan", text)
    set_async(conn, True)

    # a scan sorted by created_time is never async: a Merge Append of sorted
    # scans, or an Append under ORDER BY ... LIMIT
    run(conn, "SET enable_sort = off")
    text = plan_text(conn, "SELECT id, created_time FROM all_orders WHERE %s "
                     "ORDER BY created_time LIMIT 5" % bounds(*RANGE))
    run(conn, "RESET enable_sort")
    tap.check(count_async(text) == 0 and "Merge Append" in text,
              "1: scans sorted by created_time (under a Merge Append) are not async", text)


def exact_checks(tap, conn):
    """Check 2: exact per-merchant results, async and not."""
    idx = list(range(len(MERCHANTS)))
    timings = {}
    for start, end in (RANGE, RANGE2):
        want = want_per_merchant("ORDERS", idx, start, end)
        ids = expect_ids("ORDERS", idx, start, end)
        windows = 3 if (start, end) == RANGE else 2
        for on in (True, False):
            label = "async" if on else "not async"
            set_async(conn, on)
            for name, sql in (("UNION ALL", union_rows(ALL, start, end)),
                              ("partitions", partitions_sql(start, end))):
                reset()
                t0 = time.monotonic()
                rows, err = query(conn, sql)
                timings[(start, name, label)] = time.monotonic() - t0
                created = fake_stats()["exports_created"]
                if rows and name == "UNION ALL":
                    rows = per_merchant(rows, ids, idx)
                got = normalize(rows)
                tap.check(err is None and got == want,
                          "2: %s of %d merchants x %d windows, %s: count, sum and ids "
                          "exact per merchant" % (name, len(idx), windows, label),
                          "%s; got %s, want %s" % (describe(err), got, want))
                tap.check(created == windows * len(idx),
                          "2: %s of %d merchants x %d windows, %s: %d exports"
                          % (name, len(idx), windows, label, windows * len(idx)),
                          "%d created" % created)
    set_async(conn, True)
    for (start, name, label), secs in sorted(timings.items()):
        tap.note("%-10s from %s, %-9s: %.1f s" % (name, start, label, secs))

    # orders and payments of one merchant, and another merchant's orders:
    # the first merchant's two scans share its one slot
    reset()
    parts = [(0, orders(0), "total", "ORDERS", 0), (1, payments(0), "amount", "PAYMENTS", 0),
             (2, orders(1), "total", "ORDERS", 1)]
    sql = " UNION ALL ".join("SELECT id, %s FROM %s WHERE %s" % (col, t, bounds(*RANGE))
                             for _, t, col, _, _ in parts)
    text = plan_text(conn, sql)
    rows, err = query(conn, sql)
    ids = {k: expect_full(kind, MERCHANTS[m], *RANGE)["ids"] for k, _, _, kind, m in parts}
    want = [(k,) + expect(kind, MERCHANTS[m], *RANGE) for k, _, _, kind, m in parts]
    got = per_merchant(rows, ids, list(ids)) if rows else rows
    tap.check(count_async(text) == 3 and err is None and got == want,
              "2: orders and payments of one merchant (one slot) and another merchant's "
              "orders in one async Append: exact",
              "%s; got %s, want %s; plan %s" % (describe(err), got, want, text))


def concurrency_checks(tap, conn):
    """Check 3: exports of several merchants run at once under async.

    A query that wants every row (no LIMIT) lets each scan create its
    next export as soon as its slot is free, and a scan waiting for rows
    lets the backend's other runs advance: its exports overlap even without
    async.  Under a LIMIT larger than the result a scan creates its next
    export only once the consumer took a whole file: without async that is
    one merchant at a time; under async every merchant's."""
    idx = list(range(len(MERCHANTS)))
    ids = expect_ids("ORDERS", idx, *RANGE)
    want = want_per_merchant("ORDERS", idx, *RANGE)
    seen = {}
    for limited in (True, False):
        sql = union_rows(ALL, *RANGE) + (" LIMIT 1000000" if limited else "")
        for on in (True, False):
            set_async(conn, on)
            reset()
            t0 = time.monotonic()
            rows, err = query(conn, sql)
            secs = time.monotonic() - t0
            got = per_merchant(rows, ids, idx) if rows else None
            s = fake_stats()
            seen[(limited, on)] = (secs, s, later_overlap(export_times()), err, got)
    set_async(conn, True)
    for limited in (True, False):
        a, n = seen[(limited, True)], seen[(limited, False)]
        tap.note("4 merchants x 3 windows, 1 slot each%s: async %.1f s, not async %.1f s; "
                 "merchants whose later exports ran at one instant: async %d, not async %d; "
                 "fake's max running exports: async %d, not async %d"
                 % (" under LIMIT" if limited else "", a[0], n[0], a[2], n[2],
                    a[1]["max_running_exports"], n[1]["max_running_exports"]))
    for (limited, on), (_, _, _, err, got) in sorted(seen.items()):
        tap.check(err is None and got == want,
                  "3: rows of 4 merchants x 3 windows%s, %s: exact per merchant"
                  % (" under LIMIT" if limited else "", "async" if on else "not async"),
                  "%s; got %s, want %s" % (describe(err), got, want))
    secs, s, overlap, err, _ = seen[(True, True)]
    tap.check(overlap >= 2,
              "3: under LIMIT, async: later exports of several merchants ran at one "
              "instant (the fake's createdTime..modifiedTime)",
              "at most %d merchants at once" % overlap)
    tap.check(s["max_running_exports"] == len(MERCHANTS),
              "3: async: the fake saw %d exports running at once (one per merchant, "
              "never more)" % len(MERCHANTS), "max_running_exports %d" % s["max_running_exports"])
    tap.check(s["busy_rejections"] == 0, "3: async: no busy 503",
              "%d busy 503s" % s["busy_rejections"])
    tap.note("per token under async: peak %d concurrent API requests, %d requests/s"
             % (s["max_concurrent_requests_per_token"],
                s["max_requests_per_second_per_token"]))
    tap.check(s["max_concurrent_requests_per_token"] <= 5,
              "3: async, 4 merchants on one token: at most 5 concurrent API requests",
              "peak %d" % s["max_concurrent_requests_per_token"])
    tap.check(s["max_requests_per_second_per_token"] <= 16,
              "3: async, 4 merchants on one token: at most 16 API requests/s",
              "peak %d in 1 s" % s["max_requests_per_second_per_token"])


def limit_checks(tap, conn):
    """Check 4: LIMIT over the Append stops early."""
    for on in (True, False):
        set_async(conn, on)
        reset()
        rows, err = query(conn, "SELECT * FROM (%s) u LIMIT 10" % union_rows(ALL, *RANGE))
        s = fake_stats()
        starts = {ex["startTime"] for ex in s["exports"]}
        label = "async" if on else "not async"
        tap.check(err is None and len(rows) == 10,
                  "4: LIMIT 10 over 4 merchants x 3 windows, %s: 10 rows" % label,
                  describe(err))
        tap.check(s["exports_created"] <= len(MERCHANTS) and len(starts) <= 1,
                  "4: LIMIT 10, %s: only first windows exported (at most %d exports)"
                  % (label, len(MERCHANTS)),
                  "%d exports, windows starting %s" % (s["exports_created"], sorted(starts)))
    set_async(conn, True)


def failure_checks(tap, conn):
    """Check 5: one failing merchant fails the statement."""
    sql = union_sql(ALL, *RANGE)
    # the same query worked first: the backend keeps some files open once
    # used (the ALTER opens a WAL file too)
    reset(processing_ms=0, queue_ms=0)
    run(conn, union_sql(ALL, "2024-01-01", "2024-01-02"))
    reset()
    with conn.cursor() as cur:
        cur.execute("SET log_statement = 'none'")
        cur.execute("ALTER USER MAPPING FOR CURRENT_USER SERVER %s "
                    "OPTIONS (SET access_token 'noperm-token')" % server(2))
        cur.execute("RESET log_statement")
    fds = backend_fds(conn)
    rows, err = query(conn, sql)
    tap.check(rows is None and err is not None and MERCHANTS[2] in (err.diag.message_primary or "")
              and server(2) in (err.diag.message_hint or "")
              and not any(m in str(err) for m in MERCHANTS if m != MERCHANTS[2]),
              "5: a token without permission for one merchant: the statement fails "
              "naming the merchant and its server", describe(err))
    # a server-side cursor: whatever rows came first, the statement ends in
    # the error, never as a complete answer
    got, end_err = 0, None
    conn.autocommit = False
    try:
        with conn.cursor(name="async_fail") as cur:
            cur.itersize = 1
            cur.execute(union_rows(ALL, *RANGE))
            for _ in cur:
                got += 1
    except psycopg2.Error as e:
        end_err = e
    conn.rollback()
    conn.autocommit = True
    tap.check(end_err is not None and MERCHANTS[2] in (end_err.diag.message_primary or ""),
              "5: read row by row, the Append still ends in that error",
              "%d rows, %s" % (got, describe(end_err)))
    with conn.cursor() as cur:
        cur.execute("SET log_statement = 'none'")
        cur.execute("ALTER USER MAPPING FOR CURRENT_USER SERVER %s "
                    "OPTIONS (SET access_token 'test-token')" % server(2))
        cur.execute("RESET log_statement")

    # a merchant that is not on the region's host
    reset()
    fake_config(merchants={MERCHANTS[1]: {"region": "eu"}})
    rows, err = query(conn, sql)
    tap.check(rows is None and err is not None and MERCHANTS[1] in (err.diag.message_primary or "")
              and server(1) in (err.diag.message_hint or ""),
              "5: a merchant not on the region's host: the statement fails naming "
              "the merchant and its server", describe(err))
    tap.check(open_handles(conn) == (0, 0) and backend_fds(conn) == fds,
              "5: after the errors no handle and no descriptor is left",
              "handles %s, descriptors %d -> %d" % (open_handles(conn), fds, backend_fds(conn)))


def is_cancel(err):
    return err is not None and err.pgcode == "57014"


def cancel_checks(tap, conn, other):
    """Check 6: cancel during an async Append."""
    sql = union_sql(ALL, *RANGE)
    stages = [
        ("exports running", dict(processing_ms=600000), None,
         lambda s: s["exports_created"] >= len(MERCHANTS) and s["polls"] >= len(MERCHANTS)),
        ("downloading", dict(processing_ms=300),
         dict(kind="stall", target="file", seconds=120, count=-1),
         lambda s: s["file_downloads"] >= len(MERCHANTS)),
    ]
    # warm up the session: its descriptors before and after are compared
    reset(processing_ms=0, queue_ms=0)
    run(conn, union_sql(ALL, "2024-01-01", "2024-01-02"))
    pid = backend_pid(conn)
    latencies = []
    for name, config, fault, reached in stages:
        def prepare():
            reset(**config)
            if fault:
                fake_fault(**fault)

        # pg_cancel_backend
        prepare()
        fds = backend_fds(conn)
        th, out = run_in_thread(conn, sql)
        ok = wait_until(lambda: reached(fake_stats()))
        time.sleep(0.3)
        t0 = time.monotonic()
        run(other, "SELECT pg_cancel_backend(%d)" % pid)
        th.join(60)
        lat = out.get("end", float("inf")) - t0
        latencies.append(("pg_cancel_backend", name, lat))
        tap.check(ok and is_cancel(out.get("error")) and lat < LIMIT_SECS,
                  "6: pg_cancel_backend while %s: canceled within %.1f s" % (name, LIMIT_SECS),
                  "stage reached %s, %.3f s, %s" % (ok, lat, describe(out.get("error"))))
        after(tap, conn, fds, "pg_cancel_backend while " + name)

        # statement_timeout
        prepare()
        fds = backend_fds(conn)
        run(conn, "SET statement_timeout = 2500")
        t0 = time.monotonic()
        th, out = run_in_thread(conn, sql)
        th.join(60)
        run(conn, "RESET statement_timeout")
        lat = out.get("end", float("inf")) - t0 - 2.5
        latencies.append(("statement_timeout", name, lat))
        tap.check(reached(fake_stats()) and is_cancel(out.get("error")) and lat < LIMIT_SECS,
                  "6: statement_timeout while %s: stopped within %.1f s" % (name, LIMIT_SECS),
                  "%.3f s, %s" % (lat, describe(out.get("error"))))
        after(tap, conn, fds, "statement_timeout while " + name)

        # Ctrl-C in psql
        prepare()
        env = dict(os.environ, PGDATABASE=DB)
        psql = os.path.join(os.environ.get("PGBIN", "/usr/bin"), "psql")
        proc = subprocess.Popen([psql, "-X", "-c", sql], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ok = wait_until(lambda: reached(fake_stats()))
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, errtext = proc.communicate(timeout=60)
        lat = time.monotonic() - t0
        latencies.append(("Ctrl-C in psql", name, lat))
        tap.check(ok and b"canceling statement due to user request" in errtext
                  and lat < LIMIT_SECS,
                  "6: Ctrl-C in psql while %s: canceled within %.1f s" % (name, LIMIT_SECS),
                  "stage reached %s, %.3f s, psql said %r" % (ok, lat, errtext[-300:]))
    for how, name, lat in latencies:
        tap.note("cancel latency, %-18s while %-15s: %.3f s" % (how, name, lat))


def after(tap, conn, fds, label):
    """The session works and holds what it held before the query."""
    rows, err = query(conn, "SELECT 1")
    handles = open_handles(conn)
    now = backend_fds(conn)
    tap.check(err is None and handles == (0, 0) and now == fds,
              "6: %s: session usable, no handle held, descriptors as before" % label,
              "%s, handles %s, descriptors %d -> %d" % (describe(err), handles, fds, now))


def v1_checks(tap, conn):
    """Check 7: the /v1 lists of two merchants under an async Append."""
    start, end = "2024-02-01", "2024-02-15"
    sql = ("SELECT id, amount FROM charges_m1 WHERE %s UNION ALL "
           "SELECT id, amount FROM charges_m5 WHERE %s"
           % (bounds(start, end), bounds(start, end)))
    text = plan_text(conn, sql)
    tap.check(count_async(text) == 2, "7: EXPLAIN: the two /v1 scans are async", text)
    full = {0: expect_full("CHARGES", MERCHANTS[0], start, end),
            4: expect_full("CHARGES", V1_MERCHANT, start, end)}
    want = [(i, e["count"], e["sum"], e["ids_md5"]) for i, e in sorted(full.items())]
    for on in (True, False):
        set_async(conn, on)
        reset()
        # slow pages: under async both lists are read at once
        fake_fault(kind="delay", target="v1", seconds=0.1, count=-1)
        t0 = time.monotonic()
        rows, err = query(conn, sql)
        secs = time.monotonic() - t0
        label = "async" if on else "not async"
        tap.note("/v1 charges of 2 merchants, %s: %.1f s, %d pages"
                 % (label, secs, sum(fake_stats()["v1_pages"].values())))
        got = per_merchant(rows, {i: e["ids"] for i, e in full.items()}, list(full)) \
            if rows else rows
        tap.check(err is None and got == want,
                  "7: /v1 charges of two merchants, %s: count, sum and ids exact" % label,
                  "%s; got %s, want %s" % (describe(err), got, want))
    set_async(conn, True)


def no_join_but_nested_loop(conn):
    for setting in ("enable_hashjoin", "enable_mergejoin", "enable_material"):
        run(conn, "SET %s = off" % setting)


def reset_join_settings(conn):
    for setting in ("enable_hashjoin", "enable_mergejoin", "enable_material"):
        run(conn, "RESET %s" % setting)


def rescan_checks(tap, conn):
    """Check 8: rescans of async scans."""
    start, end = "2024-01-01", "2024-02-15"
    idx = list(range(len(MERCHANTS)))
    reset(processing_ms=200)
    # the reference: the rows copied into a local table, checked against
    # the fake first
    run(conn, "DROP TABLE IF EXISTS local_orders, local_payments")
    run(conn, "CREATE TABLE local_orders AS %s" % union_rows(ALL, start, end))
    got = per_merchant(run(conn, "SELECT id, total FROM local_orders"),
                       expect_ids("ORDERS", idx, start, end), idx)
    want = want_per_merchant("ORDERS", idx, start, end)
    tap.check(got == want, "8: the reference copy is exact", "got %s, want %s" % (got, want))

    # a correlated subquery: the Append is rescanned with a new parameter
    # per outer row (its scans' filter uses it), so each rescan starts new
    # runs, which reuse the statement's exports
    sub = ("SELECT v.n, (SELECT array[count(id), sum(total)] FROM (%s) u "
           "WHERE u.total %% 3 = v.n) FROM (VALUES (0), (1), (2)) v(n) ORDER BY 1")
    text = plan_text(conn, sub % union_rows(ALL, start, end))
    reset(processing_ms=200)
    plan = plan_json(conn, sub % union_rows(ALL, start, end), analyze=True)
    appends = nodes(plan, "Append")
    tap.check(count_async(text) == len(MERCHANTS) and appends
              and appends[0].get("Actual Loops") == 3,
              "8: an Append of async scans in a correlated subquery, run 3 times",
              text + json.dumps(appends)[:1000])
    reset(processing_ms=200)
    rows, err = query(conn, sub % union_rows(ALL, start, end))
    created = fake_stats()["exports_created"]
    ref = run(conn, sub % "SELECT * FROM local_orders")
    tap.check(err is None and rows == ref and len(ref) == 3,
              "8: async scans rescanned with a new parameter: rows equal PostgreSQL's "
              "own over the copy", "%s; got %s, want %s" % (describe(err), rows, ref))
    # the first rescan (the first parameter) stops the runs started with
    # the executor: an export whose POST was still unanswered is made again
    tap.note("correlated subquery over 4 merchants x 2 windows, 3 outer rows: %d exports"
             % created)
    tap.check(created <= 3 * len(MERCHANTS),
              "8: the rescans reuse the statement's exports: none per outer row again",
              "%d created" % created)

    # an uncorrelated ALL (not hashable): the Append is rescanned without
    # new parameters per outer row, after reading only part of its rows for
    # some (the first total > n ends it): its scans replay what they
    # returned, then go on
    anyq = ("SELECT v.n, v.n::bigint >= ALL (SELECT total FROM (%s) u) "
            "FROM (VALUES (0), (1000), (5000), (100000000)) v(n) ORDER BY 1")
    text = plan_text(conn, anyq % union_rows(ALL, start, end, "total"))
    reset(processing_ms=200)
    rows, err = query(conn, anyq % union_rows(ALL, start, end, "total"))
    created = fake_stats()["exports_created"]
    ref = run(conn, anyq % "SELECT total FROM local_orders")
    tap.check(count_async(text) == len(MERCHANTS) and "SubPlan" in text,
              "8: an Append of async scans in an uncorrelated ALL subquery", text)
    tap.check(err is None and rows == ref,
              "8: async scans rescanned after a partial read: rows equal PostgreSQL's own "
              "over the copy", "%s; got %s, want %s" % (describe(err), rows, ref))
    tap.check(created <= 2 * len(MERCHANTS),
              "8: the partial rescans replay: at most one export per merchant and window",
              "%d created" % created)

    # bounds from each outer row: every rescan has new windows
    days = [("2024-01-03", "2024-01-04"), ("2024-01-10", "2024-01-12"),
            ("2024-02-01", "2024-02-02")]
    run(conn, "DROP TABLE IF EXISTS async_days")
    run(conn, "CREATE TABLE async_days (lo timestamptz, hi timestamptz)")
    for lo, hi in days:
        run(conn, "INSERT INTO async_days VALUES ('%s 00:00+00', '%s 00:00+00')" % (lo, hi))
    run(conn, "ANALYZE async_days")
    param = ("SELECT d.lo, count(*), sum(u.total), md5(string_agg(u.id, E'\\n' "
             "ORDER BY u.id)) FROM async_days d JOIN (%s) u "
             "ON u.created_time >= d.lo AND u.created_time < d.hi "
             "GROUP BY 1 ORDER BY 1"
             % " UNION ALL ".join("SELECT id, total, created_time FROM %s" % t
                                  for _, t in ALL[:2]))
    no_join_but_nested_loop(conn)
    text = plan_text(conn, param)
    reset(processing_ms=200)
    rows, err = query(conn, param)
    reset_join_settings(conn)
    want = []
    for lo, hi in days:
        e = [expect_full("ORDERS", MERCHANTS[i], lo, hi) for i in range(2)]
        ids = sorted(e[0]["ids"] + e[1]["ids"])
        want.append((lo, e[0]["count"] + e[1]["count"], e[0]["sum"] + e[1]["sum"],
                     hashlib.md5("\n".join(ids).encode()).hexdigest()))
    got = [(r[0].strftime("%Y-%m-%d"), int(r[1]), int(r[2]), r[3]) for r in rows] \
        if rows else rows
    tap.check(count_async(text) == 2 and "Nested Loop" in text,
              "8: an Append of async scans bounded by each outer row (nested loop)", text)
    tap.check(err is None and got == want,
              "8: async scans rescanned with new bounds per outer row: exact per day",
              "%s; got %s, want %s" % (describe(err), got, want))

    # a join of two UNION ALLs (orders with their payments), both async
    pays = [(i, payments(i)) for i in idx]
    pay = union_rows(pays, start, end, "amount, order_id")
    two = ("SELECT count(*), sum(p.amount), count(DISTINCT o.id), sum(o.total) "
           "FROM (%s) o JOIN (%s) p ON p.order_id = o.id")
    text = plan_text(conn, two % (union_rows(ALL, start, end), pay))
    reset(processing_ms=200)
    rows, err = query(conn, two % (union_rows(ALL, start, end), pay))
    run(conn, "CREATE TABLE local_payments AS %s"
        % union_rows(pays, start, end, "id, order_id, amount"))
    pays = per_merchant(run(conn, "SELECT id, amount FROM local_payments"),
                        expect_ids("PAYMENTS", idx, start, end), idx)
    wantp = want_per_merchant("PAYMENTS", idx, start, end)
    ref = run(conn, two % ("SELECT * FROM local_orders", "SELECT * FROM local_payments"))
    tap.check(pays == wantp, "8: the payments' reference copy is exact",
              "got %s, want %s" % (pays, wantp))
    tap.check(count_async(text) == 2 * len(MERCHANTS),
              "8: a join of two UNION ALLs: all %d scans async" % (2 * len(MERCHANTS)), text)
    tap.check(err is None and rows == ref and ref[0][0] > 0,
              "8: a join of two async UNION ALLs equals PostgreSQL's own join of the copies",
              "%s; got %s, want %s" % (describe(err), rows, ref))


def main():
    tap = Tap()
    conn = setup()
    other = connect(DB)
    explain_checks(tap, conn)
    exact_checks(tap, conn)
    concurrency_checks(tap, conn)
    limit_checks(tap, conn)
    failure_checks(tap, conn)
    cancel_checks(tap, conn, other)
    v1_checks(tap, conn)
    rescan_checks(tap, conn)
    conn.close()
    other.close()
    fake_reset()
    tap.finish()


if __name__ == "__main__":
    main()
