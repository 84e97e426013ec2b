/*-------------------------------------------------------------------------
 *
 * export_slots.c
 *		  Clover's limits for the whole cluster: slots for new exports, in
 *		  line, and the request rate of each token
 *
 * Clover runs only a few exports at once per merchant (503 "busy" beyond)
 * and allows each token 16 requests/s and 5 concurrent requests.  Every
 * session of the cluster counts against the same limits, so they are kept
 * in the shared state (cluster_state.h):
 *
 * - Slots.  The exports in flight of an API host and merchant, in all
 *	 sessions, are at most the server's max_concurrent_exports.  A run that
 *	 wants to create one joins the merchant's line (a ticket, lowest
 *	 first) and takes a slot when it is first and one is free: taking it
 *	 registers the export it is about to create (export_registry.c), and
 *	 the export gives the slot back when it is DONE or failed, or when its
 *	 run stops polling it.  Before taking a slot, and while in line, the
 *	 run looks for an export that now covers its window (another session
 *	 may just have created it): then it uses that one instead, so sessions
 *	 that ask for the same window at once create one export.
 * - Requests.  Each token (with its API host) has one token bucket, shared
 *	 by every session, well inside Clover's limits: REQUEST_RATE per second
 *	 with bursts of REQUEST_BURST (so at most 13 approved in any second,
 *	 leaving room for requests that reach Clover bunched), at most
 *	 REQUESTS_IN_FLIGHT at once, and a pause after a 429 that every session
 *	 keeps.  Tokens are known only by a hash, in memory.
 *
 * Waits happen in the caller's event loop (exports.c): these functions
 * only say yes or not yet, so a waiting scan stays cancellable and keeps
 * its other requests moving.
 *
 * IDENTIFICATION
 *		  src/export_slots.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "cluster_state.h"
#include "clover_export_fdw.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

/* every session's API requests with one token, together */
#define REQUEST_RATE			9.0
#define REQUEST_BURST			4.0
#define REQUESTS_IN_FLIGHT		4

/*
 * CloverTokenKey
 *		The key of an API host and token for the request limiter: a hash,
 *		so the token itself is never kept in shared memory
 */
uint64
CloverTokenKey(const CloverFdwOptions *opts, const char *token)
{
	uint64		h;

	h = hash_bytes_extended((const unsigned char *) opts->api_base,
							strlen(opts->api_base), 0x636c6f766572ULL);
	h = hash_bytes_extended((const unsigned char *) token, strlen(token), h);
	return h ? h : 1;
}

/*
 * ahead_of
 *		How many are in the line of key before ticket
 */
static int
ahead_of(ClusterState *cs, uint64 key, uint64 ticket)
{
	int			n = 0;
	int			i;

	for (i = 0; i < CLUSTER_MAX_CLAIMS; i++)
	{
		Claim	   *c = &cs->claims[i];

		if (c->kind == CLAIM_LINE && c->key == key && c->ticket < ticket)
			n++;
	}
	return n;
}

/*
 * CloverSlotTake
 *		May run create the export of window now?
 *
 * CLOVER_SLOT_TAKEN: yes; the export is registered as being created and
 * *ref names it.  CLOVER_SLOT_COVERED: an export that covers the window
 * has appeared; *ref names it, and the run should use it.
 * CLOVER_SLOT_WAIT: not yet; the run is in line with *ahead before it (-1
 * if the line is full and it is not in it yet).  Ask again later.
 * to_now: the window reaches the statement's start, stmt_start.
 * may_cover: another export may serve the window (export_registry.c says
 * which may).
 */
CloverSlotResult
CloverSlotTake(const CloverFdwOptions *opts, uint32 run,
			   const CloverWindow *window, bool to_now, bool may_cover,
			   TimestampTz stmt_start, CloverSharedRef *ref, int *ahead)
{
	ClusterState *cs = ClusterStateAttach();
	uint64		key = CloverMerchantKey(opts->api_base, opts->merchant_id);
	TimestampTz now = GetCurrentTimestamp();
	CloverSlotResult result = CLOVER_SLOT_WAIT;
	Claim	   *line;
	int			i;

	*ahead = -1;
	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	line = ClusterClaimFind(cs, CLAIM_LINE, run, key, 0, 0);
	i = may_cover ? RegistryFindCover(cs, opts, window, stmt_start) : -1;
	if (i >= 0)
		result = CLOVER_SLOT_COVERED;
	else
	{
		if (line == NULL && (line = ClusterClaimAdd(cs, CLAIM_LINE, run)) != NULL)
		{
			line->key = key;
			line->ticket = cs->next_ticket++;
		}
		if (line != NULL)
		{
			*ahead = ahead_of(cs, key, line->ticket);
			if (*ahead == 0 &&
				RegistryInFlight(cs, key) < opts->max_concurrent_exports &&
				(i = RegistryAddCreating(cs, opts, run, window, to_now,
										 stmt_start, now)) >= 0)
				result = CLOVER_SLOT_TAKEN;
		}
	}
	if (result != CLOVER_SLOT_WAIT)
	{
		ref->index = i;
		ref->generation = cs->exports[i].generation;
		if (line)
			line->kind = CLAIM_FREE;
	}
	LWLockRelease(&cs->lock);
	return result;
}

/*
 * CloverSlotLeaveLine
 *		run no longer waits for a slot of opts' merchant
 */
void
CloverSlotLeaveLine(const CloverFdwOptions *opts, uint32 run)
{
	ClusterState *cs = ClusterStateAttach();
	Claim	   *line;

	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	line = ClusterClaimFind(cs, CLAIM_LINE, run,
							CloverMerchantKey(opts->api_base, opts->merchant_id),
							0, 0);
	if (line)
		line->kind = CLAIM_FREE;
	LWLockRelease(&cs->lock);
}

/*
 * limiter_of
 *		The limiter of token key, set up if new (taking the one used longest
 *		ago with no request in flight), or NULL if all are busy
 */
static TokenLimiter *
limiter_of(ClusterState *cs, uint64 key, double now)
{
	TokenLimiter *victim = NULL;
	int			i;

	for (i = 0; i < CLUSTER_MAX_LIMITERS; i++)
	{
		TokenLimiter *l = &cs->limiters[i];

		if (l->token_key == key)
			return l;
		if ((l->token_key == 0 ||
			 ClusterClaimCount(cs, CLAIM_REQUEST, l->token_key) == 0) &&
			(victim == NULL || l->last_used < victim->last_used))
			victim = l;
	}
	if (victim)
	{
		victim->token_key = key;
		victim->last_used = now;
		CloverRateLimiterInit(&victim->rl, REQUEST_RATE, REQUEST_BURST,
							  REQUESTS_IN_FLIGHT, now);
	}
	return victim;
}

/*
 * limiter_now
 *		limiter_of, with its requests in flight (claims of all sessions)
 *		brought up to date
 */
static TokenLimiter *
limiter_now(ClusterState *cs, uint64 key, double now)
{
	TokenLimiter *l = limiter_of(cs, key, now);

	if (l)
		l->rl.in_flight = ClusterClaimCount(cs, CLAIM_REQUEST, key);
	return l;
}

/*
 * CloverApiTake
 *		May run send an API request with token key now?  If so, it counts as
 *		in flight until CloverApiDone (or the run's end).
 */
bool
CloverApiTake(uint64 key, uint32 run, double now)
{
	ClusterState *cs = ClusterStateAttach();
	TokenLimiter *l;
	Claim	   *c;
	bool		ok = false;

	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	l = limiter_now(cs, key, now);
	if (l)
	{
		l->last_used = now;
		if (CloverRateLimiterTake(&l->rl, now) &&
			(c = ClusterClaimAdd(cs, CLAIM_REQUEST, run)) != NULL)
		{
			c->key = key;
			ok = true;
		}
	}
	LWLockRelease(&cs->lock);
	return ok;
}

/*
 * CloverApiDone
 *		One API request of run with token key has ended
 */
void
CloverApiDone(uint64 key, uint32 run)
{
	ClusterClaimRelease(CLAIM_REQUEST, run, key, 0, 0);
}

/*
 * CloverApiPause
 *		Clover answered 429: no session sends a request with token key
 *		before until
 */
void
CloverApiPause(uint64 key, double until)
{
	ClusterState *cs = ClusterStateAttach();
	TokenLimiter *l;

	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	l = limiter_of(cs, key, ClusterNow());
	if (l)
		CloverRateLimiterPause(&l->rl, until);
	LWLockRelease(&cs->lock);
}

/*
 * CloverApiReadyAt
 *		When a request with token key may go next (now if it may now; a 429's
 *		pause included)
 */
double
CloverApiReadyAt(uint64 key, double now)
{
	ClusterState *cs = ClusterStateAttach();
	TokenLimiter *l;
	double		ready = now;

	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	l = limiter_now(cs, key, now);
	if (l)
		ready = CloverRateLimiterReadyAt(&l->rl, now);
	LWLockRelease(&cs->lock);
	return ready;
}
