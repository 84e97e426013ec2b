"""The fake's state and its two HTTP servers (API host and file host).

`Fake` holds everything mutable (config, counters, exports, fault rules)
behind one lock and implements each Clover rule in one method.  The
handlers only do HTTP: parse, classify the request ("post", "poll",
"file", "v1", "other"), apply a fault rule if one fires, call the rule's
method, and send its Response.

TLS (fake_clover.py --tls-cert/--tls-key): both hosts then speak only
HTTPS.  The handshake runs in the connection's own thread (Server.
finish_request), so a slow or plain-HTTP client never blocks the accept
loop; a failed handshake is logged as "api|file - - tls-error".

Rate-limit penalty (Clover: a 429's Retry-After, "calling again before it
expires lengthens the wait"): a `status` fault answering 429 with
retry_after puts the request's Bearer token in a penalty until now +
retry_after (real time).  An API-host request with that token before the
deadline is answered with the same 429 again, restarts the penalty (now +
retry_after, so the wait gets longer), counts `early_retries` and consumes
no fault rule.  /_admin/reset clears the penalties.
"""

import collections
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from . import config as configmod
from . import faults as faultmod
from .clock import effective_hours, is_open, now_ms
from .data import DAY_MS, Generator
from .exports import ContentSpec, Export, FileCache
from .v1 import DEFAULT_LIMIT, KINDS as V1_KINDS, MAX_LIMIT, Lister, PageError, window_objects

MAX_WINDOW_MS = 30 * DAY_MS
MAX_BODY = 1 << 20
COUNTERS = ("requests_total", "posts", "exports_created", "polls", "file_downloads",
            "file_bytes", "v1_requests", "auth_failures", "busy_rejections",
            "closed_rejections", "rate_limited", "early_retries", "faults_fired",
            "token_on_file_host", "max_running_exports", "max_polls_per_second",
            "max_concurrent_requests_per_token", "max_requests_per_second_per_token",
            "max_concurrent_requests_per_app", "max_requests_per_second_per_app",
            "v1_max_limit", "v1_bad_requests")

# /_admin/expect types: the export types, and the /v1 lists
EXPECT_TYPES = {"ORDERS": None, "PAYMENTS": None, "CHARGES": "charges", "REFUNDS": "refunds",
                "ECOMMERCE_ORDERS": "orders"}

_EXPORTS = re.compile(r"^/v3/merchants/([^/]+)/exports/?$")
_EXPORT = re.compile(r"^/v3/merchants/([^/]+)/exports/([^/]+)/?$")
_V1 = re.compile(r"^/v1/(%s)/?$" % "|".join(V1_KINDS))
_FILE = re.compile(r"^/exports/([A-Z0-9]{13})/([0-9]+)\.json$")
_NUMERIC = re.compile(r"^[0-9]+$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Response:
    """An answer: a body in memory, or a file streamed from disk."""

    def __init__(self, status, body=b"", content_type="application/json",
                 headers=None, path=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})
        self.path = path

    def load(self):
        """Bring a file body into memory (for faults that alter it)."""
        if self.path is not None:
            with open(self.path, "rb") as f:
                self.body = f.read()
            self.path = None
        return self.body


def json_response(status, obj, headers=None):
    return Response(status, json.dumps(obj, ensure_ascii=False).encode(), headers=headers)


def message(status, text):
    return json_response(status, {"message": text})


def s3_error(status, code, text):
    """File-host errors look like a pre-signed object store's (XML)."""
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
            '<Message>%s</Message></Error>' % (code, text)).encode()
    return Response(status, body, "application/xml")


def parse_time(text):
    """Epoch ms from "1704067200000" or ISO-8601 ("2024-01-01T00:00:00Z")."""
    text = text.strip()
    if re.match(r"^-?[0-9]+$", text):
        return int(text)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - _EPOCH) // timedelta(milliseconds=1)


class Fake:
    """All state, and the rules of every endpoint."""

    def __init__(self, seed, data_dir, baseline_config):
        self.seed = seed
        self.baseline = baseline_config
        self.config = baseline_config
        self.gen = Generator(seed)
        self.cache = FileCache(data_dir, self.gen)
        self.lister = Lister(self.gen)
        self.secret = secrets.token_bytes(32)
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.file_port = None   # set once the file host listens
        self.file_scheme = "http"   # what the file host speaks: http or https
        self.faults = faultmod.FaultBook()
        self._zero()

    def _zero(self):
        self.stats = dict.fromkeys(COUNTERS, 0)
        self.stats["v1_pages"] = dict.fromkeys(V1_KINDS, 0)    # 200 answers per list
        self.exports = {}
        self._export_seq = 0    # export ids are a sequence, so tests are stable
        self._recent_polls = collections.deque()
        self._token_active = {}     # Bearer token -> API requests being served
        self._token_recent = {}     # Bearer token -> their start times, last 1 s
        self._app_active = 0        # API requests with a Bearer token being served
        self._app_recent = collections.deque()  # their start times, last 1 s
        self._penalties = {}    # Bearer token -> rate-limit penalty (see penalty_answer)

    # -- bookkeeping ----------------------------------------------------------

    def count(self, name, n=1):
        with self.lock:
            self.stats[name] += n

    def note_poll(self):
        """Count a status GET and the peak of polls in any 1-second window."""
        with self.lock:
            self.stats["polls"] += 1
            t = time.monotonic()
            q = self._recent_polls
            q.append(t)
            while q[0] <= t - 1.0:
                q.popleft()
            self.stats["max_polls_per_second"] = max(self.stats["max_polls_per_second"], len(q))

    def token_request_started(self, token):
        """An API-host request with this Bearer token (known or not) is
        being served: track the peaks of Clover's per-token limits (5
        concurrent requests, 16 requests/s) over all tokens, and of its
        per-app limits (10 and 50) over all tokens together: the fake plays
        one app, whose tokens are all of its tokens."""
        with self.lock:
            active = self._token_active.get(token, 0) + 1
            self._token_active[token] = active
            self._app_active += 1
            t = time.monotonic()
            q = self._token_recent.setdefault(token, collections.deque())
            for d in (q, self._app_recent):
                d.append(t)
                while d[0] <= t - 1.0:
                    d.popleft()
            st = self.stats
            st["max_concurrent_requests_per_token"] = max(
                st["max_concurrent_requests_per_token"], active)
            st["max_requests_per_second_per_token"] = max(
                st["max_requests_per_second_per_token"], len(q))
            st["max_concurrent_requests_per_app"] = max(
                st["max_concurrent_requests_per_app"], self._app_active)
            st["max_requests_per_second_per_app"] = max(
                st["max_requests_per_second_per_app"], len(self._app_recent))

    def token_request_ended(self, token):
        with self.lock:
            self._app_active = max(self._app_active - 1, 0)
            left = self._token_active.get(token, 0) - 1
            if left > 0:
                self._token_active[token] = left
            else:
                self._token_active.pop(token, None)

    def fault_for(self, target):
        with self.lock:
            rule = self.faults.match(target)
            if rule:
                self.stats["faults_fired"] += 1
            return rule

    def sign(self, path, expires):
        return hmac.new(self.secret, ("%s\n%s" % (path, expires)).encode(),
                        hashlib.sha256).hexdigest()

    # -- rate-limit penalty ---------------------------------------------------

    @staticmethod
    def bearer(headers):
        """The Bearer token of a request (known or not), or None."""
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None

    def penalize(self, token, seconds, resp):
        """A 429 with Retry-After was sent to token: it must wait seconds."""
        with self.lock:
            self._penalties[token] = {"until": time.monotonic() + seconds, "seconds": seconds,
                                      "status": resp.status, "body": resp.body,
                                      "content_type": resp.content_type,
                                      "headers": dict(resp.headers)}

    def penalty_answer(self, token):
        """The 429 for a token that calls again before its Retry-After has
        passed (the penalty restarts from now), or None when it may call."""
        if token is None:
            return None
        with self.lock:
            p = self._penalties.get(token)
            if p is None:
                return None
            now = time.monotonic()
            if now >= p["until"]:
                del self._penalties[token]
                return None
            p["until"] = now + p["seconds"]
            self.stats["early_retries"] += 1
            return Response(p["status"], p["body"], p["content_type"], p["headers"])

    # -- authentication -------------------------------------------------------

    def token_of(self, cfg, headers, query):
        """The caller's known token, or None.  A query access_token is
        refused even beside a good header (Clover, since 2022)."""
        if "access_token" in query:
            return None
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or token not in cfg["tokens"]:
            return None
        return token

    def authorize(self, cfg, headers, query, merchant):
        """None when the caller may use merchant, else the error Response:
        401 for a missing/bad token or a missing permission, 404 for a
        merchant this region's host does not know."""
        token = self.token_of(cfg, headers, query)
        if token is None:
            return self.unauthorized()
        m = cfg["merchants"].get(merchant)
        if m is None or m["region"] not in ("*", cfg["region"]):
            return message(404, "Merchant not found")
        allowed = cfg["tokens"][token]
        if "*" not in allowed and merchant not in allowed:
            return self.unauthorized()
        return None

    def unauthorized(self):
        self.count("auth_failures")
        return message(401, "401 Unauthorized")

    # -- the export API -------------------------------------------------------

    @staticmethod
    def _epoch_ms(value):
        """startTime/endTime: a JSON number or a numeric string."""
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value if value >= 0 else None
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
        if isinstance(value, str) and _NUMERIC.match(value.strip()):
            return int(value.strip())
        return None

    def create_export(self, cfg, merchant, body):
        """POST /v3/merchants/{mId}/exports.  Checks, in order: the body,
        the 30-day limit, the service hours (503), the concurrency (503)."""
        try:
            req = json.loads(body)
        except ValueError:
            req = None
        if not isinstance(req, dict):
            return message(400, 'Invalid JSON body: expected {"type", "startTime", "endTime"}')
        kind = req.get("type")
        if kind not in ("ORDERS", "PAYMENTS"):
            return message(400, "Invalid export type %s: must be ORDERS or PAYMENTS"
                           % json.dumps(kind))
        start, end = self._epoch_ms(req.get("startTime")), self._epoch_ms(req.get("endTime"))
        if start is None or end is None:
            return message(400, "startTime and endTime are required, in epoch milliseconds")
        if end <= start:
            return message(400, "endTime must be after startTime")
        if end - start > MAX_WINDOW_MS:
            return message(400, "The max time range for an export is 30 days")
        now = now_ms(cfg)
        if not is_open(cfg, now):
            self.count("closed_rejections")
            return message(503, "Export service is only available during these hours (UTC): %s"
                           % effective_hours(cfg))
        m = cfg["merchants"][merchant]
        lo = max(start, cfg["data_start_ms"])
        hi = min(end + 1 if cfg["end_inclusive"] else end, now - cfg["lag_ms"] + 1)
        spec = ContentSpec(self.seed, merchant, m["orders_per_day"], kind, lo, max(lo, hi),
                           cfg["objects_per_file"], cfg["shuffle"], tuple(cfg["anomalies"]))
        with self.lock:
            running = sum(e.running(now) for e in self.exports.values())
            if running >= cfg["max_concurrent_exports"]:
                self.stats["busy_rejections"] += 1
                return message(503, "Too many concurrent exports, please try again later")
            # 13 characters of Clover's alphabet (no I, L, O or U),
            # numbered from 1 after every reset so test output is the same
            # every run
            self._export_seq += 1
            eid = "EXPRT%08d" % self._export_seq
            export = Export(eid, merchant, kind, start, end, now, self.cache.get(spec),
                            cfg["queue_ms"], cfg["processing_ms"],
                            "%s://%s:%d" % (cfg["file_url_scheme"], cfg["file_host"],
                                            self.file_port),
                            cfg["file_url_form"], cfg["file_url_query_prefix"],
                            cfg["processing_objects_per_s"])
            self.exports[eid] = export
            self.stats["exports_created"] += 1
            self.stats["max_running_exports"] = max(self.stats["max_running_exports"], running + 1)
            return json_response(200, export.to_json(self.sign))

    def get_export(self, cfg, merchant, eid):
        """GET /v3/merchants/{mId}/exports/{exportId}."""
        with self.lock:
            export = self.exports.get(eid)
            if export is None or export.merchant != merchant:
                return message(404, "Export not found")
            export.polls += 1
            export.refresh(now_ms(cfg))
            return json_response(200, export.to_json(self.sign))

    def force_export(self, cfg, eid, rule):
        """An export_status fault fired on a poll of export eid."""
        with self.lock:
            export = self.exports.get(eid)
            if export is not None:
                export.force(rule, now_ms(cfg))

    def get_file(self, cfg, path, query):
        """A file URL on the file host: signature (403), expiry
        (expired_status), then existence (404)."""
        if path in ("", "/") and "key" in query:   # file_url_form "query"
            path = query["key"][0]
        m = _FILE.match(path)
        expires = (query.get("Expires") or [""])[0]
        signature = (query.get("Signature") or [""])[0]
        if m is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        if not (_NUMERIC.match(expires) and hmac.compare_digest(
                signature.encode(), self.sign(path, expires).encode())):
            return s3_error(403, "AccessDenied", "Request signature does not match")
        with self.lock:
            export = self.exports.get(m.group(1))
            if export is not None:
                export.downloads += 1
            file_path = export.file_path(int(m.group(2))) if export else None
        if now_ms(cfg) > int(expires):
            status = cfg["expired_status"]
            code = {403: "AccessDenied", 404: "NoSuchKey", 410: "Gone"}[status]
            return s3_error(status, code, "Request has expired; the file was deleted")
        if file_path is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return Response(200, path=file_path)

    # -- /v1 lists ------------------------------------------------------------

    @staticmethod
    def v1_error(status, err_type, code, text, param=None):
        """An error in the /v1 shape (see FAKE.md: Clover's documents show
        none; this is the issue's {"error": {type, code, message, param}})."""
        err = {"type": err_type, "code": code, "message": text}
        if param is not None:
            err["param"] = param
        return json_response(status, {"error": err})

    def v1_list(self, cfg, kind, headers, query):
        """GET /v1/{orders,charges,refunds}: authentication (401), the
        merchant (404), the parameters (400 naming the param), the page."""
        token = self.token_of(cfg, headers, query)
        allowed = cfg["tokens"][token] if token is not None else []
        in_region = [mid for mid, m in cfg["merchants"].items()
                     if m["region"] in ("*", cfg["region"])]
        merchant = cfg["v1_merchant"] or next(
            (mid for mid in in_region if "*" in allowed or mid in allowed), None)
        if token is None or merchant is None or not ("*" in allowed or merchant in allowed):
            self.count("auth_failures")
            return self.v1_error(401, "authentication_error", "unauthorized",
                                 "401 Unauthorized")
        if merchant not in in_region:
            return self.v1_error(404, "invalid_request_error", "resource_missing",
                                 "Merchant not found")
        now = now_ms(cfg)
        try:
            limit, lo, hi = self._v1_params(cfg, query, now)
            cursors = {}
            for name in ("starting_after", "ending_before"):
                values = query.get(name)
                if values is not None:
                    if not values[-1]:
                        raise PageError(name, "%s must be an id" % name)
                    cursors[name] = values[-1]
            lo, hi = max(lo, cfg["data_start_ms"]), min(hi, now)
            data, has_more = self.lister.page(
                kind, merchant, cfg["merchants"][merchant]["orders_per_day"], lo, hi, limit,
                cfg["data_start_ms"], now, cursors.get("starting_after"),
                cursors.get("ending_before"), cfg["v1_cursor"], cfg["v1_order"])
        except PageError as e:
            self.count("v1_bad_requests")
            return self.v1_error(400, "invalid_request_error", e.code, str(e), e.param)
        with self.lock:
            self.stats["v1_pages"][kind] += 1
        return json_response(200, {"object": "list", "url": "/v1/" + kind,
                                   "has_more": has_more, "data": data})

    def _v1_params(self, cfg, query, now):
        """(limit, lo, hi) from limit, created.gt and created.lt: lo..hi is
        the inclusive created range; PageError names a bad parameter."""
        def integer(name, minimum=None):
            values = query.get(name)
            if values is None:
                return None
            text = values[-1].strip()
            if not re.match(r"^-?[0-9]{1,18}$", text) or (
                    minimum is not None and int(text) < minimum):
                raise PageError(name, "Invalid %s: %s must be an integer%s" % (
                    name, json.dumps(values[-1]),
                    "" if minimum is None else " of at least %d" % minimum))
            return int(text)
        limit = integer("limit", 1)
        if limit is not None:
            with self.lock:
                self.stats["v1_max_limit"] = max(self.stats["v1_max_limit"], limit)
            if limit > MAX_LIMIT:
                if cfg["v1_limit_over_max"] == "error":
                    raise PageError("limit", "Invalid limit: %d is more than the maximum of %d"
                                    % (limit, MAX_LIMIT))
                limit = MAX_LIMIT
        gt, lt = integer("created.gt"), integer("created.lt")
        return (DEFAULT_LIMIT if limit is None else limit,
                cfg["data_start_ms"] if gt is None else gt + 1,
                now if lt is None else lt - 1)

    # -- admin ----------------------------------------------------------------

    def admin_stats(self):
        with self.lock:
            cfg = self.config
            out = dict(self.stats)
            out["v1_pages"] = dict(out["v1_pages"])
            for e in self.exports.values():
                e.refresh(now_ms(cfg))
            out["exports"] = [e.summary() for e in self.exports.values()]
            return out

    def admin_reset(self):
        with self.lock:
            self._zero()    # also clears the rate-limit penalties
            self.faults.clear()
            self.config = self.baseline

    def admin_config(self, patch):
        with self.lock:
            self.config = configmod.merge(self.config, patch)
            return self.config

    def admin_expect(self, query):
        """What a correct client returns for created in [start, end): an
        export type (ORDERS, PAYMENTS: createdTime) or a /v1 list (CHARGES,
        REFUNDS, ECOMMERCE_ORDERS: created)."""
        def param(name):
            v = query.get(name)
            if not v:
                raise ValueError("missing parameter %s" % name)
            return v[0]
        kind = param("type").upper()
        if kind not in EXPECT_TYPES:
            raise ValueError("type must be one of %s" % ", ".join(EXPECT_TYPES))
        cfg = self.config
        merchant = param("merchant")
        if merchant not in cfg["merchants"]:
            raise ValueError("unknown merchant %s" % merchant)
        lo = max(parse_time(param("start")), cfg["data_start_ms"])
        hi = min(parse_time(param("end")), now_ms(cfg) + 1)
        opd = cfg["merchants"][merchant]["orders_per_day"]
        if kind in ("ORDERS", "PAYMENTS"):
            money, created = ("total" if kind == "ORDERS" else "amount"), "createdTime"
            buckets = self.gen.window(kind, merchant, opd, lo, hi)
        else:
            money, created = "amount", "created"
            buckets = window_objects(self.gen, EXPECT_TYPES[kind], merchant, opd, lo, hi)
        ids, total, first, last = [], 0, None, None
        for objs in buckets:    # each hour's objects, sorted by their time
            if objs:
                first = objs[0][created] if first is None else first
                last = objs[-1][created]
                ids.extend(o["id"] for o in objs)
                total += sum(o[money] for o in objs)
        ids.sort()
        out = {"count": len(ids), "sum": total, "min_created": first, "max_created": last,
               "ids_md5": hashlib.md5("\n".join(ids).encode()).hexdigest()}
        if (query.get("ids") or ["0"])[0] not in ("", "0", "false"):
            out["ids"] = ids
        return out


class _Handler(BaseHTTPRequestHandler):
    """HTTP plumbing shared by both hosts."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeClover/1.0"
    sys_version = ""
    timeout = 60          # idle keep-alive connections are closed after this
    port_name = "?"

    def setup(self):
        super().setup()
        # answers go out in two writes (head, body): without this, Nagle's
        # algorithm and the client's delayed ACK add 40 ms to keep-alive
        # requests
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    @property
    def fake(self):
        return self.server.fake

    # never let the base class print the raw request line (it holds query
    # strings); our own log line has the path only
    def log_message(self, format, *args):
        pass

    def log_request(self, code="-", size="-"):
        self._log(code)

    def _log(self, status):
        path = (getattr(self, "path", None) or "-").split("?", 1)[0]
        sys.stderr.write("%s %s %s %s\n" % (self.port_name, getattr(self, "command", None) or "-",
                                            path, getattr(status, "value", status)))

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, size = [], 0
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                size += n
                if size > MAX_BODY:
                    raise ValueError("request body too large")
                if n == 0:
                    while self.rfile.readline().strip():   # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(n))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        if not 0 <= n <= MAX_BODY:
            raise ValueError("bad Content-Length")
        return self.rfile.read(n)

    def _dispatch(self):
        url = urlsplit(self.path)
        self.req_path = url.path
        self.query = parse_qs(url.query, keep_blank_values=True)
        self.bad_body = None
        try:
            self.body = self._read_body()
        except ValueError as e:
            # still routed, so that it is counted like any request; serve()
            # and _admin() answer it with this 400
            self.close_connection = True
            self.body, self.bad_body = b"", str(e)
        try:
            self.route()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            self._log("client-gone")
        except Exception:
            traceback.print_exc()
            self.close_connection = True
            self._send(message(500, "fake_clover internal error (see its log)"))

    penalties = False   # whether rate-limit penalties apply (the API host)

    def serve(self, target, handler, export_id=None):
        """Count the request, answer a token still in its rate-limit
        penalty, apply a fault rule if one fires, answer."""
        cfg = self.fake.config
        self.fake.count("requests_total")
        if self.bad_body is not None:
            return self._send(message(400, self.bad_body))
        token = self.fake.bearer(self.headers) if self.penalties else None
        early = self.fake.penalty_answer(token)
        if early is not None:       # before the faults: consumes no rule
            return self._send(early)
        rule = self.fake.fault_for(target)
        kind = rule["kind"] if rule else None
        if kind == "delay":
            self.fake.stopping.wait(rule.get("seconds", 1))
        elif kind == "export_status":
            self.fake.force_export(cfg, export_id, rule)
        elif kind in faultmod.BEFORE_HANDLER:
            if rule.get("process"):
                handler()
            if kind in ("drop", "reset"):
                return self._close(reset=kind == "reset")
            if kind == "redirect":
                location = self._echo(rule, rule.get("location")) or "%s://%s:%d%s" % (
                    self.fake.file_scheme, cfg["file_host"], self.fake.file_port, self.path)
                return self._send(json_response(302, {"message": "Found"},
                                                {"Location": location}))
            body, ctype = faultmod.status_body(rule)
            body = self._echo(rule, body)
            headers = {k: self._echo(rule, v) for k, v in rule.get("headers", {}).items()}
            if "retry_after" in rule:
                headers["Retry-After"] = "%g" % rule["retry_after"]
            resp = Response(rule["status"], body, ctype, headers)
            if resp.status == 429 and "retry_after" in rule and token is not None:
                self.fake.penalize(token, rule["retry_after"], resp)
            return self._send(resp)
        self._send(handler(), rule)

    def _echo(self, rule, text):
        """With "echo": true, put the request's secrets into a fault's text
        (str or bytes): {token} (its Bearer token), {query} (its raw query
        string), {signature} (its Signature parameter)."""
        if not rule.get("echo") or text is None:
            return text
        values = {"{token}": self.fake.bearer(self.headers) or "",
                  "{query}": urlsplit(self.path).query,
                  "{signature}": (self.query.get("Signature") or [""])[0]}
        as_bytes = isinstance(text, bytes)
        if as_bytes:
            text = text.decode()
        for name, value in values.items():
            text = text.replace(name, value)
        return text.encode() if as_bytes else text

    def _close(self, reset):
        """Answer nothing: close, or abort with a TCP RST."""
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()   # the descriptor goes when rfile closes
        self._log("reset" if reset else "drop")

    token_in_flight = None      # the Bearer token of the API request being served

    def token_done(self):
        """The request of token_in_flight is answered (or dropped)."""
        if self.token_in_flight is not None:
            self.fake.token_request_ended(self.token_in_flight)
            self.token_in_flight = None

    def _send(self, resp, rule=None):
        """Send resp; a delivery or body fault in rule alters how."""
        self.token_done()
        kind = rule["kind"] if rule else None
        counter = getattr(self, "body_counter", None)

        def will_send(n):
            # counted before the bytes go out: a client that has read them
            # never sees a counter without them (nor, after a reset, with
            # bytes of an earlier download)
            if counter and n > 0:
                self.fake.count(counter, n)

        if kind in faultmod.BODY_TRANSFORMS and 200 <= resp.status < 300:
            resp.body = faultmod.transform_body(kind, resp.load())
        if kind in ("truncate", "stall", "slow"):
            resp.load()
        length = os.path.getsize(resp.path) if resp.path else len(resp.body)
        head = ["HTTP/1.1 %d %s" % (resp.status, self.responses.get(resp.status, ("Status",))[0]),
                "Server: " + self.server_version, "Date: " + self.date_time_string(),
                "Content-Type: " + resp.content_type, "Content-Length: %d" % length]
        head += ["%s: %s" % kv for kv in resp.headers.items()]
        if self.close_connection and kind not in ("truncate", "stall"):
            head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if resp.status == 429:
            self.fake.count("rate_limited")
        if self.command == "HEAD":      # the headers a GET would get
            pass
        elif kind in ("truncate", "stall"):
            sent = int(rule.get("bytes", length // 2))
            will_send(len(resp.body[:sent]))
            self.wfile.write(resp.body[:sent])
            if kind == "stall":
                self.fake.stopping.wait(rule.get("seconds", 30))
            self.close_connection = True
        elif kind == "slow":
            rate = rule.get("rate", 1024)
            step, sent = max(1, int(rate / 20)), 0
            while sent < length and not self.fake.stopping.is_set():
                will_send(len(resp.body[sent:sent + step]))
                self.wfile.write(resp.body[sent:sent + step])
                sent = min(length, sent + step)
                self.fake.stopping.wait(step / rate)
        elif resp.path:
            will_send(length)
            with open(resp.path, "rb") as f:
                self.connection.sendfile(f)
        else:
            will_send(length)
            self.wfile.write(resp.body)
        self._log(resp.status)


class ApiHandler(_Handler):
    """api.clover.com: the export API, the /v1 lists, and /_admin."""

    port_name = "api"
    penalties = True

    def route(self):
        path = self.req_path
        if path.startswith("/_admin/"):
            return self._admin(path[len("/_admin/"):].strip("/"), self.command)
        token = self.fake.bearer(self.headers)
        if token is None:
            return self._route_api()
        # from routing until the answer starts (a delay fault included):
        # once the client has read it, it may send the next request on
        # another connection before this thread has finished
        self.fake.token_request_started(token)
        self.token_in_flight = token
        try:
            return self._route_api()
        finally:
            self.token_done()

    def _route_api(self):
        path, method, fake = self.req_path, self.command, self.fake
        m = _EXPORTS.match(path)
        if m and method == "POST":
            fake.count("posts")
            return self.serve("post", lambda: self._authorized(
                m.group(1), lambda cfg: fake.create_export(cfg, m.group(1), self.body)))
        m = _EXPORT.match(path)
        if m and method == "GET":
            fake.note_poll()
            return self.serve("poll", lambda: self._authorized(
                m.group(1), lambda cfg: fake.get_export(cfg, m.group(1), m.group(2))),
                export_id=m.group(2))
        m = _V1.match(path)
        if m and method == "GET":
            fake.count("v1_requests")
            return self.serve("v1", lambda: fake.v1_list(fake.config, m.group(1),
                                                         self.headers, self.query))
        known = _EXPORTS.match(path) or _EXPORT.match(path) or _V1.match(path)
        return self.serve("other", lambda: message(405, "Method not allowed") if known
                          else message(404, "Not found"))

    def _authorized(self, merchant, action):
        cfg = self.fake.config
        return self.fake.authorize(cfg, self.headers, self.query, merchant) or action(cfg)

    def _admin(self, name, method):
        fake = self.fake
        if self.bad_body is not None:
            return self._send(message(400, self.bad_body))
        try:
            if name == "stats" and method == "GET":
                return self._send(json_response(200, fake.admin_stats()))
            if name == "reset" and method == "POST":
                fake.admin_reset()
                return self._send(json_response(200, {"ok": True}))
            if name == "config" and method == "GET":
                return self._send(json_response(200, fake.config))
            if name == "config" and method == "POST":
                return self._send(json_response(200, fake.admin_config(self._json())))
            if name == "expect" and method == "GET":
                return self._send(json_response(200, fake.admin_expect(self.query)))
            if name == "fault" and method in ("GET", "POST", "DELETE"):
                with fake.lock:
                    if method == "POST":
                        fake.faults.add(self._json())
                    elif method == "DELETE":
                        fake.faults.clear()
                    return self._send(json_response(200, {"rules": fake.faults.rules}))
        except ValueError as e:
            return self._send(message(400, str(e)))
        return self._send(message(404, "unknown admin endpoint %s %s" % (method, name)))

    def _json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise ValueError("the body must be JSON") from None


class FileHandler(_Handler):
    """The file host of the pre-signed export URLs (no token wanted)."""

    port_name = "file"
    body_counter = "file_bytes"     # counted by _send as the body goes out

    def route(self):
        fake, cfg = self.fake, self.fake.config
        fake.count("file_downloads")
        if self._carries_token(cfg):
            fake.count("token_on_file_host")
        if self.command not in ("GET", "HEAD"):
            return self.serve("other", lambda: s3_error(405, "MethodNotAllowed",
                                                         "The method is not allowed"))
        return self.serve("file", lambda: fake.get_file(fake.config, self.req_path,
                                                        self.query))

    def _carries_token(self, cfg):
        """An Authorization header, a token-like query parameter, or any
        known token anywhere in the URL or the headers."""
        if "Authorization" in self.headers or any(
                "token" in name.lower() or "auth" in name.lower() for name in self.query):
            return True
        url = unquote(self.path)
        return any(t in url or any(t in v for v in self.headers.values())
                   for t in cfg["tokens"])


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, fake, ssl_context=None):
        super().__init__(address, handler)
        self.fake = fake
        self.ssl_context = ssl_context

    def finish_request(self, request, client_address):
        """Under TLS, the handshake runs here, in the connection's thread."""
        if self.ssl_context is None:
            return super().finish_request(request, client_address)
        request.settimeout(self.RequestHandlerClass.timeout)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):   # ssl.SSLError is an OSError
            sys.stderr.write("%s - - tls-error\n" % self.RequestHandlerClass.port_name)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            self.shutdown_request(tls)   # the caller's socket was detached

    def server_bind(self):
        # HTTPServer.server_bind would look up the host's FQDN (DNS); skip it
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, OSError)):
            traceback.print_exc()


def start(fake, host, api_port, file_port, ssl_context=None):
    """Start both hosts in background threads; returns (api, file) servers.
    With an ssl_context (server side) both speak HTTPS only."""
    file_server = Server((host, file_port), FileHandler, fake, ssl_context)
    fake.file_port = file_server.server_address[1]
    fake.file_scheme = "https" if ssl_context else "http"
    api_server = Server((host, api_port), ApiHandler, fake, ssl_context)
    for srv in (api_server, file_server):
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()
    return api_server, file_server
