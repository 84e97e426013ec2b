"""Waiting for Clover: busy retries, "busy" against "closed", 429s from the
file host.

- Busy (503 "too many exports"): the query retries until busy_timeout is
  really spent, never failing before it, and its error says how long it
  waited; each export has its own backoff, so a later window's first busy
  answers wait about a second again, not the scan's accumulated backoff.
- A 503 whose words say busy is busy even when the configured calendar says
  closed; words that say closed are closed; words that say neither leave it
  to the calendar.
- A 429 from the file host is retried after its Retry-After, within
  max_retries; a Retry-After beyond busy_timeout fails at once.

Timings are asserted only as generous lower bounds (the query did not give
up before the time it was given); pass or fail is decided by counts and
messages.
"""

import datetime
import re

from common import Tap, fake_config, fake_fault, fake_reset, fake_stats, fresh_database, run_timed

DB = "itest_waits"
WEEK = ("SELECT count(*) FROM clover_orders "
        "WHERE created_time >= '2024-01-01' AND created_time < '2024-01-08'")
TWO_WINDOWS = ("SELECT count(*) FROM clover_orders "
               "WHERE created_time >= '2024-01-01' AND created_time < '2024-02-15'")
BUSY = {"message": "Too many concurrent exports, please try again later"}
CLOSED = {"message": "Export service is only available during these hours (UTC): "
                     "MON-SUN 10:00-15:00"}
NEITHER = {"message": "Service Unavailable"}
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def server_option(conn, name, value):
    with conn.cursor() as cur:
        cur.execute("ALTER SERVER clover OPTIONS (%s %s %%s)"
                    % ("SET" if option_set(conn, name) else "ADD", name), (value,))


def option_set(conn, name):
    with conn.cursor() as cur:
        cur.execute("SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'clover'")
        return any(o.startswith(name + "=") for o in cur.fetchone()[0] or [])


def describe(err):
    if err is None:
        return "no error"
    return "%s | %s | %s" % (err.diag.message_primary, err.diag.message_detail,
                             err.diag.message_hint)


def busy(tap, conn):
    # busy all along: retried until busy_timeout is spent, then an error that
    # says how long it really waited
    fake_reset()
    fake_config(max_concurrent_exports=0)
    server_option(conn, "busy_timeout", "3s")
    err, secs = run_timed(conn, WEEK)
    tap.note("busy for good: failed after %.1f s, %d POSTs" % (secs, fake_stats()["posts"]))
    tap.check(err is not None and err.diag.message_primary == "Clover is busy with other exports",
              "busy for good: the query fails as busy", describe(err))
    tap.check(secs >= 3.0, "busy for good: it did not give up before busy_timeout (3 s)",
              "%.2f s" % secs)
    m = re.search(r"HTTP 503 (\d+) times over (\d+) s", (err and err.diag.message_detail) or "")
    tap.check(m is not None and int(m.group(2)) >= 3 and int(m.group(1)) == fake_stats()["posts"],
              "busy for good: the detail states the answers and the time really waited",
              describe(err))
    tap.check("(now 3 s)" in ((err and err.diag.message_hint) or ""),
              "busy for good: the hint names busy_timeout", describe(err))

    # each export has its own backoff: two busy answers for each window fit
    # in 5 s each (a scan-wide counter made the second window wait 2-4 s,
    # then give up: 4-8 s more would cross busy_timeout)
    fake_reset()
    server_option(conn, "busy_timeout", "5s")
    fake_fault(kind="status", target="post", status=503, body=BUSY, count=2)
    fake_fault(kind="status", target="post", status=503, body=BUSY, skip=1, count=2)
    err, secs = run_timed(conn, TWO_WINDOWS)
    stats = fake_stats()
    tap.note("two windows, each busy twice: %.1f s" % secs)
    tap.check(err is None and stats["exports_created"] == 2 and stats["posts"] == 6,
              "busy twice per window: the backoff restarts for each export",
              "%s; posts %d, exports %d" % (describe(err), stats["posts"],
                                            stats["exports_created"]))


def closed_hours():
    """Service hours that are closed now: one hour on another weekday."""
    today = datetime.datetime.now(datetime.timezone.utc)
    other = (today + datetime.timedelta(days=3)).isoweekday() % 7
    return "%s 10:00-11:00" % DAYS[other]


def words_decide(tap, conn):
    server_option(conn, "busy_timeout", "30s")
    # calendar closed, Clover says busy: busy, retried, the query works
    server_option(conn, "service_hours", closed_hours())
    fake_reset()
    fake_fault(kind="status", target="post", status=503, body=BUSY, count=1)
    err, _ = run_timed(conn, WEEK)
    tap.check(err is None and fake_stats()["posts"] == 2,
              "calendar closed, Clover says too many exports: busy, retried", describe(err))
    # calendar closed, Clover's words say neither: closed
    fake_reset()
    fake_fault(kind="status", target="post", status=503, body=NEITHER, count=1)
    err, _ = run_timed(conn, WEEK)
    tap.check(err is not None and "closed" in err.diag.message_primary,
              "calendar closed, Clover's words say neither: closed", describe(err))
    # calendar open, Clover says closed: closed
    server_option(conn, "service_hours", "always")
    fake_reset()
    fake_fault(kind="status", target="post", status=503, body=CLOSED, count=1)
    err, _ = run_timed(conn, WEEK)
    tap.check(err is not None and "closed" in err.diag.message_primary
              and "say it is open now" in (err.diag.message_hint or ""),
              "calendar open, Clover names its hours: closed", describe(err))
    # calendar open, words say neither: busy, retried
    fake_reset()
    fake_fault(kind="status", target="post", status=503, body=NEITHER, count=1)
    err, _ = run_timed(conn, WEEK)
    tap.check(err is None and fake_stats()["posts"] == 2,
              "calendar open, Clover's words say neither: busy, retried", describe(err))
    # the case-insensitive search: "HOURS" in capitals still says closed
    fake_reset()
    fake_fault(kind="status", target="post", status=503, count=1,
               body={"message": "EXPORTS ONLY DURING SERVICE HOURS"})
    err, _ = run_timed(conn, WEEK)
    tap.check(err is not None and "closed" in err.diag.message_primary,
              "Clover's words are matched ignoring case", describe(err))


def file_429(tap, conn):
    server_option(conn, "max_retries", "3")
    # one download at a time: the same file meets both 429s, one after the
    # other (a query that wants every row downloads files side by side)
    server_option(conn, "max_parallel_downloads", "1")
    fake_reset()
    fake_fault(kind="status", target="file", status=429, retry_after=1, count=2)
    err, secs = run_timed(conn, WEEK)
    stats = fake_stats()
    tap.check(err is None and stats["faults_fired"] == 2,
              "a 429 from the file host is retried", describe(err))
    tap.check(secs >= 2.0, "the file host's Retry-After (1 s, twice) was waited out",
              "%.2f s" % secs)
    # more 429s than max_retries: the query fails naming the file
    fake_reset()
    fake_fault(kind="status", target="file", status=429, retry_after=0, count=-1)
    err, _ = run_timed(conn, WEEK)
    tap.check(err is not None and "HTTP 429" in (err.diag.message_detail or "")
              and "after 4 attempts" in (err.diag.message_detail or ""),
              "429s from the file host count against max_retries", describe(err))
    # a Retry-After longer than busy_timeout: no point waiting
    server_option(conn, "busy_timeout", "5s")
    fake_reset()
    fake_fault(kind="status", target="file", status=429, retry_after=100, count=-1)
    server_option(conn, "max_parallel_downloads", "1")
    err, secs = run_timed(conn, WEEK)
    fired = fake_stats()["faults_fired"]
    tap.check(err is not None and fired == 1
              and "HTTP 429" in (err.diag.message_detail or ""),
              "a file Retry-After beyond busy_timeout fails at once (no retry)",
              "%d answers 429, %.1f s; %s" % (fired, secs, describe(err)))


def main():
    tap = Tap()
    conn = fresh_database(DB)
    busy(tap, conn)
    words_decide(tap, conn)
    file_429(tap, conn)
    fake_reset()
    conn.close()
    tap.finish()


if __name__ == "__main__":
    main()
