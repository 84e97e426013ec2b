"""Progress: with clover_export_fdw.progress on, a long scan says where it
is, as NOTICEs at most every few seconds; with it off (the default) it
says nothing.

Each case makes the fake slow in one way (a long export, a busy service,
slow file downloads) and checks the NOTICEs psql would show.
"""

import re
import threading
import time

from common import Tap, connect, fake_config, fake_fault, fake_reset, fresh_database

DB = "itest_progress"
TWO_WINDOWS = ("SELECT count(*) FROM clover_orders "
               "WHERE created_time >= '2024-01-01' AND created_time < '2024-02-10'")
WEEK = ("SELECT count(*) FROM clover_orders "
        "WHERE created_time >= '2024-01-01' AND created_time < '2024-01-08'")
INTERVAL = 3.0                  # PROGRESS_INTERVAL_SECS in export_client.c


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
    """No more NOTICEs than one per interval allows."""
    tap.check(len(notices) <= secs / INTERVAL + 1,
              "%s: at most one NOTICE every %g s" % (label, INTERVAL),
              "%d notices in %.1f s" % (len(notices), secs))


def main():
    tap = Tap()
    conn = fresh_database(DB, "busy_timeout '1 min'")

    # a long export: which window, the status and percentComplete
    fake_reset()
    fake_config(processing_ms=4000, queue_ms=0)
    notices, secs = run(conn, TWO_WINDOWS)
    tap.note("long export: %.1f s, %d notices: %r" % (secs, len(notices), notices[:3]))
    pat = re.compile(r"clover_export_fdw: window (\d) of 2 \(2024-.* UTC\): "
                     r"export [0-9A-Z]{13} (PENDING|IN_PROGRESS), (\d+)% complete")
    done = re.compile(r"clover_export_fdw: window (\d) of 2 \(2024-.* UTC\): "
                      r"export [0-9A-Z]{13} DONE, \d+ of \d+ files downloaded")
    seen = [pat.search(n) for n in notices]
    tap.check(sum(1 for m in seen if m) >= 2 and
              all(pat.search(n) or done.search(n) for n in notices),
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
