#!/usr/bin/env python3
"""Fuzz the export-file conversion path of clover_export_fdw.

Runs mutated Clover export files (bit flips, truncations, insertions, deep
nesting, huge strings, wrong types, bad escapes and UTF-8, odd numbers) through
clover_export_fdw_convert_file(), which is exactly what a scan does with a
downloaded file: split and validate it, then convert every column of every
element.  Each file must either convert or raise a clean error; a lost
connection means the backend crashed.

An oracle checks the verdicts: Python's strict JSON parser decides whether
each file is a well-formed export file ({"elements": [objects]}, UTF-8, no
NaN).  A file it accepts must never be rejected as malformed (SQLSTATE HV00A),
and a file it rejects must never convert.

Usage (a cluster with the extension installed, libpq environment set):
    python3 test/fuzz/fuzz_convert.py [--iterations N] [--seed S] [--save DIR]
test/fuzz/fuzz.sh sets up a throwaway cluster and runs it.
"""

import argparse
import collections
import json
import os
import random
import re
import sys
import time

import psycopg2

TABLE_DDL = """
DROP SERVER IF EXISTS fuzz_srv CASCADE;
CREATE SERVER fuzz_srv FOREIGN DATA WRAPPER clover_export_fdw
    OPTIONS (merchant_id '6E72X1BW38A7T');
IMPORT FOREIGN SCHEMA clover LIMIT TO (clover_orders)
    FROM SERVER fuzz_srv INTO fuzz;
-- every supported type, on the paths the mutations hit
ALTER FOREIGN TABLE fuzz.clover_orders
    ADD COLUMN total_num numeric OPTIONS (json_path 'total'),
    ADD COLUMN total_int integer OPTIONS (json_path 'total'),
    ADD COLUMN balance_small smallint OPTIONS (json_path 'unpaidBalance'),
    ADD COLUMN note_json json OPTIONS (json_path 'note'),
    ADD COLUMN note_vc varchar(40) OPTIONS (json_path 'note'),
    ADD COLUMN created_date date OPTIONS (json_path 'createdTime'),
    ADD COLUMN created_ts timestamp OPTIONS (json_path 'createdTime'),
    ADD COLUMN raw_json json OPTIONS (json_path '$'),
    ADD COLUMN raw_text text OPTIONS (json_path '$'),
    ADD COLUMN emp jsonb OPTIONS (json_path 'employee');
"""

NOTES = ["Crème brûlée ☕", 'no "ice"\nplease', r"back\slash", "日本語 🍣",
         "tab\there", None, "", "\u00e9\u0301"]


def make_order(rnd, t):
    """A realistic order, like the ones Clover exports."""
    o = {
        "id": "".join(rnd.choice("ABCDEFGHJKMNPQRSTVWXYZ0123456789")
                      for _ in range(13)),
        "currency": "USD",
        "employee": {"id": "EMP%09d" % rnd.randint(0, 30)},
        "total": rnd.randint(0, 90000),
        "unpaidBalance": 0,
        "paymentState": rnd.choice(["OPEN", "PAID", "REFUNDED"]),
        "title": "Table %d" % rnd.randint(1, 40),
        "orderType": {"id": "OT%d" % rnd.randint(1, 4), "label": "Dine in"},
        "taxRemoved": False, "isVat": rnd.random() < 0.1,
        "state": rnd.choice(["open", "OPEN", "locked", None]),
        "manualTransaction": False, "testMode": False,
        "payType": rnd.choice(["FULL", "SPLIT_GUEST"]),
        "createdTime": t, "clientCreatedTime": t - rnd.randint(0, 3000),
        "modifiedTime": t + rnd.randint(0, 90000),
        "device": {"id": "DEV%010d" % rnd.randint(0, 9)},
        "lineItems": {"elements": [
            {"id": "LI%011d" % rnd.randint(0, 10**10),
             "name": rnd.choice(["Latte", "Bagel", "Crêpe"]),
             "price": rnd.randint(100, 2500), "unitQty": 1000,
             "printed": True, "createdTime": t, "refunded": False}
            for _ in range(rnd.randint(1, 4))]},
    }
    note = rnd.choice(NOTES)
    if note is not None or rnd.random() < 0.5:
        o["note"] = note
    return o


def make_file(rnd):
    t = 1704067200000 + rnd.randint(0, 10**9)
    els = []
    for _ in range(rnd.randint(0, 40)):
        t += rnd.randint(0, 60000)
        els.append(make_order(rnd, t))
    return json.dumps({"elements": els}, ensure_ascii=rnd.random() < 0.3).encode()


# ---------------------------------------------------------------- mutations

def bit_flip(rnd, b):
    if not b:
        return b
    i = rnd.randrange(len(b))
    return b[:i] + bytes([b[i] ^ (1 << rnd.randrange(8))]) + b[i + 1:]


def byte_set(rnd, b):
    if not b:
        return b
    i = rnd.randrange(len(b))
    c = rnd.choice(b'{}[]",:\\0123456789-+.eE tfn\x00\x7f\x80\xc3\xff\n')
    return b[:i] + bytes([c]) + b[i + 1:]


def truncate(rnd, b):
    return b[:rnd.randrange(len(b) + 1)]


def delete_span(rnd, b):
    if len(b) < 2:
        return b
    i = rnd.randrange(len(b))
    return b[:i] + b[i + rnd.randint(1, 64):]


def duplicate_span(rnd, b):
    if len(b) < 2:
        return b
    i = rnd.randrange(len(b))
    j = min(len(b), i + rnd.randint(1, 200))
    k = rnd.randrange(len(b))
    return b[:k] + b[i:j] + b[k:]


def replace_value(rnd, b, value):
    """Replace the value of a random known key with raw JSON text."""
    keys = [b'"total": ', b'"note": ', b'"createdTime": ', b'"employee": ',
            b'"clientCreatedTime": ', b'"isVat": ', b'"id": ', b'"lineItems": ']
    key = rnd.choice(keys)
    i = b.find(key)
    if i < 0:
        return b
    start = i + len(key)
    # find the end of the value roughly: next ", \"" at the same level
    end = b.find(b', "', start)
    if end < 0:
        return b
    return b[:start] + value + b[end:]


def deep_nesting(rnd, b):
    n = rnd.choice([10, 100, 999, 1000, 1001, 5000, 50000])
    kind = rnd.choice(["array", "object"])
    if kind == "array":
        v = b"[" * n + b"1" + b"]" * n
    else:
        v = b'{"a":' * n + b"1" + b"}" * n
    return replace_value(rnd, b, v)


def huge_string(rnd, b):
    n = rnd.choice([10**4, 10**5, 10**6])
    body = rnd.choice([b"x", b"\\u00e9", b"\\n", "☕".encode()]) * n
    return replace_value(rnd, b, b'"' + body + b'"')


WRONG_VALUES = [
    b'"12"', b'"abc"', b'"yesterday"', b'""', b'null', b'true', b'false',
    b'[]', b'{}', b'[1,2]', b'{"id": 1}', b'1e400', b'-1e400', b'1.5',
    b'-0', b'0.0', b'123456789012345678901234567890', b'-9223372036854775808',
    b'9223372036854775807', b'9223372036854775808', b'32768', b'-32769',
    b'253402300800000', b'-210866803200001', b'1e3', b'"\\u0000"',
    b'"\\ud800"', b'"\\udc00x"', b'"\\ud83d\\ude00"', b'"\\uZZZZ"', b'"\\x"',
    b'"a\x01b"', b'"\xff"', b'"\xc3"', b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80"',
    b'NaN', b'Infinity', b'01', b'-', b'.5', b'+1', b'tru', b'nul',
]


def wrong_type(rnd, b):
    return replace_value(rnd, b, rnd.choice(WRONG_VALUES))


def odd_keys(rnd, b):
    choice = rnd.randrange(4)
    if choice == 0:       # an escaped key that means createdTime
        return b.replace(b'"createdTime"', b'"cre\\u0061tedTime"', 1)
    if choice == 1:       # a duplicate key
        return b.replace(b'"total": ', b'"total": 1, "total": ', 1)
    if choice == 2:       # a second elements array
        return b[:-1] + b', "elements": []}' if b.endswith(b"}") else b
    return b.replace(b'"elements"', rnd.choice([b'"Elements"', b'"elements "',
                                               b'"el\\u0065ments"']), 1)


def whole_file(rnd, b):
    return rnd.choice([b"", b" ", b"null", b"[]", b'{"elements": null}',
                       b'{"elements": {}}', b'{"elements": [1]}',
                       b'{"elements": [{}]}', b'{"elements": [[]]}',
                       b'{"elements": []} x', b'\xef\xbb\xbf{"elements": []}',
                       b'{"elements": [], "elements": []}', b"{" * 3000,
                       b'{"elements": [' + b'{"createdTime": 1},' * 3000 + b'{}]}'])


MUTATORS = [bit_flip, byte_set, truncate, delete_span, duplicate_span,
            deep_nesting, huge_string, wrong_type, wrong_type, wrong_type,
            odd_keys, whole_file]


# ------------------------------------------------------------------- oracle

STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def max_depth(text):
    """Nesting depth of a JSON text, ignoring brackets inside strings."""
    depth = best = 0
    for ch in re.sub(r"[^\[\]{}]", "", STRING_RE.sub('""', text)):
        if ch in "[{":
            depth += 1
            best = max(best, depth)
        else:
            depth -= 1
    return best


def oracle_valid(b):
    """True if b is a well-formed export file, False if not, None if the
    file nests deeper than clover_export_fdw's limit (1000 levels), where
    the two are allowed to differ."""
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if max_depth(text) > 990:
        return None

    def no_constants(name):
        raise ValueError(name)

    def pairs(items):
        keys = [k for k, _ in items]
        obj = dict(items)
        obj["__elements_count"] = keys.count("elements")
        return obj

    try:
        doc = json.loads(text, parse_constant=no_constants,
                         object_pairs_hook=pairs)
    except ValueError:
        return False
    if not isinstance(doc, dict) or doc.get("__elements_count") != 1:
        return False
    els = doc.get("elements")
    return isinstance(els, list) and all(isinstance(e, dict) for e in els)


# --------------------------------------------------------------------- main

def connect():
    conn = psycopg2.connect("")
    conn.autocommit = True
    return conn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--save", default=None,
                    help="directory to keep files that crash or disagree")
    args = ap.parse_args()
    rnd = random.Random(args.seed)

    conn = connect()
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION IF NOT EXISTS clover_export_fdw")
    cur.execute("DROP SCHEMA IF EXISTS fuzz CASCADE; CREATE SCHEMA fuzz")
    cur.execute(TABLE_DDL)

    outcomes = collections.Counter()
    sqlstates = collections.Counter()
    crashes = disagreements = 0
    started = time.time()
    for n in range(args.iterations):
        data = make_file(rnd)
        for _ in range(rnd.randint(1, 3)):
            data = rnd.choice(MUTATORS)(rnd, data)
        valid = oracle_valid(data)
        try:
            cur.execute("SELECT clover_export_fdw_convert_file(%s, 'fuzz.clover_orders')",
                        (psycopg2.Binary(data),))
            cur.fetchone()
            outcomes["converted"] += 1
            verdict_ok = valid is not False
        except psycopg2.Error as e:
            if e.pgcode is None or conn.closed:
                # no SQLSTATE and no connection: the backend died
                crashes += 1
                outcomes["crash"] += 1
                print("CRASH on iteration %d: %s" % (n, e), file=sys.stderr)
                if args.save:
                    os.makedirs(args.save, exist_ok=True)
                    open(os.path.join(args.save, "crash-%d.json" % n), "wb").write(data)
                time.sleep(2)
                conn = connect()
                cur = conn.cursor()
                continue
            outcomes["clean error"] += 1
            sqlstates[e.pgcode] += 1
            # a malformed file must be rejected as such (HV00A), before any
            # value is converted; a well-formed one never is
            malformed = e.pgcode == "HV00A"
            verdict_ok = valid is None or malformed == (valid is False)
        if not verdict_ok:
            disagreements += 1
            if args.save:
                os.makedirs(args.save, exist_ok=True)
                open(os.path.join(args.save, "disagree-%d.json" % n), "wb").write(data)
            if disagreements <= 5:
                print("disagreement on iteration %d (oracle valid=%s)" % (n, valid),
                      file=sys.stderr)

    elapsed = time.time() - started
    print("files: %d in %.1f s" % (args.iterations, elapsed))
    for k, v in sorted(outcomes.items()):
        print("  %-12s %d" % (k, v))
    print("clean errors by SQLSTATE: " +
          ", ".join("%s %d" % kv for kv in sorted(sqlstates.items())))
    print("backend crashes: %d" % crashes)
    print("oracle disagreements: %d" % disagreements)
    return 1 if crashes or disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
