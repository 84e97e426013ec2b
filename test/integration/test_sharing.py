"""Exports shared, reused and rationed across the whole cluster (issue 12).

Several real sessions against the fake, whose exports take a second or
two (queue_ms, processing_ms, processing_objects_per_s):

 1. three sessions run the same 2-window query at once with the server's
    max_concurrent_exports 2: exports created = windows needed, no "busy"
    503, every session's rows exact (the fake's expected count and sum);
 2. the query again, a range inside it and a range that extends it by a
    gap: 0, 0 and 1 new exports, rows exact; EXPLAIN ANALYZE counts the
    reused exports;
 3. reuse_exports '0' on the table: the query creates its exports again;
 4. a read-only transaction (BEGIN READ ONLY, default_transaction_read_only)
    reuses, and can create and register a new export;
 5. a role whose token lacks permission for the merchant gets an error
    (401) and no row and no file from an export another user made; a role
    with a good token reuses it; a role without USAGE on the server sees no
    entry of clover_export_fdw_exports();
 6. pg_terminate_backend() of a session holding the only slot with its
    export in flight: another session's query runs to the end, with no
    "busy" 503 and no entry left in use;
 7. SIGKILL of a backend holding a slot: after the postmaster's restart a
    query works, the exports DONE before the crash are still listed and
    reused;
 8. clover_orders JOIN clover_payments: both exports run at once;
 9. pg_cancel_backend() of a session waiting for a slot and of one waiting
    for another session's export (the wait is seen in its progress NOTICE);
10. no token and no file URL in any file under the data directory (tokens
    only in the catalogs and WAL: base/, global/, pg_wal/);
11. a hot standby (pg_basebackup -R) of this cluster runs a query, exact,
    and lists its exports;
12. under check 1's load, and with six sessions exporting six windows at
    once, at most 5 concurrent API requests and 16 requests/s per token
    (Clover's limits);
13. EXPLAIN ANALYZE of a scan served by another session's running export
    shows Exports Shared, of one that waited for a slot Slot Waits and Slot
    Wait Time.

The suite uses a merchant of its own, so that no export of another suite
(the registry keeps them for reuse_exports) can serve its windows; every
section asks for months no earlier section used, since the fake's export
ids start again after each reset.  Pass or fail is decided by counts from
the fake's stats, rows against the fake's expected data, and messages;
timings are notes, or generous bounds only.
"""

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import psycopg2

from common import (ADMIN, API, backend_pid, connect, describe, fake_config,
                    fake_reset, fake_stats, free_port, fresh_database,
                    log_position, log_since, plan_nodes, set_token, Tap)

DB = "itest_sharing"
# a merchant of its own: no other suite's export can serve these windows
MERCHANT = "SHARE7EST2024"
# a token of its own, long and distinctive, to look for on disk
TOKEN = "sharing-tok-7Qk2ZvX9Lm3Pq8Rw4Ty6Ua1Sb5Nc0DdWe2Ff"
TOKENS = ("test-token", "other-token", "noperm-token", TOKEN)
# exports take 0.2 s queued + 1 s + objects / 10 000 per s: 1.3 to 1.7 s
TIMING = {"queue_ms": 200, "processing_ms": 1000, "processing_objects_per_s": 10000}
ROLES = ("sharing_noperm", "sharing_other", "sharing_nousage")
WAIT_SLOT = "waiting for an export slot"
WAIT_OTHER = "another scan's export"

signatures = set()          # every file URL's Signature value seen at the fake
file_hosts = set()          # "host:port/exports/" of the fake's file URLs


# ------------------------------------------------------------------ helpers

def expect(kind, start, end):
    """The fake's (count, sum) for createdTime in [start, end) (dates)."""
    q = urllib.parse.urlencode({"type": kind, "merchant": MERCHANT,
                                "start": start + "T00:00:00Z", "end": end + "T00:00:00Z"})
    with urllib.request.urlopen(ADMIN + "/expect?" + q, timeout=60) as resp:
        e = json.loads(resp.read())
    return e["count"], e["sum"]


def orders_sql(start, end, explain=False):
    sql = ("SELECT count(*), coalesce(sum(total), 0) FROM clover_orders "
           "WHERE created_time >= '%s 00:00+00' AND created_time < '%s 00:00+00'"
           % (start, end))
    return "EXPLAIN (ANALYZE, FORMAT JSON) " + sql if explain else sql


def query(conn, sql):
    """(rows, None) or (None, the error)."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall(), None
    except psycopg2.Error as e:
        return None, e


def exact(rows, start, end, kind="ORDERS"):
    """Whether one (count, sum) row is the fake's; and a description."""
    want = expect(kind, start, end)
    got = tuple(int(v) for v in rows[0]) if rows else None
    return got == want, "got %s, want %s" % (got, want)



def created():
    return fake_stats()["exports_created"]


def option(conn, kind, name, key, value):
    """Set (or, with value None, drop) an option of a server or table."""
    catalog = ("SELECT srvoptions FROM pg_foreign_server WHERE srvname = %s"
               if kind == "SERVER" else
               "SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = %s::regclass")
    with conn.cursor() as cur:
        cur.execute(catalog, (name,))
        present = any(o.startswith(key + "=") for o in cur.fetchone()[0] or [])
        if value is None:
            if present:
                cur.execute("ALTER %s %s OPTIONS (DROP %s)" % (kind, name, key))
        else:
            cur.execute("ALTER %s %s OPTIONS (%s %s %%s)"
                        % (kind, name, "SET" if present else "ADD", key), (value,))


def harvest():
    """Remember the Signature and file host of every DONE export's files
    (check 10 looks for them on disk); the fake forgets them on reset."""
    for ex in fake_stats()["exports"]:
        if ex["status"] != "DONE":
            continue
        url = "%s/v3/merchants/%s/exports/%s" % (API, ex["merchant"], ex["id"])
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + TOKEN})
        try:
            obj = json.loads(urllib.request.urlopen(req, timeout=30).read())
        except OSError:
            continue
        for el in obj.get("exportUrls", {}).get("elements", []):
            parts = urllib.parse.urlsplit(el["url"])
            file_hosts.add("%s/exports/" % parts.netloc)
            for name, value in urllib.parse.parse_qsl(parts.query):
                if name.endswith("Signature"):
                    signatures.add(value)


def forget(conn):
    """Empty the registry (entries of exports in flight stay); None when the
    function does not exist."""
    rows, err = query(conn, "SELECT clover_export_fdw_forget_exports()")
    return None if err else rows[0][0]


def reset(conn, **config):
    """A fresh fake (with this suite's merchant and token, slow exports and
    config) and an empty registry."""
    harvest()
    fake_reset()
    fake_config(merchants={MERCHANT: {"region": "*", "orders_per_day": 150}},
                tokens={TOKEN: ["*"]}, **dict(TIMING, **config))
    forget(conn)


def registry(conn):
    """clover_export_fdw_exports() as a list of dicts, or the error."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM clover_export_fdw_exports()")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()], None
    except psycopg2.Error as e:
        return None, e


def in_use(conn):
    """Registry entries used by a scan (scans > 0), or a text saying why
    there is no answer."""
    rows, err = registry(conn)
    if err:
        return "clover_export_fdw_exports() failed: " + describe(err)
    return [r for r in rows if (r.get("scans") or 0) > 0]


def settled(conn):
    """No registry entry in use, or no registry to ask."""
    left = in_use(conn)
    return not isinstance(left, list) or not left


def run_in_thread(conn, sql):
    """Run sql in a thread; the dict gets 'rows' or 'error', and 'end'."""
    out = {}

    def target():
        rows, err = query(conn, sql)
        out["rows" if err is None else "error"] = rows if err is None else err
        out["end"] = time.monotonic()

    th = threading.Thread(target=target, daemon=True)
    th.start()
    return th, out


def wait_until(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def scans(plan):
    """The Foreign Scan nodes of an EXPLAIN (FORMAT JSON) result."""
    return plan_nodes(plan, "Foreign Scan")


def scan_node(rows):
    """The first Foreign Scan node of EXPLAIN (FORMAT JSON)'s rows."""
    if not rows:
        return None
    plan = rows[0][0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return scans(plan)[0]


def explain_scan(conn, sql):
    """The Foreign Scan node of EXPLAIN (ANALYZE, FORMAT JSON) sql, or the
    error."""
    rows, err = query(conn, sql)
    return (None, err) if err else (scan_node(rows), None)


def figures(node, *keys):
    return {k: node.get(k) for k in keys} if node else None


def backend_gone(conn, pid):
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
        return cur.fetchone()[0] == 0


# ----------------------------------------------------------------- checks

Q2W = ("2024-01-01", "2024-02-15")      # 45 days: two windows
SUB = ("2024-01-10", "2024-02-05")      # inside Q2W
GAP = ("2024-01-01", "2024-02-20")      # Q2W and 5 days more


def concurrent(tap, conn):
    """Checks 1 and 12: three sessions at once, the same two windows."""
    reset(conn, max_concurrent_exports=2)
    option(conn, "SERVER", "clover", "max_concurrent_exports", "2")
    sessions = [connect(DB) for _ in range(3)]
    barrier = threading.Barrier(3)
    outs = [{} for _ in sessions]

    def one(c, out):
        barrier.wait()
        t0 = time.monotonic()
        out["rows"], out["error"] = query(c, orders_sql(*Q2W))
        out["secs"] = time.monotonic() - t0

    threads = [threading.Thread(target=one, args=(c, o)) for c, o in zip(sessions, outs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    s = fake_stats()
    tap.note("3 sessions, 2 windows each, 2 slots: %s s; %d exports, %d busy 503s"
             % (", ".join("%.1f" % o.get("secs", -1) for o in outs),
                s["exports_created"], s["busy_rejections"]))
    tap.check(s["exports_created"] == 2,
              "1: three sessions, same 2-window query: 2 exports created",
              "%d created" % s["exports_created"])
    tap.check(s["busy_rejections"] == 0, "1: three sessions: no busy 503",
              "%d busy 503s" % s["busy_rejections"])
    bad = []
    for i, o in enumerate(outs):
        ok, why = exact(o.get("rows"), *Q2W)
        if o.get("error") or not ok:
            bad.append("session %d: %s %s" % (i + 1, describe(o.get("error")), why))
    tap.check(not bad, "1: three sessions: every session's rows exact", "; ".join(bad))
    tap.note("per token: peak %d concurrent API requests, %d requests/s"
             % (s["max_concurrent_requests_per_token"],
                s["max_requests_per_second_per_token"]))
    tap.check(s["max_concurrent_requests_per_token"] <= 5,
              "12: three sessions: at most 5 concurrent API requests per token",
              "peak %d" % s["max_concurrent_requests_per_token"])
    tap.check(s["max_requests_per_second_per_token"] <= 16,
              "12: three sessions: at most 16 API requests/s per token",
              "peak %d in 1 s" % s["max_requests_per_second_per_token"])
    for c in sessions:
        c.close()


def many_sessions(tap, conn):
    """Check 12 under a heavier load: six sessions, six windows, six slots:
    every export is polled at once, by sessions sharing one token."""
    weeks = [("2025-01-01", "2025-01-08"), ("2025-01-08", "2025-01-15"),
             ("2025-01-15", "2025-01-22"), ("2025-01-22", "2025-01-29"),
             ("2025-02-01", "2025-02-08"), ("2025-02-08", "2025-02-15")]
    reset(conn, max_concurrent_exports=6)
    option(conn, "SERVER", "clover", "max_concurrent_exports", "6")
    sessions = [connect(DB) for _ in weeks]
    barrier = threading.Barrier(len(weeks))
    outs = [{} for _ in weeks]

    def one(c, rng, out):
        barrier.wait()
        out["rows"], out["error"] = query(c, orders_sql(*rng))

    threads = [threading.Thread(target=one, args=a) for a in zip(sessions, weeks, outs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    s = fake_stats()
    bad = []
    for rng, o in zip(weeks, outs):
        ok, why = exact(o.get("rows"), *rng)
        if o.get("error") or not ok:
            bad.append("%s: %s %s" % (rng[0], describe(o.get("error")), why))
    tap.note("six sessions: %d exports, %d polls; per token: peak %d concurrent API "
             "requests, %d requests/s" % (s["exports_created"], s["polls"],
                                          s["max_concurrent_requests_per_token"],
                                          s["max_requests_per_second_per_token"]))
    tap.check(not bad, "12: six sessions, six windows: every session's rows exact",
              "; ".join(bad))
    tap.check(s["max_concurrent_requests_per_token"] <= 5,
              "12: six sessions: at most 5 concurrent API requests per token",
              "peak %d" % s["max_concurrent_requests_per_token"])
    tap.check(s["max_requests_per_second_per_token"] <= 16,
              "12: six sessions: at most 16 API requests/s per token",
              "peak %d in 1 s" % s["max_requests_per_second_per_token"])
    for c in sessions:
        c.close()


def repeat(tap, conn):
    """Check 2: the same query, a range inside it, one with a gap."""
    for label, rng, want in (("the same query again", Q2W, 0),
                             ("a range inside it", SUB, 0),
                             ("a range extending it by 5 days", GAP, 1)):
        before = created()
        rows, err = query(conn, orders_sql(*rng))
        new = created() - before
        ok, why = exact(rows, *rng)
        tap.check(err is None and ok and new == want,
                  "2: %s: %d new export%s, rows exact" % (label, want, "" if want == 1 else "s"),
                  "%d new; %s; %s" % (new, describe(err), why))
    node, err = explain_scan(conn, orders_sql(*Q2W, explain=True))
    f = figures(node, "Exports Created", "Exports Reused")
    tap.check(err is None and f["Exports Created"] == 0 and f["Exports Reused"] == 2,
              "2: EXPLAIN ANALYZE of the query again: Exports Created 0, Exports Reused 2",
              "%s %s" % (f, describe(err) if err else ""))


def no_reuse(tap, conn):
    """Check 3: reuse_exports '0' on the table."""
    try:
        option(conn, "FOREIGN TABLE", "clover_orders", "reuse_exports", "0")
    except psycopg2.Error as e:
        tap.check(False, "3: reuse_exports '0' on the table: the query exports again",
                  "ALTER FOREIGN TABLE failed: " + describe(e))
        return
    before = created()
    rows, err = query(conn, orders_sql(*Q2W))
    new = created() - before
    ok, why = exact(rows, *Q2W)
    tap.check(err is None and ok and new == 2,
              "3: reuse_exports '0' on the table: the query exports again (2 new)",
              "%d new; %s; %s" % (new, describe(err), why))
    option(conn, "FOREIGN TABLE", "clover_orders", "reuse_exports", None)
    try:
        option(conn, "SERVER", "clover", "reuse_exports", "ten minutes")
        refused = None
    except psycopg2.Error as e:
        refused = e
    # refused as every interval option is: interval_in's error, in the
    # context of validating the option
    tap.check(refused is not None and refused.pgcode == "22007" and
              'validating option "reuse_exports"' in (refused.diag.context or ""),
              "3: reuse_exports 'ten minutes' is refused when set", describe(refused))


def read_only(tap, conn):
    """Check 4: read-only transactions reuse, and register new exports."""
    before = created()
    with conn.cursor() as cur:
        cur.execute("BEGIN READ ONLY")
    rows, err = query(conn, orders_sql(*Q2W))
    with conn.cursor() as cur:
        cur.execute("ROLLBACK" if err else "COMMIT")
    new = created() - before
    ok, why = exact(rows, *Q2W)
    tap.check(err is None and ok and new == 0,
              "4: BEGIN READ ONLY: the query works and reuses (0 new exports)",
              "%d new; %s; %s" % (new, describe(err), why))

    ro = connect(DB)
    with ro.cursor() as cur:
        cur.execute("SET default_transaction_read_only = on")
    before = created()
    rows, err = query(ro, orders_sql(*SUB))
    new = created() - before
    ok, why = exact(rows, *SUB)
    tap.check(err is None and ok and new == 0,
              "4: default_transaction_read_only: the query works and reuses",
              "%d new; %s; %s" % (new, describe(err), why))
    # a window never exported: created, and registered, from a read-only
    # transaction
    march = ("2024-03-01", "2024-03-05")
    before = created()
    rows, err = query(ro, orders_sql(*march))
    new = created() - before
    ok, why = exact(rows, *march)
    tap.check(err is None and ok and new == 1,
              "4: read-only: a new window is exported (1 export)",
              "%d new; %s; %s" % (new, describe(err), why))
    before = created()
    rows, err = query(conn, orders_sql(*march))
    new = created() - before
    tap.check(err is None and new == 0,
              "4: the export made in a read-only transaction is reused later",
              "%d new; %s" % (new, describe(err)))
    ro.close()


def roles(tap, conn):
    """Check 5: reuse is authorized by the querying user's own token."""
    with conn.cursor() as cur:
        for role in ROLES:
            cur.execute("DROP ROLE IF EXISTS %s" % role)
            cur.execute("CREATE ROLE %s LOGIN" % role)
        for role, token in (("sharing_noperm", "noperm-token"),
                            ("sharing_other", "other-token")):
            cur.execute("GRANT USAGE ON FOREIGN SERVER clover TO %s" % role)
            cur.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO %s" % role)
            cur.execute("CREATE USER MAPPING FOR %s SERVER clover "
                        "OPTIONS (access_token %%s)" % role, (token,))
    # Q2W was exported with TOKEN (this suite's user); noperm-token may not
    # read the merchant
    noperm = connect(DB, user="sharing_noperm")
    s0 = fake_stats()
    rows, err = query(noperm, orders_sql(*Q2W))
    s1 = fake_stats()
    text = describe(err)
    tap.check(err is not None and "401" in text and rows is None,
              "5: a token without permission for the merchant: error (401), no row",
              "rows %s; %s" % (rows, text))
    tap.check(s1["file_downloads"] == s0["file_downloads"]
              and s1["auth_failures"] > s0["auth_failures"],
              "5: a token without permission: Clover refused it, no file downloaded",
              "%d files, %d refusals" % (s1["file_downloads"] - s0["file_downloads"],
                                         s1["auth_failures"] - s0["auth_failures"]))
    noperm.close()

    other = connect(DB, user="sharing_other")
    before = created()
    rows, err = query(other, orders_sql(*SUB))
    new = created() - before
    ok, why = exact(rows, *SUB)
    tap.check(err is None and ok, "5: another user's good token: rows exact",
              "%s; %s" % (describe(err), why))
    tap.check(err is None and new == 0,
              "5: another user's good token reuses the exports (0 new)", "%d new" % new)
    mine, err1 = registry(conn)
    theirs, err2 = registry(other)
    other.close()
    nousage = connect(DB, user="sharing_nousage")
    none, err3 = registry(nousage)
    nousage.close()
    if not (err1 or err2 or err3):
        # a superuser may also see other databases' entries: count this
        # suite's merchant's
        mine, theirs = ([r for r in rows if r["merchant_id"] == MERCHANT]
                        for rows in (mine, theirs))
    tap.check(not (err1 or err2 or err3) and len(mine) > 0 and len(theirs) == len(mine)
              and len(none) == 0,
              "5: clover_export_fdw_exports() lists entries only to users of the server",
              "this merchant's entries: superuser %s, user with USAGE %s; all entries: "
              "user without USAGE %s; %s"
              % (mine and len(mine), theirs and len(theirs), none and len(none),
                 describe(err1 or err2 or err3)))


def explain_labels(tap, conn):
    """Check 13: Exports Shared, Slot Waits and Slot Wait Time."""
    # a's export runs 3 s: b and c start well within it
    reset(conn, max_concurrent_exports=2, processing_ms=3000)
    option(conn, "SERVER", "clover", "max_concurrent_exports", "1")
    a, b, c = connect(DB), connect(DB), connect(DB)
    ta, oa = run_in_thread(a, orders_sql("2024-04-01", "2024-04-08"))
    reached = wait_until(lambda: created() >= 1, 30)
    # b needs a window nobody exports: it waits for the only slot; c needs
    # a part of a's running export: it waits for that export
    tb, ob = run_in_thread(b, orders_sql("2024-05-01", "2024-05-08", explain=True))
    tc, oc = run_in_thread(c, orders_sql("2024-04-02", "2024-04-05", explain=True))
    for th in (ta, tb, tc):
        th.join(120)
    s = fake_stats()
    nb, nc = scan_node(ob.get("rows")), scan_node(oc.get("rows"))
    fb = figures(nb, "Exports Created", "Slot Waits", "Slot Wait Time")
    fc = figures(nc, "Exports Created", "Exports Reused", "Exports Shared")
    tap.note("slot wait: %s; shared: %s; fake: %d exports, %d busy"
             % (fb, fc, s["exports_created"], s["busy_rejections"]))
    tap.check(reached and fb is not None and (fb["Slot Waits"] or 0) >= 1
              and fb["Slot Wait Time"] is not None and fb["Exports Created"] == 1,
              "13: EXPLAIN ANALYZE of a scan that waited for the only slot: "
              "Slot Waits >= 1, Slot Wait Time, Exports Created 1",
              "%s %s" % (fb, describe(ob.get("error"))))
    tap.check(fc is not None and fc["Exports Shared"] == 1 and fc["Exports Created"] == 0,
              "13: EXPLAIN ANALYZE of a scan inside another session's running export: "
              "Exports Shared 1, Exports Created 0",
              "%s %s" % (fc, describe(oc.get("error"))))
    tap.check(s["exports_created"] == 2 and s["busy_rejections"] == 0
              and "error" not in oa,
              "13: two exports for three scans, no busy 503",
              "%d exports, %d busy; %s" % (s["exports_created"], s["busy_rejections"],
                                           describe(oa.get("error"))))
    for x in (a, b, c):
        x.close()


def terminate(tap, conn):
    """Check 6: pg_terminate_backend() of the session holding the slot."""
    rng = ("2024-06-01", "2024-06-08")
    reset(conn, max_concurrent_exports=1, processing_ms=3000)
    option(conn, "SERVER", "clover", "max_concurrent_exports", "1")
    victim = connect(DB)
    pid = backend_pid(victim)
    th, _ = run_in_thread(victim, orders_sql(*rng))
    reached = wait_until(lambda: created() >= 1, 30)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    th.join(30)
    gone = wait_until(lambda: backend_gone(conn, pid), 10)
    # its exit callbacks may run just after it left pg_stat_activity
    wait_until(lambda: settled(conn), 5)
    left = in_use(conn)
    tap.check(reached and gone and left == [],
              "6: terminated with its export in flight: no registry entry left in use",
              "export reached %s, backend gone %s; in use: %s" % (reached, gone, left))
    after = connect(DB)
    with after.cursor() as cur:
        cur.execute("SET statement_timeout = '40s'")
    rows, err = query(after, orders_sql(*rng))
    s = fake_stats()
    ok, why = exact(rows, *rng)
    tap.note("after the termination: %d exports in all, %d busy 503s"
             % (s["exports_created"], s["busy_rejections"]))
    tap.check(err is None and ok,
              "6: after the termination another session's query runs to the end, exact",
              "%s; %s" % (describe(err), why))
    tap.check(s["busy_rejections"] == 0,
              "6: after the termination: no busy 503 (the slot's export is not raced)",
              "%d busy 503s" % s["busy_rejections"])
    left = in_use(conn)
    tap.check(left == [], "6: afterwards no registry entry in use", repr(left))
    after.close()
    victim.close()


def wait_for_cluster(timeout=30):
    """A connection once the cluster accepts them again, or None."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            c = connect(DB)
            with c.cursor() as cur:
                cur.execute("SELECT 1")
            return c
        except psycopg2.Error:
            time.sleep(0.2)
    return None


def sigkill(tap, conn):
    """Check 7: a backend holding a slot is killed; the postmaster restarts.
    Returns the new connection to use."""
    done_rng = ("2024-08-01", "2024-08-08")
    kill_rng = ("2024-08-15", "2024-08-22")
    reset(conn, max_concurrent_exports=2, processing_ms=1500)
    option(conn, "SERVER", "clover", "max_concurrent_exports", "1")
    _, err = query(conn, orders_sql(*done_rng))
    before, rerr = registry(conn)
    done_ids = sorted(r["export_id"] for r in before or [] if str(r["status"]).upper() == "DONE")
    tap.note("before the crash: DONE exports %s (%s)" % (done_ids, describe(rerr or err)))

    victim = connect(DB)
    pid = backend_pid(victim)
    th, _ = run_in_thread(victim, orders_sql(*kill_rng))
    reached = wait_until(lambda: created() >= 2, 30)
    os.kill(pid, signal.SIGKILL)
    th.join(30)

    def conn_dead():
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            return False
        except psycopg2.Error:
            return True
    wait_until(conn_dead, 10)
    t0 = time.monotonic()
    conn = wait_for_cluster(30)
    tap.check(conn is not None, "7: after SIGKILL of a backend the cluster accepts connections",
              "not within 30 s")
    if conn is None:
        return None
    tap.note("the cluster accepted connections %.1f s after the crash" % (time.monotonic() - t0))
    after, rerr = registry(conn)
    listed = sorted(r["export_id"] for r in after or [] if r["export_id"] in done_ids)
    tap.check(reached and rerr is None and done_ids and listed == done_ids,
              "7: the exports DONE before the crash are still listed",
              "before %s, after %s; %s" % (done_ids, listed, describe(rerr)))
    before = created()
    rows, err = query(conn, orders_sql(*done_rng))
    new = created() - before
    ok, why = exact(rows, *done_rng)
    tap.check(err is None and ok and new == 0,
              "7: after the crash the range exported before it is reused (0 new)",
              "%d new; %s; %s" % (new, describe(err), why))
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = '40s'")
    rows, err = query(conn, orders_sql(*kill_rng))
    with conn.cursor() as cur:
        cur.execute("RESET statement_timeout")
    ok, why = exact(rows, *kill_rng)
    s = fake_stats()
    tap.check(err is None and ok and s["busy_rejections"] == 0,
              "7: after the crash the killed backend's range runs to the end, exact, no busy 503",
              "%s; %s; %d busy" % (describe(err), why, s["busy_rejections"]))
    left = in_use(conn)
    tap.check(left == [], "7: after the crash no registry entry in use", repr(left))
    return conn


def join(tap, conn):
    """Check 8: a join of both tables starts both exports at once."""
    day = ("2024-09-10", "2024-09-11")
    reset(conn, max_concurrent_exports=2, processing_ms=1500)
    option(conn, "SERVER", "clover", "max_concurrent_exports", "2")
    rows, err = query(conn, (
        "SELECT count(*), coalesce(sum(p.amount), 0) FROM clover_orders o "
        "JOIN clover_payments p ON p.order_id = o.id "
        "WHERE o.created_time >= '{0} 00:00+00' AND o.created_time < '{1} 00:00+00' "
        "AND p.created_time >= '{0} 00:00+00' AND p.created_time < '{1} 00:00+00'"
        .format(*day)))
    s = fake_stats()
    # a payment is made in its order's hour: every payment of the day joins
    ok, why = exact(rows, day[0], day[1], "PAYMENTS")
    tap.check(err is None and ok, "8: orders JOIN payments over a day: rows exact",
              "%s; %s" % (describe(err), why))
    tap.check(s["exports_created"] == 2 and s["max_running_exports"] == 2,
              "8: orders JOIN payments: the two exports run at the same time",
              "%d exports, at most %d running at once"
              % (s["exports_created"], s["max_running_exports"]))


def cancel_waiting(tap, conn, label, sql, phrase):
    """Cancel a session once the log shows it waiting (phrase); check it
    ends with the cancel error and created no export."""
    s0 = fake_stats()
    waiter = connect(DB)
    with waiter.cursor() as cur:
        cur.execute("SET clover_export_fdw.progress = on")
    pid = backend_pid(waiter)
    start = log_position()
    th, out = run_in_thread(waiter, sql)
    def moved():
        """The waiter exported, or met a busy 503: it is not waiting."""
        s = fake_stats()
        return (s["exports_created"] > s0["exports_created"]
                or s["busy_rejections"] > s0["busy_rejections"])
    # the NOTICE is in the log (log_min_messages = debug5) long before the
    # holder's export ends
    wait_until(lambda: phrase in log_since(start) or moved() or "end" in out, 20)
    reached = phrase in log_since(start)
    s1 = fake_stats()
    tap.check(reached and not moved(),
              "9: %s: the progress NOTICE says %r" % (label, phrase),
              "NOTICE seen %s; meanwhile %d exports created, %d busy 503s; last NOTICEs: %s"
              % (reached, s1["exports_created"] - s0["exports_created"],
                 s1["busy_rejections"] - s0["busy_rejections"],
                 re.findall(r"NOTICE:.*", log_since(start))[-2:]))
    t0 = time.monotonic()
    with conn.cursor() as cur:
        cur.execute("SELECT pg_cancel_backend(%s)", (pid,))
    th.join(30)
    latency = out.get("end", float("inf")) - t0
    err = out.get("error")
    tap.note("%s: canceled in %.3f s (the aim is < 0.5 s)" % (label, latency))
    tap.check(err is not None and err.pgcode == "57014"
              and "canceling statement due to user request" in str(err) and latency < 3,
              "9: %s: canceled (canceling statement due to user request)" % label,
              "%.3f s; %s" % (latency, describe(err)))
    waiter.close()


def cancels(tap, conn):
    """Check 9: cancel while waiting for a slot, and for another session's
    export."""
    mine = ("2024-10-01", "2024-10-08")
    # the holder's export runs 30 s: both waits are reached and canceled
    # meanwhile (it is canceled itself at the end)
    reset(conn, max_concurrent_exports=2, processing_ms=30000)
    option(conn, "SERVER", "clover", "max_concurrent_exports", "1")
    holder = connect(DB)
    hpid = backend_pid(holder)
    th, _ = run_in_thread(holder, orders_sql(*mine))
    wait_until(lambda: created() >= 1, 30)
    cancel_waiting(tap, conn, "waiting for a slot", orders_sql("2024-11-01", "2024-11-08"),
                   WAIT_SLOT)
    cancel_waiting(tap, conn, "waiting for another session's export",
                   orders_sql("2024-10-02", "2024-10-05"), WAIT_OTHER)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_cancel_backend(%s)", (hpid,))
    th.join(30)
    s = fake_stats()
    tap.check(s["exports_created"] == 1 and s["busy_rejections"] == 0,
              "9: the canceled waiters created no export and met no busy 503",
              "%d exports, %d busy" % (s["exports_created"], s["busy_rejections"]))
    wait_until(lambda: settled(conn), 5)
    left = in_use(conn)
    tap.check(left == [], "9: after the cancels no registry entry in use", repr(left))
    holder.close()


def data_directory(conn):
    with conn.cursor() as cur:
        cur.execute("SHOW data_directory")
        return cur.fetchone()[0]


def find_on_disk(root, words, hexes=frozenset()):
    """{path relative to root: the words (byte strings) found in that file}
    for every regular file under root holding any of them or any of the
    64-digit hex strings hexes (signatures: a set looked up, not a regular
    expression of a hundred branches)."""
    pattern = re.compile(b"|".join(re.escape(w) for w in words)
                         + (b"|(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])" if hexes else b""))
    longest = max(len(w) for w in list(words) + [b"x" * 65])
    found = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            seen = set()
            try:
                with open(path, "rb") as f:
                    tail = b""
                    while True:
                        chunk = f.read(8 << 20)
                        if not chunk:
                            break
                        seen.update(w for w in (m.group(0) for m in pattern.finditer(tail + chunk))
                                    if w in words or w in hexes)
                        tail = chunk[-longest:]
            except OSError:
                continue        # a file that went away, a socket
            if seen:
                found[os.path.relpath(path, root)] = seen
    return found


def in_catalogs(path):
    return path.split(os.sep)[0] in ("base", "global", "pg_wal")


def secrets_on_disk(tap, conn, root, where):
    """Check 10: no token outside the catalogs and WAL (base/, global/,
    pg_wal/), no file URL anywhere, under a data directory."""
    harvest()
    tokens = [t.encode() for t in TOKENS]
    urls = [b"Signature=", b"X-Amz-Signature"] + [h.encode() for h in file_hosts]
    hexes = frozenset(s.encode() for s in signatures)
    t0 = time.monotonic()
    found = find_on_disk(root, tokens + urls, hexes)
    secs = time.monotonic() - t0
    bad = ["%s: %s" % (path, b", ".join(sorted(w[:24] for w in words)).decode())
           for path, words in sorted(found.items())
           if not in_catalogs(path) or words & (set(urls) | hexes)]
    tap.note("%s: looked for %d tokens, %d file-URL markers and %d signatures (%.1f s)"
             % (where, len(tokens), len(urls), len(signatures), secs))
    tap.check(signatures and not bad,
              "10: %s: no token outside the catalogs and WAL, no file URL anywhere" % where,
              "found: %s" % ("; ".join(bad[:10]) if signatures else "no signature collected"))
    # the scan reads what it must: the user mapping's token is in the
    # catalogs or the WAL
    control = [path for path, words in found.items()
               if in_catalogs(path) and TOKEN.encode() in words]
    tap.check(control, "10: %s: the scan finds the user mapping's token in the catalogs "
              "or WAL (the files are read)" % where, "not found")


def standby(tap, conn):
    """Check 11: a hot standby queries and lists its exports."""
    rng = ("2024-12-01", "2024-12-08")
    reset(conn, max_concurrent_exports=2)
    pgbin = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")
    tmp = tempfile.mkdtemp(prefix="clover_standby.")
    data = os.path.join(tmp, "data")
    port = free_port()
    started = False
    try:
        subprocess.run([os.path.join(pgbin, "pg_basebackup"), "-D", data, "-R",
                        "-X", "stream", "-c", "fast"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([os.path.join(pgbin, "pg_ctl"), "-D", data, "-l",
                        os.path.join(tmp, "log"), "-w", "-t", "60", "start", "-o",
                        "-p %d -k %s -c hot_standby=on" % (port, tmp)],
                       check=True, capture_output=True, timeout=90)
        started = True
        sb = connect(DB, host=tmp, port=port)
        with sb.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            in_recovery = cur.fetchone()[0]
        before = created()
        rows, err = query(sb, orders_sql(*rng))
        ok, why = exact(rows, *rng)
        tap.check(in_recovery and err is None and ok,
                  "11: hot standby: a query runs, rows exact",
                  "in recovery %s; %s; %s" % (in_recovery, describe(err), why))
        listed, rerr = registry(sb)
        lo, hi = (datetime.datetime.fromisoformat(d + "T00:00+00:00") for d in rng)
        covering = [r for r in listed or []
                    if r["window_start"] <= lo and r["window_end"] >= hi]
        tap.check(rerr is None and len(covering) >= 1,
                  "11: hot standby: clover_export_fdw_exports() lists its export",
                  "%s; %d exports made; listed %s" % (describe(rerr), created() - before,
                                                      listed))
        sb.close()
        secrets_on_disk(tap, conn, data, "the standby's data directory")
    except (subprocess.SubprocessError, OSError, psycopg2.Error) as e:
        detail = getattr(e, "stderr", None) or b""
        tap.check(False, "11: hot standby: set up and queried",
                  "%s %s" % (e, detail.decode(errors="replace")[-500:]))
    finally:
        if started:
            subprocess.run([os.path.join(pgbin, "pg_ctl"), "-D", data, "-m", "immediate",
                            "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def section(tap, name, fn, *args):
    """Run one section; an unexpected exception fails it, not the suite."""
    try:
        return fn(tap, *args)
    except Exception as e:          # noqa: BLE001 - reported as a failed check
        tap.check(False, "%s: ran to the end" % name, "%s: %s" % (type(e).__name__, e))
        return None


def main():
    tap = Tap()
    conn = fresh_database(DB, "busy_timeout '60s', reuse_exports '10 min'")
    with conn.cursor() as cur:
        cur.execute("ALTER SERVER clover OPTIONS (SET merchant_id %s)", (MERCHANT,))
    set_token(conn, TOKEN)
    reset(conn)
    if forget(conn) is None:
        tap.note("clover_export_fdw_forget_exports() does not exist")

    section(tap, "1", concurrent, conn)
    section(tap, "2", repeat, conn)
    section(tap, "3", no_reuse, conn)
    section(tap, "4", read_only, conn)
    section(tap, "5", roles, conn)
    section(tap, "12", many_sessions, conn)
    section(tap, "13", explain_labels, conn)
    section(tap, "6", terminate, conn)
    section(tap, "8", join, conn)
    section(tap, "9", cancels, conn)
    conn = section(tap, "7", sigkill, conn) or wait_for_cluster(30) or connect(DB)
    section(tap, "11", standby, conn)
    section(tap, "10", secrets_on_disk, conn, data_directory(conn), "the data directory")

    reset(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(ROLES),))
        for (role,) in cur.fetchall():
            cur.execute("DROP OWNED BY %s" % role)
            cur.execute("DROP ROLE %s" % role)
    conn.close()
    fake_reset()
    tap.finish()


if __name__ == "__main__":
    main()
