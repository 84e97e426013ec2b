#!/usr/bin/env python3
"""Latency of clover_export_fdw when Clover's exports take time (issue 12).

Run by `test/bench/bench.sh --latency`, which starts the cluster and the fake
Clover and creates the server and tables as for bench.py.  Here the fake
takes as long as Clover does: every export stays IN_PROGRESS for
--processing-ms plus its objects at --objects-per-s (fake config
processing_ms and processing_objects_per_s), and at most --slots exports run
at once (fake max_concurrent_exports; server option max_concurrent_exports
the same).  Measured, side by side in one run, several rounds each,
reported as medians:

  1. one export alone, the unit of every ideal: POST, then a status poll
     every 20 ms until DONE (no download), of the scan's first 30-day
     window; and the larger of the ORDERS and PAYMENTS exports of the
     join's 2 days.  The ideal schedule of n windows over s slots is
     ceil(n / s) x one export: s exports run side by side, each round
     takes one export, and nothing else is waited for;
  2. count(*) of one window through the wrapper, for scale;
  3. count(*) of an n-window range (--windows, 30 days each);
  4. clover_orders JOIN clover_payments over 2 days;
  5. the same 2-window query twice in one session: second / first;
  6. 3 sessions running that query at once: exports created, the fake's
     busy 503s, each session's time;
  7. status polls per export (the fake's counters).
Times are compared with ideals as ratios, never absolutely: the machine is
shared.  Not a pass/fail test.
"""

import argparse
import math
import statistics
import threading
import time

import psycopg2

# bench.py (beside this file) puts test/integration, common's home, on the path
from bench import MERCHANT, DAY_MS, api, iso, timed, where
from common import fake_config, fake_reset, fake_stats

START_MS = 1704067200000          # 2024-01-01 00:00 UTC
WINDOW_MS = 30 * DAY_MS           # the wrapper's longest window
JOIN_MS = 1717200000000           # 2024-06-01 00:00 UTC: the join's 2 days


class Latency:
    def __init__(self, args):
        self.args = args
        self.conn = self.connect()
        self.times = {}
        self.counts = {}
        self.scan = where(START_MS, START_MS + args.windows * WINDOW_MS)
        self.two = where(START_MS, START_MS + 2 * WINDOW_MS)
        days = "created_time >= '%s' AND %%s.created_time < '%s'" % (
            iso(JOIN_MS), iso(JOIN_MS + 2 * DAY_MS))
        self.join = ("SELECT count(*) FROM clover_orders o JOIN clover_payments p "
                     "ON p.order_id = o.id WHERE o.%s AND p.%s" % (days % "o", days % "p"))

    @staticmethod
    def connect():
        conn = psycopg2.connect(dbname="bench")
        conn.autocommit = True
        return conn

    @staticmethod
    def sql(conn, query):
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall() if cur.description else None

    def record(self, name, secs):
        self.times.setdefault(name, []).append(secs)

    def count(self, name, value):
        self.counts.setdefault(name, []).append(value)

    # ------------------------------------------------------------ set-up

    def fake(self, delays=True):
        """Zero the fake's counters; its delays on (or off, to warm up)."""
        a = self.args
        fake_reset()
        fake_config(queue_ms=0,
                    processing_ms=a.processing_ms if delays else 0,
                    processing_objects_per_s=a.objects_per_s if delays else 0,
                    max_concurrent_exports=a.slots,
                    merchants={MERCHANT: {"orders_per_day": a.orders_per_day, "region": "*"}})

    def fresh(self):
        """Nothing known from an earlier run: the fake reset with its delays
        on, and the wrapper's list of known exports (if it has one) cleared."""
        if self.sql(self.conn, "SELECT to_regproc('clover_export_fdw_forget_exports')")[0][0]:
            self.sql(self.conn, "SELECT clover_export_fdw_forget_exports()")
        self.fake()

    def setup(self):
        self.sql(self.conn, "ALTER SERVER clover OPTIONS (ADD max_concurrent_exports '%d')"
                 % self.args.slots)
        windows = self.sql(self.conn, "EXPLAIN SELECT count(*) FROM clover_orders WHERE "
                           + self.scan)
        line = [r[0] for r in windows if "Export Windows" in r[0]]
        assert line and line[0].split()[-1] == str(self.args.windows), windows
        # the fake generates and caches every window's files once, without
        # delays, before anything is timed
        self.fake(delays=False)
        self.sql(self.conn, "SELECT count(*) FROM clover_orders WHERE " + self.scan)
        self.sql(self.conn, self.join)
        plan = self.sql(self.conn, "EXPLAIN " + self.join)
        self.join_plan = " > ".join(r[0].strip(" ->").split("  ")[0] for r in plan
                                    if "->" in r[0] or r is plan[0])
        self.rows = self.sql(self.conn, "SELECT count(*) FROM clover_orders WHERE "
                             + where(START_MS, START_MS + WINDOW_MS))[0][0]

    # ---------------------------------------------------------- the runs

    @staticmethod
    def export_alone(kind, start_ms, end_ms):
        """Seconds from POST to the first poll that sees DONE (every 20 ms)."""
        t0 = time.perf_counter()
        e = api("/v3/merchants/%s/exports" % MERCHANT,
                {"type": kind, "startTime": start_ms, "endTime": end_ms})
        while e["status"] in ("PENDING", "IN_PROGRESS"):
            time.sleep(0.02)
            e = api("/v3/merchants/%s/exports/%s" % (MERCHANT, e["id"]))
        assert e["status"] == "DONE", e["status"]
        return time.perf_counter() - t0

    def run_units(self):
        self.fresh()
        self.record("one export", self.export_alone("ORDERS", START_MS, START_MS + WINDOW_MS))
        self.record("one export of the join", max(
            self.export_alone(kind, JOIN_MS, JOIN_MS + 2 * DAY_MS)
            for kind in ("ORDERS", "PAYMENTS")))

    def wrapper(self, name, query, conn=None):
        """Time query on a fresh fake; count its exports, polls and busy 503s."""
        self.fresh()
        secs, _ = timed(lambda: self.sql(conn or self.conn, query))
        self.record(name, secs)
        self.stats(name)

    def stats(self, name):
        s = fake_stats()
        self.count(name + ": exports", s["exports_created"])
        self.count(name + ": polls", s["polls"])
        self.count(name + ": busy", s["busy_rejections"])
        self.count(name + ": max polls", max((e["polls"] for e in s["exports"]), default=0))

    def run_scans(self):
        self.wrapper("one window", "SELECT count(*) FROM clover_orders WHERE "
                     + where(START_MS, START_MS + WINDOW_MS))
        self.wrapper("scan", "SELECT count(*) FROM clover_orders WHERE " + self.scan)
        self.wrapper("join", self.join)

    def run_repeat(self):
        """The same query twice in a new session: nothing known before the first."""
        conn = self.connect()
        self.fresh()
        query = "SELECT count(*) FROM clover_orders WHERE " + self.two
        for name in ("first", "second"):
            before = fake_stats()["exports_created"]
            secs, _ = timed(lambda: self.sql(conn, query))
            self.record(name, secs)
            self.count(name + ": exports", fake_stats()["exports_created"] - before)
        conn.close()

    def run_sessions(self):
        """--sessions sessions start the same 2-window query at once."""
        n = self.args.sessions
        conns = [self.connect() for _ in range(n)]
        for c in conns:                      # each backend has loaded the wrapper
            self.sql(c, "SELECT count(*) FROM clover_orders WHERE false")
        self.fresh()
        barrier = threading.Barrier(n)
        secs = [None] * n
        errors = []

        def one(i):
            barrier.wait()
            try:
                secs[i], _ = timed(lambda: self.sql(
                    conns[i], "SELECT count(*) FROM clover_orders WHERE " + self.two))
            except psycopg2.Error as e:
                errors.append(str(e).strip())
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for c in conns:
            c.close()
        assert not errors, errors
        self.record("sessions slowest", max(secs))
        self.record("sessions fastest", min(secs))
        self.stats("sessions")


def counts(values):
    """Counts of the rounds: one number when they agree, else all of them."""
    return str(values[0]) if len(set(values)) == 1 else "/".join(map(str, values))


def report(b):
    a = b.args
    med = {k: statistics.median(v) for k, v in b.times.items()}
    unit, unit_join = med["one export"], med["one export of the join"]
    rounds = math.ceil(a.windows / a.slots)
    ideal = rounds * unit
    print()
    print("one export alone (POST to DONE, polled every 20 ms; median of %d):" % a.repeat)
    print("  30-day window of orders (%d objects): %.2f s; join's 2 days, larger of orders "
          "and payments: %.2f s" % (b.rows, unit, unit_join))
    print("  ideal for %d windows over %d slots: ceil(%d/%d) x %.2f s = %.2f s"
          % (a.windows, a.slots, a.windows, a.slots, unit, ideal))
    print()
    print("%-46s %8s %8s %7s   %s" % ("scenario (median of %d)" % a.repeat,
                                       "measured", "ideal", "ratio", "target"))

    def row(label, secs, ideal, target, plus=0.0, note=""):
        r = secs / ideal
        if target is None:
            verdict = note
        else:
            limit = target + plus / ideal
            verdict = "<= %.2f%s: %s" % (target, " (+%g s: %.2f)" % (plus, limit) if plus else "",
                                         "met" if r <= limit else "NOT met")
        print("%-46s %7.2fs %7.2fs %7.2f   %s" % (label, secs, ideal, r, verdict))
    row("%d-window scan / ideal schedule, %d slots" % (a.windows, a.slots),
        med["scan"], ideal, 1.3, 1.0)
    row("orders JOIN payments, 2 days / one export", med["join"], unit_join, 1.35)
    print("%-46s %s" % ("", "(plan: %s)" % b.join_plan))
    row("repeated query: second / first", med["second"], med["first"], None,
        note="(issue 12: the second reuses the first's exports)")
    row("1-window scan / one export", med["one window"], unit, None)
    row("%d sessions, 2 windows: slowest / ideal" % a.sessions,
        med["sessions slowest"], math.ceil(2 / a.slots) * unit, None)
    row("%d sessions, 2 windows: fastest / ideal" % a.sessions,
        med["sessions fastest"], math.ceil(2 / a.slots) * unit, None)

    c = b.counts
    print()
    print("counts (per round; the issue's targets in brackets):")
    print("  %d-window scan: exports created %s [%d], busy 503s %s [0]"
          % (a.windows, counts(c["scan: exports"]), a.windows, counts(c["scan: busy"])))
    print("  join: exports created %s [2], busy 503s %s [0]"
          % (counts(c["join: exports"]), counts(c["join: busy"])))
    print("  repeated 2-window query: exports created by the first %s, by the second %s [0]"
          % (counts(c["first: exports"]), counts(c["second: exports"])))
    print("  %d sessions, same 2-window query at once: exports created %s [2], busy 503s %s [0]"
          % (a.sessions, counts(c["sessions: exports"]), counts(c["sessions: busy"])))
    print("status polls per export (all polls / exports created; most polls of one export):")
    for name, label in (("one window", "1-window scan"), ("scan", "%d-window scan" % a.windows),
                        ("join", "join"), ("sessions", "%d sessions" % a.sessions)):
        polls, exports = sum(c[name + ": polls"]), sum(c[name + ": exports"])
        print("  %-16s %5.1f   most %s" % (label, polls / max(1, exports),
                                           max(c[name + ": max polls"])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--processing-ms", type=int, default=1500)
    ap.add_argument("--objects-per-s", type=int, default=4000)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--orders-per-day", type=int, default=150)
    args = ap.parse_args()
    b = Latency(args)
    print("latency: each export takes %d ms + objects / %d per s, %d at once; %d orders a day"
          % (args.processing_ms, args.objects_per_s, args.slots, args.orders_per_day),
          flush=True)
    b.setup()
    # rounds interleave the scenarios so drifting load hits all alike
    for i in range(args.repeat):
        b.run_units()
        b.run_scans()
        b.run_repeat()
        b.run_sessions()
        print("round %d of %d done" % (i + 1, args.repeat), flush=True)
    report(b)


if __name__ == "__main__":
    main()
