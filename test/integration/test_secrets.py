"""Secrets, as a property: whatever Clover (or its file host) answers, no
message, detail, hint, context, NOTICE, EXPLAIN line or server log line
(debug5) holds the access token or a file URL's signature, nor any 12
characters in a row of one.

Every error path is driven through the fake, with the token and the
signatures placed at every offset of Clover's answers:

- error bodies (a JSON "message" and plain text) of the POST, the status
  polls and the file host, for each status the wrapper treats differently
  (400, 401, 404, 500, 503 busy, 503 closed, 429), with the whole token or
  a tail of it, every offset from 0 past Clover's 300-character cut for the
  POST's 400 and random offsets for the others;
- bodies and headers that echo the request (the fake's "echo" faults): the
  Bearer token, a file's Signature, its whole query string;
- redirects whose Location holds the token in its path or query;
- file URLs without a path (https://host?key=...&X-Amz-Credential=a/b/c
  &...&Signature=...), with a query prefix of random length in front of the
  signature, failing downloads and a scheme that is refused.

The number of cases is printed.  RANDOM_SEED (environment) replays a run.
"""

import json
import os
import random
import string
import urllib.request

from common import (API, MERCHANT, Tap, fake_clear_faults, fake_config,
                    fake_fault, fake_reset, fake_stats, fresh_database,
                    log_position, log_since, run_seen, set_token)

DB = "itest_secrets"
FRAGMENT = 12
WEEK = ("SELECT count(*) FROM clover_orders "
        "WHERE created_time >= '2024-01-01' AND created_time < '2024-01-03'")
CREDENTIAL = "X-Amz-Credential=AKIAFAKEKEY/20240101/us-east-1/s3/aws4_request&"
BUSY = "Too many concurrent exports, please try again later"
CLOSED = "Export service is only available during these hours (UTC): MON-SUN 10:00-15:00"


class Secrets:
    """The secrets seen so far, and a test for any FRAGMENT of one."""

    def __init__(self):
        self.fragments = set()

    def add(self, secret):
        for i in range(len(secret) - FRAGMENT + 1):
            self.fragments.add(secret[i:i + FRAGMENT])

    def leak(self, text):
        """The first fragment of a secret in text, or None."""
        for i in range(len(text) - FRAGMENT + 1):
            if text[i:i + FRAGMENT] in self.fragments:
                return text[i:i + FRAGMENT]
        return None


def run(conn, sql):
    """Run sql; (the error or None, every text the client saw)."""
    seen = []
    return run_seen(conn, sql, seen), seen


def export_signatures(token, known):
    """The Signature (and X-Amz-Signature) values of the files of every
    export not in known (which it extends)."""
    sigs = []
    for ex in fake_stats()["exports"]:
        if ex["id"] in known:
            continue
        known.add(ex["id"])
        url = "%s/v3/merchants/%s/exports/%s" % (API, MERCHANT, ex["id"])
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
        obj = json.loads(urllib.request.urlopen(req, timeout=30).read())
        for el in obj.get("exportUrls", {}).get("elements", []):
            query = el["url"].split("?", 1)[1]
            for pair in query.split("&"):
                name, _, value = pair.partition("=")
                if name.endswith("Signature"):
                    sigs.append(value)
    return sigs


def placed(secret, offset, form):
    """An error body with secret at offset of its message."""
    text = "." * offset + secret + " and more text after it"
    return {"message": text} if form == "json" else text


class Runner:
    def __init__(self, tap, conn, token, rng):
        self.tap, self.conn, self.token, self.rng = tap, conn, token, rng
        self.secrets = Secrets()
        self.secrets.add(token)
        self.cases = 0
        self.leaks = []
        self.errors = 0
        self.known_exports = set()

    def tail(self):
        """The token, or a tail of it of at least FRAGMENT characters."""
        return self.token[self.rng.randrange(0, len(self.token) - FRAGMENT):]

    def case(self, name, faults=(), config=None, sql=WEEK, want_error=True):
        fake_clear_faults()
        if config:
            fake_config(**config)
        for rule in faults:
            fake_fault(**rule)
        err, seen = run(self.conn, sql)
        self.cases += 1
        if want_error and err is None:
            self.errors += 1
            if self.errors <= 3:
                self.tap.note("%s: no error" % name)
        for text in seen:
            hit = self.secrets.leak(text)
            if hit:
                self.leaks.append((name, text))
                break
        return err, seen

    def file_case(self, name, faults, sql=WEEK, want_error=True, **config):
        """A case whose file URLs are signed: their signatures are secrets
        (checked once they are known, the log at the end too)."""
        err, seen = self.case(name, faults, config, sql, want_error)
        for sig in export_signatures(self.token, self.known_exports):
            self.secrets.add(sig)
        for text in seen:
            if self.secrets.leak(text):
                self.leaks.append((name, text))
                break
        return err, seen


def post_bodies(r):
    """POST error bodies: every offset for a 400, random ones for the rest."""
    for form in ("json", "text"):
        for offset in range(0, 331):
            r.case("POST 400 %s, token at %d" % (form, offset),
                   [dict(kind="status", target="post", status=400, count=-1,
                         body=placed(r.token, offset, form))])
    for status, extra in ((400, ""), (401, ""), (404, ""), (500, ""), (503, BUSY),
                          (503, CLOSED), (429, "")):
        for _ in range(15):
            offset = r.rng.choice((r.rng.randrange(0, 40), r.rng.randrange(260, 320)))
            form = r.rng.choice(("json", "text"))
            body = placed(r.tail(), offset, form)
            if extra:
                body = placed(r.tail(), offset, form)
                if form == "json":
                    body["message"] = extra + " " + body["message"]
                else:
                    body = extra + " " + body
            r.case("POST %d %s at %d" % (status, form, offset),
                   [dict(kind="status", target="post", status=status, count=-1, body=body)])
    for _ in range(15):
        offset = r.rng.randrange(0, 320)
        r.case("POST 400 echoing the Authorization header at %d" % offset,
               [dict(kind="status", target="post", status=400, count=-1, echo=True,
                     body={"message": "." * offset + "Authorization: Bearer {token}"},
                     headers={"X-Echo": "{token}"})])


def poll_bodies(r):
    for status, extra in ((500, ""), (404, ""), (401, ""), (503, "upstream")):
        for _ in range(10):
            offset = r.rng.randrange(0, 320)
            form = r.rng.choice(("json", "text"))
            body = placed(r.tail(), offset, form)
            r.case("poll %d %s at %d" % (status, form, offset),
                   [dict(kind="status", target="poll", status=status, count=-1, body=body)])


def redirects(r):
    for target in ("post", "poll"):
        for _ in range(10):
            offset = r.rng.randrange(0, 60)
            where = r.rng.choice(("path", "query", "userinfo"))
            if where == "path":
                location = "http://127.0.0.1:9/" + "a" * offset + "{token}/x"
            elif where == "query":
                location = "http://127.0.0.1:9/x?" + "a" * offset + "{token}"
            else:
                location = "http://user:" + "a" * offset + "{token}@127.0.0.1:9/x"
            r.case("%s redirect, token in the Location's %s" % (target, where),
                   [dict(kind="redirect", target=target, echo=True, count=-1,
                         location=location)])


def file_urls(r, tap):
    """Files at URLs with and without a path, the signature at random
    offsets of the query; downloads fail in every way."""
    def url_config():
        prefix = CREDENTIAL + "pad=%s&" % ("p" * r.rng.randrange(0, 80))
        if r.rng.random() < 0.3:
            prefix += "t=" + r.tail() + "&"
        return dict(file_url_form=r.rng.choice(("path", "query")),
                    file_url_query_prefix=prefix)

    for status in (403, 500, 404, 429):
        for _ in range(8):
            offset = r.rng.randrange(0, 320)
            body = ("<Error><Message>" + "." * offset + "Signature {signature} "
                    "does not match for {query}</Message></Error>")
            r.file_case("file %d echoing the signature at %d" % (status, offset),
                        [dict(kind="status", target="file", status=status, count=-1,
                              echo=True, body=body)], **url_config())
    for kind in ("truncate", "drop"):
        for _ in range(4):
            r.file_case("file %s" % kind, [dict(kind=kind, target="file", count=-1)],
                        **url_config())
    for _ in range(6):
        r.file_case("a refused ftp:// file URL", [], file_url_scheme="ftp", **url_config())
    fake_config(file_url_scheme="http")

    # item 8: a URL with no path is shown as "/", never with its query
    r.file_case("path-less URL", [dict(kind="status", target="file", status=500,
                                       count=-1)],
                file_url_form="query", file_url_query_prefix=CREDENTIAL)
    err, _ = run(r.conn, WEEK)
    detail = err.diag.message_detail if err else ""
    tap.check(detail.startswith("GET / answered HTTP 500"),
              "a file URL without a path is named \"/\" (not a piece of its query)",
              detail)
    r.cases += 1

    # successes, EXPLAIN and progress NOTICEs with such URLs
    with r.conn.cursor() as cur:
        cur.execute("SET clover_export_fdw.progress = on")
    for sql in (WEEK, "EXPLAIN (ANALYZE, VERBOSE) " + WEEK):
        r.file_case("success: %s" % sql[:20], [], sql=sql, want_error=False,
                    **url_config())
    with r.conn.cursor() as cur:
        cur.execute("RESET clover_export_fdw.progress")


def main():
    tap = Tap()
    seed = int(os.environ.get("RANDOM_SEED") or random.SystemRandom().randrange(1 << 30))
    tap.note("RANDOM_SEED=%d" % seed)
    rng = random.Random(seed)
    token = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(48))
    log_start = log_position()
    conn = fresh_database(DB, "max_retries '0', busy_timeout '0', "
                              "request_timeout '2s'")
    set_token(conn, token)
    fake_reset()
    fake_config(tokens={token: ["*"]}, queue_ms=0, processing_ms=0)

    r = Runner(tap, conn, token, rng)
    post_bodies(r)
    poll_bodies(r)
    redirects(r)
    file_urls(r, tap)
    tap.note("%d cases, %d secrets' fragments" % (r.cases, len(r.secrets.fragments)))
    tap.check(r.errors == 0, "every failure case failed", "%d did not" % r.errors)
    tap.check(not r.leaks, "no token or signature (or %d characters of one) in any "
              "message, detail, hint, context, NOTICE or EXPLAIN line (%d cases)"
              % (FRAGMENT, r.cases),
              "%d leaks, e.g. %s" % (len(r.leaks), r.leaks[:3]))

    log = log_since(log_start)
    tap.check("Clover" in log and "DEBUG" in log, "the server log has our errors and DEBUG lines")
    bad = [line for line in log.splitlines() if r.secrets.leak(line)]
    tap.check(not bad, "no token or signature (or %d characters of one) in the server "
              "log at debug5" % FRAGMENT, "%d lines, e.g. %s" % (len(bad), bad[:3]))
    fake_reset()
    conn.close()
    tap.finish()


if __name__ == "__main__":
    main()
