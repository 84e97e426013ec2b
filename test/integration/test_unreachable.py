"""A Clover that cannot be reached: nothing listening at base_url, or a host
name that does not resolve.

Such a request has certainly not reached Clover, so no export can have been
created; and until the API host has answered once, base_url, region or the
network is wrong far more likely than Clover is briefly away.  The query
retries only briefly, then fails with a message whose detail and hint agree
that nothing reached Clover.

Pass or fail is decided by the number of attempts (the POSTs the backend
started, counted in the server log, and the count the detail states) and
the message; the elapsed time is only printed.
"""

import re

from common import (Tap, backend_pid, fake_reset, fake_stats, free_port,
                    fresh_database, log_position, log_since, run_timed)

DB = "itest_unreachable"
WEEK = ("SELECT count(*) FROM clover_orders "
        "WHERE created_time >= '2024-01-01' AND created_time < '2024-01-08'")
# the DEBUG1 line exports.c writes each time it starts the POST of a window
ATTEMPT_LINE = "clover_export_fdw: creating ORDERS export for window 1 of 1"
# a refused connection or unknown host is retried this often at most
MAX_ATTEMPTS = 3


def attempts_in_log(start, pid):
    """POSTs backend pid started since byte start of the server log."""
    return sum(1 for line in log_since(start).splitlines()
               if ("[%d]" % pid) in line and ATTEMPT_LINE in line)


def unreachable(tap, conn, what, base_url):
    with conn.cursor() as cur:
        cur.execute("ALTER SERVER clover OPTIONS (SET base_url %s)", (base_url,))
    fake_reset()
    log_start = log_position()
    err, secs = run_timed(conn, WEEK)
    logged = attempts_in_log(log_start, backend_pid(conn))
    if err is None:
        tap.check(False, "%s: the query fails" % what, "it returned rows")
        return
    d = err.diag
    primary, detail, hint = d.message_primary or "", d.message_detail or "", d.message_hint or ""
    m = re.search(r"after (\d+) attempts", detail)
    stated = int(m.group(1)) if m else 1
    tap.note("%s: failed after %.2f s, %d attempts (%d in the server log): %s | %s | %s"
             % (what, secs, stated, logged, primary, detail, hint))
    tap.check(err.pgcode == "HV00N" and primary.startswith("could not connect to Clover"),
              "%s: the error says it could not connect (HV00N)" % what,
              "%s %s" % (err.pgcode, primary))
    tap.check("never reached Clover" in detail,
              "%s: the detail says the request never reached Clover" % what, detail)
    tap.check("no export was created" in hint and "base_url" in hint
              and "region" in hint and "may have reached" not in hint,
              "%s: the hint agrees, and points at base_url, region and the network" % what,
              hint)
    tap.check(2 <= logged <= MAX_ATTEMPTS,
              "%s: retried briefly (2 to %d attempts, not max_retries + 1)"
              % (what, MAX_ATTEMPTS), "%d attempts in the server log" % logged)
    tap.check(stated == logged,
              "%s: the detail states the number of attempts" % what,
              "detail says %d, the log %d" % (stated, logged))
    tap.check(fake_stats()["posts"] == 0, "%s: nothing reached the fake" % what)


def main():
    tap = Tap()
    # max_retries is the default (5): the brief retries do not depend on it
    conn = fresh_database(DB)
    with conn.cursor() as cur:
        cur.execute("SET log_min_messages = debug1")
    unreachable(tap, conn, "nothing listening",
                "http://127.0.0.1:%d" % free_port())
    unreachable(tap, conn, "unknown host", "http://clover-api.invalid")
    conn.close()
    fake_reset()
    tap.finish()


if __name__ == "__main__":
    main()
