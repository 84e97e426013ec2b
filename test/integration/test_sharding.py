"""A coordinator and two workers: the set-up of README.md's "Many machines"
(issue 14).

The cluster test/run_tests.sh started is the coordinator.  The suite
starts two more clusters, the workers (initdb into a directory under the
run's work directory, their own ports and socket directories).  Each worker
runs clover_export_fdw for two merchants of its own, added with
clover_add_merchant, so it has a table clover.clover_orders partitioned by
merchant.  The coordinator has postgres_fdw, a server per worker with
async_capable, and a table all_orders partitioned by list of merchant_id
whose two partitions are foreign tables on the workers' clover_orders.
The fake's exports take a second or two (queue_ms, processing_ms).

 1. EXPLAIN on the coordinator: an Async Foreign Scan per worker, each
    shipping the created_time bounds in its Remote SQL; EXPLAIN of that
    SQL on a worker: an Async Foreign Scan per merchant;
 2. every merchant's orders (count, sum of total, md5 of the sorted ids)
    through the coordinator are the fake's expected answer, one export per
    merchant;
 3. the two workers' scans overlap in time: the fake saw more exports
    running at once than one worker's merchants can run (a worker has one
    export in flight per merchant), and while the statement ran, a
    sampling thread saw a postgres_fdw query active on both workers at
    once; with async_capable 'false' the peak is at most one worker's (the
    measure tells the two apart);
 4. WHERE merchant_id = one merchant exports only for that merchant: no
    export for the other worker's merchants;
 5. one worker merchant failing (its user mapping on the worker has a
    token without permission) fails the coordinator's statement with the
    worker's error (its SQLSTATE, the merchant named, no token) and no
    rows; the other worker's query is cancelled; with the token put back
    the same session gets exact rows again;
 6. node_share '0.5' on each worker (as README.md sets it up) with the
    wrapper's max_exports_per_host 2: each worker keeps to one export at a
    time, so the two together never run more than the app's 2 at the fake,
    while both still run at once; rows exact.

The workers are stopped and their directories removed at the end, also
when a check fails or the suite dies.  Timings are notes only.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import psycopg2

from common import (ADMIN, API, connect, describe, fake_config, fake_reset,
                    fake_stats, free_port, run_timed, wait_until, Tap)

DB = "itest_sharding"
PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")
# two merchants per worker, with different amounts of data
SHARDS = {
    "worker1": {"SHARDW1M1A2B3": 60, "SHARDW1M2C4D5": 25},
    "worker2": {"SHARDW2M1E6F7": 45, "SHARDW2M2G8H9": 10},
}
MERCHANTS = [m for ms in SHARDS.values() for m in ms]
PER_WORKER = max(len(ms) for ms in SHARDS.values())
# a week: one export window per merchant
START, END = "2024-03-04", "2024-03-11"
# exports take 0.2 s queued + 1 s: the scans have time to overlap or not
TIMING = {"queue_ms": 200, "processing_ms": 1000, "max_concurrent_exports": 8}

ORDERS_BY_MERCHANT = (
    "SELECT merchant_id, count(*), sum(total), "
    "       md5(string_agg(id, E'\\n' ORDER BY id)) "
    "  FROM all_orders "
    " WHERE created_time >= '%s 00:00+00' AND created_time < '%s 00:00+00' "
    " GROUP BY merchant_id ORDER BY merchant_id" % (START, END))


# ------------------------------------------------------------------ helpers

class Worker:
    """A throwaway PostgreSQL cluster: initdb, start, connect, stop."""

    def __init__(self, name, parent):
        self.name = name
        self.dir = os.path.join(parent, name)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgresql.log")
        self.port = free_port()
        self.started = False

    def pg(self, *args, timeout=120):
        return subprocess.run([os.path.join(PGBIN, args[0])] + list(args[1:]),
                              check=True, capture_output=True, timeout=timeout)

    def start(self):
        os.makedirs(self.dir)
        self.pg("initdb", "-D", self.data, "-A", "trust", "-E", "UTF8",
                "--locale=C", "-U", "postgres", "--no-sync")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = ''\nport = %d\nunix_socket_directories = '%s'\n"
                    "max_connections = 20\nshared_buffers = '16MB'\nfsync = off\n"
                    "logging_collector = off\n" % (self.port, self.dir))
        self.started = True
        self.pg("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")

    def connect(self):
        return connect("postgres", host=self.dir, port=self.port, user="postgres")

    def stop(self):
        """Stop the cluster (fast, else immediate) and remove its directory."""
        if self.started and os.path.exists(os.path.join(self.data, "postmaster.pid")):
            for mode in ("fast", "immediate"):
                try:
                    self.pg("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30",
                            "stop", timeout=60)
                    break
                except (subprocess.SubprocessError, OSError):
                    continue
        shutil.rmtree(self.dir, ignore_errors=True)


def query(conn, sql, args=None):
    """(rows, None) or (None, the error)."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall(), None
    except psycopg2.Error as e:
        return None, e



def reset():
    """A fresh fake with the suite's merchants and slow exports."""
    fake_reset()
    fake_config(merchants={m: {"region": "*", "orders_per_day": n}
                           for ms in SHARDS.values() for m, n in ms.items()},
                **TIMING)


def expected():
    """{merchant: (count, sum, ids_md5)}: the fake's answer for the week."""
    out = {}
    for m in MERCHANTS:
        q = urllib.parse.urlencode({"type": "ORDERS", "merchant": m,
                                    "start": START + "T00:00:00Z",
                                    "end": END + "T00:00:00Z"})
        with urllib.request.urlopen(ADMIN + "/expect?" + q, timeout=60) as resp:
            e = json.loads(resp.read())
        out[m] = (e["count"], e["sum"], e["ids_md5"])
    return out


def exports_by_merchant():
    counts = {m: 0 for m in MERCHANTS}
    for e in fake_stats()["exports"]:
        counts[e["merchant"]] = counts.get(e["merchant"], 0) + 1
    return counts


class Sampler:
    """A thread that counts the moments at which both workers have a
    postgres_fdw query active (pg_stat_activity), while the coordinator's
    statement runs."""

    SQL = ("SELECT count(*) FROM pg_stat_activity "
           "WHERE application_name = 'postgres_fdw' AND state = 'active'")

    def __init__(self, workers):
        self.conns = [w.connect() for w in workers]
        self.stop = threading.Event()
        self.samples = 0
        self.both = 0
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        try:
            while not self.stop.is_set():
                active = []
                for c in self.conns:
                    with c.cursor() as cur:
                        cur.execute(self.SQL)
                        active.append(cur.fetchone()[0])
                self.samples += 1
                if all(active):
                    self.both += 1
                time.sleep(0.01)
        except psycopg2.Error as e:
            self.error = e

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)
        for c in self.conns:
            c.close()


# --------------------------------------------------------------- set-up

def set_up_worker(worker):
    """clover_export_fdw with the worker's merchants in schema clover."""
    conn = worker.connect()
    opts = ["region", "sandbox", "base_url", API, "ecommerce_base_url", API]
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION clover_export_fdw")
        # the fake forgets its exports on every reset: no reuse across
        # statements
        cur.execute("ALTER FOREIGN DATA WRAPPER clover_export_fdw "
                    "OPTIONS (ADD reuse_exports '0')")
        # two workers share the app's limits (README.md, Many machines)
        cur.execute("ALTER FOREIGN DATA WRAPPER clover_export_fdw "
                    "OPTIONS (ADD node_share '0.5')")
        for m in SHARDS[worker.name]:
            cur.execute("SELECT clover_add_merchant(%s, 'test-token', 'clover', %s)",
                        (m, opts))
    conn.close()


def set_up_coordinator(workers):
    """postgres_fdw servers on the workers and all_orders over them."""
    admin = connect("postgres")
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB)
        cur.execute("CREATE DATABASE %s" % DB)
    admin.close()
    conn = connect(DB)
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION postgres_fdw")
        cur.execute("CREATE TABLE all_orders (merchant_id text NOT NULL, id text, "
                    "total bigint, created_time timestamptz) "
                    "PARTITION BY LIST (merchant_id)")
        for w in workers:
            cur.execute("CREATE SERVER %s FOREIGN DATA WRAPPER postgres_fdw "
                        "OPTIONS (host %%s, port %%s, dbname 'postgres', "
                        "async_capable 'true', fetch_size '10000')" % w.name,
                        (w.dir, str(w.port)))
            cur.execute("CREATE USER MAPPING FOR CURRENT_USER SERVER %s "
                        "OPTIONS (user 'postgres')" % w.name)
            cur.execute("CREATE FOREIGN TABLE all_orders_%s PARTITION OF all_orders "
                        "FOR VALUES IN (%s) SERVER %s "
                        "OPTIONS (schema_name 'clover', table_name 'clover_orders')"
                        % (w.name, ", ".join("'%s'" % m for m in SHARDS[w.name]),
                           w.name))
    return conn


# ----------------------------------------------------------------- checks

def explain(tap, conn, workers):
    """Check 1: the plan."""
    rows, err = query(conn, "EXPLAIN (VERBOSE, COSTS OFF) " + ORDERS_BY_MERCHANT)
    plan = "\n".join(r[0] for r in rows or [])
    asyncs = [w.name for w in workers
              if ("Async Foreign Scan on public.all_orders_%s" % w.name) in plan]
    tap.check(err is None and len(asyncs) == 2,
              "1: EXPLAIN: an Async Foreign Scan on each worker's partition",
              "%s\n%s" % (describe(err), plan))
    remote = [line for line in plan.splitlines() if "Remote SQL" in line]
    shipped = [line for line in remote
               if "created_time >= '%s 00:00:00+00'" % START in line
               and "created_time < '%s 00:00:00+00'" % END in line]
    tap.check(len(remote) == 2 and len(shipped) == 2,
              "1: EXPLAIN: each worker's Remote SQL has the created_time bounds",
              "\n".join(remote) or plan)
    # on a worker, that SQL scans its merchants' partitions at once too
    if shipped:
        wc = workers[0].connect()
        wrows, werr = query(wc, "EXPLAIN (COSTS OFF) "
                            + shipped[0].split("Remote SQL: ", 1)[1])
        wc.close()
        wplan = "\n".join(r[0] for r in wrows or [])
        tap.check(werr is None and wplan.count("Async Foreign Scan on clover_orders_")
                  == len(SHARDS[workers[0].name]),
                  "1: EXPLAIN on a worker: an Async Foreign Scan per merchant",
                  "%s\n%s" % (describe(werr), wplan))


def run_sharded(conn, workers):
    """The per-merchant query with the sampler on: (rows, error, seconds,
    sampler)."""
    with Sampler(workers) as sampler:
        t0 = time.monotonic()
        rows, err = query(conn, ORDERS_BY_MERCHANT)
        secs = time.monotonic() - t0
    return rows, err, secs, sampler


def exact_and_overlap(tap, conn, workers, want):
    """Checks 2 and 3."""
    reset()
    rows, err, secs, sampler = run_sharded(conn, workers)
    s = fake_stats()
    got = {r[0]: (int(r[1]), int(r[2]), r[3]) for r in rows or []}
    bad = ["%s: got %s, want %s" % (m, got.get(m), want[m])
           for m in MERCHANTS if got.get(m) != want[m]]
    extra = sorted(set(got) - set(MERCHANTS))
    tap.check(err is None and not bad and not extra,
              "2: per-merchant count, sum and ids through the coordinator are exact",
              "%s; %s; unexpected merchants %s" % (describe(err), "; ".join(bad), extra))
    by_m = exports_by_merchant()
    tap.check(all(by_m[m] == 1 for m in MERCHANTS) and s["exports_created"] == len(MERCHANTS),
              "2: one export per merchant", "%s" % by_m)
    tap.note("sharded statement: %.1f s; peak %d exports running; %d of %d samples "
             "with both workers active" % (secs, s["max_running_exports"],
                                           sampler.both, sampler.samples))
    tap.check(s["max_running_exports"] > PER_WORKER,
              "3: the fake ran more exports at once (%d) than one worker's merchants (%d)"
              % (s["max_running_exports"], PER_WORKER),
              "peak %d" % s["max_running_exports"])
    tap.check(sampler.error is None and sampler.both >= 1,
              "3: pg_stat_activity: both workers had a query active at the same moment",
              "%s; %d of %d samples" % (sampler.error, sampler.both, sampler.samples))
    return secs


def one_after_the_other(tap, conn, workers, sharded_secs):
    """Check 3's control, and the note comparing times."""
    # each worker's own query, one after the other (a note)
    total = 0.0
    for w in workers:
        reset()
        wc = w.connect()
        err, secs = run_timed(wc, "SELECT count(*) FROM clover.clover_orders "
                                  "WHERE created_time >= '%s 00:00+00' "
                                  "AND created_time < '%s 00:00+00'" % (START, END))
        wc.close()
        if err is not None:
            tap.check(False, "3: %s's own query runs" % w.name, describe(err))
        total += secs
    tap.note("the two workers' queries one after the other: %.1f s; sharded: %.1f s"
             % (total, sharded_secs))
    # the coordinator without async_capable: the workers run in turn
    with conn.cursor() as cur:
        for w in workers:
            cur.execute("ALTER SERVER %s OPTIONS (SET async_capable 'false')" % w.name)
    try:
        reset()
        rows, err, secs, sampler = run_sharded(conn, workers)
        s = fake_stats()
        tap.note("async_capable 'false': %.1f s; peak %d exports running; %d of %d "
                 "samples with both workers active"
                 % (secs, s["max_running_exports"], sampler.both, sampler.samples))
        tap.check(err is None and len(rows) == len(MERCHANTS)
                  and s["max_running_exports"] <= PER_WORKER,
                  "3: control: with async_capable 'false' the peak is at most one worker's (%d)"
                  % PER_WORKER,
                  "%s; peak %d" % (describe(err), s["max_running_exports"]))
    finally:
        with conn.cursor() as cur:
            for w in workers:
                cur.execute("ALTER SERVER %s OPTIONS (SET async_capable 'true')" % w.name)


def pruning(tap, conn, want):
    """Check 4."""
    m = "SHARDW2M2G8H9"
    reset()
    rows, err = query(conn, "SELECT count(*), sum(total) FROM all_orders "
                            "WHERE merchant_id = %s AND created_time >= %s "
                            "AND created_time < %s",
                      (m, START + " 00:00+00", END + " 00:00+00"))
    by_m = exports_by_merchant()
    got = tuple(int(v) for v in rows[0]) if rows else None
    tap.check(err is None and got == want[m][:2],
              "4: WHERE merchant_id = one merchant: its rows exact",
              "%s; got %s, want %s" % (describe(err), got, want[m][:2]))
    others = {k: v for k, v in by_m.items() if k != m}
    tap.check(by_m[m] == 1 and not any(others.values()),
              "4: WHERE merchant_id = one merchant: only that merchant exported, "
              "none of the other worker's", "%s" % by_m)


def failing_merchant(tap, conn, workers, want):
    """Check 5."""
    bad_m = "SHARDW2M1E6F7"
    w1, w2 = workers
    wc = w2.connect()
    server = "clover_" + bad_m.lower()
    with wc.cursor() as cur:
        cur.execute("ALTER USER MAPPING FOR CURRENT_USER SERVER %s "
                    "OPTIONS (SET access_token 'noperm-token')" % server)
    try:
        reset()
        rows, err = query(conn, ORDERS_BY_MERCHANT)
        text = describe(err)
        tap.note("the coordinator's error: " + text)
        tap.check(err is not None and rows is None,
                  "5: a failing worker merchant fails the coordinator's statement: no rows",
                  "rows %s" % rows)
        tap.check(err is not None and err.pgcode == "HV00N"
                  and ('merchant "%s"' % bad_m) in (err.diag.message_primary or ""),
                  "5: the coordinator's error is the worker's: SQLSTATE HV00N, "
                  "naming the merchant", text)
        tap.check("noperm-token" not in text and "test-token" not in text,
                  "5: no token in the error", text)
        # postgres_fdw cancels the other worker's query when the statement
        # fails
        w1c = w1.connect()
        left = []

        def none_active():
            r, _ = query(w1c, Sampler.SQL)
            left.append(r[0][0] if r else None)
            return left[-1] == 0
        over = wait_until(none_active, 10)
        w1c.close()
        tap.check(over, "5: the other worker's query is over when the error arrives",
                  "%s postgres_fdw queries active on %s" % (left[-1:], w1.name))
    finally:
        with wc.cursor() as cur:
            cur.execute("ALTER USER MAPPING FOR CURRENT_USER SERVER %s "
                        "OPTIONS (SET access_token 'test-token')" % server)
        wc.close()
    reset()
    rows, err = query(conn, ORDERS_BY_MERCHANT)
    got = {r[0]: (int(r[1]), int(r[2]), r[3]) for r in rows or []}
    tap.check(err is None and got == want,
              "5: the token put back, the same session's statement is exact again",
              "%s; got %s" % (describe(err), got))


def node_share(tap, conn, workers, want):
    """Check 6: the workers' shares of an app-wide limit add up to it."""
    def on_workers(change):
        for w in workers:
            wc = w.connect()
            with wc.cursor() as cur:
                cur.execute("ALTER FOREIGN DATA WRAPPER clover_export_fdw OPTIONS (%s)"
                            % change)
            wc.close()

    on_workers("ADD max_exports_per_host '2'")
    try:
        reset()
        rows, err, secs, sampler = run_sharded(conn, workers)
        s = fake_stats()
    finally:
        on_workers("DROP max_exports_per_host")
    got = {r[0]: (int(r[1]), int(r[2]), r[3]) for r in rows or []}
    tap.note("max_exports_per_host 2, node_share 0.5 on each worker: %.1f s; peak %d "
             "exports running; %d of %d samples with both workers active"
             % (secs, s["max_running_exports"], sampler.both, sampler.samples))
    tap.check(err is None and got == want,
              "6: max_exports_per_host 2 and node_share 0.5 on each worker: rows exact",
              "%s; got %s" % (describe(err), got))
    tap.check(s["max_running_exports"] <= 2,
              "6: the two workers together ran at most the app's 2 exports at once",
              "peak %d" % s["max_running_exports"])
    tap.check(sampler.error is None and sampler.both >= 1,
              "6: the workers still ran at once, one export each",
              "%s; %d of %d samples" % (sampler.error, sampler.both, sampler.samples))


def section(tap, name, fn, *args):
    """Run one section; an unexpected exception fails it, not the suite."""
    try:
        return fn(tap, *args)
    except Exception as e:          # noqa: BLE001 - reported as a failed check
        tap.check(False, "%s: ran to the end" % name, "%s: %s" % (type(e).__name__, e))
        return None


def checks(tap, conn, workers):
    reset()
    want = expected()
    tap.check(len(set(want.values())) == len(MERCHANTS) and all(v[0] for v in want.values()),
              "set-up: every merchant has orders of its own in the week", "%s" % want)
    section(tap, "1", explain, conn, workers)
    secs = section(tap, "2", exact_and_overlap, conn, workers, want) or 0.0
    section(tap, "3", one_after_the_other, conn, workers, secs)
    section(tap, "4", pruning, conn, want)
    section(tap, "5", failing_merchant, conn, workers, want)
    section(tap, "6", node_share, conn, workers, want)


def main():
    tap = Tap()
    parent = tempfile.mkdtemp(prefix="sharding.", dir=os.environ.get("WORK"))
    workers = [Worker(name, parent) for name in SHARDS]
    conn = None
    try:
        try:
            for w in workers:
                w.start()
                set_up_worker(w)
            conn = set_up_coordinator(workers)
        except (subprocess.SubprocessError, OSError, psycopg2.Error) as e:
            detail = getattr(e, "stderr", None) or b""
            tap.check(False, "set-up: two workers and the coordinator",
                      "%s %s" % (e, detail.decode(errors="replace")[-800:]))
        if conn is not None:
            checks(tap, conn, workers)
    finally:
        if conn is not None:
            conn.close()
        for w in workers:
            w.stop()
        shutil.rmtree(parent, ignore_errors=True)
        try:
            admin = connect("postgres")
            with admin.cursor() as cur:
                cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB)
            admin.close()
        except psycopg2.Error:
            pass
        fake_reset()
    tap.finish()


if __name__ == "__main__":
    main()
