/*-------------------------------------------------------------------------
 *
 * exports.c
 *		  Run a scan's Clover exports: jobs, scheduling and Clover's rules
 *
 * A scan hands this file its export windows and asks for downloaded files,
 * in window order, one at a time (CloverRunNextFile).  Behind that call the
 * run's set of HTTP requests (http.c) runs everything at once: the POST
 * that creates the next window's export, status polls of running exports,
 * and up to max_parallel_downloads file downloads.  The executor converts
 * file k while files k+1.. arrive and the next export is processed at
 * Clover (CloverRunPump lets transfers advance between rows).
 *
 * Clover's rules, and how they are kept:
 *
 * - At most max_concurrent_exports exports run at Clover (default 1, as
 *	 Clover asks) for one API host and merchant, counting every scan of
 *	 every session of the cluster: a scan takes a slot in line before it
 *	 creates an export, or uses an export that another scan made or is
 *	 making for its window (export_share.c).  A run keeps up to that many
 *	 of its next windows exporting while the current one streams, but
 *	 until the consumer has finished a whole file nothing is prefetched (a
 *	 LIMIT 10 creates one export and downloads at most two files), unless
 *	 the plan says the query wants every row (no LIMIT, cursor or EXISTS:
 *	 the planner's tuple_fraction is 0).  A
 *	 sorted scan reads whole windows (whole_windows): its files are all
 *	 downloaded at once, and it says itself when to prefetch
 *	 (CloverRunAllowPrefetch).
 * - 503 answers mean "outside service hours" or "busy": Clover's words
 *	 decide, the configured hours only when the words say neither.  Closed:
 *	 wait for the opening if wait_for_service allows, else fail with the
 *	 hours and the next opening.  Busy: exponential backoff with jitter, per
 *	 export, until busy_timeout is spent.  A poll answered "closed" is
 *	 polled again on the polling schedule.
 * - 429: wait at least Retry-After (calling early lengthens the penalty),
 *	 else back off from 1 s, in every session using the token; API
 *	 requests stay under one token bucket per token, shared by all
 *	 sessions, well below Clover's 16 requests/s and 5 at once
 *	 (export_slots.c, pacing.c).
 * - Polls follow percentComplete's progress to the predicted DONE, from
 *	 250 ms to at most 10 s apart (pacing.c).  An export still PENDING or
 *	 IN_PROGRESS after export_timeout fails the query.
 * - Transient failures (5xx, refused/reset/dropped connections, stalls of
 *	 request_timeout, truncated bodies) are retried with backoff up to
 *	 max_retries for polls and downloads; a download's 429 too, after its
 *	 Retry-After.  A POST is retried only when it cannot have created an
 *	 export (nothing was sent, or Clover refused it with 503/429); when it
 *	 found no server at all (refused, unknown host) before the API host
 *	 ever answered, only for about a second: base_url, region or the
 *	 network is wrong, and waiting will not fix that.
 * - Files deleted at Clover (404/403/410): the export is created again once
 *	 if nothing of that window was returned yet; an export ending in an
 *	 unknown status likewise gets one more try.
 * - A statement creates at most max_exports_per_statement exports per
 *	 server; each POST is counted first (statement_exports.c).  A window
 *	 that an export already made by the statement covers is served from
 *	 that export's files (downloaded again), not exported again.
 *
 * Secrets: the token travels only in the Authorization header of requests
 * to the API host, which never follow redirects; file requests carry no
 * token.  Every message about Clover is worded by clover_errors.c, which
 * redacts it.
 *
 * This file runs the jobs: it schedules and starts the requests and hands
 * out the files.  Acting on Clover's answers, and so most of the rules
 * above, is export_answers.c's; the progress NOTICEs are
 * export_progress.c's.  The three share the run's structures in
 * export_run.h.
 *
 * Resources: everything lives in the run's memory context; http.c frees
 * its libcurl objects when that context goes, and so does this file's
 * reset callback with the run's place in the backend's list of runs.
 *
 * IDENTIFICATION
 *		  src/exports.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "clover_export_fdw.h"
#include "export_run.h"
#include "lib/ilist.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* a request held back only by the rate limiter is looked at this soon */
#define RATE_LIMITED_RECHECK_SECS 0.02

/* a job in line for a slot, or waiting for another's export, this soon */
#define SHARED_RECHECK_SECS		0.05

/* another run of the backend with requests in flight is looked at this soon */
#define SIBLING_ANSWER_SECS		0.02

/* longest sleep when no timer is due sooner */
#define MAX_IDLE_WAIT_SECS		1.0

/* largest API answer and largest export file accepted */
#define MAX_API_BODY			(16 * 1024 * 1024)
#define MAX_FILE_BODY			((size_t) MaxAllocSize - 1)

/* CloverHttpRequestSpec.tag of API requests; a download's is its file_no */
#define TAG_CREATE				(-1)
#define TAG_POLL				(-2)

/*
 * Every run of this backend.  A run that waits keeps its siblings' requests
 * moving: another table of the statement may hold the slot it waits for,
 * or make the export it waits for, and only that run sees it finish.
 */
static dlist_head live_runs = DLIST_STATIC_INIT(live_runs);

static bool run_step(CloverExportRun *run);

/* ----------------------------------------------------------------
 *		Small helpers
 * ----------------------------------------------------------------
 */

/*
 * run_reset_callback
 *		Take a run out of the backend's list, and give back what it holds
 *		in the cluster (places in line, requests in flight, the exports it
 *		polls), when its memory context goes: on success, error or cancel
 *		alike (http.c frees its requests)
 */
static void
run_reset_callback(void *arg)
{
	CloverExportRun *run = (CloverExportRun *) arg;

	dlist_delete(&run->live_node);
	CloverClusterReleaseRun(run->cluster_run);
}

/* ----------------------------------------------------------------
 *		Starting requests
 * ----------------------------------------------------------------
 */

/*
 * start_request
 *		Start a request of job (tag: TAG_CREATE, TAG_POLL or a file_no)
 */
static CloverHttpRequest *
start_request(CloverExportRun *run, CloverJob *job, int tag, const char *url,
			  const char *post_body)
{
	CloverHttpRequestSpec spec = {0};

	spec.url = url;
	spec.post_body = post_body;
	spec.connect_timeout_ms = run->opts->connect_timeout_ms;
	spec.stall_timeout_ms = run->opts->request_timeout_ms;
	spec.ca_file = run->opts->ca_file;
	spec.owner = job;
	spec.tag = tag;
	if (tag >= 0)
	{
		/* a pre-signed file URL: no token; files are large */
		spec.max_body = MAX_FILE_BODY;
		spec.large_body = true;
	}
	else
	{
		spec.bearer_token = run->token;
		spec.max_body = MAX_API_BODY;
		job->sent_at = mono_now();
	}
	return CloverHttpStart(run->http, &spec);
}

static void
start_create(CloverExportRun *run, CloverJob *job)
{
	char	   *body;

	/* the statement's limit: an error before the request, not after */
	CloverStatementCountExport(run->statement, run->opts, job->window);
	body = CloverBuildExportRequest(run->opts->export_type,
									job->window->start_ms,
									job->window->end_ms);
	elog(DEBUG1, "clover_export_fdw: creating %s export for window %d of %d (%s)",
		 CloverExportTypeName(run->opts->export_type), job->index + 1,
		 run->njobs, CloverWindowText(job->window));
	job->request = start_request(run, job, TAG_CREATE, run->exports_url, body);
	pfree(body);
	job->state = JOB_CREATING;
}

static void
start_poll(CloverExportRun *run, CloverJob *job)
{
	char	   *url = psprintf("%s/%s", run->exports_url, job->export_id);

	job->request = start_request(run, job, TAG_POLL, url, NULL);
	pfree(url);
	run->stats.polls++;
}

static void
start_file(CloverExportRun *run, CloverJob *job, int file_no)
{
	elog(DEBUG2, "clover_export_fdw: downloading file %d of %d of export %s",
		 file_no + 1, job->nfiles, job->export_id);
	job->files[file_no].request = start_request(run, job, file_no,
												job->urls[file_no], NULL);
	job->files[file_no].state = DOWNLOAD_INFLIGHT;
}

/* ----------------------------------------------------------------
 *		Scheduling
 * ----------------------------------------------------------------
 */

/*
 * next_creatable
 *		The job whose export this run may ask for next (timers and the
 *		cluster's slots aside), or NULL
 *
 * Exports are asked for in window order, as CloverMayCreateExport allows:
 * the run keeps at most max_concurrent_exports of its own in flight, and
 * only the current window's until the consumer wants more.  The cluster's
 * line for slots (export_share.c) then shares the merchant's
 * max_concurrent_exports among all runs of all sessions.
 */
static CloverJob *
next_creatable(CloverExportRun *run)
{
	int			running = 0;
	int			j;

	for (j = run->cur; j < run->njobs; j++)
	{
		CloverJob  *job = &run->jobs[j];

		if (job->owner &&
			(job->state == JOB_CREATING || job->state == JOB_RUNNING ||
			 job->holds_slot))
			running++;
	}
	for (j = run->cur; j < run->njobs; j++)
	{
		if (run->jobs[j].state != JOB_WAITING)
			continue;
		if (!CloverMayCreateExport(j - run->cur, running,
								   run->opts->max_concurrent_exports,
								   run->prefetch_unlocked) &&
			!run->jobs[j].holds_slot)
			return NULL;
		return &run->jobs[j];
	}
	return NULL;
}

/*
 * api_take
 *		May the run send an API request now?  (The token's limiter, shared
 *		by all sessions.)
 */
static bool
api_take(CloverExportRun *run, double now)
{
	return CloverApiTake(run->token_key, run->cluster_run, now);
}

/*
 * schedule
 *		Start every request that is due and allowed: exports to create
 *		(Clover's concurrency rule and the rate limiter permitting), polls
 *		of running exports (the rate limiter permitting), and downloads in
 *		file order, a bounded number outstanding
 */
static void
schedule(CloverExportRun *run, double now)
{
	const CloverFdwOptions *opts = run->opts;
	CloverJob  *job;
	int			limit;
	int			j;

	/* exports: a slot in the cluster's line, or another's export */
	while ((job = next_creatable(run)) != NULL && now >= job->due_at)
	{
		if (!clover_job_acquire(run, job, now))
		{
			if (job->state == JOB_WAITING)
				break;			/* in line */
			continue;			/* another export serves it */
		}
		if (!api_take(run, now))
			break;
		start_create(run, job);
	}

	/* exports of other scans, and polls of running exports */
	for (j = run->cur; j < run->njobs; j++)
	{
		CloverJob  *job = &run->jobs[j];

		if (job->state == JOB_SHARED)
			clover_job_follow(run, job, now);
		if (job->state == JOB_RUNNING && job->request == NULL &&
			now >= job->due_at && api_take(run, now))
			start_poll(run, job);
	}

	/*
	 * downloads: before prefetching is unlocked, one at a time, unless the
	 * consumer reads whole windows (only the current one has an export then)
	 */
	limit = (run->prefetch_unlocked || run->whole_windows) ?
		opts->max_parallel_downloads : 1;
	for (j = run->cur; j < run->njobs; j++)
	{
		CloverJob  *job = &run->jobs[j];
		int			f;

		if (job->state != JOB_DONE)
			break;
		for (f = job->next_hand; f < job->next_start; f++)
		{
			Download   *dl = &job->files[f];

			if (dl->state == DOWNLOAD_RETRY_WAIT && now >= dl->retry_at)
				start_file(run, job, f);
		}
		while (job->next_start < job->nfiles &&
			   run->files_outstanding < limit)
		{
			start_file(run, job, job->next_start++);
			run->files_outstanding++;
		}
		if (job->next_start < job->nfiles)
			break;
	}
}

/*
 * next_due
 *		Seconds until the earliest timer of the run, at most
 *		MAX_IDLE_WAIT_SECS
 *
 * A request that is due but held back by the API rate limiter counts as
 * due when the limiter allows it (and not sooner than a short recheck);
 * one held back by Clover's rules (concurrency, prefetch) waits for the
 * event that releases it.  A job in the cluster's line, or waiting for
 * another scan's export, looks at the shared state again soon: the other
 * sessions do not wake this one.
 */
static double
next_due(CloverExportRun *run, double now)
{
	double		due = now + MAX_IDLE_WAIT_SECS;
	double		soon = Max(now + RATE_LIMITED_RECHECK_SECS,
						   CloverApiReadyAt(run->token_key, now));
	CloverJob  *creatable = next_creatable(run);
	int			j;

	if (creatable)
		due = Min(due, Max(creatable->due_at,
						   creatable->in_line ? now + SHARED_RECHECK_SECS :
						   soon));
	for (j = run->cur; j < run->njobs; j++)
	{
		CloverJob  *job = &run->jobs[j];
		int			f;

		if (job->state == JOB_SHARED)
			due = Min(due, now + SHARED_RECHECK_SECS);
		if (job->state == JOB_RUNNING && job->request == NULL)
			due = Min(due, Max(job->due_at, soon));
		if (job->state == JOB_DONE)
		{
			for (f = job->next_hand; f < job->next_start; f++)
			{
				if (job->files[f].state == DOWNLOAD_RETRY_WAIT)
					due = Min(due, Max(job->files[f].retry_at, now));
			}
		}
	}
	return due - now;
}

/*
 * handle_completion
 *		Route a finished request to its handler, then free its answer
 *		(unless a handler kept the body)
 *
 * The job no longer has the request in flight when the handler runs, so a
 * handler may start another one or restart the job.
 */
static void
handle_completion(CloverExportRun *run, CloverHttpResult *res)
{
	CloverJob  *job = (CloverJob *) res->owner;

	if (res->tag < 0)
	{
		job->request = NULL;
		job->answered_at = job->sent_at + res->total_secs;
		CloverApiDone(run->token_key, run->cluster_run);
		if (res->outcome == CLOVER_HTTP_ANSWERED)
			run->api_answered = true;
	}
	else
		job->files[res->tag].request = NULL;

	if (res->tag == TAG_CREATE)
		clover_handle_create(run, job, res);
	else if (res->tag == TAG_POLL)
		clover_handle_poll(run, job, res);
	else
		clover_handle_file(run, job, res->tag, res);

	CloverHttpFreeResult(run->http, res);
}

/*
 * run_step
 *		Start what is due, let transfers advance, handle what finished;
 *		never waits.  Returns true if any request finished.
 */
static bool
run_step(CloverExportRun *run)
{
	CloverHttpResult res;
	bool		progressed = false;

	schedule(run, mono_now());
	CloverHttpPerform(run->http);
	while (CloverHttpNextResult(run->http, &res))
	{
		handle_completion(run, &res);
		progressed = true;
	}
	clover_report_progress(run, mono_now());
	return progressed;
}

/*
 * step_sibling
 *		run_step of another run of the backend, in that run's memory
 */
static bool
step_sibling(CloverExportRun *r)
{
	MemoryContext old = MemoryContextSwitchTo(r->cxt);
	bool		progressed = run_step(r);

	MemoryContextSwitchTo(old);
	return progressed;
}

/*
 * waits_for_others
 *		Does the run wait for what another run of the backend may have to
 *		do: a slot in line (another scan of the statement may hold it with
 *		its export in flight), or another scan's export?
 */
static bool
waits_for_others(CloverExportRun *run)
{
	int			j;

	for (j = run->cur; j < run->njobs; j++)
	{
		if (run->jobs[j].in_line || run->jobs[j].state == JOB_SHARED)
			return true;
	}
	return false;
}

/*
 * step_siblings
 *		Let the backend's other runs advance, for a run that does not wait
 *		itself (an asynchronous scan) but waits for them: a run outside its
 *		Append is stepped by no one else, and a slot it holds would never
 *		come free
 */
static void
step_siblings(CloverExportRun *run)
{
	dlist_iter	iter;

	dlist_foreach(iter, &live_runs)
	{
		CloverExportRun *r = dlist_container(CloverExportRun, live_node, iter.cur);

		if (r != run)
			(void) step_sibling(r);
	}
}

/*
 * wait_for_activity
 *		Sleep until a transfer can advance, a timer is due, or a signal or
 *		latch arrives (see CloverHttpWait)
 *
 * The other runs of this backend advance first: another table of the
 * statement may make the export this run waits for, and its status polls
 * are timed by when their answers arrive.  So the wait also ends at their
 * timers, and soon while they have requests in flight (this wait sees only
 * this run's transfers).
 */
static void
wait_for_activity(CloverExportRun *run)
{
	double		start = mono_now();
	double		wait = next_due(run, start);
	dlist_iter	iter;

	dlist_foreach(iter, &live_runs)
	{
		CloverExportRun *r = dlist_container(CloverExportRun, live_node, iter.cur);

		if (r == run)
			continue;
		(void) step_sibling(r);
		/* its timers, and soon for its answers: this wait does not see them */
		wait = Min(wait, next_due(r, start));
		if (CloverHttpBusy(r->http))
			wait = Min(wait, SIBLING_ANSWER_SECS);
	}
	CloverHttpWait(run->http, (long) ceil(Max(wait, 0) * 1000));
	run->stats.clover_wait_secs += mono_now() - start;
}

/* ----------------------------------------------------------------
 *		The interface
 * ----------------------------------------------------------------
 */

/*
 * reuse_export
 *		Start job as DONE with the files of an export the statement already
 *		made, if one covers its window; the files are downloaded again
 *		(only their URLs are kept), and the scan keeps only the rows of the
 *		job's own window
 */
static void
reuse_export(CloverExportRun *run, CloverJob *job)
{
	const CloverStatementExport *done;

	done = CloverStatementFindExport(run->statement, run->opts, run->token,
									 job->window);
	if (done == NULL)
		return;
	job->export_id = done->export_id;
	job->status = "DONE";
	job->nfiles = done->nurls;
	job->urls = done->urls;
	job->files = palloc0(sizeof(Download) * Max(done->nurls, 1));
	job->state = JOB_DONE;
	run->stats.exports_reused++;
	elog(DEBUG1, "clover_export_fdw: window %d of %d (%s) served by export %s",
		 job->index + 1, run->njobs, CloverWindowText(job->window),
		 job->export_id);
}

/*
 * CloverRunCreate
 *		Set up a run over the configured windows; nothing is sent yet
 *
 * Windows that an export of the statement covers start DONE with its
 * files.  The run lives in a new child context of parent; deleting that
 * context (CloverRunDestroy, or the end of the query on error) frees
 * everything.
 */
CloverExportRun *
CloverRunCreate(MemoryContext parent, const CloverClientConfig *config)
{
	MemoryContext cxt;
	MemoryContext old;
	MemoryContextCallback *cb;
	CloverExportRun *run;
	int			i;

	cxt = AllocSetContextCreate(parent, "clover_export_fdw run",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	run = palloc0(sizeof(CloverExportRun));
	run->cxt = cxt;
	run->opts = config->opts;
	run->token = pstrdup(config->access_token);
	run->statement = config->statement;
	run->exports_path = psprintf("/v3/merchants/%s/exports",
								 config->opts->merchant_id);
	run->exports_url = psprintf("%s%s", config->opts->api_base,
								run->exports_path);
	run->njobs = config->nwindows;
	run->whole_windows = config->whole_windows;
	run->prefetch_unlocked = config->wants_all;
	run->jobs = palloc0(sizeof(CloverJob) * Max(config->nwindows, 1));
	for (i = 0; i < config->nwindows; i++)
	{
		run->jobs[i].index = i;
		run->jobs[i].window = &config->windows[i];
		run->jobs[i].percent = -1;
		reuse_export(run, &run->jobs[i]);
	}
	run->cluster_run = CloverClusterNewRun();
	run->token_key = CloverTokenKey(config->opts, config->access_token);
	run->stmt_start = GetCurrentStatementStartTimestamp();
	run->started_at = mono_now();
	run->rows_returned = config->rows_returned;
	run->rows_before = config->rows_returned ? *config->rows_returned : 0;

	cb = palloc0(sizeof(MemoryContextCallback));
	cb->func = run_reset_callback;
	cb->arg = run;
	MemoryContextRegisterResetCallback(cxt, cb);
	dlist_push_tail(&live_runs, &run->live_node);

	run->http = CloverHttpCreate(cxt);

	MemoryContextSwitchTo(old);
	return run;
}

/*
 * release_handed
 *		The caller is done with the file it was given
 */
static void
release_handed(CloverExportRun *run)
{
	Download   *dl = run->handed;

	if (dl == NULL)
		return;
	run->handed = NULL;
	if (dl->state != DOWNLOAD_HANDED)
		return;					/* re-queued by CloverRunRedownload */
	free_download(run, dl);
	dl->state = DOWNLOAD_RELEASED;
	/* the consumer finished a whole file: it wants more than a peek */
	if (!run->whole_windows)
		run->prefetch_unlocked = true;
}

/*
 * hand_out
 *		Give the caller file f of job, which is READY, and start the next
 *		downloads before the caller converts it
 */
static void
hand_out(CloverExportRun *run, CloverJob *job, CloverFile *file)
{
	int			f = job->next_hand++;
	Download   *dl = &job->files[f];

	dl->state = DOWNLOAD_HANDED;
	run->files_outstanding--;
	run->handed = dl;
	job->any_handed = true;

	file->data = dl->data.data;
	file->len = dl->data.len;
	file->window_no = job->index;
	file->file_no = f;
	file->nfiles = job->nfiles;
	file->export_id = job->export_id;
	file->attempt = dl->redownloads + 1;
	file->list_path = NULL;
	file->repeated = NULL;
	(void) run_step(run);
}

/*
 * CloverRunNextFile
 *		The next file in window order, waiting (interruptibly) for it if
 *		wait, else PENDING when it has not come yet; DONE when every window
 *		is done
 *
 * The previous file's buffer is freed here.
 */
CloverFetch
CloverRunNextFile(CloverExportRun *run, CloverFile *file, bool wait)
{
	MemoryContext old = MemoryContextSwitchTo(run->cxt);
	bool		found = false;

	release_handed(run);
	while (run->cur < run->njobs)
	{
		CloverJob  *job = &run->jobs[run->cur];

		if (job->state == JOB_DONE && job->next_hand >= job->nfiles)
		{
			job->state = JOB_FINISHED;
			clover_job_finished(run, job);
			run->cur++;
			clover_report_window_done(run, job);
			/* an empty window still means the consumer wants more */
			run->prefetch_unlocked = true;
			continue;
		}
		if (job->state == JOB_DONE &&
			job->files[job->next_hand].state == DOWNLOAD_READY)
		{
			hand_out(run, job, file);
			found = true;
			break;
		}
		if (run_step(run))
			continue;
		if (!wait)
		{
			if (waits_for_others(run))
				step_siblings(run);
			MemoryContextSwitchTo(old);
			return CLOVER_FETCH_PENDING;
		}
		wait_for_activity(run);
	}
	if (!found)
		clover_report_summary(run);
	MemoryContextSwitchTo(old);
	return found ? CLOVER_FETCH_READY : CLOVER_FETCH_DONE;
}

/*
 * CloverRunWaitFd
 *		A descriptor that becomes readable when the run can advance: an
 *		answer arrives or its next timer is due (for an asynchronous scan,
 *		which waits in the executor's event loop), or max_wait_ms have
 *		passed
 */
int
CloverRunWaitFd(CloverExportRun *run, long max_wait_ms)
{
	long		wait_ms = (long) ceil(next_due(run, mono_now()) * 1000);

	return CloverHttpWaitFd(run->http, Min(wait_ms, max_wait_ms));
}

/*
 * CloverRunRedownload
 *		The file just handed out is broken: fetch it again; the next
 *		CloverRunNextFile returns the new copy
 */
void
CloverRunRedownload(CloverExportRun *run)
{
	Download   *dl = run->handed;
	CloverJob  *job = &run->jobs[run->cur];

	Assert(dl && dl->state == DOWNLOAD_HANDED);
	free_download(run, dl);
	dl->redownloads++;
	dl->state = DOWNLOAD_RETRY_WAIT;
	dl->retry_at = 0;
	run->files_outstanding++;
	job->next_hand--;
	run->stats.file_redownloads++;
}

/*
 * CloverRunPump
 *		Let transfers advance without waiting, this run's and the other
 *		runs' of the backend (whose answers would otherwise wait for this
 *		scan's next wait); called between rows
 */
void
CloverRunPump(CloverExportRun *run)
{
	MemoryContext old = MemoryContextSwitchTo(run->cxt);
	dlist_iter	iter;

	(void) run_step(run);
	dlist_foreach(iter, &live_runs)
	{
		CloverExportRun *r = dlist_container(CloverExportRun, live_node, iter.cur);

		if (r != run)
			(void) step_sibling(r);
	}
	MemoryContextSwitchTo(old);
}

/*
 * CloverRunAllowPrefetch
 *		The consumer of whole windows wants more than a peek: create the
 *		next windows' exports ahead, as Clover's limits allow
 */
void
CloverRunAllowPrefetch(CloverExportRun *run)
{
	run->prefetch_unlocked = true;
}

/*
 * CloverRunGetStats
 *		What the run has done so far (its scan-side figures stay 0)
 */
const CloverScanStats *
CloverRunGetStats(CloverExportRun *run)
{
	return &run->stats;
}

/*
 * CloverScanStatsAdd
 *		Add every figure of s to total (a rescan starts a new run)
 */
void
CloverScanStatsAdd(CloverScanStats *total, const CloverScanStats *s)
{
#define CLOVER_SCAN_STATS_ADD(type, name) total->name += s->name;
	CLOVER_SCAN_STATS(CLOVER_SCAN_STATS_ADD)
#undef CLOVER_SCAN_STATS_ADD
}

/*
 * CloverRunDestroy
 *		Abandon whatever is in flight and free the run
 *
 * A run stopped before its last row (a LIMIT, a rescan) is summed up here.
 */
void
CloverRunDestroy(CloverExportRun *run)
{
	clover_report_summary(run);
	MemoryContextDelete(run->cxt);
}
