/*-------------------------------------------------------------------------
 *
 * http.c
 *		  HTTP transfers: every libcurl call of clover_export_fdw
 *
 * A caller creates a set of requests (CloverHttpCreate) in a memory
 * context, starts requests in it (CloverHttpStart), drives it without
 * waiting (CloverHttpPerform), collects finished requests one at a time
 * (CloverHttpNextResult) and sleeps until something can advance
 * (CloverHttpWait).  All requests of a set run at once over one libcurl
 * multi handle, with kept-alive connections.  This file knows nothing of
 * Clover: a finished request comes back as an outcome (answered, not sent,
 * transient failure, fatal failure) with the status, Retry-After, body and
 * libcurl's words, and whether the server could not be reached at all (a
 * refused connection, an unknown host); what that means is the caller's
 * business.
 *
 * Rules this file keeps:
 *
 * - libcurl's callbacks run inside curl_multi_perform: they record and
 *	 never throw (buffers are allocated with MCXT_ALLOC_NO_OOM; a failure
 *	 aborts the transfer and is reported with the result).
 * - Only http and https are fetched; a request carrying a token never
 *	 follows a redirect (CloverHttpRequestSpec.bearer_token).
 * - Resources: easy handles, the multi handle and header lists are
 *	 malloc'd by libcurl and tracked in the set; response buffers are
 *	 palloc'd in the set's memory context.  A reset callback on that
 *	 context frees every libcurl object, so an error or a cancel anywhere
 *	 leaves nothing behind.  Backend-wide counts feed
 *	 clover_export_fdw_open_handles().
 * - Waits use curl_multi_poll of at most 100 ms (which also returns early
 *	 when a signal arrives) or, with nothing in flight, the latch, so a
 *	 cancel is seen at once.
 *
 * IDENTIFICATION
 *		  src/http.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <curl/curl.h>

#include "clover_export_fdw.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

/* sockets CloverHttpWaitFd watches at most; more are polled */
#define MAX_WATCHED_SOCKETS		64

/* libcurl could not list its sockets (beyond FD_SETSIZE): look this soon */
#define UNLISTED_POLL_MS		20

/* receive buffer of a large download (libcurl allows up to 512 kB) */
#define LARGE_READ_CHUNK		(256L * 1024L)

/* longest single sleep while transfers run (signals cut it short anyway) */
#define MAX_POLL_WAIT_MS		100

/* redirects a request without a token may follow */
#define MAX_REDIRECTS			5L

/* A set of requests run together: one multi handle */
struct CloverHttp
{
	MemoryContext cxt;
	CURLM	   *multi;
	dlist_head	active;			/* CloverHttpRequests in flight */
	int			nbuffers;		/* response buffers, also those handed over */
	int64		buffer_bytes;

	/* CloverHttpWaitFd's descriptors (-1 until needed) */
	int			wait_epoll;		/* watches the sockets and the timer */
	int			wait_timer;		/* a timerfd */
	int			nwatched;		/* sockets in wait_epoll */
	int			watched[MAX_WATCHED_SOCKETS];
};

/* One request in flight */
struct CloverHttpRequest
{
	dlist_node	node;			/* in http->active */
	CloverHttp *http;
	void	   *owner;			/* the caller's, returned with the result */
	int			tag;
	CURL	   *easy;
	struct curl_slist *headers;
	char	   *post_body;
	CloverHttpBuffer body;
	size_t		body_limit;
	bool		too_large;
	bool		out_of_memory;
	long		retry_after_secs;	/* -1 if absent */
	char		errbuf[CURL_ERROR_SIZE];
};

/* backend-wide counts of what sets hold, for clover_export_fdw_open_handles */
static int	live_curl_handles = 0;
static int	live_buffers = 0;
static int64 live_buffer_bytes = 0;

static void http_reset_callback(void *arg);
static void close_wait_fds(CloverHttp *http);
static void account_buffer(CloverHttp *http, int count, int64 bytes);
static size_t write_callback(char *ptr, size_t size, size_t nmemb,
							 void *userdata);
static size_t header_callback(char *buffer, size_t size, size_t nitems,
							  void *userdata);
static void detach_request(CloverHttpRequest *req);
static CloverHttpOutcome classify(CloverHttpRequest *req, CURLcode rc,
								  long request_bytes);

/* ----------------------------------------------------------------
 *		Resource tracking
 * ----------------------------------------------------------------
 */

/*
 * CloverHttpInit
 *		Once per backend, from _PG_init
 */
void
CloverHttpInit(void)
{
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not initialize libcurl")));
}

/*
 * CloverOpenHandles
 *		What all request sets of this backend hold right now
 */
void
CloverOpenHandles(int *handles, int *buffers, int64 *bytes)
{
	*handles = live_curl_handles;
	*buffers = live_buffers;
	*bytes = live_buffer_bytes;
}

static void
account_buffer(CloverHttp *http, int count, int64 bytes)
{
	http->nbuffers += count;
	http->buffer_bytes += bytes;
	live_buffers += count;
	live_buffer_bytes += bytes;
}

/*
 * CloverHttpFreeBuffer
 *		Free a response buffer of this set (one a result handed over); a
 *		buffer without data is left alone
 */
void
CloverHttpFreeBuffer(CloverHttp *http, CloverHttpBuffer *buf)
{
	if (buf->data == NULL)
		return;
	account_buffer(http, -1, -(int64) buf->cap);
	pfree(buf->data);
	buf->data = NULL;
	buf->len = buf->cap = 0;
}

/*
 * CloverHttpFreeResult
 *		Free what a finished request's result holds: its body (unless the
 *		caller took it), its error and its redirect
 */
void
CloverHttpFreeResult(CloverHttp *http, CloverHttpResult *res)
{
	CloverHttpFreeBuffer(http, &res->body);
	if (res->error)
		pfree(res->error);
	if (res->redirect_url)
		pfree(res->redirect_url);
	res->error = res->redirect_url = NULL;
}

/*
 * close_wait_fds
 *		Close CloverHttpWaitFd's descriptors, if it made them; never throws
 */
static void
close_wait_fds(CloverHttp *http)
{
	if (http->wait_epoll >= 0)
	{
		close(http->wait_epoll);
		ReleaseExternalFD();
		http->wait_epoll = -1;
	}
	if (http->wait_timer >= 0)
	{
		close(http->wait_timer);
		ReleaseExternalFD();
		http->wait_timer = -1;
	}
}

/*
 * http_reset_callback
 *		Free every libcurl object of a set; called when its memory context
 *		goes away, on success, error or cancel alike
 *
 * Must not throw and must not touch the network.  The palloc'd buffers go
 * with the context; only the accounting is fixed here.
 */
static void
http_reset_callback(void *arg)
{
	CloverHttp *http = (CloverHttp *) arg;

	close_wait_fds(http);

	while (!dlist_is_empty(&http->active))
	{
		CloverHttpRequest *req =
			dlist_container(CloverHttpRequest, node,
							dlist_pop_head_node(&http->active));

		if (http->multi)
			curl_multi_remove_handle(http->multi, req->easy);
		curl_easy_cleanup(req->easy);
		curl_slist_free_all(req->headers);
		live_curl_handles--;
	}
	if (http->multi)
	{
		curl_multi_cleanup(http->multi);
		http->multi = NULL;
		live_curl_handles--;
	}
	live_buffers -= http->nbuffers;
	live_buffer_bytes -= http->buffer_bytes;
	http->nbuffers = 0;
	http->buffer_bytes = 0;
}

/*
 * CloverHttpCreate
 *		An empty set of requests living in cxt; deleting or resetting cxt
 *		frees it and stops whatever is in flight
 */
CloverHttp *
CloverHttpCreate(MemoryContext cxt)
{
	CloverHttp *http = MemoryContextAllocZero(cxt, sizeof(CloverHttp));
	MemoryContextCallback *cb;

	http->cxt = cxt;
	http->wait_epoll = http->wait_timer = -1;
	dlist_init(&http->active);
	cb = MemoryContextAllocZero(cxt, sizeof(MemoryContextCallback));
	cb->func = http_reset_callback;
	cb->arg = http;
	MemoryContextRegisterResetCallback(cxt, cb);

	http->multi = curl_multi_init();
	if (http->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not create a libcurl multi handle.")));
	live_curl_handles++;
	return http;
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
 * result says why.
 */
static size_t
write_callback(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	CloverHttpRequest *req = (CloverHttpRequest *) userdata;
	CloverHttpBuffer *body = &req->body;
	size_t		n = size * nmemb;

	if (n > req->body_limit - body->len)
	{
		req->too_large = true;
		return 0;
	}
	if (body->len + n + 1 > body->cap)
	{
		size_t		newcap = Max(body->cap * 2, 16384);
		curl_off_t	length;
		char	   *newbuf;

		/* the first write knows the Content-Length: allocate it at once */
		if (body->cap == 0 &&
			curl_easy_getinfo(req->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
							  &length) == CURLE_OK &&
			length > 0 && (size_t) length <= req->body_limit)
			newcap = Max(newcap, (size_t) length + 1);
		while (newcap < body->len + n + 1)
			newcap *= 2;
		newcap = Min(newcap, req->body_limit + 1);

		newbuf = MemoryContextAllocExtended(req->http->cxt, newcap,
											MCXT_ALLOC_NO_OOM);
		if (newbuf == NULL)
		{
			req->out_of_memory = true;
			return 0;
		}
		if (body->data)
		{
			memcpy(newbuf, body->data, body->len);
			pfree(body->data);
			account_buffer(req->http, 0, (int64) newcap - (int64) body->cap);
		}
		else
			account_buffer(req->http, 1, (int64) newcap);
		body->data = newbuf;
		body->cap = newcap;
	}
	memcpy(body->data + body->len, ptr, n);
	body->len += n;
	body->data[body->len] = '\0';
	return n;
}

/*
 * header_callback
 *		Remember Retry-After (whole seconds); forget it on a new response
 */
static size_t
header_callback(char *buffer, size_t size, size_t nitems, void *userdata)
{
	CloverHttpRequest *req = (CloverHttpRequest *) userdata;
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
 * append_header
 *		Add one header line to the request's list; throws when out of memory
 *		(the list so far is already in req, so the reset callback frees it)
 */
static void
append_header(CloverHttpRequest *req, const char *line)
{
	struct curl_slist *h = curl_slist_append(req->headers, line);

	if (h == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	req->headers = h;
}

/*
 * CloverHttpStart
 *		Start one request in the set; its result comes back, with
 *		spec->owner and spec->tag, from CloverHttpNextResult
 *
 * The request is tracked in the set before anything can fail, so the reset
 * callback frees it whatever happens next.
 */
CloverHttpRequest *
CloverHttpStart(CloverHttp *http, const CloverHttpRequestSpec *spec)
{
	CloverHttpRequest *req;
	CURL	   *easy;
	CURLMcode	mrc;

	req = MemoryContextAllocZero(http->cxt, sizeof(CloverHttpRequest));
	req->http = http;
	req->owner = spec->owner;
	req->tag = spec->tag;
	req->retry_after_secs = -1;
	req->body_limit = spec->max_body;

	easy = curl_easy_init();
	if (easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not create a libcurl handle.")));
	req->easy = easy;
	live_curl_handles++;
	dlist_push_tail(&http->active, &req->node);

	SETOPT(easy, CURLOPT_URL, spec->url);
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
	SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) spec->connect_timeout_ms);
	/* a stall: less than one byte per second for stall_timeout */
	SETOPT(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	SETOPT(easy, CURLOPT_LOW_SPEED_TIME,
		   (long) Max(1, ((int64) spec->stall_timeout_ms + 999) / 1000));
	SETOPT(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (spec->ca_file)
		SETOPT(easy, CURLOPT_CAINFO, spec->ca_file);
	if (spec->large_body)
	{
		/* megabyte bodies: read them in large chunks, not libcurl's 16 kB */
		SETOPT(easy, CURLOPT_BUFFERSIZE, LARGE_READ_CHUNK);
	}

	if (spec->bearer_token == NULL)
	{
		/* no secret to leak: redirects allowed, but only to http(s) */
		SETOPT(easy, CURLOPT_FOLLOWLOCATION, 1L);
		SETOPT(easy, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
		SETOPT(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	}
	else
	{
		char	   *auth = psprintf("Authorization: Bearer %s",
									spec->bearer_token);

		/* the token goes to the URL's host only: never follow a redirect */
		SETOPT(easy, CURLOPT_FOLLOWLOCATION, 0L);
		append_header(req, auth);
		pfree(auth);
		append_header(req, "Accept: application/json");
	}
	if (spec->post_body)
	{
		append_header(req, "Content-Type: application/json");
		req->post_body = MemoryContextStrdup(http->cxt, spec->post_body);
		SETOPT(easy, CURLOPT_POSTFIELDS, req->post_body);
		SETOPT(easy, CURLOPT_POSTFIELDSIZE, (long) strlen(req->post_body));
	}
	if (req->headers)
		SETOPT(easy, CURLOPT_HTTPHEADER, req->headers);

	mrc = curl_multi_add_handle(http->multi, easy);
	if (mrc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not start an HTTP request"),
				 errdetail("libcurl: %s.", curl_multi_strerror(mrc))));
	return req;
}

/*
 * detach_request
 *		Take a request out of the set and free its libcurl objects; its
 *		response buffer and the struct stay until the caller frees them
 */
static void
detach_request(CloverHttpRequest *req)
{
	dlist_delete(&req->node);
	curl_multi_remove_handle(req->http->multi, req->easy);
	curl_easy_cleanup(req->easy);
	req->easy = NULL;
	curl_slist_free_all(req->headers);
	req->headers = NULL;
	live_curl_handles--;
	if (req->post_body)
		pfree(req->post_body);
}

/*
 * CloverHttpAbandon
 *		Stop a request in flight and forget it; its result never comes
 */
void
CloverHttpAbandon(CloverHttp *http, CloverHttpRequest *req)
{
	Assert(req->http == http);
	detach_request(req);
	CloverHttpFreeBuffer(http, &req->body);
	pfree(req);
}

/*
 * CloverHttpBusy
 *		Is any request of the set in flight?
 */
bool
CloverHttpBusy(CloverHttp *http)
{
	return !dlist_is_empty(&http->active);
}

/* ----------------------------------------------------------------
 *		One descriptor to wait on, for an event loop of the caller's
 * ----------------------------------------------------------------
 */

/*
 * open_wait_fds
 *		Make the epoll descriptor and the timerfd of CloverHttpWaitFd, the
 *		timer watched by the epoll, counted as PostgreSQL's external
 *		descriptors
 */
static void
open_wait_fds(CloverHttp *http)
{
	struct epoll_event ev = {0};

	if (!AcquireExternalFD())
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("could not wait for Clover: too many open files"),
				 errhint("Raise max_files_per_process, or scan fewer foreign tables at once.")));
	http->wait_epoll = epoll_create1(EPOLL_CLOEXEC);
	if (http->wait_epoll < 0)
	{
		ReleaseExternalFD();
		elog(ERROR, "epoll_create1 failed: %m");
	}
	if (!AcquireExternalFD())
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("could not wait for Clover: too many open files"),
				 errhint("Raise max_files_per_process, or scan fewer foreign tables at once.")));
	http->wait_timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (http->wait_timer < 0)
	{
		ReleaseExternalFD();
		elog(ERROR, "timerfd_create failed: %m");
	}
	ev.events = EPOLLIN;
	ev.data.fd = http->wait_timer;
	if (epoll_ctl(http->wait_epoll, EPOLL_CTL_ADD, http->wait_timer, &ev) < 0)
		elog(ERROR, "epoll_ctl failed: %m");
}

/*
 * watch_socket
 *		Make the epoll watch fd for events (a socket libcurl may have
 *		closed and opened again since: then it is added anew)
 */
static void
watch_socket(CloverHttp *http, int fd, uint32 events)
{
	struct epoll_event ev = {0};

	ev.events = events;
	ev.data.fd = fd;
	if (epoll_ctl(http->wait_epoll, EPOLL_CTL_MOD, fd, &ev) == 0)
		return;
	if (errno != ENOENT ||
		epoll_ctl(http->wait_epoll, EPOLL_CTL_ADD, fd, &ev) < 0)
		elog(ERROR, "epoll_ctl failed for socket %d: %m", fd);
}

/*
 * watch_sockets
 *		Make the epoll watch exactly the sockets libcurl waits on, for what
 *		it waits; returns false if libcurl could not list them all
 */
static bool
watch_sockets(CloverHttp *http)
{
	fd_set		readfds,
				writefds,
				excfds;
	int			maxfd = -1;
	int			nwanted = 0;
	int			wanted[MAX_WATCHED_SOCKETS];
	int			fd,
				i;
	bool		listed = true;

	FD_ZERO(&readfds);
	FD_ZERO(&writefds);
	FD_ZERO(&excfds);
	if (curl_multi_fdset(http->multi, &readfds, &writefds, &excfds,
						 &maxfd) != CURLM_OK)
		maxfd = -1;
	if (maxfd < 0 && CloverHttpBusy(http))
		listed = false;			/* resolving, or beyond FD_SETSIZE */
	for (fd = 0; fd <= maxfd; fd++)
	{
		uint32		events = (FD_ISSET(fd, &readfds) ? EPOLLIN : 0) |
			(FD_ISSET(fd, &writefds) ? EPOLLOUT : 0);

		if (events == 0)
			continue;
		if (nwanted == MAX_WATCHED_SOCKETS)
		{
			listed = false;
			break;
		}
		watch_socket(http, fd, events);
		wanted[nwanted++] = fd;
	}
	/* forget the others: errors mean libcurl closed them already */
	for (i = 0; i < http->nwatched; i++)
	{
		int			j;

		for (j = 0; j < nwanted && wanted[j] != http->watched[i]; j++)
			;
		if (j == nwanted)
			(void) epoll_ctl(http->wait_epoll, EPOLL_CTL_DEL,
							 http->watched[i], NULL);
	}
	memcpy(http->watched, wanted, sizeof(int) * nwanted);
	http->nwatched = nwanted;
	return listed;
}

/*
 * CloverHttpWaitFd
 *		A descriptor that becomes readable when a transfer of the set can
 *		advance or timeout_ms have passed, for a caller that waits in an
 *		event loop of its own on one descriptor per set (an asynchronous
 *		scan under an Append, scan_async.c); it calls CloverHttpPerform
 *		when it fires
 *
 * An epoll descriptor watching the sockets libcurl waits on and a timer
 * (libcurl's own timeout, timeout_ms, whichever comes first), remade at
 * each call.  Both are freed with the set.
 */
int
CloverHttpWaitFd(CloverHttp *http, long timeout_ms)
{
	struct itimerspec its = {{0, 0}, {0, 0}};
	long		curl_timeout = -1;
	uint64		expirations;

	if (http->wait_epoll < 0)
		open_wait_fds(http);
	if (!watch_sockets(http))
		timeout_ms = Min(timeout_ms, UNLISTED_POLL_MS);
	if (curl_multi_timeout(http->multi, &curl_timeout) == CURLM_OK &&
		curl_timeout >= 0)
		timeout_ms = Min(timeout_ms, curl_timeout);

	/* a timer that fired and was not read would keep the epoll readable */
	while (read(http->wait_timer, &expirations, sizeof(expirations)) > 0)
		;
	timeout_ms = Max(timeout_ms, 0);
	its.it_value.tv_sec = timeout_ms / 1000;
	its.it_value.tv_nsec = (timeout_ms % 1000) * 1000000L + 1;	/* not 0:
																 * that disarms */
	if (timerfd_settime(http->wait_timer, 0, &its, NULL) < 0)
		elog(ERROR, "timerfd_settime failed: %m");
	return http->wait_epoll;
}

/*
 * CloverHttpPerform
 *		Let every transfer of the set advance as far as it can now; never
 *		waits.  Finished requests are then collected by CloverHttpNextResult.
 */
void
CloverHttpPerform(CloverHttp *http)
{
	int			still_running;
	CURLMcode	mrc;

	mrc = curl_multi_perform(http->multi, &still_running);
	if (mrc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not run HTTP requests"),
				 errdetail("libcurl: %s.", curl_multi_strerror(mrc))));
}

/*
 * may_pass
 *		Could the transfer failure rc go away by itself (refused, reset,
 *		dropped, stalled, truncated)?
 */
static bool
may_pass(CURLcode rc)
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

/*
 * classify
 *		What a finished transfer's libcurl code means to a caller
 *
 * Not sent: a failure that may pass, before the request could reach the
 * server (no connection, or no byte of it went out), so even a POST can be
 * repeated.  Transient: a failure that may pass, after the request may
 * have reached the server.  Fatal: anything else, including an answer
 * larger than the limit or than memory.
 */
static CloverHttpOutcome
classify(CloverHttpRequest *req, CURLcode rc, long request_bytes)
{
	if (rc == CURLE_OK)
		return CLOVER_HTTP_ANSWERED;
	if (req->too_large || req->out_of_memory || !may_pass(rc))
		return CLOVER_HTTP_FATAL;
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
		rc == CURLE_SSL_CONNECT_ERROR || request_bytes == 0)
		return CLOVER_HTTP_NOT_SENT;
	return CLOVER_HTTP_TRANSIENT;
}

/*
 * error_text
 *		Why a transfer failed, in libcurl's words or ours, palloc'd and not
 *		yet redacted (libcurl's words may hold the URL)
 */
static char *
error_text(CloverHttpRequest *req, CURLcode rc)
{
	if (req->too_large)
		return psprintf("an answer of more than %zu bytes", req->body_limit);
	if (req->out_of_memory)
		return pstrdup("an answer too large for the available memory");
	return pstrdup(req->errbuf[0] ? req->errbuf : curl_easy_strerror(rc));
}

/*
 * CloverHttpNextResult
 *		One finished request of the set, or false if none is finished
 *
 * The request is gone afterwards; the result's body buffer belongs to the
 * caller (CloverHttpFreeBuffer, or the set's context).  An answer always
 * has a body buffer, empty if the server sent nothing.
 */
bool
CloverHttpNextResult(CloverHttp *http, CloverHttpResult *result)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(http->multi, &left)) != NULL)
	{
		CloverHttpRequest *req;
		CURLcode	rc = msg->data.result;
		long		request_bytes = 0;
		char	   *location = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
							  (char **) &req) != CURLE_OK || req == NULL)
			elog(ERROR, "libcurl returned a transfer that is not ours");

		memset(result, 0, sizeof(*result));
		result->owner = req->owner;
		result->tag = req->tag;
		result->retry_after_secs = req->retry_after_secs;
		(void) curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE,
								 &result->status);
		(void) curl_easy_getinfo(req->easy, CURLINFO_REQUEST_SIZE,
								 &request_bytes);
		(void) curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME,
								 &result->total_secs);
		if (curl_easy_getinfo(req->easy, CURLINFO_REDIRECT_URL,
							  &location) == CURLE_OK && location != NULL)
			result->redirect_url = MemoryContextStrdup(http->cxt, location);
		result->outcome = classify(req, rc, request_bytes);
		result->unreachable = (result->outcome == CLOVER_HTTP_NOT_SENT &&
							   (rc == CURLE_COULDNT_CONNECT ||
								rc == CURLE_COULDNT_RESOLVE_HOST));
		if (result->outcome != CLOVER_HTTP_ANSWERED)
			result->error = error_text(req, rc);
		detach_request(req);

		if (result->outcome == CLOVER_HTTP_ANSWERED && req->body.data == NULL)
		{
			/* an empty body: still a valid, terminated buffer */
			req->body.data = MemoryContextAllocZero(http->cxt, 1);
			req->body.cap = 1;
			account_buffer(http, 1, 1);
		}
		result->body = req->body;
		pfree(req);
		return true;
	}
	return false;
}

/*
 * CloverHttpWait
 *		Sleep until a transfer can advance, timeout_ms pass, or a signal or
 *		the latch arrives; at most MAX_POLL_WAIT_MS while transfers run
 *
 * curl_multi_poll returns early when a signal interrupts it (cancel,
 * statement_timeout), and the 100 ms cap bounds the rare case of a signal
 * arriving just before it sleeps.  Without transfers we sleep on the latch,
 * which a cancel sets.  Raises a pending cancel before returning.
 */
void
CloverHttpWait(CloverHttp *http, long timeout_ms)
{
	if (CloverHttpBusy(http))
	{
		long		curl_timeout = -1;
		int			numfds;

		timeout_ms = Max(0, Min(timeout_ms, MAX_POLL_WAIT_MS));
		if (curl_multi_timeout(http->multi, &curl_timeout) == CURLM_OK &&
			curl_timeout >= 0 && curl_timeout < timeout_ms)
			timeout_ms = curl_timeout;
		pgstat_report_wait_start(PG_WAIT_EXTENSION);
		(void) curl_multi_poll(http->multi, NULL, 0, (int) timeout_ms, &numfds);
		pgstat_report_wait_end();
	}
	else
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(1, timeout_ms), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	CHECK_FOR_INTERRUPTS();
}

/* ----------------------------------------------------------------
 *		URLs
 * ----------------------------------------------------------------
 */

/*
 * CloverUrlPart
 *		One part of a URL as libcurl's URL parser sees it, palloc'd; NULL if
 *		the URL does not parse or lacks that part (decode: URL-decoded)
 *
 * Any scheme parses, so that a URL we refuse can still be shown.  Never
 * throws except when out of memory.
 */
char *
CloverUrlPart(const char *url, CloverUrlPartKind part, bool decode)
{
	static const CURLUPart parts[] = {
		[CLOVER_URL_SCHEME] = CURLUPART_SCHEME,
		[CLOVER_URL_HOST] = CURLUPART_HOST,
		[CLOVER_URL_PORT] = CURLUPART_PORT,
		[CLOVER_URL_PATH] = CURLUPART_PATH,
		[CLOVER_URL_QUERY] = CURLUPART_QUERY
	};
	CURLU	   *h = curl_url();
	char	   *value = NULL;
	char	   *result = NULL;

	if (h == NULL)
		return NULL;
	if (curl_url_set(h, CURLUPART_URL, url,
					 CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS) == CURLUE_OK &&
		curl_url_get(h, parts[part], &value,
					 decode ? CURLU_URLDECODE : 0) == CURLUE_OK && value != NULL)
		result = palloc_extended(strlen(value) + 1, MCXT_ALLOC_NO_OOM);
	if (result)
		strcpy(result, value);
	curl_free(value);
	curl_url_cleanup(h);
	return result;
}
