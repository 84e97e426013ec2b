"""The limits of a whole app, honoured by all sessions together (issue 14).

Clover limits an app (all its tokens) to 50 requests/s and 10 concurrent
requests, and "the server can only handle a few concurrent exports".  The
wrapper's options app_requests_per_second, app_max_concurrent_requests and
max_exports_per_host (with node_share) are lowered here so that the fake's
peak counters show whether they hold.  Four merchants of the suite's own,
each with a server of its own (max_concurrent_exports 2), two of them read
with test-token and two with other-token:

 1. max_exports_per_host 2: eight sessions at once (two per merchant, on
    different months) never have more than 2 exports running at the fake
    (max_running_exports), though the merchants' own slots would allow 8;
    no "busy" 503; every session's rows exact (the fake's count and sum);
 2. app_max_concurrent_requests 2 and app_requests_per_second 10, polls
    held 0.3 s by the fake: the eight sessions never have more than 2
    requests at the fake at once, all tokens together
    (max_concurrent_requests_per_app), nor more than 10 in any second
    (max_requests_per_second_per_app); rows exact;
 3. node_share 0.5 with max_exports_per_host 4: this cluster's share is 2,
    and eight sessions never have more than 2 exports running;
 4. max_exports_per_host 1: a session on another merchant, waiting while a
    slow export holds the host's only slot, says so in its progress NOTICE
    ("all 1 export slots of <host> are taken"); with a short busy_timeout
    it fails naming the API host and the wrapper's option.

Pass or fail is decided by the fake's counters, rows against the fake's
expected data, and messages; timings are notes only.
"""

import json
import threading
import time
import urllib.parse
import urllib.request

import psycopg2

from common import (ADMIN, API, connect, describe, fake_clear_faults,
                    fake_config, fake_fault, fake_reset, fake_stats,
                    fresh_database, Tap)

DB = "itest_app_limits"
# merchants of the suite's own: no other suite's export serves their windows
MERCHANTS = ("APPLIMIT0001A", "APPLIMIT0002B", "APPLIMIT0003C", "APPLIMIT0004D")
TOKENS = ("test-token", "test-token", "other-token", "other-token")
# exports take 0.2 s queued + 1 s + objects / 10 000 per s
TIMING = {"queue_ms": 200, "processing_ms": 1000, "processing_objects_per_s": 10000,
          "max_concurrent_exports": 50}
WRAPPER_OPTIONS = ("app_requests_per_second", "app_max_concurrent_requests",
                   "max_exports_per_host", "node_share")


def expect(merchant, start, end):
    """The fake's (count, sum) of orders created in [start, end) (dates)."""
    q = urllib.parse.urlencode({"type": "ORDERS", "merchant": merchant,
                                "start": start + "T00:00:00Z", "end": end + "T00:00:00Z"})
    with urllib.request.urlopen(ADMIN + "/expect?" + q, timeout=60) as resp:
        e = json.loads(resp.read())
    return e["count"], e["sum"]


def orders_sql(schema, start, end):
    return ("SELECT count(*), coalesce(sum(total), 0) FROM %s.clover_orders "
            "WHERE created_time >= '%s 00:00+00' AND created_time < '%s 00:00+00'"
            % (schema, start, end))



def setup(conn):
    """A server, user mapping and schema of tables per merchant."""
    with conn.cursor() as cur:
        for i, (m, token) in enumerate(zip(MERCHANTS, TOKENS)):
            s = "m%d" % (i + 1)
            cur.execute("CREATE SERVER %s FOREIGN DATA WRAPPER clover_export_fdw "
                        "OPTIONS (region 'sandbox', merchant_id %%s, base_url %%s, "
                        "max_concurrent_exports '2')" % s, (m, API))
            cur.execute("SET log_statement = 'none'")
            cur.execute("CREATE USER MAPPING FOR CURRENT_USER SERVER %s "
                        "OPTIONS (access_token %%s)" % s, (token,))
            cur.execute("RESET log_statement")
            cur.execute("CREATE SCHEMA %s" % s)
            cur.execute("IMPORT FOREIGN SCHEMA clover LIMIT TO (clover_orders) "
                        "FROM SERVER %s INTO %s" % (s, s))


def set_wrapper(tap, conn, label, **options):
    """Set the wrapper's app options to these (dropping the others); a
    refusal is a failed check, and the scans still run."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT fdwoptions FROM pg_foreign_data_wrapper "
                        "WHERE fdwname = 'clover_export_fdw'")
            present = {o.split("=", 1)[0] for o in cur.fetchone()[0] or []}
            changes = []
            for name in WRAPPER_OPTIONS:
                if name in options:
                    changes.append("%s %s '%s'" % ("SET" if name in present else "ADD",
                                                   name, options[name]))
                elif name in present:
                    changes.append("DROP %s" % name)
            if changes:
                cur.execute("ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (%s)"
                            % ", ".join(changes))
        return True
    except psycopg2.Error as e:
        tap.check(False, "%s: the wrapper takes %s" % (label, options), describe(e))
        return False


def reset(**config):
    fake_reset()
    fields = {m: {"region": "*", "orders_per_day": 150} for m in MERCHANTS}
    fake_config(merchants=fields, **dict(TIMING, **config))


def run_sessions(conns, jobs):
    """Run each (schema, merchant, start, end) job in its own session at
    once; returns a list of (job, rows or None, error or None)."""
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def target(i, conn, job):
        schema, _, start, end = job
        barrier.wait()
        try:
            with conn.cursor() as cur:
                cur.execute(orders_sql(schema, start, end))
                results[i] = (job, cur.fetchall(), None)
        except psycopg2.Error as e:
            results[i] = (job, None, e)

    threads = [threading.Thread(target=target, args=(i, conns[i], job), daemon=True)
               for i, job in enumerate(jobs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    return results


def eight_jobs(months):
    """Two sessions per merchant, each on a month of its own."""
    jobs = []
    for i, m in enumerate(MERCHANTS):
        for start, end in months:
            jobs.append(("m%d" % (i + 1), m, start, end))
    return jobs


def check_exact(tap, label, results):
    bad = []
    for job, rows, err in results:
        schema, merchant, start, end = job
        want = expect(merchant, start, end)
        got = tuple(int(v) for v in rows[0]) if rows else describe(err)
        if got != want:
            bad.append("%s %s..%s: got %s, want %s" % (merchant, start, end, got, want))
    tap.check(not bad, "%s: every session's rows are exact" % label, "; ".join(bad))


def exports_per_host(tap, conns):
    label = "1 (max_exports_per_host 2)"
    reset()
    set_wrapper(tap, conns[0], label, max_exports_per_host=2)
    t0 = time.monotonic()
    results = run_sessions(conns, eight_jobs((("2024-01-01", "2024-01-25"),
                                              ("2024-02-01", "2024-02-25"))))
    s = fake_stats()
    tap.note("%s: %.1f s, %d exports, peak %d running"
             % (label, time.monotonic() - t0, s["exports_created"], s["max_running_exports"]))
    check_exact(tap, label, results)
    tap.check(s["exports_created"] >= 8, "%s: each session made its export" % label,
              "exports created: %d" % s["exports_created"])
    tap.check(s["max_running_exports"] <= 2,
              "%s: at most 2 exports running at the host at once" % label,
              "max_running_exports %d" % s["max_running_exports"])
    tap.check(s["busy_rejections"] == 0, "%s: no busy 503" % label,
              "busy_rejections %d" % s["busy_rejections"])


def app_requests(tap, conns):
    label = "2 (app_max_concurrent_requests 2, app_requests_per_second 10)"
    reset()
    set_wrapper(tap, conns[0], label, app_max_concurrent_requests=2,
                app_requests_per_second=10)
    fake_fault(kind="delay", target="poll", seconds=0.3, count=-1)
    results = run_sessions(conns, eight_jobs((("2024-03-01", "2024-03-25"),
                                              ("2024-04-01", "2024-04-25"))))
    fake_clear_faults()
    s = fake_stats()
    tap.note("%s: %d requests, peaks: %d at once, %d in 1 s (per token %d, %d)"
             % (label, s["requests_total"], s["max_concurrent_requests_per_app"],
                s["max_requests_per_second_per_app"], s["max_concurrent_requests_per_token"],
                s["max_requests_per_second_per_token"]))
    check_exact(tap, label, results)
    tap.check(s["max_concurrent_requests_per_app"] <= 2,
              "%s: at most 2 requests at the fake at once, all tokens together" % label,
              "max_concurrent_requests_per_app %d" % s["max_concurrent_requests_per_app"])
    tap.check(s["max_requests_per_second_per_app"] <= 10,
              "%s: at most 10 requests in any second, all tokens together" % label,
              "max_requests_per_second_per_app %d" % s["max_requests_per_second_per_app"])
    tap.check(s["max_concurrent_requests_per_app"] >= 1 and s["polls"] >= 8,
              "%s: the sessions polled" % label, "polls %d" % s["polls"])


def node_share(tap, conns):
    label = "3 (node_share 0.5 of max_exports_per_host 4)"
    reset()
    set_wrapper(tap, conns[0], label, max_exports_per_host=4, node_share=0.5)
    results = run_sessions(conns, eight_jobs((("2024-05-01", "2024-05-25"),
                                              ("2024-06-01", "2024-06-25"))))
    s = fake_stats()
    tap.note("%s: %d exports, peak %d running"
             % (label, s["exports_created"], s["max_running_exports"]))
    check_exact(tap, label, results)
    tap.check(s["max_running_exports"] <= 2,
              "%s: at most this cluster's 2 exports running at once" % label,
              "max_running_exports %d" % s["max_running_exports"])


def host_wait(tap, conns):
    label = "4 (max_exports_per_host 1)"
    host = API.rstrip("/")
    reset(processing_ms=8000)
    set_wrapper(tap, conns[0], label, max_exports_per_host=1)
    holder, waiter, failer = conns[0], conns[2], conns[4]
    out = {}

    def hold():
        try:
            with holder.cursor() as cur:
                cur.execute(orders_sql("m1", "2024-07-01", "2024-07-10"))
                out["rows"] = cur.fetchall()
        except psycopg2.Error as e:
            out["error"] = e

    th = threading.Thread(target=hold, daemon=True)
    th.start()
    # the holder's export is at the fake: the host's only slot is taken
    end = time.monotonic() + 30
    while fake_stats()["exports_created"] < 1 and time.monotonic() < end:
        time.sleep(0.05)

    # another merchant with a short busy_timeout: fails, naming the host
    with failer.cursor() as cur:
        cur.execute("ALTER SERVER m3 OPTIONS (ADD busy_timeout '1s')")
    err = None
    try:
        with failer.cursor() as cur:
            cur.execute(orders_sql("m3", "2024-07-01", "2024-07-10"))
            cur.fetchall()
    except psycopg2.Error as e:
        err = e
    with failer.cursor() as cur:
        cur.execute("ALTER SERVER m3 OPTIONS (DROP busy_timeout)")
    tap.check(err is not None and host in (err.diag.message_primary or "") and
              "max_exports_per_host" in (err.diag.message_detail or ""),
              "%s: a wait past busy_timeout fails naming the API host and the option"
              % label, describe(err))

    # with progress on, the waiting session says what it waits for
    del waiter.notices[:]
    with waiter.cursor() as cur:
        cur.execute("SET clover_export_fdw.progress = on")
        cur.execute(orders_sql("m2", "2024-07-01", "2024-07-10"))
        rows = cur.fetchall()
        cur.execute("RESET clover_export_fdw.progress")
    th.join(120)
    phrase = "all 1 export slots of %s are taken" % host
    tap.check(any(phrase in n for n in waiter.notices),
              "%s: the progress NOTICE says %r" % (label, phrase),
              " / ".join(n.strip() for n in waiter.notices[:3]))
    want = expect(MERCHANTS[1], "2024-07-01", "2024-07-10")
    tap.check(tuple(int(v) for v in rows[0]) == want,
              "%s: the waiting session's rows are exact" % label, "%s %s" % (rows, want))
    s = fake_stats()
    tap.check(s["max_running_exports"] <= 1, "%s: one export running at a time" % label,
              "max_running_exports %d" % s["max_running_exports"])


def main():
    tap = Tap()
    conn = fresh_database(DB)
    setup(conn)
    conns = [conn] + [connect(DB) for _ in range(7)]
    try:
        exports_per_host(tap, conns)
        app_requests(tap, conns)
        node_share(tap, conns)
        host_wait(tap, conns)
    finally:
        fake_clear_faults()
        set_wrapper(Tap(), conn, "cleanup")
        for c in conns:
            c.close()
    tap.finish()


if __name__ == "__main__":
    main()
