/*-------------------------------------------------------------------------
 *
 * export_share.c
 *		  A job's part in the exports the whole cluster shares: taking a
 *		  slot in line, following another scan's export, reporting its own
 *
 * Each job of a run (export_run.h) needs one export for its window.  Where
 * that export comes from is decided here, against the cluster's registry
 * (export_registry.c) and slots (export_slots.c):
 *
 * - An export that covers the window (made by any scan of any session,
 *	 recent enough: reuse_exports) serves it.  While it still runs at
 *	 Clover the job waits (SHARED) and reads its status from the registry;
 *	 its owner is the only one that polls Clover.  Once it is DONE, the job
 *	 GETs it with its own token, which authorizes the reuse and gives it
 *	 the file URLs (never kept in the registry).  If the owner has gone
 *	 (its scan ended, its backend died), the job adopts the export and
 *	 polls it itself.
 * - Else the job waits in its merchant's line for a slot
 *	 (max_concurrent_exports across the cluster), and on its turn creates
 *	 the export, registered from then on so that other scans wait for it
 *	 instead of creating their own.  As owner it reports every answer
 *	 about it to the registry, and makes the one more export the rules
 *	 allow after a failure in the same entry, so that the scans waiting
 *	 for it wait for that one too.
 * - A borrowed export refused to this job's token (403, 404) or whose files
 *	 went makes the job create its own (no_reuse).
 *
 * IDENTIFICATION
 *		  src/export_share.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "clover_export_fdw.h"
#include "export_run.h"
#include "utils/timestamp.h"

/*
 * end_line_wait
 *		The job no longer waits for a slot: count the wait
 */
static void
end_line_wait(CloverExportRun *run, CloverJob *job, double now)
{
	if (!job->in_line)
		return;
	job->in_line = false;
	run->stats.slot_wait_secs += now - job->line_since;
}

/*
 * use_entry
 *		The job is served by (or creates) the export ref names
 */
static void
use_entry(CloverExportRun *run, CloverJob *job, CloverSharedRef ref)
{
	job->has_shared = true;
	job->shared = ref;
	CloverRegistryUse(ref, run->cluster_run);
}

/*
 * clover_job_unshare
 *		The job stops using its registered export: it will have one of its
 *		own (no_reuse), and drop_entry also removes the export from the
 *		registry (its files have gone at Clover)
 */
void
clover_job_unshare(CloverExportRun *run, CloverJob *job, bool drop_entry)
{
	if (!job->has_shared)
		return;
	if (drop_entry)
		CloverRegistryDrop(job->shared);
	else
		CloverRegistryUnuse(job->shared, run->cluster_run);
	job->has_shared = false;
	job->owner = false;
	job->holds_slot = false;
	job->borrowed = false;
	job->from_registry = false;
	job->no_reuse = true;
}

/*
 * clover_job_finished
 *		Every file of the job's export has been handed out
 */
void
clover_job_finished(CloverExportRun *run, CloverJob *job)
{
	if (job->has_shared)
		CloverRegistryUnuse(job->shared, run->cluster_run);
	job->has_shared = false;
}

/*
 * clover_job_acquire
 *		May job, WAITING and due, create its export now?
 *
 * True: the job holds a slot (its export is registered as being created):
 * POST now.  False: it waits in line, or an export that covers its window
 * serves it now (the job is SHARED).  A wait in line longer than
 * busy_timeout fails, as Clover's own busy answers do.
 */
bool
clover_job_acquire(CloverExportRun *run, CloverJob *job, double now)
{
	CloverSharedRef ref;
	CloverSharedExport sx;
	int			ahead;
	bool		host_full;

	if (job->holds_slot)
		return true;
	switch (CloverSlotTake(run->opts, run->cluster_run, job->window,
						   job->window->hi >= run->stmt_start, !job->no_reuse,
						   run->stmt_start, &ref, &ahead, &host_full))
	{
		case CLOVER_SLOT_TAKEN:
			end_line_wait(run, job, now);
			use_entry(run, job, ref);
			job->owner = true;
			job->holds_slot = true;
			return true;
		case CLOVER_SLOT_COVERED:
			end_line_wait(run, job, now);
			use_entry(run, job, ref);
			if (CloverRegistryRead(ref, &sx) && sx.done)
				run->stats.exports_reused++;
			else
				run->stats.exports_shared++;
			job->state = JOB_SHARED;
			clover_job_follow(run, job, now);
			return false;
		case CLOVER_SLOT_WAIT:
			if (!job->in_line)
			{
				job->in_line = true;
				job->line_since = now;
				run->stats.slot_waits++;
			}
			job->line_ahead = ahead;
			job->line_host_full = host_full;
			if (now - job->line_since > run->opts->busy_timeout_ms / 1000.0)
			{
				CloverExportRef ref = clover_job_ref(run, job, true);

				CloverReportNoSlot(&ref, ahead, host_full,
								   now - job->line_since);
			}
			return false;
	}
	return false;
}

/*
 * start_polling
 *		The job GETs its export (id) from Clover from now on: its own
 *		poll schedule starts
 */
static void
start_polling(CloverJob *job, const char *id, double now)
{
	job->export_id = pstrdup(id);
	job->state = JOB_RUNNING;
	job->created_at = now;
	job->due_at = now;
	CloverPollHistoryInit(&job->polls, now);
}

/*
 * clover_job_follow
 *		Look at the export a SHARED job waits for
 *
 * Gone from the registry: the job is WAITING again.  DONE: GET it with
 * this run's token (borrowed).  Running without an owner: adopt it.
 * Failed after its one retry: the query fails; failed without one: the
 * job makes it, as its own export.
 */
void
clover_job_follow(CloverExportRun *run, CloverJob *job, double now)
{
	CloverSharedExport sx;

	if (!CloverRegistryRead(job->shared, &sx))
	{
		job->has_shared = false;
		job->state = JOB_WAITING;
		job->due_at = now;
		return;
	}
	job->percent = sx.percent;
	if (sx.failed)
	{
		if (sx.retried)
		{
			CloverExportRef ref = clover_job_ref(run, job, false);

			ref.export_id = pstrdup(sx.export_id);
			CloverReportBadStatus(&ref, "FAILED", false);
		}
		clover_job_unshare(run, job, false);
		job->state = JOB_WAITING;
		job->due_at = now;
		return;
	}
	job->registry_start_ms = sx.start_ms;
	job->registry_end_ms = sx.end_ms;
	if (sx.done)
	{
		job->borrowed = true;
		job->from_registry = true;
		start_polling(job, sx.export_id, now);
	}
	else if (sx.orphaned && sx.export_id[0] != '\0' &&
			 CloverRegistryAdopt(job->shared, run->cluster_run))
	{
		job->owner = true;
		job->from_registry = true;
		start_polling(job, sx.export_id, now);
		elog(DEBUG1, "clover_export_fdw: adopted export %s, whose scan has ended",
			 job->export_id);
	}
}

/*
 * clover_job_report
 *		An owner tells the registry what Clover said about its export;
 *		retrying: it failed, and the owner creates it again in the same
 *		entry (keeping the slot)
 */
void
clover_job_report(CloverExportRun *run, CloverJob *job,
				  const CloverExportInfo *info, bool retrying)
{
	if (!job->owner || !job->has_shared)
		return;
	CloverRegistryReport(job->shared, run->cluster_run, info->id, info->status,
						 info->percent, info->available_until, retrying);
	job->holds_slot = retrying;
}

/*
 * clover_job_export_matches
 *		Is the export Clover describes the one the registry promised, its
 *		type and window, with files that stay long enough?  (A registry that
 *		outlived Clover's exports, for example after a restore, must never
 *		serve another export's rows.)  If not, the job creates its own.
 */
bool
clover_job_export_matches(CloverExportRun *run, CloverJob *job,
						  const CloverExportInfo *info)
{
	int64		now_ms;

	if (!job->from_registry)
		return true;
	if ((info->type != NULL &&
		 strcmp(info->type, CloverExportTypeName(run->opts->export_type)) != 0) ||
		(info->has_window &&
		 (info->start_ms != job->registry_start_ms ||
		  info->end_ms != job->registry_end_ms)))
	{
		elog(DEBUG1, "clover_export_fdw: export %s is not the registry's (type %s, window " INT64_FORMAT " to " INT64_FORMAT "); exporting again",
			 info->id, info->type ? info->type : "?",
			 info->start_ms, info->end_ms);
		clover_job_unshare(run, job, true);
		return false;
	}
	now_ms = CloverTimestampToUnixMs(GetCurrentTimestamp());
	if (info->available_until != 0 &&
		info->available_until - CLOVER_EXPIRY_MARGIN_MS <= now_ms)
	{
		elog(DEBUG1, "clover_export_fdw: export %s expires too soon to reuse; exporting again",
			 info->id);
		clover_job_unshare(run, job, false);
		return false;
	}
	return true;
}
