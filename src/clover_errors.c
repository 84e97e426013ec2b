/*-------------------------------------------------------------------------
 *
 * clover_errors.c
 *		  Clover's answers as messages: every ereport about one, and the
 *		  redaction of secrets from what they show
 *
 * exports.c decides what an answer means; when it means an error or a
 * NOTICE, it calls the function here that words it, so the wording, the
 * SQLSTATE and the hint of every message about Clover live in one file.
 *
 * Secrets: a message never holds the access token nor, for a file, its
 * URL's query string (raw or decoded), where a pre-signed URL keeps its
 * signature.  URLs are shown as scheme, host, port and path only; remote
 * text is redacted (any SECRET_FRAGMENT_LEN characters in a row of a secret
 * count as the secret) before it is cut short.
 *
 * Every ERROR about a failed request first checks for interrupts: if the
 * query was canceled, that is what the user sees, not the failure the
 * cancel caused.
 *
 * IDENTIFICATION
 *		  src/clover_errors.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "clover_export_fdw.h"
#include "miscadmin.h"

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

/*
 * Secrets
 *		What a message must never hold: the access token and, for a file,
 *		its URL's query string (raw and decoded)
 */
typedef struct Secrets
{
	int			n;
	const char *s[MAX_SECRETS];
} Secrets;

/* ----------------------------------------------------------------
 *		Redaction
 * ----------------------------------------------------------------
 */

/*
 * add_url_secrets
 *		A URL's query string, raw and decoded, is secret.  A URL that does
 *		not parse is secret whole after its first '?'.
 */
static void
add_url_secrets(Secrets *secrets, const char *url)
{
	char	   *raw = CloverUrlPart(url, CLOVER_URL_QUERY, false);

	if (raw == NULL && strchr(url, '?') != NULL)
		raw = pstrdup(strchr(url, '?') + 1);
	if (raw == NULL || secrets->n + 2 > MAX_SECRETS)
		return;
	secrets->s[secrets->n++] = raw;
	secrets->s[secrets->n++] = CloverUrlPart(url, CLOVER_URL_QUERY, true);
}

/*
 * secrets_of
 *		The secrets that text about a request of ref (to url, if not NULL)
 *		must not show
 */
static Secrets
secrets_of(const CloverExportRef *ref, const char *url)
{
	Secrets		secrets = {0};

	secrets.s[secrets.n++] = ref->token;
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
url_for_display(const CloverExportRef *ref, const char *url)
{
	Secrets		secrets = secrets_of(ref, url);
	char	   *scheme = CloverUrlPart(url, CLOVER_URL_SCHEME, false);
	char	   *host = CloverUrlPart(url, CLOVER_URL_HOST, false);
	char	   *port = CloverUrlPart(url, CLOVER_URL_PORT, false);
	char	   *path = CloverUrlPart(url, CLOVER_URL_PATH, false);

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
url_path(const CloverExportRef *ref, const char *url)
{
	Secrets		secrets = secrets_of(ref, url);
	char	   *path = CloverUrlPart(url, CLOVER_URL_PATH, false);

	return redact(path ? path : "/", &secrets);
}

/* ----------------------------------------------------------------
 *		Texts
 * ----------------------------------------------------------------
 */

/*
 * CloverFormatDuration
 *		"3 h 12 min", "5 min 3 s", "42 s"; palloc'd
 */
char *
CloverFormatDuration(double secs)
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
 * CloverWindowText
 *		"<lo> to <hi>" of an export window, palloc'd
 */
char *
CloverWindowText(const CloverWindow *window)
{
	return psprintf("%s to %s", CloverFormatUtc(window->lo),
					CloverFormatUtc(window->hi));
}

/*
 * answer_text
 *		What the server answered to a request to url (NULL: an API request),
 *		for an errdetail: its message, redacted, then cut short, without a
 *		final period
 */
static char *
answer_text(const CloverExportRef *ref, const CloverHttpResult *res,
			const char *url)
{
	Secrets		secrets = secrets_of(ref, url);

	return shown_text(CloverErrorBodyMessage(res->body.data ? res->body.data : "",
											 res->body.len, REMOTE_TEXT_READ),
					  &secrets);
}

/*
 * CloverAnswerText
 *		What Clover answered to an API request, shown as answer_text shows it
 */
char *
CloverAnswerText(const CloverExportRef *ref, const CloverHttpResult *res)
{
	return answer_text(ref, res, NULL);
}

/*
 * failure_text
 *		Why a request to url (NULL: an API request) failed, for an
 *		errdetail: the HTTP status and the server's message, or the
 *		transfer's error; without a final period
 */
static char *
failure_text(const CloverExportRef *ref, const CloverHttpResult *res,
			 const char *url)
{
	Secrets		secrets = secrets_of(ref, url);

	if (res->outcome == CLOVER_HTTP_ANSWERED)
		return psprintf("HTTP %ld: %s", res->status,
						answer_text(ref, res, url));
	return shown_text(res->error, &secrets);
}

/* ----------------------------------------------------------------
 *		The export object
 * ----------------------------------------------------------------
 */

/*
 * CloverCheckFileUrl
 *		Only http(s) file URLs are fetched
 */
void
CloverCheckFileUrl(const CloverExportRef *ref, const char *url, int file_no,
				   int nfiles)
{
	if (pg_strncasecmp(url, "https://", 8) == 0 ||
		pg_strncasecmp(url, "http://", 7) == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_REPLY),
			 errmsg("Clover export \"%s\" lists a file URL that is not http or https",
					ref->export_id),
			 errdetail("File %d of %d has the URL \"%s\".", file_no + 1, nfiles,
					   url_for_display(ref, url)),
			 errhint("clover_export_fdw downloads only http and https URLs.")));
}

/*
 * CloverReadExportObject
 *		The export object Clover answered to a POST or a poll, parsed into
 *		info (allocated in the current memory context), or an error
 *
 * Export ids and statuses go into messages: an object whose id or status
 * holds a stretch of a secret is refused without showing it.  A poll must
 * be answered with the export it asked about.
 */
void
CloverReadExportObject(const CloverExportRef *ref, const CloverHttpResult *res,
					   CloverExportInfo *info)
{
	Secrets		secrets = secrets_of(ref, NULL);
	const char *method = ref->is_create ? "POST" : "GET";
	char	   *problem;

	if (!CloverParseExportObject(res->body.data, res->body.len, info, &problem))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
				 errmsg("could not read Clover's export object"),
				 errdetail("%s %s answered HTTP 200 with an unexpected body: %s",
						   method, ref->exports_path, problem)));
	if (holds_secret(info->id, &secrets) ||
		holds_secret(info->status, &secrets))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
				 errmsg("could not read Clover's export object"),
				 errdetail("%s %s answered HTTP 200 with an export id or status that holds part of the access token.",
						   method, ref->exports_path),
				 errhint("Messages never show the token, so the export is not named here.")));
	if (ref->export_id && strcmp(ref->export_id, info->id) != 0 &&
		!ref->is_create)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
				 errmsg("Clover answered a poll of export \"%s\" with export \"%s\"",
						ref->export_id, info->id)));
}

/*
 * CloverReportBadStatus
 *		An export ended with a status other than DONE: a NOTICE when it is
 *		created again (retrying), else an error
 */
void
CloverReportBadStatus(const CloverExportRef *ref, const char *status,
					  bool retrying)
{
	if (retrying)
	{
		ereport(NOTICE,
				(errmsg("Clover export \"%s\" ended with status \"%s\"; creating it again",
						ref->export_id, status),
				 errdetail("Window %s.", CloverWindowText(ref->window))));
		return;
	}
	CHECK_FOR_INTERRUPTS();
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
			 errmsg("Clover export \"%s\" ended with status \"%s\"",
					ref->export_id, status),
			 errdetail("The %s export for window %s did not finish; Clover documents only PENDING, IN_PROGRESS and DONE.",
					   CloverExportTypeName(ref->opts->export_type),
					   CloverWindowText(ref->window)),
			 errhint("The export was already created again once. Try again later.")));
}

/*
 * CloverReportTimedOut
 *		An export stayed PENDING or IN_PROGRESS for export_timeout
 */
void
CloverReportTimedOut(const CloverExportRef *ref, const char *status,
					 int percent, int closed_polls)
{
	const CloverFdwOptions *opts = ref->opts;

	CHECK_FOR_INTERRUPTS();
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
			 errmsg("Clover export \"%s\" did not finish within %s",
					ref->export_id,
					CloverFormatDuration(opts->export_timeout_ms / 1000.0)),
			 errdetail("Its last status was %s, %d%% complete, for the %s window %s%s.",
					   status, Max(percent, 0),
					   CloverExportTypeName(opts->export_type),
					   CloverWindowText(ref->window),
					   closed_polls > 0 ?
					   psprintf("; the last %d polls were answered HTTP 503 (service closed)",
								closed_polls) : ""),
			 errhint("Clover may be overloaded or closed. Try again later, query a shorter range, or raise the server option export_timeout (now %s).",
					 CloverFormatDuration(opts->export_timeout_ms / 1000.0))));
}

/* ----------------------------------------------------------------
 *		API requests: create and poll
 * ----------------------------------------------------------------
 */

/*
 * report_refused_token
 *		Clover answered request HTTP 401 (why): the token of the user
 *		mapping, or the app's permission
 */
static void
report_refused_token(const CloverExportRef *ref, const char *request,
					 const char *why)
{
	const CloverFdwOptions *opts = ref->opts;

	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
			 errmsg("Clover refused the access token for merchant \"%s\"",
					opts->merchant_id),
			 errdetail("%s answered %s.", request, why),
			 opts->ecommerce_object ?
			 errhint("HTTP 401 means an invalid or expired token, or an app that lacks permission for this merchant's e-commerce data. Check the ecommerce_access_token (or else access_token) of your user mapping for server \"%s\".",
					 opts->server_name) :
			 errhint("HTTP 401 means an invalid or expired token, or an app that lacks permission for this merchant's data (Clover grants the export API per app). Check the access_token of your user mapping for server \"%s\".",
					 opts->server_name)));
}

/*
 * report_redirect
 *		Clover answered request with a redirect, which a request carrying
 *		the token never follows: the base URL is wrong
 */
static void
report_redirect(const CloverExportRef *ref, const char *request,
				const CloverHttpResult *res)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
			 errmsg("Clover answered with a redirect"),
			 errdetail("%s answered HTTP %ld to %s.", request, res->status,
					   res->redirect_url ?
					   url_for_display(ref, res->redirect_url) :
					   "(no location)"),
			 errhint("API requests carry the access token and are never redirected; check the option %s of server \"%s\".",
					 ref->opts->ecommerce_object ? "ecommerce_base_url" : "base_url",
					 ref->opts->server_name)));
}

/*
 * CloverReportApiFailure
 *		Fail with what Clover answered to a create or poll request (or why
 *		it did not answer), after attempts tries
 */
void
CloverReportApiFailure(const CloverExportRef *ref, const CloverHttpResult *res,
					   int attempts)
{
	const CloverFdwOptions *opts = ref->opts;
	const char *request = ref->is_create ?
		psprintf("POST %s", ref->exports_path) :
		psprintf("GET %s/%s", ref->exports_path, ref->export_id);
	char	   *why = failure_text(ref, res, NULL);
	char	   *tries = attempts > 1 ? psprintf(" (after %d attempts)", attempts) : "";
	bool		answered = (res->outcome == CLOVER_HTTP_ANSWERED);
	long		status = res->status;

	CHECK_FOR_INTERRUPTS();

	if (answered && status == 401)
		report_refused_token(ref, request, why);
	if (answered && status == 404 && ref->is_create)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_TABLE_NOT_FOUND),
				 errmsg("Clover does not know merchant \"%s\"",
						opts->merchant_id),
				 errdetail("%s answered %s.", request, why),
				 errhint("A merchant exists only on its region's host (region \"%s\"%s): check the options merchant_id and region of server \"%s\".",
						 opts->region,
						 opts->api_base_overridden ? ", with base_url set" : "",
						 opts->server_name)));
	if (answered && status >= 300 && status < 400)
		report_redirect(ref, request, res);
	if (ref->is_create && res->outcome == CLOVER_HTTP_NOT_SENT)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("could not connect to Clover at \"%s\"",
						url_for_display(ref, opts->api_base)),
				 errdetail("%s for the %s window %s never reached Clover: %s%s.",
						   request, CloverExportTypeName(opts->export_type),
						   CloverWindowText(ref->window), why, tries),
				 (res->unreachable && !ref->host_answered) ?
				 errhint("No connection could be made, so nothing was sent and no export was created. Check the options base_url and region of server \"%s\", and this host's network and DNS.",
						 opts->server_name) :
				 errhint("Nothing was sent, so no export was created. Check the connection to Clover (the options base_url, connect_timeout and ca_file of server \"%s\"), or raise max_retries (now %d).",
						 opts->server_name, opts->max_retries)));
	if (ref->is_create)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
				 errmsg("could not create a Clover export"),
				 errdetail("%s for the %s window %s answered %s%s.",
						   request, CloverExportTypeName(opts->export_type),
						   CloverWindowText(ref->window), why, tries),
				 (answered && status < 500) ?
				 errhint("Clover rejected the request; its message says why.") :
				 errhint("The request may have reached Clover, so it was not repeated (it could create a second export). Run the query again.")));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
			 errmsg("could not get the status of Clover export \"%s\"",
					ref->export_id),
			 errdetail("%s for window %s answered %s%s.", request,
					   CloverWindowText(ref->window), why, tries),
			 errhint("Check the server's connection to Clover, or raise the server option max_retries (now %d).",
					 opts->max_retries)));
}

/*
 * CloverReportRateLimited
 *		Clover kept answering 429 to what (answers times over secs seconds)
 *		until busy_timeout was spent
 */
void
CloverReportRateLimited(const CloverExportRef *ref, const CloverHttpResult *res,
						const char *what, int answers, double secs)
{
	CHECK_FOR_INTERRUPTS();
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
			 errmsg("Clover kept rate-limiting %s", what),
			 errdetail("Clover answered HTTP 429 %d times in a row over %s%s: %s.",
					   answers, CloverFormatDuration(secs),
					   res->retry_after_secs >= 0 ?
					   psprintf(", the last time with Retry-After: %ld",
								res->retry_after_secs) : "",
					   CloverAnswerText(ref, res)),
			 errhint("Other programs may be using the same token or app. Try again later, or raise the server option busy_timeout (now %s).",
					 CloverFormatDuration(ref->opts->busy_timeout_ms / 1000.0))));
}

/*
 * CloverNoticeWaitingForService
 *		Clover is closed (its 503 said message): say that we wait for the
 *		opening, until_open seconds away
 */
void
CloverNoticeWaitingForService(const CloverExportRef *ref, const char *message,
							  TimestampTz opening, double until_open)
{
	ereport(NOTICE,
			(errmsg("Clover's export service is closed; waiting until %s (%s)",
					CloverFormatUtc(opening), CloverFormatDuration(until_open)),
			 errdetail("Clover answered HTTP 503: %s.", message),
			 errhint("Service hours (UTC): %s.",
					 CloverFormatServiceHours(&ref->opts->hours))));
}

/*
 * CloverReportClosed
 *		Clover is closed and we may not wait: fail with the hours and the
 *		next opening (or, when the calendar says open, point at it).  When
 *		wait_for_service is set but the opening is further away than it
 *		allows (waited: seconds already spent waiting), say so.
 */
void
CloverReportClosed(const CloverExportRef *ref, const char *message,
				   TimestampTz opening, double until_open, double waited,
				   bool calendar_open)
{
	const CloverFdwOptions *opts = ref->opts;

	CHECK_FOR_INTERRUPTS();
	if (opts->wait_for_service_ms > 0 && opening != DT_NOEND &&
		!calendar_open)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
				 errmsg("Clover's export service is closed"),
				 errdetail("Clover answered HTTP 503 to the %s export for window %s: %s. The server option wait_for_service (%s) is shorter than the time until the next opening at %s, in %s%s.",
						   CloverExportTypeName(opts->export_type),
						   CloverWindowText(ref->window), message,
						   CloverFormatDuration(opts->wait_for_service_ms / 1000.0),
						   CloverFormatUtc(opening),
						   CloverFormatDuration(until_open),
						   waited > 0 ?
						   psprintf(" after %s already spent waiting",
									CloverFormatDuration(waited)) : ""),
				 errhint("Raise wait_for_service above %s, or run the query during the service hours (%s, UTC).",
						 CloverFormatDuration(waited + until_open),
						 CloverFormatServiceHours(&opts->hours))));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
			 errmsg("Clover's export service is closed"),
			 errdetail("Clover answered HTTP 503 to the %s export for window %s: %s.",
					   CloverExportTypeName(opts->export_type),
					   CloverWindowText(ref->window), message),
			 calendar_open ?
			 errhint("The configured service hours (%s, UTC) say it is open now; check the server option service_hours.",
					 CloverFormatServiceHours(&opts->hours)) :
			 opening == DT_NOEND ?
			 errhint("The service hours (%s, UTC) have no open period.",
					 CloverFormatServiceHours(&opts->hours)) :
			 errhint("Clover accepts exports during %s (UTC); it next opens at %s, in %s. Run the query then, or set the server option wait_for_service (for example '%d hours') to wait for the opening.",
					 CloverFormatServiceHours(&opts->hours),
					 CloverFormatUtc(opening), CloverFormatDuration(until_open),
					 (int) ceil(until_open / 3600.0))));
}

/*
 * CloverReportBusy
 *		Clover stayed busy (answers 503s over secs seconds) until
 *		busy_timeout was spent
 */
void
CloverReportBusy(const CloverExportRef *ref, const char *message, int answers,
				 double secs)
{
	const CloverFdwOptions *opts = ref->opts;

	CHECK_FOR_INTERRUPTS();
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
			 errmsg("Clover is busy with other exports"),
			 errdetail("Clover answered HTTP 503 %d times over %s to the %s export for window %s: %s.",
					   answers, CloverFormatDuration(secs),
					   CloverExportTypeName(opts->export_type),
					   CloverWindowText(ref->window), message),
			 errhint("Clover runs only a few exports at a time per server. Try again later, or raise the server option busy_timeout (now %s).",
					 CloverFormatDuration(opts->busy_timeout_ms / 1000.0))));
}

/*
 * CloverReportNoSlot
 *		A scan waited busy_timeout (secs) in line for one of its merchant's
 *		export slots, which other scans held (ahead: scans before it;
 *		host_full: the API host's slots, all merchants', were all taken)
 */
void
CloverReportNoSlot(const CloverExportRef *ref, int ahead, bool host_full,
				   double secs)
{
	const CloverFdwOptions *opts = ref->opts;

	CHECK_FOR_INTERRUPTS();
	if (host_full)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
				 errmsg("no Clover export slot of %s came free",
						opts->api_base),
				 errdetail("The %s export of merchant \"%s\" for window %s waited %s, first in its merchant's line, while other scans held all %d export slots of the API host (wrapper options max_exports_per_host and node_share).",
						   CloverExportTypeName(opts->export_type),
						   opts->merchant_id, CloverWindowText(ref->window),
						   CloverFormatDuration(secs),
						   opts->max_exports_per_host),
				 errhint("clover_export_fdw_exports() lists the exports in flight. Try again later, or raise the server option busy_timeout (now %s).",
						 CloverFormatDuration(opts->busy_timeout_ms / 1000.0))));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
			 errmsg("no Clover export slot of merchant \"%s\" came free",
					opts->merchant_id),
			 errdetail("The %s export for window %s waited %s in line, %d ahead of it, while other scans held all %d slots (server option max_concurrent_exports).",
					   CloverExportTypeName(opts->export_type),
					   CloverWindowText(ref->window),
					   CloverFormatDuration(secs), Max(ahead, 0),
					   opts->max_concurrent_exports),
			 errhint("clover_export_fdw_exports() lists the exports in flight. Try again later, or raise the server option busy_timeout (now %s).",
					 CloverFormatDuration(opts->busy_timeout_ms / 1000.0))));
}

/* ----------------------------------------------------------------
 *		File downloads
 * ----------------------------------------------------------------
 */

/*
 * file_answer
 *		What a file request answered, for an errdetail: "GET <path> answered
 *		<why> (window <window><more>)", without a final period
 */
static char *
file_answer(const CloverExportRef *ref, const CloverHttpResult *res,
			const char *url, const char *more)
{
	return psprintf("GET %s answered %s (window %s%s)", url_path(ref, url),
					failure_text(ref, res, url), CloverWindowText(ref->window),
					more);
}

/*
 * CloverReportFileGone
 *		A file of the export is gone at Clover (404/403/410): a NOTICE when
 *		the export is created again (retrying), else an error saying why it
 *		is not (any_returned: rows of the window were already returned)
 */
void
CloverReportFileGone(const CloverExportRef *ref, const CloverHttpResult *res,
					 const char *url, int file_no, int nfiles, bool retrying,
					 bool any_returned)
{
	if (retrying)
	{
		ereport(NOTICE,
				(errmsg("files of Clover export \"%s\" are gone; creating the export again",
						ref->export_id),
				 errdetail("File %d of %d answered HTTP %ld.", file_no + 1,
						   nfiles, res->status)));
		return;
	}
	CHECK_FOR_INTERRUPTS();
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_REPLY),
			 errmsg("file %d of %d of Clover export \"%s\" is no longer available",
					file_no + 1, nfiles, ref->export_id),
			 errdetail("%s.", file_answer(ref, res, url, "")),
			 errhint(any_returned ?
					 "Rows of this window were already returned, so the export cannot be created again within this query. Run the query again." :
					 "The export was already created again once. Run the query again.")));
}

/*
 * CloverReportDownloadFailed
 *		A file could not be downloaded in attempts tries
 */
void
CloverReportDownloadFailed(const CloverExportRef *ref,
						   const CloverHttpResult *res, const char *url,
						   int file_no, int nfiles, int attempts)
{
	CHECK_FOR_INTERRUPTS();
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_REPLY),
			 errmsg("could not download file %d of %d of Clover export \"%s\"",
					file_no + 1, nfiles, ref->export_id),
			 errdetail("%s.",
					   file_answer(ref, res, url, attempts > 1 ?
								   psprintf(", after %d attempts", attempts) :
								   "")),
			 errhint("Check the connection to Clover's file host, or raise the server options max_retries (now %d) and request_timeout.",
					 ref->opts->max_retries)));
}

/* ----------------------------------------------------------------
 *		E-commerce /v1 lists (ref->exports_path is the list's path)
 * ----------------------------------------------------------------
 */

/*
 * CloverReportListFailure
 *		Fail with what Clover answered to the request for page page_no of
 *		an e-commerce list (or why it did not answer), after attempts tries
 */
void
CloverReportListFailure(const CloverExportRef *ref,
						const CloverHttpResult *res, int page_no,
						int attempts)
{
	const CloverFdwOptions *opts = ref->opts;
	const char *request = psprintf("GET %s (page %d)", ref->exports_path,
								   page_no);
	char	   *why = failure_text(ref, res, NULL);
	char	   *tries = attempts > 1 ? psprintf(" (after %d attempts)", attempts) : "";
	bool		answered = (res->outcome == CLOVER_HTTP_ANSWERED);
	long		status = res->status;

	CHECK_FOR_INTERRUPTS();

	if (answered && status == 401)
		report_refused_token(ref, request, why);
	if (answered && status >= 300 && status < 400)
		report_redirect(ref, request, res);
	if (answered && status >= 400 && status < 500)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
				 errmsg("Clover rejected the request for its list %s",
						ref->exports_path),
				 errdetail("%s answered %s.", request, why),
				 status == 404 ?
				 errhint("The token's merchant must exist on the e-commerce host: check the options ecommerce_base_url and region of server \"%s\".",
						 opts->server_name) :
				 errhint("Clover's message says what it did not accept.")));
	if (res->outcome == CLOVER_HTTP_NOT_SENT)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("could not connect to Clover at \"%s\"",
						url_for_display(ref, opts->ecommerce_base)),
				 errdetail("%s never reached Clover: %s%s.", request, why,
						   tries),
				 errhint("Check the options ecommerce_base_url, region, connect_timeout and ca_file of server \"%s\", and this host's network, or raise max_retries (now %d).",
						 opts->server_name, opts->max_retries)));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_REPLY),
			 errmsg("could not read Clover's list %s", ref->exports_path),
			 errdetail("%s answered %s%s.", request, why, tries),
			 errhint("Check the server's connection to Clover, or raise the server option max_retries (now %d).",
					 opts->max_retries)));
}

/*
 * CloverReportBadPage
 *		Page page_no of a list answered HTTP 200 with a body that is not a
 *		list page, twice
 */
void
CloverReportBadPage(const CloverExportRef *ref, int page_no,
					const char *problem)
{
	Secrets		secrets = secrets_of(ref, NULL);

	CHECK_FOR_INTERRUPTS();
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
			 errmsg("could not read page %d of Clover's list %s", page_no,
					ref->exports_path),
			 errdetail("GET %s answered HTTP 200 twice with an unexpected body: %s.",
					   ref->exports_path, shown_text(problem, &secrets)),
			 errhint("Clover sent a broken page; run the query again later.")));
}

/*
 * CloverReportStuckList
 *		Page page_no of a list, asked for the objects after cursor, says it
 *		has more but holds no object not already returned: paging on would
 *		never end
 */
void
CloverReportStuckList(const CloverExportRef *ref, int page_no,
					  const char *cursor, int nobjects)
{
	Secrets		secrets = secrets_of(ref, NULL);

	CHECK_FOR_INTERRUPTS();
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_REPLY),
			 errmsg("Clover's list %s did not advance", ref->exports_path),
			 errdetail("Page %d, asked for the objects after \"%s\", holds no object that was not returned before (it holds %d), yet says it has more.",
					   page_no, shown_text(cursor, &secrets), nobjects),
			 errhint("Paging on would repeat the same page forever, so the query stops. Run it again later.")));
}
