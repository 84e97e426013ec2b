"""Row values equal PostgreSQL's own reading of the same JSON (issue 9).

For random objects and column types, every column the wrapper fills must
equal what PostgreSQL makes of the same value: (raw->>'key')::type for
scalars (the type's input function, domains' checks included), raw->'key'
for jsonb, the text itself for json, NULL for a JSON null or an absent key.
Where PostgreSQL's cast fails the wrapper must fail too, with a clean error
(not a crash, not another value).

- The oracle is PostgreSQL in the same database: a plpgsql function casts
  each value's JSON text (sent as UTF-8 bytes, as the file has it) and says
  "V<text>", "N" or "E<sqlstate>".
- The wrapper's values come from a scan of a file the fake serves (a file
  fault with a 200 body), reading every column no object makes fail, with
  or without the whole-object column (which other jsonb columns are cut
  from).  Cells that fail in PostgreSQL are converted one object at a time
  by clover_export_fdw_convert_file on a table of that column alone.
- Paths: explicit json_path (with or without "$."), "$" for the whole
  object, and column names whose default paths have empty keys ("_",
  "a..b", ".."); keys "$", non-ASCII and quoted; keys sometimes written
  with \\u escapes; duplicate keys (the last wins).
- Both in a UTF-8 database and in a LATIN1 one (createdb -E LATIN1), where
  paths are compared with the file's UTF-8 and text must reach the
  database in its encoding, or fail cleanly.

Also the fixed cases of items 5 and 7 in a LATIN1 database.
"""

import json
import os
import random
import sys

import psycopg2

from common import API, MERCHANT, Tap, connect, fake_config, fake_fault, fake_reset

DAY_MS = 1706745600000              # 2024-02-01 00:00 UTC
DAY = "created_time >= '2024-02-01' AND created_time < '2024-02-02'"
ROUNDS = int(os.environ.get("ROW_VALUES_ROUNDS", "80"))
SEED = int(os.environ.get("ROW_VALUES_SEED", "20261130"))

DOMAINS = """
CREATE DOMAIN rv_cents AS bigint CHECK (VALUE >= 0);
CREATE DOMAIN rv_pos AS integer CHECK (VALUE > 0);
CREATE DOMAIN rv_short AS text CHECK (length(VALUE) < 6);
CREATE DOMAIN rv_required AS integer NOT NULL;
CREATE DOMAIN rv_num AS numeric(5,1);
CREATE DOMAIN rv_object AS jsonb CHECK (jsonb_typeof(VALUE) = 'object');
CREATE DOMAIN rv_stamp AS timestamptz;
"""

# the oracle: PostgreSQL's own reading of one value's JSON text (NULL:
# absent or JSON null); mode scalar: (value #>> '{}')::type; assign: the
# same stored into a column of the type (typmod'd strings, which an
# explicit cast would truncate); jsonb: value::type; json: value::json
ORACLE = """
CREATE FUNCTION rv_cell(val bytea, typ text, mode text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r text;
BEGIN
    IF val IS NULL THEN
        EXECUTE format('SELECT (NULL::%s)::text', typ) INTO r;
    ELSIF mode = 'scalar' THEN
        EXECUTE format('SELECT ((convert_from($1, ''UTF8'')::jsonb #>> ''{}'')::%s)::text', typ)
            INTO r USING val;
    ELSIF mode = 'assign' THEN
        EXECUTE format('CREATE TEMP TABLE IF NOT EXISTS rv_sink (v %s)', typ);
        EXECUTE 'INSERT INTO rv_sink VALUES (convert_from($1, ''UTF8'')::jsonb #>> ''{}'') RETURNING v::text'
            INTO r USING val;
        DROP TABLE rv_sink;
    ELSIF mode = 'jsonb' THEN
        EXECUTE format('SELECT (convert_from($1, ''UTF8'')::jsonb::%s)::text', typ)
            INTO r USING val;
    ELSE
        r := convert_from(val, 'UTF8')::json::text;
    END IF;
    RETURN CASE WHEN r IS NULL THEN 'N' ELSE 'V' || r END;
EXCEPTION WHEN others THEN
    BEGIN
        DROP TABLE IF EXISTS rv_sink;
    EXCEPTION WHEN others THEN NULL;
    END;
    RETURN 'E' || SQLSTATE;
END $$;
"""

# (type, oracle mode)
TYPES = [
    ("text", "scalar"), ("varchar", "scalar"), ('"char"', "scalar"),
    ("name", "scalar"), ("integer", "scalar"), ("smallint", "scalar"),
    ("bigint", "scalar"), ("numeric", "scalar"), ("numeric(6,2)", "scalar"),
    ("real", "scalar"), ("double precision", "scalar"), ("money", "scalar"),
    ("oid", "scalar"), ("boolean", "scalar"), ("uuid", "scalar"),
    ("inet", "scalar"), ("interval", "scalar"), ("integer[]", "scalar"),
    ("text[]", "scalar"), ("bytea", "scalar"),
    ("rv_cents", "scalar"), ("rv_pos", "scalar"), ("rv_short", "scalar"),
    ("rv_required", "scalar"), ("rv_num", "scalar"),
    ("varchar(6)", "assign"), ("char(4)", "assign"),
    ("jsonb", "jsonb"), ("rv_object", "jsonb"), ("json", "json"),
]
WHOLE_TYPES = [("text", "scalar"), ("jsonb", "jsonb"), ("json", "json"),
               ("rv_object", "jsonb"), ("rv_short", "scalar")]

# keys of explicit paths (no dots, not empty); in LATIN1 every column name
# and option must be LATIN1 too
KEYS = ["a", "b", "x", "$", "é", "Ünï", "sp ace", '"q', "a"]
WIDE_KEYS = ["日本"]
# column names whose default paths (camelCase) have empty or odd keys
DEFAULT_NAMES = [("_", [""]), ("__", [""]), ("..", ["", "", ""]),
                 ("a..b", ["a", "", "b"]), ("_.._", ["", "", ""]),
                 ("x._", ["x", ""]), ("$", ["$"]), ("$._b", ["$", "B"]),
                 ("é_a", ["éA"]), ("a_b", ["aB"])]

NUMBERS = ["0", "-0", "5", "-1", "7", "42", "2147483648",
           "9223372036854775808", "1e2", "1E+2", "1.5", "1.50", "-1.5", "0.1",
           "2e-3", "1e400", "12.345", "123456789012345678901234567890",
           "1e-400", "3.0E-2"]
STRINGS = ['"5"', '" 7 "', '"1.5"', '"yes"', '"t"', '"true"', '"abc"', '""',
           '"{1,2}"', '"{a,b}"', '"192.168.0.1"', '"1 day"', '"-0"',
           '"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"', '"$1.50"', '"é"',
           '"\\u00e9"', '"caf\\u00e9"', '"tab\\there"', '"\\"q\\""', '"\\/"',
           '"toolongvalue"', '"ab  "', '"\\\\x41"', '"1706745600000"']
HARD_STRINGS = ['"日本"', '"\\u65e5"', '"\\ud83c\\udf63"', '"x\\u0000y"']
LITERALS = ["true", "false", "null"]
ARRAYS = ['[1,"x"]', '[]', '[1.50, 1e2]', '[{"a":1}]', '[[true]]']


# ------------------------------------------------------------ objects

class Node:
    """A JSON value: its text as written in the file, and for objects the
    (key, node) pairs in file order (the last of equal keys wins)."""

    def __init__(self, text, pairs=None):
        self.text = text
        self.pairs = pairs

    def get(self, key):
        if self.pairs is None:
            return None
        found = None
        for k, v in self.pairs:
            if k == key:
                found = v
        return found


class Gen:
    def __init__(self, seed, latin1):
        self.r = random.Random(seed)
        self.latin1 = latin1
        self.hard = False           # values LATIN1 cannot hold, this round

    def ws(self):
        return self.r.choice(["", "", "", " ", "\n "])

    def key_text(self, key):
        """A key as JSON, sometimes with \\u escapes for its characters."""
        out = []
        for ch in key:
            if ch == '"':
                out.append('\\"')
            elif ch == "\\":
                out.append("\\\\")
            elif self.r.random() < 0.2:
                out.append("\\u%04x" % ord(ch))
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'

    def scalar(self):
        r = self.r.random()
        if r < 0.35:
            return Node(self.r.choice(NUMBERS))
        if r < 0.75:
            pool = STRINGS + (HARD_STRINGS if self.hard else [])
            return Node(self.r.choice(pool))
        if r < 0.87:
            return Node(self.r.choice(LITERALS))
        if r < 0.93:
            return Node(self.r.choice(ARRAYS))
        return self.obj([(self.r.choice(KEYS + [""]), self.scalar())
                         for _ in range(self.r.randint(0, 3))])

    def obj(self, pairs):
        """An object node from (key, node) pairs, sometimes with an earlier
        duplicate of a key (which the last one overrides)."""
        out = list(pairs)
        if out and self.r.random() < 0.15:
            k, _ = self.r.choice(out)
            out.insert(0, (k, self.scalar()))
        text = "{" + ",".join(self.ws() + self.key_text(k) + self.ws() + ":" +
                              self.ws() + v.text for k, v in out) + self.ws() + "}"
        return Node(text, out)

    def at_paths(self, paths):
        """An object holding random values at some of the paths."""
        tree = {}                   # key -> subtree dict or Node

        def put(t, keys):
            k = keys[0]
            if len(keys) == 1:
                t[k] = self.scalar()
            else:
                sub = t.get(k)
                if not isinstance(sub, dict):
                    if sub is not None and self.r.random() < 0.5:
                        return      # keep the scalar: the deeper path is absent
                    sub = t[k] = {}
                put(sub, keys[1:])

        for keys in paths:
            if keys and self.r.random() < 0.8:
                put(tree, keys)

        def build(t):
            items = list(t.items())
            self.r.shuffle(items)
            return [(k, build_node(v)) for k, v in items]

        def build_node(v):
            return self.obj(build(v)) if isinstance(v, dict) else v

        return build(tree)

    def element(self, ident, ms, paths):
        pairs = [("id", Node('"%s"' % ident)), ("createdTime", Node(str(ms)))]
        pairs += self.at_paths(paths)
        return self.obj(pairs)


def value_at(node, keys):
    for k in keys:
        node = node.get(k) if node is not None else None
    return node


# ------------------------------------------------------------ the database

def setup_database(name, encoding):
    admin = connect("postgres")
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        cur.execute("CREATE DATABASE %s ENCODING %%s LC_COLLATE 'C' LC_CTYPE 'C' "
                    "TEMPLATE template0" % name, (encoding,))
    admin.close()
    conn = connect(name)
    conn.set_client_encoding("UTF8")
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION clover_export_fdw")
        # the suite resets the fake: no reuse across statements (common.py)
        cur.execute("ALTER FOREIGN DATA WRAPPER clover_export_fdw "
                    "OPTIONS (ADD reuse_exports '0')")
        cur.execute("CREATE SERVER clover FOREIGN DATA WRAPPER clover_export_fdw "
                    "OPTIONS (region 'sandbox', merchant_id %s, base_url %s)",
                    (MERCHANT, API))
        cur.execute("CREATE USER MAPPING FOR CURRENT_USER SERVER clover "
                    "OPTIONS (access_token 'test-token')")
        cur.execute(DOMAINS)
        cur.execute(ORACLE)
        cur.execute("SET lc_monetary = 'C'")
    return conn


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text):
    return "'" + text.replace("'", "''") + "'"


def column_sql(col):
    opts = ""
    if col["path"] is not None:
        opts = " OPTIONS (json_path %s)" % quote_literal(col["path"])
    return "%s %s%s" % (quote_ident(col["name"]), col["type"], opts)


def file_text(elements):
    return '{"elements":[' + ",".join(e.text for e in elements) + "]}"


class BackendDied(Exception):
    pass


def run(conn, sql, args=None):
    """(rows, None) or (None, psycopg2 error); a dead backend raises."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return (cur.fetchall() if cur.description else []), None
    except psycopg2.Error as e:
        if conn.closed:
            raise BackendDied(str(e))
        return None, e


def clean_error(e):
    """An error a user may see: a data exception, an FDW error or a
    constraint of a domain, never an internal one."""
    code = e.pgcode or ""
    return code[:2] in ("22", "HV", "23")


# ------------------------------------------------------------ one round

def make_columns(gen, latin1):
    cols = []
    names = set()
    keys = KEYS + ([] if latin1 else WIDE_KEYS)
    for i in range(gen.r.randint(4, 10)):
        r = gen.r.random()
        if r < 0.2:
            name, path_keys = gen.r.choice(DEFAULT_NAMES)
            if name in names:
                continue
            typ, mode = gen.r.choice(TYPES)
            cols.append({"name": name, "path": None, "keys": path_keys,
                         "type": typ, "mode": mode})
        elif r < 0.3:
            name = "w%d" % i
            typ, mode = gen.r.choice(WHOLE_TYPES)
            cols.append({"name": name, "path": "$", "keys": [],
                         "type": typ, "mode": mode})
        else:
            name = "c%d" % i
            path_keys = [gen.r.choice(keys) for _ in range(gen.r.choice([1, 1, 2, 3]))]
            path = ".".join(path_keys)
            # a path starting with the key "$" needs the "$." ("$" alone
            # is the whole object, "$.x" the key x)
            if path_keys[0] == "$" or gen.r.random() < 0.3:
                path = "$." + path
            typ, mode = gen.r.choice(TYPES)
            cols.append({"name": name, "path": path, "keys": path_keys,
                         "type": typ, "mode": mode})
        names.add(name)
    # the whole object as jsonb, which other jsonb columns are cut from
    cols.append({"name": "raw", "path": "$", "keys": [], "type": "jsonb",
                 "mode": "jsonb"})
    return cols


def oracle(conn, col, element):
    node = element if not col["keys"] else value_at(element, col["keys"])
    val = None
    if node is not None and node.text != "null":
        val = psycopg2.Binary(node.text.encode("utf-8"))
    rows, err = run(conn, "SELECT rv_cell(%s, %s, %s)", (val, col["type"], col["mode"]))
    if err:
        raise RuntimeError("the oracle failed: %s" % err)
    return rows[0][0]


class Stats:
    def __init__(self):
        self.cells = self.values = self.errors = self.rounds = 0
        self.bad = []


def scan_compare(conn, table, cols, which, elements, objects, expect, stats, where):
    """Scan a file of the given objects through the fake, reading the
    columns `which` of table; compare every cell with the oracle's."""
    objects = list(objects)
    if not which or not objects:
        return
    fake_fault(kind="status", target="file", status=200, count=1,
               body=file_text([elements[i] for i in objects]))
    rows, err = run(conn, "SELECT id, %s FROM %s WHERE %s"
                    % (", ".join("%s::text" % quote_ident(cols[j]["name"]) for j in which),
                       table, DAY))
    if err:
        stats.bad.append("%s: the scan of %s failed: %s %s / %s"
                         % (where, [cols[j]["name"] for j in which], err.pgcode,
                            err.diag.message_primary, err.diag.context))
        return
    by_id = {r[0]: r[1:] for r in rows}
    for i in objects:
        e = elements[i]
        got = by_id.get(json.loads(e.get("id").text))
        if got is None or len(rows) != len(objects):
            stats.bad.append("%s: %d rows for %d objects" % (where, len(rows), len(objects)))
            return
        for pos, j in enumerate(which):
            stats.cells += 1
            stats.values += 1
            want = expect[i][j]
            have = "N" if got[pos] is None else "V" + got[pos]
            if have != want:
                stats.bad.append(
                    "%s: column %s %s (path %r) of object %s: wrapper %r, PostgreSQL %r"
                    % (where, cols[j]["name"], cols[j]["type"], cols[j]["keys"],
                       e.text[:300], have, want))


def one_round(conn, gen, rnd, stats, tag):
    latin1 = gen.latin1
    gen.hard = gen.r.random() < (0.25 if latin1 else 0.5)
    cols = make_columns(gen, latin1)
    paths = [c["keys"] for c in cols if c["keys"]]
    n = gen.r.randint(3, 20)
    elements = [gen.element("R%dO%d" % (rnd, i), DAY_MS + i * 1000, paths)
                for i in range(n)]
    expect = [[oracle(conn, c, e) for c in cols] for e in elements]
    stats.rounds += 1

    schema = "rv_%d" % rnd
    run(conn, "DROP SCHEMA IF EXISTS %s CASCADE" % schema)
    run(conn, "CREATE SCHEMA %s" % schema)
    _, err = run(conn, "CREATE FOREIGN TABLE %s.t (id text, created_time timestamptz, %s) "
                 "SERVER clover OPTIONS (export_type 'ORDERS')"
                 % (schema, ", ".join(column_sql(c) for c in cols)))
    if err:
        raise RuntimeError("cannot create the table: %s" % err)

    # columns no object makes fail: one scan, values compared cell by cell
    erring = [j for j in range(len(cols))
              if any(expect[i][j].startswith("E") for i in range(n))]
    good = [j for j in range(len(cols)) if j not in erring]
    if good and cols[good[-1]]["name"] == "raw" and gen.r.random() < 0.3:
        good = good[:-1]        # sometimes without raw to cut jsonb from
    scan_compare(conn, "%s.t" % schema, cols, good, elements, range(n),
                 expect, stats, "%s round %d" % (tag, rnd))

    # columns some object makes fail: each object alone must fail or not
    # as in PostgreSQL, and the others, scanned together, give its values
    for j in erring:
        c = cols[j]
        table = "%s.c%d" % (schema, j)
        _, err = run(conn, "CREATE FOREIGN TABLE %s (id text, created_time timestamptz, %s) "
                     "SERVER clover OPTIONS (export_type 'ORDERS')" % (table, column_sql(c)))
        if err:
            raise RuntimeError("cannot create a table: %s" % err)
        fine = [i for i in range(n) if not expect[i][j].startswith("E")]
        scan_compare(conn, table, cols, [j], elements, fine, expect, stats,
                     "%s round %d" % (tag, rnd))
        for i, e in enumerate(elements):
            if i in fine:
                continue
            stats.cells += 1
            stats.errors += 1
            rows, err = run(conn, "SELECT clover_export_fdw_convert_file(%s, %s)",
                            (psycopg2.Binary(file_text([e]).encode("utf-8")), table))
            if err is None or not clean_error(err):
                stats.bad.append(
                    "%s round %d: column %s %s (path %r) of object %s: PostgreSQL fails "
                    "(%s), the wrapper %s" % (tag, rnd, c["name"], c["type"], c["keys"],
                                              e.text[:300], expect[i][j],
                                              "does not" if err is None else
                                              "fails with %s %s" % (err.pgcode, err)))
    run(conn, "DROP SCHEMA %s CASCADE" % schema)


def differential(tap, name, encoding, seed):
    conn = setup_database(name, encoding)
    gen = Gen(seed, encoding == "LATIN1")
    stats = Stats()
    crashed = None
    try:
        for rnd in range(ROUNDS):
            one_round(conn, gen, rnd, stats, name)
    except BackendDied as e:
        crashed = e
    tap.note("%s: %d rounds, %d cells (%d values compared, %d errors expected), "
             "%d differing" % (encoding, stats.rounds, stats.cells, stats.values,
                               stats.errors, len(stats.bad)))
    for b in stats.bad[:8]:
        tap.note(b.replace("\n", "\\n"))
    tap.check(crashed is None, "%s: no backend crashed in %d rounds" % (encoding, stats.rounds),
              repr(crashed))
    tap.check(not stats.bad and stats.cells > 0,
              "%s: %d random cells equal PostgreSQL's own values and errors"
              % (encoding, stats.cells), "%d differ" % len(stats.bad))
    if crashed is None:
        conn.close()


# ------------------------------------------------------------ fixed cases

def latin1_cases(tap):
    """Items 5 and 7 in a LATIN1 database."""
    conn = setup_database("itest_rows_latin1", "LATIN1")
    with conn.cursor() as cur:
        cur.execute("""CREATE FOREIGN TABLE latin (
            id text, created_time timestamptz, "prénom" text,
            nom text OPTIONS (json_path 'données.nom'), nom_j jsonb OPTIONS (json_path 'données.nom'),
            raw jsonb OPTIONS (json_path '$')) SERVER clover OPTIONS (export_type 'ORDERS')""")
        cur.execute("""CREATE FOREIGN TABLE latin_text (
            id text, created_time timestamptz, "prénom" text)
            SERVER clover OPTIONS (export_type 'ORDERS')""")
        cur.execute("""CREATE FOREIGN TABLE odd (
            id text, created_time timestamptz, "_" jsonb, "a..b" jsonb,
            raw jsonb OPTIONS (json_path '$')) SERVER clover OPTIONS (export_type 'ORDERS')""")
    body = ('{"elements":[{"id":"L1","createdTime":%d,"prénom":"Élodie","données":{"nom":"Çà"}},'
            '{"id":"L2","createdTime":%d,"pr\\u00e9nom":"Zo\\u00e9","donn\\u00e9es":{"nom":"Brontë"}}]}'
            % (DAY_MS, DAY_MS + 1000))
    for with_raw in (False, True):
        fake_fault(kind="status", target="file", status=200, count=1, body=body)
        rows, err = run(conn, 'SELECT id, "prénom", nom, nom_j::text%s FROM latin WHERE %s ORDER BY id'
                        % (", raw IS NOT NULL" if with_raw else "", DAY))
        want = [("L1", "Élodie", "Çà", '"Çà"'), ("L2", "Zoé", "Brontë", '"Brontë"')]
        tap.check(err is None and [r[:4] for r in rows] == want,
                  "latin1: non-ASCII keys find their values%s" % (" (with raw)" if with_raw else ""),
                  repr(rows or err))

    # text the database cannot hold: a clean error, in a scan and in
    # clover_export_fdw_convert_file
    for value in ('"日本"', '"\\u65e5"'):
        body = ('{"elements":[{"id":"L3","createdTime":%d,"prénom":%s}]}' % (DAY_MS, value))
        fake_fault(kind="status", target="file", status=200, count=1, body=body)
        _, err = run(conn, 'SELECT "prénom" FROM latin WHERE %s' % DAY)
        tap.check(err is not None and err.pgcode == "22P05",
                  "latin1: %s cannot be stored: untranslatable character" % value,
                  repr(err and (err.pgcode, str(err))))
        _, err = run(conn, "SELECT clover_export_fdw_convert_file(%s, 'latin_text')",
                     (psycopg2.Binary(body.encode("utf-8")),))
        tap.check(err is not None and err.pgcode == "22P05",
                  "latin1: %s cannot be stored by convert_file either" % value,
                  repr(err and (err.pgcode, str(err))))

    # an empty default path next to raw (item 7): no crash, raw's own values
    body = ('{"elements":[{"id":"O1","createdTime":%d,"":{"k":"é"},"a":{"":{"b":7},"b":8}}]}'
            % DAY_MS)
    try:
        rows, err = run(conn, "SELECT clover_export_fdw_convert_file(%s, 'odd')",
                        (psycopg2.Binary(body.encode("utf-8")),))
        tap.check(err is None and rows == [(1,)],
                  "latin1: convert_file of an empty path next to raw", repr(rows or err))
        fake_fault(kind="status", target="file", status=200, count=1, body=body)
        rows, err = run(conn, 'SELECT "_"::text, "a..b"::text, raw -> \'\' = "_" '
                        'AND raw #> \'{a,"",b}\' = "a..b" FROM odd WHERE %s' % DAY)
        tap.check(err is None and rows == [('{"k": "é"}', "7", True)],
                  "latin1: empty keys next to raw are raw's own values", repr(rows or err))
    except BackendDied as e:
        tap.check(False, "latin1: convert_file of an empty path next to raw", repr(e))
        return
    conn.close()


def main():
    tap = Tap()
    fake_reset()
    fake_config(processing_ms=0, queue_ms=0)
    latin1_cases(tap)
    differential(tap, "itest_rows_utf8", "UTF8", SEED)
    differential(tap, "itest_rows_latin1", "LATIN1", SEED + 1)
    fake_reset()
    tap.finish()


if __name__ == "__main__":
    sys.exit(main())
