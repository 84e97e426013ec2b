/*-------------------------------------------------------------------------
 *
 * export_progress.c
 *		  Progress NOTICEs of a run of exports
 *
 * With clover_export_fdw.progress on, a run says where the scan is every
 * few seconds, when a window's rows have all been returned, and once at
 * the end a summary.  exports.c calls these from its event loop and its
 * interface.
 *
 * IDENTIFICATION
 *		  src/export_progress.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "clover_export_fdw.h"
#include "export_run.h"

/* progress NOTICEs at most this often */
#define PROGRESS_INTERVAL_SECS	3.0

/*
 * rows_so_far
 *		Rows the scan has returned from this run's files
 */
static int64
rows_so_far(CloverExportRun *run)
{
	return run->rows_returned ? *run->rows_returned - run->rows_before : 0;
}

/*
 * report_shared_wait
 *		The NOTICE of a window that waits for another scan's export
 */
static void
report_shared_wait(CloverExportRun *run, CloverJob *job)
{
	CloverSharedExport sx;

	if (!CloverRegistryRead(job->shared, &sx))
		return;
	ereport(NOTICE,
			(errmsg("clover_export_fdw: window %d of %d (%s): waiting for another scan's export %s, %d%% complete; rows so far: %lld",
					run->cur + 1, run->njobs, CloverWindowText(job->window),
					sx.export_id[0] ? sx.export_id : "(being created)",
					Max(sx.percent, 0), (long long) rows_so_far(run))));
}

/*
 * clover_report_progress
 *		With clover_export_fdw.progress on, say where the scan is, at most
 *		every few seconds (this section is the one place that reads the
 *		setting)
 *
 * This NOTICE, clover_report_window_done's and clover_report_summary's are
 * worded for tests to read: each names the window or the table, and ends
 * with the rows returned so far.  None ever shows a token or a file URL.
 */
void
clover_report_progress(CloverExportRun *run, double now)
{
	CloverJob  *job;
	int			done_files = 0;
	int			f;

	if (!clover_progress || run->cur >= run->njobs)
		return;
	if (run->last_notice_at == 0)
	{
		/* the first report only once a scan has taken a while */
		run->last_notice_at = now;
		return;
	}
	if (now - run->last_notice_at < PROGRESS_INTERVAL_SECS)
		return;
	run->last_notice_at = now;

	job = &run->jobs[run->cur];
	for (f = 0; f < job->nfiles; f++)
	{
		if (job->files[f].state >= DOWNLOAD_READY)
			done_files++;
	}
	if (job->state == JOB_WAITING && job->in_line)
		ereport(NOTICE,
				(errmsg("clover_export_fdw: window %d of %d (%s): waiting for an export slot (%s); rows so far: %lld",
						run->cur + 1, run->njobs, CloverWindowText(job->window),
						job->line_ahead == 0 && job->line_host_full ?
						psprintf("all %d export slots of %s are taken",
								 run->opts->max_exports_per_host,
								 run->opts->api_base) :
						job->line_ahead == 0 ?
						psprintf("all %d of merchant %s are taken",
								 run->opts->max_concurrent_exports,
								 run->opts->merchant_id) :
						psprintf("%d ahead in line", job->line_ahead),
						(long long) rows_so_far(run))));
	else if (job->state == JOB_SHARED)
		report_shared_wait(run, job);
	else if (job->state == JOB_WAITING && job->due_at > now)
		ereport(NOTICE,
				(errmsg("clover_export_fdw: window %d of %d (%s): waiting %s for Clover (%s); rows so far: %lld",
						run->cur + 1, run->njobs, CloverWindowText(job->window),
						CloverFormatDuration(job->due_at - now),
						job->closed_since ? "service closed" :
						job->busy_since ? "service busy" : "retrying",
						(long long) rows_so_far(run))));
	else if (job->state == JOB_DONE)
		ereport(NOTICE,
				(errmsg("clover_export_fdw: window %d of %d (%s): export %s DONE, %d of %d files downloaded; rows so far: %lld",
						run->cur + 1, run->njobs, CloverWindowText(job->window),
						job->export_id, done_files, job->nfiles,
						(long long) rows_so_far(run))));
	else
		ereport(NOTICE,
				(errmsg("clover_export_fdw: window %d of %d (%s): export %s %s, %d%% complete; rows so far: %lld",
						run->cur + 1, run->njobs, CloverWindowText(job->window),
						job->export_id ? job->export_id : "(being created)",
						job->status ? job->status : "requested",
						Max(job->percent, 0), (long long) rows_so_far(run))));
}

/*
 * clover_report_window_done
 *		With clover_export_fdw.progress on, say that every row of job's
 *		window has been returned: one NOTICE per window, however fast
 */
void
clover_report_window_done(CloverExportRun *run, CloverJob *job)
{
	if (!clover_progress)
		return;
	/* the next periodic report comes an interval after this one */
	run->last_notice_at = mono_now();
	ereport(NOTICE,
			(errmsg("clover_export_fdw: window %d of %d (%s): done (export %s, files: %d); rows so far: %lld",
					job->index + 1, run->njobs, CloverWindowText(job->window),
					job->export_id ? job->export_id : "none", job->nfiles,
					(long long) rows_so_far(run))));
}

/*
 * clover_report_summary
 *		With clover_export_fdw.progress on, sum the run up, once: when its
 *		last row has been returned ("done"), or when the scan ends or
 *		restarts before that, e.g. under a LIMIT ("stopped")
 */
void
clover_report_summary(CloverExportRun *run)
{
	if (run->summed_up)
		return;
	run->summed_up = true;
	if (!clover_progress)
		return;
	ereport(NOTICE,
			(errmsg("clover_export_fdw: scan of %s %s: rows: %lld, windows: %d of %d, exports created: %lld, exports reused: %lld, files: %lld, time: %.3f s",
					run->opts->table_name,
					run->cur >= run->njobs ? "done" : "stopped",
					(long long) rows_so_far(run), run->cur, run->njobs,
					(long long) run->stats.exports_created,
					(long long) run->stats.exports_reused,
					(long long) run->stats.files_downloaded,
					mono_now() - run->started_at)));
}
