#!/usr/bin/env python3
"""Many merchants in one statement (issue 14).

Run by `test/bench/bench.sh --merchants [--count 100] [--years 3] ...`, which
starts the cluster and the fake Clover.  The fake's exports take time
(--processing-ms, and --queue-ms PENDING), every merchant has its own token
(as an app installed on many merchants has), and the wrapper runs
--per-merchant exports at once per merchant and at most --host-cap at the
API host (wrapper option max_exports_per_host).  One statement reads
--years of orders of --count merchants through a table partitioned by
merchant_id, its partitions the merchants' foreign tables, under an
asynchronous Append.  Printed, measured side by side in this one run:

  - one export alone (POST, then a poll every 20 ms until DONE), the unit of
    the ideal schedule: slots = min(host cap, merchants x per-merchant cap),
    ideal = ceil(exports needed / slots) x one export;
  - the statement's wall time, and wall / ideal (issue 14's target: 1.3);
  - the same statement with enable_async_append off, for comparison
    (--compare; it takes longer);
  - the most exports running at the fake and requests in flight it saw,
    per token and for the whole app (never above the caps);
  - the backend's peak resident memory (VmHWM of /proc/<pid>/status);
  - whether every merchant's count and sum equal the fake's own account.

Not a pass/fail test: the figures go into the issue's closing note.
"""

import argparse
import math
import statistics
import time

import psycopg2

from bench import iso, timed
from common import API, _admin, fake_config, fake_reset, fake_stats

START_MS = 1640995200000          # 2022-01-01 00:00 UTC
DAY_MS = 86400000
WINDOW_DAYS = 30                  # the wrapper's longest window


def merchant_id(i):
    """A 13-character id: BM, then the number in 11 digits."""
    return "BM%011d" % i


def token(i):
    return "bench-token-%03d" % i


def sql(conn, query, args=None):
    with conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall() if cur.description else None


class Merchants:
    def __init__(self, args):
        self.args = args
        self.ids = [merchant_id(i) for i in range(args.count)]
        self.end_ms = START_MS + int(args.years * 365 * DAY_MS)
        self.where = "created_time >= '%s' AND created_time < '%s'" % (
            iso(START_MS), iso(self.end_ms))
        self.windows = math.ceil((self.end_ms - START_MS) / (WINDOW_DAYS * DAY_MS))
        self.exports = self.windows * args.count
        self.slots = min(args.host_cap, args.count * args.per_merchant)

    @staticmethod
    def connect():
        conn = psycopg2.connect(dbname="bench")
        conn.autocommit = True
        return conn

    def fake(self, delays=True):
        a = self.args
        fake_reset()
        fake_config(queue_ms=a.queue_ms if delays else 0,
                    processing_ms=a.processing_ms if delays else 0,
                    max_concurrent_exports=max(a.host_cap, 1) * 2,
                    merchants={m: {"orders_per_day": a.orders_per_day, "region": "*"}
                               for m in self.ids},
                    tokens={token(i): [m] for i, m in enumerate(self.ids)})

    def setup(self):
        """The partitioned table of every merchant's orders, one server,
        user mapping and partition per merchant."""
        a = self.args
        conn = self.connect()
        sql(conn, "DROP SCHEMA IF EXISTS many CASCADE")
        sql(conn, "CREATE SCHEMA many")
        sql(conn, "CREATE TABLE many.orders (merchant_id text NOT NULL, id text, "
                  "total bigint, created_time timestamptz) PARTITION BY LIST (merchant_id)")
        opts = sql(conn, "SELECT fdwoptions FROM pg_foreign_data_wrapper "
                         "WHERE fdwname = 'clover_export_fdw'")[0][0] or []
        for name, value in (("max_exports_per_host", a.host_cap), ("reuse_exports", "0")):
            verb = "SET" if any(o.startswith(name + "=") for o in opts) else "ADD"
            sql(conn, "ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (%s %s %%s)"
                % (verb, name), (str(value),))
        for i, m in enumerate(self.ids):
            server = "bench_" + m.lower()
            sql(conn, "DROP SERVER IF EXISTS %s CASCADE" % server)
            sql(conn, "CREATE SERVER %s FOREIGN DATA WRAPPER clover_export_fdw OPTIONS "
                      "(region 'sandbox', merchant_id %%s, base_url %%s, "
                      "max_concurrent_exports %%s)" % server,
                (m, API, str(a.per_merchant)))
            sql(conn, "CREATE USER MAPPING FOR CURRENT_USER SERVER %s "
                      "OPTIONS (access_token %%s)" % server, (token(i),))
            sql(conn, "CREATE FOREIGN TABLE many.orders_%s PARTITION OF many.orders "
                      "FOR VALUES IN (%%s) SERVER %s OPTIONS (export_type 'ORDERS', "
                      "rows_per_day %%s)" % (m.lower(), server),
                (m, str(a.orders_per_day)))
        conn.close()

    def query(self):
        return ("SELECT merchant_id, count(*), sum(total) FROM many.orders WHERE "
                + self.where + " GROUP BY merchant_id")

    def fresh(self):
        conn = self.connect()
        sql(conn, "SELECT clover_export_fdw_forget_exports()")
        conn.close()
        self.fake()

    def export_alone(self):
        """Seconds from POST to the first poll that sees DONE (every 20 ms)."""
        import json
        import urllib.request

        def call(path, body=None):
            data = json.dumps(body).encode() if body is not None else None
            req = urllib.request.Request(API + path, data=data,
                                         method="POST" if data else "GET")
            req.add_header("Authorization", "Bearer " + token(0))
            req.add_header("Content-Type", "application/json")
            with urllib.request.urlopen(req, timeout=600) as resp:
                return json.loads(resp.read())
        path = "/v3/merchants/%s/exports" % self.ids[0]
        t0 = time.perf_counter()
        e = call(path, {"type": "ORDERS", "startTime": START_MS,
                        "endTime": START_MS + WINDOW_DAYS * DAY_MS - 1})
        while e["status"] in ("PENDING", "IN_PROGRESS"):
            time.sleep(0.02)
            e = call("%s/%s" % (path, e["id"]))
        assert e["status"] == "DONE", e["status"]
        return time.perf_counter() - t0

    def run(self, async_append=True):
        """The statement on a fresh fake: wall time, rows, peak memory."""
        self.fresh()
        conn = self.connect()
        sql(conn, "SET enable_async_append = %s" % ("on" if async_append else "off"))
        pid = sql(conn, "SELECT pg_backend_pid()")[0][0]
        secs, rows = timed(lambda: sql(conn, self.query()))
        with open("/proc/%d/status" % pid) as f:
            hwm = [line.split()[1] for line in f if line.startswith("VmHWM")][0]
        conn.close()
        return secs, rows, int(hwm) / 1024.0, fake_stats()

    def exact(self, rows):
        got = {m: (c, s) for m, c, s in rows}
        bad = 0
        for m in self.ids:
            e = _admin("/expect?type=ORDERS&merchant=%s&start=%d&end=%d"
                       % (m, START_MS, self.end_ms))
            if got.get(m, (0, None))[0] != e["count"] or \
                    (e["count"] and got[m][1] != e["sum"]):
                bad += 1
        return bad


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=100, help="merchants")
    p.add_argument("--years", type=float, default=3)
    p.add_argument("--orders-per-day", type=int, default=2)
    p.add_argument("--processing-ms", type=int, default=2000)
    p.add_argument("--queue-ms", type=int, default=100)
    p.add_argument("--per-merchant", type=int, default=1,
                   help="max_concurrent_exports of each merchant's server")
    p.add_argument("--host-cap", type=int, default=10,
                   help="the wrapper's max_exports_per_host")
    p.add_argument("--units", type=int, default=3, help="rounds of one export alone")
    p.add_argument("--compare", action="store_true",
                   help="also run with enable_async_append off")
    args = p.parse_args()

    b = Merchants(args)
    print("# %d merchants x %.1f years = %d windows each, %d exports; %d slots"
          % (args.count, args.years, b.windows, b.exports, b.slots), flush=True)
    b.setup()
    # the fake generates and caches every window's file once, without delays
    b.fake(delays=False)
    t, _ = timed(lambda: sql(b.connect(), b.query()))
    print("# warm-up (no delays): %.1f s" % t, flush=True)

    b.fresh()
    unit = statistics.median(b.export_alone() for _ in range(args.units))
    ideal = math.ceil(b.exports / b.slots) * unit
    print("one export alone:            %.2f s" % unit)
    print("ideal (%d rounds of %d):    %.1f s" % (math.ceil(b.exports / b.slots),
                                                 b.slots, ideal), flush=True)

    runs = [("async Append", True)] + ([("enable_async_append off", False)]
                                       if args.compare else [])
    for name, on in runs:
        secs, rows, mem, s = b.run(on)
        print("%-28s %.1f s = %.2f x ideal" % (name + ":", secs, secs / ideal))
        print("  exports created %d, merchants with wrong rows %d of %d"
              % (s["exports_created"], b.exact(rows), args.count))
        print("  most exports running at the fake %d (cap %d)"
              % (s["max_running_exports"], b.slots))
        print("  most requests at once: per token %d (Clover: 5), app %s (cap 10)"
              % (s["max_concurrent_requests_per_token"],
                 s.get("max_concurrent_requests_per_app", "?")))
        print("  most requests in 1 s: per token %d (Clover: 16), app %s (Clover: 50)"
              % (s["max_requests_per_second_per_token"],
                 s.get("max_requests_per_second_per_app", "?")))
        print("  backend peak memory (VmHWM) %.0f MB" % mem, flush=True)


if __name__ == "__main__":
    main()
