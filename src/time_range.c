/*-------------------------------------------------------------------------
 *
 * time_range.c
 *		  Evaluated time bounds -> one half-open range of createdTime
 *
 * When a scan starts, the bound expressions found by time_quals.c are
 * evaluated and narrowed into one range [lo, hi) of createdTime, in
 * microseconds UTC, that contains every object whose column value can
 * satisfy them.  It is exact where it can be and never too narrow:
 *
 * - A bound value is converted as the comparison operator converts it.
 *	 date and timestamp values meet a timestamptz column in the session
 *	 time zone: exact.
 * - A timestamp (without time zone) column holds UTC wall time, and the
 *	 operators that compare it with a timestamptz convert the column, not
 *	 the value, through the session time zone.  That mapping jumps and even
 *	 runs backwards at DST changes, so such a bound is widened by the zone's
 *	 UTC offsets near the value (exact where the offset is fixed).
 * - A column of lower precision (timestamptz(0)) holds createdTime rounded:
 *	 a bound on the rounded value becomes the range of times that round
 *	 into it.
 * - A bound on the column's date (col::date op d) is one on the column:
 *	 days are midnight to midnight of the column's value, for a timestamptz
 *	 column in the session time zone, as PostgreSQL's cast takes them.  The
 *	 instants whose local time is past a midnight are found from the zone's
 *	 offsets near it, so the range is exact even across DST changes.
 *
 * The executor checks every qual anyway, so a wider range costs rows
 * fetched, never a wrong answer; a narrower one would lose rows.
 *
 * No lower bound: the table's history_start, else the caller reports an
 * error.  No upper bound, or one in the future: the statement's start.
 * Nothing is older than the Unix epoch, where Clover's times begin.  A NULL
 * bound or an empty range means no export at all.
 *
 * IDENTIFICATION
 *		  src/time_range.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "catalog/pg_type.h"
#include "clover_export_fdw.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

/* how far from a value to look for the session zone's UTC offsets */
#define ZONE_SEARCH_SECS			(3 * SECS_PER_DAY)
/* more UTC offset changes than any zone has in that span */
#define ZONE_MAX_TRANSITIONS		64
/* more windows than any sensible query needs */
#define MAX_WINDOWS					100000

static TimestampTz value_to_column_type(Datum value, Oid valuetype,
										Oid timetype);
static void zone_offsets_near(TimestampTz t, int64 *min_off, int64 *max_off);
static void bound_interval(CloverBoundKind kind, TimestampTz vlo,
						   TimestampTz vhi, TimestampTz *lo, TimestampTz *hi,
						   bool *empty);
static void unround_interval(int32 typmod, TimestampTz *lo, TimestampTz *hi);
static void narrow_range(CloverRange *range, TimestampTz lo, TimestampTz hi,
						 bool hi_closed);
static void date_interval(CloverBoundKind kind, DateADT d, Timestamp *lo,
						  Timestamp *hi, bool *empty);
static void local_to_instants(Timestamp t, TimestampTz *first_at,
							  TimestampTz *end_before);

void
CloverRangeInit(CloverRange *range)
{
	memset(range, 0, sizeof(*range));
	TIMESTAMP_NOBEGIN(range->lo);
	TIMESTAMP_NOEND(range->hi);
	TIMESTAMP_NOEND(range->query_hi);
}

/*
 * value_to_column_type
 *		Convert a bound value to the time column's type, as the cross-type
 *		comparison operators do when they convert the value
 *
 * Overflow yields -infinity or +infinity.  A timestamptz value against a
 * timestamp column is returned unchanged: there the operators convert the
 * column, and the caller widens by the zone's offsets instead.
 */
static TimestampTz
value_to_column_type(Datum value, Oid valuetype, Oid timetype)
{
	TimestampTz result;
	int			overflow = 0;

	if (valuetype == DATEOID && timetype == TIMESTAMPTZOID)
		result = date2timestamptz_opt_overflow(DatumGetDateADT(value),
											   &overflow);
	else if (valuetype == DATEOID)
		result = date2timestamp_opt_overflow(DatumGetDateADT(value),
											 &overflow);
	else if (valuetype == TIMESTAMPOID && timetype == TIMESTAMPTZOID)
		result = timestamp2timestamptz_opt_overflow(DatumGetTimestamp(value),
													&overflow);
	else
		result = DatumGetTimestamp(value);

	if (overflow < 0)
		TIMESTAMP_NOBEGIN(result);
	else if (overflow > 0)
		TIMESTAMP_NOEND(result);
	return result;
}

/*
 * zone_offsets_near
 *		The least and greatest UTC offset (microseconds east of UTC) of the
 *		session time zone within ZONE_SEARCH_SECS of t
 *
 * PostgreSQL turns a timestamp c into the instant c - offset, where the
 * offset is one in force near that instant (for a time skipped by a DST
 * change, the one before it).  So c - offset >= v implies
 * c >= v + min_off, and c - offset <= v implies c <= v + max_off.
 */
static void
zone_offsets_near(TimestampTz t, int64 *min_off, int64 *max_off)
{
	pg_time_t	from = timestamptz_to_time_t(t) - ZONE_SEARCH_SECS;
	pg_time_t	until = from + 2 * ZONE_SEARCH_SECS;
	long		lo = LONG_MAX,
				hi = LONG_MIN;
	int			i;

	for (i = 0; i < ZONE_MAX_TRANSITIONS; i++)
	{
		long		before,
					after;
		int			before_dst,
					after_dst;
		pg_time_t	boundary;
		int			found;

		found = pg_next_dst_boundary(&from, &before, &before_dst, &boundary,
									 &after, &after_dst, session_timezone);
		if (found < 0)
		{
			/* the zone cannot say: assume any offset PostgreSQL allows */
			lo = -((long) MAX_TZDISP_HOUR + 1) * SECS_PER_HOUR;
			hi = -lo;
			break;
		}
		lo = Min(lo, before);
		hi = Max(hi, before);
		if (found == 0 || boundary > until)
			break;
		lo = Min(lo, after);
		hi = Max(hi, after);
		from = boundary + 1;
	}
	*min_off = (int64) lo * USECS_PER_SEC;
	*max_off = (int64) hi * USECS_PER_SEC;
}

/*
 * bound_interval
 *		The column values [lo, hi) that satisfy "column kind value", where
 *		the value stands for any of [vlo, vhi]
 *
 * Infinities mean no bound on that side; *empty is set when nothing can
 * satisfy it.
 */
static void
bound_interval(CloverBoundKind kind, TimestampTz vlo, TimestampTz vhi,
			   TimestampTz *lo, TimestampTz *hi, bool *empty)
{
	TIMESTAMP_NOBEGIN(*lo);
	TIMESTAMP_NOEND(*hi);
	switch (kind)
	{
		case CLOVER_BOUND_GE:
			*lo = vlo;
			break;
		case CLOVER_BOUND_GT:
			*empty |= TIMESTAMP_IS_NOEND(vlo);
			*lo = TIMESTAMP_NOT_FINITE(vlo) ? vlo : vlo + 1;
			break;
		case CLOVER_BOUND_LE:
			*empty |= TIMESTAMP_IS_NOBEGIN(vhi);
			*hi = TIMESTAMP_NOT_FINITE(vhi) ? vhi : vhi + 1;
			break;
		case CLOVER_BOUND_LT:
			*hi = vhi;
			break;
		case CLOVER_BOUND_EQ:
			*empty |= TIMESTAMP_NOT_FINITE(vlo) || TIMESTAMP_NOT_FINITE(vhi);
			*lo = vlo;
			*hi = TIMESTAMP_NOT_FINITE(vhi) ? vhi : vhi + 1;
			break;
	}
	*empty |= TIMESTAMP_IS_NOEND(*lo) || TIMESTAMP_IS_NOBEGIN(*hi);
}

/*
 * round_up_to
 *		The least multiple of unit that is >= t (unit > 0, t finite)
 */
static TimestampTz
round_up_to(TimestampTz t, int64 unit)
{
	int64		rem = t % unit;

	if (rem == 0)
		return t;
	return rem > 0 ? t - rem + unit : t - rem;
}

/*
 * unround_interval
 *		Turn [lo, hi) of a column of precision typmod into the createdTime
 *		values that round into it
 *
 * PostgreSQL rounds to the nearest multiple of the unit, halves away from
 * 2000-01-01.  A value rounds to >= lo if it is >= (lo rounded up to the
 * unit) - unit/2, and to < hi if it is <= (hi rounded up) - unit/2 (the
 * halves give the result a little slack, never too little).  createdTime
 * is in whole milliseconds, so precisions of 3 digits and more round
 * nothing.
 */
static void
unround_interval(int32 typmod, TimestampTz *lo, TimestampTz *hi)
{
	int64		unit = 1;
	int			i;

	if (typmod < 0 || typmod >= 3)
		return;
	for (i = typmod; i < MAX_TIMESTAMP_PRECISION; i++)
		unit *= 10;
	if (!TIMESTAMP_NOT_FINITE(*lo) && *lo > MIN_TIMESTAMP + unit)
		*lo = round_up_to(*lo, unit) - unit / 2;
	if (!TIMESTAMP_NOT_FINITE(*hi) && *hi < END_TIMESTAMP - 2 * unit)
		*hi = round_up_to(*hi, unit) - unit / 2 + 1;
}

/*
 * CloverRangeApplyBound
 *		Narrow the range by one evaluated bound
 */
void
CloverRangeApplyBound(CloverRange *range, CloverBoundKind kind,
					  Datum value, bool isnull, Oid valuetype,
					  const CloverTimeColumn *timecol)
{
	TimestampTz v,
				vlo,
				vhi,
				lo,
				hi;

	if (isnull)
	{
		/* comparisons with NULL are never true */
		range->empty = true;
		return;
	}
	v = value_to_column_type(value, valuetype, timecol->basetype);
	vlo = vhi = v;
	if (timecol->basetype == TIMESTAMPOID && valuetype == TIMESTAMPTZOID &&
		!TIMESTAMP_NOT_FINITE(v))
	{
		int64		min_off,
					max_off;

		zone_offsets_near(v, &min_off, &max_off);
		vlo = Max(v + min_off, MIN_TIMESTAMP);
		vhi = Min(v + max_off, END_TIMESTAMP - 1);
	}

	bound_interval(kind, vlo, vhi, &lo, &hi, &range->empty);
	unround_interval(timecol->typmod, &lo, &hi);
	narrow_range(range, lo, hi,
				 (kind == CLOVER_BOUND_LE || kind == CLOVER_BOUND_EQ) &&
				 !TIMESTAMP_NOT_FINITE(vhi) && hi == v + 1);
}

/*
 * narrow_range
 *		Intersect the range with [lo, hi); hi_closed says that hi - 1 is the
 *		value of a "<=" the query gave
 */
static void
narrow_range(CloverRange *range, TimestampTz lo, TimestampTz hi,
			 bool hi_closed)
{
	if (!TIMESTAMP_IS_NOBEGIN(lo))
	{
		range->has_lo = true;
		if (lo > range->lo)
			range->lo = lo;
	}
	if (!TIMESTAMP_IS_NOEND(hi) && hi < range->hi)
	{
		range->hi = hi;
		range->query_hi_closed = hi_closed;
	}
}

/*
 * date_interval
 *		The local times [lo, hi) whose date satisfies "date kind d"
 *
 * Infinities mean no bound on that side; *empty is set when no finite time
 * has such a date.
 */
static void
date_interval(CloverBoundKind kind, DateADT d, Timestamp *lo, Timestamp *hi,
			  bool *empty)
{
	Timestamp	day_start,
				day_end;
	int			overflow = 0;

	if (DATE_NOT_FINITE(d))
	{
		/* every finite date is after -infinity and before infinity */
		if (DATE_IS_NOBEGIN(d))
			TIMESTAMP_NOBEGIN(day_start);
		else
			TIMESTAMP_NOEND(day_start);
		day_end = day_start;
	}
	else
	{
		day_start = date2timestamp_opt_overflow(d, &overflow);
		if (overflow < 0)
			TIMESTAMP_NOBEGIN(day_start);
		else if (overflow > 0)
			TIMESTAMP_NOEND(day_start);
		overflow = 0;
		day_end = date2timestamp_opt_overflow(d + 1, &overflow);
		if (overflow < 0)
			TIMESTAMP_NOBEGIN(day_end);
		else if (overflow > 0)
			TIMESTAMP_NOEND(day_end);
	}

	TIMESTAMP_NOBEGIN(*lo);
	TIMESTAMP_NOEND(*hi);
	switch (kind)
	{
		case CLOVER_BOUND_GE:
			*lo = day_start;
			break;
		case CLOVER_BOUND_GT:
			*lo = day_end;
			break;
		case CLOVER_BOUND_LE:
			*hi = day_end;
			break;
		case CLOVER_BOUND_LT:
			*hi = day_start;
			break;
		case CLOVER_BOUND_EQ:
			*lo = day_start;
			*hi = day_end;
			*empty |= TIMESTAMP_NOT_FINITE(day_start);
			break;
	}
	*empty |= TIMESTAMP_IS_NOEND(*lo) || TIMESTAMP_IS_NOBEGIN(*hi);
}

/*
 * local_to_instants
 *		For the local time t of the session time zone: *first_at, the first
 *		instant whose local time is >= t, and *end_before, the end of the
 *		instants whose local time is < t
 *
 * Local time is the instant plus the UTC offset in force then.  Between
 * two changes of the offset it runs with the instant, so each stretch has
 * its own answer; the two are the same instant wherever local time never
 * runs backwards over t.  Instants farther than ZONE_SEARCH_SECS from t are
 * on the right side of it whatever the offset.
 */
static void
local_to_instants(Timestamp t, TimestampTz *first_at, TimestampTz *end_before)
{
	pg_time_t	from = timestamptz_to_time_t(t) - ZONE_SEARCH_SECS;
	pg_time_t	until = from + 2 * ZONE_SEARCH_SECS;
	TimestampTz stretch_start;
	int			i;

	TIMESTAMP_NOEND(*first_at);
	TIMESTAMP_NOBEGIN(*end_before);
	TIMESTAMP_NOBEGIN(stretch_start);
	for (i = 0; i < ZONE_MAX_TRANSITIONS; i++)
	{
		long		before,
					after;
		int			before_dst,
					after_dst;
		pg_time_t	boundary;
		TimestampTz stretch_end,
					at;
		int			found;

		found = pg_next_dst_boundary(&from, &before, &before_dst, &boundary,
									 &after, &after_dst, session_timezone);
		if (found < 0)
		{
			/* the zone cannot say: allow any offset PostgreSQL allows */
			int64		widest = ((int64) MAX_TZDISP_HOUR + 1) * USECS_PER_HOUR;

			*first_at = Max(t - widest, MIN_TIMESTAMP);
			*end_before = Min(t + widest, END_TIMESTAMP - 1);
			return;
		}
		if (found == 0 || boundary > until)
			TIMESTAMP_NOEND(stretch_end);
		else
			stretch_end = time_t_to_timestamptz(boundary);

		/* in this stretch, local time >= t from instant "at" on */
		at = t - (int64) before * USECS_PER_SEC;
		if (Max(stretch_start, at) < stretch_end)
			*first_at = Min(*first_at, Max(stretch_start, at));
		if (Min(stretch_end, at) > stretch_start)
			*end_before = Max(*end_before, Min(stretch_end, at));

		if (TIMESTAMP_IS_NOEND(stretch_end))
			break;
		stretch_start = stretch_end;
		from = boundary + 1;	/* the next call finds boundaries >= from */
	}
	*first_at = Max(*first_at, MIN_TIMESTAMP);
	*end_before = Min(*end_before, END_TIMESTAMP - 1);
}

/*
 * CloverRangeApplyDateBound
 *		Narrow the range by one evaluated bound on the column's date
 */
void
CloverRangeApplyDateBound(CloverRange *range, CloverBoundKind kind,
						  Datum value, bool isnull,
						  const CloverTimeColumn *timecol)
{
	Timestamp	lo,
				hi;
	TimestampTz unused;

	if (isnull)
	{
		range->empty = true;
		return;
	}
	date_interval(kind, DatumGetDateADT(value), &lo, &hi, &range->empty);
	if (timecol->basetype == TIMESTAMPTZOID)
	{
		if (!TIMESTAMP_NOT_FINITE(lo))
			local_to_instants(lo, &lo, &unused);
		if (!TIMESTAMP_NOT_FINITE(hi))
			local_to_instants(hi, &unused, &hi);
	}
	unround_interval(timecol->typmod, &lo, &hi);
	narrow_range(range, lo, hi, false);
}

/*
 * CloverRangeFinish
 *		Fill in defaults for missing bounds and decide emptiness
 *
 * now is the statement's start: nothing later can be exported yet, so it
 * also caps an upper bound in the future.  If there is still no lower bound
 * afterwards, range->has_lo stays false and the caller reports it.
 */
void
CloverRangeFinish(CloverRange *range, const TimestampTz *history_start,
				  TimestampTz now)
{
	if (range->empty)
		return;

	if (!range->has_lo && history_start != NULL)
	{
		range->lo = *history_start;
		range->has_lo = true;
		range->lo_from_history = true;
	}
	if (range->has_lo && range->lo < CLOVER_UNIX_EPOCH_TIMESTAMP)
		range->lo = CLOVER_UNIX_EPOCH_TIMESTAMP;
	range->query_hi = range->hi;
	if (TIMESTAMP_IS_NOEND(range->hi) || range->hi > now)
		range->hi = now;
	if (range->has_lo && range->lo >= range->hi)
		range->empty = true;
	if (range->hi <= CLOVER_UNIX_EPOCH_TIMESTAMP)
		range->empty = true;
}

/*
 * CloverSplitRange
 *		Cut a finished, non-empty range into export windows (windows.c);
 *		returns a palloc'd array of *nwindows windows
 */
CloverWindow *
CloverSplitRange(const CloverRange *range, int *nwindows)
{
	int64		n;
	CloverWindow *windows;

	Assert(range->has_lo && !range->empty);
	n = CloverWindowCount(range->lo, range->hi);
	if (n > MAX_WINDOWS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("time range from %s to %s needs " INT64_FORMAT " exports",
						CloverFormatUtc(range->lo), CloverFormatUtc(range->hi), n),
				 errhint("Restrict the query's created_time range.")));

	windows = palloc(sizeof(CloverWindow) * n);
	CloverSplitWindows(range->lo, range->hi, windows, n);
	*nwindows = (int) n;
	return windows;
}

/*
 * CloverSplitRangeByDays
 *		Like CloverSplitRange, but the windows export whole UTC days (up to
 *		limit, the statement's start) while returning only the range's rows
 *
 * For scans whose bounds change with each rescan: neighbouring parameters
 * then need the same exports (see statement_exports.c).
 */
CloverWindow *
CloverSplitRangeByDays(const CloverRange *range, TimestampTz limit,
					   int *nwindows)
{
	CloverRange days = *range;
	CloverWindow *windows;

	Assert(range->has_lo && !range->empty);
	CloverWholeDays(range->lo, range->hi, limit, &days.lo, &days.hi);
	windows = CloverSplitRange(&days, nwindows);
	CloverClipWindows(windows, *nwindows, range->lo, range->hi);
	return windows;
}

/*
 * CloverSplitRangeAround
 *		Cut a finished, non-empty range into pieces around the spans of
 *		exports that already exist (windows.c, CloverCoverRange): pieces a
 *		span covers keep its export times, the gaps get new windows; returns
 *		a palloc'd array of *nwindows windows, in time order
 *
 * by_days: the bounds change per rescan, so the range is first widened to
 * whole UTC days (up to limit, the statement's start), as
 * CloverSplitRangeByDays does, and the pieces then clipped back to it.
 */
CloverWindow *
CloverSplitRangeAround(const CloverRange *range, bool by_days,
					   TimestampTz limit, const CloverWindow *spans,
					   int nspans, int *nwindows)
{
	TimestampTz lo = range->lo;
	TimestampTz hi = range->hi;
	CloverWindow *windows;
	int		   *source;
	int			n,
				i,
				kept = 0;

	Assert(range->has_lo && !range->empty);
	if (by_days)
		CloverWholeDays(range->lo, range->hi, limit, &lo, &hi);
	if (CloverWindowCount(lo, hi) > MAX_WINDOWS)
	{
		CloverRange wide = *range;

		wide.lo = lo;
		wide.hi = hi;
		(void) CloverSplitRange(&wide, &n);	/* raises the error */
	}
	windows = palloc(sizeof(CloverWindow) * CloverCoverMaxPieces(lo, hi, nspans));
	source = palloc(sizeof(int) * CloverCoverMaxPieces(lo, hi, nspans));
	n = CloverCoverRange(lo, hi, limit, spans, nspans, windows, source);
	pfree(source);

	/* back to the range: whole days may reach past it at either end */
	CloverClipWindows(windows, n, range->lo, range->hi);
	for (i = 0; i < n; i++)
	{
		if (windows[i].lo < windows[i].hi)
			windows[kept++] = windows[i];
	}
	*nwindows = kept;
	return windows;
}

/*
 * CloverFormatUtc
 *		A time as "YYYY-MM-DD HH:MM:SS[.ffffff] UTC", whatever the session's
 *		TimeZone, palloc'd
 */
char *
CloverFormatUtc(TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_IS_NOBEGIN(ts))
		return pstrdup("-infinity");
	if (TIMESTAMP_IS_NOEND(ts))
		return pstrdup("infinity");
	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		return pstrdup("(out of range)");
	if (fsec != 0)
		return psprintf("%04d-%02d-%02d %02d:%02d:%02d.%06d UTC",
						tm.tm_year, tm.tm_mon, tm.tm_mday,
						tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
	return psprintf("%04d-%02d-%02d %02d:%02d:%02d UTC",
					tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * CloverRangeText
 *		A finished, non-empty range for EXPLAIN, with the end the query gave
 *		("[lo, hi)", "[lo, v]" for "<= v", "[lo, statement start)" when the
 *		query gave none), palloc'd
 *
 * The scan stops at the statement start anyway: nothing later exists yet.
 */
char *
CloverRangeText(const CloverRange *range)
{
	char	   *end;

	if (TIMESTAMP_IS_NOEND(range->query_hi))
		end = pstrdup("statement start)");
	else if (range->query_hi_closed)
		end = psprintf("%s]", CloverFormatUtc(range->query_hi - 1));
	else
		end = psprintf("%s)", CloverFormatUtc(range->query_hi));
	return psprintf("[%s, %s%s", CloverFormatUtc(range->lo), end,
					range->lo_from_history ? " (from history_start)" : "");
}
