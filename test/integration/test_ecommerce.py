"""The e-commerce /v1 source (issue 13): clover_charges, clover_refunds and
clover_ecommerce_orders, paged with Clover's cursor (starting_after).

Against the fake's /v1 lists, under both readings of the cursor (the object
named by starting_after opens the next page or not: v1_cursor) and both
list orders (v1_order: unsorted inside a day, or newest first):

 1. count, sum(amount) and the md5 of the sorted ids equal the fake's
    expected values (/_admin/expect) for each table over a range of several
    pages, with the exact number of requests; bounds exactly on an object's
    created time: >= keeps it and < drops it, > drops it and <= keeps it
    (created.gt and created.lt are strict);
 2. the rows of narrower ranges (every kind of bound near the objects'
    times, parameters of a generic plan, dates in a time zone) equal the
    rows PostgreSQL's own WHERE keeps from a superset; every column equals
    the fake's object;
 3. LIMIT 5 makes one request (limit=100), LIMIT 150 two;
 4. a 429 is waited out, by this session and by another one of the same
    token (no early call), 500s, dropped and reset connections are
    retried, all exact; a broken page is an error or exact, never partial;
    500s beyond max_retries, a 400 (Clover's error.message and param), a
    401, a 404 and a region without an e-commerce host fail with their
    messages; ecommerce_access_token is the token used when set; six
    sessions stay within 5 concurrent requests and 16 per second per token;
 5. pg_cancel_backend() and statement_timeout end a scan within 0.5 s while
    a page is slow, while a 429 is waited out and while 500s are backed
    off; the session works afterwards and holds no curl handle;
 6. the token is never in a URL (the query string is echoed back by the
    fake as a row) nor in any message, detail, hint, EXPLAIN line or the
    server log (debug5), even when Clover's error bodies echo it;
 7. EXPLAIN names the request (GET /v1/charges created.gt=... created.lt=...
    limit=100) with the right numbers; EXPLAIN ANALYZE's Pages Fetched,
    List Requests and Repeated Objects Skipped are the fake's counts;
 8. a page that does not advance (has_more true, no new id) is an error
    after two requests, never a loop.

Pass or fail is decided by the fake's expected data, its counters and the
messages; timings are notes or generous lower bounds, except the cancel
latency, which is asserted as test_cancel.py does.  RANDOM_SEED
(environment) replays the random cases of check 2.
"""

import datetime
import json
import math
import os
import random
import string
import time
import urllib.parse
import urllib.request

import psycopg2

from common import (ADMIN, API, MERCHANT, backend_pid, connect, describe,
                    fake_clear_faults, fake_config, fake_fault, fake_reset,
                    fake_stats, fresh_database, log_position, log_since,
                    open_handles, run_in_thread, wait_until, Tap)

DB = "itest_ecommerce"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
DAY_MS = 86400000
FRAGMENT = 12
LIMIT_SECS = 0.5


def day_ms(text):
    """Epoch ms of a UTC date 'YYYY-MM-DD'."""
    d = datetime.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc)
    return (d - EPOCH) // datetime.timedelta(milliseconds=1)


# table -> (list name in /v1/<list>, expect type, range [start, end) in ms);
# each range holds 300 to 600 objects (four to six pages of 100)
TABLES = {
    "clover_charges": ("charges", "CHARGES", day_ms("2024-03-01"), day_ms("2024-03-04")),
    "clover_refunds": ("refunds", "REFUNDS", day_ms("2024-03-01"), day_ms("2024-04-20")),
    "clover_ecommerce_orders": ("orders", "ECOMMERCE_ORDERS", day_ms("2024-03-01"),
                                day_ms("2024-03-04")),
}
COMBOS = [(c, o) for c in ("included", "excluded") for o in ("unsorted", "newest_first")]


def random_token(rng, n=48):
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


# tokens of this suite: long and distinctive, looked for in every text
_trng = random.Random()
TOKEN = "ecom-" + random_token(_trng)             # the mapping's ecommerce_access_token
BAD_TOKEN = "ecom-bad-" + random_token(_trng)      # unknown to the fake
# one token per 429-cancel case: the wrapper's limiter keeps a token paused
# for its Retry-After, cluster-wide, after the scan is gone
PAUSE_TOKENS = ["ecom-pause%d-%s" % (i, random_token(_trng)) for i in range(2)]
SECRETS = [TOKEN, BAD_TOKEN] + PAUSE_TOKENS


# ------------------------------------------------------------------ helpers

def ts(ms, extra_us=0):
    """A timestamptz literal for epoch ms (plus microseconds), exact."""
    dt = EPOCH + datetime.timedelta(milliseconds=ms, microseconds=extra_us)
    return "'%s'::timestamptz" % dt.isoformat()


def to_ms(dt):
    """Epoch ms of a timestamptz value (whole ms)."""
    return (dt - EPOCH) // datetime.timedelta(milliseconds=1)


def expect(kind, start, end):
    """The fake's expectation for created in [start, end) (epoch ms)."""
    q = {"type": kind, "merchant": MERCHANT, "start": start, "end": end}
    with urllib.request.urlopen(ADMIN + "/expect?" + urllib.parse.urlencode(q),
                                timeout=60) as resp:
        return json.loads(resp.read())


def v1_page(listname, params, token="test-token"):
    """One page of the fake's /v1 list, asked directly (not by the wrapper)."""
    req = urllib.request.Request("%s/v1/%s?%s" % (API, listname, urllib.parse.urlencode(params)),
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def v1_objects(listname, gt, lt):
    """Every object of the list with gt < created < lt, by id, paged the way
    FAKE.md says a correct client pages."""
    objects, after = {}, None
    while True:
        params = {"limit": 100, "created.gt": gt, "created.lt": lt}
        if after:
            params["starting_after"] = after
        page = v1_page(listname, params)
        for o in page["data"]:
            objects.setdefault(o["id"], o)
        if not page["has_more"] or not page["data"]:
            return objects
        after = page["data"][-1]["id"]


def pages_needed(n, cursor):
    """Requests a correct client makes for n objects with limit=100."""
    if n <= 100:
        return 1
    if cursor == "excluded":
        return math.ceil(n / 100)
    return 1 + math.ceil((n - 100) / 99)   # later pages repeat their cursor


def reset(**config):
    """A fresh fake with this suite's tokens and merchant, plus config."""
    fake_reset()
    fake_config(**dict({"tokens": {t: ["*"] for t in [TOKEN] + PAUSE_TOKENS},
                        "v1_merchant": MERCHANT}, **config))



class Runner:
    """Runs SQL and keeps every text the client saw (rows, notices, error
    fields, EXPLAIN lines) for the secrets check."""

    def __init__(self, conn):
        self.conn = conn
        self.seen = []

    def run(self, sql, params=None):
        """(rows or None, the psycopg2 error or None)."""
        del self.conn.notices[:]
        rows, err = None, None
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall() if cur.description else []
            self.seen.extend(str(r) for r in rows)
        except psycopg2.Error as e:
            d = e.diag
            self.seen.extend(str(x) for x in (d.message_primary, d.message_detail,
                                              d.message_hint, d.context) if x)
            err = e
        self.seen.extend(self.conn.notices)
        return rows, err

    def execute(self, sql, params=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)


def leak(text):
    """The first FRAGMENT characters of a secret found in text, or None."""
    for secret in SECRETS:
        for i in range(len(secret) - FRAGMENT + 1):
            if secret[i:i + FRAGMENT] in text:
                return secret[i:i + FRAGMENT]
    return None


def option(conn, kind, name, key, value):
    """Set (value None: drop) an option of a SERVER, FOREIGN TABLE or the
    current user's USER MAPPING for server name, without logging the
    statement (it may hold a token)."""
    catalog = {
        "SERVER": "SELECT srvoptions FROM pg_foreign_server WHERE srvname = %s",
        "FOREIGN TABLE": "SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = %s::regclass",
        "USER MAPPING": "SELECT umoptions FROM pg_user_mappings "
                        "WHERE srvname = %s AND usename = current_user",
    }[kind]
    target = "USER MAPPING FOR CURRENT_USER SERVER " + name if kind == "USER MAPPING" \
        else "%s %s" % (kind, name)
    with conn.cursor() as cur:
        cur.execute("SET log_statement = 'none'")
        cur.execute(catalog, (name,))
        present = any(o.startswith(key + "=") for o in cur.fetchone()[0] or [])
        if value is None:
            if present:
                cur.execute("ALTER %s OPTIONS (DROP %s)" % (target, key))
        else:
            cur.execute("ALTER %s OPTIONS (%s %s %%s)"
                        % (target, "SET" if present else "ADD", key), (value,))
        cur.execute("RESET log_statement")


def set_ecommerce_token(conn, token):
    option(conn, "USER MAPPING", "clover", "ecommerce_access_token", token)


def figures_sql(table, where):
    """count, sum(amount), md5 of the sorted ids (as the fake's ids_md5)."""
    return ("SELECT count(*), coalesce(sum(amount), 0), "
            "md5(coalesce(string_agg(id, E'\\n' ORDER BY id), '')) "
            "FROM %s WHERE %s" % (table, where))


def range_where(start, end):
    return "created_time >= %s AND created_time < %s" % (ts(start), ts(end))


def figures(r, table, where, kind, start, end):
    """The scan's (count, sum, ids md5) or None, the fake's for [start, end),
    the error, and a text saying all three."""
    rows, err = r.run(figures_sql(table, where))
    want = expect(kind, start, end)
    want_t = (want["count"], want["sum"], want["ids_md5"])
    got = (int(rows[0][0]), int(rows[0][1]), rows[0][2]) if rows else None
    return got, want_t, err, "got %s, want %s; %s" % (got, want_t, describe(err))


def exact(r, table, where, kind, start, end):
    """(whether the scan's figures are the fake's for [start, end), a text,
    the fake's count)."""
    got, want, _, text = figures(r, table, where, kind, start, end)
    return got == want, text, want[0]


def exact_or_error(r, table, where, kind, start, end):
    """(whether the scan failed or gave the fake's figures, a text)."""
    got, want, err, text = figures(r, table, where, kind, start, end)
    return err is not None or got == want, text


def explain_json(r, sql):
    """The first Foreign Scan node of EXPLAIN (ANALYZE, FORMAT JSON) sql, and
    the error."""
    rows, err = r.run("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
    if not rows:
        return None, err
    plan = rows[0][0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        if node.get("Node Type") == "Foreign Scan":
            return node, None
        stack.extend(node.get("Plans", []))
    return None, err


def explain_line(r, sql, label="Clover List"):
    """The text of EXPLAIN's "label: ..." line, or what went wrong."""
    rows, err = r.run("EXPLAIN " + sql)
    if err:
        return "error: " + describe(err)
    for (line,) in rows:
        line = line.strip()
        if line.startswith(label + ": "):
            return line[len(label) + 2:]
    return "no %s line in %s" % (label, [x[0] for x in rows])



# ---------------------------------------------------------- 1. exactness

def exactness(tap, r):
    """Check 1, for each table under each cursor reading and list order."""
    for table, (listname, kind, start, end) in TABLES.items():
        # bounds exactly on objects: X (some way in) and Y (further in)
        x = expect(kind, start + (end - start) // 3, end)["min_created"]
        y = expect(kind, start + 2 * (end - start) // 3, end)["min_created"]
        for cursor, order in COMBOS:
            label = "%s, cursor %s, %s" % (table, cursor, order)
            reset(v1_cursor=cursor, v1_order=order)
            ok, text, n = exact(r, table, range_where(start, end), kind, start, end)
            st = fake_stats()
            want_pages = pages_needed(n, cursor)
            tap.check(ok and n > 300, "%s: count, sum and ids exact over %d objects" % (label, n),
                      text)
            tap.check(st["v1_pages"][listname] == want_pages and st["v1_requests"] == want_pages,
                      "%s: %d pages, each asked once" % (label, want_pages),
                      "pages %s, requests %d" % (st["v1_pages"], st["v1_requests"]))
            tap.check(st["v1_max_limit"] == 100 and st["v1_bad_requests"] == 0
                      and st["auth_failures"] == 0,
                      "%s: limit=100, no bad request, no 401 (no token in the query string)"
                      % label, "max limit %s, bad %d, 401s %d"
                      % (st["v1_max_limit"], st["v1_bad_requests"], st["auth_failures"]))
            if cursor == "included" and order == "unsorted":
                tap.check(st["max_concurrent_requests_per_token"] == 1,
                          "%s: one request at a time (pages fetched one ahead at most)" % label,
                          "peak %d" % st["max_concurrent_requests_per_token"])

            # >= X keeps the object at X, < Y drops the one at Y
            where = "created_time >= %s AND created_time < %s" % (ts(x), ts(y))
            ok, text, _ = exact(r, table, where, kind, x, y)
            tap.check(ok, "%s: >= an object's time keeps it, < one's drops it" % label, text)
            # > X drops it, <= Y keeps it
            where = "created_time > %s AND created_time <= %s" % (ts(x), ts(y))
            ok, text, _ = exact(r, table, where, kind, x + 1, y + 1)
            tap.check(ok, "%s: > an object's time drops it, <= one's keeps it" % label, text)
        # BETWEEN keeps both ends
        rows, err = r.run("SELECT count(*) FILTER (WHERE created_time = %s), "
                          "count(*) FILTER (WHERE created_time = %s) FROM %s WHERE %s"
                          % (ts(x), ts(y), table, "created_time BETWEEN %s AND %s"
                             % (ts(x), ts(y))))
        tap.check(rows is not None and rows[0][0] >= 1 and rows[0][1] >= 1,
                  "%s: BETWEEN two objects' times returns both ends" % table,
                  "%s %s" % (rows, describe(err)))


# -------------------------------------------- 2. PostgreSQL's own filter

def pg_filter(tap, r, rng):
    """Check 2: the scan's rows against PostgreSQL's WHERE over a superset
    (read once per table into a temporary table)."""
    r.execute("SET timezone = 'UTC'")
    for table, (listname, kind, start, end) in TABLES.items():
        reset()
        sup = "sup_" + table
        r.execute("DROP TABLE IF EXISTS %s" % sup)
        r.execute("CREATE TEMP TABLE %s AS SELECT * FROM %s WHERE %s"
                  % (sup, table, range_where(start, end)))
        rows, _ = r.run("SELECT created_time FROM %s ORDER BY 1" % sup)
        times = sorted({to_ms(t[0]) for t in rows})
        tap.check(len(times) > 300, "%s: superset read (%d objects)" % (table, len(rows)))
        if len(times) < 10:
            continue
        # bounds near the objects' times: on them, a microsecond and half a
        # millisecond either side
        jitter = [0, 0, 0, 1, -1, 500, -500, 1000, -1000]

        def near(lo_i, hi_i):
            a = times[lo_i] * 1000 + rng.choice(jitter)
            b = times[hi_i] * 1000 + rng.choice(jitter)
            return ts(0, a), ts(0, b)

        cases = []
        for _ in range(8):
            i = rng.randrange(1, len(times) // 2)
            j = rng.randrange(i + 1, len(times) - 1)
            a, b = near(i, j)
            op_lo, op_hi = rng.choice([(">=", "<"), (">", "<="), (">=", "<="), (">", "<")])
            cases.append(("UTC", "created_time %s %s AND created_time %s %s"
                          % (op_lo, a, op_hi, b)))
        i = rng.randrange(1, len(times) - 1)
        cases.append(("UTC", "created_time BETWEEN %s AND %s"
                      % near(i, min(i + 150, len(times) - 2))))
        cases.append(("UTC", "created_time = %s" % ts(times[i])))
        cases.append(("UTC", "created_time = %s" % ts(times[i], 1)))    # no object there
        # a day in another time zone: a stable cast, computed at execution
        day = (EPOCH + datetime.timedelta(milliseconds=times[len(times) // 2])).date()
        cases.append(("America/New_York", "created_time >= '%s'::date AND created_time < "
                      "'%s'::date" % (day, day + datetime.timedelta(days=1))))
        for zone, where in cases:
            r.execute("SET timezone = %s", (zone,))
            got, err = r.run("SELECT t::text FROM %s t WHERE %s ORDER BY 1" % (table, where))
            want, _ = r.run("SELECT t::text FROM %s t WHERE %s ORDER BY 1" % (sup, where))
            r.execute("SET timezone = 'UTC'")
            tap.check(err is None and got == want,
                      "%s: the rows of %s (time zone %s) are PostgreSQL's (%d)"
                      % (table, where, zone, len(want or [])),
                      "%d rows, want %d; %s" % (len(got or []), len(want or []), describe(err)))
        # parameters of a generic plan
        a, b = near(rng.randrange(1, 50), rng.randrange(len(times) - 50, len(times) - 1))
        r.execute("SET plan_cache_mode = force_generic_plan")
        r.execute("PREPARE q_%s(timestamptz, timestamptz) AS SELECT t::text FROM %s t "
                  "WHERE created_time > $1 AND created_time <= $2 ORDER BY 1" % (table, table))
        got, err = r.run("EXECUTE q_%s(%s, %s)" % (table, a, b))
        want, _ = r.run("SELECT t::text FROM %s t WHERE created_time > %s "
                        "AND created_time <= %s ORDER BY 1" % (sup, a, b))
        r.execute("DEALLOCATE q_%s" % table)
        r.execute("RESET plan_cache_mode")
        tap.check(err is None and got == want and len(want) > 100,
                  "%s: parameters of a generic plan give PostgreSQL's rows (%d)"
                  % (table, len(want or [])),
                  "%d rows, want %d; %s" % (len(got or []), len(want or []), describe(err)))
        r.execute("DROP TABLE %s" % sup)
    r.execute("RESET timezone")


def row_values(tap, r):
    """Every column of one day's rows against the fake's objects."""
    reset()
    start = day_ms("2024-03-02")
    end = start + DAY_MS
    columns = {
        "clover_charges": {"order_id": "order", "paid": "paid", "captured": "captured",
                           "refunded": "refunded", "amount_refunded": "amount_refunded",
                           "status": "status", "source": "source"},
        "clover_refunds": {"charge_id": "charge", "status": "status"},
        "clover_ecommerce_orders": {"status": "status", "charge_id": "charge",
                                    "items": "items"},
    }
    for table, extra in columns.items():
        listname = TABLES[table][0]
        # refunds are rare: a month of them
        hi = end if table != "clover_refunds" else start + 30 * DAY_MS
        objects = v1_objects(listname, start - 1, hi)
        cols = ["id", "amount", "currency", "created_time", "raw"] + list(extra)
        rows, err = r.run("SELECT %s FROM %s WHERE %s" % (", ".join(cols), table,
                                                          range_where(start, hi)))
        bad = []
        for row in rows or []:
            v = dict(zip(cols, row))
            o = objects.get(v["id"])
            if o is None:
                bad.append("%s: not in the fake's list" % v["id"])
                continue
            want = {"id": o["id"], "amount": o["amount"], "currency": o["currency"],
                    "created_time": o["created"], "raw": o}
            want.update({c: o.get(k) for c, k in extra.items()})
            v["created_time"] = to_ms(v["created_time"])
            if v != want:
                bad.append("%s: %s" % (v["id"], {k: (v[k], want[k]) for k in want
                                                 if v[k] != want[k]}))
        tap.check(err is None and not bad and len(rows) == len(objects) > 0,
                  "%s: every column of %d rows is the fake's object" % (table, len(objects)),
                  "%s; %d rows, %d objects; %s" % (describe(err), len(rows or []),
                                                  len(objects), bad[:3]))


# ------------------------------------------------------------- 3. LIMIT

def limits(tap, r):
    """Check 3: a LIMIT stops the paging."""
    start, end = TABLES["clover_charges"][2:]
    for cursor in ("included", "excluded"):
        reset(v1_cursor=cursor)
        rows, err = r.run("SELECT id FROM clover_charges WHERE %s LIMIT 5"
                          % range_where(start, end))
        st = fake_stats()
        tap.check(err is None and len(rows) == 5 and st["v1_requests"] == 1
                  and st["v1_max_limit"] == 100,
                  "cursor %s: LIMIT 5 makes one request, limit=100" % cursor,
                  "%s; requests %d, max limit %s" % (describe(err), st["v1_requests"],
                                                     st["v1_max_limit"]))
        reset(v1_cursor=cursor)
        rows, err = r.run("SELECT id FROM clover_charges WHERE %s LIMIT 150"
                          % range_where(start, end))
        st = fake_stats()
        tap.check(err is None and len(rows) == 150 and len(set(rows)) == 150
                  and st["v1_requests"] == 2,
                  "cursor %s: LIMIT 150 makes two requests, 150 distinct rows" % cursor,
                  "%s; %s rows, requests %d" % (describe(err), len(rows or []),
                                                st["v1_requests"]))
    # no lower bound at all: the whole list is paged, LIMIT stops it
    reset()
    rows, err = r.run("SELECT id FROM clover_charges LIMIT 5")
    st = fake_stats()
    tap.check(err is None and len(rows) == 5 and st["v1_requests"] == 1,
              "no bound at all: LIMIT 5 makes one request",
              "%s; requests %d" % (describe(err), st["v1_requests"]))


# ------------------------------------------------------------ 4. faults

CHARGES_WHERE = range_where(*TABLES["clover_charges"][2:])
CHARGES_SQL = figures_sql("clover_charges", CHARGES_WHERE)


def charges_exact(r):
    start, end = TABLES["clover_charges"][2:]
    return exact(r, "clover_charges", CHARGES_WHERE, "CHARGES", start, end)


def charges_pages():
    """Requests a correct scan of CHARGES_WHERE makes (cursor included)."""
    return pages_needed(expect("CHARGES", *TABLES["clover_charges"][2:])["count"], "included")


def rate_limits(tap, r, conn2):
    """429s: waited out by every session of the token, busy_timeout."""
    start, end = TABLES["clover_charges"][2:]
    pages = charges_pages()

    # a 429 on the second page: its Retry-After is waited out, no early call
    reset()
    fake_fault(kind="status", target="v1", status=429, retry_after=2, skip=1)
    t0 = time.monotonic()
    ok, text, _ = charges_exact(r)
    secs = time.monotonic() - t0
    st = fake_stats()
    tap.check(ok, "a 429 on page 2: the result is exact", text)
    tap.check(st["rate_limited"] == 1 and st["early_retries"] == 0
              and st["v1_requests"] == pages + 1,
              "a 429 on page 2: Retry-After waited out, no early call",
              "rate_limited %d, early %d, requests %d (pages %d)"
              % (st["rate_limited"], st["early_retries"], st["v1_requests"], pages))
    tap.check(secs >= 2.0, "a 429 on page 2: the query took at least Retry-After (2 s)",
              "%.2f s" % secs)

    # the same through EXPLAIN ANALYZE: the wait is counted
    reset()
    fake_fault(kind="status", target="v1", status=429, retry_after=1, skip=1)
    node, err = explain_json(r, CHARGES_SQL)
    waits = (node or {}).get("Clover Waits", "")
    tap.check(node is not None and "rate-limited 1 " in waits
              and node.get("Pages Fetched") == pages,
              "EXPLAIN ANALYZE counts the 429 wait (Clover Waits: rate-limited 1)",
              "%s; %s" % (describe(err), node and {k: node.get(k) for k in
                                                   ("Clover Waits", "Pages Fetched")}))

    # another session of the same token pauses too while the first waits
    reset()
    fake_fault(kind="status", target="v1", status=429, retry_after=3, skip=1)
    th1, out1 = run_in_thread(r.conn, CHARGES_SQL)
    reached = wait_until(lambda: fake_stats()["rate_limited"] >= 1, 30)
    th2, out2 = run_in_thread(conn2, CHARGES_SQL)
    th1.join(60)
    th2.join(60)
    st = fake_stats()
    want = expect("CHARGES", start, end)
    want_t = (want["count"], want["sum"], want["ids_md5"])
    got = [tuple(o["rows"][0]) if "rows" in o else describe(o.get("error"))
           for o in (out1, out2)]
    got = [(int(g[0]), int(g[1]), g[2]) if isinstance(g, tuple) else g for g in got]
    tap.check(reached and got == [want_t, want_t] and st["early_retries"] == 0
              and st["rate_limited"] == 1,
              "a 429 pauses every session of the token: no early call, both exact",
              "reached %s, results %s, want %s, early %d, 429s %d"
              % (reached, got, want_t, st["early_retries"], st["rate_limited"]))

    # 429s for longer than busy_timeout: an error that says so
    option(r.conn, "SERVER", "clover", "busy_timeout", "3s")
    reset()
    fake_fault(kind="status", target="v1", status=429, retry_after=1, count=-1)
    rows, err = r.run(CHARGES_SQL)
    st = fake_stats()
    tap.check(err is not None and err.diag.message_primary ==
              "Clover kept rate-limiting list requests" and st["early_retries"] == 0,
              "429s beyond busy_timeout: \"Clover kept rate-limiting list requests\", "
              "no early call", "%s; early %d" % (describe(err), st["early_retries"]))
    option(r.conn, "SERVER", "clover", "busy_timeout", None)
    time.sleep(1.5)             # the token's last Retry-After runs out


def retries(tap, r):
    """5xx, dropped connections, broken pages: retried, or an error."""
    start, end = TABLES["clover_charges"][2:]
    pages = charges_pages()

    # 500s, a dropped connection, a reset: retried, exact
    for label, rule, extra in (
            ("two 500s", dict(kind="status", status=500, count=2, skip=1), 2),
            ("a 503", dict(kind="status", status=503, count=1, skip=2), 1),
            ("a dropped connection", dict(kind="drop", count=1, skip=2), 1),
            ("a TCP reset", dict(kind="reset", count=1, skip=3), 1)):
        reset()
        fake_fault(target="v1", **rule)
        ok, text, _ = charges_exact(r)
        st = fake_stats()
        tap.check(ok and st["faults_fired"] == extra and st["v1_requests"] == pages + extra,
                  "%s: retried, the result is exact" % label,
                  "%s; fired %d, requests %d (pages %d)"
                  % (text, st["faults_fired"], st["v1_requests"], pages))

    # a page that arrives broken: an error or the exact result, never partial
    for label, rule in (("a malformed page", dict(kind="malformed")),
                        ("a truncated page", dict(kind="truncate")),
                        ("a page without data", dict(kind="status", status=200,
                                                     body={"object": "list"}))):
        reset()
        fake_fault(target="v1", skip=1, **rule)
        ok, text = exact_or_error(r, "clover_charges", CHARGES_WHERE, "CHARGES", start, end)
        tap.note("%s: %s" % (label, text))
        rows, _ = r.run("SELECT 1")
        tap.check(ok and rows == [(1,)],
                  "%s: an error or the exact result, never a partial one" % label, text)

    # 500s beyond max_retries: the page and the attempts in the detail
    option(r.conn, "SERVER", "clover", "max_retries", "2")
    reset()
    fake_fault(kind="status", target="v1", status=500, skip=1, count=-1,
               body={"message": "upstream broke"})
    rows, err = r.run(CHARGES_SQL)
    detail = (err and err.diag.message_detail) or ""
    tap.check(err is not None and err.diag.message_primary ==
              "could not read Clover's list /v1/charges"
              and detail.startswith("GET /v1/charges (page 2) answered HTTP 500")
              and "after 3 attempts" in detail and fake_stats()["v1_requests"] == 4,
              "500s beyond max_retries (2): the page and 3 attempts in the detail",
              "%s; requests %d" % (describe(err), fake_stats()["v1_requests"]))
    option(r.conn, "SERVER", "clover", "max_retries", None)


def refusals(tap, r):
    """400, 401, 404 and a region without an e-commerce host."""
    # a 400 in /v1's shape: error.message and param reach the user
    reset()
    message = "Invalid limit: \"100\" must be at most 50"
    fake_fault(kind="status", target="v1", status=400, count=-1,
               body={"error": {"type": "invalid_request_error", "code": "parameter_invalid",
                               "message": message, "param": "limit"}})
    rows, err = r.run(CHARGES_SQL)
    detail = (err and err.diag.message_detail) or ""
    tap.check(err is not None and err.pgcode.startswith("HV")
              and err.diag.message_primary ==
              "Clover rejected the request for its list /v1/charges"
              and message in detail and "(parameter \"limit\")" in detail
              and fake_stats()["v1_requests"] == 1,
              "a 400: Clover's error.message and param in the detail, not retried",
              "%s; requests %d" % (describe(err), fake_stats()["v1_requests"]))

    # 401: a bad ecommerce_access_token
    reset()
    set_ecommerce_token(r.conn, BAD_TOKEN)
    rows, err = r.run(CHARGES_SQL)
    st = fake_stats()
    tap.check(err is not None and err.diag.message_primary ==
              "Clover refused the access token for merchant \"%s\"" % MERCHANT
              and "ecommerce_access_token" in (err.diag.message_hint or "")
              and st["auth_failures"] == 1 and st["v1_requests"] == 1,
              "a bad token: 401, the hint names ecommerce_access_token, not retried",
              "%s; 401s %d, requests %d" % (describe(err), st["auth_failures"],
                                            st["v1_requests"]))
    # ecommerce_access_token is the token used for /v1 when set: a good one
    # works while access_token is one without permission
    set_ecommerce_token(r.conn, TOKEN)
    option(r.conn, "USER MAPPING", "clover", "access_token", "noperm-token")
    reset()
    ok, text, _ = charges_exact(r)
    tap.check(ok and fake_stats()["auth_failures"] == 0,
              "ecommerce_access_token is used for /v1 when set (access_token is not)", text)
    option(r.conn, "USER MAPPING", "clover", "access_token", "test-token")

    # 404: the token's merchant is not on this region's host
    reset(v1_merchant="EU7Q2M4K9X1ZP")
    rows, err = r.run(CHARGES_SQL)
    tap.check(err is not None and err.pgcode.startswith("HV")
              and "Merchant not found" in (err.diag.message_detail or ""),
              "a 404: Clover's message in the detail", describe(err))

    # a region whose e-commerce host the documents do not give
    reset()
    r.execute("CREATE SERVER clover_us FOREIGN DATA WRAPPER clover_export_fdw "
              "OPTIONS (region 'us', merchant_id %s, base_url %s)", (MERCHANT, API))
    r.execute("CREATE USER MAPPING FOR CURRENT_USER SERVER clover_us "
              "OPTIONS (access_token 'test-token')")
    r.execute("CREATE FOREIGN TABLE us_charges (id text, amount bigint, "
              "created_time timestamptz) SERVER clover_us OPTIONS (ecommerce_object 'charges')")
    rows, err = r.run("SELECT count(*) FROM us_charges WHERE " + CHARGES_WHERE)
    tap.check(err is not None and err.diag.message_primary ==
              "server \"clover_us\" has no e-commerce host for region \"us\""
              and "ecommerce_base_url" in (err.diag.message_hint or "")
              and fake_stats()["v1_requests"] == 0,
              "region us without ecommerce_base_url: an error asking for it, no request",
              describe(err))
    r.execute("DROP SERVER clover_us CASCADE")


def many_sessions(tap, conns):
    """Six sessions at once: Clover's 5 concurrent and 16/s per token."""
    reset()
    # slow answers (1 s each): more than 5 requests would overlap
    fake_fault(kind="delay", target="v1", seconds=1, count=-1)
    outs = []
    days = ["2024-05-%02d" % d for d in range(1, 1 + 2 * len(conns), 2)]
    for c, d in zip(conns, days):
        lo = day_ms(d)
        outs.append((lo, run_in_thread(c, figures_sql("clover_charges",
                                                      range_where(lo, lo + 2 * DAY_MS)))))
    bad = []
    for lo, (th, out) in outs:
        th.join(120)
        want = expect("CHARGES", lo, lo + 2 * DAY_MS)
        got = out.get("rows")
        if not got or (int(got[0][0]), int(got[0][1]), got[0][2]) != \
                (want["count"], want["sum"], want["ids_md5"]):
            bad.append((lo, got or describe(out.get("error")), want))
    st = fake_stats()
    tap.note("six sessions: %d requests, peaks %d at once, %d in 1 s"
             % (st["v1_requests"], st["max_concurrent_requests_per_token"],
                st["max_requests_per_second_per_token"]))
    tap.check(not bad, "six sessions at once: every result exact", repr(bad[:2]))
    tap.check(st["max_concurrent_requests_per_token"] <= 5
              and st["max_requests_per_second_per_token"] <= 16,
              "six sessions at once: at most 5 requests at once and 16 per second per token",
              "peaks %d, %d" % (st["max_concurrent_requests_per_token"],
                                st["max_requests_per_second_per_token"]))


# ------------------------------------------------------------ 5. cancel

def cancel_stages():
    """(name, fault and option set-up, "reached" test on the fake's stats,
    whether the stage pauses its token: then it gets a token of its own)."""
    return [
        ("the first page is slow",
         lambda c: fake_fault(kind="delay", target="v1", seconds=60, count=-1),
         lambda s: s["v1_requests"] >= 1, False),
        ("a later page is slow",
         lambda c: fake_fault(kind="delay", target="v1", seconds=60, skip=2, count=-1),
         lambda s: s["v1_requests"] >= 3, False),
        ("waiting out a 429",
         lambda c: (option(c, "SERVER", "clover", "busy_timeout", "1 hour"),
                    fake_fault(kind="status", target="v1", status=429, retry_after=60,
                               skip=1, count=-1)),
         lambda s: s["rate_limited"] >= 1, True),
        ("backing off after 500s",
         lambda c: (option(c, "SERVER", "clover", "max_retries", "50"),
                    fake_fault(kind="status", target="v1", status=500, count=-1)),
         lambda s: s["faults_fired"] >= 2, False),
    ]


def cancel_one(tap, conn, other, how, stage, pause_token):
    """Cancel one scan held in stage: it stops within LIMIT_SECS with
    SQLSTATE 57014, and the session works and holds nothing after."""
    name, setup, reached, pauses = stage
    if pauses:
        set_ecommerce_token(conn, pause_token)
    reset()
    setup(conn)
    label = "%s while %s" % (how, name)
    pid = backend_pid(conn)
    if how == "statement_timeout":
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = 2000")
    t0 = time.monotonic()
    th, out = run_in_thread(conn, CHARGES_SQL)
    ok = wait_until(lambda: reached(fake_stats()), 30)
    tap.check(ok, "%s: stage reached" % label, "the fake never saw it")
    if how == "pg_cancel_backend":
        time.sleep(0.2)             # settle into the wait
        t0 = time.monotonic()
        with other.cursor() as cur:
            cur.execute("SELECT pg_cancel_backend(%s)", (pid,))
        th.join(30)
        latency = out.get("end", float("inf")) - t0
    else:
        th.join(30)
        latency = out.get("end", float("inf")) - t0 - 2.0
        with conn.cursor() as cur:
            cur.execute("RESET statement_timeout")
    err = out.get("error")
    tap.check(err is not None and err.pgcode == "57014" and latency < LIMIT_SECS,
              "%s: stopped %.3f s after the cancel" % (label, latency), describe(err))
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        usable = cur.fetchone()[0] == 1
    handles = open_handles(conn)
    tap.check(usable and handles == (0, 0), "%s: session usable, nothing held" % label,
              "usable=%s handles=%s" % (usable, handles))
    option(conn, "SERVER", "clover", "max_retries", None)
    option(conn, "SERVER", "clover", "busy_timeout", None)
    set_ecommerce_token(conn, TOKEN)
    return latency


def cancels(tap, conn, other):
    notes = []
    for stage in cancel_stages():
        lat = [cancel_one(tap, conn, other, how, stage, PAUSE_TOKENS[i])
               for i, how in enumerate(("pg_cancel_backend", "statement_timeout"))]
        notes.append("  %-24s %6.3f  %6.3f" % (stage[0], lat[0], lat[1]))
    tap.note("cancel latency (s):       pg_cancel_backend  statement_timeout")
    for line in notes:
        tap.note(line)
    fake_clear_faults()


# ------------------------------------------------------ 6. no token in URLs

def wire(tap, r):
    """The query strings the wrapper sends, echoed back by the fake as the
    id of a row (status 200 faults with echo): limit, created bounds,
    starting_after, and no token."""
    listname, kind, start, end = TABLES["clover_charges"]
    mid = start + DAY_MS // 2 + 1234
    echo_page = {"object": "list", "url": "/v1/charges", "has_more": False,
                 "data": [{"id": "Q:{query}", "object": "charge", "amount": 1,
                           "currency": "usd", "created": mid, "status": "succeeded"}]}
    # the first page
    reset()
    fake_fault(kind="status", target="v1", status=200, echo=True, body=echo_page)
    rows, err = r.run("SELECT id FROM clover_charges WHERE " + CHARGES_WHERE)
    ids = [x[0] for x in rows or []]
    query = ids[0][2:] if len(ids) == 1 and ids[0].startswith("Q:") else None
    params = urllib.parse.parse_qs(query or "", keep_blank_values=True)
    tap.check(query is not None and params == {"limit": ["100"], "created.gt": [str(start - 1)],
                                               "created.lt": [str(end)]},
              "page 1 asks limit=100, created.gt=start-1, created.lt=end and nothing else",
              "%s; %s" % (ids[:3], describe(err)))
    # the second page: starting_after is the first page's last id
    reset()
    first = v1_page(listname, {"limit": 100, "created.gt": start - 1, "created.lt": end})
    fake_fault(kind="status", target="v1", status=200, echo=True, body=echo_page, skip=1)
    rows, err = r.run("SELECT id FROM clover_charges WHERE " + CHARGES_WHERE)
    echoed = [x[0][2:] for x in rows or [] if x[0].startswith("Q:")]
    params = urllib.parse.parse_qs(echoed[0] if echoed else "")
    tap.check(len(echoed) == 1 and params.get("starting_after") ==
              [first["data"][-1]["id"]] and params.get("limit") == ["100"]
              and len(rows) == 101,
              "page 2 asks starting_after=<page 1's last id>, limit=100",
              "%s; %s" % (echoed, describe(err)))
    for q in ([query] if query else []) + echoed:
        tap.check(not leak(q) and "token" not in q.lower(),
                  "no token in the query string sent (%s)" % q[:60], q)


def secrets_in_errors(tap, r):
    """Clover's error bodies that echo the token: not shown (the log is
    checked at the end)."""
    bodies = [
        (400, {"error": {"type": "invalid_request_error", "code": "parameter_invalid",
                         "message": "Bad request with Authorization: Bearer {token}",
                         "param": "limit"}}),
        (400, {"error": {"message": "." * 200 + "{token}", "param": "{token}"}}),
        (401, {"error": {"type": "authentication_error", "message": "token {token}"}}),
        (404, {"error": {"message": "{token} not found"}}),
        (500, "internal error for {token} at {query}"),
    ]
    option(r.conn, "SERVER", "clover", "max_retries", "0")
    for status, body in bodies:
        reset()
        fake_fault(kind="status", target="v1", status=status, count=-1, echo=True,
                   body=body, headers={"X-Echo": "{token}"})
        n0 = len(r.seen)
        _, err = r.run(CHARGES_SQL)
        tap.check(err is not None and not any(leak(t) for t in r.seen[n0:]),
                  "a %d whose body echoes the token: an error without it" % status,
                  describe(err))
    option(r.conn, "SERVER", "clover", "max_retries", None)


# ------------------------------------------------------------ 7. EXPLAIN

def explain(tap, r):
    """Check 7: the request EXPLAIN names; EXPLAIN ANALYZE's counts."""
    reset()
    start, end = TABLES["clover_charges"][2:]
    x, y = start + 7 * 3600 * 1000 + 123, start + DAY_MS + 456
    cases = [
        ("clover_charges", range_where(start, end), "created.gt=%d created.lt=%d"
         % (start - 1, end)),
        ("clover_charges", "created_time > %s AND created_time <= %s" % (ts(x), ts(y)),
         "created.gt=%d created.lt=%d" % (x, y + 1)),
        ("clover_charges", "created_time >= %s AND created_time < %s"
         % (ts(x, 500), ts(y, 500)), "created.gt=%d created.lt=%d" % (x, y + 1)),
        ("clover_charges", "created_time BETWEEN %s AND %s" % (ts(x), ts(y)),
         "created.gt=%d created.lt=%d" % (x - 1, y + 1)),
        ("clover_charges", "created_time = %s" % ts(x), "created.gt=%d created.lt=%d"
         % (x - 1, x + 1)),
        ("clover_refunds", range_where(start, end), "created.gt=%d created.lt=%d"
         % (start - 1, end)),
        ("clover_ecommerce_orders", range_where(start, end), "created.gt=%d created.lt=%d"
         % (start - 1, end)),
        ("clover_charges", "created_time < %s" % ts(end), "created.lt=%d" % end),
    ]
    for table, where, params in cases:
        want = "GET /v1/%s %s limit=100" % (TABLES[table][0], params)
        got = explain_line(r, "SELECT id FROM %s WHERE %s" % (table, where))
        tap.check(got == want, "EXPLAIN %s WHERE %s: %s" % (table, where, want), got)
    # history_start gives the lower bound when the query has none
    option(r.conn, "FOREIGN TABLE", "clover_charges", "history_start", "2024-03-01 00:00+00")
    got = explain_line(r, "SELECT id FROM clover_charges WHERE created_time < %s" % ts(end))
    want = "GET /v1/charges created.gt=%d created.lt=%d limit=100" % (start - 1, end)
    tap.check(got == want, "EXPLAIN with history_start: %s" % want, got)
    option(r.conn, "FOREIGN TABLE", "clover_charges", "history_start", None)
    tap.check(fake_stats()["v1_requests"] == 0, "plain EXPLAIN asks Clover nothing",
              "%d requests" % fake_stats()["v1_requests"])

    # EXPLAIN ANALYZE: the figures are the fake's
    for cursor in ("included", "excluded"):
        reset(v1_cursor=cursor, v1_order="newest_first")
        node, err = explain_json(r, "SELECT id FROM clover_charges WHERE " + CHARGES_WHERE)
        st = fake_stats()
        n = expect("CHARGES", start, end)["count"]
        got = node and {k: node.get(k) for k in ("Pages Fetched", "List Requests",
                                                 "Repeated Objects Skipped", "Rows Returned")}
        want = {"Pages Fetched": st["v1_pages"]["charges"],
                "List Requests": st["v1_requests"],
                "Repeated Objects Skipped": (st["v1_pages"]["charges"] - 1
                                             if cursor == "included" else 0),
                "Rows Returned": n}
        tap.check(got == want and node.get("Clover List", "").startswith("GET /v1/charges "),
                  "cursor %s: EXPLAIN ANALYZE's pages, requests, repeats and rows are "
                  "the fake's (%s)" % (cursor, want), "%s; %s" % (got, describe(err)))


# ------------------------------------------------------- 8. no advance

def no_advance(tap, r):
    """Check 8: page 2 holds only objects page 1 gave, and has_more."""
    listname, kind, start, end = TABLES["clover_charges"]
    reset()                     # the list order the scans below see
    first = v1_page(listname, {"limit": 100, "created.gt": start - 1, "created.lt": end})
    cursor_obj = first["data"][-1]
    r.execute("SET statement_timeout = '60s'")    # a loop must not hang the suite
    for reading, data in (("included", [cursor_obj]), ("excluded", first["data"])):
        reset(v1_cursor=reading)
        fake_fault(kind="status", target="v1", status=200, skip=1, count=-1,
                   body={"object": "list", "url": "/v1/charges", "has_more": True,
                         "data": data})
        rows, err = r.run(CHARGES_SQL)
        st = fake_stats()
        detail = (err and err.diag.message_detail) or ""
        tap.check(err is not None and err.pgcode != "57014"
                  and err.diag.message_primary == "Clover's list /v1/charges did not advance"
                  and "page 2" in detail.lower() and cursor_obj["id"] in detail
                  and st["v1_requests"] == 2,
                  "cursor %s: a page that repeats only seen ids with has_more is an error "
                  "after 2 requests, naming the page and the cursor" % reading,
                  "%s; requests %d" % (describe(err), st["v1_requests"]))
    r.execute("RESET statement_timeout")


# ----------------------------------------------------------------- main

def setup(tap):
    """The database, its server on the fake (also for /v1) and the imported
    tables; None (after a failed check) when that cannot be done."""
    try:
        conn = fresh_database(DB, "ecommerce_base_url '%s'" % API)
    except psycopg2.Error as e:
        tap.check(False, "a server with ecommerce_base_url and the imported tables",
                  describe(e))
        return None
    with conn.cursor() as cur:
        cur.execute("SELECT relname FROM pg_class WHERE relname IN %s", (tuple(TABLES),))
        have = {x[0] for x in cur.fetchall()}
    if not tap.check(have == set(TABLES), "IMPORT FOREIGN SCHEMA creates %s" % ", ".join(TABLES),
                     "got %s" % sorted(have)):
        return None
    return conn


def main():
    tap = Tap()
    seed = int(os.environ.get("RANDOM_SEED") or random.SystemRandom().randrange(1 << 30))
    tap.note("RANDOM_SEED=%d" % seed)
    log_start = log_position()
    conn = setup(tap)
    if conn is None:
        tap.finish()
    r = Runner(conn)

    # without ecommerce_access_token, access_token serves /v1
    reset()
    ok, text, _ = charges_exact(r)
    tap.check(ok, "without ecommerce_access_token, access_token is used", text)
    set_ecommerce_token(conn, TOKEN)

    exactness(tap, r)
    pg_filter(tap, r, random.Random(seed))
    row_values(tap, r)
    limits(tap, r)
    others = [connect(DB) for _ in range(6)]
    rate_limits(tap, r, others[0])
    retries(tap, r)
    refusals(tap, r)
    many_sessions(tap, others)
    cancels(tap, conn, others[0])
    wire(tap, r)
    secrets_in_errors(tap, r)
    explain(tap, r)
    no_advance(tap, r)

    bad = [t for t in r.seen if leak(t)]
    tap.check(not bad, "no token (or %d characters of one) in any row, message, detail, "
              "hint or EXPLAIN line (%d texts)" % (FRAGMENT, len(r.seen)),
              "%d, e.g. %s" % (len(bad), bad[:2]))
    log = log_since(log_start)
    bad = [line for line in log.splitlines() if leak(line)]
    tap.check("/v1/charges" in log and not bad,
              "the server log (debug5) names /v1/charges and holds no token",
              "%d lines, e.g. %s" % (len(bad), bad[:2]))
    for c in others:
        c.close()
    fake_reset()
    conn.close()
    tap.finish()


if __name__ == "__main__":
    main()
