/*-------------------------------------------------------------------------
 *
 * ecommerce_pages.c
 *		  Read an e-commerce /v1 list (charges, refunds, orders) page by page
 *
 * Clover's e-commerce API lists objects 100 at a time (its hard limit),
 * with a cursor: starting_after=<id> asks for the objects after that one,
 * and has_more says whether there are any.  A scan hands this file its
 * range of created; behind CloverPagesNext the run asks for
 *
 *	GET /v1/<object>?created.gt=<ms>&created.lt=<ms>&limit=100
 *		[&starting_after=<the last id of the previous page>]
 *
 * until a page says has_more is false, and hands each page to the scan as
 * a file whose "data" array the row path splits (row_path.h).
 *
 * What Clover's page does not settle, and how it is kept anyway
 * (clover-api.md, section 4): its text says the object a cursor names is
 * itself returned, its examples suggest otherwise, and the list's order is
 * not documented.  So the run keeps the ids it has handed out and marks an
 * object seen before as repeated (the scan skips it); it never stops or
 * skips by created.  A page that says has_more but adds no new object
 * would be asked again forever: that is an error.
 *
 * Pages are sequential (each cursor comes from the page before), and at
 * most one page waits ahead of the one being converted.  Until the
 * consumer has finished a whole page, none is fetched ahead, so that a
 * LIMIT 5 makes one request; a query that wants every row (the plan says
 * so) fetches ahead from the start.
 *
 * Clover's rules: requests go through the token's limiter, shared with
 * the exports by every session (export_slots.c); a 429 pauses them all
 * for Retry-After (calling early lengthens it) until busy_timeout is
 * spent; 5xx answers and failed transfers are retried with backoff up to
 * max_retries; a body that is not a list page is asked for once more.
 * With clover_export_fdw.progress on, NOTICEs say where the scan is.
 * The token travels only in the Authorization header.  Messages are
 * clover_errors.c's.
 *
 * Resources: everything lives in the run's memory context; http.c frees
 * its libcurl objects when that context goes, and the reset callback here
 * gives back the run's claims on the shared limiter.
 *
 * IDENTIFICATION
 *		  src/ecommerce_pages.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "clover_export_fdw.h"
#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

/* largest page accepted: 100 objects of a few kB */
#define MAX_PAGE_BODY			(64 * 1024 * 1024)

/* retry backoffs, in seconds: first delay and cap */
#define PAGE_RETRY_BASE_SECS	0.5
#define PAGE_RETRY_MAX_SECS		30.0

/* a request held back by the limiter is looked at again this soon */
#define LIMITER_RECHECK_SECS	0.02

/* longest sleep when no timer is due sooner */
#define MAX_IDLE_WAIT_SECS		1.0

/* progress NOTICEs at most this often */
#define PROGRESS_INTERVAL_SECS	3.0

/*
 * An id as the set of ids seen keeps it: Clover's ids (13 characters) as
 * they are, zero-padded; a longer one as 0x01 and 120 bits of its hash
 */
#define SEEN_KEY_LEN			16

typedef struct SeenKey
{
	char		bytes[SEEN_KEY_LEN];
} SeenKey;

/* A page fetched: its body, and which of its objects came before */
typedef struct ListPage
{
	bool		valid;
	int			page_no;		/* 1-based */
	CloverHttpBuffer body;
	int			ndata;
	bool	   *repeated;
} ListPage;

struct CloverPageRun
{
	MemoryContext cxt;
	const CloverFdwOptions *opts;
	char	   *token;
	char	   *path;			/* /v1/charges */
	char	   *url;			/* base URL, path and the fixed parameters */
	CloverHttp *http;
	uint32		cluster_run;	/* its name in the cluster's shared state */
	CloverApiKey token_key;		/* its token's and app's request limiters */
	HTAB	   *seen;			/* SeenKeys of the objects handed out */

	/* the next page: asked with cursor (NULL: the first page) */
	CloverHttpRequest *request;
	char	   *cursor;
	int			next_page_no;
	bool		finished;		/* a page said has_more: false */
	double		due_at;			/* not before (a retry's backoff) */
	int			failures;		/* of this page, in a row */
	int			bad_bodies;		/* of this page */
	int			rate_limit_streak;
	double		rate_limited_since;
	double		sent_at;

	ListPage	ready;			/* fetched, not handed out yet */
	ListPage	handed;			/* being converted by the consumer */
	bool		prefetch_unlocked;
	CloverScanStats stats;

	/* progress NOTICEs */
	const int64 *rows_returned; /* the scan's count */
	int64		rows_before;	/* *rows_returned when the run began */
	double		started_at;
	double		last_notice_at;
	bool		summed_up;
};

/*
 * CloverPagesEndpoint
 *		What a scan of range asks: "GET /v1/charges created.gt=... ...
 *		limit=100", for EXPLAIN; palloc'd
 */
char *
CloverPagesEndpoint(const CloverFdwOptions *opts, const CloverRange *range)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "GET /v1/%s", opts->ecommerce_object);
	if (range->has_lo)
		appendStringInfo(&buf, " created.gt=" INT64_FORMAT,
						 CloverTimestampToUnixMsCeil(range->lo) - 1);
	appendStringInfo(&buf, " created.lt=" INT64_FORMAT " limit=%d",
					 CloverTimestampToUnixMsCeil(range->hi),
					 CLOVER_ECOMMERCE_PAGE_LIMIT);
	return buf.data;
}

/*
 * list_url
 *		The URL of the first page of range: created.gt and created.lt are
 *		strict, in whole milliseconds, so [lo, hi) of microseconds is
 *		(ceil(lo) - 1, ceil(hi)); palloc'd
 */
static char *
list_url(const CloverFdwOptions *opts, const CloverRange *range)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s/v1/%s?", opts->ecommerce_base,
					 opts->ecommerce_object);
	if (range->has_lo)
		appendStringInfo(&buf, "created.gt=" INT64_FORMAT "&",
						 CloverTimestampToUnixMsCeil(range->lo) - 1);
	appendStringInfo(&buf, "created.lt=" INT64_FORMAT "&limit=%d",
					 CloverTimestampToUnixMsCeil(range->hi),
					 CLOVER_ECOMMERCE_PAGE_LIMIT);
	return buf.data;
}

/*
 * append_encoded
 *		Append a query-string value, percent-encoding all but unreserved
 *		characters (an id from Clover's answer goes into the next URL)
 */
static void
append_encoded(StringInfo buf, const char *value)
{
	const unsigned char *p;

	for (p = (const unsigned char *) value; *p; p++)
	{
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
			*p == '.' || *p == '~')
			appendStringInfoChar(buf, (char) *p);
		else
			appendStringInfo(buf, "%%%02X", *p);
	}
}

/*
 * run_ref
 *		What a message about the run's requests names
 */
static CloverExportRef
run_ref(CloverPageRun *run)
{
	CloverExportRef ref = {0};

	ref.opts = run->opts;
	ref.token = run->token;
	ref.exports_path = run->path;
	ref.host_answered = true;
	return ref;
}

/*
 * seen_key
 *		The key of an id in the set of ids seen
 */
static SeenKey
seen_key(const char *id)
{
	SeenKey		key;
	size_t		len = strlen(id);

	memset(&key, 0, sizeof(key));
	if (len < SEEN_KEY_LEN)
		memcpy(key.bytes, id, len);
	else
	{
		uint64		h1 = hash_bytes_extended((const unsigned char *) id, len, 1);
		uint64		h2 = hash_bytes_extended((const unsigned char *) id, len, 2);

		key.bytes[0] = '\x01';
		memcpy(key.bytes + 1, &h1, sizeof(h1));
		memcpy(key.bytes + 1 + sizeof(h1), &h2, SEEN_KEY_LEN - 1 - sizeof(h1));
	}
	return key;
}

/*
 * run_reset_callback
 *		Give back the run's claims on the shared limiter when its memory
 *		context goes: on success, error or cancel alike
 */
static void
run_reset_callback(void *arg)
{
	CloverClusterReleaseRun(((CloverPageRun *) arg)->cluster_run);
}

/*
 * CloverPagesCreate
 *		Set up a run over the configured range; nothing is sent yet
 *
 * The run lives in a new child context of parent; deleting it
 * (CloverPagesDestroy, or the end of the query on error) frees everything.
 */
CloverPageRun *
CloverPagesCreate(MemoryContext parent, const CloverPagesConfig *config)
{
	MemoryContext cxt;
	MemoryContext old;
	MemoryContextCallback *cb;
	CloverPageRun *run;
	HASHCTL		hctl;

	cxt = AllocSetContextCreate(parent, "clover_export_fdw pages",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	run = palloc0(sizeof(CloverPageRun));
	run->cxt = cxt;
	run->opts = config->opts;
	run->token = pstrdup(config->access_token);
	run->path = psprintf("/v1/%s", config->opts->ecommerce_object);
	run->url = list_url(config->opts, config->range);
	run->next_page_no = 1;
	run->prefetch_unlocked = config->wants_all;
	run->rows_returned = config->rows_returned;
	run->rows_before = *config->rows_returned;
	run->started_at = run->last_notice_at = mono_now();

	hctl.keysize = sizeof(SeenKey);
	hctl.entrysize = sizeof(SeenKey);
	hctl.hcxt = cxt;
	run->seen = hash_create("clover_export_fdw ids seen", 1024, &hctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	run->cluster_run = CloverClusterNewRun();
	run->token_key = CloverTokenKey(config->opts, config->access_token);
	cb = palloc0(sizeof(MemoryContextCallback));
	cb->func = run_reset_callback;
	cb->arg = run;
	MemoryContextRegisterResetCallback(cxt, cb);

	run->http = CloverHttpCreate(cxt);
	MemoryContextSwitchTo(old);
	return run;
}

/*
 * start_request
 *		Ask for the next page
 */
static void
start_request(CloverPageRun *run, double now)
{
	CloverHttpRequestSpec spec = {0};
	StringInfoData url;

	initStringInfo(&url);
	appendStringInfoString(&url, run->url);
	if (run->cursor)
	{
		appendStringInfoString(&url, "&starting_after=");
		append_encoded(&url, run->cursor);
	}
	spec.url = url.data;
	spec.bearer_token = run->token;
	spec.max_body = MAX_PAGE_BODY;
	spec.connect_timeout_ms = run->opts->connect_timeout_ms;
	spec.stall_timeout_ms = run->opts->request_timeout_ms;
	spec.ca_file = run->opts->ca_file;
	spec.owner = run;
	run->request = CloverHttpStart(run->http, &spec);
	run->sent_at = now;
	run->stats.list_requests++;
	pfree(url.data);
	elog(DEBUG2, "clover_export_fdw: requesting page %d of %s",
		 run->next_page_no, run->path);
}

/*
 * rate_limited
 *		A 429: pause every request of the token, in every session, for
 *		Retry-After (or a backoff from 1 s); fail once busy_timeout is spent
 */
static void
rate_limited(CloverPageRun *run, CloverHttpResult *res, double now)
{
	double		timeout = run->opts->busy_timeout_ms / 1000.0;
	double		delay;

	if (run->rate_limit_streak++ == 0)
		run->rate_limited_since = now;
	delay = CloverRateLimitWait(run->rate_limited_since, timeout, now,
								run->rate_limit_streak, res->retry_after_secs,
								pg_prng_double(&pg_global_prng_state));
	if (delay < 0)
	{
		CloverExportRef ref = run_ref(run);

		CloverReportRateLimited(&ref, res, "list requests",
								run->rate_limit_streak,
								now - run->rate_limited_since);
	}
	CloverApiPause(run->token_key, now + delay);
	run->due_at = now + delay;
	run->stats.rate_limited++;
	run->stats.rate_limit_wait_secs += delay;
}

/*
 * retry_or_fail
 *		A failure that may pass: ask again after a backoff, up to
 *		max_retries times; else fail with what Clover answered
 */
static void
retry_or_fail(CloverPageRun *run, CloverHttpResult *res, double now)
{
	bool		may_pass;

	if (res->outcome == CLOVER_HTTP_ANSWERED)
		may_pass = res->status >= 500 && res->status != 501;
	else
		may_pass = res->outcome == CLOVER_HTTP_NOT_SENT ||
			res->outcome == CLOVER_HTTP_TRANSIENT;
	if (!may_pass || run->failures >= run->opts->max_retries)
	{
		CloverExportRef ref = run_ref(run);

		CloverReportListFailure(&ref, res, run->next_page_no,
								run->failures + 1);
	}
	run->failures++;
	run->stats.retries++;
	run->due_at = now + CloverBackoff(run->failures, PAGE_RETRY_BASE_SECS,
									  PAGE_RETRY_MAX_SECS,
									  pg_prng_double(&pg_global_prng_state));
}

/*
 * mark_repeats
 *		Mark the objects of a page seen before, remember the new ones, and
 *		return how many are new
 */
static int
mark_repeats(CloverPageRun *run, const CloverListPage *list, bool *repeated)
{
	int			nnew = 0;
	int			i;

	for (i = 0; i < list->ndata; i++)
	{
		SeenKey		key = seen_key(list->ids[i]);
		bool		found;

		(void) hash_search(run->seen, &key, HASH_ENTER, &found);
		repeated[i] = found;
		if (found)
			run->stats.rows_repeated++;
		else
			nnew++;
	}
	return nnew;
}

/*
 * take_page
 *		A page answered HTTP 200: check it, mark its repeats, set the next
 *		cursor, and keep it as the ready page (the body is the run's now)
 *
 * A body that is not a list page is asked for once more.
 */
static void
take_page(CloverPageRun *run, CloverHttpResult *res)
{
	CloverListPage list;
	CloverExportRef ref = run_ref(run);
	ListPage	   *page = &run->ready;
	char	   *problem;
	int			nnew;

	if (!CloverParseListPage(res->body.data, res->body.len, &list, &problem))
	{
		if (run->bad_bodies++ > 0)
			CloverReportBadPage(&ref, run->next_page_no, problem);
		elog(DEBUG1, "clover_export_fdw: page %d of %s is not a list page, asking again: %s",
			 run->next_page_no, run->path, problem);
		run->stats.retries++;
		return;
	}
	page->repeated = palloc0(sizeof(bool) * Max(list.ndata, 1));
	nnew = mark_repeats(run, &list, page->repeated);
	if (list.has_more && nnew == 0)
		CloverReportStuckList(&ref, run->next_page_no,
							  run->cursor ? run->cursor : "(none)",
							  list.ndata);

	page->valid = true;
	page->page_no = run->next_page_no++;
	page->body = res->body;
	page->ndata = list.ndata;
	memset(&res->body, 0, sizeof(res->body));
	run->stats.pages_fetched++;
	run->stats.bytes_downloaded += page->body.len;

	run->finished = !list.has_more || list.ndata == 0;
	if (!run->finished)
		run->cursor = pstrdup(list.ids[list.ndata - 1]);
	run->failures = run->bad_bodies = 0;
	run->rate_limit_streak = 0;
}

/*
 * handle_result
 *		Act on the answer to the page request
 */
static void
handle_result(CloverPageRun *run, CloverHttpResult *res)
{
	double		now = mono_now();

	run->request = NULL;
	CloverApiDone(run->token_key, run->cluster_run);
	run->stats.download_secs += res->total_secs;

	if (res->outcome == CLOVER_HTTP_ANSWERED && res->status == 200)
		take_page(run, res);
	else if (res->outcome == CLOVER_HTTP_ANSWERED && res->status == 429)
		rate_limited(run, res, now);
	else
		retry_or_fail(run, res, now);

	CloverHttpFreeResult(run->http, res);
}

/*
 * may_request
 *		May the next page be asked for now (the limiter aside)?  Only one
 *		page waits ahead, and none before the consumer wants more than its
 *		first page, unless the query wants every row.
 */
static bool
may_request(CloverPageRun *run, double now)
{
	return !run->finished && run->request == NULL && !run->ready.valid &&
		now >= run->due_at &&
		(!run->handed.valid || run->prefetch_unlocked);
}

/*
 * rows_so_far
 *		Rows the scan has returned from this run's pages
 */
static int64
rows_so_far(CloverPageRun *run)
{
	return *run->rows_returned - run->rows_before;
}

/*
 * report_progress
 *		With clover_export_fdw.progress on, say where the scan is, at most
 *		every few seconds, worded like the NOTICEs of exports
 *		(export_progress.c)
 */
static void
report_progress(CloverPageRun *run, double now)
{
	if (!clover_progress || now - run->last_notice_at < PROGRESS_INTERVAL_SECS)
		return;
	run->last_notice_at = now;
	if (run->due_at > now)
		ereport(NOTICE,
				(errmsg("clover_export_fdw: %s: page %d: waiting %s for Clover (%s); rows so far: %lld",
						run->path, run->next_page_no,
						CloverFormatDuration(run->due_at - now),
						run->rate_limit_streak ? "rate-limited" : "retrying",
						(long long) rows_so_far(run))));
	else
		ereport(NOTICE,
				(errmsg("clover_export_fdw: %s: %lld pages read; rows so far: %lld",
						run->path, (long long) run->stats.pages_fetched,
						(long long) rows_so_far(run))));
}

/*
 * report_summary
 *		With clover_export_fdw.progress on, sum the run up, once: when its
 *		last page has been read ("done"), or when the scan ends or restarts
 *		before that ("stopped")
 */
static void
report_summary(CloverPageRun *run)
{
	if (run->summed_up)
		return;
	run->summed_up = true;
	if (!clover_progress)
		return;
	ereport(NOTICE,
			(errmsg("clover_export_fdw: scan of %s %s: rows: %lld, pages: %lld, requests: %lld, repeats skipped: %lld, time: %.3f s",
					run->opts->table_name,
					run->finished && !run->ready.valid ? "done" : "stopped",
					(long long) rows_so_far(run),
					(long long) run->stats.pages_fetched,
					(long long) run->stats.list_requests,
					(long long) run->stats.rows_repeated,
					mono_now() - run->started_at)));
}

/*
 * run_step
 *		Start the request if it is due and allowed, let the transfer
 *		advance, handle its answer; never waits.  Returns true if a request
 *		finished.
 */
static bool
run_step(CloverPageRun *run)
{
	CloverHttpResult res;
	bool		progressed = false;
	double		now = mono_now();

	if (may_request(run, now) &&
		CloverApiTake(run->token_key, run->cluster_run, now))
		start_request(run, now);
	CloverHttpPerform(run->http);
	while (CloverHttpNextResult(run->http, &res))
	{
		handle_result(run, &res);
		progressed = true;
	}
	report_progress(run, mono_now());
	return progressed;
}

/*
 * next_wake
 *		Seconds until the next request is due (its backoff, or the
 *		limiter), at most MAX_IDLE_WAIT_SECS
 */
static double
next_wake(CloverPageRun *run, double now)
{
	double		due = now + MAX_IDLE_WAIT_SECS;

	if (may_request(run, run->due_at))
		due = Min(due, Max(run->due_at,
						   Max(now + LIMITER_RECHECK_SECS,
							   CloverApiReadyAt(run->token_key, now))));
	return Max(due - now, 0);
}

/*
 * wait_for_activity
 *		Sleep until the transfer can advance, the next request is due (its
 *		backoff, or the limiter), or a signal or latch arrives
 */
static void
wait_for_activity(CloverPageRun *run)
{
	double		now = mono_now();

	CloverHttpWait(run->http, (long) ceil(next_wake(run, now) * 1000));
	run->stats.clover_wait_secs += mono_now() - now;
}

/*
 * CloverPagesWaitFd
 *		A descriptor that becomes readable when the run can advance: the
 *		answer arrives or the next request is due (for an asynchronous
 *		scan, which waits in the executor's event loop), or max_wait_ms
 *		have passed
 */
int
CloverPagesWaitFd(CloverPageRun *run, long max_wait_ms)
{
	long		wait_ms = (long) ceil(next_wake(run, mono_now()) * 1000);

	return CloverHttpWaitFd(run->http, Min(wait_ms, max_wait_ms));
}

/*
 * release_handed
 *		The consumer is done with the page it was given
 */
static void
release_handed(CloverPageRun *run)
{
	if (!run->handed.valid)
		return;
	CloverHttpFreeBuffer(run->http, &run->handed.body);
	pfree(run->handed.repeated);
	run->handed.valid = false;
	/* it finished a whole page: it wants more than a peek */
	run->prefetch_unlocked = true;
}

/*
 * CloverPagesNext
 *		The next page, waiting (interruptibly) for it if wait, else PENDING
 *		when it has not come yet; DONE after the last
 *
 * The previous page's buffer is freed here.
 */
CloverFetch
CloverPagesNext(CloverPageRun *run, CloverFile *file, bool wait)
{
	MemoryContext old = MemoryContextSwitchTo(run->cxt);

	release_handed(run);
	while (!run->ready.valid)
	{
		if (run->finished && run->request == NULL)
		{
			report_summary(run);
			MemoryContextSwitchTo(old);
			return CLOVER_FETCH_DONE;
		}
		if (run_step(run))
			continue;
		if (!wait)
		{
			MemoryContextSwitchTo(old);
			return CLOVER_FETCH_PENDING;
		}
		wait_for_activity(run);
	}
	run->handed = run->ready;
	run->ready.valid = false;

	memset(file, 0, sizeof(*file));
	file->data = run->handed.body.data;
	file->len = run->handed.body.len;
	file->file_no = run->handed.page_no - 1;
	file->attempt = 1;
	file->list_path = run->path;
	file->repeated = run->handed.repeated;
	(void) run_step(run);		/* the next page, if it may go now */
	MemoryContextSwitchTo(old);
	return CLOVER_FETCH_READY;
}

/*
 * CloverPagesPump
 *		Let the transfer advance without waiting; called between rows
 */
void
CloverPagesPump(CloverPageRun *run)
{
	MemoryContext old = MemoryContextSwitchTo(run->cxt);

	(void) run_step(run);
	MemoryContextSwitchTo(old);
}

/*
 * CloverPagesGetStats
 *		What the run has done so far
 */
const CloverScanStats *
CloverPagesGetStats(CloverPageRun *run)
{
	return &run->stats;
}

/*
 * CloverPagesDestroy
 *		Abandon the request in flight and free the run (a run stopped
 *		before its last page, under a LIMIT, is summed up here)
 */
void
CloverPagesDestroy(CloverPageRun *run)
{
	report_summary(run);
	MemoryContextDelete(run->cxt);
}
