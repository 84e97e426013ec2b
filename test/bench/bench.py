#!/usr/bin/env python3
"""Benchmark clover_export_fdw side by side with its limits and alternatives.

Run by test/bench/bench.sh, which starts the cluster and the fake Clover.  Every
figure comes from this one run, several times each, and is reported as a
median; the verdicts compare ratios, never an absolute time, because this
machine is shared and noisy.

Measured, for the same export window of N orders (--objects):
  1. curl: plain download of the export's files over one kept-alive
     connection (the network limit; the export itself is not timed);
  2. the wrapper: SELECT count(*), and COPY (SELECT * ...) TO '/dev/null'
     (the whole scan: export, polls, downloads, conversion, output), and
     count(*) of one minute (the fixed cost of an export, which curl's
     time does not include);
  3. PostgreSQL alone, on the same objects' JSON text in a local table:
     SELECT count(raw::jsonb), and COPY (SELECT raw::jsonb ...) TO
     '/dev/null' (the same jsonb output cost the wrapper's SELECT * pays);
     and COPY (SELECT *) of the wrapper's own rows stored in a local
     table (PostgreSQL's cost to output those rows at all);
  4. Clover's example script in Python, made to load the rows with COPY
     through psql (test/bench/python_loader.py);
  5. LIMIT 10 over a year: time to the rows, exports created and files
     downloaded; peak backend RSS for 100 000 and 1 000 000 rows.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from common import API, fake_config, fake_reset, fake_stats  # noqa: E402

MERCHANT = "BENCHMERCHANT"
TOKEN = "test-token"
PER_DAY = 10000
DAY_MS = 86400000
START_MS = 1709251200000          # 2024-03-01 00:00 UTC


def api(path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(API + path, data=data,
                                 method="POST" if data else "GET")
    req.add_header("Authorization", "Bearer " + TOKEN)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


def iso(ms):
    return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(ms // 1000))


def where(start_ms, end_ms):
    return "created_time >= '%s' AND created_time < '%s'" % (iso(start_ms), iso(end_ms))


def export_files(start_ms, end_ms):
    """Create an export of the window and wait for it; its file URLs."""
    e = api("/v3/merchants/%s/exports" % MERCHANT,
            {"type": "ORDERS", "startTime": start_ms, "endTime": end_ms})
    while e["status"] in ("PENDING", "IN_PROGRESS"):
        time.sleep(0.05)
        e = api("/v3/merchants/%s/exports/%s" % (MERCHANT, e["id"]))
    assert e["status"] == "DONE", e["status"]
    return [u["url"] for u in e["exportUrls"]["elements"]]


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


class Bench:
    def __init__(self, args):
        self.args = args
        self.conn = psycopg2.connect(dbname="bench")
        self.conn.autocommit = True
        self.days = args.objects / PER_DAY
        self.end_ms = START_MS + int(self.days * DAY_MS)
        self.where = where(START_MS, self.end_ms)
        self.times = {}

    def sql(self, query, conn=None):
        with (conn or self.conn).cursor() as cur:
            cur.execute(query)
            return cur.fetchall() if cur.description else cur.rowcount

    def record(self, name, secs):
        self.times.setdefault(name, []).append(secs)

    # ---------------------------------------------------------- the runs

    def run_curl(self):
        urls = export_files(START_MS, self.end_ms)
        with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as cfg:
            for u in urls:
                cfg.write('url = "%s"\noutput = "/dev/null"\n' % u)
        secs, _ = timed(lambda: subprocess.run(
            ["curl", "-s", "-f", "--config", cfg.name], check=True))
        os.unlink(cfg.name)
        self.record("curl download", secs)

    def run_wrapper(self):
        secs, rows = timed(lambda: self.sql(
            "SELECT count(*) FROM clover_orders WHERE " + self.where))
        self.count = rows[0][0]
        self.record("wrapper count(*)", secs)
        # one minute of orders: what any export costs besides its bytes
        # (POST, the first poll, one small file), which curl's time excludes
        secs, _ = timed(lambda: self.sql(
            "SELECT count(*) FROM clover_orders WHERE "
            + where(START_MS, START_MS + 60000)))
        self.record("wrapper count(*) of one minute", secs)
        # a whole-row reference converts every column, but prints nothing
        secs, rows = timed(lambda: self.sql(
            "SELECT count(t) FROM clover_orders t WHERE " + self.where))
        self.record("wrapper count(t): all columns, no output", secs)
        secs, n = timed(lambda: self.sql(
            "COPY (SELECT * FROM clover_orders WHERE %s) TO '/dev/null'" % self.where))
        assert n == self.count, (n, self.count)
        self.record("wrapper COPY SELECT *", secs)

    def run_local(self):
        secs, rows = timed(lambda: self.sql("SELECT count(raw::jsonb) FROM bench_raw"))
        assert rows[0][0] == self.objects
        self.record("local count(raw::jsonb)", secs)
        secs, _ = timed(lambda: self.sql(
            "COPY (SELECT raw::jsonb FROM bench_raw) TO '/dev/null'"))
        self.record("local COPY raw::jsonb", secs)
        secs, n = timed(lambda: self.sql(
            "COPY (SELECT * FROM bench_typed) TO '/dev/null'"))
        assert n == self.count, (n, self.count)
        self.record("local table COPY SELECT * (same rows)", secs)

    def run_python(self):
        self.sql("TRUNCATE bench_loaded")
        secs, out = timed(lambda: subprocess.run(
            [sys.executable, os.path.join(HERE, "python_loader.py"), API,
             MERCHANT, TOKEN, str(START_MS), str(self.end_ms), "bench_loaded"],
            check=True, capture_output=True, text=True,
            env=dict(os.environ, PGDATABASE="bench")).stdout)
        assert int(out) == self.objects, (out, self.objects)
        self.record("python loader (Clover's example + COPY)", secs)

    # ------------------------------------------------------------ set-up

    @staticmethod
    def reset_fake():
        """Zero the fake's counters; no processing delay; our merchant."""
        fake_reset()
        fake_config(processing_ms=0, queue_ms=0,
                    merchants={MERCHANT: {"orders_per_day": PER_DAY, "region": "*"}})

    def setup(self):
        self.reset_fake()
        # warm the fake's file cache and load the objects' text locally
        urls = export_files(START_MS, self.end_ms)
        self.sql("DROP TABLE IF EXISTS bench_raw, bench_file, bench_loaded")
        self.sql("CREATE TABLE bench_file (body text)")
        with self.conn.cursor() as cur:
            for u in urls:
                with urllib.request.urlopen(u, timeout=600) as resp:
                    cur.execute("INSERT INTO bench_file VALUES (%s)",
                                (resp.read().decode("utf-8"),))
        # json (not jsonb) keeps each element's original text
        self.sql("CREATE TABLE bench_raw AS SELECT e::text AS raw FROM bench_file, "
                 "json_array_elements(body::json->'elements') e")
        self.sql("DROP TABLE bench_file")
        self.sql("VACUUM ANALYZE bench_raw")
        self.sql("CREATE UNLOGGED TABLE bench_loaded (LIKE clover_orders)")
        # the wrapper's rows, typed, in a heap table: what PostgreSQL alone
        # pays to output exactly what COPY (SELECT *) outputs
        self.sql("DROP TABLE IF EXISTS bench_typed")
        self.sql("CREATE UNLOGGED TABLE bench_typed AS SELECT * FROM clover_orders WHERE "
                 + self.where)
        self.sql("VACUUM ANALYZE bench_typed")
        self.mb = self.sql("SELECT sum(octet_length(raw)) FROM bench_raw")[0][0] / 1e6
        self.objects = self.sql("SELECT count(*) FROM bench_raw")[0][0]
        self.sql("SELECT count(raw::jsonb) FROM bench_raw")   # warm the cache
        self.sql("SELECT count(*) FROM clover_orders WHERE " + self.where)

    # -------------------------------------------------- first rows, memory

    def first_rows(self):
        year = where(START_MS, START_MS + 365 * DAY_MS)
        out = []
        self.sql("SELECT id FROM clover_orders WHERE %s LIMIT 10" % year)  # warm
        for _ in range(self.args.repeat):
            self.reset_fake()
            secs, rows = timed(lambda: self.sql(
                "SELECT id FROM clover_orders WHERE %s LIMIT 10" % year))
            s = fake_stats()
            out.append((secs, len(rows), s["exports_created"], s["file_downloads"]))
        return out

    def peak_rss(self, objects):
        """VmHWM of a fresh backend after COPY (SELECT *) of `objects` rows."""
        end = START_MS + int(objects / PER_DAY * DAY_MS)
        conn = psycopg2.connect(dbname="bench")
        conn.autocommit = True
        pid = self.sql("SELECT pg_backend_pid()", conn)[0][0]

        def hwm():
            with open("/proc/%d/status" % pid) as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
        self.sql("SELECT 1 FROM clover_orders WHERE %s LIMIT 1" % where(START_MS, START_MS + DAY_MS), conn)
        before = hwm()
        n = self.sql("COPY (SELECT * FROM clover_orders WHERE %s) TO '/dev/null'"
                     % where(START_MS, end), conn)
        after = hwm()
        conn.close()
        return n, before, after


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=200000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    b = Bench(args)
    print("setting up: %d orders (%.0f days at %d/day) ..." % (args.objects, b.days, PER_DAY),
          flush=True)
    b.setup()
    print("dataset: %d orders in the export files, %.1f MB of JSON (%.2f KB per object)"
          % (b.objects, b.mb, b.mb * 1000 / b.objects), flush=True)
    print("(the wrapper returns the objects of [start, end) only; Clover's export "
          "may add those exactly at endTime)", flush=True)

    # rounds interleave the methods so drifting load hits all alike
    for i in range(args.repeat):
        b.run_curl()
        b.run_wrapper()
        b.run_local()
        b.run_python()
        print("round %d of %d done" % (i + 1, args.repeat), flush=True)

    med = {k: statistics.median(v) for k, v in b.times.items()}
    print()
    print("%-42s %9s %12s %9s" % ("method (median of %d)" % args.repeat,
                                  "seconds", "objects/s", "MB/s"))
    for name, secs in med.items():
        if name == "wrapper count(*) of one minute":
            print("%-42s %9.3f %12s %9s" % (name, secs, "-", "-"))
        else:
            print("%-42s %9.3f %12.0f %9.1f" % (name, secs, b.objects / secs, b.mb / secs))

    def ratio(label, num, den, target, better):
        r = med[num] / med[den]
        ok = r <= target if better == "le" else r >= target
        print("%-62s %6.2f  (target %s %.2f: %s)" % (label, r, "<=" if better == "le" else ">=",
                                                    target, "met" if ok else "NOT met"))
    print()
    ratio("count(*) throughput / curl download throughput",
          "curl download", "wrapper count(*)", 0.5, "ge")
    print("%-62s %6.2f  (the same, less one minute's export: the per-byte rate)"
          % ("", med["curl download"] / (med["wrapper count(*)"]
                                         - med["wrapper count(*) of one minute"])))
    ratio("COPY SELECT * time / local count(raw::jsonb) time",
          "wrapper COPY SELECT *", "local count(raw::jsonb)", 1.25, "le")
    ratio("count(t) time / local count(raw::jsonb) time (no output)",
          "wrapper count(t): all columns, no output", "local count(raw::jsonb)", 1.25, "le")
    ratio("COPY SELECT * time / local COPY raw::jsonb time (same output)",
          "wrapper COPY SELECT *", "local COPY raw::jsonb", 1.25, "le")
    print("%-62s %6.2f  (PostgreSQL's own output of these rows, for scale)"
          % ("local table COPY SELECT * time / local count(raw::jsonb) time",
             med["local table COPY SELECT * (same rows)"] / med["local count(raw::jsonb)"]))
    print("%-62s %6.2f  (the wrapper's cost over that output)"
          % ("COPY SELECT * time / local table COPY SELECT * time",
             med["wrapper COPY SELECT *"] / med["local table COPY SELECT * (same rows)"]))
    ratio("python loader time / wrapper COPY SELECT * time",
          "python loader (Clover's example + COPY)", "wrapper COPY SELECT *", 5.0, "ge")

    print()
    runs = b.first_rows()
    print("LIMIT 10 over a year (13 windows): median %.3f s to the rows "
          "(full count(*) of %d orders: %.3f s)"
          % (statistics.median(r[0] for r in runs), b.count, med["wrapper count(*)"]))
    print("  exports created %s, files downloaded %s (per run)"
          % (sorted({r[2] for r in runs}), sorted({r[3] for r in runs})))

    small = b.peak_rss(100000)
    large = b.peak_rss(1000000)
    print()
    print("peak backend RSS (VmHWM), COPY (SELECT *) in a fresh backend:")
    for n, before, after in (small, large):
        print("  %8d rows: %7d kB before, %7d kB peak" % (n, before, after))
    print("  ratio 1 000 000 / 100 000 rows: %.2f  (target <= 1.20: %s)"
          % (large[2] / small[2], "met" if large[2] / small[2] <= 1.2 else "NOT met"))


if __name__ == "__main__":
    main()
