"""Deterministic, scalable merchant data: orders and payments.

Nothing is stored.  Every object belongs to one UTC hour ("bucket") of one
merchant, and a bucket is generated on demand from its own random stream,
``random.Random(stable_hash(seed, merchant, type, bucket))``, so any time
window can be produced without producing anything else, and the same seed
always gives the same objects, byte for byte.

Rules the tests rely on:

- Hour counts follow a daily profile (with a weekday factor) whose long-run
  average is the merchant's ``orders_per_day``.
- Every UTC midnight has exactly one order created exactly at 00:00:00.000,
  paid by one payment also created exactly at 00:00:00.000; no other order or
  payment ever falls on a midnight.
- An order has 0-2 payments, created in the same hour bucket at or after the
  order.  Orders and payments are sorted by createdTime inside a bucket.
- ``total`` is the sum of the line items (price * unitQty / 1000); the
  payments of a PAID order add up to its total.
- Optional fields (note, title, employee, device, state,
  externalReferenceId, ...) are sometimes null and sometimes absent; texts
  include accents, CJK, emoji, double quotes, backslashes, newlines and tabs.

Which window or existence rules apply (data_start, "now", lag, inclusive
ends) is decided by the callers; this module only answers "what is in these
buckets".
"""

import hashlib
import math
import random
from operator import itemgetter

HOUR_MS = 3_600_000
DAY_MS = 86_400_000

# Relative order volume per UTC hour (two meal peaks), and per weekday
# (Monday first).  Both are normalised below so that the average day has
# exactly orders_per_day orders.
_HOUR_WEIGHTS = [5, 4, 3, 2, 1, 1, 1, 1, 2, 3, 4, 6, 8, 9, 8, 6, 5, 6, 8, 10, 11, 10, 8, 6]
_WEEKDAY_FACTORS = [0.90, 0.90, 0.95, 1.00, 1.15, 1.25, 0.85]
_HOUR_SHARE = [w / sum(_HOUR_WEIGHTS) for w in _HOUR_WEIGHTS]
_WEEKDAY_SHARE = [f * 7 / sum(_WEEKDAY_FACTORS) for f in _WEEKDAY_FACTORS]

# Clover ids: 13 characters of Crockford's base-32 alphabet (upper-case
# letters and digits, without I, L, O, U), from 64 random bits: six pairs of
# characters for 10 bits each (looked up), one character for the last 4.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]

# Texts: plain ones plus every awkward case a JSON parser must survive.
_NOTES = [
    "Extra napkins", "No ice", "Allergic to nuts!", "Pick-up at 6pm",
    'Customer said "no onions"', 'Sign reads "Happy Birthday"',
    "Allergies:\n- peanuts\n- shellfish", "Deliver to back door\nRing twice",
    "col1\tcol2\tcol3", "Split:\tcard\tcash",
    "Receipt saved to C:\\POS\\receipts\\0001.txt", "path\\to\\nowhere \\n is not a newline",
    "Café crème, très chaud", "Jalapeño extra, ñandú, Smörgåsbord, Ærøskøbing",
    "请尽快送达", "ラーメン大盛り", "김치 추가", "🎂 birthday party 🎉",
    "🍕🍕🍕 x3", "Mixed: \"quoted\"\t\\back\\ 漢字 😀\nnew line",
    "", "   leading and trailing spaces   ",
]
_TITLES = [
    "Table 1", "Table 12", "Bar 3", "Patio 7", "Walk-in", "Online order",
    "Ms. Müller", "José's party", "O'Brien & Co.", '"VIP" table',
    "山田様", "Ресторан", "🍔 Drive-thru", "Tab\\Room 2", "Line1\nLine2",
    "Name\tSurname",
]
_ITEM_NAMES = [
    ("Coffee", 295), ("Latte", 450), ("Café au lait", 395), ("Crème brûlée", 725),
    ("Bagel", 325), ("Croissant", 350), ("Jalapeño poppers", 895),
    ("Bánh mì", 1150), ("拉面", 1395), ("寿司 盛り合わせ", 2450), ("Smörgås", 1095),
    ("🍔 Burger", 1295), ('12" Pizza', 1599), ("Fish & Chips", 1450),
    ("Soup\\Salad combo", 1095), ("Iced tea", 275), ("Orange juice", 395),
    ("Caesar salad", 1050), ("Club sandwich", 1195), ("Pasta al pomodoro", 1375),
    ("Steak frites", 2795), ("Cheesecake", 695), ("Sparkling water", 250),
    ("House wine (glass)", 900), ("Draft beer", 700), ("Kids menu", 795),
    ("Gift card reload", 2500), ("Tip jar", 100), ("Délice du jour", 1250),
    ("Ice cream scoop", 325),
]
_ORDER_TYPES = ["Dine In", "Take Out", "Delivery", "Online"]
_TENDERS = [  # (labelKey, label, share, is_card)
    ("com.clover.tender.credit_card", "Credit Card", 0.58, True),
    ("com.clover.tender.debit_card", "Debit Card", 0.17, True),
    ("com.clover.tender.cash", "Cash", 0.20, False),
    ("com.clover.tender.external_gift_card", "Gift Card", 0.05, False),
]
_CARD_TYPES = [("VISA", "411111"), ("MC", "545454"), ("AMEX", "371449"), ("DISCOVER", "601100")]
_ENTRY_TYPES = ["EMV_CONTACT", "EMV_CONTACTLESS", "SWIPED", "KEYED"]
_PAYMENT_STATES = [  # (paymentState, cumulative share)
    ("PAID", 0.84), ("OPEN", 0.89), ("PARTIALLY_PAID", 0.92), ("REFUNDED", 0.95),
    ("PARTIALLY_REFUNDED", 0.97), ("CREDITED", 1.0)]
_PAY_TYPES = ["SPLIT_GUEST", "SPLIT_ITEM", "SPLIT_CUSTOM"]
_RESULTS = [  # (result, cumulative share)
    ("SUCCESS", 0.93), ("FAIL", 0.95), ("VOIDED", 0.97), ("AUTH", 0.98),
    ("OFFLINE_RETRYING", 0.99), ("PENDING", 1.0)]


def stable_hash(*parts):
    """A 64-bit hash of the parts that does not change between runs."""
    text = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def clover_id(rng):
    """A 13-character Clover-style id drawn from rng."""
    n = rng.getrandbits(64)
    return (_PAIRS[n >> 54] + _PAIRS[(n >> 44) & 1023] + _PAIRS[(n >> 34) & 1023]
            + _PAIRS[(n >> 24) & 1023] + _PAIRS[(n >> 14) & 1023] + _PAIRS[(n >> 4) & 1023]
            + _ALPHABET[n & 15])


def _cumulative_pick(table, x):
    for value, limit in table:
        if x < limit:
            return value
    return table[-1][0]


class _MerchantPools:
    """Per-merchant fixed things: employees, devices, catalog, tenders."""

    def __init__(self, seed, merchant):
        rng = random.Random(stable_hash(seed, merchant, "POOLS"))
        self.employees = [clover_id(rng) for _ in range(8)]
        self.devices = [clover_id(rng) for _ in range(3)]
        self.order_types = [(clover_id(rng), label) for label in _ORDER_TYPES]
        self.items = [(clover_id(rng), name, price, "SKU-%04d" % i)
                      for i, (name, price) in enumerate(_ITEM_NAMES)]
        self.tenders = [(clover_id(rng), key, label, share, card)
                        for key, label, share, card in _TENDERS]


class Generator:
    """Generates the objects of hour buckets for one seed."""

    def __init__(self, seed):
        self.seed = seed
        self._pools = {}

    def pools(self, merchant):
        p = self._pools.get(merchant)
        if p is None:
            p = self._pools[merchant] = _MerchantPools(self.seed, merchant)
        return p

    # -- public interface ---------------------------------------------------

    def bucket(self, kind, merchant, orders_per_day, bucket_ms):
        """All objects of kind ("ORDERS" or "PAYMENTS") created in the hour
        starting at bucket_ms, sorted by createdTime."""
        orders = self.orders(merchant, orders_per_day, bucket_ms)
        if kind == "ORDERS":
            return orders
        return self.payments(merchant, orders, bucket_ms)

    def window(self, kind, merchant, orders_per_day, lo, hi):
        """Yield, bucket by bucket, the lists of objects with lo <= createdTime
        < hi, in createdTime order.  Yields one (possibly empty) list per hour
        bucket touched, so callers can report progress."""
        for b in range(lo - lo % HOUR_MS, hi, HOUR_MS):
            objs = self.bucket(kind, merchant, orders_per_day, b)
            if b < lo or b + HOUR_MS > hi:
                objs = [o for o in objs if lo <= o["createdTime"] < hi]
            yield objs

    @staticmethod
    def bucket_count(lo, hi):
        """Number of lists window(lo, hi) yields."""
        return max(0, -(-(hi - (lo - lo % HOUR_MS)) // HOUR_MS))

    # -- orders ---------------------------------------------------------------

    @staticmethod
    def _hour_count(r, orders_per_day, bucket_ms):
        """How many (non-edge) orders the bucket has: Poisson around the
        profile's mean (normal approximation for large means)."""
        day = bucket_ms // DAY_MS
        hour = (bucket_ms % DAY_MS) // HOUR_MS
        mean = orders_per_day * _HOUR_SHARE[hour] * _WEEKDAY_SHARE[(day + 3) % 7]
        if mean <= 0:
            return 0
        if mean > 40:
            u1, u2 = r() or 1e-12, r()
            z = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
            return max(0, int(mean + z * math.sqrt(mean) + 0.5))
        limit, k, p = math.exp(-mean), 0, r()
        while p > limit:
            k += 1
            p *= r()
        return k

    def orders(self, merchant, orders_per_day, bucket_ms):
        """The orders of one hour bucket, sorted by createdTime."""
        pools = self.pools(merchant)
        rng = random.Random(stable_hash(self.seed, merchant, "ORDERS", bucket_ms))
        r = rng.random
        n = self._hour_count(r, orders_per_day, bucket_ms)
        # offsets inside the hour; only the midnight edge order sits at 0
        offsets = sorted([1 + int(r() * (HOUR_MS - 1)) for _ in range(n)])
        if bucket_ms % DAY_MS == 0:
            offsets.insert(0, 0)
        employees, devices, items = pools.employees, pools.devices, pools.items
        order_types = pools.order_types
        orders = []
        for off in offsets:
            t = bucket_ms + off
            oid = clover_id(rng)
            cct = t - int(r() * 4000)
            lines = []
            total = 0
            for _ in range(1 + int(r() * r() * 6)):  # 1-6, about 2
                item_id, name, price, sku = items[int(r() * len(items))]
                x = r()
                qty = 1000 if x < 0.8 else (2000 if x < 0.9 else 500 + int(r() * 8) * 250)
                refunded = r() < 0.02
                line = {
                    "id": clover_id(rng),
                    "orderRef": {"id": oid},
                    "item": {"id": item_id},
                    "name": name,
                    "price": price,
                    "unitQty": qty,
                    "itemCode": sku,
                    "printed": r() < 0.7,
                    "createdTime": t + int(r() * 2000),
                    "orderClientCreatedTime": cct,
                    "exchanged": False,
                    "refunded": refunded,
                    "isRevenue": True,
                }
                if x > 0.97:
                    line["note"] = _NOTES[int(r() * len(_NOTES))]
                lines.append(line)
                total += price * qty // 1000
            state = "PAID" if off == 0 else _cumulative_pick(_PAYMENT_STATES, r())
            if state == "OPEN":
                unpaid = total
            elif state == "PARTIALLY_PAID":
                unpaid = total - total * (1 + int(r() * 8)) // 10
            else:
                unpaid = 0
            o = {"id": oid, "currency": "USD"}
            x = r()
            if x < 0.85:
                o["employee"] = {"id": employees[int(r() * len(employees))]}
            elif x < 0.95:
                o["employee"] = None
            o["total"] = total
            o["unpaidBalance"] = unpaid
            o["paymentState"] = state
            x = r()
            if x < 0.35:
                o["title"] = _TITLES[int(r() * len(_TITLES))]
            elif x < 0.5:
                o["title"] = None
            x = r()
            if x < 0.35:
                o["note"] = _NOTES[int(r() * len(_NOTES))]
            elif x < 0.5:
                o["note"] = None
            ot_id, ot_label = order_types[int(r() * len(order_types))]
            o["orderType"] = {"id": ot_id, "label": ot_label}
            o["taxRemoved"] = r() < 0.03
            o["isVat"] = False
            x = r()
            if x < 0.80:
                o["state"] = "locked"
            elif x < 0.88:
                o["state"] = "open"
            elif x < 0.95:
                o["state"] = "OPEN"
            elif x < 0.98:
                o["state"] = None
            o["manualTransaction"] = r() < 0.05
            o["groupLineItems"] = r() < 0.5
            o["testMode"] = False
            o["payType"] = "FULL" if r() < 0.85 or off == 0 else _PAY_TYPES[int(r() * 3)]
            o["createdTime"] = t
            o["clientCreatedTime"] = cct
            o["modifiedTime"] = t + int(r() * r() * 7_200_000)
            x = r()
            if x < 0.9:
                o["device"] = {"id": devices[int(r() * len(devices))]}
            elif x < 0.95:
                o["device"] = None
            x = r()
            if x < 0.2:
                o["externalReferenceId"] = "EXT-%08d" % int(r() * 1e8)
            elif x < 0.25:
                o["externalReferenceId"] = None
            o["lineItems"] = {"elements": lines}
            orders.append(o)
        return orders

    # -- payments -------------------------------------------------------------

    def payments(self, merchant, orders, bucket_ms):
        """The payments of one hour bucket, given its orders."""
        pools = self.pools(merchant)
        rng = random.Random(stable_hash(self.seed, merchant, "PAYMENTS", bucket_ms))
        r = rng.random
        last_ms = bucket_ms + HOUR_MS - 1
        payments = []
        for o in orders:
            state = o["paymentState"]
            if state == "OPEN":
                continue
            paid = o["total"] - o["unpaidBalance"]
            parts = [paid // 2, paid - paid // 2] if (
                state == "PAID" and o["payType"] != "FULL") else [paid]
            t = o["createdTime"]
            edge = t % DAY_MS == 0
            for amount in parts:
                t = t if edge else min(last_ms, t + int(r() * r() * 1_800_000))
                payments.append(self._payment(r, rng, pools, o, amount, t, edge))
        payments.sort(key=itemgetter("createdTime"))
        return payments

    @staticmethod
    def _payment(r, rng, pools, order, amount, t, edge):
        x = r()
        for tender_id, key, label, share, card in pools.tenders:
            x -= share
            if x < 0:
                break
        tip = int(amount * (0.1 + r() * 0.1)) if card and r() < 0.6 else 0
        p = {
            "id": clover_id(rng),
            "order": {"id": order["id"]},
            "device": {"id": pools.devices[int(r() * len(pools.devices))]},
            "tender": {"id": tender_id, "labelKey": key, "label": label},
            "amount": amount,
            "tipAmount": tip,
            "taxAmount": amount * 8 // 108,
            "cashbackAmount": 500 * int(r() * 3) if key.endswith("debit_card") and r() < 0.1 else 0,
        }
        if key.endswith(".cash"):
            p["cashTendered"] = -(-amount // 500) * 500
        x = r()
        if x < 0.1:
            p["externalPaymentId"] = "ext-%010d" % int(r() * 1e10)
        elif x < 0.13:
            p["externalPaymentId"] = None
        p["employee"] = {"id": pools.employees[int(r() * len(pools.employees))]}
        p["createdTime"] = t
        p["clientCreatedTime"] = t - int(r() * 3000)
        p["modifiedTime"] = t + int(r() * 60_000)
        p["offline"] = r() < 0.01
        p["result"] = "SUCCESS" if edge else _cumulative_pick(_RESULTS, r())
        if card:
            card_type, first6 = _CARD_TYPES[int(r() * len(_CARD_TYPES))]
            p["cardTransaction"] = {
                "cardType": card_type,
                "entryType": _ENTRY_TYPES[int(r() * len(_ENTRY_TYPES))],
                "first6": first6,
                "last4": "%04d" % int(r() * 10000),
                "type": "AUTH" if r() < 0.9 else "PREAUTH",
                "authCode": "%06d" % int(r() * 1e6),
                "referenceId": "%012d" % int(r() * 1e12),
                "transactionNo": "%06d" % int(r() * 1e6),
                "state": "CLOSED" if r() < 0.95 else "PENDING",
            }
        x = r()
        if x < 0.1:
            p["note"] = _NOTES[int(r() * len(_NOTES))]
        elif x < 0.15:
            p["note"] = None
        return p
