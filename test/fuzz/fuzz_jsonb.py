#!/usr/bin/env python3
"""Differential fuzz of the jsonb builder against PostgreSQL's jsonb_in.

The wrapper builds jsonb columns from an export file's validated bytes
instead of calling jsonb_in (src/jsonb_build.c).  This script
serves files of random objects through the fake Clover (a file fault with a
200 body) and checks, object by object, that the whole-object column and
the lineItems column equal jsonb_in of the same text, byte for byte of
their text form.  The objects stress what the builder does itself: key
sorting (0 to 70 keys, long shared prefixes, lengths around the 6-byte sort
prefix, non-ASCII and empty keys), duplicate keys (the last wins),
escapes and surrogate pairs, numbers jsonb keeps as written, nesting.

Run by test/fuzz/fuzz.sh after the conversion fuzz; needs the fake
(FAKE_CLOVER_API, FAKE_CLOVER_ADMIN) and libpq's environment.

  fuzz_jsonb.py [--files N] [--seed S]
"""

import argparse
import os
import random
import sys

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
from common import API, MERCHANT, fake_config, fake_fault, fake_reset  # noqa: E402

DAY_MS = 1706745600000              # 2024-02-01 00:00 UTC
OBJECTS_PER_FILE = 25               # keeps a file under the fake's 1 MB
CHARS = ["a", "b", "é", "ü", "z", "\u00a0", "\\\"", "\\\\", "\\n", "\\u00e9",
         "\\ud83c\\udf63", "A", "0", " ", "/"]
SCALARS = ["0", "-0", "1.50", "1e5", "-7", "12345678901234567890123",
           "9223372036854775807", "-9223372036854775808", "0.000001",
           "true", "false", "null", "3.0E-2", "100"]
RESERVED = ("createdTime", "id", "lineItems")


class Objects:
    def __init__(self, seed):
        self.rnd = random.Random(seed)

    def key(self):
        r = self.rnd
        k = r.choice(["", "createdTime", "aaaaaa", "abcdef"]) + \
            "".join(r.choice(CHARS) for _ in range(r.choice([0, 1, 2, 5, 6, 7, 8, 12, 30])))
        # never shadow the keys the scan itself reads
        return '"%s"' % (k + "_" if k in RESERVED else k)

    def value(self, depth):
        r = self.rnd.random()
        if depth < 3 and r < 0.08:
            return self.obj(depth + 1)
        if depth < 3 and r < 0.14:
            return "[" + ",".join(self.value(depth + 1)
                                  for _ in range(self.rnd.randint(0, 5))) + "]"
        if r < 0.45:
            return self.key()
        return self.rnd.choice(SCALARS)

    def obj(self, depth, first=""):
        r = self.rnd
        sizes = [0, 1, 3, 16, 17, 31, 32, 33, 40, 70] if depth == 0 else [0, 1, 3, 17]
        keys = [self.key() for _ in range(r.choice(sizes))]
        if keys and r.random() < 0.5:
            keys += [r.choice(keys) for _ in range(r.randint(1, 4))]
        r.shuffle(keys)
        ws = r.choice(["", " ", "\n  "])
        pairs = [k + ws + ":" + ws + self.value(depth) for k in keys]
        return "{" + ("," + ws).join(([first] if first else []) + pairs) + "}"

    def file(self, tag):
        els = []
        for i in range(OBJECTS_PER_FILE):
            items = self.obj(1) if self.rnd.random() < 0.5 else self.value(0)
            first = '"id":"%s%d","createdTime":%d,"lineItems":%s' % (
                tag, i, DAY_MS + i * 1000, items)
            els.append(self.obj(0, first))
        return '{"elements":[' + ",".join(els) + "]}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20261123)
    args = ap.parse_args()

    conn = psycopg2.connect("")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION IF NOT EXISTS clover_export_fdw")
    cur.execute("DROP SERVER IF EXISTS jsonb_fuzz CASCADE")
    cur.execute("CREATE SERVER jsonb_fuzz FOREIGN DATA WRAPPER clover_export_fdw "
                "OPTIONS (region 'sandbox', merchant_id %s, base_url %s)",
                (MERCHANT, API))
    cur.execute("CREATE USER MAPPING FOR CURRENT_USER SERVER jsonb_fuzz "
                "OPTIONS (access_token 'test-token')")
    cur.execute("""CREATE FOREIGN TABLE jsonb_fuzz (
        raw jsonb OPTIONS (json_path '$'),
        raw_text text OPTIONS (json_path '$'),
        items jsonb OPTIONS (json_path 'lineItems'),
        items_text text OPTIONS (json_path 'lineItems'),
        created_time timestamptz) SERVER jsonb_fuzz
        OPTIONS (export_type 'ORDERS')""")

    gen = Objects(args.seed)
    objects = differing = 0
    for n in range(args.files):
        tag = "F%dN" % n
        body = gen.file(tag)
        fake_reset()
        fake_config(processing_ms=0, queue_ms=0)
        fake_fault(kind="status", target="file", status=200, count=1, body=body)
        # a string's text column is its decoded contents: compare
        # containers only
        cur.execute("""
            SELECT count(*) FILTER (WHERE raw->>'id' LIKE %s),
                   count(*) FILTER (WHERE raw::text IS DISTINCT FROM raw_text::jsonb::text),
                   count(*) FILTER (WHERE CASE WHEN jsonb_typeof(items) IN ('object', 'array')
                                     THEN items::text IS DISTINCT FROM items_text::jsonb::text
                                     ELSE false END)
              FROM jsonb_fuzz
             WHERE created_time >= '2024-02-01' AND created_time < '2024-02-02'""",
                    (tag + "%",))
        served, raw_bad, items_bad = cur.fetchone()
        if served != OBJECTS_PER_FILE:
            sys.exit("file %d: %d of %d objects came back: the fault did not apply"
                     % (n, served, OBJECTS_PER_FILE))
        objects += served
        if raw_bad or items_bad:
            differing += raw_bad + items_bad
            if differing <= 5:
                print("file %d differs from jsonb_in: %s" % (n, body[:2000]),
                      file=sys.stderr)
    fake_reset()
    cur.execute("DROP SERVER jsonb_fuzz CASCADE")
    print("jsonb builder vs jsonb_in: %d files, %d objects, %d differing"
          % (args.files, objects, differing))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
