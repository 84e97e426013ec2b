"""Service hours: with wait_for_service a query that meets Clover closed
waits for the opening (saying so in a NOTICE) and then returns the complete
answer; without it the query fails at once.

The fake and the server are given hours that open at the next minute
boundary (real time), so the wait is real and lasts under a minute.
"""

import datetime
import time

from common import Tap, fake_config, fake_reset, fake_stats, fresh_database, run_timed

DB = "itest_hours"
WEEK = ("SELECT count(*) FROM clover_orders "
        "WHERE created_time >= '2024-01-01' AND created_time < '2024-01-08'")


def opening_after(seconds):
    """Hours (every day, five minutes long) opening at the first minute
    boundary at least `seconds` from now."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start = (now + datetime.timedelta(seconds=seconds + 59.999)).replace(
        second=0, microsecond=0)
    end = start + datetime.timedelta(minutes=5)
    end_text = "24:00" if end.date() != start.date() else end.strftime("%H:%M")
    return start, "MON-SUN %s-%s" % (start.strftime("%H:%M"), end_text)


def set_hours(conn, hours):
    """The same hours at the fake and in the server's option."""
    fake_config(region="us", hours=hours)
    with conn.cursor() as cur:
        cur.execute("SELECT srvoptions::text LIKE '%%service_hours=%%' "
                    "FROM pg_foreign_server WHERE srvname = 'clover'")
        verb = "SET" if cur.fetchone()[0] else "ADD"
        cur.execute("ALTER SERVER clover OPTIONS (%s service_hours %%s)" % verb,
                    (hours,))


def main():
    tap = Tap()
    conn = fresh_database(DB)
    # the failures are checked against an opening two hours away, so that
    # however slowly this machine runs them, the service is still closed
    fake_reset()
    opening, hours = opening_after(2 * 3600)
    set_hours(conn, hours)

    # without wait_for_service: an error at once, naming the opening
    posts_before = fake_stats()["posts"]
    err, _ = run_timed(conn, WEEK)
    tap.check(err is not None and "closed" in err.diag.message_primary
              and opening.strftime("%H:%M:00 UTC") in (err.diag.message_hint or ""),
              "closed: fails with the next opening in the hint",
              repr(err and (err.diag.message_primary, err.diag.message_hint)))
    tap.check(fake_stats()["posts"] == posts_before + 1,
              "closed: the failure is immediate (one POST, no retry)")

    # a wait_for_service shorter than the time to the opening: an error at
    # once that says so, not the same error as without it
    with conn.cursor() as cur:
        cur.execute("ALTER SERVER clover OPTIONS (ADD wait_for_service '3s')")
    posts_before = fake_stats()["posts"]
    err, _ = run_timed(conn, WEEK)
    detail = (err and err.diag.message_detail) or ""
    hint = (err and err.diag.message_hint) or ""
    tap.note("wait_for_service 3s: %s" % (err and " | ".join(
        (err.diag.message_primary, detail, hint))))
    tap.check(err is not None and "closed" in err.diag.message_primary
              and "wait_for_service (3 s) is shorter than the time until the next opening at "
              + opening.strftime("%Y-%m-%d %H:%M:00 UTC") in detail,
              "wait_for_service 3s: the detail says the wait is shorter than the time "
              "to the opening, and names it", detail)
    tap.check("Raise wait_for_service" in hint and "service hours" in hint
              and hours in hint,
              "wait_for_service 3s: the hint says to raise it or run in the hours", hint)
    tap.check(fake_stats()["posts"] == posts_before + 1,
              "wait_for_service 3s: one POST, no waiting retries")

    # with it long enough: wait for an opening 10 to 70 s away, then the
    # complete answer
    fake_reset()
    opening, hours = opening_after(10)
    set_hours(conn, hours)
    with conn.cursor() as cur:
        cur.execute("ALTER SERVER clover OPTIONS (SET wait_for_service '3 min')")
    del conn.notices[:]
    t0 = time.monotonic()
    with conn.cursor() as cur:
        cur.execute(WEEK)
        count = cur.fetchone()[0]
    waited = time.monotonic() - t0
    notices = " ".join(conn.notices)
    tap.note("waited %.1f s for the opening at %s" % (waited, opening.strftime("%H:%M:%S")))
    tap.check("closed; waiting until" in notices,
              "wait_for_service: a NOTICE says it waits", notices[-300:])
    stats = fake_stats()
    tap.check(stats["closed_rejections"] >= 1 and stats["exports_created"] == 1,
              "wait_for_service: asked once while closed, exported after opening",
              repr({k: stats[k] for k in ("closed_rejections", "exports_created", "posts")}))
    tap.check(datetime.datetime.now(datetime.timezone.utc) >= opening,
              "wait_for_service: the export came after the opening")
    fake_reset()
    with conn.cursor() as cur:
        cur.execute(WEEK)
        tap.check(cur.fetchone()[0] == count and count > 0,
                  "wait_for_service: the answer is complete (%d orders)" % count)
    conn.close()
    tap.finish()


if __name__ == "__main__":
    main()
