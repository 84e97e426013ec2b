"""Shared helpers of the integration suites (test/integration/test_*.py).

Each suite runs against the cluster and the fake Clover that
test/run_tests.sh started (libpq variables PGHOST/PGPORT/PGUSER, and
FAKE_CLOVER_API/FAKE_CLOVER_ADMIN), prints one "ok - name" or
"not ok - name: why" line per check, and exits 1 if any check failed.
"""

import json
import os
import socket
import sys
import threading
import time
import urllib.request

import psycopg2
import psycopg2.extensions

API = os.environ["FAKE_CLOVER_API"]
ADMIN = os.environ["FAKE_CLOVER_ADMIN"]
SERVER_LOG = os.environ.get("PGLOG")
MERCHANT = "6E72X1BW38A7T"


class Tap:
    """TAP-style reporting: every check prints a line; exit status at end."""

    def __init__(self):
        self.failed = 0

    def check(self, cond, name, detail=""):
        if cond:
            print("ok - " + name, flush=True)
        else:
            self.failed += 1
            print("not ok - %s: %s" % (name, detail), flush=True)
        return cond

    @staticmethod
    def note(text):
        print("# " + text, flush=True)

    def finish(self):
        sys.exit(1 if self.failed else 0)


# ------------------------------------------------------------- the fake

def _admin(path, body=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(ADMIN + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read()
    return json.loads(text) if text else None


def fake_reset():
    _admin("/reset", {}, "POST")


def fake_config(**changes):
    _admin("/config", changes, "POST")


def fake_fault(**rule):
    _admin("/fault", rule, "POST")


def fake_stats():
    return _admin("/stats")


def fake_clear_faults():
    _admin("/fault", None, "DELETE")


# ------------------------------------------------------------ PostgreSQL

def connect(dbname, **kw):
    conn = psycopg2.connect(dbname=dbname, **kw)
    conn.autocommit = True
    return conn


def fresh_database(name, server_options=""):
    """A new database with the extension, a server on the fake, a user
    mapping and the imported tables; returns an autocommit connection.
    Exports are reused across statements only if server_options set
    reuse_exports."""
    admin = connect("postgres")
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        cur.execute("CREATE DATABASE %s" % name)
    admin.close()
    conn = connect(name)
    extra = (", " + server_options) if server_options else ""
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION clover_export_fdw")
        if "reuse_exports" not in server_options:
            # the suites reset the fake, which forgets its exports and reuses
            # their ids: no statement reuses another's exports here unless a
            # suite asks for it (test_sharing.py)
            cur.execute("ALTER FOREIGN DATA WRAPPER clover_export_fdw "
                        "OPTIONS (ADD reuse_exports '0')")
        cur.execute("CREATE SERVER clover FOREIGN DATA WRAPPER clover_export_fdw "
                    "OPTIONS (region 'sandbox', merchant_id %%s, base_url %%s%s)" % extra,
                    (MERCHANT, API))
        cur.execute("CREATE USER MAPPING FOR CURRENT_USER SERVER clover "
                    "OPTIONS (access_token 'test-token')")
        cur.execute("IMPORT FOREIGN SCHEMA clover FROM SERVER clover INTO public")
    return conn


def set_token(conn, token):
    """Change the user mapping's token without the statement being logged."""
    with conn.cursor() as cur:
        cur.execute("SET log_statement = 'none'")
        cur.execute("ALTER USER MAPPING FOR CURRENT_USER SERVER clover "
                    "OPTIONS (SET access_token %s)", (token,))
        cur.execute("RESET log_statement")


def log_position():
    """Where the server log ends now: pass it to log_since later."""
    return os.path.getsize(SERVER_LOG)


def log_since(start):
    """The server log's text written since log_position() gave start."""
    with open(SERVER_LOG, "rb") as f:
        f.seek(start)
        return f.read().decode("utf-8", "replace")


def free_port():
    """A local TCP port with nothing listening (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_timed(conn, sql):
    """Run sql and fetch its rows: (the psycopg2 error or None, seconds
    taken).  The seconds are for notes and lower bounds only: a pass/fail
    check never asks a query to be fast."""
    t0 = time.monotonic()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            if cur.description:
                cur.fetchall()
        err = None
    except psycopg2.Error as e:
        err = e
    return err, time.monotonic() - t0


def run_seen(conn, sql, seen):
    """Run sql; append to seen every text the client sees (rows, notices,
    error fields).  Returns the psycopg2 error, or None."""
    del conn.notices[:]
    result = None
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            if cur.description:
                seen.extend(str(r) for r in cur.fetchall())
    except psycopg2.Error as e:
        d = e.diag
        seen.extend(str(x) for x in (d.message_primary, d.message_detail,
                                     d.message_hint, d.context) if x)
        result = e
    seen.extend(conn.notices)
    return result


def open_handles(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT curl_handles, download_buffers FROM clover_export_fdw_open_handles()")
        return cur.fetchone()


def backend_pid(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


# ------------------------------------------------------- queries in threads

def wait_until(pred, timeout=60.0):
    """Poll pred every 10 ms until it holds (True) or timeout passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def run_in_thread(conn, sql):
    """Run sql in a thread; the dict gets 'error' or 'rows', and 'end'."""
    out = {}

    def target():
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                out["rows"] = cur.fetchall()
        except psycopg2.Error as e:
            out["error"] = e
        out["end"] = time.monotonic()

    th = threading.Thread(target=target, daemon=True)
    th.start()
    return th, out


# ------------------------------------------------------------------ reports

def describe(err):
    """A psycopg2 error as one line: SQLSTATE, message, detail, hint."""
    if err is None:
        return "no error"
    return "%s: %s | %s | %s" % (err.pgcode, err.diag.message_primary,
                                 err.diag.message_detail, err.diag.message_hint)


def plan_nodes(plan, node_type):
    """The nodes of one type in an EXPLAIN (FORMAT JSON) result."""
    found = []

    def walk(node):
        if node.get("Node Type") == node_type:
            found.append(node)
        for child in node.get("Plans", []):
            walk(child)
    for top in plan:
        walk(top["Plan"])
    return found
