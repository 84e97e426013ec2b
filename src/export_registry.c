/*-------------------------------------------------------------------------
 *
 * export_registry.c
 *		  The exports every session of the cluster knows: reuse, sharing of
 *		  running exports, and their one retry
 *
 * An export is a remote job of seconds to minutes whose files Clover keeps
 * for a day, and only a few may run at once.  So an export made by any
 * scan of any session is registered here (cluster_state.h: the API host
 * and merchant, type, window, id, status and times; never a token or a
 * file URL), and a later scan whose window it contains uses it instead of
 * creating one:
 *
 * - Planning (CloverPlanWindows) cuts a scan's range around the usable
 *	 exports: covered parts are served by them, only the gaps get new
 *	 windows.  Usable means the same API host, merchant and type, created
 *	 at most reuse_exports ago, files not about to expire, and not failed.
 *	 An export whose window reached its statement's start holds everything
 *	 Clover had then: it also serves the time since, up to the querying
 *	 statement's start (that is what reuse_exports allows).
 * - A window that an export still running covers (in this session or
 *	 another) waits for it: only its owner, the run that created it, polls
 *	 Clover; the others read its status here.  If the owner goes away, the
 *	 first scan that needs the export adopts it and polls it.
 * - The one more export Clover's rules allow after a failure is made by
 *	 the owner, in the same entry, so every waiting scan waits for it
 *	 instead of making its own; a second failure fails them all.
 * - Using an export is authorized by each scan's own token: it GETs the
 *	 export itself before downloading (exports.c).
 *
 * The SQL functions clover_export_fdw_exports() and
 * clover_export_fdw_forget_exports() show and clear the registry.
 *
 * IDENTIFICATION
 *		  src/export_registry.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "cluster_state.h"
#include "clover_export_fdw.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

/*
 * CloverMerchantKey
 *		The key of an API host and merchant: exports, slots and lines are
 *		per key (never 0, which marks a free entry)
 */
uint64
CloverMerchantKey(const char *api_base, const char *merchant_id)
{
	uint64		h;

	h = hash_bytes_extended((const unsigned char *) api_base,
							strlen(api_base), 0);
	h = hash_bytes_extended((const unsigned char *) merchant_id,
							strlen(merchant_id), h);
	return h ? h : 1;
}

/*
 * RegistryHostKey
 *		The key of an API host: the app's limits and the exports in flight
 *		per host are per key (never 0)
 */
uint64
RegistryHostKey(const char *api_base)
{
	uint64		h;

	h = hash_bytes_extended((const unsigned char *) api_base,
							strlen(api_base), 0x686f7374ULL);
	return h ? h : 1;
}

/*
 * in_flight
 *		Is the entry an export at Clover that holds a slot?
 */
static bool
in_flight(const RegistryEntry *e)
{
	return e->owner_pid != 0 &&
		(e->status == EXPORT_CREATING || e->status == EXPORT_PENDING ||
		 e->status == EXPORT_IN_PROGRESS);
}

/*
 * RegistryInFlight
 *		How many exports of a merchant hold slots
 */
int
RegistryInFlight(ClusterState *cs, uint64 merchant_key)
{
	int			n = 0;
	int			i;

	for (i = 0; i < CLUSTER_MAX_EXPORTS; i++)
	{
		if (cs->exports[i].merchant_key == merchant_key &&
			in_flight(&cs->exports[i]))
			n++;
	}
	return n;
}

/*
 * RegistryHostInFlight
 *		How many exports of all merchants of an API host hold slots
 */
int
RegistryHostInFlight(ClusterState *cs, uint64 host_key)
{
	int			n = 0;
	int			i;

	for (i = 0; i < CLUSTER_MAX_EXPORTS; i++)
	{
		if (cs->exports[i].merchant_key != 0 &&
			cs->exports[i].host_key == host_key &&
			in_flight(&cs->exports[i]))
			n++;
	}
	return n;
}

/*
 * free_entry
 *		Make an entry free; references to it see a new generation
 */
static void
free_entry(ClusterState *cs, RegistryEntry *e)
{
	uint32		generation = e->generation + 1;

	memset(e, 0, sizeof(*e));
	e->generation = generation;
	cs->version++;
}

/*
 * RegistryNewEntry
 *		A free entry's index: an unused one, else the one created longest
 *		ago that no scan waits for (not in flight); -1 if every entry is in
 *		flight
 */
int
RegistryNewEntry(ClusterState *cs, TimestampTz now)
{
	int			oldest = -1;
	int			i;

	for (i = 0; i < CLUSTER_MAX_EXPORTS; i++)
	{
		RegistryEntry *e = &cs->exports[i];

		if (e->merchant_key == 0)
			return i;
		if (!in_flight(e) &&
			(oldest < 0 || e->created < cs->exports[oldest].created))
			oldest = i;
	}
	if (oldest >= 0)
		free_entry(cs, &cs->exports[oldest]);
	return oldest;
}

/*
 * RegistryForget
 *		Free the entries of these merchant keys that are not in flight;
 *		returns how many
 */
int64
RegistryForget(ClusterState *cs, const uint64 *keys, int nkeys)
{
	int64		n = 0;
	int			i,
				k;

	for (i = 0; i < CLUSTER_MAX_EXPORTS; i++)
	{
		RegistryEntry *e = &cs->exports[i];

		for (k = 0; k < nkeys; k++)
		{
			if (e->merchant_key != 0 && e->merchant_key == keys[k] &&
				!in_flight(e))
			{
				free_entry(cs, e);
				n++;
				break;
			}
		}
	}
	return n;
}

/*
 * RegistryOrphan
 *		A backend's run (or all its runs) stops polling its exports: those
 *		in flight lose their owner and their slot, and stay for another scan
 *		to adopt; one still being created is dropped, since nobody can tell
 *		whether Clover created it
 */
void
RegistryOrphan(ClusterState *cs, int pid, bool all_runs, uint32 run)
{
	int			i;

	for (i = 0; i < CLUSTER_MAX_EXPORTS; i++)
	{
		RegistryEntry *e = &cs->exports[i];

		if (e->merchant_key == 0 || e->owner_pid != pid ||
			!(all_runs || e->owner_run == run))
			continue;
		if (e->status == EXPORT_CREATING)
			free_entry(cs, e);
		else
		{
			e->owner_pid = 0;
			e->owner_run = 0;
		}
	}
}

/*
 * usable
 *		May a scan of opts in the statement that started at now use entry
 *		e?  Any status but failed, files not about to expire, and created
 *		at most reuse_exports ago, or by this very statement (its scans
 *		share their exports whatever reuse_exports says).
 */
static bool
usable(const RegistryEntry *e, uint64 key, const CloverFdwOptions *opts,
	   TimestampTz now)
{
	int64		now_ms = CloverTimestampToUnixMs(now);
	bool		this_statement = (e->creator_pid == MyProcPid &&
								  e->creator_stmt == now);

	return e->merchant_key == key &&
		e->export_type == (uint8) opts->export_type &&
		e->status != EXPORT_FREE && e->status != EXPORT_FAILED &&
		(this_statement ||
		 (opts->reuse_exports_ms > 0 &&
		  e->created >= now - (int64) opts->reuse_exports_ms * 1000)) &&
		(e->available_until == 0 ||
		 e->available_until - CLOVER_EXPIRY_MARGIN_MS > now_ms);
}

/*
 * span_of
 *		The part of createdTime an entry serves for a statement that started
 *		at now: its window, up to now if it reached its own statement's start
 */
static CloverWindow
span_of(const RegistryEntry *e, TimestampTz now)
{
	CloverWindow w;

	w.start_ms = e->start_ms;
	w.end_ms = e->end_ms;
	if (!CloverUnixMsToTimestamp(e->start_ms, &w.lo))
		w.lo = DT_NOBEGIN;
	if (!CloverUnixMsToTimestamp(e->end_ms, &w.hi))
		w.hi = DT_NOBEGIN;
	if (e->to_now)
		w.hi = Max(w.hi, now);
	return w;
}

/*
 * CloverPlanWindows
 *		The windows of a scan's range: served by the registry's usable
 *		exports where they cover it, new ones in the gaps (time_range.c,
 *		CloverSplitRangeAround); palloc'd, *nwindows of them
 *
 * now is the statement's start.  With reuse_exports 0 only the
 * statement's own exports are used.
 */
CloverWindow *
CloverPlanWindows(const CloverFdwOptions *opts, const CloverRange *range,
				  bool by_days, TimestampTz now, int *nwindows)
{
	ClusterState *cs = ClusterStateAttach();
	CloverWindow *spans = palloc(sizeof(CloverWindow) * CLUSTER_MAX_EXPORTS);
	uint64		key = CloverMerchantKey(opts->api_base, opts->merchant_id);
	int			nspans = 0;
	int			i;

	LWLockAcquire(&cs->lock, LW_SHARED);
	for (i = 0; i < CLUSTER_MAX_EXPORTS; i++)
	{
		if (usable(&cs->exports[i], key, opts, now))
			spans[nspans++] = span_of(&cs->exports[i], now);
	}
	LWLockRelease(&cs->lock);

	return CloverSplitRangeAround(range, by_days, now, spans, nspans,
								  nwindows);
}

/*
 * RegistryFindCover
 *		The usable entry that covers window, or -1: done ones first, then
 *		the newest (the caller holds the lock)
 */
int
RegistryFindCover(ClusterState *cs, const CloverFdwOptions *opts,
		   const CloverWindow *window, TimestampTz now)
{
	uint64		key = CloverMerchantKey(opts->api_base, opts->merchant_id);
	int			best = -1;
	int			i;

	for (i = 0; i < CLUSTER_MAX_EXPORTS; i++)
	{
		RegistryEntry *e = &cs->exports[i];
		CloverWindow span;

		if (!usable(e, key, opts, now))
			continue;
		span = span_of(e, now);
		if (span.lo > window->lo || span.hi < window->hi)
			continue;
		if (best < 0 ||
			(e->status == EXPORT_DONE) > (cs->exports[best].status == EXPORT_DONE) ||
			((e->status == EXPORT_DONE) == (cs->exports[best].status == EXPORT_DONE) &&
			 e->created > cs->exports[best].created))
			best = i;
	}
	return best;
}

/*
 * CloverRegistryFind
 *		Is there a usable export whose window contains window?  If so, ref
 *		names it.
 */
bool
CloverRegistryFind(const CloverFdwOptions *opts, const CloverWindow *window,
				   TimestampTz now, CloverSharedRef *ref)
{
	ClusterState *cs = ClusterStateAttach();
	int			i;

	LWLockAcquire(&cs->lock, LW_SHARED);
	i = RegistryFindCover(cs, opts, window, now);
	if (i >= 0)
	{
		ref->index = i;
		ref->generation = cs->exports[i].generation;
	}
	LWLockRelease(&cs->lock);
	return i >= 0;
}

/*
 * entry_of
 *		The entry ref names, or NULL if it has been freed since (under the
 *		lock)
 */
static RegistryEntry *
entry_of(ClusterState *cs, CloverSharedRef ref)
{
	RegistryEntry *e;

	if (ref.index < 0 || ref.index >= CLUSTER_MAX_EXPORTS)
		return NULL;
	e = &cs->exports[ref.index];
	if (e->generation != ref.generation || e->merchant_key == 0)
		return NULL;
	return e;
}

/*
 * CloverRegistryRead
 *		What the registry knows of the export ref names now; false if it is
 *		gone (forgotten, or dropped after its files went)
 */
bool
CloverRegistryRead(CloverSharedRef ref, CloverSharedExport *out)
{
	ClusterState *cs = ClusterStateAttach();
	RegistryEntry *e;

	memset(out, 0, sizeof(*out));
	LWLockAcquire(&cs->lock, LW_SHARED);
	e = entry_of(cs, ref);
	if (e)
	{
		out->in_flight = in_flight(e);
		out->orphaned = (e->owner_pid == 0);
		out->mine = (e->owner_pid == MyProcPid);
		out->done = (e->status == EXPORT_DONE);
		out->failed = (e->status == EXPORT_FAILED);
		out->retried = e->retried;
		out->percent = e->percent;
		out->start_ms = e->start_ms;
		out->end_ms = e->end_ms;
		strlcpy(out->export_id, e->export_id, sizeof(out->export_id));
	}
	LWLockRelease(&cs->lock);
	return e != NULL;
}

/*
 * CloverRegistryUse
 *		A scan of run is served by (or waits for) the export ref names:
 *		counted in clover_export_fdw_exports()'s scans until the run ends or
 *		CloverRegistryUnuse (if claims run out, it is just not counted)
 */
void
CloverRegistryUse(CloverSharedRef ref, uint32 run)
{
	ClusterState *cs = ClusterStateAttach();
	Claim	   *c;

	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	if (entry_of(cs, ref) && (c = ClusterClaimAdd(cs, CLAIM_USE, run)) != NULL)
	{
		c->entry = ref.index;
		c->generation = ref.generation;
	}
	LWLockRelease(&cs->lock);
}

/*
 * CloverRegistryUnuse
 *		The scan of run no longer uses the export ref names
 */
void
CloverRegistryUnuse(CloverSharedRef ref, uint32 run)
{
	ClusterClaimRelease(CLAIM_USE, run, 0, ref.index, ref.generation);
}

/*
 * CloverRegistryAdopt
 *		Become the owner of an export in flight that nobody polls any more;
 *		true if run owns it now
 */
bool
CloverRegistryAdopt(CloverSharedRef ref, uint32 run)
{
	ClusterState *cs = ClusterStateAttach();
	RegistryEntry *e;
	bool		mine = false;

	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	e = entry_of(cs, ref);
	if (e && e->owner_pid == 0 && e->export_id[0] != '\0' &&
		(e->status == EXPORT_PENDING || e->status == EXPORT_IN_PROGRESS))
	{
		e->owner_pid = MyProcPid;
		e->owner_run = run;
		mine = true;
	}
	LWLockRelease(&cs->lock);
	return mine;
}

/*
 * status_of
 *		Clover's status word as an ExportStatus (anything undocumented
 *		counts as failed)
 */
static ExportStatus
status_of(const char *status)
{
	if (strcmp(status, "PENDING") == 0)
		return EXPORT_PENDING;
	if (strcmp(status, "IN_PROGRESS") == 0)
		return EXPORT_IN_PROGRESS;
	if (strcmp(status, "DONE") == 0)
		return EXPORT_DONE;
	return EXPORT_FAILED;
}

/*
 * CloverRegistryReport
 *		The owner of an export says what Clover answered about it: its id,
 *		status, percentComplete and availableUntil (epoch ms, 0 if absent)
 *
 * A finished export (DONE or failed) frees its merchant's slot.  A failed
 * one that the owner creates again (retrying) stays in flight, so that the
 * scans waiting for it wait for the new one.  Nothing happens if the entry
 * has gone or another run owns it.
 */
void
CloverRegistryReport(CloverSharedRef ref, uint32 run, const char *export_id,
					 const char *status, int percent, int64 available_until,
					 bool retrying)
{
	ClusterState *cs = ClusterStateAttach();
	RegistryEntry *e;

	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	e = entry_of(cs, ref);
	if (e && e->owner_pid == MyProcPid && e->owner_run == run)
	{
		ExportStatus st = status_of(status);

		if (strlen(export_id) > CLUSTER_ID_MAX)
			free_entry(cs, e);	/* not Clover's shape: not shared */
		else if (st == EXPORT_FAILED && retrying)
		{
			e->status = EXPORT_CREATING;
			e->retried = true;
			e->export_id[0] = '\0';
			e->percent = -1;
		}
		else
		{
			if (st != e->status || strcmp(e->export_id, export_id) != 0 ||
				available_until != e->available_until)
				cs->version++;
			e->status = st;
			strlcpy(e->export_id, export_id, sizeof(e->export_id));
			e->percent = percent;
			e->available_until = available_until;
		}
		ClusterStateSave(cs);
	}
	LWLockRelease(&cs->lock);
	CloverClusterReportSaveFailure();
}

/*
 * CloverRegistryDrop
 *		Forget an export whose files have gone at Clover (or that the run
 *		could not create): later scans export its window again
 */
void
CloverRegistryDrop(CloverSharedRef ref)
{
	ClusterState *cs = ClusterStateAttach();
	RegistryEntry *e;

	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	e = entry_of(cs, ref);
	if (e)
		free_entry(cs, e);
	ClusterStateSave(cs);
	LWLockRelease(&cs->lock);
	CloverClusterReportSaveFailure();
}

/*
 * RegistryAddCreating
 *		Register the export run is about to create for window (the caller,
 *		export_slots.c, holds the lock and has taken the slot); -1 if every
 *		entry is in flight
 */
int
RegistryAddCreating(ClusterState *cs, const CloverFdwOptions *opts,
					uint32 run, const CloverWindow *window, bool to_now,
					TimestampTz stmt_start, TimestampTz now)
{
	int			i = RegistryNewEntry(cs, now);
	RegistryEntry *e;

	if (i < 0)
		return -1;
	e = &cs->exports[i];
	e->merchant_key = CloverMerchantKey(opts->api_base, opts->merchant_id);
	e->host_key = RegistryHostKey(opts->api_base);
	e->status = EXPORT_CREATING;
	e->export_type = (uint8) opts->export_type;
	e->to_now = to_now;
	e->retried = false;
	e->percent = -1;
	strlcpy(e->merchant_id, opts->merchant_id, sizeof(e->merchant_id));
	e->export_id[0] = '\0';
	e->start_ms = window->start_ms;
	e->end_ms = window->end_ms;
	e->created = now;
	e->available_until = 0;
	e->owner_pid = MyProcPid;
	e->owner_run = run;
	e->creator_pid = MyProcPid;
	e->creator_stmt = stmt_start;
	return i;
}
