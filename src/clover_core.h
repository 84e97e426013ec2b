/*-------------------------------------------------------------------------
 *
 * clover_core.h
 *		  The parts of clover_export_fdw that need neither a backend nor curl
 *
 * Everything declared here is plain computation on times and numbers, so
 * it compiles into the extension and, with -DFRONTEND, into the unit test
 * program test/unit/test_core.c, which checks it without a server:
 *
 *	windows.c			 a range of createdTime -> export windows of at most
 *						 30 days, around exports that cover parts of it;
 *						 epoch milliseconds <-> TimestampTz
 *	service_hours.c		 Clover's service hours calendar
 *	pacing.c			 when the next request may go: which export may be
 *						 created, the polling schedule, the API rate
 *						 limiter, backoff with jitter and deadlines (times
 *						 are passed in, in seconds)
 *
 * The files implementing it include only c.h-level headers and never
 * ereport: callers turn their results into errors.
 *
 * IDENTIFICATION
 *		  src/clover_core.h
 *-------------------------------------------------------------------------
 */
#ifndef CLOVER_CORE_H
#define CLOVER_CORE_H

#include <time.h>

#include "datatype/timestamp.h"

#define CLOVER_MS_PER_DAY			((int64) 86400000)

/* Clover's documented limits */
#define CLOVER_MAX_WINDOW_DAYS		30
#define CLOVER_MAX_WINDOW_MS		(CLOVER_MAX_WINDOW_DAYS * CLOVER_MS_PER_DAY)
#define CLOVER_MAX_FILE_OBJECTS		1000

/* days and microseconds from the Unix epoch to PostgreSQL's (2000-01-01) */
#define CLOVER_UNIX_EPOCH_DAYS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE))
#define CLOVER_UNIX_EPOCH_USECS		(CLOVER_UNIX_EPOCH_DAYS * USECS_PER_DAY)
/* the Unix epoch as a TimestampTz: Clover's times start there */
#define CLOVER_UNIX_EPOCH_TIMESTAMP	(-CLOVER_UNIX_EPOCH_USECS)

/*
 * mono_now
 *		Seconds on the monotonic clock, the clock of every timer of the
 *		runs of exports and of list pages (the wall clock only decides
 *		service hours)
 */
static inline double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * CloverTimestampToUnixMs
 *		A finite TimestampTz as epoch milliseconds, rounded down
 */
static inline int64
CloverTimestampToUnixMs(TimestampTz ts)
{
	int64		us = ts + CLOVER_UNIX_EPOCH_USECS;

	/* floor division, for times before 1970 too */
	return us >= 0 ? us / 1000 : -((-us + 999) / 1000);
}

/*
 * CloverTimestampToUnixMsCeil
 *		A finite TimestampTz as epoch milliseconds, rounded up: the first
 *		millisecond at or after it
 */
static inline int64
CloverTimestampToUnixMsCeil(TimestampTz ts)
{
	int64		us = ts + CLOVER_UNIX_EPOCH_USECS;

	/* C division truncates: up for negative times already */
	return us / 1000 + (us > 0 && us % 1000 != 0);
}

/*
 * CloverUnixMsToTimestamp
 *		Epoch milliseconds as a TimestampTz; false if PostgreSQL's timestamps
 *		cannot hold them
 *
 * The one conversion from Clover's times: file values, export windows and
 * availableUntil all go through it.
 */
static inline bool
CloverUnixMsToTimestamp(int64 ms, TimestampTz *ts)
{
	int64		pg_ms;

	/* both limits and the epoch offset are whole milliseconds */
	if (ms < MIN_TIMESTAMP / 1000 + CLOVER_UNIX_EPOCH_USECS / 1000 ||
		ms >= END_TIMESTAMP / 1000 + CLOVER_UNIX_EPOCH_USECS / 1000)
		return false;
	pg_ms = ms - CLOVER_UNIX_EPOCH_USECS / 1000;
	*ts = pg_ms * 1000;
	return true;
}

/*
 * CloverUnixMsToDays
 *		The UTC day of epoch milliseconds, in days since 2000-01-01 (a
 *		DateADT's unit; the caller checks IS_VALID_DATE)
 */
static inline int64
CloverUnixMsToDays(int64 ms)
{
	int64		days = ms / CLOVER_MS_PER_DAY;

	if (ms % CLOVER_MS_PER_DAY < 0)
		days--;					/* floor, for times before 1970 too */
	return days - CLOVER_UNIX_EPOCH_DAYS;
}

/* ----------------------------------------------------------------
 *		windows.c
 * ----------------------------------------------------------------
 */

/* One export: [lo, hi) exactly, and the times sent to Clover */
typedef struct CloverWindow
{
	TimestampTz lo;				/* rows with lo <= createdTime < hi */
	TimestampTz hi;
	int64		start_ms;		/* startTime sent to Clover */
	int64		end_ms;			/* endTime sent to Clover */
} CloverWindow;

extern int64 CloverWindowCount(TimestampTz lo, TimestampTz hi);
extern void CloverSplitWindows(TimestampTz lo, TimestampTz hi,
							   CloverWindow *windows, int64 nwindows);
extern void CloverWholeDays(TimestampTz lo, TimestampTz hi, TimestampTz limit,
							TimestampTz *day_lo, TimestampTz *day_hi);
extern void CloverClipWindows(CloverWindow *windows, int64 nwindows,
							  TimestampTz lo, TimestampTz hi);
extern int64 CloverCoverMaxPieces(TimestampTz lo, TimestampTz hi, int nspans);
extern int	CloverCoverRange(TimestampTz lo, TimestampTz hi, TimestampTz limit,
							 const CloverWindow *spans, int nspans,
							 CloverWindow *out, int *source);

/* ----------------------------------------------------------------
 *		service_hours.c
 * ----------------------------------------------------------------
 */

#define CLOVER_MAX_HOUR_RANGES		64

/* One open period on one weekday, in minutes after midnight UTC */
typedef struct CloverHourRange
{
	int			weekday;		/* 0 = Sunday .. 6 = Saturday */
	int			start_min;		/* inclusive */
	int			end_min;		/* exclusive; 1440 = midnight */
} CloverHourRange;

/* A week of service hours; flat so it can be copied freely */
typedef struct CloverServiceHours
{
	char		spec[256];		/* the text it was parsed from */
	bool		always;
	int			nranges;
	CloverHourRange ranges[CLOVER_MAX_HOUR_RANGES];
} CloverServiceHours;

extern bool CloverParseServiceHours(const char *spec, CloverServiceHours *out,
									char **errmsg);
extern bool CloverServiceOpenAt(const CloverServiceHours *hours, TimestampTz t);
extern TimestampTz CloverNextOpening(const CloverServiceHours *hours,
									 TimestampTz t);
extern const char *CloverFormatServiceHours(const CloverServiceHours *hours);

/* ----------------------------------------------------------------
 *		pacing.c
 * ----------------------------------------------------------------
 */

/* polling schedule of a running export (CloverNextPoll) */
#define CLOVER_POLL_FLOOR_MS		250 /* never polled more often */
#define CLOVER_POLL_CEILING_MS		10000	/* never a longer wait */
#define CLOVER_POLL_MARGIN_MS		50	/* poll this long after predicted DONE */

/*
 * What the polls of one running export have seen so far; times in seconds
 * on any monotonic clock
 */
typedef struct CloverPollHistory
{
	double		created_at;		/* when the export was created */
	double		first_at;		/* first poll that saw IN_PROGRESS */
	int			first_percent;	/* its percentComplete, -1 before it */
	int			last_percent;	/* highest percentComplete seen, or -1 */
	double		done_by;		/* earliest DONE the last poll predicted, or 0 */
	int			misses;			/* polls in a row after done_by, no progress */
} CloverPollHistory;

/*
 * A token bucket plus a cap on requests in flight and a pause (after a
 * 429); times in seconds on any monotonic clock
 */
typedef struct CloverRateLimiter
{
	double		rate;			/* tokens per second */
	double		burst;			/* most tokens held */
	int			max_in_flight;
	double		tokens;
	double		tokens_at;		/* when tokens was last brought up to date */
	int			in_flight;
	double		paused_until;
} CloverRateLimiter;

extern bool CloverMayCreateExport(int ahead, int running, int max_concurrent,
								  bool prefetch_unlocked);
extern void CloverPollHistoryInit(CloverPollHistory *h, double created_at);
extern double CloverNextPoll(CloverPollHistory *h, double now,
							 bool in_progress, int percent);
extern double CloverBackoff(int attempt, double base, double cap,
							double random);
extern double CloverDeadlineWait(double since, double timeout, double now,
								 double delay);

/* a 429's wait: its Retry-After and this margin, else backoff from 1 s */
#define RETRY_AFTER_MARGIN_SECS		0.05
#define RATE_RETRY_BASE_SECS		1.0
#define RATE_RETRY_MAX_SECS			60.0
extern double CloverRateLimitWait(double since, double timeout, double now,
								  int streak, long retry_after, double random);
extern void CloverRateLimiterInit(CloverRateLimiter *rl, double rate,
								  double burst, int max_in_flight, double now);
extern void CloverAppLimiterInit(CloverRateLimiter *rl,
								 int requests_per_second, int max_in_flight,
								 double now);
extern int	CloverShareOf(int limit, double share);
extern bool CloverRateLimiterTake(CloverRateLimiter *rl, double now);
extern bool CloverRateLimiterTakeBoth(CloverRateLimiter *a,
									  CloverRateLimiter *b, double now);
extern void CloverRateLimiterDone(CloverRateLimiter *rl);
extern void CloverRateLimiterPause(CloverRateLimiter *rl, double until);
extern double CloverRateLimiterReadyAt(const CloverRateLimiter *rl,
									   double now);

#endif							/* CLOVER_CORE_H */
