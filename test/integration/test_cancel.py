"""Cancellation: a scan stops at once, whatever it is waiting for, and
leaves nothing behind.

For each stage of a scan (waiting for the answer to the POST, sleeping
between status polls, backing off while Clover is busy, waiting for the
service hours, downloading, converting) the fake holds the scan in that
stage, and the query is stopped three ways: pg_cancel_backend() from
another session, Ctrl-C (SIGINT) in psql, and statement_timeout.  Each must
end the query within 0.5 s with SQLSTATE 57014, and the session must work
and hold no curl handle or buffer afterwards.

Then one session is canceled 200 times at random moments; its open file
descriptors must be the same before and after, and its memory must not
grow.
"""

import os
import random
import signal
import subprocess
import time

import psycopg2

from common import (Tap, backend_pid, connect, fake_config, fake_fault,
                    fake_reset, fake_stats, fresh_database, open_handles,
                    run_in_thread, wait_until)

DB = "itest_cancel"
LIMIT_SECS = 0.5
WEEK = ("SELECT count(*) FROM clover_orders "
        "WHERE created_time >= '2024-01-01' AND created_time < '2024-01-08'")
# every column of 600 000 objects: seconds of conversion on any machine, so
# the 1.2 s statement_timeout always lands while rows are being converted
BIG = ("SELECT count(t) FROM clover_orders t "
       "WHERE created_time >= '2024-06-01' AND created_time < '2024-06-21'")
CLOSED_CLOCK_MS = 1704164400000    # 2024-01-02 03:00 UTC: US hours closed


def stage_post():
    fake_fault(kind="delay", target="post", seconds=60, count=-1)


def stage_polls():
    fake_config(processing_ms=600000)


def stage_busy():
    fake_config(max_concurrent_exports=0)


def stage_closed():
    fake_config(region="us", clock_ms=CLOSED_CLOCK_MS)


def stage_download():
    fake_fault(kind="stall", target="file", seconds=120, count=-1)


def stage_convert():
    fake_config(processing_ms=0, queue_ms=0)
    fake_config(merchants={"6E72X1BW38A7T": {"orders_per_day": 30000}})


# name, setup, query, "reached" test on the fake's stats
STAGES = [
    ("waiting for the POST", stage_post, WEEK, lambda s: s["posts"] >= 1),
    ("sleeping between polls", stage_polls, WEEK, lambda s: s["polls"] >= 2),
    ("backing off while busy", stage_busy, WEEK,
     lambda s: s["busy_rejections"] >= 1),
    ("waiting for service hours", stage_closed, WEEK,
     lambda s: s["closed_rejections"] >= 1),
    ("downloading", stage_download, WEEK, lambda s: s["file_downloads"] >= 1),
    ("converting", stage_convert, BIG, lambda s: s["file_downloads"] >= 4),
]




def is_cancel(err):
    return err is not None and err.pgcode == "57014"


def after_checks(tap, conn, label):
    """The session still works and holds nothing."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        usable = cur.fetchone()[0] == 1
    handles = open_handles(conn)
    tap.check(usable and handles == (0, 0),
              "%s: session usable, nothing held" % label,
              "usable=%s handles=%s" % (usable, handles))


def cancel_by_backend(tap, conn, other, query, reached, label):
    # ask for the pid first: the connection is busy once the query runs
    pid = backend_pid(conn)
    th, out = run_in_thread(conn, query)
    if not tap.check(wait_until(lambda: reached(fake_stats())),
                     "%s: stage reached" % label, "the fake never saw it"):
        return None
    time.sleep(0.2)                 # settle into the wait
    t0 = time.monotonic()
    with other.cursor() as cur:
        cur.execute("SELECT pg_cancel_backend(%s)", (pid,))
    th.join(30)
    latency = out.get("end", float("inf")) - t0
    tap.check(is_cancel(out.get("error")) and latency < LIMIT_SECS,
              "%s: canceled in %.3f s" % (label, latency),
              "error=%r" % out.get("error"))
    after_checks(tap, conn, label)
    return latency


def cancel_by_sigint(tap, query, reached, label):
    env = dict(os.environ, PGDATABASE=DB)
    psql = os.path.join(os.environ.get("PGBIN", "/usr/bin"), "psql")
    proc = subprocess.Popen([psql, "-X", "-c", query], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if not tap.check(wait_until(lambda: reached(fake_stats())),
                     "%s: stage reached" % label, "the fake never saw it"):
        proc.kill()
        return None
    time.sleep(0.2)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does to psql
    _, err = proc.communicate(timeout=30)
    latency = time.monotonic() - t0
    tap.check(b"canceling statement due to user request" in err
              and latency < LIMIT_SECS,
              "%s: canceled in %.3f s" % (label, latency),
              "psql said %r" % err[-300:])
    return latency


def cancel_by_timeout(tap, conn, query, reached, label, timeout_ms):
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = %d" % timeout_ms)
    t0 = time.monotonic()
    th, out = run_in_thread(conn, query)
    th.join(60)
    with conn.cursor() as cur:
        cur.execute("RESET statement_timeout")
    latency = out.get("end", float("inf")) - t0 - timeout_ms / 1000.0
    tap.check(reached(fake_stats()), "%s: stage reached" % label,
              "the fake never saw it")
    tap.check(is_cancel(out.get("error")) and latency < LIMIT_SECS,
              "%s: stopped %.3f s after the timeout" % (label, latency),
              "error=%r" % out.get("error"))
    after_checks(tap, conn, label)
    return latency


def stage_tests(tap):
    conn = fresh_database(DB, "busy_timeout '1 hour', wait_for_service '1 day'")
    other = connect(DB)
    results = {}

    # the converting stage wants the fake's files ready: build them once
    fake_reset()
    stage_convert()
    with conn.cursor() as cur:
        cur.execute(BIG)
        tap.note("converting stage: %d objects" % cur.fetchone()[0])

    for name, setup, query, reached in STAGES:
        timeout_ms = 1200 if name == "converting" else 2000
        fake_reset()
        setup()
        a = cancel_by_backend(tap, conn, other, query, reached,
                              "pg_cancel_backend while " + name)
        fake_reset()
        setup()
        b = cancel_by_sigint(tap, query, reached, "Ctrl-C in psql while " + name)
        fake_reset()
        setup()
        c = cancel_by_timeout(tap, conn, query, reached,
                              "statement_timeout while " + name, timeout_ms)
        results[name] = (a, b, c)

    tap.note("cancel latency (s):      pg_cancel_backend  Ctrl-C  statement_timeout")
    for name, (a, b, c) in results.items():
        fmt = lambda v: "   -  " if v is None else "%6.3f" % v
        tap.note("  %-26s %s        %s  %s" % (name, fmt(a), fmt(b), fmt(c)))
    conn.close()
    other.close()


def process_figures(conn, pid):
    fds = len(os.listdir("/proc/%d/fd" % pid))
    with open("/proc/%d/status" % pid) as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    with conn.cursor() as cur:
        cur.execute("SELECT sum(total_bytes) FROM pg_backend_memory_contexts")
        ctx = int(cur.fetchone()[0])
    return fds, rss_kb, ctx


def repeated_cancels(tap, rounds=200):
    """Cancel one session at random moments; compare before and after."""
    conn = connect(DB)
    other = connect(DB)
    pid = backend_pid(conn)
    rnd = random.Random(42)
    fake_reset()
    # every stage in reach: a short wait for the export, then slow files
    fake_config(processing_ms=300, objects_per_file=200)
    fake_fault(kind="slow", target="file", rate=400000, count=-1)

    def one_round(i):
        if i % 2 == 0:
            with conn.cursor() as cur:
                cur.execute("SET statement_timeout = %d" % rnd.randint(5, 1500))
            th, out = run_in_thread(conn, WEEK)
            th.join(60)
            with conn.cursor() as cur:
                cur.execute("RESET statement_timeout")
        else:
            th, out = run_in_thread(conn, WEEK)
            time.sleep(rnd.uniform(0.0, 1.5))
            with other.cursor() as cur:
                cur.execute("SELECT pg_cancel_backend(%s)", (pid,))
            th.join(60)
        return "canceled" if is_cancel(out.get("error")) else \
            ("finished" if "rows" in out else "other: %r" % out.get("error"))

    for i in range(10):             # warm the caches first
        one_round(i)
    before = process_figures(conn, pid)
    outcomes = {}
    for i in range(rounds):
        o = one_round(i)
        outcomes[o] = outcomes.get(o, 0) + 1
    after = process_figures(conn, pid)
    handles = open_handles(conn)

    tap.note("%d cancels: outcomes %s" % (rounds, outcomes))
    tap.note("backend fds %d -> %d, RSS %d kB -> %d kB, memory contexts %d -> %d bytes"
             % (before[0], after[0], before[1], after[1], before[2], after[2]))
    tap.check(outcomes.get("canceled", 0) >= rounds * 0.8 and
              not any(k.startswith("other") for k in outcomes),
              "%d cancels: every round canceled or finished cleanly" % rounds,
              repr(outcomes))
    tap.check(after[0] == before[0], "%d cancels: no file descriptor left open" % rounds,
              "%d -> %d" % (before[0], after[0]))
    tap.check(after[2] - before[2] < 256 * 1024,
              "%d cancels: backend memory contexts do not grow" % rounds,
              "%d -> %d bytes" % (before[2], after[2]))
    tap.check(after[1] - before[1] < 4096,
              "%d cancels: backend RSS does not grow" % rounds,
              "%d -> %d kB" % (before[1], after[1]))
    tap.check(handles == (0, 0), "%d cancels: no curl handle or buffer held" % rounds,
              repr(handles))
    conn.close()
    other.close()


def main():
    tap = Tap()
    stage_tests(tap)
    repeated_cancels(tap)
    fake_reset()
    tap.finish()


if __name__ == "__main__":
    main()
