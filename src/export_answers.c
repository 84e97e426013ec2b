/*-------------------------------------------------------------------------
 *
 * export_answers.c
 *		  Act on Clover's answers to a run's requests
 *
 * Each finished request of a run comes here from exports.c's event loop:
 * the POST that creates an export (clover_handle_create), a status poll
 * (clover_handle_poll) and a file download (clover_handle_file).  This is
 * where most of Clover's rules listed in exports.c are kept: 503 "closed"
 * or "busy", 429 and Retry-After, retries of failures that may pass, the
 * polling schedule and export_timeout, and exports created again when
 * their files are gone or their status is unknown.  Every message about
 * an answer is worded (and redacted) by clover_errors.c.
 *
 * IDENTIFICATION
 *		  src/export_answers.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "clover_export_fdw.h"
#include "common/pg_prng.h"
#include "export_run.h"
#include "utils/timestamp.h"

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

/*
 * Retries of a POST that found no server (refused, unknown host) before the
 * API host answered anything: about a second in all
 */
#define UNREACHABLE_RETRIES		2

static void apply_export_info(CloverExportRun *run, CloverJob *job,
							  CloverHttpResult *res, bool is_create);
static void restart_job(CloverExportRun *run, CloverJob *job);
static void poll_again(CloverExportRun *run, CloverJob *job);

/* ----------------------------------------------------------------
 *		Small helpers
 * ----------------------------------------------------------------
 */

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
 * clover_job_ref
 *		What a message about a request of job names
 */
CloverExportRef
clover_job_ref(CloverExportRun *run, CloverJob *job, bool is_create)
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
 * before it expires only lengthens Clover's penalty.  The pause holds for
 * every session using the token (export_slots.c).  Returns when it ends.
 */
static double
rate_limited(CloverExportRun *run, CloverJob *job, CloverHttpResult *res,
			 bool is_create)
{
	double		now = mono_now();
	double		timeout = run->opts->busy_timeout_ms / 1000.0;
	double		delay;

	if (run->rate_limit_streak == 0)
		run->rate_limited_since = now;
	run->rate_limit_streak++;
	delay = CloverRateLimitWait(run->rate_limited_since, timeout, now,
								run->rate_limit_streak, res->retry_after_secs,
								pg_prng_double(&pg_global_prng_state));
	if (delay < 0)
	{
		CloverExportRef ref = clover_job_ref(run, job, is_create);

		CloverReportRateLimited(&ref, res,
								is_create ? "export requests" : "status polls",
								run->rate_limit_streak,
								now - run->rate_limited_since);
	}
	CloverApiPause(run->token_key, now + delay);
	run->stats.rate_limited++;
	run->stats.rate_limit_wait_secs += delay;
	elog(DEBUG1, "clover_export_fdw: HTTP 429, pausing API requests for %.2f s",
		 delay);
	return now + delay;
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
	CloverExportRef ref = clover_job_ref(run, job, true);
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
		CloverExportRef ref = clover_job_ref(run, job, true);

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
 * clover_handle_create
 *		Act on the answer to a POST that creates job's export
 *
 * Created (2xx): the export object says what next (apply_export_info).
 * 503: closed or busy, retried later or failed (closed_or_busy).  429:
 * retried after the pause.  A POST that cannot have reached Clover is
 * retried with backoff (briefly when it found no server, found_no_server);
 * anything else fails, since repeating a POST that may have created an
 * export could create a second one.
 */
void
clover_handle_create(CloverExportRun *run, CloverJob *job,
					 CloverHttpResult *res)
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
		CloverExportRef ref = clover_job_ref(run, job, true);
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
		job->due_at = rate_limited(run, job, res, true);
		job->state = JOB_WAITING;
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
		CloverExportRef ref = clover_job_ref(run, job, true);

		CloverReportApiFailure(&ref, res, job->create_failures + 1);
	}
}

/*
 * clover_handle_poll
 *		Act on the answer to a status poll of job's export
 *
 * 200: the export object says what next (apply_export_info).  429: polled
 * again after the pause.  403 or 404 for another scan's export: this
 * token may not use it, so the job makes its own.  503 "closed": polled again on the schedule
 * (export_timeout bounds it).  Failures that may pass: retried with
 * backoff up to max_retries; anything else fails.
 */
void
clover_handle_poll(CloverExportRun *run, CloverJob *job, CloverHttpResult *res)
{
	CloverExportRef ref = clover_job_ref(run, job, false);

	if (answered(res, 200))
	{
		run->rate_limit_streak = 0;
		job->poll_failures = 0;
		job->closed_polls = 0;
		apply_export_info(run, job, res, false);
	}
	else if (answered(res, 429))
	{
		job->due_at = rate_limited(run, job, res, false);
	}
	else if (job->borrowed && (answered(res, 403) || answered(res, 404)))
	{
		/* another scan's export, not this token's to use: make its own */
		elog(DEBUG1, "clover_export_fdw: export %s is not this user's to reuse (HTTP %ld)",
			 job->export_id, res->status);
		clover_job_unshare(run, job, answered(res, 404));
		restart_job(run, job);
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
	/* when Clover answered, which may be before this backend looked */
	double		now = job->answered_at > 0 ?
		Min(mono_now(), job->answered_at) : mono_now();
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
		CloverExportRef ref = clover_job_ref(run, job, false);

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
	CloverExportRef ref = clover_job_ref(run, job, is_create);
	CloverExportInfo info;
	MemoryContext old;
	int			i;

	old = MemoryContextSwitchTo(run->cxt);
	CloverReadExportObject(&ref, res, &info);
	MemoryContextSwitchTo(old);

	if (!clover_job_export_matches(run, job, &info))
	{
		restart_job(run, job);
		return;
	}
	job->export_id = info.id;
	job->status = info.status;
	job->percent = info.percent;
	ref.export_id = info.id;

	if (strcmp(info.status, "PENDING") == 0 ||
		strcmp(info.status, "IN_PROGRESS") == 0)
	{
		clover_job_report(run, job, &info, false);
		poll_again(run, job);
		return;
	}

	if (strcmp(info.status, "DONE") != 0)
	{
		/* FAILED or anything undocumented: one more export, then fail */
		bool		retrying = (job->status_retries == 0 && !job->any_handed);

		/* the scans waiting for it learn it first; a borrower makes its own */
		if (job->owner)
			clover_job_report(run, job, &info, retrying);
		else
			clover_job_unshare(run, job, false);
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
	clover_job_report(run, job, &info, false);
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
		CloverApiDone(run->token_key, run->cluster_run);
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
 * clover_handle_file
 *		Act on the answer to the download of file file_no of job's export
 *
 * 200: the body becomes the file, READY to hand out.  404/403/410: the
 * file is gone at Clover; the export is created again once if nothing of
 * it was returned, else the query fails.  Failures that may pass and 429s
 * are retried (after Retry-After, unless that reaches past busy_timeout)
 * up to max_retries times; anything else fails.
 */
void
clover_handle_file(CloverExportRun *run, CloverJob *job, int file_no,
				   CloverHttpResult *res)
{
	Download   *dl = &job->files[file_no];
	const CloverFdwOptions *opts = run->opts;
	CloverExportRef ref = clover_job_ref(run, job, false);

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
		clover_job_unshare(run, job, true);
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
