/*-------------------------------------------------------------------------
 *
 * export_slots.c
 *		  Clover's limits for the whole cluster: slots for new exports, in
 *		  line, and the request rate of each token and app
 *
 * Clover runs only a few exports at once per merchant (503 "busy" beyond),
 * and "the server can only handle a few concurrent exports"; it allows
 * each token 16 requests/s and 5 concurrent requests, and each app (all its
 * tokens) 50 and 10.  Every session of the cluster counts against the same
 * limits, so they are kept in the shared state (cluster_state.h):
 *
 * - Slots.  The exports in flight of an API host and merchant, in all
 *	 sessions, are at most the server's max_concurrent_exports, and those
 *	 of an API host, all merchants together, at most the wrapper's
 *	 max_exports_per_host.  A run that wants to create one joins the
 *	 merchant's line (a ticket, lowest first) and takes a slot when it is
 *	 first in that line, its merchant has a slot free, the host has one
 *	 free, and no run with a lower ticket at the same host could take that
 *	 one (first in its own line, its merchant's slot free): the host's
 *	 slots go in the order of the tickets, so no merchant starves.  Taking it
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
 *	 keeps.  Tokens are known only by a hash, in memory.  Each API host
 *	 also has one bucket for its app, all tokens together, from the
 *	 wrapper's app_requests_per_second and app_max_concurrent_requests
 *	 (CloverAppLimiterInit keeps the margin); a request takes from its
 *	 token's and its app's, or waits.  The wrapper's options are per
 *	 database: each request is checked against its own database's numbers,
 *	 so the total stays within the largest of them.
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
 * a run in line that has not asked for a slot this long (a cursor whose
 * client does not fetch) does not hold back other merchants at its host;
 * a waiting run asks every SHARED_RECHECK_SECS (exports.c)
 */
#define LINE_IDLE_SECS			1.0

/*
 * CloverTokenKey
 *		The key of an API host and token for the request limiters: a hash,
 *		so the token itself is never kept in shared memory, and the app's
 *		limits of the wrapper's options
 */
CloverApiKey
CloverTokenKey(const CloverFdwOptions *opts, const char *token)
{
	CloverApiKey key;
	uint64		h;

	h = hash_bytes_extended((const unsigned char *) opts->api_base,
							strlen(opts->api_base), 0x636c6f766572ULL);
	h = hash_bytes_extended((const unsigned char *) token, strlen(token), h);
	key.token = h ? h : 1;
	key.host = RegistryHostKey(opts->api_base);
	key.app_requests_per_second = opts->app_requests_per_second;
	key.app_max_concurrent_requests = opts->app_max_concurrent_requests;
	return key;
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
 * first_in_line
 *		Is line first in the line of its merchant?
 */
static bool
first_in_line(ClusterState *cs, const Claim *line)
{
	return ahead_of(cs, line->key, line->ticket) == 0;
}

/*
 * host_turn
 *		Is it line's turn at its API host?  No run with a lower ticket at
 *		the host waits that could take a slot if the host had one: first in
 *		its merchant's line, with a slot of its merchant free, and asking.
 */
static bool
host_turn(ClusterState *cs, const Claim *line)
{
	int			i;

	for (i = 0; i < CLUSTER_MAX_CLAIMS; i++)
	{
		Claim	   *c = &cs->claims[i];

		if (c->kind == CLAIM_LINE && c->host == line->host &&
			c->ticket < line->ticket && c->key != line->key &&
			line->asked_at - c->asked_at < LINE_IDLE_SECS &&
			first_in_line(cs, c) &&
			RegistryInFlight(cs, c->key) < c->limit)
			return false;
	}
	return true;
}

/*
 * CloverSlotTake
 *		May run create the export of window now?
 *
 * CLOVER_SLOT_TAKEN: yes; the export is registered as being created and
 * *ref names it.  CLOVER_SLOT_COVERED: an export that covers the window
 * has appeared; *ref names it, and the run should use it.
 * CLOVER_SLOT_WAIT: not yet; the run is in line with *ahead before it (-1
 * if the line is full and it is not in it yet), and *host_full says that
 * the API host's slots (max_exports_per_host) are what it waits for.  Ask
 * again later.
 * to_now: the window reaches the statement's start, stmt_start.
 * may_cover: another export may serve the window (export_registry.c says
 * which may).
 */
CloverSlotResult
CloverSlotTake(const CloverFdwOptions *opts, uint32 run,
			   const CloverWindow *window, bool to_now, bool may_cover,
			   TimestampTz stmt_start, CloverSharedRef *ref, int *ahead,
			   bool *host_full)
{
	ClusterState *cs = ClusterStateAttach();
	uint64		key = CloverMerchantKey(opts->api_base, opts->merchant_id);
	uint64		host = RegistryHostKey(opts->api_base);
	TimestampTz now = GetCurrentTimestamp();
	CloverSlotResult result = CLOVER_SLOT_WAIT;
	Claim	   *line;
	int			i;

	*ahead = -1;
	*host_full = false;
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
			line->host = host;
			line->ticket = cs->next_ticket++;
		}
		if (line != NULL)
		{
			/* the limit may change with the options; keep the latest */
			line->limit = opts->max_concurrent_exports;
			line->asked_at = ClusterNow();
			*ahead = ahead_of(cs, key, line->ticket);
			if (*ahead == 0 &&
				RegistryInFlight(cs, key) < opts->max_concurrent_exports)
			{
				/* the host's free slot, if any, is an earlier ticket's */
				*host_full =
					RegistryHostInFlight(cs, host) >= opts->max_exports_per_host ||
					!host_turn(cs, line);
				if (!*host_full &&
					(i = RegistryAddCreating(cs, opts, run, window, to_now,
											 stmt_start, now)) >= 0)
					result = CLOVER_SLOT_TAKEN;
			}
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
 * app_in_flight
 *		How many API requests of all tokens of API host key all sessions
 *		have in flight
 */
static int
app_in_flight(ClusterState *cs, uint64 host_key)
{
	int			n = 0;
	int			i;

	for (i = 0; i < CLUSTER_MAX_CLAIMS; i++)
	{
		if (cs->claims[i].kind == CLAIM_REQUEST &&
			cs->claims[i].host == host_key)
			n++;
	}
	return n;
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
 * app_of
 *		The limiter of the app of API host key, set up with the caller's
 *		numbers if new (taking the one used longest ago with no request in
 *		flight), or NULL if all are busy; the caller's numbers apply to its
 *		own requests
 */
static AppLimiter *
app_of(ClusterState *cs, CloverApiKey key, double now)
{
	AppLimiter *victim = NULL;
	AppLimiter *a = NULL;
	int			i;

	for (i = 0; i < CLUSTER_MAX_APPS && a == NULL; i++)
	{
		AppLimiter *l = &cs->apps[i];

		if (l->host_key == key.host)
			a = l;
		else if ((l->host_key == 0 || app_in_flight(cs, l->host_key) == 0) &&
				 (victim == NULL || l->last_used < victim->last_used))
			victim = l;
	}
	if (a == NULL && victim != NULL)
	{
		a = victim;
		a->host_key = key.host;
		a->last_used = now;
		CloverAppLimiterInit(&a->rl, key.app_requests_per_second,
							 key.app_max_concurrent_requests, now);
	}
	if (a)
	{
		/* this request's own numbers (another database may differ) */
		CloverRateLimiter numbers;

		CloverAppLimiterInit(&numbers, key.app_requests_per_second,
							 key.app_max_concurrent_requests, now);
		a->rl.rate = numbers.rate;
		a->rl.burst = numbers.burst;
		a->rl.max_in_flight = numbers.max_in_flight;
		a->rl.in_flight = app_in_flight(cs, key.host);
	}
	return a;
}

/*
 * CloverApiTake
 *		May run send an API request with token key now?  It counts against
 *		its token's and its app's limits, both or neither; if it may, it is
 *		in flight until CloverApiDone (or the run's end).
 */
bool
CloverApiTake(CloverApiKey key, uint32 run, double now)
{
	ClusterState *cs = ClusterStateAttach();
	TokenLimiter *l;
	AppLimiter *a;
	Claim	   *c;
	bool		ok = false;

	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	l = limiter_now(cs, key.token, now);
	a = app_of(cs, key, now);
	if (l && a)
	{
		l->last_used = now;
		a->last_used = now;
		c = ClusterClaimAdd(cs, CLAIM_REQUEST, run);
		if (c && CloverRateLimiterTakeBoth(&l->rl, &a->rl, now))
		{
			c->key = key.token;
			c->host = key.host;
			ok = true;
		}
		else if (c)
			c->kind = CLAIM_FREE;
	}
	LWLockRelease(&cs->lock);
	return ok;
}

/*
 * CloverApiDone
 *		One API request of run with token key has ended
 */
void
CloverApiDone(CloverApiKey key, uint32 run)
{
	ClusterClaimRelease(CLAIM_REQUEST, run, key.token, 0, 0);
}

/*
 * CloverApiPause
 *		Clover answered 429: no session sends a request with token key
 *		before until
 */
void
CloverApiPause(CloverApiKey key, double until)
{
	ClusterState *cs = ClusterStateAttach();
	TokenLimiter *l;

	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	l = limiter_of(cs, key.token, ClusterNow());
	if (l)
		CloverRateLimiterPause(&l->rl, until);
	LWLockRelease(&cs->lock);
}

/*
 * CloverApiReadyAt
 *		When a request with token key may go next, as its token's and its
 *		app's buckets allow (now if it may now; a 429's pause included)
 */
double
CloverApiReadyAt(CloverApiKey key, double now)
{
	ClusterState *cs = ClusterStateAttach();
	TokenLimiter *l;
	AppLimiter *a;
	double		ready = now;

	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	l = limiter_now(cs, key.token, now);
	a = app_of(cs, key, now);
	if (l)
		ready = CloverRateLimiterReadyAt(&l->rl, now);
	if (a)
		ready = Max(ready, CloverRateLimiterReadyAt(&a->rl, now));
	LWLockRelease(&cs->lock);
	return ready;
}
