#!/usr/bin/env python3
"""Self-test of the fake Clover: every documented rule and every switch,
checked with real HTTP requests against a fake started on free ports.

Prints "ok - name" or "not ok - name: reason" per check, then
"N passed, M failed"; exit status 1 on any failure.  Standard library only.
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_clover.py")
FAKECTL = os.path.join(HERE, "fakectl")

MERCHANT = "6E72X1BW38A7T"
EU_MERCHANT = "EU7Q2M4K9X1ZP"
D = 86_400_000
H = 3_600_000
FRI = 1709251200000      # 2024-03-01T00:00Z, a Friday
SAT, SUN, MON = FRI + D, FRI + 2 * D, FRI + 3 * D
FAST = {"queue_ms": 10, "processing_ms": 20}
ORDER_FIELDS = {"id", "currency", "total", "unpaidBalance", "paymentState", "orderType",
                "taxRemoved", "isVat", "manualTransaction", "groupLineItems", "testMode",
                "payType", "createdTime", "clientCreatedTime", "modifiedTime", "lineItems"}
PAYMENT_FIELDS = {"id", "order", "device", "tender", "amount", "tipAmount", "taxAmount",
                  "cashbackAmount", "employee", "createdTime", "clientCreatedTime",
                  "modifiedTime", "offline", "result"}

RESULTS = []


# Clover's ids: 13 characters of Crockford's base-32 (no I, L, O or U)
CLOVER_ID = r"^[0-9A-HJKMNP-TV-Z]{13}$"


def check(name):
    """Decorator: run the function as one check, record ok / not ok."""
    def wrap(fn):
        try:
            fn()
            RESULTS.append(True)
            print("ok - %s" % name)
        except AssertionError as e:
            RESULTS.append(False)
            print("not ok - %s: %s" % (name, e))
        except Exception as e:
            RESULTS.append(False)
            print("not ok - %s: %s: %s" % (name, type(e).__name__, e))
        sys.stdout.flush()
        return fn
    return wrap


def eq(got, want, what=""):
    assert got == want, "%s: got %r, want %r" % (what or "value", got, want)


# -- talking to the fake ---------------------------------------------------------

class Instance:
    """One fake_clover process."""

    def __init__(self, *args, data_dir=True):
        self.tmp = tempfile.mkdtemp(prefix="fake_selftest.")
        self.ready = os.path.join(self.tmp, "ready.json")
        self.log = os.path.join(self.tmp, "fake.log")
        self.data_dir = os.path.join(self.tmp, "data") if data_dir else None
        cmd = [sys.executable, FAKE, "--ready-file", self.ready, "--api-port", "0",
               "--file-port", "0"] + list(args)
        if self.data_dir:
            cmd += ["--data-dir", self.data_dir]
        self.proc = subprocess.Popen(cmd, stderr=open(self.log, "w"))
        for _ in range(100):
            if os.path.exists(self.ready):
                break
            if self.proc.poll() is not None:
                raise RuntimeError("fake exited: " + open(self.log).read())
            time.sleep(0.05)
        info = json.load(open(self.ready))
        self.api, self.files, self.pid = info["api_port"], info["file_port"], info["pid"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # raw HTTP
    def request(self, method, path, body=None, headers=None, port=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", port or self.api, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.headers, r.read()
        finally:
            conn.close()

    def call(self, method, path, obj=None, token="test-token", headers=None):
        """An API request; returns (status, decoded JSON body, headers)."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        body = None if obj is None else (obj if isinstance(obj, (bytes, str)) else json.dumps(obj))
        status, rh, data = self.request(method, path, body, h)
        return status, (json.loads(data) if data else None), rh

    def admin(self, method, name, obj=None, query=""):
        status, body, _ = self.call(method, "/_admin/" + name + query, obj, token=None)
        assert status == 200, "admin %s %s: %s %s" % (method, name, status, body)
        return body

    def fresh(self, **cfg):
        """Reset, then fast timings plus cfg."""
        self.admin("POST", "reset")
        self.admin("POST", "config", dict(FAST, **cfg))

    def stats(self):
        return self.admin("GET", "stats")

    def expect(self, kind, start, end, merchant=MERCHANT, ids=False):
        q = "?type=%s&merchant=%s&start=%s&end=%s%s" % (kind, merchant, start, end,
                                                         "&ids=1" if ids else "")
        return self.admin("GET", "expect", query=q)

    # the export API
    def post(self, kind, start, end, merchant=MERCHANT, token="test-token", slash=True):
        return self.call("POST", "/v3/merchants/%s/exports%s" % (merchant, "/" if slash else ""),
                         {"type": kind, "startTime": start, "endTime": end}, token)

    def poll(self, eid, merchant=MERCHANT, token="test-token"):
        return self.call("GET", "/v3/merchants/%s/exports/%s" % (merchant, eid), token=token)

    def wait(self, eid, merchant=MERCHANT, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, obj, _ = self.poll(eid, merchant)
            assert status == 200, "poll: %s %s" % (status, obj)
            if obj["status"] not in ("PENDING", "IN_PROGRESS"):
                return obj
            time.sleep(0.02)
        raise AssertionError("export %s not done in %ss" % (eid, timeout))

    def export(self, kind, start, end, merchant=MERCHANT):
        status, obj, _ = self.post(kind, start, end, merchant)
        assert status == 200, "POST: %s %s" % (status, obj)
        return self.wait(obj["id"], merchant)

    def get_url(self, url, headers=None, timeout=10):
        u = urllib.parse.urlsplit(url)
        return self.request("GET", u.path + "?" + u.query, headers=headers, port=u.port,
                            timeout=timeout)

    def objects(self, done):
        """All objects of a DONE export, file by file: [[obj, ...], ...]."""
        files = []
        for el in done["exportUrls"]["elements"]:
            status, _, body = self.get_url(el["url"])
            assert status == 200, "download: %s" % status
            files.append(json.loads(body)["elements"])
        return files


def raw_exchange(port, request_bytes, timeout=5):
    """Send raw bytes, read until the server closes; returns (bytes, error)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(request_bytes)
    data, err = b"", None
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        err = e
    s.close()
    return data, err


def md5_ids(ids):
    return hashlib.md5("\n".join(sorted(ids)).encode()).hexdigest()


# -- the checks -------------------------------------------------------------------------

def main():
    t_start = time.time()
    f = Instance()
    try:
        run_checks(f)
    finally:
        f.stop()
    print("# %.1f s" % (time.time() - t_start))
    passed = RESULTS.count(True)
    failed = RESULTS.count(False)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def run_checks(f):  # noqa: C901  (one long list of checks, in order)
    post_body = json.dumps({"type": "ORDERS", "startTime": FRI, "endTime": FRI + D})
    raw_post = ("POST /v3/merchants/%s/exports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                "test-token\r\nContent-Length: %d\r\n\r\n%s"
                % (MERCHANT, len(post_body), post_body)).encode()

    # ---- process -----------------------------------------------------------
    @check("ready file names two distinct ports and the pid")
    def _():
        assert f.api != f.files and f.api > 0 and f.files > 0
        eq(f.pid, f.proc.pid, "pid")

    @check("both servers listen on 127.0.0.1 only")
    def _():
        listening = set()
        for line in open("/proc/net/tcp").read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":
                listening.add((local.split(":")[0], int(local.split(":")[1], 16)))
        for port in (f.api, f.files):
            assert ("0100007F", port) in listening, "port %d not on 127.0.0.1" % port
            assert not any(p == port and a != "0100007F" for a, p in listening)

    @check("default config is the documented one")
    def _():
        c = f.admin("GET", "config")
        want = {"region": "sandbox", "hours": None, "clock_ms": None, "clock_offset_ms": 0,
                "end_inclusive": True, "queue_ms": 100, "processing_ms": 400,
                "processing_objects_per_s": 0,
                "max_concurrent_exports": 3, "objects_per_file": 1000, "shuffle": False,
                "lag_ms": 0, "expired_status": 404, "file_host": "127.0.0.1",
                "file_url_scheme": "http", "file_url_form": "path",
                "file_url_query_prefix": "", "anomalies": []}
        for k, v in want.items():
            eq(c[k], v, k)
        eq(c["tokens"], {"test-token": ["*"], "other-token": ["*"], "noperm-token": []}, "tokens")
        eq(c["merchants"][MERCHANT], {"region": "*", "orders_per_day": 150}, "merchant")
        eq(c["merchants"][EU_MERCHANT]["region"], "eu", "EU merchant region")

    # ---- auth ---------------------------------------------------------------
    f.fresh()

    @check("auth: no token -> 401 {\"message\":\"401 Unauthorized\"}")
    def _():
        status, body, _ = f.post("ORDERS", FRI, FRI + D, token=None)
        eq((status, body), (401, {"message": "401 Unauthorized"}))

    @check("auth: unknown token -> 401")
    def _():
        eq(f.post("ORDERS", FRI, FRI + D, token="wrong-token")[0], 401)

    @check("auth: Basic scheme -> 401")
    def _():
        status, _, _ = f.call("POST", "/v3/merchants/%s/exports" % MERCHANT, post_body, token=None,
                              headers={"Authorization": "Basic dGVzdC10b2tlbg=="})
        eq(status, 401)

    @check("auth: access_token query parameter -> 401, even with a good header")
    def _():
        path = "/v3/merchants/%s/exports?access_token=test-token" % MERCHANT
        eq(f.call("POST", path, post_body)[0], 401, "with header")
        eq(f.call("POST", path, post_body, token=None)[0], 401, "alone")

    @check("auth: known token without permission -> 401")
    def _():
        eq(f.post("ORDERS", FRI, FRI + D, token="noperm-token")[0], 401)

    @check("auth: token limited to one merchant (tokens merge per token)")
    def _():
        f.admin("POST", "config", {"tokens": {"one-token": [MERCHANT]},
                                   "merchants": {"SECOND0000001": {"region": "*"}}})
        eq(f.post("ORDERS", FRI, FRI + D, token="one-token")[0], 200, "own merchant")
        eq(f.post("ORDERS", FRI, FRI + D, merchant="SECOND0000001", token="one-token")[0], 401,
           "other merchant")
        eq(f.post("ORDERS", FRI, FRI + D, token="test-token")[0], 200, "default token kept")

    @check("auth: merchant of another region or unknown -> 404 Merchant not found")
    def _():
        f.fresh()
        status, body, _ = f.post("ORDERS", FRI, FRI + D, merchant=EU_MERCHANT)
        eq((status, body), (404, {"message": "Merchant not found"}))
        eq(f.post("ORDERS", FRI, FRI + D, merchant="NOSUCHMERCHNT")[0], 404, "unknown")
        f.admin("POST", "config", {"region": "eu", "hours": "always"})
        eq(f.post("ORDERS", FRI, FRI + D, merchant=EU_MERCHANT)[0], 200, "EU merchant on eu")
        eq(f.post("ORDERS", FRI, FRI + D)[0], 200, "'*' merchant on eu")

    @check("auth: failures are counted")
    def _():
        f.fresh()
        f.post("ORDERS", FRI, FRI + D, token=None)
        f.post("ORDERS", FRI, FRI + D, token="noperm-token")
        eq(f.stats()["auth_failures"], 2)

    # ---- create -------------------------------------------------------------
    f.fresh()

    @check("create: 200 PENDING export object, exactly the documented shape")
    def _():
        status, obj, _ = f.post("ORDERS", FRI, FRI + D)
        eq(status, 200)
        eq(set(obj), {"id", "type", "status", "percentComplete", "startTime", "endTime",
                      "createdTime", "modifiedTime", "merchantRef"}, "keys")
        assert re.match(CLOVER_ID, obj["id"]), obj["id"]
        eq((obj["type"], obj["status"], obj["percentComplete"]), ("ORDERS", "PENDING", 0))
        eq((obj["startTime"], obj["endTime"]), (FRI, FRI + D))
        eq(obj["merchantRef"], {"id": MERCHANT})
        assert isinstance(obj["createdTime"], int) and isinstance(obj["modifiedTime"], int)

    @check("create: path without trailing slash, times as numeric strings")
    def _():
        status, obj, _ = f.call("POST", "/v3/merchants/%s/exports" % MERCHANT,
                                {"type": "PAYMENTS", "startTime": str(FRI),
                                 "endTime": str(FRI + D)})
        eq(status, 200)
        eq((obj["type"], obj["startTime"], obj["endTime"]), ("PAYMENTS", FRI, FRI + D))

    @check("create: chunked request body accepted")
    def _():
        chunked = ("%x\r\n%s\r\n0\r\n\r\n" % (len(post_body), post_body)).encode()
        head = ("POST /v3/merchants/%s/exports/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                "test-token\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % MERCHANT)
        data, _ = raw_exchange(f.api, head.encode() + chunked)
        assert data.startswith(b"HTTP/1.1 200"), data[:80]

    @check("create: bad requests -> 400 with a message")
    def _():
        f.fresh()
        path = "/v3/merchants/%s/exports/" % MERCHANT
        bad = [b"not json", b"[1,2]", {"type": "REFUNDS", "startTime": FRI, "endTime": FRI + D},
               {"type": "orders", "startTime": FRI, "endTime": FRI + D},
               {"type": "ORDERS", "endTime": FRI + D}, {"type": "ORDERS", "startTime": FRI},
               {"type": "ORDERS", "startTime": "yesterday", "endTime": FRI + D},
               {"type": "ORDERS", "startTime": True, "endTime": FRI + D},
               {"type": "ORDERS", "startTime": FRI + D, "endTime": FRI + D},
               {"type": "ORDERS", "startTime": FRI + D, "endTime": FRI}]
        for body in bad:
            status, obj, _ = f.call("POST", path, body)
            assert status == 400 and isinstance(obj.get("message"), str), (body, status, obj)
        eq(f.stats()["exports_created"], 0, "exports created")

    @check("create: 30 days accepted, 30 days + 1 ms -> 400 with Clover's message")
    def _():
        eq(f.post("ORDERS", FRI, FRI + 30 * D)[0], 200, "30 days")
        status, obj, _ = f.post("ORDERS", FRI, FRI + 30 * D + 1)
        eq((status, obj), (400, {"message": "The max time range for an export is 30 days"}))

    # ---- service hours ------------------------------------------------------
    def post_at(clock, **cfg):
        f.fresh(clock_ms=clock, **cfg)
        return f.post("ORDERS", FRI, FRI + D)

    @check("hours: us open 10:00-14:59 every day, 503 with the hours outside")
    def _():
        for at in (MON + 10 * H, MON + 15 * H - 1, SUN + 12 * H, SAT + 10 * H):
            eq(post_at(at, region="us")[0], 200, "open at %d" % at)
        for at in (MON + 10 * H - 1, MON + 15 * H, SUN + 3 * H):
            status, obj, _ = post_at(at, region="us")
            eq((status, obj["message"]), (503, "Export service is only available during these "
                                          "hours (UTC): MON-SUN 10:00-15:00"), "closed at %d" % at)

    @check("hours: eu MON-FRI 01-05, SAT 02-05, SUN 02-06")
    def _():
        cases = [(MON + 1 * H, 200), (MON + 5 * H, 503), (FRI + 4 * H + 59 * 60000, 200),
                 (SAT + 1 * H + 30 * 60000, 503), (SAT + 2 * H, 200), (SAT + 5 * H, 503),
                 (SUN + 5 * H + 30 * 60000, 200), (SUN + 6 * H, 503), (MON + 12 * H, 503)]
        for at, want in cases:
            status, obj, _ = post_at(at, region="eu")
            eq(status, want, "eu at %s" % time.strftime("%a %H:%M", time.gmtime(at / 1000)))
        assert "MON-FRI 01:00-05:00, SAT 02:00-05:00, SUN 02:00-06:00" in obj["message"]

    @check("hours: la like us, sandbox always")
    def _():
        eq(post_at(MON + 9 * H, region="la")[0], 503, "la 09:00")
        eq(post_at(MON + 11 * H, region="la")[0], 200, "la 11:00")
        eq(post_at(MON + 3 * H, region="sandbox")[0], 200, "sandbox 03:00")

    @check("hours: config hours overrides the region ('always' too)")
    def _():
        hours = "MON-FRI 10:00-15:00, SAT 10:00-15:00"
        status, obj, _ = post_at(SUN + 12 * H, region="us", hours=hours)
        eq(status, 503, "Sunday")
        assert hours in obj["message"], obj
        eq(post_at(SAT + 12 * H, region="us", hours=hours)[0], 200, "Saturday")
        eq(post_at(SUN + 3 * H, region="us", hours="always")[0], 200, "always")
        eq(f.call("POST", "/_admin/config", {"hours": "MON-XYZ 10:00"}, token=None)[0], 400,
           "bad hours")

    @check("hours: clock_offset_ms moves the running clock; closed_rejections counted")
    def _():
        now = int(time.time() * 1000)
        # shift "now" to 03:00 UTC of today, which us keeps closed
        offset = (now - now % D + 3 * H) - now
        f.fresh(region="us", clock_offset_ms=offset)
        eq(f.post("ORDERS", FRI, FRI + D)[0], 503)
        eq(f.stats()["closed_rejections"], 1)

    @check("hours: polls and downloads work outside the hours")
    def _():
        f.fresh(region="us", clock_ms=MON + 12 * H)
        _, obj, _ = f.post("ORDERS", FRI, FRI + D)
        done = f.wait(obj["id"])
        f.admin("POST", "config", {"clock_ms": MON + 20 * H})
        eq(f.poll(obj["id"])[0], 200, "poll")
        eq(f.get_url(done["exportUrls"]["elements"][0]["url"])[0], 200, "download")

    # ---- concurrency --------------------------------------------------------
    @check("concurrency: max_concurrent_exports running, then 503 busy, peak tracked")
    def _():
        f.fresh(max_concurrent_exports=2, queue_ms=400, processing_ms=0)
        eq(f.post("ORDERS", FRI, FRI + D)[0], 200, "first")
        eq(f.post("ORDERS", FRI, FRI + D)[0], 200, "second")
        status, obj, _ = f.post("ORDERS", FRI, FRI + D)
        eq((status, obj), (503, {"message": "Too many concurrent exports, please try again later"}))
        s = f.stats()
        eq((s["busy_rejections"], s["max_running_exports"], s["exports_created"]), (1, 2, 2))
        time.sleep(0.5)
        eq(f.post("ORDERS", FRI, FRI + D)[0], 200, "after the others finished")

    @check("concurrency: the limit is server-wide (all merchants, all tokens)")
    def _():
        f.fresh(max_concurrent_exports=1, queue_ms=2000,
                merchants={"SECOND0000001": {"region": "*"}})
        eq(f.post("ORDERS", FRI, FRI + D)[0], 200)
        eq(f.post("ORDERS", FRI, FRI + D, merchant="SECOND0000001", token="other-token")[0], 503)

    @check("concurrency: max_concurrent_exports 0 answers every POST busy")
    def _():
        f.fresh(max_concurrent_exports=0)
        for _ in range(3):
            status, obj, _ = f.post("ORDERS", FRI, FRI + D)
            eq((status, obj), (503, {"message": "Too many concurrent exports, please try "
                                                "again later"}))
        s = f.stats()
        eq((s["busy_rejections"], s["exports_created"], s["posts"]), (3, 0, 3), "counters")
        f.admin("POST", "config", {"max_concurrent_exports": 1})
        eq(f.post("ORDERS", FRI, FRI + D)[0], 200, "limit 1 again")

    # ---- polling and life cycle ---------------------------------------------
    @check("poll: PENDING, IN_PROGRESS with rising percentComplete, DONE 100")
    def _():
        f.fresh(queue_ms=200, processing_ms=800, clock_ms=MON)
        _, obj, _ = f.post("ORDERS", FRI, FRI + D)
        seen, last = [], -1
        for _ in range(300):
            _, p, _ = f.poll(obj["id"])
            assert p["percentComplete"] >= last, "percent went down"
            last = p["percentComplete"]
            seen.append((p["status"], p["percentComplete"]))
            if p["status"] == "DONE":
                break
            time.sleep(0.03)
        eq(seen[0], ("PENDING", 0), "first poll")
        mids = [pc for s, pc in seen if s == "IN_PROGRESS"]
        assert mids and len(set(mids)) >= 3 and all(0 <= pc < 100 for pc in mids), mids
        eq(seen[-1], ("DONE", 100), "last poll")

    @check("poll: processing_objects_per_s adds objects / rate to IN_PROGRESS")
    def _():
        f.fresh(queue_ms=0, processing_ms=100, processing_objects_per_s=10000,
                max_concurrent_exports=1, end_inclusive=False,
                merchants={MERCHANT: {"orders_per_day": 5000}})
        f.export("ORDERS", FRI, SAT)         # the files are generated and cached
        objects = f.expect("ORDERS", FRI, SAT)["count"]
        need = 0.1 + objects / 10000.0       # processing_ms + objects / rate
        assert need > 0.5, "too few objects to measure: %d" % objects
        t0 = time.monotonic()
        _, obj, _ = f.post("ORDERS", FRI, SAT)
        time.sleep(need / 2)
        _, half, _ = f.poll(obj["id"])
        eq(half["status"], "IN_PROGRESS", "status half way")
        assert 25 <= half["percentComplete"] <= 75, "percent half way: %r" % half
        eq(f.post("ORDERS", FRI, SAT)[0], 503, "its slot is taken while it processes")
        done = f.wait(obj["id"])
        took = time.monotonic() - t0
        eq(done["status"], "DONE")
        assert need <= took < need + 2, "DONE after %.2f s, want %.2f s" % (took, need)
        f.admin("POST", "config", {"processing_objects_per_s": 0})
        t0 = time.monotonic()
        f.export("ORDERS", FRI, SAT)
        assert time.monotonic() - t0 < need, "rate 0: processing_ms alone"

    @check("poll: DONE has availableUntil = fake now + 24 h and exportUrls")
    def _():
        f.fresh(clock_ms=MON + 5 * H)
        done = f.export("ORDERS", FRI, FRI + D)
        eq(done["availableUntil"], MON + 5 * H + D, "availableUntil")
        eq(done["createdTime"], MON + 5 * H, "createdTime")
        els = done["exportUrls"]["elements"]
        assert els, "no urls"
        for el in els:
            eq(set(el), {"url", "export"}, "element keys")
            eq(el["export"], {"id": done["id"]}, "export ref")
        eq(list(done)[:5], ["id", "type", "status", "percentComplete", "availableUntil"], "order")

    @check("poll: trailing slash; unknown id and another merchant's export -> 404")
    def _():
        f.fresh(merchants={"SECOND0000001": {"region": "*"}})
        _, obj, _ = f.post("ORDERS", FRI, FRI + D)
        status, _, _ = f.call("GET", "/v3/merchants/%s/exports/%s/" % (MERCHANT, obj["id"]))
        eq(status, 200, "trailing slash")
        eq(f.poll("AAAAAAAAAAAAA")[0], 404, "unknown id")
        eq(f.poll(obj["id"], merchant="SECOND0000001")[0], 404, "other merchant")
        eq(f.poll(obj["id"], token=None)[0], 401, "no token")

    @check("poll: the export stays queryable after expiry")
    def _():
        f.fresh(clock_ms=MON)
        done = f.export("ORDERS", FRI, FRI + D)
        f.admin("POST", "config", {"clock_ms": MON + 3 * D})
        status, obj, _ = f.poll(done["id"])
        eq((status, obj["status"]), (200, "DONE"))

    @check("poll: polls and max_polls_per_second counted")
    def _():
        f.fresh(queue_ms=5000)
        _, obj, _ = f.post("ORDERS", FRI, FRI + D)
        for _ in range(8):
            f.poll(obj["id"])
        s = f.stats()
        eq(s["polls"], 8, "polls")
        assert s["max_polls_per_second"] >= 8, s["max_polls_per_second"]
        eq(s["exports"][0]["polls"], 8, "per-export polls")

    @check("poll: peaks of concurrent requests and requests/s per token and per app counted")
    def _():
        f.fresh(queue_ms=5000)
        _, obj, _ = f.post("ORDERS", FRI, FRI + D)
        # 4 polls of test-token and 2 of other-token held 1 s at once: the
        # peak per token is 4, not 6
        f.admin("POST", "fault", {"kind": "delay", "target": "poll", "seconds": 1,
                                  "count": 6})
        tokens = ["test-token"] * 4 + ["other-token"] * 2
        threads = [threading.Thread(target=f.poll, args=(obj["id"],), kwargs={"token": t})
                   for t in tokens]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        s = f.stats()
        eq(s["max_concurrent_requests_per_token"], 4, "concurrent per token")
        # 1 POST + 4 polls of test-token within 1 s (the 2 of other-token apart)
        eq(s["max_requests_per_second_per_token"], 5, "per second per token")
        # the app's peaks count both tokens together: 6 held at once, and
        # the POST and 6 polls within 1 s
        eq(s["max_concurrent_requests_per_app"], 6, "concurrent per app")
        eq(s["max_requests_per_second_per_app"], 7, "per second per app")
        # after the held ones: 9 quick polls of test-token count 9 in 1 s,
        # one at a time
        f.admin("POST", "reset")
        f.admin("POST", "config", dict(FAST, queue_ms=5000))
        _, obj, _ = f.post("ORDERS", FRI, FRI + D, token="other-token")
        for _ in range(9):
            f.poll(obj["id"])
        s = f.stats()
        eq((s["max_concurrent_requests_per_token"], s["max_requests_per_second_per_token"]),
           (1, 9), "sequential polls")
        eq((s["max_concurrent_requests_per_app"], s["max_requests_per_second_per_app"]),
           (1, 10), "sequential polls, per app")

    # ---- files ---------------------------------------------------------------
    @check("files: pre-signed URLs on the file host, no token needed, JSON elements")
    def _():
        f.fresh(file_host="127.0.0.1")
        done = f.export("ORDERS", FRI, FRI + D)
        url = done["exportUrls"]["elements"][0]["url"]
        u = urllib.parse.urlsplit(url)
        eq((u.scheme, u.hostname, u.port), ("http", "127.0.0.1", f.files), "url")
        assert re.match(r"^/exports/%s/1\.json$" % done["id"], u.path), u.path
        q = urllib.parse.parse_qs(u.query)
        eq(q["Expires"], [str(done["availableUntil"])], "Expires")
        assert re.match(r"^[0-9a-f]{64}$", q["Signature"][0])
        status, headers, body = f.get_url(url)
        eq(status, 200)
        eq(int(headers["Content-Length"]), len(body), "Content-Length")
        assert isinstance(json.loads(body)["elements"], list)

    @check("files: file_host config is used in the URLs")
    def _():
        f.fresh(file_host="localhost")
        done = f.export("ORDERS", FRI, FRI + D)
        eq(urllib.parse.urlsplit(done["exportUrls"]["elements"][0]["url"]).hostname, "localhost")

    @check("files: file_url_scheme is written verbatim (ftp, file, gopher, https, \"\")")
    def _():
        for scheme in ("ftp", "file", "gopher", "https", ""):
            f.fresh(file_url_scheme=scheme)
            url = f.export("ORDERS", FRI, FRI + D)["exportUrls"]["elements"][0]["url"]
            assert url.startswith("%s://127.0.0.1:%d/exports/" % (scheme, f.files)), url
            # the file host itself still speaks plain http here
            eq(f.get_url("http" + url[len(scheme):])[0], 200, "download of %s URL" % scheme)
        eq(f.call("POST", "/_admin/config", {"file_url_scheme": 5}, token=None)[0], 400,
           "not a string")
        f.admin("POST", "reset")
        eq(f.admin("GET", "config")["file_url_scheme"], "http", "reset restores http")

    @check("files: file_url_form query (no path) and file_url_query_prefix")
    def _():
        prefix = "X-Amz-Credential=AKIAEXAMPLE/20240101/us-east-1/s3/aws4_request&"
        f.fresh(file_url_form="query", file_url_query_prefix=prefix)
        done = f.export("ORDERS", FRI, FRI + D)
        url = done["exportUrls"]["elements"][0]["url"]
        u = urllib.parse.urlsplit(url)
        eq(u.path, "", "no path")
        assert u.query.startswith("key=/exports/%s/1.json&%sExpires=" % (done["id"], prefix)), url
        status, _, body = f.get_url(url)
        eq(status, 200, "download")
        assert isinstance(json.loads(body)["elements"], list)
        eq(f.get_url(url[:-4] + "0000")[0], 403, "wrong signature")
        for bad in ({"file_url_form": "both"}, {"file_url_query_prefix": 5}):
            eq(f.call("POST", "/_admin/config", bad, token=None)[0], 400, repr(bad))
        f.fresh(file_url_query_prefix="a=1&")
        url = f.export("ORDERS", FRI, FRI + D)["exportUrls"]["elements"][0]["url"]
        assert "/1.json?a=1&Expires=" in url, url
        eq(f.get_url(url)[0], 200, "download with a prefix")

    @check("files: missing or wrong signature -> 403")
    def _():
        f.fresh()
        done = f.export("ORDERS", FRI, FRI + D)
        url = done["exportUrls"]["elements"][0]["url"]
        u = urllib.parse.urlsplit(url)
        eq(f.request("GET", u.path, port=f.files)[0], 403, "missing")
        eq(f.get_url(url[:-4] + "0000")[0], 403, "wrong")
        later = re.sub(r"Expires=(\d+)", lambda m: "Expires=%d" % (int(m.group(1)) + D), url)
        eq(f.get_url(later)[0], 403, "changed Expires")

    @check("files: deleted after availableUntil: 404, or expired_status 410 / 403")
    def _():
        f.fresh(clock_ms=MON)
        done = f.export("ORDERS", FRI, FRI + D)
        url = done["exportUrls"]["elements"][0]["url"]
        f.admin("POST", "config", {"clock_ms": done["availableUntil"]})
        eq(f.get_url(url)[0], 200, "at availableUntil")
        f.admin("POST", "config", {"clock_ms": done["availableUntil"] + 1})
        eq(f.get_url(url)[0], 404, "after")
        for st in (410, 403):
            f.admin("POST", "config", {"expired_status": st})
            eq(f.get_url(url)[0], st, "expired_status %d" % st)

    @check("files: objects_per_file splits, values above 1000 clamp to 1000")
    def _():
        f.fresh(objects_per_file=40)
        files = f.objects(f.export("ORDERS", FRI, FRI + D))
        assert len(files) > 2 and all(len(x) <= 40 for x in files[:-1]), [len(x) for x in files]
        assert all(len(x) == 40 for x in files[:-1]), "files not full"
        f.admin("POST", "config", {"objects_per_file": 5000})
        eq(f.admin("GET", "config")["objects_per_file"], 1000, "clamped")
        f.admin("POST", "config", {"merchants": {MERCHANT: {"orders_per_day": 3000}}})
        files = f.objects(f.export("ORDERS", FRI, FRI + D))
        eq([len(x) for x in files[:-1]], [1000] * (len(files) - 1), "full files of 1000")

    @check("files: sorted by createdTime; shuffle is a deterministic permutation")
    def _():
        f.fresh(objects_per_file=50)
        plain = [o for x in f.objects(f.export("ORDERS", FRI, FRI + D)) for o in x]
        times = [o["createdTime"] for o in plain]
        eq(times, sorted(times), "sorted")
        f.admin("POST", "config", {"shuffle": True})
        mixed = [o for x in f.objects(f.export("ORDERS", FRI, FRI + D)) for o in x]
        again = [o for x in f.objects(f.export("ORDERS", FRI, FRI + D)) for o in x]
        assert [o["createdTime"] for o in mixed] != times, "not shuffled"
        eq(sorted(o["id"] for o in mixed), sorted(o["id"] for o in plain), "same objects")
        eq([o["id"] for o in mixed], [o["id"] for o in again], "deterministic")

    @check("files: an export with no objects has exportUrls.elements = []")
    def _():
        f.fresh()
        done = f.export("ORDERS", FRI - 500 * D, FRI - 490 * D)   # before data_start
        eq((done["status"], done["exportUrls"]), ("DONE", {"elements": []}))

    @check("files: identical window reuses the cached files")
    def _():
        f.fresh()
        before = set(os.listdir(f.data_dir))
        a = f.objects(f.export("ORDERS", SUN, SUN + D))
        middle = set(os.listdir(f.data_dir))
        b = f.objects(f.export("ORDERS", SUN, SUN + D))
        eq(len(middle - before), 1, "one new file set")
        eq(set(os.listdir(f.data_dir)), middle, "no new file set")
        eq(a, b, "same content")

    @check("files: downloads, file_bytes and per-export counters")
    def _():
        f.fresh()
        done = f.export("ORDERS", FRI, FRI + D)
        _, _, body = f.get_url(done["exportUrls"]["elements"][0]["url"])
        s = f.stats()
        eq((s["file_downloads"], s["file_bytes"]), (1, len(body)))
        eq((s["exports"][0]["files"], s["exports"][0]["downloads"]), (1, 1), "per export")

    @check("files: HEAD answers as the file host would, with GET's headers and no body")
    def _():
        f.fresh()
        done = f.export("ORDERS", FRI, FRI + D)
        u = urllib.parse.urlsplit(done["exportUrls"]["elements"][0]["url"])
        status, headers, body = f.request("HEAD", u.path + "?" + u.query, port=u.port)
        _, _, full = f.get_url(done["exportUrls"]["elements"][0]["url"])
        eq((status, int(headers["Content-Length"]), body), (200, len(full), b""))
        status, _, _ = f.request("DELETE", u.path + "?" + u.query, port=u.port)
        eq(status, 405, "other methods")

    # ---- window content -------------------------------------------------------
    @check("window: end_inclusive=true includes an object exactly at endTime")
    def _():
        f.fresh(end_inclusive=True)
        objs = [o for x in f.objects(f.export("ORDERS", FRI, SAT)) for o in x]
        times = [o["createdTime"] for o in objs]
        eq((times[0], times[-1]), (FRI, SAT), "first and last")
        e = f.expect("ORDERS", FRI, SAT, ids=True)
        eq(sorted(o["id"] for o in objs if o["createdTime"] < SAT), e["ids"], "rest = expect")

    @check("window: end_inclusive=false is half-open and equals expect")
    def _():
        f.fresh(end_inclusive=False)
        objs = [o for x in f.objects(f.export("ORDERS", FRI, SAT)) for o in x]
        e = f.expect("ORDERS", FRI, SAT)
        eq(len(objs), e["count"], "count")
        eq(md5_ids(o["id"] for o in objs), e["ids_md5"], "ids")
        eq(sum(o["total"] for o in objs), e["sum"], "sum")
        eq(objs[0]["createdTime"], FRI, "starts at the midnight order")

    @check("window: nothing after the fake now; lag_ms hides the most recent data")
    def _():
        now = FRI + 10 * H + 1234
        f.fresh(clock_ms=now)
        objs = [o for x in f.objects(f.export("ORDERS", FRI, FRI + D)) for o in x]
        assert max(o["createdTime"] for o in objs) <= now, "object after now"
        assert max(o["createdTime"] for o in objs) > now - H, "recent data missing"
        f.admin("POST", "config", {"lag_ms": 2 * H})
        objs = [o for x in f.objects(f.export("ORDERS", FRI, FRI + D)) for o in x]
        assert max(o["createdTime"] for o in objs) <= now - 2 * H, "lag not applied"

    @check("window: payments reference generated orders, same hour, not earlier")
    def _():
        f.fresh(end_inclusive=False)
        orders = {o["id"]: o for x in f.objects(f.export("ORDERS", FRI, SAT)) for o in x}
        pays = [p for x in f.objects(f.export("PAYMENTS", FRI, SAT)) for p in x]
        assert pays, "no payments"
        for p in pays:
            o = orders.get(p["order"]["id"])
            assert o is not None, "payment %s of unknown order" % p["id"]
            bucket_end = o["createdTime"] - o["createdTime"] % H + H
            assert o["createdTime"] <= p["createdTime"] < bucket_end, "payment time"
        per = {}
        for p in pays:
            per[p["order"]["id"]] = per.get(p["order"]["id"], 0) + 1
        assert max(per.values()) == 2 and len(per) < len(orders), "0-2 payments per order"
        e = f.expect("PAYMENTS", FRI, SAT)
        eq((len(pays), sum(p["amount"] for p in pays)), (e["count"], e["sum"]), "expect")

    # ---- data --------------------------------------------------------------------
    f.fresh(end_inclusive=False)
    week = [o for x in f.objects(f.export("ORDERS", FRI, FRI + 7 * D)) for o in x]

    @check("data: exactly one order and one payment at every UTC midnight")
    def _():
        for day in range(7):
            at = FRI + day * D
            eq(sum(o["createdTime"] == at for o in week), 1, "orders at midnight %d" % day)
        pays = [p for x in f.objects(f.export("PAYMENTS", FRI, FRI + 7 * D)) for p in x]
        for day in range(7):
            at = FRI + day * D
            eq(sum(p["createdTime"] == at for p in pays), 1, "payments at midnight %d" % day)
        assert all(p["createdTime"] % D or p["createdTime"] in range(FRI, FRI + 7 * D, D)
                   for p in pays)

    @check("data: order fields, ids, totals, times")
    def _():
        for o in week:
            missing = ORDER_FIELDS - set(o)
            assert not missing, "missing %s" % missing
            assert re.match(CLOVER_ID, o["id"]), o["id"]
            lines = o["lineItems"]["elements"]
            assert 1 <= len(lines) <= 6
            eq(o["total"], sum(li["price"] * li["unitQty"] // 1000 for li in lines), "total")
            assert o["clientCreatedTime"] <= o["createdTime"] <= o["modifiedTime"]
            eq(o["currency"], "USD")
        eq(len({o["id"] for o in week}), len(week), "unique ids")
        size = sum(len(json.dumps(o, ensure_ascii=False).encode()) for o in week) / len(week)
        assert 800 < size < 1500, "average size %d" % size

    @check("data: optional fields both null and absent; varied states")
    def _():
        for k in ("note", "title", "employee", "device", "state", "externalReferenceId"):
            assert any(k not in o for o in week), "%s never absent" % k
            assert any(k in o and o[k] is None for o in week), "%s never null" % k
            assert any(o.get(k) is not None for o in week), "%s never set" % k
        eq({o.get("state") for o in week}, {"open", "OPEN", "locked", None}, "states")
        assert len({o["paymentState"] for o in week}) >= 5

    @check("data: texts include accents, CJK, emoji, quotes, backslashes, newlines, tabs")
    def _():
        texts = "".join(str(o.get("note")) + str(o.get("title")) for o in week)
        for needle in ("é", "请", "🎂", '"', "\\", "\n", "\t"):
            assert needle in texts, "no %r" % needle

    @check("data: payment fields; cardTransaction for cards, cashTendered for cash")
    def _():
        pays = [p for x in f.objects(f.export("PAYMENTS", FRI, SAT)) for p in x]
        for p in pays:
            assert not PAYMENT_FIELDS - set(p), PAYMENT_FIELDS - set(p)
            key = p["tender"]["labelKey"]
            eq("cardTransaction" in p, key.endswith(("credit_card", "debit_card")), "card")
            eq("cashTendered" in p, p["tender"]["labelKey"].endswith(".cash"), "cashTendered")
        assert {p["result"] for p in pays} >= {"SUCCESS"} and len({p["result"] for p in pays}) > 1

    @check("data: orders_per_day scales the volume (5000/day)")
    def _():
        f.admin("POST", "config", {"merchants": {MERCHANT: {"orders_per_day": 5000}}})
        e = f.expect("ORDERS", FRI, FRI + 7 * D)
        assert 0.85 * 35000 < e["count"] < 1.15 * 35000, e["count"]
        f.admin("POST", "config", {"merchants": {MERCHANT: {"orders_per_day": 150}}})

    @check("data: deterministic per seed; another seed gives other data")
    def _():
        a = f.expect("ORDERS", FRI, SAT)
        eq(f.expect("ORDERS", FRI, SAT), a, "same twice")
        other = Instance("--seed", "7")
        try:
            same = Instance("--seed", "42", data_dir=False)
            try:
                eq(same.expect("ORDERS", FRI, SAT), a, "same seed, other process")
            finally:
                same.stop()
            assert other.expect("ORDERS", FRI, SAT)["ids_md5"] != a["ids_md5"], "seed ignored"
        finally:
            other.stop()

    # ---- expect ----------------------------------------------------------------
    @check("expect: half-open, ms or ISO-8601, ids=1, independent of end_inclusive")
    def _():
        f.fresh(end_inclusive=True, lag_ms=10 * D)
        a = f.expect("ORDERS", FRI, SAT, ids=True)
        b = f.expect("ORDERS", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00.000Z")
        eq({k: a[k] for k in b}, b, "ms = ISO")
        eq(a["ids"], sorted(a["ids"]), "sorted ids")
        eq(md5_ids(a["ids"]), a["ids_md5"], "md5")
        eq(a["min_created"], FRI, "min")
        assert a["max_created"] < SAT
        eq(f.expect("ORDERS", FRI, SAT + 1)["count"], a["count"] + 1, "edge at SAT")
        eq(f.expect("ORDERS", FRI + 1, SAT)["count"], a["count"] - 1, "edge at FRI")
        empty = f.expect("ORDERS", FRI, FRI)
        eq((empty["count"], empty["min_created"], empty["sum"]), (0, None, 0), "empty")
        eq(f.call("GET", "/_admin/expect?type=X&merchant=%s&start=1&end=2" % MERCHANT,
                  token=None)[0], 400, "bad type")

    @check("expect: fakectl expect prints one JSON line, or one field")
    def _():
        env = dict(os.environ, FAKE_CLOVER_ADMIN="http://127.0.0.1:%d/_admin" % f.api)
        out = subprocess.run([sys.executable, FAKECTL, "expect", "ORDERS", MERCHANT,
                              "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"], env=env,
                             capture_output=True, text=True, check=True).stdout
        eq(out.count("\n"), 1, "one line")
        eq(json.loads(out), f.expect("ORDERS", FRI, SAT), "content")
        out = subprocess.run([sys.executable, FAKECTL, "expect", "ORDERS", MERCHANT, str(FRI),
                              str(SAT), "count"], env=env, capture_output=True, text=True,
                             check=True).stdout
        eq(out, "%d\n" % json.loads(out), "field")

    # ---- /v1 ---------------------------------------------------------------------
    f.fresh()

    def v1(path, token="test-token"):
        return f.call("GET", path, token=token)[:2]

    v1_expect = {"orders": "ECOMMERCE_ORDERS", "charges": "CHARGES", "refunds": "REFUNDS"}
    # ranges of several pages of 100: about 480 orders, 530 charges, 150 refunds
    v1_range = {"orders": (FRI, FRI + 3 * D), "charges": (FRI, FRI + 3 * D),
                "refunds": (FRI, FRI + 20 * D)}

    def v1_page_all(kind, lo, hi, limit, cursor_param="starting_after"):
        """Page created in [lo, hi) as FAKE.md says a correct client must:
        next cursor = the last id of the page, de-duplicate by id, stop when
        has_more is false; a page with has_more that adds no new id cannot
        advance (returned as stuck=True).  Returns (ids, objects, pages, stuck)."""
        seen, objs, pages, cursor = set(), [], [], None
        while len(pages) < 5000:
            q = "/v1/%s?limit=%d&created.gt=%d&created.lt=%d" % (kind, limit, lo - 1, hi)
            if cursor:
                q += "&%s=%s" % (cursor_param, cursor)
            status, body = v1(q)
            eq(status, 200, "page %d: %s" % (len(pages) + 1, body))
            pages.append(body)
            new = [o for o in body["data"] if o["id"] not in seen]
            seen |= {o["id"] for o in new}
            objs += new
            if not body["has_more"]:
                return seen, objs, pages, False
            if not new:
                return seen, objs, pages, True
            cursor = body["data"][-1]["id"]
        raise AssertionError("no end after 5000 pages")

    @check("v1: defaults: cursor included, order unsorted, limit over 100 clamped")
    def _():
        cfg = f.admin("GET", "config")
        eq((cfg["v1_cursor"], cfg["v1_order"], cfg["v1_limit_over_max"]),
           ("included", "unsorted", "clamp"))
        for key, bad in (("v1_cursor", "both"), ("v1_order", "oldest_first"),
                         ("v1_limit_over_max", 100)):
            eq(f.call("POST", "/_admin/config", {key: bad}, token=None)[0], 400, key)

    @check("v1: list shape, default limit 10, has_more")
    def _():
        status, body = v1("/v1/orders")
        eq(status, 200)
        eq((set(body), body["object"], body["url"], body["has_more"], len(body["data"])),
           ({"object", "url", "has_more", "data"}, "list", "/v1/orders", True, 10))
        for kind in ("charges", "refunds"):
            eq(v1("/v1/%s" % kind)[1]["url"], "/v1/" + kind, kind)

    @check("v1: newest_first is created descending; unsorted is not sorted but stable")
    def _():
        f.fresh(v1_order="newest_first")
        q = "/v1/charges?limit=100&created.gt=%d&created.lt=%d" % (FRI - 1, SAT)
        created = [o["created"] for o in v1(q)[1]["data"]]
        eq(created, sorted(created, reverse=True), "newest first")
        f.fresh()
        page = v1(q)[1]["data"]
        created = [o["created"] for o in page]
        assert created != sorted(created, reverse=True) and created != sorted(created), \
            "unsorted page is sorted"
        eq(v1(q)[1]["data"], page, "the same page again")
        q = "/v1/charges?limit=100&created.gt=%d&created.lt=%d" % (SAT - 4 * H - 1, SAT + 4 * H)
        days = [o["created"] // D for o in v1(q)[1]["data"]]
        eq((days, len(set(days))), (sorted(days, reverse=True), 2), "days newest first")

    @check("v1: limit 100 over several pages: every object once, both readings x orders")
    def _():
        for reading in ("included", "excluded"):
            for order in ("newest_first", "unsorted"):
                f.fresh(v1_cursor=reading, v1_order=order)
                for kind, (lo, hi) in v1_range.items():
                    what = "%s %s %s" % (reading, order, kind)
                    ids, objs, pages, stuck = v1_page_all(kind, lo, hi, 100)
                    e = f.expect(v1_expect[kind], lo, hi, ids=True)
                    eq((stuck, sorted(ids)), (False, e["ids"]), what + ": ids = expect")
                    eq(sum(o["amount"] for o in objs), e["sum"], what + ": sum = expect")
                    assert len(pages) >= 2, "%s: %d pages" % (what, len(pages))
                    assert all(lo <= o["created"] < hi for o in objs), what + ": range"
                    received = sum(len(p["data"]) for p in pages)
                    dups = received - len(ids)
                    for prev, page in zip(pages, pages[1:]):
                        first_is_cursor = page["data"][0]["id"] == prev["data"][-1]["id"]
                        eq(first_is_cursor, reading == "included", what + ": cursor first")
                    eq(dups, len(pages) - 1 if reading == "included" else 0, what + ": dups")
                    eq([p["has_more"] for p in pages], [True] * (len(pages) - 1) + [False],
                       what + ": has_more")
                    eq([len(p["data"]) for p in pages[:-1]], [100] * (len(pages) - 1),
                       what + ": full pages")

    @check("v1: limit 1 and 2: excluded advances by 1; included needs 2 (1 never advances)")
    def _():
        lo, hi = FRI, FRI + 6 * H
        for order in ("newest_first", "unsorted"):
            e = f.expect("ECOMMERCE_ORDERS", lo, hi, ids=True)
            assert e["count"] >= 5, e["count"]
            f.fresh(v1_cursor="excluded", v1_order=order)
            ids, _, pages, stuck = v1_page_all("orders", lo, hi, 1)
            eq((stuck, sorted(ids), len(pages)), (False, e["ids"], e["count"]),
               order + ": excluded, limit 1")
            f.fresh(v1_cursor="included", v1_order=order)
            ids, _, pages, stuck = v1_page_all("orders", lo, hi, 2)
            eq((stuck, sorted(ids), len(pages)), (False, e["ids"], e["count"] - 1),
               order + ": included, limit 2")
            ids, _, pages, stuck = v1_page_all("orders", lo, hi, 1)
            eq((stuck, len(ids), len(pages)), (True, 1, 2), order + ": included, limit 1")
            eq((pages[1]["data"], pages[1]["has_more"]), (pages[0]["data"], True),
               order + ": the cursor alone, has_more")

    @check("v1: has_more exactly when more objects lie beyond the page, both directions")
    def _():
        lo, hi = FRI, FRI + 6 * H
        n = f.expect("CHARGES", lo, hi)["count"]
        rng = "&created.gt=%d&created.lt=%d" % (lo - 1, hi)
        for reading in ("included", "excluded"):
            for order in ("newest_first", "unsorted"):
                f.fresh(v1_cursor=reading, v1_order=order)
                what = reading + " " + order
                full = v1("/v1/charges?limit=%d%s" % (n, rng))[1]
                eq((len(full["data"]), full["has_more"]), (n, False), what + ": limit n")
                eq(v1("/v1/charges?limit=%d%s" % (n - 1, rng))[1]["has_more"], True,
                   what + ": limit n-1")
                first, last = full["data"][0]["id"], full["data"][-1]["id"]
                inc = reading == "included"
                for param, cursor, rest in (("starting_after", last, []),
                                            ("ending_before", first, []),
                                            ("starting_after", first, full["data"][1:]),
                                            ("ending_before", last, full["data"][-2::-1])):
                    page = v1("/v1/charges?limit=%d%s&%s=%s" % (n, rng, param, cursor))[1]
                    want = [cursor] * inc + [o["id"] for o in rest]
                    eq([o["id"] for o in page["data"]], want[:n], what + " " + param)
                    eq(page["has_more"], len(want) > n, what + " " + param + " has_more")
                page = v1("/v1/charges?limit=2%s&ending_before=%s" % (rng, last))[1]
                eq(page["has_more"], True, what + ": ending_before, more before")

    @check("v1: ending_before walks back from the cursor, nearest first")
    def _():
        for reading in ("included", "excluded"):
            for order in ("newest_first", "unsorted"):
                f.fresh(v1_cursor=reading, v1_order=order)
                data = v1("/v1/orders?limit=10")[1]["data"]
                page = v1("/v1/orders?limit=3&ending_before=" + data[5]["id"])[1]
                want = [data[i]["id"] for i in ((5, 4, 3) if reading == "included" else (4, 3, 2))]
                eq(([o["id"] for o in page["data"]], page["has_more"]), (want, True),
                   reading + " " + order)

    @check("v1: created.gt and created.lt are strict")
    def _():
        f.fresh()
        for kind in ("orders", "charges"):     # the midnight edge: one of each at FRI
            def ids(gt, lt):
                return [o["created"] for o in
                        v1("/v1/%s?created.gt=%d&created.lt=%d" % (kind, gt, lt))[1]["data"]]
            eq(ids(FRI - 1, FRI + 1), [FRI], kind + ": gt=t-1, lt=t+1")
            eq(ids(FRI, FRI + 1), [], kind + ": gt=t")
            eq(ids(FRI - 1, FRI), [], kind + ": lt=t")
            eq(ids(FRI + 1, FRI - 1), [], kind + ": empty range")
        e = f.expect("ECOMMERCE_ORDERS", FRI, FRI + 1, ids=True)
        eq((e["count"], e["min_created"]), (1, FRI), "expect [FRI, FRI+1)")
        eq(f.expect("CHARGES", FRI + 1, FRI + H)["count"] + 1,
           f.expect("CHARGES", FRI, FRI + H)["count"], "expect is half-open")

    @check("v1: limit over 100 clamped (or 400 with v1_limit_over_max=error); bad params 400")
    def _():
        f.fresh()
        eq([len(v1("/v1/charges?limit=%s" % n)[1]["data"]) for n in (100, 101, 5000)],
           [100, 100, 100], "clamped")
        s = f.stats()
        eq((s["v1_max_limit"], s["v1_bad_requests"]), (5000, 0), "stats")
        bad = [("limit=0", "limit"), ("limit=-1", "limit"), ("limit=ten", "limit"),
               ("limit=", "limit"), ("limit=1.5", "limit"), ("created.gt=yesterday", "created.gt"),
               ("created.lt=1.7e12", "created.lt"), ("created.gt=", "created.gt"),
               ("starting_after=", "starting_after"),
               ("starting_after=A&ending_before=B", "ending_before")]
        for query, param in bad:
            status, body = v1("/v1/orders?" + query)
            eq(status, 400, query)
            eq((set(body), set(body["error"]), body["error"]["type"], body["error"]["code"],
                body["error"]["param"]),
               ({"error"}, {"type", "code", "message", "param"}, "invalid_request_error",
                "parameter_invalid", param), query)
            assert body["error"]["message"], query
        eq(f.stats()["v1_bad_requests"], len(bad), "v1_bad_requests")
        f.fresh(v1_limit_over_max="error")
        eq(len(v1("/v1/orders?limit=100")[1]["data"]), 100, "100 is fine")
        status, body = v1("/v1/orders?limit=101")
        eq((status, body["error"]["param"], body["error"]["code"]),
           (400, "limit", "parameter_invalid"), "101 with error")

    @check("v1: 401 and 404 in the /v1 error shape")
    def _():
        f.fresh()
        for what, path, token in (("no token", "/v1/orders", None),
                                  ("unknown token", "/v1/charges", "nosuch-token"),
                                  ("no merchant", "/v1/refunds", "noperm-token"),
                                  ("query token", "/v1/orders?access_token=test-token",
                                   "test-token")):
            status, body = v1(path, token=token)
            eq((status, body), (401, {"error": {"type": "authentication_error",
                                                "code": "unauthorized",
                                                "message": "401 Unauthorized"}}), what)
        eq(f.stats()["auth_failures"], 4, "auth_failures")
        f.fresh(v1_merchant=EU_MERCHANT)       # an EU merchant on the sandbox host
        status, body = v1("/v1/orders")
        eq((status, body["error"]["code"]), (404, "resource_missing"), "merchant elsewhere")

    @check("v1: any existing id is a cursor; unknown ids get 400 naming the param")
    def _():
        f.fresh(v1_cursor="excluded", data_start_ms=FRI, clock_ms=FRI + 3 * D)
        lo, hi = FRI, FRI + 2 * D
        rng = "&created.gt=%d&created.lt=%d" % (lo - 1, hi)
        # ids never listed: from expect (a v1 order is an export order too)
        for kind, et in (("charges", "CHARGES"), ("orders", "ORDERS"),
                         ("refunds", "REFUNDS")):
            ids = f.expect(et, FRI + D, FRI + 2 * D, ids=True)["ids"]
            cursor = ids[len(ids) // 2]
            status, body = v1("/v1/%s?limit=100%s&starting_after=%s" % (kind, rng, cursor))
            eq(status, 200, kind + ": unlisted cursor")
            after = [o["id"] for o in body["data"]]
            status, body = v1("/v1/%s?limit=100%s&ending_before=%s" % (kind, rng, cursor))
            before = [o["id"] for o in body["data"]]
            all_ids = set(f.expect(v1_expect[kind], lo, hi, ids=True)["ids"])
            assert cursor not in after + before, kind + ": excluded cursor returned"
            assert not set(after) & set(before), kind + ": before and after overlap"
            if len(all_ids) <= 100:
                eq(set(after) | set(before) | {cursor}, all_ids, kind + ": both sides")
        charge = f.expect("CHARGES", FRI, FRI + D, ids=True)["ids"][0]
        for what, path, param in (
                ("unknown", "/v1/orders?starting_after=NOSUCHORDER00", "starting_after"),
                ("unknown", "/v1/charges?ending_before=NOSUCHCHARGE", "ending_before"),
                ("another list's id", "/v1/orders?starting_after=" + charge, "starting_after"),
                ("another list's id", "/v1/refunds?ending_before=" + charge, "ending_before")):
            status, body = v1(path)
            eq((status, body["error"]["code"], body["error"]["param"]),
               (400, "resource_missing", param), what)
        # an object created after the fake now does not exist (yet)
        f.admin("POST", "config", {"clock_ms": FRI + 4 * D})
        late = sorted(set(f.expect("CHARGES", FRI + 3 * D + H, FRI + 4 * D, ids=True)["ids"]))
        eq(v1("/v1/charges?starting_after=" + late[0])[0], 200, "exists at +4 d")
        f.admin("POST", "config", {"clock_ms": FRI + 3 * D})
        eq(v1("/v1/charges?starting_after=" + late[0])[0], 400, "not yet at +3 d")

    @check("v1: objects: the documented fields; charges and refunds agree")
    def _():
        f.fresh()
        lo, hi = FRI, FRI + 20 * D
        _, refunds, _, _ = v1_page_all("refunds", lo, hi, 100)
        _, charges, _, _ = v1_page_all("charges", lo, hi, 100)
        _, orders, _, _ = v1_page_all("orders", FRI, SAT, 100)
        by_id = {c["id"]: c for c in charges}
        payments = set(f.expect("PAYMENTS", lo, hi, ids=True)["ids"])
        eq(set(by_id), payments, "charges are the payments")
        order_ids = set(f.expect("ORDERS", lo - D, hi, ids=True)["ids"])
        for c in charges:
            assert {"id", "amount", "currency", "created", "order", "refunded",
                    "amount_refunded", "status", "paid", "captured"} <= set(c), c
            assert re.match(CLOVER_ID, c["id"]) and c["order"] in order_ids, c
        for r in refunds:
            assert {"id", "amount", "currency", "created", "charge"} <= set(r), r
            c = by_id[r["charge"]]
            eq((c["amount_refunded"], c["refunded"]), (r["amount"], r["amount"] == c["amount"]),
               "charge of refund " + r["id"])
            assert c["created"] <= r["created"] < c["created"] // H * H + H, r
        eq(sum(c["amount_refunded"] for c in charges if c["created"] < hi - H),
           sum(r["amount"] for r in refunds if by_id[r["charge"]]["created"] < hi - H),
           "amount_refunded = refunds")
        assert any(c["refunded"] for c in charges) and any(
            0 < c["amount_refunded"] < c["amount"] for c in charges), "both refund kinds"
        charge_of = {c["order"]: c["id"] for c in charges}
        for o in orders:
            assert {"id", "amount", "currency", "created", "items"} <= set(o), o
            assert isinstance(o["items"], list) and o["items"], o
            eq(sum(i["amount"] for i in o["items"]), o["amount"], "items add up")
            if "charge" in o:
                eq(by_id[o["charge"]]["order"], o["id"], "order's charge")
        assert any("charge" not in o for o in orders) and len(charge_of) > 0

    @check("v1: fakectl expect CHARGES/REFUNDS/ECOMMERCE_ORDERS")
    def _():
        env = dict(os.environ, FAKE_CLOVER_ADMIN="http://127.0.0.1:%d/_admin" % f.api)
        for kind in ("CHARGES", "REFUNDS", "ECOMMERCE_ORDERS"):
            out = subprocess.run([sys.executable, FAKECTL, "expect", kind, MERCHANT, str(FRI),
                                  str(SAT)], env=env, capture_output=True, text=True,
                                 check=True).stdout
            eq(json.loads(out), f.expect(kind, FRI, SAT), kind)
        eq(f.call("GET", "/_admin/expect?type=CHARGE&merchant=%s&start=1&end=2" % MERCHANT,
                  token=None)[0], 400, "unknown type")

    @check("v1: stats: v1_requests, v1_pages per list, v1_max_limit, v1_bad_requests")
    def _():
        f.fresh()
        for path in ("/v1/orders", "/v1/orders?limit=7", "/v1/charges?limit=3",
                     "/v1/refunds?limit=x"):
            v1(path)
        v1("/v1/orders", token=None)
        s = f.stats()
        eq((s["v1_requests"], s["v1_pages"], s["v1_max_limit"], s["v1_bad_requests"]),
           (5, {"orders": 2, "charges": 1, "refunds": 0}, 7, 1), "stats")

    @check("v1: faults with target v1: 429 + Retry-After, 5xx, dropped connection")
    def _():
        f.fresh()
        f.admin("POST", "fault", {"kind": "status", "target": "v1", "status": 429,
                                  "retry_after": 2})
        status, body, headers = f.call("GET", "/v1/charges")
        eq((status, headers["Retry-After"]), (429, "2"), "429")
        eq(f.call("GET", "/v1/charges")[0], 429, "early retry")
        eq(f.call("GET", "/v1/charges", token="other-token")[0], 200, "other token")
        f.admin("POST", "fault", {"kind": "status", "target": "v1", "status": 503})
        eq(v1("/v1/refunds", token="other-token")[0], 503, "503")
        f.admin("POST", "fault", {"kind": "drop", "target": "v1"})
        data, _ = raw_exchange(f.api, b"GET /v1/orders HTTP/1.1\r\nHost: x\r\n"
                               b"Authorization: Bearer other-token\r\n\r\n")
        eq(data, b"", "dropped")
        eq(v1("/v1/orders", token="other-token")[0], 200, "served again")
        s = f.stats()
        eq((s["faults_fired"], s["early_retries"], s["v1_pages"]["orders"]), (3, 1, 1), "stats")

    # ---- admin --------------------------------------------------------------------
    @check("admin: stats has every documented counter; admin calls are not counted")
    def _():
        f.fresh()
        s = f.stats()
        for k in ("requests_total", "posts", "exports_created", "polls", "file_downloads",
                  "file_bytes", "v1_requests", "auth_failures", "busy_rejections",
                  "closed_rejections", "rate_limited", "early_retries", "faults_fired",
                  "token_on_file_host", "max_running_exports", "max_polls_per_second",
                  "max_concurrent_requests_per_token", "max_requests_per_second_per_token",
                  "max_concurrent_requests_per_app", "max_requests_per_second_per_app",
                  "exports"):
            assert k in s, k
        f.admin("GET", "config")
        eq(f.stats()["requests_total"], 0, "requests_total")

    @check("admin: posts counts every POST to the exports endpoint, polls every status GET")
    def _():
        f.fresh(max_concurrent_exports=1, queue_ms=5000)
        answers = [f.post("ORDERS", FRI, FRI + D)[0],                     # 200
                   f.post("ORDERS", FRI, FRI + D, slash=False)[0],        # 503 busy
                   f.post("ORDERS", FRI, FRI + D, token=None)[0],         # 401
                   f.post("ORDERS", FRI, FRI + D, merchant="NOSUCHMERCHNT")[0],   # 404
                   f.call("POST", "/v3/merchants/%s/exports" % MERCHANT, b"{")[0]]  # 400
        eq(answers, [200, 503, 401, 404, 400], "answers")
        # a body over 1 MB, a dropped answer, a 429 and its early retry
        head = ("POST /v3/merchants/%s/exports HTTP/1.1\r\nHost: x\r\nContent-Length: "
                "99999999\r\n\r\n" % MERCHANT).encode()
        assert raw_exchange(f.api, head)[0].startswith(b"HTTP/1.1 400"), "oversized body"
        f.admin("POST", "fault", {"kind": "drop", "target": "post"})
        eq(raw_exchange(f.api, raw_post)[0], b"", "dropped")
        f.admin("POST", "fault", {"kind": "status", "target": "post", "status": 429,
                                  "retry_after": 5})
        eq([f.post("ORDERS", FRI, FRI + D)[0] for _ in range(2)], [429, 429], "429s")
        eid = f.stats()["exports"][0]["id"]
        polls = [f.poll(eid)[0], f.poll("AAAAAAAAAAAAA")[0], f.poll(eid, token=None)[0],
                 f.call("GET", "/v3/merchants/%s/exports/%s/" % (MERCHANT, eid),
                        token="other-token")[0]]
        eq(polls, [429, 429, 401, 200], "polls (test-token still penalized)")
        f.call("GET", "/v3/merchants/%s/exports" % MERCHANT)      # a list GET: not a poll
        s = f.stats()
        eq((s["posts"], s["polls"], s["requests_total"]), (9, 4, 14), "posts, polls, total")

    @check("admin: reset zeroes counters, forgets exports, clears faults, restores config")
    def _():
        f.fresh(end_inclusive=False)
        _, obj, _ = f.post("ORDERS", FRI, FRI + D)
        f.admin("POST", "fault", {"kind": "status", "target": "v1", "status": 500, "count": -1})
        f.admin("POST", "reset")
        s = f.stats()
        eq((s["posts"], s["exports"]), (0, []), "counters")
        eq(f.poll(obj["id"])[0], 404, "export forgotten")
        eq(f.admin("GET", "fault")["rules"], [], "faults")
        eq(f.admin("GET", "config")["end_inclusive"], True, "config")
        eq(v1("/v1/orders")[0], 200, "fault gone")

    @check("admin: config rejects unknown keys and bad values")
    def _():
        for patch in ({"nope": 1}, {"end_inclusive": "yes"}, {"region": "mars"},
                      {"expired_status": 500}, {"anomalies": ["bad_utf8"]},
                      {"merchants": {"X": {"region": "moon"}}}, {"tokens": {"t": "all"}}):
            eq(f.call("POST", "/_admin/config", patch, token=None)[0], 400, str(patch))

    @check("admin: merchants merge per merchant; null removes")
    def _():
        f.fresh(merchants={MERCHANT: {"orders_per_day": 10}, "NEW0000000001": {"region": "us"}})
        m = f.admin("GET", "config")["merchants"]
        eq(m[MERCHANT], {"region": "*", "orders_per_day": 10}, "merged")
        eq(m["NEW0000000001"]["region"], "us", "added")
        f.admin("POST", "config", {"merchants": {"NEW0000000001": None}})
        assert "NEW0000000001" not in f.admin("GET", "config")["merchants"]

    @check("admin: token_on_file_host counts headers and token-like query parameters")
    def _():
        f.fresh()
        done = f.export("ORDERS", FRI, FRI + D)
        url = done["exportUrls"]["elements"][0]["url"]
        f.get_url(url)
        eq(f.stats()["token_on_file_host"], 0, "clean download")
        f.get_url(url, headers={"Authorization": "Bearer test-token"})
        f.get_url(url + "&access_token=x")
        f.get_url(url + "&foo=test-token")
        f.get_url(url, headers={"X-Clover-Auth": "test-token"})
        eq(f.stats()["token_on_file_host"], 4)

    @check("fakectl: reset/config/fault/clearfaults silent; stats KEY plain; errors exit 1")
    def _():
        env = dict(os.environ, FAKE_CLOVER_ADMIN="http://127.0.0.1:%d/_admin" % f.api)

        def ctl(*args):
            return subprocess.run([sys.executable, FAKECTL] + list(args), env=env,
                                  capture_output=True, text=True)
        for args in (["reset"], ["config", "end_inclusive=false", "processing_ms=0",
                                 "hours=MON-FRI 10:00-15:00", "merchants.%s.orders_per_day=99"
                                 % MERCHANT], ["fault", "kind=status", "target=post",
                                              "status=503", "count=2"], ["clearfaults"]):
            r = ctl(*args)
            eq((r.returncode, r.stdout, r.stderr), (0, "", ""), " ".join(args))
        c = f.admin("GET", "config")
        eq((c["end_inclusive"], c["processing_ms"], c["hours"], c["merchants"][MERCHANT]
            ["orders_per_day"]), (False, 0, "MON-FRI 10:00-15:00", 99), "config applied")
        eq(ctl("stats", "token_on_file_host").stdout, "0\n", "stats KEY")
        f.fresh()           # service hours as usual again
        text = '{"elements": [{"id": "A", "n": 1e39}]}'
        r = subprocess.run([sys.executable, FAKECTL, "serve"], env=env, input=text,
                           capture_output=True, text=True)
        eq((r.returncode, r.stdout, r.stderr), (0, "", ""), "serve")
        done = f.export("ORDERS", FRI, FRI + D)
        status, _, body = f.get_url(done["exportUrls"]["elements"][0]["url"])
        eq((status, body.decode()), (200, text), "serve: the next file, byte for byte")
        r = ctl("config", "bogus=1")
        assert r.returncode == 1 and r.stderr and not r.stdout, r
        r = ctl("stats", "nonexistent")
        eq(r.returncode, 1, "unknown stat")
        r = subprocess.run([sys.executable, FAKECTL, "--admin", "http://127.0.0.1:1/_admin",
                            "reset"], capture_output=True, text=True)
        eq(r.returncode, 1, "unreachable")

    @check("fakectl: stats KEY prints lists and objects as JSON; dotted KEY walks in")
    def _():
        f.fresh()
        f.export("ORDERS", FRI, FRI + D)
        env = dict(os.environ, FAKE_CLOVER_ADMIN="http://127.0.0.1:%d/_admin" % f.api)

        def ctl(*args):
            r = subprocess.run([sys.executable, FAKECTL] + list(args), env=env,
                               capture_output=True, text=True)
            eq((r.returncode, r.stderr), (0, ""), " ".join(args))
            return r.stdout
        out = ctl("stats", "exports")
        eq(out.count("\n"), 1, "one line")
        eq(json.loads(out), f.stats()["exports"], "exports as JSON")
        eq(ctl("stats", "exports.0.status"), "DONE\n", "dotted, string")
        eq(ctl("stats", "exports.0.polls"), "%d\n" % f.stats()["exports"][0]["polls"],
           "dotted, number")
        eq(ctl("stats", "posts"), "1\n", "number")
        r = subprocess.run([sys.executable, FAKECTL, "stats", "exports.5.status"], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 1 and "no such stat" in r.stderr, r

    # ---- faults --------------------------------------------------------------------
    def fault(**rule):
        f.admin("POST", "fault", rule)

    @check("fault status: code, body, Retry-After, headers; count and skip")
    def _():
        f.fresh()
        fault(kind="status", target="post", status=503, count=2, skip=1, retry_after=7,
              headers={"X-Test": "1"})
        codes = []
        for _ in range(4):
            status, body, headers = f.post("ORDERS", FRI, FRI + D)
            codes.append(status)
            if status == 503:
                eq((headers["Retry-After"], headers["X-Test"]), ("7", "1"), "headers")
                eq(body, {"message": "Service Unavailable"}, "default body")
        eq(codes, [200, 503, 503, 200], "skip 1, fire 2")
        eq(f.stats()["faults_fired"], 2, "faults_fired")

    @check("fault status/redirect echo: {token}, {query}, {signature} from the request")
    def _():
        f.fresh()
        fault(kind="status", target="post", status=400, echo=True,
              body={"message": "got {token}"}, headers={"X-Echo": "<{token}>"})
        status, body, headers = f.post("ORDERS", FRI, FRI + D)
        eq((status, body["message"], headers["X-Echo"]), (400, "got test-token", "<test-token>"))
        done = f.export("ORDERS", FRI, FRI + D)
        url = done["exportUrls"]["elements"][0]["url"]
        sig = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["Signature"][0]
        fault(kind="status", target="file", status=403, echo=True,
              body="<Sig>{signature}</Sig><Q>{query}</Q>")
        status, _, body = f.get_url(url)
        eq((status, body.decode()), (403, "<Sig>%s</Sig><Q>%s</Q>"
                                     % (sig, urllib.parse.urlsplit(url).query)))
        fault(kind="redirect", target="poll", echo=True, location="http://x/{token}")
        status, _, headers = f.poll(done["id"])
        eq((status, headers["Location"]), (302, "http://x/test-token"))
        fault(kind="status", target="post", status=400, body="{token}")
        status, _, body = f.request("POST", "/v3/merchants/%s/exports" % MERCHANT, b"{}",
                                    {"Authorization": "Bearer test-token"})
        eq((status, body), (400, b"{token}"), "without echo the text stays")

    @check("fault status 429 with a custom body counts rate_limited")
    def _():
        f.fresh()
        fault(kind="status", target="poll", status=429, body={"message": "Too many requests"},
              headers={"X-RateLimit-tokenLimit": "16"}, retry_after=1)
        _, obj, _ = f.post("ORDERS", FRI, FRI + D)
        status, body, headers = f.poll(obj["id"])
        eq((status, body, headers["X-RateLimit-tokenLimit"]),
           (429, {"message": "Too many requests"}, "16"))
        eq(f.stats()["rate_limited"], 1)

    @check("429 penalty: early calls with that token get 429 again, lengthening the wait")
    def _():
        f.fresh()
        fault(kind="status", target="post", status=429, retry_after=0.5, count=2,
              headers={"X-RateLimit-tokenConcurrentLimit": "5"})
        t0 = time.monotonic()
        status, body, headers = f.post("ORDERS", FRI, FRI + D)
        eq((status, headers["Retry-After"]), (429, "0.5"), "the fault")
        # at once: the same 429, also on other endpoints, no rule consumed
        status, body, headers = f.post("ORDERS", FRI, FRI + D)
        eq((status, body, headers["Retry-After"], headers["X-RateLimit-tokenConcurrentLimit"]),
           (429, {"message": "Too Many Requests"}, "0.5", "5"), "early POST")
        eq(f.call("GET", "/v1/orders")[0], 429, "early v1 with the same token")
        eq(f.admin("GET", "fault")["rules"][0]["count"], 1, "rule not consumed")
        eq(f.call("GET", "/v1/orders", token="other-token")[0], 200, "another token")
        # after the first deadline (t0 + 0.5) but within the lengthened one
        time.sleep(max(0, t0 + 0.3 - time.monotonic()))
        eq(f.post("ORDERS", FRI, FRI + D)[0], 429, "early at +0.3 s")
        time.sleep(max(0, t0 + 0.6 - time.monotonic()))
        eq(f.post("ORDERS", FRI, FRI + D)[0], 429, "at +0.6 s: the wait was lengthened")
        s = f.stats()
        eq((s["early_retries"], s["rate_limited"], s["faults_fired"]), (4, 5, 1), "counters")
        # wait it out: served normally again (here the rule fires its 2nd time)
        time.sleep(max(0, t0 + 1.3 - time.monotonic()))
        eq(f.post("ORDERS", FRI, FRI + D)[0], 429, "after the penalty: the rule's 2nd 429")
        eq(f.stats()["early_retries"], 4, "not early")
        f.admin("POST", "reset")
        eq(f.post("ORDERS", FRI, FRI + D)[0], 200, "reset clears the penalty")

    @check("429 penalty: only for 429 with retry_after, only for the Bearer token")
    def _():
        f.fresh()
        fault(kind="status", target="post", status=429)                  # no Retry-After
        fault(kind="status", target="post", status=503, retry_after=5)   # not a 429
        eq(f.post("ORDERS", FRI, FRI + D)[0], 429, "429 without retry_after")
        eq(f.post("ORDERS", FRI, FRI + D)[0], 503, "503 with retry_after")
        eq(f.post("ORDERS", FRI, FRI + D)[0], 200, "no penalty after either")
        fault(kind="status", target="post", status=429, retry_after=5)
        eq(f.post("ORDERS", FRI, FRI + D, token=None)[0], 429, "429 to a tokenless request")
        eq(f.post("ORDERS", FRI, FRI + D)[0], 200, "the Bearer token is not penalized")
        eq(f.stats()["early_retries"], 0, "early_retries")

    @check("fault count -1 fires forever; DELETE clears; target any covers v1")
    def _():
        f.fresh()
        fault(kind="status", target="any", status=500, count=-1)
        eq([v1("/v1/orders")[0] for _ in range(3)], [500] * 3)
        f.call("DELETE", "/_admin/fault", token=None)
        eq(v1("/v1/orders")[0], 200)

    @check("fault drop: no answer, connection closed")
    def _():
        f.fresh()
        fault(kind="drop", target="post")
        data, err = raw_exchange(f.api, raw_post)
        eq((data, err), (b"", None), "empty, clean close")
        eq(f.stats()["exports_created"], 0, "not processed")

    @check("fault drop with process=true: the export is created, the answer lost")
    def _():
        f.fresh()
        fault(kind="drop", target="post", process=True)
        try:
            f.post("ORDERS", FRI, FRI + D)
            raise AssertionError("got an answer")
        except http.client.RemoteDisconnected:
            pass
        eq(f.stats()["exports_created"], 1)

    @check("fault reset: TCP RST")
    def _():
        f.fresh()
        fault(kind="reset", target="post")
        data, err = raw_exchange(f.api, raw_post)
        assert isinstance(err, ConnectionResetError), (data, err)

    f.fresh()
    done = f.export("ORDERS", FRI, FRI + D)
    url = done["exportUrls"]["elements"][0]["url"]
    full = f.get_url(url)[2]

    @check("fault truncate: full Content-Length, part of the body, then close")
    def _():
        fault(kind="truncate", target="file", bytes=1000)
        try:
            f.get_url(url)
            raise AssertionError("no error")
        except http.client.IncompleteRead as e:
            eq((len(e.partial), e.expected), (1000, len(full) - 1000))

    @check("fault stall: headers and some bytes, then silence")
    def _():
        fault(kind="stall", target="file", bytes=100, seconds=1.5)
        t = time.time()
        try:
            f.get_url(url, timeout=0.5)
            raise AssertionError("no timeout")
        except (socket.timeout, TimeoutError):
            pass
        assert time.time() - t < 1.4

    @check("fault slow: the answer arrives at `rate` bytes/s")
    def _():
        fault(kind="slow", target="poll", rate=400)
        t = time.time()
        status, obj, _ = f.poll(done["id"])
        took = time.time() - t
        size = len(json.dumps(obj))
        eq(status, 200)
        assert size / 400 * 0.7 < took < size / 400 * 1.5 + 0.3, (size, took)

    @check("fault delay: answers normally after `seconds`")
    def _():
        fault(kind="delay", target="poll", seconds=0.5)
        t = time.time()
        eq(f.poll(done["id"])[0], 200)
        assert time.time() - t >= 0.5

    @check("fault malformed: same length, invalid JSON")
    def _():
        fault(kind="malformed")
        status, headers, body = f.get_url(url)
        eq((status, len(body)), (200, len(full)))
        try:
            json.loads(body)
            raise AssertionError("still valid JSON")
        except ValueError:
            pass
        eq(f.get_url(url)[2], full, "only once")

    @check("fault no_elements: {\"items\": []}")
    def _():
        fault(kind="no_elements")
        eq(json.loads(f.get_url(url)[2]), {"items": []})

    @check("fault element_not_object: one element is 42")
    def _():
        fault(kind="element_not_object")
        els = json.loads(f.get_url(url)[2])["elements"]
        eq(sum(e == 42 for e in els), 1, "42s")
        eq(len(els), len(json.loads(full)["elements"]), "count")

    @check("fault redirect: 302 to location; token forwarded to the file host is counted")
    def _():
        f.admin("POST", "reset")
        fault(kind="redirect", target="poll")
        status, _, headers = f.call("GET", "/v3/merchants/%s/exports/XYZ" % MERCHANT)
        eq(status, 302)
        loc = urllib.parse.urlsplit(headers["Location"])
        eq((loc.port, loc.path), (f.files, "/v3/merchants/%s/exports/XYZ" % MERCHANT))
        f.request("GET", loc.path, headers={"Authorization": "Bearer test-token"}, port=f.files)
        eq(f.stats()["token_on_file_host"], 1)
        fault(kind="redirect", target="post", location="http://127.0.0.1:1/elsewhere")
        eq(f.post("ORDERS", FRI, FRI + D)[2]["Location"], "http://127.0.0.1:1/elsewhere")

    @check("fault export_status FAILED: sticks, and frees the concurrency slot")
    def _():
        f.fresh(queue_ms=2000, max_concurrent_exports=1)
        _, obj, _ = f.post("ORDERS", FRI, FRI + D)
        fault(kind="export_status", status="FAILED")
        eq(f.poll(obj["id"])[1]["status"], "FAILED")
        eq(f.poll(obj["id"])[1]["status"], "FAILED", "second poll")
        eq(f.post("ORDERS", FRI, FRI + D)[0], 200, "slot free")

    @check("fault export_status stuck: IN_PROGRESS forever, percent frozen")
    def _():
        f.fresh(processing_ms=50)
        _, obj, _ = f.post("ORDERS", FRI, FRI + D)
        fault(kind="export_status", stuck=True)
        first = f.poll(obj["id"])[1]
        time.sleep(0.3)
        later = f.poll(obj["id"])[1]
        eq(later["status"], "IN_PROGRESS")
        eq(later["percentComplete"], first["percentComplete"], "frozen")

    @check("fault rules are validated")
    def _():
        for rule in ({"kind": "nope"}, {"kind": "status"}, {"kind": "status", "status": 503,
                                                            "target": "x"},
                     {"kind": "status", "status": 503, "colour": "red"},
                     {"kind": "export_status", "target": "post", "status": "FAILED"},
                     {"kind": "drop", "count": 0}):
            eq(f.call("POST", "/_admin/fault", rule, token=None)[0], 400, str(rule))

    # ---- anomalies -----------------------------------------------------------------
    @check("anomalies: applied to the first object of every file")
    def _():
        f.fresh(objects_per_file=30, anomalies=["nul_in_note", "huge_total", "string_client_time"])
        files = f.objects(f.export("ORDERS", FRI, FRI + D))
        assert len(files) > 1
        for x in files:
            eq((x[0]["note"], x[0]["total"], x[0]["clientCreatedTime"]),
               ("before\u0000after", 123456789012345678901234567890, "yesterday"), "first")
            assert isinstance(x[1]["total"], int) and x[1]["total"] < 10 ** 9, "second"
        f.admin("POST", "config", {"anomalies": ["float_total", "deep_nesting"]})
        files = f.objects(f.export("PAYMENTS", FRI, FRI + D))
        depth, node = 0, files[0][0]["note"]
        while isinstance(node, list):
            depth, node = depth + 1, (node[0] if node else None)
        eq((files[0][0]["amount"], depth), (12.5, 200), "float amount, 200 levels")

    # ---- HTTP ------------------------------------------------------------------------
    @check("http: keep-alive, Content-Length on every answer")
    def _():
        f.fresh()
        conn = http.client.HTTPConnection("127.0.0.1", f.api, timeout=5)
        for path in ("/v1/orders", "/nope", "/v1/orders"):
            conn.request("GET", path, headers={"Authorization": "Bearer test-token"})
            r = conn.getresponse()
            body = r.read()
            eq(int(r.headers["Content-Length"]), len(body), "length")
        conn.close()

    @check("log: one line per request, no token, no query string")
    def _():
        f.fresh()
        f.call("GET", "/v1/orders?limit=3&access_token=secret-in-query")
        log = open(f.log).read()
        lines = [line for line in log.splitlines() if line.startswith(("api ", "file "))]
        assert len(lines) > 100, len(lines)
        for bad in ("test-token", "secret-in-query", "Signature", "?", "Bearer"):
            assert bad not in log, "log contains %r" % bad
        assert "api GET /v1/orders 401" in lines, lines[-3:]

    # ---- TLS --------------------------------------------------------------------------
    tls_checks()

    # ---- speed, shutdown --------------------------------------------------------------
    # speed: the aims are >= 20 000 orders/s and hundreds of MB/s; the checks
    # use low floors so that a slow machine does not fail them, and print
    # what they measured
    speed = {}

    @check("speed: generation of a fresh window (floor 5 000 orders/s)")
    def _():
        f.fresh(processing_ms=0, merchants={MERCHANT: {"orders_per_day": 5000}})
        t = time.time()
        speed["done"] = f.export("ORDERS", FRI - 30 * D, FRI - 26 * D)
        took = time.time() - t
        n = sum(e["objects"] for e in f.stats()["exports"])
        print("# generated %d orders in %.2f s: %.0f orders/s" % (n, took, n / took))
        assert n / took >= 5000, "%.0f orders/s" % (n / took)

    @check("speed: file downloads over one connection (floor 50 MB/s)")
    def _():
        conn = http.client.HTTPConnection("127.0.0.1", f.files, timeout=10)
        t, size = time.time(), 0
        for el in speed["done"]["exportUrls"]["elements"]:
            u = urllib.parse.urlsplit(el["url"])
            conn.request("GET", u.path + "?" + u.query)
            size += len(conn.getresponse().read())
        took = time.time() - t
        conn.close()
        print("# downloaded %.1f MB in %.2f s: %.0f MB/s" % (size / 1e6, took, size / 1e6 / took))
        assert size / 1e6 / took >= 50, "%.0f MB/s" % (size / 1e6 / took)

    @check("speed: small keep-alive requests take < 10 ms (no Nagle stalls)")
    def _():
        conn = http.client.HTTPConnection("127.0.0.1", f.api, timeout=10)
        t = time.time()
        for _ in range(50):
            conn.request("POST", "/v3/merchants/%s/exports" % MERCHANT, body=b"{}",
                         headers={"Authorization": "Bearer test-token"})
            conn.getresponse().read()
        took = (time.time() - t) / 50
        conn.close()
        assert took < 0.010, "%.1f ms per request" % (took * 1000)

    @check("shutdown: SIGTERM exits 0, removes its temporary data dir and the ready file")
    def _():
        g = Instance(data_dir=False)
        g.export("ORDERS", FRI, FRI + D)
        data_dir = re.search(r"data dir (\S+)", open(g.log).read()).group(1)
        assert os.listdir(data_dir), "no files in the temporary data dir"
        g.proc.send_signal(signal.SIGTERM)
        eq(g.proc.wait(5), 0, "exit status")
        assert not os.path.exists(g.ready), "ready file left"
        assert not os.path.exists(data_dir), "temporary data dir left"
        g.stop()


def https_open(ctx, method, url, obj=None, token="test-token"):
    """(status, body) of a urllib request over https with that SSL context."""
    data = None if obj is None else json.dumps(obj).encode()
    headers = {"Authorization": "Bearer " + token} if token else {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=ctx))
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def refused_by(ctx, url):
    """The certificate error urllib gives with ctx, or fail."""
    try:
        https_open(ctx, "GET", url)
    except urllib.error.URLError as e:
        assert isinstance(e.reason, ssl.SSLCertVerificationError), repr(e.reason)
        return e.reason
    raise AssertionError("%s accepted" % url)


def tls_checks():
    """A second fake with --tls-cert/--tls-key and a self-signed certificate
    for 127.0.0.1 made by the openssl command line."""
    tls = {}
    tmp = tempfile.mkdtemp(prefix="fake_selftest_tls.")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    try:
        @check("tls: openssl makes a certificate for IP 127.0.0.1; a fake starts with it")
        def _():
            openssl = shutil.which("openssl")
            assert openssl, ("the 'openssl' command is not on PATH: the TLS checks need it to "
                             "make a self-signed certificate (install openssl)")
            r = subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                "-days", "2", "-subj", "/CN=127.0.0.1",
                                "-addext", "subjectAltName=IP:127.0.0.1",
                                "-keyout", key, "-out", cert],
                               capture_output=True, text=True)
            assert r.returncode == 0, "openssl req failed: %s" % r.stderr.strip()
            g = tls["fake"] = Instance("--tls-cert", cert, "--tls-key", key)
            eq(json.load(open(g.ready))["scheme"], "https", "ready file scheme")
            tls["ca"] = ssl.create_default_context(cafile=cert)
            tls["api"] = "https://127.0.0.1:%d" % g.api

        def need():
            assert "fake" in tls, "no TLS fake (see the check above)"
            return tls["fake"], tls["ca"], tls["api"]

        @check("tls: with the CA file, urllib creates an export and downloads a file over https")
        def _():
            g, ca, api = need()
            status, body = https_open(ca, "GET", api + "/_admin/config", token=None)
            eq((status, json.loads(body)["file_url_scheme"]), (200, "https"), "admin config")
            https_open(ca, "POST", api + "/_admin/config", FAST, token=None)
            exports = api + "/v3/merchants/%s/exports" % MERCHANT
            status, body = https_open(ca, "POST", exports,
                                      {"type": "ORDERS", "startTime": FRI, "endTime": FRI + D})
            eq(status, 200, "create: %s" % body[:200])
            eid = json.loads(body)["id"]
            for _ in range(500):
                status, body = https_open(ca, "GET", "%s/%s" % (exports, eid))
                obj = json.loads(body)
                if obj["status"] == "DONE":
                    break
                time.sleep(0.02)
            eq(obj["status"], "DONE", "export status")
            url = tls["url"] = obj["exportUrls"]["elements"][0]["url"]
            eq(urllib.parse.urlsplit(url)[:2], ("https", "127.0.0.1:%d" % g.files), "file URL")
            status, body = https_open(ca, "GET", url, token=None)
            eq(status, 200, "download")
            assert json.loads(body)["elements"], "no elements"
            status, body = https_open(ca, "GET", url + "0", token=None)
            eq(status, 403, "bad signature")

        @check("tls: a default context without that CA refuses both hosts")
        def _():
            g, ca, api = need()
            refused_by(ssl.create_default_context(), api + "/v1/orders")
            assert "url" in tls, "no file URL (see above)"
            refused_by(ssl.create_default_context(), tls["url"])

        @check("tls: TLS 1.2 is accepted, TLS 1.1 and plain HTTP are not")
        def _():
            g, ca, api = need()
            ctx = ssl.create_default_context(cafile=cert)
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            with socket.create_connection(("127.0.0.1", g.files), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    eq(s.version(), "TLSv1.2", "negotiated")
            old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            old.load_verify_locations(cert)
            try:
                old.set_ciphers("DEFAULT:@SECLEVEL=0")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
            except (ValueError, ssl.SSLError):
                pass        # this OpenSSL has no TLS 1.1 at all: also refused
            try:
                with socket.create_connection(("127.0.0.1", g.api), timeout=5) as raw:
                    with old.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                        raise AssertionError("TLS 1.1 accepted: %s" % s.version())
            except (ssl.SSLError, ConnectionError):
                pass
            for port in (g.api, g.files):
                data, _ = raw_exchange(port, b"GET /v1/orders HTTP/1.1\r\nHost: x\r\n\r\n")
                assert not data.startswith(b"HTTP/"), "plain HTTP answered on %d" % port
            log = open(g.log).read()
            assert "api - - tls-error" in log and "file - - tls-error" in log, log[-300:]

        @check("tls: file_url_scheme still overrides; fakectl --cafile talks to the admin API")
        def _():
            g, ca, api = need()
            env = dict(os.environ, FAKE_CLOVER_ADMIN=api + "/_admin")
            ctl = [sys.executable, FAKECTL, "--cafile", cert]
            r = subprocess.run(ctl + ["config", "file_url_scheme=http"], env=env,
                               capture_output=True, text=True)
            eq((r.returncode, r.stderr), (0, ""), "fakectl config")
            status, body = https_open(ca, "POST", api + "/v3/merchants/%s/exports" % MERCHANT,
                                      {"type": "ORDERS", "startTime": FRI, "endTime": FRI + D})
            eq(status, 200, "create")
            r = subprocess.run(ctl + ["stats", "exports_created"], env=env,
                               capture_output=True, text=True)
            eq((r.returncode, r.stdout), (0, "2\n"), "fakectl stats")
            r = subprocess.run([sys.executable, FAKECTL, "stats"], env=env,
                               capture_output=True, text=True)
            assert r.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in r.stderr, r
            r = subprocess.run(ctl + ["reset"], env=env, capture_output=True, text=True)
            status, body = https_open(ca, "GET", api + "/_admin/config", token=None)
            eq(json.loads(body)["file_url_scheme"], "https", "reset restores https")
    finally:
        if "fake" in tls:
            tls["fake"].stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
