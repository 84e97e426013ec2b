"""The e-commerce /v1 lists (orders, charges, refunds) and their pagination.

Objects are derived from the same generated orders and payments as the
exports (a v1 order is an export order, a charge is a payment, refunds come
from the successful payments of REFUNDED / PARTIALLY_REFUNDED orders), so
every object belongs to the hour bucket of its `created`.

Clover's "Paginate requests" page (seed 004) leaves two things open, and
both are switches (config keys, read by the server):

- v1_order: the order of the list.  "newest_first": created descending,
  ties by id.  "unsorted": an order that is undefined but stable (as a
  cursor needs): UTC days newest first, and inside a day a deterministic
  shuffle (by a hash of the id), so pages are not sorted by created, as in
  the page's example.
- v1_cursor: "included": the object named by starting_after/ending_before
  is itself the first object of the page (and counts towards limit), as
  the page's text and examples show; "excluded": the page starts with the
  object next to it.

The list order is a key per object (ascending = list order); a page walks
"blocks" (hours or days, disjoint in time and in key) away from the cursor:
starting_after walks in list order, ending_before against it (nearest to
the cursor first).  has_more: at least one more object lies beyond the page
in that direction.  created.gt/created.lt arrive here as the inclusive
range [lo, hi], already cut to the data that exists.

A cursor may be any existing object of that list (data_start <= created
<= now), listed or not: ids seen in pages or in scanned days are kept in an
index (id -> created); an id not in it makes the lister scan whole days,
those of the requested range first, until it is found or every day that
exists has been scanned (a few seconds for years of data, once).
"""

import collections
import random
import threading

from .data import DAY_MS, HOUR_MS, clover_id, stable_hash

KINDS = ("orders", "charges", "refunds")
MAX_LIMIT = 100
DEFAULT_LIMIT = 10
CURSOR_READINGS = ("included", "excluded")     # config v1_cursor
LIST_ORDERS = ("unsorted", "newest_first")      # config v1_order
OVER_MAX = ("clamp", "error")                   # config v1_limit_over_max
_INDEX_MAX = 1_000_000      # ids kept (about 150 bytes each)
_BUCKET_CACHE = 512         # hour buckets kept (paging with limit=1 reuses them)


class PageError(ValueError):
    """A bad request (HTTP 400) about one query parameter."""

    def __init__(self, param, text, code="parameter_invalid"):
        super().__init__(text)
        self.param = param
        self.code = code


def _order(o, charge):
    items = []
    for li in o["lineItems"]["elements"]:
        item = {"parent": li["item"]["id"], "amount": li["price"] * li["unitQty"] // 1000,
                "description": li["name"]}
        if li["unitQty"] % 1000 == 0:
            item["quantity"] = li["unitQty"] // 1000
        items.append(item)
    obj = {"id": o["id"], "object": "order", "amount": o["total"], "currency": "USD",
           "created": o["createdTime"],
           "status": "paid" if o["paymentState"] == "PAID" else o["paymentState"].lower()}
    if charge:
        obj["charge"] = charge
    obj["items"] = items
    return obj


def _charge(p, refund):
    refunded = refund["amount"] if refund else 0
    obj = {"id": p["id"], "object": "charge", "amount": p["amount"], "currency": "usd",
           "created": p["createdTime"], "order": p["order"]["id"],
           "paid": p["result"] == "SUCCESS", "captured": p["result"] == "SUCCESS",
           "refunded": refunded == p["amount"] and refunded > 0,
           "amount_refunded": refunded,
           "status": "succeeded" if p["result"] == "SUCCESS" else p["result"].lower()}
    card = p.get("cardTransaction")
    if card:
        obj["source"] = {"brand": card["cardType"], "last4": card["last4"]}
    return obj


def _refund(p, order_state, bucket_ms):
    h = stable_hash("REFUND", p["id"])
    amount = p["amount"] if order_state == "REFUNDED" else p["amount"] // 2
    return {"id": clover_id(random.Random(h)), "object": "refund", "amount": amount,
            "currency": "usd", "charge": p["id"],
            "created": min(bucket_ms + HOUR_MS - 1, p["createdTime"] + 1 + h % 600_000),
            "status": "succeeded"}


def bucket_objects(gen, kind, merchant, orders_per_day, bucket_ms):
    """The v1 objects of kind whose payment or order falls in one hour
    bucket (a refund is created in its payment's hour), by (created, id)."""
    orders = gen.orders(merchant, orders_per_day, bucket_ms)
    payments = gen.payments(merchant, orders, bucket_ms)
    if kind == "orders":
        charge_of = {}
        for p in payments:
            charge_of.setdefault(p["order"]["id"], p["id"])
        objs = [_order(o, charge_of.get(o["id"])) for o in orders]
    else:
        state_of = {o["id"]: o["paymentState"] for o in orders}
        refund_of = {p["id"]: _refund(p, state_of[p["order"]["id"]], bucket_ms)
                     for p in payments if p["result"] == "SUCCESS"
                     and state_of[p["order"]["id"]] in ("REFUNDED", "PARTIALLY_REFUNDED")}
        if kind == "charges":
            objs = [_charge(p, refund_of.get(p["id"])) for p in payments]
        else:
            objs = list(refund_of.values())
    objs.sort(key=lambda x: (x["created"], x["id"]))
    return objs


def window_objects(gen, kind, merchant, orders_per_day, lo, hi):
    """Yield, hour bucket by hour bucket, the lists of v1 objects of kind
    with lo <= created < hi (for /_admin/expect)."""
    for b in range(lo - lo % HOUR_MS, hi, HOUR_MS):
        yield [o for o in bucket_objects(gen, kind, merchant, orders_per_day, b)
               if lo <= o["created"] < hi]


# -- the list order ------------------------------------------------------------
# block size, and the key of an object (ascending = list order); the blocks
# of an order are disjoint in time and their keys do not interleave

def _newest_key(created, oid):
    return (-created, oid)


def _unsorted_key(created, oid):
    return (-(created - created % DAY_MS), stable_hash("V1ORDER", oid), oid)


_ORDERS = {"newest_first": (HOUR_MS, _newest_key), "unsorted": (DAY_MS, _unsorted_key)}


class Lister:
    """Answers list requests; keeps an index of ids so they work as cursors."""

    def __init__(self, gen):
        self.gen = gen
        self._lock = threading.Lock()
        self._index = {}        # (kind, merchant, orders_per_day) -> {id: created}
        self._scanned = set()   # (kind, merchant, orders_per_day, day) fully indexed
        self._buckets = collections.OrderedDict()   # LRU of bucket_objects

    def _bucket(self, kind, merchant, opd, b):
        key = (kind, merchant, opd, b)
        with self._lock:
            objs = self._buckets.get(key)
            if objs is not None:
                self._buckets.move_to_end(key)
                return objs
        objs = bucket_objects(self.gen, kind, merchant, opd, b)
        with self._lock:
            self._buckets[key] = objs
            while len(self._buckets) > _BUCKET_CACHE:
                self._buckets.popitem(last=False)
        return objs

    def _remember(self, kind, merchant, opd, objs, day=None):
        with self._lock:
            if sum(len(i) for i in self._index.values()) > _INDEX_MAX:
                self._index.clear()
                self._scanned.clear()
            idx = self._index.setdefault((kind, merchant, opd), {})
            for o in objs:
                idx[o["id"]] = o["created"]
            if day is not None:
                self._scanned.add((kind, merchant, opd, day))

    def find(self, kind, merchant, opd, oid, first, last, lo, hi):
        """The created of the object oid of this list, or None when no such
        object exists (existence: first <= created <= last).  Days of the
        requested range [lo, hi] are scanned first."""
        def lookup():
            with self._lock:
                return self._index.get((kind, merchant, opd), {}).get(oid)
        created = lookup()
        if created is None and first <= last:
            every = range(last - last % DAY_MS, first - first % DAY_MS - 1, -DAY_MS)
            lo, hi = max(lo, first), min(hi, last)
            lo_day, hi_day = lo - lo % DAY_MS, hi - hi % DAY_MS
            days = [d for d in every if lo_day <= d <= hi_day] if lo <= hi else []
            inside = set(days)
            days += [d for d in every if d not in inside]
            for day in days:
                with self._lock:
                    done = (kind, merchant, opd, day) in self._scanned
                if done:
                    continue
                objs = []
                for b in range(day, day + DAY_MS, HOUR_MS):
                    objs.extend(bucket_objects(self.gen, kind, merchant, opd, b))
                self._remember(kind, merchant, opd, objs, day)
                created = lookup()
                if created is not None:
                    break
        if created is None or not first <= created <= last:
            return None
        return created

    def _block(self, kind, merchant, opd, start, size, key, lo, hi):
        """The objects of one block with lo <= created <= hi, in list order."""
        objs = []
        for b in range(start, start + size, HOUR_MS):
            objs.extend(o for o in self._bucket(kind, merchant, opd, b)
                        if lo <= o["created"] <= hi)
        objs.sort(key=lambda o: key(o["created"], o["id"]))
        return objs

    def page(self, kind, merchant, opd, lo, hi, limit, first, last,
             starting_after=None, ending_before=None,
             reading="included", order="unsorted"):
        """(data, has_more) of one page.  lo..hi: the created range asked
        (inclusive, already cut to first..last, the range that exists)."""
        if starting_after is not None and ending_before is not None:
            raise PageError("ending_before",
                            "use either starting_after or ending_before, not both")
        size, key = _ORDERS[order]
        forward = ending_before is None
        cursor = starting_after if forward else ending_before
        ckey = None
        if cursor is not None:
            created = self.find(kind, merchant, opd, cursor, first, last, lo, hi)
            if created is None:
                raise PageError("starting_after" if forward else "ending_before",
                                "No such %s: %s" % (kind[:-1], cursor), "resource_missing")
            ckey = key(created, cursor)
        out = []
        if lo <= hi:
            if forward:
                top = hi if ckey is None else max(lo, min(hi, created))
                blocks = range(top - top % size, lo - lo % size - 1, -size)
            else:
                bottom = max(lo, min(hi, created))
                blocks = range(bottom - bottom % size, hi + 1, size)
            for b in blocks:
                objs = self._block(kind, merchant, opd, b, size, key, lo, hi)
                if not forward:
                    objs.reverse()
                for o in objs:
                    k = key(o["created"], o["id"])
                    if ckey is None or (
                            (k > ckey if forward else k < ckey)
                            or (k == ckey and reading == "included")):
                        out.append(o)
                if len(out) > limit:
                    break
        data = out[:limit]
        self._remember(kind, merchant, opd, data)
        return data, len(out) > limit
