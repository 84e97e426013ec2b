/*-------------------------------------------------------------------------
 *
 * pacing.c
 *		  When the next request to Clover may go: the polling schedule, the
 *		  API rate limiter, backoff with jitter and deadlines
 *
 * Clover asks clients to stay under 16 requests/s and 5 concurrent requests
 * per token, to wait out Retry-After, and then to back off exponentially
 * with jitter.  Every function here is a pure rule over times in seconds
 * (any monotonic clock) and random numbers passed in by the caller, so that
 * the unit tests (test/unit/test_core.c) can count what a rule allows
 * without waiting for it.
 *
 * Pure computation (see clover_core.h): never ereports.
 *
 * IDENTIFICATION
 *		  src/pacing.c
 *-------------------------------------------------------------------------
 */
#ifndef FRONTEND
#include "postgres.h"
#else
#include "postgres_fe.h"
#endif

#include <math.h>

#include "clover_core.h"

/*
 * CloverMayCreateExport
 *		May the export of a window be created now?  ahead: how many windows
 *		after the one being handed out it is (0: that one); running: the
 *		exports of the same server running at Clover
 *
 * At most max_concurrent exports run at once (Clover asks for few).  Until
 * the consumer has finished a whole file (prefetch_unlocked), only the
 * window being handed out gets an export, so a LIMIT 10 creates one; after
 * that at most max_concurrent windows ahead.
 */
bool
CloverMayCreateExport(int ahead, int running, int max_concurrent,
					  bool prefetch_unlocked)
{
	if (running >= max_concurrent)
		return false;
	if (ahead > 0 && !prefetch_unlocked)
		return false;
	return ahead <= max_concurrent;
}

/*
 * CloverNextPollInterval
 *		The wait before the next poll of a running export, given the last
 *		one (0 before the first poll): first CLOVER_POLL_FIRST_MS, then
 *		doubling up to CLOVER_POLL_MAX_MS
 *
 * A small window is often ready at once; a ten-minute export costs about
 * 125 polls.
 */
int
CloverNextPollInterval(int interval_ms)
{
	if (interval_ms <= 0)
		return CLOVER_POLL_FIRST_MS;
	return Min(interval_ms * 2, CLOVER_POLL_MAX_MS);
}

/*
 * CloverBackoff
 *		Exponential backoff with jitter: base * 2^(attempt-1), capped, then
 *		scaled by 0.5 + 0.5 * random (random in [0, 1))
 */
double
CloverBackoff(int attempt, double base, double cap, double random)
{
	double		d = base * pow(2.0, Max(attempt - 1, 0));

	if (d > cap)
		d = cap;
	return d * (0.5 + 0.5 * random);
}

/*
 * CloverDeadlineWait
 *		The next wait of a retry loop that may last timeout from since:
 *		delay, or what is left of the time if that is less (a last, shorter
 *		wait); -1 once the time is spent
 */
double
CloverDeadlineWait(double since, double timeout, double now, double delay)
{
	double		left = since + timeout - now;

	if (left <= 0)
		return -1;
	return Min(delay, left);
}

/*
 * CloverRateLimiterInit
 *		A limiter with a full bucket at time now
 */
void
CloverRateLimiterInit(CloverRateLimiter *rl, double rate, double burst,
					  int max_in_flight, double now)
{
	rl->rate = rate;
	rl->burst = burst;
	rl->max_in_flight = max_in_flight;
	rl->tokens = burst;
	rl->tokens_at = now;
	rl->in_flight = 0;
	rl->paused_until = 0;
}

/*
 * CloverRateLimiterTake
 *		May another request go now?  If so it counts as in flight (until
 *		CloverRateLimiterDone) and has used a token.
 */
bool
CloverRateLimiterTake(CloverRateLimiter *rl, double now)
{
	if (rl->in_flight >= rl->max_in_flight || now < rl->paused_until)
		return false;
	rl->tokens = Min(rl->burst, rl->tokens + (now - rl->tokens_at) * rl->rate);
	rl->tokens_at = now;
	if (rl->tokens < 1.0)
		return false;
	rl->tokens -= 1.0;
	rl->in_flight++;
	return true;
}

/*
 * CloverRateLimiterDone
 *		A request that CloverRateLimiterTake let go has finished
 */
void
CloverRateLimiterDone(CloverRateLimiter *rl)
{
	Assert(rl->in_flight > 0);
	rl->in_flight--;
}

/*
 * CloverRateLimiterPause
 *		No request before until (a later pause wins over an earlier one)
 */
void
CloverRateLimiterPause(CloverRateLimiter *rl, double until)
{
	rl->paused_until = Max(rl->paused_until, until);
}

/*
 * CloverRateLimiterReadyAt
 *		The earliest time, not before now, at which the pause is over and
 *		the bucket holds a token (a request in flight may still hold it
 *		back: its end is an event, not a time)
 */
double
CloverRateLimiterReadyAt(const CloverRateLimiter *rl, double now)
{
	double		tokens = Min(rl->burst,
							 rl->tokens + (now - rl->tokens_at) * rl->rate);
	double		ready = now;

	if (tokens < 1.0)
		ready = now + (1.0 - tokens) / rl->rate;
	return Max(ready, rl->paused_until);
}
