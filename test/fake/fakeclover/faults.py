"""Fault rules: validation, matching, and the pure body transformations.

A rule is {"kind": K, "target": T, "count": N, "skip": M, ...params}.
Targets: "post" (create export), "poll" (export status GET), "file" (file
host GET), "v1" (the /v1 lists), "any" (any non-admin request on either
port).  Rules are tried in the order they were added; a rule whose target
matches first lets `skip` matching requests through, then fires `count`
times (-1 = forever).  At most one rule fires per request.

How each kind acts (the HTTP layer in server.py does the socket work):

  before the handler runs (the request has no other effect, unless
  "process": true, which runs the handler and throws its answer away):
    status    answer `status` with `body`, `retry_after`, `headers`; a 429
              with retry_after also starts the token's rate-limit penalty
              (server.Fake.penalize); "echo": true fills {token}, {query},
              {signature} in body and headers from the request
    drop      close the connection without an answer
    reset     close with a TCP RST (SO_LINGER 0)
    redirect  answer 302 to `location` (default: the same path and query
              on the file host)
  before the handler, which then runs normally:
    delay         wait `seconds`, then answer normally
    export_status (poll) freeze the export in `status`, or with
                  "stuck": true keep it IN_PROGRESS forever
  on the handler's answer:
    truncate  full Content-Length, only `bytes` (default half) of the body
    stall     headers and `bytes` (default half) of the body, then silence
              for `seconds` (default 30), then close
    slow      the whole answer at `rate` bytes/s
    malformed / no_elements / element_not_object: see transform_body()
"""

import http
import json

# kind -> {param: validator}; validators return the normalised value
_NUM = (int, float)


def _number(minimum):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, _NUM) or v < minimum:
            raise ValueError("must be a number >= %s" % minimum)
        return v
    return check


def _status_code(v):
    if isinstance(v, bool) or not isinstance(v, int) or not 100 <= v <= 599:
        raise ValueError("must be an HTTP status code")
    return v


def _text(v):
    if not isinstance(v, str) or not v:
        raise ValueError("must be a non-empty string")
    return v


def _flag(v):
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _headers(v):
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, (str, int))
                                          for k, x in v.items()):
        raise ValueError("must be an object of header: value")
    return {k: str(x) for k, x in v.items()}


def _any(v):
    return v


PARAMS = {
    "status": {"status": _status_code, "body": _any, "retry_after": _number(0),
               "headers": _headers, "process": _flag, "echo": _flag},
    "drop": {"process": _flag},
    "reset": {"process": _flag},
    "redirect": {"location": _text, "echo": _flag},
    "delay": {"seconds": _number(0)},
    "export_status": {"status": _text, "stuck": _flag},
    "truncate": {"bytes": _number(0)},
    "stall": {"bytes": _number(0), "seconds": _number(0)},
    "slow": {"rate": _number(1)},
    "malformed": {},
    "no_elements": {},
    "element_not_object": {},
}
REQUIRED = {"status": ("status",)}
TARGETS = ("post", "poll", "file", "v1", "any")
DEFAULT_TARGET = {"export_status": "poll", "malformed": "file", "no_elements": "file",
                  "element_not_object": "file"}
BEFORE_HANDLER = ("status", "drop", "reset", "redirect")
BODY_TRANSFORMS = ("malformed", "no_elements", "element_not_object")


def validate(rule):
    """A normalised copy of rule; ValueError explains what is wrong."""
    if not isinstance(rule, dict):
        raise ValueError("a fault rule is a JSON object")
    rule = dict(rule)
    kind = rule.pop("kind", None)
    if kind not in PARAMS:
        raise ValueError("kind must be one of %s" % ", ".join(PARAMS))
    out = {"kind": kind, "target": rule.pop("target", DEFAULT_TARGET.get(kind, "any"))}
    if out["target"] not in TARGETS:
        raise ValueError("target must be one of %s" % ", ".join(TARGETS))
    if kind == "export_status":
        if out["target"] != "poll":
            raise ValueError("export_status faults act on polls: target must be poll")
        if "status" not in rule and not rule.get("stuck"):
            raise ValueError("export_status needs status (e.g. \"FAILED\") or stuck: true")
    count = rule.pop("count", 1)
    skip = rule.pop("skip", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < -1 or count == 0:
        raise ValueError("count must be a positive integer or -1 (forever)")
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise ValueError("skip must be an integer >= 0")
    out.update(count=count, skip=skip)
    for name in REQUIRED.get(kind, ()):
        if name not in rule:
            raise ValueError("%s faults need %s" % (kind, name))
    for name, value in rule.items():
        if name not in PARAMS[kind]:
            raise ValueError("unknown parameter %r for %s (known: %s)"
                             % (name, kind, ", ".join(PARAMS[kind]) or "none"))
        try:
            out[name] = PARAMS[kind][name](value)
        except ValueError as e:
            raise ValueError("%s: %s" % (name, e)) from None
    return out


class FaultBook:
    """The active rules.  Not thread-safe: call under the fake's lock."""

    def __init__(self):
        self.rules = []

    def add(self, rule):
        self.rules.append(validate(rule))

    def clear(self):
        self.rules = []

    def match(self, target):
        """The rule that fires for a request of this target, or None."""
        for rule in self.rules:
            if rule["count"] == 0 or rule["target"] not in ("any", target):
                continue
            if rule["skip"] > 0:
                rule["skip"] -= 1
                continue
            if rule["count"] > 0:
                rule["count"] -= 1
            return dict(rule)
        return None


def status_body(rule):
    """Body bytes and content type of a status fault's answer."""
    body = rule.get("body")
    if body is None:
        try:
            body = {"message": http.HTTPStatus(rule["status"]).phrase}
        except ValueError:
            body = {"message": "Error"}
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body).encode(), "application/json"


def transform_body(kind, body):
    """The body transformations of the file faults (any JSON body works).

    malformed           same length, but the comma between two elements is
                        replaced by '#', at the first such place after the
                        middle of the body (else the last ']' or '}'): never
                        valid JSON, at a deterministic offset
    no_elements         {"items": []}
    element_not_object  the middle element replaced by 42
    """
    if kind == "malformed":
        at = body.find(b'},{"id":', len(body) // 2)
        at = at + 1 if at >= 0 else max(body.rfind(b"]"), body.rfind(b"}"))
        if at < 0:
            at = len(body) // 2
        return body[:at] + b"#" + body[at + 1:]
    if kind == "no_elements":
        return b'{"items": []}'
    doc = json.loads(body)
    elements = doc.get("elements") if isinstance(doc, dict) else None
    if elements:
        elements[len(elements) // 2] = 42
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
