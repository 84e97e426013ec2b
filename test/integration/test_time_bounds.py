"""Time bounds, tested against PostgreSQL's own filter.

For random ranges, bound kinds (<, <=, =, >, >=, BETWEEN), bound types
(timestamptz, timestamp, date), conditions on the column's date
(created_time::date = d, date(created_time) >= d, ...), session time zones
(with DST changes, half-hour offsets and none) and time column types
(timestamptz, timestamptz(0..3), timestamp, timestamp(0), a domain), the
rows of a scan must be exactly the
rows PostgreSQL keeps when it applies the same condition, in the same
session, to a superset fetched with wide bounds.  The values are drawn near
DST changes and near the objects' own times (a microsecond and half a second
either side), where a range that is one step too narrow loses rows.

CLOVER_BOUNDS_CASES sets the number of random cases (default 400); the seed
is printed, and CLOVER_BOUNDS_SEED replays a run.
"""

import datetime
import os
import random
import zoneinfo

from common import MERCHANT, Tap, fake_config, fake_reset, fresh_database

DB = "itest_bounds"
CASES = int(os.environ.get("CLOVER_BOUNDS_CASES", "400"))
SEED = int(os.environ.get("CLOVER_BOUNDS_SEED", random.randrange(1 << 30)))

UTC = datetime.timezone.utc
# instants near which the bounds fall: DST changes of New York, Berlin and
# Lord Howe (a half-hour change), and a day without any
ANCHORS = [
    datetime.datetime(2024, 3, 10, 7, 0, tzinfo=UTC),
    datetime.datetime(2024, 11, 3, 6, 0, tzinfo=UTC),
    datetime.datetime(2024, 3, 31, 1, 0, tzinfo=UTC),
    datetime.datetime(2024, 10, 27, 1, 0, tzinfo=UTC),
    datetime.datetime(2024, 4, 6, 15, 0, tzinfo=UTC),
    datetime.datetime(2024, 5, 15, 12, 0, tzinfo=UTC),
]
# (Beirut changes at midnight: some days start at 01:00, some hour repeats)
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
         "Asia/Tokyo", "America/St_Johns", "Asia/Beirut"]
# the zone whose DST change each anchor is (most cases use it)
ANCHOR_ZONES = ["America/New_York", "America/New_York", "Europe/Berlin",
                "Europe/Berlin", "Australia/Lord_Howe", "UTC"]
# the time column types: table name -> column type
TABLES = {
    "b_tz": "timestamptz",
    "b_tz0": "timestamptz(0)",
    "b_tz1": "timestamptz(1)",
    "b_tz2": "timestamptz(2)",
    "b_tz3": "timestamptz(3)",
    "b_ts": "timestamp",
    "b_ts0": "timestamp(0)",
    "b_dom": "created_at",
}
SUPERSET_DAYS = 4
JITTER_US = [0, 1, -1, 499000, 500000, 501000, -499000, -500000, -501000,
             1000000, -1000000]


def setup(cur, broken):
    """The tables, the supersets and the objects' times; broken gets the
    tables whose superset could not be read, with the error."""
    cur.execute("CREATE DOMAIN created_at AS timestamptz(0) "
                "CHECK (VALUE > '2000-01-01')")
    for name, coltype in TABLES.items():
        cur.execute("CREATE FOREIGN TABLE %s (id text, created_time %s) "
                    "SERVER clover OPTIONS (export_type 'ORDERS')"
                    % (name, coltype))
    cur.execute("SET timezone = 'UTC'")
    # the objects' exact times, for values near them
    times = []
    for i, anchor in enumerate(ANCHORS):
        lo, hi = (anchor - datetime.timedelta(days=SUPERSET_DAYS),
                  anchor + datetime.timedelta(days=SUPERSET_DAYS))
        cur.execute("SELECT created_time FROM clover_orders "
                    "WHERE created_time >= %s AND created_time < %s", (lo, hi))
        times.append([r[0] for r in cur.fetchall()])
        for name in TABLES:
            # a timestamp column holds UTC wall time: in a UTC session both
            # kinds of literal mean the same
            try:
                cur.execute("CREATE TEMP TABLE s_%s_%d AS SELECT * FROM %s "
                            "WHERE created_time >= %%s AND created_time < %%s"
                            % (name, i, name),
                            (lo.replace(tzinfo=None), hi.replace(tzinfo=None)))
            except Exception as e:
                broken[name] = str(e).splitlines()[0]
    return times


def literal(rng, instant, zone_name):
    """A bound value near instant, as SQL: a timestamptz, a timestamp (wall
    time in UTC or in the session's zone) or a date."""
    kind = rng.choice(["timestamptz", "timestamptz", "timestamp", "date"])
    if kind == "timestamptz":
        return "'%s'::timestamptz" % instant.isoformat()
    if kind == "date":
        return "'%s'::date" % instant.date().isoformat()
    wall = instant.replace(tzinfo=None)
    if rng.random() < 0.5:
        return "'%s'::timestamp" % wall.isoformat()
    return ("('%s'::timestamptz AT TIME ZONE '%s')"
            % (instant.isoformat(), zone_name))


def rounded(t, digits, up):
    """t rounded to that many fractional digits of a second, up or down."""
    unit = 10 ** (6 - digits)
    us = t.microsecond - t.microsecond % unit
    t = t.replace(microsecond=us)
    return t + datetime.timedelta(microseconds=unit) if up else t


def random_instant(rng, anchor, times):
    """Near an object's time (a column of lower precision shows it rounded),
    near the anchor's DST change, or within a day of it."""
    r = rng.random()
    if r < 0.4 and times:
        near = [t for t in times if abs((t - anchor).total_seconds()) < 86400]
        t = rng.choice(near or times)
        if rng.random() < 0.5:
            return rounded(t, rng.randrange(3), rng.random() < 0.5)
        return t + datetime.timedelta(microseconds=rng.choice(JITTER_US))
    if r < 0.85:
        return anchor + datetime.timedelta(seconds=rng.uniform(-5400, 5400))
    return anchor + datetime.timedelta(seconds=rng.uniform(-86400, 86400))


def date_condition(rng, lo, hi, zone):
    """Conditions on the column's date: days from the day before lo's date
    in the session's zone to the day after it (inside the superset)."""
    d = (lo.astimezone(zoneinfo.ZoneInfo(zone)).date()
         + datetime.timedelta(days=rng.choice([-1, 0, 0])))
    d1 = d + datetime.timedelta(days=1)
    col = rng.choice(["created_time::date", "date(created_time)",
                      "CAST(created_time AS date)"])
    form = rng.choice(["=", "=", "between", "mixed", "range"])
    if form == "=":
        return "%s = '%s'" % (col, d)
    if form == "between":
        return "%s BETWEEN '%s' AND '%s'" % (col, d, rng.choice([d, d1]))
    if form == "mixed":
        return "%s >= '%s' AND created_time %s %s" % (
            col, d, rng.choice(["<", "<="]), literal(rng, hi, zone))
    low = rng.choice([">= '%s'" % d, "> '%s'" % (d - datetime.timedelta(1))])
    high = rng.choice(["<= '%s'" % d, "< '%s'" % d1, "<= '%s'" % d1])
    return "%s %s AND %s %s" % (col, low, col, high)


def random_condition(rng, anchor, times, zone):
    lo = random_instant(rng, anchor, times)
    hi = lo + datetime.timedelta(seconds=rng.choice(
        [0, 0.001, 0.5, 1, 60, 1800, 3600, 7200, rng.uniform(0, 86400)]))
    if rng.random() < 0.3:
        return date_condition(rng, lo, hi, zone)
    form = rng.choice([">=", ">", "=", "between", "between"])
    if form == "=":
        return "created_time = %s" % literal(rng, lo, zone)
    if form == "between":
        return ("created_time BETWEEN %s AND %s"
                % (literal(rng, lo, zone), literal(rng, hi, zone)))
    return ("created_time %s %s AND created_time %s %s"
            % (form, literal(rng, lo, zone), rng.choice(["<", "<="]),
               literal(rng, hi, zone)))


def date_ranges_exact(cur):
    """For created_time::date = d on a timestamptz column, in every zone and
    on the days around each anchor: the cases whose EXPLAIN range is not
    PostgreSQL's own [d::timestamptz, (d + 1)::timestamptz)."""
    bad = []
    for zone in ZONES:
        cur.execute("SET timezone = %s", (zone,))
        for anchor in ANCHORS:
            for shift in (-1, 0, 1):
                d = (anchor.astimezone(zoneinfo.ZoneInfo(zone)).date()
                     + datetime.timedelta(days=shift))
                cur.execute("EXPLAIN (FORMAT JSON) SELECT id FROM b_tz "
                            "WHERE created_time::date = %s", (d,))
                got = cur.fetchone()[0][0]["Plan"]["Time Range"]
                cur.execute(
                    "SELECT format('[%%s UTC, %%s UTC)', "
                    "to_char(%(d)s::date::timestamptz AT TIME ZONE 'UTC', "
                    "'YYYY-MM-DD HH24:MI:SS'), "
                    "to_char((%(d)s::date + 1)::timestamptz AT TIME ZONE "
                    "'UTC', 'YYYY-MM-DD HH24:MI:SS'))", {"d": d})
                want = cur.fetchone()[0]
                if got != want:
                    bad.append("TimeZone %s, created_time::date = '%s': "
                               "%s, PostgreSQL's day %s" % (zone, d, got, want))
    cur.execute("SET timezone = 'UTC'")
    return bad


def ids(cur, sql):
    cur.execute(sql)
    return [r[0] for r in cur.fetchall()]


def main():
    tap = Tap()
    conn = fresh_database(DB)
    fake_reset()
    # dense data, so that a range a little too narrow misses an object
    fake_config(queue_ms=0, processing_ms=0,
                merchants={MERCHANT: {"orders_per_day": 600}})
    rng = random.Random(SEED)
    tap.note("seed %d, %d cases" % (SEED, CASES))
    with conn.cursor() as cur:
        broken = {}
        times = setup(cur, broken)
        results = {name: [0, 0, 0, []] for name in TABLES}  # cases, rows, nonempty, bad
        for case in range(CASES):
            name = list(TABLES)[case % len(TABLES)]
            i = rng.randrange(len(ANCHORS))
            zone = ANCHOR_ZONES[i] if rng.random() < 0.6 else rng.choice(ZONES)
            cond = random_condition(rng, ANCHORS[i], times[i], zone)
            if name in broken:
                results[name][3].append("superset: " + broken[name])
                continue
            cur.execute("SET timezone = %s", (zone,))
            try:
                got = ids(cur, "SELECT id FROM %s WHERE %s ORDER BY id"
                          % (name, cond))
            except Exception as e:  # an error is a failure, not a skip
                got = ["error: %s" % str(e).splitlines()[0]]
            want = ids(cur, "SELECT id FROM s_%s_%d WHERE %s ORDER BY id"
                       % (name, i, cond))
            r = results[name]
            r[0] += 1
            r[1] += len(want)
            r[2] += 1 if want else 0
            if got != want:
                r[3].append("TimeZone %s, WHERE %s: wrapper %d rows, "
                            "PostgreSQL %d" % (zone, cond, len(got), len(want)))
        cur.execute("SET timezone = 'UTC'")
    total = 0
    for name, (n, rows, nonempty, bad) in results.items():
        total += n
        tap.check(not bad, "%s (%s): %d random ranges, %d rows, as PostgreSQL "
                  "filters them" % (name, TABLES[name], n, rows),
                  "; ".join(bad[:3]) + (" (%d cases differ)" % len(bad)))
    with conn.cursor() as cur:
        bad = date_ranges_exact(cur)
    tap.check(not bad, "created_time::date = d asks Clover for exactly the day "
              "PostgreSQL's cast gives, in %d zones" % len(ZONES),
              "; ".join(bad[:3]) + (" (%d cases differ)" % len(bad)))
    nonempty = sum(r[2] for r in results.values())
    tap.check(nonempty >= total // 3,
              "at least a third of the cases select rows (%d of %d)"
              % (nonempty, total))
    conn.close()
    tap.finish()


if __name__ == "__main__":
    main()
