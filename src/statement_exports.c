/*-------------------------------------------------------------------------
 *
 * statement_exports.c
 *		  What one statement has exported: completed exports served again,
 *		  and the count of exports it may still create
 *
 * A nested loop rescans its inner foreign scan once per outer row, each
 * time with new parameters.  Without memory, every rescan creates exports
 * of its own: hundreds of remote jobs, each taking minutes at Clover, for
 * one query.  So each statement (each executor state, EState) keeps:
 *
 * - the exports its scans have seen DONE: which window of createdTime
 *	 Clover exported, the export's id and file URLs, and until when Clover
 *	 keeps the files.  A later scan of the statement (a rescan, or another
 *	 scan of the same merchant, export type and token) whose window lies
 *	 inside one of them is served from its files, downloading them again:
 *	 the scan filters the rows to its own window, so a wider export is as
 *	 good as an exact one.  An export whose files expire (availableUntil,
 *	 less a margin for the downloads) is never served again.
 * - per server, how many exports the statement has created (or has asked
 *	 for and may have got).  Creating one more than the server's
 *	 max_exports_per_statement is an error, raised before the request.
 *
 * The state lives in the EState's query memory context and leaves the
 * backend's list when that context goes: at the end of the statement, on
 * success, error or cancel alike.  Nothing is kept across statements (the
 * files would still be at Clover, but the data may have changed and the
 * user expects a new statement to ask again).
 *
 * IDENTIFICATION
 *		  src/statement_exports.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "clover_export_fdw.h"
#include "lib/ilist.h"
#include "nodes/execnodes.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* without availableUntil, files are assumed kept this long after DONE */
#define ASSUMED_LIFETIME_MS			(60 * 60 * 1000)

/* One completed export */
typedef struct DoneExport
{
	Oid			serverid;
	const char *api_base;
	const char *merchant_id;
	CloverExportType export_type;
	const char *token;			/* whose access it was made with; never
								 * shown */
	CloverStatementExport exp;
} DoneExport;

/* Exports created so far for one server */
typedef struct ServerCount
{
	Oid			serverid;
	int			created;
} ServerCount;

struct CloverStatementExports
{
	dlist_node	node;			/* in statements */
	EState	   *estate;
	MemoryContext cxt;			/* the EState's query context */
	List	   *done;			/* DoneExports */
	List	   *counts;			/* ServerCounts */
};

/* The statements of this backend that have scanned a Clover table */
static dlist_head statements = DLIST_STATIC_INIT(statements);

/*
 * statement_reset_callback
 *		The statement's query context is going: forget its state
 */
static void
statement_reset_callback(void *arg)
{
	CloverStatementExports *st = (CloverStatementExports *) arg;

	dlist_delete(&st->node);
}

/*
 * CloverStatementExportsFor
 *		The state of the statement that estate executes, created on first
 *		use
 */
CloverStatementExports *
CloverStatementExportsFor(EState *estate)
{
	dlist_iter	iter;
	CloverStatementExports *st;
	MemoryContextCallback *cb;

	dlist_foreach(iter, &statements)
	{
		st = dlist_container(CloverStatementExports, node, iter.cur);
		if (st->estate == estate)
			return st;
	}
	st = MemoryContextAllocZero(estate->es_query_cxt,
								sizeof(CloverStatementExports));
	st->estate = estate;
	st->cxt = estate->es_query_cxt;
	cb = MemoryContextAllocZero(st->cxt, sizeof(MemoryContextCallback));
	cb->func = statement_reset_callback;
	cb->arg = st;
	MemoryContextRegisterResetCallback(st->cxt, cb);
	dlist_push_tail(&statements, &st->node);
	return st;
}

/*
 * same_source
 *		Was d made by the same merchant's export of the same type, through
 *		the same API host and with the same token, as a scan with opts and
 *		token would make it?  (Another user's token may not see the same
 *		merchant.)
 */
static bool
same_source(const DoneExport *d, const CloverFdwOptions *opts,
			const char *token)
{
	return d->serverid == opts->serverid &&
		d->export_type == opts->export_type &&
		strcmp(d->api_base, opts->api_base) == 0 &&
		strcmp(d->merchant_id, opts->merchant_id) == 0 &&
		strcmp(d->token, token) == 0;
}

/*
 * now_unix_ms
 *		The wall clock in epoch milliseconds, the clock of availableUntil
 */
static int64
now_unix_ms(void)
{
	return CloverTimestampToUnixMs(GetCurrentTimestamp());
}

/*
 * CloverStatementFindExport
 *		A completed export of this statement whose window holds every
 *		object of window (lo <= createdTime < hi) and whose files are still
 *		kept, or NULL
 */
const CloverStatementExport *
CloverStatementFindExport(CloverStatementExports *st,
						  const CloverFdwOptions *opts, const char *token,
						  const CloverWindow *window)
{
	int64		lo_ms = CloverTimestampToUnixMs(window->lo);
	int64		hi_ms = CloverTimestampToUnixMs(window->hi - 1) + 1;
	int64		usable_until = now_unix_ms() + CLOVER_EXPIRY_MARGIN_MS;
	ListCell   *lc;

	if (st == NULL)
		return NULL;
	foreach(lc, st->done)
	{
		DoneExport *d = (DoneExport *) lfirst(lc);

		if (same_source(d, opts, token) &&
			d->exp.start_ms <= lo_ms && hi_ms <= d->exp.end_ms &&
			d->exp.available_until > usable_until)
			return &d->exp;
	}
	return NULL;
}

/*
 * CloverStatementRememberExport
 *		Keep a DONE export for the rest of the statement: the window Clover
 *		exported (start_ms, end_ms), its id and file URLs (copied) and
 *		availableUntil in epoch ms (0 if Clover did not say)
 */
void
CloverStatementRememberExport(CloverStatementExports *st,
							  const CloverFdwOptions *opts, const char *token,
							  const CloverWindow *window,
							  const char *export_id, char **urls, int nurls,
							  int64 available_until)
{
	MemoryContext old;
	DoneExport *d;
	int			i;

	if (st == NULL)
		return;
	old = MemoryContextSwitchTo(st->cxt);
	d = palloc0(sizeof(DoneExport));
	d->serverid = opts->serverid;
	d->api_base = pstrdup(opts->api_base);
	d->merchant_id = pstrdup(opts->merchant_id);
	d->export_type = opts->export_type;
	d->token = pstrdup(token);
	d->exp.start_ms = window->start_ms;
	d->exp.end_ms = window->end_ms;
	d->exp.export_id = pstrdup(export_id);
	d->exp.nurls = nurls;
	d->exp.urls = palloc(sizeof(char *) * Max(nurls, 1));
	for (i = 0; i < nurls; i++)
		d->exp.urls[i] = pstrdup(urls[i]);
	d->exp.available_until = available_until > 0 ? available_until :
		now_unix_ms() + ASSUMED_LIFETIME_MS;
	st->done = lappend(st->done, d);
	MemoryContextSwitchTo(old);
}

/*
 * CloverStatementForgetExport
 *		Clover no longer has this export's files: serve it no more
 */
void
CloverStatementForgetExport(CloverStatementExports *st, const char *export_id)
{
	ListCell   *lc;

	if (st == NULL || export_id == NULL)
		return;
	foreach(lc, st->done)
	{
		DoneExport *d = (DoneExport *) lfirst(lc);

		if (strcmp(d->exp.export_id, export_id) == 0)
			d->exp.available_until = 0;
	}
}

/*
 * server_count
 *		The statement's count of exports created for opts's server
 */
static ServerCount *
server_count(CloverStatementExports *st, const CloverFdwOptions *opts)
{
	ListCell   *lc;
	ServerCount *c;

	MemoryContext old;

	foreach(lc, st->counts)
	{
		c = (ServerCount *) lfirst(lc);
		if (c->serverid == opts->serverid)
			return c;
	}
	old = MemoryContextSwitchTo(st->cxt);
	c = palloc0(sizeof(ServerCount));
	c->serverid = opts->serverid;
	st->counts = lappend(st->counts, c);
	MemoryContextSwitchTo(old);
	return c;
}

/*
 * export_window_text
 *		"<start> to <end>" of the times a window's export asks Clover for
 *		(whole days for a parameterized scan), palloc'd
 */
static char *
export_window_text(const CloverWindow *window)
{
	TimestampTz start,
				end;

	if (!CloverUnixMsToTimestamp(window->start_ms, &start) ||
		!CloverUnixMsToTimestamp(window->end_ms, &end))
		return CloverWindowText(window);
	return psprintf("%s to %s", CloverFormatUtc(start), CloverFormatUtc(end));
}

/*
 * CloverStatementCountExport
 *		Count an export about to be requested for window; error if the
 *		statement has already created max_exports_per_statement exports of
 *		this server
 *
 * Called before each POST that may create an export; a POST that Clover
 * refused without creating one is given back (CloverStatementUncountExport).
 * The error uses ERRCODE_FDW_TOO_MANY_HANDLES: the statement asked for
 * more remote objects than it is allowed.
 */
void
CloverStatementCountExport(CloverStatementExports *st,
						   const CloverFdwOptions *opts,
						   const CloverWindow *window)
{
	ServerCount *c;

	if (st == NULL)
		return;
	c = server_count(st, opts);
	if (c->created >= opts->max_exports_per_statement)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_TOO_MANY_HANDLES),
				 errmsg("statement needs more than %d Clover exports",
						opts->max_exports_per_statement),
				 errdetail("The statement has created %d exports on server \"%s\" and needs one more for the %s window %s of foreign table \"%s\"; the server's max_exports_per_statement is %d.",
						   c->created, opts->server_name,
						   CloverExportTypeName(opts->export_type),
						   export_window_text(window), opts->table_name,
						   opts->max_exports_per_statement),
				 errhint("Bound created_time of foreign table \"%s\" with constants (such as \"created_time >= '2024-05-01' AND created_time < '2024-05-09'\") so that one scan serves every row of the other table, or raise the limit with ALTER SERVER %s OPTIONS (ADD max_exports_per_statement '%d') (SET if it is already set).",
						 opts->table_name, quote_identifier(opts->server_name),
						 opts->max_exports_per_statement * 2)));
	c->created++;
}

/*
 * CloverStatementUncountExport
 *		Clover refused the POST counted last (503, 429, or it was never
 *		sent): no export was created
 */
void
CloverStatementUncountExport(CloverStatementExports *st,
							 const CloverFdwOptions *opts)
{
	ServerCount *c;

	if (st == NULL)
		return;
	c = server_count(st, opts);
	if (c->created > 0)
		c->created--;
}
