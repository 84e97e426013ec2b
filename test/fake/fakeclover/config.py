"""The fake's configuration: defaults, validation and merging.

The configuration is a plain dict.  ``merge(config, patch)`` returns a new,
validated dict (the old one is never mutated, so a request can keep using
the snapshot it started with).  "merchants" and "tokens" merge per entry;
an entry set to null is removed.  Every other key is replaced.
"""

import copy

from .clock import REGION_HOURS, parse_hours
from .v1 import CURSOR_READINGS, LIST_ORDERS, OVER_MAX

ANOMALIES = ("nul_in_note", "huge_total", "string_client_time", "float_total", "deep_nesting")
MERCHANT_REGIONS = ("*",) + tuple(REGION_HOURS)

DEFAULTS = {
    "region": "sandbox",
    "hours": None,                  # null = the region's hours
    "clock_ms": None,               # null = running clock
    "clock_offset_ms": 0,
    "end_inclusive": True,
    "queue_ms": 100,
    "processing_ms": 400,
    "processing_objects_per_s": 0,  # 0 = the processing time is processing_ms alone
    "max_concurrent_exports": 3,
    "objects_per_file": 1000,
    "shuffle": False,
    "lag_ms": 0,
    "expired_status": 404,
    "file_host": "127.0.0.1",
    "file_url_scheme": "http",      # "https" under --tls-cert (set by fake_clover.py)
    "file_url_form": "path",        # "query": no path, the file is ?key=/exports/...
    "file_url_query_prefix": "",    # written verbatim at the start of the query
    "merchants": {
        "6E72X1BW38A7T": {"region": "*", "orders_per_day": 150},
        "EU7Q2M4K9X1ZP": {"region": "eu", "orders_per_day": 40},
    },
    "tokens": {
        "test-token": ["*"],
        "other-token": ["*"],
        "noperm-token": [],
    },
    "anomalies": [],
    "data_start_ms": 1672531200000,  # 2023-01-01T00:00:00Z
    "v1_merchant": None,            # null = the token's first merchant
    "v1_cursor": "included",        # the cursor object is the page's first (seed 004)
    "v1_order": "unsorted",         # the /v1 list order: "unsorted" or "newest_first"
    "v1_limit_over_max": "clamp",   # limit > 100: "clamp" to 100 or "error" (400)
}

NEW_MERCHANT = {"region": "*", "orders_per_day": 100}


def _int(minimum=None, nullable=False):
    def check(v):
        if v is None and nullable:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("must be an integer" + (" or null" if nullable else ""))
        if minimum is not None and v < minimum:
            raise ValueError("must be >= %d" % minimum)
        return v
    return check


def _bool(v):
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _region(v):
    if v not in REGION_HOURS:
        raise ValueError("must be one of %s" % ", ".join(REGION_HOURS))
    return v


def _hours(v):
    if v is not None:
        if not isinstance(v, str):
            raise ValueError("must be a string or null")
        parse_hours(v)
    return v


def _string(nullable):
    def check(v):
        if not (isinstance(v, str) and v) and not (v is None and nullable):
            raise ValueError("must be a non-empty string" + (" or null" if nullable else ""))
        return v
    return check


def _any_string(v):
    # written verbatim into the file URLs: "ftp", "file", "" ... are allowed,
    # so that a client's refusal of such URLs can be tested
    if not isinstance(v, str):
        raise ValueError("must be a string")
    return v


def _url_form(v):
    if v not in ("path", "query"):
        raise ValueError("must be path or query")
    return v


def _one_of(*choices):
    def check(v):
        if v not in choices:
            raise ValueError("must be one of %s" % ", ".join(choices))
        return v
    return check


def _objects_per_file(v):
    return min(1000, _int(1)(v))    # Clover's maximum: larger values are clamped


def _expired_status(v):
    if v not in (403, 404, 410):
        raise ValueError("must be 403, 404 or 410")
    return v


def _anomalies(v):
    if not isinstance(v, list) or any(a not in ANOMALIES for a in v):
        raise ValueError("must be a list of: %s" % ", ".join(ANOMALIES))
    return v


def _merchants(patch, old):
    if not isinstance(patch, dict):
        raise ValueError("must be an object {merchantId: {region, orders_per_day} | null}")
    merged = dict(old)
    for mid, entry in patch.items():
        if entry is None:
            merged.pop(mid, None)
            continue
        if not isinstance(entry, dict) or set(entry) - {"region", "orders_per_day"}:
            raise ValueError("merchant %s: want {region, orders_per_day}" % mid)
        m = dict(old.get(mid, NEW_MERCHANT), **entry)
        if m["region"] not in MERCHANT_REGIONS:
            raise ValueError("merchant %s: region must be one of %s"
                             % (mid, ", ".join(MERCHANT_REGIONS)))
        opd = m["orders_per_day"]
        if isinstance(opd, bool) or not isinstance(opd, (int, float)) or opd < 0:
            raise ValueError("merchant %s: orders_per_day must be a number >= 0" % mid)
        merged[mid] = m
    return merged


def _tokens(patch, old):
    if not isinstance(patch, dict):
        raise ValueError("must be an object {token: [merchantId | \"*\", ...] | null}")
    merged = dict(old)
    for token, mids in patch.items():
        if mids is None:
            merged.pop(token, None)
        elif isinstance(mids, list) and all(isinstance(m, str) for m in mids):
            merged[token] = list(mids)
        else:
            raise ValueError("token %s: want a list of merchant ids" % token)
    return merged


# key -> validator(value) for replaced keys
_SCALARS = {
    "region": _region,
    "hours": _hours,
    "clock_ms": _int(nullable=True),
    "clock_offset_ms": _int(),
    "end_inclusive": _bool,
    "queue_ms": _int(0),
    "processing_ms": _int(0),
    "processing_objects_per_s": _int(0),
    "max_concurrent_exports": _int(0),
    "objects_per_file": _objects_per_file,
    "shuffle": _bool,
    "lag_ms": _int(0),
    "expired_status": _expired_status,
    "file_host": _string(nullable=False),
    "file_url_scheme": _any_string,
    "file_url_form": _url_form,
    "file_url_query_prefix": _any_string,
    "anomalies": _anomalies,
    "data_start_ms": _int(),
    "v1_merchant": _string(nullable=True),
    "v1_cursor": _one_of(*CURSOR_READINGS),
    "v1_order": _one_of(*LIST_ORDERS),
    "v1_limit_over_max": _one_of(*OVER_MAX),
}
# key -> merger(patch, old) for keys merged per entry
_MERGED = {"merchants": _merchants, "tokens": _tokens}
KEYS = sorted(list(_SCALARS) + list(_MERGED))


def merge(config, patch):
    """A new config: config with patch applied.  ValueError on a bad patch."""
    if not isinstance(patch, dict):
        raise ValueError("config must be a JSON object")
    new = copy.deepcopy(config)
    for key, value in patch.items():
        if key in _SCALARS:
            try:
                new[key] = _SCALARS[key](value)
            except ValueError as e:
                raise ValueError("%s: %s" % (key, e)) from None
        elif key in _MERGED:
            try:
                new[key] = _MERGED[key](value, new[key])
            except ValueError as e:
                raise ValueError("%s: %s" % (key, e)) from None
        else:
            raise ValueError("unknown config key %r (known: %s)" % (key, ", ".join(KEYS)))
    return new
