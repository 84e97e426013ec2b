"""The e-commerce /v1 lists (orders, charges, refunds) and their pagination.

Objects are derived from the same generated orders and payments as the
exports (a v1 order is an export order, a charge is a payment, refunds come
from the payments of REFUNDED / PARTIALLY_REFUNDED orders).

Pagination as Clover's page shows it:
- the list runs newest first, by (created, id) descending;
- `limit` default 10, 1..100 (more is an error);
- `starting_after=X`: the page starts WITH X, then the objects after it;
- `ending_before=X`: the page starts WITH X, then the objects before it
  (newer ones), nearest first, so pages are not sorted by created;
- `created.gt` / `created.lt` (epoch ms, exclusive) bound the list;
- `has_more`: more objects lie beyond the page in its direction.
A cursor must be the id of an object this fake has already listed
(they are looked up in an index of listed ids); others get HTTP 400.
"""

import random

from .data import HOUR_MS, clover_id, stable_hash

KINDS = ("orders", "charges", "refunds")
MAX_LIMIT = 100
_INDEX_MAX = 2_000_000


class PageError(ValueError):
    """A bad request (HTTP 400)."""


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


def _charge(p):
    obj = {"id": p["id"], "object": "charge", "amount": p["amount"], "currency": "usd",
           "created": p["createdTime"], "order": p["order"]["id"],
           "paid": p["result"] == "SUCCESS", "captured": p["result"] == "SUCCESS",
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
    """The v1 objects of kind created in one hour bucket, by (created, id)."""
    orders = gen.orders(merchant, orders_per_day, bucket_ms)
    payments = gen.payments(merchant, orders, bucket_ms)
    if kind == "orders":
        charge_of = {}
        for p in payments:
            charge_of.setdefault(p["order"]["id"], p["id"])
        objs = [_order(o, charge_of.get(o["id"])) for o in orders]
    elif kind == "charges":
        objs = [_charge(p) for p in payments]
    else:
        state_of = {o["id"]: o["paymentState"] for o in orders}
        objs = [_refund(p, state_of[p["order"]["id"]], bucket_ms) for p in payments
                if p["result"] == "SUCCESS"
                and state_of[p["order"]["id"]] in ("REFUNDED", "PARTIALLY_REFUNDED")]
    objs.sort(key=lambda x: (x["created"], x["id"]))
    return objs


class Lister:
    """Answers list requests; remembers listed ids so they work as cursors."""

    def __init__(self, gen):
        self.gen = gen
        self._created_of = {}   # (kind, merchant, id) -> created

    def page(self, kind, merchant, orders_per_day, lo, hi, limit,
             starting_after=None, ending_before=None):
        """(data, has_more) for created in [lo, hi] (inclusive ms bounds)."""
        if starting_after and ending_before:
            raise PageError("use either starting_after or ending_before, not both")
        cursor = starting_after or ending_before
        if cursor:
            created = self._created_of.get((kind, merchant, cursor))
            objs = [] if created is None else bucket_objects(
                self.gen, kind, merchant, orders_per_day, created - created % HOUR_MS)
            if not any(o["id"] == cursor for o in objs):
                raise PageError("No such %s: %s" % (kind[:-1], cursor))
            start = (created, cursor)
        else:
            start = (hi, "\uffff")
        out = []
        if lo <= hi:
            if ending_before:
                buckets = range(start[0] - start[0] % HOUR_MS, hi + 1, HOUR_MS)
            else:
                buckets = range(min(start[0], hi) - min(start[0], hi) % HOUR_MS,
                                lo - lo % HOUR_MS - 1, -HOUR_MS)
            for b in buckets:
                objs = bucket_objects(self.gen, kind, merchant, orders_per_day, b)
                if not ending_before:
                    objs.reverse()
                for o in objs:
                    key = (o["created"], o["id"])
                    if lo <= o["created"] <= hi and (
                            key >= start if ending_before else key <= start):
                        out.append(o)
                if len(out) > limit:
                    break
        data = out[:limit]
        if len(self._created_of) > _INDEX_MAX:
            self._created_of.clear()
        for o in data:
            self._created_of[(kind, merchant, o["id"])] = o["created"]
        return data, len(out) > limit
