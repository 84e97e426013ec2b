/*-------------------------------------------------------------------------
 *
 * export_client.c
 *		  The Clover export client: every libcurl call of clover_export_fdw
 *
 * A scan hands this file its export windows and asks for downloaded files,
 * in window order, one at a time (CloverRunNextFile).  Behind that call one
 * libcurl multi handle runs everything at once: the POST that creates the
 * next window's export, status polls of running exports, and up to
 * max_parallel_downloads file downloads over kept-alive connections.  The
 * executor converts file k while files k+1.. arrive and the next export is
 * processed at Clover (CloverRunPump lets transfers advance between rows).
 *
 * Clover's rules, and how they are kept:
 *
 * - At most max_concurrent_exports exports run at Clover (default 1, as
 *	 Clover asks); the next window's export is created as soon as an earlier
 *	 one is DONE.  Until the consumer has finished a whole file, nothing is
 *	 prefetched (a LIMIT 10 creates one export and downloads at most two
 *	 files).
 * - 503 answers mean "outside service hours" or "busy": Clover's words
 *	 decide, the configured hours only when the words say neither.  Closed:
 *	 wait for the opening if wait_for_service allows, else fail with the
 *	 hours and the next opening.  Busy: exponential backoff with jitter, per
 *	 export, until busy_timeout is spent.  A poll answered "closed" is
 *	 polled again on the polling schedule.
 * - 429: wait at least Retry-After (calling early lengthens the penalty),
 *	 else back off from 1 s; API requests stay under a per-backend token
 *	 bucket well below Clover's 16 requests/s per token.
 * - Polls start after 50 ms (a small window is often ready at once) and
 *	 double up to 5 s: a ten-minute export costs about 125 polls.  An export
 *	 still PENDING or IN_PROGRESS after export_timeout fails the query.
 * - Transient failures (5xx, refused/reset/dropped connections, stalls of
 *	 request_timeout, truncated bodies) are retried with backoff up to
 *	 max_retries for polls and downloads; a download's 429 too, after its
 *	 Retry-After.  A POST is retried only when it cannot have created an
 *	 export (nothing was sent, or Clover refused it with 503/429).
 * - Files deleted at Clover (404/403/410): the export is created again once
 *	 if nothing of that window was returned yet; an export ending in an
 *	 unknown status likewise gets one more try.
 *
 * Secrets: the token travels only in the Authorization header of requests
 * to the API host; API requests never follow redirects, file requests carry
 * no token, and only http(s) URLs are fetched.  Messages show URLs as
 * scheme, host and path only; remote text is redacted (any 12 characters in
 * a row of the token or of a file URL's query) before it is cut short.
 *
 * Resources: curl handles and header lists are malloc'd by libcurl and are
 * tracked in the run; response buffers are palloc'd (never throwing, inside
 * callbacks) in the run's memory context.  A reset callback on that context
 * frees every curl object, so an error or a cancel anywhere leaves nothing
 * behind.  Waits use WaitLatch or a curl_multi_poll of at most 100 ms (which
 * also returns early when a signal arrives), so a cancel is seen at once.
 *
 * IDENTIFICATION
 *		  src/export_client.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <time.h>

#include <curl/curl.h>

#include "clover_export_fdw.h"
#include "common/pg_prng.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* requests to the API host in flight at once (Clover allows 5 per token) */
#define MAX_API_IN_FLIGHT		3

/* our own API request rate: well below Clover's 16 per second per token */
#define API_RATE_PER_SEC		8.0
#define API_BURST				4.0

/* receive buffer of a file download (libcurl allows up to 512 kB) */
#define FILE_READ_CHUNK			(256L * 1024L)

/* polling schedule */
#define POLL_FIRST_MS			50
#define POLL_MAX_MS				5000

/*
 * Retry backoffs: the first delay and the cap, in seconds, of each kind of
 * retry (each delay then gets jitter, see backoff_secs)
 */
#define CREATE_RETRY_BASE_SECS	0.5 /* a POST that sent nothing */
#define CREATE_RETRY_MAX_SECS	30.0
#define POLL_RETRY_BASE_SECS	0.5 /* a failed status poll */
#define POLL_RETRY_MAX_SECS		30.0
#define FILE_RETRY_BASE_SECS	0.25	/* a failed download */
#define FILE_RETRY_MAX_SECS		15.0
#define BUSY_RETRY_BASE_SECS	1.0 /* Clover busy with other exports */
#define BUSY_RETRY_MAX_SECS		30.0
#define RATE_RETRY_BASE_SECS	1.0 /* a 429 without Retry-After */
#define RATE_RETRY_MAX_SECS		60.0

/* a Retry-After is waited out a little longer: calling early is punished */
#define RETRY_AFTER_MARGIN_SECS 0.05

/*
 * Remote text in messages: how much of an answer is read (then redacted)
 * and how much of the redacted text is shown
 */
#define REMOTE_TEXT_READ		4096
#define REMOTE_TEXT_SHOWN		300

/*
 * This many characters in a row of a secret count as the secret: a message
 * never holds that much of a token or a file URL's signature
 */
#define SECRET_FRAGMENT_LEN		12
#define MAX_SECRETS				3

/* longest single sleep while transfers run (signals cut it short anyway) */
#define MAX_POLL_WAIT_MS		100
#define MAX_IDLE_WAIT_MS		1000

/* largest API answer and largest export file accepted */
#define MAX_API_BODY			(16 * 1024 * 1024)
#define MAX_FILE_BODY			((size_t) MaxAllocSize - 1)

/* progress NOTICEs at most this often */
#define PROGRESS_INTERVAL_SECS	3.0

typedef enum RequestKind
{
	REQ_CREATE,
	REQ_POLL,
	REQ_FILE
} RequestKind;

typedef enum JobState
{
	JOB_WAITING,				/* export not created yet */
	JOB_CREATING,				/* POST in flight */
	JOB_RUNNING,				/* PENDING or IN_PROGRESS at Clover */
	JOB_DONE,					/* files known */
	JOB_FINISHED				/* every file handed out */
} JobState;

typedef enum FileState
{
	FILE_NONE,					/* not requested yet */
	FILE_INFLIGHT,
	FILE_RETRY_WAIT,			/* failed; retried at retry_at */
	FILE_READY,					/* downloaded, not handed out */
	FILE_HANDED,				/* the caller is converting it */
	FILE_RELEASED
} FileState;

struct CloverJob;

typedef struct FileSlot
{
	FileState	state;
	char	   *data;			/* palloc'd in the run's context */
	size_t		len;
	size_t		cap;
	int			failures;		/* transient failures so far */
	int			redownloads;	/* re-downloads asked for by the caller */
	double		retry_at;
} FileSlot;

typedef struct CloverJob
{
	int			index;
	const CloverWindow *window;
	JobState	state;
	bool		request_in_flight;	/* create or poll */
	double		due_at;			/* next create attempt or poll */
	char	   *export_id;
	char	   *status;
	int			percent;
	int			poll_interval_ms;
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
	FileSlot   *files;
	int			next_start;		/* next file to start downloading */
	int			next_hand;		/* next file to hand out */
	bool		any_handed;
} CloverJob;

typedef struct CloverRequest
{
	dlist_node	node;			/* in run->active */
	struct CloverExportRun *run;
	RequestKind kind;
	CloverJob  *job;
	int			file_no;
	CURL	   *easy;
	struct curl_slist *headers;
	char	   *post_body;
	char	   *body;
	size_t		body_len;
	size_t		body_cap;
	size_t		body_limit;
	bool		too_large;
	bool		out_of_memory;
	long		retry_after_secs;	/* -1 if absent */
	char		errbuf[CURL_ERROR_SIZE];

	/* filled in when the transfer ends, before the handle is freed */
	long		status;			/* HTTP status, 0 if none */
	long		request_bytes;	/* bytes of request sent */
	double		total_secs;
	char	   *redirect_url;	/* Location of a 3xx, palloc'd */
} CloverRequest;

struct CloverExportRun
{
	dlist_node	live_node;		/* in live_runs */
	MemoryContext cxt;
	const CloverFdwOptions *opts;
	const char *token;
	char	   *auth_header;
	char	   *exports_url;	/* absolute */
	char	   *exports_path;	/* the same without scheme and host */
	int			njobs;
	CloverJob  *jobs;
	int			cur;			/* job whose files are handed out next */
	CURLM	   *multi;
	dlist_head	active;
	int			api_in_flight;
	int			files_outstanding;	/* in flight, waiting or ready */
	int			nbuffers;
	int64		buffer_bytes;
	bool		prefetch_unlocked;
	double		bucket_tokens;
	double		bucket_at;
	double		api_paused_until;	/* after a 429 */
	int			rate_limit_streak;
	double		rate_limited_since;
	FileSlot   *handed;
	CloverRunStats stats;
	double		last_notice_at;
	bool		waiting_notice_given;
};

/*
 * Every run of this backend.  Runs of one server share its export slots
 * (max_concurrent_exports counts the exports of a whole statement, e.g. of
 * both sides of a join), and a run waiting for a slot keeps its siblings'
 * requests moving, since only they can see their exports finish.
 */
static dlist_head live_runs = DLIST_STATIC_INIT(live_runs);

/* backend-wide counts of what runs hold, for clover_export_fdw_open_handles */
static int	live_curl_handles = 0;
static int	live_buffers = 0;
static int64 live_buffer_bytes = 0;

static double mono_now(void);
static void run_reset_callback(void *arg);
static void account_buffer(CloverExportRun *run, int count, int64 bytes);
static void free_body(CloverRequest *req);
static size_t write_callback(char *ptr, size_t size, size_t nmemb,
							 void *userdata);
static size_t header_callback(char *buffer, size_t size, size_t nitems,
							  void *userdata);
static CloverRequest *start_request(CloverExportRun *run, RequestKind kind,
									CloverJob *job, int file_no,
									const char *url, const char *post_body);
static void detach_request(CloverExportRun *run, CloverRequest *req);
static void free_request(CloverRequest *req);
static void abandon_request(CloverExportRun *run, CloverRequest *req);
static bool api_slot_available(CloverExportRun *run, double now);
static void schedule(CloverExportRun *run, double now);
static bool run_step(CloverExportRun *run);
static void wait_for_activity(CloverExportRun *run);
static void handle_completion(CloverExportRun *run, CloverRequest *req,
							  CURLcode rc);
static void handle_create(CloverExportRun *run, CloverRequest *req,
						  CURLcode rc, long status);
static void handle_poll(CloverExportRun *run, CloverRequest *req,
						CURLcode rc, long status);
static void handle_file(CloverExportRun *run, CloverRequest *req,
						CURLcode rc, long status);
static void apply_export_info(CloverExportRun *run, CloverJob *job,
							  CloverRequest *req);
static void restart_job(CloverExportRun *run, CloverJob *job);
static void poll_again(CloverExportRun *run, CloverJob *job);
static void report_progress(CloverExportRun *run, double now);

/* ----------------------------------------------------------------
 *		Small helpers
 * ----------------------------------------------------------------
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
 *		Exponential backoff with jitter: base * 2^(attempt-1), capped, then
 *		scaled by a random factor in [0.5, 1)
 */
static double
backoff_secs(int attempt, double base, double cap)
{
	double		d = base * pow(2.0, Max(attempt - 1, 0));

	if (d > cap)
		d = cap;
	return d * (0.5 + 0.5 * pg_prng_double(&pg_global_prng_state));
}

/*
 * format_duration
 *		"3 h 12 min", "5 min 3 s", "42 s"; palloc'd
 */
static char *
format_duration(double secs)
{
	int64		s = (int64) ceil(Max(secs, 0));

	if (s >= 3600)
		return psprintf(INT64_FORMAT " h " INT64_FORMAT " min",
						s / 3600, (s % 3600) / 60);
	if (s >= 60)
		return psprintf(INT64_FORMAT " min " INT64_FORMAT " s", s / 60, s % 60);
	return psprintf(INT64_FORMAT " s", s);
}

/*
 * Secrets
 *		What a message must never hold: the access token and, for a file,
 *		its URL's query string (raw and decoded), where a pre-signed URL
 *		keeps its signature
 */
typedef struct Secrets
{
	int			n;
	const char *s[MAX_SECRETS];
} Secrets;

/*
 * copy_noerr
 *		palloc'd copy of libcurl's string that never throws (NULL when out of
 *		memory), so that the caller can free libcurl's objects first
 */
static char *
copy_noerr(const char *text)
{
	size_t		len = strlen(text);
	char	   *copy = palloc_extended(len + 1, MCXT_ALLOC_NO_OOM);

	if (copy)
		memcpy(copy, text, len + 1);
	return copy;
}

/*
 * url_part
 *		One part of a URL as libcurl's URL parser sees it, palloc'd; NULL if
 *		the URL does not parse or lacks that part
 *
 * flags go to curl_url_get (CURLU_URLDECODE).  Any scheme parses, so that
 * a URL we refuse can still be shown.
 */
static char *
url_part(const char *url, CURLUPart part, unsigned int flags)
{
	CURLU	   *h = curl_url();
	char	   *value = NULL;
	char	   *result = NULL;

	if (h == NULL)
		return NULL;
	if (curl_url_set(h, CURLUPART_URL, url,
					 CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS) == CURLUE_OK &&
		curl_url_get(h, part, &value, flags) == CURLUE_OK && value != NULL)
		result = copy_noerr(value);
	curl_free(value);
	curl_url_cleanup(h);
	return result;
}

/*
 * add_url_secrets
 *		A URL's query string, raw and decoded, is secret.  A URL that does
 *		not parse is secret whole after its first '?'.
 */
static void
add_url_secrets(Secrets *secrets, const char *url)
{
	char	   *raw = url_part(url, CURLUPART_QUERY, 0);

	if (raw == NULL && strchr(url, '?') != NULL)
		raw = pstrdup(strchr(url, '?') + 1);
	if (raw == NULL || secrets->n + 2 > MAX_SECRETS)
		return;
	secrets->s[secrets->n++] = raw;
	secrets->s[secrets->n++] = url_part(url, CURLUPART_QUERY, CURLU_URLDECODE);
}

/*
 * request_secrets
 *		The secrets that text about a request (or about url) must not show
 *
 * req and url may be NULL.
 */
static Secrets
request_secrets(CloverExportRun *run, CloverRequest *req, const char *url)
{
	Secrets		secrets = {0};

	secrets.s[secrets.n++] = run->token;
	if (url == NULL && req != NULL && req->kind == REQ_FILE)
		url = req->job->urls[req->file_no];
	if (url != NULL)
		add_url_secrets(&secrets, url);
	return secrets;
}

/*
 * secret_run
 *		How many characters of text, from its start, are a stretch of one of
 *		the secrets long enough to count (SECRET_FRAGMENT_LEN, or a whole
 *		shorter secret); 0 if none
 */
static size_t
secret_run(const char *text, const Secrets *secrets)
{
	size_t		best = 0;
	int			i;

	for (i = 0; i < secrets->n; i++)
	{
		const char *secret = secrets->s[i];
		size_t		slen = secret ? strlen(secret) : 0;
		size_t		need = Min(slen, SECRET_FRAGMENT_LEN);
		size_t		j;

		for (j = 0; need > 0 && j + need <= slen; j++)
		{
			size_t		k = 0;

			while (secret[j + k] != '\0' && text[k] == secret[j + k])
				k++;
			if (k >= need && k > best)
				best = k;
		}
	}
	return best;
}

/*
 * redact
 *		Remote or libcurl text with every stretch of a secret replaced by
 *		"[redacted]", palloc'd
 *
 * Any SECRET_FRAGMENT_LEN characters in a row of a secret count as the
 * secret, so a token cut short (by Clover, or by us) is found too.
 */
static char *
redact(const char *text, const Secrets *secrets)
{
	StringInfoData buf;
	const char *p = text;

	initStringInfo(&buf);
	while (*p)
	{
		size_t		n = secret_run(p, secrets);

		if (n > 0)
		{
			appendStringInfoString(&buf, "[redacted]");
			p += n;
		}
		else
			appendStringInfoChar(&buf, *p++);
	}
	return buf.data;
}

/*
 * holds_secret
 *		Does text hold a stretch of a secret?
 */
static bool
holds_secret(const char *text, const Secrets *secrets)
{
	return strcmp(redact(text, secrets), text) != 0;
}

/*
 * shown_text
 *		Remote text for a message: redacted first, then cut to
 *		REMOTE_TEXT_SHOWN bytes (cutting first could leave most of a secret
 *		that straddles the cut), without a final period; palloc'd
 */
static char *
shown_text(const char *text, const Secrets *secrets)
{
	char	   *shown = redact(text, secrets);
	int			len = strlen(shown);

	if (len > REMOTE_TEXT_SHOWN)
	{
		shown[REMOTE_TEXT_SHOWN] = '\0';
		return psprintf("%s...", shown);
	}
	while (len > 0 && (shown[len - 1] == '.' || shown[len - 1] == ' '))
		shown[--len] = '\0';
	return shown;
}

/*
 * url_for_display
 *		A URL as messages show it: scheme, host, port and path, never its
 *		credentials, query string or fragment, and redacted; palloc'd
 *
 * A pre-signed file URL carries its signature in the query string, which
 * is as secret as a token.  The path ends at the first '?' or '#', even
 * when the URL has no path ("https://host?X-Amz-Credential=a/b/c").
 */
static char *
url_for_display(CloverExportRun *run, const char *url)
{
	Secrets		secrets = request_secrets(run, NULL, url);
	char	   *scheme = url_part(url, CURLUPART_SCHEME, 0);
	char	   *host = url_part(url, CURLUPART_HOST, 0);
	char	   *port = url_part(url, CURLUPART_PORT, 0);
	char	   *path = url_part(url, CURLUPART_PATH, 0);

	if (scheme == NULL || host == NULL)
		return pstrdup("(a URL that cannot be parsed)");
	return redact(psprintf("%s://%s%s%s%s", scheme, host,
						   port ? ":" : "", port ? port : "",
						   path ? path : "/"), &secrets);
}

/*
 * url_path
 *		The path of a file URL, without host, query string or fragment,
 *		redacted, palloc'd (file hosts change; messages name the file by
 *		its path)
 */
static char *
url_path(CloverExportRun *run, const char *url)
{
	Secrets		secrets = request_secrets(run, NULL, url);
	char	   *path = url_part(url, CURLUPART_PATH, 0);

	return redact(path ? path : "/", &secrets);
}

static char *
window_text(const CloverJob *job)
{
	return psprintf("%s to %s", CloverFormatUtc(job->window->lo),
					CloverFormatUtc(job->window->hi));
}

/*
 * answer_text
 *		What Clover answered, for an errdetail: its message, redacted, then
 *		cut short, without a final period
 */
static char *
answer_text(CloverExportRun *run, CloverRequest *req)
{
	Secrets		secrets = request_secrets(run, req, NULL);

	return shown_text(CloverErrorBodyMessage(req->body ? req->body : "",
											 req->body_len, REMOTE_TEXT_READ),
					  &secrets);
}

/*
 * failure_text
 *		Why a request failed, for an errdetail: the HTTP status and Clover's
 *		message, or libcurl's description of the network error; without a
 *		final period
 */
static char *
failure_text(CloverExportRun *run, CloverRequest *req, CURLcode rc,
			 long status)
{
	Secrets		secrets = request_secrets(run, req, NULL);

	if (req->too_large)
		return psprintf("an answer of more than %zu bytes", req->body_limit);
	if (req->out_of_memory)
		return pstrdup("an answer too large for the available memory");
	if (rc == CURLE_OK)
		return psprintf("HTTP %ld: %s", status, answer_text(run, req));
	return shown_text(req->errbuf[0] ? req->errbuf : curl_easy_strerror(rc),
					  &secrets);
}

/* ----------------------------------------------------------------
 *		Resource tracking
 * ----------------------------------------------------------------
 */

/*
 * CloverClientInit
 *		Once per backend, from _PG_init
 */
void
CloverClientInit(void)
{
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not initialize libcurl")));
}

/*
 * CloverOpenHandles
 *		What all runs of this backend hold right now
 */
void
CloverOpenHandles(int *handles, int *buffers, int64 *bytes)
{
	*handles = live_curl_handles;
	*buffers = live_buffers;
	*bytes = live_buffer_bytes;
}

static void
account_buffer(CloverExportRun *run, int count, int64 bytes)
{
	run->nbuffers += count;
	run->buffer_bytes += bytes;
	live_buffers += count;
	live_buffer_bytes += bytes;
}

/*
 * run_reset_callback
 *		Free every libcurl object of a run; called when its memory context
 *		goes away, on success, error or cancel alike
 *
 * Must not throw and must not touch the network.  The palloc'd buffers go
 * with the context; only the accounting is fixed here.
 */
static void
run_reset_callback(void *arg)
{
	CloverExportRun *run = (CloverExportRun *) arg;

	dlist_delete(&run->live_node);
	while (!dlist_is_empty(&run->active))
	{
		CloverRequest *req = dlist_container(CloverRequest, node,
											 dlist_pop_head_node(&run->active));

		if (run->multi)
			curl_multi_remove_handle(run->multi, req->easy);
		curl_easy_cleanup(req->easy);
		curl_slist_free_all(req->headers);
		live_curl_handles--;
	}
	if (run->multi)
	{
		curl_multi_cleanup(run->multi);
		run->multi = NULL;
		live_curl_handles--;
	}
	live_buffers -= run->nbuffers;
	live_buffer_bytes -= run->buffer_bytes;
	run->nbuffers = 0;
	run->buffer_bytes = 0;
}

static void
free_body(CloverRequest *req)
{
	if (req->body)
	{
		account_buffer(req->run, -1, -(int64) req->body_cap);
		pfree(req->body);
		req->body = NULL;
		req->body_len = req->body_cap = 0;
	}
}

static void
free_slot_data(CloverExportRun *run, FileSlot *slot)
{
	if (slot->data)
	{
		account_buffer(run, -1, -(int64) slot->cap);
		pfree(slot->data);
		slot->data = NULL;
		slot->len = slot->cap = 0;
	}
}

/* ----------------------------------------------------------------
 *		libcurl callbacks: record, never throw
 * ----------------------------------------------------------------
 */

/*
 * write_callback
 *		Append received bytes to the request's buffer
 *
 * Runs inside curl_multi_perform: it must not ereport, so it allocates with
 * MCXT_ALLOC_NO_OOM and returns 0 (aborting the transfer) on failure; the
 * completion handler reports the reason.
 */
static size_t
write_callback(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	CloverRequest *req = (CloverRequest *) userdata;
	size_t		n = size * nmemb;

	if (n > req->body_limit - req->body_len)
	{
		req->too_large = true;
		return 0;
	}
	if (req->body_len + n + 1 > req->body_cap)
	{
		size_t		newcap = Max(req->body_cap * 2, 16384);
		curl_off_t	length;
		char	   *newbuf;

		/* the first write knows the Content-Length: allocate it at once */
		if (req->body_cap == 0 &&
			curl_easy_getinfo(req->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
							  &length) == CURLE_OK &&
			length > 0 && (size_t) length <= req->body_limit)
			newcap = Max(newcap, (size_t) length + 1);
		while (newcap < req->body_len + n + 1)
			newcap *= 2;
		newcap = Min(newcap, req->body_limit + 1);

		newbuf = MemoryContextAllocExtended(req->run->cxt, newcap,
											MCXT_ALLOC_NO_OOM);
		if (newbuf == NULL)
		{
			req->out_of_memory = true;
			return 0;
		}
		if (req->body)
		{
			memcpy(newbuf, req->body, req->body_len);
			pfree(req->body);
			account_buffer(req->run, 0, (int64) newcap - (int64) req->body_cap);
		}
		else
			account_buffer(req->run, 1, (int64) newcap);
		req->body = newbuf;
		req->body_cap = newcap;
	}
	memcpy(req->body + req->body_len, ptr, n);
	req->body_len += n;
	req->body[req->body_len] = '\0';
	return n;
}

/*
 * header_callback
 *		Remember Retry-After (whole seconds); forget it on a new response
 */
static size_t
header_callback(char *buffer, size_t size, size_t nitems, void *userdata)
{
	CloverRequest *req = (CloverRequest *) userdata;
	size_t		n = size * nitems;

	if (n >= 5 && strncmp(buffer, "HTTP/", 5) == 0)
		req->retry_after_secs = -1;
	else if (n > 12 && pg_strncasecmp(buffer, "Retry-After:", 12) == 0)
	{
		char		digits[16];
		size_t		i = 12,
					j = 0;

		while (i < n && (buffer[i] == ' ' || buffer[i] == '\t'))
			i++;
		while (i < n && j < sizeof(digits) - 1 &&
			   buffer[i] >= '0' && buffer[i] <= '9')
			digits[j++] = buffer[i++];
		digits[j] = '\0';
		if (j > 0 && j < 9)
			req->retry_after_secs = atol(digits);
	}
	return n;
}

/* ----------------------------------------------------------------
 *		Requests
 * ----------------------------------------------------------------
 */

#define SETOPT(easy, opt, val) \
	do { \
		if (curl_easy_setopt((easy), (opt), (val)) != CURLE_OK) \
			elog(ERROR, "could not set libcurl option %s", #opt); \
	} while (0)

/*
 * start_request
 *		Create an easy handle for one request and add it to the multi handle
 *
 * The request is tracked in run->active before anything can fail, so the
 * reset callback frees it whatever happens next.
 */
static CloverRequest *
start_request(CloverExportRun *run, RequestKind kind, CloverJob *job,
			  int file_no, const char *url, const char *post_body)
{
	const CloverFdwOptions *opts = run->opts;
	CloverRequest *req;
	CURL	   *easy;
	CURLMcode	mrc;

	req = MemoryContextAllocZero(run->cxt, sizeof(CloverRequest));
	req->run = run;
	req->kind = kind;
	req->job = job;
	req->file_no = file_no;
	req->retry_after_secs = -1;
	req->body_limit = (kind == REQ_FILE) ? MAX_FILE_BODY : MAX_API_BODY;

	easy = curl_easy_init();
	if (easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not create a libcurl handle.")));
	req->easy = easy;
	live_curl_handles++;
	dlist_push_tail(&run->active, &req->node);

	SETOPT(easy, CURLOPT_URL, url);
	SETOPT(easy, CURLOPT_PRIVATE, req);
	SETOPT(easy, CURLOPT_NOSIGNAL, 1L);
	SETOPT(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(easy, CURLOPT_ERRORBUFFER, req->errbuf);
	SETOPT(easy, CURLOPT_WRITEFUNCTION, write_callback);
	SETOPT(easy, CURLOPT_WRITEDATA, req);
	SETOPT(easy, CURLOPT_HEADERFUNCTION, header_callback);
	SETOPT(easy, CURLOPT_HEADERDATA, req);
	SETOPT(easy, CURLOPT_USERAGENT, "clover_export_fdw/1.0");
	SETOPT(easy, CURLOPT_ACCEPT_ENCODING, "");
	SETOPT(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) opts->connect_timeout_ms);
	/* a stall: less than one byte per second for request_timeout */
	SETOPT(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	SETOPT(easy, CURLOPT_LOW_SPEED_TIME,
		   (long) Max(1, ((int64) opts->request_timeout_ms + 999) / 1000));
	SETOPT(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (opts->ca_file)
		SETOPT(easy, CURLOPT_CAINFO, opts->ca_file);

	if (kind == REQ_FILE)
	{
		/* pre-signed URLs: no token, redirects allowed but only to http(s) */
		SETOPT(easy, CURLOPT_FOLLOWLOCATION, 1L);
		SETOPT(easy, CURLOPT_MAXREDIRS, 5L);
		SETOPT(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
		/* megabyte files: read them in large chunks, not libcurl's 16 kB */
		SETOPT(easy, CURLOPT_BUFFERSIZE, FILE_READ_CHUNK);
	}
	else
	{
		struct curl_slist *h;

		/* the token goes to the API host only: never follow a redirect */
		SETOPT(easy, CURLOPT_FOLLOWLOCATION, 0L);
		h = curl_slist_append(NULL, run->auth_header);
		if (h == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		req->headers = h;
		h = curl_slist_append(req->headers, "Accept: application/json");
		if (h == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		if (post_body)
		{
			h = curl_slist_append(req->headers, "Content-Type: application/json");
			if (h == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
						 errmsg("out of memory")));
			req->post_body = MemoryContextStrdup(run->cxt, post_body);
			SETOPT(easy, CURLOPT_POSTFIELDS, req->post_body);
			SETOPT(easy, CURLOPT_POSTFIELDSIZE, (long) strlen(req->post_body));
		}
		SETOPT(easy, CURLOPT_HTTPHEADER, req->headers);
		run->api_in_flight++;
	}

	mrc = curl_multi_add_handle(run->multi, easy);
	if (mrc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not start a request to Clover"),
				 errdetail("libcurl: %s.", curl_multi_strerror(mrc))));
	return req;
}

/*
 * detach_request
 *		Take a request out of the multi handle and free its curl objects;
 *		its response buffer stays until free_request
 */
static void
detach_request(CloverExportRun *run, CloverRequest *req)
{
	dlist_delete(&req->node);
	curl_multi_remove_handle(run->multi, req->easy);
	curl_easy_cleanup(req->easy);
	req->easy = NULL;
	curl_slist_free_all(req->headers);
	req->headers = NULL;
	live_curl_handles--;
	if (req->kind != REQ_FILE)
		run->api_in_flight--;
}

/*
 * free_request
 *		Free a detached request and its response buffer, unless the caller
 *		took the buffer (set req->body to NULL)
 */
static void
free_request(CloverRequest *req)
{
	free_body(req);
	if (req->post_body)
		pfree(req->post_body);
	if (req->redirect_url)
		pfree(req->redirect_url);
	pfree(req);
}

/*
 * abandon_request
 *		Stop a request in flight and forget it
 */
static void
abandon_request(CloverExportRun *run, CloverRequest *req)
{
	detach_request(run, req);
	free_request(req);
}

/*
 * api_slot_available
 *		May another request go to the API host now?  Consumes a token of the
 *		rate limiter if so.
 */
static bool
api_slot_available(CloverExportRun *run, double now)
{
	if (run->api_in_flight >= MAX_API_IN_FLIGHT || now < run->api_paused_until)
		return false;
	run->bucket_tokens = Min(API_BURST, run->bucket_tokens +
							 (now - run->bucket_at) * API_RATE_PER_SEC);
	run->bucket_at = now;
	if (run->bucket_tokens < 1.0)
		return false;
	run->bucket_tokens -= 1.0;
	return true;
}

static void
start_create(CloverExportRun *run, CloverJob *job)
{
	char	   *body = CloverBuildExportRequest(run->opts->export_type,
												job->window->start_ms,
												job->window->end_ms);

	elog(DEBUG1, "clover_export_fdw: creating %s export for window %d of %d (%s)",
		 CloverExportTypeName(run->opts->export_type), job->index + 1,
		 run->njobs, window_text(job));
	start_request(run, REQ_CREATE, job, -1, run->exports_url, body);
	pfree(body);
	job->state = JOB_CREATING;
	job->request_in_flight = true;
}

static void
start_poll(CloverExportRun *run, CloverJob *job)
{
	char	   *url = psprintf("%s/%s", run->exports_url, job->export_id);

	start_request(run, REQ_POLL, job, -1, url, NULL);
	pfree(url);
	job->request_in_flight = true;
	run->stats.polls++;
}

static void
start_file(CloverExportRun *run, CloverJob *job, int file_no)
{
	elog(DEBUG2, "clover_export_fdw: downloading file %d of %d of export %s",
		 file_no + 1, job->nfiles, job->export_id);
	start_request(run, REQ_FILE, job, file_no, job->urls[file_no], NULL);
	job->files[file_no].state = FILE_INFLIGHT;
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
 * Exports are created in window order; at most max_concurrent_exports run
 * at Clover, counting every run of the same server in this backend; the
 * ones after the current window only once the consumer has shown it wants
 * more than a first peek, and at most max_concurrent_exports windows ahead.
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
	if (running >= run->opts->max_concurrent_exports)
		return NULL;
	for (j = run->cur; j < run->njobs; j++)
	{
		if (run->jobs[j].state != JOB_WAITING)
			continue;
		if ((j > run->cur && !run->prefetch_unlocked) ||
			j - run->cur > run->opts->max_concurrent_exports)
			return NULL;
		return &run->jobs[j];
	}
	return NULL;
}

/*
 * schedule
 *		Start every request that is due and allowed
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
		   now >= job->due_at && api_slot_available(run, now))
		start_create(run, job);

	/* polls of running exports */
	for (j = run->cur; j < run->njobs; j++)
	{
		CloverJob  *job = &run->jobs[j];

		if (job->state == JOB_RUNNING && !job->request_in_flight &&
			now >= job->due_at && api_slot_available(run, now))
			start_poll(run, job);
	}

	/* downloads, in order, a bounded number outstanding */
	limit = run->prefetch_unlocked ? opts->max_parallel_downloads : 1;
	for (j = run->cur; j < run->njobs; j++)
	{
		CloverJob  *job = &run->jobs[j];
		int			f;

		if (job->state != JOB_DONE)
			break;
		for (f = job->next_hand; f < job->next_start; f++)
		{
			FileSlot   *slot = &job->files[f];

			if (slot->state == FILE_RETRY_WAIT && now >= slot->retry_at)
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
 *		Seconds until the earliest timer of the run (the caller caps it)
 *
 * A request that is due but held back by the API rate limiter counts as
 * due very soon; one held back by Clover's rules (concurrency, prefetch)
 * waits for the event that releases it.
 */
static double
next_due(CloverExportRun *run, double now)
{
	double		due = now + MAX_IDLE_WAIT_MS / 1000.0;
	double		soon = Max(now + 0.02, run->api_paused_until);
	CloverJob  *creatable = next_creatable(run);
	int			j;

	if (creatable)
		due = Min(due, Max(creatable->due_at, soon));
	for (j = run->cur; j < run->njobs; j++)
	{
		CloverJob  *job = &run->jobs[j];
		int			f;

		if (job->state == JOB_RUNNING && !job->request_in_flight)
			due = Min(due, Max(job->due_at, soon));
		if (job->state == JOB_DONE)
		{
			for (f = job->next_hand; f < job->next_start; f++)
			{
				if (job->files[f].state == FILE_RETRY_WAIT)
					due = Min(due, Max(job->files[f].retry_at, now));
			}
		}
	}
	return due - now;
}

/*
 * run_step
 *		Start what is due, let transfers advance, handle what finished;
 *		never waits.  Returns true if any request finished.
 */
static bool
run_step(CloverExportRun *run)
{
	int			still_running;
	CURLMcode	mrc;
	CURLMsg    *msg;
	int			left;
	bool		progressed = false;

	schedule(run, mono_now());

	mrc = curl_multi_perform(run->multi, &still_running);
	if (mrc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not run requests to Clover"),
				 errdetail("libcurl: %s.", curl_multi_strerror(mrc))));

	while ((msg = curl_multi_info_read(run->multi, &left)) != NULL)
	{
		CloverRequest *req;

		if (msg->msg != CURLMSG_DONE)
			continue;
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
							  (char **) &req) != CURLE_OK || req == NULL)
			elog(ERROR, "libcurl returned a transfer that is not ours");
		handle_completion(run, req, msg->data.result);
		progressed = true;
	}
	report_progress(run, mono_now());
	return progressed;
}

/*
 * wait_for_activity
 *		Sleep until a transfer can advance, a timer is due, or a signal or
 *		latch arrives; at most MAX_POLL_WAIT_MS while transfers run
 *
 * curl_multi_poll returns early when a signal interrupts it (cancel,
 * statement_timeout), and the 100 ms cap bounds the rare case of a signal
 * arriving just before it sleeps.  Without transfers we sleep on the latch,
 * which a cancel sets.  The other runs of this backend advance first.
 */
static void
wait_for_activity(CloverExportRun *run)
{
	double		start = mono_now();
	double		due;
	long		timeout_ms;
	dlist_iter	iter;

	/* sibling runs (another table of the statement) may hold our slots */
	dlist_foreach(iter, &live_runs)
	{
		CloverExportRun *r = dlist_container(CloverExportRun, live_node, iter.cur);

		if (r != run)
			(void) run_step(r);
	}
	due = next_due(run, start);

	if (!dlist_is_empty(&run->active))
	{
		long		curl_timeout = -1;
		int			numfds;

		timeout_ms = (long) ceil(due * 1000);
		timeout_ms = Max(0, Min(timeout_ms, MAX_POLL_WAIT_MS));
		if (curl_multi_timeout(run->multi, &curl_timeout) == CURLM_OK &&
			curl_timeout >= 0 && curl_timeout < timeout_ms)
			timeout_ms = curl_timeout;
		pgstat_report_wait_start(PG_WAIT_EXTENSION);
		(void) curl_multi_poll(run->multi, NULL, 0, (int) timeout_ms, &numfds);
		pgstat_report_wait_end();
	}
	else
	{
		timeout_ms = (long) ceil(due * 1000);
		timeout_ms = Max(1, Min(timeout_ms, MAX_IDLE_WAIT_MS));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	CHECK_FOR_INTERRUPTS();
	run->stats.clover_wait_secs += mono_now() - start;
}

/* ----------------------------------------------------------------
 *		Completions
 * ----------------------------------------------------------------
 */

static void
handle_completion(CloverExportRun *run, CloverRequest *req, CURLcode rc)
{
	char	   *location = NULL;

	/* what the handlers need of the handle, before it is freed */
	(void) curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &req->status);
	(void) curl_easy_getinfo(req->easy, CURLINFO_REQUEST_SIZE,
							 &req->request_bytes);
	(void) curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME, &req->total_secs);
	if (curl_easy_getinfo(req->easy, CURLINFO_REDIRECT_URL, &location) == CURLE_OK &&
		location != NULL)
		req->redirect_url = MemoryContextStrdup(run->cxt, location);
	detach_request(run, req);
	if (req->kind != REQ_FILE)
		req->job->request_in_flight = false;

	switch (req->kind)
	{
		case REQ_CREATE:
			handle_create(run, req, rc, req->status);
			break;
		case REQ_POLL:
			handle_poll(run, req, rc, req->status);
			break;
		case REQ_FILE:
			handle_file(run, req, rc, req->status);
			break;
	}
	free_request(req);
}

/*
 * is_transient
 *		Is this failure worth retrying for an idempotent request?
 */
static bool
is_transient(CloverRequest *req, CURLcode rc, long status)
{
	if (req->too_large || req->out_of_memory)
		return false;
	if (rc != CURLE_OK)
	{
		switch (rc)
		{
			case CURLE_COULDNT_RESOLVE_HOST:
			case CURLE_COULDNT_CONNECT:
			case CURLE_OPERATION_TIMEDOUT:
			case CURLE_SEND_ERROR:
			case CURLE_RECV_ERROR:
			case CURLE_PARTIAL_FILE:
			case CURLE_GOT_NOTHING:
			case CURLE_HTTP2:
			case CURLE_HTTP2_STREAM:
			case CURLE_SSL_CONNECT_ERROR:
			case CURLE_BAD_CONTENT_ENCODING:
				return true;
			default:
				return false;
		}
	}
	return status >= 500 && status != 501;
}

/*
 * deadline_wait
 *		The next wait of a retry loop that may last timeout_secs from since:
 *		delay, or what is left of the time if that is less (a last, shorter
 *		wait); -1 once the time is spent
 */
static double
deadline_wait(double since, double timeout_secs, double now, double delay)
{
	double		left = since + timeout_secs - now;

	if (left <= 0)
		return -1;
	return Min(delay, left);
}

/*
 * rate_limited
 *		Handle a 429: pause every API request for Retry-After (or a backoff
 *		from 1 s); fail once busy_timeout is spent
 *
 * A Retry-After that reaches past busy_timeout fails at once: calling
 * before it expires only lengthens Clover's penalty.
 */
static void
rate_limited(CloverExportRun *run, CloverRequest *req, const char *what)
{
	double		now = mono_now();
	double		timeout = run->opts->busy_timeout_ms / 1000.0;
	double		delay;

	if (run->rate_limit_streak == 0)
		run->rate_limited_since = now;
	run->rate_limit_streak++;
	if (req->retry_after_secs >= 0)
	{
		delay = (double) req->retry_after_secs + RETRY_AFTER_MARGIN_SECS;
		if (deadline_wait(run->rate_limited_since, timeout, now, delay) < delay)
			delay = -1;
	}
	else
		delay = deadline_wait(run->rate_limited_since, timeout, now,
							  backoff_secs(run->rate_limit_streak,
										   RATE_RETRY_BASE_SECS,
										   RATE_RETRY_MAX_SECS));
	if (delay < 0)
	{
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
				 errmsg("Clover kept rate-limiting %s", what),
				 errdetail("Clover answered HTTP 429 %d times in a row over %s%s: %s.",
						   run->rate_limit_streak,
						   format_duration(now - run->rate_limited_since),
						   req->retry_after_secs >= 0 ?
						   psprintf(", the last time with Retry-After: %ld",
									req->retry_after_secs) : "",
						   answer_text(run, req)),
				 errhint("Other programs may be using the same token or app. Try again later, or raise the server option busy_timeout (now %s).",
						 format_duration(timeout))));
	}
	run->api_paused_until = Max(run->api_paused_until, now + delay);
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
	bool		calendar_open = CloverServiceOpenAt(&opts->hours, wall);
	TimestampTz opening = CloverNextOpening(&opts->hours, wall);
	double		until_open;

	/* the calendar disagrees with Clover: look again in a minute */
	if (opening <= wall)
		opening = wall + 60 * USECS_PER_SEC;
	until_open = (opening - wall) / 1e6;
	if (job->closed_since == 0)
		job->closed_since = now;

	if (opts->wait_for_service_ms > 0 && opening != DT_NOEND &&
		now + until_open - job->closed_since <= opts->wait_for_service_ms / 1000.0)
	{
		ereport(NOTICE,
				(errmsg("Clover's export service is closed; waiting until %s (%s)",
						CloverFormatUtc(opening), format_duration(until_open)),
				 errdetail("Clover answered HTTP 503: %s.", message),
				 errhint("Service hours (UTC): %s.",
						 CloverFormatServiceHours(&opts->hours))));
		job->due_at = now + until_open + 1.0 +
			5.0 * pg_prng_double(&pg_global_prng_state);
		job->state = JOB_WAITING;
		run->stats.closed_waits++;
		run->stats.closed_wait_secs += until_open;
		return;
	}

	CHECK_FOR_INTERRUPTS();
	if (calendar_open)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
				 errmsg("Clover's export service is closed"),
				 errdetail("Clover answered HTTP 503 to the %s export for window %s: %s.",
						   CloverExportTypeName(opts->export_type),
						   window_text(job), message),
				 errhint("The configured service hours (%s, UTC) say it is open now; check the server option service_hours.",
						 CloverFormatServiceHours(&opts->hours))));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
			 errmsg("Clover's export service is closed"),
			 errdetail("Clover answered HTTP 503 to the %s export for window %s: %s.",
					   CloverExportTypeName(opts->export_type),
					   window_text(job), message),
			 opening == DT_NOEND ?
			 errhint("The service hours (%s, UTC) have no open period.",
					 CloverFormatServiceHours(&opts->hours)) :
			 errhint("Clover accepts exports during %s (UTC); it next opens at %s, in %s. Run the query then, or set the server option wait_for_service (for example '%d hours') to wait for the opening.",
					 CloverFormatServiceHours(&opts->hours),
					 CloverFormatUtc(opening), format_duration(until_open),
					 (int) ceil(until_open / 3600.0))));
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
	const CloverFdwOptions *opts = run->opts;
	double		timeout = opts->busy_timeout_ms / 1000.0;
	double		delay;

	if (job->busy_since == 0)
	{
		job->busy_since = now;
		job->busy_answers = 0;
	}
	job->busy_answers++;
	delay = deadline_wait(job->busy_since, timeout, now,
						  backoff_secs(job->busy_answers, BUSY_RETRY_BASE_SECS,
									   BUSY_RETRY_MAX_SECS));
	if (delay < 0)
	{
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
				 errmsg("Clover is busy with other exports"),
				 errdetail("Clover answered HTTP 503 %d times over %s to the %s export for window %s: %s.",
						   job->busy_answers,
						   format_duration(now - job->busy_since),
						   CloverExportTypeName(opts->export_type),
						   window_text(job), message),
				 errhint("Clover runs only a few exports at a time per server. Try again later, or raise the server option busy_timeout (now %s).",
						 format_duration(timeout))));
	}
	job->due_at = now + delay;
	job->state = JOB_WAITING;
	run->stats.busy_waits++;
	run->stats.busy_wait_secs += delay;
	elog(DEBUG1, "clover_export_fdw: Clover busy, retrying window %d in %.2f s",
		 job->index + 1, delay);
}

/*
 * closed_or_busy
 *		Classify a 503 answer to a POST and schedule the retry, or fail
 */
static void
closed_or_busy(CloverExportRun *run, CloverJob *job, CloverRequest *req)
{
	char	   *message = answer_text(run, req);
	TimestampTz wall = GetCurrentTimestamp();

	if (says_closed(run->opts, message, wall))
		wait_or_fail_closed(run, job, message, wall, mono_now());
	else
		wait_or_fail_busy(run, job, message, mono_now());
}

/*
 * report_api_error
 *		Fail with what Clover answered to a create or poll request
 */
static void
report_api_error(CloverExportRun *run, CloverJob *job, CloverRequest *req,
				 CURLcode rc, long status, int attempts)
{
	const CloverFdwOptions *opts = run->opts;
	const char *request = (req->kind == REQ_CREATE) ?
		psprintf("POST %s", run->exports_path) :
		psprintf("GET %s/%s", run->exports_path, job->export_id);
	char	   *why = failure_text(run, req, rc, status);
	char	   *tries = attempts > 1 ? psprintf(" (after %d attempts)", attempts) : "";

	CHECK_FOR_INTERRUPTS();

	if (rc == CURLE_OK && status == 401)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("Clover refused the access token for merchant \"%s\"",
						opts->merchant_id),
				 errdetail("%s answered %s.", request, why),
				 errhint("HTTP 401 means an invalid or expired token, or an app that lacks permission for this merchant's data (Clover grants the export API per app). Check the access_token of your user mapping for server \"%s\".",
						 opts->server_name)));
	if (rc == CURLE_OK && status == 404 && req->kind == REQ_CREATE)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_TABLE_NOT_FOUND),
				 errmsg("Clover does not know merchant \"%s\"",
						opts->merchant_id),
				 errdetail("%s answered %s.", request, why),
				 errhint("A merchant exists only on its region's host (region \"%s\"%s): check the options merchant_id and region of server \"%s\".",
						 opts->region,
						 opts->api_base_overridden ? ", with base_url set" : "",
						 opts->server_name)));
	if (rc == CURLE_OK && status >= 300 && status < 400)
	{
		const char *location = req->redirect_url;

		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
				 errmsg("Clover answered with a redirect"),
				 errdetail("%s answered HTTP %ld to %s.", request, status,
						   location ? url_for_display(run, location) : "(no location)"),
				 errhint("API requests carry the access token and are never redirected; check the option base_url of server \"%s\".",
						 opts->server_name)));
	}
	if (req->kind == REQ_CREATE)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
				 errmsg("could not create a Clover export"),
				 errdetail("%s for the %s window %s answered %s%s.",
						   request, CloverExportTypeName(opts->export_type),
						   window_text(job), why, tries),
				 (rc == CURLE_OK && status < 500) ?
				 errhint("Clover rejected the request; its message says why.") :
				 errhint("The request may have reached Clover, so it was not repeated (it could create a second export). Run the query again.")));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
			 errmsg("could not get the status of Clover export \"%s\"",
					job->export_id),
			 errdetail("%s for window %s answered %s%s.", request,
					   window_text(job), why, tries),
			 errhint("Check the server's connection to Clover, or raise the server option max_retries (now %d).",
					 opts->max_retries)));
}

/*
 * post_not_sent
 *		Can this failed POST not have created an export?
 */
static bool
post_not_sent(CloverRequest *req, CURLcode rc)
{
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
		rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_SSL_CONNECT_ERROR)
		return true;
	return req->request_bytes == 0;
}

static void
handle_create(CloverExportRun *run, CloverRequest *req, CURLcode rc,
			  long status)
{
	CloverJob  *job = req->job;

	if (rc == CURLE_OK && status >= 200 && status < 300)
	{
		run->rate_limit_streak = 0;
		job->busy_since = 0;
		job->busy_answers = 0;
		job->closed_since = 0;
		job->create_failures = 0;
		run->stats.exports_created++;
		apply_export_info(run, job, req);
	}
	else if (rc == CURLE_OK && status == 503)
		closed_or_busy(run, job, req);
	else if (rc == CURLE_OK && status == 429)
	{
		rate_limited(run, req, "export requests");
		job->state = JOB_WAITING;
		job->due_at = run->api_paused_until;
	}
	else if (rc != CURLE_OK && post_not_sent(req, rc) &&
			 job->create_failures < run->opts->max_retries)
	{
		job->create_failures++;
		run->stats.retries++;
		job->state = JOB_WAITING;
		job->due_at = mono_now() + backoff_secs(job->create_failures,
												CREATE_RETRY_BASE_SECS,
												CREATE_RETRY_MAX_SECS);
	}
	else
		report_api_error(run, job, req, rc, status, job->create_failures + 1);
}

static void
handle_poll(CloverExportRun *run, CloverRequest *req, CURLcode rc, long status)
{
	CloverJob  *job = req->job;

	if (rc == CURLE_OK && status == 200)
	{
		run->rate_limit_streak = 0;
		job->poll_failures = 0;
		job->closed_polls = 0;
		apply_export_info(run, job, req);
	}
	else if (rc == CURLE_OK && status == 429)
	{
		rate_limited(run, req, "status polls");
		job->due_at = run->api_paused_until;
	}
	else if (rc == CURLE_OK && status == 503 &&
			 says_closed(run->opts, answer_text(run, req), GetCurrentTimestamp()))
	{
		/* closed is no failure of the export: export_timeout bounds it */
		job->closed_polls++;
		run->stats.retries++;
		poll_again(run, job);
	}
	else if (is_transient(req, rc, status) &&
			 job->poll_failures < run->opts->max_retries)
	{
		job->poll_failures++;
		run->stats.retries++;
		job->due_at = mono_now() + backoff_secs(job->poll_failures,
												POLL_RETRY_BASE_SECS,
												POLL_RETRY_MAX_SECS);
	}
	else
		report_api_error(run, job, req, rc, status, job->poll_failures + 1);
}

/*
 * check_file_url
 *		Only http(s) file URLs are fetched
 */
static void
check_file_url(CloverExportRun *run, CloverJob *job, const char *url, int n,
			   int nfiles)
{
	if (pg_strncasecmp(url, "https://", 8) == 0 ||
		pg_strncasecmp(url, "http://", 7) == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_REPLY),
			 errmsg("Clover export \"%s\" lists a file URL that is not http or https",
					job->export_id),
			 errdetail("File %d of %d has the URL \"%s\".", n + 1, nfiles,
					   url_for_display(run, url)),
			 errhint("clover_export_fdw downloads only http and https URLs.")));
}

/*
 * check_export_secrets
 *		Export ids and statuses go into messages: refuse an export object
 *		whose id or status holds a stretch of a secret (without showing it)
 */
static void
check_export_secrets(CloverExportRun *run, CloverRequest *req,
					 const CloverExportInfo *info)
{
	Secrets		secrets = request_secrets(run, NULL, NULL);

	if (!holds_secret(info->id, &secrets) &&
		!holds_secret(info->status, &secrets))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
			 errmsg("could not read Clover's export object"),
			 errdetail("%s %s answered HTTP 200 with an export id or status that holds part of the access token.",
					   req->kind == REQ_CREATE ? "POST" : "GET",
					   run->exports_path),
			 errhint("Messages never show the token, so the export is not named here.")));
}

/*
 * export_timed_out
 *		Fail: an export stayed PENDING or IN_PROGRESS for export_timeout
 */
static void
export_timed_out(CloverExportRun *run, CloverJob *job)
{
	const CloverFdwOptions *opts = run->opts;

	CHECK_FOR_INTERRUPTS();
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
			 errmsg("Clover export \"%s\" did not finish within %s",
					job->export_id,
					format_duration(opts->export_timeout_ms / 1000.0)),
			 errdetail("Its last status was %s, %d%% complete, for the %s window %s%s.",
					   job->status, Max(job->percent, 0),
					   CloverExportTypeName(opts->export_type),
					   window_text(job),
					   job->closed_polls > 0 ?
					   psprintf("; the last %d polls were answered HTTP 503 (service closed)",
								job->closed_polls) : ""),
			 errhint("Clover may be overloaded or closed. Try again later, query a shorter range, or raise the server option export_timeout (now %s).",
					 format_duration(opts->export_timeout_ms / 1000.0))));
}

/*
 * poll_again
 *		Schedule the next poll of a PENDING or IN_PROGRESS export, first
 *		after POLL_FIRST_MS, then at doubling intervals up to POLL_MAX_MS;
 *		fail once the export has run for export_timeout
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
		job->poll_interval_ms = POLL_FIRST_MS;
	}
	else
		job->poll_interval_ms = Min(job->poll_interval_ms * 2, POLL_MAX_MS);
	wait = deadline_wait(job->created_at, run->opts->export_timeout_ms / 1000.0,
						 now, job->poll_interval_ms / 1000.0);
	if (wait < 0)
		export_timed_out(run, job);
	job->due_at = now + wait;
}

/*
 * apply_export_info
 *		Act on an export object from a POST or a poll
 */
static void
apply_export_info(CloverExportRun *run, CloverJob *job, CloverRequest *req)
{
	CloverExportInfo info;
	char	   *problem;
	MemoryContext old;
	int			i;

	old = MemoryContextSwitchTo(run->cxt);
	if (!CloverParseExportObject(req->body ? req->body : "", req->body_len,
								 &info, &problem))
	{
		MemoryContextSwitchTo(old);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
				 errmsg("could not read Clover's export object"),
				 errdetail("%s %s answered HTTP 200 with an unexpected body: %s",
						   req->kind == REQ_CREATE ? "POST" : "GET",
						   run->exports_path, problem)));
	}
	MemoryContextSwitchTo(old);
	check_export_secrets(run, req, &info);

	if (job->export_id && strcmp(job->export_id, info.id) != 0 &&
		req->kind == REQ_POLL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
				 errmsg("Clover answered a poll of export \"%s\" with export \"%s\"",
						job->export_id, info.id)));
	job->export_id = info.id;
	job->status = info.status;
	job->percent = info.percent;

	if (strcmp(info.status, "PENDING") == 0 ||
		strcmp(info.status, "IN_PROGRESS") == 0)
	{
		poll_again(run, job);
		return;
	}

	if (strcmp(info.status, "DONE") != 0)
	{
		/* FAILED or anything undocumented: one more export, then fail */
		if (job->status_retries == 0 && !job->any_handed)
		{
			ereport(NOTICE,
					(errmsg("Clover export \"%s\" ended with status \"%s\"; creating it again",
							info.id, info.status),
					 errdetail("Window %s.", window_text(job))));
			job->status_retries++;
			run->stats.export_recreated++;
			restart_job(run, job);
			return;
		}
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
				 errmsg("Clover export \"%s\" ended with status \"%s\"",
						info.id, info.status),
				 errdetail("The %s export for window %s did not finish; Clover documents only PENDING, IN_PROGRESS and DONE.",
						   CloverExportTypeName(run->opts->export_type),
						   window_text(job)),
				 errhint("The export was already created again once. Try again later.")));
	}

	/* DONE: the files are known */
	for (i = 0; i < info.nurls; i++)
		check_file_url(run, job, info.urls[i], i, info.nurls);
	job->nfiles = info.nurls;
	job->urls = info.urls;
	job->files = MemoryContextAllocZero(run->cxt,
										sizeof(FileSlot) * Max(info.nurls, 1));
	job->next_start = 0;
	job->next_hand = 0;
	job->state = JOB_DONE;
	elog(DEBUG1, "clover_export_fdw: export %s is DONE with %d files",
		 job->export_id, job->nfiles);
}

/*
 * restart_job
 *		Forget an export and everything downloaded of it; create it again
 */
static void
restart_job(CloverExportRun *run, CloverJob *job)
{
	dlist_mutable_iter iter;
	int			f;

	dlist_foreach_modify(iter, &run->active)
	{
		CloverRequest *req = dlist_container(CloverRequest, node, iter.cur);

		if (req->job == job)
			abandon_request(run, req);
	}
	for (f = 0; f < job->nfiles; f++)
	{
		FileSlot   *slot = &job->files[f];

		if (slot->state == FILE_INFLIGHT || slot->state == FILE_RETRY_WAIT ||
			slot->state == FILE_READY)
			run->files_outstanding--;
		free_slot_data(run, slot);
	}
	job->state = JOB_WAITING;
	job->request_in_flight = false;
	job->due_at = 0;
	job->export_id = NULL;
	job->closed_polls = 0;
	job->nfiles = 0;
	job->files = NULL;
	job->urls = NULL;
	job->next_start = job->next_hand = 0;
}

static void
handle_file(CloverExportRun *run, CloverRequest *req, CURLcode rc,
			long status)
{
	CloverJob  *job = req->job;
	FileSlot   *slot = &job->files[req->file_no];
	const CloverFdwOptions *opts = run->opts;

	if (rc == CURLE_OK && status == 200)
	{
		run->stats.download_secs += req->total_secs;
		run->stats.files_downloaded++;
		run->stats.bytes_downloaded += req->body_len;

		/* the buffer moves to the slot */
		slot->data = req->body;
		slot->len = req->body_len;
		slot->cap = req->body_cap;
		if (slot->data == NULL)
		{
			/* an empty body: keep a valid pointer */
			slot->data = MemoryContextAllocZero(run->cxt, 1);
			slot->cap = 1;
			account_buffer(run, 1, 1);
		}
		req->body = NULL;
		slot->state = FILE_READY;
		return;
	}

	if (rc == CURLE_OK && (status == 404 || status == 403 || status == 410))
	{
		/* deleted or expired at Clover */
		if (!job->any_handed && job->recreations == 0)
		{
			ereport(NOTICE,
					(errmsg("files of Clover export \"%s\" are gone; creating the export again",
							job->export_id),
					 errdetail("File %d of %d answered HTTP %ld.", req->file_no + 1,
							   job->nfiles, status)));
			job->recreations++;
			run->stats.export_recreated++;
			restart_job(run, job);
			return;
		}
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_REPLY),
				 errmsg("file %d of %d of Clover export \"%s\" is no longer available",
						req->file_no + 1, job->nfiles, job->export_id),
				 errdetail("GET %s answered %s (window %s).",
						   url_path(run, job->urls[req->file_no]),
						   failure_text(run, req, rc, status), window_text(job)),
				 errhint(job->any_handed ?
						 "Rows of this window were already returned, so the export cannot be created again within this query. Run the query again." :
						 "The export was already created again once. Run the query again.")));
	}

	/*
	 * Transient failures and 429s are retried (waiting out Retry-After,
	 * unless it reaches past busy_timeout) up to max_retries times
	 */
	if ((is_transient(req, rc, status) || (rc == CURLE_OK && status == 429)) &&
		slot->failures < opts->max_retries &&
		req->retry_after_secs * 1000.0 <= opts->busy_timeout_ms)
	{
		slot->failures++;
		run->stats.retries++;
		slot->state = FILE_RETRY_WAIT;
		slot->retry_at = mono_now() +
			(req->retry_after_secs >= 0 ?
			 req->retry_after_secs + RETRY_AFTER_MARGIN_SECS :
			 backoff_secs(slot->failures, FILE_RETRY_BASE_SECS,
						  FILE_RETRY_MAX_SECS));
		elog(DEBUG1, "clover_export_fdw: retrying file %d of export %s (attempt %d)",
			 req->file_no + 1, job->export_id, slot->failures + 1);
		return;
	}

	CHECK_FOR_INTERRUPTS();
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_REPLY),
			 errmsg("could not download file %d of %d of Clover export \"%s\"",
					req->file_no + 1, job->nfiles, job->export_id),
			 errdetail("GET %s answered %s (window %s%s).",
					   url_path(run, job->urls[req->file_no]),
					   failure_text(run, req, rc, status), window_text(job),
					   slot->failures > 0 ?
					   psprintf(", after %d attempts", slot->failures + 1) : ""),
			 errhint("Check the connection to Clover's file host, or raise the server options max_retries (now %d) and request_timeout.",
					 opts->max_retries)));
}

/* ----------------------------------------------------------------
 *		Progress
 * ----------------------------------------------------------------
 */

/*
 * report_progress
 *		With clover_export_fdw.progress on, say where the scan is, at most
 *		every few seconds
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
		if (job->files[f].state >= FILE_READY)
			done_files++;
	}
	if (job->state == JOB_WAITING && job->due_at > now)
		ereport(NOTICE,
				(errmsg("clover_export_fdw: window %d of %d (%s): waiting %s for Clover (%s)",
						run->cur + 1, run->njobs, window_text(job),
						format_duration(job->due_at - now),
						job->closed_since ? "service closed" :
						job->busy_since ? "service busy" : "retrying")));
	else if (job->state == JOB_DONE)
		ereport(NOTICE,
				(errmsg("clover_export_fdw: window %d of %d (%s): export %s DONE, %d of %d files downloaded",
						run->cur + 1, run->njobs, window_text(job),
						job->export_id, done_files, job->nfiles)));
	else
		ereport(NOTICE,
				(errmsg("clover_export_fdw: window %d of %d (%s): export %s %s, %d%% complete",
						run->cur + 1, run->njobs, window_text(job),
						job->export_id ? job->export_id : "(being created)",
						job->status ? job->status : "requested",
						Max(job->percent, 0))));
}

/* ----------------------------------------------------------------
 *		The interface
 * ----------------------------------------------------------------
 */

/*
 * CloverRunCreate
 *		Set up a run over the configured windows; nothing is sent yet
 *
 * The run lives in a new child context of parent; deleting that context
 * (CloverRunDestroy, or the end of the query on error) frees everything.
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
	run->auth_header = psprintf("Authorization: Bearer %s", config->access_token);
	run->exports_path = psprintf("/v3/merchants/%s/exports",
								 config->opts->merchant_id);
	run->exports_url = psprintf("%s%s", config->opts->api_base,
								run->exports_path);
	run->njobs = config->nwindows;
	run->jobs = palloc0(sizeof(CloverJob) * Max(config->nwindows, 1));
	for (i = 0; i < config->nwindows; i++)
	{
		run->jobs[i].index = i;
		run->jobs[i].window = &config->windows[i];
		run->jobs[i].percent = -1;
	}
	run->bucket_tokens = API_BURST;
	run->bucket_at = mono_now();
	dlist_init(&run->active);

	cb = palloc0(sizeof(MemoryContextCallback));
	cb->func = run_reset_callback;
	cb->arg = run;
	MemoryContextRegisterResetCallback(cxt, cb);
	dlist_push_tail(&live_runs, &run->live_node);

	run->multi = curl_multi_init();
	if (run->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not create a libcurl multi handle.")));
	live_curl_handles++;

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
	FileSlot   *slot = run->handed;

	if (slot == NULL)
		return;
	run->handed = NULL;
	if (slot->state != FILE_HANDED)
		return;					/* re-queued by CloverRunRedownload */
	free_slot_data(run, slot);
	slot->state = FILE_RELEASED;
	/* the consumer finished a whole file: it wants more than a peek */
	run->prefetch_unlocked = true;
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

	release_handed(run);
	for (;;)
	{
		CloverJob  *job;
		FileSlot   *slot;

		if (run->cur >= run->njobs)
		{
			MemoryContextSwitchTo(old);
			return false;
		}
		job = &run->jobs[run->cur];
		if (job->state == JOB_DONE && job->next_hand >= job->nfiles)
		{
			job->state = JOB_FINISHED;
			run->cur++;
			/* an empty window still means the consumer wants more */
			run->prefetch_unlocked = true;
			continue;
		}
		if (job->state == JOB_DONE &&
			job->files[job->next_hand].state == FILE_READY)
		{
			int			f = job->next_hand++;

			slot = &job->files[f];
			slot->state = FILE_HANDED;
			run->files_outstanding--;
			run->handed = slot;
			job->any_handed = true;

			file->data = slot->data;
			file->len = slot->len;
			file->window_no = job->index;
			file->file_no = f;
			file->nfiles = job->nfiles;
			file->export_id = job->export_id;
			file->attempt = slot->redownloads + 1;
			/* start the next downloads before the caller converts */
			(void) run_step(run);
			MemoryContextSwitchTo(old);
			return true;
		}
		if (!run_step(run))
			wait_for_activity(run);
	}
}

/*
 * CloverRunRedownload
 *		The file just handed out is broken: fetch it again; the next
 *		CloverRunNextFile returns the new copy
 */
void
CloverRunRedownload(CloverExportRun *run)
{
	FileSlot   *slot = run->handed;
	CloverJob  *job = &run->jobs[run->cur];

	Assert(slot && slot->state == FILE_HANDED);
	free_slot_data(run, slot);
	slot->redownloads++;
	slot->state = FILE_RETRY_WAIT;
	slot->retry_at = 0;
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

const CloverRunStats *
CloverRunGetStats(CloverExportRun *run)
{
	return &run->stats;
}

/*
 * CloverRunDestroy
 *		Abandon whatever is in flight and free the run
 */
void
CloverRunDestroy(CloverExportRun *run)
{
	MemoryContextDelete(run->cxt);
}
