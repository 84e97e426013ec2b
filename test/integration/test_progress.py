"""Progress: with clover_export_fdw.progress on, a scan says where it is:
a NOTICE as each window is done and one that sums the scan up, however
fast; while it waits, a NOTICE at most every few seconds.  Every NOTICE
gives the rows returned so far.  With it off (the default) it says nothing.

The first cases read the NOTICEs of fast scans (every window, the sum, a
LIMIT); the others make the fake slow in one way (a long export, a busy
service, slow file downloads) and check the NOTICEs psql would show.
"""

import re
import threading
import time

from common import (Tap, connect, fake_config, fake_fault, fake_reset, fake_stats,
                    fresh_database)

DB = "itest_progress"
TWO_WINDOWS = ("SELECT count(*) FROM clover_orders "
               "WHERE created_time >= '2024-01-01' AND created_time < '2024-02-10'")
WEEK = ("SELECT count(*) FROM clover_orders "
        "WHERE created_time >= '2024-01-01' AND created_time < '2024-01-08'")
QUARTER = ("SELECT count(*) FROM clover_orders "
           "WHERE created_time >= '2024-01-01' AND created_time < '2024-04-01'")
INTERVAL = 3.0                  # PROGRESS_INTERVAL_SECS in export_progress.c

# the NOTICE of a window whose rows have all been returned
WINDOW_DONE = re.compile(
    r"^NOTICE:  clover_export_fdw: window (\d+) of (\d+) \(\d{4}-\d\d-\d\d [0-9:]+ UTC "
    r"to \d{4}-\d\d-\d\d [0-9:]+ UTC\): done \(export ([0-9A-Z]{13}), files: (\d+)\); "
    r"rows so far: (\d+)$")
# the last NOTICE of a scan
SUMMARY = re.compile(
    r"^NOTICE:  clover_export_fdw: scan of (\w+) (done|stopped): rows: (\d+), "
    r"windows: (\d+) of (\d+), exports created: (\d+), exports reused: (\d+), "
    r"files: (\d+), time: \d+\.\d{3} s$")
# the NOTICEs every few seconds while a scan waits
PERIODIC = re.compile(r"clover_export_fdw: window \d+ of \d+ \(.*\): "
                      r"(waiting|export) .*; rows so far: \d+$")


def run(conn, sql, progress=True):
    """Run sql; return (notices, seconds)."""
    del conn.notices[:]
    with conn.cursor() as cur:
        cur.execute("SET clover_export_fdw.progress = %s" % ("on" if progress else "off"))
        t0 = time.monotonic()
        cur.execute(sql)
        cur.fetchall()
        secs = time.monotonic() - t0
    return [n.strip() for n in conn.notices], secs


def paced(tap, notices, secs, label):
    """No more periodic NOTICEs than one per interval allows."""
    periodic = [n for n in notices if PERIODIC.search(n)]
    tap.check(len(periodic) <= secs / INTERVAL + 1,
              "%s: at most one waiting NOTICE every %g s" % (label, INTERVAL),
              "%d notices in %.1f s" % (len(periodic), secs))


def count_of(conn, sql):
    with conn.cursor() as cur:
        cur.execute("SET clover_export_fdw.progress = off")
        cur.execute(sql)
        return cur.fetchone()[0]


def fast_scans(tap, conn):
    """Every window says it is done, in order, and the last NOTICE sums up."""
    fake_reset()
    expected = count_of(conn, QUARTER)
    fake_reset()
    notices, secs = run(conn, QUARTER.replace("count(*)", "id"))
    stats = fake_stats()
    tap.note("quarter: %.1f s, notices %r" % (secs, notices))
    done = [WINDOW_DONE.match(n) for n in notices]
    windows = [(int(m.group(1)), int(m.group(2))) for m in done if m]
    tap.check(windows == [(1, 4), (2, 4), (3, 4), (4, 4)],
              "fast scan: one NOTICE per window, in order, even when each takes "
              "less than %g s" % INTERVAL, repr(notices))
    rows = [int(m.group(5)) for m in done if m]
    tap.check(len(rows) == 4 and all(a < b for a, b in zip(rows, rows[1:])),
              "fast scan: the rows so far grow window by window", repr(rows))
    tap.check(rows[-1:] == [expected],
              "fast scan: after the last window, the rows so far are count(*)",
              "%r, count(*) = %d" % (rows, expected))
    last = SUMMARY.match(notices[-1]) if notices else None
    tap.check(last is not None and last.group(1, 2) == ("clover_orders", "done"),
              "fast scan: the last NOTICE sums the scan up", repr(notices[-1:]))
    if last:
        tap.check(int(last.group(3)) == expected,
                  "fast scan: the sum's rows are the query's count(*) (%d)" % expected,
                  notices[-1])
        tap.check(last.group(4, 5) == ("4", "4"),
                  "fast scan: the sum counts the windows", notices[-1])
        tap.check(int(last.group(6)) == stats["exports_created"] == 4 and
                  last.group(7) == "0",
                  "fast scan: the sum's exports are those the fake created",
                  "%s; fake: %r" % (notices[-1], stats["exports_created"]))
        tap.check(int(last.group(8)) == sum(int(m.group(4)) for m in done if m) > 0,
                  "fast scan: the sum's files are the windows' files", repr(notices))
    tap.check(sum(1 for n in notices if SUMMARY.match(n)) == 1,
              "fast scan: exactly one sum", repr(notices))
    tap.check(not any("test-token" in n or "http" in n for n in notices),
              "fast scan: no token and no URL in any NOTICE", repr(notices))

    # a LIMIT ends the scan early: the sum says "stopped", with the rows
    # the LIMIT let through, and no window is done
    fake_reset()
    notices, secs = run(conn, QUARTER.replace("count(*)", "id") + " LIMIT 10")
    tap.note("limit: notices %r" % notices)
    last = SUMMARY.match(notices[-1]) if notices else None
    tap.check(last is not None and last.group(2, 3, 4, 5) == ("stopped", "10", "0", "4"),
              "LIMIT 10: the sum says the scan stopped after 10 rows, 0 of 4 windows",
              repr(notices))
    tap.check(not any(WINDOW_DONE.match(n) for n in notices),
              "LIMIT 10: no window is done", repr(notices))

    # an empty range: no export, no run, nothing to say
    notices, secs = run(conn, QUARTER + " AND created_time < '2023-01-01'")
    tap.check(notices == [], "empty range: no NOTICE", repr(notices))


def main():
    tap = Tap()
    conn = fresh_database(DB, "busy_timeout '1 min'")

    fast_scans(tap, conn)

    # a long export: which window, the status and percentComplete
    fake_reset()
    fake_config(processing_ms=4000, queue_ms=0)
    notices, secs = run(conn, TWO_WINDOWS)
    tap.note("long export: %.1f s, %d notices: %r" % (secs, len(notices), notices[:3]))
    pat = re.compile(r"clover_export_fdw: window (\d) of 2 \(2024-.* UTC\): "
                     r"export [0-9A-Z]{13} (PENDING|IN_PROGRESS), (\d+)% complete; "
                     r"rows so far: \d+$")
    done = re.compile(r"clover_export_fdw: window (\d) of 2 \(2024-.* UTC\): "
                      r"export [0-9A-Z]{13} DONE, \d+ of \d+ files downloaded; "
                      r"rows so far: \d+$")
    seen = [pat.search(n) for n in notices]
    tap.check(sum(1 for m in seen if m) >= 2 and
              all(pat.search(n) or done.search(n) or WINDOW_DONE.match(n) or
                  SUMMARY.match(n) for n in notices),
              "long export: NOTICEs name the window, the export, its status and percent",
              repr(notices))
    tap.check({m.group(1) for m in seen if m} == {"1", "2"},
              "long export: both windows are reported (1 of 2, 2 of 2)", repr(notices))
    tap.check(any(m and int(m.group(3)) > 0 for m in seen),
              "long export: percentComplete rises above 0", repr(notices))
    paced(tap, notices, secs, "long export")

    # off by default: the same scan says nothing
    fake_reset()
    fake_config(processing_ms=4000, queue_ms=0)
    notices, secs = run(conn, TWO_WINDOWS, progress=False)
    tap.check(notices == [], "progress off: no NOTICE in %.1f s" % secs, repr(notices))

    # a busy service: the wait says so
    fake_reset()
    fake_config(max_concurrent_exports=0)
    timer = threading.Timer(7.0, lambda: fake_config(max_concurrent_exports=3))
    timer.start()
    notices, secs = run(conn, WEEK)
    timer.join()
    tap.note("busy: %.1f s, notices %r" % (secs, notices))
    tap.check(any(re.search(r"window 1 of 1 .*: waiting .* for Clover \(service busy\)", n)
                  for n in notices),
              "busy: a NOTICE says the scan waits for a busy service", repr(notices))
    paced(tap, notices, secs, "busy")

    # slow downloads: files downloaded so far
    fake_reset()
    fake_config(objects_per_file=100)
    fake_fault(kind="slow", target="file", rate=40000, count=-1)
    notices, secs = run(conn, WEEK)
    tap.note("slow files: %.1f s, notices %r" % (secs, notices))
    files = [re.search(r"export [0-9A-Z]{13} DONE, (\d+) of (\d+) files downloaded", n)
             for n in notices]
    tap.check(any(files) and all(int(m.group(1)) <= int(m.group(2)) for m in files if m),
              "slow files: NOTICEs count the files downloaded", repr(notices))
    counts = [int(m.group(1)) for m in files if m]
    tap.check(counts == sorted(counts), "slow files: the count only grows", repr(counts))
    paced(tap, notices, secs, "slow files")

    fake_reset()
    conn.close()
    admin = connect("postgres")
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE %s WITH (FORCE)" % DB)
    admin.close()
    tap.finish()


if __name__ == "__main__":
    main()
