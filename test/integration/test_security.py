"""Security: the access token and the pre-signed file URLs never leave
where they belong.

- A workload that goes through successes and every kind of error, with the
  server logging at debug5, must not put the token, nor a file URL's query
  string (its signature), into the server log, a NOTICE, an error or EXPLAIN.
- The token reaches only the API host: not the file host, not after a
  redirect.  File URLs and redirects are followed only to http(s).
- TLS: a server whose certificate is not trusted, or does not name the host,
  is refused; ca_file (superuser only) adds a trusted CA.
- A non-superuser granted USAGE on a server creates a user mapping with
  their own token and queries; they cannot see another user's token, nor
  set base_url or ca_file.
"""

import json
import os
import subprocess
import tempfile
import time

from common import (API, MERCHANT, Tap, connect, fake_config, fake_fault,
                    fake_reset, fake_stats, fresh_database, log_position,
                    log_since, open_handles, run_seen, set_token)

DB = "itest_security"
TOKEN = "tok-SECRET-5f2b9c1e77"
SIGNATURE_MARKERS = ("Signature=", "Expires=")
WEEK = ("SELECT count(*) FROM clover_orders "
        "WHERE created_time >= '2024-01-01' AND created_time < '2024-01-08'")


def workload(tap, conn, seen):
    """Successes and failures of every kind; returns the file port seen."""
    stats_file_port = json.load(open(os.environ["WORK"] + "/fake.json"))["file_port"]
    file_host = "http://127.0.0.1:%d" % stats_file_port

    fake_reset()
    fake_config(tokens={TOKEN: ["*"]})
    with conn.cursor() as cur:
        cur.execute("SET clover_export_fdw.progress = on")
    e = run_seen(conn, WEEK, seen)
    tap.check(e is None, "a scan with the token works", repr(e))
    run_seen(conn, "EXPLAIN (ANALYZE, VERBOSE) " + WEEK, seen)

    # API requests never follow a redirect: the token stays home
    for target in ("post", "poll"):
        fake_reset()
        fake_config(tokens={TOKEN: ["*"]})
        fake_fault(kind="redirect", target=target,
                   location=file_host + "/exports/steal?Signature=abc&Expires=1")
        e = run_seen(conn, WEEK, seen)
        tap.check(e is not None and "redirect" in e.diag.message_primary,
                  "a redirect of a %s is refused, not followed" % target, repr(e))
        tap.check(fake_stats()["token_on_file_host"] == 0,
                  "the redirected %s took no token to the file host" % target)

    # file redirects are followed only to http(s)
    fake_reset()
    fake_config(tokens={TOKEN: ["*"]})
    fake_fault(kind="redirect", target="file",
               location="ftp://127.0.0.1/x?Signature=abc&Expires=1")
    e = run_seen(conn, WEEK, seen)
    tap.check(e is not None, "a file redirect to ftp:// is refused", repr(e))

    # a file URL that is not http(s)
    fake_reset()
    fake_config(tokens={TOKEN: ["*"]}, file_url_scheme="ftp")
    e = run_seen(conn, WEEK, seen)
    tap.check(e is not None and "not http or https" in e.diag.message_primary,
              "an export listing an ftp:// file URL is refused", repr(e))

    # errors that name files: broken, failing, stalled, deleted
    fake_reset()
    fake_config(tokens={TOKEN: ["*"]})
    fake_fault(kind="malformed", target="file", count=-1)
    e = run_seen(conn, WEEK, seen)
    tap.check(e is not None and e.pgcode == "HV00A", "a broken file fails", repr(e))
    for kind, extra in (("status", {"status": 500}), ("status", {"status": 404}),
                        ("truncate", {})):
        fake_reset()
        fake_config(tokens={TOKEN: ["*"]})
        fake_fault(kind=kind, target="file", count=-1, **extra)
        e = run_seen(conn, WEEK, seen)
        tap.check(e is not None, "a failing file (%s %s) fails" % (kind, extra), repr(e))

    # a token Clover refuses, a merchant it does not know
    fake_reset()
    fake_config(tokens={TOKEN: []})
    e = run_seen(conn, WEEK, seen)
    tap.check(e is not None and "refused the access token" in e.diag.message_primary,
              "a refused token fails", repr(e))
    fake_reset()
    fake_config(tokens={TOKEN: ["*"]})
    with conn.cursor() as cur:
        cur.execute("ALTER FOREIGN TABLE clover_orders OPTIONS (ADD merchant_id 'ZZZZZZZZZZZZZ')")
    e = run_seen(conn, WEEK, seen)
    with conn.cursor() as cur:
        cur.execute("ALTER FOREIGN TABLE clover_orders OPTIONS (DROP merchant_id)")
    tap.check(e is not None, "an unknown merchant fails", repr(e))
    tap.check(fake_stats()["token_on_file_host"] == 0,
              "no request to the file host ever carried the token")
    add_merchant(tap, conn, seen)


def add_merchant(tap, conn, seen):
    """clover_add_merchant() puts the token into the user mapping only: not
    into the statements it runs, whose text is in the context of every
    message, DEBUG lines included.  The token comes from a setting so that
    the calls' own text, logged when they fail, does not hold it.  An event
    trigger's NOTICE, logged with its context, shows what a statement's text
    would hold (a DEBUG line may or may not come)."""
    with conn.cursor() as cur:
        cur.execute("CREATE FUNCTION sec_ddl_notice() RETURNS event_trigger "
                    "LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE 'ddl: %', tg_tag; END$$")
        cur.execute("CREATE EVENT TRIGGER sec_ddl ON ddl_command_start "
                    "EXECUTE FUNCTION sec_ddl_notice()")
        cur.execute("SET log_statement = 'none'")
        cur.execute("SET clover_test.token = %s", (TOKEN,))
        cur.execute("SET clover_test.bad_token = %s", (TOKEN + " x",))
        cur.execute("RESET log_statement")
    add = ("SELECT clover_add_merchant('%s', current_setting('clover_test.%s'), "
           "'sec_merchants', '{region,sandbox,base_url,%s}')")
    fake_reset()
    fake_config(tokens={TOKEN: ["*"]})
    e = run_seen(conn, add % (MERCHANT, "token", API), seen)
    tap.check(e is None, "clover_add_merchant with the token works", repr(e))
    tap.check(any("ddl: CREATE USER MAPPING" in n for n in conn.notices),
              "its CREATE USER MAPPING ran as a statement (event triggers fire)",
              repr(conn.notices))
    e = run_seen(conn, "SELECT count(*) FROM sec_merchants.clover_orders "
                 "WHERE created_time >= '2024-01-01' AND created_time < '2024-01-02'", seen)
    tap.check(e is None, "its partitions read with the token", repr(e))
    e = run_seen(conn, add % (MERCHANT, "token", API), seen)
    tap.check(e is not None, "adding it again fails", repr(e))
    e = run_seen(conn, add % ("ABCDEFGHJKMN2", "bad_token", API),
                 seen)
    tap.check(e is not None and "white space" in e.diag.message_primary,
              "a token with a space fails (the validator)", repr(e))
    e = run_seen(conn, "SELECT clover_remove_merchant('%s', 'sec_merchants')" % MERCHANT,
                 seen)
    tap.check(e is None, "clover_remove_merchant works", repr(e))
    with conn.cursor() as cur:
        cur.execute("DROP EVENT TRIGGER sec_ddl")
        cur.execute("DROP FUNCTION sec_ddl_notice()")
        cur.execute("DROP SCHEMA sec_merchants CASCADE")


def check_logs(tap, seen, log_start):
    log = log_since(log_start)
    tap.check("clover_export_fdw:" in log and "DEBUG" in log,
              "the server log has our DEBUG lines (the check below means something)")
    tap.check(TOKEN not in log, "the token is in no server log line (debug5)")
    for marker in SIGNATURE_MARKERS:
        tap.check(marker not in log,
                  "no file URL query string (%s) in the server log" % marker)
    client = "\n".join(seen)
    tap.check(len(seen) > 20, "the client saw messages (%d)" % len(seen))
    tap.check(TOKEN not in client, "the token is in no error, NOTICE or EXPLAIN line")
    for marker in SIGNATURE_MARKERS:
        tap.check(marker not in client,
                  "no file URL query string (%s) in what the client saw" % marker)


def tls_tests(tap, conn):
    """A fake over https with a self-signed certificate for 127.0.0.1."""
    tmp = tempfile.mkdtemp(prefix="clover_tls_")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = os.path.join(tmp, "ready.json")
    fake = subprocess.Popen([os.environ.get("PYTHON", "python3"),
                             os.path.join(os.path.dirname(__file__), "..", "fake", "fake_clover.py"),
                             "--ready-file", ready, "--tls-cert", cert, "--tls-key", key],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(ready):
                break
            time.sleep(0.05)
        port = json.load(open(ready))["api_port"]
        with conn.cursor() as cur:
            cur.execute("CREATE SERVER clover_tls FOREIGN DATA WRAPPER clover_export_fdw "
                        "OPTIONS (merchant_id %s, base_url %s, max_retries '0')",
                        (MERCHANT, "https://127.0.0.1:%d" % port))
            cur.execute("CREATE USER MAPPING FOR CURRENT_USER SERVER clover_tls "
                        "OPTIONS (access_token 'test-token')")
            cur.execute("CREATE FOREIGN TABLE tls_orders (id text, created_time timestamptz) "
                        "SERVER clover_tls OPTIONS (export_type 'ORDERS')")
        q = ("SELECT count(*) FROM tls_orders "
             "WHERE created_time >= '2024-01-01' AND created_time < '2024-01-03'")
        seen = []
        e = run_seen(conn, q, seen)
        tap.check(e is not None and "certificate" in " ".join(seen).lower(),
                  "TLS: an untrusted certificate is refused", "%r %s" % (e, seen))
        with conn.cursor() as cur:
            cur.execute("ALTER SERVER clover_tls OPTIONS (ADD ca_file %s)", (cert,))
        seen = []
        e = run_seen(conn, q, seen)
        tap.check(e is None and int(seen[0].strip("(),")) > 0,
                  "TLS: with ca_file the certificate is trusted", "%r %s" % (e, seen))
        # the certificate names 127.0.0.1, not localhost: host verification
        with conn.cursor() as cur:
            cur.execute("ALTER SERVER clover_tls OPTIONS (SET base_url %s)",
                        ("https://localhost:%d" % port,))
        seen = []
        e = run_seen(conn, q, seen)
        tap.check(e is not None and ("name" in " ".join(seen).lower() or
                                     "host" in " ".join(seen).lower()),
                  "TLS: a certificate for another host name is refused",
                  "%r %s" % (e, seen))
        with conn.cursor() as cur:
            cur.execute("DROP SERVER clover_tls CASCADE")
    finally:
        fake.terminate()
        fake.wait(10)


def non_superuser(tap, conn):
    with conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS clover_alice")
        cur.execute("CREATE ROLE clover_alice LOGIN")
        cur.execute("GRANT USAGE ON FOREIGN SERVER clover TO clover_alice")
        cur.execute("GRANT USAGE ON FOREIGN DATA WRAPPER clover_export_fdw TO clover_alice")
        cur.execute("GRANT SELECT ON clover_orders TO clover_alice")
    fake_reset()
    alice = connect(DB, user="clover_alice")
    try:
        with alice.cursor() as cur:
            cur.execute("CREATE USER MAPPING FOR CURRENT_USER SERVER clover "
                        "OPTIONS (access_token 'other-token')")
        seen = []
        e = run_seen(alice, WEEK, seen)
        tap.check(e is None and int(seen[0].strip("(),")) > 0,
                  "a non-superuser with USAGE queries with their own mapping", repr(e))
        with alice.cursor() as cur:
            cur.execute("SELECT usename, umoptions FROM pg_user_mappings "
                        "WHERE srvname = 'clover' ORDER BY usename")
            rows = dict(cur.fetchall())
        tap.check(rows.get("clover_alice") == ["access_token=other-token"]
                  and "postgres" in rows and rows["postgres"] is None,
                  "pg_user_mappings shows a non-superuser only their own token",
                  repr(rows))
        for sql, what in (
                ("ALTER SERVER clover OPTIONS (SET base_url 'http://evil.example')",
                 "change base_url of a server"),
                ("CREATE SERVER alice_srv FOREIGN DATA WRAPPER clover_export_fdw "
                 "OPTIONS (base_url 'http://evil.example')", "set base_url"),
                ("CREATE SERVER alice_srv FOREIGN DATA WRAPPER clover_export_fdw "
                 "OPTIONS (ca_file '/tmp/evil.pem')", "set ca_file")):
            e = run_seen(alice, sql, [])
            tap.check(e is not None and e.pgcode == "42501",
                      "a non-superuser cannot %s" % what, repr(e))
        with alice.cursor() as cur:
            cur.execute("DROP USER MAPPING FOR CURRENT_USER SERVER clover")
    finally:
        alice.close()
    with conn.cursor() as cur:
        cur.execute("DROP OWNED BY clover_alice")
        cur.execute("DROP ROLE clover_alice")


def main():
    tap = Tap()
    log_start = log_position()
    conn = fresh_database(DB)
    set_token(conn, TOKEN)
    seen = []
    workload(tap, conn, seen)
    check_logs(tap, seen, log_start)
    tap.check(open_handles(conn) == (0, 0), "nothing held after the errors")
    set_token(conn, "test-token")
    tls_tests(tap, conn)
    non_superuser(tap, conn)
    fake_reset()
    conn.close()
    tap.finish()


if __name__ == "__main__":
    main()
