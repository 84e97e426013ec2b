/*-------------------------------------------------------------------------
 *
 * pacing.c
 *		  When the next request to Clover may go: the polling schedule, the
 *		  API rate limiter, backoff with jitter and deadlines
 *
 * Clover asks clients to stay under 16 requests/s and 5 concurrent requests
 * per token (50 and 10 per app, all its tokens together), to wait out
 * Retry-After, and then to back off exponentially with jitter.  Every
 * function here is a pure rule over times in seconds (any monotonic clock)
 * and random numbers passed in by the caller, so that the unit tests
 * (test/unit/test_core.c) can count what a rule allows without waiting for
 * it.
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
 * CloverPollHistoryInit
 *		The history of an export created at created_at, not yet polled
 */
void
CloverPollHistoryInit(CloverPollHistory *h, double created_at)
{
	h->created_at = created_at;
	h->first_at = 0;
	h->first_percent = -1;
	h->last_percent = -1;
	h->done_by = 0;
	h->misses = 0;
}

/*
 * CloverNextPoll
 *		The wait in seconds before the next poll of a running export, given
 *		what the poll answered at now (in_progress: IN_PROGRESS, else PENDING;
 *		percent: its percentComplete, -1 if absent).  Call it once per poll
 *		(and once right after the export is created): it records the answer.
 *
 * While nothing is known (PENDING, or percentComplete has not risen since
 * the first IN_PROGRESS poll) the wait is half the export's age: polls at
 * 0.25, 0.5, 0.75, 1.1, 1.7, 2.5 s ... (a small window is often DONE within
 * a second), each 1.5 times the last, up to the ceiling.  Once it has risen,
 * the rate between the first IN_PROGRESS poll and this one predicts when it
 * reaches 100, and the next poll goes just after that.  percentComplete is
 * rounded down, so the prediction takes the fastest rate the two rounded
 * values allow: it is early rather than late, and the poll it schedules
 * measures the rate again over a longer span.  A stall slows the rate, so
 * the prediction moves out by itself; a poll at or after the predicted time
 * that finds percentComplete no higher than before (stuck at 99, stalled)
 * is a miss, and each miss in a row doubles the floor, so a wrong
 * prediction cannot keep polling at the floor.  Every wait lies within
 * CLOVER_POLL_FLOOR_MS and CLOVER_POLL_CEILING_MS (the caller also stops at
 * export_timeout).
 *
 * The bound: never more than 4 polls a second.  Without a prediction an
 * export that runs T seconds costs about 1.7 * log2(min(T, 20)) + 4 polls
 * until the waits reach the ceiling, then T / 10 (stuck for 600 s: 69).  One
 * whose percentComplete rises steadily costs fewer (0.5 s: 2, 3 s: 4, 15 s:
 * 5, 40 s: 8, 600 s: 73 in test_polling, test/unit/test_core.c; the old
 * 50 ms doubling to 5 s cost 4, 6, 9, 14 and 126) and is noticed DONE
 * within about the floor, or within the time it sits at 99%.
 */
double
CloverNextPoll(CloverPollHistory *h, double now, bool in_progress,
			   int percent)
{
	double		floor_s = CLOVER_POLL_FLOOR_MS / 1000.0;
	double		wait;

	if (percent > h->last_percent)
		h->misses = 0;
	else if (h->done_by > 0 && now >= h->done_by)
		h->misses++;
	h->last_percent = Max(h->last_percent, percent);
	h->done_by = 0;

	if (in_progress && percent >= 0)
	{
		if (h->first_percent < 0)
		{
			h->first_at = now;
			h->first_percent = percent;
		}
		else if (percent > h->first_percent && now > h->first_at)
		{
			/* both values are rounded down: the fastest rate they allow */
			double		rate = (percent - h->first_percent + 1) /
				(now - h->first_at);

			h->done_by = now + Max(99 - percent, 0) / rate;
		}
	}

	if (h->done_by > 0)
		wait = h->done_by - now + CLOVER_POLL_MARGIN_MS / 1000.0;
	else
		wait = (now - h->created_at) / 2;
	wait = Max(wait, floor_s * pow(2.0, Min(h->misses, 10)));
	return Min(wait, CLOVER_POLL_CEILING_MS / 1000.0);
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
 * CloverRateLimitWait
 *		How long to wait after the streak-th 429 in a row, the first at
 *		since, within timeout: its Retry-After (retry_after >= 0, seconds)
 *		and a little more, since calling early lengthens Clover's penalty;
 *		without one a backoff from 1 s.  -1 when the Retry-After would end
 *		past the timeout, or the time is spent.
 */
double
CloverRateLimitWait(double since, double timeout, double now, int streak,
					long retry_after, double random)
{
	double		delay;

	if (retry_after < 0)
		return CloverDeadlineWait(since, timeout, now,
								  CloverBackoff(streak, RATE_RETRY_BASE_SECS,
												RATE_RETRY_MAX_SECS, random));
	delay = (double) retry_after + RETRY_AFTER_MARGIN_SECS;
	if (CloverDeadlineWait(since, timeout, now, delay) < delay)
		return -1;
	return delay;
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
 * CloverAppLimiterInit
 *		A limiter for an app's requests, all its tokens together, inside
 *		Clover's limits of requests_per_second and max_in_flight
 *
 * As the per-token bucket does (9/s with bursts of 4 for Clover's 16/s),
 * the bucket keeps a margin for requests that reach Clover bunched: it
 * fills at 60% of the limit and holds a fifth of it (at least one), so at
 * most 80% of the limit is approved in any second (50/s: 30/s with bursts
 * of 10).  A request in flight is in flight at Clover only while it is in
 * flight here, so max_in_flight is used as it is.
 */
void
CloverAppLimiterInit(CloverRateLimiter *rl, int requests_per_second,
					 int max_in_flight, double now)
{
	CloverRateLimiterInit(rl, requests_per_second * 0.6,
						  Max(1.0, requests_per_second * 0.2),
						  max_in_flight, now);
}

/*
 * CloverShareOf
 *		This node's part of a limit that share of the nodes' whole has (a
 *		fraction in (0, 1]): rounded down, but never below 1
 */
int
CloverShareOf(int limit, double share)
{
	double		part = floor(limit * share + 1e-9);

	return part < 1.0 ? 1 : (int) part;
}

/*
 * may_take
 *		Does the limiter let a request go now?  Brings its bucket up to now
 *		(which changes nothing it allows later), takes nothing.
 */
static bool
may_take(CloverRateLimiter *rl, double now)
{
	if (rl->in_flight >= rl->max_in_flight || now < rl->paused_until)
		return false;
	rl->tokens = Min(rl->burst, rl->tokens + (now - rl->tokens_at) * rl->rate);
	rl->tokens_at = now;
	return rl->tokens >= 1.0;
}

/*
 * take_one
 *		A request may_take allowed goes: it uses a token and is in flight
 */
static void
take_one(CloverRateLimiter *rl)
{
	rl->tokens -= 1.0;
	rl->in_flight++;
}

/*
 * CloverRateLimiterTake
 *		May another request go now?  If so it counts as in flight (until
 *		CloverRateLimiterDone) and has used a token.
 */
bool
CloverRateLimiterTake(CloverRateLimiter *rl, double now)
{
	if (!may_take(rl, now))
		return false;
	take_one(rl);
	return true;
}

/*
 * CloverRateLimiterTakeBoth
 *		May a request that counts against two limiters (its token's and its
 *		app's) go now?  It takes from both or from neither: a request one of
 *		them holds back uses nothing of the other.
 */
bool
CloverRateLimiterTakeBoth(CloverRateLimiter *a, CloverRateLimiter *b,
						  double now)
{
	if (!may_take(a, now) || !may_take(b, now))
		return false;
	take_one(a);
	take_one(b);
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
