/*-------------------------------------------------------------------------
 *
 * test_core.c
 *		  Unit tests of the parts of clover_export_fdw that need neither a
 *		  backend nor curl (src/clover_core.h): conversions, windows,
 *		  service hours and pacing (times are passed in, never waited for)
 *
 * Built by "make unit-test" with -DFRONTEND against libpgcommon and
 * libpgport, and run by test/run_tests.sh.  Prints one "ok - name" or
 * "not ok - name: why" line per check; exits 1 if any failed.
 *
 * IDENTIFICATION
 *		  test/unit/test_core.c
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <math.h>
#include <stdarg.h>

#include "clover_core.h"

#define MS_PER_DAY			((int64) 86400000)
#define RANDOM_RANGES		20000

static int	failures = 0;

/*
 * check
 *		Print the outcome of one check
 */
static bool
check(bool ok, const char *fmt,...)
{
	va_list		ap;

	printf(ok ? "ok - " : "not ok - ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok)
		failures++;
	return ok;
}

/* a time given as epoch milliseconds */
static TimestampTz
at_ms(int64 ms)
{
	TimestampTz ts = 0;

	(void) CloverUnixMsToTimestamp(ms, &ts);
	return ts;
}

/* a tiny deterministic generator, so that a failure can be replayed */
static uint64 rng_state = 0x9E3779B97F4A7C15;

static uint64
next_random(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/*
 * windows_ok
 *		Do these windows cover [lo, hi) exactly, meet without gaps or
 *		overlaps, and ask Clover for at most 30 days each?  why gets the
 *		first problem.
 */
static bool
windows_ok(TimestampTz lo, TimestampTz hi, const CloverWindow *w, int64 n,
		   const char **why)
{
	int64		i;

	*why = NULL;
	if (n < 1)
		*why = "no window";
	else if (w[0].lo != lo || w[n - 1].hi != hi)
		*why = "the windows do not start at lo and end at hi";
	for (i = 0; *why == NULL && i < n; i++)
	{
		if (w[i].end_ms - w[i].start_ms > CLOVER_MAX_WINDOW_MS)
			*why = "a window is longer than 30 days";
		else if (w[i].end_ms <= w[i].start_ms || w[i].hi <= w[i].lo)
			*why = "a window is empty";
		else if (CloverTimestampToUnixMs(w[i].lo) < w[i].start_ms ||
				 CloverTimestampToUnixMs(w[i].hi - 1) >= w[i].end_ms)
			*why = "a window's rows lie outside the times sent to Clover";
		else if (i > 0 && (w[i].lo != w[i - 1].hi ||
						   w[i].start_ms != w[i - 1].end_ms))
			*why = "two windows do not meet exactly";
	}
	return *why == NULL;
}

static void
test_conversions(void)
{
	TimestampTz ts;

	check(CloverUnixMsToTimestamp(0, &ts) && ts == CLOVER_UNIX_EPOCH_TIMESTAMP,
		  "epoch milliseconds 0 is the Unix epoch");
	check(CloverUnixMsToTimestamp(1704067200123, &ts) &&
		  CloverTimestampToUnixMs(ts) == 1704067200123,
		  "epoch milliseconds survive a round trip");
	check(CloverUnixMsToDays(0) == -10957 && CloverUnixMsToDays(-1) == -10958 &&
		  CloverUnixMsToDays(946684800000) == 0 &&
		  CloverUnixMsToDays(946684800000 - 1) == -1,
		  "epoch milliseconds fall on their UTC day, before 1970 too");
	check(CloverTimestampToUnixMs(at_ms(-1) + 999) == -1 &&
		  CloverTimestampToUnixMs(at_ms(0) - 1) == -1,
		  "times before 1970 round down to the millisecond");
	check(!CloverUnixMsToTimestamp(PG_INT64_MAX, &ts) &&
		  !CloverUnixMsToTimestamp(PG_INT64_MIN, &ts) &&
		  !CloverUnixMsToTimestamp(END_TIMESTAMP / 1000 +
								   CLOVER_UNIX_EPOCH_USECS / 1000, &ts),
		  "milliseconds PostgreSQL cannot hold are refused");
	check(CloverUnixMsToTimestamp(END_TIMESTAMP / 1000 +
								  CLOVER_UNIX_EPOCH_USECS / 1000 - 1, &ts) &&
		  IS_VALID_TIMESTAMP(ts),
		  "the last millisecond PostgreSQL can hold is accepted");
}

static void
test_windows(void)
{
	CloverWindow w[8];
	TimestampTz lo = at_ms(1704067200000);	/* 2024-01-01 */
	const char *why;
	bool		ok;
	int64		i,
				bad = 0,
				windows = 0;

	check(CloverWindowCount(lo, lo + 30 * USECS_PER_DAY) == 1,
		  "30 days are one window");
	check(CloverWindowCount(lo, lo + 30 * USECS_PER_DAY + 1) == 2,
		  "30 days and a microsecond are two windows");
	check(CloverWindowCount(lo, lo + 1) == 1, "a microsecond is one window");

	CloverSplitWindows(lo + 500, lo + 1500, w, 1);
	check(w[0].start_ms == 1704067200000 && w[0].end_ms == 1704067200002 &&
		  w[0].lo == lo + 500 && w[0].hi == lo + 1500,
		  "Clover's times round the range outwards to whole milliseconds");

	CloverSplitWindows(lo, lo + 61 * USECS_PER_DAY, w, 3);
	ok = windows_ok(lo, lo + 61 * USECS_PER_DAY, w, 3, &why);
	check(ok && w[1].start_ms == 1704067200000 + 30 * MS_PER_DAY &&
		  w[2].end_ms - w[2].start_ms == MS_PER_DAY,
		  "61 days: two full windows and one of a day%s%s",
		  why ? ": " : "", why ? why : "");

	/* random ranges, to the microsecond, from 1970 to 2100 */
	for (i = 0; i < RANDOM_RANGES; i++)
	{
		CloverWindow many[64];
		int64		start_us = (int64) (next_random() % ((int64) 130 * 365 * USECS_PER_DAY));
		int64		len_us = 1 + (int64) (next_random() % ((int64) 400 * USECS_PER_DAY));
		TimestampTz a = CLOVER_UNIX_EPOCH_TIMESTAMP + start_us;
		int64		n = CloverWindowCount(a, a + len_us);

		if (n < 1 || n > 64)
		{
			if (bad++ == 0)
				printf("# " INT64_FORMAT " windows for " INT64_FORMAT " us\n",
					   n, len_us);
			continue;
		}
		CloverSplitWindows(a, a + len_us, many, n);
		windows += n;
		/* as few windows as possible: all but the last are full */
		if (!windows_ok(a, a + len_us, many, n, &why) ||
			(n > 1 && many[n - 2].end_ms - many[n - 2].start_ms !=
			 CLOVER_MAX_WINDOW_MS))
		{
			if (bad++ == 0)
				printf("# [" INT64_FORMAT ", " INT64_FORMAT "): %s\n",
					   a, a + len_us, why ? why : "a window before the last is short");
		}
	}
	check(bad == 0, "%d random ranges split into " INT64_FORMAT
		  " windows that cover them exactly, meet exactly and hold at most 30 days",
		  RANDOM_RANGES, windows);
}

static void
test_whole_days(void)
{
	CloverWindow w[4];
	TimestampTz day = at_ms(1709251200000); /* 2024-03-01 */
	TimestampTz lo = day + 41 * USECS_PER_SEC;
	TimestampTz dlo,
				dhi,
				other_lo,
				other_hi;
	int64		n;

	CloverWholeDays(lo, lo + USECS_PER_DAY, DT_NOEND, &dlo, &dhi);
	check(dlo == day && dhi == day + 2 * USECS_PER_DAY,
		  "a day from 00:00:41 is exported as two whole UTC days");
	CloverWholeDays(day + 23 * USECS_PER_HOUR, day + 47 * USECS_PER_HOUR,
					DT_NOEND, &other_lo, &other_hi);
	check(other_lo == dlo && other_hi == dhi,
		  "a neighbouring day's range asks for the same days");
	CloverWholeDays(day, day + USECS_PER_DAY, DT_NOEND, &dlo, &dhi);
	check(dlo == day && dhi == day + USECS_PER_DAY,
		  "a whole day stays that day");
	CloverWholeDays(lo, lo + USECS_PER_HOUR, lo + 2 * USECS_PER_HOUR,
					&dlo, &dhi);
	check(dlo == day && dhi == lo + 2 * USECS_PER_HOUR,
		  "the days end no later than the limit");
	CloverWholeDays(lo, lo + USECS_PER_HOUR, lo, &dlo, &dhi);
	check(dhi == lo + USECS_PER_HOUR, "nor before the range's end");
	CloverWholeDays(at_ms(-1000), at_ms(-500), DT_NOEND, &dlo, &dhi);
	check(dlo == at_ms(-MS_PER_DAY) && dhi == at_ms(0),
		  "before 1970, days are floored and ceiled too");

	/* 40 days from 00:00:41: two windows of whole days, clipped */
	CloverWholeDays(lo, lo + 40 * USECS_PER_DAY, DT_NOEND, &dlo, &dhi);
	n = CloverWindowCount(dlo, dhi);
	CloverSplitWindows(dlo, dhi, w, n);
	CloverClipWindows(w, n, lo, lo + 40 * USECS_PER_DAY);
	check(n == 2 && w[0].start_ms == 1709251200000 &&
		  w[0].end_ms == 1709251200000 + 30 * MS_PER_DAY &&
		  w[1].end_ms == 1709251200000 + 41 * MS_PER_DAY &&
		  w[0].lo == lo && w[0].hi == w[1].lo &&
		  w[1].hi == lo + 40 * USECS_PER_DAY,
		  "clipped windows export whole days but return only the range");
}

/*
 * cover_ok
 *		Do CloverCoverRange's pieces cover [lo, hi) exactly, in order, each
 *		within the times its export was asked for, spans serving wherever
 *		one covers the piece's start?  why gets the first problem.
 */
static bool
cover_ok(TimestampTz lo, TimestampTz hi, const CloverWindow *spans,
		 int nspans, const CloverWindow *w, const int *source, int n,
		 const char **why)
{
	int			i,
				j;

	*why = NULL;
	if (n < 1 || w[0].lo != lo || w[n - 1].hi != hi)
		*why = "the pieces do not start at lo and end at hi";
	for (i = 0; *why == NULL && i < n; i++)
	{
		if (w[i].hi <= w[i].lo)
			*why = "a piece is empty";
		else if (i > 0 && w[i].lo != w[i - 1].hi)
			*why = "two pieces do not meet exactly";
		else if (w[i].end_ms - w[i].start_ms > CLOVER_MAX_WINDOW_MS)
			*why = "a piece asks for more than 30 days";
		else if (CloverTimestampToUnixMs(w[i].lo) < w[i].start_ms ||
				 CloverTimestampToUnixMs(w[i].hi - 1) >= w[i].end_ms)
			*why = "a piece's rows lie outside its export's times";
		else if (source[i] >= 0 &&
				 (w[i].lo < spans[source[i]].lo ||
				  w[i].hi > spans[source[i]].hi ||
				  w[i].start_ms != spans[source[i]].start_ms))
			*why = "a piece is not inside the span that serves it";
		for (j = 0; *why == NULL && source[i] < 0 && j < nspans; j++)
		{
			if (spans[j].lo <= w[i].lo && w[i].lo < spans[j].hi)
				*why = "a new window starts where a span covers it";
		}
	}
	return *why == NULL;
}

/* a span covering [lo_day, hi_day) days after day */
static CloverWindow
span_of(TimestampTz day, int lo_day, int hi_day)
{
	CloverWindow w;

	w.lo = day + lo_day * USECS_PER_DAY;
	w.hi = day + hi_day * USECS_PER_DAY;
	w.start_ms = CloverTimestampToUnixMs(w.lo);
	w.end_ms = CloverTimestampToUnixMs(w.hi);
	return w;
}

static void
test_cover(void)
{
	TimestampTz day = at_ms(1709251200000); /* 2024-03-01 */
	CloverWindow spans[8];
	CloverWindow w[64];
	int			source[64];
	int			n,
				i,
				bad = 0;
	const char *why;

	/* 53 days; exports cover days 0-20 and 32-60: one new export */
	spans[0] = span_of(day, -3, 20);
	spans[1] = span_of(day, 32, 60);
	n = CloverCoverRange(day + 41 * USECS_PER_SEC, day + 53 * USECS_PER_DAY,
						 DT_NOEND, spans, 2, w, source);
	check(n == 3 && source[0] == 0 && source[1] == -1 && source[2] == 1 &&
		  w[1].lo == day + 20 * USECS_PER_DAY &&
		  w[1].hi == day + 32 * USECS_PER_DAY &&
		  cover_ok(day + 41 * USECS_PER_SEC, day + 53 * USECS_PER_DAY,
				   spans, 2, w, source, n, &why),
		  "53 days of which 12 were never exported need one new export");

	n = CloverCoverRange(day + USECS_PER_HOUR, day + 2 * USECS_PER_HOUR,
						 DT_NOEND, spans, 2, w, source);
	check(n == 1 && source[0] == 0 && w[0].lo == day + USECS_PER_HOUR &&
		  w[0].start_ms == spans[0].start_ms,
		  "a range inside an export is served by it alone");

	spans[2] = span_of(day, 10, 40);
	n = CloverCoverRange(day, day + 45 * USECS_PER_DAY, DT_NOEND, spans, 3,
						 w, source);
	check(n == 3 && source[0] == 0 && source[1] == 2 && source[2] == 1 &&
		  w[1].hi == day + 40 * USECS_PER_DAY,
		  "of overlapping exports, the one reaching furthest serves");

	n = CloverCoverRange(day + 30 * USECS_PER_DAY + 41 * USECS_PER_SEC,
						 day + 31 * USECS_PER_DAY, DT_NOEND, spans, 1, w,
						 source);
	check(n == 1 && source[0] == -1 &&
		  w[0].start_ms == CloverTimestampToUnixMs(day + 30 * USECS_PER_DAY),
		  "a new window of nearly a day exports the whole UTC day");

	n = CloverCoverRange(day + 12 * USECS_PER_HOUR, day + 13 * USECS_PER_HOUR,
						 DT_NOEND, spans, 0, w, source);
	check(n == 1 && source[0] == -1 &&
		  w[0].start_ms == CloverTimestampToUnixMs(day + 12 * USECS_PER_HOUR),
		  "an hour is not widened to a day: that would cost 24 times more");

	/* random spans and ranges, checked against the rules above */
	for (i = 0; i < RANDOM_RANGES; i++)
	{
		int			nspans = (int) (next_random() % 5);
		TimestampTz lo = day + (int64) (next_random() % (100 * USECS_PER_DAY));
		TimestampTz hi = lo + 1 + (int64) (next_random() % (90 * USECS_PER_DAY));
		int			j;

		for (j = 0; j < nspans; j++)
		{
			TimestampTz a = day + (int64) (next_random() % (150 * USECS_PER_DAY));

			spans[j].lo = a;
			spans[j].hi = a + 1 + (int64) (next_random() % (30 * USECS_PER_DAY));
			spans[j].start_ms = CloverTimestampToUnixMs(spans[j].lo);
			spans[j].end_ms = CloverTimestampToUnixMs(spans[j].hi - 1) + 1;
		}
		if (CloverCoverMaxPieces(lo, hi, nspans) > 64)
			continue;
		n = CloverCoverRange(lo, hi, DT_NOEND, spans, nspans, w, source);
		if (n > CloverCoverMaxPieces(lo, hi, nspans) ||
			!cover_ok(lo, hi, spans, nspans, w, source, n, &why))
		{
			if (bad++ == 0)
				printf("# range [" INT64_FORMAT ", " INT64_FORMAT "), %d spans: %s\n",
					   lo, hi, nspans, why ? why : "too many pieces");
		}
	}
	check(bad == 0, "%d random ranges and spans are covered exactly, spans serving wherever they can",
		  RANDOM_RANGES);
}

/* the instant of a weekday (0 = Sunday) of the week of 2024-01-07 */
static TimestampTz
week_time(int weekday, int hour, int minute)
{
	/* 2024-01-07 was a Sunday */
	return at_ms(1704585600000 + weekday * MS_PER_DAY +
				 (int64) (hour * 60 + minute) * 60000);
}

static void
test_service_hours(void)
{
	CloverServiceHours h;
	char	   *problem = NULL;
	bool		ok;

	check(CloverParseServiceHours("always", &h, &problem) && h.always &&
		  CloverServiceOpenAt(&h, week_time(3, 3, 0)),
		  "\"always\" is always open");

	check(CloverParseServiceHours("MON-FRI 01:00-05:00, SAT 02:00-05:00, SUN 02:00-06:00",
								  &h, &problem) && h.nranges == 7,
		  "Clover's EU hours parse into seven periods");
	check(CloverServiceOpenAt(&h, week_time(1, 1, 0)) &&
		  !CloverServiceOpenAt(&h, week_time(1, 5, 0)) &&
		  !CloverServiceOpenAt(&h, week_time(6, 1, 59)) &&
		  CloverServiceOpenAt(&h, week_time(0, 5, 59)),
		  "a period includes its start and excludes its end");
	check(CloverNextOpening(&h, week_time(1, 5, 0)) == week_time(2, 1, 0) &&
		  CloverNextOpening(&h, week_time(5, 6, 0)) == week_time(6, 2, 0) &&
		  CloverNextOpening(&h, week_time(1, 2, 0)) == week_time(1, 2, 0),
		  "the next opening is the next period's start, or now when open");

	check(CloverParseServiceHours("fri-mon 22:00-24:00", &h, &problem) &&
		  h.nranges == 4 && CloverServiceOpenAt(&h, week_time(0, 23, 59)) &&
		  !CloverServiceOpenAt(&h, week_time(2, 23, 0)),
		  "day ranges wrap (FRI-MON) and may end at 24:00");
	check(CloverNextOpening(&h, week_time(2, 23, 0)) == week_time(5, 22, 0),
		  "the next opening can be days away");

	ok = !CloverParseServiceHours("MON-FRI 15:00-10:00", &h, &problem);
	check(ok && strstr(problem, "may not cross midnight") != NULL,
		  "a period crossing midnight is refused: %s", problem);
	check(!CloverParseServiceHours("MONDAY 10:00-15:00", &h, &problem) &&
		  !CloverParseServiceHours("MON 10-15", &h, &problem) &&
		  !CloverParseServiceHours("MON 10:00-15:00;", &h, &problem) &&
		  !CloverParseServiceHours("MON 25:00-26:00", &h, &problem),
		  "bad weekdays, clocks and separators are refused");
	check(CloverParseServiceHours("SUN 00:00-00:01", &h, &problem) &&
		  CloverNextOpening(&h, week_time(0, 0, 1)) == week_time(0, 0, 0) + 7 * USECS_PER_DAY,
		  "the next opening of a weekly minute is a week later");
}

/*
 * test_export_concurrency
 *		Which window's export may be created: a first peek gets one export,
 *		then at most max_concurrent run and are created ahead
 */
static void
test_export_concurrency(void)
{
	int			ahead;
	int			allowed = 0;

	check(CloverMayCreateExport(0, 0, 1, false) &&
		  !CloverMayCreateExport(1, 0, 1, false),
		  "before the consumer finished a file, only its own window's export");
	check(CloverMayCreateExport(1, 0, 1, true) &&
		  !CloverMayCreateExport(2, 0, 1, true),
		  "after it, one window ahead per allowed concurrent export");
	check(!CloverMayCreateExport(0, 1, 1, true) &&
		  CloverMayCreateExport(0, 1, 2, true) &&
		  !CloverMayCreateExport(0, 2, 2, true),
		  "never more than max_concurrent_exports running");
	for (ahead = 0; ahead < 10; ahead++)
		allowed += CloverMayCreateExport(ahead, 0, 3, true) ? 1 : 0;
	check(allowed == 4, "with 3 allowed, windows up to 3 ahead may start (%d)",
		  allowed);
}

/* how a simulated export's percentComplete moves (test_polling) */
typedef enum SimKind
{
	SIM_STEADY,					/* rises evenly over run seconds */
	SIM_SILENT,					/* stays 0 until DONE after run seconds */
	SIM_STALL,					/* to 50 in run / 2, stalls run, then on */
	SIM_AT_99,					/* steady, then 99 for another run seconds */
	SIM_STUCK					/* IN_PROGRESS at 0 forever */
} SimKind;

typedef struct SimResult
{
	int			polls;
	double		late;			/* from DONE to the poll that saw it */
	double		min_wait;
	double		max_wait;
	bool		done;
} SimResult;

/*
 * sim_answer
 *		What a poll at age seconds after the creation of a simulated export
 *		(PENDING for 0.1 s, then kind over run seconds) answers; returns
 *		whether it is DONE, and sets *done_age to when it was
 */
static bool
sim_answer(SimKind kind, double run, double age, bool *in_progress,
		   int *percent, double *done_age)
{
	double		queue = 0.1;
	double		t = age - queue;
	double		share;

	*done_age = queue + run;
	if (kind == SIM_STALL || kind == SIM_AT_99)
		*done_age = queue + 2 * run;
	*in_progress = t >= 0 || kind == SIM_STUCK;
	if (kind == SIM_STUCK)
	{
		*percent = 0;
		return false;
	}
	if (age >= *done_age)
		return true;
	if (kind == SIM_STALL)
		share = t < run / 2 ? t / run : t < 1.5 * run ? 0.5 : (t - run) / run;
	else
		share = t / run;
	*percent = kind == SIM_SILENT || t < 0 ? 0 :
		(int) Min(99.0, floor(100 * share));
	return false;
}

/*
 * simulate
 *		Poll a simulated export on CloverNextPoll's schedule, with answers
 *		taking no time, until it is DONE or timeout seconds have passed
 */
static SimResult
simulate(SimKind kind, double run, double timeout)
{
	CloverPollHistory h;
	SimResult	r = {0, 0, 1e9, 0, false};
	double		created = 1000.0;
	double		now = created;
	double		wait;
	bool		in_progress;
	int			percent;
	double		done_age;

	CloverPollHistoryInit(&h, created);
	wait = CloverNextPoll(&h, now, false, 0);	/* the POST's PENDING */
	for (;;)
	{
		r.min_wait = Min(r.min_wait, wait);
		r.max_wait = Max(r.max_wait, wait);
		if (now + wait > created + timeout)
			break;
		now += wait;
		r.polls++;
		if (sim_answer(kind, run, now - created, &in_progress, &percent,
					   &done_age))
		{
			r.done = true;
			r.late = now - created - done_age;
			break;
		}
		wait = CloverNextPoll(&h, now, in_progress, percent);
	}
	return r;
}

/*
 * test_polling
 *		The polling schedule: close polls while nothing is known, then a
 *		poll just after the DONE that percentComplete predicts; robust to a
 *		percentComplete that stays 0, stalls or sticks at 99
 */
static void
test_polling(void)
{
	static const struct
	{
		double		run;
		int			max_polls;
		double		max_late;	/* the floor, or the time spent at 99% */
	}			steady[] = {{0.4, 3, 0.25}, {3, 5, 0.25}, {15, 7, 0.25},
	{40, 9, 0.25}, {600, 75, 6}};
	CloverPollHistory h;
	SimResult	r;
	size_t		i;

	CloverPollHistoryInit(&h, 10.0);
	check(CloverNextPoll(&h, 10.0, false, 0) == CLOVER_POLL_FLOOR_MS / 1000.0,
		  "the first poll comes after the floor, 250 ms");

	for (i = 0; i < lengthof(steady); i++)
	{
		r = simulate(SIM_STEADY, steady[i].run, 3600);
		check(r.done && r.polls <= steady[i].max_polls &&
			  r.late <= steady[i].max_late &&
			  r.min_wait >= CLOVER_POLL_FLOOR_MS / 1000.0 &&
			  r.max_wait <= CLOVER_POLL_CEILING_MS / 1000.0,
			  "a steady %.1f s export costs %d polls (at most %d), noticed DONE %.0f ms late, waits %.2f-%.2f s",
			  steady[i].run + 0.1, r.polls, steady[i].max_polls,
			  r.late * 1000, r.min_wait, r.max_wait);
	}

	r = simulate(SIM_STUCK, 0, 600);
	check(!r.done && r.polls >= 60 && r.polls <= 75 &&
		  r.max_wait == CLOVER_POLL_CEILING_MS / 1000.0,
		  "a stuck export is polled at the 10 s ceiling until export_timeout: %d polls in 600 s",
		  r.polls);

	r = simulate(SIM_SILENT, 15, 3600);
	check(r.done && r.polls <= 12 &&
		  r.late <= CLOVER_POLL_CEILING_MS / 1000.0,
		  "percentComplete stuck at 0 until DONE (15 s): the growing interval, %d polls, %.1f s late",
		  r.polls, r.late);

	r = simulate(SIM_STALL, 10, 3600);
	check(r.done && r.polls <= 10 && r.late <= 5 &&
		  r.min_wait >= CLOVER_POLL_FLOOR_MS / 1000.0,
		  "a stall at 50%% (20 s export): %d polls, %.0f ms late",
		  r.polls, r.late * 1000);

	r = simulate(SIM_AT_99, 5, 3600);
	check(r.done && r.polls <= 12 && r.late <= 5,
		  "99%% for 5 s after the predicted DONE: misses back off, %d polls, %.1f s late",
		  r.polls, r.late);
}

/*
 * test_backoff
 *		Exponential backoff with jitter, and deadlines
 */
static void
test_backoff(void)
{
	double		total = 0;
	int			attempts = 0;
	double		now = 0;
	double		w;

	check(CloverBackoff(1, 0.5, 30, 0.0) == 0.25 &&
		  CloverBackoff(1, 0.5, 30, 1.0) == 0.5 &&
		  CloverBackoff(3, 0.5, 30, 1.0) == 2.0,
		  "backoff doubles per attempt, with jitter of half the delay");
	check(CloverBackoff(20, 0.5, 30, 1.0) == 30.0 &&
		  CloverBackoff(20, 0.5, 30, 0.0) == 15.0,
		  "backoff stops doubling at its cap");
	check(CloverBackoff(0, 1.0, 30, 1.0) == 1.0,
		  "attempt 0 counts as the first");

	check(CloverDeadlineWait(100, 10, 105, 2) == 2 &&
		  CloverDeadlineWait(100, 10, 109, 2) == 1 &&
		  CloverDeadlineWait(100, 10, 110, 2) < 0,
		  "a deadline shortens the last wait, then says the time is spent");

	/* busy answers every time: waits until the deadline, then stops */
	while ((w = CloverDeadlineWait(0, 60, now,
								   CloverBackoff(attempts + 1, 1.0, 30, 0.5))) >= 0)
	{
		total += w;
		now += w;
		attempts++;
	}
	check(total == 60 && attempts == 7,
		  "backoff under a 60 s deadline waits exactly 60 s in 7 waits, the last one shorter (%d, %.2f s)",
		  attempts, total);
}

/*
 * test_rate_limiter
 *		The token bucket, the cap on requests in flight and the pause
 */
static void
test_rate_limiter(void)
{
	CloverRateLimiter rl;
	int			taken = 0;
	int			i;
	double		t;

	/* nothing ever finishes: the in-flight cap binds */
	CloverRateLimiterInit(&rl, 8.0, 4.0, 3, 0);
	for (i = 0; i < 10; i++)
		taken += CloverRateLimiterTake(&rl, 0) ? 1 : 0;
	check(taken == 3, "at most 3 requests in flight (%d)", taken);
	CloverRateLimiterDone(&rl);
	check(CloverRateLimiterTake(&rl, 0) && !CloverRateLimiterTake(&rl, 0),
		  "a finished request frees its place");

	/* requests finish at once: the bucket binds (burst, then the rate) */
	CloverRateLimiterInit(&rl, 8.0, 4.0, 3, 0);
	taken = 0;
	for (t = 0; t < 10.0; t += 0.001)
	{
		if (CloverRateLimiterTake(&rl, t))
		{
			CloverRateLimiterDone(&rl);
			taken++;
		}
	}
	check(taken >= 83 && taken <= 85,
		  "over 10 s, a burst of 4 then 8 per second (%d)", taken);

	/* a pause holds everything back, and the longer pause wins */
	CloverRateLimiterInit(&rl, 8.0, 4.0, 3, 0);
	CloverRateLimiterPause(&rl, 5.0);
	CloverRateLimiterPause(&rl, 2.0);
	check(!CloverRateLimiterTake(&rl, 4.9) && CloverRateLimiterTake(&rl, 5.0),
		  "no request while paused; a shorter pause does not cut a longer one");
	check(CloverRateLimiterReadyAt(&rl, 1.0) == 5.0,
		  "while paused, ready when the pause ends");

	/* an empty bucket: ready when a token has dripped in */
	CloverRateLimiterInit(&rl, 8.0, 4.0, 10, 0);
	for (i = 0; i < 4; i++)
		(void) CloverRateLimiterTake(&rl, 0);
	check(!CloverRateLimiterTake(&rl, 0) &&
		  CloverRateLimiterReadyAt(&rl, 0) == 0.125 &&
		  !CloverRateLimiterTake(&rl, 0.1) && CloverRateLimiterTake(&rl, 0.125),
		  "an empty bucket is ready again after 1/rate seconds");
	CloverRateLimiterInit(&rl, 8.0, 4.0, 10, 0);
	check(CloverRateLimiterReadyAt(&rl, 3.0) == 3.0,
		  "a bucket with tokens is ready now");
}

/*
 * test_app_limits
 *		The app's bucket, a request against two limiters, and a node's share
 */
static void
test_app_limits(void)
{
	CloverRateLimiter token;
	CloverRateLimiter app;
	double		starts[2000];
	int			n = 0;
	int			peak = 0;
	int			first = 0;
	int			i;
	double		t;

	/* the app's full in-flight cap holds a request back from both */
	CloverRateLimiterInit(&token, 9.0, 4.0, 4, 0);
	CloverAppLimiterInit(&app, 50, 2, 0);
	check(CloverRateLimiterTakeBoth(&token, &app, 0) &&
		  CloverRateLimiterTakeBoth(&token, &app, 0) &&
		  !CloverRateLimiterTakeBoth(&token, &app, 0),
		  "at most the app's 2 requests in flight, whatever the token allows");
	check(token.in_flight == 2 && token.tokens == 2.0,
		  "a request the app holds back uses nothing of the token's (%d in flight, %.1f tokens)",
		  token.in_flight, token.tokens);
	CloverRateLimiterDone(&token);
	CloverRateLimiterDone(&app);
	check(CloverRateLimiterTakeBoth(&token, &app, 0) &&
		  app.in_flight == 2 && token.in_flight == 2,
		  "a finished request frees its place in both");

	/* the token's empty bucket holds a request back from the app too */
	CloverRateLimiterInit(&token, 9.0, 1.0, 4, 0);
	CloverAppLimiterInit(&app, 50, 10, 0);
	check(CloverRateLimiterTakeBoth(&token, &app, 0) &&
		  !CloverRateLimiterTakeBoth(&token, &app, 0) &&
		  app.in_flight == 1 && app.tokens == 9.0,
		  "a request the token holds back uses nothing of the app's (%d in flight, %.1f tokens)",
		  app.in_flight, app.tokens);

	/*
	 * Clover's 50/s: requests that finish at once, tried every millisecond
	 * for 10 s, are at most 40 in any second and 30/s in the long run
	 */
	CloverAppLimiterInit(&app, 50, 10, 0);
	for (t = 0; t < 10.0 && n < 2000; t += 0.001)
	{
		if (CloverRateLimiterTake(&app, t))
		{
			CloverRateLimiterDone(&app);
			starts[n++] = t;
		}
	}
	for (i = 0; i < n; i++)
	{
		while (starts[first] <= starts[i] - 1.0)
			first++;
		peak = Max(peak, i - first + 1);
	}
	check(peak >= 38 && peak <= 40 && n >= 305 && n <= 311,
		  "the app's bucket: at most 40 in any second, about 30/s (%d, %d in 10 s)",
		  peak, n);

	/* a node's share: rounded down, never below 1 */
	check(CloverShareOf(50, 1.0) == 50 && CloverShareOf(50, 0.5) == 25 &&
		  CloverShareOf(10, 0.25) == 2 && CloverShareOf(10, 0.01) == 1 &&
		  CloverShareOf(100, 0.29) == 29 && CloverShareOf(3, 0.7) == 2,
		  "a node's share of a limit");
}

int
main(void)
{
	test_conversions();
	test_windows();
	test_whole_days();
	test_cover();
	test_service_hours();
	test_export_concurrency();
	test_polling();
	test_backoff();
	test_rate_limiter();
	test_app_limits();
	return failures > 0 ? 1 : 0;
}
