/*-------------------------------------------------------------------------
 *
 * windows.c
 *		  Cut a range of createdTime into export windows of at most 30 days
 *
 * Clover exports at most 30 days at a time, counted in the epoch
 * milliseconds of startTime and endTime.  A range that exports made
 * earlier partly cover is cut around them (CloverCoverRange): only the
 * gaps get new windows.  Windows meet exactly: each object
 * belongs to the one window with lo <= createdTime < hi, whatever Clover
 * does with endTime (inclusive or not: the scan drops the objects outside
 * its window).
 *
 * Pure computation (see clover_core.h): tested by test/unit/test_core.c.
 *
 * IDENTIFICATION
 *		  src/windows.c
 *-------------------------------------------------------------------------
 */
#ifndef FRONTEND
#include "postgres.h"
#else
#include "postgres_fe.h"
#endif

#include "clover_core.h"

/*
 * window_ms
 *		The range [lo, hi) in whole epoch milliseconds: lo rounded down, hi
 *		rounded up
 */
static void
window_ms(TimestampTz lo, TimestampTz hi, int64 *lo_ms, int64 *hi_ms)
{
	*lo_ms = CloverTimestampToUnixMs(lo);
	*hi_ms = CloverTimestampToUnixMs(hi - 1) + 1;
}

/*
 * CloverWindowCount
 *		How many windows the finite, non-empty range [lo, hi) needs
 */
int64
CloverWindowCount(TimestampTz lo, TimestampTz hi)
{
	int64		lo_ms,
				hi_ms;

	window_ms(lo, hi, &lo_ms, &hi_ms);
	return (hi_ms - lo_ms + CLOVER_MAX_WINDOW_MS - 1) / CLOVER_MAX_WINDOW_MS;
}

/*
 * CloverSplitWindows
 *		Fill windows[0 .. nwindows-1] (nwindows from CloverWindowCount) with
 *		the windows of [lo, hi)
 *
 * Window boundaries fall on whole milliseconds, counted from the range's
 * start, so every window asks Clover for at most CLOVER_MAX_WINDOW_MS; the
 * first and last keep the range's exact ends.
 */
void
CloverSplitWindows(TimestampTz lo, TimestampTz hi, CloverWindow *windows,
				   int64 nwindows)
{
	int64		lo_ms,
				hi_ms,
				i;

	window_ms(lo, hi, &lo_ms, &hi_ms);
	for (i = 0; i < nwindows; i++)
	{
		CloverWindow *w = &windows[i];

		w->start_ms = lo_ms + i * CLOVER_MAX_WINDOW_MS;
		w->end_ms = Min(w->start_ms + CLOVER_MAX_WINDOW_MS, hi_ms);
		w->lo = lo;
		w->hi = hi;
		if (i > 0)
			(void) CloverUnixMsToTimestamp(w->start_ms, &w->lo);
		if (i < nwindows - 1)
			(void) CloverUnixMsToTimestamp(w->end_ms, &w->hi);
	}
}

/*
 * CloverWholeDays
 *		[lo, hi) widened to whole UTC days, the end no later than limit
 *		(but never before hi)
 *
 * The windows of a parameterized scan: the rescans for neighbouring outer
 * rows then ask for the same days, and are served by one export.  UTC
 * midnights are whole multiples of a day from PostgreSQL's epoch.
 */
void
CloverWholeDays(TimestampTz lo, TimestampTz hi, TimestampTz limit,
				TimestampTz *day_lo, TimestampTz *day_hi)
{
	int64		lo_rem = lo % USECS_PER_DAY;
	int64		hi_rem = hi % USECS_PER_DAY;

	/* floor and ceiling to a multiple of a day, before 2000 as well */
	*day_lo = lo - (lo_rem < 0 ? lo_rem + USECS_PER_DAY : lo_rem);
	*day_hi = hi_rem == 0 ? hi :
		hi - (hi_rem < 0 ? hi_rem + USECS_PER_DAY : hi_rem) + USECS_PER_DAY;
	*day_hi = Max(Min(*day_hi, limit), hi);
}

/*
 * CloverClipWindows
 *		Keep each window's export times, but let it return only the rows of
 *		[lo, hi), the range the scan needs
 *
 * For windows split from a range that contains [lo, hi) and meets it
 * (CloverWholeDays): every window keeps a non-empty part.
 */
void
CloverClipWindows(CloverWindow *windows, int64 nwindows, TimestampTz lo,
				  TimestampTz hi)
{
	int64		i;

	for (i = 0; i < nwindows; i++)
	{
		windows[i].lo = Max(windows[i].lo, lo);
		windows[i].hi = Min(windows[i].hi, hi);
	}
}

/*
 * CloverCoverMaxPieces
 *		Room CloverCoverRange needs for [lo, hi) and nspans spans: every
 *		span gives at most one piece and one more gap, and gaps need at most
 *		one window more each than the whole range would
 */
int64
CloverCoverMaxPieces(TimestampTz lo, TimestampTz hi, int nspans)
{
	return CloverWindowCount(lo, hi) + 2 * (int64) nspans + 1;
}

/*
 * best_span
 *		The span that covers pos and reaches furthest, or -1
 */
static int
best_span(TimestampTz pos, const CloverWindow *spans, int nspans)
{
	int			best = -1;
	int			i;

	for (i = 0; i < nspans; i++)
	{
		if (spans[i].lo <= pos && pos < spans[i].hi &&
			(best < 0 || spans[i].hi > spans[best].hi))
			best = i;
	}
	return best;
}

/*
 * gap_end
 *		Where the gap that starts at pos ends: at the first span that starts
 *		after it, or at hi
 */
static TimestampTz
gap_end(TimestampTz pos, TimestampTz hi, const CloverWindow *spans,
		int nspans)
{
	TimestampTz end = hi;
	int			i;

	for (i = 0; i < nspans; i++)
	{
		if (spans[i].lo > pos && spans[i].lo < end)
			end = spans[i].lo;
	}
	return end;
}

/*
 * split_gap
 *		Windows for the gap [lo, hi), into out; returns how many
 *
 * The windows export whole UTC days around the gap (up to limit) when that
 * costs little, so that later queries can reuse them: when it needs no
 * more windows and adds at most a quarter to the gap's length.  They
 * return only the gap's rows.
 */
static int64
split_gap(TimestampTz lo, TimestampTz hi, TimestampTz limit, CloverWindow *out)
{
	TimestampTz day_lo,
				day_hi;
	int64		n = CloverWindowCount(lo, hi);

	CloverWholeDays(lo, hi, limit, &day_lo, &day_hi);
	if (CloverWindowCount(day_lo, day_hi) == n &&
		(double) (day_hi - day_lo) <= 1.25 * (double) (hi - lo))
	{
		CloverSplitWindows(day_lo, day_hi, out, n);
		CloverClipWindows(out, n, lo, hi);
	}
	else
		CloverSplitWindows(lo, hi, out, n);
	return n;
}

/*
 * CloverCoverRange
 *		Cut the finite, non-empty range [lo, hi) into pieces: where existing
 *		exports (spans) cover it, pieces they serve; in the gaps, new
 *		windows (split_gap); returns the number of pieces
 *
 * A span covers [lo, hi) of its CloverWindow; its start_ms and end_ms are
 * the export's.  Pieces come in time order and meet exactly; a piece
 * served by span i has source[k] = i, lo and hi clipped to the range and
 * the span's start_ms and end_ms; a new window has source[k] = -1.  Where
 * spans overlap, the one reaching furthest serves.  out and source need
 * room for CloverCoverMaxPieces.
 */
int
CloverCoverRange(TimestampTz lo, TimestampTz hi, TimestampTz limit,
				 const CloverWindow *spans, int nspans,
				 CloverWindow *out, int *source)
{
	TimestampTz pos = lo;
	int			n = 0;

	while (pos < hi)
	{
		int			s = best_span(pos, spans, nspans);

		if (s >= 0)
		{
			out[n] = spans[s];
			out[n].lo = pos;
			out[n].hi = Min(spans[s].hi, hi);
			source[n++] = s;
			pos = out[n - 1].hi;
		}
		else
		{
			TimestampTz end = gap_end(pos, hi, spans, nspans);
			int64		k = split_gap(pos, end, limit, &out[n]);

			while (k-- > 0)
				source[n++] = -1;
			pos = end;
		}
	}
	return n;
}
