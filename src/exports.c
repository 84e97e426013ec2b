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
 *	 Clover asks), counting every run of the same server in this backend;
 *	 the next window's export is created as soon as an earlier one is DONE.
 *	 Until the consumer has finished a whole file, nothing is prefetched (a
 *	 LIMIT 10 creates one export and downloads at most two files).  A
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
 *	 else back off from 1 s; API requests stay under a per-run token bucket
 *	 well below Clover's 16 requests/s per token (pacing.c).
 * - Polls start after 50 ms and double up to 5 s (pacing.c).  An export
 *	 still PENDING or IN_PROGRESS after export_timeout fails the query.
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
#include <time.h>

#include "clover_export_fdw.h"
#include "common/pg_prng.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* requests to the API host in flight at once (Clover allows 5 per token) */
#define MAX_API_IN_FLIGHT		3

/* our own API request rate: well below Clover's 16 per second per token */
#define API_RATE_PER_SEC		8.0
#define API_BURST				4.0

/*
 * Retry backoffs: the first delay and the cap, in seconds, of each kind of
 * retry (each delay then gets jitter, see CloverBackoff)
 */
#define CREATE_RETRY_BASE_SECS	0.5 /* a POST that sent nothing */
#define CREATE_RETRY_MAX_SECS	30.0
#define UNREACHABLE_RETRY_BASE_SECS 0.4 /* ... and found no server */
#define POLL_RETRY_BASE_SECS	0.5 /* a failed status poll */
#define POLL_RETRY_MAX_SECS		30.0
#define FILE_RETRY_BASE_SECS	0.25	/* a failed download */
#define FILE_RETRY_MAX_SECS		15.0
#define BUSY_RETRY_BASE_SECS	1.0 /* Clover busy with other exports */
#define BUSY_RETRY_MAX_SECS		30.0
#define RATE_RETRY_BASE_SECS	1.0 /* a 429 without Retry-After */
#define RATE_RETRY_MAX_SECS		60.0

/*
 * Retries of a POST that found no server (refused, unknown host) before the
 * API host answered anything: about a second in all
 */
#define UNREACHABLE_RETRIES		2

/* a Retry-After is waited out a little longer: calling early is punished */
#define RETRY_AFTER_MARGIN_SECS 0.05

/* a request held back only by the rate limiter is looked at this soon */
#define RATE_LIMITED_RECHECK_SECS 0.02

/* longest sleep when no timer is due sooner */
#define MAX_IDLE_WAIT_SECS		1.0

/* largest API answer and largest export file accepted */
#define MAX_API_BODY			(16 * 1024 * 1024)
#define MAX_FILE_BODY			((size_t) MaxAllocSize - 1)

/* progress NOTICEs at most this often */
#define PROGRESS_INTERVAL_SECS	3.0

/* CloverHttpRequestSpec.tag of API requests; a download's is its file_no */
#define TAG_CREATE				(-1)
#define TAG_POLL				(-2)

/*
 * A job is one window's export.  Its states, and what moves it on:
 *
 *	WAITING		no export yet: the POST goes once next_creatable allows it
 *				and due_at has come
 *	CREATING	the POST is in flight: created -> RUNNING (or DONE at once);
 *				503, 429 or not sent -> WAITING with a later due_at
 *	RUNNING		polled on the schedule: DONE -> DONE; a failed or unknown
 *				status -> WAITING, once (restart_job)
 *	DONE		files known, downloaded in order and handed out; a file
 *				gone at Clover -> WAITING, once, if nothing of the window
 *				was returned
 *	FINISHED	every file handed out
 */
typedef enum JobState
{
	JOB_WAITING,
	JOB_CREATING,
	JOB_RUNNING,
	JOB_DONE,
	JOB_FINISHED
} JobState;

/* Where one file of a DONE export is */
typedef enum DownloadState
{
	DOWNLOAD_NONE,				/* not requested yet */
	DOWNLOAD_INFLIGHT,
	DOWNLOAD_RETRY_WAIT,		/* failed; retried at retry_at */
	DOWNLOAD_READY,				/* downloaded, not handed out */
	DOWNLOAD_HANDED,			/* the caller is converting it */
	DOWNLOAD_RELEASED
} DownloadState;

/* One file of a DONE export */
typedef struct Download
{
	DownloadState state;
	CloverHttpBuffer data;		/* READY or HANDED */
	CloverHttpRequest *request; /* INFLIGHT */
	int			failures;		/* transient failures so far */
	int			redownloads;	/* re-downloads asked for by the caller */
	double		retry_at;
} Download;

typedef struct CloverJob
{
	int			index;
	const CloverWindow *window;
	JobState	state;
	CloverHttpRequest *request; /* the create or poll in flight, or NULL */
	double		due_at;			/* next create attempt or poll */
	char	   *export_id;
	char	   *status;
	int			percent;
	CloverPollHistory polls;	/* for the polling schedule */
	int			poll_failures;	/* consecutive */
	int			create_failures;	/* POSTs that sent nothing */
	double		busy_since;		/* first busy answer, or 0 */
	int			busy_answers;	/* busy answers since busy_since */
	double		created_at;		/* when Clover created the export, or 0 */
	int			closed_polls;	/* polls answered "closed" in a row */
	double		closed_since;	/* first closed answer, or 0 */
	int			recreations;	/* exports created again (expiry) */
	int			status_retries; /* exports created again (bad status) */
	int			nfiles;
	char	  **urls;
	Download   *files;
	int			next_start;		/* next file to start downloading */
	int			next_hand;		/* next file to hand out */
	bool		any_handed;
} CloverJob;

struct CloverExportRun
{
	dlist_node	live_node;		/* in live_runs */
	MemoryContext cxt;
	const CloverFdwOptions *opts;
	const char *token;
	CloverStatementExports *statement;	/* the statement's exports */
	char	   *exports_url;	/* absolute */
	char	   *exports_path;	/* the same without scheme and host */
	int			njobs;
	CloverJob  *jobs;
	int			cur;			/* job whose files are handed out next */
	CloverHttp *http;
	CloverRateLimiter api;		/* requests to the API host */
	bool		api_answered;	/* the API host answered a request */
	int			files_outstanding;	/* in flight, waiting or ready */
	bool		prefetch_unlocked;
	bool		whole_windows;	/* see CloverClientConfig */
	int			rate_limit_streak;
	double		rate_limited_since;
	Download   *handed;
	CloverScanStats stats;
	/* progress NOTICEs (report_progress and friends) */
	double		last_notice_at;
	double		started_at;
	const int64 *rows_returned; /* the scan's count */
	int64		rows_before;	/* *rows_returned when the run began */
	bool		summed_up;
};

/*
 * Every run of this backend.  Runs of one server share its allowance of
 * concurrent exports (max_concurrent_exports counts the exports of a whole
 * statement, e.g. of both sides of a join), and a run waiting for its turn
 * keeps its siblings' requests moving, since only they can see their
 * exports finish.
 */
static dlist_head live_runs = DLIST_STATIC_INIT(live_runs);

static bool run_step(CloverExportRun *run);
static void handle_create(CloverExportRun *run, CloverJob *job,
						  CloverHttpResult *res);
static void handle_poll(CloverExportRun *run, CloverJob *job,
						CloverHttpResult *res);
static void handle_file(CloverExportRun *run, CloverJob *job, int file_no,
						CloverHttpResult *res);
static void apply_export_info(CloverExportRun *run, CloverJob *job,
							  CloverHttpResult *res, bool is_create);
static void restart_job(CloverExportRun *run, CloverJob *job);
static void poll_again(CloverExportRun *run, CloverJob *job);
static void report_progress(CloverExportRun *run, double now);
static void report_window_done(CloverExportRun *run, CloverJob *job);
static void report_summary(CloverExportRun *run);

/* ----------------------------------------------------------------
 *		Small helpers
 * ----------------------------------------------------------------
 */

/*
 * mono_now
 *		Seconds on the monotonic clock, the clock of every timer of a run
 *		(the wall clock only decides service hours)
 */
static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * backoff_secs
 *		CloverBackoff with this backend's random jitter
 */
static double
backoff_secs(int attempt, double base, double cap)
{
	return CloverBackoff(attempt, base, cap,
						 pg_prng_double(&pg_global_prng_state));
}

/*
 * job_ref
 *		What a message about a request of job names
 */
static CloverExportRef
job_ref(CloverExportRun *run, CloverJob *job, bool is_create)
{
	CloverExportRef ref;

	ref.opts = run->opts;
	ref.token = run->token;
	ref.exports_path = run->exports_path;
	ref.window = job->window;
	ref.export_id = job->export_id;
	ref.is_create = is_create;
	ref.host_answered = run->api_answered;
	return ref;
}

/*
 * worth_retrying
 *		Is this failure of an idempotent request worth another try?  (A
 *		server error other than 501, or a network failure that may pass.)
 */
static bool
worth_retrying(const CloverHttpResult *res)
{
	if (res->outcome == CLOVER_HTTP_ANSWERED)
		return res->status >= 500 && res->status != 501;
	return res->outcome == CLOVER_HTTP_NOT_SENT ||
		res->outcome == CLOVER_HTTP_TRANSIENT;
}

/*
 * answered
 *		Did the server answer with this status?
 */
static inline bool
answered(const CloverHttpResult *res, long status)
{
	return res->outcome == CLOVER_HTTP_ANSWERED && res->status == status;
}

/*
 * free_download
 *		Free a downloaded file's buffer, if it has one
 */
static void
free_download(CloverExportRun *run, Download *dl)
{
	CloverHttpFreeBuffer(run->http, &dl->data);
}

/*
 * run_reset_callback
 *		Take a run out of the backend's list when its memory context goes,
 *		on success, error or cancel alike (http.c frees its requests)
 */
static void
run_reset_callback(void *arg)
{
	CloverExportRun *run = (CloverExportRun *) arg;

	dlist_delete(&run->live_node);
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
 *		The job whose export Clover's rules let us create next (timers
 *		aside), or NULL
 *
 * Exports are created in window order, as CloverMayCreateExport allows,
 * counting the running exports of every run of the same server in this
 * backend.
 */
static CloverJob *
next_creatable(CloverExportRun *run)
{
	int			running = 0;
	dlist_iter	iter;
	int			j;

	dlist_foreach(iter, &live_runs)
	{
		CloverExportRun *r = dlist_container(CloverExportRun, live_node, iter.cur);

		if (r->opts->serverid != run->opts->serverid)
			continue;
		for (j = r->cur; j < r->njobs; j++)
		{
			if (r->jobs[j].state == JOB_CREATING ||
				r->jobs[j].state == JOB_RUNNING)
				running++;
		}
	}
	for (j = run->cur; j < run->njobs; j++)
	{
		if (run->jobs[j].state != JOB_WAITING)
			continue;
		if (!CloverMayCreateExport(j - run->cur, running,
								   run->opts->max_concurrent_exports,
								   run->prefetch_unlocked))
			return NULL;
		return &run->jobs[j];
	}
	return NULL;
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

	/* exports */
	while ((job = next_creatable(run)) != NULL &&
		   now >= job->due_at && CloverRateLimiterTake(&run->api, now))
		start_create(run, job);

	/* polls of running exports */
	for (j = run->cur; j < run->njobs; j++)
	{
		CloverJob  *job = &run->jobs[j];

		if (job->state == JOB_RUNNING && job->request == NULL &&
			now >= job->due_at && CloverRateLimiterTake(&run->api, now))
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
 * event that releases it.
 */
static double
next_due(CloverExportRun *run, double now)
{
	double		due = now + MAX_IDLE_WAIT_SECS;
	double		soon = Max(now + RATE_LIMITED_RECHECK_SECS,
						   CloverRateLimiterReadyAt(&run->api, now));
	CloverJob  *creatable = next_creatable(run);
	int			j;

	if (creatable)
		due = Min(due, Max(creatable->due_at, soon));
	for (j = run->cur; j < run->njobs; j++)
	{
		CloverJob  *job = &run->jobs[j];
		int			f;

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
		CloverRateLimiterDone(&run->api);
		if (res->outcome == CLOVER_HTTP_ANSWERED)
			run->api_answered = true;
	}
	else
		job->files[res->tag].request = NULL;

	if (res->tag == TAG_CREATE)
		handle_create(run, job, res);
	else if (res->tag == TAG_POLL)
		handle_poll(run, job, res);
	else
		handle_file(run, job, res->tag, res);

	CloverHttpFreeBuffer(run->http, &res->body);
	if (res->error)
		pfree(res->error);
	if (res->redirect_url)
		pfree(res->redirect_url);
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
	report_progress(run, mono_now());
	return progressed;
}

/*
 * wait_for_activity
 *		Sleep until a transfer can advance, a timer is due, or a signal or
 *		latch arrives (see CloverHttpWait)
 *
 * The other runs of this backend advance first: another table of the
 * statement may hold the concurrent exports this run waits for.
 */
static void
wait_for_activity(CloverExportRun *run)
{
	double		start = mono_now();
	dlist_iter	iter;

	dlist_foreach(iter, &live_runs)
	{
		CloverExportRun *r = dlist_container(CloverExportRun, live_node, iter.cur);

		if (r != run)
			(void) run_step(r);
	}
	CloverHttpWait(run->http, (long) ceil(next_due(run, start) * 1000));
	run->stats.clover_wait_secs += mono_now() - start;
}

/* ----------------------------------------------------------------
 *		Clover's answers
 * ----------------------------------------------------------------
 */

/*
 * rate_limited
 *		Handle a 429: pause every API request for Retry-After (or a backoff
 *		from 1 s); fail once busy_timeout is spent
 *
 * A Retry-After that reaches past busy_timeout fails at once: calling
 * before it expires only lengthens Clover's penalty.
 */
static void
rate_limited(CloverExportRun *run, CloverJob *job, CloverHttpResult *res,
			 bool is_create)
{
	double		now = mono_now();
	double		timeout = run->opts->busy_timeout_ms / 1000.0;
	double		delay;

	if (run->rate_limit_streak == 0)
		run->rate_limited_since = now;
	run->rate_limit_streak++;
	if (res->retry_after_secs >= 0)
	{
		delay = (double) res->retry_after_secs + RETRY_AFTER_MARGIN_SECS;
		if (CloverDeadlineWait(run->rate_limited_since, timeout, now,
							   delay) < delay)
			delay = -1;
	}
	else
		delay = CloverDeadlineWait(run->rate_limited_since, timeout, now,
								   backoff_secs(run->rate_limit_streak,
												RATE_RETRY_BASE_SECS,
												RATE_RETRY_MAX_SECS));
	if (delay < 0)
	{
		CloverExportRef ref = job_ref(run, job, is_create);

		CloverReportRateLimited(&ref, res,
								is_create ? "export requests" : "status polls",
								run->rate_limit_streak,
								now - run->rate_limited_since);
	}
	CloverRateLimiterPause(&run->api, now + delay);
	run->stats.rate_limited++;
	run->stats.rate_limit_wait_secs += delay;
	elog(DEBUG1, "clover_export_fdw: HTTP 429, pausing API requests for %.2f s",
		 delay);
}

/*
 * contains_ci
 *		Does text contain word, ignoring ASCII case?  (strcasestr is a GNU
 *		extension.)
 */
static bool
contains_ci(const char *text, const char *word)
{
	size_t		n = strlen(word);

	for (; *text; text++)
	{
		if (pg_strncasecmp(text, word, n) == 0)
			return true;
	}
	return false;
}

/*
 * says_closed
 *		Does a 503 mean "outside the service hours" rather than "busy"?
 *
 * Clover's own words decide: it names its hours when closed, and says
 * "too many" exports when busy.  Only words that say neither (or both) leave
 * it to the configured calendar.
 */
static bool
says_closed(const CloverFdwOptions *opts, const char *message,
			TimestampTz wall)
{
	bool		hours = contains_ci(message, "hour") ||
		contains_ci(message, "closed");
	bool		busy = contains_ci(message, "too many") ||
		contains_ci(message, "concurrent") || contains_ci(message, "busy");

	if (hours != busy)
		return hours;
	return !CloverServiceOpenAt(&opts->hours, wall);
}

/*
 * wait_or_fail_closed
 *		Clover answered a POST "closed": schedule the retry at the opening if
 *		wait_for_service allows, else fail with the hours and the opening
 */
static void
wait_or_fail_closed(CloverExportRun *run, CloverJob *job, const char *message,
					TimestampTz wall, double now)
{
	const CloverFdwOptions *opts = run->opts;
	CloverExportRef ref = job_ref(run, job, true);
	TimestampTz opening = CloverNextOpening(&opts->hours, wall);
	double		until_open;

	/* the calendar disagrees with Clover: look again in a minute */
	if (opening <= wall)
		opening = wall + 60 * USECS_PER_SEC;
	until_open = (opening - wall) / 1e6;
	if (job->closed_since == 0)
		job->closed_since = now;

	if (opts->wait_for_service_ms <= 0 || opening == DT_NOEND ||
		now + until_open - job->closed_since > opts->wait_for_service_ms / 1000.0)
		CloverReportClosed(&ref, message, opening, until_open,
						   now - job->closed_since,
						   CloverServiceOpenAt(&opts->hours, wall));

	CloverNoticeWaitingForService(&ref, message, opening, until_open);
	/* spread the retries of many waiting sessions over a few seconds */
	job->due_at = now + until_open + 1.0 +
		5.0 * pg_prng_double(&pg_global_prng_state);
	job->state = JOB_WAITING;
	run->stats.closed_waits++;
	run->stats.closed_wait_secs += until_open;
}

/*
 * wait_or_fail_busy
 *		Clover answered a POST "busy": retry with exponential backoff, per
 *		export, until busy_timeout is really spent (the last wait may be
 *		shorter), then fail saying how long it waited
 */
static void
wait_or_fail_busy(CloverExportRun *run, CloverJob *job, const char *message,
				  double now)
{
	double		delay;

	if (job->busy_since == 0)
	{
		job->busy_since = now;
		job->busy_answers = 0;
	}
	job->busy_answers++;
	delay = CloverDeadlineWait(job->busy_since,
							   run->opts->busy_timeout_ms / 1000.0, now,
							   backoff_secs(job->busy_answers,
											BUSY_RETRY_BASE_SECS,
											BUSY_RETRY_MAX_SECS));
	if (delay < 0)
	{
		CloverExportRef ref = job_ref(run, job, true);

		CloverReportBusy(&ref, message, job->busy_answers,
						 now - job->busy_since);
	}
	job->due_at = now + delay;
	job->state = JOB_WAITING;
	run->stats.busy_waits++;
	run->stats.busy_wait_secs += delay;
	elog(DEBUG1, "clover_export_fdw: Clover busy, retrying window %d in %.2f s",
		 job->index + 1, delay);
}

/*
 * found_no_server
 *		Did a request of a run that has had no answer from the API host find
 *		no server at all (connection refused, unknown host)?  Then base_url,
 *		region or the network is wrong far more likely than Clover is
 *		briefly away, so the POST is retried only UNREACHABLE_RETRIES times.
 *		Once the host has answered, such a failure is a blip and gets the
 *		usual retries.
 */
static bool
found_no_server(const CloverExportRun *run, const CloverHttpResult *res)
{
	return res->unreachable && !run->api_answered;
}

/*
 * handle_create
 *		Act on the answer to a POST that creates job's export
 *
 * Created (2xx): the export object says what next (apply_export_info).
 * 503: closed or busy, retried later or failed (closed_or_busy).  429:
 * retried after the pause.  A POST that cannot have reached Clover is
 * retried with backoff (briefly when it found no server, found_no_server);
 * anything else fails, since repeating a POST that may have created an
 * export could create a second one.
 */
static void
handle_create(CloverExportRun *run, CloverJob *job, CloverHttpResult *res)
{
	bool		no_server = found_no_server(run, res);

	if (res->outcome == CLOVER_HTTP_ANSWERED &&
		res->status >= 200 && res->status < 300)
	{
		run->rate_limit_streak = 0;
		job->busy_since = 0;
		job->busy_answers = 0;
		job->closed_since = 0;
		job->create_failures = 0;
		run->stats.exports_created++;
		apply_export_info(run, job, res, true);
	}
	else if (answered(res, 503))
	{
		CloverExportRef ref = job_ref(run, job, true);
		char	   *message = CloverAnswerText(&ref, res);
		TimestampTz wall = GetCurrentTimestamp();

		CloverStatementUncountExport(run->statement, run->opts);
		if (says_closed(run->opts, message, wall))
			wait_or_fail_closed(run, job, message, wall, mono_now());
		else
			wait_or_fail_busy(run, job, message, mono_now());
	}
	else if (answered(res, 429))
	{
		CloverStatementUncountExport(run->statement, run->opts);
		rate_limited(run, job, res, true);
		job->state = JOB_WAITING;
		job->due_at = run->api.paused_until;
	}
	else if (res->outcome == CLOVER_HTTP_NOT_SENT &&
			 job->create_failures < (no_server ?
									 Min(run->opts->max_retries,
										 UNREACHABLE_RETRIES) :
									 run->opts->max_retries))
	{
		CloverStatementUncountExport(run->statement, run->opts);
		job->create_failures++;
		run->stats.retries++;
		job->state = JOB_WAITING;
		job->due_at = mono_now() +
			backoff_secs(job->create_failures,
						 no_server ? UNREACHABLE_RETRY_BASE_SECS :
						 CREATE_RETRY_BASE_SECS,
						 CREATE_RETRY_MAX_SECS);
	}
	else
	{
		CloverExportRef ref = job_ref(run, job, true);

		CloverReportApiFailure(&ref, res, job->create_failures + 1);
	}
}

/*
 * handle_poll
 *		Act on the answer to a status poll of job's export
 *
 * 200: the export object says what next (apply_export_info).  429: polled
 * again after the pause.  503 "closed": polled again on the schedule
 * (export_timeout bounds it).  Failures that may pass: retried with
 * backoff up to max_retries; anything else fails.
 */
static void
handle_poll(CloverExportRun *run, CloverJob *job, CloverHttpResult *res)
{
	CloverExportRef ref = job_ref(run, job, false);

	if (answered(res, 200))
	{
		run->rate_limit_streak = 0;
		job->poll_failures = 0;
		job->closed_polls = 0;
		apply_export_info(run, job, res, false);
	}
	else if (answered(res, 429))
	{
		rate_limited(run, job, res, false);
		job->due_at = run->api.paused_until;
	}
	else if (answered(res, 503) &&
			 says_closed(run->opts, CloverAnswerText(&ref, res),
						 GetCurrentTimestamp()))
	{
		/* closed is no failure of the export: export_timeout bounds it */
		job->closed_polls++;
		run->stats.retries++;
		poll_again(run, job);
	}
	else if (worth_retrying(res) &&
			 job->poll_failures < run->opts->max_retries)
	{
		job->poll_failures++;
		run->stats.retries++;
		job->due_at = mono_now() + backoff_secs(job->poll_failures,
												POLL_RETRY_BASE_SECS,
												POLL_RETRY_MAX_SECS);
	}
	else
		CloverReportApiFailure(&ref, res, job->poll_failures + 1);
}

/*
 * poll_again
 *		Schedule the next poll of a PENDING or IN_PROGRESS export on the
 *		polling schedule (CloverNextPoll); fail once the export has
 *		run for export_timeout
 */
static void
poll_again(CloverExportRun *run, CloverJob *job)
{
	double		now = mono_now();
	double		wait;

	if (job->state != JOB_RUNNING)
	{
		job->state = JOB_RUNNING;
		job->created_at = now;
		CloverPollHistoryInit(&job->polls, now);
	}
	wait = CloverDeadlineWait(job->created_at,
							  run->opts->export_timeout_ms / 1000.0, now,
							  CloverNextPoll(&job->polls, now,
											 job->status &&
											 strcmp(job->status,
													"IN_PROGRESS") == 0,
											 job->percent));
	if (wait < 0)
	{
		CloverExportRef ref = job_ref(run, job, false);

		CloverReportTimedOut(&ref, job->status, job->percent,
							 job->closed_polls);
	}
	job->due_at = now + wait;
}

/*
 * apply_export_info
 *		Act on an export object from a POST or a poll
 *
 * PENDING or IN_PROGRESS: poll again.  DONE: the files are known and the
 * job waits for downloads.  Any other status: the export is created again
 * once (if nothing of it was returned), then the query fails.
 */
static void
apply_export_info(CloverExportRun *run, CloverJob *job, CloverHttpResult *res,
				  bool is_create)
{
	CloverExportRef ref = job_ref(run, job, is_create);
	CloverExportInfo info;
	MemoryContext old;
	int			i;

	old = MemoryContextSwitchTo(run->cxt);
	CloverReadExportObject(&ref, res, &info);
	MemoryContextSwitchTo(old);

	job->export_id = info.id;
	job->status = info.status;
	job->percent = info.percent;
	ref.export_id = info.id;

	if (strcmp(info.status, "PENDING") == 0 ||
		strcmp(info.status, "IN_PROGRESS") == 0)
	{
		poll_again(run, job);
		return;
	}

	if (strcmp(info.status, "DONE") != 0)
	{
		/* FAILED or anything undocumented: one more export, then fail */
		bool		retrying = (job->status_retries == 0 && !job->any_handed);

		CloverReportBadStatus(&ref, info.status, retrying);
		job->status_retries++;
		run->stats.export_recreated++;
		restart_job(run, job);
		return;
	}

	/* DONE: the files are known */
	for (i = 0; i < info.nurls; i++)
		CloverCheckFileUrl(&ref, info.urls[i], i, info.nurls);
	job->nfiles = info.nurls;
	job->urls = info.urls;
	job->files = MemoryContextAllocZero(run->cxt,
										sizeof(Download) * Max(info.nurls, 1));
	job->next_start = 0;
	job->next_hand = 0;
	job->state = JOB_DONE;
	CloverStatementRememberExport(run->statement, run->opts, run->token,
								  job->window, info.id, info.urls, info.nurls,
								  info.available_until);
	elog(DEBUG1, "clover_export_fdw: export %s is DONE with %d files",
		 job->export_id, job->nfiles);
}

/*
 * restart_job
 *		Forget an export and everything downloaded of it, stopping its
 *		requests in flight; create it again
 */
static void
restart_job(CloverExportRun *run, CloverJob *job)
{
	int			f;

	if (job->request)
	{
		CloverHttpAbandon(run->http, job->request);
		CloverRateLimiterDone(&run->api);
		job->request = NULL;
	}
	for (f = 0; f < job->nfiles; f++)
	{
		Download   *dl = &job->files[f];

		if (dl->request)
			CloverHttpAbandon(run->http, dl->request);
		if (dl->state == DOWNLOAD_INFLIGHT ||
			dl->state == DOWNLOAD_RETRY_WAIT ||
			dl->state == DOWNLOAD_READY)
			run->files_outstanding--;
		free_download(run, dl);
	}
	job->state = JOB_WAITING;
	job->due_at = 0;
	job->export_id = NULL;
	job->closed_polls = 0;
	job->nfiles = 0;
	job->files = NULL;
	job->urls = NULL;
	job->next_start = job->next_hand = 0;
}

/*
 * handle_file
 *		Act on the answer to the download of file file_no of job's export
 *
 * 200: the body becomes the file, READY to hand out.  404/403/410: the
 * file is gone at Clover; the export is created again once if nothing of
 * it was returned, else the query fails.  Failures that may pass and 429s
 * are retried (after Retry-After, unless that reaches past busy_timeout)
 * up to max_retries times; anything else fails.
 */
static void
handle_file(CloverExportRun *run, CloverJob *job, int file_no,
			CloverHttpResult *res)
{
	Download   *dl = &job->files[file_no];
	const CloverFdwOptions *opts = run->opts;
	CloverExportRef ref = job_ref(run, job, false);

	if (answered(res, 200))
	{
		run->stats.download_secs += res->total_secs;
		run->stats.files_downloaded++;
		run->stats.bytes_downloaded += res->body.len;
		/* the buffer moves to the download */
		dl->data = res->body;
		res->body.data = NULL;
		dl->state = DOWNLOAD_READY;
		return;
	}

	if (answered(res, 404) || answered(res, 403) || answered(res, 410))
	{
		/* deleted or expired at Clover */
		bool		retrying = (!job->any_handed && job->recreations == 0);

		CloverReportFileGone(&ref, res, job->urls[file_no], file_no,
							 job->nfiles, retrying, job->any_handed);
		CloverStatementForgetExport(run->statement, job->export_id);
		job->recreations++;
		run->stats.export_recreated++;
		restart_job(run, job);
		return;
	}

	if ((worth_retrying(res) || answered(res, 429)) &&
		dl->failures < opts->max_retries &&
		res->retry_after_secs * 1000.0 <= opts->busy_timeout_ms)
	{
		dl->failures++;
		run->stats.retries++;
		dl->state = DOWNLOAD_RETRY_WAIT;
		dl->retry_at = mono_now() +
			(res->retry_after_secs >= 0 ?
			 res->retry_after_secs + RETRY_AFTER_MARGIN_SECS :
			 backoff_secs(dl->failures, FILE_RETRY_BASE_SECS,
						  FILE_RETRY_MAX_SECS));
		elog(DEBUG1, "clover_export_fdw: retrying file %d of export %s (attempt %d)",
			 file_no + 1, job->export_id, dl->failures + 1);
		return;
	}

	CloverReportDownloadFailed(&ref, res, job->urls[file_no], file_no,
							   job->nfiles, dl->failures + 1);
}

/* ----------------------------------------------------------------
 *		Progress
 * ----------------------------------------------------------------
 */

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
 * report_progress
 *		With clover_export_fdw.progress on, say where the scan is, at most
 *		every few seconds (this section is the one place that reads the
 *		setting)
 *
 * This NOTICE, report_window_done's and report_summary's are worded for
 * tests to read: each names the window or the table, and ends with the
 * rows returned so far.  None ever shows a token or a file URL.
 */
static void
report_progress(CloverExportRun *run, double now)
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
	if (job->state == JOB_WAITING && job->due_at > now)
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
 * report_window_done
 *		With clover_export_fdw.progress on, say that every row of job's
 *		window has been returned: one NOTICE per window, however fast
 */
static void
report_window_done(CloverExportRun *run, CloverJob *job)
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
 * report_summary
 *		With clover_export_fdw.progress on, sum the run up, once: when its
 *		last row has been returned ("done"), or when the scan ends or
 *		restarts before that, e.g. under a LIMIT ("stopped")
 */
static void
report_summary(CloverExportRun *run)
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
	run->jobs = palloc0(sizeof(CloverJob) * Max(config->nwindows, 1));
	for (i = 0; i < config->nwindows; i++)
	{
		run->jobs[i].index = i;
		run->jobs[i].window = &config->windows[i];
		run->jobs[i].percent = -1;
		reuse_export(run, &run->jobs[i]);
	}
	CloverRateLimiterInit(&run->api, API_RATE_PER_SEC, API_BURST,
						  MAX_API_IN_FLIGHT, mono_now());
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
	(void) run_step(run);
}

/*
 * CloverRunNextFile
 *		The next file in window order, waiting (interruptibly) for it;
 *		false when every window is done
 *
 * The previous file's buffer is freed here.
 */
bool
CloverRunNextFile(CloverExportRun *run, CloverFile *file)
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
			run->cur++;
			report_window_done(run, job);
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
		if (!run_step(run))
			wait_for_activity(run);
	}
	if (!found)
		report_summary(run);
	MemoryContextSwitchTo(old);
	return found;
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
 *		Let transfers advance without waiting; called between rows
 */
void
CloverRunPump(CloverExportRun *run)
{
	MemoryContext old = MemoryContextSwitchTo(run->cxt);

	(void) run_step(run);
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
	report_summary(run);
	MemoryContextDelete(run->cxt);
}
